//! Applying the log to the replica: users on other nodes come (Introduce), change (Nick,
//! Away, Account) and go (Quit, NodeGone), and this node's clients hear of it as they would of
//! a local user: MONITOR, extended-monitor's AWAY and ACCOUNT, WHOWAS.

use std::sync::Arc;

use chinwag_proto::{casefold, Message};

use crate::broadcast::Outgoing;
use crate::caps::Cap;
use crate::ids::ConnId;
use crate::server::{Effect, Server, WhowasEntry};

use super::event::Stamp;
use super::{ClusterEffect, NetEvent, UserFacts, UserId};

/// The QUIT reason of a user whose node died.
pub(crate) const NODE_LOST: &str = "Node lost";

/// What every user of a node the network declared gone while it was alive is told (`ERROR`):
/// the same advice as a node cut off from the bus gives.
pub(crate) const DECLARED_GONE: &str = "Lost the network; reconnect (another node will take you)";

fn prefix_of(u: &UserFacts) -> String {
    format!("{}!{}@{}", u.nick, u.user, u.host)
}

impl Server {
    /// One decoded log entry. The node's own users' events change nothing here: their node
    /// applied the change when it made it.
    pub(crate) fn apply_event(&mut self, event: NetEvent) {
        let Some(cluster) = self.cluster.as_ref() else { return };
        let me = (cluster.me.node.clone(), cluster.me.incarnation);
        // Room changes are applied here for this node's users too: their JOIN or PART waited
        // for this entry (`rooms.rs`).
        let room_author = match &event {
            NetEvent::Join { uid, .. }
            | NetEvent::Part { uid, .. }
            | NetEvent::Topic { uid, .. }
            | NetEvent::Kick { uid, .. }
            | NetEvent::Mode { uid, .. } => Some((uid.node.clone(), uid.incarnation)),
            _ => None,
        };
        if let Some(origin) = room_author {
            // A dead incarnation's late entries are ignored, as its users' are.
            if cluster.gone.contains(&origin) {
                return;
            }
            let own = origin == me;
            match event {
                NetEvent::Join { room, uid, stamp } => self.apply_join(&room, uid, own, stamp.as_ref()),
                NetEvent::Part { room, uid, reason, stamp } => {
                    self.apply_part(&room, uid, &reason, own, stamp.as_ref());
                }
                NetEvent::Topic { room, uid, source, text, stamp } => {
                    self.apply_topic(&room, uid, source, text, own, stamp.as_ref());
                }
                NetEvent::Kick { room, uid, source, victims, reason, stamp } => {
                    self.apply_kick(&room, uid, (source, reason), victims, own, stamp.as_ref());
                }
                NetEvent::Mode { room, uid, source, changes, stamp } => {
                    self.apply_mode(&room, uid, source, changes, own, stamp.as_ref());
                }
                _ => {}
            }
            return;
        }
        let uid = match &event {
            NetEvent::Introduce(u) => Some(&u.uid),
            NetEvent::Nick { uid, .. }
            | NetEvent::Away { uid, .. }
            | NetEvent::Account { uid, .. }
            | NetEvent::Quit { uid, .. }
            | NetEvent::Realname { uid, .. }
            | NetEvent::UserModes { uid, .. }
            | NetEvent::Device { uid, .. }
            | NetEvent::Oper { uid } => Some(uid),
            _ => None,
        };
        if let Some(uid) = uid {
            let origin = (uid.node.clone(), uid.incarnation);
            if origin == me || cluster.gone.contains(&origin) {
                return;
            }
        }
        match event {
            NetEvent::Introduce(u) => self.remote_introduce(*u),
            NetEvent::Nick { uid, nick, stamp } => self.remote_nick(&uid, nick, stamp.as_ref()),
            NetEvent::Away { uid, away, stamp } => {
                self.remote_presence(
                    &uid,
                    Cap::AwayNotify,
                    stamp.as_ref(),
                    |u| u.away = away.clone(),
                    |_| Message::new("AWAY").with_params(away.clone()),
                );
            }
            NetEvent::Account { uid, account, stamp } => {
                let param = account.clone().unwrap_or_else(|| "*".into());
                self.remote_presence(
                    &uid,
                    Cap::AccountNotify,
                    stamp.as_ref(),
                    |u| u.account = account.clone(),
                    |_| Message::new("ACCOUNT").with_param(param.clone()),
                );
            }
            NetEvent::Quit { uid, reason, stamp } => self.remote_quit(&uid, &reason, stamp.as_ref()),
            NetEvent::Realname { uid, realname, stamp } => {
                self.remote_presence(
                    &uid,
                    Cap::Setname,
                    stamp.as_ref(),
                    |u| u.realname = realname.clone(),
                    |_| Message::new("SETNAME").with_param(realname.clone()),
                );
            }
            NetEvent::Oper { uid } => {
                if let Some(u) = self.cluster.as_mut().and_then(|c| c.users.get_mut(&uid)) {
                    u.oper = true;
                }
            }
            NetEvent::UserModes { uid, invisible, bot } => {
                if let Some(u) = self.cluster.as_mut().and_then(|c| c.users.get_mut(&uid)) {
                    (u.invisible, u.bot) = (invisible, bot);
                }
            }
            NetEvent::NodeGone { node, incarnation } => self.remote_node_gone(node, incarnation, me),
            NetEvent::Device { uid, device } => {
                if let Some(u) = self.cluster.as_mut().and_then(|c| c.users.get_mut(&uid)) {
                    u.e2e_device = device;
                }
            }
            NetEvent::Kline(kline) => self.apply_kline(*kline),
            NetEvent::AccountRegistered { account } => self.account_registered_elsewhere(account),
            NetEvent::AccountDropped { account, origin, rooms } => self.account_dropped(&account, origin == me, &rooms),
            NetEvent::Unkline { mask, .. } => self.apply_unkline(&mask),
            _ => {}
        }
    }

