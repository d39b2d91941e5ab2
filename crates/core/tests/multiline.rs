//! draft/multiline (issue #20): a message of several lines sent as one batch, checked, stored
//! once, and delivered as one batch or line by line; replayed the same way from history.

mod support;

use std::time::Duration;

use chinwag_core::{Config, HistoryItem, Request, Response};
use chinwag_proto::Message;
use support::{all, expect, find, parsed, Harness};

const CAPS: &str = "message-tags batch echo-message server-time labeled-response";
const WITH_MULTILINE: &str = "message-tags batch echo-message server-time labeled-response draft/multiline";

/// alice and bob with draft/multiline, charlie without, all in #test.
fn room(h: &mut Harness) -> (chinwag_core::ConnId, chinwag_core::ConnId, chinwag_core::ConnId) {
    let alice = h.register_with_caps("alice", WITH_MULTILINE);
    let bob = h.register_with_caps("bob", WITH_MULTILINE);
    let charlie = h.register_with_caps("charlie", CAPS);
    for c in [alice, bob, charlie] {
        h.send(c, "JOIN #test");
    }
    h.clear(&[alice, bob, charlie]);
    (alice, bob, charlie)
}

fn send_all(h: &mut Harness, conn: chinwag_core::ConnId, lines: &[&str]) {
    for line in lines {
        h.send(conn, line);
    }
}

fn tag<'a>(m: &'a Message, key: &str) -> Option<&'a str> {
    m.tag(key)
}

/// The FAIL a client got, as (code, params after the code).
#[track_caller]
fn fail(lines: &[String]) -> (String, Vec<String>) {
    let f = expect(lines, "FAIL");
    assert_eq!(f.params[0], "BATCH", "{f:?}");
    (f.params[1].clone(), f.params[2..].to_vec())
}

#[test]
fn the_capability_advertises_its_bounds() {
    let mut h = Harness::new();
    let conn = h.connect();
    h.send(conn, "CAP LS 302");
    let ls = h.take(conn).join("\n");
    assert!(ls.contains("draft/multiline=max-bytes=4096,max-lines=100"), "{ls}");
    let mut cfg = Config::default();
    cfg.limits.autoreplay_lines = 0;
    cfg.limits.multiline_max_bytes = 1000;
    cfg.limits.multiline_max_lines = 7;
    let mut h = Harness::with_config(cfg);
    let conn = h.connect();
    h.send(conn, "CAP LS 302");
    assert!(h.take(conn).join("\n").contains("draft/multiline=max-bytes=1000,max-lines=7"));
}

