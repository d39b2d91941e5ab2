//! IRCv3 message-tags value escaping.
//!
//! Tag values cannot carry `;`, space, CR, LF or `\` on the wire, so they are escaped with
//! backslash sequences. Unescaping is lenient exactly as the spec asks, because peers get it
//! wrong and a tag value is never worth dropping a message over.

/// Escapes a tag value for the wire.
pub fn escape_tag_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    escape_tag_value_into(v, &mut out);
    out
}

/// Escapes `v` onto the end of `out`; the allocation-free half of [`escape_tag_value`].
pub(crate) fn escape_tag_value_into(v: &str, out: &mut String) {
    for c in v.chars() {
        match c {
            ';' => out.push_str("\\:"),
            ' ' => out.push_str("\\s"),
            '\\' => out.push_str("\\\\"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            // NUL cannot appear on the wire at all and has no escape; dropping it keeps the
            // line valid.
            '\0' => {}
            c => out.push(c),
        }
    }
}

/// Unescapes a tag value from the wire. A trailing lone `\` is dropped and an unknown escape
/// `\x` becomes `x`, as the spec says.
pub fn unescape_tag_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let mut chars = v.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(':') => out.push(';'),
            Some('s') => out.push(' '),
            Some('\\') => out.push('\\'),
            Some('r') => out.push('\r'),
            Some('n') => out.push('\n'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}
