//! Lines from the server, interpreted: [`Session::receive`]. One explicit `match` on the
//! command; peer data is never trusted to have the parameters it should (a short line is
//! ignored, never a panic).

use std::time::Instant;

use chinwag_proto::{casefold, eq_fold, split_source, Message};

use crate::command::TypingState;
use crate::event::{split_member, ChatMessage, Event, MessageKind, RoomInfo, MEMBER_PREFIXES};
use crate::session::{Batch, Multiline, Phase, Session, MAX_NAMES_SHOWN, WANTED_CAPS};

/// draft/multiline's batch type and continuation tag.
const MULTILINE: &str = "draft/multiline";
const CONCAT_TAG: &str = "draft/multiline-concat";
/// The most of one multiline message the client keeps (the server's bound is far below).
const MAX_MULTILINE_LINES: usize = 1000;
const MAX_MULTILINE_BYTES: usize = 64 * 1024;

/// Channel modes that give a membership prefix, and the prefix (the usual `PREFIX=(qaohv)~&@%+`).
const PREFIX_MODES: [(char, char); 5] = [('q', '~'), ('a', '&'), ('o', '@'), ('h', '%'), ('v', '+')];

fn prefix_for_mode(mode: char) -> Option<char> {
    PREFIX_MODES.iter().find(|(m, _)| *m == mode).map(|(_, p)| *p)
}

