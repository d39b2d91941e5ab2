//! The web listener over real sockets: HTTPS with the server's certificate (pinned) and plain
//! HTTP on loopback; the IRCv3 WebSocket at `/ws` driven by tokio-tungstenite (another
//! implementation than the server's), talking with TCP clients in the same rooms; the embedded
//! web client's files; the security headers; Origin; forwarded addresses; compression.

mod support;

use std::net::IpAddr;

use support::ws::{head_and_body, header, web_server, Ended, WsClient};
use support::Client;

#[tokio::test]
async fn websocket_clients_of_both_subprotocols_talk_with_a_tcp_client() {
    let (running, _dir, https, http) = web_server(|_| {}).await;
    let mut alice = Client::plain(running.plaintext[0], "alice").await;
    alice.register("alice").await;
    alice.join("#general").await;

    // The client's order of preference wins.
    let (mut bob, response) = WsClient::connect(&https, &["binary.ircv3.net", "text.ircv3.net"], None, "bob").await;
    assert_eq!(response.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()), Some(&b"binary.ircv3.net"[..]));
    let (mut carol, response) = WsClient::connect(&http, &["text.ircv3.net", "binary.ircv3.net"], None, "carol").await;
    assert_eq!(response.headers().get("sec-websocket-protocol").map(|v| v.as_bytes()), Some(&b"text.ircv3.net"[..]));
    bob.register("bob").await;
    carol.register("carol").await;
    bob.join("#general").await;
    carol.join("#general").await;

    bob.send("PRIVMSG #general :hello from a binary WebSocket").await;
    let got = alice.expect("bob's message", |m| m.command == "PRIVMSG").await;
    assert_eq!(got.params, ["#general", "hello from a binary WebSocket"]);
    assert!(got.source.as_deref().is_some_and(|p| p.starts_with("bob!")), "{got:?}");

    alice.send("PRIVMSG #general :héllo to the browsers").await;
    for ws in [&mut bob, &mut carol] {
        let got = ws.expect("alice's message", |m| m.command == "PRIVMSG" && m.params[1].contains("browsers")).await;
        assert_eq!(got.params[1], "héllo to the browsers");
    }
    assert_eq!(bob.frames.0, 0, "binary.ircv3.net: binary messages only");
    assert_eq!(carol.frames.1, 0, "text.ircv3.net: text messages only");

    // WHOIS shows the HTTPS client as secure (671) and the plain HTTP one not.
    alice.send("WHOIS bob").await;
    alice.expect("671 for bob", |m| m.command == "671").await;
    alice.expect_command("318").await;
    alice.send("WHOIS carol").await;
    let end = alice.expect("WHOIS carol", |m| m.command == "671" || m.command == "318").await;
    assert_eq!(end.command, "318", "plain HTTP from loopback is not encrypted");
    running.shutdown().await;
}

#[tokio::test]
async fn no_subprotocol_means_text_messages() {
    let (running, _dir, https, _) = web_server(|_| {}).await;
    let (mut dan, response) = WsClient::connect(&https, &[], None, "dan").await;
    assert!(response.headers().get("sec-websocket-protocol").is_none());
    dan.register("dan").await;
    assert!(dan.frames.0 > 0 && dan.frames.1 == 0, "text messages: {:?}", dan.frames);
    running.shutdown().await;
}

