//! Rooms across nodes (step 4 of `docs/cluster.md`, in part): JOIN and PART go through the
//! log under the room's key, appended expecting the room's last entry this node applied, and
//! take effect only when their entry comes back, on every node in the same order (so every
//! node agrees on who is in a room and who made it, hence who got op). Members on other nodes
//! live in `Channel::remote`. A room message is published once to the room's topic after its
//! commit, and each node with members there delivers it to its own.

use std::collections::BTreeSet;

use chinwag_proto::{casefold, ChannelName, Message};

use crate::broadcast::Outgoing;
use crate::caps::Cap;
use crate::channel::{Channel, Member};
use crate::ids::ConnId;
use crate::server::{Effect, Server};

use crate::store::{Bound, HistoryQuery};

use super::direct::carried;
use super::event::{Carried, NodeMessage, Stamp};
use super::{expect_for, ClusterEffect, Expect, LogKey, NetEvent, Topic, UserFacts, UserId};

/// How many times a JOIN or PART is appended again after another node's change to the room got
/// in first, before the client gets `FAIL … TEMPORARILY_UNAVAILABLE`. A lost race means another
/// node's change went in, so the room is moving; only a room that other nodes change faster
/// than this node can ever get a turn runs out of tries (with three nodes racing fairly, the
/// odds of losing this many rounds in a row are about 10^-11).
const ROOM_TRIES: u8 = 64;

/// How long a JOIN or PART that lost a race waits for the entry it lost to before the client
/// gets `FAIL … TEMPORARILY_UNAVAILABLE` (that entry is normally applied within milliseconds; one
/// that never comes, say an append lost in a NATS leader change, must not hold the client).
const LOST_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

/// Room messages kept at most for a local JOIN on its way (`RoomWait::kept`), and their text's
/// bytes at most; the rest of a burst that long is in the room's history. One message is kept
/// once however many JOINs wait for its room (they share it).
const KEPT: usize = 64;
const KEPT_BYTES: usize = 256 * 1024;

/// What a local client asked of a room, kept until its entry is applied.
#[derive(Debug)]
pub(crate) enum RoomOp {
    Join {
        raw: String,
        key: Option<String>,
    },
    Part {
        reason: String,
    },
    /// TOPIC, KICK or MODE of one room: run again as this line.
    Again(Message),
}

/// A local client's JOIN or PART waiting for its log entry.
///
/// A node has at most one append per room out at a time: every append of a room expects the
/// room's last entry, so two from one node would race each other and all but one lose. The
/// others queue here, in arrival order, and go out one at a time as entries are applied.
#[derive(Debug)]
pub(crate) struct RoomWait {
    label: Option<String>,
    op: RoomOp,
    /// Appends of it so far (queueing behind this node's own append is not a try).
    tries: u8,
    state: WaitState,
    /// Arrival order among the node's waits (the queue's order).
    order: u64,
    /// When its append conflicted (while [`WaitState::Lost`]).
    lost_at: Option<std::time::Instant>,
    /// For a JOIN: room messages from other nodes that arrived while it waits (at most
    /// [`KEPT`]), for the joiner once its entry is applied (`Server::apply_join`).
    kept: Vec<Kept>,
}

