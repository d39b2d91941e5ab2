//! Local chat logs, as irssi and WeeChat keep them: off unless the user asks (`--log-dir`,
//! `log_dir` in `client.toml`, or `/log on`), one plain-text file per server and conversation,
//! `DIR/<server>/<room or nick>.log`, appended one line per event:
//!
//! ```text
//! 2026-12-05T10:42:07.123Z <alice> hello
//! 2026-12-05T10:42:09.000Z * bob waves
//! 2026-12-05T10:43:00.511Z --> carol joined
//! 2026-12-05T10:44:12.000Z <-- carol was kicked by alice (spam)
//! 2026-12-05T10:45:00.000Z -- alice set the topic: release on Friday
//! ```
//!
//! Names come from the network, so a file name is never a name as it is: every byte outside
//! `[A-Za-z0-9_.#-]` becomes `%XX` (`%` itself included, so two names never share a file) and a
//! leading `.` becomes `%2E`; `../x`, `/etc/passwd` or a name with a NUL stay one file inside
//! the server's directory. Rooms and nicks are case-folded first (`#General` and `#general` are
//! one room). Text is stored as it reads: IRC formatting stripped, any other control character
//! shown as a stand-in ([`neutralise`]), so `cat` on a log cannot be made to obey an escape.
//!
//! Logs are plaintext: end-to-end encrypted private messages are written decrypted, since the
//! user asked for logs. Files are 0600 in 0700 directories.
//!
//! Messages replayed from the server's history (a reconnect's catch-up, the context shown on
//! joining, scrollback) are logged only if they are newer than the file's newest line when this
//! run first opened it (or than the moment it was created) and than any replayed line already
//! written, so a restart does not write the same lines again and scrollback does not append the
//! past after the present.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chinwag_proto::{casefold, parse_rfc3339_ms};
use sha2::{Digest, Sha256};

use crate::event::{Event, MessageKind};
use crate::format::strip_formatting;
use crate::logfile;
use crate::neutral::neutralise;

/// Files kept open at once; past this they are all closed (and reopened on their next line).
const MAX_OPEN: usize = 64;
/// Conversations whose history mark is remembered; past this the marks are forgotten and read
/// again from the files.
const MAX_MARKS: usize = 4096;
/// Longest escaped name used as it is; a longer one is cut and given a hash of the whole name,
/// so that the file name stays within the usual 255-byte limit and still tells names apart.
const MAX_NAME: usize = 160;
/// How much of a file's end is read to find its newest line.
const TAIL: u64 = 8 * 1024;

/// The chat logs of one client. See the module documentation.
#[derive(Debug)]
pub struct ChatLog {
    dir: PathBuf,
    /// Open files by path.
    files: HashMap<PathBuf, File>,
    /// Per file: history at or before this time (Unix milliseconds) is already in it, or
    /// predates it.
    marks: HashMap<PathBuf, u64>,
}

impl ChatLog {
    /// Starts logging into `dir`, which is created 0700 if missing.
    pub fn open(dir: &Path) -> io::Result<ChatLog> {
        logfile::private_dir(dir)?;
        Ok(ChatLog { dir: dir.to_owned(), files: HashMap::new(), marks: HashMap::new() })
    }

    /// Where the logs go.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file of one conversation on one server (`server` as `HOST:PORT`).
    pub fn path(&self, server: &str, conversation: &str) -> PathBuf {
        self.dir.join(escape(server)).join(format!("{}.log", escape(&casefold(conversation))))
    }

    /// Writes what `event` says about a conversation on `server`, if anything.
    pub fn record(&mut self, server: &str, event: &Event) -> io::Result<()> {
        let now = crate::time::now_rfc3339();
        match event {
            Event::Message(m) => {
                let time = if parse_rfc3339_ms(&m.time).is_some() { m.time.as_str() } else { now.as_str() };
                let from = &m.from;
                let text = clean(&m.text);
                let line = match m.kind {
                    MessageKind::Privmsg => format!("<{}> {text}", clean(from)),
                    MessageKind::Notice => format!("-{}- {text}", clean(from)),
                    MessageKind::Action => format!("* {} {text}", clean(from)),
                };
                let history_at = m.history.then(|| parse_rfc3339_ms(time)).flatten();
                self.write(server, &m.conversation, time, &line, history_at)
            }
            Event::Joined { room, nick, .. } => {
                self.write(server, room, &now, &format!("--> {} joined", clean(nick)), None)
            }
            Event::Parted { room, nick, reason, .. } => {
                self.write(server, room, &now, &format!("<-- {} left{}", clean(nick), paren(reason)), None)
            }
            Event::Kicked { room, nick, by, reason, .. } => {
                let line = format!("<-- {} was kicked by {}{}", clean(nick), clean(by), paren(reason));
                self.write(server, room, &now, &line, None)
            }
            Event::Quit { nick, reason, rooms } => {
                let line = format!("<-- {} quit{}", clean(nick), paren(reason));
                rooms.iter().try_for_each(|room| self.write(server, room, &now, &line, None))
            }
            Event::Topic { room, topic, by: Some(by) } => {
                self.write(server, room, &now, &format!("-- {} set the topic: {}", clean(by), clean(topic)), None)
            }
            Event::Topic { room, topic, by: None } => {
                self.write(server, room, &now, &format!("-- topic: {}", clean(topic)), None)
            }
            _ => Ok(()),
        }
    }

