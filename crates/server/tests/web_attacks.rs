//! The web listener against an attacker, over real sockets: a WebSocket client that stops
//! reading (SendQ, as on TCP), requests with other methods and odd heads, DNS rebinding (the
//! names plain HTTP answers to), and clients that send their head or their registration slowly.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::ws::{head_and_body, header, web_server, Target, WsClient};
use support::{Client, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Sends `request` as it is and returns everything the server answers until it closes (or
/// resets: what arrived before counts).
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request).await.expect("send the request");
    let mut response = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let read_all = async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
    };
    tokio::time::timeout(WAIT, read_all).await.expect("the server answers and closes in time");
    String::from_utf8_lossy(&response).into_owned()
}

/// One request line and headers (no body) with `Connection: close`.
async fn request(addr: SocketAddr, method: &str, path: &str, headers: &str) -> (String, Vec<(String, String)>, String) {
    let text = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{headers}\r\n");
    head_and_body(&exchange(addr, text.as_bytes()).await)
}

/// The security headers every answer of ours carries.
fn assert_security_headers(what: &str, headers: &[(String, String)]) {
    for name in ["content-security-policy", "x-content-type-options", "referrer-policy", "x-frame-options"] {
        assert!(header(headers, name).is_some(), "{what}: no {name} in {headers:?}");
    }
}

const WS_HEADERS: &str = "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
                          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";

