//! What the server needs to start: where to listen, where data lives, how to do TLS, limits,
//! logging, operators.
//!
//! [`ServerConfig`] is the validated form. It is built either directly (tests, embedding) or
//! from a [`ConfigSource`] (file, environment, flags), parsed in two stages: `raw.rs` mirrors the
//! TOML file and `RawConfig::validate` checks every value, so a mistake is reported with its key,
//! its value, what would be valid and where it was set, before anything starts. `layers.rs`
//! merges the sources; `default.toml` is the documented default file.

mod ip_range;
mod layers;
mod raw;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

pub use ip_range::IpRange;
pub use layers::{ConfigSource, FlagValue, DEFAULT_CONFIG, ENV_PREFIX};
pub use raw::{InvalidValue, RawConfig};

/// Settings for one server process.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Holds the database, the generated certificate, the logs and the control socket.
    pub data_dir: PathBuf,
    /// Plaintext listeners. Passwords must never cross a network in clear, so the default is
    /// loopback only; binding elsewhere is the operator's explicit choice.
    pub listen: Vec<SocketAddr>,
    /// TLS listeners.
    pub tls_listen: Vec<SocketAddr>,
    /// QUIC listeners (UDP), with the TLS certificate.
    pub quic_listen: Vec<SocketAddr>,
    /// Addresses that may fail to bind without stopping the server (e.g. `[::1]` on a host
    /// without IPv6); defaults go here, explicit flags do not.
    pub optional_listen: Vec<SocketAddr>,
    /// HTTP listener for `/metrics`, `/healthz` and `/readyz`; `None` for none.
    pub metrics_listen: Option<SocketAddr>,
    /// PEM certificate chain and key; when absent a self-signed pair is generated once into
    /// `data_dir/tls/` and reused.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Delete history older than this; `None` keeps it forever. Default:
    /// [`DEFAULT_HISTORY_RETENTION_DAYS`].
    pub history_retention: Option<Duration>,
    /// Memory held for commits at most (messages waiting and the lines behind them); past it
    /// (a stalled or failing disk) new messages that need storage are refused with
    /// `FAIL … TEMPORARILY_UNAVAILABLE` until the store catches up. Default:
    /// [`DEFAULT_MAX_HELD_BYTES`].
    pub max_held_bytes: usize,
    /// Which store holds the server's durable state. Default: SQLite in the data directory.
    pub store: StoreBackend,
    /// SQLite settings (durability of commits, start-up check).
    pub sqlite: chinwag_store::SqliteOptions,
    /// A file whose lines replace `core.motd`, re-read on reload.
    pub motd_file: Option<PathBuf>,
    /// How the binary sets up logging (the server itself only emits `tracing` events).
    pub log: LogSettings,
    /// How long clients get to receive their last lines when the server stops.
    pub grace: Duration,
    /// Where this configuration came from, so that reload can read it again; `None` when it
    /// was built in code (reload then re-reads only the MOTD file and the certificate).
    pub source: Option<ConfigSource>,
    /// Whether to open the control socket (`DATA_DIR/control.sock`) for `chinwag admin`.
    pub control_socket: bool,
    /// LAN discovery and the UDP status query (see `docs/discovery.md`). Off unless asked for:
    /// the configuration file turns it on by default, tests and embedders choose.
    pub discovery: chinwag_discovery::ResponderConfig,
    pub core: chinwag_core::Config,
    /// What one address, and everyone together, may hold at the edge.
    pub limits: EdgeLimits,
    /// The web listener: the web client, the IRC WebSocket (`/ws`), health checks.
    pub web: WebSettings,
    /// This node's cluster (`[cluster]`, `docs/cluster.md`); `None` for a server on its own.
    pub cluster: Option<ClusterConfig>,
}

/// The web listener (`[web]`). Off unless listeners are given: the configuration file turns
/// it on by default, tests and embedders choose.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebSettings {
    /// HTTPS listeners, with the server's TLS certificate.
    pub listen: Vec<SocketAddr>,
    /// Plain HTTP listeners, for a reverse proxy that terminates TLS in front of chinwag.
    /// Validated to be loopback unless the operator allowed otherwise (`web.plain_public`).
    pub listen_plain: Vec<SocketAddr>,
    /// Origins (`https://chat.example.org`), besides the server's own, whose pages may open
    /// `/ws`; lower-case, without a trailing slash.
    pub origins: Vec<String>,
    /// Reverse proxies (addresses or CIDR ranges) whose `Forwarded` and `X-Forwarded-*`
    /// headers are believed; from anyone else they are ignored.
    pub trusted_proxies: Vec<IpRange>,
    /// Host names (lower case, without port) a request over plain HTTP may name, besides IP
    /// addresses and `localhost`: any other is refused, so that a page whose name an attacker
    /// points at this server (DNS rebinding) cannot use it. HTTPS needs no list: the
    /// certificate binds the name.
    pub allowed_hosts: Vec<String>,
    /// Negotiate permessage-deflate (RFC 7692) with WebSocket clients that offer it.
    pub compression: bool,
}

