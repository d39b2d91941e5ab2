//! The client as a state machine, without I/O: lines from the server and commands from the
//! user go in, lines for the server and [`Event`]s for the front end come out. Time comes in as
//! an argument. The driver (`driver.rs`) owns the socket and calls in; tests call in directly.
//!
//! What outlives a connection lives here too: the rooms we want to be in, the last message id
//! seen in each conversation (to fill the gap after a reconnect), the credentials for SASL
//! (in memory only), and the messages typed while disconnected.
//!
//! Server lines are interpreted in `incoming.rs` and the user's commands in `outgoing.rs`; this
//! file has the state and the connection lifecycle.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use chinwag_proto::{casefold, Message};

use crate::command;
use crate::event::{Event, MessageKind, RoomInfo};

/// Messages typed while disconnected that are kept to send later; beyond this they are
/// reported as not sent at once.
pub const MAX_UNSENT: usize = 100;
/// Commands that need the server (`/list`, `/whois`, `register`) kept while not connected, to
/// run in order once registered; one more is refused with an error saying so.
pub const MAX_HELD_COMMANDS: usize = 100;
/// How many message ids are remembered to drop duplicates (a gap fill overlapping live lines).
const SEEN_IDS: usize = 4096;
/// How often to PING to measure lag (the default of [`Keepalive`]).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A PING without its PONG for this long means the connection is dead (the default of
/// [`Keepalive`]).
pub const PING_TIMEOUT: Duration = Duration::from_secs(60);

/// The PING timers; configurable so that tests of dead-connection detection take seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Keepalive {
    pub interval: Duration,
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive { interval: PING_INTERVAL, timeout: PING_TIMEOUT }
    }
}
/// Registration must finish within this long of connecting.
pub const REGISTRATION_TIMEOUT: Duration = Duration::from_secs(60);
/// A gap fill asks for this many messages per page, as many pages as needed up to
/// [`MAX_GAP_PAGES`].
const GAP_PAGE: usize = 100;
const MAX_GAP_PAGES: usize = 20;

/// The capabilities we ask for when the server offers them.
pub const WANTED_CAPS: &[&str] = &[
    "server-time",
    "message-tags",
    "echo-message",
    "batch",
    "draft/chathistory",
    "away-notify",
    "account-tag",
    "extended-join",
    // End-to-end encryption's key directory and encrypted private messages.
    "chinwag.dev/e2e",
    "multi-prefix",
    "labeled-response",
    "account-notify",
    "cap-notify",
    "draft/account-registration",
    // Messages of several lines arrive as one batch, shown as one message.
    "draft/multiline",
];

/// An account name and its password. Held in memory only, for SASL on every reconnect.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub account: String,
    pub password: String,
}

impl fmt::Debug for Credentials {
    // The password never reaches a log or a panic message.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials").field("account", &self.account).finish_non_exhaustive()
    }
}

/// Who to be on the server.
#[derive(Clone)]
pub struct SessionConfig {
    pub nick: String,
    pub realname: String,
    pub credentials: Option<Credentials>,
    /// The server's own password (`PASS`), for servers that require one of every client.
    pub server_password: Option<String>,
    /// Whether a password may be sent on this connection (TLS, or plaintext to loopback).
    pub passwords_allowed: bool,
    /// Rooms to join once connected.
    pub rooms: Vec<String>,
    /// How many recent messages to fetch when first joining a room (0: none).
    pub join_context: usize,
    pub keepalive: Keepalive,
}

impl fmt::Debug for SessionConfig {
    // Written by hand so that no password reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionConfig")
            .field("nick", &self.nick)
            .field("credentials", &self.credentials)
            .field("server_password", &self.server_password.as_ref().map(|_| "<hidden>"))
            .field("passwords_allowed", &self.passwords_allowed)
            .field("rooms", &self.rooms)
            .finish_non_exhaustive()
    }
}

/// Where a connection is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Disconnected,
    /// Connected, CAP/SASL/NICK/USER under way.
    Registering,
    Ready,
}

