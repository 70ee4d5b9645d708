//! Sorted set scores as Redis 7.0 reads and prints them: C's `strtod`
//! (which Rust's float parsing is not: hex floats, "infinity", leading
//! spaces, range errors) under the checks of Redis's `getDoubleFromObject`
//! and `zslParseRange`, and `%.17g` for replies.

use super::args::c_string;
use super::long_double::is_c_space;

/// What glibc's `strtod` makes of the start of `text`: the value, how many
/// bytes it read (0: no number), and whether it set ERANGE because the
/// number overflowed to infinity or underflowed to zero.
pub(super) fn strtod(text: &[u8]) -> (f64, usize, bool) {
    let mut at = 0;
    while at < text.len() && is_c_space(text[at]) {
        at += 1;
    }
    let negative = text.get(at) == Some(&b'-');
    if matches!(text.get(at), Some(b'-' | b'+')) {
        at += 1;
    }
    let sign = if negative { -1.0 } else { 1.0 };
    let rest = &text[at..];
    if starts_with_ignore_case(rest, b"inf") {
        let length = if starts_with_ignore_case(rest, b"infinity") { 8 } else { 3 };
        return (sign * f64::INFINITY, at + length, false);
    }
    if starts_with_ignore_case(rest, b"nan") {
        let mut length = 3;
        if rest.get(3) == Some(&b'(') {
            let inner = rest[4..].iter().take_while(|b| b.is_ascii_alphanumeric() || **b == b'_').count();
            if rest.get(4 + inner) == Some(&b')') {
                length = 5 + inner;
            }
        }
        return (f64::NAN, at + length, false);
    }
    if rest.len() > 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((value, length, range_error)) = hex(&rest[2..]) {
            return (sign * value, at + 2 + length, range_error);
        }
    }
    decimal(text, at, negative)
}

