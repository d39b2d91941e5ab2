//! One event delivered to many clients, serialized once per capability variant.
//!
//! Recipients differ only in which tags they asked for (server-time, message-tags,
//! account-tag), so there are at most eight distinct byte strings per event. Each is built on
//! first use and then shared (a `Bytes` clone is a reference count bump) by every recipient
//! with the same capabilities.

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use chinwag_proto::{Message, Tag};

use crate::caps::{Cap, CapSet};
use chinwag_proto::rfc3339_ms;

#[derive(Debug)]
pub(crate) struct Outgoing {
    /// Command and parameters; no tags, no source.
    pub base: Message,
    /// Who it is from: shared with the sending client, which keeps its prefix made.
    pub source: Option<Arc<str>>,
    pub time_ms: u64,
    pub msgid: Option<String>,
    /// The source's account, for account-tag.
    pub account: Option<String>,
    /// Client-only tags (`+typing`...), relayed only to message-tags clients.
    pub client_tags: Vec<Tag>,
    /// The source is a bot (user mode +B): message-tags clients get the `bot` tag.
    pub bot: bool,
    /// Sent only to clients with message-tags (TAGMSG).
    pub needs_message_tags: bool,
    /// Sent only to clients with this capability (REDACT: `draft/message-redaction`).
    pub needs_cap: Option<Cap>,
    /// A draft/multiline message: its lines, which go out as one batch or one line each
    /// (`base`'s text is then the whole message, as history keeps it). Boxed: nearly every
    /// event has none.
    pub multiline: Option<Box<Lines>>,
    cache: Cache,
}

/// The lines of a draft/multiline message as they go out, and what was built of them.
#[derive(Debug)]
pub(crate) struct Lines {
    /// Each line's text and whether it continues the previous one (`draft/multiline-concat`),
    /// each short enough to be relayed with the sender's prefix.
    pub parts: Vec<(String, bool)>,
    /// The batch's reference, the same for every recipient (it is unique on each connection).
    pub batch: String,
    /// The wire lines per [`GROUPS`] key, built on first use.
    built: Vec<Option<Vec<Bytes>>>,
}

impl Lines {
    pub fn new(parts: Vec<(String, bool)>, batch: String) -> Self {
        Lines { parts, batch, built: Vec::new() }
    }
}

/// The batch type, capability and tag of draft/multiline.
pub(crate) const MULTILINE: &str = "draft/multiline";
pub(crate) const CONCAT_TAG: &str = "draft/multiline-concat";

/// The wire bytes built so far, per variant. Nearly every event is sent in one variant (a
/// private message; a room whose members asked for the same capabilities), so the first is
/// kept in place and the others in a box made for the second. Eight in place made the event
/// 450 bytes, copied whole each time it was moved on the way to delivery.
#[derive(Debug, Default)]
struct Cache {
    first: Option<(usize, Bytes)>,
    others: Option<Box<[Option<Bytes>; VARIANTS]>>,
}

impl Cache {
    fn get(&self, key: usize) -> Option<&Bytes> {
        match &self.first {
            Some((k, bytes)) if *k == key => Some(bytes),
            _ => self.others.as_ref()?[key].as_ref(),
        }
    }

    fn take(&mut self, key: usize) -> Option<Bytes> {
        match &mut self.first {
            Some((k, _)) if *k == key => self.first.take().map(|(_, bytes)| bytes),
            _ => self.others.as_mut()?[key].take(),
        }
    }

    fn put(&mut self, key: usize, bytes: Bytes) {
        if self.first.is_none() {
            self.first = Some((key, bytes));
        } else {
            self.others.get_or_insert_with(Default::default)[key] = Some(bytes);
        }
    }
}

/// How many ways an event can look on the wire: three capabilities, on or off.
pub(crate) const VARIANTS: usize = 8;

/// How many ways a delivery can be grouped: the [`VARIANTS`], and for a multiline message each
/// of them as one batch or as separate lines.
pub(crate) const GROUPS: usize = 2 * VARIANTS;