/// A room message kept for a local JOIN on its way.
#[derive(Debug)]
pub(crate) struct Kept {
    status: String,
    /// The last entry of the room its origin had applied when it sent it (`None` from a node
    /// that does not say).
    at: Option<u64>,
    msg: std::sync::Arc<Carried>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum WaitState {
    /// Its append is out.
    Sent,
    /// Its append conflicted: it goes again once the entry it lost to is applied.
    Lost,
    /// Behind this node's own append for the room.
    Queued,
}

/// A wait being run again: the tries it has used, its place in the queue and what it kept.
#[derive(Debug)]
pub(crate) struct Rerun {
    tries: u8,
    order: u64,
    kept: Vec<Kept>,
}

impl RoomWait {
    pub(super) fn label(&self) -> Option<String> {
        self.label.clone()
    }
}

impl RoomOp {
    fn command(&self) -> &str {
        match self {
            RoomOp::Join { .. } => "JOIN",
            RoomOp::Part { .. } => "PART",
            RoomOp::Again(msg) => &msg.command,
        }
    }
}

fn prefix_of(u: &UserFacts) -> String {
    format!("{}!{}@{}", u.nick, u.user, u.host)
}

/// Whether this node has a JOIN or PART of the room out or waiting for a turn.
fn room_busy(cluster: &super::ClusterState, folded: &str) -> bool {
    cluster.room_waits.iter().any(|((_, f), w)| f == folded && w.state != WaitState::Queued)
}

impl Server {
    /// Cluster mode: the current client's JOIN of `name`, checked against the replica, goes to
    /// the log; `false` on a single node. A second JOIN of a room whose first is still out is
    /// ignored.
    pub(crate) fn cluster_join(&mut self, name: &ChannelName, raw: &str, key: Option<&str>) -> bool {
        if self.cluster.is_none() {
            return false;
        }
        let conn = self.cur_conn();
        let Some(uid) = self.local_uid(conn) else { return false };
        let event = NetEvent::Join { room: name.as_str().to_owned(), uid, stamp: self.new_stamp(1) };
        let op = RoomOp::Join { raw: raw.to_owned(), key: key.map(str::to_owned) };
        self.room_append(conn, name.folded(), event, op);
        true
    }

    /// Cluster mode: the current client's PART goes to the log; `false` on a single node.
    pub(crate) fn cluster_part(&mut self, folded: &str, reason: &str) -> bool {
        let Some(cluster) = self.cluster.as_ref() else { return false };
        let conn = self.cur_conn();
        let Some(display) = self.channels.get(folded).map(|ch| ch.name.as_str().to_owned()) else { return true };
        let uid = UserId { node: cluster.me.node.clone(), incarnation: cluster.me.incarnation, conn: conn.0 };
        let event = NetEvent::Part { room: display, uid, reason: reason.to_owned(), stamp: self.new_stamp(1) };
        self.room_append(conn, folded, event, RoomOp::Part { reason: reason.to_owned() });
        true
    }

    pub(super) fn room_append(&mut self, conn: ConnId, folded: &str, event: NetEvent, op: RoomOp) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let wait_key = (conn, folded.to_owned());
        if cluster.room_waits.contains_key(&wait_key) {
            return;
        }
        let (tries, order, kept) = match cluster.rerun.take() {
            Some(rerun) => (rerun.tries, rerun.order, rerun.kept),
            None => {
                cluster.wait_order += 1;
                (0, cluster.wait_order, Vec::new())
            }
        };
        let busy = room_busy(cluster, folded);
        let state = if busy { WaitState::Queued } else { WaitState::Sent };
        let key = LogKey::Room(folded.to_owned());
        let expect = expect_for(cluster, &key);
        let label = self.take_label();
        let tries = if busy { tries } else { tries + 1 };
        let joining = matches!(op, RoomOp::Join { .. });
        let wait = RoomWait { label, op, tries, state, order, lost_at: None, kept };
        let Some(cluster) = self.cluster.as_mut() else { return };
        cluster.room_waits.insert(wait_key, wait);
        if let Some(client) = self.clients.get_mut(&conn) {
            client.waiting = client.waiting.saturating_add(1);
        }
        // Listening before the entry exists: whoever speaks once they applied it is heard.
        self.sync_interest(folded);
        if busy {
            return;
        }
        let heard = joining.then(|| Topic::Room(folded.to_owned()));
        let id = self.append_heard(key, expect, event.encode(), None, heard);
        if let Some(pending) = self.cluster.as_mut().and_then(|c| c.appends.get_mut(&id)) {
            pending.room = Some((conn, folded.to_owned()));
        }
    }

