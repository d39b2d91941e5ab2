//! One client's commands run strictly in the order it sent them, even when one of them waits for
//! the edge (a password check, a history read): the lines sent after it wait for its answer.
//! Every test here pipelines: all lines go in before any request is answered, as bots and
//! client libraries send them in one write.

mod support;

use std::time::Duration;

use chinwag_core::{Config, Failure, HistoryItem, Operator, Request, Response};
use support::{parsed, sasl_plain, Harness};

/// The commands (numerics included) of `lines`, in order.
fn commands(lines: &[String]) -> Vec<String> {
    parsed(lines).into_iter().map(|m| m.command).collect()
}

fn position(lines: &[String], command: &str) -> usize {
    commands(lines).iter().position(|c| c == command).unwrap_or_else(|| panic!("no {command} in {lines:#?}"))
}

#[test]
fn pipelined_sasl_with_cap_end_registers_after_the_login() {
    let mut h = Harness::new();
    let c = h.connect();
    for line in [
        "CAP LS 302".to_owned(),
        "CAP REQ :sasl".into(),
        "NICK alice".into(),
        "USER alice 0 * :Alice".into(),
        "AUTHENTICATE PLAIN".into(),
        format!("AUTHENTICATE {}", sasl_plain("alice", "correct horse")),
        "CAP END".into(),
        "JOIN #general".into(),
    ] {
        h.send(c, &line);
    }
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::CheckPassword { .. }), "{request:?}");
    let before = h.take(c);
    assert!(!commands(&before).contains(&"001".to_owned()), "no welcome before the login's answer: {before:#?}");
    h.respond(id, Response::Account(Ok("alice".into())));
    let lines = h.take(c);
    let (success, welcome, join) = (position(&lines, "903"), position(&lines, "001"), position(&lines, "JOIN"));
    assert!(success < welcome && welcome < join, "903, then the welcome, then the JOIN: {lines:#?}");
    assert!(lines.iter().any(|l| l.contains(" 001 alice ")), "{lines:#?}");
}

#[test]
fn pipelined_sasl_that_fails_still_registers_when_cap_end_follows() {
    let mut h = Harness::new();
    let c = h.connect();
    for line in [
        "CAP LS 302".to_owned(),
        "CAP REQ :sasl".into(),
        "NICK carol".into(),
        "USER carol 0 * :Carol".into(),
        "AUTHENTICATE PLAIN".into(),
        format!("AUTHENTICATE {}", sasl_plain("carol", "wrong")),
        "CAP END".into(),
    ] {
        h.send(c, &line);
    }
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Err(Failure::BadPassword)));
    let lines = h.take(c);
    assert!(position(&lines, "904") < position(&lines, "001"), "{lines:#?}");
}

#[test]
fn a_command_after_oper_runs_with_the_operator_status_oper_gave() {
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";
    let cfg = Config { opers: vec![Operator { name: "root".into(), password_hash: hash.into() }], ..Config::default() };
    let mut h = Harness::with_config(cfg);
    let alice = h.register("alice");
    h.send(alice, "OPER root swordfish");
    h.send(alice, "WALLOPS :maintenance at noon");
    let (id, _) = h.next_request();
    assert!(h.take(alice).is_empty(), "WALLOPS waits for OPER's answer");
    h.respond(id, Response::Done(Ok(())));
    let lines = h.take(alice);
    assert!(!commands(&lines).contains(&"481".to_owned()), "WALLOPS ran as an operator: {lines:#?}");
    assert!(position(&lines, "381") < position(&lines, "WALLOPS"), "{lines:#?}");
}

#[test]
fn replies_come_in_the_order_of_the_commands_and_others_are_not_held() {
    let mut h = Harness::new();
    let alice = h.register_with_caps("alice", "batch server-time message-tags");
    let bob = h.register("bob");
    h.send(alice, "JOIN #general");
    h.send(bob, "JOIN #general");
    h.clear(&[alice, bob]);
    h.send(alice, "CHATHISTORY LATEST #general * 10");
    h.send(alice, "PING :after-history");
    h.send(alice, "PRIVMSG #general :said after asking");
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::History { .. }), "{request:?}");
    assert!(h.take(alice).is_empty(), "the PONG waits behind the history");
    assert!(h.take(bob).is_empty(), "alice's message waits behind her history read");
    // Someone else's commands are not held by alice's.
    h.send(bob, "PING :bob");
    assert_eq!(commands(&h.take(bob)), ["PONG"]);
    let item = HistoryItem {
        msgid: "m1".into(),
        time_ms: 1_795_269_000_000,
        command: "PRIVMSG".into(),
        sender: "bob!bob@127.0.0.1".into(),
        sender_account: None,
        target: "#general".into(),
        text: "earlier".into(),
        tags: String::new(),
        conversation: "#general".into(),
        participants: Vec::new(),
        offline_for: None,
    };
    h.respond(id, Response::Messages(Ok(vec![item])));
    let lines = h.take(alice);
    let batch_end = commands(&lines).iter().rposition(|c| c == "BATCH").expect("a batch");
    assert!(batch_end < position(&lines, "PONG"), "{lines:#?}");
    assert!(h.take(bob).iter().any(|l| l.contains("said after asking")));
}

#[test]
fn a_client_stuck_behind_a_request_is_still_bounded_by_its_recvq() {
    let mut h = Harness::new();
    let alice = h.register("alice");
    h.send(alice, "JOIN #general");
    h.send(alice, "CHATHISTORY LATEST #general * 10");
    assert!(!h.requests.is_empty());
    for i in 0..1000 {
        h.send(alice, &format!("PRIVMSG #general :line {i}"));
        if h.is_closed(alice) {
            break;
        }
    }
    assert!(h.is_closed(alice), "a client that piles up lines behind a request is dropped (Excess flood)");
    h.advance(Duration::from_secs(1));
}
