//! OLIA, the Opportunistic Linked Increases Algorithm (Khalili, Gast, Popovic and Le
//! Boudec, "MPTCP is not Pareto-optimal", IEEE/ACM ToN 2013;
//! draft-khalili-mptcp-congestion-control-05).
//!
//! For each ACK on path r, in packets:
//!
//! ```text
//! w_r += (w_r / rtt_r^2) / (sum_p w_p / rtt_p)^2  +  alpha_r / w_r
//! ```
//!
//! and on a loss `w_r = w_r / 2`. The first term is Pareto-optimal resource pooling;
//! alpha_r moves window from the paths with the largest windows (set M) to the
//! presumably best paths (set B) that do not have the largest window yet:
//!
//! ```text
//! r in B \ M:                  alpha_r =  1 / (|R| * |B \ M|)
//! r in M, and B \ M not empty: alpha_r = -1 / (|R| * |M|)
//! otherwise:                   alpha_r =  0
//! ```
//!
//! B holds the paths that maximise `l_r / rtt_r^2`, where `l_r = max(l1_r, l2_r)`: the
//! bytes between the last two losses and the bytes since the last loss (a path's TCP
//! rate goes as `sqrt(1 / p_r) / rtt_r` and `l_r` estimates `1 / p_r`). The byte
//! counts are the acknowledged bytes the TCP engine keeps per subflow
//! ([`SubflowSnapshot::bytes_between_last_losses`],
//! [`SubflowSnapshot::bytes_since_last_loss`]).
//!
//! [`SubflowSnapshot::bytes_between_last_losses`]: super::SubflowSnapshot::bytes_between_last_losses
//! [`SubflowSnapshot::bytes_since_last_loss`]: super::SubflowSnapshot::bytes_since_last_loss

use super::SubflowsSnapshot;
use super::coupled::{Coupling, Path, coupled_paths};
use super::reno_window::RenoWindow;

/// OLIA for one subflow.
#[derive(Clone, Debug)]
pub struct Olia {
    win: RenoWindow<f64>,
}

/// `a.inter_loss / a.rtt^2` compared with `b`'s, exactly (integers).
fn quality_cmp(a: &Path, b: &Path) -> core::cmp::Ordering {
    let lhs = u128::from(a.inter_loss) * u128::from(b.rtt_us) * u128::from(b.rtt_us);
    let rhs = u128::from(b.inter_loss) * u128::from(a.rtt_us) * u128::from(a.rtt_us);
    lhs.cmp(&rhs)
}

/// Window in packets compared exactly: `a.cwnd / a.mss` against `b`'s.
fn window_cmp(a: &Path, b: &Path) -> core::cmp::Ordering {
    (u128::from(a.cwnd) * u128::from(b.mss)).cmp(&(u128::from(b.cwnd) * u128::from(a.mss)))
}

impl Olia {
    /// `initial_window` in bytes overrides the RFC 6928 initial window.
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        Olia {
            win: RenoWindow::new(mss, initial_window_bytes),
        }
    }

    /// alpha_r of the own subflow (see the module documentation), or `None` when it
    /// has no RTT sample.
    pub fn alpha(subflows: &SubflowsSnapshot<'_>) -> Option<f64> {
        let mut max_w: Option<Path> = None;
        let mut best: Option<Path> = None;
        let count = coupled_paths(subflows, |p| {
            if max_w.is_none_or(|m| window_cmp(&p, &m).is_gt()) {
                max_w = Some(p);
            }
            if best.is_none_or(|b| quality_cmp(&p, &b).is_gt()) {
                best = Some(p);
            }
        })?;
        let (Some(max_w), Some(best)) = (max_w, best) else {
            return Some(0.0);
        };
        let (mut in_m, mut best_not_m) = (0u32, 0u32);
        let (mut own_in_m, mut own_best_not_m) = (false, false);
        coupled_paths(subflows, |p| {
            let m = window_cmp(&p, &max_w).is_eq();
            let b = quality_cmp(&p, &best).is_eq();
            in_m += u32::from(m);
            best_not_m += u32::from(b && !m);
            if p.index == subflows.own {
                own_in_m = m;
                own_best_not_m = b && !m;
            }
        });
        let n = count as f64;
        Some(if own_best_not_m {
            1.0 / (n * f64::from(best_not_m))
        } else if own_in_m && best_not_m > 0 {
            -1.0 / (n * f64::from(in_m))
        } else {
            0.0
        })
    }

    /// The increase of this ACK relative to Reno's (1 / w_r per packet):
    /// `w_r^2 / rtt_r^2 / (sum_p w_p / rtt_p)^2 + alpha_r`; exactly 1 on one path.
    fn factor(subflows: &SubflowsSnapshot<'_>) -> f64 {
        let mut sum = 0.0f64;
        let mut own = None;
        let Some(count) = coupled_paths(subflows, |p| {
            sum += p.w() / p.rtt();
            if p.index == subflows.own {
                own = Some(p);
            }
        }) else {
            return 1.0;
        };
        let Some(own) = own.filter(|_| count > 1 && sum > 0.0) else {
            return 1.0;
        };
        let x = own.w() / own.rtt();
        x * x / (sum * sum) + Self::alpha(subflows).unwrap_or(0.0)
    }
}

impl Coupling for Olia {
    const NAME: &'static str = "olia";

    fn reno_window(&self) -> &RenoWindow<f64> {
        &self.win
    }

    fn reno_window_mut(&mut self) -> &mut RenoWindow<f64> {
        &mut self.win
    }

