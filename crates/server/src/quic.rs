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

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use chinwag_core::{ConnId, ConnInfo};
use chinwag_proto::Message;

use crate::conn;
use crate::hub::Event;
use crate::limits::Permit;
use crate::listen::{host_of, Acceptor};
use crate::metrics::Transport;
use crate::outbox::Divert;

/// The ALPN protocol name that says "IRC lines on the first bidirectional stream, typing
/// notices in datagrams".
pub const ALPN: &[u8] = b"chinwag/1";

/// A peer silent this long (no packets, not even keep-alives) is gone. The core's PING timeout
/// usually notices first; this bounds a peer that vanished mid-handshake.
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

/// Binds a UDP socket (IPv6-only for IPv6 addresses, as for TCP) and makes it a QUIC endpoint.
pub(crate) fn bind(addr: SocketAddr, crypto: Arc<quinn::crypto::rustls::QuicServerConfig>) -> Result<quinn::Endpoint> {
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
    server.transport_config(Arc::new(transport));
    let runtime = Arc::new(quinn::TokioRuntime);
    quinn::Endpoint::new(quinn::EndpointConfig::default(), Some(server), socket.into(), runtime)
        .with_context(|| format!("starting QUIC on {addr}"))
}

impl Acceptor {
    /// Accepts QUIC connections until shutdown, then closes the endpoint.
    pub(crate) async fn run_quic(self, endpoint: quinn::Endpoint) {
        loop {
            let incoming = tokio::select! {
                _ = self.shutdown.cancelled() => break,
                incoming = endpoint.accept() => incoming,
            };
            let Some(incoming) = incoming else { break };
            // The same per-address, per-subnet and global limits as TCP; a refused peer gets
            // QUIC's CONNECTION_REFUSED before any handshake work.
            let permit = match self.admission.admit(incoming.remote_address().ip(), Instant::now()) {
                Ok(permit) => permit,
                Err(refusal) => {
                    tracing::debug!(ip = %incoming.remote_address().ip(), reason = refusal.text(), "QUIC connection refused");
                    incoming.refuse();
                    continue;
                }
            };
            let conn = ConnId(self.ids.fetch_add(1, Ordering::Relaxed));
            let this = self.clone();
            self.tracker.spawn(async move { this.serve_quic(incoming, conn, permit).await });
        }
        // Connections still open say goodbye through their own tasks; this waits for them,
        // within bounds.
        let _ = tokio::time::timeout(2 * CLOSE_TIMEOUT, endpoint.wait_idle()).await;
    }

    async fn serve_quic(self, incoming: quinn::Incoming, conn: ConnId, _permit: Permit) {
        let ip = incoming.remote_address().ip().to_canonical();
        let setup = async {
            let connection = incoming.accept()?.await?;
            let (send, recv) = connection.accept_bi().await?;
            Ok::<_, quinn::ConnectionError>((connection, send, recv))
        };
        let (connection, send, recv) = match tokio::time::timeout(self.limits.tls_handshake_timeout, setup).await {
            Ok(Ok(set_up)) => set_up,
            Ok(Err(e)) => return tracing::debug!(%conn, %ip, error = %e, "QUIC handshake failed"),
            Err(_) => return tracing::debug!(%conn, %ip, "QUIC handshake timed out"),
        };
        let info = ConnInfo { ip, host: host_of(ip), tls: true, quic: true };
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
        let parsed = Message::parse_bytes(line);
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
