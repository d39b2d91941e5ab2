//! LAN discovery from a real server: what it announces follows its rooms (secret ones never),
//! its users and its certificate; with discovery off nothing answers. Each test makes a server
//! namespace and a client namespace joined by a veth pair (needs root, as CI has; without it
//! they fail and say so).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use chinwag_discovery::netns::{self, Lan};
use chinwag_discovery::{DiscoverOptions, Found, RateLimits, ResponderConfig, StatusError, Transport};
use support::{start_server, Client, WAIT};

struct Net {
    lan: Lan,
    rt: tokio::runtime::Runtime,
}

impl Net {
    fn new(tag: &str) -> Net {
        assert!(netns::available(), "these tests need root and iproute2 to create network namespaces");
        let lan = Lan::new(tag).expect("namespaces joined by a veth pair");
        // Built in the server's namespace: its worker threads (where the server's tasks run,
        // listing interfaces among other things) are in there too.
        let rt = lan.server.run(|| {
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
        });
        Net { lan, rt }
    }

    /// Runs `f` to completion on a thread in the server's namespace (sockets opened there
    /// belong to it, and keep working afterwards from anywhere).
    fn in_server<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
        let handle = self.rt.handle().clone();
        self.lan.server.run(move || handle.block_on(f))
    }

    fn in_client<T: Send + 'static>(&self, f: impl std::future::Future<Output = T> + Send + 'static) -> T {
        let handle = self.rt.handle().clone();
        self.lan.client.run(move || handle.block_on(f))
    }

    /// Asks the server by unicast until what it says satisfies `pred` (it publishes once a
    /// second), or fails after [`WAIT`].
    fn status_until(&self, port: u16, what: &str, pred: impl Fn(&Found) -> bool + Send + 'static) -> Found {
        let addr = SocketAddr::new(Lan::SERVER_IP.parse().expect("ip"), port);
        let what = what.to_owned();
        self.in_client(async move {
            let deadline = tokio::time::Instant::now() + WAIT;
            let mut last = None;
            while tokio::time::Instant::now() < deadline {
                if let Ok(found) = chinwag_discovery::status_addr(addr, Duration::from_secs(1)).await {
                    if pred(&found) {
                        return found;
                    }
                    last = Some(found);
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            panic!("the server never said {what}; last answer: {last:#?}");
        })
    }
}

fn room<'a>(found: &'a Found, name: &str) -> Option<&'a chinwag_discovery::Room> {
    found.rooms.iter().find(|r| r.name == name)
}

#[test]
fn a_server_announces_public_rooms_users_and_fingerprint_but_never_secret_rooms() {
    let net = Net::new("srv");
    let (server, _dir, mut alice, _bob) = net.in_server(async {
        let (server, dir) = start_server(|cfg| {
            cfg.tls_listen = vec!["0.0.0.0:0".parse().expect("addr")];
            // Polling below asks more often than a person would.
            let limits = RateLimits { per_source_burst: 1000, ..RateLimits::default() };
            cfg.discovery = ResponderConfig { limits, ..ResponderConfig::default() };
        })
        .await;
        let mut alice = Client::plain(server.plaintext[0], "alice").await;
        alice.register("alice").await;
        let mut bob = Client::tls(server.tls[0], &server.fingerprint, "bob").await;
        bob.register("bob").await;
        alice.join("#public").await;
        alice.send("TOPIC #public :come \x02in\x02").await;
        alice.expect_command("TOPIC").await;
        alice.join("#hidden").await;
        alice.send("MODE #hidden +s").await;
        alice.expect_command("MODE").await;
        (server, dir, alice, bob)
    });
    let port = server.discovery_port.expect("discovery is on");
    let found = net.status_until(port, "#public with its member and two users online", |f| {
        f.users_online == 2 && room(f, "#public").is_some_and(|r| r.members == 1)
    });
    assert!(room(&found, "#hidden").is_none(), "a secret room was announced: {:?}", found.rooms);
    assert_eq!(room(&found, "#public").map(|r| r.topic.as_str()), Some("come in"), "formatting removed");
    assert!(room(&found, "#general").is_some(), "the default rooms are public");
    assert_eq!(found.rooms.len(), usize::from(found.rooms_total));
    assert_eq!(found.fingerprint.as_deref(), Some(server.fingerprint.as_str()));
    let tls = SocketAddr::new(Lan::SERVER_IP.parse().expect("ip"), server.tls[0].port());
    assert_eq!(found.tls_addr(), Some(tls), "0.0.0.0 is resolved to the address that answered");
    assert!(
        found.listeners.iter().all(|l| l.transport != Transport::Plaintext),
        "a loopback listener was shown to the LAN: {:?}",
        found.listeners
    );

    // The same server is found by multicast.
    let options = DiscoverOptions { timeout: Duration::from_millis(500), loopback: false, ..Default::default() };
    let all = net.in_client(async move { chinwag_discovery::discover_with(&options).await.expect("discover") });
    assert_eq!(all.len(), 1, "{all:#?}");
    assert_eq!(all[0].name, found.name);

    // A room that turns secret disappears from the announcements.
    net.rt.block_on(async {
        alice.send("MODE #public +s").await;
        alice.expect_command("MODE").await;
    });
    net.status_until(port, "#public gone once secret", |f| room(f, "#public").is_none());
    let stats = server.discovery_stats.as_ref().expect("counters");
    assert!(stats.answered.load(std::sync::atomic::Ordering::Relaxed) >= 3, "{stats:?}");
    net.rt.block_on(server.shutdown());
}