    fn remote_introduce(&mut self, u: UserFacts) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let folded = casefold(&u.nick);
        if let Some(old) = cluster.users.remove(&u.uid) {
            cluster.nicks.remove(&casefold(&old.nick));
        }
        if self.nicks.contains_key(&folded) {
            // The claims make this impossible; if it happens anyway, the local user keeps it.
            tracing::warn!(nick = %u.nick, node = %u.uid.node, "a remote user was introduced with a local user's nick");
        }
        let (nick, prefix) = (u.nick.clone(), prefix_of(&u));
        cluster.nicks.insert(folded.clone(), u.uid.clone());
        cluster.users.insert(u.uid.clone(), u);
        self.notify_monitors(&folded, &nick, Some(&prefix));
    }

    fn remote_nick(&mut self, uid: &UserId, nick: String, stamp: Option<&Stamp>) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let Some(u) = cluster.users.get_mut(uid) else { return };
        let (old, old_folded, new_folded) = (u.nick.clone(), casefold(&u.nick), casefold(&nick));
        let entry = whowas_of(u, self.now.wall_ms);
        u.nick = nick.clone();
        let prefix = prefix_of(u);
        if cluster.nicks.get(&old_folded) == Some(uid) {
            cluster.nicks.remove(&old_folded);
        }
        cluster.nicks.insert(new_folded.clone(), uid.clone());
        self.push_whowas(Some(entry));
        let peers = self.remote_peers(uid);
        if !peers.is_empty() {
            let source = Arc::<str>::from(format!("{old}!{}", prefix.split_once('!').map_or("", |(_, rest)| rest)));
            let (time, msgid) = self.stamp_line(stamp, 0);
            let base = Message::new("NICK").with_param(nick.as_str());
            let account = self.cluster.as_ref().and_then(|c| c.users.get(uid)).and_then(|u| u.account.clone());
            let mut ev = Outgoing::from_source(Some(source), base, time, Some(msgid), account);
            self.deliver_all(&mut ev, peers);
        }
        if old_folded != new_folded {
            self.notify_monitors(&old_folded, &old, None);
            self.notify_monitors(&new_folded, &nick, Some(&prefix));
        }
    }

    /// Changes a remote user with `change` and tells the local MONITOR watchers that have
    /// extended-monitor and `cap` (there are no shared rooms yet).
    fn remote_presence(
        &mut self,
        uid: &UserId,
        cap: Cap,
        stamp: Option<&Stamp>,
        change: impl FnOnce(&mut UserFacts),
        line: impl FnOnce(&UserFacts) -> Message,
    ) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let Some(u) = cluster.users.get_mut(uid) else { return };
        change(u);
        let base = line(u);
        let (folded, prefix, account) = (casefold(&u.nick), prefix_of(u), u.account.clone());
        let mut to = self.remote_peers(uid);
        if let Some(watchers) = self.monitors.get(&folded) {
            to.extend(watchers.iter().copied().filter(|w| self.caps_of(*w).has(Cap::ExtendedMonitor)));
        }
        let to: Vec<ConnId> = to.into_iter().filter(|w| self.caps_of(*w).has(cap)).collect();
        if to.is_empty() {
            return;
        }
        let (time, msgid) = self.stamp_line(stamp, 0);
        let mut ev = Outgoing::from_source(Some(Arc::from(prefix)), base, time, Some(msgid), account);
        self.deliver_all(&mut ev, to);
    }

    fn remote_quit(&mut self, uid: &UserId, reason: &str, stamp: Option<&Stamp>) {
        let Some(u) = self.cluster.as_ref().and_then(|c| c.users.get(uid)).cloned() else { return };
        self.remote_leaves_rooms(&u, reason, stamp);
        let Some(cluster) = self.cluster.as_mut() else { return };
        cluster.users.remove(uid);
        let folded = casefold(&u.nick);
        if cluster.nicks.get(&folded) == Some(uid) {
            cluster.nicks.remove(&folded);
        }
        self.push_whowas(Some(whowas_of(&u, self.now.wall_ms)));
        self.notify_monitors(&folded, &u.nick, None);
    }

    fn remote_node_gone(&mut self, node: String, incarnation: u64, me: (String, u64)) {
        if (node.clone(), incarnation) == me {
            return self.declared_gone();
        }
        let Some(cluster) = self.cluster.as_mut() else { return };
        let gone = (node.clone(), incarnation);
        if !cluster.gone.insert(gone.clone()) {
            return;
        }
        cluster.gone_at.push_back((cluster.applied, gone.clone()));
        // This node's own attempts to say so are moot now.
        cluster.appends.retain(|_, p| p.gone.as_ref() != Some(&gone));
        // What it committed after the last of its room messages this node saw may never have
        // been published: read back from storage.
        let mut fills = Vec::new();
        cluster.room_seen.retain(|(n, i, room), (_, msgid)| {
            let dead = (n, *i) == (&gone.0, gone.1);
            if let Some(msgid) = msgid.as_ref().filter(|_| dead) {
                fills.push((room.clone(), msgid.clone()));
            }
            !dead
        });
        for (room, after) in fills {
            self.fill_after(&room, after);
        }
        let Some(cluster) = self.cluster.as_mut() else { return };
        let mut lost: Vec<UserId> =
            cluster.users.keys().filter(|u| u.node == node && u.incarnation == incarnation).cloned().collect();
        lost.sort();
        tracing::info!(%node, incarnation, users = lost.len(), "node gone: its users quit ({NODE_LOST})");
        for uid in lost {
            self.remote_quit(&uid, NODE_LOST, None);
        }
    }
}

