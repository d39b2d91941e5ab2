//! One network over many nodes (issue #23, `docs/cluster.md`): the core's side.
//!
//! What it is: the replica of the rest of the network (users on other nodes, by id and by
//! nick), the events that change it and their byte form (`event.rs`, `codec.rs`), nick claims
//! (`nicks.rs`), private messages to and from other nodes (`direct.rs`), operators' and the
//! administrator's powers network-wide (`admin.rs`) and the entry points
//! the server's bus task feeds: [`Server::apply`] (a log entry), [`Server::remote`] (a node
//! message), [`Server::appended`] (an append's outcome) and [`Server::node_lost`].
//!
//! What it is not: it knows no broker. It names log keys and topics with its own small
//! [`LogKey`] and [`Topic`] and leaves [`ClusterEffect`]s; `chinwag-server` maps them onto
//! `chinwag-bus`. A single-node server never calls [`Server::enable_cluster`]: its cluster
//! field stays `None` and every hook below is one branch not taken.

mod admin;
mod changes;
mod codec;
mod direct;
mod event;
mod logins;
mod nicks;
mod replica;
mod rooms;

use std::collections::{HashMap, HashSet};

use bytes::Bytes;

use crate::ids::ConnId;
use crate::server::{Effect, Now, Server};

pub use codec::MAX_PAYLOAD;
pub(crate) use event::{NetEvent, UserFacts};
pub(crate) use nicks::ClaimStep;

/// This node: its name in the network and the incarnation it started as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterIdentity {
    /// The node's name (`--node-name`: 1–32 of `a-z 0-9 -`).
    pub node: String,
    /// Random per start: what distinguishes this run from an earlier one under the same name.
    pub incarnation: u64,
}

/// A user's network-wide id: the node and incarnation that hold its connection, and the
/// connection's number there (never reused within an incarnation).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId {
    pub node: String,
    pub incarnation: u64,
    pub conn: u64,
}

impl UserId {
    /// The value a nick claim holds: `<node>/<incarnation>/<conn>`.
    pub fn claim_value(&self) -> Bytes {
        Bytes::from(format!("{}/{}/{}", self.node, self.incarnation, self.conn))
    }

    /// A claim's holder back from [`UserId::claim_value`]; `None` if it is not one (the server
    /// then treats the holder as alive: a claim it cannot read is never taken over).
    pub fn from_claim_value(value: &[u8]) -> Option<UserId> {
        let text = std::str::from_utf8(value).ok()?;
        let mut parts = text.split('/');
        let (node, incarnation, conn) = (parts.next()?, parts.next()?, parts.next()?);
        if parts.next().is_some() || node.is_empty() {
            return None;
        }
        Some(UserId { node: node.to_owned(), incarnation: incarnation.parse().ok()?, conn: conn.parse().ok()? })
    }
}

/// A key of the network-state log, as the core names it; `chinwag_bus::LogKey` on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum LogKey {
    /// `user.<node>`: the events of one node's users, and that node's `NodeGone`.
    User(String),
    /// `net`: the network as a whole.
    Net,
    /// `room.<folded, escaped>`: one room's state (joins and parts so far).
    Room(String),
}

impl LogKey {
    /// The key as the bus spells it (`chinwag_bus::LogKey::as_str`; a node name needs no
    /// escaping), which is also what [`Server::apply`] is given back.
    pub fn name(&self) -> String {
        match self {
            LogKey::User(node) => format!("user.{node}"),
            LogKey::Net => "net".to_owned(),
            LogKey::Room(folded) => format!("room.{}", escape(folded)),
        }
    }
}

/// A room or nick as one token of a NATS name, exactly as `chinwag_bus::escape` makes it:
/// ASCII letters, digits, `-` and `_` stay, every other byte becomes `=XX`.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("={b:02X}"));
        }
    }
    out
}

/// Where a node message goes; `chinwag_bus::Topic` on the wire.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Topic {
    /// `<cluster>.node.<node>`: messages for that node's users.
    Node(String),
    /// `<cluster>.room.<room>` (folded; the bus escapes it): messages for a room's members.
    Room(String),
    /// `<cluster>.all`: every node, each subscribed from its start (not the publisher: its own
    /// publications never come back).
    Network,
}

