//! A connection's outbound queue: the hub appends lines, and they leave with one write per
//! connection per round of the hub.
//!
//! Why not a channel of `Bytes`: a room message is one push per member, and per push a channel
//! costs a slot, a permit, a reference count up and down on a shared buffer and often a
//! wake-up; profiles of a 100-member room put a quarter of the server's CPU there. Here a push
//! is a copy of the line into the connection's pending bytes.
//!
//! Who writes: on plain TCP ([`Direct`]) the hub collects a connection's lines in a buffer of
//! its own (`staged`: no lock per line) and writes them itself at the end of its round
//! (`flush`), with one non-blocking `send`: no task wakes up, which is most of the cost of a
//! delivery at low rates (a 1000-member room). Only when the socket cannot take everything does
//! the connection's writer task take over (`writer_owns`): the rest goes into the shared
//! pending bytes, the writer waits until the socket is writable and writes, and what the hub
//! flushes meanwhile is appended behind it; when it runs dry it hands the queue back. On TLS and
//! QUIC the writer task always writes: each push goes into the shared pending bytes, the hub
//! wakes the writer when they go from empty to not empty, and the writer swaps them for its own
//! (empty) buffer, so nothing is copied twice.
//!
//! Memory: an idle connection holds no buffer. The writer frees its buffers when it runs dry.
//! A staging buffer lives only within a round: a flush that wrote everything hands it back to
//! the hub's [`Spares`], and the next connection to get a line that round or the next takes it
//! from there, so busy connections do not allocate and grow a buffer every round either.
//!
//! A transport may carry some lines beside its stream ([`Divert`]: QUIC sends `+typing` as
//! datagrams); those leave at push time and never wait in the queue.
//!
//! Bounded: at most `limit` lines wait. A push beyond that fails and the hub drops the
//! connection ("SendQ exceeded"); the hub never waits for a connection.

use std::io;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

use crate::metrics::Metrics;

/// What waits to be written.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    /// The hub let go: write what is here, then close.
    closed: bool,
    /// With [`Direct`]: the writer task is writing (the hub must not), until it runs dry.
    writer_owns: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Woken when the writer has something to do: bytes to write or the end.
    ready: Notify,
    limit: usize,
    direct: Option<Direct>,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves plain bytes behind; they are still valid.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// A plain TCP socket's sending half, which the hub may write to without waiting. Dropped (and
/// so shut down for writing) when both ends of the queue are gone.
#[derive(Debug)]
pub(crate) struct Direct {
    socket: OwnedWriteHalf,
    metrics: Arc<Metrics>,
}

impl Direct {
    pub fn new(socket: OwnedWriteHalf, metrics: Arc<Metrics>) -> Self {
        Direct { socket, metrics }
    }

