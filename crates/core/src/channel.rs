//! One room: members, topic, modes and bans.

use std::collections::{BTreeMap, BTreeSet};

use chinwag_proto::{mask_match, ChannelName};

use crate::caps::CapSet;
use crate::ids::ConnId;
use crate::store::ChannelSnapshot;

/// A member of a room: its status there, and its client's capabilities.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Member {
    pub op: bool,
    pub voice: bool,
    /// A copy of the client's capabilities, which decide how a room message is written for it:
    /// a room message reads them for every member, and here they are at hand. Kept equal to
    /// the client's by [`crate::Server::caps_changed`].
    pub caps: CapSet,
}

impl Member {
    /// The NAMES/WHO prefix: all of them with multi-prefix, else only the highest.
    pub fn prefixes(self, multi: bool) -> &'static str {
        match (self.op, self.voice, multi) {
            (true, true, true) => "@+",
            (true, _, _) => "@",
            (false, true, _) => "+",
            (false, false, _) => "",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Topic {
    pub text: String,
    pub setter: String,
    pub set_at_ms: u64,
}

/// One entry of a room's ban (+b), ban exception (+e) or invite exception (+I) list.
#[derive(Clone, Debug)]
pub struct Ban {
    pub mask: String,
    pub setter: String,
    pub set_at_ms: u64,
}

/// The extban prefix (ISUPPORT `EXTBAN=$,a`, as Solanum and Libera write them): `$a` is anyone
/// logged in, `$a:<account mask>` an account, `$~a` anyone not logged in.
pub const EXTBAN_PREFIX: char = '$';

/// The extbans we know, as ISUPPORT lists them.
pub const EXTBAN_TYPES: &str = "a";

impl Ban {
    /// Whether the entry names someone with this `nick!user@host` and account.
    pub fn matches(&self, prefix: &str, account: Option<&str>) -> bool {
        match self.mask.strip_prefix(EXTBAN_PREFIX) {
            None => mask_match(&self.mask, prefix),
            Some("a") => account.is_some(),
            Some("~a") => account.is_none(),
            Some(extban) => match (extban.strip_prefix("a:"), account) {
                (Some(mask), Some(account)) => mask_match(mask, account),
                _ => false,
            },
        }
    }
}

/// Whether any entry of `list` names this client.
fn any_matches(list: &[Ban], prefix: &str, account: Option<&str>) -> bool {
    list.iter().any(|b| b.matches(prefix, account))
}

/// Channel flags (type D modes) and the key and limit (types B and C).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelModes {
    /// +t: only operators change the topic.
    pub topic_locked: bool,
    /// +n: only members send to the room.
    pub no_external: bool,
    /// +m: only voiced members and operators speak.
    pub moderated: bool,
    /// +i: joining needs an invitation.
    pub invite_only: bool,
    /// +s: hidden from LIST, WHOIS and NAMES of non-members.
    pub secret: bool,
    /// +k.
    pub key: Option<String>,
    /// +l.
    pub limit: Option<usize>,
}

impl ChannelModes {
    /// Whether the flag `letter` (`i m n s t`) is set; `None` for another letter.
    pub fn flag(&self, letter: char) -> Option<bool> {
        Some(match letter {
            'i' => self.invite_only,
            'm' => self.moderated,
            'n' => self.no_external,
            's' => self.secret,
            't' => self.topic_locked,
            _ => return None,
        })
    }

