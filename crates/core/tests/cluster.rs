//! Cluster mode (issue #23, `docs/cluster.md`), users across nodes: WHOIS, WHO, MONITOR,
//! private messages, nick claims, dead nodes, garbage from the network. The nodes are wired
//! through `support::net`. Lines in, lines out, as in the other scenarios.

mod support;

use bytes::Bytes;
use chinwag_core::{ClusterEffect, ClusterIdentity, Effect, Request, Response};
use support::net::{incarnation, shared_room_with, xorshift, Net};
use support::{all, expect, find, Harness};

#[test]
fn a_user_on_one_node_whoises_a_user_on_another() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let _bob = net.register(1, "Bob", "");
    net.send(0, alice, "WHOIS bob");
    let lines = net.take(0, alice);
    let user = expect(&lines, "311");
    assert_eq!(user.params[1..], ["Bob", "~Bob", "127.0.0.1", "*", "Bob real"]);
    assert!(find(&lines, "318").is_some(), "{lines:#?}");
    assert!(find(&lines, "401").is_none(), "{lines:#?}");

    // WHO, ISON and USERHOST see Bob too.
    net.send(0, alice, "WHO bob");
    let who = all(&net.take(0, alice), "352");
    assert_eq!(who.len(), 1, "{who:?}");
    assert_eq!(who[0][5], "Bob");
    net.send(0, alice, "ISON nobody BOB");
    assert_eq!(all(&net.take(0, alice), "303")[0][1], "Bob");
    net.send(0, alice, "USERHOST bob");
    assert_eq!(all(&net.take(0, alice), "302")[0][1], "Bob=+~Bob@127.0.0.1");
}

/// WHOIS and WHO name the server of the node a user is on, as that node names itself, from
/// whichever node asks.
#[test]
fn whois_and_who_name_the_node_a_user_is_on() {
    let mut net = Net::with_config(2, |i, cfg| cfg.server_name = format!("{}.chat.example", ["a", "b"][i]));
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    net.send(1, bob, "JOIN #chat");
    net.take(0, alice);
    net.take(1, bob);
    for (i, conn) in [(0, alice), (1, bob)] {
        for (nick, server) in [("alice", "a.chat.example"), ("bob", "b.chat.example")] {
            net.send(i, conn, &format!("WHOIS {nick}"));
            let lines = net.take(i, conn);
            assert_eq!(expect(&lines, "312").params[1..3], [nick, server], "WHOIS {nick} from node {i}: {lines:#?}");
        }
        net.send(i, conn, "WHO #chat");
        let mut who: Vec<(String, String)> =
            all(&net.take(i, conn), "352").into_iter().map(|p| (p[5].clone(), p[4].clone())).collect();
        who.sort();
        assert_eq!(who, [("alice".into(), "a.chat.example".into()), ("bob".into(), "b.chat.example".into())]);
    }
}

#[test]
fn monitor_sees_users_come_and_go_on_other_nodes() {
    let mut net = Net::new(3);
    let alice = net.register(0, "alice", "");
    net.send(0, alice, "MONITOR + carol");
    assert_eq!(all(&net.take(0, alice), "731")[0][1], "carol");

    let carol = net.register(2, "carol", "");
    assert_eq!(all(&net.take(0, alice), "730")[0][1], "carol!~carol@127.0.0.1");
    // Asked again, the status says online.
    net.send(0, alice, "MONITOR S");
    assert_eq!(all(&net.take(0, alice), "730")[0][1], "carol!~carol@127.0.0.1");

    net.send(2, carol, "NICK carla");
    let lines = net.take(0, alice);
    assert_eq!(all(&lines, "731")[0][1], "carol", "{lines:#?}");

    net.send(2, carol, "QUIT :bye");
    // Carol was carla by then: alice watches carol only, so she hears nothing more.
    assert!(net.take(0, alice).is_empty());
    net.send(0, alice, "WHOWAS carla");
    let was = all(&net.take(0, alice), "314");
    assert_eq!(was.len(), 1, "{was:?}");
    assert_eq!(was[0][1], "carla");
}

