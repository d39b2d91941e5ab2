//! Offline queues, and what dropping an account takes with it.

use super::{ids, message};
use crate::{HistoryQuery, NewAccount, Store, StoredMessage};

pub(super) fn register(store: &mut dyn Store, name: &str) {
    let account = NewAccount {
        name: name.to_owned(),
        password_hash: format!("$argon2id${name}"),
        scram: None,
        email: None,
        created_ms: 1,
    };
    store.create_account(&account).unwrap_or_else(|e| panic!("create {name}: {e}"));
}

/// A private message to `to`, queued for `offline_for`.
pub(super) fn queued(conversation: &str, msgid: &str, time_ms: u64, to: &str, offline_for: &str) -> StoredMessage {
    StoredMessage {
        target: to.to_owned(),
        participants: conversation.split('\0').map(str::to_owned).collect(),
        offline_for: Some(offline_for.to_owned()),
        ..message(conversation, msgid, time_ms)
    }
}

pub(super) fn queue(store: &mut dyn Store) {
    register(store, "Alice");
    register(store, "bob");
    let to_alice = "alice\0carol";
    store
        .append(&[
            queued(to_alice, "q1", 1000, "Alice", "ALICE"),
            queued(to_alice, "q3", 3000, "Alice", "alice"),
            // Queued for an account that does not exist: stored in history, queued nowhere.
            queued("carol\0nobody", "x1", 1500, "nobody", "nobody"),
            queued("bob\0carol", "b1", 1200, "bob", "bob"),
        ])
        .expect("append");
    store.append(&[queued(to_alice, "q2", 2000, "Alice", "Alice")]).expect("append");

    let counts = store.offline_counts().expect("counts");
    assert_eq!(counts, [("alice".to_owned(), 3), ("bob".to_owned(), 1)], "per queue, folded, empty ones absent");
    let got = store.offline("alice", 10).expect("offline");
    assert_eq!(ids(&got), ["q1", "q2", "q3"], "oldest first, whatever case it was queued under");
    let first = &got[0];
    assert_eq!(first.conversation, to_alice);
    assert_eq!(first.offline_for.as_deref(), Some("alice"), "offline_for is the queue's (folded) account");
    assert_eq!(first.participants, ["alice", "carol"]);
    assert_eq!(first.text, message(to_alice, "q1", 1000).text);
    assert_eq!(ids(&store.offline("ALICE", 2).expect("offline")), ["q1", "q2"], "limit, oldest first");
    assert!(store.offline("nobody", 10).expect("offline").is_empty(), "no account, no queue");
    let latest = HistoryQuery::Latest { after: None };
    assert_eq!(ids(&store.history("carol\0nobody", &latest, 10).expect("history")), ["x1"], "still in history");

    assert_eq!(store.clear_offline("alice", "q2").expect("clear"), 2, "up to and including q2");
    assert_eq!(ids(&store.offline("alice", 10).expect("offline")), ["q3"]);
    assert_eq!(store.offline_counts().expect("counts"), [("alice".to_owned(), 1), ("bob".to_owned(), 1)]);
    assert_eq!(store.clear_offline("alice", "q9").expect("clear"), 0, "an unknown msgid clears nothing");
    assert_eq!(store.clear_offline("alice", "b1").expect("clear"), 0, "another account's msgid clears nothing");
    assert_eq!(ids(&store.offline("alice", 10).expect("offline")), ["q3"]);
    assert_eq!(ids(&store.offline("bob", 10).expect("offline")), ["b1"], "queues are per account");
    assert_eq!(ids(&store.history(to_alice, &latest, 10).expect("history")), ["q1", "q2", "q3"], "history keeps them");

    // A message stored without a queue, queued afterwards (a cluster's late private message).
    let late = StoredMessage { offline_for: None, ..queued("bob\0carol", "late", 4000, "bob", "bob") };
    store.append(&[late]).expect("append");
    assert!(store.queue_offline("BOB", "late").expect("queue"));
    assert!(!store.queue_offline("bob", "late").expect("queue"), "queued once");
    assert!(!store.queue_offline("nobody", "late").expect("queue"), "no account, no queue");
    assert!(!store.queue_offline("bob", "never").expect("queue"), "no message, nothing queued");
    let got = store.offline("bob", 10).expect("offline");
    assert_eq!(ids(&got), ["b1", "late"]);
    assert_eq!(got[1].text, message("bob\0carol", "late", 4000).text);
    assert_eq!(store.clear_offline("bob", "late").expect("clear"), 2);
    store.append(&[queued("bob\0carol", "b2", 1200, "bob", "bob")]).expect("append");

    // Retention does not touch queues.
    assert_eq!(store.prune_history(u64::MAX).expect("prune"), 7);
    assert_eq!(ids(&store.offline("alice", 10).expect("offline")), ["q3"], "pruning leaves the queue alone");

    assert!(store.drop_account("Alice").expect("drop"));
    assert!(store.offline("alice", 10).expect("offline").is_empty(), "dropping an account drops its queue");
    register(store, "alice");
    assert!(store.offline("alice", 10).expect("offline").is_empty(), "a new account with the name starts empty");
    assert_eq!(ids(&store.offline("bob", 10).expect("offline")), ["b2"], "other queues stay");
}

pub(super) fn drop_account_forgets_private_history(store: &mut dyn Store) {
    register(store, "alice");
    register(store, "bob");
    let alice_bob = "alice\0bob";
    let bob_carol = "bob\0carol";
    store
        .append(&[
            message("#room", "r1", 1000),
            queued(alice_bob, "p1", 2000, "bob", "bob"),
            queued(bob_carol, "p2", 3000, "bob", "bob"),
        ])
        .expect("append");
    assert_eq!(ids(&store.offline("bob", 10).expect("offline")), ["p1", "p2"]);

    assert!(store.drop_account("ALICE").expect("drop"));
    let latest = HistoryQuery::Latest { after: None };
    assert!(store.history(alice_bob, &latest, 10).expect("history").is_empty(), "alice's private history is gone");
    assert_eq!(ids(&store.history(bob_carol, &latest, 10).expect("history")), ["p2"], "others' stays");
    assert_eq!(ids(&store.history("#room", &latest, 10).expect("history")), ["r1"], "room history stays");
    assert_eq!(ids(&store.offline("bob", 10).expect("offline")), ["p2"], "queued copies of it are gone too");
    let targets = store.history_targets(Some("bob"), &[], 0, 10_000, 10).expect("targets");
    let keys: Vec<&str> = targets.iter().map(|t| t.conversation.as_str()).collect();
    assert_eq!(keys, [bob_carol], "bob no longer lists the forgotten conversation");

    // Someone registering "alice" later starts with nothing, and new messages work.
    register(store, "Alice");
    assert!(store.history_targets(Some("alice"), &[], 0, 10_000, 10).expect("targets").is_empty());
    store.append(&[queued(alice_bob, "p3", 4000, "bob", "bob")]).expect("append to a re-created conversation");
    assert_eq!(ids(&store.history(alice_bob, &latest, 10).expect("history")), ["p3"]);
    let targets = store.history_targets(Some("alice"), &[], 0, 10_000, 10).expect("targets");
    assert_eq!(targets.len(), 1);
}
