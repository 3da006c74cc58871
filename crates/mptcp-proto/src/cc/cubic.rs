//! CUBIC congestion control (RFC 9438).
//!
//! The equations of RFC 9438 count in segments and seconds; this controller keeps the
//! window in bytes (as `f64`, so per-ACK fractions accumulate) and converts at the
//! equations. Time comes only from the `now` the caller passes. As with NewReno, the
//! engine runs loss recovery; the controller only sets `cwnd` and `ssthresh`.
//!
//! HyStart++ (RFC 9406) is not implemented: slow start is plain RFC 5681 slow start with
//! RFC 3465 byte counting, which RFC 9438 §4.10 allows.

use super::{AckEvent, CongestionControl, CongestionEvent, SubflowsSnapshot, initial_window};
use crate::time::{Duration, Instant};

/// RFC 9438 §5.1: C = 0.4 (segments / s^3).
const C: f64 = 0.4;
/// RFC 9438 §4.6: the multiplicative decrease factor (applied to ssthresh as 7/10).
const BETA: f64 = 0.7;
/// RFC 9438 §4.3: the Reno-friendly additive increase, 3 (1 - beta) / (1 + beta).
const ALPHA: f64 = 3.0 * (1.0 - BETA) / (1.0 + BETA);

/// The state of one congestion avoidance stage; saved before a congestion event so a
/// spurious one can be undone (RFC 9438 §4.9).
#[derive(Clone, Copy, Debug, PartialEq)]
struct Epoch {
    /// Window before the last reduction (bytes); 0 until the first congestion event.
    w_max: f64,
    /// Seconds the cubic function takes to grow from `cwnd_epoch` back to `w_max`.
    k: f64,
    /// Start of the current congestion avoidance stage (t_epoch); `None` in slow start,
    /// in recovery, and until the first ACK after a congestion event.
    start: Option<Instant>,
    /// The Reno-friendly estimate W_est (bytes).
    w_est: f64,
    /// `cwnd` just before the last reduction (bytes): where W_est switches to
    /// alpha = 1 (RFC 9438 §4.3).
    cwnd_prior: f64,
}

#[derive(Clone, Copy, Debug)]
struct Saved {
    cwnd: f64,
    ssthresh: u64,
    epoch: Epoch,
}

/// CUBIC congestion control for one subflow.
///
/// ```
/// use mptcp_proto::cc::{CongestionControl, CongestionEvent, Cubic, SubflowSnapshot, SubflowsSnapshot};
/// use mptcp_proto::Instant;
///
/// let mut cc = Cubic::new(1_000, Some(100_000));
/// let own = SubflowSnapshot::default();
/// cc.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 100_000, &SubflowsSnapshot::single(&own));
/// assert_eq!((cc.window(), cc.ssthresh()), (70_000, 70_000)); // beta = 0.7
/// ```
#[derive(Clone, Debug)]
pub struct Cubic {
    mss: u32,
    /// Congestion window in bytes.
    cwnd: f64,
    ssthresh: u64,
    epoch: Epoch,
    /// The next congestion avoidance stage follows a timeout: it starts with K = 0 and
    /// W_max = cwnd_epoch (RFC 9438 §4.8).
    after_timeout: bool,
    /// The retransmission timer fired and no new data has been acknowledged since.
    in_timeout: bool,
    /// Time of the previous ACK, to keep application-limited time out of `t`.
    last_ack: Option<Instant>,
    configured_iw: Option<u64>,
    pristine: bool,
    undo: Option<Saved>,
}

