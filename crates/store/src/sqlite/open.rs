//! Opening a database file: the checks that refuse a file we must not use, then the settings
//! and migrations.
//!
//! The order matters. Everything that can refuse a file (is it a database, is it chinwag's,
//! which version, is it writable, is it intact) runs before the first write, and no write ever happens to a file that
//! was refused: the worst case is an unreadable or too-new file left exactly as it was, with a
//! message saying why. Nothing here deletes, truncates or re-creates a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{ffi, Connection, OpenFlags, TransactionBehavior};

use super::checkpoint::SAFETY_VALVE_PAGES;
use super::schema::{LATEST, MIGRATIONS};
use super::{SqliteOptions, Synchronous};

// The settings below were chosen by running `examples/store_bench.rs` with alternatives: what
// an append costs is mostly the pages it dirties, written once to the WAL at commit and again
// at the next checkpoint (see the notes on schema version 2).

/// The page size of a new database (SQLite's default). A batch dirties about one index page per
/// conversation it touches, so smaller pages mean fewer bytes per commit; 4 KiB beat 2 KiB
/// (deeper trees, more CPU) and 8 KiB (more bytes).
const PAGE_SIZE: i64 = 4096;

/// How much memory SQLite may use to cache pages, in KiB (a negative `cache_size` means KiB):
/// room for the index's inner pages and the pages batches keep returning to. Larger was not
/// faster: SQLite walks the whole cache at every commit.
const CACHE_KIB: i64 = 8 * 1024;

/// When the WAL restarts, its file is truncated back to this size, so a burst of writes does
/// not leave a large file behind. Twice the safety valve's 32 MiB (see `checkpoint.rs`), which
/// is as long as the WAL grows even with the writer at full speed, so in steady state the file
/// is reused rather than re-grown (overwriting allocated blocks is cheaper to sync); only a WAL
/// that could not be checkpointed for a while (a reader holding an old snapshot) is cut back.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Stamped in the header of every chinwag database (`PRAGMA application_id`, "chwg"), so that
/// `open` never sets up its tables in another program's database.
const APPLICATION_ID: i64 = 0x6368_7767;

/// Why a database file could not be opened. Every message names the file and what to do; the
/// file itself is left untouched.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path} is not a SQLite database (or its header is damaged); chinwag did not modify it. Move it away, or use another --data-dir")]
    NotADatabase { path: PathBuf },
    #[error("{path} is corrupt ({detail}); chinwag did not modify it. Restore a backup, or salvage it with `sqlite3 {path} .recover`, and move it away")]
    Corrupt { path: PathBuf, detail: String },
    #[error(
        "{path} is a SQLite database of another program ({detail}); chinwag did not modify it. Use another --data-dir"
    )]
    ForeignDatabase { path: PathBuf, detail: String },
    #[error("{path} has schema version {found}, created by a newer chinwag (this build knows up to version {known}); upgrade chinwag or use another --data-dir")]
    TooNew { path: PathBuf, found: i64, known: i64 },
    #[error("{path} is not writable ({reason}); check the permissions of the file and of its directory, where SQLite must be able to create {path}-wal and {path}-shm")]
    NotWritable { path: PathBuf, reason: String },
    #[error("{path}: the directory does not exist; create it or use another --data-dir")]
    NoDirectory { path: PathBuf },
    #[error("{path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("{path} is locked by another process (another chinwag on the same --data-dir?); stop it or use another --data-dir")]
    Locked { path: PathBuf },
    #[error("{path}: could not start the checkpoint thread: {source}")]
    Checkpointer {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Sqlite {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
}

/// Opens (creating if absent) and prepares the database at `path`.
pub(super) fn open(path: &Path, options: &SqliteOptions) -> Result<Connection, OpenError> {
    let existed = match std::fs::metadata(path) {
        Ok(meta) if !meta.is_file() => return Err(OpenError::NotAFile { path: path.to_owned() }),
        Ok(_) => true,
        Err(_) => false,
    };
    if !existed {
        create_private(path)?;
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let fail = |e: rusqlite::Error| classify(path, e);
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;

    // Reading the header: a file that is not a database fails here.
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
    let application: i64 = conn.pragma_query_value(None, "application_id", |row| row.get(0)).map_err(fail)?;
    if application != 0 && application != APPLICATION_ID {
        let detail = format!("its application id is {application:#x}, chinwag's is {APPLICATION_ID:#x}");
        return Err(OpenError::ForeignDatabase { path: path.to_owned(), detail });
    }
    if application == 0 {
        // Not stamped: an empty database (ours to set up), or one from before the stamp, which
        // has chinwag's tables. Anything else belongs to someone else.
        let ours: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name IN ('accounts', 'messages')",
                [],
                |row| row.get(0),
            )
            .map_err(fail)?;
        let tables: i64 = conn.query_row("SELECT count(*) FROM sqlite_schema", [], |row| row.get(0)).map_err(fail)?;
        let empty = found == 0 && tables == 0;
        let before_the_stamp = found >= 1 && ours == 2;
        if !empty && !before_the_stamp {
            let detail = format!("it has {tables} tables or indexes but no chinwag application id");
            return Err(OpenError::ForeignDatabase { path: path.to_owned(), detail });
        }
    }
    if found > LATEST {
        return Err(OpenError::TooNew { path: path.to_owned(), found, known: LATEST });
    }
    // SQLite silently opens a write-protected file read-only; we need to know now, not at the
    // first message.
    if conn.is_readonly(rusqlite::MAIN_DB).map_err(fail)? {
        return Err(OpenError::NotWritable { path: path.to_owned(), reason: "the file is read-only".into() });
    }
    if existed && options.quick_check {
        quick_check(&conn, path)?;
    }

    // From here on we write. `page_size` only takes effect on a database with no pages yet.
    conn.pragma_update(None, "page_size", PAGE_SIZE).map_err(fail)?;
    let mode: String = conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0)).map_err(fail)?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(OpenError::NotWritable {
            path: path.to_owned(),
            reason: format!("could not switch to write-ahead logging (journal mode is {mode})"),
        });
    }
    conn.pragma_update(None, "synchronous", synchronous(options)).map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(fail)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(fail)?;
    // Checkpoints run on their own thread (see `checkpoint.rs`), whose hook takes this over;
    // until then, and as its safety valve, the writer checkpoints only a WAL this long.
    conn.pragma_update(None, "wal_autocheckpoint", i64::try_from(SAFETY_VALVE_PAGES).unwrap_or(i64::MAX))
        .map_err(fail)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(fail)?;
    migrate(&conn).map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// Creates an empty database file only its owner may read or write (SQLite would create it