#[test]
fn a_private_message_crosses_once_with_its_tags() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "message-tags echo-message server-time");
    let bob = net.register(1, "bob", "message-tags server-time account-tag");
    let plain = net.register(1, "plain", "");
    net.send(0, alice, "@+draft/reply=abc PRIVMSG bob :hello there");
    let echo = net.take(0, alice);
    assert_eq!(echo.len(), 1, "{echo:#?}");
    let echo = expect(&echo, "PRIVMSG");
    let got = net.take(1, bob);
    assert_eq!(got.len(), 1, "delivered once: {got:#?}");
    let got = expect(&got, "PRIVMSG");
    assert_eq!(got.source.as_deref(), Some("alice!~alice@127.0.0.1"));
    assert_eq!(got.params, ["bob", "hello there"]);
    assert_eq!(got.tag("msgid"), echo.tag("msgid"));
    assert!(got.tag("msgid").is_some());
    assert_eq!(got.tag("time"), echo.tag("time"));
    assert_eq!(got.tag("+draft/reply"), Some("abc"));
    assert_eq!(got.tag("account"), None, "alice is a guest");

    // A client without message-tags gets the bare line; a TAGMSG never reaches it.
    net.send(0, alice, "@+draft/reply=abc PRIVMSG plain :hi");
    assert_eq!(net.take(1, plain), [":alice!~alice@127.0.0.1 PRIVMSG plain hi"]);
    net.send(0, alice, "@+typing=active TAGMSG plain");
    assert!(net.take(1, plain).is_empty());
    net.send(0, alice, "@+typing=active TAGMSG bob");
    let typing = net.take(1, bob);
    assert_eq!(expect(&typing, "TAGMSG").tag("+typing"), Some("active"), "{typing:#?}");
    assert!(net.take(1, plain).is_empty());
}

#[test]
fn a_stored_private_message_is_published_only_after_its_persist() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let _bob = net.register(1, "bob", "");
    net.nodes[0].login(alice, "alice");
    net.pump();
    let h = &mut net.nodes[0];
    let now = h.now();
    h.server.handle(alice, chinwag_proto::Message::parse_client("PRIVMSG bob :kept"), now);
    let mut effects = Vec::new();
    h.server.drain_effects(&mut effects);
    let persist = effects.iter().position(|e| matches!(e, Effect::Persist(_)));
    let publish = effects.iter().position(|e| matches!(e, Effect::Cluster(ClusterEffect::Publish { .. })));
    let (Some(persist), Some(publish)) = (persist, publish) else { panic!("{effects:#?}") };
    assert!(persist < publish, "the publication must follow the persist it waits for: {effects:#?}");
    let Effect::Persist(item) = &effects[persist] else { unreachable!() };
    assert_eq!(item.participants, ["alice"]);
    assert_eq!(item.conversation, "alice\u{0}~bob");
}

#[test]
fn a_nick_race_on_two_nodes_has_one_winner() {
    let mut net = Net::new(2);
    let a = net.connect(0, "dave", "");
    let b = net.connect(1, "Dave", "");
    net.pump();
    let (la, lb) = (net.take(0, a), net.take(1, b));
    let welcomed = |l: &[String]| l.iter().any(|l| l.contains(" 001 "));
    let refused = |l: &[String]| l.iter().any(|l| l.contains(" 433 "));
    assert!(welcomed(&la) != welcomed(&lb), "exactly one winner: {la:#?} {lb:#?}");
    let (loser_node, loser, lines) = if welcomed(&la) { (1, b, lb) } else { (0, a, la) };
    assert!(refused(&lines), "{lines:#?}");
    // The loser picks another nick and gets in.
    net.send(loser_node, loser, "NICK dave2");
    assert!(welcomed(&net.take(loser_node, loser)));
    // And cannot take the winner's by NICK either.
    net.send(loser_node, loser, "NICK DAVE");
    assert!(refused(&net.take(loser_node, loser)));
}

#[test]
fn two_local_clients_asking_at_once_get_one_answer_each() {
    let mut net = Net::new(2);
    let first = net.connect(0, "erin", "");
    let second = net.connect(0, "erin", "");
    // The second is refused at once: the first's claim is out.
    assert!(net.nodes[0].take(second).iter().any(|l| l.contains(" 433 ")));
    net.pump();
    assert!(net.take(0, first).iter().any(|l| l.contains(" 001 ")));
}

#[test]
fn a_nick_is_free_again_after_its_holder_quits() {
    let mut net = Net::new(2);
    let holder = net.register(0, "frank", "");
    let other = net.start(1, "frank", "");
    assert!(net.take(1, other).iter().any(|l| l.contains(" 433 ")));
    net.send(0, holder, "QUIT");
    net.send(1, other, "NICK frank");
    assert!(net.take(1, other).iter().any(|l| l.contains(" 001 ")));
    assert!(net.claims.contains_key("frank"));

    // A nick given up by NICK is free too, and its old claim is gone.
    net.send(1, other, "NICK frankie");
    assert!(!net.claims.contains_key("frank"), "{:?}", net.claims.keys());
    let again = net.register(0, "frank", "");
    let _ = again;
}

