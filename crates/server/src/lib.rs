//! The chinwag server's edges: listeners, TLS, connection tasks, the hub that owns the core, and
//! everything an operator runs it with (configuration, control socket, metrics, logs, shutdown).
//!
//! What it is: everything between sockets and [`chinwag_core::Server`]. [`start`] binds every
//! listener, loads or generates the TLS certificate, and spawns the tasks; the returned
//! [`Running`] tells where it listens, and its [`Control`] stops, reloads and administers it.
//!
//! What it is not: no IRC logic lives here. Commands, replies and state are the core's; this
//! crate only frames bytes into lines, carries out the core's effects and enforces the
//! per-connection bounds (outbound queue, handshake and write timeouts).
//!
//! Layout: `listen.rs` binds and accepts, `limits.rs` decides who may connect (per address,
//! per /64, in total), `conn.rs` runs one connection (reader and writer), `quic.rs` the QUIC
//! transport,
//! `hub.rs` owns the core, `outbox.rs` is a connection's
//! bounded outbound queue, `tls.rs` handles certificates, `config/` is the settings (TOML file,
//! environment, flags), `admin.rs` the administration commands, `control.rs` their Unix socket,
//! `http.rs` the metrics listener, `metrics.rs` the counters, `reload.rs` reloading,
//! `logging.rs` the log files, `bans.rs` server bans on disk,
//! `keys.rs` runs the end-to-end encryption key directory's requests, `web/` the web listener
//! (the web client's files, the IRC WebSocket at `/ws`, health checks), `cluster.rs` a cluster
//! node's runtime (membership, cut-off, the bus ↔ hub bridge).

mod admin;
mod bans;
mod cluster;
mod config;
mod conn;
mod control;
mod directory;
mod files;
mod http;
mod hub;
mod keys;
mod limits;
mod listen;
pub mod logging;
mod metrics;
mod outbox;
mod quic;
mod reload;
mod storage;
mod tls;
mod web;
mod work;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use admin::{AdminReply, HELP as ADMIN_HELP};
pub use bans::BANS_FILE;
pub use config::{
    ClusterConfig, ConfigSource, EdgeLimits, FlagValue, InvalidValue, IpRange, LogSettings, RawConfig, ServerConfig,
    StoreBackend, DEFAULT_CONFIG, DEFAULT_GRACE, DEFAULT_HISTORY_RETENTION_DAYS, DEFAULT_MAX_HELD_BYTES,
    DEFAULT_SENDQ_LINES, ENV_PREFIX,
};
pub use control::{effective_uid, CONTROL_SOCKET};
pub use limits::raise_open_files_limit;
pub use metrics::{Disconnect, Snapshot, Transport};
pub use quic::ALPN as QUIC_ALPN;
pub use tls::fingerprint;
pub use work::{hash_password, verify_password};

/// How long the store thread may take to finish its queued work after the hub is gone.
const STORE_FINISH: Duration = Duration::from_secs(1);

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "chinwag.db";
/// SQLite's write-ahead log and shared-memory index beside it.
const DATABASE_WAL: &str = "chinwag.db-wal";
const DATABASE_SHM: &str = "chinwag.db-shm";

/// A handle to administer a running server: stop it, reload it, run admin commands. Cheap to
/// clone; every clone speaks to the same server.
#[derive(Clone, Debug)]
pub struct Control {
    hub: mpsc::Sender<hub::HubCall>,
    metrics: Arc<metrics::Metrics>,
    reloader: Arc<reload::Reloader>,
    /// Cancelled by the first stop: listeners close, the hub says goodbye and flushes.
    shutdown: CancellationToken,
    /// Cancelled by a second stop: stop waiting for anything.
    force: CancellationToken,
    stop: Arc<Mutex<StopRequest>>,
    /// A cluster node's view of its network (`admin nodes`); `None` on a server on its own.
    cluster: Option<cluster::Status>,
}

#[derive(Debug)]
struct StopRequest {
    /// What every client is told in its ERROR line.
    reason: Arc<Mutex<String>>,
    grace: Duration,
}

impl std::fmt::Debug for hub::Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").finish_non_exhaustive()
    }
}

