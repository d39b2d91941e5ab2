//! Wildcard masks (`*` and `?`), as used in bans, invite exceptions and oper host masks.

/// Wildcard match for ban masks etc.: `*` matches any run of characters (including none), `?`
/// exactly one character, everything else itself, case-insensitively under the casemapping.
/// There is no escape character, and `[` has no special meaning.
///
/// Runs in O(mask × subject) time in the worst case and usually linear: it remembers only the
/// most recent `*`, which is enough because a later star can always absorb whatever an earlier
/// one would have. Hostile masks like `*a*a*a*a*b` therefore cannot cause exponential
/// backtracking.
pub fn mask_match(mask: &str, subject: &str) -> bool {
    let mask: Vec<char> = mask.chars().collect();
    let subject: Vec<char> = subject.chars().collect();
    let eq = |m: char, s: char| m == '?' || m.eq_ignore_ascii_case(&s);

    let (mut m, mut s) = (0, 0);
    // Position in the mask just after the last '*', and the subject position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while s < subject.len() {
        match mask.get(m) {
            Some('*') => {
                m += 1;
                star = Some((m, s));
            }
            Some(&c) if eq(c, subject[s]) => {
                m += 1;
                s += 1;
            }
            _ => match star {
                // Let the last star absorb one more character and retry from there.
                Some((star_m, star_s)) => {
                    m = star_m;
                    s = star_s + 1;
                    star = Some((star_m, star_s + 1));
                }
                None => return false,
            },
        }
    }
    mask[m..].iter().all(|&c| c == '*')
}
