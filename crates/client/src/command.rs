//! The command language both front ends share: `/join general`, `/msg bob hi`, and in
//! scriptable mode the seeds' bare forms (`join general`, `msg bob Hello`, see [`BARE`]). Parsing is pure;
//! the session resolves what a command leaves open (which room is "current").
//!
//! Every command is in [`COMMANDS`] with its usage and one line of help, which is what `help`
//! prints and what tab completion offers.

/// What the user asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Text for the current room or conversation, verbatim.
    Say(String),
    /// A private message (or a message to a room named explicitly).
    Msg {
        target: String,
        text: String,
    },
    /// Opens a conversation with a nick and makes it current.
    Query(String),
    /// Makes a room or conversation already open the current one.
    Switch(String),
    /// `/me waves`: an action (CTCP ACTION) to the current room or conversation.
    Me(String),
    /// Joins rooms (a `#` is added when missing) and makes the first one current.
    Join {
        rooms: Vec<String>,
        key: Option<String>,
    },
    /// Leaves a room (the current one when `None`).
    Part {
        room: Option<String>,
        reason: Option<String>,
    },
    /// Shows or sets a room's topic.
    Topic {
        room: Option<String>,
        topic: Option<String>,
    },
    Nick(String),
    /// Marks you away with a reason, or back with `None`.
    Away(Option<String>),
    Whois(String),
    Names(Option<String>),
    Kick {
        room: Option<String>,
        nick: String,
        reason: Option<String>,
    },
    Invite {
        nick: String,
        room: Option<String>,
    },
    /// `MODE target args…`; a target starting with `+`/`-` means the current room.
    Mode {
        target: Option<String>,
        args: Vec<String>,
    },
    /// A line sent to the server exactly as typed.
    Raw(String),
    /// Registers an account named like your nick (changing nick first if another name is
    /// given). A missing password comes from `CHINWAG_PASSWORD`.
    Register {
        account: Option<String>,
        password: Option<String>,
    },
    /// Logs in (NickServ IDENTIFY) and remembers the credentials in memory for reconnects.
    Login {
        account: Option<String>,
        password: Option<String>,
    },
    /// Forgets the credentials and reconnects as a guest.
    Logout,
    /// Who is online.
    Users,
    /// The room list.
    Rooms,
    /// Older messages of the current room or conversation.
    History {
        limit: usize,
    },
    /// Tells the current room or conversation that you are typing (`+typing`).
    Typing(TypingState),
    /// `/msg --clear NICK TEXT`: a private message sent in clear even to a contact who has
    /// end-to-end encryption devices (the user's explicit choice).
    ClearMsg {
        target: String,
        text: String,
    },
    /// `/verify NICK`: shows the safety number; with `confirm`, remembers it as verified.
    Verify {
        nick: String,
        confirm: bool,
    },
    /// `/trust NICK`: accepts the new or changed devices of a contact.
    Trust(String),
    /// Lists chinwag servers on the LAN (multicast discovery), probing the given UDP port
    /// (`/discover PORT`, for servers started with `--discovery-port`) or the default one.
    Discover(Option<u16>),
    /// Switches to the Nth server of the last `/discover` list.
    Connect(usize),
    /// `/log on|off`: starts or stops the local chat logs; `/log` alone says where they go.
    Log(Option<bool>),
    Help,
    Clear,
    Quit(Option<String>),
}

impl Command {
    /// Whether the command is a request to the server that has no meaning offline, so it waits
    /// for the connection. Messages wait in the session's unsent queue instead, joins and parts
    /// in its rooms, a login in its credentials, a nick in its configuration; typing is live
    /// and dropped; the rest is the client's own business.
    pub fn needs_the_server(&self) -> bool {
        matches!(
            self,
            Command::Topic { .. }
                | Command::Away(_)
                | Command::Whois(_)
                | Command::Names(_)
                | Command::Kick { .. }
                | Command::Invite { .. }
                | Command::Mode { .. }
                | Command::Raw(_)
                | Command::Register { .. }
                | Command::Users
                | Command::Rooms
                | Command::History { .. }
        )
    }

