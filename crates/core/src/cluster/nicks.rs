//! Nicks network-wide: in cluster mode a nick is taken only once the claims bucket granted it
//! (`docs/cluster.md`, "A nick"). NICK (before or after registration) and the `Guest` rename
//! ask through `Request::Claim`; the client's later lines wait for the answer like for a
//! password check, and meanwhile the nick is reserved here so that two local clients cannot
//! both ask. A claim held by a dead node incarnation (or by a connection of this node that no
//! longer has it) is taken over at its revision.

use chinwag_proto::Nick;

use crate::broadcast::Outgoing;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::{Effect, Server};
use crate::store::{Request, Response};

use super::{ClaimAnswer, ClaimRequest, ClusterEffect, UserId};

/// Which question a claim's answer answers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClaimStep {
    /// Create the claim.
    Create,
    /// Replace a dead holder's claim.
    TakeOver,
}

impl Server {
    /// In cluster mode, asks for `nick` network-wide for `conn` and answers `true`: the
    /// answer goes on in [`Server::claim_response`] (or 433 now, when a user on another node
    /// or another local client's claim has it). `false` on a single node, or when the client
    /// already holds the claim (a change of case): the caller goes on as on one node.
    pub(crate) fn claim_nick(&mut self, conn: ConnId, nick: &Nick, guest: bool) -> bool {
        let Some(cluster) = self.cluster.as_mut() else { return false };
        let folded = nick.folded();
        if cluster.claims.get(&conn).is_some_and(|(held, _)| held == folded) {
            return false;
        }
        if cluster.nicks.contains_key(folded) || cluster.reserved.get(folded).is_some_and(|c| *c != conn) {
            if !guest {
                self.numeric(ERR_NICKNAMEINUSE, [nick.as_str(), "Nickname is already in use"]);
            }
            return true;
        }
        cluster.reserved.insert(folded.to_owned(), conn);
        let Some(uid) = self.local_uid(conn) else { return false };
        let request = ClaimRequest::Nick { nick: folded.to_owned(), holder: uid.claim_value() };
        let label = self.take_label();
        let pending =
            crate::pending::Pending::Claim { conn, nick: nick.clone(), step: ClaimStep::Create, guest, label };
        self.request(Request::Claim(request), pending);
        true
    }

    /// The claims bucket answered (`Pending::Claim`).
    pub(crate) fn claim_response(
        &mut self,
        conn: ConnId,
        nick: Nick,
        step: ClaimStep,
        guest: bool,
        response: Response,
    ) {
        let answer = match response {
            Response::Claim(answer) => answer,
            other => {
                tracing::warn!(?other, "a nick claim answered with something else");
                ClaimAnswer::Unavailable
            }
        };
        let Some(mine) = self.local_uid(conn) else { return };
        let folded = nick.folded().to_owned();
        match answer {
            ClaimAnswer::Granted { revision } => self.claim_granted(conn, nick, revision, guest),
            ClaimAnswer::Taken { holder, revision, .. } if holder == mine.claim_value() => {
                // Our own earlier attempt, whose answer was lost: it is ours.
                self.claim_granted(conn, nick, revision, guest);
            }
            ClaimAnswer::Taken { holder, revision, alive }
                if step == ClaimStep::Create
                    && self.clients.contains_key(&conn)
                    && self.claim_stale(&holder, alive, &folded) =>
            {
                let request = ClaimRequest::TakeOver { nick: folded, holder: mine.claim_value(), revision };
                let label = self.take_label();
                let pending = crate::pending::Pending::Claim { conn, nick, step: ClaimStep::TakeOver, guest, label };
                self.request(Request::Claim(request), pending);
            }
            ClaimAnswer::Taken { .. } => {
                self.unreserve(&folded, conn);
                if guest {
                    self.rename_to_guest(conn);
                } else {
                    self.numeric(ERR_NICKNAMEINUSE, [nick.as_str(), "Nickname is already in use"]);
                }
            }
            ClaimAnswer::Unavailable => {
                self.unreserve(&folded, conn);
                let text = "The network cannot check nicks right now; try again in a moment";
                self.fail("NICK", "TEMPORARILY_UNAVAILABLE", &[nick.as_str()], text);
            }
        }
    }

