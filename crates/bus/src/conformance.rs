//! The test suite every [`Bus`] implementation must pass.
//!
//! An implementation's test calls [`run_all`] with a function that makes a fresh, empty
//! [`Network`] per check; each node of a check is a separate handle (for NATS, a separate
//! connection), as separate nodes would be. Checks panic on the first wrong answer with what
//! they expected; every wait is bounded by [`WAIT`] (or the heartbeat TTL, for liveness).
//!
//! What is checked is what the cluster relies on: a publisher's order for every subscriber,
//! topics that never cross, one global log order with per-key compare-and-set, exactly one
//! winner among racing claimers, and heartbeats that vanish when their node stops.

use std::future::Future;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::time::timeout;

use crate::membership::{JoinError, Member, Membership};
use crate::{Bus, BusError, Claim, ClaimKey, Expect, LogKey, LogReader, Name, Subscription, Topic, MAX_PAYLOAD};

/// The longest any check waits for something that should happen.
pub const WAIT: Duration = Duration::from_secs(10);

/// A fresh network to run one check on.
pub trait Network {
    /// The bus a node gets.
    type Bus: Bus;
    /// A new node's handle on this network (for NATS, a new connection).
    fn join(&self) -> impl Future<Output = Self::Bus>;
}

/// Runs the named checks in order, each on a fresh network from `make`, saying which runs.
macro_rules! run_checks {
    ($make:ident: $($check:ident),+) => {
        $(
            eprintln!("bus conformance: {}", stringify!($check));
            $check(&$make().await).await;
        )+
    };
}

/// Runs every check, each on a fresh network from `make`.
pub async fn run_all<N: Network>(mut make: impl AsyncFnMut() -> N) {
    run_checks!(make: publish_order, own_publications_stay_away, topics_do_not_cross, log_order_and_replay, log_compare_and_set,
        nick_claim_race, take_over_and_release, heartbeats_expire, payload_limit, membership_join_and_death,
        membership_refuses_a_live_name);
}

/// The next payload of a subscription, within [`WAIT`].
pub async fn next(subscription: &mut Subscription, what: &str) -> Bytes {
    match timeout(WAIT, subscription.next()).await {
        Ok(Some(payload)) => payload,
        Ok(None) => panic!("{what}: the subscription ended"),
        Err(_) => panic!("{what}: nothing arrived within {WAIT:?}"),
    }
}

/// The next log entry, within [`WAIT`]: its sequence, key and payload.
pub async fn next_entry(reader: &mut LogReader, what: &str) -> (u64, String, Bytes) {
    match timeout(WAIT, reader.next()).await {
        Ok(Some(Ok(entry))) => (entry.seq, entry.key, entry.payload),
        Ok(Some(Err(e))) => panic!("{what}: reading the log failed: {e}"),
        Ok(None) => panic!("{what}: the log reader ended"),
        Err(_) => panic!("{what}: no entry within {WAIT:?}"),
    }
}

/// Asserts that nothing arrives for a short while (after a flush made sure anything sent is
/// on its way).
async fn assert_quiet(subscription: &mut Subscription, what: &str) {
    if let Ok(Some(payload)) = timeout(Duration::from_millis(200), subscription.next()).await {
        panic!("{what}: got {payload:?}, expected nothing");
    }
}

