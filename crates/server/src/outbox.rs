//! A connection's outbound queue: the hub appends lines, the connection's writer takes all of
//! them at once and writes them with one call.
//!
//! Why not a channel of `Bytes`: a room message is one push per member, and per push a channel
//! costs a slot, a permit, a reference count up and down on a shared buffer and often a
//! wake-up; profiles of a 100-member room put a quarter of the server's CPU there. Here a push
//! is a copy of the line into the connection's pending bytes under an uncontended lock, and the
//! writer is woken only when the queue goes from empty to not empty. The writer swaps the
//! pending bytes for its own (empty) buffer, so nothing is copied twice, and an idle connection
//! holds no buffer at all.
//!
//! A transport may carry some lines beside its stream ([`Divert`]: QUIC sends `+typing` as
//! datagrams); those leave at push time and never wait in the queue.
//!
//! Bounded: at most `limit` lines wait. A push beyond that fails and the hub drops the
//! connection ("SendQ exceeded"); the hub never waits for a connection.

use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// What waits to be written.
#[derive(Debug, Default)]
struct Pending {
    bytes: Vec<u8>,
    lines: usize,
    /// The hub let go: write what is here, then close.
    closed: bool,
}

#[derive(Debug)]
struct Shared {
    pending: Mutex<Pending>,
    /// Woken when `pending` stops being empty or is closed.
    ready: Notify,
    limit: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        // A panic while holding this lock leaves plain bytes behind; they are still valid.
        self.pending.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Lines a transport can carry beside its stream: QUIC sends `+typing` as datagrams.
pub(crate) trait Divert: Send + Sync + 'static {
    /// Sends `line` another way and returns true, or returns false to leave it to the stream.
    /// Called by the hub: it must not wait.
    fn divert(&self, line: &[u8]) -> bool;
}

/// The hub's end. Dropping it closes the queue: the writer writes what is left, then closes.
pub(crate) struct Outbox(Arc<Shared>, Option<Box<dyn Divert>>);

impl std::fmt::Debug for Outbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Outbox").field(&self.0).field(&self.1.is_some()).finish()
    }
}

/// The writer's end.
#[derive(Debug)]
pub(crate) struct Queue(Arc<Shared>);

/// The queue already holds `limit` lines.
#[derive(Debug)]
pub(crate) struct Full;

/// A queue of at most `limit` lines, with the transport's way around it if it has one.
pub(crate) fn outbox(limit: usize, divert: Option<Box<dyn Divert>>) -> (Outbox, Queue) {
    let shared = Arc::new(Shared { pending: Mutex::default(), ready: Notify::new(), limit });
    (Outbox(Arc::clone(&shared), divert), Queue(shared))
}

impl Outbox {
    /// Appends one line (with its CRLF). Never waits.
    pub fn push(&self, line: &[u8]) -> Result<(), Full> {
        if self.1.as_ref().is_some_and(|d| d.divert(line)) {
            return Ok(());
        }
        let mut pending = self.0.lock();
        if pending.lines >= self.0.limit {
            return Err(Full);
        }
        let was_empty = pending.lines == 0;
        pending.bytes.extend_from_slice(line);
        pending.lines += 1;
        drop(pending);
        if was_empty {
            self.0.ready.notify_one();
        }
        Ok(())
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        self.0.lock().closed = true;
        self.0.ready.notify_one();
    }
}

impl Queue {
    /// Waits until there is something to write and swaps it into `buf` (which must be empty).
    /// Returns false once the queue is closed and everything in it has been taken.
    pub async fn take(&self, buf: &mut Vec<u8>) -> bool {
        loop {
            {
                let mut pending = self.0.lock();
                if pending.lines > 0 {
                    std::mem::swap(&mut pending.bytes, buf);
                    pending.lines = 0;
                    return true;
                }
                if pending.closed {
                    return false;
                }
                // Nothing to write: an idle connection keeps no buffer on either side.
                pending.bytes = Vec::new();
                *buf = Vec::new();
            }
            self.0.ready.notified().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_come_out_together_in_order_and_the_bound_holds() {
        let (outbox, queue) = outbox(2, None);
        assert!(outbox.push(b"a\r\n").is_ok());
        assert!(outbox.push(b"b\r\n").is_ok());
        assert!(outbox.push(b"c\r\n").is_err(), "a third line exceeds the bound");
        let mut buf = Vec::new();
        assert!(queue.take(&mut buf).await);
        assert_eq!(buf, b"a\r\nb\r\n");
        buf.clear();
        assert!(outbox.push(b"c\r\n").is_ok(), "taking the lines frees the room");
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
        let (outbox, queue) = outbox(1, Some(Box::new(Arc::clone(&side))));
        assert!(outbox.push(b"a\r\n").is_ok());
        assert!(outbox.push(b"~typing\r\n").is_ok(), "a diverted line does not count against the bound");
        assert!(outbox.push(b"b\r\n").is_err());
        let mut buf = Vec::new();
        assert!(queue.take(&mut buf).await);
        assert_eq!(buf, b"a\r\n");
        assert_eq!(*side.0.lock().unwrap_or_else(|p| p.into_inner()), [b"~typing\r\n".to_vec()]);
    }
}
