//! The transport format of encrypted messages: the `+chinwag.dev/e2e` tag value, splitting a
//! ciphertext into tagged lines that fit IRC's limits, and putting them back together.
//!
//! A tag value is `1,<to account>,<to device>,<from device>,<id>,<part>,<parts>,<olm type>,<chunk>`
//! (docs/e2e.md). Commas never occur in account names, device ids, ids or base64, so the fields
//! split unambiguously; nothing in the value needs IRC tag escaping.

use std::collections::{HashMap, VecDeque};

/// The client tag carrying the ciphertext.
pub const TAG: &str = "+chinwag.dev/e2e";
/// What the PRIVMSG text says, for people whose client cannot decrypt.
pub const EXPLANATION: &str = "[encrypted message — open it with chinwag chat]";
/// Base64 characters of ciphertext per line: with the other fields, the tag stays well under the
/// 4094 bytes IRCv3 allows for client tags.
pub const MAX_CHUNK: usize = 3000;
/// Parts one message may have (about 36 KB of ciphertext); more is refused on both sides.
pub const MAX_PARTS: usize = 16;
/// Incomplete messages kept while their other parts arrive; the oldest is dropped beyond this.
const MAX_INCOMPLETE: usize = 64;

/// One tagged line's worth of an encrypted message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Envelope {
    /// The recipient account, folded.
    pub to_account: String,
    pub to_device: String,
    pub from_device: String,
    /// Chosen by the sender, shared by the parts of one message, and repeated inside the
    /// ciphertext so that it cannot be changed unnoticed.
    pub id: String,
    /// 1-based.
    pub part: usize,
    pub parts: usize,
    /// Olm's message type: 0 pre-key, 1 normal.
    pub kind: usize,
    pub chunk: String,
}

fn token_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && !s.contains([',', ' ', ';', '\\', '\r', '\n', '\0'])
}

impl Envelope {
    pub fn encode(&self) -> String {
        format!(
            "1,{},{},{},{},{},{},{},{}",
            self.to_account, self.to_device, self.from_device, self.id, self.part, self.parts, self.kind, self.chunk
        )
    }

    /// Parses a tag value; `None` if it is not a well-formed version 1 envelope.
    pub fn parse(value: &str) -> Option<Envelope> {
        let f: Vec<&str> = value.splitn(9, ',').collect();
        if f.len() != 9 || f[0] != "1" || !f[1..5].iter().all(|s| token_ok(s)) {
            return None;
        }
        let part: usize = f[5].parse().ok()?;
        let parts: usize = f[6].parse().ok()?;
        let kind: usize = f[7].parse().ok()?;
        let chunk = f[8];
        let base64 = chunk.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
        if part == 0
            || part > parts
            || parts > MAX_PARTS
            || kind > 1
            || chunk.is_empty()
            || chunk.len() > MAX_CHUNK
            || !base64
        {
            return None;
        }
        Some(Envelope {
            to_account: f[1].to_owned(),
            to_device: f[2].to_owned(),
            from_device: f[3].to_owned(),
            id: f[4].to_owned(),
            part,
            parts,
            kind,
            chunk: chunk.to_owned(),
        })
    }
}

/// Cuts base64 `data` into envelopes of at most [`MAX_CHUNK`] characters. `None` if it needs
/// more than [`MAX_PARTS`].
pub fn split(to: (&str, &str), from_device: &str, id: &str, kind: usize, data: &str) -> Option<Vec<Envelope>> {
    let chunks: Vec<&str> = data.as_bytes().chunks(MAX_CHUNK).map(|c| std::str::from_utf8(c).unwrap_or("")).collect();
    if chunks.is_empty() || chunks.len() > MAX_PARTS {
        return None;
    }
    let parts = chunks.len();
    Some(
        chunks
            .into_iter()
            .enumerate()
            .map(|(i, chunk)| Envelope {
                to_account: to.0.to_owned(),
                to_device: to.1.to_owned(),
                from_device: from_device.to_owned(),
                id: id.to_owned(),
                part: i + 1,
                parts,
                kind,
                chunk: chunk.to_owned(),
            })
            .collect(),
    )
}

/// Why parts could not be put together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reassembly {
    /// Waiting for more parts.
    Incomplete,
    /// All parts are here: the Olm message type and the whole base64 ciphertext.
    Complete { kind: usize, data: String },
    /// A part contradicts the others (a different count or type, or a different chunk for a
    /// part already received): someone altered the message.
    Inconsistent,
}

