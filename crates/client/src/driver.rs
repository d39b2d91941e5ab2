//! The I/O around the [`Session`]: connect, read and write lines, run the timers, reconnect
//! with backoff when the connection drops, and pass commands in and events out.
//!
//! [`start`] spawns the driver task and returns the command sender and the event receiver; the
//! front end only ever talks through those two. Commands are always accepted. Events wait in
//! the driver while the front end is busy; once [`MAX_PENDING_EVENTS`] are waiting, the driver
//! stops reading from the server (backpressure) until the front end catches up, so nothing is
//! dropped and memory stays bounded.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use chinwag_proto::{Frame, LineReader, Message, MAX_LINE_LEN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::chatlog::ChatLog;
use crate::clientlog::ClientLog;
use crate::command::Command;
use crate::endpoint::Endpoint;
use crate::endpoint::Security;
use crate::event::Event;
use crate::known_servers::{KnownServers, Verdict};
use crate::lan::{self, PinChoice};
use crate::secure::{self, Secure};
use crate::session::{Session, SessionConfig};
use crate::transport::{self, ConnectError, TlsInfo, Transport};

/// Commands the front end may have in flight; sending waits beyond that.
pub const COMMAND_QUEUE: usize = 256;
/// Events handed to the front end but not yet taken.
pub const EVENT_QUEUE: usize = 256;
/// Events held in the driver before it stops reading from the server.
pub const MAX_PENDING_EVENTS: usize = 10_000;
/// How often timers (lag PING, dead connection) are checked.
const TICK: Duration = Duration::from_secs(1);
/// After QUIT, how long to wait for the server to close the connection.
const QUIT_GRACE: Duration = Duration::from_secs(5);
/// Bytes read from the socket at once.
const READ_CHUNK: usize = 16 * 1024;
/// How long `/discover` listens for answers.
const DISCOVER_WAIT: Duration = Duration::from_secs(2);

/// What a `/discover` run found.
type LanAnswer = std::io::Result<Vec<chinwag_discovery::Found>>;

/// A server of the network and the fingerprint pinned for it by its own name or address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Server {
    pub endpoint: Endpoint,
    /// `None`: a CA-signed certificate is needed (or the connection is plaintext).
    pub pinned: Option<String>,
}

/// Everything the driver needs.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub endpoint: Endpoint,
    /// The pinned fingerprint for this server, if any (CA-signed certificates need none).
    pub pinned: Option<String>,
    /// The network's other servers (the nodes of a cluster). When the connection to the
    /// current one is lost or refused, the driver moves to the next in turn (after the usual
    /// backoff), the one it leaves going to the back of the list; the session (rooms, gap
    /// fill, unsent messages) carries over. Each is checked against its own pin.
    pub others: Vec<Server>,
    pub session: SessionConfig,
    /// Whether to reconnect after the connection drops.
    pub reconnect: bool,
    /// The known-servers file, for `/connect N` to a server found on the LAN (`None`: only
    /// CA-signed servers can be switched to).
    pub known_servers: Option<std::path::PathBuf>,
    /// Where chat logs go from the start (`--log-dir`); `None`: off until `/log on`, which
    /// then uses [`crate::config::default_chat_log_dir`].
    pub chat_log_dir: Option<std::path::PathBuf>,
    /// The client log (`None`: none is kept).
    pub client_log: Option<std::path::PathBuf>,
    /// Where end-to-end encryption keeps each account's device file and message archive
    /// (`secure::default_dir()`: `<data dir>/chinwag/e2e`). `None`: encryption stays off.
    pub e2e_dir: Option<std::path::PathBuf>,
}

/// Spawns the driver on the current Tokio runtime.
pub fn start(cfg: ClientConfig) -> (mpsc::Sender<Command>, mpsc::Receiver<Event>, JoinHandle<()>) {
    let (command_tx, command_rx) = mpsc::channel(COMMAND_QUEUE);
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let task = tokio::spawn(run(cfg, command_rx, event_tx));
    (command_tx, event_rx, task)
}

/// The outcome of checking a server's certificate against the CAs and the known-servers file
/// before a session starts.
#[derive(Debug)]
pub enum CertCheck {
    /// Plaintext, CA-signed or pinned: go ahead.
    Trusted(Option<TlsInfo>),
    /// Never met: ask the user (or `--accept-new-cert`), then pin.
    Unknown { fingerprint: String },
    /// Pinned to something else: refuse, loudly.
    Changed { pinned: String, presented: String },
    /// The server could not be reached or TLS failed for another reason.
    Failed(ConnectError),
}

