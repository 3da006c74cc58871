//! The send buffer: bytes the application wrote that the peer has not yet acknowledged.
//!
//! It owns the bytes between the oldest unacknowledged offset (`start`) and the end of
//! what the application wrote (`end`). Senders never copy the bytes elsewhere: a segment,
//! a retransmission or an MPTCP reinjection on another subflow re-reads them by offset.
//! It must not decide what to send or when; that is the engine's and the scheduler's job.

use super::Ring;

/// A fixed-capacity ring of unacknowledged bytes, addressed by stream offset.
///
/// ```
/// use mptcp_proto::buffer::SendBuffer;
///
/// let mut buf = SendBuffer::new(8);
/// assert_eq!(buf.write(b"hello world"), 8); // only the free space is accepted
/// assert_eq!(buf.slice(6, 10), b"wo");
/// buf.ack_until(5);
/// assert_eq!((buf.start(), buf.end(), buf.free_space()), (5, 8, 5));
/// assert_eq!(buf.write(b"rld!"), 4);
/// let mut out = [0u8; 7];
/// assert_eq!(buf.copy_out(5, &mut out), 7); // across the ring wrap
/// assert_eq!(&out, b" world!");
/// ```
#[derive(Clone)]
pub struct SendBuffer {
    storage: Ring,
    /// Offset of the oldest unacknowledged byte.
    start: u64,
    /// Bytes held, `start..start + len`.
    len: usize,
}

impl SendBuffer {
    /// A buffer holding at most `capacity` bytes; allocates nothing until the first
    /// write, and then only what the bytes held need (see the module documentation).
    pub fn new(capacity: usize) -> Self {
        SendBuffer {
            storage: Ring::new(capacity),
            start: 0,
            len: 0,
        }
    }

    /// Appends as much of `data` as fits and returns how many bytes were accepted.
    pub fn write(&mut self, data: &[u8]) -> usize {
        let n = data.len().min(self.free_space());
        if n == 0 {
            return 0;
        }
        let end = self.end();
        self.storage.reserve(self.start, end, end + n as u64);
        self.storage.write(end, &data[..n]);
        self.len += n;
        n
    }

    /// Offset of the oldest unacknowledged byte.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Offset just after the last byte written.
    pub fn end(&self) -> u64 {
        self.start + self.len as u64
    }

    /// Bytes held (written and not yet acknowledged).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.storage.capacity
    }

    /// Bytes of ring allocated now (at most `capacity`).
    pub fn allocated(&self) -> usize {
        self.storage.allocated()
    }

    /// Bytes `write` would accept now.
    pub fn free_space(&self) -> usize {
        self.capacity() - self.len
    }

    /// The longest contiguous run of stored bytes starting at `offset`, at most `max_len`
    /// long. It may be shorter than asked because the ring wraps or the data ends; it is
    /// empty when `offset` lies outside `start..end`.
    pub fn slice(&self, offset: u64, max_len: usize) -> &[u8] {
        if offset < self.start || offset >= self.end() {
            return &[];
        }
        // Below `len`, so it fits in usize.
        let available = (self.end() - offset) as usize;
        self.storage.slice(offset, max_len.min(available))
    }

    /// Up to two slices that together hold the bytes `offset..offset + len`, clipped to
    /// `start..end`; the second is non-empty only when the range crosses the ring wrap.
    pub fn iter_slices(&self, offset: u64, len: usize) -> (&[u8], &[u8]) {
        let first = self.slice(offset, len);
        let second = if first.is_empty() {
            &[][..]
        } else {
            self.slice(offset + first.len() as u64, len - first.len())
        };
        (first, second)
    }

    /// Copies bytes from `offset` into `dst` (across the ring wrap) and returns how many
    /// were copied: `dst.len()` or fewer if the data ends first, 0 when `offset` lies
    /// outside `start..end`.
    pub fn copy_out(&self, offset: u64, dst: &mut [u8]) -> usize {
        let (a, b) = self.iter_slices(offset, dst.len());
        dst[..a.len()].copy_from_slice(a);
        dst[a.len()..a.len() + b.len()].copy_from_slice(b);
        a.len() + b.len()
    }

    /// The peer acknowledged everything below `offset`: frees those bytes.
    ///
    /// An offset at or behind `start` (an old or duplicate ACK) changes nothing. An offset
    /// beyond `end` acknowledges bytes never written; the buffer clamps it to `end` and
    /// leaves it to the engine to treat such an ACK as invalid (RFC 9293 §3.10.7.4 says to
    /// drop it and ACK; RFC 8684 §3.3.2 likewise for a data ACK).
    pub fn ack_until(&mut self, offset: u64) {
        if offset <= self.start {
            return;
        }
        let new_start = offset.min(self.end());
        self.len -= (new_start - self.start) as usize;
        self.start = new_start;
    }
}

impl core::fmt::Debug for SendBuffer {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SendBuffer")
            .field("start", &self.start)
            .field("end", &self.end())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_ring_is_allocated_on_first_write_and_grows_keeping_the_bytes() {
        let mut buf = SendBuffer::new(1000);
        assert_eq!(buf.allocated(), 0);
        assert_eq!(buf.write(&[7u8; 10]), 10);
        assert_eq!(buf.allocated(), 64);
        buf.ack_until(5);
        // Offsets 5..70 span 65 bytes: the ring doubles, the held bytes move with it.
        let data: Vec<u8> = (0..60u8).collect();
        assert_eq!(buf.write(&data), 60);
        assert_eq!(buf.allocated(), 128);
        let mut out = vec![0u8; 65];
        assert_eq!(buf.copy_out(5, &mut out), 65);
        assert_eq!(&out[..5], &[7u8; 5]);
        assert_eq!(&out[5..], &data[..]);
        // Never beyond the capacity, which need not be a power of two.
        assert_eq!(buf.write(&[1u8; 2000]), 935);
        assert_eq!(buf.allocated(), 1000);
    }

