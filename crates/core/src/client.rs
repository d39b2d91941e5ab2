//! One connected client, as the core sees it.

use std::collections::{BTreeSet, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use chinwag_proto::Nick;

use crate::caps::CapSet;
use crate::flood::{Bucket, RecvQ};
use crate::handlers::multiline::{Ended, OpenBatch};
use crate::handlers::offline::OfflineAck;
use crate::handlers::sasl::SaslState;
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
    /// The SHA-256 of the client certificate presented in the TLS handshake, for SASL
    /// EXTERNAL (CertFP). Boxed: one pointer, so that an idle client stays within 320 bytes;
    /// [`Client::certfp`] gives it as text.
    pub certfp: Option<Box<[u8; 32]>>,
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
    /// Set by NICK; `None` until the first valid NICK. Changed through [`Client::set_nick`].
    nick: Option<Nick>,
    /// Set by USER; already prefixed with `~` (we do not run ident). Set through
    /// [`Client::set_user`].
    user: Option<String>,
    /// `nick!user@host`, made again whenever the nick or user changes (the host is the
    /// connection's, fixed when it was accepted): it is the source of every message the client
    /// sends, and each of them used to build it anew.
    prefix: Arc<str>,
    pub realname: String,
    /// Whether the 001 burst was sent.
    pub registered: bool,
    /// `CAP LS`/`CAP REQ` before registration holds registration until `CAP END`.
    pub cap_negotiating: bool,
    /// Highest `CAP LS` version seen (302 enables cap-notify and values).
    pub cap_version: u32,
    pub caps: CapSet,
    /// User mode +i: hidden from WHO/NAMES of people who share no room with us.
    pub invisible: bool,
    /// User mode +B (IRCv3 bot-mode): shown in WHOIS (335) and WHO (`B`), and every message
    /// the client sends carries the `bot` tag.
    pub bot: bool,
    /// Logged-in account; shown by account-tag, extended-join, WHOIS and WHO.
    pub account: Option<String>,
    /// Channels the client is in, by folded name.
    pub channels: BTreeSet<String>,
    /// Unix milliseconds of registration (WHOIS signon).
    pub signon_ms: u64,
    /// Any line from the client; drives our PINGs.
    pub last_active: Instant,
    /// Last PRIVMSG/NOTICE sent; WHOIS idle time.
    pub last_spoke: Instant,
    /// When we sent a PING that is still unanswered.
    pub ping_sent: Option<Instant>,
    pub connected_at: Instant,
    /// A password check is out; registration waits for it (PASS account:password).
    pub login_pending: bool,
    /// Requests this client's commands made that are still out (a password check, a history
    /// read, …). While any is, its later lines wait in the RecvQ, so that one client's commands
    /// run strictly in the order it sent them (see `flood.rs`).
    pub waiting: u16,
    /// The command budget (`limits.flood`).
    pub flood: Bucket,
    /// The nick-change budget (`limits.nick_changes`).
    pub nick_changes: Bucket,
    /// What few clients have at a time, apart: `None` while all of it is empty.
    extra: Option<Box<Extra>>,
}

/// The parts of a [`Client`] that most clients leave empty most of the time, boxed apart so
/// that an idle client does not carry their room (176 bytes: the `Client` fits a 320-byte
/// allocation instead of a 512-byte one). Read through [`Client::extra`], written through
/// [`Client::extra_mut`]; [`Client::tidy`] lets the box go once all of it is empty again.
#[derive(Debug, Default)]
pub(crate) struct Extra {
    /// The password given with PASS, checked at registration if the server has one.
    pub pass: Option<String>,
    pub away: Option<String>,
    /// An AUTHENTICATE exchange in progress.
    pub sasl: Option<SaslState>,
    /// Using a registered nick without its account: renamed at this instant unless logged in.
    pub nick_deadline: Option<Instant>,
    /// Lines that arrived faster than `flood` allows, waiting their turn.
    pub recvq: RecvQ,
    /// The end-to-end encryption device this connection published (`E2E DEVICE`): encrypted
    /// messages addressed to it reach this connection whatever its nick.
    pub e2e_device: Option<String>,
    /// Folded nicks this client MONITORs.
    pub monitoring: BTreeSet<String>,
    /// Pages of offline messages sent and not yet acknowledged (`handlers/offline.rs`).
    pub offline_acks: Vec<OfflineAck>,
    /// A guest's read markers (folded target → time ms), kept for this connection only; an
    /// account's are in `Server::sessions`. At most [`crate::MAX_READ_MARKERS`].
    pub read_markers: std::collections::HashMap<String, u64>,
    /// A draft/multiline batch being received (`handlers/multiline.rs`).
    pub batch: Option<Box<OpenBatch>>,
    /// Multiline batches that ended, each waiting for its `BATCH -ref` line to run.
    pub batches_ended: VecDeque<Ended>,
}

impl Extra {
    fn is_empty(&self) -> bool {
        self.pass.is_none()
            && self.away.is_none()
            && self.sasl.is_none()
            && self.nick_deadline.is_none()
            && self.recvq.is_empty()
            && self.e2e_device.is_none()
            && self.monitoring.is_empty()
            && self.offline_acks.is_empty()
            && self.read_markers.is_empty()
            && self.batch.is_none()
            && self.batches_ended.is_empty()
    }
}

