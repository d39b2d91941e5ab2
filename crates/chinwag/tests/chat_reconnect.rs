//! Staying connected: the server is killed and restarted on the same addresses and data; the
//! scripted clients reconnect by themselves, log in again, rejoin their rooms, send what was
//! typed while the server was down, and fill the gap from history (rooms and private
//! conversations) so nothing said meanwhile is missing; an encrypted private message waiting
//! for an account arrives once, without a replay warning.

mod support;

use std::process::Command;

use support::chat::ChatProcess;
use support::process::ServerProcess;

/// Sends a signal (`STOP`, `CONT`) to a process with the system's `kill`.
fn signal(pid: u32, name: &str) {
    let status = Command::new("kill").arg(format!("-{name}")).arg(pid.to_string()).status().expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

#[test]
fn clients_reconnect_rejoin_send_what_waited_and_fill_the_gap() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let mut server = ServerProcess::start(&data, &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let (plain, tls) = (server.plaintext[0].to_string(), server.tls[0].to_string());
    let args = |nick: &'static str| vec![tls.clone(), "--nick".into(), nick.into(), "--accept-new-cert".into()];
    let start = |nick: &'static str| {
        let args = args(nick);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut all = args.clone();
        all.extend(["--join", "general"]);
        ChatProcess::start(nick, &dir.path().join(nick), &all, &[])
    };
    let mut alice = start("alice");
    let mut bob = start("bob");
    alice.expect(&["[#general] --> alice joined"]);
    bob.expect(&["[#general] --> bob joined"]);
    // Both have accounts, so a private message to bob waits for him while he is away.
    alice.type_line("/register alice correct-horse-battery");
    alice.expect(&["logged in as alice"]);
    bob.type_line("/register bob correct-horse-battery");
    bob.expect(&["logged in as bob"]);
    alice.type_line("/switch general");
    alice.type_line("before the restart");
    bob.expect(&["[#general] <alice> before the restart"]);
    // Registered in the client, both encrypt private messages end to end.
    alice.type_line("/msg bob a private hello");
    bob.expect(&["[alice] <alice> [e2e] a private hello"]);

    // Bob is frozen through the outage, so he comes back only after alice has talked.
    signal(bob.pid(), "STOP");
    server.kill_9();
    alice.expect(&["disconnected"]);
    alice.type_line("typed while the server was down");
    alice.expect(&["will send to #general once connected"]);

    let _restarted = ServerProcess::start(&data, &[&plain], &[&tls]);
    // Logged in again with SASL, from the credentials kept in memory.
    alice.expect(&["logged in as alice"]);
    alice.expect(&["you are alice"]);
    alice.expect(&["[#general] --> alice joined"]);
    alice.expect(&["[#general] <alice> typed while the server was down"]);
    alice.type_line("said while bob was away");
    alice.expect(&["[#general] <alice> said while bob was away"]);
    alice.type_line("/msg bob also in private");
    alice.expect(&["[bob] <alice> [e2e] also in private"]);

    signal(bob.pid(), "CONT");
    bob.expect(&["disconnected"]);
    bob.expect(&["logged in as bob"]);
    bob.expect(&["you are bob"]);
    bob.expect(&["[#general]", "from history)"]);
    // The private line may come first (kept for bob's account) or with the gap fill.
    for line in ["[#general] <alice> typed while the server was down", "[#general] <alice> said while bob was away"] {
        assert!(bob.has_seen(&[line]), "bob missed {line:?}:\n{:#?}", bob.seen);
    }
    if !bob.has_seen(&["[alice] <alice> [e2e] also in private"]) {
        bob.expect(&["[alice] <alice> [e2e] also in private"]);
    }
    // The gap fill starts after the last message bob had: nothing is shown twice.
    let repeats = bob.seen.iter().filter(|l| l.contains("<alice> before the restart")).count();
    assert_eq!(repeats, 1, "a message was shown twice");
    bob.type_line("/users");
    bob.expect(&["online:"]);
    let private = bob.seen.iter().filter(|l| l.contains("also in private")).count();
    assert_eq!(private, 1, "the private message was shown twice");
    assert!(!bob.has_seen(&["replay"]), "an encrypted message delivered again was taken for a replay");

    assert!(alice.finish().success());
    assert!(bob.finish().success());
}

#[test]
fn messages_typed_while_down_are_reported_if_never_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(&dir.path().join("server"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let tls = server.tls[0].to_string();
    let args = [tls.as_str(), "--nick", "alice", "--accept-new-cert", "--join", "general"];
    let mut alice = ChatProcess::start("alice", &dir.path().join("alice"), &args, &[]);
    alice.expect(&["[#general] --> alice joined"]);
    server.kill_9();
    alice.expect(&["disconnected"]);
    alice.type_line("nobody will read this");
    alice.expect(&["will send to #general once connected"]);
    // Input ends while the server is still down: the message is reported, not silently lost.
    let status = alice.finish();
    assert!(status.success());
    assert!(
        alice.has_seen(&["not sent to #general", "nobody will read this"]),
        "the unsent message was not reported:\n{:#?}",
        alice.seen
    );
}

#[test]
fn a_certificate_that_changes_during_a_session_stops_the_client_loudly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(&dir.path().join("server-1"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let tls = server.tls[0].to_string();
    let args = [tls.as_str(), "--nick", "alice", "--accept-new-cert"];
    let mut alice = ChatProcess::start("alice", &dir.path().join("alice"), &args, &[]);
    alice.expect(&["you are alice"]);
    server.kill_9();
    alice.expect(&["disconnected"]);
    // Someone else answers on the same address with another certificate.
    let other = ServerProcess::start(&dir.path().join("server-2"), &["127.0.0.1:0"], &[&tls]);
    let warning = alice.expect(&["!!", "Refusing to connect"]);
    assert!(warning.contains(&format!("--accept-changed-cert {}", other.fingerprint)), "{warning}");
    let status = alice.finish();
    assert!(!status.success(), "the client should exit with an error after refusing");
    let registrations = alice.seen.iter().filter(|l| l.contains("you are alice")).count();
    assert_eq!(registrations, 1, "it must not have registered with the impostor:\n{:#?}", alice.seen);
}
