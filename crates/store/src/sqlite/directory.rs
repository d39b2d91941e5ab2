//! Accounts and rooms: small tables, written rarely, read whole at start.

use std::collections::HashMap;

use rusqlite::{ffi, params, Connection, OptionalExtension, TransactionBehavior};

use super::backend;
use crate::record::{AccountRecord, BanRecord, ChannelRecord, NewAccount, TopicRecord};
use crate::sql::{from_sql, to_sql};
use crate::{fold, StoreError};

pub(super) fn create_account(conn: &Connection, account: &NewAccount) -> Result<(), StoreError> {
    let created_ms = to_sql("account creation time", account.created_ms)?;
    let mut insert = conn
        .prepare_cached(
            "INSERT INTO accounts (folded, name, password_hash, email, created_ms, scram)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        )
        .map_err(backend("creating an account"))?;
    let values =
        params![fold(&account.name), account.name, account.password_hash, account.email, created_ms, account.scram];
    match insert.execute(values) {
        Ok(_) => Ok(()),
        Err(e) if e.sqlite_error_code() == Some(ffi::ErrorCode::ConstraintViolation) => {
            Err(StoreError::AccountExists(account.name.clone()))
        }
        Err(e) => Err(backend("creating an account")(e)),
    }
}

pub(super) fn account(conn: &Connection, name: &str) -> Result<Option<AccountRecord>, StoreError> {
    let op = backend("looking up an account");
    let mut select = conn
        .prepare_cached("SELECT name, password_hash, email, created_ms, scram FROM accounts WHERE folded = ?1")
        .map_err(&op)?;
    select
        .query_row([fold(name)], |row| {
            Ok(AccountRecord {
                name: row.get(0)?,
                password_hash: row.get(1)?,
                email: row.get(2)?,
                created_ms: from_sql(row.get(3)?),
                scram: row.get(4)?,
            })
        })
        .optional()
        .map_err(op)
}

pub(super) fn account_names(conn: &Connection) -> Result<Vec<String>, StoreError> {
    let op = backend("listing accounts");
    let mut select = conn.prepare_cached("SELECT name FROM accounts ORDER BY folded").map_err(&op)?;
    let names = select.query_map([], |row| row.get(0)).map_err(&op)?;
    names.collect::<Result<_, _>>().map_err(op)
}

pub(super) fn set_password(
    conn: &Connection,
    name: &str,
    password_hash: &str,
    scram: Option<&str>,
) -> Result<bool, StoreError> {
    let op = backend("changing a password");
    let mut update =
        conn.prepare_cached("UPDATE accounts SET password_hash = ?2, scram = ?3 WHERE folded = ?1").map_err(&op)?;
    Ok(update.execute(params![fold(name), password_hash, scram]).map_err(op)? > 0)
}

pub(super) fn set_scram(conn: &Connection, name: &str, password_hash: &str, scram: &str) -> Result<bool, StoreError> {
    let op = backend("storing SCRAM credentials");
    let mut update =
        conn.prepare_cached("UPDATE accounts SET scram = ?3 WHERE folded = ?1 AND password_hash = ?2").map_err(&op)?;
    Ok(update.execute(params![fold(name), password_hash, scram]).map_err(op)? > 0)
}

/// Checks and inserts in one immediate transaction, so that two servers on one file cannot
/// both pass the count.
pub(super) fn add_cert(
    conn: &Connection,
    account: &str,
    fingerprint: &str,
    max: usize,
) -> Result<crate::CertAdded, StoreError> {
    use crate::CertAdded;
    let op = backend("registering a certificate");
    let folded = fold(account);
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&op)?;
    let exists = tx
        .query_row("SELECT 1 FROM accounts WHERE folded = ?1", [&folded], |_| Ok(()))
        .optional()
        .map_err(&op)?
        .is_some();
    if !exists {
        return Ok(CertAdded::NoAccount);
    }
    let owner: Option<String> = tx
        .query_row("SELECT account FROM account_certs WHERE fingerprint = ?1", [fingerprint], |r| r.get(0))
        .optional()
        .map_err(&op)?;
    let outcome = match owner {
        Some(owner) if owner == folded => CertAdded::AlreadyThere,
        Some(_) => CertAdded::Taken,
        None => {
            let count: i64 = tx
                .query_row("SELECT COUNT(*) FROM account_certs WHERE account = ?1", [&folded], |r| r.get(0))
                .map_err(&op)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                CertAdded::Full
            } else {
                tx.execute("INSERT INTO account_certs (fingerprint, account) VALUES (?1, ?2)", [fingerprint, &folded])
                    .map_err(&op)?;
                CertAdded::Added
            }
        }
    };
    tx.commit().map_err(op)?;
    Ok(outcome)
}

