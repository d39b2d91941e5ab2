//! Room moderation: MODE (user and channel modes), KICK, INVITE.
//!
//! A channel MODE line is first parsed into requested changes (which letters, which
//! parameters), then each change is checked and applied on its own; only the changes that took
//! effect are broadcast, in one normalized MODE line, so every member sees exactly the state
//! change and nothing else.

use chinwag_proto::{casefold, Message};

use crate::channel::{Ban, EXTBAN_PREFIX};
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::{fit_trailing, truncate};

/// One mode change: as requested before it is checked, or as applied after.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct ModeChange {
    pub add: bool,
    pub letter: char,
    pub param: Option<String>,
}

impl ModeChange {
    /// Whether the change outlives the members: room modes and bans do, o/v do not.
    pub(crate) fn is_durable(&self) -> bool {
        !matches!(self.letter, 'o' | 'v')
    }
}

/// A channel mode string taken apart (CHANMODES=beI,k,l,imnst, PREFIX=(ov)@+).
#[derive(Debug, Default, PartialEq, Eq)]
struct ParsedModes {
    changes: Vec<ModeChange>,
    /// List letters (`b`, `e`, `I`) without a mask: the client asks for those lists, each once.
    lists: Vec<char>,
    /// Letters we do not know, each once, in the order seen.
    unknown: Vec<char>,
}

/// Splits `+ov-k alice bob key` into changes. At most `max_with_param` changes that carry a
/// parameter are kept; later ones are dropped, but their parameters are still consumed so the
/// remaining letters keep their own. A letter whose required parameter is missing is dropped.
fn parse_channel_modes<'a>(modes: &str, mut args: impl Iterator<Item = &'a str>, max_with_param: usize) -> ParsedModes {
    let mut parsed = ParsedModes::default();
    let mut add = true;
    let mut with_param = 0;
    for letter in modes.chars() {
        let param = match letter {
            '+' | '-' => {
                add = letter == '+';
                continue;
            }
            'i' | 'm' | 'n' | 's' | 't' => {
                parsed.changes.push(ModeChange { add, letter, param: None });
                continue;
            }
            'l' if !add => {
                parsed.changes.push(ModeChange { add, letter, param: None });
                continue;
            }
            'o' | 'v' | 'l' => match args.next() {
                Some(p) => Some(p),
                None => continue,
            },
            // -k's parameter is traditional but pointless (there is one key), so it may be left out.
            'k' => match args.next() {
                None if add => continue,
                p => p,
            },
            'b' | 'e' | 'I' => match args.next() {
                Some(p) => Some(p),
                None => {
                    if !parsed.lists.contains(&letter) {
                        parsed.lists.push(letter);
                    }
                    continue;
                }
            },
            _ => {
                if !parsed.unknown.contains(&letter) {
                    parsed.unknown.push(letter);
                }
                continue;
            }
        };
        with_param += 1;
        if with_param <= max_with_param {
            parsed.changes.push(ModeChange { add, letter, param: param.map(str::to_owned) });
        }
    }
    parsed
}

/// A ban mask in full `nick!user@host` form: `foo` → `foo!*@*`, `foo!bar` → `foo!bar@*`,
/// `bar@host` → `*!bar@host`; an account extban (`$a`, `$a:<account mask>`, `$~a`) as it is.
/// `None` for a mask that could not be sent back as a parameter, or an extban we do not know.
fn normalize_ban_mask(mask: &str) -> Option<String> {
    if mask.is_empty() || mask.starts_with(':') || mask.contains(' ') {
        return None;
    }
    if let Some(extban) = mask.strip_prefix(EXTBAN_PREFIX) {
        let known = matches!(extban, "a" | "~a") || extban.strip_prefix("a:").is_some_and(|m| !m.is_empty());
        return known.then(|| mask.to_owned());
    }
    let or_star = |s: &str| if s.is_empty() { "*".to_owned() } else { s.to_owned() };
    let (prefix, host) = match mask.split_once('@') {
        Some((prefix, host)) => (prefix, or_star(host)),
        None => (mask, "*".to_owned()),
    };
    let (nick, user) = match prefix.split_once('!') {
        Some((nick, user)) => (or_star(nick), or_star(user)),
        None if mask.contains('@') => ("*".to_owned(), or_star(prefix)),
        None => (or_star(prefix), "*".to_owned()),
    };
    Some(format!("{nick}!{user}@{host}"))
}

