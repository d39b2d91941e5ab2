//! An in-test cluster for `tests/cluster*.rs`: two or three `Server`s wired through one ordered
//! log every node applies in order (with per-key sequences for expected appends), a claims map
//! with revisions, node topics delivered to the node they name and room topics to the nodes
//! subscribed — what the server's bus task does with NATS, in memory and in order.

use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use chinwag_core::{
    AppendError, Bound, ClaimAnswer, ClaimRequest, ClusterEffect, ClusterIdentity, ConnId, Expect, HistoryItem,
    HistoryQuery, Request, Response, Topic, UserId,
};

use super::{all, Harness};

/// The network the nodes share.
pub struct Net {
    pub nodes: Vec<Harness>,
    pub names: Vec<String>,
    /// (seq, key, payload); seq = index + 1.
    pub log: Vec<(u64, String, Bytes)>,
    /// How far each node has applied the log.
    pub applied: Vec<usize>,
    /// Folded nick → (holder, revision).
    pub claims: HashMap<String, (Bytes, u64)>,
    pub revision: u64,
    /// Node incarnations whose heartbeat has expired.
    pub dead: HashSet<(String, u64)>,
    /// Nodes that are down: they neither act nor receive.
    pub down: HashSet<usize>,
    /// Nodes behind the log: they act and receive messages, but apply no entry yet.
    pub lagging: HashSet<usize>,
    /// Folded room → the nodes subscribed to its topic.
    pub subscribed: HashMap<String, HashSet<usize>>,
    /// Room publications, counted.
    pub room_publications: usize,
    /// Lose the next room publication on its way (as core NATS may).
    pub lose_next: bool,
    /// Deliver every room publication twice.
    pub twice: bool,
    /// The nodes that asked to join again as a new incarnation (`ClusterEffect::Rejoin`).
    pub rejoins: Vec<usize>,
    /// Conflicts do not say the key's last sequence (as a bus that cannot tell).
    pub conflicts_without_last: bool,
}

pub fn incarnation(i: usize) -> u64 {
    1000 + i as u64
}

impl Net {
    pub fn new(count: usize) -> Net {
        Net::with_config(count, |_, _| {})
    }

    /// [`Net::new`] with every node's configuration changed by `tune`.
    pub fn with(count: usize, tune: impl Fn(&mut chinwag_core::Config)) -> Net {
        Net::with_config(count, |_, cfg| tune(cfg))
    }