impl Default for WebSettings {
    fn default() -> Self {
        WebSettings {
            listen: Vec::new(),
            listen_plain: Vec::new(),
            origins: Vec::new(),
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            compression: true,
        }
    }
}

/// A node of a cluster: where its NATS is, which network, which node.
#[derive(Clone, PartialEq, Eq)]
pub struct ClusterConfig {
    /// NATS servers (`nats://HOST:PORT`, several separated by commas); may hold a password.
    pub url: String,
    /// The network, the namespace of every NATS name (`cluster.name`, default `chinwag`).
    pub name: chinwag_bus::Name,
    /// This node's name, unique in the network (`cluster.node`).
    pub node: chinwag_bus::Name,
}

impl std::fmt::Debug for ClusterConfig {
    /// Never shows a password in the URL.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let url: Vec<String> = self.url.split(',').map(|u| chinwag_store::redact_url(u.trim())).collect();
        f.debug_struct("ClusterConfig")
            .field("url", &url.join(","))
            .field("name", &self.name)
            .field("node", &self.node)
            .finish()
    }
}

/// Where the server keeps accounts, rooms, history and offline queues (`storage.backend`).
#[derive(Clone, PartialEq, Eq, Default)]
pub enum StoreBackend {
    /// `DATA_DIR/chinwag.db`, with [`ServerConfig::sqlite`]'s settings.
    #[default]
    Sqlite,
    /// A PostgreSQL database (`storage.url`), which several nodes may share.
    Postgres { url: String },
}

impl std::fmt::Debug for StoreBackend {
    /// Never shows the URL's password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreBackend::Sqlite => f.write_str("Sqlite"),
            StoreBackend::Postgres { url } => {
                f.debug_struct("Postgres").field("url", &chinwag_store::redact_url(url)).finish()
            }
        }
    }
}

/// Every bound the edge enforces on connections, with defaults for a public server. The core's
/// own bounds (flood budget, RecvQ, rooms, targets, registration timeout) are in
/// [`chinwag_core::Limits`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EdgeLimits {
    /// Connections open at once, over all addresses; one more is refused with
    /// `ERROR :... (Server full ...)`. 0: as many as the process's file limit allows (raised to
    /// its hard limit at start, less some for the server's own files); a larger value is
    /// lowered to that.
    pub max_connections: usize,
    /// Connections open at once from one IP address.
    pub connections_per_address: usize,
    /// Connections open at once from one IPv6 /64 (one subscriber usually gets a whole /64, so
    /// per-address counting alone would not limit it).
    pub connections_per_subnet: usize,
    /// New connections per address (IPv6: per /64): a burst, then one every `every`.
    pub new_connections: chinwag_core::Rate,
    /// Addresses the per-address limits (the three above) do not apply to: a local proxy,
    /// gateway or bouncer carries many users from one address. The global cap still does.
    pub exempt: Vec<std::net::IpAddr>,
    /// Lines a connection may have queued before it is dropped with "SendQ exceeded".
    pub sendq_lines: usize,
    /// The kernel's send buffer per connection, in bytes (`SO_SNDBUF`; Linux doubles it).
    /// Left to itself the kernel grows it up to megabytes for a peer that does not read, so
    /// SendQ would only be reached after that much memory per connection.
    pub socket_send_buffer: usize,
    /// Longest line read, in bytes, tags included. Longer ones are skipped as they arrive
    /// (answered with 417) without being buffered.
    pub line_len: usize,
    /// Time a client has to finish the TLS (or QUIC) handshake.
    pub tls_handshake_timeout: Duration,
    /// A peer that accepts no bytes for this long is gone.
    pub write_timeout: Duration,
    /// Refused TLS connections that may be told why at once (that takes a handshake); beyond
    /// it, refused connections are closed without a word.
    pub refusals_in_flight: usize,
    /// QUIC handshakes in progress at once (accepted, not yet established), over all
    /// addresses. Each holds about 35 KB of TLS and connection state until it completes or
    /// times out; beyond this, a peer whose address is proven is refused (CONNECTION_REFUSED)
    /// and any other is sent a stateless Retry.
    pub quic_max_half_open: usize,
    /// Handshakes in progress beyond which a QUIC peer must first prove its address with a
    /// stateless Retry (one more round trip) before it gets any state; 0: always. Spoofed
    /// sources can hold at most this many handshakes. At or above `quic_max_half_open`: never.
    pub quic_retry_above: usize,
    /// Time a QUIC client has to complete its handshake, and then again to open its stream;
    /// an unfinished handshake's state is then dropped (quinn closes it within a few round
    /// trips).
    pub quic_handshake_timeout: Duration,
    /// Connection attempts quinn queues for the accept loop (`ServerConfig::max_incoming`);
    /// beyond it, new ones are refused at once, statelessly.
    pub quic_max_incoming: usize,
    /// Bytes of further packets quinn buffers for all queued attempts together
    /// (`ServerConfig::incoming_buffer_size_total`); beyond it, they are dropped (the peer
    /// sends them again).
    pub quic_incoming_buffer: usize,
}

