//! End-to-end test with real third-party IRC clients: irssi and WeeChat connect to a real
//! `chinwag serve` over TLS, join `#general`, and talk to each other in the channel and in
//! private. Each client runs in its own session of a private tmux server, and the test reads
//! their screens as a user would.
//!
//! What it is not: a protocol test. Lines in and lines out are checked by the server's own
//! tests; this one answers "do the clients people actually use work against us?".
//!
//! Needs `tmux`, `irssi` and `weechat` on the PATH (the Debian packages are listed in
//! `.ci/apt-packages.txt`). If one is missing the test fails and says what to install: CI
//! installs them, so a skip would only hide a broken CI image.
//!
//! # How the clients are driven
//!
//! Worked out with irssi 1.4.3, WeeChat 3.8 and tmux 3.3a (Debian 12) against ngircd behind
//! TLS, then run against chinwag.
//!
//! **tmux.** `tmux -S <tmp>/tmux.sock -f <tmp>/tmux.conf new-session -d -s <name> -x 200 -y 50
//! -e HOME=<tmp>/home <argv…>`. `-S` makes a private server that cannot see or touch the user's
//! sessions, and `-f` replaces `~/.tmux.conf` with ours: `remain-on-exit on` so a client that
//! dies leaves its last screen to dump, `status off`, and `default-terminal screen`, whose
//! terminfo every Debian image has. An argv after `new-session` runs without a shell, so nothing
//! needs quoting. Text is typed with `send-keys -l` (literal: "Enter" in a message stays text)
//! and then a separate `send-keys Enter`. Screens are read with `capture-pane -p`, which prints
//! only what is visible, so a message counts only if it shows in the client's active window.
//!
//! **irssi.** `irssi --home=<tmp>/irssi -!` (`-!`: autoconnect nothing). Two files are written
//! into the home first:
//! - `config` with a few settings only (nick, user and real name, `settings_autosave = "no"`).
//!   Without it irssi starts from `/etc/irssi.conf`, which lists real networks (none set to
//!   autoconnect, but we want none at all), and takes names from the account running the test.
//! - `startup`, commands irssi runs at start as if typed:
//!   ```text
//!   /network add -nick irssiuser -user irssiuser -realname … -autosendcmd "/join #general" chinwag
//!   /connect -tls -tls_pinned_cert <AB:CD:…> -rawlog <tmp>/irssi-raw.log -network chinwag 127.0.0.1 <tls port>
//!   ```
//!
//! `-tls_pinned_cert` takes the SHA-256 of the certificate in exactly the form irssi prints it
//! and chinwag's banner shows it: 32 uppercase hex pairs joined by ':'. Without `-tls_verify`
//! irssi checks no CA chain and no host name, so the pin is the whole verification, and a real
//! one: a wrong pin ends the connection with "Pinned certificate mismatch". irssi 1.4's
//! `/server add` has no pin option, hence the address on `/connect`. The channel is joined by
//! `-autosendcmd`, which runs once the server has welcomed us, rather than by
//! `/channel add -auto`: autojoined channels open in a background window, while a `/join`
//! focuses its window. irssi throttles what it sends (five commands at once, then one every
//! 2.2 s), so a typed line can take seconds to leave; the deadline below allows for it.
//!
//! **WeeChat.** `weechat -a -s -P buflist,irc,logger -d <tmp>/weechat -r "<commands>"`:
//! `-a` autoconnects nothing, `-s` loads no scripts, `-P` loads only the plugins named (not
//! `script`, `spell`, `relay`, `exec`, …, which can reach the network or listen; `logger` writes
//! the server buffer to a file for failure reports), and `-d` keeps config, data, logs and cache
//! in the temporary directory instead of the XDG directories of `$HOME`. The commands,
//! separated by ';':
//! ```text
//! /set logger.file.flush_delay 0
//! /server add chinwag 127.0.0.1/<tls port> -ssl
//! /set irc.server.chinwag.ssl_fingerprint <abcd…>
//! /set irc.server.chinwag.nicks weeuser
//! /set irc.server.chinwag.username weeuser
//! /set irc.server.chinwag.realname …
//! /set irc.server.chinwag.autojoin #general
//! /connect chinwag
//! ```
//! WeeChat 4.0 renamed `-ssl`/`ssl_*` to `-tls`/`tls_*`, so the names are chosen from
//! `weechat --version`. The fingerprint is the same SHA-256 as hex digits without ':' (WeeChat
//! picks the hash by the length). When it is set WeeChat checks only the fingerprint, not the
//! CA or host name; a wrong one fails the handshake with "certificate fingerprint does NOT
//! match". Autojoin happens after the welcome and switches to the channel buffer.
//!
//! **Private messages.** Both clients open a query for an incoming private message in the
//! background, so the receiver opens the query (`/query <sender>`) before the sender types
//! `/msg`. Whichever comes first, the query ends up in front.
//!
//! # What the server must do for these clients
//!
//! - Answer `CAP LS 302`. irssi sends `CAP LS 302` and then `JOIN :` before registering: a
//!   server that ignores CAP answers the JOIN with 451, which tells irssi to stop waiting for
//!   CAP. So `JOIN :` before registration must get a 451 (or be ignored), never a disconnect.
//! - Echo the client's own JOIN with its full prefix: both clients show "<nick> … has joined
//!   #general" only from that echo.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How long any one expected event (a banner line, a line on a screen) may take.
const DEADLINE: Duration = Duration::from_secs(20);
/// How often a screen is read while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How many times the server is started on fresh ports if it exits before listening, which it
/// does when another process takes a port between our probe and its bind.
const START_ATTEMPTS: usize = 3;
/// How many of the server's last output lines are kept for a failure report.
const SERVER_LOG_LINES: usize = 200;
/// How many lines of each log file go into a failure report.
const REPORT_TAIL_LINES: usize = 40;
/// The terminal every client gets, so screens look the same on every machine.
const SCREEN_COLUMNS: &str = "200";
const SCREEN_ROWS: &str = "50";
/// What to run when a tool is missing; `.ci/apt-packages.txt` lists the same packages.
const INSTALL_HINT: &str = "apt-get install -y irssi weechat-curses tmux";

