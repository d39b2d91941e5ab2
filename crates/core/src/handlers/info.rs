//! What a newcomer asks the server about itself: INFO, HELP (and its older name HELPOP), and
//! LINKS, with the numerics of the Modern IRC documentation.

use chinwag_proto::Message;

use crate::numeric::*;
use crate::server::Server;

/// HELP's topics: a command, then its lines (the first is its usage). The subject is matched
/// without regard to case; `HELP` alone lists the topics.
const HELP: &[(&str, &[&str])] = &[
    ("AWAY", &["AWAY [:<message>]", "Marks you away with a message; AWAY alone marks you back."]),
    (
        "CHATHISTORY",
        &[
            "CHATHISTORY <LATEST|BEFORE|AFTER|AROUND|BETWEEN|TARGETS> ...",
            "Reads stored history (IRCv3 draft/chathistory).",
        ],
    ),
    ("HELP", &["HELP [<subject>]", "Shows help on a command; HELP alone lists the subjects."]),
    ("INFO", &["INFO", "Tells about this server's software."]),
    ("INVITE", &["INVITE <nick> <#room>", "Invites someone to a room."]),
    ("ISON", &["ISON <nick> [<nick> ...]", "Tells which of the nicks are online."]),
    ("JOIN", &["JOIN <#room>[,<#room>...] [<key>[,<key>...]]", "Joins rooms, making any that do not exist."]),
    (
        "KICK",
        &[
            "KICK <#room>[,<#room>...] <nick>[,<nick>...] [:<reason>]",
            "Removes people from a room you operate: one room and many nicks, many rooms and one nick, or pairs.",
        ],
    ),
    ("LINKS", &["LINKS", "Lists the servers of this network (this one)."]),
    ("LIST", &["LIST", "Lists the rooms."]),
    ("LUSERS", &["LUSERS", "Counts users, rooms and connections."]),
    ("MODE", &["MODE <#room|nick> [<modes> [<arguments>]]", "Shows or changes the modes of a room or of yourself."]),
    ("MONITOR", &["MONITOR <+|-|C|L|S> [<nick>[,<nick>...]]", "Tells you when nicks come online and leave."]),
    ("MOTD", &["MOTD", "Shows the message of the day."]),
    ("NAMES", &["NAMES <#room>[,<#room>...]", "Lists who is in rooms."]),
    ("NICK", &["NICK <nick>", "Changes your nick."]),
    (
        "NICKSERV",
        &["NICKSERV <REGISTER|IDENTIFY|...> ...", "Talks to the accounts service (also NS, or PRIVMSG NickServ)."],
    ),
    ("NOTICE", &["NOTICE <target>[,<target>...] :<text>", "Sends a notice: never answered automatically."]),
    ("PART", &["PART <#room>[,<#room>...] [:<reason>]", "Leaves rooms."]),
    ("PRIVMSG", &["PRIVMSG <target>[,<target>...] :<text>", "Sends a message to rooms or people."]),
    ("QUIT", &["QUIT [:<reason>]", "Leaves the server."]),
    (
        "REGISTER",
        &["REGISTER <account|*> <email|*> <password>", "Registers an account (IRCv3 draft/account-registration)."],
    ),
    ("SETNAME", &["SETNAME :<realname>", "Changes your real name."]),
    ("TIME", &["TIME", "Tells the server's time."]),
    ("TOPIC", &["TOPIC <#room> [:<topic>]", "Shows or sets a room's topic."]),
    ("VERSION", &["VERSION", "Tells the server's version and what it supports."]),
    ("WHO", &["WHO <mask|#room|nick> [%<fields>[,<token>]]", "Lists people by room or nick mask (WHOX fields)."]),
    ("WHOIS", &["WHOIS <nick>", "Tells about someone."]),
    ("WHOWAS", &["WHOWAS <nick> [<count>]", "Tells about someone who has left."]),
];

impl Server {
    /// 371 lines about the software, then 374.
    pub(crate) fn handle_info(&mut self) {
        let lines = [
            format!("{} ({})", self.cfg.version, self.cfg.server_name),
            "chinwag: a self-hosted, IRC-compatible chat server".to_owned(),
            "Any IRC client works; IRCv3 capabilities are listed by CAP LS 302".to_owned(),
            "Try HELP for the commands".to_owned(),
        ];
        for line in lines {
            self.numeric(RPL_INFO, [line]);
        }
        self.numeric(RPL_ENDOFINFO, ["End of INFO list"]);
    }

    /// `HELP [<subject>]`: 704, 705s and 706 for a known subject (its usage first), 524 for
    /// an unknown one. Without a subject, the list of subjects.
    pub(crate) fn handle_help(&mut self, msg: &Message) {
        let asked = msg.params.first().map(|s| s.trim()).filter(|s| !s.is_empty());
        let (subject, lines): (String, Vec<String>) = match asked {
            None => {
                let names: Vec<&str> = HELP.iter().map(|(name, _)| *name).collect();
                let mut lines = vec!["chinwag understands these commands; HELP <command> tells more:".to_owned()];
                lines.extend(names.chunks(8).map(|row| row.join(" ")));
                ("*".to_owned(), lines)
            }
            Some(subject) => match HELP.iter().find(|(name, _)| name.eq_ignore_ascii_case(subject)) {
                Some((name, text)) => ((*name).to_owned(), text.iter().map(|l| (*l).to_owned()).collect()),
                None => {
                    self.numeric(ERR_HELPNOTFOUND, [subject, "No help available on this topic"]);
                    return;
                }
            },
        };
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.into_iter().enumerate() {
            let code = if i == 0 { RPL_HELPSTART } else { RPL_HELPTXT };
            self.numeric(code, [subject.clone(), line]);
            if i == last {
                self.numeric(RPL_ENDOFHELP, [subject.as_str(), "End of /HELP"]);
            }
        }
    }

    /// The network is this one server: one 364, then 365.
    pub(crate) fn handle_links(&mut self) {
        let server = self.cfg.server_name.clone();
        self.numeric(RPL_LINKS, ["*".to_owned(), server, format!("0 {}", self.cfg.network_name)]);
        self.numeric(RPL_ENDOFLINKS, ["*", "End of /LINKS list"]);
    }
}
