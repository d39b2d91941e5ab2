//! `chinwag chat` in scriptable mode as a child process: lines typed into its stdin, its stdout
//! read line by line with a deadline on every wait. Each client gets its own `HOME`, so its
//! known-servers file, config and log are its own. Killed on drop.

use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::WAIT;

/// A running `chinwag chat --plain`.
#[derive(Debug)]
pub struct ChatProcess {
    /// Who this is in failure reports.
    pub name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    /// Lines of stdout not yet looked at.
    lines: Receiver<String>,
    /// Every stdout line so far, for failure reports and later searches.
    pub seen: Vec<String>,
    /// Everything on stderr so far.
    stderr: Arc<Mutex<String>>,
    /// The `HOME` this client runs with.
    pub home: PathBuf,
}

impl ChatProcess {
    /// Starts `chinwag chat --plain <args…>` with `HOME=home` and `env` added.
    pub fn start(name: &str, home: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chinwag"));
        command.arg("chat").arg("--plain").args(args);
        command
            .env("HOME", home)
            .env("USER", name)
            .env_remove("XDG_CONFIG_HOME")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_STATE_HOME")
            .env_remove("XDG_CACHE_HOME")
            .env_remove("CHINWAG_PASSWORD")
            .env("TZ", "UTC");
        for (key, value) in env {
            command.env(key, value);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn chinwag chat");
        let (tx, lines) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stderr = Arc::new(Mutex::new(String::new()));
        if let Some(mut pipe) = child.stderr.take() {
            let stderr = Arc::clone(&stderr);
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    let mut s = stderr.lock().unwrap_or_else(|p| p.into_inner());
                    s.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
            });
        }
        let stdin = child.stdin.take();
        Self { name: name.to_owned(), child, stdin, lines, seen: Vec::new(), stderr, home: home.to_owned() }
    }

    /// The process id, to stop and continue it.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Types one line.
    pub fn type_line(&mut self, line: &str) {
        let Some(stdin) = self.stdin.as_mut() else { self.fail("stdin is already closed") };
        if let Err(e) = writeln!(stdin, "{line}").and_then(|()| stdin.flush()) {
            self.fail(&format!("typing {line:?} failed: {e}"));
        }
    }

    /// Closes stdin (end of input: the client quits after sending what it has).
    pub fn close_input(&mut self) {
        self.stdin = None;
    }

    /// Waits for an output line containing every one of `needles`, and returns it.
    pub fn expect(&mut self, needles: &[&str]) -> String {
        match self.wait_for(needles, Instant::now() + WAIT) {
            Some(line) => line,
            None => self.fail(&format!("no line with {needles:?} within {WAIT:?}")),
        }
    }

    /// Like [`expect`](Self::expect), with a deadline; `None` if it passed.
    pub fn wait_for(&mut self, needles: &[&str], deadline: Instant) -> Option<String> {
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if needles.iter().all(|n| line.contains(n)) {
                        return Some(line);
                    }
                }
                Err(RecvTimeoutError::Timeout) => return None,
                Err(RecvTimeoutError::Disconnected) => return None,
            }
        }
    }

    /// Whether any line seen so far contains every one of `needles`.
    pub fn has_seen(&self, needles: &[&str]) -> bool {
        self.seen.iter().any(|line| needles.iter().all(|n| line.contains(n)))
    }

    /// Closes stdin and waits for the process to exit, reading the rest of its output.
    pub fn finish(&mut self) -> ExitStatus {
        self.close_input();
        let deadline = Instant::now() + WAIT;
        while let Some(line) = self.next_line(deadline) {
            self.seen.push(line);
        }
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                self.fail("did not exit after its input ended");
            }
            thread::sleep(super::POLL_INTERVAL);
        }
    }

    fn next_line(&mut self, deadline: Instant) -> Option<String> {
        self.lines.recv_timeout(deadline.saturating_duration_since(Instant::now())).ok()
    }

    /// What it printed on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Fails the test with this client's output.
    pub fn fail(&self, why: &str) -> ! {
        let mut report = String::new();
        for line in &self.seen {
            let _ = writeln!(report, "  | {line}");
        }
        panic!("{}: {why}\nstdout:\n{report}stderr:\n{}", self.name, self.stderr())
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The known-servers file of a client with this `HOME`.
pub fn known_servers(home: &Path) -> PathBuf {
    home.join(".local/share/chinwag/known_servers")
}
