//! `/discover` and `/connect N` in `chinwag chat` against real servers: a server announcing
//! itself (found through the loopback probe on the default discovery port) is listed with its
//! fingerprint, connecting to it pins what it advertised, and an advertisement never replaces a
//! fingerprint already pinned for that address.

mod support;

use support::chat::{known_servers, ChatProcess};
use support::process::ServerProcess;

#[test]
fn discover_lists_the_lan_server_and_connect_follows_the_pinning_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = ServerProcess::start(&dir.path().join("first"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let announced = ServerProcess::start_with(
        &dir.path().join("announced"),
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--discovery", "on", "--discovery-interface", "lo"],
    );
    let target = announced.tls[0].to_string();
    let home = dir.path().join("alice");
    let start = |home: &std::path::Path| {
        let addr = first.tls[0].to_string();
        ChatProcess::start("alice", home, &[&addr, "--nick", "alice", "--accept-new-cert"], &[])
    };

    let mut alice = start(&home);
    alice.expect(&["you are alice"]);
    alice.type_line("/connect 1");
    alice.expect(&["no server 1 in the list"]);
    alice.type_line("/discover");
    alice.expect(&[&target, &announced.fingerprint]);
    alice.type_line("/connect 1");
    alice.expect(&["pinned", &target, &announced.fingerprint]);
    alice.expect(&["connected to", &target, "Pinned", &announced.fingerprint]);
    alice.expect(&["you are alice"]);
    assert!(alice.finish().success());
    let pins = std::fs::read_to_string(known_servers(&home)).expect("known_servers");
    assert!(pins.contains(&format!("{target} {}", announced.fingerprint)), "{pins}");

    // Another pin for that address (say, met before): the advertisement does not replace it,
    // and the server's real certificate is then refused.
    let other = dir.path().join("bob");
    let mut bob = start(&other);
    bob.expect(&["you are alice"]);
    let wrong = first.fingerprint.clone();
    let mut pins = std::fs::read_to_string(known_servers(&other)).expect("known_servers");
    pins.push_str(&format!("{target} {wrong}\n"));
    std::fs::write(known_servers(&other), &pins).expect("write known_servers");
    bob.type_line("/discover");
    bob.expect(&[&target, &announced.fingerprint]);
    bob.type_line("/connect 1");
    bob.expect(&["WARNING", &target, &announced.fingerprint, &wrong, "Keeping the pin"]);
    bob.expect(&["Refusing to connect"]);
    let _ = bob.finish();
    let kept = std::fs::read_to_string(known_servers(&other)).expect("known_servers");
    assert_eq!(kept, pins, "the advertisement changed the pins");
}
