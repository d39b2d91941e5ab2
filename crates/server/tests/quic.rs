//! The QUIC transport over real UDP sockets on loopback: everything works on its stream as on
//! TCP, typing notices travel as datagrams between QUIC peers and fall back to the stream for
//! others, a client that changes address carries on in the same session, and handshakes in
//! progress are bounded per address and in total.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine;
use chinwag_proto::Message;
use support::{start_server, Client, WAIT};

/// Waits for the next datagram and parses it as a line.
async fn next_datagram(connection: &quinn::Connection) -> Message {
    let datagram = tokio::time::timeout(WAIT, connection.read_datagram())
        .await
        .expect("a datagram within the wait")
        .expect("the connection is open");
    let text = std::str::from_utf8(&datagram).expect("UTF-8");
    Message::parse(text.trim_end()).expect("a datagram holds one IRC line")
}

/// Sends a PING and checks that nothing matching `unwanted` arrives on the stream before its PONG.
async fn assert_nothing_before_pong(client: &mut Client, what: &str, unwanted: impl Fn(&Message) -> bool) {
    client.send("PING :marker").await;
    let m = client.expect("PONG or the unwanted line", |m| m.command == "PONG" || unwanted(m)).await;
    assert_eq!(m.command, "PONG", "{}: {what} arrived on the stream: {m:?}", client.name);
}

async fn request_caps(client: &mut Client, caps: &str) {
    client.send(&format!("CAP REQ :{caps}")).await;
    client.expect("CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|p| p == "ACK")).await;
}

/// Requests `caps`, then registers as `nick`.
async fn register_with_caps(client: &mut Client, nick: &str, caps: &str) {
    client.send("CAP LS 302").await;
    request_caps(client, caps).await;
    client.send("CAP END").await;
    client.register(nick).await;
}

#[tokio::test]
async fn quic_clients_register_log_in_and_talk_with_tls_clients() {
    let (server, _dir) = start_server(|_| {}).await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());

    // An account made over QUIC: it is encrypted, so passwords are accepted as on TLS.
    let (mut alice, _conn, _endpoint) = Client::quic(quic, &fp, "alice").await;
    alice.send("NICK alice").await;
    alice.send("REGISTER * * alice-password").await;
    let ok = alice.expect("REGISTER", |m| m.command == "REGISTER" || m.command == "FAIL").await;
    assert_eq!(ok.params[0], "SUCCESS", "{ok:?}");
    alice.send("USER alice 0 * :Alice").await;
    alice.expect_command("376").await;

    let mut bob = Client::tls(server.tls[0], &fp, "bob").await;
    bob.register("bob").await;
    // Operators see who uses which transport.
    let users = server.control().execute(&["users".to_owned()], "test").await;
    let transports: Vec<(String, String)> = users
        .data
        .as_array()
        .expect("a list of users")
        .iter()
        .map(|u| {
            (u["nick"].as_str().unwrap_or_default().to_owned(), u["transport"].as_str().unwrap_or_default().to_owned())
        })
        .collect();
    assert!(transports.contains(&("alice".into(), "quic".into())), "{transports:?}");
    assert!(transports.contains(&("bob".into(), "tls".into())), "{transports:?}");
    alice.join("#general").await;
    bob.join("#general").await;
    alice.send("PRIVMSG #general :hello from QUIC").await;
    let m = bob.expect_command("PRIVMSG").await;
    assert_eq!(m.params, ["#general", "hello from QUIC"]);
    assert!(m.source.as_deref().is_some_and(|s| s.starts_with("alice!")), "{m:?}");
    bob.send("PRIVMSG alice :hello back over TLS").await;
    let m = alice.expect_command("PRIVMSG").await;
    assert_eq!(m.params, ["alice", "hello back over TLS"]);
    alice.send("QUIT :moving").await;
    alice.expect_closed().await;

    // Logging back in with SASL over QUIC, and reading the room's history.
    let (mut alice, _conn, _endpoint) = Client::quic(quic, &fp, "alice again").await;
    alice.send("CAP LS 302").await;
    request_caps(&mut alice, "sasl batch server-time draft/chathistory").await;
    alice.send("NICK alice").await;
    alice.send("USER alice 0 * :Alice").await;
    alice.send("AUTHENTICATE PLAIN").await;
    alice.expect("AUTHENTICATE +", |m| m.command == "AUTHENTICATE").await;
    let payload = base64::engine::general_purpose::STANDARD.encode("\0alice\0alice-password");
    alice.send(&format!("AUTHENTICATE {payload}")).await;
    alice.expect_command("903").await;
    alice.send("CAP END").await;
    alice.expect_command("376").await;
    alice.join("#general").await;
    alice.send("CHATHISTORY LATEST #general * 10").await;
    let m = alice.expect("the stored message", |m| m.command == "PRIVMSG").await;
    assert_eq!(m.params, ["#general", "hello from QUIC"]);

    // Shutting down, the server says why before it closes the connection.
    server.shutdown_token().cancel();
    let last = alice.expect_closed().await;
    assert!(last.iter().any(|m| m.command == "ERROR"), "{:#?}", alice.seen);
    server.wait().await;
}

