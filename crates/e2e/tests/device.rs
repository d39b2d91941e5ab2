//! Two devices talking through a hand-played key directory: the library's public API, lines
//! in and lines out, without a server. (The real server is in `crates/chinwag/tests/e2e_messages.rs`.)

use std::path::Path;

use chinwag_e2e::{wire, Device, Error, Event, KdfParams, Trust, Warning, TARGET_ONE_TIME_KEYS};
use chinwag_proto::Message;

fn create(dir: &Path, account: &str, device: &str) -> Device {
    let path = dir.join(format!("{account}-{device}.dev"));
    Device::create(&path, "passphrase", KdfParams::insecure_for_tests(), account, device).expect("create")
}

fn lines(events: &[Event]) -> Vec<String> {
    events.iter().filter_map(|e| if let Event::Line(l) = e { Some(l.clone()) } else { None }).collect()
}

fn parse(line: &str) -> Message {
    Message::parse(line).expect("a line parses")
}

/// What a server would answer to `E2E DEVICES` for one device, from its `E2E DEVICE` line.
fn listing(account: &str, device_line: &str) -> Vec<Message> {
    let p = parse(device_line).params;
    vec![
        parse(&format!(":srv E2E DEVICES {account} 1")),
        parse(&format!(":srv E2E DEVICE {account} {} {} {} {}", p[1], p[2], p[3], p[4])),
    ]
}

/// Publishes `device` and returns its DEVICE line and its uploaded one-time keys (`key:sig`).
fn publish(device: &mut Device) -> (String, Vec<String>) {
    let out = lines(&device.connect());
    let device_line = out[0].clone();
    assert!(out[1].starts_with("E2E DEVICES "), "{out:?}");
    let account = device.account().to_ascii_lowercase();
    for m in listing(&account, &device_line) {
        assert!(device.handle(&m).iter().all(|e| !matches!(e, Event::Warning(_))), "its own list is fine");
    }
    assert!(!device.fetching_devices());
    let id = device.device_id().to_owned();
    let uploads = lines(&device.handle(&parse(&format!(":srv E2E COUNT {id} 0 0"))));
    let otks: Vec<String> =
        uploads.iter().filter(|l| l.starts_with("E2E OTK ")).flat_map(|l| parse(l).params[1..].to_vec()).collect();
    assert_eq!(otks.len(), TARGET_ONE_TIME_KEYS);
    assert!(uploads.iter().all(|l| l.len() + 2 <= 512 - 40), "every upload fits a line: {uploads:?}");
    assert_eq!(uploads.iter().filter(|l| l.starts_with("E2E FALLBACK ")).count(), 1);
    // Counts that answer uploads still in flight do not trigger another upload.
    assert!(lines(&device.handle(&parse(&format!(":srv E2E COUNT {id} 3 1")))).is_empty());
    (device_line, otks)
}

/// Plays the server for `from.send(to)`: lists, a claim from `to_keys`, and returns the
/// encrypted lines as `to` would receive them (with source and account tag).
fn exchange(
    from: &mut Device,
    from_line: &str,
    to: &str,
    to_line: &str,
    to_keys: &mut Vec<String>,
    text: &str,
) -> Vec<Message> {
    let mut out = lines(&from.send(to, to, text).expect("send"));
    let mut encrypted = Vec::new();
    for _ in 0..10 {
        let mut next = Vec::new();
        for line in out.drain(..) {
            if line.starts_with('@') {
                let sender = from.account().to_owned();
                let tagged = line.replacen('@', &format!("@account={sender};"), 1);
                let (tags, rest) = tagged.split_once(' ').expect("tags");
                encrypted.push(parse(&format!("{tags} :{sender}!u@h {rest}")));
                continue;
            }
            let m = parse(&line);
            let replies = match (m.params[0].as_str(), m.params[1].as_str()) {
                ("DEVICES", who) if who == to => listing(to, to_line),
                ("DEVICES", _) => listing(from.account(), from_line),
                ("CLAIM", _) => {
                    let (key, sig) =
                        to_keys.remove(0).split_once(':').map(|(k, s)| (k.to_owned(), s.to_owned())).expect("k:s");
                    vec![parse(&format!(":srv E2E KEY {to} {} otk {key} {sig}", m.params[2]))]
                }
                _ => vec![],
            };
            for reply in replies {
                next.extend(lines(&from.handle(&reply)));
            }
        }
        if next.is_empty() {
            break;
        }
        out = next;
    }
    encrypted
}

/// Hands `events` to the test: device list requests among them are answered from `directory`
/// (account, DEVICE line); the rest is returned.
fn answer_lists(device: &mut Device, events: Vec<Event>, directory: &[(&str, &str)]) -> Vec<Event> {
    let mut rest = Vec::new();
    for e in events {
        match &e {
            Event::Line(l) if l.starts_with("E2E DEVICES ") => {
                let who = l["E2E DEVICES ".len()..].to_owned();
                let line = directory.iter().find(|(a, _)| *a == who).map(|(_, l)| *l).expect("a known account");
                for m in listing(&who, line) {
                    let more = device.handle(&m);
                    rest.extend(answer_lists(device, more, directory));
                }
            }
            _ => rest.push(e),
        }
    }
    rest
}

