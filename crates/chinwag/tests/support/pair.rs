//! irssi and WeeChat side by side in one private tmux ([`Pair`]), each over pinned TLS to a
//! chinwag server (the same one, or two nodes of a network), both joining [`CHANNEL`]: how each
//! is started is in [`super::irssi`] and [`super::weechat`], why in `third_party_clients.rs`.
//! A failure report shows both screens, both clients' logs and every server's output.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::irssi::Irssi;
use super::process::ServerProcess;
use super::tmux::{trim_screen, Tmux};
use super::{file_tail, weechat, WAIT};

/// The tmux session names, which are also the names used in failure reports.
pub const IRSSI: &str = "irssi";
pub const WEECHAT: &str = "weechat";
pub const IRSSI_NICK: &str = "irssiuser";
pub const WEECHAT_NICK: &str = "weeuser";
pub const CHANNEL: &str = "#general";

/// The two clients. Dropping it ends both (before the servers, which it only borrows).
pub struct Pair<'a> {
    tmux: Tmux,
    /// The servers by name, irssi's first and WeeChat's last.
    servers: Vec<(&'a str, &'a ServerProcess)>,
    /// irssi's log of every line it sent and received.
    irssi_rawlog: PathBuf,
    /// WeeChat's directory, with its logs.
    weechat_dir: PathBuf,
}

impl<'a> Pair<'a> {
    /// Starts irssi on the first of `servers` and WeeChat on the last, in `root`. Fails the
    /// test, saying what to install, if a tool is missing.
    pub fn start(root: &Path, servers: Vec<(&'a str, &'a ServerProcess)>) -> Self {
        super::require_tool("tmux", "-V");
        super::require_tool("irssi", "--version");
        let version = weechat::Version::detect();
        let home = root.join("home");
        std::fs::create_dir_all(&home).expect("create the clients' home");
        let pair = Pair {
            tmux: Tmux::new(root),
            servers,
            irssi_rawlog: root.join("irssi-raw.log"),
            weechat_dir: root.join("weechat"),
        };
        let (Some((_, irssi_server)), Some((_, weechat_server))) = (pair.servers.first(), pair.servers.last()) else {
            panic!("a pair of clients needs a server")
        };
        let (Some(irssi_tls), Some(weechat_tls)) = (irssi_server.tls.first(), weechat_server.tls.first()) else {
            pair.fail("a server has no TLS listener")
        };
        let irssi = Irssi {
            nick: IRSSI_NICK,
            channel: CHANNEL,
            tls_port: irssi_tls.port(),
            fingerprint: &irssi_server.fingerprint,
            rawlog: &pair.irssi_rawlog,
        };
        irssi.start(&pair.tmux, IRSSI, &home, &root.join("irssi"));
        let commands = weechat::connect_commands(
            version,
            weechat_tls.port(),
            &weechat_server.fingerprint,
            WEECHAT_NICK,
            &[weechat::server_option("autojoin", CHANNEL)],
        );
        weechat::start(&pair.tmux, WEECHAT, &home, &pair.weechat_dir, &commands);
        pair
    }

    /// Waits until each client shows its own JOIN and the other's nick in the channel.
    pub fn wait_until_both_joined(&self) {
        self.wait_for_line(IRSSI, "irssi's own join", &[IRSSI_NICK, "has joined", CHANNEL]);
        self.wait_for_line(WEECHAT, "WeeChat's own join", &[WEECHAT_NICK, "has joined", CHANNEL]);
        self.wait_for_line(IRSSI, "WeeChat's nick in irssi's channel", &[WEECHAT_NICK]);
        self.wait_for_line(WEECHAT, "irssi's nick in WeeChat's nicklist", &[IRSSI_NICK]);
    }

    /// Each says a line in the channel that the other shows, then each sends the other a
    /// private message. Both clients open a query for an incoming private message in the
    /// background, so the receiver opens the query first and the message shows in front.
    pub fn talk(&self, nonce: &str) {
        let from_irssi = format!("channel-hello-from-irssi-{nonce}");
        self.type_line(IRSSI, &from_irssi);
        self.wait_for_line(WEECHAT, "irssi's channel message", &[IRSSI_NICK, &from_irssi]);
        let from_weechat = format!("channel-hello-from-weechat-{nonce}");
        self.type_line(WEECHAT, &from_weechat);
        self.wait_for_line(IRSSI, "WeeChat's channel message", &[WEECHAT_NICK, &from_weechat]);

        let to_weechat = format!("private-from-irssi-{nonce}");
        self.type_line(WEECHAT, &format!("/query {IRSSI_NICK}"));
        self.type_line(IRSSI, &format!("/msg {WEECHAT_NICK} {to_weechat}"));
        self.wait_for_line(WEECHAT, "irssi's private message", &[IRSSI_NICK, &to_weechat]);
        let to_irssi = format!("private-from-weechat-{nonce}");
        self.type_line(IRSSI, &format!("/query {WEECHAT_NICK}"));
        self.type_line(WEECHAT, &format!("/msg {IRSSI_NICK} {to_irssi}"));
        self.wait_for_line(IRSSI, "WeeChat's private message", &[WEECHAT_NICK, &to_irssi]);
    }

    /// Types `text` into a client and presses Enter.
    pub fn type_line(&self, session: &str, text: &str) {
        if let Err(error) = self.tmux.type_line(session, text) {
            self.fail(&format!("cannot type into {session}: {error}"));
        }
    }

    /// Waits until one line of `session`'s screen contains every one of `needles`.
    pub fn wait_for_line(&self, session: &str, what: &str, needles: &[&str]) {
        if self.tmux.find_line(session, needles, Instant::now() + WAIT).is_none() {
            self.fail(&format!(
                "timed out after {WAIT:?} waiting for {what}: no line of {session}'s screen contains all of \
                 {needles:?}"
            ));
        }
    }

    /// Fails the test with `reason` and everything useful for debugging it in CI.
    pub fn fail(&self, reason: &str) -> ! {
        let mut report = format!("{reason}\n");
        for session in [IRSSI, WEECHAT] {
            let screen = self.tmux.capture(session).unwrap_or_else(|error| error);
            let _ = write!(report, "\n===== {session} screen =====\n{}", trim_screen(&screen));
        }
        let logs = [
            ("irssi raw log", self.irssi_rawlog.clone()),
            ("WeeChat server buffer log", weechat::server_buffer_log(&self.weechat_dir)),
        ];
        for (name, path) in logs {
            let _ = write!(report, "\n===== {name} (last lines) =====\n{}", file_tail(&path));
        }
        let raw = weechat::raw_messages(&self.tmux, WEECHAT);
        let _ = write!(report, "\n===== WeeChat raw lines (<-- sent, --> received) =====\n{raw}");
        for (name, server) in &self.servers {
            let _ = write!(report, "\n===== {name} output (last lines) =====\n{}", server.log_tail());
        }
        panic!("{report}");
    }
}
