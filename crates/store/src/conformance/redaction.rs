//! Message redaction: a redacted message leaves history, TARGETS and offline queues.

use super::offline::{queued, register};
use super::{ids, message};
use crate::{Bound, HistoryQuery, Store};

pub(super) fn redaction(store: &mut dyn Store) {
    register(store, "bob");
    let alice_bob = "alice\0bob";
    store
        .append(&[
            message("#room", "r1", 1000),
            message("#room", "r2", 2000),
            message("#room", "r3", 3000),
            queued(alice_bob, "p1", 1500, "bob", "Bob"),
            queued(alice_bob, "p2", 2500, "bob", "bob"),
        ])
        .expect("append");

    let found = store.message("r2").expect("message").expect("r2 is stored");
    assert_eq!(found, message("#room", "r2", 2000), "a message by msgid, as history returns it");
    let private = store.message("p1").expect("message").expect("p1 is stored");
    assert_eq!(private.conversation, alice_bob, "any conversation's");
    assert_eq!(private.participants, ["alice", "bob"]);
    assert_eq!(private.offline_for, None);
    assert_eq!(store.message("nope").expect("message"), None);

    assert_eq!(store.redact("r2").expect("redact"), Some(Vec::new()), "redacted; it was in no queue");
    assert_eq!(store.redact("r2").expect("redact"), None, "a second time: nothing to redact");
    assert_eq!(store.redact("nope").expect("redact"), None, "an unknown msgid");
    assert_eq!(store.message("r2").expect("message"), None, "a redacted message is not found");

    let latest = HistoryQuery::Latest { after: None };
    assert_eq!(ids(&store.history("#room", &latest, 10).expect("history")), ["r1", "r3"], "gone from history");
    assert_eq!(ids(&store.history("#room", &latest, 2).expect("history")), ["r1", "r3"], "and from the limit's count");
    let after = HistoryQuery::After(Bound::MsgId("r2".into()));
    assert_eq!(ids(&store.history("#room", &after, 10).expect("history")), ["r3"], "still a bound to page from");
    let around = HistoryQuery::Around(Bound::MsgId("r2".into()));
    assert_eq!(ids(&store.history("#room", &around, 10).expect("history")), ["r1", "r3"], "not itself around it");
    let between = HistoryQuery::Between(Bound::Time(1500), Bound::Time(2500));
    assert!(store.history("#room", &between, 10).expect("history").is_empty(), "nothing left between");

    // TARGETS counts only what is left.
    let rooms = ["#room".to_owned()];
    let targets = store.history_targets(None, &rooms, 1500, 2500, 10).expect("targets");
    assert!(targets.is_empty(), "a range holding only a redacted message lists nothing: {targets:?}");
    let targets = store.history_targets(None, &rooms, 0, 10_000, 10).expect("targets");
    assert_eq!(targets.iter().map(|t| t.latest_ms).collect::<Vec<_>>(), [3000]);

    // A queued copy leaves its queue, and the answer names the queue.
    assert_eq!(ids(&store.offline("bob", 10).expect("offline")), ["p1", "p2"]);
    assert_eq!(store.redact("p1").expect("redact"), Some(vec!["bob".to_owned()]));
    assert_eq!(ids(&store.offline("bob", 10).expect("offline")), ["p2"], "gone from the queue");
    assert_eq!(store.offline_counts().expect("counts"), [("bob".to_owned(), 1)]);
    assert_eq!(ids(&store.history(alice_bob, &latest, 10).expect("history")), ["p2"], "and from history");

    // Retention prunes redacted messages like the rest.
    assert_eq!(store.prune_history(2100).expect("prune"), 3, "r1, r2 (redacted) and p1 (redacted)");
    assert_eq!(ids(&store.history("#room", &latest, 10).expect("history")), ["r3"]);
}
