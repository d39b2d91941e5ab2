//! IRCv3 `draft/read-marker` and `draft/message-redaction` over real sockets and a real SQLite
//! file: a read marker is synced between two connections of one account and survives a
//! restart; a redacted message is gone from history and from an offline queue, also after a
//! restart.

mod support;

use std::net::SocketAddr;

use base64::Engine;
use support::{start_server, Client};

/// Registers `nick` as an account over TLS, then leaves.
async fn register(addr: SocketAddr, fp: &str, nick: &str, password: &str) {
    let mut c = Client::tls(addr, fp, nick).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("REGISTER * * {password}")).await;
    c.expect_command("900").await;
    c.send("QUIT").await;
    c.expect_closed().await;
}

/// Connects as `nick`, logged in to `account` with SASL PLAIN, with `caps`; after the MOTD.
async fn login(addr: SocketAddr, fp: &str, nick: &str, account: &str, password: &str, caps: &str) -> Client {
    let mut c = Client::tls(addr, fp, nick).await;
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :sasl {caps}")).await;
    c.expect("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.send("AUTHENTICATE PLAIN").await;
    c.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    let payload = base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"));
    c.send(&format!("AUTHENTICATE {payload}")).await;
    c.expect_command("903").await;
    c.send("CAP END").await;
    c.expect_command("376").await;
    c
}

/// The same data directory, served again by a new server.
async fn restart(server: chinwag_server::Running, dir: &tempfile::TempDir) -> chinwag_server::Running {
    server.shutdown().await;
    let mut cfg = chinwag_server::ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec![];
    cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    chinwag_server::start(cfg).await.expect("restart")
}

/// Joins `room` and returns what came between the JOIN and its 366: the room's MARKREAD must be
/// among them.
async fn join_marker(c: &mut Client, room: &str) -> String {
    c.send(&format!("JOIN {room}")).await;
    c.expect("own JOIN", |m| m.command == "JOIN").await;
    let mut marker = None;
    loop {
        let m = c.next().await.expect("open");
        match m.command.as_str() {
            "MARKREAD" if m.params[0] == room => marker = Some(m.params[1].clone()),
            "366" => break,
            _ => {}
        }
    }
    marker.unwrap_or_else(|| panic!("{}: no MARKREAD between JOIN and 366: {:#?}", c.name, c.seen))
}

#[tokio::test]
async fn a_read_marker_syncs_between_an_accounts_connections_and_survives_a_restart() {
    let (server, dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    register(addr, &fp, "alice", "alice-password").await;
    let caps = "draft/read-marker server-time echo-message";
    let mut laptop = login(addr, &fp, "alice", "alice", "alice-password", caps).await;
    let mut phone = login(addr, &fp, "alice_phone", "alice", "alice-password", caps).await;
    assert_eq!(join_marker(&mut laptop, "#general").await, "*", "nothing read yet");
    assert_eq!(join_marker(&mut phone, "#general").await, "*");

    laptop.send("PRIVMSG #general :something to read").await;
    let said = laptop.expect_command("PRIVMSG").await;
    let time = said.tag("time").expect("server-time").to_owned();
    let read = format!("timestamp={time}");
    laptop.send(&format!("MARKREAD #general {read}")).await;
    let answer = laptop.expect_command("MARKREAD").await;
    assert_eq!(answer.params, ["#general", read.as_str()], "the setter's answer");
    let synced = phone.expect_command("MARKREAD").await;
    assert_eq!(synced.params, ["#general", read.as_str()], "the other device is told");

    // Backwards is refused by answering with what is stored.
    phone.send("MARKREAD #general timestamp=2020-01-01T00:00:00.000Z").await;
    assert_eq!(phone.expect_command("MARKREAD").await.params, ["#general", read.as_str()]);
    // A private conversation's marker too.
    phone.send(&format!("MARKREAD bob {read}")).await;
    assert_eq!(phone.expect_command("MARKREAD").await.params, ["bob", read.as_str()]);
    assert_eq!(laptop.expect_command("MARKREAD").await.params, ["bob", read.as_str()]);

    let server = restart(server, &dir).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut again = login(addr, &fp, "alice", "alice", "alice-password", caps).await;
    assert_eq!(join_marker(&mut again, "#general").await, read, "the marker survived the restart");
    again.send("MARKREAD bob").await;
    assert_eq!(again.expect_command("MARKREAD").await.params, ["bob", read.as_str()]);
    server.shutdown().await;
}

#[tokio::test]
async fn a_redacted_message_leaves_history_and_offline_queues_for_good() {
    let (server, dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    register(addr, &fp, "alice", "alice-password").await;
    register(addr, &fp, "bob", "bob-password").await;
    let caps = "draft/message-redaction message-tags echo-message batch draft/chathistory";
    let mut alice = login(addr, &fp, "alice", "alice", "alice-password", caps).await;
    let mut carol = Client::plain(server.plaintext[0], "carol").await;
    carol.send("CAP REQ :draft/message-redaction").await;
    carol.expect_command("CAP").await;
    carol.send("CAP END").await;
    carol.register("carol").await;
    let mut dave = Client::plain(server.plaintext[0], "dave").await;
    dave.register("dave").await;
    alice.join("#general").await;
    carol.join("#general").await;
    dave.join("#general").await;

    alice.send("PRIVMSG #general :posted by mistake").await;
    let oops = alice.expect_command("PRIVMSG").await.tag("msgid").expect("msgid").to_owned();
    alice.send("PRIVMSG #general :this one stays").await;
    let stays = alice.expect_command("PRIVMSG").await.tag("msgid").expect("msgid").to_owned();
    alice.send(&format!("REDACT #general {oops} :wrong room")).await;
    let redact = alice.expect_command("REDACT").await;
    assert_eq!(redact.params, ["#general", oops.as_str(), "wrong room"]);
    let seen = carol.expect_command("REDACT").await;
    assert_eq!(seen.params, ["#general", oops.as_str(), "wrong room"], "a member with the capability is told");
    // dave has no capability: after the two messages, the next thing he sees is his own PONG.
    dave.expect_command("PRIVMSG").await;
    dave.expect_command("PRIVMSG").await;
    dave.send("PING :after").await;
    assert_eq!(dave.expect("PONG or REDACT", |m| m.command == "PONG" || m.command == "REDACT").await.command, "PONG");

    // A private message waiting for bob, redacted before he comes back.
    alice.send("PRIVMSG bob :a secret I regret").await;
    let secret = alice.expect_command("PRIVMSG").await.tag("msgid").expect("msgid").to_owned();
    alice.send(&format!("REDACT bob {secret}")).await;
    assert_eq!(alice.expect_command("REDACT").await.params, ["bob", secret.as_str()]);

    // Someone else's message is not carol's to redact.
    carol.send(&format!("REDACT #general {stays}")).await;
    let fail = carol.expect_command("FAIL").await;
    assert_eq!(fail.params[..2], ["REDACT", "REDACT_FORBIDDEN"]);

    let server = restart(server, &dir).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut bob = login(addr, &fp, "bob", "bob", "bob-password", "").await;
    bob.send("PING :after").await;
    let next = bob.expect("PRIVMSG or PONG", |m| m.command == "PRIVMSG" || m.command == "PONG").await;
    assert_eq!(next.command, "PONG", "the redacted message no longer waits for bob: {:#?}", bob.seen);

    let mut alice = login(addr, &fp, "alice", "alice", "alice-password", caps).await;
    alice.join("#general").await;
    alice.send("CHATHISTORY LATEST #general * 10").await;
    alice.expect_command("BATCH").await;
    let mut texts = Vec::new();
    loop {
        let m = alice.next().await.expect("open");
        match m.command.as_str() {
            "PRIVMSG" => texts.push(m.params[1].clone()),
            "BATCH" => break,
            _ => {}
        }
    }
    assert_eq!(texts, ["this one stays"], "the redacted message is gone from history after the restart");
    alice.send("CHATHISTORY LATEST bob * 10").await;
    alice.expect_command("BATCH").await;
    let end = alice.expect("PRIVMSG or BATCH end", |m| m.command == "PRIVMSG" || m.command == "BATCH").await;
    assert_eq!(end.command, "BATCH", "nor in the private conversation: {:#?}", alice.seen);
    alice.send(&format!("REDACT #general {oops}")).await;
    assert_eq!(alice.expect_command("FAIL").await.params[1], "UNKNOWN_MSGID", "it cannot be redacted twice");
    server.shutdown().await;
}
