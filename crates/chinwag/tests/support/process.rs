//! `chinwag serve` as a child process: started on the addresses a test asks for (port 0 lets the
//! system pick; the banner says which port it got, so there is no probe-then-bind race), killed
//! on drop.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Instant;

use super::WAIT;

/// How often [`ServerProcess::wait_exit`] looks whether the process has ended.
const EXIT_POLL: std::time::Duration = std::time::Duration::from_millis(20);
/// How many of the server's last output lines are kept for a failure report.
const LOG_LINES: usize = 200;

/// A running `chinwag serve`; dropping it kills the process (SIGKILL) and reaps it.
#[derive(Debug)]
pub struct ServerProcess {
    /// The server process.
    child: Child,
    /// Its last output lines, stdout and stderr interleaved, for failure reports.
    log: Arc<Mutex<VecDeque<String>>>,
    /// The plaintext addresses it listens on, in the order they were asked for.
    pub plaintext: Vec<SocketAddr>,
    /// The TLS addresses it listens on, in the order they were asked for.
    pub tls: Vec<SocketAddr>,
    /// The QUIC (UDP) addresses it listens on, as the banner lists them.
    pub quic: Vec<SocketAddr>,
    /// The certificate's SHA-256 as the banner prints it: `AB:CD:…`, 32 pairs.
    pub fingerprint: String,
    /// The metrics listener, if `--metrics-listen` was given.
    pub metrics: Option<SocketAddr>,
}

impl ServerProcess {
    /// Starts `chinwag serve` on `data_dir` with one `--listen` per `plaintext` address and one
    /// `--tls-listen` per `tls` address, and waits until its banner says it listens on all of
    /// them. Panics with the server's output if it exits or takes longer than [`WAIT`].
    pub fn start(data_dir: &Path, plaintext: &[&str], tls: &[&str]) -> Self {
        Self::start_with(data_dir, plaintext, tls, &[])
    }

    /// Like [`ServerProcess::start`], with more arguments for `chinwag serve`.
    pub fn start_with(data_dir: &Path, plaintext: &[&str], tls: &[&str], extra: &[&str]) -> Self {
        Self::start_with_env(data_dir, plaintext, tls, extra, &[])
    }

    /// Like [`ServerProcess::start_with`], with environment variables set for the server.
    pub fn start_with_env(
        data_dir: &Path,
        plaintext: &[&str],
        tls: &[&str],
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_chinwag"));
        command.args(["serve"]).args(extra);
        command.arg("--data-dir").arg(data_dir);
        // Tests stay on the addresses they ask for: no discovery socket on every interface.
        if !extra.contains(&"--discovery") {
            command.args(["--discovery", "off"]);
        }
        // Nor the default web listener on every interface, unless a test asks for one.
        if !extra.iter().any(|a| a.starts_with("--web-listen") || *a == "--no-web") {
            command.arg("--no-web");
        }
        for addr in plaintext {
            command.args(["--listen", addr]);
        }
        for addr in tls {
            command.args(["--tls-listen", addr]);
        }
        let mut child = command
            // A password or data directory from the caller's environment must not leak in.
            .env_remove("CHINWAG_SERVER_PASSWORD")
            .env_remove("CHINWAG_DATA_DIR")
            .env_remove("RUST_LOG")
            .env_remove("CHINWAG_CONFIG")
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the chinwag binary");

        let log = Arc::new(Mutex::new(VecDeque::new()));
        let (stdout_lines, banner) = mpsc::channel();
        if let Some(stdout) = child.stdout.take() {
            spawn_log_reader(stdout, Arc::clone(&log), Some(stdout_lines));
        }
        if let Some(stderr) = child.stderr.take() {
            spawn_log_reader(stderr, Arc::clone(&log), None);
        }
        let mut server = Self {
            child,
            log,
            plaintext: Vec::new(),
            tls: Vec::new(),
            quic: Vec::new(),
            fingerprint: String::new(),
            metrics: None,
        };

        // The banner lists every listener and then the fingerprint, so the fingerprint line
        // means every listener is up.
        let deadline = Instant::now() + WAIT;
        while server.fingerprint.is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            match banner.recv_timeout(left) {
                Ok(line) => {
                    if let Some(addr) = line.trim().strip_prefix("listening on plaintext ") {
                        server.plaintext.push(server.parse_addr(addr, &line));
                    } else if let Some(addr) = line.trim().strip_prefix("listening on tls ") {
                        server.tls.push(server.parse_addr(addr, &line));
                    } else if let Some(addr) = line.trim().strip_prefix("listening on quic ") {
                        server.quic.push(server.parse_addr(addr, &line));
                    } else if let Some(addr) = line.trim().strip_prefix("metrics on http://") {
                        let addr = addr.trim_end_matches("/metrics");
                        server.metrics = Some(server.parse_addr(addr, &line));
                    } else if let Some((_, rest)) = line.split_once("SHA-256 fingerprint: ") {
                        server.fingerprint = rest.trim().to_owned();
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    let status = server.child.wait().map_or_else(|e| format!("unknown: {e}"), |s| s.to_string());
                    panic!("chinwag serve exited ({status}) before listening; its output:\n{}", server.log_tail());
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "chinwag serve did not finish its banner within {WAIT:?}; its output:\n{}",
                        server.log_tail()
                    );
                }
            }
        }
        let asked = (plaintext.len(), tls.len());
        let got = (server.plaintext.len(), server.tls.len());
        assert_eq!(got, asked, "listeners (plaintext, tls) in the banner; output:\n{}", server.log_tail());
        server
    }

    fn parse_addr(&self, addr: &str, line: &str) -> SocketAddr {
        addr.parse().unwrap_or_else(|_| panic!("unparsable address in banner line {line:?}:\n{}", self.log_tail()))
    }

    /// The server's process id (for `chinwag bench --server-pid`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills the process with SIGKILL (what `Child::kill` sends on Unix), so it gets no chance
    /// to flush or close anything, and reaps it.
    pub fn kill_9(&mut self) -> ExitStatus {
        // An error means it has already exited; `wait` then reports how.
        let _ = self.child.kill();
        self.child.wait().expect("reap the killed server")
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("run kill(1)");
        assert!(status.success(), "kill -{name} failed: {status}");
    }

    /// Waits for the process to exit, up to `timeout`; `None` if it is still running then.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("poll the server process") {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(EXIT_POLL);
        }
    }

    /// The server's last output lines, indented, for failure reports.
    pub fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        log.iter().fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "  | {line}");
            out
        })
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // A failing test shows what the server said last (a client's own report shows only
        // its side).
        if std::thread::panicking() {
            let addr = self.plaintext.first().map_or_else(|| "?".to_owned(), ToString::to_string);
            eprintln!("server at {addr}, its last output:\n{}", self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Copies a pipe into the bounded `log`, and each line to `lines` if given, until EOF.
fn spawn_log_reader(
    pipe: impl Read + Send + 'static,
    log: Arc<Mutex<VecDeque<String>>>,
    lines: Option<mpsc::Sender<String>>,
) {
    thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut raw = Vec::new();
        loop {
            raw.clear();
            match reader.read_until(b'\n', &mut raw) {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
            let line = String::from_utf8_lossy(&raw).trim_end().to_owned();
            {
                let mut log = log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                if log.len() == LOG_LINES {
                    log.pop_front();
                }
                log.push_back(line.clone());
            }
            if let Some(lines) = &lines {
                // The receiver is gone once the banner has been read; keep draining the pipe
                // so the server never blocks on a full stdout.
                let _ = lines.send(line);
            }
        }
    });
}
