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

    /// The tags a client with `caps` gets on top of the message's own, in wire order: msgid
    /// and client tags with message-tags, `time` (given, as `time`) with server-time, account
    /// with account-tag. The one place that decides; both forms below use it.
    fn extra_tags<'a>(
        &'a self,
        caps: CapSet,
        time: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a str, &'a str)> + Clone {
        let tagged = caps.has(Cap::MessageTags);
        let msgid = self.msgid.as_deref().filter(|_| tagged).map(|id| ("msgid", id));
        let client_tags = self.client_tags.iter().filter(move |_| tagged).map(|t| (t.key.as_str(), t.value.as_str()));
        let account = self.account.as_deref().filter(|_| caps.has(Cap::AccountTag)).map(|a| ("account", a));
        msgid.into_iter().chain(client_tags).chain(time.map(|t| ("time", t))).chain(account)
    }

    /// The `time` tag's value, if `caps` asks for it.
    fn time_for(&self, caps: CapSet) -> Option<String> {
        caps.has(Cap::ServerTime).then(|| rfc3339_ms(self.time_ms))
    }

    /// The message as a client with `caps` should see it.
    pub fn message_for(&self, caps: CapSet) -> Message {
        let mut msg = self.base.clone();
        let time = self.time_for(caps);
        let extra = self.extra_tags(caps, time.as_deref());
        msg.tags.extend(extra.map(|(key, value)| Tag { key: key.into(), value: value.into() }));
        msg
    }

    /// The wire bytes for a client with `caps`, built once per variant.
    pub fn bytes_for(&mut self, caps: CapSet) -> Bytes {
        let key = variant(caps);
        if let Some(bytes) = &self.cache[key] {
            return bytes.clone();
        }
        // The bytes of `message_for(caps)`, without copying the message.
        let time = self.time_for(caps);
        let mut buf = Vec::new();
        self.base.write_with_tags(self.extra_tags(caps, time.as_deref()), &mut buf);
        // Sized exactly (unless something was escaped or removed), so this does not copy; the
        // buffer becomes the `Bytes` without another allocation for its reference count until
        // it is shared.
        let bytes = Bytes::from(buf.into_boxed_slice());
        self.cache[key] = Some(bytes.clone());
        bytes
    }
}
