//! History as the core sees it: what is persisted, CHATHISTORY requests and batches, offline
//! delivery, and durable rooms. The test plays the edge.

mod support;

use std::time::Duration;

use chinwag_core::{Bound, ChannelSnapshot, HistoryItem, HistoryQuery, Request, Response};
use support::{expect, find, parsed, Harness};

#[test]
fn room_messages_are_persisted_and_private_ones_only_with_an_account() {
    let mut h = Harness::new();
    let [a, b] = h.members_of("#general", &["amy", "ben"])[..] else { unreachable!() };
    h.send(a, "@+draft/react=x PRIVMSG #General :hi room");
    h.send(a, "TAGMSG #general");
    h.send(a, "PRIVMSG ben :not kept: no account on either side");
    assert_eq!(h.persisted.len(), 1);
    let item = &h.persisted[0];
    assert_eq!(
        (item.conversation.as_str(), item.target.as_str(), item.text.as_str()),
        ("#general", "#general", "hi room")
    );
    assert!(item.sender.starts_with("amy!"));
    h.login(b, "ben");
    h.send(a, "PRIVMSG ben :kept: ben has an account");
    assert_eq!(h.persisted.len(), 2);
    let dm = &h.persisted[1];
    assert_eq!(dm.participants, ["ben"]);
    assert_eq!(dm.conversation, chinwag_core::dm_conversation("~amy", "ben"), "amy is a guest: `~amy`");
}

#[test]
fn a_message_to_an_offline_account_is_kept_then_delivered_with_its_time() {
    let mut h = Harness::new();
    h.server.restore(vec!["carl".into()], vec![]);
    let a = h.register_with_caps("ann", "echo-message");
    h.send(a, "PRIVMSG carl :while you were out");
    assert!(find(&h.take(a), "401").is_none(), "no error for a registered account");
    let item: HistoryItem = h.persisted.last().cloned().expect("persisted");
    assert_eq!(item.offline_for.as_deref(), Some("carl"));

    let c = h.register_with_caps("carl", "server-time message-tags");
    h.send(c, "NS IDENTIFY carl password123");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("carl".into())));
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::Offline { ref account, .. } if account == "carl"));
    h.respond(id, Response::Messages(Ok(vec![item.clone()])));
    let lines = h.take(c);
    let m = expect(&lines, "PRIVMSG");
    assert_eq!(m.params, ["carl", "while you were out"]);
    assert_eq!(m.tag("time"), Some(chinwag_core::rfc3339_ms(item.time_ms).as_str()));
    assert_eq!(m.tag("msgid"), Some(item.msgid.as_str()));
    assert!(h.cleared_offline.is_empty(), "kept until the client shows it read it");
    let ping = expect(&lines, "PING");
    h.send(c, &format!("PONG {}", ping.params[0]));
    assert_eq!(h.cleared_offline, [("carl".to_owned(), item.msgid.clone())]);
}

