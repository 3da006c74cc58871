//! The sender's record of segments in flight: the SACK scoreboard and the pipe.
//!
//! Segments are kept in sequence order in a `VecDeque` bounded by the send window.
//! Cumulative ACKs pop from the front (amortised O(1) per segment), SACK blocks find
//! their segments by binary search and touch only bytes not SACKed before, and a
//! transmit-time-ordered list (RFC 8985 §6.1's "time-sorted" list, as in Linux) lets
//! RACK find expired segments from the oldest transmission without a full scan. The pipe
//! (RFC 6675 §4, "bytes in flight") is kept as a running sum instead of being recounted.
//!
//! Offsets are subflow sequence offsets: data byte `k` is offset `k`; a FIN occupies one
//! offset after the last data byte.

use std::collections::VecDeque;

use super::sack::{MIN_RANGES, Range, RangeSet};
use crate::time::Instant;

/// One transmitted segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SentSegment {
    pub start: u64,
    /// One past the last offset, FIN included.
    pub end: u64,
    pub fin: bool,
    /// Time of the latest transmission.
    pub xmit_time: Instant,
    /// Transmissions so far (1 = never retransmitted).
    pub xmits: u32,
    pub sacked: bool,
    /// Declared lost and not retransmitted since.
    pub lost: bool,
    /// Counted in the pipe.
    pub in_flight: bool,
}

impl SentSegment {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// Data bytes (the FIN excluded).
    pub fn data_len(&self) -> u64 {
        self.len() - u64::from(self.fin)
    }
}

/// A segment that was newly delivered (cumulatively ACKed or SACKed) by one ACK.
#[derive(Clone, Copy, Debug)]
pub struct Delivered {
    pub end: u64,
    pub xmit_time: Instant,
    pub xmits: u32,
}

#[derive(Clone, Debug, Default)]
pub struct SentQueue {
    segs: VecDeque<SentSegment>,
    /// `(start, xmit_time)` per transmission, oldest first; stale entries are skipped.
    tsorted: VecDeque<(u64, Instant)>,
    /// Starts of segments marked lost, in marking order; stale entries are skipped.
    lost: VecDeque<u64>,
    /// SACKed ranges above SND.UNA. Its limit follows the number of segments held
    /// (a range that marks anything covers at least one segment), so the scoreboard can
    /// describe every hole a window can have, and its memory is bounded by the window.
    sacked: RangeSet,
    /// Scratch space for the newly SACKed pieces of one block, reused across ACKs.
    fresh: Vec<Range>,
    pipe: u64,
    sacked_bytes: u64,
    sacked_segments: u64,
    /// Segments examined by SACK and RACK processing (to test that per-ACK work does
    /// not grow with the data in flight).
    #[cfg(test)]
    visited: u64,
}

impl SentQueue {
    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    pub fn len(&self) -> usize {
        self.segs.len()
    }

    pub fn back(&self) -> Option<&SentSegment> {
        self.segs.back()
    }

    pub fn get(&self, idx: usize) -> Option<&SentSegment> {
        self.segs.get(idx)
    }

    /// RFC 6675 pipe: bytes believed to be in the network.
    pub fn pipe(&self) -> u64 {
        self.pipe
    }

    #[cfg(test)]
    pub fn sacked_bytes(&self) -> u64 {
        self.sacked_bytes
    }

    pub fn sacked_segments(&self) -> u64 {
        self.sacked_segments
    }

    /// Index of the segment holding `offset`.
    pub fn find(&self, offset: u64) -> Option<usize> {
        let i = self.segs.partition_point(|s| s.end <= offset);
        self.segs.get(i).filter(|s| s.start <= offset).map(|_| i)
    }

    /// Records a first transmission of `[start, end)`.
    pub fn push(&mut self, start: u64, end: u64, fin: bool, now: Instant) {
        debug_assert!(self.segs.back().is_none_or(|b| b.end == start));
        self.segs.push_back(SentSegment {
            start,
            end,
            fin,
            xmit_time: now,
            xmits: 1,
            sacked: false,
            lost: false,
            in_flight: true,
        });
        self.pipe += end - start;
        self.push_tsorted(start, now);
    }

