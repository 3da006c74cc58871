//! Deterministic payload for test and experiment traffic.
//!
//! Every flow sends a keyed pseudo-random byte stream, so a receiver can check each byte
//! at its stream offset without keeping a copy: a byte that arrives corrupted, twice
//! at the wrong place, or out of order is caught where it lands.

/// The byte stream of one flow: byte `i` depends only on the key and `i`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pattern {
    key: u64,
}

impl Pattern {
    pub fn new(key: u64) -> Self {
        Pattern { key }
    }

    /// Writes the stream bytes at `offset..offset + buf.len()` into `buf`.
    pub fn fill(&self, offset: u64, buf: &mut [u8]) {
        let mut position = offset;
        let mut rest = buf;
        while !rest.is_empty() {
            let block = self.block(position / 8).to_be_bytes();
            let within = (position % 8) as usize;
            let take = (8 - within).min(rest.len());
            rest[..take].copy_from_slice(&block[within..within + take]);
            rest = &mut rest[take..];
            position += take as u64;
        }
    }

    /// Checks `data` against the stream at `offset`; on mismatch returns the stream
    /// offset of the first wrong byte.
    pub fn verify(&self, offset: u64, data: &[u8]) -> Result<(), u64> {
        let mut expected = [0u8; 256];
        let mut checked = 0usize;
        while checked < data.len() {
            let chunk = (data.len() - checked).min(expected.len());
            let at = offset + checked as u64;
            self.fill(at, &mut expected[..chunk]);
            if let Some(bad) = (0..chunk).find(|&i| expected[i] != data[checked + i]) {
                return Err(at + bad as u64);
            }
            checked += chunk;
        }
        Ok(())
    }

    /// SplitMix64 of the block index under the key: cheap and well mixed.
    fn block(&self, index: u64) -> u64 {
        let mut z = self.key ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_at_any_offset_agree_with_the_whole() {
        let pattern = Pattern::new(42);
        let mut whole = vec![0u8; 1000];
        pattern.fill(0, &mut whole);
        for (start, len) in [(0, 1), (3, 17), (8, 8), (999, 1), (100, 500)] {
            let mut piece = vec![0u8; len];
            pattern.fill(start as u64, &mut piece);
            assert_eq!(piece, whole[start..start + len]);
            assert_eq!(pattern.verify(start as u64, &piece), Ok(()));
        }
    }

    #[test]
    fn verify_names_the_first_wrong_byte() {
        let pattern = Pattern::new(7);
        let mut data = vec![0u8; 600];
        pattern.fill(1000, &mut data);
        data[300] ^= 0x10;
        assert_eq!(pattern.verify(1000, &data), Err(1300));
        // The same bytes at a shifted offset are wrong from the start (misplacement).
        let mut shifted = vec![0u8; 64];
        pattern.fill(8, &mut shifted);
        assert!(pattern.verify(0, &shifted).is_err());
    }

    #[test]
    fn different_keys_give_different_streams() {
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        Pattern::new(1).fill(0, &mut a);
        Pattern::new(2).fill(0, &mut b);
        assert_ne!(a, b);
    }
}
