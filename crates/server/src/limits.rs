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
    ip: IpAddr,
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
        Ok(Permit { book: Arc::clone(&self.book), ip })
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
        decrement(&mut book.per_address, self.ip);
        if is_subnet_counted(self.ip) {
            decrement(&mut book.per_subnet, subnet_of(self.ip));
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
}
