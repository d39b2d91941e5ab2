//! The full-screen `chinwag chat` in a real terminal (tmux) against the real server over TLS,
//! read from its screen as a user would: the first-use certificate question, a room, typing
//! indicators, private messages with unread counts, a resize, a masked password when
//! registering, quitting, and the password prompt of `--account` the next time. A scripted
//! client is the other person.

mod support;

use std::time::Instant;

use support::chat::{known_servers, ChatProcess};
use support::process::ServerProcess;
use support::tmux::{trim_screen, Tmux};
use support::{require_tool, WAIT};

const SESSION: &str = "alice";

/// Fails the test with the session's screen.
fn fail_in(tmux: &Tmux, session: &str, why: &str) -> ! {
    let screen = tmux.capture(session).unwrap_or_else(|e| e);
    panic!("{why}\nthe screen of {session}:\n{}", trim_screen(&screen))
}

fn fail(tmux: &Tmux, why: &str) -> ! {
    fail_in(tmux, SESSION, why)
}

fn see_in(tmux: &Tmux, session: &str, needles: &[&str]) -> String {
    match tmux.find_line(session, needles, Instant::now() + WAIT) {
        Some(line) => line,
        None => fail_in(tmux, session, &format!("no line with {needles:?} within {WAIT:?}")),
    }
}

fn see(tmux: &Tmux, needles: &[&str]) -> String {
    see_in(tmux, SESSION, needles)
}

fn type_in(tmux: &Tmux, session: &str, text: &str) {
    if let Err(e) = tmux.type_line(session, text) {
        fail_in(tmux, session, &e);
    }
}

fn type_line(tmux: &Tmux, text: &str) {
    type_in(tmux, SESSION, text)
}

/// `chinwag chat ARGS…` with the caller's XDG directories and passwords kept out.
fn chat_argv(args: &[&str]) -> Vec<String> {
    let mut argv: Vec<String> = ["env", "-u", "XDG_DATA_HOME", "-u", "XDG_STATE_HOME", "-u", "XDG_CONFIG_HOME"]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    argv.extend(["-u", "CHINWAG_PASSWORD", env!("CARGO_BIN_EXE_chinwag"), "chat"].iter().map(|s| (*s).to_owned()));
    argv.extend(args.iter().map(|s| (*s).to_owned()));
    argv
}

