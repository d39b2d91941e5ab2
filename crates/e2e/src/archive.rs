//! The messages of encrypted conversations, kept by the client so that its scrollback and a
//! restart show them: the server holds only ciphertext, and an Olm message can be decrypted
//! once, so without this file a conversation would be gone with the window.
//!
//! One file per account beside the device file (`ACCOUNT.archive`), owner-only (0600), sealed
//! with XChaCha20-Poly1305 under a key derived from the device file's key
//! ([`Device::open_archive`](crate::Device::open_archive)), so it opens with the device and with
//! nothing else. The file is a short header, a fresh nonce and the ciphertext of a JSON list;
//! the header is the associated data. It is bounded: at most [`MAX_ARCHIVED`] messages and
//! [`MAX_ARCHIVE_BYTES`] on disk, the oldest dropped first. Every save rewrites it whole to a
//! temporary file that is synced and renamed over the old one (and the directory synced), so a
//! crash leaves the old or the new archive, never half of one.
//!
//! A file that does not open (damaged, cut short, or sealed by a device that was since
//! replaced) is renamed `ACCOUNT.archive.damaged` and a new archive is started, with a warning
//! that says so: losing scrollback must never stop encryption, and nothing is deleted.
//!
//! Which messages were already decrypted is not kept here but in the device file, beside the
//! ratchet state that consumed their keys: the two must change together, and a damaged archive
//! must not turn a re-delivery into a replay warning.

use std::collections::VecDeque;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use chinwag_proto::casefold;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::vault::{create_private_dir, private_file, sync_dir};
use crate::{Error, Warning};

/// Messages kept at most; the oldest go first.
pub const MAX_ARCHIVED: usize = 5_000;
/// The largest the archive file may grow, in bytes; the oldest messages go first.
pub const MAX_ARCHIVE_BYTES: usize = 2 * 1024 * 1024;
/// The start of the file, and the associated data of its ciphertext.
const MAGIC: &[u8] = b"chinwag-e2e-archive 1\n";
const NONCE_LEN: usize = 24;
const TAG_LEN: usize = 16;
/// What the JSON list may take: the file's bound less the header, nonce, tag and brackets.
const PLAINTEXT_BUDGET: usize = MAX_ARCHIVE_BYTES - MAGIC.len() - NONCE_LEN - TAG_LEN - 2;

/// One message of an encrypted conversation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Archived {
    /// The other party of the conversation (folded account).
    pub peer: String,
    /// Who wrote it, as shown (a nick).
    pub from: String,
    /// Written by this account (on this device or another of its devices).
    pub sent_by_me: bool,
    pub text: String,
    /// When, as RFC 3339 (the server's time where there was one).
    pub time: String,
    /// The server's message id, if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msgid: Option<String>,
}

/// The archive of one account, in memory, and where it is written.
pub struct Archive {
    path: PathBuf,
    key: Zeroizing<[u8; 32]>,
    /// Oldest first, each with its size in the JSON list (its encoding and a comma).
    messages: VecDeque<(Archived, usize)>,
    /// The sum of those sizes.
    bytes: usize,
    /// The position of the oldest message kept, counting every message this archive held
    /// since it was opened: a client pages back through a conversation by position.
    first_seq: u64,
}

impl std::fmt::Debug for Archive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Neither the key nor any message text.
        f.debug_struct("Archive").field("path", &self.path).field("messages", &self.messages.len()).finish()
    }
}

