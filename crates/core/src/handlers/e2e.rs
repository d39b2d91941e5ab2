//! `E2E`: the end-to-end encryption key directory (capability `chinwag.dev/e2e`), and the
//! routing of encrypted private messages to the device they are addressed to.
//!
//! The server only stores and hands out public keys and relays ciphertext; it never decrypts,
//! and it does not verify signatures (clients do: a server that lied would be caught there). See
//! docs/e2e.md for the wire format and the threat model.
//!
//! Client → server (all need a logged-in account):
//! - `E2E DEVICE <device> <curve25519> <ed25519> <signature>`: publish (or refresh) this
//!   connection's device; encrypted messages for it are then delivered here.
//! - `E2E OTK <key>:<sig> [<key>:<sig> …]` and `E2E FALLBACK <key>:<sig>`: top up the bound
//!   device's one-time keys, set its fallback key.
//! - `E2E DEVICES <account>`, `E2E CLAIM <account> <device>[,<device>…]`, `E2E REMOVE <device>`.
//!
//! Server → client: `E2E COUNT <device> <one-time keys> <fallback 0|1>`, `E2E REFILL <device>
//! <one-time keys>` (unsolicited: the pool runs low), `E2E DEVICES <account> <n>` followed by n
//! `E2E DEVICE <account> <device> <curve25519> <ed25519> <signature>`, `E2E KEY <account>
//! <device> otk|fallback <key> <sig>` or `E2E KEY <account> <device> none`, `E2E REMOVED
//! <device>`; errors are `FAIL E2E <code> …`.

use chinwag_proto::{casefold, Message};

use crate::broadcast::Outgoing;
use crate::ids::ConnId;
use crate::keys::{
    device_queue, tag_destination, valid_device_id, valid_key, DeviceKeys, KeyAnswer, KeyCounts, KeyRequest, Published,
    SignedKey, E2E_TAG, MAX_CLAIM_DEVICES, REFILL_BELOW,
};
use crate::server::{Pending, Server};
use crate::store::{Failure, Request, Response};

/// What to do with a key directory answer.
#[derive(Debug)]
pub(crate) enum KeysThen {
    Publish { device: String },
    Counts { device: String },
    Devices { account: String },
    Claim { account: String },
    Remove { device: String },
}

/// The longest account name `DEVICES` and `CLAIM` accept (the nick length bound of any server).
const MAX_ACCOUNT_LEN: usize = 64;

