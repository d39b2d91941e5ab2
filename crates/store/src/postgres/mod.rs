//! [`PostgresStore`]: the backend for deployments that share one database, or already run
//! PostgreSQL. The same answers as [`crate::SqliteStore`] (the [`crate::conformance`] suite runs
//! against both), on one connection.
//!
//! # Why synchronous, and one connection
//!
//! The server runs its store on a dedicated thread and sends it one job at a time (see
//! `crates/server/src/storage.rs`): a pool would sit idle, and an async driver would need a
//! runtime on that thread anyway. So this is the `postgres` crate (the blocking wrapper of
//! `tokio-postgres`, with its own small runtime inside) and one [`postgres::Client`]. What
//! makes writes cheap is not parallelism but group commit: [`Store::append`] stores a whole
//! batch with one `INSERT … SELECT FROM unnest(…)` per table, in one transaction, so a batch of
//! thousands costs a handful of round trips and one commit (one WAL flush with PostgreSQL's
//! default `synchronous_commit = on`). Statements are prepared once per connection.
//!
//! Concurrency between nodes sharing the database is PostgreSQL's: every check-then-write runs
//! in a transaction that first locks the row it hangs off (the account, the device), and a
//! one-time key is claimed with `FOR UPDATE SKIP LOCKED`, so two nodes never hand out the
//! same one.
//!
//! If the connection drops (PostgreSQL restarted, a network cut), the failing call returns
//! [`StoreError::Backend`] and the next call connects again; the caller retries as it does
//! for any backend error (the server holds messages until they are stored).

mod directory;
mod history;
mod keys;
mod markers;
mod open;
mod schema;

use std::collections::{HashMap, HashSet};
use std::fmt;

use postgres::{Client, GenericClient, Statement};

use crate::keys::{ClaimedKey, DeviceKeys, DevicePublished, KeyCounts, SignedKey};
use crate::record::{
    AccountRecord, ChannelRecord, HistoryQuery, HistoryTarget, MarkerSet, NewAccount, ReadMarker, StoredMessage,
};
use crate::{Store, StoreError};

pub use open::{redact as redact_url, PostgresOpenError};

/// Conversation ids kept in memory at most; past this the cache starts over.
const CONVERSATION_CACHE_LIMIT: usize = 65_536;

/// The connection and what is prepared on it.
struct Db {
    client: Client,
    /// Statements prepared on this connection, by their SQL.
    statements: HashMap<String, Statement>,
}

impl Db {
    /// The prepared statement for `sql`, preparing it on first use.
    fn prepared(&mut self, sql: &str) -> Result<Statement, postgres::Error> {
        prepared(&mut self.statements, &mut self.client, sql)
    }
}

/// The prepared statement for `sql` from `cache`, prepared through `client` on first use.
fn prepared(
    cache: &mut HashMap<String, Statement>,
    client: &mut impl GenericClient,
    sql: &str,
) -> Result<Statement, postgres::Error> {
    if let Some(statement) = cache.get(sql) {
        return Ok(statement.clone());
    }
    let statement = client.prepare(sql)?;
    cache.insert(sql.to_owned(), statement.clone());
    Ok(statement)
}

