//! Connection registration and life: CAP, PASS, NICK, USER, PING, QUIT, and the welcome burst
//! with ISUPPORT, LUSERS and MOTD.

use chinwag_proto::{casefold, Message, Nick};

use crate::handlers::account::{LoginVia, NICKSERV};

use crate::caps::{Cap, ALL_CAPS};
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::{constant_time_eq, count, seconds, truncate};
use chinwag_proto::rfc3339_ms;

/// The longest `CAP LS` line body we build before continuing on another line.
const CAP_LINE_BUDGET: usize = 400;
/// ISUPPORT tokens per 005 line (the spec allows up to 13 with room for the text).
const ISUPPORT_PER_LINE: usize = 12;

impl Server {
    pub(crate) fn handle_cap(&mut self, msg: &Message) {
        let Some(sub) = msg.params.first().map(|s| s.to_ascii_uppercase()) else {
            self.need_more_params("CAP");
            return;
        };
        let registered = self.cur_client().is_some_and(|c| c.registered);
        match sub.as_str() {
            "LS" => {
                let version = msg.params.get(1).and_then(|v| v.parse::<u32>().ok()).unwrap_or(0);
                if let Some(client) = self.cur_client_mut() {
                    client.cap_negotiating |= !registered;
                    client.cap_version = client.cap_version.max(version);
                    if version >= 302 {
                        client.caps.insert(Cap::CapNotify);
                    }
                }
                self.caps_changed(self.cur_conn());

                let tls = self.cur_client().is_some_and(|c| c.info.tls);
                let registration = self.cfg.accounts.cap_value();
                let multiline = self.cfg.limits.multiline_cap_value();
                let names: Vec<String> = ALL_CAPS
                    .iter()
                    .map(|(cap, name)| {
                        let value = match cap {
                            Cap::AccountRegistration => registration.as_deref(),
                            Cap::Multiline => Some(multiline.as_str()),
                            _ => cap.value_for(tls),
                        };
                        (name, value.filter(|_| version >= 302))
                    })
                    .map(|(name, value)| match value {
                        Some(value) => format!("{name}={value}"),
                        None => (*name).to_owned(),
                    })
                    .collect();
                let names: Vec<&str> = names.iter().map(String::as_str).collect();
                self.send_cap_list("LS", &names, version >= 302);
            }
            "LIST" => {
                let names = self.cur_client().map(|c| c.caps.names()).unwrap_or_default();
                self.send_cap_list("LIST", &names, false);
            }
            "REQ" => {
                let requested = msg.params.get(1).cloned().unwrap_or_default();
                if let Some(client) = self.cur_client_mut() {
                    client.cap_negotiating |= !registered;
                }
                self.cap_req(&requested);
            }
            "END" => {
                if !registered {
                    if let Some(client) = self.cur_client_mut() {
                        client.cap_negotiating = false;
                    }
                    self.try_register();
                }
            }
            _ => self.numeric(ERR_INVALIDCAPCMD, [sub.as_str(), "Invalid CAP command"]),
        }
    }

    /// `CAP * LS :a b c`, split over several lines (with `*` continuation for 302 clients).
    fn send_cap_list(&mut self, sub: &str, names: &[&str], multiline: bool) {
        let nick = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
        let mut lines: Vec<String> = vec![String::new()];
        for name in names {
            let last = lines.last_mut().expect("lines is never empty");
            if multiline && !last.is_empty() && last.len() + name.len() + 1 > CAP_LINE_BUDGET {
                lines.push(String::new());
            }
            let last = lines.last_mut().expect("lines is never empty");
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(name);
        }
        let count = lines.len();
        for (i, line) in lines.into_iter().enumerate() {
            let mut m = self.server_msg("CAP").with_params([nick.as_str(), sub]);
            if i + 1 < count {
                m = m.with_param("*");
            }
            self.send_msg(self.cur_conn(), m.with_param(line));
        }
    }

