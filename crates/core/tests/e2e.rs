//! The end-to-end encryption key directory (`E2E`) and the routing of encrypted private
//! messages, as the core sees them: lines in, requests out, answers in, lines out.

mod support;

use chinwag_core::keys::{Claimed, DeviceKeys, KeyAnswer, KeyCounts, KeyRequest, Published, SignedKey};
use chinwag_core::{ConnId, Request, Response};
use support::{expect, parsed, Harness};

const CURVE: &str = "Gc0elC7SjBwYRNmOeEJJaFWWwBdjhAm9FbVD0M2Hsic";
const ED: &str = "Kr6R2yuPMnn6kp5SDmL1XHNY5kJnXDhRrmMp+5lRHko";
const SIG: &str = "SIGfQ0TBsQbZf9yfI1tNkpeW1yBTGuFrgUw4yuQk7GUvMn6HIvHgrx1DHVxGrC1x6cbvS2HpZIz1h4Zs6Xbe0AA";

/// A logged-in client with message-tags whose connection published `device`.
fn device(h: &mut Harness, nick: &str, account: &str, device: &str) -> ConnId {
    let c = h.register_with_caps(nick, "message-tags chinwag.dev/e2e");
    h.login(c, account);
    h.send(c, &format!("E2E DEVICE {device} {CURVE} {ED} {SIG}"));
    let (id, req) = h.next_request();
    let expected =
        DeviceKeys { device: device.into(), curve25519: CURVE.into(), ed25519: ED.into(), signature: SIG.into() };
    assert_eq!(req, Request::Keys(KeyRequest::PublishDevice { account: account.into(), device: expected }));
    h.respond(id, Response::Keys(Ok(KeyAnswer::Published(Published::New, KeyCounts::default()))));
    let count = expect(&h.take(c), "E2E");
    assert_eq!(count.params, ["COUNT", device, "0", "0"]);
    // Then what waited for the device while it was away.
    let (id, req) = h.next_request();
    assert_eq!(req, Request::Offline { account: format!("{account}/{}", device.to_ascii_lowercase()), limit: 100 });
    h.respond(id, Response::Messages(Ok(vec![])));
    c
}

fn key(k: &str) -> SignedKey {
    SignedKey { key: k.into(), signature: format!("{k}sig") }
}

#[test]
fn the_capability_is_advertised_and_keys_need_an_account() {
    let mut h = Harness::new();
    let c = h.connect();
    h.send(c, "CAP LS 302");
    let ls = expect(&h.take(c), "CAP");
    assert!(ls.params.last().is_some_and(|l| l.split(' ').any(|cap| cap == "chinwag.dev/e2e")), "{ls:?}");
    let guest = h.register("guest");
    for line in ["E2E DEVICES alice", &format!("E2E DEVICE laptop {CURVE} {ED} {SIG}"), "E2E CLAIM alice laptop"] {
        h.send(guest, line);
        let fail = expect(&h.take(guest), "FAIL");
        assert_eq!(&fail.params[..2], ["E2E", "ACCOUNT_REQUIRED"], "{line}");
    }
    assert!(h.requests.is_empty(), "nothing reaches storage without an account");
}

