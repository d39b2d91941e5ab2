//! Counters for `/metrics` and `chinwag admin stats`: atomics only, so counting costs a relaxed
//! add on the hot path and never a lock.
//!
//! Gauges that the core knows (users online, rooms, accounts) are not kept here: they are read
//! from the hub when someone asks, so no message pays for them.

use std::fmt::Write as _;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// How a client is connected.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Transport {
    Plaintext = 0,
    Tls = 1,
    Quic = 2,
    /// The IRC WebSocket (`/ws`), over HTTPS or plain HTTP.
    WebSocket = 3,
}

impl Transport {
    pub const ALL: [Transport; 4] = [Transport::Plaintext, Transport::Tls, Transport::Quic, Transport::WebSocket];
    pub fn name(self) -> &'static str {
        match self {
            Transport::Plaintext => "plaintext",
            Transport::Tls => "tls",
            Transport::Quic => "quic",
            Transport::WebSocket => "websocket",
        }
    }
}

/// Why a connection ended, as operators count it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Disconnect {
    /// The client sent QUIT.
    Quit = 0,
    /// The peer closed the connection or it failed.
    Closed,
    /// No answer to PING, or no registration in time.
    Timeout,
    /// The client did not read its messages.
    SendQ,
    /// The client sent too much.
    Flood,
    /// An operator or administrator killed it.
    Killed,
    /// It matched a server ban (KLINE).
    Banned,
    /// The server stopped.
    Shutdown,
    /// Anything else (bad server password, …).
    Other,
}

impl Disconnect {
    pub const ALL: [Disconnect; 9] = [
        Disconnect::Quit,
        Disconnect::Closed,
        Disconnect::Timeout,
        Disconnect::SendQ,
        Disconnect::Flood,
        Disconnect::Killed,
        Disconnect::Banned,
        Disconnect::Shutdown,
        Disconnect::Other,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Disconnect::Quit => "quit",
            Disconnect::Closed => "closed",
            Disconnect::Timeout => "timeout",
            Disconnect::SendQ => "sendq",
            Disconnect::Flood => "flood",
            Disconnect::Killed => "killed",
            Disconnect::Banned => "banned",
            Disconnect::Shutdown => "shutdown",
            Disconnect::Other => "other",
        }
    }

    /// Classifies the reason the core put in `ERROR :Closing Link: host (reason)`.
    pub fn of_reason(reason: &str) -> Disconnect {
        let r = reason.to_ascii_lowercase();
        if r.starts_with("quit") || r == "client quit" {
            Disconnect::Quit
        } else if r.contains("timeout") || r.contains("timed out") {
            Disconnect::Timeout
        } else if r.contains("sendq") {
            Disconnect::SendQ
        } else if r.contains("flood") {
            Disconnect::Flood
        } else if r.starts_with("killed") {
            Disconnect::Killed
        } else if r.contains("k-lined") || r.contains("banned") {
            Disconnect::Banned
        } else if r.contains("shutting down") {
            Disconnect::Shutdown
        } else if r.starts_with("connection closed") || r.starts_with("read error") {
            Disconnect::Closed
        } else {
            Disconnect::Other
        }
    }
}

/// What the QUIC accept loop did with a connection attempt.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum QuicAttempt {
    /// Its handshake was started.
    Accepted = 0,
    /// It was asked to prove its address first (a stateless Retry).
    Retried,
    /// It was refused: too many handshakes in progress, or its address's limits.
    Refused,
    /// Its handshake did not complete in time.
    TimedOut,
}

impl QuicAttempt {
    pub const ALL: [QuicAttempt; 4] =
        [QuicAttempt::Accepted, QuicAttempt::Retried, QuicAttempt::Refused, QuicAttempt::TimedOut];

    pub fn name(self) -> &'static str {
        match self {
            QuicAttempt::Accepted => "accepted",
            QuicAttempt::Retried => "retried",
            QuicAttempt::Refused => "refused",
            QuicAttempt::TimedOut => "timed_out",
        }
    }
}

/// Upper bounds (seconds) of the store commit latency histogram's buckets.
pub const COMMIT_BUCKETS: [f64; 12] = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5];

