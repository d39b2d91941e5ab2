//! `chinwag chat` logs in with SASL SCRAM-SHA-256 against the real server: the server's audit
//! log shows the SCRAM login, a wrong password fails without a second try over PLAIN, and the
//! password never crosses the connection.

mod support;

use std::path::Path;
use std::time::Instant;

use support::chat::ChatProcess;
use support::process::ServerProcess;
use support::WAIT;

const PASSWORD: &str = "correct-horse-battery";

/// The server's audit log (`DATA_DIR/logs/audit.*`) once it holds a line with every needle.
fn audit_line(data_dir: &Path, needles: &[&str]) -> Option<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut text = String::new();
        for entry in std::fs::read_dir(data_dir.join("logs")).into_iter().flatten().flatten() {
            if entry.file_name().to_string_lossy().starts_with("audit.") {
                text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
            }
        }
        if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
            return Some(line.to_owned());
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(support::POLL_INTERVAL);
    }
}

fn audit(data_dir: &Path) -> String {
    let mut text = String::new();
    for entry in std::fs::read_dir(data_dir.join("logs")).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with("audit.") {
            text.push_str(&std::fs::read_to_string(entry.path()).unwrap_or_default());
        }
    }
    text
}

#[test]
fn the_client_logs_in_with_scram_and_a_wrong_password_is_not_retried_in_plain() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("server");
    let server = ServerProcess::start(&data, &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let addr = server.tls[0].to_string();
    let home = dir.path().join("alice");

    let mut alice = ChatProcess::start("alice", &home, &[&addr, "--nick", "alice", "--accept-new-cert"], &[]);
    alice.type_line(&format!("/register alice {PASSWORD}"));
    alice.expect(&["account alice registered"]);
    assert!(alice.finish().success());

    let args = [addr.as_str(), "--nick", "alice", "--account", "alice"];
    let mut again = ChatProcess::start("alice", &home, &args, &[("CHINWAG_PASSWORD", PASSWORD)]);
    again.expect(&["logged in as alice"]);
    again.expect(&["you are alice"]);
    assert!(again.finish().success());
    let line = audit_line(&data, &["login succeeded", "alice"])
        .unwrap_or_else(|| panic!("no login in the audit log:\n{}", audit(&data)));
    assert!(line.contains("scram"), "the login was not SCRAM: {line}");

    let mut wrong = ChatProcess::start("alice", &home, &args, &[("CHINWAG_PASSWORD", "wrong-battery-staple")]);
    wrong.expect(&["login failed", "Invalid account name or password"]);
    wrong.expect(&["you are alice"]);
    assert!(wrong.finish().success());
    assert!(!wrong.has_seen(&["trying PLAIN"]), "{:#?}", wrong.seen);
    audit_line(&data, &["login failed", "scram"]).unwrap_or_else(|| panic!("{}", audit(&data)));
    let text = audit(&data);
    let failures: Vec<&str> = text.lines().filter(|l| l.contains("login failed")).collect();
    assert_eq!(failures.len(), 1, "one failed attempt, over SCRAM only:\n{text}");
    assert!(!text.contains(PASSWORD), "a password reached the audit log");
}