impl Session {
    /// Handles one line from the server.
    pub fn receive(&mut self, msg: Message, now: Instant) {
        let p = &msg.params;
        let from = msg.source.as_deref().map(|s| split_source(s).nick).unwrap_or("").to_owned();
        let own = !from.is_empty() && eq_fold(&from, &self.nick);
        match msg.command.to_ascii_uppercase().as_str() {
            "PING" => self.send(Message::new("PONG").with_params(p.iter().cloned())),
            "PONG" => {
                let token = p.last().cloned().unwrap_or_default();
                if let Some((sent_token, sent)) = self.ping.take() {
                    if sent_token == token {
                        let ms = now.saturating_duration_since(sent).as_millis() as u64;
                        self.emit(Event::Lag { ms });
                    } else {
                        self.ping = Some((sent_token, sent));
                    }
                }
            }
            "CAP" => self.on_cap(&msg),
            "AUTHENTICATE" => {
                if let Some(data) = p.first() {
                    self.on_authenticate(data);
                }
            }
            "001" => {
                if let Some(nick) = p.first() {
                    self.nick = nick.clone();
                }
                self.on_ready();
            }
            "900" => {
                if !self.sasl_success_believed() {
                    return;
                }
                let account = p.get(2).cloned().unwrap_or_default();
                if let Some(c) = self.pending_credentials.take() {
                    self.cfg.credentials = Some(c);
                } else if let Some(c) = &self.cfg.credentials {
                    if !eq_fold(&c.account, &account) {
                        self.cfg.credentials = None;
                    }
                }
                self.account = Some(account.clone());
                self.emit(Event::LoggedIn { account });
            }
            "901" => {
                self.account = None;
                self.emit(Event::LoggedOut);
            }
            "903" => self.sasl_succeeded(),
            "902" | "904" | "905" | "906" | "907" => {
                let text = p.last().cloned().unwrap_or_default();
                if self.sasl_failed(&text) {
                    return;
                }
                self.emit(Event::Error { text: format!("login failed: {text}") });
                if self.phase == Phase::Registering {
                    self.end_cap();
                }
            }
            "433" | "432" if self.phase == Phase::Registering => {
                self.nick = format!("{}_", self.nick);
                self.send(Message::new("NICK").with_param(self.nick.clone()));
            }
            "JOIN" => self.on_join(&from, own, p),
            "PART" => {
                let Some(room) = p.first().cloned() else { return };
                let reason = p.get(1).cloned();
                self.forget_member(&room, &from, own);
                self.emit(Event::Parted { room, nick: from, reason, own });
            }
            "KICK" => {
                let (Some(room), Some(nick)) = (p.first().cloned(), p.get(1).cloned()) else { return };
                let me = eq_fold(&nick, &self.nick);
                self.forget_member(&room, &nick, me);
                let reason = p.get(2).cloned();
                self.emit(Event::Kicked { room, nick, by: from, reason, own: me });
            }
            "QUIT" => {
                let key = casefold(&from);
                let rooms: Vec<String> =
                    self.rooms.values_mut().filter_map(|r| r.members.remove(&key).map(|_| r.name.clone())).collect();
                self.emit(Event::Quit { nick: from, reason: p.first().cloned(), rooms });
            }
            "NICK" => {
                let Some(new) = p.first().cloned() else { return };
                if own {
                    self.nick = new.clone();
                    self.cfg.nick = new.clone();
                }
                let (old_key, new_key) = (casefold(&from), casefold(&new));
                for room in self.rooms.values_mut() {
                    if let Some(shown) = room.members.remove(&old_key) {
                        let (prefix, _) = split_member(&shown);
                        room.members.insert(new_key.clone(), format!("{prefix}{new}"));
                    }
                }
                self.emit(Event::NickChanged { old: from, new, own });
            }
            "353" => {
                let (Some(room), Some(names)) = (p.get(2), p.get(3)) else { return };
                // `@dave`, or `@dave!d@host` with userhost-in-names: the prefixes come off
                // before the source is split (whose `@` would otherwise eat `@dave` whole).
                let names = names.split_whitespace().filter_map(|n| {
                    let (prefix, rest) = split_member(n);
                    let nick = split_source(rest).nick;
                    (!nick.is_empty()).then(|| format!("{prefix}{nick}"))
                });
                let folded = casefold(room);
                if let Some(r) = self.rooms.get_mut(&folded) {
                    r.names_buf.extend(names);
                } else if let Some(asked) = self.names_asked.iter_mut().find(|a| a.room == folded) {
                    let room_left = MAX_NAMES_SHOWN.saturating_sub(asked.names.len());
                    asked.names.extend(names.take(room_left));
                }
            }
            "366" => {
                let Some(room) = p.get(1) else { return };
                let folded = casefold(room);
                let mut listed = None;
                if let Some(r) = self.rooms.get_mut(&folded) {
                    let names = std::mem::take(&mut r.names_buf);
                    r.members = names.into_iter().map(|n| (casefold(split_member(&n).1), n)).collect();
                    let members: Vec<String> = r.members.values().cloned().collect();
                    listed = Some(members.clone());
                    let event = Event::Members { room: r.name.clone(), members };
                    self.emit(event);
                }
                // The end of a `/names` the user typed: the names are shown, not only kept.
                if let Some(i) = self.names_asked.iter().position(|a| a.room == folded) {
                    let asked = self.names_asked.remove(i).unwrap_or_default();
                    let names = listed.unwrap_or(asked.names);
                    self.emit(Event::Names { room: room.clone(), names });
                }
            }
            "332" => {
                let (Some(room), Some(topic)) = (p.get(1).cloned(), p.get(2).cloned()) else { return };
                self.emit(Event::Topic { room, topic, by: None });
            }
            "TOPIC" => {
                let (Some(room), Some(topic)) = (p.first().cloned(), p.get(1).cloned()) else { return };
                self.emit(Event::Topic { room, topic, by: Some(from) });
            }
            "PRIVMSG" | "NOTICE" if self.take_multiline_line(&msg) => {}
            "PRIVMSG" | "NOTICE" => self.on_message(&msg, from, own),
            "TAGMSG" => {
                let (Some(target), Some(state)) = (p.first(), msg.tag("+typing").and_then(TypingState::parse)) else {
                    return;
                };
                if !own {
                    let conversation = if target.starts_with('#') { target.clone() } else { from.clone() };
                    self.emit(Event::Typing { conversation, nick: from, state });
                }
            }
            "AWAY" => self.emit(Event::Away { nick: from, reason: p.first().cloned() }),
            "BATCH" => self.on_batch(&msg, now),
            "321" => self.room_list.clear(),
            "322" => {
                let (Some(name), Some(users)) = (p.get(1), p.get(2)) else { return };
                let topic = p.get(3).cloned().unwrap_or_default();
                self.room_list.push(RoomInfo { name: name.clone(), users: users.parse().unwrap_or(0), topic });
            }
            "323" => {
                let rooms = std::mem::take(&mut self.room_list);
                self.emit(Event::Rooms { rooms });
            }
            "352" => {
                if let Some(nick) = p.get(5) {
                    if !self.user_list.iter().any(|n| eq_fold(n, nick)) {
                        self.user_list.push(nick.clone());
                    }
                }
            }
            "315" => {
                let mut users = std::mem::take(&mut self.user_list);
                users.sort_by_key(|n| casefold(n));
                self.emit(Event::Users { users });
            }
            "REGISTER" if p.first().is_some_and(|s| s == "SUCCESS") => {
                let account = p.get(1).cloned().unwrap_or_default();
                self.emit(Event::AccountRegistered { account });
            }
            "FAIL" => {
                let text =
                    format!("{} failed: {}", p.first().map_or("", String::as_str), p.last().map_or("", String::as_str));
                if p.first().is_some_and(|c| c == "REGISTER") {
                    self.pending_credentials = None;
                }
                self.emit(Event::Error { text });
            }
            "WARN" | "NOTE" => {
                let text = p.last().cloned().unwrap_or_default();
                self.emit(Event::Info { text });
            }
            "ERROR" => {
                let text = format!("server: {}", p.first().map_or("", String::as_str));
                self.emit(Event::Info { text });
            }
            "MODE" => {
                self.on_member_modes(p);
                let text = format!("{} {} {}", from, msg.command, p.join(" "));
                self.emit(Event::Info { text });
            }
            "ACCOUNT" | "CHGHOST" | "SETNAME" | "INVITE" => {
                let text = format!("{} {} {}", from, msg.command, p.join(" "));
                self.emit(Event::Info { text });
            }
            cmd if cmd.len() == 3 && cmd.bytes().all(|b| b.is_ascii_digit()) => {
                let Some(text) = crate::numeric::describe(cmd, p) else { return };
                if text.is_empty() {
                    return;
                }
                if crate::numeric::is_about_the_server(cmd) {
                    self.emit(Event::Status { text });
                } else if cmd.starts_with(['4', '5']) {
                    self.emit(Event::Error { text });
                } else {
                    self.emit(Event::Info { text });
                }
            }
            _ => {}
        }
    }

