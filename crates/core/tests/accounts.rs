//! Accounts as the core sees them: SASL PLAIN, REGISTER, NickServ, PASS logins, throttling,
//! the plaintext rule, nick protection. The test plays the edge, answering the core's requests.

mod support;

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use chinwag_core::{ConnId, Failure, Request, Response};
use support::{expect, find, parsed, sasl_plain, Harness};

const NETWORK_IP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));

#[test]
fn sasl_plain_logs_in_before_registration() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "CAP LS 302");
    let ls = expect(&h.take(c), "CAP");
    assert!(ls.params.last().is_some_and(|l| l.contains("sasl=PLAIN")), "{ls:?}");
    h.send(c, "CAP REQ :sasl");
    h.send(c, "NICK alice");
    h.send(c, "USER alice 0 * :Alice");
    h.send(c, "AUTHENTICATE PLAIN");
    let lines = h.take(c);
    assert_eq!(parsed(&lines).last().map(|m| m.to_line()), Some("AUTHENTICATE +".into()));
    h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "correct horse")));
    let (id, req) = h.next_request();
    assert_eq!(req, Request::CheckPassword { account: "alice".into(), password: "correct horse".into() });
    assert!(h.take(c).is_empty(), "nothing is said until the password is checked");
    h.respond(id, Response::Account(Ok("alice".into())));
    let lines = h.take(c);
    assert_eq!(expect(&lines, "900").params[2], "alice");
    expect(&lines, "903");
    h.send(c, "CAP END");
    expect(&h.take(c), "001");
    let (_, req) = h.next_request();
    assert!(matches!(req, Request::Offline { ref account, .. } if account == "alice"), "{req:?}");
}

#[test]
fn wrong_passwords_are_throttled_per_account_and_address() {
    let mut h = Harness::new();
    let c = h.register("mallory");
    for _ in 0..3 {
        h.send(c, "AUTHENTICATE PLAIN");
        h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
        let (id, _) = h.next_request();
        h.respond(id, Response::Account(Err(Failure::BadPassword)));
        let fail = expect(&h.take(c), "904");
        assert!(fail.params[1].contains("Invalid account name or password"));
    }
    h.send(c, "AUTHENTICATE PLAIN");
    h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
    assert!(h.requests.is_empty(), "a throttled attempt never reaches the password check");
    assert!(expect(&h.take(c), "904").params[1].contains("try again in"));
    h.advance(Duration::from_secs(2));
    h.send(c, "AUTHENTICATE PLAIN");
    h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
    assert_eq!(h.requests.len(), 1, "after the delay the address may try again");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Err(Failure::BadPassword)));
    // The same address trying another account: an address may be shared, so it has more
    // failures to spend over all accounts than on one.
    let d = h.register("bob");
    h.send(d, "NS IDENTIFY bobby hunter22");
    assert_eq!(h.requests.len(), 1, "another account from a shared address is not slowed yet");
}

