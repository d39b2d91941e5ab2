//! A WebSocket as a byte stream, so that it runs through the same reader, outbound queue and
//! core as a TCP connection (`conn::serve`): each incoming message becomes its bytes and
//! `\r\n`; the bytes the writer sends are cut at line ends, and each line leaves as one
//! message (IRCv3 WebSocket: one line per message, without CR or LF).

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use futures_util::Sink;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use yawc::close::CloseCode;
use yawc::{Frame, HttpWebSocket, OpCode};

/// The subprotocol agreed on in the handshake (`Sec-WebSocket-Protocol`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `binary.ircv3.net`: binary messages, any bytes.
    Binary,
    /// `text.ircv3.net`, or no subprotocol: text messages, which must be UTF-8, so bytes that
    /// are not are sent as U+FFFD.
    Text,
}

impl Mode {
    pub const BINARY: &'static str = "binary.ircv3.net";
    pub const TEXT: &'static str = "text.ircv3.net";

    /// The first subprotocol of the client's list (its order of preference) that we speak;
    /// `None` if it offered neither (text messages then, without a `Sec-WebSocket-Protocol`).
    pub fn choose<'a>(offered: impl Iterator<Item = &'a str>) -> Option<Mode> {
        offered.map(str::trim).find_map(|p| match p {
            Self::BINARY => Some(Mode::Binary),
            Self::TEXT => Some(Mode::Text),
            _ => None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Mode::Binary => Self::BINARY,
            Mode::Text => Self::TEXT,
        }
    }
}

/// Why the connection is being ended, told to the client in the close frame.
const ONE_LINE: &str = "one IRC line per message, without CR or LF";
/// Pings a client may send in one [`PING_WINDOW`]. yawc queues a pong for each ping until the
/// next write, so a client that pings without reading would make the server hold pongs without
/// bound; past this it is closed (1008). Browsers never send pings from a page.
const MAX_PINGS: u32 = 20;
const PING_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
const TOO_MANY_PINGS: &str = "too many pings";

/// One WebSocket connection as `AsyncRead + AsyncWrite`.
pub(crate) struct WsStream {
    ws: HttpWebSocket,
    mode: Mode,
    /// What is left of the message being read, then how many bytes of `\r\n` are still due.
    incoming: Bytes,
    crlf_due: usize,
    /// Bytes written that do not end a line yet (the writer sends whole lines, so this is
    /// rarely used and never holds more than a line).
    partial: Vec<u8>,
    /// The longest line the writer may leave unfinished.
    line_len: usize,
    /// Set when the client broke the transport's rules; the close frame says so.
    broken: Option<(CloseCode, &'static str)>,
    /// Our close frame is queued; only flushing and closing remain.
    closing: bool,
    /// Pings received in the window that started at `ping_window`.
    pings: u32,
    ping_window: tokio::time::Instant,
}

impl std::fmt::Debug for WsStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsStream").field("mode", &self.mode).finish_non_exhaustive()
    }
}

impl WsStream {
    pub fn new(ws: HttpWebSocket, mode: Mode, line_len: usize) -> Self {
        WsStream {
            ws,
            mode,
            incoming: Bytes::new(),
            crlf_due: 0,
            partial: Vec::new(),
            line_len,
            broken: None,
            closing: false,
            pings: 0,
            ping_window: tokio::time::Instant::now(),
        }
    }

    /// One incoming message as a line: a trailing line end is forgiven (some clients send
    /// one), any other CR or LF ends the connection, an empty message is skipped (`None`).
    fn line_of(&mut self, payload: Bytes) -> Option<Bytes> {
        let mut end = payload.len();
        if payload[..end].ends_with(b"\n") {
            end -= 1;
        }
        if payload[..end].ends_with(b"\r") {
            end -= 1;
        }
        if payload[..end].iter().any(|&b| b == b'\r' || b == b'\n') {
            self.broken = Some((CloseCode::Protocol, ONE_LINE));
            return None;
        }
        (end > 0).then(|| payload.slice(..end))
    }