fn ok<T>(result: Result<T, BusError>, what: &str) -> T {
    result.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Two subscribers on two nodes see a third node's 500 messages exactly once each, in order.
pub async fn publish_order<N: Network>(net: &N) {
    let (publisher, a, b) = (net.join().await, net.join().await, net.join().await);
    let room = Topic::room("#order");
    let mut sub_a = ok(a.subscribe(&room).await, "subscribe a");
    let mut sub_b = ok(b.subscribe(&room).await, "subscribe b");
    for i in 0..500u32 {
        ok(publisher.publish(&room, Bytes::from(i.to_string())).await, "publish");
    }
    ok(publisher.flush().await, "flush");
    for (name, sub) in [("a", &mut sub_a), ("b", &mut sub_b)] {
        for i in 0..500u32 {
            let got = next(sub, &format!("subscriber {name}, message {i}")).await;
            assert_eq!(got, Bytes::from(i.to_string()), "subscriber {name} got messages out of order");
        }
        assert_quiet(sub, &format!("subscriber {name} after all 500")).await;
    }
}

/// A node subscribed to a room it publishes to gets the others' messages, not its own.
pub async fn own_publications_stay_away<N: Network>(net: &N) {
    let (a, b) = (net.join().await, net.join().await);
    let room = Topic::room("#echo");
    let mut sub_a = ok(a.subscribe(&room).await, "subscribe a");
    let mut sub_b = ok(b.subscribe(&room).await, "subscribe b");
    ok(a.publish(&room, Bytes::from_static(b"from a")).await, "publish a");
    ok(a.flush().await, "flush a");
    ok(b.publish(&room, Bytes::from_static(b"from b")).await, "publish b");
    ok(b.flush().await, "flush b");
    assert_eq!(next(&mut sub_b, "b gets a's").await, Bytes::from_static(b"from a"));
    assert_eq!(next(&mut sub_a, "a gets b's").await, Bytes::from_static(b"from b"));
    assert_quiet(&mut sub_a, "a after b's message").await;
    assert_quiet(&mut sub_b, "b after a's message").await;
}

/// A room's messages reach neither another room (even one whose name differs only in
/// characters NATS treats specially) nor a node topic.
pub async fn topics_do_not_cross<N: Network>(net: &N) {
    let (publisher, listener) = (net.join().await, net.join().await);
    let node = Name::new("node-a").expect("valid name");
    let mut plain = ok(listener.subscribe(&Topic::room("#a")).await, "subscribe #a");
    let mut dotted = ok(listener.subscribe(&Topic::room("#a.b")).await, "subscribe #a.b");
    let mut starred = ok(listener.subscribe(&Topic::room("#a*")).await, "subscribe #a*");
    let mut to_node = ok(listener.subscribe(&Topic::node(&node)).await, "subscribe node");
    ok(publisher.publish(&Topic::room("#a.b"), Bytes::from_static(b"dotted")).await, "publish");
    ok(publisher.publish(&Topic::room("#a>"), Bytes::from_static(b"nobody's")).await, "publish");
    ok(publisher.publish(&Topic::node(&node), Bytes::from_static(b"private")).await, "publish");
    ok(publisher.flush().await, "flush");
    assert_eq!(next(&mut dotted, "#a.b").await, Bytes::from_static(b"dotted"));
    assert_eq!(next(&mut to_node, "node").await, Bytes::from_static(b"private"));
    assert_quiet(&mut plain, "#a").await;
    assert_quiet(&mut starred, "#a*").await;
    assert_quiet(&mut dotted, "#a.b after its one message").await;
}

/// Entries from several nodes get one order; a reader from the start, one from the middle and
/// one waiting at the end see the same entries in it.
pub async fn log_order_and_replay<N: Network>(net: &N) {
    let (a, b, reader_node) = (net.join().await, net.join().await, net.join().await);
    let mut tail = ok(reader_node.read_log(1).await, "read the empty log");
    assert_eq!(ok(reader_node.log_end().await, "the empty log's end"), 0);
    let mut seqs = Vec::new();
    for i in 0..6u32 {
        let (node, key) = if i % 2 == 0 { (&a, LogKey::room("#x")) } else { (&b, LogKey::net()) };
        seqs.push(ok(node.append(&key, Bytes::from(i.to_string()), Expect::Any).await, "append"));
    }
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "sequences must grow: {seqs:?}");
    assert_eq!(ok(reader_node.log_end().await, "the log's end"), seqs[5], "the end is the last entry");
    for (i, seq) in seqs.iter().enumerate() {
        let (got, key, payload) = next_entry(&mut tail, "the waiting reader").await;
        assert_eq!((got, payload), (*seq, Bytes::from(i.to_string())));
        let expected = if i % 2 == 0 { LogKey::room("#x") } else { LogKey::net() };
        assert_eq!(key, expected.as_str());
    }
    let mut middle = ok(reader_node.read_log(seqs[3]).await, "read from the middle");
    for (i, seq) in seqs.iter().enumerate().skip(3) {
        assert_eq!(next_entry(&mut middle, "the reader from the middle").await.0, *seq, "entry {i}");
    }
    let late = ok(a.append(&LogKey::net(), Bytes::from_static(b"late"), Expect::Any).await, "append");
    assert_eq!(next_entry(&mut middle, "a later entry").await, (late, "net".to_owned(), Bytes::from_static(b"late")));
    assert_eq!(next_entry(&mut tail, "a later entry").await.0, late);
}

