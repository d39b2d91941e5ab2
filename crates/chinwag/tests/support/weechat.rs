//! WeeChat in a tmux session, pointed at chinwag over TLS with the certificate pinned.
//!
//! Worked out with WeeChat 3.8 (Debian 12). `weechat -a -s -P buflist,irc,logger -d <dir> -r
//! "<commands>"`: `-a` autoconnects nothing, `-s` loads no scripts, `-P` loads only the plugins
//! named (not `script`, `spell`, `relay`, `exec`, …, which can reach the network or listen;
//! `logger` writes the server buffer to a file for failure reports), and `-d` keeps config,
//! data, logs and cache in the test's directory instead of the XDG directories of `$HOME`. The
//! commands, separated by ';' (so no value may contain one):
//! ```text
//! /set logger.file.flush_delay 0
//! /server add chinwag 127.0.0.1/<tls port> -ssl
//! /set irc.server.chinwag.ssl_fingerprint <abcd…>
//! /set irc.server.chinwag.nicks <nick>
//! /set irc.server.chinwag.username <nick>
//! /set irc.server.chinwag.realname weechat-e2e
//! … whatever the test adds (autojoin, SASL) …
//! /connect chinwag
//! ```
//! WeeChat 4.0 renamed `-ssl`/`ssl_*` to `-tls`/`tls_*`, so the names are chosen from
//! `weechat --version`; the SASL options (`sasl_mechanism`, `sasl_username`, `sasl_password`,
//! `sasl_fail`) kept their names. The fingerprint is the server's SHA-256 as hex digits without
//! ':' (WeeChat picks the hash by the length). When it is set WeeChat checks only the
//! fingerprint, not the CA or host name; a wrong one fails the handshake with "certificate
//! fingerprint does NOT match".
//!
//! WeeChat keeps the last lines it sent and received (`irc.look.raw_messages`, 256 by default)
//! and shows them in the buffer `/server raw` opens; [`raw_messages`] reads that buffer for
//! failure reports. The logger does not write that buffer to a file.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::tmux::{trim_screen, Tmux};

/// The name WeeChat knows the chinwag server by, in commands, options and log file names.
pub const SERVER: &str = "chinwag";
/// How long a failure report waits for the raw buffer to show.
const RAW_BUFFER_WAIT: Duration = Duration::from_secs(5);

/// WeeChat's version, as far as the tests care.
#[derive(Debug, Clone, Copy)]
pub struct Version {
    /// The major version: 4.0 renamed the TLS options.
    major: u32,
}

impl Version {
    /// Runs `weechat --version`; fails the test, saying what to install, if it cannot.
    pub fn detect() -> Self {
        let version = super::require_tool("weechat", "--version");
        let major = version
            .split('.')
            .next()
            .and_then(|major| major.trim().parse().ok())
            .unwrap_or_else(|| panic!("cannot read WeeChat's version from {version:?}"));
        Self { major }
    }

    /// The word in the TLS option names: `tls` from 4.0 on, `ssl` before.
    pub fn tls(self) -> &'static str {
        if self.major >= 4 {
            "tls"
        } else {
            "ssl"
        }
    }
}

/// A `/set` of one of the chinwag server's options.
pub fn server_option(name: &str, value: &str) -> String {
    format!("/set irc.server.{SERVER}.{name} {value}")
}

/// The commands that make WeeChat connect to chinwag on `tls_port` as `nick`, trusting only
/// the certificate with `fingerprint` (`AB:CD:…`), with `extra` set before `/connect`.
pub fn connect_commands(version: Version, tls_port: u16, fingerprint: &str, nick: &str, extra: &[String]) -> String {
    let tls = version.tls();
    let mut commands = vec![
        // The logger otherwise writes every two minutes, too late for a failure report.
        "/set logger.file.flush_delay 0".to_owned(),
        format!("/server add {SERVER} 127.0.0.1/{tls_port} -{tls}"),
        server_option(&format!("{tls}_fingerprint"), &fingerprint.replace(':', "")),
        server_option("nicks", nick),
        server_option("username", nick),
        server_option("realname", "weechat-e2e"),
    ];
    commands.extend_from_slice(extra);
    commands.push(format!("/connect {SERVER}"));
    for command in &commands {
        assert!(!command.contains(';'), "WeeChat would split {command:?} at its ';'");
    }
    commands.join(";")
}

/// Starts WeeChat in `session` with `dir` as its only directory, running `commands`.
pub fn start(tmux: &Tmux, session: &str, home: &Path, dir: &Path, commands: &str) {
    std::fs::create_dir_all(dir).expect("create WeeChat's directory");
    let dir = dir.display().to_string();
    let argv = ["weechat", "-a", "-s", "-P", "buflist,irc,logger", "-d", &dir, "-r", commands];
    tmux.new_session(session, home, &argv.map(str::to_owned));
}

/// The logger's file for the chinwag server buffer, where connection, TLS and SASL messages
/// show.
pub fn server_buffer_log(dir: &Path) -> PathBuf {
    dir.join("logs").join(format!("irc.server.{SERVER}.weechatlog"))
}

/// The logger's file for the private buffer with `nick`.
pub fn private_buffer_log(dir: &Path, nick: &str) -> PathBuf {
    dir.join("logs").join(format!("irc.{SERVER}.{nick}.weechatlog"))
}

/// For failure reports: switches `session` to its raw buffer and returns the screen, which
/// shows the last lines sent (`<--`) and received (`-->`), tags included. Typing into the
/// client changes what it shows, so call this only once the test has failed.
pub fn raw_messages(tmux: &Tmux, session: &str) -> String {
    if let Err(error) = tmux.type_line(session, "/server raw") {
        return format!("cannot open the raw buffer: {error}\n");
    }
    // Whether or not the title shows in time, the screen says what there is to say.
    let _ = tmux.find_line(session, &["IRC raw messages"], Instant::now() + RAW_BUFFER_WAIT);
    tmux.capture(session).map_or_else(|error| format!("{error}\n"), |screen| trim_screen(&screen))
}
