//! Rooms and messages: JOIN, PART, TOPIC, NAMES, LIST, PRIVMSG, NOTICE, TAGMSG.

mod support;

use support::{expect, find, parsed, Harness};

#[test]
fn default_rooms_are_listed_while_empty() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "LIST");
    let lines = h.take(a);
    let rooms: Vec<String> =
        parsed(&lines).into_iter().filter(|m| m.command == "322").map(|m| m.params[1].clone()).collect();
    assert_eq!(rooms, ["#general", "#random", "#tech"]);
    expect(&lines, "323");
}

#[test]
fn first_joiner_of_a_new_room_is_operator_and_everyone_sees_joins() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(a, "JOIN #rust");
    let lines = h.take(a);
    assert_eq!(expect(&lines, "JOIN").params, ["#rust"]);
    assert_eq!(expect(&lines, "353").params[3], "@alice");
    h.send(b, "JOIN #RUST");
    let join = expect(&h.take(a), "JOIN");
    assert!(join.source.as_deref().is_some_and(|s| s.starts_with("bob!")));
    assert_eq!(join.params, ["#rust"], "canonical spelling of the room");
    let names = expect(&h.take(b), "353");
    assert_eq!(names.params[3], "@alice bob");
}

#[test]
fn default_rooms_do_not_hand_out_operator_status() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "JOIN #general");
    assert_eq!(expect(&h.take(a), "353").params[3], "alice");
}

#[test]
fn join_several_rooms_with_keys_and_part_them() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "JOIN #a,#b,#c");
    let joins = parsed(&h.take(a)).into_iter().filter(|m| m.command == "JOIN").count();
    assert_eq!(joins, 3);
    h.send(a, "PART #a,#b :bye now");
    let lines = h.take(a);
    let part = expect(&lines, "PART");
    assert_eq!(part.params, ["#a", "bye now"]);
    h.send(a, "PART #b");
    expect(&h.take(a), "403");
    h.send(a, "PART #general");
    expect(&h.take(a), "442");
}

#[test]
fn channel_messages_reach_members_but_not_the_sender_unless_echo() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register_with_caps("bob", "echo-message server-time message-tags");
    let c = h.register("carol");
    for x in [a, b, c] {
        h.send(x, "JOIN #general");
    }
    h.clear(&[a, b, c]);
    h.send(a, "PRIVMSG #general :hello room");
    assert!(h.take(a).is_empty(), "no echo without echo-message");
    let at_b = expect(&h.take(b), "PRIVMSG");
    assert_eq!(at_b.params, ["#general", "hello room"]);
    assert!(at_b.tag("time").is_some() && at_b.tag("msgid").is_some());
    let at_c = expect(&h.take(c), "PRIVMSG");
    assert!(at_c.tags.is_empty(), "no tags for a client that asked for none");
    h.send(b, "PRIVMSG #general :hi alice");
    let echo = expect(&h.take(b), "PRIVMSG");
    let at_a = h.take(a);
    assert_eq!(expect(&at_a, "PRIVMSG").params[1], "hi alice");
    assert!(echo.tag("msgid").is_some());
}

#[test]
fn each_member_gets_the_room_message_with_exactly_its_own_tags_and_in_order() {
    let mut h = Harness::new();
    let sender = h.register("sender");
    // Every combination of the three capabilities that change how a message looks.
    let combos = [
        "",
        "message-tags",
        "server-time",
        "account-tag",
        "message-tags server-time",
        "server-time account-tag",
        "message-tags account-tag",
        "message-tags server-time account-tag",
    ];
    let members: Vec<_> =
        combos.iter().enumerate().map(|(i, caps)| (h.register_with_caps(&format!("m{i}"), caps), *caps)).collect();
    h.send(sender, "JOIN #mix");
    for (m, _) in &members {
        h.send(*m, "JOIN #mix");
    }
    let all: Vec<_> = members.iter().map(|(m, _)| *m).chain([sender]).collect();
    h.clear(&all);
    h.send(sender, "PRIVMSG #mix :first");
    h.send(sender, "PRIVMSG #mix :second");
    for (m, caps) in &members {
        let got = parsed(&h.take(*m));
        let texts: Vec<_> = got.iter().map(|g| g.params[1].as_str()).collect();
        assert_eq!(texts, ["first", "second"], "{caps:?}: once each, in order");
        for msg in &got {
            assert_eq!(msg.tag("msgid").is_some(), caps.contains("message-tags"), "{caps:?}: {msg:?}");
            assert_eq!(msg.tag("time").is_some(), caps.contains("server-time"), "{caps:?}: {msg:?}");
            // The sender has no account, so account-tag adds nothing.
            assert!(msg.tag("account").is_none(), "{caps:?}: {msg:?}");
        }
    }
}

