//! Cluster mode (issue #23) under faults: messages that arrive late or twice, a node that
//! misses or loses answers. The nodes are wired through `support::net`.

mod support;

use chinwag_core::{ClusterEffect, Effect};
use support::all;
use support::net::{shared_room, Net};

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
