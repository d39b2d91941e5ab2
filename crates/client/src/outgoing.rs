//! The user's commands, turned into lines for the server: [`Session::command`]. Text waits in
//! the unsent queue while disconnected; everything else needs a connection and says so.

use chinwag_proto::{casefold, Message};

use crate::command::{self, Command, TypingState};
use crate::event::{ChatMessage, Event, MessageKind};
use crate::session::{Credentials, Phase, Room, Session, Unsent, MAX_HELD_COMMANDS, MAX_UNSENT};

/// Every line sent must fit in 512 bytes with the prefix the server adds when relaying it;
/// this is how much of a line we allow for that prefix (`:nick!user@host `).
const RELAY_PREFIX_ALLOWANCE: usize = 120;
/// Longest IRC line body, CRLF included.
const MAX_LINE: usize = chinwag_proto::MAX_BODY_LEN;

impl Session {
    /// Handles one command from the user.
    pub fn command(&mut self, cmd: Command) {
        if self.phase != Phase::Ready && cmd.needs_the_server() {
            return self.hold(cmd);
        }
        match cmd {
            Command::Say(text) => match self.current.clone() {
                Some(target) => self.say(&target, &text, MessageKind::Privmsg),
                None => self.error("you are not in a room: /join general, or /msg NICK TEXT"),
            },
            Command::Me(text) => match self.current.clone() {
                Some(target) => self.say(&target, &text, MessageKind::Action),
                None => self.error("you are not in a room: /join general first"),
            },
            Command::Msg { target, text } => {
                self.open_query(&target);
                self.say(&target, &text, MessageKind::Privmsg);
            }
            Command::Query(target) => {
                self.open_query(&target);
                self.switch(&target);
            }
            Command::Switch(target) => {
                let room = command::room_name(&target);
                if self.rooms.contains_key(&casefold(&room)) {
                    self.switch(&self.rooms[&casefold(&room)].name.clone());
                } else {
                    self.open_query(&target);
                    self.switch(&target);
                }
            }
            Command::Join { rooms, key } => {
                for name in &rooms {
                    self.rooms.entry(casefold(name)).or_insert_with(|| Room { name: name.clone(), ..Room::default() });
                }
                if let Some(first) = rooms.first() {
                    self.switch(first);
                }
                let mut join = Message::new("JOIN").with_param(rooms.join(","));
                if let Some(key) = key {
                    join = join.with_param(key);
                }
                self.send_when_ready(join);
            }
            Command::Part { room, reason } => {
                let Some(room) = room.or_else(|| self.current_room()) else {
                    return self.error("which room? /leave ROOM");
                };
                self.rooms.remove(&casefold(&room));
                if self.current.as_deref().is_some_and(|c| casefold(c) == casefold(&room)) {
                    self.current = self.rooms.values().next().map(|r| r.name.clone());
                    if let Some(next) = self.current.clone() {
                        self.emit(Event::Switched { target: next });
                    }
                }
                let mut part = Message::new("PART").with_param(room);
                if let Some(reason) = reason {
                    part = part.with_param(reason);
                }
                self.send_when_ready(part);
            }
            Command::Topic { room, topic } => {
                let Some(room) = room.or_else(|| self.current_room()) else { return self.error("which room?") };
                let mut msg = Message::new("TOPIC").with_param(room);
                if let Some(topic) = topic {
                    msg = msg.with_param(topic);
                }
                self.send_when_ready(msg);
            }
            Command::Nick(nick) if self.phase == Phase::Ready => self.send(Message::new("NICK").with_param(nick)),
            Command::Nick(nick) => {
                self.emit(Event::Info { text: format!("you will be {nick} once connected") });
                self.cfg.nick = nick;
            }
            Command::Away(reason) => self.send_when_ready(Message::new("AWAY").with_params(reason)),
            Command::Whois(nick) => self.send_when_ready(Message::new("WHOIS").with_param(nick)),
            Command::Names(room) => match room.or_else(|| self.current_room()) {
                Some(room) => {
                    if self.names_asked.len() >= crate::session::MAX_NAMES_ASKED {
                        self.names_asked.pop_front();
                    }
                    let asked = crate::session::NamesAsked { room: casefold(&room), names: Vec::new() };
                    self.names_asked.push_back(asked);
                    self.send_when_ready(Message::new("NAMES").with_param(room));
                }
                None => self.error("which room? /names ROOM"),
            },
            Command::Kick { room, nick, reason } => {
                let Some(room) = room.or_else(|| self.current_room()) else { return self.error("which room?") };
                let msg = Message::new("KICK").with_params([room, nick]).with_params(reason);
                self.send_when_ready(msg);
            }
            Command::Invite { nick, room } => {
                let Some(room) = room.or_else(|| self.current_room()) else { return self.error("which room?") };
                self.send_when_ready(Message::new("INVITE").with_params([nick, room]));
            }
            Command::Mode { target, args } => {
                let target = target.or_else(|| self.current_room()).unwrap_or_else(|| self.nick.clone());
                self.send_when_ready(Message::new("MODE").with_param(target).with_params(args));
            }
            Command::Raw(line) => match Message::parse(&line) {
                Ok(msg) => self.send_when_ready(msg),
                Err(e) => self.error(&format!("not a valid IRC line: {e}")),
            },
            Command::Register { account, password } => self.register(account, password),
            Command::Login { account, password } => self.login(account, password),
            Command::Logout => {
                self.cfg.credentials = None;
                self.pending_credentials = None;
                self.emit(Event::LoggedOut);
                if self.phase != Phase::Disconnected {
                    self.send(Message::new("QUIT").with_param("Logging out"));
                    self.reconnect_requested = true;
                }
            }
            Command::Users => {
                self.user_list.clear();
                self.send_when_ready(Message::new("WHO").with_param("*"));
            }
            Command::Rooms => {
                self.room_list.clear();
                self.send_when_ready(Message::new("LIST"));
            }
            Command::History { limit } => {
                let Some(target) = self.current.clone() else { return self.error("no conversation here") };
                let limit = limit.clamp(1, chinwag_proto::MAX_PARAMS * 100);
                match self.oldest.get(&casefold(&target)).cloned() {
                    Some(oldest) => self.request_history(&target, &format!("msgid={oldest}"), "BEFORE", limit, true, 0),
                    None => self.request_history(&target, "*", "LATEST", limit, true, 0),
                }
            }
            Command::Typing(state) => self.typing(state),
            Command::Help => self.emit(Event::Help { lines: command::help_lines() }),
            // The driver's business (the network, not the session); nothing to send.
            Command::Clear
            | Command::Discover(_)
            | Command::Connect(_)
            | Command::Log(_)
            | Command::Verify { .. }
            | Command::Trust(_) => {}
            Command::ClearMsg { target, text } => self.command(Command::Msg { target, text }),
            Command::Quit(reason) if self.phase == Phase::Ready => self.quit_now(reason),
            Command::Quit(reason) => self.quit_after_ready = Some(reason),
        }
    }

