//! The server state and its entry points: connect, handle a line, disconnect, tick.
//!
//! Every entry point takes the time as an argument and leaves its consequences as
//! [`Effect`]s for the caller to carry out; nothing here touches a socket or a clock.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::time::Instant;

use bytes::Bytes;
use chinwag_proto::{ChannelName, Message, ParseError, Tag};

use crate::broadcast::{LineArena, Outgoing, GROUPS};
use crate::caps::{Cap, CapSet};
use crate::channel::Channel;
use crate::client::{Client, ConnInfo};
use crate::config::Config;
use crate::ids::{ConnId, ConnMap, MsgIdGen};
use crate::numeric::*;
pub(crate) use crate::pending::Pending;
use crate::store::{ChannelSnapshot, HistoryItem, Request, RequestId};
use crate::throttle::Throttle;

/// The time, as the edge read it: wall clock for timestamps, monotonic for timeouts.
#[derive(Copy, Clone, Debug)]
pub struct Now {
    pub wall_ms: u64,
    pub mono: Instant,
}

/// Something the edge must do because of a call into the core.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Queue one line (with CRLF) for a connection.
    Send { conn: ConnId, line: Bytes },
    /// Queue the same line for each of these connections, in this order: a room message is one
    /// of these per capability variant, not one effect per member.
    SendMany { conns: Vec<ConnId>, line: Bytes },
    /// Flush what is queued for the connection, then close it. The core has already forgotten it.
    Close { conn: ConnId },
    /// Make this message durable. Every effect after it must wait until it is (so no one sees,
    /// and no sender gets an echo for, a message that could still be lost); but a room's event
    /// ([`HistoryItem::is_event`]) holds nothing back. Boxed, like
    /// `SaveChannel`, so that every `Effect` stays small: a room message makes one `Send` per
    /// member, and the edge moves each of them through its queues.
    Persist(Box<HistoryItem>),
    /// Do this work and call [`Server::complete`] with the answer.
    Request { id: RequestId, request: Request },
    /// Remember a room's state (topic, modes, bans) across restarts.
    SaveChannel(Box<ChannelSnapshot>),
    /// Forget a room that no longer exists.
    DeleteChannel(String),
    /// Offline messages up to this one were delivered to the account.
    ClearOffline { account: String, up_to_msgid: String },
    /// Cluster mode: queue the stored private message `msgid` for `account` (its recipient's
    /// connection closed just before it arrived from the sender's node).
    QueueOffline { account: String, msgid: String },
    /// Cluster mode only: something for the bus (`cluster/`). Never left by a single node.
    Cluster(crate::cluster::ClusterEffect),
}

impl Effect {
    /// This effect with each [`Effect::SendMany`] split into one [`Effect::Send`] per
    /// connection: for tests and tools that follow the lines of each connection.
    pub fn per_conn(self) -> Vec<Effect> {
        match self {
            Effect::SendMany { conns, line } => {
                conns.into_iter().map(|conn| Effect::Send { conn, line: line.clone() }).collect()
            }
            other => vec![other],
        }
    }
}

/// A nick that was in use, for WHOWAS.
#[derive(Clone, Debug)]
pub(crate) struct WhowasEntry {
    pub nick: String,
    pub folded: String,
    pub user: String,
    pub host: String,
    pub realname: String,
    pub left_ms: u64,
}

impl WhowasEntry {
    fn of(client: &Client, now_ms: u64) -> Option<WhowasEntry> {
        let nick = client.nick()?;
        Some(WhowasEntry {
            nick: nick.as_str().to_owned(),
            folded: nick.folded().to_owned(),
            user: client.user_or_star().to_owned(),
            host: client.info.host.clone(),
            realname: client.realname.clone(),
            left_ms: now_ms,
        })
    }
}

/// The longest label we keep; longer ones are ignored rather than echoed.
const MAX_LABEL_LEN: usize = 64;

/// The administrator as the "current client" of an admin command (`Server::as_admin`): not a
/// connection (the edge numbers those from 1 and never reaches this).
pub(crate) const ADMIN: ConnId = ConnId(u64::MAX - 1);

/// The command being handled: whose it is, and the replies it produced so far.
#[derive(Debug, Default)]
struct Current {
    conn: Option<ConnId>,
    label: Option<String>,
    replies: Vec<Message>,
}

