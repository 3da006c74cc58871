//! When the receiving application got its bytes: the delivery series of one
//! connection, for stall and handover measurements.
//!
//! Every read that returned data is a point (time, bytes read so far). The longest gap
//! between consecutive reads is kept always (it costs nothing); the points themselves
//! only when asked for ([`super::StackHost::set_record_deliveries`]), since a long
//! fast transfer reads millions of times.

use mptcp_proto::{Duration, Instant};

/// The delivery series of one connection. See the module documentation.
#[derive(Clone, Debug, Default)]
pub struct DeliveryLog {
    /// (time, bytes delivered up to and including this read), in time order; empty
    /// unless recording was on.
    points: Vec<(Instant, u64)>,
    record: bool,
    first: Option<Instant>,
    last: Option<(Instant, u64)>,
    /// The longest time between two reads that returned data, and when it ended.
    longest_gap: Option<(Duration, Instant)>,
}

impl DeliveryLog {
    /// A log that keeps every point when `record` is set.
    pub fn new(record: bool) -> Self {
        DeliveryLog {
            record,
            ..DeliveryLog::default()
        }
    }

    /// The application read data at `now`; `total` bytes have been read so far.
    pub fn push(&mut self, now: Instant, total: u64) {
        if let Some((at, bytes)) = self.last {
            if now == at {
                // Several reads in one instant are one delivery.
                self.last = Some((now, total));
                if let Some(p) = self.points.last_mut() {
                    p.1 = total;
                }
                return;
            }
            debug_assert!(bytes <= total, "deliveries only grow");
            let gap = now - at;
            if self.longest_gap.is_none_or(|(g, _)| gap > g) {
                self.longest_gap = Some((gap, now));
            }
        }
        self.first.get_or_insert(now);
        self.last = Some((now, total));
        if self.record {
            self.points.push((now, total));
        }
    }

    /// Every delivery (time, bytes so far); empty unless recording was on.
    pub fn points(&self) -> &[(Instant, u64)] {
        &self.points
    }

    /// Time of the first and of the last delivery.
    pub fn span(&self) -> Option<(Instant, Instant)> {
        Some((self.first?, self.last?.0))
    }

    /// The longest time the application waited between two deliveries, from its first
    /// byte to its last, and when that wait ended.
    pub fn longest_gap(&self) -> Option<(Duration, Instant)> {
        self.longest_gap
    }

    /// The longest wait between deliveries within `[from, to]` (recorded points
    /// only): a wait that started before `from` counts from `from`, one still open at
    /// `to` counts up to `to`. Returns (gap, time it ended).
    pub fn longest_gap_within(&self, from: Instant, to: Instant) -> Option<(Duration, Instant)> {
        let mut best: Option<(Duration, Instant)> = None;
        let mut prev = from;
        for &(at, _) in self.points.iter().filter(|p| p.0 > from && p.0 <= to) {
            let gap = at - prev;
            if best.is_none_or(|(g, _)| gap > g) {
                best = Some((gap, at));
            }
            prev = at;
        }
        let tail = to.saturating_since(prev);
        if best.is_none_or(|(g, _)| tail > g) {
            best = Some((tail, to));
        }
        best
    }

    /// Bytes delivered by `at` (recorded points only).
    pub fn bytes_by(&self, at: Instant) -> u64 {
        let i = self.points.partition_point(|p| p.0 <= at);
        i.checked_sub(1).map_or(0, |i| self.points[i].1)
    }

    /// The first time at or after `from` by which `bytes` more than at `from` have been
    /// delivered (recorded points only).
    pub fn time_to_deliver(&self, from: Instant, bytes: u64) -> Option<Instant> {
        let target = self.bytes_by(from).saturating_add(bytes);
        let i = self.points.partition_point(|p| p.1 < target);
        self.points.get(i).map(|p| p.0.max(from))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Instant {
        Instant::from_millis(n)
    }

    #[test]
    fn gaps_rates_and_lookups_follow_the_points() {
        let mut log = DeliveryLog::new(true);
        for (t, total) in [(10, 100), (20, 300), (20, 400), (70, 500), (80, 900)] {
            log.push(ms(t), total);
        }
        // 20 ms counted once with its last total.
        assert_eq!(
            log.points(),
            &[(ms(10), 100), (ms(20), 400), (ms(70), 500), (ms(80), 900)]
        );
        assert_eq!(log.span(), Some((ms(10), ms(80))));
        assert_eq!(log.longest_gap(), Some((Duration::from_millis(50), ms(70))));
        // Within [15, 75]: 15 -> 20 (5), 20 -> 70 (50), 70 -> 75 open (5).
        assert_eq!(
            log.longest_gap_within(ms(15), ms(75)),
            Some((Duration::from_millis(50), ms(70)))
        );
        // A window after the last point: the open tail is the gap.
        assert_eq!(
            log.longest_gap_within(ms(80), ms(200)),
            Some((Duration::from_millis(120), ms(200)))
        );
        assert_eq!(log.bytes_by(ms(5)), 0);
        assert_eq!(log.bytes_by(ms(69)), 400);
        assert_eq!(log.time_to_deliver(ms(20), 500), Some(ms(80)));
        assert_eq!(log.time_to_deliver(ms(20), 501), None);
    }

    #[test]
    fn without_recording_only_the_longest_gap_is_kept() {
        let mut log = DeliveryLog::new(false);
        for (t, total) in [(0, 1), (30, 2), (31, 3)] {
            log.push(ms(t), total);
        }
        assert!(log.points().is_empty());
        assert_eq!(log.longest_gap(), Some((Duration::from_millis(30), ms(30))));
        assert_eq!(log.span(), Some((ms(0), ms(31))));
    }
}