    /// The command's name as typed (`/list` is `/rooms`), for messages about it.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Say(_) => "text",
            Command::Msg { .. } | Command::ClearMsg { .. } => "/msg",
            Command::Query(_) => "/query",
            Command::Switch(_) => "/switch",
            Command::Me(_) => "/me",
            Command::Join { .. } => "/join",
            Command::Part { .. } => "/leave",
            Command::Topic { .. } => "/topic",
            Command::Nick(_) => "/nick",
            Command::Away(_) => "/away",
            Command::Whois(_) => "/whois",
            Command::Names(_) => "/names",
            Command::Kick { .. } => "/kick",
            Command::Invite { .. } => "/invite",
            Command::Mode { .. } => "/mode",
            Command::Raw(_) => "/raw",
            Command::Register { .. } => "/register",
            Command::Login { .. } => "/login",
            Command::Logout => "/logout",
            Command::Users => "/users",
            Command::Rooms => "/rooms",
            Command::History { .. } => "/history",
            Command::Typing(_) => "/typing",
            Command::Verify { .. } => "/verify",
            Command::Trust(_) => "/trust",
            Command::Discover(_) => "/discover",
            Command::Connect(_) => "/connect",
            Command::Log(_) => "/log",
            Command::Help => "/help",
            Command::Clear => "/clear",
            Command::Quit(_) => "/quit",
        }
    }
}

/// The `+typing` states (IRCv3 typing client tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TypingState {
    Active,
    Paused,
    Done,
}

impl TypingState {
    pub fn as_str(self) -> &'static str {
        match self {
            TypingState::Active => "active",
            TypingState::Paused => "paused",
            TypingState::Done => "done",
        }
    }

    pub fn parse(s: &str) -> Option<TypingState> {
        match s {
            "active" => Some(TypingState::Active),
            "paused" => Some(TypingState::Paused),
            "done" => Some(TypingState::Done),
            _ => None,
        }
    }
}

/// A line that is not a valid command. Shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("unknown command /{0}; type /help for the list")]
    Unknown(String),
    #[error("usage: {0}")]
    Usage(&'static str),
}

/// One entry of the command table.
#[derive(Debug, Clone, Copy)]
pub struct CommandInfo {
    /// The name, and the other names it answers to.
    pub names: &'static [&'static str],
    pub usage: &'static str,
    pub help: &'static str,
}