/// Registered clients from `addresses` (cycled), `per_address` each.
fn clients_from(h: &mut Harness, addresses: &[IpAddr], per_address: usize) -> Vec<(ConnId, IpAddr)> {
    let mut conns = Vec::new();
    for (i, &ip) in addresses.iter().cycle().take(addresses.len() * per_address).enumerate() {
        let c = h.connect_from(ip, false);
        h.send(c, &format!("NICK guesser{i}"));
        h.send(c, "USER g 0 * :g");
        assert!(find(&h.take(c), "001").is_some());
        conns.push((c, ip));
    }
    conns
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

fn check_password_requests(h: &Harness) -> usize {
    h.requests.iter().filter(|(_, r)| matches!(r, Request::CheckPassword { .. })).count()
}

#[test]
fn parallel_attempts_from_many_connections_are_counted_before_they_run() {
    let limits = chinwag_core::Limits::default();
    let free = limits.login_free_failures as usize;
    // 50 connections from one address, each sending its guess before any answer comes.
    let mut h = Harness::new();
    let conns = clients_from(&mut h, &[loopback(2)], 50);
    for &(c, _) in &conns {
        h.send(c, "AUTHENTICATE PLAIN");
        h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
    }
    assert_eq!(check_password_requests(&h), free, "only the free attempts run; the rest wait for their answers");
    let refused = conns
        .iter()
        .filter(|&&(c, _)| find(&h.take(c), "904").is_some_and(|m| m.params[1].contains("try again")))
        .count();
    assert_eq!(refused, 50 - free);
    // The guessers hang up before the answers: the failures are counted all the same.
    for &(c, _) in &conns {
        h.disconnect(c, "gone");
    }
    while !h.requests.is_empty() {
        let (id, _) = h.next_request();
        h.respond(id, Response::Account(Err(Failure::BadPassword)));
    }
    let again = clients_from(&mut h, &[loopback(2)], 1);
    h.send(again[0].0, "NS IDENTIFY alice guess");
    assert_eq!(check_password_requests(&h), 0, "the failures of connections that left still count");

    // 50 connections spread over 10 addresses: one attempt per clean address, the rest from
    // the account's shared budget.
    let mut h = Harness::new();
    let addresses: Vec<IpAddr> = (10..20).map(loopback).collect();
    let conns = clients_from(&mut h, &addresses, 5);
    for &(c, _) in &conns {
        h.send(c, "AUTHENTICATE PLAIN");
        h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
    }
    assert_eq!(check_password_requests(&h), addresses.len() + limits.login_account.burst as usize);
}

#[test]
fn guesses_from_elsewhere_never_lock_the_owner_out() {
    let limits = chinwag_core::Limits::default();
    let mut h = Harness::new();
    h.server.restore(vec!["alice".into()], vec![]);
    // 15 wrong guesses (more than the lockout's 10) from 5 addresses, one at a time.
    let addresses: Vec<IpAddr> = (2..7).map(loopback).collect();
    let conns = clients_from(&mut h, &addresses, 1);
    let mut failed = 0;
    for _ in 0..3 {
        for &(c, _) in &conns {
            h.send(c, "AUTHENTICATE PLAIN");
            h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
            let (id, _) = h.next_request();
            h.respond(id, Response::Account(Err(Failure::BadPassword)));
            assert!(expect(&h.take(c), "904").params[1].contains("Invalid"));
            failed += 1;
        }
    }
    assert!(failed > limits.login_lockout_failures);
    // The guessers' own addresses are slowed down.
    let (c, _) = conns[0];
    h.send(c, "AUTHENTICATE PLAIN");
    h.send(c, &format!("AUTHENTICATE {}", sasl_plain("alice", "guess")));
    assert!(expect(&h.take(c), "904").params[1].contains("try again"));
    assert!(h.requests.is_empty());
    // The owner, from an address with no failures, gets in at once.
    let owner = h.connect_from(loopback(100), false);
    h.send(owner, "CAP LS 302");
    h.send(owner, "CAP REQ :sasl");
    h.send(owner, "NICK alice");
    h.send(owner, "USER alice 0 * :Alice");
    h.send(owner, "AUTHENTICATE PLAIN");
    h.send(owner, &format!("AUTHENTICATE {}", sasl_plain("alice", "correct horse")));
    let (id, req) = h.next_request();
    assert_eq!(req, Request::CheckPassword { account: "alice".into(), password: "correct horse".into() });
    h.respond(id, Response::Account(Ok("alice".into())));
    expect(&h.take(owner), "903");
    // And so does NickServ IDENTIFY from another clean address.
    let phone = h.connect_from(loopback(101), false);
    h.send(phone, "NICK alice_phone");
    h.send(phone, "USER alice 0 * :Alice");
    h.take(phone);
    h.send(phone, "NS IDENTIFY alice correct-horse");
    assert_eq!(check_password_requests(&h), 1, "a clean address is never held back");
}

#[test]
fn passwords_over_plaintext_from_the_network_are_refused_with_advice() {
    let mut h = Harness::new();
    let c = h.connect_from(NETWORK_IP, false);
    h.send(c, "NICK eve");
    h.send(c, "USER eve 0 * :Eve");
    h.take(c);
    h.send(c, "AUTHENTICATE PLAIN");
    assert!(expect(&h.take(c), "904").params[1].contains("TLS"));
    h.send(c, "PRIVMSG NickServ :IDENTIFY eve secretpass");
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("TLS"));
    h.send(c, "REGISTER * * secretpass");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "INSECURE_CONNECTION");
    assert!(h.requests.is_empty(), "no password left the core");

    let t = h.connect_from(NETWORK_IP, true);
    h.send(t, "NICK frank");
    h.send(t, "USER frank 0 * :Frank");
    h.send(t, "AUTHENTICATE PLAIN");
    assert_eq!(parsed(&h.take(t)).last().map(|m| m.command.clone()), Some("AUTHENTICATE".into()));
}

