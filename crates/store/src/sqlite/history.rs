//! History: appending batches, `CHATHISTORY` queries, `TARGETS`, retention, offline queues.
//!
//! A query is a range of one conversation in `(time_ms, msgid)` order, read through
//! `messages_by_conversation` from one end: [`Range`] says which end, how many, and the
//! bounds; [`select`] turns it into SQL. Every `HistoryQuery` shape is one or two ranges.

use std::collections::{HashMap, HashSet};

use rusqlite::types::{ToSql, Value};
use rusqlite::{ffi, params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::backend;
use crate::record::{Bound, HistoryQuery, HistoryTarget, StoredMessage};
use crate::sql::{bound_to_sql, from_sql, limit_to_sql, to_sql, Edge, From, Position, Range, ONLY_MESSAGES};
use crate::{fold, StoreError};

/// Messages deleted per transaction by retention, so a large prune neither holds the write lock
/// for long nor grows the WAL without bound.
const PRUNE_CHUNK: i64 = 10_000;

/// The columns of a message row, in the order [`message_from_row`] reads them.
const MESSAGE_COLUMNS: &str = "msgid, time_ms, command, sender, sender_account, target, text, tags";

pub(super) fn append(
    conn: &Connection,
    conversations: &mut HashMap<String, i64>,
    parties: &mut HashMap<i64, HashSet<String>>,
    batch: &[StoredMessage],
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let op = backend("appending history");
    // Check what SQLite cannot store before taking the write lock.
    let times = batch.iter().map(|m| to_sql("message time", m.time_ms)).collect::<Result<Vec<_>, _>>()?;
    let guard = Immediate::begin(conn).map_err(&op)?;
    let tx = guard.conn;
    {
        // Resolve conversations first, then insert grouped by conversation: consecutive inserts
        // then land on the same index leaf, which is still in the CPU cache.
        let mut order = Vec::with_capacity(batch.len());
        for (i, m) in batch.iter().enumerate() {
            order.push((conversation_id(tx, conversations, &m.conversation)?, i));
        }
        order.sort_unstable();
        for chunk in order.chunks(ROWS_PER_INSERT) {
            insert_messages(tx, chunk, batch, &times)?;
        }
        for (conversation, i) in order {
            let (m, time) = (&batch[i], times[i]);
            for party in &m.participants {
                let known = parties.entry(conversation).or_default();
                if !known.contains(party) {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO conversation_parties (party, conversation) VALUES (?1, ?2)",
                    )
                    .and_then(|mut s| s.execute(params![party, conversation]))
                    .map_err(&op)?;
                    known.insert(party.clone());
                }
            }
            if let Some(account) = &m.offline_for {
                // Queued only if the account (or the end-to-end encryption device, for a queue
                // key `account/device`) exists: a message to an account dropped a moment ago
                // must not fail the whole batch.
                tx.prepare_cached(
                    "INSERT INTO offline (account, conversation, msgid, time_ms, command, sender, sender_account,
                                          target, text, tags)
                     SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10
                     WHERE EXISTS (SELECT 1 FROM accounts WHERE folded = ?1)
                        OR EXISTS (SELECT 1 FROM e2e_devices
                                   WHERE account = substr(?1, 1, instr(?1, '/') - 1)
                                     AND lower(device) = substr(?1, instr(?1, '/') + 1))",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        fold(account),
                        conversation,
                        m.msgid,
                        time,
                        m.command,
                        m.sender,
                        m.sender_account,
                        m.target,
                        m.text,
                        m.tags
                    ])
                })
                .map_err(&op)?;
            }
        }
    }
    // An early return above rolls back (`Immediate`'s drop); the caller then forgets cached ids.
    guard.commit().map_err(op)
}

/// A write transaction begun and committed through cached statements. `rusqlite::Transaction`
/// runs `BEGIN IMMEDIATE` and `COMMIT` through `execute_batch`, which parses them again for every
/// commit: at one message per commit (everyday load) that was 13,000 of an append's 41,000
/// instructions (docs/benchmarks.md, "At everyday load"). Dropped without `commit` (an early
/// return, or a `COMMIT` that failed), it rolls back, as `Transaction` does.
struct Immediate<'c> {
    conn: &'c Connection,
    committed: bool,
}

