//! SACK bookkeeping (RFC 2018, D-SACK RFC 2883) in unwrapped stream offsets.
//!
//! [`RangeSet`] is a bounded, sorted set of disjoint byte ranges: the receiver uses one
//! for the out-of-order data it holds above RCV.NXT (the source of its SACK blocks), the
//! sender one for the SACKed ranges above SND.UNA (its scoreboard). Inserting reports
//! only the bytes not already covered, so the sender marks each segment SACKed once,
//! whatever the peer repeats in later ACKs: per-ACK work does not grow with the amount of
//! data in flight.

use std::collections::BTreeMap;
use std::ops::Bound;

use arrayvec::ArrayVec;

/// The fewest disjoint ranges a set may be limited to (RFC 2018 needs only four SACK
/// blocks per ACK, but a window with more holes than the set holds cannot be recovered
/// in one round trip).
pub const MIN_RANGES: usize = 64;

/// Buffer bytes per allowed range for [`range_limit`]. Each range is preceded by a hole,
/// so a peer that sends full-sized segments (at least 512 bytes) with every other one
/// lost opens one range per 1,024 bytes or more: a buffer of `B` bytes then never needs
/// more than `B / 1024` ranges. A range costs about 40 bytes of B-tree, so the
/// bookkeeping stays under 4 % of the buffer it describes, whatever the peer sends.
pub const BYTES_PER_RANGE: usize = 1024;

/// The range limit for out-of-order data in a buffer of `buffer_bytes` (see
/// [`BYTES_PER_RANGE`]), never below [`MIN_RANGES`].
pub fn range_limit(buffer_bytes: usize) -> usize {
    (buffer_bytes / BYTES_PER_RANGE).max(MIN_RANGES)
}

/// Half-open byte range `[start, end)` of stream offsets.
pub type Range = (u64, u64);

/// A bounded set of disjoint, non-touching ranges, kept in a B-tree keyed by start:
/// finding, inserting and merging cost O(log n) plus the ranges merged away (each range
/// is merged away at most once, so that part is amortised O(1)).
///
/// New data that would open one more range than the limit is refused (the receiver
/// drops the segment, the sender ignores the SACK block); both are safe. Merging into
/// existing ranges is always allowed.
#[derive(Clone, Debug)]
pub struct RangeSet {
    /// start -> end.
    ranges: BTreeMap<u64, u64>,
    limit: usize,
}

impl Default for RangeSet {
    fn default() -> Self {
        RangeSet::with_limit(MIN_RANGES)
    }
}

impl RangeSet {
    /// A set of at most [`MIN_RANGES`] ranges.
    pub fn new() -> Self {
        RangeSet::default()
    }

