//! Discovery end to end through real multicast: a server namespace and a client namespace joined
//! by a veth pair (10.77.0.1 ↔ 10.77.0.2), made by each test and removed when it ends. Needs
//! root (CI has it); without it they fail and say so, since a skip would hide a CI that lost it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use chinwag_discovery::netns;
use chinwag_discovery::wire::{self, Answer, AnswerKind, Packet, Probe, MAX_DATAGRAM};
use chinwag_discovery::{
    DiscoverOptions, Listener, Live, RateLimits, Responder, ResponderConfig, Room, ServerInfo, Stats, StatusError,
    Transport, DEFAULT_PORT,
};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

const SERVER_IP: &str = netns::Lan::SERVER_IP;
const CLIENT_IP: &str = netns::Lan::CLIENT_IP;
/// How long a test waits for any one datagram before failing.
const WAIT: Duration = Duration::from_secs(3);

struct Lan {
    net: netns::Lan,
    rt: tokio::runtime::Runtime,
    stop: CancellationToken,
}

impl Lan {
    fn new(tag: &str) -> Lan {
        assert!(netns::available(), "these tests need root and iproute2 to create network namespaces");
        let net = netns::Lan::new(tag).expect("namespaces joined by a veth pair");
        // Built in the server's namespace: its worker threads (where the server's tasks run,
        // listing interfaces among other things) are in there too.
        let rt = net.server.run(|| {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
        });
        Lan { net, rt, stop: CancellationToken::new() }
    }

    /// Binds a responder in the server namespace and runs it on the runtime until the test ends.
    /// Its counters are returned (the snapshot stays as given: the sender is dropped).
    fn responder(&self, cfg: ResponderConfig, info: ServerInfo, live: Live) -> Arc<Stats> {
        let (_tx, rx) = watch::channel(live);
        let handle = self.rt.handle().clone();
        let responder = self
            .net
            .server
            .run(move || {
                let _guard = handle.enter();
                Responder::bind(&cfg, info, rx)
            })
            .expect("responder binds");
        let stats = responder.stats();
        self.rt.spawn(responder.run(self.stop.clone()));
        stats
    }

    /// Runs an async block on a thread in the client namespace.
    fn client<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
        let handle = self.rt.handle().clone();
        self.net.client.run(move || handle.block_on(f))
    }
}

impl Drop for Lan {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

fn info(name: &str) -> ServerInfo {
    ServerInfo {
        name: name.into(),
        version: "0.1.0".into(),
        listeners: vec![
            Listener { transport: Transport::Tls, addr: "0.0.0.0:6697".parse().expect("addr") },
            Listener { transport: Transport::Plaintext, addr: "127.0.0.1:6667".parse().expect("addr") },
        ],
        fingerprint: Some([0x5A; 32]),
    }
}

fn rooms(n: usize) -> Live {
    let rooms = (0..n)
        .map(|i| Room {
            name: format!("#room{i}"),
            topic: format!("topic number {i}"),
            members: (n - i) as u32,
            invite_only: false,
            key_required: false,
        })
        .collect();
    Live { rooms, users_online: 12 }
}

fn quick(timeout_ms: u64) -> DiscoverOptions {
    DiscoverOptions { timeout: Duration::from_millis(timeout_ms), loopback: false, ..DiscoverOptions::default() }
}

fn server(port: u16) -> SocketAddr {
    SocketAddr::new(SERVER_IP.parse().expect("ip"), port)
}

/// A blocking socket in the client namespace, for hand-made datagrams. Must be called inside
/// `Lan::cli.run`.
fn raw_socket(ip: &str) -> UdpSocket {
    let s = UdpSocket::bind((ip, 0)).expect("bind");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    s
}

/// Receives until the answer to `nonce` arrives; returns every datagram received before it and
/// that answer. The responder handles datagrams in order, so anything it sent for earlier
/// datagrams has arrived by then: no waiting for an absence.
fn until_answer(s: &UdpSocket, nonce: u64) -> (Vec<Vec<u8>>, Answer) {
    let mut before = Vec::new();
    let mut buf = vec![0u8; 2048];
    for _ in 0..100 {
        let (n, _) = s.recv_from(&mut buf).expect("an answer within the wait");
        match wire::decode(&buf[..n]) {
            Ok(Packet::Answer(a)) if a.nonce == nonce => return (before, a),
            _ => before.push(buf[..n].to_vec()),
        }
    }
    panic!("no answer to {nonce} among 100 datagrams");
}

#[test]
fn two_servers_on_the_lan_are_found_at_once() {
    let lan = Lan::new("two");
    lan.responder(ResponderConfig::default(), info("alpha.lan"), rooms(3));
    lan.responder(ResponderConfig::default(), info("beta.lan"), Live::default());
    let found = lan.client(async { chinwag_discovery::discover_with(&quick(600)).await.expect("discover") });
    let names: Vec<&str> = found.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["alpha.lan", "beta.lan"], "{found:#?}");
    let alpha = &found[0];
    assert_eq!(alpha.from.ip(), SERVER_IP.parse::<IpAddr>().expect("ip"));
    assert_eq!(alpha.tls_addr(), Some(format!("{SERVER_IP}:6697").parse().expect("addr")), "0.0.0.0 resolved");
    assert_eq!(alpha.listeners.len(), 1, "the loopback listener is not shown to the LAN: {:?}", alpha.listeners);
    assert_eq!(alpha.fingerprint.as_deref(), Some(wire::fingerprint_hex(&[0x5A; 32]).as_str()));
    assert_eq!(alpha.users_online, 12);
    assert_eq!(alpha.rooms_total, 3);
    assert_eq!(alpha.rooms[0].name, "#room0");
    assert_eq!(alpha.rooms[0].topic, "topic number 0");
    assert_eq!(alpha.rooms[0].members, 3);
}

