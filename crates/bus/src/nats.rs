//! The bus on NATS: core subjects for messages, a JetStream stream for the log, KV buckets for
//! claims and heartbeats, every name under the cluster's (`docs/cluster.md`, "Names on NATS").
//!
//! The client reconnects by itself, forever, with a short backoff, and restores subscriptions;
//! the log reader is an ordered consumer, which recreates itself where it left off. An operation
//! made while NATS is away fails with [`BusError::Unavailable`] after the request timeout.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, stream};
use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};

use crate::{
    check_size, Bus, BusError, Claim, ClaimKey, Expect, LogEntry, LogKey, LogReader, Name, Subscription, Topic,
};

/// How many times a claim is tried when its holder keeps changing under it.
const CLAIM_ROUNDS: usize = 3;

/// How a node connects.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// The NATS server (`nats://host:port`, several separated by commas).
    pub url: String,
    /// The namespace of every subject, stream and bucket.
    pub cluster: Name,
    /// How long a heartbeat lives (the bucket's `max_age`, fixed when the network is first made;
    /// a node joining an existing network takes the network's).
    pub heartbeat_ttl: Duration,
    /// How long the first connection and each request may take.
    pub timeout: Duration,
}

impl NatsOptions {
    /// The defaults of `docs/cluster.md`: heartbeats live 5 s, requests time out after 2 s.
    pub fn new(url: &str, cluster: Name) -> NatsOptions {
        NatsOptions {
            url: url.to_owned(),
            cluster,
            heartbeat_ttl: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
        }
    }
}

/// A node's connection to the cluster on NATS.
#[derive(Debug, Clone)]
pub struct NatsBus {
    /// The connection (it reconnects by itself).
    client: async_nats::Client,
    /// JetStream on that connection.
    js: jetstream::Context,
    /// Subjects and names start with this.
    cluster: Name,
    /// The network-state log.
    log: stream::Stream,
    /// Nick and node-number claims.
    claims: kv::Store,
    /// Heartbeats (entries expire after the TTL).
    nodes: kv::Store,
    /// The heartbeat bucket's `max_age`.
    ttl: Duration,
    /// How many times the client has connected (log readers start over after a reconnection).
    connections: Arc<AtomicU64>,
    /// The heartbeat bucket's stream, for listing its keys.
    nodes_stream: stream::Stream,
    /// How long a request may take.
    timeout: Duration,
}

/// The names under one cluster name.
pub(crate) struct Names {
    pub(crate) log_stream: String,
    pub(crate) claims_bucket: String,
    pub(crate) nodes_bucket: String,
}

impl Names {
    pub(crate) fn of(cluster: &Name) -> Names {
        Names {
            log_stream: format!("{cluster}-log"),
            claims_bucket: format!("{cluster}-claims"),
            nodes_bucket: format!("{cluster}-nodes"),
        }
    }
}

impl NatsBus {
    /// Connects and makes the cluster's stream and buckets if they do not exist yet. Fails if
    /// NATS does not answer within the timeout, or has no JetStream.
    pub async fn connect(options: &NatsOptions) -> Result<NatsBus, BusError> {
        let connections = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&connections);
        let client = async_nats::ConnectOptions::new()
            .name(format!("chinwag {}", options.cluster))
            .connection_timeout(options.timeout)
            .request_timeout(Some(options.timeout))
            .max_reconnects(None)
            // A node's own room publications would come back to it through its subscription:
            // NATS's work and the node's wake-up for nothing.
            .no_echo()
            // Reconnect soon: a node that stays away longer than its grace drops its users.
            .reconnect_delay_callback(|attempt| Duration::from_millis(50 * (attempt.min(10) as u64 + 1)))
            .event_callback(move |event| {
                let counter = Arc::clone(&counter);
                async move {
                    if matches!(event, async_nats::Event::Connected) {
                        counter.fetch_add(1, Ordering::Relaxed);
                    }
                    tracing::info!(%event, "cluster bus");
                }
            })
            .connect(options.url.as_str())
            .await
            .map_err(|e| BusError::Unavailable(format!("cannot connect to NATS at {}: {e}", options.url)))?;
        let js = jetstream::ContextBuilder::new().timeout(options.timeout).build(client.clone());
        let names = Names::of(&options.cluster);
        let log = js
            .get_or_create_stream(stream::Config {
                name: names.log_stream.clone(),
                subjects: vec![format!("{}.log.>", options.cluster)],
                storage: stream::StorageType::File,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .map_err(|e| broker("the log stream", e))?;
        let claims = bucket(&js, &names.claims_bucket, Duration::ZERO).await?;
        let nodes = bucket(&js, &names.nodes_bucket, options.heartbeat_ttl).await?;
        let nodes_stream =
            js.get_stream(format!("KV_{}", names.nodes_bucket)).await.map_err(|e| broker("the heartbeat bucket", e))?;
        // The TTL is the bucket's: the first node to make the network fixed it, and a node
        // beating at another pace would be seen dead (or notice its own loss) at the wrong time.
        let bucket_ttl = nodes_stream.cached_info().config.max_age;
        let ttl = if bucket_ttl.is_zero() { options.heartbeat_ttl } else { bucket_ttl };
        if ttl != options.heartbeat_ttl {
            tracing::info!(?ttl, asked = ?options.heartbeat_ttl, "cluster bus: using the network's heartbeat TTL");
        }
        Ok(NatsBus {
            client,
            js,
            cluster: options.cluster.clone(),
            log,
            claims,
            nodes,
            ttl,
            connections,
            nodes_stream,
            timeout: options.timeout,
        })
    }

    /// Whether the connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.client.connection_state() == async_nats::connection::State::Connected
    }

