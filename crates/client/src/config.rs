//! `~/.config/chinwag/client.toml` and where the client keeps its files.
//!
//! Every key is optional and every one has a flag that wins over it:
//!
//! ```toml
//! server = "chat.example.org"   # HOST[:PORT]; default 127.0.0.1
//! nick = "alice"                # default: $USER
//! account = "alice"             # log in with SASL (password from CHINWAG_PASSWORD or a prompt)
//! rooms = ["general", "tech"]   # joined on connect
//! plaintext = false             # true only for a loopback server without TLS
//! log_dir = "~/irclogs"         # keep chat logs there (off when absent; `/log on` uses the default)
//! ```
//!
//! No password key exists on purpose: passwords are never written to disk.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The file's contents.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub server: Option<String>,
    pub nick: Option<String>,
    pub account: Option<String>,
    #[serde(default)]
    pub rooms: Vec<String>,
    pub plaintext: Option<bool>,
    /// Where to keep chat logs; logging is off without it (see `chatlog.rs`). A leading `~/`
    /// is the home directory.
    pub log_dir: Option<PathBuf>,
}

/// Why the config file could not be used. Shown to users.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {source}")]
    Parse { path: PathBuf, source: Box<toml::de::Error> },
}

impl FileConfig {
    /// Loads `path`; a missing file is an empty config.
    pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
        let text = match std::fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
            Err(source) => return Err(ConfigError::Read { path: path.to_owned(), source }),
        };
        toml::from_str(&text).map_err(|source| ConfigError::Parse { path: path.to_owned(), source: Box::new(source) })
    }
}

/// `~/.config/chinwag/client.toml` (or the platform's config directory).
pub fn default_config_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("chinwag").join("client.toml"))
}

/// `<data dir>/chinwag/known_servers`.
pub fn default_known_servers_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("chinwag").join("known_servers"))
}

/// `<data dir>/chinwag/client.log`: the client log (`clientlog.rs`).
pub fn default_client_log_path() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("chinwag").join("client.log"))
}

/// `<data dir>/chinwag/logs`: where `/log on` keeps chat logs when no directory was given.
pub fn default_chat_log_dir() -> Option<PathBuf> {
    dirs::data_dir().map(|d| d.join("chinwag").join("logs"))
}

/// `~/…` with the home directory put in (a path from a config file is not seen by a shell).
pub fn expand_home(path: &Path) -> PathBuf {
    match (path.strip_prefix("~"), dirs::home_dir()) {
        (Ok(rest), Some(home)) => home.join(rest),
        _ => path.to_owned(),
    }
}

/// `<state dir>/chinwag/chat.log` (the cache directory where there is no state directory).
pub fn default_log_path() -> Option<PathBuf> {
    dirs::state_dir().or_else(dirs::cache_dir).map(|d| d.join("chinwag").join("chat.log"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_every_key_and_refuses_unknown_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("client.toml");
        assert_eq!(FileConfig::load(&path).expect("missing is empty"), FileConfig::default());
        std::fs::write(
            &path,
            "server = \"h:1\"\nnick = \"al\"\naccount = \"al\"\nrooms = [\"a\"]\nplaintext = true\n\
             log_dir = \"~/logs\"\n",
        )
        .expect("write");
        let cfg = FileConfig::load(&path).expect("valid");
        assert_eq!(cfg.server.as_deref(), Some("h:1"));
        assert_eq!(cfg.rooms, ["a"]);
        assert_eq!(cfg.plaintext, Some(true));
        let log_dir = cfg.log_dir.as_deref().map(expand_home).expect("log_dir");
        assert!(log_dir.is_absolute() && log_dir.ends_with("logs"), "{log_dir:?}");
        std::fs::write(&path, "password = \"x\"\n").expect("write");
        let err = FileConfig::load(&path).expect_err("no password key");
        assert!(err.to_string().contains("password"), "{err}");
    }
}
