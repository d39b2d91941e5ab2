//! Cluster mode (issue #23, `docs/cluster.md`): two or three `Server`s wired through an
//! in-test network — one ordered log every node applies in order (with per-key sequences for
//! expected appends), a claims map with revisions, and node topics delivered to the node they
//! name. Lines in, lines out, as in the other scenarios.

mod support;

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chinwag_core::{
    AppendError, ClaimAnswer, ClaimRequest, ClusterEffect, ClusterIdentity, ConnId, Effect, Expect, Request, Response,
    Topic, UserId,
};
use support::{all, expect, find, Harness};

/// The network the nodes share.
struct Net {
    nodes: Vec<Harness>,
    names: Vec<String>,
    /// (seq, key, payload); seq = index + 1.
    log: Vec<(u64, String, Bytes)>,
    /// How far each node has applied the log.
    applied: Vec<usize>,
    /// Folded nick → (holder, revision).
    claims: HashMap<String, (Bytes, u64)>,
    revision: u64,
    /// Node incarnations whose heartbeat has expired.
    dead: HashSet<(String, u64)>,
    /// Nodes that are down: they neither act nor receive.
    down: HashSet<usize>,
    /// Folded room → the nodes subscribed to its topic.
    subscribed: HashMap<String, HashSet<usize>>,
    /// Room publications, counted.
    room_publications: usize,
    /// Lose the next room publication on its way (as core NATS may).
    lose_next: bool,
    /// Deliver every room publication twice.
    twice: bool,
}

fn incarnation(i: usize) -> u64 {
    1000 + i as u64
}

impl Net {
    fn new(count: usize) -> Net {
        let names: Vec<String> = ["a", "b", "c"][..count].iter().map(|s| s.to_string()).collect();
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut h = Harness::new();
                h.server.enable_cluster(ClusterIdentity { node: name.clone(), incarnation: incarnation(i) });
                h
            })
            .collect();
        Net {
            nodes,
            names,
            log: Vec::new(),
            applied: vec![0; count],
            claims: HashMap::new(),
            revision: 0,
            dead: HashSet::new(),
            down: HashSet::new(),
            subscribed: HashMap::new(),
            room_publications: 0,
            lose_next: false,
            twice: false,
        }
    }

    fn node_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Carries out what the nodes asked of the network until nothing is left.
    fn pump(&mut self) {
        for _ in 0..100 {
            let mut busy = false;
            for i in 0..self.nodes.len() {
                if self.down.contains(&i) {
                    self.nodes[i].cluster.clear();
                    continue;
                }
                busy |= self.step(i);
            }
            if !busy {
                return;
            }
        }
        panic!("the network did not settle");
    }

    fn step(&mut self, i: usize) -> bool {
        let mut busy = false;
        let effects: Vec<ClusterEffect> = std::mem::take(&mut self.nodes[i].cluster);
        for effect in effects {
            busy = true;
            match effect {
                ClusterEffect::Append { id, key, expect, event } => {
                    let key = key.name();
                    let last = self.log.iter().rev().find(|(_, k, _)| *k == key).map(|(seq, _, _)| *seq);
                    let ok = match expect {
                        Expect::Any => true,
                        Expect::Empty => last.is_none(),
                        Expect::Last(seq) => last == Some(seq),
                    };
                    let outcome = if ok {
                        let seq = self.log.len() as u64 + 1;
                        self.log.push((seq, key, event));
                        Ok(seq)
                    } else {
                        Err(AppendError::Conflict)
                    };
                    let h = &mut self.nodes[i];
                    let now = h.now();
                    h.server.appended(id, outcome, now);
                    h.collect();
                }
                ClusterEffect::Publish { topic: Topic::Node(node), payload } => {
                    let Some(j) = self.node_of(&node).filter(|j| !self.down.contains(j)) else { continue };
                    let h = &mut self.nodes[j];
                    let now = h.now();
                    h.server.remote(&payload, now);
                    h.collect();
                }
                ClusterEffect::Publish { topic: Topic::Room(room), payload } => {
                    self.room_publications += 1;
                    if std::mem::take(&mut self.lose_next) {
                        continue;
                    }
                    // Every subscriber gets it, the publisher too (as on NATS).
                    let mut to: Vec<usize> = self.subscribed.get(&room).into_iter().flatten().copied().collect();
                    to.sort();
                    for j in to.into_iter().filter(|j| !self.down.contains(j)) {
                        let h = &mut self.nodes[j];
                        let now = h.now();
                        h.server.remote(&payload, now);
                        if self.twice {
                            h.server.remote(&payload, now);
                        }
                        h.collect();
                    }
                }
                ClusterEffect::Subscribe { topic: Topic::Room(room) } => {
                    assert!(self.subscribed.entry(room.clone()).or_default().insert(i), "{room} subscribed twice");
                }
                ClusterEffect::Unsubscribe { topic: Topic::Room(room) } => {
                    assert!(self.subscribed.entry(room.clone()).or_default().remove(&i), "{room} not subscribed");
                }
                ClusterEffect::Subscribe { .. } | ClusterEffect::Unsubscribe { .. } => {
                    panic!("{i} asked for a node topic")
                }
                ClusterEffect::ReleaseNick { nick, revision } => {
                    if self.claims.get(&nick).is_some_and(|(_, r)| *r == revision) {
                        self.claims.remove(&nick);
                    }
                }
            }
        }
        let requests = std::mem::take(&mut self.nodes[i].requests);
        for (id, request) in requests {
            let Request::Claim(claim) = request else {
                self.nodes[i].requests.push((id, request));
                continue;
            };
            busy = true;
            let answer = self.claim(claim);
            self.nodes[i].respond(id, Response::Claim(answer));
        }
        while self.applied[i] < self.log.len() {
            busy = true;
            let (seq, key, payload) = self.log[self.applied[i]].clone();
            self.applied[i] += 1;
            let h = &mut self.nodes[i];
            let now = h.now();
            h.server.apply(seq, &key, &payload, now);
            h.collect();
        }
        busy
    }

    fn claim(&mut self, request: ClaimRequest) -> ClaimAnswer {
        let (nick, holder, at) = match request {
            ClaimRequest::Nick { nick, holder } => (nick, holder, None),
            ClaimRequest::TakeOver { nick, holder, revision } => (nick, holder, Some(revision)),
        };
        match self.claims.get(&nick) {
            Some((current, revision)) if at != Some(*revision) => {
                let alive = UserId::from_claim_value(current)
                    .is_none_or(|h| !self.dead.contains(&(h.node.clone(), h.incarnation)));
                ClaimAnswer::Taken { holder: current.clone(), revision: *revision, alive }
            }
            _ => {
                self.revision += 1;
                self.claims.insert(nick, (holder, self.revision));
                ClaimAnswer::Granted { revision: self.revision }
            }
        }
    }

    /// Sends a line from `conn` on node `i`, then lets the network settle.
    fn send(&mut self, i: usize, conn: ConnId, line: &str) {
        self.nodes[i].send(conn, line);
        self.pump();
    }

    fn take(&mut self, i: usize, conn: ConnId) -> Vec<String> {
        self.nodes[i].take(conn)
    }

    /// A registered client on node `i` (with `caps`, space separated), its welcome taken.
    fn register(&mut self, i: usize, nick: &str, caps: &str) -> ConnId {
        let conn = self.start(i, nick, caps);
        let lines = self.take(i, conn);
        assert!(lines.iter().any(|l| l.contains(" 001 ")), "no welcome for {nick} on node {i}: {lines:#?}");
        conn
    }

    /// A client on node `i` that sent NICK and USER (and CAP END), the network settled.
    fn start(&mut self, i: usize, nick: &str, caps: &str) -> ConnId {
        let conn = self.connect(i, nick, caps);
        self.pump();
        conn
    }

    /// Like [`Net::start`] without letting the network answer.
    fn connect(&mut self, i: usize, nick: &str, caps: &str) -> ConnId {
        let h = &mut self.nodes[i];
        let conn = h.connect();
        if !caps.is_empty() {
            h.send(conn, "CAP LS 302");
            h.send(conn, &format!("CAP REQ :{caps}"));
        }
        h.send(conn, &format!("NICK {nick}"));
        h.send(conn, &format!("USER {nick} 0 * :{nick} real"));
        if !caps.is_empty() {
            h.send(conn, "CAP END");
        }
        conn
    }
}

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

