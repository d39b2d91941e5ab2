//! `chinwag chat` in scriptable mode against the real server over TLS: two clients talk in
//! rooms and in private, see each other typing, register and log in, and pin the server's
//! certificate on first use.

mod support;

use support::chat::{known_servers, ChatProcess};
use support::process::ServerProcess;

/// A TLS server on a port of its own, in `dir`.
fn tls_server(dir: &std::path::Path) -> ServerProcess {
    ServerProcess::start(dir, &["127.0.0.1:0"], &["127.0.0.1:0"])
}

fn client(name: &str, home: &std::path::Path, server: &ServerProcess, extra: &[&str]) -> ChatProcess {
    let addr = server.tls[0].to_string();
    let mut args = vec![addr.as_str(), "--nick", name, "--accept-new-cert"];
    args.extend_from_slice(extra);
    ChatProcess::start(name, home, &args, &[])
}

#[test]
fn two_clients_talk_in_a_room_and_in_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tls_server(&dir.path().join("server"));
    let mut alice = client("alice", &dir.path().join("alice"), &server, &["--bare-commands"]);
    let mut bob = client("bob", &dir.path().join("bob"), &server, &["--bare-commands"]);
    alice.expect(&["you are alice"]);
    bob.expect(&["you are bob"]);

    // The seeds' bare forms (asked for with --bare-commands): room names without '#', `msg`,
    // `room_msg`, plain text.
    alice.type_line("join general");
    alice.expect(&["[#general] --> alice joined"]);
    bob.type_line("join general");
    bob.expect(&["[#general] --> bob joined"]);
    alice.expect(&["[#general] --> bob joined"]);

    alice.type_line("Hello everyone!");
    bob.expect(&["[#general] <alice> Hello everyone!"]);
    bob.type_line("room_msg hi alice");
    alice.expect(&["[#general] <bob> hi alice"]);
    bob.type_line("/me waves");
    alice.expect(&["[#general] * bob waves"]);

    alice.type_line("msg bob just between us");
    bob.expect(&["[alice] <alice> just between us"]);
    bob.type_line("/whisper alice agreed");
    alice.expect(&["[bob] <bob> agreed"]);

    bob.type_line("users");
    bob.expect(&["online:", "alice", "bob"]);
    bob.type_line("/whois alice");
    bob.expect(&["* alice", "chinwag chat"]);
    bob.type_line("rooms");
    bob.expect(&["rooms:", "#general (2)", "#tech (0)", "#random (0)"]);
    // Whoever creates a room is its operator and may set its topic.
    bob.type_line("join bobs-den");
    bob.expect(&["[#bobs-den] --> bob joined"]);
    bob.type_line("/topic Welcome to the den");
    bob.expect(&["[#bobs-den] bob set the topic: Welcome to the den"]);
    bob.type_line("/invite alice");
    alice.expect(&["bob INVITE alice #bobs-den"]);

    bob.type_line("leave #general");
    alice.expect(&["[#general] <-- bob left"]);
    bob.type_line("help");
    bob.expect(&["/join ROOM", "join a room"]);
    bob.type_line("/frobnicate");
    bob.expect(&["! unknown command /frobnicate"]);

    // End of input: the last line is still sent before the client quits.
    alice.type_line("last words");
    let status = alice.finish();
    assert!(status.success(), "alice exited with {status}");
    assert!(alice.has_seen(&["* bye"]), "alice did not say goodbye");
    bob.type_line("join general");
    bob.expect(&["[#general] --> bob joined"]);
    // Rejoining fills the gap from history: what was said while bob was out is shown.
    bob.expect(&["[#general] <alice> last words"]);
    assert!(bob.finish().success());
}

