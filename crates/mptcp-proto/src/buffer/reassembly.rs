//! The receive side: reassembles bytes that arrive out of order, duplicated or overlapping
//! into the in-order stream the application reads.
//!
//! It owns the bytes in `read_offset..read_offset + capacity` and which of them are
//! present. It must not decide what to acknowledge or advertise on the wire; it only
//! answers the questions the engine asks (cumulative ACK point, free window, SACK ranges).

use core::ops::Range;

use super::Ring;
use crate::tcp::{RangeSet, range_limit};

/// The fewest out-of-order ranges (each preceded by a hole) a buffer keeps at once; a
/// buffer of `capacity` bytes keeps up to `capacity / 1024` ([`crate::tcp::range_limit`]):
/// enough for every other full-sized segment of a whole window to be missing, as after
/// a slow-start overshoot into a drop-tail queue. Beyond it, new out-of-order data that
/// would open another range is dropped and counted in
/// [`InsertOutcome::range_limit_bytes`]; the sender retransmits it later. Linux bounds
/// its out-of-order queue by memory instead; this bound keeps the bookkeeping under 4 %
/// of the buffer whatever the peer sends, and an insert costs O(log ranges).
pub const MIN_OUT_OF_ORDER_RANGES: usize = crate::tcp::MIN_RANGES;

/// What [`Reassembly::insert`] did with each byte of a segment; the four counts add up to
/// the segment length.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct InsertOutcome {
    /// Bytes stored for the first time.
    pub new_bytes: usize,
    /// Bytes already received (stored, or already read by the application); dropped. The
    /// first copy of a byte wins.
    pub duplicate_bytes: usize,
    /// Bytes at or beyond the right edge of the window (`read_offset + capacity`); dropped.
    pub beyond_window_bytes: usize,
    /// New out-of-order bytes dropped because storing them would have opened more than
    /// [`Reassembly::range_limit`] out-of-order ranges.
    pub range_limit_bytes: usize,
    /// Of `new_bytes`, those stored ahead of a gap, to wait for the bytes before them.
    pub out_of_order_bytes: usize,
}

/// A fixed-capacity reassembly buffer addressed by stream offset.
///
/// ```
/// use mptcp_proto::buffer::Reassembly;
///
/// let mut rx = Reassembly::new(16);
/// rx.insert(5, b"world");
/// assert_eq!(rx.contiguous_end(), 0); // a hole at 0..5
/// assert_eq!(rx.ranges().collect::<Vec<_>>(), vec![5..10]);
/// let outcome = rx.insert(0, b"hello wo"); // overlaps the stored "wo"
/// assert_eq!((outcome.new_bytes, outcome.duplicate_bytes), (5, 3));
/// assert_eq!(rx.contiguous_end(), 10);
/// let mut out = [0u8; 16];
/// let n = rx.read(&mut out);
/// assert_eq!(&out[..n], b"helloworld");
/// assert_eq!(rx.window(), 16);
/// ```
#[derive(Clone)]
pub struct Reassembly {
    storage: Ring,
    /// Next byte the application reads.
    read_offset: u64,
    /// First missing byte at or after `read_offset`: the cumulative ACK point.
    contiguous_end: u64,
    /// Stored ranges above `contiguous_end`: disjoint, not touching each other, each
    /// starting after `contiguous_end`; at most `range_limit(capacity)` of them.
    out_of_order: RangeSet,
}

impl Reassembly {
    /// A buffer for `capacity` bytes, receiving from offset 0; allocates nothing until
    /// the first byte arrives, and then only what the bytes held need (see the module
    /// documentation).
    pub fn new(capacity: usize) -> Self {
        Reassembly {
            storage: Ring::new(capacity),
            read_offset: 0,
            contiguous_end: 0,
            out_of_order: RangeSet::with_limit(range_limit(capacity)),
        }
    }

    pub fn capacity(&self) -> usize {
        self.storage.capacity
    }

    /// Bytes of ring allocated now (at most `capacity`).
    pub fn allocated(&self) -> usize {
        self.storage.allocated()
    }

    /// The most out-of-order ranges held at once (see [`MIN_OUT_OF_ORDER_RANGES`]).
    pub fn range_limit(&self) -> usize {
        self.out_of_order.limit()
    }

    /// Next byte the application will read.
    pub fn read_offset(&self) -> u64 {
        self.read_offset
    }

    /// First missing byte at or after `read_offset`: what a cumulative ACK acknowledges.
    pub fn contiguous_end(&self) -> u64 {
        self.contiguous_end
    }