/// The whole state of one chinwag server, owned by one task.
#[derive(Debug)]
pub struct Server {
    pub(crate) cfg: Config,
    /// Boxed: a map holds up to twice as many slots as entries, and a client is ~500 bytes.
    pub(crate) clients: ConnMap<Box<Client>>,
    /// Folded nick → its connection.
    pub(crate) nicks: HashMap<String, ConnId>,
    /// Folded channel name → channel.
    pub(crate) channels: HashMap<String, Channel>,
    /// Oldest first; bounded by `limits.whowas_len`.
    pub(crate) whowas: VecDeque<WhowasEntry>,
    /// Folded nick → connections that MONITOR it.
    pub(crate) monitors: HashMap<String, BTreeSet<ConnId>>,
    pub(crate) created_ms: u64,
    /// Most registered users at once, for LUSERS 265/266. Connections that have not registered
    /// are not users (LUSERS counts them apart, 253), so a burst of them does not raise it.
    pub(crate) max_users: usize,
    /// Registered clients, and how many of those are invisible (+i). Kept up to date as clients
    /// register, change +i and leave, so that LUSERS (part of every welcome) does not scan every
    /// client: with 10,000 connected that scan was a third of the cost of a registration.
    pub(crate) registered_count: usize,
    pub(crate) invisible_count: usize,
    pub(crate) now: Now,
    /// Every room's confusable skeleton → the folded name of the room that has it
    /// (`confusable.rs`), so that a new room is checked against all with one lookup.
    pub(crate) room_skeletons: HashMap<String, String>,
    /// Registered accounts, folded name → display name. Names only: hashes stay in storage.
    pub(crate) accounts: HashMap<String, String>,
    /// Accounts logged in, each with its connections and what is kept for it meanwhile.
    pub(crate) sessions: crate::sessions::Sessions,
    /// Requests out to the edge and what to do with their answers.
    pub(crate) pending: HashMap<RequestId, Pending>,
    pub(crate) next_request: u64,
    pub(crate) throttle: Throttle,
    /// Clients with lines waiting in their RecvQ for flood budget.
    pub(crate) flooding: BTreeSet<ConnId>,
    /// Operator sessions and server bans (`handlers/oper.rs`).
    pub(crate) ops: crate::handlers::oper::OperState,
    /// Messages waiting in each offline queue (a folded account, or a device's queue), for
    /// `limits.offline_queue_len`; queues with none are absent (`handlers/offline.rs`).
    pub(crate) offline_counts: HashMap<String, usize>,
    /// Numbers the PINGs that acknowledge pages of offline messages.
    pub(crate) offline_seq: u64,
    /// Numbers the `Guest` nicks given to people who did not log in to a registered nick.
    guest_seq: u64,
    pub(crate) msgids: MsgIdGen,
    batch_seq: u64,
    pub(crate) effects: Vec<Effect>,
    /// Where the lines of [`Effect::Send`] and [`Effect::SendMany`] are written.
    arena: LineArena,
    /// Set by [`Server::close_all`]: rooms emptied by the shutdown are not forgotten.
    pub(crate) stopping: bool,
    /// Connections to close after this call's replies are flushed.
    closing: Vec<ConnId>,
    /// How many more messages the edge can take to store ([`Server::set_storage_room`]); each
    /// persisted message takes one, and at 0 messages that would be stored are refused.
    pub(crate) storage_room: usize,
    /// The most room storage has reported, 0 before it first did: room events are kept only
    /// while more than half of it is left (`handlers/events.rs`).
    pub(crate) storage_room_max: usize,
    /// Cluster mode (`cluster/`): the replica of the other nodes' users, claims, appends in
    /// flight. `None` on a single node, where every cluster hook is one branch not taken.
    pub(crate) cluster: Option<Box<crate::cluster::ClusterState>>,
    cur: Current,
}

impl Server {
    /// A server with the default rooms in place. `node` distinguishes this process's msgids.
    pub fn new(cfg: Config, node: u32, now: Now) -> Self {
        let mut server = Server {
            clients: ConnMap::default(),
            nicks: HashMap::new(),
            channels: HashMap::new(),
            whowas: VecDeque::new(),
            monitors: HashMap::new(),
            created_ms: now.wall_ms,
            max_users: 0,
            registered_count: 0,
            invisible_count: 0,
            now,
            room_skeletons: HashMap::new(),
            accounts: HashMap::new(),
            sessions: Default::default(),
            pending: HashMap::new(),
            next_request: 0,
            throttle: Throttle::default(),
            flooding: BTreeSet::new(),
            ops: Default::default(),
            guest_seq: 0,
            offline_counts: HashMap::new(),
            offline_seq: 0,
            stopping: false,
            msgids: MsgIdGen::new(node, now.wall_ms),
            batch_seq: 0,
            effects: Vec::new(),
            arena: LineArena::default(),
            closing: Vec::new(),
            storage_room: usize::MAX,
            storage_room_max: 0,
            cluster: None,
            cur: Current::default(),
            cfg,
        };
        for name in server.cfg.default_channels.clone() {
            match ChannelName::parse(&name, server.cfg.limits.channel_len) {
                Ok(name) => {
                    let folded = name.folded().to_owned();
                    server.remember_room(crate::confusable::skeleton(&folded), &folded);
                    server.channels.insert(folded, Channel::new(name, now.wall_ms, true));
                }
                Err(e) => tracing::warn!(channel = %name, error = %e, "ignoring invalid default channel"),
            }
        }
        server
    }

    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Number of connections the core knows, registered or not.
    pub fn connection_count(&self) -> usize {
        self.clients.len()
    }