/// An append that expects a key's last sequence fails once another append to that key got in,
/// and only for that key.
pub async fn log_compare_and_set<N: Network>(net: &N) {
    let (a, b) = (net.join().await, net.join().await);
    let room = LogKey::room("#cas");
    let first = ok(a.append(&room, Bytes::from_static(b"create"), Expect::Empty).await, "first append");
    // A conflict says where the key is now.
    let conflict = b.append(&room, Bytes::from_static(b"create too"), Expect::Empty).await;
    assert!(matches!(conflict, Err(BusError::Conflict { last: Some(l) }) if l == first), "{conflict:?}");
    let second = ok(b.append(&room, Bytes::from_static(b"topic"), Expect::Last(first)).await, "append at the last");
    let conflict = a.append(&room, Bytes::from_static(b"mode"), Expect::Last(first)).await;
    assert!(matches!(conflict, Err(BusError::Conflict { last: Some(l) }) if l == second), "{conflict:?}");
    ok(a.append(&LogKey::room("#other"), Bytes::from_static(b"join"), Expect::Empty).await, "another key");
    ok(a.append(&room, Bytes::from_static(b"mode"), Expect::Last(second)).await, "append after catching up");
    // Racing appends at the same expected sequence: exactly one gets in.
    let nodes = join_nodes(net, 8).await;
    let race = LogKey::room("#race");
    let results =
        futures_util::future::join_all(nodes.iter().map(|n| n.append(&race, Bytes::from_static(b"x"), Expect::Empty)))
            .await;
    let won = results.iter().filter(|r| r.is_ok()).count();
    assert_eq!(won, 1, "racing appends: {results:?}");
}

async fn join_nodes<N: Network>(net: &N, n: usize) -> Vec<N::Bus> {
    let mut nodes = Vec::with_capacity(n);
    for _ in 0..n {
        nodes.push(net.join().await);
    }
    nodes
}

/// Sixteen nodes claim one nick at once: exactly one wins, and every loser is told the winner.
pub async fn nick_claim_race<N: Network>(net: &N) {
    let nodes = join_nodes(net, 16).await;
    let key = ClaimKey::nick("alice");
    let results = futures_util::future::join_all(
        nodes.iter().enumerate().map(|(i, n)| n.claim(&key, Bytes::from(format!("node-{i}")))),
    )
    .await;
    let results: Vec<Claim> = results.into_iter().map(|r| ok(r, "claim")).collect();
    let winners: Vec<usize> = (0..results.len()).filter(|&i| matches!(results[i], Claim::Granted { .. })).collect();
    assert_eq!(winners.len(), 1, "exactly one claimer must win: {results:?}");
    let winner = Bytes::from(format!("node-{}", winners[0]));
    let Claim::Granted { revision } = results[winners[0]] else { unreachable!() };
    for result in &results {
        if let Claim::Taken { holder, revision: seen } = result {
            assert_eq!((holder, *seen), (&winner, revision), "a loser must be told who won");
        }
    }
    assert_eq!(ok(nodes[1].holder(&key).await, "holder"), Some((winner.clone(), revision)));
    // Released, it is free for the next claimer, once.
    assert!(ok(nodes[winners[0]].release(&key, revision).await, "release"));
    assert_eq!(ok(nodes[2].holder(&key).await, "holder"), None);
    let again = futures_util::future::join_all(
        nodes.iter().take(4).map(|n| n.claim(&key, Bytes::from_static(b"second round"))),
    )
    .await;
    assert_eq!(again.iter().filter(|r| matches!(r, Ok(Claim::Granted { .. }))).count(), 1, "{again:?}");
    // Another nick is unaffected.
    assert!(matches!(
        ok(nodes[0].claim(&ClaimKey::nick("bob"), Bytes::from_static(b"x")).await, "claim bob"),
        Claim::Granted { .. }
    ));
    // Twenty more races, each for a nick of its own: never two winners.
    for round in 0..20 {
        let key = ClaimKey::nick(&format!("race{round}"));
        let results =
            futures_util::future::join_all(nodes.iter().map(|n| n.claim(&key, Bytes::from_static(b"x")))).await;
        let won = results.iter().filter(|r| matches!(r, Ok(Claim::Granted { .. }))).count();
        assert_eq!(won, 1, "round {round}: {results:?}");
    }
}

