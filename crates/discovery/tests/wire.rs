//! The datagram format: round trips, size bounds, and every kind of bad input rejected
//! without a panic.

use chinwag_discovery::wire::{
    decode, fingerprint_hex, parse_fingerprint, sanitize, Answer, AnswerKind, DecodeError, Packet, Probe, MAGIC,
    MAX_DATAGRAM, MAX_TOPIC_BYTES, PROBE_LEN, VERSION,
};
use chinwag_discovery::{Listener, Room, Transport};

fn room(i: usize, topic: &str) -> Room {
    Room {
        name: format!("#room{i}"),
        topic: topic.to_owned(),
        members: i as u32,
        invite_only: i & 1 == 0,
        key_required: i == 3,
    }
}

fn answer(rooms: usize) -> Answer {
    Answer {
        kind: AnswerKind::Reply,
        nonce: 0x0102_0304_0506_0708,
        instance: 42,
        name: "chinwag.local".into(),
        version: "0.1.0".into(),
        fingerprint: Some([0xAB; 32]),
        users_online: 7,
        listeners: vec![
            Listener { transport: Transport::Tls, addr: "0.0.0.0:6697".parse().expect("addr") },
            Listener { transport: Transport::Plaintext, addr: "[fe80::1]:6667".parse().expect("addr") },
            Listener { transport: Transport::Other(77), addr: "10.0.0.1:1".parse().expect("addr") },
        ],
        rooms_total: rooms as u16,
        first_room: 0,
        rooms: (0..rooms).map(|i| room(i, "a topic")).collect(),
    }
}

#[test]
fn a_probe_round_trips_and_is_padded_to_the_answer_size_it_allows() {
    let p = Probe { nonce: 99, first_room: 12 };
    let bytes = p.encode();
    assert_eq!(bytes.len(), PROBE_LEN);
    assert_eq!(&bytes[..4], &MAGIC);
    assert_eq!(decode(&bytes), Ok(Packet::Probe(p)));
    assert_eq!(p.encode_padded(0).len(), 16, "never shorter than its fields");
    assert_eq!(p.encode_padded(100_000).len(), MAX_DATAGRAM, "never longer than a datagram");
    assert_eq!(decode(&p.encode_padded(0)), Ok(Packet::Probe(p)));
}

#[test]
fn an_answer_round_trips() {
    for kind in [AnswerKind::Reply, AnswerKind::Announce] {
        let a = Answer { kind, ..answer(3) };
        let (bytes, kept) = a.encode(MAX_DATAGRAM).expect("fits");
        assert_eq!(kept, 3);
        assert_eq!(decode(&bytes), Ok(Packet::Answer(a)));
    }
    let bare = Answer { fingerprint: None, listeners: vec![], rooms: vec![], ..answer(0) };
    let (bytes, _) = bare.encode(MAX_DATAGRAM).expect("fits");
    assert_eq!(decode(&bytes), Ok(Packet::Answer(bare)));
}

#[test]
fn an_answer_never_exceeds_its_budget_and_keeps_the_rooms_that_fit() {
    let a = answer(200);
    let (full, kept_full) = a.encode(MAX_DATAGRAM).expect("fits");
    assert!(full.len() <= MAX_DATAGRAM);
    assert!(kept_full > 10 && kept_full < 200, "kept {kept_full}");
    for budget in [0, 10, 60, 100, 150, 300, 700, 1199, 1200, 5000] {
        match a.encode(budget) {
            Some((bytes, kept)) => {
                assert!(bytes.len() <= budget.min(MAX_DATAGRAM), "budget {budget}: {} bytes", bytes.len());
                let Ok(Packet::Answer(back)) = decode(&bytes) else { panic!("budget {budget}: does not decode") };
                assert_eq!(back.rooms.len(), kept);
                assert_eq!(back.rooms[..], a.rooms[..kept]);
                assert_eq!(back.rooms_total, 200, "the total says how many more there are");
            }
            None => assert!(budget < 150, "budget {budget} should fit the answer without rooms"),
        }
    }
}

#[test]
fn strings_are_cut_on_char_boundaries_and_lose_control_characters() {
    let long = "é".repeat(200);
    let mut a = answer(1);
    a.name = format!("evil\x1b[2J\x07name{long}");
    a.rooms[0].topic = format!("\x02bold\x02 and \x0304colour {long}");
    let (bytes, _) = a.encode(MAX_DATAGRAM).expect("fits");
    let Ok(Packet::Answer(back)) = decode(&bytes) else { panic!("does not decode") };
    assert!(back.name.starts_with("evil[2Jname"), "{}", back.name);
    assert!(!back.name.chars().any(char::is_control));
    assert!(back.name.len() <= 64);
    assert!(back.rooms[0].topic.starts_with("bold and 04colour"));
    assert!(back.rooms[0].topic.len() <= MAX_TOPIC_BYTES);
    assert_eq!(sanitize("ab\u{1b}c", 100), "abc");
    assert_eq!(sanitize("ééé", 5), "éé");
}

