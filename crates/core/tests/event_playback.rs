//! draft/event-playback (issue #20): a room's JOIN, PART, QUIT, KICK, TOPIC, MODE and NICK are
//! kept in its history, and CHATHISTORY returns them to clients with the capability only.

mod support;

use chinwag_core::{Config, HistoryItem, Request, Response};
use support::{parsed, Harness};

fn harness() -> Harness {
    let mut cfg = Config::default();
    cfg.limits.autoreplay_lines = 0;
    Harness::with_config(cfg)
}

/// The events of a room's life, as stored: command, target and text.
fn stored(h: &Harness) -> Vec<(String, String, String)> {
    h.events.iter().map(|i| (i.command.clone(), i.target.clone(), i.text.clone())).collect()
}

#[test]
fn room_events_are_stored_once_each_with_their_parameters() {
    let mut h = harness();
    let alice = h.register("alice");
    let bob = h.register("bob");
    h.send(alice, "JOIN #club");
    h.send(bob, "JOIN #club,#other");
    h.send(alice, "TOPIC #club :Reading Dune");
    h.send(alice, "MODE #club +v bob");
    h.send(bob, "NICK robert");
    h.send(bob, "PART #other :later");
    h.send(alice, "KICK #club robert :too loud");
    h.send(alice, "PRIVMSG #club :hello");
    h.send(alice, "QUIT :bye");
    let events = stored(&h);
    let expect = |c: &str, t: &str, x: &str| (c.to_owned(), t.to_owned(), x.to_owned());
    assert_eq!(
        events,
        [
            expect("JOIN", "#club", ""),
            expect("JOIN", "#club", ""),
            expect("JOIN", "#other", ""),
            expect("TOPIC", "#club", "Reading Dune"),
            expect("MODE", "#club", "+v bob"),
            expect("NICK", "#club", "robert"),
            expect("NICK", "#other", "robert"),
            expect("PART", "#other", "later"),
            expect("KICK", "#club", "robert too loud"),
            expect("QUIT", "#club", "Quit: bye"),
        ]
    );
    let ids: std::collections::HashSet<&str> = h.events.iter().chain(&h.persisted).map(|i| i.msgid.as_str()).collect();
    assert_eq!(ids.len(), h.events.len() + 1, "every row has a msgid of its own");
    assert_eq!(h.persisted.len(), 1, "and the message");
    assert!(h.events.iter().all(|i| i.is_event() && i.participants.is_empty() && i.offline_for.is_none()));

    // A server that keeps no events stores none.
    let mut h = Harness::with_config(Config { history_events: false, ..Config::default() });
    let carol = h.register("carol");
    h.send(carol, "JOIN #club");
    h.send(carol, "TOPIC #club :quiet");
    assert!(stored(&h).is_empty());
}

/// With the capability CHATHISTORY asks for events and replays each as its line; without it,
/// messages only (the store leaves events out, so a page is a page of messages).
#[test]
fn chathistory_replays_events_only_to_clients_that_asked() {
    let mut h = harness();
    let alice = h.register("alice");
    h.send(alice, "JOIN #club");
    h.send(alice, "TOPIC #club :Reading Dune");
    h.send(alice, "MODE #club +m");
    h.send(alice, "PRIVMSG #club :hello");
    let items: Vec<HistoryItem> = h.events.iter().chain(&h.persisted).cloned().collect();
    let kick =
        HistoryItem { msgid: "kick1".into(), command: "KICK".into(), text: "bob too loud".into(), ..items[0].clone() };
    let quit = HistoryItem { msgid: "quit1".into(), command: "QUIT".into(), text: "gone".into(), ..items[0].clone() };

    let reader =
        h.register_with_caps("reader", "batch server-time message-tags draft/chathistory draft/event-playback");
    let plain = h.register_with_caps("plain", "batch server-time message-tags draft/chathistory");
    for c in [reader, plain] {
        h.send(c, "JOIN #club");
    }
    h.clear(&[reader, plain]);
    h.send(reader, "CHATHISTORY LATEST #club * 10");
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::History { events: true, .. }), "{request:?}");
    let mut answer = items.clone();
    answer.extend([kick, quit]);
    h.respond(id, Response::Messages(Ok(answer)));
    let got = parsed(&h.take(reader));
    let lines: Vec<(String, Vec<String>)> =
        got.iter().filter(|m| m.command != "BATCH").map(|m| (m.command.clone(), m.params.clone())).collect();
    let line = |c: &str, p: &[&str]| (c.to_owned(), p.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    assert_eq!(
        lines,
        [
            line("JOIN", &["#club"]),
            line("TOPIC", &["#club", "Reading Dune"]),
            line("MODE", &["#club", "+m"]),
            line("PRIVMSG", &["#club", "hello"]),
            line("KICK", &["#club", "bob", "too loud"]),
            line("QUIT", &["gone"]),
        ]
    );
    let join = got.iter().find(|m| m.command == "JOIN").expect("join");
    assert!(join.source.as_deref().is_some_and(|s| s.starts_with("alice!")));
    assert_eq!(join.tag("msgid"), Some(items[0].msgid.as_str()));
    assert!(join.tag("time").is_some() && join.tag("batch").is_some());

    h.send(plain, "CHATHISTORY LATEST #club * 10");
    let (_, request) = h.next_request();
    assert!(matches!(request, Request::History { events: false, .. }), "{request:?}");
    // Nor are events asked for in a private conversation.
    h.login(reader, "reader");
    h.send(reader, "CHATHISTORY LATEST alice * 10");
    let (_, request) = h.next_request();
    assert!(matches!(request, Request::History { events: false, .. }), "{request:?}");
}

/// Events never take a message's place: none is kept once half the room for messages waiting
/// for their commit is used (and a join goes on all the same).
#[test]
fn events_give_way_to_messages_when_storage_is_slow() {
    let mut h = harness();
    let alice = h.register("alice");
    h.server.set_storage_room(10);
    h.send(alice, "JOIN #one");
    assert_eq!(stored(&h).len(), 1, "room to spare");
    h.server.set_storage_room(5);
    h.send(alice, "JOIN #two");
    assert!(parsed(&h.take(alice)).iter().any(|m| m.command == "JOIN" && m.params[0] == "#two"), "the join goes on");
    assert_eq!(stored(&h).len(), 1, "half the room is used: no event is kept");
    h.server.set_storage_room(1);
    h.send(alice, "PRIVMSG #one :still fits");
    assert_eq!(h.persisted.len(), 1, "the message has its place");
}