#[test]
fn bad_datagrams_are_ignored_and_the_server_keeps_answering() {
    let lan = Lan::new("bad");
    let stats = lan.responder(ResponderConfig::default(), info("alpha.lan"), rooms(2));
    let before = lan.client(async {
        let s = raw_socket(CLIENT_IP);
        let to = server(DEFAULT_PORT);
        let probe = Probe { nonce: 7, first_room: 0 }.encode();
        let mut oversized = probe.clone();
        oversized.resize(MAX_DATAGRAM + 100, 0);
        let mut foreign = probe.clone();
        foreign[..4].copy_from_slice(b"SSDP");
        let mut newer = probe.clone();
        newer[4] = wire::VERSION + 1;
        let mut unknown_kind = probe.clone();
        unknown_kind[5] = 0x7f;
        let spoofed_answer = Answer {
            kind: AnswerKind::Reply,
            nonce: 7,
            instance: 1,
            name: "mallory".into(),
            version: "x".into(),
            fingerprint: None,
            users_online: 0,
            listeners: vec![],
            rooms_total: 0,
            first_room: 0,
            rooms: vec![],
        };
        let (answer_bytes, _) = spoofed_answer.encode(MAX_DATAGRAM).expect("fits");
        let (announce_bytes, _) =
            Answer { kind: AnswerKind::Announce, nonce: 0, ..spoofed_answer }.encode(MAX_DATAGRAM).expect("fits");
        let garbage: Vec<u8> = (0..900u32).map(|i| (i * 7919 % 251) as u8).collect();
        for bad in [
            &oversized[..],
            &foreign,
            &newer,
            &unknown_kind,
            &answer_bytes,
            &announce_bytes,
            &garbage,
            &probe[..10],
            &[],
        ] {
            s.send_to(bad, to).expect("send");
        }
        let legit = Probe { nonce: 8, first_room: 0 }.encode();
        s.send_to(&legit, to).expect("send");
        let (before, answer) = until_answer(&s, 8);
        assert_eq!(answer.name, "alpha.lan");
        assert_eq!(answer.rooms.len(), 2);
        before
    });
    assert!(before.is_empty(), "{} datagram(s) answered bad input", before.len());
    assert_eq!(stats.ignored.load(Relaxed), 9, "every bad datagram was seen and ignored");
    assert_eq!(stats.answered.load(Relaxed), 1);
}

