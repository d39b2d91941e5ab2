//! Graceful shutdown: SIGTERM while clients send, and `chinwag admin shutdown`.
//!
//! The promise: on SIGTERM the server stops accepting, tells every client why (`ERROR` with the
//! reason), lets what is queued drain and the store flush, and exits 0 within its grace period;
//! nothing a client saw acknowledged (echoed) is missing from history afterwards.

mod support;

use std::collections::HashSet;
use std::io::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use chinwag_store::{HistoryQuery, SqliteOptions, SqliteStore, Store as _};
use support::client::{Incoming, PlainClient};
use support::process::ServerProcess;
use support::WAIT;

/// Clients sending at once.
const CLIENTS: usize = 3;
/// Echoes seen (all clients together) before SIGTERM.
const STOP_AFTER_ECHOES: usize = 300;
/// A bound on each sender's loop; the shutdown comes long before it.
const MAX_PER_CLIENT: usize = 20_000;
/// Messages a sender may have unechoed, so SendQ never overflows.
const WINDOW: usize = 50;
/// The grace period given to the server.
const GRACE_SECONDS: u64 = 5;

#[test]
fn sigterm_under_traffic_tells_clients_why_exits_0_and_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().expect("temp dir");
    let grace = format!("shutdown.grace_seconds={GRACE_SECONDS}");
    // Load, not a flood: the senders must not be slowed by the per-client command budget.
    let flags = ["--set", &grace, "--no-flood-limit"];
    let mut server = ServerProcess::start_with(dir.path(), &["127.0.0.1:0"], &["127.0.0.1:0"], &flags);
    let echoes = Echoes::default();
    let stop_sending = AtomicBool::new(false);

    let reports: Vec<(HashSet<String>, Option<String>)> = thread::scope(|scope| {
        let mut handles = Vec::new();
        for index in 0..CLIENTS {
            let addr = server.plaintext[0];
            let (echoes, stop_sending) = (&echoes, &stop_sending);
            handles.push(scope.spawn(move || run_client(index, addr, echoes, stop_sending)));
        }
        echoes.wait_for(STOP_AFTER_ECHOES);
        server.signal("TERM");
        let signalled = Instant::now();
        let status = server.wait_exit(Duration::from_secs(GRACE_SECONDS + 5));
        println!("exited {:?} after SIGTERM", signalled.elapsed());
        stop_sending.store(true, Ordering::SeqCst);
        let status =
            status.unwrap_or_else(|| panic!("no exit within the grace period; output:\n{}", server.log_tail()));
        assert!(status.success(), "exit status {status}; output:\n{}", server.log_tail());
        handles.into_iter().map(|h| h.join().expect("client thread")).collect()
    });

    for (index, (_, error)) in reports.iter().enumerate() {
        let error = error.as_deref().unwrap_or_else(|| panic!("client {index} got no ERROR before the close"));
        assert!(error.contains("Server shutting down"), "client {index}'s ERROR: {error}");
    }
    let acknowledged: HashSet<String> = reports.iter().flat_map(|(texts, _)| texts.iter().cloned()).collect();
    assert!(acknowledged.len() >= STOP_AFTER_ECHOES);

    let mut store = SqliteStore::open(&dir.path().join("chinwag.db"), SqliteOptions::default()).expect("open the db");
    let stored: HashSet<String> = store
        .history("#general", &HistoryQuery::Latest { after: None }, CLIENTS * MAX_PER_CLIENT)
        .expect("read history")
        .into_iter()
        .map(|m| m.text)
        .collect();
    println!("{} messages acknowledged, {} in history", acknowledged.len(), stored.len());
    let lost: Vec<&String> = acknowledged.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(lost.is_empty(), "{} acknowledged message(s) missing from history, e.g. {:?}", lost.len(), lost.first());
}

/// Echoes seen by all clients, and a way to wait for a number of them.
#[derive(Default)]
struct Echoes {
    count: Mutex<usize>,
    grew: Condvar,
}

impl Echoes {
    fn add_one(&self) {
        *self.count.lock().unwrap_or_else(|p| p.into_inner()) += 1;
        self.grew.notify_all();
    }

    fn wait_for(&self, n: usize) {
        let count = self.count.lock().unwrap_or_else(|p| p.into_inner());
        let (count, timeout) = self.grew.wait_timeout_while(count, WAIT, |c| *c < n).unwrap_or_else(|p| p.into_inner());
        assert!(!timeout.timed_out(), "only {} echoes within {WAIT:?}", *count);
    }
}

