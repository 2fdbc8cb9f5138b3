//! The set of spent string indexes of one batch.
//!
//! This file owns [`UsedSet`], a 99-bit set (bit *i* = index *i* spent) and its
//! 16-byte storage form. It must never un-spend an index: there is no way to clear a
//! bit, and an out-of-range index always reads as spent so it can never be accepted.

use super::{OtcError, BATCH_SIZE};

/// Mask of the valid bits: 1..=99.
const VALID_MASK: u128 = ((1u128 << (BATCH_SIZE as u32 + 1)) - 1) & !1;

/// Spent string indexes of one batch. Bit *i* of the `u128` is set when index *i*
/// (1..=99) has been spent; bit 0 and bits 100..=127 are always clear. A new batch
/// starts from `UsedSet::default()` (nothing spent).
#[derive(Clone, Copy, Default, PartialEq, Eq, Debug)]
pub struct UsedSet(u128);

impl UsedSet {
    /// Whether `index` is spent. Indexes outside 1..=99 always read as spent (they can
    /// never be used).
    pub fn is_used(&self, index: u8) -> bool {
        if !(1..=BATCH_SIZE).contains(&index) {
            return true;
        }
        self.0 & (1u128 << index) != 0
    }

    /// Marks `index` spent. Idempotent; indexes outside 1..=99 are ignored (they read
    /// as spent anyway).
    pub fn mark(&mut self, index: u8) {
        if (1..=BATCH_SIZE).contains(&index) {
            self.0 |= 1u128 << index;
        }
    }

    /// Number of spent indexes, 0..=99.
    pub fn count(&self) -> u32 {
        (self.0 & VALID_MASK).count_ones()
    }

    /// Number of indexes still usable, 0..=99.
    pub fn remaining(&self) -> u32 {
        u32::from(BATCH_SIZE) - self.count()
    }

    /// Lowest index in 1..=99 not yet spent, or `None` when the batch is used up
    /// (the `TokenIndex` answer).
    pub fn next_unused(&self) -> Option<u8> {
        (1..=BATCH_SIZE).find(|&i| !self.is_used(i))
    }

    /// Storage form: the `u128` in big-endian byte order (16 bytes).
    pub fn to_bytes(&self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Reads the storage form written by [`UsedSet::to_bytes`].
    ///
    /// Errors: [`OtcError::UsedSetLength`] unless `bytes` is exactly 16 bytes;
    /// [`OtcError::UsedSetBits`] if bit 0 or any bit above 99 is set (a corrupt record).
    pub fn from_bytes(bytes: &[u8]) -> Result<UsedSet, OtcError> {
        let arr: [u8; 16] = bytes
            .try_into()
            .map_err(|_| OtcError::UsedSetLength { got: bytes.len() })?;
        let bits = u128::from_be_bytes(arr);
        if bits & !VALID_MASK != 0 {
            return Err(OtcError::UsedSetBits);
        }
        Ok(UsedSet(bits))
    }

    /// The raw bits (bit *i* = index *i* spent).
    pub fn bits(&self) -> u128 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_set() {
        let s = UsedSet::default();
        assert_eq!(s.count(), 0);
        assert_eq!(s.remaining(), 99);
        assert_eq!(s.next_unused(), Some(1));
        assert!(!s.is_used(1));
        assert!(!s.is_used(99));
    }

    #[test]
    fn out_of_range_reads_spent_and_mark_ignores_it() {
        let mut s = UsedSet::default();
        assert!(s.is_used(0));
        assert!(s.is_used(100));
        assert!(s.is_used(255));
        s.mark(0);
        s.mark(100);
        s.mark(255);
        assert_eq!(s, UsedSet::default());
        assert_eq!(s.count(), 0);
    }

    #[test]
    fn mark_and_next_unused() {
        let mut s = UsedSet::default();
        s.mark(1);
        s.mark(1);
        s.mark(3);
        assert_eq!(s.count(), 2);
        assert_eq!(s.next_unused(), Some(2));
        for i in 1..=99 {
            s.mark(i);
        }
        assert_eq!(s.count(), 99);
        assert_eq!(s.remaining(), 0);
        assert_eq!(s.next_unused(), None);
    }

    #[test]
    fn bit_i_is_index_i() {
        let mut s = UsedSet::default();
        s.mark(5);
        assert_eq!(s.bits(), 1 << 5);
        assert_eq!(s.to_bytes()[15], 1 << 5);
        s.mark(99);
        assert_eq!(s.to_bytes()[3], 1 << 3); // bit 99 = byte 12 from the end, bit 3
    }

    #[test]
    fn bytes_round_trip() {
        let mut s = UsedSet::default();
        for i in [1u8, 2, 17, 50, 64, 98, 99] {
            s.mark(i);
        }
        let b = s.to_bytes();
        assert_eq!(UsedSet::from_bytes(&b).unwrap(), s);
        let full = {
            let mut f = UsedSet::default();
            (1..=99).for_each(|i| f.mark(i));
            f
        };
        assert_eq!(UsedSet::from_bytes(&full.to_bytes()).unwrap(), full);
    }

    #[test]
    fn from_bytes_errors() {
        assert_eq!(
            UsedSet::from_bytes(&[0u8; 15]),
            Err(OtcError::UsedSetLength { got: 15 })
        );
        assert_eq!(
            UsedSet::from_bytes(&[]),
            Err(OtcError::UsedSetLength { got: 0 })
        );
        // bit 0 set
        let mut b = [0u8; 16];
        b[15] = 1;
        assert_eq!(UsedSet::from_bytes(&b), Err(OtcError::UsedSetBits));
        // bit 100 set
        let b = (1u128 << 100).to_be_bytes();
        assert_eq!(UsedSet::from_bytes(&b), Err(OtcError::UsedSetBits));
    }

    proptest::proptest! {
        #[test]
        fn prop_round_trip(indexes in proptest::collection::vec(0u8..=255, 0..200)) {
            let mut s = UsedSet::default();
            for &i in &indexes {
                s.mark(i);
            }
            let back = UsedSet::from_bytes(&s.to_bytes()).unwrap();
            proptest::prop_assert_eq!(back, s);
            for i in 1..=99u8 {
                proptest::prop_assert_eq!(s.is_used(i), indexes.contains(&i));
            }
            let distinct = (1..=99u8).filter(|i| indexes.contains(i)).count();
            proptest::prop_assert_eq!(s.count() as usize, distinct);
        }
    }
}