#[test]
fn an_answer_is_never_larger_than_its_probe() {
    let lan = Lan::new("ratio");
    let cfg =
        ResponderConfig { limits: RateLimits { per_source_burst: 100, ..RateLimits::default() }, ..Default::default() };
    let stats = lan.responder(cfg, info("alpha.lan"), rooms(200));
    let sizes = lan.client(async {
        let s = raw_socket(CLIENT_IP);
        let mut sizes = Vec::new();
        // 16 bytes cannot hold even the answer without rooms: no answer at all.
        s.send_to(&Probe { nonce: 1, first_room: 0 }.encode_padded(16), server(DEFAULT_PORT)).expect("send");
        for (i, len) in [150usize, 300, 600, 900, 1200].into_iter().enumerate() {
            let nonce = 10 + i as u64;
            s.send_to(&Probe { nonce, first_room: 0 }.encode_padded(len), server(DEFAULT_PORT)).expect("send");
            let mut buf = vec![0u8; 2048];
            let (n, _) = s.recv_from(&mut buf).expect("an answer");
            let Ok(Packet::Answer(a)) = wire::decode(&buf[..n]) else { panic!("not an answer") };
            assert_eq!(a.nonce, nonce, "the 16-byte probe was answered");
            sizes.push((len, n, a.rooms.len()));
        }
        sizes
    });
    for (probe, answer, _) in &sizes {
        assert!(answer <= probe, "a {probe}-byte probe drew {answer} bytes: {sizes:?}");
    }
    let kept: Vec<usize> = sizes.iter().map(|s| s.2).collect();
    assert!(kept.windows(2).all(|w| w[0] < w[1]), "bigger probes get more rooms: {sizes:?}");
    assert_eq!(stats.too_small.load(Relaxed), 1, "the 16-byte probe");
    println!("probe bytes → answer bytes (rooms): {sizes:?}");
}

#[test]
fn answers_are_rate_limited_per_source() {
    let lan = Lan::new("rate");
    lan.net.client.ip(&["addr", "add", "10.77.0.3/24", "dev", &lan.net.client_if]).expect("second address");
    let limits = RateLimits { per_source_burst: 3, per_source_per_sec: 0.01, ..RateLimits::default() };
    let stats = lan.responder(ResponderConfig { limits, ..Default::default() }, info("alpha.lan"), rooms(1));
    let answered = lan.client(async {
        let flooder = raw_socket(CLIENT_IP);
        for nonce in 1..=10 {
            flooder.send_to(&Probe { nonce, first_room: 0 }.encode(), server(DEFAULT_PORT)).expect("send");
        }
        // Another source still gets its answer; once it has, every answer to the flood is here.
        let other = raw_socket("10.77.0.3");
        other.send_to(&Probe { nonce: 99, first_room: 0 }.encode(), server(DEFAULT_PORT)).expect("send");
        let (before, _) = until_answer(&other, 99);
        assert!(before.is_empty());
        flooder.set_nonblocking(true).expect("nonblocking");
        let mut buf = vec![0u8; 2048];
        let mut answered = 0;
        while flooder.recv_from(&mut buf).is_ok() {
            answered += 1;
        }
        answered
    });
    assert_eq!(answered, 3, "the flooding source got more than its burst");
    assert_eq!(stats.rate_limited.load(Relaxed), 7);
}

#[test]
fn status_fetches_every_page_of_rooms_by_unicast() {
    let lan = Lan::new("stat");
    lan.responder(ResponderConfig::default(), info("alpha.lan"), rooms(150));
    let found = lan.client(async {
        chinwag_discovery::status(&format!("{SERVER_IP}:{DEFAULT_PORT}"), WAIT).await.expect("status answers")
    });
    assert_eq!(found.name, "alpha.lan");
    assert_eq!(found.rooms_total, 150);
    let names: Vec<String> = found.rooms.iter().map(|r| r.name.clone()).collect();
    let expected: Vec<String> = (0..150).map(|i| format!("#room{i}")).collect();
    assert_eq!(names, expected, "every room once, in order");
    let silent =
        lan.client(async { chinwag_discovery::status(&format!("{SERVER_IP}:9"), Duration::from_millis(300)).await });
    assert!(matches!(silent, Err(StatusError::NoAnswer { .. })), "{silent:?}");
}

#[test]
fn only_allowed_interfaces_are_answered() {
    let lan = Lan::new("ifs");
    let cfg = ResponderConfig { interfaces: vec!["lo".into()], ..Default::default() };
    lan.responder(cfg, info("alpha.lan"), rooms(1));
    let from_lan = lan.client(async { chinwag_discovery::discover_with(&quick(400)).await.expect("discover") });
    assert!(from_lan.is_empty(), "answered on an interface it was not allowed: {from_lan:?}");
    let handle = lan.rt.handle().clone();
    let local = lan
        .net
        .server
        .run(move || handle.block_on(chinwag_discovery::status("127.0.0.1", WAIT)).expect("loopback is answered"));
    assert_eq!(local.name, "alpha.lan");
    assert!(
        local.listeners.iter().any(|l| l.addr == "127.0.0.1:6667".parse().expect("addr")),
        "loopback listeners are shown to loopback: {:?}",
        local.listeners
    );
}

