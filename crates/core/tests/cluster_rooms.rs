//! Cluster mode (issue #23, `docs/cluster.md`), rooms across nodes: JOIN, PART, TOPIC, KICK,
//! MODE and INVITE through the log, room messages over the room's topic, nodes that start late
//! or come back. The nodes are wired through `support::net`.

mod support;

use chinwag_core::{ClusterEffect, ClusterIdentity, Effect};
use support::net::{incarnation, names, shared_room, shared_room_with, Net};
use support::{all, expect, find};

#[test]
fn members_on_two_nodes_share_a_room() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    let lines = net.take(0, alice);
    assert_eq!(expect(&lines, "JOIN").params, ["#chat"], "{lines:#?}");
    assert_eq!(names(&lines), ["@alice"]);
    assert!(net.subscribed["#chat"].contains(&0));

    net.send(1, bob, "JOIN #chat");
    let lines = net.take(1, bob);
    assert_eq!(names(&lines), ["@alice", "bob"], "the room's maker is op on every node: {lines:#?}");
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 JOIN #chat"]);
    net.send(0, alice, "NAMES #chat");
    assert_eq!(names(&net.take(0, alice)), ["@alice", "bob"]);
    net.send(0, alice, "WHO #chat");
    let who = all(&net.take(0, alice), "352");
    assert_eq!(who.iter().map(|p| (p[5].as_str(), p[6].as_str())).collect::<Vec<_>>(), [("alice", "H@"), ("bob", "H")]);
    net.send(0, alice, "WHOIS bob");
    assert_eq!(all(&net.take(0, alice), "319")[0][2], "#chat");

    net.send(1, bob, "PART #chat :later");
    assert_eq!(net.take(1, bob), [":bob!~bob@127.0.0.1 PART #chat later"]);
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 PART #chat later"]);
    assert!(!net.subscribed["#chat"].contains(&1), "b has nobody in #chat any more");
    net.send(0, alice, "NAMES #chat");
    assert_eq!(names(&net.take(0, alice)), ["@alice"]);
}

#[test]
fn a_room_message_crosses_once_and_reaches_every_member_once() {
    let mut net = Net::new(3);
    let alice = net.register(0, "alice", "echo-message message-tags server-time");
    let anna = net.register(0, "anna", "");
    let bob = net.register(1, "bob", "message-tags server-time");
    let bea = net.register(1, "bea", "");
    let outsider = net.register(2, "carl", "");
    for (i, conn) in [(0, alice), (0, anna), (1, bob), (1, bea)] {
        net.send(i, conn, "JOIN #chat");
    }
    for (i, conn) in [(0, alice), (0, anna), (1, bob), (1, bea)] {
        net.take(i, conn);
    }
    let before = net.room_publications;
    net.send(0, alice, "@+draft/reply=x PRIVMSG #chat :hello all");
    assert_eq!(net.room_publications - before, 1, "one publication for the whole room");
    let echo = expect(&net.take(0, alice), "PRIVMSG");
    assert_eq!(net.take(0, anna), [":alice!~alice@127.0.0.1 PRIVMSG #chat :hello all"], "once, not twice");
    let got = net.take(1, bob);
    assert_eq!(got.len(), 1, "{got:#?}");
    let got = expect(&got, "PRIVMSG");
    assert_eq!(got.params, ["#chat", "hello all"]);
    assert_eq!(got.tag("msgid"), echo.tag("msgid"));
    assert_eq!(got.tag("+draft/reply"), Some("x"));
    assert_eq!(net.take(1, bea), [":alice!~alice@127.0.0.1 PRIVMSG #chat :hello all"]);
    assert!(net.take(2, outsider).is_empty());

    // A remote member's quit reaches the room's members here once.
    net.send(1, bob, "QUIT :bye");
    assert_eq!(net.take(0, anna), [":bob!~bob@127.0.0.1 QUIT :Quit: bye"]);
    // Its nick change too.
    net.send(1, bea, "NICK bee");
    assert_eq!(net.take(0, anna), [":bea!~bea@127.0.0.1 NICK bee"]);
}

#[test]
fn a_dead_nodes_members_quit_their_rooms() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    net.send(1, bob, "JOIN #chat");
    net.take(0, alice);
    net.down.insert(1);
    net.dead.insert(("b".into(), incarnation(1)));
    let h = &mut net.nodes[0];
    let now = h.now();
    h.server.node_lost("b", incarnation(1), now);
    h.collect();
    net.pump();
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 QUIT :Node lost"]);
    net.send(0, alice, "NAMES #chat");
    assert_eq!(names(&net.take(0, alice)), ["@alice"]);
}

