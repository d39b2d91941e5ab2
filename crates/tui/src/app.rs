//! The screen's state, folded from the client's [`Event`]s and the user's keys. No terminal
//! here: `view.rs` draws an [`App`], and the run loop in `lib.rs` feeds it. Time comes in as an
//! argument, so typing indicators and their expiry are testable.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use chinwag_client::command::{self, Command};
use chinwag_client::event::{split_member, MEMBER_PREFIXES};
use chinwag_client::numeric::count;
use chinwag_client::typing::TypingSender;
use chinwag_client::{Event, MessageKind, Security, TlsInfo, TypingState};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

use crate::input::Input;

/// Lines kept per buffer; older ones are dropped (and can be fetched again with PageUp).
pub const MAX_LINES: usize = 5_000;
/// How long an `active` typing notification lasts without a refresh (IRCv3 typing).
pub const ACTIVE_EXPIRY: Duration = Duration::from_secs(6);
/// How long a `paused` one lasts.
pub const PAUSED_EXPIRY: Duration = Duration::from_secs(30);
/// How many older messages one PageUp at the top asks for.
pub const HISTORY_PAGE: usize = 50;
/// Room names kept from the server's list for Tab completion; a longer list is cut.
pub const MAX_LISTED_ROOMS: usize = 5_000;
/// The name of the buffer for server messages.
pub const STATUS: &str = "status";
/// The name of the buffer `/help` opens; `*` is in no nick or room name, so it is no one's.
pub const HELP: &str = "*help*";
/// The keys, as `/help` lists them after the commands.
pub const KEY_HELP: [&str; 9] = [
    "Enter                            send the line (a paste keeps its line breaks)",
    "Tab                              complete a nick or a room",
    "Up / Down                        the lines typed before",
    "PageUp / PageDown                scroll; PageUp at the top fetches older messages",
    "Alt-1 … Alt-9                    go to window 1 … 9 (1 is status)",
    "Ctrl-N / Ctrl-P, Alt-→ / Alt-←   next / previous window",
    "Ctrl-A / Ctrl-E                  start / end of the line",
    "Ctrl-U / Ctrl-W                  delete to the start / the word before the cursor",
    "Ctrl-C                           quit (twice: at once, without waiting for the server)",
];

/// One line in a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// RFC 3339 UTC; lines are kept in this order.
    pub time: String,
    pub kind: LineKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    Message {
        from: String,
        text: String,
        kind: MessageKind,
        own: bool,
        mention: bool,
    },
    /// Joins, parts, topics, server replies.
    Notice {
        text: String,
    },
    Error {
        text: String,
    },
    /// A notice from the server or a service, drawn apart from the client's own lines.
    Server {
        from: String,
        text: String,
    },
}

/// A room, a private conversation, or the status buffer.
#[derive(Debug, Clone, Default)]
pub struct Buffer {
    pub name: String,
    pub lines: Vec<Line>,
    /// Messages arrived while another buffer was shown.
    pub unread: usize,
    /// Whether one of those named us or was private.
    pub mention: bool,
    pub topic: String,
    /// Members with their prefixes, sorted.
    pub members: Vec<String>,
    /// Lines scrolled up from the bottom.
    pub scroll: usize,
    /// A history request is on its way.
    pub loading: bool,
    /// The server had nothing older.
    pub history_done: bool,
    /// Message ids shown, to skip repeats.
    ids: std::collections::HashSet<String>,
}

impl Buffer {
    fn new(name: &str) -> Buffer {
        Buffer { name: name.to_owned(), ..Buffer::default() }
    }

    pub fn is_room(&self) -> bool {
        self.name.starts_with('#')
    }

    /// A room or a private conversation, rather than the status or help window.
    pub fn is_conversation(&self) -> bool {
        self.name != STATUS && self.name != HELP
    }

    /// Inserts in time order (history arrives older than what is shown).
    fn push(&mut self, line: Line) {
        let at = self.lines.partition_point(|l| l.time <= line.time);
        self.lines.insert(at, line);
        if self.lines.len() > MAX_LINES {
            self.lines.remove(0);
        }
    }