/// The specification's example (and irctest's): one batch with one msgid and time for those
/// with the capability, the echo under the opening BATCH's label; separate lines for others,
/// the msgid on the first only; one stored message.
#[test]
fn a_batch_reaches_each_recipient_as_it_can_read_it_and_is_stored_once() {
    let mut h = Harness::new();
    let (alice, bob, charlie) = room(&mut h);
    send_all(
        &mut h,
        alice,
        &[
            "@label=xyz BATCH +123 draft/multiline #test",
            "@batch=123 PRIVMSG #test hello",
            "@batch=123 PRIVMSG #test :#how is ",
            "@batch=123;draft/multiline-concat PRIVMSG #test :everyone?",
        ],
    );
    assert!(h.take(bob).is_empty(), "nothing is delivered before the batch is closed");
    assert!(h.persisted.is_empty());
    h.send(alice, "BATCH -123");

    let echo = parsed(&h.take(alice));
    assert_eq!(echo.len(), 5, "{echo:#?}");
    let (start, end) = (&echo[0], &echo[4]);
    assert_eq!(start.command, "BATCH");
    assert_eq!(start.params[1..], ["draft/multiline", "#test"]);
    assert_eq!(tag(start, "label"), Some("xyz"), "the label is on the opening BATCH");
    assert_eq!(end.params, [format!("-{}", &start.params[0][1..])]);
    let msgid = tag(start, "msgid").expect("msgid on the BATCH").to_owned();
    let time = tag(start, "time").expect("time on the BATCH").to_owned();
    for m in &echo[1..4] {
        assert_eq!(m.command, "PRIVMSG");
        assert!(tag(m, "msgid").is_none() && tag(m, "time").is_none(), "{m:?}");
    }
    assert!(tag(&echo[3], "draft/multiline-concat").is_some());

    let relay = parsed(&h.take(bob));
    assert_eq!(relay.len(), 5);
    let reference = relay[0].params[0][1..].to_owned();
    assert_eq!(tag(&relay[0], "msgid"), Some(msgid.as_str()));
    assert_eq!(tag(&relay[0], "time"), Some(time.as_str()));
    assert_eq!(relay[0].source.as_deref().map(|s| s.starts_with("alice!")), Some(true));
    let texts: Vec<&str> = relay[1..4].iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["hello", "#how is ", "everyone?"]);
    assert!(relay[1..4].iter().all(|m| tag(m, "batch") == Some(reference.as_str())));
    assert_eq!(relay[4].params, [format!("-{reference}")]);

    let fallback = parsed(&h.take(charlie));
    let texts: Vec<&str> = fallback.iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["hello", "#how is ", "everyone?"], "the lines as alice composed them");
    let ids: Vec<Option<&str>> = fallback.iter().map(|m| tag(m, "msgid")).collect();
    assert_eq!(ids, [Some(msgid.as_str()), None, None]);
    assert!(fallback.iter().all(|m| tag(m, "time") == Some(time.as_str()) && tag(m, "batch").is_none()));
    assert!(fallback.iter().all(|m| tag(m, "draft/multiline-concat").is_none()));

    assert_eq!(h.persisted.len(), 1, "one stored message");
    let item = &h.persisted[0];
    assert_eq!((item.msgid.as_str(), item.command.as_str()), (msgid.as_str(), "PRIVMSG"));
    assert_eq!(item.text, "hello\n#how is everyone?");
}

/// Blank lines reach those with the capability and are left out for others; the opening
/// BATCH's client-only tags go with the message (on every fallback line).
#[test]
fn blank_lines_and_client_tags() {
    let mut h = Harness::new();
    let (alice, bob, charlie) = room(&mut h);
    send_all(
        &mut h,
        alice,
        &[
            "@+client-only-tag=x BATCH +b draft/multiline #test",
            "@batch=b PRIVMSG #test :",
            "@batch=b PRIVMSG #test :#how is ",
            "@batch=b;draft/multiline-concat PRIVMSG #test :everyone?",
            "BATCH -b",
        ],
    );
    let relay = parsed(&h.take(bob));
    assert_eq!(tag(&relay[0], "+client-only-tag"), Some("x"));
    let texts: Vec<&str> = relay[1..relay.len() - 1].iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["", "#how is ", "everyone?"]);
    let fallback = parsed(&h.take(charlie));
    let texts: Vec<&str> = fallback.iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["#how is ", "everyone?"]);
    assert!(fallback.iter().all(|m| tag(m, "+client-only-tag") == Some("x")));
    assert_eq!(tag(&fallback[0], "msgid"), tag(&relay[0], "msgid"));
    assert_eq!(h.persisted[0].text, "\n#how is everyone?");
    assert_eq!(h.persisted[0].tags, "+client-only-tag=x");
    h.take(alice);
}

