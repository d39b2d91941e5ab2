//! End-to-end encrypted private messages for chinwag clients, with Olm (vodozemac).
//!
//! What it is: a device (an Olm account with its sessions, kept in an encrypted file), the
//! client half of the `E2E` key directory protocol (publishing identity, one-time and fallback
//! keys; fetching device lists; claiming keys), encryption of a message for every device of the
//! recipient and the sender's own other devices as tagged `PRIVMSG` lines, and the receiving side
//! (reassembly, decryption, tamper and replay rejection), plus the trust store (trust on first
//! use, held new or changed devices, safety numbers). docs/e2e.md has the protocol and the
//! threat model.
//!
//! What it is not: it does no I/O on the network and knows nothing of sockets, terminals or
//! async. [`Device`] takes the server's lines in ([`Device::handle`]) and the user's intentions
//! ([`Device::send`], [`Device::accept_device`], [`Device::verify`]) and answers with
//! [`Event`]s: lines to send, decrypted messages, warnings. A client (`chinwag chat`, the tests'
//! scripted clients) carries the lines. It depends on `chinwag-proto` and vodozemac, never on
//! the server's crates.
//!
//! Layout: `device.rs` (the device, its keys and the key directory protocol), `messages.rs`
//! (encrypting and decrypting), `wire.rs` (the tag format, splitting and reassembly),
//! `trust.rs` (trust store and safety numbers), `vault.rs` (the encrypted file), `archive.rs`
//! (the decrypted conversations, sealed with a key from the device file).

mod archive;
mod device;
mod messages;
mod trust;
mod vault;
pub mod wire;

use std::fmt;
use std::path::PathBuf;

pub use archive::{Archive, Archived, MAX_ARCHIVED, MAX_ARCHIVE_BYTES};
pub use device::{Device, TARGET_ONE_TIME_KEYS};
pub use trust::{safety_number, KnownDevice, Trust, TrustChange, TrustStore};
pub use vault::KdfParams;

/// The longest message text accepted for encryption, in bytes.
pub const MAX_TEXT_LEN: usize = 16 * 1024;

/// What a [`Device`] asks its client to do or show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// Send this line (without CRLF) to the server.
    Line(String),
    /// A message decrypted for this device.
    Message(Received),
    /// Something the user must be told about, loudly.
    Warning(Warning),
}

/// A decrypted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Received {
    /// The sending account (folded) and device.
    pub from_account: String,
    pub from_device: String,
    /// The nick it came from.
    pub from_nick: String,
    /// The other party of the conversation (folded account): the sender, or, for a copy of what
    /// one's own other device sent, its recipient.
    pub peer: String,
    /// Sent by this account from another of its devices.
    pub sent_by_me: bool,
    pub text: String,
    /// How far the sending device is trusted (`None`: not in the trust store yet).
    pub trust: Option<Trust>,
    /// The server's msgid and time tags of the (last) line, if any.
    pub msgid: Option<String>,
    pub time: Option<String>,
}

/// Something that went wrong or changed, phrased for the user by `Display`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Warning {
    /// A message that failed authentication or did not decode: altered or cut in transit.
    Rejected { from_nick: String, from_device: String, reason: String },
    /// A message that cannot be decrypted because its key was used already, and that this
    /// device does not remember decrypting (a re-delivery of one it decrypted is dropped
    /// silently: history, or an offline message sent again after a reconnect).
    Replayed { from_nick: String, from_device: String },
    /// A device appeared on a contact's account (or one's own): nothing is sent to it until
    /// accepted.
    NewDevice { account: String, device: String },
    /// A known device's keys changed: nothing is sent to it until accepted.
    KeyChanged { account: String, device: String },
    /// A key or device whose signature does not check out; ignored.
    BadSignature { account: String, device: String },
    /// A message was not encrypted to these devices because they are not accepted.
    Held { account: String, devices: Vec<String> },
    /// No key could be had for these devices (none on the server); they did not get the message.
    NoKeys { account: String, devices: Vec<String> },
    /// The recipient has no device that could receive the message: nothing was sent.
    NotSent { account: String, reason: String },
    /// The device's state could not be written; it may be lost if the program stops.
    NotSaved(String),
    /// The message archive at `path` did not open (`reason`): it was renamed (`Ok`, to that
    /// name) or could not be (`Err`, why), and a new archive was started.
    ArchiveSetAside { path: String, reason: String, outcome: Result<String, String> },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::Rejected { from_nick, from_device, reason } => write!(
                f,
                "WARNING: a message from {from_nick} (device {from_device}) was rejected: {reason}. It may have been tampered with or cut in transit."
            ),
            Warning::Replayed { from_nick, from_device } => write!(
                f,
                "WARNING: a message from {from_nick} (device {from_device}) was delivered again (a replay); it was ignored."
            ),
            Warning::NewDevice { account, device } => write!(
                f,
                "WARNING: {account} has a NEW device {device}. Nothing will be sent to it until you accept it (/verify {account} to compare safety numbers)."
            ),
            Warning::KeyChanged { account, device } => write!(
                f,
                "WARNING: the keys of {account}'s device {device} CHANGED. This happens when the app is reinstalled, or when someone is intercepting. Nothing will be sent to it until you accept it (/verify {account})."
            ),
            Warning::BadSignature { account, device } => write!(
                f,
                "WARNING: the server gave keys for {account}'s device {device} with an invalid signature; they were ignored."
            ),
            Warning::Held { account, devices } => write!(
                f,
                "Not sent to {account}'s unaccepted device(s) {}: accept them first.",
                devices.join(", ")
            ),
            Warning::NoKeys { account, devices } => write!(
                f,
                "Could not start an encrypted session with {account}'s device(s) {}: they have no keys on the server.",
                devices.join(", ")
            ),
            Warning::NotSent { account, reason } => write!(f, "Message to {account} NOT sent: {reason}"),
            Warning::NotSaved(why) => write!(f, "WARNING: could not save encryption state: {why}"),
            Warning::ArchiveSetAside { path, reason, outcome: Ok(damaged) } => write!(
                f,
                "WARNING: the message archive {path} could not be opened ({reason}). It was set aside as {damaged} and a new one was started: earlier encrypted messages will not show in /history."
            ),
            Warning::ArchiveSetAside { path, reason, outcome: Err(why) } => write!(
                f,
                "WARNING: the message archive {path} could not be opened ({reason}) nor set aside ({why}). A new one was started and will replace it."
            ),
        }
    }
}

/// Why a device could not be created, opened or used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: {1}")]
    Io(PathBuf, #[source] std::io::Error),
    #[error("{0} already exists; open it instead of creating a new device")]
    Exists(PathBuf),
    #[error("{0} could not be decrypted: wrong passphrase, or the file was modified")]
    WrongPassphrase(PathBuf),
    #[error("{0} is not a chinwag device file (or is damaged)")]
    Corrupt(PathBuf),
    #[error("device file: {0}")]
    Vault(String),
    #[error("invalid device id {0:?}: use 1 to 32 of A-Z a-z 0-9 _ -")]
    InvalidDeviceId(String),
    #[error("message too long: {0} bytes, at most {MAX_TEXT_LEN}")]
    TooLong(usize),
}