/// Which of the [`VARIANTS`] a client with `caps` gets.
pub(crate) fn variant(caps: CapSet) -> usize {
    usize::from(caps.has(Cap::MessageTags))
        | usize::from(caps.has(Cap::ServerTime)) << 1
        | usize::from(caps.has(Cap::AccountTag)) << 2
}

impl Outgoing {
    /// The event `base` (its source included).
    pub fn new(mut base: Message, time_ms: u64, msgid: Option<String>, account: Option<String>) -> Self {
        let source = base.source.take().map(Arc::from);
        Outgoing::from_source(source, base, time_ms, msgid, account)
    }

    /// The event `base` (without a source) from `source`.
    pub fn from_source(
        source: Option<Arc<str>>,
        base: Message,
        time_ms: u64,
        msgid: Option<String>,
        account: Option<String>,
    ) -> Self {
        Outgoing {
            base,
            source,
            time_ms,
            msgid,
            account,
            client_tags: Vec::new(),
            bot: false,
            needs_message_tags: false,
            needs_cap: None,
            multiline: None,
            cache: Default::default(),
        }
    }

    pub fn wanted_by(&self, caps: CapSet) -> bool {
        (!self.needs_message_tags || caps.has(Cap::MessageTags)) && self.needs_cap.is_none_or(|cap| caps.has(cap))
    }

