//! Which nodes make up the network, on any [`Bus`]: a node joins under its name and an
//! incarnation (a number new at every start), beats while it lives, holds a node number of its
//! own (for msgids), and learns from [`Membership::poll`] which nodes appeared and which died.
//!
//! Death is the heartbeat's absence: a node that stops beating (killed, or cut off from the bus)
//! vanishes from [`Bus::alive`] after the TTL; a node started again under the same name comes
//! back as a new incarnation, which the others see as the old one gone and a new one joined.
//! Two live nodes never share a name: the second is refused.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

use crate::{Bus, BusError, Claim, ClaimKey, Name};

/// Node numbers are this many bits (the core's msgids keep 20).
pub const NODE_ID_BITS: u32 = 20;

/// Why a node could not join.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// Another live node has this name.
    #[error(
        "another node named {0} is alive in this network (its heartbeat went on for {1:?}); give this node a name of its own (--node-name)"
    )]
    NameTaken(String, Duration),
    /// Every node number is held by a live node.
    #[error("no free node number among the {} of this network", 1u32 << NODE_ID_BITS)]
    NoNodeId,
    #[error(transparent)]
    Bus(#[from] BusError),
}

/// A node, as its peers know it: name and incarnation.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Member {
    pub node: String,
    pub incarnation: u64,
}

/// What changed since the last poll.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Changes {
    /// Nodes (or new incarnations) that appeared.
    pub joined: Vec<Member>,
    /// Nodes (or old incarnations) whose heartbeat is gone: their users must quit.
    pub gone: Vec<Member>,
}

/// This node's place in the network.
#[derive(Debug)]
pub struct Membership<B: Bus> {
    /// The bus it beats and polls on.
    bus: B,
    /// Who this node is.
    me: Member,
    /// Its node number, and the claim's revision (to release it).
    node_id: (u32, u64),
    /// The members seen alive at the last poll (this node included).
    known: BTreeMap<String, u64>,
    /// Their node numbers, as their heartbeats said at the last poll (for operators).
    numbers: BTreeMap<String, u32>,
}

/// A heartbeat's value: the incarnation in hex, then `/` and the node number once it has one.
fn heartbeat_value(incarnation: u64, node_id: Option<u32>) -> Bytes {
    match node_id {
        Some(id) => Bytes::from(format!("{incarnation:016x}/{id:x}")),
        None => Bytes::from(format!("{incarnation:016x}")),
    }
}

/// The incarnation and node number (if it says one) in a heartbeat's value.
fn parse_heartbeat(value: &[u8]) -> Option<(u64, Option<u32>)> {
    let text = std::str::from_utf8(value).ok()?;
    let (incarnation, id) = match text.split_once('/') {
        Some((incarnation, id)) => (incarnation, Some(u32::from_str_radix(id, 16).ok()?)),
        None => (text, None),
    };
    Some((u64::from_str_radix(incarnation, 16).ok()?, id))
}

/// The members in a liveness listing (entries that do not parse are not ours and are skipped).
fn members(alive: Vec<(String, Bytes)>) -> BTreeMap<String, u64> {
    alive.into_iter().filter_map(|(node, value)| Some((node, parse_heartbeat(&value)?.0))).collect()
}

/// The node numbers in a liveness listing.
fn numbers(alive: &[(String, Bytes)]) -> BTreeMap<String, u32> {
    alive.iter().filter_map(|(node, value)| Some((node.clone(), parse_heartbeat(value)?.1?))).collect()
}

impl<B: Bus> Membership<B> {
    /// Joins as `node` in its `incarnation`: waits (at most twice the TTL) for a heartbeat of an
    /// earlier incarnation under the same name to expire, refusing if it goes on; beats; and
    /// claims a node number, trying from `first_id` on and taking over numbers whose holder is
    /// dead.
    pub async fn join(bus: B, node: &Name, incarnation: u64, first_id: u32) -> Result<Membership<B>, JoinError> {
        let ttl = bus.heartbeat_ttl();
        let waited_from = tokio::time::Instant::now();
        loop {
            let alive = members(bus.alive().await?);
            match alive.get(node.as_str()) {
                Some(other) if *other != incarnation => {
                    let waited = waited_from.elapsed();
                    if waited > ttl * 2 {
                        return Err(JoinError::NameTaken(node.to_string(), waited));
                    }
                    tokio::time::sleep(ttl / 10).await;
                }
                _ => break,
            }
        }
        bus.beat(node, heartbeat_value(incarnation, None)).await?;
        let me = Member { node: node.to_string(), incarnation };
        let node_id = claim_node_id(&bus, &me, first_id).await?;
        // Beat again, now saying the number, so that operators see it on every node.
        bus.beat(node, heartbeat_value(incarnation, Some(node_id.0))).await?;
        let alive = bus.alive().await?;
        let numbers = numbers(&alive);
        let known = members(alive);
        Ok(Membership { bus, me, node_id, known, numbers })
    }