    /// The outcome of a JOIN's or PART's append.
    pub(crate) fn room_appended(
        &mut self,
        conn: ConnId,
        folded: String,
        outcome: Result<u64, super::AppendError>,
        expect: Expect,
        key: &LogKey,
    ) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let wait_key = (conn, folded);
        match outcome {
            // Applied when it comes back through the log; the queue moves on then.
            Ok(_) => {}
            Err(super::AppendError::Conflict { last }) => {
                // The log holds an entry under the key that this node has not applied yet,
                // unless the replica moved on since the append left; or the key's entries are
                // all applied here and the room was forgotten since (nobody was in it any more,
                // on any node, `forget_room`): its state here is what its last entry left, so
                // the append goes again expecting that entry.
                let name = key.name();
                if let Some(last) = last.filter(|l| *l <= cluster.applied && !cluster.key_seqs.contains_key(&name)) {
                    cluster.key_seqs.insert(name, last);
                }
                let moved = expect_for(cluster, key) != expect;
                if let Some(wait) = cluster.room_waits.get_mut(&wait_key) {
                    wait.state = WaitState::Lost;
                    wait.lost_at = Some(self.now.mono);
                }
                if moved {
                    self.advance_room(&wait_key.1, true);
                }
            }
            Err(super::AppendError::Unavailable) => self.give_up_wait(wait_key),
        }
    }

    /// A wait that cannot go on: its client is told to try again, and the room's queue moves.
    fn give_up_wait(&mut self, wait_key: (ConnId, String)) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let (conn, folded) = wait_key;
        if let Some(wait) = cluster.room_waits.remove(&(conn, folded.clone())) {
            let display = self.channels.get(&folded).map_or(folded.clone(), |c| c.name.as_str().to_owned());
            self.begin(conn, wait.label);
            let text = "The network cannot take this right now; try again in a moment";
            self.fail(wait.op.command(), "TEMPORARILY_UNAVAILABLE", &[&display], text);
            self.finish();
            self.resume(conn);
            self.sync_interest(&folded);
        }
        self.advance_room(&folded, false);
    }

    /// From the tick: JOINs and PARTs that lost a race and waited [`LOST_WAIT`] for the entry
    /// they lost to are given up.
    pub(crate) fn expire_lost_room_waits(&mut self) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let now = self.now.mono;
        let expired: Vec<(ConnId, String)> = cluster
            .room_waits
            .iter()
            .filter(|(_, w)| {
                w.state == WaitState::Lost && w.lost_at.is_some_and(|at| now.duration_since(at) >= LOST_WAIT)
            })
            .map(|(key, _)| key.clone())
            .collect();
        for wait_key in expired {
            tracing::warn!(room = %wait_key.1, "a room change waited too long for the entry it lost to");
            self.give_up_wait(wait_key);
        }
    }

    /// After applying an entry under `key`: the room's queue moves on.
    pub(crate) fn retry_room_waits(&mut self, key: &str) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let room =
            cluster.room_waits.keys().map(|(_, folded)| folded).find(|f| LogKey::Room((*f).clone()).name() == key);
        let Some(folded) = room.cloned() else { return };
        self.advance_room(&folded, true);
    }

    /// Sends the room's next waiting JOIN or PART, if none of this node's is out: the oldest,
    /// run again against the room as it is now. One that ends without an append (the room
    /// refused it, or it had nothing left to do) lets the next go. `applied`: an entry of the
    /// room was applied since a lost race (else a lost one still waits for the entry it lost
    /// to, and the queue with it).
    fn advance_room(&mut self, folded: &str, applied: bool) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        // Each round takes one wait off; none is put back without an append out.
        for _ in 0..=cluster.room_waits.len() {
            let Some(cluster) = self.cluster.as_ref() else { return };
            let mut next: Option<(&(ConnId, String), &RoomWait)> = None;
            for (wait_key, wait) in cluster.room_waits.iter().filter(|((_, f), _)| f == folded) {
                match wait.state {
                    WaitState::Sent => return,
                    WaitState::Lost if !applied => return,
                    WaitState::Lost | WaitState::Queued => {}
                }
                if next.is_none_or(|(_, n)| wait.order < n.order) {
                    next = Some((wait_key, wait));
                }
            }
            let Some((wait_key, _)) = next else { return };
            let wait_key = wait_key.clone();
            self.rerun_room_op(wait_key);
        }
    }

    fn rerun_room_op(&mut self, wait_key: (ConnId, String)) {
        let Some(wait) = self.cluster.as_mut().and_then(|c| c.room_waits.remove(&wait_key)) else { return };
        let (conn, folded) = wait_key;
        self.begin(conn, wait.label);
        if wait.tries >= ROOM_TRIES {
            let display = self.channels.get(&folded).map_or(folded.clone(), |c| c.name.as_str().to_owned());
            let text = "The room is changing too fast; try again in a moment";
            self.fail(wait.op.command(), "TEMPORARILY_UNAVAILABLE", &[&display], text);
        } else {
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.rerun = Some(Rerun { tries: wait.tries, order: wait.order, kept: wait.kept });
            }
            match wait.op {
                RoomOp::Join { raw, key } => self.join_one(&raw, key.as_deref()),
                RoomOp::Part { reason } => {
                    if self.cur_client().is_some_and(|c| c.channels.contains(&folded)) {
                        self.part_one(&folded, &reason);
                    }
                }
                RoomOp::Again(msg) => match msg.command.as_str() {
                    "TOPIC" => self.handle_topic(&msg),
                    "KICK" => self.handle_kick(&msg),
                    _ => self.handle_mode(&msg),
                },
            }
            if let Some(cluster) = self.cluster.as_mut() {
                cluster.rerun = None;
            }
        }
        self.finish();
        self.resume(conn);
        // A JOIN refused this time (or that ran out of tries) stops the listening it started.
        self.sync_interest(&folded);
    }

    /// `conn`'s wait for a room, taken if it waits for this kind of change: an entry of another
    /// kind (an older one of its own, whose append was answered "unavailable" yet reached the
    /// log) leaves it to wait for its own.
    pub(super) fn take_wait(&mut self, conn: ConnId, folded: &str, kind: fn(&RoomOp) -> bool) -> Option<RoomWait> {
        let cluster = self.cluster.as_mut()?;
        let key = (conn, folded.to_owned());
        if !cluster.room_waits.get(&key).is_some_and(|w| kind(&w.op)) {
            return None;
        }
        cluster.room_waits.remove(&key)
    }

    /// A JOIN entry, in the log's order.
    pub(crate) fn apply_join(&mut self, room: &str, uid: UserId, own: bool, stamp: Option<&Stamp>) {
        let Ok(name) = ChannelName::parse(room, self.cfg.limits.channel_len) else { return };
        if own {
            let conn = ConnId(uid.conn);
            let wait = self.take_wait(conn, name.folded(), |op| matches!(op, RoomOp::Join { .. }));
            self.begin(conn, wait.as_ref().and_then(|w| w.label.clone()));
            let fresh = self.clients.get(&conn).is_some_and(|c| c.registered && !c.channels.contains(name.folded()));
            if fresh {
                self.with_stamp(stamp, |server| server.join_now(conn, &name, None));
                if let Some(wait) = &wait {
                    self.hand_kept(conn, name.folded(), &wait.kept);
                }
            }
            self.finish();
            if wait.is_some() {
                self.resume(conn);
            }
            self.sync_interest(name.folded());
            return;
        }
        let Some(u) = self.cluster.as_ref().and_then(|c| c.users.get(&uid)).cloned() else { return };
        let folded = name.folded().to_owned();
        let created = !self.channels.contains_key(&folded);
        let account = u.account.as_deref().map(casefold);
        if created {
            let founder = account.clone().filter(|a| self.may_found(a));
            self.remember_room(crate::confusable::skeleton(&folded), &folded);
            let mut ch = Channel::new(name.clone(), self.now.wall_ms, false);
            ch.founder = founder;
            self.channels.insert(folded.clone(), ch);
        }
        let Some(ch) = self.channels.get_mut(&folded) else { return };
        let op = created || (ch.founder.is_some() && ch.founder == account);
        ch.remote.insert(uid.clone(), Member { op, voice: false, caps: Default::default() });
        let display = ch.name.as_str().to_owned();
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.user_rooms.entry(uid).or_default().insert(folded);
        }
        let source = std::sync::Arc::<str>::from(prefix_of(&u));
        let (time, msgid) = self.stamp_line(stamp, 0);
        let mut plain = Outgoing::from_source(
            Some(source.clone()),
            Message::new("JOIN").with_param(display.as_str()),
            time,
            Some(msgid.clone()),
            u.account.clone(),
        );
        let extended_base = Message::new("JOIN").with_params([
            display.as_str(),
            u.account.as_deref().unwrap_or("*"),
            u.realname.as_str(),
        ]);
        let mut extended =
            Outgoing::from_source(Some(source.clone()), extended_base, time, Some(msgid), u.account.clone());
        let mut away = u.away.as_ref().map(|text| {
            let msgid = self.msgids.next(self.now.wall_ms);
            let base = Message::new("AWAY").with_param(text.as_str());
            Outgoing::from_source(Some(source.clone()), base, time, Some(msgid), u.account.clone())
        });
        for m in members {
            let caps = self.caps_of(m);
            if caps.has(Cap::ExtendedJoin) {
                self.deliver(&mut extended, m);
            } else {
                self.deliver(&mut plain, m);
            }
            if let Some(ev) = away.as_mut().filter(|_| caps.has(Cap::AwayNotify)) {
                self.deliver(ev, m);
            }
        }
    }

    /// A PART entry, in the log's order.
    pub(crate) fn apply_part(&mut self, room: &str, uid: UserId, reason: &str, own: bool, stamp: Option<&Stamp>) {
        let folded = casefold(room);
        if own {
            let conn = ConnId(uid.conn);
            let wait = self.take_wait(conn, &folded, |op| matches!(op, RoomOp::Part { .. }));
            self.begin(conn, wait.as_ref().and_then(|w| w.label.clone()));
            if self.clients.get(&conn).is_some_and(|c| c.channels.contains(&folded)) {
                self.with_stamp(stamp, |server| server.part_now(&folded, reason));
            }
            self.finish();
            if wait.is_some() {
                self.resume(conn);
            }
            return;
        }
        let Some(u) = self.cluster.as_ref().and_then(|c| c.users.get(&uid)).cloned() else { return };
        let Some(ch) = self.channels.get_mut(&folded) else { return };
        if ch.remote.remove(&uid).is_none() {
            return;
        }
        let mut base = Message::new("PART").with_param(ch.name.as_str());
        if !reason.is_empty() {
            base = base.with_param(reason);
        }
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        if let Some(rooms) = self.cluster.as_mut().and_then(|c| c.user_rooms.get_mut(&uid)) {
            rooms.remove(&folded);
        }
        let (time, msgid) = self.stamp_line(stamp, 0);
        let source = std::sync::Arc::<str>::from(prefix_of(&u));
        let mut ev = Outgoing::from_source(Some(source), base, time, Some(msgid), u.account.clone());
        self.deliver_all(&mut ev, members);
        self.drop_if_empty(&folded);
    }

    /// A remote user left the network: it leaves its rooms, whose local members see `QUIT`
    /// once each.
    pub(crate) fn remote_leaves_rooms(&mut self, u: &UserFacts, reason: &str, stamp: Option<&Stamp>) {
        let Some(rooms) = self.cluster.as_mut().and_then(|c| c.user_rooms.remove(&u.uid)) else { return };
        let mut peers = BTreeSet::new();
        for folded in &rooms {
            if let Some(ch) = self.channels.get_mut(folded) {
                ch.remote.remove(&u.uid);
                peers.extend(ch.members.keys().copied());
            }
        }
        if !peers.is_empty() {
            let (time, msgid) = self.stamp_line(stamp, 0);
            let source = std::sync::Arc::<str>::from(prefix_of(u));
            let base = Message::new("QUIT").with_param(reason);
            let mut ev = Outgoing::from_source(Some(source), base, time, Some(msgid), u.account.clone());
            self.deliver_all(&mut ev, peers);
        }
        for folded in rooms {
            self.drop_if_empty(&folded);
        }
    }

    /// The local members of the rooms a remote user is in, each once.
    pub(crate) fn remote_peers(&self, uid: &UserId) -> BTreeSet<ConnId> {
        let mut peers = BTreeSet::new();
        let Some(rooms) = self.cluster.as_ref().and_then(|c| c.user_rooms.get(uid)) else { return peers };
        for folded in rooms {
            if let Some(ch) = self.channels.get(folded) {
                peers.extend(ch.members.keys().copied());
            }
        }
        peers
    }

    /// Forgets a room nobody is in any more, here or elsewhere (unless it is kept when empty).
    pub(super) fn drop_if_empty(&mut self, folded: &str) {
        let empty = self
            .channels
            .get(folded)
            .is_some_and(|ch| ch.members.is_empty() && ch.remote.is_empty() && !ch.permanent && ch.founder.is_none());
        if empty {
            self.channels.remove(folded);
            self.forget_room(folded);
        }
    }

    /// Makes the node listen to a room's topic exactly while it has members here or a local
    /// JOIN of it waits (subscribed before the JOIN's entry goes to the log, so that whoever
    /// speaks once they applied it is heard here). Called wherever either may have changed.
    pub(crate) fn sync_interest(&mut self, folded: &str) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let members = self.channels.get(folded).is_some_and(|ch| !ch.members.is_empty());
        let joining =
            || cluster.room_waits.iter().any(|((_, f), w)| f == folded && matches!(w.op, RoomOp::Join { .. }));
        let wanted = members || joining();
        if wanted == cluster.listening.contains(folded) {
            return;
        }
        let Some(cluster) = self.cluster.as_mut() else { return };
        let topic = Topic::Room(folded.to_owned());
        let effect = if wanted {
            cluster.listening.insert(folded.to_owned());
            ClusterEffect::Subscribe { topic }
        } else {
            cluster.listening.remove(folded);
            // What was seen of the room's messages means nothing once the node stops listening.
            cluster.room_seen.retain(|(_, _, room), _| room != folded);
            ClusterEffect::Unsubscribe { topic }
        };
        self.effects.push(Effect::Cluster(effect));
    }

    /// What a JOIN on its way kept for `conn`: the messages sent once their origin had applied
    /// the JOIN (the entry being applied now), as the room now lets the joiner see them.
    fn hand_kept(&mut self, conn: ConnId, folded: &str, kept: &[Kept]) {
        let Some(joined_at) = self.cluster.as_ref().map(|c| c.applied) else { return };
        let Some(ch) = self.channels.get(folded) else { return };
        let Some(me) = ch.members.get(&conn).copied() else { return };
        let display = ch.name.as_str().to_owned();
        for k in kept.iter().filter(|k| k.at.is_none_or(|at| at >= joined_at)) {
            if !status_reaches(&k.status, &me) {
                continue;
            }
            let target = format!("{}{display}", k.status);
            let mut ev = self.outgoing_from(Carried::clone(&k.msg), &target);
            self.deliver(&mut ev, conn);
        }
    }

    /// After a room message was delivered here: once to the room's topic. Always, not only
    /// while this replica knows members elsewhere: a member who just joined on another node is
    /// subscribed before this node has applied its JOIN. `status` a STATUSMSG prefix or empty.
    pub(crate) fn publish_to_room(&mut self, folded: &str, status: &str, ev: &Outgoing) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let origin = (cluster.me.node.clone(), cluster.me.incarnation);
        let Some(cluster) = self.cluster.as_mut() else { return };
        let sent = cluster.room_sent.entry(folded.to_owned()).or_default();
        *sent += 1;
        let seq = *sent;
        let at = cluster.key_seqs.get(&LogKey::Room(folded.to_owned()).name()).copied();
        let msg = Box::new(carried(ev));
        let (room, status) = (folded.to_owned(), status.to_owned());
        let payload = NodeMessage::Room { room, status, origin, seq, at, msg }.encode();
        let topic = Topic::Room(folded.to_owned());
        self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic, payload }));
    }

    /// A room message from another node: to this node's members (with the status it names).
    pub(crate) fn receive_room(&mut self, folded: &str, status: &str, room_msg: RoomMessage) {
        let RoomMessage { origin, seq, at, msg } = room_msg;
        let Some(cluster) = self.cluster.as_mut() else { return };
        if origin.0 == cluster.me.node && origin.1 == cluster.me.incarnation {
            return;
        }
        let mut joining: Vec<&mut RoomWait> = cluster
            .room_waits
            .iter_mut()
            .filter(|((_, f), w)| f == folded && matches!(w.op, RoomOp::Join { .. }))
            .map(|(_, w)| w)
            .collect();
        // A message that was on its way when the last member here left (NATS, or the bridge's
        // queue, still had it) is no one's, unless a JOIN here waits for its entry: remembering
        // its sequence would make the next member's first message look like a gap, and replay
        // what was said while nobody here was in the room.
        if joining.is_empty() && self.channels.get(folded).is_none_or(|ch| ch.members.is_empty()) {
            return;
        }
        let fresh = cluster.room_seen.get(&(origin.0.clone(), origin.1, folded.to_owned())).is_none_or(|l| seq > l.0);
        if fresh {
            let size = kept_size(&msg);
            let room_for = |w: &RoomWait| {
                w.kept.len() < KEPT && w.kept.iter().map(|k| kept_size(&k.msg)).sum::<usize>() + size <= KEPT_BYTES
            };
            let shared = std::sync::Arc::new(msg.clone());
            for wait in joining.iter_mut().filter(|w| room_for(w)) {
                wait.kept.push(Kept { status: status.to_owned(), at, msg: std::sync::Arc::clone(&shared) });
            }
        }
        let last = cluster.room_seen.entry((origin.0.clone(), origin.1, folded.to_owned())).or_insert((0, None));
        if seq <= last.0 {
            tracing::debug!(node = %origin.0, room = folded, seq, "a room message seen before");
            return;
        }
        let mut gap = None;
        if last.0 > 0 && seq > last.0 + 1 {
            let missed = seq - last.0 - 1;
            tracing::warn!(node = %origin.0, room = folded, missed, "room messages from another node were lost");
            cluster.room_missed += missed;
            gap = last.1.clone().zip(msg.msgid.clone());
        }
        *last = (seq, msg.msgid.clone());
        if let Some((after, before)) = gap {
            self.fill_gap(folded, after, before);
        }
        let Some(ch) = self.channels.get(folded) else { return };
        let members: Vec<ConnId> =
            ch.members.iter().filter(|(_, m)| status_reaches(status, m)).map(|(c, _)| *c).collect();
        if members.is_empty() {
            return;
        }
        let target = format!("{status}{}", ch.name.as_str());
        let mut ev = self.outgoing_from(msg, &target);
        self.deliver_all(&mut ev, members);
    }

    /// Reads a room's messages between two of an origin's from storage (`Pending::GapFill`):
    /// those of that origin (its node number ends their msgids) are the ones that never came.
    fn fill_gap(&mut self, folded: &str, after: String, before: String) {
        let origin = msgid_node(&before);
        let query = HistoryQuery::Between(Bound::MsgId(after), Bound::MsgId(before.clone()));
        self.request_fill(folded, origin, query);
    }

    /// Reads back a dead origin's room messages after the last one this node had from it
    /// (`after`): those it committed and never published.
    pub(crate) fn fill_after(&mut self, folded: &str, after: String) {
        let origin = msgid_node(&after);
        self.request_fill(folded, origin, HistoryQuery::After(Bound::MsgId(after.clone())));
    }

    fn request_fill(&mut self, folded: &str, origin: Option<String>, query: HistoryQuery) {
        let Some(origin) = origin else { return };
        let limit = crate::handlers::history::MAX_HISTORY;
        let request = crate::store::Request::History { conversation: folded.to_owned(), query, limit, events: false };
        self.request(request, crate::pending::Pending::GapFill { room: folded.to_owned(), origin });
    }

    /// Storage answered a gap fill: the origin's messages in it go to this node's members, late.
    pub(crate) fn gap_filled(&mut self, folded: &str, origin: &str, response: crate::store::Response) {
        let items = match response {
            crate::store::Response::Messages(Ok(items)) => items,
            other => {
                tracing::warn!(room = folded, ?other, "reading lost room messages back failed");
                return;
            }
        };
        let Some(ch) = self.channels.get(folded) else { return };
        let display = ch.name.as_str().to_owned();
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        for item in items.into_iter().filter(|i| !i.is_event() && i.msgid.ends_with(origin)) {
            let lines: Vec<(String, bool)> = if item.text.contains('\n') {
                item.text.split('\n').map(|l| (l.to_owned(), false)).collect()
            } else {
                Vec::new()
            };
            let msg = Carried {
                command: item.command,
                source: item.sender,
                account: item.sender_account,
                bot: false,
                time_ms: item.time_ms,
                msgid: Some(item.msgid),
                text: item.text,
                tags: item.tags,
                tagmsg: false,
                lines,
            };
            let mut ev = self.outgoing_from(msg, &display);
            self.deliver_all(&mut ev, members.iter().copied());
        }
    }

    /// Whether the account (folded) may found one more room (`limits.rooms_per_account`).
    pub(crate) fn may_found(&self, account: &str) -> bool {
        let founded = self.channels.values().filter(|c| c.founder.as_deref() == Some(account)).count();
        founded < self.cfg.limits.rooms_per_account
    }

    /// The remote members of a room, with what the replica knows of each.
    pub(crate) fn remote_members(&self, folded: &str) -> Vec<(UserFacts, Member)> {
        let (Some(cluster), Some(ch)) = (self.cluster.as_ref(), self.channels.get(folded)) else { return Vec::new() };
        ch.remote.iter().filter_map(|(uid, m)| Some((cluster.users.get(uid)?.clone(), *m))).collect()
    }

    /// Rooms (display names with the member's prefixes) a remote user is in that `me` may see.
    pub(crate) fn remote_user_rooms(&self, uid: &UserId, me: ConnId, multi: bool) -> Vec<String> {
        let Some(rooms) = self.cluster.as_ref().and_then(|c| c.user_rooms.get(uid)) else { return Vec::new() };
        rooms
            .iter()
            .filter_map(|folded| self.channels.get(folded))
            .filter(|ch| !ch.modes.secret || ch.members.contains_key(&me))
            .map(|ch| {
                format!("{}{}", ch.remote.get(uid).copied().unwrap_or_default().prefixes(multi), ch.name.as_str())
            })
            .collect()
    }
}

