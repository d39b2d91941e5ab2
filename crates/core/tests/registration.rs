//! Connection registration and life: CAP, NICK/USER, PASS, the welcome burst, PING, QUIT.

mod support;

use std::time::Duration;

use chinwag_core::Config;
use support::{expect, find, parsed, Harness};

#[test]
fn nick_and_user_give_the_welcome_burst_with_isupport_lusers_and_motd() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "NICK alice");
    assert!(h.take(c).is_empty(), "nothing before USER");
    h.send(c, "USER alice 0 * :Alice Liddell");
    let lines = h.take(c);
    let commands: Vec<String> = parsed(&lines).into_iter().map(|m| m.command).collect();
    for code in ["001", "002", "003", "004", "005", "251", "254", "255", "265", "266", "375", "372", "376"] {
        assert!(commands.iter().any(|c| c == code), "missing {code} in {lines:#?}");
    }
    let welcome = expect(&lines, "001");
    assert_eq!(welcome.params[0], "alice");
    assert!(welcome.params[1].ends_with("alice!~alice@127.0.0.1"));
    let isupport: Vec<String> = parsed(&lines)
        .into_iter()
        .filter(|m| m.command == "005")
        .flat_map(|m| m.params[1..m.params.len() - 1].to_vec())
        .collect();
    for token in ["CASEMAPPING=ascii", "CHANTYPES=#", "PREFIX=(ov)@+", "CHANMODES=beI,k,l,imnst", "UTF8ONLY"] {
        assert!(isupport.iter().any(|t| t == token), "ISUPPORT lacks {token}: {isupport:?}");
    }
    for key in ["NICKLEN=", "CHANNELLEN=", "TOPICLEN=", "TARGMAX=", "MONITOR="] {
        assert!(isupport.iter().any(|t| t.starts_with(key)), "ISUPPORT lacks {key}");
    }
}

#[test]
fn cap_negotiation_holds_registration_until_end() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "CAP LS 302");
    let ls = expect(&h.take(c), "CAP");
    assert_eq!(ls.params[1], "LS");
    assert!(ls.params.last().is_some_and(|l| l.contains("echo-message") && l.contains("server-time")));
    h.send(c, "NICK bob");
    h.send(c, "USER bob 0 * :Bob");
    assert!(find(&h.take(c), "001").is_none(), "registered during CAP negotiation");
    h.send(c, "CAP REQ :echo-message bogus-cap");
    let nak = expect(&h.take(c), "CAP");
    assert_eq!(nak.params[1..], ["NAK", "echo-message bogus-cap"]);
    h.send(c, "CAP REQ :echo-message server-time");
    let ack = expect(&h.take(c), "CAP");
    assert_eq!(ack.params[1..], ["ACK", "echo-message server-time"]);
    h.send(c, "CAP LIST");
    let list = expect(&h.take(c), "CAP");
    assert!(list.params[2].contains("echo-message") && list.params[2].contains("cap-notify"));
    h.send(c, "CAP END");
    expect(&h.take(c), "001");
}

#[test]
fn bad_and_taken_nicks_are_refused_with_numerics() {
    let mut h = Harness::new();
    let _alice = h.register("alice");
    let c = h.connect();
    h.send(c, "NICK");
    assert_eq!(expect(&h.take(c), "431").params[0], "*");
    h.send(c, "NICK 9lives");
    expect(&h.take(c), "432");
    h.send(c, "NICK bad,nick");
    expect(&h.take(c), "432");
    h.send(c, "NICK ALICE");
    assert_eq!(expect(&h.take(c), "433").params[1], "ALICE");
    h.send(c, "NICK carol");
    h.send(c, "USER carol 0 * :Carol");
    expect(&h.take(c), "001");
}