    /// Counts a ping (answered by yawc); past [`MAX_PINGS`] in a window the client is closed.
    fn count_ping(&mut self) {
        let now = tokio::time::Instant::now();
        if now.duration_since(self.ping_window) >= PING_WINDOW {
            self.ping_window = now;
            self.pings = 0;
        }
        self.pings += 1;
        if self.pings > MAX_PINGS {
            self.broken = Some((CloseCode::Policy, TOO_MANY_PINGS));
        }
    }

    /// Queues our close frame (1000, or why the client broke the rules) once, and flushes.
    fn poll_send_close(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        if !self.closing {
            ready!(Pin::new(&mut self.ws).poll_ready(cx)).map_err(ws_error)?;
            let (code, reason) = self.broken.unwrap_or((CloseCode::Normal, ""));
            Pin::new(&mut self.ws).start_send(Frame::close(code, reason)).map_err(ws_error)?;
            self.closing = true;
        }
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    fn frame(&self, line: &[u8]) -> Frame {
        match self.mode {
            Mode::Binary => Frame::binary(Bytes::copy_from_slice(line)),
            Mode::Text => Frame::text(Bytes::from(String::from_utf8_lossy(line).into_owned())),
        }
    }
}

fn ws_error(e: yawc::WebSocketError) -> io::Error {
    io::Error::other(format!("WebSocket: {e}"))
}

impl AsyncRead for WsStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.incoming.is_empty() {
                let n = this.incoming.len().min(buf.remaining());
                buf.put_slice(&this.incoming.split_to(n));
                return Poll::Ready(Ok(()));
            }
            if this.crlf_due > 0 {
                let crlf = &b"\r\n"[2 - this.crlf_due..];
                let n = crlf.len().min(buf.remaining());
                buf.put_slice(&crlf[..n]);
                this.crlf_due -= n;
                return Poll::Ready(Ok(()));
            }
            if this.broken.is_some() {
                // The close frame saying why leaves before the reader gives up on the
                // connection (the writer then ends without a shutdown of its own).
                let _ = ready!(this.poll_send_close(cx));
                let why = this.broken.map_or(ONE_LINE, |(_, reason)| reason);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, why)));
            }
            let frame = match ready!(this.ws.poll_next_frame(cx)) {
                Ok(frame) => frame,
                // The peer's close (answered by yawc) or a vanished connection: the end.
                Err(yawc::WebSocketError::ConnectionClosed) => return Poll::Ready(Ok(())),
                Err(e) => return Poll::Ready(Err(ws_error(e))),
            };
            match frame.opcode() {
                OpCode::Text | OpCode::Binary => {
                    if let Some(line) = this.line_of(frame.into_payload()) {
                        this.incoming = line;
                        this.crlf_due = 2;
                    }
                }
                OpCode::Close => return Poll::Ready(Ok(())),
                OpCode::Ping => this.count_ping(),
                // Pings are answered by yawc; pongs and the rest carry nothing for IRC.
                _ => {}
            }
        }
    }
}

impl AsyncWrite for WsStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut used = 0;
        while let Some(at) = memchr::memchr(b'\n', &buf[used..]) {
            match Pin::new(&mut this.ws).poll_ready(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(e)) => return Poll::Ready(Err(ws_error(e))),
                Poll::Pending if used > 0 => return Poll::Ready(Ok(used)),
                Poll::Pending => return Poll::Pending,
            }
            let piece = &buf[used..used + at];
            let frame = if this.partial.is_empty() {
                this.frame(piece.strip_suffix(b"\r").unwrap_or(piece))
            } else {
                let mut line = std::mem::take(&mut this.partial);
                line.extend_from_slice(piece);
                if line.ends_with(b"\r") {
                    line.pop();
                }
                this.frame(&line)
            };
            used += at + 1;
            if frame.payload().is_empty() {
                continue;
            }
            Pin::new(&mut this.ws).start_send(frame).map_err(ws_error)?;
        }
        let rest = &buf[used..];
        if this.partial.len() + rest.len() > this.line_len + 2 {
            return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidInput, "a line longer than the line limit")));
        }
        this.partial.extend_from_slice(rest);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.ws).poll_flush(cx).map_err(ws_error)
    }

    /// Sends our close frame (1000, or why the client broke the rules) and closes.
    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = &mut *self;
        ready!(this.poll_send_close(cx))?;
        Pin::new(&mut this.ws).poll_close(cx).map_err(ws_error)
    }
}
