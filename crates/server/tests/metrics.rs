//! `/metrics`, `/healthz` and `/readyz` over real HTTP after known traffic: every counter moves
//! by exactly what the clients did.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Instant;

use base64::Engine;
use support::{start_server, Client, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// `(status line, body)` of one HTTP request.
async fn http(addr: SocketAddr, request: &str) -> (String, String) {
    let mut stream = TcpStream::connect(addr).await.expect("connect to metrics");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await.expect("answer in time").expect("read");
    let (head, body) = response.split_once("\r\n\r\n").expect("a head and a body");
    (head.lines().next().unwrap_or_default().to_owned(), body.to_owned())
}

async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, body) = http(addr, "GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n").await;
    assert_eq!(status, "HTTP/1.1 200 OK");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(name, value)| (name.to_owned(), value.parse().expect("a number")))
        .collect()
}

/// Scrapes until every expected sample has its value (counters settle as connections close).
async fn scrape_until(addr: SocketAddr, expected: &[(&str, f64)]) -> HashMap<String, f64> {
    let deadline = Instant::now() + WAIT;
    loop {
        let samples = scrape(addr).await;
        let wrong: Vec<String> = expected
            .iter()
            .filter(|(name, value)| samples.get(*name) != Some(value))
            .map(|(name, value)| format!("{name}: want {value}, got {:?}", samples.get(*name)))
            .collect();
        if wrong.is_empty() {
            return samples;
        }
        assert!(Instant::now() < deadline, "metrics never settled: {wrong:#?}");
        tokio::task::yield_now().await;
    }
}

#[tokio::test]
async fn metrics_count_exactly_the_traffic_that_happened() {
    let (running, _dir) = start_server(|cfg| cfg.metrics_listen = Some("127.0.0.1:0".parse().expect("addr"))).await;
    let metrics = running.metrics.expect("metrics listener");
    let plain = running.plaintext[0];

    let mut alice = Client::plain(plain, "alice").await;
    alice.register("alice").await;
    alice.join("#general").await;
    let mut bob = Client::plain(plain, "bob").await;
    bob.register("bob").await;
    bob.join("#general").await;
    for i in 0..5 {
        alice.send(&format!("PRIVMSG #general :hello {i}")).await;
    }
    for _ in 0..5 {
        bob.expect_command("PRIVMSG").await;
    }
    let mut carol = Client::tls(running.tls[0], &running.fingerprint, "carol").await;
    carol.register("carol").await;
    carol.send("QUIT :bye").await;
    carol.expect_closed().await;
    bob.send("AUTHENTICATE PLAIN").await;
    bob.expect_command("AUTHENTICATE").await;
    let payload = base64::engine::general_purpose::STANDARD.encode("\0nobody\0wrong password");
    bob.send(&format!("AUTHENTICATE {payload}")).await;
    bob.expect_command("904").await;

    let samples = scrape_until(
        metrics,
        &[
            ("chinwag_chat_messages_in_total", 5.0),
            ("chinwag_messages_stored_total", 5.0),
            ("chinwag_users_online", 2.0),
            ("chinwag_connections{transport=\"plaintext\"}", 2.0),
            ("chinwag_connections{transport=\"tls\"}", 0.0),
            ("chinwag_connections_accepted_total{transport=\"tls\"}", 1.0),
            ("chinwag_connections_accepted_total{transport=\"plaintext\"}", 2.0),
            ("chinwag_disconnects_total{reason=\"quit\"}", 1.0),
            ("chinwag_disconnects_total{reason=\"killed\"}", 0.0),
            ("chinwag_login_failures_total", 1.0),
            ("chinwag_password_checks_total", 1.0),
            ("chinwag_rooms", 3.0),
            ("chinwag_accounts", 0.0),
        ],
    )
    .await;
    let commits = samples["chinwag_store_commit_seconds_count"];
    assert!((1.0..=5.0).contains(&commits), "5 messages in 1 to 5 commits, got {commits}");
    assert_eq!(samples["chinwag_store_commit_seconds_bucket{le=\"+Inf\"}"], commits);
    assert!(samples["chinwag_messages_out_total"] >= 10.0, "at least the 5 copies and 5 echoes... {samples:?}");
    // Alice sent her 5 messages and registration; the bytes in include at least those.
    let alice_bytes: usize = (0..5).map(|i| format!("PRIVMSG #general :hello {i}\r\n").len()).sum();
    assert!(samples["chinwag_bytes_in_total"] > alice_bytes as f64);
    assert!(samples["chinwag_bytes_out_total"] > samples["chinwag_bytes_in_total"]);
    assert!(samples.get("process_resident_memory_bytes").is_some_and(|m| *m > 0.0));

    assert_eq!(http(metrics, "GET /healthz HTTP/1.1\r\n\r\n").await, ("HTTP/1.1 200 OK".into(), "ok\n".into()));
    assert_eq!(http(metrics, "GET /readyz HTTP/1.1\r\n\r\n").await.0, "HTTP/1.1 200 OK");
    assert_eq!(http(metrics, "GET /nope HTTP/1.1\r\n\r\n").await.0, "HTTP/1.1 404 Not Found");
    assert_eq!(http(metrics, "POST /metrics HTTP/1.1\r\n\r\n").await.0, "HTTP/1.1 405 Method Not Allowed");
    drop((alice, bob));
    assert!(running.shutdown().await.clean);
}
