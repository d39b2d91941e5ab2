//! What the core asks of the end-to-end encryption key directory, and what it gets back.
//!
//! These mirror `chinwag-store`'s key types (the core does not depend on the store crate); the
//! server maps between them. Keys are opaque base64 text to the core: it checks their shape and
//! size, never their meaning. Clients sign them and verify each other's signatures (docs/e2e.md).

/// The client tag that carries an encrypted message (docs/e2e.md, "Messages").
pub const E2E_TAG: &str = "+chinwag.dev/e2e";
/// The capability that advertises the key directory and the `E2E` command.
pub const E2E_CAP: &str = "chinwag.dev/e2e";
/// Devices one account may publish.
pub const MAX_DEVICES: usize = 10;
/// One-time keys the server keeps per device; uploads beyond it are ignored.
pub const MAX_ONE_TIME_KEYS: usize = 100;
/// Below this many one-time keys, the server asks the device to top its pool up (`E2E REFILL`).
pub const REFILL_BELOW: usize = 10;
/// Devices one `E2E CLAIM` may ask keys for.
pub const MAX_CLAIM_DEVICES: usize = 10;
/// Longest device id; ids are `[A-Za-z0-9_-]`.
pub const MAX_DEVICE_LEN: usize = 32;
/// Longest key or signature (base64 without padding). A Curve25519 or Ed25519 key is 43
/// characters, an Ed25519 signature 86.
pub const MAX_KEY_LEN: usize = 96;

/// A device's public identity keys and the signature that binds them to its account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKeys {
    pub device: String,
    pub curve25519: String,
    pub ed25519: String,
    pub signature: String,
}

/// A Curve25519 key and its signature by the owning device's Ed25519 key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedKey {
    pub key: String,
    pub signature: String,
}

/// Key directory work for the edge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyRequest {
    PublishDevice {
        account: String,
        device: DeviceKeys,
    },
    AddOneTimeKeys {
        account: String,
        device: String,
        keys: Vec<SignedKey>,
    },
    SetFallback {
        account: String,
        device: String,
        key: SignedKey,
    },
    Devices {
        account: String,
    },
    /// One key for each device, in order; each one-time key is handed out once.
    Claim {
        account: String,
        devices: Vec<String>,
    },
    RemoveDevice {
        account: String,
        device: String,
    },
}

/// What publishing a device did (see `chinwag_store::DevicePublished`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Published {
    New,
    Unchanged,
    Replaced,
    TooManyDevices,
    NoAccount,
}

/// Keys a device has waiting on the server.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct KeyCounts {
    pub one_time_keys: usize,
    pub fallback: bool,
}

/// A key handed out by a claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Claimed {
    pub key: SignedKey,
    /// The fallback key: the device had no one-time key left.
    pub fallback: bool,
    /// One-time keys the device has left.
    pub remaining: usize,
}

/// The answer to a [`KeyRequest`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeyAnswer {
    /// PublishDevice: the outcome and the device's counts afterwards.
    Published(Published, KeyCounts),
    /// AddOneTimeKeys / SetFallback: the counts afterwards; `None` if the device is unknown.
    Counts(Option<KeyCounts>),
    Devices(Vec<DeviceKeys>),
    /// Claim: each device asked for, with its key if it had one.
    Claimed(Vec<(String, Option<Claimed>)>),
    Removed(bool),
}

/// Whether `s` is a usable device id.
pub fn valid_device_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_DEVICE_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `s` looks like a key or signature: unpadded standard base64 of a sane length.
pub fn valid_key(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_KEY_LEN && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
}

/// The destination `(account, device)` of an encrypted message's tag value:
/// `1,<account>,<device>,…` (docs/e2e.md).
pub fn tag_destination(value: &str) -> Option<(&str, &str)> {
    let mut fields = value.splitn(4, ',');
    if fields.next()? != "1" {
        return None;
    }
    let account = fields.next().filter(|a| !a.is_empty())?;
    let device = fields.next().filter(|d| valid_device_id(d))?;
    Some((account, device))
}

/// The offline queue of one device, `<account, folded>/<device, lowercase>` (account names never
/// contain `/`): an encrypted message waits for the device it was encrypted to, not for
/// whichever of the account's devices logs in first. The store keeps the same convention.
pub fn device_queue(account: &str, device: &str) -> String {
    format!("{}/{}", chinwag_proto::casefold(account), device.to_ascii_lowercase())
}
