//! `chinwag admin migrate-store --from sqlite:PATH --to postgres://…` as an operator runs it:
//! the counts it prints, the copy it leaves, and its refusals.

use std::process::Command;

use chinwag_store::test_db::TestDatabase;
use chinwag_store::{HistoryQuery, NewAccount, PostgresStore, SqliteOptions, SqliteStore, Store, StoredMessage};

fn chinwag(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_chinwag")).args(args).output().expect("run chinwag")
}

#[test]
fn migrate_store_copies_a_servers_data_and_prints_the_counts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chinwag.db");
    let mut sqlite = SqliteStore::open(&path, SqliteOptions::default()).expect("sqlite");
    sqlite
        .create_account(&NewAccount {
            name: "Alice".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
            scram: None,
            email: None,
            created_ms: 1,
        })
        .expect("account");
    let batch: Vec<StoredMessage> = (0..3)
        .map(|i| StoredMessage {
            msgid: format!("m{i}"),
            time_ms: 1000 + i,
            command: "PRIVMSG".into(),
            sender: "alice!a@h".into(),
            sender_account: Some("alice".into()),
            target: "#general".into(),
            text: format!("hello {i}"),
            tags: String::new(),
            conversation: "#general".into(),
            participants: Vec::new(),
            offline_for: None,
        })
        .collect();
    sqlite.append(&batch).expect("history");
    drop(sqlite);

    let db = TestDatabase::create();
    let from = format!("sqlite:{}", path.display());
    let out = chinwag(&["admin", "migrate-store", "--from", &from, "--to", db.url()]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.lines().any(|l| l.split_whitespace().eq(["accounts", "1"])), "{stdout}");
    assert!(stdout.lines().any(|l| l.split_whitespace().eq(["messages", "3"])), "{stdout}");

    let db_url = db.url().to_owned();
    let (account, history) = std::thread::spawn(move || {
        let mut pg = PostgresStore::open(&db_url).expect("open the copy");
        let account = pg.account("alice").expect("account").map(|a| a.password_hash);
        let history = pg.history("#general", &HistoryQuery::Latest { after: None }, 10).expect("history");
        (account, history.into_iter().map(|m| m.text).collect::<Vec<_>>())
    })
    .join()
    .expect("read the copy");
    assert_eq!(account.as_deref(), Some("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"), "the hash, as it was");
    assert_eq!(history, ["hello 0", "hello 1", "hello 2"]);

    // Again into the same database: refused, it holds data now.
    let out = chinwag(&["admin", "migrate-store", "--from", &from, "--to", db.url()]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("already holds data"), "{stderr}");
}

#[test]
fn migrate_store_says_what_it_expects() {
    let out = chinwag(&["admin", "migrate-store", "--from", "/var/lib/chinwag/chinwag.db", "--to", "postgres://h/db"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected sqlite:PATH"));
    let out =
        chinwag(&["admin", "migrate-store", "--from", "sqlite:/nonexistent/chinwag.db", "--to", "mysql://u:pw@h/db"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("expected a PostgreSQL URL") && !stderr.contains("pw@"), "{stderr}");
}