#[test]
fn chathistory_asks_storage_and_answers_in_a_labeled_batch() {
    let mut h = Harness::new();
    let a = h.register_with_caps("dora", "batch server-time message-tags labeled-response draft/chathistory");
    let outsider = h.register("eli");
    h.send(a, "JOIN #general");
    h.send(a, "PRIVMSG #general :first");
    let item = h.persisted[0].clone();
    h.take(a);
    h.send(a, "@label=h1 CHATHISTORY LATEST #general * 50");
    let (id, req) = h.next_request();
    assert_eq!(
        req,
        Request::History {
            conversation: "#general".into(),
            query: HistoryQuery::Latest { after: None },
            limit: 50,
            events: false
        }
    );
    assert!(h.take(a).is_empty(), "no ACK: the answer carries the label");
    h.respond(id, Response::Messages(Ok(vec![item.clone()])));
    let lines = h.take(a);
    let ms = parsed(&lines);
    let outer = &ms[0];
    assert_eq!((outer.command.as_str(), outer.tag("label")), ("BATCH", Some("h1")));
    let inner =
        ms.iter().find(|m| m.command == "BATCH" && m.params.get(1).is_some_and(|t| t == "chathistory")).expect("inner");
    let privmsg = expect(&lines, "PRIVMSG");
    assert_eq!(privmsg.params[1], "first");
    assert_eq!(privmsg.tag("batch"), Some(&inner.params[0][1..]));
    assert_eq!(privmsg.tag("msgid"), Some(item.msgid.as_str()));

    h.send(a, "CHATHISTORY BEFORE #general msgid=abc 500");
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::History { limit: 100, .. }), "limits are capped: {req:?}");
    h.respond(id, Response::Messages(Ok(Vec::new())));
    h.send(a, "CHATHISTORY AFTER #general timestamp=2026-11-21T14:00:00.000Z 10");
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::History { query: HistoryQuery::After(chinwag_core::Bound::Time(_)), .. }));
    h.respond(id, Response::Messages(Ok(Vec::new())));
    h.send(a, "CHATHISTORY BEFORE #general garbage 10");
    assert_eq!(expect(&h.take(a), "FAIL").params[1], "INVALID_PARAMS");
    h.send(outsider, "CHATHISTORY LATEST #general * 10");
    assert_eq!(expect(&h.take(outsider), "FAIL").params[1], "INVALID_TARGET");
    h.send(outsider, "CHATHISTORY FROB x");
    assert_eq!(expect(&h.take(outsider), "FAIL").params[1], "INVALID_PARAMS");
    assert!(h.requests.is_empty());
}

#[test]
fn rooms_are_saved_when_they_change_and_restored() {
    let mut h = Harness::new();
    let a = h.register("fay");
    h.send(a, "JOIN #club");
    assert_eq!(h.saved_rooms.last().map(|s| s.name.as_str()), Some("#club"));
    h.send(a, "TOPIC #club :the club");
    h.send(a, "MODE #club +sk-n secret");
    h.send(a, "MODE #club +b spam!*@*");
    let snap = h.saved_rooms.last().cloned().expect("saved");
    assert_eq!(snap.topic.as_ref().map(|t| t.0.as_str()), Some("the club"));
    assert_eq!((snap.modes.as_str(), snap.key.as_deref()), ("+st", Some("secret")));
    assert_eq!(snap.bans[0].0, "spam!*@*");
    h.send(a, "PART #club");
    assert_eq!(h.deleted_rooms, ["#club"]);

    let mut h2 = Harness::new();
    let general = ChannelSnapshot {
        name: "#general".into(),
        created_ms: 1,
        topic: Some(("welcome".into(), "admin".into(), 5)),
        modes: "+nt".into(),
        key: None,
        limit: None,
        bans: vec![],
        excepts: vec![],
        invex: vec![],
        founder: None,
    };
    h2.server.restore(vec![], vec![snap, general]);
    let b = h2.register("gus");
    h2.send(b, "JOIN #general");
    assert_eq!(expect(&h2.take(b), "332").params[2], "welcome");
    h2.send(b, "JOIN #club");
    assert_eq!(expect(&h2.take(b), "475").params[1], "#club", "the key survived");
    h2.send(b, "JOIN #club secret");
    let lines = h2.take(b);
    assert_eq!(expect(&lines, "332").params[2], "the club");
    assert_eq!(
        expect(&lines, "353").params[3],
        "gus",
        "a founderless room restored: the first joiner does not run it (an administrator gives op)"
    );
}