/// Every counter of one server process.
#[derive(Debug)]
pub struct Metrics {
    pub started: Instant,
    /// Open connections, by [`Transport`].
    pub open: [AtomicU64; 4],
    /// Connections accepted since start, by [`Transport`].
    pub accepted: [AtomicU64; 4],
    /// IRC lines received from clients.
    pub lines_in: AtomicU64,
    /// Lines queued to clients (each copy of a message to each recipient is one delivery).
    pub lines_out: AtomicU64,
    /// PRIVMSG, NOTICE and TAGMSG received.
    pub chat_in: AtomicU64,
    /// Messages made durable (history and offline queues).
    pub stored: AtomicU64,
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// Wrong passwords (SASL, NickServ, PASS, OPER).
    pub login_failures: AtomicU64,
    /// Password checks run (Argon2id verifications, right or wrong): what an attacker who
    /// guesses costs the server, and what the login throttle bounds.
    pub password_checks: AtomicU64,
    /// By [`Disconnect`].
    pub disconnects: [AtomicU64; 9],
    /// Store commit latency: per-bucket counts (not cumulative), then the overflow bucket.
    commit_buckets: [AtomicU64; 13],
    commit_sum_us: AtomicU64,
    /// False once the server is stopping (`/readyz` then answers 503).
    pub ready: AtomicBool,
    /// QUIC handshakes in progress (accepted, not yet established): the count that
    /// `limits.quic_max_half_open` caps, shared by every QUIC endpoint.
    pub quic_half_open: AtomicU64,
    /// QUIC connection attempts by [`QuicAttempt`].
    pub quic_attempts: [AtomicU64; 4],
    /// The QUIC endpoints, asked at scrape time how many connections they hold (handshakes,
    /// open and closing ones); each leaves the list when its accept loop ends.
    quic_endpoints: Mutex<Vec<quinn::Endpoint>>,
    /// Messages waiting for their commit, and lines held for connections behind them (gauges
    /// the hub sets once a round).
    pub held_messages: AtomicU64,
    pub held_lines: AtomicU64,
    /// What the held messages and lines cost in memory, about.
    pub held_bytes: AtomicU64,
    /// Set while commits fail (the store thread retries them); `/readyz` answers 503 then.
    pub store_failing: AtomicBool,
    /// This node's place in its cluster, a [`crate::cluster::State`] as a number (0: not a
    /// cluster node); `/readyz` answers 503 while it is cut off.
    pub cluster_state: std::sync::atomic::AtomicU8,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        Arc::new(Metrics {
            started: Instant::now(),
            open: Default::default(),
            accepted: Default::default(),
            lines_in: AtomicU64::new(0),
            lines_out: AtomicU64::new(0),
            chat_in: AtomicU64::new(0),
            stored: AtomicU64::new(0),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            login_failures: AtomicU64::new(0),
            password_checks: AtomicU64::new(0),
            disconnects: Default::default(),
            commit_buckets: Default::default(),
            commit_sum_us: AtomicU64::new(0),
            ready: AtomicBool::new(true),
            quic_half_open: AtomicU64::new(0),
            quic_attempts: Default::default(),
            quic_endpoints: Mutex::new(Vec::new()),
            held_messages: AtomicU64::new(0),
            held_lines: AtomicU64::new(0),
            held_bytes: AtomicU64::new(0),
            store_failing: AtomicBool::new(false),
            cluster_state: std::sync::atomic::AtomicU8::new(0),
        })
    }

    pub fn quic_attempt(&self, what: QuicAttempt) {
        self.quic_attempts[what as usize].fetch_add(1, Relaxed);
    }

    /// Counts `endpoint`'s connections in [`Snapshot::quic_connection_states`] until
    /// [`Metrics::forget_quic`].
    pub(crate) fn watch_quic(&self, endpoint: &quinn::Endpoint) {
        lock(&self.quic_endpoints).push(endpoint.clone());
    }

    pub(crate) fn forget_quic(&self, endpoint: &quinn::Endpoint) {
        let addr = endpoint.local_addr().ok();
        lock(&self.quic_endpoints).retain(|e| e.local_addr().ok() != addr);
    }

    pub fn disconnected(&self, why: Disconnect) {
        self.disconnects[why as usize].fetch_add(1, Relaxed);
    }

    pub fn observe_commit(&self, took: Duration, messages: usize) {
        let secs = took.as_secs_f64();
        let bucket = COMMIT_BUCKETS.iter().position(|b| secs <= *b).unwrap_or(COMMIT_BUCKETS.len());
        self.commit_buckets[bucket].fetch_add(1, Relaxed);
        self.commit_sum_us.fetch_add(took.as_micros() as u64, Relaxed);
        self.stored.fetch_add(messages as u64, Relaxed);
    }

    /// Wraps an accepted socket so its bytes are counted and it shows as open while it lives.
    pub fn wrap<S>(self: &Arc<Self>, stream: S, transport: Transport) -> Counted<S> {
        self.open[transport as usize].fetch_add(1, Relaxed);
        self.accepted[transport as usize].fetch_add(1, Relaxed);
        Counted { inner: stream, open: Gauge { metrics: self.clone(), transport } }
    }

    /// A consistent-enough copy of every counter, plus what the hub reported.
    pub fn snapshot(&self, core: CoreCounts) -> Snapshot {
        let get = |a: &AtomicU64| a.load(Relaxed);
        let process = ProcessStats::read();
        Snapshot {
            uptime_seconds: self.started.elapsed().as_secs(),
            connections: Transport::ALL.iter().map(|t| (t.name(), get(&self.open[*t as usize]))).collect(),
            connections_accepted: Transport::ALL.iter().map(|t| (t.name(), get(&self.accepted[*t as usize]))).collect(),
            users_online: core.users,
            unregistered: core.unregistered,
            operators: core.operators,
            accounts: core.accounts,
            rooms: core.rooms,
            messages_in: get(&self.lines_in),
            messages_out: get(&self.lines_out),
            chat_messages_in: get(&self.chat_in),
            messages_stored: get(&self.stored),
            messages_held: get(&self.held_messages),
            lines_held: get(&self.held_lines),
            bytes_held: get(&self.held_bytes),
            store_failing: self.store_failing.load(Relaxed),
            cluster_state: self.cluster_state.load(Relaxed),
            bytes_in: get(&self.bytes_in),
            bytes_out: get(&self.bytes_out),
            login_failures: get(&self.login_failures),
            password_checks: get(&self.password_checks),
            disconnects: Disconnect::ALL.iter().map(|d| (d.name(), get(&self.disconnects[*d as usize]))).collect(),
            commit_buckets: self.commit_buckets.iter().map(get).collect(),
            commit_sum_seconds: get(&self.commit_sum_us) as f64 / 1e6,
            cpu_seconds: process.cpu_seconds,
            resident_memory_bytes: process.resident_bytes,
            quic_half_open: get(&self.quic_half_open),
            quic_attempts: QuicAttempt::ALL.iter().map(|a| (a.name(), get(&self.quic_attempts[*a as usize]))).collect(),
            quic_connection_states: lock(&self.quic_endpoints).iter().map(|e| e.open_connections() as u64).sum(),
        }
    }
}

