//! What this device believes about other devices: trust on first use, loud changes, verified
//! contacts, and the safety number users compare for `/verify`.
//!
//! The first device list seen for an account is trusted as it is. After that, a device that
//! appears, or a device whose keys change, is held: nothing is encrypted to it until the user
//! accepts it (or verifies the contact). Verification marks the devices whose keys went into
//! the compared safety number.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512};

/// How far a device is trusted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Trust {
    /// Seen in the contact's first device list (trust on first use), or accepted by the user.
    Trusted,
    /// Its keys were part of a safety number the user compared and confirmed.
    Verified,
    /// Appeared after the first list: held until the user accepts it.
    New,
    /// Its keys differ from the ones known before: held until the user accepts it.
    Changed,
}

impl Trust {
    /// Whether messages may be encrypted to the device.
    pub fn accepted(self) -> bool {
        matches!(self, Trust::Trusted | Trust::Verified)
    }
}

/// A device and its keys as last seen.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownDevice {
    pub curve25519: String,
    pub ed25519: String,
    pub trust: Trust,
}

/// A change worth telling the user about.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TrustChange {
    NewDevice { account: String, device: String },
    KeyChanged { account: String, device: String },
}

/// Every account's devices this device has seen, by folded account name.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct TrustStore {
    accounts: BTreeMap<String, BTreeMap<String, KnownDevice>>,
    /// Accounts whose device list has been seen at least once: the first list is trusted as it
    /// is (one's own device, recorded at creation, does not count as having seen the list).
    #[serde(default)]
    listed: BTreeSet<String>,
}

impl TrustStore {
    /// Takes in an account's current device list `(device, curve25519, ed25519)`, already
    /// signature-checked, and reports what the user must hear about.
    pub fn observe(&mut self, account: &str, devices: &[(String, String, String)]) -> Vec<TrustChange> {
        let first_contact = self.listed.insert(account.to_owned());
        let known = self.accounts.entry(account.to_owned()).or_default();
        let mut changes = Vec::new();
        for (device, curve, ed) in devices {
            match known.get_mut(device) {
                Some(k) if k.curve25519 == *curve && k.ed25519 == *ed => {}
                Some(k) => {
                    *k = KnownDevice { curve25519: curve.clone(), ed25519: ed.clone(), trust: Trust::Changed };
                    changes.push(TrustChange::KeyChanged { account: account.to_owned(), device: device.clone() });
                }
                None => {
                    let trust = if first_contact { Trust::Trusted } else { Trust::New };
                    known.insert(device.clone(), KnownDevice { curve25519: curve.clone(), ed25519: ed.clone(), trust });
                    if !first_contact {
                        changes.push(TrustChange::NewDevice { account: account.to_owned(), device: device.clone() });
                    }
                }
            }
        }
        changes
    }

    /// Records one's own device as trusted (it is, by definition).
    pub fn trust_self(&mut self, account: &str, device: &str, curve: &str, ed: &str) {
        let known = self.accounts.entry(account.to_owned()).or_default();
        known.insert(
            device.to_owned(),
            KnownDevice { curve25519: curve.to_owned(), ed25519: ed.to_owned(), trust: Trust::Verified },
        );
    }

    pub fn device(&self, account: &str, device: &str) -> Option<&KnownDevice> {
        self.accounts.get(account)?.get(device)
    }

    pub fn devices(&self, account: &str) -> impl Iterator<Item = (&String, &KnownDevice)> {
        self.accounts.get(account).into_iter().flatten()
    }

    /// The user accepts a new or changed device; `false` if it is unknown.
    pub fn accept(&mut self, account: &str, device: &str) -> bool {
        match self.accounts.get_mut(account).and_then(|d| d.get_mut(device)) {
            Some(k) => {
                if !k.accepted_or_verified() {
                    k.trust = Trust::Trusted;
                }
                true
            }
            None => false,
        }
    }

    /// The user compared the safety number: every device of `account` now known is verified.
    pub fn verify(&mut self, account: &str) {
        for k in self.accounts.get_mut(account).into_iter().flat_map(|d| d.values_mut()) {
            k.trust = Trust::Verified;
        }
    }

