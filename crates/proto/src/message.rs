//! The [`Message`] type: building and serializing.

use std::fmt;

use crate::tags::escape_tag_value_into;

/// One IRCv3 message tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tag {
    /// The key, verbatim (client-only tags keep their leading `+`).
    pub key: String,
    /// The unescaped value. An empty string means the tag has no value: on the wire `key` and
    /// `key=` mean the same thing, so they are not told apart.
    pub value: String,
}

/// One IRC message, as parsed from or written to the wire.
///
/// Parsing keeps things verbatim (the command is not uppercased, the source not split) so the
/// core decides what they mean. A message built by hand is the caller's responsibility: every
/// parameter but the last must be non-empty, free of spaces and not start with `:`, or the wire
/// form will not say what was meant. Serializing never panics either way, and it drops NUL, CR
/// and LF everywhere outside tag values (which escape them) so that no field can ever inject a
/// second line.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Message {
    /// The tags in wire order. After parsing, keys are unique: a repeated key keeps only its
    /// final occurrence, as the message-tags spec asks.
    pub tags: Vec<Tag>,
    /// Who sent the message (`nick!user@host` or a server name), without the leading `:`.
    pub source: Option<String>,
    /// The command or numeric, verbatim as received; the core uppercases it.
    pub command: String,
    /// Middle parameters and the trailing one; the trailing one is just the last element, since
    /// the `:` that may introduce it is only a wire detail.
    pub params: Vec<String>,
}

impl Message {
    /// A message with this command and nothing else.
    pub fn new(command: impl Into<String>) -> Self {
        Message { command: command.into(), ..Message::default() }
    }

    /// Sets the source (without a leading `:`).
    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    /// Appends one parameter.
    pub fn with_param(mut self, p: impl Into<String>) -> Self {
        self.params.push(p.into());
        self
    }

    /// Appends several parameters, in order.
    pub fn with_params<I, S>(mut self, ps: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.params.extend(ps.into_iter().map(Into::into));
        self
    }

    /// Appends a tag; `value` is unescaped, and `""` means "no value".
    pub fn with_tag(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.tags.push(Tag { key: key.into(), value: value.into() });
        self
    }

    /// The value of the first tag with this key (`Some("")` for a tag without a value).
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.iter().find(|t| t.key == key).map(|t| t.value.as_str())
    }

    /// Appends the wire form of this message, terminated by CRLF, to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::new();
        self.write_line(&mut line);
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }

    /// The wire form of this message, without the CRLF.
    pub fn to_line(&self) -> String {
        let mut line = String::new();
        self.write_line(&mut line);
        line
    }

    fn write_line(&self, out: &mut String) {
        if !self.tags.is_empty() {
            out.push('@');
            for (i, tag) in self.tags.iter().enumerate() {
                if i > 0 {
                    out.push(';');
                }
                push_clean(out, &tag.key);
                if !tag.value.is_empty() {
                    out.push('=');
                    escape_tag_value_into(&tag.value, out);
                }
            }
            out.push(' ');
        }
        if let Some(source) = &self.source {
            out.push(':');
            push_clean(out, source);
            out.push(' ');
        }
        push_clean(out, &self.command);
        let last = self.params.len().saturating_sub(1);
        for (i, p) in self.params.iter().enumerate() {
            out.push(' ');
            if i == last && needs_colon(p) {
                out.push(':');
            }
            push_clean(out, p);
        }
    }
}

/// Whether the last parameter must be written in its trailing form (`:` prefix) to read back
/// the same.
fn needs_colon(p: &str) -> bool {
    p.is_empty() || p.starts_with(':') || p.contains(' ')
}

/// Appends `s` without NUL, CR and LF, which can never appear inside a line.
fn push_clean(out: &mut String, s: &str) {
    if s.contains(crate::parse::is_forbidden) {
        out.extend(s.chars().filter(|&c| !crate::parse::is_forbidden(c)));
    } else {
        out.push_str(s);
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}
