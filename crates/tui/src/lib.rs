//! chinwag's full-screen terminal client: ratatui screens over `chinwag-client`.
//!
//! What it is *not*: an IRC implementation. It holds a command sender and an event receiver
//! from [`chinwag_client::start`] and nothing else of the connection, so the network never
//! blocks the screen: keys, client events and a timer are awaited together and each one
//! updates the state and redraws.
//!
//! Layout:
//! - `app`: [`App`], the screen state folded from events and keys (unread counts, mentions,
//!   members, typing indicators, scrollback), testable without a terminal.
//! - `input`: the input line (editing, history, multi-line paste, tab completion).
//! - `view`: drawing an `App` with ratatui (snapshot-tested with `TestBackend`).
//! - this file: the terminal set-up and the event loop.

pub mod app;
pub mod input;
pub mod view;

use std::io;
use std::time::{Duration, Instant};

use chinwag_client::{ClientConfig, Command, Event};
use crossterm::event::{DisableBracketedPaste, EnableBracketedPaste, Event as TermEvent, EventStream, KeyEventKind};
use crossterm::execute;
use crossterm::terminal::{disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen};
use futures_util::StreamExt;
use ratatui::backend::CrosstermBackend;
use ratatui::Terminal;
use tokio::sync::mpsc;

pub use app::{Action, App};

/// How often timers run (typing expiry, our own `paused`), and the longest a redraw waits.
const TICK: Duration = Duration::from_millis(250);
/// Client events folded in before one redraw, so a burst (a history batch) draws once.
const EVENTS_PER_DRAW: usize = 500;
/// How long to wait for the session to end after the screen closes.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the full-screen client until the user quits.
pub async fn run(cfg: ClientConfig, _password: Option<String>) -> io::Result<()> {
    let mut app = App::new(&cfg.endpoint.key(), cfg.endpoint.security, &cfg.session.nick);
    let (commands, events, task) = chinwag_client::start(cfg);
    enable_raw_mode()?;
    let mut stdout = io::stdout();
    execute!(stdout, EnterAlternateScreen, EnableBracketedPaste)?;
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        restore_terminal();
        previous_hook(info);
    }));
    let mut terminal = Terminal::new(CrosstermBackend::new(stdout))?;
    let result = event_loop(&mut terminal, &mut app, &commands, events).await;
    restore_terminal();
    drop(commands);
    if tokio::time::timeout(SHUTDOWN_GRACE, task).await.is_err() {
        tracing::warn!("the session did not end in time");
    }
    result?;
    // The screen is gone, so a reason the session stopped (a changed certificate) is repeated
    // where the user will read it: on the terminal, so shown, not obeyed.
    match app.fatal {
        Some(why) => Err(io::Error::other(chinwag_client::neutralise(&why).into_owned())),
        None => Ok(()),
    }
}

fn restore_terminal() {
    let _ = disable_raw_mode();
    let _ = execute!(io::stdout(), DisableBracketedPaste, LeaveAlternateScreen);
}

async fn event_loop<B: ratatui::backend::Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    commands: &mpsc::Sender<Command>,
    mut events: mpsc::Receiver<Event>,
) -> io::Result<()> {
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(TICK);
    terminal.draw(|f| view::draw(f, app, Instant::now()))?;
    loop {
        let mut actions = Vec::new();
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { return Ok(()) };
                let now = Instant::now();
                app.apply(event, now);
                for _ in 0..EVENTS_PER_DRAW {
                    match events.try_recv() {
                        Ok(event) => app.apply(event, now),
                        Err(_) => break,
                    }
                }
            }
            key = keys.next() => match key {
                Some(Ok(TermEvent::Key(k))) if k.kind != KeyEventKind::Release => actions = app.key(k, Instant::now()),
                Some(Ok(TermEvent::Paste(text))) => actions = app.paste(&text, Instant::now()),
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            },
            _ = tick.tick() => actions = app.tick(Instant::now()),
        }
        for action in actions {
            match action {
                Action::Send(command) => {
                    if commands.send(command).await.is_err() {
                        return Ok(());
                    }
                }
                Action::Exit => return Ok(()),
            }
        }
        if app.closed {
            return Ok(());
        }
        terminal.draw(|f| view::draw(f, app, Instant::now()))?;
    }
}
