//! One client connection as the generator drives it: plaintext or TLS, registration, JOIN,
//! and reading lines cheaply.
//!
//! The hot path is receiving PRIVMSGs: a 1000-member room delivers hundreds of thousands of
//! lines per second to this process, so lines are scanned in place in the read buffer (find
//! the command, then the three numbers of the payload) without allocating. Everything else
//! (001, numerics during JOIN, CAP, ERROR) is rare and goes through `chinwag_proto`'s parser.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use chinwag_proto::Message;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::TlsConnector;

use crate::BenchError;

/// Bytes read at a time; also the longest line kept (longer ones are skipped).
const READ_BUF: usize = 16 * 1024;
/// What a message body is padded to, so lines look like chat rather than bare numbers.
const PAYLOAD_LEN: usize = 64;

/// A connection to the server, plaintext or TLS.
#[derive(Debug)]
pub(crate) enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// How to open connections: the targets' addresses and, for TLS, the connector.
#[derive(Clone)]
pub(crate) struct Dialer {
    addrs: Vec<SocketAddr>,
    tls: Option<TlsConnector>,
}

impl std::fmt::Debug for Dialer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dialer").field("addrs", &self.addrs).field("tls", &self.tls.is_some()).finish()
    }
}

impl Dialer {
    pub fn new(addrs: &[SocketAddr], tls: bool) -> Self {
        Dialer { addrs: addrs.to_vec(), tls: tls.then(crate::wire::tls_connector) }
    }

    /// Connects to the target with this index (see [`crate::Options::target_of`]).
    pub async fn dial(&self, target: usize) -> Result<Stream, BenchError> {
        let Some(&addr) = self.addrs.get(target) else {
            return Err(BenchError::Options(format!("no target number {target}")));
        };
        let err = |source| BenchError::Connect { addr, source };
        let tcp = TcpStream::connect(addr).await.map_err(err)?;
        // Both sides batch their own writes; Nagle would only add latency.
        tcp.set_nodelay(true).map_err(err)?;
        match &self.tls {
            None => Ok(Stream::Plain(tcp)),
            Some(connector) => {
                let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
                let tls = connector.connect(name, tcp).await.map_err(err)?;
                Ok(Stream::Tls(Box::new(tls)))
            }
        }
    }
}

/// A line as the generator cares about it.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    /// A PRIVMSG carrying our payload.
    Payload(Payload),
    /// A PING; the argument is what to send back.
    Ping(&'a [u8]),
    /// Anything else: the command and the whole line.
    Other(&'a [u8], &'a [u8]),
}

/// What each benchmark message carries: who sent it, its number, and when (microseconds since
/// the run's start, on this process's monotonic clock, so sender and receiver agree).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    pub sender: u32,
    pub seq: u64,
    pub sent_us: u64,
}

impl Payload {
    /// Appends `PRIVMSG target :sender seq time pad…` and CRLF.
    pub fn write_privmsg(&self, target: &str, out: &mut Vec<u8>) {
        use std::io::Write as _;
        let start = out.len();
        let _ = write!(out, "PRIVMSG {target} :{} {} {} ", self.sender, self.seq, self.sent_us);
        let body = out.len() - start;
        out.resize(start + body.max(PAYLOAD_LEN), b'x');
        out.extend_from_slice(b"\r\n");
    }
}

/// Splits a line into what we need, without allocating. Tags and source are skipped.
pub(crate) fn classify(line: &[u8]) -> Line<'_> {
    let mut rest = line;
    if rest.first() == Some(&b'@') {
        rest = after_space(rest);
    }
    if rest.first() == Some(&b':') {
        rest = after_space(rest);
    }
    let end = rest.iter().position(|&b| b == b' ').unwrap_or(rest.len());
    let (command, args) = (&rest[..end], rest.get(end + 1..).unwrap_or_default());
    match command {
        b"PRIVMSG" => match parse_payload(args) {
            Some(p) => Line::Payload(p),
            None => Line::Other(command, line),
        },
        b"PING" => Line::Ping(args),
        _ => Line::Other(command, line),
    }
}

fn after_space(s: &[u8]) -> &[u8] {
    match s.iter().position(|&b| b == b' ') {
        Some(i) => &s[i + 1..],
        None => &[],
    }
}

