//! Names on the bus: cluster and node names (validated), and the topics, log keys and claim
//! keys made from rooms and nicks (escaped, so that any room name is one safe token).

use std::fmt;

/// The longest cluster or node name.
pub const MAX_NAME: usize = 32;

/// A cluster or node name: 1 to [`MAX_NAME`] of `a-z`, `0-9` and `-`, so that it is one token
/// in a NATS subject and a valid stream and bucket name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Name(String);

/// Why a cluster or node name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a valid cluster or node name: use 1 to {MAX_NAME} of a-z, 0-9 and '-'")]
pub struct NameError(pub String);

impl Name {
    /// Validates `name`.
    pub fn new(name: &str) -> Result<Name, NameError> {
        let valid = !name.is_empty()
            && name.len() <= MAX_NAME
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if valid {
            Ok(Name(name.to_owned()))
        } else {
            Err(NameError(name.to_owned()))
        }
    }

    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Makes any string one token that is safe in a NATS subject and a KV key: ASCII letters, digits,
/// `-` and `_` stay, every other byte of the UTF-8 becomes `=XX` (upper-case hex). Injective, so
/// two names never share a token; callers pass names already casefolded.
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name.as_bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(char::from(b));
        } else {
            out.push('=');
            out.push(hex(b >> 4));
            out.push(hex(b & 0xf));
        }
    }
    out
}

fn hex(nibble: u8) -> char {
    char::from(b"0123456789ABCDEF"[usize::from(nibble & 0xf)])
}

/// Where messages are published: a room's members, or one node's users.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Topic(String);

impl Topic {
    /// A room, by its casefolded name.
    pub fn room(folded: &str) -> Topic {
        Topic(format!("room.{}", escape(folded)))
    }

    /// The users of one node (private messages, requests to that node).
    pub fn node(node: &Name) -> Topic {
        Topic(format!("node.{node}"))
    }

    /// Every node of the cluster (what each must hear, whether it has users or not).
    pub fn every_node() -> Topic {
        Topic("all".to_owned())
    }

    /// The topic below the cluster's namespace (`room.<escaped>`, `node.<name>` or `all`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The key of a log entry: entries under one key can be appended only in order of what their
/// author saw ([`crate::Expect`]); keys share the one global order.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct LogKey(String);

impl LogKey {
    /// A room's state (membership, modes, topic, lists), by its casefolded name.
    pub fn room(folded: &str) -> LogKey {
        LogKey(format!("room.{}", escape(folded)))
    }

    /// The users of one node (introductions, nick changes, quits, the node's death).
    pub fn node(node: &Name) -> LogKey {
        LogKey(format!("user.{node}"))
    }

    /// Network-wide settings.
    pub fn net() -> LogKey {
        LogKey("net".to_owned())
    }

    /// The key below the log's namespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Something exactly one node may hold at a time.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClaimKey(String);

impl ClaimKey {
    /// A nick, casefolded.
    pub fn nick(folded: &str) -> ClaimKey {
        ClaimKey(format!("nick.{}", escape(folded)))
    }

    /// The number a node puts into its msgids, so that they never collide across nodes.
    pub fn node_id(id: u32) -> ClaimKey {
        ClaimKey(format!("node-id.{id}"))
    }

    /// The key below the claims' namespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_refused_unless_one_plain_token() {
        assert!(Name::new("chinwag").is_ok());
        assert!(Name::new("node-2").is_ok());
        for bad in ["", "Chinwag", "a.b", "a*", "a>", "a b", "a_b", &"x".repeat(MAX_NAME + 1)] {
            let err = Name::new(bad).expect_err(bad);
            assert!(err.to_string().contains("a-z, 0-9"), "{err}");
        }
    }

    #[test]
    fn escaping_keeps_one_token_and_tells_names_apart() {
        assert_eq!(escape("#café.*>"), "=23caf=C3=A9=2E=2A=3E");
        assert_eq!(escape("nick_-9"), "nick_-9");
        assert_ne!(escape("#a.b"), escape("#a=2Eb"));
        let topic = Topic::room("#a b");
        assert_eq!(topic.as_str(), "room.=23a=20b");
        assert!(!topic.as_str()[5..].contains(['.', '*', '>', ' ']));
    }
}
