//! Cluster nodes for tests: a network's throwaway NATS namespace and PostgreSQL database
//! ([`Network`]), real `chinwag serve` processes joined to it ([`Node`]), what `chinwag admin
//! nodes` and the metrics listener say of a node, and a TCP relay between one node and NATS that
//! a test can cut and mend ([`NatsRelay`]), so that one node loses NATS while the others keep it.
//!
//! [`Network::start`] returns once the node answers `/readyz` (it has read the network's log and
//! takes connections).

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use chinwag_bus::test_nats::{TestNetwork, TEST_HEARTBEAT_TTL};
use chinwag_bus::{Bus, NatsOptions};
use chinwag_store::test_db::TestDatabase;
use futures_util::StreamExt;
use serde_json::Value;

use super::process::ServerProcess;
use super::{admin, POLL_INTERVAL, WAIT};

/// What a node's user is told when the node loses the network.
pub const LOST: &str = "Lost the network; reconnect (another node will take you)";
/// How long the relay waits for NATS to accept a connection.
const RELAY_CONNECT: Duration = Duration::from_secs(2);

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime for the NATS set-up")
}

/// A network's namespace and database, and the runtime its NATS handles need. Dropping it
/// deletes both.
pub struct Network {
    nats: TestNetwork,
    db: TestDatabase,
    runtime: tokio::runtime::Runtime,
}

impl Network {
    /// A network on the NATS at `url` (the machine's when `None`) with the tests' short
    /// heartbeat TTL ([`TEST_HEARTBEAT_TTL`]).
    pub fn new(url: Option<&str>) -> Network {
        Network::with_ttl(url, TEST_HEARTBEAT_TTL)
    }

    /// A network whose heartbeat TTL is `ttl`: the first connection makes the heartbeat bucket,
    /// and every node takes the bucket's TTL.
    pub fn with_ttl(url: Option<&str>, ttl: Duration) -> Network {
        let runtime = runtime();
        let url = url.map_or_else(chinwag_bus::test_nats::test_url, str::to_owned);
        let nats = runtime.block_on(TestNetwork::with_ttl(&url, ttl));
        Network { nats, db: TestDatabase::create(), runtime }
    }

    /// How nodes reach NATS, the cluster name, the heartbeat TTL.
    pub fn options(&self) -> &NatsOptions {
        self.nats.options()
    }

    /// The network's PostgreSQL database.
    pub fn db(&self) -> &TestDatabase {
        &self.db
    }

    /// `chinwag serve` arguments for node `name`.
    pub fn args(&self, name: &str) -> Vec<String> {
        self.args_via(name, &self.options().url)
    }

    /// `chinwag serve` arguments for node `name` reaching NATS at `url` (a relay, say).
    pub fn args_via(&self, name: &str, url: &str) -> Vec<String> {
        let cluster = self.options().cluster.to_string();
        let args = [
            "--cluster",
            url,
            "--cluster-name",
            &cluster,
            "--node-name",
            name,
            "--store",
            self.db.url(),
            "--metrics-listen",
            "127.0.0.1:0",
        ];
        args.iter().map(|s| (*s).to_owned()).collect()
    }

    /// Starts node `name` on data directory `dir`, with `extra` arguments.
    pub fn start(&self, name: &str, dir: &Path, extra: &[&str]) -> ServerProcess {
        self.start_via(name, dir, &self.options().url, extra)
    }

    /// Starts node `name`, reaching NATS at `url`.
    pub fn start_via(&self, name: &str, dir: &Path, url: &str, extra: &[&str]) -> ServerProcess {
        let mut args = self.args_via(name, url);
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let node = ServerProcess::start_with(dir, &["127.0.0.1:0"], &["127.0.0.1:0"], &args);
        // A node takes connections once it has read the network's log (`/readyz`).
        let metrics = node.metrics.expect("the node's metrics listener");
        let deadline = Instant::now() + WAIT;
        while http_get(metrics, "/readyz").0 != 200 {
            assert!(Instant::now() < deadline, "node {name} not ready within {WAIT:?}:\n{}", node.log_tail());
            std::thread::sleep(POLL_INTERVAL);
        }
        node
    }