    /// [`Net::new`] with each node's configuration changed by `configure` (node index, config).
    pub fn with_config(count: usize, configure: impl Fn(usize, &mut chinwag_core::Config)) -> Net {
        let names: Vec<String> = ["a", "b", "c"][..count].iter().map(|s| s.to_string()).collect();
        let nodes = names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let mut cfg = chinwag_core::Config::default();
                cfg.limits.autoreplay_lines = 0;
                configure(i, &mut cfg);
                let mut h = Harness::with_node(cfg, i as u32 + 1);
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
            lagging: HashSet::new(),
            subscribed: HashMap::new(),
            room_publications: 0,
            lose_next: false,
            twice: false,
            rejoins: Vec::new(),
            conflicts_without_last: false,
        }
    }

    fn node_of(&self, name: &str) -> Option<usize> {
        self.names.iter().position(|n| n == name)
    }

    /// Carries out what the nodes asked of the network until nothing is left.
    pub fn pump(&mut self) {
        for _ in 0..1000 {
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
            if let ClusterEffect::Append { event: payload, .. } | ClusterEffect::Publish { payload, .. } = &effect {
                assert!(payload.len() <= chinwag_core::MAX_PAYLOAD, "a payload of {} bytes", payload.len());
            }
            match effect {
                ClusterEffect::Append { id, key, expect, event, heard } => {
                    // The bridge makes such an append only once the node hears the topic.
                    if let Some(Topic::Room(room)) = &heard {
                        assert!(
                            self.subscribed.get(room).is_some_and(|s| s.contains(&i)),
                            "{i} appends before hearing {room}"
                        );
                    }
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
                        Err(AppendError::Conflict { last: last.filter(|_| !self.conflicts_without_last) })
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
                ClusterEffect::Publish { topic: Topic::Network, payload } => {
                    for j in (0..self.nodes.len()).filter(|j| *j != i && !self.down.contains(j)) {
                        let h = &mut self.nodes[j];
                        let now = h.now();
                        h.server.remote(&payload, now);
                        h.collect();
                    }
                }
                ClusterEffect::Publish { topic: Topic::Room(room), payload } => {
                    self.room_publications += 1;
                    if std::mem::take(&mut self.lose_next) {
                        continue;
                    }
                    // Every subscriber but the publisher gets it (as on NATS, with no echo).
                    let mut to: Vec<usize> =
                        self.subscribed.get(&room).into_iter().flatten().copied().filter(|j| *j != i).collect();
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
                ClusterEffect::Rejoin => self.rejoins.push(i),
                ClusterEffect::ReleaseNick { nick, revision } => {
                    if self.claims.get(&nick).is_some_and(|(_, r)| *r == revision) {
                        self.claims.remove(&nick);
                    }
                }
            }
        }
        let requests = std::mem::take(&mut self.nodes[i].requests);
        for (id, request) in requests {
            match request {
                Request::Claim(claim) => {
                    busy = true;
                    let answer = self.claim(claim);
                    self.nodes[i].respond(id, Response::Claim(answer));
                }
                // A room's messages after a msgid (and before another), from the storage every
                // node shares.
                Request::History { conversation, query, limit, .. } => {
                    let (after, before) = match query {
                        HistoryQuery::Between(Bound::MsgId(a), Bound::MsgId(b)) => (a, Some(b)),
                        HistoryQuery::After(Bound::MsgId(a)) => (a, None),
                        query => {
                            let request = Request::History { conversation, query, limit, events: false };
                            self.nodes[i].requests.push((id, request));
                            continue;
                        }
                    };
                    busy = true;
                    let mut items: Vec<HistoryItem> = self
                        .nodes
                        .iter()
                        .flat_map(|h| h.persisted.iter())
                        .filter(|m| m.conversation == conversation && m.msgid > after)
                        .filter(|m| before.as_ref().is_none_or(|b| m.msgid < *b))
                        .cloned()
                        .collect();
                    items.sort_by(|a, b| a.msgid.cmp(&b.msgid));
                    items.truncate(limit);
                    self.nodes[i].respond(id, Response::Messages(Ok(items)));
                }
                other => self.nodes[i].requests.push((id, other)),
            }
        }
        while self.applied[i] < self.log.len() && !self.lagging.contains(&i) {
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

    /// Node `dead` stops (its heartbeat expires) and node `by` notices: it appends its
    /// `NodeGone`, and the network settles.
    pub fn lose_node(&mut self, dead: usize, by: usize) {
        self.down.insert(dead);
        self.dead.insert((self.names[dead].clone(), incarnation(dead)));
        let h = &mut self.nodes[by];
        let now = h.now();
        h.server.node_lost(&self.names[dead], incarnation(dead), now);
        h.collect();
        self.pump();
    }

    /// Sends a line from `conn` on node `i`, then lets the network settle.
    pub fn send(&mut self, i: usize, conn: ConnId, line: &str) {
        self.nodes[i].send(conn, line);
        self.pump();
    }

    pub fn take(&mut self, i: usize, conn: ConnId) -> Vec<String> {
        self.nodes[i].take(conn)
    }

    /// A registered client on node `i` (with `caps`, space separated), its welcome taken.
    pub fn register(&mut self, i: usize, nick: &str, caps: &str) -> ConnId {
        let conn = self.start(i, nick, caps);
        let lines = self.take(i, conn);
        assert!(lines.iter().any(|l| l.contains(" 001 ")), "no welcome for {nick} on node {i}: {lines:#?}");
        conn
    }

    /// A client on node `i` that sent NICK and USER (and CAP END), the network settled.
    pub fn start(&mut self, i: usize, nick: &str, caps: &str) -> ConnId {
        let conn = self.connect(i, nick, caps);
        self.pump();
        conn
    }

    /// Like [`Net::start`] without letting the network answer.
    pub fn connect(&mut self, i: usize, nick: &str, caps: &str) -> ConnId {
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

/// A small deterministic generator for garbage.
pub fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// The names in the 353 lines of `lines`, sorted.
pub fn names(lines: &[String]) -> Vec<String> {
    let mut names: Vec<String> =
        all(lines, "353").iter().flat_map(|p| p[3].split(' ').map(str::to_owned).collect::<Vec<_>>()).collect();
    names.sort();
    names
}

/// alice (node a, the room's maker and op) and bob (node b) in #chat, nothing left to take.
pub fn shared_room(net: &mut Net) -> (ConnId, ConnId) {
    shared_room_with(net, "")
}

/// [`shared_room`] with both clients having negotiated `caps`.
pub fn shared_room_with(net: &mut Net, caps: &str) -> (ConnId, ConnId) {
    let alice = net.register(0, "alice", caps);
    let bob = net.register(1, "bob", caps);
    net.send(0, alice, "JOIN #chat");
    net.send(1, bob, "JOIN #chat");
    net.take(0, alice);
    net.take(1, bob);
    (alice, bob)
}
