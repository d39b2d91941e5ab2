//! Text from the network made safe to print on a terminal: [`neutralise`].
//!
//! Another user's message, nick, topic or quit reason can hold bytes a terminal obeys (`ESC [2J`
//! clears the screen, OSC `ESC ]0;…BEL` retitles the window, C1 `U+009B` is a one-character CSI
//! on some terminals) or characters that reorder what follows them on the line (bidi
//! overrides and isolates). Both front ends show them as visible stand-ins instead: the
//! full-screen client in its lines, scriptable mode in its plain and JSON output.
//!
//! - C0 (U+0000–U+001F, TAB included: it is never needed to read a chat line and a run of
//!   them can push text off screen) and DEL become their Control Pictures (`␛`, `␇`, `␉`, `␡`).
//! - C1 (U+0080–U+009F), which has no pictures, and the bidi controls (U+061C, U+200E, U+200F,
//!   U+202A–U+202E, U+2066–U+2069) become their code point in brackets: `[U+009B]`, `[U+202E]`.
//!
//! Everything else, other languages and emoji included, is left as it is.

use std::borrow::Cow;

/// `text` with every character a terminal would obey, or that reorders the line, replaced by a
/// visible stand-in. Borrowed when there is nothing to replace (nearly always).
pub fn neutralise(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_neutralising) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '\u{0}'..='\u{1f}' => out.push(char::from_u32(0x2400 + c as u32).unwrap_or('\u{FFFD}')),
            '\u{7f}' => out.push('\u{2421}'),
            c if needs_neutralising(c) => out.push_str(&format!("[U+{:04X}]", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// [`neutralise`] applied to each line of `text`: the line breaks stay (a table or a report
/// printed whole), everything else a terminal would obey is shown.
pub fn neutralise_lines(text: &str) -> Cow<'_, str> {
    if !text.chars().any(|c| c != '\n' && needs_neutralising(c)) {
        return Cow::Borrowed(text);
    }
    Cow::Owned(text.split('\n').map(neutralise).collect::<Vec<_>>().join("\n"))
}

/// Every string in `value`, keys included, through [`neutralise`].
pub fn neutralise_json(value: &mut serde_json::Value) {
    use serde_json::Value;
    match value {
        Value::String(s) => {
            if let Cow::Owned(shown) = neutralise(s) {
                *s = shown;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(neutralise_json),
        Value::Object(map) => {
            if map.keys().any(|k| matches!(neutralise(k), Cow::Owned(_))) {
                let entries = std::mem::take(map);
                *map = entries.into_iter().map(|(k, v)| (neutralise(&k).into_owned(), v)).collect();
            }
            map.values_mut().for_each(neutralise_json);
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// Whether [`neutralise`] replaces `c`: C0, DEL, C1 and the bidi controls.
pub fn needs_neutralising(c: char) -> bool {
    matches!(c, '\u{0}'..='\u{1f}' | '\u{7f}'..='\u{9f}' | '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::{neutralise, neutralise_lines};

    #[test]
    fn every_class_of_escape_is_shown_not_obeyed() {
        let cases = [
            ("\u{1b}[2J", "\u{241b}[2J"),
            ("\u{1b}]0;pwned\u{7}", "\u{241b}]0;pwned\u{2407}"),
            ("a\tb\rc\nd\0", "a\u{2409}b\u{240d}c\u{240a}d\u{2400}"),
            ("del\u{7f}", "del\u{2421}"),
            ("\u{9b}31m red", "[U+009B]31m red"),
            ("\u{85}\u{9d}", "[U+0085][U+009D]"),
            ("abc\u{202e}fed", "abc[U+202E]fed"),
            ("\u{2066}x\u{2069}\u{200f}", "[U+2066]x[U+2069][U+200F]"),
        ];
        for (raw, shown) in cases {
            let out = neutralise(raw);
            assert_eq!(out, shown, "{raw:?}");
            assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        }
    }

    #[test]
    fn honest_text_is_untouched_and_not_copied() {
        for text in ["hello", "héllo wörld", "日本語 🎉", "שלום", "a [U+1234] b", ""] {
            assert!(matches!(neutralise(text), std::borrow::Cow::Borrowed(t) if t == text), "{text:?}");
        }
    }

    #[test]
    fn lines_keep_their_breaks_and_lose_their_escapes() {
        assert!(matches!(neutralise_lines("a\nb"), std::borrow::Cow::Borrowed("a\nb")));
        assert_eq!(neutralise_lines("a\u{1b}[2J\nb\u{202e}\r"), "a\u{241b}[2J\nb[U+202E]\u{240d}");
    }
}