    fn notice(&mut self, text: String, time: &str) {
        self.push(Line { time: time.to_owned(), kind: LineKind::Notice { text } });
    }
}

/// The connection as the status bar shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    Registering,
    Ready,
    Down(String),
}

/// What the run loop should do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Send(Command),
    /// Stop now (the session has closed, or Ctrl-C twice).
    Exit,
}

/// The whole screen state.
#[derive(Debug)]
pub struct App {
    /// Status first, then rooms and conversations in the order they appeared.
    pub buffers: Vec<Buffer>,
    pub current: usize,
    pub nick: String,
    pub server: String,
    security: Security,
    pub connection: Connection,
    pub tls: Option<TlsInfo>,
    pub lag_ms: Option<u64>,
    pub input: Input,
    /// (folded conversation, nick) → state and when it lapses.
    typing: HashMap<(String, String), (TypingState, Instant)>,
    typing_out: TypingSender,
    /// The rooms of the server's last list (`/rooms`), for Tab completion beside joined ones.
    listed_rooms: Vec<String>,
    /// The session has ended.
    pub closed: bool,
    /// Why the session stopped on its own, to repeat once the screen is gone.
    pub fatal: Option<String>,
    /// Ctrl-C was pressed once; a second press exits even without the server.
    quit_requested: bool,
    /// Message-pane height at the last draw, for PageUp/PageDown.
    pub page: usize,
    /// The wall clock for lines that carry no server time (RFC 3339); tests fix it.
    pub clock: fn() -> String,
    /// The time zone times are shown in.
    pub zone: crate::view::Zone,
}

impl App {
    pub fn new(server: &str, security: Security, nick: &str) -> App {
        App {
            buffers: vec![Buffer::new(STATUS)],
            current: 0,
            nick: nick.to_owned(),
            server: server.to_owned(),
            security,
            connection: Connection::Connecting,
            tls: None,
            lag_ms: None,
            input: Input::default(),
            typing: HashMap::new(),
            typing_out: TypingSender::default(),
            listed_rooms: Vec::new(),
            closed: false,
            fatal: None,
            quit_requested: false,
            page: 10,
            clock: chinwag_client::time::now_rfc3339,
            zone: crate::view::Zone::Local,
        }
    }

    /// How the server is reached (for the lock in the status bar).
    pub fn server_security(&self) -> Security {
        self.security
    }

    pub fn current_buffer(&self) -> &Buffer {
        &self.buffers[self.current]
    }

    fn index_of(&self, name: &str) -> Option<usize> {
        self.buffers.iter().position(|b| b.name.eq_ignore_ascii_case(name))
    }

    /// The buffer called `name`, created at the end if new.
    fn buffer(&mut self, name: &str) -> &mut Buffer {
        let index = match self.index_of(name) {
            Some(i) => i,
            None => {
                self.buffers.push(Buffer::new(name));
                self.buffers.len() - 1
            }
        };
        &mut self.buffers[index]
    }

    fn status(&mut self, text: String) {
        let time = (self.clock)();
        self.buffers[0].notice(text, &time);
    }

    /// Opens the help window (made anew each time, so it never grows) with `lines` and the
    /// keys, and shows it: help gets a window of its own rather than burying the conversation
    /// being read, which is one Alt-digit or Ctrl-P away.
    fn open_help(&mut self, lines: Vec<String>) {
        let time = (self.clock)();
        let b = self.buffer(HELP);
        b.lines.clear();
        b.scroll = 0;
        b.notice("commands:".into(), &time);
        for text in lines {
            b.notice(text, &time);
        }
        b.notice("keys:".into(), &time);
        for text in KEY_HELP {
            b.notice(text.into(), &time);
        }
        if let Some(i) = self.index_of(HELP) {
            self.show(i);
        }
    }

    fn here(&mut self, kind: LineKind) {
        let current = self.current;
        let time = (self.clock)();
        self.buffers[current].push(Line { time, kind });
    }