    /// Tells the core how many more messages storage can take (the edge's bound on messages
    /// waiting for their commit, less those waiting); unlimited until first called. Each
    /// message the core persists takes one, so the bound holds within a batch of lines too.
    /// At 0 (the store is stalled and the edge holds as many messages as it may), a PRIVMSG or
    /// NOTICE that would be stored gets `FAIL <command> TEMPORARILY_UNAVAILABLE` and nothing
    /// else happens: it is neither delivered nor stored. Everything that needs no storage goes
    /// on as usual.
    pub fn set_storage_room(&mut self, messages: usize) {
        self.storage_room = messages;
        self.storage_room_max = self.storage_room_max.max(messages);
    }

    /// Whether messages that must be stored are being refused; see [`Server::set_storage_room`].
    pub fn storage_full(&self) -> bool {
        self.storage_room == 0
    }

    /// Moves the effects of the calls so far into `out`, in order.
    pub fn drain_effects(&mut self, out: &mut Vec<Effect>) {
        out.append(&mut self.effects);
    }

    /// A new connection was accepted.
    pub fn connect(&mut self, conn: ConnId, info: ConnInfo, now: Now) {
        self.now = now;
        self.clients.insert(conn, Box::new(Client::new(conn, info, now.mono)));
        self.reject_if_banned(conn);
    }

    /// A line arrived from `conn` (already framed and parsed by the edge).
    ///
    /// The line runs now if the client's flood budget allows, otherwise it waits in the
    /// client's RecvQ for a later [`Server::tick`] (see `flood.rs`). A line of a draft/multiline
    /// batch is collected instead, and the batch runs as one command once it is closed
    /// (`handlers/multiline.rs`).
    pub fn handle(&mut self, conn: ConnId, parsed: Result<Message, ParseError>, now: Now) {
        self.now = now;
        if let Some(parsed) = self.collect_batch(conn, parsed) {
            self.admit(conn, parsed);
        }
    }

    /// Runs one line from `conn` whose turn has come.
    pub(crate) fn run_line(&mut self, conn: ConnId, parsed: Result<Message, ParseError>) {
        let Some(client) = self.clients.get(&conn) else { return };
        let labels = client.caps.has(Cap::LabeledResponse);
        match parsed {
            Ok(msg) => {
                let label =
                    msg.tag("label").filter(|l| labels && !l.is_empty() && l.len() <= MAX_LABEL_LEN).map(str::to_owned);
                self.begin(conn, label);
                self.dispatch(msg);
            }
            Err(err) => {
                self.begin(conn, None);
                self.parse_error(&err);
            }
        }
        self.finish();
    }

    /// The connection is gone (closed by the peer, an I/O error, or a full send queue).
    pub fn disconnect(&mut self, conn: ConnId, reason: &str, now: Now) {
        self.now = now;
        self.begin_none();
        self.remove_client(conn, reason);
        self.finish();
    }

    /// The server is stopping: every client gets `ERROR` with `reason` and is closed.
    pub fn close_all(&mut self, reason: &str, now: Now) {
        self.now = now;
        self.stopping = true;
        self.begin_none();
        let conns: Vec<ConnId> = self.clients.keys().copied().collect();
        for conn in conns {
            self.close(conn, reason);
        }
        self.finish();
    }

    /// Time passes: PING quiet clients, drop dead and never-registering ones.
    pub fn tick(&mut self, now: Now) {
        self.now = now;
        self.begin_none();
        let limits = self.cfg.limits.clone();
        let mut to_ping = Vec::new();
        let mut to_drop = Vec::new();
        for client in self.clients.values() {
            if !client.registered {
                if now.mono.duration_since(client.connected_at) >= limits.registration_timeout {
                    to_drop.push((client.id, "Registration timed out".to_owned()));
                }
            } else if let Some(sent) = client.ping_sent {
                let waited = now.mono.duration_since(sent);
                if waited >= limits.ping_timeout {
                    let secs = now.mono.duration_since(client.last_active).as_secs();
                    tracing::info!(conn = %client.id, nick = client.nick_or_star(), ip = %client.info.ip, silent_secs = secs, "ping timeout");
                    to_drop.push((client.id, format!("Ping timeout: {}", crate::text::seconds(secs))));
                }
            } else if now.mono.duration_since(client.last_active) >= limits.ping_interval {
                to_ping.push(client.id);
            }
        }
        for conn in to_ping {
            if let Some(client) = self.clients.get_mut(&conn) {
                client.ping_sent = Some(now.mono);
            }
            let ping = Message::new("PING").with_param(self.cfg.server_name.clone());
            self.send_msg(conn, ping);
        }
        for (conn, reason) in to_drop {
            self.close(conn, &reason);
        }
        let expired: Vec<ConnId> =
            self.clients.values().filter(|c| c.nick_deadline().is_some_and(|d| d <= now.mono)).map(|c| c.id).collect();
        for conn in expired {
            self.rename_to_guest(conn);
        }
        self.throttle.forget_stale(now.mono, &limits);
        self.finish();
        self.expire_lost_room_waits();
        self.expire_batches();
        self.run_all_queued();
    }

