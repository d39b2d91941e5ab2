//! Operators and administration: `OPER`, `KILL`, `WALLOPS`, server-wide `NOTICE $*`,
//! `KLINE`/`UNKLINE` and `REHASH` for IRC operators, and the same powers as plain methods for
//! the edge's admin console and control socket (`users`, `rooms`, `kill`, `announce`, bans,
//! `reconfigure`).
//!
//! OPER passwords are checked like account passwords: the core only holds the Argon2id hash
//! from the configuration and sends the check out as a [`Request`], so hashing never runs on
//! the task that owns the core. Server bans (K-lines) are host masks (`192.0.2.*`,
//! `*.example.org`); the core keeps them and bumps a version the edge watches to save them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use chinwag_proto::{casefold, mask_match, Message};

use crate::channel::Topic;
use crate::config::Config;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::{Now, Pending, Server};
use crate::store::{Failure, Request, Response};
use crate::text::seconds;
use crate::throttle::{Outcome, Ticket};

/// The longest KILL, KLINE or WALLOPS reason kept.
pub(crate) const MAX_REASON_LEN: usize = 300;

/// A server ban: connections from a matching host are refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kline {
    /// A host mask with `*` and `?`, matched against the address and the shown host.
    pub mask: String,
    pub reason: String,
    pub set_by: String,
    pub set_at_ms: u64,
    /// Unix ms after which the ban no longer applies; `None` for permanent.
    pub expires_ms: Option<u64>,
}

/// One connection as the admin console lists it.
#[derive(Clone, Debug)]
pub struct UserView {
    pub nick: String,
    pub user: String,
    pub host: String,
    pub ip: IpAddr,
    pub account: Option<String>,
    pub tls: bool,
    /// `plaintext`, `tls` or `quic`.
    pub transport: &'static str,
    pub registered: bool,
    /// Seconds since the user last sent a message (PRIVMSG/NOTICE).
    pub idle_secs: u64,
    pub signon_ms: u64,
    pub channels: usize,
    /// The operator name, if the connection used OPER (`*` for an operator on another node).
    pub oper: Option<String>,
    /// The node the user is on, in cluster mode, if it is not this one. Such a user's
    /// `idle_secs` is 0 (its node knows) and its `ip` is its host read as an address.
    pub node: Option<String>,
}

/// One room as the admin console lists it.
#[derive(Clone, Debug)]
pub struct RoomView {
    pub name: String,
    pub members: usize,
    pub topic: Option<String>,
    pub permanent: bool,
    pub founder: Option<String>,
}

/// What the server holds, counted.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub connections: usize,
    pub users: usize,
    pub operators: usize,
    pub accounts: usize,
    pub rooms: usize,
}

/// Operator sessions and server bans.
#[derive(Debug, Default)]
pub(crate) struct OperState {
    /// Connections that used OPER, and the operator name each used.
    opers: HashMap<ConnId, String>,
    klines: Vec<Kline>,
    /// Bumped on every change to `klines`.
    version: u64,
}

impl Server {
    pub(crate) fn oper_name(&self, conn: ConnId) -> Option<&str> {
        self.ops.opers.get(&conn).filter(|_| self.clients.contains_key(&conn)).map(String::as_str)
    }

    /// 481 unless the current client is an operator; returns its operator name.
    fn require_oper(&mut self) -> Option<String> {
        let name = self.oper_name(self.cur_conn()).map(str::to_owned);
        if name.is_none() {
            self.numeric(ERR_NOPRIVILEGES, ["Permission Denied - You're not an IRC operator"]);
        }
        name
    }

