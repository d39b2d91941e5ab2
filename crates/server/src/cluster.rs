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
//! **The core's side**: the hub holds an `Option<HubSide>` (`None` on a server on its own: no
//! task, no channel, one branch). It hands the core's `Effect::Cluster` to [`carry_out`] and its
//! nick claims (`Request::Claim`) to [`claim`], which turn them into [`ToBus`]; every [`FromBus`]
//! goes to [`on_input`], which feeds the core (`Server::apply`, `remote`, `appended`,
//! `complete`, `node_lost`, and `enable_cluster` again after a cut-off).
//!
//! Dead nodes: a node incarnation is dead when a poll that started after the hub first saw its
//! users in the core's replica does not find its heartbeat (or membership saw it go); the core
//! then appends its `NodeGone` (`Server::node_lost`), expecting the last entry it applied under
//! that node's key, so of all the nodes that notice, one appends it.
//!
//! Cut off: when no heartbeat was acknowledged for [`grace`] (3 s of a 5 s TTL: less than the
//! TTL, so the node stops serving before anyone declares it dead), every user is dropped with
//! [`LOST_NETWORK`], new connections are refused, `/readyz` answers 503; once the bus answers
//! again the node joins as a new incarnation (keeping its node number if it can) and serves.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use bytes::Bytes;
use chinwag_bus::membership::{Changes, JoinError, Membership};
use chinwag_bus::{
    Bus, BusError, Claim, ClaimKey, Expect, LogEntry, LogKey, LogReader, Name, NatsBus, NatsOptions, Topic,
};
use chinwag_core::{
    AppendError, AppendId, ClaimAnswer, ClaimRequest, ClusterEffect, ClusterIdentity, RequestId, Response, UserId,
};
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

// Everything the core leaves for the bus (at most a maximal multiline message) fits.
const _: () = assert!(chinwag_core::MAX_PAYLOAD <= chinwag_bus::MAX_PAYLOAD);

/// What every user of a node cut off from the bus is told (`ERROR :…`).
pub(crate) const LOST_NETWORK: &str = "Lost the network; reconnect (another node will take you)";
/// What a connection is told while the node reads the network's log up to its end.
pub(crate) const JOINING: &str = "This node is joining the network; reconnect in a moment (or to another node)";
/// How often the node reads who is alive (and, cut off, tries to join again).
const POLL: Duration = Duration::from_secs(1);
/// Capacity of the hub → bridge channel.
const TO_BUS_QUEUE: usize = 1024;
/// Requests the hub keeps for a busy bridge beyond its channel (`HubSide::backlog`); past it,
/// publications are dropped (subscriptions and releases are always kept).
const BACKLOG: usize = 64 * 1024;
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
/// How long an append may wait for the subscription it must follow (`ToBus::Append::heard`)
/// before it is answered "unavailable" without being made.
const HEAR_WAIT: Duration = Duration::from_secs(2);
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
    /// No heartbeat acknowledged for the grace: users dropped, connections refused, joining.
    CutOff = 2,
    /// Joined, reading the network's log up to where it ended at the join: connections are
    /// refused until then (a node that served earlier would judge nicks, rooms and modes
    /// against a replica that is behind).
    Joining = 3,
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

/// From the hub to the bus (through [`HubSide::send`]): the core's `ClusterEffect`s
/// ([`carry_out`]) and nick claims ([`claim`]) in the bus's terms.
#[derive(Debug)]
pub(crate) enum ToBus {
    /// Append an event to the log; answered with [`FromBus::Appended`] carrying `token`. The
    /// event is applied when it comes back through the log, never from this answer. `heard`:
    /// subscribe to that topic if not yet, and append only once NATS confirmed the
    /// subscription (within [`HEAR_WAIT`], else the answer is "unavailable").
    Append { token: u64, key: LogKey, expect: Expect, payload: Bytes, heard: Option<Topic> },
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
    /// The core applied the `NodeGone` of this node's `incarnation` (it was frozen past the
    /// TTL): cut off now, as after the grace, and join again (nothing if that incarnation is
    /// already over).
    Rejoin { incarnation: u64 },
}

/// From the bus to the hub, handled by [`on_input`].
#[derive(Debug)]
pub(crate) enum FromBus {
    /// The next log entry, in the log's order, with no gap (from sequence 1 after each join).
    Entry(LogEntry),
    /// A message published to a topic this node subscribed to.
    Message { payload: Bytes },
    /// The answer to [`ToBus::Append`].
    Appended { token: u64, result: Result<u64, BusError> },
    /// The answer to [`ToBus::Claim`] or [`ToBus::TakeOver`] (with, for a taken nick, whether
    /// its holder's node incarnation is alive now).
    Claimed { id: RequestId, answer: ClaimAnswer },
    /// A poll of who is alive, started at `polled_at`: the other live nodes, and who joined or
    /// died since the last poll (this node's own rejoin is [`FromBus::Back`]).
    Members { changes: Changes, live: HashSet<(String, u64)>, polled_at: Instant },
    /// No heartbeat was acknowledged for the grace: every user must go, now.
    CutOff,
    /// Joined again, as `incarnation`: the log is read again from its start.
    Back { incarnation: u64 },
    /// Every log entry up to the log's end at the join was handed over: serve.
    CaughtUp,
}