    fn push_tsorted(&mut self, start: u64, now: Instant) {
        self.tsorted.push_back((start, now));
        if self.tsorted.len() > 2 * self.segs.len() + 16 {
            // Compact: keep only entries that still describe a live transmission. Runs
            // once per O(n) pushes, so the amortised cost per push is O(log n).
            let segs = &self.segs;
            self.tsorted.retain(|&(start, t)| {
                let i = segs.partition_point(|s| s.end <= start);
                segs.get(i)
                    .is_some_and(|s| s.start <= start && s.xmit_time == t && !s.sacked && !s.lost)
            });
        }
    }

    /// Records a retransmission of segment `idx`.
    pub fn retransmitted(&mut self, idx: usize, now: Instant) {
        let Some(seg) = self.segs.get_mut(idx) else {
            return;
        };
        seg.xmits = seg.xmits.saturating_add(1);
        seg.xmit_time = now;
        seg.lost = false;
        if !seg.in_flight && !seg.sacked {
            seg.in_flight = true;
            self.pipe += seg.len();
        }
        let start = seg.start;
        self.push_tsorted(start, now);
    }

    /// Splits segment `idx` so that its first part ends at `at` (when the owner can give
    /// fewer bytes than the segment held, e.g. across a buffer wrap, and where a SACK
    /// block ends inside a super-segment). O(n), and rare: a few per loss.
    pub fn split(&mut self, idx: usize, at: u64) {
        let Some(seg) = self.segs.get_mut(idx) else {
            return;
        };
        if at <= seg.start || at >= seg.end {
            return;
        }
        let mut tail = *seg;
        seg.end = at;
        seg.fin = false;
        tail.start = at;
        let tail_lost = tail.lost;
        self.segs.insert(idx + 1, tail);
        if tail_lost {
            self.lost.push_front(at);
        }
        // Both parts were sent at the same time: keep the list in time order so RACK
        // reaches the tail with its head.
        let t = tail.xmit_time;
        let pos = self.tsorted.partition_point(|&(_, x)| x <= t);
        self.tsorted.insert(pos, (at, t));
    }

    /// Marks segment `idx` lost (RFC 6675 IsLost / RFC 8985): it leaves the pipe and
    /// joins the retransmission queue.
    pub fn mark_lost(&mut self, idx: usize) -> bool {
        let Some(seg) = self.segs.get_mut(idx) else {
            return false;
        };
        if seg.sacked || seg.lost {
            return false;
        }
        seg.lost = true;
        if seg.in_flight {
            seg.in_flight = false;
            self.pipe -= seg.len();
        }
        self.lost.push_back(seg.start);
        true
    }

    /// RTO: every unSACKed segment is lost; retransmission starts from SND.UNA.
    pub fn mark_all_lost(&mut self) -> u64 {
        self.lost.clear();
        self.tsorted.clear();
        let mut marked = 0;
        for seg in self.segs.iter_mut() {
            if seg.sacked {
                continue;
            }
            if seg.in_flight {
                seg.in_flight = false;
                self.pipe -= seg.len();
            }
            seg.lost = true;
            self.lost.push_back(seg.start);
            marked += 1;
        }
        marked
    }

    /// The lowest-priority-first lost segment awaiting retransmission, without removing it.
    pub fn next_lost(&mut self) -> Option<usize> {
        while let Some(&start) = self.lost.front() {
            if let Some(i) = self.find(start)
                && self.segs[i].lost
                && self.segs[i].start == start
            {
                return Some(i);
            }
            self.lost.pop_front();
        }
        None
    }

    /// Whether any segment awaits retransmission.
    pub fn has_lost(&mut self) -> bool {
        self.next_lost().is_some()
    }