#[tokio::test]
async fn the_embedded_web_client_is_served_with_its_type_and_the_security_headers() {
    let (running, _dir, https, http) = web_server(|_| {}).await;
    let index = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/dist/index.html"))
        .expect("web/dist/index.html");
    let (status, headers, body) = head_and_body(&https.http_get("/", "").await);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(body, index, "/ is web/dist/index.html");
    let csp = header(&headers, "content-security-policy").expect("a CSP");
    for part in ["default-src 'none'", "script-src 'self'", "frame-ancestors 'none'", "object-src 'none'"] {
        assert!(csp.contains(part), "{part} in {csp}");
    }
    assert!(csp.contains(&format!("connect-src 'self' wss://localhost:{}", https.addr.port())), "{csp}");
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
    assert_eq!(header(&headers, "x-frame-options"), Some("DENY"));
    assert!(header(&headers, "strict-transport-security").is_some_and(|v| v.starts_with("max-age=")));
    let etag = header(&headers, "etag").expect("an ETag").to_owned();

    // Revalidation answers 304 without the body.
    let (status, _, body) = head_and_body(&https.http_get("/", &format!("If-None-Match: {etag}\r\n")).await);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 304 Not Modified", ""));

    let (status, headers, _) = head_and_body(&http.http_get("/app.js", "").await);
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(header(&headers, "content-type"), Some("text/javascript; charset=utf-8"));
    assert!(header(&headers, "strict-transport-security").is_none(), "no HSTS over plain HTTP");
    let csp = header(&headers, "content-security-policy").expect("a CSP over plain HTTP too");
    assert!(csp.contains(&format!("ws://{}", http.addr)), "{csp}");

    let (status, headers, _) = head_and_body(&https.http_get("/no-such-file", "").await);
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    assert!(header(&headers, "content-security-policy").is_some(), "headers on errors too");
    let (status, _, body) = head_and_body(&https.http_get("/healthz", "").await);
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 200 OK", "ok\n"));
    let (status, _, _) = head_and_body(&https.http_get("/metrics", "").await);
    assert_eq!(status, "HTTP/1.1 404 Not Found", "counts are for the metrics listener, not the public");
    running.shutdown().await;
}

#[tokio::test]
async fn a_foreign_origin_is_refused_and_the_own_origin_accepted() {
    let (running, _dir, https, http) =
        web_server(|cfg| cfg.web.origins = vec!["https://chat.example.org".into()]).await;
    for target in [&https, &http] {
        let refused =
            WsClient::try_connect(target, None, &["text.ircv3.net"], Some("https://evil.example"), &[], "eve").await;
        match refused {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 403);
                let body = String::from_utf8_lossy(response.body().as_deref().unwrap_or_default()).into_owned();
                assert!(body.contains("may not open an IRC connection"), "{body}");
            }
            other => panic!("a foreign origin must get 403, got {:?}", other.map(|(_, r)| r.status())),
        }
        let (mut own, _) = WsClient::connect(target, &["text.ircv3.net"], Some(&target.own_origin()), "own").await;
        own.register(if target.tls.is_some() { "own1" } else { "own2" }).await;
        let (mut listed, _) = WsClient::connect(target, &[], Some("https://chat.example.org"), "listed").await;
        listed.register(if target.tls.is_some() { "listed1" } else { "listed2" }).await;
    }
    // The same host over the other scheme is another origin.
    let wrong_scheme = format!("http://localhost:{}", https.addr.port());
    assert!(WsClient::try_connect(&https, None, &[], Some(&wrong_scheme), &[], "x").await.is_err());
    running.shutdown().await;
}

#[tokio::test]
async fn a_message_is_one_line_and_long_messages_are_treated_as_on_tcp() {
    let (running, _dir, https, _) = web_server(|_| {}).await;
    let (mut erin, _) = WsClient::connect(&https, &["binary.ircv3.net"], None, "erin").await;
    // A trailing line end is forgiven.
    erin.send_raw(b"NICK erin\r\n").await;
    erin.send("USER erin 0 * :erin").await;
    erin.expect_command("376").await;
    // A line longer than the limit is answered with 417 and the session goes on, as on TCP.
    let long = format!("PRIVMSG erin :{}", "x".repeat(9000));
    erin.send(&long).await;
    erin.expect_command("417").await;
    erin.send("PING still-here").await;
    erin.expect("PONG", |m| m.command == "PONG").await;
    // Two lines in one message end the connection, saying why.
    erin.send_raw(b"PING a\r\nPING b").await;
    match erin.expect_end().await {
        Ended::Closed(code, reason) => {
            assert_eq!(code, 1002);
            assert!(reason.contains("one IRC line per message"), "{reason}");
        }
        Ended::Gone => panic!("the connection must end with a close frame saying why"),
    }
    // A message past the WebSocket limit closes the connection (1009).
    let (mut fred, _) = WsClient::connect(&https, &["binary.ircv3.net"], None, "fred").await;
    fred.send_raw(&vec![b'a'; 128 * 1024]).await;
    assert!(matches!(fred.expect_end().await, Ended::Closed(1009, _) | Ended::Gone));
    running.shutdown().await;
}

