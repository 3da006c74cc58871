//! Connection-level byte buffers: the send buffer and the receive reassembly.
//!
//! Both are keyed by `u64` **stream offsets**, not by sequence numbers: offset 0 is the
//! first data byte of the stream. Plain TCP maps `offset = seq - (ISS + 1)` after
//! unwrapping the 32-bit sequence number; MPTCP maps `offset = DSN - (IDSN + 1)`
//! (RFC 8684 §3.3: the first data byte carries IDSN + 1). Neither buffer knows about TCP,
//! MPTCP, sequence wrapping or options, so the subflow engine and the connection share
//! them unchanged.
//!
//! Memory is bounded by the capacity given at construction. Each buffer allocates its
//! ring of `capacity` bytes once; writing, reading, acknowledging and inserting segments
//! allocate nothing but the reassembly's out-of-order range bookkeeping (B-tree nodes,
//! at most `capacity / 1024` ranges). The byte at stream offset `o` always lives at ring index
//! `o % capacity`, which holds because a buffer never holds two offsets `capacity` or
//! more apart.

mod reassembly;
mod send;

pub use reassembly::{InsertOutcome, MIN_OUT_OF_ORDER_RANGES, Reassembly};
pub use send::SendBuffer;

/// Ring index of stream offset `offset` in a ring of `capacity` (> 0) bytes.
fn ring_index(offset: u64, capacity: usize) -> usize {
    // The remainder is below `capacity`, so it fits in usize.
    (offset % capacity as u64) as usize
}
