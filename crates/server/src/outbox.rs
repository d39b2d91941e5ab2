//! A connection's outbound queue: the hub appends lines, and they leave with one write per
//! connection per round of the hub.
//!
//! Why not a channel of `Bytes`: a room message is one push per member, and per push a channel
//! costs a slot, a permit, a reference count up and down on a shared buffer and often a
//! wake-up; profiles of a 100-member room put a quarter of the server's CPU there. Here a push
//! is a copy of the line into the connection's pending bytes.
//!
//! Who writes: on plain TCP (a `direct` socket in [`Shared`]) the hub collects a connection's lines in a buffer of
//! its own (`staged`: no lock per line) and writes them itself at the end of its round
//! (`flush`), with one non-blocking `send`: no task wakes up, which is most of the cost of a
//! delivery at low rates (a 1000-member room). Only when the socket cannot take everything is a
//! writer task started (`writer_owns`): the rest goes into the shared pending bytes, the task
//! waits until the socket is writable and writes, and what the hub flushes meanwhile is
//! appended behind it; when it runs dry it hands the queue back and ends, so an idle TCP
//! connection has no writer task at all. On TLS and QUIC the writer task always writes: each push goes into the shared pending bytes, the hub
//! wakes the writer when they go from empty to not empty, and the writer swaps them for its own
//! (empty) buffer, so nothing is copied twice.
//!
//! Memory: an idle connection holds no buffer. The writer frees its buffers when it runs dry.
//! A staging buffer lives only within a round: a flush that wrote everything hands it back to
//! the hub's [`Spares`], and the next connection to get a line that round or the next takes it
//! from there, with the room the connection's last round took, so busy connections do not
//! allocate and grow a buffer every round either.
//!
//! A transport may carry some lines beside its stream ([`Divert`]: QUIC sends `+typing` as
//! datagrams); those leave at push time and never wait in the queue.
//!
//! Bounded: at most `Queues::limit` lines wait. A push beyond that fails and the hub drops the
//! connection ("SendQ exceeded"); the hub never waits for a connection.
//!
//! The end of a connection is signalled here too, in the state the queue already shares
//! between the hub, the writer and the reader ([`Link`]): [`Link::end`] stops both halves at
//! once, and the reader stops reading once the hub closed the queue and all of it is written.
//! Two flags and a waker for each side, where a pair of cancellation tokens cost every idle
//! connection two more allocations and its reader a waiting future of 72 bytes.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::net::tcp::OwnedWriteHalf;
use tokio_util::task::TaskTracker;

use crate::metrics::Metrics;

/// What every connection's queue shares with the others: its bound, and what a writer task
/// needs. One per listener, so that each connection's shared state holds one pointer to it.
#[derive(Debug)]
pub(crate) struct Queues {
    /// Lines that may wait, at most (`EdgeLimits::sendq_lines`).
    pub limit: usize,
    /// The longest line read, in bytes (`EdgeLimits::line_len`): for the reader, kept here so
    /// that its task does not hold a copy.
    pub line_len: usize,
    /// Counts the bytes the hub and the writer tasks of plain TCP sockets send.
    pub metrics: Arc<Metrics>,
    /// A write that takes longer ends the connection.
    pub write_timeout: Duration,
    /// Where a plain TCP socket's writer task is started when the socket is full (a stop waits
    /// for it).
    pub tasks: TaskTracker,
}

/// What waits to be written, and who waits for what.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    /// The hub let go: write what is here, then close.
    closed: bool,
    /// With a direct socket: the writer task is writing (the hub must not), until it runs dry.
    writer_owns: bool,
    /// The connection is over ([`Link::end`]): the writer stops, queued bytes or not, and so
    /// does the reader.
    ended: bool,
    /// The hub closed the queue and everything in it was written: the reader stops.
    written: bool,
    /// The reader, waiting for input, to wake when either of the two above is set.
    reader: Option<Waker>,
    /// The writer task, waiting for bytes, for the close or for the end.
    writer: Option<Waker>,
}

/// Wakers taken under the lock, to wake once it is let go.
#[must_use]
struct Wake(Option<Waker>, Option<Waker>);

impl Wake {
    fn now(self) {
        for waker in [self.0, self.1].into_iter().flatten() {
            waker.wake();
        }
    }
}

impl Pending {
    /// Marks the connection over: both halves are to stop.
    fn end(&mut self) -> Wake {
        self.ended = true;
        Wake(self.reader.take(), self.writer.take())
    }