impl Server {
    pub(crate) fn handle_e2e(&mut self, msg: &Message) {
        let sub = msg.params.first().map(|s| s.to_ascii_uppercase()).unwrap_or_default();
        let Some(account) = self.cur_client().and_then(|c| c.account.clone()) else {
            self.fail("E2E", "ACCOUNT_REQUIRED", &[&sub], "Log in to an account to use end-to-end encryption");
            return;
        };
        let p = &msg.params;
        match sub.as_str() {
            "DEVICE" if p.len() >= 5 => {
                let keys = DeviceKeys {
                    device: p[1].clone(),
                    curve25519: p[2].clone(),
                    ed25519: p[3].clone(),
                    signature: p[4].clone(),
                };
                if !valid_device_id(&keys.device) {
                    self.invalid_device(&sub, &keys.device);
                    return;
                }
                if ![&keys.curve25519, &keys.ed25519, &keys.signature].iter().all(|k| valid_key(k)) {
                    self.fail("E2E", "INVALID_KEY", &[&sub], "Keys and signatures are unpadded base64");
                    return;
                }
                let then = KeysThen::Publish { device: keys.device.clone() };
                self.keys_request(KeyRequest::PublishDevice { account, device: keys }, then);
            }
            "OTK" | "FALLBACK" if p.len() >= 2 => {
                let Some(device) = self.cur_client().and_then(|c| c.e2e_device().map(str::to_owned)) else {
                    self.fail("E2E", "NO_DEVICE", &[&sub], "Publish your device with E2E DEVICE first");
                    return;
                };
                let Some(keys) = p[1..].iter().map(|k| signed_key(k)).collect::<Option<Vec<_>>>() else {
                    self.fail("E2E", "INVALID_KEY", &[&sub], "Keys are <key>:<signature>, unpadded base64");
                    return;
                };
                let then = KeysThen::Counts { device: device.clone() };
                let request = match (sub.as_str(), keys.len()) {
                    ("OTK", _) => KeyRequest::AddOneTimeKeys { account, device, keys },
                    (_, 1) => KeyRequest::SetFallback { account, device, key: keys[0].clone() },
                    _ => {
                        self.fail("E2E", "INVALID_KEY", &[&sub], "A device has one fallback key");
                        return;
                    }
                };
                self.keys_request(request, then);
            }
            "DEVICES" if p.len() >= 2 => {
                let Some(target) = self.account_param(&sub, &p[1]) else { return };
                let then = KeysThen::Devices { account: target.clone() };
                self.keys_request(KeyRequest::Devices { account: target }, then);
            }
            "CLAIM" if p.len() >= 3 => {
                let Some(target) = self.account_param(&sub, &p[1]) else { return };
                let devices: Vec<String> = p[2].split(',').filter(|d| !d.is_empty()).map(str::to_owned).collect();
                if devices.is_empty() || devices.len() > MAX_CLAIM_DEVICES {
                    let text = format!("Claim keys for 1 to {MAX_CLAIM_DEVICES} devices at a time");
                    self.fail("E2E", "INVALID_PARAMS", &[&sub], &text);
                    return;
                }
                if let Some(bad) = devices.iter().find(|d| !valid_device_id(d)) {
                    let bad = bad.clone();
                    self.invalid_device(&sub, &bad);
                    return;
                }
                let then = KeysThen::Claim { account: target.clone() };
                self.keys_request(KeyRequest::Claim { account: target, devices }, then);
            }
            "REMOVE" if p.len() >= 2 => {
                if !valid_device_id(&p[1]) {
                    self.invalid_device(&sub, &p[1]);
                    return;
                }
                let then = KeysThen::Remove { device: p[1].clone() };
                self.keys_request(KeyRequest::RemoveDevice { account, device: p[1].clone() }, then);
            }
            "DEVICE" | "OTK" | "FALLBACK" | "DEVICES" | "CLAIM" | "REMOVE" => {
                self.fail("E2E", "NEED_MORE_PARAMS", &[&sub], "Not enough parameters");
            }
            _ => self.fail("E2E", "INVALID_PARAMS", &[&sub], "Unknown E2E subcommand"),
        }
    }

    fn invalid_device(&mut self, sub: &str, device: &str) {
        self.fail("E2E", "INVALID_DEVICE", &[sub, device], "Device ids are 1 to 32 of A-Z a-z 0-9 _ -");
    }

    /// An account name from a parameter, display spelling if the account is known.
    fn account_param(&mut self, sub: &str, param: &str) -> Option<String> {
        if param.is_empty() || param.len() > MAX_ACCOUNT_LEN || param.contains([',', '*', '?', '!', '@']) {
            self.fail("E2E", "INVALID_PARAMS", &[sub, param], "Not an account name");
            return None;
        }
        Some(self.accounts.get(&casefold(param)).cloned().unwrap_or_else(|| param.to_owned()))
    }

    fn keys_request(&mut self, request: KeyRequest, then: KeysThen) {
        let conn = self.cur_conn();
        let label = self.take_label();
        self.request(Request::Keys(request), Pending::Keys { conn, then, label });
    }

