//! IRC operators and administration as the core sees them: OPER (its password checked off the
//! core, through a request), KILL, WALLOPS, server-wide NOTICE, KLINE/UNKLINE, REHASH, and the
//! entry points the edge's admin console uses.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chinwag_core::{Config, ConnId, Failure, Operator, Request, Response};
use support::{expect, find, Harness};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn harness() -> Harness {
    let cfg = Config { opers: vec![Operator { name: "root".into(), password_hash: HASH.into() }], ..Config::default() };
    Harness::with_config(cfg)
}

/// A registered client connecting from `ip`.
fn register_from(h: &mut Harness, nick: &str, ip: [u8; 4], tls: bool) -> ConnId {
    let conn = h.connect_from(IpAddr::V4(Ipv4Addr::from(ip)), tls);
    h.send(conn, &format!("NICK {nick}"));
    h.send(conn, &format!("USER {nick} 0 * :{nick}"));
    assert!(h.take(conn).iter().any(|l| l.contains(" 001 ")), "{nick} registers");
    conn
}

/// Registers `nick` and makes it an operator.
fn oper(h: &mut Harness, nick: &str) -> ConnId {
    let conn = h.register(nick);
    h.send(conn, "OPER root swordfish");
    let (id, _) = h.next_request();
    h.respond(id, Response::Done(Ok(())));
    expect(&h.take(conn), "381");
    conn
}

#[test]
fn oper_checks_the_password_through_a_request_and_grants_operator_status() {
    let mut h = harness();
    let alice = h.register("alice");
    h.send(alice, "OPER ROOT swordfish");
    let (id, request) = h.next_request();
    assert_eq!(request, Request::VerifyPassword { phc: Some(HASH.into()), password: "swordfish".into() });
    assert!(h.take(alice).is_empty(), "nothing is said before the check");
    h.respond(id, Response::Done(Ok(())));
    let lines = h.take(alice);
    expect(&lines, "381");
    assert_eq!(expect(&lines, "MODE").params, ["alice", "+o"]);
    assert_eq!(h.server.counts().operators, 1);
    let users = h.server.users(h.now());
    assert_eq!(users.iter().find(|u| u.nick == "alice").and_then(|u| u.oper.clone()).as_deref(), Some("root"));
}

#[test]
fn a_wrong_password_or_unknown_name_gets_464_and_costs_the_same_check() {
    let mut h = harness();
    let alice = h.register("alice");
    h.send(alice, "OPER root guess");
    let (id, _) = h.next_request();
    h.respond(id, Response::Done(Err(Failure::BadPassword)));
    expect(&h.take(alice), "464");
    h.send(alice, "OPER nobody guess");
    let (id, request) = h.next_request();
    assert_eq!(request, Request::VerifyPassword { phc: None, password: "guess".into() });
    h.respond(id, Response::Done(Err(Failure::BadPassword)));
    expect(&h.take(alice), "464");
    h.send(alice, "KILL alice :x");
    expect(&h.take(alice), "481");
}

#[test]
fn oper_is_refused_over_plaintext_from_the_network() {
    let mut h = harness();
    let remote = register_from(&mut h, "remote", [203, 0, 113, 9], false);
    h.send(remote, "OPER root swordfish");
    let reply = expect(&h.take(remote), "491");
    assert!(reply.params[1].contains("TLS"), "{reply:?}");
    assert!(h.requests.is_empty(), "the password never left the core");
}

#[test]
fn only_operators_may_use_operator_commands() {
    let mut h = harness();
    let bob = h.register("bob");
    for line in ["KILL alice :x", "WALLOPS :hi", "KLINE 192.0.2.* :x", "UNKLINE 192.0.2.*", "REHASH", "NOTICE $* :hi"] {
        h.send(bob, line);
        expect(&h.take(bob), "481");
    }
    assert!(h.requests.is_empty());
}

#[test]
fn kill_disconnects_with_a_reason_everyone_sees() {
    let mut h = harness();
    let alice = oper(&mut h, "alice");
    let bob = h.register("bob");
    let carol = h.register("carol");
    h.send(bob, "JOIN #general");
    h.send(carol, "JOIN #general");
    h.clear(&[bob, carol]);
    h.send(alice, "KILL bob :spamming");
    let error = expect(&h.take(bob), "ERROR");
    assert!(error.params[0].contains("Killed (alice/root (spamming))"), "{error:?}");
    assert!(h.is_closed(bob));
    let quit = expect(&h.take(carol), "QUIT");
    assert!(quit.params[0].contains("Killed"), "{quit:?}");
    h.send(alice, "KILL nobody :x");
    expect(&h.take(alice), "401");
}

