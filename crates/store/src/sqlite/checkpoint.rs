//! Checkpoints on their own thread, so that commits do not wait for them.
//!
//! In WAL mode a commit appends pages to the `-wal` file; a checkpoint copies them back into the
//! database file and syncs it, after which the WAL can start over from its beginning. SQLite's
//! automatic checkpoint runs inside the commit that crosses `wal_autocheckpoint`: that one
//! commit copies megabytes and syncs the database, and every message queued behind it waits.
//!
//! Here the writer only counts: a WAL hook on its connection learns after each commit how many
//! pages the WAL holds, and wakes the checkpointer thread when there is work (the first commit
//! after an idle spell, or [`CHECKPOINT_PAGES`] new pages; otherwise the thread comes by every
//! [`CHECKPOINT_PERIOD`] while commits arrive). The thread, with its own connection to the file,
//! runs passive checkpoints: they never wait for the writer, which keeps appending while they
//! copy.
//!
//! The WAL only starts over when a checkpoint has copied *all* of it before the writer's next
//! transaction begins, and under steady load the writer has always appended a little more by the
//! time the thread's checkpoint ends. So once the WAL holds [`RESTART_PAGES`], the thread
//! checkpoints back to back to keep the uncopied tail short, and the writer copies that tail
//! itself, inline, when it is small ([`TAIL_PAGES`]): its next transaction then restarts the
//! WAL. That costs the writer one sync of the database file per [`RESTART_PAGES`], instead of a
//! full checkpoint per `wal_autocheckpoint` pages. Last, the writer checkpoints inline whatever
//! the tail at [`SAFETY_VALVE_PAGES`], so a checkpointer that cannot keep up (a writer at full
//! speed) or keeps failing leaves a bounded WAL, not an endless one.
//!
//! Measured with `examples/store_bench.rs --rate 1000` (1000 messages a second, group commit,
//! the 2-core development machine, three runs each): message latency p99 went from 8-52 ms to
//! 7-9 ms and p99.9 from 18-112 ms to 14-31 ms with synchronous FULL; with NORMAL, where a
//! commit does not sync, p99 from 23-51 ms to 2-3 ms. The writer copies a tail 10 to 15 times
//! in 20 s, usually 3 to 11 ms each, mostly the sync (the shared disk stalls for 100 ms at
//! times, whoever syncs).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::hooks::Wal;
use rusqlite::wal::CheckpointMode;
use rusqlite::{ffi, Connection};

/// Checkpoint once the writer has appended this many pages (4 MiB of 4 KiB pages) since the
/// last checkpoint. Smaller means more checkpoints, each with two syncs, and hot pages (a busy
/// room's latest index page) copied more often; larger means more dirty data per sync, which
/// then delays the writer's own syncs. `examples/store_bench.rs --rate 1000` showed no
/// difference from 250 to 2000 pages beyond the machine's noise; 1000 keeps the WAL file about
/// the size it had with SQLite's automatic checkpoint.
pub(super) const CHECKPOINT_PAGES: u64 = 1000;

/// Checkpoint at most this long after a commit even below [`CHECKPOINT_PAGES`], so that a quiet
/// server's WAL is copied back and restarted too, at the cost of at most four checkpoints a
/// second (none at all while nothing is written).
const CHECKPOINT_PERIOD: Duration = Duration::from_millis(250);

/// Once the WAL holds this many pages (16 MiB), it is brought to a restart (see the module
/// documentation). Four checkpoints' worth: the writer's inline tail copy happens once per this
/// many pages, and the file stays at about this size.
const RESTART_PAGES: u64 = 4 * CHECKPOINT_PAGES;

/// The most pages the writer copies itself to restart the WAL (half a MiB), so that the copy is
/// small next to the sync of the database file that comes with it. At 1000 messages a second the
/// thread's back-to-back checkpoints bring the tail under this within a few of them; a writer at
/// full speed appends more than this during each, and reaches the safety valve instead.
const TAIL_PAGES: u64 = CHECKPOINT_PAGES / 8;

/// The writer checkpoints inline whatever the tail once the WAL holds this many pages (32 MiB):
/// twice the restart size, so it happens only when the writer appends faster than the thread
/// copies (a writer at full speed: then the tail is what the thread did not finish, not the
/// whole WAL) or checkpoints keep failing. It bounds the WAL file and the time to replay it
/// after a crash. `open.rs` also sets it as `wal_autocheckpoint`, which applies until the hook
/// below takes over.
pub(super) const SAFETY_VALVE_PAGES: u64 = 2 * RESTART_PAGES;

