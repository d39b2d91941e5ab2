//! End-to-end encrypted private messages between scripted clients built on `chinwag-e2e`,
//! through the real `chinwag serve` binary over sockets and SQLite.
//!
//! Covered: online and offline delivery with two devices on one side and copies to the
//! sender's own other device; a first message to someone whose device is offline (its one-time
//! key comes from the server); tampered, truncated and replayed ciphertext rejected with a
//! warning (a message delivered again as it was is dropped silently); new and changed device keys flagged and held until accepted; equal safety numbers on
//! both sides; one-time keys handed out once across claimers, and a refill when the pool runs
//! low; and the server's database, its write-ahead log and its logs never holding a plaintext.

mod support;

use std::fs;
use std::path::PathBuf;

use chinwag_e2e::{wire, Device, Trust, Warning};
use support::e2e::{file_contains, files_under, Peer, Server};
use support::nonce;

#[test]
fn encrypted_messages_reach_every_device_online_and_offline_and_the_server_never_holds_the_plaintext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    fs::create_dir_all(&data).expect("data dir");
    let server = Server::start(&data);
    let id = nonce();
    let secrets: Vec<String> = (1..=6).map(|i| format!("secret-{i}-{id}")).collect();

    let mut alice = Peer::connect(&server, "alice", "alice", &dir.path().join("alice.dev"), "alice-laptop", true);
    let mut laptop = Peer::connect(&server, "bob", "bob", &dir.path().join("bob-laptop.dev"), "laptop", true);
    let mut phone = Peer::connect(&server, "bob_phone", "bob", &dir.path().join("bob-phone.dev"), "phone", false);

    // Online: one copy for each of bob's devices, whatever nick each uses.
    alice.send("bob", &secrets[0], 2);
    for bob in [&mut laptop, &mut phone] {
        let got = bob.wait_messages(1).clone();
        assert_eq!(got.text, secrets[0]);
        assert_eq!(
            (got.from_account.as_str(), got.from_device.as_str(), got.sent_by_me),
            ("alice", "alice-laptop", false)
        );
    }
    assert!(alice.sent[0].contains(wire::EXPLANATION), "a plain client sees the explanation: {}", alice.sent[0]);
    assert!(!alice.sent.iter().any(|l| l.contains(&secrets[0])), "the lines on the wire hold no plaintext");

    // The phone answers: alice gets it, and the laptop gets a copy of what its account sent.
    // The phone is new to the laptop, which says so loudly and holds its copies until accepted.
    phone.send("alice", &secrets[1], 2);
    assert_eq!(alice.wait_messages(1).text, secrets[1]);
    let copy = laptop.wait_messages(2).clone();
    assert_eq!((copy.text.as_str(), copy.sent_by_me, copy.peer.as_str()), (secrets[1].as_str(), true, "alice"));
    let warning = laptop.wait_warnings(1).clone();
    assert_eq!(warning, Warning::NewDevice { account: "bob".into(), device: "phone".into() });
    assert!(warning.to_string().contains("NEW device phone"), "{warning}");
    assert!(laptop.device.accept_device("bob", "phone"));
    assert_eq!(laptop.device.device_trust("bob", "phone"), Some(Trust::Trusted));

    // Offline: alice leaves; bob's laptop writes; alice comes back (her device reopened from
    // its file) and the message waiting for her decrypts with the ratchet where it was.
    let alice_path = alice.quit();
    laptop.send("alice", &secrets[2], 2);
    let mut alice = Peer::connect(&server, "alice", "alice", &alice_path, "alice-laptop", false);
    assert_eq!(alice.wait_messages(1).text, secrets[2]);

    // A first message to someone whose only device is offline: its one-time key is on the
    // server, and the pre-key message waits in offline delivery.
    let carol_path =
        Peer::connect(&server, "carol", "carol", &dir.path().join("carol.dev"), "carol-laptop", true).quit();
    alice.send("carol", &secrets[3], 1);
    let mut carol = Peer::connect(&server, "carol", "carol", &carol_path, "carol-laptop", false);
    let got = carol.wait_messages(1).clone();
    assert_eq!((got.text.as_str(), got.from_account.as_str()), (secrets[3].as_str(), "alice"));
    carol.send("alice", &secrets[4], 1);
    assert_eq!(alice.wait_messages(2).text, secrets[4], "and the conversation goes on both ways");
    assert!(alice.warnings.is_empty() && carol.warnings.is_empty(), "{:?} {:?}", alice.warnings, carol.warnings);

    // Both of bob's devices away: each copy waits for its own device, whichever comes back
    // first (offline delivery is per device for encrypted messages).
    let (laptop_path, phone_path) = (laptop.quit(), phone.quit());
    alice.send("bob", &secrets[5], 2);
    let mut phone = Peer::connect(&server, "bob_phone", "bob", &phone_path, "phone", false);
    assert_eq!(phone.wait_messages(1).text, secrets[5]);
    let mut laptop = Peer::connect(&server, "bob", "bob", &laptop_path, "laptop", false);
    assert_eq!(laptop.wait_messages(1).text, secrets[5]);
    assert_eq!((laptop.messages.len(), phone.messages.len()), (1, 1), "each got its copy once");

    // A message in clear, as a control: the search below does find what the server stores.
    let control = format!("in-clear-control-{id}");
    alice.irc.send(&format!("PRIVMSG bob :{control}"));
    laptop.irc.expect("the control message", |m| m.params.last().is_some_and(|t| *t == control));

    for peer in [alice, laptop, phone, carol] {
        peer.quit();
    }
    let (data, logs) = server.stop();
    let db = data.join("chinwag.db");
    let wal = data.join("chinwag.db-wal");
    assert!(
        file_contains(&db, &control) || file_contains(&wal, &control),
        "the control message is stored in clear, so the search works"
    );
    assert!(file_contains(&db, wire::TAG) || file_contains(&wal, wire::TAG), "the ciphertext is stored");
    // Everything the server wrote: the database, its write-ahead log, its log files (debug
    // level) and its audit log, and what it printed.
    let files = files_under(&data);
    let log_files: Vec<&PathBuf> = files.iter().filter(|f| f.to_string_lossy().contains("log")).collect();
    assert!(log_files.len() >= 3, "log files to search: {files:?}");
    assert!(fs::metadata(&logs[1]).is_ok_and(|m| m.len() > 0), "the server logged something");
    assert!(files.iter().any(|f| file_contains(f, "alice")), "the logs name who logged in: {files:?}");
    for secret in &secrets {
        for file in &files {
            assert!(!file_contains(file, secret), "{} contains the plaintext {secret}", file.display());
        }
    }
}