const CHANNEL: &str = "#general";
const IRSSI_NICK: &str = "irssiuser";
const WEECHAT_NICK: &str = "weeuser";
/// The tmux session names, which are also the names used in failure reports.
const IRSSI: &str = "irssi";
const WEECHAT: &str = "weechat";

#[test]
fn irssi_and_weechat_talk_over_tls() {
    let started = Instant::now();
    let weechat_version = require_tools();
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let root = tmp.path();

    let server = ChinwagProcess::start(&root.join("data"));
    let world = World::start(root, server, &weechat_version);

    // Both clients register and join; each then sees the other in the channel, through the
    // other's JOIN or through the NAMES reply to its own.
    world.wait_for_line(IRSSI, "irssi's own join", &[IRSSI_NICK, "has joined", CHANNEL]);
    world.wait_for_line(WEECHAT, "WeeChat's own join", &[WEECHAT_NICK, "has joined", CHANNEL]);
    world.wait_for_line(IRSSI, "WeeChat's nick in irssi's channel", &[WEECHAT_NICK]);
    world.wait_for_line(WEECHAT, "irssi's nick in WeeChat's nicklist", &[IRSSI_NICK]);

    let nonce = nonce();

    let from_irssi = format!("channel-hello-from-irssi-{nonce}");
    world.type_line(IRSSI, &from_irssi);
    world.wait_for_line(WEECHAT, "irssi's channel message", &[IRSSI_NICK, &from_irssi]);

    let from_weechat = format!("channel-hello-from-weechat-{nonce}");
    world.type_line(WEECHAT, &from_weechat);
    world.wait_for_line(IRSSI, "WeeChat's channel message", &[WEECHAT_NICK, &from_weechat]);

    let private_to_weechat = format!("private-from-irssi-{nonce}");
    world.type_line(WEECHAT, &format!("/query {IRSSI_NICK}"));
    world.type_line(IRSSI, &format!("/msg {WEECHAT_NICK} {private_to_weechat}"));
    world.wait_for_line(WEECHAT, "irssi's private message", &[IRSSI_NICK, &private_to_weechat]);

    let private_to_irssi = format!("private-from-weechat-{nonce}");
    world.type_line(IRSSI, &format!("/query {WEECHAT_NICK}"));
    world.type_line(WEECHAT, &format!("/msg {IRSSI_NICK} {private_to_irssi}"));
    world.wait_for_line(IRSSI, "WeeChat's private message", &[WEECHAT_NICK, &private_to_irssi]);

    // irssi shows a quit in the open query with the leaving nick, so this checks that QUIT
    // reaches those who share a channel, reason included.
    let goodbye = format!("goodbye-from-weechat-{nonce}");
    world.type_line(WEECHAT, &format!("/quit {goodbye}"));
    world.wait_for_line(IRSSI, "WeeChat's quit", &[WEECHAT_NICK, "has quit", &goodbye]);

    eprintln!("third-party client test passed in {:.1?}", started.elapsed());
}