    /// All-or-nothing: every capability in the request must exist, or none is changed.
    fn cap_req(&mut self, requested: &str) {
        let mut changes = Vec::new();
        for token in requested.split_ascii_whitespace() {
            let (enable, name) = match token.strip_prefix('-') {
                Some(rest) => (false, rest),
                None => (true, token),
            };
            match Cap::from_name(name) {
                Some(cap) => changes.push((enable, cap)),
                None => {
                    changes.clear();
                    break;
                }
            }
        }
        let nick = self.cur_client().map_or("*", |c| c.nick_or_star()).to_owned();
        let ok = !changes.is_empty();
        let had_markers = self.caps_of(self.cur_conn()).has(Cap::ReadMarker);
        if ok {
            if let Some(client) = self.cur_client_mut() {
                for (enable, cap) in changes {
                    if enable {
                        client.caps.insert(cap);
                    } else {
                        client.caps.remove(cap);
                    }
                }
            }
            self.caps_changed(self.cur_conn());
        }
        let verb = if ok { "ACK" } else { "NAK" };
        let reply = self.server_msg("CAP").with_params([nick.as_str(), verb, requested.trim()]);
        self.send_msg(self.cur_conn(), reply);
        if !had_markers {
            // Enabled while logged in: the account's markers, for the rooms it is in.
            self.markers_after_login(self.cur_conn());
        }
    }

    pub(crate) fn handle_pass(&mut self, msg: &Message) {
        if self.cur_client().is_some_and(|c| c.registered) {
            self.numeric(ERR_ALREADYREGISTERED, ["You may not reregister"]);
            return;
        }
        let Some(pass) = msg.params.first() else {
            self.need_more_params("PASS");
            return;
        };
        let pass = pass.clone();
        if let Some(client) = self.cur_client_mut() {
            client.extra_mut().pass = Some(pass);
        }
    }

    pub(crate) fn handle_nick(&mut self, msg: &Message) {
        let Some(raw) = msg.params.first().filter(|s| !s.is_empty()) else {
            self.numeric(ERR_NONICKNAMEGIVEN, ["No nickname given"]);
            return;
        };
        let nick = match Nick::parse(raw, self.cfg.limits.nick_len) {
            Ok(nick) => nick,
            Err(e) => {
                let text = format!("Erroneous nickname: {e}");
                self.numeric(ERR_ERRONEUSNICKNAME, [raw.as_str(), text.as_str()]);
                return;
            }
        };
        if nick.folded() == casefold(NICKSERV) {
            self.numeric(ERR_ERRONEUSNICKNAME, [raw.as_str(), "That nick is reserved for services"]);
            return;
        }
        let conn = self.cur_conn();
        let Some(client) = self.clients.get(&conn) else { return };
        if client.nick().is_some_and(|n| n.as_str() == nick.as_str()) {
            return;
        }
        if self.nicks.get(nick.folded()).is_some_and(|owner| *owner != conn) {
            self.numeric(ERR_NICKNAMEINUSE, [nick.as_str(), "Nickname is already in use"]);
            return;
        }
        let registered = client.registered;
        if registered {
            let (now, rate) = (self.now.mono, self.cfg.limits.nick_changes);
            let Some(client) = self.cur_client_mut() else { return };
            if let Err(wait) = client.nick_changes.take(now, rate, 1) {
                let text = format!("Nick change too fast. Please wait {}.", seconds(wait.as_secs().max(1)));
                self.numeric(ERR_NICKTOOFAST, [nick.as_str(), text.as_str()]);
                return;
            }
        }
        // Cluster mode: the nick is the client's once the network granted it.
        if self.cluster.is_some() && self.claim_nick(conn, &nick, false) {
            return;
        }
        if registered {
            self.change_nick(nick);
        } else {
            self.set_unregistered_nick(conn, nick);
        }
    }

