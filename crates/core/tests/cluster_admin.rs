//! Cluster mode (issue #23, `docs/cluster.md`), operators and the administrator across nodes:
//! KILL, server bans, broadcasts and WALLOPS, the console's user list and room changes, and
//! invite-notify. The nodes are wired through `support::net`.

mod support;

use std::net::{IpAddr, Ipv4Addr};

use chinwag_core::keys::{KeyAnswer, KeyCounts, Published};
use chinwag_core::{Config, ConnId, Operator, Response};
use support::net::{names, shared_room, shared_room_with, Net};
use support::{all, expect, find};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

/// Every node accepts `OPER root swordfish` (the test answers the password check).
fn with_opers(net: &mut Net) {
    for h in &mut net.nodes {
        let mut cfg =
            Config { opers: vec![Operator { name: "root".into(), password_hash: HASH.into() }], ..Config::default() };
        cfg.limits.autoreplay_lines = 0;
        h.server.reconfigure(cfg);
    }
}

/// Makes `conn` on node `i` an IRC operator.
fn oper(net: &mut Net, i: usize, conn: ConnId) {
    net.nodes[i].send(conn, "OPER root swordfish");
    let (id, _) = net.nodes[i].next_request();
    net.nodes[i].respond(id, Response::Done(Ok(())));
    net.pump();
    expect(&net.take(i, conn), "381");
}

/// A client registered on node `i` from `ip`, its welcome taken.
fn register_from(net: &mut Net, i: usize, nick: &str, ip: [u8; 4]) -> ConnId {
    let conn = net.nodes[i].connect_from(IpAddr::V4(Ipv4Addr::from(ip)), false);
    net.nodes[i].send(conn, &format!("NICK {nick}"));
    net.nodes[i].send(conn, &format!("USER {nick} 0 * :{nick}"));
    net.pump();
    assert!(net.take(i, conn).iter().any(|l| l.contains(" 001 ")), "{nick} registers on node {i}");
    conn
}

#[test]
fn the_administrator_kills_a_user_on_another_node() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    let now = net.nodes[0].now();
    assert!(net.nodes[0].server.kill("bob", "spam", "admin (uid 0)", now));
    net.nodes[0].collect();
    net.pump();
    let lines = net.take(1, bob);
    assert_eq!(expect(&lines, "ERROR").params[0], "Closing Link: 127.0.0.1 (Killed (admin (uid 0) (spam)))");
    assert!(net.nodes[1].is_closed(bob));
    // Its QUIT went through the log like any.
    assert_eq!(net.take(0, alice), [":bob!~bob@127.0.0.1 QUIT :Killed (admin (uid 0) (spam))"]);
    net.send(0, alice, "NAMES #chat");
    assert_eq!(names(&net.take(0, alice)), ["@alice"]);
    let now = net.nodes[0].now();
    assert!(!net.nodes[0].server.kill("bob", "again", "admin (uid 0)", now), "nobody has the nick now");
}

#[test]
fn an_operators_kill_reaches_a_user_on_another_node() {
    let mut net = Net::new(2);
    with_opers(&mut net);
    let root = net.register(0, "root", "");
    let bob = net.register(1, "bob", "");
    oper(&mut net, 0, root);
    net.send(0, root, "KILL bob :flooding");
    assert!(find(&net.take(0, root), "401").is_none(), "bob is known on another node");
    assert!(net.nodes[1].is_closed(bob));
    assert_eq!(expect(&net.take(1, bob), "ERROR").params[0], "Closing Link: 127.0.0.1 (Killed (root/root (flooding)))");
    net.send(0, root, "WHOIS bob");
    assert!(find(&net.take(0, root), "401").is_some(), "bob quit network-wide");
}

