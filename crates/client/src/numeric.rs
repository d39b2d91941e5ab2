//! Numeric replies as sentences: `bob has been idle 5 minutes, signed on 2026-11-29 09:00 UTC`
//! rather than `bob 300 1795424400 seconds idle, signon time`. [`describe`] knows the replies
//! a user asks for (WHOIS, WHOWAS, AWAY, modes, topics, invites); any other numeric is shown
//! as what it is about followed by the server's text, and an error as `what: why`.
//!
//! Also the small words every front end shares: [`duration`] and [`count`].

/// `n` and the noun, singular for one: `1 member`, `3 members`.
pub fn count(n: usize, singular: &str, plural: &str) -> String {
    format!("{n} {}", if n == 1 { singular } else { plural })
}

/// A span of seconds in words, to the two largest units: `1 second`, `5 minutes 3 seconds`,
/// `2 days 1 hour`.
pub fn duration(secs: u64) -> String {
    const UNITS: [(u64, &str, &str); 4] =
        [(86_400, "day", "days"), (3_600, "hour", "hours"), (60, "minute", "minutes"), (1, "second", "seconds")];
    let mut left = secs;
    let mut parts = Vec::new();
    for (size, one, many) in UNITS {
        if left >= size && parts.len() < 2 {
            parts.push(count((left / size) as usize, one, many));
            left %= size;
        } else if !parts.is_empty() {
            // Only adjacent units: "1 day 3 seconds" says less than it seems to.
            break;
        }
    }
    if parts.is_empty() {
        return count(0, "second", "seconds");
    }
    parts.join(" ")
}

/// A Unix time in seconds as `YYYY-MM-DD HH:MM UTC`, or `None` if it is not a number.
fn date(unix_secs: &str) -> Option<String> {
    let secs: u64 = unix_secs.parse().ok()?;
    let stamp = chinwag_proto::rfc3339_ms(secs.checked_mul(1000)?);
    Some(format!("{} {} UTC", stamp.get(..10)?, stamp.get(11..16)?))
}

/// Whether numeric `cmd` is the server speaking of itself (LUSERS, the MOTD, our host), which
/// belongs with the connection's other news rather than in a conversation.
pub(crate) fn is_about_the_server(cmd: &str) -> bool {
    matches!(
        cmd,
        "042" | "250" | "251" | "252" | "253" | "254" | "255" | "265" | "266" | "372" | "375" | "376" | "396" | "422"
    )
}

/// Numeric `cmd` (its parameters `p`, our nick first) as a sentence, or `None` if it has
/// nothing to say.
pub(crate) fn describe(cmd: &str, p: &[String]) -> Option<String> {
    // Parameters after our nick; the last is usually the server's own text.
    let args = p.get(1..).unwrap_or_default();
    let arg = |i: usize| args.get(i).map_or("", String::as_str);
    let text = match (cmd, args.len()) {
        // The AWAY reply (to WHOIS, or to a message for someone away).
        ("301", 2..) => format!("{} is away: {}", arg(0), arg(1)),
        ("311", 5..) => format!("{} is {}@{} ({})", arg(0), arg(1), arg(2), arg(4)),
        ("314", 5..) => format!("{} was {}@{} ({})", arg(0), arg(1), arg(2), arg(4)),
        ("312", 3..) => format!("{} is on {} ({})", arg(0), arg(1), arg(2)),
        ("313", 1..) => format!("{} is an IRC operator", arg(0)),
        ("317", 3..) => {
            let idle = arg(1).parse().map(duration).unwrap_or_else(|_| arg(1).to_owned());
            match date(arg(2)).filter(|_| args.len() > 3) {
                Some(signon) => format!("{} has been idle {idle}, signed on {signon}", arg(0)),
                None => format!("{} has been idle {idle}", arg(0)),
            }
        }
        ("319", 2..) => format!("{} is in {}", arg(0), arg(1)),
        ("330", 2..) => format!("{} is logged in as {}", arg(0), arg(1)),
        ("671", 1..) => format!("{} is using a secure connection", arg(0)),
        ("324", 2..) => format!("{} has modes {}", arg(0), args[1..].join(" ")),
        ("331", 1..) => format!("{} has no topic", arg(0)),
        ("341", 2..) => format!("invited {} to {}", arg(0), arg(1)),
        // Ends of lists and the rest of the welcome burst say nothing a user needs.
        ("002" | "003" | "004" | "005" | "315" | "318" | "329" | "333" | "366" | "368" | "369" | "375" | "376", _) => {
            return None
        }
        (_, 0) => return None,
        // Replies that repeat their numbers in the text (LUSERS, the MOTD).
        ("250" | "265" | "266" | "372" | "422", _) => arg(args.len() - 1).to_owned(),
        (_, 1) => arg(0).to_owned(),
        (_, n) if cmd.starts_with(['4', '5']) => format!("{}: {}", args[..n - 1].join(" "), arg(n - 1)),
        (_, _) => args.join(" "),
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_use_the_two_largest_adjacent_units_and_singulars() {
        assert_eq!(duration(0), "0 seconds");
        assert_eq!(duration(1), "1 second");
        assert_eq!(duration(59), "59 seconds");
        assert_eq!(duration(61), "1 minute 1 second");
        assert_eq!(duration(3_600), "1 hour");
        assert_eq!(duration(3_661), "1 hour 1 minute");
        assert_eq!(duration(86_400 + 3), "1 day");
        assert_eq!(duration(2 * 86_400 + 7_200), "2 days 2 hours");
        assert_eq!(count(1, "member", "members"), "1 member");
        assert_eq!(count(2, "member", "members"), "2 members");
    }

    #[test]
    fn odd_numerics_never_panic() {
        for cmd in ["301", "311", "312", "317", "319", "324", "401", "999", "250", "002"] {
            for n in 0..7 {
                let p: Vec<String> = (0..n).map(|i| format!("p{i}")).collect();
                let _ = describe(cmd, &p);
            }
        }
        assert_eq!(
            describe("317", &["me".into(), "bob".into(), "x".into(), "y".into(), "z".into()]).as_deref(),
            Some("bob has been idle x")
        );
    }
}