impl<'c> Immediate<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
        Ok(Immediate { conn, committed: false })
    }

    fn commit(mut self) -> rusqlite::Result<()> {
        self.conn.prepare_cached("COMMIT")?.execute([])?;
        self.committed = true;
        Ok(())
    }
}

impl Drop for Immediate<'_> {
    fn drop(&mut self) {
        if !self.committed && !self.conn.is_autocommit() {
            let _ = self.conn.prepare_cached("ROLLBACK").and_then(|mut s| s.execute([]));
        }
    }
}

/// Rows inserted by one statement. Each statement costs SQLite a fixed amount beyond its rows
/// (opening cursors on the table and both indexes, starting and ending the statement), which
/// was about a fifth of an append's instructions with one row per statement.
const ROWS_PER_INSERT: usize = 16;

/// Inserts the messages of `chunk` (conversation id, index into `batch`), in order: a full
/// chunk with one statement, a shorter one row by row. A msgid already stored fails the
/// statement without a trace (SQLite undoes the statement); the rows are then inserted one by
/// one to name it.
fn insert_messages(
    tx: &Connection,
    chunk: &[(i64, usize)],
    batch: &[StoredMessage],
    times: &[i64],
) -> Result<(), StoreError> {
    let op = backend("appending history");
    if chunk.len() == ROWS_PER_INSERT {
        static MANY: std::sync::LazyLock<String> = std::sync::LazyLock::new(|| {
            format!("{INSERT_MESSAGE}{}", ", (?, ?, ?, ?, ?, ?, ?, ?, ?)".repeat(ROWS_PER_INSERT - 1))
        });
        let mut insert = tx.prepare_cached(&MANY).map_err(&op)?;
        let mut column = 0;
        let mut bind = |value: &dyn ToSql| {
            column += 1;
            insert.raw_bind_parameter(column, value)
        };
        for &(conversation, i) in chunk {
            let m = &batch[i];
            bind(&conversation)
                .and_then(|()| bind(&m.msgid))
                .and_then(|()| bind(&times[i]))
                .and_then(|()| bind(&m.command))
                .and_then(|()| bind(&m.sender))
                .and_then(|()| bind(&m.sender_account))
                .and_then(|()| bind(&m.target))
                .and_then(|()| bind(&m.text))
                .and_then(|()| bind(&m.tags))
                .map_err(&op)?;
        }
        match insert.raw_execute() {
            Ok(_) => return Ok(()),
            Err(e) if e.sqlite_error_code() == Some(ffi::ErrorCode::ConstraintViolation) => {}
            Err(e) => return Err(op(e)),
        }
    }
    let mut insert = tx.prepare_cached(INSERT_MESSAGE).map_err(&op)?;
    for &(conversation, i) in chunk {
        let m = &batch[i];
        let row =
            params![conversation, m.msgid, times[i], m.command, m.sender, m.sender_account, m.target, m.text, m.tags];
        match insert.execute(row) {
            Ok(_) => {}
            Err(e) if e.sqlite_error_code() == Some(ffi::ErrorCode::ConstraintViolation) => {
                return Err(StoreError::DuplicateMsgId(m.msgid.clone()));
            }
            Err(e) => return Err(op(e)),
        }
    }
    Ok(())
}

/// One message row; a statement for more rows repeats its `VALUES` group.
const INSERT_MESSAGE: &str = "INSERT INTO messages (conversation, msgid, time_ms, command, sender, sender_account, \
                              target, text, tags) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// The id of a conversation, created if new (inside the caller's transaction).
fn conversation_id(conn: &Connection, cache: &mut HashMap<String, i64>, key: &str) -> Result<i64, StoreError> {
    if let Some(&id) = cache.get(key) {
        return Ok(id);
    }
    let op = backend("appending history");
    let id = match find_conversation(conn, key)? {
        Some(id) => id,
        None => {
            conn.prepare_cached("INSERT INTO conversations (key) VALUES (?1)")
                .and_then(|mut s| s.execute([key]))
                .map_err(&op)?;
            conn.last_insert_rowid()
        }
    };
    cache.insert(key.to_owned(), id);
    Ok(id)
}

