//! Binding listeners and accepting connections (plaintext and TLS).

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use chinwag_core::{ConnId, ConnInfo};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EdgeLimits;
use crate::conn;
use crate::hub::Event;
use crate::limits::{Admission, Refusal};
use crate::metrics::{Metrics, Transport};
use crate::outbox::Queues;

/// Pause after an accept error (e.g. out of file descriptors) before trying again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);
/// Time a refused peer gets to read our ERROR before the socket is closed.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);
/// Bytes of a refused peer's input we read (and ignore) while it reads our ERROR: closing a
/// socket with unread input resets it, which can destroy the ERROR before the peer sees it.
const REFUSAL_DRAIN: usize = 4096;

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
    pub limits: EdgeLimits,
    pub admission: Admission,
    /// Refused connections being told why (`limits.refusals_in_flight`). None left: a refused
    /// connection is closed without a word.
    pub refusals: Arc<Semaphore>,
    pub shutdown: CancellationToken,
    pub tracker: TaskTracker,
    pub metrics: Arc<Metrics>,
    /// What every connection's outbound queue shares.
    pub queues: Arc<Queues>,
}

impl Acceptor {
    pub async fn run(self, listener: TcpListener, tls: Option<TlsAcceptor>) {
        while let Some((stream, peer)) = accept(&listener, &self.shutdown).await {
            let _ = stream.set_nodelay(true);
            let _ = socket2::SockRef::from(&stream).set_send_buffer_size(self.limits.socket_send_buffer);
            let permit = match self.admission.admit(peer.ip(), Instant::now()) {
                Ok(permit) => permit,
                Err(refusal) => {
                    self.refuse(stream, peer, refusal, tls.clone());
                    continue;
                }
            };
            let transport = if tls.is_some() { Transport::Tls } else { Transport::Plaintext };
            let stream = self.metrics.wrap(stream, transport);
            let conn = ConnId(self.ids.fetch_add(1, Ordering::Relaxed));
            let ip = peer.ip().to_canonical();
            let info = ConnInfo { ip, host: host_of(ip), tls: tls.is_some(), quic: false, certfp: None };
            let setup = conn::Setup::new(conn, info, self.events.clone(), &self.queues);
            match &tls {
                // The task is the connection's future alone: an idle plaintext connection
                // costs only what it needs.
                None => {
                    self.tracker.spawn(conn::serve_tcp(stream, setup, permit));
                }
                // Boxed: a TLS session is large, and a task is sized for its largest state.
                Some(acceptor) => {
                    let acceptor = acceptor.clone();
                    let (shutdown, timeout) = (self.shutdown.clone(), self.limits.tls_handshake_timeout);
                    self.tracker.spawn(Box::pin(async move {
                        // A stop does not wait for handshakes: an idle half-open connection
                        // must not delay every shutdown by the handshake timeout.
                        let handshake = tokio::select! {
                            _ = shutdown.cancelled() => return,
                            handshake = tokio::time::timeout(timeout, acceptor.accept(stream)) => handshake,
                        };
                        match handshake {
                            Ok(Ok(stream)) => {
                                let _permit = permit;
                                let mut setup = setup;
                                let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
                                setup.info.certfp = cert.map(|c| Box::new(crate::tls::certfp(c)));
                                conn::serve(stream, setup, None).await;
                            }
                            Ok(Err(e)) => tracing::debug!(%conn, %ip, error = %e, "TLS handshake failed"),
                            Err(_) => tracing::debug!(%conn, %ip, "TLS handshake timed out"),
                        }
                    }));
                }
            }
        }
    }

    /// Tells a refused peer why (`ERROR`, over TLS on a TLS port) and closes, in a task of its
    /// own bounded in time and in number.
    fn refuse(&self, stream: TcpStream, peer: SocketAddr, refusal: Refusal, tls: Option<TlsAcceptor>) {
        let ip = peer.ip().to_canonical();
        tracing::debug!(%ip, reason = refusal.text(), "connection refused");
        let Ok(slot) = Arc::clone(&self.refusals).try_acquire_owned() else { return };
        let line = format!("ERROR :Closing Link: {} ({})\r\n", host_of(ip), refusal.text());
        let handshake_timeout = self.limits.tls_handshake_timeout;
        let shutdown = self.shutdown.clone();
        self.tracker.spawn(async move {
            let _slot = slot;
            let tell = async {
                match tls {
                    None => say_and_close(stream, line.as_bytes()).await,
                    Some(acceptor) => {
                        if let Ok(Ok(stream)) = tokio::time::timeout(handshake_timeout, acceptor.accept(stream)).await {
                            say_and_close(stream, line.as_bytes()).await;
                        }
                    }
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => {}
                () = tell => {}
            }
        });
    }
}

/// Waits for the next connection; `None` once the server stops. An accept error (out of file
/// descriptors, for example) is logged and the accept tried again after [`ACCEPT_BACKOFF`].
pub(crate) async fn accept(listener: &TcpListener, shutdown: &CancellationToken) -> Option<(TcpStream, SocketAddr)> {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => return None,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok(pair) => return Some(pair),
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// Writes `line`, closes our side, and reads (ignoring it) what the peer still sends until it
/// closes too, for at most [`REFUSAL_LINGER`].
pub(crate) async fn say_and_close<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, line: &[u8]) {
    let polite = async {
        stream.write_all(line).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 512];
        let mut drained = 0;
        while drained < REFUSAL_DRAIN {
            match stream.read(&mut sink).await? {
                0 => break,
                n => drained += n,
            }
        }
        Ok::<_, std::io::Error>(())
    };
    let _ = tokio::time::timeout(REFUSAL_LINGER, polite).await;
}

/// The host part of `nick!user@host`: the address, with `::1` written `0::1` so it cannot be
/// mistaken for a trailing parameter.
pub(crate) fn host_of(ip: IpAddr) -> String {
    let text = ip.to_string();
    if text.starts_with(':') {
        format!("0{text}")
    } else {
        text
    }
}
