//! History: appending batches, `CHATHISTORY` queries, `TARGETS`, retention, offline queues.
//! The same ranges as the SQLite store (see `sqlite/history.rs`), read through
//! `messages_by_conversation` from one end.

use std::collections::{HashMap, HashSet};

use postgres::types::ToSql;
use postgres::Row;

use super::{backend, is_unique_violation, Db};
use crate::record::{Bound, HistoryQuery, HistoryTarget, StoredMessage};
use crate::sql::{bound_to_sql, from_sql, limit_to_sql, to_sql, Edge, From, Position, Range, ONLY_MESSAGES};
use crate::{fold, StoreError};

/// Messages deleted per statement by retention, so that a large prune holds locks briefly.
const PRUNE_CHUNK: i64 = 10_000;

/// The columns of a message row, in the order [`message_from_row`] reads them.
const MESSAGE_COLUMNS: &str = "msgid, time_ms, command, sender, sender_account, target, text, tags";

const NEW_CONVERSATIONS: &str =
    "INSERT INTO conversations (key) SELECT unnest($1::bytea[]) ON CONFLICT (key) DO NOTHING";
const CONVERSATION_IDS: &str = "SELECT key, id FROM conversations WHERE key = ANY($1::bytea[])";
const LOCK_CONVERSATIONS: &str = "SELECT id FROM conversations WHERE id = ANY($1) FOR KEY SHARE";
const INSERT_MESSAGES: &str = "INSERT INTO messages
        (conversation, msgid, time_ms, command, sender, sender_account, target, text, tags)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], $7::text[],
                         $8::text[], $9::text[])";
const INSERT_PARTIES: &str = "INSERT INTO conversation_parties (party, conversation)
    SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING";