    // ---- plumbing shared by the handlers ----

    pub(crate) fn begin(&mut self, conn: ConnId, label: Option<String>) {
        self.cur = Current { conn: Some(conn), label, replies: Vec::new() };
    }

    pub(crate) fn begin_none(&mut self) {
        self.cur = Current::default();
    }

    /// Turns the current command's replies into wire lines (applying labeled-response), then
    /// schedules the closes the command caused.
    pub(crate) fn finish(&mut self) {
        let cur = std::mem::take(&mut self.cur);
        // Nothing to send (most lines: a message relayed to others): no lookup.
        let anything = !cur.replies.is_empty() || cur.label.is_some();
        let to = cur.conn.filter(|c| anything && (self.clients.contains_key(c) || self.closing.contains(c)));
        if let Some(conn) = to {
            let mut replies = cur.replies;
            if let Some(label) = cur.label {
                replies = self.label_replies(label, replies);
            }
            for msg in replies {
                let line = self.arena.line(|buf| msg.write_to(buf));
                self.effects.push(Effect::Send { conn, line });
            }
        }
        for conn in self.closing.drain(..) {
            self.effects.push(Effect::Close { conn });
        }
    }

    fn label_replies(&mut self, label: String, mut replies: Vec<Message>) -> Vec<Message> {
        let label_tag = Tag { key: "label".into(), value: label };
        match replies.len() {
            0 => vec![Message::new("ACK")
                .with_source(self.cfg.server_name.clone())
                .with_tag(label_tag.key, label_tag.value)],
            1 => {
                replies[0].tags.insert(0, label_tag);
                replies
            }
            // The echo of a multiline message is its batch, which takes the label itself (the
            // draft/multiline specification asks for it on the opening BATCH).
            _ if crate::handlers::multiline::is_one_multiline_batch(&replies) => {
                replies[0].tags.insert(0, label_tag);
                replies
            }
            _ => {
                let id = self.next_batch_id();
                let mut out = Vec::with_capacity(replies.len() + 2);
                let mut start = Message::new("BATCH")
                    .with_source(self.cfg.server_name.clone())
                    .with_params([format!("+{id}"), "labeled-response".into()]);
                start.tags.push(label_tag);
                out.push(start);
                for mut msg in replies {
                    // Lines inside a nested batch already carry their own batch tag.
                    if msg.tag("batch").is_none() {
                        msg.tags.insert(0, Tag { key: "batch".into(), value: id.clone() });
                    }
                    out.push(msg);
                }
                out.push(Message::new("BATCH").with_source(self.cfg.server_name.clone()).with_param(format!("-{id}")));
                out
            }
        }
    }

    /// Takes the current command's label away from the immediate reply: used when the answer
    /// will come later, from [`Server::complete`].
    pub(crate) fn take_label(&mut self) -> Option<String> {
        self.cur.label.take()
    }

    /// A fresh batch reference.
    pub(crate) fn next_batch_id(&mut self) -> String {
        self.batch_seq += 1;
        format!("B{}", self.batch_seq)
    }

    /// The connection whose command is being handled.
    /// Runs what `act` does as the administrator (`chinwag admin`, the console): events it
    /// makes come from the server, and the replies it would send the administrator (numerics,
    /// errors) are returned as text instead. No client is ever [`ADMIN`].
    pub(crate) fn as_admin<T>(&mut self, now: Now, act: impl FnOnce(&mut Self) -> T) -> (T, Vec<String>) {
        self.now = now;
        self.begin(ADMIN, None);
        let out = act(self);
        let replies = std::mem::take(&mut self.cur.replies);
        self.finish();
        let texts = replies.into_iter().filter_map(|m| m.params.last().cloned()).collect();
        (out, texts)
    }

    pub(crate) fn cur_conn(&self) -> ConnId {
        self.cur.conn.unwrap_or(ConnId(u64::MAX))
    }

    pub(crate) fn cur_client(&self) -> Option<&Client> {
        self.cur.conn.and_then(|c| self.clients.get(&c)).map(|c| &**c)
    }

    pub(crate) fn cur_client_mut(&mut self) -> Option<&mut Client> {
        let conn = self.cur.conn?;
        self.clients.get_mut(&conn).map(|c| &mut **c)
    }

    pub(crate) fn caps_of(&self, conn: ConnId) -> CapSet {
        self.clients.get(&conn).map(|c| c.caps).unwrap_or_default()
    }

