//! TOPIC, KICK and MODE of a room in cluster mode: checked against the replica where the
//! command arrives, appended under the room's key as what they change, and applied — the
//! author's own copy included — when the entry comes back, on every node in the log's order.
//! A MODE is tried on a copy of the room first, so its author gets the usual errors and the
//! event carries only the changes that take effect.

use std::sync::Arc;

use chinwag_proto::{casefold, Message};

use crate::broadcast::Outgoing;
use crate::channel::{Ban, Topic};
use crate::handlers::moderation::{render_changes, ModeChange};
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::fit_trailing;

use super::event::{ModeItem, Stamp};
use super::rooms::RoomOp;
use super::{NetEvent, UserId};

impl Server {
    /// TOPIC `text` on the room, by the current client (checked). `false` on a single node.
    pub(crate) fn cluster_topic(&mut self, folded: &str, display: &str, source: String, text: String) -> bool {
        let conn = self.cur_conn();
        let Some(uid) = self.local_uid(conn) else { return false };
        let again = Message::new("TOPIC").with_params([display, text.as_str()]);
        let event = NetEvent::Topic { room: display.to_owned(), uid, source, text, stamp: self.new_stamp(1) };
        self.room_append(conn, folded, event, RoomOp::Again(again));
        true
    }

    /// KICK of `targets` from the room by the current client, an operator there (checked):
    /// each target that is a member goes into one entry.
    pub(crate) fn cluster_kick(&mut self, folded: &str, name: &str, targets: &[String], reason: &str) {
        let conn = self.cur_conn();
        let Some(uid) = self.local_uid(conn) else { return };
        let mut victims: Vec<(UserId, String)> = Vec::new();
        for target in targets {
            let local = self.find_user(target);
            let found = match local {
                Some(victim) => {
                    self.local_uid(victim).zip(self.clients.get(&victim).map(|c| c.nick_or_star().to_owned()))
                }
                None => self.remote_user(target).map(|u| (u.uid.clone(), u.nick.clone())),
            };
            let Some((victim, shown)) = found else {
                self.numeric(ERR_NOSUCHNICK, [target.as_str(), "No such nick/channel"]);
                continue;
            };
            let member = self.channels.get(folded).is_some_and(|ch| match local {
                Some(c) => ch.members.contains_key(&c),
                None => ch.remote.contains_key(&victim),
            });
            if !member {
                self.numeric(ERR_USERNOTINCHANNEL, [shown.as_str(), name, "They aren't on that channel"]);
                continue;
            }
            if !victims.iter().any(|(v, _)| *v == victim) {
                victims.push((victim, shown));
            }
        }
        if victims.is_empty() {
            return;
        }
        let source = self.cur_client().map(|c| c.prefix().to_owned()).unwrap_or_default();
        let nicks: Vec<&str> = victims.iter().map(|(_, shown)| shown.as_str()).collect();
        let again = Message::new("KICK").with_params([name, nicks.join(",").as_str(), reason]);
        let stamp = self.new_stamp(victims.len());
        let event = NetEvent::Kick { room: name.to_owned(), uid, source, victims, reason: reason.to_owned(), stamp };
        self.room_append(conn, folded, event, RoomOp::Again(again));
    }

    /// MODE changes by an operator of the room: tried on a copy (errors go to the author),
    /// and what would take effect goes to the log.
    pub(crate) fn cluster_mode(&mut self, folded: &str, name: &str, changes: Vec<ModeChange>, msg: &Message) {
        let conn = self.cur_conn();
        let Some(uid) = self.local_uid(conn) else { return };
        let applied = self.try_modes(folded, changes);
        if applied.is_empty() {
            return;
        }
        let source = self.cur_client().map(|c| c.prefix().to_owned()).unwrap_or_default();
        let changes = self.mode_items(applied);
        let mut again = Message::new("MODE").with_params(msg.params.iter().cloned());
        if let Some(first) = again.params.first_mut() {
            name.clone_into(first);
        }
        let event = NetEvent::Mode { room: name.to_owned(), uid, source, changes, stamp: self.new_stamp(1) };
        self.room_append(conn, folded, event, RoomOp::Again(again));
    }