#[test]
fn two_devices_exchange_messages_through_a_played_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut alice = create(dir.path(), "alice", "a1");
    let mut bob = create(dir.path(), "Bob", "b1");
    let (alice_line, mut alice_keys) = publish(&mut alice);
    let (bob_line, mut bob_keys) = publish(&mut bob);

    let long = "long message ".repeat(700);
    for text in ["hello bob", long.as_str()] {
        let wire_lines = exchange(&mut alice, &alice_line, "bob", &bob_line, &mut bob_keys, text);
        assert!(!wire_lines.is_empty());
        assert!(wire_lines.iter().all(|m| m.params[1] == wire::EXPLANATION && m.to_line().len() < 4094 + 512));
        let mut got = Vec::new();
        for m in &wire_lines {
            let events = bob.handle(m);
            got.extend(answer_lists(&mut bob, events, &[("alice", &alice_line), ("bob", &bob_line)]));
        }
        let received: Vec<&str> =
            got.iter().filter_map(|e| if let Event::Message(r) = e { Some(r.text.as_str()) } else { None }).collect();
        assert_eq!(received, [text], "decrypted once, parts put together");
    }
    assert_eq!(bob_keys.len(), TARGET_ONE_TIME_KEYS - 1, "one claim: the session ratchets afterwards");

    // Bob answers over the session alice started; alice decrypts.
    let answer = exchange(&mut bob, &bob_line, "alice", &alice_line, &mut alice_keys, "hi alice");
    let got: Vec<Event> = answer.iter().flat_map(|m| alice.handle(m)).collect();
    assert!(
        got.iter().any(|e| matches!(e, Event::Message(r) if r.text == "hi alice" && r.from_account == "bob")),
        "{got:?}"
    );
    assert_eq!(alice_keys.len(), TARGET_ONE_TIME_KEYS, "bob needed no key of alice's");

    // Reopened from its file, bob's device still decrypts the next message.
    let path = dir.path().join("Bob-b1.dev");
    drop(bob);
    let mut bob = Device::open(&path, "passphrase").expect("reopen");
    let next = exchange(&mut alice, &alice_line, "bob", &bob_line, &mut bob_keys, "after a restart");
    let got: Vec<Event> = next.iter().flat_map(|m| bob.handle(m)).collect();
    assert!(got.iter().any(|e| matches!(e, Event::Message(r) if r.text == "after a restart")), "{got:?}");
    assert!(matches!(Device::open(&path, "wrong"), Err(Error::WrongPassphrase(_))));

    assert_eq!(alice.has_devices("Bob"), Some(true));
    assert_eq!(alice.has_devices("carol"), None, "never asked");

    // Both compute the same safety number; a verification survives a restart.
    let number = alice.safety_number("bob").expect("alice knows bob's device");
    assert_eq!(bob.safety_number("ALICE"), Some(number));
    alice.verify("bob").expect("verify");
    let alice_path = dir.path().join("alice-a1.dev");
    drop(alice);
    let alice = Device::open(&alice_path, "passphrase").expect("reopen");
    assert_eq!(alice.device_trust("bob", "b1"), Some(Trust::Verified));
    assert!(alice.trust().verified("bob"));
}

#[test]
fn hostile_lines_give_warnings_never_panics() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut bob = create(dir.path(), "bob", "b1");
    let tag = wire::TAG;
    let cases = [
        format!("@account=alice;{tag}=garbage :alice!u@h PRIVMSG bob :x"),
        format!("@account=alice;{tag}=1,bob,b1,a1,id,1,1,0,AAAA :alice!u@h PRIVMSG bob :x"),
        format!("@account=alice;{tag}=1,bob,b1,a1,id2,1,1,1,AAAA :alice!u@h PRIVMSG bob :x"),
        format!("{tag}=1,bob,b1,a1,id3,1,1,0,AAAA :alice!u@h PRIVMSG bob :x").replacen("", "@", 1),
        format!("@account=alice;{tag}=1,bob,b1,a1,id4,1,2,0,AAAA :alice!u@h PRIVMSG bob :x"),
        format!("@account=alice;{tag}=1,bob,b1,a1,id4,1,2,1,BBBB :alice!u@h PRIVMSG bob :x"),
        ":srv E2E DEVICE bob b9 x y z".to_owned(),
        ":srv E2E KEY bob b9 otk x y".to_owned(),
        ":srv E2E DEVICES bob 99999999999999999999".to_owned(),
        ":srv E2E COUNT b1 -5 x".to_owned(),
    ];
    let mut warnings = 0;
    for line in &cases {
        for e in bob.handle(&parse(line)) {
            if let Event::Warning(w) = e {
                assert!(!w.to_string().is_empty());
                warnings += 1;
            }
        }
    }
    assert!(warnings >= 5, "each bad ciphertext is reported: {warnings}");
    // Not for this device: nothing at all.
    let other = format!("@account=alice;{tag}=1,bob,b2,a1,id,1,1,0,AAAA :alice!u@h PRIVMSG bob :x");
    assert!(bob.handle(&parse(&other)).is_empty());
    assert!(matches!(
        Device::create(&dir.path().join("x"), "p", KdfParams::insecure_for_tests(), "bob", "bad/id"),
        Err(Error::InvalidDeviceId(_))
    ));
    let too_long = "x".repeat(chinwag_e2e::MAX_TEXT_LEN + 1);
    assert!(matches!(bob.send("alice", "alice", &too_long), Err(Error::TooLong(_))));
    let _ = Warning::NotSaved(String::new());
}

