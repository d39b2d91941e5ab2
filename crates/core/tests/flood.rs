//! Flood control and per-user limits as a client sees them: a burst runs, then commands wait
//! and run at the steady rate; a flooder is dropped with "Excess flood"; expensive commands
//! cost more; nick changes, rooms, targets and account registrations are bounded.

mod support;

use std::net::IpAddr;
use std::time::Duration;

use chinwag_core::{Config, Failure, Limits, Request, Response};
use support::{expect, find, parsed, Harness};

fn privmsgs(lines: &[String]) -> Vec<String> {
    parsed(lines).into_iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].clone()).collect()
}

/// Alice and Bob in #general, their join bursts taken.
fn room() -> (Harness, chinwag_core::ConnId, chinwag_core::ConnId) {
    let mut h = Harness::new();
    let alice = h.register("alice");
    let bob = h.register("bob");
    h.send(alice, "JOIN #general");
    h.send(bob, "JOIN #general");
    h.clear(&[alice, bob]);
    (h, alice, bob)
}

#[test]
fn a_flooder_is_slowed_then_dropped_with_excess_flood() {
    let (mut h, alice, bob) = room();
    let limits = Limits::default();
    for i in 0..200 {
        h.send(alice, &format!("PRIVMSG #general :spam {i}"));
        if h.is_closed(alice) {
            break;
        }
    }
    assert!(h.is_closed(alice), "a flooder must be dropped");
    let alice_lines = h.take(alice);
    let error = expect(&alice_lines, "ERROR");
    assert!(error.params[0].contains("Excess flood"), "{error:?}");
    let bob_lines = h.take(bob);
    let seen = privmsgs(&bob_lines);
    // Registration and JOIN spent a few units of the burst; the rest went out at once.
    assert!(seen.len() >= 20 && seen.len() <= limits.flood.burst as usize, "bob saw {} messages", seen.len());
    assert!(seen.iter().enumerate().all(|(i, text)| *text == format!("spam {i}")), "in order: {seen:?}");
    let quit = expect(&bob_lines, "QUIT");
    assert_eq!(quit.params[0], "Excess flood");
}

#[test]
fn a_paste_waits_and_is_delivered_in_order_at_the_steady_rate() {
    let (mut h, alice, bob) = room();
    for i in 0..60 {
        h.send(alice, &format!("PRIVMSG #general :line {i}"));
    }
    assert!(!h.is_closed(alice));
    let mut seen = privmsgs(&h.take(bob));
    let at_once = seen.len();
    assert!(at_once < 60, "the burst is bounded");
    let mut seconds = 0;
    while seen.len() < 60 && seconds < 60 {
        h.advance(Duration::from_secs(1));
        seconds += 1;
        let more = privmsgs(&h.take(bob));
        assert!(more.len() <= 2, "steady rate is 2 per second, got {}", more.len());
        seen.extend(more);
    }
    assert_eq!(seen, (0..60).map(|i| format!("line {i}")).collect::<Vec<_>>());
    assert!(seconds >= (60 - at_once) / 2, "took {seconds} s for {} waiting lines", 60 - at_once);
    // Alice's own commands wait in the same queue, in order: her PING comes after her lines.
    h.send(alice, "PING :after");
    assert!(find(&h.take(alice), "PONG").is_some(), "the budget has refilled");
}

#[test]
fn listings_cost_more_than_messages() {
    let mut h = Harness::new();
    let alice = h.register("alice");
    h.send(alice, "JOIN #general");
    h.take(alice);
    for _ in 0..20 {
        h.send(alice, "WHO #general");
    }
    let done = parsed(&h.take(alice)).into_iter().filter(|m| m.command == "315").count();
    assert!(done < 10, "20 WHOs at 3 units each must not all run in a 30-unit burst: {done} did");
    let mut total = done;
    for _ in 0..60 {
        h.advance(Duration::from_secs(1));
        total += parsed(&h.take(alice)).into_iter().filter(|m| m.command == "315").count();
    }
    assert_eq!(total, 20, "every waiting WHO runs eventually");
}

#[test]
fn a_quit_behind_a_flood_waits_its_turn_then_runs() {
    let (mut h, alice, bob) = room();
    for i in 0..40 {
        h.send(alice, &format!("PRIVMSG #general :x{i}"));
    }
    h.send(alice, "QUIT :bye");
    // The QUIT waits its turn behind the queued lines, then runs.
    for _ in 0..30 {
        if h.is_closed(alice) {
            break;
        }
        h.advance(Duration::from_secs(1));
    }
    assert!(h.is_closed(alice), "the QUIT ran once its turn came");
    let quit = expect(&h.take(bob), "QUIT");
    assert!(quit.params[0].contains("bye"), "{quit:?}");
}

