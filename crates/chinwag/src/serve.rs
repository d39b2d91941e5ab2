//! `chinwag serve`: configuration (file, environment, flags) → [`ServerConfig`], logging, start,
//! banner, the console, and shutdown on a signal or an admin command.

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context, Result};
use chinwag_server::{ConfigSource, FlagValue, ServerConfig};
use clap::Args;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Read settings from this TOML file (see --print-config for every key and its default).
    #[arg(long, env = "CHINWAG_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,

    /// Print the default configuration file, with every key documented, and exit.
    #[arg(long)]
    print_config: bool,

    /// Set any configuration key, e.g. `--set limits.sendq=4096` or
    /// `--set listen.tls=0.0.0.0:6697,[::]:6697`; repeatable. Wins over the file and the
    /// environment (CHINWAG_SECTION_KEY).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,

    /// Where chinwag keeps its data [key: data_dir; default: the user's data directory, e.g.
    /// ~/.local/share/chinwag].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Plaintext IRC listener, ADDR:PORT (IPv6 as [ADDR]:PORT); repeatable [key:
    /// listen.plaintext; default: 127.0.0.1:6667 and [::1]:6667].
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,

    /// TLS IRC listener, ADDR:PORT; repeatable [key: listen.tls; default: 0.0.0.0:6697 and
    /// [::]:6697].
    #[arg(long = "tls-listen", value_name = "ADDR:PORT")]
    tls_listen: Vec<SocketAddr>,

    /// QUIC listener (UDP), ADDR:PORT, with the TLS certificate; repeatable [key: listen.quic;
    /// default: the TLS listeners' addresses].
    #[arg(long = "quic-listen", value_name = "ADDR:PORT")]
    quic_listen: Vec<SocketAddr>,

    /// Do not listen for QUIC [key: listen.quic_enabled].
    #[arg(long, conflicts_with = "quic_listen")]
    no_quic: bool,

    /// Turn off the per-client command rate limit ("Excess flood"): for benchmarks and load
    /// tests, never for a public server [key: limits.flood_interval_ms = 0].
    #[arg(long)]
    no_flood_limit: bool,

    /// Lift the limits a load generator on one address would hit (flood control, connections
    /// per address and per /64, new connections per address): for benchmarks on loopback,
    /// never for a public server. The global connection cap and SendQ stay.
    #[arg(long)]
    load_test: bool,

    /// HTTPS listener for the web client and the IRC WebSocket (/ws), ADDR:PORT; repeatable
    /// [key: web.listen; default: 0.0.0.0:6698 and [::]:6698].
    #[arg(long = "web-listen", value_name = "ADDR:PORT")]
    web_listen: Vec<SocketAddr>,

    /// Plain HTTP listener for the web client and /ws, behind a reverse proxy that terminates
    /// TLS; loopback only unless --web-plain-public; repeatable [key: web.listen_plain].
    #[arg(long = "web-listen-plain", value_name = "ADDR:PORT")]
    web_listen_plain: Vec<SocketAddr>,

    /// Allow --web-listen-plain on addresses other than loopback (a proxy elsewhere terminates
    /// TLS) [key: web.plain_public].
    #[arg(long)]
    web_plain_public: bool,

    /// No web listener at all (no web client, no /ws) [keys: web.listen, web.listen_plain].
    #[arg(long, conflicts_with_all = ["web_listen", "web_listen_plain"])]
    no_web: bool,

    /// HTTP listener for Prometheus /metrics, /healthz and /readyz [key: listen.metrics].
    #[arg(long, value_name = "ADDR:PORT")]
    metrics_listen: Option<SocketAddr>,

    /// PEM certificate chain for TLS, with --tls-key [key: tls.cert].
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert [key: tls.key].
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The server's name in messages and in the generated certificate [key: server.name].
    #[arg(long, value_name = "NAME")]
    server_name: Option<String>,

    /// Require this password (PASS) from every client [key: server.password; better set by
    /// CHINWAG_SERVER_PASSWORD, which other users cannot read from the process list].
    #[arg(long, value_name = "PASSWORD")]
    server_password: Option<String>,

    /// Lines a client may have waiting before it is dropped [key: limits.sendq].
    #[arg(long, value_name = "LINES")]
    sendq: Option<u32>,

    /// Delete history older than this many days [key: storage.history_retention_days].
    #[arg(long, value_name = "DAYS")]
    history_retention_days: Option<u32>,

    /// Where accounts, rooms and history live: `sqlite` (DATA_DIR/chinwag.db, the default) or a
    /// PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE [keys: storage.backend,
    /// storage.url].
    #[arg(long, value_name = "sqlite|URL")]
    store: Option<String>,

    /// Join a cluster: the NATS servers (with JetStream) the nodes share, nats://HOST:PORT;
    /// needs the PostgreSQL store (see docs/cluster.md) [key: cluster.url].
    #[arg(long, value_name = "URL")]
    cluster: Option<String>,

    /// The network's name, under which every NATS name lives (default chinwag) [key: cluster.name].
    #[arg(long, value_name = "NAME")]
    cluster_name: Option<String>,

    /// This node's name in the cluster, unique in the network [key: cluster.node].
    #[arg(long, value_name = "NAME")]
    node_name: Option<String>,

    /// `full` or `normal` [key: storage.sqlite_synchronous].
    #[arg(long, value_name = "MODE")]
    sqlite_synchronous: Option<String>,

    #[command(flatten)]
    discovery: crate::discover::ServeDiscoveryArgs,

    /// Write the log files as JSON lines [key: log.json].
    #[arg(long)]
    log_json: bool,
}

