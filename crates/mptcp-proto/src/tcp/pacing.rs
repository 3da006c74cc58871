//! Pacing: spreading a window's segments over the round trip instead of sending them
//! back to back, so a burst (an initial window, a window opened by a stretch ACK, a
//! chunk the MPTCP scheduler just mapped) does not fill the bottleneck's queue.
//!
//! The rate follows Linux's `tcp_update_pacing_rate`: `cwnd / srtt` times a gain, 2 in
//! slow start (while `cwnd < ssthresh / 2`, so the window can still double each round)
//! and 1.2 afterwards (room to probe without queueing much). A token bucket of
//! [`Pacing::burst_segments`] segments lets that many leave back to back (Linux's fq
//! quantum is two packets). Before the first RTT sample there is no rate and nothing
//! is paced.
//!
//! It owns only its bucket: the engine asks [`Pacer::release_at`] before a data
//! segment, reports what it sent with [`Pacer::on_sent`], and offers the release time
//! through `poll_timeout`. The caller supplies time.

use crate::time::{Duration, Instant};

/// Pacing settings (`TcpConfig::pacing`; off by default).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Pacing {
    /// Rate gain in slow start, percent of `cwnd / srtt` (Linux
    /// `tcp_pacing_ss_ratio`: 200).
    pub slow_start_gain_percent: u32,
    /// Rate gain in congestion avoidance, percent (Linux `tcp_pacing_ca_ratio`: 120).
    pub congestion_avoidance_gain_percent: u32,
    /// Segments (of the sender MSS, or one super-segment if larger) that may leave
    /// back to back: the bucket depth.
    pub burst_segments: u32,
}

impl Default for Pacing {
    fn default() -> Self {
        Pacing {
            slow_start_gain_percent: 200,
            congestion_avoidance_gain_percent: 120,
            burst_segments: 2,
        }
    }
}

/// Bucket arithmetic is in byte-microseconds per second ("micro-bytes"): a rate in
/// bytes per second times elapsed microseconds, so refills are exact integers.
const MICRO: u128 = 1_000_000;

/// One connection's token bucket. See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct Pacer {
    config: Pacing,
    /// Credit in micro-bytes; `None` until the first segment (the bucket starts full).
    tokens: Option<u128>,
    /// When `tokens` was last brought up to date.
    updated: Instant,
}

impl Pacer {
    pub(crate) fn new(config: Pacing) -> Self {
        Pacer {
            config,
            tokens: None,
            updated: Instant::ZERO,
        }
    }

    pub(crate) fn config(&self) -> Pacing {
        self.config
    }

    /// Pacing rate in bytes per second, or `None` (unpaced) without an RTT sample or
    /// a window.
    pub(crate) fn rate(&self, cwnd: u64, ssthresh: u64, srtt: Option<Duration>) -> Option<u64> {
        let srtt = srtt?.total_micros().max(1);
        if cwnd == 0 {
            return None;
        }
        let gain = if cwnd < ssthresh / 2 {
            self.config.slow_start_gain_percent
        } else {
            self.config.congestion_avoidance_gain_percent
        };
        let rate = u128::from(cwnd) * u128::from(gain.max(1)) * MICRO / 100 / u128::from(srtt);
        Some(u64::try_from(rate.max(1)).unwrap_or(u64::MAX))
    }

    fn capacity(&self, segment: u64) -> u128 {
        u128::from(segment) * u128::from(self.config.burst_segments.max(1)) * MICRO
    }

    /// Refills the bucket up to `now` at `rate`, never beyond its depth for segments
    /// of `segment` bytes.
    fn refill(&mut self, now: Instant, rate: u64, segment: u64) -> u128 {
        let capacity = self.capacity(segment);
        let elapsed = u128::from(now.saturating_since(self.updated).total_micros());
        let tokens = match self.tokens {
            None => capacity,
            Some(t) => t.saturating_add(elapsed * u128::from(rate)).min(capacity),
        };
        self.tokens = Some(tokens);
        self.updated = self.updated.max(now);
        tokens
    }

