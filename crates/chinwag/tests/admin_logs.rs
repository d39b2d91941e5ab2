//! Log files: the main log and the audit log are written to `DATA_DIR/logs`, the audit log holds
//! the security events with the peer's address, and neither (nor stderr) ever holds a password
//! or a SASL payload.

mod support;

use std::time::Duration;

use support::client::{sasl_plain, PlainClient};
use support::process::ServerProcess;

const ACCOUNT_PASSWORD: &str = "hunter2-correct-horse";
const WRONG_PASSWORD: &str = "wrong-battery-staple";
const OPER_PASSWORD: &str = "oper-secret-swordfish";
const WRONG_OPER_PASSWORD: &str = "oper-wrong-marlin";

#[test]
fn audit_events_are_logged_with_addresses_and_no_secret_is_ever_written() {
    let dir = tempfile::tempdir().expect("temp dir");
    let hash = chinwag_server::hash_password(OPER_PASSWORD).expect("hash");
    let config = dir.path().join("chinwag.toml");
    std::fs::write(&config, format!("[[oper]]\nname = \"root\"\npassword_hash = \"{hash}\"\n")).expect("config");
    let config_arg = config.display().to_string();
    let mut server = ServerProcess::start_with(
        dir.path(),
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--config", &config_arg, "--log-json"],
    );

    let mut alice = PlainClient::plain(server.plaintext[0], "alice");
    alice.register("alice");
    alice.send(&format!("REGISTER * * {ACCOUNT_PASSWORD}"));
    alice.expect("REGISTER SUCCESS", |m| m.command == "REGISTER" && m.params[0] == "SUCCESS");

    let mut bob = PlainClient::plain(server.plaintext[0], "bob");
    bob.register("bob");
    for (password, outcome) in [(WRONG_PASSWORD, "904"), (ACCOUNT_PASSWORD, "903")] {
        bob.send("AUTHENTICATE PLAIN");
        bob.expect_command("AUTHENTICATE");
        bob.send(&format!("AUTHENTICATE {}", sasl_plain("alice", password)));
        bob.expect_command(outcome);
    }
    bob.send(&format!("OPER root {WRONG_OPER_PASSWORD}"));
    bob.expect_command("464");
    bob.send(&format!("OPER root {OPER_PASSWORD}"));
    bob.expect_command("381");
    bob.send("KILL alice :testing kills");
    alice.expect_command("ERROR");
    bob.send("KLINE 5 192.0.2.* :test ban");
    bob.expect_command("NOTICE");
    let reload = std::process::Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["admin", "--data-dir"])
        .arg(dir.path())
        .arg("reload")
        .output()
        .expect("admin reload");
    assert!(reload.status.success(), "{reload:?}");

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status}");

    let logs = dir.path().join("logs");
    let read_all = |prefix: &str| -> String {
        let mut text = String::new();
        for entry in std::fs::read_dir(&logs).expect("logs dir") {
            let path = entry.expect("entry").path();
            if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)) {
                text.push_str(&std::fs::read_to_string(&path).expect("read log"));
            }
        }
        text
    };
    let main = read_all("chinwag.");
    let audit = read_all("audit.");
    assert!(main.contains("hub stopped"), "the main log is written:\n{main}");
    for line in main.lines().chain(audit.lines()) {
        serde_json::from_str::<serde_json::Value>(line).unwrap_or_else(|e| panic!("--log-json line {line:?}: {e}"));
    }
    for event in [
        "account registered",
        "login failed",
        "login succeeded",
        "OPER failed",
        "OPER succeeded",
        "KILL",
        "ban added",
        "configuration reloaded",
    ] {
        assert!(audit.contains(event), "the audit log lacks {event:?}:\n{audit}");
    }
    assert!(audit.contains("127.0.0.1"), "audit events carry the address:\n{audit}");
    assert!(!audit.contains("hub stopped"), "the audit log holds only security events");

    let secrets = [
        ACCOUNT_PASSWORD.to_owned(),
        WRONG_PASSWORD.to_owned(),
        OPER_PASSWORD.to_owned(),
        WRONG_OPER_PASSWORD.to_owned(),
        sasl_plain("alice", ACCOUNT_PASSWORD),
        sasl_plain("alice", WRONG_PASSWORD),
    ];
    let output = server.log_tail();
    for secret in &secrets {
        for (name, text) in [("main log", &main), ("audit log", &audit), ("stderr", &output)] {
            assert!(!text.contains(secret.as_str()), "the {name} contains a secret ({secret})");
        }
    }
}

#[test]
fn connections_disconnections_and_ping_timeouts_are_logged_at_info_in_the_file_and_on_the_console() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start_with(
        dir.path(),
        &["127.0.0.1:0"],
        &["127.0.0.1:0"],
        &["--set", "limits.ping_interval=1", "--set", "limits.ping_timeout=1"],
    );
    let mut alice = PlainClient::plain(server.plaintext[0], "alice");
    alice.register("alice");
    alice.send("QUIT :off to lunch");
    alice.expect_command("ERROR");
    // sleepy answers no PING: the server drops it once limits.ping_timeout has passed.
    let mut sleepy = PlainClient::plain(server.plaintext[0], "sleepy");
    sleepy.register("sleepy");
    let error = sleepy.expect_command("ERROR");
    assert!(error.params[0].contains("Ping timeout"), "{error:?}");

    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(15)).expect("exits");
    assert!(status.success(), "{status}");
    let mut main = String::new();
    for entry in std::fs::read_dir(dir.path().join("logs")).expect("logs dir") {
        let path = entry.expect("entry").path();
        if path.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("chinwag.")) {
            main.push_str(&std::fs::read_to_string(&path).expect("read log"));
        }
    }
    let console = server.log_tail();
    for (name, text) in [("log file", &main), ("console", &console)] {
        let has = |needles: &[&str]| text.lines().any(|l| l.contains("INFO") && needles.iter().all(|n| l.contains(n)));
        assert!(
            has(&["connected", "ip=127.0.0.1", "transport=\"plaintext\""])
                || has(&["connected", "ip=127.0.0.1", "transport=plaintext"]),
            "{name}: no connection line:\n{text}"
        );
        assert!(
            has(&["disconnected", "nick=\"alice\"", "ip=127.0.0.1", "duration_secs=", "off to lunch"])
                || has(&["disconnected", "nick=alice", "ip=127.0.0.1", "duration_secs=", "off to lunch"]),
            "{name}: no disconnection line for alice with nick, address, duration and reason:\n{text}"
        );
        assert!(
            text.lines().any(|l| l.contains("INFO") && l.contains("ping timeout") && l.contains("sleepy")),
            "{name}: no ping timeout line:\n{text}"
        );
        assert!(
            text.lines().any(|l| l.contains("disconnected") && l.contains("sleepy") && l.contains("Ping timeout")),
            "{name}: sleepy's disconnection names the reason:\n{text}"
        );
    }
}