/// What an append expects of its key's last entry (`chinwag_bus::Expect`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Expect {
    Any,
    /// The key has no entry yet.
    Empty,
    /// The key's last entry is at this sequence.
    Last(u64),
}

/// Identifies an append so its outcome finds its way back ([`Server::appended`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AppendId(pub u64);

/// Why an append failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum AppendError {
    /// The key's last entry was not the expected one; `last`: the key's last sequence, when the
    /// bus says.
    Conflict { last: Option<u64> },
    /// The bus did not answer: the entry may or may not be in the log.
    Unavailable,
}

/// What the server's bus task must do for the core. Held behind commits like every effect
/// after an [`Effect::Persist`] (a publication of a stored message leaves only once it is
/// durable).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClusterEffect {
    /// Append `event` to the log under `key` if `expect` holds, then call
    /// [`Server::appended`] with `id` and the outcome. The event is applied when it comes back
    /// through [`Server::apply`], on this node as on every other. `heard`: append only once the
    /// bus confirms this node listens to that topic (a JOIN's room, subscribed just before:
    /// a member elsewhere may speak as soon as it applies the entry, and that message must
    /// find this node listening); if it cannot within a moment, answer
    /// [`AppendError::Unavailable`] without appending.
    Append { id: AppendId, key: LogKey, expect: Expect, event: Bytes, heard: Option<Topic> },
    /// Publish `payload` to `topic` (core NATS, at most once). No answer.
    Publish { topic: Topic, payload: Bytes },
    /// Delete the claim `nick.<nick>` (folded) if it is still at `revision`. No answer: a claim
    /// that is someone else's by now is left alone.
    ReleaseNick { nick: String, revision: u64 },
    /// Start delivering `topic`'s messages to [`Server::remote`] (a room got its first member
    /// on this node, or a local JOIN of it is on its way).
    Subscribe { topic: Topic },
    /// Stop (the room's last member on this node left, and no local JOIN of it is waiting).
    Unsubscribe { topic: Topic },
    /// The log says this incarnation is gone (it was frozen past the heartbeat TTL): the core
    /// has dropped its users; the server must cut off from the bus and join again as a new
    /// incarnation, then call [`Server::enable_cluster`] with it.
    Rejoin,
}

/// A nick claim the core asks for (`Request::Claim`), answered with `Response::Claim`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimRequest {
    /// Create `nick.<nick>` (folded) holding `holder` if nobody holds it.
    Nick { nick: String, holder: Bytes },
    /// Replace the claim on `nick` by `holder` if it is still at `revision` (its holder is
    /// dead); else say who holds it now.
    TakeOver { nick: String, holder: Bytes, revision: u64 },
}

/// The answer to a [`ClaimRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClaimAnswer {
    Granted {
        revision: u64,
    },
    /// Held by `holder` at `revision`; `alive`: the holder's node incarnation
    /// ([`UserId::from_claim_value`]) has a live heartbeat (true when the value is unreadable).
    Taken {
        holder: Bytes,
        revision: u64,
        alive: bool,
    },
    /// The bus did not answer in time.
    Unavailable,
}

/// How often a node's own user event is appended again after the bus did not answer (the
/// events are idempotent, so a second copy in the log is harmless).
const APPEND_TRIES: u8 = 3;

/// An append waiting for its outcome.
#[derive(Debug)]
pub(crate) struct PendingAppend {
    key: LogKey,
    expect: Expect,
    event: Bytes,
    tries: u8,
    /// A `NodeGone` for this node and incarnation (retried after a conflict if still wanted).
    pub gone: Option<(String, u64)>,
    /// A local client's JOIN or PART of a room (folded), waiting for its entry (`rooms.rs`).
    room: Option<(ConnId, String)>,
}