#[test]
fn commands_before_registration_get_451_and_unknown_ones_421() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "JOIN #general");
    expect(&h.take(c), "451");
    h.send(c, "NICK dave");
    h.send(c, "USER dave 0 * :Dave");
    h.take(c);
    h.send(c, "frobnicate now");
    let m = expect(&h.take(c), "421");
    assert_eq!(m.params[1], "FROBNICATE");
    h.send(c, "frobnicate-with-a-very-long-name now");
    assert_eq!(expect(&h.take(c), "421").params[1], "FROBNICATE-WITH-A-VERY-LONG-NAME");
    h.send(c, "privmsg Dave :commands are case-insensitive");
    assert_eq!(expect(&h.take(c), "PRIVMSG").params[1], "commands are case-insensitive");
}

#[test]
fn server_password_is_required_when_configured() {
    let mut h = Harness::with_config(Config { password: Some("sesame".into()), ..Config::default() });
    let c = h.connect();
    h.send(c, "PASS wrong");
    h.send(c, "NICK erin");
    h.send(c, "USER erin 0 * :Erin");
    let lines = h.take(c);
    expect(&lines, "464");
    expect(&lines, "ERROR");
    assert!(h.is_closed(c));

    let c = h.connect();
    h.send(c, "PASS sesame");
    h.send(c, "NICK erin");
    h.send(c, "USER erin 0 * :Erin");
    expect(&h.take(c), "001");
}

#[test]
fn ping_is_answered_and_silent_clients_are_pinged_then_dropped_with_quit_to_peers() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(a, "PING :token123");
    let pong = expect(&h.take(a), "PONG");
    assert_eq!(pong.params, ["chinwag.local", "token123"]);

    h.send(a, "JOIN #general");
    h.send(b, "JOIN #general");
    h.clear(&[a, b]);
    h.advance(Duration::from_secs(91));
    expect(&h.take(a), "PING");
    h.send(a, "PONG :chinwag.local");
    expect(&h.take(b), "PING");
    h.advance(Duration::from_secs(61));
    assert!(h.is_closed(b), "bob never answered and should be gone");
    assert!(!h.is_closed(a), "alice answered and should stay");
    let quit = expect(&h.take(a), "QUIT");
    assert!(quit.source.as_deref().is_some_and(|s| s.starts_with("bob!")));
    assert_eq!(quit.params[0], "Ping timeout: 152 seconds", "silent since the last PONG");
}

#[test]
fn unregistered_connections_time_out() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "NICK slowpoke");
    h.advance(Duration::from_secs(61));
    assert!(h.is_closed(c));
    expect(&h.take(c), "ERROR");
    let d = h.connect();
    h.send(d, "NICK slowpoke");
    h.send(d, "USER slowpoke 0 * :Slow");
    expect(&h.take(d), "001");
}

#[test]
fn quit_sends_error_and_tells_peers_once() {
    let mut h = Harness::new();
    let [a, b] = h.members_of("#general,#tech", &["alice", "bob"])[..] else { unreachable!() };
    h.send(a, "QUIT :gone fishing");
    expect(&h.take(a), "ERROR");
    assert!(h.is_closed(a));
    let lines = h.take(b);
    let quits: Vec<_> = parsed(&lines).into_iter().filter(|m| m.command == "QUIT").collect();
    assert_eq!(quits.len(), 1, "one QUIT per peer, not per room: {lines:#?}");
    assert_eq!(quits[0].params[0], "Quit: gone fishing");
}

#[test]
fn bad_input_gets_replies_and_the_session_goes_on() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send_bytes(a, b"PRIVMSG #general :caf\xe9");
    assert_eq!(expect(&h.take(a), "FAIL").params[1], "INVALID_UTF8");
    let long = format!("PRIVMSG #general :{}", "x".repeat(600));
    h.send(a, &long);
    expect(&h.take(a), "417");
    h.send(a, "PRIVMSG");
    expect(&h.take(a), "411");
    h.send(a, "JOIN");
    expect(&h.take(a), "461");
    h.send(a, "PING :still here");
    expect(&h.take(a), "PONG");
    assert!(!h.is_closed(a));
}