    /// Sends `+typing` to the current room or conversation. Typing is live information: it is
    /// dropped, not queued, while disconnected.
    pub fn typing(&mut self, state: TypingState) {
        let Some(target) = self.current.clone() else { return };
        if self.phase == Phase::Ready && self.has_cap("message-tags") {
            self.send(Message::new("TAGMSG").with_tag("+typing", state.as_str()).with_param(target));
        }
    }

    fn current_room(&self) -> Option<String> {
        self.current.clone().filter(|c| c.starts_with('#'))
    }

    fn switch(&mut self, target: &str) {
        if self.current.as_deref() != Some(target) {
            self.current = Some(target.to_owned());
            self.emit(Event::Switched { target: target.to_owned() });
        }
    }

    pub(crate) fn open_query(&mut self, nick: &str) {
        if !nick.starts_with('#') {
            self.queries.entry(casefold(nick)).or_insert_with(|| nick.to_owned());
        }
    }

    pub(crate) fn error(&mut self, text: &str) {
        self.emit(Event::Error { text: text.to_owned() });
    }

    /// Keeps a command that needs the server until registration finishes (see `on_ready`).
    fn hold(&mut self, cmd: Command) {
        if self.held.len() >= MAX_HELD_COMMANDS {
            let text = format!(
                "not connected, and {MAX_HELD_COMMANDS} commands are already waiting: {} was not sent",
                cmd.name()
            );
            return self.error(&text);
        }
        self.emit(Event::Info { text: format!("not connected: {} will run once connected", cmd.name()) });
        self.held.push_back(cmd);
    }

