//! How many messages per second `SqliteStore::append` persists, by batch size and durability.
//!
//! ```text
//! cargo run --release -p chinwag-store --example store_bench              # the table
//! cargo run --release -p chinwag-store --example store_bench -- --batch 1000 --sync full
//! cargo run --release -p chinwag-store --example store_bench -- --quick-check 2000000
//! cargo run --release -p chinwag-store --example store_bench -- --rate 1000 --sync full
//! ```
//!
//! Each run starts from a database already holding [`PREFILL`] messages (so the indexes have
//! some depth, and synced to disk so the run does not compete with its write-back), then
//! appends batches of realistic rows (about 100 bytes of text, a 19-character msgid, 50 rooms
//! and some private conversations, a few offline copies; see [`Generator`]) until it has
//! written [`MAX_MESSAGES`] or spent [`MAX_SECONDS`]. Only the time inside `append` is counted.
//! Besides the rate, each row gives the 99th percentile and the maximum time of one `append`
//! (one commit): a message waits for the commit of its batch, so a slow commit (one that runs a
//! checkpoint, say) is latency every message queued behind it sees.
//! After each 1000-message run it also times history reads (`LATEST` and `BEFORE`, 50 messages
//! each) on the filled database. Everything lives in a temporary directory, removed at the end.
//!
//! `--rate R` instead plays the server at a fixed load: R messages a second arrive, and each
//! commit takes every message that arrived while the previous one ran (group commit, as the
//! server's store thread does), for [`PACED_SECONDS`]. It reports each message's latency from
//! arrival to the end of its commit (the time a sender waits for its durable echo).
//!
//! `--quick-check N` instead builds a database of N messages and reports how long opening it
//! takes with and without `PRAGMA quick_check`, then how long pruning its oldest tenth takes.
//!
//! The machine is shared and the numbers move by ±15% from run to run; compare several runs.

use std::path::Path;
use std::time::{Duration, Instant};

use chinwag_store::{Bound, HistoryQuery, NewAccount, SqliteOptions, SqliteStore, Store, StoredMessage, Synchronous};

/// Messages in the database before a run starts measuring.
const PREFILL: u64 = 200_000;
/// A run stops after writing this many messages...
const MAX_MESSAGES: u64 = 1_000_000;
/// ...or after this much time inside `append`, whichever comes first.
const MAX_SECONDS: f64 = 3.0;
const BATCH_SIZES: [usize; 4] = [1, 10, 100, 1000];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = tempfile::tempdir().expect("temp dir");
    let flag = |name: &str| args.iter().position(|a| a == name).and_then(|i| args.get(i + 1));
    if let Some(n) = flag("--quick-check") {
        let n: u64 = n.parse().expect("--quick-check takes a number of messages");
        quick_check(dir.path(), n);
        return;
    }
    if let Some(rate) = flag("--rate") {
        let rate: u64 = rate.parse().expect("--rate takes messages per second");
        let sync = match flag("--sync").map(|s| s.to_ascii_uppercase()).as_deref() {
            Some("NORMAL") => Synchronous::Normal,
            _ => Synchronous::Full,
        };
        paced(dir.path(), rate, sync);
        return;
    }
    let only_batch: Option<usize> = flag("--batch").map(|b| b.parse().expect("--batch takes a number"));
    let only_sync = flag("--sync").map(|s| s.to_ascii_uppercase());
    println!("prefill {PREFILL} messages; each run stops at {MAX_MESSAGES} messages or {MAX_SECONDS} s in append");
    println!();
    println!("| synchronous | batch | messages | seconds | messages/s | commit ms p50 | p99 | max |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut reads = Vec::new();
    for (sync, label) in [(Synchronous::Full, "FULL"), (Synchronous::Normal, "NORMAL")] {
        for batch in BATCH_SIZES {
            if only_batch.is_some_and(|b| b != batch) || only_sync.as_deref().is_some_and(|s| s != label) {
                continue;
            }
            let path = dir.path().join(format!("{label}-{batch}.db"));
            let mut gen = Generator::default();
            let mut store = prefilled(&path, &mut gen, sync);
            let (count, spent, mut commits) = run(&mut store, &mut gen, batch);
            let rate = count as f64 / spent.as_secs_f64();
            let [p50, p99, max] = percentiles(&mut commits, [50.0, 99.0, 100.0]);
            println!(
                "| {label} | {batch} | {count} | {:.2} | {rate:.0} | {p50:.2} | {p99:.2} | {max:.1} |",
                spent.as_secs_f64()
            );
            if batch == 1000 {
                reads.push(read_latency(&mut store, PREFILL + count));
            }
            drop(store);
            remove_db(&path);
        }
    }
    for line in reads {
        println!("{line}");
    }
}

