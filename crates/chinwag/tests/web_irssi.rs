//! A browser user (the web client in Chromium, `web/tests/irssi.mjs`) and an irssi user (real
//! irssi in tmux, connected over pinned TLS) exchange room messages, an action and private
//! messages through the same server: what one types, the other sees.
//!
//! The script asks this test to act for irssi: `irssi-start ROOM` (start irssi, which joins
//! ROOM), `irssi-sees TEXT` (wait for TEXT on irssi's screen), `irssi-says TEXT` (type it),
//! `irssi-query NICK` (switch irssi to its conversation with NICK).
//!
//! Needs tmux, irssi, node, `npm ci` in `web/` and Debian's `chromium`; fails saying what is
//! missing.

mod support;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Instant;

use support::tmux::{trim_screen, Tmux};
use support::web::{require_browser_tools, start_server, Script};
use support::{file_tail, WAIT};

const IRSSI: &str = "irssi";
const IRSSI_NICK: &str = "irssiweb";

#[test]
fn a_browser_user_and_an_irssi_user_talk_in_a_room_and_in_private() {
    support::require_tool("tmux", "-V");
    support::require_tool("irssi", "--version");
    require_browser_tools();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let root = tmp.path();
    let (server, url) = start_server(&root.join("data"), "127.0.0.1:0", &[]);
    let tmux = Tmux::new(root);
    let (home, irssi_home, rawlog) = (root.join("home"), root.join("irssi"), root.join("irssi-raw.log"));
    for dir in [&home, &irssi_home] {
        std::fs::create_dir_all(dir).expect("create a client directory");
    }
    let report = |tmux: &Tmux, rawlog: &PathBuf| {
        let screen = tmux.capture(IRSSI).unwrap_or_else(|error| error);
        let mut out = format!("===== irssi screen =====\n{}", trim_screen(&screen));
        let _ = write!(out, "\n===== irssi raw log (last lines) =====\n{}", file_tail(rawlog));
        let _ = write!(out, "\n===== chinwag output =====\n{}", server.log_tail());
        out
    };
    let wait_for = |needles: &[&str], what: &str| {
        if tmux.find_line(IRSSI, needles, Instant::now() + WAIT).is_none() {
            panic!(
                "timed out after {WAIT:?} waiting for {what} on irssi's screen ({needles:?})\n{}",
                report(&tmux, &rawlog)
            );
        }
    };
    let type_line = |text: &str| {
        if let Err(error) = tmux.type_line(IRSSI, text) {
            panic!("cannot type into irssi: {error}\n{}", report(&tmux, &rawlog));
        }
    };
    let Some(tls_port) = server.tls.first().map(|a| a.port()) else { panic!("the server has no TLS listener") };

    Script::start("irssi.mjs", &url, &[("IRSSI_NICK", IRSSI_NICK)]).run(
        |what| {
            let (verb, arg) = what.split_once(' ').unwrap_or((what, ""));
            match verb {
                "irssi-start" => {
                    // Without nick and names here irssi takes them from the account running the test.
                    let config = format!(
                        "settings = {{\n  core = {{\n    nick = \"{IRSSI_NICK}\";\n    user_name = \"{IRSSI_NICK}\";\n    \
                         real_name = \"irssi-web\";\n    settings_autosave = \"no\";\n  }};\n}};\n"
                    );
                    std::fs::write(irssi_home.join("config"), config).expect("write irssi config");
                    let startup = format!(
                        "/network add -nick {IRSSI_NICK} -user {IRSSI_NICK} -realname irssi-web -autosendcmd \"/join {arg}\" chinwag\n\
                         /connect -tls -tls_pinned_cert {} -rawlog {} -network chinwag 127.0.0.1 {tls_port}\n",
                        server.fingerprint,
                        rawlog.display(),
                    );
                    std::fs::write(irssi_home.join("startup"), startup).expect("write irssi startup");
                    let argv = [IRSSI.to_owned(), format!("--home={}", irssi_home.display()), "-!".to_owned()];
                    tmux.new_session(IRSSI, &home, &argv);
                    wait_for(&[IRSSI_NICK, "has joined", arg], "irssi's join");
                }
                "irssi-sees" => wait_for(&[arg], "a line from the browser"),
                "irssi-says" => type_line(arg),
                "irssi-query" => type_line(&format!("/query {arg}")),
                _ => panic!("unexpected request from the script: {what}"),
            }
        },
        || report(&tmux, &rawlog),
    );
}