impl Server {
    /// This node's own `NodeGone`: it was frozen past the heartbeat TTL and the others have
    /// quit its users, freed their nicks and ignore its entries from now on, so nothing its
    /// users ask of the log would ever be answered. It cuts itself off at once, as a node that
    /// lost NATS does: every user gets `ERROR` ([`DECLARED_GONE`]) and is closed, and the
    /// server is asked to join again as a new incarnation ([`ClusterEffect::Rejoin`]).
    fn declared_gone(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        let me = (cluster.me.node.clone(), cluster.me.incarnation);
        if !cluster.gone.insert(me.clone()) {
            return;
        }
        tracing::error!(node = %me.0, incarnation = me.1, "the network declared this node gone: dropping every user, joining again");
        // As `close_all`: rooms emptied now stay until `enable_cluster` starts over.
        self.stopping = true;
        let mut conns: Vec<ConnId> = self.clients.keys().copied().collect();
        conns.sort();
        for conn in conns {
            self.close(conn, DECLARED_GONE);
        }
        self.effects.push(Effect::Cluster(ClusterEffect::Rejoin));
    }
}

/// How many log entries after its `NodeGone` a dead incarnation is remembered. Past that, the
/// set of dead incarnations would only grow with the network's life. Forgetting is safe: a late
/// entry of a dead incarnation changes nothing unless it is an `Introduce` (every other user
/// event needs its user in the replica, a room change its author), and a user introduced by an
/// incarnation with no heartbeat is declared gone again by the first poll that misses it (the
/// server's `dead_incarnations`). The bound is in log entries, not time, so that every node
/// forgets at the same point of the log and their replicas stay equal.
pub(crate) const GONE_KEPT_FOR: u64 = 100_000;

