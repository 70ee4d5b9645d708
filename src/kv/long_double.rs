//! INCRBYFLOAT arithmetic, bit for bit as Redis does it on x86-64 Linux:
//! the C `long double` there is the x87 80-bit extended format (64-bit
//! significand, exponents down to 2^-16445 with subnormals, up to 2^16384),
//! parsed by glibc `strtold` (correctly rounded, half to even), added with
//! one correctly rounded addition, and printed with `"%.17Lf"` (exact
//! decimal expansion rounded half to even) before trailing zeros are
//! trimmed (`ld2string(.., LD_STR_HUMAN)`).
//!
//! Rust has no such type and the core may use no `unsafe` or foreign code,
//! so this is a small software model of exactly those three operations on
//! top of `bignum`. Pure and deterministic: every replica, on every
//! architecture, computes the same bytes.

use super::bignum::BigUint;
use std::cmp::Ordering;

/// Redis's `MAX_LONG_DOUBLE_CHARS`: longer inputs are not valid floats.
const TEXT_BYTES_MAX: usize = 5 * 1024;
/// Significand bits of the x87 extended format.
const SIGNIFICAND_BITS: i64 = 64;
/// The smallest exponent of a significand bit (the lowest subnormal).
const LSB_EXPONENT_MIN: i64 = -16445;
/// Finite values are below 2^16384.
const MSB_EXPONENT_LIMIT: i64 = 16384;

/// An 80-bit extended float. Finite values are `mantissa * 2^exponent`
/// (not necessarily normalized: equality is not by value).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LongDouble {
    Finite { negative: bool, mantissa: u64, exponent: i32 },
    Infinite { negative: bool },
    NotANumber,
}

impl LongDouble {
    pub(super) fn from_i64(value: i64) -> LongDouble {
        LongDouble::Finite { negative: value < 0, mantissa: value.unsigned_abs(), exponent: 0 }
    }

    fn zero(negative: bool) -> LongDouble {
        LongDouble::Finite { negative, mantissa: 0, exponent: 0 }
    }

    pub(super) fn is_finite(&self) -> bool {
        matches!(self, LongDouble::Finite { .. })
    }

