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
    /// Only logged-in users may join rooms and send messages (`accounts.required`); guests may
    /// register, log in and talk to NickServ.
    pub accounts_required: bool,
    pub limits: Limits,
    /// Who may become an IRC operator with OPER (see `handlers/oper.rs`).
    pub opers: Vec<Operator>,
    /// How accounts are registered.
    pub accounts: AccountSettings,
    /// Rooms' events (JOIN, PART, QUIT, KICK, TOPIC, MODE, NICK) are kept in their history, for
    /// clients with draft/event-playback (`history.events`).
    pub history_events: bool,
}

/// Account registration rules (`[accounts]` in the file), advertised in the
/// `draft/account-registration` capability's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountSettings {
    /// Shortest password (bytes) for a new account or a password change. Default 8.
    pub min_password_length: usize,
    /// Whether `REGISTER` may come before the connection is registered (`before-connect`).
    /// Default true; when false it is refused with `COMPLETE_CONNECTION_REQUIRED`.
    pub registration_before_connect: bool,
    /// Whether a new account must give an email address (`email-required`). Default false.
    pub email_required: bool,
}

impl Default for AccountSettings {
    fn default() -> Self {
        AccountSettings { min_password_length: 8, registration_before_connect: true, email_required: false }
    }
}

impl AccountSettings {
    /// The `draft/account-registration` capability's value: its flags, comma separated, or
    /// `None` with none.
    pub fn cap_value(&self) -> Option<String> {
        let flags: Vec<&str> =
            [(self.registration_before_connect, "before-connect"), (self.email_required, "email-required")]
                .into_iter()
                .filter_map(|(on, flag)| on.then_some(flag))
                .collect();
        (!flags.is_empty()).then(|| flags.join(","))
    }
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
    /// Longest nick, in bytes (ISUPPORT NICKLEN).
    pub nick_len: usize,
    /// Longest user name from USER, in bytes (USERLEN).
    pub user_len: usize,
    /// Longest room name, `#` included (CHANNELLEN).
    pub channel_len: usize,
    /// Longest topic (TOPICLEN); longer ones are cut on a character boundary.
    pub topic_len: usize,
    /// Longest KICK and QUIT reason (KICKLEN).
    pub kick_len: usize,
    /// Longest away message (AWAYLEN).
    pub away_len: usize,
    /// Longest real name from USER and SETNAME.
    pub realname_len: usize,
    /// Channels one client may be in at once.
    pub channels_per_client: usize,
    /// Rooms one account may found. Founded rooms outlive their members (they are stored), so
    /// without a bound one account could fill the database; further rooms are ordinary.
    pub rooms_per_account: usize,
    /// Targets of one PRIVMSG/NOTICE/TAGMSG/KICK.
    pub max_targets: usize,
    /// Mode changes with a parameter in one MODE command.
    pub modes_per_command: usize,
    /// Entries in each of one channel's lists: bans (+b), ban exceptions (+e), invite exceptions (+I).
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
    /// The per-client command budget ("fake lag"): every command costs at least one unit,
    /// expensive ones more (see `flood.rs`). Past the burst, commands wait in the client's
    /// RecvQ and run at the steady rate.
    pub flood: Rate,
    /// Extra units a JOIN costs per room actually joined (each sends NAMES and a topic).
    pub join_cost: u32,
    /// Extra units a password check costs (Argon2id is the most expensive thing we do).
    pub login_cost: u32,
    /// Lines a client may have waiting in its RecvQ; one more and it is dropped with
    /// "Excess flood".
    pub recvq_lines: usize,
    /// Bytes (roughly: tags, command and parameters) a client may have waiting in its RecvQ.
    pub recvq_bytes: usize,
    /// Nick changes after registration; faster ones are refused with 438 (everyone who shares
    /// a room sees each change, so they are a flood of their own).
    pub nick_changes: Rate,
    /// Accounts created per address (an IPv6 address counts as its /64); loopback is exempt.
    pub registrations: Rate,
    /// Messages one offline queue (an account's, or an encryption device's) may hold; a
    /// message beyond it is refused and its sender told.
    pub offline_queue_len: usize,
    /// Offline messages sent at a time; the next page goes once the client acknowledged this
    /// one (its PONG), so a page must fit a connection's SendQ.
    pub offline_page: usize,
    /// Failed logins per (account, address) before each further attempt waits (an address,
    /// over all accounts, may fail `throttle::ADDRESS_SHARE` times as often). Attempts still
    /// being checked count as failures.
    pub login_free_failures: u32,
    /// Failed logins after which attempts are refused for `login_lockout`.
    pub login_lockout_failures: u32,
    /// How long a locked-out account or address is refused.
    pub login_lockout: Duration,
    /// Quiet time after which an account's or address's failures are forgotten.
    pub login_forget_after: Duration,
    /// Login attempts on one account from addresses that already have failures, whichever
    /// address they come from. It only slows: an address with no failures is never held back
    /// by it, so an attacker elsewhere cannot lock the owner out.
    pub login_account: Rate,
    /// Room lines replayed on JOIN to a client that did not enable `draft/chathistory` (and so
    /// cannot ask for them), like Ergo's `autoreplay-on-join`; 0 turns it off. At most
    /// [`crate::MAX_HISTORY`], so that a join's burst stays far below a SendQ.
    pub autoreplay_lines: usize,
    /// Only lines younger than this are replayed on JOIN; zero: no age limit.
    pub autoreplay_max_age: Duration,
    /// How long after sending it a user may still redact (`REDACT`) a message of their own;
    /// zero: no limit. Room operators and IRC operators are not bound by it.
    pub redaction_window: Duration,
    /// Bytes of text one draft/multiline message may hold (its lines' text, plus one for each
    /// line break), advertised as `max-bytes`.
    pub multiline_max_bytes: usize,
    /// Lines one draft/multiline message may hold, advertised as `max-lines`.
    pub multiline_max_lines: usize,
    /// Time a client has to close a multiline batch it opened; an open batch past it is
    /// dropped with `FAIL BATCH MULTILINE_INVALID` (its lines are held in memory until then).
    pub multiline_timeout: Duration,
}

