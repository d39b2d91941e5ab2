//! Append-only text files that are the user's alone, shared by the chat logs (`chatlog.rs`) and
//! the client log (`clientlog.rs`): files are created 0600 and directories 0700 whatever the
//! umask, and a directory of ours found with a looser mode is tightened.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// Creates `dir` (and its missing parents) with mode 0700, and tightens it to 0700 if it exists
/// with a looser mode: what goes in it names the user's servers, rooms and contacts.
pub(crate) fn private_dir(dir: &Path) -> io::Result<()> {
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode & 0o700))?;
    }
    Ok(())
}

/// Opens `path` to append, creating it with mode 0600 (an existing file is tightened to 0600).
pub(crate) fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new().create(true).append(true).mode(0o600).open(path)?;
    let mode = file.metadata()?.permissions().mode();
    if mode & 0o077 != 0 {
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(file)
}