    /// Sends a message to one connection: kept as a reply (for labels) if it is the sender's.
    pub(crate) fn send_msg(&mut self, conn: ConnId, msg: Message) {
        if self.cur.conn == Some(conn) {
            self.cur.replies.push(msg);
        } else {
            let line = self.arena.line(|buf| msg.write_to(buf));
            self.effects.push(Effect::Send { conn, line });
        }
    }

    /// A message from the server, e.g. a NOTICE or ERROR.
    pub(crate) fn server_msg(&self, command: &str) -> Message {
        Message::new(command).with_source(self.cfg.server_name.clone())
    }

    /// A numeric to `conn`, with its nick (or `*`) as first parameter.
    pub(crate) fn numeric_to<I, S>(&mut self, conn: ConnId, code: &str, params: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let nick = self.clients.get(&conn).map_or("*", |c| c.nick_or_star()).to_owned();
        let mut msg = self.server_msg(code).with_param(nick).with_params(params);
        fix_middle_params(&mut msg);
        self.send_msg(conn, msg);
    }

    /// A numeric to the sender of the current command.
    pub(crate) fn numeric<I, S>(&mut self, code: &str, params: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.numeric_to(self.cur_conn(), code, params);
    }

    /// `FAIL <command> <code> [context...] :<description>` (standard-replies).
    pub(crate) fn fail(&mut self, command: &str, code: &str, context: &[&str], description: &str) {
        let mut msg = self
            .server_msg("FAIL")
            .with_params([command, code])
            .with_params(context.iter().copied())
            .with_param(description);
        fix_middle_params(&mut msg);
        self.send_msg(self.cur_conn(), msg);
    }

    /// 461 for `command`.
    pub(crate) fn need_more_params(&mut self, command: &str) {
        self.numeric(ERR_NEEDMOREPARAMS, [command, "Not enough parameters"]);
    }

    /// Starts an event from `source` (time and msgid filled in).
    pub(crate) fn event(&mut self, source: &Client, base: Message) -> Outgoing {
        let msgid = self.msgids.next(self.now.wall_ms);
        let mut ev = Outgoing::from_source(
            Some(source.shared_prefix()),
            base,
            self.now.wall_ms,
            Some(msgid),
            source.account.clone(),
        );
        ev.bot = source.bot;
        ev
    }

    /// Like [`Server::event`] for the current client.
    pub(crate) fn cur_event(&mut self, base: Message) -> Option<Outgoing> {
        let conn = self.cur.conn?;
        let (source, account, bot) = match self.clients.get(&conn) {
            Some(client) => (client.shared_prefix(), client.account.clone(), client.bot),
            // The administrator's changes come from the server.
            None if conn == ADMIN => (std::sync::Arc::from(self.cfg.server_name.as_str()), None, false),
            None => return None,
        };
        let msgid = self.msgids.next(self.now.wall_ms);
        let mut ev = Outgoing::from_source(Some(source), base, self.now.wall_ms, Some(msgid), account);
        ev.bot = bot;
        Some(ev)
    }

    /// Delivers an event to one connection, honouring its capabilities.
    pub(crate) fn deliver(&mut self, out: &mut Outgoing, to: ConnId) {
        // The current client gets its replies even while it is being closed.
        let caps = self.clients.get(&to).map(|c| c.caps);
        if caps.is_some() || self.cur.conn == Some(to) {
            self.deliver_to(out, to, caps.unwrap_or_default(), false);
        }
    }

    /// [`Server::deliver`] to a connected client (or the current one) whose capabilities the
    /// caller has at hand. `last`: no other delivery of the event follows, so its bytes need
    /// not be kept for one (see [`Outgoing::last_bytes_for`]).
    pub(crate) fn deliver_to(&mut self, out: &mut Outgoing, to: ConnId, caps: CapSet, last: bool) {
        if !out.wanted_by(caps) {
            return;
        }
        if self.cur.conn == Some(to) {
            self.cur.replies.extend(out.messages_for(caps));
        } else if out.multiline.is_some() {
            for line in out.lines_for(caps, &mut self.arena) {
                self.effects.push(Effect::Send { conn: to, line });
            }
        } else {
            let line =
                if last { out.last_bytes_for(caps, &mut self.arena) } else { out.bytes_for(caps, &mut self.arena) };
            self.effects.push(Effect::Send { conn: to, line });
        }
    }

    /// Delivers an event to many connections: one [`Effect::SendMany`] per capability variant
    /// that someone needs (each connection is in one of them, so its lines stay in order).
    pub(crate) fn deliver_all<I: IntoIterator<Item = ConnId>>(&mut self, out: &mut Outgoing, to: I) {
        let Server { clients, cur, effects, arena, .. } = self;
        let to = to.into_iter();
        let room = to.size_hint().0;
        let to = to.filter_map(|conn| clients.get(&conn).map(|c| (conn, c.caps)));
        deliver_grouped(out, to, room, Sinks { cur, effects, arena });
    }