    /// Whether a claim held by `holder` may be taken over: its node incarnation is dead (the
    /// server says, or this node applied its `NodeGone`), or it is this node's own and the
    /// connection it names no longer holds it (a release that did not get through).
    fn claim_stale(&self, holder: &[u8], alive: bool, folded: &str) -> bool {
        let (Some(cluster), Some(h)) = (self.cluster.as_ref(), UserId::from_claim_value(holder)) else { return false };
        if !alive || cluster.gone.contains(&(h.node.clone(), h.incarnation)) {
            return true;
        }
        h.node == cluster.me.node
            && h.incarnation == cluster.me.incarnation
            && cluster.claims.get(&ConnId(h.conn)).is_none_or(|(held, _)| held != folded)
    }

    /// The nick is `conn`'s network-wide: it takes it as on one node, and the claim on the
    /// nick it had goes.
    fn claim_granted(&mut self, conn: ConnId, nick: Nick, revision: u64, guest: bool) {
        let folded = nick.folded().to_owned();
        self.unreserve(&folded, conn);
        let Some(cluster) = self.cluster.as_mut() else { return };
        if !self.clients.contains_key(&conn) {
            // Gone while it waited.
            self.effects.push(Effect::Cluster(ClusterEffect::ReleaseNick { nick: folded, revision }));
            return;
        }
        if let Some((old, old_revision)) = cluster.claims.insert(conn, (folded.clone(), revision)) {
            if old != folded {
                self.effects.push(Effect::Cluster(ClusterEffect::ReleaseNick { nick: old, revision: old_revision }));
            }
        }
        if self.clients.get(&conn).is_some_and(|c| c.registered) {
            if guest {
                self.nickserv_notice("You did not log in in time; your nick has been changed.");
            }
            self.change_nick(nick);
        } else {
            self.set_unregistered_nick(conn, nick);
        }
    }

    fn unreserve(&mut self, folded: &str, conn: ConnId) {
        if let Some(cluster) = self.cluster.as_mut() {
            if cluster.reserved.get(folded) == Some(&conn) {
                cluster.reserved.remove(folded);
            }
        }
    }

    /// `conn` is gone: its claim is released, its reservations dropped, and if it was a user
    /// (`quit`: its QUIT as its rooms here saw it) the network hears it quit.
    pub(crate) fn cluster_forget(&mut self, conn: ConnId, quit: Option<&Outgoing>, reason: &str) {
        let Some(cluster) = self.cluster.as_mut() else { return };
        cluster.reserved.retain(|_, c| *c != conn);
        let mut waited = Vec::new();
        cluster.room_waits.retain(|(c, folded), _| {
            if *c == conn {
                waited.push(folded.clone());
            }
            *c != conn
        });
        let claim = cluster.claims.remove(&conn);
        // A JOIN it left waiting no longer keeps the node listening to that room.
        for folded in waited {
            self.sync_interest(&folded);
        }
        if let Some(quit) = quit {
            if let Some(uid) = self.local_uid(conn) {
                let stamp = self.stamp_of(quit);
                self.append_user_event(super::NetEvent::Quit { uid, reason: reason.to_owned(), stamp });
            }
        }
        if let Some((nick, revision)) = claim {
            self.effects.push(Effect::Cluster(ClusterEffect::ReleaseNick { nick, revision }));
        }
    }

    /// Whether the `Guest` rename may go on now: always on one node; in cluster mode the
    /// nick is claimed first and the rename goes on from the answer.
    pub(crate) fn guest_claimed(&mut self, conn: ConnId, nick: &Nick) -> bool {
        self.cluster.is_none() || !self.claim_nick(conn, nick, true)
    }

    /// Whether a user on another node, or a local claim in flight, has the nick (folded).
    pub(crate) fn nick_taken_elsewhere(&self, folded: &str, conn: ConnId) -> bool {
        self.cluster
            .as_ref()
            .is_some_and(|c| c.nicks.contains_key(folded) || c.reserved.get(folded).is_some_and(|r| *r != conn))
    }
}
