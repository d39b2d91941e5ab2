//! `CHATHISTORY` (IRCv3 draft/chathistory): queries go to storage as requests; the answer comes
//! back as a `chathistory` batch.

use chinwag_proto::{casefold, unescape_tag_value, ChannelName, Message, Nick, Tag};

use crate::broadcast::{Lines, Outgoing};
use crate::caps::Cap;
use crate::handlers::messaging::line_room;
use crate::handlers::multiline::{fit_lines, stored_lines};
use crate::ids::ConnId;
use crate::server::{Pending, Server};
use crate::store::{dm_conversation, Bound, Failure, HistoryItem, HistoryQuery, Request, Response};
use chinwag_proto::{parse_rfc3339_ms, rfc3339_ms};

/// The most messages one CHATHISTORY request returns (ISUPPORT CHATHISTORY).
pub const MAX_HISTORY: usize = 100;

impl Server {
    pub(crate) fn handle_chathistory(&mut self, msg: &Message) {
        let sub = msg.params.first().map(|s| s.to_ascii_uppercase()).unwrap_or_default();
        let p = &msg.params;
        match sub.as_str() {
            "TARGETS" if p.len() >= 4 => {
                let (Some(from), Some(to)) = (timestamp_ref(&p[1]), timestamp_ref(&p[2])) else {
                    self.fail("CHATHISTORY", "INVALID_PARAMS", &["TARGETS"], "Timestamps must be timestamp=…");
                    return;
                };
                let limit = parse_limit(&p[3]);
                let (from, to) = (from.min(to), from.max(to));
                let conn = self.cur_conn();
                let Some(client) = self.clients.get(&conn) else { return };
                let viewer = client.account.as_deref().map(casefold);
                let rooms: Vec<String> = client.channels.iter().cloned().collect();
                let label = self.take_label();
                let req = Request::HistoryTargets { viewer, rooms, from_ms: from, to_ms: to, limit };
                self.request(req, Pending::Targets { conn, label });
            }
            "LATEST" | "BEFORE" | "AFTER" | "AROUND" if p.len() >= 4 => {
                let bound = if sub == "LATEST" && p[2] == "*" { Ok(None) } else { msg_ref(&p[2]).map(Some) };
                let Ok(bound) = bound else {
                    self.fail("CHATHISTORY", "INVALID_PARAMS", &[&sub, &p[2]], "Use * , msgid=… or timestamp=…");
                    return;
                };
                let query = match (sub.as_str(), bound) {
                    ("LATEST", after) => HistoryQuery::Latest { after },
                    ("BEFORE", Some(b)) => HistoryQuery::Before(b),
                    ("AFTER", Some(b)) => HistoryQuery::After(b),
                    (_, Some(b)) => HistoryQuery::Around(b),
                    (_, None) => return,
                };
                self.history_query(&sub, &p[1], query, parse_limit(&p[3]));
            }
            "BETWEEN" if p.len() >= 5 => {
                let (Ok(a), Ok(b)) = (msg_ref(&p[2]), msg_ref(&p[3])) else {
                    self.fail("CHATHISTORY", "INVALID_PARAMS", &["BETWEEN"], "Use msgid=… or timestamp=…");
                    return;
                };
                self.history_query(&sub, &p[1], HistoryQuery::Between(a, b), parse_limit(&p[4]));
            }
            "TARGETS" | "LATEST" | "BEFORE" | "AFTER" | "AROUND" | "BETWEEN" => {
                self.fail("CHATHISTORY", "NEED_MORE_PARAMS", &[&sub], "Not enough parameters");
            }
            _ => self.fail("CHATHISTORY", "INVALID_PARAMS", &[&sub], "Unknown CHATHISTORY subcommand"),
        }
    }