    fn on_cap(&mut self, msg: &Message) {
        let p = &msg.params;
        let Some(verb) = p.get(1).map(|v| v.to_ascii_uppercase()) else { return };
        let list = p.last().cloned().unwrap_or_default();
        let more = p.len() >= 4 && p[2] == "*";
        match verb.as_str() {
            "LS" => {
                for item in list.split_whitespace() {
                    let (name, value) = item.split_once('=').unwrap_or((item, ""));
                    self.offered.insert(name.to_ascii_lowercase(), value.to_owned());
                }
                if more {
                    return;
                }
                let mut want: Vec<&str> =
                    WANTED_CAPS.iter().copied().filter(|c| self.offered.contains_key(*c)).collect();
                let mechanism = self.sasl_mechanism();
                if let Some(c) = &self.cfg.credentials {
                    let why = if !self.cfg.passwords_allowed {
                        Some("the connection is not encrypted")
                    } else if mechanism.is_none() {
                        Some("the server offers neither SASL SCRAM-SHA-256 nor PLAIN")
                    } else {
                        None
                    };
                    match why {
                        None => want.push("sasl"),
                        Some(why) => {
                            let text = format!("not logging in as {}: {why}", c.account);
                            self.emit(Event::Error { text });
                        }
                    }
                }
                if want.is_empty() {
                    self.end_cap();
                } else {
                    self.send(Message::new("CAP").with_params(["REQ".to_owned(), want.join(" ")]));
                }
            }
            "ACK" => {
                for cap in list.split_whitespace() {
                    match cap.strip_prefix('-') {
                        Some(off) => self.caps.remove(off),
                        None => self.caps.insert(cap.to_ascii_lowercase()),
                    };
                }
                if self.cap_pending {
                    if self.caps.contains("sasl") && self.cfg.credentials.is_some() {
                        self.start_sasl();
                    } else {
                        self.end_cap();
                    }
                }
            }
            "NAK" => self.end_cap(),
            "NEW" => {
                let new: Vec<&str> = list.split_whitespace().filter(|c| WANTED_CAPS.contains(c)).collect();
                if !new.is_empty() {
                    self.send(Message::new("CAP").with_params(["REQ".to_owned(), new.join(" ")]));
                }
            }
            "DEL" => {
                for cap in list.split_whitespace() {
                    self.caps.remove(cap);
                }
            }
            _ => {}
        }
    }