/// The most [`Limits::multiline_max_bytes`] may be (the server's configuration refuses more): a
/// multiline message is held whole while its batch is open, delivered whole, and crosses nodes
/// as one payload (`cluster/codec.rs` sizes its strings and payloads for it).
pub const MAX_MULTILINE_BYTES: usize = 65536;
/// The most [`Limits::multiline_max_lines`] may be: each line is a line in every recipient's
/// SendQ.
pub const MAX_MULTILINE_LINES: usize = 1000;

impl Limits {
    /// The `draft/multiline` capability's value: `max-bytes=N,max-lines=M`.
    pub fn multiline_cap_value(&self) -> String {
        format!("max-bytes={},max-lines={}", self.multiline_max_bytes, self.multiline_max_lines)
    }
}

/// A rate as a token bucket: `burst` units at once, then one more every `every`. An `every`
/// of zero means no limit (for tests and private servers that trust their users).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Units that may be spent at once, from a full bucket.
    pub burst: u32,
    /// Time to earn back one unit.
    pub every: Duration,
}

impl Rate {
    /// The time it takes to earn back a full burst.
    pub fn window(&self) -> Duration {
        self.every.saturating_mul(self.burst)
    }
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
            rooms_per_account: 20,
            max_targets: 4,
            modes_per_command: 4,
            bans_per_channel: 100,
            monitor_len: 100,
            whowas_len: 2048,
            ping_interval: Duration::from_secs(90),
            ping_timeout: Duration::from_secs(60),
            registration_timeout: Duration::from_secs(60),
            nick_grace: Duration::from_secs(30),
            // 30 units covers a client's whole connect burst (CAP, SASL, JOINs, WHOs); then
            // 2 per second, which no person typing reaches and clients' own anti-flood respects.
            flood: Rate { burst: 30, every: Duration::from_millis(500) },
            join_cost: 2,
            login_cost: 5,
            // Half a minute of steady rate: enough for a paste, too little to pile up memory.
            recvq_lines: 64,
            recvq_bytes: 64 * 1024,
            nick_changes: Rate { burst: 3, every: Duration::from_secs(20) },
            registrations: Rate { burst: 3, every: Duration::from_secs(15 * 60) },
            // A week of an active private conversation, about 1 MB of text per account at most.
            offline_queue_len: 1000,
            // A page and its PING stay far below the default SendQ (2,048 lines).
            offline_page: 100,
            login_free_failures: 3,
            login_lockout_failures: 10,
            login_lockout: Duration::from_secs(15 * 60),
            login_forget_after: Duration::from_secs(60 * 60),
            login_account: Rate { burst: 10, every: Duration::from_secs(60) },
            // Enough to see what a conversation is about; a day, so that a quiet room does not
            // greet a newcomer with last month's lines as if they were news.
            autoreplay_lines: 20,
            autoreplay_max_age: Duration::from_secs(24 * 60 * 60),
            // A day: long enough to take back what was said in haste, short enough that old
            // conversations stay as everyone read them.
            redaction_window: Duration::from_secs(24 * 60 * 60),
            // Ergo's byte bound: a screenful of code or a long paragraph. 100 lines of relayed
            // PRIVMSGs (about 50 KB with prefixes) stay far below a connection's SendQ.
            multiline_max_bytes: 4096,
            multiline_max_lines: 100,
            // A batch is sent in one go; one still open after this was abandoned.
            multiline_timeout: Duration::from_secs(30),
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
            accounts_required: false,
            limits: Limits::default(),
            opers: Vec::new(),
            accounts: AccountSettings::default(),
            history_events: true,
        }
    }
}
