//! The datagram format, version 1 (described for humans in `docs/discovery.md`).
//!
//! Every datagram starts with the magic `CHWG`, a version byte and a kind byte. A probe carries
//! a nonce and the index of the first room wanted, then zero padding up to [`PROBE_LEN`]; an
//! answer (or an unsolicited announcement) carries what a server shows about itself. Integers
//! are big-endian; strings are a length byte and that many bytes of UTF-8 without control
//! characters (a server name or topic is printed on someone's terminal, so escape sequences
//! never get through).
//!
//! Decoding takes any bytes and returns a value or an error; it never panics and never
//! allocates more than the datagram's size. Encoding an answer fits it into a byte budget (the
//! probe's size: no amplification) by leaving rooms out, and says how many it kept.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::Serialize;

/// The first four bytes of every chinwag discovery datagram.
pub const MAGIC: [u8; 4] = *b"CHWG";
/// The format version this code speaks; datagrams with another version are ignored.
pub const VERSION: u8 = 1;
/// Largest datagram sent or accepted. It fits the IPv6 minimum MTU (1280) with IP and UDP
/// headers, so nothing is ever fragmented.
pub const MAX_DATAGRAM: usize = 1200;
/// Size of every probe this crate sends. An answer is never larger than the probe that asked
/// for it, so a probe is padded to the largest answer it wants to receive.
pub const PROBE_LEN: usize = MAX_DATAGRAM;
/// Strings are cut (on a character boundary) to these sizes when encoded.
pub const MAX_NAME_BYTES: usize = 64;
pub const MAX_VERSION_BYTES: usize = 32;
pub const MAX_TOPIC_BYTES: usize = 100;
/// Listeners announced at most; more are left out.
pub const MAX_LISTENERS: usize = 16;
/// Rooms one datagram can hold at most (each takes at least 8 bytes).
pub const MAX_ROOMS_PER_DATAGRAM: usize = MAX_DATAGRAM / 8;
/// Length of a SHA-256 certificate fingerprint.
pub const FINGERPRINT_LEN: usize = 32;

const HEADER_LEN: usize = 6;
const KIND_PROBE: u8 = 1;
const KIND_ANSWER: u8 = 2;
const KIND_ANNOUNCE: u8 = 3;
const ROOM_INVITE_ONLY: u8 = 0x01;
const ROOM_KEY_REQUIRED: u8 = 0x02;

/// Why a datagram was not understood. Such datagrams are ignored, never answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("datagram of {0} bytes is larger than {MAX_DATAGRAM}")]
    TooLarge(usize),
    #[error("not a chinwag discovery datagram (wrong magic)")]
    ForeignMagic,
    #[error("unsupported format version {0}")]
    UnsupportedVersion(u8),
    #[error("unknown datagram kind {0}")]
    UnknownKind(u8),
    #[error("datagram ends inside a field")]
    Truncated,
    #[error("a string is not UTF-8 or holds control characters")]
    BadString,
    #[error("bad value in field {0}")]
    BadField(&'static str),
    #[error("{0} bytes after the last field")]
    TrailingBytes(usize),
}

/// A request for a server's answer, sent to the multicast group (discovery) or to one server
/// (status query).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// Chosen at random by the asker; answers echo it so stray or forged ones are told apart.
    pub nonce: u64,
    /// Index of the first room wanted, for asking for the rooms that did not fit.
    pub first_room: u16,
}

/// Whether an answer was asked for or sent on the server's own schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerKind {
    Reply,
    Announce,
}

/// How clients reach a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// IRC over plain TCP.
    Plaintext,
    /// IRC over TLS.
    Tls,
    Quic,
    #[serde(rename = "websocket")]
    WebSocket,
    #[serde(rename = "websocket-tls")]
    WebSocketTls,
    /// A transport this version does not know; kept so newer servers stay readable.
    Other(u8),
}

impl Transport {
    fn code(self) -> u8 {
        match self {
            Transport::Plaintext => 1,
            Transport::Tls => 2,
            Transport::Quic => 3,
            Transport::WebSocket => 4,
            Transport::WebSocketTls => 5,
            Transport::Other(c) => c,
        }
    }

    fn from_code(c: u8) -> Transport {
        match c {
            1 => Transport::Plaintext,
            2 => Transport::Tls,
            3 => Transport::Quic,
            4 => Transport::WebSocket,
            5 => Transport::WebSocketTls,
            c => Transport::Other(c),
        }
    }

    /// A short name for people: `tls`, `plaintext`, …
    pub fn label(self) -> String {
        match self {
            Transport::Plaintext => "plaintext".into(),
            Transport::Tls => "tls".into(),
            Transport::Quic => "quic".into(),
            Transport::WebSocket => "websocket".into(),
            Transport::WebSocketTls => "websocket-tls".into(),
            Transport::Other(c) => format!("transport-{c}"),
        }
    }
}

/// One listening socket. An unspecified address (`0.0.0.0`, `::`) means "the address you
/// reached me at"; the client substitutes the answer's source address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Listener {
    pub transport: Transport,
    pub addr: SocketAddr,
}

