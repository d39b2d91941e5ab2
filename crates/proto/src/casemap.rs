//! Casemapping. chinwag advertises `CASEMAPPING=ascii`: only `A`-`Z` fold to `a`-`z`. It is the
//! one mapping every client implements the same way, and it keeps folding a byte-wise,
//! allocation-cheap operation that never changes a string's length.

/// The casefolded form of `s`, for comparing and indexing names.
pub fn casefold(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// Whether `a` and `b` are equal under the casemapping.
pub fn eq_fold(a: &str, b: &str) -> bool {
    a.eq_ignore_ascii_case(b)
}
