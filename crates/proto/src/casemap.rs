//! Casemapping. chinwag advertises `CASEMAPPING=ascii`: only `A`-`Z` fold to `a`-`z`. It is the
//! one mapping every client implements the same way, and it keeps folding a byte-wise,
//! allocation-cheap operation. A name that is not ASCII is also brought to Unicode's NFC first,
//! so that the two spellings of `#général` (precomposed `é`, or `e` and a combining accent)
//! are one name; a name already in NFC (every name the server keeps: [`crate::ChannelName`]
//! stores NFC) keeps its length.

use std::borrow::Cow;

use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};

/// `s` in Unicode's NFC, borrowed when it already is (always for ASCII).
pub fn nfc(s: &str) -> Cow<'_, str> {
    if s.is_ascii() || is_nfc_quick(s.chars()) == IsNormalized::Yes {
        Cow::Borrowed(s)
    } else {
        Cow::Owned(s.nfc().collect())
    }
}

/// The casefolded form of `s`, for comparing and indexing names.
pub fn casefold(s: &str) -> String {
    nfc(s).to_ascii_lowercase()
}

/// Calls `f` with the casefolded form of `s`, folded on the stack when it is short (a nick or
/// a room name), so that looking a name up allocates nothing; `s` itself when it has no capital
/// to fold, as many nicks and most room names come.
pub fn with_casefold<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    if let Cow::Owned(normal) = nfc(s) {
        return f(&casefold(&normal));
    }
    if !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return f(s);
    }
    let mut buf = [0u8; 64];
    f(&lowercase_in(s, &mut buf))
}

/// `s` lower-cased (ASCII letters only), in `buf` when it fits. Only ASCII bytes change, so
/// valid UTF-8 stays valid and the fallback is never taken in practice.
fn lowercase_in<'a>(s: &str, buf: &'a mut [u8]) -> Cow<'a, str> {
    if let Some(mapped) = buf.get_mut(..s.len()) {
        mapped.copy_from_slice(s.as_bytes());
        mapped.make_ascii_lowercase();
        if let Ok(mapped) = std::str::from_utf8(mapped) {
            return Cow::Borrowed(mapped);
        }
    }
    Cow::Owned(s.to_ascii_lowercase())
}

/// Whether `a` and `b` are equal under the casemapping.
pub fn eq_fold(a: &str, b: &str) -> bool {
    if a.is_ascii() && b.is_ascii() {
        a.eq_ignore_ascii_case(b)
    } else {
        nfc(a).eq_ignore_ascii_case(&nfc(b))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_on_the_stack_agrees_with_casefold() {
        let long = "N".repeat(65);
        for s in ["Nick[A]", "", "ÀbC", "a-Z_09", "already-folded", "àbc", "#Ge\u{301}neral", long.as_str()] {
            assert_eq!(with_casefold(s, str::to_owned), casefold(s), "{s}");
        }
    }

    #[test]
    fn two_spellings_of_one_name_fold_alike() {
        assert_eq!(casefold("#Ge\u{301}neral"), casefold("#g\u{e9}neral"));
        assert!(eq_fold("#ge\u{301}neral", "#G\u{e9}NERAL"));
        assert!(!eq_fold("#general", "#g\u{e9}neral"));
    }
}