/// Every command, in the order `help` lists them.
pub const COMMANDS: &[CommandInfo] = &[
    CommandInfo {
        names: &["join"],
        usage: "/join ROOM [KEY]",
        help: "join a room (the # is optional) and switch to it",
    },
    CommandInfo {
        names: &["leave", "part"],
        usage: "/leave [ROOM] [REASON]",
        help: "leave a room (the current one by default)",
    },
    CommandInfo {
        names: &["msg", "whisper", "query"],
        usage: "/msg NICK [TEXT]",
        help: "send a private message, or open the conversation",
    },
    CommandInfo {
        names: &["say", "room_msg"],
        usage: "/say TEXT",
        help: "send TEXT verbatim to the current room or conversation",
    },
    CommandInfo {
        names: &["switch", "window"],
        usage: "/switch ROOM|NICK",
        help: "make a room or conversation the current one",
    },
    CommandInfo { names: &["me"], usage: "/me ACTION", help: "send an action (\"* alice waves\")" },
    CommandInfo { names: &["rooms", "list"], usage: "/rooms", help: "list the rooms on the server" },
    CommandInfo { names: &["users"], usage: "/users", help: "list who is online" },
    CommandInfo { names: &["names"], usage: "/names [ROOM]", help: "list who is in a room" },
    CommandInfo { names: &["topic"], usage: "/topic [ROOM] [TEXT]", help: "show or set a room's topic" },
    CommandInfo { names: &["nick"], usage: "/nick NAME", help: "change your nick" },
    CommandInfo { names: &["away"], usage: "/away [REASON]", help: "mark yourself away, or back without a reason" },
    CommandInfo { names: &["whois"], usage: "/whois NICK", help: "show who someone is" },
    CommandInfo {
        names: &["register"],
        usage: "/register [ACCOUNT] [PASSWORD]",
        help: "create an account for your nick and log in",
    },
    CommandInfo { names: &["login"], usage: "/login [ACCOUNT] [PASSWORD]", help: "log in to your account" },
    CommandInfo { names: &["logout"], usage: "/logout", help: "log out (reconnects as a guest)" },
    CommandInfo { names: &["history"], usage: "/history [COUNT]", help: "show older messages here" },
    CommandInfo { names: &["typing"], usage: "/typing active|paused|done", help: "tell others you are typing" },
    CommandInfo {
        names: &["kick"],
        usage: "/kick NICK [REASON]",
        help: "remove someone from the current room (operators)",
    },
    CommandInfo { names: &["invite"], usage: "/invite NICK [ROOM]", help: "invite someone to a room" },
    CommandInfo { names: &["mode"], usage: "/mode [TARGET] MODES [ARGS]", help: "show or change modes" },
    CommandInfo { names: &["raw", "quote"], usage: "/raw LINE", help: "send a raw IRC line" },
    CommandInfo {
        names: &["verify"],
        usage: "/verify NICK [confirm]",
        help: "show the end-to-end safety number; confirm once it matches",
    },
    CommandInfo { names: &["trust"], usage: "/trust NICK", help: "accept a contact's new or changed devices" },
    CommandInfo {
        names: &["discover"],
        usage: "/discover [PORT]",
        help: "list chinwag servers on the local network (PORT: their discovery port, default 12348)",
    },
    CommandInfo { names: &["connect"], usage: "/connect N", help: "switch to server N of the /discover list" },
    CommandInfo { names: &["log"], usage: "/log [on|off]", help: "keep local chat logs, or stop (plaintext files)" },
    CommandInfo { names: &["clear"], usage: "/clear", help: "clear the screen" },
    CommandInfo { names: &["help"], usage: "/help", help: "this list" },
    CommandInfo { names: &["quit", "exit"], usage: "/quit [MESSAGE]", help: "leave chinwag" },
];

/// The commands that work without `/` in scriptable mode with `--bare-commands`: the seeds'
/// REPL commands and `say`, each only in its own shape (see `bare_form_fits`). Others always
/// need their `/`, so that ordinary sentences ("history is fun") stay text.
pub const BARE: &[&str] = &[
    "register", "login", "logout", "users", "msg", "whisper", "rooms", "list", "join", "room_msg", "leave", "part",
    "help", "clear", "quit", "exit", "say",
];

/// How many messages `/history` fetches without a count.
pub const DEFAULT_HISTORY: usize = 50;

/// Parses one input line. Lines starting with `/` are commands (`//text` sends `/text`); with
/// `bare` (scriptable mode's `--bare-commands`), a line in the shape of a bare command is one
/// too. Anything
/// else is text for the current room. Empty lines give `None`.
pub fn parse(line: &str, bare: bool) -> Result<Option<Command>, CommandError> {
    let line = line.trim_end_matches(['\r', '\n']);
    if line.trim().is_empty() {
        return Ok(None);
    }
    if let Some(rest) = line.strip_prefix('/') {
        if rest.starts_with('/') {
            return Ok(Some(Command::Say(rest.to_owned())));
        }
        return parse_command(rest).map(Some);
    }
    if bare {
        let word = line.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
        if BARE.contains(&word.as_str()) && bare_form_fits(line) {
            // "join" alone is a usage error, but "leave it to me" is a sentence: a bare form
            // that does not parse as its command is text.
            return Ok(Some(parse_command(line.trim_start()).unwrap_or_else(|_| Command::Say(line.to_owned()))));
        }
    }
    Ok(Some(Command::Say(line.to_owned())))
}

