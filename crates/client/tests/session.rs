//! The session state machine, lines in and lines out, with a hand-turned clock: registration
//! with CAP and SASL, rejoin and gap fill after a reconnect, messages kept while disconnected,
//! lag and dead-connection detection, history de-duplication.

use std::time::{Duration, Instant};

use chinwag_client::session::{PING_INTERVAL, PING_TIMEOUT};
use chinwag_client::{Command, Credentials, Event, Phase, Session, SessionConfig, TypingState};
use chinwag_proto::Message;

fn config(credentials: Option<Credentials>) -> SessionConfig {
    SessionConfig {
        nick: "alice".into(),
        realname: "Alice".into(),
        credentials,
        server_password: None,
        passwords_allowed: true,
        rooms: vec!["general".into()],
        join_context: 0,
        keepalive: Default::default(),
    }
}

/// Everything the session wants to send, as wire lines.
fn sent(s: &mut Session) -> Vec<String> {
    std::iter::from_fn(|| s.poll_send()).map(|m| m.to_line()).collect()
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn feed(s: &mut Session, now: Instant, lines: &[&str]) {
    for line in lines {
        s.receive(Message::parse(line).expect("test lines parse"), now);
    }
}

const ALL_CAPS: &str =
    ":srv CAP * LS :server-time message-tags echo-message batch draft/chathistory sasl=PLAIN away-notify";

/// Connects and registers without SASL; returns the session ready and drained.
fn ready(now: Instant) -> Session {
    let mut s = Session::new(config(None));
    s.connected(now);
    sent(&mut s);
    feed(&mut s, now, &[ALL_CAPS]);
    sent(&mut s);
    feed(
        &mut s,
        now,
        &[":srv CAP alice ACK :server-time message-tags echo-message batch draft/chathistory away-notify"],
    );
    assert_eq!(sent(&mut s), ["CAP END"]);
    feed(&mut s, now, &[":srv 001 alice :Welcome"]);
    s
}

#[test]
fn registration_negotiates_caps_and_logs_in_with_sasl_plain() {
    let now = Instant::now();
    let creds = Credentials { account: "alice".into(), password: "hunter22".into() };
    let mut s = Session::new(config(Some(creds)));
    s.connected(now);
    assert_eq!(sent(&mut s), ["CAP LS 302", "NICK alice", "USER alice 0 * Alice"]);
    feed(&mut s, now, &[":srv CAP * LS * :server-time message-tags", ":srv CAP * LS :sasl=PLAIN echo-message"]);
    let req = sent(&mut s);
    assert_eq!(req.len(), 1);
    assert!(req[0].starts_with("CAP REQ :") && req[0].contains("sasl") && req[0].contains("echo-message"), "{req:?}");
    feed(&mut s, now, &[":srv CAP alice ACK :server-time message-tags echo-message sasl"]);
    assert_eq!(sent(&mut s), ["AUTHENTICATE PLAIN"]);
    feed(&mut s, now, &["AUTHENTICATE +"]);
    // base64("\0alice\0hunter22")
    assert_eq!(sent(&mut s), ["AUTHENTICATE AGFsaWNlAGh1bnRlcjIy"]);
    feed(&mut s, now, &[":srv 900 alice alice!a@h alice :You are now logged in", ":srv 903 alice :SASL ok"]);
    assert_eq!(sent(&mut s), ["CAP END"]);
    feed(&mut s, now, &[":srv 001 alice :Welcome"]);
    assert_eq!(s.phase(), Phase::Ready);
    assert_eq!(sent(&mut s), ["JOIN #general"]);
    let ev = events(&mut s);
    assert!(ev.contains(&Event::LoggedIn { account: "alice".into() }), "{ev:?}");
    assert!(ev.contains(&Event::Ready { nick: "alice".into() }), "{ev:?}");
}

#[test]
fn a_failed_sasl_login_still_registers_and_says_why() {
    let now = Instant::now();
    let creds = Credentials { account: "alice".into(), password: "wrong".into() };
    let mut s = Session::new(config(Some(creds)));
    s.connected(now);
    feed(&mut s, now, &[ALL_CAPS, ":srv CAP alice ACK :sasl", "AUTHENTICATE +"]);
    sent(&mut s);
    feed(&mut s, now, &[":srv 904 alice :SASL authentication failed: Invalid account name or password"]);
    assert_eq!(sent(&mut s), ["CAP END"]);
    assert!(events(&mut s).iter().any(|e| matches!(e, Event::Error { text } if text.contains("Invalid account"))));
}

#[test]
fn a_taken_nick_during_registration_gets_an_underscore() {
    let now = Instant::now();
    let mut s = Session::new(config(None));
    s.connected(now);
    sent(&mut s);
    feed(&mut s, now, &[":srv 433 * alice :Nickname is already in use"]);
    assert_eq!(sent(&mut s), ["NICK alice_"]);
}

#[test]
fn after_a_reconnect_it_rejoins_sends_what_waited_and_asks_for_the_gap() {
    let now = Instant::now();
    let mut s = ready(now);
    assert_eq!(sent(&mut s), ["JOIN #general"]);
    feed(
        &mut s,
        now,
        &[
            ":alice!a@h JOIN #general",
            "@msgid=m1;time=2026-11-29T10:00:00.000Z :bob!b@h PRIVMSG #general :hello",
            "@msgid=d1;time=2026-11-29T10:00:01.000Z :bob!b@h PRIVMSG alice :psst",
        ],
    );
    sent(&mut s);
    events(&mut s);

    s.disconnected("connection reset");
    s.command(Command::Say("typed while away".into()));
    assert!(sent(&mut s).is_empty(), "nothing may be sent while disconnected");
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::Info { text } if text.contains("once connected"))), "{ev:?}");

    s.connected(now);
    sent(&mut s);
    feed(&mut s, now, &[ALL_CAPS, ":srv CAP alice ACK :server-time message-tags echo-message batch draft/chathistory"]);
    sent(&mut s);
    feed(&mut s, now, &[":srv 001 alice :Welcome"]);
    assert_eq!(
        sent(&mut s),
        ["JOIN #general", "CHATHISTORY AFTER bob msgid=d1 100", "PRIVMSG #general :typed while away"]
    );
    feed(&mut s, now, &[":alice!a@h JOIN #general"]);
    assert_eq!(sent(&mut s), ["CHATHISTORY AFTER #general msgid=m1 100"]);

    // The batch replays one message already seen live and one that is new.
    feed(
        &mut s,
        now,
        &[
            ":srv BATCH +h1 chathistory #general",
            "@batch=h1;msgid=m1;time=2026-11-29T10:00:00.000Z :bob!b@h PRIVMSG #general :hello",
            "@batch=h1;msgid=m2;time=2026-11-29T10:05:00.000Z :bob!b@h PRIVMSG #general :while you were out",
            ":srv BATCH -h1",
        ],
    );
    let messages: Vec<_> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(m) => Some(m),
            _ => None,
        })
        .collect();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert_eq!(messages[0].text, "while you were out");
    assert!(messages[0].history);
}