    /// How many times this client has connected: 1, plus one per reconnection.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// Deletes the cluster's stream and buckets (tests, and an operator retiring a network).
    pub async fn delete_everything(&self) -> Result<(), BusError> {
        let names = Names::of(&self.cluster);
        self.js.delete_stream(&names.log_stream).await.map_err(|e| broker("deleting the log", e))?;
        self.js.delete_key_value(&names.claims_bucket).await.map_err(|e| broker("deleting the claims", e))?;
        self.js.delete_key_value(&names.nodes_bucket).await.map_err(|e| broker("deleting the heartbeats", e))?;
        Ok(())
    }

    fn subject(&self, topic: &Topic) -> String {
        format!("{}.{}", self.cluster, topic.as_str())
    }
}

/// Opens a KV bucket, making it if absent (history 1; `max_age` zero means entries stay).
///
/// The bucket's stream is made here, as the client's `create_key_value` would, because that
/// call first reads the account's JetStream info in a shape a 2.9 server does not answer.
async fn bucket(js: &jetstream::Context, name: &str, max_age: Duration) -> Result<kv::Store, BusError> {
    if let Ok(store) = js.get_key_value(name).await {
        return Ok(store);
    }
    let config = stream::Config {
        name: format!("KV_{name}"),
        subjects: vec![format!("$KV.{name}.>")],
        max_messages_per_subject: 1,
        max_age,
        // A duplicate window longer than max_age is refused.
        duplicate_window: if max_age.is_zero() {
            Duration::from_secs(120)
        } else {
            max_age.min(Duration::from_secs(120))
        },
        storage: stream::StorageType::File,
        allow_rollup: true,
        deny_delete: true,
        allow_direct: true,
        discard: stream::DiscardPolicy::New,
        num_replicas: 1,
        ..Default::default()
    };
    if let Err(e) = js.get_or_create_stream(config).await {
        return Err(broker(name, e));
    }
    js.get_key_value(name).await.map_err(|e| broker(name, e))
}

fn broker(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Broker(format!("{what}: {e}"))
}