#[test]
fn the_founder_of_a_room_runs_it_and_is_never_locked_out() {
    let mut h = Harness::new();
    let fay = h.register("fay");
    h.login(fay, "fay");
    h.send(fay, "JOIN #den");
    assert_eq!(h.saved_rooms.last().and_then(|s| s.founder.clone()).as_deref(), Some("fay"));
    h.send(fay, "MODE #den +i");
    h.send(fay, "PART #den");
    let snap = h.saved_rooms.last().cloned().expect("saved");

    let mut h = Harness::new();
    h.server.restore(vec!["fay".into()], vec![snap]);
    let gus = h.register("gus");
    h.send(gus, "JOIN #den");
    expect(&h.take(gus), "473");
    let fay = h.register("fay");
    h.login(fay, "fay");
    h.send(fay, "JOIN #den");
    assert_eq!(expect(&h.take(fay), "353").params[3], "@fay", "the founder gets in and gets operator status");
    h.send(fay, "INVITE gus #den");
    h.send(gus, "JOIN #den");
    let names = expect(&h.take(gus), "353");
    assert!(names.params[3].contains("@fay") && names.params[3].contains("gus"));
    assert!(!names.params[3].contains("@gus"), "only the founder was made operator");
}

#[test]
fn shutdown_does_not_forget_rooms_and_founded_rooms_outlive_their_members() {
    let mut h = Harness::new();
    let a = h.register("hal");
    h.send(a, "JOIN #adhoc");
    let b = h.register("ida");
    h.login(b, "ida");
    h.send(b, "JOIN #owned");
    h.send(b, "PART #owned");
    assert!(h.deleted_rooms.is_empty(), "a founded room stays: {:?}", h.deleted_rooms);
    h.send(a, "LIST");
    assert!(parsed(&h.take(a)).iter().any(|m| m.command == "322" && m.params[1] == "#owned"));
    h.close_all("bye");
    assert!(h.is_closed(a), "close_all did run");
    assert!(h.deleted_rooms.is_empty(), "shutdown emptied #adhoc but must not forget it");
}

#[test]
fn an_account_founds_a_bounded_number_of_rooms() {
    let mut cfg = chinwag_core::Config::default();
    cfg.limits.rooms_per_account = 2;
    let mut h = Harness::with_config(cfg);
    let fay = h.register("fay");
    h.login(fay, "fay");
    for room in ["#one", "#two", "#three"] {
        h.send(fay, &format!("JOIN {room}"));
        h.send(fay, &format!("PART {room}"));
    }
    let founded: Vec<&str> =
        h.saved_rooms.iter().filter(|s| s.founder.as_deref() == Some("fay")).map(|s| s.name.as_str()).collect();
    assert_eq!(founded, ["#one", "#two"]);
    assert!(h.deleted_rooms.iter().any(|r| r == "#three"), "the third room went away when empty");
    let notice = expect(&h.take(fay), "NOTICE");
    assert!(notice.params[1].contains("already founded 2 rooms"), "{notice:?}");
}