/// Every malformed batch is refused with the code the specification gives, nothing of it is
/// delivered or stored, and the client can send the next one.
#[test]
fn malformed_batches_are_refused_and_nothing_of_them_leaves() {
    let mut cfg = Config::default();
    cfg.limits.autoreplay_lines = 0;
    cfg.limits.multiline_max_lines = 3;
    cfg.limits.multiline_max_bytes = 20;
    let mut h = Harness::with_config(cfg);
    let (alice, bob, charlie) = room(&mut h);
    let cases: &[(&[&str], &str, &[&str])] = &[
        (&["BATCH +1 draft/multiline #test", "@batch=231 PRIVMSG #test :hi"], "MULTILINE_INVALID", &[]),
        (
            &[
                "BATCH +2 draft/multiline #test",
                "@batch=2 PRIVMSG #test :hi",
                "@batch=2;draft/multiline-concat PRIVMSG #test :",
                "BATCH -2",
            ],
            "MULTILINE_INVALID",
            &[],
        ),
        (
            &[
                "BATCH +3 draft/multiline #test",
                "@batch=3 PRIVMSG #test a",
                "@batch=3 PRIVMSG #test b",
                "@batch=3 PRIVMSG #test c",
                "@batch=3 PRIVMSG #test d",
            ],
            "MULTILINE_MAX_LINES",
            &["3"],
        ),
        (
            &[
                "BATCH +4 draft/multiline #test",
                "@batch=4 PRIVMSG #test :0123456789",
                "@batch=4 PRIVMSG #test :0123456789",
            ],
            "MULTILINE_MAX_BYTES",
            &["20"],
        ),
        (
            &["BATCH +5 draft/multiline #test", "@batch=5 PRIVMSG #other :hi"],
            "MULTILINE_INVALID_TARGET",
            &["#test", "#other"],
        ),
        (
            &["BATCH +6 draft/multiline #test", "@batch=6 PRIVMSG #test :a", "@batch=6 NOTICE #test :b"],
            "MULTILINE_INVALID",
            &[],
        ),
        (&["BATCH +7 draft/multiline #test", "BATCH -7"], "MULTILINE_INVALID", &[]),
        (&["BATCH +8 draft/multiline #test", "@batch=8 PRIVMSG #test :", "BATCH -8"], "MULTILINE_INVALID", &[]),
        (&["BATCH +9 draft/multiline #test", "BATCH +10 draft/multiline #test"], "MULTILINE_INVALID", &[]),
        (&["@batch=nothing PRIVMSG #test :stray"], "MULTILINE_INVALID", &[]),
        (&["BATCH -nothing"], "MULTILINE_INVALID", &[]),
        (&["BATCH +11 netsplit"], "MULTILINE_INVALID", &[]),
        (&["BATCH +12 draft/multiline #test", "@batch=12 TAGMSG #test"], "MULTILINE_INVALID", &[]),
    ];
    for (lines, code, context) in cases {
        send_all(&mut h, alice, lines);
        // Whatever is left of a refused batch is dropped without another word.
        let reference = lines[0].split(' ').nth(1).unwrap_or_default();
        let open = lines.len() > 1 && !lines.iter().any(|l| l.starts_with("BATCH -"));
        if let Some(name) = reference.strip_prefix('+').filter(|_| open) {
            h.send(alice, &format!("@batch={name} PRIVMSG #test :late"));
            h.send(alice, &format!("BATCH -{name}"));
        }
        let got = h.take(alice);
        let (got_code, got_context) = fail(&got);
        assert_eq!(got_code, *code, "{lines:?}: {got:#?}");
        assert!(got_context.starts_with(&context.iter().map(|s| s.to_string()).collect::<Vec<_>>()), "{got_context:?}");
        assert_eq!(all(&got, "FAIL").len(), 1, "one refusal for {lines:?}: {got:#?}");
        assert!(h.take(bob).is_empty() && h.take(charlie).is_empty(), "nothing of {lines:?} was delivered");
        assert!(h.persisted.is_empty(), "nothing of {lines:?} was stored");
    }
    // And the next batch goes through.
    send_all(&mut h, alice, &["BATCH +ok draft/multiline #test", "@batch=ok PRIVMSG #test :fine", "BATCH -ok"]);
    assert_eq!(all(&h.take(charlie), "PRIVMSG"), [["#test", "fine"]]);
    assert_eq!(h.persisted.len(), 1);
}

/// A command that is not the batch's ends it (refused), and then runs; PING and PONG keep the
/// connection alive without interrupting it.
#[test]
fn another_command_ends_an_open_batch_but_ping_does_not() {
    let mut h = Harness::new();
    let (alice, bob, _charlie) = room(&mut h);
    send_all(&mut h, alice, &["BATCH +a draft/multiline #test", "@batch=a PRIVMSG #test :one", "PING keepalive"]);
    assert_eq!(expect(&h.take(alice), "PONG").params.last().map(String::as_str), Some("keepalive"));
    send_all(&mut h, alice, &["@batch=a PRIVMSG #test :two", "BATCH -a"]);
    let relay = parsed(&h.take(bob));
    assert_eq!(relay.iter().filter(|m| m.command == "PRIVMSG").count(), 2, "PING did not break it: {relay:#?}");
    h.take(alice);

    send_all(
        &mut h,
        alice,
        &["BATCH +b draft/multiline #test", "@batch=b PRIVMSG #test :one", "TOPIC #test :new topic"],
    );
    let lines = h.take(alice);
    assert_eq!(fail(&lines).0, "MULTILINE_INVALID");
    assert!(find(&lines, "TOPIC").is_some(), "the command runs after the refusal: {lines:#?}");
    let fail_at = lines.iter().position(|l| l.contains("FAIL")).unwrap_or(usize::MAX);
    let topic_at = lines.iter().position(|l| l.contains(" TOPIC ")).unwrap_or(0);
    assert!(fail_at < topic_at, "in order: {lines:#?}");
    assert!(all(&h.take(bob), "PRIVMSG").is_empty());
}

