//! Files `SqliteStore::open` must refuse, with a clear message, without changing a byte.
//!
//! The permission tests need an unprivileged user: root writes through `chmod 0444`. When the
//! suite runs as root, each of them re-runs itself in a child process as `nobody` (uid 65534),
//! and is skipped, saying so, only if that is impossible.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use chinwag_store::{OpenError, SqliteOptions, SqliteStore, Store, StoredMessage};

fn options() -> SqliteOptions {
    SqliteOptions::default()
}

/// A database with some history in it, cleanly closed (no WAL left beside it).
fn populated(dir: &Path) -> PathBuf {
    let path = dir.join("chinwag.db");
    let mut store = SqliteStore::open(&path, options()).expect("create");
    let batch: Vec<StoredMessage> = (0..2000u64)
        .map(|n| StoredMessage {
            msgid: format!("{n:012}"),
            time_ms: n,
            command: "PRIVMSG".into(),
            sender: "alice!a@h".into(),
            sender_account: None,
            target: "#room".into(),
            text: "some words to fill the pages of the table with ".repeat(2),
            tags: String::new(),
            conversation: format!("#room{}", n % 7),
            participants: Vec::new(),
            offline_for: None,
        })
        .collect();
    store.append(&batch).expect("append");
    drop(store);
    assert!(!sidecar(&path, "-wal").exists(), "a clean close leaves no WAL");
    path
}

fn sidecar(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

fn refuse(path: &Path) -> OpenError {
    match SqliteStore::open(path, options()) {
        Ok(_) => panic!("{} was opened", path.display()),
        Err(e) => e,
    }
}

fn assert_mentions(error: &OpenError, path: &Path, words: &[&str]) {
    let message = error.to_string();
    eprintln!("refusal: {message}");
    assert!(message.contains(&path.display().to_string()), "{message:?} names the file");
    for word in words {
        assert!(message.contains(word), "{message:?} says {word:?}");
    }
}

#[test]
fn refuses_a_file_that_is_not_a_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("chinwag.db");
    let garbage = "this is a text file someone put here, not a database\n".repeat(200);
    std::fs::write(&path, &garbage).expect("write garbage");

    let error = refuse(&path);
    assert!(matches!(error, OpenError::NotADatabase { .. }), "{error:?}");
    assert_mentions(&error, &path, &["not a SQLite database", "did not modify"]);
    assert_eq!(std::fs::read_to_string(&path).expect("read"), garbage, "the file is untouched");
    // A second attempt sees the same file and says the same.
    assert!(matches!(refuse(&path), OpenError::NotADatabase { .. }));
}

#[test]
fn refuses_a_corrupt_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = populated(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    // Scribble over a page in the middle of the file, leaving the header intact.
    let page = 4096;
    let middle = (bytes.len() / page / 2) * page;
    bytes[middle..middle + page].fill(0xA5);
    std::fs::write(&path, &bytes).expect("corrupt");

    let error = refuse(&path);
    assert!(matches!(error, OpenError::Corrupt { .. }), "{error:?}");
    assert_mentions(&error, &path, &["corrupt", "did not modify", ".recover"]);
    assert_eq!(std::fs::read(&path).expect("read"), bytes, "the file is untouched");
}

#[test]
fn refuses_a_database_from_a_newer_chinwag() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = populated(dir.path());
    {
        let conn = rusqlite::Connection::open(&path).expect("open directly");
        conn.pragma_update(None, "user_version", 999).expect("set a future version");
    }
    let before = std::fs::read(&path).expect("read");

    let error = refuse(&path);
    assert!(matches!(error, OpenError::TooNew { found: 999, .. }), "{error:?}");
    assert_mentions(&error, &path, &["newer chinwag", "upgrade", "--data-dir"]);
    assert_eq!(std::fs::read(&path).expect("read"), before, "the file is untouched");
}

#[test]
fn refuses_another_programs_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Someone else's database: tables, no application id.
    let theirs = dir.path().join("theirs.db");
    {
        let conn = rusqlite::Connection::open(&theirs).expect("create");
        conn.execute_batch("CREATE TABLE notes (body TEXT); INSERT INTO notes VALUES ('keep me');").expect("fill");
    }
    let before = std::fs::read(&theirs).expect("read");
    let error = refuse(&theirs);
    assert!(matches!(error, OpenError::ForeignDatabase { .. }), "{error:?}");
    assert_mentions(&error, &theirs, &["another program", "did not modify"]);
    assert_eq!(std::fs::read(&theirs).expect("read"), before, "the file is untouched");

    // Another program's database that stamps its own application id, even if empty.
    let stamped = dir.path().join("stamped.db");
    {
        let conn = rusqlite::Connection::open(&stamped).expect("create");
        conn.pragma_update(None, "application_id", 0x1234).expect("stamp");
    }
    let error = refuse(&stamped);
    assert!(matches!(error, OpenError::ForeignDatabase { .. }), "{error:?}");

    // An empty SQLite file, or an empty file, is fine: there is nothing to lose.
    let empty = dir.path().join("empty.db");
    std::fs::write(&empty, b"").expect("create an empty file");
    SqliteStore::open(&empty, options()).expect("an empty file becomes a chinwag database");
    SqliteStore::open(&empty, options()).expect("and opens again");
}

