//! Parsing and serialization beyond the shared vectors: limits, errors, tags, builders.

use chinwag_proto::{
    escape_tag_value, unescape_tag_value, Message, ParseError, Tag, MAX_BODY_LEN, MAX_CLIENT_TAGS_LEN, MAX_PARAMS,
    MAX_TAGS_LEN,
};

/// A tag section (`@...` plus its space) of exactly `len` bytes made of one tag `key=vvvv`.
fn tag_section(key: &str, len: usize) -> String {
    let value_len = len - 1 - key.len() - 1 - 1;
    format!("@{key}={} ", "v".repeat(value_len))
}

#[test]
fn body_limit_counts_the_crlf() {
    let max = MAX_BODY_LEN - 2;
    let ok = format!("PRIVMSG #c :{}", "x".repeat(max - "PRIVMSG #c :".len()));
    assert_eq!(ok.len(), max);
    assert!(Message::parse(&ok).is_ok());
    assert!(Message::parse(&format!("{ok}\r\n")).is_ok());
    let long = format!("{ok}x");
    assert_eq!(Message::parse(&long), Err(ParseError::BodyTooLong));
    assert_eq!(ParseError::BodyTooLong.to_string(), "Input line was too long");
}

#[test]
fn body_limit_excludes_the_tags() {
    let body = format!("PRIVMSG #c :{}", "x".repeat(MAX_BODY_LEN - 2 - 12));
    let line = format!("{}{body}", tag_section("a", 4000));
    assert!(Message::parse(&line).is_ok());
}

#[test]
fn tags_limit() {
    let ok = format!("{}PING x", tag_section("a", MAX_TAGS_LEN));
    assert!(Message::parse(&ok).is_ok());
    let long = format!("{}PING x", tag_section("a", MAX_TAGS_LEN + 1));
    assert_eq!(Message::parse(&long), Err(ParseError::TagsTooLong));
}

#[test]
fn client_tags_limit() {
    // Two client tags and the ';' between them, exactly at the limit.
    let first = format!("+a={}", "v".repeat(1000));
    let second_len = MAX_CLIENT_TAGS_LEN - first.len() - 1;
    let second = format!("+b={}", "v".repeat(second_len - 3));
    let ok = format!("@{first};{second} TAGMSG #c");
    assert!(Message::parse(&ok).is_ok());
    let long = format!("@{first};{second}v TAGMSG #c");
    assert_eq!(Message::parse(&long), Err(ParseError::ClientTagsTooLong));

    // Server tags do not count towards the client-only budget.
    let server = format!("s={}", "v".repeat(3000));
    let ok = format!("@{first};{server};{second} TAGMSG #c");
    assert!(Message::parse(&ok).is_ok());
}

/// A line from a client may hold 4,094 bytes of tag data in all, client-only tags or not; the
/// general parser (a client reading a server's lines) allows the full 8,191-byte section.
#[test]
fn a_clients_whole_tag_section_has_half_the_budget() {
    let at_limit = format!("@foo=bar;+baz={} TAGMSG #c", "a".repeat(4081));
    assert_eq!(at_limit.find("TAGMSG"), Some(MAX_CLIENT_TAGS_LEN + 2));
    assert!(Message::parse_client(&at_limit).is_ok());
    assert!(Message::parse_client_bytes(at_limit.as_bytes()).is_ok());
    let over = format!("@foo=bar;+baz={} TAGMSG #c", "a".repeat(4082));
    assert_eq!(Message::parse_client(&over), Err(ParseError::ClientTagsTooLong));
    assert_eq!(Message::parse_client_bytes(over.as_bytes()), Err(ParseError::ClientTagsTooLong));
    assert!(Message::parse(&over).is_ok(), "a server's line may carry more");
    let server_tags = format!("@s={} PING x", "v".repeat(5000));
    assert!(Message::parse(&server_tags).is_ok());
    assert_eq!(Message::parse_client(&server_tags), Err(ParseError::ClientTagsTooLong));
}