#[test]
fn a_dead_nodes_users_quit_and_their_nicks_are_taken_over() {
    let mut net = Net::new(3);
    let _gina = net.register(0, "gina", "");
    let watcher = net.register(1, "watcher", "");
    net.send(1, watcher, "MONITOR + gina");
    assert_eq!(all(&net.take(1, watcher), "730")[0][1], "gina!~gina@127.0.0.1");

    // Node a dies: its heartbeat expires, and nodes b and c both notice.
    net.down.insert(0);
    net.dead.insert(("a".into(), incarnation(0)));
    for i in [1, 2] {
        let h = &mut net.nodes[i];
        let now = h.now();
        h.server.node_lost("a", incarnation(0), now);
        h.collect();
    }
    net.pump();
    let gone: Vec<_> = net.log.iter().filter(|(_, k, _)| k == "user.a").collect();
    // Introduce, then one NodeGone: the second node's append conflicted.
    assert_eq!(gone.len(), 2, "{gone:?}");
    assert_eq!(all(&net.take(1, watcher), "731")[0][1], "gina");
    assert_eq!(net.nodes[2].server.remote_user_count(), 1, "c knows only watcher now");

    // The claim is still in the bucket, held by a dead incarnation: taken over.
    assert!(net.claims.contains_key("gina"));
    let newcomer = net.register(2, "gina", "");
    net.send(1, watcher, "WHOIS gina");
    assert!(find(&net.take(1, watcher), "311").is_some());
    let _ = newcomer;
}

#[test]
fn away_and_account_of_a_remote_user_show() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "echo-message");
    let bob = net.register(1, "bob", "");
    net.send(1, bob, "AWAY :gone fishing");
    net.send(0, alice, "PRIVMSG bob :are you there");
    let lines = net.take(0, alice);
    assert_eq!(all(&lines, "301")[0][1..], ["bob", "gone fishing"], "{lines:#?}");
    net.nodes[1].login(bob, "bob");
    net.pump();
    net.send(0, alice, "WHOIS bob");
    let lines = net.take(0, alice);
    assert_eq!(all(&lines, "330")[0][1..3], ["bob", "bob"], "{lines:#?}");
    assert_eq!(all(&lines, "301")[0][2], "gone fishing");
}

#[test]
fn garbage_from_the_network_changes_nothing() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    let carl = net.register(0, "carl", "");
    net.send(0, alice, "JOIN #chat");
    net.send(0, carl, "JOIN #chat");
    net.send(0, alice, "TOPIC #chat :t");
    net.send(0, alice, "MODE #chat +v carl");
    net.send(0, alice, "KICK #chat carl");
    net.send(0, alice, "AWAY :x");
    net.take(0, alice);
    net.take(0, carl);
    net.take(1, bob);
    // Valid payloads to cut: everything in the log so far. A payload cut exactly where an
    // older version's entry of it ended (before the fields added since) is that entry, valid
    // (the codec's own tests check that every other cut is refused): the room events here are
    // of a room bob is not in, so that even those reach nobody.
    let valid: Vec<Bytes> = net.log.iter().map(|(_, _, p)| p.clone()).collect();
    let mut state = 0x9e37_79b9_7f4a_7c15;
    let mut seq = net.log.len() as u64;
    for round in 0..3000 {
        // Random bytes, and every valid payload cut short (a bit flipped inside a valid
        // payload may make another valid event: the bus, not the codec, keeps bytes intact).
        let payload: Vec<u8> = if round % 2 == 0 {
            (0..xorshift(&mut state) % 64).map(|_| xorshift(&mut state) as u8).collect()
        } else {
            let v = &valid[round % valid.len()];
            v[..(xorshift(&mut state) as usize % v.len())].to_vec()
        };
        seq += 1;
        let h = &mut net.nodes[1];
        let now = h.now();
        h.server.apply(seq, "user.a", &payload, now);
        h.server.remote(&payload, now);
        h.collect();
    }
    // Another version of a valid event is ignored too.
    let mut v2 = valid[0].to_vec();
    v2[0] = 2;
    let h = &mut net.nodes[1];
    let now = h.now();
    h.server.apply(seq + 1, "user.a", &v2, now);
    h.collect();
    net.pump();
    // Nothing was sent to anyone, and bob's node still knows alice and carl, and only them.
    assert!(net.take(1, bob).is_empty());
    assert!(net.take(0, alice).is_empty());
    assert_eq!(net.nodes[1].server.remote_user_count(), 2);
    net.send(1, bob, "WHOIS alice");
    assert_eq!(all(&net.take(1, bob), "311")[0][1], "alice");
}

