//! `chinwag chat` over QUIC against the real server, talking with a client on TLS: rooms,
//! private messages, typing notices both ways (datagrams on the QUIC side), registering and
//! logging in, and the same certificate pinning as TLS.

mod support;

use support::chat::{known_servers, ChatProcess};
use support::process::ServerProcess;

/// A server with TLS and QUIC on ports of their own, in `dir`.
fn server(dir: &std::path::Path) -> ServerProcess {
    let server = ServerProcess::start_with(dir, &["127.0.0.1:0"], &["127.0.0.1:0"], &["--quic-listen", "127.0.0.1:0"]);
    assert_eq!(server.quic.len(), 1, "the banner lists no QUIC listener");
    server
}

#[test]
fn a_quic_client_and_a_tls_client_talk_and_see_each_other_typing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(&dir.path().join("server"));
    let quic = format!("quic://{}", server.quic[0]);
    let tls = server.tls[0].to_string();
    let mut alice = ChatProcess::start(
        "alice",
        &dir.path().join("alice"),
        &[&quic, "--nick", "alice", "--accept-new-cert", "--join", "general"],
        &[],
    );
    let mut bob = ChatProcess::start(
        "bob",
        &dir.path().join("bob"),
        &[&tls, "--nick", "bob", "--accept-new-cert", "--join", "general"],
        &[],
    );
    alice.expect(&["connected to", "over QUIC", &server.fingerprint]);
    alice.expect(&["[#general] --> alice joined"]);
    bob.expect(&["[#general] --> bob joined"]);

    alice.type_line("hello from QUIC");
    bob.expect(&["[#general] <alice> hello from QUIC"]);
    bob.type_line("hello from TLS");
    alice.expect(&["[#general] <bob> hello from TLS"]);
    alice.type_line("/msg bob a private word");
    bob.expect(&["[alice] <alice> a private word"]);
    bob.type_line("/msg alice a private answer");
    alice.expect(&["[bob] <bob> a private answer"]);

    // Typing leaves the QUIC client as a datagram and reaches it as one (the server sends
    // typing notices to QUIC peers as datagrams): both directions must show.
    alice.type_line("/typing active");
    bob.expect(&["[#general] alice is typing"]);
    bob.type_line("/typing active");
    alice.expect(&["[#general] bob is typing"]);
    bob.type_line("/typing done");
    alice.expect(&["[#general] bob stopped typing"]);
    alice.type_line("/typing paused");
    bob.expect(&["[#general] alice paused typing"]);

    alice.type_line("/register alice correct-horse-battery");
    alice.expect(&["account alice registered"]);
    alice.expect(&["logged in as alice"]);
    assert!(alice.finish().success(), "alice did not quit cleanly");
    bob.expect(&["alice quit"]);

    // Again with --quic and SASL: the pin made over QUIC holds, the password goes over QUIC.
    let addr = server.quic[0].to_string();
    let mut again = ChatProcess::start(
        "alice",
        &dir.path().join("alice"),
        &[&addr, "--quic", "--nick", "alice", "--account", "alice", "--join", "general"],
        &[("CHINWAG_PASSWORD", "correct-horse-battery")],
    );
    again.expect(&["logged in as alice"]);
    again.expect(&["[#general] --> alice joined"]);
    bob.type_line("welcome back");
    again.expect(&["[#general] <bob> welcome back"]);
    assert!(again.finish().success());
    assert!(bob.finish().success());

    let pinned = std::fs::read_to_string(known_servers(&dir.path().join("alice"))).expect("known_servers");
    assert!(pinned.contains(&format!("{addr} {}", server.fingerprint)), "{pinned}");
}

#[test]
fn quic_refuses_an_unknown_certificate_without_being_asked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = server(&dir.path().join("server"));
    let home = dir.path().join("alice");
    let quic = format!("quic://{}", server.quic[0]);
    let mut refused = ChatProcess::start("alice", &home, &[&quic, "--nick", "alice"], &[]);
    let status = refused.finish();
    assert!(!status.success(), "connected to an unknown server over QUIC without asking");
    assert!(refused.stderr().contains(&server.fingerprint), "the fingerprint was not shown:\n{}", refused.stderr());
    assert!(!known_servers(&home).exists(), "pinned without being asked to");
}