#[test]
fn announcements_reach_the_group_when_turned_on() {
    let lan = Lan::new("ann");
    let cfg = ResponderConfig { announce_every: Some(Duration::from_secs(1)), ..Default::default() };
    let handle = lan.rt.handle().clone();
    // A listener in the client namespace joins the group before the server starts announcing.
    let listener = lan.net.client.run(move || {
        let _g = handle.enter();
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::DGRAM, None).expect("socket");
        s.set_reuse_address(true).expect("reuse");
        s.bind(&SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)).into()).expect("bind");
        s.join_multicast_v4(&chinwag_discovery::DEFAULT_GROUP_V4, &CLIENT_IP.parse().expect("ip")).expect("join");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        UdpSocket::from(s)
    });
    lan.responder(cfg, info("alpha.lan"), rooms(1));
    let mut buf = vec![0u8; 2048];
    let (n, from) = listener.recv_from(&mut buf).expect("an announcement");
    let Ok(Packet::Answer(a)) = wire::decode(&buf[..n]) else { panic!("not an announcement") };
    assert_eq!(a.kind, AnswerKind::Announce);
    assert_eq!(a.name, "alpha.lan");
    assert_eq!(from.ip(), SERVER_IP.parse::<IpAddr>().expect("ip"));
}

#[test]
fn discovery_works_over_ipv6_too() {
    let lan = Lan::new("six");
    lan.net.server.ip(&["addr", "add", "fd00:77::1/64", "dev", &lan.net.server_if]).expect("v6 address");
    lan.net.client.ip(&["addr", "add", "fd00:77::2/64", "dev", &lan.net.client_if]).expect("v6 address");
    netns::wait_ipv6_ready(&lan.net.server, &lan.net.server_if).expect("server's IPv6 usable");
    netns::wait_ipv6_ready(&lan.net.client, &lan.net.client_if).expect("client's IPv6 usable");
    let mut info = info("alpha.lan");
    info.listeners.push(Listener { transport: Transport::Tls, addr: "[::]:6697".parse().expect("addr") });
    lan.responder(ResponderConfig::default(), info, rooms(1));
    let options = DiscoverOptions { groups: vec![IpAddr::V6(chinwag_discovery::DEFAULT_GROUP_V6)], ..quick(600) };
    let found = lan.client(async move { chinwag_discovery::discover_with(&options).await.expect("discover") });
    assert_eq!(found.len(), 1, "{found:#?}");
    let from = found[0].from;
    assert!(from.is_ipv6(), "answered over IPv6: {from}");
    assert_eq!(found[0].tls_addr().map(|a| a.ip()), Some(from.ip()), "[::] resolved: {:?}", found[0].listeners);
}

#[test]
fn a_network_that_appears_later_is_answered_after_a_refresh() {
    let lan = Lan::new("late");
    let cfg = ResponderConfig { interface_refresh: Duration::from_millis(100), ..Default::default() };
    lan.responder(cfg, info("alpha.lan"), rooms(1));
    let late = netns::Netns::new("latec").expect("namespace");
    netns::link(&lan.net.server, "10.78.0.1/24", &late, "10.78.0.2/24").expect("veth pair");
    let handle = lan.rt.handle().clone();
    let found = late.run(move || {
        handle.block_on(async {
            for _ in 0..10 {
                let found = chinwag_discovery::discover_with(&quick(300)).await.expect("discover");
                if !found.is_empty() {
                    return found;
                }
            }
            Vec::new()
        })
    });
    assert_eq!(found.len(), 1, "the server never joined the group on its new interface");
    assert_eq!(found[0].from.ip(), "10.78.0.1".parse::<IpAddr>().expect("ip"));
}

