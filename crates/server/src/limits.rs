//! Admission at the door: who may open a connection, before any byte of it is read.
//!
//! One [`Admission`] is shared by every listener. It counts open connections in total, per
//! address and per IPv6 /64, and keeps a token bucket of new connections per address
//! ([`subnet_of`]). An admitted connection holds a [`Permit`] whose drop gives its place back;
//! a refused one gets a [`Refusal`] saying why, which the listener sends as `ERROR`.
//!
//! The lock is held only for a few map operations, never across an `.await`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chinwag_core::{subnet_of, TokenBucket};

use crate::config::EdgeLimits;

/// Files the server keeps open for itself besides its connections (the database, its WAL and
/// shared memory, listeners, log files, the control socket, certificates being reloaded), with
/// room to spare: running out of them would fail those, not just a connection.
const RESERVED_FILES: usize = 128;
/// The connection cap when the file limit cannot be read.
const FALLBACK_MAX_CONNECTIONS: usize = 10_000;

/// Raises this process's soft limit on open files to its hard limit (services are often
/// started with a soft limit far below what they may use) and returns the limit now in force;
/// `None` if it cannot be read or is unlimited.
pub fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum || (limit.current.is_some() && limit.maximum.is_none()) {
        limit.current = limit.maximum;
        if let Err(e) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %e, "could not raise the limit on open files");
        }
    }
    getrlimit(Resource::Nofile).current
}

/// How many connections this process can hold: its raised file limit, less [`RESERVED_FILES`]
/// for the server's own.
pub(crate) fn connection_capacity() -> Option<usize> {
    let files = raise_open_files_limit()?;
    Some(usize::try_from(files).unwrap_or(usize::MAX).saturating_sub(RESERVED_FILES).max(1))
}

/// The connection cap: `configured` (0: as many as the process can hold) within `capacity`.
pub(crate) fn max_connections(configured: usize, capacity: Option<usize>) -> usize {
    match (configured, capacity) {
        (0, Some(capacity)) => capacity,
        (0, None) => FALLBACK_MAX_CONNECTIONS,
        (configured, Some(capacity)) if configured > capacity => {
            tracing::warn!(
                configured,
                capacity,
                "limits.max_connections is above what the file limit allows; using the file limit"
            );
            capacity
        }
        (configured, _) => configured,
    }
}

/// Start forgetting idle new-connection buckets when there are this many.
const PRUNE_RATES_AT: usize = 4096;

/// Why a connection was refused; the text is what the peer is told.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    ServerFull,
    TooManyFromAddress,
    TooManyFromSubnet,
    TooManyNew,
}

impl Refusal {
    pub fn text(self) -> &'static str {
        match self {
            Refusal::ServerFull => "Server full: too many connections; try again later",
            Refusal::TooManyFromAddress => "Too many connections from your address",
            Refusal::TooManyFromSubnet => "Too many connections from your network (/64)",
            Refusal::TooManyNew => "Connecting too fast from your address; wait a few seconds",
        }
    }
}

#[derive(Debug, Default)]
struct Book {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
    /// IPv6 /64s only; an IPv4 address is its own subnet and is counted once, above.
    per_subnet: HashMap<IpAddr, usize>,
    new_connections: HashMap<IpAddr, TokenBucket>,
}

/// The shared counts; cloning shares them.
#[derive(Clone, Debug)]
pub(crate) struct Admission {
    book: Arc<Mutex<Book>>,
    limits: EdgeLimits,
}

/// One admitted connection's place; dropping it frees the place.
#[derive(Debug)]
pub(crate) struct Permit {
    book: Arc<Mutex<Book>>,
    /// `None` for an exempt address, which is only counted in the total.
    ip: Option<IpAddr>,
}

fn lock(book: &Mutex<Book>) -> MutexGuard<'_, Book> {
    // A panic while holding this lock cannot leave the counts half-updated in a way that
    // matters more than refusing every connection would, so a poisoned lock is used as is.
    book.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn is_subnet_counted(ip: IpAddr) -> bool {
    matches!(ip.to_canonical(), IpAddr::V6(_))
}

impl Admission {
    pub fn new(limits: EdgeLimits) -> Self {
        Admission { book: Arc::new(Mutex::new(Book::default())), limits }
    }

    /// Admits a connection from `ip` now, or says why not.
    pub fn admit(&self, ip: IpAddr, now: Instant) -> Result<Permit, Refusal> {
        let ip = ip.to_canonical();
        let subnet = subnet_of(ip);
        let l = &self.limits;
        let mut book = lock(&self.book);
        if book.total >= l.max_connections {
            return Err(Refusal::ServerFull);
        }
        if l.exempt.contains(&ip) {
            book.total += 1;
            return Ok(Permit { book: Arc::clone(&self.book), ip: None });
        }
        if book.per_address.get(&ip).copied().unwrap_or(0) >= l.connections_per_address {
            return Err(Refusal::TooManyFromAddress);
        }
        if is_subnet_counted(ip) && book.per_subnet.get(&subnet).copied().unwrap_or(0) >= l.connections_per_subnet {
            return Err(Refusal::TooManyFromSubnet);
        }
        if book.new_connections.len() >= PRUNE_RATES_AT {
            book.new_connections.retain(|_, b| !b.is_full(now));
        }
        let bucket = book.new_connections.entry(subnet).or_insert_with(|| TokenBucket::new(now));
        if bucket.take(now, l.new_connections, 1).is_err() {
            return Err(Refusal::TooManyNew);
        }
        book.total += 1;
        *book.per_address.entry(ip).or_default() += 1;
        if is_subnet_counted(ip) {
            *book.per_subnet.entry(subnet).or_default() += 1;
        }
        Ok(Permit { book: Arc::clone(&self.book), ip: Some(ip) })
    }

