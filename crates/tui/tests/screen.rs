//! The full-screen client without a terminal: events and keys go into an `App`, and the screen
//! is drawn on ratatui's `TestBackend` and compared with text snapshots.

use std::time::{Duration, Instant};

use chinwag_client::event::{ChatMessage, RoomInfo};
use chinwag_client::tls::Trust;
use chinwag_client::{Command, Event, MessageKind, Security, TlsInfo, TypingState};
use chinwag_tui::app::{Action, App, HISTORY_PAGE};
use chinwag_tui::view::{self, Zone};
use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const FINGERPRINT: &str = "AA:BB";

fn fixed_clock() -> String {
    "2026-11-29T09:00:00.000Z".into()
}

fn message(conversation: &str, from: &str, text: &str, time: &str, mention: bool) -> Event {
    Event::Message(ChatMessage {
        time: time.into(),
        conversation: conversation.into(),
        from: from.into(),
        text: text.into(),
        kind: MessageKind::Privmsg,
        own: from == "alice",
        history: false,
        msgid: None,
        mention,
    })
}

/// alice in #general with bob and carol, a topic, a day change, and an unread mention in #tech.
fn scene(now: Instant) -> App {
    let mut app = App::new("chat.example:6697", Security::Tls, "alice");
    app.clock = fixed_clock;
    app.zone = Zone::Utc;
    let events = vec![
        Event::Connected {
            server: "chat.example:6697".into(),
            security: Security::Tls,
            tls: Some(TlsInfo { fingerprint: FINGERPRINT.into(), trust: Trust::Pinned }),
        },
        Event::Ready { nick: "alice".into() },
        Event::Lag { ms: 12 },
        Event::Joined { room: "#general".into(), nick: "alice".into(), own: true },
        Event::Members { room: "#general".into(), members: vec!["carol".into(), "@alice".into(), "bob".into()] },
        Event::Topic { room: "#general".into(), topic: "Be nice".into(), by: None },
        message("#general", "bob", "late last night", "2026-11-28T23:59:00.000Z", false),
        message("#general", "bob", "morning alice!", "2026-11-29T08:30:00.000Z", true),
        message("#general", "alice", "hi bob", "2026-11-29T08:31:00.000Z", false),
        Event::Joined { room: "#tech".into(), nick: "alice".into(), own: true },
        message("#tech", "carol", "alice: ping", "2026-11-29T08:32:00.000Z", true),
        Event::Typing { conversation: "#general".into(), nick: "bob".into(), state: TypingState::Active },
    ];
    for e in events {
        app.apply(e, now);
    }
    app
}

fn render(app: &mut App, width: u16, height: u16, now: Instant) -> Vec<String> {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|f| view::draw(f, app, now)).expect("draw");
    let buffer = terminal.backend().buffer().clone();
    (0..height)
        .map(|y| {
            let mut row = String::new();
            let mut x = 0;
            while x < width {
                let symbol = buffer[(x, y)].symbol();
                row.push_str(symbol);
                x += unicode_width::UnicodeWidthStr::width(symbol).max(1) as u16;
            }
            row.trim_end().to_owned()
        })
        .collect()
}

fn key(code: KeyCode) -> KeyEvent {
    KeyEvent::new(code, KeyModifiers::NONE)
}

fn type_text(app: &mut App, text: &str, now: Instant) -> Vec<Action> {
    text.chars().flat_map(|c| app.key(key(KeyCode::Char(c)), now)).collect()
}

