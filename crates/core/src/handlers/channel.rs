//! Room membership and room state: JOIN, PART, TOPIC, NAMES (LIST is in `list.rs`).

use chinwag_proto::{ChannelName, Message};

use crate::caps::Cap;
use crate::channel::{Channel, Member, Topic};
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::{fit_trailing, truncate};

/// Bytes of names per 353 line, leaving room for the prefix and tags within 512.
const NAMES_LINE_BUDGET: usize = 380;

impl Server {
    pub(crate) fn handle_join(&mut self, msg: &Message) {
        let Some(targets) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.need_more_params("JOIN");
            return;
        };
        if targets == "0" {
            let channels: Vec<String> =
                self.cur_client().map(|c| c.channels.iter().cloned().collect()).unwrap_or_default();
            for folded in channels {
                self.part_one(&folded, "Left all channels");
            }
            return;
        }
        let keys: Vec<&str> = msg.params.get(1).map(|k| k.split(',').collect()).unwrap_or_default();
        for (i, raw) in targets.split(',').enumerate().filter(|(_, t)| !t.is_empty()) {
            self.join_one(raw, keys.get(i).copied().filter(|k| !k.is_empty()));
        }
    }

    pub(crate) fn join_one(&mut self, raw: &str, key: Option<&str>) {
        let name = match ChannelName::parse(raw, self.cfg.limits.channel_len) {
            Ok(name) => name,
            Err(e) if raw.starts_with('#') => {
                self.numeric(ERR_BADCHANNAME, [raw.to_owned(), format!("Illegal channel name: {e}")]);
                return;
            }
            Err(_) => {
                self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
                return;
            }
        };
        let new_skeleton = if self.channels.contains_key(name.folded()) {
            None
        } else {
            match self.new_room_allowed(name.as_str(), name.folded()) {
                Ok(skeleton) => Some(skeleton),
                Err(why) => {
                    self.numeric(ERR_BADCHANNAME, [name.as_str().to_owned(), format!("Illegal channel name: {why}")]);
                    return;
                }
            }
        };
        if self.guest_refused(name.as_str(), false) {
            return;
        }
        let conn = self.cur_conn();
        let Some(client) = self.cur_client() else { return };
        if client.channels.contains(name.folded()) {
            return;
        }
        if client.channels.len() >= self.cfg.limits.channels_per_client {
            self.numeric(ERR_TOOMANYCHANNELS, [name.as_str(), "You have joined too many channels"]);
            return;
        }
        let prefix = client.prefix();
        let account = client.account.as_deref().map(chinwag_proto::casefold);
        let refusal = self.channels.get(name.folded()).and_then(|ch| {
            let invited = ch.invited.contains(&conn);
            let excepted = || ch.is_invex(prefix, account.as_deref());
            if ch.founder.is_some() && ch.founder == account {
                None
            } else if ch.modes.key.as_deref().is_some_and(|k| Some(k) != key) {
                Some((ERR_BADCHANNELKEY, "Cannot join channel (+k) - bad key"))
            } else if ch.modes.limit.is_some_and(|l| ch.members.len() + ch.remote.len() >= l) && !invited {
                Some((ERR_CHANNELISFULL, "Cannot join channel (+l) - channel is full"))
            } else if ch.modes.invite_only && !invited && !excepted() {
                Some((ERR_INVITEONLYCHAN, "Cannot join channel (+i) - you must be invited"))
            } else if ch.is_banned(prefix, account.as_deref()) {
                Some((ERR_BANNEDFROMCHAN, "Cannot join channel (+b) - you are banned"))
            } else {
                None
            }
        });
        if let Some((code, text)) = refusal {
            self.numeric(code, [name.as_str(), text]);
            return;
        }
        // Cluster mode: the join takes effect when its entry comes back from the log.
        if self.cluster.is_some() && self.cluster_join(&name, raw, key) {
            return;
        }
        self.join_now(conn, &name, new_skeleton);
    }

    /// `conn` (the current client), checked, joins the room `name`. `new_skeleton`: the room's
    /// confusable skeleton if it is new (cluster mode works it out here: the room may have been
    /// made meanwhile).
    pub(crate) fn join_now(&mut self, conn: ConnId, name: &ChannelName, new_skeleton: Option<String>) {
        let Some(client) = self.clients.get(&conn) else { return };
        let account = client.account.as_deref().map(chinwag_proto::casefold);
        let caps = client.caps;
        let exists = self.channels.contains_key(name.folded());
        let new_skeleton = match new_skeleton {
            Some(s) => Some(s),
            None if !exists && self.cluster.is_some() => Some(crate::confusable::skeleton(name.folded())),
            None => None,
        };
        let now_ms = self.now.wall_ms;
        let created = !self.channels.contains_key(name.folded());
        // Founded rooms are kept forever, so one account founds only so many; past that a new
        // room is an ordinary one that goes away when empty.
        let max_founded = self.cfg.limits.rooms_per_account;
        let founder = account.clone().filter(|a| created && self.may_found(a));
        if let Some(skeleton) = new_skeleton {
            self.remember_room(skeleton, name.folded());
        }
        if created && account.is_some() && founder.is_none() {
            let text = format!("{name}: you already founded {max_founded} rooms; this one will not be kept when empty");
            let nick = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
            let notice = self.server_msg("NOTICE").with_params([nick, text]);
            self.send_msg(conn, notice);
        }
        let ch = self.channels.entry(name.folded().to_owned()).or_insert_with(|| {
            let mut ch = Channel::new(name.clone(), now_ms, false);
            ch.founder = founder;
            ch
        });
        // The founder always runs its room; otherwise whoever makes the room by joining it does.
        // Nobody gets op by being first into a room that already exists: a default room belongs
        // to the server, and a guest's room restored after a restart (it has no founder, and a
        // room without one is only kept while it has members) belongs to no one; whoever rejoins
        // first is not necessarily who ran it. There an administrator gives op
        // (`chinwag admin op`).
        let is_founder = ch.founder.is_some() && ch.founder == account;
        let op = is_founder || created;
        ch.members.insert(conn, Member { op, voice: false, caps });
        let first_here = ch.members.len() == 1;
        ch.invited.remove(&conn);
        let display = ch.name.as_str().to_owned();
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        if let Some(client) = self.cur_client_mut() {
            client.channels.insert(name.folded().to_owned());
        }
        if created {
            self.save_channel(name.folded());
        }
        if first_here {
            self.sync_interest(name.folded());
        }
        self.charge(self.cfg.limits.join_cost);
        self.announce_join(conn, &display, &members);
        self.marker_on_join(conn, name.folded(), &display);
        self.send_topic(name.folded(), false);
        self.send_names(name.folded(), &display);
        if !created {
            self.autoreplay_on_join(conn, name.folded(), &display);
        }
    }

    /// On a server where accounts are required (`accounts.required`), whether the current
    /// client is a guest that may not join or send to `target`; if so it is told with 477
    /// (unless `quiet`: NOTICE draws no error). NickServ is never refused: guests must be able
    /// to register and log in.
    pub(crate) fn guest_refused(&mut self, target: &str, quiet: bool) -> bool {
        if !self.cfg.accounts_required || self.cur_client().is_none_or(|c| c.account.is_some()) {
            return false;
        }
        if !quiet {
            let text = "This server is for registered users: log in first (/msg NickServ IDENTIFY account password, or /msg NickServ HELP)";
            self.numeric(ERR_NEEDREGGEDNICK, [target, text]);
        }
        true
    }

    /// After a guest's welcome on a server where accounts are required: what it may do.
    pub(crate) fn tell_accounts_required(&mut self, conn: ConnId, nick: &str) {
        let text = "This server is for registered users: you can join rooms and send messages once logged in. \
                    Log in with /msg NickServ IDENTIFY account password, or make your nick an account with \
                    /msg NickServ REGISTER password (see /msg NickServ HELP).";
        let notice = self.server_msg("NOTICE").with_params([nick, text]);
        self.send_msg(conn, notice);
    }

    /// Sends the JOIN to every member (extended-join for those who asked), and AWAY to
    /// away-notify members if the joiner is away.
    fn announce_join(&mut self, conn: ConnId, display: &str, members: &[ConnId]) {
        let Some(client) = self.clients.get(&conn) else { return };
        let account = client.account.clone().unwrap_or_else(|| "*".into());
        let realname = client.realname.clone();
        let away = client.away().map(str::to_owned);
        let Some(mut plain) = self.cur_event(Message::new("JOIN").with_param(display)) else { return };
        self.restamp(&mut plain);
        let Some(mut extended) =
            self.cur_event(Message::new("JOIN").with_params([display, account.as_str(), realname.as_str()]))
        else {
            return;
        };
        extended.msgid.clone_from(&plain.msgid);
        extended.time_ms = plain.time_ms;
        self.record_event(&chinwag_proto::casefold(display), &plain, false);
        let mut away_ev = match away {
            Some(text) => self.cur_event(Message::new("AWAY").with_param(text)),
            None => None,
        };
        for &m in members {
            if self.caps_of(m).has(Cap::ExtendedJoin) {
                self.deliver(&mut extended, m);
            } else {
                self.deliver(&mut plain, m);
            }
            if let Some(ev) = away_ev.as_mut() {
                if m != conn && self.caps_of(m).has(Cap::AwayNotify) {
                    self.deliver(ev, m);
                }
            }
        }
    }

    pub(crate) fn handle_part(&mut self, msg: &Message) {
        let Some(targets) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.need_more_params("PART");
            return;
        };
        let reason = msg.params.get(1).map(|r| truncate(r, self.cfg.limits.kick_len).to_owned());
        for raw in targets.split(',').filter(|t| !t.is_empty()) {
            let folded = chinwag_proto::casefold(raw);
            if !self.channels.contains_key(&folded) {
                self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
            } else if !self.cur_client().is_some_and(|c| c.channels.contains(&folded)) {
                self.numeric(ERR_NOTONCHANNEL, [raw, "You're not on that channel"]);
            } else {
                self.part_one(&folded, reason.as_deref().unwrap_or(""));
            }
        }
    }

    /// The current client leaves a room it is in (in cluster mode, once the log says so).
    pub(crate) fn part_one(&mut self, folded: &str, reason: &str) {
        if self.cluster.is_some() && self.cluster_part(folded, reason) {
            return;
        }
        self.part_now(folded, reason);
    }

    /// The current client leaves a room it is in; every member (itself included) sees PART.
    pub(crate) fn part_now(&mut self, folded: &str, reason: &str) {
        let conn = self.cur_conn();
        let Some(ch) = self.channels.get(folded) else { return };
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        let mut base = Message::new("PART").with_param(ch.name.as_str());
        if !reason.is_empty() {
            let source = self.cur_client().map(|c| c.prefix()).unwrap_or_default();
            base = base.with_param(fit_trailing(reason, &format!(":{source} PART {} ", ch.name.as_str())));
        }
        let Some(mut ev) = self.cur_event(base) else { return };
        self.restamp(&mut ev);
        self.deliver_all(&mut ev, members);
        self.record_event(folded, &ev, false);
        self.leave_channel(conn, folded);
    }

    pub(crate) fn handle_topic(&mut self, msg: &Message) {
        let Some(raw) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.need_more_params("TOPIC");
            return;
        };
        let folded = chinwag_proto::casefold(raw);
        let conn = self.cur_conn();
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
            return;
        };
        let is_member = ch.members.contains_key(&conn);
        let Some(text) = msg.params.get(1) else {
            if ch.modes.secret && !is_member {
                self.numeric(ERR_NOTONCHANNEL, [raw, "You're not on that channel"]);
            } else {
                self.send_topic(&folded, true);
            }
            return;
        };
        if !is_member {
            self.numeric(ERR_NOTONCHANNEL, [raw, "You're not on that channel"]);
            return;
        }
        if ch.modes.topic_locked && !ch.is_op(conn) {
            self.numeric(ERR_CHANOPRIVSNEEDED, [raw, "You're not channel operator"]);
            return;
        }
        let display = ch.name.as_str().to_owned();
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        let setter = self.cur_client().map(|c| c.prefix().to_owned()).unwrap_or_default();
        let text = truncate(text, self.cfg.limits.topic_len);
        let text = fit_trailing(text, &format!(":{setter} TOPIC {display} ")).to_owned();
        if self.cluster.is_some() && self.cluster_topic(&folded, &display, setter.clone(), text.clone()) {
            return;
        }
        let now_ms = self.now.wall_ms;
        if let Some(ch) = self.channels.get_mut(&folded) {
            ch.topic = (!text.is_empty()).then(|| Topic { text: text.clone(), setter, set_at_ms: now_ms });
        }
        self.save_channel(&folded);
        let Some(mut ev) = self.cur_event(Message::new("TOPIC").with_params([display, text])) else { return };
        self.deliver_all(&mut ev, members);
        self.record_event(&folded, &ev, false);
    }

    /// 332 + 333 if the room has a topic; 331 if not and `always` (an explicit TOPIC query).
    fn send_topic(&mut self, folded: &str, always: bool) {
        let Some(ch) = self.channels.get(folded) else { return };
        let name = ch.name.as_str().to_owned();
        match ch.topic.clone() {
            Some(t) => {
                self.numeric(RPL_TOPIC, [name.clone(), t.text]);
                let secs = (t.set_at_ms / 1000).to_string();
                self.numeric(RPL_TOPICWHOTIME, [name, t.setter, secs]);
            }
            None if always => self.numeric(RPL_NOTOPIC, [name.as_str(), "No topic is set"]),
            None => {}
        }
    }

    pub(crate) fn handle_names(&mut self, msg: &Message) {
        let Some(targets) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.numeric(RPL_ENDOFNAMES, ["*", "End of /NAMES list"]);
            return;
        };
        // TARGMAX NAMES:<max_targets>: each room is answered (353s and its 366), in order.
        let rooms: Vec<String> = targets.split(',').filter(|t| !t.is_empty()).map(str::to_owned).collect();
        let max = self.cfg.limits.max_targets;
        if rooms.len() > max {
            let text = format!("Too many targets: at most {max} per command");
            self.numeric(ERR_TOOMANYTARGETS, [targets.as_str(), text.as_str()]);
            return;
        }
        // Each room beyond the first costs like another listing.
        self.charge(rooms.len().saturating_sub(1) as u32 * crate::flood::LISTING_COST);
        for raw in rooms {
            self.send_names(&chinwag_proto::casefold(&raw), &raw);
        }
    }

    /// 353 lines for the members the current client may see, then 366.
    pub(crate) fn send_names(&mut self, folded: &str, raw: &str) {
        let conn = self.cur_conn();
        let caps = self.caps_of(conn);
        let multi = caps.has(Cap::MultiPrefix);
        let userhost = caps.has(Cap::UserhostInNames);
        let mut entries = Vec::new();
        let mut symbol = "=";
        let mut display = raw.to_owned();
        if let Some(ch) = self.channels.get(folded) {
            let is_member = ch.members.contains_key(&conn);
            display = ch.name.as_str().to_owned();
            if ch.modes.secret {
                symbol = "@";
            }
            if is_member || !ch.modes.secret {
                for (member, modes) in &ch.members {
                    let Some(c) = self.clients.get(member) else { continue };
                    if !is_member && c.invisible {
                        continue;
                    }
                    let who = if userhost { c.prefix() } else { c.nick_or_star() };
                    entries.push(format!("{}{who}", modes.prefixes(multi)));
                }
                for (u, modes) in self.remote_members(folded) {
                    if !is_member && u.invisible {
                        continue;
                    }
                    let who = if userhost { format!("{}!{}@{}", u.nick, u.user, u.host) } else { u.nick };
                    entries.push(format!("{}{who}", modes.prefixes(multi)));
                }
            }
        }
        let mut line = String::new();
        for entry in entries {
            if !line.is_empty() && line.len() + entry.len() + 1 > NAMES_LINE_BUDGET {
                let full = std::mem::take(&mut line);
                self.numeric(RPL_NAMREPLY, [symbol, display.as_str(), full.as_str()]);
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(&entry);
        }
        if !line.is_empty() {
            self.numeric(RPL_NAMREPLY, [symbol, display.as_str(), line.as_str()]);
        }
        self.numeric(RPL_ENDOFNAMES, [display.as_str(), "End of /NAMES list"]);
    }
}
