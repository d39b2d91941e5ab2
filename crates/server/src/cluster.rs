//! A cluster node's runtime (`docs/cluster.md`, "Order of work", step 1), started only in
//! cluster mode: the node's connection to the bus, its membership (one live node per name, a
//! node number for msgids, heartbeats every TTL/3, who joined and who died polled every second),
//! what it does when cut off from the bus, and the **bridge** between the bus and the hub.
//!
//! One tracked task ([`Bridge::run`]) does all of it, so nothing outlives the server: it ends
//! when the server stops (or the hub is gone), gives its node number back, and leaves its
//! heartbeat to expire.
//!
//! The bridge's two channels are bounded. Hub → bridge ([`ToBus`]): the hub never waits; it
//! uses [`HubSide::send`], which fails when the channel is full (a publication is then lost and
//! filled from PostgreSQL, an append or claim is answered "unavailable"). Bridge → hub
//! ([`FromBus`]): the bridge keeps at most [`LAG`] inputs the hub has not taken and stops reading
//! the log and subscriptions past that (NATS buffers, then drops: a gap, filled from PostgreSQL),
//! while its heartbeats go on.
//!
//! **The seam for the core** (the core's cluster entry points are being built): the hub holds an
//! `Option<HubSide>` (`None` on a server on its own: no task, no channel, one branch) and hands
//! every [`FromBus`] to [`on_input`]; the lines marked `SEAM (core)` there and in [`ToBus`]'s
//! documentation are where the core's `Server::apply`, `Server::remote`, `Server::complete` and
//! the effects `Effect::Append`, `Effect::Publish` and the claim requests plug in.
//!
//! Cut off: when no heartbeat was acknowledged for [`grace`] (3 s of a 5 s TTL: less than the
//! TTL, so the node stops serving before anyone declares it dead), every user is dropped with
//! [`LOST_NETWORK`], new connections are refused, `/readyz` answers 503; once the bus answers
//! again the node joins as a new incarnation (keeping its node number if it can) and serves.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use chinwag_bus::membership::{Changes, JoinError, Member, Membership};
use chinwag_bus::{
    Bus, BusError, Claim, ClaimKey, Expect, LogEntry, LogKey, LogReader, Name, NatsBus, NatsOptions, Topic,
};
use chinwag_core::RequestId;
use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, FuturesUnordered, SelectAll};
use futures_util::{FutureExt, StreamExt};
use serde::Serialize;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::hub::{now, Hub};
use crate::metrics::Metrics;
use crate::ClusterConfig;

/// What every user of a node cut off from the bus is told (`ERROR :…`).
pub(crate) const LOST_NETWORK: &str = "Lost the network; reconnect (another node will take you)";
/// How often the node reads who is alive (and, cut off, tries to join again).
const POLL: Duration = Duration::from_secs(1);
/// Capacity of the hub → bridge channel.
const TO_BUS_QUEUE: usize = 1024;
/// Capacity of the bridge → hub channel.
const FROM_BUS_QUEUE: usize = 1024;
/// Inputs the bridge keeps for the hub beyond its channel before it stops reading the bus.
const LAG: usize = 256;
/// Bus operations (appends, claims, subscriptions) in flight at most; past it the bridge stops
/// taking the hub's requests (and the hub's `send` fails once the channel is full).
const IN_FLIGHT: usize = 1024;
/// How long a publication may wait for room in the client's buffer (NATS away) before it is
/// dropped (its receivers fill the gap from PostgreSQL).
const PUBLISH_WAIT: Duration = Duration::from_millis(250);
/// How many times a dead node's `NodeGone` is tried before this node leaves it to the others.
const NODE_GONE_TRIES: u32 = 10;
/// How many dead nodes' `NodeGone` entries a node remembers having read.
const BURIED: usize = 1024;
/// How long a stopping node may take to give its node number back.
const LEAVE_WAIT: Duration = Duration::from_secs(1);

/// How long a node goes on without an acknowledged heartbeat before it drops its users: three
/// fifths of the TTL (3 s of 5 s), so always before the others see its heartbeat expire.
pub(crate) fn grace(ttl: Duration) -> Duration {
    ttl * 3 / 5
}

/// A node's place in its cluster (`chinwag_cluster_state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
#[repr(u8)]
pub(crate) enum State {
    /// Joined, beating, serving users.
    Serving = 1,
    /// No acknowledged heartbeat for the grace: users dropped, connections refused, joining.
    CutOff = 2,
}

/// What `admin nodes` shows: this node and the live members at the last poll.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct View {
    pub network: String,
    pub node: String,
    pub incarnation: u64,
    pub node_id: u32,
    pub state: State,
    /// Live members by name: name, incarnation, node number (if its heartbeat says it).
    pub members: Vec<(String, u64, Option<u32>)>,
}

/// The view, shared with the control side.
pub(crate) type Status = Arc<Mutex<View>>;