#[test]
fn the_full_screen_client_talks_with_a_scripted_one() {
    require_tool("tmux", "-V");
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let addr = server.tls[0].to_string();
    let home = dir.path().join("alice");
    std::fs::create_dir_all(&home).expect("alice's home");
    let tmux = Tmux::new(dir.path());
    let argv = chat_argv(&[&addr, "--nick", "alice", "--join", "general"]);
    tmux.new_session(SESSION, &home, &argv);

    // First meeting: the fingerprint is shown and the user is asked before anything is sent.
    see(&tmux, &[&server.fingerprint]);
    see(&tmux, &["Trust this server", "[y/N]"]);
    type_line(&tmux, "y");
    see(&tmux, &["🔒 tls (pinned)", "alice", "connected"]);
    see(&tmux, &["2 #general"]);
    let pinned = std::fs::read_to_string(known_servers(&home)).expect("the certificate was pinned");
    assert!(pinned.contains(&server.fingerprint), "{pinned}");

    let mut bob =
        ChatProcess::start("bob", &dir.path().join("bob"), &[&addr, "--nick", "bob", "--accept-new-cert"], &[]);
    bob.type_line("/join general");
    bob.expect(&["[#general] --> bob joined"]);
    see(&tmux, &["--> bob joined #general"]);
    see(&tmux, &["│bob"]);

    bob.type_line("hello alice from bob");
    see(&tmux, &["<bob> hello alice from bob"]);
    bob.type_line("/typing active");
    see(&tmux, &["bob is typing…"]);

    type_line(&tmux, "hi bob from the full screen");
    bob.expect(&["[#general] <alice> hi bob from the full screen"]);
    // Typing sends +typing active before the line goes.
    if let Err(e) = tmux.press(SESSION, "x") {
        fail(&tmux, &e);
    }
    bob.expect(&["[#general] alice is typing"]);
    if let Err(e) = tmux.press(SESSION, "BSpace") {
        fail(&tmux, &e);
    }
    bob.expect(&["[#general] alice stopped typing"]);

    // A private message opens a conversation that counts unread lines while another is shown.
    type_line(&tmux, "/msg bob psst");
    bob.expect(&["[alice] <alice> psst"]);
    bob.type_line("/msg alice what is it?");
    see(&tmux, &["3 bob (1)"]);
    type_line(&tmux, "/switch bob");
    see(&tmux, &["<bob> what is it?"]);
    see(&tmux, &["[bob]"]);

    // A narrow terminal drops the side panes and keeps the conversation.
    if let Err(e) = tmux.resize(SESSION, 60, 20) {
        fail(&tmux, &e);
    }
    let line = see(&tmux, &["┌bob"]);
    assert!(line.starts_with("┌bob"), "the room list should be hidden at 60 columns: {line:?}");

    // A password typed into the input line is masked, and registering logs in.
    if let Err(e) = tmux.type_line(SESSION, "/switch general") {
        fail(&tmux, &e);
    }
    if let Err(e) = tmux.run_keys(SESSION, "/register correct-horse-battery") {
        fail(&tmux, &e);
    }
    see(&tmux, &["/register ", "*********************"]);
    if tmux.capture(SESSION).unwrap_or_default().contains("correct-horse") {
        fail(&tmux, "the password shows on the screen");
    }
    if let Err(e) = tmux.press(SESSION, "Enter") {
        fail(&tmux, &e);
    }
    if let Err(e) = tmux.press(SESSION, "M-1") {
        fail(&tmux, &e);
    }
    see(&tmux, &["logged in as alice"]);

    type_line(&tmux, "/quit see you");
    bob.type_line("/join general");
    bob.expect(&["alice quit", "see you"]);
    assert!(bob.finish().success());

    // Next time, --account asks for the password before the screen opens and logs in with SASL.
    let again = "alice-again";
    tmux.new_session(again, &home, &chat_argv(&[&addr, "--nick", "alice", "--account", "alice"]));
    see_in(&tmux, again, &["Password for alice:"]);
    type_in(&tmux, again, "correct-horse-battery");
    see_in(&tmux, again, &["🔒 tls (pinned)", "alice", "connected"]);
    see_in(&tmux, again, &["logged in as alice"]);
    if tmux.capture(again).unwrap_or_default().contains("correct-horse") {
        fail_in(&tmux, again, "the password shows on the screen");
    }
    type_in(&tmux, again, "/quit");

    // Logs go to a file in the state directory, never over the screen.
    let log = home.join(".local/state/chinwag/chat.log");
    assert!(log.exists(), "no log file at {}", log.display());
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777;
    assert_eq!(mode(&log), 0o600, "the log is the user's alone");
    assert_eq!(mode(log.parent().expect("dir")), 0o700);
}

#[test]
fn a_changed_certificate_mid_session_stops_the_full_screen_client_with_the_reason() {
    require_tool("tmux", "-V");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(&dir.path().join("server-1"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let addr = server.tls[0].to_string();
    let home = dir.path().join("alice");
    std::fs::create_dir_all(&home).expect("alice's home");
    let tmux = Tmux::new(dir.path());
    tmux.new_session(SESSION, &home, &chat_argv(&[&addr, "--nick", "alice", "--accept-new-cert"]));
    see(&tmux, &["🔒 tls (pinned)", "alice", "connected"]);
    server.kill_9();
    let impostor = ServerProcess::start(&dir.path().join("server-2"), &["127.0.0.1:0"], &[&addr]);
    // The screen closes and the reason stays on the terminal, with the way to accept the change.
    see(&tmux, &["Refusing to connect"]);
    let screen = tmux.capture(SESSION).unwrap_or_default();
    // The fingerprint may wrap across rows; its start is enough to show it was named.
    assert!(screen.contains(&impostor.fingerprint[..8]), "{}", trim_screen(&screen));
}
