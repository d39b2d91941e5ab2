//! A client's own presence: AWAY, SETNAME, MONITOR (and extended-monitor: watchers hear of
//! AWAY, ACCOUNT and SETNAME as peers do, see [`Server::presence_watchers`]).
//!
//! MONITOR state lives in two places that must agree: each client's `monitoring` (what it
//! watches, for `MONITOR L` and cleanup on disconnect) and the server's `monitors` (who watches
//! a nick, for the notices sent when it comes and goes). Every change here updates both.

use std::collections::BTreeSet;

use chinwag_proto::{casefold, Message, Nick};

use crate::caps::Cap;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::{fit_trailing, pack, truncate};

/// Bytes of targets per 730/731/732 line, leaving room for the prefix and nick within 512.
const MONITOR_LINE_BUDGET: usize = 400;

impl Server {
    pub(crate) fn handle_away(&mut self, msg: &Message) {
        let conn = self.cur_conn();
        let away_len = self.cfg.limits.away_len;
        let Some(client) = self.cur_client_mut() else { return };
        let head = format!(":{} AWAY ", client.prefix());
        let text =
            msg.params.first().map(|t| fit_trailing(truncate(t, away_len), &head).to_owned()).filter(|t| !t.is_empty());
        let changed = client.away() != text.as_deref();
        match &text {
            Some(text) => client.extra_mut().away = Some(text.clone()),
            None => client.clear_extra(|e| e.away = None),
        }
        match &text {
            Some(_) => self.numeric(RPL_NOWAWAY, ["You have been marked as being away"]),
            None => self.numeric(RPL_UNAWAY, ["You are no longer marked as being away"]),
        }
        if !changed {
            return;
        }
        let base = Message::new("AWAY").with_params(text.clone());
        let Some(mut ev) = self.cur_event(base) else { return };
        let stamp = self.stamp_of(&ev);
        self.user_changed(conn, |uid| crate::cluster::NetEvent::Away { uid, away: text, stamp });
        let watchers = self.presence_watchers(conn, Cap::AwayNotify);
        self.deliver_all(&mut ev, watchers);
    }

    pub(crate) fn handle_setname(&mut self, msg: &Message) {
        let Some(realname) = msg.params.first() else {
            self.need_more_params("SETNAME");
            return;
        };
        let max = self.cfg.limits.realname_len;
        if realname.is_empty() || realname.len() > max {
            let text = format!("Real name must be 1 to {max} bytes long");
            self.fail("SETNAME", "INVALID_REALNAME", &[], &text);
            return;
        }
        let conn = self.cur_conn();
        let Some(mut ev) = self.cur_event(Message::new("SETNAME").with_param(realname.as_str())) else { return };
        if let Some(client) = self.cur_client_mut() {
            realname.clone_into(&mut client.realname);
        }
        let stamp = self.stamp_of(&ev);
        self.user_changed(conn, |uid| crate::cluster::NetEvent::Realname { uid, realname: realname.clone(), stamp });
        let mut recipients = self.presence_watchers(conn, Cap::Setname);
        if self.caps_of(conn).has(Cap::Setname) {
            recipients.insert(conn);
        }
        self.deliver_all(&mut ev, recipients);
    }

    /// Who hears of a change to `conn` that `cap` announces (AWAY with away-notify, ACCOUNT
    /// with account-notify, SETNAME with setname): the peers that asked for `cap`, and, with
    /// extended-monitor, those who MONITOR its nick and asked for both; each once, never `conn`.
    pub(crate) fn presence_watchers(&self, conn: ConnId, cap: Cap) -> BTreeSet<ConnId> {
        let mut watchers = self.peers_of(conn);
        let nick = self.clients.get(&conn).and_then(|c| c.nick());
        if let Some(monitors) = nick.and_then(|n| self.monitors.get(n.folded())) {
            let extended = |w: &ConnId| self.caps_of(*w).has(Cap::ExtendedMonitor);
            watchers.extend(monitors.iter().filter(|w| **w != conn && extended(w)));
        }
        watchers.retain(|w| self.caps_of(*w).has(cap));
        watchers
    }