    /// Connections admitted and not yet closed.
    #[cfg(test)]
    fn open(&self) -> usize {
        lock(&self.book).total
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut book = lock(&self.book);
        book.total = book.total.saturating_sub(1);
        let Some(ip) = self.ip else { return };
        decrement(&mut book.per_address, ip);
        if is_subnet_counted(ip) {
            decrement(&mut book.per_subnet, subnet_of(ip));
        }
    }
}

fn decrement(map: &mut HashMap<IpAddr, usize>, key: IpAddr) {
    if let Some(n) = map.get_mut(&key) {
        *n -= 1;
        if *n == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn limits() -> EdgeLimits {
        EdgeLimits {
            max_connections: 6,
            connections_per_address: 2,
            connections_per_subnet: 3,
            new_connections: chinwag_core::Rate { burst: 100, every: Duration::from_secs(1) },
            exempt: Vec::new(),
            ..EdgeLimits::default()
        }
    }

    #[test]
    fn counts_per_address_per_64_and_in_total_and_frees_on_drop() {
        let a = Admission::new(limits());
        let now = Instant::now();
        let first = a.admit(ip("2001:db8::1"), now).expect("admitted");
        let _second = a.admit(ip("2001:db8::1"), now).expect("admitted");
        assert_eq!(a.admit(ip("2001:db8::1"), now).err(), Some(Refusal::TooManyFromAddress));
        let _third = a.admit(ip("2001:db8::2"), now).expect("another address in the /64");
        assert_eq!(a.admit(ip("2001:db8::3"), now).err(), Some(Refusal::TooManyFromSubnet));
        let _v4 = a.admit(ip("192.0.2.1"), now).expect("IPv4 has no subnet count");
        let _v4b = a.admit(ip("192.0.2.1"), now).expect("second from the address");
        let _other = a.admit(ip("2001:db8:1::1"), now).expect("another /64");
        assert_eq!(a.admit(ip("198.51.100.1"), now).err(), Some(Refusal::ServerFull));
        drop(first);
        assert_eq!(a.open(), 5);
        let _again = a.admit(ip("2001:db8::1"), now).expect("a freed place is reused");
    }

    #[test]
    fn exempt_addresses_count_only_towards_the_total() {
        let a = Admission::new(EdgeLimits { exempt: vec![ip("127.0.0.1")], ..limits() });
        let now = Instant::now();
        let held: Vec<Permit> = (0..6).map(|_| a.admit(ip("127.0.0.1"), now).expect("exempt")).collect();
        assert_eq!(a.admit(ip("127.0.0.1"), now).err(), Some(Refusal::ServerFull));
        drop(held);
        assert_eq!(a.open(), 0);
        assert!(a.admit(ip("127.0.0.2"), now).is_ok());
    }

    #[test]
    fn new_connections_are_rate_limited_per_address() {
        let a = Admission::new(EdgeLimits {
            new_connections: chinwag_core::Rate { burst: 3, every: Duration::from_secs(10) },
            ..limits()
        });
        let now = Instant::now();
        for _ in 0..3 {
            drop(a.admit(ip("192.0.2.1"), now).expect("within the burst"));
        }
        assert_eq!(a.admit(ip("192.0.2.1"), now).err(), Some(Refusal::TooManyNew));
        assert!(a.admit(ip("192.0.2.2"), now).is_ok(), "another address has its own budget");
        assert!(a.admit(ip("192.0.2.1"), now + Duration::from_secs(10)).is_ok(), "refilled");
    }

    #[test]
    fn the_connection_cap_follows_the_file_limit() {
        assert_eq!(max_connections(0, Some(19_872)), 19_872, "0 means as many as the process can hold");
        assert_eq!(max_connections(0, None), FALLBACK_MAX_CONNECTIONS);
        assert_eq!(max_connections(500, Some(19_872)), 500, "a lower cap is kept");
        assert_eq!(max_connections(50_000, Some(19_872)), 19_872, "a cap above the file limit would fail accepts");
    }

    #[test]
    fn a_low_soft_file_limit_is_raised_to_the_hard_one() {
        use rustix::process::{getrlimit, setrlimit, Resource};
        let original = getrlimit(Resource::Nofile);
        let Some(hard) = original.maximum.filter(|&hard| hard > 512) else { return };
        // Each test runs in a process of its own (nextest), so this changes no other test.
        let low = rustix::process::Rlimit { current: Some(256), maximum: original.maximum };
        setrlimit(Resource::Nofile, low).expect("lowering the soft limit");
        let capacity = connection_capacity().expect("a finite limit");
        assert_eq!(getrlimit(Resource::Nofile).current, Some(hard));
        assert_eq!(capacity, usize::try_from(hard).expect("fits") - RESERVED_FILES);
    }
}
