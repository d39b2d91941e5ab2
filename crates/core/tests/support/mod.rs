//! A driver for scenario tests: lines in, lines out, with a hand-turned clock.

#![allow(dead_code)]

pub mod net;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use chinwag_core::{
    ChannelSnapshot, Config, ConnId, ConnInfo, Effect, HistoryItem, Now, Request, RequestId, Response, Server,
};
use chinwag_proto::Message;

pub struct Harness {
    pub server: Server,
    base: Instant,
    elapsed: Duration,
    wall_ms: u64,
    next_conn: u64,
    outbox: HashMap<ConnId, Vec<String>>,
    closed: HashSet<ConnId>,
    /// Requests the core made, in order, not yet answered.
    pub requests: Vec<(RequestId, Request)>,
    /// Messages the core asked to persist, in order.
    pub persisted: Vec<HistoryItem>,
    /// Room events the core asked to persist (draft/event-playback), in order.
    pub events: Vec<HistoryItem>,
    /// Room snapshots saved (latest last) and rooms deleted.
    pub saved_rooms: Vec<ChannelSnapshot>,
    pub deleted_rooms: Vec<String>,
    /// (account, up to msgid) offline queues cleared.
    pub cleared_offline: Vec<(String, String)>,
    /// `Effect::QueueOffline`s: (account, msgid).
    pub queued_offline: Vec<(String, String)>,
    /// What the core left for the bus (cluster mode only), in order.
    pub cluster: Vec<chinwag_core::ClusterEffect>,
}

impl Harness {
    /// The default configuration, but without the history replay on JOIN (its storage read
    /// would be one more request for every scenario that joins a default room);
    /// `tests/autoreplay.rs` turns it on.
    pub fn new() -> Self {
        let mut cfg = Config::default();
        cfg.limits.autoreplay_lines = 0;
        Self::with_config(cfg)
    }

    pub fn with_config(cfg: Config) -> Self {
        Self::with_node(cfg, 1)
    }

    /// With `node` as the server's node number (what its msgids end with): the nodes of one
    /// cluster have different ones.
    pub fn with_node(cfg: Config, node: u32) -> Self {
        let base = Instant::now();
        let wall_ms = 1_795_269_772_000;
        let server = Server::new(cfg, node, Now { wall_ms, mono: base });
        Harness {
            server,
            base,
            elapsed: Duration::ZERO,
            wall_ms,
            next_conn: 0,
            outbox: HashMap::new(),
            closed: HashSet::new(),
            requests: Vec::new(),
            persisted: Vec::new(),
            events: Vec::new(),
            saved_rooms: Vec::new(),
            deleted_rooms: Vec::new(),
            cleared_offline: Vec::new(),
            queued_offline: Vec::new(),
            cluster: Vec::new(),
        }
    }

    pub fn now(&self) -> Now {
        Now { wall_ms: self.wall_ms + self.elapsed.as_millis() as u64, mono: self.base + self.elapsed }
    }

    /// Takes the effects the core left, as every entry point here does after its call.
    pub fn collect(&mut self) {
        let mut effects = Vec::new();
        self.server.drain_effects(&mut effects);
        for e in effects.into_iter().flat_map(Effect::per_conn) {
            match e {
                Effect::Send { conn, line } => {
                    assert!(!self.closed.contains(&conn), "sent to {conn} after it was closed");
                    let text = String::from_utf8(line.to_vec()).expect("server sent UTF-8");
                    assert!(text.ends_with("\r\n"), "line without CRLF: {text:?}");
                    assert!(text.len() <= 8191 + 512, "line too long: {text:?}");
                    self.outbox.entry(conn).or_default().push(text.trim_end_matches("\r\n").to_owned());
                }
                Effect::SendMany { .. } => unreachable!("split by per_conn"),
                Effect::Close { conn } => {
                    self.closed.insert(conn);
                }
                Effect::Request { id, request } => self.requests.push((id, request)),
                Effect::Persist(item) if item.is_event() => self.events.push(*item),
                Effect::Persist(item) => self.persisted.push(*item),
                Effect::SaveChannel(snap) => self.saved_rooms.push(*snap),
                Effect::DeleteChannel(name) => self.deleted_rooms.push(name),
                Effect::ClearOffline { account, up_to_msgid } => self.cleared_offline.push((account, up_to_msgid)),
                Effect::QueueOffline { account, msgid } => self.queued_offline.push((account, msgid)),
                Effect::Cluster(effect) => self.cluster.push(effect),
            }
        }
    }

    pub fn connect(&mut self) -> ConnId {
        self.connect_from(IpAddr::V4(Ipv4Addr::LOCALHOST), false)
    }

    pub fn connect_from(&mut self, ip: IpAddr, tls: bool) -> ConnId {
        self.connect_info(ConnInfo { ip, host: ip.to_string(), tls, quic: false, certfp: None })
    }

    /// A connection described in full (a client certificate, say).
    pub fn connect_info(&mut self, info: ConnInfo) -> ConnId {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let now = self.now();
        self.server.connect(conn, info, now);
        self.collect();
        conn
    }

    /// Sends one line from `conn` (without CRLF), parsed as the edge parses a client's line.
    pub fn send(&mut self, conn: ConnId, line: &str) {
        let now = self.now();
        self.server.handle(conn, Message::parse_client(line), now);
        self.collect();
    }