#[test]
fn two_nodes_joining_a_new_room_at_once_agree_on_its_operator() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    // Both JOINs are appended before either node has seen the other's.
    net.nodes[0].send(alice, "JOIN #new");
    net.nodes[1].send(bob, "JOIN #new");
    net.pump();
    net.take(0, alice);
    net.take(1, bob);
    net.send(0, alice, "NAMES #new");
    net.send(1, bob, "NAMES #new");
    let (a, b) = (names(&net.take(0, alice)), names(&net.take(1, bob)));
    assert_eq!(a, b, "both nodes hold the same room");
    assert_eq!(a.iter().filter(|n| n.starts_with('@')).count(), 1, "{a:?}");
    // Each JOIN went into the log once.
    let joins = net.log.iter().filter(|(_, k, _)| k == "room.=23new").count();
    assert_eq!(joins, 2);
}

/// A crowd joining one room at once from three nodes (a bench's set-up, a popular event):
/// every JOIN is answered with the room, none fails, and the nodes agree on the room.
#[test]
fn a_crowd_joining_one_room_at_once_from_three_nodes_all_get_in() {
    let mut net = Net::new(3);
    let alice = net.register(0, "alice", "");
    net.send(0, alice, "JOIN #crowd");
    net.send(0, alice, "MODE #crowd +k door");
    net.take(0, alice);
    let mut crowd = Vec::new();
    for i in 0..3 {
        for n in 0..20 {
            crowd.push((i, net.register(i, &format!("m{i}x{n}"), "")));
        }
    }
    // Every fifth one has the wrong key: refused without holding up those behind it.
    for (n, &(i, conn)) in crowd.iter().enumerate() {
        let key = if n % 5 == 4 { "wrong" } else { "door" };
        net.nodes[i].send(conn, &format!("JOIN #crowd {key}"));
    }
    net.pump();
    for (n, &(i, conn)) in crowd.iter().enumerate() {
        let lines = net.take(i, conn);
        if n % 5 == 4 {
            assert!(find(&lines, "475").is_some(), "wrong key, {n}: {lines:#?}");
            continue;
        }
        assert!(find(&lines, "FAIL").is_none(), "{n}: {lines:#?}");
        assert!(lines.iter().any(|l| l.ends_with(" JOIN #crowd")), "{n} got in: {lines:#?}");
    }
    let mut seen = Vec::new();
    for i in 0..3 {
        net.send(i, crowd[i * 20].1, "NAMES #crowd");
        seen.push(names(&net.take(i, crowd[i * 20].1)));
    }
    assert_eq!(seen[0].len(), 1 + 48, "{:?}", seen[0]);
    assert_eq!(seen[0], seen[1]);
    assert_eq!(seen[0], seen[2]);
    let joins = net.log.iter().filter(|(_, k, _)| k == "room.=23crowd").count();
    assert_eq!(joins, 1 + 1 + 48, "alice's JOIN and MODE, then one entry per member who got in");
}

#[test]
fn a_join_waits_for_the_log_and_later_lines_wait_with_it() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    net.nodes[0].send(alice, "JOIN #chat");
    net.nodes[0].send(alice, "PRIVMSG #chat :first");
    // Nothing yet: the JOIN is in flight and the PRIVMSG waits behind it.
    assert!(net.nodes[0].take(alice).is_empty());
    net.pump();
    let lines = net.take(0, alice);
    assert!(find(&lines, "JOIN").is_some(), "{lines:#?}");
    assert!(find(&lines, "404").is_none(), "the message ran after the join: {lines:#?}");
}

#[test]
fn a_topic_set_on_one_node_is_the_topic_on_every_node() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    net.send(0, alice, "TOPIC #chat :plans for today");
    assert_eq!(net.take(0, alice), [":alice!~alice@127.0.0.1 TOPIC #chat :plans for today"]);
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 TOPIC #chat :plans for today"]);
    net.send(1, bob, "TOPIC #chat");
    let lines = net.take(1, bob);
    assert_eq!(all(&lines, "332")[0][2], "plans for today");
    assert_eq!(all(&lines, "333")[0][2], "alice!~alice@127.0.0.1");
    // +t is the default: bob is no operator, and his own node says so at once.
    net.send(1, bob, "TOPIC #chat :mine now");
    assert!(net.take(1, bob).iter().any(|l| l.contains(" 482 ")));
    assert!(net.take(0, alice).is_empty());
}

