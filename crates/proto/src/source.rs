//! Message sources (`nick!user@host`) and hostname validation.

/// The parts of a `nick!user@host` source. A server name comes back as just a `nick`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source<'a> {
    /// Everything before the first `!` or `@` (the whole string if neither appears).
    pub nick: &'a str,
    /// Between `!` and `@`, if there is a `!` before the first `@`.
    pub user: Option<&'a str>,
    /// After the first `@`, if there is one.
    pub host: Option<&'a str>,
}

/// Splits `nick!user@host`. Never fails: sources from the wire are not validated (vhosts
/// legitimately contain odd characters), only cut apart.
pub fn split_source(s: &str) -> Source<'_> {
    let (prefix, host) = match s.split_once('@') {
        Some((prefix, host)) => (prefix, Some(host)),
        None => (s, None),
    };
    let (nick, user) = match prefix.split_once('!') {
        Some((nick, user)) => (nick, Some(user)),
        None => (prefix, None),
    };
    Source { nick, user, host }
}

/// Longest hostname in bytes (RFC 1035, without the optional trailing dot).
const MAX_HOSTNAME_LEN: usize = 253;

/// Longest single label of a hostname in bytes (RFC 1035).
const MAX_LABEL_LEN: usize = 63;

/// Whether `s` is acceptable as a server name or client hostname: dot-separated labels of
/// ASCII letters, digits and `-` (not at either end of a label), at least two labels, an
/// optional trailing dot. Single-label names (`localhost`, `com`) are refused because IRC uses
/// the dot to tell server names from nicknames. Internationalized names must be punycode.
pub fn is_valid_hostname(s: &str) -> bool {
    let name = s.strip_suffix('.').unwrap_or(s);
    if name.is_empty() || name.len() > MAX_HOSTNAME_LEN || !s.contains('.') {
        return false;
    }
    name.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= MAX_LABEL_LEN
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    })
}