/// Average time of `CHATHISTORY LATEST #room * 50` and of the `BEFORE` page that follows it.
fn read_latency(store: &mut SqliteStore, total: u64) -> String {
    const QUERIES: u32 = 1000;
    let (mut latest, mut before) = (Duration::ZERO, Duration::ZERO);
    for i in 0..QUERIES {
        let room = format!("#room{}", u64::from(i) % ROOMS);
        let start = Instant::now();
        let page = store.history(&room, &HistoryQuery::Latest { after: None }, 50).expect("latest");
        latest += start.elapsed();
        let first = page.first().map(|m| m.msgid.clone()).expect("rooms have history");
        let start = Instant::now();
        let older = store.history(&room, &HistoryQuery::Before(Bound::MsgId(first)), 50).expect("before");
        before += start.elapsed();
        assert_eq!(older.len(), 50);
    }
    format!(
        "reads with {total} messages stored: LATEST 50 in {:.0} µs, BEFORE msgid 50 in {:.0} µs (average of {QUERIES})",
        latest.as_secs_f64() * 1e6 / f64::from(QUERIES),
        before.as_secs_f64() * 1e6 / f64::from(QUERIES),
    )
}

fn open(path: &Path, synchronous: Synchronous) -> SqliteStore {
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let mut store = SqliteStore::open(path, options).expect("open");
    for i in 0..ACCOUNTS {
        let account = NewAccount {
            name: format!("user{i}"),
            password_hash: "$argon2id$x".into(),
            scram: None,
            email: None,
            created_ms: 0,
        };
        // Present already when a prefilled file is reopened.
        let _ = store.create_account(&account);
    }
    store
}

fn fill(store: &mut SqliteStore, gen: &mut Generator, count: u64) {
    let mut written = 0;
    while written < count {
        let batch = gen.batch(1000);
        store.append(&batch).expect("prefill");
        written += batch.len() as u64;
    }
}

/// Appends `batch`-sized batches until the limits; returns messages written, time in append and
/// the time of each append.
fn run(store: &mut SqliteStore, gen: &mut Generator, batch: usize) -> (u64, Duration, Vec<Duration>) {
    let mut count = 0u64;
    let mut spent = Duration::ZERO;
    let mut commits = Vec::new();
    while count < MAX_MESSAGES && spent.as_secs_f64() < MAX_SECONDS {
        let messages = gen.batch(batch);
        let start = Instant::now();
        store.append(&messages).expect("append");
        let took = start.elapsed();
        spent += took;
        commits.push(took);
        count += messages.len() as u64;
    }
    (count, spent, commits)
}

/// Percentiles of `times`, in milliseconds (100 is the maximum).
fn percentiles<const N: usize>(times: &mut [Duration], at: [f64; N]) -> [f64; N] {
    times.sort_unstable();
    at.map(|p| {
        let rank = ((times.len() as f64 * p / 100.0).ceil() as usize).clamp(1, times.len().max(1)) - 1;
        times.get(rank).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    })
}

