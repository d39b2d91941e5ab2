//! Throttles across nodes: every settled password check, and every account registration let
//! through, is counted by every node, so an attacker who spreads guesses or sign-ups over the
//! nodes of a cluster is held back as on one node.

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

    /// An account registration from `ip` was let through here: the other nodes count it
    /// against that address's budget too.
    pub(crate) fn share_registration(&mut self, ip: std::net::IpAddr) {
        if self.cluster.is_some() {
            let payload = NodeMessage::Registration { ip: ip.to_string() }.encode();
            self.effects.push(Effect::Cluster(ClusterEffect::Publish { topic: Topic::Network, payload }));
        }
    }

    /// Another node let a registration from `ip` through (one that does not parse is ignored).
    pub(crate) fn registration_elsewhere(&mut self, ip: &str) {
        let Ok(ip) = ip.parse() else { return };
        // Taken whether or not the budget had room: it was spent all the same.
        let _ = self.throttle.register(ip, self.now.mono, self.cfg.limits.registrations);
    }

    /// Another node settled a password check.
    pub(crate) fn login_settled_elsewhere(&mut self, records: &[SharedRecord], failed: bool) {
        let outcome = if failed { Outcome::Failed } else { Outcome::Succeeded };
        self.throttle.settled_elsewhere(records, outcome, self.now.mono, &self.cfg.limits);
    }
}
