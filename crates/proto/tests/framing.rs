//! The sans-IO line framer.

use chinwag_proto::{Frame, LineReader};

fn drain(r: &mut LineReader) -> Vec<Frame> {
    std::iter::from_fn(|| r.next_frame()).collect()
}

fn line(s: &str) -> Frame {
    Frame::Line(s.as_bytes().to_vec())
}

#[test]
fn crlf_and_lf_and_empty_lines() {
    let mut r = LineReader::new(100);
    r.push(b"NICK a\r\nUSER b\n\r\n\n\rPING\r\n");
    assert_eq!(drain(&mut r), vec![line("NICK a"), line("USER b"), line("\rPING")]);
    assert_eq!(r.next_frame(), None);
}

#[test]
fn only_one_cr_is_stripped() {
    let mut r = LineReader::new(100);
    r.push(b"A\r\r\n");
    assert_eq!(drain(&mut r), vec![line("A\r")]);
}

#[test]
fn chunked_pushes() {
    let input = b"PRIVMSG #c :hello\r\nPING :x\r\n";
    for split in 0..input.len() {
        let mut r = LineReader::new(100);
        r.push(&input[..split]);
        let mut frames = drain(&mut r);
        r.push(&input[split..]);
        frames.extend(drain(&mut r));
        assert_eq!(frames, vec![line("PRIVMSG #c :hello"), line("PING :x")], "split at {split}");
    }

    let mut r = LineReader::new(100);
    for b in input {
        r.push(std::slice::from_ref(b));
    }
    assert_eq!(drain(&mut r), vec![line("PRIVMSG #c :hello"), line("PING :x")]);
}

#[test]
fn incomplete_line_is_held() {
    let mut r = LineReader::new(100);
    r.push(b"PING");
    assert_eq!(r.next_frame(), None);
    r.push(b"\r");
    assert_eq!(r.next_frame(), None);
    r.push(b"\n");
    assert_eq!(drain(&mut r), vec![line("PING")]);
}

#[test]
fn exact_limit() {
    let mut r = LineReader::new(5);
    r.push(b"12345\r\n12345\n123456\r\n");
    assert_eq!(drain(&mut r), vec![line("12345"), line("12345"), Frame::TooLong]);
}

#[test]
fn too_long_once_then_recovery() {
    let mut r = LineReader::new(10);
    r.push(b"OK\r\n");
    r.push(&[b'x'; 25]);
    assert_eq!(drain(&mut r), vec![line("OK"), Frame::TooLong]);
    // The rest of the long line arrives in several pieces and is not reported again.
    for _ in 0..100 {
        r.push(&[b'y'; 1000]);
        assert_eq!(r.next_frame(), None);
    }
    r.push(b"yyy\r\nAFTER\r\n");
    assert_eq!(drain(&mut r), vec![line("AFTER")]);
}

#[test]
fn too_long_in_one_push() {
    let mut r = LineReader::new(10);
    let mut data = b"A\r\n".to_vec();
    data.extend_from_slice(&[b'z'; 50]);
    data.extend_from_slice(b"\r\nB\r\n");
    data.extend_from_slice(&[b'z'; 11]);
    data.extend_from_slice(b"\nC\n");
    r.push(&data);
    assert_eq!(drain(&mut r), vec![line("A"), Frame::TooLong, line("B"), Frame::TooLong, line("C")]);
}

#[test]
fn too_long_detected_across_pushes() {
    let mut r = LineReader::new(10);
    r.push(b"0123456789");
    assert_eq!(r.next_frame(), None);
    r.push(b"\r");
    assert_eq!(r.next_frame(), None);
    r.push(b"0");
    assert_eq!(drain(&mut r), vec![Frame::TooLong]);
    r.push(b"more\nnext\n");
    assert_eq!(drain(&mut r), vec![line("next")]);
}

#[test]
fn bytes_are_passed_through() {
    let mut r = LineReader::new(10);
    r.push(b"\xff\x00\xfe\n");
    assert_eq!(drain(&mut r), vec![Frame::Line(vec![0xff, 0, 0xfe])]);
}

/// `feed` with a taker that stops every few lines sees exactly the frames `push` gives, for
/// input cut into pieces anywhere: lines whole in one piece are lent uncopied, the rest held.
#[test]
fn feeding_with_stops_gives_the_same_frames_as_pushing() {
    let max = 20;
    // A small deterministic generator: no dependency, same input every run.
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n) as usize
    };
    for round in 0..300 {
        let mut input = Vec::new();
        for _ in 0..next(40) {
            let len = [0, 1, 5, max - 1, max, max + 1, max + 2, 3 * max][next(8)];
            input.extend((0..len).map(|i| b'a' + (i % 26) as u8));
            input.extend_from_slice([&b"\n"[..], b"\r\n", b"\r", b""][next(4)]);
        }
        let mut pieces = Vec::new();
        let mut at = 0;
        while at < input.len() {
            let end = (at + 1 + next(2 * max as u64)).min(input.len());
            pieces.push(&input[at..end]);
            at = end;
        }

        let mut pushed = LineReader::new(max);
        let mut expected = Vec::new();
        for piece in &pieces {
            pushed.push(piece);
            expected.extend(drain(&mut pushed));
        }

        let stop_every = 1 + next(4);
        let mut fed = LineReader::new(max);
        let mut got = Vec::new();
        let mut taken = 0;
        let mut taker = |frame: chinwag_proto::FrameRef<'_>| {
            got.push(frame.to_frame());
            taken += 1;
            taken % stop_every != 0
        };
        for piece in &pieces {
            fed.feed(piece, &mut taker);
            let mut resumed = 0;
            while fed.has_backlog() {
                fed.feed(&[], &mut taker);
                resumed += 1;
                assert!(resumed <= piece.len(), "round {round}: the backlog must shrink");
            }
        }
        assert_eq!(got, expected, "round {round}, stopping every {stop_every}");
    }
}

/// A server keeps no framer for a connection whose framer is idle (it makes a fresh one for
/// the next read), so `is_idle` must be false whenever dropping it would lose input.
#[test]
fn a_reader_is_idle_only_when_a_fresh_one_would_do() {
    let mut r = LineReader::new(8);
    assert!(r.is_idle());
    r.feed(b"PING a\r\nPIN", |_| true);
    assert!(!r.is_idle(), "an unfinished line is held");
    r.feed(b"G b\r\n", |_| true);
    assert!(r.is_idle(), "the line was finished");
    r.feed(b"a line far too long", |_| true);
    assert!(!r.is_idle(), "the rest of a long line must still be skipped");
    r.feed(b" still\nPING\n", |_| true);
    assert!(r.is_idle());
    r.feed(b"one\ntwo\nthree\n", |_| false);
    assert!(r.has_backlog() && !r.is_idle(), "a taker that stopped leaves a backlog");
    while r.has_backlog() {
        r.feed(&[], |_| true);
    }
    assert!(r.is_idle());
    r.push(b"PING\n");
    assert!(!r.is_idle(), "a pushed frame waits");
    assert!(r.next_frame().is_some());
    assert!(r.is_idle());
}
