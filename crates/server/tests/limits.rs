//! Edge limits over real sockets: connections per address and in total, new connections per
//! minute, the registration timeout for silent and slow peers, and line length while reading.
//! Several peers are played by binding different addresses of 127.0.0.0/8.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chinwag_core::Rate;
use chinwag_proto::Message;
use support::{start_server, Client, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn local(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// The peer's first line is an ERROR saying `why`, then the connection closes.
async fn expect_refused(client: &mut Client, why: &str) {
    let lines = client.expect_closed().await;
    let error = lines.iter().find(|m| m.command == "ERROR");
    assert!(
        error.is_some_and(|e| e.params[0].contains(why)),
        "{}: wanted ERROR with {why:?}; got {lines:#?}",
        client.name
    );
}

/// NICK + USER, then either the welcome (`true`) or an ERROR and close (`false`).
async fn try_register(client: &mut Client, nick: &str) -> bool {
    client.send(&format!("NICK {nick}")).await;
    client.send(&format!("USER {nick} 0 * :{nick}")).await;
    let m: Message = client.expect("001 or ERROR", |m| m.command == "001" || m.command == "ERROR").await;
    m.command == "001"
}

#[tokio::test]
async fn connections_per_address_are_capped_and_other_addresses_are_not_affected() {
    let (server, _dir) = start_server(|cfg| {
        cfg.limits.connections_per_address = 3;
        cfg.limits.new_connections = Rate { burst: 1000, every: Duration::from_millis(1) };
    })
    .await;
    let addr = server.plaintext[0];
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = Client::plain_from(addr, local(2), &format!("held{i}")).await;
        assert!(try_register(&mut c, &format!("held{i}")).await, "within the limit");
        held.push(c);
    }
    let mut extra = Client::plain_from(addr, local(2), "extra").await;
    expect_refused(&mut extra, "Too many connections from your address").await;
    let mut neighbour = Client::plain_from(addr, local(3), "neighbour").await;
    assert!(try_register(&mut neighbour, "neighbour").await, "another address connects");

    // When one leaves, its place is free again (the server learns it asynchronously: retry).
    held.pop().expect("one").send("QUIT :bye").await;
    let mut admitted = false;
    for attempt in 0..50 {
        let mut again = Client::plain_from(addr, local(2), "again").await;
        if try_register(&mut again, &format!("again{attempt}")).await {
            admitted = true;
            break;
        }
    }
    assert!(admitted, "a freed place is given to the next connection");
    server.shutdown().await;
}

#[tokio::test]
async fn a_full_server_refuses_with_a_clear_error_on_both_listeners() {
    let (server, _dir) = start_server(|cfg| cfg.limits.max_connections = 3).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let mut c = Client::plain_from(server.plaintext[0], local(10 + i), &format!("u{i}")).await;
        assert!(try_register(&mut c, &format!("u{i}")).await);
        held.push(c);
    }
    let mut plain = Client::plain_from(server.plaintext[0], local(20), "late").await;
    expect_refused(&mut plain, "Server full").await;
    let mut tls = Client::tls(server.tls[0], &server.fingerprint, "late-tls").await;
    expect_refused(&mut tls, "Server full").await;
    // The ones inside carry on.
    held[0].send("PING :still").await;
    held[0].expect_command("PONG").await;
    server.shutdown().await;
}

#[tokio::test]
async fn reconnecting_too_fast_from_one_address_is_refused() {
    let (server, _dir) = start_server(|cfg| {
        cfg.limits.new_connections = Rate { burst: 3, every: Duration::from_secs(60) };
    })
    .await;
    for i in 0..3 {
        let mut c = Client::plain_from(server.plaintext[0], local(30), &format!("r{i}")).await;
        assert!(try_register(&mut c, &format!("r{i}")).await);
        c.send("QUIT").await;
        c.expect_closed().await;
    }
    let mut fast = Client::plain_from(server.plaintext[0], local(30), "fast").await;
    expect_refused(&mut fast, "Connecting too fast").await;
    let mut other = Client::plain_from(server.plaintext[0], local(31), "other").await;
    assert!(try_register(&mut other, "other").await, "another address has its own budget");
    server.shutdown().await;
}

