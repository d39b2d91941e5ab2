//! The input line: editing, history, multi-line paste and tab completion. Pure state; keys are
//! mapped to these methods in `app.rs`.

use chinwag_client::command::COMMANDS;

/// Lines kept in the input history.
const HISTORY: usize = 500;
/// Longest input accepted (a paste beyond it is cut), in bytes.
pub const MAX_INPUT: usize = 16 * 1024;

/// The line being typed.
#[derive(Debug, Default, Clone)]
pub struct Input {
    /// The text; may hold newlines after a multi-line paste.
    text: String,
    /// Cursor position in characters.
    cursor: usize,
    /// Earlier submitted lines, oldest first.
    history: Vec<String>,
    /// Position while browsing history (`None`: editing a new line).
    browsing: Option<usize>,
    /// What was typed before browsing started, restored when coming back down.
    draft: String,
    /// An ongoing tab completion: the candidates and which one is shown.
    completion: Option<Completion>,
}

#[derive(Debug, Clone)]
struct Completion {
    /// Where the completed word starts, in characters.
    start: usize,
    candidates: Vec<String>,
    index: usize,
}

impl Input {
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Cursor position in characters.
    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn byte_at(&self, chars: usize) -> usize {
        self.text.char_indices().nth(chars).map_or(self.text.len(), |(i, _)| i)
    }

    fn len_chars(&self) -> usize {
        self.text.chars().count()
    }

    /// Inserts text at the cursor (typed or pasted; CRLF becomes LF).
    pub fn insert(&mut self, s: &str) {
        self.completion = None;
        let s = s.replace("\r\n", "\n").replace('\r', "\n");
        let room = MAX_INPUT.saturating_sub(self.text.len());
        let mut cut = s.len().min(room);
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        let s = &s[..cut];
        let at = self.byte_at(self.cursor);
        self.text.insert_str(at, s);
        self.cursor += s.chars().count();
    }

