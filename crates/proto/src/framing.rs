//! [`LineReader`]: turns a byte stream into lines without doing any I/O itself.
//!
//! The transport feeds whatever it read with [`LineReader::push`] and then takes frames with
//! [`LineReader::next_frame`] until it returns `None`. An over-long line is reported once as
//! [`Frame::TooLong`] and skipped without being buffered, so a peer cannot make us hold more
//! than `max_len` bytes of an unfinished line, and one bad line never ends the stream.

use std::collections::VecDeque;

/// One unit of output from the [`LineReader`].
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete line, without its `"\n"` or `"\r\n"`. Never empty.
    Line(Vec<u8>),
    /// A line exceeded the limit; it has been (or is being) discarded.
    TooLong,
}

/// Sans-IO framer: feed bytes, pull complete lines. Bounded memory.
///
/// Memory held is at most `max_len + 1` bytes of the unfinished line plus the complete frames
/// that were pushed and not yet taken; callers that drain [`next_frame`](Self::next_frame)
/// after each push therefore hold at most one read buffer's worth of lines.
#[derive(Debug)]
pub struct LineReader {
    /// Longest line accepted, in bytes, excluding its `"\n"` / `"\r\n"`.
    max_len: usize,
    /// The unfinished line so far. Never longer than `max_len + 1` (one extra byte for a `\r`
    /// that may be stripped when the `\n` arrives).
    partial: Vec<u8>,
    /// Whether we are skipping the rest of a line already reported as too long.
    discarding: bool,
    /// Complete frames waiting to be taken.
    ready: VecDeque<Frame>,
}

impl LineReader {
    /// A reader that accepts lines of up to `max_len` bytes (excluding the line ending).
    /// Servers use [`MAX_LINE_LEN`](crate::MAX_LINE_LEN).
    pub fn new(max_len: usize) -> Self {
        LineReader { max_len, partial: Vec::new(), discarding: false, ready: VecDeque::new() }
    }

    /// Feeds bytes read from the peer.
    pub fn push(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            let (segment, terminated) = match memchr::memchr(b'\n', data) {
                Some(i) => {
                    let segment = &data[..i];
                    data = &data[i + 1..];
                    (segment, true)
                }
                None => {
                    let segment = data;
                    data = &[];
                    (segment, false)
                }
            };
            self.take_segment(segment, terminated);
        }
    }

    /// Handles one piece of a line; `terminated` says whether a `\n` followed it.
    fn take_segment(&mut self, segment: &[u8], terminated: bool) {
        if self.discarding {
            if terminated {
                self.discarding = false;
            }
            return;
        }
        if self.partial.len() + segment.len() > self.max_len.saturating_add(1) {
            self.partial.clear();
            self.ready.push_back(Frame::TooLong);
            self.discarding = !terminated;
            return;
        }
        self.partial.extend_from_slice(segment);
        if !terminated {
            return;
        }
        if self.partial.last() == Some(&b'\r') {
            self.partial.pop();
        }
        if self.partial.len() > self.max_len {
            self.partial.clear();
            self.ready.push_back(Frame::TooLong);
        } else if !self.partial.is_empty() {
            let line = std::mem::take(&mut self.partial);
            self.ready.push_back(Frame::Line(line));
        }
    }

    /// How many complete frames are waiting to be taken.
    pub fn frames_ready(&self) -> usize {
        self.ready.len()
    }

    /// Next complete frame. Lines end with "\n"; a "\r" before it is stripped; empty lines are
    /// skipped. A line longer than `max_len` yields [`Frame::TooLong`] exactly once and the
    /// rest of it (up to the next "\n") is discarded without being buffered; the stream goes
    /// on normally after it.
    pub fn next_frame(&mut self) -> Option<Frame> {
        let frame = self.ready.pop_front();
        if frame.is_none() && self.ready.capacity() > 0 {
            // Drained: a connection that goes quiet keeps no queue.
            self.ready = VecDeque::new();
        }
        frame
    }
}
