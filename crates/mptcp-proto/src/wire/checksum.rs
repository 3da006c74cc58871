//! The Internet checksum (RFC 1071): IPv4 header, TCP over the v4/v6 pseudo-header, and
//! the MPTCP DSS checksum all use it.

/// A running ones'-complement sum. Bytes may arrive in pieces of any length; pieces are
/// treated as one contiguous stream of big-endian 16-bit words.
#[derive(Clone, Copy, Debug, Default)]
pub struct Checksum {
    sum: u64,
    /// The first byte of a word split across two `add_bytes` calls.
    pending: Option<u8>,
}

impl Checksum {
    pub const fn new() -> Self {
        Checksum {
            sum: 0,
            pending: None,
        }
    }

    pub fn add_bytes(&mut self, mut data: &[u8]) -> &mut Self {
        if let Some(high) = self.pending.take() {
            match data.split_first() {
                Some((&low, rest)) => {
                    self.sum += u64::from(u16::from_be_bytes([high, low]));
                    data = rest;
                }
                None => {
                    self.pending = Some(high);
                    return self;
                }
            }
        }
        let bulk = data.len() & !(BULK_BLOCK - 1);
        if bulk > 0 {
            self.sum += u64::from(be_sum16_of_ne_words(&data[..bulk]));
        }
        let mut words = data[bulk..].chunks_exact(4);
        for word in &mut words {
            self.sum += u64::from(u32::from_be_bytes([word[0], word[1], word[2], word[3]]));
        }
        let mut rest = words.remainder();
        if rest.len() >= 2 {
            self.sum += u64::from(u16::from_be_bytes([rest[0], rest[1]]));
            rest = &rest[2..];
        }
        if let [odd] = rest {
            self.pending = Some(*odd);
        }
        // Fold early enough that the u64 can never overflow (each add is < 2^32).
        if self.sum >> 62 != 0 {
            self.sum = fold_to_32(self.sum);
        }
        self
    }

    // The fixed-size adds run several times per packet (pseudo-headers): on a word
    // boundary they add the value directly, as the bulk loop adds its words (a
    // big-endian u32 is its high 16-bit word times 2^16 plus its low one, and
    // 2^16 = 1 in the ones'-complement sum), instead of going through the byte path.

    pub fn add_u16(&mut self, value: u16) -> &mut Self {
        match self.pending {
            None => self.add_word(u32::from(value)),
            Some(_) => self.add_bytes(&value.to_be_bytes()),
        }
    }

    pub fn add_u32(&mut self, value: u32) -> &mut Self {
        match self.pending {
            None => self.add_word(value),
            Some(_) => self.add_bytes(&value.to_be_bytes()),
        }
    }

    pub fn add_u64(&mut self, value: u64) -> &mut Self {
        // Truncation keeps the low half, as intended.
        self.add_u32((value >> 32) as u32).add_u32(value as u32)
    }

    /// Adds a 32-bit big-endian word that starts on a 16-bit word boundary of the
    /// stream (no byte pending).
    fn add_word(&mut self, word: u32) -> &mut Self {
        debug_assert!(self.pending.is_none());
        self.sum += u64::from(word);
        // As in `add_bytes`: each add is < 2^32, so folding here keeps the u64 safe.
        if self.sum >> 62 != 0 {
            self.sum = fold_to_32(self.sum);
        }
        self
    }

    /// The ones'-complement sum folded to 16 bits, not yet complemented.
    pub fn sum16(&self) -> u16 {
        let mut sum = self.sum;
        if let Some(high) = self.pending {
            sum += u64::from(u16::from_be_bytes([high, 0]));
        }
        let mut folded = fold_to_32(sum);
        while folded >> 16 != 0 {
            folded = (folded & 0xffff) + (folded >> 16);
        }
        folded as u16
    }

    /// The checksum to put in a header field: the complement of the folded sum.
    pub fn finish(&self) -> u16 {
        !self.sum16()
    }
}

/// Bytes summed per step of the bulk loop: sixteen 16-bit words, one per lane.
const BULK_BLOCK: usize = 32;

/// Steps of the bulk loop between folds of its lanes: each step adds less than 2^16 to
/// a 32-bit lane, so 2^16 - 1 steps cannot overflow it; 4096 (128 KiB) keeps well
/// below that.
const BULK_STEPS: usize = 4096;

