//! The hub: the one task that owns the core [`Server`] and applies its effects.
//!
//! Connections send it [`Event`]s over one bounded channel; it feeds them to the core in
//! arrival order and pushes the resulting lines into each connection's bounded outbound queue
//! without ever waiting on a connection.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use chinwag_core::{ConnId, ConnInfo, Effect, Now, Server};
use chinwag_proto::{Message, ParseError};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Capacity of the channel from connections to the hub. Full: readers wait (backpressure).
pub(crate) const EVENT_QUEUE: usize = 8192;
/// How often the core gets a tick for PINGs and timeouts.
const TICK: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) enum Event {
    Connected { conn: ConnId, info: ConnInfo, outbox: mpsc::Sender<Bytes>, cancel: CancellationToken },
    Line { conn: ConnId, parsed: Result<Message, ParseError> },
    Closed { conn: ConnId, reason: String },
}

/// The hub's handle on one connection.
#[derive(Debug)]
struct Handle {
    /// Dropping it tells the writer to flush and close.
    outbox: mpsc::Sender<Bytes>,
    /// Cancelling it stops both halves at once, queued bytes or not.
    cancel: CancellationToken,
}

pub(crate) fn now() -> Now {
    let wall_ms = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    Now { wall_ms, mono: Instant::now() }
}

pub(crate) struct Hub {
    server: Server,
    conns: HashMap<ConnId, Handle>,
    effects: Vec<Effect>,
}

impl Hub {
    pub fn new(server: Server) -> Self {
        Hub { server, conns: HashMap::new(), effects: Vec::new() }
    }

    pub async fn run(mut self, mut events: mpsc::Receiver<Event>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                event = events.recv() => match event {
                    Some(event) => self.on_event(event),
                    None => break,
                },
                _ = tick.tick() => self.server.tick(now()),
            }
            self.apply();
        }
        self.server.close_all("Server shutting down", now());
        self.apply();
        tracing::info!("hub stopped");
    }

    fn on_event(&mut self, event: Event) {
        match event {
            Event::Connected { conn, info, outbox, cancel } => {
                tracing::debug!(%conn, ip = %info.ip, tls = info.tls, "connected");
                self.conns.insert(conn, Handle { outbox, cancel });
                self.server.connect(conn, info, now());
            }
            Event::Line { conn, parsed } => self.server.handle(conn, parsed, now()),
            Event::Closed { conn, reason } => {
                if let Some(handle) = self.conns.remove(&conn) {
                    tracing::debug!(%conn, %reason, "disconnected");
                    handle.cancel.cancel();
                }
                self.server.disconnect(conn, &reason, now());
            }
        }
    }

    /// Carries out the core's effects until there are none left (dropping a slow client is
    /// itself a call into the core that can produce more).
    fn apply(&mut self) {
        loop {
            self.server.drain_effects(&mut self.effects);
            if self.effects.is_empty() {
                return;
            }
            let mut overflowed = Vec::new();
            for effect in self.effects.drain(..) {
                match effect {
                    Effect::Send { conn, line } => {
                        if let Some(handle) = self.conns.get(&conn) {
                            if handle.outbox.try_send(line).is_err() {
                                overflowed.push(conn);
                            }
                        }
                    }
                    Effect::Close { conn } => {
                        self.conns.remove(&conn);
                    }
                }
            }
            for conn in overflowed {
                if let Some(handle) = self.conns.remove(&conn) {
                    tracing::info!(%conn, "dropping a client that does not read: SendQ exceeded");
                    handle.cancel.cancel();
                    self.server.disconnect(conn, "SendQ exceeded", now());
                }
            }
        }
    }
}