fn find_conversation(conn: &Connection, key: &str) -> Result<Option<i64>, StoreError> {
    conn.prepare_cached("SELECT id FROM conversations WHERE key = ?1")
        .and_then(|mut s| s.query_row([key], |row| row.get(0)).optional())
        .map_err(backend("finding a conversation"))
}

pub(super) fn history(
    conn: &Connection,
    key: &str,
    query: &HistoryQuery,
    limit: usize,
    events: bool,
) -> Result<Vec<StoredMessage>, StoreError> {
    let Some(conversation) = find_conversation(conn, key)? else {
        return Ok(Vec::new());
    };
    let resolve = |bound: &Bound| position(conn, conversation, bound);
    let range = |lower: Option<Edge>, upper: Option<Edge>, from: From, limit: usize| {
        select(conn, conversation, &Range { lower, upper, from, limit, events })
    };
    let exclusive = |at: Position| Some(Edge { at, inclusive: false });
    let out = match query {
        HistoryQuery::Latest { after: None } => range(None, None, From::Newest, limit)?,
        HistoryQuery::Latest { after: Some(bound) } => range(exclusive(resolve(bound)?), None, From::Newest, limit)?,
        HistoryQuery::Before(bound) => range(None, exclusive(resolve(bound)?), From::Newest, limit)?,
        HistoryQuery::After(bound) => range(exclusive(resolve(bound)?), None, From::Oldest, limit)?,
        HistoryQuery::Around(bound) => {
            let at = resolve(bound)?;
            // Read up to `limit` on each side, then keep about half of each, letting one side
            // make up for the other when it runs short.
            let mut before = range(None, exclusive(at.clone()), From::Newest, limit)?;
            let mut after = range(Some(Edge { at, inclusive: true }), None, From::Oldest, limit)?;
            let keep_before = before.len().min((limit / 2).max(limit.saturating_sub(after.len())));
            before.drain(..before.len() - keep_before);
            after.truncate(limit - keep_before);
            before.append(&mut after);
            before
        }
        HistoryQuery::Between(first, second) => {
            let (first, second) = (resolve(first)?, resolve(second)?);
            let forward = (first.time, first.msgid.as_deref()) <= (second.time, second.msgid.as_deref());
            if forward {
                range(exclusive(first), exclusive(second), From::Oldest, limit)?
            } else {
                range(exclusive(second), exclusive(first), From::Newest, limit)?
            }
        }
    };
    with_conversation(conn, conversation, key, out)
}

/// Where a bound sits; a msgid must belong to this conversation.
fn position(conn: &Connection, conversation: i64, bound: &Bound) -> Result<Position, StoreError> {
    match bound {
        Bound::Time(ms) => Ok(Position { time: bound_to_sql(*ms), msgid: None }),
        Bound::MsgId(msgid) => {
            let time: Option<i64> = conn
                .prepare_cached("SELECT time_ms FROM messages WHERE msgid = ?1 AND conversation = ?2")
                .and_then(|mut s| s.query_row(params![msgid, conversation], |row| row.get(0)).optional())
                .map_err(backend("reading history"))?;
            match time {
                Some(time) => Ok(Position { time, msgid: Some(msgid.clone()) }),
                None => Err(StoreError::UnknownMsgId(msgid.clone())),
            }
        }
    }
}

/// Reads one range, oldest first whichever end it was read from.
fn select(conn: &Connection, conversation: i64, range: &Range) -> Result<Vec<StoredMessage>, StoreError> {
    if range.limit == 0 {
        return Ok(Vec::new());
    }
    let (sql, args) = range_statement(conversation, range);
    let args: Vec<(&str, &dyn ToSql)> = args.iter().map(|(name, value)| (*name, value as &dyn ToSql)).collect();
    let op = backend("reading history");
    let mut stmt = conn.prepare_cached(&sql).map_err(&op)?;
    let rows = stmt.query_map(args.as_slice(), message_from_row).map_err(&op)?;
    let mut out = rows.collect::<Result<Vec<_>, _>>().map_err(op)?;
    if range.from == From::Newest {
        out.reverse();
    }
    Ok(out)
}