/// 0644, less the umask): SQLite then gives the `-wal` and `-shm` files it creates the same
/// mode. An empty file is a valid new database.
fn create_private(path: &Path) -> Result<(), OpenError> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path);
    match created {
        Ok(_) => Ok(()),
        // Created meanwhile by someone else: opened (and checked) as an existing file.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() {
                Err(OpenError::NoDirectory { path: path.to_owned() })
            } else {
                Err(OpenError::NotWritable { path: path.to_owned(), reason: e.to_string() })
            }
        }
    }
}

/// Opens the checkpointer's own connection to `path`, which [`open`] has just opened and set up:
/// the same busy timeout and durability (a checkpoint syncs as the connection running it is set
/// to), and no schema work.
pub(super) fn open_checkpointer(path: &Path, options: &SqliteOptions) -> Result<Connection, OpenError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let fail = |e: rusqlite::Error| classify(path, e);
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;
    conn.pragma_update(None, "synchronous", synchronous(options)).map_err(fail)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(fail)?;
    Ok(conn)
}

/// `PRAGMA synchronous` for `options`.
fn synchronous(options: &SqliteOptions) -> &'static str {
    match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    }
}

/// `PRAGMA quick_check`: every page and every record's format, without cross-checking index
/// contents against tables (which `integrity_check` does, several times slower). It reads the
/// whole file; see [`SqliteOptions::quick_check`] for what that costs.
fn quick_check(conn: &Connection, path: &Path) -> Result<(), OpenError> {
    let mut problems = Vec::new();
    let result = conn.pragma_query(None, "quick_check", |row| {
        let line: String = row.get(0)?;
        if line != "ok" && problems.len() < 3 {
            problems.push(line);
        }
        Ok(())
    });
    match result {
        Ok(()) if problems.is_empty() => Ok(()),
        Ok(()) => Err(OpenError::Corrupt { path: path.to_owned(), detail: problems.join("; ") }),
        Err(e) => Err(classify(path, e)),
    }
}

/// Brings the schema up to [`LATEST`] in one immediate transaction.
///
/// The transaction always rewrites `user_version` (and `application_id`), even when nothing is
/// pending. That is a
/// deliberate write at open: a database or directory we cannot write to fails here, with a
/// clear message, rather than on the first message of the day.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let tx = rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)?;
    let current: i64 = tx.pragma_query_value(None, "user_version", |row| row.get(0))?;
    // `current` was checked against LATEST before, and only this process writes it now that we
    // hold the write lock, but a concurrent opener could have moved it in between.
    let pending = usize::try_from(current).unwrap_or(usize::MAX);
    for sql in MIGRATIONS.iter().skip(pending) {
        tx.execute_batch(sql)?;
    }
    tx.pragma_update(None, "application_id", APPLICATION_ID)?;
    tx.pragma_update(None, "user_version", LATEST.max(current))?;
    tx.commit()
}

/// Turns an error met while opening into the refusal it means.
fn classify(path: &Path, error: rusqlite::Error) -> OpenError {
    let path_buf = path.to_owned();
    let Some(code) = error.sqlite_error_code() else {
        return OpenError::Sqlite { path: path_buf, source: error };
    };
    match code {
        ffi::ErrorCode::NotADatabase => OpenError::NotADatabase { path: path_buf },
        ffi::ErrorCode::DatabaseCorrupt => OpenError::Corrupt { path: path_buf, detail: error.to_string() },
        ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked => OpenError::Locked { path: path_buf },
        ffi::ErrorCode::ReadOnly | ffi::ErrorCode::PermissionDenied | ffi::ErrorCode::CannotOpen => {
            let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
            if !dir.is_dir() {
                OpenError::NoDirectory { path: path_buf }
            } else {
                OpenError::NotWritable { path: path_buf, reason: error.to_string() }
            }
        }
        _ => OpenError::Sqlite { path: path_buf, source: error },
    }
}

/// The default busy timeout: how long an operation waits for a lock held by another connection
/// (a backup tool, say) before failing.
pub(super) const DEFAULT_BUSY_TIMEOUT: Duration = Duration::from_secs(5);