#[test]
fn private_messages_and_notices() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(a, "PRIVMSG Bob :psst");
    let m = expect(&h.take(b), "PRIVMSG");
    assert_eq!(m.params, ["bob", "psst"]);
    assert!(m.source.as_deref().is_some_and(|s| s.starts_with("alice!~alice@")));
    h.send(a, "NOTICE bob :fyi");
    assert_eq!(expect(&h.take(b), "NOTICE").params[1], "fyi");
    h.send(a, "PRIVMSG nobody :hello?");
    expect(&h.take(a), "401");
    h.send(a, "NOTICE nobody :hello?");
    assert!(h.take(a).is_empty(), "NOTICE never draws an error");
    h.send(a, "PRIVMSG bob");
    expect(&h.take(a), "412");
    h.send(a, "PRIVMSG a,b,c,d,e :spam");
    expect(&h.take(a), "407");
}

#[test]
fn a_target_named_twice_in_any_case_gets_one_copy() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    let c = h.register("carol");
    h.send(c, "JOIN #rust");
    h.send(a, "JOIN #rust");
    h.clear(&[a, b, c]);
    h.send(a, "PRIVMSG bob,,BOB,#Rust,#rust,bOb :once each");
    let to_bob = parsed(&h.take(b));
    assert_eq!(to_bob.iter().filter(|m| m.command == "PRIVMSG").count(), 1, "{to_bob:?}");
    assert_eq!(to_bob[0].params, ["bob", "once each"], "as the recipient spells its nick");
    let to_carol = parsed(&h.take(c));
    assert_eq!(to_carol.iter().filter(|m| m.command == "PRIVMSG").count(), 1, "{to_carol:?}");
    assert_eq!(to_carol[0].params, ["#rust", "once each"]);
    assert!(h.take(a).is_empty(), "no error for the empty or repeated targets");
}

#[test]
fn outsiders_cannot_send_to_no_external_rooms() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(b, "JOIN #general");
    h.clear(&[b]);
    h.send(a, "PRIVMSG #general :from outside");
    expect(&h.take(a), "404");
    assert!(h.take(b).is_empty());
    h.send(a, "PRIVMSG #nowhere :hi");
    expect(&h.take(a), "403");
}

#[test]
fn typing_tagmsg_goes_only_to_message_tags_clients() {
    let mut h = Harness::new();
    let a = h.register_with_caps("alice", "message-tags");
    let b = h.register_with_caps("bob", "message-tags");
    let c = h.register("carol");
    for x in [a, b, c] {
        h.send(x, "JOIN #general");
    }
    h.clear(&[a, b, c]);
    h.send(a, "@+typing=active;+draft/other=1 TAGMSG #general");
    let t = expect(&h.take(b), "TAGMSG");
    assert_eq!(t.tag("+typing"), Some("active"));
    assert!(h.take(c).is_empty(), "carol did not ask for message-tags");
    h.send(a, "@+secret=x PRIVMSG #general :tagged");
    let at_c = expect(&h.take(c), "PRIVMSG");
    assert!(at_c.tag("+secret").is_none(), "client tags only for message-tags clients");
    assert_eq!(expect(&h.take(b), "PRIVMSG").tag("+secret"), Some("x"));
}