#[test]
fn modes_set_on_one_node_hold_on_every_node() {
    let mut net = Net::new(3);
    let (alice, bob) = shared_room(&mut net);
    net.send(1, bob, "MODE #chat +m");
    assert!(net.take(1, bob).iter().any(|l| l.contains(" 482 ")), "bob is not op");

    net.send(0, alice, "MODE #chat +o bob");
    assert_eq!(net.take(0, alice), [":alice!~alice@127.0.0.1 MODE #chat +o bob"]);
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 MODE #chat +o bob"]);
    net.send(1, bob, "NAMES #chat");
    assert_eq!(names(&net.take(1, bob)), ["@alice", "@bob"]);

    // Now an operator, bob makes the room invite-only from his node; carol, on a third node,
    // is refused there.
    net.send(1, bob, "MODE #chat +i");
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 MODE #chat +i"]);
    assert_eq!(net.take(1, bob), [":bob!~bob@127.0.0.1 MODE #chat +i"], "his own, from the log");
    let carol = net.register(2, "carol", "");
    net.send(2, carol, "JOIN #chat");
    assert!(net.take(2, carol).iter().any(|l| l.contains(" 473 ")));
    net.send(2, carol, "MODE #chat");
    assert_eq!(all(&net.take(2, carol), "324")[0][2], "+int");

    // A ban set on one node keeps the banned out on another.
    net.send(0, alice, "MODE #chat -i+b carol!*@*");
    let lines = net.take(1, bob);
    assert_eq!(lines, [":alice!~alice@127.0.0.1 MODE #chat -i+b carol!*@*"]);
    net.send(2, carol, "JOIN #chat");
    assert!(net.take(2, carol).iter().any(|l| l.contains(" 474 ")));
}

#[test]
fn a_member_on_another_node_is_kicked() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    net.send(0, alice, "KICK #chat bob :behave");
    assert_eq!(net.take(0, alice), [":alice!~alice@127.0.0.1 KICK #chat bob behave"]);
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 KICK #chat bob behave"]);
    assert!(!net.subscribed["#chat"].contains(&1), "b has nobody in #chat any more");
    net.send(0, alice, "NAMES #chat");
    assert_eq!(names(&net.take(0, alice)), ["@alice"]);
    net.send(1, bob, "PRIVMSG #chat :still here?");
    assert!(net.take(1, bob).iter().any(|l| l.contains(" 404 ")), "+n: bob is out");
    // Kicking someone who is not there is refused where the command runs.
    net.send(0, alice, "KICK #chat bob");
    assert!(net.take(0, alice).iter().any(|l| l.contains(" 441 ")));
}

#[test]
fn a_labeled_join_is_answered_under_its_label_once_applied() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "labeled-response batch");
    net.nodes[0].send(alice, "@label=j1 JOIN #chat");
    assert!(net.nodes[0].take(alice).is_empty(), "nothing before the log answered");
    net.pump();
    let lines = net.take(0, alice);
    let start = expect(&lines, "BATCH");
    assert_eq!(start.tag("label"), Some("j1"), "{lines:#?}");
    assert!(find(&lines, "JOIN").is_some() && find(&lines, "366").is_some(), "{lines:#?}");
}

#[test]
fn a_node_started_later_learns_the_network_from_the_log() {
    let mut net = Net::new(3);
    // Node c is not up yet: it applies nothing until it is.
    net.down.insert(2);
    let alice = net.register(0, "alice", "");
    let _bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    net.send(0, alice, "TOPIC #chat :welcome");
    net.down.remove(&2);
    net.pump();
    assert_eq!(net.nodes[2].server.remote_incarnations(), [("a".into(), incarnation(0)), ("b".into(), incarnation(1))]);
    let carol = net.register(2, "carol", "");
    net.send(2, carol, "JOIN #chat");
    let lines = net.take(2, carol);
    assert_eq!(all(&lines, "332")[0][2], "welcome", "{lines:#?}");
    assert_eq!(names(&lines), ["@alice", "carol"]);
}