/// Checks that tmux, irssi and WeeChat can be run, and returns WeeChat's version line.
fn require_tools() -> String {
    let mut weechat_version = String::new();
    for (tool, version_flag) in [("tmux", "-V"), ("irssi", "--version"), ("weechat", "--version")] {
        match Command::new(tool).arg(version_flag).output() {
            Ok(output) if output.status.success() => {
                if tool == "weechat" {
                    weechat_version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                }
            }
            Ok(output) => panic!(
                "`{tool} {version_flag}` failed ({}): {}\nReinstall it with: {INSTALL_HINT}",
                output.status,
                String::from_utf8_lossy(&output.stderr),
            ),
            Err(error) => panic!(
                "cannot run `{tool}` ({error}). This test drives real IRC clients; install \
                 them with: {INSTALL_HINT}"
            ),
        }
    }
    weechat_version
}

/// Letters that make this run's messages unlike anything already on a screen.
fn nonce() -> String {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |elapsed| elapsed.subsec_nanos());
    format!("{:x}{nanos:x}", std::process::id())
}

/// A port that was free a moment ago. Another process may take it before the server binds
/// it; `ChinwagProcess::start` retries when that happens.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("bind a probe socket on 127.0.0.1:0")
        .port()
}

/// The running `chinwag serve`; dropping it kills the process.
struct ChinwagProcess {
    /// The server process, killed on drop.
    child: Child,
    /// Its last output lines, stdout and stderr interleaved, for failure reports.
    log: Arc<Mutex<VecDeque<String>>>,
    /// The TLS port the clients connect to.
    tls_port: u16,
    /// The certificate's SHA-256 as the banner prints it: `AB:CD:…`, 32 pairs.
    fingerprint: String,
}

/// Why one attempt to start the server did not give a listening server.
enum StartFailure {
    /// The process exited before it listened; worth another try on other ports.
    Exited(String),
    /// The process runs but did not say it listens in time; retrying would not help.
    TimedOut(String),
}

impl ChinwagProcess {
    fn start(data_dir: &Path) -> Self {
        let mut failures = String::new();
        for attempt in 1..=START_ATTEMPTS {
            match Self::try_start(data_dir) {
                Ok(server) => return server,
                Err(StartFailure::Exited(report)) => {
                    let _ = writeln!(failures, "attempt {attempt}: {report}");
                }
                Err(StartFailure::TimedOut(report)) => panic!("{failures}{report}"),
            }
        }
        panic!("chinwag serve did not start in {START_ATTEMPTS} attempts:\n{failures}");
    }

    fn try_start(data_dir: &Path) -> Result<Self, StartFailure> {
        let plain_addr = format!("127.0.0.1:{}", free_port());
        let tls_port = free_port();
        let tls_addr = format!("127.0.0.1:{tls_port}");
        let mut child = Command::new(env!("CARGO_BIN_EXE_chinwag"))
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &plain_addr, "--tls-listen", &tls_addr])
            // A password or data directory from the caller's environment must not leak in.
            .env_remove("CHINWAG_SERVER_PASSWORD")
            .env_remove("CHINWAG_DATA_DIR")
            // Colour codes would clutter the log in failure reports.
            .env("NO_COLOR", "1")
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
        let mut server = Self { child, log, tls_port, fingerprint: String::new() };

        let plain_ready = format!("listening on plaintext {plain_addr}");
        let tls_ready = format!("listening on tls {tls_addr}");
        let (mut plain_up, mut tls_up) = (false, false);
        let deadline = Instant::now() + DEADLINE;
        while server.fingerprint.is_empty() || !plain_up || !tls_up {
            let left = deadline.saturating_duration_since(Instant::now());
            match banner.recv_timeout(left) {
                Ok(line) => {
                    plain_up |= line.contains(&plain_ready);
                    tls_up |= line.contains(&tls_ready);
                    if let Some((_, rest)) = line.split_once("SHA-256 fingerprint: ") {
                        server.fingerprint = parse_fingerprint(rest)
                            .unwrap_or_else(|| panic!("malformed fingerprint in banner: {line}"));
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    // Stdout closed: the process has exited or is about to.
                    let status = server.wait_for_exit();
                    return Err(StartFailure::Exited(format!(
                        "chinwag serve exited ({status}) before listening; its output:\n{}",
                        server.log_tail()
                    )));
                }
                Err(RecvTimeoutError::Timeout) => {
                    return Err(StartFailure::TimedOut(format!(
                        "chinwag serve did not print a fingerprint and both listening lines \
                         (`{plain_ready}`, `{tls_ready}`) within {DEADLINE:?}; its output:\n{}",
                        server.log_tail()
                    )));
                }
            }
        }
        Ok(server)
    }

    /// Waits a bounded time for the process to exit and describes how it ended.
    fn wait_for_exit(&mut self) -> String {
        let deadline = Instant::now() + DEADLINE;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.to_string(),
                Ok(None) => thread::sleep(POLL_INTERVAL),
                Err(error) => return format!("status unknown: {error}"),
            }
        }
        "still running after closing stdout".to_owned()
    }

    fn log_tail(&self) -> String {
        let log = self.log.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let skip = log.len().saturating_sub(REPORT_TAIL_LINES);
        log.iter().skip(skip).fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "  {line}");
            out
        })
    }
}

