//! Accounts and rooms: small tables, written rarely, read whole at start.

use std::collections::HashMap;

use postgres::IsolationLevel;

use super::{backend, is_unique_violation, Db};
use crate::record::{AccountRecord, BanRecord, ChannelRecord, NewAccount, TopicRecord};
use crate::sql::{from_sql, to_sql};
use crate::{fold, CertAdded, StoreError};

pub(super) fn create_account(db: &mut Db, account: &NewAccount) -> Result<(), StoreError> {
    let op = backend("creating an account");
    let created_ms = to_sql("account creation time", account.created_ms)?;
    let result = db.client.execute(
        "INSERT INTO accounts (folded, name, password_hash, email, created_ms, scram) VALUES ($1, $2, $3, $4, $5, $6)",
        &[&fold(&account.name), &account.name, &account.password_hash, &account.email, &created_ms, &account.scram],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::AccountExists(account.name.clone())),
        Err(e) => Err(op(e)),
    }
}

pub(super) fn account(db: &mut Db, name: &str) -> Result<Option<AccountRecord>, StoreError> {
    let op = backend("looking up an account");
    let row = db
        .client
        .query_opt(
            "SELECT name, password_hash, email, created_ms, scram FROM accounts WHERE folded = $1",
            &[&fold(name)],
        )
        .map_err(op)?;
    Ok(row.map(|row| AccountRecord {
        name: row.get(0),
        password_hash: row.get(1),
        email: row.get(2),
        created_ms: from_sql(row.get(3)),
        scram: row.get(4),
    }))
}