#[test]
fn topic_set_and_query_respects_t() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(a, "JOIN #rust");
    h.send(b, "JOIN #rust");
    h.clear(&[a, b]);
    h.send(b, "TOPIC #rust :bob's topic");
    expect(&h.take(b), "482");
    h.send(a, "TOPIC #rust :Rust talk");
    assert_eq!(expect(&h.take(b), "TOPIC").params, ["#rust", "Rust talk"]);
    expect(&h.take(a), "TOPIC");
    h.send(b, "TOPIC #rust");
    let lines = h.take(b);
    assert_eq!(expect(&lines, "332").params[2], "Rust talk");
    assert!(expect(&lines, "333").params[2].starts_with("alice!"));
    let c = h.register("carol");
    h.send(c, "JOIN #rust");
    let lines = h.take(c);
    expect(&lines, "332");
    assert!(find(&lines, "331").is_none());
}

#[test]
fn nick_change_is_seen_once_by_everyone_sharing_a_room() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    let c = h.register("carol");
    for x in [a, b] {
        h.send(x, "JOIN #general,#tech");
    }
    h.clear(&[a, b, c]);
    h.send(a, "NICK alicia");
    let own = expect(&h.take(a), "NICK");
    assert_eq!(own.params, ["alicia"]);
    assert!(own.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    let at_b: Vec<_> = parsed(&h.take(b)).into_iter().filter(|m| m.command == "NICK").collect();
    assert_eq!(at_b.len(), 1);
    assert!(h.take(c).is_empty(), "carol shares no room");
    h.send(c, "PRIVMSG alicia :found you");
    expect(&h.take(a), "PRIVMSG");
    h.send(c, "NICK alice");
    expect(&h.take(c), "NICK");
    // What she says from now on comes from her new name, in a room and in private.
    h.send(a, "PRIVMSG #general :renamed");
    h.send(a, "PRIVMSG alice :hello again");
    let in_room = expect(&h.take(b), "PRIVMSG");
    assert_eq!(in_room.source.as_deref(), Some("alicia!~alice@127.0.0.1"));
    let private = expect(&h.take(c), "PRIVMSG");
    assert_eq!(private.source.as_deref(), Some("alicia!~alice@127.0.0.1"));
}

#[test]
fn extended_join_carries_account_and_realname() {
    let mut h = Harness::new();
    let a = h.register_with_caps("alice", "extended-join");
    h.send(a, "JOIN #general");
    h.clear(&[a]);
    let _b = h.register("bob");
    let b = _b;
    h.send(b, "JOIN #general");
    let j = expect(&h.take(a), "JOIN");
    assert_eq!(j.params, ["#general", "*", "bob real"]);
}

#[test]
fn relayed_messages_fit_in_512_bytes_even_with_the_senders_prefix() {
    let mut h = Harness::new();
    let a = h.register("a_rather_long_nickname_here");
    let b = h.register("bob");
    let text = "é".repeat(240);
    h.send(a, &format!("PRIVMSG bob :{text}"));
    let lines = h.take(b);
    let line = lines.iter().find(|l| l.contains("PRIVMSG")).expect("relayed");
    assert!(line.len() + 2 <= 512, "{} bytes", line.len() + 2);
    let m = expect(&lines, "PRIVMSG");
    assert!(text.starts_with(&m.params[1]) && m.params[1].len() > 400, "cut cleanly, not dropped");
}

