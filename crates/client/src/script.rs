//! Scriptable mode: commands from a line-based input (stdin), events to a line-based output
//! (stdout) as plain text or one JSON object per line. This is the seeds' REPL
//! (`> msg bob Hello`) and how tests and scripts drive chinwag.
//!
//! End of input means quit: the QUIT goes after everything typed before it, and the output
//! ends once the session has closed, so every line typed has been sent (or reported as not
//! sent) when the process exits.

use std::io::Write;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use crate::command::{self, Command};
use crate::event::Event;

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Plain,
    Json,
}

/// How a scriptable session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Input ended or `quit`.
    Quit,
    /// The session stopped on its own (a changed certificate); the reason was printed.
    Fatal(String),
}

/// Runs scriptable mode until the session closes. `password` (from `CHINWAG_PASSWORD`) fills
/// in `register`/`login` lines that leave it out.
pub async fn run<R, W>(
    input: R,
    mut output: W,
    format: Format,
    password: Option<String>,
    commands: mpsc::Sender<Command>,
    mut events: mpsc::Receiver<Event>,
) -> std::io::Result<Outcome>
where
    R: AsyncBufRead + Unpin,
    W: Write,
{
    let mut lines = input.lines();
    let mut input_open = true;
    let mut commands = Some(commands);
    let mut outcome = Outcome::Quit;
    loop {
        tokio::select! {
            event = events.recv() => {
                let Some(event) = event else { break };
                let closed = event == Event::Closed;
                if let Event::Fatal { text } = &event {
                    outcome = Outcome::Fatal(text.clone());
                }
                write_event(&mut output, &event, format)?;
                if closed {
                    break;
                }
            }
            line = lines.next_line(), if input_open => {
                let Some(sender) = commands.as_ref() else { continue };
                match line? {
                    None => {
                        input_open = false;
                        // Dropping the sender tells the driver to quit once it has sent
                        // everything before.
                        commands = None;
                    }
                    Some(line) => match command::parse(&line, true) {
                        Ok(None) => {}
                        Ok(Some(Command::Clear)) => {}
                        Ok(Some(cmd)) => {
                            let quit = matches!(cmd, Command::Quit(_));
                            let cmd = fill_password(cmd, password.as_deref());
                            if sender.send(cmd).await.is_err() {
                                break;
                            }
                            if quit {
                                input_open = false;
                            }
                        }
                        Err(e) => write_event(&mut output, &Event::Error { text: e.to_string() }, format)?,
                    },
                }
            }
        }
    }
    output.flush()?;
    Ok(outcome)
}

/// `register`/`login` without a password take the one from the environment.
pub fn fill_password(cmd: Command, password: Option<&str>) -> Command {
    match cmd {
        Command::Register { account, password: None } => {
            Command::Register { account, password: password.map(str::to_owned) }
        }
        Command::Login { account, password: None } => Command::Login { account, password: password.map(str::to_owned) },
        other => other,
    }
}

fn write_event<W: Write>(output: &mut W, event: &Event, format: Format) -> std::io::Result<()> {
    match format {
        Format::Plain => {
            if let Some(line) = event.plain() {
                writeln!(output, "{line}")?;
            }
        }
        Format::Json => {
            let line = serde_json::to_string(event).map_err(std::io::Error::other)?;
            writeln!(output, "{line}")?;
        }
    }
    output.flush()
}
