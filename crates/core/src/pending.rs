//! Work the core waits for: requests to the edge (storage, password hashing), their
//! continuations, and the durable-state effects (history, rooms) the core leaves behind.

use chinwag_proto::casefold;

use crate::channel::Channel;
use crate::handlers::account::{LoginVia, RegisterVia};
use crate::ids::ConnId;
use crate::server::{Effect, Now, Server};
use crate::store::{ChannelSnapshot, HistoryItem, Request, RequestId, Response};
use crate::throttle::Ticket;

/// What to do when a request's response arrives. Each carries the labeled-response label of the
/// command that caused it, so the answer is labeled as if it had been immediate.
#[derive(Debug)]
pub(crate) enum Pending {
    Login {
        conn: ConnId,
        account: String,
        via: LoginVia,
        ticket: Ticket,
        label: Option<String>,
    },
    /// SCRAM credentials for an exchange whose client-first message was `first`.
    Scram {
        conn: ConnId,
        first: Box<crate::scram::ClientFirst>,
        ticket: Ticket,
        label: Option<String>,
    },
    /// SASL EXTERNAL: the account owning the client's certificate; `authzid` is who it asked to be.
    External {
        conn: ConnId,
        authzid: Option<String>,
        label: Option<String>,
    },
    /// NickServ CERT.
    Cert {
        conn: ConnId,
        label: Option<String>,
    },
    Register {
        conn: ConnId,
        via: RegisterVia,
        label: Option<String>,
    },
    SetPassword {
        conn: ConnId,
        label: Option<String>,
    },
    Drop {
        conn: ConnId,
        account: String,
        label: Option<String>,
    },
    History {
        conn: ConnId,
        target: String,
        label: Option<String>,
    },
    Targets {
        conn: ConnId,
        label: Option<String>,
    },
    Offline {
        conn: ConnId,
        account: String,
    },
    /// Lines replayed to a client that joined `target` (see `Server::autoreplay_on_join`);
    /// none older than `oldest_ms`.
    Autoreplay {
        conn: ConnId,
        target: String,
        oldest_ms: u64,
    },
    Oper {
        conn: ConnId,
        name: String,
        ticket: Ticket,
        label: Option<String>,
    },
    Rehash {
        conn: ConnId,
        by: String,
        label: Option<String>,
    },
    Keys {
        conn: ConnId,
        then: crate::handlers::e2e::KeysThen,
        label: Option<String>,
    },
    /// An account's read markers, loading (`handlers/markread.rs`).
    Markers {
        conn: ConnId,
        account: String,
        then: crate::handlers::markread::MarkersThen,
        label: Option<String>,
    },
    /// `MARKREAD <target> timestamp=…` of an account, being stored; `target` as replies name
    /// it, `key` folded.
    MarkRead {
        conn: ConnId,
        account: String,
        target: String,
        key: String,
        label: Option<String>,
    },
    /// Cluster mode: a nick claim out (`cluster/nicks.rs`); `guest`: for the `Guest` rename.
    Claim {
        conn: ConnId,
        nick: chinwag_proto::Nick,
        step: crate::cluster::ClaimStep,
        guest: bool,
        label: Option<String>,
    },
    /// Cluster mode: a room's messages from another node that never arrived, read back from
    /// storage (`cluster/rooms.rs`); `origin` is the msgid suffix (node number) of that node.
    GapFill {
        room: String,
        origin: String,
    },
    /// `REDACT`: the message being looked up, then (`committing`) redacted.
    Redact {
        conn: ConnId,
        redaction: Box<crate::handlers::redact::Redaction>,
        committing: bool,
        label: Option<String>,
    },
}

impl Pending {
    fn conn(&self) -> ConnId {
        match self {
            Pending::Login { conn, .. }
            | Pending::Scram { conn, .. }
            | Pending::External { conn, .. }
            | Pending::Cert { conn, .. }
            | Pending::Register { conn, .. }
            | Pending::SetPassword { conn, .. }
            | Pending::Drop { conn, .. }
            | Pending::History { conn, .. }
            | Pending::Targets { conn, .. }
            | Pending::Offline { conn, .. }
            | Pending::Autoreplay { conn, .. }
            | Pending::Oper { conn, .. }
            | Pending::Rehash { conn, .. }
            | Pending::Keys { conn, .. }
            | Pending::Markers { conn, .. }
            | Pending::MarkRead { conn, .. }
            | Pending::Claim { conn, .. }
            | Pending::Redact { conn, .. } => *conn,
            // Nobody's: the fill is delivered to the room's members.
            Pending::GapFill { .. } => ConnId(u64::MAX),
        }
    }

    /// Whether the client's later commands wait for this answer. Everything a client asked for
    /// does (its commands run in the order it sent them); offline delivery, which the server
    /// starts by itself after a login, does not; nor does the replay after a JOIN, so that a
    /// slow store never holds up a client that just joined a room.
    fn holds_input(&self) -> bool {
        !matches!(self, Pending::Offline { .. } | Pending::Autoreplay { .. } | Pending::GapFill { .. })
    }