#[tokio::test]
async fn other_methods_and_odd_requests_get_a_minimal_answer() {
    let (running, _dir, _, http) = web_server(|_| {}).await;
    let addr = http.addr;
    let index = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/dist/index.html")).expect("index");
    let app = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/dist/app.js")).expect("app.js");

    // HEAD: the GET's head, no body.
    for (path, len) in [("/", index.len()), ("/app.js", app.len())] {
        let (status, headers, body) = request(addr, "HEAD", path, "").await;
        assert_eq!(status, "HTTP/1.1 200 OK", "HEAD {path}");
        assert_eq!(header(&headers, "content-length"), Some(len.to_string().as_str()), "HEAD {path}");
        assert!(header(&headers, "etag").is_some(), "HEAD {path}");
        assert_eq!(body, "", "HEAD {path} has no body");
        assert_security_headers(&format!("HEAD {path}"), &headers);
    }

    // Another method on a file, a route or the WebSocket: 405 saying what is allowed.
    for (method, path) in [("POST", "/"), ("PUT", "/app.js"), ("OPTIONS", "/"), ("DELETE", "/app.js"), ("TRACE", "/")]
        .into_iter()
        .chain([("POST", "/ws"), ("OPTIONS", "/healthz")])
    {
        let (status, headers, body) = request(addr, method, path, "X-Echo-Me: secret\r\n").await;
        assert_eq!(status, "HTTP/1.1 405 Method Not Allowed", "{method} {path}");
        let allow = header(&headers, "allow").unwrap_or_default().replace(' ', "");
        assert_eq!(allow, "GET,HEAD", "{method} {path}");
        assert!(!body.contains("secret"), "{method} {path} echoes nothing: {body}");
        assert_security_headers(&format!("{method} {path}"), &headers);
    }
    // Any method on a path of no file is 404; /metrics is not served here in any way.
    for (method, path) in
        [("GET", "/metrics"), ("HEAD", "/metrics"), ("POST", "/metrics"), ("POST", "/no-such"), ("OPTIONS", "/x")]
    {
        let (status, headers, _) = request(addr, method, path, "").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{method} {path}");
        assert_security_headers(&format!("{method} {path}"), &headers);
    }
    // A HEAD with the upgrade headers is no handshake: 426 as for a GET without them.
    let (status, _, body) = request(addr, "HEAD", "/ws", WS_HEADERS).await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 426 Upgrade Required", ""));

    // Range is ignored: the whole file, 200.
    let (status, headers, body) = request(addr, "GET", "/app.js", "Range: bytes=0-9\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    assert_eq!(body.len(), app.len(), "the whole file");
    assert!(header(&headers, "content-range").is_none());
    // If-None-Match: our tag, weak or in a list, is 304; another is 200.
    let etag = header(&headers, "etag").expect("an ETag").to_owned();
    for tags in [etag.clone(), format!("W/{etag}"), format!("\"other\", {etag}"), "*".into()] {
        let (status, headers, body) = request(addr, "GET", "/app.js", &format!("If-None-Match: {tags}\r\n")).await;
        assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 304 Not Modified", ""), "If-None-Match: {tags}");
        assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
        assert_security_headers("304", &headers);
    }
    let (status, _, _) = request(addr, "GET", "/app.js", "If-None-Match: \"other\"\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");

    // Traversal, plain or encoded, reaches no file.
    for path in ["/../Cargo.toml", "/%2e%2e/%2e%2e/Cargo.toml", "/..%2f..%2fCargo.toml", "/app.js/..", "//etc/passwd"] {
        let (status, headers, body) = request(addr, "GET", path, "").await;
        assert_eq!(status, "HTTP/1.1 404 Not Found", "{path}");
        assert_eq!(body, "Not found\n", "{path}");
        assert_security_headers(path, &headers);
    }
    // A long path within the head's limit is an ordinary 404; past it, the head is refused.
    let (status, _, _) = request(addr, "GET", &format!("/{}", "a".repeat(8 * 1024)), "").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let overlong = format!("GET /{} HTTP/1.1\r\nHost: {addr}\r\n\r\n", "a".repeat(32 * 1024));
    let overlong = exchange(addr, overlong.as_bytes()).await;
    assert!(
        overlong.starts_with("HTTP/1.1 431") || overlong.starts_with("HTTP/1.1 414") || overlong.is_empty(),
        "an overlong path is refused: {overlong:?}"
    );
    // Too many headers, or too many bytes of them: 431, and nothing served.
    let many: String = (0..200).map(|i| format!("X-H{i}: {i}\r\n")).collect();
    let (status, _, body) = request(addr, "GET", "/", &many).await;
    assert_eq!((status.as_str(), body.as_str()), ("HTTP/1.1 431 Request Header Fields Too Large", ""));
    let big = format!("X-Big: {}\r\n", "b".repeat(20 * 1024));
    let answer = exchange(addr, format!("GET / HTTP/1.1\r\nHost: {addr}\r\n{big}\r\n").as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431") || answer.is_empty(), "{answer:?}");

    // HTTP/1.0 without Host is answered (no browser sends it, so no name to check); HTTP/1.1
    // without Host is malformed (RFC 9112 §3.2).
    let (status, headers, body) = head_and_body(&exchange(addr, b"GET / HTTP/1.0\r\n\r\n").await);
    assert_eq!(status, "HTTP/1.0 200 OK");
    assert_eq!(body.len(), index.len());
    let csp = header(&headers, "content-security-policy").expect("a CSP");
    assert!(csp.contains("connect-src 'self';"), "no host to name: {csp}");
    let (status, headers, _) = head_and_body(&exchange(addr, b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n").await);
    assert_eq!(status, "HTTP/1.1 400 Bad Request");
    assert_security_headers("no Host", &headers);
    let (status, _, _) = head_and_body(&exchange(addr, b"GET /ws HTTP/1.0\r\n\r\n").await);
    assert_eq!(status, "HTTP/1.0 426 Upgrade Required");
    running.shutdown().await;
}

/// A page on `evil.example`, whose owner points the name at 127.0.0.1 after the page loaded
/// (DNS rebinding), is same-origin with a plain HTTP listener on loopback: its requests carry
/// `Host: evil.example:PORT` and its WebSocket `Origin: http://evil.example:PORT`. Plain HTTP
/// answers only addresses, localhost and the names listed in `web.allowed_hosts`.
#[tokio::test]
async fn a_rebound_name_is_refused_over_plain_http_and_listed_names_addresses_and_https_are_answered() {
    let (running, _dir, https, http) = web_server(|cfg| {
        cfg.web.allowed_hosts = vec!["chat.lan".into()];
        cfg.web.trusted_proxies = vec!["127.0.0.1".parse().expect("ip")];
    })
    .await;
    let port = http.addr.port();
    let get = |host: String, more: &'static str| {
        let addr = http.addr;
        async move {
            let text = format!("GET / HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n{more}\r\n");
            head_and_body(&exchange(addr, text.as_bytes()).await)
        }
    };
    for host in [format!("evil.example:{port}"), "evil.example".into(), format!("127.0.0.1.evil.example:{port}")] {
        let (status, headers, body) = get(host.clone(), "").await;
        assert_eq!(status, "HTTP/1.1 421 Misdirected Request", "{host}");
        assert!(body.contains("web.allowed_hosts") && !body.contains("<"), "{body}");
        assert_security_headers(&host, &headers);
    }
    // The WebSocket too, though its Origin matches the name it came by (and its peer, 127.0.0.1,
    // is a trusted proxy here: a page cannot add X-Forwarded-Proto to a handshake).
    let answer = ws_handshake(http.addr, &format!("evil.example:{port}")).await;
    assert!(answer.starts_with("HTTP/1.1 421"), "a rebound WebSocket is refused: {answer}");

    for host in [format!("127.0.0.1:{port}"), format!("localhost:{port}"), format!("[::1]:{port}"), "chat.lan".into()] {
        let (status, _, _) = get(host.clone(), "").await;
        assert_eq!(status, "HTTP/1.1 200 OK", "{host}");
    }
    // A listed name may open /ws from its own pages.
    let answer = ws_handshake(http.addr, &format!("chat.lan:{port}")).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer}");

    // Through a trusted proxy that says the client used HTTPS, the proxy's certificate bound
    // the name; one that says HTTP gets the same check as a direct client.
    let (status, _, _) = get("chat.example.org".into(), "X-Forwarded-Proto: https\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    let (status, _, _) = get("chat.example.org".into(), "X-Forwarded-Proto: http\r\n").await;
    assert_eq!(status, "HTTP/1.1 421 Misdirected Request");
    // Over HTTPS a browser never sends another site's page here: the certificate binds the name.
    let (status, _, _) = head_and_body(&https.http_get_as("/", "evil.example", "").await);
    assert_eq!(status, "HTTP/1.1 200 OK");
    running.shutdown().await;
}

/// The answer's first bytes to a WebSocket handshake that names `host`, from a page of it.
async fn ws_handshake(addr: SocketAddr, host: &str) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let handshake = format!("GET /ws HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n{WS_HEADERS}\r\n");
    stream.write_all(handshake.as_bytes()).await.expect("send");
    let mut head = [0u8; 1024];
    let n = tokio::time::timeout(WAIT, stream.read(&mut head)).await.expect("answer").expect("read");
    String::from_utf8_lossy(&head[..n]).into_owned()
}

/// The server's side of the loopback TCP connection from `peer` to `server`: the bytes in its
/// kernel send queue (written, not yet acknowledged), from /proc/net/tcp.
fn server_send_queue(server: SocketAddr, peer: SocketAddr) -> Option<usize> {
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let port = |field: &str| field.rsplit_once(':').and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (local, remote, queues) = (fields.get(1)?, fields.get(2)?, fields.get(4)?);
        if port(local)? != server.port() || port(remote)? != peer.port() {
            return None;
        }
        usize::from_str_radix(queues.split_once(':')?.0, 16).ok()
    })
}

