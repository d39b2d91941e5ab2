//! chinwag's durable state behind one synchronous trait: accounts, rooms, message history and
//! offline queues.
//!
//! What it is: the [`Store`] trait, phrased in domain operations ("append this batch of
//! messages", "the latest 50 messages of `#rust`") rather than keys and bytes, so that a
//! PostgreSQL backend for multi-node deployments can implement it without pretending to be a
//! key-value store; [`SqliteStore`], the embedded default (one file in the data directory, WAL,
//! versioned migrations); [`PostgresStore`], the same on PostgreSQL; and [`conformance`], the
//! one test suite every backend must pass.
//!
//! What it is not: it depends on no other chinwag crate and on nothing async. It does not hash
//! passwords (it stores an opaque PHC string), does not decide who may read what (the caller
//! checks room membership and builds private-conversation keys), and never runs on the async
//! runtime: the server owns one store on a dedicated thread and sends it requests (the SQLite
//! store starts one more thread of its own, for checkpoints). Every method
//! takes `&mut self`; a store is used from one thread at a time.
//!
//! Layout:
//! - this file: the [`Store`] trait and [`StoreError`].
//! - `record`: the values that cross the trait ([`StoredMessage`], [`HistoryQuery`], [`ReadMarker`], ...).
//! - `sqlite/`: [`SqliteStore`]; `open.rs` (opening, refusals, [`OpenError`]), `schema.rs`
//!   (migrations), `history.rs` (messages, targets, retention, offline queues, redaction),
//!   `markers.rs` (read markers), `directory.rs`
//!   (accounts and rooms), `checkpoint.rs` (the thread that copies the WAL back into the
//!   database file, so that commits do not).
//! - `postgres/`: [`PostgresStore`], the same trait on PostgreSQL for deployments that share
//!   one database; `open.rs` (URL, TLS, refusals, [`PostgresOpenError`]), `schema.rs`
//!   (migrations), `history.rs`, `directory.rs`, `keys.rs` as for SQLite.
//! - `migrate`: copying a SQLite store into an empty PostgreSQL database.
//! - `conformance/`: the backend test suite, [`conformance::run_all`].
//! - `test_db`: a throwaway PostgreSQL database per test ([`test_db::TestDatabase`]).
//!
//! # Names and keys
//!
//! Account and room names are compared under ASCII case folding (`CASEMAPPING=ascii`): the store
//! keeps the display name as given and a folded key beside it. History is keyed by an opaque
//! `conversation` string the caller builds (see [`StoredMessage::conversation`]); the store never
//! folds or parses it.
//!
//! # Ordering
//!
//! Messages are ordered by `(time_ms, msgid)`. Callers hand out msgids that sort like time, so
//! this is the order they were sent in, and it is total even when two messages share a
//! millisecond: msgid-based paging neither skips nor repeats.
//!
//! # Durability
//!
//! A write that returned `Ok` is committed: it survives the process being killed at any moment
//! after, and with the SQLite default ([`Synchronous::Full`]) a power cut too. Batch messages
//! into one [`Store::append`] (group commit): a commit costs about the same for one message as
//! for a thousand.

mod keys;
mod postgres;
mod record;
mod sql;
mod sqlite;

pub mod conformance;
pub mod migrate;
pub mod test_db;

pub use keys::{device_queue, ClaimedKey, DeviceKeys, DevicePublished, KeyCounts, SignedKey};
pub use postgres::{redact_url, PostgresOpenError, PostgresStore};
pub use record::{
    AccountRecord, BanRecord, Bound, ChannelRecord, HistoryQuery, HistoryTarget, MarkerSet, NewAccount, ReadMarker,
    StoredMessage, TopicRecord,
};
pub use sqlite::{OpenError, SqliteOptions, SqliteStore, Synchronous};

