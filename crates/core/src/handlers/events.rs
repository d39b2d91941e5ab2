//! IRCv3 `draft/event-playback`: a room's events (JOIN, PART, QUIT, KICK, TOPIC, MODE, NICK)
//! are kept in its history beside its messages, and `CHATHISTORY` returns them to clients with
//! the capability (others get messages only, the store filtering them out so that a page is a
//! page of messages).
//!
//! An event is one history row of the room (`HistoryItem::is_event`): its command, its source,
//! the room as target, and its parameters after the room in `text` (KICK: the nick, a space,
//! the reason; MODE: the changes as sent; NICK: the new nick; QUIT, PART and TOPIC: the
//! reason or topic). QUIT and NICK, which concern every room the user is in, are one row per
//! room, each with a msgid of its own (msgids are unique in the store). Events are stored
//! without holding anything back (`Effect::Persist`): nobody was told one is durable, and
//! joins go on while the disk stalls; and they never take a message's place: once half of the
//! room for messages waiting for their commit is used, no event is kept until it frees up.

use chinwag_proto::Message;

use crate::broadcast::Outgoing;
use crate::server::Server;
use crate::store::HistoryItem;

impl Server {
    /// Keeps `ev`, an event of the room keyed `folded`, in that room's history (if the server
    /// keeps events, and storage has room). `own_msgid`: the row takes a new msgid rather than
    /// the event's (a QUIT or NICK stored in a second room).
    pub(crate) fn record_event(&mut self, folded: &str, ev: &Outgoing, own_msgid: bool) {
        if !self.cfg.history_events || !self.room_for_events() || self.stopping {
            return;
        }
        let Some(room) = self.channels.get(folded).map(|ch| ch.name.as_str().to_owned()) else { return };
        let msgid = match (own_msgid, &ev.msgid) {
            (false, Some(id)) => id.clone(),
            _ => self.msgids.next(self.now.wall_ms),
        };
        let item = HistoryItem {
            msgid,
            time_ms: ev.time_ms,
            command: ev.base.command.clone(),
            sender: ev.source.as_deref().unwrap_or_default().to_owned(),
            sender_account: ev.account.clone(),
            target: room,
            text: stored_text(&ev.base),
            tags: String::new(),
            conversation: folded.to_owned(),
            participants: Vec::new(),
            offline_for: None,
        };
        self.persist(item);
    }

    /// Whether storage has room to spare for an event: more than half of the most it has had,
    /// and more than one message's. An event never takes a message's place: while the disk
    /// is slow, events are the first thing not kept.
    fn room_for_events(&self) -> bool {
        let (room, max) = (self.storage_room, self.storage_room_max);
        max == 0 || (room >= 2 && room > max - room)
    }

    /// [`Server::record_event`] for an event of the user in every room it is in (QUIT, NICK).
    pub(crate) fn record_event_in(&mut self, rooms: &[String], ev: &Outgoing) {
        for (i, folded) in rooms.iter().enumerate() {
            self.record_event(folded, ev, i > 0);
        }
    }
}

/// An event's parameters after the room, as one string (see the module documentation).
fn stored_text(base: &Message) -> String {
    let p = &base.params;
    match base.command.as_str() {
        // No room parameter: the new nick, or the reason.
        "NICK" | "QUIT" => p.first().cloned().unwrap_or_default(),
        // The nick and the reason.
        "KICK" => format!("{} {}", p.get(1).map_or("", String::as_str), p.get(2).map_or("", String::as_str)),
        // The changes and their arguments, none of which holds a space.
        "MODE" => p.get(1..).map(|rest| rest.join(" ")).unwrap_or_default(),
        // JOIN has nothing after the room (the account and real name of extended-join are
        // today's, not the event's); PART its reason, TOPIC the topic.
        "JOIN" => String::new(),
        _ => p.get(1).cloned().unwrap_or_default(),
    }
}

/// A stored event's line (without source and tags): the inverse of [`stored_text`].
pub(crate) fn event_message(item: &HistoryItem) -> Message {
    let room = item.target.clone();
    let text = item.text.clone();
    let params: Vec<String> = match item.command.as_str() {
        "NICK" | "QUIT" => vec![text],
        "KICK" => {
            let (nick, reason) = text.split_once(' ').unwrap_or((text.as_str(), ""));
            vec![room, nick.to_owned(), reason.to_owned()]
        }
        "MODE" => std::iter::once(room).chain(text.split(' ').filter(|w| !w.is_empty()).map(str::to_owned)).collect(),
        "JOIN" => vec![room],
        "PART" if text.is_empty() => vec![room],
        _ => vec![room, text],
    };
    Message { command: item.command.clone(), params, ..Message::default() }
}
