//! The end-to-end encryption key directory's requests, run on the store's thread: the core's
//! key types mapped to the store's and back. Keys are public and opaque here; nothing is
//! logged but failures.

use chinwag_core::keys::{
    Claimed, DeviceKeys, KeyAnswer, KeyCounts, KeyRequest, Published, SignedKey, MAX_DEVICES, MAX_ONE_TIME_KEYS,
};
use chinwag_core::Failure;
use chinwag_store as store;

use crate::work::Worker;

impl Worker {
    pub(crate) async fn keys(&self, request: KeyRequest) -> Result<KeyAnswer, Failure> {
        match request {
            KeyRequest::PublishDevice { account, device } => {
                let device = to_device(device);
                self.store(move |s| {
                    let outcome = s.publish_device(&account, &device, MAX_DEVICES)?;
                    let counts = s.key_counts(&account, &device.device)?;
                    Ok(KeyAnswer::Published(published(outcome), counts.map(from_counts).unwrap_or_default()))
                })
                .await
            }
            KeyRequest::AddOneTimeKeys { account, device, keys } => {
                let keys: Vec<store::SignedKey> = keys.into_iter().map(to_key).collect();
                self.store(move |s| s.add_one_time_keys(&account, &device, &keys, MAX_ONE_TIME_KEYS))
                    .await
                    .map(|c| KeyAnswer::Counts(c.map(from_counts)))
            }
            KeyRequest::SetFallback { account, device, key } => {
                let key = to_key(key);
                self.store(move |s| s.set_fallback_key(&account, &device, &key))
                    .await
                    .map(|c| KeyAnswer::Counts(c.map(from_counts)))
            }
            KeyRequest::Devices { account } => {
                let devices = self.store(move |s| s.devices(&account)).await?;
                Ok(KeyAnswer::Devices(devices.into_iter().map(from_device).collect()))
            }
            KeyRequest::Claim { account, devices } => {
                self.store(move |s| {
                    let mut out = Vec::with_capacity(devices.len());
                    for device in devices {
                        let claimed = s.claim_key(&account, &device)?.map(|c| Claimed {
                            key: SignedKey { key: c.key.key, signature: c.key.signature },
                            fallback: c.fallback,
                            remaining: c.remaining,
                        });
                        out.push((device, claimed));
                    }
                    Ok(KeyAnswer::Claimed(out))
                })
                .await
            }
            KeyRequest::RemoveDevice { account, device } => {
                self.store(move |s| s.remove_device(&account, &device)).await.map(KeyAnswer::Removed)
            }
        }
    }
}

fn published(p: store::DevicePublished) -> Published {
    match p {
        store::DevicePublished::New => Published::New,
        store::DevicePublished::Unchanged => Published::Unchanged,
        store::DevicePublished::Replaced => Published::Replaced,
        store::DevicePublished::TooManyDevices => Published::TooManyDevices,
        store::DevicePublished::NoAccount => Published::NoAccount,
    }
}

fn to_device(d: DeviceKeys) -> store::DeviceKeys {
    store::DeviceKeys { device: d.device, curve25519: d.curve25519, ed25519: d.ed25519, signature: d.signature }
}

fn from_device(d: store::DeviceKeys) -> DeviceKeys {
    DeviceKeys { device: d.device, curve25519: d.curve25519, ed25519: d.ed25519, signature: d.signature }
}

fn to_key(k: SignedKey) -> store::SignedKey {
    store::SignedKey { key: k.key, signature: k.signature }
}

fn from_counts(c: store::KeyCounts) -> KeyCounts {
    KeyCounts { one_time_keys: c.one_time_keys, fallback: c.fallback }
}