/// From the hub to the bus (through [`HubSide::send`]).
///
/// SEAM (core): `Effect::Append { key, expect, event }` → [`ToBus::Append`];
/// `Effect::Publish { topic, payload }` → [`ToBus::Publish`]; the nick claims the core asks with
/// `Effect::Request` → [`ToBus::Claim`] / [`ToBus::TakeOver`] / [`ToBus::Release`], answered
/// with [`FromBus::Claimed`]; a room gets its first / loses its last local member →
/// [`ToBus::Subscribe`] / [`ToBus::Unsubscribe`].
#[derive(Debug)]
#[allow(dead_code)] // Until the core makes these effects (only the tests send them now).
pub(crate) enum ToBus {
    /// Append an event to the log; answered with [`FromBus::Appended`] carrying `token`. The
    /// event is applied when it comes back through the log, never from this answer.
    Append { token: u64, key: LogKey, expect: Expect, payload: Bytes },
    /// Send to a room's or a node's subscribers (at most once; in the order sent).
    Publish { topic: Topic, payload: Bytes },
    /// Claim a key (a nick), for the request `id`.
    Claim { id: RequestId, key: ClaimKey, value: Bytes },
    /// Take over a claim whose holder is dead, if it is still at `revision`.
    TakeOver { id: RequestId, key: ClaimKey, value: Bytes, revision: u64 },
    /// Free a claim held at `revision` (no answer: a failure leaves it to be taken over).
    Release { key: ClaimKey, revision: u64 },
    /// Start receiving a topic's messages ([`FromBus::Message`]).
    Subscribe(Topic),
    /// Stop receiving them.
    Unsubscribe(Topic),
}

/// From the bus to the hub, handled by [`on_input`].
#[derive(Debug)]
pub(crate) enum FromBus {
    /// The next log entry, in the log's order, with no gap (from sequence 1 after each join).
    Entry(LogEntry),
    /// A message published to a topic this node subscribed to.
    Message { topic: Topic, payload: Bytes },
    /// The answer to [`ToBus::Append`].
    Appended { token: u64, result: Result<u64, BusError> },
    /// The answer to [`ToBus::Claim`] or [`ToBus::TakeOver`].
    Claimed { id: RequestId, result: Result<Claim, BusError> },
    /// Nodes joined or died since the last poll (other nodes; this node's own rejoin is
    /// [`FromBus::Back`]).
    Members(Changes),
    /// No heartbeat was acknowledged for the grace: every user must go, now.
    CutOff,
    /// Joined again, as `incarnation`: the log is read again from its start.
    Back { incarnation: u64 },
}

/// The hub's end of the bridge (`Hub::cluster`; `None` on a server on its own).
#[derive(Debug)]
pub(crate) struct HubSide {
    from_bus: mpsc::Receiver<FromBus>,
    to_bus: mpsc::Sender<ToBus>,
    /// Cut off from the bus: new connections are refused.
    pub cut_off: bool,
}

impl HubSide {
    /// Hands `request` to the bridge without waiting; gives it back if the bridge is full or
    /// gone (the caller answers "unavailable", or drops a publication).
    #[allow(dead_code)] // Until the core makes cluster effects.
    pub(crate) fn send(&self, request: ToBus) -> Result<(), ToBus> {
        self.to_bus.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
        })
    }
}

/// The next input from the bridge; never resolves on a server on its own.
pub(crate) async fn recv(side: &mut Option<HubSide>) -> Option<FromBus> {
    match side {
        Some(side) => side.from_bus.recv().await,
        None => std::future::pending().await,
    }
}

/// What the hub does with an input from the bus.
pub(crate) fn on_input(hub: &mut Hub, input: FromBus) {
    match input {
        FromBus::Entry(entry) => {
            // SEAM (core): hub.server.apply(entry.seq, &entry.key, entry.payload, now());
            tracing::trace!(seq = entry.seq, key = %entry.key, bytes = entry.payload.len(), "cluster log entry");
        }
        FromBus::Message { topic, payload } => {
            // SEAM (core): hub.server.remote(&topic, payload, now());
            tracing::trace!(topic = topic.as_str(), bytes = payload.len(), "cluster message");
        }
        FromBus::Appended { token, result } => {
            // SEAM (core): a conflict makes the core wait for the log and check the command again.
            tracing::trace!(token, ?result, "cluster append answered");
        }
        FromBus::Claimed { id, result } => {
            // SEAM (core): hub.server.complete(id, Response::Claim(result), now());
            tracing::trace!(?id, ?result, "cluster claim answered");
        }
        FromBus::Members(changes) => {
            // The users of a dead node quit when its `NodeGone` comes back through the log
            // (SEAM (core): freeing the nick claims it knows the dead node held).
            tracing::debug!(joined = ?changes.joined, gone = ?changes.gone, "cluster members changed");
        }
        FromBus::CutOff => {
            if let Some(side) = &mut hub.cluster {
                side.cut_off = true;
            }
            let dropped = hub.drop_everyone(LOST_NETWORK, now());
            tracing::warn!(dropped, "cut off from the cluster: every user dropped, new connections refused");
        }
        FromBus::Back { incarnation } => {
            if let Some(side) = &mut hub.cluster {
                side.cut_off = false;
            }
            // SEAM (core): the core's replica starts over from the log, read again from 1.
            tracing::info!(incarnation, "back in the cluster: accepting connections");
        }
    }
}

