//! End-to-end test with the real WeeChat: it logs in with SASL PLAIN over TLS and shows a
//! private message that arrived while its account was away, at the time it was sent; with a
//! wrong password it is refused and disconnects.
//!
//! What it is not: a protocol test. The server's own tests check SASL, REGISTER and offline
//! delivery line by line; this one answers "does a client people actually use get all that?".
//!
//! Needs `tmux` and `weechat` (see `support::INSTALL_HINT`); the test fails, saying what to
//! install, if either is missing.
//!
//! # Steps
//!
//! 1. `chinwag serve` starts with a plaintext and a TLS listener on loopback.
//! 2. A raw client registers the account `weeuser` on the plaintext listener with IRCv3
//!    `REGISTER` and quits. (Passwords in clear are accepted from loopback only.)
//! 3. A raw client `alice` sends `PRIVMSG weeuser` while nobody is logged in as `weeuser`,
//!    then a `PING`: its `PONG` means the server has taken the message, so the message's time
//!    lies between the clock read before the `PRIVMSG` and the one after the `PONG`.
//! 4. WeeChat connects over TLS with the certificate pinned, SASL PLAIN and a wrong password,
//!    and `sasl_fail disconnect`: its screen must show "SASL authentication failed" and then
//!    "disconnected from server".
//! 5. A second WeeChat does the same with the right password: its screen must show "SASL
//!    authentication successful" and the welcome, and after `/query alice` the waiting message
//!    with alice's nick and a time between the two clock readings of step 3. This WeeChat
//!    connects only after the whole wrong-password attempt, seconds later in practice, so a
//!    client showing the time it received the message instead would be caught.
//!
//! WeeChat options, as in 3.8 and 4.x alike: `sasl_mechanism plain`, `sasl_username`,
//! `sasl_password`, `sasl_fail disconnect` (the default, `reconnect`, would retry with the same
//! wrong password). With SASL configured WeeChat requests the `sasl` capability, sends
//! `AUTHENTICATE PLAIN` and its credentials before `CAP END`, shows the server's 900 and 903
//! texts in the server buffer, and opens a private buffer in the background for an incoming
//! private message; `/query <nick>` brings it to the front. `server-time` is among the
//! capabilities WeeChat requests by default, and it then shows a message at its `time` tag.
//! Every client runs with `TZ=UTC` (see `support::tmux`), so the times WeeChat shows are
//! comparable with the test's clock.
//!
//! # What the server must do for this client
//!
//! - Advertise `sasl` (WeeChat accepts `sasl=PLAIN` or a bare `sasl`), answer `AUTHENTICATE
//!   PLAIN` with `AUTHENTICATE +`, and end with 900 and 903, or 904 for a wrong password; all
//!   while registration waits for `CAP END`.
//! - Send the stored message after the welcome, with its `time` tag.

mod support;

use std::cell::RefCell;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use chinwag_proto::Message;
use support::client::{Incoming, PlainClient};
use support::process::ServerProcess;
use support::tmux::{trim_screen, Tmux};
use support::{file_tail, weechat, WAIT};

/// The account WeeChat logs in as, also its nick (`REGISTER` wants the account to be the nick).
const ACCOUNT: &str = "weeuser";
/// Who sends the message while `ACCOUNT` is away.
const SENDER: &str = "alice";
/// The tmux session of the WeeChat with the right password, also its name in failure reports.
const WEECHAT: &str = "weechat";
/// The tmux session of the WeeChat with a wrong password.
const WRONG_PASSWORD: &str = "wrong-password";

