//! An IRC client over the IRCv3 WebSocket (`/ws`), on tokio-tungstenite (another
//! implementation than the server's yawc), over TLS with the certificate pinned or plain HTTP.

use std::net::SocketAddr;

use chinwag_proto::Message;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;
use tokio_tungstenite::tungstenite::Message as Frame;
use tokio_tungstenite::WebSocketStream;

use super::{start_server, tls_connect, Stream, WAIT};

/// A server with an HTTPS and a plain HTTP web listener on loopback.
pub async fn web_server(
    tweak: impl FnOnce(&mut chinwag_server::ServerConfig),
) -> (chinwag_server::Running, tempfile::TempDir, Target, Target) {
    let (running, dir) = start_server(|cfg| {
        cfg.web.listen = vec!["127.0.0.1:0".parse().expect("addr")];
        cfg.web.listen_plain = vec!["127.0.0.1:0".parse().expect("addr")];
        tweak(cfg);
    })
    .await;
    let https = Target::https(running.web[0], &running.fingerprint);
    let http = Target::http(running.web_plain[0]);
    (running, dir, https, http)
}

/// Where and how to open `/ws`.
#[derive(Clone, Debug)]
pub struct Target {
    pub addr: SocketAddr,
    /// `Some(fingerprint)`: HTTPS with that certificate pinned; `None`: plain HTTP.
    pub tls: Option<String>,
}

impl Target {
    pub fn https(addr: SocketAddr, fingerprint: &str) -> Self {
        Target { addr, tls: Some(fingerprint.to_owned()) }
    }

    pub fn http(addr: SocketAddr) -> Self {
        Target { addr, tls: None }
    }