#[test]
fn a_device_uploads_keys_and_a_claim_hands_one_out_and_asks_for_a_refill() {
    let mut h = Harness::new();
    let alice = device(&mut h, "alice", "alice", "laptop");
    h.send(alice, "E2E OTK AAAA:AAAAsig BBBB:BBBBsig");
    let (id, req) = h.next_request();
    let expected = KeyRequest::AddOneTimeKeys {
        account: "alice".into(),
        device: "laptop".into(),
        keys: vec![key("AAAA"), key("BBBB")],
    };
    assert_eq!(req, Request::Keys(expected));
    h.respond(id, Response::Keys(Ok(KeyAnswer::Counts(Some(KeyCounts { one_time_keys: 2, fallback: false })))));
    assert_eq!(expect(&h.take(alice), "E2E").params, ["COUNT", "laptop", "2", "0"]);
    h.send(alice, "E2E FALLBACK FFFF:FFFFsig");
    let (id, req) = h.next_request();
    assert_eq!(
        req,
        Request::Keys(KeyRequest::SetFallback { account: "alice".into(), device: "laptop".into(), key: key("FFFF") })
    );
    h.respond(id, Response::Keys(Ok(KeyAnswer::Counts(Some(KeyCounts { one_time_keys: 2, fallback: true })))));
    assert_eq!(expect(&h.take(alice), "E2E").params, ["COUNT", "laptop", "2", "1"]);

    let bob = h.register("bob");
    h.login(bob, "bob");
    h.send(bob, "E2E DEVICES Alice");
    let (id, req) = h.next_request();
    assert_eq!(req, Request::Keys(KeyRequest::Devices { account: "Alice".into() }));
    let listed =
        DeviceKeys { device: "laptop".into(), curve25519: CURVE.into(), ed25519: ED.into(), signature: SIG.into() };
    h.respond(id, Response::Keys(Ok(KeyAnswer::Devices(vec![listed]))));
    let lines = parsed(&h.take(bob));
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(lines[0].params, ["DEVICES", "Alice", "1"]);
    assert_eq!(lines[1].params, ["DEVICE", "Alice", "laptop", CURVE, ED, SIG]);

    h.send(bob, "E2E CLAIM alice laptop,phone");
    let (id, req) = h.next_request();
    assert_eq!(
        req,
        Request::Keys(KeyRequest::Claim { account: "alice".into(), devices: vec!["laptop".into(), "phone".into()] })
    );
    let claimed = Claimed { key: key("AAAA"), fallback: false, remaining: 1 };
    h.respond(
        id,
        Response::Keys(Ok(KeyAnswer::Claimed(vec![("laptop".into(), Some(claimed)), ("phone".into(), None)]))),
    );
    let lines = parsed(&h.take(bob));
    assert_eq!(lines[0].params, ["KEY", "alice", "laptop", "otk", "AAAA", "AAAAsig"]);
    assert_eq!(lines[1].params, ["KEY", "alice", "phone", "none"]);
    let refill = expect(&h.take(alice), "E2E");
    assert_eq!(refill.params, ["REFILL", "laptop", "1"], "the device whose pool ran low is asked to top it up");
}

#[test]
fn malformed_e2e_commands_get_a_fail_and_reach_no_storage() {
    let mut h = Harness::new();
    let c = h.register("carol");
    h.login(c, "carol");
    let cases = [
        ("E2E OTK AAAA:AAAA", "NO_DEVICE"),
        ("E2E DEVICE lap/top AAAA AAAA AAAA", "INVALID_DEVICE"),
        ("E2E DEVICE laptop AAAA AA=A AAAA", "INVALID_KEY"),
        ("E2E DEVICE laptop AAAA", "NEED_MORE_PARAMS"),
        ("E2E CLAIM bob a,b,c,d,e,f,g,h,i,j,k", "INVALID_PARAMS"),
        ("E2E CLAIM b*b laptop", "INVALID_PARAMS"),
        ("E2E FROB", "INVALID_PARAMS"),
    ];
    for (line, code) in cases {
        h.send(c, line);
        let fail = expect(&h.take(c), "FAIL");
        assert_eq!(&fail.params[..2], ["E2E", code], "{line}");
    }
    let carol = device(&mut h, "carol2", "carol", "laptop");
    for line in ["E2E OTK AAAA", "E2E OTK AAAA:BB:CC", "E2E FALLBACK AAAA:AAAA BBBB:BBBB"] {
        h.send(carol, line);
        let fail = expect(&h.take(carol), "FAIL");
        assert_eq!(&fail.params[..2], ["E2E", "INVALID_KEY"], "{line}");
    }
    assert!(h.requests.is_empty());
}

/// The tag of a message for `account`'s `device`.
fn sealed(account: &str, device: &str, target: &str) -> String {
    format!("@+chinwag.dev/e2e=1,{account},{device},alice1,m1,1,1,0,AAAA PRIVMSG {target} :[encrypted message]")
}

#[test]
fn an_encrypted_message_reaches_the_device_it_names_whatever_nick_it_uses() {
    let mut h = Harness::new();
    let alice = device(&mut h, "alice", "alice", "alice1");
    let alice2 = device(&mut h, "alice_", "alice", "alice2");
    let laptop = device(&mut h, "bob", "bob", "laptop");
    let phone = device(&mut h, "bob_", "bob", "phone");
    let carol = device(&mut h, "carol", "carol", "laptop");

    h.send(alice, &sealed("bob", "phone", "bob"));
    let to_phone = expect(&h.take(phone), "PRIVMSG");
    assert_eq!(to_phone.params, ["bob", "[encrypted message]"]);
    assert!(to_phone.tag("+chinwag.dev/e2e").is_some_and(|v| v.starts_with("1,bob,phone,")));
    assert_eq!(parsed(&h.take(laptop)).len(), 1, "the nick's holder gets its usual copy, once");

    h.send(alice, &sealed("bob", "laptop", "bob"));
    assert_eq!(parsed(&h.take(laptop)).len(), 1, "once, not twice");
    assert!(h.take(phone).is_empty(), "not the phone's copy");

    // A copy for the sender's own other device goes there too; another account's device never.
    h.send(alice, &sealed("alice", "alice2", "bob"));
    expect(&h.take(alice2), "PRIVMSG");
    h.send(alice, &sealed("carol", "laptop", "bob"));
    assert!(h.take(carol).is_empty(), "a tag cannot redirect a message to a third account");
    assert!(h.take(phone).is_empty());
}