    /// Marks the closed queue written, for the reader to stop.
    fn all_written(&mut self) -> Wake {
        self.written = true;
        Wake(self.reader.take(), None)
    }

    /// There is something new for the writer: bytes, or the close.
    fn for_writer(&mut self) -> Wake {
        Wake(None, self.writer.take())
    }
}

/// Registers `cx` in `slot` unless the same task is there already.
fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        slot => *slot = Some(cx.waker().clone()),
    }
}

/// The state the hub's [`Outbox`], the writer's [`Queue`] and the reader's [`Link`] share.
/// One allocation per connection, of 128 bytes.
#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    queues: Arc<Queues>,
    /// A plain TCP socket's sending half, which the hub writes to without waiting. Shut down
    /// for writing once the closed queue is all written or a write failed
    /// ([`Shared::finish`]), and dropped with the last of the hub's queue, the writer task and
    /// the reader. `None` when a writer task of the connection's own writes (TLS, QUIC).
    direct: Option<OwnedWriteHalf>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves plain bytes behind; they are still valid.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Ends the connection: both halves stop at once, queued bytes or not.
    fn end(&self) {
        let wake = self.lock().end();
        wake.now();
    }

    /// For a writer task: ready with what `ready` finds, or waits (registered) until woken.
    fn poll_writer<T>(&self, cx: &Context<'_>, ready: impl FnOnce(&mut Pending) -> Option<T>) -> Poll<T> {
        let mut pending = self.lock();
        match ready(&mut pending) {
            Some(found) => Poll::Ready(found),
            None => {
                register(&mut pending.writer, cx);
                Poll::Pending
            }
        }
    }

    /// Waits until the connection is ended. For a writer, in a `select!` beside its write.
    async fn ended(&self) {
        std::future::poll_fn(|cx| self.poll_writer(cx, |p| p.ended.then_some(()))).await;
    }

    /// Nothing more will be written: the peer gets its end of stream now. Dropping the socket
    /// would do it too, but the reader keeps the shared state (and so the socket) until it
    /// stops lingering.
    fn finish(&self, socket: &OwnedWriteHalf) {
        let _ = socket2::SockRef::from(socket.as_ref()).shutdown(std::net::Shutdown::Write);
    }

    /// Writes what the socket takes now, without waiting (the writer task's writes: a
    /// `WouldBlock` clears tokio's readiness, so that its next `writable()` waits).
    fn try_write(&self, socket: &OwnedWriteHalf, buf: &[u8]) -> io::Result<usize> {
        let n = socket.try_write(buf)?;
        self.queues.metrics.bytes_out.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    /// The hub's write at the end of its round: one plain `send`. Not tokio's `try_write`: its
    /// readiness bookkeeping is of no use to the hub, which never waits for readiness, and cost
    /// about 60 instructions per call (a flush 250 → 190; at everyday load the flushes are a
    /// quarter of the hub's work per room message, docs/benchmarks.md, "At everyday load"). A `WouldBlock` here leaves tokio's readiness as it was: the
    /// writer task started then finds the socket full through [`Shared::try_write`] (one
    /// `send` more), which clears it before the task waits.
    fn send_now(&self, socket: &OwnedWriteHalf, buf: &[u8]) -> io::Result<usize> {
        let n = socket2::SockRef::from(socket.as_ref()).send(buf)?;
        self.queues.metrics.bytes_out.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    async fn write_all(&self, socket: &OwnedWriteHalf, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            socket.writable().await?;
            match self.try_write(socket, buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

/// The writer task of a direct queue, started when the socket could not take everything: it
/// writes until the queue runs dry, then hands it back to the hub and ends. An idle connection
/// has no writer task at all.
async fn drain(shared: Arc<Shared>) {
    let Some(socket) = &shared.direct else { return };
    let mut batch = Vec::new();
    loop {
        {
            let mut pending = shared.lock();
            if pending.bytes.is_empty() {
                pending.writer_owns = false;
                pending.bytes = Vec::new();
                if pending.closed {
                    let wake = pending.all_written();
                    drop(pending);
                    shared.finish(socket);
                    wake.now();
                }
                return;
            }
            std::mem::swap(&mut pending.bytes, &mut batch);
            pending.lines = 0;
        }
        // A peer that stopped reading blocks this write; ending the connection must still end it.
        let written = tokio::select! {
            _ = shared.ended() => false,
            written = tokio::time::timeout(shared.queues.write_timeout, shared.write_all(socket, &batch)) => matches!(written, Ok(Ok(()))),
        };
        if !written {
            shared.finish(socket);
            shared.end();
            return;
        }
        batch.clear();
    }
}

/// Staged bytes that are written at once rather than at the end of the round.
const STAGED_BYTES: usize = 64 * 1024;

/// Lines a transport can carry beside its stream: QUIC sends `+typing` as datagrams.
pub(crate) trait Divert: Send + Sync + 'static {
    /// Sends `line` another way and returns true, or returns false to leave it to the stream.
    /// Called by the hub: it must not wait.
    fn divert(&self, line: &[u8]) -> bool;
}

/// The hub's end. Dropping it closes the queue: the writer writes what is left, then closes.
pub(crate) struct Outbox {
    shared: Arc<Shared>,
    divert: Option<Box<dyn Divert>>,
    /// With a direct socket: lines pushed this round, not yet flushed.
    staged: Vec<u8>,
    staged_lines: u32,
    /// The bytes staged in the last round that had any (rounded up to a power of two): the
    /// room to take for the next, so that a busy connection's buffer does not grow (and get
    /// copied) line by line from whatever a spare happened to hold.
    hint: u32,
}

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outbox")
            .field("shared", &self.shared)
            .field("divert", &self.divert.is_some())
            .field("staged_lines", &self.staged_lines)
            .finish()
    }
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct Queue(Arc<Shared>);

/// The queue already holds `limit` lines.
#[derive(Debug)]
pub(crate) struct Full;

/// Emptied staging buffers, for the next connection that needs one. Bounded in count and in
/// the size of each buffer kept.
#[derive(Debug, Default)]
pub(crate) struct Spares(Vec<Vec<u8>>);

impl Spares {
    const COUNT: usize = 256;
    const BYTES: usize = 64 * 1024;

    /// An empty buffer with room for `bytes`: a spare if the last one given has that room.
    fn take(&mut self, bytes: usize) -> Vec<u8> {
        match self.0.pop() {
            Some(spare) if spare.capacity() >= bytes => spare,
            // Made anew rather than grown: growing would copy the spare's old room.
            _ => Vec::with_capacity(bytes),
        }
    }

    fn give(&mut self, mut buf: Vec<u8>) {
        if self.0.len() < Self::COUNT && buf.capacity() <= Self::BYTES {
            buf.clear();
            self.0.push(buf);
        }
    }
}

/// What the hub must do after a push.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// Nothing: the line leaves with others, or the writer task takes it.
    Queued,
    /// Call [`Outbox::flush`] before waiting for more work.
    Flush,
}

/// A queue of at most `queues.limit` lines, with the transport's way around it if it has one,
/// and the socket the hub writes to itself if it is plain TCP.
pub(crate) fn outbox(
    queues: &Arc<Queues>,
    divert: Option<Box<dyn Divert>>,
    direct: Option<OwnedWriteHalf>,
) -> (Outbox, Queue) {
    let shared = Arc::new(Shared { pending: Mutex::default(), queues: Arc::clone(queues), direct });
    (Outbox { shared: Arc::clone(&shared), divert, staged: Vec::new(), staged_lines: 0, hint: 0 }, Queue(shared))
}

/// The reader's hold on its connection's shared state: how it learns that it should stop,
/// and how it ends the connection when its peer goes.
#[derive(Debug)]
pub(crate) struct Link(Arc<Shared>);

impl Link {
    /// Ends the connection: the writer stops, queued bytes or not.
    pub fn end(&self) {
        self.0.end();
    }

    /// The longest line to read, in bytes.
    pub fn line_len(&self) -> usize {
        self.0.queues.line_len
    }

    /// Ready once the reader should stop reading: the connection was ended, or the hub closed
    /// it and everything queued was written. Registers `cx` to be woken when that happens.
    pub fn poll_stop(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut pending = self.0.lock();
        if pending.ended || pending.written {
            return Poll::Ready(());
        }
        register(&mut pending.reader, cx);
        Poll::Pending
    }
}

impl Outbox {
    /// Appends one line (with its CRLF). Never waits.
    pub fn push(&mut self, line: &[u8], spares: &mut Spares) -> Result<Pushed, Full> {
        if self.divert.as_ref().is_some_and(|d| d.divert(line)) {
            return Ok(Pushed::Queued);
        }
        if self.shared.direct.is_some() {
            // The writer's share of the bound is checked at the flush.
            if self.staged_lines as usize >= self.shared.queues.limit {
                return Err(Full);
            }
            if self.staged_lines == 0 {
                self.staged = spares.take(self.hint as usize);
            }
            self.staged.extend_from_slice(line);
            self.staged_lines += 1;
            let first = self.staged_lines == 1;
            // A round can be long (a commit releases every message that waited for it): what
            // is staged leaves in chunks, so that the bound counts only lines the socket has
            // not taken, as it does on the other transports where the writer drains meanwhile.
            if self.staged.len() >= STAGED_BYTES {
                self.flush(spares)?;
            }
            return Ok(if first { Pushed::Flush } else { Pushed::Queued });
        }
        let mut pending = self.shared.lock();
        if pending.lines >= self.shared.queues.limit {
            return Err(Full);
        }
        let was_empty = pending.lines == 0;
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        let wake = if was_empty { pending.for_writer() } else { Wake(None, None) };
        drop(pending);
        wake.now();
        Ok(Pushed::Queued)
    }

    /// Writes the staged lines straight to the socket, or behind what the writer task is
    /// writing; whatever the socket does not take now goes to the writer task. The emptied
    /// staging buffer goes to `spares`.
    pub fn flush(&mut self, spares: &mut Spares) -> Result<(), Full> {
        let Some(socket) = &self.shared.direct else { return Ok(()) };
        if self.staged_lines == 0 {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.staged_lines) as usize;
        let staged = std::mem::take(&mut self.staged);
        self.hint = staged.len().min(STAGED_BYTES).next_power_of_two() as u32;
        let mut pending = self.shared.lock();
        let result = if pending.writer_owns || !pending.bytes.is_empty() {
            if pending.lines + lines > self.shared.queues.limit {
                Err(Full)
            } else {
                pending.bytes.extend_from_slice(&staged);
                pending.lines += lines;
                Ok(())
            }
        } else {
            // Would block, or failed (0 written): the writer waits, or meets the error and
            // ends the connection.
            let written: usize = self.shared.send_now(socket, &staged).unwrap_or_default();
            if written < staged.len() {
                pending.bytes.extend_from_slice(&staged[written..]);
                pending.lines = lines;
                pending.writer_owns = true;
                drop(pending);
                self.shared.queues.tasks.spawn(drain(Arc::clone(&self.shared)));
            }
            Ok(())
        };
        spares.give(staged);
        result
    }
}

impl Outbox {
    /// Ends the connection: both halves stop at once, whatever is still queued.
    pub fn end(&self) {
        self.shared.end();
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut pending = self.shared.lock();
        // Lines staged in the hub's last round (an ERROR before a close) still go out.
        pending.bytes.extend_from_slice(&self.staged);
        pending.lines += self.staged_lines as usize;
        pending.closed = true;
        let Some(socket) = &self.shared.direct else {
            let wake = pending.for_writer();
            drop(pending);
            return wake.now();
        };
        if pending.writer_owns {
            // The writer task finishes, then stops the reading.
            return;
        }
        let written = if pending.bytes.is_empty() {
            0
        } else {
            match self.shared.send_now(socket, &pending.bytes) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => 0,
                Err(_) => {
                    let wake = pending.end();
                    drop(pending);
                    self.shared.finish(socket);
                    return wake.now();
                }
            }
        };
        if written == pending.bytes.len() {
            pending.bytes = Vec::new();
            let wake = pending.all_written();
            drop(pending);
            self.shared.finish(socket);
            wake.now();
        } else {
            pending.bytes.drain(..written);
            pending.writer_owns = true;
            drop(pending);
            self.shared.queues.tasks.spawn(drain(Arc::clone(&self.shared)));
        }
    }
}