/// The hub's end of the bridge (`Hub::cluster`; `None` on a server on its own).
#[derive(Debug)]
pub(crate) struct HubSide {
    from_bus: mpsc::Receiver<FromBus>,
    to_bus: mpsc::Sender<ToBus>,
    /// Cut off from the bus: new connections are refused.
    pub cut_off: bool,
    /// The log was read up to its end at the join (until then connections are refused).
    pub caught_up: bool,
    /// This node and its current incarnation, as the core knows it.
    me: ClusterIdentity,
    /// The other node incarnations the core's replica has users of, and when the hub first saw
    /// each there: a poll started later that does not find it alive proves it dead.
    seen: HashMap<(String, u64), Instant>,
    /// Publications, subscriptions and nick releases the bridge had no room for, in order,
    /// sent first as soon as there is room: a burst or a stall of the bridge must not lose a
    /// private message (nothing fills its gap), leave a room unheard or a nick held for good.
    /// Bounded by [`BACKLOG`] for publications; dropped when the node is cut off (its
    /// subscriptions and claims are made again from nothing).
    backlog: VecDeque<ToBus>,
    /// Publications dropped since the start (the backlog was full).
    dropped: u64,
}

impl HubSide {
    /// This node as the core must know it (`Server::enable_cluster`).
    pub(crate) fn identity(&self) -> ClusterIdentity {
        self.me.clone()
    }

    /// Why a new connection is refused now, if it is.
    pub(crate) fn refusal(&self) -> Option<&'static str> {
        if self.cut_off {
            Some(LOST_NETWORK)
        } else if !self.caught_up {
            Some(JOINING)
        } else {
            None
        }
    }

    /// Hands `request` to the bridge without waiting; gives it back if the bridge is full or
    /// gone (the caller answers "unavailable", or drops a publication).
    pub(crate) fn send(&self, request: ToBus) -> Result<(), ToBus> {
        self.to_bus.try_send(request).map_err(|e| match e {
            mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r) => r,
        })
    }

    /// Hands one of the core's requests to the bridge. An append goes at once, or comes back
    /// when the bridge is full (to be answered "unavailable"), unless it must follow a
    /// subscription while requests wait already: then it waits behind them (an unsubscription
    /// of that room, say), or it could be made on a subscription about to end. Everything else
    /// waits for room in order.
    fn hand_over(&mut self, request: ToBus) -> Result<(), ToBus> {
        let after_backlog = matches!(request, ToBus::Append { heard: Some(_), .. }) && !self.backlog.is_empty();
        if matches!(request, ToBus::Append { .. }) && !after_backlog {
            return self.send(request);
        }
        self.send_in_order(request);
        Ok(())
    }

    /// Hands a request to the bridge behind any that wait already.
    fn send_in_order(&mut self, request: ToBus) {
        self.send_backlog();
        let request = if self.backlog.is_empty() {
            match self.to_bus.try_send(request) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(request)) => request,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
            }
        } else {
            request
        };
        if self.backlog.len() >= BACKLOG && matches!(request, ToBus::Publish { .. }) {
            self.dropped += 1;
            if self.dropped.is_power_of_two() {
                tracing::warn!(dropped = self.dropped, "the cluster bridge is far behind: publications dropped");
            }
            return;
        }
        self.backlog.push_back(request);
    }

    /// Sends what waits for room, in order, as far as there is room.
    fn send_backlog(&mut self) {
        while let Some(request) = self.backlog.pop_front() {
            match self.to_bus.try_send(request) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(request)) => {
                    self.backlog.push_front(request);
                    return;
                }
                // The bridge is gone: so is the node's place in the cluster.
                Err(mpsc::error::TrySendError::Closed(_)) => self.backlog.clear(),
            }
        }
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
    if let Some(side) = &mut hub.cluster {
        side.send_backlog();
    }
    match input {
        FromBus::Entry(entry) => hub.server.apply(entry.seq, &entry.key, &entry.payload, now()),
        FromBus::Message { payload } => hub.server.remote(&payload, now()),
        FromBus::Appended { token, result } => {
            let outcome = result.map_err(|e| match e {
                BusError::Conflict { last } => AppendError::Conflict { last },
                other => {
                    tracing::debug!(error = %other, "a cluster log append failed");
                    AppendError::Unavailable
                }
            });
            hub.server.appended(AppendId(token), outcome, now());
        }
        FromBus::Claimed { id, answer } => hub.server.complete(id, Response::Claim(answer), now()),
        FromBus::Members { changes, live, polled_at } => {
            for member in &changes.gone {
                hub.server.node_lost(&member.node, member.incarnation, now());
            }
            for (node, incarnation) in dead_incarnations(hub, &live, polled_at) {
                tracing::warn!(%node, incarnation, "a node's users are in the replica but its heartbeat is gone");
                hub.server.node_lost(&node, incarnation, now());
            }
        }
        FromBus::CutOff => {
            if let Some(side) = &mut hub.cluster {
                side.cut_off = true;
                side.backlog.clear();
            }
            let dropped = hub.drop_everyone(LOST_NETWORK, now());
            tracing::warn!(dropped, "cut off from the cluster: every user dropped, new connections refused");
        }
        FromBus::Back { incarnation } => {
            let Some(side) = &mut hub.cluster else { return };
            side.cut_off = false;
            side.caught_up = false;
            side.me.incarnation = incarnation;
            side.seen.clear();
            side.backlog.clear();
            // The replica starts over: the log is read again from its start.
            hub.server.enable_cluster(side.me.clone());
            tracing::info!(incarnation, "back in the cluster: reading its log");
        }
        FromBus::CaughtUp => {
            if let Some(side) = &mut hub.cluster {
                side.caught_up = true;
            }
            tracing::info!(
                remote_users = hub.server.remote_user_count(),
                "read the network's log: accepting connections"
            );
        }
    }
}

