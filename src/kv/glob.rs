//! Glob matching for KEYS and SCAN MATCH, with the exact semantics of
//! Redis's `stringmatchlen` (case-sensitive): `*`, `?`, `[abc]`, `[^a]`,
//! `[a-z]` (bounds compared as signed C chars, swapped when reversed),
//! `\x` escapes, an unterminated `[` class running to the end of the
//! pattern, and an empty string matched only by an empty pattern.
//!
//! Redis recurses once per `*`; this is the equivalent iterative matcher
//! (one backtracking point), so a pattern of a million stars cannot
//! overflow the stack.

/// Whether `string` matches `pattern`.
pub(crate) fn string_match(pattern: &[u8], string: &[u8]) -> bool {
    if string.is_empty() {
        // Redis's loop never runs on an empty string: only "" matches.
        return pattern.is_empty();
    }
    let (mut p, mut s) = (0, 0);
    // Where to resume after the last `*`: pattern index after the stars,
    // and the string index the star's match currently ends at.
    let mut resume: Option<(usize, usize)> = None;
    loop {
        if p < pattern.len() && pattern[p] == b'*' {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            if p == pattern.len() {
                return true;
            }
            resume = Some((p, s));
            continue;
        }
        if s == string.len() {
            return p == pattern.len();
        }
        if p < pattern.len() {
            let (matched, token_bytes) = match_token(&pattern[p..], string[s]);
            if matched {
                p += token_bytes;
                s += 1;
                continue;
            }
        }
        match resume {
            Some((star_p, star_s)) if star_s < string.len() => {
                resume = Some((star_p, star_s + 1));
                p = star_p;
                s = star_s + 1;
            }
            _ => return false,
        }
    }
}

/// Matches one non-star token at the start of `pattern` against `byte`;
/// returns whether it matched and how many pattern bytes the token spans.
fn match_token(pattern: &[u8], byte: u8) -> (bool, usize) {
    match pattern[0] {
        b'?' => (true, 1),
        b'[' => match_class(pattern, byte),
        b'\\' if pattern.len() >= 2 => (pattern[1] == byte, 2),
        literal => (literal == byte, 1),
    }
}

/// A `[...]` class, parsed exactly as Redis's loop does (`left` mirrors its
/// `patternLen`, and reading past the end sees the C string's NUL).
fn match_class(pattern: &[u8], byte: u8) -> (bool, usize) {
    let at = |index: usize| pattern.get(index).copied().unwrap_or(0);
    let signed = |b: u8| i32::from(b as i8);
    let mut index = 1;
    let mut left = pattern.len() - 1;
    let negate = at(index) == b'^';
    if negate {
        index += 1;
        left -= 1;
    }
    let mut matched = false;
    loop {
        if at(index) == b'\\' && left >= 2 {
            index += 1;
            left -= 1;
            if at(index) == byte {
                matched = true;
            }
        } else if at(index) == b']' {
            break;
        } else if left == 0 {
            // Unterminated class: it ends with the pattern.
            index -= 1;
            break;
        } else if left >= 3 && at(index + 1) == b'-' {
            let (mut start, mut end) = (signed(at(index)), signed(at(index + 2)));
            if start > end {
                std::mem::swap(&mut start, &mut end);
            }
            index += 2;
            left -= 2;
            if (start..=end).contains(&signed(byte)) {
                matched = true;
            }
        } else if at(index) == byte {
            matched = true;
        }
        index += 1;
        left -= 1;
    }
    (matched != negate, index + 1)
}

#[cfg(test)]
mod tests {
    use super::string_match;

    fn matches(pattern: &str, string: &str) -> bool {
        string_match(pattern.as_bytes(), string.as_bytes())
    }

    #[test]
    fn glob_syntax_matches_like_redis_stringmatchlen() {
        assert!(matches("*", "abc"));
        assert!(matches("a*", "a"));
        assert!(matches("a*c", "abbbc"));
        assert!(!matches("a*c", "abbbd"));
        assert!(matches("h?llo", "hello"));
        assert!(matches("h[ae]llo", "hallo"));
        assert!(!matches("h[^e]llo", "hello"));
        assert!(matches("h[a-b]llo", "hbllo"));
        assert!(matches("h[b-a]llo", "hallo"), "reversed ranges are swapped");
        assert!(matches("h\\*llo", "h*llo"));
        assert!(!matches("h\\*llo", "hello"));
        assert!(matches("[abc", "c"), "an unterminated class runs to the end");
        assert!(matches("a\\", "a\\"), "a trailing backslash is literal");
        assert!(!matches("[]", "]"), "a class closed at once is empty");
        assert!(!matches("[]]", "]"));
        assert!(matches("*a*b*c*", "xxaxxbxxcxx"));
        assert!(!matches("*a*b*c*d", "xxaxxbxxcxx"));
    }

    #[test]
    fn empty_string_matches_only_empty_pattern() {
        assert!(matches("", ""));
        assert!(!matches("*", ""));
        assert!(!matches("", "a"));
    }

    #[test]
    fn many_stars_do_not_recurse() {
        let pattern = "*a".repeat(50_000);
        assert!(!string_match(pattern.as_bytes(), &[b'a'; 100]));
    }
}
