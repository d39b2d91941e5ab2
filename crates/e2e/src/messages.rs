//! Encrypting a message for every device that should get it, and decrypting what arrives.
//!
//! Sending waits for two things the server provides: the device lists of the recipient and of
//! one's own account (fetched afresh for every message, so a new or changed device is noticed
//! before anything is encrypted to it), and a claimed key for each device without a session.
//! Messages leave in the order they were written.
//!
//! Inside the Olm ciphertext is a small JSON payload that repeats the addressing (sender and
//! recipient account and device, the message id): the tag outside is not authenticated, so the
//! receiver checks that both agree and rejects a message whose addressing was altered.

use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use chinwag_proto::{casefold, Message};
use serde::{Deserialize, Serialize};
use vodozemac::olm::{DecryptionError, OlmMessage};
use zeroize::Zeroizing;

use crate::device::{Device, PeerSession, PendingSend};
use crate::wire::{split, Envelope, Reassembly, EXPLANATION, TAG};
use crate::{Error, Event, Received, Warning, MAX_TEXT_LEN};

/// A device a message goes to: account (folded), device id, Curve25519 identity key.
type Target = (String, String, String);
/// Devices held back, by account.
type HeldBack = Vec<(String, Vec<String>)>;

/// Sessions kept per peer device; older ones are dropped (a peer that set up several at once).
const SESSIONS_PER_DEVICE: usize = 4;
/// Sessions kept in all, the oldest dropped first: anyone can start sessions with a
/// device (with its fallback key), so their number must be bounded.
const MAX_SESSIONS: usize = 1000;

/// The authenticated content of a message.
#[derive(Serialize, Deserialize)]
struct Payload {
    v: u32,
    id: String,
    from: String,
    from_device: String,
    to: String,
    to_device: String,
    /// The conversation's other party from the sender's side (its recipient).
    peer: String,
    text: String,
}

impl Device {
    /// Encrypts `text` for `to_account` (whose nick is `to_nick`): the returned lines ask for
    /// device lists; later calls to [`Device::handle`] claim keys and finally give the tagged
    /// `PRIVMSG` lines, one or more per device.
    pub fn send(&mut self, to_nick: &str, to_account: &str, text: &str) -> Result<Vec<Event>, Error> {
        if text.len() > MAX_TEXT_LEN {
            return Err(Error::TooLong(text.len()));
        }
        let id: String = rand::random::<[u8; 12]>().iter().map(|b| format!("{b:02x}")).collect();
        self.outbox.push_back(PendingSend {
            to_nick: to_nick.to_owned(),
            to_account: casefold(to_account),
            id,
            text: Zeroizing::new(text.to_owned()),
        });
        let mut out = self.refresh_devices(to_account);
        self.progress(&mut out);
        Ok(out)
    }

    /// Moves waiting messages on as far as what is known allows.
    pub(crate) fn progress(&mut self, out: &mut Vec<Event>) {
        while let Some(front) = self.outbox.front() {
            let to = front.to_account.clone();
            if self.lists_wanted.contains(&to) || self.lists_wanted.contains(&self.folded) {
                return;
            }
            let (targets, held) = self.targets(&to);
            let missing: Vec<Target> = targets
                .iter()
                .filter(|t| !self.has_session(&t.2) && !self.no_keys.contains(&(t.0.clone(), t.1.clone())))
                .cloned()
                .collect();
            if missing.iter().any(|t| self.claims.contains(&(t.0.clone(), t.1.clone()))) {
                return;
            }
            if !missing.is_empty() {
                self.claim(&missing, out);
                return;
            }
            let Some(send) = self.outbox.pop_front() else { return };
            for (account, devices) in held {
                out.push(Event::Warning(Warning::Held { account, devices }));
            }
            self.encrypt_all(&send, &targets, out);
            if self.outbox.is_empty() {
                self.no_keys.clear();
            }
            self.save_or_warn(out);
        }
    }

    /// The accepted devices a message to `to` goes to — `(account, device, curve25519)` — and
    /// the listed devices held back because they are not accepted, by account.
    fn targets(&self, to: &str) -> (Vec<Target>, HeldBack) {
        let mut targets = Vec::new();
        let mut held = Vec::new();
        let mut accounts = vec![to.to_owned()];
        if to != self.folded {
            accounts.push(self.folded.clone());
        }
        for account in accounts {
            let mut not_accepted = Vec::new();
            for d in self.listed.get(&account).into_iter().flatten() {
                if account == self.folded && d.device == self.device {
                    continue;
                }
                match self.trust.device(&account, &d.device) {
                    Some(k) if k.trust.accepted() && k.curve25519 == d.curve => {
                        targets.push((account.clone(), d.device.clone(), d.curve.clone()))
                    }
                    _ => not_accepted.push(d.device.clone()),
                }
            }
            if !not_accepted.is_empty() {
                held.push((account, not_accepted));
            }
        }
        (targets, held)
    }