/// What a kept room message holds, in bytes (roughly: its text, lines and tags).
fn kept_size(msg: &Carried) -> usize {
    msg.text.len() + msg.tags.len() + msg.lines.iter().map(|(line, _)| line.len()).sum::<usize>()
}

/// Whether a room message sent with a STATUSMSG prefix (`@`, `+` or none) reaches `member`.
fn status_reaches(status: &str, member: &Member) -> bool {
    match status {
        "" => true,
        "+" => member.op || member.voice,
        _ => member.op,
    }
}

/// A room message from another node, as [`NodeMessage::Room`] carries it.
pub(crate) struct RoomMessage {
    /// The sending node and incarnation.
    pub origin: (String, u64),
    /// The origin's count of its publications to the room.
    pub seq: u64,
    /// The last entry of the room the origin had applied when it sent it.
    pub at: Option<u64>,
    pub msg: Carried,
}

/// The node number a msgid ends with (its last four characters, `MsgIdGen`).
fn msgid_node(msgid: &str) -> Option<String> {
    msgid.get(msgid.len().checked_sub(4)?..).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::Now;

    /// What a node counts of its publications to a room goes with the room, so a node that
    /// lives long does not keep one count for every room it ever spoke in.
    #[test]
    fn a_rooms_publication_count_goes_with_the_room() {
        let now = Now { wall_ms: 1_795_269_772_000, mono: std::time::Instant::now() };
        let mut server = Server::new(crate::Config::default(), 1, now);
        server.enable_cluster(super::super::ClusterIdentity { node: "a".into(), incarnation: 1 });
        let before = server.channels.len();
        let mut rooms = Vec::new();
        for n in 0..50 {
            let name = ChannelName::parse(&format!("#room{n}"), 50).expect("a room name");
            let folded = name.folded().to_owned();
            server.channels.insert(folded.clone(), Channel::new(name, now.wall_ms, false));
            let ev = Outgoing::from_source(None, Message::new("PRIVMSG").with_params(["x", "y"]), 0, None, None);
            server.publish_to_room(&folded, "", &ev);
            rooms.push(folded);
        }
        let sent = |s: &Server| s.cluster.as_ref().map_or(0, |c| c.room_sent.len());
        assert_eq!(sent(&server), 50);
        for folded in &rooms {
            server.drop_if_empty(folded);
        }
        assert_eq!(server.channels.len(), before);
        assert_eq!(sent(&server), 0);
    }
}