pub(super) fn remove_cert(conn: &Connection, account: &str, fingerprint: &str) -> Result<bool, StoreError> {
    let op = backend("removing a certificate");
    let mut delete =
        conn.prepare_cached("DELETE FROM account_certs WHERE account = ?1 AND fingerprint = ?2").map_err(&op)?;
    Ok(delete.execute(params![fold(account), fingerprint]).map_err(op)? > 0)
}

pub(super) fn certs(conn: &Connection, account: &str) -> Result<Vec<String>, StoreError> {
    let op = backend("listing certificates");
    let mut select = conn
        .prepare_cached("SELECT fingerprint FROM account_certs WHERE account = ?1 ORDER BY fingerprint")
        .map_err(&op)?;
    let rows = select.query_map([fold(account)], |row| row.get(0)).map_err(&op)?;
    rows.collect::<Result<_, _>>().map_err(op)
}

pub(super) fn cert_owner(conn: &Connection, fingerprint: &str) -> Result<Option<String>, StoreError> {
    let op = backend("looking up a certificate");
    let mut select = conn
        .prepare_cached(
            "SELECT accounts.name FROM account_certs JOIN accounts ON accounts.folded = account_certs.account
             WHERE account_certs.fingerprint = ?1",
        )
        .map_err(&op)?;
    select.query_row([fingerprint], |row| row.get(0)).optional().map_err(op)
}

/// Deletes the account, its offline queue, and its private conversations (their messages,
/// other accounts' queued copies of them, and their parties through the foreign key), in one
/// transaction. The offline table has no index on conversation (see the schema), so that
/// delete scans the queues; they are small, and dropping an account is rare.
pub(super) fn drop_account(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let op = backend("dropping an account");
    let folded = fold(name);
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&op)?;
    let existed = tx.execute("DELETE FROM accounts WHERE folded = ?1", [&folded]).map_err(&op)? > 0;
    tx.execute("DELETE FROM offline WHERE account = ?1", [&folded]).map_err(&op)?;
    tx.execute(
        "DELETE FROM messages WHERE conversation IN
            (SELECT conversation FROM conversation_parties WHERE party = ?1)",
        [&folded],
    )
    .map_err(&op)?;
    tx.execute(
        "DELETE FROM offline WHERE conversation IN
            (SELECT conversation FROM conversation_parties WHERE party = ?1)",
        [&folded],
    )
    .map_err(&op)?;
    tx.execute(
        "DELETE FROM conversations WHERE id IN
            (SELECT conversation FROM conversation_parties WHERE party = ?1)",
        [&folded],
    )
    .map_err(&op)?;
    tx.commit().map_err(op)?;
    Ok(existed)
}

pub(super) fn save_channel(conn: &Connection, channel: &ChannelRecord) -> Result<(), StoreError> {
    let op = backend("saving a room");
    let folded = fold(&channel.name);
    let created_ms = to_sql("room creation time", channel.created_ms)?;
    let topic_set_at = channel.topic.as_ref().map(|t| to_sql("topic time", t.set_at_ms)).transpose()?;
    // Every list entry with its kind (the mode letter), bans first; positions run across them.
    let entries: Vec<(&str, &BanRecord)> = [("b", &channel.bans), ("e", &channel.excepts), ("I", &channel.invex)]
        .into_iter()
        .flat_map(|(kind, list)| list.iter().map(move |b| (kind, b)))
        .collect();
    let ban_times = entries.iter().map(|(_, b)| to_sql("ban time", b.set_at_ms)).collect::<Result<Vec<_>, _>>()?;

    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&op)?;
    {
        let mut upsert = tx
            .prepare_cached(
                "INSERT INTO channels (folded, name, created_ms, topic_text, topic_setter, topic_set_at_ms,
                                       modes, channel_key, user_limit, founder)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
                 ON CONFLICT (folded) DO UPDATE SET
                    name = excluded.name, created_ms = excluded.created_ms,
                    topic_text = excluded.topic_text, topic_setter = excluded.topic_setter,
                    topic_set_at_ms = excluded.topic_set_at_ms, modes = excluded.modes,
                    channel_key = excluded.channel_key, user_limit = excluded.user_limit,
                    founder = excluded.founder",
            )
            .map_err(&op)?;
        upsert
            .execute(params![
                folded,
                channel.name,
                created_ms,
                channel.topic.as_ref().map(|t| &t.text),
                channel.topic.as_ref().map(|t| &t.setter),
                topic_set_at,
                channel.modes,
                channel.key,
                channel.limit,
                channel.founder,
            ])
            .map_err(&op)?;
        let mut clear = tx.prepare_cached("DELETE FROM channel_bans WHERE channel = ?1").map_err(&op)?;
        clear.execute([&folded]).map_err(&op)?;
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO channel_bans (channel, position, mask, setter, set_at_ms, kind)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )
            .map_err(&op)?;
        for (position, ((kind, ban), set_at)) in entries.iter().zip(ban_times).enumerate() {
            let position = i64::try_from(position).unwrap_or(i64::MAX);
            insert.execute(params![folded, position, ban.mask, ban.setter, set_at, kind]).map_err(&op)?;
        }
    }
    tx.commit().map_err(op)
}