impl Cubic {
    /// `initial_window` in bytes overrides the RFC 6928 initial window.
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        let mss = mss.max(1);
        Cubic {
            mss,
            cwnd: initial_window_bytes.unwrap_or_else(|| initial_window(mss)) as f64,
            ssthresh: u64::MAX,
            epoch: Epoch {
                w_max: 0.0,
                k: 0.0,
                start: None,
                w_est: 0.0,
                cwnd_prior: 0.0,
            },
            after_timeout: false,
            in_timeout: false,
            last_ack: None,
            configured_iw: initial_window_bytes,
            pristine: true,
            undo: None,
        }
    }

    fn mss(&self) -> f64 {
        f64::from(self.mss)
    }

    /// RFC 9438 §4.2 Figure 1: W_cubic(t) = C (t - K)^3 + W_max, in bytes, `t` seconds
    /// into the current congestion avoidance stage.
    fn w_cubic(&self, t: f64) -> f64 {
        let d = t - self.epoch.k;
        (C * d * d * d) * self.mss() + self.epoch.w_max
    }

    /// Opens a congestion avoidance stage at `now` with the current window as
    /// cwnd_epoch (RFC 9438 §4.2, §4.3, §4.8, §4.10).
    fn start_epoch(&mut self, now: Instant) {
        let cwnd_epoch = self.cwnd;
        if self.after_timeout || self.epoch.w_max <= cwnd_epoch {
            // After a timeout (§4.8), or without a W_max above the window (no loss yet,
            // §4.10, or the window already regrew past it): K = 0, W_max = cwnd_epoch,
            // so the stage starts in the convex region.
            self.epoch.k = 0.0;
            self.epoch.w_max = cwnd_epoch;
            if self.epoch.cwnd_prior == 0.0 {
                self.epoch.cwnd_prior = cwnd_epoch;
            }
        } else {
            // §4.2 Figure 2: K = cbrt((W_max - cwnd_epoch) / C), in segments.
            self.epoch.k = ((self.epoch.w_max - cwnd_epoch) / self.mss() / C).cbrt();
        }
        self.epoch.start = Some(now);
        self.epoch.w_est = cwnd_epoch;
        self.after_timeout = false;
    }

    /// Congestion avoidance for `acked` bytes (RFC 9438 §4.2 to §4.5).
    fn congestion_avoidance(&mut self, now: Instant, acked: f64, rtt: Duration) {
        let start = match self.epoch.start {
            Some(start) => start,
            None => {
                self.start_epoch(now);
                now
            }
        };
        let t = (now - start).as_secs_f64();
        let mss = self.mss();

        // §4.3 Figure 4: W_est grows like Reno with alpha_cubic per RTT, and with
        // alpha = 1 once it has passed the window from before the last reduction.
        let alpha = if self.epoch.w_est >= self.epoch.cwnd_prior {
            1.0
        } else {
            ALPHA
        };
        self.epoch.w_est += alpha * acked * mss / self.cwnd;

        if self.w_cubic(t) < self.epoch.w_est {
            // §4.3: the Reno-friendly region; never shrink on an ACK.
            self.cwnd = self.cwnd.max(self.epoch.w_est);
        } else {
            // §4.4 / §4.5: aim for W_cubic one RTT ahead, clamped to [cwnd, 1.5 cwnd],
            // closing (target - cwnd) / cwnd segments per segment acknowledged.
            let target = self
                .w_cubic(t + rtt.as_secs_f64())
                .clamp(self.cwnd, 1.5 * self.cwnd);
            self.cwnd += (target - self.cwnd) / self.cwnd * acked;
        }
    }

    /// Which region the last ACK used, for tests.
    #[cfg(test)]
    fn reno_friendly(&self, now: Instant) -> bool {
        let t = self.epoch.start.map_or(0.0, |s| (now - s).as_secs_f64());
        self.w_cubic(t) < self.epoch.w_est
    }
}

impl CongestionControl for Cubic {
    fn window(&self) -> u64 {
        self.cwnd as u64
    }

    fn ssthresh(&self) -> u64 {
        self.ssthresh
    }

