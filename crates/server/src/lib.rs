//! The chinwag server's edges: listeners, TLS, connection tasks and the hub that owns the core.
//!
//! What it is: everything between sockets and [`chinwag_core::Server`]. [`start`] binds every
//! listener, loads or generates the TLS certificate, and spawns the tasks; the returned
//! [`Running`] tells where it listens and stops it.
//!
//! What it is not: no IRC logic lives here. Commands, replies and state are the core's; this
//! crate only frames bytes into lines, carries out the core's effects and enforces the
//! per-connection bounds (outbound queue, handshake and write timeouts).
//!
//! Layout: `listen.rs` binds and accepts, `limits.rs` decides who may connect (per address,
//! per /64, in total), `conn.rs` runs one connection (reader and writer), `hub.rs` owns the
//! core, `tls.rs` handles certificates, `config.rs` is the edge's settings and limits,
//! `keys.rs` runs the end-to-end encryption key directory's requests.

mod config;
mod conn;
mod hub;
mod keys;
mod limits;
mod listen;
mod quic;
mod storage;
mod tls;
mod work;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{EdgeLimits, ServerConfig, DEFAULT_SENDQ_LINES};
pub use quic::ALPN as QUIC_ALPN;
pub use tls::fingerprint;
pub use work::{hash_password, verify_password};

/// The database file inside the data directory.
pub const DATABASE_FILE: &str = "chinwag.db";

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Plaintext addresses actually bound (ports resolved if 0 was asked for).
    pub plaintext: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    /// QUIC (UDP) addresses actually bound.
    pub quic: Vec<SocketAddr>,
    /// SHA-256 of the TLS certificate, `AB:CD:...`.
    pub fingerprint: String,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// Joined at the end of [`Running::wait`], after the hub (the last user) is gone.
    store_thread: Option<std::thread::JoinHandle<()>>,
}

impl Running {
    /// A token that stops the server when cancelled.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// Stops accepting, says goodbye to every client and waits for all tasks to end.
    pub async fn shutdown(self) {
        self.shutdown.cancel();
        self.wait().await;
    }

    /// Waits until the server has stopped (after its shutdown token is cancelled).
    pub async fn wait(mut self) {
        self.shutdown.cancelled().await;
        self.tracker.close();
        self.tracker.wait().await;
        if let Some(thread) = self.store_thread.take() {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Binds every listener and starts serving. Fails (binding nothing) if a required listener
/// cannot be bound or the TLS material is unusable.
pub async fn start(mut cfg: ServerConfig) -> Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
    let db_path = cfg.data_dir.join(DATABASE_FILE);
    let mut store = chinwag_store::SqliteStore::open(&db_path, cfg.sqlite.clone())?;
    use chinwag_store::Store as _;
    let accounts = store.account_names().with_context(|| format!("reading accounts from {}", db_path.display()))?;
    let rooms = store.channels().with_context(|| format!("reading rooms from {}", db_path.display()))?;
    let names = vec![cfg.core.server_name.clone()];
    let tls = tls::load_or_generate(&cfg.data_dir, cfg.tls_cert.as_deref(), cfg.tls_key.as_deref(), &names)?;
    cfg.core.motd.push(format!("TLS certificate SHA-256 fingerprint: {}", tls.fingerprint));

    let mut plain_listeners = Vec::new();
    let mut tls_listeners = Vec::new();
    for (addrs, out) in [(&cfg.listen, &mut plain_listeners), (&cfg.tls_listen, &mut tls_listeners)] {
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
    let local = |ls: &Vec<tokio::net::TcpListener>| -> Result<Vec<SocketAddr>> {
        ls.iter().map(|l| l.local_addr().context("reading a listener's address")).collect()
    };
    let mut quic_endpoints = Vec::new();
    for addr in &cfg.quic_listen {
        match quic::bind(*addr, tls.quic.clone()) {
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

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (events_tx, events_rx) = mpsc::channel(hub::EVENT_QUEUE);
    let node = rand::random::<u32>();
    let mut server = chinwag_core::Server::new(cfg.core.clone(), node, hub::now());
    server.restore(accounts, rooms.into_iter().map(storage::from_record).collect());
    let (storage, store_thread) = storage::Storage::start(Box::new(store));
    let (answers_tx, answers_rx) = mpsc::unbounded_channel();
    let worker = work::Worker::new(storage.clone(), answers_tx)?;
    let hub = hub::Hub::new(server, storage, worker, cfg.history_retention);
    tracker.spawn(hub.run(events_rx, answers_rx, shutdown.clone()));
    let acceptor = listen::Acceptor {
        events: events_tx,
        ids: Arc::new(AtomicU64::new(1)),
        limits: cfg.limits,
        admission: limits::Admission::new(cfg.limits),
        refusals: Arc::new(tokio::sync::Semaphore::new(cfg.limits.refusals_in_flight)),
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
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
    Ok(Running {
        plaintext,
        tls: tls_addrs,
        quic: quic_addrs,
        fingerprint: tls.fingerprint,
        shutdown,
        tracker,
        store_thread: Some(store_thread),
    })
}
