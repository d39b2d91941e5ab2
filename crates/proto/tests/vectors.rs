//! The shared IRC parser test vectors (ircdocs/parser-tests), run against this crate.
//!
//! The YAML files are vendored in `tests/irc-parser-tests/` so CI needs nothing outside the
//! repository. Every vector in the covered files is applied; none is skipped.

use std::path::PathBuf;

use chinwag_proto::{is_valid_hostname, mask_match, split_source, Message, Tag};
use serde::Deserialize;
use serde_yaml_ng::{Mapping, Value};

fn load<T: for<'de> Deserialize<'de>>(name: &str) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/irc-parser-tests").join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

#[derive(Deserialize)]
struct File<T> {
    tests: Vec<T>,
}

#[derive(Deserialize)]
struct Atoms {
    #[serde(default)]
    tags: Option<Mapping>,
    #[serde(default)]
    source: Option<String>,
    verb: String,
    #[serde(default)]
    params: Vec<String>,
}

impl Atoms {
    /// The tags in file order; YAML `~` and `""` both mean "no value".
    fn tags(&self) -> Vec<Tag> {
        let Some(map) = &self.tags else {
            return Vec::new();
        };
        map.iter()
            .map(|(k, v)| Tag {
                key: k.as_str().expect("tag key is a string").to_owned(),
                value: match v {
                    Value::Null => String::new(),
                    v => v.as_str().expect("tag value is a string").to_owned(),
                },
            })
            .collect()
    }
}

#[derive(Deserialize)]
struct SplitTest {
    input: String,
    atoms: Atoms,
}

#[test]
fn msg_split() {
    let file: File<SplitTest> = load("msg-split.yaml");
    assert!(!file.tests.is_empty());
    for t in &file.tests {
        let msg = Message::parse(&t.input).unwrap_or_else(|e| panic!("{:?} failed to parse: {e}", t.input));
        let mut got_tags = msg.tags.clone();
        let mut want_tags = t.atoms.tags();
        got_tags.sort_by(|a, b| a.key.cmp(&b.key));
        want_tags.sort_by(|a, b| a.key.cmp(&b.key));
        assert_eq!(got_tags, want_tags, "tags of {:?}", t.input);
        assert_eq!(msg.source, t.atoms.source, "source of {:?}", t.input);
        assert_eq!(msg.command, t.atoms.verb, "verb of {:?}", t.input);
        assert_eq!(msg.params, t.atoms.params, "params of {:?}", t.input);

        // Every vector also round-trips, and parses the same from bytes with a CRLF.
        let again = Message::parse(&msg.to_line());
        assert_eq!(again.as_ref(), Ok(&msg), "round-trip of {:?}", t.input);
        let with_crlf = format!("{}\r\n", t.input);
        assert_eq!(Message::parse_bytes(with_crlf.as_bytes()), Ok(msg));
    }
}

#[derive(Deserialize)]
struct JoinTest {
    desc: String,
    atoms: Atoms,
    matches: Vec<String>,
}

#[test]
fn msg_join() {
    let file: File<JoinTest> = load("msg-join.yaml");
    assert!(!file.tests.is_empty());
    for t in &file.tests {
        let mut msg = Message::new(t.atoms.verb.clone()).with_params(t.atoms.params.clone());
        msg.tags = t.atoms.tags();
        msg.source = t.atoms.source.clone();

        let line = msg.to_line();
        assert!(t.matches.contains(&line), "{}: wrote {line:?}, expected one of {:?}", t.desc, t.matches);
        assert_eq!(msg.to_string(), line);
        let mut wire = Vec::new();
        msg.write_to(&mut wire);
        assert_eq!(wire, format!("{line}\r\n").into_bytes());
        assert_eq!(Message::parse(&line), Ok(msg), "{}: reading back", t.desc);
    }
}

#[derive(Deserialize)]
struct UserhostTest {
    source: String,
    atoms: UserhostAtoms,
}

#[derive(Deserialize)]
struct UserhostAtoms {
    #[serde(default)]
    nick: String,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    host: Option<String>,
}

#[test]
fn userhost_split() {
    let file: File<UserhostTest> = load("userhost-split.yaml");
    assert!(!file.tests.is_empty());
    for t in &file.tests {
        let got = split_source(&t.source);
        assert_eq!(got.nick, t.atoms.nick, "nick of {:?}", t.source);
        assert_eq!(got.user, t.atoms.user.as_deref(), "user of {:?}", t.source);
        assert_eq!(got.host, t.atoms.host.as_deref(), "host of {:?}", t.source);
    }
}

#[derive(Deserialize)]
struct MaskTest {
    mask: String,
    #[serde(default)]
    matches: Vec<String>,
    #[serde(default)]
    fails: Vec<String>,
}

#[test]
fn mask_match_vectors() {
    let file: File<MaskTest> = load("mask-match.yaml");
    assert!(!file.tests.is_empty());
    for t in &file.tests {
        for s in &t.matches {
            assert!(mask_match(&t.mask, s), "{:?} should match {s:?}", t.mask);
        }
        for s in &t.fails {
            assert!(!mask_match(&t.mask, s), "{:?} should not match {s:?}", t.mask);
        }
    }
}

#[derive(Deserialize)]
struct HostTest {
    host: String,
    valid: bool,
}

#[test]
fn validate_hostname() {
    let file: File<HostTest> = load("validate-hostname.yaml");
    assert!(!file.tests.is_empty());
    for t in &file.tests {
        assert_eq!(is_valid_hostname(&t.host), t.valid, "{:?}", t.host);
    }
}