/// A room that is not permanent goes when its last member leaves, but storage keeps its history
/// under its name. Whoever makes a room of that name later (and is its operator) starts a new
/// room: it reads nothing of what was said in the old one, whatever storage answers, and a
/// query from before the new room began starts at its beginning.
#[test]
fn a_room_made_again_under_an_old_name_reads_nothing_of_the_old_rooms_history() {
    let mut h = Harness::new();
    let [a, b] = h.members_of("#plans", &["amy", "ben"])[..] else { unreachable!() };
    h.send(a, "MODE #plans +is");
    h.send(a, "PRIVMSG #plans :the old room's secret");
    let old = h.persisted.last().cloned().expect("kept");
    h.send(b, "PART #plans");
    h.send(a, "PART #plans");
    assert_eq!(h.deleted_rooms, ["#plans"], "the room is gone");

    h.advance(Duration::from_secs(1));
    let mallory = h.register_with_caps("mallory", "batch draft/chathistory");
    h.send(mallory, "JOIN #plans");
    h.send(mallory, "PRIVMSG #plans :the new room's first");
    let new = h.persisted.last().cloned().expect("kept");
    assert_eq!(new.conversation, old.conversation, "storage keeps both under the room's name");
    h.take(mallory);
    h.send(mallory, "CHATHISTORY LATEST #plans * 100");
    let (id, _) = h.next_request();
    h.respond(id, Response::Messages(Ok(vec![old.clone(), new.clone()])));
    let lines = h.take(mallory);
    assert!(!lines.iter().any(|l| l.contains("old room's secret")), "the old room's history leaked: {lines:?}");
    assert!(lines.iter().any(|l| l.contains("new room's first")), "{lines:?}");

    h.send(mallory, "CHATHISTORY AFTER #plans timestamp=2020-01-01T00:00:00.000Z 100");
    let (id, request) = h.next_request();
    match request {
        Request::History { query: HistoryQuery::After(Bound::Time(t)), .. } => {
            assert!(t >= old.time_ms && t < new.time_ms, "starts where the new room began: {t}");
        }
        other => panic!("{other:?}"),
    }
    h.respond(id, Response::Messages(Ok(vec![old.clone(), new])));
    let lines = h.take(mallory);
    assert!(!lines.iter().any(|l| l.contains("old room's secret")), "{lines:?}");

    // Nor does TARGETS tell when the old room last spoke.
    h.send(mallory, "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10");
    let (id, _) = h.next_request();
    h.respond(id, Response::Targets(Ok(vec![("#plans".into(), old.time_ms)])));
    let lines = h.take(mallory);
    assert!(!lines.iter().any(|l| l.contains("TARGETS #plans")), "{lines:?}");
}

/// A default room is never forgotten: its whole history stays readable to its members.
#[test]
fn a_default_rooms_history_is_all_readable() {
    let mut h = Harness::new();
    let a = h.register_with_caps("amy", "batch draft/chathistory");
    h.send(a, "JOIN #general");
    h.take(a);
    let before = HistoryItem {
        msgid: "0000000000000000001".into(),
        time_ms: 1_000,
        command: "PRIVMSG".into(),
        sender: "old!~old@host".into(),
        sender_account: None,
        target: "#general".into(),
        text: "from long ago".into(),
        tags: String::new(),
        conversation: "#general".into(),
        participants: Vec::new(),
        offline_for: None,
    };
    h.send(a, "CHATHISTORY LATEST #general * 10");
    let (id, _) = h.next_request();
    h.respond(id, Response::Messages(Ok(vec![before])));
    assert!(h.take(a).iter().any(|l| l.contains("from long ago")));
}

/// While the edge says storage is full, a message that would be stored is refused with
/// `FAIL … TEMPORARILY_UNAVAILABLE` (NOTICE too) and reaches nobody; one that is not stored
/// (no account on either side), and everything else, goes on; when storage frees up, messages
/// are accepted again.
#[test]
fn messages_that_need_storage_are_refused_while_it_is_full() {
    let mut h = Harness::new();
    let [a, b] = h.members_of("#general", &["amy", "ben"])[..] else { unreachable!() };
    h.login(b, "ben");
    h.clear(&[a, b]);
    h.server.set_storage_room(1);
    h.send(a, "PRIVMSG #general :the last one that fits");
    assert_eq!(h.persisted.len(), 1);
    assert_eq!(expect(&h.take(b), "PRIVMSG").params[1], "the last one that fits");
    h.clear(&[a]);

    h.send(a, "PRIVMSG #general :not now");
    h.send(a, "NOTICE #general :nor this");
    h.send(a, "PRIVMSG ben :nor this, ben has an account");
    h.send(a, "PRIVMSG nobody-online :unknown target: no storage needed to say so");
    h.send(a, "PING :still-there");
    let lines = h.take(a);
    let fails: Vec<Vec<String>> =
        parsed(&lines).into_iter().filter(|m| m.command == "FAIL").map(|m| m.params).collect();
    assert_eq!(fails.len(), 3, "{lines:#?}");
    for (fail, command, target) in
        [(&fails[0], "PRIVMSG", "#general"), (&fails[1], "NOTICE", "#general"), (&fails[2], "PRIVMSG", "ben")]
    {
        assert_eq!(fail[..3], [command, "TEMPORARILY_UNAVAILABLE", target], "{fail:?}");
    }
    assert!(find(&lines, "401").is_some(), "the rest is answered as usual: {lines:#?}");
    assert_eq!(expect(&lines, "PONG").params[1], "still-there");
    assert_eq!(h.persisted.len(), 1, "nothing refused is stored");
    assert!(h.take(b).is_empty(), "nothing refused is delivered");

    h.server.set_storage_room(10);
    h.send(a, "PRIVMSG #general :now it goes");
    assert_eq!(h.persisted.len(), 2);
    assert_eq!(expect(&h.take(b), "PRIVMSG").params[1], "now it goes");
    assert!(find(&h.take(a), "FAIL").is_none());
}