#[test]
fn too_many_unsent_messages_are_reported_and_the_rest_abandoned_at_exit() {
    let now = Instant::now();
    let mut s = ready(now);
    s.disconnected("gone");
    for i in 0..=chinwag_client::session::MAX_UNSENT {
        s.command(Command::Say(format!("m{i}")));
    }
    let refused = events(&mut s).into_iter().filter(|e| matches!(e, Event::NotSent { .. })).count();
    assert_eq!(refused, 1);
    s.abandon_unsent("quit");
    let abandoned = events(&mut s).into_iter().filter(|e| matches!(e, Event::NotSent { .. })).count();
    assert_eq!(abandoned, chinwag_client::session::MAX_UNSENT);
}

#[test]
fn pings_measure_lag_and_a_silent_server_is_declared_dead() {
    let t0 = Instant::now();
    let mut s = ready(t0);
    sent(&mut s);
    events(&mut s);
    assert!(s.tick(t0));
    assert!(sent(&mut s).is_empty(), "pinged right after connecting");
    let t0 = t0 + PING_INTERVAL;
    assert!(s.tick(t0));
    let ping = sent(&mut s);
    assert_eq!(ping.len(), 1);
    let token = ping[0].strip_prefix("PING ").expect("a PING").to_owned();
    feed(&mut s, t0 + Duration::from_millis(42), &[&format!(":srv PONG srv {token}")]);
    assert!(events(&mut s).contains(&Event::Lag { ms: 42 }));
    assert!(s.tick(t0 + PING_INTERVAL / 2));
    assert!(sent(&mut s).is_empty(), "pinged again too soon");
    let t1 = t0 + PING_INTERVAL;
    assert!(s.tick(t1));
    assert_eq!(sent(&mut s).len(), 1);
    assert!(s.tick(t1 + PING_TIMEOUT - Duration::from_secs(1)));
    assert!(!s.tick(t1 + PING_TIMEOUT), "no PONG for PING_TIMEOUT must end the connection");
}

