//! `chinwag admin` against a real server over its control socket: every command, table and JSON
//! output, reload, and the socket's protection (mode 0600, owner only, one server per data
//! directory).

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::admin;
use support::client::{Incoming, PlainClient};
use support::process::ServerProcess;
use support::WAIT;

/// Debian's interpreter (`.ci/apt-packages.txt`), by path: a `python3` earlier in PATH may sit
/// in a directory the unprivileged user cannot enter.
const PYTHON: &str = "/usr/bin/python3";
/// An unprivileged user that exists on Debian and Ubuntu.
const NOBODY: u32 = 65534;

fn admin_ok(dir: &Path, args: &[&str]) -> String {
    let out = admin(dir, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "admin {args:?} failed: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    stdout
}

fn admin_json(dir: &Path, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&admin_ok(dir, &all)).expect("--json prints JSON")
}

fn start(dir: &Path) -> ServerProcess {
    ServerProcess::start(dir, &["127.0.0.1:0"], &["127.0.0.1:0"])
}

#[test]
fn users_rooms_and_stats_as_tables_and_json() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path());
    let mut alice = PlainClient::plain(server.plaintext[0], "alice");
    alice.register("alice");
    alice.join("#tech");
    let mut pending = PlainClient::plain(server.plaintext[0], "pending");
    pending.send("NICK pending");
    // The server has seen both once alice's PING is answered (one hub, lines in order).
    alice.send("PING sync");
    alice.expect_command("PONG");

    let table = admin_ok(dir.path(), &["users"]);
    let header = table.lines().next().unwrap_or_default();
    for column in ["NICK", "ADDRESS", "ACCOUNT", "TRANSPORT", "IDLE"] {
        assert!(header.contains(column), "users header {header:?} lacks {column}");
    }
    let row = table.lines().find(|l| l.starts_with("alice")).unwrap_or_else(|| panic!("no alice in:\n{table}"));
    assert!(row.contains("127.0.0.1") && row.contains("plaintext"), "{row}");
    assert!(table.contains("registering"), "an unregistered connection is flagged:\n{table}");

    let users = admin_json(dir.path(), &["users"]);
    let alice_json = users.as_array().and_then(|u| u.iter().find(|u| u["nick"] == "alice")).expect("alice in JSON");
    assert_eq!(alice_json["transport"], "plaintext");
    assert_eq!(alice_json["address"], "127.0.0.1");
    assert_eq!(alice_json["account"], Value::Null);
    assert_eq!(alice_json["rooms"], 1);

    let rooms = admin_json(dir.path(), &["rooms"]);
    let tech = rooms.as_array().and_then(|r| r.iter().find(|r| r["name"] == "#tech")).expect("#tech");
    assert_eq!(tech["members"], 1);
    assert!(admin_ok(dir.path(), &["rooms"]).contains("#general"));

    let stats = admin_json(dir.path(), &["stats"]);
    assert_eq!(stats["users_online"], 1);
    assert_eq!(stats["unregistered"], 1);
    assert_eq!(stats["rooms"], 3);
    assert!(stats["resident_memory_bytes"].as_u64().is_some_and(|m| m > 0), "{stats}");
    let text = admin_ok(dir.path(), &["stats"]);
    for label in ["uptime", "users online", "bytes in / out", "cpu", "memory"] {
        assert!(text.contains(label), "stats lacks {label}:\n{text}");
    }

    let unknown = admin(dir.path(), &["frobnicate"]);
    assert!(!unknown.status.success());
    assert!(String::from_utf8_lossy(&unknown.stdout).contains("unknown command"), "{unknown:?}");
}

#[test]
fn broadcast_kill_ban_and_unban() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path());
    let mut alice = PlainClient::plain(server.plaintext[0], "alice");
    alice.register("alice");
    alice.join("#general");
    let mut bob = PlainClient::plain(server.plaintext[0], "bob");
    bob.register("bob");
    bob.join("#general");

    assert!(admin_ok(dir.path(), &["broadcast", "maintenance", "at", "noon"]).contains("2 user(s)"));
    let notice = alice.expect_command("NOTICE");
    assert_eq!(notice.params, ["alice", "maintenance at noon"]);

    admin_ok(dir.path(), &["kill", "bob", "flooding"]);
    let error = bob.expect_command("ERROR");
    assert!(error.params[0].contains("Killed") && error.params[0].contains("flooding"), "{error:?}");
    let quit = alice.expect("bob's QUIT", |m| m.command == "QUIT");
    assert!(quit.params[0].contains("Killed"));
    let missing = admin(dir.path(), &["kill", "nobody-here"]);
    assert!(!missing.status.success(), "killing a nick nobody uses fails");

    let banned = admin_json(dir.path(), &["ban", "127.0.0.*", "--minutes", "60", "go", "away"]);
    assert_eq!(banned["disconnected"], 1);
    let error = alice.expect_command("ERROR");
    assert!(error.params[0].contains("K-Lined: go away"), "{error:?}");
    let mut refused = PlainClient::plain(server.plaintext[0], "refused");
    let lines = refused.read_until("ERROR", |m| m.command == "ERROR");
    assert!(lines.iter().any(|m| m.command == "465"), "465 before ERROR: {lines:?}");
    let bans = admin_json(dir.path(), &["bans"]);
    assert_eq!(bans[0]["mask"], "127.0.0.*");
    assert!(bans[0]["expires_ms"].as_u64().is_some());
    let saved = wait_for_file_containing(&dir.path().join("bans.json"), "127.0.0.*");
    assert!(saved.contains("go away"));

    admin_ok(dir.path(), &["unban", "127.0.0.*"]);
    let mut welcome = PlainClient::plain(server.plaintext[0], "welcome");
    welcome.register("welcome");
    assert_eq!(admin_json(dir.path(), &["bans"]), Value::Array(Vec::new()));
}