/// Whether a channel key can be stored and sent back in JOIN and MODE lines unchanged.
fn valid_key(key: &str) -> bool {
    !key.is_empty() && !key.starts_with(':') && !key.contains([' ', ','])
}

/// `+o-v`, `bob bob`: the applied changes as one mode word and its parameters.
pub(crate) fn render_changes(applied: &[ModeChange]) -> Vec<String> {
    let mut word = String::new();
    let mut dir = None;
    let mut params = Vec::new();
    for change in applied {
        if dir != Some(change.add) {
            word.push(if change.add { '+' } else { '-' });
            dir = Some(change.add);
        }
        word.push(change.letter);
        params.extend(change.param.clone());
    }
    let mut out = vec![word];
    out.extend(params);
    out
}

impl Server {
    pub(crate) fn handle_mode(&mut self, msg: &Message) {
        let Some(target) = msg.params.first().filter(|t| !t.is_empty()) else {
            self.need_more_params("MODE");
            return;
        };
        if target.starts_with('#') {
            self.channel_mode(target, msg);
        } else {
            self.user_mode(target, msg.params.get(1).map(String::as_str).filter(|m| !m.is_empty()));
        }
    }

    /// `MODE <nick> [modes]`: `i` (invisible) and `B` (bot), and only for oneself.
    fn user_mode(&mut self, target: &str, modes: Option<&str>) {
        let conn = self.cur_conn();
        let Some(client) = self.cur_client() else { return };
        if client.nick().is_none_or(|n| n.folded() != casefold(target)) {
            if self.find_user(target).is_some() || self.remote_user(target).is_some() {
                let text = if modes.is_some() {
                    "Can't change mode for other users"
                } else {
                    "Can't view modes for other users"
                };
                self.numeric(ERR_USERSDONTMATCH, [text]);
            } else {
                self.numeric(ERR_NOSUCHNICK, [target, "No such nick/channel"]);
            }
            return;
        }
        let (was_invisible, was_bot) = (client.invisible, client.bot);
        let nick = client.nick_or_star().to_owned();
        let Some(modes) = modes else {
            let mut shown = String::from("+");
            shown.extend([(was_bot, 'B'), (was_invisible, 'i')].into_iter().filter(|(on, _)| *on).map(|(_, c)| c));
            self.numeric(RPL_UMODEIS, [shown]);
            return;
        };
        let mut add = true;
        let (mut invisible, mut bot) = (was_invisible, was_bot);
        let mut unknown = false;
        for letter in modes.chars() {
            match letter {
                '+' | '-' => add = letter == '+',
                'i' => invisible = add,
                'B' => bot = add,
                _ => unknown = true,
            }
        }
        if unknown {
            self.numeric(ERR_UMODEUNKNOWNFLAG, ["Unknown MODE flag"]);
        }
        if invisible != was_invisible {
            if let Some(client) = self.clients.get_mut(&conn) {
                client.invisible = invisible;
                if client.registered && invisible {
                    self.invisible_count += 1;
                } else if client.registered {
                    self.invisible_count = self.invisible_count.saturating_sub(1);
                }
            }
        }
        if let Some(client) = self.clients.get_mut(&conn) {
            client.bot = bot;
        }
        let applied: Vec<ModeChange> = [(invisible, was_invisible, 'i'), (bot, was_bot, 'B')]
            .into_iter()
            .filter(|(now, was, _)| now != was)
            .map(|(add, _, letter)| ModeChange { add, letter, param: None })
            .collect();
        if !applied.is_empty() {
            self.user_changed(conn, |uid| crate::cluster::NetEvent::UserModes { uid, invisible, bot });
            let mut base = Message::new("MODE").with_param(nick.as_str());
            base.params.extend(render_changes(&applied));
            if let Some(mut ev) = self.cur_event(base) {
                self.deliver(&mut ev, conn);
            }
        }
    }

