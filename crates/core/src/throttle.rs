//! Login throttling: failures by account and by address slow further attempts, then refuse
//! them for a while; and account registration, rate-limited by address.
//!
//! After `limits.login_free_failures` failures, each further attempt must wait twice as long
//! as the last (1 s, 2 s, 4 s, …); from `limits.login_lockout_failures` on, attempts are
//! refused for `limits.login_lockout`. A success clears the account's record. Failures are
//! forgotten after `limits.login_forget_after` of quiet. An IPv6 address counts as its /64
//! (see [`subnet_of`]): one subscriber usually holds a whole /64.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::{Limits, Rate};
use crate::flood::Bucket;

/// Keys tracked at once; beyond it the stalest entries are forgotten first.
pub const MAX_ENTRIES: usize = 100_000;

/// The address that limits apply to: an IPv4 address itself, an IPv6 address's /64.
pub fn subnet_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
        v4 => v4,
    }
}

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
    /// Registration budget per [`subnet_of`] address.
    registrations: HashMap<IpAddr, Bucket>,
}

impl Throttle {
    /// `Err(seconds to wait)` if an attempt for `key` must be refused now.
    pub fn check(&self, key: &str, now: Instant) -> Result<(), u64> {
        match self.entries.get(key) {
            Some(e) if e.until > now => Err(e.until.duration_since(now).as_secs().max(1)),
            _ => Ok(()),
        }
    }

    pub fn fail(&mut self, key: &str, now: Instant, limits: &Limits) {
        if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
            self.forget_stale(now, limits);
            if self.entries.len() >= MAX_ENTRIES {
                if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last_failure).map(|(k, _)| k.clone()) {
                    self.entries.remove(&oldest);
                }
            }
        }
        let e = self.entries.entry(key.to_owned()).or_insert(Entry { failures: 0, last_failure: now, until: now });
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        e.until = if e.failures >= limits.login_lockout_failures {
            now + limits.login_lockout
        } else if e.failures >= limits.login_free_failures {
            let doublings = (e.failures - limits.login_free_failures).min(20);
            now + Duration::from_secs(1 << doublings).min(limits.login_lockout)
        } else {
            now
        };
    }

    pub fn succeed(&mut self, key: &str) {
        self.entries.remove(key);
    }

    /// Takes one registration from `ip`'s budget, or says how many seconds until there is one.
    pub fn register(&mut self, ip: IpAddr, now: Instant, rate: Rate) -> Result<(), u64> {
        if self.registrations.len() >= MAX_ENTRIES && !self.registrations.contains_key(&subnet_of(ip)) {
            self.registrations.retain(|_, b| b.check(now, rate).is_err());
        }
        let bucket = self.registrations.entry(subnet_of(ip)).or_insert_with(|| Bucket::new(now));
        bucket.take(now, rate, 1).map_err(|wait| wait.as_secs().max(1))
    }

    /// Drops records that have been quiet long enough (called from the core's tick).
    pub fn forget_stale(&mut self, now: Instant, limits: &Limits) {
        let forget = limits.login_forget_after;
        self.entries.retain(|_, e| e.until > now || now.duration_since(e.last_failure) < forget);
        self.registrations.retain(|_, b| !b.is_full(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slows_then_locks_out_then_forgets() {
        let limits = Limits::default();
        let mut t = Throttle::default();
        let start = Instant::now();
        for _ in 0..limits.login_free_failures - 1 {
            t.fail("alice", start, &limits);
            assert!(t.check("alice", start).is_ok());
        }
        t.fail("alice", start, &limits);
        assert_eq!(t.check("alice", start), Err(1));
        assert!(t.check("alice", start + Duration::from_secs(1)).is_ok());
        let mut now = start;
        for _ in limits.login_free_failures..limits.login_lockout_failures {
            t.fail("alice", now, &limits);
            now += Duration::from_secs(1);
        }
        let wait = t.check("alice", now).expect_err("locked out");
        assert!(wait > 14 * 60, "{wait}");
        assert!(t.check("bob", now).is_ok(), "others are not affected");
        let later = now + limits.login_lockout + limits.login_forget_after;
        t.forget_stale(later, &limits);
        assert!(t.check("alice", later).is_ok());
        t.fail("carol", now, &limits);
        t.succeed("carol");
        assert!(!t.entries.contains_key("carol"));
    }

    #[test]
    fn an_ipv6_address_counts_as_its_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().expect("ip");
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().expect("ip");
        let c: IpAddr = "2001:db8:1:3::1".parse().expect("ip");
        assert_eq!(subnet_of(a), subnet_of(b));
        assert_ne!(subnet_of(a), subnet_of(c));
        let v4: IpAddr = "192.0.2.7".parse().expect("ip");
        assert_eq!(subnet_of(v4), v4);
        let mapped: IpAddr = "::ffff:192.0.2.7".parse().expect("ip");
        assert_eq!(subnet_of(mapped), v4);
    }
}