/// A store at `path` holding `PREFILL` messages, reopened with `sync`. The prefill is synced
/// first, so it is on disk rather than in the kernel's write-back queue competing with the
/// run's own syncs.
fn prefilled(path: &Path, gen: &mut Generator, sync: Synchronous) -> SqliteStore {
    let mut store = open(path, Synchronous::Normal);
    fill(&mut store, gen, PREFILL);
    drop(store);
    std::fs::File::open(path).and_then(|f| f.sync_all()).expect("sync the prefilled file");
    open(path, sync)
}

/// How long a `--rate` run lasts: long enough for several checkpoints at 1000 messages a second.
const PACED_SECONDS: u64 = 20;

/// The server's situation at a fixed arrival rate; see the module documentation.
fn paced(dir: &Path, rate: u64, sync: Synchronous) {
    let path = dir.join("paced.db");
    let mut gen = Generator::default();
    let mut store = prefilled(&path, &mut gen, sync);
    let total = rate * PACED_SECONDS;
    let arrival = |i: u64| Duration::from_secs_f64(i as f64 / rate as f64);
    let (mut latencies, mut commits) = (Vec::with_capacity(total as usize), Vec::new());
    let start = Instant::now();
    let mut sent = 0;
    while sent < total {
        let now = start.elapsed();
        let arrived = ((now.as_secs_f64() * rate as f64) as u64 + 1).min(total);
        if arrived <= sent {
            // Pacing the load, not waiting for an event: the next message arrives then.
            std::thread::sleep(arrival(sent) - now);
            continue;
        }
        let batch = gen.batch((arrived - sent) as usize);
        let began = start.elapsed();
        store.append(&batch).expect("append");
        let done = start.elapsed();
        commits.push(done - began);
        latencies.extend((sent..arrived).map(|i| done - arrival(i)));
        sent = arrived;
    }
    let [p50, p99, p999, max] = percentiles(&mut latencies, [50.0, 99.0, 99.9, 100.0]);
    let [c50, c99, cmax] = percentiles(&mut commits, [50.0, 99.0, 100.0]);
    let wal = std::fs::metadata(dir.join("paced.db-wal")).map_or(0, |m| m.len());
    println!(
        "{total} messages at {rate}/s in {} commits: latency ms p50 {p50:.2} p99 {p99:.2} p99.9 {p999:.2} max {max:.1}; \
         commit ms p50 {c50:.2} p99 {c99:.2} max {cmax:.1}; WAL file {:.1} MiB",
        commits.len(),
        wal as f64 / (1024.0 * 1024.0)
    );
    drop(store);
    remove_db(&path);
}

fn quick_check(dir: &Path, messages: u64) {
    let path = dir.join("big.db");
    let mut gen = Generator::default();
    let mut store = open(&path, Synchronous::Normal);
    let start = Instant::now();
    fill(&mut store, &mut gen, messages);
    println!("wrote {messages} messages in {:.1} s", start.elapsed().as_secs_f64());
    drop(store);
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!("file size: {:.1} MiB", size as f64 / (1024.0 * 1024.0));
    for quick_check in [false, true, false, true] {
        let start = Instant::now();
        let options = SqliteOptions { quick_check, ..SqliteOptions::default() };
        let store = SqliteStore::open(&path, options).expect("reopen");
        let spent = start.elapsed();
        drop(store);
        println!("open with quick_check={quick_check}: {:.3} s", spent.as_secs_f64());
    }
    // Retention: the oldest tenth, through the conversation index.
    let mut store = open(&path, Synchronous::Full);
    let cutoff = Generator::time_of(messages / 10);
    let start = Instant::now();
    let removed = store.prune_history(cutoff).expect("prune");
    println!("prune_history of the oldest tenth: {removed} messages in {:.2} s", start.elapsed().as_secs_f64());
    drop(store);
    remove_db(&path);
}