    /// Cumulative ACK up to `offset`: pops delivered segments, calling `delivered` for
    /// each one not SACKed before. Returns bytes newly acknowledged that were not SACKed.
    pub fn ack_until(&mut self, offset: u64, mut delivered: impl FnMut(Delivered)) -> u64 {
        let mut newly = 0;
        while let Some(front) = self.segs.front() {
            if front.end > offset {
                break;
            }
            let seg = *front;
            self.segs.pop_front();
            if seg.in_flight {
                self.pipe -= seg.len();
            }
            if seg.sacked {
                self.sacked_bytes -= seg.len();
                self.sacked_segments -= 1;
            } else {
                newly += seg.len();
                delivered(Delivered {
                    end: seg.end,
                    xmit_time: seg.xmit_time,
                    xmits: seg.xmits,
                });
            }
        }
        // A partially acknowledged front segment (the peer took part of it).
        if let Some(front) = self.segs.front_mut()
            && front.start < offset
        {
            let cut = offset - front.start;
            front.start = offset;
            if front.in_flight {
                self.pipe -= cut;
            }
            if front.sacked {
                self.sacked_bytes -= cut;
            } else {
                newly += cut;
            }
            // Lost-queue and time-sorted entries name the old start; re-key them.
            let t = front.xmit_time;
            let lost = front.lost;
            let sacked = front.sacked;
            if lost {
                self.lost.push_front(offset);
            }
            if !sacked && !lost {
                self.tsorted.push_front((offset, t));
            }
        }
        self.sacked.remove_below(offset);
        newly
    }

    /// Applies one SACK block `[start, end)`; segments it covers completely for the first
    /// time are marked SACKed and reported to `delivered`. Returns newly SACKed bytes.
    pub fn sack(&mut self, start: u64, end: u64, mut delivered: impl FnMut(Delivered)) -> u64 {
        let (Some(front), Some(back)) = (self.segs.front(), self.segs.back()) else {
            return 0;
        };
        let start = start.max(front.start);
        let end = end.min(back.end);
        if start >= end {
            return 0;
        }
        self.sacked.set_limit(self.segs.len().max(MIN_RANGES));
        let mut fresh = core::mem::take(&mut self.fresh);
        fresh.clear();
        if !self.sacked.insert(start, end, |a, b| fresh.push((a, b))) {
            self.fresh = fresh;
            return 0;
        }
        let mut newly = 0;
        for &(a, b) in &fresh {
            let mut i = self.segs.partition_point(|s| s.end <= a);
            // A block that covers a segment in part cuts it there: the receiver took
            // the pieces of a TSO super-segment one by one, and one lost piece must not
            // hold the others in the pipe or send them again (Linux splits its skbs on
            // SACK the same way).
            if self
                .segs
                .get(i)
                .is_some_and(|s| !s.sacked && s.start < a && a < s.end)
            {
                self.split(i, a);
                i += 1;
            }
            while let Some(&seg) = self.segs.get(i) {
                if seg.start >= b {
                    break;
                }
                if !seg.sacked && b < seg.end {
                    self.split(i, b);
                }
                let seg = self.segs[i];
                #[cfg(test)]
                {
                    self.visited += 1;
                }
                i += 1;
                if seg.sacked || !self.sacked.covers(seg.start, seg.end) {
                    continue;
                }
                let seg = &mut self.segs[i - 1];
                seg.sacked = true;
                seg.lost = false;
                if seg.in_flight {
                    seg.in_flight = false;
                    self.pipe -= seg.len();
                }
                self.sacked_bytes += seg.len();
                self.sacked_segments += 1;
                newly += seg.len();
                delivered(Delivered {
                    end: seg.end,
                    xmit_time: seg.xmit_time,
                    xmits: seg.xmits,
                });
            }
        }
        self.fresh = fresh;
        newly
    }

