//! What the session tells a front end: [`Event`]s, already interpreted (a room message, a join,
//! someone typing), never raw lines. Scriptable mode prints them with [`Event::plain`] or as
//! JSON (`serde`), the full-screen client folds them into its screen state.

use serde::Serialize;

use crate::command::TypingState;
use crate::endpoint::Security;
use crate::transport::TlsInfo;

/// One chat message (PRIVMSG, NOTICE or action), live or from history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChatMessage {
    /// When the server received it (server-time, RFC 3339 UTC), or when we did.
    pub time: String,
    /// The room, or for a private message the other person's nick.
    pub conversation: String,
    /// Who sent it.
    pub from: String,
    pub text: String,
    pub kind: MessageKind,
    /// Sent by us (our echo, or our own copy from history).
    pub own: bool,
    /// Replayed from history (scrollback, gap fill after a reconnect) rather than live.
    pub history: bool,
    /// The server's id for it, for de-duplication and history paging.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
    /// Names us (our nick as a word), or is private: worth a highlight.
    pub mention: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    Privmsg,
    Notice,
    Action,
}

/// A room in the server's list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomInfo {
    pub name: String,
    pub users: u32,
    pub topic: String,
}

/// Something the front end should know.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    Connecting {
        server: String,
        attempt: u32,
    },
    Connected {
        server: String,
        security: Security,
        tls: Option<TlsInfo>,
    },
    /// Registration finished; we are on the server as `nick`.
    Ready {
        nick: String,
    },
    Disconnected {
        reason: String,
    },
    /// A connection attempt failed (the next one follows `Reconnecting`); `reason` names the
    /// server.
    ConnectFailed {
        server: String,
        reason: String,
    },
    Reconnecting {
        delay_ms: u64,
    },
    LoggedIn {
        account: String,
    },
    LoggedOut,
    AccountRegistered {
        account: String,
    },
    Message(ChatMessage),
    Joined {
        room: String,
        nick: String,
        own: bool,
    },
    Parted {
        room: String,
        nick: String,
        reason: Option<String>,
        own: bool,
    },
    Kicked {
        room: String,
        nick: String,
        by: String,
        reason: Option<String>,
        own: bool,
    },
    Quit {
        nick: String,
        reason: Option<String>,
        rooms: Vec<String>,
    },
    NickChanged {
        old: String,
        new: String,
        own: bool,
    },
    Topic {
        room: String,
        topic: String,
        by: Option<String>,
    },
    /// The full member list of a room (with `@`/`+` prefixes), after NAMES.
    Members {
        room: String,
        members: Vec<String>,
    },
    /// The answer to a `/names` the user typed (with `@`/`+` prefixes).
    Names {
        room: String,
        names: Vec<String>,
    },
    /// A notice from the server itself or a service (NickServ), not part of a conversation.
    Notice {
        from: String,
        text: String,
    },
    Typing {
        conversation: String,
        nick: String,
        state: TypingState,
    },
    Away {
        nick: String,
        reason: Option<String>,
    },
    Rooms {
        rooms: Vec<RoomInfo>,
    },
    Users {
        users: Vec<String>,
    },
    /// The current room or conversation changed (join, query).
    Switched {
        target: String,
    },
    /// A history batch ended; `older` for scrollback (CHATHISTORY BEFORE).
    HistoryEnd {
        conversation: String,
        count: usize,
        older: bool,
    },
    /// Lines to show as they are: server replies, help, WHOIS.
    Info {
        text: String,
    },
    /// What the server says about itself rather than to a conversation (LUSERS, the MOTD): the
    /// full-screen client keeps it in the status window.
    Status {
        text: String,
    },
    Error {
        text: String,
    },
    /// A message that could not be sent, and why.
    NotSent {
        target: String,
        text: String,
        reason: String,
    },
    /// Round-trip time of the last PING.
    Lag {
        ms: u64,
    },
    Help {
        lines: Vec<String>,
    },
    /// The session stopped for good (a changed certificate, a refused login policy).
    Fatal {
        text: String,
    },
    /// The session ended after `/quit` or end of input.
    Closed,
}

/// The membership prefixes a room member may carry in NAMES, highest first (founder, admin,
/// operator, half-operator, voice). No nick may start with one, so they are never part of it.
pub const MEMBER_PREFIXES: [char; 5] = ['~', '&', '@', '%', '+'];

/// A member as shown (`@dave`) split into its prefixes (`@`) and its nick (`dave`).
pub fn split_member(member: &str) -> (&str, &str) {
    let nick = member.trim_start_matches(MEMBER_PREFIXES);
    (&member[..member.len() - nick.len()], nick)
}

/// `HH:MM` of an RFC 3339 time, or the whole string if it is shorter than expected.
pub fn clock(time: &str) -> &str {
    time.get(11..16).unwrap_or(time)
}

