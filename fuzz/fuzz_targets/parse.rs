//! Feeds arbitrary bytes to the parser and the framer and checks that nothing panics and that
//! every line that parses round-trips: `parse(m.to_line()) == m`.
//! Mirrors `crates/proto/tests/roundtrip.rs`, which runs the same property on stable.

#![no_main]

use chinwag_proto::{Frame, LineReader, Message, MAX_LINE_LEN};
use libfuzzer_sys::fuzz_target;

fn check_line(data: &[u8]) {
    let Ok(msg) = Message::parse_bytes(data) else {
        return;
    };
    let line = msg.to_line();
    assert_eq!(Message::parse(&line).as_ref(), Ok(&msg), "wrote {line:?}");
    let mut wire = Vec::new();
    msg.write_to(&mut wire);
    assert_eq!(wire, format!("{line}\r\n").into_bytes());
}

fuzz_target!(|data: &[u8]| {
    check_line(data);

    // The first byte picks a small line limit (so TooLong is reached) and a chunk size.
    let Some((&knob, stream)) = data.split_first() else {
        return;
    };
    for max_len in [usize::from(knob % 64) + 1, MAX_LINE_LEN] {
        let chunk = usize::from(knob >> 4) + 1;
        let mut reader = LineReader::new(max_len);
        for piece in stream.chunks(chunk) {
            reader.push(piece);
            while let Some(frame) = reader.next_frame() {
                if let Frame::Line(line) = frame {
                    assert!(!line.is_empty() && line.len() <= max_len);
                    assert!(!line.contains(&b'\n'));
                    check_line(&line);
                }
            }
        }
    }
});
