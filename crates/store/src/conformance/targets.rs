//! `CHATHISTORY TARGETS`.

use super::message;
use crate::{HistoryTarget, Store, StoredMessage};

/// A private message between two parties.
fn private(
    conversation: &str,
    msgid: &str,
    time_ms: u64,
    (sender, account): (&str, Option<&str>),
    target: &str,
    participants: &[&str],
) -> StoredMessage {
    StoredMessage {
        sender: sender.to_owned(),
        sender_account: account.map(str::to_owned),
        target: target.to_owned(),
        participants: participants.iter().map(|p| (*p).to_owned()).collect(),
        ..message(conversation, msgid, time_ms)
    }
}

/// viewer, rooms, from, to, limit, and the expected (name, latest time) in order.
type Case<'a> = (Option<&'a str>, &'a [String], u64, u64, usize, Vec<(&'a str, u64)>);

fn names(targets: &[HistoryTarget]) -> Vec<(&str, u64)> {
    targets.iter().map(|t| (t.name.as_str(), t.latest_ms)).collect()
}

pub(super) fn targets(store: &mut dyn Store) {
    let alice_bob = "alice\u{0}bob";
    let bob_carol = "bob\u{0}carol";
    store
        .append(&[
            message("#a", "a1", 1000),
            private(alice_bob, "p1", 1500, ("Alice!a@h", Some("Alice")), "Bob", &["alice", "bob"]),
            message("#b", "b1", 2000),
            // Carol is not logged in: only bob can discover this conversation.
            private(bob_carol, "q1", 2200, ("carol!c@h", None), "bob", &["bob"]),
            private(alice_bob, "p2", 2500, ("Bob!b@h", Some("bob")), "Alice", &["bob", "alice"]),
            message("#a", "a2", 3000),
            message("#c", "c1", 9000),
        ])
        .expect("append");
    let rooms: Vec<String> = ["#a", "#b", "#c", "#missing"].map(str::to_owned).into();
    let cases: Vec<Case> = vec![
        // The other party's nick: the sender if someone else sent the latest, else the recipient.
        (Some("alice"), &rooms, 0, 5000, 10, vec![("#b", 2000), ("Bob", 2500), ("#a", 3000)]),
        (Some("bob"), &[], 0, 5000, 10, vec![("carol", 2200), ("Alice", 2500)]),
        (None, &rooms[..1], 0, 5000, 10, vec![("#a", 3000)]),
        (Some("carol"), &[], 0, 5000, 10, vec![]),
        (Some("dave"), &rooms, 0, 100_000, 10, vec![("#b", 2000), ("#a", 3000), ("#c", 9000)]),
        // Both ends are exclusive.
        (Some("alice"), &rooms, 1000, 3000, 10, vec![("#b", 2000), ("Bob", 2500)]),
        // The latest message within the range, and the name as of that message.
        (Some("alice"), &rooms, 0, 2000, 10, vec![("#a", 1000), ("Bob", 1500)]),
        // Forwards the limit keeps the earliest; backwards the latest. Oldest first either way.
        (Some("alice"), &rooms, 0, 5000, 2, vec![("#b", 2000), ("Bob", 2500)]),
        (Some("alice"), &rooms, 5000, 0, 2, vec![("Bob", 2500), ("#a", 3000)]),
        (Some("alice"), &rooms, 5000, 0, 0, vec![]),
    ];
    for (viewer, rooms, from, to, limit, expected) in cases {
        let got = store
            .history_targets(viewer, rooms, from, to, limit)
            .unwrap_or_else(|e| panic!("targets for {viewer:?} {from}..{to}: {e}"));
        assert_eq!(names(&got), expected, "targets for {viewer:?} in {rooms:?}, {from}..{to}, limit {limit}");
    }
    let got = store.history_targets(Some("alice"), &rooms, 0, 5000, 10).expect("targets");
    let keys: Vec<&str> = got.iter().map(|t| t.conversation.as_str()).collect();
    assert_eq!(keys, ["#b", alice_bob, "#a"], "each target carries its conversation key");
}