#[tokio::test]
async fn typing_notices_travel_as_datagrams_between_quic_peers_and_on_the_stream_otherwise() {
    let (server, _dir) = start_server(|_| {}).await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    let (mut alice, alice_conn, _a) = Client::quic(quic, &fp, "alice").await;
    let (mut bob, bob_conn, _b) = Client::quic(quic, &fp, "bob").await;
    let mut carol = Client::tls(server.tls[0], &fp, "carol").await;
    for (client, nick) in [(&mut alice, "alice"), (&mut bob, "bob"), (&mut carol, "carol")] {
        register_with_caps(client, nick, "message-tags").await;
        client.join("#room").await;
    }
    // Joins seen by earlier members are on the streams; skip past them with a marker.
    for client in [&mut alice, &mut bob] {
        assert_nothing_before_pong(client, "nothing", |_| false).await;
    }

    // From QUIC to QUIC as a datagram, and to TLS on the stream.
    alice_conn.send_datagram("@+typing=active TAGMSG #room\r\n".into()).expect("send a datagram");
    let m = next_datagram(&bob_conn).await;
    assert_eq!((m.command.as_str(), m.params.as_slice()), ("TAGMSG", ["#room".to_owned()].as_slice()));
    assert_eq!(m.tag("+typing"), Some("active"), "{m:?}");
    assert!(m.source.as_deref().is_some_and(|s| s.starts_with("alice!")), "{m:?}");
    let m = carol.expect_command("TAGMSG").await;
    assert_eq!(m.tag("+typing"), Some("active"));
    assert_nothing_before_pong(&mut bob, "the typing notice", |m| m.command == "TAGMSG").await;

    // From TLS (on the stream) to QUIC peers as datagrams.
    carol.send("@+typing=paused TAGMSG #room").await;
    for connection in [&bob_conn, &alice_conn] {
        let m = next_datagram(connection).await;
        assert_eq!(m.tag("+typing"), Some("paused"), "{m:?}");
        assert!(m.source.as_deref().is_some_and(|s| s.starts_with("carol!")), "{m:?}");
    }

    // A datagram that is not a typing notice is ignored: messages keep their order on the stream.
    alice_conn.send_datagram("PRIVMSG #room :sneaked past the stream\r\n".into()).expect("send a datagram");
    alice.send("PRIVMSG #room :on the stream").await;
    let m = carol.expect_command("PRIVMSG").await;
    assert_eq!(m.params, ["#room", "on the stream"]);
    assert_nothing_before_pong(&mut carol, "the datagram PRIVMSG", |m| m.command == "PRIVMSG").await;
    server.shutdown().await;
}

