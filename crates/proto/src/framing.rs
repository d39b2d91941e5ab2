//! [`LineReader`]: turns a byte stream into lines without doing any I/O itself.
//!
//! Two ways to use it:
//! - [`LineReader::push`] what was read, then take owned frames with
//!   [`LineReader::next_frame`] until it returns `None`;
//! - or [`LineReader::feed`] what was read with a function that gets each line as a slice of
//!   the input, uncopied, and may stop early: the rest is held (as bytes) until the next
//!   `feed`. This is what the server does, so that a line costs no allocation of its own.
//!
//! An over-long line is reported once as [`Frame::TooLong`] and skipped without being
//! buffered, so a peer cannot make us hold more than `max_len` bytes of an unfinished line,
//! and one bad line never ends the stream.

use std::collections::VecDeque;

/// One unit of output from the [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `"\n"` or `"\r\n"`. Never empty.
    Line(Vec<u8>),
    /// A line exceeded the limit; it has been (or is being) discarded.
    TooLong,
}

/// A [`Frame`] lent to the function given to [`LineReader::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameRef<'a> {
    /// A complete line, without its `"\n"` or `"\r\n"`. Never empty.
    Line(&'a [u8]),
    /// A line exceeded the limit; it has been (or is being) discarded.
    TooLong,
}

impl FrameRef<'_> {
    /// The owned frame.
    pub fn to_frame(self) -> Frame {
        match self {
            FrameRef::Line(line) => Frame::Line(line.to_vec()),
            FrameRef::TooLong => Frame::TooLong,
        }
    }
}

/// Sans-IO framer: feed bytes, pull complete lines. Bounded memory.
///
/// Memory held is at most `max_len + 1` bytes of the unfinished line, plus what a
/// [`feed`](Self::feed) left when its taker stopped early (at most what that call was given),
/// plus the complete frames that were pushed and not yet taken. Nothing at all once drained.
#[derive(Debug)]
pub struct LineReader {
    /// Longest line accepted, in bytes, excluding its `"\n"` / `"\r\n"`.
    max_len: usize,
    /// Bytes kept between calls: either the unfinished line so far (no `\n`, never longer than
    /// `max_len + 1`: one extra byte for a `\r` that may be stripped when the `\n` arrives), or,
    /// when `backlog`, input a taker has not got to yet.
    held: Vec<u8>,
    /// Whether `held` is input not yet framed (a taker stopped early).
    backlog: bool,
    /// Whether we are skipping the rest of a line already reported as too long.
    discarding: bool,
    /// Complete frames waiting to be taken ([`push`](Self::push) and
    /// [`next_frame`](Self::next_frame)). Boxed, and only while there are some: a server
    /// keeps a framer for every connection and takes its lines with [`feed`](Self::feed).
    #[expect(clippy::box_collection, reason = "one pointer, not a queue's three words, in every idle connection")]
    ready: Option<Box<VecDeque<Frame>>>,
}

impl LineReader {
    /// A reader that accepts lines of up to `max_len` bytes (excluding the line ending).
    /// Servers use [`MAX_LINE_LEN`](crate::MAX_LINE_LEN).
    pub fn new(max_len: usize) -> Self {
        LineReader { max_len, held: Vec::new(), backlog: false, discarding: false, ready: None }
    }

    /// Feeds bytes read from the peer; their lines wait for [`next_frame`](Self::next_frame).
    pub fn push(&mut self, data: &[u8]) {
        let mut ready = self.ready.take().unwrap_or_default();
        self.feed(data, |frame| {
            ready.push_back(frame.to_frame());
            true
        });
        if !ready.is_empty() {
            self.ready = Some(ready);
        }
    }

    /// Whether it holds nothing between lines: no unfinished line, no backlog, no frames, not
    /// in the middle of skipping a long line. Such a reader is as good as a new one, so a server
    /// may keep none for a connection in that state.
    pub fn is_idle(&self) -> bool {
        self.held.is_empty() && !self.backlog && !self.discarding && self.ready.is_none()
    }

    /// Whether input that a [`feed`](Self::feed) stopped short of is waiting: call `feed`
    /// again (with no new bytes) to get its lines before reading more.
    pub fn has_backlog(&self) -> bool {
        self.backlog
    }

