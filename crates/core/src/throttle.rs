//! Login throttling, counted before the check runs; and account registration, rate-limited by
//! address.
//!
//! A password check is expensive (Argon2id) and its answer comes later, so an attempt is
//! *reserved* when the check is issued ([`Throttle::begin_login`], [`Throttle::begin_oper`]):
//! checks still in flight count as failures until their answer *settles* the [`Ticket`]
//! ([`Throttle::settle`]). However many connections an attacker opens, no more checks run at
//! once for one record than it has failures left before it slows down.
//!
//! Records are kept per address ([`subnet_of`]: an IPv6 address counts as its /64) and per
//! (account, address); OPER attempts have their own per-address record. For each record, after
//! `limits.login_free_failures` failures (in flight included) only one attempt may be in flight
//! and each further attempt waits twice as long as the last (1 s, 2 s, 4 s, …); from
//! `limits.login_lockout_failures` on, attempts are refused for `limits.login_lockout`. An
//! address may fail [`ADDRESS_SHARE`] times as often, across all accounts, since several
//! people may share it. A success clears the (account, address) record, never the address's
//! (logging in to one's own account must not buy more guesses at others). Failures are
//! forgotten after `limits.login_forget_after` of quiet.
//!
//! Nothing an attacker does from other addresses locks an account's owner out: an attempt from
//! an address with no failures and nothing in flight always runs. Attempts on one account from
//! addresses that do have failures share a per-account budget (`limits.login_account`), which
//! only slows them down: its wait is never longer than one interval.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

use crate::config::{Limits, Rate};
use crate::flood::Bucket;

/// Keys tracked at once; beyond it the stalest entries are forgotten first.
pub const MAX_ENTRIES: usize = 100_000;
/// How many times more failures an address may have, over all accounts, than one (account,
/// address) record: a household or an office shares one address (or one /64).
pub const ADDRESS_SHARE: u32 = 3;
/// The wait we tell a client refused because its earlier attempts are still being checked.
const IN_FLIGHT_WAIT_SECS: u64 = 1;

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

/// What a record counts.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
enum Key {
    /// Every login attempt from one [`subnet_of`] address.
    Address(IpAddr),
    /// Login attempts on one account (casefolded) from one [`subnet_of`] address.
    AccountAddress(String, IpAddr),
    /// OPER attempts from one [`subnet_of`] address.
    Oper(IpAddr),
}

impl Key {
    /// (failures before attempts slow down, failures that lock out).
    fn thresholds(&self, limits: &Limits) -> (u32, u32) {
        let (free, lockout) = (limits.login_free_failures, limits.login_lockout_failures);
        match self {
            Key::Address(_) => (free.saturating_mul(ADDRESS_SHARE), lockout.saturating_mul(ADDRESS_SHARE)),
            Key::AccountAddress(..) | Key::Oper(_) => (free, lockout),
        }
    }
}

#[derive(Copy, Clone, Debug)]
struct Entry {
    failures: u32,
    /// Checks issued and not yet answered; they count as failures until they are.
    in_flight: u32,
    last_failure: Instant,
    /// No attempt is accepted before this instant.
    until: Instant,
}

impl Entry {
    fn new(now: Instant) -> Self {
        Entry { failures: 0, in_flight: 0, last_failure: now, until: now }
    }

    /// `Err(seconds to wait)` if another attempt must not be issued now.
    fn admit(&self, now: Instant, (free, _): (u32, u32)) -> Result<(), u64> {
        if self.until > now {
            return Err(self.until.duration_since(now).as_secs().max(1));
        }
        if self.in_flight > 0 && self.failures.saturating_add(self.in_flight) >= free {
            return Err(IN_FLIGHT_WAIT_SECS);
        }
        Ok(())
    }

    fn fail(&mut self, now: Instant, (free, lockout): (u32, u32), limits: &Limits) {
        self.failures = self.failures.saturating_add(1);
        self.last_failure = now;
        let wait = if self.failures >= lockout {
            limits.login_lockout
        } else if self.failures >= free {
            let doublings = (self.failures - free).min(20);
            Duration::from_secs(1 << doublings).min(limits.login_lockout)
        } else {
            Duration::ZERO
        };
        self.until = self.until.max(now + wait);
    }
}

/// How a password check ended, for [`Throttle::settle`].
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Succeeded,
    Failed,
    /// No answer about the password (storage unavailable): released, not counted.
    Unknown,
}

/// A password check in flight, counted against its records until it is settled. Not `Clone`:
/// each reservation is settled exactly once.
#[derive(Debug)]
#[must_use = "a reserved attempt must be settled"]
pub(crate) struct Ticket {
    keys: Vec<Key>,
    /// The account (casefolded) whose shared budget this attempt took from, if it did.
    budget: Option<String>,
}

/// A record as it crosses to another node: (0 address, 1 account and address, 2 OPER, 3 the
/// account's budget; the account, casefolded, or empty; the address, or empty).
pub(crate) type SharedRecord = (u8, String, String);

