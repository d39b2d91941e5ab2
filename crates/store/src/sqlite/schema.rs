//! The schema, as an ordered list of migrations. The database's `PRAGMA user_version` is the
//! number of migrations applied; `open` applies the missing ones in one transaction and refuses
//! a file whose version is higher than [`LATEST`].
//!
//! Append only: never edit a migration that has shipped, add the next one. Each runs inside the
//! opening transaction, so a failed migration leaves the file as it was.

/// The schema version this build creates and understands.
pub(crate) const LATEST: i64 = MIGRATIONS.len() as i64;

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1];

/// Version 1: accounts, rooms, history, offline queues.
///
/// Notes on the shape, mostly for `append` speed (every message touches `messages` and its
/// three indexes, nothing else once its conversation is known):
/// - `conversations` turns the caller's opaque key into a small integer, so `messages` and its
///   index carry 8 bytes per row instead of the key.
/// - `messages.conversation` is not declared a foreign key: checking it would cost a lookup
///   per row, and only `append` writes it, with an id it just read or created.
/// - `messages_by_conversation` serves every history query: equality on the conversation, a
///   range on time, and the `(time_ms, msgid)` order without a sort step.
/// - `messages_by_time` serves retention; without it pruning would scan the table.
/// - `offline` copies its messages rather than pointing at `messages`, so retention and the
///   offline queue are independent.
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
