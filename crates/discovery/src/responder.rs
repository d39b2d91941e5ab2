//! The server side: answers probes that arrive by multicast (discovery) or unicast (status
//! query) on one UDP port, and optionally announces itself now and then.
//!
//! Each datagram goes through the same gate before anything is sent back: at most
//! [`MAX_DATAGRAM`] bytes, our magic and version, a probe (answers and announcements from other
//! servers are ignored), a source on an allowed network, a token in the per-source and global
//! buckets. The answer is then built to fit in as many bytes as the probe had.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, SockRef, Socket, Type};
use tokio::net::UdpSocket;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::iface::{self, LocalNet};
use crate::limit::{Limiter, RateLimits};
use crate::wire::{self, Answer, AnswerKind, Listener, Packet, Room, FINGERPRINT_LEN, MAX_DATAGRAM};
use crate::{DEFAULT_GROUP_V4, DEFAULT_GROUP_V6, DEFAULT_PORT};

/// Discovery settings of a server.
#[derive(Debug, Clone, PartialEq)]
pub struct ResponderConfig {
    /// Off: no socket is opened at all.
    pub enabled: bool,
    /// UDP port for probes and status queries.
    pub port: u16,
    /// Multicast groups to join (IPv4 and IPv6 mixed). Add [`crate::LEGACY_GROUP_V4`] for
    /// older setups that probe 224.1.1.1.
    pub groups: Vec<IpAddr>,
    /// Interfaces to answer on, by name; empty means every non-loopback interface. Probes from
    /// other networks are ignored (loopback is always answered: it is this host).
    pub interfaces: Vec<String>,
    /// Also answer sources outside the allowed interfaces' networks (status queries across a
    /// router or VPN). Off by default: the room list stays on the LAN. The rate limits and the
    /// size rule apply all the same.
    pub answer_remote: bool,
    /// Send an announcement to the groups this often; `None` (the default) never.
    pub announce_every: Option<Duration>,
    /// How often the interfaces are listed again, to join the groups on new ones.
    pub interface_refresh: Duration,
    pub limits: RateLimits,
}

impl Default for ResponderConfig {
    fn default() -> Self {
        ResponderConfig {
            enabled: true,
            port: DEFAULT_PORT,
            groups: vec![IpAddr::V4(DEFAULT_GROUP_V4), IpAddr::V6(DEFAULT_GROUP_V6)],
            interfaces: Vec::new(),
            answer_remote: false,
            announce_every: None,
            interface_refresh: Duration::from_secs(30),
            limits: RateLimits::default(),
        }
    }
}

impl ResponderConfig {
    /// Discovery turned off.
    pub fn off() -> Self {
        ResponderConfig { enabled: false, ..ResponderConfig::default() }
    }
}

/// What does not change while a server runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerInfo {
    pub name: String,
    pub version: String,
    /// Every listener; loopback ones are shown only to askers on loopback.
    pub listeners: Vec<Listener>,
    pub fingerprint: Option<[u8; FINGERPRINT_LEN]>,
}

/// What changes: published by the server (its hub) through a `watch` channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Live {
    /// Public rooms only (never secret ones), most members first.
    pub rooms: Vec<Room>,
    pub users_online: u32,
}

/// What the responder did with the datagrams it received, for monitoring and tests. Counters
/// only grow.
#[derive(Debug, Default)]
pub struct Stats {
    /// Probes answered.
    pub answered: AtomicU64,
    /// Datagrams that were not a probe of our format and version (foreign, malformed, too
    /// large, or another server's answer).
    pub ignored: AtomicU64,
    /// Probes from a source that cannot or may not be answered (outside the allowed networks,
    /// port 0, broadcast, …).
    pub refused_source: AtomicU64,
    /// Probes over the per-source or global rate.
    pub rate_limited: AtomicU64,
    /// Probes too small to hold even an answer without rooms.
    pub too_small: AtomicU64,
}

