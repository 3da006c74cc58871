//! Connection-level byte buffers: the send buffer and the receive reassembly.
//!
//! Both are keyed by `u64` **stream offsets**, not by sequence numbers: offset 0 is the
//! first data byte of the stream. Plain TCP maps `offset = seq - (ISS + 1)` after
//! unwrapping the 32-bit sequence number; MPTCP maps `offset = DSN - (IDSN + 1)`
//! (RFC 8684 §3.3: the first data byte carries IDSN + 1). Neither buffer knows about TCP,
//! MPTCP, sequence wrapping or options, so the subflow engine and the connection share
//! them unchanged.
//!
//! Memory is bounded by the capacity given at construction, but a buffer allocates its
//! ring only when bytes first arrive, and then only as large as the bytes it holds need
//! (a power of two, at least [`MIN_RING`], at most the capacity), growing by doubling:
//! an idle connection costs no buffer memory and a short transfer a little, while a bulk
//! transfer reaches its working size after a few growths and then allocates nothing
//! (apart from the reassembly's out-of-order range bookkeeping, B-tree nodes for at most
//! `capacity / 1024` ranges). The byte at stream offset `o` lives at ring index
//! `o % ring_len`, which holds because a ring never holds two offsets `ring_len` or more
//! apart; a growth moves the held bytes to their indices in the larger ring.

mod reassembly;
mod send;

pub use reassembly::{InsertOutcome, MIN_OUT_OF_ORDER_RANGES, Reassembly};
pub use send::SendBuffer;

/// The smallest ring a buffer allocates, bytes.
pub const MIN_RING: usize = 64;

/// Ring index of stream offset `offset` in a ring of `len` (> 0) bytes.
fn ring_index(offset: u64, len: usize) -> usize {
    // The remainder is below `len`, so it fits in usize.
    (offset % len as u64) as usize
}

/// Byte storage addressed by stream offset that grows on demand up to `capacity`.
#[derive(Clone)]
struct Ring {
    /// Empty until the first byte arrives.
    bytes: Box<[u8]>,
    capacity: usize,
}

impl Ring {
    fn new(capacity: usize) -> Ring {
        Ring {
            bytes: Box::default(),
            capacity,
        }
    }

    /// Bytes allocated now.
    fn allocated(&self) -> usize {
        self.bytes.len()
    }

    /// Makes the ring long enough to hold offsets `from..to` (a span of at most
    /// `capacity`), keeping the bytes of `from..held_end` (`held_end <= to`).
    fn reserve(&mut self, from: u64, held_end: u64, to: u64) {
        // At most `capacity` by the callers' window checks, so it fits in usize.
        let needed = (to - from) as usize;
        if needed <= self.bytes.len() {
            return;
        }
        let len = needed
            .next_power_of_two()
            .max(MIN_RING)
            .min(self.capacity)
            .max(needed);
        let mut grown = Ring {
            bytes: vec![0; len].into_boxed_slice(),
            capacity: self.capacity,
        };
        let mut offset = from;
        while offset < held_end {
            // Below `needed`, so it fits in usize.
            let piece = self.slice(offset, (held_end - offset) as usize);
            grown.write(offset, piece);
            offset += piece.len() as u64;
        }
        *self = grown;
    }

    /// Writes `data` at `offset`, across the ring wrap; the caller reserved room.
    fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let len = self.bytes.len();
        let pos = ring_index(offset, len);
        let first = data.len().min(len - pos);
        self.bytes[pos..pos + first].copy_from_slice(&data[..first]);
        self.bytes[..data.len() - first].copy_from_slice(&data[first..]);
    }

    /// Up to `max_len` bytes from `offset`, stopping at the ring wrap; the caller knows
    /// they are held.
    fn slice(&self, offset: u64, max_len: usize) -> &[u8] {
        let len = self.bytes.len();
        if len == 0 {
            return &[];
        }
        let pos = ring_index(offset, len);
        &self.bytes[pos..pos + max_len.min(len - pos)]
    }
}
