//! More of the web client in real Chromium against the real `chinwag serve`, one browser script
//! from `web/tests/` per test: desktop notifications for mentions and private messages
//! (`notify.mjs`), joining as a guest, including a taken nick (`guest.mjs`), and keyboard-only
//! use and the phone-width drawer (`keys.mjs`).
//!
//! Needs node, `npm ci` in `web/` and Debian's `chromium`; fails saying what is missing.

mod support;

use support::web::{require_browser_tools, start_server, Script};

/// Runs `script` against a fresh server; the script asks nothing of the test.
fn run_script(script: &str) {
    require_browser_tools();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let (server, url) = start_server(&tmp.path().join("data"), "127.0.0.1:0", &[]);
    Script::start(script, &url, &[]).run(
        |what| panic!("unexpected request from {script}: {what}"),
        || format!("===== chinwag output =====\n{}", server.log_tail()),
    );
}

#[test]
fn mentions_and_private_messages_notify_and_ordinary_messages_do_not() {
    run_script("notify.mjs");
}

#[test]
fn a_guest_joins_general_and_talks_and_a_taken_nick_is_refused_in_the_form() {
    run_script("guest.mjs");
}

#[test]
fn keyboard_only_reaches_and_opens_a_room_and_the_phone_drawer_opens_and_closes() {
    run_script("keys.mjs");
}