impl Control {
    /// Stops gracefully: listeners close, every client gets `ERROR` with `reason`, queued lines
    /// drain and the store flushes, for at most `grace` (the configured grace if `None`).
    /// Called while already stopping, it forces: nothing more is waited for.
    pub fn stop(&self, reason: &str, grace: Option<Duration>) {
        if self.shutdown.is_cancelled() {
            tracing::warn!("stopping now, without waiting any longer");
            self.force.cancel();
            return;
        }
        if let Ok(mut stop) = self.stop.lock() {
            if let Ok(mut r) = stop.reason.lock() {
                *r = reason.to_owned();
            }
            if let Some(g) = grace {
                stop.grace = g;
            }
        }
        self.metrics.ready.store(false, Ordering::Relaxed);
        tracing::info!(%reason, "shutting down");
        self.shutdown.cancel();
    }

    /// Re-reads the configuration and applies what can change at run time.
    pub async fn reload(&self, by: &str) -> Result<String> {
        self.reloader.reload(by).await
    }

    /// Runs an admin command (the words of `chinwag admin …`).
    pub async fn execute(&self, args: &[String], by: &str) -> AdminReply {
        admin::execute(self, args, by).await
    }

    /// Counters, and the core's gauges, now.
    pub async fn snapshot(&self) -> Option<Snapshot> {
        admin::stats(self).await.ok()
    }

    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }
}

/// How a server stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StopReport {
    /// Everything acknowledged was committed and the store closed before the grace period ran
    /// out (or a second stop forced the end).
    pub clean: bool,
}

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Plaintext addresses actually bound (ports resolved if 0 was asked for).
    pub plaintext: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    /// QUIC (UDP) addresses actually bound.
    pub quic: Vec<SocketAddr>,
    /// The metrics listener's address, if any.
    pub metrics: Option<SocketAddr>,
    /// The web listeners' addresses: HTTPS, and plain HTTP (for a reverse proxy).
    pub web: Vec<SocketAddr>,
    pub web_plain: Vec<SocketAddr>,
    /// The control socket's path, if it was opened.
    pub control_path: Option<PathBuf>,
    /// The UDP port LAN discovery answers on, if it is on.
    pub discovery_port: Option<u16>,
    /// What the discovery responder did (answers, refusals), for monitoring.
    pub discovery_stats: Option<Arc<chinwag_discovery::Stats>>,
    /// SHA-256 of the TLS certificate, `AB:CD:...`.
    pub fingerprint: String,
    control: Control,
    tracker: TaskTracker,
    hub: Option<tokio::task::JoinHandle<()>>,
    /// Joined at the end of [`Running::wait`], after the hub (the last user) is gone.
    store_thread: Option<std::thread::JoinHandle<()>>,
    /// Set when the stop cannot wait any longer for a failing commit: it gives up.
    store_give_up: Arc<std::sync::atomic::AtomicBool>,
}

impl Running {
    /// A token that stops the server (gracefully, with the configured grace) when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.control.shutdown.clone()
    }

    pub fn control(&self) -> Control {
        self.control.clone()
    }

    /// Stops accepting, says goodbye to every client and waits for all tasks to end.
    pub async fn shutdown(self) -> StopReport {
        self.control.stop("Server shutting down", None);
        self.wait().await
    }

    /// Waits until the server has stopped (after a [`Control::stop`] or the shutdown token).
    pub async fn wait(mut self) -> StopReport {
        let control = self.control.clone();
        control.shutdown.cancelled().await;
        control.metrics.ready.store(false, Ordering::Relaxed);
        let grace = control.stop.lock().map(|s| s.grace).unwrap_or(DEFAULT_GRACE);
        let deadline = tokio::time::Instant::now() + grace;
        let force = control.force.clone();
        let mut clean = true;
        // The hub ends once every client was told goodbye and the last commit returned.
        if let Some(hub) = self.hub.take() {
            tokio::select! {
                _ = hub => {}
                _ = tokio::time::sleep_until(deadline) => {
                    tracing::error!("the store did not finish its last commit within the grace period");
                    self.store_give_up.store(true, Ordering::Relaxed);
                    clean = false;
                }
                _ = force.cancelled() => {
                    self.store_give_up.store(true, Ordering::Relaxed);
                    clean = false;
                }
            }
        }
        self.tracker.close();
        tokio::select! {
            _ = self.tracker.wait() => {}
            _ = tokio::time::sleep_until(deadline) => {
                tracing::warn!("cutting the connections still draining after the grace period");
            }
            _ = force.cancelled() => {}
        }
        drop(self.control);
        if let Some(thread) = self.store_thread.take() {
            // Even a forced stop gives the store a moment to finish what is queued: losing a
            // write is worse than a second's wait.
            let limit = if force.is_cancelled() { tokio::time::Instant::now() } else { deadline } + STORE_FINISH;
            let joined = tokio::task::spawn_blocking(move || thread.join());
            if tokio::time::timeout_at(limit, joined).await.is_err() {
                tracing::error!("the store thread did not finish its queued work in time");
                self.store_give_up.store(true, Ordering::Relaxed);
                clean = false;
            }
        }
        tracing::info!(clean, "stopped");
        StopReport { clean }
    }
}