/// The SQL of a range and its named arguments. The text depends only on the range's shape, so
/// the statement cache holds one statement per shape (a few dozen at most).
fn range_statement(conversation: i64, range: &Range) -> (String, Vec<(&'static str, Value)>) {
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation = :conversation AND redacted = 0");
    if !range.events {
        sql.push_str(ONLY_MESSAGES);
    }
    let mut args = vec![(":conversation", Value::Integer(conversation))];
    // `time_ms >= t` (or `<=`) bounds the index range; the rest settles ties within that
    // millisecond by msgid.
    for (edge, side) in [(&range.lower, Side::Lower), (&range.upper, Side::Upper)] {
        let Some(edge) = edge else { continue };
        let (time, msgid, strict, loose) = match side {
            Side::Lower => (":lower_time", ":lower_msgid", ">", ">="),
            Side::Upper => (":upper_time", ":upper_msgid", "<", "<="),
        };
        match (&edge.at.msgid, edge.inclusive) {
            (None, false) => sql.push_str(&format!(" AND time_ms {strict} {time}")),
            (None, true) => sql.push_str(&format!(" AND time_ms {loose} {time}")),
            (Some(id), inclusive) => {
                let tie = if inclusive { loose } else { strict };
                sql.push_str(&format!(
                    " AND time_ms {loose} {time} AND (time_ms {strict} {time} OR msgid {tie} {msgid})"
                ));
                args.push((msgid, Value::Text(id.clone())));
            }
        }
        args.push((time, Value::Integer(edge.at.time)));
    }
    sql.push_str(match range.from {
        From::Oldest => " ORDER BY time_ms ASC, msgid ASC LIMIT :limit",
        From::Newest => " ORDER BY time_ms DESC, msgid DESC LIMIT :limit",
    });
    args.push((":limit", Value::Integer(limit_to_sql(range.limit))));
    (sql, args)
}

#[derive(Copy, Clone)]
enum Side {
    Lower,
    Upper,
}

/// A message row as selected with [`MESSAGE_COLUMNS`]; the conversation fields are filled in
/// by [`with_conversation`].
fn message_from_row(row: &Row<'_>) -> rusqlite::Result<StoredMessage> {
    Ok(StoredMessage {
        msgid: row.get(0)?,
        time_ms: from_sql(row.get(1)?),
        command: row.get(2)?,
        sender: row.get(3)?,
        sender_account: row.get(4)?,
        target: row.get(5)?,
        text: row.get(6)?,
        tags: row.get(7)?,
        conversation: String::new(),
        participants: Vec::new(),
        offline_for: None,
    })
}

/// Fills in the conversation key and its participants.
fn with_conversation(
    conn: &Connection,
    conversation: i64,
    key: &str,
    mut messages: Vec<StoredMessage>,
) -> Result<Vec<StoredMessage>, StoreError> {
    if messages.is_empty() {
        return Ok(messages);
    }
    let participants = participants(conn, conversation)?;
    for m in &mut messages {
        m.conversation = key.to_owned();
        m.participants = participants.clone();
    }
    Ok(messages)
}

fn participants(conn: &Connection, conversation: i64) -> Result<Vec<String>, StoreError> {
    let op = backend("reading history");
    let mut stmt = conn
        .prepare_cached("SELECT party FROM conversation_parties WHERE conversation = ?1 ORDER BY party")
        .map_err(&op)?;
    let rows = stmt.query_map([conversation], |row| row.get(0)).map_err(&op)?;
    rows.collect::<Result<_, _>>().map_err(op)
}

pub(super) fn targets(
    conn: &Connection,
    viewer: Option<&str>,
    rooms: &[String],
    from_ms: u64,
    to_ms: u64,
    limit: usize,
) -> Result<Vec<HistoryTarget>, StoreError> {
    let op = backend("listing history targets");
    let newest = from_ms > to_ms;
    let (lower, upper) = if newest { (to_ms, from_ms) } else { (from_ms, to_ms) };
    let (lower, upper) = (bound_to_sql(lower), bound_to_sql(upper));

    // (conversation id, key, is a room)
    let mut candidates: Vec<(i64, String, bool)> = Vec::new();
    for room in rooms {
        if let Some(id) = find_conversation(conn, room)? {
            candidates.push((id, room.clone(), true));
        }
    }
    if let Some(viewer) = viewer {
        let mut stmt = conn
            .prepare_cached(
                "SELECT c.id, c.key FROM conversation_parties p JOIN conversations c ON c.id = p.conversation
                 WHERE p.party = ?1",
            )
            .map_err(&op)?;
        let rows = stmt.query_map([viewer], |row| Ok((row.get(0)?, row.get(1)?, false))).map_err(&op)?;
        for row in rows {
            candidates.push(row.map_err(&op)?);
        }
    }
    candidates.sort_unstable();
    candidates.dedup_by_key(|c| c.0);

    // Conversations are listed by their messages: a join or a mode change is no news.
    let mut latest = conn
        .prepare_cached(&format!(
            "SELECT time_ms, sender, sender_account, target FROM messages
             WHERE conversation = ?1 AND time_ms > ?2 AND time_ms < ?3 AND redacted = 0{ONLY_MESSAGES}
             ORDER BY time_ms DESC, msgid DESC LIMIT 1"
        ))
        .map_err(&op)?;
    let mut out = Vec::new();
    for (id, key, is_room) in candidates {
        let row = latest
            .query_row(params![id, lower, upper], |row| {
                Ok((
                    from_sql(row.get(0)?),
                    row.get::<_, String>(1)?,
                    row.get::<_, Option<String>>(2)?,
                    row.get::<_, String>(3)?,
                ))
            })
            .optional()
            .map_err(&op)?;
        let Some((latest_ms, sender, sender_account, target)) = row else { continue };
        let viewer_sent = viewer.is_some_and(|v| sender_account.as_deref().is_some_and(|a| fold(a) == v));
        let name = if is_room || viewer_sent { target } else { nick_of(&sender).to_owned() };
        out.push(HistoryTarget { conversation: key, name, latest_ms });
    }
    out.sort_by(|a, b| (a.latest_ms, &a.name).cmp(&(b.latest_ms, &b.name)));
    if newest {
        out.drain(..out.len().saturating_sub(limit));
    } else {
        out.truncate(limit);
    }
    Ok(out)
}

/// The nick of a `nick!user@host` source.
fn nick_of(source: &str) -> &str {
    source.split_once('!').map_or(source, |(nick, _)| nick)
}

/// Deletes old messages conversation by conversation, through `messages_by_conversation`,
/// committing every [`PRUNE_CHUNK`] deletions or so.
pub(super) fn prune(conn: &Connection, older_than_ms: u64) -> Result<u64, StoreError> {
    let op = backend("pruning history");
    let cutoff = bound_to_sql(older_than_ms);
    let conversations: Vec<i64> = conn
        .prepare_cached("SELECT id FROM conversations ORDER BY id")
        .and_then(|mut s| s.query_map([], |row| row.get(0))?.collect())
        .map_err(&op)?;
    let begin = || rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&op);
    let mut delete = conn
        .prepare_cached(
            "DELETE FROM messages WHERE id IN
                (SELECT id FROM messages WHERE conversation = ?1 AND time_ms < ?2 LIMIT ?3)",
        )
        .map_err(&op)?;
    let (mut removed, mut uncommitted) = (0u64, 0u64);
    let mut tx = begin()?;
    for conversation in conversations {
        loop {
            let n = delete.execute(params![conversation, cutoff, PRUNE_CHUNK]).map_err(&op)? as u64;
            removed += n;
            uncommitted += n;
            if uncommitted >= PRUNE_CHUNK as u64 {
                tx.commit().map_err(&op)?;
                tx = begin()?;
                uncommitted = 0;
            }
            if n < PRUNE_CHUNK as u64 {
                break;
            }
        }
    }
    tx.commit().map_err(&op)?;
    Ok(removed)
}

