//! A private tmux server that runs terminal IRC clients so a test can type into them and read
//! their screens as a user would. Dropping it kills the server and every client in it.
//!
//! Worked out with tmux 3.3a (Debian 12). `tmux -S <dir>/tmux.sock -f <dir>/tmux.conf
//! new-session -d -s <name> -x 200 -y 50 -e HOME=<home> <argv…>`: `-S` makes a private server
//! that cannot see or touch the user's sessions, and `-f` replaces `~/.tmux.conf` with ours:
//! `remain-on-exit on` so a client that dies leaves its last screen to dump, `status off`, and
//! `default-terminal screen`, whose terminfo every Debian image has. An argv after
//! `new-session` runs without a shell, so nothing needs quoting. Every client gets `TZ=UTC`, so
//! the times it shows can be compared with the test's clock.
//!
//! Sessions are addressed as `=<name>:`: a bare `<name>` would also match, by prefix, another
//! session whose name starts with it. Text is typed with `send-keys -l` (literal: "Enter" in a
//! message stays text) and then a separate `send-keys Enter`. Screens are read with
//! `capture-pane -p`, which prints only what is visible, so a message counts only if it shows
//! in the client's active window.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::Instant;

use super::POLL_INTERVAL;

/// The terminal every client gets, so screens look the same on every machine.
const SCREEN_COLUMNS: &str = "200";
const SCREEN_ROWS: &str = "50";

/// The private tmux server.
#[derive(Debug)]
pub struct Tmux {
    /// The socket that makes this server private to the test.
    socket: PathBuf,
    /// Our configuration, used instead of the user's `~/.tmux.conf`.
    config: PathBuf,
}

impl Tmux {
    /// A tmux server with its socket and configuration in `dir`; it starts with the first
    /// session.
    pub fn new(dir: &Path) -> Self {
        let config = dir.join("tmux.conf");
        std::fs::write(&config, "set -g remain-on-exit on\nset -g status off\nset -g default-terminal screen\n")
            .expect("write tmux.conf");
        Self { socket: dir.join("tmux.sock"), config }
    }

    fn command(&self) -> Command {
        let mut command = Command::new("tmux");
        command.arg("-S").arg(&self.socket).arg("-f").arg(&self.config);
        // Inside a user's tmux, TMUX would point at their server.
        command.env_remove("TMUX");
        command
    }

    fn run(&self, args: &[&str]) -> Result<String, String> {
        let Output { status, stdout, stderr } = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|error| format!("cannot run tmux: {error}"))?;
        if status.success() {
            Ok(String::from_utf8_lossy(&stdout).into_owned())
        } else {
            Err(format!("`tmux {}` failed ({status}): {}", args.join(" "), String::from_utf8_lossy(&stderr).trim()))
        }
    }

    /// Starts `argv` in a new detached session of the fixed size, with `home` as `$HOME`.
    /// Panics if tmux cannot start it.
    pub fn new_session(&self, name: &str, home: &Path, argv: &[String]) {
        let home_var = format!("HOME={}", home.display());
        let mut args = vec![
            "new-session",
            "-d",
            "-s",
            name,
            "-x",
            SCREEN_COLUMNS,
            "-y",
            SCREEN_ROWS,
            "-e",
            &home_var,
            "-e",
            "LANG=C.UTF-8",
            "-e",
            "TZ=UTC",
        ];
        args.extend(argv.iter().map(String::as_str));
        if let Err(error) = self.run(&args) {
            panic!("cannot start {name} in tmux: {error}");
        }
    }

    /// What `session` shows now.
    pub fn capture(&self, session: &str) -> Result<String, String> {
        self.run(&["capture-pane", "-p", "-t", &target(session)])
    }

    /// Types `text` into `session` and presses Enter.
    pub fn type_line(&self, session: &str, text: &str) -> Result<(), String> {
        let target = target(session);
        self.run(&["send-keys", "-t", &target, "-l", text])?;
        self.run(&["send-keys", "-t", &target, "Enter"])?;
        Ok(())
    }

    /// Types `text` into `session` without pressing Enter.
    pub fn run_keys(&self, session: &str, text: &str) -> Result<(), String> {
        self.run(&["send-keys", "-t", &target(session), "-l", text]).map(|_| ())
    }

    /// Presses one key by its tmux name (`PageUp`, `Tab`, `C-n`).
    pub fn press(&self, session: &str, key: &str) -> Result<(), String> {
        self.run(&["send-keys", "-t", &target(session), key]).map(|_| ())
    }

    /// Resizes `session`'s window, as a user dragging their terminal would.
    pub fn resize(&self, session: &str, columns: u16, rows: u16) -> Result<(), String> {
        let (columns, rows) = (columns.to_string(), rows.to_string());
        self.run(&["resize-window", "-t", &target(session), "-x", &columns, "-y", &rows]).map(|_| ())
    }

    /// Waits until `deadline` for a line of `session`'s screen that contains every one of
    /// `needles`, and returns it.
    pub fn find_line(&self, session: &str, needles: &[&str], deadline: Instant) -> Option<String> {
        loop {
            if let Ok(screen) = self.capture(session) {
                let found = screen.lines().find(|line| needles.iter().all(|needle| line.contains(needle)));
                if let Some(line) = found {
                    return Some(line.to_owned());
                }
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(POLL_INTERVAL);
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// The target that names exactly `session` (its first window's active pane).
fn target(session: &str) -> String {
    format!("={session}:")
}

/// A screen without its empty rows and without the blanks that pad every row, to keep failure
/// reports short. WeeChat's rows end in the nicklist's border, so borders go too.
pub fn trim_screen(screen: &str) -> String {
    screen
        .lines()
        .map(|line| line.trim_end_matches(|c: char| c.is_whitespace() || c == '│'))
        .filter(|line| !line.is_empty())
        .fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "{line}");
            out
        })
}
