//! Questions about people: WHO (with WHOX), WHOIS, WHOWAS, ISON, USERHOST.
//!
//! Visibility follows one rule throughout: an invisible (+i) user is seen only by people who
//! share a room with them, and a secret (+s) room only by its members. The one exception is a
//! question that names the user exactly (`WHO nick`, like WHOIS): +i hides a user from
//! listings, not from someone who already knows the nick.

use chinwag_proto::{casefold, mask_match, Message};

use crate::caps::Cap;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::pack;
use chinwag_proto::rfc3339_ms;

/// Bytes of room names per 319 line, leaving room for the prefix and nick within 512.
const WHOIS_CHANNELS_BUDGET: usize = 380;
/// Most WHOWAS entries one query returns, whatever count it asks for.
const MAX_WHOWAS_REPLIES: usize = 20;
/// USERHOST answers at most this many nicks (RFC 2812).
const MAX_USERHOST_NICKS: usize = 5;
/// WHOX fields in the order they are sent, whatever order they were asked in.
const WHOX_FIELD_ORDER: &str = "tcuihsnfdlaor";
/// A WHOX query token is a number of at most this many digits.
const WHOX_TOKEN_LEN: usize = 3;

/// `%fields[,token]`: which WHOX fields to send, and the token to send back in `t`.
#[derive(Debug)]
struct Whox {
    fields: String,
    token: String,
}

impl Whox {
    fn parse(spec: &str) -> Whox {
        let (fields, token) = spec.split_once(',').unwrap_or((spec, ""));
        let valid = !token.is_empty() && token.len() <= WHOX_TOKEN_LEN && token.bytes().all(|b| b.is_ascii_digit());
        Whox { fields: fields.to_owned(), token: if valid { token.to_owned() } else { "0".into() } }
    }
}

/// One line of a WHO answer: who, in which room (`*` for none), with which room prefixes.
#[derive(Debug)]
struct WhoRow {
    conn: ConnId,
    channel: String,
    prefixes: &'static str,
}

impl Server {
    pub(crate) fn handle_who(&mut self, msg: &Message) {
        let mask = msg.params.first().filter(|m| !m.is_empty()).map_or("*", String::as_str);
        let whox = msg.params.get(1).and_then(|p| p.strip_prefix('%')).map(Whox::parse);
        let rows = if mask.starts_with('#') { self.who_channel(mask) } else { self.who_mask(mask) };
        for row in rows {
            self.send_who_row(&row, whox.as_ref());
        }
        if self.cluster.is_some() {
            let rows: Vec<(crate::cluster::UserFacts, String, &str)> = if mask.starts_with('#') {
                self.who_channel_remote(mask)
            } else {
                self.who_remote(mask).into_iter().map(|u| (u, "*".to_owned(), "")).collect()
            };
            for (u, channel, prefixes) in rows {
                self.send_who_remote(&u, &channel, prefixes, whox.as_ref());
            }
        }
        self.numeric(RPL_ENDOFWHO, [mask, "End of WHO list"]);
    }

    /// The members of a room the current client may see.
    fn who_channel(&self, raw: &str) -> Vec<WhoRow> {
        let me = self.cur_conn();
        let multi = self.caps_of(me).has(Cap::MultiPrefix);
        let Some(ch) = self.channels.get(&casefold(raw)) else { return Vec::new() };
        let is_member = ch.members.contains_key(&me);
        if ch.modes.secret && !is_member {
            return Vec::new();
        }
        ch.members
            .iter()
            .filter(|(conn, _)| is_member || self.clients.get(conn).is_some_and(|c| !c.invisible))
            .map(|(conn, modes)| WhoRow {
                conn: *conn,
                channel: ch.name.as_str().to_owned(),
                prefixes: modes.prefixes(multi),
            })
            .collect()
    }

    /// Everyone whose nick matches `mask` (`0` means everyone) and whom the client may see.
    fn who_mask(&self, mask: &str) -> Vec<WhoRow> {
        let me = self.cur_conn();
        let mask = if mask == "0" { "*" } else { mask };
        // A mask without wildcards names one nick exactly, which shows that user even when +i.
        let exact = !mask.contains(['*', '?']);
        let mut conns: Vec<ConnId> = self
            .clients
            .values()
            .filter(|c| c.registered && mask_match(mask, c.nick_or_star()))
            .filter(|c| exact || c.id == me || !c.invisible || self.share_channel(me, c.id))
            .map(|c| c.id)
            .collect();
        conns.sort();
        conns.into_iter().map(|conn| WhoRow { conn, channel: "*".into(), prefixes: "" }).collect()
    }

