//! A stalled disk, for real: the test takes SQLite's write lock on the server's database from
//! another connection (`BEGIN EXCLUSIVE`), so every commit waits and fails until it lets go.
//! Over real sockets: clients keep getting PONGs and replies that need no storage, messages
//! wait (nobody sees one before it is stored), past the bound new ones are refused with a FAIL,
//! what is held stays bounded, and once the lock is gone everything held is stored and
//! delivered, in order, and new messages work again.

mod support;

use std::time::{Duration, Instant};

use chinwag_core::Rate;
use support::{start_server, Client, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Memory the server may hold for commits in this test before refusing (`storage.max_held_kib`):
/// room for a handful of messages.
const HELD_BYTES: usize = 8 * 1024;
/// More messages than fit in [`HELD_BYTES`].
const TRIES: usize = 100;
/// How quickly what needs no storage must be answered while the disk is stalled.
const PROMPT: Duration = Duration::from_secs(1);

/// Sends a PING and returns how long its PONG took; lines before it are kept in `seen`.
async fn ping(client: &mut Client, token: &str) -> Duration {
    let sent = Instant::now();
    client.send(&format!("PING :{token}")).await;
    client
        .expect(&format!("PONG {token}"), |m| m.command == "PONG" && m.params.last().is_some_and(|t| t == token))
        .await;
    sent.elapsed()
}

/// `GET path` on the metrics listener; the status line.
async fn http_status(addr: std::net::SocketAddr, path: &str) -> String {
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect to the metrics listener");
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes()).await.expect("write");
    let mut reply = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut reply)).await.expect("HTTP reply in time").expect("read");
    reply.lines().next().unwrap_or_default().to_owned()
}