    /// Folds one event from the client into the screen.
    pub fn apply(&mut self, event: Event, now: Instant) {
        let time = (self.clock)();
        match event {
            Event::Connecting { server, .. } => {
                self.connection = Connection::Connecting;
                self.status(format!("connecting to {server}"));
            }
            Event::Connected { server, tls, .. } => {
                self.connection = Connection::Registering;
                self.status(match &tls {
                    Some(t) => format!("connected to {server} (TLS, {:?} certificate {})", t.trust, t.fingerprint),
                    None => format!("connected to {server} without TLS"),
                });
                self.tls = tls;
            }
            Event::Ready { nick } => {
                self.connection = Connection::Ready;
                self.status(format!("you are {nick}"));
                self.nick = nick;
            }
            Event::Disconnected { reason } => {
                self.connection = Connection::Down(reason.clone());
                self.lag_ms = None;
                for b in &mut self.buffers {
                    b.members.clear();
                    b.notice(format!("disconnected: {reason}"), &time);
                }
            }
            Event::Reconnecting { delay_ms } => {
                let text = format!("reconnecting in {:.1} s", delay_ms as f64 / 1000.0);
                self.status(text.clone());
                self.connection = Connection::Down(text);
            }
            // Failed attempts are the connection's news, not the conversation's.
            Event::ConnectFailed { reason, .. } => {
                let time = (self.clock)();
                self.buffers[0].push(Line { time, kind: LineKind::Error { text: reason.clone() } });
                self.connection = Connection::Down(reason);
            }
            Event::Status { text } => self.status(text),
            Event::Message(m) => {
                self.typing.remove(&(m.conversation.to_lowercase(), m.from.to_lowercase()));
                let is_current = self.index_of(&m.conversation) == Some(self.current);
                let b = self.buffer(&m.conversation);
                if let Some(id) = &m.msgid {
                    // The session drops repeats already; this is a second line of defence,
                    // bounded like the lines themselves.
                    if b.ids.len() > 2 * MAX_LINES {
                        b.ids.clear();
                    }
                    if !b.ids.insert(id.clone()) {
                        return;
                    }
                }
                if !is_current && !m.own && !m.history {
                    b.unread += 1;
                    b.mention |= m.mention;
                }
                // A message of several lines (draft/multiline) is shown as its lines, each as
                // a line of the conversation (a line break is never drawn inside one).
                for text in m.text.split('\n') {
                    let (from, text, time) = (m.from.clone(), text.to_owned(), m.time.clone());
                    let kind = LineKind::Message { from, text, kind: m.kind, own: m.own, mention: m.mention };
                    b.push(Line { time, kind });
                }
            }
            Event::Joined { room, nick, own } => {
                if own && self.current == 0 {
                    self.buffer(&room);
                    if let Some(i) = self.index_of(&room) {
                        self.show(i);
                    }
                }
                let b = self.buffer(&room);
                if !own && !b.members.iter().any(|m| bare(m).eq_ignore_ascii_case(&nick)) {
                    b.members.push(nick.clone());
                    sort_members(&mut b.members);
                }
                b.notice(format!("--> {nick} joined {room}"), &time);
            }
            Event::Kicked { room, by, reason, own: true, .. } => {
                self.close_buffer(&room);
                let why = reason.map(|r| format!(" ({r})")).unwrap_or_default();
                self.here(LineKind::Error { text: format!("{by} kicked you from {room}{why}") });
            }
            Event::Parted { room, nick, reason, own } => {
                if own {
                    self.close_buffer(&room);
                    self.status(format!("you left {room}"));
                } else if let Some(i) = self.index_of(&room) {
                    let b = &mut self.buffers[i];
                    b.members.retain(|m| !bare(m).eq_ignore_ascii_case(&nick));
                    b.notice(format!("<-- {nick} left{}", paren(reason)), &time);
                }
            }
            Event::Kicked { room, nick, by, reason, own: false } => {
                let by_me = by.eq_ignore_ascii_case(&self.nick);
                if let Some(i) = self.index_of(&room) {
                    let b = &mut self.buffers[i];
                    b.members.retain(|m| !bare(m).eq_ignore_ascii_case(&nick));
                    let text = if by_me {
                        format!("<-- you kicked {nick} from {room}{}", paren(reason))
                    } else {
                        format!("<-- {nick} was kicked by {by}{}", paren(reason))
                    };
                    b.notice(text, &time);
                }
            }
            Event::Quit { nick, reason, rooms } => {
                for room in rooms {
                    if let Some(i) = self.index_of(&room) {
                        let b = &mut self.buffers[i];
                        b.members.retain(|m| !bare(m).eq_ignore_ascii_case(&nick));
                        b.notice(format!("<-- {nick} quit{}", paren(reason.clone())), &time);
                    }
                }
            }
            Event::NickChanged { old, new, own } => {
                if own {
                    self.nick = new.clone();
                }
                for b in &mut self.buffers {
                    if let Some(m) = b.members.iter_mut().find(|m| bare(m).eq_ignore_ascii_case(&old)) {
                        let (prefix, _) = split_member(m);
                        *m = format!("{prefix}{new}");
                        b.notice(format!("{old} is now known as {new}"), &time);
                    }
                    if b.name.eq_ignore_ascii_case(&old) {
                        b.name = new.clone();
                    }
                }
            }
            Event::Topic { room, topic, by } => {
                let b = self.buffer(&room);
                b.topic = topic.clone();
                let text = match by {
                    Some(by) => format!("{by} set the topic: {topic}"),
                    None => format!("topic: {topic}"),
                };
                b.notice(text, &time);
            }
            Event::Members { room, mut members } => {
                sort_members(&mut members);
                self.buffer(&room).members = members;
            }
            Event::Names { room, mut names } => {
                sort_members(&mut names);
                let text = match names.len() {
                    0 => format!("nobody visible in {room}"),
                    n => format!("{} in {room}: {}", count(n, "name", "names"), names.join(" ")),
                };
                self.here(LineKind::Notice { text });
            }
            // While logging in, the server's notices are about the connection: the status window's.
            Event::Notice { from, text } if self.connection != Connection::Ready => {
                let time = (self.clock)();
                self.buffers[0].push(Line { time, kind: LineKind::Server { from, text } });
            }
            Event::Notice { from, text } => self.here(LineKind::Server { from, text }),
            Event::Typing { conversation, nick, state } => {
                let key = (conversation.to_lowercase(), nick.to_lowercase());
                match state {
                    TypingState::Done => {
                        self.typing.remove(&key);
                    }
                    TypingState::Active => {
                        self.typing.insert(key, (state, now + ACTIVE_EXPIRY));
                    }
                    TypingState::Paused => {
                        self.typing.insert(key, (state, now + PAUSED_EXPIRY));
                    }
                }
            }
            Event::Switched { target } => {
                self.buffer(&target);
                if let Some(i) = self.index_of(&target) {
                    self.show(i);
                }
            }
            Event::HistoryEnd { conversation, count, older } => {
                if let Some(i) = self.index_of(&conversation) {
                    let b = &mut self.buffers[i];
                    b.loading = false;
                    if older && count == 0 {
                        b.history_done = true;
                    }
                }
            }
            Event::Rooms { rooms } => {
                self.listed_rooms = rooms.iter().take(MAX_LISTED_ROOMS).map(|r| r.name.clone()).collect();
                let list: Vec<String> = rooms.iter().map(|r| format!("{} ({}) {}", r.name, r.users, r.topic)).collect();
                for line in list {
                    self.here(LineKind::Notice { text: line });
                }
            }
            Event::Users { users } => self.here(LineKind::Notice { text: format!("online: {}", users.join(" ")) }),
            Event::Away { nick, reason } => self.status(match reason {
                Some(r) => format!("{nick} is away: {r}"),
                None => format!("{nick} is back"),
            }),
            Event::LoggedIn { account } => self.status(format!("logged in as {account}")),
            Event::LoggedOut => self.status("logged out".into()),
            Event::AccountRegistered { account } => self.status(format!("account {account} registered")),
            Event::Info { text } => self.here(LineKind::Notice { text }),
            Event::Help { lines } => self.open_help(lines),
            Event::Error { text } => self.here(LineKind::Error { text }),
            Event::NotSent { target, text, reason } => {
                self.here(LineKind::Error { text: format!("not sent to {target} ({reason}): {text}") });
            }
            Event::Lag { ms } => self.lag_ms = Some(ms),
            Event::Fatal { text } => {
                self.fatal = Some(text.clone());
                self.connection = Connection::Down("stopped".into());
                self.status(text.clone());
                self.here(LineKind::Error { text });
            }
            Event::Closed => self.closed = true,
        }
    }

