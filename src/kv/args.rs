//! Argument parsing shared by the commands, reproducing the C functions
//! Redis uses, quirks included (see each function).

use super::long_double::is_c_space;

/// The argument as C code sees it through `char *`: up to the first NUL.
/// Redis matches options with `strcasecmp` and prints arguments with `%s`,
/// both of which stop there.
pub(super) fn c_string(arg: &[u8]) -> &[u8] {
    match arg.iter().position(|b| *b == 0) {
        Some(end) => &arg[..end],
        None => arg,
    }
}

/// `!strcasecmp(arg, name)`.
pub(super) fn option_is(arg: &[u8], name: &str) -> bool {
    c_string(arg).eq_ignore_ascii_case(name.as_bytes())
}

/// Bytes for an error text. Replies carry errors as `String`, so bytes that
/// are not UTF-8 show as U+FFFD (Redis would echo them raw).
pub(super) fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Redis's `string2ll`: optional '-', no '+', no leading zeros (but "0"),
/// no spaces, fewer than 21 bytes, within i64.
pub(super) fn parse_i64(text: &[u8]) -> Option<i64> {
    const LONG_STR_BYTES: usize = 21;
    if text.is_empty() || text.len() >= LONG_STR_BYTES {
        return None;
    }
    if text == b"0" {
        return Some(0);
    }
    let (negative, digits) = match text[0] {
        b'-' => (true, &text[1..]),
        _ => (false, text),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut magnitude: u64 = 0;
    for digit in digits {
        if !digit.is_ascii_digit() {
            return None;
        }
        magnitude = magnitude.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    if negative {
        0i64.checked_sub_unsigned(magnitude)
    } else {
        i64::try_from(magnitude).ok()
    }
}

/// SCAN's cursor through `strtoul(.., 10)`: a C string, no leading space,
/// an optional sign (a '-' wraps around, as in C), nothing after the
/// digits; "" is cursor 0 (no conversion, and `*endptr` is the NUL).
pub(super) fn parse_cursor(arg: &[u8]) -> Option<u64> {
    let text = c_string(arg);
    if text.is_empty() {
        return Some(0);
    }
    if is_c_space(text[0]) {
        return None;
    }
    let (negative, digits) = match text[0] {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let mut value: u64 = 0;
    for digit in digits {
        value = value.checked_mul(10)?.checked_add(u64::from(digit - b'0'))?;
    }
    Some(if negative { value.wrapping_neg() } else { value })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_parse_like_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-12"), Some(-12));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in ["", "-", "-0", "+1", "01", " 1", "1 ", "9223372036854775808", "1.0", "1\0"] {
            assert_eq!(parse_i64(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn cursors_parse_like_strtoul() {
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"+5"), Some(5));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"7\0junk"), Some(7));
        for bad in [" 1", "1 ", "+", "x", "18446744073709551616"] {
            assert_eq!(parse_cursor(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
