//! `chinwag serve`: flags → [`ServerConfig`], start, banner, wait for Ctrl-C or SIGTERM.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{Context, Result};
use chinwag_server::ServerConfig;
use clap::Args;

const DEFAULT_PLAINTEXT_PORT: u16 = 6667;
const DEFAULT_TLS_PORT: u16 = 6697;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where chinwag keeps its certificate and data [default: the user's data directory, e.g.
    /// ~/.local/share/chinwag].
    #[arg(long, env = "CHINWAG_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Plaintext IRC listener, ADDR:PORT (IPv6 as [ADDR]:PORT); repeatable. Passwords sent in
    /// clear over a network can be read by anyone on the path, so the default is loopback only
    /// [default: 127.0.0.1:6667 and [::1]:6667].
    #[arg(long = "listen", value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,

    /// TLS IRC listener, ADDR:PORT; repeatable [default: 0.0.0.0:6697 and [::]:6697].
    #[arg(long = "tls-listen", value_name = "ADDR:PORT")]
    tls_listen: Vec<SocketAddr>,

    /// QUIC listener (UDP) ADDR:PORT, using the TLS certificate; repeatable [default: the TLS
    /// listeners' addresses and ports].
    #[arg(long = "quic-listen", value_name = "ADDR:PORT")]
    quic_listen: Vec<SocketAddr>,

    /// Do not listen for QUIC.
    #[arg(long, conflicts_with = "quic_listen")]
    no_quic: bool,

    /// PEM certificate chain for TLS (with --tls-key). Without it, a self-signed certificate is
    /// generated at first start into DATA_DIR/tls and reused.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,

    /// PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,

    /// The server's name in messages and in the generated certificate.
    #[arg(long, default_value = "chinwag.local", value_name = "NAME")]
    server_name: String,

    /// Require this password (PASS) from every client before registration.
    #[arg(long, env = "CHINWAG_SERVER_PASSWORD", value_name = "PASSWORD", hide_env_values = true)]
    server_password: Option<String>,

    /// Lines a client may have waiting to be sent before it is dropped ("SendQ exceeded").
    #[arg(long, default_value_t = chinwag_server::DEFAULT_SENDQ_LINES, value_name = "LINES")]
    sendq: usize,

    /// Turn off the per-client command rate limit ("Excess flood"): for benchmarks and load
    /// tests, never for a public server.
    #[arg(long)]
    no_flood_limit: bool,

    /// Delete history (room and private messages) older than this many days; by default it is
    /// kept forever. Messages waiting for an offline account are kept until delivered.
    #[arg(long, value_name = "DAYS")]
    history_retention_days: Option<u32>,

    /// When a commit counts as durable: `full` survives power loss (an fsync per commit);
    /// `normal` survives a crash of chinwag but may lose the last commits on power loss.
    #[arg(long, value_enum, default_value_t = SyncMode::Full, value_name = "MODE")]
    sqlite_synchronous: SyncMode,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum SyncMode {
    Full,
    Normal,
}

impl ServeArgs {
    fn into_config(self) -> Result<ServerConfig> {
        let data_dir = match self.data_dir {
            Some(dir) => dir,
            None => dirs::data_dir()
                .context("cannot tell where the user's data directory is; pass --data-dir")?
                .join("chinwag"),
        };
        let mut cfg = ServerConfig::new(data_dir);
        if self.listen.is_empty() {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), DEFAULT_PLAINTEXT_PORT);
            cfg.listen = vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PLAINTEXT_PORT), v6];
            cfg.optional_listen.push(v6);
        } else {
            cfg.listen = self.listen;
        }
        if self.tls_listen.is_empty() {
            let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), DEFAULT_TLS_PORT);
            cfg.tls_listen = vec![SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), DEFAULT_TLS_PORT), v6];
            cfg.optional_listen.push(v6);
        } else {
            cfg.tls_listen = self.tls_listen;
        }
        cfg.quic_listen = match (self.no_quic, self.quic_listen.is_empty()) {
            (true, _) => Vec::new(),
            // QUIC is TLS over UDP: by default it listens wherever TLS does.
            (false, true) => cfg.tls_listen.clone(),
            (false, false) => self.quic_listen,
        };
        cfg.tls_cert = self.tls_cert;
        cfg.tls_key = self.tls_key;
        cfg.limits.sendq_lines = self.sendq.max(1);
        cfg.history_retention =
            self.history_retention_days.map(|d| std::time::Duration::from_secs(u64::from(d) * 24 * 3600));
        cfg.sqlite.synchronous = match self.sqlite_synchronous {
            SyncMode::Full => chinwag_store::Synchronous::Full,
            SyncMode::Normal => chinwag_store::Synchronous::Normal,
        };
        cfg.core.server_name = self.server_name;
        cfg.core.password = self.server_password;
        if self.no_flood_limit {
            cfg.core.limits.flood.every = std::time::Duration::ZERO;
        }
        Ok(cfg)
    }
}

pub fn run(args: ServeArgs) -> Result<()> {
    use std::io::IsTerminal;
    // rustls warns on every client that sends an IP address as SNI (irssi and WeeChat do when
    // connecting by address); that is harmless, so its warnings are quieted by default.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    let cfg = args.into_config()?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let data_dir = cfg.data_dir.clone();
        let running = chinwag_server::start(cfg).await?;
        println!("chinwag {} is running", env!("CARGO_PKG_VERSION"));
        println!("  data directory: {}", data_dir.display());
        for addr in &running.plaintext {
            println!("  listening on plaintext {addr}");
        }
        for addr in &running.tls {
            println!("  listening on tls {addr}");
        }
        for addr in &running.quic {
            println!("  listening on quic {addr}");
        }
        println!("  TLS certificate SHA-256 fingerprint: {}", running.fingerprint);
        println!("Press Ctrl-C to stop.");
        let stop = running.shutdown_token();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("shutting down");
            stop.cancel();
        });
        running.wait().await;
        Ok(())
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