#[test]
fn an_invitation_from_another_node_lets_its_holder_in() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let carol = net.register(1, "carol", "");
    net.send(0, alice, "JOIN #club");
    net.send(0, alice, "MODE #club +i");
    net.take(0, alice);
    net.send(1, carol, "JOIN #club");
    assert!(net.take(1, carol).iter().any(|l| l.contains(" 473 ")));
    net.send(0, alice, "INVITE carol #club");
    assert_eq!(all(&net.take(0, alice), "341")[0][1..], ["carol", "#club"]);
    assert_eq!(net.take(1, carol), [":alice!~alice@127.0.0.1 INVITE carol #club"]);
    net.send(1, carol, "JOIN #club");
    let lines = net.take(1, carol);
    assert_eq!(names(&lines), ["@alice", "carol"], "{lines:#?}");
    net.send(0, alice, "INVITE carol #club");
    assert!(net.take(0, alice).iter().any(|l| l.contains(" 443 ")), "already there");
}

#[test]
fn a_room_message_is_published_only_after_its_persist() {
    let mut net = Net::new(2);
    let (alice, _bob) = shared_room(&mut net);
    let h = &mut net.nodes[0];
    let now = h.now();
    h.server.handle(alice, chinwag_proto::Message::parse_client("PRIVMSG #chat :kept"), now);
    let mut effects = Vec::new();
    h.server.drain_effects(&mut effects);
    let persist = effects.iter().position(|e| matches!(e, Effect::Persist(_)));
    let publish = effects.iter().position(|e| matches!(e, Effect::Cluster(ClusterEffect::Publish { .. })));
    let (Some(persist), Some(publish)) = (persist, publish) else { panic!("{effects:#?}") };
    assert!(persist < publish, "{effects:#?}");
}

#[test]
fn a_node_back_as_a_new_incarnation_starts_its_replica_over() {
    let mut net = Net::new(2);
    let (alice, _bob) = shared_room(&mut net);
    // Node a was cut off: its users are gone, and it comes back as a new incarnation.
    net.nodes[0].close_all("Lost the network");
    assert_eq!(net.nodes[0].server.remote_user_count(), 1);
    let h = &mut net.nodes[0];
    h.server.enable_cluster(ClusterIdentity { node: "a".into(), incarnation: 7777 });
    assert_eq!(h.server.remote_user_count(), 0);
    // The old incarnation's bus task is gone, and with it what it was asked and subscribed to.
    net.nodes[0].cluster.clear();
    for nodes in net.subscribed.values_mut() {
        nodes.remove(&0);
    }
    // Reading the log again from the start rebuilds the same view.
    net.applied[0] = 0;
    net.pump();
    let incarnations = net.nodes[0].server.remote_incarnations();
    assert!(incarnations.contains(&("b".into(), incarnation(1))), "{incarnations:?}");
    // Its previous run's users are in the replica until that incarnation is declared gone.
    assert!(incarnations.contains(&("a".into(), incarnation(0))));
    let h = &mut net.nodes[0];
    let now = h.now();
    h.server.node_lost("a", incarnation(0), now);
    h.collect();
    net.pump();
    assert_eq!(net.nodes[0].server.remote_incarnations(), [("b".into(), incarnation(1))]);
    let again = net.register(0, "alice", "");
    net.send(0, again, "JOIN #chat");
    let lines = net.take(0, again);
    assert_eq!(names(&lines), ["alice", "bob"], "{lines:#?}");
    let _ = alice;
}

#[test]
fn a_lost_room_message_is_read_back_and_a_repeated_one_delivered_once() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    let carl = net.register(1, "carl", "");
    net.send(1, carl, "JOIN #chat");
    net.take(1, carl);
    net.take(0, alice);
    net.send(0, alice, "PRIVMSG #chat :one");
    // Someone on b speaks in between: its message is no gap, and is not delivered again.
    net.send(1, carl, "PRIVMSG #chat :from carl");
    net.lose_next = true;
    net.send(0, alice, "PRIVMSG #chat :two");
    net.twice = true;
    net.send(0, alice, "PRIVMSG #chat :three");
    let got: Vec<String> = all(&net.take(1, bob), "PRIVMSG").into_iter().map(|p| p[1].clone()).collect();
    // "two" never came over NATS: it is read back from storage once "three" shows the gap.
    assert_eq!(got, ["one", "from carl", "three", "two"]);
    assert_eq!(net.nodes[1].server.missed_room_messages(), 1);
}