/// The cluster half of the server's state; `Server::cluster` is `None` on a single node.
#[derive(Debug)]
pub(crate) struct ClusterState {
    pub me: ClusterIdentity,
    /// Users on other nodes.
    pub users: HashMap<UserId, UserFacts>,
    /// Folded nick → the user on another node who has it.
    pub nicks: HashMap<String, UserId>,
    /// Node incarnations whose `NodeGone` was applied: their late events are ignored.
    pub gone: HashSet<(String, u64)>,
    /// When each of `gone` was applied (log sequence), oldest first: forgotten
    /// [`replica::GONE_KEPT_FOR`] entries later (`replica::forget_gone`).
    pub gone_at: std::collections::VecDeque<(u64, (String, u64))>,
    /// The last log sequence applied (entries at or below it are repeats and skipped).
    pub applied: u64,
    /// Each log key's last applied sequence (for an append that expects it); a room's goes with
    /// the room (`forget_room`).
    pub key_seqs: HashMap<String, u64>,
    /// This node's connections → the nick (folded) they hold a claim on, and its revision.
    pub claims: HashMap<ConnId, (String, u64)>,
    /// Folded nick → the local connection whose claim on it is out, so that two local
    /// clients cannot both ask.
    pub reserved: HashMap<String, ConnId>,
    pub appends: HashMap<AppendId, PendingAppend>,
    next_append: u64,
    /// Remote user → the rooms (folded) it is in.
    pub user_rooms: HashMap<UserId, std::collections::BTreeSet<String>>,
    /// A local client's JOIN or PART whose entry it waits for, by (connection, folded room).
    pub room_waits: HashMap<(ConnId, String), rooms::RoomWait>,
    /// The JOIN or PART being run again, if one is.
    pub rerun: Option<rooms::Rerun>,
    /// The last `RoomWait::order` given out.
    pub wait_order: u64,
    /// Folded rooms whose topic this node listens to (`rooms::Server::sync_interest`).
    pub listening: HashSet<String>,
    /// Folded room → how many messages this node published to its topic.
    pub room_sent: HashMap<String, u64>,
    /// (origin node, incarnation, folded room) → the last publication seen from it: its
    /// sequence and msgid.
    pub room_seen: HashMap<(String, u64, String), (u64, Option<String>)>,
    /// Room messages from other nodes that never arrived (gaps in their sequences).
    pub room_missed: u64,
    /// The time and msgid the author gave the room event this node's own JOIN or PART is
    /// being applied under (`Server::restamp`).
    pub stamp: Option<(u64, String)>,
}

impl Server {
    /// Turns cluster mode on (before the first connection): from now on nicks are claimed
    /// network-wide, users are announced in the log, and the replica follows
    /// [`Server::apply`]. Called again with a new incarnation (after the node was cut off and
    /// dropped its users), the replica starts over: the users and room members of other nodes
    /// are forgotten, and the log is to be applied again from sequence 1. If the users were
    /// dropped with [`Server::close_all`], the server serves again from here (rooms emptied from
    /// now on are forgotten as usual).
    pub fn enable_cluster(&mut self, me: ClusterIdentity) {
        self.stopping = false;
        let mut emptied = Vec::new();
        for (folded, ch) in &mut self.channels {
            ch.remote.clear();
            if ch.members.is_empty() && !ch.permanent && ch.founder.is_none() {
                emptied.push(folded.clone());
            }
        }
        for folded in emptied {
            self.channels.remove(&folded);
            self.forget_room(&folded);
        }
        // Append ids go on from the last incarnation's: an answer to an old append that
        // arrives late must not be taken for a new one's.
        let next_append = self.cluster.as_ref().map_or(0, |c| c.next_append);
        self.cluster = Some(Box::new(ClusterState {
            me,
            users: HashMap::new(),
            nicks: HashMap::new(),
            gone: HashSet::new(),
            gone_at: std::collections::VecDeque::new(),
            applied: 0,
            key_seqs: HashMap::new(),
            claims: HashMap::new(),
            reserved: HashMap::new(),
            appends: HashMap::new(),
            next_append,
            user_rooms: HashMap::new(),
            room_waits: HashMap::new(),
            rerun: None,
            wait_order: 0,
            listening: HashSet::new(),
            room_sent: HashMap::new(),
            room_seen: HashMap::new(),
            room_missed: 0,
            stamp: None,
        }));
    }

