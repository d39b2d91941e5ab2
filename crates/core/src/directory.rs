//! What the server shows to anyone without a login: its public rooms and how many people are
//! online. Read-only; the edge uses it for LAN discovery.

use crate::channel::Channel;
use crate::server::Server;

/// A room anyone may see in `LIST`: not secret (+s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRoom {
    pub name: String,
    pub topic: Option<String>,
    pub members: usize,
    /// +i: joining needs an invitation.
    pub invite_only: bool,
    /// +k: joining needs a key (the key itself is never shown).
    pub key_required: bool,
}

impl Server {
    /// Rooms that are not secret, most members first, then by name; at most `max` of them.
    /// Linear in the number of rooms plus `max log max`: the hub calls it once a tick.
    pub fn public_rooms(&self, max: usize) -> Vec<PublicRoom> {
        let mut rooms: Vec<&Channel> = self.channels.values().filter(|ch| !ch.modes.secret).collect();
        let order = |a: &&Channel, b: &&Channel| {
            b.members.len().cmp(&a.members.len()).then_with(|| a.name.as_str().cmp(b.name.as_str()))
        };
        if rooms.len() > max {
            rooms.select_nth_unstable_by(max, order);
            rooms.truncate(max);
        }
        rooms.sort_unstable_by(order);
        rooms
            .into_iter()
            .map(|ch| PublicRoom {
                name: ch.name.as_str().to_owned(),
                topic: ch.topic.as_ref().map(|t| t.text.clone()),
                members: ch.members.len(),
                invite_only: ch.modes.invite_only,
                key_required: ch.modes.key.is_some(),
            })
            .collect()
    }

    /// Connections that finished registration.
    pub fn users_online(&self) -> usize {
        self.clients.values().filter(|c| c.registered).count()
    }
}