#[test]
fn typing_notifications_reach_the_room() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tls_server(&dir.path().join("server"));
    let mut alice = client("alice", &dir.path().join("alice"), &server, &["--join", "general"]);
    let mut bob = client("bob", &dir.path().join("bob"), &server, &["--join", "#general"]);
    alice.expect(&["[#general] --> alice joined"]);
    bob.expect(&["[#general] --> bob joined"]);
    alice.type_line("/typing active");
    bob.expect(&["[#general] alice is typing"]);
    alice.type_line("/typing paused");
    bob.expect(&["[#general] alice paused typing"]);
    alice.type_line("/typing done");
    bob.expect(&["[#general] alice stopped typing"]);
    // Private typing shows in the conversation with the typist.
    bob.type_line("/query alice");
    bob.expect(&["now talking in alice"]);
    bob.type_line("/typing active");
    alice.expect(&["[bob] bob is typing"]);
}

#[test]
fn register_then_log_in_with_sasl_and_with_the_login_command() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tls_server(&dir.path().join("server"));
    let home = dir.path().join("alice");
    let mut alice = client("alice", &home, &server, &[]);
    alice.expect(&["you are alice"]);
    alice.type_line("/register alice correct-horse-battery");
    alice.expect(&["account alice registered"]);
    alice.expect(&["logged in as alice"]);
    assert!(alice.finish().success());

    // The password comes from the environment and goes through SASL before registration.
    let addr = server.tls[0].to_string();
    let mut again = ChatProcess::start(
        "alice",
        &home,
        &[&addr, "--nick", "alice", "--account", "alice"],
        &[("CHINWAG_PASSWORD", "correct-horse-battery")],
    );
    again.expect(&["logged in as alice"]);
    again.expect(&["you are alice"]);
    again.type_line("/logout");
    again.expect(&["logged out"]);
    again.expect(&["you are alice"]);
    again.type_line("/login alice wrong-password");
    again.expect(&["Invalid account name or password"]);
    again.type_line("/login alice correct-horse-battery");
    again.expect(&["logged in as alice"]);
    assert!(again.finish().success());

    let saved = std::fs::read_to_string(known_servers(&home)).expect("known_servers written");
    assert!(!saved.contains("correct-horse"), "a password reached the disk");
}

#[test]
fn first_use_pins_the_certificate_and_a_changed_one_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path().join("alice");
    let mut server = tls_server(&dir.path().join("server-1"));
    let addr = server.tls[0].to_string();

    // Scriptable mode cannot ask, so an unknown server is refused without --accept-new-cert.
    let mut refused = ChatProcess::start("alice", &home, &[&addr, "--nick", "alice"], &[]);
    let status = refused.finish();
    assert!(!status.success(), "connected to an unknown server without asking");
    assert!(refused.stderr().contains(&server.fingerprint), "the fingerprint was not shown:\n{}", refused.stderr());
    assert!(!known_servers(&home).exists(), "pinned without being asked to");

    let mut first = ChatProcess::start("alice", &home, &[&addr, "--nick", "alice", "--accept-new-cert"], &[]);
    first.expect(&["connected to", "Pinned", &server.fingerprint]);
    assert!(first.finish().success());
    let pinned = std::fs::read_to_string(known_servers(&home)).expect("known_servers written");
    assert!(pinned.contains(&format!("{addr} {}", server.fingerprint)), "{pinned}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(known_servers(&home)).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The same address now answers with another certificate (a new data directory).
    server.kill_9();
    let other = ServerProcess::start(&dir.path().join("server-2"), &["127.0.0.1:0"], &[&addr]);
    assert_ne!(other.fingerprint, server.fingerprint);
    let mut changed = ChatProcess::start("alice", &home, &[&addr, "--nick", "alice", "--accept-new-cert"], &[]);
    let status = changed.finish();
    assert!(!status.success(), "connected despite a changed certificate");
    let warning = changed.stderr();
    assert!(warning.contains("HAS CHANGED"), "{warning}");
    assert!(warning.contains(&format!("--accept-changed-cert {}", other.fingerprint)), "{warning}");
    assert_eq!(std::fs::read_to_string(known_servers(&home)).expect("still there"), pinned, "the pin changed");

    // Accepting exactly the new fingerprint re-pins it.
    let args = [addr.as_str(), "--nick", "alice", "--accept-changed-cert", other.fingerprint.as_str()];
    let mut accepted = ChatProcess::start("alice", &home, &args, &[]);
    accepted.expect(&["connected to", &other.fingerprint]);
    assert!(accepted.finish().success());
    let repinned = std::fs::read_to_string(known_servers(&home)).expect("known_servers");
    assert!(repinned.contains(&other.fingerprint) && !repinned.contains(&server.fingerprint), "{repinned}");
}