    /// The tags a client with `caps` gets on top of the message's own, in wire order: msgid,
    /// `bot` and client tags with message-tags, `time` (given, as `time`) with server-time, account
    /// with account-tag. The one place that decides; both forms below use it.
    fn extra_tags<'a>(&'a self, caps: CapSet, time: Option<&'a str>) -> impl Iterator<Item = (&'a str, &'a str)> {
        let tagged = caps.has(Cap::MessageTags);
        let msgid = self.msgid.as_deref().filter(|_| tagged).map(|id| ("msgid", id));
        let client_tags = self.client_tags.iter().filter(move |_| tagged).map(|t| (t.key.as_str(), t.value.as_str()));
        let bot = (tagged && self.bot).then_some(("bot", ""));
        let account = self.account.as_deref().filter(|_| caps.has(Cap::AccountTag)).map(|a| ("account", a));
        msgid.into_iter().chain(bot).chain(client_tags).chain(time.map(|t| ("time", t))).chain(account)
    }

    /// The `time` tag's value, if `caps` asks for it.
    fn time_for(&self, caps: CapSet) -> Option<String> {
        caps.has(Cap::ServerTime).then(|| rfc3339_ms(self.time_ms))
    }

    /// Which of the [`GROUPS`] a client with `caps` is in for this event: a multiline message
    /// looks different to clients that take its batch.
    pub fn group(&self, caps: CapSet) -> usize {
        let batched = self.multiline.is_some() && caps.multiline();
        variant(caps) | (usize::from(batched) * VARIANTS)
    }

    /// The lines a client with `caps` gets: the message, or for a multiline message its batch
    /// (`BATCH +ref draft/multiline <target>` carrying the tags, then each line, then
    /// `BATCH -ref`) or, without draft/multiline, each line that is not blank as a message of
    /// its own (the msgid only on the first, as the specification says; time, account and
    /// client tags on each).
    pub fn messages_for(&self, caps: CapSet) -> Vec<Message> {
        let Some(lines) = &self.multiline else { return vec![self.message_for(caps)] };
        let time = self.time_for(caps);
        let source = self.source.as_deref().map(str::to_owned);
        let target = self.base.params.first().cloned().unwrap_or_default();
        let line = |text: &str| Message {
            source: source.clone(),
            command: self.base.command.clone(),
            params: vec![target.clone(), text.to_owned()],
            ..Message::default()
        };
        let extra = |with_msgid: bool| -> Vec<Tag> {
            self.extra_tags(caps, time.as_deref())
                .filter(|(key, _)| with_msgid || *key != "msgid")
                .map(|(key, value)| Tag { key: key.into(), value: value.into() })
                .collect()
        };
        if !caps.multiline() {
            let mut out: Vec<Message> = Vec::with_capacity(lines.parts.len());
            for (text, _) in lines.parts.iter().filter(|(text, _)| !text.is_empty()) {
                let mut msg = line(text);
                msg.tags = extra(out.is_empty());
                out.push(msg);
            }
            return out;
        }
        let mut out = Vec::with_capacity(lines.parts.len() + 2);
        let mut start =
            Message::new("BATCH").with_params([format!("+{}", lines.batch), MULTILINE.into(), target.clone()]);
        start.source = source.clone();
        start.tags = extra(true);
        out.push(start);
        for (text, concat) in &lines.parts {
            let mut msg = line(text).with_tag("batch", lines.batch.clone());
            if *concat {
                msg = msg.with_tag(CONCAT_TAG, "");
            }
            out.push(msg);
        }
        out.push(Message::new("BATCH").with_param(format!("-{}", lines.batch)));
        out
    }

    /// [`Outgoing::messages_for`] as wire lines, built once per group (in `arena`).
    pub fn lines_for(&mut self, caps: CapSet, arena: &mut LineArena) -> Vec<Bytes> {
        if self.multiline.is_none() {
            return vec![self.bytes_for(caps, arena)];
        }
        let key = self.group(caps);
        if let Some(built) = self.multiline.as_ref().and_then(|l| l.built.get(key)).and_then(Option::as_ref) {
            return built.clone();
        }
        let built: Vec<Bytes> = self.messages_for(caps).iter().map(|m| arena.line(|buf| m.write_to(buf))).collect();
        if let Some(lines) = self.multiline.as_mut() {
            lines.built.resize(GROUPS, None);
            lines.built[key] = Some(built.clone());
        }
        built
    }

    /// The message as a client with `caps` should see it.
    pub fn message_for(&self, caps: CapSet) -> Message {
        let mut msg = self.base.clone();
        msg.source = self.source.as_deref().map(str::to_owned);
        let time = self.time_for(caps);
        let extra = self.extra_tags(caps, time.as_deref());
        msg.tags.extend(extra.map(|(key, value)| Tag { key: key.into(), value: value.into() }));
        msg
    }

    /// The wire bytes for a client with `caps`, built once per variant (in `arena`).
    pub fn bytes_for(&mut self, caps: CapSet, arena: &mut LineArena) -> Bytes {
        let key = variant(caps);
        if let Some(bytes) = self.cache.get(key) {
            return bytes.clone();
        }
        let bytes = self.build(caps, arena);
        self.cache.put(key, bytes.clone());
        bytes
    }

    /// [`Outgoing::bytes_for`] for the event's last delivery in `caps`' variant: the bytes are
    /// handed over rather than shared with the cache (each share is an atomic count, twice).
    pub fn last_bytes_for(&mut self, caps: CapSet, arena: &mut LineArena) -> Bytes {
        match self.cache.take(variant(caps)) {
            Some(bytes) => bytes,
            None => self.build(caps, arena),
        }
    }

    /// The bytes of `message_for(caps)`, without copying the message.
    fn build(&self, caps: CapSet, arena: &mut LineArena) -> Bytes {
        let time = self.time_for(caps);
        arena.line(|buf| self.base.write_with_tags(self.source.as_deref(), self.extra_tags(caps, time.as_deref()), buf))
    }
}

/// Where the server writes the lines it hands to the edge: one buffer, from which each line
/// is split off as [`Bytes`] that share it. A line then costs no allocation of its own (a
/// private message used to cost two: its buffer, and a reference count once it was shared).
///
/// The edge copies every line into a connection's queue as soon as it gets it, or after the
/// commit a room message waits for, so a chunk is freed within a round or a commit.
#[derive(Debug, Default)]
pub(crate) struct LineArena {
    /// The unused end of the current chunk.
    free: BytesMut,
    /// A line is written here first, then copied into the chunk: the writer needs a `Vec`.
    scratch: Vec<u8>,
}

impl LineArena {
    /// Bytes allocated at a time: about 500 private messages.
    const CHUNK: usize = 64 * 1024;

