//! A minimal unsigned big integer: just what exact decimal <-> binary
//! conversion of 80-bit floats needs (see `long_double`). Little-endian
//! 32-bit limbs, always normalized (no high zero limbs). Schoolbook
//! algorithms: the numbers stay below ~34 000 bits because callers bound
//! exponents before building them.

use std::cmp::Ordering;

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct BigUint {
    limbs: Vec<u32>,
}

impl BigUint {
    pub(super) fn zero() -> BigUint {
        BigUint { limbs: Vec::new() }
    }

    pub(super) fn from_u64(value: u64) -> BigUint {
        let mut number = BigUint { limbs: vec![value as u32, (value >> 32) as u32] };
        number.normalize();
        number
    }

    /// 10^exponent.
    pub(super) fn pow10(exponent: u32) -> BigUint {
        let mut number = BigUint::from_u64(1);
        let mut left = exponent;
        while left >= 9 {
            number.mul_small(1_000_000_000);
            left -= 9;
        }
        number.mul_small(10u32.pow(left));
        number
    }

    /// 2^exponent.
    pub(super) fn pow2(exponent: u64) -> BigUint {
        BigUint::from_u64(1).shl(exponent)
    }

    fn normalize(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    pub(super) fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    pub(super) fn bit_len(&self) -> u64 {
        match self.limbs.last() {
            None => 0,
            Some(top) => (self.limbs.len() as u64 - 1) * 32 + u64::from(32 - top.leading_zeros()),
        }
    }

    /// The value if it fits in 128 bits.
    #[cfg(test)]
    pub(super) fn to_u128(&self) -> Option<u128> {
        if self.limbs.len() > 4 {
            return None;
        }
        Some(self.limbs.iter().rev().fold(0u128, |acc, limb| (acc << 32) | u128::from(*limb)))
    }

    pub(super) fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.limbs {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = product as u32;
            carry = product >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
        self.normalize();
    }

    pub(super) fn add_small(&mut self, addend: u32) {
        let mut carry = u64::from(addend);
        for limb in &mut self.limbs {
            if carry == 0 {
                break;
            }
            let sum = u64::from(*limb) + carry;
            *limb = sum as u32;
            carry = sum >> 32;
        }
        if carry != 0 {
            self.limbs.push(carry as u32);
        }
    }

    pub(super) fn mul(&self, other: &BigUint) -> BigUint {
        if self.is_zero() || other.is_zero() {
            return BigUint::zero();
        }
        let mut limbs = vec![0u32; self.limbs.len() + other.limbs.len()];
        for (i, a) in self.limbs.iter().enumerate() {
            let mut carry = 0u64;
            for (j, b) in other.limbs.iter().enumerate() {
                let current = u64::from(limbs[i + j]) + u64::from(*a) * u64::from(*b) + carry;
                limbs[i + j] = current as u32;
                carry = current >> 32;
            }
            limbs[i + other.limbs.len()] = carry as u32;
        }
        let mut number = BigUint { limbs };
        number.normalize();
        number
    }

    pub(super) fn add(&self, other: &BigUint) -> BigUint {
        let (long, short) = if self.limbs.len() >= other.limbs.len() { (self, other) } else { (other, self) };
        let mut limbs = Vec::with_capacity(long.limbs.len() + 1);
        let mut carry = 0u64;
        for (i, limb) in long.limbs.iter().enumerate() {
            let sum = u64::from(*limb) + u64::from(*short.limbs.get(i).unwrap_or(&0)) + carry;
            limbs.push(sum as u32);
            carry = sum >> 32;
        }
        if carry != 0 {
            limbs.push(carry as u32);
        }
        BigUint { limbs }
    }

    /// `self - other`; `self >= other` is required.
    pub(super) fn sub(&self, other: &BigUint) -> BigUint {
        assert!(self.cmp_to(other) != Ordering::Less, "BigUint::sub would go negative");
        let mut limbs = Vec::with_capacity(self.limbs.len());
        let mut borrow = 0i64;
        for (i, limb) in self.limbs.iter().enumerate() {
            let mut difference = i64::from(*limb) - i64::from(*other.limbs.get(i).unwrap_or(&0)) - borrow;
            borrow = 0;
            if difference < 0 {
                difference += 1 << 32;
                borrow = 1;
            }
            limbs.push(difference as u32);
        }
        let mut number = BigUint { limbs };
        number.normalize();
        number
    }

    pub(super) fn shl(&self, bits: u64) -> BigUint {
        if self.is_zero() {
            return BigUint::zero();
        }
        let whole = (bits / 32) as usize;
        let part = (bits % 32) as u32;
        let mut limbs = vec![0u32; whole];
        limbs.reserve(self.limbs.len() + 1);
        if part == 0 {
            limbs.extend_from_slice(&self.limbs);
        } else {
            let mut carry = 0u32;
            for limb in &self.limbs {
                limbs.push((limb << part) | carry);
                carry = limb >> (32 - part);
            }
            limbs.push(carry);
        }
        let mut number = BigUint { limbs };
        number.normalize();
        number
    }

    pub(super) fn cmp_to(&self, other: &BigUint) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    /// Divides in place by a small divisor and returns the remainder.
    fn div_small(&mut self, divisor: u32) -> u32 {
        let mut remainder = 0u64;
        for limb in self.limbs.iter_mut().rev() {
            let current = (remainder << 32) | u64::from(*limb);
            *limb = (current / u64::from(divisor)) as u32;
            remainder = current % u64::from(divisor);
        }
        self.normalize();
        remainder as u32
    }

    /// Quotient and remainder of `self / divisor` when the quotient is known
    /// to be below 2^127 (bit-by-bit long division: cheap for such quotients).
    pub(super) fn div_rem_small_quotient(&self, divisor: &BigUint) -> (u128, BigUint) {
        assert!(!divisor.is_zero(), "division by zero");
        let mut remainder = self.clone();
        let mut quotient = 0u128;
        let span = self.bit_len().saturating_sub(divisor.bit_len());
        assert!(span < 127, "quotient too large for div_rem_small_quotient");
        for shift in (0..=span).rev() {
            let shifted = divisor.shl(shift);
            if remainder.cmp_to(&shifted) != Ordering::Less {
                remainder = remainder.sub(&shifted);
                quotient |= 1u128 << shift;
            }
        }
        (quotient, remainder)
    }

    /// Decimal digits, most significant first ("0" for zero).
    pub(super) fn to_decimal(&self) -> Vec<u8> {
        if self.is_zero() {
            return b"0".to_vec();
        }
        let mut number = self.clone();
        let mut chunks = Vec::new();
        while !number.is_zero() {
            chunks.push(number.div_small(1_000_000_000));
        }
        let mut text = chunks.pop().map(|top| top.to_string()).unwrap_or_default().into_bytes();
        for chunk in chunks.iter().rev() {
            text.extend_from_slice(format!("{chunk:09}").as_bytes());
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arithmetic_matches_u128() {
        let a = BigUint::from_u64(0xFFFF_FFFF_FFFF_FFFF);
        let b = BigUint::from_u64(0x1234_5678_9ABC);
        assert_eq!(a.mul(&b).to_u128(), Some(0xFFFF_FFFF_FFFF_FFFFu128 * 0x1234_5678_9ABC));
        assert_eq!(a.add(&b).to_u128(), Some(0xFFFF_FFFF_FFFF_FFFFu128 + 0x1234_5678_9ABC));
        assert_eq!(a.sub(&b).to_u128(), Some(0xFFFF_FFFF_FFFF_FFFFu128 - 0x1234_5678_9ABC));
        assert_eq!(b.shl(37).to_u128(), Some(0x1234_5678_9ABCu128 << 37));
        let (q, r) = a.shl(40).div_rem_small_quotient(&b);
        let n = 0xFFFF_FFFF_FFFF_FFFFu128 << 40;
        assert_eq!((q, r.to_u128()), (n / 0x1234_5678_9ABC, Some(n % 0x1234_5678_9ABC)));
    }

    #[test]
    fn decimal_rendering_is_exact() {
        assert_eq!(BigUint::pow10(30).to_decimal(), b"1000000000000000000000000000000".to_vec());
        assert_eq!(BigUint::pow2(64).to_decimal(), b"18446744073709551616".to_vec());
        assert_eq!(BigUint::zero().to_decimal(), b"0".to_vec());
        assert_eq!(BigUint::pow2(70).bit_len(), 71);
    }
}