    /// `sub` is the subcommand, which a refusal names (`FAIL CHATHISTORY INVALID_TARGET <sub>
    /// <target>`, as the spec has it), so that a client with several queries out can tell which
    /// one failed.
    fn history_query(&mut self, sub: &str, target: &str, query: HistoryQuery, limit: usize) {
        let conn = self.cur_conn();
        let conversation = match self.conversation_for(conn, target) {
            Ok(conversation) => conversation,
            Err(why) => {
                self.fail("CHATHISTORY", "INVALID_TARGET", &[sub, target], why);
                return;
            }
        };
        let query = match self.room_born_ms(&conversation) {
            Some(born) => since_birth(query, born),
            None => query,
        };
        let label = self.take_label();
        let events = target.starts_with('#') && self.caps_of(conn).has(Cap::EventPlayback);
        let pending = Pending::History { conn, target: target.to_owned(), label };
        self.request(Request::History { conversation, query, limit, events }, pending);
    }

    /// Replays the room's latest lines to `conn`, which just joined it, if it cannot ask for them
    /// itself (no `draft/chathistory`): irssi, WeeChat and most bots would otherwise walk in
    /// blind. At most `limits.autoreplay_lines`, none older than `limits.autoreplay_max_age`,
    /// none from before the room began (`room_born_ms`), and none said after the join (those
    /// reach the client live). Always the latest lines, not "since this account last left": that
    /// would need a stored last-seen per account and room, which read markers are for.
    pub(crate) fn autoreplay_on_join(&mut self, conn: ConnId, folded: &str, display: &str) {
        let limit = self.cfg.limits.autoreplay_lines.min(MAX_HISTORY);
        if limit == 0 || self.caps_of(conn).has(Cap::ChatHistory) {
            return;
        }
        let joined_ms = self.now.wall_ms;
        let max_age = u64::try_from(self.cfg.limits.autoreplay_max_age.as_millis()).unwrap_or(u64::MAX);
        let oldest_ms = if max_age == 0 { 0 } else { joined_ms.saturating_sub(max_age) };
        let oldest_ms = oldest_ms.max(self.room_born_ms(folded).unwrap_or(0));
        if oldest_ms >= joined_ms {
            return;
        }
        let query = HistoryQuery::Before(Bound::Time(joined_ms));
        let request = Request::History { conversation: folded.to_owned(), query, limit, events: false };
        self.request(request, Pending::Autoreplay { conn, target: display.to_owned(), oldest_ms });
    }

    /// The answer to [`Server::autoreplay_on_join`]: the lines in a `chathistory` batch where the
    /// client has `batch`. A client without `server-time` sees each line's time at the start of
    /// its text, so that old lines do not read as new ones (nor a bot's trigger as a command).
    fn autoreplay_answer(&mut self, conn: ConnId, target: &str, oldest_ms: u64, mut items: Vec<HistoryItem>) {
        let Ok(room) = ChannelName::parse(target, self.cfg.limits.channel_len) else { return };
        let folded = room.folded();
        // Parted since, or a different room of the same name by now: nothing to replay.
        if !self.clients.get(&conn).is_some_and(|c| c.channels.contains(folded)) {
            return;
        }
        let born = self.room_born_ms(folded).unwrap_or(0);
        items.retain(|item| item.time_ms >= oldest_ms.max(born));
        if items.is_empty() {
            return;
        }
        let caps = self.caps_of(conn);
        let batch = caps.has(Cap::Batch).then(|| self.next_batch_id());
        if let Some(id) = &batch {
            let start = Message::new("BATCH").with_params([format!("+{id}"), "chathistory".into(), target.into()]);
            self.send_msg(conn, start);
        }
        for item in &items {
            let mut msgs = self.replay(conn, item, batch.as_deref());
            if !caps.has(Cap::ServerTime) {
                // The first line that says something carries the time for the whole message.
                let first = msgs.iter_mut().find(|m| m.command == item.command && m.params.len() == 2);
                if let Some(text) = first.and_then(|m| m.params.last_mut()) {
                    *text = stamped(text, item.time_ms);
                }
            }
            for msg in msgs {
                self.send_msg(conn, msg);
            }
        }
        if let Some(id) = batch {
            self.send_msg(conn, Message::new("BATCH").with_param(format!("-{id}")));
        }
    }