/// A batch left open is dropped after the timeout, and a disconnect drops it quietly.
#[test]
fn an_open_batch_is_bounded_in_time() {
    let mut h = Harness::new();
    let (alice, bob, _charlie) = room(&mut h);
    send_all(&mut h, alice, &["@label=L BATCH +a draft/multiline #test", "@batch=a PRIVMSG #test :one"]);
    h.advance(Duration::from_secs(10));
    assert!(h.take(alice).iter().all(|l| !l.contains("FAIL")));
    h.advance(Duration::from_secs(25));
    let lines = h.take(alice);
    let failed = expect(&lines, "FAIL");
    assert_eq!(failed.params[1], "MULTILINE_INVALID");
    assert_eq!(failed.tag("label"), Some("L"), "the refusal answers the opening BATCH's label");
    h.send(alice, "@batch=a PRIVMSG #test :two");
    assert_eq!(fail(&h.take(alice)).0, "MULTILINE_INVALID", "the batch is gone");
    assert!(all(&h.take(bob), "PRIVMSG").is_empty());

    send_all(&mut h, alice, &["BATCH +b draft/multiline #test", "@batch=b PRIVMSG #test :one"]);
    h.disconnect(alice, "gone");
    assert!(all(&h.take(bob), "PRIVMSG").is_empty(), "an unfinished message never leaves");
    assert!(h.persisted.is_empty());
}

/// A batch of as many lines as allowed is one command: it neither overflows the RecvQ (64
/// lines) nor waits behind the flood budget line by line.
#[test]
fn a_long_batch_is_one_command_for_flood_control() {
    let mut h = Harness::new();
    let (alice, bob, charlie) = room(&mut h);
    h.send(alice, "BATCH +big draft/multiline #test");
    for i in 0..100 {
        h.send(alice, &format!("@batch=big PRIVMSG #test :line {i}"));
    }
    h.send(alice, "BATCH -big");
    assert!(!h.is_closed(alice), "not an excess flood");
    let relay = parsed(&h.take(bob));
    assert_eq!(relay.iter().filter(|m| m.command == "PRIVMSG").count(), 100);
    assert_eq!(all(&h.take(charlie), "PRIVMSG").len(), 100);
    assert_eq!(h.persisted.len(), 1);
    assert_eq!(h.persisted[0].text.lines().count(), 100);
    h.take(alice);
}

/// A line that would not fit 512 bytes once relayed with the sender's prefix is cut into
/// continuations rather than truncated: nothing is lost, for either kind of recipient.
#[test]
fn long_lines_are_continued_not_cut() {
    let mut h = Harness::new();
    let (alice, bob, charlie) = room(&mut h);
    let words = "word ".repeat(95);
    let words = words.trim_end();
    send_all(
        &mut h,
        alice,
        &["BATCH +l draft/multiline #test", &format!("@batch=l PRIVMSG #test :{words}"), "BATCH -l"],
    );
    let relay = h.take(bob);
    assert!(relay.iter().all(|l| l.split_once(' ').map_or(l.len(), |(_, body)| body.len()) + 2 <= 512));
    let relay = parsed(&relay);
    let lines: Vec<&Message> = relay.iter().filter(|m| m.command == "PRIVMSG").collect();
    assert!(lines.len() >= 2, "{relay:#?}");
    assert!(lines[1..].iter().all(|m| tag(m, "draft/multiline-concat").is_some()));
    let rebuilt: String = lines.iter().map(|m| m.params[1].as_str()).collect();
    assert_eq!(rebuilt, words);
    let fallback: String = all(&h.take(charlie), "PRIVMSG").iter().map(|p| p[1].clone()).collect();
    assert_eq!(fallback, words);
    assert_eq!(h.persisted[0].text, words);
    h.take(alice);
}

