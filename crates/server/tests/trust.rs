//! Identity and delivery promises over real sockets and a real SQLite file: private history and
//! waiting messages belong to accounts (never to whoever holds a nick), a waiting message
//! leaves its queue only once the client read it, and a client's pipelined commands run in the
//! order it sent them.

mod support;

use std::time::Duration;

use base64::Engine;
use chinwag_proto::Message;
use support::{start_server, Client};

fn plain(account: &str, password: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}

/// Registers `nick` as an account over TLS; returns the logged-in client.
async fn register(addr: std::net::SocketAddr, fp: &str, nick: &str) -> Client {
    let mut c = Client::tls(addr, fp, nick).await;
    c.send(&format!("NICK {nick}")).await;
    c.send(&format!("REGISTER * * {nick}-password")).await;
    c.expect_command("900").await;
    c.send(&format!("USER {nick} 0 * :{nick}")).await;
    c.expect_command("376").await;
    c
}

/// The whole SASL login written at once, as bots and libraries send it; returns the client
/// after its welcome.
async fn pipelined_login(addr: std::net::SocketAddr, fp: &str, nick: &str, caps: &str) -> Client {
    let mut c = Client::tls(addr, fp, nick).await;
    let burst = format!(
        "CAP LS 302\r\nCAP REQ :sasl {caps}\r\nNICK {nick}\r\nUSER {nick} 0 * :{nick}\r\nAUTHENTICATE PLAIN\r\n\
         AUTHENTICATE {}\r\nCAP END\r\n",
        plain(nick, &format!("{nick}-password"))
    );
    c.send_raw(burst.as_bytes()).await;
    c.expect_command("903").await;
    c.expect_command("001").await;
    c
}

/// Reads what the server sends until a history query sent now is answered, answering the
/// server's PINGs on the way; returns the PRIVMSG texts read meanwhile. Storage answers in
/// order, so whatever storage was asked before (offline delivery after a login) arrives first.
/// Needs the `batch` capability.
async fn read_all(c: &mut Client) -> Vec<String> {
    c.send("CHATHISTORY TARGETS timestamp=2000-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 1").await;
    let mut texts = Vec::new();
    loop {
        let m = c.next().await.expect("connection open");
        match m.command.as_str() {
            "PRIVMSG" => texts.push(m.params[1].clone()),
            "PING" => c.send(&format!("PONG :{}", m.params[0])).await,
            "BATCH" if m.params[0].starts_with('-') => return texts,
            _ => {}
        }
    }
}

#[tokio::test]
async fn an_impostor_on_a_registered_nick_reads_and_receives_nothing_of_the_account() {
    let (server, _dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut alice = register(addr, &fp, "alice").await;
    let mut bob = register(addr, &fp, "bob").await;
    alice.send("PRIVMSG bob :our secret plan").await;
    bob.expect_command("PRIVMSG").await;
    alice.send("QUIT").await;
    alice.expect_closed().await;

    let mut mallory = Client::plain(server.plaintext[0], "mallory").await;
    mallory.send("CAP REQ :batch server-time message-tags draft/chathistory").await;
    mallory.send("CAP END").await;
    mallory.register("alice").await;
    mallory.send("CHATHISTORY LATEST bob * 100").await;
    let fail = mallory.expect_command("FAIL").await;
    assert_eq!(fail.params[1], "INVALID_TARGET", "{fail:?}");
    bob.send("PRIVMSG alice :meant for alice").await;
    bob.send("PING :sent").await;
    bob.expect_command("PONG").await;
    mallory.send("PING :sync").await;
    mallory.expect_command("PONG").await;
    assert!(
        !mallory.seen.iter().any(|l| l.contains("our secret plan") || l.contains("meant for alice")),
        "{:#?}",
        mallory.seen
    );
    mallory.send("PRIVMSG bob :forged as alice").await;
    bob.expect_command("PRIVMSG").await;
    mallory.send("QUIT").await;
    mallory.expect_closed().await;

    // The real alice gets what was meant for her, and her history has no forgery in it.
    let mut alice = pipelined_login(addr, &fp, "alice", "batch server-time message-tags draft/chathistory").await;
    let waiting = read_all(&mut alice).await;
    assert_eq!(waiting, ["meant for alice"]);
    alice.send("CHATHISTORY LATEST bob * 100").await;
    let mut history = Vec::new();
    loop {
        let m = alice.next().await.expect("open");
        if m.command == "PRIVMSG" {
            history.push(m.params[1].clone());
        }
        if m.command == "BATCH" && m.params[0].starts_with('-') {
            break;
        }
    }
    assert_eq!(history, ["our secret plan", "meant for alice"], "no forgery in alice's conversation");
    server.shutdown().await;
}

#[tokio::test]
async fn waiting_messages_survive_a_client_that_drops_after_its_welcome() {
    const COUNT: usize = 1000;
    let (server, _dir) = start_server(|cfg| {
        cfg.core.limits.flood.every = Duration::ZERO;
        // A small SendQ: pages must fit it (10 lines each here) or slow readers would be
        // dropped with their page unread, again and again.
        cfg.limits.sendq_lines = 40;
        cfg.core.limits.offline_page = 10;
    })
    .await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut carol = register(addr, &fp, "carol").await;
    carol.send("QUIT").await;
    carol.expect_closed().await;
    let mut dave = Client::plain(server.plaintext[0], "dave").await;
    dave.register("dave").await;
    let mut burst = String::new();
    for i in 0..COUNT {
        burst.push_str(&format!("PRIVMSG carol :waiting {i}\r\n"));
    }
    dave.send_raw(burst.as_bytes()).await;
    dave.send("PING :queued").await;
    dave.expect_command("PONG").await;

    // Logs in and goes away at once, reading nothing: three times.
    for _ in 0..3 {
        let c = pipelined_login(addr, &fp, "carol", "").await;
        drop(c);
    }
    // A slow reader: reads a little, then drops.
    let mut slow = pipelined_login(addr, &fp, "carol", "").await;
    for _ in 0..20 {
        slow.next().await;
    }
    drop(slow);

    let mut carol = pipelined_login(addr, &fp, "carol", "batch message-tags").await;
    // Pages follow each other as their PINGs are answered: read (answering them) until all
    // arrived; each read waits at most `support::WAIT`.
    let mut got = Vec::new();
    while got.len() < COUNT {
        let m = carol.next().await.expect("connection open");
        match m.command.as_str() {
            "PRIVMSG" => got.push(m.params[1].clone()),
            "PING" => carol.send(&format!("PONG :{}", m.params[0])).await,
            _ => {}
        }
    }
    // The last page's PONG has reached the server once our own PING is answered.
    read_all(&mut carol).await;
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), COUNT, "every waiting message arrived at least once");
    assert_eq!(got.first().map(String::as_str), Some("waiting 0"), "oldest first");
    carol.send("QUIT").await;
    carol.expect_closed().await;

    // Read means gone: the next login gets nothing more.
    let mut carol = pipelined_login(addr, &fp, "carol", "batch").await;
    assert!(read_all(&mut carol).await.is_empty(), "acknowledged messages were cleared");
    server.shutdown().await;
}

