//! The hub: the one task that owns the core [`Server`] and applies its effects.
//!
//! Connections send it [`Event`]s over one bounded channel; it feeds them to the core in
//! arrival order and pushes the resulting lines into each connection's bounded outbound queue
//! without ever waiting on a connection.
//!
//! Durability: when the core asks for a message to be persisted, the effects that follow it
//! (its copies, the sender's echo, a labeled ACK) are held until that message is committed, so
//! nobody sees a message that a crash could still lose. Commits are grouped: one is in flight at
//! a time, and everything persisted meanwhile goes into the next, so the cost of a commit is
//! shared by as many messages as arrive while it runs.
//!
//! Holding is per connection, so that a slow or stalled store only delays those it must: a line
//! for a connection that has nothing held leaves at once (PONGs, WHO and NAMES replies of
//! everyone not waiting for a message), and a line for a connection with held lines is held
//! behind them, so each connection's lines stay in order. PONG and refusals are the exceptions
//! (see [`overtakes`]). What is held is bounded: at most [`HubLimits::max_held_bytes`] of
//! messages and the lines behind them (past it the core refuses new messages,
//! [`Server::set_storage_room`]), and for each connection no more lines held only to keep its
//! order than its SendQ (past it, it is dropped as a client that does not read would be).

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use chinwag_core::{ConnId, ConnInfo, ConnMap, Effect, Failure, HistoryItem, Now, RequestId, Response, Server};
use chinwag_proto::{Message, ParseError};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use crate::metrics::{Disconnect, Metrics};
use crate::outbox::{Full, Outbox, Pushed, Spares};
use crate::storage::{to_record, Storage};
use crate::work::Worker;

/// Work for the hub from outside the connections (admin commands, metrics, reload): a closure
/// run on the hub's task with the core in hand, so no lock is ever taken on the server state.
pub(crate) type HubCall = Box<dyn FnOnce(&mut Hub) + Send>;
/// Capacity of the admin call channel. Full: the caller waits (admin traffic is tiny).
pub(crate) const CALL_QUEUE: usize = 64;

/// The hub is gone (the server is stopping).
#[derive(Debug, thiserror::Error)]
#[error("the server is stopping")]
pub(crate) struct Stopped;

/// Runs `f` on the hub and returns its result.
pub(crate) async fn call<R: Send + 'static>(
    hub: &mpsc::Sender<HubCall>,
    f: impl FnOnce(&mut Hub) -> R + Send + 'static,
) -> Result<R, Stopped> {
    let (tx, rx) = oneshot::channel();
    let call: HubCall = Box::new(move |h| {
        let _ = tx.send(f(h));
    });
    hub.send(call).await.map_err(|_| Stopped)?;
    rx.await.map_err(|_| Stopped)
}

/// Capacity of the channel from connections to the hub, in events (an event is one line, or
/// the lines of one read, at most 64). Full: readers wait (backpressure).
pub(crate) const EVENT_QUEUE: usize = 1024;
/// Events handled at most in one round of the hub before what they queued is written.
const ROUND_EVENTS: usize = 64;
/// How often the core gets a tick for PINGs and timeouts.
const TICK: Duration = Duration::from_secs(1);
/// How often old history is pruned when a retention is set.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub(crate) enum Event {
    Connected {
        conn: ConnId,
        info: ConnInfo,
        outbox: Outbox,
    },
    Line {
        conn: ConnId,
        parsed: Result<Message, ParseError>,
    },
    /// The lines of one read, in order.
    Lines {
        conn: ConnId,
        lines: Vec<Result<Message, ParseError>>,
    },
    Closed {
        conn: ConnId,
        reason: String,
    },
}

pub(crate) fn now() -> Now {
    let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Now { wall_ms, mono: Instant::now() }
}

/// Messages to commit together and the effects that must wait for them.
#[derive(Default)]
struct Segment {
    batch: Vec<HistoryItem>,
    /// How many messages `batch` held (it is emptied when its commit starts).
    messages: usize,
    /// What the messages and effects cost in memory, as [`item_cost`] and [`effect_cost`] count.
    bytes: usize,
    /// Each with whether it is held only to keep its connections' order (not behind a message).
    effects: Vec<(Effect, bool)>,
}

