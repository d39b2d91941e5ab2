//! Operators' and the administrator's powers across nodes (`docs/cluster.md`, "Admin
//! network-wide"):
//!
//! - KILL (an IRC operator's, or `chinwag admin kill`) of a user on another node is a node
//!   message to that node, which disconnects it as a local KILL would; its QUIT then reaches
//!   the network like any other.
//! - Server bans (KLINE, `chinwag admin ban`) and their lifting are events under `net`: every
//!   node applies them in the log's order, disconnects the connections a new ban matches and
//!   saves its bans as it does today. The node that set one applies it at once too (the
//!   administrator is told how many it disconnected there), and again harmlessly when it
//!   comes back.
//! - Broadcasts (`chinwag admin broadcast`, `NOTICE $*`, WALLOPS) are node messages to every
//!   node the replica knows users on (operators, for WALLOPS), not log events: a log entry
//!   would be read again by every node that starts later, and a notice is for who is online
//!   now.
//! - The console's room changes (`chinwag admin mode`, `op`, `topic`…) go through the room's
//!   log like a member's MODE and TOPIC, so every node agrees on them.
//! - invite-notify: an INVITE's notice to the room's operators is published on the room's
//!   topic, so operators on every node with members there hear of it.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;

use chinwag_proto::{casefold, Message};

use crate::broadcast::Outgoing;
use crate::caps::Cap;
use crate::handlers::moderation::{render_changes, ModeChange};
use crate::handlers::oper::{kill_reason, UserView, MAX_REASON_LEN};
use crate::ids::ConnId;
use crate::server::{Effect, Server, ADMIN};

use super::event::{NodeMessage, Notice};
use super::{ClusterEffect, Expect, LogKey, NetEvent, Topic, UserId};

impl Server {
    /// Appends a change of the network as a whole (cluster mode only; nothing on one node).
    pub(crate) fn append_net_event(&mut self, event: NetEvent) {
        if self.cluster.is_some() {
            self.append(LogKey::Net, Expect::Any, event.encode(), None);
        }
    }

    /// KILL of `nick`, a user on another node: its node is asked to disconnect it. False if no
    /// user of another node has that nick (or on a single node).
    pub(crate) fn kill_remote(&mut self, nick: &str, reason: &str, by: &str) -> bool {
        let Some(uid) = self.remote_user(nick).map(|u| u.uid.clone()) else { return false };
        tracing::info!(target: "audit", %by, %nick, node = %uid.node, %reason, "KILL");
        let payload = NodeMessage::Kill { to: uid.clone(), by: by.to_owned(), reason: reason.to_owned() }.encode();
        self.publish_to_node(uid.node, payload);
        true
    }

    /// Another node's KILL of one of this node's users.
    pub(crate) fn receive_kill(&mut self, to: &UserId, by: &str, reason: &str) {
        let Some(conn) = self.local_conn(to) else { return };
        let nick = self.clients.get(&conn).map(|c| c.nick_or_star().to_owned()).unwrap_or_default();
        let reason = crate::text::truncate(reason, MAX_REASON_LEN);
        tracing::info!(target: "audit", %by, %nick, %reason, "KILL from another node");
        self.close(conn, &kill_reason(by, reason));
    }

    /// The registered local connection a user id names, if it is this node's (this
    /// incarnation's) and still here.
    pub(crate) fn local_conn(&self, uid: &UserId) -> Option<ConnId> {
        let cluster = self.cluster.as_ref()?;
        if uid.node != cluster.me.node || uid.incarnation != cluster.me.incarnation {
            tracing::debug!(node = %uid.node, "a node message for another node or incarnation");
            return None;
        }
        let conn = ConnId(uid.conn);
        self.clients.get(&conn).filter(|c| c.registered).map(|_| conn)
    }