    fn has_session(&self, curve: &str) -> bool {
        self.sessions.iter().any(|s| s.peer == curve)
    }

    fn claim(&mut self, missing: &[Target], out: &mut Vec<Event>) {
        let mut accounts: Vec<&str> = missing.iter().map(|t| t.0.as_str()).collect();
        accounts.dedup();
        for account in accounts {
            let devices: Vec<&str> = missing.iter().filter(|t| t.0 == account).map(|t| t.1.as_str()).collect();
            for chunk in devices.chunks(10) {
                out.push(Event::Line(format!("E2E CLAIM {account} {}", chunk.join(","))));
            }
            for d in devices {
                self.claims.insert((account.to_owned(), d.to_owned()));
            }
        }
    }

    fn encrypt_all(&mut self, send: &PendingSend, targets: &[Target], out: &mut Vec<Event>) {
        let mut reached_recipient = false;
        let mut no_keys: Vec<(String, Vec<String>)> = Vec::new();
        for (account, device, curve) in targets {
            let Some(index) = self.sessions.iter().position(|s| s.peer == *curve) else {
                match no_keys.iter_mut().find(|(a, _)| a == account) {
                    Some((_, list)) => list.push(device.clone()),
                    None => no_keys.push((account.clone(), vec![device.clone()])),
                }
                continue;
            };
            let payload = Payload {
                v: 1,
                id: send.id.clone(),
                from: self.folded.clone(),
                from_device: self.device.clone(),
                to: account.clone(),
                to_device: device.clone(),
                peer: send.to_account.clone(),
                text: send.text.to_string(),
            };
            let plain = Zeroizing::new(serde_json::to_vec(&payload).unwrap_or_default());
            let (kind, bytes) = self.sessions[index].session.encrypt(plain.as_slice()).to_parts();
            let Some(parts) = split((account, device), &self.device, &send.id, kind, &B64.encode(bytes)) else {
                let reason = "the message is too long to send".to_owned();
                out.push(Event::Warning(Warning::NotSent { account: send.to_account.clone(), reason }));
                return;
            };
            for env in parts {
                out.push(Event::Line(format!("@{TAG}={} PRIVMSG {} :{EXPLANATION}", env.encode(), send.to_nick)));
            }
            if *account == send.to_account {
                reached_recipient = true;
            }
        }
        for (account, devices) in no_keys {
            out.push(Event::Warning(Warning::NoKeys { account, devices }));
        }
        if !reached_recipient && send.to_account != self.folded {
            let reason = "none of their devices can receive it (no accepted device with keys)".to_owned();
            out.push(Event::Warning(Warning::NotSent { account: send.to_account.clone(), reason }));
        }
    }

    /// Keeps a new session first, at most [`SESSIONS_PER_DEVICE`] per peer device and
    /// [`MAX_SESSIONS`] in all.
    pub(crate) fn add_session(&mut self, session: PeerSession) {
        let peer = session.peer.clone();
        self.sessions.insert(0, session);
        let mut kept = 0;
        self.sessions.retain(|s| {
            if s.peer != peer {
                return true;
            }
            kept += 1;
            kept <= SESSIONS_PER_DEVICE
        });
        self.sessions.truncate(MAX_SESSIONS);
    }

