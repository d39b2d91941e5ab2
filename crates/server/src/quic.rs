//! The QUIC transport: one bidirectional stream per connection carries IRC lines exactly as a
//! TCP stream does (the same reader, writer and hub), and `+typing` TAGMSGs travel as QUIC
//! datagrams (RFC 9221) in both directions.
//!
//! Datagrams are for what may be lost: a typing notice that does not arrive is replaced by the
//! next one or expires. Everything else stays on the stream, in order. A peer on QUIC receives
//! typing notices as datagrams whatever transport their sender uses; a datagram too large for
//! the path, or a peer that did not enable datagrams, falls back to the stream.
//!
//! The handshake is TLS 1.3 with the server's certificate and the ALPN name [`ALPN`], so a
//! client pins the same fingerprint as for TLS. Connection migration is on (quinn's default
//! for servers): a client whose address or port changes carries on in the same session.
//!
//! Handshakes in progress are bounded (`EdgeLimits::quic_*`): a source address is taken at its
//! word only while few are in progress; beyond `quic_retry_above` it must prove it with a
//! stateless Retry before the server keeps anything for it, beyond `quic_max_half_open` it is
//! refused, and an unfinished handshake is dropped after `quic_handshake_timeout`. An address
//! counts against its per-address limits (`limits.rs`) once it is proven, for as long as the
//! connection lives.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use chinwag_core::{ConnId, ConnInfo};
use chinwag_proto::Message;

use crate::config::EdgeLimits;
use crate::conn;
use crate::hub::Event;
use crate::limits::Permit;
use crate::listen::{host_of, Acceptor};
use crate::metrics::{Metrics, QuicAttempt, Transport};
use crate::outbox::Divert;

/// The ALPN protocol name that says "IRC lines on the first bidirectional stream, typing
/// notices in datagrams".
pub const ALPN: &[u8] = b"chinwag/1";

/// A peer silent this long (no packets, not even keep-alives) is gone. The core's PING timeout
/// usually notices first.
const IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Time allowed, once the stream is finished, for the peer to acknowledge our last lines (the
/// ERROR) before the connection is closed.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Buffered incoming datagrams per connection; beyond this quinn drops the oldest, which is
/// what a lossy channel means anyway.
const DATAGRAM_RECEIVE_BUFFER: usize = 64 * 1024;
/// A datagram longer than a full IRC line with tags is not a line; it is ignored. (The stream's
/// own line limit is `EdgeLimits::line_len`.)
const MAX_DATAGRAM_LINE: usize = chinwag_proto::MAX_LINE_LEN;

/// Later packets quinn buffers for one connection attempt before the accept loop takes it (a
/// ClientHello spans two or three packets at most; the server accepts no 0-RTT data).
const INCOMING_BUFFER_PER_ATTEMPT: u64 = 16 * 1024;
/// The application error code with which a handshake refused after the fact is closed.
const CLOSE_REFUSED: u32 = 1;

/// Binds a UDP socket (IPv6-only for IPv6 addresses, as for TCP) and makes it a QUIC endpoint
/// whose queue of connection attempts is bounded by `limits`.
pub(crate) fn bind(
    addr: SocketAddr,
    crypto: Arc<quinn::crypto::rustls::QuicServerConfig>,
    limits: &EdgeLimits,
) -> Result<quinn::Endpoint> {
    let domain = if addr.is_ipv6() { socket2::Domain::IPV6 } else { socket2::Domain::IPV4 };
    let socket = socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.bind(&addr.into()).with_context(|| format!("binding UDP {addr}"))?;
    let mut transport = quinn::TransportConfig::default();
    transport
        .max_concurrent_bidi_streams(1u8.into())
        .max_concurrent_uni_streams(0u8.into())
        .datagram_receive_buffer_size(Some(DATAGRAM_RECEIVE_BUFFER))
        .max_idle_timeout(Some(IDLE_TIMEOUT.try_into().context("QUIC idle timeout")?));
    let mut server = quinn::ServerConfig::with_crypto(crypto);
    server
        .transport_config(Arc::new(transport))
        .max_incoming(limits.quic_max_incoming)
        .incoming_buffer_size(INCOMING_BUFFER_PER_ATTEMPT)
        .incoming_buffer_size_total(limits.quic_incoming_buffer as u64);
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket.into(), runtime)
        .with_context(|| format!("starting QUIC on {addr}"))
}

/// One QUIC handshake in progress, counted in [`Metrics::quic_half_open`] until dropped.
struct HalfOpen(Arc<Metrics>);

impl HalfOpen {
    /// A place among the `max` handshakes in progress, if one is free.
    fn reserve(metrics: &Arc<Metrics>, max: usize) -> Option<HalfOpen> {
        let max = max as u64;
        metrics
            .quic_half_open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| (n < max).then_some(n + 1))
            .ok()
            .map(|_| HalfOpen(Arc::clone(metrics)))
    }
}