/// One message by msgid, unless redacted. A room event (draft/event-playback) is not a message:
/// it cannot be redacted, and looks unknown here.
pub(super) fn message(conn: &Connection, msgid: &str) -> Result<Option<StoredMessage>, StoreError> {
    let op = backend("reading a message");
    let row = conn
        .prepare_cached(&format!(
            "SELECT {MESSAGE_COLUMNS}, m.conversation, c.key FROM messages m JOIN conversations c ON c.id = m.conversation
             WHERE m.msgid = ?1 AND m.redacted = 0 AND m.command IN ('PRIVMSG', 'NOTICE')"
        ))
        .and_then(|mut s| {
            s.query_row([msgid], |row| Ok((message_from_row(row)?, row.get::<_, i64>(8)?, row.get::<_, String>(9)?)))
                .optional()
        })
        .map_err(&op)?;
    let Some((message, conversation, key)) = row else { return Ok(None) };
    Ok(with_conversation(conn, conversation, &key, vec![message])?.pop())
}

/// Marks a message redacted, erases its text and tags, and takes it out of every offline
/// queue, in one transaction. The queues it left, or `None` if there was nothing to redact.
///
/// Finding its queued copies reads the whole `offline` table (it is keyed by account first,
/// and an index by msgid would cost every queued message a page write): redactions are rare,
/// each needs a message of the redacter's own (or an operator), and the table only holds what
/// waits for accounts that are away.
pub(super) fn redact(conn: &Connection, msgid: &str) -> Result<Option<Vec<String>>, StoreError> {
    let op = backend("redacting a message");
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&op)?;
    let changed = tx
        .prepare_cached("UPDATE messages SET redacted = 1, text = '', tags = '' WHERE msgid = ?1 AND redacted = 0")
        .and_then(|mut s| s.execute([msgid]))
        .map_err(&op)?;
    if changed == 0 {
        return Ok(None);
    }
    let mut queues: Vec<String> = tx
        .prepare_cached("DELETE FROM offline WHERE msgid = ?1 RETURNING account")
        .and_then(|mut s| s.query_map([msgid], |row| row.get(0))?.collect())
        .map_err(&op)?;
    tx.commit().map_err(op)?;
    queues.sort_unstable();
    queues.dedup();
    Ok(Some(queues))
}

