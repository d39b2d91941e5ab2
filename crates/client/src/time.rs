//! Timestamps in the form IRCv3 server-time uses (`2026-11-29T22:51:42.123Z`), for messages
//! that arrive without one (servers without server-time, our own lines without echo-message).
//! RFC 3339 strings in UTC compare correctly as strings, which is how messages are ordered.

use std::time::{SystemTime, UNIX_EPOCH};

/// The current time as RFC 3339 UTC with milliseconds.
pub fn now_rfc3339() -> String {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    chinwag_proto::rfc3339_ms(ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn now_is_a_server_time_timestamp() {
        let now = now_rfc3339();
        assert_eq!(now.len(), 24, "{now}");
        assert!(chinwag_proto::parse_rfc3339_ms(&now).is_some_and(|ms| ms > 1_700_000_000_000), "{now}");
    }
}
