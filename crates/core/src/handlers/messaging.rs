//! PRIVMSG, NOTICE and TAGMSG to rooms and nicks.
//!
//! NOTICE never draws an automatic error reply (RFC 2812), so every error path below checks
//! `quiet` first.

use chinwag_proto::{casefold, eq_fold, Message, Tag, MAX_BODY_LEN};

use crate::broadcast::Outgoing;
use crate::caps::Cap;
use crate::handlers::account::NICKSERV;
use crate::handlers::history::client_tags_wire;
use crate::handlers::multiline::{fit_lines, joined, Assembled};
use crate::numeric::*;
use crate::server::Server;
use crate::store::{dm_conversation, HistoryItem};
use crate::text::truncate;

impl Server {
    /// Takes the message's parameters and its command (upper-cased by `dispatch`): the relayed
    /// message is made of them, so relaying a line copies its text only for a second target.
    pub(crate) fn handle_message(&mut self, command: String, msg: &mut Message) {
        let quiet = command == "NOTICE";
        let tagmsg = command == "TAGMSG";
        let privmsg = command == "PRIVMSG";
        let mut params = std::mem::take(&mut msg.params);
        params.truncate(2);
        let text = if params.len() == 2 { params.pop() } else { None }.unwrap_or_default();
        let targets = params.pop().unwrap_or_default();
        if targets.is_empty() {
            if !quiet {
                self.numeric(ERR_NORECIPIENT, [format!("No recipient given ({command})")]);
            }
            return;
        }
        if !tagmsg && text.is_empty() {
            if !quiet {
                self.numeric(ERR_NOTEXTTOSEND, ["No text to send"]);
            }
            return;
        }
        // A line to one target (nearly all of them) relays its own string as the target; only
        // a list is split into new ones.
        let many: Option<Vec<String>> =
            distinct_targets(&targets).map(|list| list.into_iter().map(str::to_owned).collect());
        let count = many.as_ref().map_or(1, Vec::len);
        if count > self.cfg.limits.max_targets {
            if !quiet {
                let text = format!("Too many recipients: at most {} per command", self.cfg.limits.max_targets);
                self.numeric(ERR_TOOMANYTARGETS, [targets.as_str(), text.as_str()]);
            }
            return;
        }
        // The targets in one iterator type either way: the list, or the line's own string
        // (without making a list for it).
        let list = match many {
            Some(many) => many.into_iter().chain(None),
            None => Vec::new().into_iter().chain(Some(targets)),
        };
        // Each recipient beyond the first costs like another message.
        self.charge(count.saturating_sub(1) as u32);
        let client_tags: Vec<Tag> = msg.tags.iter().filter(|t| t.key.starts_with('+')).cloned().collect();
        let now = self.now.mono;
        if let Some(client) = self.cur_client_mut() {
            if !tagmsg {
                client.last_spoke = now;
            }
        }
        let prefix_len = self.cur_client().map_or(0, |c| c.prefix().len());
        // The last target gets the line's own strings (and its emptied list of parameters),
        // the others copies.
        let command_len = command.len();
        let mut own_command = Some(command);
        let mut own_text = Some(text);
        let mut own_params = Some(params);
        for (i, target) in list.enumerate() {
            let last = i + 1 == count;
            let take = |own: &mut Option<String>| if last { own.take() } else { own.clone() }.unwrap_or_default();
            let relayed = take(&mut own_command);
            let mut params = if last { own_params.take() } else { None }.unwrap_or_else(|| Vec::with_capacity(2));
            let channel = split_status(&target).1.starts_with('#');
            let nickserv = !channel && eq_fold(&target, NICKSERV);
            if !nickserv && self.guest_refused(&target, quiet) {
                continue;
            }
            if !tagmsg {
                let mut text = take(&mut own_text);
                text.truncate(fit_text(prefix_len + command_len, &target, &text).len());
                params.extend([target, text]);
            } else {
                params.push(target);
            }
            let base = Message { command: relayed, params, ..Message::default() };
            if channel {
                self.message_channel(base, &client_tags, quiet, tagmsg, None);
            } else if nickserv {
                if privmsg {
                    self.handle_nickserv(base.params.get(1).map_or("", String::as_str));
                }
            } else {
                self.message_nick(base, &client_tags, quiet, tagmsg, None);
            }
        }
    }