/// The key's last sequence a "wrong last sequence" refusal names: JetStream's description says
/// `wrong last sequence: <n>`; `None` if it does not.
fn last_sequence_in(e: &(dyn std::error::Error + 'static)) -> Option<u64> {
    let mut cause = Some(e);
    while let Some(error) = cause {
        let text = error.to_string();
        if let Some(at) = text.find("wrong last sequence: ") {
            let digits: String =
                text[at + "wrong last sequence: ".len()..].chars().take_while(char::is_ascii_digit).collect();
            if let Ok(last) = digits.parse() {
                return Some(last);
            }
        }
        cause = error.source();
    }
    None
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> BusError {
    BusError::Unavailable(format!("{what}: {e}"))
}

/// Bounds a whole operation (which may be several requests) by the request timeout, so a node
/// cut off from NATS hears so within it.
async fn bounded<T>(
    timeout: Duration,
    what: &str,
    work: impl std::future::Future<Output = Result<T, BusError>>,
) -> Result<T, BusError> {
    tokio::time::timeout(timeout, work).await.unwrap_or_else(|_| Err(unavailable(what, "timed out")))
}

impl Bus for NatsBus {
    async fn publish(&self, topic: &Topic, payload: Bytes) -> Result<(), BusError> {
        check_size(&payload)?;
        self.client.publish(self.subject(topic), payload).await.map_err(|e| unavailable("publish", e))
    }

    async fn flush(&self) -> Result<(), BusError> {
        // The client's own flush only writes its buffer to the socket; a request the server
        // answers (here with "no responders") proves it has handled everything sent before.
        let subject = format!("{}.sync", self.cluster);
        match self.client.request(subject, Bytes::new()).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == async_nats::client::RequestErrorKind::NoResponders => Ok(()),
            Err(e) => Err(unavailable("flush", e)),
        }
    }

    async fn subscribe(&self, topic: &Topic) -> Result<Subscription, BusError> {
        let subscriber = self.client.subscribe(self.subject(topic)).await.map_err(|e| unavailable("subscribe", e))?;
        // The server has the subscription once it answered a ping sent after it.
        self.flush().await?;
        Ok(subscriber.map(|message| message.payload).boxed())
    }

    async fn append(&self, key: &LogKey, payload: Bytes, expect: Expect) -> Result<u64, BusError> {
        bounded(self.timeout, "append", async {
            use async_nats::jetstream::context::PublishErrorKind;
            check_size(&payload)?;
            let mut publish = jetstream::message::PublishMessage::build().payload(payload);
            match expect {
                Expect::Any => {}
                Expect::Empty => publish = publish.expected_last_subject_sequence(0),
                Expect::Last(seq) => publish = publish.expected_last_subject_sequence(seq),
            }
            let subject = format!("{}.log.{}", self.cluster, key.as_str());
            let result = match self.js.send_publish(subject, publish).await {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match result {
                Ok(ack) => Ok(ack.sequence),
                Err(e) if e.kind() == PublishErrorKind::WrongLastSequence => {
                    Err(BusError::Conflict { last: last_sequence_in(&e) })
                }
                Err(e) => Err(unavailable("append", e)),
            }
        })
        .await
    }

    async fn read_log(&self, from: u64) -> Result<LogReader, BusError> {
        let reader = ReaderState {
            log: self.log.clone(),
            next: from.max(1),
            messages: None,
            connections_seen: self.connections.load(Ordering::Relaxed),
            connections: Arc::clone(&self.connections),
            prefix_len: self.cluster.as_str().len() + ".log.".len(),
        };
        // The first consumer is made now, so that a NATS without the stream fails here.
        let mut reader = reader;
        reader.messages = Some(open_reader(&reader.log, reader.next).await?);
        Ok(futures_util::stream::unfold(
            reader,
            |mut reader| async move { Some((Ok(reader.next_entry().await), reader)) },
        )
        .boxed())
    }

    async fn log_end(&self) -> Result<u64, BusError> {
        let mut log = self.log.clone();
        let info = tokio::time::timeout(self.timeout, log.info())
            .await
            .map_err(|_| BusError::Unavailable("reading the log's end: no answer".into()))?
            .map_err(|e| unavailable("reading the log's end", e))?;
        Ok(info.state.last_sequence)
    }

    async fn claim(&self, key: &ClaimKey, value: Bytes) -> Result<Claim, BusError> {
        bounded(self.timeout, "claim", async {
            check_size(&value)?;
            // A holder may release between our create and our read; a few rounds settle it.
            for _ in 0..CLAIM_ROUNDS {
                match self.claims.create(key.as_str(), value.clone()).await {
                    Ok(revision) => return Ok(Claim::Granted { revision }),
                    Err(e) if e.kind() == kv::CreateErrorKind::AlreadyExists => {
                        if let Some((holder, revision)) = self.holder(key).await? {
                            return Ok(Claim::Taken { holder, revision });
                        }
                    }
                    Err(e) => return Err(unavailable("claim", e)),
                }
            }
            Err(BusError::Unavailable(format!("claim {}: it kept changing hands", key.as_str())))
        })
        .await
    }

    async fn take_over(&self, key: &ClaimKey, value: Bytes, revision: u64) -> Result<Claim, BusError> {
        bounded(self.timeout, "take over a claim", async {
            check_size(&value)?;
            match self.claims.update(key.as_str(), value.clone(), revision).await {
                Ok(revision) => Ok(Claim::Granted { revision }),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => match self.holder(key).await? {
                    Some((holder, revision)) => Ok(Claim::Taken { holder, revision }),
                    None => self.claim(key, value).await,
                },
                Err(e) => Err(unavailable("take over a claim", e)),
            }
        })
        .await
    }

    async fn release(&self, key: &ClaimKey, revision: u64) -> Result<bool, BusError> {
        bounded(self.timeout, "release a claim", async {
            match self.claims.delete_expect_revision(key.as_str(), Some(revision)).await {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == kv::UpdateErrorKind::WrongLastRevision => Ok(false),
                Err(e) => Err(unavailable("release a claim", e)),
            }
        })
        .await
    }

    async fn holder(&self, key: &ClaimKey) -> Result<Option<(Bytes, u64)>, BusError> {
        bounded(self.timeout, "read a claim", async {
            let entry = self.claims.entry(key.as_str()).await.map_err(|e| unavailable("read a claim", e))?;
            Ok(entry.filter(|entry| entry.operation == kv::Operation::Put).map(|entry| (entry.value, entry.revision)))
        })
        .await
    }

    async fn beat(&self, node: &Name, value: Bytes) -> Result<(), BusError> {
        bounded(self.timeout, "heartbeat", async {
            check_size(&value)?;
            self.nodes.put(node.as_str(), value).await.map(drop).map_err(|e| unavailable("heartbeat", e))
        })
        .await
    }

    async fn alive(&self) -> Result<Vec<(String, Bytes)>, BusError> {
        // The bucket's subjects from the stream's own index, then each one's last entry. (The
        // client's `keys()` makes a consumer that counts entries first and can wait long for
        // one that expired before it was delivered.)
        let prefix = format!("$KV.{}.", Names::of(&self.cluster).nodes_bucket);
        let listing = async {
            let subjects: Vec<(String, usize)> = self
                .nodes_stream
                .info_with_subjects(format!("{prefix}>"))
                .await
                .map_err(|e| unavailable("list heartbeats", e))?
                .try_collect()
                .await
                .map_err(|e| unavailable("list heartbeats", e))?;
            let mut alive = Vec::with_capacity(subjects.len());
            for (subject, _) in subjects {
                let Some(node) = subject.strip_prefix(&prefix) else { continue };
                let entry = self.nodes.entry(node).await.map_err(|e| unavailable("read a heartbeat", e))?;
                if let Some(entry) = entry.filter(|entry| entry.operation == kv::Operation::Put) {
                    alive.push((node.to_owned(), entry.value));
                }
            }
            alive.sort();
            Ok(alive)
        };
        tokio::time::timeout(self.timeout, listing).await.map_err(|_| unavailable("list heartbeats", "timed out"))?
    }

    fn heartbeat_ttl(&self) -> Duration {
        self.ttl
    }
}

/// How often a log reader waiting at the end checks whether the connection was made again.
const READER_CHECK: Duration = Duration::from_millis(250);

/// A log reader: an ordered consumer from the next sequence, made again after every
/// reconnection or error, so that a reader resumes exactly where it was, with no gap and no
/// entry twice, whatever happened to NATS in between.
struct ReaderState {
    /// The log stream.
    log: stream::Stream,
    /// The next sequence to hand out.
    next: u64,
    /// The current consumer's messages, if one is open.
    messages: Option<consumer::pull::Ordered>,
    /// The connection count when the consumer was made.
    connections_seen: u64,
    /// How many times the client has connected.
    connections: Arc<AtomicU64>,
    /// Length of `<cluster>.log.`, cut from subjects to give keys.
    prefix_len: usize,
}

impl ReaderState {
    async fn next_entry(&mut self) -> LogEntry {
        loop {
            let connections = self.connections.load(Ordering::Relaxed);
            if connections != self.connections_seen {
                self.connections_seen = connections;
                self.messages = None;
            }
            let Some(messages) = self.messages.as_mut() else {
                match open_reader(&self.log, self.next).await {
                    Ok(messages) => self.messages = Some(messages),
                    Err(e) => {
                        tracing::debug!(error = %e, "cluster log reader: waiting for NATS");
                        tokio::time::sleep(READER_CHECK).await;
                    }
                }
                continue;
            };
            match tokio::time::timeout(READER_CHECK, messages.next()).await {
                Err(_) => {}
                Ok(Some(Ok(message))) => {
                    let Ok(info) = message.info() else { continue };
                    let seq = info.stream_sequence;
                    if seq < self.next {
                        continue;
                    }
                    self.next = seq + 1;
                    let key = message.subject.as_str().get(self.prefix_len..).unwrap_or_default().to_owned();
                    return LogEntry { seq, key, payload: message.payload.clone() };
                }
                Ok(Some(Err(e))) => {
                    tracing::debug!(error = %e, "cluster log reader: consumer failed, making it again");
                    self.messages = None;
                }
                Ok(None) => self.messages = None,
            }
        }
    }
}

async fn open_reader(log: &stream::Stream, from: u64) -> Result<consumer::pull::Ordered, BusError> {
    let deliver_policy = if from <= 1 {
        consumer::DeliverPolicy::All
    } else {
        consumer::DeliverPolicy::ByStartSequence { start_sequence: from }
    };
    let consumer = log
        .create_consumer(consumer::pull::OrderedConfig { deliver_policy, ..Default::default() })
        .await
        .map_err(|e| unavailable("reading the log", e))?;
    consumer.messages().await.map_err(|e| unavailable("reading the log", e))
}