impl Drop for ChinwagProcess {
    fn drop(&mut self) {
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
                if log.len() == SERVER_LOG_LINES {
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

/// Accepts `AB:CD:…` with exactly 32 uppercase hex pairs, as the first word of `text`.
fn parse_fingerprint(text: &str) -> Option<String> {
    let word = text.split_whitespace().next()?;
    let pairs: Vec<&str> = word.split(':').collect();
    let well_formed = pairs.len() == 32
        && pairs
            .iter()
            .all(|pair| pair.len() == 2 && pair.chars().all(|c| c.is_ascii_digit() || ('A'..='F').contains(&c)));
    well_formed.then(|| word.to_owned())
}

/// The private tmux server; dropping it kills the server and every client in it.
struct Tmux {
    /// The socket that makes this server private to the test.
    socket: PathBuf,
    /// Our configuration, used instead of the user's `~/.tmux.conf`.
    config: PathBuf,
}

impl Tmux {
    fn new(dir: &Path) -> Self {
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
    fn new_session(&self, name: &str, home: &Path, argv: &[String]) {
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
        ];
        args.extend(argv.iter().map(String::as_str));
        if let Err(error) = self.run(&args) {
            panic!("cannot start {name} in tmux: {error}");
        }
    }

    fn capture(&self, session: &str) -> Result<String, String> {
        self.run(&["capture-pane", "-p", "-t", session])
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = self.run(&["kill-server"]);
    }
}

/// Everything the test runs. Fields drop in order: the clients go before the server.
struct World {
    /// Both clients, each in a session named after it.
    tmux: Tmux,
    /// The server under test.
    server: ChinwagProcess,
    /// irssi's log of every line it sent and received.
    irssi_rawlog: PathBuf,
    /// WeeChat's log of its server buffer, where connection and TLS errors show.
    weechat_server_log: PathBuf,
}

impl World {
    fn start(root: &Path, server: ChinwagProcess, weechat_version: &str) -> Self {
        let home = root.join("home");
        let irssi_home = root.join("irssi");
        let weechat_dir = root.join("weechat");
        for dir in [&home, &irssi_home, &weechat_dir] {
            std::fs::create_dir_all(dir).expect("create a client directory");
        }
        let tmux = Tmux::new(root);
        let irssi_rawlog = root.join("irssi-raw.log");
        let world = Self {
            tmux,
            irssi_rawlog,
            weechat_server_log: weechat_dir.join("logs").join("irc.server.chinwag.weechatlog"),
            server,
        };

        let port = world.server.tls_port.to_string();
        // Without nick and names here irssi fills them from the account running the test.
        let irssi_config = format!(
            "settings = {{\n  core = {{\n    nick = \"{IRSSI_NICK}\";\n    \
             user_name = \"{IRSSI_NICK}\";\n    real_name = \"irssi-e2e\";\n    \
             settings_autosave = \"no\";\n  }};\n}};\n"
        );
        std::fs::write(irssi_home.join("config"), irssi_config).expect("write irssi config");
        let irssi_startup = format!(
            "/network add -nick {IRSSI_NICK} -user {IRSSI_NICK} -realname irssi-e2e \
             -autosendcmd \"/join {CHANNEL}\" chinwag\n\
             /connect -tls -tls_pinned_cert {fingerprint} -rawlog {rawlog} -network chinwag \
             127.0.0.1 {port}\n",
            fingerprint = world.server.fingerprint,
            rawlog = world.irssi_rawlog.display(),
        );
        std::fs::write(irssi_home.join("startup"), irssi_startup).expect("write irssi startup");
        world.tmux.new_session(
            IRSSI,
            &home,
            &["irssi".to_owned(), format!("--home={}", irssi_home.display()), "-!".to_owned()],
        );

        // WeeChat 4.0 renamed the TLS options; 3.x only knows the old names.
        let major: u32 = weechat_version
            .split('.')
            .next()
            .and_then(|major| major.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read WeeChat's version from {weechat_version:?}"));
        let tls = if major >= 4 { "tls" } else { "ssl" };
        let weechat_fingerprint = world.server.fingerprint.replace(':', "");
        let server_option = |name: &str, value: &str| format!("/set irc.server.chinwag.{name} {value}");
        let weechat_commands = [
            // The logger otherwise writes every two minutes, too late for a failure report.
            "/set logger.file.flush_delay 0".to_owned(),
            format!("/server add chinwag 127.0.0.1/{port} -{tls}"),
            server_option(&format!("{tls}_fingerprint"), &weechat_fingerprint),
            server_option("nicks", WEECHAT_NICK),
            server_option("username", WEECHAT_NICK),
            server_option("realname", "weechat-e2e"),
            server_option("autojoin", CHANNEL),
            "/connect chinwag".to_owned(),
        ]
        .join(";");
        world.tmux.new_session(
            WEECHAT,
            &home,
            &[
                "weechat",
                "-a",
                "-s",
                "-P",
                "buflist,irc,logger",
                "-d",
                &weechat_dir.display().to_string(),
                "-r",
                &weechat_commands,
            ]
            .map(str::to_owned),
        );
        world
    }

    /// Types `text` into a client and presses Enter.
    fn type_line(&self, session: &str, text: &str) {
        let typed = self
            .tmux
            .run(&["send-keys", "-t", session, "-l", text])
            .and_then(|_| self.tmux.run(&["send-keys", "-t", session, "Enter"]));
        if let Err(error) = typed {
            self.fail(&format!("cannot type into {session}: {error}"));
        }
    }

    /// Waits until one line of `session`'s screen contains every one of `needles`.
    fn wait_for_line(&self, session: &str, what: &str, needles: &[&str]) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Ok(screen) = self.tmux.capture(session) {
                if screen.lines().any(|line| needles.iter().all(|needle| line.contains(needle))) {
                    return;
                }
            }
            if Instant::now() >= deadline {
                self.fail(&format!(
                    "timed out after {DEADLINE:?} waiting for {what}: no line of {session}'s \
                     screen contains all of {needles:?}"
                ));
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Fails the test with `reason` and everything useful for debugging it in CI.
    fn fail(&self, reason: &str) -> ! {
        let mut report = format!("{reason}\n");
        for session in [IRSSI, WEECHAT] {
            let screen = self.tmux.capture(session).unwrap_or_else(|error| error);
            let _ = write!(report, "\n===== {session} screen =====\n{}", trim_screen(&screen));
        }
        for (name, path) in
            [("irssi raw log", &self.irssi_rawlog), ("WeeChat server buffer log", &self.weechat_server_log)]
        {
            let _ = write!(report, "\n===== {name} (last lines) =====\n{}", file_tail(path));
        }
        let _ = write!(report, "\n===== chinwag output (last lines) =====\n{}", self.server.log_tail());
        panic!("{report}");
    }
}

/// A screen without its empty rows and without the blanks that pad every row, to keep failure
/// reports short. WeeChat's rows end in the nicklist's border, so borders go too.
fn trim_screen(screen: &str) -> String {
    screen
        .lines()
        .map(|line| line.trim_end_matches(|c: char| c.is_whitespace() || c == '│'))
        .filter(|line| !line.is_empty())
        .fold(String::new(), |mut out, line| {
            let _ = writeln!(out, "{line}");
            out
        })
}

/// The last lines of a file, or why it could not be read.
fn file_tail(path: &Path) -> String {
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