    /// First offset the buffer cannot hold: `read_offset + capacity`. It moves only
    /// forward, as the application reads.
    pub fn right_edge(&self) -> u64 {
        self.read_offset.saturating_add(self.capacity() as u64)
    }

    /// Bytes the application can read now (in order, without a hole).
    pub fn readable(&self) -> usize {
        // At most `capacity`, so it fits in usize.
        (self.contiguous_end - self.read_offset) as usize
    }

    /// The receive window to advertise, counted from `contiguous_end` (RCV.NXT):
    /// `read_offset + capacity - contiguous_end`.
    ///
    /// Out-of-order bytes do not reduce it: they lie inside the window already offered,
    /// and counting them would pull the right edge back, which RFC 9293 §3.8.6 forbids
    /// ("shrinking the window"). With this definition the right edge,
    /// `contiguous_end + window = read_offset + capacity`, only moves forward.
    pub fn window(&self) -> usize {
        (self.right_edge() - self.contiguous_end) as usize
    }

    /// Bytes held: readable plus out-of-order.
    pub fn buffered(&self) -> usize {
        self.readable()
            + self
                .out_of_order
                .iter()
                .map(|(start, end)| (end - start) as usize)
                .sum::<usize>()
    }

    /// The out-of-order ranges above `contiguous_end`, ascending (SACK blocks, RFC 2018).
    pub fn ranges(&self) -> impl Iterator<Item = Range<u64>> + '_ {
        self.out_of_order.iter().map(|(start, end)| start..end)
    }

    /// The out-of-order range containing `offset`, if any. RFC 2018 §4 wants the first
    /// SACK block to hold the most recently received segment; this finds it.
    pub fn range_containing(&self, offset: u64) -> Option<Range<u64>> {
        self.out_of_order
            .containing(offset)
            .map(|(start, end)| start..end)
    }

    /// Stores the bytes of a segment that starts at `offset`.
    ///
    /// Bytes already received are dropped byte-exactly (the first copy wins), so a
    /// segment overlapping stored data stores only its new parts. Bytes at or beyond
    /// `read_offset + capacity` are dropped. New out-of-order data that would open a
    /// range beyond [`Reassembly::range_limit`] is dropped. The outcome counts each case.
    /// Cost: the segment length plus O(log ranges) and the ranges it merges away.
    pub fn insert(&mut self, offset: u64, data: &[u8]) -> InsertOutcome {
        let len = data.len();
        // Indices into `data`: [0, dup_end) lies below contiguous_end, [keep_end, len)
        // beyond the right edge; `contiguous_end <= right_edge` keeps dup_end <= keep_end.
        let dup_end = clamp_index(self.contiguous_end.saturating_sub(offset), len);
        let keep_end = clamp_index(self.right_edge().saturating_sub(offset), len);
        let mut outcome = InsertOutcome {
            duplicate_bytes: dup_end,
            beyond_window_bytes: len - keep_end,
            ..InsertOutcome::default()
        };
        if dup_end >= keep_end {
            return outcome;
        }
        let lo = offset + dup_end as u64;
        let hi = offset + keep_end as u64;

        let extends_contiguous = lo == self.contiguous_end;
        if !extends_contiguous && !self.out_of_order.can_insert(lo, hi) {
            outcome.range_limit_bytes = keep_end - dup_end;
            tracing::debug!(
                offset = lo,
                len = outcome.range_limit_bytes,
                "reassembly: out-of-order range limit reached, dropping segment"
            );
            return outcome;
        }
        let held_end = self
            .out_of_order
            .max_end()
            .map_or(self.contiguous_end, |e| e.max(self.contiguous_end));
        // `hi` and `held_end` are at most the right edge, `read_offset + capacity`.
        self.storage
            .reserve(self.read_offset, held_end, hi.max(held_end));

        // In-order data that reaches no out-of-order range (the usual case): store it and
        // move the cumulative point, without a round trip through the range set.
        if extends_contiguous
            && self
                .out_of_order
                .first()
                .is_none_or(|(start, _)| start > hi)
        {
            self.storage.write(lo, &data[dup_end..keep_end]);
            self.contiguous_end = hi;
            outcome.new_bytes = keep_end - dup_end;
            return outcome;
        }

        // Store the parts of lo..hi not covered by an existing range. In-order data may
        // pass the limit: the range it forms is folded into contiguous_end below.
        let storage = &mut self.storage;
        let mut new_bytes = 0;
        self.out_of_order.insert_unbounded(lo, hi, |a, b| {
            let piece = &data[(a - offset) as usize..(b - offset) as usize];
            storage.write(a, piece);
            new_bytes += piece.len();
        });
        outcome.new_bytes = new_bytes;
        if !extends_contiguous {
            outcome.out_of_order_bytes = new_bytes;
        }
        outcome.duplicate_bytes += (hi - lo) as usize - new_bytes;
        if extends_contiguous
            && let Some((start, end)) = self.out_of_order.first()
            && start == self.contiguous_end
        {
            self.out_of_order.remove_below(end);
            self.contiguous_end = end;
        }
        outcome
    }

    /// Copies readable bytes into `dst` and consumes them; returns how many.
    pub fn read(&mut self, dst: &mut [u8]) -> usize {
        let n = dst.len().min(self.readable());
        let mut done = 0;
        while done < n {
            let chunk = self.peek();
            let take = chunk.len().min(n - done);
            dst[done..done + take].copy_from_slice(&chunk[..take]);
            self.consume(take);
            done += take;
        }
        n
    }

    /// The first contiguous run of readable bytes (it may stop at the ring wrap before
    /// `readable()`); pair with [`consume`](Self::consume) for zero-copy reading.
    pub fn peek(&self) -> &[u8] {
        let readable = self.readable();
        if readable == 0 {
            return &[];
        }
        self.storage.slice(self.read_offset, readable)
    }

    /// Marks `n` readable bytes as read; `n` beyond `readable()` is clamped to it.
    pub fn consume(&mut self, n: usize) {
        let n = n.min(self.readable());
        self.read_offset += n as u64;
    }
}

