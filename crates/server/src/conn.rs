//! One connection's I/O: a reader that frames and parses lines for the hub, and a writer that
//! drains the connection's bounded outbound queue. Plaintext, TLS and QUIC streams run the same code.

use std::future::Future;
use std::io;
use std::mem::MaybeUninit;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use chinwag_core::{ConnId, ConnInfo};
use chinwag_proto::{FrameRef, LineReader, Message, ParseError};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::hub::Event;
use crate::metrics::Counted;
use crate::outbox::{outbox, Divert, Link, Queue, Queues, Taken};

/// Bytes read from the socket at a time, at most, into a buffer on the stack (see `Reader::read`).
/// Big enough for what a busy client sends between two reads: with 4 KiB, a client sending
/// 64 messages at a time needed two `recv`s (and a line split across them) per batch, and
/// 500 private pairs ran at 1.4 M deliveries per CPU-second instead of 1.7 M.
const READ_CHUNK: usize = 16 * 1024;
/// Lines of one read that go to the hub as one event, at most. With the hub's queue of
/// [`EVENT_QUEUE`](crate::hub::EVENT_QUEUE) events, this bounds what waits for the hub.
const LINES_PER_EVENT: usize = 64;
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
    /// The outbound queues' bound, what their writers need and the longest line to read,
    /// shared by the listener's connections.
    pub queues: Arc<Queues>,
}