    /// A client that has not registered yet takes `nick`, and registers if it can.
    pub(crate) fn set_unregistered_nick(&mut self, conn: ConnId, nick: Nick) {
        let Some(client) = self.clients.get_mut(&conn) else { return };
        if let Some(old) = client.nick().map(|n| n.folded().to_owned()) {
            self.nicks.remove(&old);
        }
        self.nicks.insert(nick.folded().to_owned(), conn);
        if let Some(client) = self.clients.get_mut(&conn) {
            client.set_nick(nick);
        }
        self.try_register();
    }

    /// A registered client takes a new nick: everyone who shares a room sees it, once.
    pub(crate) fn change_nick(&mut self, nick: Nick) {
        let conn = self.cur_conn();
        let Some(mut ev) = self.cur_event(Message::new("NICK").with_param(nick.as_str())) else { return };
        let mut recipients = self.peers_of(conn);
        recipients.insert(conn);
        self.deliver_all(&mut ev, recipients);
        let rooms: Vec<String> =
            self.clients.get(&conn).map(|c| c.channels.iter().cloned().collect()).unwrap_or_default();
        self.record_event_in(&rooms, &ev);

        let Some(client) = self.clients.get(&conn) else { return };
        let old = client.nick().cloned();
        if let Some(old) = &old {
            self.remember_whowas(conn);
            if self.nicks.get(old.folded()) == Some(&conn) {
                self.nicks.remove(old.folded());
            }
        }
        self.nicks.insert(nick.folded().to_owned(), conn);
        let prefix = match self.clients.get_mut(&conn) {
            Some(client) => {
                client.set_nick(nick.clone());
                client.prefix().to_owned()
            }
            None => return,
        };
        if let Some(old) = old {
            if old.folded() != nick.folded() {
                self.notify_monitors(old.folded(), old.as_str(), None);
                self.notify_monitors(nick.folded(), nick.as_str(), Some(&prefix));
            }
        }
        if let Some(uid) = self.local_uid(conn) {
            let stamp = self.stamp_of(&ev);
            self.append_user_event(crate::cluster::NetEvent::Nick { uid, nick: nick.as_str().to_owned(), stamp });
        }
        self.check_nick_protection(conn);
    }

    pub(crate) fn handle_user(&mut self, msg: &Message) {
        if self.cur_client().is_some_and(|c| c.registered || c.user().is_some()) {
            self.numeric(ERR_ALREADYREGISTERED, ["You may not reregister"]);
            return;
        }
        // An empty realname is a missing parameter too (Modern IRC), as an empty username is.
        if msg.params.len() < 4 || msg.params[0].is_empty() || msg.params[3].is_empty() {
            self.need_more_params("USER");
            return;
        }
        let limit = self.cfg.limits.user_len.saturating_sub(1).max(1);
        let mut user: String = msg.params[0]
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            .take(limit)
            .collect();
        if user.is_empty() {
            user.push_str("user");
        }
        let realname = truncate(&msg.params[3], self.cfg.limits.realname_len).to_owned();
        if let Some(client) = self.cur_client_mut() {
            client.set_user(format!("~{user}"));
            client.realname = realname;
        }
        self.try_register();
    }

    pub(crate) fn handle_ping(&mut self, msg: &Message) {
        let Some(token) = msg.params.first() else {
            self.numeric(ERR_NOORIGIN, ["No origin specified"]);
            return;
        };
        let server = self.cfg.server_name.clone();
        let reply = self.server_msg("PONG").with_params([server, token.clone()]);
        self.send_msg(self.cur_conn(), reply);
    }

    pub(crate) fn handle_quit(&mut self, msg: &Message) {
        let reason = match msg.params.first().filter(|s| !s.is_empty()) {
            Some(r) => format!("Quit: {}", truncate(r, self.cfg.limits.kick_len)),
            None => "Client Quit".to_owned(),
        };
        self.close(self.cur_conn(), &reason);
    }