#[test]
fn labeled_response_wraps_replies() {
    let mut h = Harness::new();
    let a = h.register_with_caps("alice", "labeled-response batch message-tags echo-message");
    h.send(a, "@label=one PING :x");
    let lines = h.take(a);
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert_eq!(expect(&lines, "PONG").tag("label"), Some("one"));
    h.send(a, "@label=two JOIN #general");
    let lines = h.take(a);
    let start = expect(&lines, "BATCH");
    assert_eq!(start.tag("label"), Some("two"));
    assert_eq!(start.params[1], "labeled-response");
    assert!(parsed(&lines).iter().filter(|m| m.command != "BATCH").all(|m| m.tag("batch").is_some()));
    h.send(a, "@label=three PONG :x");
    let ack = expect(&h.take(a), "ACK");
    assert_eq!(ack.tag("label"), Some("three"));
}

#[test]
fn lusers_counts_follow_registrations_invisibility_and_departures() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    let c = h.register("carol");
    let _unregistered = h.connect();
    h.send(b, "MODE bob +i");
    h.send(c, "MODE carol +i");
    h.send(c, "MODE carol -i");
    h.send(c, "MODE carol +i");
    h.disconnect(c, "gone");
    h.take(a);
    h.send(a, "LUSERS");
    let lines = h.take(a);
    let client = expect(&lines, "251");
    assert_eq!(client.params[1], "There are 1 user and 1 invisible on 1 server", "{lines:#?}");
    assert_eq!(expect(&lines, "253").params[1], "1", "one connection has not registered: {lines:#?}");
    assert_eq!(expect(&lines, "255").params[1], "I have 2 clients and 0 servers", "{lines:#?}");
}

/// LUSERS counts users: connections that have not registered are neither users nor part of the
/// most users seen (265/266), however many of them come at once.
#[test]
fn lusers_max_users_counts_only_registered_users() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let _waiting: Vec<_> = (0..5).map(|_| h.connect()).collect();
    let b = h.register("bob");
    h.disconnect(b, "gone");
    h.send(a, "LUSERS");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "251").params[1], "There are 1 user and 0 invisible on 1 server", "{lines:#?}");
    assert_eq!(expect(&lines, "253").params[1], "5", "{lines:#?}");
    for code in ["265", "266"] {
        let m = expect(&lines, code);
        assert_eq!(m.params[1..3], ["1", "2"], "1 user now, at most 2 at once: {lines:#?}");
    }
}

/// USER with an empty realname is missing a parameter (461) and does not register.
#[test]
fn user_with_an_empty_realname_gets_461() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "NICK rita");
    h.send(c, "USER rita 0 * :");
    let lines = h.take(c);
    assert_eq!(expect(&lines, "461").params[1], "USER", "{lines:#?}");
    assert!(find(&lines, "001").is_none());
    h.send(c, "USER rita 0 * :Rita R");
    expect(&h.take(c), "001");
}

/// INFO, HELP (and HELPOP) and LINKS answer with the Modern IRC numerics.
#[test]
fn info_help_and_links_answer() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "INFO");
    let lines = h.take(a);
    assert!(find(&lines, "371").is_some_and(|m| m.params[1].contains("chinwag")), "{lines:#?}");
    assert_eq!(parsed(&lines).last().map(|m| m.command.clone()).as_deref(), Some("374"));

    for command in ["HELP", "HELPOP"] {
        h.send(a, &format!("{command} kick"));
        let ms = parsed(&h.take(a));
        let codes: Vec<&str> = ms.iter().map(|m| m.command.as_str()).collect();
        assert_eq!(codes.first(), Some(&"704"), "{ms:#?}");
        assert_eq!(codes.last(), Some(&"706"), "{ms:#?}");
        assert!(ms.iter().all(|m| m.params[1] == "KICK"), "{ms:#?}");
        assert!(ms[0].params[2].starts_with("KICK <#room>"));
    }
    h.send(a, "HELP");
    let ms = parsed(&h.take(a));
    assert!(ms.iter().any(|m| m.command == "705" && m.params[2].contains("PRIVMSG")), "{ms:#?}");
    h.send(a, "HELP frobnicate");
    assert_eq!(expect(&h.take(a), "524").params[1], "frobnicate");

    h.send(a, "LINKS");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "364").params[1..3], ["*", "chinwag.local"]);
    expect(&lines, "365");
    assert!(find(&lines, "421").is_none());
}
