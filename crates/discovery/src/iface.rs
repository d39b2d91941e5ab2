//! The host's network interfaces, as far as discovery cares: which ones the operator allows,
//! their addresses and prefixes (to tell whether a source is on one of those networks).

use std::io;
use std::net::{IpAddr, SocketAddr};

/// One address of one interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LocalNet {
    pub name: String,
    pub index: Option<u32>,
    pub ip: IpAddr,
    pub prefix_len: u8,
}

/// The addresses of the interfaces named in `allowed`, or, when it is empty, of every
/// non-loopback interface. Loopback is left out by default because multicast there only
/// reaches this host, which the unicast status query already covers.
pub(crate) fn local_nets(allowed: &[String]) -> io::Result<Vec<LocalNet>> {
    let mut nets = Vec::new();
    for i in if_addrs::get_if_addrs()? {
        let keep = if allowed.is_empty() { !i.is_loopback() } else { allowed.contains(&i.name) };
        if !keep {
            continue;
        }
        let (ip, prefix_len) = match &i.addr {
            if_addrs::IfAddr::V4(a) => (IpAddr::V4(a.ip), a.prefixlen),
            if_addrs::IfAddr::V6(a) => (IpAddr::V6(a.ip), a.prefixlen),
        };
        nets.push(LocalNet { name: i.name, index: i.index, ip, prefix_len });
    }
    Ok(nets)
}

/// Whether a datagram from `src` may be answered: it must come from loopback or from an
/// address on one of the allowed networks (an IPv6 link-local source: through an allowed
/// interface), and must not claim an address nobody can answer to (unspecified, multicast,
/// broadcast, port 0). Forged sources still pass if they look local; the rate limits and the
/// size rule bound what they can draw.
pub(crate) fn source_allowed(nets: &[LocalNet], src: &SocketAddr) -> bool {
    if !source_answerable(src) {
        return false;
    }
    match src {
        SocketAddr::V4(v4) => {
            let ip = *v4.ip();
            if ip.is_loopback() {
                return true;
            }
            nets.iter().any(|n| match n.ip {
                IpAddr::V4(net) => {
                    let mask = u32::MAX.checked_shl(32 - u32::from(n.prefix_len.min(32))).unwrap_or(0);
                    let broadcast = (u32::from(net) & mask) | !mask;
                    let same = u32::from(net) & mask == u32::from(ip) & mask;
                    same && (n.prefix_len >= 31 || u32::from(ip) != broadcast)
                }
                IpAddr::V6(_) => false,
            })
        }
        SocketAddr::V6(v6) => {
            let ip = *v6.ip();
            if ip.is_loopback() {
                return true;
            }
            if ip.segments()[0] & 0xffc0 == 0xfe80 {
                return v6.scope_id() != 0 && nets.iter().any(|n| n.ip.is_ipv6() && n.index == Some(v6.scope_id()));
            }
            nets.iter().any(|n| match n.ip {
                IpAddr::V6(net) => {
                    let mask = u128::MAX.checked_shl(128 - u32::from(n.prefix_len.min(128))).unwrap_or(0);
                    u128::from(net) & mask == u128::from(ip) & mask
                }
                IpAddr::V4(_) => false,
            })
        }
    }
}

/// Whether anything can be sent back to `src` at all: not unspecified, multicast, broadcast
/// or port 0 (such sources are forged or broken).
pub(crate) fn source_answerable(src: &SocketAddr) -> bool {
    let ip = src.ip();
    let broadcast = matches!(ip, IpAddr::V4(v4) if v4.is_broadcast());
    src.port() != 0 && !ip.is_unspecified() && !ip.is_multicast() && !broadcast
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(ip: &str, prefix_len: u8, index: u32) -> LocalNet {
        LocalNet { name: "eth0".into(), index: Some(index), ip: ip.parse().expect("ip"), prefix_len }
    }

    fn ok(nets: &[LocalNet], src: &str) -> bool {
        source_allowed(nets, &src.parse().expect("socket address"))
    }

    #[test]
    fn only_local_networks_and_loopback_are_answered() {
        let nets = [net("192.168.1.10", 24, 2), net("2001:db8::1", 64, 2)];
        assert!(ok(&nets, "192.168.1.77:5000"));
        assert!(ok(&nets, "127.0.0.1:5000"));
        assert!(ok(&nets, "[::1]:5000"));
        assert!(ok(&nets, "[2001:db8::99]:5000"));
        assert!(!ok(&nets, "192.168.2.77:5000"), "another network");
        assert!(!ok(&nets, "8.8.8.8:53"));
        assert!(!ok(&nets, "[2001:db9::1]:5000"));
        assert!(!ok(&nets, "192.168.1.255:5000"), "the subnet's broadcast address");
        assert!(!ok(&nets, "255.255.255.255:5000"));
        assert!(!ok(&nets, "0.0.0.0:5000"));
        assert!(!ok(&nets, "224.1.1.1:5000"));
        assert!(!ok(&nets, "192.168.1.77:0"), "nobody can be answered at port 0");
    }

    #[test]
    fn link_local_sources_must_come_through_an_allowed_interface() {
        let nets = [net("fe80::1", 64, 2)];
        assert!(ok(&nets, "[fe80::2%2]:5000"));
        assert!(!ok(&nets, "[fe80::2%3]:5000"));
        assert!(!ok(&nets, "[fe80::2]:5000"));
    }
}