    /// RFC 8985 §6.2 step 5 (RACK_detect_loss): walks transmissions oldest first and
    /// marks lost each one sent before the most recently delivered segment
    /// (`rack_xmit`, `rack_end`) whose deadline `xmit_time + window` has passed. Returns
    /// the number marked and the earliest future deadline (for the reordering timer).
    pub fn rack_detect(
        &mut self,
        now: Instant,
        rack_xmit: Instant,
        rack_end: u64,
        window: crate::time::Duration,
    ) -> (u64, Option<Instant>) {
        let mut marked = 0;
        while let Some(&(start, t)) = self.tsorted.front() {
            #[cfg(test)]
            {
                self.visited += 1;
            }
            let Some(i) = self.find(start) else {
                self.tsorted.pop_front();
                continue;
            };
            let seg = self.segs[i];
            if seg.sacked || seg.lost || seg.xmit_time != t {
                self.tsorted.pop_front();
                continue;
            }
            let sent_before =
                seg.xmit_time < rack_xmit || (seg.xmit_time == rack_xmit && seg.end < rack_end);
            if !sent_before {
                return (marked, None);
            }
            let deadline = seg.xmit_time + window;
            if now >= deadline {
                self.tsorted.pop_front();
                if self.mark_lost(i) {
                    marked += 1;
                }
            } else {
                return (marked, Some(deadline));
            }
        }
        (marked, None)
    }