impl Setup {
    pub fn new(conn: ConnId, info: ConnInfo, events: mpsc::Sender<Event>, queues: &Arc<Queues>) -> Self {
        Setup { conn, info, events, queues: Arc::clone(queues) }
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
/// started (in `Queues::tasks`) only while the socket is full (see `outbox.rs`). `guard` is
/// held until the connection ends (its admission).
pub(crate) fn serve_tcp<G: Send + 'static>(
    stream: Counted<TcpStream>,
    setup: Setup,
    guard: G,
) -> impl Future<Output = ()> + Send {
    let (reader, writer) = stream.split(TcpStream::into_split);
    // No writer of its own: the queue's socket (`None::<Sink>` only names the type).
    run(reader, None::<tokio::io::Sink>, setup, None, Some(writer), guard)
}

/// The connection's two halves. `writer` is `None` when the queue writes to `direct`.
///
/// Not an `async fn`: everything that happens once is done before the future is made, and the
/// future holds only what the connection needs while it waits. Every idle connection keeps
/// that future (its task), and an async fn keeps its arguments and every value it moved out of
/// them for as long as it runs. For the same reason the future below uses what it captured in
/// place: moving a captured value into a local of its own keeps room for both.
fn run<R, W, G>(
    reader: R,
    writer: Option<W>,
    setup: Setup,
    divert: Option<Box<dyn Divert>>,
    direct: Option<OwnedWriteHalf>,
    guard: G,
) -> impl Future<Output = ()> + Send
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
    G: Send + 'static,
{
    let Setup { conn, info, events, queues } = setup;
    let write_timeout = queues.write_timeout;
    // Full: the hub does not wait; it drops the connection with "SendQ exceeded".
    let (outbox, queue) = outbox(&queues, divert, direct);
    let link = queue.link();
    // Boxed, and awaited by value so that it is freed once sent: the task would otherwise
    // keep an event's room (or the box it came in) for its whole life.
    let connected = Box::pin({
        let events = events.clone();
        async move { events.send(Event::Connected { conn, info, outbox }).await.is_ok() }
    });
    // A writer task for the whole connection only when the hub cannot write to the socket.
    // Otherwise the queue's end is let go now: the socket is shut down as soon as the hub lets
    // go of its end and everything is written. (If the hub refuses the connection, the queue
    // is closed with it, and the writer ends at once.)
    let write_task = match writer {
        Some(writer) => Some(tokio::spawn(write_loop(writer, queue, write_timeout))),
        None => {
            drop(queue);
            None
        }
    };
    let mut reader = Reader { stream: reader, conn, events, link, framer: None };
    async move {
        if connected.await {
            let reason = reader.read_loop().await;
            // A closed read side ends the connection: the hub learns why and the writer stops.
            // When the hub itself is gone (the server is stopping), it dropped its end of the
            // outbox: what was queued (the ERROR saying why) is still written, by the writer
            // within its write timeout and the stop's grace period. Boxed: a one-off wait that
            // would otherwise size every connection's task.
            let _ = Box::pin(reader.events.send(Event::Closed { conn: reader.conn, reason })).await;
            if !reader.events.is_closed() {
                reader.link.end();
            }
            if let Some(write_task) = write_task {
                let _ = write_task.await;
            }
        }
        // Held until the connection ends (its admission).
        drop(guard);
    }
}

/// Why the reader stops reading with the connection still open.
enum Stopped {
    /// The connection was ended, or closed and all written: read and drop what the peer
    /// still sends, for a while.
    Linger,
    /// The hub is gone.
    Gone,
}

/// What one wake-up of the reader came to.
enum Got {
    /// Bytes were read, and their lines handed to the hub as far as it took them.
    Read(Handed),
    /// The end of the stream.
    End,
    Failed(io::Error),
    /// The connection was ended, or closed and all written: stop reading.
    Stop,
}

/// A connection's reading half and what it needs: everything an idle connection's task holds,
/// apart from its admission and, on TLS and QUIC, its writer's handle.
struct Reader<R> {
    stream: R,
    conn: ConnId,
    events: mpsc::Sender<Event>,
    link: Link,
    /// Only while it holds something between reads (an unfinished line, a backlog, a long line
    /// being skipped), which is seldom: a client sends whole lines. A fresh one is made on the
    /// stack for each read otherwise. It holds at most `line_len` bytes of an unfinished line:
    /// a longer line is skipped as it arrives, never buffered whole.
    framer: Option<Box<LineReader>>,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    /// Reads, frames and parses, and hands the lines to the hub, until the peer goes, the
    /// connection is ended, or the hub closed it and everything queued was written (from then
    /// on its input is not even parsed, so a peer dropped for flooding stops costing anything).
    /// Returns why it stopped.
    async fn read_loop(&mut self) -> String {
        let stopped = loop {
            // Nothing but `self` lives across these waits: every idle connection's task has
            // room for the largest of them. The seldom ones are boxed, and what was read is
            // matched before any of them (a scrutinee would live on through its arms).
            let full = match self.read().await {
                Got::Read(Handed::All) => continue,
                Got::Read(Handed::Full(event)) => event,
                Got::Read(Handed::Gone) => break Stopped::Gone,
                Got::End => return "Connection closed".into(),
                Got::Failed(e) => return format!("Read error: {e}"),
                Got::Stop => break Stopped::Linger,
            };
            if let Some(stopped) = Box::pin(self.wait_for_hub(full)).await {
                break stopped;
            }
        };
        match stopped {
            Stopped::Linger => Box::pin(linger(&mut self.stream)).await,
            Stopped::Gone => Box::pin(gone(&mut self.stream)).await,
        }
    }

    /// The hub's queue is full: this reader waits, which stops reading from this one peer
    /// (backpressure), then hands over the rest of the read. `None` once all of it is with the
    /// hub.
    async fn wait_for_hub(&mut self, mut event: Box<Event>) -> Option<Stopped> {
        loop {
            let sent = tokio::select! {
                _ = std::future::poll_fn(|cx| self.link.poll_stop(cx)) => return Some(Stopped::Linger),
                sent = self.events.send(*event) => sent,
            };
            if sent.is_err() {
                return Some(Stopped::Gone);
            }
            // The rest of the read, held by the framer.
            match self.frame(&[]) {
                Handed::All => return None,
                Handed::Full(next) => event = next,
                Handed::Gone => return Some(Stopped::Gone),
            }
        }
    }

    /// Waits for bytes, then frames and parses them and hands the lines to the hub. The bytes
    /// are read into a buffer on the stack that lives only while the reader is polled: an idle
    /// connection waits holding no buffer at all, and a busy one still reads in big chunks.
    /// The read goes first: whether to stop is asked (a lock) only when there is nothing to
    /// read. A peer that never stops sending cannot keep it from being asked, since tokio makes
    /// a socket report "not ready" once a task has used its budget.
    fn read(&mut self) -> impl Future<Output = Got> + '_ {
        // One method rather than a closure over the fields it uses: a closure holds a
        // reference to each of them, and the wait would take that room in every idle task.
        std::future::poll_fn(|cx| self.poll_read(cx))
    }