/// Without echo-message a message to oneself arrives once (the delivery); with it, twice: the
/// echo, then the delivery, both inside the label's batch. The same for NOTICE and TAGMSG.
#[test]
fn a_message_to_oneself_comes_back_as_echo_and_delivery_in_the_labels_batch() {
    let mut h = Harness::new();
    let a = h.register("alice");
    h.send(a, "PRIVMSG Alice :note to self");
    let lines = h.take(a);
    assert_eq!(parsed(&lines).iter().filter(|m| m.command == "PRIVMSG").count(), 1, "{lines:#?}");
    let e = h.register_with_caps("erin", "echo-message labeled-response batch message-tags");
    for (label, line, command) in [
        ("p", "@label=p PRIVMSG erin :me again", "PRIVMSG"),
        ("n", "@label=n NOTICE ERIN :a notice", "NOTICE"),
        ("t", "@label=t;+typing=active TAGMSG erin", "TAGMSG"),
    ] {
        h.send(e, line);
        let lines = h.take(e);
        let ms = parsed(&lines);
        assert_eq!(ms.len(), 4, "{lines:#?}");
        let (open, close) = (&ms[0], &ms[3]);
        assert_eq!((open.command.as_str(), open.tag("label")), ("BATCH", Some(label)), "{lines:#?}");
        assert_eq!(open.params[1], "labeled-response");
        let id = &open.params[0][1..];
        assert_eq!((close.command.as_str(), close.params[0].as_str()), ("BATCH", format!("-{id}").as_str()));
        for copy in &ms[1..3] {
            assert_eq!(copy.command, command, "{lines:#?}");
            assert_eq!(copy.tag("batch"), Some(id), "{lines:#?}");
            assert_eq!(copy.params[0], "erin");
            assert!(copy.source.as_deref().is_some_and(|s| s.starts_with("erin!")));
        }
        assert_eq!(ms[1].tag("msgid"), ms[2].tag("msgid"), "one message, two copies");
    }
    // Without a label the two copies still come, echo first.
    h.send(e, "PRIVMSG erin :unlabeled");
    let lines = h.take(e);
    assert_eq!(parsed(&lines).iter().filter(|m| m.command == "PRIVMSG").count(), 2, "{lines:#?}");
}

#[test]
fn long_topics_and_part_reasons_are_cut_to_fit_the_line() {
    let mut h = Harness::new();
    let a = h.register("a_rather_long_nickname_here");
    let b = h.register("bob");
    let chan = format!("#{}", "r".repeat(63));
    for x in [a, b] {
        h.send(x, &format!("JOIN {chan}"));
    }
    h.clear(&[a, b]);
    let text = "é".repeat(195);
    h.send(a, &format!("TOPIC {chan} :{text}"));
    h.send(a, &format!("PART {chan} :{text}"));
    let lines = h.take(b);
    for command in ["TOPIC", "PART"] {
        let line = lines.iter().find(|l| l.contains(&format!(" {command} "))).expect("relayed");
        assert!(line.len() + 2 <= 512, "{command}: {} bytes", line.len() + 2);
        assert!(text.starts_with(expect(&lines, command).params[1].as_str()));
    }
}

/// A member who asks for (or drops) capabilities after joining gets room messages written for
/// what it has now, in every room it is in: rooms keep a copy of each member's capabilities.
#[test]
fn room_messages_follow_a_members_capabilities_changed_after_joining() {
    let mut h = Harness::new();
    let [a, b] = h.members_of("#one,#two", &["alice", "bob"])[..] else { unreachable!() };
    let tags_at_b = |h: &mut Harness, room: &str| {
        h.send(a, &format!("PRIVMSG {room} :hello"));
        let m = expect(&h.take(b), "PRIVMSG");
        (m.tag("msgid").is_some(), m.tag("time").is_some())
    };
    assert_eq!(tags_at_b(&mut h, "#one"), (false, false));
    h.send(b, "CAP REQ :message-tags server-time");
    expect(&h.take(b), "CAP");
    assert_eq!(tags_at_b(&mut h, "#one"), (true, true));
    assert_eq!(tags_at_b(&mut h, "#two"), (true, true));
    h.send(b, "CAP REQ :-server-time");
    expect(&h.take(b), "CAP");
    assert_eq!(tags_at_b(&mut h, "#two"), (true, false));
    // A room joined afterwards starts from what the client has then.
    for x in [a, b] {
        h.send(x, "JOIN #three");
    }
    h.clear(&[a, b]);
    assert_eq!(tags_at_b(&mut h, "#three"), (true, false));
}

