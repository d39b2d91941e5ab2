//! Opening a database file: the checks that refuse a file we must not use, then the settings
//! and migrations.
//!
//! The order matters. Everything that can refuse a file (is it a database, which version, is it
//! writable, is it intact) runs before the first write, and no write ever happens to a file that
//! was refused: the worst case is an unreadable or too-new file left exactly as it was, with a
//! message saying why. Nothing here deletes, truncates or re-creates a file.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{ffi, Connection, OpenFlags, TransactionBehavior};

use super::schema::{LATEST, MIGRATIONS};
use super::{SqliteOptions, Synchronous};

/// How much memory SQLite may use to cache pages, in KiB (a negative `cache_size` is KiB).
/// Index inserts touch a few pages per index near their insertion point; with the default 2 MiB
/// a big database evicts them between batches.
const CACHE_KIB: i64 = 32 * 1024;

/// The page size of a new database. Larger pages mean fewer, fuller index pages to rewrite per
/// batch; measured with `examples/store_bench.rs`.
const PAGE_SIZE: i64 = 8192;

/// After a checkpoint, the WAL file is truncated back to this size, so a burst of writes does
/// not leave a large file behind.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Why a database file could not be opened. Every message names the file and what to do; the
/// file itself is left untouched.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path} is not a SQLite database (or its header is damaged); chinwag did not modify it. Move it away, or use another --data-dir")]
    NotADatabase { path: PathBuf },
    #[error("{path} is corrupt ({detail}); chinwag did not modify it. Restore a backup, or salvage it with `sqlite3 {path} .recover`, and move it away")]
    Corrupt { path: PathBuf, detail: String },
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
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let fail = |e: rusqlite::Error| classify(path, e);
    let conn = Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(options.busy_timeout).map_err(fail)?;

    // Reading the version reads the header: a file that is not a database fails here.
    let found: i64 = conn.pragma_query_value(None, "user_version", |row| row.get(0)).map_err(fail)?;
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
    let sync = match options.synchronous {
        Synchronous::Full => "FULL",
        Synchronous::Normal => "NORMAL",
    };
    conn.pragma_update(None, "synchronous", sync).map_err(fail)?;
    conn.pragma_update(None, "foreign_keys", true).map_err(fail)?;
    conn.pragma_update(None, "cache_size", -CACHE_KIB).map_err(fail)?;
    conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT).map_err(fail)?;
    migrate(&conn).map_err(fail)?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

/// `PRAGMA quick_check`: every page and every index entry's format, without cross-checking
/// index contents against tables. It reads the whole file (about a second per gigabyte here,
/// see the crate README numbers in `SqliteOptions::quick_check`), which is why it can be
/// turned off.
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
/// The transaction always rewrites `user_version`, even when nothing is pending. That is a
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