impl Ticket {
    /// The records this attempt counts against, for the other nodes of a cluster.
    pub fn shared(&self) -> Vec<SharedRecord> {
        let mut records: Vec<SharedRecord> = self
            .keys
            .iter()
            .map(|key| match key {
                Key::Address(ip) => (0, String::new(), ip.to_string()),
                Key::AccountAddress(account, ip) => (1, account.clone(), ip.to_string()),
                Key::Oper(ip) => (2, String::new(), ip.to_string()),
            })
            .collect();
        records.extend(self.budget.iter().map(|account| (3, account.clone(), String::new())));
        records
    }
}

#[derive(Debug, Default)]
pub(crate) struct Throttle {
    entries: HashMap<Key, Entry>,
    /// The per-account budget for attempts from addresses that already failed
    /// (`limits.login_account`), by casefolded account.
    accounts: HashMap<String, Bucket>,
    /// Registration budget per [`subnet_of`] address.
    registrations: HashMap<IpAddr, Bucket>,
}

impl Throttle {
    /// Reserves a login attempt on `account` (casefolded) from `ip`, or says how many seconds
    /// to wait.
    pub fn begin_login(&mut self, account: &str, ip: IpAddr, now: Instant, limits: &Limits) -> Result<Ticket, u64> {
        let net = subnet_of(ip);
        let keys = vec![Key::Address(net), Key::AccountAddress(account.to_owned(), net)];
        self.admit(&keys, now, limits)?;
        // An address with nothing against it is never held back by what others did: this is
        // how the owner gets in while an account is under attack.
        let clean = self.entries.get(&keys[0]).is_none_or(|e| e.failures == 0 && e.in_flight == 0);
        if !clean {
            self.take_budget(account, now, limits).map_err(|wait| wait.as_secs().max(1))?;
        }
        let mut ticket = self.reserve(keys, now, limits);
        ticket.budget = (!clean).then(|| account.to_owned());
        Ok(ticket)
    }

    /// Takes one attempt from `account`'s shared budget (`limits.login_account`).
    fn take_budget(&mut self, account: &str, now: Instant, limits: &Limits) -> Result<(), Duration> {
        if self.accounts.len() >= MAX_ENTRIES && !self.accounts.contains_key(account) {
            self.accounts.retain(|_, b| !b.is_full(now));
        }
        let bucket = self.accounts.entry(account.to_owned()).or_insert_with(|| Bucket::new(now));
        bucket.take(now, limits.login_account, 1)
    }

    /// Reserves an OPER attempt from `ip`, or says how many seconds to wait.
    pub fn begin_oper(&mut self, ip: IpAddr, now: Instant, limits: &Limits) -> Result<Ticket, u64> {
        let keys = vec![Key::Oper(subnet_of(ip))];
        self.admit(&keys, now, limits)?;
        Ok(self.reserve(keys, now, limits))
    }

    /// `Err` with the longest wait of any of `keys`' records.
    fn admit(&self, keys: &[Key], now: Instant, limits: &Limits) -> Result<(), u64> {
        let waits =
            keys.iter().filter_map(|k| self.entries.get(k).and_then(|e| e.admit(now, k.thresholds(limits)).err()));
        match waits.max() {
            Some(wait) => Err(wait),
            None => Ok(()),
        }
    }

    fn reserve(&mut self, keys: Vec<Key>, now: Instant, limits: &Limits) -> Ticket {
        for key in &keys {
            if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(key) {
                self.make_room(now, limits);
            }
            let e = self.entries.entry(key.clone()).or_insert_with(|| Entry::new(now));
            e.in_flight = e.in_flight.saturating_add(1);
        }
        Ticket { keys, budget: None }
    }

    /// Counts the answer of a reserved attempt.
    pub fn settle(&mut self, ticket: Ticket, outcome: Outcome, now: Instant, limits: &Limits) {
        for key in ticket.keys {
            self.count(key, true, outcome, now, limits);
        }
    }

    /// Counts an attempt another node of the cluster settled (`Ticket::shared`): an attacker
    /// spreading guesses over the nodes slows down as on one. Records that do not parse are
    /// ignored.
    pub fn settled_elsewhere(&mut self, records: &[SharedRecord], outcome: Outcome, now: Instant, limits: &Limits) {
        for (kind, account, ip) in records {
            if *kind == 3 {
                // Spent on the other node whatever the outcome; an empty budget stays empty.
                let _ = self.take_budget(account, now, limits);
                continue;
            }
            let Ok(ip) = ip.parse::<IpAddr>() else { continue };
            let net = subnet_of(ip);
            let key = match kind {
                0 => Key::Address(net),
                1 => Key::AccountAddress(account.clone(), net),
                2 => Key::Oper(net),
                _ => continue,
            };
            if self.entries.len() >= MAX_ENTRIES && !self.entries.contains_key(&key) {
                self.make_room(now, limits);
            }
            self.count(key, false, outcome, now, limits);
        }
    }

