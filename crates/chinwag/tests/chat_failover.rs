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