#[test]
fn the_screen_shows_rooms_unread_members_messages_typing_and_status() {
    let now = Instant::now();
    let mut app = scene(now);
    let screen = render(&mut app, 90, 14, now);
    let expected = [
        "┌rooms─────────────┐┌#general: Be nice─────────────────────────────────┐┌3 members───────┐",
        "│1 status          ││                                                  ││@alice          │",
        "│2 #general        ││                                                  ││bob             │",
        "│3 #tech (1)       ││─── 2026-11-28 ───                                ││carol           │",
        "│                  ││23:59 <bob> late last night                       ││                │",
        "│                  ││─── 2026-11-29 ───                                ││                │",
        "│                  ││08:30 <bob> morning alice!                        ││                │",
        "│                  ││08:31 <alice> hi bob                              ││                │",
        "│                  ││09:00 -- --> alice joined #general                ││                │",
        "│                  ││09:00 -- topic: Be nice                           ││                │",
        "└──────────────────┘└──────────────────────────────────────────────────┘└────────────────┘",
        "bob is typing…",
        "[#general]",
        " 🔒 tls (pinned) │ chat.example:6697 │ alice │ connected │ lag 12 ms",
    ];
    assert_eq!(screen, expected, "\n{}", screen.join("\n"));
}

#[test]
fn a_narrow_terminal_hides_the_side_panes_and_long_lines_wrap_between_words() {
    let now = Instant::now();
    let mut app = scene(now);
    app.apply(
        message("#general", "bob", "a rather long message which must wrap", "2026-11-29T08:40:00.000Z", false),
        now,
    );
    let screen = render(&mut app, 40, 9, now);
    // bob's message ends his typing indicator.
    let expected = [
        "┌#general: Be nice─────────────────────┐",
        "│08:40 <bob> a rather long message     │",
        "│      which must wrap                 │",
        "│09:00 -- --> alice joined #general    │",
        "│09:00 -- topic: Be nice               │",
        "└──────────────────────────────────────┘",
        "",
        "[#general]",
        " 🔒 tls (pinned) │ chat.example:6697 │ a",
    ];
    assert_eq!(screen, expected, "\n{}", screen.join("\n"));
}

#[test]
fn switching_buffers_clears_unread_and_tells_the_session() {
    let now = Instant::now();
    let mut app = scene(now);
    assert_eq!(app.buffers[2].unread, 1);
    assert!(app.buffers[2].mention);
    let actions = app.key(KeyEvent::new(KeyCode::Char('n'), KeyModifiers::CONTROL), now);
    assert_eq!(actions, [Action::Send(Command::Switch("#tech".into()))]);
    assert_eq!(app.current_buffer().name, "#tech");
    assert_eq!((app.buffers[2].unread, app.buffers[2].mention), (0, false));
    let screen = render(&mut app, 90, 14, now);
    assert!(screen[3].contains("│3 #tech "), "{}", screen.join("\n"));
    assert!(screen.iter().any(|l| l.contains("08:32 <carol> alice: ping")), "{}", screen.join("\n"));
}

#[test]
fn typing_goes_out_by_the_spec_and_incoming_typing_expires() {
    let now = Instant::now();
    let mut app = scene(now);
    assert_eq!(app.typing_line(now).as_deref(), Some("bob is typing…"));
    assert_eq!(app.typing_line(now + Duration::from_secs(7)), None, "active lasts 6 s");
    app.apply(message("#general", "bob", "done typing", "2026-11-29T08:50:00.000Z", false), now);
    assert_eq!(app.typing_line(now), None, "a message ends the indicator");

    let actions = type_text(&mut app, "hello", now);
    assert_eq!(actions, [Action::Send(Command::Typing(TypingState::Active))]);
    assert!(app.tick(now + Duration::from_secs(1)).is_empty());
    assert_eq!(app.tick(now + Duration::from_secs(5)), [Action::Send(Command::Typing(TypingState::Paused))]);
    for _ in 0..5 {
        app.key(key(KeyCode::Backspace), now + Duration::from_secs(6));
    }
    let cleared = app.key(key(KeyCode::Backspace), now + Duration::from_secs(6));
    assert!(cleared.is_empty(), "{cleared:?}");
}