#[test]
fn a_ban_set_on_one_node_bans_on_every_node() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = register_from(&mut net, 1, "bob", [192, 0, 2, 5]);
    let watcher = net.register(1, "carol", "");
    net.send(1, bob, "JOIN #chat");
    net.send(0, alice, "JOIN #chat");
    net.take(0, alice);
    net.take(1, watcher);
    let (version, now) = (net.nodes[1].server.klines_version(), net.nodes[0].now());
    let here = net.nodes[0].server.ban("192.0.2.*", "spam", None, "admin (uid 0)", now);
    assert_eq!(here, Ok(0), "nobody matches on the node that set it");
    net.nodes[0].collect();
    net.pump();
    assert!(net.nodes[1].is_closed(bob), "disconnected on its own node");
    assert_eq!(expect(&net.take(1, bob), "ERROR").params[0], "Closing Link: 192.0.2.5 (K-Lined: spam)");
    assert_eq!(net.take(0, alice), [":bob!~bob@192.0.2.5 QUIT :K-Lined: spam"]);
    assert!(net.take(1, watcher).is_empty(), "the ban took only who it matches");
    let masks = |net: &Net, i: usize| net.nodes[i].server.klines().into_iter().map(|k| k.mask).collect::<Vec<_>>();
    assert_eq!(masks(&net, 1), ["192.0.2.*"]);
    assert_ne!(net.nodes[1].server.klines_version(), version, "node b saves its bans");
    // A new connection to either node from the banned range is refused.
    let again = net.nodes[1].connect_from(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 9)), false);
    assert!(find(&net.take(1, again), "465").is_some());
    assert!(net.nodes[1].is_closed(again));

    // Lifted on the other node: lifted everywhere.
    assert!(net.nodes[1].server.unban("192.0.2.*", "admin (uid 0)"));
    net.nodes[1].collect();
    net.pump();
    assert!(masks(&net, 0).is_empty());
    assert!(masks(&net, 1).is_empty());
    let back = register_from(&mut net, 0, "bob", [192, 0, 2, 5]);
    assert!(!net.nodes[0].is_closed(back));
}

#[test]
fn an_operators_kline_disconnects_matching_users_on_every_node() {
    let mut net = Net::new(3);
    with_opers(&mut net);
    let root = net.register(0, "root", "");
    oper(&mut net, 0, root);
    let bob = register_from(&mut net, 1, "bob", [198, 51, 100, 7]);
    let carl = register_from(&mut net, 2, "carl", [198, 51, 100, 8]);
    let dana = net.register(2, "dana", "");
    net.send(0, root, "KLINE 10 198.51.100.* :go away");
    let notice = expect(&net.take(0, root), "NOTICE");
    assert_eq!(notice.params[1], "Added K-line for 198.51.100.* (0 disconnected)");
    assert!(net.nodes[1].is_closed(bob));
    assert!(net.nodes[2].is_closed(carl));
    assert!(!net.nodes[2].is_closed(dana));
    let ban = net.nodes[2].server.klines();
    assert_eq!(ban.len(), 1);
    assert_eq!(ban[0].set_by, "root/root");
    assert!(ban[0].expires_ms.is_some(), "its expiry crossed with it");
    net.send(0, root, "UNKLINE 198.51.100.*");
    assert!(net.nodes[2].server.klines().is_empty());
}

#[test]
fn a_broadcast_reaches_the_users_of_every_node() {
    let mut net = Net::new(3);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    let carl = net.register(2, "carl", "");
    let now = net.nodes[0].now();
    let sent = net.nodes[0].server.announce("maintenance at noon", now);
    assert_eq!(sent, 3, "counted on every node");
    net.nodes[0].collect();
    net.pump();
    for (i, conn, nick) in [(0, alice, "alice"), (1, bob, "bob"), (2, carl, "carl")] {
        let lines = net.take(i, conn);
        assert_eq!(expect(&lines, "NOTICE").params, [nick, "maintenance at noon"], "node {i}");
        assert_eq!(lines.len(), 1, "once: {lines:#?}");
    }
}

#[test]
fn server_notices_and_wallops_from_an_operator_cross_nodes() {
    let mut net = Net::new(2);
    with_opers(&mut net);
    let root = net.register(0, "root", "");
    let admin = net.register(1, "admin", "");
    let bob = net.register(1, "bob", "");
    oper(&mut net, 0, root);
    oper(&mut net, 1, admin);
    net.send(0, root, "NOTICE $* :restarting soon");
    assert_eq!(net.take(1, bob), [":root!~root@127.0.0.1 NOTICE $* :restarting soon"]);
    assert_eq!(net.take(1, admin), [":root!~root@127.0.0.1 NOTICE $* :restarting soon"]);
    net.take(0, root);
    net.send(0, root, "WALLOPS :opers only");
    assert_eq!(net.take(1, admin), [":root!~root@127.0.0.1 WALLOPS :opers only"]);
    assert!(net.take(1, bob).is_empty(), "not an operator");
}

#[test]
fn the_console_lists_users_of_every_node_with_their_node() {
    let mut net = Net::new(2);
    let (_, bob) = shared_room(&mut net);
    net.send(1, bob, "JOIN #other");
    let now = net.nodes[0].now();
    let users = net.nodes[0].server.users(now);
    let rows: Vec<(&str, Option<&str>, usize)> =
        users.iter().map(|u| (u.nick.as_str(), u.node.as_deref(), u.channels)).collect();
    assert_eq!(rows, [("alice", None, 1), ("bob", Some("b"), 2)]);
    let rooms = net.nodes[0].server.rooms();
    assert_eq!(rooms.iter().find(|r| r.name == "#chat").map(|r| r.members), Some(2), "members of every node");
}