/// The node incarnations the core holds users of that a poll started at `polled_at` proves
/// dead: not alive then, and seen in the replica before the poll began (an incarnation seen
/// later may have joined after the poll read the heartbeats). This also finds those that died
/// with nobody left to say so, this node's own previous run included.
fn dead_incarnations(hub: &mut Hub, live: &HashSet<(String, u64)>, polled_at: Instant) -> Vec<(String, u64)> {
    let present = hub.server.remote_incarnations();
    let Some(side) = &mut hub.cluster else { return Vec::new() };
    side.seen.retain(|held, _| present.binary_search(held).is_ok());
    let at = Instant::now();
    let mut dead = Vec::new();
    for held in present {
        if live.contains(&held) {
            continue;
        }
        match side.seen.get(&held) {
            Some(first) if *first < polled_at => dead.push(held),
            Some(_) => {}
            None => {
                side.seen.insert(held, at);
            }
        }
    }
    dead
}

/// Carries out one of the core's cluster effects: hands it to the bridge. An append the bridge
/// cannot take is answered "unavailable" at once; the rest wait for room in order
/// (`HubSide::send_in_order`).
pub(crate) fn carry_out(hub: &mut Hub, effect: ClusterEffect) {
    let request = match effect {
        ClusterEffect::Append { id, key, expect, event, heard } => match log_key(&key) {
            Some(key) => {
                let heard = heard.as_ref().and_then(bus_topic);
                ToBus::Append { token: id.0, key, expect: bus_expect(expect), payload: event, heard }
            }
            None => return hub.server.appended(id, Err(AppendError::Unavailable), now()),
        },
        ClusterEffect::Publish { topic, payload } => match bus_topic(&topic) {
            Some(topic) => ToBus::Publish { topic, payload },
            None => return,
        },
        ClusterEffect::ReleaseNick { nick, revision } => ToBus::Release { key: ClaimKey::nick(&nick), revision },
        ClusterEffect::Subscribe { topic } => match bus_topic(&topic) {
            Some(topic) => ToBus::Subscribe(topic),
            None => return,
        },
        ClusterEffect::Unsubscribe { topic } => match bus_topic(&topic) {
            Some(topic) => ToBus::Unsubscribe(topic),
            None => return,
        },
        ClusterEffect::Rejoin => return rejoin(hub),
    };
    let Some(side) = &mut hub.cluster else {
        if let ToBus::Append { token, .. } = request {
            hub.server.appended(AppendId(token), Err(AppendError::Unavailable), now());
        }
        return;
    };
    if let Err(ToBus::Append { token, .. }) = side.hand_over(request) {
        hub.server.appended(AppendId(token), Err(AppendError::Unavailable), now());
    }
}

/// The core dropped its users because the log declared this incarnation gone: new connections
/// are refused from now on, and the bridge cuts off and joins again (its [`FromBus::CutOff`]
/// and [`FromBus::Back`] then take the usual path).
fn rejoin(hub: &mut Hub) {
    let Some(side) = &mut hub.cluster else { return };
    side.cut_off = true;
    // What waited for the bridge was this incarnation's, which the network declared dead.
    side.backlog.clear();
    side.send_in_order(ToBus::Rejoin { incarnation: side.me.incarnation });
}

/// Hands a nick claim of the core's to the bridge; gives it back when the bridge cannot take it
/// (the caller answers it "unavailable").
pub(crate) fn claim(hub: &mut Hub, id: RequestId, request: ClaimRequest) -> Result<(), ClaimRequest> {
    let Some(side) = &hub.cluster else { return Err(request) };
    let to_bus = match &request {
        ClaimRequest::Nick { nick, holder } => ToBus::Claim { id, key: ClaimKey::nick(nick), value: holder.clone() },
        ClaimRequest::TakeOver { nick, holder, revision } => {
            ToBus::TakeOver { id, key: ClaimKey::nick(nick), value: holder.clone(), revision: *revision }
        }
    };
    side.send(to_bus).map_err(|_| request)
}

/// The core's log key in the bus's terms (`None` for a node name the bus would refuse, which
/// no node has).
fn log_key(key: &chinwag_core::LogKey) -> Option<LogKey> {
    Some(match key {
        chinwag_core::LogKey::User(node) => LogKey::node(&Name::new(node).ok()?),
        chinwag_core::LogKey::Net => LogKey::net(),
        chinwag_core::LogKey::Room(folded) => LogKey::room(folded),
    })
}

fn bus_topic(topic: &chinwag_core::Topic) -> Option<Topic> {
    Some(match topic {
        chinwag_core::Topic::Node(node) => Topic::node(&Name::new(node).ok()?),
        chinwag_core::Topic::Room(folded) => Topic::room(folded),
        chinwag_core::Topic::Network => Topic::every_node(),
    })
}

fn bus_expect(expect: chinwag_core::Expect) -> Expect {
    match expect {
        chinwag_core::Expect::Any => Expect::Any,
        chinwag_core::Expect::Empty => Expect::Empty,
        chinwag_core::Expect::Last(seq) => Expect::Last(seq),
    }
}