#[tokio::test]
async fn flood_control_applies_over_websocket() {
    let (running, _dir, https, _) = web_server(|_| {}).await;
    let (mut flooder, _) = WsClient::connect(&https, &["text.ircv3.net"], None, "flooder").await;
    flooder.register("flooder").await;
    for i in 0..400 {
        flooder.send(&format!("PRIVMSG flooder :{i}")).await;
    }
    let error = flooder.expect("ERROR", |m| m.command == "ERROR").await;
    assert!(error.params.last().is_some_and(|p| p.contains("Excess flood")), "{error:?}");
    running.shutdown().await;
}

#[tokio::test]
async fn forwarded_addresses_count_only_from_a_trusted_proxy() {
    // The proxies are a range, 127.0.0.4/30 (.4 to .7): two of them forward here, and
    // 127.0.0.3, just below the range, is not one.
    let proxy: IpAddr = "127.0.0.5".parse().expect("ip");
    let other_proxy: IpAddr = "127.0.0.6".parse().expect("ip");
    let (running, _dir, _, http) = web_server(|cfg| {
        cfg.limits.connections_per_address = 1;
        cfg.limits.exempt = Vec::new();
        cfg.web.trusted_proxies = vec!["127.0.0.4/30".parse().expect("range")];
    })
    .await;
    let xff = |ip: &'static str| vec![("x-forwarded-for", ip)];
    let untrusted: IpAddr = "127.0.0.3".parse().expect("ip");
    // From an untrusted peer the header is ignored: the second connection is its second.
    let (_first, _) =
        WsClient::try_connect(&http, Some(untrusted), &[], None, &xff("203.0.113.1"), "a").await.expect("first");
    let (mut second, _) =
        WsClient::try_connect(&http, Some(untrusted), &[], None, &xff("203.0.113.2"), "b").await.expect("upgrade");
    let error = second.expect("ERROR", |m| m.command == "ERROR").await;
    assert!(error.params[0].contains("Too many connections from your address"), "{error:?}");
    assert!(error.params[0].contains("127.0.0.3"), "the real address: {error:?}");

    // From the trusted proxies, each forwarded client counts on its own ...
    let (mut one, _) =
        WsClient::try_connect(&http, Some(proxy), &[], None, &xff("203.0.113.1"), "one").await.expect("one");
    let (mut two, _) =
        WsClient::try_connect(&http, Some(other_proxy), &[], None, &xff("203.0.113.2"), "two").await.expect("two");
    one.register("one").await;
    two.register("two").await;
    // ... and a second from the same client is refused, naming it, whichever proxy it came
    // through (the other proxy passes through the first here).
    let (mut again, _) = WsClient::try_connect(
        &http,
        Some(other_proxy),
        &[],
        None,
        &xff("198.51.100.9, 203.0.113.1, 127.0.0.5"),
        "again",
    )
    .await
    .expect("upgrade");
    let error = again.expect("ERROR", |m| m.command == "ERROR").await;
    assert!(error.params[0].contains("203.0.113.1"), "{error:?}");
    // The others see the forwarded address as the host.
    two.send("WHOIS one").await;
    let whois = two.expect("311", |m| m.command == "311").await;
    assert_eq!(whois.params[3], "203.0.113.1");
    running.shutdown().await;
}