#[test]
fn register_creates_and_logs_in_and_checks_the_rules() {
    let mut h = Harness::new();
    h.server.restore(vec!["taken".into()], vec![]);
    let c = h.connect();
    h.send(c, "NICK newbie");
    h.send(c, "REGISTER * * short");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "WEAK_PASSWORD");
    h.send(c, "REGISTER someoneelse * longenough");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "ACCOUNT_NAME_MUST_BE_NICK");
    h.send(c, "REGISTER * not-an-email longenough");
    assert_eq!(expect(&h.take(c), "FAIL").params[1], "INVALID_EMAIL");
    h.send(c, "REGISTER * newbie@example.org longenough");
    let (id, req) = h.next_request();
    let expected = Request::Register {
        account: "newbie".into(),
        email: Some("newbie@example.org".into()),
        password: "longenough".into(),
    };
    assert_eq!(req, expected);
    h.respond(id, Response::Account(Ok("newbie".into())));
    let lines = h.take(c);
    assert_eq!(expect(&lines, "REGISTER").params[..2], ["SUCCESS", "newbie"]);
    expect(&lines, "900");
    h.send(c, "USER newbie 0 * :New");
    expect(&h.take(c), "001");

    let d = h.register("TAKEN");
    h.take(d);
    h.send(d, "REGISTER * * longenough");
    assert_eq!(expect(&h.take(d), "FAIL").params[1], "ACCOUNT_EXISTS");
}

#[test]
fn nickserv_register_identify_info_and_set_password() {
    let mut h = Harness::new();
    let c = h.register("gina");
    h.send(c, "PRIVMSG NickServ :REGISTER swordfish99");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("gina".into())));
    let (_, offline) = h.next_request();
    assert!(matches!(offline, Request::Offline { .. }));
    let lines = h.take(c);
    assert!(find(&lines, "NOTICE").is_some_and(|m| m.params[1].contains("created")));
    expect(&lines, "900");
    h.send(c, "PRIVMSG NickServ :INFO");
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("gina is a registered account"));
    h.send(c, "PRIVMSG NickServ :SET PASSWORD evenbetter1");
    let (id, req) = h.next_request();
    assert_eq!(req, Request::SetPassword { account: "gina".into(), password: "evenbetter1".into() });
    h.respond(id, Response::Done(Ok(())));
    assert!(expect(&h.take(c), "NOTICE").params[1].contains("changed"));

    let d = h.register("helper");
    h.send(d, "PRIVMSG NickServ :IDENTIFY gina wrongpass");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Err(Failure::BadPassword)));
    assert!(expect(&h.take(d), "NOTICE").params[1].contains("Invalid"));
    h.send(d, "NICK NickServ");
    expect(&h.take(d), "432");
}

