//! The in-process bus: one network in memory, for the core's tests (several `Server`s wired
//! together without sockets or a broker). Deterministic: no threads of its own, its clock is
//! tokio's (so `tokio::time::pause` drives heartbeat expiry), and it behaves as the NATS one
//! does where the conformance suite can tell.
//!
//! It plays the broker, so it has the broker's state behind one lock, taken briefly and never
//! across an `.await`; nodes hold handles ([`LocalBus::join`]) as they would connections.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use crate::{
    check_size, Bus, BusError, Claim, ClaimKey, Expect, LogEntry, LogKey, LogReader, Name, Subscription, Topic,
};

/// How many messages a subscription holds before newer ones are dropped for it (NATS's
/// "slow consumer"): publishers never wait for a subscriber.
const SUBSCRIPTION_CAPACITY: usize = 4096;

/// A handle on an in-process network; clones and [`LocalBus::join`] share the network.
#[derive(Debug, Clone)]
pub struct LocalBus {
    /// The network's state, shared by every handle.
    shared: Arc<Shared>,
    /// Which connection this is (a clone is the same one): its own publications do not come
    /// back to its subscriptions.
    id: u64,
}

#[derive(Debug)]
struct Shared {
    /// Everything a broker would keep.
    state: Mutex<State>,
    /// The log's last sequence, for readers waiting at its end.
    appended: watch::Sender<u64>,
    /// How long a heartbeat lives.
    ttl: Duration,
    /// The last connection id handed out.
    handles: AtomicU64,
}

#[derive(Debug, Default)]
struct State {
    /// Subscribers per topic, with their connection; a closed one is pruned at the next
    /// publication.
    subscribers: HashMap<Topic, Vec<(u64, mpsc::Sender<Bytes>)>>,
    /// Messages dropped because a subscriber was full.
    dropped: u64,
    /// The log, entry `seq` at index `seq - 1`.
    log: Vec<LogEntry>,
    /// Each log key's last sequence.
    last_of_key: HashMap<String, u64>,
    /// Claims: holder and revision.
    claims: HashMap<ClaimKey, (Bytes, u64)>,
    /// The claims' revision counter (like a KV bucket's stream sequence).
    claim_revision: u64,
    /// Heartbeats: value and when it expires.
    heartbeats: HashMap<String, (Bytes, Instant)>,
}

impl LocalBus {
    /// A new, empty network whose heartbeats live `ttl`.
    pub fn new(ttl: Duration) -> LocalBus {
        let (appended, _) = watch::channel(0);
        let shared = Shared { state: Mutex::new(State::default()), appended, ttl, handles: AtomicU64::new(0) };
        LocalBus { shared: Arc::new(shared), id: 0 }
    }

    /// Another node's handle on the same network.
    pub fn join(&self) -> LocalBus {
        let id = self.shared.handles.fetch_add(1, Ordering::Relaxed) + 1;
        LocalBus { shared: Arc::clone(&self.shared), id }
    }

