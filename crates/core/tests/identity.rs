//! Private history and offline queues belong to accounts, never to whoever holds a nick. An
//! impostor who takes a registered user's nick while that user is away, without logging in,
//! reads nothing of the account's conversations, receives none of its messages and cannot write
//! into its history.

mod support;

use chinwag_core::{Request, Response};
use support::{expect, Harness};

/// A harness that knows the accounts `alice` and `bob`, with bob logged in as `bob`.
fn network() -> (Harness, chinwag_core::ConnId) {
    let mut h = Harness::new();
    h.server.restore(vec!["alice".into(), "bob".into()], Vec::new());
    let bob = login(&mut h, "bob");
    (h, bob)
}

/// A client registered with `nick` and logged in to the account of the same name.
fn login(h: &mut Harness, nick: &str) -> chinwag_core::ConnId {
    let c = h.register_with_caps(nick, "echo-message");
    h.login(c, nick);
    c
}

#[test]
fn an_impostor_on_a_registered_nick_cannot_read_the_accounts_private_history() {
    let (mut h, bob) = network();
    let alice = login(&mut h, "alice");
    h.send(alice, "PRIVMSG bob :a secret between us");
    let real = h.persisted.last().cloned().expect("alice's message is kept");
    h.disconnect(alice, "gone");
    h.clear(&[bob]);

    let mallory = h.register("alice");
    h.take(mallory);
    h.send(mallory, "CHATHISTORY LATEST bob * 100");
    let fail = expect(&h.take(mallory), "FAIL");
    assert_eq!(fail.params[1], "INVALID_TARGET", "{fail:?}");
    assert!(h.requests.is_empty(), "no history is read for a guest: {:?}", h.requests);
    h.send(mallory, "CHATHISTORY TARGETS timestamp=2020-01-01T00:00:00.000Z timestamp=2030-01-01T00:00:00.000Z 10");
    if let Some((_, request)) = h.requests.pop() {
        assert!(
            matches!(request, Request::HistoryTargets { viewer: None, .. }),
            "a guest lists no private conversations: {request:?}"
        );
    }
    // The real conversation's key is the accounts', and only they may read it.
    assert_eq!(real.participants, ["alice", "bob"]);
}

#[test]
fn a_message_to_a_registered_nick_held_by_an_impostor_waits_for_the_account() {
    let (mut h, bob) = network();
    let mallory = h.register("alice");
    h.take(mallory);
    h.send(bob, "PRIVMSG alice :for alice only");
    assert!(h.take(mallory).is_empty(), "the impostor gets nothing");
    let kept = h.persisted.last().cloned().expect("kept for the account");
    assert_eq!(kept.offline_for.as_deref(), Some("alice"));
    assert_eq!(kept.text, "for alice only");
    h.send(bob, "NOTICE alice :also waits");
    assert!(h.take(mallory).is_empty());
    assert_eq!(h.persisted.last().and_then(|m| m.offline_for.as_deref()), Some("alice"));
    h.send(bob, "@+typing=active TAGMSG alice");
    assert!(h.take(mallory).is_empty(), "not even a typing notice");

    // The real alice, logged in, gets them.
    h.disconnect(mallory, "gone");
    let alice = h.register("alice");
    h.send(alice, "NS IDENTIFY alice correct-password");
    let (id, _) = h.next_request();
    h.respond(id, Response::Account(Ok("alice".into())));
    let (id, request) = h.next_request();
    assert_eq!(request, Request::Offline { account: "alice".into(), limit: 100 });
    h.respond(id, Response::Messages(Ok(vec![kept])));
    assert!(h.take(alice).iter().any(|l| l.contains("for alice only")));
}

#[test]
fn an_impostors_messages_are_not_stored_in_the_accounts_conversation() {
    let (mut h, bob) = network();
    let alice = login(&mut h, "alice");
    h.send(alice, "PRIVMSG bob :the real one");
    let real = h.persisted.last().cloned().expect("kept");
    h.disconnect(alice, "gone");

    let mallory = h.register("alice");
    h.send(mallory, "PRIVMSG bob :a forgery");
    let forged = h.persisted.last().cloned().expect("kept for bob");
    assert_eq!(forged.text, "a forgery");
    let seen = h.take(bob);
    assert!(seen.iter().any(|l| l.starts_with(":alice!") && l.ends_with("a forgery")), "delivered live: {seen:?}");
    assert_ne!(forged.conversation, real.conversation, "the impostor writes into a conversation of its own");
    assert_eq!(forged.participants, ["bob"], "only bob, the account, may read it");
    assert_eq!(forged.sender_account, None);
}

#[test]
fn a_guest_has_no_private_history_and_two_guests_keep_none() {
    let mut h = Harness::new();
    let (a, b) = (h.register("ann"), h.register("ben"));
    h.send(a, "PRIVMSG ben :hello");
    assert!(h.take(b).iter().any(|l| l.contains("hello")), "delivered live");
    assert!(h.persisted.is_empty(), "nobody's account: not kept");
    h.send(a, "CHATHISTORY LATEST ben * 10");
    let fail = expect(&h.take(a), "FAIL");
    assert!(fail.params.last().is_some_and(|t| t.contains("log in")), "{fail:?}");
}

