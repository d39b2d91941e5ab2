//! LIST, with the ELIST filters (ISUPPORT `ELIST=CMNTU`).
//!
//! `LIST <term>[,<term>…]` keeps the rooms that pass every condition and match at least one
//! mask, if any mask was given: `#mask` (wildcards allowed; M), `!#mask` (N: not matching),
//! `<n`/`>n` (U: fewer or more than n users), `C<n`/`C>n` (created less or more than n
//! minutes ago), `T<n`/`T>n` (topic set less or more than n minutes ago; a room without a
//! topic passes neither). A term that is none of these is ignored.

use chinwag_proto::{casefold, mask_match, Message};

use crate::channel::Channel;
use crate::numeric::*;
use crate::server::Server;

/// The filters ISUPPORT announces.
pub(crate) const ELIST: &str = "CMNTU";

/// Terms of one LIST looked at; later ones are ignored, which bounds the work of one LIST to
/// this many mask matches per room.
const MAX_LIST_TERMS: usize = 16;

/// One ELIST term.
#[derive(Debug, PartialEq, Eq)]
enum Term {
    /// M: the room's name matches (folded).
    Mask(String),
    /// N: the room's name does not match (folded).
    NotMask(String),
    /// U: more (`true`) or fewer (`false`) users than this.
    Users(bool, usize),
    /// C: created more (`true`) or less (`false`) than this many minutes ago.
    Created(bool, u64),
    /// T: topic set more (`true`) or less (`false`) than this many minutes ago.
    Topic(bool, u64),
}

impl Term {
    fn parse(term: &str) -> Option<Term> {
        let comparison = |rest: &str| -> Option<(bool, u64)> {
            let more = match rest.chars().next()? {
                '>' => true,
                '<' => false,
                _ => return None,
            };
            Some((more, rest[1..].parse().ok()?))
        };
        if let Some(mask) = term.strip_prefix('!') {
            return (!mask.is_empty()).then(|| Term::NotMask(casefold(mask)));
        }
        if let Some(rest) = term.strip_prefix('C') {
            return comparison(rest).map(|(more, n)| Term::Created(more, n));
        }
        if let Some(rest) = term.strip_prefix('T') {
            return comparison(rest).map(|(more, n)| Term::Topic(more, n));
        }
        if term.starts_with(['<', '>']) {
            let (more, n) = comparison(term)?;
            return Some(Term::Users(more, usize::try_from(n).ok()?));
        }
        (!term.is_empty()).then(|| Term::Mask(casefold(term)))
    }

    /// Whether `ch` passes this condition (masks are checked apart, see [`passes`]).
    fn holds(&self, ch: &Channel, folded: &str, now_ms: u64) -> bool {
        let minutes_ago = |at_ms: u64| now_ms.saturating_sub(at_ms) / 60_000;
        let compare = |more: bool, value: u64, n: u64| if more { value > n } else { value < n };
        match self {
            Term::Mask(_) => true,
            Term::NotMask(mask) => !mask_match(mask, folded),
            Term::Users(more, n) => compare(*more, (ch.members.len() + ch.remote.len()) as u64, *n as u64),
            Term::Created(more, n) => compare(*more, minutes_ago(ch.created_ms), *n),
            Term::Topic(more, n) => ch.topic.as_ref().is_some_and(|t| compare(*more, minutes_ago(t.set_at_ms), *n)),
        }
    }
}

/// Whether `ch` passes every condition and matches one of the masks, if there are any.
fn passes(terms: &[Term], ch: &Channel, folded: &str, now_ms: u64) -> bool {
    let mut masks = terms.iter().filter_map(|t| if let Term::Mask(m) = t { Some(m) } else { None }).peekable();
    let named = masks.peek().is_none() || masks.any(|m| mask_match(m, folded));
    named && terms.iter().all(|t| t.holds(ch, folded, now_ms))
}

impl Server {
    pub(crate) fn handle_list(&mut self, msg: &Message) {
        let conn = self.cur_conn();
        let now_ms = self.now.wall_ms;
        let terms: Vec<Term> = msg
            .params
            .first()
            .map(|p| p.split(',').take(MAX_LIST_TERMS).filter_map(Term::parse).collect())
            .unwrap_or_default();
        let mut rows: Vec<(String, String, usize, String)> = self
            .channels
            .iter()
            .filter(|(_, ch)| !ch.modes.secret || ch.members.contains_key(&conn))
            .filter(|(folded, ch)| passes(&terms, ch, folded, now_ms))
            .map(|(folded, ch)| {
                let topic = ch.topic.as_ref().map(|t| t.text.clone()).unwrap_or_default();
                (folded.clone(), ch.name.as_str().to_owned(), ch.members.len() + ch.remote.len(), topic)
            })
            .collect();
        rows.sort();
        self.numeric(RPL_LISTSTART, ["Channel", "Users  Name"]);
        for (_, name, count, topic) in rows {
            self.numeric(RPL_LIST, [name, count.to_string(), topic]);
        }
        self.numeric(RPL_LISTEND, ["End of /LIST"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terms_parse_by_their_first_characters() {
        assert_eq!(Term::parse("#Rust*"), Some(Term::Mask("#rust*".into())));
        assert_eq!(Term::parse("!#off*"), Some(Term::NotMask("#off*".into())));
        assert_eq!(Term::parse(">3"), Some(Term::Users(true, 3)));
        assert_eq!(Term::parse("<10"), Some(Term::Users(false, 10)));
        assert_eq!(Term::parse("C>60"), Some(Term::Created(true, 60)));
        assert_eq!(Term::parse("T<5"), Some(Term::Topic(false, 5)));
        assert_eq!(Term::parse("<x"), None);
        assert_eq!(Term::parse("C=3"), None);
        assert_eq!(Term::parse("!"), None);
    }
}