#[test]
fn a_new_room_that_would_pass_for_another_is_refused() {
    let mut h = Harness::new();
    let alice = h.register("alice");
    // `#general` is a default room: its lookalikes, by TR39 skeleton, are refused.
    for lookalike in ["#\u{261}eneral", "#ge\u{301}neral", "#g\u{e9}neral", "#genera1", "#GENERA1"] {
        h.send(alice, &format!("JOIN {lookalike}"));
        let lines = h.take(alice);
        let refusal = expect(&lines, "479");
        assert!(refusal.params[2].contains("looks too much like the room #general"), "{lookalike:?}: {refusal:?}");
        assert!(find(&lines, "JOIN").is_none(), "{lookalike:?} was created");
    }
    // The same room under another case is still that room.
    h.send(alice, "JOIN #General");
    assert_eq!(expect(&h.take(alice), "JOIN").params[0], "#general");
}

#[test]
fn two_spellings_of_one_room_name_are_one_room() {
    let mut h = Harness::new();
    let [alice, bob] = h.members_of("#tech", &["alice", "bob"])[..] else { unreachable!() };
    // Precomposed, then with a combining accent: one room, shown as it was created (NFC).
    h.send(alice, "JOIN #caf\u{e9}");
    assert_eq!(expect(&h.take(alice), "JOIN").params[0], "#caf\u{e9}");
    h.send(bob, "JOIN #cafe\u{301}");
    assert_eq!(expect(&h.take(bob), "JOIN").params[0], "#caf\u{e9}");
    assert_eq!(expect(&h.take(alice), "JOIN").params[0], "#caf\u{e9}", "alice sees bob join her room");
    h.send(bob, "PRIVMSG #cafe\u{301} :bonjour");
    assert_eq!(expect(&h.take(alice), "PRIVMSG").params, ["#caf\u{e9}", "bonjour"]);
    // `#cafe` would pass for it; once the room is gone, the name is free again.
    h.send(alice, "JOIN #cafe");
    assert!(expect(&h.take(alice), "479").params[2].contains("#caf\u{e9}"));
    h.send(alice, "PART #caf\u{e9}");
    h.send(bob, "PART #cafe\u{301}");
    h.clear(&[alice, bob]);
    h.send(alice, "JOIN #cafe");
    assert_eq!(expect(&h.take(alice), "JOIN").params[0], "#cafe");
}

/// A client's line may carry 4,094 bytes of tag data in all (its tag section 4,096 with the
/// `@` and the space), client-only or not: at the limit the tags are relayed intact, one byte
/// more gets 417 and nothing is relayed (IRCv3 message-tags; the case irctest checks).
#[test]
fn a_clients_tag_data_over_4094_bytes_is_refused_with_417() {
    let mut h = Harness::new();
    let a = h.register_with_caps("alice", "message-tags echo-message");
    let b = h.register_with_caps("bob", "message-tags");
    for x in [a, b] {
        h.send(x, "JOIN #test");
    }
    h.clear(&[a, b]);
    let at_limit = format!("@foo=bar;+baz={} TAGMSG #test", "a".repeat(4081));
    assert_eq!(at_limit.find("TAGMSG"), Some(4096));
    h.send(a, &at_limit);
    let echo = expect(&h.take(a), "TAGMSG");
    let relay = expect(&h.take(b), "TAGMSG");
    assert_eq!(relay.tag("+baz").map(str::len), Some(4081));
    assert_eq!(echo.tag("msgid"), relay.tag("msgid"));
    let over = format!("@foo=bar;+baz={} TAGMSG #test", "a".repeat(4082));
    h.send(a, &over);
    expect(&h.take(a), "417");
    assert!(h.take(b).is_empty(), "nothing relayed");
    let with_text = format!("@foo=bar;+baz={} PRIVMSG #test {}", "a".repeat(4081), "b".repeat(496));
    assert_eq!(with_text.len(), 4096 + 510, "right at both limits");
    h.send(a, &with_text);
    assert_eq!(expect(&h.take(b), "PRIVMSG").tag("+baz").map(str::len), Some(4081));
}