#[test]
fn params_limit() {
    let ok = format!("CMD{}", " p".repeat(MAX_PARAMS));
    assert_eq!(Message::parse(&ok).map(|m| m.params.len()), Ok(MAX_PARAMS));
    let ok_trailing = format!("CMD{} :last one", " p".repeat(MAX_PARAMS - 1));
    assert_eq!(Message::parse(&ok_trailing).map(|m| m.params.len()), Ok(MAX_PARAMS));
    let many = format!("CMD{}", " p".repeat(MAX_PARAMS + 1));
    assert_eq!(Message::parse(&many), Err(ParseError::TooManyParams));
    let many_trailing = format!("CMD{} :last", " p".repeat(MAX_PARAMS));
    assert_eq!(Message::parse(&many_trailing), Err(ParseError::TooManyParams));
}

#[test]
fn structural_errors() {
    assert_eq!(Message::parse(""), Err(ParseError::Empty));
    assert_eq!(Message::parse("\r\n"), Err(ParseError::Empty));
    assert_eq!(Message::parse("   "), Err(ParseError::Empty));
    assert_eq!(Message::parse("@a=b"), Err(ParseError::NoCommand));
    assert_eq!(Message::parse("@a=b  "), Err(ParseError::NoCommand));
    assert_eq!(Message::parse(":src"), Err(ParseError::NoCommand));
    assert_eq!(Message::parse(":src   "), Err(ParseError::NoCommand));
    assert_eq!(Message::parse(": PING"), Err(ParseError::EmptySource));
    assert_eq!(Message::parse(":src :PING"), Err(ParseError::InvalidCommand));
    assert_eq!(Message::parse("@ @a b"), Err(ParseError::InvalidCommand));
    assert_eq!(Message::parse("PING a\rb"), Err(ParseError::ForbiddenChar));
    assert_eq!(Message::parse("PING a\nb"), Err(ParseError::ForbiddenChar));
    assert_eq!(Message::parse("PING a\0b"), Err(ParseError::ForbiddenChar));
    assert_eq!(Message::parse("PING a\r\r\n"), Err(ParseError::ForbiddenChar));
    assert_eq!(Message::parse("@=v PING"), Err(ParseError::InvalidTag));
    assert_eq!(Message::parse("@+ PING"), Err(ParseError::InvalidTag));
    assert_eq!(Message::parse("@a_b PING"), Err(ParseError::InvalidTag));
}

#[test]
fn line_terminators_are_stripped_once() {
    for line in ["PING x", "PING x\r\n", "PING x\n", "PING x\r"] {
        assert_eq!(Message::parse(line), Ok(Message::new("PING").with_param("x")), "{line:?}");
    }
}

#[test]
fn invalid_utf8() {
    assert_eq!(Message::parse_bytes(b"PRIVMSG #c :caf\xe9\r\n"), Err(ParseError::InvalidUtf8));
    assert_eq!(
        Message::parse_bytes("PRIVMSG #c :café\r\n".as_bytes()),
        Ok(Message::new("PRIVMSG").with_params(["#c", "café"]))
    );
}

#[test]
fn leniency() {
    // Leading spaces, empty tag items and an empty tag section are tolerated.
    assert_eq!(Message::parse("  PING x"), Ok(Message::new("PING").with_param("x")));
    assert_eq!(Message::parse("@a;;b=1; PING"), Ok(Message::new("PING").with_tag("a", "").with_tag("b", "1")));
    assert_eq!(Message::parse("@ PING"), Ok(Message::new("PING")));
    assert_eq!(Message::parse("@+example.com/x-y=z PING"), Ok(Message::new("PING").with_tag("+example.com/x-y", "z")));
}

#[test]
fn duplicate_tags_keep_the_last_in_wire_order() {
    let msg = Message::parse("@a=1;b=2;a=3 X").expect("valid");
    assert_eq!(msg.tags, vec![Tag { key: "b".into(), value: "2".into() }, Tag { key: "a".into(), value: "3".into() },]);
    assert_eq!(msg.tag("a"), Some("3"));
    assert_eq!(msg.tag("c"), None);
}