#[test]
fn enter_sends_text_and_commands_and_hides_passwords() {
    let now = Instant::now();
    let mut app = scene(now);
    type_text(&mut app, "two\nlines", now);
    assert_eq!(app.key(key(KeyCode::Enter), now), [Action::Send(Command::Say("two\nlines".into()))]);
    type_text(&mut app, "/join #rust", now);
    let join = app.key(key(KeyCode::Enter), now);
    assert_eq!(join, [Action::Send(Command::Join { rooms: vec!["#rust".into()], key: None })]);

    type_text(&mut app, "/login alice s3cret-pw", now);
    let screen = render(&mut app, 90, 14, now);
    assert!(screen[12].contains("/login ***** *********"), "{}", screen[12]);
    let login = app.key(key(KeyCode::Enter), now);
    assert_eq!(
        login,
        [Action::Send(Command::Login { account: Some("alice".into()), password: Some("s3cret-pw".into()) })]
    );
    app.key(key(KeyCode::Up), now);
    assert_eq!(app.input.text(), "/join #rust", "a password line must not be kept in the history");

    app.input.submit();
    type_text(&mut app, "/clear", now);
    app.key(key(KeyCode::Enter), now);
    assert!(app.current_buffer().lines.is_empty());
}

#[test]
fn page_up_at_the_top_asks_for_older_history_once() {
    let now = Instant::now();
    let mut app = scene(now);
    render(&mut app, 90, 14, now);
    let first = app.key(key(KeyCode::PageUp), now);
    assert_eq!(first, [Action::Send(Command::History { limit: HISTORY_PAGE })]);
    assert!(app.key(key(KeyCode::PageUp), now).is_empty(), "asked twice while loading");
    let older = message("#general", "dave", "from long ago", "2026-11-01T10:00:00.000Z", false);
    let Event::Message(mut m) = older else { unreachable!() };
    m.history = true;
    app.apply(Event::Message(m), now);
    app.apply(Event::HistoryEnd { conversation: "#general".into(), count: 1, older: true }, now);
    assert_eq!(app.current_buffer().lines[0].time, "2026-11-01T10:00:00.000Z", "history goes in time order");
    app.key(key(KeyCode::PageDown), now);
    app.key(key(KeyCode::PageDown), now);
    assert_eq!(app.current_buffer().scroll, 0);
}

#[test]
fn room_lists_and_errors_show_in_the_current_buffer() {
    let now = Instant::now();
    let mut app = scene(now);
    app.apply(Event::Rooms { rooms: vec![RoomInfo { name: "#tech".into(), users: 3, topic: "Rust".into() }] }, now);
    app.apply(Event::Error { text: "No such nick".into() }, now);
    app.apply(Event::Disconnected { reason: "connection reset".into() }, now);
    let screen = render(&mut app, 90, 14, now);
    let text = screen.join("\n");
    assert!(text.contains("-- #tech (3) Rust"), "{text}");
    assert!(text.contains("!! No such nick"), "{text}");
    assert!(text.contains("disconnected: connection reset"), "{text}");
    assert!(screen[1].contains("│1 status"), "{text}");
    assert!(!text.contains("@alice"), "members are unknown while disconnected:\n{text}");
}

#[test]
fn times_convert_to_the_local_zone_and_keep_unparsable_ones() {
    assert_eq!(view::day_and_clock("2026-11-29T23:59:00.000Z", Zone::Utc), ("2026-11-29".into(), "23:59".into()));
    assert_eq!(view::day_and_clock("nonsense", Zone::Local), ("nonsense".into(), "nonsense".into()));
    let (day, time) = view::day_and_clock("2026-11-29T12:00:00.000Z", Zone::Local);
    assert_eq!((day.len(), time.len()), (10, 5), "{day} {time}");
}