#[test]
fn weechat_logs_in_with_sasl_and_sees_a_message_sent_while_away() {
    let started = Instant::now();
    support::require_tool("tmux", "-V");
    let version = weechat::Version::detect();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let server = ServerProcess::start(&tmp.path().join("data"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let world = World::new(tmp.path(), server, version);

    let nonce = support::nonce();
    let password = format!("right-password-{nonce}");
    world.register_account(&password);
    let away_message = format!("sent-while-away-{nonce}");
    let (not_before, not_after) = world.send_while_away(&away_message);

    world.start_weechat(WRONG_PASSWORD, &format!("wrong-password-{nonce}"));
    world.wait_for_line(WRONG_PASSWORD, "the refusal of the wrong password", &["SASL authentication failed"]);
    world.wait_for_line(WRONG_PASSWORD, "WeeChat giving up after the refusal", &["disconnected from server"]);
    if let Ok(screen) = world.tmux.capture(WRONG_PASSWORD) {
        if screen.contains("You are now logged in") {
            world.fail("the wrong password was refused and yet WeeChat was logged in");
        }
    }

    world.start_weechat(WEECHAT, &password);
    world.wait_for_line(WEECHAT, "SASL success", &["SASL authentication successful"]);
    // `/query` needs a connected server, which for WeeChat begins with the welcome.
    world.wait_for_line(WEECHAT, "the welcome after login", &["Welcome to the", ACCOUNT]);
    world.type_line(WEECHAT, &format!("/query {SENDER}"));
    let line = world.wait_for_line(WEECHAT, "the message sent while away", &[SENDER, &away_message]);

    let shown = line.split(|c: char| c.is_whitespace() || c == '│').find(|word| is_clock_time(word));
    let expected = clock_times_between(not_before, not_after);
    if !shown.is_some_and(|shown| expected.iter().any(|time| time == shown)) {
        world.fail(&format!(
            "WeeChat shows the message sent while away at {shown:?}, not at the time it was sent \
             (one of {expected:?}, UTC): the server-time tag is missing or wrong.\nThe line: {line}"
        ));
    }

    eprintln!("WeeChat SASL test passed in {:.1?}", started.elapsed());
}

/// Everything the test runs. Fields drop in order: the clients go before the server.
struct World {
    /// Every WeeChat, each in a session of its own.
    tmux: Tmux,
    /// The server under test.
    server: ServerProcess,
    /// Where each WeeChat keeps its files, in a directory named after its session.
    root: PathBuf,
    /// `$HOME` for the clients, so nothing of the user's is read.
    home: PathBuf,
    /// Decides the names of the TLS options.
    version: weechat::Version,
    /// The WeeChat sessions started so far, for failure reports.
    sessions: RefCell<Vec<&'static str>>,
}

impl World {
    fn new(root: &Path, server: ServerProcess, version: weechat::Version) -> Self {
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("create the clients' home");
        Self { tmux: Tmux::new(root), server, root: root.to_owned(), home, version, sessions: RefCell::new(Vec::new()) }
    }

    /// Registers [`ACCOUNT`] with IRCv3 `REGISTER` on the plaintext listener, and quits.
    fn register_account(&self, password: &str) {
        let mut client = self.connect(ACCOUNT);
        client.send("CAP LS 302");
        client.send("CAP REQ :draft/account-registration");
        self.expect(&mut client, "CAP ACK", |m| m.command == "CAP" && m.params.get(1).is_some_and(|v| v == "ACK"));
        client.send(&format!("NICK {ACCOUNT}"));
        client.send(&format!("USER {ACCOUNT} 0 * :{ACCOUNT}"));
        client.send("CAP END");
        self.expect(&mut client, "the welcome (001)", |m| m.command == "001");
        client.send(&format!("REGISTER {ACCOUNT} * {password}"));
        self.expect(&mut client, "REGISTER SUCCESS", |m| {
            m.command == "REGISTER" && m.params.first().is_some_and(|v| v == "SUCCESS")
        });
        self.quit(client);
    }

    /// Sends `text` from [`SENDER`] to [`ACCOUNT`], which is not connected. Returns the clock
    /// just before sending and just after the server had surely taken the message.
    fn send_while_away(&self, text: &str) -> (SystemTime, SystemTime) {
        let mut client = self.connect(SENDER);
        client.send(&format!("NICK {SENDER}"));
        client.send(&format!("USER {SENDER} 0 * :{SENDER}"));
        self.expect(&mut client, "the welcome (001)", |m| m.command == "001");
        let before = SystemTime::now();
        client.send(&format!("PRIVMSG {ACCOUNT} :{text}"));
        // The server handles a connection's lines in order, so the PONG comes after the
        // PRIVMSG has been dealt with.
        client.send("PING :after-privmsg");
        self.expect(&mut client, "the PONG after the PRIVMSG", |m| {
            m.command == "PONG" && m.params.last().is_some_and(|v| v == "after-privmsg")
        });
        let after = SystemTime::now();
        self.quit(client);
        (before, after)
    }

    fn connect(&self, name: &str) -> PlainClient {
        let Some(&addr) = self.server.plaintext.first() else {
            self.fail("the server has no plaintext listener");
        };
        PlainClient::plain(addr, name)
    }

    /// Sends `QUIT` and waits until the server has closed the connection.
    fn quit(&self, mut client: PlainClient) {
        client.send("QUIT");
        let deadline = Instant::now() + WAIT;
        loop {
            match client.read(deadline) {
                Incoming::Line(_) => {}
                Incoming::Closed => return,
                Incoming::TimedOut => self.fail_client(&client, &format!("still connected {WAIT:?} after QUIT")),
                Incoming::Failed(error) => self.fail_client(&client, &format!("reading after QUIT failed: {error}")),
            }
        }
    }

    /// Reads until a line satisfies `pred` and returns it. Fails at once on a line that says
    /// something went wrong (FAIL, ERROR, CAP NAK, an error numeric), and after [`WAIT`].
    fn expect(&self, client: &mut PlainClient, what: &str, pred: impl Fn(&Message) -> bool) -> Message {
        let deadline = Instant::now() + WAIT;
        loop {
            match client.read(deadline) {
                Incoming::Line(message) if pred(&message) => return message,
                Incoming::Line(message) if is_refusal(&message) => {
                    self.fail_client(client, &format!("the server refused while we waited for {what}"));
                }
                Incoming::Line(_) => {}
                Incoming::Closed => self.fail_client(client, &format!("connection closed while waiting for {what}")),
                Incoming::TimedOut => self.fail_client(client, &format!("no {what} within {WAIT:?}")),
                Incoming::Failed(error) => {
                    self.fail_client(client, &format!("reading failed while waiting for {what}: {error}"));
                }
            }
        }
    }

    /// Starts a WeeChat in `session` that logs in as [`ACCOUNT`] with SASL PLAIN and
    /// `password`, and disconnects if the server refuses.
    fn start_weechat(&self, session: &'static str, password: &str) {
        let sasl = [
            weechat::server_option("sasl_mechanism", "plain"),
            weechat::server_option("sasl_username", ACCOUNT),
            weechat::server_option("sasl_password", password),
            weechat::server_option("sasl_fail", "disconnect"),
        ];
        let commands =
            weechat::connect_commands(self.version, self.tls_port(), &self.server.fingerprint, ACCOUNT, &sasl);
        self.sessions.borrow_mut().push(session);
        weechat::start(&self.tmux, session, &self.home, &self.root.join(session), &commands);
    }

    fn tls_port(&self) -> u16 {
        match self.server.tls.first() {
            Some(addr) => addr.port(),
            None => self.fail("the server has no TLS listener"),
        }
    }

    /// Types `text` into a client and presses Enter.
    fn type_line(&self, session: &str, text: &str) {
        if let Err(error) = self.tmux.type_line(session, text) {
            self.fail(&format!("cannot type into {session}: {error}"));
        }
    }

    /// Waits until one line of `session`'s screen contains every one of `needles`, and
    /// returns that line.
    fn wait_for_line(&self, session: &str, what: &str, needles: &[&str]) -> String {
        match self.tmux.find_line(session, needles, Instant::now() + WAIT) {
            Some(line) => line,
            None => self.fail(&format!(
                "timed out after {WAIT:?} waiting for {what}: no line of {session}'s screen \
                 contains all of {needles:?}"
            )),
        }
    }

    /// Fails the test with `reason`, what `client` sent and received, and everything else.
    fn fail_client(&self, client: &PlainClient, reason: &str) -> ! {
        self.fail(&format!("{}: {reason}\n\n===== {}'s lines =====\n{}", client.name, client.name, client.transcript()))
    }

    /// Fails the test with `reason` and everything useful for debugging it in CI: each
    /// WeeChat's screen, log files and raw lines, and the server's output.
    fn fail(&self, reason: &str) -> ! {
        let mut report = format!("{reason}\n");
        for &session in self.sessions.borrow().iter() {
            let screen = self.tmux.capture(session).unwrap_or_else(|error| error);
            let _ = write!(report, "\n===== {session} screen =====\n{}", trim_screen(&screen));
            let dir = self.root.join(session);
            let logs = [
                ("server buffer log", weechat::server_buffer_log(&dir)),
                ("private buffer log", weechat::private_buffer_log(&dir, SENDER)),
            ];
            for (name, path) in logs {
                let _ = write!(report, "\n===== {session} {name} (last lines) =====\n{}", file_tail(&path));
            }
            let raw = weechat::raw_messages(&self.tmux, session);
            let _ = write!(report, "\n===== {session} raw lines (<-- sent, --> received) =====\n{raw}");
        }
        let _ = write!(report, "\n===== chinwag output (last lines) =====\n{}", self.server.log_tail());
        panic!("{report}");
    }
}

/// Whether `message` tells that something the test asked for went wrong.
fn is_refusal(message: &Message) -> bool {
    let error_numeric = message.command.parse::<u16>().is_ok_and(|code| (400..600).contains(&code));
    error_numeric
        || matches!(message.command.as_str(), "FAIL" | "ERROR")
        || (message.command == "CAP" && message.params.get(1).is_some_and(|verb| verb == "NAK"))
}

/// Whether `word` reads as `HH:MM:SS`, WeeChat's default time format.
fn is_clock_time(word: &str) -> bool {
    let bytes = word.as_bytes();
    bytes.len() == 8
        && bytes[2] == b':'
        && bytes[5] == b':'
        && [0, 1, 3, 4, 6, 7].iter().all(|&index| bytes[index].is_ascii_digit())
}

/// Every UTC `HH:MM:SS` from `from` to `to`, both included, as WeeChat shows a time (cut to
/// the second). Bounded: a second apart for every second between them.
fn clock_times_between(from: SystemTime, to: SystemTime) -> Vec<String> {
    let seconds = |time: SystemTime| time.duration_since(UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let (first, last) = (seconds(from), seconds(to));
    assert!(last.saturating_sub(first) < 3_600, "sending one message took over an hour of wall clock");
    (first..=last)
        .map(|second| {
            let of_day = second % 86_400;
            format!("{:02}:{:02}:{:02}", of_day / 3_600, of_day % 3_600 / 60, of_day % 60)
        })
        .collect()
}
