//! What the core asks of storage, and what it gets back.
//!
//! The core never waits. It leaves a [`crate::Effect::Request`] (or a
//! [`crate::Effect::Persist`]) and the edge later calls [`crate::Server::complete`] with the
//! [`Response`]. Password hashing and checking also go through here: they are slow on purpose
//! and must not run on the task that owns the core.

/// Identifies a request so its response finds its way back.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// One message as history keeps it, or a room's event (draft/event-playback,
/// `handlers/events.rs`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryItem {
    pub msgid: String,
    pub time_ms: u64,
    /// `PRIVMSG` or `NOTICE`; or `JOIN`, `PART`, `QUIT`, `KICK`, `TOPIC`, `MODE`, `NICK` for a
    /// room's event, whose `text` holds its parameters after the room.
    pub command: String,
    /// `nick!user@host` at the time it was sent.
    pub sender: String,
    pub sender_account: Option<String>,
    /// As delivered: `#room` or the recipient's nick.
    pub target: String,
    pub text: String,
    /// Client-only tags in wire form (`+a=b;+c`), possibly empty.
    pub tags: String,
    /// The history key: a folded room name, or for private messages [`dm_conversation`].
    pub conversation: String,
    /// Accounts (folded) that may read a private conversation; empty for rooms.
    pub participants: Vec<String>,
    /// Also queue for delivery to this (offline) account.
    pub offline_for: Option<String>,
}

impl HistoryItem {
    /// Whether this is a room's event rather than a message. An event is stored without
    /// holding anything back (nobody waits for it to be durable).
    pub fn is_event(&self) -> bool {
        self.command != "PRIVMSG" && self.command != "NOTICE"
    }
}

/// The history key of a private conversation: both parties, folded, sorted, joined by NUL, so
/// both sides find the same conversation.
pub fn dm_conversation(a: &str, b: &str) -> String {
    let (a, b) = (chinwag_proto::casefold(a), chinwag_proto::casefold(b));
    if a <= b {
        format!("{a}\u{0}{b}")
    } else {
        format!("{b}\u{0}{a}")
    }
}

/// A point in history, by message or by time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    MsgId(String),
    Time(u64),
}

/// The shapes of a CHATHISTORY query.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryQuery {
    Latest { after: Option<Bound> },
    Before(Bound),
    After(Bound),
    Around(Bound),
    Between(Bound, Bound),
}

/// A room's durable state, written whenever it changes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSnapshot {
    pub name: String,
    pub created_ms: u64,
    pub topic: Option<(String, String, u64)>,
    /// Flags only, e.g. `+nt`.
    pub modes: String,
    pub key: Option<String>,
    pub limit: Option<u32>,
    /// (mask, setter, set at ms).
    pub bans: Vec<(String, String, u64)>,
    /// Ban exceptions (+e), like `bans`.
    pub excepts: Vec<(String, String, u64)>,
    /// Invite exceptions (+I), like `bans`.
    pub invex: Vec<(String, String, u64)>,
    /// The account (folded) that created the room; it always gets operator status there.
    pub founder: Option<String>,
}