#[test]
fn refuses_a_path_that_is_a_directory_or_in_a_missing_one() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = refuse(dir.path());
    assert!(matches!(error, OpenError::NotAFile { .. }), "{error:?}");

    let path = dir.path().join("missing").join("chinwag.db");
    let error = refuse(&path);
    assert!(matches!(error, OpenError::NoDirectory { .. }), "{error:?}");
    assert_mentions(&error, &path, &["does not exist"]);
}

#[test]
fn refuses_a_database_another_process_holds_locked() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = populated(dir.path());
    let other = rusqlite::Connection::open(&path).expect("open directly");
    other.execute_batch("BEGIN EXCLUSIVE").expect("hold the write lock");

    let options = SqliteOptions { busy_timeout: Duration::from_millis(50), ..options() };
    let error = SqliteStore::open(&path, options).map(|_| ()).expect_err("locked");
    assert!(matches!(error, OpenError::Locked { .. }), "{error:?}");
    assert_mentions(&error, &path, &["locked", "another"]);
    other.execute_batch("COMMIT").expect("release");
    SqliteStore::open(&path, SqliteOptions::default()).expect("opens once the lock is gone");
}

#[test]
fn refuses_a_read_only_file() {
    if rerun_unprivileged("refuses_a_read_only_file") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = populated(dir.path());
    let before = std::fs::read(&path).expect("read");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444)).expect("chmod 0444");

    let error = refuse(&path);
    assert!(matches!(error, OpenError::NotWritable { .. }), "{error:?}");
    assert_mentions(&error, &path, &["not writable", "permissions"]);
    assert_eq!(std::fs::read(&path).expect("read"), before, "the file is untouched");
}

#[test]
fn refuses_a_database_in_a_read_only_directory() {
    if rerun_unprivileged("refuses_a_database_in_a_read_only_directory") {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let path = populated(dir.path());
    let before = std::fs::read(&path).expect("read");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555)).expect("chmod 0555");

    // The file is writable, but SQLite cannot create its WAL beside it.
    let error = refuse(&path);
    // A new file cannot be created there either.
    let new = dir.path().join("new.db");
    let error_new = refuse(&new);
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod back");

    assert!(matches!(error, OpenError::NotWritable { .. }), "{error:?}");
    assert_mentions(&error, &path, &["not writable", "directory"]);
    assert_eq!(std::fs::read(&path).expect("read"), before, "the file is untouched");
    assert!(matches!(error_new, OpenError::NotWritable { .. }), "{error_new:?}");
    assert!(!new.exists());
}

/// Set in the unprivileged child of a permission test.
const CHILD_ENV: &str = "CHINWAG_STORE_UNPRIVILEGED_CHILD";

/// When running as root, where permissions do not stop writes, runs the test `name` again in a
/// child process as `nobody` and returns true (the child did the asserting). Otherwise returns
/// false, and the caller asserts in this process.
fn rerun_unprivileged(name: &str) -> bool {
    if std::env::var_os(CHILD_ENV).is_some() || !running_as_root() {
        return false;
    }
    let exe = std::env::current_exe().expect("test binary");
    let output = Command::new(&exe)
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, "1")
        .env("TMPDIR", std::env::temp_dir())
        .current_dir("/")
        .uid(65534)
        .gid(65534)
        .output();
    match output {
        Ok(output) => {
            let stdout = String::from_utf8_lossy(&output.stdout);
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert!(output.status.success(), "as nobody, {name} failed:\n{stdout}\n{stderr}");
            // The harness prints "1 passed" only if the filter found and ran the test.
            assert!(stdout.contains("1 passed"), "as nobody, {name} did not run:\n{stdout}\n{stderr}");
            eprint!("as nobody: {stderr}");
        }
        // Without the right to change user (a restricted container), the assertion cannot be made
        // here: say so rather than pass silently.
        Err(e) => eprintln!("SKIPPED {name}: running as root and cannot re-run as nobody ({e})"),
    }
    true
}

/// Whether this process writes files as root: the owner of a file it creates.
fn running_as_root() -> bool {
    let probe = tempfile::NamedTempFile::new().expect("probe file");
    probe.as_file().metadata().expect("probe metadata").uid() == 0
}
