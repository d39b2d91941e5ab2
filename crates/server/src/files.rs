//! What chinwag writes into the data directory is its owner's alone, and survives a crash whole.
//!
//! Files are created 0600 and directories 0700 whatever the directory they land in (the data
//! directory may already exist with 0755), and existing ones with looser modes are tightened,
//! with a log line. The process umask is set to 0o077 as well, for files created by code that
//! does not take a mode (SQLite's `-wal` and `-shm`, the daily log files).
//!
//! Files that are replaced whole (the generated certificate and key, `bans.json`) are written
//! atomically: a temporary file beside it, written and fsynced, renamed over the old one, then
//! the directory fsynced so the rename itself is durable. A crash at any point leaves the old
//! file or the new one, never an empty or half-written one.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Mode of every file chinwag creates in the data directory.
pub const FILE_MODE: u32 = 0o600;
/// Mode of every directory chinwag creates in the data directory.
pub const DIR_MODE: u32 = 0o700;

/// Makes the process create files for its owner only (umask 0o077), whoever creates them.
pub(crate) fn restrict_umask() {
    rustix::process::umask(rustix::fs::Mode::from_bits_truncate(0o077));
}

/// Creates `dir` (and missing parents) with [`DIR_MODE`], or tightens it if it exists with a
/// looser mode.
pub(crate) fn private_dir(dir: &Path) -> Result<()> {
    if dir.is_dir() {
        tighten(dir, DIR_MODE)?;
        return Ok(());
    }
    fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(dir)
        .with_context(|| format!("creating {}", dir.display()))
}

/// Removes group and other access from `path` if it has any (logged); a missing file is fine.
/// Returns whether it changed anything.
pub(crate) fn tighten(path: &Path, mode: u32) -> Result<bool> {
    let meta = match fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("reading the mode of {}", path.display())),
    };
    let old = meta.permissions().mode() & 0o777;
    if old & 0o077 == 0 || meta.file_type().is_symlink() {
        return Ok(false);
    }
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("restricting {} to its owner (chmod {mode:o})", path.display()))?;
    tracing::warn!(
        path = %path.display(),
        was = format!("{old:o}"),
        now = format!("{mode:o}"),
        "tightened the mode of a file others could read"
    );
    Ok(true)
}

/// Replaces `path` with `data` atomically, mode [`FILE_MODE`].
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    stage(path, data)?.install()
}

/// A new version of a file, written and fsynced beside it, not yet in place.
#[derive(Debug)]
pub(crate) struct Staged {
    tmp: PathBuf,
    path: PathBuf,
}

/// Writes `data` to a temporary file beside `path` (replacing one a crash left behind) and
/// fsyncs it. Nothing happens to `path` until [`Staged::install`].
pub(crate) fn stage(path: &Path, data: &[u8]) -> Result<Staged> {
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    name.push(".tmp");
    let tmp = path.with_file_name(name);
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing the leftover {}", tmp.display())),
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(data).with_context(|| format!("writing {}", tmp.display()))?;
    file.sync_all().with_context(|| format!("syncing {}", tmp.display()))?;
    Ok(Staged { tmp, path: path.to_owned() })
}

impl Staged {
    /// Renames the new version over the old and fsyncs the directory, so that the rename
    /// survives a power loss too.
    pub(crate) fn install(self) -> Result<()> {
        fs::rename(&self.tmp, &self.path).with_context(|| format!("replacing {}", self.path.display()))?;
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing the directory {}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn an_atomic_write_is_private_and_a_crash_before_the_rename_leaves_the_old_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
        let path = dir.path().join("bans.json");
        write_atomic(&path, b"old").expect("first write");
        assert_eq!(fs::read(&path).expect("read"), b"old");
        assert_eq!(mode(&path), FILE_MODE);

        // A crash after the new version is staged, before the rename: the old one is intact.
        let staged = stage(&path, b"new, never installed").expect("stage");
        drop(staged);
        assert_eq!(fs::read(&path).expect("read"), b"old", "the old file survives");

        // The next write replaces the leftover temporary file and goes through.
        write_atomic(&path, b"newer").expect("write after the crash");
        assert_eq!(fs::read(&path).expect("read"), b"newer");
        assert_eq!(mode(&path), FILE_MODE);
        let names: Vec<_> = fs::read_dir(dir.path()).expect("list").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, ["bans.json"], "no temporary file is left once installed");
    }

    #[test]
    fn loose_modes_are_tightened_and_private_directories_made_0700() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("chinwag.db");
        fs::write(&file, b"x").expect("write");
        fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod");
        assert!(tighten(&file, FILE_MODE).expect("tighten"));
        assert_eq!(mode(&file), FILE_MODE);
        assert!(!tighten(&file, FILE_MODE).expect("again"), "nothing to do the second time");
        assert!(!tighten(&dir.path().join("missing"), FILE_MODE).expect("missing is fine"));

        let logs = dir.path().join("logs");
        fs::DirBuilder::new().mode(0o755).create(&logs).expect("mkdir");
        fs::set_permissions(&logs, fs::Permissions::from_mode(0o755)).expect("chmod");
        private_dir(&logs).expect("existing");
        assert_eq!(mode(&logs), DIR_MODE);
        let tls = dir.path().join("a/tls");
        private_dir(&tls).expect("new");
        assert_eq!(mode(&tls), DIR_MODE);
    }
}
