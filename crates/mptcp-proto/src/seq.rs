//! Sequence spaces: 32-bit TCP sequence numbers and 64-bit MPTCP data sequence numbers.
//!
//! TCP sequence numbers live on a circle of 2^32 values (RFC 9293 §3.4): "a < b" means
//! "b is less than 2^31 ahead of a". MPTCP's data sequence space is 64 bits wide and
//! never wraps in practice; the wire may carry only its low 32 bits (RFC 8684 §3.3), which
//! are expanded against a nearby 64-bit reference.

use core::cmp::Ordering;
use core::fmt;
use core::ops::{Add, AddAssign, Sub};

/// A 32-bit TCP sequence number with modular comparison.
///
/// `PartialOrd` follows RFC 1982-style serial arithmetic: `a < b` when `b - a`, taken
/// modulo 2^32, lies in `1..2^31`. Two numbers exactly 2^31 apart are unordered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SeqNum(pub u32);

impl SeqNum {
    /// Signed distance from `earlier` to `self`: positive when `self` is ahead.
    pub const fn diff(self, earlier: SeqNum) -> i32 {
        self.0.wrapping_sub(earlier.0) as i32
    }

    /// Bytes from `earlier` up to `self`, or 0 when `self` is not ahead of `earlier`.
    pub const fn distance_from(self, earlier: SeqNum) -> u32 {
        let d = self.diff(earlier);
        if d > 0 { d as u32 } else { 0 }
    }

    /// `low <= self < high` on the circle (an empty window when `low == high`).
    pub const fn in_window(self, low: SeqNum, high: SeqNum) -> bool {
        self.0.wrapping_sub(low.0) < high.0.wrapping_sub(low.0)
    }

    pub fn max(self, other: SeqNum) -> SeqNum {
        if other > self { other } else { self }
    }

    pub fn min(self, other: SeqNum) -> SeqNum {
        if other < self { other } else { self }
    }

    /// The 64-bit value with these low 32 bits closest to `reference` (for SACK and
    /// scoreboard bookkeeping in a space that does not wrap).
    pub const fn unwrap_near(self, reference: u64) -> u64 {
        expand_low_bits(self.0, reference)
    }
}

impl PartialOrd for SeqNum {
    fn partial_cmp(&self, other: &SeqNum) -> Option<Ordering> {
        match self.0.wrapping_sub(other.0) {
            0 => Some(Ordering::Equal),
            0x8000_0000 => None,
            d if d < 0x8000_0000 => Some(Ordering::Greater),
            _ => Some(Ordering::Less),
        }
    }
}

