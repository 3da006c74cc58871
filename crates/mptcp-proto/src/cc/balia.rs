//! BALIA, the Balanced Linked Adaptation algorithm (Peng, Walid, Hwang and Low,
//! "Multipath TCP: Analysis, Design, and Implementation", IEEE/ACM ToN 2016).
//!
//! With `x_r = w_r / rtt_r` (packets per second) and `alpha_r = max_k x_k / x_r`:
//!
//! ```text
//! each ACK on r:  w_r += (x_r / rtt_r) / (sum_k x_k)^2 * (1 + alpha_r)/2 * (4 + alpha_r)/5
//! each loss on r: w_r -= w_r / 2 * min(alpha_r, 1.5)
//! ```
//!
//! It balances TCP-friendliness (LIA) and responsiveness (OLIA's pooling): a path
//! carrying much less than the best one (large alpha_r) both grows faster and backs off
//! harder. With one path alpha = 1 and both rules are Reno's.

use super::SubflowsSnapshot;
use super::coupled::{Coupling, coupled_paths};
use super::reno_window::RenoWindow;

/// BALIA for one subflow.
#[derive(Clone, Debug)]
pub struct Balia {
    win: RenoWindow<f64>,
}

/// Largest `min(alpha, ..)` the decrease uses (the paper's 1.5).
const DECREASE_ALPHA_CAP: f64 = 1.5;

impl Balia {
    /// `initial_window` in bytes overrides the RFC 6928 initial window.
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        Balia {
            win: RenoWindow::new(mss, initial_window_bytes),
        }
    }

    /// (alpha_r, x_r, sum_k x_k, number of coupled paths) of the own subflow.
    fn terms(subflows: &SubflowsSnapshot<'_>) -> Option<(f64, f64, f64, usize)> {
        let (mut max_x, mut sum_x, mut own_x) = (0.0f64, 0.0f64, None);
        let count = coupled_paths(subflows, |p| {
            let x = p.w() / p.rtt();
            max_x = max_x.max(x);
            sum_x += x;
            if p.index == subflows.own {
                own_x = Some(x);
            }
        })?;
        let own_x = own_x.filter(|x| *x > 0.0)?;
        Some((max_x / own_x, own_x, sum_x, count))
    }

    /// alpha_r = max_k x_k / x_r of the own subflow, or `None` without an RTT sample.
    pub fn alpha(subflows: &SubflowsSnapshot<'_>) -> Option<f64> {
        Self::terms(subflows).map(|t| t.0)
    }

    /// The increase of this ACK relative to Reno's (1 / w_r per packet):
    /// `w_r * (x_r / rtt_r) / (sum x)^2 * (1 + a)/2 * (4 + a)/5`; exactly 1 on one path.
    fn factor(subflows: &SubflowsSnapshot<'_>) -> f64 {
        match Self::terms(subflows) {
            Some((alpha, x, sum, count)) if count > 1 => {
                // w_r * x_r / rtt_r = x_r^2.
                x * x / (sum * sum) * (1.0 + alpha) / 2.0 * (4.0 + alpha) / 5.0
            }
            Some(_) | None => 1.0,
        }
    }

    /// Fraction of the window kept on a loss: 1 - min(alpha, 1.5) / 2.
    fn keep(subflows: &SubflowsSnapshot<'_>) -> f64 {
        match Self::terms(subflows) {
            Some((alpha, _, _, count)) if count > 1 => 1.0 - alpha.min(DECREASE_ALPHA_CAP) / 2.0,
            Some(_) | None => 0.5,
        }
    }
}

impl Coupling for Balia {
    const NAME: &'static str = "balia";

    fn reno_window(&self) -> &RenoWindow<f64> {
        &self.win
    }

    fn reno_window_mut(&mut self) -> &mut RenoWindow<f64> {
        &mut self.win
    }

    fn increase_factor(_cwnd: u64, subflows: &SubflowsSnapshot<'_>) -> f64 {
        Self::factor(subflows)
    }