    /// The origin of pages this server serves on this listener.
    pub fn own_origin(&self) -> String {
        match self.tls {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    fn host(&self) -> String {
        match self.tls {
            Some(_) => format!("localhost:{}", self.addr.port()),
            None => self.addr.to_string(),
        }
    }

    /// A connected byte stream (TLS done), from `from` if given.
    pub async fn stream(&self, from: Option<std::net::IpAddr>) -> Box<dyn Stream> {
        match (&self.tls, from) {
            (Some(fp), None) => Box::new(tls_connect(self.addr, fp, None).await.expect("TLS handshake")),
            (None, None) => Box::new(tokio::net::TcpStream::connect(self.addr).await.expect("connect")),
            (None, Some(from)) => Box::new(super::connect_from(self.addr, from).await.expect("connect")),
            (Some(_), Some(_)) => unimplemented!("TLS from a chosen address"),
        }
    }

    /// One HTTP/1.1 request (`Connection: close`) and the whole raw response.
    pub async fn http_get(&self, path: &str, extra_headers: &str) -> String {
        self.http_get_as(path, &self.host(), extra_headers).await
    }

    /// [`Target::http_get`] with `host` in the `Host` header.
    pub async fn http_get_as(&self, path: &str, host: &str, extra_headers: &str) -> String {
        let mut stream = self.stream(None).await;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{extra_headers}\r\n");
        stream.write_all(request.as_bytes()).await.expect("send the request");
        let mut response = Vec::new();
        tokio::time::timeout(WAIT, stream.read_to_end(&mut response)).await.expect("answer in time").expect("read");
        String::from_utf8_lossy(&response).into_owned()
    }
}

/// The header lines of a raw response, lower-cased names, and its body.
pub fn head_and_body(response: &str) -> (String, Vec<(String, String)>, String) {
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    let mut lines = head.lines();
    let status = lines.next().unwrap_or_default().to_owned();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// A WebSocket IRC client.
pub struct WsClient {
    pub ws: WebSocketStream<Box<dyn Stream>>,
    pub name: String,
    /// Send binary messages (`binary.ircv3.net`) rather than text.
    pub binary: bool,
    /// Every line received, for failure messages.
    pub seen: Vec<String>,
    /// Kinds of the messages received: `(text, binary)`.
    pub frames: (usize, usize),
}

/// How the server ended a connection.
#[derive(Debug)]
pub enum Ended {
    /// A close frame with this code and reason.
    Closed(u16, String),
    /// The stream ended (or failed) without one.
    Gone,
}

impl WsClient {
    /// Opens `/ws` offering `protocols` (in that order), with `Origin` if given. Returns the
    /// handshake's response too; panics if it fails.
    pub async fn connect(
        target: &Target,
        protocols: &[&str],
        origin: Option<&str>,
        name: &str,
    ) -> (WsClient, Response) {
        Self::try_connect(target, None, protocols, origin, &[], name).await.expect("WebSocket handshake")
    }

    /// [`WsClient::connect`] from a chosen source address and with more headers; the error
    /// (a refused handshake) is returned.
    pub async fn try_connect(
        target: &Target,
        from: Option<std::net::IpAddr>,
        protocols: &[&str],
        origin: Option<&str>,
        headers: &[(&'static str, &str)],
        name: &str,
    ) -> Result<(WsClient, Response), tokio_tungstenite::tungstenite::Error> {
        let scheme = if target.tls.is_some() { "wss" } else { "ws" };
        let mut request = format!("{scheme}://{}/ws", target.host()).into_client_request().expect("request");
        if !protocols.is_empty() {
            request.headers_mut().insert("sec-websocket-protocol", protocols.join(", ").parse().expect("value"));
        }
        if let Some(origin) = origin {
            request.headers_mut().insert("origin", origin.parse().expect("value"));
        }
        for (k, v) in headers {
            request.headers_mut().append(*k, v.parse().expect("value"));
        }
        let stream = target.stream(from).await;
        let (ws, response) = tokio::time::timeout(
            WAIT,
            tokio_tungstenite::client_async_with_config(request, stream, Some(small_buffers())),
        )
        .await
        .expect("handshake in time")?;
        let binary = response.headers().get("sec-websocket-protocol").is_some_and(|v| v == "binary.ircv3.net");
        Ok((WsClient { ws, name: name.to_owned(), binary, seen: Vec::new(), frames: (0, 0) }, response))
    }

    /// Sends one line as one message (without CR/LF), as text or binary.
    pub async fn send(&mut self, line: &str) {
        let frame = if self.binary { Frame::binary(line.as_bytes().to_vec()) } else { Frame::text(line) };
        self.ws.send(frame).await.expect("send");
    }

    /// Sends raw bytes as one message of the connection's kind.
    pub async fn send_raw(&mut self, bytes: &[u8]) {
        let frame = if self.binary {
            Frame::binary(bytes.to_vec())
        } else {
            Frame::text(String::from_utf8(bytes.to_vec()).expect("text messages are UTF-8"))
        };
        self.ws.send(frame).await.expect("send");
    }

    /// The next IRC line, or how the connection ended. Panics after [`WAIT`].
    pub async fn next_or_end(&mut self) -> Result<Message, Ended> {
        loop {
            let frame = match tokio::time::timeout(WAIT, self.ws.next()).await {
                Err(_) => panic!("{}: no message within {WAIT:?}; saw {:#?}", self.name, self.seen),
                Ok(None) | Ok(Some(Err(_))) => return Err(Ended::Gone),
                Ok(Some(Ok(frame))) => frame,
            };
            let bytes = match frame {
                Frame::Text(text) => {
                    self.frames.0 += 1;
                    text.as_bytes().to_vec()
                }
                Frame::Binary(bytes) => {
                    self.frames.1 += 1;
                    bytes.to_vec()
                }
                Frame::Close(close) => {
                    return Err(close.map_or(Ended::Gone, |c| Ended::Closed(c.code.into(), c.reason.to_string())))
                }
                _ => continue,
            };
            let line = String::from_utf8_lossy(&bytes).into_owned();
            assert!(!line.contains(['\r', '\n']), "{}: a message holds a line end: {line:?}", self.name);
            self.seen.push(line.clone());
            return Ok(Message::parse(&line).expect("server lines parse"));
        }
    }

    /// Reads until a line satisfies `pred` and returns it.
    pub async fn expect(&mut self, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        loop {
            match self.next_or_end().await {
                Ok(m) if pred(&m) => return m,
                Ok(_) => {}
                Err(end) => {
                    panic!("{}: connection ended ({end:?}) while waiting for {what}; saw {:#?}", self.name, self.seen)
                }
            }
        }
    }

    pub async fn expect_command(&mut self, command: &str) -> Message {
        self.expect(command, |m| m.command == command).await
    }

    /// Reads until the connection ends; returns how.
    pub async fn expect_end(&mut self) -> Ended {
        loop {
            if let Err(end) = self.next_or_end().await {
                return end;
            }
        }
    }

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

/// Small read and write buffers (tungstenite's default read buffer is 128 KiB), so that a test
/// holding many idle clients measures the server rather than its clients.
fn small_buffers() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096).write_buffer_size(0)
}
