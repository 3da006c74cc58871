//! The sending side of DSN mappings: what each subflow has carried.

use core::ops::Range;
use std::collections::VecDeque;

use super::MAX_MAPPING_LEN;
use crate::seq::{Dsn, SeqNum};

/// One mapping a subflow sends: `len` payload bytes at subflow stream `offset` carry the
/// data starting at `dsn`, optionally followed by the DATA_FIN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxMapping {
    pub dsn: Dsn,
    /// Subflow stream offset of the first byte (0 = the subflow's first data byte).
    pub offset: u64,
    /// Payload bytes in the subflow's byte stream.
    pub len: u32,
    /// RFC 8684 §3.3.3: the DATA_FIN follows the payload and takes one byte of data
    /// sequence space (counted in the data-level length) but none of subflow space.
    pub data_fin: bool,
}

impl TxMapping {
    /// The subflow offset just past the payload.
    pub const fn offset_end(&self) -> u64 {
        self.offset + self.len as u64
    }

    /// The DSN just past the payload (the DATA_FIN's DSN when it has one).
    pub fn payload_dsn_end(&self) -> Dsn {
        self.dsn + u64::from(self.len)
    }

    /// The DSN just past the mapping, DATA_FIN included: a data ACK at or beyond it
    /// covers the whole mapping.
    pub fn dsn_end(&self) -> Dsn {
        self.dsn + u64::from(self.data_level_len())
    }

    /// The DSS "data-level length": payload plus one for the DATA_FIN.
    pub const fn data_level_len(&self) -> u16 {
        // `push` and `attach_data_fin` keep len + fin <= MAX_MAPPING_LEN = u16::MAX.
        (self.len + self.data_fin as u32) as u16
    }

    /// The DSS "subflow sequence number", relative to the subflow's ISN: offset 0 is
    /// sequence 1 (RFC 8684 §3.3.1). Truncates to 32 bits as the wire does.
    pub const fn relative_subflow_seq(&self) -> SeqNum {
        SeqNum((self.offset as u32).wrapping_add(1))
    }

    /// The DSN of the byte at subflow `offset`, which must lie in the mapping.
    pub fn dsn_at(&self, offset: u64) -> Dsn {
        debug_assert!(offset >= self.offset && offset - self.offset <= u64::from(self.len));
        self.dsn + (offset - self.offset)
    }
}

/// The mappings one subflow has sent, ordered by subflow offset and contiguous: every
/// offset from the oldest kept mapping up to [`TxMappings::end`] is mapped.
///
/// A segment carries exactly one DSS mapping, so the subflow cuts segments (and GSO
/// super-segments) at mapping boundaries: [`TxMappings::lookup`] tells where the mapping
/// around an offset ends.
///
/// **Bound.** A mapping is kept until the subflow's cumulative ACK has passed it *and*
/// the data ACK covers it ([`TxMappings::prune`]), because a subflow ACK alone does not
/// guarantee the peer's connection level got the data (RFC 8684 §3.3.2; a middlebox may
/// have acknowledged it) and reinjection needs those ranges. So the kept mappings cover
/// at most the subflow's unacknowledged bytes (bounded by its send window) plus the
/// connection's not-yet-data-acked bytes (bounded by the send buffer). Their number is
/// that byte count divided by the mapping size: the connection should hand chunks of up
/// to [`MAX_MAPPING_LEN`] bytes, and small writes coalesce into the last mapping while
/// none of it has been transmitted ([`TxMappings::for_transmit`] freezes a mapping).
///
/// ```
/// use mptcp_proto::Dsn;
/// use mptcp_proto::mptcp::mapping::TxMappings;
///
/// let mut tx = TxMappings::new();
/// tx.push(Dsn(1000), 100);
/// tx.push(Dsn(1100), 50); // contiguous and nothing sent yet: coalesces
/// let m = tx.for_transmit(0).expect("offset 0 is mapped");
/// assert_eq!((m.dsn, m.offset, m.len), (Dsn(1000), 0, 150));
/// tx.push(Dsn(1150), 10); // the first mapping is on the wire now: a new one
/// assert_eq!(tx.len(), 2);
/// assert_eq!(tx.lookup(155).map(|m| m.dsn_at(155)), Some(Dsn(1155)));
/// ```
#[derive(Clone, Debug, Default)]
pub struct TxMappings {
    maps: VecDeque<TxMapping>,
    /// The next subflow offset to map (the end of the last mapping).
    end: u64,
    /// Whether the last mapping has gone on the wire, so it must not grow any more: a
    /// receiver that saw it would see a conflicting mapping (RFC 8684 §3.3.1).
    last_frozen: bool,
    /// Index of the mapping the last transmission came from: the next one comes from it
    /// or the one after, so most lookups need no search.
    hint: usize,
    /// Kept mappings whose DSN is below their predecessor's (reinjected or
    /// opportunistically retransmitted data). While there are none, DSNs grow along
    /// the subflow and the earliest unacknowledged DSN is found without a scan.
    dsn_regressions: usize,
}

