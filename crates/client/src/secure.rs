//! End-to-end encrypted private messages in the client: the `chinwag-e2e` device of the
//! logged-in account, driven by the driver. Lines from the server go through the device first
//! (encrypted messages never reach the session, which would show ciphertext); private messages
//! to a contact with devices are encrypted, and sending one in clear takes `/msg --clear`.
//!
//! A contact's account is taken to be their nick (chinwag protects registered nicks for their
//! account); a message waits while the contact's device list is fetched.
//!
//! What was decrypted (and what was sent encrypted) is kept in the account's message archive,
//! sealed with a key from the device file, so that `/history` in a private conversation shows
//! it after a restart: the server holds only ciphertext, which cannot be decrypted twice.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use chinwag_e2e::{Archive, Archived, Device, Event as E2eEvent, KdfParams, Trust, Warning};
use chinwag_proto::{casefold, Message};

use crate::command::Command;
use crate::event::{ChatMessage, Event, MessageKind};

/// The account's device and message archive, and what waits for device lists.
pub struct Secure {
    device: Device,
    archive: Archive,
    /// Folded peer → the archive position of the oldest message of that conversation shown
    /// so far (live or by `/history`): the next `/history` shows what is older, so that
    /// scrolling back never shows a message twice.
    shown_from: HashMap<String, u64>,
    /// Private messages waiting to learn whether their recipient has devices.
    waiting: Vec<(String, String)>,
}

impl std::fmt::Debug for Secure {
    // The device holds private keys and the archive messages: only identities are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("device", &self.device.device_id())
            .field("archive", &self.archive)
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// An account name as a file name: `A-Z a-z 0-9 _ -` as they are, every other byte of its
/// UTF-8 as `%XX`, so that no account name can reach outside the directory (`..`, `/`) or
/// land on another account's file (`a|b` and `ab` stay apart).
pub fn file_stem(account: &str) -> String {
    if account.is_empty() {
        // `%` alone is never an escape (those have two digits), so it is nobody else's name.
        return "%".into();
    }
    let mut out = String::with_capacity(account.len());
    for b in account.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Where end-to-end encryption keeps its files by default: `<data dir>/chinwag/e2e`.
pub fn default_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("chinwag").join("e2e"))
}

/// An account's device file in `dir`: `ACCOUNT.device` (see [`file_stem`]).
pub fn device_path(dir: &Path, account: &str) -> PathBuf {
    dir.join(format!("{}.device", file_stem(account)))
}

/// An account's message archive in `dir`: `ACCOUNT.archive`.
pub fn archive_path(dir: &Path, account: &str) -> PathBuf {
    dir.join(format!("{}.archive", file_stem(account)))
}

/// What the driver must do with the device's answers.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Commands for the session (raw lines to send, messages sent in clear).
    pub commands: Vec<Command>,
    /// Events for the front end.
    pub events: Vec<Event>,
}

impl Secure {
    /// Opens the account's device in `dir`, or creates it on first login, and its message
    /// archive. The events say what the archive's opening found (a damaged file set aside).
    pub fn open(dir: &Path, account: &str, passphrase: &str) -> Result<(Secure, Vec<Event>), String> {
        let path = device_path(dir, account);
        let device = if path.exists() {
            Device::open(&path, passphrase).map_err(|e| e.to_string())?
        } else {
            let id: String = rand::random::<[u8; 6]>().iter().map(|b| format!("{b:02x}")).collect();
            Device::create(&path, passphrase, KdfParams::default(), account, &id).map_err(|e| e.to_string())?
        };
        let (archive, warning) = device.open_archive(&archive_path(dir, account));
        let events = warning.iter().map(|w| error(warning_text(w))).collect();
        Ok((Secure { device, archive, shown_from: HashMap::new(), waiting: Vec::new() }, events))
    }

    /// The account whose device this is.
    pub fn account(&self) -> &str {
        self.device.account()
    }

    /// The device file.
    pub fn path(&self) -> &Path {
        self.device.path()
    }

    /// How many messages the archive holds.
    pub fn archived(&self) -> usize {
        self.archive.len()
    }

    /// The archived messages of the conversation with `nick` older than those shown so far
    /// (the newest `limit` of them, oldest first) as history, and a line saying how many.
    pub fn history(&mut self, nick: &str, limit: usize) -> Vec<Event> {
        let peer = casefold(nick);
        let messages = self.archive.conversation(&peer, self.shown_from.get(&peer).copied(), limit);
        if let Some((oldest, _)) = messages.first() {
            self.shown_from.insert(peer, *oldest);
        }
        let mut out: Vec<Event> = messages
            .iter()
            .map(|(_, m)| {
                Event::Message(ChatMessage {
                    time: m.time.clone(),
                    conversation: nick.to_owned(),
                    from: m.from.clone(),
                    text: format!("[e2e] {}", m.text),
                    kind: MessageKind::Privmsg,
                    own: m.sent_by_me,
                    history: true,
                    msgid: None,
                    mention: false,
                })
            })
            .collect();
        let count = crate::numeric::count(messages.len(), "encrypted message", "encrypted messages");
        out.push(info(format!("[{nick}] ({count} from this device's archive)")));
        out
    }

