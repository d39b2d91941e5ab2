//! The server on a PostgreSQL store (`storage.backend = "postgres"`), over real sockets: each
//! test on a fresh database of the server `CHINWAG_TEST_POSTGRES` names (default
//! `postgres://postgres@127.0.0.1:5432/test`), dropped at the end.

mod support;

use chinwag_server::{ServerConfig, StoreBackend};
use chinwag_store::test_db::TestDatabase;
use support::Client;

async fn start(data_dir: &std::path::Path, url: &str) -> chinwag_server::Running {
    let mut cfg = ServerConfig::new(data_dir.to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.store = StoreBackend::Postgres { url: url.to_owned() };
    chinwag_server::start(cfg).await.expect("server starts on PostgreSQL")
}

/// Registers over TLS with REGISTER and returns the logged-in client.
async fn register(server: &chinwag_server::Running, nick: &str, password: &str) -> Client {
    let mut c = Client::tls(server.tls[0], &server.fingerprint, nick).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("REGISTER * * {password}")).await;
    let ok = c.expect("REGISTER or FAIL", |m| m.command == "REGISTER" || m.command == "FAIL").await;
    assert_eq!(ok.params[..2], ["SUCCESS".to_owned(), nick.to_owned()], "{ok:?}");
    c.expect_command("900").await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.expect_command("376").await;
    c
}

/// Register, talk, stop; start again on another data directory (so nothing can come from a
/// SQLite file) with the same database: the account logs in, the room's history and the
/// message waiting for an offline account are there.
#[tokio::test]
async fn history_and_accounts_live_in_postgres_across_a_restart() {
    let db = TestDatabase::create();
    let first_dir = tempfile::tempdir().expect("temp dir");
    let server = start(first_dir.path(), db.url()).await;
    let mut alice = register(&server, "alice", "alice-password").await;
    let mut bob = register(&server, "bob", "bob-password").await;
    alice.send("CAP REQ :echo-message message-tags").await;
    alice.expect_command("CAP").await;
    alice.join("#pg").await;
    alice.send("PRIVMSG #pg :stored in postgres").await;
    let echo = alice.expect_command("PRIVMSG").await;
    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice.send("PRIVMSG bob :waiting for you").await;
    alice.expect_command("PRIVMSG").await;
    server.shutdown().await;
    assert!(
        !first_dir.path().join(chinwag_server::DATABASE_FILE).exists(),
        "no SQLite file is made when the store is PostgreSQL"
    );

    let second_dir = tempfile::tempdir().expect("temp dir");
    let server = start(second_dir.path(), db.url()).await;
    let mut bob = Client::tls(server.tls[0], &server.fingerprint, "bob").await;
    bob.send("CAP LS 302").await;
    bob.send("CAP REQ :sasl server-time message-tags batch draft/chathistory").await;
    bob.expect("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")).await;
    bob.send("NICK bob").await;
    bob.send("USER bob 0 * :bob").await;
    bob.send("AUTHENTICATE PLAIN").await;
    bob.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    use base64::Engine;
    bob.send(&format!("AUTHENTICATE {}", base64::engine::general_purpose::STANDARD.encode("\0bob\0bob-password")))
        .await;
    bob.expect_command("903").await;
    bob.send("CAP END").await;
    bob.expect_command("376").await;
    let waiting = bob.expect_command("PRIVMSG").await;
    assert_eq!(waiting.params, ["bob", "waiting for you"]);

    bob.join("#pg").await;
    bob.send("CHATHISTORY LATEST #pg * 10").await;
    let batch = bob.expect_command("BATCH").await;
    assert_eq!(batch.params[1], "chathistory");
    let old = bob.expect_command("PRIVMSG").await;
    assert_eq!(old.params, ["#pg", "stored in postgres"]);
    assert_eq!(old.tag("msgid"), echo.tag("msgid"), "the message as it was echoed");
    bob.expect_command("BATCH").await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_unreachable_database_stops_the_start_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec![];
    cfg.store = StoreBackend::Postgres { url: "postgres://chinwag:secret@127.0.0.1:1/chinwag".into() };
    let Err(err) = chinwag_server::start(cfg).await else { panic!("nothing listens on port 1") };
    let text = format!("{err:#}");
    assert!(text.contains("cannot reach PostgreSQL at postgres://chinwag:***@127.0.0.1:1/chinwag"), "{text}");
    assert!(!text.contains("secret"), "{text}");
}