/// A node that has joined its network, not yet running.
pub(crate) struct Joined {
    bus: NatsBus,
    membership: Membership<NatsBus>,
    network: Name,
}

impl Joined {
    /// The node number msgids carry (unique among live nodes).
    pub(crate) fn node_id(&self) -> u32 {
        self.membership.node_id()
    }
}

/// Connects to the cluster's NATS and joins as `cfg.node` with a new random incarnation.
/// Refuses (after up to twice the TTL) when another live node has that name.
pub(crate) async fn join(cfg: &ClusterConfig) -> Result<Joined> {
    let options = NatsOptions::new(&cfg.url, cfg.name.clone());
    let bus = NatsBus::connect(&options).await.context("joining the cluster")?;
    let incarnation = new_incarnation();
    let first_id = rand::random::<u32>() & ((1 << chinwag_bus::membership::NODE_ID_BITS) - 1);
    tracing::info!(network = %cfg.name, node = %cfg.node, incarnation, "joining the cluster");
    let membership = Membership::join(bus.clone(), &cfg.node, incarnation, first_id).await.map_err(|e| match e {
        JoinError::NameTaken(..) => anyhow::anyhow!("cannot join the cluster {} as {}: {e}", cfg.name, cfg.node),
        other => anyhow::Error::new(other).context(format!("joining the cluster {} as {}", cfg.name, cfg.node)),
    })?;
    tracing::info!(
        network = %cfg.name,
        node = %cfg.node,
        incarnation,
        node_id = membership.node_id(),
        ttl = ?membership.heartbeat_ttl(),
        "joined the cluster"
    );
    Ok(Joined { bus, membership, network: cfg.name.clone() })
}

/// A new incarnation: never 0, different at every start.
fn new_incarnation() -> u64 {
    rand::random::<u64>().max(1)
}

/// Starts the node's task; returns the hub's end of the bridge and the view for `admin nodes`.
pub(crate) async fn start(
    joined: Joined,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    tracker: &TaskTracker,
) -> Result<(HubSide, Status)> {
    let Joined { bus, membership, network } = joined;
    let log = bus.read_log(1).await.context("reading the cluster's log")?;
    let (to_bus, from_hub) = mpsc::channel(TO_BUS_QUEUE);
    let (to_hub, from_bus) = mpsc::channel(FROM_BUS_QUEUE);
    let me = membership.me().clone();
    let status = Arc::new(Mutex::new(View {
        network: network.to_string(),
        node: me.node.clone(),
        incarnation: me.incarnation,
        node_id: membership.node_id(),
        state: State::Serving,
        members: Vec::new(),
    }));
    metrics.cluster_state.store(State::Serving as u8, Relaxed);
    let node = Name::new(&me.node).context("the node's name")?;
    let ttl = membership.heartbeat_ttl();
    let bridge = Bridge {
        bus,
        node,
        node_id: membership.node_id(),
        incarnation: me.incarnation,
        ttl,
        membership: Some(membership),
        membership_op: None,
        beat_due: false,
        poll_due: false,
        state: State::Serving,
        last_ack: Instant::now(),
        status: Arc::clone(&status),
        metrics,
        to_hub,
        outgoing: VecDeque::new(),
        from_hub,
        log: Some(log),
        subscriptions: SelectAll::new(),
        subscribed: HashMap::new(),
        in_flight: FuturesUnordered::new(),
        last_seq: HashMap::new(),
        gone: BTreeMap::new(),
        buried: VecDeque::new(),
    };
    bridge.update_view();
    tracker.spawn(bridge.run(shutdown));
    Ok((HubSide { from_bus, to_bus, cut_off: false }, status))
}

/// What a membership operation (one at a time) gives back.
enum MembershipDone {
    Beat(Membership<NatsBus>, Result<(), BusError>),
    Polled(Membership<NatsBus>, Result<Changes, BusError>),
    /// Joined again, with the log read from its start.
    Joined(Result<(Membership<NatsBus>, LogReader), String>),
}

/// What a bus operation in flight gives back.
enum OpDone {
    /// For the hub.
    Input(FromBus),
    /// A subscription made (or not).
    Subscribed(Topic, Result<chinwag_bus::Subscription, BusError>),
    /// A dead node's `NodeGone` appended (or not).
    NodeGone(Member, Result<u64, BusError>),
    /// Done, nothing to say.
    Nothing,
}