    /// The log keys whose last sequence this node keeps (each node's users, the network, and
    /// the rooms someone is in or that are kept when empty); 0 on a single node.
    pub fn cluster_log_keys(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.key_seqs.len())
    }

    /// Users on other nodes that this node knows of.
    pub fn remote_user_count(&self) -> usize {
        self.cluster.as_ref().map_or(0, |c| c.users.len())
    }

    /// Room messages from other nodes that this node noticed it never received (a gap in an
    /// origin's sequence for a room: NATS dropped them, or this node was slow); each gap is
    /// read back from storage and delivered late.
    pub fn missed_room_messages(&self) -> u64 {
        self.cluster.as_ref().map_or(0, |c| c.room_missed)
    }

    /// Users on other nodes, how many of them are invisible, and on how many nodes (for
    /// LUSERS); all 0 on a single node.
    pub(crate) fn remote_counts(&self) -> (usize, usize, usize) {
        let Some(cluster) = self.cluster.as_ref() else { return (0, 0, 0) };
        let invisible = cluster.users.values().filter(|u| u.invisible).count();
        let nodes: HashSet<&str> = cluster.users.keys().map(|u| u.node.as_str()).collect();
        (cluster.users.len(), invisible, nodes.len())
    }

    /// The node incarnations that have users in the replica, sorted. After reading the log
    /// up to its end at start, the server calls [`Server::node_lost`] for each one without a
    /// live heartbeat: an incarnation that died while no node was there to say so (the whole
    /// network stopped, or this node's own previous run) leaves no users behind.
    pub fn remote_incarnations(&self) -> Vec<(String, u64)> {
        let Some(cluster) = self.cluster.as_ref() else { return Vec::new() };
        let set: std::collections::BTreeSet<(String, u64)> =
            cluster.users.keys().map(|u| (u.node.clone(), u.incarnation)).collect();
        set.into_iter().collect()
    }

    /// A log entry, in the log's order (this node's own included): `key` as the entry carries
    /// it. A payload that does not decode is logged and skipped.
    pub fn apply(&mut self, seq: u64, key: &str, payload: &[u8], now: Now) {
        self.now = now;
        let Some(cluster) = self.cluster.as_mut() else { return };
        if seq <= cluster.applied {
            return;
        }
        cluster.applied = seq;
        cluster.key_seqs.insert(key.to_owned(), seq);
        let Some(event) = NetEvent::decode(payload) else {
            tracing::warn!(seq, key, bytes = payload.len(), "ignoring a log entry that does not decode");
            return;
        };
        self.begin_none();
        self.apply_event(event);
        self.finish();
        self.retry_node_gone(key);
        self.retry_room_waits(key);
        self.forget_gone();
    }

    /// A message published to this node's topic. One that does not decode is logged and
    /// dropped.
    pub fn remote(&mut self, payload: &[u8], now: Now) {
        self.now = now;
        if self.cluster.is_none() {
            return;
        }
        let Some(message) = event::NodeMessage::decode(payload) else {
            tracing::warn!(bytes = payload.len(), "ignoring a node message that does not decode");
            return;
        };
        self.begin_none();
        match message {
            event::NodeMessage::Direct { to, msg, target, fallback } => {
                self.receive_direct(to, *msg, target, fallback);
            }
            event::NodeMessage::Undelivered { to, nick } => self.receive_undelivered(&to, &nick),
            event::NodeMessage::Invite { to, room, source, account, lets_in } => {
                self.receive_invite(to, &room, source, account, lets_in);
            }
            event::NodeMessage::Room { room, status, origin, seq, at, msg } => {
                self.receive_room(&room, &status, rooms::RoomMessage { origin, seq, at, msg: *msg });
            }
            event::NodeMessage::Kill { to, by, reason } => self.receive_kill(&to, &by, &reason),
            event::NodeMessage::Notice(notice) => self.receive_notice(*notice),
            event::NodeMessage::InviteNotify { room, origin, source, account, nick } => {
                self.receive_invite_notify(&room, origin, source, account, nick);
            }
            event::NodeMessage::QueueRead { queue } => {
                self.offline_counts.remove(&queue);
            }
            event::NodeMessage::LoginSettled { records, failed } => self.login_settled_elsewhere(&records, failed),
            event::NodeMessage::Registration { ip } => self.registration_elsewhere(&ip),
            event::NodeMessage::DeviceRemoved { account, device } => self.unbind_device(&account, &device),
        }
        self.finish();
    }

    /// The outcome of an [`ClusterEffect::Append`]: its sequence, or why it failed.
    pub fn appended(&mut self, id: AppendId, outcome: Result<u64, AppendError>, now: Now) {
        self.now = now;
        let Some(cluster) = self.cluster.as_mut() else { return };
        let Some(mut pending) = cluster.appends.remove(&id) else { return };
        if let Some((conn, folded)) = pending.room.take() {
            self.room_appended(conn, folded, outcome, pending.expect, &pending.key);
            return;
        }
        match (outcome, pending.gone.take()) {
            (Ok(_), _) => {}
            (Err(AppendError::Conflict { .. }), Some(gone)) => {
                // Someone else's entry under that node's key got in first: its own last words,
                // or another node's NodeGone. Once applied, the NodeGone is tried again if the
                // node is still not gone (`retry_node_gone`).
                if !cluster.gone.contains(&gone) {
                    let expect = expect_for(cluster, &pending.key);
                    if expect != pending.expect {
                        self.append(pending.key, expect, pending.event, Some(gone));
                    } else {
                        cluster.appends.insert(id, PendingAppend { gone: Some(gone), ..pending });
                    }
                }
            }
            (Err(error), gone) => {
                if pending.tries < APPEND_TRIES {
                    let id = self.append(pending.key, pending.expect, pending.event, gone);
                    if let Some(next) = self.cluster.as_mut().and_then(|c| c.appends.get_mut(&id)) {
                        next.tries = pending.tries + 1;
                    }
                } else {
                    tracing::warn!(?error, key = %pending.key.name(), "giving up on a log append");
                }
            }
        }
    }

    /// The server saw `node`'s incarnation stop beating: the core appends its `NodeGone`
    /// (under the node's key, expecting the last entry it applied there, so that of several
    /// nodes noticing at once one appends it).
    pub fn node_lost(&mut self, node: &str, incarnation: u64, now: Now) {
        self.now = now;
        let Some(cluster) = self.cluster.as_ref() else { return };
        let gone = (node.to_owned(), incarnation);
        if cluster.gone.contains(&gone) || (cluster.me.node == node && cluster.me.incarnation == incarnation) {
            return;
        }
        // Already on its way (the server says so again at every poll until it is applied).
        if cluster.appends.values().any(|p| p.gone.as_ref() == Some(&gone)) {
            return;
        }
        let key = LogKey::User(node.to_owned());
        let expect = expect_for(cluster, &key);
        let event = NetEvent::NodeGone { node: node.to_owned(), incarnation }.encode();
        self.append(key, expect, event, Some(gone));
    }

    /// After applying an entry under `key`: a `NodeGone` that lost a race to an entry under
    /// it is appended again, now expecting that entry.
    fn retry_node_gone(&mut self, key: &str) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let waiting: Vec<AppendId> = cluster
            .appends
            .iter()
            .filter(|(_, p)| p.key.name() == key && p.gone.as_ref().is_some_and(|g| !cluster.gone.contains(g)))
            .map(|(id, _)| *id)
            .collect();
        for id in waiting {
            let Some(cluster) = self.cluster.as_mut() else { return };
            let Some(pending) = cluster.appends.get(&id) else { continue };
            if expect_for(cluster, &pending.key) == pending.expect {
                continue;
            }
            let Some(mut pending) = cluster.appends.remove(&id) else { continue };
            let expect = expect_for(cluster, &pending.key);
            self.append(pending.key, expect, pending.event, pending.gone.take());
        }
    }

    /// Leaves an append and remembers it until its outcome.
    pub(crate) fn append(
        &mut self,
        key: LogKey,
        expect: Expect,
        event: Bytes,
        gone: Option<(String, u64)>,
    ) -> AppendId {
        self.append_heard(key, expect, event, gone, None)
    }

    /// [`Server::append`], to be made only once this node hears `heard`
    /// ([`ClusterEffect::Append`]).
    pub(crate) fn append_heard(
        &mut self,
        key: LogKey,
        expect: Expect,
        event: Bytes,
        gone: Option<(String, u64)>,
        heard: Option<Topic>,
    ) -> AppendId {
        let Some(cluster) = self.cluster.as_mut() else { return AppendId(0) };
        cluster.next_append += 1;
        let id = AppendId(cluster.next_append);
        let pending = PendingAppend { key: key.clone(), expect, event: event.clone(), tries: 1, gone, room: None };
        cluster.appends.insert(id, pending);
        self.effects.push(Effect::Cluster(ClusterEffect::Append { id, key, expect, event, heard }));
        id
    }

    /// Appends an event of one of this node's users under the node's key (the node is its only
    /// writer while alive, so nothing is expected).
    pub(crate) fn append_user_event(&mut self, event: NetEvent) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let key = LogKey::User(cluster.me.node.clone());
        self.append(key, Expect::Any, event.encode(), None);
    }

    /// A local client registered: the network hears of it.
    pub(crate) fn introduce(&mut self, conn: ConnId) {
        let (Some(uid), Some(c)) = (self.local_uid(conn), self.clients.get(&conn)) else { return };
        let facts = UserFacts {
            uid,
            nick: c.nick_or_star().to_owned(),
            user: c.user_or_star().to_owned(),
            host: c.info.host.clone(),
            realname: c.realname.clone(),
            account: c.account.clone(),
            away: c.away().map(str::to_owned),
            invisible: c.invisible,
            bot: c.bot,
            tls: c.info.tls,
            signon_ms: c.signon_ms,
            server: self.cfg.server_name.clone(),
            oper: false,
            e2e_device: None,
        };
        self.append_user_event(NetEvent::Introduce(Box::new(facts)));
    }

    /// A change to a local user the network must hear of (nothing before it registered: its
    /// Introduce carries its state then).
    pub(crate) fn user_changed(&mut self, conn: ConnId, event: impl FnOnce(UserId) -> NetEvent) {
        if self.cluster.is_none() || !self.clients.get(&conn).is_some_and(|c| c.registered) {
            return;
        }
        if let Some(uid) = self.local_uid(conn) {
            self.append_user_event(event(uid));
        }
    }

    /// This node's name and incarnation, in cluster mode.
    pub(crate) fn cluster_origin(&self) -> Option<(String, u64)> {
        self.cluster.as_ref().map(|c| (c.me.node.clone(), c.me.incarnation))
    }

    /// The network-wide id of a local connection.
    pub(crate) fn local_uid(&self, conn: ConnId) -> Option<UserId> {
        let cluster = self.cluster.as_ref()?;
        Some(UserId { node: cluster.me.node.clone(), incarnation: cluster.me.incarnation, conn: conn.0 })
    }

    /// The user on another node who has `nick`.
    pub(crate) fn remote_user(&self, nick: &str) -> Option<&UserFacts> {
        let cluster = self.cluster.as_ref()?;
        let uid = chinwag_proto::with_casefold(nick, |folded| cluster.nicks.get(folded).cloned())?;
        cluster.users.get(&uid)
    }
}