/// The store and what the server loads from it at start.
struct Opened {
    store: Box<dyn chinwag_store::Store>,
    accounts: Vec<String>,
    rooms: Vec<chinwag_store::ChannelRecord>,
    queued: Vec<(String, u64)>,
}

/// Opens the configured store and reads what the server needs at start. PostgreSQL's client
/// blocks (it runs a small runtime of its own), so it is opened, read and handed over from a
/// blocking thread, never the async runtime's.
async fn open_store(cfg: &ServerConfig, db_path: &std::path::Path) -> Result<Opened> {
    fn load(mut store: Box<dyn chinwag_store::Store>, place: &str) -> Result<Opened> {
        let accounts = store.account_names().with_context(|| format!("reading accounts from {place}"))?;
        let rooms = store.channels().with_context(|| format!("reading rooms from {place}"))?;
        let queued = store.offline_counts().with_context(|| format!("counting waiting messages in {place}"))?;
        Ok(Opened { store, accounts, rooms, queued })
    }
    match &cfg.store {
        StoreBackend::Sqlite => {
            let store = chinwag_store::SqliteStore::open(db_path, cfg.sqlite.clone())?;
            load(Box::new(store), &db_path.display().to_string())
        }
        StoreBackend::Postgres { url } => {
            let url = url.clone();
            tokio::task::spawn_blocking(move || {
                let store = chinwag_store::PostgresStore::open(&url)?;
                let place = store.url().to_owned();
                tracing::info!(url = %place, "store: PostgreSQL");
                load(Box::new(store), &place)
            })
            .await
            .context("opening the PostgreSQL store")?
        }
    }
}

