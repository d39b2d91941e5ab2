//! Appending, every `CHATHISTORY` query shape, and retention.

use super::{ids, message};
use crate::{Bound, HistoryQuery, Store, StoreError, StoredMessage};

/// `#rust` holds `m01`..`m10` sent at 1000, 2000, ... 10000 ms, appended out of order and
/// interleaved with `#other`, whose messages must never show up in `#rust`'s answers.
fn ten_messages(store: &mut dyn Store) {
    let mut rust: Vec<StoredMessage> = (1..=10).map(|i| message("#rust", &format!("m{i:02}"), i * 1000)).collect();
    rust.reverse();
    let other: Vec<StoredMessage> = (1..=10).map(|i| message("#other", &format!("o{i:02}"), i * 1000 + 500)).collect();
    let (late, early) = rust.split_at(5);
    store.append(early).expect("append m01..m05");
    store.append(&other).expect("append #other");
    store.append(late).expect("append m06..m10");
}

fn msgid(id: &str) -> Bound {
    Bound::MsgId(id.to_owned())
}

pub(super) fn append_is_all_or_nothing(store: &mut dyn Store) {
    store.append(&[]).expect("an empty batch is fine");

    // A duplicate inside the batch: nothing of the batch is stored, not even the new room.
    let batch = [message("#new", "a", 1000), message("#rust", "b", 2000), message("#new", "a", 3000)];
    match store.append(&batch) {
        Err(StoreError::DuplicateMsgId(id)) => assert_eq!(id, "a"),
        other => panic!("a batch repeating msgid a must fail with DuplicateMsgId, got {other:?}"),
    }
    let latest = HistoryQuery::Latest { after: None };
    assert_eq!(ids(&store.history("#new", &latest, 10).expect("history")), Vec::<&str>::new(), "nothing of the batch");
    assert_eq!(ids(&store.history("#rust", &latest, 10).expect("history")), Vec::<&str>::new(), "nothing of the batch");

    // The same conversations work afterwards (a backend caching ids must not keep rolled-back ones).
    store.append(&[message("#new", "a", 1000), message("#rust", "b", 2000)]).expect("a clean batch");
    assert_eq!(ids(&store.history("#new", &latest, 10).expect("history")), ["a"]);
    assert_eq!(ids(&store.history("#rust", &latest, 10).expect("history")), ["b"]);

    // A duplicate of a stored message: the batch fails, what was stored stays as it was.
    let batch = [message("#rust", "c", 3000), message("#newer", "d", 3500), message("#new", "a", 4000)];
    match store.append(&batch) {
        Err(StoreError::DuplicateMsgId(id)) => assert_eq!(id, "a"),
        other => panic!("re-appending msgid a must fail with DuplicateMsgId, got {other:?}"),
    }
    assert_eq!(ids(&store.history("#rust", &latest, 10).expect("history")), ["b"]);
    assert_eq!(ids(&store.history("#newer", &latest, 10).expect("history")), Vec::<&str>::new());
    let stored = store.history("#new", &latest, 10).expect("history");
    assert_eq!((ids(&stored), stored[0].time_ms), (vec!["a"], 1000), "the stored copy was not replaced");
    store.append(&[message("#newer", "d", 3500)]).expect("append after a failed batch");
    assert_eq!(ids(&store.history("#newer", &latest, 10).expect("history")), ["d"]);
}

