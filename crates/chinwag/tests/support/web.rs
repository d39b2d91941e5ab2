//! The browser tests' side in Rust: `chinwag serve` with its web listener, and a Node.js script
//! from `web/tests/` that drives Debian's Chromium through `playwright-core`.
//!
//! The script and the test talk in lines: the script prints `STEP <what>` as it goes, `ASK
//! <what>` when it needs the test to act (restart the server, type in irssi) and waits for `DONE
//! <what>` on its stdin; it ends with `PASS`, or `FAIL <reason>` and a non-zero exit. Anything
//! missing (node, `web/node_modules`, `/usr/bin/chromium`) fails the test saying what to
//! install: CI has them all, so a skip would only hide a broken image.

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread;
use std::time::{Duration, Instant};

use super::process::ServerProcess;

/// The longest a whole browser script may run before the test gives up on it.
pub const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
/// Where the browser tests expect Chromium (Debian's `chromium` package).
pub const CHROMIUM: &str = "/usr/bin/chromium";

/// The workspace's `web/` folder.
pub fn web_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../web")
}

/// Fails the test, saying what to install, unless node, playwright-core and Chromium are here.
pub fn require_browser_tools() {
    match Command::new("node").arg("--version").output() {
        Ok(out) if out.status.success() => {}
        _ => panic!("cannot run `node`: the browser tests need Node.js (apt-get install -y nodejs npm)"),
    }
    let playwright = web_dir().join("node_modules/playwright-core/package.json");
    assert!(
        playwright.is_file(),
        "{} is missing: run `npm ci` in web/ once (it installs playwright-core; no browser is downloaded)",
        playwright.display()
    );
    assert!(
        Path::new(CHROMIUM).is_file(),
        "{CHROMIUM} is missing: the browser tests drive Debian's Chromium (apt-get install -y chromium)"
    );
}

/// The `https://ADDR/` addresses the server's banner lists for its web client.
pub fn web_addrs(server: &ServerProcess) -> Vec<SocketAddr> {
    server
        .log_tail()
        .lines()
        .filter_map(|line| line.split_once("web client on https://").map(|(_, rest)| rest.trim().trim_end_matches('/')))
        .filter_map(|addr| addr.parse().ok())
        .collect()
}

/// Starts `chinwag serve` on `data_dir` with plaintext and TLS on loopback port 0 and the web
/// client's HTTPS listener on `web` (`127.0.0.1:0` for any port); returns it and the page's URL.
pub fn start_server(data_dir: &Path, web: &str, extra: &[&str]) -> (ServerProcess, String) {
    let mut args = vec!["--web-listen", web, "--no-quic"];
    args.extend_from_slice(extra);
    let server = ServerProcess::start_with(data_dir, &["127.0.0.1:0"], &["127.0.0.1:0"], &args);
    let Some(addr) = web_addrs(&server).into_iter().next() else {
        panic!("the server's banner names no web client address; its output:\n{}", server.log_tail())
    };
    (server, format!("https://{addr}/"))
}

/// What a browser script said.
#[derive(Debug, PartialEq, Eq)]
pub enum Said {
    Step(String),
    Ask(String),
    Pass,
    Fail(String),
    /// Any other output line (kept for the report).
    Other(String),
    /// The script ended (stdout closed).
    Ended,
}

/// A running browser script; dropping it kills node and Chromium with it.
pub struct Script {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    /// Everything it printed, for failure reports.
    pub transcript: Vec<String>,
    deadline: Instant,
}

impl Script {
    /// Runs `node web/tests/<name>` with the client's URL in `CHINWAG_WEB_URL` and `env`.
    pub fn start(name: &str, url: &str, env: &[(&str, &str)]) -> Self {
        require_browser_tools();
        let mut child = Command::new("node")
            .arg(web_dir().join("tests").join(name))
            .current_dir(web_dir())
            .env("CHINWAG_WEB_URL", url)
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start node web/tests/{name}: {e}"));
        let (tx, lines) = mpsc::channel();
        for pipe in [
            child.stdout.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
            child.stderr.take().map(|p| Box::new(p) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(pipe).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let stdin = child.stdin.take();
        Self { child, stdin, lines, transcript: Vec::new(), deadline: Instant::now() + SCRIPT_TIMEOUT }
    }

    /// The next thing the script says (waiting at most until the script's deadline).
    pub fn next(&mut self) -> Said {
        let left = self.deadline.saturating_duration_since(Instant::now());
        match self.lines.recv_timeout(left) {
            Ok(line) => {
                self.transcript.push(line.clone());
                if let Some(rest) = line.strip_prefix("STEP ") {
                    Said::Step(rest.to_owned())
                } else if let Some(rest) = line.strip_prefix("ASK ") {
                    Said::Ask(rest.to_owned())
                } else if line == "PASS" {
                    Said::Pass
                } else if let Some(rest) = line.strip_prefix("FAIL ") {
                    Said::Fail(rest.to_owned())
                } else {
                    Said::Other(line)
                }
            }
            Err(RecvTimeoutError::Disconnected) => Said::Ended,
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                Said::Fail(format!("the browser script ran longer than {SCRIPT_TIMEOUT:?}"))
            }
        }
    }

    /// Tells the script that what it asked for is done.
    pub fn done(&mut self, what: &str) {
        if let Some(stdin) = self.stdin.as_mut() {
            let _ = writeln!(stdin, "DONE {what}");
            let _ = stdin.flush();
        }
    }

    /// Runs the script to its end, calling `on_ask` for each `ASK` (then answering `DONE`);
    /// panics with the transcript and `report()` unless it ends with `PASS` and exit status 0.
    pub fn run(mut self, mut on_ask: impl FnMut(&str), report: impl Fn() -> String) {
        let mut passed = false;
        loop {
            match self.next() {
                Said::Ask(what) => {
                    on_ask(&what);
                    self.done(&what);
                }
                Said::Pass => passed = true,
                Said::Fail(reason) => self.fail(&reason, &report()),
                Said::Ended => break,
                Said::Step(_) | Said::Other(_) => {}
            }
        }
        let status = self.child.wait().map(|s| s.success()).unwrap_or(false);
        if !(passed && status) {
            self.fail("the browser script ended without passing", &report());
        }
    }

    fn fail(&mut self, reason: &str, report: &str) -> ! {
        let _ = self.child.kill();
        // Whatever it printed while dying belongs in the report.
        let quiet_until = Instant::now() + Duration::from_secs(2);
        while let Ok(line) = self.lines.recv_timeout(quiet_until.saturating_duration_since(Instant::now())) {
            self.transcript.push(line);
        }
        panic!(
            "browser test failed: {reason}\n===== script output =====\n  {}\n{report}",
            self.transcript.join("\n  ")
        );
    }
}

impl Drop for Script {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