    fn poll_read(&mut self, cx: &mut std::task::Context<'_>) -> Poll<Got> {
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut read = ReadBuf::uninit(&mut buf);
        match Pin::new(&mut self.stream).poll_read(cx, &mut read) {
            Poll::Ready(Ok(())) if read.filled().is_empty() => Poll::Ready(Got::End),
            Poll::Ready(Ok(())) => Poll::Ready(Got::Read(self.frame(read.filled()))),
            Poll::Ready(Err(e)) => Poll::Ready(Got::Failed(e)),
            Poll::Pending => self.link.poll_stop(cx).map(|()| Got::Stop),
        }
    }

    /// Frames and parses `bytes` (or, given nothing, the framer's backlog) and hands the lines
    /// to the hub; keeps the framer only if it is left holding something.
    fn frame(&mut self, bytes: &[u8]) -> Handed {
        let mut fresh = None;
        let framer = match self.framer.as_deref_mut() {
            Some(held) => held,
            None => fresh.insert(LineReader::new(self.link.line_len())),
        };
        let mut lines = Vec::new();
        take_lines(framer, bytes, &mut lines);
        let handed = hand_over(framer, &mut lines, self.conn, &self.events);
        if framer.is_idle() {
            self.framer = None;
        } else if let Some(fresh) = fresh {
            self.framer = Some(Box::new(fresh));
        }
        handed
    }
}

/// Waits for bytes and drops them; `Ok(0)` at the end of the stream. Read into a buffer on
/// the stack of the poll, as [`Reader::read`] does.
async fn read_and_drop<R>(reader: &mut R) -> io::Result<usize>
where
    R: AsyncRead + Unpin,
{
    std::future::poll_fn(|cx| {
        let mut buf = [MaybeUninit::<u8>::uninit(); READ_CHUNK];
        let mut read = ReadBuf::uninit(&mut buf);
        std::task::ready!(Pin::new(&mut *reader).poll_read(cx, &mut read))?;
        Poll::Ready(Ok(read.filled().len()))
    })
    .await
}

/// How far [`hand_over`] got.
enum Handed {
    /// Every complete line is with the hub.
    All,
    /// The hub's queue is full: this one waits to be sent (boxed, so that it takes no room in
    /// the connection's task while it is idle), and the rest after it.
    Full(Box<Event>),
    /// The hub is gone.
    Gone,
}

/// Parses the lines that `bytes` completes (or, given nothing, those of the framer's backlog)
/// into `lines`, up to [`LINES_PER_EVENT`]; the framer keeps the rest. A line that arrived
/// whole is parsed from `bytes` where it lies, without being copied first.
fn take_lines(framer: &mut LineReader, bytes: &[u8], lines: &mut Vec<Result<Message, ParseError>>) {
    // About as long as it needs to be: a registration's two or three lines must not take room
    // for 64 (10,000 clients registering at once would leave the allocator holding megabytes).
    // Guessed from the length rather than counted (a second pass over every read): a line is
    // rarely shorter than 32 bytes, and if they are, the list grows. A backlog is only left by
    // a read of more than 64.
    let room = if bytes.is_empty() { LINES_PER_EVENT } else { (bytes.len() / 32 + 1).min(LINES_PER_EVENT) };
    lines.reserve_exact(room);
    framer.feed(bytes, |frame| {
        lines.push(match frame {
            FrameRef::Line(line) => Message::parse_client_bytes(line),
            FrameRef::TooLong => Err(ParseError::BodyTooLong),
        });
        lines.len() < LINES_PER_EVENT
    });
}