#[test]
fn server_pings_are_answered_and_typing_and_actions_are_understood() {
    let now = Instant::now();
    let mut s = ready(now);
    sent(&mut s);
    feed(&mut s, now, &["PING :abc"]);
    assert_eq!(sent(&mut s), ["PONG abc"]);
    feed(
        &mut s,
        now,
        &[
            "@+typing=active :bob!b@h TAGMSG #general",
            ":bob!b@h PRIVMSG #general :\u{1}ACTION waves\u{1}",
            ":bob!b@h PRIVMSG #general :hi alice!",
        ],
    );
    let ev = events(&mut s);
    assert!(ev.contains(&Event::Typing {
        conversation: "#general".into(),
        nick: "bob".into(),
        state: TypingState::Active
    }));
    assert!(ev
        .iter()
        .any(|e| matches!(e, Event::Message(m) if m.text == "waves" && m.kind == chinwag_client::MessageKind::Action)));
    assert!(ev.iter().any(|e| matches!(e, Event::Message(m) if m.text == "hi alice!" && m.mention)));
    s.command(Command::Typing(TypingState::Paused));
    assert_eq!(sent(&mut s), ["@+typing=paused TAGMSG #general"]);
}

#[test]
fn long_and_multi_line_text_is_split_to_fit_a_line() {
    let now = Instant::now();
    let mut s = ready(now);
    sent(&mut s);
    let long = "word ".repeat(200);
    s.command(Command::Say(format!("first line\n{long}")));
    let lines = sent(&mut s);
    assert!(lines.len() >= 3, "{lines:?}");
    assert_eq!(lines[0], "PRIVMSG #general :first line");
    assert!(lines.iter().all(|l| l.len() + 2 + 120 <= 512), "{lines:?}");
}

#[test]
fn no_password_is_sent_where_passwords_are_not_allowed() {
    let now = Instant::now();
    let creds = Credentials { account: "alice".into(), password: "hunter22".into() };
    let mut cfg = config(Some(creds));
    cfg.passwords_allowed = false;
    cfg.server_password = Some("letmein".into());
    let mut s = Session::new(cfg);
    s.connected(now);
    feed(&mut s, now, &[ALL_CAPS]);
    let lines = sent(&mut s);
    assert!(lines.iter().all(|l| !l.contains("letmein") && !l.contains("sasl") && !l.starts_with("PASS")), "{lines:?}");
    assert!(events(&mut s).iter().any(|e| matches!(e, Event::Error { text } if text.contains("not encrypted"))));
    feed(&mut s, now, &[":srv 001 alice :Welcome"]);
    s.command(Command::Register { account: None, password: Some("hunter22".into()) });
    s.command(Command::Login { account: None, password: Some("hunter22".into()) });
    assert!(sent(&mut s).iter().all(|l| !l.contains("hunter22")));
    let refusals =
        events(&mut s).iter().filter(|e| matches!(e, Event::Error { text } if text.contains("plaintext"))).count();
    assert_eq!(refusals, 2);
}