/// A room we are in or want to be in.
#[derive(Debug, Clone, Default)]
pub(crate) struct Room {
    /// As the server spells it.
    pub name: String,
    /// Whether the server has confirmed our JOIN on this connection.
    pub joined: bool,
    /// Folded nick → displayed nick with its prefixes (`@alice`).
    pub members: BTreeMap<String, String>,
    /// NAMES replies being collected.
    pub names_buf: Vec<String>,
}

/// A `/names` the user typed, waiting for the server's end of the list.
#[derive(Debug, Clone, Default)]
pub(crate) struct NamesAsked {
    /// Folded room name.
    pub room: String,
    /// The names so far, for a room we are not in (a joined room's are in its `Room`).
    pub names: Vec<String>,
}

/// `/names` answers awaited at once; asking for more forgets the oldest question (its answer
/// then only updates the member list, as an unasked NAMES does).
pub const MAX_NAMES_ASKED: usize = 8;
/// Names kept for one `/names` of a room we are not in; the server's list beyond is not shown.
pub const MAX_NAMES_SHOWN: usize = 2_000;

/// A CHATHISTORY request waiting for its batch.
#[derive(Debug, Clone)]
pub(crate) struct HistoryRequest {
    /// Folded conversation.
    pub target: String,
    /// Scrollback (BEFORE) rather than catching up (AFTER/LATEST).
    pub older: bool,
    /// For gap fills: which page this is, to bound the paging.
    pub page: usize,
}

/// A batch being received.
#[derive(Debug, Clone)]
pub(crate) struct Batch {
    pub kind: String,
    pub conversation: String,
    pub count: usize,
    /// Set for chathistory batches: what we asked for.
    pub request: Option<HistoryRequest>,
    /// Set for draft/multiline batches: the message being put together.
    pub multiline: Option<Box<Multiline>>,
}

/// A draft/multiline message being received: its opening BATCH (the source, and the tags that
/// belong to the whole message: msgid, time, an enclosing batch) and its lines so far.
#[derive(Debug, Clone, Default)]
pub(crate) struct Multiline {
    pub opening: chinwag_proto::Message,
    /// `PRIVMSG` or `NOTICE`, from the first line.
    pub command: Option<String>,
    /// The text so far: lines joined by `\n`, a `draft/multiline-concat` line without one.
    pub text: String,
    pub lines: usize,
}

/// A message waiting for a connection.
#[derive(Debug, Clone)]
pub(crate) struct Unsent {
    pub target: String,
    pub text: String,
    pub kind: MessageKind,
}