    /// Writes what the socket takes now, without waiting.
    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        let n = self.socket.try_write(buf)?;
        self.metrics.bytes_out.fetch_add(n as u64, Relaxed);
        Ok(n)
    }

    async fn write_all(&self, mut buf: &[u8]) -> io::Result<()> {
        while !buf.is_empty() {
            self.socket.writable().await?;
            match self.try_write(buf) {
                Ok(n) => buf = &buf[n..],
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
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
    /// With [`Direct`]: lines pushed this round, not yet flushed.
    staged: Vec<u8>,
    staged_lines: usize,
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

    fn take(&mut self) -> Vec<u8> {
        self.0.pop().unwrap_or_default()
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

/// A queue of at most `limit` lines, with the transport's way around it if it has one, and the
/// socket the hub writes to itself if it is plain TCP.
pub(crate) fn outbox(limit: usize, divert: Option<Box<dyn Divert>>, direct: Option<Direct>) -> (Outbox, Queue) {
    let shared = Arc::new(Shared { pending: Mutex::default(), ready: Notify::new(), limit, direct });
    (Outbox { shared: Arc::clone(&shared), divert, staged: Vec::new(), staged_lines: 0 }, Queue(shared))
}

impl Outbox {
    /// Appends one line (with its CRLF). Never waits.
    pub fn push(&mut self, line: &[u8], spares: &mut Spares) -> Result<Pushed, Full> {
        if self.divert.as_ref().is_some_and(|d| d.divert(line)) {
            return Ok(Pushed::Queued);
        }
        if self.shared.direct.is_some() {
            // The writer's share of the bound is checked at the flush.
            if self.staged_lines >= self.shared.limit {
                return Err(Full);
            }
            if self.staged_lines == 0 {
                self.staged = spares.take();
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
        if pending.lines >= self.shared.limit {
            return Err(Full);
        }
        let was_empty = pending.lines == 0;
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        drop(pending);
        if was_empty {
            self.shared.ready.notify_one();
        }
        Ok(Pushed::Queued)
    }

    /// Writes the staged lines straight to the socket, or behind what the writer task is
    /// writing; whatever the socket does not take now goes to the writer task. The emptied
    /// staging buffer goes to `spares`.
    pub fn flush(&mut self, spares: &mut Spares) -> Result<(), Full> {
        let Some(direct) = &self.shared.direct else { return Ok(()) };
        if self.staged_lines == 0 {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.staged_lines);
        let staged = std::mem::take(&mut self.staged);
        let mut pending = self.shared.lock();
        let result = if pending.writer_owns || !pending.bytes.is_empty() {
            if pending.lines + lines > self.shared.limit {
                Err(Full)
            } else {
                pending.bytes.extend_from_slice(&staged);
                pending.lines += lines;
                Ok(())
            }
        } else {
            // Would block, or failed (0 written): the writer waits, or meets the error and
            // ends the connection.
            let written: usize = direct.try_write(&staged).unwrap_or_default();
            if written < staged.len() {
                pending.bytes.extend_from_slice(&staged[written..]);
                pending.lines = lines;
                pending.writer_owns = true;
                drop(pending);
                self.shared.ready.notify_one();
            }
            Ok(())
        };
        spares.give(staged);
        result
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut pending = self.shared.lock();
        // Lines staged in the hub's last round (an ERROR before a close) still go out.
        pending.bytes.extend_from_slice(&self.staged);
        pending.lines += self.staged_lines;
        pending.closed = true;
        drop(pending);
        self.shared.ready.notify_one();
    }
}

impl Queue {
    /// Waits until there is something for the writer to write and swaps it into `buf` (which
    /// must be empty). Returns false once the queue is closed and everything in it has been
    /// taken.
    pub async fn take(&self, buf: &mut Vec<u8>) -> bool {
        let direct = self.0.direct.is_some();
        loop {
            {
                let mut pending = self.0.lock();
                // With a direct socket the hub writes unless it handed over (or let go).
                let ours = !direct || pending.writer_owns || pending.closed;
                if ours && !pending.bytes.is_empty() {
                    std::mem::swap(&mut pending.bytes, buf);
                    pending.lines = 0;
                    pending.writer_owns = direct;
                    return true;
                }
                if pending.closed {
                    return false;
                }
                // Dry: the hub writes again; an idle connection keeps no buffer here.
                pending.writer_owns = false;
                pending.bytes = Vec::new();
                *buf = Vec::new();
            }
            self.0.ready.notified().await;
        }
    }

    /// Writes `buf` to the direct socket, waiting as long as it takes. `None` if this queue has
    /// none (the caller writes to its own stream).
    pub async fn write_direct(&self, buf: &[u8]) -> Option<io::Result<()>> {
        let direct = self.0.direct.as_ref()?;
        Some(direct.write_all(buf).await)
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
        let (mut outbox, queue) = outbox(2, None, None);
        assert!(outbox.push_alone(b"a\r\n").is_ok());
        assert!(outbox.push_alone(b"b\r\n").is_ok());
        assert!(outbox.push_alone(b"c\r\n").is_err(), "a third line exceeds the bound");
        let mut buf = Vec::new();
        assert!(queue.take(&mut buf).await);
        assert_eq!(buf, b"a\r\nb\r\n");
        buf.clear();
        assert!(outbox.push_alone(b"c\r\n").is_ok(), "taking the lines frees the room");
        drop(outbox);
        assert!(queue.take(&mut buf).await, "what was queued before closing is still written");
        assert_eq!(buf, b"c\r\n");
        buf.clear();
        assert!(!queue.take(&mut buf).await);
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
        let (mut outbox, queue) = outbox(1, Some(Box::new(Arc::clone(&side))), None);
        assert!(outbox.push_alone(b"a\r\n").is_ok());
        assert!(outbox.push_alone(b"~typing\r\n").is_ok(), "a diverted line does not count against the bound");
        assert!(outbox.push_alone(b"b\r\n").is_err());
        let mut buf = Vec::new();
        assert!(queue.take(&mut buf).await);
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

    #[tokio::test]
    async fn on_tcp_the_hub_writes_itself_and_the_writer_takes_over_only_when_the_socket_is_full() {
        let (ours, mut peer) = socket_pair().await;
        socket2::SockRef::from(&ours).set_send_buffer_size(64 * 1024).expect("SO_SNDBUF");
        let (_read_half, write_half) = ours.into_split();
        let direct = Direct::new(write_half, crate::metrics::Metrics::new());
        let (mut outbox, queue) = outbox(1_000_000, None, Some(direct));

        // No writer task runs: a flushed line still reaches the peer.
        assert_eq!(outbox.push_alone(b"first\r\n").ok(), Some(Pushed::Flush));
        assert_eq!(outbox.push_alone(b"second\r\n").ok(), Some(Pushed::Queued), "one flush per round");
        outbox.flush(&mut Spares::default()).expect("within the bound");
        assert_eq!(read_exactly(&mut peer, 15).await, b"first\r\nsecond\r\n");

        // More than the socket buffers can hold: the flush hands the rest to the writer.
        let line = [b'x'; 1022];
        let mut expected = Vec::new();
        for i in 0..8192u32 {
            let mut one = format!("{i:06}").into_bytes();
            one.extend_from_slice(&line[..1016]);
            one.extend_from_slice(b"\r\n");
            let _ = outbox.push_alone(&one);
            expected.extend_from_slice(&one);
        }
        outbox.flush(&mut Spares::default()).expect("within the bound");
        assert!(outbox.shared.lock().writer_owns, "8 MiB do not fit in the socket: the writer must take over");
        let writer = tokio::spawn(async move {
            let mut buf = Vec::new();
            while queue.take(&mut buf).await {
                queue.write_direct(&buf).await.expect("a direct queue").expect("write");
                buf.clear();
            }
        });
        // Flushed while the writer owns the queue: queued behind what it writes.
        assert_eq!(outbox.push_alone(b"after\r\n").ok(), Some(Pushed::Flush));
        outbox.flush(&mut Spares::default()).expect("within the bound");
        expected.extend_from_slice(b"after\r\n");
        assert!(read_exactly(&mut peer, expected.len()).await == expected, "every byte, in order");

        drop(outbox);
        tokio::time::timeout(std::time::Duration::from_secs(10), writer).await.expect("the writer ends").expect("join");
        assert_eq!(read_exactly(&mut peer, 0).await, b"");
    }

    #[tokio::test]
    async fn a_flushed_direct_queue_keeps_no_buffer_and_the_next_one_reuses_it() {
        let (first, mut first_peer) = socket_pair().await;
        let (second, mut second_peer) = socket_pair().await;
        let direct = |s: tokio::net::TcpStream| Some(Direct::new(s.into_split().1, crate::metrics::Metrics::new()));
        let (mut one, _queue_one) = outbox(10, None, direct(first));
        let (mut two, _queue_two) = outbox(10, None, direct(second));
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

    #[tokio::test]
    async fn a_long_round_writes_as_it_goes_so_the_bound_counts_only_unsent_lines() {
        let (ours, mut peer) = socket_pair().await;
        let (_read_half, write_half) = ours.into_split();
        let (mut outbox, _queue) = outbox(100, None, Some(Direct::new(write_half, crate::metrics::Metrics::new())));
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