    #[test]
    fn write_accepts_only_free_space() {
        let mut buf = SendBuffer::new(10);
        assert_eq!(buf.write(b"abcdef"), 6);
        assert_eq!(buf.write(b"ghijkl"), 4);
        assert_eq!(buf.write(b"x"), 0);
        assert_eq!(
            (buf.start(), buf.end(), buf.len(), buf.free_space()),
            (0, 10, 10, 0)
        );
        assert_eq!(buf.slice(0, 100), b"abcdefghij");
    }

    #[test]
    fn slice_stops_at_ring_wrap_and_iter_slices_returns_both_halves() {
        let mut buf = SendBuffer::new(8);
        buf.write(b"01234567");
        buf.ack_until(6);
        assert_eq!(buf.write(b"abcd"), 4);
        // Offsets 6..12 live at ring indices 6, 7, 0, 1, 2, 3.
        assert_eq!(buf.slice(6, 100), b"67");
        assert_eq!(buf.slice(8, 100), b"abcd");
        assert_eq!(buf.slice(9, 2), b"bc");
        assert_eq!(buf.iter_slices(7, 3), (&b"7"[..], &b"ab"[..]));
        assert_eq!(buf.iter_slices(6, 100), (&b"67"[..], &b"abcd"[..]));
        let mut out = [0u8; 5];
        assert_eq!(buf.copy_out(7, &mut out), 5);
        assert_eq!(&out, b"7abcd");
    }

    #[test]
    fn offsets_outside_the_buffer_give_nothing() {
        let mut buf = SendBuffer::new(8);
        buf.write(b"abcdef");
        buf.ack_until(2);
        assert_eq!(buf.slice(1, 4), b"");
        assert_eq!(buf.slice(6, 4), b"");
        assert_eq!(buf.slice(u64::MAX, 4), b"");
        assert_eq!(buf.iter_slices(0, 4), (&b""[..], &b""[..]));
        let mut out = [0u8; 4];
        assert_eq!(buf.copy_out(6, &mut out), 0);
        assert_eq!(buf.copy_out(1, &mut out), 0);
    }

    #[test]
    fn ack_ignores_old_offsets_and_clamps_at_end() {
        let mut buf = SendBuffer::new(8);
        buf.write(b"abcdef");
        buf.ack_until(3);
        buf.ack_until(1);
        assert_eq!((buf.start(), buf.len()), (3, 3));
        buf.ack_until(1_000);
        assert_eq!((buf.start(), buf.end(), buf.len()), (6, 6, 0));
        assert!(buf.is_empty());
        assert_eq!(buf.free_space(), 8);
    }

    #[test]
    fn zero_capacity_buffer_accepts_nothing_and_does_not_panic() {
        let mut buf = SendBuffer::new(0);
        assert_eq!(buf.write(b"abc"), 0);
        assert_eq!(buf.slice(0, 3), b"");
        buf.ack_until(5);
        assert_eq!((buf.start(), buf.end()), (0, 0));
    }

    #[derive(Clone, Debug)]
    enum Op {
        Write(Vec<u8>),
        Ack(u64),
        Read { offset: u64, len: usize },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Op::Write),
            (0u64..400).prop_map(Op::Ack),
            (0u64..400, 0usize..50).prop_map(|(offset, len)| Op::Read { offset, len }),
        ]
    }

    proptest! {
        /// The ring behaves exactly like an unbounded queue of bytes with a base offset.
        #[test]
        fn matches_a_vecdeque_model(cap in 1usize..64, ops in proptest::collection::vec(op(), 0..200)) {
            let mut buf = SendBuffer::new(cap);
            let mut model: VecDeque<u8> = VecDeque::new();
            let mut model_start = 0u64;
            for op in ops {
                match op {
                    Op::Write(data) => {
                        let n = buf.write(&data);
                        let expect = data.len().min(cap - model.len());
                        prop_assert_eq!(n, expect);
                        model.extend(&data[..n]);
                    }
                    Op::Ack(delta) => {
                        // Offsets around the current window, including behind and beyond it.
                        let offset = (model_start + delta).saturating_sub(100);
                        buf.ack_until(offset);
                        let model_end = model_start + model.len() as u64;
                        let target = offset.clamp(model_start, model_end);
                        for _ in model_start..target {
                            model.pop_front();
                        }
                        model_start = target;
                    }
                    Op::Read { offset, len } => {
                        let offset = (model_start + offset).saturating_sub(100);
                        let mut out = vec![0u8; len];
                        let n = buf.copy_out(offset, &mut out);
                        let model_end = model_start + model.len() as u64;
                        let expect: Vec<u8> = if offset >= model_start && offset < model_end {
                            let skip = (offset - model_start) as usize;
                            model.iter().skip(skip).take(len).copied().collect()
                        } else {
                            Vec::new()
                        };
                        prop_assert_eq!(&out[..n], &expect[..]);
                        let s = buf.slice(offset, len);
                        prop_assert!(s.len() <= n);
                        prop_assert_eq!(s, &expect[..s.len()]);
                        if !expect.is_empty() {
                            prop_assert!(!s.is_empty());
                        }
                    }
                }
                prop_assert_eq!(buf.start(), model_start);
                prop_assert_eq!(buf.len(), model.len());
                prop_assert_eq!(buf.end(), model_start + model.len() as u64);
                prop_assert_eq!(buf.free_space(), cap - model.len());
            }
        }
    }
}
