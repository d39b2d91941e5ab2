//! The server over real sockets: plaintext and TLS, rooms and private messages, bounds and
//! timeouts, shutdown.

mod support;

use std::time::Duration;

use support::{start_server, tls_connect, Client};

#[tokio::test]
async fn plaintext_and_tls_clients_talk_in_a_room_and_in_private() {
    let (server, _dir) = start_server(|_| {}).await;
    let mut alice = Client::plain(server.plaintext[0], "alice").await;
    let mut bob = Client::tls(server.tls[0], &server.fingerprint, "bob").await;
    let mut carol = Client::tls(server.tls[0], &server.fingerprint, "carol").await;
    alice.register("alice").await;
    bob.register("bob").await;
    carol.register("carol").await;
    for c in [&mut alice, &mut bob, &mut carol] {
        c.join("#general").await;
    }
    alice.send("PRIVMSG #general :hello everyone").await;
    for c in [&mut bob, &mut carol] {
        let m = c.expect_command("PRIVMSG").await;
        assert_eq!(m.params, ["#general", "hello everyone"]);
        assert!(m.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    }
    bob.send("PRIVMSG carol :just between us").await;
    let m = carol.expect_command("PRIVMSG").await;
    assert_eq!(m.params, ["carol", "just between us"]);
    // Alice must not have seen the private message: the next thing she gets is her own PONG.
    alice.send("PING :marker").await;
    let m = alice.expect("PRIVMSG or PONG", |m| m.command == "PRIVMSG" || m.command == "PONG").await;
    assert_eq!(m.command, "PONG");
    server.shutdown().await;
}

#[tokio::test]
async fn tls_speaks_1_2_and_1_3_and_the_fingerprint_is_stable_across_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().to_path_buf();
    let start = || {
        let mut cfg = chinwag_server::ServerConfig::new(path.clone());
        cfg.listen = vec![];
        cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
        chinwag_server::start(cfg)
    };
    let first = start().await.expect("first start");
    for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
        let stream = tls_connect(first.tls[0], &first.fingerprint, Some(version)).await.expect("handshake");
        assert_eq!(stream.get_ref().1.protocol_version(), Some(version.version));
    }
    let wrong = "00:".repeat(31) + "00";
    assert!(tls_connect(first.tls[0], &wrong, None).await.is_err(), "a pinned client refuses another certificate");
    let fingerprint = first.fingerprint.clone();
    first.shutdown().await;
    let second = start().await.expect("second start");
    assert_eq!(second.fingerprint, fingerprint, "the generated certificate is reused");
    second.shutdown().await;
}

#[tokio::test]
async fn bad_input_over_the_wire_gets_replies_and_the_session_goes_on() {
    let (server, _dir) = start_server(|_| {}).await;
    let mut alice = Client::plain(server.plaintext[0], "alice").await;
    let mut bob = Client::plain(server.plaintext[0], "bob").await;
    alice.register("alice").await;
    bob.register("bob").await;
    bob.join("#general").await;
    alice.join("#general").await;
    bob.expect_command("JOIN").await;

    alice.send_raw(b"PRIVMSG #general :caf\xe9\r\n").await;
    assert_eq!(alice.expect_command("FAIL").await.params[1], "INVALID_UTF8");
    let huge = format!("PRIVMSG #general :{}\r\n", "x".repeat(20_000));
    alice.send_raw(huge.as_bytes()).await;
    alice.expect_command("417").await;
    alice.send_raw(b"\r\n\r\n:only-a-source\r\nNICK\r\nJOIN #bad\x07name\r\n").await;
    alice.expect_command("431").await;
    alice.expect_command("479").await;
    alice.send("PRIVMSG #general :still here").await;
    let m = bob.expect_command("PRIVMSG").await;
    assert_eq!(m.params[1], "still here", "bob saw nothing of alice's garbage");
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_does_not_read_is_dropped_without_slowing_others() {
    let (server, _dir) = start_server(|cfg| {
        cfg.limits.sendq_lines = 256;
        // The sender floods on purpose to fill the sleeper's queue: no flood budget for it.
        cfg.core.limits.flood.every = Duration::ZERO;
    })
    .await;
    let mut sender = Client::plain(server.plaintext[0], "sender").await;
    let mut reader = Client::plain(server.plaintext[0], "reader").await;
    sender.register("sender").await;
    reader.register("reader").await;
    // The sleeper registers and joins with a raw socket, then never reads again.
    let mut sleeper = Client::plain(server.plaintext[0], "sleeper").await;
    sleeper.register("sleeper").await;
    for c in [&mut sender, &mut reader, &mut sleeper] {
        c.join("#flood").await;
    }
    let line = format!("PRIVMSG #flood :{}\r\n", "y".repeat(400));
    let chunk = line.repeat(100);
    let started = std::time::Instant::now();
    let mut quit = None;
    // Bounded: at most 300 chunks of 100 lines (12 MB), far beyond any socket buffer plus 256
    // queued lines. The reader keeps up chunk by chunk, so only the sleeper falls behind.
    'flood: for i in 0..300 {
        sender.send_raw(chunk.as_bytes()).await;
        let mut got = 0;
        while got < 100 {
            let m = reader.expect("PRIVMSG or QUIT", |m| m.command == "PRIVMSG" || m.command == "QUIT").await;
            if m.command == "QUIT" {
                quit = Some((i * 100 + got, m));
                break 'flood;
            }
            got += 1;
        }
    }
    let (count, quit) = quit.expect("the sleeper was dropped");
    assert!(quit.source.as_deref().is_some_and(|s| s.starts_with("sleeper!")));
    assert_eq!(quit.params[0], "SendQ exceeded");
    println!("sleeper dropped after {count} lines in {:?}", started.elapsed());
    // The others carry on.
    sender.send("PRIVMSG #flood :after").await;
    let m = reader.expect("PRIVMSG after", |m| m.params.get(1).is_some_and(|t| t == "after")).await;
    assert_eq!(m.command, "PRIVMSG");
    server.shutdown().await;
}

