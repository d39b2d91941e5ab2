//! A cluster node's runtime (`docs/cluster.md`, step 1 of "Order of work"), with real
//! `chinwag serve` processes on the machine's NATS (a throwaway namespace from
//! `chinwag_bus::test_nats`, heartbeat TTL 2 s) and a fresh PostgreSQL database: nodes see each
//! other in `chinwag admin nodes`, a second node under a live node's name is refused, a
//! `kill -9` is seen by the others within the TTL and recorded once in the log, msgids of two
//! nodes never collide, and a node cut off from NATS (the test's own `nats-server`, killed and
//! started again) drops its users, answers `/readyz` 503 and refuses connections until NATS is
//! back, then serves again as a new incarnation.
//!

mod support;

use std::collections::{HashMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chinwag_bus::test_nats::{OwnNatsServer, TestNetwork, TEST_HEARTBEAT_TTL};
use chinwag_bus::Bus;
use chinwag_store::test_db::TestDatabase;
use futures_util::StreamExt;
use serde_json::Value;
use support::admin;
use support::chat::ChatProcess;
use support::client::{Incoming, PlainClient};
use support::process::ServerProcess;
use support::{POLL_INTERVAL, WAIT};

/// What a node's user is told when the node loses the network.
const LOST: &str = "Lost the network; reconnect (another node will take you)";
/// The base32 digits of msgids (the core's `ids.rs`).
const ALPHABET: &str = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the NATS set-up")
}

/// A network's namespace and database, and the runtime its NATS handles need.
struct Network {
    nats: TestNetwork,
    db: TestDatabase,
    runtime: tokio::runtime::Runtime,
}

impl Network {
    fn new(url: Option<&str>) -> Network {
        let runtime = runtime();
        let nats = match url {
            Some(url) => runtime.block_on(TestNetwork::on(url)),
            None => runtime.block_on(TestNetwork::new()),
        };
        Network { nats, db: TestDatabase::create(), runtime }
    }

