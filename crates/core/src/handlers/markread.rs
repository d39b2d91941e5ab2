//! `MARKREAD` (IRCv3 `draft/read-marker`): the time of the last message a user has read in
//! each conversation, synced across the user's connections.
//!
//! An account's markers live in storage and, while any connection with the capability is
//! logged in to it, in `Server::sessions` too: JOIN must answer with the room's marker before
//! its 366, which cannot wait for a store round trip. They are loaded once per session, when
//! a connection with the capability logs in (or enables it while logged in); the load holds
//! that client's later lines (like any request of its own), so a JOIN right after the login
//! sees them. Setting a marker always goes to storage, which keeps the newer of the two times
//! and answers with it; the answer updates the copy here and goes to every connection of the
//! account that has the capability.
//!
//! A guest's markers are kept for its connection only (`Extra::read_markers`), and forgotten
//! when it logs in (the account has its own) or leaves.
//!
//! Both are bounded by [`MAX_READ_MARKERS`] per account or connection: a marker for one more
//! target pushes out the one with the oldest time, the conversation read longest ago, whose
//! client then sees `*` (no marker) for it again. Nothing is refused, and a user who reads
//! more than 256 conversations loses only the state of the stalest.

use chinwag_proto::{parse_rfc3339_ms, rfc3339_ms, ChannelName, Message, Nick};

use crate::caps::Cap;
use crate::ids::ConnId;
use crate::server::{Pending, Server};
use crate::store::{Failure, Request, Response};

/// The most read markers kept per account (in storage) or per guest connection (in memory).
pub const MAX_READ_MARKERS: usize = 256;

/// What to do once an account's markers are loaded.
#[derive(Debug)]
pub(crate) enum MarkersThen {
    /// A login (or a CAP REQ) loaded them: the connection gets the marker of every room it is in.
    Login,
    /// A `MARKREAD <target>` asked before they were loaded (by a client without the capability).
    Get { target: String, key: String },
}

