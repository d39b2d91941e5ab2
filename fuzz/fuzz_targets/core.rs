//! Drives one `chinwag_core::Server` with a script of lines from several clients, answers to
//! its requests and the passing of time, and checks after every step that nothing panics and
//! that everything it sends is a well-formed line to a connection it still knows.
//!
//! The input is split at `\n`; each piece's first byte is an opcode: the low two bits pick one
//! of four client slots, the next three bits the action (see [`step`]), the rest of the piece
//! is the line or the action's argument. `fuzz/corpus/core` holds seeds in this form.

#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use chinwag_core::keys::{Claimed, KeyAnswer, KeyCounts, KeyRequest, Published, SignedKey};
use chinwag_core::{
    dm_conversation, Config, ConnId, ConnInfo, Effect, Failure, HistoryItem, Now, Request, RequestId, Response, Server,
};
use chinwag_proto::{Message, MAX_BODY_LEN, MAX_TAGS_LEN};
use libfuzzer_sys::fuzz_target;

const SLOTS: usize = 4;
/// Bounds the work per input: a script longer than this is cut.
const MAX_STEPS: usize = 512;

struct World {
    server: Server,
    base: Instant,
    elapsed: Duration,
    slots: [ConnId; SLOTS],
    next_conn: u64,
    /// Connections the core knows (connected, not yet closed or disconnected).
    live: HashSet<ConnId>,
    requests: Vec<(RequestId, Request)>,
}

impl World {
    fn new() -> World {
        let mut cfg = Config::default();
        // Small limits so that the fuzzer reaches them with short inputs.
        cfg.limits.channels_per_client = 4;
        cfg.limits.monitor_len = 4;
        cfg.limits.whowas_len = 8;
        cfg.limits.recvq_lines = 8;
        let base = Instant::now();
        let now = Now { wall_ms: 1_795_269_772_000, mono: base };
        let mut world = World {
            server: Server::new(cfg, 1, now),
            base,
            elapsed: Duration::ZERO,
            slots: [ConnId(0); SLOTS],
            next_conn: 0,
            live: HashSet::new(),
            requests: Vec::new(),
        };
        for slot in 0..SLOTS {
            world.reconnect(slot);
        }
        world
    }

    fn now(&self) -> Now {
        Now { wall_ms: 1_795_269_772_000 + self.elapsed.as_millis() as u64, mono: self.base + self.elapsed }
    }