    /// `chinwag serve` arguments for node `name`.
    fn args(&self, name: &str) -> Vec<String> {
        let options = self.nats.options();
        [
            "--cluster",
            options.url.as_str(),
            "--cluster-name",
            options.cluster.as_str(),
            "--node-name",
            name,
            "--store",
            self.db.url(),
            "--metrics-listen",
            "127.0.0.1:0",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
    }

    /// Starts node `name` and waits until it serves (`/readyz`: it has read the network's log).
    fn start(&self, name: &str, dir: &Path) -> ServerProcess {
        let args = self.args(name);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = ServerProcess::start_with(dir, &["127.0.0.1:0"], &["127.0.0.1:0"], &args);
        let metrics = node.metrics.expect("the node's metrics listener");
        let deadline = Instant::now() + WAIT;
        while http_get(metrics, "/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "node {name} not ready within {WAIT:?}:\n{}", node.log_tail());
            std::thread::sleep(POLL_INTERVAL);
        }
        node
    }

    /// Every entry of the network's log, read from its start.
    fn log(&self) -> Vec<bytes::Bytes> {
        self.runtime.block_on(async {
            let bus = self.nats.connect().await;
            let mut reader = bus.read_log(1).await.expect("read the log");
            let mut entries = Vec::new();
            while let Ok(Some(Ok(entry))) = tokio::time::timeout(Duration::from_millis(500), reader.next()).await {
                entries.push(entry.payload);
            }
            entries
        })
    }
}

/// `admin --json nodes` on the node with data directory `dir`.
fn nodes(dir: &Path) -> Value {
    let out = admin(dir, &["--json", "nodes"]);
    assert!(
        out.status.success(),
        "admin nodes failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

/// The names of the live nodes in an `admin nodes` answer.
fn names(view: &Value) -> Vec<String> {
    view["nodes"].as_array().into_iter().flatten().filter_map(|n| n["node"].as_str().map(str::to_owned)).collect()
}

/// Waits (at most `limit`) until `dir`'s node lists exactly `expected`; returns its answer and
/// how long it took.
fn wait_for_nodes(dir: &Path, expected: &[&str], limit: Duration) -> (Value, Duration) {
    let started = Instant::now();
    loop {
        let view = nodes(dir);
        // A node says its number from its second heartbeat on.
        let numbered = view["nodes"].as_array().into_iter().flatten().all(|n| n["node_id"].is_u64());
        if names(&view) == expected && numbered {
            return (view, started.elapsed());
        }
        assert!(
            started.elapsed() < limit,
            "the node never listed {expected:?} within {limit:?}; last answer: {view:#}"
        );
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// `GET path` on a metrics listener: the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream.set_read_timeout(Some(WAIT)).expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("send the request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// A registered user on `addr` with message-tags and echo-message, in `#here`.
fn user(addr: SocketAddr, nick: &str) -> PlainClient {
    let mut client = PlainClient::plain(addr, nick);
    client.request_caps("message-tags echo-message");
    client.send("CAP END");
    client.register(nick);
    client.join("#here");
    client
}

/// The msgids of `count` messages `client` (`nick`) sends to `#here`, from their echoes.
fn msgids(client: &mut PlainClient, nick: &str, count: usize) -> Vec<String> {
    for n in 0..count {
        client.send(&format!("PRIVMSG #here :message {n}"));
    }
    room_messages(client, &[(nick, count)]).remove(nick).unwrap_or_default()
}

/// The msgids of the messages `client` reads in `#here` until it has read `count` from each
/// `(nick, count)`, by sender (other lines are passed over).
fn room_messages(client: &mut PlainClient, from: &[(&str, usize)]) -> HashMap<String, Vec<String>> {
    let mut got: HashMap<String, Vec<String>> = HashMap::new();
    while from.iter().any(|(nick, count)| got.get(*nick).map_or(0, Vec::len) < *count) {
        let m = client.expect("a message in #here", |m| m.command == "PRIVMSG" && m.params[0] == "#here");
        let sender = m.source.as_deref().and_then(|s| s.split('!').next()).unwrap_or_default().to_owned();
        let Some(id) = m.tag("msgid") else { client.fail("a message without a msgid") };
        got.entry(sender).or_default().push(id.to_owned());
    }
    got
}

/// The node number in a msgid (its last four base32 digits).
fn node_number(msgid: &str) -> u32 {
    let digits = &msgid[msgid.len() - 4..];
    digits.chars().fold(0, |n, c| n * 32 + ALPHABET.find(c).expect("a base32 digit") as u32)
}

#[test]
fn two_nodes_share_rooms_and_private_messages_and_their_msgids_never_collide() {
    let network = Network::new(None);
    let (dir_a, dir_b) = (tempfile::tempdir().expect("a data dir"), tempfile::tempdir().expect("a data dir"));
    let a = network.start("a", dir_a.path());
    let b = network.start("b", dir_b.path());
    let (view_a, _) = wait_for_nodes(dir_a.path(), &["a", "b"], WAIT);
    let (view_b, _) = wait_for_nodes(dir_b.path(), &["a", "b"], WAIT);
    for (view, me) in [(&view_a, "a"), (&view_b, "b")] {
        assert_eq!(view["node"], me);
        assert_eq!(view["state"], "serving");
        let marked: Vec<&str> = view["nodes"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|n| n["this"] == true)
            .filter_map(|n| n["node"].as_str())
            .collect();
        assert_eq!(marked, [me], "exactly this node is marked: {view:#}");
    }
    let id_a = view_a["node_id"].as_u64().expect("a's number");
    let id_b = view_b["node_id"].as_u64().expect("b's number");
    assert_ne!(id_a, id_b, "two live nodes never share a node number");
    // Each node knows the other's number from its heartbeat.
    let b_seen_by_a = view_a["nodes"].as_array().into_iter().flatten().find(|n| n["node"] == "b").expect("b listed");
    assert_eq!(b_seen_by_a["node_id"].as_u64(), Some(id_b));
    assert_eq!(b_seen_by_a["incarnation"], view_b["incarnation"]);
    let text = String::from_utf8_lossy(&admin(dir_a.path(), &["nodes"]).stdout).into_owned();
    assert!(text.contains("this node") && text.contains("2 live node(s)"), "the table: {text}");

    let mut on_a = user(a.plaintext[0], "alice");
    let mut on_b = user(b.plaintext[0], "bob");
    // bob's JOIN reaches alice through the log.
    on_a.expect("bob's JOIN", |m| m.command == "JOIN" && m.source.as_deref().is_some_and(|s| s.starts_with("bob!")));
    // Within the flood budget (a burst of 30 commands). Each gets its own echoes and the
    // other's messages, in the order sent, with the sender's msgids.
    for n in 0..20 {
        on_a.send(&format!("PRIVMSG #here :message {n}"));
        on_b.send(&format!("PRIVMSG #here :message {n}"));
    }
    let seen_by_a = room_messages(&mut on_a, &[("alice", 20), ("bob", 20)]);
    let seen_by_b = room_messages(&mut on_b, &[("alice", 20), ("bob", 20)]);
    assert_eq!(seen_by_a, seen_by_b, "both nodes deliver every message, each sender's in order");
    let (from_a, from_b) = (&seen_by_a["alice"], &seen_by_a["bob"]);
    // A private message to a user on the other node.
    on_a.send("PRIVMSG bob :psst");
    let pm = on_b.expect("alice's private message", |m| m.command == "PRIVMSG" && m.params[0] == "bob");
    assert_eq!(pm.params[1], "psst");
    assert!(from_a.iter().all(|id| u64::from(node_number(id)) == id_a), "a's msgids carry a's number: {from_a:?}");
    assert!(from_b.iter().all(|id| u64::from(node_number(id)) == id_b), "b's msgids carry b's number: {from_b:?}");
    let all: HashSet<&String> = from_a.iter().chain(from_b).collect();
    assert_eq!(all.len(), from_a.len() + from_b.len(), "no msgid was handed out twice");
}

#[test]
fn a_second_node_under_a_live_nodes_name_is_refused() {
    let network = Network::new(None);
    let (dir_a, dir_b) = (tempfile::tempdir().expect("a data dir"), tempfile::tempdir().expect("a data dir"));
    let _a = network.start("a", dir_a.path());
    wait_for_nodes(dir_a.path(), &["a"], WAIT);
    let mut second = Command::new(env!("CARGO_BIN_EXE_chinwag"));
    second
        .arg("serve")
        .args(network.args("a"))
        .arg("--data-dir")
        .arg(dir_b.path())
        .args(["--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--no-web", "--discovery", "off"])
        .env("NO_COLOR", "1")
        .env_remove("CHINWAG_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = second.spawn().expect("start the second node");
    // It waits up to twice the TTL for the name to come free, then gives up.
    let limit = TEST_HEARTBEAT_TTL * 2 + WAIT;
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for the second node") {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().expect("its output");
            panic!(
                "a second node named a kept running for {limit:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(POLL_INTERVAL);
    };
    let out = child.wait_with_output().expect("its output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "the second node must fail; it said: {stderr}");
    assert!(stderr.contains("another node named a is alive"), "it says why: {stderr}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("is running"), "it never started serving");
    // The first node goes on, alone in the network.
    let (view, _) = wait_for_nodes(dir_a.path(), &["a"], WAIT);
    assert_eq!(view["state"], "serving");
}

#[test]
fn a_killed_node_is_seen_gone_within_the_ttl_and_its_death_logged_once() {
    let network = Network::new(None);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let _a = network.start("a", dirs[0].path());
    let _b = network.start("b", dirs[1].path());
    let mut c = network.start("c", dirs[2].path());
    wait_for_nodes(dirs[0].path(), &["a", "b", "c"], WAIT);
    wait_for_nodes(dirs[1].path(), &["a", "b", "c"], WAIT);
    let incarnation = nodes(dirs[2].path())["incarnation"].as_str().expect("c's incarnation").to_owned();
    c.kill_9();
    let killed = Instant::now();
    // The heartbeat expires after the TTL; each node polls every second.
    let limit = TEST_HEARTBEAT_TTL + Duration::from_secs(1) + Duration::from_millis(1500);
    wait_for_nodes(dirs[0].path(), &["a", "b"], WAIT);
    let seen = killed.elapsed();
    assert!(seen <= limit, "a saw c gone after {seen:?}, more than the TTL and a poll ({limit:?})");
    wait_for_nodes(dirs[1].path(), &["a", "b"], WAIT);
    // Both survivors saw it die; the log holds its NodeGone once.
    let incarnation = u64::from_str_radix(&incarnation, 16).expect("the incarnation in hex");
    let expected = Some(("c".to_owned(), incarnation));
    let gone_entries =
        |log: &[bytes::Bytes]| log.iter().filter(|e| chinwag_core::read_node_gone(e) == expected).count();
    let deadline = Instant::now() + WAIT;
    loop {
        let log = network.log();
        let gone = gone_entries(&log);
        assert!(gone <= 1, "NodeGone appended {gone} times: {log:?}");
        if gone == 1 {
            // And not again at a later poll of either survivor.
            std::thread::sleep(Duration::from_millis(2500));
            let log = network.log();
            assert_eq!(gone_entries(&log), 1, "NodeGone once: {log:?}");
            break;
        }
        assert!(Instant::now() < deadline, "no NodeGone for c in the log: {log:?}");
        std::thread::sleep(POLL_INTERVAL);
    }
}

#[test]
fn a_node_cut_off_from_nats_drops_its_users_and_serves_again_once_it_is_back() {
    let store = tempfile::tempdir().expect("a directory for NATS");
    let mut nats = OwnNatsServer::start(store.path());
    let network = Network::new(Some(&nats.url()));
    let dir = tempfile::tempdir().expect("a data dir");
    let a = network.start("a", dir.path());
    let metrics = a.metrics.expect("a metrics listener");
    let (before, _) = wait_for_nodes(dir.path(), &["a"], WAIT);
    assert_eq!(http_get(metrics, "/readyz").0, 200);
    let mut alice = user(a.plaintext[0], "alice");

    nats.kill();
    let cut = Instant::now();
    let error = alice.expect("the ERROR", |m| m.command == "ERROR");
    assert_eq!(error.params.last().map(String::as_str), Some(LOST));
    // The grace is three fifths of the TTL, counted from the last acknowledged heartbeat.
    assert!(cut.elapsed() < TEST_HEARTBEAT_TTL + Duration::from_secs(1), "dropped after {:?}", cut.elapsed());
    assert!(matches!(alice.read(Instant::now() + WAIT), Incoming::Closed), "then the connection closes");
    let (status, body) = http_get(metrics, "/readyz");
    assert_eq!((status, body.trim()), (503, "cut off from the cluster bus: users dropped, joining again"));
    assert!(http_get(metrics, "/metrics").1.contains("chinwag_cluster_state 2"));
    let view = nodes(dir.path());
    assert_eq!(view["state"], "cut-off", "{view:#}");
    // A new connection is refused, whatever it sends.
    let mut refused = PlainClient::plain(a.plaintext[0], "refused");
    refused.send("NICK refused");
    let error = refused.expect("the ERROR", |m| m.command == "ERROR");
    assert_eq!(error.params.last().map(String::as_str), Some(LOST));

    nats.restart();
    let deadline = Instant::now() + WAIT;
    while http_get(metrics, "/readyz").0 != 200 {
        assert!(Instant::now() < deadline, "not ready again within {WAIT:?} of NATS coming back:\n{}", a.log_tail());
        std::thread::sleep(POLL_INTERVAL);
    }
    let (after, _) = wait_for_nodes(dir.path(), &["a"], WAIT);
    assert_eq!(after["state"], "serving");
    assert_ne!(after["incarnation"], before["incarnation"], "back as a new incarnation");
    assert_eq!(after["node_id"], before["node_id"], "with the same node number");
    assert!(http_get(metrics, "/metrics").1.contains("chinwag_cluster_state 1"));
    let mut again = user(a.plaintext[0], "alice");
    assert_eq!(
        msgids(&mut again, "alice", 1).len(),
        1,
        "users are served again (the nick taken over from the old incarnation)"
    );
}

#[test]
fn admin_nodes_on_a_server_on_its_own_says_it_is_not_a_node() {
    let dir = tempfile::tempdir().expect("a data dir");
    let _server = ServerProcess::start(dir.path(), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let out = admin(dir.path(), &["nodes"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("this server is not a cluster node"));
}

/// The terminal client given the network's nodes (`chinwag chat A --server B`): its node is
/// killed, it moves to another node by itself, rejoins its room there and fills the gap from the
/// network's history; the others see its old session quit within 10 s.
#[test]
fn the_terminal_client_moves_to_another_node_when_its_node_dies() {
    let network = Network::new(None);
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().expect("a data dir")).collect();
    let mut a = network.start("a", dirs[0].path());
    let b = network.start("b", dirs[1].path());
    let c = network.start("c", dirs[2].path());
    wait_for_nodes(dirs[2].path(), &["a", "b", "c"], WAIT);
    let (on_a, on_b, on_c) = (a.tls[0].to_string(), b.tls[0].to_string(), c.tls[0].to_string());
    let homes = tempfile::tempdir().expect("the clients' homes");

    let alice_args =
        [on_a.as_str(), "--server", on_b.as_str(), "--nick", "alice", "--accept-new-cert", "--join", "general"];
    let mut alice = ChatProcess::start("alice", &homes.path().join("alice"), &alice_args, &[]);
    alice.expect(&["[#general] --> alice joined"]);
    let bob_args = [on_c.as_str(), "--nick", "bob", "--accept-new-cert", "--join", "general"];
    let mut bob = ChatProcess::start("bob", &homes.path().join("bob"), &bob_args, &[]);
    bob.expect(&["[#general] --> bob joined"]);
    alice.expect(&["[#general] --> bob joined"]);
    alice.type_line("hello from node a");
    bob.expect(&["[#general] <alice> hello from node a"]);

    a.kill_9();
    let killed = Instant::now();
    alice.expect(&["disconnected"]);
    bob.type_line("said while alice's node was down");
    // The old session's QUIT reaches bob's node within 10 s of the kill.
    bob.expect(&["* alice quit (Node lost)"]);
    let seen = killed.elapsed();
    assert!(seen < Duration::from_secs(10), "the dead node's user quit after {seen:?}");
    // alice is on b now, in the room, with what she missed (live or from history).
    alice.expect(&["trying the next server", on_b.as_str()]);
    alice.expect(&["[#general] <bob> said while alice's node was down"]);
    alice.type_line("back, from node b");
    bob.expect(&["back, from node b"]);
    assert!(alice.finish().success());
    assert!(bob.finish().success());
}