/// A claim's outcome as the core wants it: for a taken nick, whether its holder's node
/// incarnation is alive now (read from the bus; alive when unreadable or unknown, so that a
/// claim is never taken from a live holder).
async fn claim_answer(bus: &NatsBus, result: Result<Claim, BusError>) -> ClaimAnswer {
    match result {
        Ok(Claim::Granted { revision }) => ClaimAnswer::Granted { revision },
        Ok(Claim::Taken { holder, revision }) => {
            let alive = match UserId::from_claim_value(&holder) {
                Some(uid) => chinwag_bus::membership::is_alive(bus, &uid.node, uid.incarnation).await.unwrap_or(true),
                None => true,
            };
            ClaimAnswer::Taken { holder, revision, alive }
        }
        Err(e) => {
            tracing::debug!(error = %e, "a nick claim got no answer");
            ClaimAnswer::Unavailable
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

    /// This node as the core must know it (`Server::enable_cluster`).
    pub(crate) fn identity(&self) -> ClusterIdentity {
        let me = self.membership.me();
        ClusterIdentity { node: me.node.clone(), incarnation: me.incarnation }
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
    let me = joined.identity();
    let Joined { bus, membership, network } = joined;
    let end = bus.log_end().await.context("reading where the cluster's log ends")?;
    let log = bus.read_log(1).await.context("reading the cluster's log")?;
    let node = Name::new(&me.node).context("the node's name")?;
    // Messages for this node's users, and for every node: subscribed before any user can be
    // told of.
    let own = own_topics(&bus, &node).await.context("subscribing to the node's topics")?;
    let (to_bus, from_hub) = mpsc::channel(TO_BUS_QUEUE);
    let (to_hub, from_bus) = mpsc::channel(FROM_BUS_QUEUE);
    let status = Arc::new(Mutex::new(View {
        network: network.to_string(),
        node: me.node.clone(),
        incarnation: me.incarnation,
        node_id: membership.node_id(),
        state: State::Joining,
        members: Vec::new(),
    }));
    metrics.cluster_state.store(State::Joining as u8, Relaxed);
    let ttl = membership.heartbeat_ttl();
    let mut bridge = Bridge {
        bus,
        node,
        node_id: membership.node_id(),
        incarnation: me.incarnation,
        ttl,
        membership: Some(membership),
        membership_op: None,
        beat_due: false,
        poll_due: false,
        state: State::Joining,
        catch_up: end,
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
        polled_at: Instant::now(),
    };
    for (topic, subscription) in own {
        bridge.listen(topic, subscription);
    }
    bridge.caught_up_to(0);
    bridge.update_view();
    tracker.spawn(bridge.run(shutdown));
    Ok((
        HubSide {
            from_bus,
            to_bus,
            cut_off: false,
            caught_up: false,
            me,
            seen: HashMap::new(),
            backlog: VecDeque::new(),
            dropped: 0,
        },
        status,
    ))
}

/// What a membership operation (one at a time) gives back.
enum MembershipDone {
    Beat(Membership<NatsBus>, Result<(), BusError>),
    Polled(Membership<NatsBus>, Result<Changes, BusError>),
    /// Joined again, with the log's end, the log read from its start and the node's topic
    /// subscribed.
    Joined(Result<(Membership<NatsBus>, u64, LogReader, OwnTopics), String>),
}

/// What a bus operation in flight gives back.
enum OpDone {
    /// For the hub.
    Input(FromBus),
    /// A subscription made (or not); its token cancelled means it is no longer wanted.
    Subscribed(Topic, CancellationToken, Result<chinwag_bus::Subscription, BusError>),
    /// Done, nothing to say.
    Nothing,
}

/// The topics a node listens to for as long as it is in the cluster, subscribed.
type OwnTopics = Vec<(Topic, chinwag_bus::Subscription)>;

/// Subscribes to the node's own topic and every node's.
async fn own_topics(bus: &NatsBus, node: &Name) -> Result<OwnTopics, BusError> {
    let mut own = Vec::new();
    for topic in [Topic::node(node), Topic::every_node()] {
        let subscription = bus.subscribe(&topic).await?;
        own.push((topic, subscription));
    }
    Ok(own)
}

/// Subscribes to `topic` after `delay` (a retry), unless `token` is cancelled first.
async fn subscribing(bus: NatsBus, topic: Topic, token: CancellationToken, delay: Duration) -> OpDone {
    tokio::select! {
        _ = token.cancelled() => return OpDone::Nothing,
        _ = tokio::time::sleep(delay) => {}
    }
    let result = bus.subscribe(&topic).await;
    OpDone::Subscribed(topic, token, result)
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
    /// While [`State::Joining`]: the log's end at the join, to be read up to.
    catch_up: u64,
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
    subscriptions: SelectAll<BoxStream<'static, Bytes>>,
    /// Each topic the node listens to (or is subscribing to).
    subscribed: HashMap<Topic, Listening>,
    in_flight: FuturesUnordered<BoxFuture<'static, OpDone>>,
    /// When the poll in flight (or the last one) started.
    polled_at: Instant,
}

/// A topic the node listens to.
#[derive(Default)]
struct Listening {
    /// Cancelled: its stream ends (unsubscribed, or cut off).
    stop: CancellationToken,
    /// Cancelled once NATS confirmed the subscription: appends held for it go.
    ready: CancellationToken,
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
            let serving = self.state != State::CutOff;
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
                    Some(Ok(entry)) => {
                        let seq = entry.seq;
                        self.outgoing.push_back(FromBus::Entry(entry));
                        self.caught_up_to(seq);
                    }
                    Some(Err(e)) => tracing::warn!(error = %e, "cluster log reader"),
                    None => {
                        // The reader resumes by itself across reconnections; one that ends
                        // leaves the node without the log: it cannot serve.
                        tracing::error!("the cluster log reader ended");
                        self.log = None;
                        if self.state != State::CutOff {
                            self.cut_off();
                        }
                    }
                },
                Some(payload) = self.subscriptions.next(), if reading && !self.subscriptions.is_empty() => {
                    self.outgoing.push_back(FromBus::Message { payload });
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
                            let end = bus.log_end().await.map_err(|e| format!("reading the log's end: {e}"))?;
                            let log = bus.read_log(1).await.map_err(|e| format!("reading the log: {e}"))?;
                            let own = own_topics(&bus, &node)
                                .await
                                .map_err(|e| format!("subscribing to the node's topics: {e}"))?;
                            Ok((membership, end, log, own))
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
            self.polled_at = Instant::now();
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
                if self.state != State::CutOff {
                    match result {
                        Ok(()) => self.last_ack = Instant::now(),
                        Err(e) => tracing::warn!(error = %e, "cluster heartbeat failed"),
                    }
                    self.membership = Some(membership);
                }
            }
            MembershipDone::Polled(membership, result) => {
                if self.state != State::CutOff {
                    match result {
                        Ok(changes) => self.changes(changes, &membership),
                        Err(e) => tracing::warn!(error = %e, "reading the cluster's live nodes failed"),
                    }
                    self.membership = Some(membership);
                    self.update_view();
                }
            }
            MembershipDone::Joined(Ok((membership, end, log, own))) => {
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
                for (topic, subscription) in own {
                    self.listen(topic, subscription);
                }
                self.back(end);
            }
            MembershipDone::Joined(Err(e)) => {
                tracing::warn!(error = %e, "joining the cluster again failed; trying again");
            }
        }
        self.start_membership_op();
    }

    /// A poll's result: tell the hub who is alive and who joined or died (the core appends a
    /// dead node's `NodeGone`).
    fn changes(&mut self, changes: Changes, membership: &Membership<NatsBus>) {
        let me = membership.me();
        for member in &changes.joined {
            if member != me {
                tracing::info!(node = %member.node, incarnation = member.incarnation, "a cluster node joined");
            }
        }
        for member in &changes.gone {
            if member != me {
                tracing::warn!(node = %member.node, incarnation = member.incarnation, "a cluster node is gone");
            }
        }
        let changes = Changes {
            joined: changes.joined.into_iter().filter(|m| m != me).collect(),
            gone: changes.gone.into_iter().filter(|m| m != me).collect(),
        };
        let live = membership.known().filter(|m| m != me).map(|m| (m.node, m.incarnation)).collect();
        self.outgoing.push_back(FromBus::Members { changes, live, polled_at: self.polled_at });
    }

    /// Delivers `subscription`'s messages as [`FromBus::Message`] until `topic` is unsubscribed
    /// (or the node is cut off).
    fn listen(&mut self, topic: Topic, subscription: chinwag_bus::Subscription) {
        let listening = self.subscribed.entry(topic).or_default();
        listening.ready.cancel();
        let stop = listening.stop.clone();
        self.subscriptions.push(subscription.take_until(stop.cancelled_owned()).boxed());
    }

    /// Starts listening to `topic` unless the node does already; the token that says NATS
    /// has the subscription.
    fn subscribe(&mut self, topic: Topic) -> CancellationToken {
        if let Some(listening) = self.subscribed.get(&topic) {
            return listening.ready.clone();
        }
        let listening = Listening::default();
        let ready = listening.ready.clone();
        let stop = listening.stop.clone();
        self.subscribed.insert(topic.clone(), listening);
        self.in_flight.push(subscribing(self.bus.clone(), topic, stop, Duration::ZERO).boxed());
        ready
    }

    fn op_done(&mut self, done: OpDone) {
        match done {
            OpDone::Input(input) => self.outgoing.push_back(input),
            OpDone::Nothing => {}
            // Unsubscribed (or cut off) meanwhile.
            OpDone::Subscribed(_, token, _) if token.is_cancelled() => {}
            OpDone::Subscribed(topic, _, Ok(subscription)) => self.listen(topic, subscription),
            OpDone::Subscribed(topic, token, Err(e)) => {
                // The core counts on it while the room has members here: without it, they
                // would hear nothing more from other nodes, and nothing would show the gap.
                tracing::warn!(topic = topic.as_str(), error = %e, "subscribing failed; trying again");
                self.in_flight.push(subscribing(self.bus.clone(), topic, token, POLL).boxed());
            }
        }
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
            ToBus::Append { token, key, expect, payload, heard } => {
                let ready = heard.map(|topic| self.subscribe(topic));
                self.in_flight.push(
                    async move {
                        if let Some(ready) = ready {
                            if tokio::time::timeout(HEAR_WAIT, ready.cancelled()).await.is_err() {
                                let error = BusError::Unavailable("no subscription to the room in time".to_owned());
                                return OpDone::Input(FromBus::Appended { token, result: Err(error) });
                            }
                        }
                        let result = bus.append(&key, payload, expect).await;
                        OpDone::Input(FromBus::Appended { token, result })
                    }
                    .boxed(),
                );
            }
            ToBus::Claim { id, key, value } => self.in_flight.push(
                async move {
                    let result = bus.claim(&key, value).await;
                    OpDone::Input(FromBus::Claimed { id, answer: claim_answer(&bus, result).await })
                }
                .boxed(),
            ),
            ToBus::TakeOver { id, key, value, revision } => self.in_flight.push(
                async move {
                    let result = bus.take_over(&key, value, revision).await;
                    OpDone::Input(FromBus::Claimed { id, answer: claim_answer(&bus, result).await })
                }
                .boxed(),
            ),
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
                self.subscribe(topic);
            }
            ToBus::Unsubscribe(topic) => {
                if let Some(listening) = self.subscribed.remove(&topic) {
                    listening.stop.cancel();
                }
            }
            ToBus::Rejoin { incarnation } => {
                if incarnation == self.incarnation && self.state != State::CutOff {
                    tracing::error!(incarnation, "the network declared this node gone while it was alive");
                    self.cut_off();
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
        for (_, listening) in self.subscribed.drain() {
            listening.stop.cancel();
        }
        // What was read for the old incarnation goes; answers stay (requests wait for them).
        self.outgoing.retain(|input| matches!(input, FromBus::Appended { .. } | FromBus::Claimed { .. }));
        self.outgoing.push_back(FromBus::CutOff);
        self.update_view();
    }

    /// Joined again as a new incarnation (the log is read from its start again): serve.
    fn back(&mut self, end: u64) {
        self.state = State::Joining;
        self.catch_up = end;
        self.last_ack = Instant::now();
        self.metrics.cluster_state.store(State::Joining as u8, Relaxed);
        tracing::info!(
            incarnation = self.incarnation,
            node_id = self.node_id,
            log_end = end,
            "back in the cluster as a new incarnation"
        );
        self.outgoing.push_back(FromBus::Back { incarnation: self.incarnation });
        self.caught_up_to(0);
        self.update_view();
    }

    /// The log was handed over up to `seq`: once that reaches its end at the join, serve.
    fn caught_up_to(&mut self, seq: u64) {
        if self.state == State::Joining && seq >= self.catch_up {
            self.state = State::Serving;
            self.metrics.cluster_state.store(State::Serving as u8, Relaxed);
            self.outgoing.push_back(FromBus::CaughtUp);
            self.update_view();
        }
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
        for (_, listening) in self.subscribed.drain() {
            listening.stop.cancel();
        }
        let membership = match self.membership.take() {
            Some(membership) => Some(membership),
            None => match self.membership_op.take() {
                Some(op) => match tokio::time::timeout(LEAVE_WAIT, op).await {
                    Ok(MembershipDone::Beat(m, _) | MembershipDone::Polled(m, _)) => Some(m),
                    Ok(MembershipDone::Joined(Ok((m, ..)))) => Some(m),
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

    /// A hub's end of a bridge whose channel holds one request, and the bridge's end.
    fn side_with_room_for_one() -> (HubSide, mpsc::Receiver<ToBus>) {
        let (to_bus, bridge) = mpsc::channel(1);
        let (_to_hub, from_bus) = mpsc::channel(1);
        let me = ClusterIdentity { node: "a".to_owned(), incarnation: 1 };
        let side = HubSide {
            from_bus,
            to_bus,
            cut_off: false,
            caught_up: true,
            me,
            seen: HashMap::new(),
            backlog: VecDeque::new(),
            dropped: 0,
        };
        (side, bridge)
    }

    /// The bridge busy (its queue full): a room's subscription, a nick's release, a private
    /// message and the room's unsubscription wait for room and then leave in their order, none
    /// lost.
    #[tokio::test]
    async fn what_a_busy_bridge_cannot_take_waits_in_order() {
        let (mut side, mut bridge) = side_with_room_for_one();
        let room = Topic::room("#busy");
        side.send_in_order(ToBus::Publish { topic: room.clone(), payload: Bytes::from_static(b"fills it") });
        side.send_in_order(ToBus::Subscribe(room.clone()));
        side.send_in_order(ToBus::Release { key: ClaimKey::nick("alice"), revision: 7 });
        side.send_in_order(ToBus::Publish { topic: room.clone(), payload: Bytes::from_static(b"a private message") });
        side.send_in_order(ToBus::Unsubscribe(room.clone()));
        assert_eq!(side.backlog.len(), 4);
        let mut got = Vec::new();
        for _ in 0..5 {
            let request = bridge.try_recv().expect("the next request reached the bridge");
            got.push(match request {
                ToBus::Publish { payload, .. } => format!("publish {}", String::from_utf8_lossy(&payload)),
                ToBus::Subscribe(topic) => format!("subscribe {}", topic.as_str()),
                ToBus::Release { revision, .. } => format!("release {revision}"),
                ToBus::Unsubscribe(topic) => format!("unsubscribe {}", topic.as_str()),
                other => panic!("unexpected {other:?}"),
            });
            side.send_backlog();
        }
        let subject = room.as_str();
        let want = [
            "publish fills it".to_owned(),
            format!("subscribe {subject}"),
            "release 7".to_owned(),
            "publish a private message".to_owned(),
            format!("unsubscribe {subject}"),
        ];
        assert_eq!(got, want);
        assert!(side.backlog.is_empty() && bridge.try_recv().is_err());
    }

    /// An append that must follow a room's subscription does not overtake an unsubscription of
    /// that room still waiting for the bridge; one that need not, comes back at once to be
    /// answered "unavailable".
    #[tokio::test]
    async fn an_append_that_must_follow_a_subscription_waits_behind_the_backlog() {
        let (mut side, mut bridge) = side_with_room_for_one();
        let room = Topic::room("#busy");
        let key = LogKey::room("#busy");
        side.send_in_order(ToBus::Publish { topic: room.clone(), payload: Bytes::from_static(b"fills it") });
        side.send_in_order(ToBus::Unsubscribe(room.clone()));
        let plain =
            ToBus::Append { token: 1, key: key.clone(), expect: Expect::Any, payload: Bytes::new(), heard: None };
        assert!(matches!(side.hand_over(plain), Err(ToBus::Append { token: 1, .. })), "no room: given back");
        let join = ToBus::Append { token: 2, key, expect: Expect::Empty, payload: Bytes::new(), heard: Some(room) };
        assert!(side.hand_over(join).is_ok());
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(match bridge.try_recv().expect("the next request reached the bridge") {
                ToBus::Publish { .. } => "publish".to_owned(),
                ToBus::Unsubscribe(_) => "unsubscribe".to_owned(),
                ToBus::Append { token, .. } => format!("append {token}"),
                other => panic!("unexpected {other:?}"),
            });
            side.send_backlog();
        }
        assert_eq!(got, ["publish", "unsubscribe", "append 2"]);
    }

    /// How node `node` joins the test `network`.
    fn node_config(network: &chinwag_bus::test_nats::TestNetwork, node: &str) -> ClusterConfig {
        ClusterConfig {
            url: network.options().url.clone(),
            name: network.options().cluster.clone(),
            node: Name::new(node).expect("a node name"),
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

    /// NATS gone while the hub goes on publishing (more than the NATS client buffers): the
    /// node is still cut off within the grace, before the others could declare it dead.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_node_whose_nats_is_gone_is_cut_off_in_time_however_much_it_publishes() {
        let store = tempfile::tempdir().expect("temp dir");
        let mut nats = chinwag_bus::test_nats::OwnNatsServer::start(store.path());
        let cfg = ClusterConfig {
            url: nats.url(),
            name: chinwag_bus::test_nats::unique_cluster_name(),
            node: Name::new("a").expect("a node name"),
        };
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let joined = join(&cfg).await.expect("join");
        let ttl = joined.membership.heartbeat_ttl();
        let (mut side, _status) = start(joined, Metrics::new(), shutdown.clone(), &tracker).await.expect("start");
        nats.kill();
        let killed = Instant::now();
        let deadline = killed + grace(ttl) + Duration::from_secs(2);
        let room = Topic::room("#busy");
        let mut sent = 0u32;
        loop {
            while sent < 20_000 && side.send(ToBus::Publish { topic: room.clone(), payload: Bytes::from("x") }).is_ok()
            {
                sent += 1;
            }
            match tokio::time::timeout(Duration::from_millis(10), side.from_bus.recv()).await {
                Ok(Some(FromBus::CutOff)) => break,
                Ok(Some(_)) | Err(_) => {}
                Ok(None) => panic!("the bridge ended"),
            }
            assert!(
                Instant::now() < deadline,
                "not cut off within {:?} of NATS going ({sent} publications handed over)",
                grace(ttl) + Duration::from_secs(2)
            );
        }
        // The hub's channel was full: publications were waiting on the bus the whole time.
        assert!(sent as usize > TO_BUS_QUEUE, "only {sent} publications were handed over");
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the node's task ends");
    }

    /// The core applied this incarnation's own `NodeGone` (it was frozen past the TTL): the
    /// bridge cuts off at once, well before its grace, and joins again as a new incarnation. A
    /// request naming another incarnation (one already over) changes nothing.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rejoin_request_cuts_off_at_once_and_joins_as_a_new_incarnation() {
        let network = chinwag_bus::test_nats::TestNetwork::new().await;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let cfg = node_config(&network, "a");
        let joined = join(&cfg).await.expect("join");
        let ttl = joined.membership.heartbeat_ttl();
        let (side, _status) = start(joined, Metrics::new(), shutdown.clone(), &tracker).await.expect("start");
        let mut a = TestHub { side, entries: VecDeque::new() };
        a.next("catching up", |input| matches!(input, FromBus::CaughtUp).then_some(())).await;
        let first = a.side.me.incarnation;
        a.send(ToBus::Rejoin { incarnation: first.wrapping_add(1) });
        let quiet = tokio::time::timeout(Duration::from_millis(300), async {
            loop {
                match a.side.from_bus.recv().await {
                    Some(FromBus::CutOff) | None => return,
                    Some(_) => {}
                }
            }
        })
        .await;
        assert!(quiet.is_err(), "a request for another incarnation cut the node off");
        let asked = Instant::now();
        a.send(ToBus::Rejoin { incarnation: first });
        a.next("the cut-off", |input| matches!(input, FromBus::CutOff).then_some(())).await;
        assert!(asked.elapsed() < grace(ttl), "cut off at once, not at the grace");
        let again = a.next("the rejoin", |input| match input {
            FromBus::Back { incarnation } => Some(incarnation),
            _ => None,
        });
        assert_ne!(again.await, first);
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the node's task ends");
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
            if let Ok(Some(FromBus::Message { payload })) =
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
                    FromBus::Message { payload } if payload != hello => Some(payload),
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
        let payload = Bytes::from_static(b"e1");
        a.send(ToBus::Append { token: 1, key: key.clone(), expect: Expect::Empty, payload, heard: None });
        let seq = a
            .next("the append's answer", |input| match input {
                FromBus::Appended { token: 1, result } => Some(result.expect("appended")),
                _ => None,
            })
            .await;
        let payload = Bytes::from_static(b"e2");
        b.send(ToBus::Append { token: 2, key: key.clone(), expect: Expect::Empty, payload, heard: None });
        let conflict = b
            .next("the append's answer", |input| match input {
                FromBus::Appended { token: 2, result } => Some(result),
                FromBus::Message { payload } => panic!("b got {payload:?} after unsubscribing"),
                _ => None,
            })
            .await;
        assert!(matches!(conflict, Err(BusError::Conflict { last: Some(l) }) if l == seq), "{conflict:?}");
        for side in [&mut a, &mut b] {
            let entry = side.entry().await;
            assert_eq!((entry.seq, entry.key.as_str(), &entry.payload[..]), (seq, key.as_str(), &b"e1"[..]));
        }

        // Claims: one holder; the other is told who.
        let nick = ClaimKey::nick("alice");
        a.send(ToBus::Claim { id: RequestId(7), key: nick.clone(), value: Bytes::from_static(b"a/alice") });
        let granted = a
            .next("the claim's answer", |input| match input {
                FromBus::Claimed { id: RequestId(7), answer } => Some(answer),
                _ => None,
            })
            .await;
        let ClaimAnswer::Granted { revision } = granted else { panic!("not granted: {granted:?}") };
        b.send(ToBus::Claim { id: RequestId(8), key: nick.clone(), value: Bytes::from_static(b"b/alice") });
        let taken = b
            .next("the claim's answer", |input| match input {
                FromBus::Claimed { id: RequestId(8), answer } => Some(answer),
                _ => None,
            })
            .await;
        // A holder value that names no node incarnation counts as alive.
        assert_eq!(taken, ClaimAnswer::Taken { holder: Bytes::from_static(b"a/alice"), revision, alive: true });

        // Stopping ends both tasks.
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the node tasks end");
    }

    /// A JOIN's entry goes to the log only once its node hears the room: the bridge subscribes
    /// first (asked or not) and appends when NATS has the subscription, so a member elsewhere
    /// who speaks the moment it reads the entry is heard by the newcomer's node.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_rooms_entry_is_appended_only_once_its_node_hears_the_room() {
        let network = chinwag_bus::test_nats::TestNetwork::new().await;
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let mut hubs = Vec::new();
        for node in ["a", "b"] {
            let joined = join(&node_config(&network, node)).await.expect("join");
            let (side, _status) = start(joined, Metrics::new(), shutdown.clone(), &tracker).await.expect("start");
            let mut hub = TestHub { side, entries: VecDeque::new() };
            hub.next("catching up", |input| matches!(input, FromBus::CaughtUp).then_some(())).await;
            hubs.push(hub);
        }
        let (mut a, mut b) = (hubs.remove(0), hubs.remove(0));
        for n in 0..5u32 {
            let room = Topic::room(&format!("#hello{n}"));
            let key = LogKey::room(&format!("#hello{n}"));
            let payload = Bytes::from(format!("join {n}"));
            a.send(ToBus::Append { token: n.into(), key, expect: Expect::Empty, payload, heard: Some(room.clone()) });
            // b speaks the moment it reads the entry, once.
            let entry = b.entry().await;
            assert_eq!(&entry.payload[..], format!("join {n}").as_bytes());
            b.send(ToBus::Publish { topic: room, payload: Bytes::from(format!("welcome {n}")) });
            let heard = a
                .next("b's welcome", |input| match input {
                    FromBus::Message { payload } => Some(payload),
                    _ => None,
                })
                .await;
            assert_eq!(&heard[..], format!("welcome {n}").as_bytes());
        }
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the node tasks end");
    }

    /// A node that joins a network whose log already holds entries refuses connections until
    /// every one of them was handed to the hub, and then says so once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_joining_node_serves_only_once_it_has_read_the_log_to_its_end() {
        let network = chinwag_bus::test_nats::TestNetwork::new().await;
        let earlier = network.connect().await;
        for n in 0..50u32 {
            earlier.append(&LogKey::net(), Bytes::from(n.to_string()), Expect::Any).await.expect("an earlier entry");
        }
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let cfg = node_config(&network, "a");
        let joined = join(&cfg).await.expect("join");
        let (mut side, status) = start(joined, Metrics::new(), shutdown.clone(), &tracker).await.expect("start");
        assert_eq!(side.refusal(), Some(JOINING), "no connection before the log is read");
        let mut entries = 0;
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match tokio::time::timeout_at(deadline, side.from_bus.recv()).await {
                Ok(Some(FromBus::Entry(_))) => entries += 1,
                Ok(Some(FromBus::CaughtUp)) => break,
                Ok(Some(_)) => {}
                other => panic!("no CaughtUp within 10 s (after {entries} entries): {other:?}"),
            }
        }
        assert_eq!(entries, 50, "caught up only after every earlier entry");
        assert_eq!(status.lock().expect("the view").state, State::Serving);
        // Later entries follow, without another CaughtUp.
        earlier.append(&LogKey::net(), Bytes::from_static(b"later"), Expect::Any).await.expect("a later entry");
        loop {
            match tokio::time::timeout_at(deadline, side.from_bus.recv()).await {
                Ok(Some(FromBus::Entry(entry))) => {
                    assert_eq!(&entry.payload[..], b"later");
                    break;
                }
                Ok(Some(FromBus::CaughtUp)) => panic!("caught up twice"),
                Ok(Some(_)) => {}
                other => panic!("no later entry: {other:?}"),
            }
        }
        shutdown.cancel();
        tracker.close();
        tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await.expect("the node task ends");
    }
}
