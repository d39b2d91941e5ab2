//! `chinwag chat`: flags and `client.toml` → a client configuration; the certificate check
//! (pin on first use, refuse a changed one); then the full-screen client, or scriptable mode
//! when stdin is not a terminal or with `--plain`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use chinwag_client::clientlog::ClientLog;
use chinwag_client::config::{self, FileConfig};
use chinwag_client::known_servers::normalize_fingerprint;
use chinwag_client::{
    check_certificate, script, CertCheck, ClientConfig, Credentials, Endpoint, Keepalive, KnownServers, Security,
    SessionConfig,
};
use clap::Args;

/// Where a client with no server configured connects.
const DEFAULT_SERVER: &str = "127.0.0.1";
/// Recent messages shown when the full-screen client joins a room.
const JOIN_CONTEXT: usize = 50;

#[derive(Args, Debug)]
pub struct ChatArgs {
    /// The server, HOST[:PORT] (IPv6 as [ADDR]:PORT), or quic://HOST[:PORT] for QUIC [default:
    /// from client.toml, else 127.0.0.1; port 6697, or 6667 with --plaintext]. Several (the
    /// nodes of one network): the client starts with the first and, when a connection is lost
    /// or refused, moves to the next, keeping its rooms and unsent messages. A host name with
    /// several addresses is tried address by address.
    server: Vec<String>,

    /// Another server of the same network, after those given without the flag (repeatable).
    #[arg(long = "server", value_name = "HOST[:PORT]")]
    more_servers: Vec<String>,

    /// Your nick [default: from client.toml, else your user name].
    #[arg(long)]
    nick: Option<String>,

    /// Log in to this account with SASL; the password comes from CHINWAG_PASSWORD or a prompt.
    #[arg(long)]
    account: Option<String>,

    /// Join this room once connected (the # is optional); repeatable.
    #[arg(long = "join", value_name = "ROOM")]
    join: Vec<String>,

    /// Scriptable mode: read commands from stdin line by line, print events as lines (the
    /// default when stdin is not a terminal).
    #[arg(long)]
    plain: bool,

    /// In scriptable mode, print one JSON object per event.
    #[arg(long)]
    json: bool,

    /// In scriptable mode, also take the seeds' bare commands (`join general`, `msg bob hi`,
    /// `leave`, `quit`) without their `/`. Without it only `/`-commands are commands, and any
    /// other line is text for the current room.
    #[arg(long)]
    bare_commands: bool,

    /// Connect without TLS. Meant for a server on this machine; passwords are never sent in
    /// clear to another machine.
    #[arg(long, conflicts_with = "quic")]
    plaintext: bool,

    /// Connect over QUIC (UDP, the same port number and certificate as TLS): typing notices
    /// travel as datagrams, and the session survives a change of address.
    #[arg(long)]
    quic: bool,

    /// Pin the certificate of a server met for the first time without asking.
    #[arg(long)]
    accept_new_cert: bool,

    /// Accept a server whose certificate changed, if its new SHA-256 fingerprint is exactly
    /// this one (ask the server's operator for it), and pin it.
    #[arg(long, value_name = "FINGERPRINT")]
    accept_changed_cert: Option<String>,

    /// The server's password, for servers started with --server-password.
    #[arg(long, env = "CHINWAG_SERVER_PASSWORD", hide_env_values = true, value_name = "PASSWORD")]
    server_password: Option<String>,

    /// Keep local chat logs in DIR: one plaintext file per server and room or conversation,
    /// private to you (default: off; `log_dir` in client.toml, or `/log on` while chatting).
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,

    /// Do not reconnect when the connection drops.
    #[arg(long)]
    no_reconnect: bool,