/// Binds every listener and starts serving. Fails (binding nothing) if a required listener
/// cannot be bound or the TLS material is unusable.
pub async fn start(mut cfg: ServerConfig) -> Result<Running> {
    create_data_dir(&cfg.data_dir)?;
    // First, so that a second server on the same data directory is refused before it touches
    // the database.
    let control_listener = if cfg.control_socket { Some(control::bind(&cfg.data_dir)?) } else { None };
    warn_if_exposed(&cfg.data_dir);
    let db_path = cfg.data_dir.join(DATABASE_FILE);
    // Files an older version (or another umask) left readable by others. SQLite gives the
    // `-wal` and `-shm` it creates the database file's mode, and a new database is created 0600.
    for name in [DATABASE_FILE, DATABASE_WAL, DATABASE_SHM, BANS_FILE] {
        files::tighten(&cfg.data_dir.join(name), files::FILE_MODE)?;
    }
    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let metrics = metrics::Metrics::new();
    // A cluster node joins before it opens anything else: refused (its name is taken, NATS
    // cannot be reached), it starts nothing. Joined, it beats from now on (opening the store
    // may take longer than the heartbeat lives); a start that fails after this stops it.
    let stop_if_failed = shutdown.clone().drop_guard();
    let mut cluster = None;
    if let Some(cfg) = &cfg.cluster {
        let joined = cluster::join(cfg).await?;
        let node_id = joined.node_id();
        let (side, status) = cluster::start(joined, metrics.clone(), shutdown.clone(), &tracker).await?;
        cluster = Some((node_id, side, status));
    }
    let Opened { store, accounts, rooms, queued } = open_store(&cfg, &db_path).await?;
    let bans_file = cfg.data_dir.join(BANS_FILE);
    let klines = bans::read(&bans_file)?;
    let names = vec![cfg.core.server_name.clone()];
    let tls = tls::load_or_generate(&cfg.data_dir, cfg.tls_cert.as_deref(), cfg.tls_key.as_deref(), &names)?;
    cfg.core.motd = reload::motd(&cfg)?;
    cfg.core.motd.push(format!("TLS certificate SHA-256 fingerprint: {}", tls.fingerprint));

    let mut plain_listeners = Vec::new();
    let mut tls_listeners = Vec::new();
    let mut web_listeners = Vec::new();
    let mut web_plain_listeners = Vec::new();
    for (addrs, out) in [
        (&cfg.listen, &mut plain_listeners),
        (&cfg.tls_listen, &mut tls_listeners),
        (&cfg.web.listen, &mut web_listeners),
        (&cfg.web.listen_plain, &mut web_plain_listeners),
    ] {
        for addr in addrs {
            match listen::bind(*addr) {
                Ok(l) => out.push(l),
                Err(e) if cfg.optional_listen.contains(addr) => {
                    tracing::warn!(%addr, error = %e, "skipping a default listener that cannot be bound");
                }
                Err(e) => return Err(e),
            }
        }
    }
    let metrics_listener = match cfg.metrics_listen {
        Some(addr) => Some(listen::bind(addr).context("binding the metrics listener")?),
        None => None,
    };
    let local = |ls: &Vec<tokio::net::TcpListener>| -> Result<Vec<SocketAddr>> {
        ls.iter().map(|l| l.local_addr().context("reading a listener's address")).collect()
    };
    let mut quic_endpoints = Vec::new();
    for addr in &cfg.quic_listen {
        match quic::bind(*addr, tls.quic.clone(), &cfg.limits) {
            Ok(endpoint) => quic_endpoints.push(endpoint),
            Err(e) if cfg.optional_listen.contains(addr) => {
                tracing::warn!(%addr, error = %e, "skipping a default QUIC listener that cannot be bound");
            }
            Err(e) => return Err(e),
        }
    }
    let quic_addrs = quic_endpoints
        .iter()
        .map(|e| e.local_addr().context("reading a QUIC endpoint's address"))
        .collect::<Result<Vec<_>>>()?;
    let plaintext = local(&plain_listeners)?;
    let tls_addrs = local(&tls_listeners)?;
    let metrics_addr = metrics_listener.as_ref().map(|l| l.local_addr()).transpose()?;
    let web_addrs = local(&web_listeners)?;
    let web_plain_addrs = local(&web_plain_listeners)?;

    let (events_tx, events_rx) = mpsc::channel(hub::EVENT_QUEUE);
    let (calls_tx, calls_rx) = mpsc::channel(hub::CALL_QUEUE);
    // The msgids' node number: the cluster's (unique among live nodes), else any.
    let node = cluster.as_ref().map_or_else(rand::random::<u32>, |(node_id, _, _)| *node_id);
    let mut server = chinwag_core::Server::new(cfg.core.clone(), node, hub::now());
    if let Some((_, side, _)) = &cluster {
        server.enable_cluster(side.identity());
    }
    server.restore(accounts, rooms.into_iter().map(storage::from_record).collect());
    server.restore_klines(klines);
    server.restore_offline_counts(queued.into_iter().map(|(q, n)| (q, usize::try_from(n).unwrap_or(usize::MAX))));
    let (storage, store_thread) = storage::Storage::start(store, metrics.clone());
    let store_give_up = storage.give_up_flag();
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let reloader = Arc::new(reload::Reloader::new(cfg.clone(), tls.certs.clone(), calls_tx.clone()));
    let worker = work::Worker::new(storage.clone(), answers_tx, reloader.clone(), metrics.clone());
    let stop_reason = Arc::new(Mutex::new("Server shutting down".to_owned()));
    let listeners = directory::listeners(&plaintext, &tls_addrs, &quic_addrs);
    let hub_limits = hub::HubLimits {
        retention: cfg.history_retention,
        max_held_bytes: cfg.max_held_bytes.max(1),
        sendq_lines: cfg.limits.sendq_lines.max(1),
    };
    let discovery = directory::start(&cfg, &server, listeners, &tls.fingerprint, &shutdown, &tracker);
    let mut hub = hub::Hub::new(server, storage, worker, hub_limits, metrics.clone(), bans_file, stop_reason.clone());
    if let Some((tx, _, _)) = &discovery {
        hub = hub.with_directory(tx.clone());
    }
    let mut cluster_status = None;
    if let Some((_, side, status)) = cluster {
        hub = hub.with_cluster(side);
        cluster_status = Some(status);
    }
    let hub = tokio::spawn(hub.run(events_rx, answers_rx, calls_rx, shutdown.clone()));
    let control = Control {
        hub: calls_tx,
        metrics: metrics.clone(),
        reloader,
        shutdown: shutdown.clone(),
        force: CancellationToken::new(),
        stop: Arc::new(Mutex::new(StopRequest { reason: stop_reason, grace: cfg.grace })),
        cluster: cluster_status,
    };
    let mut edge = cfg.limits.clone();
    let capacity = limits::connection_capacity();
    edge.max_connections = limits::max_connections(cfg.limits.max_connections, capacity);
    tracing::info!(max_connections = edge.max_connections, "accepting connections");
    let queues = Arc::new(outbox::Queues {
        // Full: the hub does not wait; it drops the connection with "SendQ exceeded".
        limit: edge.sendq_lines.max(1),
        line_len: edge.line_len,
        metrics: Arc::clone(&metrics),
        write_timeout: edge.write_timeout,
        tasks: tracker.clone(),
    });
    let edge_line_len = edge.line_len;
    let acceptor = listen::Acceptor {
        events: events_tx,
        ids: Arc::new(AtomicU64::new(1)),
        limits: edge.clone(),
        admission: limits::Admission::new(edge),
        refusals: Arc::new(tokio::sync::Semaphore::new(cfg.limits.refusals_in_flight)),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        queues,
        metrics,
    };
    for l in plain_listeners {
        tracker.spawn(acceptor.clone().run(l, None));
    }
    for l in tls_listeners {
        tracker.spawn(acceptor.clone().run(l, Some(tls.acceptor.clone())));
    }
    for endpoint in quic_endpoints {
        tracker.spawn(acceptor.clone().run_quic(endpoint));
    }
    let http = web::Listener {
        router: http::metrics_routes(control.clone()),
        tls: None,
        handshake_timeout: cfg.limits.tls_handshake_timeout,
        send_buffer: cfg.limits.socket_send_buffer,
        write_timeout: cfg.limits.write_timeout,
        trusted_proxies: cfg.web.trusted_proxies.clone().into(),
        keep_alive: false,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
        slots: web::slots(),
    };
    if let Some(l) = metrics_listener {
        tracker.spawn(http.clone().run(l));
    }
    if !(web_listeners.is_empty() && web_plain_listeners.is_empty()) {
        let ws_options = web::ws_options(&cfg.web, edge_line_len);
        let state = Arc::new(web::Web { acceptor: acceptor.clone(), settings: cfg.web.clone(), ws_options });
        let site = web::Listener {
            router: web::router(state, control.clone()),
            keep_alive: true,
            slots: web::slots(),
            ..http
        };
        for l in web_listeners {
            tracker.spawn(web::Listener { tls: Some(tls.web.clone()), ..site.clone() }.run(l));
        }
        for l in web_plain_listeners {
            tracker.spawn(site.clone().run(l));
        }
    }
    let control_path = control_listener.as_ref().map(|(_, p)| p.clone());
    if let Some((l, path)) = control_listener {
        tracker.spawn(control::run(l, path, control.clone(), shutdown.clone(), tracker.clone()));
    }
    stop_if_failed.disarm();
    Ok(Running {
        plaintext,
        tls: tls_addrs,
        quic: quic_addrs,
        metrics: metrics_addr,
        web: web_addrs,
        web_plain: web_plain_addrs,
        control_path,
        discovery_port: discovery.as_ref().map(|(_, port, _)| *port),
        discovery_stats: discovery.map(|(_, _, stats)| stats),
        fingerprint: tls.fingerprint,
        control,
        tracker,
        hub: Some(hub),
        store_thread: Some(store_thread),
        store_give_up,
    })
}

/// Creates the data directory readable by its owner only (it holds password hashes, history and
/// the TLS key); an existing directory is left as the operator set it. Also sets the process
/// umask to 0o077 (`files.rs`): whatever a server process creates is its owner's alone.
pub fn create_data_dir(dir: &std::path::Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    files::restrict_umask();
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("creating the data directory {}", dir.display()))
}

/// Password hashes, history and the TLS key live in the data directory; say so if other users
/// can read it.
fn warn_if_exposed(dir: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(dir) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(
                dir = %dir.display(),
                mode = format!("{:o}", mode & 0o777),
                "the data directory is open to other users; `chmod 700` it (it holds password hashes, history and the TLS key)"
            );
        }
    }
}
