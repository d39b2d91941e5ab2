//! Network events (the log) and node messages (a node's topic), and their byte form.
//!
//! Every payload is `[VERSION, kind, fields…]` (`codec.rs`). A payload that does not decode —
//! another version, an unknown kind, a field cut short or not UTF-8 — is `None`: the caller
//! logs it and applies nothing.

use bytes::Bytes;

use super::codec::{Reader, Writer};
use super::UserId;

/// What one registered user looks like to the rest of the network.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct UserFacts {
    pub uid: UserId,
    pub nick: String,
    pub user: String,
    pub host: String,
    pub realname: String,
    pub account: Option<String>,
    pub away: Option<String>,
    pub invisible: bool,
    pub bot: bool,
    pub tls: bool,
    pub signon_ms: u64,
    /// The server name of the user's node (that node's `server_name`), which WHOIS and WHO show
    /// on every node. An `Introduce` of an older version has none: the node's name stands in.
    pub server: String,
    /// An IRC operator (set by a later `Oper` event; not part of `Introduce`'s bytes).
    pub oper: bool,
    /// The E2E device the connection is bound to (set by a later `Device` event).
    pub e2e_device: Option<String>,
}

/// When, and under which msgids, the author's node made the lines of a room event (JOIN, PART,
/// TOPIC, MODE: one; KICK: one per victim) or of a NICK or QUIT (one), so that every node shows
/// them alike and the author's history row (event-playback) has the same msgid. Carried at the end of the event:
/// an entry of an older version has none, and each node uses its own clock and msgids.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Stamp {
    pub time_ms: u64,
    pub msgids: Vec<String>,
}

impl Stamp {
    /// The time and msgid of the event's `n`th line, if the stamp has one.
    pub fn line(stamp: Option<&Stamp>, n: usize) -> Option<(u64, String)> {
        let stamp = stamp?;
        Some((stamp.time_ms, stamp.msgids.get(n)?.clone()))
    }
}

/// One change of a [`NetEvent::Mode`]: (add, letter, parameter, member by id).
pub(crate) type ModeItem = (bool, char, Option<String>, Option<UserId>);

/// A change to the network's state, appended to the log and applied by every node in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NetEvent {
    /// A user registered on its node.
    Introduce(Box<UserFacts>),
    /// `stamp`: the NICK line's time and msgid on the user's node (one line), so that every
    /// node shows it alike.
    Nick {
        uid: UserId,
        nick: String,
        stamp: Option<Stamp>,
    },
    /// `stamp` as for [`NetEvent::Nick`] (the AWAY line away-notify shows).
    Away {
        uid: UserId,
        away: Option<String>,
        stamp: Option<Stamp>,
    },
    /// Logged in (`Some`) or out; `stamp`: its ACCOUNT line's.
    Account {
        uid: UserId,
        account: Option<String>,
        stamp: Option<Stamp>,
    },
    /// `stamp` as for [`NetEvent::Nick`].
    Quit {
        uid: UserId,
        reason: String,
        stamp: Option<Stamp>,
    },
    /// SETNAME; `stamp`: its line's.
    Realname {
        uid: UserId,
        realname: String,
        stamp: Option<Stamp>,
    },
    /// The user became an IRC operator.
    Oper {
        uid: UserId,
    },
    /// The user modes others see: +i and +B.
    UserModes {
        uid: UserId,
        invisible: bool,
        bot: bool,
    },
    /// This incarnation of a node is dead: each of its users quits.
    NodeGone {
        node: String,
        incarnation: u64,
    },
    /// A user joins a room (`room` as spelled when it was made; the room's key is its folded
    /// form). Whether it gets op is decided where it is applied, the same on every node.
    Join {
        room: String,
        uid: UserId,
        stamp: Option<Stamp>,
    },
    Part {
        room: String,
        uid: UserId,
        reason: String,
        stamp: Option<Stamp>,
    },
    /// A room's topic set (`text` empty: cleared) by `uid`, whose prefix was `source`.
    Topic {
        room: String,
        uid: UserId,
        source: String,
        text: String,
        stamp: Option<Stamp>,
    },
    /// `uid` (prefix `source`) kicked these members, each with the nick it was shown by.
    Kick {
        room: String,
        uid: UserId,
        source: String,
        victims: Vec<(UserId, String)>,
        reason: String,
        stamp: Option<Stamp>,
    },
    /// Mode changes as they took effect on the author's replica: (add, letter, parameter, and
    /// for `+o`/`+v` the member's id). Each node applies `+o`/`+v` to the member by id, not by
    /// the nick, which may already be someone else's there. An entry of an older version has
    /// no ids (the nick is looked up, as then).
    Mode {
        room: String,
        uid: UserId,
        source: String,
        changes: Vec<ModeItem>,
        stamp: Option<Stamp>,
    },
    /// The user's connection was bound to an E2E device (`E2E DEVICE`), or no longer is: encrypted
    /// messages for that device are routed to it from every node.
    Device {
        uid: UserId,
        device: Option<String>,
    },
    /// A server ban (KLINE, `chinwag admin ban`), under `net`: every node bans the mask and
    /// disconnects its matching connections.
    Kline(Box<crate::handlers::oper::Kline>),
    /// A server ban lifted (UNKLINE, `chinwag admin unban`), under `net`.
    Unkline {
        mask: String,
        by: String,
    },
    /// An account was registered (it is in storage), under `net`: every node knows the name
    /// from now on, for nick protection and offline delivery.
    AccountRegistered {
        account: String,
    },
    /// An account was deleted (it is gone from storage) on the node `origin` (name,
    /// incarnation), under `net`: every other node logs its sessions out and forgets it, and
    /// every node (its own included) takes it off `rooms` (folded), the rooms it founded then
    /// (so that a node replaying the log later never touches a room a new account of the same
    /// name founded since). `rooms` was added at the end.
    AccountDropped {
        account: String,
        origin: (String, u64),
        rooms: Vec<String>,
    },
}