/// The tag value of an encrypted line and the rest of it.
fn split_tag(line: &str) -> (&str, &str) {
    let tag = line.strip_prefix(&format!("@{}=", wire::TAG)).expect("an encrypted line");
    tag.split_once(' ').expect("a tag and a command")
}

#[test]
fn tampered_truncated_and_replayed_ciphertext_is_rejected_and_key_changes_are_held() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    fs::create_dir_all(&data).expect("data dir");
    let server = Server::start(&data);
    let alice_path = dir.path().join("alice.dev");
    let bob_path = dir.path().join("bob.dev");
    let mut alice = Peer::connect(&server, "alice", "alice", &alice_path, "alice-laptop", true);
    let mut bob = Peer::connect(&server, "bob", "bob", &bob_path, "laptop", true);

    alice.send("bob", "first", 1);
    assert_eq!(bob.wait_messages(1).text, "first");
    let first = alice.sent[0].clone();

    // One character of the ciphertext changed: rejected, and the real one still decrypts.
    let second = alice.seal("bob", "second");
    let (tag, rest) = split_tag(&second);
    let flip = tag.len() - 20;
    let replacement = if &tag[flip..=flip] == "A" { "B" } else { "A" };
    alice.irc.send(&format!("@{}={}{replacement}{} {rest}", wire::TAG, &tag[..flip], &tag[flip + 1..]));
    let rejected = bob.wait_warnings(1).clone();
    assert!(
        matches!(&rejected, Warning::Rejected { from_device, .. } if from_device == "alice-laptop"),
        "{rejected:?}"
    );
    assert!(rejected.to_string().contains("tampered"), "{rejected}");
    alice.irc.send(&second);
    assert_eq!(bob.wait_messages(2).text, "second");

    // Cut in half: rejected.
    let third = alice.seal("bob", "third");
    let (tag, rest) = split_tag(&third);
    alice.irc.send(&format!("@{}={} {rest}", wire::TAG, &tag[..tag.len() - tag.len() / 4]));
    assert!(matches!(bob.wait_warnings(2), Warning::Rejected { .. }), "{:?}", bob.warnings);
    alice.irc.send(&third);
    assert_eq!(bob.wait_messages(3).text, "third");

    // Delivered again as it was (as history and a re-sent offline page do): already seen, so
    // dropped without a word. Under a message id never seen: a replay, refused with a warning.
    // The server relays both in order, so the warning comes after the silent drop.
    alice.irc.send(&first);
    let (tag, rest) = split_tag(&first);
    let mut fields: Vec<&str> = tag.splitn(9, ',').collect();
    fields[4] = "0123456789abcdef01234567";
    alice.irc.send(&format!("@{}={} {rest}", wire::TAG, fields.join(",")));
    assert!(matches!(bob.wait_warnings(3), Warning::Replayed { .. }), "{:?}", bob.warnings);
    assert_eq!(bob.warnings.len(), 3, "the message seen before gave no warning: {:?}", bob.warnings);
    assert_eq!(bob.messages.len(), 3, "nothing was shown twice or altered");

    // Both sides compute the same safety number; verifying it is remembered.
    bob.send("alice", "hello back", 1);
    alice.wait_messages(1);
    for peer in [&mut alice, &mut bob] {
        let other = if peer.nick == "alice" { "bob" } else { "alice" };
        let events = peer.device.refresh_devices(other);
        peer.apply(events);
        peer.settle_lists();
    }
    let number = alice.device.safety_number("bob").expect("alice knows bob's devices");
    assert_eq!(Some(number.clone()), bob.device.safety_number("alice"), "the same on both sides");
    alice.device.verify("bob").expect("verify");
    assert_eq!(alice.device.device_trust("bob", "laptop"), Some(Trust::Verified));

    // Bob reinstalls: same device id, new keys. Alice is warned and sends nothing to it until
    // she accepts it; then the new device gets her messages.
    let bob_path = bob.quit();
    fs::remove_file(&bob_path).expect("remove the old device");
    let mut bob = Peer::connect(&server, "bob", "bob", &bob_path, "laptop", false);
    let before = alice.warnings.len();
    let sent_before = alice.sent.len();
    let events = alice.device.send("bob", "bob", "to the changed device").expect("send");
    alice.apply(events);
    alice.pump_until("the message not sent", |p, _| p.warnings.iter().any(|w| matches!(w, Warning::NotSent { .. })));
    let warnings = &alice.warnings[before..];
    assert!(warnings.contains(&Warning::KeyChanged { account: "bob".into(), device: "laptop".into() }), "{warnings:?}");
    assert!(warnings.iter().any(|w| w.to_string().contains("CHANGED")), "{warnings:?}");
    assert_eq!(alice.sent.len(), sent_before, "nothing encrypted to the changed device");
    assert_ne!(alice.device.safety_number("bob"), Some(number), "the safety number changed too");
    assert!(alice.device.accept_device("bob", "laptop"));
    alice.send("bob", "accepted", 1);
    assert_eq!(bob.wait_messages(1).text, "accepted");

    // Verified devices are remembered across restarts of the client.
    let alice_path = alice.quit();
    let reopened = Device::open(&alice_path, support::e2e::PASSPHRASE).expect("reopen");
    assert_eq!(reopened.device_trust("bob", "laptop"), Some(Trust::Trusted), "the accepted new keys");
    assert!(matches!(Device::open(&alice_path, "wrong"), Err(chinwag_e2e::Error::WrongPassphrase(_))));
    drop(bob);
}

