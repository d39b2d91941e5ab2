//! The round-trip property the fuzz target checks, over a bounded deterministic set of
//! generated inputs so that plain `cargo test` covers it too: every line that parses serializes
//! to a line that parses back to the same message.

use chinwag_proto::{Frame, LineReader, Message, MAX_BODY_LEN, MAX_TAGS_LEN};

/// How many inputs to generate. Enough to hit every branch of the parser many times, small
/// enough to run in well under a second in debug builds.
const CASES: usize = 20_000;

/// Pieces that inputs are assembled from: IRC syntax, escapes, the forbidden bytes, non-ASCII
/// and invalid UTF-8.
const PIECES: &[&[u8]] = &[
    b"@",
    b":",
    b" ",
    b"  ",
    b";",
    b"=",
    b"\\",
    b"\\s",
    b"\\:",
    b"\\n",
    b"\r",
    b"\n",
    b"\r\n",
    b"\0",
    b"\t",
    b"+",
    b"/",
    b"-",
    b".",
    b"a",
    b"Z",
    b"0",
    b"PRIVMSG",
    b"#chan",
    b"nick!u@h",
    b"+draft/reply=",
    b"time=",
    b"\xc3\xa9",
    b"\xff",
    b"\xe2\x82",
    b"*",
    b"?",
    b",",
];

/// xorshift64*: tiny, deterministic, and good enough to pick pieces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn generate(rng: &mut Rng) -> Vec<u8> {
    let mut out = Vec::new();
    // Usually short; sometimes long enough to cross the body and tag limits.
    let pieces = match rng.below(20) {
        0 => 200 + rng.below(MAX_TAGS_LEN),
        1 => MAX_BODY_LEN / 2 + rng.below(MAX_BODY_LEN),
        _ => rng.below(40),
    };
    if rng.below(3) == 0 {
        out.push(b'@');
    }
    for _ in 0..pieces {
        out.extend_from_slice(PIECES[rng.below(PIECES.len())]);
    }
    out
}

/// The property itself; mirrors `fuzz/fuzz_targets/parse.rs`.
fn check_line(data: &[u8]) {
    let Ok(msg) = Message::parse_bytes(data) else {
        return;
    };
    let line = msg.to_line();
    assert_eq!(Message::parse(&line).as_ref(), Ok(&msg), "input {:?} wrote {line:?}", String::from_utf8_lossy(data));
    let mut wire = Vec::new();
    msg.write_to(&mut wire);
    assert_eq!(wire, format!("{line}\r\n").into_bytes());
}

#[test]
fn generated_lines_round_trip() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut parsed = 0;
    for _ in 0..CASES {
        let data = generate(&mut rng);
        if Message::parse_bytes(&data).is_ok() {
            parsed += 1;
        }
        check_line(&data);
    }
    // Guard against a generator that only ever produces garbage.
    assert!(parsed > CASES / 20, "only {parsed} of {CASES} inputs parsed");
}

#[test]
fn generated_streams_frame_and_round_trip() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    for _ in 0..CASES / 10 {
        let max_len = 1 + rng.below(600);
        let mut reader = LineReader::new(max_len);
        let mut stream = Vec::new();
        for _ in 0..rng.below(8) {
            stream.extend(generate(&mut rng));
            stream.extend_from_slice(b"\r\n");
        }
        let mut rest = stream.as_slice();
        while !rest.is_empty() {
            let n = 1 + rng.below(rest.len().min(700));
            reader.push(&rest[..n]);
            rest = &rest[n..];
            while let Some(frame) = reader.next_frame() {
                if let Frame::Line(line) = frame {
                    assert!(!line.is_empty() && line.len() <= max_len);
                    assert!(!line.contains(&b'\n'));
                    check_line(&line);
                }
            }
        }
    }
}

/// Writing with extra tags gives the bytes of the message with those tags added, escapes and
/// valueless tags included, after the message's own tags and with none at all.
#[test]
fn writing_with_extra_tags_is_writing_the_tagged_message() {
    let plain = Message::parse("PRIVMSG #room :hi there").expect("parses");
    let tagged = Message::parse("@+draft/reply=abc;+flag :n!u@h PRIVMSG bob :semi;colon\\ ok").expect("parses");
    let extra = [("msgid", "x y;z\\"), ("time", "2026-11-30T04:00:00.000Z"), ("+empty", "")];
    for msg in [plain, tagged] {
        for n in 0..=extra.len() {
            let mut expected = msg.clone();
            for (k, v) in &extra[..n] {
                expected = expected.with_tag(*k, *v);
            }
            let mut want = Vec::new();
            expected.write_to(&mut want);
            let mut got = Vec::new();
            msg.write_with_tags(None, extra[..n].iter().copied(), &mut got);
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
            assert_eq!(Message::parse_bytes(&got).expect("reads back"), expected);
            // The same with a source given in place of the message's own.
            let sourced = expected.clone().with_source("other!u@h");
            let (mut want, mut got) = (Vec::new(), Vec::new());
            sourced.write_to(&mut want);
            msg.write_with_tags(Some("other!u@h"), extra[..n].iter().copied(), &mut got);
            assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(&want));
        }
    }
}