/// Connects once to see the certificate, and compares it with `known`.
pub async fn check_certificate(endpoint: &Endpoint, known: &KnownServers) -> CertCheck {
    let pinned = known.lookup(&endpoint.key()).map(str::to_owned);
    match transport::connect(endpoint, pinned).await {
        Ok((transport, tls)) => {
            drop(transport);
            CertCheck::Trusted(tls)
        }
        Err(ConnectError::Untrusted { fingerprint, .. }) => match known.check(&endpoint.key(), &fingerprint) {
            Verdict::Changed { pinned } => CertCheck::Changed { pinned, presented: fingerprint },
            _ => CertCheck::Unknown { fingerprint },
        },
        Err(e) => CertCheck::Failed(e),
    }
}

/// Why one connection ended.
enum End {
    /// Dropped (closed, reset, dead): reconnect.
    Lost(String),
    /// `/logout`: reconnect at once.
    Relogin,
    /// `/quit` or the front end went away.
    Quit,
}

struct Driver {
    cfg: ClientConfig,
    session: Session,
    commands: mpsc::Receiver<Command>,
    /// False once the front end has dropped its sender.
    commands_open: bool,
    events: mpsc::Sender<Event>,
    /// Events waiting for room in `events`.
    pending: VecDeque<Event>,
    /// The last `/discover` list, for `/connect N`.
    discovered: Vec<chinwag_discovery::Found>,
    /// Where `/discover` runs (spawned, so the connection goes on meanwhile) send their answer.
    lan_tx: mpsc::Sender<LanAnswer>,
    lan_rx: mpsc::Receiver<LanAnswer>,
    /// `/connect N` changed the endpoint: end this connection and start on the new one.
    switch_requested: bool,
    /// The logged-in account's end-to-end encryption device, once opened.
    secure: Option<Secure>,
    /// The local chat logs, while on.
    chat_log: Option<ChatLog>,
    /// The client log, if one could be opened.
    client_log: Option<ClientLog>,
}

async fn run(cfg: ClientConfig, commands: mpsc::Receiver<Command>, events: mpsc::Sender<Event>) {
    let session = Session::new(cfg.session.clone());
    let (lan_tx, lan_rx) = mpsc::channel(1);
    let mut d = Driver {
        cfg,
        session,
        commands,
        commands_open: true,
        events,
        pending: VecDeque::new(),
        discovered: Vec::new(),
        lan_tx,
        lan_rx,
        switch_requested: false,
        secure: None,
        chat_log: None,
        client_log: None,
    };
    if let Some(path) = d.cfg.client_log.clone() {
        match ClientLog::open(&path) {
            Ok(log) => d.client_log = Some(log),
            Err(e) => d.push(Event::Error { text: format!("cannot keep the client log {}: {e}", path.display()) }),
        }
    }
    if let Some(dir) = d.cfg.chat_log_dir.clone() {
        d.start_chat_log(&dir);
    }
    let mut backoff = Backoff::default();
    loop {
        if d.session.is_quitting() {
            break;
        }
        d.push(Event::Connecting { server: d.cfg.endpoint.key(), attempt: backoff.attempts() });
        let endpoint = d.cfg.endpoint.clone();
        let connect = transport::connect(&endpoint, d.cfg.pinned.clone());
        let result = d.while_handling_commands(connect, false).await;
        let end = match result {
            None => End::Quit,
            Some(Ok((transport, tls))) => {
                backoff.reset();
                let security = endpoint.security;
                d.push(Event::Connected { server: endpoint.key(), security, tls });
                d.session.connected(Instant::now());
                let end = d.connection(transport).await;
                let reason = match &end {
                    End::Lost(why) => why.clone(),
                    End::Relogin => "logging out".into(),
                    End::Quit => "quit".into(),
                };
                d.session.disconnected(&reason);
                d.drain_session();
                end
            }
            Some(Err(ConnectError::Untrusted { server, fingerprint })) if !d.cfg.others.is_empty() => {
                // One untrusted server of several is refused; the others may still be fine.
                let text = format!(
                    "{server} presented a certificate that is neither signed by a known authority nor pinned for \
                     it (SHA-256 {fingerprint}); refusing it and trying the network's next server (to pin it, run \
                     chinwag chat {server} alone once)"
                );
                d.push(Event::Error { text: text.clone() });
                End::Lost(text)
            }
            Some(Err(ConnectError::Untrusted { server, fingerprint })) if d.cfg.pinned.is_none() => {
                let text = format!(
                    "{server} presented a certificate that is not signed by a known authority and has never \
                     been pinned (SHA-256 {fingerprint}). Refusing to connect. Start chinwag chat again to \
                     check the fingerprint and pin it (or use --accept-new-cert)"
                );
                d.push(Event::Fatal { text });
                break;
            }
            Some(Err(ConnectError::Untrusted { server, fingerprint })) => {
                let text = format!(
                    "{server} presented a certificate that is neither signed by a known authority nor the one \
                     pinned for it (SHA-256 {fingerprint}). Refusing to connect. If the server's operator \
                     confirms the new fingerprint, restart with --accept-changed-cert {fingerprint}"
                );
                d.push(Event::Fatal { text });
                break;
            }
            Some(Err(e)) => {
                d.push(Event::ConnectFailed { server: endpoint.key(), reason: e.to_string() });
                End::Lost(e.to_string())
            }
        };
        match end {
            End::Quit => break,
            End::Relogin => continue,
            End::Lost(reason) => {
                if d.session.is_quitting() || d.session.quit_pending() {
                    break;
                }
                if !d.cfg.reconnect {
                    d.push(Event::Fatal { text: format!("connection lost ({reason}) and --no-reconnect was given") });
                    break;
                }
                tracing::info!(%reason, "connection lost");
                d.next_server();
                let delay = backoff.next_delay(rand::random::<f64>());
                d.push(Event::Reconnecting { delay_ms: delay.as_millis() as u64 });
                if d.while_handling_commands(tokio::time::sleep(delay), true).await.is_none() {
                    break;
                }
            }
        }
    }
    d.session.give_up();
    d.session.abandon_unsent("chinwag stopped before it could reconnect");
    d.drain_session();
    d.push(Event::Closed);
    for event in std::mem::take(&mut d.pending) {
        if d.events.send(event).await.is_err() {
            break;
        }
    }
}