impl ServeArgs {
    /// The configuration sources these flags describe (read again on reload).
    fn source(&self) -> Result<ConfigSource> {
        let mut flags: Vec<(String, FlagValue, String)> = Vec::new();
        let mut text = |key: &str, value: String, flag: &str| {
            flags.push((key.to_owned(), FlagValue::Text(value), format!("flag {flag}")));
        };
        for item in &self.set {
            let (key, value) = item
                .split_once('=')
                .with_context(|| format!("--set {item:?}: expected KEY=VALUE, e.g. --set limits.sendq=4096"))?;
            text(key.trim(), value.to_owned(), &format!("--set {}", key.trim()));
        }
        if let Some(d) = &self.data_dir {
            text("data_dir", d.display().to_string(), "--data-dir");
        }
        if let Some(a) = self.metrics_listen {
            text("listen.metrics", a.to_string(), "--metrics-listen");
        }
        if let Some(p) = &self.tls_cert {
            text("tls.cert", p.display().to_string(), "--tls-cert");
        }
        if let Some(p) = &self.tls_key {
            text("tls.key", p.display().to_string(), "--tls-key");
        }
        if let Some(n) = &self.server_name {
            text("server.name", n.clone(), "--server-name");
        }
        if let Some(p) = &self.server_password {
            text("server.password", p.clone(), "--server-password");
        }
        if let Some(n) = self.sendq {
            text("limits.sendq", n.to_string(), "--sendq");
        }
        if let Some(n) = self.history_retention_days {
            text("storage.history_retention_days", n.to_string(), "--history-retention-days");
        }
        if let Some(store) = &self.store {
            if store == "sqlite" {
                text("storage.backend", "sqlite".into(), "--store");
                text("storage.url", String::new(), "--store");
            } else if store.starts_with("postgres://") || store.starts_with("postgresql://") {
                text("storage.backend", "postgres".into(), "--store");
                text("storage.url", store.clone(), "--store");
            } else {
                anyhow::bail!(
                    "--store {}: expected sqlite or a PostgreSQL URL, postgres://USER:PASSWORD@HOST:PORT/DATABASE",
                    chinwag_store::redact_url(store)
                );
            }
        }
        for (key, value, flag) in [
            ("cluster.url", &self.cluster, "--cluster"),
            ("cluster.name", &self.cluster_name, "--cluster-name"),
            ("cluster.node", &self.node_name, "--node-name"),
        ] {
            if let Some(value) = value {
                text(key, value.clone(), flag);
            }
        }
        if let Some(m) = &self.sqlite_synchronous {
            text("storage.sqlite_synchronous", m.clone(), "--sqlite-synchronous");
        }
        if self.no_quic {
            text("listen.quic_enabled", "false".into(), "--no-quic");
        }
        if self.no_flood_limit {
            text("limits.flood_interval_ms", "0".into(), "--no-flood-limit");
        }
        if self.load_test {
            for (key, value) in [
                ("limits.flood_interval_ms", "0"),
                ("limits.connections_per_address", "1000000"),
                ("limits.connections_per_subnet", "1000000"),
                ("limits.new_connections_interval_ms", "0"),
            ] {
                text(key, value.into(), "--load-test");
            }
        }
        if self.log_json {
            text("log.json", "true".into(), "--log-json");
        }
        if self.web_plain_public {
            text("web.plain_public", "true".into(), "--web-plain-public");
        }
        let list = |addrs: &[SocketAddr]| FlagValue::List(addrs.iter().map(ToString::to_string).collect());
        if !self.listen.is_empty() {
            flags.push(("listen.plaintext".into(), list(&self.listen), "flag --listen".into()));
        }
        if !self.tls_listen.is_empty() {
            flags.push(("listen.tls".into(), list(&self.tls_listen), "flag --tls-listen".into()));
        }
        if !self.quic_listen.is_empty() {
            flags.push(("listen.quic".into(), list(&self.quic_listen), "flag --quic-listen".into()));
        }
        if !self.web_listen.is_empty() {
            flags.push(("web.listen".into(), list(&self.web_listen), "flag --web-listen".into()));
        }
        if !self.web_listen_plain.is_empty() {
            flags.push(("web.listen_plain".into(), list(&self.web_listen_plain), "flag --web-listen-plain".into()));
        }
        if self.no_web {
            for key in ["web.listen", "web.listen_plain"] {
                flags.push((key.into(), FlagValue::List(Vec::new()), "flag --no-web".into()));
            }
        }
        self.discovery.push_flags(&mut flags);
        Ok(ConfigSource {
            file: self.config.clone(),
            env: std::env::vars().collect(),
            flags,
            default_data_dir: dirs::data_dir().map(|d| d.join("chinwag")),
        })
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    if args.print_config {
        print!("{}", chinwag_server::DEFAULT_CONFIG);
        return Ok(());
    }
    // Nothing starts (not even logging to files) until the whole configuration is valid.
    let cfg: ServerConfig = args.source()?.load()?;
    chinwag_server::create_data_dir(&cfg.data_dir)?;
    let _logs = chinwag_server::logging::init(&cfg.log, &cfg.data_dir)?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let clean = runtime.block_on(serve(cfg))?;
    // Connections still draining after the grace period are cut here, with the runtime.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    if clean {
        Ok(())
    } else {
        anyhow::bail!("stopped before everything was flushed (forced)")
    }
}