pub(super) fn offline(conn: &Connection, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
    let op = backend("reading an offline queue");
    let folded = fold(account);
    let mut stmt = conn
        .prepare_cached(
            "SELECT o.msgid, o.time_ms, o.command, o.sender, o.sender_account, o.target, o.text, o.tags,
                    o.conversation, c.key
             FROM offline o JOIN conversations c ON c.id = o.conversation
             WHERE o.account = ?1 ORDER BY o.time_ms, o.msgid LIMIT ?2",
        )
        .map_err(&op)?;
    let rows = stmt
        .query_map(params![folded, limit_to_sql(limit)], |row| {
            let mut m = message_from_row(row)?;
            let conversation: i64 = row.get(8)?;
            m.conversation = row.get(9)?;
            Ok((conversation, m))
        })
        .map_err(&op)?;
    let mut parties: HashMap<i64, Vec<String>> = HashMap::new();
    let mut out = Vec::new();
    for row in rows {
        let (conversation, mut m) = row.map_err(&op)?;
        let shared = match parties.entry(conversation) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(participants(conn, conversation)?),
        };
        m.participants = shared.clone();
        m.offline_for = Some(folded.clone());
        out.push(m);
    }
    Ok(out)
}

pub(super) fn clear_offline(conn: &Connection, account: &str, up_to_msgid: &str) -> Result<u64, StoreError> {
    let op = backend("clearing an offline queue");
    let folded = fold(account);
    let time: Option<i64> = conn
        .prepare_cached("SELECT time_ms FROM offline WHERE account = ?1 AND msgid = ?2")
        .and_then(|mut s| s.query_row(params![folded, up_to_msgid], |row| row.get(0)).optional())
        .map_err(&op)?;
    let Some(time) = time else { return Ok(0) };
    let n = conn
        .prepare_cached("DELETE FROM offline WHERE account = ?1 AND time_ms <= ?2 AND (time_ms < ?2 OR msgid <= ?3)")
        .and_then(|mut s| s.execute(params![folded, time, up_to_msgid]))
        .map_err(op)?;
    Ok(n as u64)
}

pub(super) fn queue_offline(conn: &Connection, account: &str, msgid: &str) -> Result<bool, StoreError> {
    let n = conn
        .prepare_cached(
            "INSERT OR IGNORE INTO offline
                 (account, time_ms, msgid, conversation, command, sender, sender_account, target, text, tags)
             SELECT ?1, time_ms, msgid, conversation, command, sender, sender_account, target, text, tags
             FROM messages WHERE msgid = ?2 AND EXISTS (SELECT 1 FROM accounts WHERE folded = ?1)",
        )
        .and_then(|mut s| s.execute(params![fold(account), msgid]))
        .map_err(backend("queueing a stored message"))?;
    Ok(n > 0)
}

