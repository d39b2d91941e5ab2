//! `REDACT` (IRCv3 `draft/message-redaction`): deleting a stored message.
//!
//! Two trips to storage: the message is looked up by msgid (its conversation, sender and time
//! decide whether this client may redact it), then redacted, which takes it out of history and
//! of every offline queue and erases its text. Only then is `REDACT` relayed, to those of the
//! conversation's connections that enabled the capability (and to the redacter, as the
//! confirmation); a client without it gets nothing: it would show the message anyway, and a
//! notice per redaction would be noise.
//!
//! Who may redact: the message's sender (the same account; a guest's messages only an
//! operator can redact), an operator of the room it was said in, and IRC operators. Senders may
//! do so for `limits.redaction_window` after sending (zero: no limit); operators at any time.
//!
//! Only what history keeps can be redacted: `TAGMSG`s (reactions among them) are not stored,
//! so the server cannot tell who sent one, and their msgids are `UNKNOWN_MSGID`.
//!
//! A msgid that names no message of this conversation (never stored, another conversation's,
//! redacted already, said in an earlier room of the same name) is `UNKNOWN_MSGID` alike, so
//! that REDACT cannot tell anyone whether a message exists in a conversation they cannot read.

use chinwag_proto::{casefold, ChannelName, Message, MAX_BODY_LEN};

use crate::caps::Cap;
use crate::ids::ConnId;
use crate::numeric::ERR_NEEDMOREPARAMS;
use crate::server::{Pending, Server};
use crate::store::{HistoryItem, Request, Response};
use crate::text::truncate;

/// The longest msgid looked up; ours are far shorter, and a longer one names nothing.
const MAX_MSGID_LEN: usize = 64;

/// A REDACT on its way through storage.
#[derive(Debug)]
pub(crate) struct Redaction {
    /// The target as relayed: a room's own spelling, or the nick as given.
    target: String,
    msgid: String,
    reason: Option<String>,
    /// The history key the message must belong to.
    conversation: String,
}

impl Server {
    pub(crate) fn handle_redact(&mut self, msg: &Message) {
        let (Some(target), Some(msgid)) = (msg.params.first(), msg.params.get(1).filter(|m| !m.is_empty())) else {
            self.numeric(ERR_NEEDMOREPARAMS, ["REDACT", "Not enough parameters"]);
            return;
        };
        let conn = self.cur_conn();
        let Some((target, conversation)) = self.redaction_target(conn, target) else {
            let text = format!("You cannot delete messages from {target}");
            self.fail("REDACT", "INVALID_TARGET", &[target], &text);
            return;
        };
        if msgid.len() > MAX_MSGID_LEN || msgid.contains(' ') {
            self.unknown_msgid(&target, msgid);
            return;
        }
        let reason = msg.params.get(2).filter(|r| !r.is_empty()).cloned();
        let redaction = Redaction { target, msgid: msgid.clone(), reason, conversation };
        let label = self.take_label();
        let request = Request::Message { msgid: msgid.clone() };
        self.request(request, Pending::Redact { conn, redaction: Box::new(redaction), committing: false, label });
    }

    /// The target's name as relayed and the conversation `conn` may redact in: a room that
    /// exists and that it is in (an IRC operator need not be), or its own private conversation
    /// with a nick (which needs an account, as private history does).
    fn redaction_target(&self, conn: ConnId, target: &str) -> Option<(String, String)> {
        if target.starts_with('#') {
            let name = ChannelName::parse(target, self.cfg.limits.channel_len).ok()?;
            let ch = self.channels.get(name.folded())?;
            let allowed = ch.members.contains_key(&conn) || self.oper_name(conn).is_some();
            return allowed.then(|| (ch.name.as_str().to_owned(), name.folded().to_owned()));
        }
        let conversation = self.conversation_for(conn, target).ok()?;
        Some((target.to_owned(), conversation))
    }

    pub(crate) fn redact_response(&mut self, conn: ConnId, redaction: Redaction, committing: bool, response: Response) {
        // Parted, or logged out, while storage looked: checked again, as if asked now. (Once
        // storage has redacted it, it is done and is relayed whatever happened meanwhile.)
        let still = || self.redaction_target(conn, &redaction.target).is_some_and(|(_, c)| c == redaction.conversation);
        if !committing && !still() {
            let text = format!("You cannot delete messages from {}", redaction.target);
            self.fail("REDACT", "INVALID_TARGET", &[&redaction.target], &text);
            return;
        }
        match (committing, response) {
            (false, Response::Message(Ok(found))) => {
                let found = found.filter(|item| self.in_conversation(item, &redaction.conversation));
                match found {
                    Some(item) => self.redact_checked(conn, redaction, &item),
                    None => self.unknown_msgid(&redaction.target, &redaction.msgid),
                }
            }
            (true, Response::Redacted(Ok(Some(queues)))) => {
                for queue in queues {
                    if let Some(count) = self.offline_counts.get_mut(&queue) {
                        *count = count.saturating_sub(1);
                        if *count == 0 {
                            self.offline_counts.remove(&queue);
                        }
                    }
                }
                self.relay_redaction(conn, &redaction);
            }
            // Someone else redacted it in the meantime.
            (true, Response::Redacted(Ok(None))) => self.unknown_msgid(&redaction.target, &redaction.msgid),
            (_, Response::Message(Err(f)) | Response::Redacted(Err(f))) => {
                tracing::warn!(failure = ?f, "REDACT could not reach storage");
                let text = "Messages cannot be redacted right now; try again in a moment";
                self.fail("REDACT", "TEMPORARILY_UNAVAILABLE", &[&redaction.target, &redaction.msgid], text);
            }
            (_, response) => tracing::error!(?response, "a response of the wrong kind to REDACT; ignored"),
        }
    }