#[test]
fn op_deop_mode_and_topic_on_a_default_room_nobody_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = start(dir.path());
    let mut alice = PlainClient::plain(server.plaintext[0], "alice");
    alice.register("alice");
    alice.join("#general");

    assert!(admin_ok(dir.path(), &["op", "#general", "alice"]).contains("+o alice"));
    let mode = alice.expect_command("MODE");
    assert_eq!(mode.params, ["#general", "+o", "alice"]);
    admin_ok(dir.path(), &["topic", "#general", "Be", "nice"]);
    let topic = alice.expect_command("TOPIC");
    assert_eq!(topic.params, ["#general", "Be nice"]);
    let moderated = admin_json(dir.path(), &["mode", "#general", "+m-t"]);
    assert_eq!(moderated["changed"], serde_json::json!(["+m-t"]));
    assert_eq!(alice.expect_command("MODE").params, ["#general", "+m-t"]);
    admin_ok(dir.path(), &["deop", "#general", "alice"]);
    assert_eq!(alice.expect_command("MODE").params, ["#general", "-o", "alice"]);

    let missing = admin(dir.path(), &["op", "#general", "nobody-here"]);
    assert!(!missing.status.success(), "opping a nick nobody uses fails");
    assert!(String::from_utf8_lossy(&missing.stdout).contains("No such nick"));
    assert!(!admin(dir.path(), &["topic", "#nowhere", "x"]).status.success());
}

