//! Binding listeners and accepting connections (plaintext and TLS).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use chinwag_core::{ConnId, ConnInfo};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn;
use crate::hub::Event;
use crate::metrics::{Counted, Metrics, Transport};

/// Time a client has to finish the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Binds `addr`; IPv6 sockets are IPv6-only so that `0.0.0.0` and `[::]` can both be bound.
pub(crate) fn bind(addr: SocketAddr) -> Result<TcpListener> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into()).with_context(|| format!("binding {addr}"))?;
    socket.listen(1024)?;
    let std_listener: std::net::TcpListener = socket.into();
    TcpListener::from_std(std_listener).with_context(|| format!("listening on {addr}"))
}

/// Everything an accept loop needs, shared by all listeners.
#[derive(Clone)]
pub(crate) struct Acceptor {
    pub events: mpsc::Sender<Event>,
    pub ids: Arc<AtomicU64>,
    pub sendq: usize,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub metrics: Arc<Metrics>,
}

impl Acceptor {
    pub async fn run(self, listener: TcpListener, tls: Option<TlsAcceptor>) {
        loop {
            let accepted = tokio::select! {
                _ = self.shutdown.cancelled() => return,
                accepted = listener.accept() => accepted,
            };
            let (stream, peer) = match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let transport = if tls.is_some() { Transport::Tls } else { Transport::Plaintext };
            let stream = self.metrics.wrap(stream, transport);
            let conn = ConnId(self.ids.fetch_add(1, Ordering::Relaxed));
            let this = self.clone();
            let tls = tls.clone();
            self.tracker.spawn(async move { this.serve(stream, peer, conn, tls).await });
        }
    }

    async fn serve(self, stream: Counted<TcpStream>, peer: SocketAddr, conn: ConnId, tls: Option<TlsAcceptor>) {
        let ip = peer.ip().to_canonical();
        let info = ConnInfo { ip, host: host_of(ip), tls: tls.is_some() };
        match tls {
            None => conn::serve(stream, conn, info, self.events, self.sendq).await,
            Some(acceptor) => {
                // A stop does not wait for handshakes: an idle half-open connection must not
                // delay every shutdown by the handshake timeout.
                let handshake = tokio::select! {
                    _ = self.shutdown.cancelled() => return,
                    handshake = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream)) => handshake,
                };
                match handshake {
                    Ok(Ok(stream)) => conn::serve(stream, conn, info, self.events, self.sendq).await,
                    Ok(Err(e)) => tracing::debug!(%conn, %ip, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%conn, %ip, "TLS handshake timed out"),
                }
            }
        }
    }
}

/// The host part of `nick!user@host`: the address, with `::1` written `0::1` so it cannot be
/// mistaken for a trailing parameter.
fn host_of(ip: IpAddr) -> String {
    let text = ip.to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}