#[test]
fn with_discovery_off_nothing_answers() {
    let net = Net::new("off");
    let (server, _dir) = net.in_server(start_server(|cfg| {
        cfg.tls_listen = vec!["0.0.0.0:0".parse().expect("addr")];
        cfg.discovery = ResponderConfig::off();
    }));
    assert_eq!(server.discovery_port, None);
    let addr = SocketAddr::new(Lan::SERVER_IP.parse().expect("ip"), chinwag_discovery::DEFAULT_PORT);
    let (status, found) = net.in_client(async move {
        let status = chinwag_discovery::status_addr(addr, Duration::from_millis(300)).await;
        let options = DiscoverOptions { timeout: Duration::from_millis(300), loopback: false, ..Default::default() };
        (status, chinwag_discovery::discover_with(&options).await.expect("discover"))
    });
    assert!(matches!(status, Err(StatusError::NoAnswer { .. })), "{status:?}");
    assert!(found.is_empty(), "{found:#?}");
    net.rt.block_on(server.shutdown());
}

#[test]
fn a_server_on_loopback_only_is_found_on_loopback_with_an_address_and_shows_the_lan_none() {
    let net = Net::new("lo");
    let (server, _dir) = net.in_server(start_server(|cfg| {
        // The defaults of start_server: every listener on 127.0.0.1, nothing on the veth.
        let limits = RateLimits { per_source_burst: 1000, ..RateLimits::default() };
        cfg.discovery = ResponderConfig { limits, ..ResponderConfig::default() };
    }));
    assert!(server.tls[0].ip().is_loopback());
    // On the server's host: the multicast probe leaves by the veth (and is answered without
    // loopback listeners, its source being the veth's address), the unicast one by loopback.
    // The server is listed once, with the loopback listeners, and a client gets in there.
    let (fingerprint, tls) = (server.fingerprint.clone(), server.tls[0]);
    let here = net.in_server(async move {
        let options = DiscoverOptions { timeout: Duration::from_millis(500), ..Default::default() };
        let found = chinwag_discovery::discover_with(&options).await.expect("discover");
        if let Some(addr) = found.first().and_then(Found::tls_addr) {
            let mut carol = Client::tls(addr, &fingerprint, "carol").await;
            carol.register("carol").await;
        }
        found
    });
    assert_eq!(here.len(), 1, "{here:#?}");
    assert_eq!(here[0].tls_addr(), Some(tls), "{here:#?}");
    assert!(here[0].from.ip().is_loopback(), "the address came from the loopback answer: {here:#?}");

    // From the LAN, by multicast or by unicast: the server is there, its loopback listeners are
    // not.
    let options = DiscoverOptions { timeout: Duration::from_millis(500), loopback: false, ..Default::default() };
    let lan = net.in_client(async move { chinwag_discovery::discover_with(&options).await.expect("discover") });
    assert_eq!(lan.len(), 1, "{lan:#?}");
    assert!(lan[0].listeners.is_empty(), "a loopback listener was shown to the LAN: {lan:#?}");
    let port = server.discovery_port.expect("discovery is on");
    let status = net.status_until(port, "anything", |_| true);
    assert!(status.listeners.is_empty(), "a loopback listener was shown to the LAN: {status:#?}");
    net.rt.block_on(server.shutdown());
}