#[test]
fn wallops_reach_operators_only_and_server_notices_reach_everyone() {
    let mut h = harness();
    let alice = oper(&mut h, "alice");
    let dave = oper(&mut h, "dave");
    let bob = h.register("bob");
    h.send(alice, "WALLOPS :operators, look");
    assert_eq!(expect(&h.take(dave), "WALLOPS").params, ["operators, look"]);
    assert!(find(&h.take(bob), "WALLOPS").is_none());

    h.send(alice, "NOTICE $* :restart at noon");
    for conn in [bob, dave] {
        let notice = expect(&h.take(conn), "NOTICE");
        assert_eq!(notice.params, ["$*", "restart at noon"]);
        assert!(notice.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    }
    h.send(alice, "NOTICE $other.example :x");
    expect(&h.take(alice), "401");
    assert_eq!(h.server.announce("from the console", h.now()), 3);
    // The edge carries out the effects after any call; a zero tick makes the harness collect them.
    h.advance(Duration::ZERO);
    assert_eq!(expect(&h.take(bob), "NOTICE").params, ["bob", "from the console"]);
}

#[test]
fn klines_disconnect_matching_users_refuse_new_ones_and_expire() {
    let mut h = harness();
    let alice = oper(&mut h, "alice");
    let bob = register_from(&mut h, "bob", [10, 0, 0, 5], true);
    let version = h.server.klines_version();
    h.send(alice, "KLINE 10 10.0.0.* :go away");
    assert!(expect(&h.take(alice), "NOTICE").params[1].contains("1 disconnected"));
    assert!(expect(&h.take(bob), "ERROR").params[0].contains("K-Lined: go away"));
    assert!(h.is_closed(bob));
    assert_ne!(h.server.klines_version(), version, "the edge learns the bans changed");

    let again = h.connect_from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), true);
    let lines = h.take(again);
    expect(&lines, "465");
    expect(&lines, "ERROR");
    assert!(h.is_closed(again));
    let elsewhere = h.connect_from(IpAddr::V4(Ipv4Addr::new(10, 0, 1, 9)), true);
    assert!(!h.is_closed(elsewhere));

    h.advance(Duration::from_secs(11 * 60));
    assert!(h.server.klines().is_empty(), "a 10-minute ban expires");
    let later = h.connect_from(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 9)), true);
    assert!(!h.is_closed(later));

    h.send(alice, "KLINE *@10.0.0.* :again");
    h.take(alice);
    assert_eq!(h.server.klines()[0].mask, "10.0.0.*");
    h.send(alice, "UNKLINE 10.0.0.*");
    assert!(expect(&h.take(alice), "NOTICE").params[1].contains("Removed"));
    assert!(h.server.klines().is_empty());
    h.send(alice, "KLINE *.*");
    assert_eq!(expect(&h.take(alice), "FAIL").params[1], "INVALID_MASK");
}

#[test]
fn rehash_asks_the_edge_to_reload_and_reports_the_outcome() {
    let mut h = harness();
    let alice = oper(&mut h, "alice");
    h.send(alice, "REHASH");
    expect(&h.take(alice), "382");
    let (id, request) = h.next_request();
    assert_eq!(request, Request::Reload);
    h.respond(id, Response::Done(Err(Failure::Unavailable("line 3: unknown key".into()))));
    assert!(expect(&h.take(alice), "NOTICE").params[1].contains("Reload failed: line 3"));

    let mut cfg = h.server.config().clone();
    cfg.motd = vec!["a new day".into()];
    h.server.reconfigure(cfg);
    h.send(alice, "MOTD");
    assert!(h.take(alice).iter().any(|l| l.contains("a new day")));
}

#[test]
fn the_admin_console_sees_users_rooms_and_counts() {
    let mut h = harness();
    let alice = h.register("alice");
    h.send(alice, "JOIN #lounge");
    h.connect();
    let counts = h.server.counts();
    assert_eq!((counts.connections, counts.users, counts.rooms), (2, 1, 4));
    let rooms = h.server.rooms();
    assert_eq!(rooms.iter().find(|r| r.name == "#lounge").map(|r| r.members), Some(1));
    let users = h.server.users(h.now());
    assert_eq!(users.len(), 2);
    assert!(users.iter().any(|u| u.nick == "alice" && u.registered && u.channels == 1));
    assert!(h.server.kill("alice", "bye", "admin", h.now()));
    h.advance(Duration::ZERO);
    assert!(h.is_closed(alice));
    assert!(!h.server.kill("alice", "bye", "admin", h.now()));
}

#[test]
fn parallel_oper_attempts_are_counted_before_they_run() {
    let mut h = harness();
    let free = chinwag_core::Limits::default().login_free_failures as usize;
    let conns: Vec<ConnId> =
        (0..20).map(|i| register_from(&mut h, &format!("guess{i}"), [127, 0, 0, 2], false)).collect();
    for &c in &conns {
        h.send(c, "OPER root guess");
    }
    assert_eq!(h.requests.len(), free, "only the free attempts run at once");
    let refused = conns.iter().filter(|&&c| find(&h.take(c), "464").is_some_and(|m| m.params[1].contains("try again")));
    assert_eq!(refused.count(), 20 - free);
}

/// An IRC operator carries `*` in WHO's flags (after H/G, before room prefixes; in WHOX's `f`
/// too) and WHOIS says so with 313; others carry neither.
#[test]
fn who_and_whois_show_irc_operators() {
    let mut h = harness();
    let root = oper(&mut h, "root");
    let bob = h.register("bob");
    h.send(root, "JOIN #ops");
    h.send(bob, "JOIN #ops");
    h.clear(&[root, bob]);
    h.send(bob, "WHO #ops");
    let lines = h.take(bob);
    let flags = |nick: &str| {
        support::parsed(&lines)
            .into_iter()
            .find(|m| m.command == "352" && m.params[5] == nick)
            .map(|m| m.params[6].clone())
            .unwrap_or_else(|| panic!("no 352 for {nick}: {lines:#?}"))
    };
    assert_eq!(flags("root"), "H*@");
    assert_eq!(flags("bob"), "H");
    h.send(bob, "WHO root %tnf,42");
    assert_eq!(expect(&h.take(bob), "354").params[1..], ["42", "root", "H*"]);
    h.send(bob, "WHOIS root");
    let lines = h.take(bob);
    assert_eq!(expect(&lines, "313").params[1..], ["root", "is an IRC operator"]);
    h.send(root, "WHOIS bob");
    assert!(find(&h.take(root), "313").is_none(), "bob is no operator");
}