#[test]
fn an_encrypted_message_for_an_offline_nick_is_queued_and_reaches_an_online_device() {
    let mut h = Harness::new();
    h.server.restore(vec!["bob".into()], vec![]);
    let alice = device(&mut h, "alice", "alice", "alice1");
    let phone = device(&mut h, "bob_", "bob", "phone");
    let before = h.persisted.len();
    h.send(alice, &sealed("bob", "phone", "bob"));
    let stored = h.persisted[before].clone();
    assert_eq!(stored.offline_for, None, "the device is here: nothing to queue");
    assert!(stored.tags.contains("+chinwag.dev/e2e=1,bob,phone,"), "the ciphertext is kept with it: {}", stored.tags);
    expect(&h.take(phone), "PRIVMSG");

    // The laptop is away: its copy waits in its own queue, not in the account's.
    h.send(alice, &sealed("bob", "Laptop", "bob"));
    let stored = h.persisted[before + 1].clone();
    assert_eq!(stored.offline_for.as_deref(), Some("bob/laptop"));
    assert!(h.take(phone).is_empty(), "not the phone's copy");

    // When the laptop comes back and publishes its device, it gets what waited for it.
    let laptop = h.register_with_caps("bob", "message-tags chinwag.dev/e2e");
    h.login(laptop, "bob");
    h.send(laptop, &format!("E2E DEVICE Laptop {CURVE} {ED} {SIG}"));
    let (id, _) = h.next_request();
    h.respond(id, Response::Keys(Ok(KeyAnswer::Published(Published::Unchanged, KeyCounts::default()))));
    let (id, req) = h.next_request();
    assert_eq!(req, Request::Offline { account: "bob/laptop".into(), limit: 100 });
    h.respond(id, Response::Messages(Ok(vec![stored.clone()])));
    let lines = h.take(laptop);
    let delivered = expect(&lines, "PRIVMSG");
    assert!(delivered.tag("+chinwag.dev/e2e").is_some_and(|v| v.starts_with("1,bob,Laptop,")), "{lines:?}");
    let cleared = h.cleared_offline.len();
    let ping = expect(&lines, "PING");
    h.send(laptop, &format!("PONG :{}", ping.params[0]));
    assert_eq!(h.cleared_offline.len(), cleared + 1, "cleared once the device read it");
    assert_eq!(h.cleared_offline.last(), Some(&("bob/laptop".to_owned(), stored.msgid.clone())));
}

/// A device that publishes itself again while a page of its waiting messages is unacknowledged
/// gets no second copy of the page: each try would otherwise read a page from storage, send it
/// again and keep one more acknowledgement, without bound, for a command that costs one unit.
#[test]
fn publishing_a_device_again_does_not_send_its_unacknowledged_page_again() {
    let mut h = Harness::new();
    let c = h.register_with_caps("alice", "message-tags chinwag.dev/e2e");
    h.login(c, "alice");
    let waiting = chinwag_core::HistoryItem {
        msgid: "0000000000000000001".into(),
        time_ms: 1_000,
        command: "PRIVMSG".into(),
        sender: "bob!~bob@host".into(),
        sender_account: Some("bob".into()),
        target: "alice".into(),
        text: "ciphertext".into(),
        tags: String::new(),
        conversation: chinwag_core::dm_conversation("alice", "bob"),
        participants: vec!["alice".into(), "bob".into()],
        offline_for: Some("alice/laptop".into()),
    };
    for round in 0..3 {
        h.send(c, &format!("E2E DEVICE laptop {CURVE} {ED} {SIG}"));
        let (id, _) = h.next_request();
        h.respond(id, Response::Keys(Ok(KeyAnswer::Published(Published::Unchanged, KeyCounts::default()))));
        if round == 0 {
            let (id, req) = h.next_request();
            assert!(matches!(req, Request::Offline { .. }), "{req:?}");
            h.respond(id, Response::Messages(Ok(vec![waiting.clone()])));
        }
        assert!(h.requests.is_empty(), "round {round}: the page is not fetched again: {:?}", h.requests);
    }
    let lines = h.take(c);
    assert_eq!(lines.iter().filter(|l| l.contains("ciphertext")).count(), 1, "{lines:?}");
    let ping = parsed(&lines).into_iter().find(|m| m.command == "PING").expect("the page's PING");
    h.send(c, &format!("PONG :{}", ping.params[0]));
    assert_eq!(h.cleared_offline, [("alice/laptop".to_owned(), waiting.msgid.clone())]);
}
