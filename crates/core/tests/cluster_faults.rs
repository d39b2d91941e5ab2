//! Cluster mode (issue #23) under faults: messages that arrive late or twice, a node that
//! misses or loses answers. The nodes are wired through `support::net`.

mod support;

use chinwag_core::{ClusterEffect, ClusterIdentity, Effect};
use support::all;
use support::net::{names, shared_room, Net};

/// The texts of the PRIVMSGs in `lines`.
fn texts(lines: &[String]) -> Vec<String> {
    all(lines, "PRIVMSG").into_iter().map(|p| p[1].clone()).collect()
}

/// A room message already on its way when the last member on a node left (NATS delivered it,
/// or it waited in the bridge's queue) is no reason, once someone there joins again, to read
/// back and deliver what was said while nobody there was in the room.
#[test]
fn a_message_that_arrives_after_the_last_member_left_does_not_replay_the_absence() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    net.send(0, alice, "PRIVMSG #chat :one");
    assert_eq!(texts(&net.take(1, bob)), ["one"]);
    // "two" leaves node a; it reaches node b only after bob left the room there.
    let h = &mut net.nodes[0];
    let now = h.now();
    h.server.handle(alice, chinwag_proto::Message::parse_client("PRIVMSG #chat :two"), now);
    let mut effects = Vec::new();
    h.server.drain_effects(&mut effects);
    let late = effects
        .into_iter()
        .find_map(|e| match e {
            Effect::Cluster(ClusterEffect::Publish { payload, .. }) => Some(payload),
            _ => None,
        })
        .expect("two is published");
    net.send(1, bob, "PART #chat");
    let h = &mut net.nodes[1];
    let now = h.now();
    h.server.remote(&late, now);
    h.collect();
    net.pump();
    // Said while nobody on node b is in the room.
    net.send(0, alice, "PRIVMSG #chat :three");
    net.send(1, bob, "JOIN #chat");
    net.take(1, bob);
    net.send(0, alice, "PRIVMSG #chat :four");
    let lines = net.take(1, bob);
    assert_eq!(texts(&lines), ["four"], "{lines:#?}");
    assert_eq!(net.nodes[1].server.missed_room_messages(), 0);
}

/// A node frozen past the heartbeat TTL is declared gone by another while it is alive. When it
/// applies its own `NodeGone` it cuts itself off at once: its users get `ERROR` and are closed
/// (a command of theirs waiting for the log would never be answered, since every node ignores
/// a gone incarnation's entries), the others see each of their QUITs once, and the node asks
/// to join again; as a new incarnation it serves again, its users' nicks free for them.
#[test]
fn a_node_that_reads_its_own_node_gone_drops_its_users_and_joins_again() {
    let mut net = Net::new(2);
    let (alice, bob) = shared_room(&mut net);
    // Node a freezes; node b sees its heartbeat expire and says so.
    net.lose_node(0, 1);
    let quits = all(&net.take(1, bob), "QUIT");
    assert_eq!(quits.len(), 1, "{quits:?}");
    // Node a wakes up and, before it reads the log, alice asks for something the log must carry.
    net.down.remove(&0);
    net.nodes[0].send(alice, "TOPIC #chat :still here");
    net.pump();
    let lines = net.take(0, alice);
    assert!(
        lines.iter().any(|l| l.starts_with("ERROR ") && l.contains("reconnect (another node will take you)")),
        "{lines:#?}"
    );
    assert!(net.nodes[0].is_closed(alice));
    assert_eq!(net.rejoins, [0]);
    let lines = net.take(1, bob);
    assert!(all(&lines, "QUIT").is_empty() && all(&lines, "TOPIC").is_empty(), "{lines:#?}");
    // The server joins again as a new incarnation; the log is read again from its start.
    net.nodes[0].server.enable_cluster(ClusterIdentity { node: "a".into(), incarnation: 2000 });
    net.applied[0] = 0;
    net.pump();
    let again = net.register(0, "alice", "");
    net.send(0, again, "JOIN #chat");
    assert_eq!(names(&net.take(0, again)), ["alice", "bob"]);
    assert_eq!(all(&net.take(1, bob), "JOIN").len(), 1);
}