    pub(crate) fn handle_oper(&mut self, msg: &Message) {
        let (Some(name), Some(password)) = (msg.params.first(), msg.params.get(1)) else {
            self.need_more_params("OPER");
            return;
        };
        let conn = self.cur_conn();
        self.ops.opers.retain(|c, _| self.clients.contains_key(c));
        if self.insecure(conn) {
            self.numeric(ERR_NOOPERHOST, ["Refusing OPER over a plaintext connection from the network; use TLS"]);
            return;
        }
        let Some(ip) = self.clients.get(&conn).map(|c| c.info.ip) else { return };
        let ticket = match self.throttle.begin_oper(ip, self.now.mono, &self.cfg.limits) {
            Ok(ticket) => ticket,
            Err(wait) => {
                self.numeric(ERR_PASSWDMISMATCH, [format!("Too many failed attempts; try again in {}", seconds(wait))]);
                return;
            }
        };
        let entry = self.cfg.opers.iter().find(|o| casefold(&o.name) == casefold(name));
        // An unknown name still costs a hash check, so timing does not reveal operator names.
        let phc = entry.map(|o| o.password_hash.clone());
        let name = entry.map_or_else(|| name.clone(), |o| o.name.clone());
        let label = self.take_label();
        self.request(
            Request::VerifyPassword { phc, password: password.clone() },
            Pending::Oper { conn, name, ticket, label },
        );
    }

    fn oper_result(&mut self, conn: ConnId, name: String, ticket: Ticket, result: Result<(), Failure>) {
        let outcome = match &result {
            Ok(()) => Outcome::Succeeded,
            Err(Failure::Unavailable(_)) => Outcome::Unknown,
            Err(_) => Outcome::Failed,
        };
        self.settle_login(ticket, outcome);
        let Some(client) = self.clients.get(&conn) else { return };
        let (ip, nick) = (client.info.ip, client.nick_or_star().to_owned());
        match result {
            Ok(()) => {
                tracing::info!(target: "audit", %conn, %ip, %nick, oper = %name, "OPER succeeded");
                self.ops.opers.insert(conn, name);
                self.user_changed(conn, |uid| crate::cluster::NetEvent::Oper { uid });
                self.numeric(RPL_YOUREOPER, ["You are now an IRC operator"]);
                let mode = Message::new("MODE").with_source(nick.clone()).with_params([nick.as_str(), "+o"]);
                self.send_msg(conn, mode);
            }
            Err(Failure::Unavailable(why)) => self.numeric(ERR_NOOPERHOST, [why]),
            Err(_) => {
                tracing::info!(target: "audit", %conn, %ip, %nick, oper = %name, "OPER failed");
                self.numeric(ERR_PASSWDMISMATCH, ["Password incorrect"]);
            }
        }
    }

    pub(crate) fn oper_response(&mut self, pending: Pending, response: Response) {
        match (pending, response) {
            (Pending::Oper { conn, name, ticket, .. }, Response::Done(r)) => self.oper_result(conn, name, ticket, r),
            (Pending::Oper { ticket, .. }, response) => {
                self.throttle.settle(ticket, Outcome::Unknown, self.now.mono, &self.cfg.limits);
                tracing::error!(?response, "a response of the wrong kind to OPER; ignored");
            }
            (Pending::Rehash { conn, by, .. }, Response::Done(r)) => {
                let text = match r {
                    Ok(()) => "Configuration reloaded".to_owned(),
                    Err(Failure::Unavailable(why)) => format!("Reload failed: {why}"),
                    Err(other) => format!("Reload failed: {other:?}"),
                };
                tracing::info!(target: "audit", %conn, oper = %by, outcome = %text, "REHASH");
                let nick = self.clients.get(&conn).map_or("*", |c| c.nick_or_star()).to_owned();
                let notice = self.server_msg("NOTICE").with_params([nick, text]);
                self.send_msg(conn, notice);
            }
            (pending, response) => tracing::error!(?pending, ?response, "a response of the wrong kind; ignored"),
        }
    }

    pub(crate) fn handle_kill(&mut self, msg: &Message) {
        let Some(by) = self.require_oper() else { return };
        let Some(target) = msg.params.first() else {
            self.need_more_params("KILL");
            return;
        };
        let reason = msg.params.get(1).map_or("No reason given", String::as_str).to_owned();
        let killer = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
        if !self.kill_user(target, &reason, &format!("{killer}/{by}")) {
            self.numeric(ERR_NOSUCHNICK, [target.as_str(), "No such nick"]);
        }
    }

