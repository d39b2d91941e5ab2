//! chinwag's cluster bus: everything that moves between the nodes of one network, behind one
//! trait, in chinwag's terms rather than a broker's (see `docs/cluster.md` for the design).
//!
//! - **Messages** ([`Bus::publish`], [`Bus::subscribe`]): room and node [`Topic`]s, at most once,
//!   each publisher's order kept for every subscriber. Chat is durable in PostgreSQL before it is
//!   published; a receiver that misses some fills the gap from there.
//! - **The network-state log** ([`Bus::append`], [`Bus::read_log`]): one total order of state
//!   changes, each append optionally checked against the last sequence of its [`LogKey`] (a
//!   compare-and-set per room or per node inside one global order).
//! - **Claims** ([`Bus::claim`], [`Bus::take_over`], [`Bus::release`], [`Bus::holder`]): a
//!   [`ClaimKey`] (a nick, a node's msgid number) is held by exactly one value at a revision;
//!   every change is checked against the revision, so racing nodes get one winner.
//! - **Liveness** ([`Bus::beat`], [`Bus::alive`]): a node's heartbeat vanishes after the TTL when
//!   the node stops beating (dies, or loses the bus). [`membership`] builds nodes on it: one live
//!   node per name, a node number each, and who appeared or died since the last look.
//!
//! Two implementations: [`NatsBus`] (core NATS subjects, a JetStream stream and two KV buckets,
//! all named under the cluster name) and [`LocalBus`] (in process, for tests of the core: no
//! network, deterministic, its clock tokio's). [`conformance`] is the suite both must pass;
//! [`test_nats`] gives tests a throwaway namespace on the machine's NATS.
//!
//! What this crate is not: it knows nothing of IRC (payloads are bytes; the core encodes its
//! events), and it keeps no state of its own beyond what a broker would.

pub mod conformance;
mod local;
pub mod membership;
mod names;
mod nats;
pub mod test_nats;

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::BoxStream;

pub use local::LocalBus;
pub use names::{escape, ClaimKey, LogKey, Name, NameError, Topic};
pub use nats::{NatsBus, NatsOptions};

/// The largest payload the bus carries (a message with its tags — the largest multiline message
/// a server accepts is 64 KiB of text —, one state event). NATS's own default limit is 1 MiB; a
/// state snapshot, which is larger, will not go through here.
pub const MAX_PAYLOAD: usize = 128 * 1024;

/// What an append expects of its key's last entry in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No check: the entry is appended whatever came before.
    Any,
    /// The key has no entry yet.
    Empty,
    /// The key's last entry is at this sequence.
    Last(u64),
}

/// One entry of the network-state log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// Its place in the one order every node applies (from 1, no gaps in what a reader sees).
    pub seq: u64,
    /// The key it was appended under (escaped form, as [`LogKey::as_str`]).
    pub key: String,
    /// The event, as the core encoded it.
    pub payload: Bytes,
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// The claim is ours, at this revision (needed to release or replace it).
    Granted { revision: u64 },
    /// Someone holds it: their value and revision (to take it over if they are dead).
    Taken { holder: Bytes, revision: u64 },
}

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// An append whose [`Expect`] did not hold: the caller's view of that key is behind.
    /// `last`: the key's last sequence now, when the broker says (a caller that has read the
    /// log that far and forgot the key can append again expecting it).
    #[error("conflict: the log moved on under this key")]
    Conflict { last: Option<u64> },
    /// The payload is over [`MAX_PAYLOAD`].
    #[error("payload of {0} bytes is over the bus's limit of {MAX_PAYLOAD}")]
    TooLarge(usize),
    /// The broker cannot be reached or did not answer in time; the operation may be retried.
    #[error("the cluster bus is unavailable: {0}")]
    Unavailable(String),
    /// The broker refused or misbehaved in a way a retry will not fix.
    #[error("cluster bus error: {0}")]
    Broker(String),
}