#[test]
fn a_server_password_goes_first_and_credentials_never_show_in_debug_output() {
    let now = Instant::now();
    let creds = Credentials { account: "alice".into(), password: "hunter22".into() };
    let mut cfg = config(Some(creds.clone()));
    cfg.server_password = Some("letmein".into());
    let mut s = Session::new(cfg);
    s.connected(now);
    let debug_before = format!("{s:?}");
    assert_eq!(sent(&mut s), ["CAP LS 302", "PASS letmein", "NICK alice", "USER alice 0 * Alice"]);
    assert!(!debug_before.contains("letmein"), "{debug_before}");
    let debug = format!("{creds:?} {s:?}");
    assert!(!debug.contains("hunter22") && !debug.contains("letmein"), "{debug}");
}

#[test]
fn short_and_odd_lines_from_the_server_never_panic() {
    let now = Instant::now();
    let commands = [
        "PING",
        "PONG",
        "CAP",
        "AUTHENTICATE",
        "001",
        "900",
        "901",
        "903",
        "904",
        "433",
        "JOIN",
        "PART",
        "KICK",
        "QUIT",
        "NICK",
        "353",
        "366",
        "332",
        "TOPIC",
        "PRIVMSG",
        "NOTICE",
        "TAGMSG",
        "AWAY",
        "BATCH",
        "321",
        "322",
        "323",
        "352",
        "315",
        "REGISTER",
        "FAIL",
        "WARN",
        "ERROR",
        "MODE",
        "INVITE",
        "401",
        "311",
        "999",
        "FOO",
    ];
    let params = ["", " *", " * LS", " * LS *", " #r", " #r :", " alice", " +x", " -x", " :\u{1}ACTION", " a b c d e"];
    let sources = ["", ":srv ", ":alice!a@h ", ":bob!b@h ", "@batch=x;msgid=;+typing=bogus :bob!b@h "];
    for phase in 0..2 {
        let mut s = if phase == 0 { Session::new(config(None)) } else { ready(now) };
        if phase == 0 {
            s.connected(now);
        }
        for source in sources {
            for command in commands {
                for param in params {
                    if let Ok(msg) = Message::parse(&format!("{source}{command}{param}")) {
                        s.receive(msg, now);
                    }
                }
            }
        }
        sent(&mut s);
        events(&mut s);
    }
}

#[test]
fn the_gap_starts_where_the_connection_dropped_and_full_pages_ask_for_more() {
    let now = Instant::now();
    let mut s = ready(now);
    feed(&mut s, now, &[":alice!a@h JOIN #general", "@msgid=m1 :bob!b@h PRIVMSG #general :before"]);
    sent(&mut s);
    events(&mut s);
    s.disconnected("gone");
    s.connected(now);
    feed(
        &mut s,
        now,
        &[ALL_CAPS, ":srv CAP alice ACK :message-tags echo-message batch draft/chathistory", ":srv 001 alice :hi"],
    );
    sent(&mut s);
    // A live line arrives before our JOIN is confirmed; the gap still starts at m1.
    feed(&mut s, now, &["@msgid=m9 :bob!b@h PRIVMSG #general :live", ":alice!a@h JOIN #general"]);
    assert_eq!(sent(&mut s), ["CHATHISTORY AFTER #general msgid=m1 100"]);

    // A full page (100, one of them already seen live) asks for the next one.
    let mut page = vec![":srv BATCH +p chathistory #general".to_owned()];
    for i in 0..100 {
        let id = if i == 50 { "m9".to_owned() } else { format!("h{i}") };
        page.push(format!("@batch=p;msgid={id} :bob!b@h PRIVMSG #general :old {i}"));
    }
    page.push(":srv BATCH -p".into());
    let page: Vec<&str> = page.iter().map(String::as_str).collect();
    feed(&mut s, now, &page);
    assert_eq!(sent(&mut s), ["CHATHISTORY AFTER #general msgid=h99 100"]);
    let shown = events(&mut s).iter().filter(|e| matches!(e, Event::Message(_))).count();
    assert_eq!(shown, 1 + 99, "the live line, then the page without its repeat");
}

