//! How many messages per second `SqliteStore::append` persists, by batch size and durability.
//!
//! ```text
//! cargo run --release -p chinwag-store --example store_bench              # the table
//! cargo run --release -p chinwag-store --example store_bench -- --quick-check 2000000
//! ```
//!
//! Each run starts from a database already holding [`PREFILL`] messages (so the indexes have
//! some depth), then appends batches of realistic rows (about 100 bytes of text, a 19-character
//! msgid, 50 rooms and some private conversations, a few offline copies) until it has written
//! [`MAX_MESSAGES`] or spent [`MAX_SECONDS`]. Only the time inside `append` is counted. Everything
//! lives in a temporary directory that is removed at the end.
//!
//! `--quick-check N` instead builds a database of N messages and reports how long opening it
//! takes with and without `PRAGMA quick_check`.

use std::path::Path;
use std::time::{Duration, Instant};

use chinwag_store::{NewAccount, SqliteOptions, SqliteStore, Store, StoredMessage, Synchronous};

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
    if let [flag, n] = args.as_slice() {
        if flag == "--quick-check" {
            let n: u64 = n.parse().expect("--quick-check takes a number of messages");
            quick_check(dir.path(), n);
            return;
        }
    }
    println!("prefill {PREFILL} messages; each run stops at {MAX_MESSAGES} messages or {MAX_SECONDS} s in append");
    println!();
    println!("| synchronous | batch | messages | seconds | messages/s |");
    println!("|---|---:|---:|---:|---:|");
    for (sync, label) in [(Synchronous::Full, "FULL"), (Synchronous::Normal, "NORMAL")] {
        for batch in BATCH_SIZES {
            let path = dir.path().join(format!("{label}-{batch}.db"));
            let mut gen = Generator::default();
            let mut store = open(&path, sync);
            fill(&mut store, &mut gen, PREFILL);
            let (count, spent) = run(&mut store, &mut gen, batch);
            let rate = count as f64 / spent.as_secs_f64();
            println!("| {label} | {batch} | {count} | {:.2} | {rate:.0} |", spent.as_secs_f64());
            drop(store);
            remove_db(&path);
        }
    }
}

fn open(path: &Path, synchronous: Synchronous) -> SqliteStore {
    let options = SqliteOptions { synchronous, ..SqliteOptions::default() };
    let mut store = SqliteStore::open(path, options).expect("open");
    for i in 0..ACCOUNTS {
        let account =
            NewAccount { name: format!("user{i}"), password_hash: "$argon2id$x".into(), email: None, created_ms: 0 };
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

/// Appends `batch`-sized batches until the limits; returns messages written and time in append.
fn run(store: &mut SqliteStore, gen: &mut Generator, batch: usize) -> (u64, Duration) {
    let mut count = 0u64;
    let mut spent = Duration::ZERO;
    while count < MAX_MESSAGES && spent.as_secs_f64() < MAX_SECONDS {
        let messages = gen.batch(batch);
        let start = Instant::now();
        store.append(&messages).expect("append");
        spent += start.elapsed();
        count += messages.len() as u64;
    }
    (count, spent)
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

/// Realistic messages: mostly room traffic, some private messages (every tenth), of which some
/// are queued for an offline account (every fiftieth message).
#[derive(Default)]
struct Generator {
    n: u64,
    /// A xorshift state, so runs are repeatable without a dependency.
    rng: u64,
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

    fn batch(&mut self, size: usize) -> Vec<StoredMessage> {
        (0..size).map(|_| self.message()).collect()
    }

    fn message(&mut self) -> StoredMessage {
        self.n += 1;
        let n = self.n;
        // About 20 000 messages a second of simulated time.
        let time_ms = 1_700_000_000_000 + n / 20;
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
        let tags = if n % 7 == 0 { format!("+draft/reply={:019}", n - 1) } else { String::new() };
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
        if n % 10 == 0 {
            let to = (from + 1 + self.next_random() % (ACCOUNTS - 1)) % ACCOUNTS;
            let (a, b) = (format!("user{}", from.min(to)), format!("user{}", from.max(to)));
            m.target = format!("user{to}");
            m.conversation = format!("{a}\0{b}");
            m.participants = vec![a, b];
            if n % 50 == 0 {
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