    /// Hands each complete line, first those of any backlog and then those of `data`, to
    /// `take`, which says whether it wants more. What is left when it stops is kept (copied)
    /// as the backlog: feed it again with no new bytes until [`has_backlog`](Self::has_backlog)
    /// is false, before giving it more.
    pub fn feed(&mut self, data: &[u8], mut take: impl FnMut(FrameRef<'_>) -> bool) {
        if self.backlog {
            self.backlog = false;
            // A backlog starts where a line ended, so it is framed like fresh input.
            let backlog = std::mem::take(&mut self.held);
            let rest = self.frame(&backlog, &mut take);
            if self.backlog {
                self.held = [rest, data].concat();
                return;
            }
            // What is left of it is an unfinished line (or nothing).
            self.held = rest.to_vec();
        }
        let Some(data) = self.finish_held(data, &mut take) else { return };
        let rest = self.frame(data, &mut take);
        self.held = rest.to_vec();
    }

    /// Completes the line held from earlier input (or skips the rest of the one being
    /// discarded) with the start of `data`. Returns the rest of `data` to frame, or `None` if
    /// nothing is left to do: `data` held no `\n`, or `take` wants no more (the rest is then
    /// the backlog).
    fn finish_held<'d>(&mut self, data: &'d [u8], take: &mut impl FnMut(FrameRef<'_>) -> bool) -> Option<&'d [u8]> {
        if self.held.is_empty() && !self.discarding {
            return Some(data);
        }
        let Some(end) = memchr::memchr(b'\n', data) else {
            if !self.discarding {
                if self.held.len() + data.len() > self.max_len.saturating_add(1) {
                    self.held = Vec::new();
                    self.discarding = true;
                    take(FrameRef::TooLong);
                } else {
                    self.held.extend_from_slice(data);
                }
            }
            return None;
        };
        let (segment, rest) = (&data[..end], &data[end + 1..]);
        if std::mem::take(&mut self.discarding) {
            return Some(rest);
        }
        let mut line = std::mem::take(&mut self.held);
        let more = if line.len() + segment.len() > self.max_len.saturating_add(1) {
            take(FrameRef::TooLong)
        } else {
            line.extend_from_slice(segment);
            self.hand(&line, take)
        };
        if more {
            return Some(rest);
        }
        self.held = rest.to_vec();
        self.backlog = !rest.is_empty();
        None
    }

    /// Hands the complete lines of `data` to `take` while it wants more. Returns what is left:
    /// the unfinished line at the end if it took them all, else (and `backlog` is then set if
    /// anything is left) everything after the last line it took.
    fn frame<'d>(&mut self, mut data: &'d [u8], take: &mut impl FnMut(FrameRef<'_>) -> bool) -> &'d [u8] {
        while let Some(end) = memchr::memchr(b'\n', data) {
            let line = &data[..end];
            data = &data[end + 1..];
            if !self.hand(line, take) {
                self.backlog = !data.is_empty();
                return data;
            }
        }
        // An unfinished line: kept unless it is already too long.
        if data.len() > self.max_len.saturating_add(1) {
            self.discarding = true;
            take(FrameRef::TooLong);
            return &[];
        }
        data
    }

    /// Gives `take` one complete line (its `\n` already gone); returns whether it wants more.
    /// Empty lines are skipped.
    fn hand(&self, line: &[u8], take: &mut impl FnMut(FrameRef<'_>) -> bool) -> bool {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.len() > self.max_len {
            take(FrameRef::TooLong)
        } else if line.is_empty() {
            true
        } else {
            take(FrameRef::Line(line))
        }
    }

    /// Next complete frame. Lines end with "\n"; a "\r" before it is stripped; empty lines are
    /// skipped. A line longer than `max_len` yields [`Frame::TooLong`] exactly once and the
    /// rest of it (up to the next "\n") is discarded without being buffered; the stream goes
    /// on normally after it.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let ready = self.ready.as_mut()?;
        let frame = ready.pop_front();
        if ready.is_empty() {
            // Drained: a connection that goes quiet keeps no queue.
            self.ready = None;
        }
        frame
    }
}