#[test]
fn tag_escaping() {
    assert_eq!(escape_tag_value("a; b\\c\r\nd"), "a\\:\\sb\\\\c\\r\\nd");
    assert_eq!(unescape_tag_value("a\\:\\sb\\\\c\\r\\nd"), "a; b\\c\r\nd");
    assert_eq!(unescape_tag_value("trailing\\"), "trailing");
    assert_eq!(unescape_tag_value("\\x\\1"), "x1");
    assert_eq!(unescape_tag_value("\\\\n"), "\\n");
    assert_eq!(unescape_tag_value("é\\é"), "éé");
    for v in ["", "plain", "; \\\r\n", "\\s\\:", "ünï ćødé;"] {
        assert_eq!(unescape_tag_value(&escape_tag_value(v)), v);
    }
}

#[test]
fn serialization() {
    let msg = Message::new("PRIVMSG")
        .with_source("nick!user@host")
        .with_tag("time", "2024-01-01T00:00:00.000Z")
        .with_tag("+draft/reply", "")
        .with_tag("msgid", "a b;c")
        .with_params(["#chan", "hello world"]);
    assert_eq!(
        msg.to_line(),
        "@time=2024-01-01T00:00:00.000Z;+draft/reply;msgid=a\\sb\\:c \
         :nick!user@host PRIVMSG #chan :hello world"
    );
    assert_eq!(Message::parse(&msg.to_line()), Ok(msg));

    assert_eq!(Message::new("PING").with_param("x").to_line(), "PING x");
    assert_eq!(Message::new("PING").with_param(":x").to_line(), "PING ::x");
    assert_eq!(Message::new("PING").with_param("").to_line(), "PING :");
    assert_eq!(Message::new("QUIT").to_line(), "QUIT");
}

#[test]
fn serialization_cannot_inject_lines() {
    let msg = Message::new("PRIVMSG")
        .with_source("evil\r\n")
        .with_tag("k\n", "v\r\n")
        .with_params(["#c\0", "hi\r\nQUIT :bye"]);
    let mut wire = Vec::new();
    msg.write_to(&mut wire);
    assert_eq!(wire, b"@k=v\\r\\n :evil PRIVMSG #c :hiQUIT :bye\r\n");
}

#[test]
fn error_messages_are_human() {
    for e in [
        ParseError::Empty,
        ParseError::InvalidUtf8,
        ParseError::NoCommand,
        ParseError::BodyTooLong,
        ParseError::TagsTooLong,
        ParseError::ClientTagsTooLong,
        ParseError::TooManyParams,
        ParseError::InvalidTag,
        ParseError::ForbiddenChar,
        ParseError::EmptySource,
        ParseError::InvalidCommand,
    ] {
        let text = e.to_string();
        assert!(text.chars().next().is_some_and(char::is_uppercase), "{text}");
    }
}

/// Long lines are checked for UTF-8 another way than short ones (SIMD from 64 bytes): both
/// must agree with the standard library, wherever a bad or a multi-byte sequence falls.
#[test]
fn utf8_is_checked_the_same_in_lines_of_every_length() {
    let pieces: [&[u8]; 7] =
        [b"\xe9", b"\xc3\xa9", b"\xf0\x9f\xa6\x80", b"\xf0\x9f\xa6", b"\xed\xa0\x80", b"\xc0\xaf", b"a"];
    for len in [10usize, 63, 64, 65, 100, 127, 128, 200, 400] {
        for piece in pieces {
            for at in [0, len / 3, len.saturating_sub(4), len] {
                let mut text = vec![b'x'; len];
                text.splice(at.min(len)..at.min(len), piece.iter().copied());
                let mut line = b"PRIVMSG #c :".to_vec();
                line.extend_from_slice(&text);
                let valid = std::str::from_utf8(&line).is_ok();
                let parsed = Message::parse_bytes(&line);
                assert_eq!(parsed.is_ok(), valid, "len {len}, piece {piece:x?} at {at}: {parsed:?}");
                if !valid {
                    assert_eq!(parsed, Err(ParseError::InvalidUtf8));
                }
            }
        }
    }
}