/// Per connection: lines (and closes) held for it, and how many of those only to keep its order.
#[derive(Default)]
struct Held {
    lines: usize,
    ordering: usize,
}

/// What the core is told it may persist per remaining byte of [`HubLimits::max_held_bytes`]:
/// one message per this many bytes, about what a message and its copies cost in a small room.
/// The true cost is counted once the message is drained, so the bound is passed by at most one
/// drain's messages (one read's lines, or one tick's).
const MESSAGE_ESTIMATE: usize = 1024;

/// What bounds the hub's held work, and history's retention.
#[derive(Clone, Debug)]
pub(crate) struct HubLimits {
    /// Keep history this long, if set.
    pub retention: Option<Duration>,
    /// Memory held for commits at most: the messages waiting and the lines behind them
    /// (`storage.max_held_kib`). Reached (the store is stalled or failing), new messages that
    /// need storage are refused with a FAIL until commits catch up; everything else goes on.
    pub max_held_bytes: usize,
    /// Lines held for one connection only to keep its order (replies and events that came
    /// after a held message for it) at most, its SendQ (`limits.sendq`): past it the connection
    /// is dropped with "SendQ exceeded". The copies of held messages are bounded by
    /// `max_held_bytes` instead, so that a burst into a big room is not mistaken for a reader
    /// that does not read.
    pub sendq_lines: usize,
}

pub(crate) struct Hub {
    pub server: Server,
    pub metrics: Arc<Metrics>,
    /// Where server bans are saved (`DATA_DIR/bans.json`), and the version last saved.
    bans_file: PathBuf,
    bans_saved: u64,
    /// The ERROR reason every client gets when the server stops.
    stop_reason: Arc<Mutex<String>>,
    /// Each connection's outbound queue: dropping it tells the writer to flush and close, and
    /// [`Outbox::end`] stops both halves at once, queued bytes or not.
    conns: ConnMap<Outbox>,
    effects: Vec<Effect>,
    /// Lines read (all, and chat) and queued to be sent since the counters were last
    /// published: added up here and published once a round, rather than atomic additions per
    /// line.
    lines_in: u64,
    chat_in: u64,
    lines_out: u64,
    /// Connections whose pending bytes the hub writes itself at the end of this round.
    to_flush: Vec<ConnId>,
    /// Staging buffers between rounds.
    spares: Spares,
    storage: Storage,
    worker: Worker,
    /// Oldest first. The front one is being committed when `committing` is set.
    segments: VecDeque<Segment>,
    committing: Option<oneshot::Receiver<bool>>,
    /// Lines (and closes) held in `segments` for each connection; a connection with an entry
    /// has something held, so its next lines are held too, to keep them in order.
    held: ConnMap<Held>,
    /// Messages in `segments` not yet committed (the one in flight included), and what they
    /// and the effects behind them cost.
    held_messages: usize,
    held_bytes: usize,
    /// Whether the core was last told to refuse messages (for logging the change once).
    refusing: bool,
    /// A commit was abandoned (the store thread is gone): nothing more is committed or released.
    store_lost: bool,
    limits: HubLimits,
    /// Where the public directory goes for LAN discovery, when it is on.
    directory: Option<watch::Sender<chinwag_discovery::Live>>,
    /// A cluster node's end of the bus bridge (`cluster.rs`); `None` on a server on its own.
    pub(crate) cluster: Option<crate::cluster::HubSide>,
}

/// Effects whose room the hub keeps between rounds (a round of private messages makes one per
/// line).
const KEPT_EFFECTS: usize = 4096;

impl Hub {
    pub fn new(
        server: Server,
        storage: Storage,
        worker: Worker,
        limits: HubLimits,
        metrics: Arc<Metrics>,
        bans_file: PathBuf,
        stop_reason: Arc<Mutex<String>>,
    ) -> Self {
        let bans_saved = server.klines_version();
        Hub {
            server,
            metrics,
            bans_file,
            bans_saved,
            stop_reason,
            conns: ConnMap::default(),
            effects: Vec::new(),
            lines_in: 0,
            chat_in: 0,
            lines_out: 0,
            to_flush: Vec::new(),
            spares: Spares::default(),
            storage,
            worker,
            segments: VecDeque::new(),
            committing: None,
            held: ConnMap::default(),
            held_messages: 0,
            held_bytes: 0,
            refusing: false,
            store_lost: false,
            limits,
            directory: None,
            cluster: None,
        }
    }