const INTRODUCE: u8 = 1;
const NICK: u8 = 2;
const AWAY: u8 = 3;
const ACCOUNT: u8 = 4;
const QUIT: u8 = 5;
const NODE_GONE: u8 = 6;
const JOIN: u8 = 7;
const PART: u8 = 8;
const TOPIC: u8 = 9;
const KICK: u8 = 10;
const MODE: u8 = 11;
const REALNAME: u8 = 12;
const USER_MODES: u8 = 13;
const OPER: u8 = 14;
const KLINE: u8 = 15;
const UNKLINE: u8 = 16;
const DEVICE: u8 = 17;
const ACCOUNT_REGISTERED: u8 = 18;
const ACCOUNT_DROPPED: u8 = 19;

/// Most kicks or mode changes one event may carry (well above `limits.max_targets` and
/// `limits.modes_per_command`).
const MAX_ITEMS: u64 = 256;
const DIRECT: u8 = 32;
const ROOM: u8 = 33;
const INVITE: u8 = 34;
const KILL: u8 = 35;
const NOTICE: u8 = 36;
const INVITE_NOTIFY: u8 = 37;
const UNDELIVERED: u8 = 38;
const QUEUE_READ: u8 = 39;
const LOGIN_SETTLED: u8 = 40;
const REGISTRATION: u8 = 41;
const DEVICE_REMOVED: u8 = 42;

fn put_uid(w: &mut Writer, uid: &UserId) {
    w.str(&uid.node).u64(uid.incarnation).u64(uid.conn);
}

fn get_uid(r: &mut Reader<'_>) -> Option<UserId> {
    Some(UserId { node: r.str()?, incarnation: r.u64()?, conn: r.u64()? })
}

fn put_opt_uid(w: &mut Writer, uid: Option<&UserId>) {
    w.bool(uid.is_some());
    if let Some(uid) = uid {
        put_uid(w, uid);
    }
}

fn get_opt_uid(r: &mut Reader<'_>) -> Option<Option<UserId>> {
    if r.bool()? {
        get_uid(r).map(Some)
    } else {
        Some(None)
    }
}

fn put_stamp(w: &mut Writer, stamp: Option<&Stamp>) {
    if let Some(stamp) = stamp {
        w.u64(stamp.time_ms).u64(stamp.msgids.len() as u64);
        for msgid in &stamp.msgids {
            w.str(msgid);
        }
    }
}

/// A stamp, the event's last field: absent when the payload ends before it.
fn get_stamp(r: &mut Reader<'_>) -> Option<Option<Stamp>> {
    if r.at_end() {
        return Some(None);
    }
    let time_ms = r.u64()?;
    let count = r.u64().filter(|n| *n <= MAX_ITEMS)?;
    let mut msgids = Vec::new();
    for _ in 0..count {
        msgids.push(r.str()?);
    }
    Some(Some(Stamp { time_ms, msgids }))
}