/// Sends numbered messages (at most [`WINDOW`] unechoed) and records each echo; returns the
/// echoed texts and the ERROR line's text.
fn run_client(
    index: usize,
    addr: std::net::SocketAddr,
    echoes: &Echoes,
    stop_sending: &AtomicBool,
) -> (HashSet<String>, Option<String>) {
    let nick = format!("sender{index}");
    let mut client = PlainClient::plain(addr, &nick);
    client.request_caps("echo-message");
    client.send("CAP END");
    client.register(&nick);
    client.join("#general");
    let mut writer = client.socket().try_clone().expect("clone socket");
    let mut echoed = HashSet::new();
    let mut error = None;
    let (mut sent, mut seen) = (0usize, 0usize);
    let deadline = Instant::now() + WAIT * 2;
    loop {
        while sent < MAX_PER_CLIENT && sent - seen < WINDOW && !stop_sending.load(Ordering::SeqCst) {
            let line = format!("PRIVMSG #general :message {index}-{sent}\r\n");
            if writer.write_all(line.as_bytes()).is_err() {
                break;
            }
            sent += 1;
        }
        assert!(Instant::now() < deadline, "{nick}: the connection was never closed");
        match client.read(Instant::now() + Duration::from_millis(200)) {
            Incoming::Line(m)
                if m.command == "PRIVMSG" && m.source.as_deref().is_some_and(|s| s.starts_with(&nick)) =>
            {
                seen += 1;
                echoed.insert(m.params[1].clone());
                echoes.add_one();
            }
            Incoming::Line(m) if m.command == "ERROR" => error = m.params.first().cloned(),
            Incoming::Line(_) | Incoming::TimedOut => {}
            Incoming::Closed | Incoming::Failed(_) => return (echoed, error),
        }
    }
}

#[test]
fn admin_shutdown_with_a_grace_period_stops_the_server_with_exit_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path(), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let mut client = PlainClient::plain(server.plaintext[0], "watcher");
    client.register("watcher");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .args(["shutdown", "--grace", "3", "maintenance", "window"])
        .output()
        .expect("run chinwag admin");
    assert!(output.status.success(), "admin shutdown: {}", String::from_utf8_lossy(&output.stderr));
    let error = client.expect_command("ERROR");
    assert!(error.params[0].contains("maintenance window"), "{error:?}");
    let status = server.wait_exit(Duration::from_secs(8)).expect("the server exits within its grace period");
    assert!(status.success(), "exit status {status}");
    assert!(!dir.path().join("control.sock").exists(), "the control socket is removed at exit");
}

#[test]
fn a_second_sigterm_stops_at_once_while_a_client_is_still_draining() {
    let dir = tempfile::tempdir().expect("temp dir");
    let args = ["--set", "shutdown.grace_seconds=60", "--sendq", "1000000", "--no-flood-limit"];
    let mut server = ServerProcess::start_with(dir.path(), &["127.0.0.1:0"], &["127.0.0.1:0"], &args);
    // A client that asks for far more than the socket buffers hold and never reads: at the
    // stop, its writer is stuck behind tens of megabytes.
    let mut stuck = std::net::TcpStream::connect(server.plaintext[0]).expect("connect");
    stuck.write_all(b"NICK stuck\r\nUSER stuck 0 * :stuck\r\n").expect("register");
    let burst = "MOTD\r\n".repeat(100_000);
    stuck.write_all(burst.as_bytes()).expect("ask for the MOTD many times");
    // A half-open TLS connection must not hold the stop up either.
    let _idle = std::net::TcpStream::connect(server.tls[0]).expect("connect to TLS");
    // Once the server has read the whole burst, tens of megabytes wait for the stuck client.
    let deadline = Instant::now() + WAIT;
    loop {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .args(["admin", "--json", "--data-dir"])
            .arg(dir.path())
            .arg("stats")
            .output()
            .expect("admin stats");
        let stats: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON stats");
        if stats["messages_in"].as_u64().is_some_and(|n| n >= 100_002) {
            break;
        }
        assert!(Instant::now() < deadline, "the server did not read the burst: {stats}");
    }

    server.signal("TERM");
    assert!(
        server.wait_exit(Duration::from_secs(2)).is_none(),
        "the first SIGTERM waits for the draining client (up to the 60 s grace)"
    );
    server.signal("TERM");
    let started = Instant::now();
    let status = server.wait_exit(Duration::from_secs(5));
    assert!(status.is_some(), "a second SIGTERM stops at once; output:\n{}", server.log_tail());
    println!("stopped {:?} after the second signal: {status:?}", started.elapsed());
    assert!(
        status.is_some_and(|s| s.success()),
        "nothing was left unflushed (the store was done), so the exit is 0; output:\n{}",
        server.log_tail()
    );
    drop(stuck);
}
