//! The store's thread: the one place SQLite (or another backend) runs, off the async runtime.
//!
//! Jobs are closures run in order on a dedicated thread that owns the [`Store`]. History writes
//! (group commits), reads and room saves all go through it, so a read never sees less than what
//! was committed before it was asked.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use chinwag_core::{Bound, ChannelSnapshot, HistoryItem, HistoryQuery};
use chinwag_store as store;
use chinwag_store::Store;
use tokio::sync::{mpsc, oneshot};

type Job = Box<dyn FnOnce(&mut dyn Store) + Send>;

/// Jobs other than commits that may wait at once; beyond it, requests are refused as busy.
pub(crate) const MAX_QUEUED_JOBS: usize = 4096;
/// Pause between attempts when a commit fails (disk full, I/O error): messages are held, never
/// dropped or acknowledged without being stored.
const COMMIT_RETRY: Duration = Duration::from_millis(500);

/// A handle on the store thread. Cloning shares the thread.
#[derive(Clone)]
pub(crate) struct Storage {
    jobs: mpsc::UnboundedSender<Job>,
    /// Jobs queued and not yet started, bounded by [`MAX_QUEUED_JOBS`] for all but commits.
    queued: Arc<AtomicUsize>,
    /// Commit latency and stored-message counts go here.
    metrics: Arc<crate::metrics::Metrics>,
    /// Set when the server stops with a commit still failing: the retry loop gives up (its
    /// messages were never acknowledged), so that the thread, and the process, can end.
    give_up: Arc<AtomicBool>,
}

/// Answer to a job that was refused because the store is overloaded or gone.
#[derive(Debug)]
pub(crate) struct Busy;

impl Storage {
    /// Starts the thread. The thread ends when every handle is dropped and the queue is done.
    pub fn start(mut backend: Box<dyn Store>, metrics: Arc<crate::metrics::Metrics>) -> (Storage, JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Job>();
        let queued = Arc::new(AtomicUsize::new(0));
        let counter = queued.clone();
        let thread = std::thread::Builder::new()
            .name("chinwag-store".into())
            .spawn(move || {
                let mut reported = None;
                while let Some(job) = rx.blocking_recv() {
                    counter.fetch_sub(1, Ordering::Relaxed);
                    job(backend.as_mut());
                    // Each new trouble in the background once (it is retried there).
                    let trouble = backend.background_error();
                    if trouble.is_some() && trouble != reported {
                        tracing::warn!(
                            error = trouble.as_deref().unwrap_or_default(),
                            "store: background work failed; retrying"
                        );
                    }
                    reported = trouble;
                }
            })
            .expect("spawning the store thread");
        (Storage { jobs: tx, queued, metrics, give_up: Arc::new(AtomicBool::new(false)) }, thread)
    }

    /// The flag that makes a failing commit stop retrying; see [`Storage::commit`].
    pub fn give_up_flag(&self) -> Arc<AtomicBool> {
        self.give_up.clone()
    }

    /// Runs `f` on the store thread; refused if too much is already waiting.
    pub fn call<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, Busy>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Store) -> R + Send + 'static,
    {
        if self.queued.load(Ordering::Relaxed) >= MAX_QUEUED_JOBS {
            return Err(Busy);
        }
        self.submit(f)
    }

    fn submit<R, F>(&self, f: F) -> Result<oneshot::Receiver<R>, Busy>
    where
        R: Send + 'static,
        F: FnOnce(&mut dyn Store) -> R + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.queued.fetch_add(1, Ordering::Relaxed);
        let job: Job = Box::new(move |s| {
            let _ = tx.send(f(s));
        });
        self.jobs.send(job).map_err(|_| Busy)?;
        Ok(rx)
    }

    /// Commits a batch of messages in one transaction, retrying until it succeeds: the caller
    /// holds everything that depends on it. Never refused (the hub has at most one in flight).
    /// Answers true once stored, false if the server stopped while it still failed (nothing of
    /// it may then be acknowledged).
    pub fn commit(&self, batch: Vec<HistoryItem>) -> Result<oneshot::Receiver<bool>, Busy> {
        let rows: Vec<store::StoredMessage> = batch.into_iter().map(to_stored).collect();
        let metrics = self.metrics.clone();
        let give_up = self.give_up.clone();
        self.submit(move |s| {
            let mut attempt = 0u32;
            loop {
                let started = std::time::Instant::now();
                match s.append(&rows) {
                    Ok(()) => {
                        // Messages: room events (event-playback) are not counted as such.
                        let messages = rows.iter().filter(|r| !r.is_event()).count();
                        metrics.observe_commit(started.elapsed(), messages);
                        if attempt > 0 {
                            metrics.store_failing.store(false, Ordering::Relaxed);
                            tracing::warn!(attempt, "stored the held messages; commits work again");
                        }
                        return true;
                    }
                    Err(store::StoreError::DuplicateMsgId(id)) => {
                        // Only a bug can get here; storing the rest beats holding everyone forever.
                        tracing::error!(msgid = %id, "duplicate msgid in a commit; storing the others one by one");
                        for row in &rows {
                            let _ = s.append(std::slice::from_ref(row));
                        }
                        return true;
                    }
                    Err(_) if give_up.load(Ordering::Relaxed) => {
                        tracing::error!(
                            messages = rows.len(),
                            "the server stopped before these messages could be stored; they were never acknowledged"
                        );
                        return false;
                    }
                    Err(e) => {
                        attempt += 1;
                        metrics.store_failing.store(true, Ordering::Relaxed);
                        tracing::error!(error = %e, attempt, "could not store messages; holding them and retrying");
                        std::thread::sleep(COMMIT_RETRY);
                    }
                }
            }
        })
    }

    /// Fire-and-forget work whose failure is only logged (room saves, offline queue clean-up).
    pub fn spawn<F>(&self, what: &'static str, f: F)
    where
        F: FnOnce(&mut dyn Store) -> Result<(), store::StoreError> + Send + 'static,
    {
        let job = self.submit(move |s| {
            if let Err(e) = f(s) {
                tracing::error!(error = %e, "store: {what} failed");
            }
        });
        if job.is_err() {
            tracing::error!("store: {what} dropped: the store thread is gone");
        }
    }
}