impl Stats {
    fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A bound responder; [`Responder::run`] serves until cancelled.
#[derive(Debug)]
pub struct Responder {
    v4: Option<UdpSocket>,
    v6: Option<UdpSocket>,
    port: u16,
    cfg: ResponderConfig,
    info: ServerInfo,
    live: watch::Receiver<Live>,
    nets: Vec<LocalNet>,
    limiter: Limiter,
    /// Random per process, so a client lists a server once however many ways it answered.
    instance: u64,
    stats: Arc<Stats>,
}

impl Responder {
    /// Opens the sockets and joins the groups on the allowed interfaces. Fails only if no
    /// socket at all can be bound; a group that cannot be joined on one interface is logged.
    pub fn bind(cfg: &ResponderConfig, info: ServerInfo, live: watch::Receiver<Live>) -> io::Result<Responder> {
        let nets = iface::local_nets(&cfg.interfaces)?;
        if nets.is_empty() {
            tracing::warn!(interfaces = ?cfg.interfaces, "no allowed interface has an address: discovery answers loopback only");
        }
        let mut port = cfg.port;
        let v4 = match bind_v4(cfg, port, &nets) {
            Ok(s) => {
                port = s.local_addr()?.port();
                Some(s)
            }
            Err(e) => {
                tracing::warn!(error = %e, "discovery: no IPv4 socket");
                None
            }
        };
        // Always tried, even without an IPv6 group: status queries may come over IPv6.
        let v6 = match bind_v6(cfg, port, &nets) {
            Ok(s) => {
                port = s.local_addr()?.port();
                Some(s)
            }
            Err(e) => {
                tracing::debug!(error = %e, "discovery: no IPv6 socket");
                None
            }
        };
        if v4.is_none() && v6.is_none() {
            return Err(io::Error::other(format!("cannot bind UDP port {} for discovery", cfg.port)));
        }
        Ok(Responder {
            v4,
            v6,
            port,
            cfg: cfg.clone(),
            info,
            live,
            nets,
            limiter: Limiter::new(cfg.limits, Instant::now()),
            instance: rand::random(),
            stats: Arc::default(),
        })
    }

    /// Counters of what the responder did; they keep counting after it is spawned.
    pub fn stats(&self) -> Arc<Stats> {
        Arc::clone(&self.stats)
    }

    /// The UDP port actually bound.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Answers until `shutdown` is cancelled.
    pub async fn run(mut self, shutdown: CancellationToken) {
        let mut buf4 = vec![0u8; MAX_DATAGRAM + 1];
        let mut buf6 = vec![0u8; MAX_DATAGRAM + 1];
        let every = self.cfg.announce_every.unwrap_or(Duration::from_secs(3600)).max(Duration::from_secs(1));
        let mut announce = tokio::time::interval(every);
        announce.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let refresh_every = self.cfg.interface_refresh.max(Duration::from_millis(10));
        let mut refresh = tokio::time::interval_at(tokio::time::Instant::now() + refresh_every, refresh_every);
        loop {
            let (n, src, from_v4) = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = recv(self.v4.as_ref(), &mut buf4) => match r {
                    Ok((n, src)) => (n, src, true),
                    Err(e) => { tracing::debug!(error = %e, "discovery: receive failed"); continue }
                },
                r = recv(self.v6.as_ref(), &mut buf6) => match r {
                    Ok((n, src)) => (n, src, false),
                    Err(e) => { tracing::debug!(error = %e, "discovery: receive failed"); continue }
                },
                _ = announce.tick(), if self.cfg.announce_every.is_some() => {
                    self.announce().await;
                    continue;
                }
                _ = refresh.tick() => {
                    self.refresh_interfaces();
                    continue;
                }
            };
            let data = if from_v4 { &buf4[..n] } else { &buf6[..n] };
            let Some(answer) = self.answer_for(data, src, Instant::now()) else { continue };
            let socket = if from_v4 { self.v4.as_ref() } else { self.v6.as_ref() };
            if let Some(socket) = socket {
                if let Err(e) = socket.send_to(&answer, src).await {
                    tracing::debug!(%src, error = %e, "discovery: answer not sent");
                }
            }
        }
        tracing::debug!("discovery responder stopped");
    }