#[test]
fn pass_account_password_logs_in_during_registration() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "PASS ivy:ivyspassword");
    h.send(c, "NICK ivy");
    h.send(c, "USER ivy 0 * :Ivy");
    assert!(find(&h.take(c), "001").is_none(), "registration waits for the check");
    let (id, req) = h.next_request();
    assert_eq!(req, Request::CheckPassword { account: "ivy".into(), password: "ivyspassword".into() });
    h.respond(id, Response::Account(Ok("ivy".into())));
    let lines = h.take(c);
    expect(&lines, "900");
    expect(&lines, "001");
}

#[test]
fn a_registered_nick_must_log_in_or_is_renamed() {
    let mut h = Harness::new();
    h.server.restore(vec!["judy".into()], vec![]);
    let watcher = h.register("watcher");
    h.send(watcher, "JOIN #general");
    let c = h.connect();
    h.send(c, "NICK judy");
    h.send(c, "USER judy 0 * :Judy");
    h.send(c, "JOIN #general");
    let lines = h.take(c);
    assert!(parsed(&lines).iter().any(|m| m.command == "NOTICE" && m.params[1].contains("registered")));
    h.take(watcher);
    h.advance(Duration::from_secs(31));
    let own = expect(&h.take(c), "NICK");
    assert!(own.params[0].starts_with("Guest"));
    assert!(own.source.as_deref().is_some_and(|s| s.starts_with("judy!")));
    expect(&h.take(watcher), "NICK");

    // Logging in within the grace period keeps the nick.
    let d = h.register("judy");
    h.send(d, "NS IDENTIFY mypassword1");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("judy".into())));
    h.take(d);
    h.advance(Duration::from_secs(31));
    assert!(find(&h.take(d), "NICK").is_none());
}

#[test]
fn login_is_announced_with_account_notify_and_shown_in_extended_join() {
    let mut h = Harness::new();
    let a = h.register_with_caps("kate", "account-notify extended-join account-tag");
    h.send(a, "JOIN #general");
    let b = h.register("leo");
    h.send(b, "JOIN #general");
    h.take(a);
    h.send(b, "NS IDENTIFY leo leospassword");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("leo".into())));
    let acct = expect(&h.take(a), "ACCOUNT");
    assert_eq!(acct.params, ["leo"]);
    h.send(b, "PRIVMSG #general :tagged");
    assert_eq!(expect(&h.take(a), "PRIVMSG").tag("account"), Some("leo"));
}

/// One AUTHENTICATE chunk longer than 400 bytes is 905; a payload of full 400-byte chunks that
/// never ends is refused with 904 once it passes a few KiB, and nothing is checked or kept.
#[test]
fn sasl_an_over_long_chunk_gets_905_and_an_endless_payload_904() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "CAP REQ :sasl");
    h.send(c, "AUTHENTICATE PLAIN");
    h.take(c);
    h.send(c, &format!("AUTHENTICATE {}", "A".repeat(401)));
    expect(&h.take(c), "905");

    h.send(c, "AUTHENTICATE PLAIN");
    h.take(c);
    let chunk = format!("AUTHENTICATE {}", "A".repeat(400));
    let mut refused = None;
    for sent in 1..=100 {
        h.send(c, &chunk);
        let lines = h.take(c);
        if !lines.is_empty() {
            refused = Some((sent, lines));
            break;
        }
    }
    let (sent, lines) = refused.expect("an endless payload is refused");
    assert!(sent * 400 <= 4096, "refused within a few KiB, after {sent} chunks");
    let fail = expect(&lines, "904");
    assert!(find(&lines, "905").is_none(), "{lines:#?}");
    assert!(fail.params[1].contains("too long"), "{fail:?}");
    assert!(h.requests.is_empty(), "no password check for it");
    // The exchange is over: the next line starts a new one.
    h.send(c, "AUTHENTICATE PLAIN");
    assert_eq!(parsed(&h.take(c)).last().map(|m| m.to_line()), Some("AUTHENTICATE +".into()));
}
