//! The values that cross the [`crate::Store`] trait. Plain owned data, so the server can send
//! them to and from the store's thread.

/// An account to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAccount {
    /// The display name; uniqueness is checked on its ASCII-folded form.
    pub name: String,
    /// A PHC string (`$argon2id$...`). Opaque to the store: hashing and checking are the caller's.
    pub password_hash: String,
    /// SCRAM-SHA-256 credentials derived from the same password (RFC 5803 text), so that SASL
    /// SCRAM can log in without the password reaching the server. Opaque to the store.
    pub scram: Option<String>,
    pub email: Option<String>,
    pub created_ms: u64,
}

/// A registered account as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRecord {
    /// The display name as registered, whatever case it was looked up with.
    pub name: String,
    pub password_hash: String,
    /// See [`NewAccount::scram`]; `None` for an account that has not had a password login or
    /// change since SCRAM credentials were introduced.
    pub scram: Option<String>,
    pub email: Option<String>,
    pub created_ms: u64,
}

/// A room's durable state: what survives a restart. Members do not.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelRecord {
    /// The display name (`#Rust`); matched on its ASCII-folded form.
    pub name: String,
    pub created_ms: u64,
    pub topic: Option<TopicRecord>,
    /// Flag modes only, e.g. `+nt`; the key and the limit have their own fields.
    pub modes: String,
    /// `+k`.
    pub key: Option<String>,
    /// `+l`.
    pub limit: Option<u32>,
    /// `+b` entries, in the order they are listed.
    pub bans: Vec<BanRecord>,
    /// `+e` entries (ban exceptions), in the order they are listed.
    pub excepts: Vec<BanRecord>,
    /// `+I` entries (invite exceptions), in the order they are listed.
    pub invex: Vec<BanRecord>,
    /// The account (folded) that registered the room, if any; it keeps operator status there.
    pub founder: Option<String>,
}

/// A room's topic and who set it when (for `RPL_TOPICWHOTIME`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TopicRecord {
    pub text: String,
    pub setter: String,
    pub set_at_ms: u64,
}

/// One entry of a ban, ban-exception or invite-exception list (for `RPL_BANLIST` and its kin).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanRecord {
    pub mask: String,
    pub setter: String,
    pub set_at_ms: u64,
}

/// One `PRIVMSG` or `NOTICE` as history keeps it (`TAGMSG` is not stored), or a room's event
/// (`JOIN`, `PART`, `QUIT`, `KICK`, `TOPIC`, `MODE`, `NICK`) kept for draft/event-playback:
/// its `text` holds the event's parameters after the room (see the core's `handlers/events.rs`).
///
/// The same type goes in ([`crate::Store::append`]) and comes out ([`crate::Store::history`],
/// [`crate::Store::offline`]). Coming out, `participants` are those of the whole conversation
/// (sorted), and `offline_for` is the queue's account (folded) from `offline` and `None` from
/// `history`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    /// Unique across the store. Sorts like time (lexicographic order is the order of sending),
    /// which makes `(time_ms, msgid)` a total order.
    pub msgid: String,
    /// Server time of the message, unix milliseconds.
    pub time_ms: u64,
    /// `PRIVMSG` or `NOTICE`, or the command of a room event.
    pub command: String,
    /// `nick!user@host` at the time it was sent.
    pub sender: String,
    /// The sender's account, if logged in (for the `account` tag on replay).
    pub sender_account: Option<String>,
    /// As delivered: `#room`, or the recipient's nick.
    pub target: String,
    pub text: String,
    /// Client-only tags in wire form (`+a=b;+c`), possibly empty.
    pub tags: String,
    /// The history key, opaque to the store. For a room, its folded name. For a private
    /// message, a key both parties compute alike, e.g. both folded account names sorted and
    /// joined by NUL (`"alice\0bob"`); the caller must make sure two different pairs never
    /// share a key.
    pub conversation: String,
    /// Who may discover this conversation with [`crate::Store::history_targets`], and whose
    /// private conversations [`crate::Store::drop_account`] forgets: the folded account names of
    /// the parties of a private message (one or two; none if neither is logged in). Empty for
    /// room messages, whose visibility the caller decides. The store keeps the union per
    /// conversation, so listing them on every message costs nothing after the first.
    pub participants: Vec<String>,
    /// If set, also queue the message for delivery to this account (any case) in the same
    /// transaction. Ignored if there is no such account. An encrypted message waits for one
    /// device instead: [`crate::device_queue`] names its queue, kept while the device exists.
    pub offline_for: Option<String>,
}

impl StoredMessage {
    /// Whether this is a room event rather than a message: only
    /// [`crate::Store::history_with_events`] reads those.
    pub fn is_event(&self) -> bool {
        self.command != "PRIVMSG" && self.command != "NOTICE"
    }
}

/// The shapes of an IRCv3 `CHATHISTORY` query. Bounds are exclusive unless said otherwise, and
/// results always come oldest first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HistoryQuery {
    /// `LATEST`: the most recent `limit` messages; with a bound, only those after it.
    Latest { after: Option<Bound> },
    /// `BEFORE`: the `limit` messages just before the bound.
    Before(Bound),
    /// `AFTER`: the `limit` messages just after the bound.
    After(Bound),
    /// `AROUND`: about `limit / 2` messages before the bound and the rest from the bound on
    /// (the message itself for a msgid, messages at exactly that millisecond for a time). When
    /// one side runs short, the other side makes up for it, up to `limit` in all.
    Around(Bound),
    /// `BETWEEN`: messages strictly between the two bounds, counted from the first. If the first
    /// bound is the later one, that is the `limit` messages just before it (and after the
    /// second); otherwise the `limit` messages just after it (and before the second).
    Between(Bound, Bound),
}

/// A point in a conversation's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Bound {
    /// A message of this conversation (`msgid=`). The bound sits exactly at that message.
    MsgId(String),
    /// A server time in unix milliseconds (`timestamp=`). The bound sits at that millisecond:
    /// "before" and "after" both exclude messages sent in it.
    Time(u64),
}

/// One line of a `CHATHISTORY TARGETS` answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryTarget {
    /// The conversation key, for a follow-up [`crate::Store::history`] call.
    pub conversation: String,
    /// The name to show the viewer: the room's name as delivered, or the other party's nick on
    /// the latest message (the recipient if the viewer sent it, else the sender).
    pub name: String,
    /// Time of the conversation's latest message within the asked range.
    pub latest_ms: u64,
}

/// One read marker (IRCv3 `draft/read-marker`): the time of the last message an account has
/// read in one conversation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReadMarker {
    /// The conversation as the caller names it (for chinwag, a folded room name or nick); opaque
    /// to the store, like [`StoredMessage::conversation`].
    pub target: String,
    /// Server time of the last message read, unix milliseconds.
    pub time_ms: u64,
}

/// What [`crate::Store::set_read_marker`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MarkerSet {
    /// The marker as stored now: the newer of the one given and the one stored before (a
    /// marker never moves back).
    pub time_ms: u64,
    /// The targets whose markers were deleted to make room for this one, sorted: empty unless
    /// the account had as many as it may have; then the one with the oldest time went (more,
    /// if the bound was lowered since).
    pub evicted: Vec<String>,
}