    /// Mode changes as a `Mode` event carries them: `+o`/`+v` with the member's id, as this
    /// node knows the nick now.
    pub(crate) fn mode_items(&self, changes: Vec<ModeChange>) -> Vec<ModeItem> {
        changes
            .into_iter()
            .map(|c| {
                let member = match (c.letter, c.param.as_deref()) {
                    ('o' | 'v', Some(nick)) => self.uid_of_nick(nick),
                    _ => None,
                };
                (c.add, c.letter, c.param, member)
            })
            .collect()
    }

    /// The network-wide id of whoever has `nick` on this node's view, local or remote.
    fn uid_of_nick(&self, nick: &str) -> Option<UserId> {
        match self.find_user(nick) {
            Some(conn) => self.local_uid(conn),
            None => self.remote_user(nick).map(|u| u.uid.clone()),
        }
    }

    /// The changes that would take effect on the room as it is, tried on a copy that is then
    /// put back (errors go to the current command's author).
    pub(crate) fn try_modes(&mut self, folded: &str, changes: Vec<ModeChange>) -> Vec<ModeChange> {
        let Some(saved) = self.channels.get(folded).cloned() else { return Vec::new() };
        let applied = changes.into_iter().filter_map(|change| self.apply_channel_mode(folded, change)).collect();
        self.channels.insert(folded.to_owned(), saved);
        applied
    }

    /// Runs `apply` as the answer to the author's command if `own` (its label, its held
    /// input), else as a change from elsewhere.
    fn as_author(&mut self, uid: &UserId, folded: &str, own: bool, apply: impl FnOnce(&mut Self)) {
        if !own {
            apply(self);
            return;
        }
        let conn = ConnId(uid.conn);
        let wait = self.take_wait(conn, folded, |op| matches!(op, super::rooms::RoomOp::Again(_)));
        self.begin(conn, wait.as_ref().and_then(|w| w.label()));
        apply(self);
        self.finish();
        if wait.is_some() {
            self.resume(conn);
        }
    }

    /// The account of a user, local or remote, for account-tag.
    fn account_of_uid(&self, uid: &UserId, own: bool) -> Option<String> {
        if own {
            return self.clients.get(&ConnId(uid.conn)).and_then(|c| c.account.clone());
        }
        self.cluster.as_ref()?.users.get(uid)?.account.clone()
    }

    /// A room event's line from `source` (a prefix) at `time` under `msgid` (`stamp_line`).
    fn event_from(&mut self, source: &str, base: Message, account: Option<String>, line: (u64, String)) -> Outgoing {
        let (time, msgid) = line;
        Outgoing::from_source(Some(Arc::from(source)), base, time, Some(msgid), account)
    }

    /// The stamp of a room event of `lines` lines this node makes now: the time and msgids
    /// every node will show it with.
    pub(crate) fn new_stamp(&mut self, lines: usize) -> Option<Stamp> {
        let now = self.now.wall_ms;
        Some(Stamp { time_ms: now, msgids: (0..lines).map(|_| self.msgids.next(now)).collect() })
    }

    /// The stamp of a one-line event as this node showed it (its NICK or QUIT, which it applies
    /// at once).
    pub(crate) fn stamp_of(&self, ev: &Outgoing) -> Option<Stamp> {
        Some(Stamp { time_ms: ev.time_ms, msgids: vec![ev.msgid.clone()?] })
    }

    /// The time and msgid of a room event's `n`th line as applied here: the author's, or for an
    /// entry of an older version (no stamp) this node's own.
    pub(crate) fn stamp_line(&mut self, stamp: Option<&Stamp>, n: usize) -> (u64, String) {
        Stamp::line(stamp, n).unwrap_or_else(|| (self.now.wall_ms, self.msgids.next(self.now.wall_ms)))
    }