#[test]
fn what_a_dead_node_stored_but_never_published_is_read_back() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    net.send(0, alice, "PRIVMSG #chat :one");
    // Stored, then the node dies before its publication gets anywhere.
    net.lose_next = true;
    net.send(0, alice, "PRIVMSG #chat :two");
    net.down.insert(0);
    net.dead.insert(("a".into(), incarnation(0)));
    let h = &mut net.nodes[1];
    let now = h.now();
    h.server.node_lost("a", incarnation(0), now);
    h.collect();
    net.pump();
    let lines = net.take(1, bob);
    let got: Vec<String> = all(&lines, "PRIVMSG").into_iter().map(|p| p[1].clone()).collect();
    assert_eq!(got, ["one", "two"], "{lines:#?}");
    // The quit is applied at once; what is read back comes when storage answers.
    assert_eq!(lines[1], ":alice!~alice@127.0.0.1 QUIT :Node lost");
}

/// An operator on one node ops a member who, on another node, has just changed nick — and
/// whose old nick someone else there took — before that node read the MODE from the log:
/// every node ops the same member (by id, not by the nick), and nobody else.
#[test]
fn op_given_across_a_nick_change_reaches_the_same_member_on_every_node() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    let dave = net.register(1, "dave", "");
    net.send(1, dave, "JOIN #chat");
    net.take(0, alice);
    net.take(1, dave);
    // Node b is behind the log: alice's MODE is in it, but b has not read it yet.
    net.lagging.insert(1);
    net.send(0, alice, "MODE #chat +o bob");
    assert_eq!(net.take(0, alice), [":alice!~alice@127.0.0.1 MODE #chat +o bob"]);
    // Meanwhile, on b, bob becomes bobby and dave takes "bob".
    net.send(1, bob, "NICK bobby");
    net.send(1, dave, "NICK bob");
    net.take(1, bob);
    net.take(1, dave);
    net.lagging.remove(&1);
    net.pump();
    // On b the MODE names the member as b knows him now.
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 MODE #chat +o bobby"]);
    assert_eq!(net.take(1, dave), [":alice!~alice@127.0.0.1 MODE #chat +o bobby"]);
    net.take(0, alice);
    net.send(0, alice, "NAMES #chat");
    net.send(1, dave, "NAMES #chat");
    let (a, b) = (names(&net.take(0, alice)), names(&net.take(1, dave)));
    assert_eq!(a, ["@alice", "@bobby", "bob"]);
    assert_eq!(a, b, "both nodes agree on who is op");
}

/// A room's state events (JOIN, TOPIC, MODE, NICK, KICK, PART, QUIT) carry one msgid and one
/// time on every node — the author's, which its node keeps in the room's history for event-playback — even
/// with the nodes' clocks apart.
#[test]
fn a_state_event_has_one_msgid_and_time_on_every_node_and_in_history() {
    let caps = "message-tags server-time";
    let mut net = Net::new(2);
    net.nodes[1].advance(std::time::Duration::from_secs(5));
    let (alice, bob) = shared_room_with(&mut net, caps);
    let carol = net.register(1, "carol", caps);

    // Each member's copy of the one event: (msgid, time), all alike, and the stored row's msgid.
    let check = |net: &mut Net, command: &str, seen_by: &[(usize, chinwag_core::ConnId)], author: usize| {
        let mut stamps = Vec::new();
        for &(i, conn) in seen_by {
            let lines = net.take(i, conn);
            let line = expect(&lines, command);
            stamps.push((line.tag("msgid").map(str::to_owned), line.tag("time").map(str::to_owned)));
        }
        assert!(stamps[0].0.is_some() && stamps[0].1.is_some(), "{command}: {stamps:?}");
        assert!(stamps.iter().all(|s| *s == stamps[0]), "{command} differs between members: {stamps:?}");
        let stored = net.nodes[author].events.iter().rev().find(|e| e.command == command).map(|e| e.msgid.clone());
        assert_eq!(stored, stamps[0].0, "{command}: the stored event's msgid");
    };
    net.send(1, carol, "JOIN #chat");
    check(&mut net, "JOIN", &[(1, carol), (1, bob), (0, alice)], 1);
    net.send(0, alice, "TOPIC #chat :hello");
    check(&mut net, "TOPIC", &[(0, alice), (1, bob), (1, carol)], 0);
    net.send(0, alice, "MODE #chat +v carol");
    check(&mut net, "MODE", &[(0, alice), (1, bob), (1, carol)], 0);
    // A NICK and a QUIT, which the user's node shows at once, too.
    net.send(1, carol, "NICK carla");
    check(&mut net, "NICK", &[(1, carol), (1, bob), (0, alice)], 1);
    net.send(0, alice, "KICK #chat carla :out");
    check(&mut net, "KICK", &[(0, alice), (1, bob), (1, carol)], 0);
    net.send(1, bob, "PART #chat");
    check(&mut net, "PART", &[(1, bob), (0, alice)], 1);
    net.send(1, bob, "JOIN #chat");
    net.take(0, alice);
    net.send(1, bob, "QUIT :bye");
    check(&mut net, "QUIT", &[(0, alice)], 1);
}