/// What [`Queue::take`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Taken {
    /// Bytes to write.
    Bytes,
    /// The hub closed the queue and everything in it was taken: say goodbye.
    Closed,
    /// The connection was ended: stop now.
    Ended,
}

impl Queue {
    /// Waits until there is something to write and swaps it into `buf` (which must be empty).
    /// For queues without a direct socket (TLS, QUIC), whose writer task lives as long as the
    /// connection.
    pub async fn take(&self, buf: &mut Vec<u8>) -> Taken {
        std::future::poll_fn(|cx| {
            self.0.poll_writer(cx, |pending| {
                if pending.ended {
                    return Some(Taken::Ended);
                }
                if !pending.bytes.is_empty() {
                    std::mem::swap(&mut pending.bytes, buf);
                    pending.lines = 0;
                    return Some(Taken::Bytes);
                }
                if pending.closed {
                    return Some(Taken::Closed);
                }
                // Nothing to write: an idle connection keeps no buffer on either side.
                pending.bytes = Vec::new();
                *buf = Vec::new();
                None
            })
        })
        .await
    }

    /// Waits until the connection is ended; beside a write, so that it stops the write.
    pub async fn ended(&self) {
        self.0.ended().await;
    }

    /// Ends the connection (a write failed or timed out, or the queue was all written).
    pub fn end(&self) {
        self.0.end();
    }