#[test]
fn a_single_node_server_leaves_no_cluster_effects() {
    let mut h = Harness::new();
    let a = h.register("alice");
    let b = h.register("bob");
    h.send(a, "NICK alicia");
    h.send(a, "AWAY :x");
    h.send(a, "PRIVMSG bob :hi");
    h.disconnect(b, "gone");
    assert!(h.cluster.is_empty(), "{:?}", h.cluster);
    assert!(h.requests.iter().all(|(_, r)| !matches!(r, Request::Claim(_))));
}

#[test]
fn setname_and_user_modes_of_a_remote_user_show() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room_with(&mut net, "setname");
    net.send(1, bob, "SETNAME :Robert B.");
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 SETNAME :Robert B."]);
    net.send(0, alice, "WHOIS bob");
    assert_eq!(all(&net.take(0, alice), "311")[0][5], "Robert B.");

    let carol = net.register(0, "carol", "");
    net.send(0, carol, "WHO *");
    assert!(all(&net.take(0, carol), "352").iter().any(|p| p[5] == "bob"));
    net.send(1, bob, "MODE bob +iB");
    net.send(0, carol, "WHO *");
    assert!(!all(&net.take(0, carol), "352").iter().any(|p| p[5] == "bob"), "+i hides bob from a listing");
    net.send(0, carol, "WHO bob");
    assert_eq!(all(&net.take(0, carol), "352")[0][6], "HB", "named exactly, and a bot");
}

#[test]
fn lusers_counts_the_network() {
    let mut net = Net::new(3);
    let alice = net.register(0, "alice", "");
    net.register(1, "bob", "");
    net.register(2, "carol", "");
    net.send(0, alice, "LUSERS");
    let lines = net.take(0, alice);
    assert_eq!(all(&lines, "251")[0][1], "There are 3 users and 0 invisible on 3 servers", "{lines:#?}");
    assert_eq!(all(&lines, "265")[0][1], "1", "local");
    assert_eq!(all(&lines, "266")[0][1], "3", "global");
}