/// A public room as announced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Room {
    pub name: String,
    /// Empty when the room has none.
    pub topic: String,
    pub members: u32,
    /// +i: joining needs an invitation.
    pub invite_only: bool,
    /// +k: joining needs a key.
    pub key_required: bool,
}

/// What a server says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub kind: AnswerKind,
    /// The probe's nonce (0 in announcements).
    pub nonce: u64,
    /// Random per server process: the same server answering on several interfaces or groups is
    /// listed once.
    pub instance: u64,
    pub name: String,
    pub version: String,
    /// SHA-256 of the TLS certificate, if the server has TLS.
    pub fingerprint: Option<[u8; FINGERPRINT_LEN]>,
    pub users_online: u32,
    pub listeners: Vec<Listener>,
    /// Public rooms the server has in all (this answer may hold only some).
    pub rooms_total: u16,
    /// Index of `rooms[0]` in the server's list.
    pub first_room: u16,
    pub rooms: Vec<Room>,
}

/// Any datagram of this format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Probe(Probe),
    Answer(Answer),
}

impl Probe {
    /// The probe padded with zeros to [`PROBE_LEN`], so that answers up to that size are allowed.
    pub fn encode(&self) -> Vec<u8> {
        self.encode_padded(PROBE_LEN)
    }

    /// The probe padded to `len` bytes (at least its own 16). Smaller probes get smaller answers.
    pub fn encode_padded(&self, len: usize) -> Vec<u8> {
        let mut out = header(KIND_PROBE);
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.first_room.to_be_bytes());
        out.resize(len.clamp(out.len(), MAX_DATAGRAM), 0);
        out
    }
}