#[test]
fn history_asks_for_what_is_older_than_the_oldest_line_shown() {
    let now = Instant::now();
    let mut s = ready(now);
    feed(&mut s, now, &[":alice!a@h JOIN #general", "@msgid=m5 :bob!b@h PRIVMSG #general :five"]);
    sent(&mut s);
    s.command(Command::History { limit: 2 });
    assert_eq!(sent(&mut s), ["CHATHISTORY BEFORE #general msgid=m5 2"]);
    feed(
        &mut s,
        now,
        &[
            ":srv BATCH +o chathistory #general",
            "@batch=o;msgid=m3 :bob!b@h PRIVMSG #general :three",
            "@batch=o;msgid=m4 :bob!b@h PRIVMSG #general :four",
            ":srv BATCH -o",
        ],
    );
    assert!(events(&mut s).contains(&Event::HistoryEnd { conversation: "#general".into(), count: 2, older: true }));
    s.command(Command::History { limit: 2 });
    assert_eq!(sent(&mut s), ["CHATHISTORY BEFORE #general msgid=m3 2"]);
}

/// The members of `room` from the last `Members` event among `events`.
fn last_members(events: &[Event], room: &str) -> Vec<String> {
    let found = events.iter().rev().find_map(|e| match e {
        Event::Members { room: r, members } if r == room => Some(members.clone()),
        _ => None,
    });
    let mut members = found.unwrap_or_else(|| panic!("no member list for {room} in {events:?}"));
    members.sort();
    members
}

#[test]
fn operators_and_voiced_members_keep_their_nicks_and_follow_mode_changes() {
    let now = Instant::now();
    let mut s = ready(now);
    feed(
        &mut s,
        now,
        &[
            ":alice!a@h JOIN #general",
            ":srv 353 alice = #general :@dave +erin frank @+gina!g@host alice",
            ":srv 366 alice #general :End of /NAMES list.",
        ],
    );
    assert_eq!(last_members(&events(&mut s), "#general"), ["+erin", "@+gina", "@dave", "alice", "frank"]);
    feed(
        &mut s,
        now,
        &[":dave!d@h MODE #general +ov-v frank frank erin", ":dave!d@h MODE #general -o+b dave *!*@spam"],
    );
    assert_eq!(last_members(&events(&mut s), "#general"), ["@+frank", "@+gina", "alice", "dave", "erin"]);
}