    /// Makes this hub a cluster node's: it takes the bus's inputs (`cluster::on_input`).
    pub fn with_cluster(mut self, side: crate::cluster::HubSide) -> Self {
        self.cluster = Some(side);
        self
    }

    /// Drops every connection at once, telling each `ERROR :{reason}` (a cluster node cut off
    /// from the bus). Returns how many there were.
    pub(crate) fn drop_everyone(&mut self, reason: &str, now: Now) -> usize {
        let conns: Vec<ConnId> = self.conns.keys().copied().collect();
        let line = format!("ERROR :{reason}\r\n");
        for &conn in &conns {
            if let Some(mut outbox) = self.conns.remove(&conn) {
                // What was held for it goes nowhere when released; the ERROR leaves when the
                // dropped queue is flushed and closed.
                self.held.remove(&conn);
                let _ = outbox.push(line.as_bytes(), &mut self.spares);
                self.metrics.disconnected(Disconnect::of_reason(reason));
            }
            self.server.disconnect(conn, reason, now);
        }
        conns.len()
    }

    /// Publishes the public rooms and users online to `tx` once a tick, for LAN discovery.
    pub fn with_directory(mut self, tx: watch::Sender<chinwag_discovery::Live>) -> Self {
        self.directory = Some(tx);
        self
    }

    fn publish_directory(&self) {
        let Some(tx) = &self.directory else { return };
        let live = crate::directory::live(&self.server);
        tx.send_if_modified(|current| {
            let changed = *current != live;
            if changed {
                *current = live;
            }
            changed
        });
    }

    pub async fn run(
        mut self,
        mut events: mpsc::Receiver<Event>,
        mut answers: mpsc::UnboundedReceiver<(RequestId, Response)>,
        mut calls: mpsc::Receiver<HubCall>,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut prune = tokio::time::interval(PRUNE_EVERY);
        // Made once: making it per round registers a waiter and takes a lock each time.
        let mut stopping = std::pin::pin!(shutdown.cancelled());
        loop {
            tokio::select! {
                biased;
                _ = &mut stopping => break,
                done = wait_commit(&mut self.committing) => self.committed(done),
                Some((id, response)) = answers.recv() => {
                    if matches!(response, Response::Account(Err(Failure::BadPassword)) | Response::Done(Err(Failure::BadPassword))) {
                        self.metrics.login_failures.fetch_add(1, Relaxed);
                    }
                    self.server.complete(id, response, now());
                }
                Some(call) = calls.recv() => call(&mut self),
                Some(input) = crate::cluster::recv(&mut self.cluster) => crate::cluster::on_input(&mut self, input),
                event = events.recv() => match event {
                    Some(event) => {
                        // A lone event (connections' tasks wake the hub as soon as they send,
                        // so under moderate load most rounds would be one event and one
                        // `send`): let the other connections that are ready read first, and
                        // their lines join this round. Never when more are already waiting:
                        // a hub that yields while busy falls behind, and a full queue
                        // interleaves its senders line by line, which undoes all batching.
                        if events.is_empty() {
                            tokio::task::yield_now().await;
                        }
                        self.on_event(event, now())
                    }
                    None => break,
                },
                _ = tick.tick() => {
                    self.server.tick(now());
                    self.publish_directory();
                }
                _ = prune.tick() => self.prune(),
            }
            self.apply();
            // Events already waiting join this round, so that what they send leaves with one
            // write per connection rather than one per event.
            // They share one reading of the clocks: they arrived together.
            let round = now();
            for _ in 1..ROUND_EVENTS {
                match events.try_recv() {
                    Ok(event) => self.on_event(event, round),
                    Err(_) => break,
                }
                self.apply();
            }
            self.settle();
        }
        // Lines that already arrived are handled (their senders get their echoes) before
        // everyone is told goodbye; the queue is bounded, so this ends.
        for _ in 0..EVENT_QUEUE {
            match events.try_recv() {
                Ok(event) => self.on_event(event, now()),
                Err(_) => break,
            }
            self.settle();
        }
        let reason = self.stop_reason.lock().map(|r| r.clone()).unwrap_or_else(|p| p.into_inner().clone());
        self.server.close_all(&reason, now());
        self.settle();
        // Whatever was persisted is committed before the hub lets go (and its echoes sent).
        while self.committing.is_some() && !self.store_lost {
            let done = wait_commit(&mut self.committing).await;
            self.committed(done);
            self.settle();
        }
        tracing::info!("hub stopped");
    }

