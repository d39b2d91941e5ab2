//! The end-to-end encryption key directory: devices, one-time keys, fallback keys. Every
//! check-then-write is one transaction that first locks the row it hangs off (the account for
//! devices, the device for its keys), so that nodes sharing the database take turns; a claim
//! takes the oldest one-time key no other claim holds (`FOR UPDATE SKIP LOCKED`), so a key is
//! handed out at most once and concurrent claims do not wait for each other.

use postgres::GenericClient;

use super::{backend, Db};
use crate::keys::{device_queue, ClaimedKey, DeviceKeys, DevicePublished, KeyCounts, SignedKey};
use crate::{fold, StoreError};

pub(super) fn publish_device(
    db: &mut Db,
    account: &str,
    device: &DeviceKeys,
    max_devices: usize,
) -> Result<DevicePublished, StoreError> {
    let op = backend("publishing a device");
    let folded = fold(account);
    let mut tx = db.client.transaction().map_err(&op)?;
    if tx.query_opt("SELECT 1 FROM accounts WHERE folded = $1 FOR UPDATE", &[&folded]).map_err(&op)?.is_none() {
        return Ok(DevicePublished::NoAccount);
    }
    let stored = tx
        .query_opt(
            "SELECT curve25519, ed25519, signature FROM e2e_devices WHERE account = $1 AND device = $2",
            &[&folded, &device.device],
        )
        .map_err(&op)?
        .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1), r.get::<_, String>(2)));
    let outcome = match stored {
        Some((curve, ed, sig)) if curve == device.curve25519 && ed == device.ed25519 => {
            if sig != device.signature {
                tx.execute(
                    "UPDATE e2e_devices SET signature = $3 WHERE account = $1 AND device = $2",
                    &[&folded, &device.device, &device.signature],
                )
                .map_err(&op)?;
            }
            DevicePublished::Unchanged
        }
        Some(_) => {
            // New identity keys: the old pools were signed by the old identity and must go.
            tx.execute("DELETE FROM e2e_one_time_keys WHERE account = $1 AND device = $2", &[&folded, &device.device])
                .map_err(&op)?;
            // Messages waiting for it were encrypted to the old keys: nobody can read them now.
            tx.execute("DELETE FROM offline WHERE account = $1", &[&device_queue(&folded, &device.device)])
                .map_err(&op)?;
            tx.execute(
                "UPDATE e2e_devices SET curve25519 = $3, ed25519 = $4, signature = $5,
                        fallback_key = NULL, fallback_signature = NULL
                 WHERE account = $1 AND device = $2",
                &[&folded, &device.device, &device.curve25519, &device.ed25519, &device.signature],
            )
            .map_err(&op)?;
            DevicePublished::Replaced
        }
        None => {
            let count: i64 =
                tx.query_one("SELECT count(*) FROM e2e_devices WHERE account = $1", &[&folded]).map_err(&op)?.get(0);
            if usize::try_from(count).unwrap_or(usize::MAX) >= max_devices {
                return Ok(DevicePublished::TooManyDevices);
            }
            tx.execute(
                "INSERT INTO e2e_devices (account, device, curve25519, ed25519, signature) VALUES ($1, $2, $3, $4, $5)",
                &[&folded, &device.device, &device.curve25519, &device.ed25519, &device.signature],
            )
            .map_err(&op)?;
            DevicePublished::New
        }
    };
    tx.commit().map_err(op)?;
    Ok(outcome)
}

pub(super) fn devices(db: &mut Db, account: &str) -> Result<Vec<DeviceKeys>, StoreError> {
    let rows = db
        .client
        .query(
            "SELECT device, curve25519, ed25519, signature FROM e2e_devices WHERE account = $1 ORDER BY device",
            &[&fold(account)],
        )
        .map_err(backend("listing devices"))?;
    Ok(rows
        .iter()
        .map(|r| DeviceKeys { device: r.get(0), curve25519: r.get(1), ed25519: r.get(2), signature: r.get(3) })
        .collect())
}

pub(super) fn remove_device(db: &mut Db, account: &str, device: &str) -> Result<bool, StoreError> {
    // Its one-time keys go with it (ON DELETE CASCADE), its queue through the trigger.
    let n = db
        .client
        .execute("DELETE FROM e2e_devices WHERE account = $1 AND device = $2", &[&fold(account), &device])
        .map_err(backend("removing a device"))?;
    Ok(n > 0)
}