/// To a nick: delivered and echoed like a private message; to an account that is away: kept
/// for it and delivered at its login as a batch.
#[test]
fn private_and_offline_multiline_messages() {
    let mut h = Harness::new();
    let alice = h.register_with_caps("alice", WITH_MULTILINE);
    let dave = h.register_with_caps("dave", CAPS);
    h.login(alice, "alice");
    h.login(dave, "dave");
    send_all(
        &mut h,
        alice,
        &[
            "BATCH +p draft/multiline dave",
            "@batch=p PRIVMSG dave :roses",
            "@batch=p PRIVMSG dave :violets",
            "BATCH -p",
        ],
    );
    assert_eq!(all(&h.take(dave), "PRIVMSG"), [["dave", "roses"], ["dave", "violets"]]);
    let echo = parsed(&h.take(alice));
    assert_eq!(echo.first().map(|m| m.params[1].as_str()), Some("draft/multiline"));
    assert_eq!(h.persisted.len(), 1);
    assert_eq!(h.persisted[0].participants.len(), 2);

    // erin is registered and away: the message waits for her.
    h.server.restore(vec!["erin".into()], Vec::new());
    send_all(
        &mut h,
        alice,
        &[
            "BATCH +o draft/multiline erin",
            "@batch=o PRIVMSG erin :see you",
            "@batch=o PRIVMSG erin :tomorrow",
            "BATCH -o",
        ],
    );
    let item = h.persisted.last().cloned().expect("stored");
    assert_eq!(item.offline_for.as_deref(), Some("erin"));
    assert_eq!(item.text, "see you\ntomorrow");
    h.take(alice);

    let erin = h.register_with_caps("erin", WITH_MULTILINE);
    h.send(erin, "NS IDENTIFY erin password123");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("erin".into())));
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::Offline { .. }), "{request:?}");
    h.respond(id, Response::Messages(Ok(vec![item.clone()])));
    let got = parsed(&h.take(erin));
    let start = got.iter().position(|m| m.command == "BATCH").expect("a batch");
    assert_eq!(got[start].params[1..], ["draft/multiline", "erin"]);
    assert_eq!(got[start].tag("msgid"), Some(item.msgid.as_str()));
    let texts: Vec<&str> = got.iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].as_str()).collect();
    assert_eq!(texts, ["see you", "tomorrow"]);
    assert!(got.iter().any(|m| m.command == "PING"), "the page is acknowledged as usual");
}