/// `distance` as an index into a segment of `len` bytes, at most `len`.
fn clamp_index(distance: u64, len: usize) -> usize {
    usize::try_from(distance).map_or(len, |d| d.min(len))
}

impl core::fmt::Debug for Reassembly {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Reassembly")
            .field("read_offset", &self.read_offset)
            .field("contiguous_end", &self.contiguous_end)
            .field("out_of_order", &self.out_of_order)
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn outcome(new: usize, dup: usize, beyond: usize, limit: usize) -> InsertOutcome {
        InsertOutcome {
            new_bytes: new,
            duplicate_bytes: dup,
            beyond_window_bytes: beyond,
            range_limit_bytes: limit,
            out_of_order_bytes: 0,
        }
    }

    /// `o` for data stored ahead of a gap: all its new bytes are out of order.
    fn ahead(o: InsertOutcome) -> InsertOutcome {
        InsertOutcome {
            out_of_order_bytes: o.new_bytes,
            ..o
        }
    }

    fn read_all(rx: &mut Reassembly) -> Vec<u8> {
        let mut out = vec![0u8; rx.readable()];
        let n = rx.read(&mut out);
        out.truncate(n);
        out
    }

    #[test]
    fn the_ring_grows_with_the_span_held_and_keeps_out_of_order_bytes() {
        let mut rx = Reassembly::new(300);
        assert_eq!((rx.allocated(), rx.window()), (0, 300));
        rx.insert(100, b"xyz");
        // Offsets 0..103 must fit: 128 bytes.
        assert_eq!(rx.allocated(), 128);
        let head = [b'a'; 100];
        assert_eq!(rx.insert(0, &head), outcome(100, 0, 0, 0));
        assert_eq!(rx.insert(103, &[b'b'; 150]), outcome(150, 0, 0, 0));
        assert_eq!(rx.allocated(), 256);
        let got = read_all(&mut rx);
        assert_eq!(got.len(), 253);
        assert_eq!(&got[98..105], b"aaxyzbb");
        assert_eq!(rx.insert(253, &[b'c'; 400]), outcome(300, 0, 100, 0));
        assert_eq!(rx.allocated(), 300);
    }

    #[test]
    fn in_order_segments_are_readable_at_once() {
        let mut rx = Reassembly::new(10);
        assert_eq!(rx.insert(0, b"abc"), outcome(3, 0, 0, 0));
        assert_eq!(rx.insert(3, b"def"), outcome(3, 0, 0, 0));
        assert_eq!((rx.contiguous_end(), rx.readable(), rx.window()), (6, 6, 4));
        assert_eq!(read_all(&mut rx), b"abcdef");
        assert_eq!(
            (rx.read_offset(), rx.window(), rx.right_edge()),
            (6, 10, 16)
        );
    }