    /// Whether every known device of `account` is verified.
    pub fn verified(&self, account: &str) -> bool {
        let mut devices = self.devices(account).peekable();
        devices.peek().is_some() && devices.all(|(_, k)| k.trust == Trust::Verified)
    }
}

impl KnownDevice {
    fn accepted_or_verified(&self) -> bool {
        self.trust.accepted()
    }
}

/// One account's fingerprint: a digest of its name and its devices' keys, in a fixed order.
fn fingerprint(account: &str, keys: &[(String, String)]) -> Vec<u8> {
    let mut sorted: Vec<&(String, String)> = keys.iter().collect();
    sorted.sort();
    let mut h = Sha512::new();
    h.update(b"chinwag-e2e safety number v1\0");
    h.update(account.as_bytes());
    for (curve, ed) in sorted {
        h.update(b"\0");
        h.update(curve.as_bytes());
        h.update(b":");
        h.update(ed.as_bytes());
    }
    h.finalize().to_vec()
}

/// The safety number of a conversation between two accounts, from each account's device keys
/// `(curve25519, ed25519)`: twelve groups of five digits, identical on both sides whichever
/// side computes it.
pub fn safety_number(a: (&str, &[(String, String)]), b: (&str, &[(String, String)])) -> String {
    let mut fps = [fingerprint(a.0, a.1), fingerprint(b.0, b.1)];
    fps.sort();
    let digest = Sha512::new().chain_update(&fps[0]).chain_update(&fps[1]).finalize();
    digest
        .chunks(5)
        .take(12)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, byte| (acc << 8) | u64::from(*byte));
            format!("{:05}", n % 100_000)
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dev(d: &str, g: u32) -> (String, String, String) {
        (d.to_owned(), format!("curve-{d}-{g}"), format!("ed-{d}-{g}"))
    }

    #[test]
    fn the_first_list_is_trusted_and_later_changes_are_held() {
        let mut t = TrustStore::default();
        assert_eq!(t.observe("bob", &[dev("laptop", 1), dev("phone", 1)]), vec![]);
        assert_eq!(t.device("bob", "phone").map(|d| d.trust), Some(Trust::Trusted));
        assert_eq!(t.observe("bob", &[dev("laptop", 1), dev("phone", 1)]), vec![], "nothing new");
        let changes = t.observe("bob", &[dev("laptop", 2), dev("phone", 1), dev("tablet", 1)]);
        assert_eq!(
            changes,
            vec![
                TrustChange::KeyChanged { account: "bob".into(), device: "laptop".into() },
                TrustChange::NewDevice { account: "bob".into(), device: "tablet".into() },
            ]
        );
        assert!(!t.device("bob", "laptop").expect("known").trust.accepted());
        assert!(!t.device("bob", "tablet").expect("known").trust.accepted());
        assert!(t.accept("bob", "laptop"));
        assert!(t.device("bob", "laptop").expect("known").trust.accepted());
        assert!(!t.verified("bob"));
        t.verify("bob");
        assert!(t.verified("bob"));
        assert!(!t.accept("bob", "nope"));
    }

    #[test]
    fn the_safety_number_is_the_same_on_both_sides_and_changes_with_any_key() {
        let alice = vec![("ca".to_owned(), "ea".to_owned())];
        let bob = vec![("cb1".to_owned(), "eb1".to_owned()), ("cb2".to_owned(), "eb2".to_owned())];
        let bob_reordered = vec![bob[1].clone(), bob[0].clone()];
        let from_alice = safety_number(("alice", &alice), ("bob", &bob));
        let from_bob = safety_number(("bob", &bob_reordered), ("alice", &alice));
        assert_eq!(from_alice, from_bob);
        assert_eq!(from_alice.split(' ').count(), 12);
        assert!(from_alice.split(' ').all(|g| g.len() == 5 && g.bytes().all(|b| b.is_ascii_digit())));
        let bob_changed = vec![bob[0].clone(), ("cb2".to_owned(), "eb3".to_owned())];
        assert_ne!(from_alice, safety_number(("alice", &alice), ("bob", &bob_changed)));
    }
}