#[test]
fn the_owner_logged_in_gets_messages_to_its_nick_as_before() {
    let (mut h, bob) = network();
    let alice = login(&mut h, "alice");
    h.send(bob, "PRIVMSG alice :hi");
    assert!(h.take(alice).iter().any(|l| l.contains("hi")));
    let kept = h.persisted.last().cloned().expect("kept");
    assert_eq!(kept.offline_for, None, "delivered, so not queued");
    h.send(alice, "CHATHISTORY LATEST bob * 10");
    let (_, request) = h.next_request();
    match request {
        Request::History { conversation, .. } => assert_eq!(conversation, kept.conversation),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_invitation_belongs_to_the_connection_not_to_whoever_takes_the_nick() {
    let mut h = Harness::new();
    let op = h.register("olga");
    h.send(op, "JOIN #secret");
    h.send(op, "MODE #secret +i");
    let alice = h.register("alice");
    h.send(op, "INVITE alice #secret");
    h.disconnect(alice, "gone");
    let mallory = h.register("alice");
    h.take(mallory);
    h.send(mallory, "JOIN #secret");
    assert_eq!(expect(&h.take(mallory), "473").params[1], "#secret", "the impostor is not invited");

    // The invited connection itself gets in, whatever nick it took meanwhile.
    let amy = h.register("amy");
    h.send(op, "INVITE amy #secret");
    h.send(amy, "NICK amelia");
    h.send(amy, "JOIN #secret");
    assert!(h.take(amy).iter().any(|l| l.contains(" JOIN ") || l.ends_with("JOIN #secret")), "invited");
}

/// Deletes the account `nick` is logged in to, as NickServ DROP does once storage agrees.
fn drop_account(h: &mut Harness, conn: chinwag_core::ConnId) {
    h.send(conn, "NS DROP correct-password");
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::DropAccount { .. }), "{request:?}");
    h.respond(id, Response::Done(Ok(())));
}

/// A room remembers its founder's account; once that account is deleted, its name is free and
/// whoever registers it next is someone else. They inherit none of the rooms the old account
/// founded: no operator status, no way past the room's +i.
#[test]
fn whoever_registers_a_deleted_accounts_name_inherits_none_of_its_rooms() {
    let mut h = Harness::new();
    h.server.restore(vec!["fay".into()], Vec::new());
    let fay = login(&mut h, "fay");
    let ben = h.register_with_caps("ben", "account-notify");
    h.send(fay, "JOIN #fort,#empty");
    h.send(fay, "MODE #fort +i");
    h.send(fay, "INVITE ben #fort");
    h.send(ben, "JOIN #fort");
    h.send(fay, "PART #fort,#empty");
    h.take(ben);
    h.send(fay, "JOIN #fort");
    assert!(h.take(ben).iter().any(|l| l.contains("JOIN")), "fay is still the founder");
    drop_account(&mut h, fay);
    let seen = h.take(ben);
    assert!(seen.iter().any(|l| l.starts_with(":fay!") && l.ends_with("ACCOUNT *")), "ben is told: {seen:?}");
    let saved = h.saved_rooms.iter().rev().find(|s| s.name == "#fort").expect("saved");
    assert_eq!(saved.founder, None, "#fort has no founder any more");
    assert!(h.deleted_rooms.contains(&"#empty".to_owned()), "an empty founderless room goes");
    h.disconnect(fay, "gone");

    let mallory = h.register("fay");
    h.send(mallory, "REGISTER * * another-password");
    let (id, request) = h.next_request();
    assert!(matches!(request, Request::Register { .. }), "{request:?}");
    h.respond(id, Response::Account(Ok("fay".into())));
    if let Some(pos) = h.requests.iter().position(|(_, r)| matches!(r, Request::Offline { .. })) {
        let (id, _) = h.requests.remove(pos);
        h.respond(id, Response::Messages(Ok(Vec::new())));
    }
    h.take(mallory);
    h.send(mallory, "JOIN #fort");
    assert_eq!(expect(&h.take(mallory), "473").params[1], "#fort", "the new fay is not the founder");
}

#[test]
fn nickserv_drop_and_set_password_cost_what_a_login_costs() {
    let (mut h, bob) = network();
    for _ in 0..20 {
        h.send(bob, "NS DROP wrong-guess");
        while let Some(pos) = h.requests.iter().position(|(_, r)| matches!(r, Request::DropAccount { .. })) {
            let (id, _) = h.requests.remove(pos);
            h.respond(id, Response::Done(Err(chinwag_core::Failure::BadPassword)));
        }
    }
    let checked = h.take(bob).iter().filter(|l| l.contains("Invalid account name or password")).count();
    assert!(checked <= 6, "a burst of DROP guesses runs at most a login's share of checks at once, ran {checked}");
    assert!(checked >= 1);
}