fn texts(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Info { text } | Event::Error { text } => Some(text.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn whois_and_away_replies_read_as_sentences() {
    let now = Instant::now();
    let mut s = ready(now);
    events(&mut s);
    feed(
        &mut s,
        now,
        &[
            ":srv 311 alice bob b host.example * :Bob Smith",
            ":srv 312 alice bob irc.example :chinwag",
            ":srv 301 alice bob :gone fishing",
            ":srv 317 alice bob 3725 1795424400 :seconds idle, signon time",
            ":srv 317 alice carol 1 1795424400 :seconds idle, signon time",
            ":srv 319 alice bob :@#general #tech",
            ":srv 330 alice bob bobby :is logged in as",
            ":srv 318 alice bob :End of /WHOIS list.",
            ":srv 401 alice zed :No such nick/channel",
        ],
    );
    assert_eq!(
        texts(&events(&mut s)),
        [
            "bob is b@host.example (Bob Smith)",
            "bob is on irc.example (chinwag)",
            "bob is away: gone fishing",
            "bob has been idle 1 hour 2 minutes, signed on 2026-11-23 09:00 UTC",
            "carol has been idle 1 second, signed on 2026-11-23 09:00 UTC",
            "bob is in @#general #tech",
            "bob is logged in as bobby",
            "zed: No such nick/channel",
        ]
    );
}

#[test]
fn names_typed_by_the_user_are_shown_for_joined_and_other_rooms() {
    let now = Instant::now();
    let mut s = ready(now);
    feed(
        &mut s,
        now,
        &[":alice!a@h JOIN #general", ":srv 353 alice = #general :@dave alice", ":srv 366 alice #general :End"],
    );
    events(&mut s);
    sent(&mut s);
    s.command(Command::Names(None));
    s.command(Command::Names(Some("#other".into())));
    assert_eq!(sent(&mut s), ["NAMES #general", "NAMES #other"]);
    feed(
        &mut s,
        now,
        &[
            ":srv 353 alice = #general :@dave alice +erin",
            ":srv 366 alice #general :End",
            ":srv 353 alice = #other :zoe @yan",
            ":srv 366 alice #other :End",
        ],
    );
    let names: Vec<(String, Vec<String>)> = events(&mut s)
        .into_iter()
        .filter_map(|e| match e {
            Event::Names { room, mut names } => {
                names.sort();
                Some((room, names))
            }
            _ => None,
        })
        .collect();
    let expected = [
        ("#general".to_owned(), vec!["+erin".to_owned(), "@dave".into(), "alice".into()]),
        ("#other".to_owned(), vec!["@yan".to_owned(), "zoe".into()]),
    ];
    assert_eq!(names, expected);
    // A NAMES nobody typed (after a join) only updates the member list.
    feed(&mut s, now, &[":srv 353 alice = #general :alice", ":srv 366 alice #general :End"]);
    assert!(!events(&mut s).iter().any(|e| matches!(e, Event::Names { .. })));
}

#[test]
fn server_and_service_notices_are_told_apart_from_the_clients_own_lines() {
    let now = Instant::now();
    let mut s = ready(now);
    events(&mut s);
    feed(
        &mut s,
        now,
        &[
            ":irc.example NOTICE alice :server restarting soon",
            ":NickServ!services@irc.example NOTICE alice :You are now identified",
            "NOTICE * :*** no source",
        ],
    );
    let expected = [
        Event::Notice { from: "irc.example".into(), text: "server restarting soon".into() },
        Event::Notice { from: "NickServ".into(), text: "You are now identified".into() },
        Event::Notice { from: "server".into(), text: "*** no source".into() },
    ];
    assert_eq!(events(&mut s), expected);
    assert_eq!(expected[0].plain().as_deref(), Some("-irc.example- server restarting soon"));
}

#[test]
fn lusers_and_the_motd_are_the_servers_news_not_a_conversations() {
    let now = Instant::now();
    let mut s = ready(now);
    events(&mut s);
    feed(
        &mut s,
        now,
        &[
            ":srv 251 alice :There are 3 users and 0 invisible on 1 servers",
            ":srv 252 alice 1 :operator(s) online",
            ":srv 375 alice :- srv Message of the day -",
            ":srv 372 alice :- be nice",
            ":srv 376 alice :End of /MOTD command.",
            ":srv 422 alice :MOTD File is missing",
        ],
    );
    let expected: Vec<Event> =
        ["There are 3 users and 0 invisible on 1 servers", "1 operator(s) online", "- be nice", "MOTD File is missing"]
            .into_iter()
            .map(|text| Event::Status { text: text.into() })
            .collect();
    assert_eq!(events(&mut s), expected);
}

#[test]
fn commands_given_before_the_connection_is_up_wait_for_it_in_order() {
    let now = Instant::now();
    let mut s = Session::new(config(None));
    s.command(Command::Register { account: None, password: Some("correct-horse".into()) });
    s.command(Command::Rooms);
    s.command(Command::Whois("bob".into()));
    s.command(Command::Say("hello".into()));
    let waiting = events(&mut s);
    assert!(!waiting.iter().any(|e| matches!(e, Event::Error { .. })), "{waiting:?}");
    assert_eq!(sent(&mut s), Vec::<String>::new());
    s.connected(now);
    feed(&mut s, now, &[":srv CAP * LS :batch"]);
    sent(&mut s);
    feed(&mut s, now, &[":srv CAP alice ACK :batch", ":srv 001 alice :Welcome"]);
    let lines = sent(&mut s);
    let after_welcome: Vec<&str> = lines.iter().map(String::as_str).skip_while(|l| *l != "JOIN #general").collect();
    assert_eq!(
        after_welcome,
        ["JOIN #general", "PRIVMSG #general hello", "REGISTER alice * correct-horse", "LIST", "WHOIS bob"],
        "{lines:?}"
    );
}

#[test]
fn held_commands_are_bounded_and_reported_when_the_client_gives_up() {
    let mut s = Session::new(config(None));
    for _ in 0..chinwag_client::session::MAX_HELD_COMMANDS {
        s.command(Command::Rooms);
    }
    events(&mut s);
    s.command(Command::Users);
    let refused = events(&mut s);
    assert!(
        matches!(refused.as_slice(), [Event::Error { text }] if text.contains("/users was not sent")),
        "{refused:?}"
    );
    s.abandon_unsent("chinwag stopped");
    let abandoned = events(&mut s);
    assert_eq!(abandoned.len(), chinwag_client::session::MAX_HELD_COMMANDS);
    assert!(matches!(&abandoned[0], Event::Error { text } if text == "/rooms was not sent: chinwag stopped"));
}

/// base64 of a SASL payload line, decoded.
fn sasl_payload(line: &str) -> String {
    use base64::Engine;
    let b64 = line.strip_prefix("AUTHENTICATE ").expect("an AUTHENTICATE line");
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).expect("base64");
    String::from_utf8(bytes).expect("UTF-8")
}

fn encode(text: &str) -> String {
    use base64::Engine;
    format!("AUTHENTICATE {}", base64::engine::general_purpose::STANDARD.encode(text))
}

const SCRAM_CAPS: &str = ":srv CAP * LS :server-time sasl=PLAIN,SCRAM-SHA-256,EXTERNAL";

/// A session that has sent its SCRAM proof; returns it with the combined nonce.
fn scram_until_the_proof(now: Instant) -> (Session, String) {
    let creds = Credentials { account: "alice".into(), password: "hunter22".into() };
    let mut s = Session::new(config(Some(creds)));
    s.connected(now);
    sent(&mut s);
    feed(&mut s, now, &[SCRAM_CAPS]);
    assert_eq!(sent(&mut s), ["CAP REQ :server-time sasl"]);
    feed(&mut s, now, &[":srv CAP alice ACK :server-time sasl"]);
    assert_eq!(sent(&mut s), ["AUTHENTICATE SCRAM-SHA-256"], "SCRAM is preferred when offered");
    feed(&mut s, now, &["AUTHENTICATE +"]);
    let first = sent(&mut s);
    assert_eq!(first.len(), 1, "{first:?}");
    let first = sasl_payload(&first[0]);
    let nonce = first.strip_prefix("n,,n=alice,r=").expect("client-first").to_owned();
    assert!(nonce.len() >= 16, "{first}");
    let nonce = format!("{nonce}srvpart");
    feed(&mut s, now, &[&encode(&format!("r={nonce},s=c2FsdHNhbHQ=,i=4096"))]);
    let last = sent(&mut s);
    assert_eq!(last.len(), 1, "{last:?}");
    let last = sasl_payload(&last[0]);
    assert!(last.starts_with(&format!("c=biws,r={nonce},p=")), "{last}");
    assert!(!first.contains("hunter22") && !last.contains("hunter22"), "the password was sent");
    (s, nonce)
}

#[test]
fn scram_is_preferred_and_a_forged_server_signature_stops_the_session() {
    let now = Instant::now();
    let (mut s, _) = scram_until_the_proof(now);
    use base64::Engine;
    let forged = base64::engine::general_purpose::STANDARD.encode([9u8; 32]);
    feed(&mut s, now, &[&encode(&format!("v={forged}"))]);
    let out = sent(&mut s);
    assert_eq!(out[0], "AUTHENTICATE *", "{out:?}");
    assert!(out.iter().any(|l| l.starts_with("QUIT")), "{out:?}");
    assert!(s.is_quitting());
    // Whatever the server says next, the session does not believe it is logged in.
    feed(&mut s, now, &[":srv 900 alice alice!a@h alice :You are now logged in", ":srv 903 alice :SASL ok"]);
    let ev = events(&mut s);
    assert!(
        ev.iter().any(
            |e| matches!(e, Event::Fatal { text } if text.contains("could not prove that it knows your password"))
        ),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::LoggedIn { .. })), "{ev:?}");
}

