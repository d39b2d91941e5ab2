//! Opening a PostgreSQL database: what is refused (and left untouched), concurrent starts, TLS,
//! and carrying on after the connection was lost. Each test on a fresh database of the server
//! `CHINWAG_TEST_POSTGRES` names (default `postgres://postgres@127.0.0.1:5432/test`).

use chinwag_store::test_db::{with_database, TestDatabase};
use chinwag_store::{HistoryQuery, NewAccount, PostgresOpenError, PostgresStore, Store, StoredMessage};

fn message(msgid: &str, time_ms: u64) -> StoredMessage {
    StoredMessage {
        msgid: msgid.to_owned(),
        time_ms,
        command: "PRIVMSG".to_owned(),
        sender: "alice!a@h".to_owned(),
        sender_account: None,
        target: "#rust".to_owned(),
        text: format!("text of {msgid}"),
        tags: String::new(),
        conversation: "#rust".to_owned(),
        participants: Vec::new(),
        offline_for: None,
    }
}

fn latest(store: &mut PostgresStore) -> Vec<String> {
    let page = store.history("#rust", &HistoryQuery::Latest { after: None }, 100).expect("history");
    page.into_iter().map(|m| m.msgid).collect()
}

fn tables(db: &TestDatabase) -> Vec<String> {
    db.query("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
        .expect("list tables")
        .into_iter()
        .flatten()
        .collect()
}

#[test]
fn data_survives_reopening() {
    let db = TestDatabase::create();
    let mut store = PostgresStore::open(db.url()).expect("open");
    store.append(&[message("m1", 1000), message("m2", 2000)]).expect("append");
    drop(store);
    let mut store = PostgresStore::open(db.url()).expect("reopen");
    assert_eq!(latest(&mut store), ["m1", "m2"]);
    let versions = db.query("SELECT count(*) FROM chinwag_schema").expect("versions");
    assert_eq!(versions, [Some("1".to_owned())], "one row per migration, applied once");
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    let Err(e) = PostgresStore::open("postgres://chinwag:secret@127.0.0.1:1/chinwag") else {
        panic!("nothing listens on port 1")
    };
    let text = e.to_string();
    assert!(matches!(e, PostgresOpenError::Unreachable { .. }), "{e:?}");
    assert!(text.contains("cannot reach PostgreSQL at postgres://chinwag:***@127.0.0.1:1/chinwag"), "{text}");
    assert!(!text.contains("secret"), "the password is never shown: {text}");
}

#[test]
fn a_database_from_a_newer_chinwag_is_refused_and_left_alone() {
    let db = TestDatabase::create();
    let mut store = PostgresStore::open(db.url()).expect("open");
    store
        .create_account(&NewAccount {
            name: "Alice".into(),
            password_hash: "$argon2id$x".into(),
            scram: None,
            email: None,
            created_ms: 1,
        })
        .expect("account");
    drop(store);
    db.execute("INSERT INTO chinwag_schema (version) VALUES (99)").expect("pretend a newer chinwag migrated it");
    let Err(e) = PostgresStore::open(db.url()) else { panic!("a version 99 database must be refused") };
    assert!(matches!(e, PostgresOpenError::TooNew { found: 99, .. }), "{e:?}");
    assert!(e.to_string().contains("newer chinwag"), "{e}");
    assert_eq!(db.query("SELECT max(version) FROM chinwag_schema").expect("version"), [Some("99".to_owned())]);
    assert_eq!(db.query("SELECT name FROM accounts").expect("accounts"), [Some("Alice".to_owned())]);
}

#[test]
fn another_programs_tables_are_refused_and_left_alone() {
    let db = TestDatabase::create();
    db.execute("CREATE TABLE accounts (id integer PRIMARY KEY, owner text)").expect("someone else's table");
    let Err(e) = PostgresStore::open(db.url()) else { panic!("a foreign database must be refused") };
    assert!(matches!(e, PostgresOpenError::Foreign { .. }), "{e:?}");
    assert_eq!(tables(&db), ["accounts"], "nothing was created");
}

/// A role that may connect but not create tables, then one that may not write chinwag's
/// tables: both refused with a message about privileges, and nothing changed.
#[test]
fn a_user_without_privileges_is_refused_and_nothing_changes() {
    let db = TestDatabase::create();
    let role = format!("{}_role", db.name());
    db.execute(&format!("CREATE ROLE {role} LOGIN")).expect("create a role");
    struct DropRole<'a>(&'a TestDatabase, String);
    impl Drop for DropRole<'_> {
        fn drop(&mut self) {
            let _ = self.0.execute(&format!("DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}", self.1));
        }
    }
    let _guard = DropRole(&db, role.clone());
    db.execute(&format!("REVOKE CREATE ON SCHEMA public FROM PUBLIC; REVOKE CREATE ON SCHEMA public FROM {role}"))
        .expect("no CREATE");
    let as_role = db.url().replacen("postgres://postgres@", &format!("postgres://{role}@"), 1);
    assert_ne!(as_role, db.url(), "the test server URL names its user as postgres://postgres@…");

    let Err(e) = PostgresStore::open(&as_role) else { panic!("a user who cannot create tables must be refused") };
    assert!(matches!(e, PostgresOpenError::Privileges { .. }), "{e:?}");
    assert!(e.to_string().contains("lacks privileges"), "{e}");
    assert!(tables(&db).is_empty(), "nothing was created: {:?}", tables(&db));

    // The schema made by its owner, the role allowed to read but not write.
    drop(PostgresStore::open(db.url()).expect("migrate as the owner"));
    db.execute(&format!("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {role}")).expect("read-only");
    let Err(e) = PostgresStore::open(&as_role) else { panic!("a read-only user must be refused") };
    assert!(matches!(e, PostgresOpenError::Privileges { .. }), "{e:?}");
    assert!(e.to_string().contains("cannot read and write"), "{e}");
}