/// The largest draft/multiline message a server accepts (its byte and line limits at their
/// maximum) crosses nodes whole, to a room and to a user, as one payload within the bus's
/// limit (its text is carried once, as its lines), and arrives line for line.
#[test]
fn a_maximal_multiline_message_crosses_nodes() {
    use chinwag_core::{Rate, MAX_MULTILINE_BYTES, MAX_MULTILINE_LINES};
    let mut net = Net::with(2, |cfg| {
        cfg.limits.multiline_max_bytes = MAX_MULTILINE_BYTES;
        cfg.limits.multiline_max_lines = MAX_MULTILINE_LINES;
        cfg.limits.flood = Rate { burst: 100_000, every: std::time::Duration::from_millis(1) };
    });
    let caps = "message-tags batch echo-message server-time draft/multiline";
    let (alice, bob) = shared_room_with(&mut net, caps);
    // Every line counts its bytes, and each break between two lines one more.
    let text_bytes = MAX_MULTILINE_BYTES - (MAX_MULTILINE_LINES - 1);
    let lines: Vec<String> = (0..MAX_MULTILINE_LINES)
        .map(|i| {
            let len = text_bytes / MAX_MULTILINE_LINES + usize::from(i < text_bytes % MAX_MULTILINE_LINES);
            let mark = format!("{i}:");
            format!("{mark}{}", "x".repeat(len - mark.len()))
        })
        .collect();
    for target in ["#chat", "bob"] {
        let h = &mut net.nodes[0];
        h.send(alice, &format!("BATCH +big draft/multiline {target}"));
        for line in &lines {
            h.send(alice, &format!("@batch=big PRIVMSG {target} :{line}"));
        }
        h.send(alice, "BATCH -big");
        net.pump();
        let echo = net.take(0, alice);
        assert!(all(&echo, "FAIL").is_empty(), "{:?}", &echo[..echo.len().min(3)]);
        let got = net.take(1, bob);
        let texts: Vec<String> = all(&got, "PRIVMSG").into_iter().map(|p| p[1].clone()).collect();
        assert_eq!(texts, lines, "to {target}: {} lines arrived", texts.len());
        assert_eq!(all(&got, "BATCH").len(), 2, "to {target}: one batch");
    }
}

/// A node subscribes to a room's topic before its user's JOIN goes to the log, and asks the bus
/// to append it only once it hears the room: a member elsewhere may speak as soon as it applied
/// the entry.
#[test]
fn a_node_listens_to_a_room_before_its_users_join_goes_to_the_log() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let carol = net.register(1, "carol", "");
    net.send(0, alice, "JOIN #elsewhere");
    net.nodes[1].send(carol, "JOIN #elsewhere");
    let effects = std::mem::take(&mut net.nodes[1].cluster);
    let subscribed = effects.iter().position(
        |e| matches!(e, ClusterEffect::Subscribe { topic: chinwag_core::Topic::Room(r) } if r == "#elsewhere"),
    );
    let appended = effects.iter().position(
        |e| matches!(e, ClusterEffect::Append { heard: Some(chinwag_core::Topic::Room(r)), .. } if r == "#elsewhere"),
    );
    let (Some(subscribed), Some(appended)) = (subscribed, appended) else {
        panic!("no subscription, or no append that waits for it: {effects:#?}")
    };
    assert!(subscribed < appended, "subscribed after the append: {effects:#?}");
    net.nodes[1].cluster = effects;
    net.pump();
    assert_eq!(names(&net.take(1, carol)), ["@alice", "carol"]);
}

