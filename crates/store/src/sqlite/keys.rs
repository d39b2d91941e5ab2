//! The end-to-end encryption key directory (schema version 3): devices, one-time keys, fallback
//! keys. Every write is one immediate transaction, so two handles on the same file (two server
//! processes sharing it, a backup tool) serialize on SQLite's write lock and a one-time key is
//! handed out at most once.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::backend;
use crate::keys::{device_queue, ClaimedKey, DeviceKeys, DevicePublished, KeyCounts, SignedKey};
use crate::{fold, StoreError};

fn immediate<'a>(conn: &'a Connection, op: &'static str) -> Result<rusqlite::Transaction<'a>, StoreError> {
    rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(backend(op))
}

pub(super) fn publish_device(
    conn: &Connection,
    account: &str,
    device: &DeviceKeys,
    max_devices: usize,
) -> Result<DevicePublished, StoreError> {
    let op = backend("publishing a device");
    let folded = fold(account);
    let tx = immediate(conn, "publishing a device")?;
    let exists: bool = tx
        .query_row("SELECT EXISTS (SELECT 1 FROM accounts WHERE folded = ?1)", [&folded], |row| row.get(0))
        .map_err(&op)?;
    if !exists {
        return Ok(DevicePublished::NoAccount);
    }
    let stored: Option<(String, String, String)> = tx
        .query_row(
            "SELECT curve25519, ed25519, signature FROM e2e_devices WHERE account = ?1 AND device = ?2",
            params![folded, device.device],
            |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
        )
        .optional()
        .map_err(&op)?;
    let outcome = match stored {
        Some((curve, ed, sig)) if curve == device.curve25519 && ed == device.ed25519 => {
            if sig != device.signature {
                tx.execute(
                    "UPDATE e2e_devices SET signature = ?3 WHERE account = ?1 AND device = ?2",
                    params![folded, device.device, device.signature],
                )
                .map_err(&op)?;
            }
            DevicePublished::Unchanged
        }
        Some(_) => {
            // New identity keys: the old pools were signed by the old identity and must go.
            tx.execute(
                "DELETE FROM e2e_one_time_keys WHERE account = ?1 AND device = ?2",
                params![folded, device.device],
            )
            .map_err(&op)?;
            // Messages waiting for it were encrypted to the old keys: nobody can read them now.
            tx.execute("DELETE FROM offline WHERE account = ?1", [device_queue(&folded, &device.device)])
                .map_err(&op)?;
            tx.execute(
                "UPDATE e2e_devices SET curve25519 = ?3, ed25519 = ?4, signature = ?5,
                        fallback_key = NULL, fallback_signature = NULL
                 WHERE account = ?1 AND device = ?2",
                params![folded, device.device, device.curve25519, device.ed25519, device.signature],
            )
            .map_err(&op)?;
            DevicePublished::Replaced
        }
        None => {
            let count: i64 = tx
                .query_row("SELECT count(*) FROM e2e_devices WHERE account = ?1", [&folded], |row| row.get(0))
                .map_err(&op)?;
            if usize::try_from(count).unwrap_or(usize::MAX) >= max_devices {
                return Ok(DevicePublished::TooManyDevices);
            }
            tx.execute(
                "INSERT INTO e2e_devices (account, device, curve25519, ed25519, signature) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![folded, device.device, device.curve25519, device.ed25519, device.signature],
            )
            .map_err(&op)?;
            DevicePublished::New
        }
    };
    tx.commit().map_err(op)?;
    Ok(outcome)
}

pub(super) fn devices(conn: &Connection, account: &str) -> Result<Vec<DeviceKeys>, StoreError> {
    let op = backend("listing devices");
    let mut select = conn
        .prepare_cached(
            "SELECT device, curve25519, ed25519, signature FROM e2e_devices WHERE account = ?1 ORDER BY device",
        )
        .map_err(&op)?;
    let rows = select
        .query_map([fold(account)], |row| {
            Ok(DeviceKeys {
                device: row.get(0)?,
                curve25519: row.get(1)?,
                ed25519: row.get(2)?,
                signature: row.get(3)?,
            })
        })
        .map_err(&op)?;
    rows.collect::<Result<_, _>>().map_err(op)
}