#[test]
fn a_word_longer_than_a_row_is_cut_and_nothing_is_lost() {
    let now = Instant::now();
    let mut app = scene(now);
    let url = format!("https://example.org/{}", "x".repeat(60));
    app.apply(message("#general", "bob", &url, "2026-11-29T08:45:00.000Z", false), now);
    let screen = render(&mut app, 40, 12, now);
    let inner: Vec<String> = screen
        .iter()
        .filter(|l| l.starts_with('│'))
        .map(|l| l.trim_start_matches('│').trim_end_matches('│').trim().to_owned())
        .collect();
    let joined: String = inner.iter().skip_while(|l| !l.contains("<bob> https")).map(|l| l.as_str()).collect();
    assert!(joined.contains(&url), "{}", screen.join("\n"));
}

#[test]
fn being_kicked_closes_the_room_and_says_who_and_why() {
    let now = Instant::now();
    let mut app = scene(now);
    let kick = Event::Kicked {
        room: "#general".into(),
        nick: "alice".into(),
        by: "bob".into(),
        reason: Some("spam".into()),
        own: true,
    };
    app.apply(kick, now);
    assert!(app.buffers.iter().all(|b| b.name != "#general"));
    let screen = render(&mut app, 90, 14, now).join("\n");
    assert!(screen.contains("!! bob kicked you from #general (spam)"), "{screen}");
}

/// What another user (or a hostile server) can put in any text: a clear-screen CSI, an OSC
/// title change ended by BEL, a C1 CSI and a right-to-left override.
const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;pwned\u{7}\u{9b}31m\u{202e}olleh";
/// The same, as the screen must show it.
const SHOWN: &str = "␛[2J␛]0;pwned␇[U+009B]31m[U+202E]olleh";

/// No cell of the screen holds anything a terminal would obey or that reorders a line.
fn assert_inert(terminal: &Terminal<TestBackend>) {
    for (i, cell) in terminal.backend().buffer().content.iter().enumerate() {
        let symbol = cell.symbol();
        assert!(!symbol.chars().any(chinwag_client::neutral::needs_neutralising), "cell {i} holds {symbol:?}");
    }
}

#[test]
fn text_from_the_network_is_shown_not_obeyed_in_every_pane() {
    let now = Instant::now();
    let mut app = scene(now);
    // The room's name, its topic (title), a member and someone typing (a server other than
    // chinwag may send any nick), then reasons and replies in the message pane.
    let room = format!("#r{}", "\u{202e}");
    let odd = "e\u{202e}ve";
    let events = vec![
        Event::Joined { room: room.clone(), nick: "alice".into(), own: true },
        Event::Switched { target: room.clone() },
        Event::Members { room: room.clone(), members: vec!["@alice".into(), odd.into()] },
        Event::Topic { room: room.clone(), topic: HOSTILE.into(), by: None },
        Event::Typing { conversation: room.clone(), nick: odd.into(), state: TypingState::Active },
        Event::Info { text: format!("bob is Bob {HOSTILE}") },
        Event::Away { nick: "bob".into(), reason: Some(HOSTILE.into()) },
        Event::Parted { room: room.clone(), nick: "carol".into(), reason: Some(HOSTILE.into()), own: false },
        Event::Kicked {
            room: room.clone(),
            nick: "dave".into(),
            by: "bob".into(),
            reason: Some(HOSTILE.into()),
            own: false,
        },
        Event::Quit { nick: "erin".into(), reason: Some(HOSTILE.into()), rooms: vec![room.clone()] },
        Event::Error { text: HOSTILE.into() },
    ];
    for e in events {
        app.apply(e, now);
    }
    assert_eq!(app.current_buffer().name, room, "the buffer keeps the room's real name, to send back");
    let (width, height) = (150, 20);
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("a test terminal");
    terminal.draw(|f| view::draw(f, &mut app, now)).expect("draw");
    assert_inert(&terminal);
    let screen = render(&mut app, width, height, now);
    let text = screen.join("\n");
    assert!(screen[0].contains(&format!("#r[U+202E]: {SHOWN}")), "topic in the title:\n{text}");
    assert!(text.contains("│4 #r[U+202E]"), "room in the buffer list:\n{text}");
    assert!(text.contains("│e[U+202E]ve"), "member list:\n{text}");
    assert!(text.contains("e[U+202E]ve is typing…"), "typing line:\n{text}");
    assert!(screen[height as usize - 2].starts_with("[#r[U+202E]]"), "input prompt:\n{text}");
    for line in [
        format!("-- topic: {SHOWN}"),
        format!("-- bob is Bob {SHOWN}"),
        format!("<-- carol left ({SHOWN})"),
        format!("<-- dave was kicked by bob ({SHOWN})"),
        format!("<-- erin quit ({SHOWN})"),
        format!("!! {SHOWN}"),
    ] {
        assert!(text.contains(&line), "{line:?} not on screen:\n{text}");
    }

    // The away reason goes to the status buffer; a disconnection's reason to the status bar.
    app.apply(Event::Disconnected { reason: HOSTILE.into() }, now);
    app.key(KeyEvent::new(KeyCode::Char('1'), KeyModifiers::ALT), now);
    terminal.draw(|f| view::draw(f, &mut app, now)).expect("draw");
    assert_inert(&terminal);
    let text = render(&mut app, width, height, now).join("\n");
    assert!(text.contains(&format!("bob is away: {SHOWN}")), "{text}");
    assert!(text.lines().last().is_some_and(|l| l.contains(&format!("disconnected: {SHOWN}"))), "{text}");
}