impl Drop for HalfOpen {
    fn drop(&mut self) {
        self.0.quic_half_open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Acceptor {
    /// Accepts QUIC connections until shutdown, then closes the endpoint.
    ///
    /// Every decision here is made before the server keeps any state for the attempt: a peer
    /// whose address is not proven gets a stateless Retry once `limits.quic_retry_above`
    /// handshakes are in progress, a proven one is refused once `limits.quic_max_half_open`
    /// are, or when its address is over its limits.
    pub(crate) async fn run_quic(self, endpoint: quinn::Endpoint) {
        self.metrics.watch_quic(&endpoint);
        loop {
            let incoming = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                incoming = endpoint.accept() => incoming,
            };
            let Some(incoming) = incoming else { break };
            self.admit_quic(incoming);
        }
        // Connections still open say goodbye through their own tasks; this waits for them,
        // within bounds.
        let _ = tokio::time::timeout(2 * CLOSE_TIMEOUT, endpoint.wait_idle()).await;
        self.metrics.forget_quic(&endpoint);
    }

    fn admit_quic(&self, incoming: quinn::Incoming) {
        let ip = incoming.remote_address().ip();
        // Proven by a token we issued to that address (a Retry's, or a NEW_TOKEN from an
        // earlier connection); anyone can put any source address on an Initial.
        let proven = incoming.remote_address_validated();
        let in_progress = self.metrics.quic_half_open.load(Ordering::Relaxed);
        if !proven && in_progress >= self.limits.quic_retry_above as u64 {
            self.metrics.quic_attempt(QuicAttempt::Retried);
            if let Err(e) = incoming.retry() {
                // Only an attempt that already carries a Retry token cannot be retried.
                e.into_incoming().refuse();
            }
            return;
        }
        let Some(half_open) = HalfOpen::reserve(&self.metrics, self.limits.quic_max_half_open) else {
            tracing::debug!(%ip, "QUIC connection refused: too many handshakes in progress");
            self.metrics.quic_attempt(QuicAttempt::Refused);
            return incoming.refuse();
        };
        // The same per-address, per-subnet and global limits as TCP, for an address that is
        // proven; an unproven one is counted once its handshake proves it, so that packets
        // with someone else's address cannot use up that address's connections.
        let permit = if proven {
            match self.admission.admit(ip, Instant::now()) {
                Ok(permit) => Some(permit),
                Err(refusal) => {
                    tracing::debug!(%ip, reason = refusal.text(), "QUIC connection refused");
                    self.metrics.quic_attempt(QuicAttempt::Refused);
                    return incoming.refuse();
                }
            }
        } else {
            None
        };
        self.metrics.quic_attempt(QuicAttempt::Accepted);
        let conn = ConnId(self.ids.fetch_add(1, Ordering::Relaxed));
        let this = self.clone();
        self.tracker.spawn(async move { this.serve_quic(incoming, conn, half_open, permit).await });
    }

    async fn serve_quic(self, incoming: quinn::Incoming, conn: ConnId, half_open: HalfOpen, permit: Option<Permit>) {
        let ip = incoming.remote_address().ip().to_canonical();
        let timeout = self.limits.quic_handshake_timeout;
        // Dropping an unfinished `Connecting` closes it: quinn lets its state go once the close
        // has had a few round trips to reach the peer.
        let handshake = async { incoming.accept()?.await };
        // A stop does not wait for handshakes, as on TLS.
        let handshake = tokio::select! {
            _ = self.shutdown.cancelled() => return,
            handshake = tokio::time::timeout(timeout, handshake) => handshake,
        };
        let connection = match handshake {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => return tracing::debug!(%conn, %ip, error = %e, "QUIC handshake failed"),
            Err(_) => {
                self.metrics.quic_attempt(QuicAttempt::TimedOut);
                return tracing::debug!(%conn, %ip, "QUIC handshake timed out");
            }
        };
        drop(half_open);
        // The handshake proved the address: now it counts against its limits.
        let _permit = match permit.map_or_else(|| self.admission.admit(ip, Instant::now()), Ok) {
            Ok(permit) => permit,
            Err(refusal) => {
                tracing::debug!(%conn, %ip, reason = refusal.text(), "QUIC connection refused");
                self.metrics.quic_attempt(QuicAttempt::Refused);
                return connection.close(CLOSE_REFUSED.into(), refusal.text().as_bytes());
            }
        };
        let (send, recv) = match tokio::time::timeout(timeout, connection.accept_bi()).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => return tracing::debug!(%conn, %ip, error = %e, "QUIC connection ended before its stream"),
            Err(_) => {
                connection.close(CLOSE_REFUSED.into(), b"no stream opened in time");
                return tracing::debug!(%conn, %ip, "QUIC stream not opened in time");
            }
        };
        // A client certificate, as over TLS, is the connection's CertFP for SASL EXTERNAL.
        let certfp = connection
            .peer_identity()
            .and_then(|id| id.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>().ok())
            .and_then(|certs| certs.first().map(|c| Box::new(crate::tls::certfp(c))));
        let info = ConnInfo { ip, host: host_of(ip), tls: true, quic: true, certfp };
        let datagrams = tokio::spawn(read_datagrams(connection.clone(), conn, self.events.clone()));
        // Resolves once the peer has received everything up to the end of the stream.
        let delivered = send.stopped();
        let stream = self.metrics.wrap(tokio::io::join(recv, send), Transport::Quic);
        let divert: Box<dyn Divert> = Box::new(TypingDatagrams(connection.clone()));
        conn::serve(stream, conn::Setup::new(conn, info, self.events, &self.queues), Some(divert)).await;
        // The writer finished the stream after our last line (the ERROR); closing the
        // connection before the peer has it would discard it.
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, delivered).await;
        connection.close(0u8.into(), b"bye");
        datagrams.abort();
    }
}

