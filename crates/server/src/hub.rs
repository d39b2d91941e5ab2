//! The hub: the one task that owns the core [`Server`] and applies its effects.
//!
//! Connections send it [`Event`]s over one bounded channel; it feeds them to the core in
//! arrival order and pushes the resulting lines into each connection's bounded outbound queue
//! without ever waiting on a connection.
//!
//! Durability: when the core asks for a message to be persisted, every effect after it is held
//! until that message is committed, so nobody (the sender's echo included) sees a message that
//! a crash could still lose. Commits are grouped: one is in flight at a time, and everything
//! persisted meanwhile goes into the next, so the cost of a commit is shared by as many messages
//! as arrive while it runs.

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
    effects: Vec<Effect>,
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
    committing: Option<oneshot::Receiver<()>>,
    /// Keep history this long, if set.
    retention: Option<Duration>,
    /// Where the public directory goes for LAN discovery, when it is on.
    directory: Option<watch::Sender<chinwag_discovery::Live>>,
}

/// Effects whose room the hub keeps between rounds (a round of private messages makes one per
/// line).
const KEPT_EFFECTS: usize = 4096;

impl Hub {
    pub fn new(
        server: Server,
        storage: Storage,
        worker: Worker,
        retention: Option<Duration>,
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
            retention,
            directory: None,
        }
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
        while self.committing.is_some() {
            let done = wait_commit(&mut self.committing).await;
            self.committed(done);
            self.settle();
        }
        tracing::info!("hub stopped");
    }

    fn on_event(&mut self, event: Event, now: Now) {
        match event {
            Event::Connected { conn, info, outbox } => {
                tracing::debug!(%conn, ip = %info.ip, tls = info.tls, "connected");
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
                    tracing::debug!(%conn, %reason, "disconnected");
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
            for effect in effects.drain(..) {
                match effect {
                    Effect::Persist(item) => {
                        // A segment being committed is closed: new messages start the next one.
                        if self.segments.is_empty() || (self.committing.is_some() && self.segments.len() == 1) {
                            self.segments.push_back(Segment::default());
                        }
                        if let Some(last) = self.segments.back_mut() {
                            last.batch.push(*item);
                        }
                    }
                    other => match self.segments.back_mut() {
                        Some(last) => last.effects.push(other),
                        None => self.carry_out(other, &mut overflowed),
                    },
                }
            }
            if effects.capacity() <= KEPT_EFFECTS {
                self.effects = effects;
            }
            self.drop_for_sendq(overflowed);
            self.start_commit();
        }
        if self.server.klines_version() != self.bans_saved {
            self.save_bans();
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
        if self.committing.is_some() {
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
            tracing::error!("a commit was abandoned by the store thread");
        }
        if let Some(front) = self.segments.pop_front() {
            self.execute(front.effects);
        }
        self.start_commit();
        // A following segment may hold only effects (no messages): nothing to wait for.
        while self.committing.is_none() && self.segments.front().is_some_and(|s| s.batch.is_empty()) {
            if let Some(front) = self.segments.pop_front() {
                self.execute(front.effects);
            }
        }
        self.start_commit();
    }

    fn execute(&mut self, effects: Vec<Effect>) {
        let mut overflowed = Vec::new();
        for effect in effects {
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
            Effect::Persist(item) => {
                tracing::error!(msgid = %item.msgid, "a persist effect reached execution; ignored")
            }
        }
    }

    /// Drops connections whose queue is full: they do not read.
    fn drop_for_sendq(&mut self, conns: Vec<ConnId>) {
        for conn in conns {
            if let Some(outbox) = self.conns.remove(&conn) {
                self.metrics.disconnected(Disconnect::SendQ);
                tracing::info!(%conn, "dropping a client that does not read: SendQ exceeded");
                outbox.end();
                self.server.disconnect(conn, "SendQ exceeded", now());
            }
        }
    }

    fn prune(&mut self) {
        let Some(retention) = self.retention else { return };
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

/// The reason in `ERROR :Closing Link: host (reason)`, or the whole text.
fn error_reason(line: &[u8]) -> &str {
    let text = std::str::from_utf8(line).unwrap_or("");
    match (text.find('('), text.rfind(')')) {
        (Some(open), Some(close)) if open < close => &text[open + 1..close],
        _ => text,
    }
}

/// Resolves when the in-flight commit finishes (true) or is abandoned (false); never if none.
async fn wait_commit(committing: &mut Option<oneshot::Receiver<()>>) -> bool {
    match committing {
        Some(rx) => rx.await.is_ok(),
        None => std::future::pending().await,
    }
}