    /// Sends now if registered. Before that, a JOIN or PART is already remembered in the rooms
    /// to join, and every other command was held (`hold`), so nothing is lost here.
    fn send_when_ready(&mut self, msg: Message) {
        if self.phase == Phase::Ready {
            self.send(msg);
        }
    }

    /// Sends text now, or keeps it for after the reconnect.
    fn say(&mut self, target: &str, text: &str, kind: MessageKind) {
        if self.phase == Phase::Ready {
            self.send_text(target, text, kind);
        } else if self.unsent.len() < MAX_UNSENT {
            self.unsent.push_back(Unsent { target: target.to_owned(), text: text.to_owned(), kind });
            self.emit(Event::Info { text: format!("not connected: will send to {target} once connected") });
        } else {
            let reason = format!("not connected, and {MAX_UNSENT} messages are already waiting");
            self.emit(Event::NotSent { target: target.to_owned(), text: text.to_owned(), reason });
        }
    }

    /// PRIVMSGs for `text`: one per line, each cut to fit the line limit.
    pub(crate) fn send_text(&mut self, target: &str, text: &str, kind: MessageKind) {
        let command = if kind == MessageKind::Notice { "NOTICE" } else { "PRIVMSG" };
        let overhead =
            command.len() + target.len() + 4 + RELAY_PREFIX_ALLOWANCE + if kind == MessageKind::Action { 9 } else { 0 };
        let room = MAX_LINE.saturating_sub(overhead).max(64);
        for line in text.split('\n').map(|l| l.trim_end_matches('\r')).filter(|l| !l.is_empty()) {
            for piece in split_to_fit(line, room) {
                let body =
                    if kind == MessageKind::Action { format!("\u{1}ACTION {piece}\u{1}") } else { piece.to_owned() };
                self.send(Message::new(command).with_params([target, &body]));
                if !self.has_cap("echo-message") {
                    let own = ChatMessage {
                        time: crate::time::now_rfc3339(),
                        conversation: target.to_owned(),
                        from: self.nick.clone(),
                        text: piece.to_owned(),
                        kind,
                        own: true,
                        history: false,
                        msgid: None,
                        mention: false,
                    };
                    self.emit(Event::Message(own));
                }
            }
        }
    }

    fn register(&mut self, account: Option<String>, password: Option<String>) {
        let Some(password) = password else { return self.error("usage: /register [ACCOUNT] PASSWORD") };
        if !self.cfg.passwords_allowed {
            return self.error("refusing to send a password over plaintext to another machine; use TLS");
        }
        let account = account.unwrap_or_else(|| self.nick.clone());
        if casefold(&account) != casefold(&self.nick) {
            self.send(Message::new("NICK").with_param(account.clone()));
        }
        self.pending_credentials = Some(Credentials { account: account.clone(), password: password.clone() });
        self.send(Message::new("REGISTER").with_params([account, "*".into(), password]));
    }

    fn login(&mut self, account: Option<String>, password: Option<String>) {
        let account = account.unwrap_or_else(|| self.nick.clone());
        let Some(password) = password else { return self.error("usage: /login [ACCOUNT] PASSWORD") };
        if !self.cfg.passwords_allowed {
            return self.error("refusing to send a password over plaintext to another machine; use TLS");
        }
        let credentials = Credentials { account: account.clone(), password: password.clone() };
        if self.phase != Phase::Ready {
            self.cfg.credentials = Some(credentials);
            return self.emit(Event::Info { text: format!("will log in as {account} when connected") });
        }
        self.pending_credentials = Some(credentials);
        self.send(Message::new("NICKSERV").with_params(["IDENTIFY".into(), account, password]));
    }
}

/// Cuts `text` into pieces of at most `max` bytes, at a space when one is near the end, and
/// always on a character boundary.
pub fn split_to_fit(text: &str, max: usize) -> Vec<&str> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while rest.len() > max {
        let mut cut = max;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(' ').filter(|&s| s > cut / 2) {
            cut = space;
        }
        pieces.push(&rest[..cut]);
        rest = rest[cut..].trim_start_matches(' ');
    }
    if !rest.is_empty() {
        pieces.push(rest);
    }
    pieces
}
