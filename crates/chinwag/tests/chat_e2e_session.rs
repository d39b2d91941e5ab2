//! End-to-end encryption in `chinwag chat` for users who log in inside the client: after an
//! in-session `/register` or `/login` a private message leaves as the E2E envelope (checked on
//! the wire by a scripted `chinwag-e2e` peer), never in clear; decrypted messages are kept in
//! the sealed archive, so that `/history` shows them after a restart; a reconnect whose gap
//! fill replays ciphertext already decrypted shows it once and warns of nothing; a damaged
//! archive is set aside with a warning; and an account name with characters outside
//! `[A-Za-z0-9_-]` gets an escaped file name inside the E2E directory.
//!
//! All against the real `chinwag serve` over loopback sockets and its SQLite store.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chinwag_e2e::wire;
use chinwag_proto::Message;
use support::chat::ChatProcess;
use support::client::{Incoming, PlainClient};
use support::e2e::{files_under, Peer, PASSWORD};
use support::process::ServerProcess;
use support::{nonce, WAIT};

/// Where `chinwag chat` with this `HOME` keeps its device files and archives.
fn e2e_dir(home: &Path) -> PathBuf {
    home.join(".local/share/chinwag/e2e")
}

/// `chinwag chat --plaintext` to the server's loopback listener, not logged in.
fn chat(name: &str, home: &Path, server: &ServerProcess) -> ChatProcess {
    let addr = server.plaintext[0].to_string();
    let mut chat = ChatProcess::start(name, home, &[&addr, "--plaintext", "--nick", name], &[]);
    chat.expect(&["you are", name]);
    chat
}

/// Reads lines for `peer` (answering PINGs, feeding its device) until a PRIVMSG arrives, and
/// returns it as it came over the wire.
fn next_privmsg(peer: &mut Peer) -> Message {
    let deadline = Instant::now() + WAIT;
    loop {
        let msg = match peer.irc.read(deadline) {
            Incoming::Line(m) => m,
            other => peer.irc.fail(&format!("waiting for a PRIVMSG: {other:?}")),
        };
        if msg.command == "PING" {
            let token = msg.params.first().cloned().unwrap_or_default();
            peer.irc.send(&format!("PONG :{token}"));
        }
        let events = peer.device.handle(&msg);
        peer.apply(events);
        if msg.command == "PRIVMSG" {
            return msg;
        }
    }
}

/// The message `peer` gets next must be the E2E envelope (no plaintext on the wire) and
/// decrypt to `text`.
fn expect_encrypted(peer: &mut Peer, from: &str, text: &str) {
    let before = peer.messages.len();
    let line = next_privmsg(peer);
    let raw = line.to_line();
    assert!(line.tag(wire::TAG).is_some(), "not the E2E envelope: {raw}");
    assert!(!raw.contains(text), "the plaintext crossed the wire: {raw}");
    assert_eq!(line.params.get(1).map(String::as_str), Some(wire::EXPLANATION), "{raw}");
    let got = peer.wait_messages(before + 1).clone();
    assert_eq!((got.text.as_str(), got.from_account.as_str()), (text, from));
}

fn contains(path: &Path, needle: &str) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[test]
fn an_in_session_register_or_login_turns_encryption_on() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let mut bob = Peer::connect_to(server.plaintext[0], "bob", "bob", &dir.path().join("bob.dev"), "laptop", true);
    let id = nonce();

    // /register: alice was never logged in at the start, and her archive file is garbage
    // (left by a crash of something else): it is set aside, loudly, and a new one started.
    let alice_home = dir.path().join("alice");
    fs::create_dir_all(e2e_dir(&alice_home)).expect("e2e dir");
    let garbage = b"this is not an archive";
    fs::write(e2e_dir(&alice_home).join("alice.archive"), garbage).expect("write");
    let mut alice = chat("alice", &alice_home, &server);
    alice.type_line(&format!("/register alice {PASSWORD}"));
    alice.expect(&["logged in as alice"]);
    alice.expect(&["WARNING", "message archive", "set aside", "alice.archive.damaged"]);
    alice.expect(&["end-to-end encryption on"]);
    let secret = format!("registered-and-encrypted-{id}");
    alice.type_line(&format!("/msg bob {secret}"));
    expect_encrypted(&mut bob, "alice", &secret);
    alice.expect(&["[bob] <alice> [e2e]", &secret]);
    let damaged = e2e_dir(&alice_home).join("alice.archive.damaged");
    assert_eq!(fs::read(&damaged).expect("the damaged file is kept"), garbage);
    let archive = e2e_dir(&alice_home).join("alice.archive");
    assert!(archive.exists() && !contains(&archive, &secret), "a new archive, sealed");
    assert!(alice.finish().success());

    // /login, to an account whose name needs escaping as a file name.
    let account = "c|rol";
    let mut registrar = PlainClient::plain(server.plaintext[0], account);
    registrar.register(account);
    registrar.send(&format!("REGISTER * * :{PASSWORD}"));
    registrar.expect("logged in (900)", |m| m.command == "900");
    registrar.send("QUIT");
    let carol_home = dir.path().join("carol");
    let mut carol = chat("carol", &carol_home, &server);
    carol.type_line(&format!("/login {account} {PASSWORD}"));
    carol.expect(&["logged in as", account]);
    carol.expect(&["end-to-end encryption on"]);
    let secret = format!("logged-in-and-encrypted-{id}");
    carol.type_line(&format!("/msg bob {secret}"));
    expect_encrypted(&mut bob, account, &secret);
    carol.expect(&["[bob] <carol> [e2e]", &secret]);
    assert!(carol.finish().success());
    let mut names: Vec<String> = files_under(&carol_home)
        .iter()
        .filter(|p| !p.ends_with("known_servers") && p.extension().is_some_and(|e| e != "log"))
        .map(|p| p.strip_prefix(&carol_home).unwrap_or(p).display().to_string())
        .collect();
    names.sort();
    assert_eq!(names, [".local/share/chinwag/e2e/c%7Crol.archive", ".local/share/chinwag/e2e/c%7Crol.device"]);
}

