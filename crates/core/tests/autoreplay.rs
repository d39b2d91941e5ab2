//! History replayed on JOIN to clients that cannot ask for it (no `draft/chathistory`): irssi,
//! WeeChat, bots. The test plays the edge and answers the storage read.

mod support;

use std::time::Duration;

use chinwag_core::{rfc3339_ms, Bound, Config, HistoryItem, HistoryQuery, Request, Response};
use support::{find, parsed, Harness};

fn harness() -> Harness {
    Harness::with_config(Config::default())
}

fn item(conversation: &str, time_ms: u64, text: &str) -> HistoryItem {
    HistoryItem {
        msgid: format!("m{time_ms}"),
        time_ms,
        command: "PRIVMSG".into(),
        sender: "amy!amy@127.0.0.1".into(),
        sender_account: None,
        target: conversation.into(),
        text: text.into(),
        tags: String::new(),
        conversation: conversation.into(),
        participants: vec![],
        offline_for: None,
    }
}

/// The one request a JOIN made: the replay's storage read.
#[track_caller]
fn replay_request(h: &mut Harness) -> (chinwag_core::RequestId, String, HistoryQuery, usize) {
    let (id, req) = h.next_request();
    let Request::History { conversation, query, limit, events: false } = req else {
        panic!("expected a history read, got {req:?}")
    };
    assert!(h.requests.is_empty(), "one request per join: {:?}", h.requests);
    (id, conversation, query, limit)
}

#[test]
fn a_plain_client_gets_the_latest_lines_after_the_join_burst_with_their_time_in_the_text() {
    let mut h = harness();
    let bob = h.register("bob");
    let joined_ms = h.now().wall_ms;
    h.send(bob, "JOIN #general");
    let burst = h.take(bob);
    assert!(find(&burst, "366").is_some() && find(&burst, "PRIVMSG").is_none(), "{burst:#?}");
    let (id, conversation, query, limit) = replay_request(&mut h);
    assert_eq!(conversation, "#general");
    assert_eq!(query, HistoryQuery::Before(Bound::Time(joined_ms)), "nothing said after the join");
    assert_eq!(limit, 20, "history.autoreplay_lines by default");

    let said = joined_ms - 10 * 60 * 1000;
    let action = item("#general", said + 1000, "\u{1}ACTION waves\u{1}");
    h.respond(id, Response::Messages(Ok(vec![item("#general", said, "hello, anyone?"), action])));
    let lines = h.take(bob);
    let msgs = parsed(&lines);
    assert_eq!(msgs.len(), 2, "{lines:#?}");
    assert!(find(&lines, "BATCH").is_none(), "no batch for a client without the capability");
    let iso = rfc3339_ms(said);
    let when = format!("[{} {}]", &iso[..10], &iso[11..19]);
    assert_eq!(msgs[0].params, ["#general".to_owned(), format!("{when} hello, anyone?")]);
    assert!(msgs[0].source.as_deref().is_some_and(|s| s.starts_with("amy!")));
    assert!(msgs[0].tags.is_empty(), "no tags for a client without message-tags: {lines:#?}");
    let action_when = rfc3339_ms(said + 1000);
    assert_eq!(
        msgs[1].params[1],
        format!("\u{1}ACTION [{} {}] waves\u{1}", &action_when[..10], &action_when[11..19]),
        "an action stays an action"
    );
}