    /// Tells the reader that the closed queue is all written: it stops reading.
    pub fn all_written(&self) {
        let wake = self.0.lock().all_written();
        wake.now();
    }

    /// The reader's hold on the connection, made before the queue goes to its writer (or is
    /// let go, on plain TCP).
    pub fn link(&self) -> Link {
        Link(Arc::clone(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Outbox {
        /// A push with spares of its own.
        fn push_alone(&mut self, line: &[u8]) -> Result<Pushed, Full> {
            self.push(line, &mut Spares::default())
        }
    }

    #[tokio::test]
    async fn lines_come_out_together_in_order_and_the_bound_holds() {
        let (mut outbox, queue) = outbox(&queues(2, &TaskTracker::new()), None, None);
        assert!(outbox.push_alone(b"a\r\n").is_ok());
        assert!(outbox.push_alone(b"b\r\n").is_ok());
        assert!(outbox.push_alone(b"c\r\n").is_err(), "a third line exceeds the bound");
        let mut buf = Vec::new();
        assert_eq!(queue.take(&mut buf).await, Taken::Bytes);
        assert_eq!(buf, b"a\r\nb\r\n");
        buf.clear();
        assert!(outbox.push_alone(b"c\r\n").is_ok(), "taking the lines frees the room");
        drop(outbox);
        assert_eq!(queue.take(&mut buf).await, Taken::Bytes, "what was queued before closing is still written");
        assert_eq!(buf, b"c\r\n");
        buf.clear();
        assert_eq!(queue.take(&mut buf).await, Taken::Closed);
    }

    /// Every connection holds one `Shared` in an `Arc` (two counters more): at most 128 bytes
    /// in all is one of mimalloc's size classes (the next is 160). It was 152 (so 192) with a
    /// `Notify` for the writer and a copy of the bound, the counters, the write timeout and
    /// the task tracker in each.
    #[test]
    fn a_connections_shared_state_fits_128_bytes() {
        let size = std::mem::size_of::<Shared>() + 16;
        assert!(size <= 128, "the shared state takes {size} bytes");
    }

    async fn woken<T>(task: tokio::task::JoinHandle<T>) -> T {
        tokio::time::timeout(Duration::from_secs(10), task).await.expect("woken in time").expect("task")
    }

    /// Ending a connection reaches its writer, whether it waits for bytes or is in the middle
    /// of a write, and its reader waiting for input. (A connection has one writer task, and
    /// it does one of the two at a time.)
    #[tokio::test]
    async fn ending_a_connection_wakes_its_writer_and_its_reader() {
        for writing in [false, true] {
            let (outbox, queue) = outbox(&queues(8, &TaskTracker::new()), None, None);
            let link = queue.link();
            let writer = tokio::spawn(async move {
                if writing {
                    // As in a write that cannot finish: only the end stops it.
                    tokio::select! {
                        _ = queue.ended() => Taken::Ended,
                        _ = std::future::pending::<()>() => Taken::Bytes,
                    }
                } else {
                    queue.take(&mut Vec::new()).await
                }
            });
            let reader = tokio::spawn(async move { std::future::poll_fn(|cx| link.poll_stop(cx)).await });
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
            assert!(!writer.is_finished() && !reader.is_finished(), "nothing has ended yet");
            outbox.end();
            assert_eq!(woken(writer).await, Taken::Ended, "writing: {writing}");
            woken(reader).await;
        }
        // Ended takes precedence over bytes still queued and over the close.
        let (mut outbox, queue) = outbox(&queues(8, &TaskTracker::new()), None, None);
        outbox.push_alone(b"a\r\n").expect("room");
        outbox.end();
        drop(outbox);
        assert_eq!(queue.take(&mut Vec::new()).await, Taken::Ended);
    }

    /// Takes every line that starts with `~`.
    struct Tilde(Mutex<Vec<Vec<u8>>>);

    impl Divert for Arc<Tilde> {
        fn divert(&self, line: &[u8]) -> bool {
            let take = line.starts_with(b"~");
            if take {
                self.0.lock().unwrap_or_else(|p| p.into_inner()).push(line.to_vec());
            }
            take
        }
    }

    #[tokio::test]
    async fn diverted_lines_skip_the_queue_and_its_bound() {
        let side = Arc::new(Tilde(Mutex::default()));
        let (mut outbox, queue) = outbox(&queues(1, &TaskTracker::new()), Some(Box::new(Arc::clone(&side))), None);
        assert!(outbox.push_alone(b"a\r\n").is_ok());
        assert!(outbox.push_alone(b"~typing\r\n").is_ok(), "a diverted line does not count against the bound");
        assert!(outbox.push_alone(b"b\r\n").is_err());
        let mut buf = Vec::new();
        assert_eq!(queue.take(&mut buf).await, Taken::Bytes);
        assert_eq!(buf, b"a\r\n");
        assert_eq!(*side.0.lock().unwrap_or_else(|p| p.into_inner()), [b"~typing\r\n".to_vec()]);
    }

    /// A connected pair of loopback sockets: (our side, the peer).
    async fn socket_pair() -> (tokio::net::TcpStream, tokio::net::TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (peer, ours) = tokio::join!(tokio::net::TcpStream::connect(addr), listener.accept());
        (ours.expect("accept").0, peer.expect("connect"))
    }

    async fn read_exactly(peer: &mut tokio::net::TcpStream, n: usize) -> Vec<u8> {
        use tokio::io::AsyncReadExt;
        let mut got = vec![0; n];
        let read = tokio::time::timeout(std::time::Duration::from_secs(10), peer.read_exact(&mut got));
        read.await.expect("the bytes arrive in time").expect("read");
        got
    }

    /// What a listener's connections share, with `limit` and `tasks`.
    fn queues(limit: usize, tasks: &TaskTracker) -> Arc<Queues> {
        let metrics = crate::metrics::Metrics::new();
        Arc::new(Queues { limit, line_len: 512, metrics, write_timeout: Duration::from_secs(10), tasks: tasks.clone() })
    }

    fn direct(socket: tokio::net::TcpStream) -> Option<OwnedWriteHalf> {
        Some(socket.into_split().1)
    }

    async fn reads_end_of_stream(peer: &mut tokio::net::TcpStream) -> bool {
        use tokio::io::AsyncReadExt;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), peer.read(&mut byte)).await;
        matches!(read, Ok(Ok(0)))
    }

    #[tokio::test]
    async fn on_tcp_the_hub_writes_itself_and_a_writer_task_runs_only_while_the_socket_is_full() {
        let (ours, mut peer) = socket_pair().await;
        socket2::SockRef::from(&ours).set_send_buffer_size(64 * 1024).expect("SO_SNDBUF");
        let tasks = TaskTracker::new();
        let (mut outbox, queue) = outbox(&queues(1_000_000, &tasks), None, direct(ours));
        let link = queue.link();
        drop(queue);
        let stopped = |link: &Link| link.poll_stop(&mut Context::from_waker(Waker::noop())).is_ready();
        let mut spares = Spares::default();

        // No task runs: a flushed line still reaches the peer.
        assert_eq!(outbox.push(b"first\r\n", &mut spares).ok(), Some(Pushed::Flush));
        assert_eq!(outbox.push(b"second\r\n", &mut spares).ok(), Some(Pushed::Queued), "one flush per round");
        outbox.flush(&mut spares).expect("within the bound");
        assert_eq!(read_exactly(&mut peer, 15).await, b"first\r\nsecond\r\n");
        assert!(tasks.is_empty(), "no writer task while the socket takes everything");

        // More than the socket buffers can hold: a writer task takes the rest.
        let mut expected = Vec::new();
        for i in 0..8192u32 {
            let mut line = format!("{i:06}").into_bytes();
            line.resize(1022, b'x');
            line.extend_from_slice(b"\r\n");
            let _ = outbox.push(&line, &mut spares);
            expected.extend_from_slice(&line);
        }
        outbox.flush(&mut spares).expect("within the bound");
        assert!(outbox.shared.lock().writer_owns, "8 MiB do not fit in the socket: the writer must take over");
        assert_eq!(tasks.len(), 1);
        // Flushed while the writer owns the queue: queued behind what it writes.
        assert_eq!(outbox.push(b"after\r\n", &mut spares).ok(), Some(Pushed::Flush));
        outbox.flush(&mut spares).expect("within the bound");
        expected.extend_from_slice(b"after\r\n");
        assert!(read_exactly(&mut peer, expected.len()).await == expected, "every byte, in order");
        tasks.close();
        tokio::time::timeout(Duration::from_secs(10), tasks.wait()).await.expect("the writer ends when dry");
        assert!(!outbox.shared.lock().writer_owns, "the hub writes again");
        assert!(!stopped(&link), "the connection goes on");

        // Closing: what is left is written, the reader is told, and the socket is shut down.
        let _ = outbox.push(b"ERROR :bye\r\n", &mut spares);
        drop(outbox);
        assert_eq!(read_exactly(&mut peer, 12).await, b"ERROR :bye\r\n");
        assert!(stopped(&link), "the reader is told to stop");
        assert!(
            reads_end_of_stream(&mut peer).await,
            "the peer gets its end of stream while the reader still holds on"
        );
    }

    #[tokio::test]
    async fn a_flushed_direct_queue_keeps_no_buffer_and_the_next_one_reuses_it() {
        let (first, mut first_peer) = socket_pair().await;
        let (second, mut second_peer) = socket_pair().await;
        let tasks = TaskTracker::new();
        let (mut one, _queue_one) = outbox(&queues(10, &tasks), None, direct(first));
        let (mut two, _queue_two) = outbox(&queues(10, &tasks), None, direct(second));
        let mut spares = Spares::default();
        let _ = one.push(b"hello\r\n", &mut spares);
        one.flush(&mut spares).expect("within the bound");
        assert_eq!(read_exactly(&mut first_peer, 7).await, b"hello\r\n");
        assert_eq!(one.staged.capacity(), 0, "an idle connection holds no buffer");
        assert_eq!(spares.0.len(), 1);
        let _ = two.push(b"again\r\n", &mut spares);
        assert!(spares.0.is_empty(), "the next connection took the spare");
        two.flush(&mut spares).expect("within the bound");
        assert_eq!(read_exactly(&mut second_peer, 7).await, b"again\r\n");
    }

    /// A connection that got many lines last round starts the next with room for as many, so
    /// that its buffer is not grown (and copied) line by line from a small spare.
    #[tokio::test]
    async fn a_round_starts_with_the_room_the_last_one_took() {
        let (ours, mut peer) = socket_pair().await;
        let (mut outbox, _queue) = outbox(&queues(100, &TaskTracker::new()), None, direct(ours));
        let mut spares = Spares::default();
        let line = [b'x'; 1000];
        for _ in 0..10 {
            outbox.push(&line, &mut spares).expect("room");
        }
        outbox.flush(&mut spares).expect("within the bound");
        read_exactly(&mut peer, 10_000).await;
        spares.give(Vec::with_capacity(64));
        outbox.push(b"small\r\n", &mut spares).expect("room");
        assert!(outbox.staged.capacity() >= 10_000, "room for last round's 10,000 bytes");
        assert_eq!(spares.0.len(), 1, "the spare too small for it was let go");
        assert!(spares.0[0].capacity() >= 10_000, "last round's buffer waits for the next connection");
    }

    #[tokio::test]
    async fn a_long_round_writes_as_it_goes_so_the_bound_counts_only_unsent_lines() {
        let (ours, mut peer) = socket_pair().await;
        let (mut outbox, _queue) = outbox(&queues(100, &TaskTracker::new()), None, direct(ours));
        let mut spares = Spares::default();
        let mut expected = Vec::new();
        for i in 0..300u32 {
            let mut line = format!("{i:04}").into_bytes();
            line.resize(1022, b'y');
            line.extend_from_slice(b"\r\n");
            assert!(outbox.push(&line, &mut spares).is_ok(), "line {i}: the socket took the earlier ones");
            expected.extend_from_slice(&line);
        }
        outbox.flush(&mut spares).expect("within the bound");
        assert!(read_exactly(&mut peer, expected.len()).await == expected, "every byte, in order");
    }
}