/// Batches as large as a busy room's commit (a backend may write them in chunks): every message
/// comes back whole and in order, and a duplicate anywhere in one, or of a stored message,
/// fails the whole batch and is named.
pub(super) fn large_batches(store: &mut dyn Store) {
    let batch = |from: u64, to: u64| -> Vec<StoredMessage> {
        (from..to)
            .map(|i| {
                let room = ["#a", "#b", "#c"][(i % 3) as usize];
                let mut m = message(room, &format!("m{i:03}"), 1000 + i);
                m.sender = format!("n{i}!u@h");
                m.sender_account = (i % 2 == 0).then(|| format!("acct{i}"));
                m.tags = if i % 5 == 0 { format!("+x=y{i}") } else { String::new() };
                m
            })
            .collect()
    };
    let first = batch(0, 100);
    store.append(&first).expect("a batch of 100");
    let latest = HistoryQuery::Latest { after: None };
    for room in ["#a", "#b", "#c"] {
        let got = store.history(room, &latest, 100).expect("history");
        let want: Vec<&StoredMessage> = first.iter().filter(|m| m.conversation == room).collect();
        assert_eq!(got.len(), want.len(), "{room}");
        for (g, w) in got.iter().zip(want) {
            assert_eq!(
                (&g.msgid, g.time_ms, &g.sender, &g.sender_account, &g.text, &g.tags, &g.target),
                (&w.msgid, w.time_ms, &w.sender, &w.sender_account, &w.text, &w.tags, &w.target)
            );
        }
    }

    // A repeat within the batch, deep inside it.
    let mut repeating = batch(100, 160);
    repeating[37].msgid = "m105".to_owned();
    match store.append(&repeating) {
        Err(StoreError::DuplicateMsgId(id)) => assert_eq!(id, "m105"),
        other => panic!("a batch repeating msgid m105 must fail with DuplicateMsgId, got {other:?}"),
    }
    // A message stored before, in the middle of a new batch.
    let mut again = batch(100, 160);
    again[21].msgid = "m042".to_owned();
    match store.append(&again) {
        Err(StoreError::DuplicateMsgId(id)) => assert_eq!(id, "m042"),
        other => panic!("re-appending msgid m042 must fail with DuplicateMsgId, got {other:?}"),
    }
    let total: usize = ["#a", "#b", "#c"].iter().map(|r| store.history(r, &latest, 1000).expect("history").len()).sum();
    assert_eq!(total, 100, "nothing of the failed batches is stored");
    store.append(&batch(100, 160)).expect("the clean batch");
    let total: usize = ["#a", "#b", "#c"].iter().map(|r| store.history(r, &latest, 1000).expect("history").len()).sum();
    assert_eq!(total, 160);
}

pub(super) fn round_trip(store: &mut dyn Store) {
    let sent = StoredMessage {
        msgid: "01HX0000000000000001".to_owned(),
        time_ms: 1_714_000_000_123,
        command: "NOTICE".to_owned(),
        sender: "Bob!~bob@2001:db8::1".to_owned(),
        sender_account: None,
        target: "Alice".to_owned(),
        text: "héllo, wörld \u{1F980} with a ; and : and \\ in it".to_owned(),
        tags: "+draft/reply=abc;+example.com/x=y\\sz".to_owned(),
        conversation: "alice\u{0}bob".to_owned(),
        participants: vec!["bob".to_owned(), "alice".to_owned()],
        offline_for: None,
    };
    let second = StoredMessage {
        msgid: "01HX0000000000000002".to_owned(),
        time_ms: 1_714_000_000_124,
        sender: "Alice!alice@example.net".to_owned(),
        sender_account: Some("Alice".to_owned()),
        target: "Bob".to_owned(),
        participants: vec!["alice".to_owned()],
        ..sent.clone()
    };
    store.append(&[sent.clone(), second.clone()]).expect("append");
    let got = store.history("alice\u{0}bob", &HistoryQuery::Latest { after: None }, 10).expect("history");
    // Coming out, participants are the conversation's (sorted union) and offline_for is None.
    let parties = vec!["alice".to_owned(), "bob".to_owned()];
    let expected = vec![
        StoredMessage { participants: parties.clone(), ..sent },
        StoredMessage { participants: parties, ..second },
    ];
    assert_eq!(got, expected, "every field comes back as stored");
}

