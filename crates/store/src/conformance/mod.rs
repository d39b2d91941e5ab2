//! The test suite every [`Store`] backend must pass.
//!
//! A backend's crate calls [`run_all`] from an integration test with a function that makes a
//! fresh, empty store; each check gets its own. The checks panic on the first wrong answer, with
//! the check's name and the query in the message, like any test. They are public one by one too
//! (see [`CHECKS`]), for running a single one while working on a backend.
//!
//! ```no_run
//! # use chinwag_store::{conformance, SqliteOptions, SqliteStore};
//! let dir = tempfile::tempdir().expect("temp dir");
//! let mut n = 0;
//! conformance::run_all(|| {
//!     n += 1;
//!     SqliteStore::open(&dir.path().join(format!("{n}.db")), SqliteOptions::default()).expect("open")
//! });
//! ```
//!
//! Everything here asserts behaviour through the trait only: exact msgids, limits and order for
//! every [`crate::HistoryQuery`] shape, all-or-nothing batches, case-insensitive names, and what
//! dropping an account takes with it. What a backend does on disk is its own tests' business
//! (`tests/` of this crate for SQLite: reopening, refusals, crash safety).

mod directory;
mod history;
mod keys;
mod markers;
mod offline;
mod redaction;
mod targets;

use crate::{Store, StoredMessage};

/// A check: a name for failure messages and a function that panics if the store misbehaves.
pub type Check = (&'static str, fn(&mut dyn Store));

/// Every check, in the order [`run_all`] runs them.
pub const CHECKS: &[Check] = &[
    ("accounts", directory::accounts),
    ("scram_credentials", directory::scram_credentials),
    ("certificates", directory::certificates),
    ("channels", directory::channels),
    ("append_is_all_or_nothing", history::append_is_all_or_nothing),
    ("append_large_batches", history::large_batches),
    ("history_round_trip", history::round_trip),
    ("history_queries", history::queries),
    ("history_ties_and_paging", history::ties_and_paging),
    ("history_unknown_bounds", history::unknown_bounds),
    ("history_events", history::events),
    ("history_targets", targets::targets),
    ("prune_history", history::prune),
    ("offline_queue", offline::queue),
    ("drop_account_forgets_private_history", offline::drop_account_forgets_private_history),
    ("redaction", redaction::redaction),
    ("read_markers", markers::read_markers),
    ("e2e_devices", keys::devices),
    ("e2e_one_time_keys", keys::one_time_keys),
    ("e2e_drop_account_deletes_keys", keys::drop_account_deletes_keys),
    ("e2e_device_queues", keys::device_queues),
];

pub use keys::concurrent_claims;

/// Runs every check, each on a fresh store from `make`.
pub fn run_all<S: Store>(mut make: impl FnMut() -> S) {
    for (name, check) in CHECKS {
        let mut store = make();
        eprintln!("conformance: {name}");
        check(&mut store);
    }
}

/// A room message with realistic fields, sent by `alice` at `time_ms`.
fn message(conversation: &str, msgid: &str, time_ms: u64) -> StoredMessage {
    StoredMessage {
        msgid: msgid.to_owned(),
        time_ms,
        command: "PRIVMSG".to_owned(),
        sender: "alice!alice@example.net".to_owned(),
        sender_account: Some("alice".to_owned()),
        target: conversation.to_owned(),
        text: format!("message {msgid} at {time_ms}"),
        tags: String::new(),
        conversation: conversation.to_owned(),
        participants: Vec::new(),
        offline_for: None,
    }
}

/// The msgids of some messages, for comparing with an expected list.
fn ids(messages: &[StoredMessage]) -> Vec<&str> {
    messages.iter().map(|m| m.msgid.as_str()).collect()
}
