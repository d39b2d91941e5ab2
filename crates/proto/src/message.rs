//! The [`Message`] type: building and serializing.

use std::fmt;

use crate::parse::has_forbidden;
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
        self.write_line(out);
        out.extend_from_slice(b"\r\n");
    }

    /// [`Message::write_to`] with `extra` tags (key and unescaped value; `""` means "no value")
    /// after the message's own, and with `source` in place of the message's own if given: the
    /// same bytes as adding them with [`Message::with_tag`] and [`Message::with_source`] and
    /// writing, without copying the message.
    pub fn write_with_tags<'a>(
        &'a self,
        source: Option<&'a str>,
        extra: impl IntoIterator<Item = (&'a str, &'a str)>,
        out: &mut Vec<u8>,
    ) {
        let own = self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str()));
        self.write_parts(source.or(self.source.as_deref()), own.chain(extra), out);
        out.extend_from_slice(b"\r\n");
    }

    pub fn to_line(&self) -> String {
        let mut line = Vec::new();
        self.write_line(&mut line);
        written_text(line)
    }

    /// Writes bytes straight into `out`: a message is serialized once per delivery of a
    /// private message, so no string is built on the side.
    fn write_line(&self, out: &mut Vec<u8>) {
        let tags = self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str()));
        self.write_parts(self.source.as_deref(), tags, out);
    }

    fn write_parts<'a>(
        &'a self,
        source: Option<&str>,
        tags: impl IntoIterator<Item = (&'a str, &'a str)>,
        out: &mut Vec<u8>,
    ) {
        let start = out.len();
        let mut any = false;
        for (key, value) in tags {
            out.push(if any { b';' } else { b'@' });
            any = true;
            out.extend_from_slice(key.as_bytes());
            if !value.is_empty() {
                out.push(b'=');
                escape_tag_value_into(value, out);
            }
        }
        if any {
            out.push(b' ');
        }
        if let Some(source) = source {
            out.push(b':');
            out.extend_from_slice(source.as_bytes());
            out.push(b' ');
        }
        out.extend_from_slice(self.command.as_bytes());
        let last = self.params.len().saturating_sub(1);
        for (i, p) in self.params.iter().enumerate() {
            out.push(b' ');
            if i == last && needs_colon(p) {
                out.push(b':');
            }
            out.extend_from_slice(p.as_bytes());
        }
        remove_forbidden(out, start);
    }
}

/// Whether the last parameter must be written in its trailing form (`:` prefix) to read back
/// the same.
fn needs_colon(p: &str) -> bool {
    p.is_empty() || p.starts_with(':') || p.contains(' ')
}

/// Bytes written from whole `str`s with only ASCII added or removed, as the `String` they are
/// (never lossy in practice; no panic if that ever stopped being true).
pub(crate) fn written_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
}

/// Drops NUL, CR and LF from what was written after `start`: they can never appear inside a
/// line, so no part of a message can end it early or smuggle in another. The separators are
/// none of them and a tag value's CR and LF were escaped, so this cleans each part (a NUL in a
/// tag value included). They are ASCII, so dropping them byte by byte leaves valid UTF-8. One
/// search over the whole line costs less than one per part.
fn remove_forbidden(out: &mut Vec<u8>, start: usize) {
    if has_forbidden(&out[start..]) {
        let tail = out.split_off(start);
        out.extend(tail.into_iter().filter(|b| !matches!(b, b'\0' | b'\r' | b'\n')));
    }
}

impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_line())
    }
}