    /// The config file [default: ~/.config/chinwag/client.toml].
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

pub fn run(args: ChatArgs) -> Result<()> {
    let config_path = args.config.clone().or_else(config::default_config_path);
    let file = match &config_path {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let scriptable = args.plain || !std::io::stdin().is_terminal();
    init_logging();

    let mut servers: Vec<String> = args.server.iter().chain(&args.more_servers).cloned().collect();
    if servers.is_empty() {
        servers.push(file.server.clone().unwrap_or_else(|| DEFAULT_SERVER.to_owned()));
    }
    // The first server's scheme decides the transport for all of them.
    let quic = args.quic || servers[0].starts_with("quic://");
    let servers: Vec<String> = servers
        .iter()
        .map(|s| s.strip_prefix("quic://").map_or(s.as_str(), |rest| rest.trim_end_matches('/')).to_owned())
        .collect();
    if quic && args.plaintext {
        bail!("QUIC is always encrypted: drop --plaintext");
    }
    let plaintext = !quic && (args.plaintext || file.plaintext.unwrap_or(false));
    let security = match (quic, plaintext) {
        (true, _) => Security::Quic,
        (false, true) => Security::Plaintext,
        (false, false) => Security::Tls,
    };
    let mut endpoints = Vec::with_capacity(servers.len());
    for server in &servers {
        endpoints.push(Endpoint::parse(server, security).with_context(|| format!("server {server:?}"))?);
    }
    let passwords_allowed = security.is_encrypted() || endpoints.iter().all(Endpoint::is_loopback);
    for endpoint in endpoints.iter().filter(|e| security == Security::Plaintext && !e.is_loopback()) {
        eprintln!(
            "warning: {endpoint} is not this machine and --plaintext sends everything in clear; chinwag will not \
             send passwords over it"
        );
    }

    let nick = args.nick.clone().or(file.nick.clone()).unwrap_or_else(default_nick);
    let account = args.account.clone().or(file.account.clone());
    let env_password = std::env::var("CHINWAG_PASSWORD").ok().filter(|p| !p.is_empty());
    let credentials = match account {
        Some(account) => {
            let password = match &env_password {
                Some(p) => p.clone(),
                None if !scriptable => {
                    rpassword::prompt_password(format!("Password for {account}: ")).context("reading the password")?
                }
                None => bail!("--account {account} needs a password: set CHINWAG_PASSWORD"),
            };
            Some(Credentials { account, password })
        }
        None => None,
    };
    let mut rooms = file.rooms.clone();
    rooms.extend(args.join.iter().cloned());

    // The certificate check records what it pins or refuses; the driver then opens the log
    // again for the session (a failure to open it is reported there).
    let client_log = config::default_client_log_path();
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async move {
        let mut log = client_log.as_deref().and_then(|path| ClientLog::open(path).ok());
        // Every server is checked (and pinned, when allowed) by its own name or address.
        let mut servers = Vec::with_capacity(endpoints.len());
        for endpoint in endpoints {
            let pinned = match security {
                Security::Tls | Security::Quic => trust_server(&endpoint, &args, scriptable, &mut log).await?,
                Security::Plaintext => None,
            };
            servers.push(chinwag_client::Server { endpoint, pinned });
        }
        drop(log);
        let first = servers.remove(0);
        let (endpoint, pinned, others) = (first.endpoint, first.pinned, servers);
        let session = SessionConfig {
            nick,
            realname: "chinwag chat".into(),
            credentials,
            server_password: args.server_password.clone(),
            passwords_allowed,
            rooms,
            join_context: if scriptable { 0 } else { JOIN_CONTEXT },
            keepalive: Keepalive::default(),
        };
        let known_servers = config::default_known_servers_path();
        let chat_log_dir = args.log_dir.clone().or(file.log_dir.as_deref().map(config::expand_home));
        let e2e_dir = chinwag_client::secure::default_dir();
        let reconnect = !args.no_reconnect;
        let cfg = ClientConfig {
            endpoint,
            pinned,
            others,
            session,
            reconnect,
            known_servers,
            chat_log_dir,
            client_log,
            e2e_dir,
        };
        if scriptable {
            let (commands, events, task) = chinwag_client::start(cfg);
            let format = if args.json { script::Format::Json } else { script::Format::Plain };
            let stdin = tokio::io::BufReader::new(tokio::io::stdin());
            let outcome =
                script::run(stdin, std::io::stdout(), format, args.bare_commands, env_password, commands, events)
                    .await?;
            let _ = task.await;
            match outcome {
                script::Outcome::Quit => Ok(()),
                script::Outcome::Fatal(why) => bail!("{}", chinwag_client::neutralise(&why)),
            }
        } else {
            Ok(chinwag_tui::run(cfg, env_password).await?)
        }
    })
}

/// Checks the server's certificate and returns the fingerprint to pin the session to (`None`
/// when a CA vouches for it). Pins a new server when allowed; refuses a changed one. What it
/// pins or refuses goes to the client log.
async fn trust_server(
    endpoint: &Endpoint,
    args: &ChatArgs,
    scriptable: bool,
    log: &mut Option<ClientLog>,
) -> Result<Option<String>> {
    let mut note = |text: String| {
        if let Some(log) = log.as_mut() {
            let _ = log.write(&text, &[]);
        }
    };
    let path = config::default_known_servers_path()
        .context("cannot tell where the user's data directory is (is HOME set?)")?;
    let mut known = KnownServers::load(&path)?;
    let key = endpoint.key();
    let accept_changed = args.accept_changed_cert.as_deref().map(normalize_fingerprint).transpose()?;
    match check_certificate(endpoint, &known).await {
        CertCheck::Trusted(_) => Ok(known.lookup(&key).map(str::to_owned)),
        CertCheck::Unknown { fingerprint } => {
            eprintln!("The server {key} is not known yet. Its TLS certificate's SHA-256 fingerprint is:");
            eprintln!("  {fingerprint}");
            eprintln!("Check it against the fingerprint the server printed when it started (or its MOTD).");
            let accept = args.accept_new_cert
                || accept_changed.as_deref() == Some(fingerprint.as_str())
                || (!scriptable && ask_yes_no("Trust this server and remember its certificate?")?);
            if !accept {
                note(format!("refused {key}: its certificate {fingerprint} was never pinned and was not accepted"));
                bail!(
                    "not connecting to an unknown server; to trust it, run again with --accept-new-cert (or answer \
                     yes at the prompt)"
                );
            }
            known.pin(&key, &fingerprint)?;
            note(format!("pinned the certificate of {key}, met for the first time: {fingerprint}"));
            eprintln!("Pinned {key} in {}", known.path().display());
            Ok(Some(fingerprint))
        }
        CertCheck::Changed { pinned, presented } => {
            if accept_changed.as_deref() == Some(presented.as_str()) {
                known.pin(&key, &presented)?;
                note(format!("the certificate of {key} changed from {pinned} to {presented}; accepted as asked"));
                eprintln!("warning: the certificate of {key} changed; pinned the new one as you asked.");
                return Ok(Some(presented));
            }
            note(format!("refused {key}: its certificate changed from {pinned} to {presented}"));
            eprintln!("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
            eprintln!("@   WARNING: THE CERTIFICATE OF {key} HAS CHANGED!");
            eprintln!("@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@");
            eprintln!("Someone could be intercepting your connection, or the server got a new certificate.");
            eprintln!("  pinned:    {pinned}");
            eprintln!("  presented: {presented}");
            eprintln!("If the server's operator confirms the new fingerprint, accept it with");
            eprintln!("  chinwag chat {key} --accept-changed-cert {presented}");
            eprintln!("or delete the line for {key} from {}.", known.path().display());
            bail!("refusing to connect to {key}: its certificate changed")
        }
        CertCheck::Failed(e) => {
            note(format!("certificate check of {key} failed: {e}"));
            eprintln!("warning: {e}; will keep trying");
            Ok(known.lookup(&key).map(str::to_owned))
        }
    }
}

fn ask_yes_no(question: &str) -> Result<bool> {
    eprint!("{question} [y/N] ");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// The user's login name as a valid nick, or `guest`.
fn default_nick() -> String {
    let user = std::env::var("USER").unwrap_or_default();
    let nick: String = user.chars().filter(|c| c.is_ascii_alphanumeric() || *c == '_').take(16).collect();
    match nick.chars().next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => nick,
        _ => "guest".into(),
    }
}

/// Logs go to a file, never over the screen: `<state dir>/chinwag/chat.log`.
fn init_logging() {
    let Some(path) = config::default_log_path() else { return };
    // The log names servers, accounts and rooms: the user's alone (0700 directory, 0600 file),
    // even under a permissive umask or in a home directory others can read.
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    if let Some(dir) = path.parent() {
        let _ = std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir);
    }
    let opened = std::fs::OpenOptions::new().create(true).append(true).mode(0o600).open(&path);
    let Ok(file) = opened else { return };
    let filter = tracing_subscriber::EnvFilter::try_from_env("CHINWAG_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustls=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::sync::Mutex::new(file))
        .try_init();
}