#[test]
fn json_mode_prints_one_object_per_event() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tls_server(&dir.path().join("server"));
    let mut alice = client("alice", &dir.path().join("alice"), &server, &["--json", "--join", "tech"]);
    let joined = alice.expect(&["\"event\":\"joined\"", "\"room\":\"#tech\""]);
    assert!(joined.starts_with('{') && joined.ends_with('}'), "{joined}");
    alice.type_line("hello json");
    let echo = alice.expect(&["\"event\":\"message\"", "\"text\":\"hello json\""]);
    assert!(echo.contains("\"own\":true") && echo.contains("\"msgid\""), "{echo}");
    assert!(alice.finish().success());
}

#[test]
fn input_that_ends_before_the_connection_is_up_is_still_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tls_server(&dir.path().join("server"));
    let mut bob = client("bob", &dir.path().join("bob"), &server, &["--join", "general"]);
    bob.expect(&["[#general] --> bob joined"]);
    // The whole script is written and closed at once, long before registration finishes.
    // Without --bare-commands, only `/`-commands are commands: the rest is chat. A command
    // that needs the server (`/rooms`) waits for it instead of being dropped.
    let mut robot = client("robot", &dir.path().join("robot"), &server, &[]);
    robot.type_line("/join general");
    robot.type_line("Hello from a script");
    robot.type_line("leave me alone");
    robot.type_line("quit smoking is hard");
    robot.type_line("/rooms");
    let status = robot.finish();
    assert!(status.success(), "robot exited with {status}");
    bob.expect(&["[#general] <robot> Hello from a script"]);
    bob.expect(&["[#general] <robot> leave me alone"]);
    bob.expect(&["[#general] <robot> quit smoking is hard"]);
    assert!(robot.has_seen(&["rooms:", "#general"]), "{:#?}", robot.seen);
    assert!(!robot.has_seen(&["not sent"]), "{:#?}", robot.seen);
}

#[test]
fn the_config_file_supplies_server_nick_rooms_and_plaintext_for_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = tls_server(&dir.path().join("server"));
    let home = dir.path().join("carol");
    let config = home.join(".config/chinwag/client.toml");
    std::fs::create_dir_all(config.parent().expect("a parent")).expect("config dir");
    let toml =
        format!("server = \"{}\"\nnick = \"carol\"\nrooms = [\"random\"]\nplaintext = true\n", server.plaintext[0]);
    std::fs::write(&config, toml).expect("write client.toml");
    let mut carol = ChatProcess::start("carol", &home, &[], &[]);
    carol.expect(&["connected to", "in plaintext"]);
    carol.expect(&["you are carol"]);
    carol.expect(&["[#random] --> carol joined"]);
    assert!(carol.finish().success());
    assert!(!known_servers(&home).exists(), "nothing to pin without TLS");
}

#[test]
fn an_unreachable_server_is_reported_and_no_reconnect_fails() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A port that was just free: nothing listens there.
    let addr = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("a free port");
    let addr = addr.to_string();
    let args = [addr.as_str(), "--nick", "alice", "--plaintext", "--no-reconnect"];
    let mut alice = ChatProcess::start("alice", &dir.path().join("alice"), &args, &[]);
    alice.expect(&["! cannot reach", &addr]);
    let status = alice.finish();
    assert!(!status.success(), "a connection that could not be made must fail the command");
}