    /// When the room keyed `folded` began, if its history may hold messages from before: a room
    /// that is not permanent is forgotten when it empties, and whoever makes a room of the same
    /// name afterwards starts a new one (as its operator), which must not read what was said in
    /// the old one. `None` for private conversations and default rooms, which always were.
    fn room_born_ms(&self, folded: &str) -> Option<u64> {
        self.channels.get(folded).filter(|ch| !ch.permanent).map(|ch| ch.created_ms)
    }

    /// The history key `conn` may read for `target`: a room it is in, or, for a connection
    /// logged in to an account, that account's private conversation with a nick. Private
    /// history belongs to accounts: a guest, whatever nick it holds, has none.
    pub(crate) fn conversation_for(&self, conn: ConnId, target: &str) -> Result<String, &'static str> {
        const REFUSED: &str = "You may not read the history of that target";
        let client = self.clients.get(&conn).ok_or(REFUSED)?;
        if target.starts_with('#') {
            let name = ChannelName::parse(target, self.cfg.limits.channel_len).map_err(|_| REFUSED)?;
            return client.channels.contains(name.folded()).then(|| name.folded().to_owned()).ok_or(REFUSED);
        }
        let other = Nick::parse(target, self.cfg.limits.nick_len).map_err(|_| REFUSED)?;
        let me = self.account_of(conn).ok_or("Private history belongs to accounts: log in to read yours")?;
        Ok(dm_conversation(&me, &self.party_for_nick(other.as_str())))
    }

    /// The account (folded) a connection is logged in to.
    pub(crate) fn account_of(&self, conn: ConnId) -> Option<String> {
        self.clients.get(&conn)?.account.as_deref().map(casefold)
    }

    /// Who a connection is in a private conversation: its account if it is logged in, else a
    /// guest, `~nick`. `~` is not allowed in nicks (nor so in account names), so a guest's
    /// conversations can never be mistaken for an account's, whoever later takes the nick.
    pub(crate) fn party_of(&self, conn: ConnId) -> Option<String> {
        let c = self.clients.get(&conn)?;
        Some(match &c.account {
            Some(a) => casefold(a),
            None => guest_party(c.nick()?.folded()),
        })
    }

    /// Who a nick is in a private conversation: a registered nick is always its account,
    /// whoever holds it now (an impostor never stands in for the account); any other nick is
    /// the account of whoever uses it, else a guest.
    pub(crate) fn party_for_nick(&self, nick: &str) -> String {
        let folded = casefold(nick);
        if self.accounts.contains_key(&folded) {
            return folded;
        }
        let remote = || self.remote_user(nick).and_then(|u| u.account.as_deref()).map(casefold);
        match self.find_nick(nick).and_then(|c| self.account_of(c)).or_else(remote) {
            Some(account) => account,
            None => guest_party(&folded),
        }
    }

    /// Answers of storage to CHATHISTORY and to offline delivery.
    pub(crate) fn history_response(&mut self, pending: Pending, response: Response) {
        match (pending, response) {
            (Pending::History { conn, target, .. }, Response::Messages(Ok(mut items))) => {
                // A room's history starts with the room: what an earlier room of the same name
                // kept is not this one's (`room_born_ms`). A room gone since the query shows
                // nothing.
                if target.starts_with('#') {
                    let room = ChannelName::parse(&target, self.cfg.limits.channel_len).ok();
                    let folded = room.as_ref().map_or("", |r| r.folded());
                    let born = match self.room_born_ms(folded) {
                        Some(born) => born,
                        None if self.channels.contains_key(folded) => 0,
                        None => u64::MAX,
                    };
                    items.retain(|item| item.time_ms >= born);
                }
                self.send_history_batch(conn, "chathistory", &target, &items);
            }
            (Pending::Targets { conn, .. }, Response::Targets(Ok(mut targets))) => {
                // A room whose latest message is older than the room was said in an earlier
                // room of the same name.
                targets.retain(|(name, latest)| {
                    !name.starts_with('#')
                        || ChannelName::parse(name, self.cfg.limits.channel_len)
                            .ok()
                            .and_then(|room| self.room_born_ms(room.folded()))
                            .is_none_or(|born| *latest >= born)
                });
                let caps = self.caps_of(conn);
                let id = self.next_batch_id();
                let batch = caps.has(Cap::Batch);
                if batch {
                    self.send_msg(
                        conn,
                        Message::new("BATCH").with_params([format!("+{id}"), "draft/chathistory-targets".into()]),
                    );
                }
                for (name, latest) in targets {
                    // The bare timestamp: `timestamp=` marks a bound in a query, not an answer.
                    let mut m = Message::new("CHATHISTORY").with_params(["TARGETS".into(), name, rfc3339_ms(latest)]);
                    if batch {
                        m.tags.push(Tag { key: "batch".into(), value: id.clone() });
                    }
                    self.send_msg(conn, m);
                }
                if batch {
                    self.send_msg(conn, Message::new("BATCH").with_param(format!("-{id}")));
                }
            }
            (Pending::Autoreplay { conn, target, oldest_ms }, Response::Messages(Ok(items))) => {
                self.autoreplay_answer(conn, &target, oldest_ms, items);
            }
            (Pending::Autoreplay { target, .. }, Response::Messages(Err(f))) => {
                // The join went through; only its replay is missing, which is no error of the
                // client's.
                tracing::warn!(channel = %target, failure = ?f, "could not read history to replay on join");
            }
            (Pending::Offline { conn, account }, Response::Messages(Ok(items))) => {
                self.offline_page(conn, account, &items);
            }
            (
                Pending::History { .. } | Pending::Targets { .. },
                Response::Messages(Err(f)) | Response::Targets(Err(f)),
            ) => {
                let text = match f {
                    Failure::Unavailable(why) => why,
                    other => format!("{other:?}"),
                };
                self.fail("CHATHISTORY", "MESSAGE_ERROR", &["*"], &text);
            }
            (Pending::Offline { account, .. }, Response::Messages(Err(f))) => {
                tracing::warn!(account = %account, failure = ?f, "could not fetch offline messages");
            }
            (pending, response) => tracing::error!(?pending, ?response, "a response of the wrong kind; ignored"),
        }
    }

    fn send_history_batch(&mut self, conn: ConnId, kind: &str, target: &str, items: &[HistoryItem]) {
        let batch = self.caps_of(conn).has(Cap::Batch).then(|| self.next_batch_id());
        if let Some(id) = &batch {
            let start = Message::new("BATCH").with_params([format!("+{id}"), kind.into(), target.into()]);
            self.send_msg(conn, start);
        }
        for item in items {
            for msg in self.replay(conn, item, batch.as_deref()) {
                self.send_msg(conn, msg);
            }
        }
        if let Some(id) = batch {
            self.send_msg(conn, Message::new("BATCH").with_param(format!("-{id}")));
        }
    }

    /// A stored message as `conn` should see it now (its capabilities decide the tags), inside
    /// `batch` if given. A multiline message (its text holds line breaks, or is longer than a
    /// line) comes as its own draft/multiline batch to a client with the capability, else line
    /// by line, as it did live.
    pub(crate) fn replay(&mut self, conn: ConnId, item: &HistoryItem, batch: Option<&str>) -> Vec<Message> {
        let base = if item.is_event() {
            crate::handlers::events::event_message(item).with_source(item.sender.clone())
        } else {
            Message::new(item.command.clone())
                .with_source(item.sender.clone())
                .with_params([item.target.clone(), item.text.clone()])
        };
        let mut out = Outgoing::new(base, item.time_ms, Some(item.msgid.clone()), item.sender_account.clone());
        out.client_tags = parse_client_tags(&item.tags);
        let room = line_room(item.sender.len() + item.command.len(), &item.target);
        if !item.is_event() && (item.text.contains('\n') || item.text.len() > room) {
            let parts = fit_lines(stored_lines(&item.text), room);
            out.multiline = Some(Box::new(Lines::new(parts, self.next_batch_id())));
        }
        let mut msgs = out.messages_for(self.caps_of(conn));
        if let Some(id) = batch {
            // Lines inside the message's own batch already name it.
            for msg in msgs.iter_mut().filter(|m| m.tag("batch").is_none()) {
                msg.tags.insert(0, Tag { key: "batch".into(), value: id.to_owned() });
            }
        }
        msgs
    }
}

