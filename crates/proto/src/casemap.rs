//! Casemapping. chinwag advertises `CASEMAPPING=ascii`: only `A`-`Z` fold to `a`-`z`. It is the
//! one mapping every client implements the same way, and it keeps folding a byte-wise,
//! allocation-cheap operation that never changes a string's length.

/// The casefolded form of `s`, for comparing and indexing names.
pub fn casefold(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Calls `f` with the casefolded form of `s`, folded on the stack when it is short (a nick or
/// a room name), so that looking a name up allocates nothing.
pub fn with_casefold<R>(s: &str, f: impl FnOnce(&str) -> R) -> R {
    const SHORT: usize = 64;
    if s.len() > SHORT || !s.is_ascii() {
        return f(&casefold(s));
    }
    let mut buf = [0u8; SHORT];
    let folded = &mut buf[..s.len()];
    folded.copy_from_slice(s.as_bytes());
    folded.make_ascii_lowercase();
    // ASCII in, ASCII out.
    match std::str::from_utf8(folded) {
        Ok(folded) => f(folded),
        Err(_) => f(&casefold(s)),
    }
}

/// Whether `a` and `b` are equal under the casemapping.
pub fn eq_fold(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folding_on_the_stack_agrees_with_casefold() {
        let long = "N".repeat(65);
        for s in ["Nick[A]", "", "ÀbC", "a-Z_09", long.as_str()] {
            assert_eq!(with_casefold(s, str::to_owned), casefold(s), "{s}");
        }
    }
}