pub(super) fn delete_channel(conn: &Connection, name: &str) -> Result<bool, StoreError> {
    let op = backend("deleting a room");
    // The bans go with it (ON DELETE CASCADE).
    let mut delete = conn.prepare_cached("DELETE FROM channels WHERE folded = ?1").map_err(&op)?;
    Ok(delete.execute([fold(name)]).map_err(op)? > 0)
}

pub(super) fn channels(conn: &Connection) -> Result<Vec<ChannelRecord>, StoreError> {
    let op = backend("loading rooms");
    // One read transaction, so rooms and bans are from the same moment.
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Deferred).map_err(&op)?;
    // (folded room, kind) → its entries, in order.
    let mut bans: HashMap<(String, String), Vec<BanRecord>> = HashMap::new();
    {
        let mut select = tx
            .prepare_cached(
                "SELECT channel, mask, setter, set_at_ms, kind FROM channel_bans ORDER BY channel, position",
            )
            .map_err(&op)?;
        let mut rows = select.query([]).map_err(&op)?;
        while let Some(row) = rows.next().map_err(&op)? {
            let ban = BanRecord {
                mask: row.get(1).map_err(&op)?,
                setter: row.get(2).map_err(&op)?,
                set_at_ms: from_sql(row.get(3).map_err(&op)?),
            };
            bans.entry((row.get(0).map_err(&op)?, row.get(4).map_err(&op)?)).or_default().push(ban);
        }
    }
    let mut out = Vec::new();
    {
        let mut select = tx
            .prepare_cached(
                "SELECT folded, name, created_ms, topic_text, topic_setter, topic_set_at_ms, modes, channel_key,
                        user_limit, founder
                 FROM channels ORDER BY folded",
            )
            .map_err(&op)?;
        let mut rows = select.query([]).map_err(&op)?;
        while let Some(row) = rows.next().map_err(&op)? {
            let folded: String = row.get(0).map_err(&op)?;
            let topic_text: Option<String> = row.get(3).map_err(&op)?;
            let topic = match topic_text {
                Some(text) => Some(TopicRecord {
                    text,
                    setter: row.get::<_, Option<String>>(4).map_err(&op)?.unwrap_or_default(),
                    set_at_ms: from_sql(row.get::<_, Option<i64>>(5).map_err(&op)?.unwrap_or(0)),
                }),
                None => None,
            };
            out.push(ChannelRecord {
                name: row.get(1).map_err(&op)?,
                created_ms: from_sql(row.get(2).map_err(&op)?),
                topic,
                modes: row.get(6).map_err(&op)?,
                key: row.get(7).map_err(&op)?,
                limit: row.get(8).map_err(&op)?,
                bans: bans.remove(&(folded.clone(), "b".to_owned())).unwrap_or_default(),
                excepts: bans.remove(&(folded.clone(), "e".to_owned())).unwrap_or_default(),
                invex: bans.remove(&(folded.clone(), "I".to_owned())).unwrap_or_default(),
                founder: row.get(9).map_err(&op)?,
            });
        }
    }
    tx.commit().map_err(op)?;
    Ok(out)
}