    /// This node's number, unique among live nodes.
    pub fn node_id(&self) -> u32 {
        self.node_id.0
    }

    /// Who this node is.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// How long a heartbeat lives without another: a dead node is seen gone this long after
    /// its last beat, plus one poll.
    pub fn heartbeat_ttl(&self) -> Duration {
        self.bus.heartbeat_ttl()
    }

    /// How often to [`Membership::beat`]: a third of the TTL, so one lost beat is survived.
    pub fn beat_interval(&self) -> Duration {
        self.bus.heartbeat_ttl() / 3
    }

    /// Says this node is alive.
    pub async fn beat(&self) -> Result<(), BusError> {
        let node = Name::new(&self.me.node).map_err(|e| BusError::Broker(e.to_string()))?;
        self.bus.beat(&node, heartbeat_value(self.me.incarnation, Some(self.node_id.0))).await
    }

    /// The members alive now, this node included, by name.
    pub fn known(&self) -> impl Iterator<Item = Member> + '_ {
        self.known.iter().map(|(node, incarnation)| Member { node: node.clone(), incarnation: *incarnation })
    }

    /// A live member's node number, as its heartbeat said at the last poll (`None` for a
    /// member still joining, or one that does not say).
    pub fn node_id_of(&self, node: &str) -> Option<u32> {
        self.numbers.get(node).copied()
    }

    /// Reads who is alive and says what changed since the last poll.
    pub async fn poll(&mut self) -> Result<Changes, BusError> {
        let alive = self.bus.alive().await?;
        self.numbers = numbers(&alive);
        let now = members(alive);
        let mut changes = Changes::default();
        for (node, incarnation) in &self.known {
            if now.get(node) != Some(incarnation) {
                changes.gone.push(Member { node: node.clone(), incarnation: *incarnation });
            }
        }
        for (node, incarnation) in &now {
            if self.known.get(node) != Some(incarnation) {
                changes.joined.push(Member { node: node.clone(), incarnation: *incarnation });
            }
        }
        self.known = now;
        Ok(changes)
    }

    /// Gives the node number back (a clean stop); the heartbeat expires by itself.
    pub async fn leave(self) -> Result<(), BusError> {
        self.bus.release(&ClaimKey::node_id(self.node_id.0), self.node_id.1).await.map(drop)
    }
}

/// Whether `node`'s incarnation `incarnation` has a live heartbeat now (read from the bus, not
/// from the last poll: a node that joined since then is alive).
pub async fn is_alive<B: Bus>(bus: &B, node: &str, incarnation: u64) -> Result<bool, BusError> {
    Ok(members(bus.alive().await?).get(node) == Some(&incarnation))
}

/// Claims the first free node number from `first`, taking over any held by a dead member.
async fn claim_node_id<B: Bus>(bus: &B, me: &Member, first: u32) -> Result<(u32, u64), JoinError> {
    let value = Bytes::from(format!("{}/{:016x}", me.node, me.incarnation));
    let mask = (1u32 << NODE_ID_BITS) - 1;
    let mut alive: Option<BTreeMap<String, u64>> = None;
    for offset in 0..=mask {
        let id = first.wrapping_add(offset) & mask;
        let key = ClaimKey::node_id(id);
        let (holder, revision) = match bus.claim(&key, value.clone()).await? {
            Claim::Granted { revision } => return Ok((id, revision)),
            Claim::Taken { holder, revision } => (holder, revision),
        };
        let alive = match &mut alive {
            Some(alive) => alive,
            None => alive.insert(members(bus.alive().await?)),
        };
        let holder_alive = std::str::from_utf8(&holder)
            .ok()
            .and_then(|h| h.split_once('/'))
            .and_then(|(node, incarnation)| Some((node, u64::from_str_radix(incarnation, 16).ok()?)))
            .is_some_and(|(node, incarnation)| alive.get(node) == Some(&incarnation) && incarnation != me.incarnation);
        if !holder_alive {
            if let Claim::Granted { revision } = bus.take_over(&key, value.clone(), revision).await? {
                return Ok((id, revision));
            }
        }
    }
    Err(JoinError::NoNodeId)
}
