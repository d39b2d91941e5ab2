//! Read markers (IRCv3 `draft/read-marker`): per account and target, the time of the last
//! message read. Bounded per account by the caller's `max`; the oldest goes first. A change
//! locks the account's row first, so that nodes sharing the database take turns.

use super::{backend, Db};
use crate::record::{MarkerSet, ReadMarker};
use crate::sql::{from_sql, to_sql};
use crate::{fold, StoreError};

pub(super) fn read_markers(db: &mut Db, account: &str) -> Result<Vec<ReadMarker>, StoreError> {
    let rows = db
        .client
        .query("SELECT target, time_ms FROM read_markers WHERE account = $1 ORDER BY target", &[&fold(account)])
        .map_err(backend("reading read markers"))?;
    Ok(rows.iter().map(|r| ReadMarker { target: r.get(0), time_ms: from_sql(r.get(1)) }).collect())
}

pub(super) fn set_read_marker(
    db: &mut Db,
    account: &str,
    target: &str,
    time_ms: u64,
    max: usize,
) -> Result<Option<MarkerSet>, StoreError> {
    let op = backend("setting a read marker");
    let folded = fold(account);
    let time = to_sql("read marker time", time_ms)?;
    let mut tx = db.client.transaction().map_err(&op)?;
    if tx.query_opt("SELECT 1 FROM accounts WHERE folded = $1 FOR UPDATE", &[&folded]).map_err(&op)?.is_none() {
        return Ok(None);
    }
    let stored: Option<i64> = tx
        .query_opt("SELECT time_ms FROM read_markers WHERE account = $1 AND target = $2", &[&folded, &target])
        .map_err(&op)?
        .map(|r| r.get(0));
    let outcome = match stored {
        Some(stored) if stored >= time => MarkerSet { time_ms: from_sql(stored), evicted: Vec::new() },
        Some(_) => {
            tx.execute(
                "UPDATE read_markers SET time_ms = $3 WHERE account = $1 AND target = $2",
                &[&folded, &target, &time],
            )
            .map_err(&op)?;
            MarkerSet { time_ms, evicted: Vec::new() }
        }
        None => {
            if max == 0 {
                // Nothing may be kept; the answer still says what was asked.
                return Ok(Some(MarkerSet { time_ms, evicted: Vec::new() }));
            }
            let count: i64 =
                tx.query_one("SELECT count(*) FROM read_markers WHERE account = $1", &[&folded]).map_err(&op)?.get(0);
            let mut evicted = Vec::new();
            if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                let excess = count - i64::try_from(max).unwrap_or(i64::MAX) + 1;
                let rows = tx
                    .query(
                        "DELETE FROM read_markers WHERE account = $1 AND target IN
                            (SELECT target FROM read_markers WHERE account = $1 ORDER BY time_ms, target LIMIT $2)
                         RETURNING target",
                        &[&folded, &excess],
                    )
                    .map_err(&op)?;
                evicted = rows.iter().map(|r| r.get(0)).collect();
                evicted.sort_unstable();
            }
            tx.execute(
                "INSERT INTO read_markers (account, target, time_ms) VALUES ($1, $2, $3)",
                &[&folded, &target, &time],
            )
            .map_err(&op)?;
            MarkerSet { time_ms, evicted }
        }
    };
    tx.commit().map_err(op)?;
    Ok(Some(outcome))
}