    fn on_ack(&mut self, now: Instant, ack: &AckEvent, _subflows: &SubflowsSnapshot<'_>) {
        self.pristine = false;
        self.in_timeout = false;
        let previous_ack = self.last_ack.replace(now);
        if ack.app_limited {
            // RFC 9438 §5.8: t must not include time the application held the flow
            // back, or W_cubic would leap after it; slide the epoch forward over it.
            if let (Some(start), Some(prev)) = (self.epoch.start, previous_ack) {
                self.epoch.start = Some(start + (now - prev));
            }
            return;
        }
        if ack.in_recovery || ack.bytes_acked == 0 {
            return;
        }
        let mut acked = ack.bytes_acked;
        let ssthresh = self.ssthresh;
        if (self.cwnd as u64) < ssthresh {
            // §4.10: slow start as in RFC 5681 (RFC 3465 byte counting).
            let mut cwnd = self.cwnd as u64;
            acked = super::slow_start(&mut cwnd, ssthresh, acked, ack.slow_start_limit);
            self.cwnd = cwnd as f64;
            if acked == 0 {
                return;
            }
        }
        // RTT for the target: the smoothed RTT, else whatever sample exists.
        let rtt = ack
            .srtt
            .or(ack.rtt_sample)
            .or(ack.min_rtt)
            .unwrap_or(Duration::ZERO);
        self.congestion_avoidance(now, acked as f64, rtt);
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        event: CongestionEvent,
        prior_in_flight: u64,
        _subflows: &SubflowsSnapshot<'_>,
    ) {
        self.pristine = false;
        let mss = self.mss();
        if event == CongestionEvent::Timeout && self.in_timeout {
            // RFC 5681 §3.1: only the first timeout of a segment sets ssthresh.
            self.cwnd = mss;
            return;
        }
        self.undo = Some(Saved {
            cwnd: self.cwnd,
            ssthresh: self.ssthresh,
            epoch: self.epoch,
        });
        // §4.7 fast convergence: a window that stopped short of the previous W_max means
        // a new flow is taking bandwidth; release some by lowering W_max further.
        self.epoch.w_max = if self.cwnd < self.epoch.w_max {
            self.cwnd * (1.0 + BETA) / 2.0
        } else {
            self.cwnd
        };
        // §4.6 Figure 5; flight_size * beta in integers (beta = 7/10) so that whole
        // windows stay whole.
        let ssthresh = (u128::from(prior_in_flight) * 7 / 10) as f64;
        self.epoch.cwnd_prior = self.cwnd;
        self.ssthresh = ssthresh.max(2.0 * mss) as u64;
        self.cwnd = match event {
            CongestionEvent::Loss => ssthresh.max(2.0 * mss),
            CongestionEvent::Ecn => ssthresh.max(mss),
            CongestionEvent::Timeout => {
                // §4.8: reduce like Reno (RFC 5681 loss window); the next stage starts
                // with K = 0 and W_max = cwnd_epoch.
                self.after_timeout = true;
                self.in_timeout = true;
                mss
            }
        };
        // The next congestion avoidance stage begins with the first ACK after recovery.
        self.epoch.start = None;
        tracing::trace!(
            ?event,
            cwnd = self.cwnd,
            ssthresh = self.ssthresh,
            w_max = self.epoch.w_max,
            "cubic: reduced"
        );
    }

    fn on_penalty(&mut self, _now: Instant) {
        self.pristine = false;
        let mss = self.mss();
        self.cwnd = (self.cwnd / 2.0).max(mss);
        if self.ssthresh != u64::MAX {
            self.ssthresh = (self.ssthresh / 2).max(2 * self.mss as u64);
        }
        // The cubic curve restarts from the reduced window at the next ACK.
        self.epoch.start = None;
    }

    fn on_spurious_congestion(&mut self, _now: Instant) {
        // §4.9: restore cwnd, ssthresh, W_max, K, t_epoch and W_est from before the
        // event; growth since the reduction is kept.
        if let Some(saved) = self.undo.take() {
            self.cwnd = self.cwnd.max(saved.cwnd);
            self.ssthresh = saved.ssthresh;
            self.epoch = saved.epoch;
            self.after_timeout = false;
            self.in_timeout = false;
        }
    }

    fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        if self.pristine {
            self.cwnd = self
                .configured_iw
                .unwrap_or_else(|| initial_window(self.mss)) as f64;
        }
        self.cwnd = self.cwnd.max(self.mss());
    }

    fn name(&self) -> &'static str {
        "cubic"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::SubflowSnapshot;

    const MSS: u32 = 1_000;

    fn ack(bytes: u64, srtt_ms: u64) -> AckEvent {
        AckEvent {
            bytes_acked: bytes,
            prior_in_flight: 0,
            rtt_sample: None,
            srtt: Some(Duration::from_millis(srtt_ms)),
            min_rtt: None,
            mss: MSS,
            in_recovery: false,
            app_limited: false,
            slow_start_limit: 2 * u64::from(MSS),
        }
    }

    fn on_ack(cc: &mut Cubic, now_ms: u64, a: AckEvent) {
        let own = SubflowSnapshot::default();
        cc.on_ack(
            Instant::from_millis(now_ms),
            &a,
            &SubflowsSnapshot::single(&own),
        );
    }

    fn event(cc: &mut Cubic, now_ms: u64, e: CongestionEvent, in_flight: u64) {
        let own = SubflowSnapshot::default();
        cc.on_congestion_event(
            Instant::from_millis(now_ms),
            e,
            in_flight,
            &SubflowsSnapshot::single(&own),
        );
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-6
    }

    /// A flow at 100 segments that loses once at time 0.
    fn after_loss_at_100_segments() -> Cubic {
        let mut cc = Cubic::new(MSS, Some(100_000));
        event(&mut cc, 0, CongestionEvent::Loss, 100_000);
        cc
    }

    #[test]
    fn loss_reduces_by_beta_and_sets_k_per_figure_2() {
        let mut cc = after_loss_at_100_segments();
        assert_eq!((cc.window(), cc.ssthresh()), (70_000, 70_000));
        assert_eq!(cc.epoch.w_max, 100_000.0);
        assert_eq!(cc.epoch.start, None);
        on_ack(&mut cc, 10, ack(1_000, 100));
        // K = cbrt((100 - 70) / 0.4) = cbrt(75) seconds.
        assert!(
            close(cc.epoch.k, 4.217_163_326_508_746),
            "K = {}",
            cc.epoch.k
        );
        assert_eq!(cc.epoch.start, Some(Instant::from_millis(10)));
    }

    #[test]
    fn the_curve_passes_w_max_at_k_and_rises_by_c_one_second_later() {
        let mut cc = after_loss_at_100_segments();
        on_ack(&mut cc, 0, ack(1_000, 100));
        let k = cc.epoch.k;
        assert!(close(cc.w_cubic(0.0), 70_000.0));
        assert!(close(cc.w_cubic(k), 100_000.0));
        // C * 1^3 segments above W_max: 100.4 segments.
        assert!(close(cc.w_cubic(k + 1.0), 100_400.0));
        assert!(close(cc.w_cubic(k - 1.0), 99_600.0));
    }

    #[test]
    fn window_growth_follows_the_target_per_ack() {
        // Expected values computed by hand (Python) from RFC 9438 Figures 1, 2, 4.
        let mut cc = after_loss_at_100_segments();
        on_ack(&mut cc, 0, ack(1_000, 100));
        // t = 0: W_cubic(0) = 70_000 < W_est = 70_000 + 0.5294 * 1_000 * 1_000 / 70_000,
        // so the Reno-friendly region sets cwnd = W_est.
        assert!(close(cc.cwnd, 70_007.563_025_210_08), "{}", cc.cwnd);
        // At t = 2 s: W_cubic(2 s) = 95.64 segments is above W_est, so the target is
        // W_cubic(2.1 s) = 0.4 (2.1 - K)^3 + 100 = 96.204 segments and
        // cwnd += (target - cwnd) / cwnd * 1_000.
        on_ack(&mut cc, 2_000, ack(1_000, 100));
        assert!(!cc.reno_friendly(Instant::from_millis(2_000)));
        assert!(close(cc.cwnd, 70_381.757_800_109_57), "{}", cc.cwnd);
        // At t = K the target (one RTT ahead) is just above W_max.
        let at_k = (cc.epoch.k * 1_000.0) as u64;
        on_ack(&mut cc, at_k, ack(1_000, 100));
        assert!(close(cc.cwnd, 70_802.586_167_700_1), "{}", cc.cwnd);
    }

    #[test]
    fn target_is_clamped_to_one_and_a_half_windows() {
        let mut cc = after_loss_at_100_segments();
        on_ack(&mut cc, 0, ack(1_000, 100));
        let before = cc.cwnd;
        // Far into the convex region W_cubic is huge; growth is capped at 0.5 segment
        // per segment acknowledged: (1.5 cwnd - cwnd) / cwnd * 1_000 = 500 bytes.
        on_ack(&mut cc, 100_000, ack(1_000, 100));
        assert!(close(cc.cwnd, before + 500.0), "{} vs {}", cc.cwnd, before);
    }

    #[test]
    fn reno_friendly_region_dominates_at_small_rtt_and_window() {
        let mut cc = Cubic::new(MSS, Some(10_000));
        event(&mut cc, 0, CongestionEvent::Loss, 10_000);
        assert_eq!(cc.window(), 7_000);
        // 1 ms RTT: send a window per millisecond for one second.
        let mut now = 0;
        for _ in 0..1_000 {
            now += 1;
            let segments = cc.window() / 1_000;
            for _ in 0..segments {
                on_ack(&mut cc, now, ack(1_000, 1));
            }
        }
        assert!(cc.reno_friendly(Instant::from_millis(now)));
        assert_eq!(cc.cwnd, cc.epoch.w_est);
        // The cubic curve alone would still be below W_max = 10 segments after 1 s
        // (K = cbrt(7.5) = 1.957 s); the Reno estimate is far beyond it.
        assert!(cc.w_cubic(1.0) < 10_000.0);
        assert!(cc.window() > 100_000, "{}", cc.window());
    }

    #[test]
    fn fast_convergence_lowers_w_max_when_the_window_stops_short() {
        let mut cc = after_loss_at_100_segments();
        cc.cwnd = 90_000.0;
        event(&mut cc, 5_000, CongestionEvent::Loss, 90_000);
        // W_max = 90 * (1 + 0.7) / 2 = 76.5 segments.
        assert!(close(cc.epoch.w_max, 76_500.0));
        assert_eq!((cc.window(), cc.ssthresh()), (63_000, 63_000));
        // A window that reached the old W_max keeps it.
        cc.cwnd = 80_000.0;
        event(&mut cc, 6_000, CongestionEvent::Loss, 80_000);
        assert!(close(cc.epoch.w_max, 80_000.0));
    }

    #[test]
    fn ecn_reduces_like_loss() {
        let mut cc = Cubic::new(MSS, Some(100_000));
        event(&mut cc, 0, CongestionEvent::Ecn, 100_000);
        assert_eq!((cc.window(), cc.ssthresh()), (70_000, 70_000));
        // With almost nothing in flight ECN may go down to one segment, loss to two.
        event(&mut cc, 0, CongestionEvent::Ecn, 1_000);
        assert_eq!((cc.window(), cc.ssthresh()), (1_000, 2_000));
        event(&mut cc, 0, CongestionEvent::Loss, 1_000);
        assert_eq!((cc.window(), cc.ssthresh()), (2_000, 2_000));
    }

    #[test]
    fn no_growth_in_recovery_or_when_app_limited() {
        let mut cc = after_loss_at_100_segments();
        for ms in 0..100 {
            on_ack(
                &mut cc,
                ms,
                AckEvent {
                    in_recovery: true,
                    ..ack(1_000, 100)
                },
            );
        }
        assert_eq!((cc.window(), cc.epoch.start), (70_000, None));
        on_ack(&mut cc, 100, ack(1_000, 100));
        let cwnd = cc.cwnd;
        for ms in 101..3_000 {
            on_ack(
                &mut cc,
                ms,
                AckEvent {
                    app_limited: true,
                    ..ack(1_000, 100)
                },
            );
        }
        assert_eq!(cc.cwnd, cwnd);
        // The application-limited 2.9 s do not count towards t: the epoch slid from
        // 100 ms to 2_999 ms, so the next ACK is 1 ms into it, as for a fresh flow.
        assert_eq!(cc.epoch.start, Some(Instant::from_millis(2_999)));
        let mut fresh = after_loss_at_100_segments();
        on_ack(&mut fresh, 100, ack(1_000, 100));
        on_ack(&mut fresh, 101, ack(1_000, 100));
        on_ack(&mut cc, 3_000, ack(1_000, 100));
        assert!(close(cc.cwnd, fresh.cwnd), "{} vs {}", cc.cwnd, fresh.cwnd);
    }

    #[test]
    fn slow_start_without_loss_enters_the_convex_region_at_ssthresh() {
        let mut cc = Cubic::new(MSS, None);
        on_ack(&mut cc, 0, ack(1_000, 100));
        assert_eq!(cc.window(), 11_000);
        for _ in 0..10 {
            on_ack(&mut cc, 0, ack(1_000, 100));
        }
        assert_eq!(cc.window(), 21_000);
        assert_eq!(cc.epoch.start, None);
    }

    #[test]
    fn timeout_uses_the_loss_window_then_k_zero_from_cwnd_epoch() {
        let mut cc = Cubic::new(MSS, Some(100_000));
        event(&mut cc, 0, CongestionEvent::Timeout, 100_000);
        assert_eq!((cc.window(), cc.ssthresh()), (1_000, 70_000));
        event(&mut cc, 1_000, CongestionEvent::Timeout, 1_000);
        assert_eq!((cc.window(), cc.ssthresh()), (1_000, 70_000));
        // Slow start back to ssthresh.
        let mut now = 2_000;
        while cc.window() < 70_000 {
            on_ack(&mut cc, now, ack(1_000, 100));
            now += 1;
        }
        assert_eq!(cc.window(), 70_000);
        on_ack(&mut cc, now, ack(1_000, 100));
        assert_eq!(cc.epoch.k, 0.0);
        assert_eq!(cc.epoch.w_max, 70_000.0);
        assert_eq!(cc.epoch.start, Some(Instant::from_millis(now)));
    }

    #[test]
    fn spurious_loss_restores_the_whole_state() {
        let mut cc = after_loss_at_100_segments();
        on_ack(&mut cc, 0, ack(1_000, 100));
        on_ack(&mut cc, 2_000, ack(1_000, 100));
        let before = (cc.cwnd, cc.ssthresh, cc.epoch);
        event(&mut cc, 2_500, CongestionEvent::Loss, 70_000);
        assert_eq!(cc.window(), 49_000);
        cc.on_spurious_congestion(Instant::from_millis(2_600));
        assert_eq!((cc.cwnd, cc.ssthresh, cc.epoch), before);
    }

    #[test]
    fn mss_change_before_any_ack_recomputes_the_initial_window() {
        let mut cc = Cubic::new(536, None);
        cc.set_mss(1_460);
        assert_eq!(cc.window(), 14_600);
        assert_eq!(cc.name(), "cubic");
    }
}
