//! The web client in real Chromium, end to end against the real `chinwag serve` over HTTPS and
//! the IRC WebSocket: two people register, log in (remembered or not), create and find a room,
//! talk, see each other type, get unread counts and private messages, scroll back through a
//! long history, and live through a server restart, receiving what was said while they were
//! gone. The browser side is `web/tests/chat.mjs`; this file runs the server and restarts it
//! when the script asks.
//!
//! The restart is made so that the gap is certain: the server stops, starts again *without* its
//! web listener while another client says three things in the room, stops, and only then comes
//! back on the same web port. The browsers cannot have seen those lines live; they must fetch
//! them (CHATHISTORY AFTER their newest message).
//!
//! The server runs with `--no-flood-limit`: the script posts a long history as fast as it can
//! type, and what is measured here is the client, not the command budget.
//!
//! Needs node, `npm ci` in `web/` and Debian's `chromium`; fails saying what is missing.

mod support;

use std::cell::RefCell;
use std::time::Duration;

use support::client::PlainClient;
use support::process::ServerProcess;
use support::web::{require_browser_tools, start_server, web_addrs, Script};

#[test]
fn two_browser_users_register_talk_scroll_back_and_get_the_gap_after_a_restart() {
    require_browser_tools();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let data = tmp.path().join("data");
    let (server, url) = start_server(&data, "127.0.0.1:0", &["--no-flood-limit"]);
    let web = web_addrs(&server)[0];
    // Both closures below reach the server: the restart replaces it, a failure report reads it.
    let server = RefCell::new(Some(server));
    let quiet_log = RefCell::new(String::new());
    let script = Script::start("chat.mjs", &url, &[]);
    script.run(
        |what| {
            let Some(room) = what.strip_prefix("restart ") else {
                panic!("unexpected request from the script: {what}")
            };
            stop(server.borrow_mut().take().expect("the server is running"));

            // Back without the web listener: the browsers keep failing to reconnect meanwhile.
            let quiet =
                ServerProcess::start_with(&data, &["127.0.0.1:0"], &["127.0.0.1:0"], &["--no-web", "--no-quic"]);
            let mut gapper = PlainClient::plain(quiet.plaintext[0], "gapper");
            gapper.register("gapper");
            gapper.join(room);
            for i in 1..=3 {
                gapper.send(&format!("PRIVMSG {room} :said during the gap {i}"));
            }
            gapper.send("QUIT :done");
            gapper.expect("the server closing after QUIT", |m| m.command == "ERROR");
            *quiet_log.borrow_mut() = quiet.log_tail();
            stop(quiet);

            let (again, _) = start_server(&data, &web.to_string(), &["--no-flood-limit"]);
            *server.borrow_mut() = Some(again);
        },
        || {
            let now = server.borrow().as_ref().map_or_else(String::new, ServerProcess::log_tail);
            format!("===== chinwag output =====\n{now}\n===== the server during the gap =====\n{}", quiet_log.borrow())
        },
    );
}

/// Stops a server as an operator would (SIGTERM), waiting until it has exited.
fn stop(mut server: ServerProcess) {
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(20)).is_some(), "the server stops on SIGTERM:\n{}", server.log_tail());
}