    fn on_event(&mut self, event: Event, now: Now) {
        match event {
            Event::Connected { conn, info, mut outbox } => {
                if let Some(why) = self.cluster.as_ref().and_then(|c| c.refusal()) {
                    // Cut off from the cluster, or not caught up with its log: nobody is
                    // served until the node is.
                    tracing::info!(%conn, ip = %info.ip, why, "refused: this cluster node is not serving");
                    let line = format!("ERROR :{why}\r\n");
                    let _ = outbox.push(line.as_bytes(), &mut self.spares);
                    self.metrics.disconnected(Disconnect::of_reason(why));
                    return;
                }
                tracing::info!(%conn, ip = %info.ip, transport = info.transport(), "connected");
                self.conns.insert(conn, outbox);
                self.server.connect(conn, info, now);
            }
            Event::Line { conn, parsed } => self.on_line(conn, parsed, now),
            Event::Lines { conn, lines } => {
                for parsed in lines {
                    self.on_line(conn, parsed, now);
                }
            }
            Event::Closed { conn, reason } => {
                if let Some(outbox) = self.conns.remove(&conn) {
                    // The core logs the disconnection, with the nick and how long it lasted.
                    tracing::debug!(%conn, %reason, "connection closed");
                    self.metrics.disconnected(Disconnect::of_reason(&reason));
                    outbox.end();
                }
                self.server.disconnect(conn, &reason, now);
            }
        }
    }

    fn on_line(&mut self, conn: ConnId, parsed: Result<Message, ParseError>, now: Now) {
        self.lines_in += 1;
        if parsed
            .as_ref()
            .is_ok_and(|m| ["PRIVMSG", "NOTICE", "TAGMSG"].iter().any(|c| m.command.eq_ignore_ascii_case(c)))
        {
            self.chat_in += 1;
        }
        self.server.handle(conn, parsed, now)
    }