/// The log entry that says a node incarnation is dead, for a server that appends it itself
/// (rather than through [`Server::node_lost`]).
pub fn node_gone_event(node: &str, incarnation: u64) -> Bytes {
    NetEvent::NodeGone { node: node.to_owned(), incarnation }.encode()
}

/// The node and incarnation a log entry declares dead, if it is a `NodeGone`.
pub fn read_node_gone(payload: &[u8]) -> Option<(String, u64)> {
    match NetEvent::decode(payload)? {
        NetEvent::NodeGone { node, incarnation } => Some((node, incarnation)),
        _ => None,
    }
}

/// What an append under `key` expects, from what this node applied.
pub(crate) fn expect_for(cluster: &ClusterState, key: &LogKey) -> Expect {
    match cluster.key_seqs.get(&key.name()) {
        Some(seq) => Expect::Last(*seq),
        None => Expect::Empty,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Entries that decode but make no sense here (unknown users and rooms, odd modes, this
    /// node declared dead) change nothing and send nothing.
    #[test]
    fn well_formed_nonsense_from_the_log_changes_nothing() {
        let now = Now { wall_ms: 1_795_269_772_000, mono: std::time::Instant::now() };
        let mut server = Server::new(crate::Config::default(), 1, now);
        server.enable_cluster(ClusterIdentity { node: "a".into(), incarnation: 1 });
        let stranger = UserId { node: "b".into(), incarnation: 2, conn: 3 };
        let mine = UserId { node: "a".into(), incarnation: 1, conn: 99 };
        let rooms_before = server.channels.len();
        let events = [
            NetEvent::Join { room: "#nowhere".into(), uid: stranger.clone(), stamp: None },
            NetEvent::Join { room: "not a room".into(), uid: stranger.clone(), stamp: None },
            NetEvent::Join { room: "#mine".into(), uid: mine.clone(), stamp: None },
            NetEvent::Part { room: "#general".into(), uid: stranger.clone(), reason: String::new(), stamp: None },
            NetEvent::Topic {
                room: "#nowhere".into(),
                uid: stranger.clone(),
                source: "x".into(),
                text: "t".into(),
                stamp: None,
            },
            NetEvent::Kick {
                room: "#general".into(),
                uid: stranger.clone(),
                source: "x".into(),
                victims: vec![(mine.clone(), "ghost".into())],
                reason: String::new(),
                stamp: None,
            },
            NetEvent::Mode {
                room: "#general".into(),
                uid: stranger.clone(),
                source: "x".into(),
                changes: vec![
                    (true, 'o', Some("nobody".into()), None),
                    (true, 'q', None, None),
                    (true, 'b', None, None),
                ],
                stamp: None,
            },
            NetEvent::Nick { uid: stranger.clone(), nick: "x".into(), stamp: None },
            NetEvent::Away { uid: stranger.clone(), away: Some("a".into()), stamp: None },
            NetEvent::Quit { uid: stranger.clone(), reason: String::new(), stamp: None },
        ];
        for (seq, event) in events.into_iter().enumerate() {
            server.apply(seq as u64 + 1, "user.b", &event.encode(), now);
        }
        let mut effects = Vec::new();
        server.drain_effects(&mut effects);
        assert!(effects.is_empty(), "{effects:?}");
        assert_eq!(server.channels.len(), rooms_before);
        assert_eq!(server.remote_user_count(), 0);
    }

    #[test]
    fn keys_are_spelled_as_the_bus_spells_them() {
        // `docs/cluster.md`'s example of `chinwag_bus::escape`, which the core cannot call.
        assert_eq!(escape("#café.*"), "=23caf=C3=A9=2E=2A");
        assert_eq!(LogKey::Room("#a-b_c".into()).name(), "room.=23a-b_c");
        assert_eq!(LogKey::User("node-1".into()).name(), "user.node-1");
        let uid = UserId { node: "a".into(), incarnation: 7, conn: 9 };
        assert_eq!(UserId::from_claim_value(&uid.claim_value()), Some(uid));
        assert_eq!(UserId::from_claim_value(b"a/7"), None);
        assert_eq!(UserId::from_claim_value(b"a/x/9"), None);
        assert_eq!(read_node_gone(&node_gone_event("b", 5)), Some(("b".into(), 5)));
        assert_eq!(read_node_gone(b"node-gone b 5"), None);
    }
}