    /// Interfaces come and go (a laptop joins a network): join the groups on new addresses and
    /// answer their networks from now on.
    fn refresh_interfaces(&mut self) {
        let nets = match iface::local_nets(&self.cfg.interfaces) {
            Ok(nets) => nets,
            Err(e) => {
                tracing::debug!(error = %e, "discovery: cannot list interfaces");
                return;
            }
        };
        let added: Vec<LocalNet> = nets.iter().filter(|n| !self.nets.contains(n)).cloned().collect();
        if !added.is_empty() {
            if let Some(s) = &self.v4 {
                join_v4(&SockRef::from(s), &self.cfg.groups, &added);
            }
            if let Some(s) = &self.v6 {
                join_v6(&SockRef::from(s), &self.cfg.groups, &added);
            }
        }
        self.nets = nets;
    }

    /// The gate and the answer: `None` for anything that is not a probe we may answer.
    fn answer_for(&mut self, data: &[u8], src: SocketAddr, now: Instant) -> Option<Vec<u8>> {
        let probe = match wire::decode(data) {
            Ok(Packet::Probe(p)) => p,
            Ok(Packet::Answer(_)) => {
                Stats::count(&self.stats.ignored);
                return None;
            }
            Err(e) => {
                tracing::debug!(%src, len = data.len(), error = %e, "discovery: ignored a datagram");
                Stats::count(&self.stats.ignored);
                return None;
            }
        };
        if !iface::source_answerable(&src) || !(self.cfg.answer_remote || iface::source_allowed(&self.nets, &src)) {
            tracing::debug!(%src, "discovery: ignored a probe from outside the allowed networks");
            Stats::count(&self.stats.refused_source);
            return None;
        }
        if !self.limiter.allow(src.ip(), now) {
            tracing::debug!(%src, "discovery: rate limited");
            Stats::count(&self.stats.rate_limited);
            return None;
        }
        let answer = self.build(AnswerKind::Reply, probe.nonce, probe.first_room, src.ip().is_loopback());
        // Never more bytes than the probe: answering cannot amplify a forged request.
        let Some((bytes, _)) = answer.encode(data.len()) else {
            Stats::count(&self.stats.too_small);
            return None;
        };
        Stats::count(&self.stats.answered);
        Some(bytes)
    }

    fn build(&self, kind: AnswerKind, nonce: u64, first_room: u16, to_loopback: bool) -> Answer {
        let live = self.live.borrow();
        let first = usize::from(first_room).min(live.rooms.len());
        Answer {
            kind,
            nonce,
            instance: self.instance,
            name: self.info.name.clone(),
            version: self.info.version.clone(),
            fingerprint: self.info.fingerprint,
            users_online: live.users_online,
            listeners: self
                .info
                .listeners
                .iter()
                .filter(|l| to_loopback || !l.addr.ip().is_loopback())
                .copied()
                .collect(),
            rooms_total: u16::try_from(live.rooms.len()).unwrap_or(u16::MAX),
            first_room,
            rooms: live.rooms[first..].iter().take(wire::MAX_ROOMS_PER_DATAGRAM).cloned().collect(),
        }
    }