    /// Users on other nodes whose nick matches `mask` and whom the client may see (sharing
    /// no room with anyone there yet, an invisible one only when named exactly).
    fn who_remote(&self, mask: &str) -> Vec<crate::cluster::UserFacts> {
        let Some(cluster) = self.cluster.as_ref() else { return Vec::new() };
        let mask = if mask == "0" { "*" } else { mask };
        let exact = !mask.contains(['*', '?']);
        let me = self.cur_conn();
        let mut users: Vec<_> = cluster
            .users
            .values()
            .filter(|u| mask_match(mask, &u.nick))
            .filter(|u| exact || !u.invisible || self.remote_peers(&u.uid).contains(&me))
            .cloned()
            .collect();
        users.sort_by(|a, b| a.uid.cmp(&b.uid));
        users
    }

    /// The members on other nodes of a room the current client may see, with their room and
    /// prefixes.
    fn who_channel_remote(&self, raw: &str) -> Vec<(crate::cluster::UserFacts, String, &'static str)> {
        let me = self.cur_conn();
        let multi = self.caps_of(me).has(Cap::MultiPrefix);
        let folded = casefold(raw);
        let Some(ch) = self.channels.get(&folded) else { return Vec::new() };
        let is_member = ch.members.contains_key(&me);
        if ch.modes.secret && !is_member {
            return Vec::new();
        }
        let name = ch.name.as_str().to_owned();
        self.remote_members(&folded)
            .into_iter()
            .filter(|(u, _)| is_member || !u.invisible)
            .map(|(u, m)| (u, name.clone(), m.prefixes(multi)))
            .collect()
    }

    /// 352 or 354 for a user on another node.
    fn send_who_remote(&mut self, u: &crate::cluster::UserFacts, channel: &str, prefixes: &str, whox: Option<&Whox>) {
        let server = u.server.clone();
        let (away, oper, bot) =
            (if u.away.is_some() { 'G' } else { 'H' }, if u.oper { "*" } else { "" }, if u.bot { "B" } else { "" });
        let flags = format!("{away}{oper}{prefixes}{bot}");
        let Some(whox) = whox else {
            let params = [
                channel.to_owned(),
                u.user.clone(),
                u.host.clone(),
                server,
                u.nick.clone(),
                flags,
                format!("0 {}", u.realname),
            ];
            self.numeric(RPL_WHOREPLY, params);
            return;
        };
        let mut params = Vec::new();
        for field in WHOX_FIELD_ORDER.chars().filter(|f| whox.fields.contains(*f)) {
            params.push(match field {
                't' => whox.token.clone(),
                'c' => channel.to_owned(),
                'u' => u.user.clone(),
                'i' => "255.255.255.255".into(),
                'h' => u.host.clone(),
                's' => server.clone(),
                'n' => u.nick.clone(),
                'f' => flags.clone(),
                'a' => u.account.clone().unwrap_or_else(|| "0".into()),
                'r' => u.realname.clone(),
                _ => "0".into(),
            });
        }
        self.numeric(RPL_WHOSPCRPL, params);
    }

    /// WHOIS of a user on another node: what the replica knows (no idle time), and the server
    /// name of the node the user is on.
    fn whois_remote(&mut self, u: &crate::cluster::UserFacts) {
        let nick = u.nick.clone();
        let server = u.server.clone();
        let network = self.cfg.network_name.clone();
        self.numeric(RPL_WHOISUSER, [nick.clone(), u.user.clone(), u.host.clone(), "*".into(), u.realname.clone()]);
        let me = self.cur_conn();
        let rooms = self.remote_user_rooms(&u.uid, me, self.caps_of(me).has(Cap::MultiPrefix));
        for line in pack(&rooms, ' ', WHOIS_CHANNELS_BUDGET) {
            self.numeric(RPL_WHOISCHANNELS, [nick.clone(), line]);
        }
        self.numeric(RPL_WHOISSERVER, [nick.clone(), server, network]);
        if let Some(away) = &u.away {
            self.numeric(RPL_AWAY, [nick.clone(), away.clone()]);
        }
        if u.oper {
            self.numeric(RPL_WHOISOPERATOR, [nick.as_str(), "is an IRC operator"]);
        }
        if u.bot {
            self.numeric(RPL_WHOISBOT, [nick.as_str(), "is a bot"]);
        }
        if u.tls {
            self.numeric(RPL_WHOISSECURE, [nick.as_str(), "is using a secure connection"]);
        }
        if let Some(account) = &u.account {
            self.numeric(RPL_WHOISACCOUNT, [nick.clone(), account.clone(), "is logged in as".into()]);
        }
        let signon = (u.signon_ms / 1000).to_string();
        self.numeric(RPL_WHOISIDLE, [nick.clone(), "0".into(), signon, "seconds idle, signon time".into()]);
        self.numeric(RPL_ENDOFWHOIS, [nick.as_str(), "End of /WHOIS list"]);
    }

