//! chinwag's IRC client library: everything `chinwag chat` does except drawing. It speaks
//! IRCv3 to any IRC server, not only chinwag.
//!
//! What it is *not*: a UI (the full-screen client is `chinwag-tui`; scriptable mode's line I/O
//! is here because it is only formatting), and it knows nothing of the server's crates: it
//! builds on `chinwag-proto` for lines, `chinwag-e2e` for encryption, and on `chinwag-discovery`'s client half for `/discover`.
//!
//! Layout:
//! - `endpoint`: `HOST[:PORT]` and the transport it asks for.
//! - `lan`: `/discover` and `/connect N`, and the rule that a pin beats an advertisement.
//! - `transport`: [`Transport`], TCP, TLS or QUIC behind one enum, and [`transport::connect`].
//! - `tls`: the certificate check (CA-signed or pinned) and fingerprints.
//! - `known_servers`: the trust-on-first-use file, [`KnownServers`].
//! - `session`, `incoming` and `outgoing`: [`Session`], the sans-IO state machine: server
//!   lines and commands in, lines and [`Event`]s out. Rejoin, gap fill and unsent messages live here.
//! - `driver`: the task around a session: connect, read, write, timers, reconnect with
//!   [`backoff`]. [`start`] returns a command sender and an event receiver.
//! - `command`: the command language both front ends share, with its help table.
//! - `event`: [`Event`] and its plain-text form.
//! - `format`: IRC formatting codes (bold, colours, reset) as styled runs, or stripped; parsed
//!   before `neutralise`, which then shows whatever control is left.
//! - `neutral`: [`neutralise`], the one place where text from the network is made safe for a
//!   terminal (control characters and bidi overrides shown, not obeyed); both front ends use it.
//! - `numeric`: numeric replies as sentences (WHOIS idle time as a duration, signon as a
//!   date), and the small words (`1 member`, `5 minutes`) both front ends use.
//! - `sasl` and `scram`: SASL login, SCRAM-SHA-256 (preferred; the server must prove it knows
//!   the credentials) or PLAIN.
//! - `typing`: when to send `+typing`.
//! - `secure`: end-to-end encrypted private messages (`chinwag-e2e`'s device per account).
//! - `script`: scriptable mode (stdin commands, stdout events, `--json`).
//! - `chatlog`: the optional local chat logs (one plaintext file per server and conversation,
//!   names escaped so that none leaves its directory); `logfile`: their private files.
//! - `clientlog`: the client log (connections, logins, certificates, errors), bounded.
//! - `config`: `client.toml` and the client's paths.
//! - `time`: RFC 3339 timestamps.

pub mod backoff;
pub mod chatlog;
pub mod clientlog;
pub mod command;
pub mod config;
pub mod driver;
pub mod endpoint;
pub mod event;
pub mod format;
mod incoming;
pub mod known_servers;
pub mod lan;
mod logfile;
pub mod neutral;
pub mod numeric;
mod outgoing;
mod sasl;
pub mod scram;
pub mod script;
pub mod secure;
pub mod session;
pub mod time;
pub mod tls;
pub mod transport;
pub mod typing;

pub use command::{Command, TypingState};
pub use driver::{check_certificate, start, CertCheck, ClientConfig, Server};
pub use endpoint::{Endpoint, Security};
pub use event::{ChatMessage, Event, MessageKind};
pub use incoming::mentions;
pub use known_servers::{KnownServers, Verdict};
pub use neutral::neutralise;
pub use outgoing::split_to_fit;
pub use session::{Credentials, Keepalive, Phase, Session, SessionConfig};
pub use transport::{TlsInfo, Transport};