/// PostgreSQL goes away under the server (as during `pg_ctl restart`: its connection is cut and
/// new ones are refused; here for this test's database only, `ALLOW_CONNECTIONS false` and
/// `pg_terminate_backend`, so that other tests on the same PostgreSQL go on). Messages are held
/// (nobody sees one before it is stored), past `storage.max_held_kib` new ones are refused with
/// `FAIL … TEMPORARILY_UNAVAILABLE`, PINGs are answered; when the database takes connections
/// again the server connects by itself, stores and delivers everything held, in order, and new
/// messages work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_postgres_outage_holds_then_refuses_and_the_server_carries_on_when_it_is_back() {
    use std::time::{Duration, Instant};
    const HELD_BYTES: usize = 8 * 1024;
    const TRIES: usize = 100;
    const PROMPT: Duration = Duration::from_secs(1);
    let db = TestDatabase::create();
    let dir = tempfile::tempdir().expect("temp dir");
    let mut cfg = ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec![];
    cfg.store = StoreBackend::Postgres { url: db.url().to_owned() };
    cfg.max_held_bytes = HELD_BYTES;
    cfg.core.limits.flood = chinwag_core::Rate { burst: 1000, every: Duration::ZERO };
    let server = chinwag_server::start(cfg).await.expect("server starts on PostgreSQL");
    let addr = server.plaintext[0];
    let mut alice = Client::plain(addr, "alice").await;
    alice.send("CAP REQ :echo-message").await;
    alice.expect_command("CAP").await;
    alice.send("CAP END").await;
    alice.register("alice").await;
    let mut bob = Client::plain(addr, "bob").await;
    bob.register("bob").await;
    alice.join("#outage").await;
    bob.join("#outage").await;
    alice.send("PRIVMSG #outage :before").await;
    alice.expect_command("PRIVMSG").await;
    bob.expect_command("PRIVMSG").await;

    let name = db.name().to_owned();
    db.admin_execute(&format!(
        "ALTER DATABASE {name} ALLOW_CONNECTIONS false;
         SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'"
    ))
    .expect("cut the server off its database");

    let mut held = 0;
    let refused = loop {
        assert!(held < TRIES, "{TRIES} messages held without a refusal");
        alice.send(&format!("PRIVMSG #outage :held {held}")).await;
        alice.send(&format!("PING :sent-{held}")).await;
        let token = format!("sent-{held}");
        let reply = tokio::time::timeout(
            PROMPT,
            alice.expect("FAIL or PONG", |m| m.command == "FAIL" || m.params.last() == Some(&token)),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer while PostgreSQL is away; saw {:#?}", alice.seen));
        if reply.command == "FAIL" {
            break reply;
        }
        held += 1;
    };
    assert_eq!(refused.params[..3], ["PRIVMSG", "TEMPORARILY_UNAVAILABLE", "#outage"], "{refused:?}");
    assert!(held >= 2, "room for a few messages before the refusal, got {held}");
    let asked = Instant::now();
    bob.send("PING :bob").await;
    bob.expect("PONG bob", |m| m.command == "PONG").await;
    assert!(asked.elapsed() < PROMPT, "PING answered while PostgreSQL is away");
    assert!(!alice.seen.iter().any(|l| l.contains("held ")), "no echo before the commit: {:#?}", alice.seen);
    assert!(!bob.seen.iter().any(|l| l.contains("held ")), "nobody sees a message before it is stored");
    // Held for a while: the store keeps failing to connect, and keeps trying.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!alice.seen.iter().any(|l| l.contains("held ")), "still held while PostgreSQL is away");

    db.admin_execute(&format!("ALTER DATABASE {name} ALLOW_CONNECTIONS true")).expect("let the server back in");
    for i in 0..held {
        let echo = alice.expect_command("PRIVMSG").await;
        assert_eq!(echo.params[1], format!("held {i}"), "alice's echoes in order");
        let copy = bob.expect_command("PRIVMSG").await;
        assert_eq!(copy.params[1], format!("held {i}"), "bob's copies in order");
    }
    alice.send("PRIVMSG #outage :after").await;
    assert_eq!(alice.expect_command("PRIVMSG").await.params[1], "after", "new messages are accepted again");
    let stored: Vec<String> = db
        .query("SELECT text FROM messages WHERE command = 'PRIVMSG' ORDER BY time_ms, msgid")
        .expect("read the database")
        .into_iter()
        .flatten()
        .collect();
    let mut expected = vec!["before".to_owned()];
    expected.extend((0..held).map(|i| format!("held {i}")));
    expected.push("after".to_owned());
    assert_eq!(stored, expected, "every acknowledged message is stored, nothing refused is");
    server.shutdown().await;
}
