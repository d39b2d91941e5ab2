//! The client log, `<data dir>/chinwag/client.log`: what happened to the connection, for the
//! user who wants to know why the client was offline at three in the morning. One line per
//! event, with its UTC time: connection attempts, connections (transport and certificate
//! fingerprint), disconnections with their reason, reconnect delays, logins that succeeded or
//! failed, certificates pinned, refused or accepted after a change, errors.
//!
//! It never holds a password: none of the events it records carries one, and as a second line of
//! defence every password the client knows is replaced by `<password>` before a line is written.
//! Chat text is not logged here (that is `chatlog.rs`, and only on request).
//!
//! Bounded: once the file would pass [`MAX_LEN`], it is renamed to `client.log.1` (replacing
//! the previous one) and a new file begins, so the two never hold more than twice that.
//!
//! (The developer's trace, `tracing` output at `CHINWAG_LOG`'s level, goes to `chat.log` in the
//! state directory; this file is the user's record.)

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::endpoint::Security;
use crate::event::Event;
use crate::logfile;

/// Size at which the log is rotated: 1 MiB.
pub const MAX_LEN: u64 = 1024 * 1024;

/// An open client log.
#[derive(Debug)]
pub struct ClientLog {
    path: PathBuf,
    file: File,
    /// The file's length, to know when to rotate.
    len: u64,
}

impl ClientLog {
    /// Opens (or creates, 0600 in a 0700 directory) the log at `path`.
    pub fn open(path: &Path) -> io::Result<ClientLog> {
        if let Some(dir) = path.parent() {
            logfile::private_dir(dir)?;
        }
        let file = logfile::open_append(path)?;
        let len = file.metadata()?.len();
        Ok(ClientLog { path: path.to_owned(), file, len })
    }

    /// Writes one line, stamped with the current time. `secrets` are the passwords the client
    /// knows (the account's, the server's), replaced if the text holds one.
    pub fn write(&mut self, text: &str, secrets: &[&str]) -> io::Result<()> {
        let mut text = crate::neutral::neutralise(text).into_owned();
        for secret in secrets.iter().filter(|s| !s.is_empty()) {
            if text.contains(secret) {
                text = text.replace(secret, "<password>");
            }
        }
        let line = format!("{} {text}\n", crate::time::now_rfc3339());
        if self.len > 0 && self.len + line.len() as u64 > MAX_LEN {
            self.rotate()?;
        }
        self.file.write_all(line.as_bytes())?;
        self.len += line.len() as u64;
        Ok(())
    }

    /// Writes what `event` says about the connection, if anything.
    pub fn record(&mut self, event: &Event, secrets: &[&str]) -> io::Result<()> {
        match describe(event) {
            Some(text) => self.write(&text, secrets),
            None => Ok(()),
        }
    }

    /// `client.log` becomes `client.log.1` and a new file starts.
    fn rotate(&mut self) -> io::Result<()> {
        let mut old = self.path.clone().into_os_string();
        old.push(".1");
        std::fs::rename(&self.path, &old)?;
        self.file = logfile::open_append(&self.path)?;
        self.len = 0;
        Ok(())
    }
}

/// The line for an event the client log keeps; `None` for chat and screen events.
fn describe(event: &Event) -> Option<String> {
    let text = match event {
        Event::Connecting { server, attempt: 0 } => format!("connecting to {server}"),
        Event::Connecting { server, attempt } => format!("connecting to {server} (attempt {})", attempt + 1),
        Event::Connected { server, security, tls } => {
            let how = match security {
                Security::Plaintext => "in plaintext",
                Security::Tls => "over TLS",
                Security::Quic => "over QUIC",
            };
            match tls {
                Some(tls) => format!("connected to {server} {how} ({:?}, SHA-256 {})", tls.trust, tls.fingerprint),
                None => format!("connected to {server} {how}"),
            }
        }
        Event::Ready { nick } => format!("registered as {nick}"),
        Event::Disconnected { reason } => format!("disconnected: {reason}"),
        Event::ConnectFailed { reason, .. } => format!("connection failed: {reason}"),
        Event::Reconnecting { delay_ms } => format!("reconnecting in {:.1} s", *delay_ms as f64 / 1000.0),
        Event::LoggedIn { account } => format!("logged in as {account}"),
        Event::LoggedOut => "logged out".into(),
        Event::AccountRegistered { account } => format!("account {account} registered"),
        Event::Error { text } => format!("error: {text}"),
        Event::Fatal { text } => format!("stopped: {text}"),
        Event::Closed => "closed".into(),
        _ => return None,
    };
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_once_past_the_bound_and_keeps_passwords_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("chinwag").join("client.log");
        let mut log = ClientLog::open(&path).expect("open");
        let secrets = ["hunter2-secret", ""];
        log.record(&Event::Error { text: "login failed: hunter2-secret is wrong".into() }, &secrets).expect("write");
        log.record(&Event::Lag { ms: 5 }, &secrets).expect("nothing");
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(text.ends_with(" error: login failed: <password> is wrong\n"), "{text}");
        assert_eq!(text.lines().count(), 1);

        let line = "x".repeat(1000);
        for _ in 0..(MAX_LEN / 1000 + 10) {
            log.write(&line, &[]).expect("write");
        }
        let rotated = path.with_file_name("client.log.1");
        let old = std::fs::metadata(&rotated).expect("rotated").len();
        let new = std::fs::metadata(&path).expect("current").len();
        assert!(old <= MAX_LEN && new < MAX_LEN && new > 0, "{old} {new}");
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_eq!((mode(&path), mode(path.parent().expect("dir"))), (0o600, 0o700));
    }
}