/// The PostgreSQL backend of [`Store`].
pub struct PostgresStore {
    target: open::Target,
    /// `None` only while being dropped.
    db: Option<Db>,
    /// Conversation key → `conversations.id`; only committed ids (cleared after a rollback or
    /// a deletion of conversations), as in the SQLite store.
    conversations: HashMap<Vec<u8>, i64>,
    /// Parties known to be stored, by conversation id.
    parties: HashMap<i64, HashSet<String>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("url", &self.target.shown)
            .field("cached_conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, TLS as
    /// its `sslmode` asks: see the operations guide) and applies pending migrations, in one
    /// transaction that holds an advisory lock, so that nodes starting together do not race.
    ///
    /// Refuses, changing nothing, a database that cannot be reached, has tables of another
    /// program, was migrated by a newer chinwag, or on which the user may not create or write
    /// chinwag's tables. Every [`PostgresOpenError`] message names the database (without its
    /// password) and what to do.
    ///
    /// Blocking: call it on a thread of its own, never on an async runtime's.
    pub fn open(url: &str) -> Result<PostgresStore, PostgresOpenError> {
        let target = open::target(url)?;
        let client = open::open(&target)?;
        Ok(PostgresStore {
            target,
            db: Some(Db { client, statements: HashMap::new() }),
            conversations: HashMap::new(),
            parties: HashMap::new(),
        })
    }

    /// The URL it was opened with, its password replaced by `***`.
    pub fn url(&self) -> &str {
        &self.target.shown
    }

    /// The connection, connected again first if it was lost.
    fn db(&mut self) -> Result<&mut Db, StoreError> {
        connected(&self.target, &mut self.db)
    }

    /// Forgets cached ids, after a rollback or a deletion of conversations.
    fn forget_cached_ids(&mut self) {
        self.conversations.clear();
        self.parties.clear();
    }
}

/// The connection in `db`, made again first if it was lost.
fn connected<'a>(target: &open::Target, db: &'a mut Option<Db>) -> Result<&'a mut Db, StoreError> {
    if db.as_ref().is_none_or(|db| db.client.is_closed()) {
        let client = open::connect(target)
            .map_err(|e| StoreError::Backend { operation: "connecting to PostgreSQL again", source: Box::new(e) })?;
        return Ok(db.insert(Db { client, statements: HashMap::new() }));
    }
    db.as_mut().ok_or_else(|| StoreError::Backend { operation: "reaching PostgreSQL", source: "no connection".into() })
}

impl Drop for PostgresStore {
    /// The client closes its connection through a small runtime of its own, which must not run
    /// inside another one (the server's async runtime, a `#[tokio::test]`): it closes on a thread
    /// of its own, wherever the store is dropped.
    fn drop(&mut self) {
        if let Some(db) = self.db.take() {
            let _ = std::thread::spawn(move || drop(db)).join();
        }
    }
}

impl Store for PostgresStore {
    fn create_account(&mut self, account: &NewAccount) -> Result<(), StoreError> {
        directory::create_account(self.db()?, account)
    }

    fn account(&mut self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        directory::account(self.db()?, name)
    }

    fn account_names(&mut self) -> Result<Vec<String>, StoreError> {
        directory::account_names(self.db()?)
    }

    fn set_password(&mut self, name: &str, password_hash: &str, scram: Option<&str>) -> Result<bool, StoreError> {
        directory::set_password(self.db()?, name, password_hash, scram)
    }

    fn set_scram(&mut self, name: &str, password_hash: &str, scram: &str) -> Result<bool, StoreError> {
        directory::set_scram(self.db()?, name, password_hash, scram)
    }

    fn add_cert(&mut self, account: &str, fingerprint: &str, max: usize) -> Result<crate::CertAdded, StoreError> {
        directory::add_cert(self.db()?, account, fingerprint, max)
    }

    fn remove_cert(&mut self, account: &str, fingerprint: &str) -> Result<bool, StoreError> {
        directory::remove_cert(self.db()?, account, fingerprint)
    }

    fn certs(&mut self, account: &str) -> Result<Vec<String>, StoreError> {
        directory::certs(self.db()?, account)
    }

    fn cert_owner(&mut self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        directory::cert_owner(self.db()?, fingerprint)
    }

    fn drop_account(&mut self, name: &str) -> Result<bool, StoreError> {
        let result = directory::drop_account(self.db()?, name);
        self.forget_cached_ids();
        result
    }

    fn save_channel(&mut self, channel: &ChannelRecord) -> Result<(), StoreError> {
        directory::save_channel(self.db()?, channel)
    }

    fn delete_channel(&mut self, name: &str) -> Result<bool, StoreError> {
        directory::delete_channel(self.db()?, name)
    }

    fn channels(&mut self) -> Result<Vec<ChannelRecord>, StoreError> {
        directory::channels(self.db()?)
    }

    fn append(&mut self, batch: &[StoredMessage]) -> Result<(), StoreError> {
        if self.conversations.len() >= CONVERSATION_CACHE_LIMIT || self.parties.len() >= CONVERSATION_CACHE_LIMIT {
            self.forget_cached_ids();
        }
        let mut attempts = 0;
        loop {
            attempts += 1;
            let db = connected(&self.target, &mut self.db)?;
            let result = history::append(db, &mut self.conversations, &mut self.parties, batch);
            if result.is_err() {
                self.forget_cached_ids();
            }
            match result {
                // Another node deleted a conversation this one had cached: look it up again.
                Err(StoreError::Backend { operation: history::STALE_CONVERSATION, .. }) if attempts < 2 => continue,
                result => return result,
            }
        }
    }