#[test]
fn sources_beyond_the_lan_are_answered_only_when_allowed() {
    for answer_remote in [false, true] {
        let lan = Lan::new(if answer_remote { "rem1" } else { "rem0" });
        // A source on another network, routed through the link (as across a router).
        lan.net.client.ip(&["addr", "add", "10.99.0.2/24", "dev", &lan.net.client_if]).expect("address");
        lan.net.server.ip(&["route", "add", "10.99.0.0/24", "dev", &lan.net.server_if]).expect("route");
        let stats = lan.responder(ResponderConfig { answer_remote, ..Default::default() }, info("alpha.lan"), rooms(1));
        let remote_answered = lan.client(async {
            let remote = raw_socket("10.99.0.2");
            remote.send_to(&Probe { nonce: 1, first_room: 0 }.encode(), server(DEFAULT_PORT)).expect("send");
            // The LAN source's answer comes after any answer to the remote one.
            let local = raw_socket(CLIENT_IP);
            local.send_to(&Probe { nonce: 2, first_room: 0 }.encode(), server(DEFAULT_PORT)).expect("send");
            until_answer(&local, 2);
            remote.set_nonblocking(true).expect("nonblocking");
            let mut buf = vec![0u8; 2048];
            remote.recv_from(&mut buf).is_ok()
        });
        assert_eq!(remote_answered, answer_remote, "answer_remote = {answer_remote}");
        assert_eq!(stats.refused_source.load(Relaxed), u64::from(!answer_remote));
    }
}

/// An IPv4 packet carrying a UDP datagram, with whatever source we like (sent through a raw
/// socket: the kernel fills in the IP checksum).
fn forged_udp(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else { panic!("IPv4 only") };
    let udp_len = (8 + payload.len()) as u16;
    let total = 20 + udp_len;
    let mut p = vec![0x45, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0, 0, 0x40, 0, 64, 17, 0, 0]);
    p.extend_from_slice(&s.octets());
    p.extend_from_slice(&d.octets());
    p.extend_from_slice(&src.port().to_be_bytes());
    p.extend_from_slice(&dst.port().to_be_bytes());
    p.extend_from_slice(&udp_len.to_be_bytes());
    p.extend_from_slice(&[0, 0]); // no UDP checksum (allowed over IPv4)
    p.extend_from_slice(payload);
    p
}

#[test]
fn probes_with_forged_unanswerable_sources_are_refused() {
    let lan = Lan::new("forge");
    let stats = lan.responder(ResponderConfig::default(), info("alpha.lan"), rooms(1));
    let before = lan.client(async {
        let raw = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::RAW, Some(socket2::Protocol::UDP))
            .expect("raw socket");
        raw.set_header_included_v4(true).expect("IP_HDRINCL");
        let to = server(DEFAULT_PORT);
        let probe = Probe { nonce: 1, first_room: 0 }.encode();
        // Port 0 (nobody can be answered there) from a LAN address; the kernel itself drops
        // martian sources such as broadcast or 0.0.0.0 before they reach any socket.
        let port_zero = SocketAddr::new(IpAddr::V4(CLIENT_IP.parse::<Ipv4Addr>().expect("ip")), 0);
        raw.send_to(&forged_udp(port_zero, to, &probe), &SocketAddr::new(to.ip(), 0).into()).expect("send");
        let s = raw_socket(CLIENT_IP);
        s.send_to(&Probe { nonce: 2, first_room: 0 }.encode(), to).expect("send");
        until_answer(&s, 2).0
    });
    assert!(before.is_empty());
    assert_eq!(stats.refused_source.load(Relaxed), 1, "the forged probe reached the responder and was refused");
    assert_eq!(stats.answered.load(Relaxed), 1);
}

#[test]
fn status_works_over_ipv6_even_with_ipv4_groups_only() {
    let lan = Lan::new("st6");
    let cfg = ResponderConfig { groups: vec![IpAddr::V4(chinwag_discovery::DEFAULT_GROUP_V4)], ..Default::default() };
    lan.responder(cfg, info("alpha.lan"), rooms(1));
    let handle = lan.rt.handle().clone();
    let found = lan.net.server.run(move || handle.block_on(chinwag_discovery::status("[::1]", WAIT)));
    let found = found.expect("answered over IPv6 loopback");
    assert_eq!(found.name, "alpha.lan");
    assert!(found.from.is_ipv6());
}

#[test]
fn status_accepts_a_host_name() {
    let lan = Lan::new("name");
    lan.responder(ResponderConfig::default(), info("alpha.lan"), rooms(1));
    let handle = lan.rt.handle().clone();
    let found = lan.net.server.run(move || handle.block_on(chinwag_discovery::status("localhost", WAIT)));
    assert_eq!(found.expect("answered").name, "alpha.lan");
}