/// A stream of payloads published to one topic.
pub type Subscription = BoxStream<'static, Bytes>;

/// A stream of log entries in order, live: it waits for entries not appended yet.
pub type LogReader = BoxStream<'static, Result<LogEntry, BusError>>;

/// The cluster bus, as a node sees it (one value per node and connection).
///
/// Every method's future is `Send`, so a node's bus task can run on any runtime thread.
pub trait Bus: Send + Sync + std::fmt::Debug + 'static {
    /// Sends `payload` to every current subscriber of `topic` but this handle's own (none:
    /// dropped; a node never pays for reading its own publications back). Returns once it is
    /// handed to the bus; [`Bus::flush`] waits until the bus has it.
    fn publish(&self, topic: &Topic, payload: Bytes) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Waits until everything published through this handle has reached the bus.
    fn flush(&self) -> impl Future<Output = Result<(), BusError>> + Send;

    /// Subscribes to `topic`. Once this returns, every later publication reaches the
    /// subscription, from any node, in each publisher's order. A subscriber that falls too far
    /// behind loses messages (at most once), never blocks the publishers.
    fn subscribe(&self, topic: &Topic) -> impl Future<Output = Result<Subscription, BusError>> + Send;

    /// Appends an event to the log under `key` if `expect` holds; returns its sequence, or
    /// [`BusError::Conflict`] (with the key's last sequence). After [`BusError::Unavailable`] the event may or may not be in
    /// the log: nodes apply only what they read back, so either way they agree.
    fn append(
        &self,
        key: &LogKey,
        payload: Bytes,
        expect: Expect,
    ) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Reads the log from sequence `from` (1 for the beginning) on, in order, and then every
    /// entry appended later, as it comes.
    fn read_log(&self, from: u64) -> impl Future<Output = Result<LogReader, BusError>> + Send;

    /// The sequence of the log's last entry now (0 when it is empty): a node that reads the
    /// log from its start has caught up once it has read this far.
    fn log_end(&self) -> impl Future<Output = Result<u64, BusError>> + Send;

    /// Claims `key` for `value` if nobody holds it.
    fn claim(&self, key: &ClaimKey, value: Bytes) -> impl Future<Output = Result<Claim, BusError>> + Send;

    /// Replaces the holder of `key` by `value` if the claim is still at `revision` (a holder
    /// known dead); else answers who holds it now. A free key is claimed.
    fn take_over(
        &self,
        key: &ClaimKey,
        value: Bytes,
        revision: u64,
    ) -> impl Future<Output = Result<Claim, BusError>> + Send;

    /// Frees `key` if it is still held at `revision`; `false` if someone else's claim is there
    /// (or nobody's).
    fn release(&self, key: &ClaimKey, revision: u64) -> impl Future<Output = Result<bool, BusError>> + Send;

    /// Who holds `key`, and at which revision.
    fn holder(&self, key: &ClaimKey) -> impl Future<Output = Result<Option<(Bytes, u64)>, BusError>> + Send;

    /// Records that `node` is alive (with what it wants others to know, e.g. its incarnation).
    /// Without another beat, the record vanishes after the network's heartbeat TTL.
    fn beat(&self, node: &Name, value: Bytes) -> impl Future<Output = Result<(), BusError>> + Send;

    /// The nodes whose heartbeat has not expired, with their last value, sorted by name.
    fn alive(&self) -> impl Future<Output = Result<Vec<(String, Bytes)>, BusError>> + Send;

    /// The heartbeat TTL of this network.
    fn heartbeat_ttl(&self) -> Duration;
}

/// Refuses payloads over [`MAX_PAYLOAD`], the same way for every implementation.
fn check_size(payload: &Bytes) -> Result<(), BusError> {
    if payload.len() > MAX_PAYLOAD {
        return Err(BusError::TooLarge(payload.len()));
    }
    Ok(())
}
