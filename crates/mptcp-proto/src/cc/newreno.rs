//! NewReno window arithmetic (RFC 5681 with RFC 3465 byte counting).
//!
//! The controller only sets `cwnd` and `ssthresh`. Loss recovery itself (fast
//! retransmit, the RFC 6675 pipe or RFC 5681 window inflation and deflation, RFC 6582
//! partial ACKs, the recovery point) belongs to the TCP engine, which tells the
//! controller about ACKs, loss events and the end of recovery.

use super::reno_window::RenoWindow;
use super::{AckEvent, CongestionControl, CongestionEvent, SubflowsSnapshot};
use crate::time::Instant;

/// Uncoupled NewReno congestion control for one subflow.
///
/// ```
/// use mptcp_proto::cc::{AckEvent, CongestionControl, CongestionEvent, NewReno, SubflowSnapshot, SubflowsSnapshot};
/// use mptcp_proto::Instant;
///
/// let mut cc = NewReno::new(1_000, None);
/// assert_eq!(cc.window(), 10_000); // RFC 6928
/// let own = SubflowSnapshot::default();
/// let sf = SubflowsSnapshot::single(&own);
/// cc.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, 10_000, &sf);
/// assert_eq!((cc.window(), cc.ssthresh()), (5_000, 5_000));
/// ```
#[derive(Clone, Debug)]
pub struct NewReno {
    /// The window; NewReno counts whole acknowledged bytes in congestion avoidance.
    win: RenoWindow<u64>,
}

impl NewReno {
    /// `initial_window` in bytes overrides the RFC 6928 initial window.
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        NewReno {
            win: RenoWindow::new(mss, initial_window_bytes),
        }
    }
}

impl CongestionControl for NewReno {
    fn window(&self) -> u64 {
        self.win.cwnd
    }

    fn ssthresh(&self) -> u64 {
        self.win.ssthresh
    }

    fn on_ack(&mut self, _now: Instant, ack: &AckEvent, _subflows: &SubflowsSnapshot<'_>) {
        let acked = self.win.slow_start_on_ack(ack);
        if acked == 0 {
            return;
        }
        // RFC 5681 §3.1 / RFC 3465 §2.1: once a window's worth of bytes has been
        // acknowledged, grow by one MSS, i.e. one MSS per RTT.
        let win = &mut self.win;
        win.ca_acked += acked;
        if win.ca_acked >= win.cwnd {
            win.ca_acked -= win.cwnd;
            win.cwnd += win.mss();
        }
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        event: CongestionEvent,
        prior_in_flight: u64,
        _subflows: &SubflowsSnapshot<'_>,
    ) {
        self.win.reduce(event, prior_in_flight / 2);
        tracing::trace!(
            ?event,
            cwnd = self.win.cwnd,
            ssthresh = self.win.ssthresh,
            "newreno: reduced"
        );
    }

    fn on_penalty(&mut self, _now: Instant) {
        self.win.penalize();
    }

    fn on_spurious_congestion(&mut self, _now: Instant) {
        self.win.undo_spurious_reduction();
    }

    fn set_mss(&mut self, mss: u32) {
        self.win.set_mss(mss);
    }

    fn name(&self) -> &'static str {
        "newreno"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::SubflowSnapshot;
    use crate::cc::test_util::{MSS, ack};

    fn on_ack(cc: &mut NewReno, a: AckEvent) {
        let own = SubflowSnapshot::default();
        cc.on_ack(Instant::ZERO, &a, &SubflowsSnapshot::single(&own));
    }

    fn event(cc: &mut NewReno, e: CongestionEvent, in_flight: u64) {
        let own = SubflowSnapshot::default();
        cc.on_congestion_event(Instant::ZERO, e, in_flight, &SubflowsSnapshot::single(&own));
    }

    /// One RTT's worth of ACKs, each for `per_ack` bytes, covering the current window.
    fn one_rtt(cc: &mut NewReno, per_ack: u64) {
        let acks = cc.window() / per_ack;
        for _ in 0..acks {
            on_ack(cc, ack(per_ack));
        }
    }

    #[test]
    fn initial_window_follows_rfc_6928() {
        assert_eq!(NewReno::new(1_460, None).window(), 14_600);
        assert_eq!(NewReno::new(536, None).window(), 5_360);
        assert_eq!(NewReno::new(9_000, None).window(), 18_000);
        assert_eq!(NewReno::new(1_460, Some(4_000)).window(), 4_000);
        assert_eq!(NewReno::new(1_460, None).ssthresh(), u64::MAX);
    }

    #[test]
    fn slow_start_doubles_per_rtt_with_per_segment_and_delayed_acks() {
        let mut cc = NewReno::new(MSS, None);
        one_rtt(&mut cc, 1_000);
        assert_eq!(cc.window(), 20_000);
        one_rtt(&mut cc, 1_000);
        assert_eq!(cc.window(), 40_000);
        // Delayed ACKs (2 segments each) still double: L = 2 MSS.
        one_rtt(&mut cc, 2_000);
        assert_eq!(cc.window(), 80_000);
    }