/// A JOIN that lost a race to a change that now refuses it (+i) stops the listening it started,
/// and the joiner is told why.
#[test]
fn a_join_refused_after_a_lost_race_stops_the_listening_it_started() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    let carol = net.register(1, "carol", "");
    // Both before the network answers: node a (alice's MODE) goes first, so carol's JOIN loses.
    net.nodes[0].send(alice, "MODE #chat +i");
    net.nodes[1].send(carol, "JOIN #chat");
    net.pump();
    let lines = net.take(1, carol);
    assert!(lines.iter().any(|l| l.contains(" 473 ")), "carol is refused by +i: {lines:#?}");
    assert!(net.subscribed["#chat"].contains(&1), "bob is still in #chat on b");
    net.send(1, bob, "PART #chat");
    assert!(!net.subscribed["#chat"].contains(&1), "b listens to #chat with nobody there or joining");

    // Alone on its node, a refused JOIN leaves nothing behind.
    let dave = net.register(1, "dave", "");
    net.send(0, alice, "MODE #chat -i");
    net.nodes[0].send(alice, "MODE #chat +k secret");
    net.nodes[1].send(dave, "JOIN #chat");
    net.pump();
    let lines = net.take(1, dave);
    assert!(lines.iter().any(|l| l.contains(" 475 ")), "dave is refused by +k: {lines:#?}");
    assert!(!net.subscribed["#chat"].contains(&1), "a refused JOIN left b listening to #chat");
}

/// The newcomer's node is behind the log: a member elsewhere applied the JOIN and greets the
/// newcomer before its own node did. The greeting still reaches it, after its JOIN; what was
/// said before the JOIN does not.
#[test]
fn a_greeting_that_overtakes_the_join_on_the_newcomers_node_still_reaches_it() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    net.take(0, alice);
    net.lagging.insert(0);
    net.lagging.insert(1);
    net.send(1, bob, "JOIN #chat");
    // Node a has not applied bob's JOIN yet: this was said before bob was in.
    net.send(0, alice, "PRIVMSG #chat :before you came");
    net.lagging.remove(&0);
    net.pump();
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 JOIN #chat"]);
    net.send(0, alice, "PRIVMSG #chat :welcome bob");
    assert!(net.take(1, bob).is_empty(), "b has not applied bob's JOIN yet");
    net.lagging.remove(&1);
    net.pump();
    let lines = net.take(1, bob);
    let said: Vec<&String> = lines.iter().filter(|l| l.contains("PRIVMSG")).collect();
    assert_eq!(said, [":alice!~alice@127.0.0.1 PRIVMSG #chat :welcome bob"], "{lines:#?}");
    let join = lines.iter().position(|l| l.contains(" JOIN "));
    let greeting = lines.iter().position(|l| l.contains("welcome bob"));
    assert!(join < greeting, "the greeting comes after bob's JOIN: {lines:#?}");
}

/// AWAY and SETNAME, as away-notify and setname show them to a user's peers, carry one msgid
/// and time on every node: the author's node's, even with the nodes' clocks apart.
#[test]
fn a_presence_change_has_one_msgid_and_time_on_every_node() {
    let caps = "message-tags server-time away-notify setname";
    let mut net = Net::new(2);
    // bob's node runs 5 s ahead: a node that made its own stamp would show its own time.
    net.nodes[1].advance(std::time::Duration::from_secs(5));
    let (alice, bob) = shared_room_with(&mut net, caps);
    let carol = net.register(1, "carol", caps);
    net.send(1, carol, "JOIN #chat");
    net.take(1, carol);
    net.take(0, alice);
    net.take(1, bob);
    // (line bob sends, command seen, who on bob's node sees it)
    let changes = [("AWAY :lunch", "AWAY", carol), ("SETNAME :Bob B", "SETNAME", bob), ("AWAY", "AWAY", carol)];
    for (line, command, local) in changes {
        net.send(1, bob, line);
        let mut stamps = Vec::new();
        for (i, conn) in [(1, local), (0, alice)] {
            let lines = net.take(i, conn);
            let seen = expect(&lines, command);
            stamps.push((seen.tag("msgid").map(str::to_owned), seen.tag("time").map(str::to_owned)));
        }
        net.take(1, bob);
        assert!(stamps[0].0.is_some() && stamps[0].1.is_some(), "{command}: {stamps:?}");
        assert_eq!(stamps[0], stamps[1], "{line}: bob's node and alice's show it alike");
    }
}

