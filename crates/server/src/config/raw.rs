//! The configuration as written: the first of the two parsing stages.
//!
//! [`RawConfig`] mirrors the TOML file key for key (`deny_unknown_fields`, so a misspelt key is
//! an error that names it and lists the valid ones) and holds values as written. Its
//! `Default` is the documented default file, `default.toml`; a test keeps the two equal. The
//! second stage, [`RawConfig::validate`], turns it into a [`ServerConfig`] or explains which
//! key is wrong and what would be valid.
//!
//! To add a key: a field here (with its default in the `Default` impl), the same key with a
//! comment in `default.toml`, and its use in `validate`. Environment variables and `--set` work
//! for it without more code.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{LogSettings, ServerConfig};

use chinwag_core::{MAX_MULTILINE_BYTES, MAX_MULTILINE_LINES};

/// The whole file. Sections are tables; a section left out takes its defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawConfig {
    pub data_dir: String,
    pub server: RawServer,
    pub listen: RawListen,
    pub tls: RawTls,
    pub storage: RawStorage,
    pub history: RawHistory,
    pub accounts: RawAccounts,
    pub limits: RawLimits,
    pub log: RawLog,
    pub shutdown: RawShutdown,
    pub discovery: RawDiscovery,
    pub oper: Vec<RawOper>,
    pub web: RawWeb,
    pub cluster: RawCluster,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawWeb {
    pub listen: Vec<String>,
    pub listen_plain: Vec<String>,
    pub plain_public: bool,
    pub origins: Vec<String>,
    pub trusted_proxies: Vec<String>,
    pub allowed_hosts: Vec<String>,
    pub compression: bool,
}

