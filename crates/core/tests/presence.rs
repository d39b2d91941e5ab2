//! A client's own presence: AWAY (and away-notify), SETNAME, MONITOR.

mod support;

use chinwag_core::{Config, Limits};
use support::{all, expect, find, Harness};

#[test]
fn away_is_set_and_cleared_with_away_notify_and_rpl_away() {
    let mut h = Harness::new();
    let a = h.register_with_caps("alice", "away-notify");
    let b = h.register("bob");
    let c = h.register("carol");
    let d = h.register_with_caps("dave", "away-notify");
    for x in [a, b, c] {
        h.send(x, "JOIN #general");
    }
    h.clear(&[a, b, c, d]);

    h.send(b, "AWAY :gone to lunch");
    assert_eq!(expect(&h.take(b), "306").params[0], "bob");
    let away = expect(&h.take(a), "AWAY");
    assert_eq!(away.params, ["gone to lunch"]);
    assert!(away.source.as_deref().is_some_and(|s| s.starts_with("bob!")));
    assert!(h.take(c).is_empty(), "carol did not ask for away-notify");
    assert!(h.take(d).is_empty(), "dave shares no room with bob");

    h.send(c, "PRIVMSG bob :are you there?");
    assert_eq!(expect(&h.take(c), "301").params, ["carol", "bob", "gone to lunch"]);
    h.send(c, "NOTICE bob :fyi");
    assert!(find(&h.take(c), "301").is_none(), "NOTICE draws no automatic reply");

    h.send(b, "AWAY");
    expect(&h.take(b), "305");
    let back = expect(&h.take(a), "AWAY");
    assert!(back.params.is_empty(), "back: AWAY without a parameter");
    h.send(b, "AWAY :");
    expect(&h.take(b), "305");
    assert!(h.take(a).is_empty(), "nothing changed, nothing to tell");
    h.send(c, "PRIVMSG bob :back?");
    assert!(find(&h.take(c), "301").is_none());
}

#[test]
fn away_message_is_truncated_to_awaylen() {
    let limits = Limits { away_len: 5, ..Limits::default() };
    let mut h = Harness::with_config(Config { limits, ..Config::default() });
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(b, "AWAY :a long story");
    h.send(a, "PRIVMSG bob :hi");
    assert_eq!(expect(&h.take(a), "301").params[2], "a lon");
}

#[test]
fn setname_is_seen_only_by_setname_clients_sharing_a_room() {
    let mut h = Harness::new();
    let a = h.register_with_caps("alice", "setname");
    let b = h.register_with_caps("bob", "setname");
    let c = h.register("carol");
    let d = h.register_with_caps("dave", "setname");
    for x in [a, b, c] {
        h.send(x, "JOIN #general");
    }
    h.clear(&[a, b, c, d]);

    h.send(a, "SETNAME :Alice Liddell");
    let own = expect(&h.take(a), "SETNAME");
    assert_eq!(own.params, ["Alice Liddell"]);
    assert!(own.source.as_deref().is_some_and(|s| s.starts_with("alice!~alice@")));
    assert_eq!(expect(&h.take(b), "SETNAME").params, ["Alice Liddell"]);
    assert!(h.take(c).is_empty(), "carol did not ask for setname");
    assert!(h.take(d).is_empty(), "dave shares no room with alice");
    h.send(c, "WHOIS alice");
    assert_eq!(expect(&h.take(c), "311").params[5], "Alice Liddell");

    h.send(c, "SETNAME :Carol");
    assert!(h.take(c).is_empty(), "no echo without the capability");
    assert_eq!(expect(&h.take(a), "SETNAME").params, ["Carol"]);
    h.clear(&[b]);

    h.send(a, "SETNAME :");
    assert_eq!(expect(&h.take(a), "FAIL").params[..2], ["SETNAME", "INVALID_REALNAME"]);
    h.send(a, &format!("SETNAME :{}", "x".repeat(201)));
    assert_eq!(expect(&h.take(a), "FAIL").params[..2], ["SETNAME", "INVALID_REALNAME"]);
    assert!(h.take(b).is_empty(), "a refused name is not announced");
    h.send(a, "SETNAME");
    expect(&h.take(a), "461");
}