/// Durable state of one chinwag server (or, with a shared backend, of a network).
///
/// Every operation is synchronous and complete when it returns: a write that returned `Ok` has
/// been committed with the backend's durability settings. Implementations are used from one
/// thread at a time, hence `&mut self` throughout.
pub trait Store: Send + 'static {
    /// Trouble in the backend's own background work (SQLite's checkpoints) that failed no call,
    /// for the log; `None` when all is well.
    fn background_error(&self) -> Option<String> {
        None
    }
    /// Registers an account. [`StoreError::AccountExists`] if the name is taken, compared under
    /// ASCII case folding.
    fn create_account(&mut self, account: &NewAccount) -> Result<(), StoreError>;
    /// Looks an account up by name (any case).
    fn account(&mut self, name: &str) -> Result<Option<AccountRecord>, StoreError>;
    /// Every account's display name, ordered by folded name; the server loads these at start.
    fn account_names(&mut self) -> Result<Vec<String>, StoreError>;
    /// Replaces an account's password hash and its SCRAM credentials together (`None` clears
    /// them: credentials of the old password must never outlive it); `false` if there is no
    /// such account.
    fn set_password(&mut self, name: &str, password_hash: &str, scram: Option<&str>) -> Result<bool, StoreError>;
    /// Sets SCRAM credentials derived at a password login, only if the account's hash is still
    /// `password_hash` (the password they were derived from is still the account's: a password
    /// change that raced the login wins). `true` if they were stored.
    fn set_scram(&mut self, name: &str, password_hash: &str, scram: &str) -> Result<bool, StoreError>;
    /// Registers a client certificate fingerprint to an account (any case), unless the account
    /// already has `max` of them or the fingerprint belongs to another account. The store does
    /// not check the fingerprint's form; the caller normalises it.
    fn add_cert(&mut self, account: &str, fingerprint: &str, max: usize) -> Result<CertAdded, StoreError>;
    /// Removes a fingerprint from an account; `false` if the account did not have it.
    fn remove_cert(&mut self, account: &str, fingerprint: &str) -> Result<bool, StoreError>;
    /// An account's fingerprints, sorted.
    fn certs(&mut self, account: &str) -> Result<Vec<String>, StoreError>;
    /// The display name of the account a fingerprint is registered to.
    fn cert_owner(&mut self, fingerprint: &str) -> Result<Option<String>, StoreError>;
    /// Deletes an account, its offline queue, and every private conversation it was a party to
    /// (see [`StoredMessage::participants`]), so that someone who later registers the same name
    /// cannot read them. `false` if there was no such account.
    fn drop_account(&mut self, name: &str) -> Result<bool, StoreError>;

    /// Inserts or replaces a room's durable state (topic, modes, key, limit and bans), matched by
    /// folded name.
    fn save_channel(&mut self, channel: &ChannelRecord) -> Result<(), StoreError>;
    /// Forgets a room (any case); `false` if it was not stored. Its history stays.
    fn delete_channel(&mut self, name: &str) -> Result<bool, StoreError>;
    /// Every stored room, ordered by folded name, bans in the order they were saved.
    fn channels(&mut self) -> Result<Vec<ChannelRecord>, StoreError>;

    /// Stores a batch of messages in one transaction (group commit): all of them or, on any
    /// error, none. A msgid already stored (or repeated in the batch) fails the whole batch with
    /// [`StoreError::DuplicateMsgId`]. Messages with [`StoredMessage::offline_for`] are also
    /// queued for that account, in the same transaction, if the account exists.
    fn append(&mut self, batch: &[StoredMessage]) -> Result<(), StoreError>;
    /// Up to `limit` messages of one conversation, oldest first, following IRCv3
    /// `draft/chathistory` (see [`HistoryQuery`]). An unknown conversation has no messages; a
    /// [`Bound::MsgId`] that names no message of this conversation (never stored, pruned, or
    /// from another conversation) is [`StoreError::UnknownMsgId`], which the caller reports as a
    /// `FAIL CHATHISTORY MESSAGE_ERROR` rather than an empty page that reads as "nothing new".
    ///
    /// Only messages (`PRIVMSG`, `NOTICE`): a room's events kept for draft/event-playback
    /// ([`StoredMessage::is_event`]) are read by [`Store::history_with_events`] alone.
    fn history(
        &mut self,
        conversation: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// [`Store::history`] with the room's events (JOIN, PART, QUIT, KICK, TOPIC, MODE, NICK)
    /// among the messages, in the same order, counted against the same `limit`
    /// (IRCv3 `draft/event-playback`).
    fn history_with_events(
        &mut self,
        conversation: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError>;
    /// `CHATHISTORY TARGETS`: the conversations a viewer can see that have messages strictly
    /// between `from_ms` and `to_ms`, each with the time of its latest message in that range,
    /// ordered by that time, oldest first.
    ///
    /// The candidates are `rooms` (conversation keys of the rooms the caller decided the viewer
    /// may see, usually the ones it is in) and, if `viewer` is an account (folded), the private
    /// conversations that list it in [`StoredMessage::participants`]. As in `BETWEEN`, if
    /// `from_ms <= to_ms` the `limit` earliest are kept, otherwise the `limit` latest.
    fn history_targets(
        &mut self,
        viewer: Option<&str>,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryTarget>, StoreError>;
    /// Retention: deletes history older than `older_than_ms` (strictly) and returns how many
    /// messages went. Offline queues are not touched: they empty on delivery or with the account.
    fn prune_history(&mut self, older_than_ms: u64) -> Result<u64, StoreError>;

    /// Up to `limit` messages queued for an account (any case), oldest first.
    fn offline(&mut self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError>;
    /// Removes queued messages of an account up to and including `up_to_msgid`, typically the
    /// last one delivered; returns how many went. A msgid not in the queue removes nothing.
    fn clear_offline(&mut self, account: &str, up_to_msgid: &str) -> Result<u64, StoreError>;
    /// Queues the stored message `msgid` for `account` (any case), as [`Store::append`] with
    /// [`StoredMessage::offline_for`] would have, if both exist and it is not queued there yet;
    /// `false` if nothing was queued. For a cluster: a private message stored by the sender's
    /// node whose recipient disconnected from its own node before it arrived.
    fn queue_offline(&mut self, account: &str, msgid: &str) -> Result<bool, StoreError>;
    /// Every non-empty offline queue (folded account or device queue) and how many messages it
    /// holds, read at start so that the server can bound each queue.
    fn offline_counts(&mut self) -> Result<Vec<(String, u64)>, StoreError>;

    // ---- message redaction (IRCv3 draft/message-redaction) ----

    /// The message `msgid`, whatever its conversation, as [`Store::history`] returns it
    /// (conversation key and participants filled in, `offline_for` `None`); `None` if no such
    /// message is stored, or it was redacted.
    fn message(&mut self, msgid: &str) -> Result<Option<StoredMessage>, StoreError>;
    /// Redacts a message: from then on no history query, `history_targets` answer, offline queue
    /// or [`Store::message`] returns it, and its text and client tags are erased. It still counts
    /// as a [`Bound::MsgId`] (a client that saw it can page on from it), and retention prunes it
    /// like any other. Returns the offline queues it was taken out of (folded accounts or device
    /// queues, sorted), or `None` if there was no such message, or it was redacted already.
    fn redact(&mut self, msgid: &str) -> Result<Option<Vec<String>>, StoreError>;

    // ---- read markers (IRCv3 draft/read-marker) ----

    /// An account's (any case) read markers, ordered by target; empty for an unknown account.
    fn read_markers(&mut self, account: &str) -> Result<Vec<ReadMarker>, StoreError>;
    /// Moves an account's (any case) marker for `target` forward to `time_ms`: a time older than
    /// (or equal to) the stored one changes nothing, and the answer carries the stored one. An
    /// account holds at most `max` markers: a new target beyond that first deletes the marker
    /// with the oldest time (ties: the smallest target), named in the answer (`max` 0 keeps
    /// none). `None` if there is no such account. Dropping an account deletes its markers.
    fn set_read_marker(
        &mut self,
        account: &str,
        target: &str,
        time_ms: u64,
        max: usize,
    ) -> Result<Option<MarkerSet>, StoreError>;

    // ---- end-to-end encryption key directory (see `keys` and docs/e2e.md) ----

    /// Stores a device's identity keys under an account (any case). A device id already stored
    /// with the same keys is [`DevicePublished::Unchanged`]; with other keys, they are replaced
    /// and the device's one-time and fallback keys and its offline queue ([`device_queue`])
    /// deleted. Removing a device, or its account, also empties its queue. A new device beyond `max_devices`
    /// for the account is refused. Dropping the account deletes its devices and their keys.
    fn publish_device(
        &mut self,
        account: &str,
        device: &DeviceKeys,
        max_devices: usize,
    ) -> Result<DevicePublished, StoreError>;
    /// The devices of an account (any case), ordered by device id; empty if there is none.
    fn devices(&mut self, account: &str) -> Result<Vec<DeviceKeys>, StoreError>;
    /// Deletes a device and its keys; `false` if it was not stored.
    fn remove_device(&mut self, account: &str, device: &str) -> Result<bool, StoreError>;
    /// Adds one-time keys to a device's pool, skipping keys it already holds, and stopping when
    /// the pool holds `max_pool`. `None` if there is no such device.
    fn add_one_time_keys(
        &mut self,
        account: &str,
        device: &str,
        keys: &[SignedKey],
        max_pool: usize,
    ) -> Result<Option<KeyCounts>, StoreError>;
    /// Sets (replaces) a device's fallback key. `None` if there is no such device.
    fn set_fallback_key(
        &mut self,
        account: &str,
        device: &str,
        key: &SignedKey,
    ) -> Result<Option<KeyCounts>, StoreError>;
    /// How many keys a device has waiting; `None` if there is no such device.
    fn key_counts(&mut self, account: &str, device: &str) -> Result<Option<KeyCounts>, StoreError>;
    /// Hands out one of the device's one-time keys and deletes it, atomically: two claims, even
    /// from two handles on the same database at once, never get the same one-time key. With
    /// none left, the fallback key (not deleted). `None` if the device has neither, or does not
    /// exist.
    fn claim_key(&mut self, account: &str, device: &str) -> Result<Option<ClaimedKey>, StoreError>;
}

/// What [`Store::add_cert`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertAdded {
    Added,
    /// The account already had it.
    AlreadyThere,
    /// Another account has it; nothing changed.
    Taken,
    /// The account has `max` fingerprints already; nothing changed.
    Full,
    /// No such account.
    NoAccount,
}

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `create_account` with a name taken under case folding.
    #[error("account {0} already exists")]
    AccountExists(String),
    /// `append` with a msgid that is already stored or appears twice in the batch; nothing of
    /// the batch was stored.
    #[error("message id {0} is already stored")]
    DuplicateMsgId(String),
    /// A history bound names a msgid that this conversation does not hold.
    #[error("no message with id {0} in this conversation")]
    UnknownMsgId(String),
    /// A value that does not fit the backend, such as a time after the year 292 million.
    #[error("{what} {value} is out of range for the store")]
    OutOfRange { what: &'static str, value: u64 },
    /// The database file was deleted or replaced under the running store: what it writes goes to
    /// a file nobody will open again, so it stores nothing more (every write fails with this)
    /// until it is opened again.
    #[error("the database file {} was deleted or replaced while in use; nothing more can be stored. While this process runs, its data is still readable through /proc/{}/fd: copy it back, then restart", path.display(), std::process::id())]
    FileGone { path: std::path::PathBuf },
    /// The backend failed (I/O error, disk full, locked beyond the busy timeout, ...). The
    /// operation had no effect; the caller may retry or report the store unavailable.
    #[error("storage failed while {operation}: {source}")]
    Backend {
        /// What the store was doing, e.g. "appending history".
        operation: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// The folded form of an account or room name under `CASEMAPPING=ascii`.
fn fold(name: &str) -> String {
    name.to_ascii_lowercase()
}