pub(super) fn queries(store: &mut dyn Store) {
    ten_messages(store);
    let cases: Vec<(HistoryQuery, usize, Vec<&str>)> = vec![
        (HistoryQuery::Latest { after: None }, 3, vec!["m08", "m09", "m10"]),
        (
            HistoryQuery::Latest { after: None },
            100,
            vec!["m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09", "m10"],
        ),
        (HistoryQuery::Latest { after: None }, 0, vec![]),
        (HistoryQuery::Latest { after: Some(msgid("m07")) }, 10, vec!["m08", "m09", "m10"]),
        (HistoryQuery::Latest { after: Some(msgid("m03")) }, 2, vec!["m09", "m10"]),
        (HistoryQuery::Latest { after: Some(Bound::Time(7000)) }, 10, vec!["m08", "m09", "m10"]),
        (HistoryQuery::Latest { after: Some(msgid("m10")) }, 10, vec![]),
        (HistoryQuery::Before(msgid("m05")), 3, vec!["m02", "m03", "m04"]),
        (HistoryQuery::Before(msgid("m02")), 3, vec!["m01"]),
        (HistoryQuery::Before(msgid("m01")), 3, vec![]),
        (HistoryQuery::Before(Bound::Time(5000)), 2, vec!["m03", "m04"]),
        (HistoryQuery::Before(Bound::Time(5500)), 2, vec!["m04", "m05"]),
        (HistoryQuery::Before(Bound::Time(u64::MAX)), 1, vec!["m10"]),
        (HistoryQuery::After(msgid("m05")), 3, vec!["m06", "m07", "m08"]),
        (HistoryQuery::After(Bound::Time(5000)), 2, vec!["m06", "m07"]),
        (HistoryQuery::After(Bound::Time(0)), 2, vec!["m01", "m02"]),
        (HistoryQuery::After(msgid("m10")), 5, vec![]),
        (HistoryQuery::Around(msgid("m05")), 4, vec!["m03", "m04", "m05", "m06"]),
        (HistoryQuery::Around(msgid("m05")), 5, vec!["m03", "m04", "m05", "m06", "m07"]),
        (HistoryQuery::Around(msgid("m05")), 1, vec!["m05"]),
        (HistoryQuery::Around(msgid("m02")), 4, vec!["m01", "m02", "m03", "m04"]),
        (HistoryQuery::Around(msgid("m10")), 4, vec!["m07", "m08", "m09", "m10"]),
        (HistoryQuery::Around(Bound::Time(5000)), 4, vec!["m03", "m04", "m05", "m06"]),
        (HistoryQuery::Around(Bound::Time(5500)), 2, vec!["m05", "m06"]),
        (
            HistoryQuery::Around(msgid("m05")),
            100,
            vec!["m01", "m02", "m03", "m04", "m05", "m06", "m07", "m08", "m09", "m10"],
        ),
        (HistoryQuery::Between(msgid("m02"), msgid("m07")), 10, vec!["m03", "m04", "m05", "m06"]),
        (HistoryQuery::Between(msgid("m02"), msgid("m07")), 2, vec!["m03", "m04"]),
        (HistoryQuery::Between(msgid("m07"), msgid("m02")), 2, vec!["m05", "m06"]),
        (HistoryQuery::Between(msgid("m07"), msgid("m02")), 10, vec!["m03", "m04", "m05", "m06"]),
        (HistoryQuery::Between(Bound::Time(2000), Bound::Time(7000)), 10, vec!["m03", "m04", "m05", "m06"]),
        (HistoryQuery::Between(Bound::Time(7000), Bound::Time(2000)), 3, vec!["m04", "m05", "m06"]),
        (HistoryQuery::Between(msgid("m02"), Bound::Time(4500)), 10, vec!["m03", "m04"]),
        (HistoryQuery::Between(Bound::Time(8500), msgid("m06")), 10, vec!["m07", "m08"]),
        (HistoryQuery::Between(msgid("m04"), msgid("m04")), 10, vec![]),
        (HistoryQuery::Between(msgid("m04"), msgid("m05")), 10, vec![]),
        (HistoryQuery::Between(Bound::Time(0), Bound::Time(u64::MAX)), 3, vec!["m01", "m02", "m03"]),
    ];
    for (query, limit, expected) in cases {
        let got = store.history("#rust", &query, limit).unwrap_or_else(|e| panic!("{query:?} limit {limit}: {e}"));
        assert_eq!(ids(&got), expected, "{query:?} limit {limit}");
        assert!(got.iter().all(|m| m.conversation == "#rust"), "{query:?}: only #rust, conversation filled in");
    }
    let other = store.history("#other", &HistoryQuery::Before(msgid("o03")), 10).expect("history");
    assert_eq!(ids(&other), ["o01", "o02"], "conversations are separate");
    let none = store.history("#nothing", &HistoryQuery::Latest { after: None }, 10).expect("history");
    assert!(none.is_empty(), "an unknown conversation has no history");
}