pub(super) fn offline_counts(conn: &Connection) -> Result<Vec<(String, u64)>, StoreError> {
    let op = backend("counting offline queues");
    let mut stmt =
        conn.prepare("SELECT account, COUNT(*) FROM offline GROUP BY account ORDER BY account").map_err(&op)?;
    let rows = stmt.query_map([], |row| Ok((row.get::<_, String>(0)?, row.get::<_, i64>(1)?))).map_err(&op)?;
    rows.map(|r| r.map(|(a, n)| (a, u64::try_from(n).unwrap_or(0)))).collect::<Result<_, _>>().map_err(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every history query reads `messages_by_conversation` in index order: no table scan, and no
    /// sort beyond ordering messages that share a millisecond by msgid ("LAST TERM OF ORDER
    /// BY"). A regression here turns a page of history into a sort of the whole conversation.
    #[test]
    fn history_queries_read_the_conversation_index_in_order() {
        let conn = in_memory();
        let time = |msgid: Option<&str>| Position { time: 5, msgid: msgid.map(str::to_owned) };
        let edges = [None, Some((None, false)), Some((None, true)), Some((Some("m"), false)), Some((Some("m"), true))];
        for lower in &edges {
            for upper in &edges {
                for from in [From::Oldest, From::Newest] {
                    let edge = |e: &Option<(Option<&str>, bool)>| {
                        e.as_ref().map(|(m, inclusive)| Edge { at: time(*m), inclusive: *inclusive })
                    };
                    for events in [false, true] {
                        let range = Range { lower: edge(lower), upper: edge(upper), from, limit: 10, events };
                        let plan = plan_of(&conn, &range);
                        assert!(plan.contains("USING INDEX messages_by_conversation"), "{range:?}: {plan}");
                        assert!(!plan.contains("TEMP B-TREE FOR ORDER BY"), "{range:?}: {plan}");
                    }
                }
            }
        }
    }

    #[test]
    fn targets_and_pruning_use_indexes() {
        let conn = in_memory();
        let plan = |sql: &str| -> String {
            let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("prepare");
            let rows = stmt.query_map([], |row| row.get::<_, String>(3)).expect("plan");
            rows.map(|r| r.expect("row")).collect::<Vec<_>>().join(" / ")
        };
        let prune = plan(
            "DELETE FROM messages WHERE id IN
                (SELECT id FROM messages WHERE conversation = 1 AND time_ms < 5 LIMIT 10)",
        );
        assert!(prune.contains("messages_by_conversation (conversation=? AND time_ms<?)"), "{prune}");
        let latest = plan(&format!(
            "SELECT time_ms FROM messages WHERE conversation = 1 AND time_ms > 1 AND time_ms < 9{ONLY_MESSAGES}
                 ORDER BY time_ms DESC, msgid DESC LIMIT 1"
        ));
        assert!(latest.contains("messages_by_conversation") && !latest.contains("FOR ORDER BY"), "{latest}");
        let offline = plan("SELECT msgid FROM offline WHERE account = 'a' ORDER BY time_ms, msgid LIMIT 5");
        assert!(offline.contains("PRIMARY KEY (account=?)") && !offline.contains("TEMP B-TREE"), "{offline}");
    }

    /// An empty database with the latest schema.
    fn in_memory() -> Connection {
        let conn = Connection::open_in_memory().expect("open");
        for migration in crate::sqlite::schema::MIGRATIONS {
            conn.execute_batch(migration).expect("schema");
        }
        conn
    }

    fn plan_of(conn: &Connection, range: &Range) -> String {
        let (sql, args) = range_statement(1, range);
        let args: Vec<(&str, &dyn ToSql)> = args.iter().map(|(n, v)| (*n, v as &dyn ToSql)).collect();
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).expect("prepare");
        let rows = stmt.query_map(args.as_slice(), |row| row.get::<_, String>(3)).expect("plan");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join(" / ")
    }
}