/// The node's task: membership, cut-off, and the bridge between the bus and the hub.
struct Bridge {
    bus: NatsBus,
    node: Name,
    /// The node number the core's msgids carry (fixed for the process's life).
    node_id: u32,
    /// The current incarnation.
    incarnation: u64,
    ttl: Duration,
    /// `None` while an operation holds it, or while cut off (until joined again).
    membership: Option<Membership<NatsBus>>,
    membership_op: Option<BoxFuture<'static, MembershipDone>>,
    /// A beat or a poll waits for the operation in flight.
    beat_due: bool,
    poll_due: bool,
    state: State,
    /// When the last heartbeat was acknowledged.
    last_ack: Instant,
    status: Status,
    metrics: Arc<Metrics>,
    to_hub: mpsc::Sender<FromBus>,
    /// Inputs the hub has not taken yet (at most [`LAG`] before reading stops).
    outgoing: VecDeque<FromBus>,
    from_hub: mpsc::Receiver<ToBus>,
    /// The log from sequence 1 of this incarnation (`None` while cut off).
    log: Option<LogReader>,
    subscriptions: SelectAll<BoxStream<'static, (Topic, Bytes)>>,
    /// Each subscribed topic's token: cancelled, its stream ends.
    subscribed: HashMap<Topic, CancellationToken>,
    in_flight: FuturesUnordered<BoxFuture<'static, OpDone>>,
    /// The last sequence read under each `user.<node>` key (a `NodeGone` expects it).
    last_seq: HashMap<String, u64>,
    /// Dead nodes whose `NodeGone` is not in the log yet, and how many times it was tried.
    gone: BTreeMap<Member, u32>,
    /// The last [`BURIED`] nodes whose `NodeGone` was read from the log: never appended again,
    /// even when this node sees them die after another node's entry for them (its poll came
    /// later than its log reader).
    buried: VecDeque<Member>,
}

/// Resolves with the operation's result; never if there is none.
async fn op<T>(slot: &mut Option<BoxFuture<'static, T>>) -> T {
    match slot {
        Some(future) => future.await,
        None => std::future::pending().await,
    }
}

/// The next log entry; never if there is no reader.
async fn next_entry(log: &mut Option<LogReader>) -> Option<Result<LogEntry, BusError>> {
    match log {
        Some(log) => log.next().await,
        None => std::future::pending().await,
    }
}