impl Server {
    pub(crate) fn handle_markread(&mut self, msg: &Message) {
        let Some(target) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.fail("MARKREAD", "NEED_MORE_PARAMS", &[], "Missing parameters");
            return;
        };
        let Some((target, key)) = self.marker_target(target) else {
            self.fail("MARKREAD", "INVALID_PARAMS", &[target], "Invalid target: not a room or a nick");
            return;
        };
        let conn = self.cur_conn();
        let Some(timestamp) = msg.params.get(1) else {
            self.markread_get(conn, target, key);
            return;
        };
        let Some(time_ms) = timestamp.strip_prefix("timestamp=").and_then(parse_rfc3339_ms) else {
            let text = "The timestamp must be timestamp=YYYY-MM-DDThh:mm:ss.sssZ";
            self.fail("MARKREAD", "INVALID_PARAMS", &[timestamp], text);
            return;
        };
        // Nothing said after now can have been read: a marker from a client whose clock runs
        // ahead must not mark tomorrow's messages read.
        let time_ms = time_ms.min(self.now.wall_ms);
        match self.account_of(conn) {
            Some(account) => {
                let label = self.take_label();
                let max = MAX_READ_MARKERS;
                let request = Request::SetReadMarker { account: account.clone(), target: key.clone(), time_ms, max };
                self.request(request, Pending::MarkRead { conn, account, target, key, label });
            }
            None => {
                let Some(client) = self.clients.get_mut(&conn) else { return };
                let markers = &mut client.extra_mut().read_markers;
                let stored = markers.get(&key).copied();
                let now = stored.map_or(time_ms, |s| s.max(time_ms));
                if stored.is_none() && markers.len() >= MAX_READ_MARKERS {
                    evict_oldest(markers);
                }
                markers.insert(key, now);
                self.send_marker(conn, &target, Some(now));
            }
        }
    }

    /// The target as replies name it (a room's own spelling if it exists) and its key (folded);
    /// `None` if it is neither a room name nor a nick.
    fn marker_target(&self, target: &str) -> Option<(String, String)> {
        if target.starts_with('#') {
            let name = ChannelName::parse(target, self.cfg.limits.channel_len).ok()?;
            let display = self.channels.get(name.folded()).map_or(name.as_str(), |ch| ch.name.as_str());
            return Some((display.to_owned(), name.folded().to_owned()));
        }
        let nick = Nick::parse(target, self.cfg.limits.nick_len).ok()?;
        Some((nick.as_str().to_owned(), nick.folded().to_owned()))
    }

    fn markread_get(&mut self, conn: ConnId, target: String, key: String) {
        let Some(account) = self.account_of(conn) else {
            let stored =
                self.clients.get(&conn).and_then(|c| c.extra()).and_then(|e| e.read_markers.get(&key).copied());
            self.send_marker(conn, &target, stored);
            return;
        };
        match self.sessions.get(&account).and_then(|s| s.markers.as_ref()) {
            Some(markers) => {
                let stored = markers.get(&key).copied();
                self.send_marker(conn, &target, stored);
            }
            None => {
                let label = self.take_label();
                let then = MarkersThen::Get { target, key };
                self.request(
                    Request::ReadMarkers { account: account.clone() },
                    Pending::Markers { conn, account, then, label },
                );
            }
        }
    }

    /// `conn` just logged in (or enabled `draft/read-marker`): with the capability, it gets its
    /// account's markers for the rooms it is in, loading them first if this session has not.
    pub(crate) fn markers_after_login(&mut self, conn: ConnId) {
        if !self.caps_of(conn).has(Cap::ReadMarker) {
            return;
        }
        let Some(account) = self.account_of(conn) else { return };
        if self.sessions.get(&account).is_some_and(|s| s.markers.is_some()) {
            self.send_room_markers(conn);
        } else {
            let pending = Pending::Markers { conn, account: account.clone(), then: MarkersThen::Login, label: None };
            self.request(Request::ReadMarkers { account }, pending);
        }
    }

    /// `MARKREAD` for every room `conn` is in, from its account's markers.
    fn send_room_markers(&mut self, conn: ConnId) {
        let Some(client) = self.clients.get(&conn) else { return };
        let rooms: Vec<String> = client.channels.iter().cloned().collect();
        for folded in rooms {
            let display = self.channels.get(&folded).map_or(folded.clone(), |ch| ch.name.as_str().to_owned());
            let stored = self.stored_marker(conn, &folded);
            self.send_marker(conn, &display, stored);
        }
    }

    /// After a JOIN's own line, for a client with `draft/read-marker`: the room's marker, so
    /// that it comes before the room's 366 as the spec asks.
    pub(crate) fn marker_on_join(&mut self, conn: ConnId, folded: &str, display: &str) {
        if self.caps_of(conn).has(Cap::ReadMarker) {
            let stored = self.stored_marker(conn, folded);
            self.send_marker(conn, display, stored);
        }
    }

    /// The marker `conn` has for `key`, as far as the server knows now.
    fn stored_marker(&self, conn: ConnId, key: &str) -> Option<u64> {
        match self.account_of(conn) {
            Some(account) => self.sessions.get(&account)?.markers.as_ref()?.get(key).copied(),
            None => self.clients.get(&conn)?.extra()?.read_markers.get(key).copied(),
        }
    }

    /// `:server MARKREAD <target> timestamp=…` (or `*`: no marker).
    fn send_marker(&mut self, conn: ConnId, target: &str, stored: Option<u64>) {
        let value = stored.map_or_else(|| "*".to_owned(), |ms| format!("timestamp={}", rfc3339_ms(ms)));
        let msg = self.server_msg("MARKREAD").with_params([target.to_owned(), value]);
        self.send_msg(conn, msg);
    }

    /// Storage answered a marker's load or its setting.
    pub(crate) fn markers_response(&mut self, pending: Pending, response: Response) {
        match (pending, response) {
            (Pending::Markers { conn, account, then, .. }, Response::Markers(Ok(list))) => {
                if let Some(session) = self.sessions.get_mut(&account) {
                    let markers = session.markers.get_or_insert_with(Default::default);
                    // Another load may have answered first, and markers set since then count.
                    for (target, ms) in list {
                        let entry = markers.entry(target).or_insert(ms);
                        *entry = (*entry).max(ms);
                    }
                }
                match then {
                    MarkersThen::Login => self.send_room_markers(conn),
                    MarkersThen::Get { target, key } => {
                        let stored = self.stored_marker(conn, &key);
                        self.send_marker(conn, &target, stored);
                    }
                }
            }
            (Pending::Markers { account, then, .. }, Response::Markers(Err(f))) => match then {
                MarkersThen::Login => tracing::warn!(account = %account, failure = ?f, "could not load read markers"),
                MarkersThen::Get { target, .. } => self.marker_failed(&target, &f),
            },
            (Pending::MarkRead { conn, account, target, key, .. }, Response::Marker(Ok(Some(set)))) => {
                let mut changed = true;
                if let Some(markers) = self.sessions.get_mut(&account).and_then(|s| s.markers.as_mut()) {
                    for gone in &set.evicted {
                        markers.remove(gone);
                    }
                    let before = markers.insert(key, set.time_ms);
                    changed = before != Some(set.time_ms);
                }
                // The asker always gets an answer; the account's other connections only news.
                self.send_marker(conn, &target, Some(set.time_ms));
                if changed {
                    let others: Vec<ConnId> =
                        self.sessions.conns(&account).iter().copied().filter(|c| *c != conn).collect();
                    for other in others {
                        if self.caps_of(other).has(Cap::ReadMarker) {
                            self.send_marker(other, &target, Some(set.time_ms));
                        }
                    }
                }
            }
            (Pending::MarkRead { target, .. }, Response::Marker(Ok(None))) => {
                self.marker_failed(&target, &Failure::NoSuchAccount);
            }
            (Pending::MarkRead { target, .. }, Response::Marker(Err(f))) => self.marker_failed(&target, &f),
            (pending, response) => tracing::error!(?pending, ?response, "a response of the wrong kind; ignored"),
        }
    }

    fn marker_failed(&mut self, target: &str, failure: &Failure) {
        tracing::warn!(failure = ?failure, "a read marker could not be read or set");
        let text = match failure {
            Failure::NoSuchAccount => "Your account no longer exists",
            _ => "The read timestamp could not be set or read; try again later",
        };
        self.fail("MARKREAD", "INTERNAL_ERROR", &[target], text);
    }
}

/// Makes room for one more marker: the one read longest ago goes (ties: the smallest target,
/// as in storage).
fn evict_oldest(markers: &mut std::collections::HashMap<String, u64>) {
    let oldest = markers.iter().min_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0))).map(|(k, _)| k.clone());
    if let Some(oldest) = oldest {
        markers.remove(&oldest);
    }
}