    /// Sends raw bytes as one line (for invalid UTF-8 and the like).
    pub fn send_bytes(&mut self, conn: ConnId, line: &[u8]) {
        let now = self.now();
        self.server.handle(conn, Message::parse_client_bytes(line), now);
        self.collect();
    }

    pub fn disconnect(&mut self, conn: ConnId, reason: &str) {
        let now = self.now();
        self.server.disconnect(conn, reason, now);
        self.closed.insert(conn);
        self.collect();
    }

    /// Takes the oldest unanswered request.
    #[track_caller]
    pub fn next_request(&mut self) -> (RequestId, Request) {
        assert!(!self.requests.is_empty(), "the core made no request");
        self.requests.remove(0)
    }

    /// Answers a request as the edge would.
    pub fn respond(&mut self, id: RequestId, response: Response) {
        let now = self.now();
        self.server.complete(id, response, now);
        self.collect();
    }

    /// Answers the oldest request that `is` picks, as the edge would; false if there is none.
    pub fn answer(&mut self, is: impl Fn(&Request) -> bool, response: Response) -> bool {
        let Some(pos) = self.requests.iter().position(|(_, r)| is(r)) else { return false };
        let (id, _) = self.requests.remove(pos);
        self.respond(id, response);
        true
    }

    /// Stops the server as the edge does at shutdown.
    pub fn close_all(&mut self, reason: &str) {
        let now = self.now();
        self.server.close_all(reason, now);
        self.collect();
    }

    /// Moves the clock forward and lets the server react.
    pub fn advance(&mut self, by: Duration) {
        self.elapsed += by;
        let now = self.now();
        self.server.tick(now);
        self.collect();
    }

    /// Registered clients with `nicks`, all in `rooms` (a JOIN list), with nothing left to take.
    pub fn members_of(&mut self, rooms: &str, nicks: &[&str]) -> Vec<ConnId> {
        let conns: Vec<ConnId> = nicks.iter().map(|nick| self.register(nick)).collect();
        for &conn in &conns {
            self.send(conn, &format!("JOIN {rooms}"));
        }
        self.clear(&conns);
        conns
    }

    /// A registered client with `nick`, its welcome burst already taken.
    pub fn register(&mut self, nick: &str) -> ConnId {
        self.register_with_caps(nick, "")
    }

    /// A registered client that negotiated `caps` (space separated) first.
    pub fn register_with_caps(&mut self, nick: &str, caps: &str) -> ConnId {
        let conn = self.connect();
        if !caps.is_empty() {
            self.send(conn, "CAP LS 302");
            self.send(conn, &format!("CAP REQ :{caps}"));
        }
        self.send(conn, &format!("NICK {nick}"));
        self.send(conn, &format!("USER {nick} 0 * :{nick} real"));
        if !caps.is_empty() {
            let lines = self.take(conn);
            assert!(lines.iter().any(|l| l.contains(" ACK ")), "caps {caps} not acked: {lines:#?}");
            self.send(conn, "CAP END");
        }
        let lines = self.take(conn);
        assert!(lines.iter().any(|l| l.contains(" 001 ")), "no welcome for {nick}: {lines:#?}");
        conn
    }

    /// Everything sent to `conn` since the last take.
    pub fn take(&mut self, conn: ConnId) -> Vec<String> {
        self.outbox.remove(&conn).unwrap_or_default()
    }

    /// Drops what was sent to these connections so far.
    pub fn clear(&mut self, conns: &[ConnId]) {
        for c in conns {
            self.outbox.remove(c);
        }
    }

    pub fn is_closed(&self, conn: ConnId) -> bool {
        self.closed.contains(&conn)
    }

    /// Logs `conn` in to `account` with `NS IDENTIFY`, answering the password check as the
    /// store would, and what follows a login: the offline fetch with an empty queue, and for a
    /// client with `draft/read-marker` the load of its read markers with none.
    pub fn login(&mut self, conn: ConnId, account: &str) {
        self.send(conn, &format!("NS IDENTIFY {account} password123"));
        let (id, request) = self.next_request();
        assert!(matches!(request, Request::CheckPassword { .. }), "{request:?}");
        self.respond(id, Response::Account(Ok(account.into())));
        self.answer(|r| matches!(r, Request::Offline { .. }), Response::Messages(Ok(Vec::new())));
        self.answer(|r| matches!(r, Request::ReadMarkers { .. }), Response::Markers(Ok(Vec::new())));
        self.take(conn);
    }
}

/// The SASL PLAIN payload for `account` and `password`, base64.
pub fn sasl_plain(account: &str, password: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(format!("\0{account}\0{password}"))
}

/// The parameters of every line whose command is `command`.
pub fn all(lines: &[String], command: &str) -> Vec<Vec<String>> {
    parsed(lines).into_iter().filter(|m| m.command == command).map(|m| m.params).collect()
}

/// The parsed lines, for assertions on structure rather than spelling.
pub fn parsed(lines: &[String]) -> Vec<Message> {
    lines.iter().map(|l| Message::parse(l).expect("server output parses")).collect()
}

/// The first line whose command is `command`, parsed.
pub fn find(lines: &[String], command: &str) -> Option<Message> {
    parsed(lines).into_iter().find(|m| m.command == command)
}

/// Asserts that `lines` contain a line with `command`, returning it parsed.
#[track_caller]
pub fn expect(lines: &[String], command: &str) -> Message {
    find(lines, command).unwrap_or_else(|| panic!("expected {command} in {lines:#?}"))
}
