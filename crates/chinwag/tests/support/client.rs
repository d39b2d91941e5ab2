//! A blocking IRC client for tests: plaintext or TLS with the server's certificate pinned by
//! fingerprint (what a trust-on-first-use client does). Every read has a deadline, and every
//! failure report carries the lines this client received.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chinwag_proto::Message;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::WAIT;

/// How long one socket read blocks before the deadline is checked again.
const POLL: Duration = Duration::from_millis(100);
/// How many received lines a client keeps for its failure report.
const TRANSCRIPT_LINES: usize = 300;

/// What a client talks over: a TCP stream, or TLS on one.
pub trait Transport: Read + Write {
    /// The TCP stream underneath, for addresses and timeouts.
    fn tcp(&self) -> &TcpStream;
}

impl Transport for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Transport for StreamOwned<ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

pub type PlainClient = Client<TcpStream>;
pub type TlsClient = Client<StreamOwned<ClientConnection, TcpStream>>;

/// What one read brought.
#[derive(Debug)]
pub enum Incoming {
    Line(Message),
    /// The server closed the connection.
    Closed,
    /// Nothing complete arrived before the deadline.
    TimedOut,
    /// The connection failed (reset, TLS error, ...).
    Failed(io::Error),
}

/// One IRC connection.
#[derive(Debug)]
pub struct Client<S> {
    /// Who this is in failure reports.
    pub name: String,
    stream: S,
    /// Bytes received but not yet a whole line.
    pending: Vec<u8>,
    /// The last lines received (`<-`) and sent (`->`), for failure reports.
    transcript: VecDeque<String>,
}

impl PlainClient {
    /// Connects in clear. Panics if the connection cannot be made.
    pub fn plain(addr: SocketAddr, name: &str) -> Self {
        let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("{name}: connect to {addr}: {e}"));
        Self::over(tcp, name)
    }

    /// The socket itself, e.g. to clone a writing half for another thread.
    pub fn socket(&self) -> &TcpStream {
        &self.stream
    }
}

impl TlsClient {
    /// Connects with TLS, accepting only the certificate with this SHA-256 `fingerprint`
    /// (`AB:CD:…`), and completes the handshake. Panics if either fails.
    pub fn tls(addr: SocketAddr, fingerprint: &str, name: &str) -> Self {
        // The terminal client's own check: the pinned fingerprint (or a CA, which a test
        // server never has).
        let (config, _) =
            chinwag_client::tls::client_config(Some(fingerprint.to_owned())).expect("a TLS client configuration");
        let server_name = ServerName::try_from("chinwag.local").expect("a valid DNS name");
        let conn = ClientConnection::new(Arc::new(config), server_name).expect("a TLS client connection");
        let tcp = TcpStream::connect_timeout(&addr, WAIT).unwrap_or_else(|e| panic!("{name}: connect to {addr}: {e}"));
        tcp.set_read_timeout(Some(WAIT)).expect("set a read timeout");
        let mut stream = StreamOwned::new(conn, tcp);
        while stream.conn.is_handshaking() {
            if let Err(e) = stream.conn.complete_io(&mut stream.sock) {
                panic!("{name}: TLS handshake with {addr} failed: {e}");
            }
        }
        Self::over(stream, name)
    }
}

impl<S: Transport> Client<S> {
    fn over(stream: S, name: &str) -> Self {
        stream.tcp().set_read_timeout(Some(POLL)).expect("set a read timeout");
        stream.tcp().set_write_timeout(Some(WAIT)).expect("set a write timeout");
        Client { name: name.to_owned(), stream, pending: Vec::new(), transcript: VecDeque::new() }
    }

    /// Our end of the connection: the address the server sees as the peer.
    pub fn local_addr(&self) -> SocketAddr {
        self.stream.tcp().local_addr().expect("a connected socket has a local address")
    }

    /// Sends one line (CRLF added). Panics if the write fails.
    pub fn send(&mut self, line: &str) {
        self.note(format!("-> {line}"));
        let result = self.stream.write_all(format!("{line}\r\n").as_bytes()).and_then(|()| self.stream.flush());
        if let Err(e) = result {
            self.fail(&format!("sending {line:?} failed: {e}"));
        }
    }