    /// Slot 0 and 1 are loopback plaintext, 2 is IPv4 over TLS, 3 is IPv6 over TLS.
    fn reconnect(&mut self, slot: usize) {
        self.next_conn += 1;
        let conn = ConnId(self.next_conn);
        let (ip, tls) = match slot {
            0 | 1 => (IpAddr::V4(Ipv4Addr::LOCALHOST), false),
            2 => (IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)), true),
            _ => (IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)), true),
        };
        let host = if ip.is_ipv6() { "2001:db8::1".to_owned() } else { ip.to_string() };
        let now = self.now();
        self.server.connect(conn, ConnInfo { ip, host, tls, quic: false, certfp: None }, now);
        self.live.insert(conn);
        self.slots[slot] = conn;
        self.check();
    }

    fn step(&mut self, op: u8, arg: &[u8]) {
        let slot = usize::from(op) % SLOTS;
        let conn = self.slots[slot];
        let now = self.now();
        match (op >> 2) % 8 {
            // Most opcodes send a line, so that random bytes mostly exercise commands.
            0..=4 => self.server.handle(conn, Message::parse_client_bytes(arg), now),
            5 => {
                let secs = arg.first().map_or(1, |b| u64::from(*b % 120) + 1);
                self.elapsed += Duration::from_secs(secs);
                let now = self.now();
                self.server.tick(now);
            }
            6 => {
                if self.live.remove(&conn) {
                    self.server.disconnect(conn, "Connection closed", now);
                }
                self.check();
                self.reconnect(slot);
            }
            _ => {
                if !self.requests.is_empty() {
                    let (id, request) = self.requests.remove(0);
                    let ok = arg.first().is_none_or(|b| b % 4 != 0);
                    self.server.complete(id, answer(&request, ok), now);
                }
            }
        }
        self.check();
    }

    /// Takes the core's effects and checks each.
    fn check(&mut self) {
        let mut effects = Vec::new();
        self.server.drain_effects(&mut effects);
        for effect in effects.into_iter().flat_map(Effect::per_conn) {
            match effect {
                Effect::Send { conn, line } => {
                    assert!(self.live.contains(&conn), "sent to {conn:?}, which is closed or unknown");
                    assert!(line.ends_with(b"\r\n"), "no CRLF: {line:?}");
                    let body = &line[..line.len() - 2];
                    assert!(!body.iter().any(|b| matches!(b, b'\r' | b'\n' | b'\0')), "CR/LF/NUL inside {line:?}");
                    assert!(body.len() <= MAX_TAGS_LEN + MAX_BODY_LEN, "too long: {} bytes", body.len());
                    let msg = Message::parse_bytes(body).unwrap_or_else(|e| panic!("server line {line:?}: {e}"));
                    assert_eq!(msg.to_line().as_bytes(), body, "server line does not round-trip");
                }
                Effect::SendMany { .. } => unreachable!("split by per_conn"),
                Effect::Close { conn } => {
                    assert!(self.live.remove(&conn), "closed {conn:?} twice or unknown");
                }
                Effect::Request { id, request } => self.requests.push((id, request)),
                Effect::Persist(_)
                | Effect::SaveChannel(_)
                | Effect::DeleteChannel(_)
                | Effect::ClearOffline { .. }
                | Effect::QueueOffline { .. }
                | Effect::Cluster(_) => {}
            }
        }
        assert_eq!(self.server.connection_count(), self.live.len(), "the core and the edge disagree on who is here");
    }
}

/// A plausible answer from the edge: success (`ok`) or the usual failure.
fn answer(request: &Request, ok: bool) -> Response {
    match request {
        Request::Register { account, .. } | Request::CheckPassword { account, .. } => {
            Response::Account(if ok { Ok(account.clone()) } else { Err(Failure::BadPassword) })
        }
        Request::SetPassword { .. } | Request::DropAccount { .. } => {
            Response::Done(if ok { Ok(()) } else { Err(Failure::Unavailable("storage is busy".into())) })
        }
        // One old message when `ok`, so that offline pages (and their PONG tokens) and the
        // history filters run too.
        Request::History { conversation, .. } if ok => Response::Messages(Ok(vec![stored(conversation, None)])),
        Request::Offline { account, .. } if ok => {
            Response::Messages(Ok(vec![stored(&dm_conversation("~x", account), Some(account))]))
        }
        Request::History { .. } | Request::Offline { .. } => Response::Messages(Ok(Vec::new())),
        Request::HistoryTargets { .. } => Response::Targets(Ok(Vec::new())),
        Request::VerifyPassword { .. } | Request::Reload => {
            Response::Done(if ok { Ok(()) } else { Err(Failure::BadPassword) })
        }
        // Credentials of the password "password", so that a scripted proof can succeed.
        Request::ScramCredentials { account } if ok => Response::Scram(Ok(chinwag_core::ScramLookup {
            account: account.clone(),
            credentials: Some(fuzz_scram().clone()),
            server_nonce: "server-nonce".into(),
        })),
        Request::ScramCredentials { .. } => Response::Scram(Err(Failure::NoSuchAccount)),
        Request::CertOwner { .. } => {
            Response::Account(if ok { Ok("certowner".into()) } else { Err(Failure::NoSuchAccount) })
        }
        Request::Certs(_) if ok => Response::Certs(Ok(chinwag_core::CertAnswer::Added)),
        Request::Certs(_) => Response::Certs(Err(Failure::Unavailable("storage is busy".into()))),
        Request::Keys(_) if !ok => Response::Keys(Err(Failure::Unavailable("storage is busy".into()))),
        Request::Keys(keys) => Response::Keys(Ok(key_answer(keys))),
        // A message carol (the scripts' account) said in #general, so that both trips run.
        Request::Message { msgid } if ok => {
            let mut item = stored("#general", None);
            item.msgid = msgid.clone();
            item.sender_account = Some("carol".into());
            Response::Message(Ok(Some(item)))
        }
        Request::Message { .. } => Response::Message(Ok(None)),
        Request::Redact { .. } if ok => Response::Redacted(Ok(Some(Vec::new()))),
        Request::Redact { .. } => Response::Redacted(Err(Failure::Unavailable("storage is busy".into()))),
        Request::ReadMarkers { .. } if ok => Response::Markers(Ok(vec![("#fuzz".into(), 1_700_000_000_000)])),
        Request::ReadMarkers { .. } => Response::Markers(Err(Failure::Unavailable("storage is busy".into()))),
        Request::SetReadMarker { time_ms, .. } if ok => {
            Response::Marker(Ok(Some(chinwag_core::MarkerSet { time_ms: *time_ms, evicted: Vec::new() })))
        }
        Request::SetReadMarker { .. } => Response::Marker(Ok(None)),
        // A single node never claims; answered anyway so that the match stays complete.
        Request::Claim(_) => Response::Claim(chinwag_core::ClaimAnswer::Unavailable),
    }
}