    /// `base` holds the target and the text, as the line gave them. A target with a status
    /// prefix (STATUSMSG: `@#room`, `+#room`) reaches only the members with that status or a
    /// higher one, under the room's usual rules for speaking, and is not kept in the room's
    /// history (which every member may read).
    /// `lines`: a draft/multiline message's lines (`base` then holds their joined text).
    fn message_channel(&mut self, base: Message, tags: &[Tag], quiet: bool, tagmsg: bool, lines: Option<Lines>) {
        let target = base.params.first().map_or("", String::as_str);
        let conn = self.cur_conn();
        let (status, room) = split_status(target);
        let folded = casefold(room);
        let Some(ch) = self.channels.get(&folded) else {
            if !quiet {
                self.numeric(ERR_NOSUCHCHANNEL, [target, "No such channel"]);
            }
            return;
        };
        let member = ch.member(conn);
        let privileged = member.is_some_and(|m| m.op || m.voice);
        let banned = || {
            let me = self.cur_client();
            ch.is_banned(me.map_or("", |c| c.prefix()), me.and_then(|c| c.account.as_deref()))
        };
        let refusal = if member.is_none() && ch.modes.no_external {
            Some("Cannot send to channel (+n) - you are not in it")
        } else if ch.modes.moderated && !privileged {
            Some("Cannot send to channel (+m) - you need voice")
        } else if !privileged && !ch.bans.is_empty() && banned() {
            Some("Cannot send to channel (+b) - you are banned")
        } else {
            None
        };
        let display = ch.name.as_str().to_owned();
        // Who a STATUSMSG reaches: operators for `@`, voiced members and operators for `+`.
        let status_members: Option<Vec<_>> = status.map(|status| {
            let reaches = |m: &crate::channel::Member| m.op || (status == '+' && m.voice);
            ch.members.iter().filter(|(c, m)| **c != conn && reaches(m)).map(|(c, _)| *c).collect()
        });
        if let Some(text) = refusal {
            if !quiet {
                self.numeric(ERR_CANNOTSENDTOCHAN, [display.as_str(), text]);
            }
            return;
        }
        if let Some((status, members)) = status.zip(status_members) {
            let base = Message { params: replace_first(base.params, &format!("{status}{display}")), ..base };
            let Some(mut ev) = self.message_event(base, tags, tagmsg, lines) else { return };
            self.deliver_all(&mut ev, members);
            if self.cluster.is_some() {
                self.publish_to_room(&folded, &status.to_string(), &ev);
            }
            self.echo(&mut ev);
            return;
        }
        let base = Message { params: replace_first(base.params, &display), ..base };
        let Some(mut ev) = self.message_event(base, tags, tagmsg, lines) else { return };
        if !tagmsg {
            if self.refuse_unstorable(&ev) {
                return;
            }
            self.persist(history_item(&ev, folded.clone(), Vec::new(), None));
        }
        self.deliver_to_room(&mut ev, &folded, conn);
        if self.cluster.is_some() {
            self.publish_to_room(&folded, "", &ev);
        }
        self.echo(&mut ev);
    }

    /// `base` holds the target and the text, as the line gave them; `lines` as for rooms.
    fn message_nick(&mut self, base: Message, tags: &[Tag], quiet: bool, tagmsg: bool, lines: Option<Lines>) {
        let target = base.params.first().map_or("", String::as_str);
        let Some(to) = self.find_nick(target) else {
            if let Some(uid) = self.remote_user(target).map(|u| u.uid.clone()) {
                self.message_remote(uid, base, tags, quiet, tagmsg, lines);
                return;
            }
            if let Some(account) = self.accounts.get(&casefold(target)).cloned() {
                if !tagmsg {
                    self.message_offline(&account, base, tags, lines);
                }
                return;
            }
            if !quiet {
                self.numeric(ERR_NOSUCHNICK, [target, "No such nick/channel"]);
            }
            return;
        };
        let Some(recipient) = self.clients.get(&to).filter(|c| c.registered) else {
            if !quiet {
                self.numeric(ERR_NOSUCHNICK, [target, "No such nick/channel"]);
            }
            return;
        };
        // A registered nick held by someone not logged in to its account (an impostor, or the
        // owner before logging in) is not the account: the message waits for the account.
        let owner = recipient.nick().and_then(|n| self.accounts.get(n.folded()));
        if let Some(owner) = owner.filter(|o| recipient.account.as_deref().is_none_or(|a| !eq_fold(a, o))) {
            let owner = owner.clone();
            if !tagmsg {
                self.message_offline(&owner, base, tags, lines);
            }
            return;
        }
        let away = recipient.away().map(str::to_owned);
        let recipient_nick = recipient.nick_or_star().to_owned();
        let (recipient_account, recipient_caps) = (recipient.account.clone(), recipient.caps);
        let base = Message { params: replace_first(base.params, recipient.nick_or_star()), ..base };
        let Some(mut ev) = self.message_event(base, tags, tagmsg, lines) else { return };
        let sender_account = ev.account.clone();
        let route = self.e2e_route(&ev, || self.account_of(to).unwrap_or_default());
        // Private history belongs to accounts: a conversation between two guests is not kept.
        if !tagmsg && (recipient_account.is_some() || sender_account.is_some()) {
            let conn = self.cur_conn();
            let me = self.party_of(conn).unwrap_or_default();
            let them = self.party_of(to).unwrap_or_default();
            let mut participants: Vec<String> =
                [sender_account, recipient_account].into_iter().flatten().map(|a| casefold(&a)).collect();
            // A note to oneself has one party.
            participants.dedup();
            let queue = route.as_ref().and_then(|r| r.offline_queue());
            if self.refuse_unstorable(&ev) || queue.as_ref().is_some_and(|q| !self.reserve_offline(q, &recipient_nick))
            {
                return;
            }
            self.persist(history_item(&ev, dm_conversation(&me, &them), participants, queue));
        }
        if let Some(route) = &route {
            self.e2e_deliver(&mut ev, route, &[to, self.cur_conn()]);
            self.e2e_deliver_remote(&ev, route, None);
        }
        if to == self.cur_conn() {
            // A message to oneself with echo-message arrives twice, as Ergo does: the echo (the
            // sender's confirmation that it went out) then the delivery (a message received).
            // A client that keeps the two apart (a pending send waiting for its echo, or a
            // label) would otherwise lose one of them. Both are replies, so a label's batch
            // holds both.
            self.echo(&mut ev);
            self.deliver_to(&mut ev, to, recipient_caps, true);
        } else {
            // The recipient's is the last copy sent as bytes (the echo is a reply), so it takes them.
            self.deliver_to(&mut ev, to, recipient_caps, true);
            self.echo(&mut ev);
        }
        if let Some(away) = away {
            if !quiet && !tagmsg {
                // The recipient's nick, as it spells it.
                let nick = ev.base.params.first_mut().map(std::mem::take).unwrap_or_default();
                self.numeric(RPL_AWAY, [nick, away]);
            }
        }
    }