    /// The next line, waiting until `deadline`.
    pub fn read(&mut self, deadline: Instant) -> Incoming {
        loop {
            if let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
                let raw: Vec<u8> = self.pending.drain(..=end).collect();
                let line = String::from_utf8_lossy(&raw).trim_end_matches(['\r', '\n']).to_owned();
                self.note(format!("<- {line}"));
                match Message::parse(&line) {
                    Ok(message) => return Incoming::Line(message),
                    Err(e) => self.fail(&format!("the server sent an unparsable line ({e:?}): {line:?}")),
                }
            }
            if Instant::now() >= deadline {
                return Incoming::TimedOut;
            }
            let mut chunk = [0u8; 4096];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Incoming::Closed,
                Ok(n) => self.pending.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Incoming::Failed(e),
            }
        }
    }

    /// The next line; `None` if the server closed the connection. Panics after [`WAIT`].
    pub fn next(&mut self) -> Option<Message> {
        match self.read(Instant::now() + WAIT) {
            Incoming::Line(message) => Some(message),
            Incoming::Closed => None,
            Incoming::TimedOut => self.fail(&format!("no line within {WAIT:?}")),
            Incoming::Failed(e) => self.fail(&format!("reading failed: {e}")),
        }
    }

    /// Reads until a line satisfies `pred` and returns every line read, that one last.
    pub fn read_until(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Vec<Message> {
        let mut lines = Vec::new();
        loop {
            match self.next() {
                Some(message) => {
                    let done = pred(&message);
                    lines.push(message);
                    if done {
                        return lines;
                    }
                }
                None => self.fail(&format!("connection closed while waiting for {what}")),
            }
        }
    }

    /// Reads until a line satisfies `pred` and returns it.
    pub fn expect(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        let mut lines = self.read_until(what, pred);
        lines.pop().expect("read_until returns at least the matching line")
    }

    pub fn expect_command(&mut self, command: &str) -> Message {
        self.expect(command, |m| m.command == command)
    }

    /// NICK and USER, then the welcome burst up to the end of the MOTD.
    pub fn register(&mut self, nick: &str) {
        self.send(&format!("NICK {nick}"));
        self.send(&format!("USER {nick} 0 * :{nick}"));
        self.expect_command("001");
        self.expect_end_of_motd();
    }

    pub fn expect_end_of_motd(&mut self) -> Vec<Message> {
        self.read_until("end of MOTD (376 or 422)", |m| m.command == "376" || m.command == "422")
    }

    /// JOIN and wait for the end of NAMES.
    pub fn join(&mut self, channel: &str) {
        self.send(&format!("JOIN {channel}"));
        self.expect("end of NAMES (366)", |m| m.command == "366");
    }

    /// The messages (PRIVMSG, NOTICE, TAGMSG) of the next `chathistory` batch, in order; fails
    /// the test on a `FAIL` or another batch.
    pub fn history_batch(&mut self) -> Vec<Message> {
        let start = self.expect("BATCH + chathistory or FAIL", |m| {
            m.command == "FAIL" || (m.command == "BATCH" && m.params.first().is_some_and(|p| p.starts_with('+')))
        });
        if start.command == "FAIL" || start.params.get(1).map(String::as_str) != Some("chathistory") {
            self.fail(&format!("expected a chathistory batch, got {start:?}"));
        }
        let id = start.params[0][1..].to_owned();
        let mut messages = Vec::new();
        loop {
            let Some(m) = self.next() else { self.fail("connection closed inside a chathistory batch") };
            if m.command == "BATCH" && m.params.first().is_some_and(|p| p.strip_prefix('-') == Some(&id)) {
                return messages;
            }
            if m.tag("batch") == Some(&id) && matches!(m.command.as_str(), "PRIVMSG" | "NOTICE" | "TAGMSG") {
                messages.push(m);
            }
        }
    }

    /// Every message of `target`'s history, oldest first, read newest page first with
    /// `CHATHISTORY LATEST` and `BEFORE` (pages of `page`, the server's `CHATHISTORY` limit or
    /// less), at most `pages` pages. Needs `draft/chathistory`, `batch` and `message-tags`.
    pub fn history(&mut self, target: &str, page: usize, pages: usize) -> Vec<Message> {
        let mut read: Vec<Vec<Message>> = Vec::new();
        for _ in 0..pages {
            match read.last().and_then(|newer| newer.first()).and_then(|oldest| oldest.tag("msgid")) {
                None => self.send(&format!("CHATHISTORY LATEST {target} * {page}")),
                Some(msgid) => self.send(&format!("CHATHISTORY BEFORE {target} msgid={msgid} {page}")),
            }
            let batch = self.history_batch();
            let last = batch.len() < page;
            read.push(batch);
            if last {
                return read.into_iter().rev().flatten().collect();
            }
        }
        self.fail(&format!("{target}'s history is longer than {pages} pages of {page}"))
    }

    /// `CAP LS 302`, `CAP REQ` for `caps`, and waits for the ACK (a NAK fails the test).
    /// Registration stays on hold until [`Client::send`]`("CAP END")`.
    pub fn request_caps(&mut self, caps: &str) {
        self.send("CAP LS 302");
        self.send(&format!("CAP REQ :{caps}"));
        let reply = self.expect("CAP ACK or NAK", |m| {
            m.command == "CAP" && m.params.get(1).is_some_and(|verb| verb == "ACK" || verb == "NAK")
        });
        if reply.params[1] != "ACK" {
            self.fail(&format!("the server refused capabilities {caps:?}"));
        }
    }

    /// The last lines sent and received, one per line, indented.
    pub fn transcript(&self) -> String {
        self.transcript_tail(TRANSCRIPT_LINES)
    }

    /// The last `lines` lines sent and received, one per line, indented.
    pub fn transcript_tail(&self, lines: usize) -> String {
        let skip = self.transcript.len().saturating_sub(lines);
        self.transcript.iter().skip(skip).fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "  {line}");
            out
        })
    }

    /// Fails the test, saying what this client saw.
    pub fn fail(&self, why: &str) -> ! {
        panic!("{}: {why}\nits last lines:\n{}", self.name, self.transcript())
    }

    fn note(&mut self, line: String) {
        if self.transcript.len() == TRANSCRIPT_LINES {
            self.transcript.pop_front();
        }
        self.transcript.push_back(line);
    }
}

/// SASL PLAIN's payload for `AUTHENTICATE`: base64 of `\0account\0password`.
pub fn sasl_plain(account: &str, password: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}