/// `target :sender seq time …` → the three numbers.
fn parse_payload(args: &[u8]) -> Option<Payload> {
    let colon = args.windows(2).position(|w| w == b" :")?;
    let mut fields = args[colon + 2..].split(|&b| b == b' ');
    let mut number = || -> Option<u64> {
        let field = fields.next()?;
        if field.is_empty() || field.len() > 19 {
            return None;
        }
        field.iter().try_fold(0u64, |n, &b| b.is_ascii_digit().then(|| n * 10 + u64::from(b - b'0')))
    };
    let sender = u32::try_from(number()?).ok()?;
    Some(Payload { sender, seq: number()?, sent_us: number()? })
}

/// A connection with its read buffer and pending output.
#[derive(Debug)]
pub(crate) struct Conn {
    pub stream: Stream,
    buf: Vec<u8>,
    /// Size `buf` grows to: lines longer than this are skipped.
    cap: usize,
    /// Bytes of `buf` that hold data.
    filled: usize,
    /// Whether we are skipping the rest of an over-long line.
    skipping: bool,
    /// Bytes to send at the next flush (PONGs, messages).
    pub out: Vec<u8>,
}

impl Conn {
    pub fn new(stream: Stream) -> Self {
        Conn { stream, buf: Vec::new(), cap: READ_BUF, filled: 0, skipping: false, out: Vec::new() }
    }

    /// Uses a read buffer of `cap` bytes from now on: idle connections, which only ever see
    /// PINGs, need little, and ten thousand of them should not cost the generator 160 MB.
    pub fn set_buffer(&mut self, cap: usize) {
        self.cap = cap.max(512);
        if self.filled <= self.cap {
            self.buf.truncate(self.cap.max(self.filled));
            self.buf.shrink_to_fit();
        }
    }

    /// Reads once and calls `each` for every complete line (PINGs are answered into `out`
    /// first). Returns false at end of stream. Cancel-safe: nothing is lost if the read future
    /// is dropped before it completes.
    pub async fn read_some(&mut self) -> io::Result<bool> {
        if self.buf.len() < self.cap {
            self.buf.resize(self.cap, 0);
        }
        if self.filled == self.buf.len() {
            // A line longer than the whole buffer: drop what we have and skip to its end.
            self.filled = 0;
            self.skipping = true;
        }
        let n = self.stream.read(&mut self.buf[self.filled..]).await?;
        self.filled += n;
        Ok(n > 0)
    }