    fn publish_to_node(&mut self, node: String, payload: bytes::Bytes) {
        self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic: Topic::Node(node), payload }));
    }

    /// The other nodes this node knows users on (only those with IRC operators, if `opers`).
    fn nodes_with_users(&self, opers: bool) -> BTreeSet<String> {
        let Some(cluster) = self.cluster.as_ref() else { return BTreeSet::new() };
        cluster.users.values().filter(|u| !opers || u.oper).map(|u| u.uid.node.clone()).collect()
    }

    /// An account removed one of its E2E devices here: every other node unbinds its
    /// connections bound to it, as this node did, so a removed (lost, stolen) device gets no
    /// more messages wherever it is connected.
    pub(crate) fn share_device_removal(&mut self, account: &str, device: &str) {
        if self.cluster.is_some() {
            let payload =
                NodeMessage::DeviceRemoved { account: account.to_owned(), device: device.to_owned() }.encode();
            self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic: Topic::Network, payload }));
        }
    }

    /// An offline queue was read to its end here: every other node forgets what it counted in
    /// it, or a node whose users wrote to an account that reads elsewhere would count up to the
    /// queue's limit and refuse every later message for good.
    pub(crate) fn publish_queue_read(&mut self, queue: &str) {
        if self.cluster.is_some() {
            let payload = NodeMessage::QueueRead { queue: queue.to_owned() }.encode();
            self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic: Topic::Network, payload }));
        }
    }

    /// After an operator's `NOTICE $*` or WALLOPS went to this node's users: the same line to
    /// every other node's (operators, if `opers`).
    pub(crate) fn publish_notice(&mut self, ev: &Outgoing, opers: bool) {
        let (target, text) = match ev.base.params.as_slice() {
            [text] => (String::new(), text.clone()),
            [target, text, ..] => (target.clone(), text.clone()),
            [] => return,
        };
        let notice = Notice {
            command: ev.base.command.clone(),
            source: ev.source.as_deref().map(str::to_owned),
            account: ev.account.clone(),
            target,
            text,
            opers,
            time_ms: ev.time_ms,
            msgid: ev.msgid.clone(),
        };
        let payload = NodeMessage::Notice(Box::new(notice)).encode();
        for node in self.nodes_with_users(opers) {
            self.publish_to_node(node, payload.clone());
        }
    }

    /// The administrator's broadcast to every other node's users; how many users they have.
    pub(crate) fn publish_announce(&mut self, text: &str) -> usize {
        let Some(cluster) = self.cluster.as_ref() else { return 0 };
        let users = cluster.users.len();
        let notice = Notice {
            command: "NOTICE".into(),
            source: None,
            account: None,
            target: String::new(),
            text: text.to_owned(),
            opers: false,
            time_ms: self.now.wall_ms,
            msgid: None,
        };
        let payload = NodeMessage::Notice(Box::new(notice)).encode();
        for node in self.nodes_with_users(false) {
            self.publish_to_node(node, payload.clone());
        }
        users
    }

    /// A broadcast from another node, to this node's users (or operators).
    pub(crate) fn receive_notice(&mut self, notice: Notice) {
        let text = crate::text::truncate(&notice.text, MAX_REASON_LEN).to_owned();
        let Some(source) = notice.source else {
            self.announce_here(&text);
            return;
        };
        let mut base = Message::new(notice.command.as_str());
        if !notice.target.is_empty() {
            base = base.with_param(notice.target);
        }
        let to: Vec<ConnId> = if notice.opers {
            self.local_opers()
        } else {
            self.clients.values().filter(|c| c.registered).map(|c| c.id).collect()
        };
        let base = base.with_param(text);
        let mut ev = Outgoing::from_source(Some(Arc::from(source)), base, notice.time_ms, notice.msgid, notice.account);
        self.deliver_all(&mut ev, to);
    }

    /// Users of other nodes as the console lists them (what the replica knows: no idle time,
    /// and the host read as the address).
    pub(crate) fn remote_user_views(&self) -> Vec<UserView> {
        let Some(cluster) = self.cluster.as_ref() else { return Vec::new() };
        cluster
            .users
            .values()
            .map(|u| UserView {
                nick: u.nick.clone(),
                user: u.user.clone(),
                host: u.host.clone(),
                ip: u.host.parse().unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                account: u.account.clone(),
                tls: u.tls,
                transport: if u.tls { "tls" } else { "plaintext" },
                registered: true,
                idle_secs: 0,
                signon_ms: u.signon_ms,
                channels: cluster.user_rooms.get(&u.uid).map_or(0, |r| r.len()),
                oper: u.oper.then(|| "*".to_owned()),
                node: Some(u.uid.node.clone()),
            })
            .collect()
    }

    /// The administrator's TOPIC in cluster mode: to the room's log, set on every node when it
    /// comes back (from the server's name, whatever the room's +t). False on a single node.
    ///
    /// Nothing is expected of the room's last entry: the change depends on no state of the
    /// room, so no compare-and-set is needed to order it against other nodes' changes.
    pub(crate) fn admin_topic_to_log(&mut self, folded: &str, shown: &str, text: &str) -> bool {
        let Some(uid) = self.local_uid(ADMIN) else { return false };
        let source = self.cfg.server_name.clone();
        let stamp = self.new_stamp(1);
        let event = NetEvent::Topic { room: shown.to_owned(), uid, source, text: text.to_owned(), stamp };
        self.append(LogKey::Room(folded.to_owned()), Expect::Any, event.encode(), None);
        true
    }

    /// The administrator's MODE in cluster mode: tried on a copy of the room (errors go to the
    /// administrator), and what would take effect goes to the room's log (nothing expected,
    /// as for [`Server::admin_topic_to_log`]: every node checks each change again against the
    /// room as the log has made it there, the same everywhere). The mode words, as for one
    /// node.
    pub(crate) fn admin_mode_to_log(&mut self, folded: &str, name: &str, changes: Vec<ModeChange>) -> Vec<String> {
        let Some(uid) = self.local_uid(ADMIN) else { return Vec::new() };
        let applied = self.try_modes(folded, changes);
        if applied.is_empty() {
            return Vec::new();
        }
        let words = render_changes(&applied);
        let source = self.cfg.server_name.clone();
        let changes = self.mode_items(applied);
        let event = NetEvent::Mode { room: name.to_owned(), uid, source, changes, stamp: self.new_stamp(1) };
        self.append(LogKey::Room(folded.to_owned()), Expect::Any, event.encode(), None);
        words
    }

    /// The room's operators on this node who asked for invite-notify, but `except`.
    pub(crate) fn invite_watchers(&self, folded: &str, except: ConnId) -> Vec<ConnId> {
        let Some(ch) = self.channels.get(folded) else { return Vec::new() };
        ch.members
            .iter()
            .filter(|(m, modes)| modes.op && **m != except && self.caps_of(**m).has(Cap::InviteNotify))
            .map(|(m, _)| *m)
            .collect()
    }

    /// After the current client invited `nick` to `room`: the room's operators on the other
    /// nodes hear of it (cluster mode only).
    pub(crate) fn publish_invite_notify(&mut self, folded: &str, room: &str, nick: &str) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let origin = (cluster.me.node.clone(), cluster.me.incarnation);
        let Some(client) = self.cur_client() else { return };
        let (source, account) = (client.prefix().to_owned(), client.account.clone());
        let message =
            NodeMessage::InviteNotify { room: room.to_owned(), origin, source, account, nick: nick.to_owned() };
        let topic = Topic::Room(folded.to_owned());
        self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic, payload: message.encode() }));
    }

    /// Another node's INVITE to a room this node has members in: its operators here with
    /// invite-notify are told.
    pub(crate) fn receive_invite_notify(
        &mut self,
        room: &str,
        origin: (String, u64),
        source: String,
        account: Option<String>,
        nick: String,
    ) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        if origin.0 == cluster.me.node && origin.1 == cluster.me.incarnation {
            return;
        }
        let folded = casefold(room);
        let Some(name) = self.channels.get(&folded).map(|ch| ch.name.as_str().to_owned()) else { return };
        let watchers = self.invite_watchers(&folded, ConnId(u64::MAX));
        if watchers.is_empty() {
            return;
        }
        let msgid = self.msgids.next(self.now.wall_ms);
        let base = Message::new("INVITE").with_params([nick, name]);
        let mut ev = Outgoing::from_source(Some(Arc::from(source)), base, self.now.wall_ms, Some(msgid), account);
        self.deliver_all(&mut ev, watchers);
    }
}