impl NetEvent {
    pub fn encode(&self) -> Bytes {
        match self {
            NetEvent::Introduce(u) => {
                let mut w = Writer::new(INTRODUCE);
                put_uid(&mut w, &u.uid);
                w.str(&u.nick).str(&u.user).str(&u.host).str(&u.realname);
                w.opt(u.account.as_deref()).opt(u.away.as_deref());
                w.bool(u.invisible).bool(u.bot).bool(u.tls).u64(u.signon_ms);
                // Added later, at the end.
                w.str(&u.server).finish()
            }
            NetEvent::Nick { uid, nick, stamp } => {
                let mut w = Writer::new(NICK);
                put_uid(&mut w, uid);
                w.str(nick);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Away { uid, away, stamp } => {
                let mut w = Writer::new(AWAY);
                put_uid(&mut w, uid);
                w.opt(away.as_deref());
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Account { uid, account, stamp } => {
                let mut w = Writer::new(ACCOUNT);
                put_uid(&mut w, uid);
                w.opt(account.as_deref());
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Quit { uid, reason, stamp } => {
                let mut w = Writer::new(QUIT);
                put_uid(&mut w, uid);
                w.str(reason);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Realname { uid, realname, stamp } => {
                let mut w = Writer::new(REALNAME);
                put_uid(&mut w, uid);
                w.str(realname);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Oper { uid } => {
                let mut w = Writer::new(OPER);
                put_uid(&mut w, uid);
                w.finish()
            }
            NetEvent::UserModes { uid, invisible, bot } => {
                let mut w = Writer::new(USER_MODES);
                put_uid(&mut w, uid);
                w.bool(*invisible).bool(*bot).finish()
            }
            NetEvent::NodeGone { node, incarnation } => Writer::new(NODE_GONE).str(node).u64(*incarnation).finish(),
            NetEvent::Join { room, uid, stamp } => {
                let mut w = Writer::new(JOIN);
                w.str(room);
                put_uid(&mut w, uid);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Part { room, uid, reason, stamp } => {
                let mut w = Writer::new(PART);
                w.str(room);
                put_uid(&mut w, uid);
                w.str(reason);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Topic { room, uid, source, text, stamp } => {
                let mut w = Writer::new(TOPIC);
                w.str(room);
                put_uid(&mut w, uid);
                w.str(source).str(text);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Kick { room, uid, source, victims, reason, stamp } => {
                let mut w = Writer::new(KICK);
                w.str(room);
                put_uid(&mut w, uid);
                w.str(source).u64(victims.len() as u64);
                for (victim, shown) in victims {
                    put_uid(&mut w, victim);
                    w.str(shown);
                }
                w.str(reason);
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Mode { room, uid, source, changes, stamp } => {
                let mut w = Writer::new(MODE);
                w.str(room);
                put_uid(&mut w, uid);
                w.str(source).u64(changes.len() as u64);
                for (add, letter, param, _) in changes {
                    w.bool(*add).u64(u64::from(u32::from(*letter))).opt(param.as_deref());
                }
                // Added later, at the end: each change's member id, where it has one.
                for (_, _, _, member) in changes {
                    put_opt_uid(&mut w, member.as_ref());
                }
                put_stamp(&mut w, stamp.as_ref());
                w.finish()
            }
            NetEvent::Kline(k) => {
                let mut w = Writer::new(KLINE);
                w.str(&k.mask).str(&k.reason).str(&k.set_by).u64(k.set_at_ms);
                w.bool(k.expires_ms.is_some()).u64(k.expires_ms.unwrap_or_default()).finish()
            }
            NetEvent::Unkline { mask, by } => Writer::new(UNKLINE).str(mask).str(by).finish(),
            NetEvent::Device { uid, device } => {
                let mut w = Writer::new(DEVICE);
                put_uid(&mut w, uid);
                w.opt(device.as_deref()).finish()
            }
            NetEvent::AccountRegistered { account } => Writer::new(ACCOUNT_REGISTERED).str(account).finish(),
            NetEvent::AccountDropped { account, origin, rooms } => {
                let mut w = Writer::new(ACCOUNT_DROPPED);
                w.str(account).str(&origin.0).u64(origin.1).u64(rooms.len() as u64);
                for room in rooms {
                    w.str(room);
                }
                w.finish()
            }
        }
    }

    pub fn decode(payload: &[u8]) -> Option<NetEvent> {
        let (kind, mut r) = Reader::open(payload)?;
        let r = &mut r;
        Some(match kind {
            INTRODUCE => {
                let mut u = UserFacts {
                    uid: get_uid(r)?,
                    nick: r.str()?,
                    user: r.str()?,
                    host: r.str()?,
                    realname: r.str()?,
                    account: r.opt()?,
                    away: r.opt()?,
                    invisible: r.bool()?,
                    bot: r.bool()?,
                    tls: r.bool()?,
                    signon_ms: r.u64()?,
                    server: String::new(),
                    oper: false,
                    e2e_device: None,
                };
                u.server = if r.at_end() { u.uid.node.clone() } else { r.str()? };
                NetEvent::Introduce(Box::new(u))
            }
            NICK => NetEvent::Nick { uid: get_uid(r)?, nick: r.str()?, stamp: get_stamp(r)? },
            AWAY => NetEvent::Away { uid: get_uid(r)?, away: r.opt()?, stamp: get_stamp(r)? },
            ACCOUNT => NetEvent::Account { uid: get_uid(r)?, account: r.opt()?, stamp: get_stamp(r)? },
            QUIT => NetEvent::Quit { uid: get_uid(r)?, reason: r.str()?, stamp: get_stamp(r)? },
            REALNAME => NetEvent::Realname { uid: get_uid(r)?, realname: r.str()?, stamp: get_stamp(r)? },
            OPER => NetEvent::Oper { uid: get_uid(r)? },
            USER_MODES => NetEvent::UserModes { uid: get_uid(r)?, invisible: r.bool()?, bot: r.bool()? },
            NODE_GONE => NetEvent::NodeGone { node: r.str()?, incarnation: r.u64()? },
            JOIN => NetEvent::Join { room: r.str()?, uid: get_uid(r)?, stamp: get_stamp(r)? },
            PART => NetEvent::Part { room: r.str()?, uid: get_uid(r)?, reason: r.str()?, stamp: get_stamp(r)? },
            TOPIC => NetEvent::Topic {
                room: r.str()?,
                uid: get_uid(r)?,
                source: r.str()?,
                text: r.str()?,
                stamp: get_stamp(r)?,
            },
            KICK => {
                let (room, uid, source) = (r.str()?, get_uid(r)?, r.str()?);
                let count = r.u64().filter(|n| *n <= MAX_ITEMS)?;
                let mut victims = Vec::new();
                for _ in 0..count {
                    victims.push((get_uid(r)?, r.str()?));
                }
                NetEvent::Kick { room, uid, source, victims, reason: r.str()?, stamp: get_stamp(r)? }
            }
            MODE => {
                let (room, uid, source) = (r.str()?, get_uid(r)?, r.str()?);
                let count = r.u64().filter(|n| *n <= MAX_ITEMS)?;
                let mut changes = Vec::new();
                for _ in 0..count {
                    let add = r.bool()?;
                    let letter = char::from_u32(u32::try_from(r.u64()?).ok()?)?;
                    changes.push((add, letter, r.opt()?, None));
                }
                if !r.at_end() {
                    for change in &mut changes {
                        change.3 = get_opt_uid(r)?;
                    }
                }
                NetEvent::Mode { room, uid, source, changes, stamp: get_stamp(r)? }
            }
            KLINE => {
                let (mask, reason, set_by, set_at_ms) = (r.str()?, r.str()?, r.str()?, r.u64()?);
                let (expires, at) = (r.bool()?, r.u64()?);
                let expires_ms = expires.then_some(at);
                NetEvent::Kline(Box::new(crate::handlers::oper::Kline { mask, reason, set_by, set_at_ms, expires_ms }))
            }
            UNKLINE => NetEvent::Unkline { mask: r.str()?, by: r.str()? },
            DEVICE => NetEvent::Device { uid: get_uid(r)?, device: r.opt()? },
            ACCOUNT_REGISTERED => NetEvent::AccountRegistered { account: r.str()? },
            ACCOUNT_DROPPED => {
                let (account, origin) = (r.str()?, (r.str()?, r.u64()?));
                let count = r.u64().filter(|n| *n <= MAX_ITEMS)?;
                let mut rooms = Vec::new();
                for _ in 0..count {
                    rooms.push(r.str()?);
                }
                NetEvent::AccountDropped { account, origin, rooms }
            }
            _ => return None,
        })
    }
}

/// A PRIVMSG, NOTICE or TAGMSG as it crosses to another node: everything that node needs to
/// make the same line the sender's node made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Carried {
    pub command: String,
    /// The sender's `nick!user@host`.
    pub source: String,
    pub account: Option<String>,
    pub bot: bool,
    pub time_ms: u64,
    pub msgid: Option<String>,
    pub text: String,
    /// Client-only tags in wire form (`+a=b;+c`).
    pub tags: String,
    /// Only for clients with message-tags (TAGMSG).
    pub tagmsg: bool,
    /// A draft/multiline message's lines (text, continues the previous one); empty otherwise.
    pub lines: Vec<(String, bool)>,
}

/// Most lines a multiline message crossing nodes may have: the most a server accepts, each of
/// them cut to fit an IRC line (at 400 bytes or more each, `fit_lines`), with room to spare.
const MAX_LINES: u64 = (crate::config::MAX_MULTILINE_LINES + crate::config::MAX_MULTILINE_BYTES / 64) as u64;

/// What arrives on a node's or a room's topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum NodeMessage {
    /// To one user of the node; `target`: the nick the line is addressed to when it is not
    /// that user's (a copy for an E2E device of the sender's own account), added at the end.
    /// `fallback` (added at the end; `None` for an E2E device's copy): what the node does
    /// when `to` has just disconnected.
    Direct { to: UserId, msg: Box<Carried>, target: Option<String>, fallback: Option<Box<Fallback>> },
    /// To one user of the node: the private message it sent to `nick` on another node was not
    /// delivered (its recipient, with no account to keep it for, disconnected just before).
    Undelivered { to: UserId, nick: String },
    /// To a room's members on the node: `room` folded; `status` a STATUSMSG prefix (`@`, `+`)
    /// or empty; `origin` the sending node's name and incarnation (its own copy, which comes
    /// back to it from the room's topic, is dropped); `seq` counts the origin's publications to
    /// the room from 1, so that a receiver sees what it missed and drops repeats. `at` (added
    /// at the end): the room's last log entry the origin had applied when it sent it, so that a
    /// node whose user's JOIN is still on its way knows whether the message was sent to them.
    Room { room: String, status: String, origin: (String, u64), seq: u64, at: Option<u64>, msg: Box<Carried> },
    /// An INVITE to one user of the node: to `room` (as spelled), from `source`; `lets_in`: the
    /// inviter is an operator there, so the invitation lets its holder past +i and +l.
    Invite { to: UserId, room: String, source: String, account: Option<String>, lets_in: bool },
    /// KILL of one user of the node (an IRC operator's or the administrator's, on another
    /// node): it is disconnected with `Killed (<by> (<reason>))`, and its QUIT goes to the log
    /// as any.
    Kill { to: UserId, by: String, reason: String },
    /// To every registered user of the node, or to its IRC operators only (`opers`): the
    /// administrator's broadcast (`source` `None`: a NOTICE from the node's server name to each
    /// user's nick), an operator's `NOTICE $*`/`PRIVMSG $*` to `target`, or WALLOPS (no target).
    Notice(Box<Notice>),
    /// On a room's topic: `source` invited `nick` to `room` (as spelled); the room's operators
    /// on the node with invite-notify are told. `origin` as for [`NodeMessage::Room`].
    InviteNotify { room: String, origin: (String, u64), source: String, account: Option<String>, nick: String },
    /// To every node: an account's offline queue (folded) was read to its end on another node,
    /// so what this node counted in it (`Server::offline_counts`) is no longer there.
    QueueRead { queue: String },
    /// To every node: a password check settled on another node, against these throttle records
    /// (`throttle::SharedRecord`), failed or succeeded.
    LoginSettled { records: Vec<crate::throttle::SharedRecord>, failed: bool },
    /// To every node: an account registration from `ip` was let through on another node; it
    /// counts against that address's budget here too.
    Registration { ip: String },
    /// To every node: `account` (folded) removed its `device` on another node; connections
    /// bound to it here are unbound.
    DeviceRemoved { account: String, device: String },
}

/// What a node does with a private message whose recipient disconnected just before it
/// arrived: queue it for `account` (the recipient's, set only if the sender's node stored the
/// message), or tell `from`, its sender, that `nick` is gone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Fallback {
    pub from: UserId,
    pub nick: String,
    pub account: Option<String>,
}

/// What [`NodeMessage::Notice`] carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Notice {
    /// `NOTICE`, `PRIVMSG` or `WALLOPS`.
    pub command: String,
    /// The sender's prefix; `None`: the server itself.
    pub source: Option<String>,
    pub account: Option<String>,
    /// `$*` and the like; empty for WALLOPS and the administrator's broadcast.
    pub target: String,
    pub text: String,
    pub opers: bool,
    pub time_ms: u64,
    pub msgid: Option<String>,
}

/// A multiline message's text is its lines joined (`multiline::joined`): it crosses once, as
/// its lines, and its text is left empty.
fn put_carried(w: &mut Writer, m: &Carried) {
    w.str(&m.command).str(&m.source).opt(m.account.as_deref()).bool(m.bot);
    let text = if m.lines.is_empty() { m.text.as_str() } else { "" };
    w.u64(m.time_ms).opt(m.msgid.as_deref()).str(text).str(&m.tags).bool(m.tagmsg);
    w.u64(m.lines.len() as u64);
    for (text, concat) in &m.lines {
        w.str(text).bool(*concat);
    }
}

fn get_carried(r: &mut Reader<'_>) -> Option<Box<Carried>> {
    let mut m = Carried {
        command: r.str()?,
        source: r.str()?,
        account: r.opt()?,
        bot: r.bool()?,
        time_ms: r.u64()?,
        msgid: r.opt()?,
        text: r.str()?,
        tags: r.str()?,
        tagmsg: r.bool()?,
        lines: Vec::new(),
    };
    let count = r.u64().filter(|n| *n <= MAX_LINES)?;
    for _ in 0..count {
        m.lines.push((r.str()?, r.bool()?));
    }
    if !m.lines.is_empty() && m.text.is_empty() {
        m.text = crate::handlers::multiline::joined(&m.lines);
    }
    matches!(m.command.as_str(), "PRIVMSG" | "NOTICE" | "TAGMSG").then(|| Box::new(m))
}

impl NodeMessage {
    pub fn encode(&self) -> Bytes {
        match self {
            NodeMessage::Direct { to, msg, target, fallback } => {
                let mut w = Writer::new(DIRECT);
                put_uid(&mut w, to);
                put_carried(&mut w, msg);
                w.opt(target.as_deref());
                if let Some(f) = fallback {
                    put_uid(w.bool(true), &f.from);
                    w.str(&f.nick).opt(f.account.as_deref());
                }
                w.finish()
            }
            NodeMessage::Undelivered { to, nick } => {
                let mut w = Writer::new(UNDELIVERED);
                put_uid(&mut w, to);
                w.str(nick).finish()
            }
            NodeMessage::Invite { to, room, source, account, lets_in } => {
                let mut w = Writer::new(INVITE);
                put_uid(&mut w, to);
                w.str(room).str(source).opt(account.as_deref()).bool(*lets_in).finish()
            }
            NodeMessage::Room { room, status, origin, seq, at, msg } => {
                let mut w = Writer::new(ROOM);
                w.str(room).str(status).str(&origin.0).u64(origin.1).u64(*seq);
                put_carried(&mut w, msg);
                if let Some(at) = at {
                    w.bool(true).u64(*at);
                }
                w.finish()
            }
            NodeMessage::Kill { to, by, reason } => {
                let mut w = Writer::new(KILL);
                put_uid(&mut w, to);
                w.str(by).str(reason).finish()
            }
            NodeMessage::Notice(n) => {
                let mut w = Writer::new(NOTICE);
                w.str(&n.command).opt(n.source.as_deref()).opt(n.account.as_deref());
                w.str(&n.target).str(&n.text).bool(n.opers).u64(n.time_ms).opt(n.msgid.as_deref()).finish()
            }
            NodeMessage::InviteNotify { room, origin, source, account, nick } => {
                let mut w = Writer::new(INVITE_NOTIFY);
                w.str(room).str(&origin.0).u64(origin.1).str(source).opt(account.as_deref()).str(nick).finish()
            }
            NodeMessage::QueueRead { queue } => Writer::new(QUEUE_READ).str(queue).finish(),
            NodeMessage::Registration { ip } => Writer::new(REGISTRATION).str(ip).finish(),
            NodeMessage::DeviceRemoved { account, device } => {
                Writer::new(DEVICE_REMOVED).str(account).str(device).finish()
            }
            NodeMessage::LoginSettled { records, failed } => {
                let mut w = Writer::new(LOGIN_SETTLED);
                w.bool(*failed).u64(records.len() as u64);
                for (kind, account, ip) in records {
                    w.u64(u64::from(*kind)).str(account).str(ip);
                }
                w.finish()
            }
        }
    }

    pub fn decode(payload: &[u8]) -> Option<NodeMessage> {
        let (kind, mut r) = Reader::open(payload)?;
        let r = &mut r;
        match kind {
            DIRECT => {
                let (to, msg, target) = (get_uid(r)?, get_carried(r)?, r.opt_last()?);
                let fallback = if !r.at_end() && r.bool()? {
                    Some(Box::new(Fallback { from: get_uid(r)?, nick: r.str()?, account: r.opt()? }))
                } else {
                    None
                };
                Some(NodeMessage::Direct { to, msg, target, fallback })
            }
            UNDELIVERED => Some(NodeMessage::Undelivered { to: get_uid(r)?, nick: r.str()? }),
            INVITE => Some(NodeMessage::Invite {
                to: get_uid(r)?,
                room: r.str()?,
                source: r.str()?,
                account: r.opt()?,
                lets_in: r.bool()?,
            }),
            ROOM => {
                let (room, status, origin, seq) = (r.str()?, r.str()?, (r.str()?, r.u64()?), r.u64()?);
                let msg = get_carried(r)?;
                let at = if !r.at_end() && r.bool()? { Some(r.u64()?) } else { None };
                Some(NodeMessage::Room { room, status, origin, seq, at, msg })
            }
            KILL => Some(NodeMessage::Kill { to: get_uid(r)?, by: r.str()?, reason: r.str()? }),
            NOTICE => {
                let n = Notice {
                    command: r.str()?,
                    source: r.opt()?,
                    account: r.opt()?,
                    target: r.str()?,
                    text: r.str()?,
                    opers: r.bool()?,
                    time_ms: r.u64()?,
                    msgid: r.opt()?,
                };
                matches!(n.command.as_str(), "NOTICE" | "PRIVMSG" | "WALLOPS").then(|| NodeMessage::Notice(Box::new(n)))
            }
            INVITE_NOTIFY => Some(NodeMessage::InviteNotify {
                room: r.str()?,
                origin: (r.str()?, r.u64()?),
                source: r.str()?,
                account: r.opt()?,
                nick: r.str()?,
            }),
            QUEUE_READ => Some(NodeMessage::QueueRead { queue: r.str()? }),
            REGISTRATION => Some(NodeMessage::Registration { ip: r.str()? }),
            DEVICE_REMOVED => Some(NodeMessage::DeviceRemoved { account: r.str()?, device: r.str()? }),
            LOGIN_SETTLED => {
                let failed = r.bool()?;
                let count = r.u64().filter(|n| *n <= MAX_ITEMS)?;
                let mut records = Vec::new();
                for _ in 0..count {
                    records.push((u8::try_from(r.u64()?).ok()?, r.str()?, r.str()?));
                }
                Some(NodeMessage::LoginSettled { records, failed })
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uid() -> UserId {
        UserId { node: "a".into(), incarnation: 99, conn: 7 }
    }

    #[test]
    fn every_event_round_trips() {
        let facts = UserFacts {
            uid: uid(),
            nick: "Alice".into(),
            user: "~alice".into(),
            host: "127.0.0.1".into(),
            realname: "Alice A.".into(),
            account: Some("alice".into()),
            away: None,
            invisible: true,
            bot: false,
            tls: true,
            signon_ms: 1_795_269_772_000,
            server: "a.example.org".into(),
            oper: false,
            e2e_device: None,
        };
        let events = [
            NetEvent::Introduce(Box::new(facts)),
            NetEvent::Nick { uid: uid(), nick: "Bob".into(), stamp: stamp(1) },
            NetEvent::Away { uid: uid(), away: Some("lunch".into()), stamp: stamp(1) },
            NetEvent::Account { uid: uid(), account: None, stamp: None },
            NetEvent::Quit { uid: uid(), reason: "Quit: bye".into(), stamp: stamp(1) },
            NetEvent::NodeGone { node: "b".into(), incarnation: 3 },
            NetEvent::Realname { uid: uid(), realname: "R".into(), stamp: stamp(1) },
            NetEvent::UserModes { uid: uid(), invisible: true, bot: false },
            NetEvent::Oper { uid: uid() },
            NetEvent::Join { room: "#Café".into(), uid: uid(), stamp: stamp(1) },
            NetEvent::Part { room: "#x".into(), uid: uid(), reason: String::new(), stamp: stamp(1) },
            NetEvent::Topic { room: "#x".into(), uid: uid(), source: "a!b@c".into(), text: "hi".into(), stamp: None },
            NetEvent::Kick {
                room: "#x".into(),
                uid: uid(),
                source: "a!b@c".into(),
                victims: vec![(uid(), "Bob".into())],
                reason: "out".into(),
                stamp: stamp(1),
            },
            NetEvent::Mode {
                room: "#x".into(),
                uid: uid(),
                source: "a!b@c".into(),
                changes: vec![(true, 'o', Some("Bob".into()), Some(uid())), (false, 'n', None, None)],
                stamp: stamp(1),
            },
            NetEvent::Kline(Box::new(crate::handlers::oper::Kline {
                mask: "192.0.2.*".into(),
                reason: "spam".into(),
                set_by: "admin".into(),
                set_at_ms: 5,
                expires_ms: Some(65_000),
            })),
            NetEvent::Unkline { mask: "192.0.2.*".into(), by: "op/oper".into() },
            NetEvent::Device { uid: uid(), device: Some("laptop".into()) },
            NetEvent::Device { uid: uid(), device: None },
            NetEvent::AccountRegistered { account: "Alice".into() },
            NetEvent::AccountDropped { account: "Alice".into(), origin: ("a".into(), 5), rooms: vec!["#x".into()] },
        ];
        for ev in events {
            let bytes = ev.encode();
            assert_eq!(NetEvent::decode(&bytes), Some(ev.clone()));
            // Every prefix is refused, and none panics; but one that ends where an older version
            // ended is that version's entry.
            let mut older = older_forms(&ev);
            older.retain(|o| *o != ev);
            let mut seen = Vec::new();
            for cut in 0..bytes.len() {
                if let Some(decoded) = NetEvent::decode(&bytes[..cut]) {
                    assert!(older.contains(&decoded), "{ev:?} cut at {cut}: {decoded:?}");
                    seen.push(decoded);
                }
            }
            seen.reverse();
            assert_eq!(seen, older, "each older form once");
        }
    }

    /// What an older version wrote of `ev`: the event without the fields added at its end
    /// since, newest first.
    fn older_forms(ev: &NetEvent) -> Vec<NetEvent> {
        let mut older = ev.clone();
        match &mut older {
            NetEvent::Introduce(u) => u.server = u.uid.node.clone(),
            NetEvent::Nick { stamp, .. }
            | NetEvent::Quit { stamp, .. }
            | NetEvent::Join { stamp, .. }
            | NetEvent::Part { stamp, .. }
            | NetEvent::Topic { stamp, .. }
            | NetEvent::Kick { stamp, .. }
            | NetEvent::Away { stamp, .. }
            | NetEvent::Account { stamp, .. }
            | NetEvent::Realname { stamp, .. } => *stamp = None,
            NetEvent::Mode { stamp, .. } => {
                *stamp = None;
                let mut oldest = older.clone();
                if let NetEvent::Mode { changes, .. } = &mut oldest {
                    changes.iter_mut().for_each(|c| c.3 = None);
                }
                return vec![older, oldest];
            }
            _ => return Vec::new(),
        }
        vec![older]
    }

    fn stamp(lines: usize) -> Option<Stamp> {
        Some(Stamp { time_ms: 1_795_269_772_000, msgids: (0..lines).map(|n| format!("id{n}")).collect() })
    }

    #[test]
    fn node_messages_round_trip_and_a_wrong_command_is_refused() {
        let m = Carried {
            command: "PRIVMSG".into(),
            source: "a!~a@h".into(),
            account: None,
            bot: true,
            time_ms: 5,
            msgid: Some("m1".into()),
            text: "hi".into(),
            tags: "+draft/reply=x".into(),
            tagmsg: false,
            lines: vec![("h".into(), false), ("i".into(), true)],
        };
        let direct = NodeMessage::Direct { to: uid(), msg: Box::new(m.clone()), target: None, fallback: None };
        let bytes = direct.encode();
        assert_eq!(NodeMessage::decode(&bytes), Some(direct.clone()));
        // As an earlier version wrote it, without the target at the end.
        assert_eq!(NodeMessage::decode(&bytes[..bytes.len() - 1]), Some(direct));
        let copy =
            NodeMessage::Direct { to: uid(), msg: Box::new(m.clone()), target: Some("Bob".into()), fallback: None };
        assert_eq!(NodeMessage::decode(&copy.encode()), Some(copy));
        let fallback = Some(Box::new(Fallback { from: uid(), nick: "Bob".into(), account: Some("bob".into()) }));
        let late = NodeMessage::Direct { to: uid(), msg: Box::new(m.clone()), target: None, fallback };
        assert_eq!(NodeMessage::decode(&late.encode()), Some(late));
        let undelivered = NodeMessage::Undelivered { to: uid(), nick: "Bob".into() };
        assert_eq!(NodeMessage::decode(&undelivered.encode()), Some(undelivered));
        let origin = ("a".into(), 4);
        let msg = Box::new(m.clone());
        let room = NodeMessage::Room { room: "#café".into(), status: "@".into(), origin, seq: 9, at: Some(300), msg };
        let bytes = room.encode();
        assert_eq!(NodeMessage::decode(&bytes), Some(room.clone()));
        // As an earlier version wrote it, without `at` at the end (the last 3 bytes).
        let NodeMessage::Room { room: name, status, origin, seq, msg, .. } = room else { unreachable!() };
        let earlier = NodeMessage::Room { room: name, status, origin, seq, at: None, msg };
        assert_eq!(NodeMessage::decode(&bytes[..bytes.len() - 3]), Some(earlier));
        for cut in (0..bytes.len()).filter(|cut| *cut != bytes.len() - 3) {
            assert_eq!(NodeMessage::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let invite =
            NodeMessage::Invite { to: uid(), room: "#x".into(), source: "a!b@c".into(), account: None, lets_in: true };
        assert_eq!(NodeMessage::decode(&invite.encode()), Some(invite));
        let notice = Notice {
            command: "WALLOPS".into(),
            source: Some("a!b@c".into()),
            account: None,
            target: String::new(),
            text: "hello".into(),
            opers: true,
            time_ms: 7,
            msgid: Some("m".into()),
        };
        let others = [
            NodeMessage::Kill { to: uid(), by: "op/oper".into(), reason: "out".into() },
            NodeMessage::Notice(Box::new(notice.clone())),
            NodeMessage::InviteNotify {
                room: "#x".into(),
                origin: ("a".into(), 4),
                source: "a!b@c".into(),
                account: Some("a".into()),
                nick: "Bob".into(),
            },
            NodeMessage::QueueRead { queue: "alice".into() },
            NodeMessage::Registration { ip: "192.0.2.7".into() },
            NodeMessage::DeviceRemoved { account: "alice".into(), device: "laptop".into() },
            NodeMessage::LoginSettled {
                records: vec![(0, String::new(), "192.0.2.7".into()), (1, "alice".into(), "2001:db8::".into())],
                failed: true,
            },
        ];
        for message in others {
            let bytes = message.encode();
            assert_eq!(NodeMessage::decode(&bytes), Some(message));
            for cut in 0..bytes.len() {
                assert_eq!(NodeMessage::decode(&bytes[..cut]), None);
            }
        }
        let forged = NodeMessage::Notice(Box::new(Notice { command: "KILL".into(), ..notice }));
        assert_eq!(NodeMessage::decode(&forged.encode()), None);
        let bad = NodeMessage::Direct {
            to: uid(),
            msg: Box::new(Carried { command: "KILL".into(), ..m }),
            target: None,
            fallback: None,
        };
        assert_eq!(NodeMessage::decode(&bad.encode()), None);
    }
}