    /// An encrypted line arrived.
    pub(crate) fn receive(&mut self, msg: &Message, out: &mut Vec<Event>) {
        let from_nick = msg.source.as_deref().and_then(|s| s.split('!').next()).unwrap_or("*").to_owned();
        let value = msg.tag(TAG).unwrap_or("");
        let Some(env) = Envelope::parse(value) else {
            let reason = "its encrypted part is malformed".to_owned();
            out.push(Event::Warning(Warning::Rejected { from_nick, from_device: "?".into(), reason }));
            return;
        };
        if env.to_account != self.folded || env.to_device != self.device {
            return;
        }
        let reject = |out: &mut Vec<Event>, reason: &str| {
            let w = Warning::Rejected {
                from_nick: from_nick.clone(),
                from_device: env.from_device.clone(),
                reason: reason.to_owned(),
            };
            out.push(Event::Warning(w));
        };
        let Some(sender) = msg.tag("account").map(casefold) else {
            reject(out, "the sender is not logged in to an account");
            return;
        };
        if sender == self.folded && env.from_device == self.device {
            return;
        }
        let (kind, data) = match self.reassembly.push(&sender, &env) {
            Reassembly::Incomplete => return,
            Reassembly::Inconsistent => return reject(out, "its parts do not match each other"),
            Reassembly::Complete { kind, data } => (kind, data),
        };
        // A message decrypted before and delivered again (a history replay, an offline message
        // sent again after a reconnect) is not news, and not an attack: it was shown once, and
        // is dropped without a word. Its key is spent, so only its fingerprint can tell.
        // Fingerprints written before they held a digest are the sender, device and id alone.
        let legacy = format!("{sender}/{}/{}", env.from_device, env.id);
        let seen_key = format!("{legacy}/{}", digest(kind, &data));
        if self.has_seen(&seen_key) || self.has_seen(&legacy) {
            return;
        }
        let Some(olm) = B64.decode(data.trim_end_matches('=')).ok().and_then(|b| OlmMessage::from_parts(kind, &b).ok())
        else {
            return reject(out, "it is truncated or malformed");
        };
        let known = self.trust.device(&sender, &env.from_device).map(|d| d.curve25519.clone());
        let plain = match self.decrypt(&sender, &env.from_device, known.as_deref(), &olm) {
            Ok(plain) => Zeroizing::new(plain),
            Err(Failure::Replay) => {
                out.push(Event::Warning(Warning::Replayed { from_nick, from_device: env.from_device.clone() }));
                return;
            }
            Err(Failure::Reject(reason)) => return reject(out, reason),
        };
        let Ok(payload) = serde_json::from_slice::<Payload>(&plain) else {
            return reject(out, "its content is malformed");
        };
        let addressed = payload.v == 1
            && payload.to == self.folded
            && payload.to_device == self.device
            && payload.from == sender
            && payload.from_device == env.from_device
            && payload.id == env.id;
        if !addressed {
            self.save_or_warn(out);
            return reject(out, "its addressing was altered");
        }
        self.remember(seen_key);
        let sent_by_me = sender == self.folded;
        let trust = self.trust.device(&sender, &env.from_device).map(|d| d.trust);
        if trust.is_none() && self.lists_wanted.insert(sender.clone()) {
            out.push(Event::Line(format!("E2E DEVICES {sender}")));
        }
        out.push(Event::Message(Received {
            peer: if sent_by_me { payload.peer } else { sender.clone() },
            from_account: sender,
            from_device: env.from_device,
            from_nick,
            sent_by_me,
            text: payload.text,
            trust,
            msgid: msg.tag("msgid").map(str::to_owned),
            time: msg.tag("time").map(str::to_owned),
        }));
        self.save_or_warn(out);
    }

    fn decrypt(
        &mut self,
        sender: &str,
        device: &str,
        known: Option<&str>,
        olm: &OlmMessage,
    ) -> Result<Vec<u8>, Failure> {
        match olm {
            OlmMessage::PreKey(pre) => {
                let identity = pre.identity_key().to_base64();
                if known.is_some_and(|k| k != identity) {
                    return Err(Failure::Reject("it was sent with keys that are not that device's"));
                }
                let session_id = pre.session_id();
                if let Some(s) =
                    self.sessions.iter_mut().find(|s| s.peer == identity && s.session.session_id() == session_id)
                {
                    return s.session.decrypt(olm).map_err(failure);
                }
                match self.olm.create_inbound_session(pre.identity_key(), pre) {
                    Ok(result) => {
                        let session = PeerSession {
                            account: sender.to_owned(),
                            device: device.to_owned(),
                            peer: identity,
                            session: result.session,
                        };
                        self.add_session(session);
                        Ok(result.plaintext)
                    }
                    Err(vodozemac::olm::SessionCreationError::MissingOneTimeKey(_)) => Err(Failure::Replay),
                    Err(_) => Err(Failure::Reject("it failed authentication")),
                }
            }
            OlmMessage::Normal(_) => {
                let mut last = Failure::Reject("there is no session with that device");
                for s in self.sessions.iter_mut().filter(|s| s.account == sender && s.device == device) {
                    if known.is_some_and(|k| k != s.peer) {
                        continue;
                    }
                    match s.session.decrypt(olm) {
                        Ok(plain) => return Ok(plain),
                        Err(e) => last = failure(e),
                    }
                }
                Err(last)
            }
        }
    }
}

/// A short digest of a message's ciphertext (16 bytes of SHA-256, hex), for its fingerprint:
/// another ciphertext under a message id already seen is not the message that was seen.
fn digest(kind: usize, data: &str) -> String {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(kind.to_string().as_bytes());
    hash.update(b" ");
    hash.update(data.as_bytes());
    hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a ciphertext was not decrypted.
enum Failure {
    Replay,
    Reject(&'static str),
}

fn failure(e: DecryptionError) -> Failure {
    match e {
        DecryptionError::MissingMessageKey(_) => Failure::Replay,
        _ => Failure::Reject("it failed authentication"),
    }
}
