//! Server bans (K-lines) on disk: `DATA_DIR/bans.json`, rewritten whole (atomically, 0600) when
//! they change and read at start, so a ban outlives a restart.

use std::path::Path;

use anyhow::{Context, Result};
use chinwag_core::Kline;
use serde::{Deserialize, Serialize};

/// The file inside the data directory.
pub const BANS_FILE: &str = "bans.json";

#[derive(Serialize, Deserialize)]
struct Saved {
    mask: String,
    reason: String,
    set_by: String,
    set_at_ms: u64,
    expires_ms: Option<u64>,
}

pub(crate) fn to_json(klines: &[Kline]) -> String {
    let saved: Vec<Saved> = klines
        .iter()
        .map(|k| Saved {
            mask: k.mask.clone(),
            reason: k.reason.clone(),
            set_by: k.set_by.clone(),
            set_at_ms: k.set_at_ms,
            expires_ms: k.expires_ms,
        })
        .collect();
    serde_json::to_string_pretty(&saved).unwrap_or_else(|_| "[]".into())
}

/// Replaces the file atomically (see `files.rs`): a crash leaves the old list or the new one.
pub(crate) fn write(path: &Path, json: &str) -> Result<()> {
    crate::files::write_atomic(path, json.as_bytes())
}

/// The saved bans; none if the file does not exist. A damaged file stops the start rather
/// than silently lifting every ban.
pub(crate) fn read(path: &Path) -> Result<Vec<Kline>> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let saved: Vec<Saved> = serde_json::from_str(&text)
        .with_context(|| format!("{} is damaged; fix or remove it (it holds the server bans)", path.display()))?;
    Ok(saved
        .into_iter()
        .map(|s| Kline {
            mask: s.mask,
            reason: s.reason,
            set_by: s.set_by,
            set_at_ms: s.set_at_ms,
            expires_ms: s.expires_ms,
        })
        .collect())
}
