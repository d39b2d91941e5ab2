//! The byte stream under the IRC lines: TCP, TLS on TCP, or the first bidirectional stream of a
//! QUIC connection, as variants of one enum so that everything above reads and writes the same
//! way. QUIC also carries typing notices as datagrams; [`Transport::datagrams`] hands the
//! driver the connection for those.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::endpoint::{Endpoint, Security};
use crate::tls::{self, Trust};

/// The ALPN name chinwag's QUIC listener speaks: IRC lines on the first bidirectional stream,
/// `+typing` TAGMSGs in datagrams (the server's `QUIC_ALPN`).
pub const QUIC_ALPN: &[u8] = b"chinwag/1";

/// How long the TCP connection and the TLS handshake together may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// An open connection to a server.
#[derive(Debug)]
pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
    Quic(Box<QuicStream>),
}

/// A QUIC connection and its IRC stream.
#[derive(Debug)]
pub struct QuicStream {
    connection: quinn::Connection,
    send: quinn::SendStream,
    recv: quinn::RecvStream,
    /// The local UDP endpoint; it must outlive the connection.
    _endpoint: quinn::Endpoint,
}

impl Transport {
    /// The QUIC connection, for datagrams; `None` on TCP and TLS.
    pub fn datagrams(&self) -> Option<quinn::Connection> {
        match self {
            Transport::Quic(q) => Some(q.connection.clone()),
            _ => None,
        }
    }
}

/// What the TLS handshake established.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TlsInfo {
    /// The leaf certificate's SHA-256, `AB:CD:…`.
    pub fingerprint: String,
    /// Why we trusted it.
    pub trust: Trust,
}

/// Why a connection could not be made. Shown to users.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("cannot reach {server}: {source}")]
    Io { server: String, source: io::Error },
    #[error("{server} did not answer within {CONNECT_TIMEOUT:?}")]
    Timeout { server: String },
    /// The certificate is neither signed by a CA for this name nor the pinned one. The caller
    /// compares the fingerprint with the known-servers file to tell "new" from "changed".
    #[error("{server} presented a certificate that is not trusted (SHA-256 {fingerprint})")]
    Untrusted { server: String, fingerprint: String },
    #[error("TLS with {server} failed: {reason}")]
    Tls { server: String, reason: String },
}

/// Opens a connection to `endpoint`. With TLS, the certificate must be CA-signed for the host
/// name or have the `pinned` fingerprint.
pub async fn connect(
    endpoint: &Endpoint,
    pinned: Option<String>,
) -> Result<(Transport, Option<TlsInfo>), ConnectError> {
    let server = endpoint.key();
    match tokio::time::timeout(CONNECT_TIMEOUT, connect_inner(endpoint, pinned)).await {
        Ok(result) => result,
        Err(_) => Err(ConnectError::Timeout { server }),
    }
}

async fn connect_inner(
    endpoint: &Endpoint,
    pinned: Option<String>,
) -> Result<(Transport, Option<TlsInfo>), ConnectError> {
    let server = endpoint.key();
    if endpoint.security == Security::Quic {
        return connect_quic(endpoint, pinned).await;
    }
    let tcp = TcpStream::connect((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(|source| ConnectError::Io { server: server.clone(), source })?;
    // Chat lines are small and should leave at once.
    let _ = tcp.set_nodelay(true);
    if endpoint.security == Security::Plaintext {
        return Ok((Transport::Tcp(tcp), None));
    }
    let (config, seen) =
        tls::client_config(pinned).map_err(|e| ConnectError::Tls { server: server.clone(), reason: e.to_string() })?;
    let name = ServerName::try_from(endpoint.host.clone())
        .map_err(|e| ConnectError::Tls { server: server.clone(), reason: format!("bad server name: {e}") })?;
    let result = TlsConnector::from(Arc::new(config)).connect(name, tcp).await;
    let seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    match (result, seen.fingerprint, seen.trust) {
        (Ok(stream), Some(fingerprint), Some(trust)) => {
            Ok((Transport::Tls(Box::new(stream)), Some(TlsInfo { fingerprint, trust })))
        }
        (_, Some(fingerprint), None) => Err(ConnectError::Untrusted { server, fingerprint }),
        (Ok(_), _, _) => Err(ConnectError::Tls { server, reason: "the certificate was never checked".into() }),
        (Err(e), _, _) => Err(ConnectError::Tls { server, reason: e.to_string() }),
    }
}

/// The QUIC handshake with the same certificate check as TLS (QUIC is TLS 1.3 inside), then the
/// IRC stream.
async fn connect_quic(
    endpoint: &Endpoint,
    pinned: Option<String>,
) -> Result<(Transport, Option<TlsInfo>), ConnectError> {
    let server = endpoint.key();
    let tls_error = |reason: String| ConnectError::Tls { server: server.clone(), reason };
    let io_error = |source: io::Error| ConnectError::Io { server: server.clone(), source };
    let addr = tokio::net::lookup_host((endpoint.host.as_str(), endpoint.port))
        .await
        .map_err(io_error)?
        .next()
        .ok_or_else(|| io_error(io::Error::new(io::ErrorKind::NotFound, "the name has no address")))?;
    let (mut config, seen) = tls::client_config(pinned).map_err(|e| tls_error(e.to_string()))?;
    config.alpn_protocols = vec![QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).map_err(|e| tls_error(e.to_string()))?;
    let local: std::net::SocketAddr = if addr.is_ipv6() { ([0u16; 8], 0).into() } else { ([0u8; 4], 0).into() };
    let mut quic = quinn::Endpoint::client(local).map_err(io_error)?;
    quic.set_default_client_config(quinn::ClientConfig::new(Arc::new(crypto)));
    let connecting = quic.connect(addr, &endpoint.host).map_err(|e| tls_error(e.to_string()))?;
    let result = connecting.await;
    let seen = seen.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let connection = match (result, seen.fingerprint.clone(), seen.trust) {
        (Ok(connection), Some(_), Some(_)) => connection,
        (_, Some(fingerprint), None) => return Err(ConnectError::Untrusted { server, fingerprint }),
        (Ok(_), _, _) => return Err(tls_error("the certificate was never checked".into())),
        (Err(e), _, _) => return Err(tls_error(e.to_string())),
    };
    let (send, recv) = connection.open_bi().await.map_err(|e| tls_error(e.to_string()))?;
    let (Some(fingerprint), Some(trust)) = (seen.fingerprint, seen.trust) else {
        return Err(tls_error("the certificate was never checked".into()));
    };
    let stream = QuicStream { connection, send, recv, _endpoint: quic };
    Ok((Transport::Quic(Box::new(stream)), Some(TlsInfo { fingerprint, trust })))
}

impl AsyncRead for Transport {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            Transport::Quic(q) => Pin::new(&mut q.recv).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Transport {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            Transport::Quic(q) => AsyncWrite::poll_write(Pin::new(&mut q.send), cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_flush(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            Transport::Quic(q) => Pin::new(&mut q.send).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Transport::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Transport::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            Transport::Quic(q) => Pin::new(&mut q.send).poll_shutdown(cx),
        }
    }
}
