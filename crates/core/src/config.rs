//! What the core needs to know about its deployment. Built by the edge from flags and files.

use std::time::Duration;

/// Settings the core reads. Every limit the core enforces lives here, not in literals.
#[derive(Clone, Debug)]
pub struct Config {
    /// Our name in prefixes and numerics, e.g. `chinwag.local`.
    pub server_name: String,
    /// ISUPPORT NETWORK.
    pub network_name: String,
    /// Shown in 002/004/351.
    pub version: String,
    /// Lines of the message of the day (without the "- " prefix).
    pub motd: Vec<String>,
    /// A server password that PASS must match before registration, if set.
    pub password: Option<String>,
    /// Rooms that exist from the first start, are listed when empty and never disappear.
    pub default_channels: Vec<String>,
    pub limits: Limits,
    /// Who may become an IRC operator with OPER (see `handlers/oper.rs`).
    pub opers: Vec<Operator>,
}

/// An IRC operator's credentials. Only the Argon2id hash is kept; OPER checks it off the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operator {
    pub name: String,
    /// A PHC string, e.g. `$argon2id$v=19$...`.
    pub password_hash: String,
}

/// Every bound the core enforces on what clients may do or hold.
#[derive(Clone, Debug)]
pub struct Limits {
    pub nick_len: usize,
    pub user_len: usize,
    pub channel_len: usize,
    pub topic_len: usize,
    pub kick_len: usize,
    pub away_len: usize,
    pub realname_len: usize,
    /// Channels one client may be in at once.
    pub channels_per_client: usize,
    /// Targets of one PRIVMSG/NOTICE/TAGMSG/KICK.
    pub max_targets: usize,
    /// Mode changes with a parameter in one MODE command.
    pub modes_per_command: usize,
    /// Entries in one channel's ban list.
    pub bans_per_channel: usize,
    /// Nicks one client may MONITOR.
    pub monitor_len: usize,
    /// Entries kept for WHOWAS, over all nicks.
    pub whowas_len: usize,
    /// Silence after which we PING a client.
    pub ping_interval: Duration,
    /// Time a client has to answer our PING before it is dropped.
    pub ping_timeout: Duration,
    /// Time an unregistered connection has to finish registration.
    pub registration_timeout: Duration,
    /// Time someone using a registered nick has to log in before being renamed.
    pub nick_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            nick_len: 32,
            user_len: 18,
            channel_len: 64,
            topic_len: 390,
            kick_len: 390,
            away_len: 390,
            realname_len: 200,
            channels_per_client: 100,
            max_targets: 4,
            modes_per_command: 4,
            bans_per_channel: 100,
            monitor_len: 100,
            whowas_len: 2048,
            ping_interval: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(60),
            registration_timeout: Duration::from_secs(60),
            nick_grace: Duration::from_secs(30),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Config {
            server_name: "chinwag.local".into(),
            network_name: "chinwag".into(),
            version: concat!("chinwag-", env!("CARGO_PKG_VERSION")).into(),
            motd: vec!["Welcome to chinwag.".into()],
            password: None,
            default_channels: vec!["#general".into(), "#tech".into(), "#random".into()],
            limits: Limits::default(),
            opers: Vec::new(),
        }
    }
}