    /// Keeps a message in the archive; a failure to write it is shown, not fatal.
    fn keep(&mut self, message: Archived, out: &mut Vec<Event>) {
        let peer = casefold(&message.peer);
        let result = self.archive.record(message);
        // Shown now: scrolling back starts before the first message shown in this run.
        if let Some(seq) = self.archive.newest_seq() {
            self.shown_from.entry(peer).or_insert(seq);
        }
        if let Err(e) = result {
            out.push(error(format!("WARNING: could not save the message archive: {e}")));
        }
    }

    /// The lines that publish this device's keys.
    pub fn connect(&mut self, own_nick: &str) -> Outcome {
        let events = self.device.connect();
        self.outcome(events, own_nick)
    }

    /// A server line; `true` if it was an encrypted message (the session must not see it).
    pub fn handle(&mut self, msg: &Message, own_nick: &str, out: &mut Outcome) -> bool {
        let encrypted = msg.tag(chinwag_e2e::wire::TAG).is_some();
        let events = self.device.handle(msg);
        let mut more = self.outcome(events, own_nick);
        // A message first decrypted from a history batch (a gap fill) is history, as in clear.
        if msg.tag("batch").is_some() {
            for event in &mut more.events {
                if let Event::Message(m) = event {
                    m.history = true;
                }
            }
        }
        out.commands.extend(more.commands);
        out.events.extend(more.events);
        self.flush_waiting(own_nick, out);
        encrypted
    }

    /// A private message from the user: encrypted if the contact has devices, in clear if not.
    pub fn send(&mut self, nick: &str, text: String, own_nick: &str) -> Outcome {
        let mut out = Outcome::default();
        match self.device.has_devices(nick) {
            Some(true) => self.encrypt(nick, &text, own_nick, &mut out),
            Some(false) => out.commands.push(Command::ClearMsg { target: nick.to_owned(), text }),
            None => {
                self.waiting.push((nick.to_owned(), text));
                let events = self.device.refresh_devices(nick);
                let more = self.outcome(events, own_nick);
                out.commands.extend(more.commands);
                out.events.extend(more.events);
            }
        }
        out
    }

    /// `/verify NICK [confirm]`.
    pub fn verify(&mut self, nick: &str, confirm: bool, own_nick: &str) -> Outcome {
        let mut out = Outcome::default();
        match self.device.safety_number(nick) {
            Some(number) if confirm => match self.device.verify(nick) {
                Ok(()) => out.events.push(info(format!("{nick} is verified (safety number {number})"))),
                Err(e) => out.events.push(error(format!("could not save: {e}"))),
            },
            Some(number) => out.events.push(info(format!(
                "safety number with {nick}: {number} (compare it with {nick}'s, then /verify {nick} confirm)"
            ))),
            None => {
                let events = self.device.refresh_devices(nick);
                out = self.outcome(events, own_nick);
                out.events.push(info(format!("no device of {nick} is known yet; fetching, try again")));
            }
        }
        out
    }

    /// `/trust NICK`: accepts every device of the contact that is held.
    pub fn trust(&mut self, nick: &str) -> Outcome {
        let held: Vec<String> = self
            .device
            .trust()
            .devices(&casefold(nick))
            .filter(|(_, d)| !d.trust.accepted())
            .map(|(id, _)| id.clone())
            .collect();
        let mut out = Outcome::default();
        if held.is_empty() {
            out.events.push(info(format!("no new or changed device of {nick} is waiting")));
        }
        for id in held {
            if self.device.accept_device(nick, &id) {
                out.events.push(info(format!("accepted {nick}'s device {id}")));
            }
        }
        out
    }

    fn encrypt(&mut self, nick: &str, text: &str, own_nick: &str, out: &mut Outcome) {
        match self.device.send(nick, nick, text) {
            Ok(events) => {
                let more = self.outcome(events, own_nick);
                out.commands.extend(more.commands);
                out.events.extend(more.events);
                let time = crate::time::now_rfc3339();
                let kept = Archived {
                    peer: casefold(nick),
                    from: own_nick.to_owned(),
                    sent_by_me: true,
                    text: text.to_owned(),
                    time: time.clone(),
                    msgid: None,
                };
                self.keep(kept, &mut out.events);
                out.events.push(Event::Message(ChatMessage {
                    time,
                    conversation: nick.to_owned(),
                    from: own_nick.to_owned(),
                    text: format!("[e2e] {text}"),
                    kind: MessageKind::Privmsg,
                    own: true,
                    history: false,
                    msgid: None,
                    mention: false,
                }));
            }
            Err(e) => out.events.push(error(format!("not sent to {nick}: {e}"))),
        }
    }

    /// Messages whose recipient's device list has arrived go out.
    fn flush_waiting(&mut self, own_nick: &str, out: &mut Outcome) {
        if self.device.fetching_devices() {
            return;
        }
        for (nick, text) in std::mem::take(&mut self.waiting) {
            match self.device.has_devices(&nick) {
                Some(true) => self.encrypt(&nick, &text, own_nick, out),
                _ => out.commands.push(Command::ClearMsg { target: nick, text }),
            }
        }
    }

