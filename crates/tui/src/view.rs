//! Drawing an [`App`] with ratatui: the buffer list on the left, messages in the middle, the
//! room's members on the right, then who is typing, the input line and the status bar.
//! Drawing never changes the state except for remembering the page height.
//!
//! Text from the network (topics, nicks, room names, reasons, server replies) is shown, never
//! obeyed: every string this file hands to ratatui is made by [`span`] (or [`wrap`], which
//! calls it), which passes it through [`neutralise`]. That is done here, where text becomes
//! ratatui spans, and not when events arrive: the [`App`] keeps what the server sent because
//! room names and nicks are identifiers it sends back (switching buffers, Tab completion), and
//! a stand-in would name a different room. [`draw`] ends with a sweep of the frame that drops
//! any control or bidi character still in a cell, so a widget added later without [`span`]
//! loses the character instead of handing it to the terminal.

use std::time::Instant;

use chinwag_client::event::{clock, split_member};
use chinwag_client::format::{segments, strip_formatting, Colour, Format, EXTENDED};
use chinwag_client::neutral::{needs_neutralising, neutralise};
use chinwag_client::{MessageKind, Security};
use ratatui::buffer::Buffer as Cells;
use ratatui::layout::{Constraint, Direction, Layout, Position, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line as TextLine, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph};
use ratatui::Frame;
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

use crate::app::{App, Buffer, Connection, Line, LineKind};
use crate::input::is_secret;

/// Width of the buffer list.
const SIDEBAR: u16 = 20;
/// Width of the member list.
const MEMBERS: u16 = 18;
/// Below this width the side panes are hidden.
const NARROW: u16 = 70;
/// Nick colours: distinct on dark and light backgrounds, chosen by a hash of the nick so a
/// person keeps their colour everywhere and across runs.
const NICK_COLOURS: [Color; 10] = [
    Color::Red,
    Color::Green,
    Color::Yellow,
    Color::Blue,
    Color::Magenta,
    Color::Cyan,
    Color::LightRed,
    Color::LightGreen,
    Color::LightBlue,
    Color::LightMagenta,
];

/// Which clock times are shown in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Zone {
    /// The user's time zone (`TZ`, else the system's).
    Local,
    /// UTC, as the server sends it (tests use this so snapshots do not depend on the machine).
    Utc,
}

/// The day (`YYYY-MM-DD`) and the time (`HH:MM`) of an RFC 3339 instant in `zone`. A time that
/// does not parse is shown as it came.
pub fn day_and_clock(time: &str, zone: Zone) -> (String, String) {
    match (zone, chrono::DateTime::parse_from_rfc3339(time)) {
        (Zone::Local, Ok(t)) => {
            let local = t.with_timezone(&chrono::Local);
            (local.format("%Y-%m-%d").to_string(), local.format("%H:%M").to_string())
        }
        _ => (time.get(..10).unwrap_or(time).to_owned(), clock(time).to_owned()),
    }
}

/// The colour of a nick: FNV-1a of its lower-case form.
pub fn nick_colour(nick: &str) -> Color {
    let mut hash: u32 = 0x811c_9dc5;
    for b in nick.to_ascii_lowercase().bytes() {
        hash ^= u32::from(b);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    NICK_COLOURS[hash as usize % NICK_COLOURS.len()]
}

/// Draws the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App, now: Instant) {
    let area = frame.area();
    let input_rows = 1;
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([Constraint::Min(3), Constraint::Length(1), Constraint::Length(input_rows), Constraint::Length(1)])
        .split(area);
    let wide = area.width >= NARROW;
    let show_members = wide && app.current_buffer().is_room();
    let columns = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([
            Constraint::Length(if wide { SIDEBAR } else { 0 }),
            Constraint::Min(10),
            Constraint::Length(if show_members { MEMBERS } else { 0 }),
        ])
        .split(rows[0]);
    if wide {
        draw_buffers(frame, app, columns[0]);
    }
    draw_messages(frame, app, columns[1]);
    if show_members {
        draw_members(frame, app.current_buffer(), columns[2]);
    }
    let typing = app.typing_line(now).unwrap_or_default();
    let typing = span(&typing, Style::default().fg(Color::DarkGray));
    frame.render_widget(Paragraph::new(TextLine::from(typing)), rows[1]);
    draw_input(frame, app, rows[2]);
    draw_status(frame, app, rows[3]);
    sweep(frame.buffer_mut());
}