/// Replaces field `index` of the envelope tag of an encrypted line.
fn with_field(m: &Message, index: usize, value: &str) -> Message {
    let line = m.to_line();
    let start = line.find(&format!("{}=", wire::TAG)).expect("the tag") + wire::TAG.len() + 1;
    let end = line[start..].find([';', ' ']).map_or(line.len(), |e| start + e);
    let mut fields: Vec<&str> = line[start..end].split(',').collect();
    fields[index] = value;
    parse(&format!("{}{}{}", &line[..start], fields.join(","), &line[end..]))
}

#[test]
fn a_message_delivered_again_is_dropped_silently_and_a_real_replay_still_warns() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut alice = create(dir.path(), "alice", "a1");
    let mut bob = create(dir.path(), "bob", "b1");
    let (alice_line, _) = publish(&mut alice);
    let (bob_line, mut bob_keys) = publish(&mut bob);
    let directory = [("alice", alice_line.as_str()), ("bob", bob_line.as_str())];
    let texts = |bob: &mut Device, lines: &[Message]| -> (Vec<String>, Vec<Warning>) {
        let mut got = Vec::new();
        for m in lines {
            let events = bob.handle(m);
            got.extend(answer_lists(bob, events, &directory));
        }
        let texts = got.iter().filter_map(|e| if let Event::Message(r) = e { Some(r.text.clone()) } else { None });
        let warnings = got.iter().filter_map(|e| if let Event::Warning(w) = e { Some(w.clone()) } else { None });
        (texts.collect(), warnings.collect())
    };
    let first = exchange(&mut alice, &alice_line, "bob", &bob_line, &mut bob_keys, "first");
    let long = exchange(&mut alice, &alice_line, "bob", &bob_line, &mut bob_keys, &"in parts ".repeat(700));
    assert!(long.len() > 1, "the long one is split");
    assert_eq!(texts(&mut bob, &first).0, ["first"]);
    assert_eq!(texts(&mut bob, &long).0.len(), 1);

    // Delivered again (history, an offline page sent again), also after a restart: nothing
    // shown twice, and no warning.
    assert_eq!(texts(&mut bob, &first), (vec![], vec![]));
    let path = dir.path().join("bob-b1.dev");
    drop(bob);
    let mut bob = Device::open(&path, "passphrase").expect("reopen");
    assert_eq!(texts(&mut bob, &long), (vec![], vec![]), "a split message too");
    assert_eq!(texts(&mut bob, &first), (vec![], vec![]));

    // The same ciphertext under a message id never seen: a replay, and said so.
    let (shown, warnings) = texts(&mut bob, &[with_field(&first[0], 4, "0123456789abcdef01234567")]);
    assert!(shown.is_empty());
    assert!(matches!(warnings.as_slice(), [Warning::Replayed { .. }]), "{warnings:?}");
    // Another ciphertext under an id that was seen is not the message seen: checked, refused.
    let (shown, warnings) = texts(&mut bob, &[with_field(&first[0], 8, "AAAA")]);
    assert!(shown.is_empty());
    assert!(matches!(warnings.as_slice(), [Warning::Rejected { .. }]), "{warnings:?}");

    // The archive opens with the device that sealed it, and with no other.
    let archive_path = dir.path().join("bob.archive");
    let (mut archive, warning) = bob.open_archive(&archive_path);
    assert!(warning.is_none());
    let kept = chinwag_e2e::Archived {
        peer: "alice".into(),
        from: "alice".into(),
        sent_by_me: false,
        text: "first".into(),
        time: "2026-01-01T00:00:00.000Z".into(),
        msgid: None,
    };
    archive.record(kept.clone()).expect("save");
    drop(bob);
    let bob = Device::open(&path, "passphrase").expect("reopen");
    let (archive, warning) = bob.open_archive(&archive_path);
    assert!(warning.is_none());
    assert_eq!(archive.conversation("ALICE", None, 10), [(0, &kept)]);
    let (other, warning) = alice.open_archive(&archive_path);
    assert!(other.is_empty());
    assert!(matches!(warning, Some(Warning::ArchiveSetAside { outcome: Ok(_), .. })), "{warning:?}");
}