async fn serve(cfg: ServerConfig) -> Result<bool> {
    let data_dir = cfg.data_dir.clone();
    let store = match &cfg.store {
        chinwag_server::StoreBackend::Sqlite => None,
        chinwag_server::StoreBackend::Postgres { url } => Some(chinwag_store::redact_url(url)),
    };
    let running = chinwag_server::start(cfg).await?;
    println!("chinwag {} is running", env!("CARGO_PKG_VERSION"));
    println!("  data directory: {}", data_dir.display());
    if let Some(url) = store {
        println!("  store: PostgreSQL at {url}");
    }
    for addr in &running.plaintext {
        println!("  listening on plaintext {addr}");
    }
    for addr in &running.tls {
        println!("  listening on tls {addr}");
    }
    for addr in &running.quic {
        println!("  listening on quic {addr}");
    }
    for addr in &running.web {
        println!("  web client on https://{addr}/");
    }
    for addr in &running.web_plain {
        println!("  web client on http://{addr}/ (for a reverse proxy)");
    }
    if let Some(addr) = running.metrics {
        println!("  metrics on http://{addr}/metrics");
    }
    if let Some(path) = &running.control_path {
        println!("  control socket: {} (chinwag admin --data-dir {})", path.display(), data_dir.display());
    }
    println!("  TLS certificate SHA-256 fingerprint: {}", running.fingerprint);
    println!("Press Ctrl-C to stop.");
    let control = running.control();
    tokio::spawn(crate::admin::signals(control.clone()));
    crate::admin::spawn_console(control);
    Ok(running.wait().await.clean)
}