/// A small deterministic generator for garbage.
fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn garbage_from_the_network_changes_nothing() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    net.send(1, bob, "JOIN #chat");
    net.send(0, alice, "TOPIC #chat :t");
    net.send(0, alice, "MODE #chat +v bob");
    net.send(0, alice, "KICK #chat bob");
    net.send(0, alice, "AWAY :x");
    net.take(0, alice);
    net.take(1, bob);
    // Valid payloads to cut: everything in the log so far.
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
    // Nothing was sent to anyone, and bob's node still knows alice, and only her.
    assert!(net.take(1, bob).is_empty());
    assert!(net.take(0, alice).is_empty());
    assert_eq!(net.nodes[1].server.remote_user_count(), 1);
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

// ---- rooms across nodes ----

/// The names in the 353 lines of `lines`, sorted.
fn names(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> =
        all(lines, "353").iter().flat_map(|p| p[3].split(' ').map(str::to_owned).collect::<Vec<_>>()).collect();
    names.sort();
    names
}

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

/// alice (node a, the room's maker and op) and bob (node b) in #chat, nothing left to take.
fn shared_room(net: &mut Net) -> (ConnId, ConnId) {
    let alice = net.register(0, "alice", "");
    let bob = net.register(1, "bob", "");
    net.send(0, alice, "JOIN #chat");
    net.send(1, bob, "JOIN #chat");
    net.take(0, alice);
    net.take(1, bob);
    (alice, bob)
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
fn setname_and_user_modes_of_a_remote_user_show() {
    let mut net = Net::new(2);
    let alice = net.register(0, "alice", "setname");
    let bob = net.register(1, "bob", "setname");
    net.send(0, alice, "JOIN #chat");
    net.send(1, bob, "JOIN #chat");
    net.take(0, alice);
    net.take(1, bob);
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
    let mut b = Harness::with_config(cfg);
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

#[test]
fn a_lost_room_message_is_counted_and_a_repeated_one_delivered_once() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    net.send(0, alice, "PRIVMSG #chat :one");
    net.lose_next = true;
    net.send(0, alice, "PRIVMSG #chat :two");
    net.twice = true;
    net.send(0, alice, "PRIVMSG #chat :three");
    let got = all(&net.take(1, bob), "PRIVMSG");
    assert_eq!(got, [vec!["#chat".to_owned(), "one".into()], vec!["#chat".into(), "three".into()]]);
    assert_eq!(net.nodes[1].server.missed_room_messages(), 1);
}