#[test]
fn a_client_with_batch_and_server_time_gets_the_lines_as_they_were_in_a_chathistory_batch() {
    let mut h = harness();
    let bob = h.register_with_caps("bob", "batch server-time message-tags");
    h.send(bob, "JOIN #general");
    h.take(bob);
    let (id, ..) = replay_request(&mut h);
    let said = h.now().wall_ms - 60_000;
    h.respond(id, Response::Messages(Ok(vec![item("#general", said, "hello")])));
    let lines = h.take(bob);
    let msgs = parsed(&lines);
    assert_eq!(msgs.len(), 3, "{lines:#?}");
    assert_eq!(msgs[0].command, "BATCH");
    assert_eq!(msgs[0].params[1..], ["chathistory", "#general"]);
    let batch = msgs[0].params[0].trim_start_matches('+');
    assert_eq!(msgs[1].params, ["#general", "hello"], "the text as it was said");
    assert_eq!(msgs[1].tag("time"), Some(rfc3339_ms(said).as_str()));
    assert_eq!(msgs[1].tag("batch"), Some(batch));
    assert_eq!(msgs[1].tag("msgid"), Some(format!("m{said}").as_str()));
    assert_eq!(msgs[2].params, [format!("-{batch}")]);
}

#[test]
fn clients_that_can_ask_for_history_and_servers_that_turned_it_off_get_no_replay() {
    let mut h = harness();
    let dora = h.register_with_caps("dora", "batch server-time draft/chathistory");
    h.send(dora, "JOIN #general");
    assert!(h.requests.is_empty(), "a chathistory client asks for itself: {:?}", h.requests);

    let mut cfg = Config::default();
    cfg.limits.autoreplay_lines = 0;
    let mut h = Harness::with_config(cfg);
    let bob = h.register("bob");
    h.send(bob, "JOIN #general");
    assert!(h.requests.is_empty(), "history.autoreplay_lines = 0 turns it off: {:?}", h.requests);
}

#[test]
fn nothing_older_than_the_room_or_the_age_limit_and_nothing_after_leaving() {
    let mut h = harness();
    let made_ms = h.now().wall_ms;
    let amy = h.register("amy");
    h.send(amy, "JOIN #fresh");
    assert!(h.requests.is_empty(), "a room made by this join has nothing to replay");
    h.advance(Duration::from_secs(60));
    let bob = h.register("bob");
    h.send(bob, "JOIN #fresh");
    h.take(bob);
    let (id, ..) = replay_request(&mut h);
    let earlier_room = item("#fresh", made_ms - 5_000, "said in an earlier #fresh");
    let this_room = item("#fresh", made_ms + 5_000, "said in this one");
    h.respond(id, Response::Messages(Ok(vec![earlier_room, this_room])));
    let msgs = parsed(&h.take(bob));
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].params[1].ends_with("said in this one"));

    h.send(bob, "JOIN #general");
    h.take(bob);
    let (id, ..) = replay_request(&mut h);
    let now = h.now().wall_ms;
    let stale = item("#general", now - 25 * 60 * 60 * 1000, "yesterday's news");
    let recent = item("#general", now - 60 * 60 * 1000, "an hour ago");
    h.respond(id, Response::Messages(Ok(vec![stale, recent])));
    let msgs = parsed(&h.take(bob));
    assert_eq!(msgs.len(), 1, "older than history.autoreplay_max_age_hours is left out: {msgs:?}");
    assert!(msgs[0].params[1].ends_with("an hour ago"));

    h.send(bob, "JOIN #random");
    let (id, ..) = replay_request(&mut h);
    h.send(bob, "PART #random");
    h.take(bob);
    h.respond(id, Response::Messages(Ok(vec![item("#random", now - 1000, "too late")])));
    assert!(h.take(bob).is_empty(), "no replay into a room the client left");
}

#[test]
fn the_join_is_not_held_up_by_the_replay() {
    let mut h = harness();
    let bob = h.register("bob");
    h.send(bob, "JOIN #general");
    h.take(bob);
    let (id, ..) = replay_request(&mut h);
    h.send(bob, "PRIVMSG #general :typed before the replay arrived");
    assert_eq!(h.persisted.len(), 1, "the client's next line runs at once");
    h.respond(id, Response::Messages(Err(chinwag_core::Failure::Unavailable("disk stalled".into()))));
    let lines = h.take(bob);
    assert!(find(&lines, "FAIL").is_none(), "a failed replay is no error of the client's: {lines:#?}");
}