#[tokio::test]
async fn silent_and_slow_peers_are_dropped_at_the_registration_timeout() {
    let (server, _dir) = start_server(|cfg| cfg.core.limits.registration_timeout = Duration::from_secs(1)).await;
    let started = std::time::Instant::now();
    let mut silent = Client::plain(server.plaintext[0], "silent").await;
    // Slowloris: one byte of a never-ending line at a time.
    let slow = tokio::net::TcpStream::connect(server.plaintext[0]).await.expect("connect");
    let (mut slow_read, mut slow_write) = slow.into_split();
    let drip = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        // Bounded: at most 100 bytes, 10 s; a write error means the server closed.
        for _ in 0..100 {
            tick.tick().await;
            if slow_write.write_all(b"x").await.is_err() {
                break;
            }
        }
    });
    let silent_lines = silent.expect_closed().await;
    let error = silent_lines.iter().find(|m| m.command == "ERROR").expect("ERROR before close");
    assert!(error.params[0].contains("Registration timed out"), "{error:?}");
    let mut told = Vec::new();
    let read = tokio::time::timeout(WAIT, slow_read.read_to_end(&mut told)).await;
    assert!(read.is_ok(), "the slow peer was never dropped");
    assert!(String::from_utf8_lossy(&told).contains("Registration timed out"), "{told:?}");
    drip.abort();
    assert!(started.elapsed() < WAIT, "both dropped in bounded time");
    server.shutdown().await;
}

#[tokio::test]
async fn an_over_long_line_is_skipped_as_it_arrives_and_the_session_goes_on() {
    let (server, _dir) = start_server(|cfg| cfg.limits.line_len = 1024).await;
    let mut c = Client::plain(server.plaintext[0], "long").await;
    c.register("long").await;
    // Four megabytes without a line end, in pieces, then a normal line.
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..64 {
        c.send_raw(&piece).await;
    }
    c.send_raw(b"\r\nPING :alive\r\n").await;
    c.expect_command("417").await;
    let pong = c.expect_command("PONG").await;
    assert_eq!(pong.params.last().map(String::as_str), Some("alive"));
    // The configured length is the bound: a line of exactly 1024 bytes is read, one more is not.
    let at_limit = format!("@+a={} PING :ok", "z".repeat(1024 - 13));
    assert_eq!(at_limit.len(), 1024);
    c.send(&at_limit).await;
    let m = c.expect("PONG or 417", |m| m.command == "PONG" || m.command == "417").await;
    assert_eq!(m.command, "PONG");
    c.send(&format!("@+a={} PING :ok", "z".repeat(1024 - 12))).await;
    let m = c.expect("PONG or 417", |m| m.command == "PONG" || m.command == "417").await;
    assert_eq!(m.command, "417", "a 1025-byte line is over the read limit");
    server.shutdown().await;
}

/// A line that arrives in pieces, cut anywhere (even between its CR and LF), is read whole:
/// the reader keeps what it has of an unfinished line between reads, and nothing once the line
/// is complete.
#[tokio::test]
async fn a_line_that_arrives_in_pieces_is_read_whole() {
    let (server, _dir) = start_server(|_| {}).await;
    let mut alice = Client::plain(server.plaintext[0], "alice").await;
    alice.register("alice").await;
    let mut bob = Client::plain(server.plaintext[0], "bob").await;
    bob.register("bob").await;
    let pieces: [&[u8]; 5] = [b"PRIVMSG bob :hel", b"lo th", b"ere\r", b"\nPRIVMSG bob :sec", b"ond\r\n"];
    for piece in pieces {
        alice.send_raw(piece).await;
        // Long enough for each piece to be a read of its own.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for text in ["hello there", "second"] {
        let m = bob.expect_command("PRIVMSG").await;
        assert_eq!(m.params.last().map(String::as_str), Some(text));
    }
    server.shutdown().await;
}