    /// Number of bookkeeping entries held (for tests of boundedness).
    pub fn bookkeeping_len(&self) -> usize {
        self.segs.len() + self.tsorted.len() + self.lost.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Duration;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn queue_of(n: u64) -> SentQueue {
        let mut q = SentQueue::default();
        for k in 0..n {
            q.push(k * 100, k * 100 + 100, false, t(k));
        }
        q
    }

    #[test]
    fn a_block_inside_a_super_segment_cuts_it_so_only_the_hole_stays_in_flight() {
        let mut q = SentQueue::default();
        // Two TSO super-segments of four 1000-byte pieces each.
        q.push(0, 4000, false, t(1));
        q.push(4000, 8000, false, t(2));
        // Piece [1000, 2000) was lost; the receiver SACKs the rest as it arrives.
        let mut delivered = Vec::new();
        assert_eq!(q.sack(2000, 3000, |d| delivered.push(d.end)), 1000);
        assert_eq!(q.sack(2000, 6000, |d| delivered.push(d.end)), 3000);
        assert_eq!(delivered, [3000, 4000, 6000]);
        assert_eq!((q.pipe(), q.sacked_bytes()), (4000, 4000));
        // RACK: everything sent before the delivered piece and not SACKed is lost,
        // which is [0, 2000) only; [6000, 8000) was sent later.
        let (marked, _) = q.rack_detect(t(10), t(2), 6000, Duration::from_millis(1));
        assert_eq!(marked, 1);
        let lost = q.next_lost().expect("a hole");
        let seg = *q.get(lost).expect("segment");
        assert_eq!((seg.start, seg.end), (0, 2000));
        assert_eq!(q.pipe(), 2000);
        // The cumulative ACK after the repair pops every piece.
        q.retransmitted(lost, t(11));
        assert_eq!(q.ack_until(8000, |_| {}), 4000);
        assert!(q.is_empty());
        assert_eq!(q.pipe(), 0);
    }

    #[test]
    fn pipe_follows_sack_loss_retransmit_and_ack() {
        let mut q = queue_of(5);
        assert_eq!(q.pipe(), 500);
        assert_eq!(q.sack(200, 400, |_| {}), 200);
        assert_eq!(
            (q.pipe(), q.sacked_bytes(), q.sacked_segments()),
            (300, 200, 2)
        );
        // Repeating the block changes nothing.
        assert_eq!(q.sack(200, 400, |_| {}), 0);
        assert!(q.mark_lost(0));
        assert_eq!(q.pipe(), 200);
        assert_eq!(q.next_lost(), Some(0));
        q.retransmitted(0, t(10));
        assert_eq!(q.pipe(), 300);
        assert_eq!(q.next_lost(), None);
        let mut delivered = Vec::new();
        assert_eq!(q.ack_until(400, |d| delivered.push(d.end)), 200);
        assert_eq!(delivered, vec![100, 200]);
        assert_eq!((q.pipe(), q.sacked_bytes(), q.len()), (100, 0, 1));
    }

    #[test]
    fn a_block_covering_a_segment_in_two_acks_marks_each_part_once() {
        let mut q = queue_of(3);
        assert_eq!(q.sack(100, 150, |_| {}), 50);
        let mut n = 0;
        assert_eq!(q.sack(150, 200, |_| n += 1), 50);
        assert_eq!(n, 1);
        assert_eq!(q.sack(100, 200, |_| n += 1), 0);
        assert_eq!((q.pipe(), q.sacked_bytes()), (200, 100));
    }

    #[test]
    fn rack_marks_only_expired_segments_sent_before_the_delivered_one() {
        let mut q = queue_of(4); // sent at 0, 1, 2, 3 ms
        q.sack(200, 300, |_| {}); // segment sent at 2 ms delivered
        let (marked, deadline) = q.rack_detect(t(5), t(2), 300, Duration::from_millis(4));
        // Deadlines 4 and 5 ms: both passed.
        assert_eq!(marked, 2);
        assert_eq!(deadline, None);
        let mut q = queue_of(4);
        q.sack(200, 300, |_| {});
        let (marked, deadline) = q.rack_detect(t(4), t(2), 300, Duration::from_millis(4));
        assert_eq!((marked, deadline), (1, Some(t(5))));
    }

    #[test]
    fn partial_ack_trims_the_front_segment() {
        let mut q = queue_of(2);
        assert_eq!(q.ack_until(50, |_| {}), 50);
        assert_eq!(q.get(0).map(|s| (s.start, s.end)), Some((50, 100)));
        assert_eq!(q.pipe(), 150);
        assert!(q.mark_lost(0));
        assert_eq!(q.next_lost(), Some(0));
    }

    #[test]
    fn per_ack_work_does_not_grow_with_the_data_in_flight() {
        // 2,000 segments in flight, the first lost; each ACK repeats a SACK block that
        // covers everything received so far, as a real receiver does.
        let n = 2_000u64;
        let mut q = queue_of(n);
        for k in 1..n {
            q.sack(100, (k + 1) * 100, |_| {});
            let _ = q.rack_detect(t(3_000), t(k), (k + 1) * 100, Duration::from_secs(10));
        }
        assert_eq!(q.sacked_segments(), n - 1);
        // Each segment is marked once and each ACK looks at O(1) more: linear in n,
        // where rescanning the block would be n^2 / 2 = 2,000,000.
        assert!(q.visited <= 3 * n, "visited {}", q.visited);
    }

    #[test]
    fn the_scoreboard_tracks_a_hole_after_every_other_segment_of_a_large_window() {
        // A slow-start overshoot into a drop-tail queue loses every other segment: 1,500
        // holes in a window of 3,000 segments, far more than RFC 2018's four blocks or
        // a fixed 64-range table could describe.
        let n = 3_000u64;
        let mut q = queue_of(n);
        for k in (1..n).step_by(2) {
            assert_eq!(q.sack(k * 100, k * 100 + 100, |_| {}), 100);
        }
        assert_eq!(q.sacked_segments(), n / 2);
        assert_eq!(q.pipe(), n / 2 * 100);
        // RACK then finds every hole below the last delivered segment.
        let (marked, _) = q.rack_detect(t(10_000), t(n - 1), n * 100, Duration::ZERO);
        assert_eq!(marked, n / 2);
    }

    #[test]
    fn rto_marks_everything_not_sacked() {
        let mut q = queue_of(4);
        q.sack(100, 200, |_| {});
        assert_eq!(q.mark_all_lost(), 3);
        assert_eq!(q.pipe(), 0);
        assert_eq!(q.next_lost(), Some(0));
    }
}