/// The ones'-complement sum of `data` (a multiple of [`BULK_BLOCK`] bytes, starting on a
/// 16-bit word boundary of the stream) as big-endian 16-bit words, folded to 16 bits.
///
/// RFC 1071 §2(B): the sum is independent of byte order, so the words are loaded in the
/// machine's order (no byte swap per word) and only the folded result is swapped.
/// Sixteen 16-bit words widened into 32-bit lanes are what SSE2 adds in two registers
/// without any 64-bit widening, so the compiler vectorises the loop to a few
/// instructions per 32 bytes; this is the per-byte cost of every packet we emit and
/// verify.
fn be_sum16_of_ne_words(data: &[u8]) -> u16 {
    debug_assert_eq!(data.len() % BULK_BLOCK, 0);
    let mut total = 0u64;
    for block in data.chunks(BULK_BLOCK * BULK_STEPS) {
        let mut part = [0u32; BULK_BLOCK / 2];
        for chunk in block.chunks_exact(BULK_BLOCK) {
            for (lane, word) in part.iter_mut().zip(chunk.chunks_exact(2)) {
                *lane += u32::from(u16::from_ne_bytes([word[0], word[1]]));
            }
        }
        // Sixteen lanes below 2^28 each plus a folded total below 2^32: no overflow.
        total = fold_to_32(total + part.iter().map(|&p| u64::from(p)).sum::<u64>());
    }
    let mut folded = total;
    while folded >> 16 != 0 {
        folded = (folded & 0xffff) + (folded >> 16);
    }
    // The value fits in 16 bits after the loop above.
    let native = folded as u16;
    if cfg!(target_endian = "little") {
        native.swap_bytes()
    } else {
        native
    }
}

fn fold_to_32(mut sum: u64) -> u64 {
    while sum >> 32 != 0 {
        sum = (sum & 0xffff_ffff) + (sum >> 32);
    }
    sum
}

/// The Internet checksum of `data` as one buffer.
pub fn internet_checksum(data: &[u8]) -> u16 {
    Checksum::new().add_bytes(data).finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The straightforward 16-bit-word definition from RFC 1071, as a reference.
    fn reference(data: &[u8]) -> u16 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]);
            sum += u32::from(word);
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(Checksum::new().add_bytes(&data).sum16(), 0xddf2);
        assert_eq!(internet_checksum(&data), !0xddf2);
    }

    #[test]
    fn a_header_with_its_checksum_sums_to_zero() {
        // A well-known example IPv4 header, checksum field 0xb861 included.
        let header = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(internet_checksum(&header), 0);
    }

    #[test]
    fn bulk_sum_carries_like_the_reference() {
        // All ones: every add carries; odd lengths and a split inside a word too.
        for len in [16, 17, 1460, 1461, 65_535] {
            let data = vec![0xffu8; len];
            assert_eq!(internet_checksum(&data), reference(&data), "len {len}");
            let mut split = Checksum::new();
            split.add_bytes(&data[..3]).add_bytes(&data[3..]);
            assert_eq!(split.finish(), reference(&data), "len {len} split at 3");
        }
        let ramp: Vec<u8> = (0..9001u32).map(|i| (i * 7 + 3) as u8).collect();
        assert_eq!(internet_checksum(&ramp), reference(&ramp));
    }

    proptest! {
        #[test]
        fn fixed_size_adds_match_their_bytes(prefix in proptest::collection::vec(any::<u8>(), 0..5), a in any::<u16>(), b in any::<u32>(), c in any::<u64>()) {
            // After an even prefix the word path runs, after an odd one the byte path.
            let mut words = Checksum::new();
            words.add_bytes(&prefix).add_u16(a).add_u32(b).add_u64(c);
            let mut bytes = Checksum::new();
            bytes
                .add_bytes(&prefix)
                .add_bytes(&a.to_be_bytes())
                .add_bytes(&b.to_be_bytes())
                .add_bytes(&c.to_be_bytes());
            prop_assert_eq!(words.finish(), bytes.finish());
            let mut flat = prefix.clone();
            flat.extend_from_slice(&a.to_be_bytes());
            flat.extend_from_slice(&b.to_be_bytes());
            flat.extend_from_slice(&c.to_be_bytes());
            prop_assert_eq!(words.finish(), reference(&flat));
        }

        #[test]
        fn matches_reference_however_the_input_is_split(data in proptest::collection::vec(any::<u8>(), 0..300), cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..4)) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut sum = Checksum::new();
            let mut start = 0;
            for point in points {
                sum.add_bytes(&data[start..point]);
                start = point;
            }
            sum.add_bytes(&data[start..]);
            prop_assert_eq!(sum.finish(), reference(&data));
        }
    }
}