    /// Delivers a room's event to its members but `except`, with the capabilities their
    /// memberships keep (no lookup of each member's client).
    pub(crate) fn deliver_to_room(&mut self, out: &mut Outgoing, folded: &str, except: ConnId) {
        let Server { channels, cur, effects, arena, .. } = self;
        let Some(ch) = channels.get(folded) else { return };
        let to = ch.members.iter().filter(|(conn, _)| **conn != except).map(|(conn, m)| (*conn, m.caps));
        deliver_grouped(out, to, ch.members.len(), Sinks { cur, effects, arena });
    }

    /// The client's capabilities changed: its memberships' copies follow.
    pub(crate) fn caps_changed(&mut self, conn: ConnId) {
        let Some(client) = self.clients.get(&conn) else { return };
        for name in &client.channels {
            if let Some(member) = self.channels.get_mut(name).and_then(|ch| ch.members.get_mut(&conn)) {
                member.caps = client.caps;
            }
        }
    }

    /// Everyone who shares a room with `conn` (not `conn` itself), each once.
    pub(crate) fn peers_of(&self, conn: ConnId) -> BTreeSet<ConnId> {
        let mut peers = BTreeSet::new();
        if let Some(client) = self.clients.get(&conn) {
            for name in &client.channels {
                if let Some(ch) = self.channels.get(name) {
                    peers.extend(ch.members.keys().copied());
                }
            }
        }
        peers.remove(&conn);
        peers
    }

    /// Whether two connections share at least one room.
    pub(crate) fn share_channel(&self, a: ConnId, b: ConnId) -> bool {
        let (Some(ca), Some(cb)) = (self.clients.get(&a), self.clients.get(&b)) else { return false };
        ca.channels.intersection(&cb.channels).next().is_some()
    }

    pub(crate) fn find_nick(&self, nick: &str) -> Option<ConnId> {
        chinwag_proto::with_casefold(nick, |folded| self.nicks.get(folded).copied())
    }

    /// The registered client using `nick`. A nick held by a connection that has not finished
    /// registering is taken, but nobody can be found, messaged or watched under it yet.
    pub(crate) fn find_user(&self, nick: &str) -> Option<ConnId> {
        self.find_nick(nick).filter(|conn| self.clients.get(conn).is_some_and(|c| c.registered))
    }

    /// Sends `ERROR`, forgets the client (telling its peers), and closes the connection.
    pub(crate) fn close(&mut self, conn: ConnId, reason: &str) {
        let Some(client) = self.clients.get(&conn) else { return };
        let text = format!("Closing Link: {} ({reason})", client.info.host);
        self.send_msg(conn, Message::new("ERROR").with_param(text));
        self.remove_client(conn, reason);
        self.closing.push(conn);
    }

    /// Forgets a client: its peers see QUIT, its nick goes to WHOWAS, watchers see it offline.
    pub(crate) fn remove_client(&mut self, conn: ConnId, reason: &str) {
        self.end_sasl(conn);
        let peers = self.peers_of(conn);
        let Some(client) = self.clients.remove(&conn) else { return };
        let lasted = self.now.mono.saturating_duration_since(client.connected_at).as_secs();
        tracing::info!(
            %conn,
            nick = client.nick_or_star(),
            ip = %client.info.ip,
            account = client.account.as_deref().unwrap_or("-"),
            duration_secs = lasted,
            %reason,
            "disconnected"
        );
        if let Some(account) = &client.account {
            self.sessions.remove(&chinwag_proto::casefold(account), conn);
        }
        if client.registered {
            self.registered_count = self.registered_count.saturating_sub(1);
            if client.invisible {
                self.invisible_count = self.invisible_count.saturating_sub(1);
            }
        }
        for target in client.monitoring() {
            if let Some(watchers) = self.monitors.get_mut(target) {
                watchers.remove(&conn);
                if watchers.is_empty() {
                    self.monitors.remove(target);
                }
            }
        }
        let quit = client.registered.then(|| {
            let mut quit = self.event(&client, Message::new("QUIT").with_param(reason));
            self.deliver_all(&mut quit, peers);
            let rooms: Vec<String> = client.channels.iter().cloned().collect();
            self.record_event_in(&rooms, &quit);
            quit
        });
        for name in &client.channels {
            self.leave_channel(conn, name);
        }
        if self.cluster.is_some() {
            self.cluster_forget(conn, quit.as_ref(), reason);
        }
        if let Some(nick) = client.nick() {
            if self.nicks.get(nick.folded()) == Some(&conn) {
                self.nicks.remove(nick.folded());
                if client.registered {
                    self.push_whowas(WhowasEntry::of(&client, self.now.wall_ms));
                    self.notify_monitors(nick.folded(), nick.as_str(), None);
                }
            }
        }
    }