    /// A set of at most `limit` ranges (at least one).
    pub fn with_limit(limit: usize) -> Self {
        RangeSet {
            ranges: BTreeMap::new(),
            limit: limit.max(1),
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Changes the limit; ranges already held stay (a lower limit only refuses new ones).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit.max(1);
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    fn is_full(&self) -> bool {
        self.ranges.len() >= self.limit
    }

    pub fn iter(&self) -> impl Iterator<Item = Range> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// The highest offset covered, if any.
    pub fn max_end(&self) -> Option<u64> {
        self.ranges.last_key_value().map(|(_, &e)| e)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range> {
        self.ranges.first_key_value().map(|(&s, &e)| (s, e))
    }

    /// The range containing `offset`.
    pub fn containing(&self, offset: u64) -> Option<Range> {
        self.ranges
            .range(..=offset)
            .next_back()
            .filter(|(_, e)| **e > offset)
            .map(|(&s, &e)| (s, e))
    }

    /// Whether every byte of `[start, end)` is in the set.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        start >= end || self.containing(start).is_some_and(|r| r.1 >= end)
    }

    /// Whether `[start, end)` overlaps or touches a range already held.
    fn meets_existing(&self, start: u64, end: u64) -> bool {
        let below = self.ranges.range(..=start).next_back();
        below.is_some_and(|(_, &e)| e >= start) || self.ranges.range(start..=end).next().is_some()
    }

    /// Whether inserting `[start, end)` would fit (it merges with an existing range or a
    /// slot is free).
    pub fn can_insert(&self, start: u64, end: u64) -> bool {
        start >= end || !self.is_full() || self.meets_existing(start, end)
    }

    /// Adds `[start, end)`, calling `newly_covered` for each sub-range that was not in the
    /// set before (ascending). Returns false, changing nothing, when the range would need
    /// a new slot and the set is full.
    pub fn insert(&mut self, start: u64, end: u64, newly_covered: impl FnMut(u64, u64)) -> bool {
        if !self.can_insert(start, end) {
            return false;
        }
        self.insert_unbounded(start, end, newly_covered);
        true
    }

    /// [`RangeSet::insert`] without the limit, for a range the caller removes at once
    /// (the receiver's in-order data at RCV.NXT).
    pub fn insert_unbounded(
        &mut self,
        start: u64,
        end: u64,
        mut newly_covered: impl FnMut(u64, u64),
    ) {
        if start >= end {
            return;
        }
        // The usual case, a segment that continues the range it follows and reaches no
        // other: grow that range in place rather than remove and re-insert it.
        if self
            .ranges
            .range((Bound::Excluded(start), Bound::Included(end)))
            .next()
            .is_none()
            && let Some((_, e)) = self.ranges.range_mut(..=start).next_back()
            && *e >= start
        {
            if *e < end {
                newly_covered(*e, end);
                *e = end;
            }
            return;
        }
        let mut merged = (start, end);
        // A range starting at or below `start` that reaches it merges too.
        let mut cursor = start;
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back()
            && e >= start
        {
            self.ranges.remove(&s);
            merged = (s, end.max(e));
            cursor = e;
        }
        // Then every range starting inside (start, end].
        while let Some((&s, &e)) = self.ranges.range(start..=end).next() {
            self.ranges.remove(&s);
            if s > cursor && cursor < end {
                newly_covered(cursor, s.min(end));
            }
            cursor = cursor.max(e);
            merged.1 = merged.1.max(e);
        }
        if cursor < end {
            newly_covered(cursor, end);
        }
        self.ranges.insert(merged.0, merged.1);
    }

    /// Forgets everything below `offset` (it was cumulatively acknowledged / received).
    pub fn remove_below(&mut self, offset: u64) {
        while let Some((&s, &e)) = self.ranges.first_key_value() {
            if e <= offset {
                self.ranges.remove(&s);
            } else {
                if s < offset {
                    self.ranges.remove(&s);
                    self.ranges.insert(offset, e);
                }
                break;
            }
        }
    }

    pub fn clear(&mut self) {
        self.ranges.clear();
    }
}

/// The receiver's SACK state: out-of-order ranges plus the order in which they were last
/// touched (RFC 2018 §4: the first block reports the most recent segment, the others
/// repeat the most recently reported blocks), and a pending D-SACK block (RFC 2883).
#[derive(Clone, Debug, Default)]
pub struct ReceiverSack {
    ranges: RangeSet,
    /// Offsets inside recently changed ranges, most recent first.
    recent: ArrayVec<u64, 4>,
    /// A duplicate range to report once, as the first block of the next ACK.
    dsack: Option<Range>,
}

impl ReceiverSack {
    /// Holds at most `limit` out-of-order ranges (see [`range_limit`]).
    pub fn with_limit(limit: usize) -> Self {
        ReceiverSack {
            ranges: RangeSet::with_limit(limit),
            ..ReceiverSack::default()
        }
    }

    pub fn ranges(&self) -> &RangeSet {
        &self.ranges
    }

    pub fn can_insert(&self, start: u64, end: u64) -> bool {
        self.ranges.can_insert(start, end)
    }

    /// Whether `[start, end)` is already held out of order.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        self.ranges.covers(start, end)
    }

    /// Records out-of-order data at `[start, end)` (above RCV.NXT).
    pub fn insert(&mut self, start: u64, end: u64) -> bool {
        if !self.ranges.insert(start, end, |_, _| {}) {
            return false;
        }
        self.touch(start);
        true
    }

    fn touch(&mut self, offset: u64) {
        let range = self.ranges.containing(offset);
        // Remove entries that now fall into the same range, then put this one first.
        self.recent
            .retain(|o| self.ranges.containing(*o) != range || range.is_none());
        if self.recent.is_full() {
            self.recent.pop();
        }
        self.recent.insert(0, offset);
    }

    /// RCV.NXT moved to `rcv_nxt`: returns the end of the contiguous run starting there
    /// (data held out of order that is now in order) and forgets it.
    pub fn advance(&mut self, rcv_nxt: u64) -> u64 {
        let end = match self.ranges.first() {
            Some((start, end)) if start <= rcv_nxt => end.max(rcv_nxt),
            _ => rcv_nxt,
        };
        self.ranges.remove_below(end);
        self.recent.retain(|o| *o >= end);
        end
    }

    /// A duplicate arrived: report `[start, end)` in the next ACK (RFC 2883 §4).
    pub fn note_duplicate(&mut self, start: u64, end: u64) {
        self.dsack = Some((start, end));
    }

    pub fn has_dsack(&self) -> bool {
        self.dsack.is_some()
    }

    /// The blocks for the next ACK, at most `max` of them: a D-SACK block first if one is
    /// pending (consumed here), then the out-of-order ranges most recent first, then any
    /// others in ascending order.
    pub fn blocks(&mut self, max: usize) -> ArrayVec<Range, 4> {
        let mut out = ArrayVec::new();
        let max = max.min(4);
        if max == 0 {
            return out;
        }
        if let Some(d) = self.dsack.take() {
            out.push(d);
            // RFC 2883 §4: when the duplicate lies inside an out-of-order range, that
            // range follows as the second block.
        }
        for &o in &self.recent {
            if out.len() >= max {
                return out;
            }
            if let Some(r) = self.ranges.containing(o)
                && !out.contains(&r)
            {
                out.push(r);
            }
        }
        for r in self.ranges.iter() {
            if out.len() >= max {
                break;
            }
            if !out.contains(&r) {
                out.push(r);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect_insert(set: &mut RangeSet, s: u64, e: u64) -> Vec<Range> {
        let mut v = Vec::new();
        assert!(set.insert(s, e, |a, b| v.push((a, b))));
        v
    }

    #[test]
    fn insert_reports_only_new_bytes_and_merges() {
        let mut set = RangeSet::new();
        assert_eq!(collect_insert(&mut set, 10, 20), vec![(10, 20)]);
        assert_eq!(collect_insert(&mut set, 30, 40), vec![(30, 40)]);
        assert_eq!(collect_insert(&mut set, 15, 35), vec![(20, 30)]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(10, 40)]);
        assert_eq!(collect_insert(&mut set, 10, 40), vec![]);
        assert_eq!(collect_insert(&mut set, 40, 45), vec![(40, 45)]);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(10, 45)]);
        assert!(set.covers(12, 45));
        assert!(!set.covers(9, 12));
    }

    #[test]
    fn a_full_set_refuses_a_new_range_but_merges_into_existing() {
        let mut set = RangeSet::new();
        for k in 0..MIN_RANGES as u64 {
            assert!(set.insert(k * 10, k * 10 + 5, |_, _| {}));
        }
        assert!(!set.can_insert(1_000_000, 1_000_001));
        assert!(!set.insert(1_000_000, 1_000_001, |_, _| {}));
        assert!(set.insert(5, 7, |_, _| {}));
        assert_eq!(set.first(), Some((0, 7)));
    }

    #[test]
    fn the_limit_follows_the_buffer_size() {
        assert_eq!(range_limit(0), MIN_RANGES);
        assert_eq!(range_limit(256 * 1024), 256);
        assert_eq!(range_limit(8 << 20), 8192);
        let mut set = RangeSet::with_limit(range_limit(8 << 20));
        for k in 0..8192u64 {
            assert!(set.insert(k * 3_000, k * 3_000 + 1_448, |_, _| {}));
        }
        assert_eq!(set.len(), 8192);
        assert!(!set.insert(u64::MAX - 10, u64::MAX - 5, |_, _| {}));
        // Filling every hole merges everything into one range.
        for k in 0..8191u64 {
            let mut fresh = Vec::new();
            assert!(set.insert(k * 3_000 + 1_448, (k + 1) * 3_000, |a, b| {
                fresh.push((a, b))
            }));
            assert_eq!(fresh, vec![(k * 3_000 + 1_448, (k + 1) * 3_000)]);
        }
        assert_eq!(
            set.iter().collect::<Vec<_>>(),
            vec![(0, 8191 * 3_000 + 1_448)]
        );
    }

    #[test]
    fn remove_below_trims_the_first_range() {
        let mut set = RangeSet::new();
        set.insert(10, 20, |_, _| {});
        set.insert(30, 40, |_, _| {});
        set.remove_below(15);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(15, 20), (30, 40)]);
        set.remove_below(30);
        assert_eq!(set.iter().collect::<Vec<_>>(), vec![(30, 40)]);
    }

    #[test]
    fn receiver_reports_most_recent_block_first_and_dsack_before_all() {
        let mut rx = ReceiverSack::default();
        rx.insert(100, 200);
        rx.insert(300, 400);
        rx.insert(500, 600);
        assert_eq!(
            rx.blocks(4).to_vec(),
            vec![(500, 600), (300, 400), (100, 200)]
        );
        rx.insert(200, 250); // extends the first range
        assert_eq!(
            rx.blocks(3).to_vec(),
            vec![(100, 250), (500, 600), (300, 400)]
        );
        rx.note_duplicate(10, 20);
        assert_eq!(rx.blocks(2).to_vec(), vec![(10, 20), (100, 250)]);
        assert_eq!(rx.blocks(1).to_vec(), vec![(100, 250)]);
        assert_eq!(rx.advance(100), 250);
        assert_eq!(rx.blocks(4).to_vec(), vec![(500, 600), (300, 400)]);
    }
}