pub(super) fn account_names(db: &mut Db) -> Result<Vec<String>, StoreError> {
    let rows =
        db.client.query("SELECT name FROM accounts ORDER BY folded", &[]).map_err(backend("listing accounts"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(super) fn set_password(
    db: &mut Db,
    name: &str,
    password_hash: &str,
    scram: Option<&str>,
) -> Result<bool, StoreError> {
    let n = db
        .client
        .execute(
            "UPDATE accounts SET password_hash = $2, scram = $3 WHERE folded = $1",
            &[&fold(name), &password_hash, &scram],
        )
        .map_err(backend("changing a password"))?;
    Ok(n > 0)
}

pub(super) fn set_scram(db: &mut Db, name: &str, password_hash: &str, scram: &str) -> Result<bool, StoreError> {
    let n = db
        .client
        .execute(
            "UPDATE accounts SET scram = $3 WHERE folded = $1 AND password_hash = $2",
            &[&fold(name), &password_hash, &scram],
        )
        .map_err(backend("storing SCRAM credentials"))?;
    Ok(n > 0)
}

/// Checks and inserts in one transaction that locks the account's row, so that two nodes
/// cannot both pass the count; a fingerprint another account registered meanwhile is `Taken`.
pub(super) fn add_cert(db: &mut Db, account: &str, fingerprint: &str, max: usize) -> Result<CertAdded, StoreError> {
    let op = backend("registering a certificate");
    let folded = fold(account);
    let mut tx = db.client.transaction().map_err(&op)?;
    if tx.query_opt("SELECT 1 FROM accounts WHERE folded = $1 FOR UPDATE", &[&folded]).map_err(&op)?.is_none() {
        return Ok(CertAdded::NoAccount);
    }
    let owner = |tx: &mut postgres::Transaction<'_>| -> Result<Option<String>, StoreError> {
        let row =
            tx.query_opt("SELECT account FROM account_certs WHERE fingerprint = $1", &[&fingerprint]).map_err(&op)?;
        Ok(row.map(|r| r.get(0)))
    };
    let outcome = match owner(&mut tx)? {
        Some(owner) if owner == folded => CertAdded::AlreadyThere,
        Some(_) => CertAdded::Taken,
        None => {
            let count: i64 =
                tx.query_one("SELECT count(*) FROM account_certs WHERE account = $1", &[&folded]).map_err(&op)?.get(0);
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                CertAdded::Full
            } else {
                let inserted = tx
                    .execute(
                        "INSERT INTO account_certs (fingerprint, account) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                        &[&fingerprint, &folded],
                    )
                    .map_err(&op)?;
                if inserted > 0 {
                    CertAdded::Added
                } else {
                    // Registered by another node between the look-up and the insert.
                    match owner(&mut tx)? {
                        Some(owner) if owner == folded => CertAdded::AlreadyThere,
                        _ => CertAdded::Taken,
                    }
                }
            }
        }
    };
    tx.commit().map_err(op)?;
    Ok(outcome)
}

pub(super) fn remove_cert(db: &mut Db, account: &str, fingerprint: &str) -> Result<bool, StoreError> {
    let n = db
        .client
        .execute("DELETE FROM account_certs WHERE account = $1 AND fingerprint = $2", &[&fold(account), &fingerprint])
        .map_err(backend("removing a certificate"))?;
    Ok(n > 0)
}

pub(super) fn certs(db: &mut Db, account: &str) -> Result<Vec<String>, StoreError> {
    let rows = db
        .client
        .query("SELECT fingerprint FROM account_certs WHERE account = $1 ORDER BY fingerprint", &[&fold(account)])
        .map_err(backend("listing certificates"))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(super) fn cert_owner(db: &mut Db, fingerprint: &str) -> Result<Option<String>, StoreError> {
    let row = db
        .client
        .query_opt(
            "SELECT accounts.name FROM account_certs JOIN accounts ON accounts.folded = account_certs.account
             WHERE account_certs.fingerprint = $1",
            &[&fingerprint],
        )
        .map_err(backend("looking up a certificate"))?;
    Ok(row.map(|r| r.get(0)))
}

/// Deletes the account (its certificates and devices go through the foreign keys, a device's
/// queue through the trigger), its offline queue, and its private conversations (their
/// messages, other accounts' queued copies, their parties), in one transaction.
pub(super) fn drop_account(db: &mut Db, name: &str) -> Result<bool, StoreError> {
    let op = backend("dropping an account");
    let folded = fold(name);
    let mut tx = db.client.transaction().map_err(&op)?;
    // First the conversations, locked: an append on another node holding one (see
    // `history::append`) finishes first and its messages are deleted below with the rest; one
    // that comes later finds the conversation gone and makes a new one.
    tx.execute(
        "SELECT id FROM conversations WHERE id IN
            (SELECT conversation FROM conversation_parties WHERE party = $1) FOR UPDATE",
        &[&folded],
    )
    .map_err(&op)?;
    let existed = tx.execute("DELETE FROM accounts WHERE folded = $1", &[&folded]).map_err(&op)? > 0;
    tx.execute("DELETE FROM offline WHERE account = $1", &[&folded]).map_err(&op)?;
    tx.execute(
        "DELETE FROM messages WHERE conversation IN
            (SELECT conversation FROM conversation_parties WHERE party = $1)",
        &[&folded],
    )
    .map_err(&op)?;
    tx.execute(
        "DELETE FROM offline WHERE conversation IN
            (SELECT conversation FROM conversation_parties WHERE party = $1)",
        &[&folded],
    )
    .map_err(&op)?;
    tx.execute(
        "DELETE FROM conversations WHERE id IN
            (SELECT conversation FROM conversation_parties WHERE party = $1)",
        &[&folded],
    )
    .map_err(&op)?;
    tx.commit().map_err(op)?;
    Ok(existed)
}

pub(super) fn save_channel(db: &mut Db, channel: &ChannelRecord) -> Result<(), StoreError> {
    let op = backend("saving a room");
    let folded = fold(&channel.name);
    let created_ms = to_sql("room creation time", channel.created_ms)?;
    let topic_set_at = channel.topic.as_ref().map(|t| to_sql("topic time", t.set_at_ms)).transpose()?;
    let entries: Vec<(&str, &BanRecord)> = [("b", &channel.bans), ("e", &channel.excepts), ("I", &channel.invex)]
        .into_iter()
        .flat_map(|(kind, list)| list.iter().map(move |b| (kind, b)))
        .collect();
    let ban_times = entries.iter().map(|(_, b)| to_sql("ban time", b.set_at_ms)).collect::<Result<Vec<_>, _>>()?;
    let limit = channel.limit.map(i64::from);

    let mut tx = db.client.transaction().map_err(&op)?;
    // The upsert locks the room's row first, so two nodes saving the same room take turns.
    tx.execute(
        "INSERT INTO channels (folded, name, created_ms, topic_text, topic_setter, topic_set_at_ms,
                               modes, channel_key, user_limit, founder)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (folded) DO UPDATE SET
            name = excluded.name, created_ms = excluded.created_ms,
            topic_text = excluded.topic_text, topic_setter = excluded.topic_setter,
            topic_set_at_ms = excluded.topic_set_at_ms, modes = excluded.modes,
            channel_key = excluded.channel_key, user_limit = excluded.user_limit,
            founder = excluded.founder",
        &[
            &folded,
            &channel.name,
            &created_ms,
            &channel.topic.as_ref().map(|t| &t.text),
            &channel.topic.as_ref().map(|t| &t.setter),
            &topic_set_at,
            &channel.modes,
            &channel.key,
            &limit,
            &channel.founder,
        ],
    )
    .map_err(&op)?;
    tx.execute("DELETE FROM channel_bans WHERE channel = $1", &[&folded]).map_err(&op)?;
    if !entries.is_empty() {
        let positions: Vec<i64> = (0..entries.len()).map(|i| i64::try_from(i).unwrap_or(i64::MAX)).collect();
        let masks: Vec<&str> = entries.iter().map(|(_, b)| b.mask.as_str()).collect();
        let setters: Vec<&str> = entries.iter().map(|(_, b)| b.setter.as_str()).collect();
        let kinds: Vec<&str> = entries.iter().map(|(k, _)| *k).collect();
        tx.execute(
            "INSERT INTO channel_bans (channel, position, mask, setter, set_at_ms, kind)
             SELECT $1, * FROM unnest($2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::text[])",
            &[&folded, &positions, &masks, &setters, &ban_times, &kinds],
        )
        .map_err(&op)?;
    }
    tx.commit().map_err(op)
}

pub(super) fn delete_channel(db: &mut Db, name: &str) -> Result<bool, StoreError> {
    let n = db
        .client
        .execute("DELETE FROM channels WHERE folded = $1", &[&fold(name)])
        .map_err(backend("deleting a room"))?;
    Ok(n > 0)
}

pub(super) fn channels(db: &mut Db) -> Result<Vec<ChannelRecord>, StoreError> {
    let op = backend("loading rooms");
    // One snapshot, so that rooms and bans are from the same moment.
    let mut tx = db
        .client
        .build_transaction()
        .isolation_level(IsolationLevel::RepeatableRead)
        .read_only(true)
        .start()
        .map_err(&op)?;
    let mut bans: HashMap<(String, String), Vec<BanRecord>> = HashMap::new();
    for row in tx
        .query("SELECT channel, mask, setter, set_at_ms, kind FROM channel_bans ORDER BY channel, position", &[])
        .map_err(&op)?
    {
        let ban = BanRecord { mask: row.get(1), setter: row.get(2), set_at_ms: from_sql(row.get(3)) };
        bans.entry((row.get(0), row.get(4))).or_default().push(ban);
    }
    let rows = tx
        .query(
            "SELECT folded, name, created_ms, topic_text, topic_setter, topic_set_at_ms, modes, channel_key,
                    user_limit, founder
             FROM channels ORDER BY folded",
            &[],
        )
        .map_err(&op)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let folded: String = row.get(0);
        let topic = row.get::<_, Option<String>>(3).map(|text| TopicRecord {
            text,
            setter: row.get::<_, Option<String>>(4).unwrap_or_default(),
            set_at_ms: from_sql(row.get::<_, Option<i64>>(5).unwrap_or(0)),
        });
        let mut take = |kind: &str| bans.remove(&(folded.clone(), kind.to_owned())).unwrap_or_default();
        out.push(ChannelRecord {
            name: row.get(1),
            created_ms: from_sql(row.get(2)),
            topic,
            modes: row.get(6),
            key: row.get(7),
            limit: row.get::<_, Option<i64>>(8).and_then(|l| u32::try_from(l).ok()),
            bans: take("b"),
            excepts: take("e"),
            invex: take("I"),
            founder: row.get(9),
        });
    }
    tx.commit().map_err(op)?;
    Ok(out)
}