    pub(crate) fn end_cap(&mut self) {
        if std::mem::take(&mut self.cap_pending) {
            self.send(Message::new("CAP").with_param("END"));
        }
    }

    fn on_join(&mut self, from: &str, own: bool, p: &[String]) {
        let Some(room) = p.first().cloned() else { return };
        let key = casefold(&room);
        if own {
            let entry = self.rooms.entry(key.clone()).or_default();
            entry.name = room.clone();
            entry.joined = true;
            self.emit(Event::Joined { room: room.clone(), nick: from.to_owned(), own });
            self.on_own_join(&room);
        } else {
            if let Some(r) = self.rooms.get_mut(&key) {
                r.members.insert(casefold(from), from.to_owned());
            }
            self.emit(Event::Joined { room, nick: from.to_owned(), own });
        }
    }

    /// A room MODE that gives or takes a membership prefix (`+o dave`, `-v erin`) changes that
    /// member's prefixes, and the front end gets the room's new member list.
    fn on_member_modes(&mut self, p: &[String]) {
        let (Some(room), Some(modes)) = (p.first(), p.get(1)) else { return };
        let Some(r) = self.rooms.get_mut(&casefold(room)) else { return };
        let mut args = p.iter().skip(2);
        let mut adding = true;
        let mut changed = false;
        for mode in modes.chars() {
            match mode {
                '+' => adding = true,
                '-' => adding = false,
                _ => {
                    // Modes with an argument either way (prefixes, lists, key), and `l` when set.
                    let takes_arg = PREFIX_MODES.iter().any(|(m, _)| *m == mode)
                        || matches!(mode, 'b' | 'e' | 'I' | 'k')
                        || (mode == 'l' && adding);
                    let arg = if takes_arg { args.next() } else { None };
                    let (Some(symbol), Some(nick)) = (prefix_for_mode(mode), arg) else { continue };
                    let Some(shown) = r.members.get_mut(&casefold(nick)) else { continue };
                    let (prefix, bare) = split_member(shown);
                    let mut symbols: Vec<char> = prefix.chars().filter(|c| *c != symbol).collect();
                    if adding {
                        symbols.push(symbol);
                    }
                    symbols.sort_by_key(|c| MEMBER_PREFIXES.iter().position(|p| p == c));
                    *shown = format!("{}{bare}", symbols.into_iter().collect::<String>());
                    changed = true;
                }
            }
        }
        if changed {
            let event = Event::Members { room: r.name.clone(), members: r.members.values().cloned().collect() };
            self.emit(event);
        }
    }

    fn forget_member(&mut self, room: &str, nick: &str, own: bool) {
        let key = casefold(room);
        if own {
            if let Some(r) = self.rooms.get_mut(&key) {
                r.joined = false;
                r.members.clear();
            }
            self.rooms.remove(&key);
        } else if let Some(r) = self.rooms.get_mut(&key) {
            r.members.remove(&casefold(nick));
        }
    }

    fn on_batch(&mut self, msg: &Message, now: Instant) {
        let p = &msg.params;
        let Some(reference) = p.first() else { return };
        if let Some(id) = reference.strip_prefix('+') {
            let kind = p.get(1).cloned().unwrap_or_default();
            let conversation = p.get(2).cloned().unwrap_or_default();
            let request = if kind == "chathistory" {
                let folded = casefold(&conversation);
                let index = self.history_requests.iter().position(|r| r.target == folded);
                index.and_then(|i| self.history_requests.remove(i))
            } else {
                None
            };
            let multiline =
                (kind == MULTILINE).then(|| Box::new(Multiline { opening: msg.clone(), ..Multiline::default() }));
            self.batches.insert(id.to_owned(), Batch { kind, conversation, count: 0, request, multiline });
        } else if let Some(id) = reference.strip_prefix('-') {
            if let Some(batch) = self.batches.remove(id) {
                if batch.kind == "chathistory" {
                    self.history_done(&batch.conversation, batch.count, batch.request);
                }
                if let Some(multiline) = batch.multiline {
                    self.multiline_done(*multiline, now);
                }
            }
        }
    }