    /// Counts one record's attempt (`ours`: reserved here, so it leaves the in-flight count).
    fn count(&mut self, key: Key, ours: bool, outcome: Outcome, now: Instant, limits: &Limits) {
        let thresholds = key.thresholds(limits);
        // The entry may have been forgotten to make room; a failure is still counted.
        let e = self.entries.entry(key.clone()).or_insert_with(|| Entry::new(now));
        if ours {
            e.in_flight = e.in_flight.saturating_sub(1);
        }
        match outcome {
            Outcome::Failed => e.fail(now, thresholds, limits),
            Outcome::Succeeded if !matches!(key, Key::Address(_)) => {
                e.failures = 0;
                e.until = now;
            }
            Outcome::Succeeded | Outcome::Unknown => {}
        }
        if e.failures == 0 && e.in_flight == 0 {
            self.entries.remove(&key);
        }
    }

    /// Forgets stale records, then, if still full, the one whose last failure is oldest among
    /// those with nothing in flight.
    fn make_room(&mut self, now: Instant, limits: &Limits) {
        self.forget_stale(now, limits);
        if self.entries.len() >= MAX_ENTRIES {
            let oldest = self
                .entries
                .iter()
                .filter(|(_, e)| e.in_flight == 0)
                .min_by_key(|(_, e)| e.last_failure)
                .map(|(k, _)| k);
            if let Some(oldest) = oldest.cloned() {
                self.entries.remove(&oldest);
            }
        }
    }

    /// Takes one registration from `ip`'s budget, or says how many seconds until there is one.
    pub fn register(&mut self, ip: IpAddr, now: Instant, rate: Rate) -> Result<(), u64> {
        if self.registrations.len() >= MAX_ENTRIES && !self.registrations.contains_key(&subnet_of(ip)) {
            self.registrations.retain(|_, b| b.check(now, rate).is_err());
        }
        let bucket = self.registrations.entry(subnet_of(ip)).or_insert_with(|| Bucket::new(now));
        bucket.take(now, rate, 1).map_err(|wait| wait.as_secs().max(1))
    }

    /// Drops records that have been quiet long enough (called from the core's tick). A record
    /// with an attempt in flight is kept until the attempt is settled.
    pub fn forget_stale(&mut self, now: Instant, limits: &Limits) {
        let forget = limits.login_forget_after;
        self.entries.retain(|_, e| e.in_flight > 0 || e.until > now || now.duration_since(e.last_failure) < forget);
        self.accounts.retain(|_, b| !b.is_full(now));
        self.registrations.retain(|_, b| !b.is_full(now));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 1));

    fn guess(t: &mut Throttle, account: &str, ip: IpAddr, now: Instant, limits: &Limits) -> Result<(), u64> {
        let ticket = t.begin_login(account, ip, now, limits)?;
        t.settle(ticket, Outcome::Failed, now, limits);
        Ok(())
    }

    #[test]
    fn slows_then_locks_out_then_forgets() {
        let limits = Limits::default();
        let mut t = Throttle::default();
        let start = Instant::now();
        for _ in 0..limits.login_free_failures {
            guess(&mut t, "alice", HOME, start, &limits).expect("free");
        }
        assert_eq!(t.begin_login("alice", HOME, start, &limits).map(|_| ()), Err(1));
        let mut now = start;
        for _ in limits.login_free_failures..limits.login_lockout_failures {
            now += limits.login_account.every;
            while t
                .begin_login("alice", HOME, now, &limits)
                .map(|tk| t.settle(tk, Outcome::Failed, now, &limits))
                .is_err()
            {
                now += Duration::from_secs(1);
            }
        }
        let wait = t.begin_login("alice", HOME, now, &limits).map(|_| ()).expect_err("locked out");
        assert!(wait > 14 * 60, "{wait}");
        let later = now + limits.login_lockout + limits.login_forget_after;
        t.forget_stale(later, &limits);
        assert!(t.entries.is_empty() && t.accounts.is_empty());
        assert!(t.begin_login("alice", HOME, later, &limits).is_ok());
    }

    #[test]
    fn in_flight_attempts_count_before_their_answer() {
        let limits = Limits::default();
        let mut t = Throttle::default();
        let now = Instant::now();
        let tickets: Vec<Ticket> = (0..50).filter_map(|_| t.begin_login("alice", HOME, now, &limits).ok()).collect();
        assert_eq!(tickets.len() as u32, limits.login_free_failures);
        for ticket in tickets {
            t.settle(ticket, Outcome::Unknown, now, &limits);
        }
        assert!(t.entries.is_empty(), "released attempts leave nothing behind");
    }

    #[test]
    fn a_success_clears_the_account_record_but_not_the_address() {
        let limits = Limits::default();
        let mut t = Throttle::default();
        let now = Instant::now();
        guess(&mut t, "alice", HOME, now, &limits).expect("free");
        let ticket = t.begin_login("mallory", HOME, now, &limits).expect("free");
        t.settle(ticket, Outcome::Succeeded, now, &limits);
        let net = subnet_of(HOME);
        assert_eq!(t.entries.get(&Key::Address(net)).map(|e| e.failures), Some(1));
        assert!(t.entries.contains_key(&Key::AccountAddress("alice".into(), net)));
        assert!(!t.entries.contains_key(&Key::AccountAddress("mallory".into(), net)));
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