#[test]
fn monitor_reports_online_and_offline_on_connect_quit_and_nick_change() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "MONITOR + bob,Carol,9bad,bob");
    let lines = h.take(a);
    assert_eq!(all(&lines, "731"), [["alice", "bob,Carol"]], "invalid and repeated nicks are skipped");
    assert!(find(&lines, "730").is_none());

    let b = h.register("bob");
    assert_eq!(expect(&h.take(a), "730").params, ["alice", "bob!~bob@127.0.0.1"]);
    h.send(b, "NICK robert");
    assert_eq!(expect(&h.take(a), "731").params, ["alice", "bob"]);
    h.send(b, "NICK bob");
    assert_eq!(expect(&h.take(a), "730").params[1], "bob!~bob@127.0.0.1");
    h.send(b, "QUIT");
    assert_eq!(expect(&h.take(a), "731").params[1], "bob");

    let c = h.register("carol");
    h.clear(&[a]);
    h.send(a, "MONITOR S");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "730").params[1], "carol!~carol@127.0.0.1");
    assert_eq!(expect(&lines, "731").params[1], "bob");
    h.send(a, "MONITOR + carol");
    assert_eq!(all(&h.take(a), "730").len(), 1, "adding again reports the status");

    h.send(a, "MONITOR L");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "732").params[1], "bob,carol");
    expect(&lines, "733");
    h.send(a, "MONITOR - BOB");
    h.send(a, "MONITOR L");
    assert_eq!(expect(&h.take(a), "732").params[1], "carol");
    h.send(a, "MONITOR C");
    h.send(a, "MONITOR L");
    let lines = h.take(a);
    assert!(find(&lines, "732").is_none());
    expect(&lines, "733");
    h.send(c, "QUIT");
    let _b = h.register("bob");
    assert!(h.take(a).is_empty(), "nothing is watched any more");
}

#[test]
fn a_full_monitor_list_names_the_targets_left_out() {
    let limits = Limits { monitor_len: 2, ..Limits::default() };
    let mut h = Harness::with_config(Config { limits, ..Config::default() });
    let a = h.register("alice");
    h.send(a, "MONITOR + ann,ben,cy,dot");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "731").params[1], "ann,ben");
    assert_eq!(expect(&lines, "734").params, ["alice", "2", "cy,dot", "Monitor list is full"]);
    let _c = h.register("cy");
    assert!(h.take(a).is_empty(), "cy was not added");
    h.send(a, "MONITOR");
    expect(&h.take(a), "461");
    h.send(a, "MONITOR +");
    expect(&h.take(a), "461");
}

#[test]
fn a_watcher_that_leaves_is_no_longer_notified() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let w = h.register("watcher");
    h.send(w, "MONITOR + alice,bob");
    h.send(w, "QUIT");
    assert!(h.is_closed(w));
    // The harness fails the test if anything is sent to a closed connection.
    let _b = h.register("bob");
    h.send(a, "QUIT");
}

#[test]
fn a_long_away_message_is_cut_to_fit_the_notify_line() {
    let limits = Limits { away_len: 500, ..Limits::default() };
    let mut h = Harness::with_config(Config { limits, ..Config::default() });
    let a = h.register_with_caps("alice", "away-notify");
    let b = h.register("a_rather_long_nickname_here");
    for x in [a, b] {
        h.send(x, "JOIN #general");
    }
    h.clear(&[a, b]);
    let text = "x".repeat(480);
    h.send(b, &format!("AWAY :{text}"));
    let lines = h.take(a);
    let line = lines.iter().find(|l| l.contains(" AWAY ")).expect("away-notify");
    assert!(line.len() + 2 <= 512, "{} bytes", line.len() + 2);
    assert!(expect(&lines, "AWAY").params[0].len() > 300, "cut, not dropped");
}