    /// Appends `time line` to the conversation's file. `history_at` is set for a message
    /// replayed from history (its time), which is skipped if the file already covers it.
    fn write(
        &mut self,
        server: &str,
        conversation: &str,
        time: &str,
        line: &str,
        history_at: Option<u64>,
    ) -> io::Result<()> {
        if conversation.is_empty() {
            return Ok(());
        }
        let path = self.path(server, conversation);
        if !self.marks.contains_key(&path) {
            if self.marks.len() >= MAX_MARKS {
                self.marks.clear();
            }
            let mark = newest_line(&path).unwrap_or_else(|| parse_rfc3339_ms(&crate::time::now_rfc3339()).unwrap_or(0));
            self.marks.insert(path.clone(), mark);
        }
        if let (Some(at), Some(mark)) = (history_at, self.marks.get_mut(&path)) {
            if at <= *mark {
                return Ok(());
            }
            // A batch is in time order: what follows it in the file is newer still.
            *mark = at;
        }
        if !self.files.contains_key(&path) {
            if self.files.len() >= MAX_OPEN {
                self.files.clear();
            }
            if let Some(dir) = path.parent() {
                logfile::private_dir(dir)?;
            }
            self.files.insert(path.clone(), logfile::open_append(&path)?);
        }
        let Some(file) = self.files.get_mut(&path) else { return Ok(()) };
        // One write per line: another reader (tail -f) never sees half of one.
        file.write_all(format!("{time} {line}\n").as_bytes())
    }
}

/// A name from the network as a file name: bytes outside `[A-Za-z0-9_.#-]` as `%XX`, a leading
/// `.` as `%2E`, and a name too long for a file cut and followed by `~` and a hash of the whole
/// (`~` is never left unescaped, so a cut name cannot equal another's escape).
pub fn escape(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, b) in name.bytes().enumerate() {
        let keep = b.is_ascii_alphanumeric() || matches!(b, b'_' | b'#' | b'-') || (b == b'.' && i > 0);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if out.is_empty() {
        out.push_str("%00");
    }
    if out.len() > MAX_NAME {
        let digest = Sha256::digest(name.as_bytes());
        let hash: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        out.truncate(MAX_NAME - hash.len() - 1);
        out.push('~');
        out.push_str(&hash);
    }
    out
}

/// The time of the newest line of a log file (Unix milliseconds), if it has one.
fn newest_line(path: &Path) -> Option<u64> {
    let mut file = File::open(path).ok()?;
    let len = file.metadata().ok()?.len();
    file.seek(SeekFrom::Start(len.saturating_sub(TAIL))).ok()?;
    let mut tail = Vec::new();
    file.take(TAIL).read_to_end(&mut tail).ok()?;
    let text = String::from_utf8_lossy(&tail);
    text.lines().rev().find_map(|line| line.split(' ').next().and_then(parse_rfc3339_ms))
}

/// Text as it is stored: formatting codes dropped, other controls shown as stand-ins.
fn clean(text: &str) -> String {
    neutralise(&strip_formatting(text)).into_owned()
}

fn paren(reason: &Option<String>) -> String {
    reason.as_deref().filter(|r| !r.is_empty()).map(|r| format!(" ({})", clean(r))).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ChatMessage;

    #[test]
    fn hostile_names_stay_one_file_inside_the_directory() {
        assert_eq!(escape("#general"), "#general");
        assert_eq!(escape("127.0.0.1:6697"), "127.0.0.1%3A6697");
        assert_eq!(escape(".."), "%2E.");
        assert_eq!(escape("../../etc/passwd"), "%2E.%2F..%2Fetc%2Fpasswd");
        assert_eq!(escape("/abs"), "%2Fabs");
        assert_eq!(escape("a\0b"), "a%00b");
        assert_eq!(escape("100%"), "100%25");
        assert_eq!(escape("#café"), "#caf%C3%A9");
        assert_eq!(escape(""), "%00");
        let long = "#".repeat(1000);
        let cut = escape(&long);
        assert!(cut.len() <= MAX_NAME && cut.contains('~'), "{cut}");
        assert_ne!(cut, escape(&"#".repeat(999)));
        for name in ["..", "../x", "/x", "a/b", ".hidden", "%2E", "x\\y"] {
            let e = escape(name);
            assert!(!e.contains('/') && !e.starts_with('.'), "{name:?} -> {e:?}");
            assert_eq!(Path::new(&e).components().count(), 1, "{name:?} -> {e:?}");
        }
    }

    fn message(time: &str, text: &str, history: bool) -> Event {
        Event::Message(ChatMessage {
            time: time.into(),
            conversation: "#Tech".into(),
            from: "bob".into(),
            text: text.into(),
            kind: MessageKind::Privmsg,
            own: false,
            history,
            msgid: None,
            mention: false,
        })
    }

    #[test]
    fn history_already_in_the_file_is_not_written_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = ChatLog::open(dir.path()).expect("open");
        log.record("h:1", &message("2026-01-01T10:00:00.000Z", "\u{2}first\u{2}\u{1b}[2J", false)).expect("write");
        log.record("h:1", &message("2026-01-01T10:05:00.000Z", "second", false)).expect("write");
        let path = log.path("h:1", "#tech");
        assert_eq!(path, dir.path().join("h%3A1").join("#tech.log"));
        drop(log);

        // A restart replays the room's latest lines, some already logged and one said since.
        let mut log = ChatLog::open(dir.path()).expect("open");
        log.record("h:1", &message("2026-01-01T10:05:00.000Z", "second", true)).expect("write");
        log.record("h:1", &message("2026-01-01T10:07:00.000Z", "while away", true)).expect("write");
        log.record("h:1", &message("2026-01-01T09:00:00.000Z", "scrollback", true)).expect("write");
        let text = std::fs::read_to_string(&path).expect("read");
        assert_eq!(
            text,
            "2026-01-01T10:00:00.000Z <bob> first\u{241b}[2J\n2026-01-01T10:05:00.000Z <bob> second\n\
             2026-01-01T10:07:00.000Z <bob> while away\n"
        );
    }
}
