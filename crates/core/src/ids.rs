//! Identifiers the core hands out: connection ids and message ids.

use std::fmt;

/// A connection, as numbered by the edge that accepted it. Never reused within one process.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId(pub u64);

/// A map keyed by connection, hashed with [`ConnHasher`].
pub type ConnMap<V> = std::collections::HashMap<ConnId, V, BuildConnHasher>;

/// Hashes a [`ConnId`] with one multiplication. The default SipHash resists keys chosen to
/// collide, which matters for keys a peer picks (nicks, room names); connection ids are numbers
/// the edge hands out in sequence, so a peer cannot choose them, and the map lookups on every
/// delivery of a room message are a tenth of the server's time with SipHash.
#[derive(Clone, Copy, Debug, Default)]
pub struct ConnHasher(u64);

/// Builds [`ConnHasher`]s.
pub type BuildConnHasher = std::hash::BuildHasherDefault<ConnHasher>;

impl std::hash::Hasher for ConnHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }

    fn write_u64(&mut self, n: u64) {
        // An odd constant near 2^64/φ: each input bit moves many output bits.
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }

    fn finish(&self) -> u64 {
        // The table indexes with the low bits; the product's best-mixed bits are the high ones.
        self.0.rotate_left(26)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "c{}", self.0)
    }
}

/// Crockford base32: its ASCII order matches digit order, so encoded ids sort like numbers.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Hands out msgids that are unique and sort in the order they were made.
///
/// Layout (19 characters): 10 for the unix time in milliseconds, 5 for a sequence number within
/// that millisecond, 4 for the node. The node is random per process (given by the edge), so two
/// processes that ever share a millisecond and a sequence number still produce different ids.
#[derive(Debug)]
pub struct MsgIdGen {
    /// The millisecond of the last id; never goes backwards even if the wall clock does.
    last_ms: u64,
    /// How many ids were handed out in `last_ms`.
    seq: u32,
    /// This process's node number (20 bits used).
    node: u32,
}

const SEQ_LIMIT: u32 = 1 << 25;

impl MsgIdGen {
    pub fn new(node: u32, floor_ms: u64) -> Self {
        MsgIdGen { last_ms: floor_ms, seq: 0, node: node & 0xF_FFFF }
    }

    pub fn next(&mut self, now_ms: u64) -> String {
        if now_ms > self.last_ms {
            self.last_ms = now_ms;
            self.seq = 0;
        } else {
            self.seq += 1;
            if self.seq >= SEQ_LIMIT {
                self.last_ms += 1;
                self.seq = 0;
            }
        }
        let mut out = String::with_capacity(19);
        push_base32(&mut out, self.last_ms, 10);
        push_base32(&mut out, u64::from(self.seq), 5);
        push_base32(&mut out, u64::from(self.node), 4);
        out
    }
}

fn push_base32(out: &mut String, value: u64, digits: u32) {
    for i in (0..digits).rev() {
        let d = (value >> (i * 5)) & 31;
        out.push(char::from(ALPHABET[d as usize]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_sorted_even_when_the_clock_stalls_or_goes_back() {
        let mut g = MsgIdGen::new(7, 0);
        let mut ids = Vec::new();
        for t in [1000, 1000, 1000, 999, 1001, 5, 2000] {
            ids.push(g.next(t));
        }
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted);
        assert!(ids.iter().all(|i| i.len() == 19));
    }

    #[test]
    fn an_id_is_time_then_sequence_then_node_in_base32() {
        let mut g = MsgIdGen::new(0x2A, 0);
        assert_eq!(g.next(32 * 32 + 33), "000000011100000001A");
        assert_eq!(g.next(32 * 32 + 33), "000000011100001001A");
    }
}