impl Bridge {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut beat = tokio::time::interval(self.ttl / 3);
        beat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut poll = tokio::time::interval(POLL);
        poll.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let grace = grace(self.ttl);
        loop {
            let reading = self.outgoing.len() < LAG;
            let serving = self.state == State::Serving;
            let deadline = self.last_ack + grace;
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                done = op(&mut self.membership_op) => {
                    self.membership_op = None;
                    self.membership_done(done, &shutdown);
                }
                _ = tokio::time::sleep_until(deadline), if serving => self.cut_off(),
                _ = beat.tick() => {
                    self.beat_due = true;
                    self.start_membership_op();
                }
                _ = poll.tick() => {
                    self.poll_due = true;
                    self.start_membership_op();
                }
                // Owned: a permit borrowing the sender would borrow `self` in every branch.
                permit = self.to_hub.clone().reserve_owned(), if !self.outgoing.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(input) = self.outgoing.pop_front() {
                            permit.send(input);
                        }
                    }
                    Err(_) => break,
                },
                Some(done) = self.in_flight.next(), if !self.in_flight.is_empty() => self.op_done(done),
                request = self.from_hub.recv(), if self.in_flight.len() < IN_FLIGHT => match request {
                    Some(request) => self.request(request).await,
                    None => break,
                },
                entry = next_entry(&mut self.log), if reading => match entry {
                    Some(Ok(entry)) => self.entry(entry),
                    Some(Err(e)) => tracing::warn!(error = %e, "cluster log reader"),
                    None => {
                        // The reader resumes by itself across reconnections; one that ends
                        // leaves the node without the log: it cannot serve.
                        tracing::error!("the cluster log reader ended");
                        self.log = None;
                        if self.state == State::Serving {
                            self.cut_off();
                        }
                    }
                },
                Some((topic, payload)) = self.subscriptions.next(), if reading && !self.subscriptions.is_empty() => {
                    self.outgoing.push_back(FromBus::Message { topic, payload });
                }
            }
        }
        self.leave().await;
    }

    /// Starts the beat or poll that is due, if no membership operation is in flight.
    fn start_membership_op(&mut self) {
        if self.membership_op.is_some() {
            return;
        }
        if self.state == State::CutOff {
            if self.poll_due {
                self.poll_due = false;
                self.beat_due = false;
                let bus = self.bus.clone();
                let node = self.node.clone();
                let incarnation = new_incarnation();
                let first_id = self.node_id;
                tracing::info!(incarnation, "joining the cluster again");
                self.membership_op = Some(
                    async move {
                        let joined = async {
                            let membership = Membership::join(bus.clone(), &node, incarnation, first_id)
                                .await
                                .map_err(|e| e.to_string())?;
                            let log = bus.read_log(1).await.map_err(|e| format!("reading the log: {e}"))?;
                            Ok((membership, log))
                        };
                        MembershipDone::Joined(joined.await)
                    }
                    .boxed(),
                );
            }
            return;
        }
        let Some(membership) = self.membership.take() else { return };
        if self.beat_due {
            self.beat_due = false;
            self.membership_op = Some(
                async move {
                    let result = membership.beat().await;
                    MembershipDone::Beat(membership, result)
                }
                .boxed(),
            );
        } else if self.poll_due {
            self.poll_due = false;
            self.membership_op = Some(
                async move {
                    let mut membership = membership;
                    let result = membership.poll().await;
                    MembershipDone::Polled(membership, result)
                }
                .boxed(),
            );
        } else {
            self.membership = Some(membership);
        }
    }

    fn membership_done(&mut self, done: MembershipDone, shutdown: &CancellationToken) {
        match done {
            MembershipDone::Beat(membership, result) => {
                // A beat that returns after the node was cut off belongs to the old incarnation.
                if self.state == State::Serving {
                    match result {
                        Ok(()) => self.last_ack = Instant::now(),
                        Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed"),
                    }
                    self.membership = Some(membership);
                }
            }
            MembershipDone::Polled(membership, result) => {
                if self.state == State::Serving {
                    match result {
                        Ok(changes) => {
                            self.changes(changes, &membership);
                            self.append_node_gone();
                        }
                        Err(e) => tracing::warn!(error = %e, "reading the cluster's live nodes failed"),
                    }
                    self.membership = Some(membership);
                    self.update_view();
                }
            }
            MembershipDone::Joined(Ok((membership, log))) => {
                if membership.node_id() != self.node_id {
                    // The core's msgids carry the number it started with; another node holds
                    // it now. Serving would risk colliding msgids: stop instead.
                    tracing::error!(
                        had = self.node_id,
                        got = membership.node_id(),
                        "joined the cluster again but another node took this node's number; stopping (start it again)"
                    );
                    self.metrics.ready.store(false, Relaxed);
                    shutdown.cancel();
                    return;
                }
                self.incarnation = membership.me().incarnation;
                self.membership = Some(membership);
                self.log = Some(log);
                self.back();
            }
            MembershipDone::Joined(Err(e)) => {
                tracing::warn!(error = %e, "joining the cluster again failed; trying again");
            }
        }
        self.start_membership_op();
    }

    /// Nodes joined or died: tell the hub, and append each dead node's `NodeGone`.
    fn changes(&mut self, changes: Changes, membership: &Membership<NatsBus>) {
        if changes.joined.is_empty() && changes.gone.is_empty() {
            return;
        }
        let me = membership.me();
        for member in &changes.joined {
            if member != me {
                tracing::info!(node = %member.node, incarnation = member.incarnation, "a cluster node joined");
            }
        }
        for member in &changes.gone {
            if member != me {
                tracing::warn!(node = %member.node, incarnation = member.incarnation, "a cluster node is gone");
                if !self.buried.contains(member) {
                    self.gone.entry(member.clone()).or_insert(0);
                }
            }
        }
        let changes = Changes {
            joined: changes.joined.into_iter().filter(|m| m != me).collect(),
            gone: changes.gone.into_iter().filter(|m| m != me).collect(),
        };
        self.outgoing.push_back(FromBus::Members(changes));
    }

    /// Appends `NodeGone` for each dead node not yet known to be in the log, under its
    /// `user.<node>` key expecting the last sequence read there, so that of all the nodes that
    /// saw it die only one appends it (the others get a conflict, then read it).
    fn append_node_gone(&mut self) {
        let members: Vec<Member> = self.gone.keys().cloned().collect();
        for member in members {
            let Some(tries) = self.gone.get_mut(&member) else { continue };
            *tries += 1;
            if *tries > NODE_GONE_TRIES {
                tracing::warn!(node = %member.node, "leaving the dead node's NodeGone to the other nodes");
                self.gone.remove(&member);
                continue;
            }
            let Ok(name) = Name::new(&member.node) else {
                self.gone.remove(&member);
                continue;
            };
            let key = LogKey::node(&name);
            let expect = self.last_seq.get(key.as_str()).map_or(Expect::Empty, |seq| Expect::Last(*seq));
            let bus = self.bus.clone();
            let payload = node_gone_event(&member);
            self.in_flight.push(
                async move {
                    let result = bus.append(&key, payload, expect).await;
                    OpDone::NodeGone(member, result)
                }
                .boxed(),
            );
        }
    }

    fn op_done(&mut self, done: OpDone) {
        match done {
            OpDone::Input(input) => self.outgoing.push_back(input),
            OpDone::Nothing => {}
            OpDone::Subscribed(topic, result) => match (result, self.subscribed.get(&topic)) {
                (Ok(subscription), Some(token)) => {
                    let token = token.clone();
                    let tagged = topic.clone();
                    self.subscriptions.push(
                        subscription
                            .map(move |payload| (tagged.clone(), payload))
                            .take_until(token.cancelled_owned())
                            .boxed(),
                    );
                }
                (Ok(_), None) => {} // Unsubscribed meanwhile.
                (Err(e), _) => {
                    tracing::warn!(topic = topic.as_str(), error = %e, "subscribing failed");
                    self.subscribed.remove(&topic);
                }
            },
            OpDone::NodeGone(member, Ok(seq)) => {
                tracing::info!(node = %member.node, incarnation = member.incarnation, seq, "appended the dead node's NodeGone");
                self.gone.remove(&member);
            }
            OpDone::NodeGone(member, Err(BusError::Conflict)) => {
                // Another node appended first (or this node's reader is behind): the entry
                // read from the log settles it; else it is tried again at the next poll.
                tracing::debug!(node = %member.node, "NodeGone: the log moved on under the dead node's key");
            }
            OpDone::NodeGone(member, Err(e)) => {
                tracing::warn!(node = %member.node, error = %e, "appending NodeGone failed; trying again");
            }
        }
    }

    /// A log entry: noted (for `NodeGone`'s expectation) and handed to the hub.
    fn entry(&mut self, entry: LogEntry) {
        if entry.key.starts_with("user.") {
            self.last_seq.insert(entry.key.clone(), entry.seq);
            if let Some(member) = is_node_gone(&entry.payload) {
                self.gone.remove(&member);
                if self.buried.len() == BURIED {
                    self.buried.pop_front();
                }
                self.buried.push_back(member);
            }
        }
        self.outgoing.push_back(FromBus::Entry(entry));
    }

    async fn request(&mut self, request: ToBus) {
        let bus = self.bus.clone();
        match request {
            ToBus::Publish { topic, payload } => {
                match tokio::time::timeout(PUBLISH_WAIT, bus.publish(&topic, payload)).await {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => tracing::debug!(topic = topic.as_str(), error = %e, "publication lost"),
                    Err(_) => tracing::debug!(topic = topic.as_str(), "publication lost: the bus is not taking any"),
                }
            }
            ToBus::Append { token, key, expect, payload } => self.in_flight.push(
                async move {
                    let result = bus.append(&key, payload, expect).await;
                    OpDone::Input(FromBus::Appended { token, result })
                }
                .boxed(),
            ),
            ToBus::Claim { id, key, value } => self.in_flight.push(
                async move { OpDone::Input(FromBus::Claimed { id, result: bus.claim(&key, value).await }) }.boxed(),
            ),
            ToBus::TakeOver { id, key, value, revision } => {
                self.in_flight.push(
                    async move {
                        OpDone::Input(FromBus::Claimed { id, result: bus.take_over(&key, value, revision).await })
                    }
                    .boxed(),
                )
            }
            ToBus::Release { key, revision } => self.in_flight.push(
                async move {
                    if let Err(e) = bus.release(&key, revision).await {
                        tracing::debug!(key = key.as_str(), error = %e, "releasing a claim failed");
                    }
                    OpDone::Nothing
                }
                .boxed(),
            ),
            ToBus::Subscribe(topic) => {
                if self.subscribed.contains_key(&topic) {
                    return;
                }
                self.subscribed.insert(topic.clone(), CancellationToken::new());
                self.in_flight.push(
                    async move {
                        let result = bus.subscribe(&topic).await;
                        OpDone::Subscribed(topic, result)
                    }
                    .boxed(),
                );
            }
            ToBus::Unsubscribe(topic) => {
                if let Some(token) = self.subscribed.remove(&topic) {
                    token.cancel();
                }
            }
        }
    }

    /// No heartbeat acknowledged for the grace: stop serving before the others declare this
    /// node dead.
    fn cut_off(&mut self) {
        tracing::error!(
            since_last_beat = ?self.last_ack.elapsed(),
            incarnation = self.incarnation,
            "cut off from the cluster bus: dropping every user, refusing connections until it is back"
        );
        self.state = State::CutOff;
        self.metrics.cluster_state.store(State::CutOff as u8, Relaxed);
        self.membership = None;
        self.log = None;
        for (_, token) in self.subscribed.drain() {
            token.cancel();
        }
        self.gone.clear();
        self.last_seq.clear();
        self.buried.clear();
        // What was read for the old incarnation goes; answers stay (requests wait for them).
        self.outgoing.retain(|input| matches!(input, FromBus::Appended { .. } | FromBus::Claimed { .. }));
        self.outgoing.push_back(FromBus::CutOff);
        self.update_view();
    }

    /// Joined again as a new incarnation (the log is read from its start again): serve.
    fn back(&mut self) {
        self.state = State::Serving;
        self.last_ack = Instant::now();
        self.metrics.cluster_state.store(State::Serving as u8, Relaxed);
        tracing::info!(
            incarnation = self.incarnation,
            node_id = self.node_id,
            "back in the cluster as a new incarnation"
        );
        self.outgoing.push_back(FromBus::Back { incarnation: self.incarnation });
        self.update_view();
    }

    fn update_view(&self) {
        let Ok(mut view) = self.status.lock() else { return };
        view.incarnation = self.incarnation;
        view.state = self.state;
        view.members = match &self.membership {
            Some(membership) => {
                membership.known().map(|m| (m.node.clone(), m.incarnation, membership.node_id_of(&m.node))).collect()
            }
            None if self.state == State::CutOff => Vec::new(),
            None => view.members.clone(),
        };
    }

    /// A clean stop: the node number goes back; the heartbeat expires by itself.
    async fn leave(mut self) {
        for (_, token) in self.subscribed.drain() {
            token.cancel();
        }
        let membership = match self.membership.take() {
            Some(membership) => Some(membership),
            None => match self.membership_op.take() {
                Some(op) => match tokio::time::timeout(LEAVE_WAIT, op).await {
                    Ok(MembershipDone::Beat(m, _) | MembershipDone::Polled(m, _)) => Some(m),
                    Ok(MembershipDone::Joined(Ok((m, _)))) => Some(m),
                    _ => None,
                },
                None => None,
            },
        };
        if let Some(membership) = membership {
            match tokio::time::timeout(LEAVE_WAIT, membership.leave()).await {
                Ok(Ok(())) => tracing::info!("left the cluster"),
                Ok(Err(e)) => tracing::warn!(error = %e, "leaving the cluster: the node number stays until taken over"),
                Err(_) => tracing::warn!("leaving the cluster timed out: the node number stays until taken over"),
            }
        }
    }
}