/// Derived once: 4096 PBKDF2 rounds per answer would slow the fuzzer down.
fn fuzz_scram() -> &'static chinwag_core::scram::ScramCredentials {
    static CREDS: std::sync::OnceLock<chinwag_core::scram::ScramCredentials> = std::sync::OnceLock::new();
    CREDS.get_or_init(|| chinwag_core::scram::ScramCredentials::derive("password", b"salt", 4096))
}

/// A message storage kept long ago in `conversation` (for `queue`, if it waits in one).
fn stored(conversation: &str, queue: Option<&str>) -> HistoryItem {
    HistoryItem {
        msgid: "0000000001000000001".into(),
        time_ms: 1_000,
        command: "PRIVMSG".into(),
        sender: "x!~x@host".into(),
        sender_account: None,
        target: conversation.split('\0').next().unwrap_or_default().into(),
        text: "kept".into(),
        tags: String::new(),
        conversation: conversation.into(),
        participants: Vec::new(),
        offline_for: queue.map(str::to_owned),
    }
}

/// A plausible answer of the end-to-end encryption key directory.
fn key_answer(request: &KeyRequest) -> KeyAnswer {
    let counts = |one_time_keys| KeyCounts { one_time_keys, fallback: true };
    match request {
        KeyRequest::PublishDevice { .. } => KeyAnswer::Published(Published::New, counts(0)),
        KeyRequest::AddOneTimeKeys { keys, .. } => KeyAnswer::Counts(Some(counts(keys.len()))),
        KeyRequest::SetFallback { .. } => KeyAnswer::Counts(Some(counts(1))),
        KeyRequest::Devices { .. } => KeyAnswer::Devices(Vec::new()),
        KeyRequest::Claim { devices, .. } => KeyAnswer::Claimed(
            devices
                .iter()
                .map(|d| {
                    let key = SignedKey { key: "AAAA".into(), signature: "BBBB".into() };
                    (d.clone(), Some(Claimed { key, fallback: false, remaining: 1 }))
                })
                .collect(),
        ),
        KeyRequest::RemoveDevice { .. } => KeyAnswer::Removed(true),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut world = World::new();
    for piece in data.split(|&b| b == b'\n').take(MAX_STEPS) {
        let Some((&op, arg)) = piece.split_first() else { continue };
        let arg = arg.strip_suffix(b"\r").unwrap_or(arg);
        world.step(op, arg);
    }
    let now = world.now();
    world.server.close_all("Server shutting down", now);
    world.check();
    assert_eq!(world.server.connection_count(), 0);
});