impl Archive {
    /// Opens the archive at `path` sealed with `key`, or starts an empty one if there is no
    /// file. A file that cannot be opened is set aside (renamed `….damaged`) and an empty
    /// archive started; the warning says so.
    pub(crate) fn open(path: &Path, key: Zeroizing<[u8; 32]>) -> (Archive, Option<Warning>) {
        let mut archive = Archive { path: path.to_owned(), key, messages: VecDeque::new(), bytes: 0, first_seq: 0 };
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return (archive, None),
            // Unreadable is as good as damaged.
            Err(e) => return archive.set_aside(&e.to_string()),
        };
        match archive.unseal(&bytes) {
            Some(list) => {
                for message in list {
                    archive.push(message);
                }
                (archive, None)
            }
            None => archive.set_aside("it is damaged, or was sealed by another device"),
        }
    }

    /// Renames the file that would not open and says so.
    fn set_aside(self, why: &str) -> (Archive, Option<Warning>) {
        let damaged = damaged_path(&self.path);
        let outcome = match fs::rename(&self.path, &damaged) {
            Ok(()) => Ok(damaged.display().to_string()),
            Err(e) => Err(e.to_string()),
        };
        let warning =
            Warning::ArchiveSetAside { path: self.path.display().to_string(), reason: why.to_owned(), outcome };
        (self, Some(warning))
    }

    fn unseal(&self, bytes: &[u8]) -> Option<Vec<Archived>> {
        let rest = bytes.strip_prefix(MAGIC)?;
        if rest.len() < NONCE_LEN + TAG_LEN {
            return None;
        }
        let (nonce, ciphertext) = rest.split_at(NONCE_LEN);
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let plain = cipher.decrypt(XNonce::from_slice(nonce), Payload { msg: ciphertext, aad: MAGIC }).ok()?;
        let plain = Zeroizing::new(plain);
        serde_json::from_slice(&plain).ok()
    }

    /// Where the archive lives.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// How many messages it holds.
    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The size the file has once saved.
    pub fn file_size(&self) -> usize {
        MAGIC.len() + NONCE_LEN + TAG_LEN + 2 + self.bytes.saturating_sub(1)
    }

    /// Adds a message (in memory; [`Archive::save`] writes it), dropping the oldest beyond the
    /// bounds. Its `peer` is folded.
    pub fn push(&mut self, mut message: Archived) {
        message.peer = casefold(&message.peer);
        let size = serde_json::to_vec(&message).map_or(0, |v| v.len()) + 1;
        if size > PLAINTEXT_BUDGET {
            return;
        }
        self.messages.push_back((message, size));
        self.bytes += size;
        while self.messages.len() > MAX_ARCHIVED || self.bytes > PLAINTEXT_BUDGET {
            let Some((_, old)) = self.messages.pop_front() else { break };
            self.bytes -= old;
            self.first_seq += 1;
        }
    }

    /// The position of the newest message (see [`Archive::conversation`]), if any.
    pub fn newest_seq(&self) -> Option<u64> {
        self.messages.len().checked_sub(1).map(|last| self.first_seq + last as u64)
    }

    /// Adds a message and writes the archive.
    pub fn record(&mut self, message: Archived) -> Result<(), Error> {
        self.push(message);
        self.save()
    }

    /// The newest `limit` messages of the conversation with `peer` (an account) from before
    /// position `before` (all if `None`), oldest first, each with its position.
    pub fn conversation(&self, peer: &str, before: Option<u64>, limit: usize) -> Vec<(u64, &Archived)> {
        let peer = casefold(peer);
        let mut newest: Vec<(u64, &Archived)> = (self.messages.iter().enumerate())
            .rev()
            .map(|(i, (m, _))| (self.first_seq + i as u64, m))
            .filter(|(seq, m)| before.is_none_or(|b| *seq < b) && m.peer == peer)
            .take(limit)
            .collect();
        newest.reverse();
        newest
    }

    /// Seals the archive and replaces the file with it, atomically, owner-only.
    pub fn save(&self) -> Result<(), Error> {
        let list: Vec<&Archived> = self.messages.iter().map(|(m, _)| m).collect();
        let plain = Zeroizing::new(serde_json::to_vec(&list).map_err(|e| Error::Vault(e.to_string()))?);
        let nonce: [u8; NONCE_LEN] = rand::random();
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: &plain, aad: MAGIC })
            .map_err(|_| Error::Vault("encryption failed".into()))?;
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let mut tmp = self.path.clone().into_os_string();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io = |e| Error::Io(tmp.clone(), e);
        {
            let mut out = private_file(&tmp).map_err(io)?;
            out.write_all(MAGIC).map_err(io)?;
            out.write_all(&nonce).map_err(io)?;
            out.write_all(&ciphertext).map_err(io)?;
            out.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| Error::Io(self.path.clone(), e))?;
        sync_dir(dir);
        Ok(())
    }
}

