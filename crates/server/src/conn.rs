//! One connection's I/O: a reader that frames and parses lines for the hub, and a writer that
//! drains the connection's bounded outbound queue. Plaintext, TLS and QUIC streams run the same code.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chinwag_core::{ConnId, ConnInfo};
use chinwag_proto::{Frame, LineReader, Message, ParseError};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::EdgeLimits;
use crate::hub::Event;
use crate::metrics::Counted;
use crate::metrics::Metrics;
use crate::outbox::{outbox, ConnTasks, Direct, Divert, Queue};

/// Bytes read from the socket at a time, at most: a peer that sends in bulk gets this.
const READ_CHUNK: usize = 4096;
/// ... and at least: a quiet peer (most of them, most of the time) waits on this little.
const READ_SMALL: usize = 256;
/// Time a closed connection's input is still read (and dropped) so that our last lines arrive.
const LINGER: Duration = Duration::from_secs(2);
/// Bytes of input read (and dropped) at most while lingering.
const LINGER_BYTES: usize = 256 * 1024;
/// Time allowed to send our last bytes and close politely.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// What a connection's tasks need from the server, kept small: every connected client's task
/// holds one.
pub(crate) struct Setup {
    pub conn: ConnId,
    pub info: ConnInfo,
    pub events: mpsc::Sender<Event>,
    /// `EdgeLimits::sendq_lines`, `line_len` and `write_timeout`.
    pub sendq_lines: usize,
    pub line_len: usize,
    pub write_timeout: Duration,
}

impl Setup {
    pub fn new(conn: ConnId, info: ConnInfo, events: mpsc::Sender<Event>, limits: &EdgeLimits) -> Self {
        Setup {
            conn,
            info,
            events,
            sendq_lines: limits.sendq_lines,
            line_len: limits.line_len,
            write_timeout: limits.write_timeout,
        }
    }
}

/// Runs a connection until it ends, then tells the hub. `divert` carries some lines beside the
/// stream (QUIC datagrams); `None` for streams that carry everything.
pub(crate) fn serve<S>(stream: S, setup: Setup, divert: Option<Box<dyn Divert>>) -> impl Future<Output = ()> + Send
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (reader, writer) = tokio::io::split(stream);
    run(reader, Some(writer), setup, divert, None, ())
}

/// Runs a plain TCP connection: the hub writes to the socket itself, and a writer task is
/// started (in `tasks`) only while the socket is full (see `outbox.rs`). `guard` is held until
/// the connection ends (its admission).
///
/// Not an `async fn`: the future is `run`'s alone, so the arguments are stored once in the task
/// that every idle connection keeps.
pub(crate) fn serve_tcp<G: Send + 'static>(
    stream: Counted<TcpStream>,
    setup: Setup,
    guard: G,
    tasks: TaskTracker,
) -> impl Future<Output = ()> + Send {
    let metrics = Arc::clone(stream.metrics());
    let (reader, writer) = stream.split(TcpStream::into_split);
    // No writer of its own: the queue's socket (`None::<Sink>` only names the type).
    run(reader, None::<tokio::io::Sink>, setup, None, Some((writer, metrics, tasks)), guard)
}

/// A plain TCP connection's sending half, its counters and where its writer task would run.
type DirectParts = (OwnedWriteHalf, Arc<Metrics>, TaskTracker);

