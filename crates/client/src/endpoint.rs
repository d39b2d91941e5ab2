//! Where to connect and how: `HOST[:PORT]` parsed once, with the transport it asks for.

use std::fmt;
use std::net::IpAddr;

/// The IRC-over-TLS port (RFC 7194).
pub const DEFAULT_TLS_PORT: u16 = 6697;
/// The traditional plaintext IRC port.
pub const DEFAULT_PLAINTEXT_PORT: u16 = 6667;

/// How the bytes travel; everything above the transport only sees lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// TLS 1.2+ with the certificate checked against the CAs or a pinned fingerprint.
    Tls,
    /// Clear text; only on explicit request.
    Plaintext,
    /// QUIC (TLS 1.3 inside, the same certificate check as TLS) on UDP: the IRC lines on one
    /// stream, typing notices as datagrams.
    Quic,
}

impl Security {
    /// Whether a certificate is checked (and so may be pinned).
    pub fn is_encrypted(self) -> bool {
        self != Security::Plaintext
    }
}

/// A server to connect to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP address, without brackets.
    pub host: String,
    pub port: u16,
    pub security: Security,
}

/// Why a `HOST[:PORT]` could not be understood. Shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("no server given")]
    Empty,
    #[error("{0:?} is not a valid port")]
    BadPort(String),
    #[error("an IPv6 address needs brackets, like [::1]:6697")]
    UnbracketedIpv6,
}

impl Endpoint {
    /// Parses `host`, `host:port`, `[v6]` or `[v6]:port`; the port defaults by `security`.
    pub fn parse(text: &str, security: Security) -> Result<Endpoint, EndpointError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(EndpointError::Empty);
        }
        let default_port = match security {
            // chinwag serves QUIC on the TLS port's number, over UDP.
            Security::Tls | Security::Quic => DEFAULT_TLS_PORT,
            Security::Plaintext => DEFAULT_PLAINTEXT_PORT,
        };
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or(EndpointError::UnbracketedIpv6)?;
            match after.strip_prefix(':') {
                Some(port) => (host, Some(port)),
                None if after.is_empty() => (host, None),
                None => return Err(EndpointError::BadPort(after.to_owned())),
            }
        } else if text.matches(':').count() > 1 {
            return Err(EndpointError::UnbracketedIpv6);
        } else {
            match text.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (text, None),
            }
        };
        if host.is_empty() {
            return Err(EndpointError::Empty);
        }
        let port = match port {
            Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(|| EndpointError::BadPort(p.to_owned()))?,
            None => default_port,
        };
        Ok(Endpoint { host: host.to_owned(), port, security })
    }

    /// `host:port` as the known-servers file and messages spell it (`[v6]:port` for IPv6).
    pub fn key(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Whether the host is this machine: `localhost` or a loopback address. Only then may a
    /// password travel in clear.
    pub fn is_loopback(&self) -> bool {
        self.host.eq_ignore_ascii_case("localhost") || self.host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_hosts_ports_and_ipv6() {
        let e = Endpoint::parse("chat.example.org", Security::Tls).expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("chat.example.org", 6697));
        let e = Endpoint::parse("127.0.0.1:7000", Security::Plaintext).expect("parses");
        assert_eq!((e.host.as_str(), e.port), ("127.0.0.1", 7000));
        assert!(e.is_loopback());
        let e = Endpoint::parse("[::1]:6697", Security::Tls).expect("parses");
        assert_eq!(e.host, "::1");
        assert_eq!(e.key(), "[::1]:6697");
        assert!(e.is_loopback());
        assert_eq!(Endpoint::parse("::1", Security::Tls), Err(EndpointError::UnbracketedIpv6));
        assert!(matches!(Endpoint::parse("host:0", Security::Tls), Err(EndpointError::BadPort(_))));
        assert!(matches!(Endpoint::parse("host:x", Security::Tls), Err(EndpointError::BadPort(_))));
        assert_eq!(Endpoint::parse(" ", Security::Tls), Err(EndpointError::Empty));
        assert_eq!(Endpoint::parse("h", Security::Quic).expect("parses").port, 6697);
        assert!(!Endpoint::parse("10.0.0.1", Security::Tls).expect("parses").is_loopback());
    }
}
