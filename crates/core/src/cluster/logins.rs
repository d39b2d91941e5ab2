//! Login throttles across nodes: every settled password check is counted by every node, so an
//! attacker who spreads guesses over the nodes of a cluster slows down as on one node.

use crate::server::{Effect, Server};
use crate::throttle::{Outcome, SharedRecord, Ticket};

use super::event::NodeMessage;
use super::{ClusterEffect, Topic};

impl Server {
    /// Settles a password check (`Throttle::settle`); in cluster mode the other nodes count its
    /// outcome too (an unknown one is nobody's business).
    pub(crate) fn settle_login(&mut self, ticket: Ticket, outcome: Outcome) {
        let shared = (self.cluster.is_some() && outcome != Outcome::Unknown).then(|| ticket.shared());
        self.throttle.settle(ticket, outcome, self.now.mono, &self.cfg.limits);
        let Some(records) = shared else { return };
        let payload = NodeMessage::LoginSettled { records, failed: outcome == Outcome::Failed }.encode();
        self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic: Topic::Network, payload }));
    }

    /// Another node settled a password check.
    pub(crate) fn login_settled_elsewhere(&mut self, records: &[SharedRecord], failed: bool) {
        let outcome = if failed { Outcome::Failed } else { Outcome::Succeeded };
        self.throttle.settled_elsewhere(records, outcome, self.now.mono, &self.cfg.limits);
    }
}