    /// Completes registration once NICK and USER are in and CAP negotiation is over.
    pub(crate) fn try_register(&mut self) {
        let Some(client) = self.cur_client() else { return };
        if client.registered || client.cap_negotiating || client.nick().is_none() || client.user().is_none() {
            return;
        }
        // Without a server password, `PASS account:password` logs in (for clients without SASL).
        if self.cfg.password.is_none() && client.account.is_none() {
            let login = client.pass().and_then(|p| p.split_once(':'));
            let login = login.map(|(a, p)| (a.to_owned(), p.to_owned()));
            if let Some(c) = self.cur_client_mut() {
                c.clear_extra(|e| e.pass = None);
            }
            if let Some((account, password)) = login {
                self.attempt_login(&account, password, LoginVia::Pass);
            }
        }
        let Some(client) = self.cur_client() else { return };
        if client.login_pending {
            return;
        }
        if let Some(expected) = &self.cfg.password {
            let given = client.pass().unwrap_or("");
            if !constant_time_eq(given.as_bytes(), expected.as_bytes()) {
                self.numeric(ERR_PASSWDMISMATCH, ["Password incorrect"]);
                self.close(self.cur_conn(), "Bad password");
                return;
            }
        }
        let now_ms = self.now.wall_ms;
        if let Some(client) = self.cur_client().filter(|c| !c.registered) {
            self.invisible_count += usize::from(client.invisible);
            self.registered_count += 1;
            self.max_users = self.max_users.max(self.registered_count);
        }
        let Some(client) = self.cur_client_mut() else { return };
        client.registered = true;
        client.clear_extra(|e| e.pass = None);
        client.signon_ms = now_ms;
        let prefix = client.prefix().to_owned();
        let (folded, nick) = match client.nick() {
            Some(n) => (n.folded().to_owned(), n.as_str().to_owned()),
            None => return,
        };
        self.send_welcome(&prefix);
        self.notify_monitors(&folded, &nick, Some(&prefix));
        if self.cluster.is_some() {
            self.introduce(self.cur_conn());
        }
        let conn = self.cur_conn();
        if let Some(account) = self.clients.get(&conn).and_then(|c| c.account.clone()) {
            self.request_offline(conn, &account);
        } else if self.cfg.accounts_required {
            self.tell_accounts_required(conn, &nick);
        }
        self.check_nick_protection(conn);
    }

    fn send_welcome(&mut self, prefix: &str) {
        let network = self.cfg.network_name.clone();
        let server = self.cfg.server_name.clone();
        let version = self.cfg.version.clone();
        self.numeric(RPL_WELCOME, [format!("Welcome to the {network} IRC Network {prefix}")]);
        self.numeric(RPL_YOURHOST, [format!("Your host is {server}, running version {version}")]);
        let created = rfc3339_ms(self.created_ms);
        self.numeric(RPL_CREATED, [format!("This server was created {created}")]);
        self.numeric(RPL_MYINFO, [server.as_str(), version.as_str(), "Bi", "beIiklmnstov", "beIklov"]);
        self.send_isupport();
        self.send_lusers();
        self.send_motd();
    }

    /// The ISUPPORT tokens, built from the configured limits.
    pub(crate) fn isupport_tokens(&self) -> Vec<String> {
        let l = &self.cfg.limits;
        let t = l.max_targets;
        vec![
            format!("AWAYLEN={}", l.away_len),
            "BOT=B".into(),
            "CASEMAPPING=ascii".into(),
            format!("CHANLIMIT=#:{}", l.channels_per_client),
            "CHANMODES=beI,k,l,imnst".into(),
            format!("CHANNELLEN={}", l.channel_len),
            "CHANTYPES=#".into(),
            format!("CHATHISTORY={}", crate::handlers::history::MAX_HISTORY),
            format!("ELIST={}", crate::handlers::list::ELIST),
            "EXCEPTS=e".into(),
            format!("EXTBAN={},{}", crate::channel::EXTBAN_PREFIX, crate::channel::EXTBAN_TYPES),
            "INVEX=I".into(),
            format!("KICKLEN={}", l.kick_len),
            format!("MAXLIST=b:{b},e:{b},I:{b}", b = l.bans_per_channel),
            format!("MAXTARGETS={t}"),
            format!("MODES={}", l.modes_per_command),
            format!("MONITOR={}", l.monitor_len),
            "MSGREFTYPES=msgid,timestamp".into(),
            format!("NETWORK={}", self.cfg.network_name),
            format!("NICKLEN={}", l.nick_len),
            "PREFIX=(ov)@+".into(),
            "SAFELIST".into(),
            format!("STATUSMSG={}", crate::handlers::messaging::STATUSMSG_PREFIXES),
            format!("TARGMAX=JOIN:,KICK:{t},MONITOR:,NAMES:{t},NOTICE:{t},PART:,PRIVMSG:{t},TAGMSG:{t},WHOIS:1"),
            format!("TOPICLEN={}", l.topic_len),
            format!("USERLEN={}", l.user_len),
            "UTF8ONLY".into(),
            "WHOX".into(),
        ]
    }

