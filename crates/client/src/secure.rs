//! End-to-end encrypted private messages in the client: the `chinwag-e2e` device of the
//! logged-in account, driven by the driver. Lines from the server go through the device first
//! (encrypted messages never reach the session, which would show ciphertext); private messages
//! to a contact with devices are encrypted, and sending one in clear takes `/msg --clear`.
//!
//! A contact's account is taken to be their nick (chinwag protects registered nicks for their
//! account); a message waits while the contact's device list is fetched.

use std::path::PathBuf;

use chinwag_e2e::{Device, Event as E2eEvent, KdfParams, Trust, Warning};
use chinwag_proto::Message;

use crate::command::Command;
use crate::event::{ChatMessage, Event, MessageKind};

/// The account's device, and what waits for device lists.
pub struct Secure {
    device: Device,
    /// Private messages waiting to learn whether their recipient has devices.
    waiting: Vec<(String, String)>,
}

impl std::fmt::Debug for Secure {
    // The device holds private keys: only its identity is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secure")
            .field("device", &self.device.device_id())
            .field("waiting", &self.waiting.len())
            .finish()
    }
}

/// Where an account's device file lives: `<data dir>/chinwag/e2e/<account>.device`.
pub fn device_path(account: &str) -> Option<PathBuf> {
    let safe: String = account.chars().filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-')).collect();
    dirs::data_dir().map(|d| d.join("chinwag").join("e2e").join(format!("{safe}.device")))
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
    /// Opens the account's device, or creates it on first login.
    pub fn open(account: &str, passphrase: &str) -> Result<Secure, String> {
        let path = device_path(account).ok_or("cannot tell where the user's data directory is")?;
        let device = if path.exists() {
            Device::open(&path, passphrase).map_err(|e| e.to_string())?
        } else {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            }
            let id: String = rand::random::<[u8; 6]>().iter().map(|b| format!("{b:02x}")).collect();
            Device::create(&path, passphrase, KdfParams::default(), account, &id).map_err(|e| e.to_string())?
        };
        Ok(Secure { device, waiting: Vec::new() })
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
        let more = self.outcome(events, own_nick);
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
            .devices(&nick.to_ascii_lowercase())
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
                out.events.push(Event::Message(ChatMessage {
                    time: crate::time::now_rfc3339(),
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
                    out.events.push(Event::Message(ChatMessage {
                        time: m.time.clone().unwrap_or_else(crate::time::now_rfc3339),
                        conversation,
                        from: if m.sent_by_me { own_nick.to_owned() } else { m.from_nick.clone() },
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