#[test]
fn a_pasted_escape_is_shown_and_the_cursor_stays_after_it() {
    let now = Instant::now();
    let mut app = scene(now);
    app.paste("a\u{1b}[2J\u{202e}b", now);
    app.key(key(KeyCode::Left), now);
    let mut terminal = Terminal::new(TestBackend::new(90, 14)).expect("a test terminal");
    terminal.draw(|f| view::draw(f, &mut app, now)).expect("draw");
    assert_inert(&terminal);
    let screen = render(&mut app, 90, 14, now);
    assert_eq!(screen[12], "[#general] a␛[2J[U+202E]b");
    // The cursor sits on the `b`, after the stand-ins of what comes before it.
    let cursor = terminal.get_cursor_position().expect("a cursor");
    assert_eq!((cursor.x, cursor.y), ("[#general] a␛[2J[U+202E]".chars().count() as u16, 12));
}

#[test]
fn kicks_names_and_server_notices_read_as_what_they_are() {
    let now = Instant::now();
    let mut app = scene(now);
    let events = [
        Event::Kicked {
            room: "#general".into(),
            nick: "bob".into(),
            by: "alice".into(),
            reason: Some("spam".into()),
            own: false,
        },
        Event::Kicked { room: "#general".into(), nick: "carol".into(), by: "dave".into(), reason: None, own: false },
        Event::Names { room: "#general".into(), names: vec!["alice".into(), "+erin".into(), "@dave".into()] },
        Event::Notice { from: "irc.example".into(), text: "restarting soon".into() },
    ];
    for e in events {
        app.apply(e, now);
    }
    let screen = render(&mut app, 90, 9, now);
    let expected = [
        "┌rooms─────────────┐┌#general: Be nice─────────────────────────────────┐┌1 member────────┐",
        "│1 status          ││09:00 -- <-- you kicked bob from #general (spam)  ││@alice          │",
        "│2 #general        ││09:00 -- <-- carol was kicked by dave             ││                │",
        "│3 #tech (1)       ││09:00 -- 3 names in #general: @dave +erin alice   ││                │",
        "│                  ││09:00 -irc.example- restarting soon               ││                │",
        "└──────────────────┘└──────────────────────────────────────────────────┘└────────────────┘",
        "bob is typing…",
        "[#general]",
        " 🔒 tls (pinned) │ chat.example:6697 │ alice │ connected │ lag 12 ms",
    ];
    assert_eq!(screen, expected, "\n{}", screen.join("\n"));
    // The server's notice is drawn in its own colour, not the grey of the client's lines.
    let mut terminal = Terminal::new(TestBackend::new(90, 9)).expect("a test terminal");
    terminal.draw(|f| view::draw(f, &mut app, now)).expect("draw");
    let cell = &terminal.backend().buffer()[(28, 4)];
    assert_eq!((cell.symbol(), cell.fg), ("i", ratatui::style::Color::LightCyan));
}

