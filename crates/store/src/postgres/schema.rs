//! The PostgreSQL schema, as an ordered list of migrations. `chinwag_schema` holds one row per
//! migration applied (its version and when); `open` applies the missing ones in one transaction
//! under an advisory lock and refuses a database whose version is higher than [`LATEST`].
//!
//! Append only: never edit a migration that has been committed, add the next one.
//!
//! The tables mirror the SQLite schema at its version 7 (see `sqlite/schema.rs` for why each is
//! shaped as it is), with two differences that keep the answers identical:
//! - every text column that is compared or ordered is `COLLATE "C"`, so that names, msgids,
//!   devices and fingerprints sort bytewise as in SQLite whatever the database's collation, and
//!   `lower()` folds ASCII only;
//! - `messages_by_conversation` carries the msgid, so that ties within a millisecond are read
//!   in index order too (PostgreSQL's B-tree handles the wider entries well; there is no page
//!   budget per commit as in SQLite's WAL);
//! - a conversation's key is `bytea`: the caller's opaque key may hold NUL (private
//!   conversations are `alice\0bob`), which PostgreSQL's `text` cannot.

/// The schema version this build creates and understands.
pub(crate) const LATEST: i32 = MIGRATIONS.len() as i32;

/// `MIGRATIONS[i]` takes a database from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1];

/// Version 1: accounts (with SCRAM credentials and certificate fingerprints), rooms with their
/// ban, exception and invite lists, history (with redaction: a redacted message keeps its row,
/// flagged, its text and tags erased), offline queues, read markers, the end-to-end encryption
/// key directory: the SQLite schema's version 7.
const V1: &str = r#"
CREATE TABLE chinwag_schema (
    version    integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE accounts (
    folded        text COLLATE "C" PRIMARY KEY,
    name          text NOT NULL,
    password_hash text NOT NULL,
    email         text,
    created_ms    bigint NOT NULL,
    scram         text
);

CREATE TABLE account_certs (
    fingerprint text COLLATE "C" PRIMARY KEY,
    account     text COLLATE "C" NOT NULL REFERENCES accounts(folded) ON DELETE CASCADE
);
CREATE INDEX account_certs_by_account ON account_certs(account);

CREATE TABLE channels (
    folded          text COLLATE "C" PRIMARY KEY,
    name            text NOT NULL,
    created_ms      bigint NOT NULL,
    topic_text      text,
    topic_setter    text,
    topic_set_at_ms bigint,
    modes           text NOT NULL,
    channel_key     text,
    user_limit      bigint,
    founder         text
);

CREATE TABLE channel_bans (
    channel   text COLLATE "C" NOT NULL REFERENCES channels(folded) ON DELETE CASCADE,
    position  bigint NOT NULL,
    mask      text NOT NULL,
    setter    text NOT NULL,
    set_at_ms bigint NOT NULL,
    kind      text NOT NULL DEFAULT 'b',
    PRIMARY KEY (channel, position)
);

CREATE TABLE conversations (
    id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    key bytea NOT NULL UNIQUE
);

CREATE TABLE conversation_parties (
    party        text COLLATE "C" NOT NULL,
    conversation bigint NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    PRIMARY KEY (party, conversation)
);
CREATE INDEX conversation_parties_by_conversation ON conversation_parties(conversation);

CREATE TABLE messages (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    conversation   bigint NOT NULL,
    msgid          text COLLATE "C" NOT NULL UNIQUE,
    time_ms        bigint NOT NULL,
    command        text NOT NULL,
    sender         text NOT NULL,
    sender_account text,
    target         text NOT NULL,
    text           text NOT NULL,
    tags           text NOT NULL,
    redacted       boolean NOT NULL DEFAULT false
);
CREATE INDEX messages_by_conversation ON messages(conversation, time_ms, msgid);

CREATE TABLE offline (
    account        text COLLATE "C" NOT NULL,
    time_ms        bigint NOT NULL,
    msgid          text COLLATE "C" NOT NULL,
    conversation   bigint NOT NULL,
    command        text NOT NULL,
    sender         text NOT NULL,
    sender_account text,
    target         text NOT NULL,
    text           text NOT NULL,
    tags           text NOT NULL,
    PRIMARY KEY (account, time_ms, msgid)
);

CREATE TABLE e2e_devices (
    account            text COLLATE "C" NOT NULL REFERENCES accounts(folded) ON DELETE CASCADE,
    device             text COLLATE "C" NOT NULL,
    curve25519         text NOT NULL,
    ed25519            text NOT NULL,
    signature          text NOT NULL,
    fallback_key       text,
    fallback_signature text,
    PRIMARY KEY (account, device)
);

CREATE TABLE e2e_one_time_keys (
    id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account   text COLLATE "C" NOT NULL,
    device    text COLLATE "C" NOT NULL,
    key       text COLLATE "C" NOT NULL,
    signature text NOT NULL,
    UNIQUE (account, device, key),
    FOREIGN KEY (account, device) REFERENCES e2e_devices(account, device) ON DELETE CASCADE
);

CREATE TABLE read_markers (
    account text COLLATE "C" NOT NULL REFERENCES accounts(folded) ON DELETE CASCADE,
    target  text COLLATE "C" NOT NULL,
    time_ms bigint NOT NULL,
    PRIMARY KEY (account, target)
);

CREATE FUNCTION chinwag_device_queue_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM offline WHERE account = old.account || '/' || lower(old.device);
    RETURN NULL;
END;
$$;
CREATE TRIGGER e2e_device_queue_gone AFTER DELETE ON e2e_devices
    FOR EACH ROW EXECUTE FUNCTION chinwag_device_queue_gone();
"#;

/// The tables a running store writes, for the privilege check at open.
pub(crate) const TABLES: &[&str] = &[
    "accounts",
    "account_certs",
    "channels",
    "channel_bans",
    "conversations",
    "conversation_parties",
    "messages",
    "offline",
    "e2e_devices",
    "e2e_one_time_keys",
    "read_markers",
];
