//! Parsing one line into a [`Message`].
//!
//! The grammar is the ircdocs "modern" one with the leniency of the shared parser test
//! vectors: runs of spaces separate atoms, a trailing CR/LF is tolerated, tag values are
//! unescaped leniently. Everything that would make a parsed message serialize to a different
//! message is rejected instead, so `parse(m.to_line()) == m` holds for every parsed `m`.

use std::collections::HashSet;

use crate::message::{Message, Tag};
use crate::tags::unescape_tag_value;
use crate::{MAX_BODY_LEN, MAX_CLIENT_TAGS_LEN, MAX_PARAMS, MAX_TAGS_LEN};

/// Why a line is not a valid message. The messages are shown to users.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The line was empty or only spaces.
    #[error("Empty line")]
    Empty,
    /// The line was not valid UTF-8.
    #[error("Input line is not valid UTF-8")]
    InvalidUtf8,
    /// Tags or a source were present but no command followed.
    #[error("No command given")]
    NoCommand,
    /// The body (everything after the tags) exceeded [`MAX_BODY_LEN`].
    #[error("Input line was too long")]
    BodyTooLong,
    /// The tag section exceeded [`MAX_TAGS_LEN`].
    #[error("Input line contained excess tag data")]
    TagsTooLong,
    /// The client-only tags exceeded [`MAX_CLIENT_TAGS_LEN`], or, in a line a client sent
    /// ([`Message::parse_client`]), all its tags together did.
    #[error("Input line contained excess client tag data")]
    ClientTagsTooLong,
    /// More than [`MAX_PARAMS`] parameters.
    #[error("Too many parameters")]
    TooManyParams,
    /// A tag key was empty or had characters outside `A-Z a-z 0-9 - . /` (after an optional
    /// leading `+`).
    #[error("Invalid message tag")]
    InvalidTag,
    /// The line contained NUL, or CR/LF other than as its terminator.
    #[error("Input line contained a NUL, CR or LF character")]
    ForbiddenChar,
    /// The line started with `:` but the source after it was empty.
    #[error("Empty message source")]
    EmptySource,
    /// The command started with `:` or `@`, which could not be written back unambiguously.
    #[error("Invalid command")]
    InvalidCommand,
}

/// Whether `s` holds NUL, CR or LF: the characters that can never appear inside a line. They
/// are ASCII, so a byte search (vectorized by memchr) finds exactly them.
pub(crate) fn has_forbidden(s: &[u8]) -> bool {
    memchr::memchr3(b'\0', b'\r', b'\n', s).is_some()
}

impl Message {
    /// Parses one line. One trailing `"\r\n"`, `"\n"` or `"\r"` is stripped first.
    pub fn parse(line: &str) -> Result<Message, ParseError> {
        parse_line(line, MAX_TAGS_LEN - 2)
    }

    /// Parses one line a client sent to a server. As [`Message::parse`], but the whole tag
    /// section (every tag, with or without the `+` of client-only tags) may hold at most
    /// [`MAX_CLIENT_TAGS_LEN`] bytes, as IRCv3 message-tags has it: the other half of the
    /// 8191-byte budget is the server's, for the tags it adds when it relays the line.
    pub fn parse_client(line: &str) -> Result<Message, ParseError> {
        parse_line(line, MAX_CLIENT_TAGS_LEN)
    }

    /// Parses one line of raw bytes; invalid UTF-8 is [`ParseError::InvalidUtf8`]. Checked
    /// with SIMD (simdutf8: every line read is checked, and the standard library's check was a
    /// twentieth of a private message's instructions).
    pub fn parse_bytes(line: &[u8]) -> Result<Message, ParseError> {
        let line = simdutf8::basic::from_utf8(line).map_err(|_| ParseError::InvalidUtf8)?;
        parse_line(line, MAX_TAGS_LEN - 2)
    }

    /// [`Message::parse_client`] of raw bytes, as [`Message::parse_bytes`].
    pub fn parse_client_bytes(line: &[u8]) -> Result<Message, ParseError> {
        let line = simdutf8::basic::from_utf8(line).map_err(|_| ParseError::InvalidUtf8)?;
        parse_line(line, MAX_CLIENT_TAGS_LEN)
    }
}

fn strip_terminator(line: &str) -> &str {
    line.strip_suffix("\r\n").or_else(|| line.strip_suffix('\n')).or_else(|| line.strip_suffix('\r')).unwrap_or(line)
}

/// `s` without its leading spaces. By bytes: trimming by a char pattern decodes UTF-8 as it
/// goes, and this runs several times per line.
fn skip_spaces(s: &str) -> &str {
    &s[s.bytes().position(|b| b != b' ').unwrap_or(s.len())..]
}

