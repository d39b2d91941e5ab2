//! The data directory's files: private even in a directory that already exists with 0755, the
//! generated certificate written so that a crash cannot leave it empty (and an empty one a clear
//! error), and a database deleted under the running server noticed: it stops acknowledging.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use chinwag_core::Rate;
use chinwag_server::ServerConfig;
use support::{Client, WAIT};

fn mode(path: &Path) -> u32 {
    std::fs::symlink_metadata(path).expect("metadata").permissions().mode() & 0o777
}

/// A data directory that exists with mode 0755, as a package or an operator may have made it.
fn open_data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod 755");
    dir
}

fn config(dir: &Path) -> ServerConfig {
    let mut cfg = ServerConfig::new(dir.to_path_buf());
    cfg.listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg.tls_listen = vec!["127.0.0.1:0".parse().expect("addr")];
    cfg
}

/// Every file and directory under `dir` (not `dir` itself), depth first.
fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("list") {
        let path = entry.expect("entry").path();
        out.push(path.clone());
        if path.is_dir() {
            walk(&path, out);
        }
    }
}

#[tokio::test]
async fn every_file_created_in_an_existing_0755_data_dir_is_private() {
    let dir = open_data_dir();
    // Logs too: this is the only test in this process that installs the global subscriber.
    let _logs = chinwag_server::logging::init(&Default::default(), dir.path()).expect("logging");
    let server = chinwag_server::start(config(dir.path())).await.expect("server starts");
    let mut alice = Client::plain(server.plaintext[0], "alice").await;
    alice.register("alice").await;
    alice.join("#files").await;
    alice.send("PRIVMSG #files :written to the WAL").await;
    alice.send("PING :stored").await;
    alice.expect_command("PONG").await;
    let reply = server.control().execute(&["ban".into(), "192.0.2.1".into()], "test").await;
    assert!(reply.ok, "{reply:?}");
    let bans = dir.path().join(chinwag_server::BANS_FILE);
    let deadline = Instant::now() + WAIT;
    while !bans.exists() {
        assert!(Instant::now() < deadline, "bans.json is written");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let mut paths = Vec::new();
    walk(dir.path(), &mut paths);
    let names: Vec<String> =
        paths.iter().map(|p| p.strip_prefix(dir.path()).expect("inside").display().to_string()).collect();
    for expected in
        ["chinwag.db", "chinwag.db-wal", "chinwag.db-shm", "bans.json", "tls/cert.pem", "tls/key.pem", "logs"]
    {
        assert!(names.iter().any(|n| n == expected), "{expected} was created: {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("logs/chinwag")), "a log file: {names:?}");
    for (path, name) in paths.iter().zip(&names) {
        let expected = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(path), expected, "{name} is {:o}", mode(path));
    }
    assert_eq!(mode(dir.path()), 0o755, "the data directory itself is left as the operator set it");
    server.shutdown().await;
}

#[tokio::test]
async fn files_left_readable_by_an_older_version_are_tightened() {
    let dir = open_data_dir();
    let first = chinwag_server::start(config(dir.path())).await.expect("first start");
    first.shutdown().await;
    for name in ["chinwag.db", "tls/cert.pem", "tls/key.pem", "tls"] {
        let loose = if name == "tls" { 0o755 } else { 0o644 };
        std::fs::set_permissions(dir.path().join(name), std::fs::Permissions::from_mode(loose)).expect("chmod");
    }
    let server = chinwag_server::start(config(dir.path())).await.expect("second start");
    for name in ["chinwag.db", "tls/cert.pem", "tls/key.pem"] {
        assert_eq!(mode(&dir.path().join(name)), 0o600, "{name}");
    }
    assert_eq!(mode(&dir.path().join("tls")), 0o700);
    server.shutdown().await;
}

#[tokio::test]
async fn an_empty_generated_certificate_stops_the_start_and_says_what_to_do() {
    let dir = open_data_dir();
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).expect("mkdir");
    // What a power loss left of a pair an older version wrote without syncing.
    std::fs::write(tls.join("cert.pem"), b"").expect("empty cert");
    std::fs::write(tls.join("key.pem"), b"").expect("empty key");
    let err = chinwag_server::start(config(dir.path())).await.expect_err("an empty certificate is refused");
    let text = format!("{err:#}");
    for part in ["tls/cert.pem", "empty or damaged", "delete both", "--accept-changed-cert"] {
        assert!(text.contains(part), "{text:?} does not mention {part:?}");
    }
    assert_eq!(std::fs::read(tls.join("cert.pem")).expect("kept"), b"", "the files are left for the operator");
}

#[tokio::test]
async fn a_key_without_its_certificate_is_a_cut_short_generation_and_made_again() {
    let dir = open_data_dir();
    let tls = dir.path().join("tls");
    std::fs::create_dir(&tls).expect("mkdir");
    // The key is written first; a crash before the certificate leaves this.
    std::fs::write(tls.join("key.pem"), b"-----BEGIN PRIVATE KEY-----\ncut").expect("key");
    let server = chinwag_server::start(config(dir.path())).await.expect("a new pair is generated");
    let mut client = Client::tls(server.tls[0], &server.fingerprint, "tls").await;
    client.register("tls").await;
    assert_eq!((mode(&tls.join("cert.pem")), mode(&tls.join("key.pem"))), (0o600, 0o600));
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_deleted_under_the_server_stops_acknowledging_messages() {
    let dir = open_data_dir();
    let mut cfg = config(dir.path());
    // Room for one message at a time.
    cfg.max_held_bytes = 1;
    cfg.grace = Duration::from_millis(200);
    cfg.core.limits.flood = Rate { burst: 1000, every: Duration::ZERO };
    let server = chinwag_server::start(cfg).await.expect("server starts");
    let mut alice = Client::plain(server.plaintext[0], "alice").await;
    alice.send("CAP REQ :echo-message").await;
    alice.expect_command("CAP").await;
    alice.send("CAP END").await;
    alice.register("alice").await;
    alice.join("#gone").await;
    alice.send("PRIVMSG #gone :stored").await;
    assert_eq!(alice.expect_command("PRIVMSG").await.params[1], "stored");

    std::fs::remove_file(dir.path().join(chinwag_server::DATABASE_FILE)).expect("delete chinwag.db");
    // The echo would be queued before the PONG if the message were acknowledged at once.
    alice.send("PRIVMSG #gone :into a deleted file").await;
    alice.send("PING :after").await;
    alice.expect_command("PONG").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let snapshot = server.control().snapshot().await.expect("snapshot");
        if snapshot.store_failing {
            break;
        }
        assert!(Instant::now() < deadline, "the store never noticed the file is gone");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    alice.send("PRIVMSG #gone :refused").await;
    let refused = alice.expect_command("FAIL").await;
    assert_eq!(refused.params[..2], ["PRIVMSG", "TEMPORARILY_UNAVAILABLE"]);
    alice.send("PING :still").await;
    alice.expect_command("PONG").await;
    let echoes: Vec<&String> = alice.seen.iter().filter(|l| l.contains(" PRIVMSG #gone ")).collect();
    assert_eq!(echoes.len(), 1, "nothing after the deletion was acknowledged: {echoes:#?}");
    let report = server.shutdown().await;
    assert!(!report.clean, "the held messages could not be stored, and the stop says so");
}
