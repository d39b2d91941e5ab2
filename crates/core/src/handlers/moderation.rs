//! Room moderation: MODE (user and channel modes), KICK, INVITE.
//!
//! A channel MODE line is first parsed into requested changes (which letters, which
//! parameters), then each change is checked and applied on its own; only the changes that took
//! effect are broadcast, in one normalized MODE line, so every member sees exactly the state
//! change and nothing else.

use chinwag_proto::{casefold, Message};

use crate::caps::Cap;
use crate::channel::Ban;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::{fit_trailing, truncate};

/// One mode change: as requested before it is checked, or as applied after.
#[derive(Clone, Debug, PartialEq, Eq)]
struct ModeChange {
    add: bool,
    letter: char,
    param: Option<String>,
}

impl ModeChange {
    /// Whether the change outlives the members: room modes and bans do, o/v do not.
    fn is_durable(&self) -> bool {
        !matches!(self.letter, 'o' | 'v')
    }
}

/// A channel mode string taken apart (CHANMODES=b,k,l,imnst, PREFIX=(ov)@+).
#[derive(Debug, Default, PartialEq, Eq)]
struct ParsedModes {
    changes: Vec<ModeChange>,
    /// `b` without a mask: the client asks for the ban list.
    list_bans: bool,
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
            'b' => match args.next() {
                Some(p) => Some(p),
                None => {
                    parsed.list_bans = true;
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
/// `bar@host` → `*!bar@host`. `None` for a mask that could not be sent back as a parameter.
fn normalize_ban_mask(mask: &str) -> Option<String> {
    if mask.is_empty() || mask.starts_with(':') || mask.contains(' ') {
        return None;
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
fn render_changes(applied: &[ModeChange]) -> Vec<String> {
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

    /// `MODE <nick> [modes]`: only `i` exists, and only for oneself.
    fn user_mode(&mut self, target: &str, modes: Option<&str>) {
        let conn = self.cur_conn();
        let Some(client) = self.cur_client() else { return };
        if client.nick().is_none_or(|n| n.folded() != casefold(target)) {
            if self.find_user(target).is_some() {
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
        let was_invisible = client.invisible;
        let nick = client.nick_or_star().to_owned();
        let Some(modes) = modes else {
            let shown = if was_invisible { "+i" } else { "+" };
            self.numeric(RPL_UMODEIS, [shown]);
            return;
        };
        let mut add = true;
        let mut invisible = was_invisible;
        let mut unknown = false;
        for letter in modes.chars() {
            match letter {
                '+' | '-' => add = letter == '+',
                'i' => invisible = add,
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
            let change = if invisible { "+i" } else { "-i" };
            if let Some(mut ev) = self.cur_event(Message::new("MODE").with_params([nick.as_str(), change])) {
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
        let mut applied = Vec::new();
        for change in parsed.changes {
            if let Some(done) = self.apply_channel_mode(&folded, change) {
                applied.push(done);
            }
        }
        if applied.iter().any(|c| c.is_durable()) {
            self.save_channel(&folded);
        }
        if !applied.is_empty() {
            let members: Vec<ConnId> =
                self.channels.get(&folded).map(|ch| ch.members.keys().copied().collect()).unwrap_or_default();
            let base = Message::new("MODE").with_param(name.as_str()).with_params(render_changes(&applied));
            if let Some(mut ev) = self.cur_event(base) {
                self.deliver_all(&mut ev, members);
            }
        }
        if parsed.list_bans {
            if secret && !is_member {
                self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            } else {
                self.send_ban_list(&folded);
            }
        }
    }

    /// 367 per ban, then 368.
    fn send_ban_list(&mut self, folded: &str) {
        let Some(ch) = self.channels.get(folded) else { return };
        let name = ch.name.as_str().to_owned();
        let bans = ch.bans.clone();
        for ban in bans {
            let secs = (ban.set_at_ms / 1000).to_string();
            self.numeric(RPL_BANLIST, [name.clone(), ban.mask, ban.setter, secs]);
        }
        self.numeric(RPL_ENDOFBANLIST, [name.as_str(), "End of channel ban list"]);
    }

    /// Checks and applies one change by an operator; what it changed, if anything.
    fn apply_channel_mode(&mut self, folded: &str, change: ModeChange) -> Option<ModeChange> {
        let ModeChange { add, letter, param } = change;
        let name = self.channels.get(folded)?.name.as_str().to_owned();
        match (letter, param) {
            ('o' | 'v', Some(nick)) => {
                let Some(target) = self.find_user(&nick) else {
                    self.numeric(ERR_NOSUCHNICK, [nick.as_str(), "No such nick/channel"]);
                    return None;
                };
                let shown = self.clients.get(&target)?.nick_or_star().to_owned();
                let ch = self.channels.get_mut(folded)?;
                let Some(member) = ch.members.get_mut(&target) else {
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
            ('b', Some(mask)) => self.change_ban(folded, add, &mask),
            (flag @ ('i' | 'm' | 'n' | 's' | 't'), _) => {
                let ch = self.channels.get_mut(folded)?;
                let modes = &mut ch.modes;
                let field = match flag {
                    'i' => &mut modes.invite_only,
                    'm' => &mut modes.moderated,
                    'n' => &mut modes.no_external,
                    's' => &mut modes.secret,
                    _ => &mut modes.topic_locked,
                };
                if *field == add {
                    return None;
                }
                *field = add;
                // Invitations are for an invite-only room; they do not outlive it.
                if flag == 'i' && !add {
                    ch.invited.clear();
                }
                Some(ModeChange { add, letter, param: None })
            }
            _ => None,
        }
    }

    /// +b / -b one mask. Adding a ban that exists or removing one that does not is a no-op.
    fn change_ban(&mut self, folded: &str, add: bool, mask: &str) -> Option<ModeChange> {
        let mask = normalize_ban_mask(mask)?;
        let setter = self.cur_client()?.prefix().to_owned();
        let max = self.cfg.limits.bans_per_channel;
        let now_ms = self.now.wall_ms;
        let ch = self.channels.get_mut(folded)?;
        let existing = ch.bans.iter().position(|b| casefold(&b.mask) == casefold(&mask));
        if !add {
            let removed = ch.bans.remove(existing?);
            return Some(ModeChange { add, letter: 'b', param: Some(removed.mask) });
        }
        if existing.is_some() {
            return None;
        }
        if ch.bans.len() >= max {
            let name = ch.name.as_str().to_owned();
            self.numeric(ERR_BANLISTFULL, [name, mask, "Channel ban list is full".into()]);
            return None;
        }
        ch.bans.push(Ban { mask: mask.clone(), setter, set_at_ms: now_ms });
        Some(ModeChange { add, letter: 'b', param: Some(mask) })
    }

    pub(crate) fn handle_kick(&mut self, msg: &Message) {
        let (Some(raw), Some(list)) = (msg.params.first(), msg.params.get(1).filter(|t| !t.is_empty())) else {
            self.need_more_params("KICK");
            return;
        };
        let conn = self.cur_conn();
        let folded = casefold(raw);
        let Some(ch) = self.channels.get(&folded) else {
            self.numeric(ERR_NOSUCHCHANNEL, [raw, "No such channel"]);
            return;
        };
        let name = ch.name.as_str().to_owned();
        if !ch.members.contains_key(&conn) {
            self.numeric(ERR_NOTONCHANNEL, [name.as_str(), "You're not on that channel"]);
            return;
        }
        if !ch.is_op(conn) {
            self.numeric(ERR_CHANOPRIVSNEEDED, [name.as_str(), "You're not channel operator"]);
            return;
        }
        let targets: Vec<&str> = list.split(',').filter(|t| !t.is_empty()).collect();
        let max = self.cfg.limits.max_targets;
        if targets.len() > max {
            let text = format!("Too many targets: at most {max} per command");
            self.numeric(ERR_TOOMANYTARGETS, [list.as_str(), text.as_str()]);
            return;
        }
        let reason = match msg.params.get(2).filter(|r| !r.is_empty()) {
            Some(r) => truncate(r, self.cfg.limits.kick_len).to_owned(),
            None => self.cur_client().map(|c| c.nick_or_star().to_owned()).unwrap_or_default(),
        };
        for target in targets {
            // Kicking oneself ends one's right to kick the rest.
            if !self.channels.get(&folded).is_some_and(|ch| ch.is_op(conn)) {
                break;
            }
            self.kick_one(&folded, &name, target, &reason);
        }
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
        self.leave_channel(victim, folded);
    }

    pub(crate) fn handle_invite(&mut self, msg: &Message) {
        let (Some(nick), Some(raw)) = (msg.params.first(), msg.params.get(1)) else {
            self.need_more_params("INVITE");
            return;
        };
        let conn = self.cur_conn();
        let Some(target) = self.find_user(nick) else {
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
        // already gets 341.
        let watchers: Vec<ConnId> = ch
            .members
            .iter()
            .filter(|(m, modes)| modes.op && **m != conn && self.caps_of(**m).has(Cap::InviteNotify))
            .map(|(m, _)| *m)
            .collect();
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
        assert!(!p.list_bans && p.unknown.is_empty());
    }

    #[test]
    fn unset_key_may_omit_its_parameter_and_unset_limit_takes_none() {
        let p = parse_channel_modes("-kl+m", std::iter::empty(), 4);
        assert_eq!(p.changes, [change(false, 'k', None), change(false, 'l', None), change(true, 'm', None)]);
    }

    #[test]
    fn bare_b_lists_and_unknown_letters_are_reported_once() {
        let p = parse_channel_modes("b", std::iter::empty(), 4);
        assert!(p.list_bans && p.changes.is_empty());
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
