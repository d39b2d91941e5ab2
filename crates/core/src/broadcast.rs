//! One event delivered to many clients, serialized once per capability variant.
//!
//! Recipients differ only in which tags they asked for (server-time, message-tags,
//! account-tag), so there are at most eight distinct byte strings per event. Each is built on
//! first use and then shared (a `Bytes` clone is a reference count bump) by every recipient
//! with the same capabilities.

use bytes::Bytes;
use chinwag_proto::{Message, Tag};

use crate::caps::{Cap, CapSet};
use chinwag_proto::rfc3339_ms;

#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Source, command and parameters; no tags.
    pub base: Message,
    pub time_ms: u64,
    pub msgid: Option<String>,
    /// The source's account, for account-tag.
    pub account: Option<String>,
    /// Client-only tags (`+typing`...), relayed only to message-tags clients.
    pub client_tags: Vec<Tag>,
    /// Sent only to clients with message-tags (TAGMSG).
    pub needs_message_tags: bool,
    cache: [Option<Bytes>; VARIANTS],
}

/// How many ways an event can look on the wire: three capabilities, on or off.
pub(crate) const VARIANTS: usize = 8;

/// Which of the [`VARIANTS`] a client with `caps` gets.
pub(crate) fn variant(caps: CapSet) -> usize {
    usize::from(caps.has(Cap::MessageTags))
        | usize::from(caps.has(Cap::ServerTime)) << 1
        | usize::from(caps.has(Cap::AccountTag)) << 2
}

impl Outgoing {
    pub fn new(base: Message, time_ms: u64, msgid: Option<String>, account: Option<String>) -> Self {
        Outgoing {
            base,
            time_ms,
            msgid,
            account,
            client_tags: Vec::new(),
            needs_message_tags: false,
            cache: Default::default(),
        }
    }

    pub fn wanted_by(&self, caps: CapSet) -> bool {
        !self.needs_message_tags || caps.has(Cap::MessageTags)
    }

    /// The message as a client with `caps` should see it.
    pub fn message_for(&self, caps: CapSet) -> Message {
        let mut msg = self.base.clone();
        if caps.has(Cap::MessageTags) {
            if let Some(id) = &self.msgid {
                msg.tags.push(Tag { key: "msgid".into(), value: id.clone() });
            }
            msg.tags.extend(self.client_tags.iter().cloned());
        }
        if caps.has(Cap::ServerTime) {
            msg.tags.push(Tag { key: "time".into(), value: rfc3339_ms(self.time_ms) });
        }
        if caps.has(Cap::AccountTag) {
            if let Some(account) = &self.account {
                msg.tags.push(Tag { key: "account".into(), value: account.clone() });
            }
        }
        msg
    }

    /// The wire bytes for a client with `caps`, built once per variant.
    pub fn bytes_for(&mut self, caps: CapSet) -> Bytes {
        let key = variant(caps);
        if let Some(bytes) = &self.cache[key] {
            return bytes.clone();
        }
        // The same bytes as `message_for(caps).write_to(..)`, without copying the message.
        let tagged = caps.has(Cap::MessageTags);
        let msgid = self.msgid.as_deref().filter(|_| tagged).map(|id| ("msgid", id));
        let client_tags = self.client_tags.iter().filter(|_| tagged).map(|t| (t.key.as_str(), t.value.as_str()));
        let time = caps.has(Cap::ServerTime).then(|| rfc3339_ms(self.time_ms));
        let account = self.account.as_deref().filter(|_| caps.has(Cap::AccountTag)).map(|a| ("account", a));
        let extra = msgid.into_iter().chain(client_tags).chain(time.as_deref().map(|t| ("time", t))).chain(account);
        let mut buf = Vec::with_capacity(128);
        self.base.write_with_tags(extra, &mut buf);
        // Exactly as long as its contents, the buffer becomes the `Bytes` without another
        // allocation for its reference count until it is shared.
        let bytes = Bytes::from(buf.into_boxed_slice());
        self.cache[key] = Some(bytes.clone());
        bytes
    }
}