    fn increase_factor(_cwnd: u64, subflows: &SubflowsSnapshot<'_>) -> f64 {
        Self::factor(subflows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cc::test_util::{
        MSS, ack, assert_follows_newreno, in_congestion_avoidance, sf, snap,
    };
    use crate::cc::{CongestionControl, CongestionEvent, SubflowSnapshot};
    use crate::time::Instant;

    fn with_loss(mut s: SubflowSnapshot, since: u64, between: u64) -> SubflowSnapshot {
        s.bytes_since_last_loss = since;
        s.bytes_between_last_losses = between;
        s
    }

    fn in_ca(cwnd: u64) -> Olia {
        in_congestion_avoidance(Olia::new, cwnd)
    }

    /// A: 10 packets over 100 ms, l = max(50_000, 20_000); B: 20 packets over 200 ms,
    /// l = max(10_000, 40_000). l/rtt^2: A 5e6, B 1e6, so B = {A}; M = {B} (largest
    /// window). |R| = 2: alpha_A = 1/(2*1) = 0.5, alpha_B = -1/(2*1) = -0.5.
    fn pair() -> [SubflowSnapshot; 2] {
        [
            with_loss(sf(10, 100), 50_000, 20_000),
            with_loss(sf(20, 200), 10_000, 40_000),
        ]
    }

    #[test]
    fn alpha_moves_window_from_the_largest_to_the_best_path() {
        let flows = pair();
        assert_eq!(Olia::alpha(&snap(0, &flows)), Some(0.5));
        assert_eq!(Olia::alpha(&snap(1, &flows)), Some(-0.5));
        // The best path already has the largest window: no reallocation.
        let flows = [
            with_loss(sf(30, 100), 50_000, 0),
            with_loss(sf(20, 200), 40_000, 0),
        ];
        assert_eq!(Olia::alpha(&snap(0, &flows)), Some(0.0));
        assert_eq!(Olia::alpha(&snap(1, &flows)), Some(0.0));
        // Three paths, two of them best (equal l/rtt^2) and one of those the largest:
        // B \ M = {C}, M = {A}: alpha_C = 1/(3*1), alpha_A = -1/(3*1), alpha_B = 0.
        let flows = [
            with_loss(sf(40, 100), 10_000, 0),
            with_loss(sf(20, 100), 1_000, 0),
            with_loss(sf(10, 200), 40_000, 0),
        ];
        assert_eq!(Olia::alpha(&snap(0, &flows)), Some(-1.0 / 3.0));
        assert_eq!(Olia::alpha(&snap(1, &flows)), Some(0.0));
        assert_eq!(Olia::alpha(&snap(2, &flows)), Some(1.0 / 3.0));
    }

    #[test]
    fn equal_paths_are_all_best_and_all_largest_so_no_window_moves() {
        // Three identical paths: B = M = R, so B \ M is empty and every alpha is 0;
        // the increase is the pooling term alone, (w/rtt)^2 / (3 w/rtt)^2 = 1/9 of
        // Reno's on each.
        let flows = [
            with_loss(sf(20, 60), 30_000, 10_000),
            with_loss(sf(20, 60), 30_000, 10_000),
            with_loss(sf(20, 60), 30_000, 10_000),
        ];
        for own in 0..3 {
            assert_eq!(Olia::alpha(&snap(own, &flows)), Some(0.0));
            assert!((Olia::factor(&snap(own, &flows)) - 1.0 / 9.0).abs() < 1e-12);
        }
    }

    #[test]
    fn increase_follows_the_paper_equation() {
        // w/rtt: A 100, B 100, sum 200. A: (100)^2 / 200^2 + 0.5 = 0.75 of Reno;
        // B: 0.25 - 0.5 = -0.25 of Reno (its window shrinks).
        let flows = pair();
        assert!((Olia::factor(&snap(0, &flows)) - 0.75).abs() < 1e-12);
        assert!((Olia::factor(&snap(1, &flows)) + 0.25).abs() < 1e-12);
        // A grows one MSS per 10_000 / (1_000 * 0.75) = 13.3 ACKs: after 14.
        let mut cc = in_ca(10_000);
        for _ in 0..13 {
            cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        }
        assert_eq!(cc.window(), 10_000);
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(0, &flows));
        assert_eq!(cc.window(), 11_000);
        // B shrinks one MSS per 20_000 / 250 = 80 ACKs (the 80th lands on the
        // boundary; one more is past any rounding).
        let mut cc = in_ca(20_000);
        for _ in 0..79 {
            cc.on_ack(Instant::ZERO, &ack(1_000), &snap(1, &flows));
        }
        assert_eq!(cc.window(), 20_000);
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(1, &flows));
        cc.on_ack(Instant::ZERO, &ack(1_000), &snap(1, &flows));
        assert_eq!(cc.window(), 19_000);
    }

    #[test]
    fn one_path_reduces_to_reno() {
        let mut olia = Olia::new(MSS, None);
        let own = with_loss(sf(10, 30), 5_000, 7_000);
        assert_follows_newreno(&mut olia, &own, |round| 400 + (round * 53) % 1_600, 89);
    }

    #[test]
    fn loss_halves_the_window() {
        let mut cc = in_ca(30_000);
        let flows = pair();
        cc.on_congestion_event(
            Instant::ZERO,
            CongestionEvent::Loss,
            30_000,
            &snap(0, &flows),
        );
        assert_eq!((cc.window(), cc.ssthresh()), (15_000, 15_000));
    }
}