pub(crate) fn to_stored(i: HistoryItem) -> store::StoredMessage {
    store::StoredMessage {
        msgid: i.msgid,
        time_ms: i.time_ms,
        command: i.command,
        sender: i.sender,
        sender_account: i.sender_account,
        target: i.target,
        text: i.text,
        tags: i.tags,
        conversation: i.conversation,
        participants: i.participants,
        offline_for: i.offline_for,
    }
}

pub(crate) fn from_stored(m: store::StoredMessage) -> HistoryItem {
    HistoryItem {
        msgid: m.msgid,
        time_ms: m.time_ms,
        command: m.command,
        sender: m.sender,
        sender_account: m.sender_account,
        target: m.target,
        text: m.text,
        tags: m.tags,
        conversation: m.conversation,
        participants: m.participants,
        offline_for: m.offline_for,
    }
}

pub(crate) fn to_query(q: HistoryQuery) -> store::HistoryQuery {
    let b = |b: Bound| match b {
        Bound::MsgId(id) => store::Bound::MsgId(id),
        Bound::Time(t) => store::Bound::Time(t),
    };
    match q {
        HistoryQuery::Latest { after } => store::HistoryQuery::Latest { after: after.map(b) },
        HistoryQuery::Before(x) => store::HistoryQuery::Before(b(x)),
        HistoryQuery::After(x) => store::HistoryQuery::After(b(x)),
        HistoryQuery::Around(x) => store::HistoryQuery::Around(b(x)),
        HistoryQuery::Between(x, y) => store::HistoryQuery::Between(b(x), b(y)),
    }
}

pub(crate) fn to_record(s: ChannelSnapshot) -> store::ChannelRecord {
    store::ChannelRecord {
        name: s.name,
        created_ms: s.created_ms,
        topic: s.topic.map(|(text, setter, set_at_ms)| store::TopicRecord { text, setter, set_at_ms }),
        modes: s.modes,
        key: s.key,
        limit: s.limit,
        bans: ban_records(s.bans),
        excepts: ban_records(s.excepts),
        invex: ban_records(s.invex),
        founder: s.founder,
    }
}

fn ban_records(list: Vec<(String, String, u64)>) -> Vec<store::BanRecord> {
    list.into_iter().map(|(mask, setter, set_at_ms)| store::BanRecord { mask, setter, set_at_ms }).collect()
}

fn ban_entries(list: Vec<store::BanRecord>) -> Vec<(String, String, u64)> {
    list.into_iter().map(|b| (b.mask, b.setter, b.set_at_ms)).collect()
}

pub(crate) fn from_record(r: store::ChannelRecord) -> ChannelSnapshot {
    ChannelSnapshot {
        name: r.name,
        created_ms: r.created_ms,
        topic: r.topic.map(|t| (t.text, t.setter, t.set_at_ms)),
        modes: r.modes,
        key: r.key,
        limit: r.limit,
        bans: ban_entries(r.bans),
        excepts: ban_entries(r.excepts),
        invex: ban_entries(r.invex),
        founder: r.founder,
    }
}
