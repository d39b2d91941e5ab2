//! The known-servers file: which certificate fingerprint each server had when we first met it
//! (trust on first use, like SSH's `known_hosts`).
//!
//! One line per server, `host:port SHA256-FINGERPRINT`, with `#` comments and blank lines kept
//! as they are. The file is written with mode 0600 through a temporary file and a rename, so a
//! crash never leaves half a file. Fingerprints may come from the TLS handshake, from the user
//! (`--accept-changed-cert`), or from elsewhere (LAN discovery answers): [`KnownServers::pin`]
//! takes all of them the same way.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// What the file says about a certificate a server just presented.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The server is pinned to exactly this fingerprint.
    Pinned,
    /// The server has never been seen.
    Unknown,
    /// The server is pinned to another fingerprint: a new certificate, or someone in the middle.
    Changed {
        /// What the file holds.
        pinned: String,
    },
}

/// Why the file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum KnownServersError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error("{path} line {line}: expected `host:port FINGERPRINT`")]
    Malformed { path: PathBuf, line: usize },
    #[error("{0:?} is not a SHA-256 fingerprint (32 hex pairs, like AB:CD:…)")]
    BadFingerprint(String),
}

/// One line of the file, kept verbatim unless it is an entry.
#[derive(Debug, Clone)]
enum Line {
    Entry { server: String, fingerprint: String },
    Other(String),
}

/// The known-servers file, loaded.
#[derive(Debug, Clone)]
pub struct KnownServers {
    /// Where it is read from and written to.
    path: PathBuf,
    /// Its lines in order, so that saving keeps the user's comments.
    lines: Vec<Line>,
}

impl KnownServers {
    /// Loads `path`; a missing file is an empty list.
    pub fn load(path: &Path) -> Result<KnownServers, KnownServersError> {
        let text = match fs::read_to_string(path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => String::new(),
            Err(source) => return Err(KnownServersError::Read { path: path.to_owned(), source }),
        };
        let mut lines = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                lines.push(Line::Other(raw.to_owned()));
                continue;
            }
            let mut words = trimmed.split_whitespace();
            let (Some(server), Some(fp), None) = (words.next(), words.next(), words.next()) else {
                return Err(KnownServersError::Malformed { path: path.to_owned(), line: index + 1 });
            };
            let fingerprint = normalize_fingerprint(fp)
                .map_err(|_| KnownServersError::Malformed { path: path.to_owned(), line: index + 1 })?;
            lines.push(Line::Entry { server: server.to_ascii_lowercase(), fingerprint });
        }
        Ok(KnownServers { path: path.to_owned(), lines })
    }

    /// The file this list lives in.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pinned fingerprint of `server` (`host:port`), if any.
    pub fn lookup(&self, server: &str) -> Option<&str> {
        let server = server.to_ascii_lowercase();
        self.lines.iter().find_map(|line| match line {
            Line::Entry { server: s, fingerprint } if *s == server => Some(fingerprint.as_str()),
            _ => None,
        })
    }

    /// Compares a presented fingerprint with the file.
    pub fn check(&self, server: &str, fingerprint: &str) -> Verdict {
        match self.lookup(server) {
            None => Verdict::Unknown,
            Some(pinned) if pinned.eq_ignore_ascii_case(fingerprint) => Verdict::Pinned,
            Some(pinned) => Verdict::Changed { pinned: pinned.to_owned() },
        }
    }

    /// Pins `server` to `fingerprint` (replacing any earlier pin) and saves the file.
    pub fn pin(&mut self, server: &str, fingerprint: &str) -> Result<(), KnownServersError> {
        let fingerprint = normalize_fingerprint(fingerprint)?;
        let server = server.to_ascii_lowercase();
        // Start from the file as it is now, so a pin another client wrote meanwhile survives.
        if let Ok(fresh) = KnownServers::load(&self.path) {
            self.lines = fresh.lines;
        }
        self.lines.retain(|line| !matches!(line, Line::Entry { server: s, .. } if *s == server));
        self.lines.push(Line::Entry { server, fingerprint });
        self.save()
    }

    fn save(&self) -> Result<(), KnownServersError> {
        let write_err = |source| KnownServersError::Write { path: self.path.clone(), source };
        if let Some(dir) = self.path.parent() {
            fs::create_dir_all(dir).map_err(write_err)?;
        }
        let mut text = String::new();
        if self.lines.iter().all(|l| matches!(l, Line::Entry { .. })) {
            text.push_str("# Servers chinwag chat has met, with their TLS certificate's SHA-256 fingerprint.\n");
            text.push_str("# A server whose certificate changes is refused; delete its line to meet it anew.\n");
        }
        for line in &self.lines {
            match line {
                Line::Entry { server, fingerprint } => text.push_str(&format!("{server} {fingerprint}\n")),
                Line::Other(raw) => {
                    text.push_str(raw);
                    text.push('\n');
                }
            }
        }
        // Two clients of one user may pin at the same moment: each writes its own file.
        let tmp = self.path.with_extension(format!("tmp.{}", std::process::id()));
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(&tmp).map_err(write_err)?;
        file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(write_err)?;
        fs::rename(&tmp, &self.path).map_err(write_err)
    }
}

