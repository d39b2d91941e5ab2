//! [`SqliteStore`]: the embedded default backend. One file in the data directory, in WAL mode,
//! one connection for everything the store does, prepared statements cached on it, and a second
//! one on its own thread for checkpoints (`checkpoint.rs`).

mod checkpoint;
mod directory;
mod history;
mod keys;
mod markers;
mod open;
mod schema;

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;

use crate::keys::{ClaimedKey, DeviceKeys, DevicePublished, KeyCounts, SignedKey};
use crate::record::{
    AccountRecord, ChannelRecord, HistoryQuery, HistoryTarget, MarkerSet, NewAccount, ReadMarker, StoredMessage,
};
use crate::{Store, StoreError};

pub use open::OpenError;

/// How hard a commit works to survive a crash (SQLite's `PRAGMA synchronous`, in WAL mode).
///
/// Both settings keep every committed batch across a *process* crash (`kill -9`, a panic, the
/// OOM killer): a commit has handed its pages to the operating system before it returns, and
/// the next open replays the WAL. Neither can corrupt the database. They differ on an
/// *operating-system* crash or power loss:
///
/// - [`Synchronous::Full`] (the default) `fsync`s the WAL at every commit, so a batch that
///   committed is on disk. With group commit that is one `fsync` per batch, not per message,
///   which is why it is affordable: see `examples/store_bench.rs`.
/// - [`Synchronous::Normal`] `fsync`s only at checkpoints. The last batches before a power cut
///   may be lost (the database rolls back to an earlier, consistent state); in exchange a commit
///   costs no disk flush, which matters when batches are small (a quiet server commits nearly
///   every message alone).
///
/// chinwag promises that a message a sender saw echoed is in history, so the default is the
/// setting that keeps that promise whatever crashes.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub enum Synchronous {
    #[default]
    Full,
    Normal,
}

/// Settings for [`SqliteStore::open`].
#[derive(Clone, Debug)]
pub struct SqliteOptions {
    /// Durability of a commit; see [`Synchronous`].
    pub synchronous: Synchronous,
    /// How long a statement waits for a lock another connection holds (a backup tool, an
    /// operator's `sqlite3` shell) before failing.
    pub busy_timeout: Duration,
    /// Run `PRAGMA quick_check` when opening an existing file, so that a damaged file stops the
    /// server at start instead of failing later. It reads the whole file: 1.3 to 2.6 s for a
    /// 770 MiB file of 3 million messages on the 2-core development machine, file in the OS
    /// cache (`store_bench --quick-check 3000000`), so about 2 s per GiB; from a cold disk, add
    /// the time to read it.
    pub quick_check: bool,
}

impl Default for SqliteOptions {
    fn default() -> Self {
        SqliteOptions { synchronous: Synchronous::Full, busy_timeout: open::DEFAULT_BUSY_TIMEOUT, quick_check: true }
    }
}

/// Conversation ids kept in memory at most; past this the cache starts over (it refills from
/// one indexed lookup per conversation).
const CONVERSATION_CACHE_LIMIT: usize = 65_536;

/// The SQLite backend of [`Store`].
pub struct SqliteStore {
    /// Declared before `conn`, so dropped first: its last checkpoint runs while the writer's
    /// connection is still open, and the writer, closing last, finds a WAL with little or nothing
    /// left to copy before SQLite removes it.
    checkpointer: checkpoint::Checkpointer,
    conn: Connection,
    /// The file, for messages.
    path: PathBuf,
    /// The device and inode of the file when it was opened, to notice that the path no longer
    /// leads to it (deleted or replaced): see [`SqliteStore::check_file`].
    file_id: (u64, u64),
    /// Conversation key → `conversations.id`, so `append` costs no lookup per message. Only
    /// holds ids that are committed: it is cleared whenever a transaction that may have created
    /// one rolls back, or that deleted some.
    conversations: HashMap<String, i64>,
    /// Parties known to be stored, by conversation id, so repeating `participants` on every
    /// message costs no write. Cleared together with `conversations`.
    parties: HashMap<i64, HashSet<String>>,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .field("cached_conversations", &self.conversations.len())
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens the database at `path`, creating it if absent, and applies pending migrations.
    ///
    /// Refuses, leaving the file untouched, one that is not a SQLite database, belongs to another
    /// program, is corrupt (with [`SqliteOptions::quick_check`]), was created by a newer
    /// chinwag, is locked by another process, or cannot be written. The directory must exist.
    /// Every [`OpenError`] message names the file and says what to do.
    pub fn open(path: &Path, options: SqliteOptions) -> Result<SqliteStore, OpenError> {
        let mut conn = open::open(path, &options)?;
        let file_id = file_id(path).map_err(|source| OpenError::NotWritable {
            path: path.to_owned(),
            reason: format!("cannot read its metadata: {source}"),
        })?;
        let own = open::open_checkpointer(path, &options)?;
        let checkpointer = checkpoint::Checkpointer::start(&mut conn, own)
            .map_err(|source| OpenError::Checkpointer { path: path.to_owned(), source })?;
        Ok(SqliteStore {
            checkpointer,
            conn,
            path: path.to_owned(),
            file_id,
            conversations: HashMap::new(),
            parties: HashMap::new(),
        })
    }

