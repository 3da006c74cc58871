//! SACK bookkeeping (RFC 2018, D-SACK RFC 2883) in unwrapped stream offsets.
//!
//! [`RangeSet`] is a bounded, sorted set of disjoint byte ranges: the receiver uses one
//! for the out-of-order data it holds above RCV.NXT (the source of its SACK blocks), the
//! sender one for the SACKed ranges above SND.UNA (its scoreboard). Inserting reports
//! only the bytes not already covered, so the sender marks each segment SACKed once,
//! whatever the peer repeats in later ACKs: per-ACK work does not grow with the amount of
//! data in flight.

use arrayvec::ArrayVec;

/// Most disjoint ranges a set holds. New data that would open one more range is refused
/// (the receiver drops the segment, the sender ignores the SACK block); both are safe.
pub const MAX_RANGES: usize = 64;

/// Half-open byte range `[start, end)` of stream offsets.
pub type Range = (u64, u64);

/// A bounded set of disjoint, non-touching ranges in ascending order.
#[derive(Clone, Debug, Default)]
pub struct RangeSet {
    ranges: ArrayVec<Range, MAX_RANGES>,
}

impl RangeSet {
    pub fn new() -> Self {
        RangeSet::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn len(&self) -> usize {
        self.ranges.len()
    }

    pub fn iter(&self) -> impl Iterator<Item = Range> + '_ {
        self.ranges.iter().copied()
    }

    /// The highest offset covered, if any.
    pub fn max_end(&self) -> Option<u64> {
        self.ranges.last().map(|r| r.1)
    }

    /// The lowest range.
    pub fn first(&self) -> Option<Range> {
        self.ranges.first().copied()
    }

    /// The range containing `offset`.
    pub fn containing(&self, offset: u64) -> Option<Range> {
        let i = self.ranges.partition_point(|r| r.1 <= offset);
        self.ranges.get(i).copied().filter(|r| r.0 <= offset)
    }

    /// Whether every byte of `[start, end)` is in the set.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        start >= end || self.containing(start).is_some_and(|r| r.1 >= end)
    }

    /// Whether inserting `[start, end)` would fit (it merges with an existing range or a
    /// slot is free).
    pub fn can_insert(&self, start: u64, end: u64) -> bool {
        if start >= end || !self.ranges.is_full() {
            return true;
        }
        let i = self.ranges.partition_point(|r| r.1 < start);
        self.ranges.get(i).is_some_and(|r| r.0 <= end)
    }

    /// Adds `[start, end)`, calling `newly_covered` for each sub-range that was not in the
    /// set before (ascending). Returns false, changing nothing, when the range would need
    /// a slot and the set is full. Cost: O(ranges), bounded by [`MAX_RANGES`].
    pub fn insert(
        &mut self,
        start: u64,
        end: u64,
        mut newly_covered: impl FnMut(u64, u64),
    ) -> bool {
        if start >= end {
            return true;
        }
        // Ranges i..j overlap or touch [start, end).
        let i = self.ranges.partition_point(|r| r.1 < start);
        let j = self.ranges.partition_point(|r| r.0 <= end);
        if i == j && self.ranges.is_full() {
            return false;
        }
        let mut cursor = start;
        for r in &self.ranges[i..j] {
            if r.0 > cursor {
                newly_covered(cursor, r.0.min(end));
            }
            cursor = cursor.max(r.1);
        }
        if cursor < end {
            newly_covered(cursor, end);
        }
        let merged = if i < j {
            (start.min(self.ranges[i].0), end.max(self.ranges[j - 1].1))
        } else {
            (start, end)
        };
        if i < j {
            self.ranges[i] = merged;
            // Drop the ranges merged into slot i.
            self.ranges.drain(i + 1..j);
        } else {
            self.ranges.insert(i, merged);
        }
        true
    }

    /// Forgets everything below `offset` (it was cumulatively acknowledged / received).
    pub fn remove_below(&mut self, offset: u64) {
        let n = self.ranges.partition_point(|r| r.1 <= offset);
        self.ranges.drain(..n);
        if let Some(first) = self.ranges.first_mut() {
            first.0 = first.0.max(offset);
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
        for k in 0..MAX_RANGES as u64 {
            assert!(set.insert(k * 10, k * 10 + 5, |_, _| {}));
        }
        assert!(!set.can_insert(1_000_000, 1_000_001));
        assert!(!set.insert(1_000_000, 1_000_001, |_, _| {}));
        assert!(set.insert(5, 7, |_, _| {}));
        assert_eq!(set.first(), Some((0, 7)));
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