/// What a JOIN on its way keeps for the joiner is bounded: of a flood while it waits, at most
/// 64 messages and 256 KiB (the rest is in the room's history).
#[test]
fn what_a_join_on_its_way_keeps_is_bounded() {
    use chinwag_core::{Rate, MAX_MULTILINE_BYTES, MAX_MULTILINE_LINES};
    let mut net = Net::with(2, |cfg| {
        cfg.limits.multiline_max_bytes = MAX_MULTILINE_BYTES;
        cfg.limits.multiline_max_lines = MAX_MULTILINE_LINES;
        cfg.limits.flood = Rate { burst: 100_000, every: std::time::Duration::from_millis(1) };
    });
    let caps = "message-tags batch draft/multiline";
    let alice = net.register(0, "alice", caps);
    let bob = net.register(1, "bob", caps);
    let carol = net.register(1, "carol", caps);
    net.send(0, alice, "JOIN #chat");
    net.take(0, alice);

    // 100 short messages while bob's JOIN waits on his node: 64 kept.
    net.lagging.insert(1);
    net.send(1, bob, "JOIN #chat");
    for n in 0..100 {
        net.send(0, alice, &format!("PRIVMSG #chat :short {n}"));
    }
    net.lagging.remove(&1);
    net.pump();
    let got = all(&net.take(1, bob), "PRIVMSG");
    assert_eq!(got.len(), 64, "kept for bob");
    assert_eq!(got[0][1], "short 0", "the first ones, in order");

    // Five maximal multiline messages (64 KiB each, kept with their lines) while carol's waits.
    net.lagging.insert(1);
    net.send(1, carol, "JOIN #chat");
    net.take(1, bob);
    let line = "y".repeat(MAX_MULTILINE_BYTES / MAX_MULTILINE_LINES - 1);
    for n in 0..5 {
        let h = &mut net.nodes[0];
        h.send(alice, &format!("BATCH +m{n} draft/multiline #chat"));
        for _ in 0..MAX_MULTILINE_LINES {
            h.send(alice, &format!("@batch=m{n} PRIVMSG #chat :{line}"));
        }
        h.send(alice, &format!("BATCH -m{n}"));
        net.pump();
    }
    net.lagging.remove(&1);
    net.pump();
    let got = net.take(1, carol);
    let batches = all(&got, "BATCH").len() / 2;
    assert!((1..=2).contains(&batches), "{batches} multiline messages kept for carol");
    assert!(all(&net.take(1, bob), "BATCH").len() >= 10, "bob, in the room, got all five");
}

/// A node keeps the log sequence of the rooms that exist, not of every room ever used: a room
/// nobody is in any more is forgotten with its key, and joining it again later still works
/// (the append learns the key's last sequence from its conflict), from either node.
#[test]
fn a_room_nobody_is_in_is_forgotten_with_its_log_key_and_can_be_made_again() {
    let mut net = Net::with(2, |cfg| {
        cfg.limits.flood = chinwag_core::Rate { burst: 100_000, every: std::time::Duration::from_millis(1) };
    });
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    let keys = |net: &Net| [net.nodes[0].server.cluster_log_keys(), net.nodes[1].server.cluster_log_keys()];
    let before = keys(&net);
    for n in 0..20 {
        net.send(0, alice, &format!("JOIN #tmp{n}"));
        net.send(1, bob, &format!("JOIN #tmp{n}"));
        net.send(0, alice, &format!("PART #tmp{n}"));
        net.send(1, bob, &format!("PART #tmp{n}"));
    }
    net.take(0, alice);
    net.take(1, bob);
    assert_eq!(keys(&net), before, "20 rooms used and left: no key kept for them");
    // Made again, first from the node that did not make it before, then joined from the other.
    net.send(1, bob, "JOIN #tmp3");
    let lines = net.take(1, bob);
    assert_eq!(names(&lines), ["@bob"], "bob makes #tmp3 again: {lines:#?}");
    net.send(0, alice, "JOIN #tmp3");
    assert_eq!(names(&net.take(0, alice)), ["@bob", "alice"]);
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 JOIN #tmp3"]);
}

/// A JOIN whose conflict does not say where the room's key is, for a room this node forgot,
/// waits for an entry that never comes: after 10 s the client is told to try again and its
/// later lines run, instead of being held for good.
#[test]
fn a_join_waiting_for_an_entry_that_never_comes_gives_up() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #gone");
    net.send(0, alice, "PART #gone");
    net.take(0, alice);
    net.conflicts_without_last = true;
    net.send(1, bob, "JOIN #gone");
    net.send(1, bob, "PING :after");
    assert!(net.take(1, bob).is_empty(), "the JOIN waits, and the PING behind it");
    net.nodes[1].advance(std::time::Duration::from_secs(11));
    net.pump();
    let lines = net.take(1, bob);
    assert!(lines.iter().any(|l| l.contains("FAIL JOIN TEMPORARILY_UNAVAILABLE")), "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("PONG") && l.contains("after")), "{lines:#?}");
    assert!(!net.subscribed["#gone"].contains(&1), "node b stopped listening to #gone");
}