pub(super) fn remove_device(conn: &Connection, account: &str, device: &str) -> Result<bool, StoreError> {
    let op = backend("removing a device");
    // Its one-time keys go with it (ON DELETE CASCADE).
    let removed = conn
        .execute("DELETE FROM e2e_devices WHERE account = ?1 AND device = ?2", params![fold(account), device])
        .map_err(op)?;
    Ok(removed > 0)
}

/// The counts inside a transaction (or on the connection).
fn counts(conn: &Connection, folded: &str, device: &str) -> rusqlite::Result<Option<KeyCounts>> {
    let fallback: Option<bool> = conn
        .query_row(
            "SELECT fallback_key IS NOT NULL FROM e2e_devices WHERE account = ?1 AND device = ?2",
            params![folded, device],
            |row| row.get(0),
        )
        .optional()?;
    let Some(fallback) = fallback else { return Ok(None) };
    let n: i64 = conn.query_row(
        "SELECT count(*) FROM e2e_one_time_keys WHERE account = ?1 AND device = ?2",
        params![folded, device],
        |row| row.get(0),
    )?;
    Ok(Some(KeyCounts { one_time_keys: usize::try_from(n).unwrap_or(0), fallback }))
}

pub(super) fn add_one_time_keys(
    conn: &Connection,
    account: &str,
    device: &str,
    keys: &[SignedKey],
    max_pool: usize,
) -> Result<Option<KeyCounts>, StoreError> {
    let op = backend("storing one-time keys");
    let folded = fold(account);
    let tx = immediate(conn, "storing one-time keys")?;
    let Some(mut now) = counts(&tx, &folded, device).map_err(&op)? else { return Ok(None) };
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO e2e_one_time_keys (account, device, key, signature) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(&op)?;
        for key in keys {
            if now.one_time_keys >= max_pool {
                break;
            }
            now.one_time_keys += insert.execute(params![folded, device, key.key, key.signature]).map_err(&op)?;
        }
    }
    tx.commit().map_err(op)?;
    Ok(Some(now))
}

pub(super) fn set_fallback_key(
    conn: &Connection,
    account: &str,
    device: &str,
    key: &SignedKey,
) -> Result<Option<KeyCounts>, StoreError> {
    let op = backend("storing a fallback key");
    let folded = fold(account);
    let tx = immediate(conn, "storing a fallback key")?;
    tx.execute(
        "UPDATE e2e_devices SET fallback_key = ?3, fallback_signature = ?4 WHERE account = ?1 AND device = ?2",
        params![folded, device, key.key, key.signature],
    )
    .map_err(&op)?;
    let now = counts(&tx, &folded, device).map_err(&op)?;
    tx.commit().map_err(op)?;
    Ok(now)
}

pub(super) fn key_counts(conn: &Connection, account: &str, device: &str) -> Result<Option<KeyCounts>, StoreError> {
    counts(conn, &fold(account), device).map_err(backend("counting keys"))
}

pub(super) fn claim_key(conn: &Connection, account: &str, device: &str) -> Result<Option<ClaimedKey>, StoreError> {
    let op = backend("claiming a key");
    let folded = fold(account);
    let tx = immediate(conn, "claiming a key")?;
    let one_time: Option<SignedKey> = tx
        .query_row(
            "DELETE FROM e2e_one_time_keys WHERE id =
                (SELECT id FROM e2e_one_time_keys WHERE account = ?1 AND device = ?2 ORDER BY id LIMIT 1)
             RETURNING key, signature",
            params![folded, device],
            |row| Ok(SignedKey { key: row.get(0)?, signature: row.get(1)? }),
        )
        .optional()
        .map_err(&op)?;
    let claimed = match one_time {
        Some(key) => {
            let remaining = counts(&tx, &folded, device).map_err(&op)?.map_or(0, |c| c.one_time_keys);
            Some(ClaimedKey { key, fallback: false, remaining })
        }
        None => tx
            .query_row(
                "SELECT fallback_key, fallback_signature FROM e2e_devices
                 WHERE account = ?1 AND device = ?2 AND fallback_key IS NOT NULL",
                params![folded, device],
                |row| Ok(SignedKey { key: row.get(0)?, signature: row.get(1)? }),
            )
            .optional()
            .map_err(&op)?
            .map(|key| ClaimedKey { key, fallback: true, remaining: 0 }),
    };
    tx.commit().map_err(op)?;
    Ok(claimed)
}
