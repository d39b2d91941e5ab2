//! Room names that would look like another room: refused when a room is created.
//!
//! Nicks are ASCII only (see `chinwag_proto::Nick`), so only room names, which may hold any
//! UTF-8 after the `#`, can be dressed up as someone else's. Two tricks are refused:
//! characters that show nothing or move text (zero-width spaces, direction overrides, soft
//! hyphens, non-ASCII spaces), which make `#general` and `#general\u{200b}` look alike; and
//! names mixing Latin letters with Greek or Cyrillic ones, which make `#gеneral` (Cyrillic
//! `е`) look like `#general`. A name wholly in one script (`#общий`, `#café`) is fine.
//!
//! This is a cheap filter, not Unicode's full confusable skeleton: a name written wholly in
//! Cyrillic letters that happen to look Latin (`#сер`) still passes.

/// Why `name` is refused as a new room's name, if it is.
pub(crate) fn suspicious_room_name(name: &str) -> Option<&'static str> {
    if name.chars().any(is_invisible) {
        return Some("it contains invisible or formatting characters");
    }
    let mut latin = false;
    let mut greek_or_cyrillic = false;
    for c in name.chars() {
        match script(c) {
            Script::Latin => latin = true,
            Script::GreekOrCyrillic => greek_or_cyrillic = true,
            Script::Other => {}
        }
    }
    if latin && greek_or_cyrillic {
        return Some("it mixes Latin letters with Greek or Cyrillic ones that look alike");
    }
    None
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

#[derive(Copy, Clone, PartialEq, Eq)]
enum Script {
    Latin,
    GreekOrCyrillic,
    Other,
}

fn script(c: char) -> Script {
    match c {
        'a'..='z' | 'A'..='Z' | '\u{00C0}'..='\u{024F}' | '\u{1E00}'..='\u{1EFF}' if c.is_alphabetic() => Script::Latin,
        '\u{0370}'..='\u{03FF}'
        | '\u{1F00}'..='\u{1FFF}'
        | '\u{0400}'..='\u{052F}'
        | '\u{1C80}'..='\u{1C8F}'
        | '\u{2DE0}'..='\u{2DFF}'
        | '\u{A640}'..='\u{A69F}'
            if c.is_alphabetic() =>
        {
            Script::GreekOrCyrillic
        }
        _ => Script::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::suspicious_room_name;

    #[test]
    fn lookalikes_are_refused_and_honest_names_pass() {
        for bad in ["#general\u{200b}", "#gen\u{202e}lareneg", "#g\u{0435}neral", "#general\u{00a0}", "#\u{feff}x"] {
            assert!(suspicious_room_name(bad).is_some(), "{bad:?}");
        }
        for good in ["#general", "#café", "#общий", "#ελληνικά", "#日本語", "#rust-2024", "#a_b"] {
            assert_eq!(suspicious_room_name(good), None, "{good:?}");
        }
    }
}