    /// Redis's `string2ld`: the whole input must be one number `strtold`
    /// accepts (decimal, hexadecimal `0x1.8p3`, `inf`/`infinity`), without
    /// leading space; NaN, overflow, and underflow to zero are rejected.
    pub(super) fn parse(text: &[u8]) -> Option<LongDouble> {
        if text.is_empty() || text.len() >= TEXT_BYTES_MAX || is_c_space(text[0]) {
            return None;
        }
        let (negative, body) = match text[0] {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        if body.eq_ignore_ascii_case(b"inf") || body.eq_ignore_ascii_case(b"infinity") {
            return Some(LongDouble::Infinite { negative });
        }
        if body.len() > 2 && body[0] == b'0' && (body[1] | 0x20) == b'x' {
            parse_hex(negative, &body[2..])
        } else {
            parse_decimal(negative, body)
        }
    }

    /// One correctly rounded addition (round to nearest, ties to even).
    pub(super) fn add(self, other: LongDouble) -> LongDouble {
        use LongDouble::*;
        match (self, other) {
            (NotANumber, _) | (_, NotANumber) => NotANumber,
            (Infinite { negative: a }, Infinite { negative: b }) if a != b => NotANumber,
            (Infinite { negative }, _) | (_, Infinite { negative }) => Infinite { negative },
            (
                Finite { negative: a_negative, mantissa: a_mantissa, exponent: a_exponent },
                Finite { negative: b_negative, mantissa: b_mantissa, exponent: b_exponent },
            ) => {
                if a_mantissa == 0 && b_mantissa == 0 {
                    return LongDouble::zero(a_negative && b_negative);
                }
                if a_mantissa == 0 {
                    return other;
                }
                if b_mantissa == 0 {
                    return self;
                }
                let exponent = a_exponent.min(b_exponent);
                let a = BigUint::from_u64(a_mantissa).shl((a_exponent - exponent) as u64);
                let b = BigUint::from_u64(b_mantissa).shl((b_exponent - exponent) as u64);
                let (negative, sum) = if a_negative == b_negative {
                    (a_negative, a.add(&b))
                } else {
                    match a.cmp_to(&b) {
                        Ordering::Equal => return LongDouble::zero(false),
                        Ordering::Greater => (a_negative, a.sub(&b)),
                        Ordering::Less => (b_negative, b.sub(&a)),
                    }
                };
                if exponent >= 0 {
                    round(negative, &sum.shl(exponent as u64), &BigUint::from_u64(1))
                } else {
                    round(negative, &sum, &BigUint::pow2(u64::from(exponent.unsigned_abs())))
                }
            }
        }
    }

    /// `printf("%.17Lf")` with trailing zeros (and a bare '.') removed and
    /// "-0" written "0": Redis's human-friendly long double format.
    pub(super) fn format_human(&self) -> Vec<u8> {
        let (negative, mantissa, exponent) = match *self {
            LongDouble::Finite { negative, mantissa, exponent } => (negative, mantissa, exponent),
            LongDouble::Infinite { negative: false } => return b"inf".to_vec(),
            LongDouble::Infinite { negative: true } => return b"-inf".to_vec(),
            LongDouble::NotANumber => return b"nan".to_vec(),
        };
        let scaled = BigUint::from_u64(mantissa).mul(&BigUint::pow10(17));
        let hundred_quadrillionths = if exponent >= 0 {
            scaled.shl(exponent as u64)
        } else {
            let divisor = BigUint::pow2(u64::from(exponent.unsigned_abs()));
            let (quotient, remainder) = scaled.div_rem_small_quotient(&divisor);
            let round_up = match remainder.shl(1).cmp_to(&divisor) {
                Ordering::Greater => true,
                Ordering::Equal => quotient & 1 == 1,
                Ordering::Less => false,
            };
            let quotient = quotient + u128::from(round_up);
            let mut number = BigUint::from_u64((quotient >> 64) as u64).shl(64);
            number = number.add(&BigUint::from_u64(quotient as u64));
            number
        };
        let mut digits = hundred_quadrillionths.to_decimal();
        if digits.len() < 18 {
            let mut padded = vec![b'0'; 18 - digits.len()];
            padded.extend_from_slice(&digits);
            digits = padded;
        }
        let point = digits.len() - 17;
        let mut text = Vec::with_capacity(digits.len() + 2);
        if negative {
            text.push(b'-');
        }
        text.extend_from_slice(&digits[..point]);
        text.push(b'.');
        text.extend_from_slice(&digits[point..]);
        while text.last() == Some(&b'0') {
            text.pop();
        }
        if text.last() == Some(&b'.') {
            text.pop();
        }
        if text == b"-0" {
            text = b"0".to_vec();
        }
        text
    }
}

/// A nonzero input's value, unless it overflowed or rounded to zero:
/// strtold reports ERANGE for both, and string2ld rejects them.
fn nonzero_in_range(value: LongDouble) -> Option<LongDouble> {
    match value {
        LongDouble::Finite { mantissa, .. } if mantissa != 0 => Some(value),
        _ => None,
    }
}

/// C `isspace` in the C locale.
pub(super) fn is_c_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// Decimal exponent digits, saturating far beyond any meaningful value.
fn parse_exponent(text: &[u8]) -> Option<i64> {
    let (negative, digits) = match text.first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let magnitude =
        digits.iter().fold(0i64, |acc, digit| (acc * 10 + i64::from(digit - b'0')).min(1_000_000_000_000));
    Some(if negative { -magnitude } else { magnitude })
}

/// `digits [. digits] [e exponent]`, at least one digit.
fn parse_decimal(negative: bool, text: &[u8]) -> Option<LongDouble> {
    let mantissa_end = text.iter().position(|b| *b == b'e' || *b == b'E').unwrap_or(text.len());
    let exponent = if mantissa_end < text.len() { parse_exponent(&text[mantissa_end + 1..])? } else { 0 };
    let mantissa = &text[..mantissa_end];
    let (integer, fraction) = match mantissa.iter().position(|b| *b == b'.') {
        Some(point) => (&mantissa[..point], &mantissa[point + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    let all_digits = integer.iter().chain(fraction).all(u8::is_ascii_digit);
    if !all_digits || integer.len() + fraction.len() == 0 {
        return None;
    }
    let significant: Vec<u8> =
        integer.iter().chain(fraction).copied().skip_while(|digit| *digit == b'0').collect();
    if significant.is_empty() {
        return Some(LongDouble::zero(negative));
    }
    // value = significant * 10^scale
    let scale = exponent - fraction.len() as i64;
    let top_decimal_exponent = scale + significant.len() as i64 - 1;
    if top_decimal_exponent > 4932 {
        return None;
    }
    if top_decimal_exponent < -4952 {
        // Below half the smallest subnormal (about 1.8e-4951): rounds to zero.
        return None;
    }
    let mut number = BigUint::zero();
    for chunk in significant.chunks(9) {
        let chunk_value = chunk.iter().fold(0u32, |acc, digit| acc * 10 + u32::from(digit - b'0'));
        number.mul_small(10u32.pow(chunk.len() as u32));
        number.add_small(chunk_value);
    }
    nonzero_in_range(if scale >= 0 {
        round(negative, &number.mul(&BigUint::pow10(scale as u32)), &BigUint::from_u64(1))
    } else {
        round(negative, &number, &BigUint::pow10(scale.unsigned_abs() as u32))
    })
}

/// After "0x": `hexdigits [. hexdigits] [p exponent]`, at least one digit.
fn parse_hex(negative: bool, text: &[u8]) -> Option<LongDouble> {
    let mantissa_end = text.iter().position(|b| *b == b'p' || *b == b'P').unwrap_or(text.len());
    let exponent = if mantissa_end < text.len() { parse_exponent(&text[mantissa_end + 1..])? } else { 0 };
    let mantissa = &text[..mantissa_end];
    let (integer, fraction) = match mantissa.iter().position(|b| *b == b'.') {
        Some(point) => (&mantissa[..point], &mantissa[point + 1..]),
        None => (mantissa, &mantissa[..0]),
    };
    let all_digits = integer.iter().chain(fraction).all(u8::is_ascii_hexdigit);
    if !all_digits || integer.len() + fraction.len() == 0 {
        return None;
    }
    let mut number = BigUint::zero();
    for digit in integer.iter().chain(fraction).skip_while(|digit| **digit == b'0') {
        number.mul_small(16);
        number.add_small((*digit as char).to_digit(16).unwrap_or(0));
    }
    if number.is_zero() {
        return Some(LongDouble::zero(negative));
    }
    let scale = exponent - 4 * fraction.len() as i64;
    let top_bit = scale + number.bit_len() as i64 - 1;
    if !(LSB_EXPONENT_MIN - 2..MSB_EXPONENT_LIMIT).contains(&top_bit) {
        return None;
    }
    nonzero_in_range(if scale >= 0 {
        round(negative, &number.shl(scale as u64), &BigUint::from_u64(1))
    } else {
        round(negative, &number, &BigUint::pow2(scale.unsigned_abs()))
    })
}

/// Rounds the exact positive rational `numerator / denominator` to the
/// extended format, half to even; may give zero or infinity.
fn round(negative: bool, numerator: &BigUint, denominator: &BigUint) -> LongDouble {
    if numerator.is_zero() {
        return LongDouble::zero(negative);
    }
    let estimate = numerator.bit_len() as i64 - denominator.bit_len() as i64;
    let at_least_estimate = if estimate >= 0 {
        numerator.cmp_to(&denominator.shl(estimate as u64)) != Ordering::Less
    } else {
        numerator.shl(estimate.unsigned_abs()).cmp_to(denominator) != Ordering::Less
    };
    let top_bit = if at_least_estimate { estimate } else { estimate - 1 };
    if top_bit >= MSB_EXPONENT_LIMIT {
        return LongDouble::Infinite { negative };
    }
    if top_bit < LSB_EXPONENT_MIN - 2 {
        return LongDouble::zero(negative);
    }
    let mut lsb = (top_bit - (SIGNIFICAND_BITS - 1)).max(LSB_EXPONENT_MIN);
    let (quotient, remainder, divisor) = if lsb >= 0 {
        let divisor = denominator.shl(lsb as u64);
        let (quotient, remainder) = numerator.div_rem_small_quotient(&divisor);
        (quotient, remainder, divisor)
    } else {
        let (quotient, remainder) = numerator.shl(lsb.unsigned_abs()).div_rem_small_quotient(denominator);
        (quotient, remainder, denominator.clone())
    };
    let round_up = match remainder.shl(1).cmp_to(&divisor) {
        Ordering::Greater => true,
        Ordering::Equal => quotient & 1 == 1,
        Ordering::Less => false,
    };
    let mut quotient = quotient + u128::from(round_up);
    if quotient == 1u128 << SIGNIFICAND_BITS {
        quotient >>= 1;
        lsb += 1;
    }
    assert!(quotient < 1u128 << SIGNIFICAND_BITS, "rounded significand wider than 64 bits");
    if quotient != 0 && lsb + (127 - quotient.leading_zeros() as i64) >= MSB_EXPONENT_LIMIT {
        return LongDouble::Infinite { negative };
    }
    LongDouble::Finite { negative, mantissa: quotient as u64, exponent: lsb as i32 }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn incr(value: &str, by: &str) -> Option<String> {
        let sum = LongDouble::parse(value.as_bytes())?.add(LongDouble::parse(by.as_bytes())?);
        sum.is_finite().then(|| String::from_utf8(sum.format_human()).unwrap())
    }

    // Expected strings were produced by redis-server 7.0.15 on x86-64.
    #[test]
    fn sums_print_like_redis_on_x87() {
        assert_eq!(incr("10", "0.5").as_deref(), Some("10.5"));
        assert_eq!(incr("10.5", "2990").as_deref(), Some("3000.5"));
        assert_eq!(incr("0.1", "-0.05").as_deref(), Some("0.05"));
        assert_eq!(incr("0.1", "0.2").as_deref(), Some("0.3"));
        assert_eq!(incr("0.3", "0x1p-3").as_deref(), Some("0.425"));
        assert_eq!(incr("1", "0.00000000000000001").as_deref(), Some("1.00000000000000001"));
        assert_eq!(incr("1.00000000000000001", "1e18").as_deref(), Some("1000000000000000001"));
        assert_eq!(incr("0", "-1e-5").as_deref(), Some("-0.00001"));
        assert_eq!(incr("-0.0000000000000000001", "0").as_deref(), Some("0"));
        assert_eq!(incr("1e-4940", "0").as_deref(), Some("0"));
        assert_eq!(incr("5", "-1e-4950").as_deref(), Some("5"));
        assert_eq!(incr("3.0e3", "0").as_deref(), Some("3000"));
    }

    #[test]
    fn exact_decimal_ties_round_half_even() {
        // 2^-18 and 3 * 2^-18 end in a 5 at the 18th decimal.
        assert_eq!(incr("0.000003814697265625", "0").as_deref(), Some("0.00000381469726562"));
        assert_eq!(incr("0.000011444091796875", "0").as_deref(), Some("0.00001144409179688"));
    }

    #[test]
    fn huge_values_print_every_integer_digit() {
        let text = incr("1", "1e400").unwrap();
        assert!(text.starts_with("100000000000000000002818806839475865"), "{text}");
        assert_eq!(text.len(), 401);
    }

    #[test]
    fn invalid_floats_are_rejected_like_string2ld() {
        for bad in [
            "", " 1", "1 ", "1e", ".", "0x", "-nan", "nan", "1e5000", "1.2e4932", "1e-4960", "abc", "1\0",
            "++1", "0x1p", "infin",
        ] {
            assert_eq!(LongDouble::parse(bad.as_bytes()), None, "{bad:?}");
        }
        for good in ["+.5e1", "0x.8", "INFINITY", "-inf", "1e4932", "-1e-4950", "0e-99999", "1."] {
            assert!(LongDouble::parse(good.as_bytes()).is_some(), "{good:?}");
        }
        assert!(!LongDouble::parse(b"inf").unwrap().add(LongDouble::from_i64(1)).is_finite());
    }
}
