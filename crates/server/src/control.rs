//! The control socket: `DATA_DIR/control.sock`, a Unix socket that only its owner may use
//! (mode 0600, and the peer's uid is checked again on every connection). `chinwag admin` sends
//! one JSON request per line, `{"args": ["kill", "bob"]}`, and reads one [`AdminReply`] per
//! line.
//!
//! At start an existing socket that answers means another server uses this data directory, and
//! the start is refused; one that does not answer is left over from a crash and replaced;
//! anything else at that path is refused rather than deleted.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::Deserialize;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::admin::{execute, AdminReply};
use crate::Control;

/// The socket's name inside the data directory.
pub const CONTROL_SOCKET: &str = "control.sock";
/// The longest request line accepted.
const MAX_REQUEST: usize = 64 * 1024;
/// A client that sends nothing for this long is disconnected.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

#[derive(Deserialize)]
struct Request {
    args: Vec<String>,
}

/// This process's effective user id, from /proc (no `unsafe` needed).
pub fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// Binds the socket with mode 0600 (it is created under a temporary name, restricted, then
/// renamed into place, so it is never reachable with looser permissions).
pub(crate) fn bind(data_dir: &Path) -> Result<(UnixListener, PathBuf)> {
    let path = data_dir.join(CONTROL_SOCKET);
    match std::fs::symlink_metadata(&path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(&path).is_ok() {
                bail!(
                    "another chinwag server is running with the data directory {} (its control socket {} answers); \
                     stop it first or use another --data-dir",
                    data_dir.display(),
                    path.display()
                );
            }
            std::fs::remove_file(&path)
                .with_context(|| format!("removing the stale control socket {}", path.display()))?;
        }
        Ok(_) => {
            bail!("{} exists and is not a socket; move it away so the control socket can be created", path.display())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("checking {}", path.display())),
    }
    let tmp = data_dir.join(format!(".{CONTROL_SOCKET}.{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    let listener =
        UnixListener::bind(&tmp).with_context(|| format!("creating the control socket {}", tmp.display()))?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting {} to its owner", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("moving the control socket to {}", path.display()))?;
    Ok((listener, path))
}

/// Serves admin clients until `shutdown`, then removes the socket.
pub(crate) async fn run(
    listener: UnixListener,
    path: PathBuf,
    control: Control,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    let owner = effective_uid();
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let control = control.clone();
        tracker.spawn(async move { serve(stream, control, owner).await });
    }
    // Only remove the socket if it is still ours (not one a newer server put there).
    if std::fs::symlink_metadata(&path).is_ok_and(|m| m.file_type().is_socket() && Some(m.uid()) == owner) {
        let _ = std::fs::remove_file(&path);
    }
}

async fn serve(stream: UnixStream, control: Control, owner: Option<u32>) {
    let peer = stream.peer_cred().ok().map(|c| c.uid());
    let (read, mut write) = stream.into_split();
    // The file mode already keeps others out; this check holds even if someone loosened it.
    let allowed = matches!((peer, owner), (Some(p), Some(o)) if p == o || p == 0);
    if !allowed {
        tracing::warn!(target: "audit", peer_uid = ?peer, "control socket connection refused: not the server's user");
        let reply = AdminReply {
            ok: false,
            text: "permission denied: not the server's user".into(),
            data: serde_json::Value::Null,
        };
        let _ = write_reply(&mut write, &reply).await;
        return;
    }
    let by = format!("control socket uid {}", peer.unwrap_or(0));
    let mut reader = BufReader::new(read);
    let mut line = Vec::with_capacity(256);
    loop {
        line.clear();
        // Each request is bounded on its own, so a long `--watch` session is never cut off.
        let mut bounded = (&mut reader).take(MAX_REQUEST as u64 + 1);
        match tokio::time::timeout(IDLE_TIMEOUT, bounded.read_until(b'\n', &mut line)).await {
            Ok(Ok(n)) if n > 0 && line.len() <= MAX_REQUEST => {}
            _ => return,
        }
        let reply = match serde_json::from_slice::<Request>(&line) {
            Ok(req) => execute(&control, &req.args, &by).await,
            Err(e) => AdminReply { ok: false, text: format!("bad request: {e}"), data: serde_json::Value::Null },
        };
        if write_reply(&mut write, &reply).await.is_err() {
            return;
        }
    }
}

async fn write_reply(write: &mut tokio::net::unix::OwnedWriteHalf, reply: &AdminReply) -> std::io::Result<()> {
    let mut json = serde_json::to_vec(reply).unwrap_or_default();
    json.push(b'\n');
    write.write_all(&json).await
}
