//! The asking side: [`discover`] probes the LAN by multicast, [`status`] asks one server.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
use std::time::Duration;

use serde::Serialize;
use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::time::Instant;

use crate::wire::{self, Answer, AnswerKind, Listener, Packet, Probe, Room, MAX_DATAGRAM};
use crate::{DEFAULT_GROUP_V4, DEFAULT_GROUP_V6, DEFAULT_PORT};

/// Servers listed at most by one discovery (answers beyond are ignored).
pub const MAX_FOUND: usize = 256;
/// Pages a status query asks for at most (each page is one answer of up to 1200 bytes).
pub const MAX_STATUS_PAGES: usize = 16;
/// Addresses of one host name a status query tries at most.
const MAX_ADDRESSES: usize = 4;
/// Discovery sends its probe this many times (multicast on Wi-Fi loses datagrams).
const PROBE_ROUNDS: u32 = 2;

/// A server that answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Found {
    /// Where the answer came from.
    pub from: SocketAddr,
    /// Random per server process (several answers from one server are merged on it).
    #[serde(skip)]
    pub instance: u64,
    pub name: String,
    pub version: String,
    /// SHA-256 of the TLS certificate as `AB:CD:…`, for pinning. Discovery is unauthenticated:
    /// a client must never let it override a fingerprint it already pinned.
    pub fingerprint: Option<String>,
    pub users_online: u32,
    /// Listeners with unspecified addresses replaced by the address the answer came from.
    pub listeners: Vec<Listener>,
    /// Public rooms on the server, possibly more than `rooms` holds.
    pub rooms_total: u16,
    pub rooms: Vec<Room>,
}

impl Found {
    fn from_answer(a: Answer, from: SocketAddr) -> Found {
        Found {
            from,
            instance: a.instance,
            name: a.name,
            version: a.version,
            fingerprint: a.fingerprint.as_ref().map(wire::fingerprint_hex),
            users_online: a.users_online,
            listeners: a.listeners.into_iter().filter_map(|l| resolve(l, from)).collect(),
            rooms_total: a.rooms_total,
            rooms: a.rooms,
        }
    }

    /// Adds what another answer of the same server says about how to reach it. A server
    /// shows its loopback listeners only to probes from loopback, so the answer to the
    /// multicast probe (from a LAN address of this host) may list nothing for a server bound
    /// to 127.0.0.1 alone, while the answer to the unicast probe on loopback lists them: the
    /// listeners of a transport the first answer had none of are taken from the later one
    /// (with its source, when the first answer gave no way in at all).
    fn merge(&mut self, other: Found) {
        if self.listeners.is_empty() && !other.listeners.is_empty() {
            self.from = other.from;
        }
        let known: Vec<wire::Transport> = self.listeners.iter().map(|l| l.transport).collect();
        self.listeners.extend(other.listeners.into_iter().filter(|l| !known.contains(&l.transport)));
    }

    /// The first TLS listener, where a client should connect.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.listeners.iter().find(|l| l.transport == wire::Transport::Tls).map(|l| l.addr)
    }
}

/// Replaces an unspecified address by the answer's source; drops one of the other family.
fn resolve(l: Listener, from: SocketAddr) -> Option<Listener> {
    if !l.addr.ip().is_unspecified() {
        return Some(l);
    }
    if l.addr.is_ipv4() != from.is_ipv4() {
        return None;
    }
    let addr = match from {
        SocketAddr::V6(v6) => SocketAddr::V6(SocketAddrV6::new(*v6.ip(), l.addr.port(), 0, v6.scope_id())),
        SocketAddr::V4(v4) => SocketAddr::new(IpAddr::V4(*v4.ip()), l.addr.port()),
    };
    Some(Listener { transport: l.transport, addr })
}

/// How to look for servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoverOptions {
    /// How long to collect answers.
    pub timeout: Duration,
    pub port: u16,
    /// Groups to probe (IPv4 and IPv6).
    pub groups: Vec<IpAddr>,
    /// Interfaces to probe on, by name; empty means all of them.
    pub interfaces: Vec<String>,
    /// Also probe this host by unicast on loopback, so a server here is found even where
    /// loopback carries no multicast.
    pub loopback: bool,
}

impl Default for DiscoverOptions {
    fn default() -> Self {
        DiscoverOptions {
            timeout: Duration::from_secs(2),
            port: DEFAULT_PORT,
            groups: vec![IpAddr::V4(DEFAULT_GROUP_V4), IpAddr::V6(DEFAULT_GROUP_V6)],
            interfaces: Vec::new(),
            loopback: true,
        }
    }
}

/// Probes the LAN with the default options and lists the servers that answered within
/// `timeout`, sorted by name.
pub async fn discover(timeout: Duration) -> io::Result<Vec<Found>> {
    discover_with(&DiscoverOptions { timeout, ..DiscoverOptions::default() }).await
}