impl Answer {
    /// Encodes into at most `budget` bytes (and never more than [`MAX_DATAGRAM`]), keeping as many
    /// rooms from the front as fit; returns the bytes and the number of rooms kept, or `None` if
    /// not even the answer without rooms fits. Strings are sanitized and cut as documented, so
    /// the output always decodes.
    pub fn encode(&self, budget: usize) -> Option<(Vec<u8>, usize)> {
        let budget = budget.min(MAX_DATAGRAM);
        let mut out = header(match self.kind {
            AnswerKind::Reply => KIND_ANSWER,
            AnswerKind::Announce => KIND_ANNOUNCE,
        });
        out.extend_from_slice(&self.nonce.to_be_bytes());
        out.extend_from_slice(&self.instance.to_be_bytes());
        put_str(&mut out, &self.name, MAX_NAME_BYTES);
        put_str(&mut out, &self.version, MAX_VERSION_BYTES);
        match &self.fingerprint {
            Some(fp) => {
                out.push(FINGERPRINT_LEN as u8);
                out.extend_from_slice(fp);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.users_online.to_be_bytes());
        let listeners = &self.listeners[..self.listeners.len().min(MAX_LISTENERS)];
        out.push(listeners.len() as u8);
        for l in listeners {
            out.push(l.transport.code());
            match l.addr.ip() {
                IpAddr::V4(ip) => {
                    out.push(4);
                    out.extend_from_slice(&ip.octets());
                }
                IpAddr::V6(ip) => {
                    out.push(6);
                    out.extend_from_slice(&ip.octets());
                }
            }
            out.extend_from_slice(&l.addr.port().to_be_bytes());
        }
        out.extend_from_slice(&self.rooms_total.to_be_bytes());
        out.extend_from_slice(&self.first_room.to_be_bytes());
        let count_at = out.len();
        out.push(0);
        if out.len() > budget {
            return None;
        }
        let mut kept = 0usize;
        let mut room = Vec::with_capacity(MAX_NAME_BYTES + MAX_TOPIC_BYTES + 8);
        for r in self.rooms.iter().take(MAX_ROOMS_PER_DATAGRAM) {
            room.clear();
            put_str(&mut room, &r.name, MAX_NAME_BYTES);
            room.extend_from_slice(&r.members.to_be_bytes());
            let mut flags = 0;
            if r.invite_only {
                flags |= ROOM_INVITE_ONLY;
            }
            if r.key_required {
                flags |= ROOM_KEY_REQUIRED;
            }
            room.push(flags);
            put_str(&mut room, &r.topic, MAX_TOPIC_BYTES);
            if out.len() + room.len() > budget {
                break;
            }
            out.extend_from_slice(&room);
            kept += 1;
        }
        out[count_at] = kept as u8;
        Some((out, kept))
    }
}

/// Reads any datagram. Never panics, whatever the input.
pub fn decode(buf: &[u8]) -> Result<Packet, DecodeError> {
    if buf.len() > MAX_DATAGRAM {
        return Err(DecodeError::TooLarge(buf.len()));
    }
    let mut r = Reader { buf };
    if r.take(4)? != MAGIC {
        return Err(DecodeError::ForeignMagic);
    }
    let version = r.u8()?;
    if version != VERSION {
        return Err(DecodeError::UnsupportedVersion(version));
    }
    match r.u8()? {
        // The rest of a probe is padding; its content is ignored.
        KIND_PROBE => Ok(Packet::Probe(Probe { nonce: r.u64()?, first_room: r.u16()? })),
        KIND_ANSWER => decode_answer(&mut r, AnswerKind::Reply).map(Packet::Answer),
        KIND_ANNOUNCE => decode_answer(&mut r, AnswerKind::Announce).map(Packet::Answer),
        other => Err(DecodeError::UnknownKind(other)),
    }
}

fn decode_answer(r: &mut Reader<'_>, kind: AnswerKind) -> Result<Answer, DecodeError> {
    let nonce = r.u64()?;
    let instance = r.u64()?;
    let name = r.string()?;
    let version = r.string()?;
    let fingerprint = match r.u8()? {
        0 => None,
        n if usize::from(n) == FINGERPRINT_LEN => {
            let mut fp = [0u8; FINGERPRINT_LEN];
            fp.copy_from_slice(r.take(FINGERPRINT_LEN)?);
            Some(fp)
        }
        _ => return Err(DecodeError::BadField("fingerprint length")),
    };
    let users_online = r.u32()?;
    let n = r.u8()?;
    let mut listeners = Vec::new();
    for _ in 0..n {
        let transport = Transport::from_code(r.u8()?);
        let ip = match r.u8()? {
            4 => {
                let b = r.take(4)?;
                IpAddr::V4(Ipv4Addr::new(b[0], b[1], b[2], b[3]))
            }
            6 => {
                let mut o = [0u8; 16];
                o.copy_from_slice(r.take(16)?);
                IpAddr::V6(Ipv6Addr::from(o))
            }
            _ => return Err(DecodeError::BadField("address family")),
        };
        let port = r.u16()?;
        listeners.push(Listener { transport, addr: SocketAddr::new(ip, port) });
    }
    let rooms_total = r.u16()?;
    let first_room = r.u16()?;
    let n = r.u8()?;
    let mut rooms = Vec::new();
    for _ in 0..n {
        let name = r.string()?;
        let members = r.u32()?;
        let flags = r.u8()?;
        let topic = r.string()?;
        rooms.push(Room {
            name,
            topic,
            members,
            invite_only: flags & ROOM_INVITE_ONLY != 0,
            key_required: flags & ROOM_KEY_REQUIRED != 0,
        });
    }
    if !r.buf.is_empty() {
        return Err(DecodeError::TrailingBytes(r.buf.len()));
    }
    Ok(Answer {
        kind,
        nonce,
        instance,
        name,
        version,
        fingerprint,
        users_online,
        listeners,
        rooms_total,
        first_room,
        rooms,
    })
}

fn header(kind: u8) -> Vec<u8> {
    let mut out = Vec::with_capacity(MAX_DATAGRAM);
    out.extend_from_slice(&MAGIC);
    out.push(VERSION);
    out.push(kind);
    debug_assert_eq!(out.len(), HEADER_LEN);
    out
}

/// What a string becomes on the wire: control characters (IRC formatting codes included)
/// removed, then cut to `max` bytes on a character boundary.
pub fn sanitize(s: &str, max: usize) -> String {
    let mut out = String::with_capacity(s.len().min(max));
    for c in s.chars().filter(|c| !c.is_control()) {
        if out.len() + c.len_utf8() > max {
            break;
        }
        out.push(c);
    }
    out
}

fn put_str(out: &mut Vec<u8>, s: &str, max: usize) {
    let max = max.min(usize::from(u8::MAX));
    // Most strings are already clean and short: no copy for them.
    let clean: std::borrow::Cow<'_, str> =
        if s.len() <= max && !s.chars().any(char::is_control) { s.into() } else { sanitize(s, max).into() };
    out.push(clean.len() as u8);
    out.extend_from_slice(clean.as_bytes());
}

/// A cursor over untrusted bytes: every read is checked.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut o = [0u8; 8];
        o.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(o))
    }

    fn string(&mut self) -> Result<String, DecodeError> {
        let n = usize::from(self.u8()?);
        let s = std::str::from_utf8(self.take(n)?).map_err(|_| DecodeError::BadString)?;
        if s.chars().any(char::is_control) {
            return Err(DecodeError::BadString);
        }
        Ok(s.to_owned())
    }
}

/// `AB:CD:…` as printed by `chinwag serve` and expected by pinning clients.
pub fn fingerprint_hex(fp: &[u8; FINGERPRINT_LEN]) -> String {
    fp.iter().map(|b| format!("{b:02X}")).collect::<Vec<_>>().join(":")
}

/// Reads `AB:CD:…` (colons optional, any case); `None` unless it is exactly 32 bytes.
pub fn parse_fingerprint(s: &str) -> Option<[u8; FINGERPRINT_LEN]> {
    let hex: Vec<u8> = s.bytes().filter(|b| *b != b':').collect();
    if hex.len() != FINGERPRINT_LEN * 2 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let mut fp = [0u8; FINGERPRINT_LEN];
    for (i, pair) in hex.chunks(2).enumerate() {
        let text = std::str::from_utf8(pair).ok()?;
        fp[i] = u8::from_str_radix(text, 16).ok()?;
    }
    Some(fp)
}