fn starts_with_ignore_case(text: &[u8], prefix: &[u8]) -> bool {
    text.len() >= prefix.len() && text[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// A decimal number from `start` (after the sign): digits, an optional
/// point and digits (one digit at least), an optional exponent.
fn decimal(text: &[u8], start: usize, negative: bool) -> (f64, usize, bool) {
    let digits = |from: usize| text[from..].iter().take_while(|b| b.is_ascii_digit()).count();
    let mut end = start;
    let integer = digits(end);
    end += integer;
    let mut fraction = 0;
    if text.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if integer + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if integer + fraction == 0 {
        return (0.0, 0, false);
    }
    let mantissa_end = end;
    if matches!(text.get(end), Some(b'e' | b'E')) {
        let mut exponent = end + 1;
        if matches!(text.get(exponent), Some(b'-' | b'+')) {
            exponent += 1;
        }
        let exponent_digits = digits(exponent);
        if exponent_digits > 0 {
            end = exponent + exponent_digits;
        }
    }
    let body = std::str::from_utf8(&text[start..end]).expect("ASCII");
    let magnitude: f64 = body.parse().unwrap_or(f64::INFINITY);
    let nonzero = text[start..mantissa_end].iter().any(|b| (b'1'..=b'9').contains(b));
    let range_error = magnitude.is_infinite() || (magnitude == 0.0 && nonzero);
    (if negative { -magnitude } else { magnitude }, end, range_error)
}

/// A hex float after its "0x": hex digits with an optional point (one
/// digit at least), an optional binary exponent `p[sign]digits`; `None`
/// if no digit follows (strtod then reads just the "0"). Correctly
/// rounded to nearest, ties to even.
fn hex(text: &[u8]) -> Option<(f64, usize, bool)> {
    let mut mantissa: u64 = 0;
    let mut exponent: i64 = 0;
    let mut sticky = false;
    let mut seen = 0;
    let mut at = 0;
    let mut point = false;
    while at < text.len() {
        let byte = text[at];
        if byte == b'.' && !point {
            point = true;
            at += 1;
            continue;
        }
        let Some(digit) = (byte as char).to_digit(16) else { break };
        seen += 1;
        if mantissa >> 60 == 0 {
            mantissa = mantissa << 4 | u64::from(digit);
            if point {
                exponent -= 4;
            }
        } else {
            sticky |= digit != 0;
            if !point {
                exponent += 4;
            }
        }
        at += 1;
    }
    if seen == 0 {
        return None;
    }
    if (text.get(at).copied().unwrap_or(0) | 0x20) == b'p' {
        let mut cursor = at + 1;
        let negative = text.get(cursor) == Some(&b'-');
        if matches!(text.get(cursor), Some(b'-' | b'+')) {
            cursor += 1;
        }
        let count = text[cursor..].iter().take_while(|b| b.is_ascii_digit()).count();
        if count > 0 {
            let mut value: i64 = 0;
            for byte in &text[cursor..cursor + count] {
                value = (value * 10 + i64::from(byte - b'0')).min(1 << 40);
            }
            exponent += if negative { -value } else { value };
            at = cursor + count;
        }
    }
    let (value, range_error) = compose(mantissa, exponent, sticky);
    Some((value, at, range_error))
}

/// `mantissa * 2^exponent` (plus a little if `sticky`) rounded to a double.
fn compose(mantissa: u64, exponent: i64, sticky: bool) -> (f64, bool) {
    if mantissa == 0 {
        return (0.0, false);
    }
    let shift = mantissa.leading_zeros();
    let bits = u128::from(mantissa << shift) << 64;
    // The value is bits * 2^(exponent - shift - 64); its leading bit is 2^top.
    let top = exponent - i64::from(shift) + 63;
    if top > 1023 {
        return (f64::INFINITY, true);
    }
    let kept = if top >= -1022 { 53 } else { 53 - (-1022 - top) };
    if kept < 0 {
        return (0.0, true);
    }
    let drop = 128 - kept as u32;
    let quotient = if drop >= 128 { 0 } else { bits >> drop };
    let remainder = if drop >= 128 { bits } else { bits & ((1u128 << drop) - 1) };
    let half = 1u128 << (drop - 1);
    let round_up = remainder > half || (remainder == half && (sticky || quotient & 1 == 1));
    let quotient = quotient + u128::from(round_up);
    if quotient == 0 {
        return (0.0, true);
    }
    let scale = top - kept + 1;
    let value = quotient as f64 * 2f64.powi((scale / 2) as i32) * 2f64.powi((scale - scale / 2) as i32);
    (value, value.is_infinite())
}

/// Redis's `getDoubleFromObject`: the whole argument is one number, no
/// leading space, no overflow or underflow to zero, not NaN.
pub(super) fn parse_score(text: &[u8]) -> Option<f64> {
    if text.is_empty() || is_c_space(text[0]) {
        return None;
    }
    let (value, length, range_error) = strtod(text);
    let out_of_range = range_error && (value.is_infinite() || value == 0.0);
    (length == text.len() && !out_of_range && !value.is_nan()).then_some(value)
}

/// One bound of `zslParseRange`: `(` makes it exclusive; then `strtod`
/// over the C string must read all of it (leading spaces, overflow and ""
/// are fine), and not NaN. Returns (value, exclusive).
pub(super) fn parse_score_bound(arg: &[u8]) -> Option<(f64, bool)> {
    let text = c_string(arg);
    let (text, exclusive) = match text.first() {
        Some(b'(') => (&text[1..], true),
        _ => (text, false),
    };
    let (value, length, _) = strtod(text);
    (length == text.len() && !value.is_nan()).then_some((value, exclusive))
}

/// Redis 7.0's reply text for a score: `%.17g`, "inf" and "-inf".
pub(super) fn format_score(value: f64) -> String {
    if value.is_infinite() {
        return if value > 0.0 { "inf".into() } else { "-inf".into() };
    }
    if value == 0.0 {
        return if value.is_sign_negative() { "-0".into() } else { "0".into() };
    }
    let scientific = format!("{value:.16e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("{:e} has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::new();
    if value < 0.0 {
        out.push('-');
    }
    let push_fraction = |out: &mut String, fraction: &str| {
        let fraction = fraction.trim_end_matches('0');
        if !fraction.is_empty() {
            out.push('.');
            out.push_str(fraction);
        }
    };
    if (-4..17).contains(&exponent) {
        if exponent >= 0 {
            let integer = exponent as usize + 1;
            out.push_str(&digits[..integer]);
            push_fraction(&mut out, &digits[integer..]);
        } else {
            out.push_str("0.");
            out.push_str(&"0".repeat((-exponent - 1) as usize));
            out.push_str(digits.trim_end_matches('0'));
        }
    } else {
        out.push_str(&digits[..1]);
        push_fraction(&mut out, &digits[1..]);
        let sign = if exponent < 0 { '-' } else { '+' };
        out.push_str(&format!("e{sign}{:02}", exponent.abs()));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_print_like_printf_17g() {
        let cases: [(f64, &str); 14] = [
            (1.5, "1.5"),
            (0.1, "0.10000000000000001"),
            (1e20, "1e+20"),
            (-0.0, "-0"),
            (100.0, "100"),
            (4503599627370497.0, "4503599627370497"),
            (1e-300, "1e-300"),
            (1e17, "1e+17"),
            (1e16, "10000000000000000"),
            (0.0001, "0.0001"),
            (0.00001, "1.0000000000000001e-05"),
            (f64::NEG_INFINITY, "-inf"),
            (5e-324, "4.9406564584124654e-324"),
            (-123456.789, "-123456.789"),
        ];
        for (value, text) in cases {
            assert_eq!(format_score(value), text, "{value:e}");
        }
    }

    #[test]
    fn scores_parse_like_get_double_from_object() {
        assert_eq!(parse_score(b"0x10"), Some(16.0));
        assert_eq!(parse_score(b"0x1.8p3"), Some(12.0));
        assert_eq!(parse_score(b"0X.8"), Some(0.5));
        assert_eq!(parse_score(b"0x1p-1074"), Some(5e-324));
        assert_eq!(parse_score(b"-Infinity"), Some(f64::NEG_INFINITY));
        assert_eq!(parse_score(b"1."), Some(1.0));
        assert_eq!(parse_score(b".5"), Some(0.5));
        assert_eq!(parse_score(b"1e-310"), Some(1e-310));
        assert_eq!(parse_score(b"0e-999"), Some(0.0));
        for bad in
            ["", " 1", "1 ", "abc", "nan", "1e400", "1e-400", "1e", "0x", "1\0", "0x1p-1080", "infinit"]
        {
            assert_eq!(parse_score(bad.as_bytes()), None, "{bad:?}");
        }
    }

    #[test]
    fn range_bounds_parse_like_zsl_parse_range() {
        assert_eq!(parse_score_bound(b"(1.5"), Some((1.5, true)));
        assert_eq!(parse_score_bound(b""), Some((0.0, false)));
        assert_eq!(parse_score_bound(b"("), Some((0.0, true)));
        assert_eq!(parse_score_bound(b" 1"), Some((1.0, false)));
        assert_eq!(parse_score_bound(b"1e400"), Some((f64::INFINITY, false)));
        assert_eq!(parse_score_bound(b"2\0junk"), Some((2.0, false)));
        for bad in [" ", "x", "nan", "(nan", "1 ", "[1"] {
            assert_eq!(parse_score_bound(bad.as_bytes()), None, "{bad:?}");
        }
    }
}