/// Whether `msg` is a typing notice, the one kind of line that may travel as a datagram (it may
/// be lost or reordered without harm).
fn is_typing(msg: &Message) -> bool {
    msg.command.eq_ignore_ascii_case("TAGMSG") && msg.tag("+typing").is_some()
}

/// Sends a typing notice as one QUIC datagram; false if it must go on the stream instead (the
/// peer took no datagrams, or the line is too large for the path).
fn send_datagram(connection: &quinn::Connection, msg: &Message) -> bool {
    let mut line = Vec::new();
    msg.write_to(&mut line);
    while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
        line.pop();
    }
    let fits = connection.max_datagram_size().is_some_and(|max| line.len() <= max);
    fits && connection.send_datagram(line.into()).is_ok()
}

/// The next datagram on a QUIC connection; never resolves without one.
async fn read_datagram(connection: Option<&quinn::Connection>) -> Result<bytes::Bytes, quinn::ConnectionError> {
    match connection {
        Some(c) => c.read_datagram().await,
        None => std::future::pending().await,
    }
}

impl Driver {
    /// One datagram holds one line; only typing notices are taken from datagrams, anything else
    /// (or anything unparsable) is ignored.
    fn receive_datagram(&mut self, bytes: &[u8]) {
        if bytes.len() > MAX_LINE_LEN {
            return;
        }
        let line = bytes.strip_suffix(b"\n").unwrap_or(bytes);
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match Message::parse_bytes(line) {
            Ok(msg) if is_typing(&msg) => self.session.receive(msg, Instant::now()),
            Ok(msg) => tracing::debug!(command = %msg.command, "ignored a datagram that is not a typing notice"),
            Err(e) => tracing::debug!(error = %e, "unparsable datagram from the server"),
        }
    }

    /// Queues an event for the front end; every event passes here, so this is where the chat
    /// logs see them (decrypted private messages included).
    fn push(&mut self, event: Event) {
        self.log_chat(&event);
        if let Some(log) = self.client_log.as_mut() {
            let s = &self.session;
            let secrets = [
                s.cfg.credentials.as_ref().map_or("", |c| c.password.as_str()),
                s.pending_credentials.as_ref().map_or("", |c| c.password.as_str()),
                s.cfg.server_password.as_deref().unwrap_or(""),
            ];
            if let Err(e) = log.record(&event, &secrets) {
                self.client_log = None;
                self.pending.push_back(Event::Error { text: format!("the client log stopped: {e}") });
            }
        }
        self.pending.push_back(event);
    }