#[test]
fn the_consoles_room_changes_go_through_the_log_to_every_node() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    let now = net.nodes[0].now();
    let words = net.nodes[0].server.room_mode("#chat", "+o", &["bob".into()], "admin (uid 0)", now);
    assert_eq!(words, Ok(vec!["+o".to_owned(), "bob".to_owned()]));
    net.nodes[0].collect();
    assert!(net.take(0, alice).is_empty(), "nothing before the log says so");
    net.pump();
    let line = ":chinwag.local MODE #chat +o bob";
    assert_eq!(net.take(0, alice), [line]);
    assert_eq!(net.take(1, bob), [line]);
    net.send(1, bob, "NAMES #chat");
    assert_eq!(names(&net.take(1, bob)), ["@alice", "@bob"]);
    assert!(net.log.iter().any(|(_, key, _)| key == "room.=23chat"), "the change is in the room's log");

    let saves = |net: &Net, i: usize| net.nodes[i].saved_rooms.iter().filter(|r| r.name == "#chat").count();
    let before = (saves(&net, 0), saves(&net, 1));
    let now = net.nodes[1].now();
    assert_eq!(net.nodes[1].server.room_topic("#chat", "from the top", "admin (uid 0)", now), Ok(()));
    net.nodes[1].collect();
    net.pump();
    let line = ":chinwag.local TOPIC #chat :from the top";
    assert_eq!(net.take(0, alice), [line]);
    assert_eq!(net.take(1, bob), [line]);
    net.send(0, alice, "TOPIC #chat");
    assert_eq!(all(&net.take(0, alice), "332")[0][2], "from the top");
    // Only the node the change was made on saves the room.
    assert_eq!((saves(&net, 0), saves(&net, 1)), (before.0, before.1 + 1));

    // Errors still come back at once.
    let now = net.nodes[0].now();
    let refused = net.nodes[0].server.room_mode("#chat", "+o", &["nobody".into()], "admin (uid 0)", now);
    assert!(refused.is_err_and(|why| why.contains("No such nick")));
}

#[test]
fn invite_notify_reaches_the_rooms_operators_on_every_node() {
    let mut net = Net::new(3);
    let (alice, bob) = shared_room_with(&mut net, "invite-notify");
    let anna = net.register(0, "anna", "invite-notify");
    let dave = net.register(2, "dave", "");
    net.send(0, anna, "JOIN #chat");
    net.send(0, alice, "MODE #chat +oo bob anna");
    for (i, conn) in [(0, alice), (1, bob), (0, anna)] {
        net.take(i, conn);
    }
    // To a user on a third node: the inviter's node's operators and the others' hear of it.
    net.send(0, alice, "INVITE dave #chat");
    assert_eq!(expect(&net.take(0, alice), "341").params, ["alice", "dave", "#chat"]);
    assert_eq!(net.take(2, dave), [":alice!~alice@127.0.0.1 INVITE dave #chat"]);
    assert_eq!(net.take(0, anna), [":alice!~alice@127.0.0.1 INVITE dave #chat"]);
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 INVITE dave #chat"]);
    // To a user on the inviter's own node: the other nodes' operators too.
    let eve = net.register(0, "eve", "");
    net.send(0, alice, "INVITE eve #chat");
    assert_eq!(net.take(1, bob), [":alice!~alice@127.0.0.1 INVITE eve #chat"]);
    assert_eq!(net.take(0, anna), [":alice!~alice@127.0.0.1 INVITE eve #chat"]);
    assert_eq!(net.take(0, eve), [":alice!~alice@127.0.0.1 INVITE eve #chat"]);
    assert!(net.take(0, alice).iter().all(|l| !l.contains(" INVITE ")), "the inviter gets 341 only");
}

const CURVE: &str = "Gc0elC7SjBwYRNmOeEJJaFWWwBdjhAm9FbVD0M2Hsic";
const ED: &str = "Kr6R2yuPMnn6kp5SDmL1XHNY5kJnXDhRrmMp+5lRHko";
const SIG: &str = "SIGfQ0TBsQbZf9yfI1tNkpeW1yBTGuFrgUw4yuQk7GUvMn6HIvHgrx1DHVxGrC1x6cbvS2HpZIz1h4Zs6Xbe0AA";

