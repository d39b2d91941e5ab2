//! Offline queues: a waiting message leaves its queue only once the client has read past it
//! (the PONG to the PING that follows its page), pages go one at a time, and each queue is
//! bounded with a clear notice to the sender.

mod support;

use chinwag_core::{Config, ConnId, HistoryItem, Limits, Request, RequestId, Response};
use support::{expect, find, parsed, Harness};

fn harness(limits: Limits) -> Harness {
    let mut h = Harness::with_config(Config { limits, ..Config::default() });
    h.server.restore(vec!["carl".into()], Vec::new());
    h
}

/// `n` messages to carl from ann, as storage would hand them back.
fn waiting(h: &mut Harness, n: usize) -> Vec<HistoryItem> {
    let ann = h.register_with_caps("ann", "echo-message");
    for i in 0..n {
        h.send(ann, &format!("PRIVMSG carl :message {i}"));
    }
    h.take(ann);
    h.disconnect(ann, "bye");
    let items: Vec<HistoryItem> = h.persisted.drain(..).collect();
    assert_eq!(items.len(), n);
    assert!(items.iter().all(|m| m.offline_for.as_deref() == Some("carl")));
    items
}

/// carl connects and logs in; returns the connection and the offline request.
fn carl_logs_in(h: &mut Harness) -> (ConnId, RequestId, usize) {
    let c = h.register_with_caps("carl", "server-time message-tags");
    h.send(c, "NS IDENTIFY carl password123");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("carl".into())));
    h.take(c);
    let (id, request) = h.next_request();
    match request {
        Request::Offline { account, limit } => {
            assert_eq!(account, "carl");
            (c, id, limit)
        }
        other => panic!("expected an offline request, got {other:?}"),
    }
}

#[test]
fn a_page_stays_queued_until_its_ping_is_answered() {
    let mut h = harness(Limits::default());
    let items = waiting(&mut h, 3);
    let (c, id, _) = carl_logs_in(&mut h);
    h.respond(id, Response::Messages(Ok(items.clone())));
    let lines = h.take(c);
    assert_eq!(parsed(&lines).iter().filter(|m| m.command == "PRIVMSG").count(), 3);
    let ping = expect(&lines, "PING");
    assert_eq!(parsed(&lines).last().map(|m| m.command.clone()).as_deref(), Some("PING"), "the PING follows the page");
    assert!(h.cleared_offline.is_empty(), "not cleared on sending");
    h.send(c, "PONG :some-other-token");
    assert!(h.cleared_offline.is_empty(), "an unrelated PONG clears nothing");

    // The client drops before answering: everything is still there at the next login.
    h.disconnect(c, "connection reset");
    assert!(h.cleared_offline.is_empty(), "a page nobody acknowledged stays queued");
    let (c, id, _) = carl_logs_in(&mut h);
    h.respond(id, Response::Messages(Ok(items.clone())));
    let lines = h.take(c);
    let again = expect(&lines, "PING");
    assert_ne!(again.params, ping.params, "a new token for a new page");
    h.send(c, &format!("PONG chinwag.local :{}", again.params[0]));
    assert_eq!(h.cleared_offline, [("carl".to_owned(), items[2].msgid.clone())]);
    assert!(h.requests.is_empty(), "a short page was the last one");
}

#[test]
fn pages_go_one_at_a_time_each_after_the_last_was_read() {
    let limits = Limits { offline_page: 2, ..Limits::default() };
    let mut h = harness(limits);
    let items = waiting(&mut h, 5);
    let (c, id, limit) = carl_logs_in(&mut h);
    assert_eq!(limit, 2);
    let mut delivered = Vec::new();
    let mut next = Some(id);
    let mut pages = 0;
    while let Some(id) = next.take() {
        pages += 1;
        assert!(pages <= 3, "bounded");
        let page: Vec<HistoryItem> = items.iter().skip(delivered.len()).take(2).cloned().collect();
        h.respond(id, Response::Messages(Ok(page.clone())));
        assert!(h.requests.is_empty(), "no next page before this one is acknowledged");
        let lines = h.take(c);
        delivered.extend(parsed(&lines).into_iter().filter(|m| m.command == "PRIVMSG").map(|m| m.params[1].clone()));
        let ping = expect(&lines, "PING");
        h.send(c, &format!("PONG :{}", ping.params[0]));
        assert_eq!(h.cleared_offline.last().map(|c| c.1.clone()), page.last().map(|m| m.msgid.clone()));
        next = h.requests.pop().map(|(id, _)| id);
    }
    assert_eq!(delivered, (0..5).map(|i| format!("message {i}")).collect::<Vec<_>>());
    assert_eq!(h.cleared_offline.len(), 3);
}

#[test]
fn a_full_queue_refuses_the_next_message_and_tells_the_sender() {
    let limits = Limits { offline_queue_len: 3, ..Limits::default() };
    let mut h = harness(limits);
    let items = waiting(&mut h, 3);
    let ann = h.register_with_caps("ann", "echo-message");
    h.send(ann, "PRIVMSG carl :one too many");
    let lines = h.take(ann);
    assert!(find(&lines, "PRIVMSG").is_none(), "no echo: the message was not accepted: {lines:?}");
    let notice = expect(&lines, "NOTICE");
    assert!(notice.params[1].contains("carl") && notice.params[1].contains("not kept"), "{notice:?}");
    assert!(h.persisted.is_empty(), "not kept");

    // Once carl read his messages there is room again.
    let (c, id, _) = carl_logs_in(&mut h);
    h.respond(id, Response::Messages(Ok(items)));
    let ping = expect(&h.take(c), "PING");
    h.send(c, &format!("PONG :{}", ping.params[0]));
    h.disconnect(c, "bye");
    h.send(ann, "PRIVMSG carl :now it fits");
    assert_eq!(h.persisted.len(), 1);
    assert!(find(&h.take(ann), "PRIVMSG").is_some(), "echoed");
}

#[test]
fn the_bound_counts_what_storage_held_at_start() {
    let limits = Limits { offline_queue_len: 5, ..Limits::default() };
    let mut h = harness(limits);
    h.server.restore_offline_counts([("carl".to_owned(), 5)]);
    let ann = h.register("ann");
    h.send(ann, "PRIVMSG carl :hello");
    assert!(h.persisted.is_empty());
    assert!(expect(&h.take(ann), "NOTICE").params[1].contains("5 messages waiting"));
    h.send(ann, "NOTICE carl :quiet");
    assert!(h.persisted.is_empty(), "a NOTICE is bounded the same way");
}