/// `NAME.damaged` beside `path`.
fn damaged_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".damaged");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(peer: &str, text: &str) -> Archived {
        Archived {
            peer: peer.into(),
            from: peer.into(),
            sent_by_me: false,
            text: text.into(),
            time: "2026-01-02T03:04:05.000Z".into(),
            msgid: Some("m1".into()),
        }
    }

    fn key(byte: u8) -> Zeroizing<[u8; 32]> {
        Zeroizing::new([byte; 32])
    }

    #[test]
    fn an_archive_round_trips_sealed_and_owner_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("e2e").join("alice.archive");
        let (mut archive, warning) = Archive::open(&path, key(7));
        assert!(warning.is_none() && archive.is_empty());
        archive.record(message("Bob", "meet at the old mill 7f3a")).expect("save");
        archive.record(message("carol", "unrelated")).expect("save");
        let bytes = fs::read(&path).expect("read");
        assert!(!bytes.windows(8).any(|w| w == b"old mill"), "nothing in clear");
        assert_eq!(bytes.len(), archive.file_size(), "the size is accounted exactly");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("metadata").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let (again, warning) = Archive::open(&path, key(7));
        assert!(warning.is_none());
        let bob: Vec<&str> = again.conversation("BOB", None, 10).iter().map(|(_, m)| m.text.as_str()).collect();
        assert_eq!(bob, ["meet at the old mill 7f3a"]);
        assert_eq!(again.conversation("bob", Some(0), 10), [], "nothing before the first");
        assert!(!dir.path().join("e2e").join("alice.archive.tmp").exists());
    }

    #[test]
    fn a_damaged_or_foreign_archive_is_set_aside_and_a_new_one_started() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("alice.archive");
        let (mut archive, _) = Archive::open(&path, key(1));
        archive.record(message("bob", "kept")).expect("save");
        // Sealed by another key: set aside, not opened, not deleted.
        let (fresh, warning) = Archive::open(&path, key(2));
        assert!(fresh.is_empty());
        let text = warning.expect("a warning").to_string();
        assert!(text.contains("alice.archive.damaged") && text.contains("new one"), "{text}");
        assert!(dir.path().join("alice.archive.damaged").exists() && !path.exists());
        // Garbage, and a file cut short.
        for bytes in [&b"not an archive"[..], &MAGIC[..MAGIC.len() - 1], MAGIC] {
            fs::write(&path, bytes).expect("write");
            let (fresh, warning) = Archive::open(&path, key(1));
            assert!(fresh.is_empty() && warning.is_some());
        }
        // A flipped bit in the ciphertext.
        let (mut archive, _) = Archive::open(&path, key(1));
        archive.record(message("bob", "x")).expect("save");
        let mut bytes = fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        fs::write(&path, bytes).expect("write");
        assert!(Archive::open(&path, key(1)).1.is_some());
    }

    #[test]
    fn the_archive_keeps_the_newest_within_its_bounds() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("a.archive");
        let (mut archive, _) = Archive::open(&path, key(3));
        for i in 0..MAX_ARCHIVED + 10 {
            archive.push(message("bob", &format!("n{i}")));
        }
        assert_eq!(archive.len(), MAX_ARCHIVED);
        let newest = archive.conversation("bob", None, 1);
        assert_eq!(newest[0].1.text, format!("n{}", MAX_ARCHIVED + 9));
        assert_eq!(Some(newest[0].0), archive.newest_seq());
        assert_eq!(archive.conversation("bob", None, MAX_ARCHIVED)[0].1.text, "n10", "the oldest went first");
        // Paging back: the page before the newest two.
        let seq = archive.newest_seq().expect("not empty");
        let page: Vec<&str> =
            archive.conversation("bob", Some(seq - 1), 2).iter().map(|(_, m)| m.text.as_str()).collect();
        assert_eq!(page, [format!("n{}", MAX_ARCHIVED + 6), format!("n{}", MAX_ARCHIVED + 7)]);
        let big = "x".repeat(crate::MAX_TEXT_LEN);
        for _ in 0..300 {
            archive.push(message("bob", &big));
        }
        archive.save().expect("save");
        let size = fs::metadata(&path).expect("metadata").len() as usize;
        assert!(size <= MAX_ARCHIVE_BYTES && size > MAX_ARCHIVE_BYTES - 2 * crate::MAX_TEXT_LEN, "{size}");
        assert_eq!(Archive::open(&path, key(3)).0.len(), archive.len());
    }

    /// The cost of recording one message (seal, write, fsync, rename) with an archive at its
    /// bound, for docs/e2e.md: `cargo test --release -p chinwag-e2e archive_save_cost -- --ignored --nocapture`.
    #[test]
    #[ignore = "a measurement, not a check"]
    fn archive_save_cost() {
        let dir = tempfile::tempdir().expect("temp dir");
        for (label, count, len) in
            [("100 short", 100, 80), ("5,000 short", MAX_ARCHIVED, 80), ("full 2 MiB", 5_000, 1_000)]
        {
            let path = dir.path().join(format!("{count}-{len}.archive"));
            let (mut archive, _) = Archive::open(&path, key(9));
            for i in 0..count {
                archive.push(message("bob", &format!("{i} {}", "y".repeat(len))));
            }
            let rounds = 50;
            let start = std::time::Instant::now();
            for i in 0..rounds {
                archive.record(message("bob", &format!("live {i} {}", "z".repeat(len)))).expect("save");
            }
            let per = start.elapsed() / rounds;
            println!("{label}: {} messages, {} bytes on disk: {per:?} per message", archive.len(), archive.file_size());
        }
    }
}