    /// 352, or 354 with the asked-for fields for WHOX.
    fn send_who_row(&mut self, row: &WhoRow, whox: Option<&Whox>) {
        let Some(c) = self.clients.get(&row.conn) else { return };
        let server = self.cfg.server_name.clone();
        // Here or gone, `*` for an IRC operator, then the room prefixes (Modern IRC's order),
        // then `B` for a bot.
        let oper = if self.oper_name(row.conn).is_some() { "*" } else { "" };
        let away = if c.away().is_some() { 'G' } else { 'H' };
        let flags = format!("{away}{oper}{}{}", row.prefixes, if c.bot { "B" } else { "" });
        let Some(whox) = whox else {
            let params = [
                row.channel.clone(),
                c.user_or_star().to_owned(),
                c.info.host.clone(),
                server,
                c.nick_or_star().to_owned(),
                flags,
                format!("0 {}", c.realname),
            ];
            self.numeric(RPL_WHOREPLY, params);
            return;
        };
        let idle = self.now.mono.saturating_duration_since(c.last_spoke).as_secs();
        let mut params = Vec::new();
        for field in WHOX_FIELD_ORDER.chars().filter(|f| whox.fields.contains(*f)) {
            params.push(match field {
                't' => whox.token.clone(),
                'c' => row.channel.clone(),
                'u' => c.user_or_star().to_owned(),
                'i' => "255.255.255.255".into(),
                'h' => c.info.host.clone(),
                's' => server.clone(),
                'n' => c.nick_or_star().to_owned(),
                'f' => flags.clone(),
                'l' => idle.to_string(),
                'a' => c.account.clone().unwrap_or_else(|| "0".into()),
                'r' => c.realname.clone(),
                // d (hop count) and o (op level) are always 0 on a single server without opers.
                _ => "0".into(),
            });
        }
        self.numeric(RPL_WHOSPCRPL, params);
    }

    pub(crate) fn handle_whois(&mut self, msg: &Message) {
        // `WHOIS <server> <nick>` asks a particular server; there is only this one.
        let raw = match msg.params.as_slice() {
            [nick] | [_, nick, ..] => nick.as_str(),
            [] => "",
        };
        // TARGMAX WHOIS:1 — only the first nick is answered.
        let nick = raw.split(',').next().unwrap_or_default().to_owned();
        if nick.is_empty() {
            self.numeric(ERR_NONICKNAMEGIVEN, ["No nickname given"]);
            return;
        }
        let Some(target) = self.find_user(&nick) else {
            if let Some(u) = self.remote_user(&nick).cloned() {
                self.whois_remote(&u);
                return;
            }
            self.numeric(ERR_NOSUCHNICK, [nick.as_str(), "No such nick/channel"]);
            self.numeric(RPL_ENDOFWHOIS, [nick.as_str(), "End of /WHOIS list"]);
            return;
        };
        let me = self.cur_conn();
        let multi = self.caps_of(me).has(Cap::MultiPrefix);
        let server = self.cfg.server_name.clone();
        let network = self.cfg.network_name.clone();
        let Some(c) = self.clients.get(&target) else { return };
        let nick = c.nick_or_star().to_owned();
        let user = [nick.clone(), c.user_or_star().to_owned(), c.info.host.clone(), "*".into(), c.realname.clone()];
        let rooms: Vec<String> = c
            .channels
            .iter()
            .filter_map(|folded| self.channels.get(folded))
            .filter(|ch| !ch.modes.secret || ch.members.contains_key(&me))
            .map(|ch| format!("{}{}", ch.member(target).unwrap_or_default().prefixes(multi), ch.name.as_str()))
            .collect();
        let away = c.away().map(str::to_owned);
        let tls = c.info.tls;
        let bot = c.bot;
        // A certificate's fingerprint identifies its holder across networks: only the holder
        // and operators see it.
        let certfp = c.certfp().filter(|_| target == me || self.oper_name(me).is_some());
        let account = c.account.clone();
        let oper = self.oper_name(target).is_some();
        let idle = self.now.mono.saturating_duration_since(c.last_spoke).as_secs().to_string();
        let signon = (c.signon_ms / 1000).to_string();

        self.numeric(RPL_WHOISUSER, user);
        for line in pack(&rooms, ' ', WHOIS_CHANNELS_BUDGET) {
            self.numeric(RPL_WHOISCHANNELS, [nick.clone(), line]);
        }
        self.numeric(RPL_WHOISSERVER, [nick.clone(), server, network]);
        if let Some(away) = away {
            self.numeric(RPL_AWAY, [nick.clone(), away]);
        }
        if oper {
            self.numeric(RPL_WHOISOPERATOR, [nick.as_str(), "is an IRC operator"]);
        }
        if bot {
            self.numeric(RPL_WHOISBOT, [nick.as_str(), "is a bot"]);
        }
        if tls {
            self.numeric(RPL_WHOISSECURE, [nick.as_str(), "is using a secure connection"]);
        }
        if let Some(fp) = certfp {
            self.numeric(RPL_WHOISCERTFP, [nick.clone(), format!("has client certificate fingerprint {fp}")]);
        }
        if let Some(account) = account {
            self.numeric(RPL_WHOISACCOUNT, [nick.clone(), account, "is logged in as".into()]);
        }
        self.numeric(RPL_WHOISIDLE, [nick.clone(), idle, signon, "seconds idle, signon time".into()]);
        self.numeric(RPL_ENDOFWHOIS, [nick.as_str(), "End of /WHOIS list"]);
    }