/// Texts of the room's messages in the database, oldest first.
fn stored_texts(db: &rusqlite::Connection) -> Vec<String> {
    // Messages (rooms' events, kept for event-playback, are rows of the same table).
    let sql = "SELECT text FROM messages WHERE command IN ('PRIVMSG', 'NOTICE') ORDER BY time_ms, msgid";
    let mut stmt = db.prepare(sql).expect("prepare");
    stmt.query_map([], |row| row.get(0)).expect("query").collect::<Result<_, _>>().expect("rows")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_disk_holds_and_then_refuses_messages_but_pings_are_answered_and_it_recovers() {
    let (server, dir) = start_server(|cfg| {
        cfg.max_held_bytes = HELD_BYTES;
        // Commits fail quickly under the test's lock, so the retry path runs too.
        cfg.sqlite.busy_timeout = Duration::from_millis(100);
        cfg.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"));
        cfg.core.limits.flood = Rate { burst: 1000, every: Duration::ZERO };
    })
    .await;
    let addr = server.plaintext[0];
    let metrics = server.metrics.expect("metrics listener");
    let mut alice = Client::plain(addr, "alice").await;
    alice.send("CAP REQ :echo-message").await;
    alice.expect_command("CAP").await;
    alice.send("CAP END").await;
    alice.register("alice").await;
    let mut bob = Client::plain(addr, "bob").await;
    bob.register("bob").await;
    let mut carol = Client::plain(addr, "carol").await;
    carol.register("carol").await;
    alice.join("#stall").await;
    bob.join("#stall").await;
    alice.send("PRIVMSG #stall :before").await;
    alice.expect_command("PRIVMSG").await;
    bob.expect_command("PRIVMSG").await;
    assert_eq!(http_status(metrics, "/readyz").await, "HTTP/1.1 200 OK");

    // The disk stalls: nothing can be written until the test lets go.
    let db = rusqlite::Connection::open(dir.path().join(chinwag_server::DATABASE_FILE)).expect("open the database");
    db.busy_timeout(WAIT).expect("busy timeout");
    db.execute_batch("BEGIN EXCLUSIVE").expect("take the write lock");

    // Messages are held until the bound, then refused at once with a standard reply, even though
    // alice's echoes wait. A PING after each message tells when the server has handled it.
    let mut held = 0;
    let refused = loop {
        assert!(held < TRIES, "{TRIES} messages held without a refusal");
        alice.send(&format!("PRIVMSG #stall :held {held}")).await;
        alice.send(&format!("PING :sent-{held}")).await;
        let token = format!("sent-{held}");
        let reply = tokio::time::timeout(
            PROMPT,
            alice.expect("FAIL or PONG", |m| m.command == "FAIL" || m.params.last() == Some(&token)),
        )
        .await
        .unwrap_or_else(|_| panic!("no answer while the disk is stalled; saw {:#?}", alice.seen));
        if reply.command == "FAIL" {
            break reply;
        }
        held += 1;
    };
    assert_eq!(refused.params[..3], ["PRIVMSG", "TEMPORARILY_UNAVAILABLE", "#stall"], "{refused:?}");
    assert!(held >= 2, "room for a few messages before the refusal, got {held}");
    alice.send("NOTICE #stall :nor this").await;
    let refused = tokio::time::timeout(PROMPT, alice.expect_command("FAIL")).await.expect("the refusal comes at once");
    assert_eq!(refused.params[..2], ["NOTICE", "TEMPORARILY_UNAVAILABLE"]);
    assert!(!alice.seen.iter().any(|l| l.contains("held ")), "no echo before the commit: {:#?}", alice.seen);

    // What needs no storage is answered promptly: for a client with nothing held (carol), for one
    // whose copies are held (bob), and for the sender herself.
    for (client, token) in [(&mut carol, "carol-1"), (&mut bob, "bob-1"), (&mut alice, "alice-1")] {
        let took = ping(client, token).await;
        println!("{}'s PONG while stalled: {took:?}", client.name);
        assert!(took < PROMPT, "{}'s PONG took {took:?} while the disk was stalled", client.name);
    }
    let asked = Instant::now();
    carol.send("WHOIS bob").await;
    carol.expect_command("318").await;
    carol.send("NAMES #stall").await;
    carol.expect_command("366").await;
    assert!(asked.elapsed() < PROMPT, "reads of state answered at once");
    assert!(!bob.seen.iter().any(|l| l.contains("held ")), "nobody sees a message before it is stored");

    // What is held is bounded, and the store's trouble shows.
    let snapshot = server.control().snapshot().await.expect("snapshot");
    println!(
        "{held} messages held before the first refusal: {} bytes, {} lines",
        snapshot.bytes_held, snapshot.lines_held
    );
    assert_eq!(snapshot.messages_held, held as u64, "the refused message is not held");
    assert!(snapshot.bytes_held as usize <= HELD_BYTES + 2048, "held {} bytes", snapshot.bytes_held);
    assert!(snapshot.lines_held <= 2 * held as u64 + 4, "lines held: {}", snapshot.lines_held);
    let deadline = Instant::now() + WAIT;
    while http_status(metrics, "/readyz").await != "HTTP/1.1 503 Service Unavailable" {
        assert!(Instant::now() < deadline, "/readyz still says ready while commits fail");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(stored_texts(&db).iter().all(|t| !t.starts_with("held")), "nothing was stored under the lock");

    // The disk frees up: everything held is stored and delivered, in order; nothing refused is.
    db.execute_batch("COMMIT").expect("let go of the write lock");
    for i in 0..held {
        let echo = alice.expect_command("PRIVMSG").await;
        assert_eq!(echo.params[1], format!("held {i}"), "alice's echoes in order");
        let copy = bob.expect_command("PRIVMSG").await;
        assert_eq!(copy.params[1], format!("held {i}"), "bob's copies in order");
    }
    alice.send("PRIVMSG #stall :after").await;
    assert_eq!(alice.expect_command("PRIVMSG").await.params[1], "after", "new messages are accepted again");
    assert_eq!(bob.expect_command("PRIVMSG").await.params[1], "after");
    let mut expected = vec!["before".to_owned()];
    expected.extend((0..held).map(|i| format!("held {i}")));
    expected.push("after".to_owned());
    assert_eq!(stored_texts(&db), expected, "every acknowledged message is stored, nothing refused is");
    assert_eq!(http_status(metrics, "/readyz").await, "HTTP/1.1 200 OK");
    let snapshot = server.control().snapshot().await.expect("snapshot");
    assert_eq!((snapshot.messages_held, snapshot.lines_held, snapshot.store_failing), (0, 0, false));
    drop(db);
    server.shutdown().await;
}
