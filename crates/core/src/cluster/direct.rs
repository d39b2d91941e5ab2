//! Private messages (PRIVMSG, NOTICE, TAGMSG) between users on different nodes: the sender's
//! node checks, stores and echoes as for a local recipient and publishes the message once to
//! the recipient's node topic, after the commit (the effect is held behind its `Persist`);
//! the recipient's node makes the line with the recipient's capabilities.

use std::sync::Arc;

use chinwag_proto::{casefold, eq_fold, Message, Tag};

use crate::broadcast::{Lines, Outgoing};
use crate::handlers::e2e::E2eRoute;
use crate::handlers::history::{client_tags_wire, parse_client_tags};
use crate::handlers::messaging::history_item;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::{Effect, Server};
use crate::store::dm_conversation;

use super::event::{Carried, Fallback, NodeMessage};
use super::{ClusterEffect, Topic, UserId};

impl Server {
    /// A message to `uid`, a user on another node. `base` holds the target and the text;
    /// `lines` a draft/multiline message's lines.
    pub(crate) fn message_remote(
        &mut self,
        uid: UserId,
        mut base: Message,
        tags: &[Tag],
        quiet: bool,
        tagmsg: bool,
        lines: Option<Vec<(String, bool)>>,
    ) {
        let Some(r) = self.cluster.as_ref().and_then(|c| c.users.get(&uid)) else { return };
        let (nick, account, away) = (r.nick.clone(), r.account.clone(), r.away.clone());
        // As for a local recipient: a registered nick held by someone not logged in to it is
        // not the account, and the message waits for the account.
        let owner = self.accounts.get(&casefold(&nick)).cloned();
        if let Some(owner) = owner.filter(|o| account.as_deref().is_none_or(|a| !eq_fold(a, o))) {
            if !tagmsg {
                self.message_offline(&owner, base, tags, lines);
            }
            return;
        }
        if let Some(first) = base.params.first_mut() {
            nick.clone_into(first);
        }
        let Some(mut ev) = self.message_event(base, tags, tagmsg, lines) else { return };
        let sender_account = ev.account.clone();
        let route = self.e2e_route(&ev, || account.as_deref().map(casefold).unwrap_or_default());
        if !tagmsg && (account.is_some() || sender_account.is_some()) {
            let me = self.party_of(self.cur_conn()).unwrap_or_default();
            let them = self.party_for_nick(&nick);
            let mut participants: Vec<String> =
                [sender_account, account.clone()].into_iter().flatten().map(|a| casefold(&a)).collect();
            participants.dedup();
            let queue = route.as_ref().and_then(|r| r.offline_queue());
            if self.refuse_unstorable(&ev) || queue.as_ref().is_some_and(|q| !self.reserve_offline(q, &nick)) {
                return;
            }
            self.persist(history_item(&ev, dm_conversation(&me, &them), participants, queue));
        }
        let msg = Box::new(carried(&ev));
        let fallback = self.local_uid(self.cur_conn()).map(|from| {
            // Stored (above) for the recipient's account, unless it is a TAGMSG.
            Box::new(Fallback { from, nick: nick.clone(), account: account.clone().filter(|_| !tagmsg) })
        });
        let payload = NodeMessage::Direct { to: uid.clone(), msg, target: None, fallback }.encode();
        self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic: Topic::Node(uid.node.clone()), payload }));
        if let Some(route) = &route {
            self.e2e_deliver(&mut ev, route, &[self.cur_conn()]);
            self.e2e_deliver_remote(&ev, route, Some(&uid));
        }
        self.echo(&mut ev);
        if let Some(away) = away.filter(|_| !quiet && !tagmsg) {
            self.numeric(RPL_AWAY, [nick, away]);
        }
    }

    /// A message from a user on another node to one of ours (addressed to `target` rather
    /// than to its nick: a copy for its E2E device).
    pub(crate) fn receive_direct(
        &mut self,
        to: UserId,
        msg: Carried,
        target: Option<String>,
        fallback: Option<Box<Fallback>>,
    ) {
        let Some(conn) = self.local_conn(&to) else {
            if let Some(fallback) = fallback {
                self.undelivered(&to, &msg, *fallback);
            }
            return;
        };
        let Some(client) = self.clients.get(&conn) else { return };
        let (nick, caps) = (target.unwrap_or_else(|| client.nick_or_star().to_owned()), client.caps);
        let mut ev = self.outgoing_from(msg, &nick);
        self.deliver_to(&mut ev, conn, caps, true);
    }

    /// A private message for `to`, a connection of this node's incarnation that is gone: it
    /// waits in its account's offline queue, as it would have had it arrived a moment earlier
    /// (the sender's node stored it), or, for a recipient without an account, its sender hears
    /// that the nick is gone (401), as it would have had it sent a moment later. Nothing for a
    /// NOTICE (never answered) or for another incarnation's connection (this node restarted).
    fn undelivered(&mut self, to: &UserId, msg: &Carried, fallback: Fallback) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        if (to.node.as_str(), to.incarnation) != (cluster.me.node.as_str(), cluster.me.incarnation) {
            return;
        }
        let Fallback { from, nick, account } = fallback;
        match (account, msg.msgid.clone()) {
            (Some(account), Some(msgid)) => {
                let queue = casefold(&account);
                let count = self.offline_counts.entry(queue.clone()).or_default();
                if *count >= self.cfg.limits.offline_queue_len {
                    tracing::info!(account = %queue, "a late private message found its offline queue full");
                    return;
                }
                *count += 1;
                self.effects.push(Effect::QueueOffline { account: queue, msgid });
            }
            _ if msg.command == "NOTICE" => {}
            _ => {
                let message = NodeMessage::Undelivered { to: from.clone(), nick };
                let topic = Topic::Node(from.node);
                self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic, payload: message.encode() }));
            }
        }
    }

    /// A private message this node's user sent was not delivered: `nick` disconnected.
    pub(crate) fn receive_undelivered(&mut self, to: &UserId, nick: &str) {
        let Some(conn) = self.local_conn(to) else { return };
        self.numeric_to(conn, ERR_NOSUCHNICK, [nick, "No such nick/channel"]);
    }

    /// An encrypted message to the connections of its device on other nodes but `skip` (the
    /// recipient, who had its copy), addressed as `ev` is.
    pub(crate) fn e2e_deliver_remote(&mut self, ev: &Outgoing, route: &E2eRoute, skip: Option<&UserId>) {
        let target = ev.base.params.first().cloned();
        for uid in route.remote.iter().filter(|u| Some(*u) != skip) {
            let message = NodeMessage::Direct {
                to: uid.clone(),
                msg: Box::new(carried(ev)),
                target: target.clone(),
                fallback: None,
            };
            let topic = Topic::Node(uid.node.clone());
            self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic, payload: message.encode() }));
        }
    }

    /// Users of other nodes of `account` (folded) bound to the E2E `device`.
    pub(crate) fn remote_device_holders(&self, account: &str, device: &str) -> Vec<UserId> {
        let Some(cluster) = self.cluster.as_ref() else { return Vec::new() };
        let mut holders: Vec<UserId> = cluster
            .users
            .values()
            .filter(|u| u.e2e_device.as_deref() == Some(device))
            .filter(|u| u.account.as_deref().is_some_and(|a| casefold(a) == account))
            .map(|u| u.uid.clone())
            .collect();
        holders.sort();
        holders
    }

    /// The event a carried message makes on this node, to `target` (a nick or a room).
    pub(crate) fn outgoing_from(&mut self, msg: Carried, target: &str) -> Outgoing {
        let base = Message::new(msg.command.as_str()).with_param(target);
        let base = if msg.command == "TAGMSG" { base } else { base.with_param(msg.text) };
        let mut ev = Outgoing::from_source(Some(Arc::from(msg.source)), base, msg.time_ms, msg.msgid, msg.account);
        ev.bot = msg.bot;
        ev.client_tags = parse_client_tags(&msg.tags);
        ev.needs_message_tags = msg.tagmsg;
        if !msg.lines.is_empty() {
            ev.multiline = Some(Box::new(Lines::new(msg.lines, self.next_batch_id())));
        }
        ev
    }

    /// INVITE of a user on another node, checked as for a local one; the invitation goes to
    /// its node as a node message (only that node's JOIN check needs it).
    pub(crate) fn invite_remote(&mut self, uid: UserId, raw: &str) {
        let conn = self.cur_conn();
        let Some(u) = self.cluster.as_ref().and_then(|c| c.users.get(&uid)).cloned() else { return };
        let Some(ch) = self.channels.get(&casefold(raw)) else {
            self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
            return;
        };
        let name = ch.name.as_str().to_owned();
        if !ch.members.contains_key(&conn) {
            self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            return;
        }
        let lets_in = ch.is_op(conn);
        if ch.modes.invite_only && !lets_in {
            self.numeric(ERR_CHANOPRIVSNEEDED, [name.as_str(), "You're not channel operator"]);
            return;
        }
        if ch.remote.contains_key(&uid) {
            self.numeric(ERR_USERONCHANNEL, [u.nick.as_str(), name.as_str(), "is already on channel"]);
            return;
        }
        let Some(client) = self.cur_client() else { return };
        let (source, account) = (client.prefix().to_owned(), client.account.clone());
        let invite = NodeMessage::Invite { to: uid.clone(), room: name.clone(), source, account, lets_in };
        let topic = Topic::Node(uid.node.clone());
        self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic, payload: invite.encode() }));
        // invite-notify, here and on the room's other nodes.
        let folded = casefold(raw);
        let watchers = self.invite_watchers(&folded, conn);
        if !watchers.is_empty() {
            let base = Message::new("INVITE").with_params([u.nick.as_str(), name.as_str()]);
            if let Some(mut ev) = self.cur_event(base) {
                self.deliver_all(&mut ev, watchers);
            }
        }
        self.publish_invite_notify(&folded, &name, &u.nick);
        self.numeric(RPL_INVITING, [u.nick.as_str(), name.as_str()]);
        if let Some(away) = u.away {
            self.numeric(RPL_AWAY, [u.nick, away]);
        }
    }

    /// An INVITE from another node to one of ours.
    pub(crate) fn receive_invite(
        &mut self,
        to: UserId,
        room: &str,
        source: String,
        account: Option<String>,
        lets_in: bool,
    ) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        if to.node != cluster.me.node || to.incarnation != cluster.me.incarnation {
            return;
        }
        let conn = ConnId(to.conn);
        let Some(nick) = self.clients.get(&conn).filter(|c| c.registered).map(|c| c.nick_or_star().to_owned()) else {
            return;
        };
        let clients = &self.clients;
        let Some(ch) = self.channels.get_mut(&casefold(room)) else { return };
        if lets_in {
            ch.invited.retain(|c| clients.contains_key(c));
            ch.invited.insert(conn);
        }
        let base = Message::new("INVITE").with_params([nick, ch.name.as_str().to_owned()]);
        let msgid = self.msgids.next(self.now.wall_ms);
        let mut ev = Outgoing::from_source(Some(Arc::from(source)), base, self.now.wall_ms, Some(msgid), account);
        self.deliver(&mut ev, conn);
    }
}

/// What crosses to another node of a message this node made.
pub(crate) fn carried(ev: &Outgoing) -> Carried {
    Carried {
        command: ev.base.command.clone(),
        source: ev.source.as_deref().unwrap_or_default().to_owned(),
        account: ev.account.clone(),
        bot: ev.bot,
        time_ms: ev.time_ms,
        msgid: ev.msgid.clone(),
        text: ev.base.params.get(1).cloned().unwrap_or_default(),
        tags: client_tags_wire(&ev.client_tags),
        tagmsg: ev.needs_message_tags,
        lines: ev.multiline.as_ref().map(|m| m.parts.clone()).unwrap_or_default(),
    }
}
