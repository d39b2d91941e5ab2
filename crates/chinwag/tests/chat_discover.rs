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

/// A UDP port nobody uses right now, for a server's discovery port.
fn free_udp_port() -> u16 {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").expect("bind UDP");
    socket.local_addr().expect("local addr").port()
}

#[test]
fn a_server_on_loopback_only_is_found_with_its_address_by_discover_port_and_the_cli() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_udp_port();
    // Every listener on 127.0.0.1, discovery on every interface (the defaults): probes from
    // the LAN address of this host get no listener, the probe on loopback gets them.
    let server = ServerProcess::start_with(
        &dir.path().join("lo"),
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--discovery", "on", "--discovery-port", &port.to_string()],
    );
    let target = server.tls[0].to_string();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["discover", "--json", "--timeout", "1", "--port", &port.to_string()])
        .output()
        .expect("run chinwag discover");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let found: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let listeners = &found[0]["listeners"];
    let tls = listeners.as_array().and_then(|l| l.iter().find(|l| l["transport"] == "tls"));
    assert_eq!(tls.map(|l| l["addr"].clone()), Some(serde_json::json!(target)), "{found:#}");

    // The chat client starts on another server, then looks for this one.
    let first = ServerProcess::start(&dir.path().join("first"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let home = dir.path().join("alice");
    let first_addr = first.tls[0].to_string();
    let mut alice = ChatProcess::start("alice", &home, &[&first_addr, "--nick", "alice", "--accept-new-cert"], &[]);
    alice.expect(&["you are alice"]);
    alice.type_line("/discover 0");
    alice.expect(&["/discover [PORT]"]);
    alice.type_line(&format!("/discover {port}"));
    alice.expect(&[&format!("UDP port {port}")]);
    alice.expect(&["1.", &target, &server.fingerprint]);
    alice.type_line("/connect 1");
    alice.expect(&["connected to", &target, &server.fingerprint]);
    alice.expect(&["you are alice"]);
    assert!(alice.finish().success());
}