    /// Whether a stored message belongs to the conversation as it is now: a room's history
    /// starts with the room (see `room_born_ms`).
    fn in_conversation(&self, item: &HistoryItem, conversation: &str) -> bool {
        if item.conversation != conversation {
            return false;
        }
        let born = self.channels.get(conversation).filter(|ch| !ch.permanent).map_or(0, |ch| ch.created_ms);
        item.time_ms >= born
    }

    /// The message exists where it should: may this client redact it? If so, the second trip.
    fn redact_checked(&mut self, conn: ConnId, mut redaction: Redaction, item: &HistoryItem) {
        let sender =
            self.account_of(conn).is_some_and(|me| item.sender_account.as_deref().is_some_and(|a| casefold(a) == me));
        let room_op = self.channels.get(&redaction.conversation).and_then(|ch| ch.member(conn)).is_some_and(|m| m.op);
        let operator = room_op || self.oper_name(conn).is_some();
        let (target, msgid) = (redaction.target.as_str(), redaction.msgid.as_str());
        if !sender && !operator {
            self.fail("REDACT", "REDACT_FORBIDDEN", &[target, msgid], "You are not authorised to delete this message");
            return;
        }
        let window = self.cfg.limits.redaction_window;
        let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
        if !operator && window_ms > 0 && self.now.wall_ms.saturating_sub(item.time_ms) > window_ms {
            let secs = window.as_secs().to_string();
            let text = "You can no longer delete this message";
            self.fail("REDACT", "REDACT_WINDOW_EXPIRED", &[target, msgid, &secs], text);
            return;
        }
        // A sender who may not speak in the room (+m without voice, or banned) may still take
        // a message back, but its reason would be words said to the room: it is dropped.
        if !operator && !self.may_speak_in(conn, &redaction.conversation) {
            redaction.reason = None;
        }
        let label = self.take_label();
        let request = Request::Redact { msgid: item.msgid.clone() };
        self.request(request, Pending::Redact { conn, redaction: Box::new(redaction), committing: true, label });
    }

    /// Whether `conn` could send a message to the room `folded` now (true for a private
    /// conversation): not muted by +m without voice, not banned.
    fn may_speak_in(&self, conn: ConnId, folded: &str) -> bool {
        let Some(ch) = self.channels.get(folded) else { return true };
        let Some(member) = ch.member(conn) else { return false };
        if member.op || member.voice {
            return true;
        }
        let me = self.clients.get(&conn);
        let banned = || ch.is_banned(me.map_or("", |c| c.prefix()), me.and_then(|c| c.account.as_deref()));
        !ch.modes.moderated && (ch.bans.is_empty() || !banned())
    }

    fn unknown_msgid(&mut self, target: &str, msgid: &str) {
        self.fail("REDACT", "UNKNOWN_MSGID", &[target, msgid], "This message does not exist or is too old");
    }

    /// The redaction is durable: `REDACT` goes to the conversation's connections that enabled
    /// the capability, the redacter's own reply included.
    fn relay_redaction(&mut self, conn: ConnId, redaction: &Redaction) {
        let mut base = Message::new("REDACT").with_params([redaction.target.clone(), redaction.msgid.clone()]);
        if let Some(reason) = &redaction.reason {
            // `:prefix REDACT target msgid :reason\r\n` within 512 bytes.
            let prefix_len = self.clients.get(&conn).map_or(0, |c| c.prefix().len());
            let head = 1 + prefix_len + " REDACT ".len() + redaction.target.len() + 1 + redaction.msgid.len() + 2;
            base = base.with_param(truncate(reason, MAX_BODY_LEN.saturating_sub(head + 2)));
        }
        let Some(mut ev) = self.cur_event(base) else { return };
        ev.needs_cap = Some(Cap::MessageRedaction);
        if redaction.target.starts_with('#') {
            // The room's members now (none if it went away meanwhile).
            self.deliver_to_room(&mut ev, &redaction.conversation, conn);
        } else {
            let me = self.party_of(conn).unwrap_or_default();
            let them = self.party_for_nick(&redaction.target);
            let mut to: Vec<ConnId> = Vec::new();
            for party in [me, them] {
                match party.strip_prefix('~') {
                    Some(guest) => to.extend(self.find_user(guest)),
                    None => to.extend_from_slice(self.sessions.conns(&party)),
                }
            }
            to.sort_unstable();
            to.dedup();
            to.retain(|c| *c != conn);
            self.deliver_all(&mut ev, to);
        }
        self.deliver(&mut ev, conn);
    }
}