/// A claim left by a dead node is taken over at its revision by one of the racers; its old
/// holder can then no longer release it.
pub async fn take_over_and_release<N: Network>(net: &N) {
    let (dead, a, b) = (net.join().await, net.join().await, net.join().await);
    let key = ClaimKey::nick("carol");
    let Claim::Granted { revision: stale } = ok(dead.claim(&key, Bytes::from_static(b"dead")).await, "claim") else {
        panic!("a free nick must be granted");
    };
    let (ra, rb) = tokio::join!(
        a.take_over(&key, Bytes::from_static(b"a"), stale),
        b.take_over(&key, Bytes::from_static(b"b"), stale)
    );
    let (ra, rb) = (ok(ra, "take over a"), ok(rb, "take over b"));
    let (winner, revision) = match (&ra, &rb) {
        (Claim::Granted { revision }, Claim::Taken { holder, .. }) => {
            assert_eq!(holder, &Bytes::from_static(b"a"));
            ("a", *revision)
        }
        (Claim::Taken { holder, .. }, Claim::Granted { revision }) => {
            assert_eq!(holder, &Bytes::from_static(b"b"));
            ("b", *revision)
        }
        other => panic!("exactly one take-over must win: {other:?}"),
    };
    assert!(
        !ok(dead.release(&key, stale).await, "stale release"),
        "a stale release must not free someone else's claim"
    );
    assert_eq!(ok(a.holder(&key).await, "holder"), Some((Bytes::from(winner), revision)));
    assert!(ok(b.release(&key, revision).await, "release"));
    // A take-over of a free key claims it.
    assert!(matches!(
        ok(a.take_over(&key, Bytes::from_static(b"a"), revision).await, "take over"),
        Claim::Granted { .. }
    ));
}

/// Two nodes beat; one stops: within the TTL (and a margin) only the other is alive.
pub async fn heartbeats_expire<N: Network>(net: &N) {
    let (dying, living) = (net.join().await, net.join().await);
    let ttl = living.heartbeat_ttl();
    let (d, l) = (Name::new("dying").expect("name"), Name::new("living").expect("name"));
    ok(dying.beat(&d, Bytes::from_static(b"1")).await, "beat");
    ok(living.beat(&l, Bytes::from_static(b"1")).await, "beat");
    let names = |alive: Vec<(String, Bytes)>| alive.into_iter().map(|(n, _)| n).collect::<Vec<_>>();
    assert_eq!(names(ok(living.alive().await, "alive")), ["dying", "living"]);
    drop(dying);
    let deadline = tokio::time::Instant::now() + ttl * 3 + Duration::from_secs(3);
    let started = tokio::time::Instant::now();
    loop {
        ok(living.beat(&l, Bytes::from_static(b"2")).await, "beat");
        let alive = ok(living.alive().await, "alive");
        if names(alive.clone()) == ["living"] {
            assert_eq!(alive[0].1, Bytes::from_static(b"2"), "the last beat's value");
            assert!(started.elapsed() >= ttl / 2, "the dead node vanished too early: {:?}", started.elapsed());
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead node's heartbeat outlived {:?}: {alive:?}",
            deadline - started
        );
        tokio::time::sleep(ttl / 10).await;
    }
}