    #[test]
    fn hole_filling_merges_out_of_order_ranges() {
        let mut rx = Reassembly::new(20);
        rx.insert(4, b"ef");
        rx.insert(10, b"kl");
        rx.insert(7, b"h");
        assert_eq!(rx.ranges().collect::<Vec<_>>(), vec![4..6, 7..8, 10..12]);
        assert_eq!(rx.range_containing(7), Some(7..8));
        assert_eq!(rx.range_containing(6), None);
        // Bridges 4..6 and 7..8 and touches 10..12: one range 4..12.
        assert_eq!(rx.insert(5, b"FgHij"), ahead(outcome(3, 2, 0, 0)));
        assert_eq!(rx.ranges().collect::<Vec<_>>(), vec![4..12]);
        assert_eq!(rx.contiguous_end(), 0);
        assert_eq!(rx.window(), 20);
        assert_eq!(rx.insert(0, b"abcdEF"), outcome(4, 2, 0, 0));
        assert_eq!(rx.contiguous_end(), 12);
        assert_eq!(rx.ranges().count(), 0);
        // The first copy of each byte wins.
        assert_eq!(read_all(&mut rx), b"abcdefghijkl");
    }

    #[test]
    fn bytes_already_read_are_duplicates() {
        let mut rx = Reassembly::new(8);
        rx.insert(0, b"abcd");
        read_all(&mut rx);
        assert_eq!(rx.insert(0, b"abcdef"), outcome(2, 4, 0, 0));
        assert_eq!(read_all(&mut rx), b"ef");
        assert_eq!(rx.insert(1, b"x"), outcome(0, 1, 0, 0));
    }

    #[test]
    fn bytes_beyond_the_right_edge_are_dropped_and_counted() {
        let mut rx = Reassembly::new(8);
        assert_eq!(rx.insert(6, b"ghijk"), ahead(outcome(2, 0, 3, 0)));
        assert_eq!(rx.insert(8, b"ij"), outcome(0, 0, 2, 0));
        assert_eq!(rx.insert(u64::MAX - 1, b"zzzz"), outcome(0, 0, 4, 0));
        assert_eq!(rx.insert(0, b"abcdef"), outcome(6, 0, 0, 0));
        assert_eq!(rx.window(), 0);
        // Reading opens the window again; offsets wrap around the ring.
        let mut two = [0u8; 2];
        rx.read(&mut two);
        assert_eq!(rx.insert(8, b"ijk"), outcome(2, 0, 1, 0));
        assert_eq!(rx.peek(), b"cdefgh");
        rx.consume(6);
        assert_eq!(rx.peek(), b"ij");
        rx.consume(100);
        assert_eq!((rx.read_offset(), rx.readable()), (10, 0));
    }

    #[test]
    fn peek_stops_at_the_ring_wrap() {
        let mut rx = Reassembly::new(4);
        rx.insert(0, b"abc");
        rx.consume(3);
        rx.insert(3, b"defg");
        assert_eq!(rx.peek(), b"d");
        let mut out = [0u8; 4];
        assert_eq!(rx.read(&mut out), 4);
        assert_eq!(&out, b"defg");
    }

    #[test]
    fn the_range_limit_drops_only_data_that_would_open_a_new_range() {
        let mut rx = Reassembly::new(1_000);
        for k in 0..MIN_OUT_OF_ORDER_RANGES as u64 {
            assert_eq!(rx.insert(2 + 3 * k, b"x"), ahead(outcome(1, 0, 0, 0)));
        }
        assert_eq!(rx.ranges().count(), MIN_OUT_OF_ORDER_RANGES);
        // A 65th range is refused ...
        assert_eq!(rx.insert(500, b"yy"), outcome(0, 0, 0, 2));
        // ... but extending or bridging existing ranges, or the in-order edge, is fine.
        assert_eq!(rx.insert(3, b"z"), ahead(outcome(1, 0, 0, 0)));
        assert_eq!(rx.insert(3, b"zzz"), ahead(outcome(1, 2, 0, 0)));
        assert_eq!(rx.ranges().count(), MIN_OUT_OF_ORDER_RANGES - 1);
        assert_eq!(rx.insert(0, b"ab"), outcome(2, 0, 0, 0));
        assert_eq!(rx.contiguous_end(), 6);
        assert_eq!(rx.ranges().count(), MIN_OUT_OF_ORDER_RANGES - 2);
    }

    #[test]
    fn zero_capacity_drops_everything_without_panicking() {
        let mut rx = Reassembly::new(0);
        assert_eq!(rx.insert(0, b"abc"), outcome(0, 0, 3, 0));
        assert_eq!((rx.window(), rx.readable(), rx.peek()), (0, 0, &b""[..]));
    }

    /// Byte-by-byte model: present bytes keyed by offset, first copy wins.
    struct Model {
        cap: u64,
        read: u64,
        bytes: BTreeMap<u64, u8>,
    }

    impl Model {
        fn contiguous_end(&self) -> u64 {
            let mut o = self.read;
            while self.bytes.contains_key(&o) {
                o += 1;
            }
            o
        }