/// [`discover`] with every option.
pub async fn discover_with(opts: &DiscoverOptions) -> io::Result<Vec<Found>> {
    let v4 = udp_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0)).ok();
    let v6 = udp_socket(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0)).ok();
    if v4.is_none() && v6.is_none() {
        return Err(io::Error::other("cannot open a UDP socket"));
    }
    let nonce = nonzero_nonce();
    let probe = Probe { nonce, first_room: 0 }.encode();
    let interfaces: Vec<if_addrs::Interface> = if_addrs::get_if_addrs()?
        .into_iter()
        .filter(|i| opts.interfaces.is_empty() || opts.interfaces.contains(&i.name))
        .collect();
    let deadline = Instant::now() + opts.timeout;
    let mut found: Vec<Found> = Vec::new();
    let (mut buf4, mut buf6) = (vec![0u8; MAX_DATAGRAM + 1], vec![0u8; MAX_DATAGRAM + 1]);
    for round in 0..PROBE_ROUNDS {
        send_probes(opts, &interfaces, v4.as_ref(), v6.as_ref(), &probe).await;
        let round_end = if round + 1 == PROBE_ROUNDS { deadline } else { Instant::now() + opts.timeout / 4 };
        while found.len() < MAX_FOUND {
            let got = tokio::select! {
                _ = tokio::time::sleep_until(round_end) => break,
                r = recv(v4.as_ref(), &mut buf4) => r.map(|(n, src)| (buf4[..n].to_vec(), src)),
                r = recv(v6.as_ref(), &mut buf6) => r.map(|(n, src)| (buf6[..n].to_vec(), src)),
            };
            let Ok((data, src)) = got else { continue };
            if let Some(answer) = accept(&data, nonce) {
                let answer = Found::from_answer(answer, src);
                match found.iter_mut().find(|f| f.instance == answer.instance) {
                    Some(known) => known.merge(answer),
                    None => found.push(answer),
                }
            }
        }
    }
    found.sort_by(|a, b| a.name.cmp(&b.name).then(a.from.cmp(&b.from)));
    Ok(found)
}

/// One probe to every group on every interface of its family, and to loopback by unicast.
async fn send_probes(
    opts: &DiscoverOptions,
    interfaces: &[if_addrs::Interface],
    v4: Option<&UdpSocket>,
    v6: Option<&UdpSocket>,
    probe: &[u8],
) {
    let mut v6_indexes: Vec<u32> = interfaces.iter().filter(|i| i.ip().is_ipv6()).filter_map(|i| i.index).collect();
    v6_indexes.sort_unstable();
    v6_indexes.dedup();
    for group in &opts.groups {
        match (group, v4, v6) {
            (IpAddr::V4(g), Some(s), _) => {
                for i in interfaces {
                    let IpAddr::V4(ip) = i.ip() else { continue };
                    if SockRef::from(s).set_multicast_if_v4(&ip).is_ok() {
                        let _ = s.send_to(probe, SocketAddr::new(IpAddr::V4(*g), opts.port)).await;
                    }
                }
            }
            (IpAddr::V6(g), _, Some(s)) => {
                for index in &v6_indexes {
                    if SockRef::from(s).set_multicast_if_v6(*index).is_ok() {
                        let dest = SocketAddrV6::new(*g, opts.port, 0, *index);
                        let _ = s.send_to(probe, SocketAddr::V6(dest)).await;
                    }
                }
            }
            _ => {}
        }
    }
    if opts.loopback {
        if let Some(s) = v4 {
            let _ = s.send_to(probe, SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), opts.port)).await;
        }
        if let Some(s) = v6 {
            let _ = s.send_to(probe, SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), opts.port)).await;
        }
    }
}

/// Why a status query gave nothing.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("cannot resolve {host}: {source}")]
    Resolve { host: String, source: io::Error },
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("no answer from {addr} within {timeout:?} (is discovery on there, and is UDP port {port} reachable?)", port = addr.port())]
    NoAnswer { addr: SocketAddr, timeout: Duration },
}

/// Asks one server, by unicast, for everything it announces (all pages of its room list, as
/// many as [`MAX_STATUS_PAGES`] and the server's rate limit allow). `host` is a name or address
/// with an optional `:port` (default 12348; IPv6 as `[addr]:port`).
pub async fn status(host: &str, timeout: Duration) -> Result<Found, StatusError> {
    let addrs = resolve_host(host).await?;
    // A name with several addresses (`localhost`: ::1 and 127.0.0.1): each is tried in turn,
    // with an equal share of the time.
    let share = timeout / u32::try_from(addrs.len()).unwrap_or(1).max(1);
    let mut last = None;
    for addr in addrs {
        match status_addr(addr, share).await {
            Ok(found) => return Ok(found),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| StatusError::Resolve {
        host: host.to_owned(),
        source: io::Error::new(io::ErrorKind::NotFound, "no address"),
    }))
}