    /// A line of a draft/multiline batch is kept for the message (and `true`); any other line
    /// is not (`false`). A message longer than the client keeps is cut there.
    fn take_multiline_line(&mut self, msg: &Message) -> bool {
        let Some(batch) = msg.tag("batch").and_then(|b| self.batches.get_mut(b)) else { return false };
        let Some(multiline) = batch.multiline.as_mut() else { return false };
        let text = msg.params.get(1).map(String::as_str).unwrap_or_default();
        if multiline.lines >= MAX_MULTILINE_LINES || multiline.text.len() + text.len() > MAX_MULTILINE_BYTES {
            return true;
        }
        if multiline.lines > 0 && msg.tag(CONCAT_TAG).is_none() {
            multiline.text.push('\n');
        }
        multiline.text.push_str(text);
        multiline.lines += 1;
        multiline.command.get_or_insert_with(|| msg.command.to_ascii_uppercase());
        true
    }

    /// A draft/multiline batch ended: its lines are one message, from the opening BATCH's
    /// source with its tags (msgid, time, the enclosing batch), its text the lines joined.
    fn multiline_done(&mut self, multiline: Multiline, now: Instant) {
        let Multiline { opening, command, text, lines } = multiline;
        if lines == 0 {
            return;
        }
        let target = opening.params.get(2).cloned().unwrap_or_default();
        let message = Message {
            tags: opening.tags,
            source: opening.source,
            command: command.unwrap_or_else(|| "PRIVMSG".into()),
            params: vec![target, text],
        };
        self.receive(message, now);
    }

    fn on_message(&mut self, msg: &Message, from: String, own: bool) {
        let (Some(target), Some(raw_text)) = (msg.params.first(), msg.params.get(1)) else { return };
        let notice = msg.command.eq_ignore_ascii_case("NOTICE");
        let is_server = msg.source.as_deref().is_none_or(|s| !s.contains('!')) || target == "*";
        // The server's own notices, and private notices (mostly services answering, NickServ):
        // shown where the user is, as the server's and not as the client's own lines, rather
        // than opening a conversation nobody can reply to.
        if notice && (is_server || (!own && !target.starts_with('#'))) {
            let from = if from.is_empty() { "server".to_owned() } else { from };
            self.emit(Event::Notice { from, text: raw_text.clone() });
            return;
        }
        let (kind, text) = match raw_text.strip_prefix("\u{1}ACTION ") {
            Some(action) => (MessageKind::Action, action.trim_end_matches('\u{1}').to_owned()),
            None if raw_text.starts_with('\u{1}') => return,
            None if notice => (MessageKind::Notice, raw_text.clone()),
            None => (MessageKind::Privmsg, raw_text.clone()),
        };
        let to_room = target.starts_with('#');
        let conversation = if to_room || own { target.clone() } else { from.clone() };
        let folded = casefold(&conversation);
        let msgid = msg.tag("msgid").map(str::to_owned);
        // A batch counts every message it carries, repeats included, so a full page of gap
        // fill is recognised as full and the next page is asked for.
        let batch = msg.tag("batch").and_then(|b| self.batches.get_mut(b));
        let (history, older, first_in_batch) = match batch {
            Some(b) => {
                b.count += 1;
                (true, b.request.as_ref().is_some_and(|r| r.older), b.count == 1)
            }
            None => (false, false, false),
        };
        if let Some(id) = &msgid {
            if !older {
                self.newest.insert(folded.clone(), id.clone());
            }
            // A scrollback batch is in time order, so its first message is the new oldest.
            if (older && first_in_batch) || !self.oldest.contains_key(&folded) {
                self.oldest.insert(folded.clone(), id.clone());
            }
            if !self.first_sighting(id) {
                return;
            }
        }
        if !to_room && !is_server {
            self.open_query(&conversation);
        }
        let mention = !own && (!to_room || mentions(&text, &self.nick));
        let time = msg.tag("time").map(str::to_owned).unwrap_or_else(crate::time::now_rfc3339);
        let chat = ChatMessage { time, conversation, from, text, kind, own, history, msgid, mention };
        self.emit(Event::Message(chat));
    }
}

/// Whether `text` names `nick` as a word (case-insensitively).
pub fn mentions(text: &str, nick: &str) -> bool {
    text.split(|c: char| !(c.is_alphanumeric() || "[]\\`_^{|}-".contains(c))).any(|w| eq_fold(w, nick))
}