#[test]
fn each_one_time_key_is_handed_out_once_and_a_low_pool_is_refilled() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    fs::create_dir_all(&data).expect("data dir");
    let server = Server::start(&data);
    let mut bob = Peer::connect(&server, "bob", "bob", &dir.path().join("bob.dev"), "laptop", true);
    let mut alice = Peer::connect(&server, "alice", "alice", &dir.path().join("alice.dev"), "a1", true);
    let mut carol = Peer::connect(&server, "carol", "carol", &dir.path().join("carol.dev"), "c1", true);

    // Two claimers take turns until bob's pool is nearly empty.
    let claims = chinwag_e2e::TARGET_ONE_TIME_KEYS - 5;
    let mut keys = std::collections::BTreeSet::new();
    for i in 0..claims {
        let claimer = if i % 2 == 0 { &mut alice } else { &mut carol };
        claimer.irc.send("E2E CLAIM bob laptop");
        let key =
            claimer.irc.expect("a claimed key", |m| m.command == "E2E" && m.params.first().is_some_and(|p| p == "KEY"));
        assert_eq!(&key.params[1..4], ["bob", "laptop", "otk"], "{key:?}");
        assert!(keys.insert(key.params[4].clone()), "one-time key {} handed out twice", key.params[4]);
    }
    assert_eq!(keys.len(), claims);

    // Bob's device is asked to top up, does, and the server counts a full pool again.
    bob.pump_until("a refill to a full pool", |p, m| {
        m.command == "E2E" && m.params.first().is_some_and(|c| c == "COUNT") && !p.device.uploading_keys()
    });
    let count = bob.irc.transcript_tail(1);
    let pool: usize = count.trim().rsplit(' ').nth(1).and_then(|n| n.parse().ok()).expect("a count");
    assert!(pool >= chinwag_e2e::TARGET_ONE_TIME_KEYS, "topped up to {pool}: {}", bob.irc.transcript());
    assert!(bob.irc.transcript().contains("E2E REFILL laptop 9"), "{}", bob.irc.transcript());

    // Drained completely, the pool falls back to the fallback key, the same each time.
    let mut fallback = Vec::new();
    for _ in 0..pool + 2 {
        alice.irc.send("E2E CLAIM bob laptop");
        let key =
            alice.irc.expect("a claimed key", |m| m.command == "E2E" && m.params.first().is_some_and(|p| p == "KEY"));
        if key.params[3] == "fallback" {
            fallback.push(key.params[4].clone());
        } else {
            assert!(keys.insert(key.params[4].clone()), "one-time key {} handed out twice", key.params[4]);
        }
    }
    assert_eq!(fallback.len(), 2, "after the pool, the fallback key; bob saw:\n{}", bob.irc.transcript());
    assert_eq!(fallback[0], fallback[1]);
}

#[test]
fn a_plain_irc_client_sees_a_short_explanation_instead_of_ciphertext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    fs::create_dir_all(&data).expect("data dir");
    let server = Server::start(&data);
    let mut alice = Peer::connect(&server, "alice", "alice", &dir.path().join("alice.dev"), "a1", true);

    // Erin uses a plain IRC client under her account's nick, without message-tags, and chinwag
    // under another nick.
    let mut plain = support::client::PlainClient::plain(server.addr, "erin-irssi");
    plain.register("erin");
    plain.send(&format!("REGISTER * * {}", support::e2e::PASSWORD));
    plain.expect("logged in (900)", |m| m.command == "900");
    let mut device = Peer::connect(&server, "erin_chinwag", "erin", &dir.path().join("erin.dev"), "e1", false);

    alice.send("erin", "for erin's eyes only", 1);
    assert_eq!(device.wait_messages(1).text, "for erin's eyes only");
    let seen = plain.expect("the encrypted message", |m| m.command == "PRIVMSG");
    assert_eq!(seen.params, ["erin", wire::EXPLANATION], "one readable line");
    assert!(seen.tags.is_empty(), "no ciphertext for a client that did not ask for tags: {seen:?}");
    assert!(!plain.transcript().contains("eyes only"));
}
