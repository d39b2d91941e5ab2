//! Room names that would pass for another room: refused when a room is created.
//!
//! Room names may hold any UTF-8 after the `#` (nicks are ASCII only, see
//! `chinwag_proto::Nick`), so they can be dressed up as someone else's room. Three rules, on
//! names already in NFC (`ChannelName` keeps them so):
//!
//! - no characters that show nothing or move text (zero-width spaces, direction overrides,
//!   soft hyphens, non-ASCII spaces): `#general\u{200b}`;
//! - no mixed scripts (Unicode TR39's resolved script set is empty): `#gеneral` with a
//!   Cyrillic `е`. A name wholly in one script (`#общий`, `#café`, `#日本語`) is fine;
//! - no name whose [`skeleton`] is that of another room: `#ɡeneral` (U+0261), `#genera1`,
//!   `#général` beside `#general`. The skeleton is TR39's confusable skeleton of the folded
//!   name, ASCII-lowercased, with combining marks dropped (a room that differs from another
//!   only by accents is refused too; where accents are letters of their own, as in some
//!   scripts, two such rooms cannot both exist, which is the price of the rule).
//!
//! The server keeps a skeleton → room map (`Server::room_skeletons`), so a JOIN computes one
//! skeleton, never one per room.

use unicode_normalization::char::canonical_combining_class;

use crate::server::Server;
use unicode_security::confusable_detection::skeleton as tr39_skeleton;
use unicode_security::MixedScript;

/// Why `name` is refused as a new room's name regardless of other rooms, if it is.
pub(crate) fn suspicious_room_name(name: &str) -> Option<&'static str> {
    if name.chars().any(is_invisible) {
        return Some("it contains invisible or formatting characters");
    }
    if !name.is_single_script() {
        return Some("it mixes letters of different scripts that may look alike");
    }
    None
}

/// What a room name looks like, for finding lookalikes: TR39's skeleton of `folded`, with
/// combining marks dropped and ASCII lower-cased (a skeleton may map a letter to a capital).
pub(crate) fn skeleton(folded: &str) -> String {
    tr39_skeleton(folded).filter(|&c| canonical_combining_class(c) == 0).map(|c| c.to_ascii_lowercase()).collect()
}

impl Server {
    /// Why a new room `name` (given and folded) is refused, if it is: it is suspicious in
    /// itself, or it would pass for an existing room. On `Ok`, its skeleton, to
    /// [`Server::remember_room`] once the room exists.
    pub(crate) fn new_room_allowed(&self, name: &str, folded: &str) -> Result<String, String> {
        if let Some(why) = suspicious_room_name(name) {
            return Err(why.to_owned());
        }
        let skeleton = skeleton(folded);
        match self.room_skeletons.get(&skeleton).filter(|other| *other != folded) {
            Some(other) => {
                let shown = self.channels.get(other).map_or(other.as_str(), |ch| ch.name.as_str());
                Err(format!("it looks too much like the room {shown}"))
            }
            None => Ok(skeleton),
        }
    }

    /// Records a room that now exists under its skeleton (the first room keeps a skeleton).
    pub(crate) fn remember_room(&mut self, skeleton: String, folded: &str) {
        self.room_skeletons.entry(skeleton).or_insert_with(|| folded.to_owned());
    }

    /// Forgets the skeleton of a room that is gone (and, in cluster mode, how many messages
    /// this node published to it: nobody anywhere is in it, so nobody expects the count to go
    /// on, and a long-lived node would otherwise keep one entry for every room it ever spoke in).
    pub(crate) fn forget_room(&mut self, folded: &str) {
        let skeleton = skeleton(folded);
        if self.room_skeletons.get(&skeleton).is_some_and(|room| room == folded) {
            self.room_skeletons.remove(&skeleton);
        }
        if let Some(cluster) = self.cluster.as_mut() {
            cluster.room_sent.remove(folded);
            // Nobody is in the room on any node: its log key's sequence is forgotten too (a
            // later append under it learns the sequence from its conflict, `room_appended`).
            cluster.key_seqs.remove(&crate::cluster::LogKey::Room(folded.to_owned()).name());
        }
    }
}

/// Characters that render as nothing, as a plain space, or that reorder the text around them.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00A0}' | '\u{00AD}' | '\u{034F}' | '\u{061C}' | '\u{115F}' | '\u{1160}' | '\u{1680}'
        | '\u{17B4}' | '\u{17B5}' | '\u{180B}'..='\u{180F}' | '\u{2000}'..='\u{200F}'
        | '\u{2028}'..='\u{202F}' | '\u{205F}'..='\u{206F}' | '\u{3000}' | '\u{3164}'
        | '\u{FE00}'..='\u{FE0F}' | '\u{FEFF}' | '\u{FFA0}' | '\u{FFF0}'..='\u{FFFB}'
        | '\u{E0000}'..='\u{E0FFF}')
        || c.is_control()
}

#[cfg(test)]
mod tests {
    use super::{skeleton, suspicious_room_name};

    #[test]
    fn lookalikes_are_refused_and_honest_names_pass() {
        for bad in ["#general\u{200b}", "#gen\u{202e}lareneg", "#g\u{0435}neral", "#general\u{00a0}", "#\u{feff}x"] {
            assert!(suspicious_room_name(bad).is_some(), "{bad:?}");
        }
        for good in ["#general", "#café", "#общий", "#ελληνικά", "#日本語", "#rust-2024", "#a_b"] {
            assert_eq!(suspicious_room_name(good), None, "{good:?}");
        }
    }

    #[test]
    fn lookalikes_share_a_skeleton() {
        let general = skeleton("#general");
        for alike in
            ["#\u{261}eneral", "#g\u{e9}neral", "#ge\u{301}neral", "#genera1", "#gener\u{251}l", "#general\u{200b}"]
        {
            assert_eq!(skeleton(alike), general, "{alike:?}");
        }
        for other in ["#generals", "#genial", "#tech"] {
            assert_ne!(skeleton(other), general, "{other:?}");
        }
    }
}
