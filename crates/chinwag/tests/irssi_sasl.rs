//! End-to-end test with the real irssi, following the README's irssi recipe word for word: a
//! saved network and server with the certificate pinned, an account registered from irssi,
//! SASL PLAIN added to the network, saved; after a restart of irssi, `/connect chinwag` logs in
//! with SASL over TLS and irssi talks in a room as the account.
//!
//! What it is not: a protocol test (the server's own tests check SASL line by line). It answers
//! "does what the README tells an irssi user to type work?".
//!
//! Needs `tmux` and `irssi` (see `support::INSTALL_HINT`); the test fails, saying what to
//! install, if either is missing.
//!
//! # The recipe, and why each part is there (irssi 1.4.3, Debian 12)
//!
//! ```text
//! /network add chinwag
//! /server add -network chinwag -tls -tls_pinned_cert <AB:CD:…> -notls_verify 127.0.0.1 <port>
//! /connect chinwag
//! /msg NickServ REGISTER <password>
//! /network add -sasl_mechanism PLAIN -sasl_username <nick> -sasl_password <password> chinwag
//! /save
//! ```
//!
//! A saved server has `tls_verify` on by default: irssi then checks the CA chain too, and a
//! self-signed certificate fails with "Could not verify TLS servers certificate" whatever the
//! pin. `-notls_verify` turns only that off; the pin is still checked ("Pinned certificate
//! mismatch" for another certificate, which the test checks too). `/network add` on an existing network changes it. `/save`
//! writes both to irssi's config, which the second irssi reads at start.

mod support;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use support::client::PlainClient;
use support::process::ServerProcess;
use support::tmux::{trim_screen, Tmux};
use support::{file_tail, WAIT};

const NICK: &str = "irssiuser";
const CHANNEL: &str = "#general";
/// The irssi that registers the account and saves the recipe.
const FIRST: &str = "irssi-first";
/// The irssi started again from the saved config, which logs in with SASL.
const AGAIN: &str = "irssi-again";
/// An irssi whose saved pin is not the server's certificate.
const WRONG_PIN: &str = "irssi-wrong-pin";

