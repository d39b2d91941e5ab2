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