/// The client state machine. See the module documentation.
pub struct Session {
    pub(crate) cfg: SessionConfig,
    pub(crate) phase: Phase,
    /// Our nick (as the server knows it once registered).
    pub(crate) nick: String,
    /// Capabilities the server offered (names without values) during this connection.
    pub(crate) offered: HashMap<String, String>,
    /// Capabilities enabled on this connection.
    pub(crate) caps: HashSet<String>,
    /// Whether CAP negotiation is still holding registration.
    pub(crate) cap_pending: bool,
    /// The account we are logged in to.
    pub(crate) account: Option<String>,
    /// Credentials typed with `login`/`register`, kept once the server accepts them.
    pub(crate) pending_credentials: Option<Credentials>,
    /// The SASL exchange of this connection, while one runs (`sasl.rs`).
    pub(crate) sasl: Option<crate::sasl::Sasl>,
    /// Folded room name → room.
    pub(crate) rooms: BTreeMap<String, Room>,
    /// Folded nick → displayed nick of open private conversations.
    pub(crate) queries: BTreeMap<String, String>,
    /// Where plain text goes.
    pub(crate) current: Option<String>,
    /// Folded conversation → newest msgid seen (for gap fills).
    pub(crate) newest: HashMap<String, String>,
    /// Folded conversation → the newest msgid when the last connection dropped: the gap to
    /// fill starts there, whatever arrives live before the history request is answered.
    pub(crate) gap_from: HashMap<String, String>,
    /// Folded conversation → oldest msgid seen (for scrollback).
    pub(crate) oldest: HashMap<String, String>,
    pub(crate) seen_ids: HashSet<String>,
    pub(crate) seen_order: VecDeque<String>,
    pub(crate) history_requests: VecDeque<HistoryRequest>,
    pub(crate) batches: HashMap<String, Batch>,
    pub(crate) unsent: VecDeque<Unsent>,
    pub(crate) room_list: Vec<RoomInfo>,
    pub(crate) user_list: Vec<String>,
    /// `/names` questions awaiting their answers, oldest first (at most [`MAX_NAMES_ASKED`]).
    pub(crate) names_asked: VecDeque<NamesAsked>,
    /// When the connection came up, for the registration timeout.
    pub(crate) connected_at: Option<Instant>,
    /// Our outstanding PING: its token and when it went.
    pub(crate) ping: Option<(String, Instant)>,
    pub(crate) last_ping: Option<Instant>,
    pub(crate) ping_counter: u64,
    /// Set by `/logout`: the driver should drop this connection and make a new one.
    pub(crate) reconnect_requested: bool,
    /// Set by `/quit`: no reconnects.
    pub(crate) quitting: bool,
    /// A `/quit` that came before registration finished (a script's input can end before the
    /// connection is up): it waits until what was typed before it has been sent.
    pub(crate) quit_after_ready: Option<Option<String>>,
    /// Commands that need the server, given while not registered (at most
    /// [`MAX_HELD_COMMANDS`]); run in order after the rejoin and the unsent messages.
    pub(crate) held: VecDeque<crate::command::Command>,
    pub(crate) outbox: VecDeque<Message>,
    pub(crate) events: VecDeque<Event>,
}

impl fmt::Debug for Session {
    // By hand: lines waiting to be sent may hold a password (PASS, AUTHENTICATE, IDENTIFY).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("cfg", &self.cfg)
            .field("phase", &self.phase)
            .field("nick", &self.nick)
            .field("account", &self.account)
            .field("current", &self.current)
            .field("rooms", &self.rooms.keys().collect::<Vec<_>>())
            .field("unsent", &self.unsent.len())
            .field("outbox", &self.outbox.len())
            .finish_non_exhaustive()
    }
}

