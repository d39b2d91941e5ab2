//! Shared pieces of the `chinwag` binary's integration tests: the real `chinwag serve` as a
//! child process ([`process`]), a blocking IRC client over plaintext or pinned TLS
//! ([`client`]), `chinwag chat` in scriptable mode ([`chat`]), cluster nodes on NATS and PostgreSQL
//! ([`cluster`]), and, for the tests with real third-party clients, a private tmux server
//! ([`tmux`]), irssi's start-up files ([`irssi`]), WeeChat's command line ([`weechat`]) and
//! both in one tmux ([`pair`]).
//!
//! Every wait has a deadline and every process is ended by a `Drop` guard, so a failing test
//! leaves nothing running and reports what it saw instead of hanging.

// Each test file is a crate of its own and uses only part of this.
#![allow(dead_code)]

pub mod chat;
pub mod client;
pub mod cluster;
pub mod e2e;
pub mod irssi;
pub mod pair;
pub mod process;
pub mod tmux;
pub mod web;
pub mod weechat;

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How long any single expectation (a line from the server, a line on a screen) waits before
/// the test fails.
pub const WAIT: Duration = Duration::from_secs(20);
/// How often a screen is read while waiting.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How many lines of a log file go into a failure report.
pub const REPORT_TAIL_LINES: usize = 40;
/// What to run when a client is missing; `.ci/apt-packages.txt` lists the same packages.
pub const INSTALL_HINT: &str = "apt-get install -y irssi weechat-curses tmux";

/// Runs `tool version_flag` and returns what it printed, or fails the test saying what to
/// install. CI installs the tools, so a skip would only hide a broken CI image.
pub fn require_tool(tool: &str, version_flag: &str) -> String {
    match Command::new(tool).arg(version_flag).output() {
        Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).trim().to_owned(),
        Ok(output) => panic!(
            "`{tool} {version_flag}` failed ({}): {}\nReinstall it with: {INSTALL_HINT}",
            output.status,
            String::from_utf8_lossy(&output.stderr),
        ),
        Err(error) => panic!(
            "cannot run `{tool}` ({error}). This test drives real IRC clients; install them \
             with: {INSTALL_HINT}"
        ),
    }
}

/// Letters that make this run's messages unlike anything already on a screen.
pub fn nonce() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{:x}{nanos:x}", std::process::id())
}

/// The last lines of a file, indented, or why it could not be read.
pub fn file_tail(path: &Path) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let lines: Vec<&str> = text.lines().collect();
            let skip = lines.len().saturating_sub(REPORT_TAIL_LINES);
            lines[skip..].iter().fold(String::new(), |mut out, line| {
                let _ = writeln!(out, "  {line}");
                out
            })
        }
        Err(error) => format!("  cannot read {}: {error}\n", path.display()),
    }
}

/// `chinwag admin --data-dir DIR ARGS…` against the server using `dir`, run to its end.
pub fn admin(dir: &Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["admin", "--data-dir"])
        .arg(dir)
        .args(args)
        .env_remove("CHINWAG_DATA_DIR")
        .output()
        .expect("run chinwag admin")
}
