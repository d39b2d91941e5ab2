//! `/discover` and `/connect N`: servers on the LAN (through `chinwag-discovery`'s multicast
//! probe) listed for the user, and the pinning rule for connecting to one.
//!
//! Discovery answers are unauthenticated: anyone on the LAN can claim any name and fingerprint.
//! So an advertised fingerprint is only ever a first-use pin for a server never met, shown to
//! the user who picked it; a fingerprint already pinned for that address always wins, and the
//! handshake then refuses any other certificate as usual.

use chinwag_discovery::Found;

/// What to pin when connecting to a discovered server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PinChoice {
    /// Already pinned (the advertisement agrees, or says nothing): connect with the pin.
    Pinned(String),
    /// Pinned to something else than advertised: connect with the pin, and warn.
    Mismatch { pinned: String, advertised: String },
    /// Never met: pin the advertised fingerprint (the user chose this server after seeing it).
    New(String),
    /// Never met and nothing advertised: only a CA-signed certificate will do.
    CaOnly,
}

/// The pinning rule: a discovered fingerprint never overrides a pinned one.
pub fn choose_pin(pinned: Option<&str>, advertised: Option<&str>) -> PinChoice {
    match (pinned, advertised) {
        (Some(p), Some(a)) if !p.eq_ignore_ascii_case(a) => {
            PinChoice::Mismatch { pinned: p.to_owned(), advertised: a.to_owned() }
        }
        (Some(p), _) => PinChoice::Pinned(p.to_owned()),
        (None, Some(a)) => PinChoice::New(a.to_owned()),
        (None, None) => PinChoice::CaOnly,
    }
}

/// The list as `/discover` prints it, numbered from 1 for `/connect N`.
pub fn describe(found: &[Found]) -> Vec<String> {
    if found.is_empty() {
        return vec!["no chinwag server answered on the LAN".into()];
    }
    let mut lines = vec![format!("{} server(s) on the LAN (/connect N to switch):", found.len())];
    for (i, f) in found.iter().enumerate() {
        let addr = f.tls_addr().map_or_else(|| "no TLS listener".to_owned(), |a| a.to_string());
        let rooms: Vec<&str> = f.rooms.iter().map(|r| r.name.as_str()).collect();
        lines.push(format!(
            "  {}. {} at {addr}, {} online, rooms: {} (SHA-256 {})",
            i + 1,
            f.name,
            f.users_online,
            if rooms.is_empty() { "none".to_owned() } else { rooms.join(" ") },
            f.fingerprint.as_deref().unwrap_or("not advertised"),
        ));
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_discovered_fingerprint_never_overrides_a_pin() {
        assert_eq!(
            choose_pin(Some("AA:BB"), Some("CC:DD")),
            PinChoice::Mismatch { pinned: "AA:BB".into(), advertised: "CC:DD".into() }
        );
        assert_eq!(choose_pin(Some("AA:BB"), Some("aa:bb")), PinChoice::Pinned("AA:BB".into()));
        assert_eq!(choose_pin(Some("AA:BB"), None), PinChoice::Pinned("AA:BB".into()));
        assert_eq!(choose_pin(None, Some("CC:DD")), PinChoice::New("CC:DD".into()));
        assert_eq!(choose_pin(None, None), PinChoice::CaOnly);
    }

    #[test]
    fn describes_an_empty_lan() {
        assert_eq!(describe(&[]), vec!["no chinwag server answered on the LAN".to_owned()]);
    }
}