impl Event {
    /// [`Event::plain`] as the lines to print: one, but for a message of several lines
    /// (draft/multiline), whose further lines come under the first, indented past its header,
    /// so that no line of someone's text passes for an event. Only a message's text breaks a
    /// line: a line break anywhere else stays inside its line (to be shown, not obeyed).
    pub fn plain_lines(&self) -> Vec<String> {
        let Event::Message(m) = self else { return self.plain().into_iter().collect() };
        let when = clock(&m.time);
        let c = &m.conversation;
        let head = match m.kind {
            MessageKind::Privmsg => format!("[{when}] [{c}] <{}> ", m.from),
            MessageKind::Notice => format!("[{when}] [{c}] -{}- ", m.from),
            MessageKind::Action => format!("[{when}] [{c}] * {} ", m.from),
        };
        let indent = " ".repeat(head.chars().count());
        let mut lines = m.text.split('\n');
        let first = format!("{head}{}", lines.next().unwrap_or_default());
        std::iter::once(first).chain(lines.map(|line| format!("{indent}{line}"))).collect()
    }

    /// The event as plain text (scriptable mode), or `None` for events that are only
    /// interesting to screens (lag): one line, or a message's lines as `plain_lines` has them.
    pub fn plain(&self) -> Option<String> {
        let line = match self {
            Event::Connecting { server, attempt } if *attempt == 0 => format!("* connecting to {server}"),
            Event::Connecting { server, attempt } => format!("* connecting to {server} (attempt {})", attempt + 1),
            Event::Connected { server, security: Security::Quic, tls: Some(tls) } => {
                format!("* connected to {server} over QUIC ({:?}, SHA-256 {})", tls.trust, tls.fingerprint)
            }
            Event::Connected { server, tls: Some(tls), .. } => {
                format!("* connected to {server} over TLS ({:?}, SHA-256 {})", tls.trust, tls.fingerprint)
            }
            Event::Connected { server, .. } => format!("* connected to {server} in plaintext"),
            Event::Ready { nick } => format!("* you are {nick}"),
            Event::Disconnected { reason } => format!("! disconnected: {reason}"),
            // The reason names the server already ("cannot reach 127.0.0.1:6697: …").
            Event::ConnectFailed { reason, .. } => format!("! {reason}"),
            Event::Reconnecting { delay_ms } => format!("* reconnecting in {:.1} s", *delay_ms as f64 / 1000.0),
            Event::LoggedIn { account } => format!("* logged in as {account}"),
            Event::LoggedOut => "* logged out".into(),
            Event::AccountRegistered { account } => format!("* account {account} registered"),
            Event::Message(_) => self.plain_lines().join("\n"),
            Event::Joined { room, nick, .. } => format!("[{room}] --> {nick} joined"),
            Event::Parted { room, nick, reason, .. } => format!("[{room}] <-- {nick} left{}", paren(reason)),
            Event::Kicked { room, nick, by, reason, .. } => {
                format!("[{room}] <-- {nick} was kicked by {by}{}", paren(reason))
            }
            Event::Quit { nick, reason, .. } => format!("* {nick} quit{}", paren(reason)),
            Event::NickChanged { old, new, .. } => format!("* {old} is now known as {new}"),
            Event::Topic { room, topic, by: Some(by) } => format!("[{room}] {by} set the topic: {topic}"),
            Event::Topic { room, topic, by: None } => format!("[{room}] topic: {topic}"),
            Event::Members { room, members } => format!("[{room}] members: {}", members.join(" ")),
            Event::Names { room, names } if names.is_empty() => format!("[{room}] nobody visible"),
            Event::Names { room, names } => {
                format!("[{room}] {}: {}", crate::numeric::count(names.len(), "name", "names"), names.join(" "))
            }
            Event::Notice { from, text } => format!("-{from}- {text}"),
            Event::Typing { conversation, nick, state } => match state {
                TypingState::Active => format!("[{conversation}] {nick} is typing"),
                TypingState::Paused => format!("[{conversation}] {nick} paused typing"),
                TypingState::Done => format!("[{conversation}] {nick} stopped typing"),
            },
            Event::Away { nick, reason: Some(r) } => format!("* {nick} is away: {r}"),
            Event::Away { nick, reason: None } => format!("* {nick} is back"),
            Event::Rooms { rooms } => {
                let list: Vec<String> = rooms.iter().map(|r| format!("{} ({})", r.name, r.users)).collect();
                format!("* rooms: {}", list.join(", "))
            }
            Event::Users { users } => format!("* online: {}", users.join(" ")),
            Event::Switched { target } => format!("* now talking in {target}"),
            Event::HistoryEnd { conversation, count, .. } => format!("[{conversation}] ({count} from history)"),
            Event::Info { text } | Event::Status { text } => format!("* {text}"),
            Event::Error { text } => format!("! {text}"),
            Event::NotSent { target, text, reason } => format!("! not sent to {target} ({reason}): {text}"),
            Event::Lag { .. } => return None,
            Event::Help { lines } => lines.join("\n"),
            Event::Fatal { text } => format!("!! {text}"),
            Event::Closed => "* bye".into(),
        };
        Some(line)
    }
}

fn paren(reason: &Option<String>) -> String {
    reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(" ({r})")).unwrap_or_default()
}