    /// A line for the client log that is no event (a certificate pinned from the LAN).
    fn log_client(&mut self, text: &str) {
        if let Some(log) = self.client_log.as_mut() {
            let _ = log.write(text, &[]);
        }
    }

    fn log_chat(&mut self, event: &Event) {
        let Some(log) = self.chat_log.as_mut() else { return };
        if let Err(e) = log.record(&self.cfg.endpoint.key(), event) {
            let text = format!("chat logs stopped: cannot write in {}: {e}", log.dir().display());
            self.chat_log = None;
            self.pending.push_back(Event::Error { text });
        }
    }

    /// `/log`, `/log on`, `/log off`.
    fn log_command(&mut self, on: Option<bool>) {
        let text = match (on, &self.chat_log) {
            (None, Some(log)) => format!("chat logs are on, in {}", log.dir().display()),
            (None, None) => "chat logs are off; /log on keeps them".to_owned(),
            (Some(true), Some(log)) => format!("chat logs are already on, in {}", log.dir().display()),
            (Some(true), None) => {
                let dir = self.cfg.chat_log_dir.clone().or_else(crate::config::default_chat_log_dir);
                return match dir {
                    Some(dir) => self.start_chat_log(&dir),
                    None => self.push(Event::Error {
                        text: "cannot tell where the user's data directory is; start with --log-dir DIR".into(),
                    }),
                };
            }
            (Some(false), _) => {
                self.chat_log = None;
                "chat logs are off".to_owned()
            }
        };
        self.push(Event::Info { text });
    }

    fn start_chat_log(&mut self, dir: &std::path::Path) {
        match ChatLog::open(dir) {
            Ok(log) => {
                self.chat_log = Some(log);
                let text = format!("chat logs on, in {} (plaintext, readable only by you)", dir.display());
                self.push(Event::Info { text });
            }
            Err(e) => self.push(Event::Error { text: format!("cannot keep chat logs in {}: {e}", dir.display()) }),
        }
    }

    /// Moves the session's events into the pending queue; a login (with `--account` at the
    /// start, or `/login` or `/register` during the session) opens the account's end-to-end
    /// encryption device, and a logout closes it.
    fn drain_session(&mut self) {
        while let Some(e) = self.session.poll_event() {
            let login = match &e {
                Event::LoggedIn { account } => Some(account.clone()),
                _ => None,
            };
            let logout = matches!(e, Event::LoggedOut);
            let ready = matches!(e, Event::Ready { .. });
            self.push(e);
            if let Some(account) = login {
                self.open_device(&account);
            }
            if logout && self.secure.take().is_some() {
                self.push(Event::Info { text: "end-to-end encryption off: logged out".into() });
            }
            if ready {
                self.publish_keys();
            }
        }
    }

    /// Opens (or creates) the device of `account` and publishes its keys. The passphrase is
    /// `CHINWAG_E2E_PASSPHRASE`, else the password the session logged in with (given with
    /// `--account`, or typed with `/login` or `/register`). A device open for another account
    /// is closed first.
    fn open_device(&mut self, account: &str) {
        match &self.secure {
            Some(secure) if chinwag_proto::casefold(secure.account()) == chinwag_proto::casefold(account) => {
                return self.publish_keys();
            }
            Some(_) => self.secure = None,
            None => {}
        }
        let Some(dir) = self.cfg.e2e_dir.clone() else {
            return self.push(Event::Info {
                text: "end-to-end encryption is off: there is no directory for its files".into(),
            });
        };
        let passphrase = std::env::var("CHINWAG_E2E_PASSPHRASE").ok().filter(|p| !p.is_empty()).or_else(|| {
            self.session
                .credentials()
                .filter(|c| chinwag_proto::casefold(&c.account) == chinwag_proto::casefold(account))
                .map(|c| c.password.clone())
        });
        let Some(passphrase) = passphrase else {
            return self.push(Event::Info {
                text: "end-to-end encryption is off: log in with a password (--account, /login), or set CHINWAG_E2E_PASSPHRASE".into(),
            });
        };
        // Opening derives the file key with Argon2id (a fraction of a second): off the
        // runtime's other tasks where the runtime allows it.
        let multi_thread =
            tokio::runtime::Handle::current().runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread;
        let opened = if multi_thread {
            tokio::task::block_in_place(|| Secure::open(&dir, account, &passphrase))
        } else {
            Secure::open(&dir, account, &passphrase)
        };
        match opened {
            Ok((secure, events)) => {
                let path = secure.path().display().to_string();
                let kept = crate::numeric::count(secure.archived(), "message", "messages");
                self.secure = Some(secure);
                self.pending.extend(events);
                self.push(Event::Info { text: format!("end-to-end encryption on (device {path}, {kept} archived)") });
                self.publish_keys();
            }
            Err(e) => self.push(Event::Error { text: format!("end-to-end encryption is off: {e}") }),
        }
    }