#[test]
fn a_login_announced_without_the_scram_server_signature_is_refused() {
    let now = Instant::now();
    let (mut s, _) = scram_until_the_proof(now);
    feed(&mut s, now, &[":srv 900 alice alice!a@h alice :You are now logged in", ":srv 903 alice :SASL ok"]);
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::Fatal { text } if text.contains("without proving"))), "{ev:?}");
    assert!(!ev.iter().any(|e| matches!(e, Event::LoggedIn { .. })), "{ev:?}");
    assert!(s.is_quitting());
}

#[test]
fn a_scram_failure_before_the_proof_falls_back_to_plain_and_after_it_does_not() {
    let now = Instant::now();
    let creds = Credentials { account: "alice".into(), password: "hunter22".into() };
    let mut s = Session::new(config(Some(creds)));
    s.connected(now);
    sent(&mut s);
    feed(&mut s, now, &[SCRAM_CAPS, ":srv CAP alice ACK :server-time sasl", "AUTHENTICATE +"]);
    sent(&mut s);
    // An account from before the server kept SCRAM credentials.
    feed(&mut s, now, &[":srv 904 alice :SASL authentication failed: this account has no SCRAM credentials yet"]);
    assert_eq!(sent(&mut s), ["AUTHENTICATE PLAIN"]);
    feed(&mut s, now, &["AUTHENTICATE +"]);
    assert_eq!(sent(&mut s), ["AUTHENTICATE AGFsaWNlAGh1bnRlcjIy"]);
    feed(&mut s, now, &[":srv 900 alice alice!a@h alice :You are now logged in", ":srv 903 alice :SASL ok"]);
    assert_eq!(sent(&mut s), ["CAP END"]);
    assert!(events(&mut s).contains(&Event::LoggedIn { account: "alice".into() }));

    // A wrong password is a failure after the proof: said, and not tried again.
    let (mut s, _) = scram_until_the_proof(now);
    feed(&mut s, now, &[":srv 904 alice :SASL authentication failed: Invalid account name or password"]);
    assert_eq!(sent(&mut s), ["CAP END"]);
    let ev = events(&mut s);
    assert!(ev.iter().any(|e| matches!(e, Event::Error { text } if text.contains("Invalid account"))), "{ev:?}");
}

#[test]
fn credentials_typed_in_the_session_are_kept_once_the_server_accepts_them() {
    let now = Instant::now();
    let mut s = ready(now);
    sent(&mut s);
    assert!(s.credentials().is_none());
    // A refused /register keeps nothing; an accepted /login does (the driver opens the
    // account's E2E device with it).
    s.command(Command::Register { account: None, password: Some("pw-one-two-three".into()) });
    assert_eq!(sent(&mut s), ["REGISTER alice * pw-one-two-three"]);
    feed(&mut s, now, &[":srv FAIL REGISTER ACCOUNT_EXISTS alice :Account already exists"]);
    assert!(s.credentials().is_none());
    s.command(Command::Login { account: Some("alice".into()), password: Some("pw-one-two-three".into()) });
    assert!(s.credentials().is_none(), "not before the server says so");
    feed(&mut s, now, &[":srv 900 alice alice!u@h alice :You are now logged in as alice"]);
    let c = s.credentials().expect("kept");
    assert_eq!((c.account.as_str(), c.password.as_str()), ("alice", "pw-one-two-three"));
    assert!(events(&mut s).contains(&Event::LoggedIn { account: "alice".into() }));
    s.command(Command::Logout);
    assert!(s.credentials().is_none());
}