/// Upper-case hex pairs joined by `:` (the form the server prints); accepts lower case and
/// no colons (WeeChat's form).
pub fn normalize_fingerprint(text: &str) -> Result<String, KnownServersError> {
    let hex: String = text.chars().filter(|&c| c != ':').collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(KnownServersError::BadFingerprint(text.to_owned()));
    }
    let upper = hex.to_ascii_uppercase();
    let pairs: Vec<&str> = (0..32).map(|i| &upper[2 * i..2 * i + 2]).collect();
    Ok(pairs.join(":"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP_A: &str =
        "AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99";

    #[test]
    fn pins_checks_and_keeps_comments() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("sub").join("known_servers");
        let mut known = KnownServers::load(&path).expect("missing file is empty");
        assert_eq!(known.check("host:6697", FP_A), Verdict::Unknown);
        known.pin("Host:6697", &FP_A.to_lowercase().replace(':', "")).expect("pin");
        assert_eq!(known.check("host:6697", FP_A), Verdict::Pinned);
        let other = FP_A.replace("AA", "AB");
        assert_eq!(known.check("host:6697", &other), Verdict::Changed { pinned: FP_A.to_owned() });

        let mut text = fs::read_to_string(&path).expect("written");
        text.push_str("# mine\n");
        fs::write(&path, text).expect("edit");
        let mut again = KnownServers::load(&path).expect("reload");
        assert_eq!(again.lookup("HOST:6697"), Some(FP_A));
        again.pin("host:6697", &other).expect("repin");
        let text = fs::read_to_string(&path).expect("written");
        assert!(text.contains("# mine"), "{text}");
        assert_eq!(text.matches("host:6697").count(), 1, "{text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }

    #[test]
    fn a_pin_keeps_what_another_client_pinned_meanwhile() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_servers");
        let mut first = KnownServers::load(&path).expect("empty");
        let mut second = KnownServers::load(&path).expect("empty");
        first.pin("a:1", FP_A).expect("pin a");
        second.pin("b:1", FP_A).expect("pin b");
        let both = KnownServers::load(&path).expect("reload");
        assert_eq!((both.lookup("a:1"), both.lookup("b:1")), (Some(FP_A), Some(FP_A)));
    }

    #[test]
    fn refuses_garbage() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("known_servers");
        fs::write(&path, "host:1 nothex\n").expect("write");
        assert!(matches!(KnownServers::load(&path), Err(KnownServersError::Malformed { line: 1, .. })));
        assert!(normalize_fingerprint("AB:CD").is_err());
    }
}