#[test]
fn irc_formatting_is_drawn_as_styles_and_other_controls_still_shown() {
    use ratatui::style::{Color, Modifier};
    let now = Instant::now();
    let mut app = scene(now);
    let text = "\u{2}bold\u{2} \u{3}04,01red\u{3} \u{1d}it\u{f} \u{16}rev\u{16} \u{4}00ff00hex\u{f} \u{3}52x\u{7}";
    app.apply(message("#general", "bob", text, "2026-11-29T08:40:00.000Z", false), now);
    app.apply(Event::Topic { room: "#general".into(), topic: "\u{2}Be\u{2} nice".into(), by: None }, now);
    let mut terminal = Terminal::new(TestBackend::new(90, 9)).expect("a test terminal");
    terminal.draw(|f| view::draw(f, &mut app, now)).expect("draw");
    let screen = render(&mut app, 90, 9, now);
    let row = screen.iter().position(|r| r.contains("<bob> bold")).unwrap_or_else(|| panic!("{screen:#?}"));
    assert!(screen[row].contains("08:40 <bob> bold red it rev hex x␇"), "{}", screen[row]);
    assert!(screen.iter().any(|r| r.contains("-- topic: Be nice")), "{screen:#?}");
    assert!(screen[0].contains("#general: Be nice─"), "{}", screen[0]);
    let cells = terminal.backend().buffer();
    let at = |word: &str| {
        let col = screen[row].find(word).map(|b| screen[row][..b].chars().count()).expect("on the row");
        cells[(col as u16, row as u16)].clone()
    };
    assert!(at("bold").modifier.contains(Modifier::BOLD));
    assert!(!at("red").modifier.contains(Modifier::BOLD));
    assert_eq!((at("red").fg, at("red").bg), (Color::LightRed, Color::Black));
    assert!(at("it").modifier.contains(Modifier::ITALIC));
    assert!(at("rev").modifier.contains(Modifier::REVERSED));
    assert_eq!(at("hex").fg, Color::Rgb(0, 255, 0));
    assert_eq!(at("x␇").fg, Color::Rgb(0xff, 0, 0));
    assert_eq!(at("x␇").modifier, Modifier::empty());
}

#[test]
fn help_opens_its_own_window_with_the_keys_and_the_conversation_stays_as_it_was() {
    let now = Instant::now();
    let mut app = scene(now);
    let before = app.current_buffer().lines.clone();
    type_text(&mut app, "/help", now);
    assert_eq!(app.key(key(KeyCode::Enter), now), []);
    assert_eq!(app.current_buffer().name, "*help*");
    let screen = render(&mut app, 90, 90, now).join("\n");
    assert!(screen.contains("/join ROOM"), "commands:\n{screen}");
    assert!(screen.contains("Alt-1 … Alt-9"), "keys:\n{screen}");
    assert!(screen.contains("Ctrl-C"), "keys:\n{screen}");
    assert!(screen.contains("│4 *help*"), "{screen}");
    // Text typed here is not sent anywhere; a second /help does not grow the window.
    let lines = app.current_buffer().lines.len();
    type_text(&mut app, "/help", now);
    app.key(key(KeyCode::Enter), now);
    assert_eq!(app.current_buffer().lines.len(), lines);
    type_text(&mut app, "hello", now);
    assert_eq!(app.key(key(KeyCode::Enter), now), []);
    // The conversation is one key away, as it was.
    app.key(KeyEvent::new(KeyCode::Char('2'), KeyModifiers::ALT), now);
    assert_eq!(app.current_buffer().name, "#general");
    assert_eq!(app.current_buffer().lines, before);
}