    /// Publishes the device's keys, once registered on the server (at every connection: the
    /// server answers with what is missing). Before that, lines cannot be sent.
    fn publish_keys(&mut self) {
        if self.session.phase() != crate::session::Phase::Ready {
            return;
        }
        let nick = self.session.nick().to_owned();
        if let Some(secure) = self.secure.as_mut() {
            let out = secure.connect(&nick);
            self.apply(out);
        }
    }

    /// Carries out what the device asked for.
    fn apply(&mut self, out: secure::Outcome) {
        for event in out.events {
            self.push(event);
        }
        for command in out.commands {
            self.session.command(command);
        }
        self.drain_session();
    }

    /// One line from the server: through the device first, then (unless it was encrypted) to
    /// the session.
    fn receive_line(&mut self, msg: Message, now: Instant) {
        let nick = self.session.nick().to_owned();
        if let Some(secure) = self.secure.as_mut() {
            let mut out = secure::Outcome::default();
            let encrypted = secure.handle(&msg, &nick, &mut out);
            self.apply(out);
            if encrypted {
                return;
            }
        }
        self.session.receive(msg, now);
    }

    /// End-to-end encryption's share of the user's commands; what is left goes to the session.
    fn secure_command(&mut self, command: Command) -> Option<Command> {
        let nick = self.session.nick().to_owned();
        let private = |target: &str| !target.starts_with(['#', '&']);
        let Some(secure) = self.secure.as_mut() else {
            return match command {
                Command::Verify { .. } | Command::Trust(_) => {
                    self.push(Event::Error {
                        text: "end-to-end encryption needs a login (--account, /login or /register)".into(),
                    });
                    None
                }
                other => Some(other),
            };
        };
        let ready = self.session.phase() == crate::session::Phase::Ready;
        let out = match command {
            // The device's lines cannot wait for a connection the way the session's text does.
            Command::Msg { target, text } if private(&target) && !ready => {
                let reason = "not connected; encrypted messages are not queued".to_owned();
                self.push(Event::NotSent { target, text, reason });
                return None;
            }
            Command::Msg { target, text } if private(&target) => secure.send(&target, text, &nick),
            Command::Say(text) => match self.session.current().map(str::to_owned) {
                Some(target) if private(&target) && !ready => {
                    let reason = "not connected; encrypted messages are not queued".to_owned();
                    self.push(Event::NotSent { target, text, reason });
                    return None;
                }
                Some(target) if private(&target) => secure.send(&target, text, &nick),
                _ => return Some(Command::Say(text)),
            },
            // Encrypted messages are shown from the archive (the server's copies cannot be
            // decrypted again); the session then asks the server for the rest.
            Command::History { limit } => match self.session.current().map(str::to_owned) {
                Some(target) if private(&target) => {
                    let events = secure.history(&target, limit);
                    self.pending.extend(events);
                    return Some(Command::History { limit });
                }
                _ => return Some(Command::History { limit }),
            },
            Command::Verify { nick: who, confirm } => secure.verify(&who, confirm, &nick),
            Command::Trust(who) => secure.trust(&who),
            other => return Some(other),
        };
        self.apply(out);
        None
    }

    /// Handles one command (or the front end going away, which means quit).
    fn take_command(&mut self, command: Option<Command>) {
        match command {
            Some(Command::Discover(port)) => self.discover(port),
            Some(Command::Connect(n)) => self.switch_to(n),
            Some(Command::Log(on)) => self.log_command(on),
            Some(c) => {
                if let Some(c) = self.secure_command(c) {
                    self.session.command(c);
                }
            }
            None => {
                self.commands_open = false;
                self.session.command(Command::Quit(None));
            }
        }
        self.drain_session();
    }

