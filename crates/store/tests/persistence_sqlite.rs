//! What SQLite keeps across a restart: a clean close and reopen, and a `kill -9` in the middle of
//! writing.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chinwag_store::{
    BanRecord, ChannelRecord, HistoryQuery, NewAccount, SqliteOptions, SqliteStore, Store, StoredMessage, TopicRecord,
};

fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(path, SqliteOptions::default()).expect("open")
}

fn message(conversation: &str, msgid: String, time_ms: u64) -> StoredMessage {
    StoredMessage {
        msgid,
        time_ms,
        command: "PRIVMSG".into(),
        sender: "alice!alice@example.net".into(),
        sender_account: Some("alice".into()),
        target: conversation.into(),
        text: format!("message at {time_ms}"),
        tags: String::new(),
        conversation: conversation.into(),
        participants: Vec::new(),
        offline_for: None,
    }
}

#[test]
fn everything_survives_a_reopen() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chinwag.db");
    let room = ChannelRecord {
        name: "#Rust".into(),
        created_ms: 10,
        topic: Some(TopicRecord { text: "hi".into(), setter: "alice".into(), set_at_ms: 11 }),
        modes: "+nt".into(),
        key: None,
        limit: Some(10),
        bans: vec![BanRecord { mask: "*!*@spam".into(), setter: "alice".into(), set_at_ms: 12 }],
        excepts: vec![BanRecord { mask: "$a:alice".into(), setter: "alice".into(), set_at_ms: 13 }],
        invex: vec![BanRecord { mask: "*!*@friends".into(), setter: "alice".into(), set_at_ms: 14 }],
        founder: Some("alice".into()),
    };
    let private = StoredMessage {
        target: "Bob".into(),
        participants: vec!["alice".into(), "bob".into()],
        offline_for: Some("Bob".into()),
        ..message("alice\0bob", "p1".into(), 2000)
    };
    {
        let mut store = open(&path);
        for name in ["Alice", "Bob"] {
            let account = NewAccount {
                name: name.into(),
                password_hash: format!("$argon2id${name}"),
                scram: None,
                email: None,
                created_ms: 1,
            };
            store.create_account(&account).expect("create");
        }
        store.save_channel(&room).expect("save room");
        store.append(&[message("#rust", "r1".into(), 1000), private.clone()]).expect("append");
    }

    let mut store = open(&path);
    assert_eq!(store.account_names().expect("names"), ["Alice", "Bob"]);
    assert_eq!(store.account("alice").expect("lookup").map(|a| a.password_hash).as_deref(), Some("$argon2id$Alice"));
    assert_eq!(store.channels().expect("rooms"), [room]);
    let latest = HistoryQuery::Latest { after: None };
    let rust = store.history("#rust", &latest, 10).expect("history");
    assert_eq!(rust.iter().map(|m| m.msgid.as_str()).collect::<Vec<_>>(), ["r1"]);
    let queued = store.offline("bob", 10).expect("offline");
    assert_eq!(queued, [StoredMessage { offline_for: Some("bob".into()), ..private.clone() }]);
    let targets = store.history_targets(Some("bob"), &["#rust".to_owned()], 0, 10_000, 10).expect("targets");
    let names: Vec<(&str, u64)> = targets.iter().map(|t| (t.name.as_str(), t.latest_ms)).collect();
    assert_eq!(names, [("#rust", 1000), ("alice", 2000)]);

    // Appending after the reopen reuses the stored conversations rather than duplicating them.
    store.append(&[message("#rust", "r2".into(), 3000)]).expect("append after reopen");
    let rust = store.history("#rust", &latest, 10).expect("history");
    assert_eq!(rust.iter().map(|m| m.msgid.as_str()).collect::<Vec<_>>(), ["r1", "r2"]);
}

/// Set in the child process of [`acknowledged_batches_survive_kill_9`]: where to write.
const CRASH_CHILD_ENV: &str = "CHINWAG_STORE_CRASH_CHILD_DB";
const CRASH_BATCH: u64 = 500;

/// The writer half of [`acknowledged_batches_survive_kill_9`]: when run as that test's child,
/// appends batches forever and reports each one committed on stdout. Run normally, does nothing.
#[test]
fn crash_child_writes_until_killed() {
    let Some(path) = std::env::var_os(CRASH_CHILD_ENV) else { return };
    let mut store = open(Path::new(&path));
    for batch in 0u64.. {
        let messages: Vec<StoredMessage> = (0..CRASH_BATCH)
            .map(|i| {
                let n = batch * CRASH_BATCH + i;
                message(if n.is_multiple_of(2) { "#even" } else { "#odd" }, format!("{n:012}"), 1000 + n)
            })
            .collect();
        store.append(&messages).expect("append");
        println!("committed {}", (batch + 1) * CRASH_BATCH);
    }
}

/// The test in miniature: `kill -9` a writer mid-stream, reopen, and every message it
/// was told had been committed is there, and no batch is there in part.
#[test]
fn acknowledged_batches_survive_kill_9() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chinwag.db");
    let mut child = Command::new(std::env::current_exe().expect("test binary"))
        .args(["crash_child_writes_until_killed", "--exact", "--nocapture", "--test-threads=1"])
        .env(CRASH_CHILD_ENV, &path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the writer");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut acknowledged = 0u64;
    let deadline = Instant::now() + Duration::from_secs(60);
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("read the writer");
        if let Some(n) = line.strip_prefix("committed ") {
            acknowledged = n.parse().expect("a count");
            if acknowledged >= 20 * CRASH_BATCH || Instant::now() > deadline {
                break;
            }
        }
    }
    child.kill().expect("kill -9 the writer");
    child.wait().expect("reap the writer");
    assert!(acknowledged > 0, "the writer never committed anything");
    let mut wal = path.as_os_str().to_owned();
    wal.push("-wal");
    assert!(Path::new(&wal).exists(), "the writer died without a clean close, leaving its WAL");

    let mut store = open(&path);
    let latest = HistoryQuery::Latest { after: None };
    let even = store.history("#even", &latest, usize::MAX).expect("history");
    let odd = store.history("#odd", &latest, usize::MAX).expect("history");
    let stored = (even.len() + odd.len()) as u64;
    assert!(stored >= acknowledged, "{stored} messages stored, {acknowledged} acknowledged");
    assert_eq!(stored % CRASH_BATCH, 0, "a batch was stored in part: {stored} messages");
    let mut ids: Vec<u64> = even.iter().chain(&odd).map(|m| m.msgid.parse().expect("numeric msgid")).collect();
    ids.sort_unstable();
    assert!(ids.iter().copied().eq(0..stored), "the stored messages are exactly the first {stored}");
}