/// A piece of text for the screen, with what a terminal would obey (or what reorders the line)
/// shown as a visible stand-in: the only way text reaches a widget in this file.
fn span(text: &str, style: Style) -> Span<'static> {
    Span::styled(neutralise(text).into_owned(), style)
}

/// The last guard: a cell that still holds a control or bidi character (a widget that did not
/// use [`span`]) loses it, so it never reaches the terminal.
fn sweep(cells: &mut Cells) {
    for cell in &mut cells.content {
        if cell.symbol().chars().any(needs_neutralising) {
            let kept: String = cell.symbol().chars().filter(|c| !needs_neutralising(*c)).collect();
            cell.set_symbol(if kept.is_empty() { " " } else { &kept });
        }
    }
}

fn draw_buffers(frame: &mut Frame, app: &App, area: Rect) {
    let items: Vec<ListItem> = app
        .buffers
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let mut text = format!("{} {}", i + 1, b.name);
            if b.unread > 0 {
                text.push_str(&format!(" ({})", b.unread));
            }
            let mut style = Style::default();
            if b.mention {
                style = style.fg(Color::Magenta).add_modifier(Modifier::BOLD);
            } else if b.unread > 0 {
                style = style.fg(Color::Yellow);
            }
            if i == app.current {
                style = style.add_modifier(Modifier::REVERSED);
            }
            ListItem::new(TextLine::from(span(&text, Style::default()))).style(style)
        })
        .collect();
    frame.render_widget(List::new(items).block(Block::default().borders(Borders::ALL).title("rooms")), area);
}

fn draw_members(frame: &mut Frame, buffer: &Buffer, area: Rect) {
    let items: Vec<ListItem> = buffer
        .members
        .iter()
        .map(|m| {
            let (prefix, nick) = split_member(m);
            ListItem::new(TextLine::from(vec![
                span(prefix, Style::default().fg(Color::Green)),
                span(nick, Style::default().fg(nick_colour(nick))),
            ]))
        })
        .collect();
    let title = chinwag_client::numeric::count(buffer.members.len(), "member", "members");
    frame.render_widget(List::new(items).block(Block::default().borders(Borders::ALL).title(title)), area);
}

fn draw_messages(frame: &mut Frame, app: &mut App, area: Rect) {
    let buffer = app.current_buffer();
    let mut title = buffer.name.clone();
    if !buffer.topic.is_empty() {
        title.push_str(": ");
        title.push_str(&strip_formatting(&buffer.topic));
    }
    if buffer.scroll > 0 {
        title.push_str(&format!(" [scrolled up {}]", buffer.scroll));
    }
    let block = Block::default().borders(Borders::ALL).title(span(&title, Style::default()));
    let inner = block.inner(area);
    let width = inner.width as usize;
    let height = inner.height as usize;
    // Only as many logical lines as can show are laid out, from the bottom up.
    let end = buffer.lines.len().saturating_sub(buffer.scroll);
    let mut rows: Vec<TextLine<'static>> = Vec::new();
    let mut index = end;
    while index > 0 && rows.len() < height {
        index -= 1;
        let line = &buffer.lines[index];
        let (day, time) = day_and_clock(&line.time, app.zone);
        let mut wrapped = wrap(render_line(line, &time, &app.nick), width, 6);
        let previous_day = index.checked_sub(1).map(|p| day_and_clock(&buffer.lines[p].time, app.zone).0);
        if previous_day.as_deref() != Some(day.as_str()) {
            let text = format!("─── {day} ───");
            wrapped.insert(0, TextLine::from(span(&text, Style::default().fg(Color::DarkGray))));
        }
        wrapped.extend(std::mem::take(&mut rows));
        rows = wrapped;
    }
    let skip = rows.len().saturating_sub(height);
    let mut rows: Vec<TextLine<'static>> = rows.into_iter().skip(skip).collect();
    // The newest line sits at the bottom, next to the input, as in every chat client.
    let blank = height.saturating_sub(rows.len());
    rows.splice(0..0, std::iter::repeat_n(TextLine::default(), blank));
    frame.render_widget(block, area);
    frame.render_widget(Paragraph::new(rows), inner);
    app.page = height.saturating_sub(1).max(1);
}