    /// The line that `write` appends to the (empty) buffer it is given.
    pub fn line(&mut self, write: impl FnOnce(&mut Vec<u8>)) -> Bytes {
        self.scratch.clear();
        write(&mut self.scratch);
        if self.free.capacity() < self.scratch.len() {
            // The old chunk lives on in the lines split from it, until the last is dropped.
            self.free = BytesMut::with_capacity(Self::CHUNK.max(self.scratch.len()));
        }
        self.free.extend_from_slice(&self.scratch);
        self.free.split().freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lines split from the arena keep their own bytes while later ones are written, across
    /// chunk boundaries and for a line longer than a chunk.
    #[test]
    fn arena_lines_stay_intact_across_chunks() {
        let mut arena = LineArena::default();
        let expected: Vec<Vec<u8>> = (0..3000)
            .map(|i: usize| {
                let len = if i == 1234 { LineArena::CHUNK + 10 } else { 1 + i % 200 };
                (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
            })
            .collect();
        let lines: Vec<Bytes> = expected.iter().map(|e| arena.line(|buf| buf.extend_from_slice(e))).collect();
        for (line, e) in lines.iter().zip(&expected) {
            assert_eq!(&line[..], &e[..]);
        }
    }

    /// Every variant gets its own bytes, equal to the message it stands for, and asking again
    /// gives the same bytes rather than building them anew, in whatever order variants come.
    #[test]
    fn each_variant_is_built_once_and_matches_its_message() {
        let base = Message::new("PRIVMSG").with_source("a!~a@h").with_params(["b", "hi there"]);
        let mut ev = Outgoing::new(base, 1_700_000_000_000, Some("01ABC".into()), Some("acct".into()));
        let mut arena = LineArena::default();
        let sets: Vec<CapSet> = [3usize, 0, 7, 5, 1]
            .iter()
            .map(|&bits| {
                let mut caps = CapSet::default();
                for (bit, cap) in [Cap::MessageTags, Cap::ServerTime, Cap::AccountTag].into_iter().enumerate() {
                    if bits & (1 << bit) != 0 {
                        caps.insert(cap);
                    }
                }
                caps
            })
            .collect();
        let first: Vec<Bytes> = sets.iter().map(|&caps| ev.bytes_for(caps, &mut arena)).collect();
        for (&caps, bytes) in sets.iter().zip(&first) {
            let mut expected = Vec::new();
            ev.message_for(caps).write_to(&mut expected);
            assert_eq!(&bytes[..], &expected[..]);
            let again = ev.bytes_for(caps, &mut arena);
            assert_eq!(again.as_ptr(), bytes.as_ptr(), "built again for {caps:?}");
        }
    }

    /// The last delivery takes the cached bytes (the same ones, not a copy) or builds them
    /// without keeping them; either way they are the bytes of the message.
    #[test]
    fn the_last_delivery_takes_the_bytes() {
        let base = Message::new("PRIVMSG").with_source("a!~a@h").with_params(["b", "hi"]);
        let mut ev = Outgoing::new(base, 1_700_000_000_000, Some("01ABC".into()), None);
        let mut arena = LineArena::default();
        let mut tagged = CapSet::default();
        tagged.insert(Cap::MessageTags);
        let plain = CapSet::default();
        let shared = ev.bytes_for(plain, &mut arena);
        let taken = ev.last_bytes_for(plain, &mut arena);
        assert_eq!(taken.as_ptr(), shared.as_ptr(), "the cached bytes are handed over");
        let again = ev.bytes_for(plain, &mut arena);
        assert_ne!(again.as_ptr(), shared.as_ptr(), "and are no longer cached");
        assert_eq!(again, shared);
        let built = ev.last_bytes_for(tagged, &mut arena);
        let mut expected = Vec::new();
        ev.message_for(tagged).write_to(&mut expected);
        assert_eq!(&built[..], &expected[..]);
        assert_ne!(ev.bytes_for(tagged, &mut arena).as_ptr(), built.as_ptr(), "built without being kept");
    }
}
