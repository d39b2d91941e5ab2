//! A real IRC client for integration tests: plaintext or TLS (with the server's certificate
//! pinned by fingerprint), reading lines with timeouts.

#![allow(dead_code)]

pub mod raw_quic;
pub mod ws;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use chinwag_proto::Message;
use chinwag_server::{Running, ServerConfig};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;

/// How long any single expectation waits before the test fails.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server on loopback port 0 with its data in a temporary directory.
pub async fn start_server(tweak: impl FnOnce(&mut ServerConfig)) -> (Running, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.quic_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    tweak(&mut cfg);
    let running = chinwag_server::start(cfg).await.expect("server starts");
    (running, dir)
}

pub trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

pub struct Client {
    reader: BufReader<ReadHalf<Box<dyn Stream>>>,
    writer: WriteHalf<Box<dyn Stream>>,
    pub name: String,
    /// Every line received, for failure messages.
    pub seen: Vec<String>,
}

impl Client {
    pub async fn plain(addr: SocketAddr, name: &str) -> Client {
        let tcp = TcpStream::connect(addr).await.expect("connect");
        Self::wrap(Box::new(tcp), name)
    }

    /// A plaintext connection from a chosen local address (any of 127.0.0.0/8 works on Linux),
    /// so that tests can play several peers.
    pub async fn plain_from(addr: SocketAddr, from: std::net::IpAddr, name: &str) -> Client {
        let tcp = connect_from(addr, from).await.expect("connect");
        Self::wrap(Box::new(tcp), name)
    }

    /// A TLS connection that accepts only a certificate with this SHA-256 fingerprint.
    pub async fn tls(addr: SocketAddr, fingerprint: &str, name: &str) -> Client {
        let stream = tls_connect(addr, fingerprint, None).await.expect("TLS handshake");
        Self::wrap(Box::new(stream), name)
    }

    /// A QUIC connection (certificate pinned by fingerprint) with its first stream as the IRC
    /// stream; also returns the connection (for datagrams) and the endpoint (to rebind it).
    pub async fn quic(addr: SocketAddr, fingerprint: &str, name: &str) -> (Client, quinn::Connection, quinn::Endpoint) {
        Self::quic_with(addr, quic_client_config(fingerprint), name).await
    }

    /// [`Client::quic`] with a client configuration of the caller's (a client certificate).
    pub async fn quic_with(
        addr: SocketAddr,
        config: quinn::ClientConfig,
        name: &str,
    ) -> (Client, quinn::Connection, quinn::Endpoint) {
        let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
        endpoint.set_default_client_config(config);
        let connection = endpoint.connect(addr, "localhost").expect("connect").await.expect("QUIC handshake");
        let (send, recv) = connection.open_bi().await.expect("open the stream");
        let client = Self::wrap(Box::new(tokio::io::join(recv, send)), name);
        (client, connection, endpoint)
    }

    /// A client on a stream set up by the caller.
    pub fn from_stream(stream: Box<dyn Stream>, name: &str) -> Client {
        Self::wrap(stream, name)
    }

    fn wrap(stream: Box<dyn Stream>, name: &str) -> Client {
        let (r, w) = tokio::io::split(stream);
        Client { reader: BufReader::new(r), writer: w, name: name.to_owned(), seen: Vec::new() }
    }

    pub async fn send(&mut self, line: &str) {
        self.send_raw(format!("{line}\r\n").as_bytes()).await;
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).await.expect("write");
        self.writer.flush().await.expect("flush");
    }

    /// The next line, or `None` at end of stream. Panics after [`WAIT`].
    pub async fn next(&mut self) -> Option<Message> {
        let mut line = String::new();
        let read = tokio::time::timeout(WAIT, self.reader.read_line(&mut line)).await;
        match read {
            Err(_) => panic!("{}: no line within {WAIT:?}; saw {:#?}", self.name, self.seen),
            Ok(Err(e)) => panic!("{}: read failed: {e}", self.name),
            Ok(Ok(0)) => None,
            Ok(Ok(_)) => {
                self.seen.push(line.trim_end().to_owned());
                Some(Message::parse(&line).expect("server lines parse"))
            }
        }
    }

    /// Reads until a line satisfies `pred` and returns it.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        loop {
            match self.next().await {
                Some(m) if pred(&m) => return m,
                Some(_) => {}
                None => panic!("{}: connection closed while waiting for {what}; saw {:#?}", self.name, self.seen),
            }
        }
    }

    pub async fn expect_command(&mut self, command: &str) -> Message {
        self.expect(command, |m| m.command == command).await
    }

    /// Reads until the server closes the connection, returning the lines read.
    pub async fn expect_closed(&mut self) -> Vec<Message> {
        let mut lines = Vec::new();
        while let Some(m) = self.next().await {
            lines.push(m);
        }
        lines
    }

    /// NICK + USER and the welcome burst up to the end of MOTD.
    pub async fn register(&mut self, nick: &str) {
        self.send(&format!("NICK {nick}")).await;
        self.send(&format!("USER {nick} 0 * :{nick}")).await;
        self.expect_command("001").await;
        self.expect_command("376").await;
    }

    pub async fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}")).await;
        self.expect_command("366").await;
    }
}

/// A TCP connection to `addr` whose source address is `from`.
pub async fn connect_from(addr: SocketAddr, from: std::net::IpAddr) -> std::io::Result<TcpStream> {
    let socket = if from.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.bind(SocketAddr::new(from, 0))?;
    socket.connect(addr).await
}

pub async fn tls_connect(
    addr: SocketAddr,
    fingerprint: &str,
    version: Option<&'static rustls::SupportedProtocolVersion>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let versions: Vec<&'static rustls::SupportedProtocolVersion> = match version {
        Some(v) => vec![v],
        None => vec![&rustls::version::TLS13, &rustls::version::TLS12],
    };
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&versions)
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { fingerprint: fingerprint.to_owned(), provider }))
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from("localhost").expect("name");
    connector.connect(name, tcp).await
}

/// A TLS connection (server pinned by fingerprint) that presents a client certificate.
pub async fn tls_with_client_cert(
    addr: SocketAddr,
    fingerprint: &str,
    cert: CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
    name: &str,
) -> Client {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { fingerprint: fingerprint.to_owned(), provider }))
        .with_client_auth_cert(vec![cert], key)
        .expect("client certificate");
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let server = ServerName::try_from("localhost").expect("name");
    let stream = connector.connect(server, tcp).await.expect("TLS handshake");
    Client::from_stream(Box::new(stream), name)
}

/// A QUIC client configuration that pins the server's certificate and speaks chinwag's ALPN.
pub fn quic_client_config(fingerprint: &str) -> quinn::ClientConfig {
    quic_config(fingerprint, None)
}

/// [`quic_client_config`], presenting a client certificate (for SASL EXTERNAL) if given.
pub fn quic_config(
    fingerprint: &str,
    client_cert: Option<(CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>)>,
) -> quinn::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned { fingerprint: fingerprint.to_owned(), provider }));
    let mut config = match client_cert {
        Some((cert, key)) => builder.with_client_auth_cert(vec![cert], key).expect("client certificate"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![chinwag_server::QUIC_ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(config).expect("QUIC client crypto");
    quinn::ClientConfig::new(Arc::new(crypto))
}

/// Trust exactly one certificate, by SHA-256 fingerprint (what a TOFU client does).
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if chinwag_server::fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("certificate fingerprint does not match the pinned one".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}