#[test]
fn connection_news_lusers_and_the_motd_go_to_the_status_window() {
    let now = Instant::now();
    let mut app = scene(now);
    let before = app.current_buffer().lines.clone();
    let events = [
        Event::Status { text: "There are 3 users and 0 invisible on 1 server".into() },
        Event::Status { text: "- Welcome to chat.example".into() },
        Event::Disconnected { reason: "connection reset".into() },
        Event::Reconnecting { delay_ms: 1_500 },
        Event::ConnectFailed {
            server: "chat.example:6697".into(),
            reason: "cannot reach chat.example:6697: connection refused".into(),
        },
        Event::Reconnecting { delay_ms: 3_000 },
        Event::Connected { server: "chat.example:6697".into(), security: Security::Tls, tls: None },
        Event::Notice { from: "chat.example".into(), text: "*** checking your address".into() },
        Event::Ready { nick: "alice".into() },
    ];
    for e in events {
        app.apply(e, now);
    }
    assert_eq!(app.current_buffer().name, "#general");
    let added: Vec<_> = app.current_buffer().lines[before.len()..].to_vec();
    assert_eq!(added.len(), 1, "only the disconnection marks the conversation: {added:?}");
    app.key(KeyEvent::new(KeyCode::Char('1'), KeyModifiers::ALT), now);
    let screen = render(&mut app, 90, 20, now).join("\n");
    for line in [
        "-- There are 3 users and 0 invisible on 1 server",
        "-- - Welcome to chat.example",
        "-- reconnecting in 1.5 s",
        "!! cannot reach chat.example:6697: connection refused",
        "-chat.example- *** checking your address",
    ] {
        assert!(screen.contains(line), "{line:?} not in the status window:\n{screen}");
    }
}

#[test]
fn tab_completes_rooms_the_server_listed_not_only_joined_ones() {
    let now = Instant::now();
    let mut app = scene(now);
    let listed =
        ["#random", "#rust", "#tech"].map(|name| RoomInfo { name: name.into(), users: 1, topic: String::new() });
    app.apply(Event::Rooms { rooms: listed.to_vec() }, now);
    type_text(&mut app, "see #ra", now);
    app.key(key(KeyCode::Tab), now);
    assert_eq!(app.input.text(), "see #random ");
    app.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL), now);
    type_text(&mut app, "/join r", now);
    app.key(key(KeyCode::Tab), now);
    assert_eq!(app.input.text(), "/join #random ");
    app.key(key(KeyCode::Tab), now);
    assert_eq!(app.input.text(), "/join #rust ");
    // A room both joined and listed is offered once.
    app.key(KeyEvent::new(KeyCode::Char('u'), KeyModifiers::CONTROL), now);
    type_text(&mut app, "#te", now);
    app.key(key(KeyCode::Tab), now);
    app.key(key(KeyCode::Tab), now);
    assert_eq!(app.input.text(), "#tech ");
}

#[test]
fn a_multiline_message_is_drawn_as_its_lines() {
    let now = Instant::now();
    let mut app = scene(now);
    app.apply(message("#general", "bob", "def f():\n    return 1", "2026-11-29T08:40:00.000Z", false), now);
    let screen = render(&mut app, 90, 14, now);
    let row = |text: &str| screen.iter().position(|r| r.contains(text));
    let (first, second) = (row("08:40 <bob> def f():"), row("08:40 <bob>     return 1"));
    assert!(first.is_some() && second == first.map(|r| r + 1), "\n{}", screen.join("\n"));
    assert!(!screen.iter().any(|r| r.contains('\u{240a}')), "no line break is shown as a control");
}