    /// Starts the nodes `names` at once (each waits for its own banner), each with a data
    /// directory of its own, and waits until every one lists them all.
    pub fn start_nodes(&self, names: &[&str], extra: &[&str]) -> Vec<Node> {
        let nodes: Vec<Node> = thread::scope(|scope| {
            let started: Vec<_> = names.iter().map(|name| scope.spawn(move || self.node(name, extra))).collect();
            started
                .into_iter()
                .map(|handle| handle.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        for node in &nodes {
            node.wait_for_nodes(names, WAIT);
        }
        nodes
    }

    /// Starts node `name` with a data directory of its own.
    pub fn node(&self, name: &str, extra: &[&str]) -> Node {
        let dir = tempfile::tempdir().expect("a data dir");
        let process = self.start(name, dir.path(), extra);
        Node { name: name.to_owned(), process, dir }
    }

    /// Every entry of the network's log, read from its start.
    pub fn log(&self) -> Vec<bytes::Bytes> {
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

/// A running node. Fields drop in order: the process is killed before its directory goes.
pub struct Node {
    /// Its `--node-name`.
    pub name: String,
    pub process: ServerProcess,
    /// Its data directory (the control socket `chinwag admin` talks to is there).
    pub dir: tempfile::TempDir,
}

impl Node {
    /// Its first plaintext listener.
    pub fn addr(&self) -> SocketAddr {
        self.process.plaintext[0]
    }

    /// Its metrics listener (`/readyz`, `/metrics`).
    pub fn metrics(&self) -> SocketAddr {
        self.process.metrics.expect("a node is started with a metrics listener")
    }

    /// `admin --json nodes` on this node.
    pub fn nodes(&self) -> Value {
        nodes(self.dir.path())
    }

    /// Waits (at most `limit`) until this node lists exactly `expected`.
    pub fn wait_for_nodes(&self, expected: &[&str], limit: Duration) -> (Value, Duration) {
        wait_for_nodes(self.dir.path(), expected, limit)
    }

    /// Waits (at most `limit`) until `/readyz` answers 200; returns how long it took.
    pub fn wait_ready(&self, limit: Duration) -> Duration {
        let started = Instant::now();
        while http_get(self.metrics(), "/readyz").0 != 200 {
            assert!(
                started.elapsed() < limit,
                "node {} not ready within {limit:?}:\n{}",
                self.name,
                self.process.log_tail()
            );
            thread::sleep(POLL_INTERVAL);
        }
        started.elapsed()
    }
}

/// `admin --json nodes` on the node with data directory `dir`.
pub fn nodes(dir: &Path) -> Value {
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
pub fn names(view: &Value) -> Vec<String> {
    view["nodes"].as_array().into_iter().flatten().filter_map(|n| n["node"].as_str().map(str::to_owned)).collect()
}

/// Waits (at most `limit`) until `dir`'s node lists exactly `expected`; returns its answer and
/// how long it took.
pub fn wait_for_nodes(dir: &Path, expected: &[&str], limit: Duration) -> (Value, Duration) {
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
        thread::sleep(POLL_INTERVAL);
    }
}

/// `GET path` on a metrics listener: the status code and the body.
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the metrics listener");
    stream.set_read_timeout(Some(WAIT)).expect("set a read timeout");
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").expect("send the request");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    let status = answer.split(' ').nth(1).and_then(|code| code.parse().ok()).unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body.to_owned()).unwrap_or_default();
    (status, body)
}

/// A TCP relay on a loopback port in front of a NATS server, for one node: cut, it closes every
/// connection it carries and closes each new one at once (the node's NATS client sees its
/// server gone and keeps trying), while every other node keeps its own NATS connection; mended,
/// it carries connections again. Dropping it closes everything.
pub struct NatsRelay {
    addr: SocketAddr,
    state: Arc<RelayState>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the relay's threads share.
#[derive(Default)]
struct RelayState {
    /// Cut: carry nothing.
    cut: AtomicBool,
    /// Dropped: the acceptor ends.
    closing: AtomicBool,
    /// Both ends of every connection carried since the last cut.
    streams: Mutex<Vec<TcpStream>>,
}

impl RelayState {
    fn close_all(&self) {
        let streams = std::mem::take(&mut *self.streams.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        for stream in streams {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl NatsRelay {
    /// A relay to the NATS at `url` (`nats://HOST:PORT`).
    pub fn start(url: &str) -> NatsRelay {
        let upstream: SocketAddr = url
            .strip_prefix("nats://")
            .and_then(|hostport| hostport.parse().ok())
            .unwrap_or_else(|| panic!("the relay needs a nats://IP:PORT URL, not {url:?}"));
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port for the relay");
        let addr = listener.local_addr().expect("the relay's address");
        let state = Arc::new(RelayState::default());
        let shared = Arc::clone(&state);
        let acceptor = thread::spawn(move || {
            for incoming in listener.incoming() {
                if shared.closing.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(client) = incoming else { continue };
                if shared.cut.load(Ordering::SeqCst) {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                }
                let Ok(server) = TcpStream::connect_timeout(&upstream, RELAY_CONNECT) else {
                    let _ = client.shutdown(Shutdown::Both);
                    continue;
                };
                let (Ok(client_copy), Ok(server_copy)) = (client.try_clone(), server.try_clone()) else { continue };
                let (Ok(client_kept), Ok(server_kept)) = (client.try_clone(), server.try_clone()) else { continue };
                shared
                    .streams
                    .lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .extend([client_kept, server_kept]);
                thread::spawn(move || pump(client, server));
                thread::spawn(move || pump(server_copy, client_copy));
            }
        });
        NatsRelay { addr, state, acceptor: Some(acceptor) }
    }

    /// The URL a node behind the relay connects to.
    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }

    /// Cuts the node off: every connection closed, new ones closed at once.
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.close_all();
    }

    /// Carries connections again.
    pub fn mend(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for NatsRelay {
    fn drop(&mut self) {
        self.state.closing.store(true, Ordering::SeqCst);
        self.state.close_all();
        // Wakes the acceptor, which then sees `closing`.
        let _ = TcpStream::connect_timeout(&self.addr, RELAY_CONNECT);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

/// Copies `from` into `to` until either ends, then closes both.
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buffer = [0u8; 16 * 1024];
    loop {
        match from.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if to.write_all(&buffer[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
