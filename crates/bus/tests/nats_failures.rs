//! The NATS bus when NATS fails: a NATS server restarted under connected nodes (the test's
//! own `nats-server`, killed with SIGKILL and started again on the same port and storage), an
//! unreachable NATS, and test namespaces that leave nothing behind.

use std::time::Duration;

use bytes::Bytes;
use chinwag_bus::conformance::{next, next_entry};
use chinwag_bus::test_nats::{unique_cluster_name, OwnNatsServer, TestNetwork};
use chinwag_bus::{Bus, BusError, Claim, ClaimKey, Expect, LogKey, NatsBus, NatsOptions, Topic};
use futures_util::StreamExt;
use tokio::time::{timeout, Instant};

/// How long the network may take to heal after NATS is back.
const HEAL: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_resume_by_themselves_after_nats_restarts() {
    let store = tempfile::tempdir().expect("temp dir");
    let mut server = OwnNatsServer::start(store.path());
    let net = TestNetwork::on(&server.url()).await;
    let (publisher, listener) = (net.connect().await, net.connect().await);
    let room = Topic::room("#restart");
    let mut sub = listener.subscribe(&room).await.expect("subscribe");
    let mut log = listener.read_log(1).await.expect("read the log");
    publisher.publish(&room, Bytes::from_static(b"before")).await.expect("publish");
    publisher.flush().await.expect("flush");
    assert_eq!(next(&mut sub, "before the restart").await, Bytes::from_static(b"before"));
    let before = publisher.append(&LogKey::net(), Bytes::from_static(b"before"), Expect::Any).await.expect("append");
    assert_eq!(next_entry(&mut log, "before the restart").await.0, before);
    let Claim::Granted { revision } =
        publisher.claim(&ClaimKey::nick("dave"), Bytes::from_static(b"p")).await.expect("claim")
    else {
        panic!("a free nick must be granted");
    };

    server.kill();
    // Cut off, a node is told so at once and nothing it asks of the bus hangs: what needs an
    // answer fails within the request timeout, so the node can stop acknowledging.
    let cut_off = Instant::now();
    let refused = publisher.append(&LogKey::net(), Bytes::from_static(b"while away"), Expect::Any).await;
    assert!(matches!(refused, Err(BusError::Unavailable(_))), "an append without NATS: {refused:?}");
    let refused = publisher.claim(&ClaimKey::nick("erin"), Bytes::from_static(b"p")).await;
    assert!(matches!(refused, Err(BusError::Unavailable(_))), "a claim without NATS: {refused:?}");
    assert!(matches!(publisher.flush().await, Err(BusError::Unavailable(_))), "a flush without NATS");
    assert!(cut_off.elapsed() < Duration::from_secs(10), "failing took {:?}", cut_off.elapsed());
    assert!(!publisher.is_connected(), "the node knows it is cut off");
    server.restart();

    // Publications made while the clients reconnect may be lost (at most once); the same
    // subscription, with nothing done to it, must carry new ones once the clients are back.
    let deadline = Instant::now() + HEAL;
    let mut sent = 0u32;
    let got = loop {
        assert!(Instant::now() < deadline, "no message crossed within {HEAL:?} of NATS restarting ({sent} sent)");
        let _ = publisher.publish(&room, Bytes::from(format!("after {sent}"))).await;
        sent += 1;
        if let Ok(Some(payload)) = timeout(Duration::from_millis(200), sub.next()).await {
            break payload;
        }
    };
    assert!(got.starts_with(b"after "), "got {got:?}");

    // The log resumes where it was: appends work again and the same reader sees them, after
    // the entry it had, with nothing in between.
    let after = loop {
        match publisher.append(&LogKey::net(), Bytes::from_static(b"after"), Expect::Any).await {
            Ok(seq) => break seq,
            Err(BusError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await
            }
            Err(e) => panic!("appending after the restart: {e}"),
        }
    };
    // The append that failed while NATS was away may have gone in after all (its outcome was
    // unknown): the reader sees it at most once, then the new entry, with no gap after `before`.
    let mut seen = Vec::new();
    while seen.last().is_none_or(|(seq, _)| *seq < after) {
        let (seq, key, payload) = next_entry(&mut log, "after the restart").await;
        assert_eq!(key, "net");
        seen.push((seq, payload));
    }
    let seqs: Vec<u64> = seen.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (before + 1..=after).collect::<Vec<_>>(), "the log kept its entries, in order, without a gap");
    assert!(seen.len() <= 2 && seen[..seen.len() - 1].iter().all(|(_, p)| p == "while away"), "{seen:?}");
    assert_eq!(seen.last().map(|(_, p)| p.clone()), Some(Bytes::from_static(b"after")));
    // Claims survived (NATS stores them on disk) and still exclude others.
    assert_eq!(
        listener.claim(&ClaimKey::nick("dave"), Bytes::from_static(b"l")).await.expect("claim"),
        Claim::Taken { holder: Bytes::from_static(b"p"), revision }
    );
    assert!(publisher.is_connected() && listener.is_connected());
    assert!(
        publisher.connections() >= 2 && listener.connections() >= 2,
        "both clients must have reconnected by themselves"
    );
}

#[tokio::test]
async fn unreachable_nats_is_a_clear_error() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("port").port();
    let url = format!("nats://127.0.0.1:{port}");
    let mut options = NatsOptions::new(&url, unique_cluster_name());
    options.timeout = Duration::from_secs(1);
    let started = Instant::now();
    let err = NatsBus::connect(&options).await.expect_err("nothing listens there");
    assert!(started.elapsed() < Duration::from_secs(5), "refusal took {:?}", started.elapsed());
    assert!(matches!(err, BusError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains(&url), "the error must name the URL: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_test_namespace_leaves_nothing_behind() {
    let net = TestNetwork::new().await;
    let cluster = net.options().cluster.clone();
    let url = net.options().url.clone();
    net.connect().await.append(&LogKey::net(), Bytes::from_static(b"x"), Expect::Any).await.expect("append");
    drop(net);
    let js = async_nats::jetstream::new(async_nats::connect(url.as_str()).await.expect("connect"));
    for stream in [format!("{cluster}-log"), format!("KV_{cluster}-claims"), format!("KV_{cluster}-nodes")] {
        assert!(js.get_stream(&stream).await.is_err(), "{stream} is still there");
    }
}
