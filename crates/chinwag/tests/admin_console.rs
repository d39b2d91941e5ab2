//! The server's own console: with `chinwag serve` in a terminal (tmux), admin commands typed at
//! it work like `chinwag admin` ones.

mod support;

use std::time::{Duration, Instant};

use support::client::PlainClient;
use support::tmux::Tmux;
use support::{require_tool, WAIT};

#[test]
fn commands_typed_at_the_console_administer_the_server() {
    require_tool("tmux", "-V");
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let tmux = Tmux::new(dir.path());
    let argv: Vec<String> = [
        env!("CARGO_BIN_EXE_chinwag"),
        "serve",
        "--data-dir",
        data.to_str().expect("path"),
        "--listen",
        "127.0.0.1:0",
        "--tls-listen",
        "127.0.0.1:0",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    tmux.new_session("server", dir.path(), &argv);
    let deadline = Instant::now() + WAIT;
    let screen = |tmux: &Tmux| tmux.capture("server").unwrap_or_default();
    tmux.find_line("server", &["Type `help`"], deadline)
        .unwrap_or_else(|| panic!("no console prompt:\n{}", screen(&tmux)));
    let listening = tmux.find_line("server", &["listening on plaintext"], deadline).expect("banner");
    let addr = listening.trim().trim_start_matches("listening on plaintext ").parse().expect("address");

    let mut alice = PlainClient::plain(addr, "alice");
    alice.register("alice");
    tmux.type_line("server", "users").expect("type");
    tmux.find_line("server", &["alice", "127.0.0.1", "plaintext"], Instant::now() + WAIT)
        .unwrap_or_else(|| panic!("users not listed:\n{}", screen(&tmux)));

    tmux.type_line("server", "broadcast hello from the console").expect("type");
    assert_eq!(alice.expect_command("NOTICE").params, ["alice", "hello from the console"]);

    tmux.type_line("server", "shutdown closing for the night").expect("type");
    let error = alice.expect_command("ERROR");
    assert!(error.params[0].contains("closing for the night"), "{error:?}");
    let socket = data.join("control.sock");
    let deadline = Instant::now() + WAIT;
    while socket.exists() {
        assert!(Instant::now() < deadline, "the server did not stop:\n{}", screen(&tmux));
        std::thread::sleep(Duration::from_millis(50));
    }
}