    /// Removes a member from a room, and the room itself if it is now empty and not permanent.
    pub(crate) fn leave_channel(&mut self, conn: ConnId, folded: &str) {
        let mut last_here = false;
        let now_empty = match self.channels.get_mut(folded) {
            Some(ch) => {
                last_here = ch.members.remove(&conn).is_some() && ch.members.is_empty();
                // A room with a founder is kept when empty, like a registered channel.
                ch.members.is_empty() && ch.remote.is_empty() && !ch.permanent && ch.founder.is_none()
            }
            None => false,
        };
        if last_here {
            self.sync_interest(folded);
        }
        if now_empty {
            if let Some(ch) = self.channels.remove(folded) {
                self.forget_room(folded);
                if !self.stopping {
                    self.delete_channel(ch.name.as_str());
                }
            }
        }
        if let Some(client) = self.clients.get_mut(&conn) {
            client.channels.remove(folded);
        }
    }

    /// Nick protection ran out: the client gets a `Guest` nick everyone sees it change to.
    pub(crate) fn rename_to_guest(&mut self, conn: ConnId) {
        if let Some(c) = self.clients.get_mut(&conn) {
            c.clear_extra(|e| e.nick_deadline = None);
        }
        let guest = loop {
            self.guest_seq += 1;
            let candidate = format!("Guest{}", self.guest_seq);
            let folded = chinwag_proto::casefold(&candidate);
            if !self.nicks.contains_key(&folded) && !self.nick_taken_elsewhere(&folded, conn) {
                break candidate;
            }
        };
        let Ok(nick) = chinwag_proto::Nick::parse(&guest, self.cfg.limits.nick_len) else { return };
        // In cluster mode the Guest nick is claimed first (and another tried if it is taken);
        // this runs again from the claim's answer, inside its command.
        let inside = self.cur.conn == Some(conn);
        if !inside {
            self.begin(conn, None);
        }
        if self.guest_claimed(conn, &nick) {
            self.nickserv_notice("You did not log in in time; your nick has been changed.");
            self.change_nick(nick);
        }
        if !inside {
            self.finish();
        }
    }

    /// Records the current nick of `conn` for WHOWAS (before a nick change).
    pub(crate) fn remember_whowas(&mut self, conn: ConnId) {
        if let Some(entry) = self.clients.get(&conn).and_then(|c| WhowasEntry::of(c, self.now.wall_ms)) {
            self.push_whowas(Some(entry));
        }
    }

    pub(crate) fn push_whowas(&mut self, entry: Option<WhowasEntry>) {
        let Some(entry) = entry else { return };
        if self.cfg.limits.whowas_len == 0 {
            return;
        }
        while self.whowas.len() >= self.cfg.limits.whowas_len {
            self.whowas.pop_front();
        }
        self.whowas.push_back(entry);
    }

    /// Tells MONITOR watchers of `folded` that it came online (`Some(prefix)`) or went offline.
    pub(crate) fn notify_monitors(&mut self, folded: &str, nick: &str, online_prefix: Option<&str>) {
        let Some(watchers) = self.monitors.get(folded) else { return };
        let watchers: Vec<ConnId> = watchers.iter().copied().collect();
        for w in watchers {
            match online_prefix {
                Some(prefix) => self.numeric_to(w, RPL_MONONLINE, [prefix]),
                None => self.numeric_to(w, RPL_MONOFFLINE, [nick]),
            }
        }
    }

    fn parse_error(&mut self, err: &ParseError) {
        match err {
            ParseError::Empty => {}
            ParseError::InvalidUtf8 => self.fail(
                "*",
                "INVALID_UTF8",
                &[],
                "Message rejected: your IRC software must send UTF-8 (this server is UTF8ONLY)",
            ),
            ParseError::BodyTooLong | ParseError::TagsTooLong | ParseError::ClientTagsTooLong => {
                self.numeric(ERR_INPUTTOOLONG, [err.to_string()]);
            }
            other => {
                let text = format!("Malformed line: {other}");
                self.fail("*", "INVALID_MESSAGE", &[], &text);
            }
        }
    }