        fn ranges(&self) -> Vec<Range<u64>> {
            let ce = self.contiguous_end();
            let mut out: Vec<Range<u64>> = Vec::new();
            for &o in self.bytes.range(ce..).map(|(o, _)| o) {
                match out.last_mut() {
                    Some(r) if r.end == o => r.end += 1,
                    _ => out.push(o..o + 1),
                }
            }
            out
        }

        fn insert(&mut self, offset: u64, data: &[u8]) -> InsertOutcome {
            let mut out = InsertOutcome::default();
            let mut contiguous_end = self.read;
            while self.bytes.contains_key(&contiguous_end) {
                contiguous_end += 1;
            }
            let mut fresh = Vec::new();
            for (i, &b) in data.iter().enumerate() {
                let o = offset + i as u64;
                if o < self.read || self.bytes.contains_key(&o) {
                    out.duplicate_bytes += 1;
                } else if o >= self.read + self.cap {
                    out.beyond_window_bytes += 1;
                } else {
                    fresh.push((o, b));
                }
            }
            for &(o, b) in &fresh {
                self.bytes.insert(o, b);
            }
            if self.ranges().len() > MIN_OUT_OF_ORDER_RANGES {
                for &(o, _) in &fresh {
                    self.bytes.remove(&o);
                }
                out.range_limit_bytes = fresh.len();
            } else {
                out.new_bytes = fresh.len();
                if offset > contiguous_end {
                    out.out_of_order_bytes = out.new_bytes;
                }
            }
            out
        }

        fn read(&mut self, n: usize) -> Vec<u8> {
            let mut out = Vec::new();
            while out.len() < n {
                match self.bytes.remove(&self.read) {
                    Some(b) => out.push(b),
                    None => break,
                }
                self.read += 1;
            }
            out
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert { back: u64, data: Vec<u8> },
        Read(usize),
        PeekConsume(usize),
    }

    fn op(max_len: usize, max_back: u64, insert_weight: u32) -> impl Strategy<Value = Op> {
        prop_oneof![
            insert_weight => (0u64..max_back, proptest::collection::vec(any::<u8>(), 0..max_len))
                .prop_map(|(back, data)| Op::Insert { back, data }),
            1 => (0usize..80).prop_map(Op::Read),
            1 => (0usize..80).prop_map(Op::PeekConsume),
        ]
    }

    fn check(cap: usize, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let mut rx = Reassembly::new(cap);
        let mut model = Model {
            cap: cap as u64,
            read: 0,
            bytes: BTreeMap::new(),
        };
        for op in ops {
            match op {
                Op::Insert { back, data } => {
                    // Offsets from behind the read point to beyond the right edge.
                    let offset = (model.read + back).saturating_sub(30);
                    let got = rx.insert(offset, &data);
                    prop_assert_eq!(got, model.insert(offset, &data));
                    prop_assert_eq!(
                        got.new_bytes
                            + got.duplicate_bytes
                            + got.beyond_window_bytes
                            + got.range_limit_bytes,
                        data.len()
                    );
                }
                Op::Read(n) => {
                    let mut out = vec![0u8; n];
                    let k = rx.read(&mut out);
                    prop_assert_eq!(&out[..k], &model.read(n)[..]);
                }
                Op::PeekConsume(n) => {
                    let chunk = rx.peek().to_vec();
                    let take = n.min(chunk.len());
                    rx.consume(take);
                    prop_assert_eq!(&chunk[..take], &model.read(take)[..]);
                }
            }
            let ce = model.contiguous_end();
            prop_assert_eq!(rx.read_offset(), model.read);
            prop_assert_eq!(rx.contiguous_end(), ce);
            prop_assert_eq!(rx.readable() as u64, ce - model.read);
            prop_assert_eq!(rx.window() as u64, model.read + model.cap - ce);
            prop_assert_eq!(rx.buffered(), model.bytes.len());
            prop_assert_eq!(rx.ranges().collect::<Vec<_>>(), model.ranges());
        }
        Ok(())
    }

    proptest! {
        /// Arbitrary overlapping, duplicated and reordered segments: the reader gets
        /// exactly the bytes inserted, in order, first copy winning.
        #[test]
        fn matches_a_byte_model(cap in 1usize..200, ops in proptest::collection::vec(op(40, 400, 6), 0..150)) {
            check(cap, ops)?;
        }

        /// Many tiny segments in a wide window, so the range limit comes into play.
        #[test]
        fn matches_the_model_at_the_range_limit(ops in proptest::collection::vec(op(2, 600, 40), 0..500)) {
            check(600, ops)?;
        }
    }
}