/// Whether a line starting with a bare command word has that command's shape, so a sentence
/// that happens to start with one stays text even with bare commands on: `quit` and `users`
/// take nothing ("quit smoking is hard" is chat), `leave` at most a `#room` ("leave me alone"
/// is chat).
fn bare_form_fits(line: &str) -> bool {
    let words: Vec<&str> = line.split_whitespace().collect();
    let Some(first) = words.first() else { return false };
    match first.to_ascii_lowercase().as_str() {
        "users" | "rooms" | "list" | "logout" | "help" | "clear" | "quit" | "exit" => words.len() == 1,
        "leave" | "part" => words.len() == 1 || (words.len() == 2 && words[1].starts_with('#')),
        "join" => words.len() <= 3,
        "register" | "login" => words.len() <= 3,
        _ => true,
    }
}

/// The table entry for a command name or alias.
pub fn find(name: &str) -> Option<&'static CommandInfo> {
    COMMANDS.iter().find(|c| c.names.contains(&name))
}

/// Adds a `#` to a room name given without one.
pub fn room_name(name: &str) -> String {
    if name.starts_with('#') {
        name.to_owned()
    } else {
        format!("#{name}")
    }
}

/// Splits off the first word; the rest keeps its inner spacing.
fn word(s: &str) -> (Option<&str>, &str) {
    let s = s.trim_start();
    if s.is_empty() {
        return (None, "");
    }
    match s.split_once(' ') {
        Some((w, rest)) => (Some(w), rest),
        None => (Some(s), ""),
    }
}

fn non_empty(s: &str) -> Option<String> {
    let s = s.trim();
    (!s.is_empty()).then(|| s.to_owned())
}