    /// Starts a LAN discovery on `port` (the default discovery port if `None`); its answer
    /// arrives on `lan_rx`.
    fn discover(&mut self, port: Option<u16>) {
        let options = chinwag_discovery::DiscoverOptions {
            timeout: DISCOVER_WAIT,
            port: port.unwrap_or(chinwag_discovery::DEFAULT_PORT),
            ..Default::default()
        };
        let text = format!("looking for chinwag servers on the LAN (UDP port {})…", options.port);
        self.push(Event::Info { text });
        let tx = self.lan_tx.clone();
        tokio::spawn(async move {
            let _ = tx.send(chinwag_discovery::discover_with(&options).await).await;
        });
    }

    /// Shows what `/discover` found and keeps it for `/connect N`.
    fn discovered(&mut self, answer: Option<LanAnswer>) {
        match answer {
            Some(Ok(found)) => {
                for text in lan::describe(&found) {
                    self.push(Event::Info { text });
                }
                self.discovered = found;
            }
            Some(Err(e)) => self.push(Event::Error { text: format!("LAN discovery failed: {e}") }),
            None => {}
        }
    }

    /// Moves to the network's next server, if there are others; the current one goes to the
    /// back of the list.
    fn next_server(&mut self) {
        if self.cfg.others.is_empty() {
            return;
        }
        let next = self.cfg.others.remove(0);
        let left = Server {
            endpoint: std::mem::replace(&mut self.cfg.endpoint, next.endpoint),
            pinned: std::mem::replace(&mut self.cfg.pinned, next.pinned),
        };
        let text = format!("trying the next server: {} (after {})", self.cfg.endpoint.key(), left.endpoint.key());
        self.log_client(&text);
        self.push(Event::Info { text });
        self.cfg.others.push(left);
    }

    /// `/connect N`: the Nth discovered server becomes the endpoint, pinned by the rule in
    /// [`lan::choose_pin`] (a pin in the known-servers file always beats an advertisement).
    fn switch_to(&mut self, n: usize) {
        let Some(found) = n.checked_sub(1).and_then(|i| self.discovered.get(i)).cloned() else {
            return self.push(Event::Error { text: format!("no server {n} in the list: /discover first") });
        };
        let Some(addr) = found.tls_addr() else {
            return self.push(Event::Error { text: format!("{} announces no TLS listener", found.name) });
        };
        let endpoint = Endpoint { host: addr.ip().to_string(), port: addr.port(), security: Security::Tls };
        let key = endpoint.key();
        let known = match self.cfg.known_servers.as_deref().map(KnownServers::load).transpose() {
            Ok(known) => known,
            Err(e) => return self.push(Event::Error { text: e.to_string() }),
        };
        let pinned = known.as_ref().and_then(|k| k.lookup(&key));
        let pin = match lan::choose_pin(pinned, found.fingerprint.as_deref()) {
            PinChoice::Pinned(p) => Some(p),
            PinChoice::Mismatch { pinned, advertised } => {
                self.push(Event::Error {
                    text: format!(
                        "WARNING: {key} advertises the fingerprint {advertised} on the LAN, but {pinned} is pinned \
                         for it. Keeping the pin: a server with another certificate will be refused."
                    ),
                });
                self.log_client(&format!("kept the pin of {key} ({pinned}); its LAN advertisement said {advertised}"));
                Some(pinned)
            }
            PinChoice::New(advertised) => {
                if let Some(mut known) = known {
                    if let Err(e) = known.pin(&key, &advertised) {
                        return self.push(Event::Error { text: e.to_string() });
                    }
                    self.log_client(&format!(
                        "pinned {key} with the fingerprint it advertised on the LAN: {advertised}"
                    ));
                    self.push(Event::Info {
                        text: format!("pinned {key} with the fingerprint it advertised: {advertised}"),
                    });
                }
                Some(advertised)
            }
            PinChoice::CaOnly => None,
        };
        let shown = pin.as_deref().unwrap_or("none: a CA-signed certificate is needed");
        self.push(Event::Info { text: format!("switching to {} at {key} (SHA-256 {shown})", found.name) });
        self.cfg.endpoint = endpoint;
        self.cfg.pinned = pin;
        // A server picked on the LAN replaces the list given at the start.
        self.cfg.others.clear();
        self.switch_requested = true;
    }