impl TxMappings {
    pub fn new() -> Self {
        TxMappings::default()
    }

    /// The subflow offset the next pushed byte gets.
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Mappings kept.
    pub fn len(&self) -> usize {
        self.maps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.maps.is_empty()
    }

    /// The kept mappings, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = &TxMapping> + '_ {
        self.maps.iter()
    }

    /// Maps the next `len` bytes of the subflow to the data starting at `dsn` (a fresh
    /// chunk from the scheduler, or a reinjected range). Grows the last mapping when the
    /// DSNs continue it and it has not been transmitted; otherwise starts new mappings of
    /// at most [`MAX_MAPPING_LEN`] bytes each.
    pub fn push(&mut self, mut dsn: Dsn, mut len: u32) {
        while len > 0 {
            let room = match self.maps.back() {
                Some(last)
                    if !self.last_frozen && !last.data_fin && last.payload_dsn_end() == dsn =>
                {
                    MAX_MAPPING_LEN - last.len
                }
                _ => 0,
            };
            let step = if room > 0 {
                let step = len.min(room);
                if let Some(last) = self.maps.back_mut() {
                    last.len += step;
                }
                step
            } else {
                let step = len.min(MAX_MAPPING_LEN);
                if self
                    .maps
                    .back()
                    .is_some_and(|last| !dsn_at_or_before(last.dsn, dsn))
                {
                    self.dsn_regressions += 1;
                }
                self.maps.push_back(TxMapping {
                    dsn,
                    offset: self.end,
                    len: step,
                    data_fin: false,
                });
                self.last_frozen = false;
                step
            };
            self.end += u64::from(step);
            dsn += u64::from(step);
            len -= step;
        }
    }

    /// Puts the DATA_FIN at `fin_dsn` on the last mapping when that mapping ends right
    /// before it, has not been transmitted, and has room for one more data-level byte.
    /// Returns false otherwise: the connection then signals the DATA_FIN in a mapping of
    /// its own (subflow sequence 0, data-level length 1; RFC 8684 §3.3.3), which takes
    /// no subflow space and so is not kept here.
    pub fn attach_data_fin(&mut self, fin_dsn: Dsn) -> bool {
        match self.maps.back_mut() {
            Some(last)
                if !self.last_frozen
                    && !last.data_fin
                    && last.payload_dsn_end() == fin_dsn
                    && last.len < MAX_MAPPING_LEN =>
            {
                last.data_fin = true;
                true
            }
            _ => false,
        }
    }

    /// The mapping that contains subflow `offset`, in O(log n).
    pub fn lookup(&self, offset: u64) -> Option<TxMapping> {
        let idx = self.index_for(offset);
        self.maps.get(idx).filter(|m| m.offset <= offset).copied()
    }

    /// Where `offset` is or would be: at the hint or just after it (transmissions
    /// walk the mappings in order), else found by binary search.
    fn index_for(&self, offset: u64) -> usize {
        let contains = |i: usize| {
            self.maps
                .get(i)
                .is_some_and(|m| m.offset <= offset && offset < m.offset_end())
        };
        if contains(self.hint) {
            self.hint
        } else if contains(self.hint + 1) {
            self.hint + 1
        } else {
            self.maps.partition_point(|m| m.offset_end() <= offset)
        }
    }

    /// [`TxMappings::lookup`] for a segment about to be (re)transmitted: from now on the
    /// mapping is on the wire and never grows.
    pub fn for_transmit(&mut self, offset: u64) -> Option<TxMapping> {
        let idx = self.index_for(offset);
        let found = self.maps.get(idx).filter(|m| m.offset <= offset).copied();
        if found.is_some() {
            self.hint = idx;
        }
        if found.is_some() && idx + 1 == self.maps.len() {
            self.last_frozen = true;
        }
        found
    }

    /// Drops the mappings that are both behind the subflow's cumulative ACK
    /// (`subflow_acked`, a subflow offset) and covered by the data ACK `data_ack`.
    /// Returns how many were dropped.
    pub fn prune(&mut self, subflow_acked: u64, data_ack: Dsn) -> usize {
        let mut dropped = 0;
        while let Some(front) = self.maps.front() {
            if front.offset_end() <= subflow_acked && dsn_at_or_before(front.dsn_end(), data_ack) {
                if self
                    .maps
                    .get(1)
                    .is_some_and(|next| !dsn_at_or_before(front.dsn, next.dsn))
                {
                    self.dsn_regressions -= 1;
                }
                self.maps.pop_front();
                self.hint = self.hint.saturating_sub(1);
                dropped += 1;
            } else {
                break;
            }
        }
        dropped
    }

    /// The earliest DSN among the mappings not fully behind the subflow's cumulative
    /// ACK `subflow_acked`: data the subflow may still have to retransmit, so the
    /// connection must keep it. O(log n) while DSNs grow along the subflow (no
    /// reinjection kept), a scan of the unacknowledged mappings otherwise.
    pub fn earliest_unacked_dsn(&self, subflow_acked: u64) -> Option<Dsn> {
        let first = self
            .maps
            .partition_point(|m| m.offset_end() <= subflow_acked);
        if self.dsn_regressions == 0 {
            return self.maps.get(first).map(|m| m.dsn);
        }
        self.maps
            .range(first..)
            .map(|m| m.dsn)
            .reduce(|a, b| if dsn_at_or_before(a, b) { a } else { b })
    }

    /// The DSN ranges of payload this subflow carried that `data_ack` does not cover,
    /// adjacent ranges merged, in subflow order: what must be reinjected on other
    /// subflows when this one dies (RFC 8684 §3.3.6 / PROTOCOL.md "Reinjection"). The
    /// DATA_FIN is not included; the connection re-signals it from its own state.
    pub fn unacked_ranges(&self, data_ack: Dsn) -> UnackedRanges<'_> {
        UnackedRanges {
            maps: self.maps.iter(),
            data_ack,
            pending: None,
        }
    }
}

