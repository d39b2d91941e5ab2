//! `accounts.required`: on a private server only logged-in users join rooms and send messages;
//! guests may still register and log in through NickServ.

mod support;

use chinwag_core::{Config, Request, Response};
use support::{expect, find, Harness};

fn private() -> Harness {
    let mut cfg = Config { accounts_required: true, ..Config::default() };
    cfg.limits.autoreplay_lines = 0;
    Harness::with_config(cfg)
}

#[test]
fn a_guest_is_told_at_once_and_may_neither_join_nor_speak_until_logged_in() {
    let mut h = private();
    let conn = h.connect();
    h.send(conn, "NICK gus");
    h.send(conn, "USER gus 0 * :Gus");
    let welcome = h.take(conn);
    let notice = expect(&welcome, "NOTICE");
    assert!(notice.params[1].contains("registered users") && notice.params[1].contains("NickServ"), "{notice:?}");

    h.send(conn, "JOIN #general");
    let lines = h.take(conn);
    let refused = expect(&lines, "477");
    assert_eq!(refused.params[1], "#general");
    assert!(refused.params[2].contains("log in"), "{refused:?}");
    assert!(find(&lines, "JOIN").is_none() && find(&lines, "366").is_none(), "{lines:#?}");

    let amy = h.register("amy");
    h.send(conn, "PRIVMSG amy :hello?");
    assert_eq!(expect(&h.take(conn), "477").params[1], "amy");
    h.send(conn, "NOTICE amy :hello?");
    assert!(h.take(conn).is_empty(), "NOTICE draws no error");
    h.send(conn, "TAGMSG amy");
    assert_eq!(expect(&h.take(conn), "477").params[1], "amy");
    assert!(h.take(amy).is_empty(), "nothing reached amy");
    assert!(h.persisted.is_empty());

    // NickServ stays open to guests: registering and logging in work.
    h.send(conn, "PRIVMSG NickServ :IDENTIFY gus password123");
    let (id, req) = h.next_request();
    assert!(matches!(req, Request::CheckPassword { .. }), "{req:?}");
    h.respond(id, Response::Account(Ok("gus".into())));
    let (id, _offline) = h.next_request();
    h.respond(id, Response::Messages(Ok(vec![])));
    h.take(conn);
    h.send(conn, "JOIN #general");
    assert!(find(&h.take(conn), "366").is_some(), "logged in, gus joins");
    h.send(conn, "PRIVMSG #general :made it");
    assert_eq!(h.persisted.len(), 1);
}

#[test]
fn an_open_server_lets_guests_in_and_says_nothing_of_accounts() {
    let mut h = Harness::new();
    let conn = h.connect();
    h.send(conn, "NICK gus");
    h.send(conn, "USER gus 0 * :Gus");
    assert!(find(&h.take(conn), "NOTICE").is_none());
    h.send(conn, "JOIN #general");
    assert!(find(&h.take(conn), "366").is_some());
}