/// Reads `path` until it contains `needle` (it is written off the hub, shortly after).
fn wait_for_file_containing(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(Instant::now() < deadline, "{} never contained {needle:?}: {text:?}", path.display());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The MOTD a new client gets.
fn motd_of(server: &ServerProcess) -> Vec<String> {
    static READERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let nick = format!("reader{}", READERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut client = PlainClient::plain(server.plaintext[0], &nick);
    client.send(&format!("NICK {nick}"));
    client.send(&format!("USER {nick} 0 * :{nick}"));
    client.expect_end_of_motd().into_iter().filter(|m| m.command == "372").map(|m| m.params[1].clone()).collect()
}

#[test]
fn reload_and_sighup_reread_the_motd_file_and_a_bad_config_changes_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let motd = dir.path().join("motd.txt");
    std::fs::write(&motd, "first motd\n").expect("write motd");
    let config = dir.path().join("chinwag.toml");
    std::fs::write(&config, format!("[server]\nmotd_file = {:?}\n", motd.display().to_string())).expect("write config");
    let config_arg = config.display().to_string();
    let server = ServerProcess::start_with(dir.path(), &["127.0.0.1:0"], &["127.0.0.1:0"], &["--config", &config_arg]);
    assert!(motd_of(&server).iter().any(|l| l.contains("first motd")));

    std::fs::write(&motd, "second motd\n").expect("write motd");
    let summary = admin_ok(dir.path(), &["reload"]);
    assert!(summary.contains("reloaded"), "{summary}");
    assert!(motd_of(&server).iter().any(|l| l.contains("second motd")));

    std::fs::write(&motd, "third motd\n").expect("write motd");
    server.signal("HUP");
    let deadline = Instant::now() + WAIT;
    while !motd_of(&server).iter().any(|l| l.contains("third motd")) {
        assert!(Instant::now() < deadline, "SIGHUP did not reload the MOTD:\n{}", server.log_tail());
    }

    std::fs::write(&config, "[server]\nmotd_flie = \"typo\"\n").expect("write config");
    let failed = admin(dir.path(), &["reload"]);
    assert!(!failed.status.success());
    let text = String::from_utf8_lossy(&failed.stdout);
    assert!(text.contains("motd_flie") && text.contains("nothing changed"), "{text}");
    assert!(motd_of(&server).iter().any(|l| l.contains("third motd")), "the old configuration stays");
}

#[test]
fn the_socket_is_its_owners_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Let other users reach the socket file itself, so only its own protection is tested.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod dir");
    let _server = start(dir.path());
    let socket = dir.path().join("control.sock");
    let meta = std::fs::metadata(&socket).expect("socket exists");
    assert_eq!(meta.mode() & 0o777, 0o600, "socket mode");
    assert_eq!(Some(meta.uid()), chinwag_server::effective_uid(), "socket owner");

    let connect = "import socket,sys\ns=socket.socket(socket.AF_UNIX)\ntry:\n  s.connect(sys.argv[1])\nexcept OSError as e:\n  print('refused', e.errno); sys.exit(3)\ntry:\n  s.sendall(b'{\"args\":[\"users\"]}\\n')\nexcept OSError:\n  pass\nprint(s.makefile().readline())";
    let as_nobody = |cmd: &mut Command| {
        // A copied binary can be "busy" for a moment: another test thread that forks while the
        // copy's file is open for writing holds it in its child until that child execs
        // (ETXTBSY). Bounded retries ride that out; any other error fails at once.
        for _ in 0..50 {
            match cmd.uid(NOBODY).gid(NOBODY).output() {
                Err(e) if e.raw_os_error() == Some(26) => std::thread::sleep(std::time::Duration::from_millis(20)),
                other => return other.unwrap_or_else(|e| panic!("run {cmd:?} as nobody: {e}")),
            }
        }
        panic!("run {cmd:?} as nobody: the file stayed busy")
    };
    let out = as_nobody(Command::new(PYTHON).args(["-c", connect]).arg(&socket));
    assert_eq!(out.status.code(), Some(3), "another user connected: {out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("refused 13"), "EACCES expected: {out:?}");

    // Even with the mode loosened by mistake, the server checks who is asking.
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666)).expect("chmod socket");
    let out = as_nobody(Command::new(PYTHON).args(["-c", connect]).arg(&socket));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("permission denied") && !stdout.contains("NICK"), "{out:?}");

    // And chinwag admin run by another user explains whose socket it is.
    let bin_dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(bin_dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let bin = bin_dir.path().join("chinwag");
    std::fs::copy(env!("CARGO_BIN_EXE_chinwag"), &bin).expect("copy binary");
    let out = as_nobody(Command::new(&bin).args(["admin", "--data-dir"]).arg(dir.path()).arg("users"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("belongs to uid 0"), "{stderr}");
}

#[test]
fn one_server_per_data_directory_and_a_stale_socket_is_replaced() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = start(dir.path());
    let second = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run a second server");
    assert!(!second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).contains("another chinwag server is running"), "{second:?}");

    first.kill_9();
    assert!(dir.path().join("control.sock").exists(), "a crash leaves the socket behind");
    let restarted = start(dir.path());
    let mut client = PlainClient::plain(restarted.plaintext[0], "after");
    client.register("after");
    assert!(admin_ok(dir.path(), &["users"]).contains("after"));
    if let Incoming::Failed(e) = client.read(Instant::now()) {
        panic!("client failed: {e}");
    }
}

#[test]
fn admin_without_a_server_says_what_to_do() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = admin(dir.path(), &["users"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no chinwag server is running"), "{out:?}");
}

#[test]
fn bans_outlive_a_restart_and_a_damaged_ban_file_stops_the_start() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = start(dir.path());
    admin_ok(dir.path(), &["ban", "127.0.0.*", "kept", "across", "restarts"]);
    wait_for_file_containing(&dir.path().join("bans.json"), "127.0.0.*");
    admin_ok(dir.path(), &["shutdown"]);
    assert!(server.wait_exit(WAIT).is_some_and(|s| s.success()));

    let restarted = start(dir.path());
    let mut refused = PlainClient::plain(restarted.plaintext[0], "refused");
    let error = refused.expect_command("ERROR");
    assert!(error.params[0].contains("kept across restarts"), "{error:?}");
    admin_ok(dir.path(), &["unban", "127.0.0.*"]);
    let mut welcome = PlainClient::plain(restarted.plaintext[0], "welcome");
    welcome.register("welcome");
    drop(restarted);

    std::fs::write(dir.path().join("bans.json"), "[{\"mask\": ").expect("damage the file");
    let out = Command::new(env!("CARGO_BIN_EXE_chinwag"))
        .args(["serve", "--listen", "127.0.0.1:0", "--tls-listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path())
        .output()
        .expect("run chinwag serve");
    assert!(!out.status.success(), "a damaged ban list must not silently lift every ban");
    assert!(String::from_utf8_lossy(&out.stderr).contains("bans.json is damaged"), "{out:?}");
}