#[tokio::test]
async fn pipelined_commands_after_a_password_check_run_in_order() {
    let (server, _dir) = start_server(|_| {}).await;
    let (addr, fp) = (server.tls[0], server.fingerprint.clone());
    let mut erin = register(addr, &fp, "erin").await;
    erin.send("QUIT").await;
    erin.expect_closed().await;
    let mut c = Client::tls(addr, &fp, "erin").await;
    let burst = format!(
        "CAP LS 302\r\nCAP REQ :sasl\r\nNICK erin\r\nUSER erin 0 * :erin\r\nAUTHENTICATE PLAIN\r\nAUTHENTICATE {}\r\n\
         CAP END\r\nJOIN #general\r\nPING :last\r\n",
        plain("erin", "erin-password")
    );
    c.send_raw(burst.as_bytes()).await;
    let mut order = Vec::new();
    loop {
        let m: Message = c.next().await.expect("open");
        if ["903", "001", "JOIN", "PONG"].contains(&m.command.as_str()) {
            order.push(m.command.clone());
        }
        if m.command == "PONG" {
            break;
        }
    }
    assert_eq!(order, ["903", "001", "JOIN", "PONG"], "{:#?}", c.seen);
    server.shutdown().await;
}

/// A room that is not permanent is forgotten when its last member leaves, while SQLite keeps its
/// history under its name. Whoever makes a room of that name afterwards (and is its operator)
/// reads nothing of what was said in the old one.
#[tokio::test]
async fn a_room_made_again_under_an_old_name_reads_nothing_of_the_old_room() {
    let (server, _dir) = start_server(|_| {}).await;
    let addr = server.plaintext[0];
    let mut amy = Client::plain(addr, "amy").await;
    amy.register("amy").await;
    amy.join("#plans").await;
    amy.send("MODE #plans +is").await;
    amy.send("PRIVMSG #plans :the old room's secret").await;
    amy.send("PART #plans").await;
    amy.expect_command("PART").await;

    // The wall clock moves past the old room's last millisecond (history is by time).
    tokio::time::sleep(Duration::from_millis(5)).await;
    let mut mallory = Client::plain_from(addr, "127.0.0.2".parse().expect("ip"), "mallory").await;
    mallory.send("CAP REQ :batch server-time message-tags draft/chathistory").await;
    mallory.send("CAP END").await;
    mallory.register("mallory").await;
    mallory.join("#plans").await;
    mallory.send("PRIVMSG #plans :the new room's first").await;
    mallory.send("CHATHISTORY LATEST #plans * 100").await;
    let mut history = Vec::new();
    loop {
        let m = mallory.next().await.expect("open");
        if m.command == "PRIVMSG" {
            history.push(m.params[1].clone());
        }
        if m.command == "BATCH" && m.params[0].starts_with('-') {
            break;
        }
    }
    assert_eq!(history, ["the new room's first"], "only the new room's history");
    server.shutdown().await;
}