    /// Disconnects `nick` with `Killed (by (reason))`. False if nobody uses that nick.
    /// A user on another node is killed by its node (`cluster/admin.rs`).
    fn kill_user(&mut self, nick: &str, reason: &str, by: &str) -> bool {
        let reason = crate::text::truncate(reason, MAX_REASON_LEN).to_owned();
        let Some(target) = self.find_nick(nick) else { return self.kill_remote(nick, &reason, by) };
        tracing::info!(target: "audit", %by, %nick, %reason, "KILL");
        self.close(target, &kill_reason(by, &reason));
        true
    }

    pub(crate) fn handle_wallops(&mut self, msg: &Message) {
        if self.require_oper().is_none() {
            return;
        }
        let Some(text) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.need_more_params("WALLOPS");
            return;
        };
        let text = crate::text::truncate(text, MAX_REASON_LEN).to_owned();
        let Some(mut ev) = self.cur_event(Message::new("WALLOPS").with_param(text)) else { return };
        let opers = self.local_opers();
        self.deliver_all(&mut ev, opers);
        self.publish_notice(&ev, true);
    }

    /// This node's connections that used OPER.
    pub(crate) fn local_opers(&self) -> Vec<ConnId> {
        self.ops.opers.keys().copied().filter(|c| self.clients.contains_key(c)).collect()
    }

    /// `PRIVMSG/NOTICE $mask :text`: to every user on a server matching the mask (here, this one).
    pub(crate) fn handle_server_notice(&mut self, command: &str, msg: &Message) {
        let Some(by) = self.require_oper() else { return };
        let target = msg.params.first().cloned().unwrap_or_default();
        let Some(text) = msg.params.get(1).filter(|t| !t.is_empty()) else {
            self.numeric(ERR_NOTEXTTOSEND, ["No text to send"]);
            return;
        };
        if !mask_match(&target[1..], &self.cfg.server_name) {
            self.numeric(ERR_NOSUCHNICK, [target.as_str(), "No such server"]);
            return;
        }
        tracing::info!(target: "audit", oper = %by, %target, "server-wide {command}");
        let Some(mut ev) = self.cur_event(Message::new(command).with_params([target.as_str(), text.as_str()])) else {
            return;
        };
        let everyone: Vec<ConnId> = self.clients.values().filter(|c| c.registered).map(|c| c.id).collect();
        self.deliver_all(&mut ev, everyone);
        self.publish_notice(&ev, false);
    }

    pub(crate) fn handle_kline(&mut self, msg: &Message) {
        let Some(by) = self.require_oper() else { return };
        let mut params = msg.params.iter();
        let mut first = params.next();
        let minutes = first.and_then(|p| p.parse::<u64>().ok());
        if minutes.is_some() {
            first = params.next();
        }
        let Some(mask) = first else {
            self.need_more_params("KLINE");
            return;
        };
        let reason = params.next().map_or("No reason given", String::as_str).to_owned();
        let duration = minutes.filter(|m| *m > 0).map(|m| Duration::from_secs(m * 60));
        let nick = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
        match self.add_kline(mask, &reason, duration, &format!("{nick}/{by}")) {
            Ok(killed) => {
                let text = format!("Added K-line for {mask} ({killed} disconnected)");
                let notice = self.server_msg("NOTICE").with_params([nick, text]);
                self.send_msg(self.cur_conn(), notice);
            }
            Err(why) => self.fail("KLINE", "INVALID_MASK", &[mask], &why),
        }
    }

    pub(crate) fn handle_unkline(&mut self, msg: &Message) {
        let Some(by) = self.require_oper() else { return };
        let Some(mask) = msg.params.first() else {
            self.need_more_params("UNKLINE");
            return;
        };
        let nick = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
        let text = if self.remove_kline(mask, &format!("{nick}/{by}")) {
            format!("Removed K-line for {mask}")
        } else {
            format!("No K-line for {mask}")
        };
        let notice = self.server_msg("NOTICE").with_params([nick, text]);
        self.send_msg(self.cur_conn(), notice);
    }

    pub(crate) fn handle_rehash(&mut self) {
        let Some(by) = self.require_oper() else { return };
        let conn = self.cur_conn();
        self.numeric(RPL_REHASHING, ["chinwag.toml", "Rehashing"]);
        let label = self.take_label();
        self.request(Request::Reload, Pending::Rehash { conn, by, label });
    }

    /// Refuses a new connection from a banned host. Called by [`Server::connect`].
    pub(crate) fn reject_if_banned(&mut self, conn: ConnId) {
        let Some(client) = self.clients.get(&conn) else { return };
        let (ip, host) = (client.info.ip.to_string(), client.info.host.clone());
        let now = self.now.wall_ms;
        let Some(ban) = self.ops.klines.iter().find(|k| k.applies(now) && k.matches(&ip, &host)) else { return };
        let reason = format!("K-Lined: {}", ban.reason);
        self.begin(conn, None);
        self.numeric(ERR_YOUREBANNEDCREEP, [reason.as_str()]);
        self.close(conn, &reason);
        self.finish();
    }

    // ---- entry points for the edge's admin console ----

    /// Every connection, registered or not, and in cluster mode every user of other nodes, by
    /// nick.
    pub fn users(&self, now: Now) -> Vec<UserView> {
        let mut out: Vec<UserView> = self
            .clients
            .values()
            .map(|c| UserView {
                nick: c.nick_or_star().to_owned(),
                user: c.user_or_star().to_owned(),
                host: c.info.host.clone(),
                ip: c.info.ip,
                account: c.account.clone(),
                tls: c.info.tls,
                transport: c.info.transport(),
                registered: c.registered,
                idle_secs: now.mono.saturating_duration_since(c.last_spoke).as_secs(),
                signon_ms: c.signon_ms,
                channels: c.channels.len(),
                oper: self.ops.opers.get(&c.id).cloned(),
                node: None,
            })
            .collect();
        out.extend(self.remote_user_views());
        out.sort_by_key(|a| casefold(&a.nick));
        out
    }

    /// Every room, by name.
    pub fn rooms(&self) -> Vec<RoomView> {
        let mut out: Vec<RoomView> = self
            .channels
            .values()
            .map(|ch| RoomView {
                name: ch.name.as_str().to_owned(),
                members: ch.members.len() + ch.remote.len(),
                topic: ch.topic.as_ref().map(|t| t.text.clone()),
                permanent: ch.permanent,
                founder: ch.founder.clone(),
            })
            .collect();
        out.sort_by_key(|a| casefold(&a.name));
        out
    }

    pub fn counts(&self) -> Counts {
        let users = self.clients.values().filter(|c| c.registered).count();
        let operators = self.ops.opers.keys().filter(|c| self.clients.contains_key(c)).count();
        Counts {
            connections: self.clients.len(),
            users,
            operators,
            accounts: self.accounts.len(),
            rooms: self.channels.len(),
        }
    }

    /// Disconnects `nick` on an administrator's behalf. False if nobody uses that nick.
    pub fn kill(&mut self, nick: &str, reason: &str, by: &str, now: Now) -> bool {
        self.now = now;
        let done = self.kill_user(nick, reason, by);
        self.finish();
        done
    }

    /// A NOTICE from the server to every registered user (in cluster mode, of every node:
    /// the count includes the users of other nodes this node knows of).
    pub fn announce(&mut self, text: &str, now: Now) -> usize {
        self.now = now;
        let text = crate::text::truncate(text, MAX_REASON_LEN).to_owned();
        let local = self.announce_here(&text);
        let remote = self.publish_announce(&text);
        self.finish();
        local + remote
    }

    /// The administrator's broadcast to this node's registered users; how many.
    pub(crate) fn announce_here(&mut self, text: &str) -> usize {
        let everyone: Vec<(ConnId, String)> =
            self.clients.values().filter(|c| c.registered).map(|c| (c.id, c.nick_or_star().to_owned())).collect();
        for (conn, nick) in &everyone {
            let notice = self.server_msg("NOTICE").with_params([nick.as_str(), text]);
            self.send_msg(*conn, notice);
        }
        everyone.len()
    }

    /// Bans a host mask, disconnecting whoever matches now. Returns how many were disconnected.
    pub fn ban(
        &mut self,
        mask: &str,
        reason: &str,
        duration: Option<Duration>,
        by: &str,
        now: Now,
    ) -> Result<usize, String> {
        self.now = now;
        let result = self.add_kline(mask, reason, duration, by);
        self.finish();
        result
    }

    /// Changes a room's modes on an administrator's behalf (`chinwag admin mode`, `op`,
    /// `deop`): any room, no operator status needed, the MODE line comes from the server. The
    /// mode words that took effect (e.g. `["+o", "amy"]`), or why nothing changed.
    pub fn room_mode(
        &mut self,
        room: &str,
        modes: &str,
        args: &[String],
        by: &str,
        now: Now,
    ) -> Result<Vec<String>, String> {
        let folded = casefold(room);
        if !self.channels.contains_key(&folded) {
            return Err(format!("no room {room}"));
        }
        let (applied, errors) = self.as_admin(now, |s| s.admin_mode(&folded, modes, args));
        if applied.is_empty() {
            let why = if errors.is_empty() { "nothing to change".to_owned() } else { errors.join("; ") };
            return Err(format!("{room}: {why}"));
        }
        tracing::info!(target: "audit", %by, channel = %room, modes = %applied.join(" "), "room modes set");
        Ok(applied)
    }

    /// Sets (or, with empty text, clears) a room's topic on an administrator's behalf, whatever
    /// its +t; the TOPIC line comes from the server.
    pub fn room_topic(&mut self, room: &str, text: &str, by: &str, now: Now) -> Result<(), String> {
        let folded = casefold(room);
        let Some(ch) = self.channels.get(&folded) else { return Err(format!("no room {room}")) };
        let shown = ch.name.as_str().to_owned();
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        let setter = self.cfg.server_name.clone();
        let text = crate::text::truncate(text, self.cfg.limits.topic_len);
        let text = crate::text::fit_trailing(text, &format!(":{setter} TOPIC {shown} ")).to_owned();
        tracing::info!(target: "audit", %by, channel = %shown, topic = %text, "room topic set");
        self.now = now;
        if self.admin_topic_to_log(&folded, &shown, &text) {
            return Ok(());
        }
        self.as_admin(now, |s| {
            if let Some(ch) = s.channels.get_mut(&folded) {
                let set_at_ms = s.now.wall_ms;
                ch.topic = (!text.is_empty()).then(|| Topic { text: text.clone(), setter, set_at_ms });
            }
            s.save_channel(&folded);
            if let Some(mut ev) = s.cur_event(Message::new("TOPIC").with_params([shown, text])) {
                s.deliver_all(&mut ev, members);
                s.record_event(&folded, &ev, false);
            }
        });
        Ok(())
    }

    pub fn unban(&mut self, mask: &str, by: &str) -> bool {
        self.remove_kline(mask, by)
    }

    fn add_kline(&mut self, mask: &str, reason: &str, duration: Option<Duration>, by: &str) -> Result<usize, String> {
        let mask = mask.strip_prefix("*@").unwrap_or(mask);
        if mask.is_empty() || mask.contains(['!', '@', ' ', ',']) || mask.trim_matches(['*', '?', '.', ':']).is_empty()
        {
            return Err(
                "Expected a host mask such as 192.0.2.* or *.example.org (not one that matches everyone)".into()
            );
        }
        let now = self.now.wall_ms;
        let kline = Kline {
            mask: mask.to_owned(),
            reason: crate::text::truncate(reason, MAX_REASON_LEN).to_owned(),
            set_by: by.to_owned(),
            set_at_ms: now,
            expires_ms: duration.map(|d| now + d.as_millis() as u64),
        };
        tracing::info!(target: "audit", %by, mask = %kline.mask, reason = %kline.reason, expires_ms = ?kline.expires_ms, "ban added");
        self.append_net_event(crate::cluster::NetEvent::Kline(Box::new(kline.clone())));
        Ok(self.install_kline(kline))
    }

    /// Bans `kline`'s mask (replacing an earlier ban of it) and disconnects the connections it
    /// matches; how many.
    fn install_kline(&mut self, kline: Kline) -> usize {
        let live = kline.applies(self.now.wall_ms);
        let victims: Vec<ConnId> = self
            .clients
            .values()
            .filter(|c| live && kline.matches(&c.info.ip.to_string(), &c.info.host))
            .map(|c| c.id)
            .collect();
        let reason = format!("K-Lined: {}", kline.reason);
        self.ops.klines.retain(|k| !k.mask.eq_ignore_ascii_case(&kline.mask));
        self.ops.klines.push(kline);
        self.ops.version += 1;
        for conn in &victims {
            self.close(*conn, &reason);
        }
        victims.len()
    }

    /// A ban from the log (cluster mode), this node's own included: the node that set it has
    /// it already, and a ban already in force as it is changes nothing; an expired one is
    /// only kept, so that `bans` on every node agree.
    pub(crate) fn apply_kline(&mut self, kline: Kline) {
        if self.ops.klines.contains(&kline) {
            return;
        }
        if kline.applies(self.now.wall_ms) {
            tracing::info!(target: "audit", by = %kline.set_by, mask = %kline.mask, "ban added elsewhere in the network");
        }
        self.install_kline(kline);
    }

    /// A ban lifted anywhere in the network (cluster mode), this node's own included.
    pub(crate) fn apply_unkline(&mut self, mask: &str) {
        let before = self.ops.klines.len();
        self.ops.klines.retain(|k| !k.mask.eq_ignore_ascii_case(mask));
        if self.ops.klines.len() != before {
            self.ops.version += 1;
        }
    }

    fn remove_kline(&mut self, mask: &str, by: &str) -> bool {
        let mask = mask.strip_prefix("*@").unwrap_or(mask);
        let before = self.ops.klines.len();
        self.ops.klines.retain(|k| !k.mask.eq_ignore_ascii_case(mask));
        let removed = self.ops.klines.len() != before;
        if removed {
            self.ops.version += 1;
            tracing::info!(target: "audit", %by, %mask, "ban removed");
            let (mask, by) = (mask.to_owned(), by.to_owned());
            self.append_net_event(crate::cluster::NetEvent::Unkline { mask, by });
        }
        removed
    }

    /// Bans in force (expired ones are left out).
    pub fn klines(&self) -> Vec<Kline> {
        let now = self.now.wall_ms;
        self.ops.klines.iter().filter(|k| k.applies(now)).cloned().collect()
    }

    /// Changes whenever the bans change, so the edge knows when to save them.
    pub fn klines_version(&self) -> u64 {
        self.ops.version
    }

    /// Loads saved bans (at start).
    pub fn restore_klines(&mut self, klines: Vec<Kline>) {
        self.ops.klines = klines;
    }

    /// Applies what a reload may change: MOTD, server password, limits, operators. The server's
    /// name and default rooms stay as they were (they need a restart).
    pub fn reconfigure(&mut self, cfg: Config) {
        self.cfg.motd = cfg.motd;
        self.cfg.password = cfg.password;
        self.cfg.accounts_required = cfg.accounts_required;
        self.cfg.limits = cfg.limits;
        self.cfg.opers = cfg.opers;
        self.cfg.accounts = cfg.accounts;
    }
}

/// The QUIT reason of a killed user.
pub(crate) fn kill_reason(by: &str, reason: &str) -> String {
    format!("Killed ({by} ({reason}))")
}

impl Kline {
    fn applies(&self, now_ms: u64) -> bool {
        self.expires_ms.is_none_or(|e| e > now_ms)
    }

    fn matches(&self, ip: &str, host: &str) -> bool {
        mask_match(&self.mask, ip) || mask_match(&self.mask, host)
    }
}