/// `query` with its time bounds moved up to `born` (the room's creation), so that a query from
/// before the room began starts at its first message instead of returning a page of an earlier
/// room's, which the answer would then leave out. A msgid bound stays as it is: what it finds
/// from before the room is left out of the answer.
fn since_birth(query: HistoryQuery, born: u64) -> HistoryQuery {
    let clamp = |bound: Bound| match bound {
        Bound::Time(t) if t < born => Bound::Time(born.saturating_sub(1)),
        other => other,
    };
    match query {
        HistoryQuery::Latest { after } => HistoryQuery::Latest { after: after.map(clamp) },
        HistoryQuery::After(b) => HistoryQuery::After(clamp(b)),
        HistoryQuery::Between(a, b) => HistoryQuery::Between(clamp(a), clamp(b)),
        other => other,
    }
}

/// `text` with the time it was said in front (`[2026-12-04 18:23:43] text`, UTC), for a replay to
/// a client without `server-time`. A CTCP ACTION keeps its framing: the time goes inside it.
fn stamped(text: &str, time_ms: u64) -> String {
    let iso = rfc3339_ms(time_ms);
    let when = format!("[{} {}]", iso.get(..10).unwrap_or(&iso), iso.get(11..19).unwrap_or_default());
    match text.strip_prefix("\u{1}ACTION ") {
        Some(action) => format!("\u{1}ACTION {when} {action}"),
        None => format!("{when} {text}"),
    }
}