#[test]
fn irssi_follows_the_readme_recipe_and_logs_in_with_sasl_over_pinned_tls() {
    let started = Instant::now();
    support::require_tool("tmux", "-V");
    support::require_tool("irssi", "--version");
    let tmp = tempfile::tempdir().expect("create a temporary directory");
    let root = tmp.path();
    let server = ServerProcess::start(&root.join("data"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let world = World::new(root, server);
    let password = format!("irssi-password-{}", support::nonce());
    let Some(port) = world.server.tls.first().map(|a| a.port()) else { world.fail("the server has no TLS listener") };

    world.start(FIRST);
    for line in recipe_before_register(&world.server.fingerprint, port) {
        world.type_line(FIRST, &line);
    }
    world.wait_for_line(FIRST, "the end of the MOTD", &["End of /MOTD"]);
    world.type_line(FIRST, &format!("/msg NickServ REGISTER {password}"));
    // NickServ's notice opens a window of its own; the 900 shows in the status window.
    world.wait_for_line(FIRST, "the login that comes with the account", &["You are now logged in as", NICK]);
    world.type_line(
        FIRST,
        &format!("/network add -sasl_mechanism PLAIN -sasl_username {NICK} -sasl_password {password} chinwag"),
    );
    world.type_line(FIRST, "/save");
    world.wait_for_line(FIRST, "the config saved", &["Saved configuration"]);
    world.type_line(FIRST, "/quit");

    // Someone in the room, to see irssi talk as the account.
    let mut bob = PlainClient::plain(world.server.plaintext[0], "bob");
    bob.request_caps("account-tag");
    bob.send("CAP END");
    bob.register("bob");
    bob.join(CHANNEL);

    world.start(AGAIN);
    world.type_line(AGAIN, "/connect chinwag");
    world.wait_for_line(AGAIN, "the SASL login (900)", &["You are now logged in as", NICK]);
    world.wait_for_line(AGAIN, "SASL success (903)", &["SASL authentication succeeded"]);
    world.type_line(AGAIN, &format!("/join {CHANNEL}"));
    world.wait_for_line(AGAIN, "irssi's own join", &[NICK, "has joined", CHANNEL]);
    let text = format!("hello as an account {}", support::nonce());
    world.type_line(AGAIN, &text);
    let said = bob.expect("irssi's message", |m| m.command == "PRIVMSG" && m.params.get(1) == Some(&text));
    assert_eq!(said.tag("account"), Some(NICK), "irssi talks as its account: {said:?}");

    // `-notls_verify` keeps the pin: the same saved config with another fingerprint is refused.
    let saved = std::fs::read_to_string(world.irssi_home.join("config")).expect("irssi's saved config");
    let fingerprint = &world.server.fingerprint;
    assert!(saved.contains(fingerprint.as_str()), "the pin was saved: {saved}");
    let wrong = format!("{}{}", if fingerprint.starts_with('0') { "1" } else { "0" }, &fingerprint[1..]);
    std::fs::write(world.irssi_home.join("config"), saved.replace(fingerprint.as_str(), &wrong)).expect("write");
    world.start(WRONG_PIN);
    world.type_line(WRONG_PIN, "/connect chinwag");
    world.wait_for_line(WRONG_PIN, "the refusal of another certificate", &["Pinned certificate mismatch"]);

    eprintln!("irssi SASL test passed in {:.1?}", started.elapsed());
}

/// The README's first three lines, for this server.
fn recipe_before_register(fingerprint: &str, port: u16) -> [String; 3] {
    [
        "/network add chinwag".to_owned(),
        format!("/server add -network chinwag -tls -tls_pinned_cert {fingerprint} -notls_verify 127.0.0.1 {port}"),
        "/connect chinwag".to_owned(),
    ]
}

/// Everything the test runs. Fields drop in order: the clients go before the server.
struct World {
    tmux: Tmux,
    server: ServerProcess,
    /// irssi's home (`--home`): its config, written by `/save` and read by the next irssi.
    irssi_home: PathBuf,
    /// `$HOME` for the clients, so nothing of the user's is read.
    home: PathBuf,
}

impl World {
    fn new(root: &Path, server: ServerProcess) -> Self {
        let (home, irssi_home) = (root.join("home"), root.join("irssi"));
        for dir in [&home, &irssi_home] {
            std::fs::create_dir_all(dir).expect("create a client directory");
        }
        // Without names here irssi takes them from the account running the test. No
        // `settings_autosave = "no"`: the recipe's `/save` is what keeps the settings.
        let config = format!(
            "settings = {{\n  core = {{\n    nick = \"{NICK}\";\n    user_name = \"{NICK}\";\n    \
             real_name = \"irssi-e2e\";\n  }};\n}};\n"
        );
        std::fs::write(irssi_home.join("config"), config).expect("write irssi config");
        Self { tmux: Tmux::new(root), server, irssi_home, home }
    }

    /// Starts irssi (`-!`: autoconnect nothing) in `session` on the shared home.
    fn start(&self, session: &str) {
        let argv = ["irssi".to_owned(), format!("--home={}", self.irssi_home.display()), "-!".to_owned()];
        self.tmux.new_session(session, &self.home, &argv);
        // irssi reads its input once its screen is up.
        self.wait_for_line(session, "irssi's start", &["Irssi v"]);
    }

    fn type_line(&self, session: &str, text: &str) {
        if let Err(error) = self.tmux.type_line(session, text) {
            self.fail(&format!("cannot type into {session}: {error}"));
        }
    }

    /// Waits until one line of `session`'s screen contains every one of `needles`.
    fn wait_for_line(&self, session: &str, what: &str, needles: &[&str]) {
        if self.tmux.find_line(session, needles, Instant::now() + WAIT).is_none() {
            self.fail(&format!(
                "timed out after {WAIT:?} waiting for {what}: no line of {session}'s screen \
                 contains all of {needles:?}"
            ));
        }
    }

    /// Fails with `reason`, both irssi screens, irssi's config and the server's output.
    fn fail(&self, reason: &str) -> ! {
        let mut report = format!("{reason}\n");
        for session in [FIRST, AGAIN, WRONG_PIN] {
            let screen = self.tmux.capture(session).unwrap_or_else(|error| error);
            let _ = write!(report, "\n===== {session} screen =====\n{}", trim_screen(&screen));
        }
        let config = self.irssi_home.join("config");
        let _ = write!(report, "\n===== irssi config (last lines) =====\n{}", file_tail(&config));
        let _ = write!(report, "\n===== chinwag output (last lines) =====\n{}", self.server.log_tail());
        panic!("{report}");
    }
}