#[derive(Debug)]
struct Partial {
    kind: usize,
    chunks: Vec<Option<String>>,
}

/// Incomplete messages by (sender account, sender device, id), bounded.
#[derive(Debug, Default)]
pub struct Reassembler {
    partial: HashMap<(String, String, String), Partial>,
    order: VecDeque<(String, String, String)>,
}

impl Reassembler {
    pub fn push(&mut self, sender: &str, env: &Envelope) -> Reassembly {
        if env.parts == 1 {
            return Reassembly::Complete { kind: env.kind, data: env.chunk.clone() };
        }
        let key = (sender.to_owned(), env.from_device.clone(), env.id.clone());
        if !self.partial.contains_key(&key) {
            if self.order.len() >= MAX_INCOMPLETE {
                if let Some(oldest) = self.order.pop_front() {
                    self.partial.remove(&oldest);
                }
            }
            self.order.push_back(key.clone());
            self.partial.insert(key.clone(), Partial { kind: env.kind, chunks: vec![None; env.parts] });
        }
        let Some(partial) = self.partial.get_mut(&key) else { return Reassembly::Incomplete };
        let slot = env.part - 1;
        let consistent = partial.kind == env.kind
            && partial.chunks.len() == env.parts
            && partial.chunks[slot].as_ref().is_none_or(|c| *c == env.chunk);
        if !consistent {
            self.forget(&key);
            return Reassembly::Inconsistent;
        }
        partial.chunks[slot] = Some(env.chunk.clone());
        if partial.chunks.iter().any(Option::is_none) {
            return Reassembly::Incomplete;
        }
        let kind = partial.kind;
        let data: String = partial.chunks.iter().flatten().map(String::as_str).collect();
        self.forget(&key);
        Reassembly::Complete { kind, data }
    }

    fn forget(&mut self, key: &(String, String, String)) {
        self.partial.remove(key);
        self.order.retain(|k| k != key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_round_trip_and_malformed_ones_are_refused() {
        let env = Envelope {
            to_account: "bob".into(),
            to_device: "laptop".into(),
            from_device: "alice1".into(),
            id: "00ff".into(),
            part: 1,
            parts: 2,
            kind: 0,
            chunk: "AAAA+/99".into(),
        };
        assert_eq!(Envelope::parse(&env.encode()), Some(env.clone()));
        for bad in [
            "2,bob,laptop,alice1,00ff,1,2,0,AAAA",
            "1,bob,laptop,alice1,00ff,3,2,0,AAAA",
            "1,bob,laptop,alice1,00ff,0,2,0,AAAA",
            "1,bob,laptop,alice1,00ff,1,2,7,AAAA",
            "1,bob,laptop,alice1,00ff,1,99,0,AAAA",
            "1,bob,laptop,alice1,00ff,1,2,0,AA=A",
            "1,bob,laptop,alice1,00ff,1,2,0,",
            "1,,laptop,alice1,00ff,1,2,0,AAAA",
            "1,bob,laptop",
        ] {
            assert_eq!(Envelope::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn long_ciphertext_is_split_and_put_back_together_in_any_order() {
        let data: String = "ABCD".repeat(2000);
        let parts = split(("bob", "laptop"), "alice1", "id1", 1, &data).expect("fits");
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.chunk.len() <= MAX_CHUNK && p.encode().len() < 4000));
        let mut r = Reassembler::default();
        assert_eq!(r.push("alice", &parts[2]), Reassembly::Incomplete);
        assert_eq!(r.push("alice", &parts[0]), Reassembly::Incomplete);
        assert_eq!(r.push("alice", &parts[1]), Reassembly::Complete { kind: 1, data: data.clone() });
        assert!(split(("bob", "laptop"), "alice1", "id1", 1, &"A".repeat(MAX_CHUNK * MAX_PARTS + 1)).is_none());

        // A part that contradicts an earlier one drops the message.
        let mut altered = parts[1].clone();
        altered.chunk = "ZZZZ".into();
        assert_eq!(r.push("alice", &parts[1]), Reassembly::Incomplete);
        assert_eq!(r.push("alice", &altered), Reassembly::Inconsistent);
    }
}