/// Slow or stored work the edge does for the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// Hash `password`, derive its SCRAM credentials, and create the account.
    Register {
        account: String,
        email: Option<String>,
        password: String,
    },
    /// Check `password` against the account's stored hash. Always costs one hash, even for an
    /// unknown account, so timing does not reveal which accounts exist.
    CheckPassword {
        account: String,
        password: String,
    },
    /// Hash `password` and derive its SCRAM credentials, replacing both.
    SetPassword {
        account: String,
        password: String,
    },
    /// The SCRAM-SHA-256 credentials of `account` and a fresh server nonce (the core draws no
    /// random numbers). Answered with `Scram`; an unknown account is `NoSuchAccount`.
    ScramCredentials {
        account: String,
    },
    /// Check `password`, then delete the account and its waiting messages.
    DropAccount {
        account: String,
        password: String,
    },
    History {
        conversation: String,
        query: HistoryQuery,
        limit: usize,
        /// The room's events too (the client has draft/event-playback), not only messages.
        events: bool,
    },
    HistoryTargets {
        viewer: Option<String>,
        rooms: Vec<String>,
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    },
    /// Check `password` against a PHC string (an operator's, from the configuration); `None`
    /// checks against a dummy hash so an unknown name costs the same. Answered with `Done`.
    VerifyPassword {
        phc: Option<String>,
        password: String,
    },
    /// Re-read the configuration (REHASH). Answered with `Done`.
    Reload,
    /// Private messages waiting for `account`.
    Offline {
        account: String,
        limit: usize,
    },
    /// The end-to-end encryption key directory.
    Keys(crate::keys::KeyRequest),
    /// Client certificate fingerprints (NickServ CERT). Answered with `Certs`.
    Certs(CertRequest),
    /// The account a client certificate fingerprint is registered to (SASL EXTERNAL). Answered
    /// with `Account`: its canonical name, or `NoSuchAccount`.
    CertOwner {
        fingerprint: String,
    },
    /// One stored message by msgid, any conversation, unless redacted (REDACT looks up what it
    /// redacts). Answered with `Message`.
    Message {
        msgid: String,
    },
    /// Redact a stored message: out of history and offline queues, text erased. Answered with
    /// `Redacted`.
    Redact {
        msgid: String,
    },
    /// Every read marker of `account` (folded). Answered with `Markers`.
    ReadMarkers {
        account: String,
    },
    /// Move `account`'s (folded) read marker for `target` (folded) forward to `time_ms`, keeping
    /// at most `max` markers (the oldest goes). Answered with `Marker`.
    SetReadMarker {
        account: String,
        target: String,
        time_ms: u64,
        max: usize,
    },
    /// Cluster mode only: a nick claim in the claims bucket, not storage (`cluster/nicks.rs`).
    /// Answered with `Claim`.
    Claim(crate::cluster::ClaimRequest),
}

/// What storage did with a [`Request::SetReadMarker`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerSet {
    /// The marker as stored: the newer of the one asked for and the one stored before.
    pub time_ms: u64,
    /// Targets whose markers were deleted to keep within the bound.
    pub evicted: Vec<String>,
}

/// What NickServ CERT asks of storage. Fingerprints are 64 lower-case hex digits.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertRequest {
    /// Register `fingerprint` to `account` unless it has `max` already or another account has it.
    Add {
        account: String,
        fingerprint: String,
        max: usize,
    },
    Remove {
        account: String,
        fingerprint: String,
    },
    List {
        account: String,
    },
}

/// The answer to a [`CertRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertAnswer {
    Added,
    AlreadyThere,
    /// Registered to another account.
    Taken,
    /// The account has the most it may have.
    Full,
    /// Whether there was one to remove.
    Removed(bool),
    List(Vec<String>),
}

/// Why a request failed, as far as the user needs to know.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    AccountExists,
    NoSuchAccount,
    BadPassword,
    /// Storage is unavailable or overloaded; the message says what to tell the user.
    Unavailable(String),
}

/// The answer to a [`Request`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Response {
    /// Register / CheckPassword: the account's canonical name.
    Account(Result<String, Failure>),
    /// SetPassword / DropAccount.
    Done(Result<(), Failure>),
    /// History / Offline, oldest first.
    Messages(Result<Vec<HistoryItem>, Failure>),
    /// HistoryTargets: (target name, latest time ms), oldest first.
    Targets(Result<Vec<(String, u64)>, Failure>),
    /// Keys.
    Keys(Result<crate::keys::KeyAnswer, Failure>),
    /// ScramCredentials.
    Scram(Result<ScramLookup, Failure>),
    /// Certs.
    Certs(Result<CertAnswer, Failure>),
    /// Message: the message, `None` if there is none (or it was redacted).
    Message(Result<Option<HistoryItem>, Failure>),
    /// Redact: the offline queues the message left, `None` if there was nothing to redact.
    Redacted(Result<Option<Vec<String>>, Failure>),
    /// ReadMarkers: (target, time ms) pairs.
    Markers(Result<Vec<(String, u64)>, Failure>),
    /// SetReadMarker: `None` if the account does not exist (any more).
    Marker(Result<Option<MarkerSet>, Failure>),
    /// Claim.
    Claim(crate::cluster::ClaimAnswer),
}

/// An account's SCRAM credentials, for one exchange.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScramLookup {
    /// The account's canonical name.
    pub account: String,
    /// `None` for an account registered before SCRAM that has not logged in with its password
    /// (or changed it) since.
    pub credentials: Option<crate::scram::ScramCredentials>,
    /// The server's half of the nonce: fresh random printable characters, never ','.
    pub server_nonce: String,
}