    /// When a segment of `len` bytes may leave: `None` for now, else the instant the
    /// bucket holds enough. `segment` is the largest segment the engine builds (the
    /// bucket is at least that deep, so a full-sized one always fits eventually).
    pub(crate) fn release_at(
        &mut self,
        now: Instant,
        len: u64,
        segment: u64,
        rate: Option<u64>,
    ) -> Option<Instant> {
        let rate = rate?;
        let need = u128::from(len.min(segment)) * MICRO;
        let tokens = self.refill(now, rate, segment);
        if tokens >= need {
            return None;
        }
        let wait = (need - tokens).div_ceil(u128::from(rate));
        Some(now + Duration::from_micros(u64::try_from(wait).unwrap_or(u64::MAX)))
    }

    /// A data segment of `len` bytes left at `now`.
    pub(crate) fn on_sent(&mut self, now: Instant, len: u64, segment: u64, rate: Option<u64>) {
        let Some(rate) = rate else {
            return;
        };
        let tokens = self.refill(now, rate, segment);
        self.tokens = Some(tokens.saturating_sub(u128::from(len) * MICRO));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MSS: u64 = 1_000;

    #[test]
    fn rate_is_the_window_per_rtt_times_the_phase_gain() {
        let p = Pacer::new(Pacing::default());
        let rtt = Some(Duration::from_millis(100));
        // Slow start: 100_000 bytes per 0.1 s = 1 MB/s, times 2.
        assert_eq!(p.rate(100_000, u64::MAX, rtt), Some(2_000_000));
        // cwnd >= ssthresh / 2: congestion avoidance gain, 1.2.
        assert_eq!(p.rate(100_000, 200_000, rtt), Some(1_200_000));
        assert_eq!(p.rate(100_000, 100_000, rtt), Some(1_200_000));
        assert_eq!(p.rate(100_000, u64::MAX, None), None);
    }

    #[test]
    fn a_full_bucket_lets_a_burst_go_then_spaces_segments_at_the_rate() {
        let mut p = Pacer::new(Pacing::default());
        let rate = Some(1_000_000); // 1 MB/s: one 1000-byte segment per ms
        let t0 = Instant::from_millis(10);
        // Two segments of burst.
        for _ in 0..2 {
            assert_eq!(p.release_at(t0, MSS, MSS, rate), None);
            p.on_sent(t0, MSS, MSS, rate);
        }
        // The third waits one segment time.
        let at = p.release_at(t0, MSS, MSS, rate).expect("paced");
        assert_eq!(at, t0 + Duration::from_millis(1));
        // Half way there, half a segment's worth of wait is left.
        let half = t0 + Duration::from_micros(500);
        assert_eq!(p.release_at(half, MSS, MSS, rate), Some(at));
        assert_eq!(p.release_at(at, MSS, MSS, rate), None);
        p.on_sent(at, MSS, MSS, rate);
        // After a long idle period the bucket holds its depth, not more.
        let later = at + Duration::from_secs(10);
        for _ in 0..2 {
            assert_eq!(p.release_at(later, MSS, MSS, rate), None);
            p.on_sent(later, MSS, MSS, rate);
        }
        assert!(p.release_at(later, MSS, MSS, rate).is_some());
    }

    #[test]
    fn without_a_rate_nothing_waits() {
        let mut p = Pacer::new(Pacing::default());
        for _ in 0..100 {
            assert_eq!(p.release_at(Instant::ZERO, MSS, MSS, None), None);
            p.on_sent(Instant::ZERO, MSS, MSS, None);
        }
    }

    #[test]
    fn a_super_segment_larger_than_the_burst_still_fits() {
        // One 64 KiB super-segment (TSO) with a burst of two 1448-byte MSS: the bucket
        // is as deep as the largest segment times the burst, so it goes.
        let mut p = Pacer::new(Pacing::default());
        let rate = Some(10_000_000);
        assert_eq!(p.release_at(Instant::ZERO, 65_536, 65_536, rate), None);
        p.on_sent(Instant::ZERO, 65_536, 65_536, rate);
        assert_eq!(p.release_at(Instant::ZERO, 65_536, 65_536, rate), None);
        p.on_sent(Instant::ZERO, 65_536, 65_536, rate);
        // Then 6.5536 ms per super-segment at 10 MB/s.
        assert_eq!(
            p.release_at(Instant::ZERO, 65_536, 65_536, rate),
            Some(Instant::from_micros(6_554))
        );
    }
}
