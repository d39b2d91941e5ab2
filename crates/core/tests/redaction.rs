//! IRCv3 `draft/message-redaction` as the core sees it: REDACT looks the message up in storage,
//! checks who may redact it and until when, has storage redact it, and only then relays it to
//! the clients that enabled the capability. The test plays the store.

mod support;

use std::time::Duration;

use chinwag_core::{dm_conversation, Config, ConnId, Failure, HistoryItem, Operator, Request, Response};
use support::{all, Harness};

const CAPS: &str = "draft/message-redaction message-tags echo-message";
const OPER_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo";

fn harness() -> Harness {
    let mut cfg =
        Config { opers: vec![Operator { name: "root".into(), password_hash: OPER_HASH.into() }], ..Config::default() };
    cfg.limits.autoreplay_lines = 0;
    Harness::with_config(cfg)
}

/// amy (account amy) and ben (account ben) with the capability, cat (a guest) without, all in
/// #general.
fn room(h: &mut Harness) -> [ConnId; 3] {
    let amy = h.register_with_caps("amy", CAPS);
    let ben = h.register_with_caps("ben", CAPS);
    let cat = h.register("cat");
    h.login(amy, "amy");
    h.login(ben, "ben");
    for c in [amy, ben, cat] {
        h.send(c, "JOIN #general");
    }
    h.clear(&[amy, ben, cat]);
    [amy, ben, cat]
}

/// `conn` says `text` to `target`; the stored message.
fn say(h: &mut Harness, conn: ConnId, target: &str, text: &str) -> HistoryItem {
    h.send(conn, &format!("PRIVMSG {target} :{text}"));
    let item = h.persisted.last().cloned().expect("persisted");
    assert_eq!(item.text, text);
    item
}

/// Plays the first trip: the lookup of `item.msgid`, answered with `found`.
#[track_caller]
fn answer_lookup(h: &mut Harness, item: &HistoryItem, found: Option<HistoryItem>) {
    let (id, request) = h.next_request();
    assert_eq!(request, Request::Message { msgid: item.msgid.clone() });
    h.respond(id, Response::Message(Ok(found)));
}

/// Plays the second trip: the redaction itself, which took it out of `queues`.
#[track_caller]
fn answer_redact(h: &mut Harness, item: &HistoryItem, queues: &[&str]) {
    let (id, request) = h.next_request();
    assert_eq!(request, Request::Redact { msgid: item.msgid.clone() });
    h.respond(id, Response::Redacted(Ok(Some(queues.iter().map(|q| (*q).to_owned()).collect()))));
}

fn fail(lines: &[String]) -> Vec<String> {
    all(lines, "FAIL").into_iter().next().unwrap_or_else(|| panic!("expected FAIL in {lines:#?}"))
}