    fn kept_fraction(subflows: &SubflowsSnapshot<'_>) -> f64 {
        Self::keep(subflows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::test_util::{
        MSS, ack, assert_follows_newreno, in_congestion_avoidance, sf, snap,
    };
    use crate::cc::{CongestionControl, CongestionEvent};
    use crate::time::Instant;

    fn in_ca(cwnd: u64) -> Balia {
        in_congestion_avoidance(Balia::new, cwnd)
    }

    #[test]
    fn alpha_increase_and_decrease_follow_the_paper() {
        // A: 20 packets over 100 ms (x = 200/s); B: 10 packets over 200 ms (x = 50/s).
        // alpha_A = 200/200 = 1, alpha_B = 200/50 = 4; sum x = 250.
        let flows = [sf(20, 100), sf(10, 200)];
        assert_eq!(Balia::alpha(&snap(0, &flows)), Some(1.0));
        assert_eq!(Balia::alpha(&snap(1, &flows)), Some(4.0));
        // Factor A: 200^2/250^2 * (2/2) * (5/5) = 0.64.
        // Factor B: 50^2/250^2 * (5/2) * (8/5) = 0.04 * 4 = 0.16.
        assert!((Balia::factor(&snap(0, &flows)) - 0.64).abs() < 1e-12);
        assert!((Balia::factor(&snap(1, &flows)) - 0.16).abs() < 1e-12);
        // Decrease: A keeps 1 - 1/2 = 0.5, B keeps 1 - 1.5/2 = 0.25.
        assert_eq!(Balia::keep(&snap(0, &flows)), 0.5);
        assert_eq!(Balia::keep(&snap(1, &flows)), 0.25);
        let mut cc = in_ca(10_000);
        cc.on_congestion_event(
            Instant::ZERO,
            CongestionEvent::Loss,
            10_000,
            &snap(1, &flows),
        );
        assert_eq!((cc.window(), cc.ssthresh()), (2_500, 2_500));
        // A grows one MSS per 20_000 / 640 = 31.25 ACKs of 1_000 bytes: after 32.
        let mut cc = in_ca(20_000);
        for _ in 0..31 {
            cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        }
        assert_eq!(cc.window(), 20_000);
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        assert_eq!(cc.window(), 21_000);
    }

    #[test]
    fn a_path_between_one_and_one_and_a_half_times_behind_decreases_by_alpha() {
        // A: 25 packets over 100 ms (x = 250/s); B: 20 packets over 100 ms (x = 200/s).
        // alpha_B = 250 / 200 = 1.25, inside (1, 1.5): no cap.
        // Increase factor of B: (200/450)^2 * (1 + 1.25)/2 * (4 + 1.25)/5
        //   = 0.197531 * 1.125 * 1.05 = 0.233333 (= 7/30 exactly: 16/81 * 9/8 * 21/20).
        // Decrease: keep 1 - 1.25/2 = 0.375 of the flight.
        let flows = [sf(25, 100), sf(20, 100)];
        assert_eq!(Balia::alpha(&snap(1, &flows)), Some(1.25));
        assert!((Balia::factor(&snap(1, &flows)) - 7.0 / 30.0).abs() < 1e-12);
        assert_eq!(Balia::keep(&snap(1, &flows)), 0.375);
        let mut cc = in_ca(16_000);
        cc.on_congestion_event(
            Instant::ZERO,
            CongestionEvent::Loss,
            16_000,
            &snap(1, &flows),
        );
        assert_eq!((cc.window(), cc.ssthresh()), (6_000, 6_000));
        // A (alpha 1): factor (250/450)^2 = 25/81, keep 1/2.
        assert!((Balia::factor(&snap(0, &flows)) - 25.0 / 81.0).abs() < 1e-12);
        assert_eq!(Balia::keep(&snap(0, &flows)), 0.5);
    }

    #[test]
    fn one_path_reduces_to_reno() {
        let mut balia = Balia::new(MSS, None);
        assert_follows_newreno(
            &mut balia,
            &sf(10, 30),
            |round| 300 + (round * 71) % 1_700,
            83,
        );
    }
}