/// `a <= b` in the data sequence space, which wraps at 2^64 (the IDSN is random, so a
/// connection may cross the wrap): `b` is less than 2^63 ahead of `a`.
fn dsn_at_or_before(a: Dsn, b: Dsn) -> bool {
    b.0.wrapping_sub(a.0) < 1 << 63
}

/// Iterator returned by [`TxMappings::unacked_ranges`]. A range that crosses the 2^64
/// wrap has `end < start` numerically; its length is `end.0.wrapping_sub(start.0)`.
#[derive(Clone, Debug)]
pub struct UnackedRanges<'a> {
    maps: std::collections::vec_deque::Iter<'a, TxMapping>,
    data_ack: Dsn,
    pending: Option<Range<Dsn>>,
}

impl Iterator for UnackedRanges<'_> {
    type Item = Range<Dsn>;

    fn next(&mut self) -> Option<Range<Dsn>> {
        for m in self.maps.by_ref() {
            let end = m.payload_dsn_end();
            if dsn_at_or_before(end, self.data_ack) {
                continue;
            }
            let start = if dsn_at_or_before(self.data_ack, m.dsn) {
                m.dsn
            } else {
                self.data_ack
            };
            match &mut self.pending {
                Some(run) if run.end == start => run.end = end,
                Some(_) => return self.pending.replace(start..end),
                None => self.pending = Some(start..end),
            }
        }
        self.pending.take()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(dsn: u64, offset: u64, len: u32, data_fin: bool) -> TxMapping {
        TxMapping {
            dsn: Dsn(dsn),
            offset,
            len,
            data_fin,
        }
    }

    #[test]
    fn push_coalesces_until_transmitted_then_starts_new_mappings() {
        let mut tx = TxMappings::new();
        tx.push(Dsn(10), 5);
        tx.push(Dsn(15), 5);
        assert_eq!(
            tx.iter().copied().collect::<Vec<_>>(),
            vec![mapping(10, 0, 10, false)]
        );
        assert_eq!(tx.for_transmit(3), Some(mapping(10, 0, 10, false)));
        tx.push(Dsn(20), 4);
        // A DSN jump (reinjection of an old range) never coalesces.
        tx.push(Dsn(2), 3);
        assert_eq!(
            tx.iter().copied().collect::<Vec<_>>(),
            vec![
                mapping(10, 0, 10, false),
                mapping(20, 10, 4, false),
                mapping(2, 14, 3, false)
            ]
        );
        assert_eq!(tx.end(), 17);
    }

    #[test]
    fn push_splits_at_the_16_bit_data_level_length() {
        let mut tx = TxMappings::new();
        tx.push(Dsn(0), 65_535 + 65_535 + 7);
        assert_eq!(
            tx.iter().copied().collect::<Vec<_>>(),
            vec![
                mapping(0, 0, 65_535, false),
                mapping(65_535, 65_535, 65_535, false),
                mapping(131_070, 131_070, 7, false)
            ]
        );
        // Growing the last one also stops at the limit.
        tx.push(Dsn(131_077), 65_530);
        assert_eq!(tx.len(), 4);
        assert_eq!(
            tx.lookup(131_070),
            Some(mapping(131_070, 131_070, 65_535, false))
        );
        assert_eq!(
            tx.lookup(196_605),
            Some(mapping(196_605, 196_605, 2, false))
        );
    }

    #[test]
    fn lookup_finds_the_mapping_around_an_offset() {
        let mut tx = TxMappings::new();
        for (i, dsn) in [100u64, 500, 300].into_iter().enumerate() {
            tx.push(Dsn(dsn), 10);
            tx.for_transmit(i as u64 * 10);
        }
        assert_eq!(tx.lookup(0), Some(mapping(100, 0, 10, false)));
        assert_eq!(tx.lookup(9).map(|m| m.dsn_at(9)), Some(Dsn(109)));
        assert_eq!(tx.lookup(10).map(|m| m.dsn_at(10)), Some(Dsn(500)));
        assert_eq!(tx.lookup(25).map(|m| m.dsn_at(25)), Some(Dsn(305)));
        assert_eq!(tx.lookup(30), None);
        assert_eq!(
            tx.lookup(29).map(|m| m.relative_subflow_seq()),
            Some(SeqNum(21))
        );
    }

    #[test]
    fn prune_needs_both_the_subflow_ack_and_the_data_ack() {
        let mut tx = TxMappings::new();
        tx.push(Dsn(1000), 10);
        tx.for_transmit(0);
        tx.push(Dsn(1010), 10);
        // Subflow-acked but not data-acked: kept (the peer's MPTCP may not have it).
        assert_eq!(tx.prune(20, Dsn(1005)), 0);
        assert_eq!(tx.prune(20, Dsn(1010)), 1);
        // Data-acked but not subflow-acked: kept (the subflow still retransmits it).
        assert_eq!(tx.prune(19, Dsn(1020)), 0);
        assert_eq!(tx.prune(20, Dsn(1020)), 1);
        assert!(tx.is_empty());
        assert_eq!(tx.lookup(5), None);
        // Pushing continues at the same subflow offset.
        tx.push(Dsn(1020), 1);
        assert_eq!(tx.lookup(20), Some(mapping(1020, 20, 1, false)));
    }

    #[test]
    fn unacked_ranges_skip_acked_data_and_merge_neighbours() {
        let mut tx = TxMappings::new();
        tx.push(Dsn(100), 10);
        tx.for_transmit(0);
        tx.push(Dsn(110), 10); // adjacent in DSN to the first: merged in the output
        tx.for_transmit(10);
        tx.push(Dsn(50), 5); // a reinjected old range, already data-acked
        tx.for_transmit(20);
        tx.push(Dsn(200), 10);
        let ranges: Vec<_> = tx.unacked_ranges(Dsn(104)).collect();
        assert_eq!(ranges, vec![Dsn(104)..Dsn(120), Dsn(200)..Dsn(210)]);
        assert_eq!(tx.unacked_ranges(Dsn(210)).count(), 0);
        assert_eq!(tx.unacked_ranges(Dsn(0)).collect::<Vec<_>>().len(), 3);
    }

    #[test]
    fn dsn_comparisons_survive_the_2_64_wrap() {
        let mut tx = TxMappings::new();
        tx.push(Dsn(u64::MAX - 4), 10); // DSNs MAX-4 ..= MAX, then 0 ..= 4
        tx.for_transmit(0);
        tx.push(Dsn(5), 10);
        assert_eq!(tx.lookup(7).map(|m| m.dsn_at(7)), Some(Dsn(2)));
        assert_eq!(
            tx.unacked_ranges(Dsn(u64::MAX)).collect::<Vec<_>>(),
            vec![Dsn(u64::MAX)..Dsn(15)]
        );
        assert_eq!(tx.prune(20, Dsn(3)), 0);
        assert_eq!(tx.prune(20, Dsn(5)), 1);
        assert_eq!(
            tx.unacked_ranges(Dsn(5)).collect::<Vec<_>>(),
            vec![Dsn(5)..Dsn(15)]
        );
    }

    #[test]
    fn data_fin_joins_an_untransmitted_last_mapping_only() {
        let mut tx = TxMappings::new();
        tx.push(Dsn(7), 3);
        assert!(!tx.attach_data_fin(Dsn(11)), "not where the data ends");
        assert!(tx.attach_data_fin(Dsn(10)));
        let m = tx.lookup(0).expect("mapped");
        assert_eq!(
            (m.data_level_len(), m.dsn_end(), m.payload_dsn_end()),
            (4, Dsn(11), Dsn(10))
        );
        // After the DATA_FIN nothing coalesces into the mapping.
        tx.push(Dsn(10), 1);
        assert_eq!(tx.len(), 2);
        // A frozen last mapping cannot take the DATA_FIN either.
        let mut tx = TxMappings::new();
        tx.push(Dsn(7), 3);
        tx.for_transmit(2);
        assert!(!tx.attach_data_fin(Dsn(10)));
        // Nor a full one.
        let mut tx = TxMappings::new();
        tx.push(Dsn(0), MAX_MAPPING_LEN);
        assert!(!tx.attach_data_fin(Dsn(u64::from(MAX_MAPPING_LEN))));
    }

    /// Brute force: the earliest DSN of the mappings the subflow ACK does not cover.
    fn earliest_by_scan(tx: &TxMappings, subflow_acked: u64) -> Option<Dsn> {
        tx.iter()
            .filter(|m| m.offset_end() > subflow_acked)
            .map(|m| m.dsn)
            .reduce(|a, b| if dsn_at_or_before(a, b) { a } else { b })
    }

    #[test]
    fn earliest_unacked_dsn_follows_reinjections_in_and_out() {
        let mut tx = TxMappings::new();
        let base = u64::MAX - 3_000; // crosses the 2^64 wrap on the way
        for i in 0..4u64 {
            tx.push(Dsn(base.wrapping_add(i * 1000)), 1000);
            tx.for_transmit(i * 1000);
        }
        assert_eq!(tx.dsn_regressions, 0);
        assert_eq!(tx.earliest_unacked_dsn(0), Some(Dsn(base)));
        assert_eq!(
            tx.earliest_unacked_dsn(2500),
            Some(Dsn(base.wrapping_add(2000)))
        );
        // A reinjection of older data, then fresh data again.
        tx.push(Dsn(base.wrapping_sub(5000)), 500);
        tx.for_transmit(4000);
        tx.push(Dsn(base.wrapping_add(4000)), 1000);
        assert_eq!(tx.dsn_regressions, 1);
        for acked in [0, 1000, 3999, 4000, 4500, 5500] {
            assert_eq!(
                tx.earliest_unacked_dsn(acked),
                earliest_by_scan(&tx, acked),
                "acked {acked}"
            );
        }
        assert_eq!(
            tx.earliest_unacked_dsn(3999),
            Some(Dsn(base.wrapping_sub(5000)))
        );
        // Pruned past the reinjection: the fast path is back.
        tx.prune(4500, Dsn(base.wrapping_add(4000)));
        assert_eq!(tx.dsn_regressions, 0);
        assert_eq!(
            tx.earliest_unacked_dsn(4500),
            Some(Dsn(base.wrapping_add(4000)))
        );
        assert_eq!(tx.earliest_unacked_dsn(5500), None);
    }

    proptest::proptest! {
        #[test]
        fn earliest_unacked_dsn_matches_a_scan(
            steps in proptest::collection::vec((0u64..20_000, 1u32..3_000, proptest::bool::ANY, 0u64..4_000), 1..60)
        ) {
            let mut tx = TxMappings::new();
            let mut next = 1_000_000u64;
            let mut acked = 0u64;
            for (back, len, transmit, ack_step) in steps {
                // Mostly fresh data; sometimes an older range (a reinjection).
                let dsn = if back % 3 == 0 { next - back.min(next) } else { next };
                tx.push(Dsn(dsn), len);
                next = next.max(dsn + u64::from(len));
                if transmit {
                    tx.for_transmit(tx.end() - 1);
                }
                acked = (acked + ack_step).min(tx.end());
                let data_ack = tx.iter().next().map_or(Dsn(0), |m| m.dsn_end());
                tx.prune(acked, data_ack);
                proptest::prop_assert_eq!(tx.earliest_unacked_dsn(acked), earliest_by_scan(&tx, acked));
            }
        }
    }
}