impl Server {
    /// Forgets the dead incarnations declared more than [`GONE_KEPT_FOR`] entries ago.
    pub(super) fn forget_gone(&mut self) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        while let Some((at, _)) = cluster.gone_at.front() {
            if at + GONE_KEPT_FOR > cluster.applied {
                break;
            }
            if let Some((_, gone)) = cluster.gone_at.pop_front() {
                cluster.gone.remove(&gone);
            }
        }
    }
}

fn whowas_of(u: &UserFacts, now_ms: u64) -> WhowasEntry {
    WhowasEntry {
        nick: u.nick.clone(),
        folded: casefold(&u.nick),
        user: u.user.clone(),
        host: u.host.clone(),
        realname: u.realname.clone(),
        left_ms: now_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::ClusterIdentity;
    use crate::server::Now;

    /// A dead incarnation is remembered for [`GONE_KEPT_FOR`] log entries, then forgotten, so
    /// that the set does not grow with the network's life; a late `Introduce` of a forgotten
    /// one shows in `remote_incarnations`, which the server checks against the heartbeats.
    #[test]
    fn a_dead_incarnation_is_forgotten_long_after_its_node_gone() {
        let now = Now { wall_ms: 1_795_269_772_000, mono: std::time::Instant::now() };
        let mut server = Server::new(crate::Config::default(), 1, now);
        server.enable_cluster(ClusterIdentity { node: "a".into(), incarnation: 1 });
        let uid = UserId { node: "b".into(), incarnation: 2, conn: 3 };
        let introduce = NetEvent::Introduce(Box::new(UserFacts {
            uid: uid.clone(),
            nick: "zed".into(),
            user: "~zed".into(),
            host: "h".into(),
            realname: "Zed".into(),
            account: None,
            away: None,
            invisible: false,
            bot: false,
            tls: false,
            signon_ms: 1,
            oper: false,
            e2e_device: None,
            server: "b.example.org".into(),
        }))
        .encode();
        let gone = NetEvent::NodeGone { node: "b".into(), incarnation: 2 }.encode();
        let away = NetEvent::Away { uid: uid.clone(), away: None, stamp: None }.encode();
        server.apply(1, "user.b", &introduce, now);
        server.apply(2, "user.c", &gone, now);
        assert_eq!(server.remote_user_count(), 0);
        server.apply(3, "user.b", &introduce, now);
        assert_eq!(server.remote_user_count(), 0, "a dead incarnation's late entry is ignored");
        server.apply(1 + GONE_KEPT_FOR, "user.b", &away, now);
        assert_eq!(server.cluster.as_ref().map(|c| c.gone.len()), Some(1), "kept until then");
        server.apply(2 + GONE_KEPT_FOR, "user.b", &away, now);
        let cluster = server.cluster.as_ref().expect("cluster");
        assert!(cluster.gone.is_empty() && cluster.gone_at.is_empty(), "forgotten");
        server.apply(3 + GONE_KEPT_FOR, "user.b", &introduce, now);
        assert_eq!(server.remote_incarnations(), [("b".to_owned(), 2)], "for the server to declare it gone again");
    }
}
