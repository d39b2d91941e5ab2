//! What the cluster bus costs on this machine, for `docs/cluster.md`'s capacity model: room
//! messages through core NATS (one publisher node, one to three subscribing nodes), appends to
//! the network-state log, and nick claims. It starts a `nats-server` of its own (so that the
//! server's CPU time is its own) and reports throughput and CPU time per operation for the
//! nodes (this process) and for NATS.
//!
//! `cargo run --release -p chinwag-bus --example bus_bench` (about half a minute).

use std::time::{Duration, Instant};

use bytes::Bytes;
use chinwag_bus::conformance::Network;
use chinwag_bus::test_nats::{OwnNatsServer, TestNetwork};
use chinwag_bus::{Bus, Claim, ClaimKey, Expect, LogKey, Topic};
use futures_util::StreamExt;

/// Room messages per run, and their size (a PRIVMSG with tags, roughly).
const MESSAGES: usize = 200_000;
const MESSAGE_BYTES: usize = 200;
/// Log appends and claims per run.
const APPENDS: usize = 5_000;
const CLAIMS: usize = 5_000;
/// Concurrent appenders (nodes) in the concurrent run.
const APPENDERS: usize = 8;

/// CPU seconds (user + system) of a process, from `/proc/PID/stat` (clock ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of the whole line: 11 and 12 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

/// Measures `work`: wall time, this process's CPU and the NATS server's CPU.
async fn measure<F: std::future::Future<Output = ()>>(nats_pid: &str, work: F) -> (Duration, f64, f64) {
    let (own0, nats0) = (cpu_seconds("self"), cpu_seconds(nats_pid));
    let started = Instant::now();
    work.await;
    (started.elapsed(), cpu_seconds("self") - own0, cpu_seconds(nats_pid) - nats0)
}

fn report(what: &str, count: usize, (wall, own, nats): (Duration, f64, f64)) {
    let n = count as f64;
    println!(
        "{what:<44} {:>9.0}/s  nodes {:>6.2} µs CPU/op  NATS {:>6.2} µs CPU/op  ({count} in {:.2} s)",
        n / wall.as_secs_f64(),
        own * 1e6 / n,
        nats * 1e6 / n,
        wall.as_secs_f64()
    );
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let store = tempfile::tempdir().expect("temp dir");
    let server = OwnNatsServer::start(store.path());
    let nats_pid = server.pid().expect("running").to_string();
    let net = TestNetwork::on(&server.url()).await;
    println!("chinwag-bus on nats-server at {} (JetStream, file storage), 2 worker threads", server.url());

    for subscribers in [1usize, 3] {
        let publisher = net.join().await;
        let room = Topic::room(&format!("#bench{subscribers}"));
        let mut subs = Vec::new();
        for _ in 0..subscribers {
            let node = net.join().await;
            subs.push((node.subscribe(&room).await.expect("subscribe"), node));
        }
        let payload = Bytes::from(vec![b'x'; MESSAGE_BYTES]);
        let result = measure(&nats_pid, async {
            let receivers = subs.iter_mut().map(|(sub, _)| async move {
                for _ in 0..MESSAGES {
                    tokio::time::timeout(Duration::from_secs(30), sub.next()).await.expect("in time").expect("open");
                }
            });
            let sending = async {
                for _ in 0..MESSAGES {
                    publisher.publish(&room, payload.clone()).await.expect("publish");
                }
                publisher.flush().await.expect("flush");
            };
            tokio::join!(futures_util::future::join_all(receivers), sending);
        })
        .await;
        report(&format!("room message, {MESSAGE_BYTES} B, to {subscribers} node(s)"), MESSAGES, result);
    }

    let node = net.join().await;
    let result = measure(&nats_pid, async {
        for i in 0..APPENDS {
            node.append(&LogKey::room(&format!("#r{}", i % 100)), Bytes::from_static(b"JOIN alice"), Expect::Any)
                .await
                .expect("append");
        }
    })
    .await;
    report("log append, one node, one at a time", APPENDS, result);

    let mut nodes = Vec::new();
    for _ in 0..APPENDERS {
        nodes.push(net.join().await);
    }
    let result = measure(&nats_pid, async {
        let appenders = nodes.iter().enumerate().map(|(n, node)| async move {
            let key = LogKey::room(&format!("#c{n}"));
            let mut last = None;
            for _ in 0..APPENDS / APPENDERS {
                let expect = last.map_or(Expect::Empty, Expect::Last);
                last = Some(node.append(&key, Bytes::from_static(b"MODE +m"), expect).await.expect("append"));
            }
        });
        futures_util::future::join_all(appenders).await;
    })
    .await;
    report(&format!("log append with CAS, {APPENDERS} nodes at once"), APPENDS, result);

    let mut reader = node.read_log(1).await.expect("read");
    let total = 2 * APPENDS - APPENDS % APPENDERS;
    let result = measure(&nats_pid, async {
        for _ in 0..total {
            tokio::time::timeout(Duration::from_secs(30), reader.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("entry");
        }
    })
    .await;
    report("log replay from the start", total, result);

    let result = measure(&nats_pid, async {
        for i in 0..CLAIMS {
            let claim =
                node.claim(&ClaimKey::nick(&format!("nick{i}")), Bytes::from_static(b"a/1/7")).await.expect("claim");
            assert!(matches!(claim, Claim::Granted { .. }));
        }
    })
    .await;
    report("nick claim (free nick), one at a time", CLAIMS, result);
}