#[test]
fn the_guest_rename_claims_a_free_guest_nick() {
    let mut net = Net::new(2);
    net.nodes[0].server.restore(vec!["judy".into()], vec![]);
    // Guest1 is someone's on node b.
    net.register(1, "Guest1", "");
    let judy = net.register(0, "judy", "");
    net.nodes[0].advance(std::time::Duration::from_secs(31));
    net.pump();
    let lines = net.take(0, judy);
    assert_eq!(expect(&lines, "NICK").params, ["Guest2"], "{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("did not log in in time")));
    assert!(net.claims.contains_key("guest2"));
    assert!(!net.claims.contains_key("judy"), "the protected nick is free again");
}

#[test]
fn extended_monitor_hears_a_remote_users_away_and_login() {
    let mut net = Net::new(2);
    let watcher = net.register(0, "watcher", "extended-monitor away-notify account-notify");
    let bob = net.register(1, "bob", "");
    net.send(0, watcher, "MONITOR + bob");
    net.take(0, watcher);
    net.send(1, bob, "AWAY :out");
    assert_eq!(net.take(0, watcher), [":bob!~bob@127.0.0.1 AWAY out"]);
    net.nodes[1].login(bob, "bob");
    net.pump();
    assert_eq!(net.take(0, watcher), [":bob!~bob@127.0.0.1 ACCOUNT bob"]);
}

#[test]
fn an_operator_on_another_node_shows_as_one() {
    let mut net = Net::new(2);
    let mut cfg = chinwag_core::Config {
        opers: vec![chinwag_core::Operator {
            name: "root".into(),
            password_hash: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo".into(),
        }],
        ..chinwag_core::Config::default()
    };
    cfg.limits.autoreplay_lines = 0;
    let mut b = Harness::with_node(cfg, 2);
    b.server.enable_cluster(ClusterIdentity { node: "b".into(), incarnation: incarnation(1) });
    net.nodes[1] = b;
    let alice = net.register(0, "alice", "");
    let root = net.register(1, "root", "");
    net.nodes[1].send(root, "OPER root swordfish");
    let (id, request) = net.nodes[1].next_request();
    assert!(matches!(request, Request::VerifyPassword { .. }), "{request:?}");
    net.nodes[1].respond(id, Response::Done(Ok(())));
    net.pump();
    net.send(0, alice, "WHOIS root");
    assert!(find(&net.take(0, alice), "313").is_some(), "RPL_WHOISOPERATOR");
    net.send(0, alice, "WHO root");
    assert_eq!(all(&net.take(0, alice), "352")[0][6], "H*");
}

/// A client that negotiates capabilities (CAP REQ before NICK, CAP END after USER) and asks
/// for a nick a dead node's user still holds gets it, taken over, and is welcomed.
#[test]
fn a_dead_holders_nick_is_taken_over_by_a_client_negotiating_caps() {
    let mut net = Net::new(2);
    let _gina = net.register(0, "gina", "");
    net.down.insert(0);
    net.dead.insert(("a".into(), incarnation(0)));
    let h = &mut net.nodes[1];
    let now = h.now();
    h.server.node_lost("a", incarnation(0), now);
    h.collect();
    net.pump();
    // As many clients do: CAP REQ without CAP LS first.
    let h = &mut net.nodes[1];
    let newcomer = h.connect();
    for line in ["CAP REQ :message-tags echo-message", "NICK gina", "USER gina 0 * :gina", "CAP END"] {
        h.send(newcomer, line);
    }
    net.pump();
    let lines = net.take(1, newcomer);
    assert!(lines.iter().any(|l| l.contains(" 001 gina ")), "welcomed as gina: {lines:#?}");
}

/// A private message to a user whose connection closed just before the message reached its
/// node is not lost: for a user logged in to an account, its node queues the stored message for
/// that account (delivered at its next login, on any node); for a guest, with nothing to keep
/// it for, the sender hears 401, as it would have a moment later.
#[test]
fn a_private_message_to_a_user_who_just_left_waits_or_is_refused() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    let guest = net.register(1, "guest", "");
    net.nodes[1].login(bob, "bob");
    net.pump();
    for (to, conn) in [("bob", bob), ("guest", guest)] {
        // The message leaves node a; its recipient disconnects before it arrives.
        net.nodes[0].send(alice, &format!("PRIVMSG {to} :are you there?"));
        net.nodes[1].disconnect(conn, "Connection closed");
        net.pump();
    }
    let stored = net.nodes[0].persisted.iter().find(|m| m.target == "bob").expect("stored for bob");
    assert_eq!(net.nodes[1].queued_offline, [("bob".to_owned(), stored.msgid.clone())]);
    let lines = net.take(0, alice);
    let refused = all(&lines, "401");
    assert_eq!(refused.len(), 1, "{lines:#?}");
    assert_eq!(refused[0][1..], ["guest", "No such nick/channel"]);
}

/// Registers `conn`'s current nick as an account on node `i` (IRCv3 REGISTER), answering the
/// store as it would.
fn register_account(net: &mut Net, i: usize, conn: chinwag_core::ConnId, account: &str) {
    net.nodes[i].send(conn, "REGISTER * * longenough");
    let answered =
        net.nodes[i].answer(|r| matches!(r, Request::Register { .. }), Response::Account(Ok(account.into())));
    assert!(answered, "a registration request");
    net.pump();
    let lines = net.take(i, conn);
    assert_eq!(expect(&lines, "REGISTER").params[..2], ["SUCCESS", account], "{lines:#?}");
}

/// An account registered on node a after node b started is an account on node b too: someone
/// who takes its nick there while its owner is away is asked to log in, and a private message
/// to the account from node b waits for the owner instead of reaching the impostor.
#[test]
fn an_account_registered_on_one_node_is_protected_on_every_node() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    register_account(&mut net, 0, alice, "alice");
    net.send(0, alice, "QUIT :later");
    let bob = net.register(1, "bob", "");
    let mallory = net.start(1, "alice", "");
    let lines = net.take(1, mallory);
    expect(&lines, "001");
    assert!(lines.iter().any(|l| l.contains("This nick is registered")), "no nick protection on b: {lines:#?}");
    net.send(1, bob, "PRIVMSG alice :the secret plan");
    let lines = net.take(1, mallory);
    assert!(!lines.iter().any(|l| l.contains("secret plan")), "the impostor got alice's message: {lines:#?}");
    assert!(
        net.nodes[1].persisted.iter().any(|m| m.text == "the secret plan"),
        "the message waits for alice's account"
    );
    // The same from node a, whose account it is.
    let carol = net.register(0, "carol", "");
    net.send(0, carol, "PRIVMSG alice :another secret");
    let lines = net.take(1, mallory);
    assert!(!lines.iter().any(|l| l.contains("another secret")), "{lines:#?}");
}