/// A client on node `i` logged in to `account` whose connection published `device`.
fn device(net: &mut Net, i: usize, nick: &str, account: &str, device: &str) -> ConnId {
    let c = net.register(i, nick, "message-tags chinwag.dev/e2e");
    net.nodes[i].login(c, account);
    net.pump();
    net.nodes[i].send(c, &format!("E2E DEVICE {device} {CURVE} {ED} {SIG}"));
    let (id, _) = net.nodes[i].next_request();
    net.nodes[i].respond(id, Response::Keys(Ok(KeyAnswer::Published(Published::New, KeyCounts::default()))));
    let (id, _) = net.nodes[i].next_request();
    net.nodes[i].respond(id, Response::Messages(Ok(vec![])));
    net.pump();
    net.take(i, c);
    c
}

/// An encrypted PRIVMSG to `target` for `account`'s `device`.
fn sealed(account: &str, device: &str, target: &str) -> String {
    format!("@+chinwag.dev/e2e=1,{account},{device},alice1,m1,1,1,0,AAAA PRIVMSG {target} :[encrypted message]")
}

#[test]
fn an_encrypted_message_reaches_its_device_on_any_node() {
    let mut net = Net::new(3);
    let alice = device(&mut net, 0, "alice", "alice", "alice1");
    let laptop = device(&mut net, 1, "bob", "bob", "laptop");
    let phone = device(&mut net, 0, "bob_", "bob", "phone");
    let tablet = device(&mut net, 2, "bobt", "bob", "tablet");
    let alice2 = device(&mut net, 2, "alice_", "alice", "alice2");
    let stored = |net: &Net| net.nodes[0].persisted.last().cloned().expect("stored");

    // The device is the recipient's own connection: one copy.
    net.send(0, alice, &sealed("bob", "laptop", "bob"));
    assert_eq!(net.take(1, laptop).len(), 1, "once, not twice");
    assert_eq!(stored(&net).offline_for, None, "the device is online: nothing to queue");

    // On a third node, under another nick: it gets the line addressed to bob.
    net.send(0, alice, &sealed("bob", "tablet", "bob"));
    let to_tablet = expect(&net.take(2, tablet), "PRIVMSG");
    assert_eq!(to_tablet.params, ["bob", "[encrypted message]"]);
    assert!(to_tablet.tag("+chinwag.dev/e2e").is_some_and(|v| v.starts_with("1,bob,tablet,")));
    assert_eq!(net.take(1, laptop).len(), 1, "the nick's holder gets its usual copy");
    assert_eq!(stored(&net).offline_for, None);

    // On the sender's node.
    net.send(0, alice, &sealed("bob", "phone", "bob"));
    assert_eq!(expect(&net.take(0, phone), "PRIVMSG").params, ["bob", "[encrypted message]"]);
    net.take(1, laptop);

    // The sender's own other device, elsewhere, gets a copy of what it sent.
    net.send(0, alice, &sealed("alice", "alice2", "bob"));
    assert_eq!(expect(&net.take(2, alice2), "PRIVMSG").params, ["bob", "[encrypted message]"]);
    net.take(1, laptop);

    // A device connected nowhere: the message waits in its queue.
    net.send(0, alice, &sealed("bob", "watch", "bob"));
    assert_eq!(stored(&net).offline_for.as_deref(), Some("bob/watch"));
    assert!(net.take(2, tablet).is_empty());

    // Once the tablet leaves, its messages wait for it.
    net.send(2, tablet, "QUIT");
    net.send(0, alice, &sealed("bob", "tablet", "bob"));
    assert_eq!(stored(&net).offline_for.as_deref(), Some("bob/tablet"));
}

/// A device removed on one node (a lost laptop) is unbound wherever it is connected: what is
/// sealed for it no longer reaches it on another node.
#[test]
fn a_device_removed_on_one_node_gets_nothing_more_on_another() {
    let mut net = Net::new(3);
    let alice = device(&mut net, 0, "alice", "alice", "alice1");
    let phone = device(&mut net, 1, "bob", "bob", "phone");
    let tablet = device(&mut net, 2, "bobt", "bob", "tablet");
    net.send(0, alice, &sealed("bob", "tablet", "bob"));
    assert_eq!(net.take(2, tablet).len(), 1, "bound: it gets what is sealed for it");
    net.take(1, phone);

    net.nodes[1].send(phone, "E2E REMOVE tablet");
    let (id, _) = net.nodes[1].next_request();
    net.nodes[1].respond(id, Response::Keys(Ok(KeyAnswer::Removed(true))));
    net.pump();
    assert!(net.take(1, phone).iter().any(|l| l.contains("REMOVED tablet")));
    net.send(0, alice, &sealed("bob", "tablet", "bob"));
    assert!(net.take(2, tablet).is_empty(), "the removed tablet on node c still gets sealed messages");
}