    /// Removes a room's buffer after we left it.
    fn close_buffer(&mut self, name: &str) {
        if let Some(i) = self.index_of(name) {
            if i > 0 {
                self.buffers.remove(i);
                self.current = self.current.min(self.buffers.len() - 1);
            }
        }
    }

    /// Shows buffer `i`, clearing its unread marks.
    fn show(&mut self, i: usize) {
        if i < self.buffers.len() && i != self.current {
            self.current = i;
            self.typing_out.reset();
        }
        let b = &mut self.buffers[self.current];
        b.unread = 0;
        b.mention = false;
    }

    /// Who is typing in the current buffer, as the line above the input says it.
    pub fn typing_line(&self, now: Instant) -> Option<String> {
        let here = self.current_buffer().name.to_lowercase();
        let mut nicks: Vec<&str> = self
            .typing
            .iter()
            .filter(|((conv, _), (state, until))| *conv == here && *until > now && *state == TypingState::Active)
            .map(|((_, nick), _)| nick.as_str())
            .collect();
        nicks.sort_unstable();
        match nicks.as_slice() {
            [] => None,
            [one] => Some(format!("{one} is typing…")),
            [a, b] => Some(format!("{a} and {b} are typing…")),
            _ => Some("several people are typing…".into()),
        }
    }