/// An account deleted on node a: its sessions on node b are logged out at once (they would
/// otherwise go on as an account that no longer exists, and as whoever registers the name
/// next), node b forgets the name, and its peers there hear it.
#[test]
fn an_account_dropped_on_one_node_is_logged_out_and_forgotten_everywhere() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    register_account(&mut net, 0, alice, "alice");
    let phone = net.register(1, "alice_phone", "account-notify");
    net.nodes[1].login(phone, "alice");
    let bob = net.register(1, "bob", "account-notify");
    net.send(1, phone, "JOIN #room");
    net.send(1, bob, "JOIN #room");
    net.take(1, phone);
    net.take(1, bob);
    let founder = net.nodes[1].saved_rooms.iter().rev().find(|r| r.name == "#room").map(|r| r.founder.clone());
    assert_eq!(founder, Some(Some("alice".to_owned())), "alice's session founded #room");
    net.nodes[0].saved_rooms.clear();
    net.nodes[1].saved_rooms.clear();
    net.send(0, alice, "NS DROP longenough");
    let answered = net.nodes[0].answer(|r| matches!(r, Request::DropAccount { .. }), Response::Done(Ok(())));
    assert!(answered, "a drop request");
    net.pump();
    assert!(net.take(0, alice).iter().any(|l| l.contains("has been deleted")));
    let lines = net.take(1, phone);
    assert!(lines.iter().any(|l| l.contains(" 901 ")), "alice's session on b is logged out: {lines:#?}");
    let lines = net.take(1, bob);
    assert!(lines.iter().any(|l| l.contains("ACCOUNT *")), "bob hears it: {lines:#?}");
    net.send(1, bob, "NS INFO alice");
    let lines = net.take(1, bob);
    assert!(lines.iter().any(|l| l.contains("not a registered account")), "node b forgot it: {lines:#?}");
    // The deleting node saved the room without its founder; the others only follow.
    let saved = net.nodes[0].saved_rooms.iter().rev().find(|r| r.name == "#room").map(|r| r.founder.clone());
    assert_eq!(saved, Some(None), "node a saves #room without a founder");
    assert!(net.nodes[1].saved_rooms.is_empty(), "{:?}", net.nodes[1].saved_rooms);
}

/// An account reads its offline queue on node b while node a's users filled it: node a forgets
/// what it counted there, so its users may leave messages again (else node a would refuse every
/// later one for good, the queue's limit reached by messages long read elsewhere).
#[test]
fn an_offline_queue_read_on_one_node_takes_messages_again_on_every_node() {
    let mut net = Net::with(2, |cfg| cfg.limits.offline_queue_len = 2);
    let alice = net.register(0, "alice", "");
    register_account(&mut net, 0, alice, "alice");
    net.send(0, alice, "QUIT :later");
    let bob = net.register(0, "bob", "");
    for n in 0..3 {
        net.send(0, bob, &format!("PRIVMSG alice :note {n}"));
    }
    let lines = net.take(0, bob);
    assert!(lines.iter().any(|l| l.contains("as many as can be kept")), "the third is refused: {lines:#?}");
    let queued: Vec<_> = net.nodes[0].persisted.iter().filter(|m| m.offline_for.is_some()).cloned().collect();
    assert_eq!(queued.len(), 2);

    // alice logs in on node b and reads both.
    let phone = net.register(1, "alice_phone", "");
    net.nodes[1].send(phone, "NS IDENTIFY alice longenough");
    let answered =
        net.nodes[1].answer(|r| matches!(r, Request::CheckPassword { .. }), Response::Account(Ok("alice".into())));
    assert!(answered, "a password check");
    let answered = net.nodes[1].answer(|r| matches!(r, Request::Offline { .. }), Response::Messages(Ok(queued)));
    assert!(answered, "the offline queue's read");
    let lines = net.take(1, phone);
    assert_eq!(lines.iter().filter(|l| l.contains("PRIVMSG") && l.contains("note")).count(), 2, "{lines:#?}");
    let ping = expect(&lines, "PING");
    net.send(1, phone, &format!("PONG :{}", ping.params[0]));
    assert_eq!(net.nodes[1].cleared_offline.len(), 1, "read to its end");

    net.send(0, bob, "PRIVMSG alice :after she read them");
    let lines = net.take(0, bob);
    assert!(!lines.iter().any(|l| l.contains("as many as can be kept")), "node a still counts them: {lines:#?}");
    assert!(net.nodes[0].persisted.iter().any(|m| m.text == "after she read them" && m.offline_for.is_some()));
}