/// After a checkpoint found another one running (the writer copying its tail), try again this
/// soon: the other one is short.
const BUSY_RETRY: Duration = Duration::from_millis(10);

/// The checkpointer thread of one [`super::SqliteStore`]: stopped and joined on drop, after a
/// last checkpoint.
pub(super) struct Checkpointer {
    shared: Arc<Shared>,
    /// Wakes the thread: the writer's hook holds a clone; drop uses this one to stop it.
    wake: SyncSender<()>,
    thread: Option<JoinHandle<()>>,
}

/// What the writer's WAL hook and the checkpointer thread share. Nothing on the writer's path
/// blocks: it adds to counters and, sometimes, `try_send`s on a channel of one slot (a full slot
/// means the thread is already due to wake).
#[derive(Default)]
struct Shared {
    /// Pages the writer has appended to the WAL since the store was opened.
    appended: AtomicU64,
    /// `appended` when the last checkpoint started: the pages it copies, or has copied.
    covered: AtomicU64,
    /// `covered` of the last checkpoint that completed: the pages known to be copied.
    copied: AtomicU64,
    /// Pages in the WAL after the writer's last commit.
    wal_pages: AtomicU64,
    /// Set by the thread before it waits with no work, so that the writer's next commit wakes
    /// it. Both sides use `SeqCst`: either the thread sees the new pages after setting the flag,
    /// or the writer sees the flag and wakes it.
    idle: AtomicBool,
    /// Set on drop: checkpoint once more and exit.
    stop: AtomicBool,
    /// Why the last checkpoint failed, if it did; cleared by one that succeeds. Failures are
    /// retried a period later.
    last_error: Mutex<Option<String>>,
}

impl Shared {
    /// Pages appended since the last checkpoint started.
    fn pending(&self) -> u64 {
        self.appended.load(Ordering::SeqCst).saturating_sub(self.covered.load(Ordering::SeqCst))
    }

    /// What the writer does after each commit, with `added` pages appended and `wal_pages` in
    /// the WAL: wake the thread if there is reason to, and checkpoint inline if the WAL is due
    /// for a restart with a short tail, or reached the safety valve.
    fn committed(&self, added: u64, wal_pages: u64, wake: &SyncSender<()>, wal: &mut Wal) {
        let appended = self.appended.fetch_add(added, Ordering::SeqCst) + added;
        self.wal_pages.store(wal_pages, Ordering::SeqCst);
        let pending = appended.saturating_sub(self.covered.load(Ordering::SeqCst));
        let crossed = pending >= CHECKPOINT_PAGES && pending - added.min(pending) < CHECKPOINT_PAGES;
        if self.idle.swap(false, Ordering::SeqCst) || crossed {
            // Full: a wake is already pending. Disconnected: the thread has stopped.
            let _ = wake.try_send(());
        }
        if self.writers_turn() {
            // Busy (the thread is checkpointing) or failed: the next commit tries again.
            let _ = wal.checkpoint();
        }
    }

    /// Whether the WAL is due for a restart and the writer is to copy the rest itself, after its
    /// next commit: the uncopied tail is short enough, or the WAL reached the safety valve. The
    /// thread starts no checkpoint meanwhile, which would hold the lock the writer needs.
    fn writers_turn(&self) -> bool {
        let wal_pages = self.wal_pages.load(Ordering::SeqCst);
        let tail = self.appended.load(Ordering::SeqCst).saturating_sub(self.copied.load(Ordering::SeqCst));
        let restart = wal_pages >= RESTART_PAGES && tail <= TAIL_PAGES;
        restart || wal_pages >= SAFETY_VALVE_PAGES
    }
}

