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
//! Layout: `listen.rs` binds and accepts, `conn.rs` runs one connection (reader and writer),
//! `hub.rs` owns the core, `tls.rs` handles certificates, `config.rs` is the edge's settings.

mod config;
mod conn;
mod hub;
mod listen;
mod tls;

use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::{ServerConfig, DEFAULT_SENDQ_LINES};
pub use tls::fingerprint;

/// A started server.
#[derive(Debug)]
pub struct Running {
    /// Plaintext addresses actually bound (ports resolved if 0 was asked for).
    pub plaintext: Vec<SocketAddr>,
    pub tls: Vec<SocketAddr>,
    /// SHA-256 of the TLS certificate, `AB:CD:...`.
    pub fingerprint: String,
    shutdown: CancellationToken,
    tracker: TaskTracker,
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
    pub async fn wait(self) {
        self.shutdown.cancelled().await;
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// Binds every listener and starts serving. Fails (binding nothing) if a required listener
/// cannot be bound or the TLS material is unusable.
pub async fn start(mut cfg: ServerConfig) -> Result<Running> {
    std::fs::create_dir_all(&cfg.data_dir)
        .with_context(|| format!("creating the data directory {}", cfg.data_dir.display()))?;
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
    let plaintext = local(&plain_listeners)?;
    let tls_addrs = local(&tls_listeners)?;

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    let (events_tx, events_rx) = mpsc::channel(hub::EVENT_QUEUE);
    let node = rand::random::<u32>();
    let server = chinwag_core::Server::new(cfg.core.clone(), node, hub::now());
    tracker.spawn(hub::Hub::new(server).run(events_rx, shutdown.clone()));
    let acceptor = listen::Acceptor {
        events: events_tx,
        ids: Arc::new(AtomicU64::new(1)),
        sendq: cfg.sendq_lines,
        shutdown: shutdown.clone(),
        tracker: tracker.clone(),
    };
    for l in plain_listeners {
        tracker.spawn(acceptor.clone().run(l, None));
    }
    for l in tls_listeners {
        tracker.spawn(acceptor.clone().run(l, Some(tls.acceptor.clone())));
    }
    Ok(Running { plaintext, tls: tls_addrs, fingerprint: tls.fingerprint, shutdown, tracker })
}
