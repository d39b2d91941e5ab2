//! Login throttling: failures by account and by address slow further attempts, then refuse
//! them for a while.
//!
//! After [`FREE_FAILURES`] failures, each further attempt must wait twice as long as the last
//! (1 s, 2 s, 4 s, …); from [`LOCKOUT_FAILURES`] on, attempts are refused for [`LOCKOUT`]. A
//! success clears the account's record. Failures are forgotten after [`FORGET_AFTER`] of quiet.

use std::collections::HashMap;
use std::time::{Duration, Instant};

pub const FREE_FAILURES: u32 = 3;
pub const LOCKOUT_FAILURES: u32 = 10;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
pub const FORGET_AFTER: Duration = Duration::from_secs(60 * 60);
/// Keys tracked at once; beyond it the stalest entries are forgotten first.
pub const MAX_ENTRIES: usize = 100_000;

#[derive(Copy, Clone, Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    /// No attempt is accepted before this instant.
    until: Instant,
}

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    entries: HashMap<String, Entry>,
}

impl Throttle {
    /// `Err(seconds to wait)` if an attempt for `key` must be refused now.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        match self.entries.get(key) {
            Some(e) if e.until > now => Err(e.until.duration_since(now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    pub fn fail(&mut self, key: &str, now: Instant) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
            self.forget_stale(now);
            if self.entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_failure).map(|(k, _)| k.clone()) {
                    self.entries.remove(&oldest);
                }
            }
        }
        let e = self.entries.entry(key.to_owned()).or_insert(Entry { failures: 0, last_failure: now, until: now });
        e.failures += 1;
        e.last_failure = now;
        e.until = if e.failures >= LOCKOUT_FAILURES {
            now + LOCKOUT
        } else if e.failures >= FREE_FAILURES {
            now + Duration::from_secs(1 << (e.failures - FREE_FAILURES))
        } else {
            now
        };
    }

    pub fn succeed(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Drops records that have been quiet long enough (called from the core's tick).
    pub fn forget_stale(&mut self, now: Instant) {
        self.entries.retain(|_, e| e.until > now || now.duration_since(e.last_failure) < FORGET_AFTER);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_then_locks_out_then_forgets() {
        let mut t = Throttle::default();
        let start = Instant::now();
        for _ in 0..FREE_FAILURES - 1 {
            t.fail("alice", start);
            assert!(t.check("alice", start).is_ok());
        }
        t.fail("alice", start);
        assert_eq!(t.check("alice", start), Err(1));
        assert!(t.check("alice", start + Duration::from_secs(1)).is_ok());
        let mut now = start;
        for _ in FREE_FAILURES..LOCKOUT_FAILURES {
            t.fail("alice", now);
            now += Duration::from_secs(1);
        }
        let wait = t.check("alice", now).expect_err("locked out");
        assert!(wait > 14 * 60, "{wait}");
        assert!(t.check("bob", now).is_ok(), "others are not affected");
        t.forget_stale(now + LOCKOUT + FORGET_AFTER);
        assert!(t.check("alice", now + LOCKOUT + FORGET_AFTER).is_ok());
        t.fail("carol", now);
        t.succeed("carol");
        assert!(t.entries.is_empty() || !t.entries.contains_key("carol"));
    }
}