impl Checkpointer {
    /// Installs the WAL hook on `writer` and starts the thread with `own`, a second connection
    /// to the same file.
    pub(super) fn start(writer: &mut Connection, own: Connection) -> std::io::Result<Checkpointer> {
        let shared = Arc::new(Shared::default());
        let (wake, woken) = mpsc::sync_channel(1);
        let thread = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new().name("chinwag-checkpoint".into()).spawn(move || run(&own, &shared, &woken))?
        };
        let mut checkpointer = Checkpointer { shared, wake, thread: Some(thread) };
        let (shared, wake) = (Arc::clone(&checkpointer.shared), checkpointer.wake.clone());
        let mut last_pages = 0;
        // The hook replaces SQLite's automatic checkpoint (a connection has one WAL hook), so
        // `committed` does the safety valve's part. It must return `Ok`: an error would make the
        // statement that committed report a failure although it committed.
        let hook = move |wal: &mut Wal, pages: std::ffi::c_int| {
            let pages = u64::try_from(pages).unwrap_or(0);
            // Fewer pages than after the previous commit: the WAL started over.
            let added = if pages >= last_pages { pages - last_pages } else { pages };
            last_pages = pages;
            shared.committed(added, pages, &wake, wal);
            Ok(())
        };
        if let Err(e) = writer.wal_hook(Some(hook)) {
            checkpointer.stop();
            return Err(std::io::Error::other(e));
        }
        Ok(checkpointer)
    }

    /// Why the last background checkpoint failed, if it did.
    pub(super) fn last_error(&self) -> Option<String> {
        self.shared.last_error.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Stops the thread after its last checkpoint, and waits for it.
    fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.try_send(());
        if let Some(thread) = self.thread.take() {
            // It does not panic; if it did, there is nothing left to stop.
            let _ = thread.join();
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How a checkpoint went.
enum Outcome {
    Done,
    /// Another connection was checkpointing (the writer copying its tail).
    Busy,
    Failed,
}

/// The thread: wait for work, checkpoint, repeat; a last checkpoint when stopped.
fn run(conn: &Connection, shared: &Shared, woken: &Receiver<()>) {
    let mut last = Instant::now();
    // After a checkpoint that did not run: when to try again, however much is pending.
    let mut retry_at = None;
    while !shared.stop.load(Ordering::SeqCst) {
        if shared.pending() == 0 {
            if !wait_for_commits(shared, woken) {
                break;
            }
            // Gather a period's worth of commits after an idle spell rather than copying the
            // first one alone.
            last = last.max(Instant::now());
            continue;
        }
        let now = Instant::now();
        let writers_turn = shared.writers_turn();
        let catching_up = shared.wal_pages.load(Ordering::SeqCst) >= RESTART_PAGES && !writers_turn;
        let due = match retry_at {
            Some(at) => at,
            None if writers_turn => last + CHECKPOINT_PERIOD,
            None if catching_up || shared.pending() >= CHECKPOINT_PAGES => now,
            None => last + CHECKPOINT_PERIOD,
        };
        if now < due {
            // Woken early by the writer (the threshold, or drop), or the deadline: look again.
            if let Err(RecvTimeoutError::Disconnected) = woken.recv_timeout(due - now) {
                break;
            }
            continue;
        }
        retry_at = match checkpoint(conn, shared) {
            Outcome::Done => None,
            Outcome::Busy => Some(Instant::now() + BUSY_RETRY),
            Outcome::Failed => Some(Instant::now() + CHECKPOINT_PERIOD),
        };
        last = Instant::now();
    }
    if shared.pending() > 0 {
        checkpoint(conn, shared);
    }
}

/// Sleeps until the writer commits or the store stops; `false` if the writer is gone.
fn wait_for_commits(shared: &Shared, woken: &Receiver<()>) -> bool {
    shared.idle.store(true, Ordering::SeqCst);
    let go_on = shared.pending() > 0 || shared.stop.load(Ordering::SeqCst) || woken.recv().is_ok();
    shared.idle.store(false, Ordering::SeqCst);
    go_on
}

/// One passive checkpoint: copies what no reader still needs, and never waits for the writer.
fn checkpoint(conn: &Connection, shared: &Shared) -> Outcome {
    let before = shared.covered.load(Ordering::SeqCst);
    let covering = shared.appended.load(Ordering::SeqCst);
    shared.covered.store(covering, Ordering::SeqCst);
    let result = conn.wal_checkpoint_v2(Some(rusqlite::MAIN_DB), CheckpointMode::PASSIVE);
    let outcome = match &result {
        Ok(_) => Outcome::Done,
        Err(e) => match e.sqlite_error_code() {
            Some(ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked) => Outcome::Busy,
            _ => Outcome::Failed,
        },
    };
    match outcome {
        Outcome::Done => {
            shared.copied.store(covering, Ordering::SeqCst);
            *shared.last_error.lock().unwrap_or_else(PoisonError::into_inner) = None;
        }
        Outcome::Busy | Outcome::Failed => {
            shared.covered.store(before, Ordering::SeqCst);
            if let (Outcome::Failed, Err(e)) = (&outcome, &result) {
                *shared.last_error.lock().unwrap_or_else(PoisonError::into_inner) = Some(e.to_string());
            }
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::{Duration, Instant};

    use super::*;
    use crate::sqlite::{SqliteOptions, SqliteStore};
    use crate::{Bound, HistoryQuery, Store, StoredMessage};

    fn message(n: u64, text: String) -> StoredMessage {
        StoredMessage {
            msgid: format!("{n:012}"),
            time_ms: 1_000_000 + n,
            command: "PRIVMSG".into(),
            sender: "alice!alice@example.net".into(),
            sender_account: Some("alice".into()),
            target: "#big".into(),
            text,
            tags: String::new(),
            conversation: "#big".into(),
            participants: Vec::new(),
            offline_for: None,
        }
    }

    fn file_len(path: &Path, suffix: &str) -> u64 {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::fs::metadata(name).map_or(0, |m| m.len())
    }

    /// A writer appending as fast as it can, in batches of 20 large messages, writes three
    /// safety valves' worth of WAL, and the WAL file never grows much past the safety valve (a
    /// few times the checkpoint threshold): it keeps restarting. Every message is there after a
    /// reopen.
    #[test]
    fn the_wal_file_stays_bounded_under_a_writer_at_full_speed() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chinwag.db");
        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        // About one page per message, so that the test writes a lot of WAL for little CPU.
        let text = "x".repeat(3000);
        let target = 3 * SAFETY_VALVE_PAGES;
        // A WAL frame is a page and a 24-byte header, after a 32-byte file header. The slack is
        // what the writer appends while the thread finishes a checkpoint it is in the middle of.
        let bound = (SAFETY_VALVE_PAGES + RESTART_PAGES) * (4096 + 24) + 32;
        let deadline = Instant::now() + Duration::from_secs(120);
        let (mut written, mut largest_wal) = (0, 0);
        for _ in 0..10_000 {
            if store.checkpointer.shared.appended.load(Ordering::SeqCst) >= target || Instant::now() > deadline {
                break;
            }
            let batch: Vec<_> = (written..written + 20).map(|n| message(n, text.clone())).collect();
            store.append(&batch).expect("append");
            written += 20;
            largest_wal = largest_wal.max(file_len(&path, "-wal"));
        }
        let appended = store.checkpointer.shared.appended.load(Ordering::SeqCst);
        assert!(appended >= target, "wrote only {appended} pages of WAL ({written} messages) in the time allowed");
        assert!(largest_wal <= bound, "the WAL file grew to {largest_wal} bytes, above {bound}");
        assert_eq!(store.checkpoint_error(), None);
        drop(store);

        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
        let (mut read, mut after) = (0, Bound::Time(0));
        for _ in 0..=written / 1000 + 1 {
            let page = store.history("#big", &HistoryQuery::After(after.clone()), 1000).expect("history");
            for m in &page {
                assert_eq!(m.msgid, format!("{read:012}"), "messages in order, none missing");
                read += 1;
            }
            match page.last() {
                Some(m) => after = Bound::MsgId(m.msgid.clone()),
                None => break,
            }
        }
        assert_eq!(read, written);
    }

    /// One message on a quiet server reaches the database file itself within a moment, not only
    /// the WAL: the thread checkpoints a period after commits even far below its threshold.
    #[test]
    fn a_quiet_commit_is_copied_into_the_database_file_within_a_moment() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chinwag.db");
        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        let text = "a quiet message, 7f3a9c".to_string();
        store.append(&[message(1, text.clone())]).expect("append");
        let start = Instant::now();
        let in_file =
            || std::fs::read(&path).is_ok_and(|bytes| bytes.windows(text.len()).any(|w| w == text.as_bytes()));
        let mut found = in_file();
        while !found && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
            found = in_file();
        }
        assert!(found, "the message was not checkpointed into {} within 10 s", path.display());
        assert_eq!(store.checkpoint_error(), None);
    }

    /// Dropping the store right after a write, or after nothing, returns promptly (the thread is
    /// woken, not waited out) and leaves a file that reopens with everything in it.
    #[test]
    fn dropping_the_store_is_prompt_and_the_file_reopens() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chinwag.db");
        let store = SqliteStore::open(&path, SqliteOptions::default()).expect("open");
        let start = Instant::now();
        drop(store);
        assert!(start.elapsed() < Duration::from_secs(2), "an idle store took {:?} to drop", start.elapsed());

        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
        let batch: Vec<_> = (0..50).map(|n| message(n, format!("message {n}"))).collect();
        store.append(&batch).expect("append");
        let start = Instant::now();
        drop(store);
        assert!(start.elapsed() < Duration::from_secs(2), "a store took {:?} to drop", start.elapsed());
        assert_eq!(file_len(&path, "-wal"), 0, "the last connection to close removes the WAL");

        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("reopen");
        let latest = store.history("#big", &HistoryQuery::Latest { after: None }, 100).expect("history");
        assert_eq!(latest.len(), 50);
    }
}