impl Add<u32> for SeqNum {
    type Output = SeqNum;
    fn add(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u32> for SeqNum {
    fn add_assign(&mut self, rhs: u32) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u32> for SeqNum {
    type Output = SeqNum;
    fn sub(self, rhs: u32) -> SeqNum {
        SeqNum(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "seq {}", self.0)
    }
}

impl fmt::Display for SeqNum {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A 64-bit MPTCP data sequence number (DSN) or data ACK.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Dsn(pub u64);

impl Dsn {
    /// Expands a 32-bit wire DSN or data ACK to the 64-bit value with those low bits
    /// nearest to `reference` (RFC 8684 §3.3.1: the receiver "MUST" infer the upper 32
    /// bits from the current window). The reference is the next expected DSN for a
    /// mapping, or the highest data ACK seen for an ACK.
    pub const fn expand(low: u32, reference: Dsn) -> Dsn {
        Dsn(expand_low_bits(low, reference.0))
    }

    /// The low 32 bits, as carried by a 4-byte DSS field.
    pub const fn low32(self) -> u32 {
        self.0 as u32
    }

    /// Bytes from `earlier` to `self`, or 0 when `self` is not ahead.
    pub const fn distance_from(self, earlier: Dsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

impl Add<u64> for Dsn {
    type Output = Dsn;
    fn add(self, rhs: u64) -> Dsn {
        Dsn(self.0.wrapping_add(rhs))
    }
}

impl AddAssign<u64> for Dsn {
    fn add_assign(&mut self, rhs: u64) {
        self.0 = self.0.wrapping_add(rhs);
    }
}

impl Sub<u64> for Dsn {
    type Output = Dsn;
    fn sub(self, rhs: u64) -> Dsn {
        Dsn(self.0.wrapping_sub(rhs))
    }
}

impl fmt::Debug for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "dsn {}", self.0)
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The u64 whose low 32 bits are `low` and which is nearest to `reference` (a value
/// exactly 2^31 away resolves backwards). Works across the 2^64 wrap, modulo 2^64.
const fn expand_low_bits(low: u32, reference: u64) -> u64 {
    let delta = low.wrapping_sub(reference as u32) as i32;
    // `delta` is the signed 32-bit step from the reference's low bits to `low`; the
    // nearest expansion is the reference moved by exactly that step.
    reference.wrapping_add(delta as i64 as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn comparisons_wrap_around_zero() {
        let near_top = SeqNum(u32::MAX - 10);
        let past_zero = SeqNum(5);
        assert!(near_top < past_zero);
        assert!(past_zero > near_top);
        assert_eq!(past_zero.diff(near_top), 16);
        assert_eq!(near_top.diff(past_zero), -16);
        assert_eq!(past_zero.distance_from(near_top), 16);
        assert_eq!(near_top.distance_from(past_zero), 0);
        assert_eq!(near_top + 16, past_zero);
    }

    #[test]
    fn half_circle_apart_is_unordered() {
        let a = SeqNum(0);
        let b = SeqNum(0x8000_0000);
        assert_eq!(a.partial_cmp(&b), None);
        assert!(a.partial_cmp(&b).is_none() && b.partial_cmp(&a).is_none() && a != b);
    }

    #[test]
    fn window_membership_across_wrap() {
        let low = SeqNum(u32::MAX - 1);
        let high = low + 4;
        assert!(SeqNum(u32::MAX).in_window(low, high));
        assert!(SeqNum(1).in_window(low, high));
        assert!(!SeqNum(2).in_window(low, high));
        assert!(!SeqNum(u32::MAX - 2).in_window(low, high));
        assert!(!low.in_window(low, low), "an empty window holds nothing");
    }

    #[test]
    fn dsn_expansion_crosses_32_bit_boundaries() {
        // Reference just below a 2^32 boundary, wire value just after it.
        let reference = Dsn(0x1_ffff_fff0);
        assert_eq!(Dsn::expand(0x10, reference), Dsn(0x2_0000_0010));
        // Reference just after the boundary, wire value just before it (a retransmission).
        let reference = Dsn(0x2_0000_0010);
        assert_eq!(Dsn::expand(0xffff_fff0, reference), Dsn(0x1_ffff_fff0));
        // Same epoch.
        assert_eq!(Dsn::expand(0x1234, Dsn(0x7_0000_1000)), Dsn(0x7_0000_1234));
        assert_eq!(Dsn(0x7_0000_1234).low32(), 0x1234);
    }

    proptest! {
        #[test]
        fn expansion_recovers_any_value_within_half_a_window(reference: u64, offset in -(i32::MAX as i64)..=(i32::MAX as i64)) {
            let value = reference.wrapping_add(offset as u64);
            prop_assert_eq!(Dsn::expand(value as u32, Dsn(reference)), Dsn(value));
        }

        #[test]
        fn seq_order_agrees_with_small_offsets(base: u32, step in 1u32..0x8000_0000) {
            let a = SeqNum(base);
            let b = a + step;
            prop_assert!(a < b);
            prop_assert!(b > a);
            prop_assert_eq!(b.diff(a), step as i32);
            prop_assert_eq!(b.distance_from(a), step);
        }

        #[test]
        fn unwrap_near_is_consistent_with_diff(reference: u64, step in -(i32::MAX as i64)..=(i32::MAX as i64)) {
            let target = reference.wrapping_add(step as u64);
            prop_assert_eq!(SeqNum(target as u32).unwrap_near(reference), target);
        }
    }
}