/// A note to oneself is one message: stored once, in the conversation of the account with
/// itself, and read back once through CHATHISTORY on one's own nick (though echo-message
/// showed it twice, as the echo and the delivery).
#[test]
fn a_message_to_oneself_is_stored_once_and_read_back_once() {
    let mut h = Harness::new();
    let a = h.register_with_caps("gil", "echo-message batch message-tags draft/chathistory");
    h.login(a, "gil");
    h.send(a, "PRIVMSG Gil :note to self");
    assert_eq!(parsed(&h.take(a)).iter().filter(|m| m.command == "PRIVMSG").count(), 2);
    assert_eq!(h.persisted.len(), 1, "{:#?}", h.persisted);
    let item = h.persisted[0].clone();
    assert_eq!(item.conversation, chinwag_core::dm_conversation("gil", "gil"));
    assert_eq!(item.participants, ["gil"], "the one party, once");
    h.send(a, "CHATHISTORY LATEST gil * 10");
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::History { ref conversation, .. } if *conversation == item.conversation), "{req:?}");
    h.respond(id, Response::Messages(Ok(vec![item.clone()])));
    let lines = h.take(a);
    let ms = parsed(&lines);
    let copies: Vec<_> = ms.iter().filter(|m| m.command == "PRIVMSG").collect();
    assert_eq!(copies.len(), 1, "{lines:#?}");
    assert_eq!(copies[0].params, ["gil", "note to self"]);
}

/// `CHATHISTORY TARGETS` answers with the bare timestamp (`timestamp=` marks a query's bound,
/// not an answer), and a refused target names the subcommand:
/// `FAIL CHATHISTORY INVALID_TARGET <subcommand> <target> :…`.
#[test]
fn targets_give_bare_timestamps_and_a_refused_target_names_the_subcommand() {
    let mut h = Harness::new();
    let a = h.register_with_caps("hal", "batch server-time message-tags draft/chathistory");
    h.send(a, "JOIN #general");
    h.take(a);
    h.send(a, "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2100-01-01T00:00:00.000Z 10");
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::HistoryTargets { .. }), "{req:?}");
    let latest = 1_795_269_772_123;
    h.respond(id, Response::Targets(Ok(vec![("#general".into(), latest)])));
    let lines = h.take(a);
    let line = expect(&lines, "CHATHISTORY");
    assert_eq!(line.params, ["TARGETS", "#general", chinwag_core::rfc3339_ms(latest).as_str()], "{lines:#?}");

    for (query, sub, target) in [
        ("CHATHISTORY LATEST #secret * 10", "LATEST", "#secret"),
        ("CHATHISTORY BEFORE #secret timestamp=2026-01-01T00:00:00.000Z 10", "BEFORE", "#secret"),
        ("CHATHISTORY between bob msgid=a msgid=b 10", "BETWEEN", "bob"),
    ] {
        h.send(a, query);
        let fail = expect(&h.take(a), "FAIL");
        assert_eq!(fail.params[..4], ["CHATHISTORY", "INVALID_TARGET", sub, target], "{fail:?}");
    }
    assert!(h.requests.is_empty());
}
