//! Reconnect delays: exponential backoff with "full jitter" in the upper half, so a server that
//! restarts is not hit by all its clients in the same millisecond, and a server that stays down
//! is asked at most every [`MAX_DELAY`].

use std::time::Duration;

/// The first retry comes after about this long.
pub const FIRST_DELAY: Duration = Duration::from_millis(500);
/// Retries never wait longer than this.
pub const MAX_DELAY: Duration = Duration::from_secs(60);

/// The delay sequence of one outage; [`Backoff::reset`] once a connection is up.
#[derive(Debug, Clone, Default)]
pub struct Backoff {
    /// Failed attempts since the last success.
    attempt: u32,
}

impl Backoff {
    /// How long to wait before the next attempt. `unit` is a random number in `[0, 1)`: the
    /// delay is uniformly spread over the upper half of the exponential step.
    pub fn next_delay(&mut self, unit: f64) -> Duration {
        let step = FIRST_DELAY.saturating_mul(1u32 << self.attempt.min(16)).min(MAX_DELAY);
        self.attempt = self.attempt.saturating_add(1);
        step.mul_f64(0.5 + 0.5 * unit.clamp(0.0, 1.0))
    }

    /// How many attempts have failed in a row.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    pub fn reset(&mut self) {
        self.attempt = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_then_caps_and_resets() {
        let mut b = Backoff::default();
        let lows: Vec<Duration> = (0..12).map(|_| b.next_delay(0.0)).collect();
        assert_eq!(lows[0], Duration::from_millis(250));
        assert_eq!(lows[1], Duration::from_millis(500));
        assert_eq!(lows[2], Duration::from_millis(1000));
        assert!(lows.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(*lows.last().expect("twelve"), MAX_DELAY / 2);
        assert_eq!(b.next_delay(0.999_999).as_secs(), 59);
        b.reset();
        assert_eq!(b.next_delay(1.0), FIRST_DELAY);
    }
}