    /// Calls `each` for every complete line read so far and keeps the unfinished rest.
    pub fn lines(&mut self, mut each: impl FnMut(Line<'_>, &mut Vec<u8>)) {
        let mut start = 0;
        while let Some(nl) = self.buf[start..self.filled].iter().position(|&b| b == b'\n') {
            let mut line = &self.buf[start..start + nl];
            start += nl + 1;
            if std::mem::take(&mut self.skipping) {
                continue;
            }
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            match classify(line) {
                Line::Ping(arg) => {
                    self.out.extend_from_slice(b"PONG ");
                    self.out.extend_from_slice(arg);
                    self.out.extend_from_slice(b"\r\n");
                }
                other => each(other, &mut self.out),
            }
        }
        self.buf.copy_within(start..self.filled, 0);
        self.filled -= start;
    }

    /// Writes and clears `out`.
    pub async fn flush(&mut self) -> io::Result<()> {
        if !self.out.is_empty() {
            self.stream.write_all(&self.out).await?;
            self.out.clear();
        }
        Ok(())
    }

    /// Sends `lines`, then reads until `done` says the wanted reply came (true), answering
    /// PINGs. A reply that means refusal (ERROR, or a numeric `fatal` recognises) fails.
    pub async fn exchange(
        &mut self,
        lines: &str,
        timeout: Duration,
        mut done: impl FnMut(&Message) -> Step,
    ) -> Result<(), BenchError> {
        self.out.extend_from_slice(lines.as_bytes());
        let work = async {
            loop {
                self.flush().await.map_err(|e| BenchError::Setup(format!("write: {e}")))?;
                if !self.read_some().await.map_err(|e| BenchError::Setup(format!("read: {e}")))? {
                    return Err(BenchError::Setup("the server closed the connection".into()));
                }
                let mut outcome = None;
                let mut extra = String::new();
                self.lines(|line, _| {
                    let Line::Other(_, raw) = line else { return };
                    if outcome.is_some() {
                        return;
                    }
                    let Ok(msg) = Message::parse_bytes(raw) else { return };
                    if msg.command.eq_ignore_ascii_case("ERROR") {
                        outcome = Some(Err(format!("ERROR {}", msg.params.join(" "))));
                        return;
                    }
                    match done(&msg) {
                        Step::Wait => {}
                        Step::Done => outcome = Some(Ok(())),
                        Step::Send(more) => extra.push_str(&more),
                        Step::Fail(why) => outcome = Some(Err(why)),
                    }
                });
                self.out.extend_from_slice(extra.as_bytes());
                match outcome {
                    Some(Ok(())) => return self.flush().await.map_err(|e| BenchError::Setup(format!("write: {e}"))),
                    Some(Err(why)) => return Err(BenchError::Setup(why)),
                    None => {}
                }
            }
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(BenchError::Setup(format!("no answer within {timeout:?}"))))
    }

    /// NICK/USER (and `CAP REQ` first when `caps` is not empty), then waits for 001.
    pub async fn register(&mut self, nick: &str, caps: &str, timeout: Duration) -> Result<(), BenchError> {
        let mut hello = String::new();
        if !caps.is_empty() {
            hello.push_str(&format!("CAP REQ :{caps}\r\n"));
        }
        hello.push_str(&format!("NICK {nick}\r\nUSER {nick} 0 * :chinwag bench\r\n"));
        self.exchange(&hello, timeout, |msg| match msg.command.as_str() {
            "001" => Step::Done,
            "CAP" if msg.params.get(1).is_some_and(|p| p == "ACK") => Step::Send("CAP END\r\n".into()),
            "CAP" if msg.params.get(1).is_some_and(|p| p == "NAK") => {
                Step::Fail(format!("the server does not offer the capability {caps}"))
            }
            code => fatal(code, msg),
        })
        .await
    }

    /// JOINs `channel` and waits for the end of its NAMES list.
    pub async fn join(&mut self, channel: &str, timeout: Duration) -> Result<(), BenchError> {
        self.exchange(&format!("JOIN {channel}\r\n"), timeout, |msg| match msg.command.as_str() {
            "366" => Step::Done,
            code => fatal(code, msg),
        })
        .await
    }
}

/// What a set-up exchange does with one reply.
#[derive(Debug)]
pub(crate) enum Step {
    Wait,
    Done,
    /// Send these lines and keep waiting.
    Send(String),
    Fail(String),
}

/// Numerics that mean the server refused what we asked during set-up.
fn fatal(code: &str, msg: &Message) -> Step {
    const REFUSALS: &[&str] =
        &["403", "405", "431", "432", "433", "436", "437", "451", "461", "465", "471", "473", "474", "475", "477"];
    if REFUSALS.contains(&code) {
        Step::Fail(format!("the server answered {}", msg.to_line()))
    } else {
        Step::Wait
    }
}

/// A TLS connector that accepts any certificate: targets are loopback only, and what is
/// measured is the cost of TLS, not who signed the certificate.
fn tls_connector() -> TlsConnector {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map(|builder| {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth()
        });
    match config {
        Ok(config) => TlsConnector::from(Arc::new(config)),
        // The ring provider always supports the default versions; this is unreachable.
        Err(e) => unreachable!("ring provider lacks default TLS versions: {e}"),
    }
}

/// Accepts any server certificate (signatures are still verified): a load generator measures
/// the cost of TLS against a loopback server, not who signed its certificate. Also used by
/// `chinwag bench transports` for TLS and QUIC.
#[derive(Debug)]
pub struct AnyCertificate(pub Arc<rustls::crypto::CryptoProvider>);

impl rustls::client::danger::ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls::pki_types::CertificateDer<'_>,
        _intermediates: &[rustls::pki_types::CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_through_a_relayed_line() {
        let p = Payload { sender: 7, seq: 123_456, sent_us: 99 };
        let mut out = Vec::new();
        p.write_privmsg("#room", &mut out);
        assert!(out.len() >= PAYLOAD_LEN && out.ends_with(b"\r\n"));
        let relayed = [b"@time=x :a!b@c ".as_slice(), &out[..out.len() - 2]].concat();
        assert_eq!(classify(&relayed), Line::Payload(p));
    }

    #[test]
    fn other_lines_are_not_payloads() {
        assert_eq!(classify(b"PING :abc"), Line::Ping(b":abc"));
        assert!(matches!(classify(b":s PRIVMSG #r :hello there"), Line::Other(b"PRIVMSG", _)));
        assert!(matches!(classify(b":s 001 me :Welcome"), Line::Other(b"001", _)));
        assert!(matches!(classify(b""), Line::Other(b"", _)));
    }
}