/// Gives the parsed lines to the hub, and then those of the framer's backlog, without
/// waiting. Not async, so that a line being parsed takes no room in the connection's task
/// while it waits.
///
/// The lines of one read go as one event (up to [`LINES_PER_EVENT`]): when the hub falls behind
/// and its queue fills, waiting readers get its free places one at a time, and one line per
/// event would then interleave every connection's lines, so that each line the hub handles
/// goes to a different recipient and leaves in a `send` of its own. Measured on two cores,
/// where the readers can outpace the hub: pairs fell to 0.2 M deliveries per CPU-second.
fn hand_over(
    framer: &mut LineReader,
    lines: &mut Vec<Result<Message, ParseError>>,
    conn: ConnId,
    events: &mpsc::Sender<Event>,
) -> Handed {
    loop {
        if lines.is_empty() && framer.has_backlog() {
            take_lines(framer, &[], lines);
        }
        let event = if lines.len() > 1 {
            Event::Lines { conn, lines: std::mem::take(lines) }
        } else if let Some(parsed) = lines.pop() {
            // One line (most reads of a quiet peer): no list, and none kept while idle.
            *lines = Vec::new();
            Event::Line { conn, parsed }
        } else {
            return Handed::All;
        };
        match events.try_send(event) {
            Ok(()) => {}
            Err(mpsc::error::TrySendError::Full(event)) => return Handed::Full(Box::new(event)),
            Err(mpsc::error::TrySendError::Closed(_)) => return Handed::Gone,
        }
    }
}

/// The hub is gone: stop parsing, but keep draining so that closing the socket does not reset
/// it before our last lines arrive.
async fn gone<R: AsyncRead + Unpin>(reader: &mut R) -> String {
    linger(reader).await;
    "Server shutting down".into()
}

