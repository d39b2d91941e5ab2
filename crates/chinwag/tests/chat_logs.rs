//! `chinwag chat`'s local logs against the real server over TLS: the chat logs a user asked
//! for (one file per server and conversation, safe names, private modes, formatting stripped,
//! `/log off` and `/log on`), and none for a user who did not; the client log of connections,
//! logins and certificates, which never holds a password.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use support::chat::ChatProcess;
use support::process::ServerProcess;

fn client(name: &str, home: &Path, server: &ServerProcess, extra: &[&str]) -> ChatProcess {
    let addr = server.tls[0].to_string();
    let mut args = vec![addr.as_str(), "--nick", name, "--accept-new-cert"];
    args.extend_from_slice(extra);
    ChatProcess::start(name, home, &args, &[])
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).permissions().mode() & 0o777
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// The lines of a log without their timestamps, after checking that each has one.
fn lines_of(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    text.lines()
        .map(|line| {
            let (time, rest) = line.split_once(' ').unwrap_or_else(|| panic!("no timestamp: {line:?}"));
            assert!(chinwag_proto::parse_rfc3339_ms(time).is_some(), "not a timestamp: {line:?}");
            rest.to_owned()
        })
        .collect()
}

#[test]
fn chat_logs_keep_each_conversation_in_its_own_safe_private_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let logs = dir.path().join("alice-logs");
    let logs_arg = logs.display().to_string();
    let mut alice = client("alice", &dir.path().join("alice"), &server, &["--join", "general", "--log-dir", &logs_arg]);
    alice.expect(&["chat logs on", &logs_arg]);
    alice.expect(&["[#general] --> alice joined"]);
    let mut bob = client("bob", &dir.path().join("bob"), &server, &["--join", "general"]);
    bob.expect(&["[#general] --> bob joined"]);
    alice.expect(&["[#general] --> bob joined"]);

    bob.type_line("hello \u{2}bold\u{2} \u{3}04red\u{3}");
    alice.expect(&["<bob> hello bold red"]);
    alice.type_line("hi bob");
    alice.expect(&["<alice> hi bob"]);
    bob.type_line("/me waves");
    alice.expect(&["* bob waves"]);
    bob.type_line("/msg alice psst");
    alice.expect(&["[bob] <bob> psst"]);

    // A room whose name tries to climb out of the log directory.
    bob.type_line("/join #../../escape");
    bob.expect(&["[#../../escape] --> bob joined"]);
    alice.type_line("/join #../../escape");
    alice.expect(&["[#../../escape] --> alice joined"]);
    bob.type_line("/topic #../../escape nothing to see");
    alice.expect(&["bob set the topic: nothing to see"]);
    bob.type_line("/kick alice out you go");
    alice.expect(&["alice was kicked by bob"]);

    // Off and on again: what is said meanwhile is not kept.
    alice.type_line("/log off");
    alice.expect(&["chat logs are off"]);
    bob.type_line("/switch #general");
    bob.type_line("not for the record");
    alice.expect(&["<bob> not for the record"]);
    alice.type_line("/log on");
    alice.expect(&["chat logs on"]);
    bob.type_line("/leave #general see you");
    alice.expect(&["[#general] <-- bob left"]);
    assert!(alice.finish().success());
    assert!(bob.finish().success());

    let server_dir = logs.join(format!("127.0.0.1%3A{}", server.tls[0].port()));
    let general = server_dir.join("#general.log");
    assert_eq!(
        lines_of(&general),
        [
            "--> alice joined",
            "--> bob joined",
            "<bob> hello bold red",
            "<alice> hi bob",
            "* bob waves",
            "<-- bob left (see you)",
        ]
    );
    assert_eq!(lines_of(&server_dir.join("bob.log")), ["<bob> psst"]);
    let escape = server_dir.join("#..%2F..%2Fescape.log");
    let escape_lines = lines_of(&escape);
    assert_eq!(escape_lines[0], "--> alice joined");
    assert!(escape_lines.contains(&"-- bob set the topic: nothing to see".to_owned()), "{escape_lines:?}");
    assert_eq!(escape_lines.last().map(String::as_str), Some("<-- alice was kicked by bob (out you go)"));

    // Nothing outside the server's directory, and every file and directory private.
    let kept = files_under(&logs);
    assert_eq!(kept.len(), 3, "{kept:?}");
    assert!(kept.iter().all(|p| p.parent() == Some(server_dir.as_path())), "{kept:?}");
    let escaped = files_under(dir.path()).into_iter().filter(|p| p.ends_with("escape.log")).collect::<Vec<_>>();
    assert!(escaped.is_empty(), "a log left its directory: {escaped:?}");
    assert_eq!((mode(&logs), mode(&server_dir)), (0o700, 0o700));
    for path in files_under(&logs) {
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
}