/// Queued only if the account (or the end-to-end encryption device, for a queue key
/// `account/device`) exists: a message to an account dropped a moment ago must not fail the
/// whole batch.
const INSERT_OFFLINE: &str = "INSERT INTO offline
        (account, conversation, msgid, time_ms, command, sender, sender_account, target, text, tags)
    SELECT u.* FROM unnest($1::text[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[],
                           $8::text[], $9::text[], $10::text[])
        AS u(account, conversation, msgid, time_ms, command, sender, sender_account, target, text, tags)
    WHERE EXISTS (SELECT 1 FROM accounts a WHERE a.folded = u.account)
       OR (strpos(u.account, '/') > 0 AND EXISTS (
            SELECT 1 FROM e2e_devices d
            WHERE d.account = split_part(u.account, '/', 1)
              AND lower(d.device) = substr(u.account, strpos(u.account, '/') + 1)))";

/// What [`append`] fails with when a cached conversation id names a conversation that is gone
/// (deleted by another node sharing the database); the caller forgets its cache and tries again.
pub(super) const STALE_CONVERSATION: &str = "appending history to a conversation deleted meanwhile";

/// Stores a batch in one transaction: a statement per table, each taking the whole batch as
/// arrays, so that the round trips do not grow with the batch.
pub(super) fn append(
    db: &mut Db,
    conversations: &mut HashMap<Vec<u8>, i64>,
    parties: &mut HashMap<i64, HashSet<String>>,
    batch: &[StoredMessage],
) -> Result<(), StoreError> {
    if batch.is_empty() {
        return Ok(());
    }
    let op = backend("appending history");
    let times = batch.iter().map(|m| to_sql("message time", m.time_ms)).collect::<Result<Vec<_>, _>>()?;
    // A msgid repeated inside the batch, named as SQLite names it: the second occurrence.
    let mut seen = HashSet::with_capacity(batch.len());
    if let Some(m) = batch.iter().find(|m| !seen.insert(m.msgid.as_str())) {
        return Err(StoreError::DuplicateMsgId(m.msgid.clone()));
    }
    let statements =
        [NEW_CONVERSATIONS, CONVERSATION_IDS, LOCK_CONVERSATIONS, INSERT_MESSAGES, INSERT_PARTIES, INSERT_OFFLINE]
            .map(|sql| db.prepared(sql))
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .map_err(&op)?;
    let [new_conversations, conversation_ids, lock_conversations, insert_messages, insert_parties, insert_offline] =
        <[_; 6]>::try_from(statements).map_err(|_| StoreError::Backend {
            operation: "appending history",
            source: "preparing statements".into(),
        })?;

    let mut tx = db.client.transaction().map_err(&op)?;
    // Conversation ids: the new keys are created (or found, if another node created them
    // meanwhile) and read back with two statements for the whole batch.
    let mut missing: Vec<&[u8]> =
        batch.iter().map(|m| m.conversation.as_bytes()).filter(|k| !conversations.contains_key(*k)).collect();
    missing.sort_unstable();
    missing.dedup();
    if !missing.is_empty() {
        tx.execute(&new_conversations, &[&missing]).map_err(&op)?;
        for row in tx.query(&conversation_ids, &[&missing]).map_err(&op)? {
            conversations.insert(row.get(0), row.get(1));
        }
    }
    let ids: Vec<i64> = batch
        .iter()
        .map(|m| {
            conversations.get(m.conversation.as_bytes()).copied().ok_or_else(|| StoreError::Backend {
                operation: "appending history",
                source: "a conversation was neither found nor created".into(),
            })
        })
        .collect::<Result<_, _>>()?;

    // With several nodes on one database, a cached id can outlive its conversation (another
    // node dropped an account), and messages stored under it would be out of sight. So the
    // batch's conversations are checked and locked against deletion until the commit: one
    // statement per batch, where a foreign key would cost a lookup and a row lock per message
    // (it cut `chinwag bench history` from about 160 k to 110 k messages a second).
    let mut distinct = ids.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let found = tx.query(&lock_conversations, &[&distinct]).map_err(&op)?.len();
    if found != distinct.len() {
        return Err(StoreError::Backend {
            operation: STALE_CONVERSATION,
            source: format!("{} of the batch's conversations are gone", distinct.len() - found).into(),
        });
    }

    let column = |f: fn(&StoredMessage) -> &str| batch.iter().map(f).collect::<Vec<&str>>();
    let msgids = column(|m| &m.msgid);
    let accounts: Vec<Option<&str>> = batch.iter().map(|m| m.sender_account.as_deref()).collect();
    let inserted = tx.execute(
        &insert_messages,
        &[
            &ids,
            &msgids,
            &times,
            &column(|m| &m.command),
            &column(|m| &m.sender),
            &accounts,
            &column(|m| &m.target),
            &column(|m| &m.text),
            &column(|m| &m.tags),
        ],
    );
    match inserted {
        Ok(_) => {}
        Err(e) if is_unique_violation(&e) => {
            drop(tx);
            return Err(duplicate(db, &msgids).unwrap_or_else(|| op(e)));
        }
        Err(e) => return Err(op(e)),
    }

    let mut new_parties: (Vec<&str>, Vec<i64>) = (Vec::new(), Vec::new());
    let mut pending: HashSet<(&str, i64)> = HashSet::new();
    for (m, &id) in batch.iter().zip(&ids) {
        for party in &m.participants {
            let known = parties.get(&id).is_some_and(|p| p.contains(party));
            if !known && pending.insert((party, id)) {
                new_parties.0.push(party);
                new_parties.1.push(id);
            }
        }
    }
    if !new_parties.0.is_empty() {
        tx.execute(&insert_parties, &[&new_parties.0, &new_parties.1]).map_err(&op)?;
    }

    let queued: Vec<usize> = (0..batch.len()).filter(|&i| batch[i].offline_for.is_some()).collect();
    if !queued.is_empty() {
        let pick = |f: fn(&StoredMessage) -> &str| queued.iter().map(|&i| f(&batch[i])).collect::<Vec<&str>>();
        let owners: Vec<String> = queued.iter().map(|&i| fold(batch[i].offline_for.as_deref().unwrap_or(""))).collect();
        let queue_ids: Vec<i64> = queued.iter().map(|&i| ids[i]).collect();
        let queue_times: Vec<i64> = queued.iter().map(|&i| times[i]).collect();
        let queue_accounts: Vec<Option<&str>> = queued.iter().map(|&i| batch[i].sender_account.as_deref()).collect();
        tx.execute(
            &insert_offline,
            &[
                &owners,
                &queue_ids,
                &pick(|m| &m.msgid),
                &queue_times,
                &pick(|m| &m.command),
                &pick(|m| &m.sender),
                &queue_accounts,
                &pick(|m| &m.target),
                &pick(|m| &m.text),
                &pick(|m| &m.tags),
            ],
        )
        .map_err(&op)?;
    }
    tx.commit().map_err(&op)?;
    for (party, id) in pending {
        parties.entry(id).or_default().insert(party.to_owned());
    }
    Ok(())
}

/// After a unique violation: the first msgid of the batch that is already stored.
fn duplicate(db: &mut Db, msgids: &[&str]) -> Option<StoreError> {
    let rows = db.client.query("SELECT msgid FROM messages WHERE msgid = ANY($1)", &[&msgids]).ok()?;
    let stored: HashSet<String> = rows.iter().map(|r| r.get(0)).collect();
    msgids.iter().find(|m| stored.contains(**m)).map(|m| StoreError::DuplicateMsgId((*m).to_owned()))
}

fn find_conversation(db: &mut Db, key: &str) -> Result<Option<i64>, StoreError> {
    let op = backend("finding a conversation");
    let statement = db.prepared("SELECT id FROM conversations WHERE key = $1").map_err(&op)?;
    let row = db.client.query_opt(&statement, &[&key.as_bytes()]).map_err(op)?;
    Ok(row.map(|r| r.get(0)))
}

pub(super) fn history(
    db: &mut Db,
    key: &str,
    query: &HistoryQuery,
    limit: usize,
    events: bool,
) -> Result<Vec<StoredMessage>, StoreError> {
    let Some(conversation) = find_conversation(db, key)? else {
        return Ok(Vec::new());
    };
    let exclusive = |at: Position| Some(Edge { at, inclusive: false });
    let range = |lower: Option<Edge>, upper: Option<Edge>, from: From, limit: usize| Range {
        lower,
        upper,
        from,
        limit,
        events,
    };
    let out = match query {
        HistoryQuery::Latest { after: None } => select(db, conversation, &range(None, None, From::Newest, limit))?,
        HistoryQuery::Latest { after: Some(bound) } => {
            let at = position(db, conversation, bound)?;
            select(db, conversation, &range(exclusive(at), None, From::Newest, limit))?
        }
        HistoryQuery::Before(bound) => {
            let at = position(db, conversation, bound)?;
            select(db, conversation, &range(None, exclusive(at), From::Newest, limit))?
        }
        HistoryQuery::After(bound) => {
            let at = position(db, conversation, bound)?;
            select(db, conversation, &range(exclusive(at), None, From::Oldest, limit))?
        }
        HistoryQuery::Around(bound) => {
            let at = position(db, conversation, bound)?;
            let mut before = select(db, conversation, &range(None, exclusive(at.clone()), From::Newest, limit))?;
            let inclusive = Some(Edge { at, inclusive: true });
            let mut after = select(db, conversation, &range(inclusive, None, From::Oldest, limit))?;
            let keep_before = before.len().min((limit / 2).max(limit.saturating_sub(after.len())));
            before.drain(..before.len() - keep_before);
            after.truncate(limit - keep_before);
            before.append(&mut after);
            before
        }
        HistoryQuery::Between(first, second) => {
            let (first, second) = (position(db, conversation, first)?, position(db, conversation, second)?);
            let forward = (first.time, first.msgid.as_deref()) <= (second.time, second.msgid.as_deref());
            if forward {
                select(db, conversation, &range(exclusive(first), exclusive(second), From::Oldest, limit))?
            } else {
                select(db, conversation, &range(exclusive(second), exclusive(first), From::Newest, limit))?
            }
        }
    };
    with_conversation(db, conversation, key, out)
}

/// Where a bound sits; a msgid must belong to this conversation.
fn position(db: &mut Db, conversation: i64, bound: &Bound) -> Result<Position, StoreError> {
    match bound {
        Bound::Time(ms) => Ok(Position { time: bound_to_sql(*ms), msgid: None }),
        Bound::MsgId(msgid) => {
            let op = backend("reading history");
            let statement =
                db.prepared("SELECT time_ms FROM messages WHERE msgid = $1 AND conversation = $2").map_err(&op)?;
            let row = db.client.query_opt(&statement, &[msgid, &conversation]).map_err(op)?;
            match row {
                Some(row) => Ok(Position { time: row.get(0), msgid: Some(msgid.clone()) }),
                None => Err(StoreError::UnknownMsgId(msgid.clone())),
            }
        }
    }
}

/// An argument of a range statement.
enum Arg {
    Int(i64),
    Text(String),
}

/// Reads one range, oldest first whichever end it was read from.
fn select(db: &mut Db, conversation: i64, range: &Range) -> Result<Vec<StoredMessage>, StoreError> {
    if range.limit == 0 {
        return Ok(Vec::new());
    }
    let op = backend("reading history");
    let (sql, args) = range_statement(conversation, range);
    let params: Vec<&(dyn ToSql + Sync)> = args
        .iter()
        .map(|a| match a {
            Arg::Int(v) => v as &(dyn ToSql + Sync),
            Arg::Text(v) => v as &(dyn ToSql + Sync),
        })
        .collect();
    // A few dozen shapes at most: each is prepared once and kept.
    let statement = db.prepared(&sql).map_err(&op)?;
    let rows = db.client.query(&statement, &params).map_err(op)?;
    let mut out: Vec<StoredMessage> = rows.iter().map(message_from_row).collect();
    if range.from == From::Newest {
        out.reverse();
    }
    Ok(out)
}

/// The SQL of a range and its arguments; the text depends only on the range's shape.
fn range_statement(conversation: i64, range: &Range) -> (String, Vec<Arg>) {
    let mut sql = format!("SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation = $1 AND NOT redacted");
    if !range.events {
        sql.push_str(ONLY_MESSAGES);
    }
    let mut args = vec![Arg::Int(conversation)];
    for (edge, lower) in [(&range.lower, true), (&range.upper, false)] {
        let Some(edge) = edge else { continue };
        let (strict, loose) = if lower { (">", ">=") } else { ("<", "<=") };
        args.push(Arg::Int(edge.at.time));
        let time = format!("${}", args.len());
        match (&edge.at.msgid, edge.inclusive) {
            (None, false) => sql.push_str(&format!(" AND time_ms {strict} {time}")),
            (None, true) => sql.push_str(&format!(" AND time_ms {loose} {time}")),
            (Some(id), inclusive) => {
                args.push(Arg::Text(id.clone()));
                let msgid = format!("${}", args.len());
                let tie = if inclusive { loose } else { strict };
                sql.push_str(&format!(
                    " AND time_ms {loose} {time} AND (time_ms {strict} {time} OR msgid {tie} {msgid})"
                ));
            }
        }
    }
    args.push(Arg::Int(limit_to_sql(range.limit)));
    let limit = format!("${}", args.len());
    sql.push_str(&match range.from {
        From::Oldest => format!(" ORDER BY time_ms ASC, msgid ASC LIMIT {limit}"),
        From::Newest => format!(" ORDER BY time_ms DESC, msgid DESC LIMIT {limit}"),
    });
    (sql, args)
}

/// A message row as selected with [`MESSAGE_COLUMNS`]; the conversation fields are filled in
/// by [`with_conversation`].
fn message_from_row(row: &Row) -> StoredMessage {
    StoredMessage {
        msgid: row.get(0),
        time_ms: from_sql(row.get(1)),
        command: row.get(2),
        sender: row.get(3),
        sender_account: row.get(4),
        target: row.get(5),
        text: row.get(6),
        tags: row.get(7),
        conversation: String::new(),
        participants: Vec::new(),
        offline_for: None,
    }
}

fn with_conversation(
    db: &mut Db,
    conversation: i64,
    key: &str,
    mut messages: Vec<StoredMessage>,
) -> Result<Vec<StoredMessage>, StoreError> {
    if messages.is_empty() {
        return Ok(messages);
    }
    let participants = participants(db, conversation)?;
    for m in &mut messages {
        m.conversation = key.to_owned();
        m.participants = participants.clone();
    }
    Ok(messages)
}

fn participants(db: &mut Db, conversation: i64) -> Result<Vec<String>, StoreError> {
    let op = backend("reading history");
    let statement =
        db.prepared("SELECT party FROM conversation_parties WHERE conversation = $1 ORDER BY party").map_err(&op)?;
    let rows = db.client.query(&statement, &[&conversation]).map_err(op)?;
    Ok(rows.iter().map(|r| r.get(0)).collect())
}

/// A conversation key read back (written from a `&str`, so always UTF-8).
fn key_from_bytes(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

pub(super) fn targets(
    db: &mut Db,
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
    if !rooms.is_empty() {
        let keys: Vec<&[u8]> = rooms.iter().map(|r| r.as_bytes()).collect();
        for row in db.client.query("SELECT id, key FROM conversations WHERE key = ANY($1)", &[&keys]).map_err(&op)? {
            candidates.push((row.get(0), key_from_bytes(row.get(1)), true));
        }
    }
    if let Some(viewer) = viewer {
        let rows = db
            .client
            .query(
                "SELECT c.id, c.key FROM conversation_parties p JOIN conversations c ON c.id = p.conversation
                 WHERE p.party = $1",
                &[&viewer],
            )
            .map_err(&op)?;
        for row in rows {
            candidates.push((row.get(0), key_from_bytes(row.get(1)), false));
        }
    }
    candidates.sort_unstable();
    candidates.dedup_by_key(|c| c.0);

    let latest = db
        .prepared(
            "SELECT time_ms, sender, sender_account, target FROM messages
             WHERE conversation = $1 AND time_ms > $2 AND time_ms < $3 AND NOT redacted AND command IN ('PRIVMSG', 'NOTICE')
             ORDER BY time_ms DESC, msgid DESC LIMIT 1",
        )
        .map_err(&op)?;
    let mut out = Vec::new();
    for (id, key, is_room) in candidates {
        let Some(row) = db.client.query_opt(&latest, &[&id, &lower, &upper]).map_err(&op)? else { continue };
        let latest_ms = from_sql(row.get(0));
        let sender: String = row.get(1);
        let sender_account: Option<String> = row.get(2);
        let target: String = row.get(3);
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

/// Deletes old messages conversation by conversation, [`PRUNE_CHUNK`] per statement, each
/// committed by itself.
pub(super) fn prune(db: &mut Db, older_than_ms: u64) -> Result<u64, StoreError> {
    let op = backend("pruning history");
    let cutoff = bound_to_sql(older_than_ms);
    let conversations: Vec<i64> = db
        .client
        .query("SELECT id FROM conversations ORDER BY id", &[])
        .map_err(&op)?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let delete = db
        .prepared(
            "DELETE FROM messages WHERE id IN
                (SELECT id FROM messages WHERE conversation = $1 AND time_ms < $2 LIMIT $3)",
        )
        .map_err(&op)?;
    let mut removed = 0u64;
    for conversation in conversations {
        loop {
            let n = db.client.execute(&delete, &[&conversation, &cutoff, &PRUNE_CHUNK]).map_err(&op)?;
            removed += n;
            if n < PRUNE_CHUNK.unsigned_abs() {
                break;
            }
        }
    }
    Ok(removed)
}

/// One message by msgid, unless redacted.
pub(super) fn message(db: &mut Db, msgid: &str) -> Result<Option<StoredMessage>, StoreError> {
    let op = backend("reading a message");
    let row = db
        .client
        .query_opt(
            "SELECT m.msgid, m.time_ms, m.command, m.sender, m.sender_account, m.target, m.text, m.tags,
                    m.conversation, c.key
             FROM messages m JOIN conversations c ON c.id = m.conversation
             WHERE m.msgid = $1 AND NOT m.redacted AND m.command IN ('PRIVMSG', 'NOTICE')",
            &[&msgid],
        )
        .map_err(op)?;
    let Some(row) = row else { return Ok(None) };
    let message = message_from_row(&row);
    let conversation: i64 = row.get(8);
    let key = key_from_bytes(row.get(9));
    Ok(with_conversation(db, conversation, &key, vec![message])?.pop())
}

/// Marks a message redacted, erases its text and tags, and takes it out of every offline
/// queue, in one transaction. The queues it left, or `None` if there was nothing to redact.
pub(super) fn redact(db: &mut Db, msgid: &str) -> Result<Option<Vec<String>>, StoreError> {
    let op = backend("redacting a message");
    let mut tx = db.client.transaction().map_err(&op)?;
    let changed = tx
        .execute(
            "UPDATE messages SET redacted = true, text = '', tags = '' WHERE msgid = $1 AND NOT redacted",
            &[&msgid],
        )
        .map_err(&op)?;
    if changed == 0 {
        return Ok(None);
    }
    let rows = tx.query("DELETE FROM offline WHERE msgid = $1 RETURNING account", &[&msgid]).map_err(&op)?;
    let mut queues: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
    tx.commit().map_err(op)?;
    queues.sort_unstable();
    queues.dedup();
    Ok(Some(queues))
}

pub(super) fn offline(db: &mut Db, account: &str, limit: usize) -> Result<Vec<StoredMessage>, StoreError> {
    let op = backend("reading an offline queue");
    let folded = fold(account);
    let rows = db
        .client
        .query(
            "SELECT o.msgid, o.time_ms, o.command, o.sender, o.sender_account, o.target, o.text, o.tags,
                    o.conversation, c.key
             FROM offline o JOIN conversations c ON c.id = o.conversation
             WHERE o.account = $1 ORDER BY o.time_ms, o.msgid LIMIT $2",
            &[&folded, &limit_to_sql(limit)],
        )
        .map_err(&op)?;
    let mut parties: HashMap<i64, Vec<String>> = HashMap::new();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut m = message_from_row(&row);
        let conversation: i64 = row.get(8);
        m.conversation = key_from_bytes(row.get(9));
        let shared = match parties.entry(conversation) {
            std::collections::hash_map::Entry::Occupied(entry) => entry.into_mut(),
            std::collections::hash_map::Entry::Vacant(entry) => entry.insert(participants(db, conversation)?),
        };
        m.participants = shared.clone();
        m.offline_for = Some(folded.clone());
        out.push(m);
    }
    Ok(out)
}

pub(super) fn clear_offline(db: &mut Db, account: &str, up_to_msgid: &str) -> Result<u64, StoreError> {
    let op = backend("clearing an offline queue");
    let folded = fold(account);
    let Some(row) = db
        .client
        .query_opt("SELECT time_ms FROM offline WHERE account = $1 AND msgid = $2", &[&folded, &up_to_msgid])
        .map_err(&op)?
    else {
        return Ok(0);
    };
    let time: i64 = row.get(0);
    db.client
        .execute(
            "DELETE FROM offline WHERE account = $1 AND time_ms <= $2 AND (time_ms < $2 OR msgid <= $3)",
            &[&folded, &time, &up_to_msgid],
        )
        .map_err(op)
}

pub(super) fn queue_offline(db: &mut Db, account: &str, msgid: &str) -> Result<bool, StoreError> {
    let n = db
        .client
        .execute(
            "INSERT INTO offline
                 (account, time_ms, msgid, conversation, command, sender, sender_account, target, text, tags)
             SELECT $1, time_ms, msgid, conversation, command, sender, sender_account, target, text, tags
             FROM messages WHERE msgid = $2 AND EXISTS (SELECT 1 FROM accounts WHERE folded = $1)
             ON CONFLICT DO NOTHING",
            &[&fold(account), &msgid],
        )
        .map_err(backend("queueing a stored message"))?;
    Ok(n > 0)
}

pub(super) fn offline_counts(db: &mut Db) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = db
        .client
        .query("SELECT account, count(*) FROM offline GROUP BY account ORDER BY account", &[])
        .map_err(backend("counting offline queues"))?;
    Ok(rows.iter().map(|r| (r.get(0), from_sql(r.get(1)))).collect())
}
