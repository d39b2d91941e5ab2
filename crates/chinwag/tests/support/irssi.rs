//! irssi in a tmux session, pointed at chinwag over TLS with the certificate pinned and one
//! channel joined once welcomed. How and why is in `third_party_clients.rs`'s documentation.

use std::path::Path;

use super::tmux::Tmux;

/// Where one irssi connects and who it is.
pub struct Irssi<'a> {
    pub nick: &'a str,
    pub channel: &'a str,
    pub tls_port: u16,
    /// The server's SHA-256 fingerprint as its banner prints it (`AB:CD:…`).
    pub fingerprint: &'a str,
    /// Where irssi writes every line it sends and receives.
    pub rawlog: &'a Path,
}

impl Irssi<'_> {
    /// Writes irssi's `config` and `startup` into `irssi_home` and starts it in `session`, with
    /// `home` as `$HOME`.
    pub fn start(&self, tmux: &Tmux, session: &str, home: &Path, irssi_home: &Path) {
        let Irssi { nick, channel, tls_port, fingerprint, rawlog } = self;
        std::fs::create_dir_all(irssi_home).expect("create irssi's home");
        // Without nick and names here irssi fills them from the account running the test.
        let config = format!(
            "settings = {{\n  core = {{\n    nick = \"{nick}\";\n    \
             user_name = \"{nick}\";\n    real_name = \"irssi-e2e\";\n    \
             settings_autosave = \"no\";\n  }};\n}};\n"
        );
        std::fs::write(irssi_home.join("config"), config).expect("write irssi config");
        let startup = format!(
            "/network add -nick {nick} -user {nick} -realname irssi-e2e \
             -autosendcmd \"/join {channel}\" chinwag\n\
             /connect -tls -tls_pinned_cert {fingerprint} -rawlog {rawlog} -network chinwag \
             127.0.0.1 {tls_port}\n",
            rawlog = rawlog.display(),
        );
        std::fs::write(irssi_home.join("startup"), startup).expect("write irssi startup");
        tmux.new_session(
            session,
            home,
            &["irssi".to_owned(), format!("--home={}", irssi_home.display()), "-!".to_owned()],
        );
    }
}