#[test]
fn nick_changes_are_rate_limited_with_438() {
    let mut h = Harness::new();
    let alice = h.register("alice");
    let limits = Limits::default();
    for i in 0..limits.nick_changes.burst {
        h.send(alice, &format!("NICK alice{i}"));
        expect(&h.take(alice), "NICK");
    }
    h.send(alice, "NICK tooquick");
    let lines = h.take(alice);
    assert!(find(&lines, "NICK").is_none(), "{lines:#?}");
    let refusal = expect(&lines, "438");
    let wait = limits.nick_changes.every.as_secs();
    assert_eq!(refusal.params[2], format!("Nick change too fast. Please wait {wait} seconds."), "{refusal:?}");
    // One second left: the sentence says "1 second", not "1 seconds".
    h.advance(limits.nick_changes.every - Duration::from_secs(1));
    h.send(alice, "NICK stilltooquick");
    assert_eq!(expect(&h.take(alice), "438").params[2], "Nick change too fast. Please wait 1 second.");
    h.advance(Duration::from_secs(1));
    h.send(alice, "NICK patient");
    expect(&h.take(alice), "NICK");
}

#[test]
fn rooms_per_user_and_targets_per_message_are_bounded() {
    let mut cfg = Config::default();
    cfg.limits.channels_per_client = 3;
    let mut h = Harness::with_config(cfg);
    let alice = h.register("alice");
    let _bob = h.register("bob");
    h.send(alice, "JOIN #a,#b,#c,#d");
    let lines = h.take(alice);
    assert_eq!(parsed(&lines).iter().filter(|m| m.command == "JOIN").count(), 3);
    assert_eq!(expect(&lines, "405").params[1], "#d");
    h.send(alice, "PRIVMSG bob,#a,#b,#c,carol :hi all");
    let lines = h.take(alice);
    expect(&lines, "407");
}

const TLS_IP: &str = "2001:db8:7:7::1";

#[test]
fn account_registration_is_rate_limited_per_address_and_per_64() {
    let mut h = Harness::new();
    let limits = Limits::default();
    let ip: IpAddr = TLS_IP.parse().expect("ip");
    let neighbour: IpAddr = "2001:db8:7:7::99".parse().expect("ip");
    let elsewhere: IpAddr = "2001:db8:8:8::1".parse().expect("ip");
    let register_from = |h: &mut Harness, ip: IpAddr, nick: &str| {
        let c = h.connect_from(ip, true);
        h.send(c, &format!("NICK {nick}"));
        h.send(c, &format!("USER {nick} 0 * :{nick}"));
        h.take(c);
        h.send(c, "REGISTER * * long-enough-password");
        let asked = h.requests.iter().any(|(_, r)| matches!(r, Request::Register { .. }));
        h.requests.clear();
        (c, asked)
    };
    for i in 0..limits.registrations.burst {
        let (_, asked) = register_from(&mut h, if i % 2 == 0 { ip } else { neighbour }, &format!("user{i}"));
        assert!(asked, "registration {i} is within the burst");
    }
    let (c, asked) = register_from(&mut h, neighbour, "onetoomany");
    assert!(!asked, "the /64 has used its budget");
    let fail = expect(&h.take(c), "FAIL");
    assert_eq!(fail.params[1], "TEMPORARILY_UNAVAILABLE");
    assert!(fail.params.last().is_some_and(|t| t.contains("try again in")), "{fail:?}");
    let (_, asked) = register_from(&mut h, elsewhere, "otherplace");
    assert!(asked, "another /64 is not affected");
    h.advance(limits.registrations.every);
    let (_, asked) = register_from(&mut h, ip, "later");
    assert!(asked, "the budget refills");
}

#[test]
fn failed_logins_from_one_64_slow_every_address_in_it() {
    let mut h = Harness::new();
    let limits = Limits::default();
    let a = h.connect_from(TLS_IP.parse().expect("ip"), true);
    let b = h.connect_from("2001:db8:7:7::2".parse().expect("ip"), true);
    for (c, nick) in [(a, "mallory"), (b, "trudy")] {
        h.send(c, &format!("NICK {nick}"));
        h.send(c, &format!("USER {nick} 0 * :{nick}"));
    }
    h.clear(&[a, b]);
    // Guesses at different accounts: the address's own record, which allows more failures than
    // one account's (an address may be shared).
    for i in 0..limits.login_free_failures * chinwag_core::ADDRESS_SHARE {
        // Each attempt is charged against the attacker's command budget too; let it refill.
        h.advance(Duration::from_secs(5));
        h.send(a, &format!("NS IDENTIFY victim{i} guess{i}"));
        let (id, _) = h.next_request();
        h.respond(id, Response::Account(Err(Failure::BadPassword)));
    }
    h.clear(&[a, b]);
    h.send(b, "NS IDENTIFY someoneelse guess");
    assert!(h.requests.is_empty(), "a neighbour in the same /64 is slowed as well");
    let notice = expect(&h.take(b), "NOTICE");
    assert!(notice.params[1].contains("try again in"), "{notice:?}");
}

#[test]
fn one_connection_cannot_run_password_checks_in_parallel() {
    let mut h = Harness::new();
    let c = h.connect_from(TLS_IP.parse().expect("ip"), true);
    h.send(c, "NICK mallory");
    h.send(c, "USER mallory 0 * :m");
    h.take(c);
    h.send(c, "NS IDENTIFY victim guess1");
    h.send(c, "NS IDENTIFY victim guess2");
    assert_eq!(h.requests.len(), 1, "one check at a time per connection: the second waits its turn");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Err(Failure::BadPassword)));
    assert_eq!(h.requests.len(), 1, "the second is checked once the first is answered");
    let notice = expect(&h.take(c), "NOTICE");
    assert!(notice.params[1].contains("Invalid account name or password"), "{notice:?}");
}