    fn label(&self) -> Option<String> {
        match self {
            Pending::Login { label, .. }
            | Pending::Scram { label, .. }
            | Pending::External { label, .. }
            | Pending::Cert { label, .. }
            | Pending::Register { label, .. }
            | Pending::SetPassword { label, .. }
            | Pending::Drop { label, .. }
            | Pending::History { label, .. }
            | Pending::Targets { label, .. }
            | Pending::Oper { label, .. }
            | Pending::Rehash { label, .. }
            | Pending::Keys { label, .. }
            | Pending::Markers { label, .. }
            | Pending::MarkRead { label, .. }
            | Pending::Claim { label, .. }
            | Pending::Redact { label, .. } => label.clone(),
            Pending::Offline { .. } | Pending::Autoreplay { .. } | Pending::GapFill { .. } => None,
        }
    }
}

impl Server {
    /// Loads what storage remembers: account names (for nick protection and offline delivery)
    /// and rooms (topic, modes, bans). Call once, before the first connection.
    pub fn restore(&mut self, accounts: Vec<String>, channels: Vec<ChannelSnapshot>) {
        for name in accounts {
            self.accounts.insert(casefold(&name), name);
        }
        for snap in channels {
            let Ok(name) = chinwag_proto::ChannelName::parse(&snap.name, self.cfg.limits.channel_len) else {
                tracing::warn!(channel = %snap.name, "ignoring a stored room with an invalid name");
                continue;
            };
            let permanent = self.channels.get(name.folded()).is_some_and(|c| c.permanent);
            let mut channel = Channel::new(name.clone(), snap.created_ms, permanent);
            channel.apply_snapshot(&snap);
            self.remember_room(crate::confusable::skeleton(name.folded()), name.folded());
            self.channels.insert(name.folded().to_owned(), channel);
        }
    }

    /// The edge finished a request.
    pub fn complete(&mut self, id: RequestId, response: Response, now: Now) {
        self.now = now;
        let Some(pending) = self.pending.remove(&id) else { return };
        let (conn, held) = (pending.conn(), pending.holds_input());
        self.begin(conn, pending.label());
        match pending {
            p @ (Pending::Login { .. }
            | Pending::Scram { .. }
            | Pending::External { .. }
            | Pending::Cert { .. }
            | Pending::Register { .. }
            | Pending::SetPassword { .. }
            | Pending::Drop { .. }) => {
                self.account_response(p, response);
            }
            p @ (Pending::Oper { .. } | Pending::Rehash { .. }) => self.oper_response(p, response),
            Pending::Keys { conn, then, .. } => self.keys_response(conn, then, response),
            p @ (Pending::Markers { .. } | Pending::MarkRead { .. }) => self.markers_response(p, response),
            Pending::GapFill { room, origin } => self.gap_filled(&room, &origin, response),
            Pending::Claim { conn, nick, step, guest, .. } => self.claim_response(conn, nick, step, guest, response),
            Pending::Redact { conn, redaction, committing, .. } => {
                self.redact_response(conn, *redaction, committing, response);
            }
            p => self.history_response(p, response),
        }
        self.finish();
        if held {
            self.resume(conn);
        }
    }

    /// One of `conn`'s requests was answered: once none is left, the lines it sent meanwhile
    /// run, in order, as far as its flood budget allows.
    pub(crate) fn resume(&mut self, conn: ConnId) {
        let Some(client) = self.clients.get_mut(&conn) else { return };
        client.waiting = client.waiting.saturating_sub(1);
        if client.waiting == 0 && client.has_queued() {
            self.run_queued(conn);
        }
    }

    /// Requests currently waiting for the edge.
    pub fn pending_requests(&self) -> usize {
        self.pending.len()
    }

    /// Asks the edge for work and parks the continuation. Until the answer comes, the client's
    /// later lines wait (see [`Pending::holds_input`]).
    pub(crate) fn request(&mut self, request: Request, pending: Pending) -> RequestId {
        if pending.holds_input() {
            if let Some(client) = self.clients.get_mut(&pending.conn()) {
                client.waiting = client.waiting.saturating_add(1);
            }
        }
        self.next_request += 1;
        let id = RequestId(self.next_request);
        self.pending.insert(id, pending);
        self.effects.push(Effect::Request { id, request });
        id
    }

    /// Stores a message. Everything the core sends after this waits until it is durable.
    pub(crate) fn persist(&mut self, item: HistoryItem) {
        self.storage_room = self.storage_room.saturating_sub(1);
        self.effects.push(Effect::Persist(Box::new(item)));
    }

    pub(crate) fn clear_offline(&mut self, account: &str, up_to_msgid: &str) {
        self.effects.push(Effect::ClearOffline { account: account.to_owned(), up_to_msgid: up_to_msgid.to_owned() });
    }

    /// Writes a room's durable state after it changed.
    pub(crate) fn save_channel(&mut self, folded: &str) {
        if let Some(ch) = self.channels.get(folded) {
            let snapshot = ch.snapshot();
            self.effects.push(Effect::SaveChannel(Box::new(snapshot)));
        }
    }

    pub(crate) fn delete_channel(&mut self, name: &str) {
        self.effects.push(Effect::DeleteChannel(name.to_owned()));
    }
}
