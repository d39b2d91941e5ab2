//! draft/multiline over real sockets and a real SQLite file: a message sent as one batch is
//! stored once, survives a restart, and CHATHISTORY replays it as a batch (or line by line to a
//! client without the capability).

mod support;

use chinwag_proto::Message;
use support::{start_server, Client};

const CAPS: &str = "message-tags batch server-time echo-message labeled-response draft/chathistory";

async fn connect(addr: std::net::SocketAddr, nick: &str, caps: &str) -> Client {
    let mut c = Client::plain(addr, nick).await;
    c.send("CAP LS 302").await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")).await;
    c.send("CAP END").await;
    c.register(nick).await;
    c
}

/// Reads lines up to the end of the batch `start` opened (inclusive).
async fn read_batch(c: &mut Client, start: &Message) -> Vec<Message> {
    let end = format!("-{}", &start.params[0][1..]);
    let mut lines = Vec::new();
    loop {
        let m = c.next().await.expect("connection open");
        let done = m.command == "BATCH" && m.params.first() == Some(&end);
        lines.push(m);
        if done {
            return lines;
        }
    }
}

#[tokio::test]
async fn a_multiline_message_survives_a_restart_and_replays_as_a_batch() {
    let (server, dir) = start_server(|_| {}).await;
    let addr = server.plaintext[0];
    let mut alice = connect(addr, "alice", &format!("{CAPS} draft/multiline")).await;
    let mut bob = connect(addr, "bob", CAPS).await;
    alice.join("#general").await;
    bob.join("#general").await;

    alice.send("@label=m1 BATCH +paste draft/multiline #general").await;
    alice.send("@batch=paste PRIVMSG #general :fn main() {").await;
    alice.send("@batch=paste PRIVMSG #general :    println!(\"hi\"); ").await;
    alice.send("@batch=paste;draft/multiline-concat PRIVMSG #general :// continued").await;
    alice.send("@batch=paste PRIVMSG #general :}").await;
    alice.send("BATCH -paste").await;
    let start = alice.expect("the echo's BATCH", |m| m.command == "BATCH").await;
    assert_eq!(start.tag("label"), Some("m1"));
    assert_eq!(start.params[1..], ["draft/multiline", "#general"]);
    let msgid = start.tag("msgid").expect("msgid").to_owned();
    let echo = read_batch(&mut alice, &start).await;
    assert_eq!(echo.iter().filter(|m| m.command == "PRIVMSG").count(), 4);

    // bob has no draft/multiline: the lines as alice composed them, the first with the msgid.
    let first = bob.expect_command("PRIVMSG").await;
    assert_eq!(first.params, ["#general", "fn main() {"]);
    assert_eq!(first.tag("msgid"), Some(msgid.as_str()));
    for text in ["    println!(\"hi\"); ", "// continued", "}"] {
        let line = bob.expect_command("PRIVMSG").await;
        assert_eq!(line.params[1], text);
        assert!(line.tag("msgid").is_none() && line.tag("batch").is_none());
    }
    server.shutdown().await;

    // Same data directory, a new server.
    let mut cfg = chinwag_server::ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec![];
    cfg.quic_listen = vec![];
    let server = chinwag_server::start(cfg).await.expect("restart");
    let addr = server.plaintext[0];

    let mut reader = connect(addr, "reader", &format!("{CAPS} draft/multiline")).await;
    reader.join("#general").await;
    reader.send("CHATHISTORY LATEST #general * 10").await;
    let outer = reader.expect("chathistory", |m| m.command == "BATCH").await;
    assert_eq!(outer.params.get(1).map(String::as_str), Some("chathistory"));
    let replay = read_batch(&mut reader, &outer).await;
    let inner = replay.iter().find(|m| m.params.get(1).is_some_and(|t| t == "draft/multiline")).expect("a batch");
    assert_eq!(inner.tag("msgid"), Some(msgid.as_str()), "the same message: {replay:#?}");
    assert_eq!(inner.tag("batch"), Some(&outer.params[0][1..]));
    let texts: Vec<&str> = replay.iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["fn main() {", "    println!(\"hi\"); // continued", "}"], "stored as one text");

    let mut plain = connect(addr, "plain", CAPS).await;
    plain.join("#general").await;
    plain.send("CHATHISTORY LATEST #general * 10").await;
    let outer = plain.expect("chathistory", |m| m.command == "BATCH").await;
    let replay = read_batch(&mut plain, &outer).await;
    assert!(!replay.iter().any(|m| m.params.get(1).is_some_and(|t| t == "draft/multiline")));
    let lines: Vec<&Message> = replay.iter().filter(|m| m.command == "PRIVMSG").collect();
    assert_eq!(lines.len(), 3, "{replay:#?}");
    assert_eq!(lines[0].tag("msgid"), Some(msgid.as_str()));
    server.shutdown().await;
}