    /// A private message to a registered account that is not connected: kept and delivered
    /// when the account next logs in.
    pub(crate) fn message_offline(&mut self, account: &str, base: Message, tags: &[Tag], lines: Option<Lines>) {
        let base = Message { params: replace_first(base.params, account), ..base };
        let Some(mut ev) = self.message_event(base, tags, false, lines) else { return };
        let conn = self.cur_conn();
        let me = self.party_of(conn).unwrap_or_default();
        let folded = casefold(account);
        let mut participants = vec![folded.clone()];
        participants.extend(ev.account.as_deref().map(casefold));
        // An encrypted message waits for its device (or reaches it now), not for the account.
        let route = self.e2e_route(&ev, || folded.clone());
        let queue = match &route {
            Some(route) => route.offline_queue(),
            None => Some(folded.clone()),
        };
        if self.refuse_unstorable(&ev) || queue.as_ref().is_some_and(|q| !self.reserve_offline(q, account)) {
            return;
        }
        let item = history_item(&ev, dm_conversation(&me, &folded), participants, queue);
        self.persist(item);
        if let Some(route) = &route {
            self.e2e_deliver(&mut ev, route, &[conn]);
            self.e2e_deliver_remote(&ev, route, None);
        }
        self.echo(&mut ev);
    }

    pub(crate) fn message_event(
        &mut self,
        base: Message,
        tags: &[Tag],
        tagmsg: bool,
        lines: Option<Lines>,
    ) -> Option<Outgoing> {
        let mut ev = self.cur_event(base)?;
        ev.client_tags = tags.to_vec();
        ev.needs_message_tags = tagmsg;
        if let Some(lines) = lines {
            // Each line is relayed with the sender's prefix and the target as spelled now.
            let head = ev.source.as_deref().map_or(0, str::len) + ev.base.command.len();
            let target = ev.base.params.first().map_or("", String::as_str);
            let parts = fit_lines(lines, line_room(head, target));
            ev.multiline = Some(Box::new(crate::broadcast::Lines::new(parts, self.next_batch_id())));
        }
        Some(ev)
    }

    /// A draft/multiline message whose batch was closed (`handlers/multiline.rs`): to one room
    /// or nick, stored once and delivered as one batch or line by line, like one PRIVMSG or
    /// NOTICE. It costs its lines and bytes in flood units.
    pub(crate) fn send_multiline(&mut self, message: Assembled) {
        let Assembled { target, command, parts, tags } = message;
        let quiet = command == "NOTICE";
        if target.contains(',') {
            self.fail("BATCH", "MULTILINE_INVALID_TARGET", &[&target], "A multiline message goes to one target");
            return;
        }
        let channel = split_status(&target).1.starts_with('#');
        if !channel && eq_fold(&target, NICKSERV) {
            self.fail("BATCH", "MULTILINE_INVALID_TARGET", &[&target], "NickServ takes one line at a time");
            return;
        }
        if self.guest_refused(&target, quiet) {
            return;
        }
        let bytes: usize = parts.iter().map(|(t, _)| t.len()).sum();
        self.charge(u32::try_from(bytes / MAX_BODY_LEN + parts.len() / 8).unwrap_or(u32::MAX));
        let now = self.now.mono;
        if let Some(client) = self.cur_client_mut() {
            client.last_spoke = now;
        }
        let base = Message { command, params: vec![target, joined(&parts)], ..Message::default() };
        if channel {
            self.message_channel(base, &tags, quiet, false, Some(parts));
        } else {
            self.message_nick(base, &tags, quiet, false, Some(parts));
        }
    }