    fn history(
        &mut self,
        conversation: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        history::history(self.db()?, conversation, query, limit, false)
    }

    fn history_with_events(
        &mut self,
        conversation: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        history::history(self.db()?, conversation, query, limit, true)
    }

    fn history_targets(
        &mut self,
        viewer: Option<&str>,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryTarget>, StoreError> {
        history::targets(self.db()?, viewer, rooms, from_ms, to_ms, limit)
    }

    fn prune_history(&mut self, older_than_ms: u64) -> Result<u64, StoreError> {
        history::prune(self.db()?, older_than_ms)
    }

    fn offline(&mut self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        history::offline(self.db()?, account, limit)
    }

    fn clear_offline(&mut self, account: &str, up_to_msgid: &str) -> Result<u64, StoreError> {
        history::clear_offline(self.db()?, account, up_to_msgid)
    }

    fn queue_offline(&mut self, account: &str, msgid: &str) -> Result<bool, StoreError> {
        history::queue_offline(self.db()?, account, msgid)
    }

    fn offline_counts(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        history::offline_counts(self.db()?)
    }

    fn message(&mut self, msgid: &str) -> Result<Option<StoredMessage>, StoreError> {
        history::message(self.db()?, msgid)
    }

    fn redact(&mut self, msgid: &str) -> Result<Option<Vec<String>>, StoreError> {
        history::redact(self.db()?, msgid)
    }

    fn read_markers(&mut self, account: &str) -> Result<Vec<ReadMarker>, StoreError> {
        markers::read_markers(self.db()?, account)
    }

    fn set_read_marker(
        &mut self,
        account: &str,
        target: &str,
        time_ms: u64,
        max: usize,
    ) -> Result<Option<MarkerSet>, StoreError> {
        markers::set_read_marker(self.db()?, account, target, time_ms, max)
    }

    fn publish_device(
        &mut self,
        account: &str,
        device: &DeviceKeys,
        max_devices: usize,
    ) -> Result<DevicePublished, StoreError> {
        keys::publish_device(self.db()?, account, device, max_devices)
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceKeys>, StoreError> {
        keys::devices(self.db()?, account)
    }

    fn remove_device(&mut self, account: &str, device: &str) -> Result<bool, StoreError> {
        keys::remove_device(self.db()?, account, device)
    }

    fn add_one_time_keys(
        &mut self,
        account: &str,
        device: &str,
        keys: &[SignedKey],
        max_pool: usize,
    ) -> Result<Option<KeyCounts>, StoreError> {
        keys::add_one_time_keys(self.db()?, account, device, keys, max_pool)
    }

    fn set_fallback_key(
        &mut self,
        account: &str,
        device: &str,
        key: &SignedKey,
    ) -> Result<Option<KeyCounts>, StoreError> {
        keys::set_fallback_key(self.db()?, account, device, key)
    }

    fn key_counts(&mut self, account: &str, device: &str) -> Result<Option<KeyCounts>, StoreError> {
        keys::key_counts(self.db()?, account, device)
    }

    fn claim_key(&mut self, account: &str, device: &str) -> Result<Option<ClaimedKey>, StoreError> {
        keys::claim_key(self.db()?, account, device)
    }
}

/// A plain connection to the database at `url` (TLS as its `sslmode` says), for copying a whole
/// store into it (`crate::migrate`).
pub(crate) fn connect_for_migration(url: &str) -> Result<Client, PostgresOpenError> {
    open::connect(&open::target(url)?)
}

/// Wraps a PostgreSQL error with what the store was doing, its causes spelled out (the
/// client's own text for a server error is only "db error").
fn backend(operation: &'static str) -> impl Fn(postgres::Error) -> StoreError {
    move |e| StoreError::Backend { operation, source: describe(&e).into() }
}

/// An error and its causes, as one line: `db error: FATAL: terminating connection …`.
pub(crate) fn describe(e: &postgres::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Whether `e` is a unique-constraint violation.
fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}
