//! `migrate::sqlite_to_postgres`: a SQLite store with something of everything, copied into a
//! fresh PostgreSQL database, reads back the same through the trait, and the copy goes on
//! working (new messages, claims); a target that holds data is refused and left as it was.

use chinwag_store::migrate::{sqlite_to_postgres, MigrateError};
use chinwag_store::test_db::TestDatabase;
use chinwag_store::{
    device_queue, BanRecord, ChannelRecord, DeviceKeys, HistoryQuery, NewAccount, PostgresStore, SignedKey,
    SqliteOptions, SqliteStore, Store, StoredMessage, TopicRecord,
};

fn message(
    conversation: &str,
    msgid: &str,
    time_ms: u64,
    participants: &[&str],
    offline: Option<&str>,
) -> StoredMessage {
    StoredMessage {
        msgid: msgid.to_owned(),
        time_ms,
        command: "PRIVMSG".to_owned(),
        sender: "alice!a@example.net".to_owned(),
        sender_account: Some("alice".to_owned()),
        target: if conversation.starts_with('#') { conversation.to_owned() } else { "Bob".to_owned() },
        text: format!("text {msgid}"),
        tags: "+draft/reply=x".to_owned(),
        conversation: conversation.to_owned(),
        participants: participants.iter().map(|p| (*p).to_owned()).collect(),
        offline_for: offline.map(str::to_owned),
    }
}

fn key(k: &str) -> SignedKey {
    SignedKey { key: format!("key-{k}"), signature: format!("sig-{k}") }
}

/// Something of everything the store keeps.
fn fill(store: &mut dyn Store) {
    for (name, scram) in [("Alice", Some("SCRAM-SHA-256$4096:c2FsdA==$a:b")), ("Bob", None)] {
        store
            .create_account(&NewAccount {
                name: name.into(),
                password_hash: format!("$argon2id$v=19$m=19456,t=2,p=1${name}"),
                scram: scram.map(str::to_owned),
                email: Some(format!("{name}@example.net")),
                created_ms: 1_000,
            })
            .expect("account");
    }
    store.add_cert("alice", "ab:cd", 5).expect("cert");
    let ban = |mask: &str| BanRecord { mask: mask.into(), setter: "alice".into(), set_at_ms: 7 };
    store
        .save_channel(&ChannelRecord {
            name: "#Rust".into(),
            created_ms: 5,
            topic: Some(TopicRecord { text: "crabs".into(), setter: "alice".into(), set_at_ms: 6 }),
            modes: "+nt".into(),
            key: Some("sesame".into()),
            limit: Some(42),
            bans: vec![ban("*!*@spam"), ban("$a:troll")],
            excepts: vec![ban("*!*@friend")],
            invex: vec![ban("*!*@guest")],
            founder: Some("alice".into()),
        })
        .expect("room");
    let private = "alice\0bob";
    let mut batch = Vec::new();
    for i in 0..25_000u64 {
        batch.push(message("#rust", &format!("r{i:06}"), 10_000 + i, &[], None));
    }
    batch.push(message(private, "p1", 50_000, &["alice", "bob"], Some("bob")));
    batch.push(message(private, "p2", 50_001, &["alice", "bob"], Some("bob")));
    store.append(&batch).expect("history");
    let device = DeviceKeys {
        device: "Laptop".into(),
        curve25519: "curve".into(),
        ed25519: "ed".into(),
        signature: "sig".into(),
    };
    store.publish_device("bob", &device, 10).expect("device");
    store.add_one_time_keys("bob", "Laptop", &[key("1"), key("2"), key("3")], 100).expect("keys");
    store.set_fallback_key("bob", "Laptop", &key("fallback")).expect("fallback");
    let mut encrypted = message(private, "e1", 50_002, &["alice", "bob"], None);
    encrypted.offline_for = Some(device_queue("bob", "Laptop"));
    store.append(&[encrypted]).expect("encrypted");
    assert!(store.redact("r000005").expect("redact").is_some(), "a redacted message");
    store.set_read_marker("alice", "#rust", 12_345, 10).expect("a read marker");
}

