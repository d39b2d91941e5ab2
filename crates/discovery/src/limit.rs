//! How often the responder answers: a token bucket per source address and one for everyone.
//!
//! The per-source bucket stops one asker (or one forged source address) from drawing a stream
//! of answers; the global bucket bounds what the responder sends in all, however many sources
//! are forged. Sans-IO: the caller passes the time.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// Rates, in answers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RateLimits {
    /// Answers one source may get at once (a status query of several pages uses one each).
    pub per_source_burst: u32,
    /// Answers per second one source earns back.
    pub per_source_per_sec: f64,
    /// Answers the responder may send at once, to all sources together.
    pub global_burst: u32,
    pub global_per_sec: f64,
    /// Sources remembered at most. When full, sources whose bucket has refilled are forgotten;
    /// if none has, new sources get no answer until one does (a flood of forged sources cannot
    /// grow memory or push out the buckets that are limiting real ones).
    pub max_sources: usize,
}

impl Default for RateLimits {
    fn default() -> Self {
        RateLimits {
            per_source_burst: 8,
            per_source_per_sec: 2.0,
            global_burst: 64,
            global_per_sec: 32.0,
            max_sources: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Bucket { tokens: f64::from(burst), at: now }
    }

    fn refill(&mut self, burst: u32, rate: f64, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        self.at = now;
    }

    fn is_full(&self, burst: u32, rate: f64, now: Instant) -> bool {
        let mut b = *self;
        b.refill(burst, rate, now);
        b.tokens >= f64::from(burst)
    }
}

/// Decides, datagram by datagram, whether an answer may be sent.
#[derive(Debug)]
pub struct Limiter {
    limits: RateLimits,
    sources: HashMap<IpAddr, Bucket>,
    global: Bucket,
    /// When sources were last swept for full buckets; sweeping is at most once a second.
    swept: Instant,
}

impl Limiter {
    pub fn new(limits: RateLimits, now: Instant) -> Self {
        Limiter { limits, sources: HashMap::new(), global: Bucket::full(limits.global_burst, now), swept: now }
    }

    /// True if `source` may get an answer now; takes a token from its bucket and the global one.
    pub fn allow(&mut self, source: IpAddr, now: Instant) -> bool {
        let l = self.limits;
        if !self.sources.contains_key(&source) && self.sources.len() >= l.max_sources {
            if now.saturating_duration_since(self.swept) < Duration::from_secs(1) {
                return false;
            }
            self.swept = now;
            self.sources.retain(|_, b| !b.is_full(l.per_source_burst, l.per_source_per_sec, now));
            if self.sources.len() >= l.max_sources {
                return false;
            }
        }
        let bucket = self.sources.entry(source).or_insert_with(|| Bucket::full(l.per_source_burst, now));
        bucket.refill(l.per_source_burst, l.per_source_per_sec, now);
        self.global.refill(l.global_burst, l.global_per_sec, now);
        if bucket.tokens < 1.0 || self.global.tokens < 1.0 {
            return false;
        }
        bucket.tokens -= 1.0;
        self.global.tokens -= 1.0;
        true
    }

    /// Sources currently remembered.
    #[cfg(test)]
    pub fn sources(&self) -> usize {
        self.sources.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(n.into())
    }

    #[test]
    fn one_source_gets_its_burst_then_its_rate() {
        let t0 = Instant::now();
        let limits = RateLimits { per_source_burst: 3, per_source_per_sec: 2.0, ..RateLimits::default() };
        let mut l = Limiter::new(limits, t0);
        let allowed = (0..10).filter(|_| l.allow(ip(1), t0)).count();
        assert_eq!(allowed, 3);
        assert!(l.allow(ip(2), t0), "another source has its own bucket");
        assert!(!l.allow(ip(1), t0 + Duration::from_millis(100)));
        assert!(l.allow(ip(1), t0 + Duration::from_millis(600)), "one token back after half a second");
    }

    #[test]
    fn the_global_bucket_bounds_many_sources() {
        let t0 = Instant::now();
        let limits = RateLimits { global_burst: 5, global_per_sec: 1.0, ..RateLimits::default() };
        let mut l = Limiter::new(limits, t0);
        let allowed = (0..100).filter(|n| l.allow(ip(*n), t0)).count();
        assert_eq!(allowed, 5);
    }

    #[test]
    fn the_source_table_is_bounded_and_forgets_idle_sources() {
        let t0 = Instant::now();
        let limits = RateLimits { max_sources: 4, global_burst: 1000, ..RateLimits::default() };
        let mut l = Limiter::new(limits, t0);
        for n in 0..4 {
            assert!(l.allow(ip(n), t0));
        }
        assert!(!l.allow(ip(99), t0), "the table is full of busy sources");
        assert_eq!(l.sources(), 4);
        let later = t0 + Duration::from_secs(10);
        assert!(l.allow(ip(99), later), "refilled buckets were forgotten");
        assert!(l.sources() <= 4);
    }
}