#[test]
fn the_sender_redacts_and_only_clients_with_the_capability_hear_of_it() {
    let mut h = harness();
    let [amy, ben, cat] = room(&mut h);
    let item = say(&mut h, amy, "#general", "oops, wrong room");
    h.clear(&[amy, ben, cat]);

    h.send(amy, &format!("REDACT #general {} :wrong room", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    assert!(all(&h.take(ben), "REDACT").is_empty(), "nothing is relayed before storage redacted it");
    answer_redact(&mut h, &item, &[]);
    let expected = vec!["#general".to_owned(), item.msgid.clone(), "wrong room".to_owned()];
    for conn in [amy, ben] {
        let lines = h.take(conn);
        let redact = support::expect(&lines, "REDACT");
        assert_eq!(redact.params, expected);
        assert!(redact.source.as_deref().is_some_and(|s| s.starts_with("amy!")), "{redact:?}");
        assert!(redact.tag("msgid").is_some(), "a REDACT is an event of its own, with its own msgid");
    }
    assert!(h.take(cat).is_empty(), "a client without the capability gets nothing");
}

#[test]
fn only_the_sender_a_room_operator_or_an_irc_operator_may_redact() {
    let mut h = harness();
    let [amy, ben, cat] = room(&mut h);
    let item = say(&mut h, amy, "#general", "mine");
    h.send(ben, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    assert_eq!(
        fail(&h.take(ben)),
        ["REDACT", "REDACT_FORBIDDEN", "#general", &item.msgid, "You are not authorised to delete this message"]
    );
    assert!(h.requests.is_empty(), "nothing redacted");

    // A guest's message: only an operator may redact it (it has no account to be its sender).
    let guest = say(&mut h, cat, "#general", "from a guest");
    h.send(cat, &format!("REDACT #general {}", guest.msgid));
    answer_lookup(&mut h, &guest, Some(guest.clone()));
    assert_eq!(fail(&h.take(cat))[1], "REDACT_FORBIDDEN");

    // An IRC operator may.
    h.send(ben, "OPER root swordfish");
    let (id, _) = h.next_request();
    h.respond(id, Response::Done(Ok(())));
    h.take(ben);
    h.send(ben, &format!("REDACT #general {}", guest.msgid));
    answer_lookup(&mut h, &guest, Some(guest.clone()));
    answer_redact(&mut h, &guest, &[]);
    assert_eq!(all(&h.take(amy), "REDACT")[0][1], guest.msgid);

    // So may an operator of the room: dan makes #den (and runs it), amy speaks there.
    let dan = h.register_with_caps("dan", CAPS);
    h.send(dan, "JOIN #den");
    h.send(amy, "JOIN #den");
    let there = say(&mut h, amy, "#den", "in dan's room");
    h.clear(&[amy, dan]);
    h.send(dan, &format!("REDACT #den {}", there.msgid));
    answer_lookup(&mut h, &there, Some(there.clone()));
    answer_redact(&mut h, &there, &[]);
    assert_eq!(all(&h.take(amy), "REDACT")[0][..2], ["#den".to_owned(), there.msgid.clone()]);
    // In a room it does not run, dan is nobody.
    h.send(dan, "JOIN #general");
    h.send(dan, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    assert_eq!(fail(&h.take(dan))[1], "REDACT_FORBIDDEN");
}

#[test]
fn the_window_binds_senders_but_not_operators() {
    let mut h = harness();
    let [amy, ben, _] = room(&mut h);
    let mut item = say(&mut h, amy, "#general", "said long ago");
    // As storage would have it had it been said a day and a minute ago.
    item.time_ms -= (24 * 60 + 1) * 60 * 1000;
    h.send(amy, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    assert_eq!(fail(&h.take(amy))[..5], ["REDACT", "REDACT_WINDOW_EXPIRED", "#general", &item.msgid, "86400"]);
    assert!(h.requests.is_empty());

    h.send(ben, "OPER root swordfish");
    let (id, _) = h.next_request();
    h.respond(id, Response::Done(Ok(())));
    h.send(ben, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    answer_redact(&mut h, &item, &[]);
    assert_eq!(all(&h.take(amy), "REDACT").len(), 1, "an operator may redact whenever");
}

#[test]
fn a_window_of_zero_is_no_limit() {
    let mut cfg = Config::default();
    cfg.limits.autoreplay_lines = 0;
    cfg.limits.redaction_window = Duration::ZERO;
    let mut h = Harness::with_config(cfg);
    let [amy, ..] = room(&mut h);
    let mut item = say(&mut h, amy, "#general", "said last year");
    item.time_ms -= 365 * 24 * 60 * 60 * 1000;
    h.send(amy, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    answer_redact(&mut h, &item, &[]);
    assert_eq!(all(&h.take(amy), "REDACT").len(), 1);
}

#[test]
fn unknown_foreign_and_invalid_targets_and_msgids() {
    let mut h = harness();
    let [amy, _, cat] = room(&mut h);
    let item = say(&mut h, amy, "#general", "hello");

    h.send(amy, "REDACT #general");
    assert!(h.take(amy).iter().any(|l| l.contains(" 461 ")), "a msgid is needed");
    h.send(amy, "REDACT #nowhere 123");
    assert_eq!(fail(&h.take(amy))[..3], ["REDACT", "INVALID_TARGET", "#nowhere"]);
    h.send(amy, "REDACT #random 123");
    assert_eq!(fail(&h.take(amy))[..3], ["REDACT", "INVALID_TARGET", "#random"], "not a member");
    h.send(cat, "REDACT amy 123");
    assert_eq!(fail(&h.take(cat))[..3], ["REDACT", "INVALID_TARGET", "amy"], "a guest has no private history");
    assert!(h.requests.is_empty(), "none of these reached storage");

    h.send(amy, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, None);
    assert_eq!(fail(&h.take(amy))[..4], ["REDACT", "UNKNOWN_MSGID", "#general", &item.msgid]);

    // A message of another conversation reads as unknown: REDACT tells nobody what exists where.
    let elsewhere = HistoryItem { conversation: "#tech".into(), target: "#tech".into(), ..item.clone() };
    h.send(amy, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(elsewhere));
    assert_eq!(fail(&h.take(amy))[1], "UNKNOWN_MSGID");

    // Redacted by someone else between the two trips.
    h.send(amy, &format!("REDACT #general {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    let (id, _) = h.next_request();
    h.respond(id, Response::Redacted(Ok(None)));
    assert_eq!(fail(&h.take(amy))[1], "UNKNOWN_MSGID");

    h.send(amy, &format!("REDACT #general {}", item.msgid));
    let (id, _) = h.next_request();
    h.respond(id, Response::Message(Err(Failure::Unavailable("disk".into()))));
    assert_eq!(fail(&h.take(amy))[..2], ["REDACT", "TEMPORARILY_UNAVAILABLE"]);
}

#[test]
fn a_private_redaction_reaches_both_accounts_connections_with_the_capability() {
    let mut h = harness();
    let [amy, ben, _] = room(&mut h);
    let amy_phone = h.register_with_caps("amy_phone", CAPS);
    h.login(amy_phone, "amy");
    let item = say(&mut h, amy, "ben", "private");
    assert_eq!(item.conversation, dm_conversation("amy", "ben"));
    h.clear(&[amy, ben, amy_phone]);

    h.send(amy, &format!("REDACT ben {}", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    answer_redact(&mut h, &item, &[]);
    for conn in [amy, ben, amy_phone] {
        let got = all(&h.take(conn), "REDACT");
        assert_eq!(got, [vec!["ben".to_owned(), item.msgid.clone()]], "{conn}");
    }
}

#[test]
fn a_redacted_message_frees_its_place_in_an_offline_queue() {
    let mut cfg = Config::default();
    cfg.limits.autoreplay_lines = 0;
    cfg.limits.offline_queue_len = 1;
    let mut h = Harness::with_config(cfg);
    h.server.restore(vec!["carl".into()], vec![]);
    let amy = h.register_with_caps("amy", CAPS);
    h.login(amy, "amy");
    let first = say(&mut h, amy, "carl", "first");
    assert_eq!(first.offline_for.as_deref(), Some("carl"));
    h.send(amy, "PRIVMSG carl :second");
    assert!(h.take(amy).iter().any(|l| l.contains("not kept")), "the queue is full");

    h.send(amy, &format!("REDACT carl {}", first.msgid));
    answer_lookup(&mut h, &first, Some(first.clone()));
    answer_redact(&mut h, &first, &["carl"]);
    h.take(amy);
    let third = say(&mut h, amy, "carl", "third");
    assert_eq!(third.offline_for.as_deref(), Some("carl"), "kept: the redacted one left the queue");
}

#[test]
fn a_muted_sender_takes_a_message_back_but_says_nothing_with_the_reason() {
    let mut h = harness();
    let [amy, ben, cat] = room(&mut h);
    h.send(ben, "JOIN #quiet");
    h.send(amy, "JOIN #quiet");
    let item = say(&mut h, amy, "#quiet", "something regrettable");
    h.send(ben, "MODE #quiet +m");
    h.clear(&[amy, ben, cat]);

    h.send(amy, &format!("REDACT #quiet {} :words the room should not hear", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    answer_redact(&mut h, &item, &[]);
    let redact = support::expect(&h.take(ben), "REDACT");
    assert_eq!(redact.params, vec!["#quiet".to_owned(), item.msgid.clone()], "the reason of a muted sender is dropped");

    // Voiced again, the reason goes through.
    h.send(ben, "MODE #quiet +v amy");
    let item = say(&mut h, amy, "#quiet", "another");
    h.clear(&[amy, ben]);
    h.send(amy, &format!("REDACT #quiet {} :typo", item.msgid));
    answer_lookup(&mut h, &item, Some(item.clone()));
    answer_redact(&mut h, &item, &[]);
    let redact = support::expect(&h.take(ben), "REDACT");
    assert_eq!(redact.params.last().map(String::as_str), Some("typo"));
}
