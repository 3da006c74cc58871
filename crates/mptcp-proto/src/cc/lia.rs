//! LIA, the Linked Increases Algorithm of RFC 6356: the coupled congestion control
//! MPTCP was standardised with.
//!
//! RFC 6356 §3: in congestion avoidance, each ACK on subflow i that acknowledges
//! `bytes_acked` increases `cwnd_i` by
//!
//! ```text
//! min(alpha * bytes_acked * MSS_i / cwnd_total, bytes_acked * MSS_i / cwnd_i)
//! alpha = cwnd_total * max_i(cwnd_i / rtt_i^2) / (sum_i cwnd_i / rtt_i)^2
//! ```
//!
//! The first term caps the connection's aggregate increase at what one TCP flow on the
//! best path would take (goal 2: do no harm at a shared bottleneck); the second keeps
//! any subflow from growing faster than a single TCP flow would on it (goal 1). Slow
//! start, fast retransmit and the halving on loss are unchanged from TCP.

use super::SubflowsSnapshot;
use super::coupled::{Coupling, coupled_paths};
use super::reno_window::RenoWindow;

/// LIA for one subflow.
///
/// ```
/// use mptcp_proto::cc::{Lia, SubflowSnapshot, SubflowsSnapshot};
/// use mptcp_proto::Duration;
///
/// let a = SubflowSnapshot { cwnd: 10_000, srtt: Some(Duration::from_millis(100)), mss: 1_000, ..Default::default() };
/// let b = SubflowSnapshot { cwnd: 20_000, srtt: Some(Duration::from_millis(200)), mss: 1_000, ..Default::default() };
/// let alpha = Lia::alpha(&SubflowsSnapshot { own: 0, subflows: &[a, b] }).unwrap();
/// assert!((alpha - 0.75).abs() < 1e-12);
/// ```
#[derive(Clone, Debug)]
pub struct Lia {
    win: RenoWindow<f64>,
}

impl Lia {
    /// `initial_window` in bytes overrides the RFC 6928 initial window.
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        Lia {
            win: RenoWindow::new(mss, initial_window_bytes),
        }
    }

    /// RFC 6356 §3's alpha over the coupled subflows (windows in bytes, RTTs in
    /// seconds), or `None` when the own subflow has no RTT sample.
    pub fn alpha(subflows: &SubflowsSnapshot<'_>) -> Option<f64> {
        let (mut total, mut best, mut sum) = (0.0f64, 0.0f64, 0.0f64);
        let count = coupled_paths(subflows, |p| {
            let cwnd = p.cwnd as f64;
            total += cwnd;
            best = best.max(cwnd / (p.rtt() * p.rtt()));
            sum += cwnd / p.rtt();
        })?;
        if count == 0 || sum <= 0.0 {
            return None;
        }
        Some(total * best / (sum * sum))
    }

    /// The increase of this ACK relative to Reno's (`bytes_acked * MSS / cwnd_i`):
    /// `min(alpha * cwnd_i / cwnd_total, 1)`; exactly 1 with a single subflow.
    fn factor(cwnd: u64, subflows: &SubflowsSnapshot<'_>) -> f64 {
        let mut total = 0.0f64;
        let Some(count) = coupled_paths(subflows, |p| {
            total += p.cwnd as f64;
        }) else {
            return 1.0;
        };
        if count <= 1 || total <= 0.0 {
            return 1.0;
        }
        match Self::alpha(subflows) {
            Some(alpha) => (alpha * cwnd as f64 / total).min(1.0),
            None => 1.0,
        }
    }
}

impl Coupling for Lia {
    const NAME: &'static str = "lia";

    fn reno_window(&self) -> &RenoWindow<f64> {
        &self.win
    }

    fn reno_window_mut(&mut self) -> &mut RenoWindow<f64> {
        &mut self.win
    }

    fn increase_factor(cwnd: u64, subflows: &SubflowsSnapshot<'_>) -> f64 {
        Self::factor(cwnd, subflows)
    }

    // RFC 6356 §3: "the algorithm ... uses the same decrease as TCP": the default.
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::test_util::{
        MSS, ack, assert_follows_newreno, in_congestion_avoidance, sf, snap,
    };
    use crate::cc::{CongestionControl, CongestionEvent};
    use crate::time::Instant;

    /// Puts the controller in congestion avoidance at `cwnd` bytes.
    fn in_ca(cwnd: u64) -> Lia {
        in_congestion_avoidance(Lia::new, cwnd)
    }

    #[test]
    fn alpha_for_two_subflows_matches_rfc_6356() {
        // A: 10 segments over 100 ms, B: 20 segments over 200 ms.
        // cwnd/rtt^2: A 1e6, B 5e5 -> max 1e6; sum cwnd/rtt = 1e5 + 1e5 = 2e5;
        // alpha = 30_000 * 1e6 / 4e10 = 0.75.
        let flows = [sf(10, 100), sf(20, 200)];
        let alpha = Lia::alpha(&snap(0, &flows)).expect("RTTs known");
        assert!((alpha - 0.75).abs() < 1e-12, "{alpha}");
        // Equal paths: alpha = 2w * (w/r^2) / (2w/r)^2 = 1/2.
        let flows = [sf(10, 50), sf(10, 50)];
        let alpha = Lia::alpha(&snap(1, &flows)).expect("RTTs known");
        assert!((alpha - 0.5).abs() < 1e-12, "{alpha}");
    }