    pub(crate) fn handle_monitor(&mut self, msg: &Message) {
        let Some(sub) = msg.params.first().filter(|s| !s.is_empty()) else {
            self.need_more_params("MONITOR");
            return;
        };
        let targets = msg.params.get(1).filter(|t| !t.is_empty());
        match (sub.to_ascii_uppercase().as_str(), targets) {
            ("+", Some(targets)) => self.monitor_add(targets),
            ("-", Some(targets)) => self.monitor_remove(targets),
            ("+" | "-", None) => self.need_more_params("MONITOR"),
            ("C", _) => self.monitor_clear(),
            ("L", _) => self.monitor_list(),
            ("S", _) => {
                let all: Vec<String> = self.cur_client().map(|c| c.monitoring().cloned().collect()).unwrap_or_default();
                self.monitor_status(&all);
            }
            // The spec defines no reply for an unknown subcommand; like other servers we ignore it.
            _ => {}
        }
    }

    /// `MONITOR + a,b`: watches the valid nicks until the list is full, then says which were
    /// left out (734); reports the status of every nick it watches.
    fn monitor_add(&mut self, targets: &str) {
        let conn = self.cur_conn();
        let limit = self.cfg.limits.monitor_len;
        let nick_len = self.cfg.limits.nick_len;
        let list: Vec<&str> = targets.split(',').filter(|t| !t.is_empty()).collect();
        let mut watched: Vec<String> = Vec::new();
        let mut seen = BTreeSet::new();
        let mut left_out = None;
        for (i, raw) in list.iter().enumerate() {
            let Ok(nick) = Nick::parse(raw, nick_len) else { continue };
            if !seen.insert(nick.folded().to_owned()) {
                continue;
            }
            let Some(client) = self.clients.get_mut(&conn) else { return };
            let monitoring = client.extra().map(|e| &e.monitoring);
            if !monitoring.is_some_and(|m| m.contains(nick.folded())) {
                if monitoring.map_or(0, BTreeSet::len) >= limit {
                    left_out = Some(list[i..].join(","));
                    break;
                }
                client.extra_mut().monitoring.insert(nick.folded().to_owned());
                self.monitors.entry(nick.folded().to_owned()).or_default().insert(conn);
            }
            watched.push(nick.as_str().to_owned());
        }
        self.monitor_status(&watched);
        if let Some(rest) = left_out {
            self.numeric(ERR_MONLISTFULL, [limit.to_string(), rest, "Monitor list is full".into()]);
        }
    }

    fn monitor_remove(&mut self, targets: &str) {
        let conn = self.cur_conn();
        for raw in targets.split(',').filter(|t| !t.is_empty()) {
            let folded = casefold(raw);
            if let Some(client) = self.clients.get_mut(&conn) {
                client.clear_extra(|e| {
                    e.monitoring.remove(&folded);
                });
            }
            self.unwatch(conn, &folded);
        }
    }

    fn monitor_clear(&mut self) {
        let conn = self.cur_conn();
        let Some(client) = self.clients.get_mut(&conn) else { return };
        let mut all = BTreeSet::new();
        client.clear_extra(|e| all = std::mem::take(&mut e.monitoring));
        for folded in all {
            self.unwatch(conn, &folded);
        }
    }

    /// Takes `conn` off the watchers of `folded`, forgetting the nick once nobody watches it.
    fn unwatch(&mut self, conn: ConnId, folded: &str) {
        if let Some(watchers) = self.monitors.get_mut(folded) {
            watchers.remove(&conn);
            if watchers.is_empty() {
                self.monitors.remove(folded);
            }
        }
    }

    /// 732 lines with every watched nick, then 733.
    fn monitor_list(&mut self) {
        let all: Vec<String> = self.cur_client().map(|c| c.monitoring().cloned().collect()).unwrap_or_default();
        for line in pack(&all, ',', MONITOR_LINE_BUDGET) {
            self.numeric(RPL_MONLIST, [line]);
        }
        self.numeric(RPL_ENDOFMONLIST, ["End of MONITOR list"]);
    }

    /// 730 with `nick!user@host` of those online, 731 with the nicks of those offline.
    fn monitor_status(&mut self, nicks: &[String]) {
        let mut online = Vec::new();
        let mut offline = Vec::new();
        for nick in nicks {
            match self.find_user(nick).and_then(|conn| self.clients.get(&conn)) {
                Some(c) => online.push(c.prefix().to_owned()),
                None => match self.remote_user(nick) {
                    Some(u) => online.push(format!("{}!{}@{}", u.nick, u.user, u.host)),
                    None => offline.push(nick.clone()),
                },
            }
        }
        for line in pack(&online, ',', MONITOR_LINE_BUDGET) {
            self.numeric(RPL_MONONLINE, [line]);
        }
        for line in pack(&offline, ',', MONITOR_LINE_BUDGET) {
            self.numeric(RPL_MONOFFLINE, [line]);
        }
    }
}