/// What the core knows, read from the hub on demand.
#[derive(Copy, Clone, Debug, Default, Serialize)]
pub struct CoreCounts {
    pub users: u64,
    pub unregistered: u64,
    pub operators: u64,
    pub accounts: u64,
    pub rooms: u64,
}

/// Everything `/metrics` and `admin stats` show.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    pub uptime_seconds: u64,
    pub connections: Vec<(&'static str, u64)>,
    pub connections_accepted: Vec<(&'static str, u64)>,
    pub users_online: u64,
    pub unregistered: u64,
    pub operators: u64,
    pub accounts: u64,
    pub rooms: u64,
    pub messages_in: u64,
    pub messages_out: u64,
    pub chat_messages_in: u64,
    pub messages_stored: u64,
    /// Messages waiting for their commit, and lines held behind them.
    pub messages_held: u64,
    pub lines_held: u64,
    pub bytes_held: u64,
    /// Commits are failing (and being retried).
    pub store_failing: bool,
    /// 0: not a cluster node; 1: serving; 2: cut off from the cluster bus (users dropped,
    /// joining again).
    pub cluster_state: u8,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub login_failures: u64,
    /// Password checks run (Argon2id verifications).
    pub password_checks: u64,
    pub disconnects: Vec<(&'static str, u64)>,
    /// Per bucket of [`COMMIT_BUCKETS`], then +Inf; not cumulative.
    pub commit_buckets: Vec<u64>,
    pub commit_sum_seconds: f64,
    pub cpu_seconds: Option<f64>,
    pub resident_memory_bytes: Option<u64>,
    /// QUIC handshakes in progress.
    pub quic_half_open: u64,
    /// QUIC connection attempts by [`QuicAttempt`].
    pub quic_attempts: Vec<(&'static str, u64)>,
    /// Connections quinn holds state for: handshakes, open connections and closing ones.
    pub quic_connection_states: u64,
}

impl Snapshot {
    /// The Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self) -> String {
        let mut out = String::with_capacity(4096);
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(String, String)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, value) in samples {
                let _ = writeln!(out, "{name}{labels} {value}");
            }
        };
        let one = |v: u64| vec![(String::new(), v.to_string())];
        let by = |label: &str, pairs: &[(&str, u64)]| -> Vec<(String, String)> {
            pairs.iter().map(|(k, v)| (format!("{{{label}=\"{k}\"}}"), v.to_string())).collect()
        };
        metric("chinwag_uptime_seconds", "gauge", "Seconds since the server started.", &one(self.uptime_seconds));
        metric(
            "chinwag_connections",
            "gauge",
            "Open client connections by transport.",
            &by("transport", &self.connections),
        );
        metric(
            "chinwag_connections_accepted_total",
            "counter",
            "Client connections accepted by transport.",
            &by("transport", &self.connections_accepted),
        );
        metric("chinwag_users_online", "gauge", "Registered users connected.", &one(self.users_online));
        metric("chinwag_operators_online", "gauge", "IRC operators connected.", &one(self.operators));
        metric("chinwag_accounts", "gauge", "Registered accounts.", &one(self.accounts));
        metric("chinwag_rooms", "gauge", "Rooms that exist.", &one(self.rooms));
        metric("chinwag_messages_in_total", "counter", "IRC lines received from clients.", &one(self.messages_in));
        metric(
            "chinwag_messages_out_total",
            "counter",
            "IRC lines queued to clients (deliveries: one per recipient).",
            &one(self.messages_out),
        );
        metric(
            "chinwag_chat_messages_in_total",
            "counter",
            "PRIVMSG, NOTICE and TAGMSG received.",
            &one(self.chat_messages_in),
        );
        metric(
            "chinwag_messages_stored_total",
            "counter",
            "Messages committed to the store.",
            &one(self.messages_stored),
        );
        metric("chinwag_messages_held", "gauge", "Messages waiting for their commit.", &one(self.messages_held));
        metric(
            "chinwag_lines_held",
            "gauge",
            "Lines held for connections until the messages they follow are committed.",
            &one(self.lines_held),
        );
        metric(
            "chinwag_held_bytes",
            "gauge",
            "Memory held for commits, about (new messages are refused past storage.max_held_kib).",
            &one(self.bytes_held),
        );
        metric(
            "chinwag_store_failing",
            "gauge",
            "1 while commits fail and are being retried.",
            &one(u64::from(self.store_failing)),
        );
        metric(
            "chinwag_cluster_state",
            "gauge",
            "0: not a cluster node; 1: a node serving; 2: cut off from the cluster bus (users dropped, new connections refused, joining again).",
            &one(u64::from(self.cluster_state)),
        );
        metric("chinwag_bytes_in_total", "counter", "Bytes read from client sockets.", &one(self.bytes_in));
        metric("chinwag_bytes_out_total", "counter", "Bytes written to client sockets.", &one(self.bytes_out));
        metric(
            "chinwag_login_failures_total",
            "counter",
            "Logins refused for a wrong password.",
            &one(self.login_failures),
        );
        metric(
            "chinwag_password_checks_total",
            "counter",
            "Password checks run (Argon2id verifications), right or wrong.",
            &one(self.password_checks),
        );
        metric(
            "chinwag_disconnects_total",
            "counter",
            "Connections ended, by reason.",
            &by("reason", &self.disconnects),
        );
        metric(
            "chinwag_quic_half_open",
            "gauge",
            "QUIC handshakes in progress (accepted, not yet established).",
            &one(self.quic_half_open),
        );
        metric(
            "chinwag_quic_attempts_total",
            "counter",
            "QUIC connection attempts: handshakes started, sent a Retry, refused, timed out.",
            &by("outcome", &self.quic_attempts),
        );
        metric(
            "chinwag_quic_connection_states",
            "gauge",
            "QUIC connections the endpoints hold state for (handshakes, open, closing).",
            &one(self.quic_connection_states),
        );
        let mut samples = Vec::new();
        let mut cumulative = 0;
        for (i, count) in self.commit_buckets.iter().enumerate() {
            cumulative += count;
            let le = COMMIT_BUCKETS.get(i).map_or("+Inf".to_owned(), |b| b.to_string());
            samples.push((format!("_bucket{{le=\"{le}\"}}"), cumulative.to_string()));
        }
        samples.push(("_sum".into(), self.commit_sum_seconds.to_string()));
        samples.push(("_count".into(), cumulative.to_string()));
        metric(
            "chinwag_store_commit_seconds",
            "histogram",
            "Time to commit a batch of messages to the store.",
            &samples,
        );
        if let Some(cpu) = self.cpu_seconds {
            metric(
                "process_cpu_seconds_total",
                "counter",
                "CPU time used by the process.",
                &[(String::new(), cpu.to_string())],
            );
        }
        if let Some(rss) = self.resident_memory_bytes {
            metric("process_resident_memory_bytes", "gauge", "Resident memory of the process.", &one(rss));
        }
        out
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The list is only pushed to and filtered; a panic elsewhere cannot leave it half-changed.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// CPU and memory of this process, from /proc (Linux); `None` elsewhere.
#[derive(Debug, Default)]
struct ProcessStats {
    cpu_seconds: Option<f64>,
    resident_bytes: Option<u64>,
}

/// Clock ticks per second in /proc/self/stat; 100 on every Linux platform chinwag targets.
const CLOCK_TICKS: f64 = 100.0;

impl ProcessStats {
    fn read() -> ProcessStats {
        let cpu_seconds = std::fs::read_to_string("/proc/self/stat").ok().and_then(|s| {
            // Fields after the command name (which may hold spaces) start after the last ')'.
            let rest = &s[s.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = fields.get(11)?.parse().ok()?;
            let stime: f64 = fields.get(12)?.parse().ok()?;
            Some((utime + stime) / CLOCK_TICKS)
        });
        let resident_bytes = std::fs::read_to_string("/proc/self/status").ok().and_then(|s| {
            let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        });
        ProcessStats { cpu_seconds, resident_bytes }
    }
}

/// A socket whose bytes are counted; it counts as open until dropped.
#[derive(Debug)]
pub struct Counted<S> {
    inner: S,
    open: Gauge,
}

/// One open connection in [`Metrics::open`], until dropped.
#[derive(Debug)]
struct Gauge {
    metrics: Arc<Metrics>,
    transport: Transport,
}

impl Drop for Gauge {
    fn drop(&mut self) {
        self.metrics.open[self.transport as usize].fetch_sub(1, Relaxed);
    }
}

impl<S> Counted<S> {
    /// Splits the socket: the first part keeps the count (the connection is open until it is
    /// dropped) and its bytes in are counted; the caller counts the second part's bytes.
    pub fn split<T, U>(self, f: impl FnOnce(S) -> (T, U)) -> (Counted<T>, U) {
        let Counted { inner, open } = self;
        let (first, second) = f(inner);
        (Counted { inner: first, open }, second)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        let read = buf.filled().len() - before;
        if read > 0 {
            self.open.metrics.bytes_in.fetch_add(read as u64, Relaxed);
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &polled {
            self.open.metrics.bytes_out.fetch_add(*n as u64, Relaxed);
        }
        polled
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
