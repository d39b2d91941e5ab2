//! Casemapping, validated names, masks and hostnames beyond the shared vectors.

use std::collections::HashSet;

use chinwag_proto::{casefold, eq_fold, mask_match, split_source, ChannelName, NameError, Nick, Source};

const MAX: usize = 30;

#[test]
fn casemapping_is_ascii() {
    assert_eq!(casefold("NiCk[]\\~"), "nick[]\\~");
    assert_eq!(casefold("ÉCOLE"), "École");
    assert!(eq_fold("Foo[Bar]", "fOO[bAR]"));
    assert!(!eq_fold("foo[", "foo{"));
    assert!(!eq_fold("É", "é"));
}

#[test]
fn valid_nicks() {
    for n in ["a", "Alice", "[x]", "\\o|", "`_^{|}", "a-1", "x".repeat(MAX).as_str()] {
        let nick = Nick::parse(n, MAX).unwrap_or_else(|e| panic!("{n:?}: {e}"));
        assert_eq!(nick.as_str(), n);
        assert_eq!(nick.to_string(), n);
        assert_eq!(nick.folded(), casefold(n));
    }
}

#[test]
fn invalid_nicks() {
    let cases = [
        ("", NameError::Empty),
        ("1abc", NameError::BadStart),
        ("-abc", NameError::BadStart),
        ("a b", NameError::InvalidChar(' ')),
        ("a,b", NameError::InvalidChar(',')),
        ("a/b", NameError::InvalidChar('/')),
        ("a*", NameError::InvalidChar('*')),
        ("a?", NameError::InvalidChar('?')),
        ("a!b", NameError::InvalidChar('!')),
        ("a@b", NameError::InvalidChar('@')),
        ("a.b", NameError::InvalidChar('.')),
        ("a:b", NameError::InvalidChar(':')),
        (":a", NameError::InvalidChar(':')),
        ("#a", NameError::InvalidChar('#')),
        ("&a", NameError::InvalidChar('&')),
        ("né", NameError::InvalidChar('é')),
        ("a\0", NameError::InvalidChar('\0')),
    ];
    for (n, want) in cases {
        assert_eq!(Nick::parse(n, MAX).map(|_| ()), Err(want), "{n:?}");
    }
    let long = "x".repeat(MAX + 1);
    assert_eq!(Nick::parse(&long, MAX).map(|_| ()), Err(NameError::TooLong));
}

#[test]
fn nick_identity_is_folded() {
    let a = Nick::parse("Alice[1]", MAX).expect("valid");
    let b = Nick::parse("aLICE[1]", MAX).expect("valid");
    let c = Nick::parse("alice{1}", MAX).expect("valid");
    assert_eq!(a, b);
    assert_ne!(a, c);
    assert_eq!(a.cmp(&b), std::cmp::Ordering::Equal);
    assert_eq!(a.to_string(), "Alice[1]");
    let set: HashSet<Nick> = [a, b, c].into_iter().collect();
    assert_eq!(set.len(), 2);
}

#[test]
fn channel_names() {
    for n in ["#a", "#Chat", "#über-kanal", "#Ünï-CODE", "#a.b:c!@*?", "#&"] {
        let ch = ChannelName::parse(n, MAX).unwrap_or_else(|e| panic!("{n:?}: {e}"));
        assert_eq!(ch.as_str(), n);
        assert_eq!(ch.to_string(), n);
        assert_eq!(ch.folded(), casefold(n), "only ASCII letters fold");
    }
    let cases = [
        ("", NameError::Empty),
        ("#", NameError::Empty),
        ("a", NameError::BadStart),
        ("&a", NameError::BadStart),
        ("#a b", NameError::InvalidChar(' ')),
        ("#a,b", NameError::InvalidChar(',')),
        ("#a\x07", NameError::InvalidChar('\x07')),
        ("#a\0", NameError::InvalidChar('\0')),
        ("#a\r", NameError::InvalidChar('\r')),
        ("#a\n", NameError::InvalidChar('\n')),
        ("#a\x7f", NameError::InvalidChar('\x7f')),
    ];
    for (n, want) in cases {
        assert_eq!(ChannelName::parse(n, MAX).map(|_| ()), Err(want), "{n:?}");
    }
    let long = format!("#{}", "x".repeat(MAX));
    assert_eq!(ChannelName::parse(&long, MAX).map(|_| ()), Err(NameError::TooLong));
    // The limit is in bytes, not characters.
    let wide = format!("#{}", "é".repeat(MAX / 2));
    assert_eq!(ChannelName::parse(&wide, MAX).map(|_| ()), Err(NameError::TooLong));

    let a = ChannelName::parse("#Chat", MAX).expect("valid");
    let b = ChannelName::parse("#cHAT", MAX).expect("valid");
    assert_eq!(a, b);
    assert_eq!(a.folded(), "#chat");
}

#[test]
fn masks() {
    assert!(mask_match("*", ""));
    assert!(mask_match("", ""));
    assert!(!mask_match("", "a"));
    assert!(!mask_match("?", ""));
    assert!(mask_match("?", "é"));
    assert!(mask_match("**a**", "bab"));
    assert!(mask_match("*!*@*.EXAMPLE.com", "Nick!user@host.example.COM"));
    assert!(!mask_match("*!*@*.example.com", "nick!user@example.com"));
    assert!(mask_match("a*b?c", "aXXbYc"));
    assert!(!mask_match("a*b?c", "aXXbc"));
}

#[test]
fn hostile_masks_are_fast() {
    let mask = format!("{}b", "*a".repeat(200));
    let subject = "a".repeat(5000);
    let start = std::time::Instant::now();
    assert!(!mask_match(&mask, &subject));
    let matching = format!("{subject}b");
    assert!(mask_match(&mask, &matching));
    // Exponential backtracking would take effectively forever; quadratic-at-worst is
    // milliseconds even in debug builds.
    assert!(start.elapsed() < std::time::Duration::from_secs(2));
}

#[test]
fn source_edge_cases() {
    assert_eq!(split_source("irc.example.com"), Source { nick: "irc.example.com", user: None, host: None });
    assert_eq!(split_source("a@b!c"), Source { nick: "a", user: None, host: Some("b!c") });
    assert_eq!(split_source("n!u@h@x"), Source { nick: "n", user: Some("u"), host: Some("h@x") });
    assert_eq!(split_source(""), Source { nick: "", user: None, host: None });
}
