//! A device: its Olm account and sessions, its file, and the client half of the `E2E` key
//! directory protocol (publish identity, keep the one-time key pool topped up, fetch and check
//! device lists, claim keys).

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::fmt;
use std::path::Path;

use chinwag_proto::{casefold, Message};
use serde::{Deserialize, Serialize};
use vodozemac::olm::{Account, AccountPickle, Session, SessionConfig, SessionPickle};
use vodozemac::{Curve25519PublicKey, Ed25519PublicKey, Ed25519Signature};
use zeroize::Zeroizing;

use crate::archive::Archive;
use crate::trust::{safety_number, Trust, TrustChange, TrustStore};
use crate::vault::{KdfParams, Vault};
use crate::{Error, Event, Warning};

/// One-time keys a device keeps on the server; it tops up whenever it learns it has fewer.
pub const TARGET_ONE_TIME_KEYS: usize = 25;
/// `key:signature` pairs per `E2E OTK` line: three fit in 512 bytes.
const KEYS_PER_LINE: usize = 3;
/// Fingerprints of decrypted messages remembered (sender, device, message id and a digest of
/// the ciphertext), so that one delivered again is dropped silently rather than taken for a
/// replay; the oldest are forgotten beyond this.
const MAX_SEEN: usize = 10_000;
/// Devices one account may list (the server's limit); a longer list is cut.
const MAX_LISTED: usize = 10;

/// What is written to the vault.
#[derive(Serialize, Deserialize)]
struct State {
    account: String,
    device: String,
    olm: AccountPickle,
    sessions: Vec<(String, String, String, SessionPickle)>,
    trust: TrustStore,
    seen: VecDeque<String>,
}

/// An Olm session with one peer device.
pub(crate) struct PeerSession {
    /// The peer's account (folded) and device id.
    pub account: String,
    pub device: String,
    /// The peer device's Curve25519 identity key: a session belongs to keys, not names.
    pub peer: String,
    pub session: Session,
}

/// A device of an account as the server last listed it, signature checked.
#[derive(Clone, Debug)]
pub(crate) struct Listed {
    pub device: String,
    pub curve: String,
    pub ed: String,
}

/// A message waiting for device lists or keys before it can be encrypted.
#[derive(Debug)]
pub(crate) struct PendingSend {
    pub to_nick: String,
    /// Folded.
    pub to_account: String,
    pub id: String,
    pub text: Zeroizing<String>,
}

/// A device list being received (`E2E DEVICES` then its `E2E DEVICE` lines).
#[derive(Debug)]
struct Collecting {
    account: String,
    remaining: usize,
    devices: Vec<Listed>,
}

/// This installation's end-to-end encryption identity and state. See the crate docs.
pub struct Device {
    vault: Vault,
    /// The account as logged in (display form) and folded.
    pub(crate) account: String,
    pub(crate) folded: String,
    pub(crate) device: String,
    pub(crate) olm: Account,
    /// Most recently used first.
    pub(crate) sessions: Vec<PeerSession>,
    pub(crate) trust: TrustStore,
    seen: VecDeque<String>,
    seen_set: HashSet<String>,
    pub(crate) reassembly: crate::wire::Reassembler,
    /// Latest device lists from the server, by folded account.
    pub(crate) listed: HashMap<String, Vec<Listed>>,
    collecting: Option<Collecting>,
    /// Accounts whose `E2E DEVICES` is in flight.
    pub(crate) lists_wanted: BTreeSet<String>,
    /// `(account, device)` whose `E2E CLAIM` is in flight.
    pub(crate) claims: BTreeSet<(String, String)>,
    /// Devices the server had no key for, during the sends waiting now.
    pub(crate) no_keys: BTreeSet<(String, String)>,
    pub(crate) outbox: VecDeque<PendingSend>,
    /// Key uploads (`E2E OTK`, `E2E FALLBACK` lines) whose `E2E COUNT` answer has not come yet.
    uploads: usize,
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Device")
            .field("account", &self.account)
            .field("device", &self.device)
            .field("vault", &self.vault)
            .field("sessions", &self.sessions.len())
            .finish_non_exhaustive()
    }
}

