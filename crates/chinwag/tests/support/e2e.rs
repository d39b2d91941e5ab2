//! Scripted end-to-end encryption clients for the `chinwag` binary's tests: the real server
//! with its output kept in files (to search them), and a client connection driving a
//! `chinwag-e2e` device.

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use chinwag_e2e::{Device, Event, KdfParams, Received, Warning, TARGET_ONE_TIME_KEYS};
use chinwag_proto::Message;

use super::client::{Incoming, PlainClient};
use super::WAIT;

pub const PASSWORD: &str = "correct-horse-battery";
pub const PASSPHRASE: &str = "device passphrase";
pub const CAPS: &str = "message-tags account-tag chinwag.dev/e2e";

/// `chinwag serve` with debug logging, its stdout and stderr copied to files in its data
/// directory so that the test can search them afterwards.
pub struct Server {
    child: Child,
    /// The plaintext listener (loopback).
    pub addr: SocketAddr,
    /// The data directory: the database and the log files.
    data: PathBuf,
    /// stdout and stderr as files.
    logs: Vec<PathBuf>,
}

impl Server {
    pub fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--tls-listen",
                "127.0.0.1:0",
                "--no-quic",
                "--no-web",
                "--data-dir",
            ])
            .arg(data)
            .env_remove("CHINWAG_SERVER_PASSWORD")
            .env_remove("CHINWAG_DATA_DIR")
            .env("RUST_LOG", "debug")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn the chinwag binary");
        let logs = vec![data.join("stdout.log"), data.join("stderr.log")];
        let (tx, banner) = mpsc::channel();
        copy_to_file(child.stdout.take().expect("stdout"), &logs[0], Some(tx));
        copy_to_file(child.stderr.take().expect("stderr"), &logs[1], None);
        let deadline = Instant::now() + WAIT;
        let mut addr = None;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line: String = banner.recv_timeout(left).expect("the server's banner within the deadline");
            if let Some(a) = line.trim().strip_prefix("listening on plaintext ") {
                addr = Some(a.parse().expect("an address in the banner"));
            }
            if line.contains("SHA-256 fingerprint") {
                break;
            }
        }
        Server { child, addr: addr.expect("a plaintext listener"), data: data.to_owned(), logs }
    }

    /// Stops the server with SIGTERM (a graceful shutdown, which flushes its log files) and
    /// returns its data directory and the files holding its stdout and stderr.
    pub fn stop(mut self) -> (PathBuf, Vec<PathBuf>) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -TERM the server");
        let deadline = Instant::now() + WAIT;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "the server did not stop within {WAIT:?} of SIGTERM");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        (self.data.clone(), self.logs.clone())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn copy_to_file(pipe: impl Read + Send + 'static, path: &Path, lines: Option<mpsc::Sender<String>>) {
    let mut file = fs::File::create(path).expect("a log file");
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut line = String::new();
        while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
            let _ = std::io::Write::write_all(&mut file, line.as_bytes());
            if let Some(tx) = &lines {
                let _ = tx.send(line.clone());
            }
            line.clear();
        }
    });
}

/// One client device: a connection and the `chinwag-e2e` device behind it.
pub struct Peer {
    pub irc: PlainClient,
    pub device: Device,
    pub nick: String,
    /// Everything the device reported, in order.
    pub messages: Vec<Received>,
    pub warnings: Vec<Warning>,
    /// Encrypted PRIVMSG lines the device sent, as sent.
    pub sent: Vec<String>,
    /// While set, encrypted lines are kept in `intercepted` instead of being sent.
    pub intercept: bool,
    pub intercepted: Vec<String>,
}

impl Peer {
    /// Connects as `nick`, registers `account` (if `register`) or logs in to it, and publishes
    /// the device stored at `path` (created if absent).
    pub fn connect(server: &Server, nick: &str, account: &str, path: &Path, device_id: &str, register: bool) -> Peer {
        Peer::connect_to(server.addr, nick, account, path, device_id, register)
    }