/// Messages sharing a millisecond are ordered by msgid, time bounds treat the millisecond as one
/// point, and paging by msgid neither skips nor repeats.
pub(super) fn ties_and_paging(store: &mut dyn Store) {
    let batch = [
        message("#ties", "t4", 6000),
        message("#ties", "t2", 5000),
        message("#ties", "t0", 4000),
        message("#ties", "t3", 5000),
        message("#ties", "t1", 5000),
    ];
    store.append(&batch).expect("append");
    let cases: Vec<(HistoryQuery, Vec<&str>)> = vec![
        (HistoryQuery::Latest { after: None }, vec!["t0", "t1", "t2", "t3", "t4"]),
        (HistoryQuery::Before(msgid("t3")), vec!["t0", "t1", "t2"]),
        (HistoryQuery::After(msgid("t1")), vec!["t2", "t3", "t4"]),
        (HistoryQuery::Before(Bound::Time(5000)), vec!["t0"]),
        (HistoryQuery::After(Bound::Time(5000)), vec!["t4"]),
        (HistoryQuery::Latest { after: Some(Bound::Time(5000)) }, vec!["t4"]),
        (HistoryQuery::Between(msgid("t1"), msgid("t3")), vec!["t2"]),
        (HistoryQuery::Between(msgid("t3"), msgid("t1")), vec!["t2"]),
        (HistoryQuery::Between(Bound::Time(4000), Bound::Time(6000)), vec!["t1", "t2", "t3"]),
        (HistoryQuery::Around(Bound::Time(5000)), vec!["t0", "t1", "t2", "t3", "t4"]),
    ];
    for (query, expected) in cases {
        let got = store.history("#ties", &query, 10).unwrap_or_else(|e| panic!("{query:?}: {e}"));
        assert_eq!(ids(&got), expected, "{query:?}");
    }

    // Scrolling back two at a time from the latest.
    let mut page = store.history("#ties", &HistoryQuery::Latest { after: None }, 2).expect("latest");
    let mut seen = Vec::new();
    while let Some(first) = page.first().map(|m| m.msgid.clone()) {
        seen.splice(0..0, page.iter().map(|m| m.msgid.clone()));
        page = store.history("#ties", &HistoryQuery::Before(Bound::MsgId(first)), 2).expect("before");
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"], "BEFORE paging");
    // And forward again from the first.
    let mut seen = vec!["t0".to_owned()];
    loop {
        let last = seen.last().cloned().unwrap_or_default();
        let page = store.history("#ties", &HistoryQuery::After(Bound::MsgId(last)), 2).expect("after");
        if page.is_empty() {
            break;
        }
        seen.extend(page.into_iter().map(|m| m.msgid));
    }
    assert_eq!(seen, ["t0", "t1", "t2", "t3", "t4"], "AFTER paging");
}

/// A msgid bound that this conversation does not hold is an error, whatever the query shape.
pub(super) fn unknown_bounds(store: &mut dyn Store) {
    ten_messages(store);
    let queries = [
        HistoryQuery::Latest { after: Some(msgid("nope")) },
        HistoryQuery::Before(msgid("nope")),
        HistoryQuery::After(msgid("nope")),
        HistoryQuery::Around(msgid("nope")),
        HistoryQuery::Between(msgid("m02"), msgid("nope")),
        HistoryQuery::Between(msgid("nope"), msgid("m02")),
        // A msgid of another conversation is not a bound in this one.
        HistoryQuery::Before(msgid("o05")),
    ];
    for query in queries {
        match store.history("#rust", &query, 10) {
            Err(StoreError::UnknownMsgId(_)) => {}
            other => panic!("{query:?} must fail with UnknownMsgId, got {other:?}"),
        }
    }
}

pub(super) fn prune(store: &mut dyn Store) {
    ten_messages(store);
    // Strictly older than 3000: m01, m02 and o01, o02 (at 1500 and 2500).
    assert_eq!(store.prune_history(3000).expect("prune"), 4);
    let latest = HistoryQuery::Latest { after: None };
    let rust = store.history("#rust", &latest, 100).expect("history");
    assert_eq!(ids(&rust), ["m03", "m04", "m05", "m06", "m07", "m08", "m09", "m10"]);
    assert_eq!(store.history("#other", &latest, 100).expect("history").len(), 8);
    match store.history("#rust", &HistoryQuery::After(msgid("m02")), 10) {
        Err(StoreError::UnknownMsgId(_)) => {}
        other => panic!("a pruned msgid is no longer a bound, got {other:?}"),
    }
    assert_eq!(store.prune_history(3000).expect("prune again"), 0, "nothing left to prune");
    assert_eq!(store.prune_history(0).expect("prune nothing"), 0);

    // A pruned conversation takes new messages as before.
    assert_eq!(store.prune_history(u64::MAX).expect("prune all"), 16);
    assert!(store.history("#rust", &latest, 100).expect("history").is_empty());
    store.append(&[message("#rust", "m11", 11_000)]).expect("append after pruning");
    assert_eq!(ids(&store.history("#rust", &latest, 100).expect("history")), ["m11"]);

    // A prune larger than any batch a backend might delete at once.
    let bulk: Vec<StoredMessage> = (0..25_000).map(|i| message("#bulk", &format!("b{i:05}"), 20_000 + i)).collect();
    store.append(&bulk).expect("append in bulk");
    assert_eq!(store.prune_history(20_000 + 24_990).expect("bulk prune"), 24_990 + 1, "#bulk and m11");
    assert_eq!(ids(&store.history("#bulk", &latest, 100).expect("history")).len(), 10);
}

/// Room events (draft/event-playback) are stored like messages but read only by
/// `history_with_events`, in order among the messages and within the same limit; `history`
/// pages over messages alone, and `history_targets` lists a conversation by its messages.
pub(super) fn events(store: &mut dyn Store) {
    let event = |msgid: &str, time_ms: u64, command: &str| StoredMessage {
        command: command.to_owned(),
        text: String::new(),
        ..message("#rust", msgid, time_ms)
    };
    let batch = [
        event("e1", 1000, "JOIN"),
        message("#rust", "m1", 2000),
        event("e2", 3000, "TOPIC"),
        message("#rust", "m2", 4000),
        event("e3", 5000, "PART"),
        event("e4", 6000, "QUIT"),
    ];
    store.append(&batch).expect("append");
    assert!(batch[0].is_event() && !batch[1].is_event());
    let latest = HistoryQuery::Latest { after: None };
    assert_eq!(ids(&store.history("#rust", &latest, 10).expect("history")), ["m1", "m2"]);
    assert_eq!(ids(&store.history("#rust", &latest, 1).expect("history")), ["m2"], "a page of messages");
    let all = store.history_with_events("#rust", &latest, 10).expect("history");
    assert_eq!(ids(&all), ["e1", "m1", "e2", "m2", "e3", "e4"]);
    assert_eq!(all[2].command, "TOPIC");
    assert_eq!(ids(&store.history_with_events("#rust", &latest, 3).expect("history")), ["m2", "e3", "e4"]);
    // An event's msgid is a bound like any other.
    let before = HistoryQuery::Before(msgid("e2"));
    assert_eq!(ids(&store.history("#rust", &before, 10).expect("history")), ["m1"]);
    assert_eq!(ids(&store.history_with_events("#rust", &before, 10).expect("history")), ["e1", "m1"]);
    let targets = store.history_targets(None, &["#rust".to_owned()], 0, 10_000, 10).expect("targets");
    assert_eq!(targets.len(), 1);
    assert_eq!(targets[0].latest_ms, 4000, "the latest message, not the latest event");
}