    /// Timers: expired typing indicators, and our own `paused`.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        self.typing.retain(|_, (_, until)| *until > now);
        match self.typing_out.tick(now) {
            Some(state) if self.current_buffer().is_conversation() => vec![Action::Send(Command::Typing(state))],
            _ => Vec::new(),
        }
    }

    /// Handles a paste: text goes into the input, newlines and all.
    pub fn paste(&mut self, text: &str, now: Instant) -> Vec<Action> {
        self.input.insert(text);
        self.typed(now)
    }

    fn typed(&mut self, now: Instant) -> Vec<Action> {
        let is_command = self.input.text().starts_with('/');
        match self.typing_out.edited(now, self.input.is_empty() || is_command) {
            Some(state) if self.current_buffer().is_conversation() => vec![Action::Send(Command::Typing(state))],
            _ => Vec::new(),
        }
    }

    /// Handles one key.
    pub fn key(&mut self, key: KeyEvent, now: Instant) -> Vec<Action> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        match key.code {
            KeyCode::Char('c') if ctrl => {
                if self.quit_requested || self.closed {
                    return vec![Action::Exit];
                }
                self.quit_requested = true;
                self.here(LineKind::Notice { text: "quitting… (Ctrl-C again to stop at once)".into() });
                return vec![Action::Send(Command::Quit(None))];
            }
            KeyCode::Char('n') if ctrl => return self.switch_by(1),
            KeyCode::Char('p') if ctrl => return self.switch_by(-1),
            KeyCode::Right if alt => return self.switch_by(1),
            KeyCode::Left if alt => return self.switch_by(-1),
            KeyCode::Char(d @ '1'..='9') if alt => {
                let i = d as usize - '1' as usize;
                return if i < self.buffers.len() { self.switch_to(i) } else { Vec::new() };
            }
            KeyCode::Char('u') if ctrl => self.input.kill_to_start(),
            KeyCode::Char('w') if ctrl => self.input.kill_word(),
            KeyCode::Char('a') if ctrl => self.input.home(),
            KeyCode::Char('e') if ctrl => self.input.end(),
            KeyCode::Char(c) => {
                self.input.insert(c.encode_utf8(&mut [0; 4]));
                return self.typed(now);
            }
            KeyCode::Backspace => {
                self.input.backspace();
                return self.typed(now);
            }
            KeyCode::Delete => self.input.delete(),
            KeyCode::Left => self.input.left(),
            KeyCode::Right => self.input.right(),
            KeyCode::Home => self.input.home(),
            KeyCode::End => self.input.end(),
            KeyCode::Up => self.input.history_up(),
            KeyCode::Down => self.input.history_down(),
            KeyCode::Tab => {
                let b = self.current_buffer();
                let nicks: Vec<String> = b.members.iter().map(|m| bare(m).to_owned()).collect();
                let joined = self.buffers.iter().filter(|b| b.is_room()).map(|b| b.name.clone());
                let rooms: Vec<String> = joined.chain(self.listed_rooms.iter().cloned()).collect();
                self.input.complete(&nicks, &rooms);
            }
            KeyCode::PageUp => return self.page_up(),
            KeyCode::PageDown => {
                let b = &mut self.buffers[self.current];
                b.scroll = b.scroll.saturating_sub(self.page.max(1));
            }
            KeyCode::Enter => return self.enter(),
            _ => {}
        }
        Vec::new()
    }

    fn switch_by(&mut self, step: isize) -> Vec<Action> {
        let n = self.buffers.len() as isize;
        let i = (self.current as isize + step).rem_euclid(n) as usize;
        self.switch_to(i)
    }

    fn switch_to(&mut self, i: usize) -> Vec<Action> {
        self.show(i);
        let name = self.current_buffer().name.clone();
        if !self.current_buffer().is_conversation() {
            Vec::new()
        } else {
            vec![Action::Send(Command::Switch(name))]
        }
    }

    /// Scrolls up a page; at the top of what is loaded, asks the server for older messages.
    fn page_up(&mut self) -> Vec<Action> {
        let page = self.page.max(1);
        let b = &mut self.buffers[self.current];
        let top = b.lines.len().saturating_sub(page);
        b.scroll = (b.scroll + page).min(top);
        if b.scroll >= top && !b.loading && !b.history_done && b.is_conversation() {
            b.loading = true;
            return vec![Action::Send(Command::History { limit: HISTORY_PAGE })];
        }
        Vec::new()
    }

    fn enter(&mut self) -> Vec<Action> {
        let line = self.input.submit();
        self.typing_out.reset();
        self.buffers[self.current].scroll = 0;
        match command::parse(&line, false) {
            Ok(None) => Vec::new(),
            Ok(Some(Command::Clear)) => {
                let b = &mut self.buffers[self.current];
                b.lines.clear();
                b.scroll = 0;
                Vec::new()
            }
            Ok(Some(Command::Help)) => {
                self.open_help(command::help_lines());
                Vec::new()
            }
            Ok(Some(Command::Say(_))) if !self.current_buffer().is_conversation() => {
                let text = format!("this is the {} window: /join a room or /msg someone", self.current_buffer().name);
                self.here(LineKind::Error { text });
                Vec::new()
            }
            Ok(Some(Command::Quit(reason))) => {
                self.quit_requested = true;
                vec![Action::Send(Command::Quit(reason))]
            }
            Ok(Some(Command::Register { password: None, .. })) | Ok(Some(Command::Login { password: None, .. })) => {
                self.here(LineKind::Error {
                    text: "type the password after the command (it is not shown anywhere else)".into(),
                });
                Vec::new()
            }
            Ok(Some(cmd)) => vec![Action::Send(cmd)],
            Err(e) => {
                self.here(LineKind::Error { text: e.to_string() });
                Vec::new()
            }
        }
    }
}

/// ` (reason)`, or nothing without one.
fn paren(reason: Option<String>) -> String {
    reason.filter(|r| !r.is_empty()).map(|r| format!(" ({r})")).unwrap_or_default()
}

/// A member's nick without its `@`/`+` prefixes.
pub fn bare(member: &str) -> &str {
    split_member(member).1
}

/// By highest prefix (founders, admins, operators, half-operators, voiced, then everyone),
/// each alphabetically.
fn sort_members(members: &mut [String]) {
    members.sort_by_key(|m| {
        let rank = m.chars().next().and_then(|c| MEMBER_PREFIXES.iter().position(|p| *p == c));
        (rank.unwrap_or(MEMBER_PREFIXES.len()), bare(m).to_lowercase())
    });
}