    /// Like [`Peer::connect`], to a server's plaintext listener at `addr`.
    pub fn connect_to(
        addr: SocketAddr,
        nick: &str,
        account: &str,
        path: &Path,
        device_id: &str,
        register: bool,
    ) -> Peer {
        let mut irc = PlainClient::plain(addr, nick);
        irc.request_caps(CAPS);
        irc.send("CAP END");
        irc.register(nick);
        if register {
            irc.send(&format!("REGISTER * * :{PASSWORD}"));
        } else {
            irc.send(&format!("NS IDENTIFY {account} {PASSWORD}"));
        }
        irc.expect("logged in (900)", |m| m.command == "900");
        let device = if path.exists() {
            Device::open(path, PASSPHRASE).expect("open the device")
        } else {
            Device::create(path, PASSPHRASE, KdfParams::insecure_for_tests(), account, device_id).expect("create")
        };
        let mut peer = Peer {
            irc,
            device,
            nick: nick.to_owned(),
            messages: Vec::new(),
            warnings: Vec::new(),
            sent: Vec::new(),
            intercept: false,
            intercepted: Vec::new(),
        };
        let events = peer.device.connect();
        peer.apply(events);
        // Published, and the pools topped up: the server counts a full pool and a fallback key.
        peer.pump_until("a full key pool", |_, m| {
            m.command == "E2E"
                && m.params.first().is_some_and(|p| p == "COUNT")
                && m.params.get(2).and_then(|n| n.parse::<usize>().ok()).is_some_and(|n| n >= TARGET_ONE_TIME_KEYS)
                && m.params.get(3).is_some_and(|f| f == "1")
        });
        peer
    }

    pub fn apply(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
                Event::Line(line) if line.starts_with('@') && self.intercept => self.intercepted.push(line),
                Event::Line(line) => {
                    if line.starts_with('@') {
                        self.sent.push(line.clone());
                    }
                    self.irc.send(&line);
                }
                Event::Message(m) => self.messages.push(m),
                Event::Warning(w) => self.warnings.push(w),
            }
        }
    }

    /// Feeds server lines to the device until `done` says so (given this peer and the line).
    pub fn pump_until(&mut self, what: &str, done: impl Fn(&Peer, &Message) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            let msg = match self.irc.read(deadline) {
                Incoming::Line(m) => m,
                other => self.irc.fail(&format!("waiting for {what}: {other:?}; warnings {:?}", self.warnings)),
            };
            if msg.command == "PING" {
                let token = msg.params.first().cloned().unwrap_or_default();
                self.irc.send(&format!("PONG :{token}"));
            }
            let events = self.device.handle(&msg);
            self.apply(events);
            if done(self, &msg) {
                return;
            }
        }
    }

    /// Reads until the device reported `n` messages in all.
    pub fn wait_messages(&mut self, n: usize) -> &Received {
        if self.messages.len() < n {
            self.pump_until(&format!("{n} decrypted messages"), |p, _| p.messages.len() >= n);
        }
        &self.messages[n - 1]
    }

    pub fn wait_warnings(&mut self, n: usize) -> &Warning {
        if self.warnings.len() < n {
            self.pump_until(&format!("{n} warnings"), |p, _| p.warnings.len() >= n);
        }
        &self.warnings[n - 1]
    }

    /// Encrypts `text` to `to` (nick and account), and drives the exchange with the server
    /// until `copies` encrypted lines have left.
    pub fn send(&mut self, to: &str, text: &str, copies: usize) {
        let before = self.sent.len();
        let events = self.device.send(to, to, text).expect("send");
        self.apply(events);
        if self.sent.len() < before + copies {
            self.pump_until(&format!("{copies} encrypted lines"), |p, _| p.sent.len() >= before + copies);
        }
        assert_eq!(self.sent.len(), before + copies, "{}: copies sent; warnings {:?}", self.nick, self.warnings);
    }

    pub fn quit(mut self) -> PathBuf {
        self.irc.send("QUIT :bye");
        let _ = self.irc.read_until("the server closing", |m| m.command == "ERROR");
        self.device.path().to_owned()
    }
}

/// Every file under `dir`, recursively.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        for entry in fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Whether `needle` occurs in the file at `path` (which may not exist).
pub fn file_contains(path: &Path, needle: &str) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

impl Peer {
    /// Encrypts `text` to `to` and drives the exchange until its encrypted line is ready, but
    /// returns it instead of sending it (for tests that alter it first).
    pub fn seal(&mut self, to: &str, text: &str) -> String {
        self.intercept = true;
        let events = self.device.send(to, to, text).expect("send");
        self.apply(events);
        if self.intercepted.is_empty() {
            self.pump_until("an encrypted line", |p, _| !p.intercepted.is_empty());
        }
        self.intercept = false;
        self.intercepted.remove(0)
    }

    /// Feeds server lines until no device list is awaited.
    pub fn settle_lists(&mut self) {
        if self.device.fetching_devices() {
            self.pump_until("device lists", |p, _| !p.device.fetching_devices());
        }
    }
}