    /// Runs `apply` (a JOIN or PART made by the single-node code) with the author's stamp of
    /// its line waiting for [`Server::restamp`].
    pub(crate) fn with_stamp(&mut self, stamp: Option<&Stamp>, apply: impl FnOnce(&mut Self)) {
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stamp = Stamp::line(stamp, 0);
        }
        apply(self);
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.stamp = None;
        }
    }

    /// Gives a JOIN or PART being applied from the log its author's time and msgid (nothing on
    /// a single node, or for an entry without a stamp).
    pub(crate) fn restamp(&mut self, ev: &mut Outgoing) {
        if let Some((time, msgid)) = self.cluster.as_mut().and_then(|c| c.stamp.take()) {
            ev.time_ms = time;
            ev.msgid = Some(msgid);
        }
    }

    pub(crate) fn apply_topic(
        &mut self,
        room: &str,
        uid: UserId,
        source: String,
        text: String,
        own: bool,
        stamp: Option<&Stamp>,
    ) {
        let folded = casefold(room);
        let account = self.account_of_uid(&uid, own);
        let line = self.stamp_line(stamp, 0);
        self.as_author(&uid, &folded, own, |server| {
            let set_at_ms = line.0;
            let Some(ch) = server.channels.get_mut(&folded) else { return };
            ch.topic = (!text.is_empty()).then(|| Topic { text: text.clone(), setter: source.clone(), set_at_ms });
            let display = ch.name.as_str().to_owned();
            let members: Vec<ConnId> = ch.members.keys().copied().collect();
            let base = Message::new("TOPIC").with_params([display, text]);
            let mut ev = server.event_from(&source, base, account, line);
            server.deliver_all(&mut ev, members);
            if own {
                server.save_channel(&folded);
                server.record_event(&folded, &ev, false);
            }
        });
    }

    pub(crate) fn apply_kick(
        &mut self,
        room: &str,
        uid: UserId,
        (source, reason): (String, String),
        victims: Vec<(UserId, String)>,
        own: bool,
        stamp: Option<&Stamp>,
    ) {
        let folded = casefold(room);
        let account = self.account_of_uid(&uid, own);
        let me = self.local_uid(ConnId(0)).map(|u| (u.node, u.incarnation));
        self.as_author(&uid, &folded, own, |server| {
            for (n, (victim, shown)) in victims.into_iter().enumerate() {
                let Some(ch) = server.channels.get(&folded) else { return };
                let local = me.as_ref().is_some_and(|(n, i)| *n == victim.node && *i == victim.incarnation);
                let conn = ConnId(victim.conn);
                let member = if local { ch.members.contains_key(&conn) } else { ch.remote.contains_key(&victim) };
                if !member {
                    continue;
                }
                let name = ch.name.as_str().to_owned();
                let members: Vec<ConnId> = ch.members.keys().copied().collect();
                let reason = fit_trailing(&reason, &format!(":{source} KICK {name} {shown} ")).to_owned();
                let base = Message::new("KICK").with_params([name, shown, reason]);
                let line = server.stamp_line(stamp, n);
                let mut ev = server.event_from(&source, base, account.clone(), line);
                server.deliver_all(&mut ev, members);
                if own {
                    server.record_event(&folded, &ev, false);
                }
                if local {
                    server.leave_channel(conn, &folded);
                } else {
                    if let Some(ch) = server.channels.get_mut(&folded) {
                        ch.remote.remove(&victim);
                    }
                    if let Some(rooms) = server.cluster.as_mut().and_then(|c| c.user_rooms.get_mut(&victim)) {
                        rooms.remove(&folded);
                    }
                    server.drop_if_empty(&folded);
                }
            }
        });
    }

    pub(crate) fn apply_mode(
        &mut self,
        room: &str,
        uid: UserId,
        source: String,
        changes: Vec<ModeItem>,
        own: bool,
        stamp: Option<&Stamp>,
    ) {
        let folded = casefold(room);
        let account = self.account_of_uid(&uid, own);
        self.as_author(&uid, &folded, own, |server| {
            let applied: Vec<ModeChange> = changes
                .into_iter()
                .filter_map(|(add, letter, param, member)| {
                    server.set_mode(&folded, ModeChange { add, letter, param }, member.as_ref(), &source)
                })
                .collect();
            let Some(ch) = server.channels.get(&folded) else { return };
            if applied.is_empty() {
                return;
            }
            let display = ch.name.as_str().to_owned();
            let members: Vec<ConnId> = ch.members.keys().copied().collect();
            let base = Message::new("MODE").with_param(display).with_params(render_changes(&applied));
            let line = server.stamp_line(stamp, 0);
            let mut ev = server.event_from(&source, base, account, line);
            server.deliver_all(&mut ev, members);
            if own {
                if applied.iter().any(ModeChange::is_durable) {
                    server.save_channel(&folded);
                }
                server.record_event(&folded, &ev, false);
            }
        });
    }

    /// Sets one mode change that took effect where it was made, as it is shown here, if it
    /// could be set (a member who left meanwhile cannot be opped). `+o`/`+v` go to `member`
    /// (by id; an older entry without one: whoever has the nick here), shown by the nick it
    /// has here.
    fn set_mode(
        &mut self,
        folded: &str,
        mut change: ModeChange,
        member: Option<&UserId>,
        setter: &str,
    ) -> Option<ModeChange> {
        let target = match (change.letter, change.param.as_deref(), member) {
            ('o' | 'v', Some(_), Some(uid)) => self.member_by_uid(uid),
            ('o' | 'v', Some(nick), None) => self.uid_of_nick(nick).and_then(|uid| self.member_by_uid(&uid)),
            _ => None,
        };
        let now_ms = self.now.wall_ms;
        let max = self.cfg.limits.bans_per_channel;
        let ch = self.channels.get_mut(folded)?;
        let add = change.add;
        match (change.letter, change.param.as_deref()) {
            ('o' | 'v', Some(_)) => {
                let (who, nick) = target?;
                let member = match who {
                    Ok(conn) => ch.members.get_mut(&conn),
                    Err(uid) => ch.remote.get_mut(&uid),
                }?;
                if change.letter == 'o' {
                    member.op = add;
                } else {
                    member.voice = add;
                }
                change.param = Some(nick);
            }
            ('k', key) => ch.modes.key = if add { key.map(str::to_owned) } else { None },
            ('l', limit) => ch.modes.limit = if add { limit.and_then(|l| l.parse().ok()) } else { None },
            (letter @ ('b' | 'e' | 'I'), Some(mask)) => {
                let list = ch.list_mut(letter)?;
                let existing = list.iter().position(|b| casefold(&b.mask) == casefold(mask));
                match (add, existing) {
                    (true, None) if list.len() < max => {
                        list.push(Ban { mask: mask.to_owned(), setter: setter.to_owned(), set_at_ms: now_ms })
                    }
                    (false, Some(at)) => {
                        list.remove(at);
                    }
                    _ => return None,
                }
            }
            (flag @ ('i' | 'm' | 'n' | 's' | 't'), _) => ch.set_flag(flag, add),
            _ => return None,
        }
        Some(change)
    }

    /// A user by id as this node holds it: its connection if it is local, else its id in the
    /// replica, with the nick it has here.
    fn member_by_uid(&self, uid: &UserId) -> Option<(Result<ConnId, UserId>, String)> {
        let cluster = self.cluster.as_ref()?;
        if uid.node == cluster.me.node && uid.incarnation == cluster.me.incarnation {
            let conn = ConnId(uid.conn);
            let nick = self.clients.get(&conn).filter(|c| c.registered)?.nick_or_star().to_owned();
            return Some((Ok(conn), nick));
        }
        let nick = cluster.users.get(uid)?.nick.clone();
        Some((Err(uid.clone()), nick))
    }
}
