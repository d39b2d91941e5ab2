//! End-to-end encryption in `chinwag chat`: two scriptable clients logged in to their accounts
//! through the real server exchange private messages that arrive marked `[e2e]`, the server's
//! database never holds their text (a message sent with `/msg --clear` is, as a control), and
//! `/verify` shows the same safety number on both sides; a contact's new device brings a loud
//! warning and gets nothing until `/trust`.

mod support;

use std::path::Path;

use support::chat::ChatProcess;
use support::process::ServerProcess;

const PASSWORD: &str = "correct-horse-battery";

fn contains(path: &Path, needle: &str) -> bool {
    std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

/// Registers `name` in a first session, then starts it logged in with `--account`.
fn logged_in(name: &str, home: &Path, server: &ServerProcess) -> ChatProcess {
    let addr = server.tls[0].to_string();
    let mut first = ChatProcess::start(name, home, &[&addr, "--nick", name, "--accept-new-cert"], &[]);
    first.expect(&["you are", name]);
    first.type_line(&format!("/register {name} {PASSWORD}"));
    first.expect(&["logged in as", name]);
    assert!(first.finish().success());
    let mut chat =
        ChatProcess::start(name, home, &[&addr, "--nick", name, "--account", name], &[("CHINWAG_PASSWORD", PASSWORD)]);
    chat.expect(&["end-to-end encryption on"]);
    chat.expect(&["you are", name]);
    chat
}

/// The safety number `/verify` printed.
fn safety_number(chat: &mut ChatProcess, with: &str) -> String {
    chat.type_line(&format!("/verify {with}"));
    let line = chat.expect(&["safety number with", with]);
    let number = line.split_once(": ").map(|(_, r)| r).unwrap_or_default();
    number.split(" (").next().unwrap_or_default().trim().to_owned()
}

#[test]
fn private_messages_are_encrypted_end_to_end_and_safety_numbers_match() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data, &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let mut bob = logged_in("bob", &dir.path().join("bob"), &server);
    let mut alice = logged_in("alice", &dir.path().join("alice"), &server);

    let secret = "the-eagle-lands-at-dawn";
    alice.type_line(&format!("/msg bob {secret}"));
    bob.expect(&["[alice] <alice> [e2e]", secret]);
    alice.expect(&["[bob] <alice> [e2e]", secret]);
    let answer = "understood-at-dawn";
    bob.type_line(&format!("/msg alice {answer}"));
    alice.expect(&["[bob] <bob> [e2e]", answer]);

    let on_alice = safety_number(&mut alice, "bob");
    let on_bob = safety_number(&mut bob, "alice");
    assert!(on_alice.len() >= 20, "not a safety number: {on_alice:?}");
    assert_eq!(on_alice, on_bob, "both sides must see the same safety number");
    alice.type_line("/verify bob confirm");
    alice.expect(&["bob is verified"]);

    // In clear only when asked, and then without the marker: the control for the search below.
    let control = "in-clear-on-purpose";
    alice.type_line(&format!("/msg --clear bob {control}"));
    let seen = bob.expect(&["[alice] <alice>", control]);
    assert!(!seen.contains("[e2e]"), "{seen}");

    // bob logs in on a second device: alice is warned, and nothing reaches it until she
    // accepts it.
    let addr = server.tls[0].to_string();
    let mut laptop = ChatProcess::start(
        "bob",
        &dir.path().join("bob-laptop"),
        &[&addr, "--nick", "bob_laptop", "--account", "bob", "--accept-new-cert"],
        &[("CHINWAG_PASSWORD", PASSWORD)],
    );
    laptop.expect(&["end-to-end encryption on"]);
    laptop.expect(&["you are bob_laptop"]);
    laptop.type_line("/users");
    laptop.expect(&["online:", "bob_laptop"]);
    let held = "held-back-from-the-new-device";
    alice.type_line(&format!("/msg bob {held}"));
    alice.expect(&["WARNING", "bob", "NEW device"]);
    alice.expect(&["Not sent to bob's unaccepted device"]);
    bob.expect(&["[alice] <alice> [e2e]", held]);
    alice.type_line("/trust bob");
    alice.expect(&["accepted bob's device"]);
    let after = "now-for-both-devices";
    alice.type_line(&format!("/msg bob {after}"));
    bob.expect(&["[alice] <alice> [e2e]", after]);
    laptop.expect(&["<alice> [e2e]", after]);
    assert!(!laptop.has_seen(&[held]), "the unaccepted device got a message");

    assert!(alice.finish().success());
    assert!(bob.finish().success());
    assert!(laptop.finish().success());
    drop(server);
    let (db, wal) = (data.join("chinwag.db"), data.join("chinwag.db-wal"));
    assert!(contains(&db, control) || contains(&wal, control), "the control is stored, so the search works");
    for text in [secret, answer, held, after] {
        assert!(!contains(&db, text) && !contains(&wal, text), "{text:?} reached the server's database in clear");
    }
}