/// Password guesses spread over the nodes of a cluster count on every node: after the free
/// failures on node a, the same address is held back on node b too (on its own, node b would
/// give it a fresh set of guesses, and each further node another).
#[test]
fn password_guesses_spread_over_nodes_are_throttled_as_on_one() {
    let free = chinwag_core::Limits::default().login_free_failures;
    let mut net = Net::new(2);
    let check_requests = |net: &Net, i: usize| {
        net.nodes[i].requests.iter().filter(|(_, r)| matches!(r, Request::CheckPassword { .. })).count()
    };
    let guesser_a = net.register(0, "guesser", "");
    for n in 0..free {
        net.send(0, guesser_a, &format!("NS IDENTIFY alice guess{n}"));
        let answered = net.nodes[0].answer(
            |r| matches!(r, Request::CheckPassword { .. }),
            Response::Account(Err(chinwag_core::Failure::BadPassword)),
        );
        assert!(answered, "the guess is checked");
        net.pump();
    }
    net.take(0, guesser_a);
    // The same address on node b.
    let guesser_b = net.register(1, "guesser2", "");
    net.send(1, guesser_b, "NS IDENTIFY alice another");
    assert_eq!(check_requests(&net, 1), 0, "node b checks no more guesses from that address for now");
    let lines = net.take(1, guesser_b);
    assert!(lines.iter().any(|l| l.contains("try again")), "the guesser is told to wait: {lines:#?}");
    // Once the wait is over, one more may run (each further failure doubles it).
    net.nodes[1].advance(std::time::Duration::from_secs(2));
    net.send(1, guesser_b, "NS IDENTIFY alice another");
    assert_eq!(check_requests(&net, 1), 1);
}

/// NickServ GHOST reaches the session holding the account's nick on another node (a phone
/// left connected elsewhere), and only that: a nick that is not the account's is refused.
#[test]
fn ghost_disconnects_the_accounts_nick_on_another_node() {
    let mut net = Net::new(2);
    let old = net.register(1, "alice", "");
    let bob = net.register(1, "bob", "");
    let me = net.register(0, "alice_", "");
    net.nodes[0].login(me, "alice");
    net.send(0, me, "NS GHOST bob");
    assert!(net.take(0, me).iter().any(|l| l.contains("only ghost your account's nick")));
    assert!(!net.nodes[1].is_closed(bob));
    net.send(0, me, "NS GHOST alice");
    assert!(net.take(0, me).iter().any(|l| l.contains("alice has been disconnected")));
    assert!(net.nodes[1].is_closed(old), "the session on node b is gone");
    net.send(0, me, "NICK alice");
    assert!(net.take(0, me).iter().any(|l| l.contains(" NICK ") || l.contains("NICK :alice")), "the nick is free");
}

/// MODE on another user's nick is refused as on one node (502), whichever node they are on.
#[test]
fn user_modes_of_a_user_on_another_node_are_refused_like_a_local_ones() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    net.register(1, "bob", "");
    net.send(0, alice, "MODE bob +i");
    let lines = net.take(0, alice);
    assert_eq!(expect(&lines, "502").params[1], "Can't change mode for other users", "{lines:#?}");
}