#[test]
fn the_archive_survives_a_restart_and_a_replayed_history_warns_of_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let mut server = ServerProcess::start(&data, &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let (plain, tls) = (server.plaintext[0].to_string(), server.tls[0].to_string());
    let mut alice = Peer::connect_to(server.plaintext[0], "alice", "alice", &dir.path().join("alice.dev"), "a1", true);
    let id = nonce();
    let home = dir.path().join("bob");
    let mut bob = chat("bob", &home, &server);
    bob.type_line(&format!("/register bob {PASSWORD}"));
    bob.expect(&["end-to-end encryption on"]);

    // A line in clear first: it is where bob's gap fill starts after a reconnect, so the
    // encrypted lines after it come back from history.
    alice.irc.send("PRIVMSG bob :in-clear-first");
    bob.expect(&["[alice] <alice> in-clear-first"]);
    let (first, second) = (format!("first-secret-{id}"), format!("second-secret-{id}"));
    alice.send("bob", &first, 1);
    bob.expect(&["[alice] <alice> [e2e]", &first]);
    alice.send("bob", &second, 1);
    bob.expect(&["[alice] <alice> [e2e]", &second]);
    let answer = format!("bobs-answer-{id}");
    bob.type_line(&format!("/msg alice {answer}"));
    bob.expect(&["[alice] <bob> [e2e]", &answer]);
    assert_eq!(alice.wait_messages(1).text, answer);

    // The server dies and comes back; bob reconnects, logs in again with what he typed, and
    // fills the gap: the ciphertext he decrypted comes again, and is neither shown twice nor
    // taken for a replay.
    server.kill_9();
    bob.expect(&["disconnected"]);
    let _server = ServerProcess::start(&data, &[&plain], &[&tls]);
    bob.expect(&["logged in as bob"]);
    bob.expect(&["[alice]", "from history)"]);
    // Scrolling back shows what is older than what is on the screen: nothing, from the
    // archive, and the server's copies again, silently.
    bob.type_line("/query alice");
    bob.type_line("/history");
    bob.expect(&["(0 encrypted messages from this device's archive)"]);
    bob.expect(&["[alice]", "from history)"]);
    bob.type_line("/users");
    bob.expect(&["online:"]);
    for text in [&first, &second] {
        let shown = bob.seen.iter().filter(|l| l.contains(text.as_str())).count();
        assert_eq!(shown, 1, "{text}: shown once:\n{:#?}", bob.seen);
    }
    assert!(!bob.has_seen(&["replay"]) && !bob.has_seen(&["WARNING"]), "{:#?}", bob.seen);
    assert!(bob.finish().success());

    // After a restart of the client, /history shows the conversation from the archive, which
    // holds no plaintext and is bob's alone.
    let archive = e2e_dir(&home).join("bob.archive");
    for text in [&first, &second, &answer] {
        assert!(!contains(&archive, text), "{text} is in the archive in clear");
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(&archive).expect("the archive").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }
    let addr = plain.clone();
    let mut bob = ChatProcess::start(
        "bob",
        &home,
        &[&addr, "--plaintext", "--nick", "bob", "--account", "bob"],
        &[("CHINWAG_PASSWORD", PASSWORD)],
    );
    bob.expect(&["end-to-end encryption on", "3 messages archived"]);
    bob.expect(&["you are bob"]);
    bob.type_line("/query alice");
    bob.type_line("/history");
    bob.expect(&["[alice] <alice> [e2e]", &first]);
    bob.expect(&["[alice] <alice> [e2e]", &second]);
    bob.expect(&["[alice] <bob> [e2e]", &answer]);
    bob.expect(&["(3 encrypted messages from this device's archive)"]);
    bob.expect(&["[alice]", "from history)"]);
    // Scrolling further back: nothing older.
    bob.type_line("/history");
    bob.expect(&["(0 encrypted messages from this device's archive)"]);
    bob.type_line("/users");
    bob.expect(&["online:"]);
    assert!(!bob.has_seen(&["replay"]) && !bob.has_seen(&["WARNING"]), "{:#?}", bob.seen);
    assert!(bob.finish().success());
}
