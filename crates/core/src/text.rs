//! Small text rules shared by handlers: truncation on character boundaries, packing lists into
//! lines, secret comparison, counts with their noun ("1 second", "2 seconds").

use chinwag_proto::MAX_BODY_LEN;

/// `n` and its noun, singular for exactly one: `count(1, "second", "seconds")` is "1 second",
/// `count(0, …)` "0 seconds". Every count a user reads goes through here.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// A wait or a silence in whole seconds, as a user reads it: "1 second", "30 seconds".
pub fn seconds(n: u64) -> String {
    count(n, "second", "seconds")
}

/// The longest prefix of `s` that fits in `max_bytes` without splitting a character.
pub fn truncate(s: &str, max_bytes: usize) -> &str {
    if s.len() <= max_bytes {
        return s;
    }
    let mut end = max_bytes;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The longest prefix of `text` that, sent as the trailing parameter after `head` (everything
/// before it: `:source COMMAND params `), keeps the line within the 512-byte body limit with its
/// `:` and CRLF. Configured lengths like KICKLEN bound the text alone; this bounds the line.
pub fn fit_trailing<'a>(text: &'a str, head: &str) -> &'a str {
    truncate(text, MAX_BODY_LEN.saturating_sub(head.len() + 3))
}

/// Joins `items` with `sep` into as few strings as possible, each at most `budget` bytes (an
/// item longer than the budget gets a string of its own). For list numerics such as 319 and 730
/// that must fit in one line each.
pub fn pack<I, S>(items: I, sep: char, budget: usize) -> Vec<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out: Vec<String> = Vec::new();
    let mut line = String::new();
    for item in items {
        let item = item.as_ref();
        if !line.is_empty() && line.len() + sep.len_utf8() + item.len() > budget {
            out.push(std::mem::take(&mut line));
        }
        if !line.is_empty() {
            line.push(sep);
        }
        line.push_str(item);
    }
    if !line.is_empty() {
        out.push(line);
    }
    out
}

/// Compares secrets in time that depends only on their lengths.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `s` made fit to be a middle parameter (not the last one) of a line: its first word without
/// leading colons, or `*` if nothing is left. Replies often echo what the client sent, which may
/// have been a trailing parameter with spaces; written as is, it would split into several
/// parameters and shift the ones after it.
pub fn middle_param(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.is_empty() && !s.starts_with(':') && !s.contains(' ') {
        return std::borrow::Cow::Borrowed(s);
    }
    let word = s.trim_start_matches([':', ' ']).split(' ').next().unwrap_or("");
    std::borrow::Cow::Owned(if word.is_empty() { "*".to_owned() } else { word.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_is_singular_and_every_other_count_plural() {
        assert_eq!(seconds(1), "1 second");
        assert_eq!(seconds(0), "0 seconds");
        assert_eq!(seconds(30), "30 seconds");
        assert_eq!(count(1, "user", "users"), "1 user");
        assert_eq!(count(2, "user", "users"), "2 users");
    }

    #[test]
    fn truncate_never_splits_a_character() {
        assert_eq!(truncate("héllo", 2), "h");
        assert_eq!(truncate("héllo", 3), "hé");
        assert_eq!(truncate("abc", 10), "abc");
    }

    #[test]
    fn fit_trailing_keeps_the_line_within_512_bytes() {
        let head = format!(":{} KICK #room bob ", "n".repeat(100));
        let text = "é".repeat(300);
        let fitted = fit_trailing(&text, &head);
        assert!(head.len() + 1 + fitted.len() + 2 <= MAX_BODY_LEN);
        assert!(head.len() + 1 + fitted.len() + 2 >= MAX_BODY_LEN - 1, "cut no more than needed");
        assert_eq!(fit_trailing("short", &head), "short");
    }

    #[test]
    fn pack_splits_at_the_budget() {
        assert_eq!(pack(["ab", "cd", "ef"], ',', 5), ["ab,cd", "ef"]);
        assert_eq!(pack(["toolong", "x"], ' ', 3), ["toolong", "x"]);
        assert!(pack(Vec::<String>::new(), ' ', 10).is_empty());
    }

    #[test]
    fn constant_time_eq_compares() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