    /// Awaits `fut` while taking commands and delivering events. `None` if the user quit
    /// meanwhile; with `eager_quit` (between attempts) a quit waits for nothing.
    async fn while_handling_commands<F: std::future::Future>(&mut self, fut: F, eager_quit: bool) -> Option<F::Output> {
        tokio::pin!(fut);
        let events = self.events.clone();
        loop {
            if eager_quit {
                self.session.give_up();
            }
            if self.session.is_quitting() {
                return None;
            }
            tokio::select! {
                out = &mut fut => return Some(out),
                command = self.commands.recv(), if self.commands_open => self.take_command(command),
                answer = self.lan_rx.recv() => self.discovered(answer),
                permit = events.reserve(), if !self.pending.is_empty() => {
                    let Ok(permit) = permit else { self.pending.clear(); continue };
                    if let Some(event) = self.pending.pop_front() {
                        permit.send(event);
                    }
                }
            }
        }
    }

    /// Runs one connection until it ends.
    async fn connection(&mut self, transport: Transport) -> End {
        let datagrams = transport.datagrams();
        let (mut rd, mut wr) = tokio::io::split(transport);
        let mut reader = LineReader::new(MAX_LINE_LEN);
        let mut buf = vec![0u8; READ_CHUNK];
        let mut tick = tokio::time::interval(TICK);
        let mut quit_deadline: Option<tokio::time::Instant> = None;
        let events = self.events.clone();
        loop {
            let mut out = Vec::new();
            while let Some(msg) = self.session.poll_send() {
                tracing::trace!(command = %msg.command, "send");
                if let Some(connection) = datagrams.as_ref().filter(|_| is_typing(&msg)) {
                    if send_datagram(connection, &msg) {
                        continue;
                    }
                }
                msg.write_to(&mut out);
            }
            if !out.is_empty() {
                if let Err(e) = wr.write_all(&out).await.and(wr.flush().await) {
                    return End::Lost(format!("write failed: {e}"));
                }
            }
            self.drain_session();
            if self.session.take_reconnect_request() {
                return End::Relogin;
            }
            if std::mem::take(&mut self.switch_requested) {
                let _ = wr.write_all(b"QUIT :Switching servers\r\n").await;
                let _ = wr.flush().await;
                return End::Relogin;
            }
            if self.session.is_quitting() && quit_deadline.is_none() {
                quit_deadline = Some(tokio::time::Instant::now() + QUIT_GRACE);
            }
            let quit_timer = async {
                match quit_deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            let may_read = self.pending.len() < MAX_PENDING_EVENTS;
            tokio::select! {
                read = rd.read(&mut buf), if may_read => match read {
                    Ok(0) => return if quit_deadline.is_some() { End::Quit } else { End::Lost("the server closed the connection".into()) },
                    Ok(n) => {
                        reader.push(&buf[..n]);
                        let now = Instant::now();
                        while let Some(frame) = reader.next_frame() {
                            let Frame::Line(line) = frame else { continue };
                            match Message::parse_bytes(&line) {
                                Ok(msg) => self.receive_line(msg, now),
                                Err(e) => tracing::debug!(error = %e, "unparsable line from the server"),
                            }
                        }
                    }
                    Err(_) if quit_deadline.is_some() => return End::Quit,
                    // TLS reports a peer that vanished without closing properly (a crash, a
                    // kill) this way; to the user it is just a closed connection.
                    Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                        return End::Lost("the connection was cut".into());
                    }
                    Err(e) => return End::Lost(format!("read failed: {e}")),
                },
                datagram = read_datagram(datagrams.as_ref()), if may_read => {
                    // A connection that failed shows on the stream too; only a datagram counts here.
                    if let Ok(bytes) = datagram {
                        self.receive_datagram(&bytes);
                    }
                }
                command = self.commands.recv(), if self.commands_open => self.take_command(command),
                answer = self.lan_rx.recv() => self.discovered(answer),
                _ = tick.tick() => {
                    if !self.session.tick(Instant::now()) {
                        return End::Lost("the server stopped answering".into());
                    }
                }
                () = quit_timer => return End::Quit,
                permit = events.reserve(), if !self.pending.is_empty() => {
                    let Ok(permit) = permit else { self.pending.clear(); continue };
                    if let Some(event) = self.pending.pop_front() {
                        permit.send(event);
                    }
                }
            }
        }
    }
}
