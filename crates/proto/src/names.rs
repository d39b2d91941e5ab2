//! Validated names: [`Nick`] and [`ChannelName`].
//!
//! Handlers take these instead of strings, so a name is checked once at the edge and compared
//! correctly everywhere after: equality, hashing and ordering all go through the casemapping,
//! while the original spelling is kept for display.

use std::cmp::Ordering;
use std::fmt;
use std::hash::{Hash, Hasher};

use crate::casemap::{casefold, nfc};

/// Why a string is not a valid nickname or channel name. The messages are shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Nothing (or, for a channel, nothing after the `#`).
    #[error("Name is empty")]
    Empty,
    /// Longer than the server's limit.
    #[error("Name is too long")]
    TooLong,
    /// Contains a character that is not allowed anywhere in this kind of name.
    #[error("Name contains an invalid character {0:?}")]
    InvalidChar(char),
    /// Starts with a character that is not allowed first (a digit or `-` for a nick, anything
    /// but `#` for a channel).
    #[error("Name starts with an invalid character")]
    BadStart,
}

/// The specials allowed anywhere in a nickname (RFC 2812).
const NICK_SPECIALS: &str = "[]\\`_^{|}";

/// A name as spelled and casefolded, in one allocation: the spelling, then the folded form.
/// Folding changes ASCII letters only, so both halves have the same length. Every connected
/// client keeps its nick this way: one pointer and length, where two `String`s took 48 bytes
/// and two allocations.
#[derive(Clone, Debug)]
struct Both(Box<str>);

impl Both {
    fn new(original: &str) -> Self {
        let mut both = String::with_capacity(2 * original.len());
        both.push_str(original);
        both.push_str(original);
        both[original.len()..].make_ascii_lowercase();
        debug_assert_eq!(both[original.len()..], casefold(original));
        Both(both.into_boxed_str())
    }

    #[inline]
    fn original(&self) -> &str {
        &self.0[..self.0.len() / 2]
    }

    #[inline]
    fn folded(&self) -> &str {
        &self.0[self.0.len() / 2..]
    }
}

/// Implements the name traits by the folded form, and `Display` by the original spelling.
macro_rules! folded_name_traits {
    ($ty:ident) => {
        impl $ty {
            /// Keeps `original` and its casefolded form in one allocation.
            fn new(original: &str) -> Self {
                $ty { both: Both::new(original) }
            }

            /// The name as the user spelled it, for display. Inlined across crates: it is
            /// read for every line a client sends.
            #[inline]
            pub fn as_str(&self) -> &str {
                self.both.original()
            }

            /// The casefolded name, for lookups and comparisons.
            #[inline]
            pub fn folded(&self) -> &str {
                self.both.folded()
            }
        }

        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.folded() == other.folded()
            }
        }

        impl Eq for $ty {}

        impl Hash for $ty {
            fn hash<H: Hasher>(&self, state: &mut H) {
                self.folded().hash(state);
            }
        }

        impl PartialOrd for $ty {
            fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
                Some(self.cmp(other))
            }
        }

        impl Ord for $ty {
            fn cmp(&self, other: &Self) -> Ordering {
                self.folded().cmp(other.folded())
            }
        }
    };
}

/// A validated nickname. Keeps the original spelling for display; `Eq`, `Hash` and `Ord` use
/// the casefolded form.
#[derive(Clone, Debug)]
pub struct Nick {
    /// As given, for display, and casefolded, for identity.
    both: Both,
}

impl Nick {
    /// Rules: 1..=`max_len` bytes, ASCII only; the first character a letter or one of
    /// ``[]\`_^{|}``; the others letters, digits, `-` or those specials. That excludes
    /// everything with a meaning in the protocol (space, `,`, `*`, `?`, `!`, `@`, `.`, `:`,
    /// `#`, `&`) and leading digits, which would look like numerics or UIDs.
    pub fn parse(s: &str, max_len: usize) -> Result<Nick, NameError> {
        let mut chars = s.chars();
        let first = chars.next().ok_or(NameError::Empty)?;
        if s.len() > max_len {
            return Err(NameError::TooLong);
        }
        let is_special = |c: char| NICK_SPECIALS.contains(c);
        if !(first.is_ascii_alphabetic() || is_special(first)) {
            return Err(if first.is_ascii_digit() || first == '-' {
                NameError::BadStart
            } else {
                NameError::InvalidChar(first)
            });
        }
        if let Some(bad) = chars.find(|&c| !(c.is_ascii_alphanumeric() || c == '-' || is_special(c))) {
            return Err(NameError::InvalidChar(bad));
        }
        Ok(Nick::new(s))
    }
}

folded_name_traits!(Nick);

/// A validated channel name. Keeps the original spelling for display; `Eq`, `Hash` and `Ord`
/// use the casefolded form.
#[derive(Clone, Debug)]
pub struct ChannelName {
    /// As given, for display, and casefolded, for identity.
    both: Both,
}

impl ChannelName {
    /// Rules: starts with `#`, 2..=`max_len` bytes, no space, comma, BEL or other ASCII
    /// control characters (NUL, CR and LF included); UTF-8 is allowed after the `#`. Space and
    /// comma separate channels in commands, and BEL was used as a channel-mask separator.
    /// The name is kept in Unicode's NFC, so that every spelling of it is one name.
    pub fn parse(s: &str, max_len: usize) -> Result<ChannelName, NameError> {
        let s = &*nfc(s);
        let rest = match s.strip_prefix('#') {
            Some(rest) => rest,
            None if s.is_empty() => return Err(NameError::Empty),
            None => return Err(NameError::BadStart),
        };
        if rest.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > max_len {
            return Err(NameError::TooLong);
        }
        if let Some(bad) = rest.chars().find(|&c| c == ' ' || c == ',' || c.is_ascii_control()) {
            return Err(NameError::InvalidChar(bad));
        }
        Ok(ChannelName::new(s))
    }
}

folded_name_traits!(ChannelName);
