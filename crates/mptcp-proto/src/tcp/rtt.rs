//! Round-trip time estimation and the retransmission timeout (RFC 6298).
//!
//! Samples come from segments that were never retransmitted (Karn's rule) or from the
//! timestamps echo (RFC 7323 §4), which is unambiguous even for retransmissions. The
//! estimator owns no timers; it only says how long the RTO is, backoff included.

use crate::time::Duration;

/// Clock granularity G of RFC 6298 §2 (1 ms, matching our timestamp clock).
const GRANULARITY: Duration = Duration::from_millis(1);

/// Largest backoff exponent kept; the RTO is capped by `rto_max` well before.
const MAX_BACKOFF_SHIFT: u32 = 16;

/// RFC 6298 smoothed RTT, RTT variance and RTO with exponential backoff.
#[derive(Clone, Debug)]
pub struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    min_rtt: Option<Duration>,
    latest: Option<Duration>,
    initial_rto: Duration,
    rto_min: Duration,
    rto_max: Duration,
    /// Consecutive expirations; the RTO is multiplied by 2^backoff (RFC 6298 §5.5).
    backoff: u32,
}

impl RttEstimator {
    pub fn new(initial_rto: Duration, rto_min: Duration, rto_max: Duration) -> Self {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            min_rtt: None,
            latest: None,
            initial_rto,
            rto_min,
            rto_max,
            backoff: 0,
        }
    }

    /// Feeds one RTT measurement (RFC 6298 §2.2 and §2.3, alpha = 1/8, beta = 1/4).
    pub fn on_sample(&mut self, rtt: Duration) {
        self.latest = Some(rtt);
        self.min_rtt = Some(self.min_rtt.map_or(rtt, |m| m.min(rtt)));
        match self.srtt {
            None => {
                self.srtt = Some(rtt);
                self.rttvar = Duration::from_micros(rtt.total_micros() / 2);
            }
            Some(srtt) => {
                let err = srtt.total_micros().abs_diff(rtt.total_micros());
                let rttvar = (3 * self.rttvar.total_micros() + err) / 4;
                let srtt = (7 * srtt.total_micros() + rtt.total_micros()) / 8;
                self.rttvar = Duration::from_micros(rttvar);
                self.srtt = Some(Duration::from_micros(srtt));
            }
        }
    }

    /// RTO without backoff: `SRTT + max(G, 4*RTTVAR, rto_min)`, at most `rto_max`.
    ///
    /// RFC 6298 §2.4 puts the minimum on the sum; like Linux (`tcp_rtt_estimator` keeps
    /// RTTVAR at least `rto_min`), the minimum bounds the variance term instead. On a
    /// long path with a steady full queue RTTVAR is tiny and the RFC's RTO comes to
    /// barely more than SRTT, so a fast retransmission that has to cross that queue
    /// was timed out just before its ACK arrived: a 200 ms path lost half its
    /// throughput for seconds to such spurious RTOs.
    pub fn base_rto(&self) -> Duration {
        let rto = match self.srtt {
            None => self.initial_rto,
            Some(srtt) => {
                srtt + GRANULARITY
                    .max(self.rttvar.saturating_mul(4))
                    .max(self.rto_min)
            }
        };
        rto.max(self.rto_min).min(self.rto_max)
    }

    /// The current RTO, backoff included, capped at `rto_max`.
    pub fn rto(&self) -> Duration {
        self.base_rto()
            .saturating_mul(1u64 << self.backoff)
            .min(self.rto_max)
    }

    /// The timer expired: double the RTO (RFC 6298 §5.5).
    pub fn back_off(&mut self) {
        self.backoff = (self.backoff + 1).min(MAX_BACKOFF_SHIFT);
    }

    /// New data was acknowledged: the path works again, drop the backoff.
    pub fn reset_backoff(&mut self) {
        self.backoff = 0;
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    pub fn rttvar(&self) -> Duration {
        self.rttvar
    }

    pub fn min_rtt(&self) -> Option<Duration> {
        self.min_rtt
    }

    pub fn latest(&self) -> Option<Duration> {
        self.latest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn est() -> RttEstimator {
        RttEstimator::new(
            Duration::from_secs(1),
            Duration::from_millis(200),
            Duration::from_secs(60),
        )
    }

    #[test]
    fn first_sample_sets_srtt_and_half_variance() {
        let mut e = est();
        assert_eq!(e.rto(), Duration::from_secs(1));
        e.on_sample(Duration::from_millis(100));
        assert_eq!(e.srtt(), Some(Duration::from_millis(100)));
        assert_eq!(e.rttvar(), Duration::from_millis(50));
        // 100 + 4*50 = 300 ms.
        assert_eq!(e.rto(), Duration::from_millis(300));
    }

    #[test]
    fn later_samples_are_smoothed_with_one_eighth_and_one_quarter() {
        let mut e = est();
        e.on_sample(Duration::from_millis(100));
        e.on_sample(Duration::from_millis(200));
        // rttvar = 3/4*50 + 1/4*100 = 62.5; srtt = 7/8*100 + 1/8*200 = 112.5
        assert_eq!(e.rttvar(), Duration::from_micros(62_500));
        assert_eq!(e.srtt(), Some(Duration::from_micros(112_500)));
        assert_eq!(e.min_rtt(), Some(Duration::from_millis(100)));
    }

    #[test]
    fn rto_respects_the_minimum_and_backs_off_to_the_maximum() {
        let mut e = est();
        e.on_sample(Duration::from_millis(10));
        // 10 + max(4 * 5, 200) = 210 ms.
        assert_eq!(e.rto(), Duration::from_millis(210));
        e.back_off();
        assert_eq!(e.rto(), Duration::from_millis(420));
        for _ in 0..20 {
            e.back_off();
        }
        assert_eq!(e.rto(), Duration::from_secs(60));
        e.reset_backoff();
        assert_eq!(e.rto(), Duration::from_millis(210));
    }

    #[test]
    fn a_steady_long_rtt_keeps_the_minimum_as_margin() {
        // 400 ms every time: RTTVAR decays towards 0 and RFC 6298's RTO towards 400 ms,
        // no room for a retransmission queued behind a full buffer. The minimum keeps
        // 200 ms of margin.
        let mut e = est();
        for _ in 0..100 {
            e.on_sample(Duration::from_millis(400));
        }
        assert!(e.rttvar() < Duration::from_millis(1));
        assert_eq!(e.rto(), Duration::from_millis(600));
    }
}