/// After the hub closed the connection: reads and discards what the peer still sends, until it
/// closes too, for at most [`LINGER`] and [`LINGER_BYTES`]. Closing a socket with unread input
/// resets it, and a reset throws away what is still in our send buffer: the ERROR saying why,
/// to a client that is slow to read. This holds during a stop too (a well-behaved client closes
/// at once on ERROR; the stop's grace period bounds the rest).
async fn linger<R: AsyncRead + Unpin>(reader: &mut R) -> String {
    let drain = async {
        let mut drained = 0;
        while drained < LINGER_BYTES {
            match read_and_drop(reader).await {
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
async fn write_loop<W>(mut writer: W, queue: Queue, timeout: Duration)
where
    W: AsyncWrite + Unpin,
{
    let mut batch = Vec::new();
    loop {
        batch.clear();
        match queue.take(&mut batch).await {
            Taken::Bytes => {}
            Taken::Ended => break,
            Taken::Closed => {
                // The hub closed the connection: everything queued is written; say goodbye.
                queue.all_written();
                let _ = tokio::time::timeout(SHUTDOWN_TIMEOUT, writer.shutdown()).await;
                break;
            }
        }
        // Boxed: an idle connection's writer waits in `take`, and should not carry the
        // space of a write and its timer while it does.
        let write = Box::pin(async {
            let write = async {
                writer.write_all(&batch).await?;
                writer.flush().await
            };
            // A peer that stopped reading blocks this write; ending the connection must still
            // end it.
            tokio::select! {
                _ = queue.ended() => false,
                written = tokio::time::timeout(timeout, write) => matches!(written, Ok(Ok(()))),
            }
        });
        if !write.await {
            break;
        }
    }
    queue.end();
}

#[cfg(test)]
mod tests {
    use tokio_util::task::TaskTracker;

    use super::*;
    use crate::metrics::Metrics;

    fn commands(event: &Event) -> Vec<String> {
        let name = |p: &Result<Message, ParseError>| p.as_ref().map_or("?".to_owned(), |m| m.params.join(" "));
        match event {
            Event::Line { parsed, .. } => vec![name(parsed)],
            Event::Lines { lines, .. } => lines.iter().map(name).collect(),
            _ => Vec::new(),
        }
    }

    /// The lines of one read reach the hub as one event, in order and at most 64 to an event,
    /// so that a full queue cannot interleave connections line by line; a lone line is sent
    /// alone.
    #[test]
    fn the_lines_of_one_read_go_to_the_hub_together() {
        let (events, mut hub) = mpsc::channel(8);
        let mut framer = LineReader::new(512);
        let mut lines = Vec::new();
        let read = |framer: &mut LineReader, bytes: &[u8], lines: &mut Vec<_>, events: &mpsc::Sender<Event>| {
            take_lines(framer, bytes, lines);
            hand_over(framer, lines, ConnId(7), events)
        };
        let input: String = (0..70).map(|i| format!("PING {i}\r\n")).collect();
        assert!(matches!(read(&mut framer, input.as_bytes(), &mut lines, &events), Handed::All));
        assert_eq!(lines.capacity(), 0, "nothing is kept once the hub has it all");
        let first = hub.try_recv().expect("an event");
        let second = hub.try_recv().expect("the rest");
        let got: Vec<String> = [commands(&first), commands(&second)].concat();
        assert_eq!(got, (0..70).map(|i| i.to_string()).collect::<Vec<_>>(), "every line, in order");
        assert_eq!((commands(&first).len(), commands(&second).len()), (64, 6));
        assert!(hub.try_recv().is_err());

        assert!(matches!(read(&mut framer, b"PING lone\r\nPING unfini", &mut lines, &events), Handed::All));
        assert!(matches!(hub.try_recv(), Ok(Event::Line { conn: ConnId(7), parsed: Ok(_) })));
        assert_eq!(lines.capacity(), 0, "a lone line leaves no list behind");

        // Full: what did not fit comes back to wait, and the rest stays with the framer;
        // nothing is lost.
        let (events, mut hub) = mpsc::channel(1);
        assert!(matches!(read(&mut framer, b"shed\r\nPING a\r\n", &mut lines, &events), Handed::All));
        let many: String = (0..100).map(|i| format!("PING {i}\r\n")).collect();
        let Handed::Full(waiting) = read(&mut framer, many.as_bytes(), &mut lines, &events) else {
            panic!("the queue is full")
        };
        assert_eq!(commands(&waiting), (0..64).map(|i| i.to_string()).collect::<Vec<_>>());
        assert_eq!(commands(&hub.try_recv().expect("the first")), ["unfinished", "a"]);
        events.try_send(*waiting).expect("room again");
        let Handed::Full(rest) = hand_over(&mut framer, &mut lines, ConnId(7), &events) else { panic!("full again") };
        assert_eq!(commands(&rest), (64..100).map(|i| i.to_string()).collect::<Vec<_>>());
        assert!(!framer.has_backlog());
    }

    /// Every idle plain TCP connection is one task holding this future: its size is most of
    /// what an idle connection costs (docs/benchmarks.md, idle memory). tokio allocates a task
    /// as one cell aligned to 128 bytes: 32 of header, 16 of scheduler and id, 8 of stage,
    /// 8 of `TaskTracker`, the future, and 48 of trailer. Up to 144 bytes of future, the cell
    /// is 256 bytes; up to 272, 384. The future was 936 bytes while the reader kept its buffer
    /// and an async fn kept its arguments, 536 (a cell of 768) while the reader waited on a
    /// cancellation token and the task kept a second copy of what it captured, and 184 while
    /// the reader kept a framer between lines and a parsed read lived on through a wait.
    #[tokio::test]
    async fn an_idle_tcp_connection_is_a_small_task() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_peer, ours) = tokio::join!(TcpStream::connect(addr), listener.accept());
        let metrics = Metrics::new();
        let stream = metrics.wrap(ours.expect("accept").0, crate::metrics::Transport::Plaintext);
        let (events, _hub) = mpsc::channel(1);
        let info = ConnInfo { ip: addr.ip(), host: "127.0.0.1".into(), tls: false, quic: false, certfp: None };
        let queues = Arc::new(Queues {
            limit: 1,
            line_len: 512,
            metrics,
            write_timeout: Duration::ZERO,
            tasks: TaskTracker::new(),
        });
        let setup = Setup { conn: ConnId(1), info, events, queues };
        // As large as the admission a connection holds.
        let permit = [0u8; std::mem::size_of::<crate::limits::Permit>()];
        let task = serve_tcp(stream, setup, permit);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 144, "an idle connection's task holds {size} bytes");
    }
}