#[tokio::test]
async fn a_client_that_changes_address_carries_on_in_the_same_session() {
    let (server, _dir) = start_server(|_| {}).await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    let (mut alice, _conn, endpoint) = Client::quic(quic, &fp, "alice").await;
    let mut bob = Client::tls(server.tls[0], &fp, "bob").await;
    alice.register("alice").await;
    bob.register("bob").await;
    alice.join("#room").await;
    bob.join("#room").await;
    alice.send("PRIVMSG #room :before the move").await;
    assert_eq!(bob.expect_command("PRIVMSG").await.params[1], "before the move");

    // A new socket, as when a laptop moves from one network to another.
    let before = endpoint.local_addr().expect("address");
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a new UDP socket");
    endpoint.rebind(socket).expect("rebind");
    let after = endpoint.local_addr().expect("address");
    assert_ne!(before.port(), after.port());

    alice.send("PRIVMSG #room :after the move").await;
    let m = bob.expect("the message or a QUIT", |m| m.command == "PRIVMSG" || m.command == "QUIT").await;
    assert_eq!(m.params, ["#room", "after the move"], "no QUIT, no new session: {m:?}");
    assert!(m.source.as_deref().is_some_and(|s| s.starts_with("alice!")), "{m:?}");
    bob.send("PRIVMSG alice :welcome to the new network").await;
    assert_eq!(alice.expect_command("PRIVMSG").await.params[1], "welcome to the new network");
    server.shutdown().await;
}

/// What the server's metrics say about QUIC: (handshakes in progress, attempts refused).
async fn half_open_and_refused(server: &chinwag_server::Running) -> (u64, u64) {
    let snapshot = server.control().snapshot().await.expect("a metrics snapshot");
    let refused = snapshot.quic_attempts.iter().find(|(name, _)| *name == "refused").map_or(0, |(_, n)| *n);
    (snapshot.quic_half_open, refused)
}

/// Waits for the next datagram on `socket` (the server's answer).
async fn answer(socket: &tokio::net::UdpSocket) -> bytes::BytesMut {
    let mut buf = vec![0u8; 65_536];
    let (n, _) = tokio::time::timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("an answer within the wait")
        .expect("receive");
    bytes::BytesMut::from(&buf[..n])
}

/// A handshake from `socket` that proves its address (it answers the server's Retry with the
/// token) and then goes silent, as a client with a real address that wants to hold state.
async fn stalled_proven_handshake(socket: &tokio::net::UdpSocket, server: SocketAddr, config: &quinn::ClientConfig) {
    let mut endpoint = quinn_proto::Endpoint::new(Arc::new(quinn_proto::EndpointConfig::default()), None, false, None);
    let now = Instant::now();
    let (_, mut connection) = endpoint.connect(now, config.clone(), server, "localhost").expect("connect");
    let mut packet = Vec::new();
    let sent = connection.poll_transmit(now, 1, &mut packet).expect("an Initial");
    socket.send_to(&packet[..sent.size], server).await.expect("send the Initial");
    let retry = answer(socket).await;
    let mut scratch = Vec::new();
    match endpoint.handle(Instant::now(), server, None, None, retry, &mut scratch) {
        Some(quinn_proto::DatagramEvent::ConnectionEvent(_, event)) => connection.handle_event(event),
        _ => panic!("the server answered the Initial with something other than a Retry"),
    }
    let mut packet = Vec::new();
    let sent = connection.poll_transmit(Instant::now(), 1, &mut packet).expect("an Initial with the token");
    socket.send_to(&packet[..sent.size], server).await.expect("send the Initial with the token");
    // The server's Initial (its half of the handshake) or its refusal; either way, silence now.
    answer(socket).await;
}

