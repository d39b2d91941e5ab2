//! Several servers for one client: `chinwag chat A --server B`. Two chinwag servers that share
//! nothing run on loopback; the client talks on the first, the first is killed (`kill -9`), and
//! the client moves to the second by itself: it rejoins its room there, sends what was typed
//! while it was disconnected, and talks with the people on the second server. Each server's
//! certificate is pinned under its own address.

mod support;

use support::chat::{known_servers, ChatProcess};
use support::process::ServerProcess;

#[test]
fn the_client_moves_to_the_next_server_and_keeps_its_session() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut first = ServerProcess::start(&dir.path().join("first"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let second = ServerProcess::start(&dir.path().join("second"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let (a, b) = (first.tls[0].to_string(), second.tls[0].to_string());

    let alice_home = dir.path().join("alice");
    let args = [a.as_str(), "--server", b.as_str(), "--nick", "alice", "--accept-new-cert", "--join", "general"];
    let mut alice = ChatProcess::start("alice", &alice_home, &args, &[]);
    alice.expect(&["[#general] --> alice joined"]);
    // Both certificates were checked and pinned, each under its own address.
    let known = std::fs::read_to_string(known_servers(&alice_home)).expect("the known-servers file");
    assert!(known.contains(&a) && known.contains(&b), "both servers are pinned:\n{known}");

    let bob_args = [b.as_str(), "--nick", "bob", "--accept-new-cert", "--join", "general"];
    let mut bob = ChatProcess::start("bob", &dir.path().join("bob"), &bob_args, &[]);
    bob.expect(&["[#general] --> bob joined"]);

    // The second server is frozen while the first dies, so that alice's connection to it
    // waits in its handshake and what she types meanwhile has to wait for it.
    second.signal("STOP");
    first.kill_9();
    alice.expect(&["disconnected"]);
    alice.type_line("typed between two servers");
    alice.expect(&["will send to #general once connected"]);
    second.signal("CONT");

    alice.expect(&["[#general] --> alice joined"]);
    assert!(alice.has_seen(&["trying the next server", &b]), "the move was not shown:\n{:#?}", alice.seen);
    alice.expect(&["[#general] <alice> typed between two servers"]);
    bob.expect(&["[#general] <alice> typed between two servers"]);
    bob.type_line("welcome to the second server");
    alice.expect(&["[#general] <bob> welcome to the second server"]);

    assert!(alice.finish().success());
    assert!(bob.finish().success());
}

/// Each server of the list is checked against the pin of its own address: a good first server
/// does not vouch for a second whose pinned certificate is another one.
#[test]
fn every_server_of_the_list_is_checked_against_its_own_pin() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ServerProcess::start(&dir.path().join("first"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let second = ServerProcess::start(&dir.path().join("second"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let (a, b) = (first.tls[0].to_string(), second.tls[0].to_string());
    let home = dir.path().join("alice");
    let mut pin = ChatProcess::start("alice", &home, &[&a, "--nick", "alice", "--accept-new-cert"], &[]);
    pin.expect(&["connected to", &first.fingerprint]);
    assert!(pin.finish().success());
    // The second address is pinned to the first server's certificate, which it does not have.
    let path = known_servers(&home);
    let mut known = std::fs::read_to_string(&path).expect("the known-servers file");
    known.push_str(&format!("{b} {}\n", first.fingerprint));
    std::fs::write(&path, &known).expect("write the known-servers file");

    let args = [a.as_str(), "--server", b.as_str(), "--nick", "alice", "--accept-new-cert"];
    let mut alice = ChatProcess::start("alice", &home, &args, &[]);
    let status = alice.finish();
    assert!(!status.success(), "started although the second server's certificate is not the pinned one");
    let warning = alice.stderr();
    assert!(warning.contains("HAS CHANGED") && warning.contains(&b), "{warning}");
    assert!(warning.contains(&second.fingerprint), "the presented certificate was not shown: {warning}");
    assert_eq!(std::fs::read_to_string(&path).expect("still there"), known, "a pin changed");
}