    pub(crate) fn handle_whowas(&mut self, msg: &Message) {
        let nick = msg.params.first().and_then(|p| p.split(',').next()).unwrap_or_default().to_owned();
        if nick.is_empty() {
            self.numeric(ERR_NONICKNAMEGIVEN, ["No nickname given"]);
            return;
        }
        // A count that is missing, not a number or not positive means "as many as allowed".
        let count = msg
            .params
            .get(1)
            .and_then(|c| c.parse::<usize>().ok())
            .filter(|c| *c > 0)
            .map_or(MAX_WHOWAS_REPLIES, |c| c.min(MAX_WHOWAS_REPLIES));
        let folded = casefold(&nick);
        let entries: Vec<_> = self.whowas.iter().rev().filter(|e| e.folded == folded).take(count).cloned().collect();
        if entries.is_empty() {
            self.numeric(ERR_WASNOSUCHNICK, [nick.as_str(), "There was no such nickname"]);
        }
        let server = self.cfg.server_name.clone();
        for e in entries {
            let left = rfc3339_ms(e.left_ms);
            self.numeric(RPL_WHOWASUSER, [e.nick.clone(), e.user, e.host, "*".into(), e.realname]);
            self.numeric(RPL_WHOISSERVER, [e.nick, server.clone(), left]);
        }
        self.numeric(RPL_ENDOFWHOWAS, [nick.as_str(), "End of WHOWAS"]);
    }

    pub(crate) fn handle_ison(&mut self, msg: &Message) {
        if msg.params.is_empty() {
            self.need_more_params("ISON");
            return;
        }
        // Old clients send `ISON a b c`, newer ones `ISON :a b c`; both mean the same.
        let online: Vec<String> = msg
            .params
            .iter()
            .flat_map(|p| p.split_ascii_whitespace())
            .filter_map(|n| match self.find_user(n).and_then(|conn| self.clients.get(&conn)) {
                Some(c) => Some(c.nick_or_star().to_owned()),
                None => self.remote_user(n).map(|u| u.nick.clone()),
            })
            .collect();
        self.numeric(RPL_ISON, [online.join(" ")]);
    }

    pub(crate) fn handle_userhost(&mut self, msg: &Message) {
        if msg.params.is_empty() {
            self.need_more_params("USERHOST");
            return;
        }
        let replies: Vec<String> = msg
            .params
            .iter()
            .flat_map(|p| p.split_ascii_whitespace())
            .take(MAX_USERHOST_NICKS)
            .filter_map(|n| match self.find_user(n).and_then(|conn| self.clients.get(&conn)) {
                Some(c) => {
                    let here = if c.away().is_some() { '-' } else { '+' };
                    Some(format!("{}={here}{}@{}", c.nick_or_star(), c.user_or_star(), c.info.host))
                }
                None => self.remote_user(n).map(|u| {
                    let here = if u.away.is_some() { '-' } else { '+' };
                    format!("{}={here}{}@{}", u.nick, u.user, u.host)
                }),
            })
            .collect();
        self.numeric(RPL_USERHOST, [replies.join(" ")]);
    }
}
