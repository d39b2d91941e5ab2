//! IRC and IRCv3 protocol types for chinwag: message parsing and serialization, line framing,
//! casemapping, validated names and wildcard masks.
//!
//! What this crate is *not*: it does no I/O, knows nothing about sockets, clocks or async
//! runtimes, and holds no server state. The server core and the client both build on it, so it
//! stays small and dependency-free (only `thiserror`). Everything here is a pure function of its
//! input, and everything that reads peer data is bounded and must never panic (it is fuzzed, see
//! `fuzz/` at the workspace root).
//!
//! Layout:
//! - this file: the byte limits of a line ([`MAX_BODY_LEN`], [`MAX_TAGS_LEN`], ...) as named
//!   constants, and the re-exports; everything public is available at the crate root.
//! - `message`: [`Message`] and [`Tag`], building and serializing.
//! - `parse`: [`Message::parse`], [`Message::parse_client`] (a client's line, whose tags have
//!   half the budget) and [`ParseError`].
//! - `tags`: IRCv3 tag value escaping.
//! - `framing`: [`LineReader`], the sans-IO byte-stream-to-lines framer.
//! - `casemap`: [`casefold`] and [`eq_fold`] (chinwag uses `CASEMAPPING=ascii`).
//! - `names`: [`Nick`] and [`ChannelName`], validated at the edge.
//! - `mask`: [`mask_match`] for ban masks and the like.
//! - `source`: [`split_source`] (`nick!user@host`) and [`is_valid_hostname`].
//!
//! A connection's read path in miniature:
//!
//! ```
//! use chinwag_proto::{Frame, LineReader, Message, MAX_LINE_LEN};
//!
//! let mut reader = LineReader::new(MAX_LINE_LEN);
//! reader.push(b"@+draft/reply=abc PRIVMSG #rust :hello there\r\nPI");
//! let Some(Frame::Line(line)) = reader.next_frame() else { panic!("no line") };
//! let msg = Message::parse_bytes(&line)?;
//! assert_eq!(msg.command, "PRIVMSG");
//! assert_eq!(msg.params, ["#rust", "hello there"]);
//! assert_eq!(msg.tag("+draft/reply"), Some("abc"));
//! assert_eq!(reader.next_frame(), None); // "PI" waits for the rest of its line.
//!
//! let reply = Message::new("NOTICE").with_source("irc.example.com").with_params(["#rust", "hi"]);
//! let mut wire = Vec::new();
//! reply.write_to(&mut wire);
//! assert_eq!(wire, b":irc.example.com NOTICE #rust hi\r\n");
//! # Ok::<(), chinwag_proto::ParseError>(())
//! ```

mod casemap;
mod framing;
mod mask;
mod message;
mod names;
mod parse;
mod source;
mod tags;
mod time;

pub use casemap::{casefold, eq_fold, nfc, with_casefold};
pub use framing::{Frame, FrameRef, LineReader};
pub use mask::mask_match;
pub use message::{Message, Tag};
pub use names::{ChannelName, NameError, Nick};
pub use parse::ParseError;
pub use source::{is_valid_hostname, split_source, Source};
pub use tags::{escape_tag_value, unescape_tag_value};
pub use time::{parse_rfc3339_ms, rfc3339_ms};

/// Longest message body in bytes, *including* the trailing CRLF (RFC 1459 / ircdocs "modern").
/// The body is everything after the tag section, so the usable limit is 510 bytes.
pub const MAX_BODY_LEN: usize = 512;

/// Longest tag section in bytes, including the leading `@` and the trailing space
/// (IRCv3 message-tags).
pub const MAX_TAGS_LEN: usize = 8191;

/// Longest run of client-only tags (keys starting with `+`) in bytes, counting the `;`
/// separators between them but not the `@` or the trailing space (IRCv3 message-tags: 4096
/// minus those two bytes). Servers must reject more so that relaying them cannot overflow the
/// total tag budget. A line a client sends may hold no more tag data than this in all
/// ([`Message::parse_client`]), whether its tags are client-only or not.
pub const MAX_CLIENT_TAGS_LEN: usize = 4094;

/// Longest line the framer accepts before it gives up on it: a full tag section plus a full
/// body. [`Message::parse`] then enforces the finer limits.
pub const MAX_LINE_LEN: usize = MAX_TAGS_LEN + MAX_BODY_LEN;

/// Most parameters a message may carry (RFC 1459: 14 middle parameters plus a trailing one).
pub const MAX_PARAMS: usize = 15;