    fn dispatch(&mut self, mut msg: Message) {
        let msg = &mut msg;
        // Upper-cased where it is and taken out of the message, so that the handlers can have
        // both; a relayed message reuses it.
        msg.command.make_ascii_uppercase();
        let command = std::mem::take(&mut msg.command);
        let registered = self.cur_client().is_some_and(|c| c.registered);
        match command.as_str() {
            "CAP" => self.handle_cap(msg),
            "PASS" => self.handle_pass(msg),
            "NICK" => self.handle_nick(msg),
            "USER" => self.handle_user(msg),
            "PING" => self.handle_ping(msg),
            "PONG" => self.handle_pong(msg),
            "AUTHENTICATE" => self.handle_authenticate(msg),
            "REGISTER" => self.handle_register(msg),
            "QUIT" => self.handle_quit(msg),
            _ if !registered => self.numeric(ERR_NOTREGISTERED, ["You have not registered"]),
            "JOIN" => self.handle_join(msg),
            "PART" => self.handle_part(msg),
            "TOPIC" => self.handle_topic(msg),
            "NAMES" => self.handle_names(msg),
            "LIST" => self.handle_list(msg),
            "KICK" => self.handle_kick(msg),
            "INVITE" => self.handle_invite(msg),
            "PRIVMSG" | "NOTICE" if msg.params.first().is_some_and(|t| t.starts_with('$')) => {
                self.handle_server_notice(&command, msg)
            }
            "PRIVMSG" | "NOTICE" | "TAGMSG" => self.handle_message(command, msg),
            "BATCH" => self.handle_batch(msg),
            "KILL" => self.handle_kill(msg),
            "WALLOPS" => self.handle_wallops(msg),
            "KLINE" => self.handle_kline(msg),
            "UNKLINE" => self.handle_unkline(msg),
            "REHASH" => self.handle_rehash(),
            "OPER" => self.handle_oper(msg),
            "MODE" => self.handle_mode(msg),
            "WHO" => self.handle_who(msg),
            "WHOIS" => self.handle_whois(msg),
            "WHOWAS" => self.handle_whowas(msg),
            "AWAY" => self.handle_away(msg),
            "ISON" => self.handle_ison(msg),
            "USERHOST" => self.handle_userhost(msg),
            "SETNAME" => self.handle_setname(msg),
            "MONITOR" => self.handle_monitor(msg),
            "CHATHISTORY" => self.handle_chathistory(msg),
            "MARKREAD" => self.handle_markread(msg),
            "REDACT" => self.handle_redact(msg),
            "E2E" => self.handle_e2e(msg),
            "NICKSERV" | "NS" => self.handle_ns_command(msg),
            "LUSERS" => self.send_lusers(),
            "MOTD" => self.send_motd(),
            "VERSION" => self.handle_version(),
            "TIME" => self.handle_time(),
            "INFO" => self.handle_info(),
            "HELP" | "HELPOP" => self.handle_help(msg),
            "LINKS" => self.handle_links(),
            _ => self.numeric(ERR_UNKNOWNCOMMAND, [command.as_str(), "Unknown command"]),
        }
    }
}

/// Where [`deliver_grouped`] puts what it makes: the current command's replies, the effects,
/// the line arena. Fields of `Server`, borrowed apart from the clients or rooms it reads.
struct Sinks<'a> {
    cur: &'a mut Current,
    effects: &'a mut Vec<Effect>,
    arena: &'a mut LineArena,
}

/// Groups `to` (connections and their capabilities) by capability variant and delivers each
/// group as one effect; the current connection, if among them, gets a reply. `room`: about how
/// many there are, to size each group's list once (most rooms are one variant, and growing the
/// list a member at a time copied it over and over).
fn deliver_grouped(out: &mut Outgoing, to: impl Iterator<Item = (ConnId, CapSet)>, room: usize, sinks: Sinks<'_>) {
    let Sinks { cur, effects, arena } = sinks;
    // Per group: the capabilities that select it, and who gets it.
    let mut groups: [(CapSet, Vec<ConnId>); GROUPS] = Default::default();
    for (conn, caps) in to {
        if !out.wanted_by(caps) {
            continue;
        }
        if cur.conn == Some(conn) {
            cur.replies.extend(out.messages_for(caps));
        } else {
            let group = &mut groups[out.group(caps)];
            if group.1.is_empty() {
                group.1.reserve(room.max(1));
            }
            group.0 = caps;
            group.1.push(conn);
        }
    }
    for (caps, conns) in groups {
        if out.multiline.is_some() && !conns.is_empty() {
            // Each line of a multiline message to the whole group, in order.
            for line in out.lines_for(caps, arena) {
                match conns.as_slice() {
                    &[conn] => effects.push(Effect::Send { conn, line }),
                    _ => effects.push(Effect::SendMany { line, conns: conns.clone() }),
                }
            }
            continue;
        }
        match conns.as_slice() {
            [] => {}
            &[conn] => effects.push(Effect::Send { conn, line: out.bytes_for(caps, arena) }),
            [_, ..] => effects.push(Effect::SendMany { line: out.bytes_for(caps, arena), conns }),
        }
    }
}

/// Makes every parameter but the last one a single word (see [`crate::text::middle_param`]).
fn fix_middle_params(msg: &mut Message) {
    let Some((_, middle)) = msg.params.split_last_mut() else { return };
    for p in middle {
        if let std::borrow::Cow::Owned(fixed) = crate::text::middle_param(p) {
            *p = fixed;
        }
    }
}