/// Sends `+typing` TAGMSGs to a QUIC peer as datagrams when they fit.
struct TypingDatagrams(quinn::Connection);

impl Divert for TypingDatagrams {
    fn divert(&self, line: &[u8]) -> bool {
        if !is_typing_notice(line) || self.0.max_datagram_size().is_none_or(|max| line.len() > max) {
            return false;
        }
        self.0.send_datagram(Bytes::copy_from_slice(line)).is_ok()
    }
}

/// Reads the peer's datagrams: each holds one line, and only typing notices are taken from
/// them (anything else must keep its order on the stream, so it is ignored).
async fn read_datagrams(connection: quinn::Connection, conn: ConnId, events: tokio::sync::mpsc::Sender<Event>) {
    while let Ok(datagram) = connection.read_datagram().await {
        if datagram.len() > MAX_DATAGRAM_LINE || !is_typing_notice(&datagram) {
            tracing::debug!(%conn, bytes = datagram.len(), "ignored a QUIC datagram that is not a typing notice");
            continue;
        }
        let line = datagram.strip_suffix(b"\n").unwrap_or(&datagram);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let parsed = Message::parse_client_bytes(line);
        // Full: wait, like the stream's reader (backpressure on this one peer).
        if events.send(Event::Line { conn, parsed }).await.is_err() {
            return;
        }
    }
}

/// Whether `line` is exactly one `TAGMSG` line carrying a `+typing` tag.
pub(crate) fn is_typing_notice(line: &[u8]) -> bool {
    let body = line.strip_suffix(b"\n").unwrap_or(line);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if body.contains(&b'\n') || body.contains(&b'\r') {
        return false;
    }
    let Some(rest) = body.strip_prefix(b"@") else { return false };
    let Some(space) = rest.iter().position(|&b| b == b' ') else { return false };
    let (tags, mut rest) = (&rest[..space], &rest[space + 1..]);
    if !tags.split(|&b| b == b';').any(|tag| tag == b"+typing" || tag.starts_with(b"+typing=")) {
        return false;
    }
    if rest.first() == Some(&b':') {
        let Some(space) = rest.iter().position(|&b| b == b' ') else { return false };
        rest = &rest[space + 1..];
    }
    let command = rest.split(|&b| b == b' ').next().unwrap_or_default();
    command.eq_ignore_ascii_case(b"TAGMSG")
}

#[cfg(test)]
mod tests {
    use super::is_typing_notice;

    #[test]
    fn recognises_typing_notices_only() {
        assert!(is_typing_notice(b"@+typing=active :a!a@h TAGMSG #room\r\n"));
        assert!(is_typing_notice(b"@time=x;+typing=paused TAGMSG bob"));
        assert!(is_typing_notice(b"@+draft/reply=1;+typing=done :a!a@h tagmsg #r\r\n"));
        assert!(!is_typing_notice(b"@+typing=active :a!a@h PRIVMSG #room :hi\r\n"), "a message");
        assert!(!is_typing_notice(b"@+typingx=1 TAGMSG #room\r\n"), "another tag");
        assert!(!is_typing_notice(b"@+draft/react=x TAGMSG #room\r\n"), "another client tag");
        assert!(!is_typing_notice(b"TAGMSG #room\r\n"), "no tags");
        assert!(!is_typing_notice(b"@+typing=active TAGMSG #a\r\nPRIVMSG #a :x\r\n"), "two lines");
        assert!(!is_typing_notice(b"@+typing=active"), "no command");
        assert!(!is_typing_notice(b""), "empty");
    }
}