    /// Sorts the core's effects: those behind a pending commit wait in its segment, the rest
    /// are carried out now. Repeats while carrying them out produces more (a slow client being
    /// dropped is itself a call into the core).
    fn apply(&mut self) {
        loop {
            self.server.drain_effects(&mut self.effects);
            if self.effects.is_empty() {
                break;
            }
            let mut overflowed = Vec::new();
            // Taken for the loop and put back empty, so its room serves every round (unless a
            // burst made it large: that room goes).
            let mut effects = std::mem::take(&mut self.effects);
            // Whether a message to persist came earlier in this drain: everything after it is
            // held, since it may be that message's copies, echo or labeled ACK. A drain is the
            // effects of one event (one connection's lines of one read), one answer or one tick,
            // so this holds at most that connection's next commands too, or the rest of a tick.
            let mut behind_persist = false;
            for effect in effects.drain(..) {
                match effect {
                    Effect::Persist(item) => {
                        let item_is_event = item.is_event();
                        // A segment being committed is closed: new messages start the next one.
                        if self.segments.is_empty() || (self.committing.is_some() && self.segments.len() == 1) {
                            self.segments.push_back(Segment::default());
                        }
                        if let Some(last) = self.segments.back_mut() {
                            let cost = item_cost(&item);
                            last.batch.push(*item);
                            // Messages are counted as such; an event only by its bytes.
                            let message = usize::from(!item_is_event);
                            last.messages += message;
                            last.bytes += cost;
                            self.held_messages += message;
                            self.held_bytes += cost;
                        }
                        // A room event kept for draft/event-playback holds nothing: no one was
                        // told it is stored, and joins and parts go on while the disk stalls.
                        behind_persist |= !item_is_event;
                    }
                    other if self.segments.is_empty() || overtakes(&other) => self.carry_out(other, &mut overflowed),
                    other if behind_persist => self.hold(other, false, &mut overflowed),
                    Effect::Send { conn, line } if !self.held.contains_key(&conn) => {
                        self.carry_out(Effect::Send { conn, line }, &mut overflowed)
                    }
                    Effect::Close { conn } if !self.held.contains_key(&conn) => {
                        self.carry_out(Effect::Close { conn }, &mut overflowed)
                    }
                    held @ (Effect::Send { .. } | Effect::Close { .. }) => self.hold(held, true, &mut overflowed),
                    Effect::SendMany { conns, line } => {
                        // Those with nothing held get it now; the others after what they wait for.
                        let (later, now): (Vec<ConnId>, Vec<ConnId>) =
                            conns.into_iter().partition(|c| self.held.contains_key(c));
                        if !now.is_empty() {
                            self.carry_out(Effect::SendMany { conns: now, line: line.clone() }, &mut overflowed);
                        }
                        if !later.is_empty() {
                            self.hold(Effect::SendMany { conns: later, line }, true, &mut overflowed);
                        }
                    }
                    // Requests, room saves and offline clean-up keep their order with held work:
                    // most go to the store, which is behind the same commits anyway.
                    other => self.hold(other, true, &mut overflowed),
                }
            }
            if effects.capacity() <= KEPT_EFFECTS {
                self.effects = effects;
            }
            self.drop_for_sendq(overflowed);
            self.start_commit();
            self.check_held_bound();
        }
        if self.server.klines_version() != self.bans_saved {
            self.save_bans();
        }
    }

    /// Holds `effect` until the newest segment is committed. `ordering`: only to keep its
    /// connections' order (not behind a message), which counts against each one's SendQ; a
    /// connection past it goes in `overflowed`.
    fn hold(&mut self, effect: Effect, ordering: bool, overflowed: &mut Vec<ConnId>) {
        let sendq = self.limits.sendq_lines;
        let mut count = |conn: ConnId| {
            let held = self.held.entry(conn).or_default();
            held.lines += 1;
            if ordering {
                held.ordering += 1;
                if held.ordering > sendq {
                    overflowed.push(conn);
                }
            }
        };
        match &effect {
            Effect::Send { conn, .. } | Effect::Close { conn } => count(*conn),
            Effect::SendMany { conns, .. } => conns.iter().copied().for_each(count),
            _ => {}
        }
        let cost = effect_cost(&effect);
        if let Some(last) = self.segments.back_mut() {
            last.bytes += cost;
            self.held_bytes += cost;
            last.effects.push((effect, ordering));
        }
    }

    /// Tells the core how many more messages it may persist: new ones are refused once
    /// [`HubLimits::max_held_bytes`] are held for commits, accepted again as commits return.
    fn check_held_bound(&mut self) {
        let room = self.limits.max_held_bytes.saturating_sub(self.held_bytes).div_ceil(MESSAGE_ESTIMATE);
        self.server.set_storage_room(room);
        let full = room == 0;
        if full != self.refusing {
            self.refusing = full;
            if full {
                tracing::error!(
                    held = self.held_messages,
                    bytes = self.held_bytes,
                    "the store is not keeping up: refusing new messages until what is held is stored"
                );
            } else {
                tracing::warn!(held = self.held_messages, "the store caught up: accepting messages again");
            }
        }
    }

    /// Ends a round: carries out what is left and writes what it queued for plain TCP
    /// connections, one `send` each.
    fn settle(&mut self) {
        self.apply();
        while !self.to_flush.is_empty() {
            // Dropping a client whose queue overflowed makes more effects.
            self.flush();
            self.apply();
        }
        let counts = [
            (&mut self.lines_in, &self.metrics.lines_in),
            (&mut self.chat_in, &self.metrics.chat_in),
            (&mut self.lines_out, &self.metrics.lines_out),
        ];
        for (count, counter) in counts {
            if *count > 0 {
                counter.fetch_add(std::mem::take(count), Relaxed);
            }
        }
        self.metrics.held_messages.store(self.held_messages as u64, Relaxed);
        self.metrics.held_bytes.store(self.held_bytes as u64, Relaxed);
        self.metrics.held_lines.store(self.held.values().map(|h| h.lines as u64).sum(), Relaxed);
    }