/// One buffer line as styled pieces, before wrapping.
fn render_line(line: &Line, time: &str, me: &str) -> Vec<(String, Style)> {
    let time = (format!("{time} "), Style::default().fg(Color::DarkGray));
    match &line.kind {
        LineKind::Message { from, text, kind, own, mention } => {
            let mut nick_style = Style::default().fg(nick_colour(from));
            if *own || from.eq_ignore_ascii_case(me) {
                nick_style = nick_style.add_modifier(Modifier::BOLD);
            }
            let text_style = if *mention {
                Style::default().fg(Color::Yellow).add_modifier(Modifier::BOLD)
            } else {
                Style::default()
            };
            match kind {
                MessageKind::Privmsg => vec![
                    time,
                    ("<".into(), Style::default()),
                    (from.clone(), nick_style),
                    ("> ".into(), Style::default()),
                    (text.clone(), text_style),
                ],
                MessageKind::Action => {
                    vec![
                        time,
                        ("* ".into(), Style::default()),
                        (from.clone(), nick_style),
                        (format!(" {text}"), text_style),
                    ]
                }
                MessageKind::Notice => vec![
                    time,
                    ("-".into(), Style::default()),
                    (from.clone(), nick_style),
                    ("- ".into(), Style::default()),
                    (text.clone(), text_style),
                ],
            }
        }
        LineKind::Notice { text } => vec![time, (format!("-- {text}"), Style::default().fg(Color::Gray))],
        LineKind::Error { text } => vec![time, (format!("!! {text}"), Style::default().fg(Color::Red))],
        LineKind::Server { from, text } => vec![
            time,
            (format!("-{from}- "), Style::default().fg(Color::LightCyan).add_modifier(Modifier::BOLD)),
            (text.clone(), Style::default().fg(Color::Cyan)),
        ],
    }
}

/// `base` with an IRC format laid over it.
fn styled(base: Style, format: Format) -> Style {
    let mut style = base;
    for (on, modifier) in [
        (format.bold, Modifier::BOLD),
        (format.italic, Modifier::ITALIC),
        (format.underline, Modifier::UNDERLINED),
        (format.strikethrough, Modifier::CROSSED_OUT),
        (format.reverse, Modifier::REVERSED),
    ] {
        if on {
            style = style.add_modifier(modifier);
        }
    }
    if let Some(fg) = format.fg {
        style = style.fg(colour(fg));
    }
    if let Some(bg) = format.bg {
        style = style.bg(colour(bg));
    }
    style
}

/// An IRC colour on the terminal: the 16 classic ones as the terminal's own palette (so they
/// follow its theme, as irssi and WeeChat do), the extended ones and hex as RGB.
fn colour(c: Colour) -> Color {
    const CLASSIC: [Color; 16] = [
        Color::White,
        Color::Black,
        Color::Blue,
        Color::Green,
        Color::LightRed,
        Color::Red,
        Color::Magenta,
        Color::Yellow,
        Color::LightYellow,
        Color::LightGreen,
        Color::Cyan,
        Color::LightCyan,
        Color::LightBlue,
        Color::LightMagenta,
        Color::DarkGray,
        Color::Gray,
    ];
    match c {
        Colour::Irc(n) if usize::from(n) < CLASSIC.len() => CLASSIC[usize::from(n)],
        Colour::Irc(n) => {
            let rgb = EXTENDED.get(usize::from(n) - CLASSIC.len()).copied().unwrap_or(0xffffff);
            Color::Rgb((rgb >> 16) as u8, (rgb >> 8) as u8, rgb as u8)
        }
        Colour::Rgb(r, g, b) => Color::Rgb(r, g, b),
    }
}