fn remove_db(path: &Path) {
    for suffix in ["", "-wal", "-shm"] {
        let mut p = path.as_os_str().to_owned();
        p.push(suffix);
        let _ = std::fs::remove_file(p);
    }
}

const ACCOUNTS: u64 = 100;
const ROOMS: u64 = 50;

/// Private conversations going on at any moment.
const ONGOING_PRIVATE: usize = 50;

/// Realistic messages: room traffic spread evenly over [`ROOMS`] rooms, and every tenth message
/// private, within one of [`ONGOING_PRIVATE`] conversations between the [`ACCOUNTS`] (one of
/// them ends and a new pair starts every hundred private messages). Every fiftieth message is
/// also queued for an offline account.
#[derive(Default)]
struct Generator {
    n: u64,
    /// A xorshift state, so runs are repeatable without a dependency.
    rng: u64,
    /// The ongoing private conversations, as (sender, recipient) account numbers.
    private: Vec<(u64, u64)>,
}

impl Generator {
    fn next_random(&mut self) -> u64 {
        if self.rng == 0 {
            self.rng = 0x9E37_79B9_7F4A_7C15;
        }
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    /// The time of the `n`th message: about 20 000 messages a second of simulated time.
    fn time_of(n: u64) -> u64 {
        1_700_000_000_000 + n / 20
    }

    fn batch(&mut self, size: usize) -> Vec<StoredMessage> {
        (0..size).map(|_| self.message()).collect()
    }

    fn message(&mut self) -> StoredMessage {
        self.n += 1;
        let n = self.n;
        let time_ms = Self::time_of(n);
        let from = self.next_random() % ACCOUNTS;
        let text = {
            let words = ["hello", "there", "rustaceans,", "has", "anyone", "tried", "the", "new", "borrow", "checker"];
            let mut t = String::with_capacity(110);
            while t.len() < 100 {
                t.push_str(words[(self.next_random() % words.len() as u64) as usize]);
                t.push(' ');
            }
            t
        };
        let msgid = format!("{:010}{:05}{:04}", time_ms % 10_000_000_000, n % 100_000, 7);
        let tags = if n.is_multiple_of(7) { format!("+draft/reply={:019}", n - 1) } else { String::new() };
        let mut m = StoredMessage {
            msgid,
            time_ms,
            command: "PRIVMSG".into(),
            sender: format!("user{from}!~user{from}@host-{from}.example.net"),
            sender_account: Some(format!("user{from}")),
            target: String::new(),
            text,
            tags,
            conversation: String::new(),
            participants: Vec::new(),
            offline_for: None,
        };
        if n.is_multiple_of(10) {
            if self.private.len() < ONGOING_PRIVATE || n.is_multiple_of(1000) {
                let to = (from + 1 + self.next_random() % (ACCOUNTS - 1)) % ACCOUNTS;
                let slot = (self.next_random() % ONGOING_PRIVATE as u64) as usize;
                if self.private.len() < ONGOING_PRIVATE {
                    self.private.push((from, to));
                } else {
                    self.private[slot] = (from, to);
                }
            }
            let pick = (self.next_random() % self.private.len() as u64) as usize;
            let pair = self.private[pick];
            // Either party may write.
            let (from, to) = if self.next_random().is_multiple_of(2) { pair } else { (pair.1, pair.0) };
            m.sender = format!("user{from}!~user{from}@host-{from}.example.net");
            m.sender_account = Some(format!("user{from}"));
            let (a, b) = (format!("user{}", from.min(to)), format!("user{}", from.max(to)));
            m.target = format!("user{to}");
            m.conversation = format!("{a}\0{b}");
            m.participants = vec![a, b];
            if n.is_multiple_of(50) {
                m.offline_for = Some(format!("user{to}"));
            }
        } else {
            let room = self.next_random() % ROOMS;
            m.target = format!("#room{room}");
            m.conversation = m.target.clone();
        }
        m
    }
}