    fn flush(&mut self) {
        let mut overflowed = Vec::new();
        for conn in self.to_flush.drain(..) {
            if let Some(outbox) = self.conns.get_mut(&conn) {
                if outbox.flush(&mut self.spares).is_err() {
                    overflowed.push(conn);
                }
            }
        }
        self.drop_for_sendq(overflowed);
    }

    /// Writes the server bans to `bans.json` (off the hub; the list is small).
    fn save_bans(&mut self) {
        self.bans_saved = self.server.klines_version();
        let json = crate::bans::to_json(&self.server.klines());
        let path = self.bans_file.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = crate::bans::write(&path, &json) {
                tracing::error!(error = %format!("{e:#}"), "could not save the server bans");
            }
        });
    }

    /// Starts committing the oldest segment if none is in flight.
    fn start_commit(&mut self) {
        if self.committing.is_some() || self.store_lost {
            return;
        }
        let Some(front) = self.segments.front_mut() else { return };
        let batch = std::mem::take(&mut front.batch);
        match self.storage.commit(batch) {
            Ok(rx) => self.committing = Some(rx),
            Err(_) => tracing::error!("the store thread is gone; held messages cannot be stored"),
        }
    }

    /// The front segment is durable: release what waited for it, start the next.
    fn committed(&mut self, done: bool) {
        self.committing = None;
        if !done {
            // Never stored: nothing that waited for it may leave. What is held stays held (new
            // messages are refused once the bound is reached); this happens only when the store
            // thread is gone or gave up as the server stops.
            tracing::error!("a commit was abandoned by the store thread; its messages stay unacknowledged");
            self.store_lost = true;
            return;
        }
        if let Some(front) = self.segments.pop_front() {
            self.held_messages -= front.messages;
            self.held_bytes -= front.bytes;
            self.release(front.effects);
        }
        self.start_commit();
        // A following segment may hold only effects (no messages): nothing to wait for.
        while self.committing.is_none() && self.segments.front().is_some_and(|s| s.batch.is_empty()) {
            if let Some(front) = self.segments.pop_front() {
                self.held_bytes -= front.bytes;
                self.release(front.effects);
            }
        }
        self.start_commit();
        self.check_held_bound();
    }

    /// Carries out effects that were held, and forgets them in the per-connection counts.
    fn release(&mut self, effects: Vec<(Effect, bool)>) {
        let mut overflowed = Vec::new();
        for (effect, ordering) in effects {
            match &effect {
                Effect::Send { conn, .. } | Effect::Close { conn } => unhold(&mut self.held, *conn, ordering),
                Effect::SendMany { conns, .. } => conns.iter().for_each(|c| unhold(&mut self.held, *c, ordering)),
                _ => {}
            }
            self.carry_out(effect, &mut overflowed);
        }
        self.drop_for_sendq(overflowed);
    }

    /// Carries out one effect; a connection whose queue it overflows goes in `overflowed`, to
    /// be dropped by the caller (dropping it makes more effects).
    fn carry_out(&mut self, effect: Effect, overflowed: &mut Vec<ConnId>) {
        match effect {
            Effect::Send { conn, line } => {
                if let Some(outbox) = self.conns.get_mut(&conn) {
                    if line.starts_with(b"ERROR ") {
                        self.metrics.disconnected(Disconnect::of_reason(error_reason(&line)));
                    }
                    self.lines_out += 1;
                    push(outbox, conn, &line, &mut self.spares, &mut self.to_flush, overflowed);
                }
            }
            Effect::SendMany { conns, line } => {
                for conn in conns {
                    if let Some(outbox) = self.conns.get_mut(&conn) {
                        self.lines_out += 1;
                        push(outbox, conn, &line, &mut self.spares, &mut self.to_flush, overflowed);
                    }
                }
            }
            Effect::Close { conn } => {
                self.conns.remove(&conn);
            }
            Effect::Request { id, request: chinwag_core::Request::Claim(claim) } => {
                // A cluster node's nick claims go to the bus; refused there (or on a server on
                // its own, which never asks), the worker answers "unavailable".
                if let Err(claim) = crate::cluster::claim(self, id, claim) {
                    self.worker.start(id, chinwag_core::Request::Claim(claim));
                }
            }
            Effect::Request { id, request } => self.worker.start(id, request),
            Effect::SaveChannel(snapshot) => {
                let record = to_record(*snapshot);
                self.storage.spawn("saving a room", move |s| s.save_channel(&record));
            }
            Effect::DeleteChannel(name) => {
                self.storage.spawn("forgetting a room", move |s| s.delete_channel(&name).map(|_| ()));
            }
            Effect::ClearOffline { account, up_to_msgid } => {
                self.storage.spawn("clearing delivered offline messages", move |s| {
                    s.clear_offline(&account, &up_to_msgid).map(|_| ())
                });
            }
            Effect::QueueOffline { account, msgid } => {
                self.storage
                    .spawn("queueing a late private message", move |s| s.queue_offline(&account, &msgid).map(|_| ()));
            }
            Effect::Persist(item) => {
                tracing::error!(msgid = %item.msgid, "a persist effect reached execution; ignored")
            }
            Effect::Cluster(effect) => crate::cluster::carry_out(self, effect),
        }
    }

    /// Drops connections whose queue is full: they do not read.
    fn drop_for_sendq(&mut self, conns: Vec<ConnId>) {
        for conn in conns {
            if let Some(outbox) = self.conns.remove(&conn) {
                // What was held for it is dropped with it when released.
                self.held.remove(&conn);
                self.metrics.disconnected(Disconnect::SendQ);
                tracing::info!(%conn, "dropping a client that does not read: SendQ exceeded");
                outbox.end();
                self.server.disconnect(conn, "SendQ exceeded", now());
            }
        }
    }

    fn prune(&mut self) {
        let Some(retention) = self.limits.retention else { return };
        let cutoff = now().wall_ms.saturating_sub(retention.as_millis() as u64);
        self.storage.spawn("pruning old history", move |s| {
            let removed = s.prune_history(cutoff)?;
            tracing::info!(removed, "pruned old history");
            Ok(())
        });
    }
}

