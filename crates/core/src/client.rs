//! One connected client, as the core sees it.

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Instant;

use chinwag_proto::Nick;

use crate::caps::CapSet;
use crate::flood::{Bucket, RecvQ};
use crate::handlers::account::SaslState;
use crate::ids::ConnId;

/// What the edge knows about a new connection.
#[derive(Clone, Debug)]
pub struct ConnInfo {
    /// The peer's address; used for limits, logs and (later) login policy.
    pub ip: IpAddr,
    /// The host part shown to others (`nick!user@host`); the edge decides whether it is the
    /// address, a cloak or a name. Must not start with ':' and must not contain spaces.
    pub host: String,
    /// Whether the connection is encrypted (TLS); shown in WHOIS (671).
    pub tls: bool,
    /// Whether that TLS is QUIC's (a QUIC stream rather than TCP); for operators' listings.
    pub quic: bool,
}

impl ConnInfo {
    /// The transport's name as operators see it: `plaintext`, `tls` or `quic`.
    pub fn transport(&self) -> &'static str {
        match (self.quic, self.tls) {
            (true, _) => "quic",
            (false, true) => "tls",
            (false, false) => "plaintext",
        }
    }
}

/// A client connection and everything the core keeps about it.
#[derive(Debug)]
pub(crate) struct Client {
    pub id: ConnId,
    pub info: ConnInfo,
    /// Set by NICK; `None` until the first valid NICK.
    pub nick: Option<Nick>,
    /// Set by USER; already prefixed with `~` (we do not run ident).
    pub user: Option<String>,
    pub realname: String,
    /// Whether the 001 burst was sent.
    pub registered: bool,
    /// `CAP LS`/`CAP REQ` before registration holds registration until `CAP END`.
    pub cap_negotiating: bool,
    /// Highest `CAP LS` version seen (302 enables cap-notify and values).
    pub cap_version: u32,
    pub caps: CapSet,
    /// The password given with PASS, checked at registration if the server has one.
    pub pass: Option<String>,
    pub away: Option<String>,
    /// User mode +i: hidden from WHO/NAMES of people who share no room with us.
    pub invisible: bool,
    /// Logged-in account; shown by account-tag, extended-join, WHOIS and WHO.
    pub account: Option<String>,
    /// Channels the client is in, by folded name.
    pub channels: BTreeSet<String>,
    /// Folded nicks this client MONITORs.
    pub monitoring: BTreeSet<String>,
    /// Unix milliseconds of registration (WHOIS signon).
    pub signon_ms: u64,
    /// Any line from the client; drives our PINGs.
    pub last_active: Instant,
    /// Last PRIVMSG/NOTICE sent; WHOIS idle time.
    pub last_spoke: Instant,
    /// When we sent a PING that is still unanswered.
    pub ping_sent: Option<Instant>,
    pub connected_at: Instant,
    /// An AUTHENTICATE exchange in progress.
    pub sasl: Option<SaslState>,
    /// A password check is out; registration waits for it (PASS account:password).
    pub login_pending: bool,
    /// Using a registered nick without its account: renamed at this instant unless logged in.
    pub nick_deadline: Option<Instant>,
    /// The command budget (`limits.flood`).
    pub flood: Bucket,
    /// Lines that arrived faster than `flood` allows, waiting their turn.
    pub recvq: RecvQ,
    /// The nick-change budget (`limits.nick_changes`).
    pub nick_changes: Bucket,
    /// The end-to-end encryption device this connection published (`E2E DEVICE`): encrypted
    /// messages addressed to it reach this connection whatever its nick.
    pub e2e_device: Option<String>,
}

impl Client {
    pub fn new(id: ConnId, info: ConnInfo, now: Instant) -> Self {
        Client {
            id,
            info,
            nick: None,
            user: None,
            realname: String::new(),
            registered: false,
            cap_negotiating: false,
            cap_version: 0,
            caps: CapSet::default(),
            pass: None,
            away: None,
            invisible: false,
            account: None,
            channels: BTreeSet::new(),
            monitoring: BTreeSet::new(),
            signon_ms: 0,
            last_active: now,
            last_spoke: now,
            ping_sent: None,
            connected_at: now,
            sasl: None,
            login_pending: false,
            nick_deadline: None,
            flood: Bucket::new(now),
            recvq: RecvQ::default(),
            nick_changes: Bucket::new(now),
            e2e_device: None,
        }
    }

    /// The nick, or `*` before one is set (the form numerics use).
    pub fn nick_or_star(&self) -> &str {
        self.nick.as_ref().map_or("*", |n| n.as_str())
    }

    pub fn user_or_star(&self) -> &str {
        self.user.as_deref().unwrap_or("*")
    }

    /// `nick!user@host`, the source of everything the client sends to others. Built by hand
    /// rather than with `format!`: it is made for every message the client sends.
    pub fn prefix(&self) -> String {
        let mut prefix = String::with_capacity(self.prefix_len());
        for part in [self.nick_or_star(), "!", self.user_or_star(), "@", self.info.host.as_str()] {
            prefix.push_str(part);
        }
        prefix
    }

    /// The length of [`Client::prefix`], without building it.
    pub fn prefix_len(&self) -> usize {
        self.nick_or_star().len() + self.user_or_star().len() + self.info.host.len() + 2
    }
}
