//! Scriptable mode: commands from a line-based input (stdin), events to a line-based output
//! (stdout) as plain text or one JSON object per line. This is the seeds' REPL
//! (`> msg bob Hello`) and how tests and scripts drive chinwag.
//!
//! Ordinary text is never taken for a command: commands start with `/` unless the user asks
//! for the seeds' bare forms (`join general`) with `--bare-commands`.
//!
//! End of input means quit: the QUIT goes after everything typed before it, and the output
//! ends once the session has closed, so every line typed has been sent (or reported as not
//! sent) when the process exits.

use std::io::Write;

use tokio::io::{AsyncBufRead, AsyncBufReadExt};
use tokio::sync::mpsc;

use crate::command::{self, Command};
use crate::event::Event;
use crate::format::{strip_formatting, strip_formatting_json};
use crate::neutral::{neutralise, neutralise_json, neutralise_lines};

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
/// in `register`/`login` lines that leave it out. A line is a command only when it starts with
/// `/`; with `bare` (`--bare-commands`), also in the seeds' bare forms ([`command::BARE`]).
pub async fn run<R, W>(
    input: R,
    mut output: W,
    format: Format,
    bare: bool,
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
                    Some(line) => match command::parse(&line, bare) {
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

/// Writes one event. Both formats pass every string through [`neutralise`]: plain lines go
/// to a terminal, and JSON's consumers print its fields to one too (`jq -r .text`), where
/// serde's `\u001b` would become ESC again and C1 or bidi characters pass as they are. The
/// JSON therefore carries the text as shown, not the raw bytes: control characters are never
/// part of what someone meant to say in a chat line. IRC formatting codes (bold, colours) are
/// dropped first rather than shown: a script reads the words, not the styling.
fn write_event<W: Write>(output: &mut W, event: &Event, format: Format) -> std::io::Result<()> {
    match format {
        Format::Plain => {
            // The lines of a multiline message come on lines of their own (`plain_lines`).
            for line in event.plain_lines() {
                writeln!(output, "{}", neutralise(&strip_formatting(&line)))?;
            }
        }
        Format::Json => {
            let mut value = serde_json::to_value(event).map_err(std::io::Error::other)?;
            strip_formatting_json(&mut value);
            // A multiline message keeps its line breaks (JSON escapes them); each line is
            // neutralised like any other text.
            let text = match event {
                Event::Message(m) => Some(neutralise_lines(&strip_formatting(&m.text)).into_owned()),
                _ => None,
            };
            neutralise_json(&mut value);
            if let (Some(text), Some(field)) = (text, value.get_mut("text")) {
                *field = serde_json::Value::String(text);
            }
            let line = serde_json::to_string(&value).map_err(std::io::Error::other)?;
            writeln!(output, "{line}")?;
        }
    }
    output.flush()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{ChatMessage, MessageKind};

    /// Every class a terminal obeys or that reorders a line: CSI (clear screen), OSC (window
    /// title, ended by BEL), BEL, TAB/CR/LF, DEL, C1 (single-character CSI), bidi override and
    /// isolate.
    const HOSTILE: &str = "\u{1b}[2J\u{1b}]0;owned\u{7}\t\r\n\u{7f}\u{9b}31m\u{85}\u{202e}desrever\u{2067}x\u{2069}";

    fn events() -> Vec<Event> {
        let message = ChatMessage {
            time: "2026-01-01T00:00:00.000Z".into(),
            conversation: "#tech".into(),
            from: format!("mal{HOSTILE}"),
            text: format!("hi{HOSTILE}"),
            kind: MessageKind::Privmsg,
            own: false,
            history: false,
            msgid: None,
            mention: false,
        };
        vec![Event::Message(message), Event::Topic { room: "#tech".into(), topic: HOSTILE.into(), by: None }]
    }

    fn written(format: Format) -> String {
        let mut out = Vec::new();
        for event in events() {
            write_event(&mut out, &event, format).expect("write");
        }
        String::from_utf8(out).expect("UTF-8")
    }

    fn assert_inert(out: &str) {
        for c in out.chars() {
            let obeyed = (c.is_control() && c != '\n')
                || ('\u{202a}'..='\u{202e}').contains(&c)
                || ('\u{2066}'..='\u{2069}').contains(&c);
            assert!(!obeyed, "{c:?} reached the output: {out:?}");
        }
    }

    #[test]
    fn plain_output_shows_escapes_instead_of_obeying_them() {
        let out = written(Format::Plain);
        assert_inert(&out);
        // The message's line break starts an indented line of its own (the lines of a
        // multiline message); nothing else breaks a line.
        assert_eq!(out.lines().count(), 3, "{out:?}");
        assert!(out.contains("hi\u{241b}[2J\u{241b}]0;owned\u{2407}\u{2409}\u{240d}\n "), "{out}");
        assert!(out.contains(" \u{2421}[U+009B]31m[U+0085][U+202E]desrever[U+2067]x[U+2069]\n"), "{out}");
        let continued = out.lines().nth(1).unwrap_or_default();
        assert!(continued.starts_with("          "), "indented past the header: {continued:?}");
    }

    #[test]
    fn json_output_carries_the_neutralised_text_in_every_field() {
        let out = written(Format::Json);
        assert_inert(&out);
        for line in out.lines() {
            let value: serde_json::Value = serde_json::from_str(line).expect("JSON");
            let mut strings = Vec::new();
            collect_strings(&value, &mut strings);
            for s in strings {
                assert_inert(&s);
            }
        }
        let first: serde_json::Value = serde_json::from_str(out.lines().next().unwrap_or("")).expect("JSON");
        assert_eq!(first["text"], format!("hi{}", neutralise_lines(HOSTILE)), "line breaks kept, the rest shown");
        assert_eq!(first["from"], format!("mal{}", neutralise(HOSTILE)));
    }

    #[test]
    fn formatting_codes_are_stripped_not_shown_and_other_controls_still_neutralised() {
        let message = ChatMessage {
            time: "2026-01-01T00:00:00.000Z".into(),
            conversation: "#tech".into(),
            from: "bob".into(),
            text: "\u{2}bold\u{2} \u{3}04,01red\u{3} \u{1d}it\u{1f}u\u{16}r\u{f} done\u{7}".into(),
            kind: MessageKind::Privmsg,
            own: false,
            history: false,
            msgid: None,
            mention: false,
        };
        let event = Event::Message(message);
        let mut plain = Vec::new();
        write_event(&mut plain, &event, Format::Plain).expect("write");
        let plain = String::from_utf8(plain).expect("UTF-8");
        assert_eq!(plain, "[00:00] [#tech] <bob> bold red itur done\u{2407}\n");
        let mut json = Vec::new();
        write_event(&mut json, &event, Format::Json).expect("write");
        let value: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
        assert_eq!(value["text"], "bold red itur done\u{2407}");
    }

    fn collect_strings(value: &serde_json::Value, into: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) => into.push(s.clone()),
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_strings(v, into)),
            serde_json::Value::Object(map) => map.values().for_each(|v| collect_strings(v, into)),
            _ => {}
        }
    }
}
