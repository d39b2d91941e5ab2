//! A device's secrets at rest: one file, owner-only (0600), encrypted with XChaCha20-Poly1305
//! under a key derived from a passphrase with Argon2id.
//!
//! The file is JSON: a header (format, version, KDF parameters and salt, nonce) and the
//! ciphertext. The header is the AEAD's associated data, so a file whose parameters were altered
//! fails to open just like one whose ciphertext was. The key is derived once per open and kept
//! (zeroized on drop); each save draws a fresh nonce. Saves go to a temporary file that is
//! synced and renamed over the old one, so a crash leaves the old or the new state, never half.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

use argon2::{Algorithm, Argon2, Params, Version};
use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
use base64::Engine;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;

const FORMAT: &str = "chinwag-e2e-vault";
const VERSION: u32 = 1;
const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 24;

/// Argon2id cost. The default is OWASP's recommendation with more memory (64 MiB, 3 passes):
/// opening a device is rare, and an attacker with the file pays this for every guess.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    pub memory_kib: u32,
    pub passes: u32,
}

impl Default for KdfParams {
    fn default() -> Self {
        KdfParams { memory_kib: 64 * 1024, passes: 3 }
    }
}

impl KdfParams {
    /// The cheapest parameters Argon2 accepts; for tests only, where a device is created and
    /// opened many times and the passphrase protects nothing.
    pub fn insecure_for_tests() -> Self {
        KdfParams { memory_kib: 8, passes: 1 }
    }
}

#[derive(Serialize, Deserialize)]
struct Header {
    format: String,
    version: u32,
    kdf: KdfParams,
    salt: String,
    nonce: String,
}

impl Header {
    /// The associated data: everything but the nonce, which the AEAD covers by itself.
    fn aad(&self) -> Vec<u8> {
        format!(
            "{} {} argon2id m={} t={} p=1 {}",
            self.format, self.version, self.kdf.memory_kib, self.kdf.passes, self.salt
        )
        .into_bytes()
    }
}

#[derive(Serialize, Deserialize)]
struct File {
    #[serde(flatten)]
    header: Header,
    ciphertext: String,
}

/// An open vault: where it lives and the key that seals it.
pub(crate) struct Vault {
    path: PathBuf,
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault").field("path", &self.path).field("kdf", &self.kdf).finish_non_exhaustive()
    }
}

fn derive(passphrase: &str, salt: &[u8], kdf: KdfParams) -> Result<Zeroizing<[u8; 32]>, Error> {
    let params = Params::new(kdf.memory_kib, kdf.passes, 1, Some(32))
        .map_err(|e| Error::Vault(format!("KDF parameters: {e}")))?;
    let mut key = Zeroizing::new([0u8; 32]);
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
        .hash_password_into(passphrase.as_bytes(), salt, key.as_mut())
        .map_err(|e| Error::Vault(format!("key derivation: {e}")))?;
    Ok(key)
}

impl Vault {
    /// A new vault at `path` (which must not exist yet), keyed by `passphrase`.
    pub fn create(path: &Path, passphrase: &str, kdf: KdfParams) -> Result<Vault, Error> {
        if path.exists() {
            return Err(Error::Exists(path.to_owned()));
        }
        let salt: [u8; SALT_LEN] = rand::random();
        let key = derive(passphrase, &salt, kdf)?;
        Ok(Vault { path: path.to_owned(), kdf, salt, key })
    }

