//! The values of the end-to-end encryption key directory: device identity keys, one-time keys
//! and fallback keys, as published by clients. The store keeps them opaque (base64 text it never
//! decodes); the clients sign and verify them.

/// A device's public identity, as its owner published it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeviceKeys {
    /// Chosen by the client, unique within its account; case-sensitive.
    pub device: String,
    /// The device's Curve25519 identity key (base64), used to set up Olm sessions.
    pub curve25519: String,
    /// The device's Ed25519 signing key (base64); signs the rest.
    pub ed25519: String,
    /// The Ed25519 signature binding account, device and both keys (base64).
    pub signature: String,
}

/// A Curve25519 public key with its owner device's Ed25519 signature, both base64.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SignedKey {
    pub key: String,
    pub signature: String,
}

/// What publishing a device did.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum DevicePublished {
    /// The account had no device by this id.
    New,
    /// The same keys were already stored: nothing changed, the key pools are kept.
    Unchanged,
    /// The device id existed with other identity keys: they were replaced, and its one-time and
    /// fallback keys (signed by the old identity) were deleted.
    Replaced,
    /// A new device, but the account already has the maximum number: nothing was stored.
    TooManyDevices,
    /// There is no such account: nothing was stored.
    NoAccount,
}

/// The keys a device has waiting on the server.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct KeyCounts {
    /// Unclaimed one-time keys.
    pub one_time_keys: usize,
    /// Whether a fallback key is set.
    pub fallback: bool,
}

/// A key handed out for setting up a session with a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedKey {
    pub key: SignedKey,
    /// True if the device had no one-time key left and this is its fallback key, which is handed
    /// out again until the device replaces it.
    pub fallback: bool,
    /// One-time keys the device has left after this claim.
    pub remaining: usize,
}

/// The offline queue key of one device: `<account, folded>/<device, lowercase>`. Encrypted
/// messages are queued per device (see [`crate::StoredMessage::offline_for`]), so each of an
/// account's devices gets its own copy when it comes back, whichever logs in first.
pub fn device_queue(account: &str, device: &str) -> String {
    format!("{}/{}", crate::fold(account), device.to_ascii_lowercase())
}
