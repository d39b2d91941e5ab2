//! Read markers (IRCv3 `draft/read-marker`): per account and target, the time of the last
//! message read. Bounded per account by the caller's `max`; the oldest goes first.

use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::backend;
use crate::record::{MarkerSet, ReadMarker};
use crate::sql::{from_sql, to_sql};
use crate::{fold, StoreError};

pub(super) fn read_markers(conn: &Connection, account: &str) -> Result<Vec<ReadMarker>, StoreError> {
    let op = backend("reading read markers");
    let mut stmt = conn
        .prepare_cached("SELECT target, time_ms FROM read_markers WHERE account = ?1 ORDER BY target")
        .map_err(&op)?;
    let rows = stmt
        .query_map([fold(account)], |row| Ok(ReadMarker { target: row.get(0)?, time_ms: from_sql(row.get(1)?) }))
        .map_err(&op)?;
    rows.collect::<Result<_, _>>().map_err(op)
}

pub(super) fn set_read_marker(
    conn: &Connection,
    account: &str,
    target: &str,
    time_ms: u64,
    max: usize,
) -> Result<Option<MarkerSet>, StoreError> {
    let op = backend("setting a read marker");
    let folded = fold(account);
    let time = to_sql("read marker time", time_ms)?;
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate).map_err(&op)?;
    let exists = tx
        .prepare_cached("SELECT 1 FROM accounts WHERE folded = ?1")
        .and_then(|mut s| s.query_row([&folded], |_| Ok(())).optional())
        .map_err(&op)?
        .is_some();
    if !exists {
        return Ok(None);
    }
    let stored: Option<i64> = tx
        .prepare_cached("SELECT time_ms FROM read_markers WHERE account = ?1 AND target = ?2")
        .and_then(|mut s| s.query_row(params![folded, target], |row| row.get(0)).optional())
        .map_err(&op)?;
    let outcome = match stored {
        Some(stored) if stored >= time => MarkerSet { time_ms: from_sql(stored), evicted: Vec::new() },
        Some(_) => {
            tx.prepare_cached("UPDATE read_markers SET time_ms = ?3 WHERE account = ?1 AND target = ?2")
                .and_then(|mut s| s.execute(params![folded, target, time]))
                .map_err(&op)?;
            MarkerSet { time_ms, evicted: Vec::new() }
        }
        None => {
            let count: i64 = tx
                .prepare_cached("SELECT COUNT(*) FROM read_markers WHERE account = ?1")
                .and_then(|mut s| s.query_row([&folded], |row| row.get(0)))
                .map_err(&op)?;
            if max == 0 {
                // Nothing may be kept; the answer still says what was asked.
                return Ok(Some(MarkerSet { time_ms, evicted: Vec::new() }));
            }
            let evicted = if usize::try_from(count).unwrap_or(usize::MAX) >= max {
                evict_oldest(&tx, &folded, count, max)?
            } else {
                Vec::new()
            };
            tx.prepare_cached("INSERT INTO read_markers (account, target, time_ms) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![folded, target, time]))
                .map_err(&op)?;
            MarkerSet { time_ms, evicted }
        }
    };
    tx.commit().map_err(op)?;
    Ok(Some(outcome))
}

/// Deletes the oldest markers of an account holding `count` so that one more fits under `max`
/// (one, unless `max` was lowered since they were set); their targets, sorted.
fn evict_oldest(tx: &Connection, account: &str, count: i64, max: usize) -> Result<Vec<String>, StoreError> {
    let op = backend("setting a read marker");
    let excess = count - i64::try_from(max).unwrap_or(i64::MAX) + 1;
    let mut gone: Vec<String> = tx
        .prepare_cached(
            "DELETE FROM read_markers WHERE account = ?1 AND target IN
                (SELECT target FROM read_markers WHERE account = ?1 ORDER BY time_ms, target LIMIT ?2)
             RETURNING target",
        )
        .and_then(|mut s| s.query_map(params![account, excess], |row| row.get(0))?.collect())
        .map_err(op)?;
    gone.sort_unstable();
    Ok(gone)
}