    /// While storage is full (see [`Server::set_storage_room`]), refuses a message that would be
    /// stored: the sender gets `FAIL <command> TEMPORARILY_UNAVAILABLE <target>`, even for a
    /// NOTICE (it would otherwise vanish without a word), and nothing is delivered.
    pub(crate) fn refuse_unstorable(&mut self, ev: &Outgoing) -> bool {
        if !self.storage_full() {
            return false;
        }
        let command = ev.base.command.clone();
        let target = ev.base.params.first().cloned().unwrap_or_default();
        let text = "Messages cannot be stored right now, so this one was not sent; try again in a moment";
        self.fail(&command, "TEMPORARILY_UNAVAILABLE", &[target.as_str()], text);
        true
    }

    /// echo-message: the sender gets its own message back, with the same msgid and time.
    pub(crate) fn echo(&mut self, ev: &mut Outgoing) {
        let conn = self.cur_conn();
        if self.caps_of(conn).has(Cap::EchoMessage) {
            self.deliver(ev, conn);
        }
    }
}

/// A multiline message's lines: each one's text, and whether it continues the previous one.
type Lines = Vec<(String, bool)>;

/// The text cut (on a character boundary) so that the relayed line,
/// `:prefix COMMAND target :text\r\n`, fits the 512-byte body limit every client relies on.
/// `head` is the length of the prefix and the command together.
fn fit_text<'a>(head: usize, target: &str, text: &'a str) -> &'a str {
    truncate(text, line_room(head, target))
}

/// The bytes of text a relayed line, `:prefix COMMAND target :text\r\n`, has room for.
pub(crate) fn line_room(head: usize, target: &str) -> usize {
    let overhead = 1 + head + 1 + 1 + target.len() + 2 + 2;
    MAX_BODY_LEN.saturating_sub(overhead)
}

/// The prefixes a room target may carry (ISUPPORT STATUSMSG), highest status first.
pub(crate) const STATUSMSG_PREFIXES: &str = "@+";

/// A room target's STATUSMSG prefix and the room: `@#room` → (`Some('@')`, `#room`). Of several
/// prefixes (`@+#room`) the lowest status counts: the message reaches everyone any of them names.
fn split_status(target: &str) -> (Option<char>, &str) {
    let room = target.trim_start_matches(|c| STATUSMSG_PREFIXES.contains(c));
    let prefixes = &target[..target.len() - room.len()];
    let lowest = prefixes.chars().max_by_key(|c| STATUSMSG_PREFIXES.find(*c));
    (lowest, room)
}

/// The params with the target replaced by its canonical spelling.
fn replace_first(mut params: Vec<String>, canonical: &str) -> Vec<String> {
    if let Some(first) = params.first_mut() {
        canonical.clone_into(first);
    }
    params
}

/// The comma-separated targets, without empty ones and without repeats (under the casemapping),
/// in their order; `None` for a single target (nearly every message), which needs no list.
fn distinct_targets(targets: &str) -> Option<Vec<&str>> {
    if !targets.contains(',') {
        return None;
    }
    let mut list: Vec<&str> = Vec::new();
    for t in targets.split(',').filter(|t| !t.is_empty()) {
        if !list.iter().any(|seen| eq_fold(seen, t)) {
            list.push(t);
        }
    }
    Some(list)
}

/// The stored form of a PRIVMSG or NOTICE event.
pub(crate) fn history_item(
    ev: &Outgoing,
    conversation: String,
    participants: Vec<String>,
    offline_for: Option<String>,
) -> HistoryItem {
    let param = |i: usize| ev.base.params.get(i).cloned().unwrap_or_default();
    HistoryItem {
        msgid: ev.msgid.clone().unwrap_or_default(),
        time_ms: ev.time_ms,
        command: ev.base.command.clone(),
        sender: ev.source.as_deref().unwrap_or_default().to_owned(),
        sender_account: ev.account.clone(),
        target: param(0),
        text: param(1),
        tags: client_tags_wire(&ev.client_tags),
        conversation,
        participants,
        offline_for,
    }
}
