//! An IP address or a CIDR range (`10.0.0.0/8`, `fd00::/8`), for `web.trusted_proxies`: a
//! dozen lines of our own rather than a dependency for one comparison.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// Addresses sharing the first `prefix` bits of `net`; a single address is a range of one.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct IpRange {
    /// The network, with the bits past the prefix cleared.
    net: IpAddr,
    /// Bits that must match: at most 32 for IPv4, 128 for IPv6.
    prefix: u8,
}

impl IpRange {
    /// Whether `ip` is in the range. An IPv4-mapped IPv6 address (`::ffff:10.1.2.3`) counts as
    /// the IPv4 address it carries, as it does for the connection limits.
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => masked(u32::from(ip).into(), self.prefix, 32) == u32::from(net).into(),
            (IpAddr::V6(net), IpAddr::V6(ip)) => masked(u128::from(ip), self.prefix, 128) == u128::from(net),
            _ => false,
        }
    }
}

/// `bits` (the low `width` bits of it) with everything past the first `prefix` cleared.
fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
    let prefix = u32::from(prefix.min(width));
    let drop = u32::from(width) - prefix;
    bits.checked_shr(drop).and_then(|b| b.checked_shl(drop)).unwrap_or(0)
}

impl From<IpAddr> for IpRange {
    fn from(ip: IpAddr) -> Self {
        let ip = ip.to_canonical();
        IpRange { net: ip, prefix: if ip.is_ipv4() { 32 } else { 128 } }
    }
}

/// Why a text is not an [`IpRange`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadIpRange;

impl FromStr for IpRange {
    type Err = BadIpRange;

    /// `ADDR` or `ADDR/PREFIX`; the address's bits past the prefix must be zero
    /// (`10.1.0.0/8` is refused: it is most likely a typo for `/16`).
    fn from_str(text: &str) -> Result<Self, BadIpRange> {
        let text = text.trim();
        let Some((addr, prefix)) = text.split_once('/') else {
            return text.parse::<IpAddr>().map(IpRange::from).map_err(|_| BadIpRange);
        };
        let ip = addr.parse::<IpAddr>().map_err(|_| BadIpRange)?.to_canonical();
        if prefix.is_empty() || prefix.len() > 3 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(BadIpRange);
        }
        let prefix: u8 = prefix.parse().map_err(|_| BadIpRange)?;
        let (bits, width) = match ip {
            IpAddr::V4(v4) => (u128::from(u32::from(v4)), 32),
            IpAddr::V6(v6) => (u128::from(v6), 128),
        };
        if prefix > width || masked(bits, prefix, width) != bits {
            return Err(BadIpRange);
        }
        Ok(IpRange { net: ip, prefix })
    }
}

impl fmt::Display for IpRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let single = if self.net.is_ipv4() { 32 } else { 128 };
        if self.prefix == single {
            write!(f, "{}", self.net)
        } else {
            write!(f, "{}/{}", self.net, self.prefix)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(text: &str) -> IpRange {
        text.parse().unwrap_or_else(|_| panic!("{text} parses"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("ip")
    }

    #[test]
    fn ranges_contain_their_addresses_and_nothing_else() {
        let ten = range("10.0.0.0/8");
        assert!(ten.contains(ip("10.0.0.0")) && ten.contains(ip("10.255.255.255")));
        assert!(ten.contains(ip("::ffff:10.1.2.3")), "an IPv4-mapped address counts as IPv4");
        assert!(!ten.contains(ip("11.0.0.0")) && !ten.contains(ip("9.255.255.255")));
        assert!(!ten.contains(ip("::a00:1")), "IPv6 is never in an IPv4 range");
        let ula = range("fd00::/8");
        assert!(ula.contains(ip("fd12:3456::1")) && !ula.contains(ip("fe80::1")) && !ula.contains(ip("10.0.0.1")));
        let all = range("0.0.0.0/0");
        assert!(all.contains(ip("203.0.113.9")) && !all.contains(ip("2001:db8::1")));
        assert!(range("::/0").contains(ip("2001:db8::1")));
        let one = range("192.0.2.7");
        assert!(one.contains(ip("192.0.2.7")) && !one.contains(ip("192.0.2.6")));
        assert!(range("192.0.2.7/32").contains(ip("192.0.2.7")) && !range("192.0.2.7/32").contains(ip("192.0.2.8")));
        assert!(
            range("2001:db8::/127").contains(ip("2001:db8::1")) && !range("2001:db8::/127").contains(ip("2001:db8::2"))
        );
        assert_eq!(range("::ffff:10.0.0.1"), range("10.0.0.1"));
        assert_eq!(range("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(range("::1").to_string(), "::1");
    }

    #[test]
    fn malformed_ranges_are_refused() {
        for bad in [
            "",
            "/8",
            "10.0.0.0/",
            "10.0.0.0/33",
            "fd00::/129",
            "10.1.0.0/8",
            "10.0.0.0/+8",
            "10.0.0.0/ 8",
            "10.0.0.0/8/8",
            "10.0.0.0/0008",
            "example.org/8",
            "10.0.0/8",
            "fd00::/-1",
        ] {
            assert_eq!(bad.parse::<IpRange>(), Err(BadIpRange), "{bad:?}");
        }
    }
}