    /// Opens the vault at `path` and returns it with its decrypted contents.
    pub fn open(path: &Path, passphrase: &str) -> Result<(Vault, Zeroizing<Vec<u8>>), Error> {
        let text = fs::read_to_string(path).map_err(|e| Error::Io(path.to_owned(), e))?;
        let file: File = serde_json::from_str(&text).map_err(|_| Error::Corrupt(path.to_owned()))?;
        let h = &file.header;
        if h.format != FORMAT || h.version != VERSION {
            return Err(Error::Corrupt(path.to_owned()));
        }
        let salt: [u8; SALT_LEN] = decode_exact(&h.salt).ok_or_else(|| Error::Corrupt(path.to_owned()))?;
        let nonce: [u8; NONCE_LEN] = decode_exact(&h.nonce).ok_or_else(|| Error::Corrupt(path.to_owned()))?;
        let ciphertext = B64.decode(&file.ciphertext).map_err(|_| Error::Corrupt(path.to_owned()))?;
        let key = derive(passphrase, &salt, h.kdf)?;
        let cipher = XChaCha20Poly1305::new(key.as_ref().into());
        let plain = cipher
            .decrypt(XNonce::from_slice(&nonce), Payload { msg: &ciphertext, aad: &h.aad() })
            .map_err(|_| Error::WrongPassphrase(path.to_owned()))?;
        Ok((Vault { path: path.to_owned(), kdf: h.kdf, salt, key }, Zeroizing::new(plain)))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A key for another purpose (`label`), derived from the vault's key: SHA-256 of the label
    /// and the key. The vault's key is uniformly random to anyone without the passphrase, so a
    /// domain-separated hash of it is as good a key as it is, and it is the same at every open.
    pub fn subkey(&self, label: &str) -> Zeroizing<[u8; 32]> {
        use sha2::{Digest, Sha256};
        let mut hash = Sha256::new();
        hash.update(label.as_bytes());
        hash.update([0u8]);
        hash.update(self.key.as_ref());
        Zeroizing::new(hash.finalize().into())
    }

    /// Encrypts `contents` and replaces the file with it, atomically, owner-only.
    pub fn save(&self, contents: &[u8]) -> Result<(), Error> {
        let nonce: [u8; NONCE_LEN] = rand::random();
        let header = Header {
            format: FORMAT.to_owned(),
            version: VERSION,
            kdf: self.kdf,
            salt: B64.encode(self.salt),
            nonce: B64.encode(nonce),
        };
        let cipher = XChaCha20Poly1305::new(self.key.as_ref().into());
        let ciphertext = cipher
            .encrypt(XNonce::from_slice(&nonce), Payload { msg: contents, aad: &header.aad() })
            .map_err(|_| Error::Vault("encryption failed".into()))?;
        let file = File { header, ciphertext: B64.encode(ciphertext) };
        let json = serde_json::to_vec(&file).map_err(|e| Error::Vault(e.to_string()))?;
        let dir = self.path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        create_private_dir(dir)?;
        let tmp = self.path.with_extension("tmp");
        let io = |e| Error::Io(tmp.clone(), e);
        {
            let mut out = private_file(&tmp).map_err(io)?;
            out.write_all(&json).map_err(io)?;
            out.sync_all().map_err(io)?;
        }
        fs::rename(&tmp, &self.path).map_err(|e| Error::Io(self.path.clone(), e))?;
        sync_dir(dir);
        Ok(())
    }
}

/// Makes a rename in `dir` durable. Best effort: a failure here loses nothing that the rename
/// did not already risk, and some file systems refuse to sync a directory.
pub(crate) fn sync_dir(dir: &Path) {
    #[cfg(unix)]
    if let Ok(d) = fs::File::open(dir) {
        let _ = d.sync_all();
    }
    #[cfg(not(unix))]
    let _ = dir;
}

fn decode_exact<const N: usize>(s: &str) -> Option<[u8; N]> {
    B64.decode(s).ok()?.try_into().ok()
}

#[cfg(unix)]
pub(crate) fn private_file(path: &Path) -> std::io::Result<fs::File> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let file = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)?;
    // A file left by an earlier crash keeps its old mode; make sure.
    file.set_permissions(fs::Permissions::from_mode(0o600))?;
    Ok(file)
}

#[cfg(not(unix))]
pub(crate) fn private_file(path: &Path) -> std::io::Result<fs::File> {
    fs::OpenOptions::new().write(true).create(true).truncate(true).open(path)
}

pub(crate) fn create_private_dir(dir: &Path) -> Result<(), Error> {
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| Error::Io(dir.to_owned(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_vault_round_trips_and_refuses_a_wrong_passphrase_or_a_modified_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("sub").join("device.vault");
        let vault = Vault::create(&path, "correct horse", KdfParams::insecure_for_tests()).expect("create");
        vault.save(b"secret state 4f1c").expect("save");
        let text = fs::read_to_string(&path).expect("read");
        assert!(!text.contains("secret state"), "nothing in clear: {text}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "owner-only");
        }
        let (_, plain) = Vault::open(&path, "correct horse").expect("open");
        assert_eq!(plain.as_slice(), b"secret state 4f1c");
        assert!(matches!(Vault::open(&path, "wrong horse"), Err(Error::WrongPassphrase(_))));
        assert!(matches!(Vault::create(&path, "x", KdfParams::insecure_for_tests()), Err(Error::Exists(_))));

        // Raising the stored cost (an attacker downgrading it would do the opposite) breaks the
        // authentication, as does any change to the ciphertext.
        let altered = text.replace("\"passes\":1", "\"passes\":2");
        fs::write(&path, altered).expect("write");
        assert!(matches!(Vault::open(&path, "correct horse"), Err(Error::WrongPassphrase(_))));
        fs::write(&path, "not json").expect("write");
        assert!(matches!(Vault::open(&path, "correct horse"), Err(Error::Corrupt(_))));
    }
}