    /// `+nt` style string with parameters; the key is shown only to members.
    pub fn render(&self, show_key: bool) -> Vec<String> {
        let mut flags = String::from("+");
        let mut params = Vec::new();
        for (on, c) in [
            (self.invite_only, 'i'),
            (self.moderated, 'm'),
            (self.no_external, 'n'),
            (self.secret, 's'),
            (self.topic_locked, 't'),
        ] {
            if on {
                flags.push(c);
            }
        }
        if let Some(key) = &self.key {
            flags.push('k');
            params.push(if show_key { key.clone() } else { "*".into() });
        }
        if let Some(limit) = self.limit {
            flags.push('l');
            params.push(limit.to_string());
        }
        let mut out = vec![flags];
        out.extend(params);
        out
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Channel {
    pub name: ChannelName,
    pub topic: Option<Topic>,
    pub created_ms: u64,
    pub modes: ChannelModes,
    pub bans: Vec<Ban>,
    /// +e: ban exceptions, which let whoever they name past the bans.
    pub excepts: Vec<Ban>,
    /// +I: invite exceptions, which let whoever they name past +i as if invited.
    pub invex: Vec<Ban>,
    /// Members in join order of their connection ids (stable NAMES output).
    pub members: BTreeMap<ConnId, Member>,
    /// Cluster mode: members on other nodes (`cluster/rooms.rs`); always empty on one node.
    pub remote: BTreeMap<crate::cluster::UserId, Member>,
    /// Connections invited since +i; an invitation is used up by joining. It belongs to the
    /// connection it was sent to, not to its nick: whoever takes the nick later is not invited.
    /// Only an operator's INVITE is kept (a member's is a notice), -i clears them, and each
    /// INVITE lets go of connections that are gone, so it never outgrows the connections.
    pub invited: BTreeSet<ConnId>,
    /// Default rooms are never removed when empty.
    pub permanent: bool,
    /// The account (folded) that created the room, if its creator was logged in: it is made
    /// operator whenever it joins and is never locked out, which keeps a restored room from
    /// being either taken over by whoever comes first or locked forever by its own +i.
    pub founder: Option<String>,
}

impl Channel {
    pub fn new(name: ChannelName, created_ms: u64, permanent: bool) -> Self {
        Channel {
            name,
            topic: None,
            created_ms,
            modes: ChannelModes { topic_locked: true, no_external: true, ..Default::default() },
            bans: Vec::new(),
            excepts: Vec::new(),
            invex: Vec::new(),
            members: BTreeMap::new(),
            remote: BTreeMap::new(),
            invited: BTreeSet::new(),
            permanent,
            founder: None,
        }
    }

    /// Sets or clears the flag `letter` (`i m n s t`; any other letter is ignored).
    /// Invitations are for an invite-only room: they do not outlive its -i.
    pub fn set_flag(&mut self, letter: char, on: bool) {
        let modes = &mut self.modes;
        let field = match letter {
            'i' => &mut modes.invite_only,
            'm' => &mut modes.moderated,
            'n' => &mut modes.no_external,
            's' => &mut modes.secret,
            't' => &mut modes.topic_locked,
            _ => return,
        };
        *field = on;
        if letter == 'i' && !on {
            self.invited.clear();
        }
    }

    pub fn member(&self, conn: ConnId) -> Option<Member> {
        self.members.get(&conn).copied()
    }

    pub fn is_op(&self, conn: ConnId) -> bool {
        self.member(conn).is_some_and(|m| m.op)
    }

    /// Whether a ban names this client and no ban exception does.
    pub fn is_banned(&self, prefix: &str, account: Option<&str>) -> bool {
        !self.bans.is_empty()
            && any_matches(&self.bans, prefix, account)
            && !any_matches(&self.excepts, prefix, account)
    }

    /// Whether an invite exception names this client.
    pub fn is_invex(&self, prefix: &str, account: Option<&str>) -> bool {
        any_matches(&self.invex, prefix, account)
    }

    /// The list a list mode letter (`b`, `e`, `I`) keeps.
    pub fn list_mut(&mut self, letter: char) -> Option<&mut Vec<Ban>> {
        match letter {
            'b' => Some(&mut self.bans),
            'e' => Some(&mut self.excepts),
            'I' => Some(&mut self.invex),
            _ => None,
        }
    }

    pub fn list(&self, letter: char) -> &[Ban] {
        match letter {
            'b' => &self.bans,
            'e' => &self.excepts,
            'I' => &self.invex,
            _ => &[],
        }
    }
}

impl Channel {
    /// The durable part of the room.
    pub fn snapshot(&self) -> ChannelSnapshot {
        let flags = self.modes.render(true).into_iter().next().unwrap_or_default();
        let flags: String = flags.chars().filter(|c| !matches!(c, 'k' | 'l')).collect();
        ChannelSnapshot {
            name: self.name.as_str().to_owned(),
            created_ms: self.created_ms,
            topic: self.topic.as_ref().map(|t| (t.text.clone(), t.setter.clone(), t.set_at_ms)),
            modes: flags,
            key: self.modes.key.clone(),
            limit: self.modes.limit.and_then(|l| u32::try_from(l).ok()),
            bans: saved(&self.bans),
            excepts: saved(&self.excepts),
            invex: saved(&self.invex),
            founder: self.founder.clone(),
        }
    }

    /// Restores what [`Channel::snapshot`] saved.
    pub fn apply_snapshot(&mut self, snap: &ChannelSnapshot) {
        self.created_ms = snap.created_ms;
        self.founder.clone_from(&snap.founder);
        self.topic = snap.topic.as_ref().map(|(text, setter, at)| Topic {
            text: text.clone(),
            setter: setter.clone(),
            set_at_ms: *at,
        });
        let has = |c: char| snap.modes.contains(c);
        self.modes = ChannelModes {
            topic_locked: has('t'),
            no_external: has('n'),
            moderated: has('m'),
            invite_only: has('i'),
            secret: has('s'),
            key: snap.key.clone(),
            limit: snap.limit.map(|l| l as usize),
        };
        self.bans = restored(&snap.bans);
        self.excepts = restored(&snap.excepts);
        self.invex = restored(&snap.invex);
    }
}

fn saved(list: &[Ban]) -> Vec<(String, String, u64)> {
    list.iter().map(|b| (b.mask.clone(), b.setter.clone(), b.set_at_ms)).collect()
}

fn restored(list: &[(String, String, u64)]) -> Vec<Ban> {
    list.iter().map(|(mask, setter, at)| Ban { mask: mask.clone(), setter: setter.clone(), set_at_ms: *at }).collect()
}