/// A TCP socket that keeps its receive window tiny, connected to `addr`.
async fn tiny_window(addr: SocketAddr) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("rcvbuf");
    socket.connect(addr).await.expect("connect")
}

/// A WebSocket client that asks for much and stops reading is dropped with "SendQ exceeded",
/// like a TCP client doing the same beside it, while the room goes on; until then the server's
/// kernel holds no more than its capped send buffer for it.
#[tokio::test]
async fn a_websocket_client_that_stops_reading_is_dropped_at_its_sendq_like_a_tcp_client() {
    const TALKERS: usize = 10;
    const WAVE: usize = 10;
    let (running, _dir, _, http) = web_server(|cfg| cfg.limits.sendq_lines = 256).await;
    let send_buffer = chinwag_server::ServerConfig::new(std::env::temp_dir()).limits.socket_send_buffer;
    let irc = running.plaintext[0];
    let mut reader = Client::plain(irc, "reader").await;
    reader.register("reader").await;
    reader.join("#busy").await;
    let mut talkers = Vec::new();
    for i in 0..TALKERS {
        let mut t = Client::plain(irc, &format!("talker{i}")).await;
        t.register(&format!("talker{i}")).await;
        t.join("#busy").await;
        talkers.push(t);
    }
    async fn wave(talkers: &mut [Client], n: usize) {
        let text = "z".repeat(380);
        for (i, t) in talkers.iter_mut().enumerate() {
            for k in 0..WAVE {
                t.send(&format!("PRIVMSG #busy :{i} {n} {k} {text}")).await;
            }
        }
    }
    /// Reads a wave's messages; returns the QUITs seen meanwhile.
    async fn read_wave(reader: &mut Client) -> Vec<chinwag_proto::Message> {
        let (mut got, mut quits) = (0, Vec::new());
        while got < TALKERS * WAVE {
            let m = reader.expect("PRIVMSG or QUIT", |m| m.command == "PRIVMSG" || m.command == "QUIT").await;
            if m.command == "QUIT" {
                quits.push(m);
            } else {
                got += 1;
            }
        }
        quits
    }
    // History for the sleepers to ask for.
    wave(&mut talkers, 0).await;
    assert!(read_wave(&mut reader).await.is_empty());

    // Each sleeper joins, asks for eight pages of 100 long lines (far beyond a SendQ of 256
    // lines and the socket buffers) and never reads again.
    let asks = "CHATHISTORY LATEST #busy * 100";
    let stream = tiny_window(http.addr).await;
    let ws_peer = stream.local_addr().expect("addr");
    let request = format!("ws://{}/ws", http.addr);
    let (ws, _) = tokio_tungstenite::client_async(request, Box::new(stream) as Box<dyn support::Stream>)
        .await
        .expect("handshake");
    let mut ws_sleeper = WsClient { ws, name: "ws-sleeper".into(), binary: false, seen: Vec::new(), frames: (0, 0) };
    ws_sleeper.register("wssleeper").await;
    ws_sleeper.join("#busy").await;
    let mut tcp_sleeper = tiny_window(irc).await;
    let mut ask = String::from("NICK tcpsleeper\r\nUSER s 0 * :s\r\nJOIN #busy\r\n");
    for _ in 0..8 {
        ws_sleeper.send(asks).await;
        ask.push_str(asks);
        ask.push_str("\r\n");
    }
    tcp_sleeper.write_all(ask.as_bytes()).await.expect("ask");

    // Watch the server's send queue toward the WebSocket sleeper until it is dropped.
    let server = http.addr;
    let watching = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watch = tokio::spawn({
        let watching = watching.clone();
        async move {
            let mut peak = 0;
            // Bounded: at most 20 s of samples.
            for _ in 0..4000 {
                if !watching.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                peak = peak.max(server_send_queue(server, ws_peer).unwrap_or(0));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            peak
        }
    });

    // The room goes on: a wave reaches the reader in bounded time, and both sleepers are
    // dropped with SendQ exceeded.
    let started = Instant::now();
    wave(&mut talkers, 1).await;
    let mut quits = read_wave(&mut reader).await;
    let took = started.elapsed();
    while quits.len() < 2 {
        quits.push(reader.expect("the sleepers' QUITs", |m| m.command == "QUIT").await);
    }
    watching.store(false, std::sync::atomic::Ordering::Relaxed);
    let peak = watch.await.expect("watcher");
    for nick in ["wssleeper!", "tcpsleeper!"] {
        let quit = quits.iter().find(|q| q.source.as_deref().is_some_and(|s| s.starts_with(nick)));
        let quit = quit.unwrap_or_else(|| panic!("{nick} was not dropped: {quits:?}"));
        assert_eq!(quit.params[0], "SendQ exceeded", "{nick}");
    }
    println!(
        "{} lines reached the reader in {took:?}; the server's kernel held at most {peak} bytes for the WebSocket sleeper",
        TALKERS * WAVE
    );
    assert!(took < Duration::from_secs(5), "the room was slowed by the sleepers: {took:?}");
    assert!(peak <= 2 * send_buffer, "the kernel held {peak} bytes, past the send buffer of {send_buffer} (doubled)");
    drop((ws_sleeper, tcp_sleeper));
    running.shutdown().await;
}

/// A client that sends its request head a byte every two seconds, or nothing at all, is
/// closed when the head's time (10 s) is up, whatever it sent; one that opens the WebSocket
/// and never registers is closed at the registration timeout, as on TCP, even when it started
/// a frame it never finishes.
#[tokio::test]
async fn slow_heads_and_silent_websockets_are_closed_in_bounded_time() {
    let (running, _dir, _, http) =
        web_server(|cfg| cfg.core.limits.registration_timeout = Duration::from_secs(2)).await;
    let addr = http.addr;
    let started = Instant::now();
    let drip = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        stream.write_all(format!("GET / HTTP/1.1\r\nHost: {addr}\r\nX-Slow: ").as_bytes()).await.expect("send");
        // Bounded: 15 bytes, 30 s at most.
        for _ in 0..15 {
            tokio::time::sleep(Duration::from_secs(2)).await;
            if stream.write_all(b"z").await.is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match tokio::time::timeout(Duration::from_millis(10), stream.read(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) => break,
                Ok(Ok(n)) => assert!(!buf[..n].starts_with(b"HTTP/1.1 200"), "a slow head was served"),
                Err(_) => {}
            }
        }
        started.elapsed()
    };
    let silent = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut buf)).await;
        assert!(!String::from_utf8_lossy(&buf).contains("200 OK"), "{buf:?}");
        started.elapsed()
    };
    let unregistered = async {
        let (mut ws, _) = WsClient::connect(&Target::http(addr), &["text.ircv3.net"], None, "idle").await;
        let error = ws.expect("ERROR", |m| m.command == "ERROR").await;
        assert!(error.params[0].contains("Registration timed out"), "{error:?}");
        started.elapsed()
    };
    let half_frame = async {
        let mut stream = TcpStream::connect(addr).await.expect("connect");
        let handshake = format!("GET /ws HTTP/1.1\r\nHost: {addr}\r\n{WS_HEADERS}\r\n");
        stream.write_all(handshake.as_bytes()).await.expect("send");
        // A masked text frame of five bytes announced, then nothing.
        stream.write_all(&[0x81, 0x85]).await.expect("send");
        let mut told = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut told)).await;
        let told = String::from_utf8_lossy(&told).into_owned();
        assert!(told.starts_with("HTTP/1.1 101") && told.contains("Registration timed out"), "{told:?}");
        started.elapsed()
    };
    let (drip, silent, unregistered, half_frame) = tokio::join!(drip, silent, unregistered, half_frame);
    println!("closed after: slow head {drip:?}, silent {silent:?}, unregistered {unregistered:?}, half a frame {half_frame:?}");
    for (what, took) in [("slow head", drip), ("silent", silent)] {
        assert!(took > Duration::from_secs(8) && took < Duration::from_secs(14), "{what}: {took:?}");
    }
    for (what, took) in [("unregistered", unregistered), ("half a frame", half_frame)] {
        assert!(took < Duration::from_secs(6), "{what}: {took:?}");
    }
    running.shutdown().await;
}