#[tokio::test]
async fn a_dead_peer_is_dropped_in_bounded_time_and_its_room_sees_quit() {
    let (server, _dir) = start_server(|cfg| {
        cfg.core.limits.ping_interval = Duration::from_secs(1);
        cfg.core.limits.ping_timeout = Duration::from_secs(2);
    })
    .await;
    let mut alive = Client::plain(server.plaintext[0], "alive").await;
    let mut dead = Client::plain(server.plaintext[0], "dead").await;
    alive.register("alive").await;
    dead.register("dead").await;
    alive.join("#general").await;
    dead.join("#general").await;
    // `alive` answers PINGs; `dead` goes silent (it never reads or writes again).
    let quit = loop {
        let m = alive.expect("PING or QUIT", |m| m.command == "PING" || m.command == "QUIT").await;
        if m.command == "PING" {
            alive.send(&format!("PONG :{}", m.params[0])).await;
        } else {
            break m;
        }
    };
    assert!(quit.source.as_deref().is_some_and(|s| s.starts_with("dead!")));
    assert!(quit.params[0].starts_with("Ping timeout"), "{quit:?}");
    let rest = dead.expect_closed().await;
    assert!(rest.iter().any(|m| m.command == "ERROR"), "the dead peer got ERROR before close");
    server.shutdown().await;
}

#[tokio::test]
async fn quit_gets_error_then_close_and_shutdown_says_goodbye_to_everyone() {
    let (server, _dir) = start_server(|_| {}).await;
    let mut a = Client::plain(server.plaintext[0], "a").await;
    let mut b = Client::tls(server.tls[0], &server.fingerprint, "b").await;
    a.register("aaa").await;
    b.register("bbb").await;
    a.send("QUIT :done").await;
    let rest = a.expect_closed().await;
    let error = rest.iter().find(|m| m.command == "ERROR").expect("ERROR before close");
    assert!(error.params[0].contains("Quit: done"));
    let token = server.shutdown_token();
    let waiter = tokio::spawn(server.wait());
    token.cancel();
    let rest = b.expect_closed().await;
    let error = rest.iter().find(|m| m.command == "ERROR").expect("ERROR at shutdown");
    assert!(error.params[0].contains("Server shutting down"));
    tokio::time::timeout(Duration::from_secs(10), waiter).await.expect("shutdown finishes").expect("join");
}

#[tokio::test]
async fn an_ipv6_loopback_listener_works_when_the_host_has_ipv6() {
    let Ok(probe) = std::net::TcpListener::bind("[::1]:0") else {
        eprintln!("no IPv6 loopback on this host; nothing to test");
        return;
    };
    drop(probe);
    let (server, _dir) = start_server(|cfg| cfg.listen = vec!["[::1]:0".parse().expect("addr")]).await;
    let mut c = Client::plain(server.plaintext[0], "v6").await;
    c.send("NICK sixer").await;
    c.send("USER sixer 0 * :Six").await;
    let welcome = c.expect_command("001").await;
    assert!(welcome.params[1].ends_with("sixer!~sixer@0::1"), "{welcome:?}");
    server.shutdown().await;
}