/// Everything readable through the trait, to compare two stores.
fn everything(store: &mut dyn Store) -> String {
    let latest = HistoryQuery::Latest { after: None };
    let mut out = format!("{:?}\n{:?}\n", store.account_names(), store.channels());
    for name in ["alice", "bob"] {
        out += &format!("{:?} {:?} {:?}\n", store.account(name), store.certs(name), store.devices(name));
        out += &format!("{:?}\n", store.offline(name, 100));
    }
    out += &format!("{:?}\n", store.offline(&device_queue("bob", "Laptop"), 100));
    out += &format!("{:?} {:?}\n", store.cert_owner("ab:cd"), store.offline_counts());
    out += &format!("{:?}\n", store.history("#rust", &latest, 30_000).map(|h| h.len()));
    out += &format!(
        "{:?}\n",
        store.history("#rust", &HistoryQuery::Before(chinwag_store::Bound::MsgId("r012345".into())), 3)
    );
    out += &format!("{:?}\n", store.history("alice\0bob", &latest, 10));
    out += &format!("{:?}\n", store.history_targets(Some("bob"), &["#rust".to_owned()], 0, u64::MAX, 10));
    out += &format!("{:?} {:?}\n", store.read_markers("alice"), store.message("r000005"));
    out += &format!("{:?}\n", store.message("r000006"));
    out += &format!("{:?}\n", store.key_counts("bob", "Laptop"));
    for _ in 0..4 {
        out += &format!("{:?}\n", store.claim_key("bob", "Laptop"));
    }
    out
}

#[test]
fn a_sqlite_store_copied_into_postgres_reads_the_same_and_goes_on_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chinwag.db");
    let mut sqlite = SqliteStore::open(&path, SqliteOptions::default()).expect("sqlite");
    fill(&mut sqlite);
    drop(sqlite);

    let db = TestDatabase::create();
    let report = sqlite_to_postgres(&path, db.url()).expect("migrate");
    assert_eq!(report.rows("accounts"), 2);
    assert_eq!(report.rows("messages"), 25_003);
    assert_eq!(report.rows("offline"), 3);
    assert_eq!(report.rows("e2e_one_time_keys"), 3);
    assert_eq!(report.rows("channel_bans"), 4);

    // Both read alike (claims included, which is why each gets a fresh copy of the state).
    let mut sqlite = SqliteStore::open(&path, SqliteOptions::default()).expect("sqlite again");
    let mut postgres = PostgresStore::open(db.url()).expect("postgres");
    let (copied, original) = (everything(&mut postgres), everything(&mut sqlite));
    assert_eq!(copied, original);
    assert!(copied.contains("time_ms: 12345") && copied.contains("Ok(None)"), "marker and redaction copied:\n{copied}");
    for part in ["Ok(24999)", "SCRAM-SHA-256$4096", "sesame", "text p2", "key-1", "key-fallback", "Ok(Some(\"Alice\"))"]
    {
        assert!(copied.contains(part), "{part} is in the copy:\n{copied}");
    }
    assert!(!copied.contains("Err("), "{copied}");

    // New rows after the copied ones: ids go on past them, nothing collides.
    let next = [message("#rust", "r999999", 99_999, &[], None), message("#new", "n1", 99_999, &[], None)];
    postgres.append(&next).expect("append after the migration");
    let latest = postgres.history("#rust", &HistoryQuery::Latest { after: None }, 1).expect("history");
    assert_eq!(latest[0].msgid, "r999999");
    assert_eq!(postgres.history("#new", &HistoryQuery::Latest { after: None }, 5).expect("new room").len(), 1);
    postgres.add_one_time_keys("bob", "Laptop", &[key("4")], 100).expect("a key after the migration");
    assert_eq!(postgres.claim_key("bob", "Laptop").expect("claim").map(|c| c.key), Some(key("4")));
}

#[test]
fn a_target_with_data_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chinwag.db");
    let mut sqlite = SqliteStore::open(&path, SqliteOptions::default()).expect("sqlite");
    fill(&mut sqlite);
    drop(sqlite);
    let db = TestDatabase::create();
    let mut postgres = PostgresStore::open(db.url()).expect("postgres");
    postgres.append(&[message("#other", "o1", 1, &[], None)]).expect("some data");
    drop(postgres);
    let Err(e) = sqlite_to_postgres(&path, db.url()) else { panic!("a target holding data must be refused") };
    assert!(matches!(e, MigrateError::TargetNotEmpty { .. }), "{e:?}");
    assert!(e.to_string().contains("messages: 1 rows"), "{e}");
    assert_eq!(db.query("SELECT count(*) FROM messages").expect("count"), [Some("1".to_owned())]);
}