impl Default for RawWeb {
    fn default() -> Self {
        RawWeb {
            listen: vec!["0.0.0.0:6698".into(), "[::]:6698".into()],
            listen_plain: Vec::new(),
            plain_public: false,
            origins: Vec::new(),
            trusted_proxies: Vec::new(),
            allowed_hosts: Vec::new(),
            compression: true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawAccounts {
    pub required: bool,
    pub min_password_length: u32,
    pub registration_before_connect: bool,
    pub email_required: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawServer {
    pub name: String,
    pub network: String,
    pub password: String,
    pub motd: Vec<String>,
    pub motd_file: String,
    pub default_rooms: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawListen {
    pub plaintext: Vec<String>,
    pub tls: Vec<String>,
    pub quic: Vec<String>,
    pub quic_enabled: bool,
    pub metrics: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawTls {
    pub cert: String,
    pub key: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawStorage {
    pub backend: String,
    pub url: String,
    pub history_retention_days: u32,
    pub sqlite_synchronous: String,
    pub max_held_kib: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawCluster {
    pub url: String,
    pub name: String,
    pub node: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawHistory {
    pub autoreplay_lines: u32,
    pub autoreplay_max_age_hours: u32,
    pub redaction_window_minutes: u32,
    pub events: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLimits {
    pub max_connections: u32,
    pub connections_per_address: u32,
    pub connections_per_subnet: u32,
    pub exempt: Vec<String>,
    pub new_connections_burst: u32,
    pub new_connections_interval_ms: u32,
    pub line_length: u32,
    pub handshake_timeout: u32,
    pub write_timeout: u32,
    pub flood_burst: u32,
    pub flood_interval_ms: u32,
    pub recvq_lines: u32,
    pub offline_queue_len: u32,
    pub nick_changes_burst: u32,
    pub nick_changes_interval: u32,
    pub registrations_burst: u32,
    pub registrations_interval: u32,
    pub login_free_failures: u32,
    pub login_lockout_failures: u32,
    pub login_lockout: u32,
    pub login_account_burst: u32,
    pub login_account_interval: u32,
    pub sendq: u32,
    pub ping_interval: u32,
    pub ping_timeout: u32,
    pub registration_timeout: u32,
    pub nick_grace: u32,
    pub channels_per_client: u32,
    pub max_targets: u32,
    pub bans_per_channel: u32,
    pub monitor_len: u32,
    pub multiline_max_bytes: u32,
    pub multiline_max_lines: u32,
    pub quic_max_half_open: u32,
    pub quic_retry_above: u32,
    pub quic_handshake_timeout: u32,
    pub quic_max_incoming: u32,
    pub quic_incoming_buffer_kib: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawLog {
    pub level: String,
    pub file: bool,
    pub keep_days: u32,
    pub json: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawDiscovery {
    pub enabled: bool,
    pub port: u16,
    pub groups: Vec<String>,
    pub interfaces: Vec<String>,
    pub answer_remote: bool,
    pub announce_seconds: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RawShutdown {
    pub grace_seconds: u32,
}

/// One `[[oper]]` entry. Both keys are required: an operator without a password is a mistake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawOper {
    pub name: String,
    pub password_hash: String,
}

impl Default for RawServer {
    fn default() -> Self {
        let core = chinwag_core::Config::default();
        RawServer {
            name: core.server_name,
            network: core.network_name,
            password: String::new(),
            motd: core.motd,
            motd_file: String::new(),
            default_rooms: core.default_channels,
        }
    }
}

impl Default for RawListen {
    fn default() -> Self {
        RawListen {
            plaintext: vec!["127.0.0.1:6667".into(), "[::1]:6667".into()],
            tls: vec!["0.0.0.0:6697".into(), "[::]:6697".into()],
            quic: Vec::new(),
            quic_enabled: true,
            metrics: String::new(),
        }
    }
}

impl Default for RawStorage {
    fn default() -> Self {
        RawStorage {
            backend: "sqlite".into(),
            url: String::new(),
            history_retention_days: super::DEFAULT_HISTORY_RETENTION_DAYS,
            sqlite_synchronous: "full".into(),
            max_held_kib: (super::DEFAULT_MAX_HELD_BYTES / 1024) as u32,
        }
    }
}

impl Default for RawCluster {
    fn default() -> Self {
        RawCluster { url: String::new(), name: "chinwag".into(), node: String::new() }
    }
}

impl Default for RawHistory {
    fn default() -> Self {
        let core = chinwag_core::Limits::default();
        RawHistory {
            autoreplay_lines: u32::try_from(core.autoreplay_lines).unwrap_or(u32::MAX),
            autoreplay_max_age_hours: (core.autoreplay_max_age.as_secs() / 3600) as u32,
            redaction_window_minutes: u32::try_from(core.redaction_window.as_secs() / 60).unwrap_or(u32::MAX),
            events: chinwag_core::Config::default().history_events,
        }
    }
}

impl Default for RawLimits {
    fn default() -> Self {
        let core = chinwag_core::Limits::default();
        let edge = super::EdgeLimits::default();
        let secs = |d: Duration| d.as_secs() as u32;
        let millis = |d: Duration| u32::try_from(d.as_millis()).unwrap_or(u32::MAX);
        let count = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        RawLimits {
            max_connections: count(edge.max_connections),
            connections_per_address: count(edge.connections_per_address),
            connections_per_subnet: count(edge.connections_per_subnet),
            exempt: edge.exempt.iter().map(ToString::to_string).collect(),
            new_connections_burst: edge.new_connections.burst,
            new_connections_interval_ms: millis(edge.new_connections.every),
            line_length: count(edge.line_len),
            handshake_timeout: secs(edge.tls_handshake_timeout),
            write_timeout: secs(edge.write_timeout),
            flood_burst: core.flood.burst,
            flood_interval_ms: millis(core.flood.every),
            recvq_lines: count(core.recvq_lines),
            offline_queue_len: count(core.offline_queue_len),
            nick_changes_burst: core.nick_changes.burst,
            nick_changes_interval: secs(core.nick_changes.every),
            registrations_burst: core.registrations.burst,
            registrations_interval: secs(core.registrations.every),
            login_free_failures: core.login_free_failures,
            login_lockout_failures: core.login_lockout_failures,
            login_lockout: secs(core.login_lockout),
            login_account_burst: core.login_account.burst,
            login_account_interval: secs(core.login_account.every),
            sendq: count(edge.sendq_lines),
            ping_interval: secs(core.ping_interval),
            ping_timeout: secs(core.ping_timeout),
            registration_timeout: secs(core.registration_timeout),
            nick_grace: secs(core.nick_grace),
            channels_per_client: count(core.channels_per_client),
            max_targets: count(core.max_targets),
            bans_per_channel: count(core.bans_per_channel),
            monitor_len: count(core.monitor_len),
            multiline_max_bytes: count(core.multiline_max_bytes),
            multiline_max_lines: count(core.multiline_max_lines),
            quic_max_half_open: count(edge.quic_max_half_open),
            quic_retry_above: count(edge.quic_retry_above),
            quic_handshake_timeout: secs(edge.quic_handshake_timeout),
            quic_max_incoming: count(edge.quic_max_incoming),
            quic_incoming_buffer_kib: count(edge.quic_incoming_buffer / 1024),
        }
    }
}

impl Default for RawLog {
    fn default() -> Self {
        RawLog { level: "info".into(), file: true, keep_days: 14, json: false }
    }
}

impl Default for RawDiscovery {
    fn default() -> Self {
        let d = chinwag_discovery::ResponderConfig::default();
        RawDiscovery {
            enabled: d.enabled,
            port: d.port,
            groups: d.groups.iter().map(ToString::to_string).collect(),
            interfaces: d.interfaces,
            answer_remote: d.answer_remote,
            announce_seconds: 0,
        }
    }
}

impl Default for RawAccounts {
    fn default() -> Self {
        let d = chinwag_core::AccountSettings::default();
        RawAccounts {
            required: false,
            min_password_length: u32::try_from(d.min_password_length).unwrap_or(u32::MAX),
            registration_before_connect: d.registration_before_connect,
            email_required: d.email_required,
        }
    }
}

impl Default for RawShutdown {
    fn default() -> Self {
        RawShutdown { grace_seconds: 10 }
    }
}

/// A value that cannot be used: which key, what it was, what would do.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{key} = {value}: {problem} (set by {origin})")]
pub struct InvalidValue {
    pub key: String,
    pub value: String,
    pub problem: String,
    pub origin: String,
}

/// Tells, for a key, where its value came from (for error messages).
pub trait Origins {
    fn origin_of(&self, key: &str) -> String;
}

impl RawConfig {
    /// The second stage: every value checked and converted. `default_data_dir` is used when
    /// `data_dir` is empty. Fails on the first wrong value, naming it.
    pub fn validate(
        &self,
        default_data_dir: impl FnOnce() -> Option<PathBuf>,
        origins: &dyn Origins,
    ) -> Result<ServerConfig, InvalidValue> {
        let bad = |key: &str, value: &dyn std::fmt::Debug, problem: &str| InvalidValue {
            key: key.to_owned(),
            value: format!("{value:?}"),
            problem: problem.to_owned(),
            origin: origins.origin_of(key),
        };
        let data_dir = if self.data_dir.is_empty() {
            default_data_dir().ok_or_else(|| {
                bad("data_dir", &self.data_dir, "cannot tell where the user's data directory is; give a directory")
            })?
        } else {
            PathBuf::from(&self.data_dir)
        };
        let mut cfg = ServerConfig::new(data_dir);

        let defaults = RawListen::default();
        let addrs = |key: &str, list: &[String]| -> Result<Vec<SocketAddr>, InvalidValue> {
            list.iter()
                .map(|a| {
                    a.parse().map_err(|_| {
                        bad(key, a, "not an address: expected ADDR:PORT such as 127.0.0.1:6667 or [::1]:6667")
                    })
                })
                .collect()
        };
        cfg.listen = addrs("listen.plaintext", &self.listen.plaintext)?;
        cfg.tls_listen = addrs("listen.tls", &self.listen.tls)?;
        // QUIC is TLS over UDP: unless told otherwise it listens wherever TLS does.
        cfg.quic_listen = match (self.listen.quic_enabled, self.listen.quic.is_empty()) {
            (false, _) => Vec::new(),
            (true, true) => cfg.tls_listen.clone(),
            (true, false) => addrs("listen.quic", &self.listen.quic)?,
        };
        // The default IPv6 addresses may be missing on a host without IPv6; explicit ones may not.
        for (list, default) in [(&self.listen.plaintext, &defaults.plaintext), (&self.listen.tls, &defaults.tls)] {
            if list == default {
                cfg.optional_listen
                    .extend(list.iter().filter_map(|a| a.parse::<SocketAddr>().ok()).filter(|a| a.is_ipv6()));
            }
        }
        if !self.listen.metrics.is_empty() {
            let addr = self.listen.metrics.parse().map_err(|_| {
                bad(
                    "listen.metrics",
                    &self.listen.metrics,
                    "not an address: expected ADDR:PORT such as 127.0.0.1:9667, or empty for no metrics",
                )
            })?;
            cfg.metrics_listen = Some(addr);
        }

        match (self.tls.cert.is_empty(), self.tls.key.is_empty()) {
            (true, true) => {}
            (false, false) => {
                cfg.tls_cert = Some(PathBuf::from(&self.tls.cert));
                cfg.tls_key = Some(PathBuf::from(&self.tls.key));
            }
            (false, true) => {
                return Err(bad(
                    "tls.cert",
                    &self.tls.cert,
                    "tls.key must be set too, to this certificate's private key",
                ))
            }
            (true, false) => {
                return Err(bad("tls.key", &self.tls.key, "tls.cert must be set too, to the key's certificate"))
            }
        }

        let s = &self.server;
        if s.name.is_empty() || s.name.len() > 63 || !chinwag_proto::is_valid_hostname(&s.name) {
            return Err(bad(
                "server.name",
                &s.name,
                "expected a host name of 1 to 63 characters such as irc.example.org",
            ));
        }
        if s.network.is_empty() || s.network.contains(|c: char| c.is_whitespace() || c.is_control()) {
            return Err(bad("server.network", &s.network, "expected a non-empty name without spaces"));
        }
        cfg.core.server_name.clone_from(&s.name);
        cfg.core.network_name.clone_from(&s.network);
        cfg.core.password = (!s.password.is_empty()).then(|| s.password.clone());
        cfg.core.motd.clone_from(&s.motd);
        cfg.motd_file = (!s.motd_file.is_empty()).then(|| PathBuf::from(&s.motd_file));
        for room in &s.default_rooms {
            if chinwag_proto::ChannelName::parse(room, cfg.core.limits.channel_len).is_err() {
                return Err(bad(
                    "server.default_rooms",
                    room,
                    "not a room name: expected # followed by letters, e.g. #general",
                ));
            }
        }
        cfg.core.default_channels.clone_from(&s.default_rooms);

        let st = &self.storage;
        cfg.store = match (st.backend.as_str(), st.url.as_str()) {
            ("sqlite", "") => super::StoreBackend::Sqlite,
            ("sqlite", url) => {
                return Err(bad(
                    "storage.url",
                    &chinwag_store::redact_url(url),
                    "only for backend = \"postgres\" (SQLite keeps DATA_DIR/chinwag.db)",
                ))
            }
            ("postgres", "") => {
                return Err(bad(
                    "storage.url",
                    &"",
                    "backend = \"postgres\" needs a URL, e.g. postgres://chinwag@127.0.0.1:5432/chinwag",
                ))
            }
            ("postgres", url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                super::StoreBackend::Postgres { url: url.to_owned() }
            }
            ("postgres", url) => {
                let shown = chinwag_store::redact_url(url);
                return Err(bad("storage.url", &shown, "expected postgres://USER:PASSWORD@HOST:PORT/DATABASE"));
            }
            (other, _) => return Err(bad("storage.backend", &other, "expected \"sqlite\" or \"postgres\"")),
        };
        cfg.history_retention = super::retention(st.history_retention_days);
        cfg.sqlite.synchronous = match st.sqlite_synchronous.as_str() {
            "full" => chinwag_store::Synchronous::Full,
            "normal" => chinwag_store::Synchronous::Normal,
            other => return Err(bad("storage.sqlite_synchronous", &other, "expected \"full\" or \"normal\"")),
        };
        if st.max_held_kib == 0 {
            return Err(bad("storage.max_held_kib", &st.max_held_kib, "must be at least 1"));
        }
        cfg.max_held_bytes = st.max_held_kib as usize * 1024;

        let h = &self.history;
        if h.autoreplay_lines as usize > chinwag_core::MAX_HISTORY {
            return Err(bad(
                "history.autoreplay_lines",
                &h.autoreplay_lines,
                &format!("expected 0 (off) to {}", chinwag_core::MAX_HISTORY),
            ));
        }
        cfg.core.limits.autoreplay_lines = h.autoreplay_lines as usize;
        cfg.core.limits.autoreplay_max_age = Duration::from_secs(u64::from(h.autoreplay_max_age_hours) * 3600);
        cfg.core.limits.redaction_window = Duration::from_secs(u64::from(h.redaction_window_minutes) * 60);
        cfg.core.history_events = h.events;
        cfg.core.accounts_required = self.accounts.required;

        let l = &self.limits;
        let positive = |key: &str, v: u32| if v == 0 { Err(bad(key, &v, "must be at least 1")) } else { Ok(v) };
        let secs = |key: &str, v: u32| positive(key, v).map(|v| Duration::from_secs(u64::from(v)));
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        let edge = &mut cfg.limits;
        edge.sendq_lines = positive("limits.sendq", l.sendq)? as usize;
        // 0: as many as the file limit allows (resolved at start).
        edge.max_connections = l.max_connections as usize;
        edge.connections_per_address = positive("limits.connections_per_address", l.connections_per_address)? as usize;
        edge.connections_per_subnet = positive("limits.connections_per_subnet", l.connections_per_subnet)? as usize;
        edge.exempt = l
            .exempt
            .iter()
            .map(|a| a.parse().map_err(|_| bad("limits.exempt", a, "not an IP address, e.g. 127.0.0.1 or ::1")))
            .collect::<Result<_, _>>()?;
        edge.new_connections = chinwag_core::Rate {
            burst: positive("limits.new_connections_burst", l.new_connections_burst)?,
            every: ms(l.new_connections_interval_ms),
        };
        let shortest = chinwag_proto::MAX_BODY_LEN as u32;
        if l.line_length < shortest || l.line_length as usize > chinwag_proto::MAX_LINE_LEN {
            return Err(bad(
                "limits.line_length",
                &l.line_length,
                &format!("expected {shortest} to {} bytes", chinwag_proto::MAX_LINE_LEN),
            ));
        }
        edge.line_len = l.line_length as usize;
        edge.tls_handshake_timeout = secs("limits.handshake_timeout", l.handshake_timeout)?;
        edge.write_timeout = secs("limits.write_timeout", l.write_timeout)?;
        edge.quic_max_half_open = positive("limits.quic_max_half_open", l.quic_max_half_open)? as usize;
        edge.quic_retry_above = l.quic_retry_above as usize;
        edge.quic_handshake_timeout = secs("limits.quic_handshake_timeout", l.quic_handshake_timeout)?;
        edge.quic_max_incoming = positive("limits.quic_max_incoming", l.quic_max_incoming)? as usize;
        edge.quic_incoming_buffer =
            positive("limits.quic_incoming_buffer_kib", l.quic_incoming_buffer_kib)? as usize * 1024;
        let lim = &mut cfg.core.limits;
        lim.ping_interval = secs("limits.ping_interval", l.ping_interval)?;
        lim.ping_timeout = secs("limits.ping_timeout", l.ping_timeout)?;
        lim.registration_timeout = secs("limits.registration_timeout", l.registration_timeout)?;
        lim.nick_grace = secs("limits.nick_grace", l.nick_grace)?;
        lim.channels_per_client = positive("limits.channels_per_client", l.channels_per_client)? as usize;
        lim.max_targets = positive("limits.max_targets", l.max_targets)? as usize;
        lim.bans_per_channel = positive("limits.bans_per_channel", l.bans_per_channel)? as usize;
        lim.monitor_len = positive("limits.monitor_len", l.monitor_len)? as usize;
        lim.multiline_max_bytes = positive("limits.multiline_max_bytes", l.multiline_max_bytes)? as usize;
        if lim.multiline_max_bytes > MAX_MULTILINE_BYTES {
            let why = format!("at most {MAX_MULTILINE_BYTES}");
            return Err(bad("limits.multiline_max_bytes", &l.multiline_max_bytes, &why));
        }
        // A multiline message is that many lines (and its BATCH) in a recipient's SendQ at once.
        lim.multiline_max_lines = positive("limits.multiline_max_lines", l.multiline_max_lines)? as usize;
        if lim.multiline_max_lines > MAX_MULTILINE_LINES {
            let why = format!("at most {MAX_MULTILINE_LINES}");
            return Err(bad("limits.multiline_max_lines", &l.multiline_max_lines, &why));
        }
        lim.flood = chinwag_core::Rate {
            burst: positive("limits.flood_burst", l.flood_burst)?,
            every: ms(l.flood_interval_ms),
        };
        lim.recvq_lines = positive("limits.recvq_lines", l.recvq_lines)? as usize;
        lim.offline_queue_len = positive("limits.offline_queue_len", l.offline_queue_len)? as usize;
        // A page of offline messages and its PING must fit the SendQ of a client that has not
        // read any of it yet, with room to spare for what else reaches it meanwhile.
        lim.offline_page = chinwag_core::Limits::default().offline_page.min((l.sendq as usize / 4).max(1));
        lim.nick_changes = chinwag_core::Rate {
            burst: positive("limits.nick_changes_burst", l.nick_changes_burst)?,
            every: Duration::from_secs(u64::from(l.nick_changes_interval)),
        };
        lim.registrations = chinwag_core::Rate {
            burst: positive("limits.registrations_burst", l.registrations_burst)?,
            every: Duration::from_secs(u64::from(l.registrations_interval)),
        };
        lim.login_free_failures = l.login_free_failures;
        lim.login_lockout_failures = positive("limits.login_lockout_failures", l.login_lockout_failures)?;
        if lim.login_lockout_failures <= lim.login_free_failures {
            return Err(bad(
                "limits.login_lockout_failures",
                &l.login_lockout_failures,
                "must be more than limits.login_free_failures",
            ));
        }
        lim.login_lockout = secs("limits.login_lockout", l.login_lockout)?;
        lim.login_account = chinwag_core::Rate {
            burst: positive("limits.login_account_burst", l.login_account_burst)?,
            every: Duration::from_secs(u64::from(l.login_account_interval)),
        };

        let g = &self.log;
        if let Err(e) = tracing_subscriber::EnvFilter::try_new(&g.level) {
            return Err(bad(
                "log.level",
                &g.level,
                &format!("{e}; expected a level such as \"info\" or a filter such as \"info,chinwag_server=debug\""),
            ));
        }
        cfg.log = LogSettings {
            level: g.level.clone(),
            file: g.file,
            keep_days: positive("log.keep_days", g.keep_days)?,
            json: g.json,
        };
        cfg.grace = Duration::from_secs(u64::from(self.shutdown.grace_seconds));

        let a = &self.accounts;
        let longest = chinwag_core::MAX_PASSWORD_LEN;
        let min_password_length = usize::try_from(a.min_password_length).unwrap_or(usize::MAX);
        if min_password_length == 0 || min_password_length > longest {
            let problem = format!("expected 1 to {longest} (the longest password accepted)");
            return Err(bad("accounts.min_password_length", &a.min_password_length, &problem));
        }
        cfg.core.accounts = chinwag_core::AccountSettings {
            min_password_length,
            registration_before_connect: a.registration_before_connect,
            email_required: a.email_required,
        };

        let d = &self.discovery;
        let mut discovery = chinwag_discovery::ResponderConfig { enabled: d.enabled, ..Default::default() };
        if d.port == 0 {
            return Err(bad("discovery.port", &d.port, "expected a UDP port from 1 to 65535"));
        }
        discovery.port = d.port;
        discovery.groups = d
            .groups
            .iter()
            .map(|g| match g.parse::<std::net::IpAddr>() {
                Ok(ip) if ip.is_multicast() => Ok(ip),
                _ => Err(bad(
                    "discovery.groups",
                    g,
                    "not a multicast address: expected IPv4 in 224.0.0.0/4 or IPv6 in ff00::/8, e.g. 239.255.12.48",
                )),
            })
            .collect::<Result<_, _>>()?;
        discovery.interfaces.clone_from(&d.interfaces);
        discovery.answer_remote = d.answer_remote;
        discovery.announce_every = (d.announce_seconds > 0).then(|| Duration::from_secs(u64::from(d.announce_seconds)));
        cfg.discovery = discovery;

        cfg.web = self.web.validate(&bad)?;
        // The web listener is an addition to IRC: a default address already taken (another
        // chinwag on this machine) is skipped with a warning rather than stopping the start.
        if self.web.listen == RawWeb::default().listen {
            cfg.optional_listen.extend(cfg.web.listen.iter().copied());
        }

        let mut seen = std::collections::HashSet::new();
        for (i, op) in self.oper.iter().enumerate() {
            let key = format!("oper[{i}]");
            if op.name.is_empty() || op.name.contains(|c: char| c.is_whitespace()) {
                return Err(bad(&format!("{key}.name"), &op.name, "expected a name without spaces"));
            }
            if !seen.insert(chinwag_proto::casefold(&op.name)) {
                return Err(bad(&format!("{key}.name"), &op.name, "another [[oper]] has this name"));
            }
            if argon2::PasswordHash::new(&op.password_hash).is_err() || !op.password_hash.starts_with("$argon2") {
                return Err(bad(
                    &format!("{key}.password_hash"),
                    &"(hidden)",
                    "expected an Argon2 PHC string ($argon2id$...) as printed by `chinwag admin hash-password`",
                ));
            }
            cfg.core
                .opers
                .push(chinwag_core::Operator { name: op.name.clone(), password_hash: op.password_hash.clone() });
        }
        cfg.cluster = self.cluster.validate(&cfg.store, bad)?;
        Ok(cfg)
    }
}

impl RawWeb {
    /// `[web]` checked: addresses parse, plain HTTP stays on loopback unless allowed, origins
    /// are `scheme://host[:port]`, proxies are addresses, allowed hosts are host names.
    fn validate(
        &self,
        bad: &dyn Fn(&str, &dyn std::fmt::Debug, &str) -> InvalidValue,
    ) -> Result<super::WebSettings, InvalidValue> {
        let addrs = |key: &str, list: &[String]| -> Result<Vec<SocketAddr>, InvalidValue> {
            list.iter()
                .map(|a| a.parse().map_err(|_| bad(key, a, "not an address: expected ADDR:PORT such as 0.0.0.0:6698")))
                .collect()
        };
        let listen = addrs("web.listen", &self.listen)?;
        let listen_plain = addrs("web.listen_plain", &self.listen_plain)?;
        if !self.plain_public {
            if let Some(addr) = listen_plain.iter().find(|a| !a.ip().is_loopback()) {
                return Err(bad(
                    "web.listen_plain",
                    addr,
                    "plain HTTP would carry passwords in clear: listen on loopback (for a reverse proxy on this \
                     machine), or set web.plain_public = true (--web-plain-public) if a proxy elsewhere terminates TLS",
                ));
            }
        }
        let origins = self
            .origins
            .iter()
            .map(|o| {
                crate::web::normalize_origin(o).ok_or_else(|| {
                    bad(
                        "web.origins",
                        o,
                        "not an origin: expected scheme://host[:port] such as https://chat.example.org",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let trusted_proxies = self
            .trusted_proxies
            .iter()
            .map(|a| {
                a.parse().map_err(|_| {
                    bad(
                        "web.trusted_proxies",
                        a,
                        "not an IP address or CIDR range, e.g. 127.0.0.1, ::1, 10.0.0.0/8 or fd00::/8",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        let allowed_hosts = self
            .allowed_hosts
            .iter()
            .map(|h| {
                crate::web::host_name(h).ok_or_else(|| {
                    bad(
                        "web.allowed_hosts",
                        h,
                        "not a host name: expected a name without scheme or port, e.g. chat.example.org",
                    )
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(super::WebSettings {
            listen,
            listen_plain,
            origins,
            trusted_proxies,
            allowed_hosts,
            compression: self.compression,
        })
    }
}

impl RawCluster {
    /// `None` without `cluster.url` (one server on its own); else the checked cluster settings.
    fn validate(
        &self,
        store: &super::StoreBackend,
        bad: impl Fn(&str, &dyn std::fmt::Debug, &str) -> InvalidValue,
    ) -> Result<Option<super::ClusterConfig>, InvalidValue> {
        let name = chinwag_bus::Name::new(&self.name)
            .map_err(|_| bad("cluster.name", &self.name, "expected 1 to 32 of a-z, 0-9 and '-', e.g. chinwag"))?;
        if self.url.is_empty() {
            if !self.node.is_empty() {
                return Err(bad("cluster.node", &self.node, "only with cluster.url (a node of a cluster)"));
            }
            return Ok(None);
        }
        let shown: Vec<String> = self.url.split(',').map(|u| chinwag_store::redact_url(u.trim())).collect();
        let shown = shown.join(",");
        let valid_url = |u: &str| {
            let u = u.trim();
            ["nats://", "tls://"].iter().any(|scheme| u.strip_prefix(scheme).is_some_and(|rest| !rest.is_empty()))
        };
        if !self.url.split(',').all(valid_url) {
            return Err(bad(
                "cluster.url",
                &shown,
                "expected nats://HOST:PORT (or tls://), several separated by commas",
            ));
        }
        if self.node.is_empty() {
            return Err(bad("cluster.node", &"", "a node of a cluster needs a name of its own, e.g. --node-name a"));
        }
        let node = chinwag_bus::Name::new(&self.node)
            .map_err(|_| bad("cluster.node", &self.node, "expected 1 to 32 of a-z, 0-9 and '-', e.g. a"))?;
        if !matches!(store, super::StoreBackend::Postgres { .. }) {
            return Err(bad(
                "cluster.url",
                &shown,
                "a cluster needs the PostgreSQL store, which every node shares (storage.backend = \"postgres\", or --store postgres://...)",
            ));
        }
        Ok(Some(super::ClusterConfig { url: self.url.clone(), name, node }))
    }
}