#[test]
fn foreign_wrong_version_and_unknown_kinds_are_rejected() {
    let good = Probe { nonce: 1, first_room: 0 }.encode();
    let mut foreign = good.clone();
    foreign[0] = b'X';
    assert_eq!(decode(&foreign), Err(DecodeError::ForeignMagic));
    assert_eq!(decode(b"M-SEARCH * HTTP/1.1\r\n"), Err(DecodeError::ForeignMagic));
    let mut newer = good.clone();
    newer[4] = VERSION + 1;
    assert_eq!(decode(&newer), Err(DecodeError::UnsupportedVersion(VERSION + 1)));
    let mut kind = good.clone();
    kind[5] = 9;
    assert_eq!(decode(&kind), Err(DecodeError::UnknownKind(9)));
}

#[test]
fn oversized_and_truncated_datagrams_are_rejected() {
    let mut big = Probe { nonce: 1, first_room: 0 }.encode();
    big.resize(MAX_DATAGRAM + 1, 0);
    assert_eq!(decode(&big), Err(DecodeError::TooLarge(MAX_DATAGRAM + 1)));
    assert_eq!(decode(&[]), Err(DecodeError::Truncated));
    assert_eq!(decode(&MAGIC), Err(DecodeError::Truncated));
    let (bytes, _) = answer(3).encode(MAX_DATAGRAM).expect("fits");
    for cut in 0..bytes.len() {
        assert!(decode(&bytes[..cut]).is_err(), "a prefix of {cut} bytes decoded");
    }
    let mut trailing = bytes.clone();
    trailing.push(0);
    assert_eq!(decode(&trailing), Err(DecodeError::TrailingBytes(1)));
}

#[test]
fn malformed_fields_are_rejected() {
    let (bytes, _) = answer(1).encode(MAX_DATAGRAM).expect("fits");
    // The name's length byte is at 22 (header 6, nonce 8, instance 8), its text follows.
    let mut bad_utf8 = bytes.clone();
    bad_utf8[23] = 0xff;
    assert_eq!(decode(&bad_utf8), Err(DecodeError::BadString));
    let mut control = bytes.clone();
    control[23] = 0x1b;
    assert_eq!(decode(&control), Err(DecodeError::BadString));
    let name_end = 23 + "chinwag.local".len();
    let fp_len_at = name_end + 1 + "0.1.0".len();
    let mut fp = bytes.clone();
    fp[fp_len_at] = 5;
    assert!(decode(&fp).is_err());
    // First listener: after fingerprint (1 + 32), users (4) and the count (1), transport 1 byte.
    let family_at = fp_len_at + 1 + 32 + 4 + 1 + 1;
    assert_eq!(bytes[family_at], 4);
    let mut family = bytes.clone();
    family[family_at] = 5;
    assert_eq!(decode(&family), Err(DecodeError::BadField("address family")));
}

#[test]
fn any_bytes_decode_without_panicking() {
    // A deterministic pseudo-random walk over inputs, most of them with our header so that the
    // field decoders are exercised, plus mutations of a valid answer.
    let (valid, _) = answer(5).encode(MAX_DATAGRAM).expect("fits");
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..20_000 {
        let mut buf = if i % 2 == 0 {
            let len = (next() % 1300) as usize;
            let mut b: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            if b.len() >= 6 && i % 4 == 0 {
                b[..4].copy_from_slice(&MAGIC);
                b[4] = VERSION;
                b[5] = 2 + (next() % 2) as u8;
            }
            b
        } else {
            valid.clone()
        };
        if i % 2 == 1 {
            for _ in 0..1 + next() % 4 {
                let at = (next() as usize) % buf.len();
                buf[at] = next() as u8;
            }
        }
        let _ = decode(&buf);
    }
}

#[test]
fn fingerprints_print_and_parse() {
    let fp = [0x3F; 32];
    let text = fingerprint_hex(&fp);
    assert_eq!(text.len(), 32 * 3 - 1);
    assert!(text.starts_with("3F:3F:"));
    assert_eq!(parse_fingerprint(&text), Some(fp));
    assert_eq!(parse_fingerprint(&text.replace(':', "").to_lowercase()), Some(fp));
    assert_eq!(parse_fingerprint("3F:3F"), None);
    assert_eq!(parse_fingerprint(&"+F".repeat(32)), None);
}