/// A guest (not logged in) in a private conversation's key.
fn guest_party(folded_nick: &str) -> String {
    format!("~{folded_nick}")
}

/// `+a=b;+c` back into tags.
pub(crate) fn parse_client_tags(wire: &str) -> Vec<Tag> {
    wire.split(';')
        .filter(|t| !t.is_empty())
        .map(|t| match t.split_once('=') {
            Some((k, v)) => Tag { key: k.to_owned(), value: unescape_tag_value(v) },
            None => Tag { key: t.to_owned(), value: String::new() },
        })
        .collect()
}

/// Client tags in wire form, for storage.
pub(crate) fn client_tags_wire(tags: &[Tag]) -> String {
    tags.iter()
        .map(|t| {
            if t.value.is_empty() {
                t.key.clone()
            } else {
                format!("{}={}", t.key, chinwag_proto::escape_tag_value(&t.value))
            }
        })
        .collect::<Vec<_>>()
        .join(";")
}

fn parse_limit(s: &str) -> usize {
    s.parse::<usize>().ok().filter(|n| *n > 0).map_or(MAX_HISTORY, |n| n.min(MAX_HISTORY))
}

fn msg_ref(s: &str) -> Result<Bound, ()> {
    if let Some(id) = s.strip_prefix("msgid=") {
        return if id.is_empty() { Err(()) } else { Ok(Bound::MsgId(id.to_owned())) };
    }
    timestamp_ref(s).map(Bound::Time).ok_or(())
}

fn timestamp_ref(s: &str) -> Option<u64> {
    parse_rfc3339_ms(s.strip_prefix("timestamp=")?)
}