    fn e2e_reply<I, S>(&mut self, conn: ConnId, params: I)
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let msg = self.server_msg("E2E").with_params(params);
        self.send_msg(conn, msg);
    }

    fn send_counts(&mut self, conn: ConnId, device: &str, counts: KeyCounts) {
        let fallback = if counts.fallback { "1" } else { "0" };
        self.e2e_reply(conn, ["COUNT", device, &counts.one_time_keys.to_string(), fallback]);
    }

    /// The key directory answered.
    pub(crate) fn keys_response(&mut self, conn: ConnId, then: KeysThen, response: Response) {
        let answer = match response {
            Response::Keys(Ok(answer)) => answer,
            Response::Keys(Err(failure)) => {
                let text = match failure {
                    Failure::Unavailable(why) => why,
                    other => format!("{other:?}"),
                };
                self.fail("E2E", "TEMPORARILY_UNAVAILABLE", &["*"], &text);
                return;
            }
            other => {
                tracing::error!(response = ?other, "a response of the wrong kind for E2E; ignored");
                return;
            }
        };
        match (then, answer) {
            (KeysThen::Publish { device }, KeyAnswer::Published(outcome, counts)) => match outcome {
                Published::New | Published::Unchanged | Published::Replaced => {
                    if outcome == Published::Replaced {
                        let account = self.clients.get(&conn).and_then(|c| c.account.clone()).unwrap_or_default();
                        tracing::info!(target: "audit", %conn, %account, %device, "e2e device keys replaced");
                    }
                    let mut account = None;
                    if let Some(client) = self.clients.get_mut(&conn) {
                        client.extra_mut().e2e_device = Some(device.clone());
                        account = client.account.clone();
                    }
                    let bound = Some(device.clone());
                    self.user_changed(conn, |uid| crate::cluster::NetEvent::Device { uid, device: bound });
                    self.send_counts(conn, &device, counts);
                    // What waited for this device while it was away.
                    if let Some(account) = account {
                        self.request_offline(conn, &device_queue(&account, &device));
                    }
                }
                Published::TooManyDevices => {
                    let text =
                        format!("An account may have {} devices; remove one with E2E REMOVE", crate::keys::MAX_DEVICES);
                    self.fail("E2E", "TOO_MANY_DEVICES", &["DEVICE", &device], &text);
                }
                Published::NoAccount => {
                    self.fail("E2E", "ACCOUNT_REQUIRED", &["DEVICE"], "Your account no longer exists");
                }
            },
            (KeysThen::Counts { device }, KeyAnswer::Counts(counts)) => match counts {
                Some(counts) => self.send_counts(conn, &device, counts),
                None => self.fail("E2E", "NO_DEVICE", &["*", &device], "That device is not published any more"),
            },
            (KeysThen::Devices { account }, KeyAnswer::Devices(devices)) => {
                self.e2e_reply(conn, ["DEVICES".to_owned(), account.clone(), devices.len().to_string()]);
                for d in devices {
                    self.e2e_reply(
                        conn,
                        ["DEVICE".to_owned(), account.clone(), d.device, d.curve25519, d.ed25519, d.signature],
                    );
                }
            }
            (KeysThen::Claim { account }, KeyAnswer::Claimed(claims)) => {
                for (device, claimed) in claims {
                    match claimed {
                        Some(c) => {
                            let kind = if c.fallback { "fallback" } else { "otk" };
                            let params = ["KEY", &account, &device, kind, &c.key.key, &c.key.signature];
                            self.e2e_reply(conn, params);
                            if !c.fallback && c.remaining < REFILL_BELOW {
                                self.ask_refill(&account, &device, c.remaining);
                            }
                        }
                        None => self.e2e_reply(conn, ["KEY", &account, &device, "none"]),
                    }
                }
            }
            (KeysThen::Remove { device }, KeyAnswer::Removed(removed)) => {
                if !removed {
                    self.fail("E2E", "NO_DEVICE", &["REMOVE", &device], "You have no device by that id");
                    return;
                }
                let account = self.clients.get(&conn).and_then(|c| c.account.as_deref().map(casefold));
                if let Some(account) = account {
                    self.unbind_device(&account, &device);
                    self.share_device_removal(&account, &device);
                }
                self.e2e_reply(conn, ["REMOVED", &device]);
            }
            (then, answer) => tracing::error!(?then, ?answer, "an E2E answer of the wrong kind; ignored"),
        }
    }

    /// `account`'s (folded) `device` was removed: this node's connections bound to it are no
    /// longer (it gets no more messages), and the network hears of each.
    pub(crate) fn unbind_device(&mut self, account: &str, device: &str) {
        let mut unbound = Vec::new();
        for client in self.clients.values_mut() {
            if client.account.as_deref().map(casefold).as_deref() == Some(account)
                && client.e2e_device() == Some(device)
            {
                client.clear_extra(|e| e.e2e_device = None);
                unbound.push(client.id);
            }
        }
        for c in unbound {
            self.user_changed(c, |uid| crate::cluster::NetEvent::Device { uid, device: None });
        }
    }

    /// Connections of `account` (any case) bound to `device`.
    fn device_conns(&self, account: &str, device: &str) -> Vec<ConnId> {
        let folded = casefold(account);
        self.sessions
            .conns(&folded)
            .iter()
            .filter_map(|c| self.clients.get(c))
            .filter(|c| c.registered && c.e2e_device() == Some(device))
            .map(|c| c.id)
            .collect()
    }

    /// Asks a device to top its one-time keys up, wherever it is connected.
    fn ask_refill(&mut self, account: &str, device: &str, remaining: usize) {
        for conn in self.device_conns(account, device) {
            self.e2e_reply(conn, ["REFILL", device, &remaining.to_string()]);
        }
    }

    /// Where an encrypted private message goes besides its target nick: the device its tag
    /// names, which must belong to the recipient (`recipient` gives its account or nick,
    /// folded; asked only for a tagged message, as most are not) or to the sender's own account
    /// (its other devices get a copy of what it sent). `None` for a message without a valid
    /// tag, or naming a third account's device.
    pub(crate) fn e2e_route(&self, ev: &Outgoing, recipient: impl FnOnce() -> String) -> Option<E2eRoute> {
        let tag = ev.client_tags.iter().find(|t| t.key == E2E_TAG)?;
        let (account, device) = tag_destination(&tag.value)?;
        let folded = casefold(account);
        let sender = ev.account.as_deref().map(casefold);
        if folded != recipient() && Some(&folded) != sender.as_ref() {
            return None;
        }
        let conns = self.device_conns(&folded, device);
        let remote = self.remote_device_holders(&folded, device);
        Some(E2eRoute { queue: device_queue(&folded, device), conns, remote })
    }

    /// Delivers an encrypted message to the connections of its device that `skip` does not hold
    /// (they had it already).
    pub(crate) fn e2e_deliver(&mut self, ev: &mut Outgoing, route: &E2eRoute, skip: &[ConnId]) {
        for conn in &route.conns {
            if !skip.contains(conn) {
                self.deliver(ev, *conn);
            }
        }
    }
}

/// The device an encrypted message is for, and where it is.
#[derive(Debug)]
pub(crate) struct E2eRoute {
    /// The device's offline queue.
    pub queue: String,
    /// Its connections now.
    pub conns: Vec<ConnId>,
    /// Its connections on other nodes (cluster mode), as the replica knows them.
    pub remote: Vec<crate::cluster::UserId>,
}

impl E2eRoute {
    /// The queue to keep the message in, if the device is not connected.
    pub(crate) fn offline_queue(&self) -> Option<String> {
        (self.conns.is_empty() && self.remote.is_empty()).then(|| self.queue.clone())
    }
}

/// `<key>:<signature>`.
fn signed_key(param: &str) -> Option<SignedKey> {
    let (key, signature) = param.split_once(':')?;
    (valid_key(key) && valid_key(signature)).then(|| SignedKey { key: key.to_owned(), signature: signature.to_owned() })
}
