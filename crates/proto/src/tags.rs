//! IRCv3 message-tags value escaping.
//!
//! Tag values cannot carry `;`, space, CR, LF or `\` on the wire, so they are escaped with
//! backslash sequences. Unescaping is lenient exactly as the spec asks, because peers get it
//! wrong and a tag value is never worth dropping a message over.

/// Escapes a tag value for the wire.
pub fn escape_tag_value(v: &str) -> String {
    let mut out = Vec::with_capacity(v.len());
    escape_tag_value_into(v, &mut out);
    crate::message::written_text(out)
}

/// Escapes `v` onto the end of `out`; the allocation-free half of [`escape_tag_value`].
pub(crate) fn escape_tag_value_into(v: &str, out: &mut Vec<u8>) {
    // Everything escaped is ASCII, so bytes of multi-byte characters pass through whole.
    for &b in v.as_bytes() {
        match b {
            b';' => out.extend_from_slice(b"\\:"),
            b' ' => out.extend_from_slice(b"\\s"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\n' => out.extend_from_slice(b"\\n"),
            // NUL cannot appear on the wire at all and has no escape; dropping it keeps the
            // line valid.
            b'\0' => {}
            b => out.push(b),
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
