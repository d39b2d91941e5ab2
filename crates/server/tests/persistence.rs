//! Accounts, rooms, history and waiting messages over real sockets and a real SQLite file,
//! across a restart.

mod support;

use base64::Engine;
use support::{start_server, Client};

fn plain(account: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}

/// Registers over TLS with REGISTER and returns the logged-in client.
async fn register(addr: std::net::SocketAddr, fp: &str, nick: &str, password: &str) -> Client {
    let mut c = Client::tls(addr, fp, nick).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("REGISTER * * {password}")).await;
    let ok = c.expect("REGISTER or FAIL", |m| m.command == "REGISTER" || m.command == "FAIL").await;
    assert_eq!(ok.params[..2], ["SUCCESS".to_owned(), nick.to_owned()], "{ok:?}");
    c.expect_command("900").await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.expect_command("376").await;
    c
}

/// Logs in with SASL PLAIN during registration; returns the client after the MOTD.
async fn sasl_login(addr: std::net::SocketAddr, fp: &str, nick: &str, password: &str, caps: &str) -> (Client, bool) {
    let mut c = Client::tls(addr, fp, nick).await;
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :sasl {caps}")).await;
    c.expect("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    c.send(&format!("AUTHENTICATE {}", plain(nick, password))).await;
    let outcome = c.expect("903 or 904", |m| m.command == "903" || m.command == "904").await;
    c.send("CAP END").await;
    c.expect_command("376").await;
    (c, outcome.command == "903")
}

#[tokio::test]
async fn a_restart_keeps_accounts_rooms_history_and_waiting_messages() {
    let (server, dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut alice = register(addr, &fp, "alice", "alice-password").await;
    let mut bob = register(addr, &fp, "bob", "bob-password").await;
    alice.send("CAP REQ :echo-message").await;
    alice.expect_command("CAP").await;
    alice.join("#book-club").await;
    alice.send("TOPIC #book-club :Reading Dune").await;
    alice.expect_command("TOPIC").await;
    alice.send("MODE #book-club +k sesame").await;
    alice.expect_command("MODE").await;
    alice.send("PRIVMSG #book-club :chapter one was great").await;
    alice.expect_command("PRIVMSG").await;
    bob.send("QUIT").await;
    bob.expect_closed().await;
    alice.send("PRIVMSG bob :see you at the club").await;
    let echo = alice.expect_command("PRIVMSG").await;
    assert_eq!(echo.params, ["bob", "see you at the club"], "accepted for an offline account");
    server.shutdown().await;

    // Same data directory, new process state.
    let mut cfg = chinwag_server::ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec![];
    cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    let server = chinwag_server::start(cfg).await.expect("restart");
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    assert_eq!(fp, server.fingerprint);

    let (mut bob, ok) =
        sasl_login(addr, &fp, "bob", "bob-password", "server-time message-tags batch draft/chathistory").await;
    assert!(ok, "bob's account survived: {:#?}", bob.seen);
    let waiting = bob.expect_command("PRIVMSG").await;
    assert_eq!(waiting.params, ["bob", "see you at the club"]);
    assert!(waiting.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    assert_eq!(waiting.tag("msgid"), echo.tag("msgid").or(waiting.tag("msgid")));
    assert!(waiting.tag("time").is_some(), "delivered with its original server-time");

    bob.send("JOIN #book-club").await;
    assert_eq!(bob.expect_command("475").await.params[1], "#book-club", "the key survived");
    bob.send("JOIN #book-club sesame").await;
    let topic = bob.expect_command("332").await;
    assert_eq!(topic.params[2], "Reading Dune");
    bob.expect_command("366").await;
    bob.send("CHATHISTORY LATEST #book-club * 10").await;
    let batch = bob.expect_command("BATCH").await;
    assert_eq!(batch.params[1], "chathistory");
    let old = bob.expect_command("PRIVMSG").await;
    assert_eq!(old.params, ["#book-club", "chapter one was great"]);
    bob.expect_command("BATCH").await;

    // A wrong password is refused, and the account is still protected.
    let (mut mallory, ok) = sasl_login(addr, &fp, "alice", "not-her-password", "").await;
    assert!(!ok, "{:#?}", mallory.seen);
    mallory.send("QUIT").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_waiting_message_is_delivered_once() {
    let (server, _dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut carol = register(addr, &fp, "carol", "carol-password").await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    let mut dave = Client::plain(server.plaintext[0], "dave").await;
    dave.register("dave").await;
    dave.send("PRIVMSG carol :one").await;
    dave.send("PRIVMSG carol :two").await;
    dave.send("PING :sync").await;
    dave.expect_command("PONG").await;
    let (mut carol, ok) = sasl_login(addr, &fp, "carol", "carol-password", "").await;
    assert!(ok);
    assert_eq!(carol.expect_command("PRIVMSG").await.params[1], "one");
    assert_eq!(carol.expect_command("PRIVMSG").await.params[1], "two");
    // Answering the PING that follows them says they were read: only then are they cleared.
    let ping = carol.expect_command("PING").await;
    carol.send(&format!("PONG :{}", ping.params[0])).await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    let (mut carol, _) = sasl_login(addr, &fp, "carol", "carol-password", "").await;
    carol.send("PING :after").await;
    let next = carol.expect("PRIVMSG or PONG", |m| m.command == "PRIVMSG" || m.command == "PONG").await;
    assert_eq!(next.command, "PONG", "already delivered messages do not come again");
    server.shutdown().await;
}

#[tokio::test]
async fn a_database_from_a_newer_version_or_garbage_stops_the_server_and_is_kept() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join(chinwag_server::DATABASE_FILE);
    std::fs::write(&db, b"this is not a database, and it is precious").expect("write");
    let mut cfg = chinwag_server::ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec![];
    let err = chinwag_server::start(cfg).await.expect_err("refuses a garbage database");
    let text = format!("{err:#}");
    assert!(text.contains("chinwag.db"), "names the file: {text}");
    assert_eq!(std::fs::read(&db).expect("read"), b"this is not a database, and it is precious");
}

/// With the default settings (30 days' retention, `DEFAULT_HISTORY_RETENTION_DAYS`), history
/// older than that is pruned as the server starts, and newer history stays.
#[tokio::test]
async fn old_history_is_pruned_with_the_default_settings() {
    use chinwag_store::Store as _;
    // A default room: a room made anew reads nothing from before it was made, whatever storage
    // still holds, so only a permanent room shows what retention did.
    let dir = tempfile::tempdir().expect("temp dir");
    let day_ms = 24 * 3600 * 1000;
    let now_ms =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock after 1970").as_millis()
            as u64;
    let message = |msgid: &str, age_days: u64, text: &str| chinwag_store::StoredMessage {
        msgid: msgid.into(),
        time_ms: now_ms - age_days * day_ms,
        command: "PRIVMSG".into(),
        sender: "alice!alice@127.0.0.1".into(),
        sender_account: None,
        target: "#general".into(),
        text: text.into(),
        tags: String::new(),
        conversation: "#general".into(),
        participants: Vec::new(),
        offline_for: None,
    };
    {
        let path = dir.path().join(chinwag_server::DATABASE_FILE);
        let mut store = chinwag_store::SqliteStore::open(&path, Default::default()).expect("create the database");
        let days = u64::from(chinwag_server::DEFAULT_HISTORY_RETENTION_DAYS);
        store
            .append(&[message("a-old", days + 1, "from long ago"), message("b-new", days - 1, "still recent")])
            .expect("append");
    }
    let mut cfg = chinwag_server::ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    let server = chinwag_server::start(cfg).await.expect("server starts");
    let mut carol = Client::plain(server.plaintext[0], "carol").await;
    carol.send("CAP REQ :batch draft/chathistory").await;
    carol.expect_command("CAP").await;
    carol.send("CAP END").await;
    carol.register("carol").await;
    carol.join("#general").await;

    // Pruning runs on the store thread once the hub starts; ask until it has, within a bound.
    let deadline = tokio::time::Instant::now() + support::WAIT;
    loop {
        carol.send("CHATHISTORY LATEST #general * 10").await;
        carol.expect_command("BATCH").await;
        let mut texts = Vec::new();
        loop {
            let m = carol.next().await.expect("open");
            match m.command.as_str() {
                "PRIVMSG" => texts.push(m.params[1].clone()),
                "BATCH" => break,
                _ => {}
            }
        }
        if texts == ["still recent"] {
            break;
        }
        assert!(texts.contains(&"still recent".to_owned()), "recent history is kept: {texts:?}");
        assert!(tokio::time::Instant::now() < deadline, "history older than the default retention stays: {texts:?}");
        tokio::task::yield_now().await;
    }
    server.shutdown().await;
}