/// PLACEHOLDER (core): the `NodeGone { node, incarnation }` event. Its encoding is the core's
/// (the event types live there); this stands in, recognizably, until the core defines it.
fn node_gone_event(member: &Member) -> Bytes {
    Bytes::from(format!("node-gone {} {:016x}", member.node, member.incarnation))
}

/// PLACEHOLDER (core): the member a `NodeGone` entry is about, if it is one.
fn is_node_gone(payload: &[u8]) -> Option<Member> {
    let text = std::str::from_utf8(payload).ok()?;
    let mut words = text.strip_prefix("node-gone ")?.split(' ');
    let node = words.next()?.to_owned();
    let incarnation = u64::from_str_radix(words.next()?, 16).ok()?;
    Some(Member { node, incarnation })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grace_ends_before_the_ttl() {
        assert_eq!(grace(Duration::from_secs(5)), Duration::from_secs(3));
        for ms in [500, 2000, 5000, 30_000] {
            let ttl = Duration::from_millis(ms);
            assert!(grace(ttl) < ttl && grace(ttl) > ttl / 3, "{ttl:?}");
        }
    }

    /// A test's stand-in for the hub: the bridge's hub end, and the log entries that arrived
    /// while it waited for something else.
    struct TestHub {
        side: HubSide,
        entries: VecDeque<LogEntry>,
    }

    impl TestHub {
        /// The next input that `pick` takes, within 10 s (log entries passed over are kept).
        async fn next<T>(&mut self, what: &str, mut pick: impl FnMut(FromBus) -> Option<T>) -> T {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                match tokio::time::timeout_at(deadline, self.side.from_bus.recv()).await {
                    Ok(Some(FromBus::Entry(entry))) => self.entries.push_back(entry),
                    Ok(Some(input)) => {
                        if let Some(found) = pick(input) {
                            return found;
                        }
                    }
                    Ok(None) => panic!("the bridge ended while waiting for {what}"),
                    Err(_) => panic!("no {what} within 10 s"),
                }
            }
        }

        /// The next log entry, within 10 s.
        async fn entry(&mut self) -> LogEntry {
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Some(entry) = self.entries.pop_front() {
                    return entry;
                }
                match tokio::time::timeout_at(deadline, self.side.from_bus.recv()).await {
                    Ok(Some(FromBus::Entry(entry))) => return entry,
                    Ok(Some(_)) => {}
                    Ok(None) => panic!("the bridge ended while waiting for a log entry"),
                    Err(_) => panic!("no log entry within 10 s"),
                }
            }
        }

        fn send(&self, request: ToBus) {
            self.side.send(request).expect("room in the bridge's channel");
        }
    }

    /// Two nodes' bridges on the machine's NATS, driven from their hub ends as the hub will
    /// (the core's effects do not exist yet): messages, log entries in order, appends with
    /// their conflicts, and claims cross between them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_bridge_carries_messages_log_entries_and_claims_between_nodes() {
        let network = chinwag_bus::test_nats::TestNetwork::new().await;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut sides = Vec::new();
        for node in ["a", "b"] {
            let cfg = ClusterConfig {
                url: network.options().url.clone(),
                name: network.options().cluster.clone(),
                node: Name::new(node).expect("a node name"),
            };
            let joined = join(&cfg).await.expect("join");
            let (side, _status) =
                start(joined, Metrics::new(), shutdown.clone(), &tracker).await.expect("start the bridge");
            sides.push(side);
        }
        let mut a = TestHub { side: sides.remove(0), entries: VecDeque::new() };
        let mut b = TestHub { side: sides.remove(0), entries: VecDeque::new() };
        let room = Topic::room("#general");

        // A subscription on b, publications from a: every one, in order.
        b.send(ToBus::Subscribe(room.clone()));
        // The subscription is made asynchronously: publish until one gets through.
        let hello = Bytes::from_static(b"hello?");
        let mut through = false;
        for _ in 0..50 {
            a.send(ToBus::Publish { topic: room.clone(), payload: hello.clone() });
            if let Ok(Some(FromBus::Message { payload, .. })) =
                tokio::time::timeout(Duration::from_millis(200), b.side.from_bus.recv()).await
            {
                assert_eq!(payload, hello);
                through = true;
                break;
            }
        }
        assert!(through, "b receives a's publications once subscribed");
        for n in 0..50u32 {
            a.send(ToBus::Publish { topic: room.clone(), payload: Bytes::from(n.to_string()) });
        }
        let mut got = Vec::new();
        while got.len() < 50 {
            let payload = b
                .next("a message", |input| match input {
                    FromBus::Message { payload, .. } if payload != hello => Some(payload),
                    _ => None,
                })
                .await;
            got.push(String::from_utf8_lossy(&payload).into_owned());
        }
        assert_eq!(got, (0..50).map(|n| n.to_string()).collect::<Vec<_>>(), "in the order published");
        // Unsubscribed, b gets no more.
        b.send(ToBus::Unsubscribe(room.clone()));
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.send(ToBus::Publish { topic: room.clone(), payload: Bytes::from_static(b"late") });

        // Appends: answered to the appender, a stale one refused, and the log read back by both
        // nodes.
        let key = LogKey::room("#general");
        a.send(ToBus::Append { token: 1, key: key.clone(), expect: Expect::Empty, payload: Bytes::from_static(b"e1") });
        let seq = a
            .next("the append's answer", |input| match input {
                FromBus::Appended { token: 1, result } => Some(result.expect("appended")),
                _ => None,
            })
            .await;
        b.send(ToBus::Append { token: 2, key: key.clone(), expect: Expect::Empty, payload: Bytes::from_static(b"e2") });
        let conflict = b
            .next("the append's answer", |input| match input {
                FromBus::Appended { token: 2, result } => Some(result),
                FromBus::Message { payload, .. } => panic!("b got {payload:?} after unsubscribing"),
                _ => None,
            })
            .await;
        assert!(matches!(conflict, Err(BusError::Conflict)), "{conflict:?}");
        for side in [&mut a, &mut b] {
            let entry = side.entry().await;
            assert_eq!((entry.seq, entry.key.as_str(), &entry.payload[..]), (seq, key.as_str(), &b"e1"[..]));
        }

        // Claims: one holder; the other is told who.
        let nick = ClaimKey::nick("alice");
        a.send(ToBus::Claim { id: RequestId(7), key: nick.clone(), value: Bytes::from_static(b"a/alice") });
        let granted = a
            .next("the claim's answer", |input| match input {
                FromBus::Claimed { id: RequestId(7), result } => Some(result.expect("claimed")),
                _ => None,
            })
            .await;
        let Claim::Granted { revision } = granted else { panic!("not granted: {granted:?}") };
        b.send(ToBus::Claim { id: RequestId(8), key: nick.clone(), value: Bytes::from_static(b"b/alice") });
        let taken = b
            .next("the claim's answer", |input| match input {
                FromBus::Claimed { id: RequestId(8), result } => Some(result.expect("answered")),
                _ => None,
            })
            .await;
        assert_eq!(taken, Claim::Taken { holder: Bytes::from_static(b"a/alice"), revision });

        // Stopping ends both tasks.
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the node tasks end");
    }

    #[test]
    fn node_gone_placeholder_round_trips() {
        let member = Member { node: "b-2".into(), incarnation: 0xdead_beef };
        assert_eq!(is_node_gone(&node_gone_event(&member)), Some(member));
        assert_eq!(is_node_gone(b"introduce alice"), None);
    }
}