/// Account registrations from one address spread over the nodes share the address's budget
/// (3 per 15 minutes by default): the fourth is refused wherever it is tried.
#[test]
fn registrations_from_one_address_spread_over_nodes_share_its_budget() {
    let mut net = Net::new(2);
    let ip: std::net::IpAddr = "192.0.2.7".parse().expect("an address");
    let mut answers = Vec::new();
    for n in 0..4 {
        let i = n % 2;
        let h = &mut net.nodes[i];
        let conn = h.connect_from(ip, true);
        h.send(conn, &format!("NICK spam{n}"));
        h.send(conn, &format!("USER spam{n} 0 * :spam"));
        net.pump();
        net.take(i, conn);
        net.nodes[i].send(conn, "REGISTER * * longenough");
        let response = Response::Account(Ok(format!("spam{n}")));
        let asked = net.nodes[i].answer(|r| matches!(r, Request::Register { .. }), response);
        net.pump();
        let lines = net.take(i, conn);
        answers.push(expect(&lines, if asked { "REGISTER" } else { "FAIL" }).params[..2].join(" "));
    }
    assert_eq!(answers[..3], ["SUCCESS spam0", "SUCCESS spam1", "SUCCESS spam2"]);
    assert_eq!(answers[3], "REGISTER TEMPORARILY_UNAVAILABLE", "the fourth, on node b: {answers:?}");
}

/// An account deleted while a JOIN of a room it founded (empty, kept for its founder) is on
/// its way from another node: every node, the deleting one included, takes the founder off at
/// the deletion's place in the log, so all agree on who is op there.
#[test]
fn a_deletion_crossing_a_join_of_its_room_leaves_every_node_agreeing() {
    let mut net = Net::new(2);
    let alice = net.register(1, "alice", "");
    register_account(&mut net, 1, alice, "alice");
    net.send(1, alice, "JOIN #r");
    net.send(1, alice, "PART #r");
    let carol = net.register(0, "carol", "");
    let dave = net.register(1, "dave", "");
    // carol's JOIN leaves node a; alice's deletion is answered on node b before it lands.
    net.nodes[0].send(carol, "JOIN #r");
    net.nodes[1].send(alice, "NS DROP longenough");
    let answered = net.nodes[1].answer(|r| matches!(r, Request::DropAccount { .. }), Response::Done(Ok(())));
    assert!(answered, "a drop request");
    net.pump();
    net.take(0, carol);
    net.send(0, carol, "NAMES #r");
    let on_a = support::net::names(&net.take(0, carol));
    net.send(1, dave, "NAMES #r");
    let on_b = support::net::names(&net.take(1, dave));
    assert_eq!(on_a, ["carol"], "carol joined a room that existed: no op");
    assert_eq!(on_b, on_a, "node b agrees");
}

/// Guesses on one account from many addresses share the account's budget on every node: once
/// node a's guessers used it up, an address that already failed on node b is held back there
/// too (each node would otherwise give the account a budget of its own).
#[test]
fn an_accounts_login_budget_is_shared_by_every_node() {
    let burst = chinwag_core::Limits::default().login_account.burst as usize;
    let mut net = Net::new(2);
    let fail_all = |net: &mut Net, i: usize| {
        let bad = || Response::Account(Err(chinwag_core::Failure::BadPassword));
        while net.nodes[i].answer(|r| matches!(r, Request::CheckPassword { .. }), bad()) {}
        net.pump();
    };
    let guesser = |net: &mut Net, i: usize, n: u8| {
        let ip: std::net::IpAddr = format!("198.51.100.{n}").parse().expect("an address");
        let conn = net.nodes[i].connect_from(ip, true);
        net.nodes[i].send(conn, &format!("NICK g{i}x{n}"));
        net.nodes[i].send(conn, "USER g 0 * :g");
        net.pump();
        net.take(i, conn);
        conn
    };
    // Node a: many addresses fail once each, then guess again from the account's budget.
    let guessers: Vec<_> = (1..=burst as u8 + 2).map(|n| guesser(&mut net, 0, n)).collect();
    for &g in &guessers {
        net.nodes[0].send(g, "NS IDENTIFY alice first");
    }
    fail_all(&mut net, 0);
    for &g in &guessers {
        net.nodes[0].send(g, "NS IDENTIFY alice second");
    }
    let checked = net.nodes[0].requests.iter().filter(|(_, r)| matches!(r, Request::CheckPassword { .. })).count();
    assert_eq!(checked, burst, "node a spends the budget");
    fail_all(&mut net, 0);
    // Node b: an address that failed once there, guessing again.
    let g = guesser(&mut net, 1, 200);
    net.nodes[1].send(g, "NS IDENTIFY alice first");
    fail_all(&mut net, 1);
    net.take(1, g);
    net.nodes[1].send(g, "NS IDENTIFY alice second");
    let checked = net.nodes[1].requests.iter().filter(|(_, r)| matches!(r, Request::CheckPassword { .. })).count();
    assert_eq!(checked, 0, "node b knows the account's budget is spent");
    assert!(net.take(1, g).iter().any(|l| l.contains("try again")));
}