/// Nodes starting together: one migrates, the others wait for its lock and find the schema
/// done; every one opens, and each migration is recorded once.
#[test]
fn concurrent_starts_migrate_once() {
    let db = TestDatabase::create();
    let url = db.url().to_owned();
    std::thread::scope(|scope| {
        let starts: Vec<_> = (0..6).map(|_| scope.spawn(|| PostgresStore::open(&url).map(drop))).collect();
        for start in starts {
            start.join().expect("thread").expect("every node opens");
        }
    });
    assert_eq!(db.query("SELECT count(*) FROM chinwag_schema").expect("versions"), [Some("1".to_owned())]);
}

/// `sslmode=require` encrypts the connection (the server here has a self-signed certificate,
/// which `require` does not check, as in libpq); `verify-full` checks it, and refuses one no
/// known authority signed.
#[test]
fn tls_as_the_url_asks() {
    let db = TestDatabase::create();
    let ssl_on = db.query("SHOW ssl").expect("show ssl");
    if ssl_on != [Some("on".to_owned())] {
        eprintln!("skipped: the test server has ssl = off");
        return;
    }
    let url = format!("{}?sslmode=require", db.url());
    let mut store = PostgresStore::open(&url).expect("open over TLS");
    store.append(&[message("m1", 1000)]).expect("append over TLS");
    let encrypted = db
        .query(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = '{}' AND a.application_name = 'chinwag' AND s.ssl",
            db.name()
        ))
        .expect("pg_stat_ssl");
    assert_eq!(encrypted, [Some("1".to_owned())], "the store's connection is encrypted");

    let plain = PostgresStore::open(db.url()).expect("open without TLS");
    let clear = db
        .query(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = '{}' AND a.application_name = 'chinwag' AND NOT s.ssl",
            db.name()
        ))
        .expect("pg_stat_ssl");
    assert_eq!(clear, [Some("1".to_owned())], "without sslmode, no TLS");
    drop(plain);

    let verify = format!("{}?sslmode=verify-full", db.url());
    let Err(e) = PostgresStore::open(&verify) else { panic!("a self-signed certificate fails verify-full") };
    assert!(matches!(e, PostgresOpenError::Unreachable { .. }), "{e:?}");
}

/// The server's connection is cut (PostgreSQL restarted, a network cut): the call that meets it
/// fails, and the store connects again for the next, with nothing lost.
#[test]
fn the_store_connects_again_after_losing_its_connection() {
    let db = TestDatabase::create();
    let mut store = PostgresStore::open(db.url()).expect("open");
    store.append(&[message("m1", 1000)]).expect("append");
    let killed = db
        .query(&format!(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = '{}' AND application_name = 'chinwag') t",
            db.name()
        ))
        .expect("terminate");
    assert_eq!(killed, [Some("1".to_owned())]);
    let mut stored = false;
    for _ in 0..3 {
        if store.append(&[message("m2", 2000)]).is_ok() {
            stored = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert!(stored, "the store connected again");
    assert_eq!(latest(&mut store), ["m1", "m2"]);
}

#[test]
fn test_databases_are_named_in_urls() {
    assert_eq!(with_database("postgres://u@h:5432/test", "x"), "postgres://u@h:5432/x");
    assert_eq!(with_database("postgres://u@h/test?sslmode=require", "x"), "postgres://u@h/x?sslmode=require");
    assert_eq!(with_database("postgres://u@h", "x"), "postgres://u@h/x");
}

/// Two nodes on one database: one has a private conversation's id cached when the other drops
/// an account and, with it, the conversation. The first node's next message to that
/// conversation is stored where history finds it, not under the id that is gone.
#[test]
fn a_conversation_deleted_by_another_node_is_made_again() {
    let db = TestDatabase::create();
    let mut first = PostgresStore::open(db.url()).expect("first node");
    let mut second = PostgresStore::open(db.url()).expect("second node");
    for name in ["alice", "bob"] {
        first
            .create_account(&NewAccount {
                name: name.into(),
                password_hash: "$argon2id$x".into(),
                scram: None,
                email: None,
                created_ms: 1,
            })
            .expect("account");
    }
    let private = |msgid: &str, time_ms| StoredMessage {
        conversation: "alice\0bob".into(),
        participants: vec!["alice".into(), "bob".into()],
        ..message(msgid, time_ms)
    };
    first.append(&[private("p1", 1000)]).expect("first message");
    assert!(second.drop_account("alice").expect("drop"), "the other node drops alice, and the conversation");
    first.append(&[private("p2", 2000)]).expect("the next message is stored all the same");
    for store in [&mut first, &mut second] {
        let page = store.history("alice\0bob", &HistoryQuery::Latest { after: None }, 10).expect("history");
        assert_eq!(page.iter().map(|m| m.msgid.as_str()).collect::<Vec<_>>(), ["p2"]);
    }
}