/// The connection's two halves. `writer` is `None` when the queue writes to `direct`.
async fn run<R, W, G>(
    reader: R,
    writer: Option<W>,
    setup: Setup,
    divert: Option<Box<dyn Divert>>,
    direct: Option<DirectParts>,
    _guard: G,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Setup { conn, info, events, sendq_lines, line_len, write_timeout } = setup;
    let cancel = CancellationToken::new();
    // Cancelled once the hub has closed the connection and everything queued is written: from
    // then on its input is not even read, so a peer dropped for flooding stops costing anything.
    let stop_reading = cancel.child_token();
    let direct = direct.map(|(socket, metrics, tasks)| {
        let tasks = ConnTasks { cancel: cancel.clone(), stop_reading: stop_reading.clone(), write_timeout, tasks };
        Direct::new(socket, metrics, &tasks)
    });
    // Full: the hub does not wait; it drops the connection with "SendQ exceeded".
    let (outbox, queue) = outbox(sendq_lines.max(1), divert, direct);
    let connected = Event::Connected { conn, info, outbox, cancel: cancel.clone() };
    // Boxed here and below: one-off waits that would otherwise size every connection's task.
    if Box::pin(events.send(connected)).await.is_err() {
        return;
    }
    // A writer task for the whole connection only when the hub cannot write to the socket.
    // Otherwise the queue's end is let go now: the socket is shut down as soon as the hub lets
    // go of its end and everything is written.
    let write_task = match writer {
        Some(writer) => {
            Some(tokio::spawn(write_loop(writer, queue, cancel.clone(), stop_reading.clone(), write_timeout)))
        }
        None => {
            drop(queue);
            None
        }
    };
    let reason = read_loop(reader, conn, &events, &stop_reading, line_len).await;
    // A closed read side ends the connection: the hub learns why and the writer stops. When
    // the hub itself is gone (the server is stopping), it dropped its end of the outbox: what
    // was queued (the ERROR saying why) is still written, by the writer within its write
    // timeout and the stop's grace period.
    let _ = Box::pin(events.send(Event::Closed { conn, reason })).await;
    if !events.is_closed() {
        cancel.cancel();
    }
    if let Some(write_task) = write_task {
        let _ = write_task.await;
    }
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
    let mut buf = vec![0u8; READ_SMALL];
    loop {
        let read = tokio::select! {
            _ = cancel.cancelled() => return Box::pin(linger(reader, &mut buf)).await,
            read = reader.read(&mut buf) => read,
        };
        match read {
            Ok(0) => return "Connection closed".into(),
            Ok(n) => {
                framer.push(&buf[..n]);
                // A full read means more is coming: read bigger. A short one means the peer is
                // quiet: give the memory back while it idles.
                if n == buf.len() && n < READ_CHUNK {
                    buf = vec![0u8; READ_CHUNK];
                } else if n < READ_SMALL && buf.len() > READ_SMALL {
                    buf = vec![0u8; READ_SMALL];
                }
            }
            Err(e) => return format!("Read error: {e}"),
        }
        while let Some(frame) = framer.next_frame() {
            let parsed = match frame {
                Frame::Line(line) => Message::parse_bytes(&line),
                Frame::TooLong => Err(ParseError::BodyTooLong),
            };
            // Full: this reader waits, which stops reading from this one peer (backpressure).
            // The wait is boxed, like the lingering: a future is as large as its largest
            // state, and every idle connection would pay for states it seldom reaches.
            let sent = match events.try_send(Event::Line { conn, parsed }) {
                Ok(()) => Ok(()),
                Err(mpsc::error::TrySendError::Closed(_)) => Err(()),
                Err(mpsc::error::TrySendError::Full(event)) => {
                    let wait = Box::pin(async {
                        tokio::select! {
                            _ = cancel.cancelled() => None,
                            sent = events.send(event) => Some(sent.map_err(|_| ())),
                        }
                    });
                    match wait.await {
                        Some(sent) => sent,
                        None => return Box::pin(linger(reader, &mut buf)).await,
                    }
                }
            };
            if sent.is_err() {
                // The hub is gone: stop parsing, but keep draining so that closing the socket
                // does not reset it before our last lines arrive.
                Box::pin(linger(reader, &mut buf)).await;
                return "Server shutting down".into();
            }
        }
    }
}

/// After the hub closed the connection: reads and discards what the peer still sends, until it
/// closes too, for at most [`LINGER`] and [`LINGER_BYTES`]. Closing a socket with unread input
/// resets it, and a reset throws away what is still in our send buffer: the ERROR saying why,
/// to a client that is slow to read. This holds during a stop too (a well-behaved client closes
/// at once on ERROR; the stop's grace period bounds the rest).
async fn linger<R: AsyncRead + Unpin>(mut reader: R, buf: &mut [u8]) -> String {
    let drain = async {
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match reader.read(buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    };
    let _ = tokio::time::timeout(LINGER, drain).await;
    "Connection closed".into()
}

/// Writes everything queued with one call each time (TCP_NODELAY is on, so batching is what
/// keeps the packet and syscall count down under load while a lone line still leaves at once).
async fn write_loop<W>(
    mut writer: W,
    queue: Queue,
    cancel: CancellationToken,
    stop_reading: CancellationToken,
    timeout: Duration,
) where
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    loop {
        batch.clear();
        let more = tokio::select! {
            _ = cancel.cancelled() => break,
            more = queue.take(&mut batch) => more,
        };
        if !more {
            // The hub closed the connection: everything queued is written; say goodbye.
            stop_reading.cancel();
            let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, writer.shutdown()).await;
            break;
        }
        // Boxed: an idle connection's writer waits in `take`, and should not carry the
        // space of a write and its timer while it does.
        let write = Box::pin(async {
            let write = async {
                writer.write_all(&batch).await?;
                writer.flush().await
            };
            // A peer that stopped reading blocks this write; cancellation must still end it.
            tokio::select! {
                _ = cancel.cancelled() => false,
                written = tokio::time::timeout(timeout, write) => matches!(written, Ok(Ok(()))),
            }
        });
        if !write.await {
            break;
        }
    }
    cancel.cancel();
}