/// [`status`] for an address already resolved.
pub async fn status_addr(addr: SocketAddr, timeout: Duration) -> Result<Found, StatusError> {
    let local = match addr {
        SocketAddr::V4(_) => SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0),
        SocketAddr::V6(_) => SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 0),
    };
    let socket = udp_socket(local)?;
    // Connected: the kernel drops datagrams from anyone but the server asked.
    socket.connect(addr).await?;
    let deadline = Instant::now() + timeout;
    let mut result: Option<Found> = None;
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    for _page in 0..MAX_STATUS_PAGES {
        let first_room = result.as_ref().map_or(0, |f| f.rooms.len());
        let Ok(first_room) = u16::try_from(first_room) else { break };
        let Some(answer) = ask_page(&socket, first_room, deadline, &mut buf).await else { break };
        let page_len = answer.rooms.len();
        match &mut result {
            None => result = Some(Found::from_answer(answer, addr)),
            Some(f) => f.rooms.extend(answer.rooms),
        }
        let Some(f) = &result else { break };
        if page_len == 0 || f.rooms.len() >= usize::from(f.rooms_total) {
            break;
        }
    }
    result.ok_or(StatusError::NoAnswer { addr, timeout })
}

/// One page: the probe is sent up to three times, a third of the remaining time apart.
async fn ask_page(socket: &UdpSocket, first_room: u16, deadline: Instant, buf: &mut [u8]) -> Option<Answer> {
    let nonce = nonzero_nonce();
    let probe = Probe { nonce, first_room }.encode();
    for attempt in 0..3u32 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        let _ = socket.send(&probe).await;
        let until = Instant::now() + left / (3 - attempt);
        loop {
            let got = tokio::select! {
                _ = tokio::time::sleep_until(until) => break,
                r = socket.recv(buf) => r,
            };
            let Ok(n) = got else { continue };
            if let Some(answer) = accept(&buf[..n], nonce) {
                if answer.first_room == first_room {
                    return Some(answer);
                }
            }
        }
    }
    None
}

/// An answer to our probe, or nothing (foreign datagrams, announcements, stale nonces).
fn accept(data: &[u8], nonce: u64) -> Option<Answer> {
    match wire::decode(data) {
        Ok(Packet::Answer(a)) if a.kind == AnswerKind::Reply && a.nonce == nonce => Some(a),
        _ => None,
    }
}

/// The addresses to ask, at most [`MAX_ADDRESSES`] of them.
async fn resolve_host(host: &str) -> Result<Vec<SocketAddr>, StatusError> {
    let err = |source| StatusError::Resolve { host: host.to_owned(), source };
    if let Ok(addr) = host.parse::<SocketAddr>() {
        return Ok(vec![addr]);
    }
    if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>() {
        return Ok(vec![SocketAddr::new(ip, DEFAULT_PORT)]);
    }
    let target = match host.rsplit_once(':') {
        Some((name, port)) if port.parse::<u16>().is_ok() => format!("{name}:{port}"),
        _ => format!("{host}:{DEFAULT_PORT}"),
    };
    let mut addrs: Vec<SocketAddr> = tokio::net::lookup_host(target).await.map_err(err)?.collect();
    addrs.dedup();
    addrs.truncate(MAX_ADDRESSES);
    if addrs.is_empty() {
        return Err(err(io::Error::new(io::ErrorKind::NotFound, "no address")));
    }
    Ok(addrs)
}

async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

fn udp_socket(addr: SocketAddr) -> io::Result<UdpSocket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    UdpSocket::from_std(socket.into())
}

/// Zero is what announcements carry; a probe never uses it.
fn nonzero_nonce() -> u64 {
    rand::random::<u64>().max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Transport;

    fn found(from: &str, listeners: &[(Transport, &str)]) -> Found {
        Found {
            from: from.parse().expect("addr"),
            instance: 7,
            name: "here".into(),
            version: "1".into(),
            fingerprint: None,
            users_online: 0,
            listeners: listeners
                .iter()
                .map(|(t, a)| Listener { transport: *t, addr: a.parse().expect("addr") })
                .collect(),
            rooms_total: 0,
            rooms: Vec::new(),
        }
    }

    #[test]
    fn a_later_answer_on_loopback_gives_a_server_on_loopback_its_address() {
        // The multicast answer came first, from the LAN address of this host: nothing shown.
        let mut known = found("192.0.2.2:12348", &[]);
        known.merge(found("127.0.0.1:12348", &[(Transport::Tls, "127.0.0.1:6697")]));
        assert_eq!(known.tls_addr(), Some("127.0.0.1:6697".parse().expect("addr")));
        assert_eq!(known.from, "127.0.0.1:12348".parse().expect("addr"));
    }

    #[test]
    fn a_server_reachable_on_the_lan_keeps_its_lan_listeners() {
        let mut known = found("192.0.2.2:12348", &[(Transport::Tls, "192.0.2.2:6697")]);
        known.merge(found(
            "127.0.0.1:12348",
            &[(Transport::Tls, "127.0.0.1:6697"), (Transport::Quic, "127.0.0.1:6697")],
        ));
        assert_eq!(known.tls_addr(), Some("192.0.2.2:6697".parse().expect("addr")));
        assert_eq!(known.from, "192.0.2.2:12348".parse().expect("addr"));
        assert_eq!(known.listeners.len(), 2, "QUIC, which the LAN answer lacked, is added: {known:?}");
    }
}