/// Cuts styled pieces into rows of `width` columns, between words where it can (a word longer
/// than a row is cut anywhere); continuation rows start with `indent` spaces so text lines up
/// after the time.
fn wrap(pieces: Vec<(String, Style)>, width: usize, indent: usize) -> Vec<TextLine<'static>> {
    let width = width.max(indent + 4);
    let mut rows = Vec::new();
    let mut row: Vec<Span<'static>> = Vec::new();
    let mut used = 0;
    // IRC formatting becomes styles first; what controls are left are then shown as stand-ins.
    let runs = pieces.iter().flat_map(|(text, style)| {
        segments(text).into_iter().map(|(format, run)| (neutralise(run), styled(*style, format)))
    });
    for (text, style) in runs {
        for word in text.split_inclusive(' ') {
            let word_width: usize = word.trim_end().chars().map(|c| c.width().unwrap_or(0)).sum();
            if used + word_width > width && used > indent && word_width <= width - indent {
                rows.push(TextLine::from(std::mem::take(&mut row)));
                row.push(Span::raw(" ".repeat(indent)));
                used = indent;
            }
            let mut current = String::new();
            for c in word.chars() {
                let w = c.width().unwrap_or(0);
                if used + w > width {
                    if c == ' ' {
                        continue;
                    }
                    if !current.is_empty() {
                        row.push(Span::styled(std::mem::take(&mut current), style));
                    }
                    rows.push(TextLine::from(std::mem::take(&mut row)));
                    row.push(Span::raw(" ".repeat(indent)));
                    used = indent;
                }
                current.push(c);
                used += w;
            }
            if !current.is_empty() {
                row.push(Span::styled(current, style));
            }
        }
    }
    rows.push(TextLine::from(row));
    rows
}

fn draw_input(frame: &mut Frame, app: &App, area: Rect) {
    let prompt = neutralise(&format!("[{}] ", app.current_buffer().name)).into_owned();
    let text = app.input.text();
    let raw: String = if is_secret(text) {
        let mut words = text.splitn(2, ' ');
        let command = words.next().unwrap_or("");
        let rest = words.next().unwrap_or("");
        let masked: String = rest.chars().map(|c| if c == ' ' { ' ' } else { '*' }).collect();
        format!("{command} {masked}")
    } else {
        text.replace('\n', "⏎")
    };
    // A pasted control character is shown as its stand-in too, which may be wider than the
    // character: the cursor goes after the stand-in of what is before it.
    let split = raw.char_indices().nth(app.input.cursor()).map_or(raw.len(), |(i, _)| i);
    let before = neutralise(&raw[..split]);
    let shown = format!("{before}{}", neutralise(&raw[split..]));
    let before_cursor = before.width();
    let prompt_width = prompt.width();
    let room = (area.width as usize).saturating_sub(prompt_width + 1);
    // Scroll the input horizontally so the cursor stays visible.
    let skip_cols = before_cursor.saturating_sub(room);
    let mut skipped = 0;
    let visible: String = shown
        .chars()
        .skip_while(|c| {
            let skip = skipped < skip_cols;
            skipped += c.width().unwrap_or(0);
            skip
        })
        .collect();
    let line = TextLine::from(vec![span(&prompt, Style::default().fg(Color::Cyan)), span(&visible, Style::default())]);
    frame.render_widget(Paragraph::new(line), area);
    let x = area.x + (prompt_width + before_cursor - skip_cols) as u16;
    frame.set_cursor_position(Position { x: x.min(area.right().saturating_sub(1)), y: area.y });
}

fn draw_status(frame: &mut Frame, app: &App, area: Rect) {
    let (lock, lock_style) = match (&app.tls, app.server_security()) {
        (Some(tls), Security::Quic) => {
            (format!("🔒 QUIC ({:?})", tls.trust).to_lowercase(), Style::default().fg(Color::Green))
        }
        (Some(tls), _) => (format!("🔒 TLS ({:?})", tls.trust).to_lowercase(), Style::default().fg(Color::Green)),
        (None, Security::Plaintext) => ("⚠ plaintext".to_owned(), Style::default().fg(Color::Red)),
        (None, Security::Tls) => ("TLS".to_owned(), Style::default()),
        (None, Security::Quic) => ("QUIC".to_owned(), Style::default()),
    };
    let state = match &app.connection {
        Connection::Connecting => "connecting…".to_owned(),
        Connection::Registering => "logging in…".to_owned(),
        Connection::Ready => "connected".to_owned(),
        Connection::Down(why) => format!("disconnected: {why}"),
    };
    let lag = app.lag_ms.map(|ms| format!(" │ lag {ms} ms")).unwrap_or_default();
    let spans = vec![
        span(&format!(" {lock} "), lock_style),
        span(&format!("│ {} │ {} │ {state}{lag}", app.server, app.nick), Style::default()),
    ];
    frame.render_widget(Paragraph::new(TextLine::from(spans)).style(Style::default().bg(Color::Black)), area);
}
