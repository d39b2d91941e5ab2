//! What both SQL backends share: the integers their columns hold, and a CHATHISTORY query
//! resolved into a range of `(time_ms, msgid)` positions, which each backend turns into its own
//! SQL dialect.

use crate::StoreError;

/// A time or count as a SQL `bigint` (a signed 64-bit integer).
pub(crate) fn to_sql(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::OutOfRange { what, value })
}

/// A time bound as compared: past the largest storable time means "after everything".
pub(crate) fn bound_to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// A limit as SQL takes it.
pub(crate) fn limit_to_sql(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A stored time or count read back (never negative: only `to_sql` values are written).
pub(crate) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// A resolved bound: a place in `(time_ms, msgid)` order. A time bound has no msgid and sits
/// at the edge of its millisecond: before every message of it as an upper bound, after every
/// one as a lower bound (see [`Range`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Position {
    pub time: i64,
    pub msgid: Option<String>,
}

/// One end of a range and whether the position itself is in it.
#[derive(Clone, Debug)]
pub(crate) struct Edge {
    pub at: Position,
    pub inclusive: bool,
}

/// Which end of the range to read from.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum From {
    Oldest,
    Newest,
}

/// `limit` messages of one conversation between `lower` and `upper`, read from one end.
#[derive(Clone, Debug)]
pub(crate) struct Range {
    pub lower: Option<Edge>,
    pub upper: Option<Edge>,
    pub from: From,
    pub limit: usize,
    /// Room events too (draft/event-playback), not only messages.
    pub events: bool,
}

/// The condition that keeps a row to messages (no room events).
pub(crate) const ONLY_MESSAGES: &str = " AND command IN ('PRIVMSG', 'NOTICE')";
