//! One connection's I/O: a reader that frames and parses lines for the hub, and a writer that
//! drains the connection's bounded outbound queue. Plaintext and TLS streams run the same code.

use std::time::Duration;

use bytes::Bytes;
use chinwag_core::{ConnId, ConnInfo};
use chinwag_proto::{Frame, LineReader, Message, ParseError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::EdgeLimits;
use crate::hub::Event;

/// Bytes read from the socket at a time.
const READ_CHUNK: usize = 4096;
/// The writer coalesces queued lines into one write of up to this many bytes.
const WRITE_BATCH: usize = 64 * 1024;
/// Time allowed to send our last bytes and close politely.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Lines a transport can carry beside its stream: QUIC sends `+typing` as datagrams.
pub(crate) trait Divert: Send + 'static {
    /// Sends `line` another way and returns true, or returns false to leave it to the stream.
    fn divert(&mut self, line: &Bytes) -> bool;
}

/// Streams that carry everything (TCP, TLS).
impl Divert for () {
    fn divert(&mut self, _line: &Bytes) -> bool {
        false
    }
}

/// Runs a connection until it ends, then tells the hub.
pub(crate) async fn serve<S, D>(
    stream: S,
    conn: ConnId,
    info: ConnInfo,
    events: mpsc::Sender<Event>,
    limits: EdgeLimits,
    divert: D,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
    D: Divert,
{
    let (reader, writer) = tokio::io::split(stream);
    // Full: the hub does not wait; it drops the connection with "SendQ exceeded".
    let (outbox, queue) = mpsc::channel::<Bytes>(limits.sendq_lines.max(1));
    let cancel = CancellationToken::new();
    let connected = Event::Connected { conn, info, outbox, cancel: cancel.clone() };
    if events.send(connected).await.is_err() {
        return;
    }
    let write_task = tokio::spawn(write_loop(writer, queue, cancel.clone(), limits.write_timeout, divert));
    let reason = read_loop(reader, conn, &events, &cancel, limits.line_len).await;
    // A closed read side ends the connection: the hub learns why and the writer stops.
    let _ = events.send(Event::Closed { conn, reason }).await;
    cancel.cancel();
    let _ = write_task.await;
}

async fn read_loop<R>(
    mut reader: R,
    conn: ConnId,
    events: &mpsc::Sender<Event>,
    cancel: &CancellationToken,
    line_len: usize,
) -> String
where
    R: AsyncRead + Unpin,
{
    // The framer holds at most `line_len` bytes of an unfinished line: a longer one is skipped
    // as it arrives, never buffered whole.
    let mut framer = LineReader::new(line_len);
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => return "Connection closed".into(),
            read = reader.read(&mut buf) => read,
        };
        match read {
            Ok(0) => return "Connection closed".into(),
            Ok(n) => framer.push(&buf[..n]),
            Err(e) => return format!("Read error: {e}"),
        }
        while let Some(frame) = framer.next_frame() {
            let parsed = match frame {
                Frame::Line(line) => Message::parse_bytes(&line),
                Frame::TooLong => Err(ParseError::BodyTooLong),
            };
            // Full: this reader waits, which stops reading from this one peer (backpressure).
            if events.send(Event::Line { conn, parsed }).await.is_err() {
                return "Server shutting down".into();
            }
        }
    }
}

async fn write_loop<W, D>(
    mut writer: W,
    mut queue: mpsc::Receiver<Bytes>,
    cancel: CancellationToken,
    timeout: Duration,
    mut divert: D,
) where
    W: AsyncWrite + Unpin,
    D: Divert,
{
    let mut batch = Vec::with_capacity(READ_CHUNK);
    loop {
        let next = tokio::select! {
            _ = cancel.cancelled() => break,
            next = queue.recv() => next,
        };
        let Some(first) = next else {
            // The hub closed the connection: everything queued is written; say goodbye.
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, writer.shutdown()).await;
            break;
        };
        batch.clear();
        if !divert.divert(&first) {
            batch.extend_from_slice(&first);
        }
        while batch.len() < WRITE_BATCH {
            match queue.try_recv() {
                Ok(more) if divert.divert(&more) => {}
                Ok(more) => batch.extend_from_slice(&more),
                Err(_) => break,
            }
        }
        if batch.is_empty() {
            continue;
        }
        let write = async {
            writer.write_all(&batch).await?;
            writer.flush().await
        };
        // A peer that stopped reading blocks this write; cancellation must still end it.
        let written = tokio::select! {
            _ = cancel.cancelled() => break,
            written = tokio::time::timeout(timeout, write) => written,
        };
        match written {
            Ok(Ok(())) => {}
            Ok(Err(_)) | Err(_) => break,
        }
        if batch.capacity() > WRITE_BATCH * 2 {
            batch = Vec::with_capacity(READ_CHUNK);
        }
    }
    cancel.cancel();
}