/// The counts, inside a transaction or on the connection; `lock` also locks the device's row.
fn counts(
    client: &mut impl GenericClient,
    folded: &str,
    device: &str,
    lock: bool,
) -> Result<Option<KeyCounts>, postgres::Error> {
    let sql = if lock {
        "SELECT fallback_key IS NOT NULL FROM e2e_devices WHERE account = $1 AND device = $2 FOR UPDATE"
    } else {
        "SELECT fallback_key IS NOT NULL FROM e2e_devices WHERE account = $1 AND device = $2"
    };
    let Some(row) = client.query_opt(sql, &[&folded, &device])? else { return Ok(None) };
    let n: i64 = client
        .query_one("SELECT count(*) FROM e2e_one_time_keys WHERE account = $1 AND device = $2", &[&folded, &device])?
        .get(0);
    Ok(Some(KeyCounts { one_time_keys: usize::try_from(n).unwrap_or(0), fallback: row.get(0) }))
}

pub(super) fn add_one_time_keys(
    db: &mut Db,
    account: &str,
    device: &str,
    keys: &[SignedKey],
    max_pool: usize,
) -> Result<Option<KeyCounts>, StoreError> {
    let op = backend("storing one-time keys");
    let folded = fold(account);
    let mut tx = db.client.transaction().map_err(&op)?;
    let Some(mut now) = counts(&mut tx, &folded, device, true).map_err(&op)? else { return Ok(None) };
    let insert = tx
        .prepare(
            "INSERT INTO e2e_one_time_keys (account, device, key, signature) VALUES ($1, $2, $3, $4)
             ON CONFLICT DO NOTHING",
        )
        .map_err(&op)?;
    for key in keys {
        if now.one_time_keys >= max_pool {
            break;
        }
        let n = tx.execute(&insert, &[&folded, &device, &key.key, &key.signature]).map_err(&op)?;
        now.one_time_keys += usize::try_from(n).unwrap_or(0);
    }
    tx.commit().map_err(op)?;
    Ok(Some(now))
}

pub(super) fn set_fallback_key(
    db: &mut Db,
    account: &str,
    device: &str,
    key: &SignedKey,
) -> Result<Option<KeyCounts>, StoreError> {
    let op = backend("storing a fallback key");
    let folded = fold(account);
    let mut tx = db.client.transaction().map_err(&op)?;
    tx.execute(
        "UPDATE e2e_devices SET fallback_key = $3, fallback_signature = $4 WHERE account = $1 AND device = $2",
        &[&folded, &device, &key.key, &key.signature],
    )
    .map_err(&op)?;
    let now = counts(&mut tx, &folded, device, false).map_err(&op)?;
    tx.commit().map_err(op)?;
    Ok(now)
}

pub(super) fn key_counts(db: &mut Db, account: &str, device: &str) -> Result<Option<KeyCounts>, StoreError> {
    counts(&mut db.client, &fold(account), device, false).map_err(backend("counting keys"))
}

pub(super) fn claim_key(db: &mut Db, account: &str, device: &str) -> Result<Option<ClaimedKey>, StoreError> {
    let op = backend("claiming a key");
    let folded = fold(account);
    let mut tx = db.client.transaction().map_err(&op)?;
    let one_time = tx
        .query_opt(
            "DELETE FROM e2e_one_time_keys WHERE id =
                (SELECT id FROM e2e_one_time_keys WHERE account = $1 AND device = $2
                 ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
             RETURNING key, signature",
            &[&folded, &device],
        )
        .map_err(&op)?
        .map(|r| SignedKey { key: r.get(0), signature: r.get(1) });
    let claimed = match one_time {
        Some(key) => {
            let remaining = counts(&mut tx, &folded, device, false).map_err(&op)?.map_or(0, |c| c.one_time_keys);
            Some(ClaimedKey { key, fallback: false, remaining })
        }
        None => tx
            .query_opt(
                "SELECT fallback_key, fallback_signature FROM e2e_devices
                 WHERE account = $1 AND device = $2 AND fallback_key IS NOT NULL",
                &[&folded, &device],
            )
            .map_err(&op)?
            .map(|r| ClaimedKey {
                key: SignedKey { key: r.get(0), signature: r.get(1) },
                fallback: true,
                remaining: 0,
            }),
    };
    tx.commit().map_err(op)?;
    Ok(claimed)
}