/// Counts the bytes read through a stream: what crossed the wire inside TLS.
struct Counting<S> {
    inner: S,
    read: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Counting<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = std::pin::Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.fetch_add(buf.filled().len() - before, std::sync::atomic::Ordering::Relaxed);
        polled
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Counting<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[tokio::test]
async fn permessage_deflate_is_negotiated_without_context_takeover_and_messages_round_trip_compressed() {
    use futures_util::{SinkExt, StreamExt};
    use std::sync::atomic::Ordering;

    let (running, _dir, https, _) = web_server(|_| {}).await;
    // What the server answers to a browser's usual offer.
    let offer = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n";
    let mut stream = https.stream(None).await;
    let request = format!("GET /ws HTTP/1.1\r\nHost: localhost:{}\r\n{offer}\r\n", https.addr.port());
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.expect("send");
    let mut head = vec![0u8; 4096];
    let n = tokio::time::timeout(support::WAIT, tokio::io::AsyncReadExt::read(&mut stream, &mut head))
        .await
        .expect("answer")
        .expect("read");
    let head = String::from_utf8_lossy(&head[..n]).to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 101"), "{head}");
    let extensions = head.lines().find(|l| l.starts_with("sec-websocket-extensions:")).expect("deflate agreed");
    for part in ["permessage-deflate", "server_no_context_takeover", "client_no_context_takeover"] {
        assert!(extensions.contains(part), "{part} in {extensions}");
    }
    assert!(!extensions.contains("client_max_window_bits="), "nothing the client must not be told: {extensions}");
    drop(stream);

    let mut alice = Client::plain(running.plaintext[0], "alice").await;
    alice.register("alice").await;
    alice.join("#general").await;

    // yawc's client, compressing, through a stream that counts what arrives.
    let read = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Counting { inner: https.stream(None).await, read: read.clone() };
    let url = format!("wss://localhost:{}/ws", https.addr.port()).parse().expect("url");
    let options = yawc::Options::default().with_low_latency_compression();
    let mut bob = yawc::WebSocket::handshake(url, counted, options).await.expect("handshake");
    let send = |line: String| yawc::Frame::text(line);
    bob.send(send("NICK bob".into())).await.expect("send");
    bob.send(send("USER bob 0 * :bob".into())).await.expect("send");
    bob.send(send("JOIN #general".into())).await.expect("send");
    async fn line(ws: &mut yawc::WebSocket<Counting<Box<dyn support::Stream>>>) -> String {
        loop {
            let frame = tokio::time::timeout(support::WAIT, ws.next()).await.expect("a message in time").expect("open");
            if matches!(frame.opcode(), yawc::OpCode::Text | yawc::OpCode::Binary) {
                return String::from_utf8_lossy(frame.payload()).into_owned();
            }
        }
    }
    while !line(&mut bob).await.contains(" 366 ") {}

    // Within the 512 bytes of a line's body.
    let text = "chinwag ".repeat(50);
    let before = read.load(Ordering::Relaxed);
    alice.send(&format!("PRIVMSG #general :{text}")).await;
    let got = line(&mut bob).await;
    assert!(got.ends_with(&format!("PRIVMSG #general :{text}")), "{got}");
    let wire = read.load(Ordering::Relaxed) - before;
    assert!(wire < got.len() / 4, "a {}-byte line took {wire} bytes on the wire", got.len());

    // And the other way: bob's compressed message reaches alice whole.
    bob.send(send(format!("PRIVMSG #general :{text}"))).await.expect("send");
    let heard = alice.expect("bob's long message", |m| m.command == "PRIVMSG").await;
    assert_eq!(heard.params[1], text);
    running.shutdown().await;
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
}

/// An idle WebSocket connection is cheap (about 16 KB for both ends when written): measured over plain
/// HTTP with the server and the test's clients in one process, so the figure is an upper bound
/// for the server's side (both ends, tungstenite's buffers included).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_websocket_connections_are_cheap() {
    const CONNECTIONS: usize = 300;
    let (running, _dir, _, http) = web_server(|_| {}).await;
    let mut warm = Vec::new();
    for i in 0..20 {
        let (mut ws, _) = WsClient::connect(&http, &["text.ircv3.net"], None, "warm").await;
        ws.register(&format!("warm{i}")).await;
        warm.push(ws);
    }
    let before = rss_kib();
    let mut idle = Vec::new();
    for i in 0..CONNECTIONS {
        let (mut ws, _) = WsClient::connect(&http, &["text.ircv3.net"], None, "idle").await;
        ws.register(&format!("idle{i}")).await;
        idle.push(ws);
    }
    let per_connection = (rss_kib().saturating_sub(before)) * 1024 / CONNECTIONS;
    eprintln!("idle WebSocket connections: {per_connection} bytes each, both ends");
    assert!(per_connection < 48 * 1024, "{per_connection} bytes per idle WebSocket connection");
    drop(idle);
    drop(warm);
    running.shutdown().await;
}