    /// Messages dropped so far because a subscriber was too slow.
    pub fn dropped(&self) -> u64 {
        self.state().dropped
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed (every change is
        // one assignment or push), so a poisoned lock is still usable.
        self.shared.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Bus for LocalBus {
    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<(), BusError> {
        check_size(&payload)?;
        let mut state = self.state();
        let State { subscribers, dropped, .. } = &mut *state;
        if let Some(list) = subscribers.get_mut(topic) {
            let me = self.id;
            list.retain(|(id, tx)| {
                *id == me
                    || match tx.try_send(payload.clone()) {
                        Ok(()) => true,
                        Err(mpsc::error::TrySendError::Full(_)) => {
                            *dropped += 1;
                            true
                        }
                        Err(mpsc::error::TrySendError::Closed(_)) => false,
                    }
            });
        }
        Ok(())
    }

    async fn flush(&self) -> Result<(), BusError> {
        Ok(())
    }

    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        let (tx, rx) = mpsc::channel(SUBSCRIPTION_CAPACITY);
        self.state().subscribers.entry(topic.clone()).or_default().push((self.id, tx));
        Ok(tokio_stream(rx).boxed())
    }

    async fn append(&self, key: &LogKey, payload: Bytes, expect: Expect) -> Result<u64, BusError> {
        check_size(&payload)?;
        let seq = {
            let mut state = self.state();
            let last = state.last_of_key.get(key.as_str()).copied();
            let holds = match expect {
                Expect::Any => true,
                Expect::Empty => last.is_none(),
                Expect::Last(seq) => last == Some(seq),
            };
            if !holds {
                return Err(BusError::Conflict { last });
            }
            let seq = state.log.len() as u64 + 1;
            state.log.push(LogEntry { seq, key: key.as_str().to_owned(), payload });
            state.last_of_key.insert(key.as_str().to_owned(), seq);
            seq
        };
        self.shared.appended.send_replace(seq);
        Ok(seq)
    }

    async fn read_log(&self, from: u64) -> Result<LogReader, BusError> {
        let bus = self.clone();
        let appended = self.shared.appended.subscribe();
        let next = from.max(1);
        let reader = futures_util::stream::unfold((bus, appended, next), |(bus, mut appended, next)| async move {
            loop {
                let entry = bus.state().log.get((next - 1) as usize).cloned();
                if let Some(entry) = entry {
                    return Some((Ok(entry), (bus, appended, next + 1)));
                }
                // The sender lives in `bus`, so this waits for the next append.
                appended.changed().await.ok()?;
            }
        });
        Ok(reader.boxed())
    }

    async fn log_end(&self) -> Result<u64, BusError> {
        Ok(self.state().log.len() as u64)
    }

    async fn claim(&self, key: &ClaimKey, value: Bytes) -> Result<Claim, BusError> {
        let mut state = self.state();
        if let Some((holder, revision)) = state.claims.get(key) {
            return Ok(Claim::Taken { holder: holder.clone(), revision: *revision });
        }
        state.claim_revision += 1;
        let revision = state.claim_revision;
        state.claims.insert(key.clone(), (value, revision));
        Ok(Claim::Granted { revision })
    }

    async fn take_over(&self, key: &ClaimKey, value: Bytes, revision: u64) -> Result<Claim, BusError> {
        let mut state = self.state();
        match state.claims.get(key) {
            Some((holder, current)) if *current != revision => {
                Ok(Claim::Taken { holder: holder.clone(), revision: *current })
            }
            _ => {
                state.claim_revision += 1;
                let revision = state.claim_revision;
                state.claims.insert(key.clone(), (value, revision));
                Ok(Claim::Granted { revision })
            }
        }
    }

    async fn release(&self, key: &ClaimKey, revision: u64) -> Result<bool, BusError> {
        let mut state = self.state();
        match state.claims.get(key) {
            Some((_, current)) if *current == revision => {
                state.claims.remove(key);
                state.claim_revision += 1;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn holder(&self, key: &ClaimKey) -> Result<Option<(Bytes, u64)>, BusError> {
        Ok(self.state().claims.get(key).cloned())
    }

    async fn beat(&self, node: &Name, value: Bytes) -> Result<(), BusError> {
        check_size(&value)?;
        let expires = Instant::now() + self.shared.ttl;
        self.state().heartbeats.insert(node.as_str().to_owned(), (value, expires));
        Ok(())
    }

    async fn alive(&self) -> Result<Vec<(String, Bytes)>, BusError> {
        let now = Instant::now();
        let mut state = self.state();
        state.heartbeats.retain(|_, (_, expires)| *expires > now);
        let mut alive: Vec<(String, Bytes)> =
            state.heartbeats.iter().map(|(node, (value, _))| (node.clone(), value.clone())).collect();
        alive.sort();
        Ok(alive)
    }

    fn heartbeat_ttl(&self) -> Duration {
        self.shared.ttl
    }
}

/// A receiver as a stream.
fn tokio_stream(rx: mpsc::Receiver<Bytes>) -> impl futures_util::Stream<Item = Bytes> {
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A subscriber that does not read loses what does not fit, counted; the publisher never
    /// waits for it, and a quick subscriber on the same topic still gets everything.
    #[tokio::test]
    async fn a_slow_subscriber_loses_messages_and_never_blocks_the_publisher() {
        let network = LocalBus::new(Duration::from_secs(5));
        let bus = network.join();
        let room = Topic::room("#slow");
        let _slow = network.join().subscribe(&room).await.expect("subscribe");
        let mut quick = bus.join().subscribe(&room).await.expect("subscribe");
        let extra = 10;
        for i in 0..SUBSCRIPTION_CAPACITY + extra {
            bus.publish(&room, Bytes::from(i.to_string())).await.expect("publish");
            if i % 100 == 0 {
                while let Some(Some(_)) = futures_util::FutureExt::now_or_never(quick.next()) {}
            }
        }
        assert_eq!(bus.dropped(), extra as u64, "only the slow subscriber's overflow is dropped");
    }
}