    /// Sends an announcement to every group on every allowed interface.
    async fn announce(&self) {
        let Some((bytes, _)) = self.build(AnswerKind::Announce, 0, 0, false).encode(MAX_DATAGRAM) else { return };
        for group in &self.cfg.groups {
            for net in &self.nets {
                let (socket, dest) = match (group, net.ip) {
                    (IpAddr::V4(g), IpAddr::V4(ip)) => {
                        let Some(s) = self.v4.as_ref() else { continue };
                        if SockRef::from(s).set_multicast_if_v4(&ip).is_err() {
                            continue;
                        }
                        (s, SocketAddr::new(IpAddr::V4(*g), self.port))
                    }
                    (IpAddr::V6(g), IpAddr::V6(_)) => {
                        let (Some(s), Some(index)) = (self.v6.as_ref(), net.index) else { continue };
                        if SockRef::from(s).set_multicast_if_v6(index).is_err() {
                            continue;
                        }
                        (s, SocketAddr::V6(std::net::SocketAddrV6::new(*g, self.port, 0, index)))
                    }
                    _ => continue,
                };
                if let Err(e) = socket.send_to(&bytes, dest).await {
                    tracing::debug!(interface = %net.name, %dest, error = %e, "discovery: announcement not sent");
                }
            }
        }
    }
}

/// Waits for a datagram on `socket`, or forever if there is none.
async fn recv(socket: Option<&UdpSocket>, buf: &mut [u8]) -> io::Result<(usize, SocketAddr)> {
    match socket {
        Some(s) => s.recv_from(buf).await,
        None => std::future::pending().await,
    }
}

/// A UDP socket on `addr` that other processes may bind too (several servers on one host all
/// receive the multicast probes).
fn shared_socket(addr: SocketAddr) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(socket)
}

fn bind_v4(cfg: &ResponderConfig, port: u16, nets: &[LocalNet]) -> io::Result<UdpSocket> {
    let socket = shared_socket(SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port))?;
    socket.set_multicast_loop_v4(true)?;
    join_v4(&socket, &cfg.groups, nets);
    UdpSocket::from_std(socket.into())
}

fn bind_v6(cfg: &ResponderConfig, port: u16, nets: &[LocalNet]) -> io::Result<UdpSocket> {
    let socket = shared_socket(SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port))?;
    socket.set_multicast_loop_v6(true)?;
    join_v6(&socket, &cfg.groups, nets);
    UdpSocket::from_std(socket.into())
}

/// Joins the IPv4 groups on the IPv4 addresses of `nets`; failures are logged, not fatal.
fn join_v4(socket: &Socket, groups: &[IpAddr], nets: &[LocalNet]) {
    for group in groups.iter().filter_map(|g| match g {
        IpAddr::V4(g) => Some(g),
        IpAddr::V6(_) => None,
    }) {
        for net in nets {
            let IpAddr::V4(ip) = net.ip else { continue };
            match socket.join_multicast_v4(group, &ip) {
                Ok(()) => tracing::debug!(%group, interface = %net.name, "discovery: joined"),
                // A second address on the same interface: already joined there.
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                Err(e) => tracing::warn!(%group, interface = %net.name, error = %e, "discovery: cannot join"),
            }
        }
    }
}

/// Joins the IPv6 groups on every interface of `nets` that has an IPv6 address.
fn join_v6(socket: &Socket, groups: &[IpAddr], nets: &[LocalNet]) {
    let mut indexes: Vec<(u32, &str)> =
        nets.iter().filter(|n| n.ip.is_ipv6()).filter_map(|n| Some((n.index?, n.name.as_str()))).collect();
    indexes.sort_unstable();
    indexes.dedup_by_key(|(i, _)| *i);
    for group in groups.iter().filter_map(|g| match g {
        IpAddr::V6(g) => Some(g),
        IpAddr::V4(_) => None,
    }) {
        for (index, name) in &indexes {
            match socket.join_multicast_v6(group, *index) {
                Ok(()) => tracing::debug!(%group, interface = %name, "discovery: joined"),
                Err(e) if e.kind() == io::ErrorKind::AddrInUse => {}
                Err(e) => tracing::warn!(%group, interface = %name, error = %e, "discovery: cannot join"),
            }
        }
    }
}