impl Default for EdgeLimits {
    fn default() -> Self {
        EdgeLimits {
            max_connections: 0,
            connections_per_address: 10,
            connections_per_subnet: 20,
            // Enough to reconnect a few clients after a network change; a reconnect loop from
            // one address is then slowed to one attempt every three seconds.
            new_connections: chinwag_core::Rate { burst: 20, every: Duration::from_secs(3) },
            exempt: vec![
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST),
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
            ],
            sendq_lines: DEFAULT_SENDQ_LINES,
            // Enough for about 30 ms of a 20 Mbit/s stream, far more than a chat needs.
            socket_send_buffer: 64 * 1024,
            line_len: chinwag_proto::MAX_LINE_LEN,
            tls_handshake_timeout: Duration::from_secs(15),
            write_timeout: Duration::from_secs(60),
            refusals_in_flight: 64,
            // About 18 MB of handshakes at most; a spoofed-source flood gets 2 MB of them.
            quic_max_half_open: 512,
            quic_retry_above: 64,
            quic_handshake_timeout: Duration::from_secs(10),
            quic_max_incoming: 1024,
            quic_incoming_buffer: 1 << 20,
        }
    }
}

/// Logging settings (`[log]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogSettings {
    /// A `tracing` filter such as `info` or `info,chinwag_server=debug`.
    pub level: String,
    /// Also log to daily files in `DATA_DIR/logs`, with the audit log beside them.
    pub file: bool,
    /// Daily files kept per log.
    pub keep_days: u32,
    /// Files as JSON lines.
    pub json: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        LogSettings { level: "info".into(), file: true, keep_days: 14, json: false }
    }
}

/// Default bound on a connection's outbound queue: about 1 MiB of full-length lines.
pub const DEFAULT_SENDQ_LINES: usize = 2048;
/// Default time clients get to read their last lines at shutdown.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(10);

/// How long history is kept by default, in days (`storage.history_retention_days`).
///
/// Thirty days: long enough for someone back from a holiday to scroll through what they missed
/// and for a client's gap fill after weeks offline, short enough that history cannot grow
/// without bound on a server nobody tunes: one address within the default flood limits can add
/// about 1.1 GB a day, so forever is unbounded while a month bounds the file (and a quieter
/// server's month is a few hundred MB at most).
/// Ergo, the closest comparable server, expires history after one week (`expire-time: 1w`).
/// 0 keeps history forever, as an explicit choice.
pub const DEFAULT_HISTORY_RETENTION_DAYS: u32 = 30;

/// How much memory messages waiting for their commit, and the lines behind them, may take by
/// default (`storage.max_held_kib`): 64 MiB.
///
/// A held message costs its text and metadata (about 0.5 KB) plus its lines (each text once per
/// capability variant, and 8 bytes per recipient): about 1 KB in a small room, 9 KB in a room of
/// a thousand. At the 1.35 MB/s the outside test held (400 messages a second) a stalled disk
/// reaches it after about 50 s, and the server then refuses new messages instead of growing.
/// A healthy burst stays far below it: 4,500 messages into a room of 181 within a few commits
/// (`adversarial.rs`) is about 11 MB.
pub const DEFAULT_MAX_HELD_BYTES: usize = 64 * 1024 * 1024;

/// [`DEFAULT_HISTORY_RETENTION_DAYS`] as the validated setting: `None` for 0 (forever).
pub(crate) fn retention(days: u32) -> Option<Duration> {
    (days > 0).then(|| Duration::from_secs(u64::from(days) * 24 * 3600))
}

impl ServerConfig {
    pub fn new(data_dir: PathBuf) -> Self {
        ServerConfig {
            data_dir,
            listen: Vec::new(),
            tls_listen: Vec::new(),
            quic_listen: Vec::new(),
            optional_listen: Vec::new(),
            metrics_listen: None,
            tls_cert: None,
            tls_key: None,
            history_retention: retention(DEFAULT_HISTORY_RETENTION_DAYS),
            max_held_bytes: DEFAULT_MAX_HELD_BYTES,
            store: StoreBackend::Sqlite,
            sqlite: chinwag_store::SqliteOptions::default(),
            motd_file: None,
            log: LogSettings::default(),
            grace: DEFAULT_GRACE,
            source: None,
            control_socket: true,
            discovery: chinwag_discovery::ResponderConfig::off(),
            core: chinwag_core::Config::default(),
            limits: EdgeLimits::default(),
            web: WebSettings::default(),
            cluster: None,
        }
    }
}