impl Client {
    pub fn new(id: ConnId, info: ConnInfo, now: Instant) -> Self {
        let prefix = build_prefix(None, None, &info.host);
        Client {
            id,
            info,
            nick: None,
            user: None,
            prefix,
            realname: String::new(),
            registered: false,
            cap_negotiating: false,
            cap_version: 0,
            caps: CapSet::default(),
            invisible: false,
            bot: false,
            account: None,
            channels: BTreeSet::new(),
            signon_ms: 0,
            last_active: now,
            last_spoke: now,
            ping_sent: None,
            connected_at: now,
            login_pending: false,
            waiting: 0,
            flood: Bucket::new(now),
            nick_changes: Bucket::new(now),
            extra: None,
        }
    }

    /// The seldom-set parts, if any is set.
    pub fn extra(&self) -> Option<&Extra> {
        self.extra.as_deref()
    }

    /// The seldom-set parts, made (empty) if there were none: call [`Client::tidy`] after
    /// clearing any of them.
    pub fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_default()
    }

    /// The seldom-set parts if any is set, to change them without making them.
    pub fn existing_extra_mut(&mut self) -> Option<&mut Extra> {
        self.extra.as_deref_mut()
    }

    /// Lets the seldom-set parts go once all of them are empty.
    pub fn tidy(&mut self) {
        if self.extra.as_deref().is_some_and(Extra::is_empty) {
            self.extra = None;
        }
    }

    /// Clears one of the seldom-set parts (if there are any) and tidies up.
    pub fn clear_extra(&mut self, clear: impl FnOnce(&mut Extra)) {
        if let Some(extra) = self.extra.as_deref_mut() {
            clear(extra);
            self.tidy();
        }
    }

    /// The fingerprint of the client certificate this connection presented, as 64 lower-case
    /// hex digits (the form NickServ CERT stores and WHOIS shows).
    pub fn certfp(&self) -> Option<String> {
        let digest = self.info.certfp.as_deref()?;
        Some(digest.iter().map(|b| format!("{b:02x}")).collect())
    }

    /// The password given with PASS, until registration checks it.
    pub fn pass(&self) -> Option<&str> {
        self.extra()?.pass.as_deref()
    }

    pub fn away(&self) -> Option<&str> {
        self.extra()?.away.as_deref()
    }

    pub fn e2e_device(&self) -> Option<&str> {
        self.extra()?.e2e_device.as_deref()
    }

    pub fn nick_deadline(&self) -> Option<Instant> {
        self.extra()?.nick_deadline
    }

    /// Folded nicks this client MONITORs.
    pub fn monitoring(&self) -> impl Iterator<Item = &String> {
        self.extra().into_iter().flat_map(|e| &e.monitoring)
    }

    /// Whether lines wait in the RecvQ (see `flood.rs`).
    pub fn has_queued(&self) -> bool {
        self.extra().is_some_and(|e| !e.recvq.is_empty())
    }

    /// Whether a line from this client must wait its turn in the RecvQ rather than run now:
    /// earlier lines wait there, or one of its commands waits for the edge.
    pub fn must_queue(&self) -> bool {
        self.waiting > 0 || self.has_queued()
    }

    pub fn nick(&self) -> Option<&Nick> {
        self.nick.as_ref()
    }

    pub fn set_nick(&mut self, nick: Nick) {
        self.nick = Some(nick);
        self.prefix = build_prefix(self.nick.as_ref(), self.user.as_deref(), &self.info.host);
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    pub fn set_user(&mut self, user: String) {
        self.user = Some(user);
        self.prefix = build_prefix(self.nick.as_ref(), self.user.as_deref(), &self.info.host);
    }

    /// The nick, or `*` before one is set (the form numerics use).
    pub fn nick_or_star(&self) -> &str {
        self.nick.as_ref().map_or("*", |n| n.as_str())
    }

    pub fn user_or_star(&self) -> &str {
        self.user.as_deref().unwrap_or("*")
    }

    /// `nick!user@host`, the source of everything the client sends to others.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// [`Client::prefix`], shared: what an event the client sends keeps as its source.
    pub fn shared_prefix(&self) -> Arc<str> {
        Arc::clone(&self.prefix)
    }
}

/// `nick!user@host`, with `*` for what is not set yet.
fn build_prefix(nick: Option<&Nick>, user: Option<&str>, host: &str) -> Arc<str> {
    let nick = nick.map_or("*", |n| n.as_str());
    let user = user.unwrap_or("*");
    let mut prefix = String::with_capacity(nick.len() + user.len() + host.len() + 2);
    for part in [nick, "!", user, "@", host] {
        prefix.push_str(part);
    }
    prefix.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every connected client is one boxed `Client`: at most 320 bytes is one of mimalloc's
    /// size classes (the next is 384). It was 496 before the seldom-set parts went to `Extra`
    /// and a nick's two spellings to one allocation.
    #[test]
    fn a_client_fits_320_bytes() {
        let size = std::mem::size_of::<Client>();
        assert!(size <= 320, "a Client is {size} bytes");
    }

    /// The box of seldom-set parts goes once they are all empty again, so that a client that
    /// logged in with SASL or PASS, or was away, does not keep it.
    #[test]
    fn the_extra_parts_go_when_emptied() {
        let info =
            ConnInfo { ip: "127.0.0.1".parse().expect("ip"), host: "h".into(), tls: false, quic: false, certfp: None };
        let mut client = Client::new(ConnId(1), info, Instant::now());
        assert!(client.extra().is_none());
        client.clear_extra(|e| e.away = None);
        assert!(client.extra().is_none(), "clearing nothing makes nothing");
        client.extra_mut().away = Some("lunch".into());
        client.extra_mut().pass = Some("secret".into());
        assert_eq!(client.away(), Some("lunch"));
        client.clear_extra(|e| e.away = None);
        assert!(client.extra().is_some(), "the password is still there");
        client.clear_extra(|e| e.pass = None);
        assert!(client.extra().is_none());
    }
}