#[tokio::test]
async fn proven_handshakes_are_capped_per_address_and_in_total_and_their_places_come_back() {
    const MAX_HALF_OPEN: usize = 8;
    const PER_ADDRESS: usize = 3;
    let (server, _dir) = start_server(|cfg| {
        let l = &mut cfg.limits;
        l.quic_retry_above = 0;
        l.quic_max_half_open = MAX_HALF_OPEN;
        l.quic_handshake_timeout = Duration::from_secs(1);
        l.connections_per_address = PER_ADDRESS;
        l.new_connections = chinwag_core::Rate { burst: 100, every: Duration::from_secs(1) };
        l.exempt = Vec::new();
    })
    .await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    let config = support::quic_client_config(&fp);
    let source = |i: u8| {
        let from = SocketAddr::new(IpAddr::V4(Ipv4Addr::new(127, 88, 0, i)), 0);
        let socket = std::net::UdpSocket::bind(from).expect("bind a source");
        socket.set_nonblocking(true).expect("non-blocking");
        tokio::net::UdpSocket::from_std(socket).expect("a tokio socket")
    };

    // One address holds at most its share of handshakes, proven or not.
    let mut sockets = Vec::new();
    for _ in 0..PER_ADDRESS + 2 {
        let socket = source(1);
        stalled_proven_handshake(&socket, quic, &config).await;
        sockets.push(socket);
    }
    assert_eq!(half_open_and_refused(&server).await, (PER_ADDRESS as u64, 2));

    // Others fill the global cap, and no more.
    for i in 2..=4 {
        for _ in 0..PER_ADDRESS {
            let socket = source(i);
            stalled_proven_handshake(&socket, quic, &config).await;
            sockets.push(socket);
        }
    }
    let (half_open, refused) = half_open_and_refused(&server).await;
    assert_eq!(half_open, MAX_HALF_OPEN as u64);
    assert_eq!(refused, 2 + (4 * PER_ADDRESS - MAX_HALF_OPEN) as u64);
    // A real client is refused while the cap is full...
    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(config.clone());
    let refused = endpoint.connect(quic, "localhost").expect("connect").await;
    assert!(matches!(refused, Err(quinn::ConnectionError::ConnectionClosed(_))), "{refused:?}");

    // ... and gets in once the stalled handshakes time out.
    let deadline = Instant::now() + WAIT;
    while half_open_and_refused(&server).await.0 > 0 {
        assert!(Instant::now() < deadline, "stalled handshakes kept their places");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (mut client, _conn, _endpoint) = Client::quic(quic, &fp, "after").await;
    client.register("after").await;
    server.shutdown().await;
}

#[tokio::test]
async fn an_unproven_address_over_its_limit_is_refused_once_its_handshake_proves_it() {
    let (server, _dir) = start_server(|cfg| {
        cfg.limits.connections_per_address = 1;
        cfg.limits.exempt = Vec::new();
    })
    .await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    let (mut first, _conn, _endpoint) = Client::quic(quic, &fp, "first").await;
    first.register("first").await;

    let mut endpoint = quinn::Endpoint::client("127.0.0.1:0".parse().expect("addr")).expect("client endpoint");
    endpoint.set_default_client_config(support::quic_client_config(&fp));
    let second = endpoint.connect(quic, "localhost").expect("connect").await.expect("the handshake completes");
    let closed = tokio::time::timeout(WAIT, second.closed()).await.expect("closed within the wait");
    match closed {
        quinn::ConnectionError::ApplicationClosed(close) => {
            assert_eq!(close.reason.as_ref(), b"Too many connections from your address");
        }
        other => panic!("not refused with a reason: {other:?}"),
    }
    assert_eq!(half_open_and_refused(&server).await, (0, 1));
    // The first connection is untouched.
    first.send("PING :still here").await;
    first.expect_command("PONG").await;
    server.shutdown().await;
}

#[tokio::test]
async fn initials_with_someone_elses_address_do_not_use_up_its_connections() {
    const PER_ADDRESS: usize = 2;
    let (server, _dir) = start_server(|cfg| {
        cfg.limits.connections_per_address = PER_ADDRESS;
        cfg.limits.new_connections = chinwag_core::Rate { burst: 3, every: Duration::from_secs(60) };
        cfg.limits.exempt = Vec::new();
    })
    .await;
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    let victim = IpAddr::V4(Ipv4Addr::new(127, 88, 1, 1));
    // Initials "from" the victim (another port on its address, as a spoofer would write it)
    // that are never continued: more than its connections and its new-connection burst.
    let spoofer = tokio::net::UdpSocket::bind(SocketAddr::new(victim, 0)).await.expect("bind");
    support::raw_quic::flood_from(&spoofer, quic, &support::quic_client_config(&fp), 2 * PER_ADDRESS + 3).await;

    let mut endpoint = quinn::Endpoint::client(SocketAddr::new(victim, 0)).expect("client endpoint");
    endpoint.set_default_client_config(support::quic_client_config(&fp));
    let connection = endpoint.connect(quic, "localhost").expect("connect").await.expect("the victim's handshake");
    let (send, recv) = connection.open_bi().await.expect("open the stream");
    let mut client = support::Client::from_stream(Box::new(tokio::io::join(recv, send)), "victim");
    client.register("victim").await;
    server.shutdown().await;
}