    fn send_isupport(&mut self) {
        let tokens = self.isupport_tokens();
        for chunk in tokens.chunks(ISUPPORT_PER_LINE) {
            let mut params: Vec<String> = chunk.to_vec();
            params.push("are supported by this server".into());
            self.numeric(RPL_ISUPPORT, params);
        }
    }

    pub(crate) fn send_lusers(&mut self) {
        // Cluster mode: the network's users and nodes, as far as the replica knows them.
        let (remote, remote_invisible, nodes) = self.remote_counts();
        let registered = self.registered_count;
        let invisible = self.invisible_count.min(registered);
        let unknown = self.clients.len().saturating_sub(registered);
        let channels = self.channels.len();
        let max = self.max_users;
        let (everyone, hidden) = (registered + remote, invisible + remote_invisible);
        self.numeric(
            RPL_LUSERCLIENT,
            [format!(
                "There are {} and {hidden} invisible on {}",
                count((everyone - hidden) as u64, "user", "users"),
                count(1 + nodes as u64, "server", "servers")
            )],
        );
        if unknown > 0 {
            self.numeric(
                RPL_LUSERUNKNOWN,
                [unknown.to_string(), if unknown == 1 { "unknown connection" } else { "unknown connections" }.into()],
            );
        }
        self.numeric(RPL_LUSERCHANNELS, [channels.to_string(), "channels formed".into()]);
        self.numeric(RPL_LUSERME, [format!("I have {} and 0 servers", count(registered as u64, "client", "clients"))]);
        let (n, m) = (registered.to_string(), max.to_string());
        self.numeric(RPL_LOCALUSERS, [n.clone(), m.clone(), format!("Current local users {n}, max {m}")]);
        let (g, gm) = (everyone.to_string(), (max + remote).max(everyone).to_string());
        self.numeric(RPL_GLOBALUSERS, [g.clone(), gm.clone(), format!("Current global users {g}, max {gm}")]);
    }

    pub(crate) fn send_motd(&mut self) {
        if self.cfg.motd.is_empty() {
            self.numeric(ERR_NOMOTD, ["MOTD File is missing"]);
            return;
        }
        let server = self.cfg.server_name.clone();
        self.numeric(RPL_MOTDSTART, [format!("- {server} Message of the day - ")]);
        for line in self.cfg.motd.clone() {
            self.numeric(RPL_MOTD, [format!("- {line}")]);
        }
        self.numeric(RPL_ENDOFMOTD, ["End of /MOTD command."]);
    }

    pub(crate) fn handle_version(&mut self) {
        let (version, server) = (self.cfg.version.clone(), self.cfg.server_name.clone());
        self.numeric(RPL_VERSION, [version, server, "chinwag IRC server".into()]);
        self.send_isupport();
    }

    pub(crate) fn handle_time(&mut self) {
        let server = self.cfg.server_name.clone();
        self.numeric(RPL_TIME, [server, rfc3339_ms(self.now.wall_ms)]);
    }
}
