//! What the edge needs to start: where to listen, where data lives, how to do TLS.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Settings for one server process. The binary fills it from flags (and later a file).
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Holds the generated certificate and (later) the database.
    pub data_dir: PathBuf,
    /// Plaintext listeners. Passwords must never cross a network in clear, so the default is
    /// loopback only; binding elsewhere is the operator's explicit choice.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// Addresses that may fail to bind without stopping the server (e.g. `[::1]` on a host
    /// without IPv6); defaults go here, explicit flags do not.
    pub optional_listen: Vec<SocketAddr>,
    /// PEM certificate chain and key; when absent a self-signed pair is generated once into
    /// `data_dir/tls/` and reused.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Lines a connection may have queued before it is dropped with "SendQ exceeded".
    pub sendq_lines: usize,
    /// Delete history older than this; `None` keeps it forever.
    pub history_retention: Option<std::time::Duration>,
    /// SQLite settings (durability of commits, start-up check).
    pub sqlite: chinwag_store::SqliteOptions,
    /// LAN discovery and the UDP status query (see `docs/discovery.md`). Off unless asked for:
    /// `chinwag serve` turns it on by default, tests and embedders choose.
    pub discovery: chinwag_discovery::ResponderConfig,
    pub core: chinwag_core::Config,
}

/// Default bound on a connection's outbound queue: about 1 MiB of full-length lines.
pub const DEFAULT_SENDQ_LINES: usize = 2048;

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            listen: Vec::new(),
            tls_listen: Vec::new(),
            optional_listen: Vec::new(),
            tls_cert: None,
            tls_key: None,
            sendq_lines: DEFAULT_SENDQ_LINES,
            history_retention: None,
            sqlite: chinwag_store::SqliteOptions::default(),
            discovery: chinwag_discovery::ResponderConfig::off(),
            core: chinwag_core::Config::default(),
        }
    }
}
