//! The TLS listener as a scanner sees it: only TLS 1.2 and 1.3, only forward-secret AEAD cipher
//! suites, no renegotiation, no compression.
//!
//! `sslscan` (Debian package, listed in `.ci/apt-packages.txt`) does the protocol, cipher and
//! renegotiation checks. Debian's OpenSSL is built without zlib, so sslscan cannot offer
//! compression; a hand-written ClientHello that offers DEFLATE does it instead.

mod support;

use std::time::Duration;

use support::start_server;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Cipher suites we accept to see: ECDHE key exchange with an AEAD, or TLS 1.3's own.
const ALLOWED: [&str; 9] = [
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-RSA-CHACHA20-POLY1305",
];

#[tokio::test]
async fn sslscan_finds_only_tls_1_2_and_1_3_with_modern_suites_and_no_renegotiation() {
    let (server, _dir) = start_server(|cfg| {
        // sslscan opens a connection per protocol and per cipher it tries.
        cfg.limits.new_connections = chinwag_core::Rate { burst: 10_000, every: Duration::from_millis(1) };
        cfg.limits.connections_per_address = 1000;
    })
    .await;
    let target = server.tls[0].to_string();
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new("sslscan").args(["--no-colour", "--no-heartbleed", &target]).output(),
    )
    .await
    .expect("sslscan finishes within two minutes")
    .unwrap_or_else(|e| {
        panic!("cannot run sslscan ({e}); install the Debian package `sslscan` (.ci/apt-packages.txt)")
    });
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "sslscan failed: {text}\n{}", String::from_utf8_lossy(&output.stderr));

    let state = |protocol: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(protocol).map(|rest| rest.trim().to_owned()))
            .unwrap_or_else(|| panic!("sslscan said nothing about {protocol}:\n{text}"))
    };
    for old in ["SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"] {
        assert_eq!(state(&format!("{old} ")), "disabled", "{old} must be off:\n{text}");
    }
    for modern in ["TLSv1.2", "TLSv1.3"] {
        assert_eq!(state(&format!("{modern} ")), "enabled", "{modern} must be on:\n{text}");
    }
    assert!(text.contains("Session renegotiation not supported"), "renegotiation must be refused:\n{text}");

    let accepted: Vec<&str> =
        text.lines().filter(|l| l.starts_with("Accepted") || l.starts_with("Preferred")).collect();
    assert!(accepted.len() >= 4, "too few suites found, was the scan refused?\n{text}");
    for line in accepted {
        let words: Vec<&str> = line.split_whitespace().collect();
        let (protocol, bits, suite) = (words[1], words[2], words[4]);
        assert!(protocol == "TLSv1.2" || protocol == "TLSv1.3", "{line}");
        assert!(bits.parse::<u32>().is_ok_and(|b| b >= 128), "{line}");
        assert!(ALLOWED.contains(&suite), "suite not on the modern list: {line}");
    }
    server.shutdown().await;
}

/// A TLS 1.2 ClientHello offering the given compression methods (1 = DEFLATE, 0 = none).
fn client_hello(compression: &[u8]) -> Vec<u8> {
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[0x42; 32]);
    body.push(0); // no session id
    let suites: [u16; 4] = [0xc02b, 0xc02f, 0xc02c, 0xcca9];
    body.extend_from_slice(&((suites.len() * 2) as u16).to_be_bytes());
    for s in suites {
        body.extend_from_slice(&s.to_be_bytes());
    }
    body.push(compression.len() as u8);
    body.extend_from_slice(compression);
    let mut ext = Vec::new();
    let mut add = |kind: u16, data: &[u8]| {
        ext.extend_from_slice(&kind.to_be_bytes());
        ext.extend_from_slice(&(data.len() as u16).to_be_bytes());
        ext.extend_from_slice(data);
    };
    add(0x000a, &[0x00, 0x04, 0x00, 0x1d, 0x00, 0x17]); // groups: x25519, secp256r1
    add(0x000b, &[0x01, 0x00]); // point formats: uncompressed
    add(0x000d, &[0x00, 0x06, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01]); // signature algorithms
    add(0xff01, &[0x00]); // renegotiation_info, initial handshake
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut handshake = vec![0x01];
    handshake.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&body);
    let mut record = vec![0x16, 0x03, 0x01];
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

/// Sends a ClientHello and returns the first record the server answers with.
async fn first_record(addr: std::net::SocketAddr, hello: &[u8]) -> Vec<u8> {
    let mut tcp = TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(hello).await.expect("send hello");
    let mut header = [0u8; 5];
    tokio::time::timeout(Duration::from_secs(10), tcp.read_exact(&mut header))
        .await
        .expect("answer in time")
        .expect("read record header");
    let len = usize::from(u16::from_be_bytes([header[3], header[4]]));
    let mut record = header.to_vec();
    record.resize(5 + len, 0);
    tcp.read_exact(&mut record[5..]).await.expect("read record");
    record
}

#[tokio::test]
async fn compression_is_never_chosen_and_a_client_that_insists_is_refused() {
    let (server, _dir) = start_server(|_| {}).await;
    let addr = server.tls[0];
    let answer = first_record(addr, &client_hello(&[1, 0])).await;
    assert_eq!(answer[0], 0x16, "a handshake record: {answer:02x?}");
    assert_eq!(answer[5], 0x02, "a ServerHello: {answer:02x?}");
    // ServerHello: type(1) len(3) version(2) random(32) session id(1 + n) suite(2) compression(1).
    let sid_len = usize::from(answer[5 + 38]);
    let compression = answer[5 + 39 + sid_len + 2];
    assert_eq!(compression, 0, "the server chose compression method {compression}");

    let answer = first_record(addr, &client_hello(&[1])).await;
    assert_eq!(answer[0], 0x15, "only DEFLATE offered: the server must answer with an alert: {answer:02x?}");
    server.shutdown().await;
}