fn parse_command(text: &str) -> Result<Command, CommandError> {
    let (name, rest) = word(text);
    let name = name.unwrap_or("").to_ascii_lowercase();
    let info = find(&name).ok_or_else(|| CommandError::Unknown(name.clone()))?;
    let usage = CommandError::Usage(info.usage);
    let (first, after) = word(rest);
    let command = match info.names[0] {
        "join" => {
            let rooms: Vec<String> = first.ok_or(usage)?.split(',').filter(|r| !r.is_empty()).map(room_name).collect();
            let key = word(after).0.map(str::to_owned);
            Command::Join { rooms, key }
        }
        "leave" => match first {
            Some(r) if r.starts_with('#') => Command::Part { room: Some(r.to_owned()), reason: non_empty(after) },
            _ => Command::Part { room: None, reason: non_empty(rest) },
        },
        "msg" if first == Some("--clear") => {
            let (target, text) = word(after);
            let (Some(target), Some(text)) = (target, non_empty(text)) else { return Err(usage) };
            Command::ClearMsg { target: target.to_owned(), text }
        }
        "msg" => {
            let target = first.ok_or(usage)?.to_owned();
            match (name.as_str(), non_empty(after)) {
                (_, Some(_)) => Command::Msg { target, text: after.to_owned() },
                _ => Command::Query(target),
            }
        }
        "say" if rest.trim().is_empty() => return Err(usage),
        "say" => Command::Say(rest.to_owned()),
        "switch" => Command::Switch(first.ok_or(usage)?.to_owned()),
        "me" => Command::Me(non_empty(rest).ok_or(usage)?),
        "rooms" => Command::Rooms,
        "users" => Command::Users,
        "names" => Command::Names(first.map(room_name)),
        "topic" => match first {
            Some(r) if r.starts_with('#') => Command::Topic { room: Some(r.to_owned()), topic: non_empty(after) },
            _ => Command::Topic { room: None, topic: non_empty(rest) },
        },
        "nick" => Command::Nick(first.ok_or(usage)?.to_owned()),
        "away" => Command::Away(non_empty(rest)),
        "whois" => Command::Whois(first.ok_or(usage)?.to_owned()),
        "register" | "login" => {
            let (second, _) = word(after);
            // One word is a password when the account is implied by the nick, unless it is
            // the only thing given to `login` (which then reads the password from the env).
            let (account, password) = match (first, second) {
                (Some(a), Some(p)) => (Some(a.to_owned()), Some(p.to_owned())),
                (Some(one), None) if info.names[0] == "register" => (None, Some(one.to_owned())),
                (Some(one), None) => (Some(one.to_owned()), None),
                (None, _) => (None, None),
            };
            if info.names[0] == "register" {
                Command::Register { account, password }
            } else {
                Command::Login { account, password }
            }
        }
        "logout" => Command::Logout,
        "discover" => {
            Command::Discover(first.map(|p| p.parse::<u16>().ok().filter(|&p| p > 0).ok_or(usage)).transpose()?)
        }
        "verify" => Command::Verify { nick: first.ok_or(usage)?.to_owned(), confirm: word(after).0 == Some("confirm") },
        "trust" => Command::Trust(first.ok_or(usage)?.to_owned()),
        "log" => Command::Log(match first.map(str::to_ascii_lowercase).as_deref() {
            None => None,
            Some("on") => Some(true),
            Some("off") => Some(false),
            Some(_) => return Err(usage),
        }),
        "connect" => Command::Connect(first.and_then(|n| n.parse::<usize>().ok()).filter(|&n| n > 0).ok_or(usage)?),
        "history" => Command::History {
            limit: first.map(|n| n.parse::<usize>().map_err(|_| usage)).transpose()?.unwrap_or(DEFAULT_HISTORY),
        },
        "typing" => Command::Typing(first.and_then(TypingState::parse).ok_or(usage)?),
        "kick" => {
            let (nick, room, reason) = match first {
                Some(r) if r.starts_with('#') => {
                    let (nick, reason) = word(after);
                    (nick.ok_or(usage)?, Some(r.to_owned()), reason)
                }
                Some(nick) => (nick, None, after),
                None => return Err(usage),
            };
            Command::Kick { room, nick: nick.to_owned(), reason: non_empty(reason) }
        }
        "invite" => Command::Invite { nick: first.ok_or(usage)?.to_owned(), room: word(after).0.map(room_name) },
        "mode" => {
            let mut args: Vec<String> = rest.split_whitespace().map(str::to_owned).collect();
            if args.first().is_none_or(|a| a.starts_with(['+', '-'])) {
                Command::Mode { target: None, args }
            } else {
                let target = args.remove(0);
                Command::Mode { target: Some(target), args }
            }
        }
        "raw" => Command::Raw(non_empty(rest).ok_or(usage)?),
        "clear" => Command::Clear,
        "help" => Command::Help,
        "quit" => Command::Quit(non_empty(rest)),
        _ => return Err(CommandError::Unknown(name)),
    };
    Ok(command)
}

