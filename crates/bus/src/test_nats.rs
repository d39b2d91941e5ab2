//! NATS for tests: a throwaway cluster namespace on the machine's NATS ([`TestNetwork`], from
//! `CHINWAG_TEST_NATS`, default [`DEFAULT_TEST_NATS`]), whose stream and buckets are deleted
//! when it is dropped (also when the test panics), so tests can run in parallel; and a
//! `nats-server` of a test's own ([`OwnNatsServer`]) for restarting under a node.
//!
//! A test that needs NATS and cannot reach it fails, saying what it needs; it never skips.

use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::conformance::Network;
use crate::nats::Names;
use crate::{Name, NatsBus, NatsOptions};

/// The NATS server tests use when `CHINWAG_TEST_NATS` is not set (JetStream on).
pub const DEFAULT_TEST_NATS: &str = "nats://127.0.0.1:4222";

/// The heartbeat TTL of test networks: short, so that node death is quick to see.
pub const TEST_HEARTBEAT_TTL: Duration = Duration::from_secs(2);

/// The NATS URL tests use.
pub fn test_url() -> String {
    std::env::var("CHINWAG_TEST_NATS").unwrap_or_else(|_| DEFAULT_TEST_NATS.to_owned())
}

/// A cluster name no other test (or earlier run) uses.
pub fn unique_cluster_name() -> Name {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    let name = format!("t{}-{:x}-{}", std::process::id(), nanos, COUNTER.fetch_add(1, Ordering::Relaxed));
    Name::new(&name).expect("a generated cluster name is valid")
}

/// Deletes what earlier test processes of this machine left on NATS when they were killed
/// before their namespaces' `Drop` ran: names made by [`unique_cluster_name`] whose process is
/// gone. Once per process and NATS server; failures are only reported.
async fn sweep_stale_namespaces(url: &str) {
    use futures_util::TryStreamExt;
    static SWEPT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    {
        let mut swept = SWEPT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if swept.iter().any(|done| done == url) {
            return;
        }
        swept.push(url.to_owned());
    }
    let Ok(Ok(client)) = tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url)).await else { return };
    let js = async_nats::jetstream::new(client);
    let names: Vec<String> = match tokio::time::timeout(Duration::from_secs(5), js.stream_names().try_collect()).await {
        Ok(Ok(names)) => names,
        _ => return,
    };
    for stream in names {
        // `t<pid>-<hex>-<n>-log`, `KV_t<pid>-<hex>-<n>-claims`, `KV_t<pid>-<hex>-<n>-nodes`.
        let Some(pid) =
            stream.strip_prefix("KV_").unwrap_or(&stream).strip_prefix('t').and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        let ours = pid.parse::<u32>().is_ok() && ["-log", "-claims", "-nodes"].iter().any(|end| stream.ends_with(end));
        if ours && !Path::new(&format!("/proc/{pid}")).exists() {
            if let Err(e) = js.delete_stream(&stream).await {
                eprintln!("test_nats: could not delete the stale {stream}: {e}");
            }
        }
    }
}

/// A cluster namespace of its own on a NATS server; every [`Network::join`] is a new connection.
#[derive(Debug)]
pub struct TestNetwork {
    /// How nodes connect.
    options: NatsOptions,
}

impl TestNetwork {
    /// A fresh namespace on the machine's NATS. Panics, saying what the tests need, if it does
    /// not answer.
    pub async fn new() -> TestNetwork {
        TestNetwork::on(&test_url()).await
    }

    /// A fresh namespace on the NATS at `url`.
    pub async fn on(url: &str) -> TestNetwork {
        TestNetwork::with_ttl(url, TEST_HEARTBEAT_TTL).await
    }

    /// A fresh namespace on the NATS at `url` whose heartbeat TTL is `ttl` (the first
    /// connection fixes it for every node), for tests of the production timing.
    pub async fn with_ttl(url: &str, ttl: Duration) -> TestNetwork {
        sweep_stale_namespaces(url).await;
        let mut options = NatsOptions::new(url, unique_cluster_name());
        options.heartbeat_ttl = ttl;
        let network = TestNetwork { options };
        // The first connection makes the stream and buckets, and proves NATS is there.
        network.connect().await;
        network
    }

    /// The options nodes connect with (cluster name, URL, TTL).
    pub fn options(&self) -> &NatsOptions {
        &self.options
    }

    /// A node's connection.
    pub async fn connect(&self) -> NatsBus {
        match NatsBus::connect(&self.options).await {
            Ok(bus) => bus,
            Err(e) => panic!(
                "these tests need NATS with JetStream at {} (set CHINWAG_TEST_NATS to another; `.ci/run` \
                 starts one with `nats-server -js -a 127.0.0.1 -p 4222 -sd DIR`): {e}",
                self.options.url
            ),
        }
    }
}

impl Network for TestNetwork {
    type Bus = NatsBus;

    async fn join(&self) -> NatsBus {
        self.connect().await
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        // Dropped on a runtime's thread perhaps, and maybe while panicking: the cleanup gets a
        // thread and a runtime of its own, and its failures are only reported.
        let url = self.options.url.clone();
        let names = Names::of(&self.options.cluster);
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            runtime.block_on(async move {
                let client =
                    tokio::time::timeout(Duration::from_secs(5), async_nats::connect(url.as_str())).await.ok()?.ok()?;
                let js = async_nats::jetstream::new(client);
                let _ = js.delete_stream(&names.log_stream).await;
                let _ = js.delete_key_value(&names.claims_bucket).await;
                let _ = js.delete_key_value(&names.nodes_bucket).await;
                Some(())
            })
        });
        if cleanup.join().ok().flatten().is_none() {
            eprintln!("test_nats: could not delete the test namespace {}", self.options.cluster);
        }
    }
}

/// A `nats-server` with JetStream of the test's own, on a free loopback port, with its storage
/// in a directory that outlives its restarts. Killed when dropped.
#[derive(Debug)]
pub struct OwnNatsServer {
    /// The running process, if any.
    child: Option<Child>,
    /// Its port, the same across restarts.
    port: u16,
    /// JetStream's storage directory.
    store_dir: PathBuf,
}

/// Where the `nats-server` binary is: `CHINWAG_NATS_SERVER`, else `nats-server` on the PATH,
/// else Debian's `/usr/sbin/nats-server`.
fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("CHINWAG_NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|candidate| candidate.is_file());
    on_path.unwrap_or_else(|| PathBuf::from("/usr/sbin/nats-server"))
}

impl OwnNatsServer {
    /// Starts a server storing under `store_dir` and waits (at most 10 s) until it accepts
    /// connections. Panics, saying what is missing, if it cannot.
    pub fn start(store_dir: &Path) -> OwnNatsServer {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free loopback port");
        let mut server = OwnNatsServer { child: None, port, store_dir: store_dir.to_owned() };
        server.restart();
        server
    }

    /// The URL to connect to.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server process's id, while it runs (to read its CPU time).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Kills the server at once (SIGKILL), as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and storage (after [`OwnNatsServer::kill`]) and waits
    /// until it accepts connections.
    pub fn restart(&mut self) {
        self.kill();
        let binary = nats_server_binary();
        let child = Command::new(&binary)
            .args(["-js", "-a", "127.0.0.1", "-p", &self.port.to_string(), "-sd"])
            .arg(&self.store_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("these tests start their own NATS from {} (Debian's nats-server package): {e}", binary.display())
            });
        self.child = Some(child);
        let address = SocketAddr::from((Ipv4Addr::LOCALHOST, self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_err() {
            assert!(Instant::now() < deadline, "the test's own nats-server did not listen on {address} within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for OwnNatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}