/// CHATHISTORY replays a stored multiline message as a batch inside the chathistory batch to
/// clients with the capability, and line by line to others; so does the replay on JOIN.
#[test]
fn history_replays_a_multiline_message_as_it_was_sent() {
    let mut h = Harness::new();
    let (alice, _bob, _charlie) = room(&mut h);
    let reader = h.register_with_caps("reader", &format!("{WITH_MULTILINE} draft/chathistory"));
    let plain = h.register_with_caps("plain", &format!("{CAPS} draft/chathistory"));
    for c in [reader, plain] {
        h.send(c, "JOIN #test");
    }
    send_all(
        &mut h,
        alice,
        &[
            "BATCH +h draft/multiline #test",
            "@batch=h PRIVMSG #test :first",
            "@batch=h PRIVMSG #test :second",
            "BATCH -h",
        ],
    );
    let item: HistoryItem = h.persisted[0].clone();
    h.clear(&[alice, reader, plain]);

    h.send(reader, "CHATHISTORY LATEST #test * 10");
    let (id, _) = h.next_request();
    h.respond(id, Response::Messages(Ok(vec![item.clone()])));
    let got = parsed(&h.take(reader));
    let outer = got.iter().find(|m| m.params.get(1).is_some_and(|t| t == "chathistory")).expect("chathistory batch");
    let outer_ref = &outer.params[0][1..];
    let inner = got.iter().find(|m| m.params.get(1).is_some_and(|t| t == "draft/multiline")).expect("multiline batch");
    assert_eq!(inner.tag("batch"), Some(outer_ref), "nested in the chathistory batch");
    assert_eq!(inner.tag("msgid"), Some(item.msgid.as_str()));
    let inner_ref = &inner.params[0][1..];
    let lines: Vec<&Message> = got.iter().filter(|m| m.command == "PRIVMSG").collect();
    assert_eq!(lines.iter().map(|m| m.params[1].as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert!(lines.iter().all(|m| m.tag("batch") == Some(inner_ref)));

    h.send(plain, "CHATHISTORY LATEST #test * 10");
    let (id, _) = h.next_request();
    h.respond(id, Response::Messages(Ok(vec![item.clone()])));
    let got = parsed(&h.take(plain));
    let lines: Vec<&Message> = got.iter().filter(|m| m.command == "PRIVMSG").collect();
    assert_eq!(lines.iter().map(|m| m.params[1].as_str()).collect::<Vec<_>>(), ["first", "second"]);
    assert_eq!(lines[0].tag("msgid"), Some(item.msgid.as_str()));
    assert!(lines[1].tag("msgid").is_none());
    assert!(!got.iter().any(|m| m.params.get(1).is_some_and(|t| t == "draft/multiline")));
}

/// A message to oneself with echo-message and a label: both copies (echo and delivery) in the
/// label's batch, each a multiline batch of its own.
#[test]
fn a_multiline_message_to_oneself_arrives_twice_under_one_label() {
    let mut h = Harness::new();
    let alice = h.register_with_caps("alice", WITH_MULTILINE);
    send_all(
        &mut h,
        alice,
        &[
            "@label=me BATCH +s draft/multiline alice",
            "@batch=s PRIVMSG alice :note",
            "@batch=s PRIVMSG alice :two",
            "BATCH -s",
        ],
    );
    let got = parsed(&h.take(alice));
    assert_eq!(got[0].params.get(1).map(String::as_str), Some("labeled-response"), "{got:#?}");
    assert_eq!(got[0].tag("label"), Some("me"));
    let inner = got.iter().filter(|m| m.params.get(1).is_some_and(|t| t == "draft/multiline")).count();
    assert_eq!(inner, 2, "{got:#?}");
    assert_eq!(got.iter().filter(|m| m.command == "PRIVMSG").count(), 4);
}

/// A client without the capability that sends a batch is told to enable it; its lines run as
/// usual.
#[test]
fn a_batch_without_the_capability_is_refused() {
    let mut h = Harness::new();
    let (_, bob, _) = room(&mut h);
    let old = h.register_with_caps("old", CAPS);
    h.send(old, "JOIN #test");
    h.take(old);
    h.send(old, "BATCH +x draft/multiline #test");
    assert_eq!(fail(&h.take(old)).0, "MULTILINE_INVALID");
    h.send(old, "@batch=x PRIVMSG #test :plain line");
    assert_eq!(all(&h.take(bob), "PRIVMSG"), [["#test", "plain line"]]);
}

/// Multiline messages that pile up behind the flood budget are bounded: past 16 waiting the
/// client is dropped as a flooder, having delivered only what its budget allowed.
#[test]
fn a_flood_of_multiline_messages_is_dropped() {
    let mut h = Harness::new();
    let (alice, bob, _) = room(&mut h);
    for i in 0..60 {
        if h.is_closed(alice) {
            break;
        }
        send_all(
            &mut h,
            alice,
            &[&format!("BATCH +f{i} draft/multiline #test"), &format!("@batch=f{i} PRIVMSG #test :x{i}")],
        );
        for _ in 0..20 {
            h.send(alice, &format!("@batch=f{i} PRIVMSG #test :{}", "y".repeat(150)));
        }
        h.send(alice, &format!("BATCH -f{i}"));
    }
    assert!(h.is_closed(alice), "a flooder is dropped");
    let delivered =
        parsed(&h.take(bob)).iter().filter(|m| m.command == "BATCH" && m.params[0].starts_with('+')).count();
    assert!(delivered < 30, "only what the budget allowed went out: {delivered}");
}