/// The help text: one line per command.
pub fn help_lines() -> Vec<String> {
    COMMANDS
        .iter()
        .map(|c| {
            let aliases =
                if c.names.len() > 1 { format!(" (also /{})", c.names[1..].join(", /")) } else { String::new() };
            format!("{:<32} {}{}", c.usage, c.help, aliases)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Command {
        parse(line, true).expect("parses").expect("not empty")
    }

    #[test]
    fn seeds_bare_forms_and_slash_forms() {
        assert_eq!(p("msg bob Hello Bob!"), Command::Msg { target: "bob".into(), text: "Hello Bob!".into() });
        assert_eq!(p("/whisper bob hi"), Command::Msg { target: "bob".into(), text: "hi".into() });
        assert_eq!(p("join general"), Command::Join { rooms: vec!["#general".into()], key: None });
        assert_eq!(
            p("/join #a,b key"),
            Command::Join { rooms: vec!["#a".into(), "#b".into()], key: Some("key".into()) }
        );
        assert_eq!(p("room_msg Hello everyone!"), Command::Say("Hello everyone!".into()));
        assert_eq!(p("say help me"), Command::Say("help me".into()));
        assert_eq!(p("leave"), Command::Part { room: None, reason: None });
        assert_eq!(
            p("/part #tech bye now"),
            Command::Part { room: Some("#tech".into()), reason: Some("bye now".into()) }
        );
        assert_eq!(
            p("register alice pw12345678"),
            Command::Register { account: Some("alice".into()), password: Some("pw12345678".into()) }
        );
        assert_eq!(p("/register secretpw"), Command::Register { account: None, password: Some("secretpw".into()) });
        assert_eq!(p("login alice"), Command::Login { account: Some("alice".into()), password: None });
        assert_eq!(p("users"), Command::Users);
        assert_eq!(p("list"), Command::Rooms);
        assert_eq!(p("exit"), Command::Quit(None));
        assert_eq!(p("/mode +o bob"), Command::Mode { target: None, args: vec!["+o".into(), "bob".into()] });
        assert_eq!(p("/kick bob spam"), Command::Kick { room: None, nick: "bob".into(), reason: Some("spam".into()) });
        assert_eq!(p("/typing paused"), Command::Typing(TypingState::Paused));
        assert_eq!(p("/history 5"), Command::History { limit: 5 });
        assert_eq!(p("/query bob"), Command::Query("bob".into()));
        assert_eq!(p("/log on"), Command::Log(Some(true)));
        assert_eq!(p("/log"), Command::Log(None));
        assert_eq!(parse("/log maybe", false), Err(CommandError::Usage("/log [on|off]")));
        assert_eq!(p("//not a command"), Command::Say("/not a command".into()));
        assert_eq!(p("hello there"), Command::Say("hello there".into()));
    }

    #[test]
    fn discover_takes_an_optional_discovery_port() {
        assert_eq!(p("/discover"), Command::Discover(None));
        assert_eq!(p("/discover 12399"), Command::Discover(Some(12399)));
        for wrong in ["/discover 0", "/discover 70000", "/discover lan"] {
            assert_eq!(parse(wrong, false), Err(CommandError::Usage("/discover [PORT]")), "{wrong}");
        }
    }

    #[test]
    fn bare_forms_only_in_scriptable_mode_and_errors_say_why() {
        assert_eq!(parse("join general", false), Ok(Some(Command::Say("join general".into()))));
        assert_eq!(parse("   ", true), Ok(None));
        assert_eq!(parse("/frobnicate", true), Err(CommandError::Unknown("frobnicate".into())));
        assert_eq!(parse("/join", true), Err(CommandError::Usage("/join ROOM [KEY]")));
        assert_eq!(parse("join", true), Ok(Some(Command::Say("join".into()))));
        assert_eq!(parse("history is fun", true), Ok(Some(Command::Say("history is fun".into()))));
        assert_eq!(parse("typing this", true), Ok(Some(Command::Say("typing this".into()))));
        assert_eq!(parse("/typing maybe", true), Err(CommandError::Usage("/typing active|paused|done")));
        assert_eq!(help_lines().len(), COMMANDS.len());
    }

    #[test]
    fn ordinary_text_is_never_a_command_and_bare_forms_need_their_shape() {
        let say = |t: &str| Ok(Some(Command::Say(t.into())));
        for text in ["leave me alone", "quit smoking is hard", "msg one in general", "join general", "help"] {
            assert_eq!(parse(text, false), say(text), "without --bare-commands");
        }
        for text in
            ["leave me alone", "quit smoking is hard", "users are great", "list of things", "join us for lunch today"]
        {
            assert_eq!(parse(text, true), say(text), "with --bare-commands");
        }
        assert_eq!(
            parse("leave #general", true),
            Ok(Some(Command::Part { room: Some("#general".into()), reason: None }))
        );
        assert_eq!(parse("quit", true), Ok(Some(Command::Quit(None))));
        assert_eq!(parse("/quit smoking is hard", false), Ok(Some(Command::Quit(Some("smoking is hard".into())))));
        assert_eq!(
            parse("/msg one in general", false),
            Ok(Some(Command::Msg { target: "one".into(), text: "in general".into() }))
        );
    }
}