    pub fn backspace(&mut self) {
        self.completion = None;
        if self.cursor > 0 {
            self.cursor -= 1;
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn delete(&mut self) {
        self.completion = None;
        if self.cursor < self.len_chars() {
            let at = self.byte_at(self.cursor);
            self.text.remove(at);
        }
    }

    pub fn left(&mut self) {
        self.cursor = self.cursor.saturating_sub(1);
    }

    pub fn right(&mut self) {
        self.cursor = (self.cursor + 1).min(self.len_chars());
    }

    pub fn home(&mut self) {
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.cursor = self.len_chars();
    }

    /// Ctrl-U: deletes everything before the cursor.
    pub fn kill_to_start(&mut self) {
        let at = self.byte_at(self.cursor);
        self.text.replace_range(..at, "");
        self.cursor = 0;
    }

    /// Ctrl-W: deletes the word before the cursor.
    pub fn kill_word(&mut self) {
        let chars: Vec<char> = self.text.chars().collect();
        let mut start = self.cursor;
        while start > 0 && chars[start - 1] == ' ' {
            start -= 1;
        }
        while start > 0 && chars[start - 1] != ' ' {
            start -= 1;
        }
        let (a, b) = (self.byte_at(start), self.byte_at(self.cursor));
        self.text.replace_range(a..b, "");
        self.cursor = start;
    }

    /// Takes the line for sending and remembers it in the history.
    pub fn submit(&mut self) -> String {
        let text = std::mem::take(&mut self.text);
        self.cursor = 0;
        self.browsing = None;
        self.completion = None;
        if !text.trim().is_empty() && self.history.last() != Some(&text) && !is_secret(&text) {
            self.history.push(text.clone());
            if self.history.len() > HISTORY {
                self.history.remove(0);
            }
        }
        text
    }

    /// Up: the previous line from the history.
    pub fn history_up(&mut self) {
        let index = match self.browsing {
            None if self.history.is_empty() => return,
            None => {
                self.draft = self.text.clone();
                self.history.len() - 1
            }
            Some(0) => return,
            Some(i) => i - 1,
        };
        self.browsing = Some(index);
        self.set(self.history[index].clone());
    }

    /// Down: the next line, and finally what was being typed.
    pub fn history_down(&mut self) {
        let Some(i) = self.browsing else { return };
        if i + 1 < self.history.len() {
            self.browsing = Some(i + 1);
            self.set(self.history[i + 1].clone());
        } else {
            self.browsing = None;
            let draft = std::mem::take(&mut self.draft);
            self.set(draft);
        }
    }

    fn set(&mut self, text: String) {
        self.text = text;
        self.cursor = self.len_chars();
        self.completion = None;
    }

    /// Tab: completes the word before the cursor from `/commands` (at the start of the line),
    /// `#rooms` and nicks; pressing again cycles. A nick completed at the start gets `: `.
    pub fn complete(&mut self, nicks: &[String], rooms: &[String]) {
        if let Some(c) = &mut self.completion {
            c.index = (c.index + 1) % c.candidates.len();
            let (start, word) = (c.start, c.candidates[c.index].clone());
            self.replace_word(start, &word);
            return;
        }
        let chars: Vec<char> = self.text.chars().collect();
        let mut start = self.cursor;
        while start > 0 && chars[start - 1] != ' ' {
            start -= 1;
        }
        let word: String = chars[start..self.cursor].iter().collect();
        if word.is_empty() {
            return;
        }
        let lower = word.to_lowercase();
        let starts = |name: &str| name.to_lowercase().starts_with(&lower);
        let mut candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            COMMANDS
                .iter()
                .flat_map(|c| c.names.iter())
                .filter(|n| starts(&format!("/{n}")))
                .map(|n| format!("/{n} "))
                .collect()
        } else if word.starts_with('#') {
            rooms.iter().filter(|r| starts(r)).map(|r| format!("{r} ")).collect()
        } else if takes_a_room(&chars[..start]) {
            // `/join te` completes to `/join #tech `: the command's argument is a room.
            rooms.iter().filter(|r| starts(r.trim_start_matches('#'))).map(|r| format!("{r} ")).collect()
        } else {
            let suffix = if start == 0 { ": " } else { " " };
            nicks.iter().filter(|n| starts(n)).map(|n| format!("{n}{suffix}")).collect()
        };
        candidates.sort_by_key(|c| c.to_lowercase());
        candidates.dedup_by_key(|c| c.to_lowercase());
        if candidates.is_empty() {
            return;
        }
        let first = candidates[0].clone();
        self.completion = Some(Completion { start, candidates, index: 0 });
        self.replace_word(start, &first);
    }

    fn replace_word(&mut self, start: usize, word: &str) {
        let (a, b) = (self.byte_at(start), self.byte_at(self.cursor));
        self.text.replace_range(a..b, word);
        self.cursor = start + word.chars().count();
    }
}

/// Whether a line carries a password (`/login`, `/register`): it is masked on screen and
/// never kept in the history.
pub fn is_secret(line: &str) -> bool {
    let word = line.split_whitespace().next().unwrap_or("").to_ascii_lowercase();
    matches!(word.as_str(), "/login" | "/register")
}

/// Whether the line before the word being completed is a command whose argument is a room.
fn takes_a_room(before: &[char]) -> bool {
    let before: String = before.iter().collect();
    let mut words = before.split_whitespace();
    let command = words.next().and_then(|w| w.strip_prefix('/')).unwrap_or("");
    words.next().is_none() && matches!(command, "join" | "switch" | "window" | "part" | "leave" | "names" | "topic")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edits_history_and_paste() {
        let mut i = Input::default();
        i.insert("hello world");
        i.kill_word();
        assert_eq!(i.text(), "hello ");
        i.insert("there");
        i.home();
        i.delete();
        assert_eq!(i.text(), "ello there");
        assert_eq!(i.submit(), "ello there");
        i.insert("line one\r\nline two");
        assert_eq!(i.text(), "line one\nline two");
        assert_eq!(i.submit(), "line one\nline two");
        i.insert("draft");
        i.history_up();
        assert_eq!(i.text(), "line one\nline two");
        i.history_up();
        assert_eq!(i.text(), "ello there");
        i.history_down();
        i.history_down();
        assert_eq!(i.text(), "draft");
        i.left();
        i.backspace();
        assert_eq!(i.text(), "drat");
    }

    #[test]
    fn completes_commands_rooms_and_nicks_and_cycles() {
        let nicks = vec!["alice".to_owned(), "alfred".to_owned(), "bob".to_owned()];
        let rooms = vec!["#general".to_owned(), "#tech".to_owned()];
        let mut i = Input::default();
        i.insert("/jo");
        i.complete(&nicks, &rooms);
        assert_eq!(i.text(), "/join ");
        i.insert("#te");
        i.complete(&nicks, &rooms);
        assert_eq!(i.text(), "/join #tech ");
        i.submit();
        i.insert("al");
        i.complete(&nicks, &rooms);
        assert_eq!(i.text(), "alfred: ");
        i.complete(&nicks, &rooms);
        assert_eq!(i.text(), "alice: ");
        i.insert("hi b");
        i.complete(&nicks, &rooms);
        assert_eq!(i.text(), "alice: hi bob ");
    }
}
