//! A flood of QUIC Initials whose handshakes are never finished, from many loopback addresses
//! (what a spoofed-source flood looks like to the server): the server keeps no state for them
//! beyond a small bound, its memory stays flat, what it held comes back after the handshake
//! timeout, and a real client connects during and after the flood.
//!
//! One test in its own binary: it reads the process's resident memory, which other tests
//! running beside it would disturb.

mod support;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use support::raw_quic::flood_from;
use support::{quic_client_config, start_server, Client, WAIT};
use tokio::net::UdpSocket;

/// Source addresses of the flood (127.77.0.1, …), each sending [`PER_ADDRESS`] Initials: within
/// the default per-address limits, so that only the QUIC bounds stand in the way.
const ADDRESSES: u8 = 250;
const PER_ADDRESS: usize = 10;
/// Kept short so that the test sees the held state come back.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// This process's resident memory, in bytes.
fn resident() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("a VmRSS line");
    let kib: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("VmRSS in kB");
    kib * 1024
}

/// What the server's metrics say about QUIC: (handshakes in progress, connections quinn holds
/// state for, attempts sent a Retry).
async fn quic_counts(server: &chinwag_server::Running) -> (u64, u64, u64) {
    let snapshot = server.control().snapshot().await.expect("a metrics snapshot");
    let retried = snapshot.quic_attempts.iter().find(|(name, _)| *name == "retried").map_or(0, |(_, n)| *n);
    (snapshot.quic_half_open, snapshot.quic_connection_states, retried)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_unfinished_quic_handshakes_holds_bounded_state_that_comes_back() {
    let (server, _dir) = start_server(|cfg| {
        cfg.limits.tls_handshake_timeout = HANDSHAKE_TIMEOUT;
        cfg.limits.quic_handshake_timeout = HANDSHAKE_TIMEOUT;
    })
    .await;
    let limits = chinwag_server::EdgeLimits::default();
    let (quic, fp) = (server.quic[0], server.fingerprint.clone());
    let config = quic_client_config(&fp);

    // Warm up: one real client through the whole path, so that what is allocated once is.
    let (mut warm, _c, _e) = Client::quic(quic, &fp, "warm-up").await;
    warm.register("warm").await;
    let before = resident();
    let (_, states_before, _) = quic_counts(&server).await;

    let mut sockets = Vec::new();
    let mut most_half_open = 0;
    let started = Instant::now();
    for i in 1..=ADDRESSES {
        let from = IpAddr::V4(Ipv4Addr::new(127, 77, 0, i));
        let socket = UdpSocket::bind(SocketAddr::new(from, 0)).await.expect("bind a flood source");
        flood_from(&socket, quic, &config, PER_ADDRESS).await;
        // Frozen, not closed: the peer never answers, as a spoofed source would not.
        sockets.push(socket);
        most_half_open = most_half_open.max(quic_counts(&server).await.0);
        if i == ADDRESSES / 2 {
            let (mut during, _c, _e) = Client::quic(quic, &fp, "during").await;
            during.register("during").await;
            during.send("QUIT").await;
            during.expect_closed().await;
        }
    }
    let flood_took = started.elapsed();
    let peak = resident();
    let initials = usize::from(ADDRESSES) * PER_ADDRESS;
    let per_handshake = peak.saturating_sub(before) / initials as u64;
    let (_, states_peak, retried) = quic_counts(&server).await;
    eprintln!(
        "{initials} Initials in {flood_took:?}: resident {} -> {} KiB ({per_handshake} bytes per Initial); \
         at most {most_half_open} handshakes in progress, {retried} Retries, {states_peak} connection states",
        before / 1024,
        peak / 1024
    );
    assert!(
        most_half_open <= limits.quic_retry_above as u64,
        "unproven sources held {most_half_open} handshakes, more than the {} before Retry",
        limits.quic_retry_above
    );
    // Handshakes that time out free their places during a long flood, so this is not exact.
    assert!(retried as usize >= initials / 2, "only {retried} Retries for {initials} Initials");
    assert!(
        peak.saturating_sub(before) < 16 << 20,
        "{initials} unanswered handshakes grew the server by {} KiB ({per_handshake} bytes each)",
        peak.saturating_sub(before) / 1024
    );

    // What the flood left is let go once its handshakes time out and their closes drain.
    let deadline = Instant::now() + HANDSHAKE_TIMEOUT + WAIT;
    loop {
        let (half_open, states, _) = quic_counts(&server).await;
        if half_open == 0 && states <= states_before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the flood's state was kept: {half_open} handshakes in progress, {states} connection states \
             (before the flood: {states_before})"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // After the flood a client connects as usual.
    let (mut after, _c, _e) = Client::quic(quic, &fp, "after").await;
    after.register("after").await;
    drop(sockets);
    server.shutdown().await;
}