/// Queues `line` for `conn`, noting whether it must be flushed this round or has overflowed.
fn push(
    outbox: &mut Outbox,
    conn: ConnId,
    line: &[u8],
    spares: &mut Spares,
    to_flush: &mut Vec<ConnId>,
    overflowed: &mut Vec<ConnId>,
) {
    match outbox.push(line, spares) {
        Ok(Pushed::Queued) => {}
        Ok(Pushed::Flush) => to_flush.push(conn),
        Err(Full) => overflowed.push(conn),
    }
}

/// One held line (or close) for `conn` was released.
fn unhold(held: &mut ConnMap<Held>, conn: ConnId, ordering: bool) {
    if let Some(h) = held.get_mut(&conn) {
        h.lines -= 1;
        h.ordering -= usize::from(ordering);
        if h.lines == 0 {
            held.remove(&conn);
        }
    }
}

/// About what a message waiting for its commit costs in memory.
fn item_cost(item: &HistoryItem) -> usize {
    let strings = [&item.msgid, &item.command, &item.sender, &item.target, &item.text, &item.tags, &item.conversation];
    std::mem::size_of::<HistoryItem>()
        + strings.iter().map(|s| s.len()).sum::<usize>()
        + item.sender_account.as_ref().map_or(0, String::len)
        + item.offline_for.as_ref().map_or(0, String::len)
        + item.participants.iter().map(String::len).sum::<usize>()
}