    /// `MODE #chan` shows the modes; `MODE #chan b` the bans; anything else changes them.
    fn channel_mode(&mut self, raw: &str, msg: &Message) {
        let conn = self.cur_conn();
        let folded = casefold(raw);
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
            return;
        };
        let name = ch.name.as_str().to_owned();
        let is_member = ch.members.contains_key(&conn);
        let is_op = ch.is_op(conn);
        let secret = ch.modes.secret;
        let Some(modes) = msg.params.get(1).filter(|m| !m.is_empty()) else {
            let mut shown = vec![name.clone()];
            shown.extend(ch.modes.render(is_member));
            let created = (ch.created_ms / 1000).to_string();
            self.numeric(RPL_CHANNELMODEIS, shown);
            self.numeric(RPL_CREATIONTIME, [name, created]);
            return;
        };
        let args = msg.params.iter().skip(2).map(String::as_str);
        let mut parsed = parse_channel_modes(modes, args, self.cfg.limits.modes_per_command);
        for letter in &parsed.unknown {
            self.numeric(ERR_UNKNOWNMODE, [letter.to_string(), "is unknown mode char to me".into()]);
        }
        if !parsed.changes.is_empty() && !is_op {
            parsed.changes.clear();
            if is_member {
                self.numeric(ERR_CHANOPRIVSNEEDED, [name.as_str(), "You're not channel operator"]);
            } else {
                self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            }
        }
        if self.cluster.is_some() && !parsed.changes.is_empty() {
            // Cluster mode: checked here, applied when the log says so.
            self.cluster_mode(&folded, &name, parsed.changes, msg);
        } else {
            self.apply_mode_changes(&folded, &name, parsed.changes);
        }
        for letter in parsed.lists {
            if secret && !is_member {
                self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            } else if letter != 'b' && !is_op {
                // Who is let past the bans and +i is the operators' business.
                self.numeric(ERR_CHANOPRIVSNEEDED, [name.as_str(), "You're not channel operator"]);
            } else {
                self.send_mask_list(&folded, letter);
            }
        }
    }

    /// Applies checked changes one by one, saves the room if a durable one took effect, and
    /// shows every member one MODE line of what changed (from the current client, or from the
    /// server for the administrator). Returns that line's mode words, empty if nothing changed.
    fn apply_mode_changes(&mut self, folded: &str, name: &str, changes: Vec<ModeChange>) -> Vec<String> {
        let mut applied = Vec::new();
        for change in changes {
            if let Some(done) = self.apply_channel_mode(folded, change) {
                applied.push(done);
            }
        }
        if applied.iter().any(|c| c.is_durable()) {
            self.save_channel(folded);
        }
        if applied.is_empty() {
            return Vec::new();
        }
        let members: Vec<ConnId> =
            self.channels.get(folded).map(|ch| ch.members.keys().copied().collect()).unwrap_or_default();
        let words = render_changes(&applied);
        let base = Message::new("MODE").with_param(name).with_params(words.clone());
        if let Some(mut ev) = self.cur_event(base) {
            self.deliver_all(&mut ev, members);
            self.record_event(folded, &ev, false);
        }
        words
    }

    /// `MODE <room> <modes> [args]` as the administrator (see `Server::room_mode`), who needs
    /// no operator status: the changes that took effect, or why none did.
    pub(crate) fn admin_mode(&mut self, folded: &str, modes: &str, args: &[String]) -> Vec<String> {
        let Some(name) = self.channels.get(folded).map(|ch| ch.name.as_str().to_owned()) else { return Vec::new() };
        let parsed = parse_channel_modes(modes, args.iter().map(String::as_str), self.cfg.limits.modes_per_command);
        for letter in &parsed.unknown {
            self.numeric(ERR_UNKNOWNMODE, [letter.to_string(), "is unknown mode char to me".into()]);
        }
        if self.cluster.is_some() {
            return self.admin_mode_to_log(folded, &name, parsed.changes);
        }
        self.apply_mode_changes(folded, &name, parsed.changes)
    }

    /// One line per entry of the +b, +e or +I list (367, 348, 346), then its end (368, 349, 347).
    fn send_mask_list(&mut self, folded: &str, letter: char) {
        let Some(ch) = self.channels.get(folded) else { return };
        let name = ch.name.as_str().to_owned();
        let entries = ch.list(letter).to_vec();
        let (entry, end, text) = match letter {
            'e' => (RPL_EXCEPTLIST, RPL_ENDOFEXCEPTLIST, "End of channel exception list"),
            'I' => (RPL_INVITELIST, RPL_ENDOFINVITELIST, "End of channel invite list"),
            _ => (RPL_BANLIST, RPL_ENDOFBANLIST, "End of channel ban list"),
        };
        for ban in entries {
            let secs = (ban.set_at_ms / 1000).to_string();
            self.numeric(entry, [name.clone(), ban.mask, ban.setter, secs]);
        }
        self.numeric(end, [name.as_str(), text]);
    }

    /// Checks and applies one change by an operator; what it changed, if anything.
    pub(crate) fn apply_channel_mode(&mut self, folded: &str, change: ModeChange) -> Option<ModeChange> {
        let ModeChange { add, letter, param } = change;
        let name = self.channels.get(folded)?.name.as_str().to_owned();
        match (letter, param) {
            ('o' | 'v', Some(nick)) => {
                let target = self.find_user(&nick);
                // Cluster mode: a member on another node.
                let remote = target.is_none().then(|| self.remote_user(&nick).map(|u| u.uid.clone())).flatten();
                if target.is_none() && remote.is_none() {
                    self.numeric(ERR_NOSUCHNICK, [nick.as_str(), "No such nick/channel"]);
                    return None;
                }
                let shown = match (target, &remote) {
                    (Some(target), _) => self.clients.get(&target)?.nick_or_star().to_owned(),
                    _ => self.remote_user(&nick)?.nick.clone(),
                };
                let ch = self.channels.get_mut(folded)?;
                let member = match (target, remote) {
                    (Some(target), _) => ch.members.get_mut(&target),
                    (None, Some(uid)) => ch.remote.get_mut(&uid),
                    (None, None) => None,
                };
                let Some(member) = member else {
                    self.numeric(ERR_USERNOTINCHANNEL, [shown, name, "They aren't on that channel".into()]);
                    return None;
                };
                let flag = if letter == 'o' { &mut member.op } else { &mut member.voice };
                if *flag == add {
                    return None;
                }
                *flag = add;
                Some(ModeChange { add, letter, param: Some(shown) })
            }
            ('k', key) if add => {
                let key = key.unwrap_or_default();
                let ch = self.channels.get_mut(folded)?;
                if ch.modes.key.is_some() {
                    self.numeric(ERR_KEYSET, [name.as_str(), "Channel key already set"]);
                    return None;
                }
                if !valid_key(&key) {
                    self.numeric(ERR_INVALIDKEY, [name.as_str(), "Invalid channel key"]);
                    return None;
                }
                ch.modes.key = Some(key.clone());
                Some(ModeChange { add, letter, param: Some(key) })
            }
            ('k', _) => {
                let old = self.channels.get_mut(folded)?.modes.key.take()?;
                Some(ModeChange { add, letter, param: Some(old) })
            }
            ('l', Some(limit)) if add => {
                let ch = self.channels.get_mut(folded)?;
                let limit = limit.parse::<usize>().ok().filter(|l| *l > 0)?;
                if ch.modes.limit == Some(limit) {
                    return None;
                }
                ch.modes.limit = Some(limit);
                Some(ModeChange { add, letter, param: Some(limit.to_string()) })
            }
            ('l', _) => {
                self.channels.get_mut(folded)?.modes.limit.take()?;
                Some(ModeChange { add, letter, param: None })
            }
            (letter @ ('b' | 'e' | 'I'), Some(mask)) => self.change_list(folded, letter, add, &mask),
            (flag @ ('i' | 'm' | 'n' | 's' | 't'), _) => {
                let ch = self.channels.get_mut(folded)?;
                if ch.modes.flag(flag) == Some(add) {
                    return None;
                }
                ch.set_flag(flag, add);
                Some(ModeChange { add, letter, param: None })
            }
            _ => None,
        }
    }

    /// +b / -b (or +e, +I) one mask. Adding an entry that exists or removing one that does not
    /// is a no-op. Each list holds at most `limits.bans_per_channel` entries.
    fn change_list(&mut self, folded: &str, letter: char, add: bool, mask: &str) -> Option<ModeChange> {
        let mask = normalize_ban_mask(mask)?;
        let setter = match self.cur_client() {
            Some(client) => client.prefix().to_owned(),
            None => self.cfg.server_name.clone(),
        };
        let max = self.cfg.limits.bans_per_channel;
        let now_ms = self.now.wall_ms;
        let ch = self.channels.get_mut(folded)?;
        let name = ch.name.as_str().to_owned();
        let list = ch.list_mut(letter)?;
        let existing = list.iter().position(|b| casefold(&b.mask) == casefold(&mask));
        if !add {
            let removed = list.remove(existing?);
            return Some(ModeChange { add, letter, param: Some(removed.mask) });
        }
        if existing.is_some() {
            return None;
        }
        if list.len() >= max {
            self.numeric(ERR_BANLISTFULL, [name, mask, "Channel list is full".into()]);
            return None;
        }
        list.push(Ban { mask: mask.clone(), setter, set_at_ms: now_ms });
        Some(ModeChange { add, letter, param: Some(mask) })
    }

    /// `KICK <rooms> <nicks> [reason]`: one room and several nicks, several rooms and one nick,
    /// or as many rooms as nicks taken in pairs (RFC 2812); at most TARGMAX KICK kicks.
    pub(crate) fn handle_kick(&mut self, msg: &Message) {
        let rooms = msg.params.first().filter(|t| !t.is_empty());
        let (Some(rooms), Some(list)) = (rooms, msg.params.get(1).filter(|t| !t.is_empty())) else {
            self.need_more_params("KICK");
            return;
        };
        let rooms: Vec<&str> = rooms.split(',').filter(|t| !t.is_empty()).collect();
        let targets: Vec<&str> = list.split(',').filter(|t| !t.is_empty()).collect();
        let pairs: Vec<(&str, &str)> = match (rooms.as_slice(), targets.as_slice()) {
            ([room], _) => targets.iter().map(|t| (*room, *t)).collect(),
            (_, [target]) => rooms.iter().map(|r| (*r, *target)).collect(),
            _ if rooms.len() == targets.len() => rooms.iter().copied().zip(targets.iter().copied()).collect(),
            _ => {
                self.need_more_params("KICK");
                return;
            }
        };
        let max = self.cfg.limits.max_targets;
        if pairs.len() > max {
            let text = format!("Too many targets: at most {max} per command");
            self.numeric(ERR_TOOMANYTARGETS, [list.as_str(), text.as_str()]);
            return;
        }
        let reason = match msg.params.get(2).filter(|r| !r.is_empty()) {
            Some(r) => truncate(r, self.cfg.limits.kick_len).to_owned(),
            None => self.cur_client().map(|c| c.nick_or_star().to_owned()).unwrap_or_default(),
        };
        // Each room is checked once: refused rooms are told once and skipped after.
        let mut allowed: Vec<(String, String)> = Vec::new();
        let mut refused: Vec<String> = Vec::new();
        // Cluster mode: (folded room, its name, nicks to kick there).
        let mut batches: Vec<(String, String, Vec<String>)> = Vec::new();
        let conn = self.cur_conn();
        for (raw, target) in pairs {
            let folded = casefold(raw);
            if refused.contains(&folded) {
                continue;
            }
            let name = match allowed.iter().find(|(f, _)| *f == folded) {
                Some((_, name)) => name.clone(),
                None => match self.kick_allowed(raw, &folded) {
                    Some(name) => {
                        allowed.push((folded.clone(), name.clone()));
                        name
                    }
                    None => {
                        refused.push(folded);
                        continue;
                    }
                },
            };
            if self.cluster.is_some() {
                match batches.iter_mut().find(|(f, _, _)| *f == folded) {
                    Some((_, _, targets)) => targets.push(target.to_owned()),
                    None => batches.push((folded, name, vec![target.to_owned()])),
                }
                continue;
            }
            // Kicking oneself ends one's right to kick the rest there.
            if !self.channels.get(&folded).is_some_and(|ch| ch.is_op(conn)) {
                continue;
            }
            self.kick_one(&folded, &name, target, &reason);
        }
        // Cluster mode: one entry per room, applied when the log says so.
        for (folded, name, targets) in batches {
            self.cluster_kick(&folded, &name, &targets, &reason);
        }
    }

    /// Whether the current client may kick in the room (403, 442 or 482 if not); its name.
    fn kick_allowed(&mut self, raw: &str, folded: &str) -> Option<String> {
        let conn = self.cur_conn();
        let Some(ch) = self.channels.get(folded) else {
            self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
            return None;
        };
        let name = ch.name.as_str().to_owned();
        if !ch.members.contains_key(&conn) {
            self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            return None;
        }
        if !ch.is_op(conn) {
            self.numeric(ERR_CHANOPRIVSNEEDED, [name.as_str(), "You're not channel operator"]);
            return None;
        }
        Some(name)
    }

    /// Removes one member after every member (the kicked one included) has seen the KICK.
    fn kick_one(&mut self, folded: &str, name: &str, target: &str, reason: &str) {
        let Some(victim) = self.find_user(target) else {
            self.numeric(ERR_NOSUCHNICK, [target, "No such nick/channel"]);
            return;
        };
        let shown = self.clients.get(&victim).map(|c| c.nick_or_star().to_owned()).unwrap_or_default();
        let Some(ch) = self.channels.get(folded).filter(|ch| ch.members.contains_key(&victim)) else {
            self.numeric(ERR_USERNOTINCHANNEL, [shown.as_str(), name, "They aren't on that channel"]);
            return;
        };
        let members: Vec<ConnId> = ch.members.keys().copied().collect();
        let source = self.cur_client().map(|c| c.prefix()).unwrap_or_default();
        let reason = fit_trailing(reason, &format!(":{source} KICK {name} {shown} "));
        let base = Message::new("KICK").with_params([name, shown.as_str(), reason]);
        let Some(mut ev) = self.cur_event(base) else { return };
        self.deliver_all(&mut ev, members);
        self.record_event(folded, &ev, false);
        self.leave_channel(victim, folded);
    }

    pub(crate) fn handle_invite(&mut self, msg: &Message) {
        let (Some(nick), Some(raw)) = (msg.params.first(), msg.params.get(1)) else {
            self.need_more_params("INVITE");
            return;
        };
        let conn = self.cur_conn();
        let Some(target) = self.find_user(nick) else {
            if let Some(uid) = self.remote_user(nick).map(|u| u.uid.clone()) {
                self.invite_remote(uid, raw);
                return;
            }
            self.numeric(ERR_NOSUCHNICK, [nick.as_str(), "No such nick/channel"]);
            return;
        };
        let folded = casefold(raw);
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(ERR_NOSUCHCHANNEL, [raw.as_str(), "No such channel"]);
            return;
        };
        let name = ch.name.as_str().to_owned();
        let Some(target_client) = self.clients.get(&target) else { return };
        let shown = target_client.nick_or_star().to_owned();
        let away = target_client.away().map(str::to_owned);
        if !ch.members.contains_key(&conn) {
            self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            return;
        }
        if ch.modes.invite_only && !ch.is_op(conn) {
            self.numeric(ERR_CHANOPRIVSNEEDED, [name.as_str(), "You're not channel operator"]);
            return;
        }
        if ch.members.contains_key(&target) {
            self.numeric(ERR_USERONCHANNEL, [shown.as_str(), name.as_str(), "is already on channel"]);
            return;
        }
        // invite-notify: the room's operators who asked are told, except the inviter, who
        // already gets 341 (on every node, in cluster mode).
        let watchers = self.invite_watchers(&folded, conn);
        // An invitation lets its holder past +i and +l, which are the operators' to decide: one
        // from a member who is not an operator is only a notice (else any member could let
        // people past a +l now, or past a +i set later). Invitations of connections gone since
        // are let go here, so a room never keeps more than there are connections.
        let clients = &self.clients;
        if let Some(ch) = self.channels.get_mut(&folded).filter(|ch| ch.is_op(conn)) {
            ch.invited.retain(|c| clients.contains_key(c));
            ch.invited.insert(target);
        }
        self.numeric(RPL_INVITING, [shown.as_str(), name.as_str()]);
        if let Some(away) = away {
            self.numeric(RPL_AWAY, [shown.clone(), away]);
        }
        self.publish_invite_notify(&folded, &name, &shown);
        let Some(mut ev) = self.cur_event(Message::new("INVITE").with_params([shown, name])) else { return };
        self.deliver(&mut ev, target);
        self.deliver_all(&mut ev, watchers);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(add: bool, letter: char, param: Option<&str>) -> ModeChange {
        ModeChange { add, letter, param: param.map(str::to_owned) }
    }

    #[test]
    fn parses_letters_with_their_parameters() {
        let p = parse_channel_modes("+ov-k+l", ["alice", "bob", "key", "10"].into_iter(), 4);
        assert_eq!(
            p.changes,
            [
                change(true, 'o', Some("alice")),
                change(true, 'v', Some("bob")),
                change(false, 'k', Some("key")),
                change(true, 'l', Some("10")),
            ]
        );
        assert!(p.lists.is_empty() && p.unknown.is_empty());
    }

    #[test]
    fn unset_key_may_omit_its_parameter_and_unset_limit_takes_none() {
        let p = parse_channel_modes("-kl+m", std::iter::empty(), 4);
        assert_eq!(p.changes, [change(false, 'k', None), change(false, 'l', None), change(true, 'm', None)]);
    }

    #[test]
    fn bare_b_lists_and_unknown_letters_are_reported_once() {
        let p = parse_channel_modes("bIeb", std::iter::empty(), 4);
        assert!(p.lists == ['b', 'I', 'e'] && p.changes.is_empty());
        let p = parse_channel_modes("+zzqi", std::iter::empty(), 4);
        assert_eq!(p.unknown, ['z', 'q']);
        assert_eq!(p.changes, [change(true, 'i', None)]);
    }

    #[test]
    fn changes_with_parameters_beyond_the_limit_are_dropped_but_consume_theirs() {
        let p = parse_channel_modes("+vvvt-v", ["a", "b", "c", "d"].into_iter(), 2);
        assert_eq!(p.changes, [change(true, 'v', Some("a")), change(true, 'v', Some("b")), change(true, 't', None)]);
    }

    #[test]
    fn ban_masks_are_completed() {
        assert_eq!(normalize_ban_mask("foo").as_deref(), Some("foo!*@*"));
        assert_eq!(normalize_ban_mask("foo!bar").as_deref(), Some("foo!bar@*"));
        assert_eq!(normalize_ban_mask("bar@host").as_deref(), Some("*!bar@host"));
        assert_eq!(normalize_ban_mask("*!*@10.0.0.*").as_deref(), Some("*!*@10.0.0.*"));
        assert_eq!(normalize_ban_mask(":x"), None);
        assert_eq!(normalize_ban_mask("$a:Kate*").as_deref(), Some("$a:Kate*"));
        assert_eq!(normalize_ban_mask("$~a").as_deref(), Some("$~a"));
        assert_eq!(normalize_ban_mask("$a:"), None);
        assert_eq!(normalize_ban_mask("$x:y"), None);
    }

    /// An invite-only room's operator who invites connections that then go (the same person
    /// reconnecting, say) leaves no trace of them: the room never holds more invitations than
    /// there are connections.
    #[test]
    fn a_room_keeps_no_invitations_of_connections_that_are_gone() {
        use crate::{Config, ConnInfo, Now};
        let now = Now { wall_ms: 1_795_269_772_000, mono: std::time::Instant::now() };
        let mut cfg = Config::default();
        cfg.limits.flood.every = std::time::Duration::ZERO;
        let mut server = Server::new(cfg, 1, now);
        let info = ConnInfo {
            ip: "127.0.0.1".parse().expect("ip"),
            host: "127.0.0.1".into(),
            tls: false,
            quic: false,
            certfp: None,
        };
        let op = ConnId(1);
        server.connect(op, info.clone(), now);
        for line in ["NICK olga", "USER o 0 * :o", "JOIN #club", "MODE #club +i"] {
            server.handle(op, Message::parse(line), now);
        }
        for i in 0..500 {
            let guest = ConnId(2 + i);
            server.connect(guest, info.clone(), now);
            for line in [format!("NICK guest{i}"), "USER g 0 * :g".into()] {
                server.handle(guest, Message::parse(&line), now);
            }
            server.handle(op, Message::parse(&format!("INVITE guest{i} #club")), now);
            server.disconnect(guest, "gone", now);
        }
        let invited = server.channels.get("#club").map(|ch| ch.invited.len());
        assert!(invited.is_some_and(|n| n <= 1), "{invited:?} invitations kept");
    }

    #[test]
    fn renders_direction_once_per_run() {
        let applied = [change(true, 'o', Some("bob")), change(false, 'v', Some("bob")), change(false, 'n', None)];
        assert_eq!(render_changes(&applied), ["+o-vn", "bob", "bob"]);
    }
}
