//! The byte form of what crosses nodes: varint numbers, length-prefixed strings, a version
//! byte first. Decoding takes untrusted bytes and answers `None` on anything malformed (short,
//! too long, not UTF-8); it never panics. Trailing bytes after the last field a reader knows
//! are ignored, so a later minor version may add fields at the end.

use bytes::Bytes;

/// The version byte every payload starts with. A payload of another version is ignored.
pub(crate) const VERSION: u8 = 1;

/// The longest string a payload may hold: the text of the largest multiline message a server
/// accepts (a realname, tags and the like are far shorter).
const MAX_STRING: usize = crate::config::MAX_MULTILINE_BYTES;

/// The largest payload the core makes. The largest is a room or private message of
/// [`MAX_MULTILINE_BYTES`](crate::MAX_MULTILINE_BYTES) of text, carried once (as its lines),
/// with at most 4 KiB of tags: under 80 KiB. The server checks that the bus carries this much
/// (`chinwag_bus::MAX_PAYLOAD`).
pub const MAX_PAYLOAD: usize = 96 * 1024;

/// Builds a payload.
#[derive(Debug, Default)]
pub(crate) struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    /// A payload of `kind`, after the version byte.
    pub fn new(kind: u8) -> Self {
        Writer { buf: vec![VERSION, kind] }
    }

    pub fn u64(&mut self, mut v: u64) -> &mut Self {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.buf.push(byte);
                return self;
            }
            self.buf.push(byte | 0x80);
        }
    }

    pub fn bool(&mut self, v: bool) -> &mut Self {
        self.buf.push(u8::from(v));
        self
    }

    pub fn str(&mut self, s: &str) -> &mut Self {
        self.u64(s.len() as u64);
        self.buf.extend_from_slice(s.as_bytes());
        self
    }

    pub fn opt(&mut self, s: Option<&str>) -> &mut Self {
        match s {
            Some(s) => self.bool(true).str(s),
            None => self.bool(false),
        }
    }

    pub fn finish(&mut self) -> Bytes {
        Bytes::from(std::mem::take(&mut self.buf))
    }
}

/// Reads a payload's fields in order.
#[derive(Debug)]
pub(crate) struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    /// The payload's kind and a reader of its fields; `None` for another version or too short.
    pub fn open(payload: &'a [u8]) -> Option<(u8, Reader<'a>)> {
        match payload {
            [VERSION, kind, rest @ ..] => Some((*kind, Reader { rest })),
            _ => None,
        }
    }

    pub fn u64(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self.rest.split_first()?;
            self.rest = rest;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return None;
            }
            v |= bits << shift;
            if byte & 0x80 == 0 {
                return Some(v);
            }
        }
        None
    }

    pub fn bool(&mut self) -> Option<bool> {
        let (&byte, rest) = self.rest.split_first()?;
        self.rest = rest;
        match byte {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        }
    }

    pub fn str(&mut self) -> Option<String> {
        let len = usize::try_from(self.u64()?).ok().filter(|l| *l <= MAX_STRING && *l <= self.rest.len())?;
        let (head, rest) = self.rest.split_at(len);
        self.rest = rest;
        std::str::from_utf8(head).ok().map(str::to_owned)
    }

    /// Whether every field has been read: fields a later version added at the end are absent
    /// from an older payload.
    pub fn at_end(&self) -> bool {
        self.rest.is_empty()
    }

    /// An optional string a later version added at the end: absent when the payload ends.
    pub fn opt_last(&mut self) -> Option<Option<String>> {
        if self.rest.is_empty() {
            Some(None)
        } else {
            self.opt()
        }
    }

    pub fn opt(&mut self) -> Option<Option<String>> {
        if self.bool()? {
            self.str().map(Some)
        } else {
            Some(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_short_input_is_refused() {
        let bytes =
            Writer::new(7).u64(0).u64(300).u64(u64::MAX).bool(true).str("héllo").opt(None).opt(Some("x")).finish();
        let (kind, mut r) = Reader::open(&bytes).expect("a whole payload opens");
        assert_eq!(kind, 7);
        assert_eq!((r.u64(), r.u64(), r.u64()), (Some(0), Some(300), Some(u64::MAX)));
        assert_eq!(r.bool(), Some(true));
        assert_eq!(r.str().as_deref(), Some("héllo"));
        assert_eq!(r.opt(), Some(None));
        assert_eq!(r.opt(), Some(Some("x".into())));
        for cut in 0..bytes.len() {
            let Some((_, mut r)) = Reader::open(&bytes[..cut]) else { continue };
            let all = (|| Some((r.u64()?, r.u64()?, r.u64()?, r.bool()?, r.str()?, r.opt()?, r.opt()?)))();
            assert!(all.is_none(), "a payload cut at {cut} read as whole");
        }
        // An overlong varint and a length past the end.
        assert_eq!(Reader { rest: &[0xff; 11] }.u64(), None);
        assert_eq!(Reader { rest: &[5, b'a'] }.str(), None);
    }
}