/// A payload over the limit is refused, and one at the limit goes through.
pub async fn payload_limit<N: Network>(net: &N) {
    let (node, listener) = (net.join().await, net.join().await);
    let room = Topic::room("#big");
    let mut sub = ok(listener.subscribe(&room).await, "subscribe");
    let too_big = Bytes::from(vec![b'x'; MAX_PAYLOAD + 1]);
    assert!(matches!(node.publish(&room, too_big.clone()).await, Err(BusError::TooLarge(_))));
    assert!(matches!(node.append(&LogKey::net(), too_big, Expect::Any).await, Err(BusError::TooLarge(_))));
    let at_limit = Bytes::from(vec![b'y'; MAX_PAYLOAD]);
    ok(node.publish(&room, at_limit.clone()).await, "publish at the limit");
    ok(node.flush().await, "flush");
    assert_eq!(next(&mut sub, "the largest message").await, at_limit);
}

fn name(name: &str) -> Name {
    Name::new(name).expect("a valid node name")
}

fn member(node: &str, incarnation: u64) -> Member {
    Member { node: node.to_owned(), incarnation }
}

/// Two nodes asking for the same node number get different ones and see each other; one dies
/// and the other hears of it within the TTL and a margin (well inside the 10 s users may wait
/// for the QUITs); started again, it is a new incarnation and gets its number back.
pub async fn membership_join_and_death<N: Network>(net: &N) {
    let mut a = Membership::join(net.join().await, &name("a"), 1, 7).await.expect("a joins");
    let b = Membership::join(net.join().await, &name("b"), 2, 7).await.expect("b joins");
    assert_eq!((a.node_id(), b.node_id()), (7, 8), "the second node takes the next free number");
    let ttl = b.heartbeat_ttl();
    let changes = ok(a.poll().await, "poll");
    assert_eq!((changes.joined, changes.gone), (vec![member("b", 2)], vec![]));

    drop(b);
    let started = tokio::time::Instant::now();
    loop {
        ok(a.beat().await, "beat");
        let changes = ok(a.poll().await, "poll");
        if !changes.gone.is_empty() {
            assert_eq!(changes.gone, [member("b", 2)]);
            break;
        }
        assert!(
            started.elapsed() < ttl * 3 + Duration::from_secs(3),
            "b's death went unseen for {:?}",
            started.elapsed()
        );
        tokio::time::sleep(ttl / 10).await;
    }
    assert!(started.elapsed() < Duration::from_secs(10), "b's death took {:?} to see", started.elapsed());
    eprintln!("bus conformance: a dead node seen gone after {:?} (heartbeat TTL {ttl:?})", started.elapsed());
    assert_eq!(a.known().collect::<Vec<_>>(), [member("a", 1)]);

    let b = Membership::join(net.join().await, &name("b"), 3, 8).await.expect("b joins again");
    assert_eq!(b.node_id(), 8, "a dead incarnation's number is taken over");
    let changes = ok(a.poll().await, "poll");
    assert_eq!(changes.joined, [member("b", 3)]);
    ok(b.leave().await, "leave");
    let c = Membership::join(net.join().await, &name("c"), 4, 8).await.expect("c joins");
    assert_eq!(c.node_id(), 8, "a number given back is free");
}

/// While a node beats, another under its name is refused, saying why.
pub async fn membership_refuses_a_live_name<N: Network>(net: &N) {
    let a = Membership::join(net.join().await, &name("a"), 1, 0).await.expect("a joins");
    let beating = async {
        loop {
            ok(a.beat().await, "beat");
            tokio::time::sleep(a.beat_interval()).await;
        }
    };
    let taken = name("a");
    let impostor = Membership::join(net.join().await, &taken, 2, 0);
    let refused = tokio::select! {
        result = impostor => result.expect_err("a second live node named a must be refused"),
        () = beating => unreachable!("beats forever"),
    };
    assert!(matches!(refused, JoinError::NameTaken(ref node, _) if node == "a"), "{refused:?}");
    assert!(refused.to_string().contains("--node-name"), "{refused}");
}