    #[test]
    fn alpha_for_three_subflows_matches_rfc_6356() {
        // A 10 segments / 50 ms, B 20 / 100 ms, C 40 / 200 ms (cwnd in bytes, MSS 1000).
        // cwnd/rtt: 2e5, 2e5, 2e5 -> sum 6e5, squared 3.6e11.
        // cwnd/rtt^2: 4e6, 2e6, 1e6 -> max 4e6. cwnd_total = 70_000.
        // alpha = 70_000 * 4e6 / 3.6e11 = 7/9.
        let flows = [sf(10, 50), sf(20, 100), sf(40, 200)];
        for own in 0..3 {
            let alpha = Lia::alpha(&snap(own, &flows)).expect("RTTs known");
            assert!((alpha - 7.0 / 9.0).abs() < 1e-12, "{alpha}");
        }
        // Per-ACK increase relative to Reno's (bytes_acked * MSS / cwnd_i):
        // min(alpha * cwnd_i / cwnd_total, 1). A: 7/9 * 10/70 = 1/9; C: 7/9 * 40/70 =
        // 4/9: every subflow grows by (7/9) * MSS * bytes_acked / 70_000, the same
        // bytes per ACK whatever its own window, as RFC 6356's first term says.
        assert!((Lia::factor(10_000, &snap(0, &flows)) - 1.0 / 9.0).abs() < 1e-12);
        assert!((Lia::factor(40_000, &snap(2, &flows)) - 4.0 / 9.0).abs() < 1e-12);
    }

    #[test]
    fn increase_is_the_minimum_of_the_coupled_and_the_tcp_term() {
        // Subflow A of the pair above: min(0.75 * 1000 * 1000 / 30_000, 1000 * 1000 /
        // 10_000) = min(25, 100) = 25 bytes per 1000-byte ACK: one MSS per 40 ACKs.
        let flows = [sf(10, 100), sf(20, 200)];
        let mut cc = in_ca(10_000);
        // (The 40th ACK lands on the boundary; one more is past any rounding.)
        for _ in 0..39 {
            cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        }
        assert_eq!(cc.window(), 10_000);
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        assert_eq!(cc.window(), 11_000);
        // Subflow B: min(0.75 * 1e6 / 30_000, 1e6 / 20_000) = min(25, 50): 25 bytes per
        // ACK, one MSS per 1_000 / 25 = 40 ACKs (half of Reno's 20).
        let mut cc = in_ca(20_000);
        for _ in 0..39 {
            cc.on_ack(Instant::ZERO, &ack(1_000), &snap(1, &flows));
        }
        assert_eq!(cc.window(), 20_000);
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(1, &flows));
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(1, &flows));
        assert_eq!(cc.window(), 21_000);
    }

    #[test]
    fn the_tcp_term_caps_a_large_slow_subflow_next_to_a_tiny_fast_one() {
        // i: 100 segments over 100 ms (cwnd/rtt = 1e6, cwnd/rtt^2 = 1e7); j: 1 segment
        // over 0.1 ms (1e7 and 1e11). alpha = 101_000 * 1e11 / (1.1e7)^2 = 83.47;
        // i's coupled term alpha * 100_000 / 101_000 = 82.6 > 1: Reno's term wins.
        let mut j = sf(1, 1);
        j.srtt = Some(crate::time::Duration::from_micros(100));
        let flows = [sf(100, 100), j];
        assert_eq!(Lia::factor(100_000, &snap(0, &flows)), 1.0);
        // j's own term: (cwnd_j / rtt_j)^2 / (sum)^2 = (1e7 / 1.1e7)^2.
        let f = Lia::factor(1_000, &snap(1, &flows));
        let want = (1e7f64 / 1.1e7).powi(2);
        assert!((f - want).abs() < 1e-12, "{f} vs {want}");
    }

    #[test]
    fn a_single_subflow_behaves_exactly_like_newreno() {
        let mut lia = Lia::new(MSS, None);
        assert_follows_newreno(
            &mut lia,
            &sf(10, 30),
            |round| 500 + (round * 37) % 1_500,
            97,
        );
        assert!(lia.window() > 10_000);
    }

    #[test]
    fn backup_subflows_stay_out_of_the_sums() {
        let mut backup = sf(1_000, 1);
        backup.is_backup = true;
        let flows = [sf(10, 100), sf(20, 200), backup];
        let alpha = Lia::alpha(&snap(0, &flows)).expect("RTTs known");
        assert!((alpha - 0.75).abs() < 1e-12, "{alpha}");
        // Subflows without an RTT sample are left out too; an own subflow without one
        // grows like Reno.
        let mut fresh = sf(10, 1);
        fresh.srtt = None;
        let flows = [sf(10, 100), fresh];
        assert_eq!(Lia::factor(10_000, &snap(0, &flows)), 1.0);
        assert_eq!(Lia::alpha(&snap(1, &flows)), None);
    }

    #[test]
    fn loss_halves_and_penalty_halves_without_a_loss() {
        let mut cc = in_ca(40_000);
        let flows = [sf(40, 10), sf(40, 10)];
        cc.on_congestion_event(
            Instant::ZERO,
            CongestionEvent::Loss,
            40_000,
            &snap(0, &flows),
        );
        assert_eq!((cc.window(), cc.ssthresh()), (20_000, 20_000));
        cc.on_penalty(Instant::ZERO);
        assert_eq!((cc.window(), cc.ssthresh()), (10_000, 10_000));
        cc.on_spurious_congestion(Instant::ZERO);
        assert_eq!((cc.window(), cc.ssthresh()), (40_000, 40_000));
    }
}
