//! draft/event-playback over real sockets and SQLite: a room's events are stored beside its
//! messages, survive a restart, and CHATHISTORY returns them only to clients that asked.

mod support;

use chinwag_proto::Message;
use support::{start_server, Client};

const CAPS: &str = "message-tags batch server-time draft/chathistory";

async fn connect(addr: std::net::SocketAddr, nick: &str, caps: &str) -> Client {
    let mut c = Client::plain(addr, nick).await;
    c.send(&format!("CAP REQ :{caps}")).await;
    c.expect("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")).await;
    c.send("CAP END").await;
    c.register(nick).await;
    c
}

/// The lines of the chathistory batch that answers `CHATHISTORY LATEST <room> * 50`.
async fn history(c: &mut Client, room: &str) -> Vec<Message> {
    c.send(&format!("CHATHISTORY LATEST {room} * 50")).await;
    let start = c.expect("a chathistory batch", |m| m.command == "BATCH").await;
    let end = format!("-{}", &start.params[0][1..]);
    let mut lines = Vec::new();
    loop {
        let m = c.next().await.expect("connection open");
        if m.command == "BATCH" && m.params.first() == Some(&end) {
            return lines;
        }
        lines.push(m);
    }
}

#[tokio::test]
async fn room_events_survive_a_restart_and_replay_only_to_clients_that_asked() {
    let (server, dir) = start_server(|_| {}).await;
    let addr = server.plaintext[0];
    let mut alice = connect(addr, "alice", CAPS).await;
    let mut bob = connect(addr, "bob", CAPS).await;
    alice.join("#club").await;
    bob.join("#club").await;
    alice.send("TOPIC #club :Reading Dune").await;
    alice.expect_command("TOPIC").await;
    alice.send("PRIVMSG #club :hello").await;
    bob.expect_command("PRIVMSG").await;
    bob.send("PART #club :later").await;
    alice.expect_command("PART").await;
    server.shutdown().await;

    let mut cfg = chinwag_server::ServerConfig::new(dir.path().to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec![];
    cfg.quic_listen = vec![];
    let server = chinwag_server::start(cfg).await.expect("restart");
    let addr = server.plaintext[0];

    let mut reader = connect(addr, "reader", &format!("{CAPS} draft/event-playback")).await;
    reader.join("#club").await;
    let lines = history(&mut reader, "#club").await;
    let shape: Vec<(String, Vec<String>)> = lines
        .iter()
        .filter(|m| !m.source.as_deref().is_some_and(|s| s.starts_with("reader!")))
        .map(|m| (m.command.clone(), m.params.clone()))
        .collect();
    let line = |c: &str, p: &[&str]| (c.to_owned(), p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        shape,
        [
            line("JOIN", &["#club"]),
            line("JOIN", &["#club"]),
            line("TOPIC", &["#club", "Reading Dune"]),
            line("PRIVMSG", &["#club", "hello"]),
            line("PART", &["#club", "later"]),
        ],
        "{lines:#?}"
    );
    assert!(lines.iter().all(|m| m.tag("msgid").is_some() && m.tag("time").is_some()));

    let mut plain = connect(addr, "plain", CAPS).await;
    plain.join("#club").await;
    let lines = history(&mut plain, "#club").await;
    let commands: Vec<&str> = lines.iter().map(|m| m.command.as_str()).collect();
    assert_eq!(commands, ["PRIVMSG"], "messages only: {lines:#?}");
    server.shutdown().await;
}