    #[test]
    fn a_stretch_ack_grows_slow_start_by_at_most_two_segments() {
        let mut cc = NewReno::new(MSS, None);
        on_ack(&mut cc, ack(10_000));
        assert_eq!(cc.window(), 12_000);
    }

    #[test]
    fn congestion_avoidance_grows_one_segment_per_rtt() {
        let mut cc = NewReno::new(MSS, None);
        event(&mut cc, CongestionEvent::Loss, 40_000);
        assert_eq!((cc.window(), cc.ssthresh()), (20_000, 20_000));
        one_rtt(&mut cc, 1_000);
        assert_eq!(cc.window(), 21_000);
        one_rtt(&mut cc, 1_000);
        assert_eq!(cc.window(), 22_000);
        // Half a window of ACKs is not enough for the next segment.
        for _ in 0..11 {
            on_ack(&mut cc, ack(1_000));
        }
        assert_eq!(cc.window(), 22_000);
    }

    #[test]
    fn slow_start_hands_the_bytes_past_ssthresh_to_congestion_avoidance() {
        let mut cc = NewReno::new(MSS, Some(19_000));
        event(&mut cc, CongestionEvent::Loss, 40_000); // ssthresh 20_000
        cc.win.cwnd = 19_500;
        on_ack(&mut cc, ack(2_000));
        assert_eq!((cc.window(), cc.win.ca_acked), (20_000, 1_500));
    }

    #[test]
    fn loss_halves_the_flight_with_a_floor_of_two_segments() {
        let mut cc = NewReno::new(MSS, None);
        event(&mut cc, CongestionEvent::Loss, 30_000);
        assert_eq!((cc.window(), cc.ssthresh()), (15_000, 15_000));
        event(&mut cc, CongestionEvent::Ecn, 1_000);
        assert_eq!((cc.window(), cc.ssthresh()), (2_000, 2_000));
    }

    #[test]
    fn timeout_collapses_to_one_segment_and_repeats_keep_ssthresh() {
        let mut cc = NewReno::new(MSS, None);
        event(&mut cc, CongestionEvent::Timeout, 30_000);
        assert_eq!((cc.window(), cc.ssthresh()), (1_000, 15_000));
        // The backed-off retransmission times out too: in flight is now one segment.
        event(&mut cc, CongestionEvent::Timeout, 1_000);
        assert_eq!((cc.window(), cc.ssthresh()), (1_000, 15_000));
        // Slow start resumes from the loss window.
        on_ack(&mut cc, ack(1_000));
        assert_eq!(cc.window(), 2_000);
        event(&mut cc, CongestionEvent::Timeout, 2_000);
        assert_eq!((cc.window(), cc.ssthresh()), (1_000, 2_000));
    }

    #[test]
    fn no_growth_in_recovery_or_when_app_limited() {
        let mut cc = NewReno::new(MSS, None);
        on_ack(
            &mut cc,
            AckEvent {
                in_recovery: true,
                ..ack(1_000)
            },
        );
        on_ack(
            &mut cc,
            AckEvent {
                app_limited: true,
                ..ack(1_000)
            },
        );
        assert_eq!(cc.window(), 10_000);
        event(&mut cc, CongestionEvent::Loss, 20_000);
        for _ in 0..100 {
            on_ack(
                &mut cc,
                AckEvent {
                    in_recovery: true,
                    ..ack(1_000)
                },
            );
            on_ack(
                &mut cc,
                AckEvent {
                    app_limited: true,
                    ..ack(1_000)
                },
            );
        }
        assert_eq!((cc.window(), cc.win.ca_acked), (10_000, 0));
    }

    #[test]
    fn spurious_loss_restores_the_previous_window_once() {
        let mut cc = NewReno::new(MSS, None);
        one_rtt(&mut cc, 1_000); // 20_000
        event(&mut cc, CongestionEvent::Loss, 20_000);
        assert_eq!((cc.window(), cc.ssthresh()), (10_000, 10_000));
        cc.on_spurious_congestion(Instant::ZERO);
        assert_eq!((cc.window(), cc.ssthresh()), (20_000, u64::MAX));
        cc.on_spurious_congestion(Instant::ZERO);
        assert_eq!((cc.window(), cc.ssthresh()), (20_000, u64::MAX));
    }

    #[test]
    fn mss_change_before_any_ack_recomputes_the_initial_window() {
        let mut cc = NewReno::new(536, None);
        cc.set_mss(1_460);
        assert_eq!(cc.window(), 14_600);
        on_ack(&mut cc, ack(1_460));
        cc.set_mss(1_000);
        assert_eq!(cc.window(), 16_060);
    }
}