#[test]
fn without_log_dir_or_log_on_no_chat_log_is_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = ServerProcess::start(&dir.path().join("server"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let home = dir.path().join("carol");
    let mut carol = client("carol", &home, &server, &["--join", "general"]);
    carol.expect(&["[#general] --> carol joined"]);
    let mut dave = client("dave", &dir.path().join("dave"), &server, &["--join", "general"]);
    dave.expect(&["[#general] --> dave joined"]);
    dave.type_line("is anyone writing this down?");
    carol.expect(&["<dave> is anyone writing this down?"]);
    dave.type_line("/msg carol in private too");
    carol.expect(&["[dave] <dave> in private too"]);
    carol.type_line("/log");
    carol.expect(&["chat logs are off"]);
    assert!(carol.finish().success());
    for path in files_under(&home) {
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            !text.contains("writing this down") && !text.contains("in private too"),
            "chat text reached {} with logging off",
            path.display()
        );
    }
    assert!(!home.join(".local/share/chinwag/logs").exists());
}

#[test]
fn the_client_log_records_connections_logins_and_certificates_but_no_password() {
    const PASSWORD: &str = "correct-horse-battery";
    const WRONG: &str = "wrong-battery-staple";
    let dir = tempfile::tempdir().expect("tempdir");
    let mut server = ServerProcess::start(&dir.path().join("server"), &["127.0.0.1:0"], &["127.0.0.1:0"]);
    let addr = server.tls[0].to_string();
    let home = dir.path().join("carol");

    let mut carol = client("carol", &home, &server, &[]);
    carol.type_line(&format!("/register carol {PASSWORD}"));
    carol.expect(&["account carol registered"]);
    assert!(carol.finish().success());

    let args = [addr.as_str(), "--nick", "carol", "--account", "carol"];
    let mut wrong = ChatProcess::start("carol", &home, &args, &[("CHINWAG_PASSWORD", WRONG)]);
    wrong.expect(&["login failed"]);
    assert!(wrong.finish().success());

    let mut right = ChatProcess::start("carol", &home, &args, &[("CHINWAG_PASSWORD", PASSWORD)]);
    right.expect(&["logged in as carol"]);
    right.expect(&["you are carol"]);
    server.kill_9();
    right.expect(&["disconnected"]);
    right.expect(&["reconnecting in"]);
    assert!(right.finish().success());

    let path = home.join(".local/share/chinwag/client.log");
    let lines = lines_of(&path);
    let has = |needles: &[&str]| lines.iter().any(|l| needles.iter().all(|n| l.contains(n)));
    for needles in [
        &["pinned the certificate of", addr.as_str(), server.fingerprint.as_str()][..],
        &["connecting to", &addr],
        &["connected to", &addr, "over TLS", &server.fingerprint],
        &["account carol registered"],
        &["error: login failed"],
        &["logged in as carol"],
        &["disconnected:"],
        &["reconnecting in"],
        &["closed"],
    ] {
        assert!(has(needles), "the client log lacks {needles:?}:\n{}", lines.join("\n"));
    }
    let text = std::fs::read_to_string(&path).expect("read");
    assert!(!text.contains(PASSWORD) && !text.contains(WRONG), "a password reached the client log:\n{text}");
    assert!(!text.contains("<password>"), "nothing should even have needed hiding:\n{text}");
    assert_eq!((mode(&path), mode(path.parent().expect("dir"))), (0o600, 0o700));
}