    fn outcome(&mut self, events: Vec<E2eEvent>, own_nick: &str) -> Outcome {
        let mut out = Outcome::default();
        for event in events {
            match event {
                E2eEvent::Line(line) => out.commands.push(Command::Raw(line)),
                E2eEvent::Warning(w) => out.events.push(error(warning_text(&w))),
                E2eEvent::Message(m) => {
                    // A device not in the trust store yet: fetch its account's list, so that it
                    // is trusted on first use (or held, loudly, if the list says otherwise).
                    if m.trust.is_none() {
                        let lines = self.device.refresh_devices(&m.from_account);
                        out.commands.extend(lines.into_iter().filter_map(|e| match e {
                            E2eEvent::Line(line) => Some(Command::Raw(line)),
                            _ => None,
                        }));
                    }
                    let held = matches!(m.trust, Some(Trust::New | Trust::Changed));
                    let marker = if held { "[e2e, unaccepted device]" } else { "[e2e]" };
                    let conversation = if m.sent_by_me { m.peer.clone() } else { m.from_nick.clone() };
                    let time = m.time.clone().unwrap_or_else(crate::time::now_rfc3339);
                    let from = if m.sent_by_me { own_nick.to_owned() } else { m.from_nick.clone() };
                    let kept = Archived {
                        peer: if m.sent_by_me { m.peer.clone() } else { m.from_account.clone() },
                        from: from.clone(),
                        sent_by_me: m.sent_by_me,
                        text: m.text.clone(),
                        time: time.clone(),
                        msgid: m.msgid.clone(),
                    };
                    self.keep(kept, &mut out.events);
                    out.events.push(Event::Message(ChatMessage {
                        time,
                        conversation,
                        from,
                        text: format!("{marker} {}", m.text),
                        kind: MessageKind::Privmsg,
                        own: m.sent_by_me,
                        history: false,
                        msgid: m.msgid.clone(),
                        mention: !m.sent_by_me,
                    }));
                }
            }
        }
        out
    }
}

/// A warning as the user reads it. Where the way out is one of this client's commands, it is
/// named (`/trust`, after comparing safety numbers with `/verify`): the `chinwag-e2e` crate
/// phrases what happened, but does not know the front end's commands.
pub fn warning_text(warning: &Warning) -> String {
    let accept = |account: &str| {
        format!(
            "Nothing will be sent to it until you accept it: compare safety numbers with /verify {account}, then /trust {account}."
        )
    };
    match warning {
        Warning::NewDevice { account, device } => {
            format!("WARNING: {account} has a NEW device {device}. {}", accept(account))
        }
        Warning::KeyChanged { account, device } => format!(
            "WARNING: the keys of {account}'s device {device} CHANGED. This happens when the app is reinstalled, or when someone is intercepting. {}",
            accept(account)
        ),
        Warning::Held { account, devices } => format!(
            "Not sent to {account}'s unaccepted device(s) {}: accept them first with /trust {account}.",
            devices.join(", ")
        ),
        other => other.to_string(),
    }
}

fn info(text: String) -> Event {
    Event::Info { text }
}

fn error(text: String) -> Event {
    Event::Error { text }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_names_become_file_names_that_stay_in_their_directory() {
        assert_eq!(file_stem("alice_2-b"), "alice_2-b");
        assert_eq!(file_stem("../../etc/passwd"), "%2E%2E%2F%2E%2E%2Fetc%2Fpasswd");
        assert_eq!(file_stem("a|b"), "a%7Cb");
        assert_ne!(file_stem("a|b"), file_stem("ab"), "names that differ keep apart");
        assert_eq!(file_stem("é"), "%C3%A9");
        assert_eq!(file_stem(""), "%");
        assert_eq!(file_stem("a\\b\0"), "a%5Cb%00");
        let dir = Path::new("/home/u/.local/share/chinwag/e2e");
        for hostile in ["..", "../x", "/abs", "a/../../b", ".", "~", "x\0y"] {
            let path = device_path(dir, hostile);
            assert_eq!(path.parent(), Some(dir), "{hostile:?} -> {}", path.display());
            assert!(!path.file_name().is_some_and(|n| n.to_string_lossy().starts_with('.')), "{}", path.display());
        }
    }

    #[test]
    fn device_warnings_name_the_command_that_accepts_the_device() {
        let new = Warning::NewDevice { account: "bob".into(), device: "phone".into() };
        let changed = Warning::KeyChanged { account: "bob".into(), device: "phone".into() };
        let held = Warning::Held { account: "bob".into(), devices: vec!["phone".into()] };
        for w in [new, changed, held] {
            let text = warning_text(&w);
            assert!(text.contains("/trust bob"), "{text}");
        }
        assert!(warning_text(&Warning::NewDevice { account: "bob".into(), device: "phone".into() })
            .starts_with("WARNING: bob has a NEW device phone."));
    }
}
