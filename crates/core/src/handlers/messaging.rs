//! PRIVMSG, NOTICE and TAGMSG to rooms and nicks.
//!
//! NOTICE never draws an automatic error reply (RFC 2812), so every error path below checks
//! `quiet` first.

use chinwag_proto::{casefold, mask_match, Message, Tag, MAX_BODY_LEN};

use crate::broadcast::Outgoing;
use crate::caps::Cap;
use crate::ids::ConnId;
use crate::numeric::*;
use crate::server::Server;
use crate::text::truncate;

impl Server {
    pub(crate) fn handle_message(&mut self, command: &str, msg: &Message) {
        let quiet = command == "NOTICE";
        let tagmsg = command == "TAGMSG";
        let Some(targets) = msg.params.first().filter(|t| !t.is_empty()) else {
            if !quiet {
                self.numeric(ERR_NORECIPIENT, [format!("No recipient given ({command})")]);
            }
            return;
        };
        let text = if tagmsg {
            None
        } else {
            match msg.params.get(1).filter(|t| !t.is_empty()) {
                Some(text) => Some(text.as_str()),
                None => {
                    if !quiet {
                        self.numeric(ERR_NOTEXTTOSEND, ["No text to send"]);
                    }
                    return;
                }
            }
        };
        let mut list: Vec<&str> = Vec::new();
        for t in targets.split(',').filter(|t| !t.is_empty()) {
            if !list.iter().any(|seen| casefold(seen) == casefold(t)) {
                list.push(t);
            }
        }
        if list.len() > self.cfg.limits.max_targets {
            if !quiet {
                let text = format!("Too many recipients: at most {} per command", self.cfg.limits.max_targets);
                self.numeric(ERR_TOOMANYTARGETS, [targets.as_str(), text.as_str()]);
            }
            return;
        }
        let client_tags: Vec<Tag> = msg.tags.iter().filter(|t| t.key.starts_with('+')).cloned().collect();
        let now = self.now.mono;
        if let Some(client) = self.cur_client_mut() {
            if !tagmsg {
                client.last_spoke = now;
            }
        }
        let prefix_len = self.cur_client().map_or(0, |c| c.prefix().len());
        for target in list {
            let mut base = Message::new(command).with_param(target);
            if let Some(text) = text {
                base = base.with_param(fit_text(prefix_len, command, target, text));
            }
            if target.starts_with('#') {
                self.message_channel(target, base, &client_tags, quiet, tagmsg);
            } else {
                self.message_nick(target, base, &client_tags, quiet, tagmsg);
            }
        }
    }

    fn message_channel(&mut self, target: &str, base: Message, tags: &[Tag], quiet: bool, tagmsg: bool) {
        let conn = self.cur_conn();
        let folded = casefold(target);
        let Some(ch) = self.channels.get(&folded) else {
            if !quiet {
                self.numeric(ERR_NOSUCHCHANNEL, [target, "No such channel"]);
            }
            return;
        };
        let member = ch.member(conn);
        let privileged = member.is_some_and(|m| m.op || m.voice);
        let prefix = self.cur_client().map(|c| c.prefix()).unwrap_or_default();
        let refusal = if member.is_none() && ch.modes.no_external {
            Some("Cannot send to channel (+n) - you are not in it")
        } else if ch.modes.moderated && !privileged {
            Some("Cannot send to channel (+m) - you need voice")
        } else if !privileged && ch.bans.iter().any(|b| mask_match(&b.mask, &prefix)) {
            Some("Cannot send to channel (+b) - you are banned")
        } else {
            None
        };
        let display = ch.name.as_str().to_owned();
        if let Some(text) = refusal {
            if !quiet {
                self.numeric(ERR_CANNOTSENDTOCHAN, [display.as_str(), text]);
            }
            return;
        }
        let members: Vec<ConnId> = ch.members.keys().copied().filter(|m| *m != conn).collect();
        let base = Message { params: replace_first(base.params, &display), ..base };
        let Some(mut ev) = self.message_event(base, tags, tagmsg) else { return };
        self.deliver_all(&mut ev, members);
        self.echo(&mut ev);
    }

    fn message_nick(&mut self, target: &str, base: Message, tags: &[Tag], quiet: bool, tagmsg: bool) {
        let Some(to) = self.find_nick(target) else {
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
        let nick = recipient.nick_or_star().to_owned();
        let away = recipient.away.clone();
        let base = Message { params: replace_first(base.params, &nick), ..base };
        let Some(mut ev) = self.message_event(base, tags, tagmsg) else { return };
        // A message to oneself arrives once: as the echo if echo-message is on, else as itself.
        if to != self.cur_conn() || !self.caps_of(to).has(Cap::EchoMessage) {
            self.deliver(&mut ev, to);
        }
        self.echo(&mut ev);
        if let Some(away) = away {
            if !quiet && !tagmsg {
                self.numeric(RPL_AWAY, [nick, away]);
            }
        }
    }

    fn message_event(&mut self, base: Message, tags: &[Tag], tagmsg: bool) -> Option<Outgoing> {
        let mut ev = self.cur_event(base)?;
        ev.client_tags = tags.to_vec();
        ev.needs_message_tags = tagmsg;
        Some(ev)
    }

    /// echo-message: the sender gets its own message back, with the same msgid and time.
    fn echo(&mut self, ev: &mut Outgoing) {
        let conn = self.cur_conn();
        if self.caps_of(conn).has(Cap::EchoMessage) {
            self.deliver(ev, conn);
        }
    }
}

/// The text cut (on a character boundary) so that the relayed line,
/// `:prefix COMMAND target :text\r\n`, fits the 512-byte body limit every client relies on.
fn fit_text<'a>(prefix_len: usize, command: &str, target: &str, text: &'a str) -> &'a str {
    let overhead = 1 + prefix_len + 1 + command.len() + 1 + target.len() + 2 + 2;
    truncate(text, MAX_BODY_LEN.saturating_sub(overhead))
}

/// The params with the target replaced by its canonical spelling.
fn replace_first(mut params: Vec<String>, canonical: &str) -> Vec<String> {
    if let Some(first) = params.first_mut() {
        canonical.clone_into(first);
    }
    params
}