/// One address cannot take every HTTP place: past 64 open connections (an idle one holds its
/// place until its head times out) its next is closed at once, while another address is still
/// served, and the address gets places again as its connections close.
#[tokio::test]
async fn one_address_cannot_hold_every_http_connection() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (running, _dir, _, _) = web_server(|_| {}).await;
    let addr = running.web_plain[0];
    let attacker: IpAddr = "127.0.0.7".parse().expect("ip");
    let neighbour: IpAddr = "127.0.0.8".parse().expect("ip");
    let get = |from: IpAddr| async move {
        let mut stream = support::connect_from(addr, from).await.expect("connect");
        let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        let _ = stream.write_all(request.as_bytes()).await;
        let mut response = Vec::new();
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read_to_end(&mut response)).await;
        String::from_utf8_lossy(&response).into_owned()
    };
    assert!(get(attacker).await.starts_with("HTTP/1.1 200"), "served before it holds anything");

    let mut idle = Vec::new();
    for _ in 0..64 {
        idle.push(support::connect_from(addr, attacker).await.expect("connect"));
    }
    // The server counts a connection once it accepted it: its answer to the next one shows
    // the count is full (give the listener a moment to take the 64 from its queue).
    let mut refused = String::from("not tried");
    for _ in 0..50 {
        refused = get(attacker).await;
        if refused.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(refused, "", "the 65th connection from one address is closed without an answer");
    assert!(get(neighbour).await.starts_with("HTTP/1.1 200"), "another address is still served");

    drop(idle);
    let mut again = String::new();
    for _ in 0..50 {
        again = get(attacker).await;
        if again.starts_with("HTTP/1.1 200") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(again.starts_with("HTTP/1.1 200"), "its places come back as its connections close: {again:?}");
}

/// Pings are answered by the WebSocket layer, whose pongs wait for the next write: a client
/// that pings without reading would make the server hold them without bound. A few pings
/// are fine; a flood of them closes the connection (1008) and others are not affected.
#[tokio::test]
async fn a_ping_flood_closes_the_connection_and_a_few_pings_are_fine() {
    use futures_util::SinkExt;
    use tokio_tungstenite::tungstenite::Message as Frame;
    let (_running, _dir, _, http) = web_server(|_| {}).await;
    let (mut calm, _) = WsClient::connect(&http, &["text.ircv3.net"], None, "calm").await;
    calm.register("calm").await;
    for _ in 0..10 {
        calm.ws.send(Frame::Ping(b"are you there".to_vec().into())).await.expect("ping");
    }
    calm.send("PING still-here").await;
    calm.expect("PONG", |m| m.command == "PONG").await;

    let (mut flood, _) = WsClient::connect(&http, &["text.ircv3.net"], None, "flood").await;
    flood.register("flood").await;
    for _ in 0..10_000 {
        if flood.ws.feed(Frame::Ping(vec![0u8; 125].into())).await.is_err() {
            break;
        }
    }
    let _ = flood.ws.flush().await;
    match flood.expect_end().await {
        Ended::Closed(code, reason) => assert_eq!((code, reason.as_str()), (1008, "too many pings")),
        Ended::Gone => {}
    }
    calm.send("PING after-the-flood").await;
    calm.expect("PONG", |m| m.command == "PONG").await;
}
