//! The schema, as an ordered list of migrations. The database's `PRAGMA user_version` is the
//! number of migrations applied; `open` applies the missing ones in one transaction and refuses
//! a file whose version is higher than [`LATEST`].
//!
//! Append only: never edit a migration that has been committed, add the next one. Each runs
//! inside the opening transaction, so a failed migration leaves the file as it was.

/// The schema version this build creates and understands.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2, V3, V4, V5, V6, V7];

/// Version 1: accounts, rooms, history, offline queues. `messages` and `offline` were reshaped
/// by [`V2`].
const V1: &str = "
CREATE TABLE accounts (
    folded        TEXT PRIMARY KEY NOT NULL,
    name          TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    email         TEXT,
    created_ms    INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE channels (
    folded          TEXT PRIMARY KEY NOT NULL,
    name            TEXT NOT NULL,
    created_ms      INTEGER NOT NULL,
    topic_text      TEXT,
    topic_setter    TEXT,
    topic_set_at_ms INTEGER,
    modes           TEXT NOT NULL,
    channel_key     TEXT,
    user_limit      INTEGER,
    founder         TEXT
) WITHOUT ROWID;

CREATE TABLE channel_bans (
    channel   TEXT NOT NULL REFERENCES channels(folded) ON DELETE CASCADE,
    position  INTEGER NOT NULL,
    mask      TEXT NOT NULL,
    setter    TEXT NOT NULL,
    set_at_ms INTEGER NOT NULL,
    PRIMARY KEY (channel, position)
) WITHOUT ROWID;

CREATE TABLE conversations (
    id  INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE
);

CREATE TABLE conversation_parties (
    party        TEXT NOT NULL,
    conversation INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    PRIMARY KEY (party, conversation)
) WITHOUT ROWID;
CREATE INDEX conversation_parties_by_conversation ON conversation_parties(conversation);

CREATE TABLE messages (
    id             INTEGER PRIMARY KEY,
    conversation   INTEGER NOT NULL,
    msgid          TEXT NOT NULL UNIQUE,
    time_ms        INTEGER NOT NULL,
    command        TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_account TEXT,
    target         TEXT NOT NULL,
    text           TEXT NOT NULL,
    tags           TEXT NOT NULL
);
CREATE INDEX messages_by_conversation ON messages(conversation, time_ms, msgid);
CREATE INDEX messages_by_time ON messages(time_ms);

CREATE TABLE offline (
    id             INTEGER PRIMARY KEY,
    account        TEXT NOT NULL,
    conversation   INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    msgid          TEXT NOT NULL,
    time_ms        INTEGER NOT NULL,
    command        TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_account TEXT,
    target         TEXT NOT NULL,
    text           TEXT NOT NULL,
    tags           TEXT NOT NULL
);
CREATE INDEX offline_by_account ON offline(account, time_ms, msgid);
CREATE INDEX offline_by_conversation ON offline(conversation);
";

/// Version 2: the shape `append` can sustain at 100 000 messages a second.
///
/// What an append costs is mostly the pages it dirties: every dirty page is written to the WAL
/// at commit and again at the next checkpoint, so a row added to a page the batch touches anyway
/// is nearly free, and one that lands on a page of its own costs a whole page. Measured with
/// `examples/store_bench.rs`, version 1 dirtied about 280 pages per 1000 messages; this one about
/// half that. Hence:
/// - `messages` keeps its rowid (new rows land at the end of the table) and the `UNIQUE` msgid
///   index (msgids sort like time, so new entries land at its end too; it is also the lookup
///   for msgid bounds).
/// - `messages_by_conversation` is the only other index and serves every history query:
///   equality on the conversation, a range on time, rows in time order. It no longer carries
///   the msgid: entries half the size mean half the page splits, and the few messages that
///   share a millisecond are put in msgid order by SQLite after the index hands them over (the
///   query plan's "LAST TERM OF ORDER BY"). A batch still dirties one of its pages per
///   conversation it touches: that is the price of reading one conversation without the others.
/// - `messages_by_time` is gone: retention walks the conversations and deletes through
///   `messages_by_conversation`, whose second column is the time. The time index cost a page
///   write per batch forever to save that walk once an hour.
/// - `conversations` turns the caller's opaque key into a small integer. `messages.conversation`
///   is not declared a foreign key: checking it would cost a lookup per row, and only `append`
///   writes it, with an id it has just read or created.
/// - `offline` copies its messages rather than pointing at `messages`, so retention and the
///   queues are independent. It is now clustered by `(account, time_ms, msgid)`, so queueing a
///   message costs one page instead of a table page and two index pages, and reading or
///   clearing a queue is one range. Its conversation is no longer a foreign key (there is no
///   index to make the check cheap); `drop_account` deletes the rows itself.
const V2: &str = "
DROP INDEX messages_by_time;
DROP INDEX messages_by_conversation;
CREATE INDEX messages_by_conversation ON messages(conversation, time_ms);

CREATE TABLE offline_v2 (
    account        TEXT NOT NULL,
    time_ms        INTEGER NOT NULL,
    msgid          TEXT NOT NULL,
    conversation   INTEGER NOT NULL,
    command        TEXT NOT NULL,
    sender         TEXT NOT NULL,
    sender_account TEXT,
    target         TEXT NOT NULL,
    text           TEXT NOT NULL,
    tags           TEXT NOT NULL,
    PRIMARY KEY (account, time_ms, msgid)
) WITHOUT ROWID;
INSERT OR IGNORE INTO offline_v2
    (account, time_ms, msgid, conversation, command, sender, sender_account, target, text, tags)
    SELECT account, time_ms, msgid, conversation, command, sender, sender_account, target, text, tags FROM offline;
DROP TABLE offline;
ALTER TABLE offline_v2 RENAME TO offline;
";

/// Version 3: the end-to-end encryption key directory (docs/e2e.md). Public keys only: a device's
/// identity keys, its pool of one-time keys and its fallback key, all base64 text the store never
/// decodes. Everything hangs off the account, so dropping an account deletes its devices and
/// their keys through the foreign keys.
///
/// Encrypted messages wait for one device, not for the whole account: their offline queue key is
/// `<account>/<device, lowercase>` (no account name contains `/`), and the trigger empties a
/// device's queue when the device goes, by itself or with its account.
///
/// One-time keys have a rowid so that a claim takes the oldest with one indexed `DELETE …
/// RETURNING`; the `UNIQUE` constraint makes a re-upload of the same key a no-op and is also the
/// index the claim and the cascade use.
const V3: &str = "
CREATE TABLE e2e_devices (
    account            TEXT NOT NULL REFERENCES accounts(folded) ON DELETE CASCADE,
    device             TEXT NOT NULL,
    curve25519         TEXT NOT NULL,
    ed25519            TEXT NOT NULL,
    signature          TEXT NOT NULL,
    fallback_key       TEXT,
    fallback_signature TEXT,
    PRIMARY KEY (account, device)
) WITHOUT ROWID;

CREATE TABLE e2e_one_time_keys (
    id        INTEGER PRIMARY KEY,
    account   TEXT NOT NULL,
    device    TEXT NOT NULL,
    key       TEXT NOT NULL,
    signature TEXT NOT NULL,
    UNIQUE (account, device, key),
    FOREIGN KEY (account, device) REFERENCES e2e_devices(account, device) ON DELETE CASCADE
);

CREATE TRIGGER e2e_device_queue_gone AFTER DELETE ON e2e_devices BEGIN
    DELETE FROM offline WHERE account = old.account || '/' || lower(old.device);
END;
";

/// Version 4: a room's ban exceptions (+e) and invite exceptions (+I) are kept beside its bans,
/// in `channel_bans`, told apart by `kind` (the mode letter: `b`, `e` or `I`; every row saved
/// before is a ban). Positions run across the three lists, so the key stays `(channel, position)`.
const V4: &str = "
ALTER TABLE channel_bans ADD COLUMN kind TEXT NOT NULL DEFAULT 'b';
";

/// Version 5: SASL SCRAM-SHA-256 credentials beside the Argon2id hash, in the text form of
/// RFC 5803 (`SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`, base64), opaque to the
/// store like the PHC string. `NULL` for accounts registered before, until their next password
/// login or change derives them.
const V5: &str = "
ALTER TABLE accounts ADD COLUMN scram TEXT;
";

/// Version 6: client certificate fingerprints (CertFP) registered to accounts, for SASL
/// EXTERNAL. A fingerprint belongs to one account at most (it is the key); an account's go
/// with it.
const V6: &str = "
CREATE TABLE account_certs (
    fingerprint TEXT PRIMARY KEY NOT NULL,
    account     TEXT NOT NULL REFERENCES accounts(folded) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX account_certs_by_account ON account_certs(account);
";

/// Version 7: message redaction and read markers (IRCv3 `draft/message-redaction`,
/// `draft/read-marker`).
///
/// A redacted message keeps its row (its msgid and time still place a history bound) with
/// `redacted = 1` and its text and tags erased; every query that returns messages skips it, and
/// its copies in offline queues are deleted. Checking the flag costs nothing extra: the queries
/// read each message's row for its columns anyway.
///
/// A read marker is the time of the last message an account read in one conversation (`target`
/// is the caller's key for it, opaque here). At most a caller-given number per account (the
/// server asks for 256), so an account's markers are one short range of this table; they go
/// with the account.
const V7: &str = "
ALTER TABLE messages ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;

CREATE TABLE read_markers (
    account TEXT NOT NULL REFERENCES accounts(folded) ON DELETE CASCADE,
    target  TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    PRIMARY KEY (account, target)
) WITHOUT ROWID;
";