    /// Why the last background checkpoint failed, if it did. It is retried a moment later; if it
    /// keeps failing, commits still succeed, with a longer WAL (bounded: the writer then
    /// checkpoints by itself).
    pub fn checkpoint_error(&self) -> Option<String> {
        self.checkpointer.last_error()
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Fails with [`StoreError::FileGone`] if the path no longer leads to the file this store
    /// opened. SQLite keeps writing to an open file that was deleted, and "commits" succeed into
    /// an inode that disappears when the server stops; so every write that is acknowledged
    /// (a batch of messages, an account) checks first. One `stat`, next to a commit's fsync.
    fn check_file(&self) -> Result<(), StoreError> {
        match file_id(&self.path) {
            Ok(id) if id == self.file_id => Ok(()),
            Ok(_) => Err(StoreError::FileGone { path: self.path.clone() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(StoreError::FileGone { path: self.path.clone() }),
            Err(e) => Err(StoreError::Backend { operation: "checking the database file", source: Box::new(e) }),
        }
    }

    /// Forgets cached ids, after a rollback or a deletion of conversations.
    fn forget_cached_ids(&mut self) {
        self.conversations.clear();
        self.parties.clear();
    }
}

impl Store for SqliteStore {
    fn background_error(&self) -> Option<String> {
        self.checkpoint_error()
    }

    fn create_account(&mut self, account: &NewAccount) -> Result<(), StoreError> {
        self.check_file()?;
        directory::create_account(&self.conn, account)
    }

    fn account(&mut self, name: &str) -> Result<Option<AccountRecord>, StoreError> {
        directory::account(&self.conn, name)
    }

    fn account_names(&mut self) -> Result<Vec<String>, StoreError> {
        directory::account_names(&self.conn)
    }

    fn set_password(&mut self, name: &str, password_hash: &str, scram: Option<&str>) -> Result<bool, StoreError> {
        self.check_file()?;
        directory::set_password(&self.conn, name, password_hash, scram)
    }

    fn set_scram(&mut self, name: &str, password_hash: &str, scram: &str) -> Result<bool, StoreError> {
        self.check_file()?;
        directory::set_scram(&self.conn, name, password_hash, scram)
    }

    fn add_cert(&mut self, account: &str, fingerprint: &str, max: usize) -> Result<crate::CertAdded, StoreError> {
        self.check_file()?;
        directory::add_cert(&self.conn, account, fingerprint, max)
    }

    fn remove_cert(&mut self, account: &str, fingerprint: &str) -> Result<bool, StoreError> {
        self.check_file()?;
        directory::remove_cert(&self.conn, account, fingerprint)
    }

    fn certs(&mut self, account: &str) -> Result<Vec<String>, StoreError> {
        directory::certs(&self.conn, account)
    }

    fn cert_owner(&mut self, fingerprint: &str) -> Result<Option<String>, StoreError> {
        directory::cert_owner(&self.conn, fingerprint)
    }

    fn drop_account(&mut self, name: &str) -> Result<bool, StoreError> {
        let result = directory::drop_account(&self.conn, name);
        // It may have deleted conversations, whose ids must not be reused from the cache.
        self.forget_cached_ids();
        result
    }

    fn save_channel(&mut self, channel: &ChannelRecord) -> Result<(), StoreError> {
        self.check_file()?;
        directory::save_channel(&self.conn, channel)
    }

    fn delete_channel(&mut self, name: &str) -> Result<bool, StoreError> {
        directory::delete_channel(&self.conn, name)
    }

    fn channels(&mut self) -> Result<Vec<ChannelRecord>, StoreError> {
        directory::channels(&self.conn)
    }

    fn append(&mut self, batch: &[StoredMessage]) -> Result<(), StoreError> {
        self.check_file()?;
        if self.conversations.len() >= CONVERSATION_CACHE_LIMIT || self.parties.len() >= CONVERSATION_CACHE_LIMIT {
            self.forget_cached_ids();
        }
        let result = history::append(&self.conn, &mut self.conversations, &mut self.parties, batch);
        if result.is_err() {
            self.forget_cached_ids();
        }
        result
    }

    fn history(
        &mut self,
        conversation: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        history::history(&self.conn, conversation, query, limit, false)
    }

    fn history_with_events(
        &mut self,
        conversation: &str,
        query: &HistoryQuery,
        limit: usize,
    ) -> Result<Vec<StoredMessage>, StoreError> {
        history::history(&self.conn, conversation, query, limit, true)
    }

    fn history_targets(
        &mut self,
        viewer: Option<&str>,
        rooms: &[String],
        from_ms: u64,
        to_ms: u64,
        limit: usize,
    ) -> Result<Vec<HistoryTarget>, StoreError> {
        history::targets(&self.conn, viewer, rooms, from_ms, to_ms, limit)
    }

    fn prune_history(&mut self, older_than_ms: u64) -> Result<u64, StoreError> {
        history::prune(&self.conn, older_than_ms)
    }

    fn offline(&mut self, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
        history::offline(&self.conn, account, limit)
    }

    fn clear_offline(&mut self, account: &str, up_to_msgid: &str) -> Result<u64, StoreError> {
        history::clear_offline(&self.conn, account, up_to_msgid)
    }

    fn queue_offline(&mut self, account: &str, msgid: &str) -> Result<bool, StoreError> {
        history::queue_offline(&self.conn, account, msgid)
    }

    fn offline_counts(&mut self) -> Result<Vec<(String, u64)>, StoreError> {
        history::offline_counts(&self.conn)
    }

    fn message(&mut self, msgid: &str) -> Result<Option<StoredMessage>, StoreError> {
        history::message(&self.conn, msgid)
    }

    fn redact(&mut self, msgid: &str) -> Result<Option<Vec<String>>, StoreError> {
        self.check_file()?;
        history::redact(&self.conn, msgid)
    }

    fn read_markers(&mut self, account: &str) -> Result<Vec<ReadMarker>, StoreError> {
        markers::read_markers(&self.conn, account)
    }

    fn set_read_marker(
        &mut self,
        account: &str,
        target: &str,
        time_ms: u64,
        max: usize,
    ) -> Result<Option<MarkerSet>, StoreError> {
        self.check_file()?;
        markers::set_read_marker(&self.conn, account, target, time_ms, max)
    }

    fn publish_device(
        &mut self,
        account: &str,
        device: &DeviceKeys,
        max_devices: usize,
    ) -> Result<DevicePublished, StoreError> {
        keys::publish_device(&self.conn, account, device, max_devices)
    }

    fn devices(&mut self, account: &str) -> Result<Vec<DeviceKeys>, StoreError> {
        keys::devices(&self.conn, account)
    }

    fn remove_device(&mut self, account: &str, device: &str) -> Result<bool, StoreError> {
        keys::remove_device(&self.conn, account, device)
    }

    fn add_one_time_keys(
        &mut self,
        account: &str,
        device: &str,
        keys: &[SignedKey],
        max_pool: usize,
    ) -> Result<Option<KeyCounts>, StoreError> {
        keys::add_one_time_keys(&self.conn, account, device, keys, max_pool)
    }

    fn set_fallback_key(
        &mut self,
        account: &str,
        device: &str,
        key: &SignedKey,
    ) -> Result<Option<KeyCounts>, StoreError> {
        keys::set_fallback_key(&self.conn, account, device, key)
    }

    fn key_counts(&mut self, account: &str, device: &str) -> Result<Option<KeyCounts>, StoreError> {
        keys::key_counts(&self.conn, account, device)
    }

    fn claim_key(&mut self, account: &str, device: &str) -> Result<Option<ClaimedKey>, StoreError> {
        keys::claim_key(&self.conn, account, device)
    }
}

/// The device and inode `path` leads to.
fn file_id(path: &Path) -> std::io::Result<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Wraps a SQLite error with what the store was doing.
fn backend(operation: &'static str) -> impl Fn(rusqlite::Error) -> StoreError {
    move |e| StoreError::Backend { operation, source: Box::new(e) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Bound, HistoryQuery};

    /// A version 1 file, as the first committed schema wrote it (no application id), is
    /// migrated in place with its contents.
    #[test]
    fn migrates_a_version_1_database() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("v1.db");
        {
            let conn = Connection::open(&path).expect("create");
            conn.execute_batch(schema::MIGRATIONS[0]).expect("version 1");
            conn.execute_batch(
                "PRAGMA user_version = 1;
                 INSERT INTO accounts VALUES ('bob', 'Bob', '$argon2id$x', NULL, 1);
                 INSERT INTO conversations (id, key) VALUES (7, 'alice' || char(0) || 'bob');
                 INSERT INTO conversation_parties VALUES ('bob', 7), ('alice', 7);
                 INSERT INTO messages (conversation, msgid, time_ms, command, sender, sender_account, target,
                                       text, tags)
                     VALUES (7, 'm1', 1000, 'PRIVMSG', 'alice!a@h', 'alice', 'Bob', 'one', ''),
                            (7, 'm2', 2000, 'PRIVMSG', 'alice!a@h', 'alice', 'Bob', 'two', '');
                 INSERT INTO offline (account, conversation, msgid, time_ms, command, sender, sender_account,
                                      target, text, tags)
                     VALUES ('bob', 7, 'm2', 2000, 'PRIVMSG', 'alice!a@h', 'alice', 'Bob', 'two', '');",
            )
            .expect("version 1 contents");
        }

        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("open and migrate");
        let key = "alice\0bob";
        let after = store.history(key, &HistoryQuery::After(Bound::MsgId("m1".into())), 10).expect("history");
        assert_eq!(after.iter().map(|m| m.msgid.as_str()).collect::<Vec<_>>(), ["m2"]);
        assert_eq!(after[0].participants, ["alice", "bob"]);
        let queued = store.offline("Bob", 10).expect("offline");
        assert_eq!(queued.iter().map(|m| m.text.as_str()).collect::<Vec<_>>(), ["two"]);
        assert_eq!(store.prune_history(1500).expect("prune"), 1);
        assert_eq!(store.clear_offline("bob", "m2").expect("clear"), 1);
        let version: i64 = store.conn.pragma_query_value(None, "user_version", |row| row.get(0)).expect("version");
        assert_eq!(version, schema::LATEST);
        drop(store);
        SqliteStore::open(&path, SqliteOptions::default()).expect("reopens, now stamped");
    }

    fn message(msgid: &str, text: &str) -> StoredMessage {
        StoredMessage {
            msgid: msgid.into(),
            time_ms: 1000,
            command: "PRIVMSG".into(),
            sender: "amy!a@h".into(),
            sender_account: None,
            target: "#room".into(),
            text: text.into(),
            tags: String::new(),
            conversation: "#room".into(),
            participants: Vec::new(),
            offline_for: None,
        }
    }

    /// A new database and the WAL and SHM files SQLite makes beside it are 0600, even in a
    /// directory others may read and under a permissive umask.
    #[test]
    fn a_new_database_and_its_wal_and_shm_are_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.path().join("chinwag.db");
        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("create");
        store.append(&[message("m1", "hi")]).expect("append");
        for name in ["chinwag.db", "chinwag.db-wal", "chinwag.db-shm"] {
            let mode = std::fs::metadata(dir.path().join(name)).expect(name).permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name} is {mode:o}");
        }
    }

    /// A database file deleted or replaced under the store: writes fail (and keep failing)
    /// instead of "succeeding" into a file that is gone.
    #[test]
    fn writes_fail_once_the_file_is_deleted_or_replaced() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chinwag.db");
        let mut store = SqliteStore::open(&path, SqliteOptions::default()).expect("create");
        store.append(&[message("m1", "kept")]).expect("append");
        std::fs::remove_file(&path).expect("delete the file");
        let err = store.append(&[message("m2", "lost")]).expect_err("a write to a deleted file fails");
        assert!(matches!(err, StoreError::FileGone { .. }), "{err}");
        assert!(err.to_string().contains("deleted or replaced"), "{err}");
        std::fs::write(&path, b"").expect("a new file at the same path");
        let err = store.append(&[message("m3", "lost too")]).expect_err("a replaced file is not ours");
        assert!(matches!(err, StoreError::FileGone { .. }), "{err}");
    }
}