/// Splits off the next space-delimited atom, skipping any run of leading spaces. Returns
/// `None` when only spaces are left.
///
/// Atoms are short (a command, a nick), so a plain byte loop beats a vectorized search here.
fn next_atom(rest: &str) -> Option<(&str, &str)> {
    let rest = skip_spaces(rest);
    if rest.is_empty() {
        return None;
    }
    // A space is ASCII, so the split falls on a character boundary.
    Some(match rest.bytes().position(|b| b == b' ') {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    })
}

/// `max_tag_data`: the most bytes of tags, without the `@` and the space that end the section.
fn parse_line(line: &str, max_tag_data: usize) -> Result<Message, ParseError> {
    let line = strip_terminator(line);
    if has_forbidden(line.as_bytes()) {
        return Err(ParseError::ForbiddenChar);
    }
    let line = skip_spaces(line);
    if line.is_empty() {
        return Err(ParseError::Empty);
    }

    let mut msg = Message::default();
    let mut body = line;
    if let Some(after_at) = line.strip_prefix('@') {
        let (raw_tags, rest) = match after_at.find(' ') {
            Some(i) => (&after_at[..i], &after_at[i + 1..]),
            None => (after_at, ""),
        };
        // '@' + tags + the one space that ends the section.
        if 1 + raw_tags.len() + 1 > MAX_TAGS_LEN {
            return Err(ParseError::TagsTooLong);
        }
        if raw_tags.len() > max_tag_data {
            return Err(ParseError::ClientTagsTooLong);
        }
        msg.tags = parse_tags(raw_tags)?;
        body = rest;
    }
    // The CRLF counts towards MAX_BODY_LEN but is not part of `body`.
    if body.len() + 2 > MAX_BODY_LEN {
        return Err(ParseError::BodyTooLong);
    }

    let mut rest = body;
    let (first, after) = next_atom(rest).ok_or(ParseError::NoCommand)?;
    let command = match first.strip_prefix(':') {
        Some(source) => {
            if source.is_empty() {
                return Err(ParseError::EmptySource);
            }
            msg.source = Some(source.to_owned());
            let (command, after) = next_atom(after).ok_or(ParseError::NoCommand)?;
            rest = after;
            command
        }
        None => {
            rest = after;
            first
        }
    };
    if command.starts_with([':', '@']) {
        return Err(ParseError::InvalidCommand);
    }
    msg.command = command.to_owned();
    if !skip_spaces(rest).is_empty() {
        // Made at its size once: growing from nothing goes through the general (slower) path,
        // and nearly every command has at most four parameters.
        msg.params = Vec::with_capacity(4);
    }

    loop {
        let trimmed = skip_spaces(rest);
        if trimmed.is_empty() {
            break;
        }
        // RFC 1459 lets a 15th parameter swallow the rest of the line without a ':'. None of
        // the shared vectors relies on that, modern servers reject such lines, and swallowing
        // would make the same message readable two ways, so more than MAX_PARAMS is an error.
        if msg.params.len() == MAX_PARAMS {
            return Err(ParseError::TooManyParams);
        }
        if let Some(trailing) = trimmed.strip_prefix(':') {
            msg.params.push(trailing.to_owned());
            break;
        }
        let (param, after) = next_atom(trimmed).ok_or(ParseError::NoCommand)?;
        msg.params.push(param.to_owned());
        rest = after;
    }
    Ok(msg)
}

/// Whether `key` is a well-formed tag key: optional `+`, then letters, digits, `-`, `.` and
/// `/` (the last two for the vendor prefix), not empty.
fn is_valid_tag_key(key: &str) -> bool {
    let name = key.strip_prefix('+').unwrap_or(key);
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'/'))
}

/// Parses the tag section (without `@` and the trailing space). Empty items (`a;;b`, a trailing
/// `;`) are skipped; a repeated key keeps only its final occurrence.
fn parse_tags(raw: &str) -> Result<Vec<Tag>, ParseError> {
    let mut tags: Vec<(&str, &str)> = Vec::new();
    let mut client_bytes = 0usize;
    for item in raw.split(';') {
        if item.is_empty() {
            continue;
        }
        let (key, raw_value) = item.split_once('=').unwrap_or((item, ""));
        if !is_valid_tag_key(key) {
            return Err(ParseError::InvalidTag);
        }
        if key.starts_with('+') {
            // The item plus the ';' that separates it from the next client tag.
            client_bytes += item.len() + 1;
            if client_bytes - 1 > MAX_CLIENT_TAGS_LEN {
                return Err(ParseError::ClientTagsTooLong);
            }
        }
        tags.push((key, raw_value));
    }
    // Keep only the final occurrence of each key, in wire order. A set keeps this linear: the
    // tag section may hold thousands of tiny tags.
    let mut seen = HashSet::with_capacity(tags.len());
    let mut kept: Vec<Tag> = tags
        .iter()
        .rev()
        .filter(|(key, _)| seen.insert(*key))
        .map(|(key, raw_value)| Tag { key: (*key).to_owned(), value: unescape_tag_value(raw_value) })
        .collect();
    kept.reverse();
    Ok(kept)
}