/// A client that pipelines requests and never reads their answers is closed once it has taken
/// no byte for `limits.write_timeout`, so that it cannot keep its HTTP place for as long as it
/// likes (hyper alone never gives up on a write, and the head's timeout does not run then).
#[tokio::test]
async fn a_client_that_never_reads_its_answers_is_closed_at_the_write_timeout() {
    const REQUESTS: usize = 40;
    let (running, _dir, _, http) = web_server(|cfg| cfg.limits.write_timeout = Duration::from_secs(2)).await;
    let app = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../web/dist/app.js")).expect("app.js");
    let mut stream = tiny_window(http.addr).await;
    let pipelined: String =
        (0..REQUESTS).map(|_| format!("GET /app.js HTTP/1.1\r\nHost: {}\r\n\r\n", http.addr)).collect();
    stream.write_all(pipelined.as_bytes()).await.expect("send");
    // Hold still past the write timeout, then read what is left.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let mut got = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let read_all = async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            got += n;
        }
    };
    tokio::time::timeout(WAIT, read_all).await.expect("the server closed the connection");
    println!("{got} bytes of {} arrived before the server gave up", REQUESTS * app.len());
    assert!(got < REQUESTS * app.len() / 2, "the server kept writing to a client that did not read: {got} bytes");
    running.shutdown().await;
}