/// What a device signs to publish its identity.
pub(crate) fn device_statement(account: &str, device: &str, curve: &str, ed: &str) -> String {
    format!("chinwag-e2e device\n{account}\n{device}\n{curve}\n{ed}")
}

/// What a device signs to publish a one-time (`otk`) or fallback key.
pub(crate) fn key_statement(kind: &str, account: &str, device: &str, key: &str) -> String {
    format!("chinwag-e2e {kind}\n{account}\n{device}\n{key}")
}

/// Whether `signature` is `ed`'s signature of `statement`.
pub(crate) fn signed_by(ed: &str, statement: &str, signature: &str) -> bool {
    let (Ok(key), Ok(sig)) = (Ed25519PublicKey::from_base64(ed), Ed25519Signature::from_base64(signature)) else {
        return false;
    };
    key.verify(statement.as_bytes(), &sig).is_ok()
}

fn valid_device_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 32 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Device {
    /// Creates a new device for `account` and writes it, encrypted under `passphrase`, to
    /// `path` (which must not exist).
    pub fn create(path: &Path, passphrase: &str, kdf: KdfParams, account: &str, device: &str) -> Result<Device, Error> {
        if !valid_device_id(device) {
            return Err(Error::InvalidDeviceId(device.to_owned()));
        }
        let vault = Vault::create(path, passphrase, kdf)?;
        let mut this = Device::assemble(
            vault,
            account.to_owned(),
            device.to_owned(),
            Account::new(),
            Vec::new(),
            TrustStore::default(),
            VecDeque::new(),
        );
        let (curve, ed) = this.identity_keys();
        this.trust.trust_self(&this.folded, &this.device, &curve, &ed);
        this.save()?;
        Ok(this)
    }

    /// Opens the device stored at `path`.
    pub fn open(path: &Path, passphrase: &str) -> Result<Device, Error> {
        let (vault, plain) = Vault::open(path, passphrase)?;
        let state: State = serde_json::from_slice(&plain).map_err(|_| Error::Corrupt(path.to_owned()))?;
        let sessions = state
            .sessions
            .into_iter()
            .map(|(account, device, peer, p)| PeerSession { account, device, peer, session: Session::from_pickle(p) })
            .collect();
        Ok(Device::assemble(
            vault,
            state.account,
            state.device,
            Account::from_pickle(state.olm),
            sessions,
            state.trust,
            state.seen,
        ))
    }

    fn assemble(
        vault: Vault,
        account: String,
        device: String,
        olm: Account,
        sessions: Vec<PeerSession>,
        trust: TrustStore,
        seen: VecDeque<String>,
    ) -> Device {
        let seen_set = seen.iter().cloned().collect();
        Device {
            vault,
            folded: casefold(&account),
            account,
            device,
            olm,
            sessions,
            trust,
            seen,
            seen_set,
            reassembly: Default::default(),
            listed: HashMap::new(),
            collecting: None,
            lists_wanted: BTreeSet::new(),
            claims: BTreeSet::new(),
            no_keys: BTreeSet::new(),
            outbox: VecDeque::new(),
            uploads: 0,
        }
    }

    /// Writes the state to the device file (encrypted, atomically).
    pub fn save(&self) -> Result<(), Error> {
        let state = State {
            account: self.account.clone(),
            device: self.device.clone(),
            olm: self.olm.pickle(),
            sessions: self
                .sessions
                .iter()
                .map(|s| (s.account.clone(), s.device.clone(), s.peer.clone(), s.session.pickle()))
                .collect(),
            trust: self.trust.clone(),
            seen: self.seen.clone(),
        };
        let json = Zeroizing::new(serde_json::to_vec(&state).map_err(|e| Error::Vault(e.to_string()))?);
        self.vault.save(&json)
    }

    /// Saves, turning a failure into a warning for the user.
    pub(crate) fn save_or_warn(&self, out: &mut Vec<Event>) {
        if let Err(e) = self.save() {
            out.push(Event::Warning(Warning::NotSaved(e.to_string())));
        }
    }

    pub fn account(&self) -> &str {
        &self.account
    }

    /// Opens the message archive at `path` (or starts one), sealed with a key derived from this
    /// device file's key. A file that does not open is set aside; the warning says so.
    pub fn open_archive(&self, path: &Path) -> (Archive, Option<Warning>) {
        Archive::open(path, self.vault.subkey("chinwag-e2e archive key v1"))
    }

    /// The device file.
    pub fn path(&self) -> &Path {
        self.vault.path()
    }

    pub fn device_id(&self) -> &str {
        &self.device
    }

    /// This device's (Curve25519, Ed25519) identity keys, base64.
    pub fn identity_keys(&self) -> (String, String) {
        let keys = self.olm.identity_keys();
        (keys.curve25519.to_base64(), keys.ed25519.to_base64())
    }

    pub fn trust(&self) -> &TrustStore {
        &self.trust
    }

    fn sign(&self, statement: &str) -> String {
        self.olm.sign(statement).to_base64()
    }

    /// The lines to send once logged in: publish this device (the server answers with its key
    /// counts, and [`Device::handle`] then uploads what is missing) and fetch the account's
    /// device list.
    pub fn connect(&mut self) -> Vec<Event> {
        let (curve, ed) = self.identity_keys();
        let sig = self.sign(&device_statement(&self.folded, &self.device, &curve, &ed));
        let mut out = vec![Event::Line(format!("E2E DEVICE {} {curve} {ed} {sig}", self.device))];
        // One's own list, now: a device added to the account later is then noticed as new.
        if self.lists_wanted.insert(self.folded.clone()) {
            out.push(Event::Line(format!("E2E DEVICES {}", self.folded)));
        }
        out
    }

    /// Takes in one line from the server. Lines that are not about end-to-end encryption give
    /// nothing.
    pub fn handle(&mut self, msg: &Message) -> Vec<Event> {
        let mut out = Vec::new();
        match msg.command.as_str() {
            "E2E" => self.handle_e2e(msg, &mut out),
            "FAIL" if msg.params.first().is_some_and(|c| c == "E2E") => self.handle_e2e(msg, &mut out),
            "PRIVMSG" | "NOTICE" if msg.tag(crate::wire::TAG).is_some() => self.receive(msg, &mut out),
            _ => {}
        }
        out
    }

    fn handle_e2e(&mut self, msg: &Message, out: &mut Vec<Event>) {
        // A failed key directory request leaves nothing to wait for: what waits is not sent.
        if msg.command == "FAIL" {
            self.lists_wanted.clear();
            self.claims.clear();
            self.collecting = None;
            let reason = format!("the server refused: {}", msg.params.last().map_or("", String::as_str));
            for send in std::mem::take(&mut self.outbox) {
                out.push(Event::Warning(Warning::NotSent { account: send.to_account, reason: reason.clone() }));
            }
            return;
        }
        let p = &msg.params;
        let param = |i: usize| p.get(i).map(String::as_str).unwrap_or("");
        match param(0) {
            "COUNT" | "REFILL" if param(1) == self.device => {
                // Counts that answer uploads still on their way are stale: only the answer to
                // the last one says how many keys the server really has.
                if param(0) == "COUNT" {
                    self.uploads = self.uploads.saturating_sub(1);
                }
                if self.uploads == 0 {
                    let count: usize = param(2).parse().unwrap_or(0);
                    self.top_up(count, param(0) == "COUNT" && param(3) == "0", out);
                }
            }
            "DEVICES" => {
                let account = casefold(param(1));
                let remaining = param(2).parse::<usize>().unwrap_or(0).min(MAX_LISTED);
                self.collecting = Some(Collecting { account, remaining, devices: Vec::new() });
                self.collect_done(out);
            }
            "DEVICE" => {
                let Some(c) = self.collecting.as_mut().filter(|c| c.account == casefold(param(1)) && c.remaining > 0)
                else {
                    return;
                };
                c.remaining -= 1;
                let (device, curve, ed, sig) = (param(2), param(3), param(4), param(5));
                if signed_by(ed, &device_statement(&c.account, device, curve, ed), sig) {
                    c.devices.push(Listed { device: device.to_owned(), curve: curve.to_owned(), ed: ed.to_owned() });
                } else {
                    let warning = Warning::BadSignature { account: c.account.clone(), device: device.to_owned() };
                    out.push(Event::Warning(warning));
                }
                self.collect_done(out);
            }
            "KEY" => {
                let (account, device) = (casefold(param(1)), param(2).to_owned());
                if !self.claims.remove(&(account.clone(), device.clone())) {
                    return;
                }
                self.claimed(&account, &device, param(3), param(4), param(5), out);
                self.progress(out);
            }
            _ => {}
        }
    }

    /// Uploads one-time keys up to the target, and a fallback key if the server has none.
    fn top_up(&mut self, on_server: usize, needs_fallback: bool, out: &mut Vec<Event>) {
        let mut changed = false;
        if on_server < TARGET_ONE_TIME_KEYS {
            let unpublished = self.olm.one_time_keys().len();
            let wanted = TARGET_ONE_TIME_KEYS - on_server;
            if wanted > unpublished {
                self.olm.generate_one_time_keys(wanted - unpublished);
            }
            let mut keys: Vec<String> = self.olm.one_time_keys().values().map(|k| k.to_base64()).collect();
            keys.sort();
            let signed: Vec<String> = keys
                .iter()
                .map(|k| format!("{k}:{}", self.sign(&key_statement("otk", &self.folded, &self.device, k))))
                .collect();
            for chunk in signed.chunks(KEYS_PER_LINE) {
                out.push(Event::Line(format!("E2E OTK {}", chunk.join(" "))));
                self.uploads += 1;
            }
            changed = true;
        }
        if needs_fallback {
            self.olm.generate_fallback_key();
            for key in self.olm.fallback_key().values() {
                let k = key.to_base64();
                let sig = self.sign(&key_statement("fallback", &self.folded, &self.device, &k));
                out.push(Event::Line(format!("E2E FALLBACK {k}:{sig}")));
                self.uploads += 1;
            }
            changed = true;
        }
        if changed {
            self.olm.mark_keys_as_published();
            self.save_or_warn(out);
        }
    }

    /// Finishes a device list once all its lines are in.
    fn collect_done(&mut self, out: &mut Vec<Event>) {
        if self.collecting.as_ref().is_none_or(|c| c.remaining > 0) {
            return;
        }
        let Some(c) = self.collecting.take() else { return };
        let mut devices = c.devices;
        if c.account == self.folded {
            // One's own device is known; the server's copy of it must match.
            let (curve, ed) = self.identity_keys();
            devices.retain(|d| d.device != self.device || (d.curve == curve && d.ed == ed));
        }
        let observed: Vec<(String, String, String)> =
            devices.iter().map(|d| (d.device.clone(), d.curve.clone(), d.ed.clone())).collect();
        for change in self.trust.observe(&c.account, &observed) {
            let warning = match change {
                TrustChange::NewDevice { account, device } => Warning::NewDevice { account, device },
                TrustChange::KeyChanged { account, device } => {
                    // Sessions with the old keys are useless now and must not be used by mistake.
                    Warning::KeyChanged { account, device }
                }
            };
            out.push(Event::Warning(warning));
        }
        self.listed.insert(c.account.clone(), devices);
        self.lists_wanted.remove(&c.account);
        self.save_or_warn(out);
        self.progress(out);
    }

    /// A key for `(account, device)` came back from a claim: start a session with it.
    fn claimed(&mut self, account: &str, device: &str, kind: &str, key: &str, sig: &str, out: &mut Vec<Event>) {
        let listed = self.listed.get(account).and_then(|l| l.iter().find(|d| d.device == device)).cloned();
        let Some(listed) = listed else { return };
        let statement_kind = if kind == "fallback" { "fallback" } else { "otk" };
        let usable = matches!(kind, "otk" | "fallback")
            && signed_by(&listed.ed, &key_statement(statement_kind, account, device, key), sig);
        let keys = (Curve25519PublicKey::from_base64(&listed.curve), Curve25519PublicKey::from_base64(key));
        match (usable, keys) {
            (true, (Ok(identity), Ok(one_time))) => {
                let session = self.olm.create_outbound_session(SessionConfig::version_2(), identity, one_time);
                self.add_session(PeerSession {
                    account: account.to_owned(),
                    device: device.to_owned(),
                    peer: listed.curve.clone(),
                    session,
                });
            }
            _ => {
                if kind != "none" {
                    out.push(Event::Warning(Warning::BadSignature {
                        account: account.to_owned(),
                        device: device.to_owned(),
                    }));
                }
                self.no_keys.insert((account.to_owned(), device.to_owned()));
            }
        }
    }

    /// Remembers a message id; `false` if it was already seen (a replay).
    pub(crate) fn remember(&mut self, key: String) -> bool {
        if !self.seen_set.insert(key.clone()) {
            return false;
        }
        self.seen.push_back(key);
        while self.seen.len() > MAX_SEEN {
            if let Some(old) = self.seen.pop_front() {
                self.seen_set.remove(&old);
            }
        }
        true
    }

    pub(crate) fn has_seen(&self, key: &str) -> bool {
        self.seen_set.contains(key)
    }

    /// The user accepts a new or changed device of `account`; `false` if it is unknown. Waiting
    /// messages are not re-sent to it: new ones will be.
    pub fn accept_device(&mut self, account: &str, device: &str) -> bool {
        let accepted = self.trust.accept(&casefold(account), device);
        if accepted {
            let _ = self.save();
        }
        accepted
    }

    /// The user compared the safety number with `account` and it matched: its devices (and this
    /// account's) as known now are verified, and remembered as such.
    pub fn verify(&mut self, account: &str) -> Result<(), Error> {
        self.trust.verify(&casefold(account));
        self.trust.verify(&self.folded.clone());
        self.save()
    }

    /// The safety number of the conversation with `account`, from both accounts' accepted device
    /// keys as known now (fetch both device lists first: [`Device::refresh_devices`]). `None` if
    /// no device of `account` is known.
    pub fn safety_number(&self, account: &str) -> Option<String> {
        let theirs_name = casefold(account);
        let keys = |name: &str| -> Vec<(String, String)> {
            self.trust
                .devices(name)
                .filter(|(_, d)| d.trust.accepted())
                .map(|(_, d)| (d.curve25519.clone(), d.ed25519.clone()))
                .collect()
        };
        let theirs = keys(&theirs_name);
        if theirs.is_empty() {
            return None;
        }
        let mine = keys(&self.folded);
        Some(safety_number((&self.folded, &mine), (&theirs_name, &theirs)))
    }

    /// Asks the server for the current device lists of `account` and of one's own account.
    pub fn refresh_devices(&mut self, account: &str) -> Vec<Event> {
        let mut out = Vec::new();
        for name in [casefold(account), self.folded.clone()] {
            if self.lists_wanted.insert(name.clone()) {
                out.push(Event::Line(format!("E2E DEVICES {name}")));
            }
        }
        out
    }

    /// Whether `account` has end-to-end encryption devices, as of the last list fetched
    /// ([`Device::refresh_devices`]); `None` if no list was fetched yet. A client asks before
    /// sending in clear: to someone who has devices, that needs the user's explicit choice.
    pub fn has_devices(&self, account: &str) -> Option<bool> {
        self.listed.get(&casefold(account)).map(|l| !l.is_empty())
    }

    /// Whether key uploads are waiting for the server's count.
    pub fn uploading_keys(&self) -> bool {
        self.uploads > 0
    }

    /// Whether a device list asked for has not arrived yet (messages wait for it).
    pub fn fetching_devices(&self) -> bool {
        !self.lists_wanted.is_empty()
    }

    /// The trust of `account`'s `device`, if known.
    pub fn device_trust(&self, account: &str, device: &str) -> Option<Trust> {
        self.trust.device(&casefold(account), device).map(|d| d.trust)
    }
}