/// About what a held effect costs in memory: a line's bytes are counted once however many
/// connections it goes to (they share them), and each recipient is a `ConnId`.
fn effect_cost(effect: &Effect) -> usize {
    std::mem::size_of::<(Effect, bool)>()
        + match effect {
            Effect::Send { line, .. } => line.len(),
            Effect::SendMany { conns, line } => line.len() + std::mem::size_of_val(conns.as_slice()),
            Effect::SaveChannel(_) => std::mem::size_of::<chinwag_core::ChannelSnapshot>(),
            _ => 0,
        }
}

/// Whether `effect` may leave before lines held for its connection: a PONG, or a refusal
/// (`FAIL <command> TEMPORARILY_UNAVAILABLE …`). The core serialized the line, so it is
/// `[@tags ][:source ]COMMAND params…`.
///
/// A PONG is never held: clients treat it as "the server is alive", and holding it while the
/// store is stalled would make every client in a busy room (whose copies are held) time out and
/// reconnect, the outage the per-connection holding is there to avoid. A refusal is never held
/// either: it says that nothing happened, and it is only useful while the store is stalled, which
/// is exactly when the sender's earlier echoes are held. Overtaking is safe for durability:
/// neither line carries or acknowledges anything stored, and what they overtake has not been
/// acknowledged yet (it leaves, in order, once durable). The cost is that a client using PING as
/// a barrier ("everything I sent before was handled") may see the PONG, or a refusal of a later
/// message, before the echo or ACK of a message it sent just before, while that message's
/// commit is pending; labeled-response clients match replies by label, and its ACKs are held in
/// order. Our own keepalive PING (`PING <server>`) overtakes too: it carries nothing, and a
/// client whose copies are held could not answer a held one, so a stall longer than the ping
/// timeout would drop every idle member of a busy room. The PING that follows a page of offline
/// messages (`chinwag-offline-N`) keeps its place: its PONG says the page before it was read.
/// Everything else keeps its order.
fn overtakes(effect: &Effect) -> bool {
    let Effect::Send { line, .. } = effect else { return false };
    let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
    let mut command = words.next();
    if command.is_some_and(|w| w.starts_with(b"@")) {
        command = words.next();
    }
    if command.is_some_and(|w| w.starts_with(b":")) {
        command = words.next();
    }
    match command {
        Some(b"PONG") => true,
        Some(b"PING") => {
            let param = words.next().unwrap_or_default();
            !param.strip_prefix(b":").unwrap_or(param).starts_with(b"chinwag-offline-")
        }
        Some(b"FAIL") => words.nth(1) == Some(&b"TEMPORARILY_UNAVAILABLE"[..]),
        _ => false,
    }
}

/// The reason in `ERROR :Closing Link: host (reason)`, or the whole text.
fn error_reason(line: &[u8]) -> &str {
    let text = std::str::from_utf8(line).unwrap_or("");
    match (text.find('('), text.rfind(')')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    }
}

/// Resolves when the in-flight commit finishes (true) or is abandoned (false); never if none.
async fn wait_commit(committing: &mut Option<oneshot::Receiver<bool>>) -> bool {
    match committing {
        Some(rx) => rx.await.unwrap_or(false),
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn send(line: &str) -> Effect {
        Effect::Send { conn: chinwag_core::ConnId(1), line: bytes::Bytes::copy_from_slice(line.as_bytes()) }
    }

    #[test]
    fn what_may_overtake_held_lines() {
        for line in [
            ":chinwag.local PONG chinwag.local :token\r\n",
            "@label=a :chinwag.local PONG chinwag.local :token\r\n",
            "PING chinwag.local\r\n",
            "PING :chinwag.local\r\n",
            ":chinwag.local FAIL PRIVMSG TEMPORARILY_UNAVAILABLE #room :not now\r\n",
        ] {
            assert!(overtakes(&send(line)), "{line}");
        }
        for line in [
            ":chinwag.local PING chinwag-offline-3\r\n",
            ":chinwag.local PING :chinwag-offline-3\r\n",
            ":alice!a@h PRIVMSG #room :hi\r\n",
            ":chinwag.local FAIL CHATHISTORY INVALID_TARGET * bob :no\r\n",
            ":chinwag.local 001 alice :Welcome\r\n",
        ] {
            assert!(!overtakes(&send(line)), "{line}");
        }
    }
}