impl Session {
    pub fn new(cfg: SessionConfig) -> Session {
        let mut rooms = BTreeMap::new();
        for name in &cfg.rooms {
            let name = command::room_name(name);
            rooms.insert(casefold(&name), Room { name, ..Room::default() });
        }
        let current = cfg.rooms.first().map(|r| command::room_name(r));
        Session {
            nick: cfg.nick.clone(),
            cfg,
            phase: Phase::Disconnected,
            offered: HashMap::new(),
            caps: HashSet::new(),
            cap_pending: false,
            account: None,
            pending_credentials: None,
            sasl: None,
            rooms,
            queries: BTreeMap::new(),
            current,
            newest: HashMap::new(),
            gap_from: HashMap::new(),
            oldest: HashMap::new(),
            seen_ids: HashSet::new(),
            seen_order: VecDeque::new(),
            history_requests: VecDeque::new(),
            batches: HashMap::new(),
            unsent: VecDeque::new(),
            room_list: Vec::new(),
            user_list: Vec::new(),
            names_asked: VecDeque::new(),
            held: VecDeque::new(),
            connected_at: None,
            ping: None,
            last_ping: None,
            ping_counter: 0,
            reconnect_requested: false,
            quitting: false,
            quit_after_ready: None,
            outbox: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// The account and password this session logs in with: given at the start, or typed with
    /// `/login` or `/register` once the server accepted them. The driver opens the account's
    /// end-to-end encryption device with them.
    pub fn credentials(&self) -> Option<&Credentials> {
        self.cfg.credentials.as_ref()
    }

    pub fn nick(&self) -> &str {
        &self.nick
    }

    /// The room or conversation plain text goes to.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The next line to send, if any.
    pub fn poll_send(&mut self) -> Option<Message> {
        self.outbox.pop_front()
    }

    /// The next event for the front end, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Whether the user asked to quit (the driver then stops reconnecting).
    pub fn is_quitting(&self) -> bool {
        self.quitting
    }

    /// Whether a `/quit` is waiting for registration to finish first.
    pub fn quit_pending(&self) -> bool {
        self.quit_after_ready.is_some()
    }

    /// Stops waiting: a pending `/quit` takes effect now (the connection attempt failed, or the
    /// client is between attempts).
    pub fn give_up(&mut self) {
        if let Some(reason) = self.quit_after_ready.take() {
            self.quit_now(reason);
        }
    }

    pub(crate) fn quit_now(&mut self, reason: Option<String>) {
        self.quitting = true;
        if self.phase != Phase::Disconnected {
            let reason = reason.unwrap_or_else(|| "Leaving".into());
            self.send(Message::new("QUIT").with_param(reason));
        }
    }

    /// Whether the driver should drop the connection and reconnect now (after `/logout`).
    pub fn take_reconnect_request(&mut self) -> bool {
        std::mem::take(&mut self.reconnect_requested)
    }

    pub(crate) fn send(&mut self, msg: Message) {
        self.outbox.push_back(msg);
    }

    pub(crate) fn emit(&mut self, event: Event) {
        self.events.push_back(event);
    }

    pub(crate) fn has_cap(&self, cap: &str) -> bool {
        self.caps.contains(cap)
    }

    /// A transport is up: start registration.
    pub fn connected(&mut self, now: Instant) {
        self.phase = Phase::Registering;
        self.nick = self.cfg.nick.clone();
        self.offered.clear();
        self.caps.clear();
        self.batches.clear();
        self.history_requests.clear();
        self.sasl = None;
        self.ping = None;
        self.last_ping = Some(now);
        self.connected_at = Some(now);
        self.cap_pending = true;
        self.send(Message::new("CAP").with_params(["LS", "302"]));
        if let Some(password) = self.cfg.server_password.clone().filter(|_| self.cfg.passwords_allowed) {
            self.send(Message::new("PASS").with_param(password));
        }
        self.send(Message::new("NICK").with_param(self.nick.clone()));
        self.send(Message::new("USER").with_params([
            self.user_name(),
            "0".into(),
            "*".into(),
            self.cfg.realname.clone(),
        ]));
    }

    /// The user name for USER: the nick, cut to what servers accept.
    fn user_name(&self) -> String {
        let name: String = self.cfg.nick.chars().filter(char::is_ascii_alphanumeric).take(10).collect();
        if name.is_empty() {
            "chinwag".into()
        } else {
            name
        }
    }

    /// The transport went away.
    pub fn disconnected(&mut self, reason: &str) {
        if self.phase == Phase::Disconnected {
            return;
        }
        self.phase = Phase::Disconnected;
        self.gap_from = self.newest.clone();
        self.account = None;
        self.sasl = None;
        self.connected_at = None;
        self.ping = None;
        for room in self.rooms.values_mut() {
            room.joined = false;
            room.members.clear();
            room.names_buf.clear();
        }
        for asked in &mut self.names_asked {
            asked.names.clear();
        }
        self.emit(Event::Disconnected { reason: reason.to_owned() });
    }

    /// Timers: lag PINGs and dead-connection detection. Returns `false` when the connection
    /// should be dropped.
    pub fn tick(&mut self, now: Instant) -> bool {
        match self.phase {
            Phase::Disconnected => true,
            Phase::Registering => {
                self.connected_at.is_none_or(|at| now.saturating_duration_since(at) < REGISTRATION_TIMEOUT)
            }
            Phase::Ready => {
                if let Some((_, sent)) = &self.ping {
                    return now.saturating_duration_since(*sent) < self.cfg.keepalive.timeout;
                }
                let interval = self.cfg.keepalive.interval;
                if self.last_ping.is_none_or(|at| now.saturating_duration_since(at) >= interval) {
                    self.ping_counter += 1;
                    let token = format!("chinwag-lag-{}", self.ping_counter);
                    self.send(Message::new("PING").with_param(token.clone()));
                    self.ping = Some((token, now));
                    self.last_ping = Some(now);
                }
                true
            }
        }
    }

    /// Reports every message still waiting for a connection as not sent (at exit).
    pub fn abandon_unsent(&mut self, reason: &str) {
        while let Some(u) = self.unsent.pop_front() {
            self.emit(Event::NotSent { target: u.target, text: u.text, reason: reason.to_owned() });
        }
        while let Some(command) = self.held.pop_front() {
            self.emit(Event::Error { text: format!("{} was not sent: {reason}", command.name()) });
        }
    }

    /// Registration finished (001): rejoin, catch up, send what waited.
    pub(crate) fn on_ready(&mut self) {
        self.phase = Phase::Ready;
        self.emit(Event::Ready { nick: self.nick.clone() });
        let rooms: Vec<String> = self.rooms.values().map(|r| r.name.clone()).collect();
        for chunk in rooms.chunks(10) {
            self.send(Message::new("JOIN").with_param(chunk.join(",")));
        }
        let queries: Vec<(String, String)> = self.queries.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        for (folded, nick) in queries {
            if let Some(newest) = self.gap_start(&folded) {
                self.request_history(&nick, &format!("msgid={newest}"), "AFTER", GAP_PAGE, false, 0);
            }
        }
        while let Some(u) = self.unsent.pop_front() {
            self.send_text(&u.target, &u.text, u.kind);
        }
        while let Some(command) = self.held.pop_front() {
            self.command(command);
        }
        if let Some(reason) = self.quit_after_ready.take() {
            self.quit_now(reason);
        }
    }

    /// Our JOIN was confirmed: fetch what we missed, or some context.
    pub(crate) fn on_own_join(&mut self, room: &str) {
        let folded = casefold(room);
        if let Some(newest) = self.gap_start(&folded) {
            self.request_history(room, &format!("msgid={newest}"), "AFTER", GAP_PAGE, false, 0);
        } else if self.cfg.join_context > 0 {
            self.request_history(room, "*", "LATEST", self.cfg.join_context, false, 0);
        }
    }

    /// Where the gap of a conversation starts: the newest message before the drop, else the
    /// newest seen (a room left and joined again).
    fn gap_start(&mut self, folded: &str) -> Option<String> {
        self.gap_from.remove(folded).or_else(|| self.newest.get(folded).cloned())
    }

    pub(crate) fn request_history(
        &mut self,
        target: &str,
        reference: &str,
        sub: &str,
        limit: usize,
        older: bool,
        page: usize,
    ) {
        if !(self.has_cap("draft/chathistory") && self.has_cap("batch")) || self.phase != Phase::Ready {
            return;
        }
        self.history_requests.push_back(HistoryRequest { target: casefold(target), older, page });
        self.send(Message::new("CHATHISTORY").with_params([sub, target, reference, &limit.to_string()]));
    }

    /// A chathistory batch ended; a full gap-fill page asks for the next one.
    pub(crate) fn history_done(&mut self, conversation: &str, count: usize, request: Option<HistoryRequest>) {
        let older = request.as_ref().is_some_and(|r| r.older);
        self.emit(Event::HistoryEnd { conversation: conversation.to_owned(), count, older });
        let Some(req) = request else { return };
        if !req.older && count >= GAP_PAGE && req.page + 1 < MAX_GAP_PAGES {
            if let Some(newest) = self.newest.get(&req.target).cloned() {
                self.request_history(conversation, &format!("msgid={newest}"), "AFTER", GAP_PAGE, false, req.page + 1);
            }
        }
    }

    /// Remembers a message id; `false` if it was seen before.
    pub(crate) fn first_sighting(&mut self, msgid: &str) -> bool {
        if !self.seen_ids.insert(msgid.to_owned()) {
            return false;
        }
        self.seen_order.push_back(msgid.to_owned());
        if self.seen_order.len() > SEEN_IDS {
            if let Some(old) = self.seen_order.pop_front() {
                self.seen_ids.remove(&old);
            }
        }
        true
    }
}
