//! ECF, Earliest Completion First (Lim, Nahum, Towsley and Gibbens, "ECF: An MPTCP Path
//! Scheduler to Manage Heterogeneous Paths", CoNEXT 2017).
//!
//! When the fastest subflow `f` has window space, it sends. When it is full and a
//! slower subflow `s` has space, ECF compares finishing the `k` bytes waiting in the
//! send buffer by waiting for `f` against sending on `s` now:
//!
//! ```text
//! n = 1 + k / cwnd_f                       (rounds of f needed, the wait included)
//! delta = max(rttvar_f, rttvar_s)
//! if n * rtt_f < (1 + waiting * beta) * (rtt_s + delta):
//!     if (k / cwnd_s) * rtt_s >= 2 * rtt_f + delta:
//!         waiting = 1; wait for f           (s would finish later than f)
//!     else: send on s                       (s finishes its share in time)
//! else:
//!     waiting = 0; send on s
//! ```
//!
//! `beta` (1/4, as in the paper's evaluation and Linux) is the hysteresis that keeps
//! the decision from flapping once ECF started waiting. As in the authors' Linux code,
//! `k` is taken as at least one window of the subflow in question (`max(k, cwnd)`), and
//! all comparisons are done exactly in integers (bytes and microseconds).

use super::{Decision, SchedInput, Scheduler, fastest, fastest_with_space};

/// beta = 1 / BETA_INV.
const BETA_INV: u128 = 4;

/// See the module documentation.
#[derive(Clone, Copy, Debug, Default)]
pub struct Ecf {
    /// The last decision was to wait for the fast subflow (the hysteresis state).
    waiting: bool,
}

impl Ecf {
    pub fn new() -> Self {
        Ecf::default()
    }
}

impl Scheduler for Ecf {
    fn name(&self) -> &'static str {
        "ecf"
    }

    fn schedule(&mut self, input: &SchedInput<'_>) -> Decision {
        let sendable = input.sendable();
        if sendable == 0 {
            return Decision::wait();
        }
        let candidates = input.candidates();
        let (Some(f), Some(s)) = (fastest(&candidates), fastest_with_space(&candidates)) else {
            return Decision::wait();
        };
        let send_on_s = Decision::single(s.id, s.space().min(sendable));
        if f.id == s.id {
            return send_on_s;
        }
        let (Some(rtt_f), Some(rtt_s)) = (f.srtt, s.srtt) else {
            return send_on_s;
        };
        let rtt_f = u128::from(rtt_f.total_micros());
        let rtt_s = u128::from(rtt_s.total_micros());
        let delta = u128::from(f.rttvar.max(s.rttvar).total_micros());
        let k = u128::from(input.pending);
        let cwnd_f = u128::from(f.cwnd.max(1));
        let cwnd_s = u128::from(s.cwnd.max(1));
        // n * rtt_f < (1 + waiting * beta) * (rtt_s + delta), with n = (x_f + cwnd_f) /
        // cwnd_f, multiplied through by cwnd_f * BETA_INV.
        let x_f = k.max(cwnd_f);
        let lhs = rtt_f * (x_f + cwnd_f) * BETA_INV;
        let rhs = cwnd_f * (rtt_s + delta) * (BETA_INV + u128::from(self.waiting));
        if lhs < rhs {
            // (k / cwnd_s) * rtt_s >= 2 * rtt_f + delta, multiplied by cwnd_s.
            let x_s = k.max(cwnd_s);
            if rtt_s * x_s >= cwnd_s * (2 * rtt_f + delta) {
                self.waiting = true;
                return Decision::wait();
            }
        } else {
            self.waiting = false;
        }
        send_on_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mptcp::SubflowId;
    use crate::sched::tests::{input, subflow};
    use crate::time::Duration;

    /// Fast: 10 ms, full window of 14_480. Slow: 100 ms, empty window of 14_480.
    /// rttvar 5 ms on both.
    fn paths() -> [crate::sched::SubflowView; 2] {
        let mut fast = subflow(1, Some(10));
        fast.in_flight = fast.cwnd;
        [fast, subflow(2, Some(100))]
    }

    #[test]
    fn the_fast_subflow_sends_whenever_it_has_space() {
        let mut ecf = Ecf::new();
        let mut flows = paths();
        flows[0].in_flight = 0;
        assert_eq!(
            ecf.schedule(&input(&flows, 1_000)),
            Decision::single(SubflowId(1), 1_000)
        );
    }

    #[test]
    fn waits_for_the_fast_path_when_it_completes_earlier() {
        // k = 20_000: x_f = 20_000, lhs = 10 ms * (20_000 + 14_480) * 4 = 1_379_200_000;
        // rhs = 14_480 * 105 ms * 4 = 6_081_600_000: waiting for f is faster. Then
        // 100 ms * max(20_000, 14_480) = 2e9 >= 14_480 * (20 + 5) ms = 362_000_000: s
        // would finish later: wait.
        let mut ecf = Ecf::new();
        let flows = paths();
        assert!(ecf.schedule(&input(&flows, 20_000)).is_wait());
        assert!(ecf.waiting);
    }

    #[test]
    fn sends_on_the_slow_path_when_much_data_waits() {
        // k = 1 MB: lhs = 10 ms * (1_000_000 + 14_480) * 4 = 4.06e10 > rhs = 6.08e9:
        // the fast path alone would take 70 of its rounds (700 ms) > 105 ms.
        let mut ecf = Ecf::new();
        let flows = paths();
        assert_eq!(
            ecf.schedule(&input(&flows, 1_000_000)),
            Decision::single(SubflowId(2), 14_480)
        );
        assert!(!ecf.waiting);
    }

    #[test]
    fn beta_keeps_a_waiting_decision_from_flapping() {
        // k chosen between the two thresholds: with rtt_s + delta = 105 ms and cwnd_f =
        // 14_480, not waiting switches to s once 10 * (k + 14_480) >= 14_480 * 105, i.e.
        // k >= 137_560; while waiting, only once 10 * (k + 14_480) * 4 >= 14_480 * 105 *
        // 5, i.e. k >= 175_570.
        let flows = paths();
        let mut fresh = Ecf::new();
        assert_eq!(
            fresh.schedule(&input(&flows, 150_000)),
            Decision::single(SubflowId(2), 14_480)
        );
        let mut waiting = Ecf::new();
        assert!(waiting.schedule(&input(&flows, 20_000)).is_wait());
        assert!(waiting.schedule(&input(&flows, 150_000)).is_wait());
        assert_eq!(
            waiting.schedule(&input(&flows, 175_570)),
            Decision::single(SubflowId(2), 14_480)
        );
        assert!(!waiting.waiting);
    }

    #[test]
    fn a_slow_path_that_finishes_in_time_is_used() {
        let mut ecf = Ecf::new();
        let mut flows = paths();
        flows[1].srtt = Some(Duration::from_millis(16));
        flows[1].cwnd = 100_000;
        // First test: 10 * (14_480 + 14_480) * 4 = 1_158_400 < 14_480 * (16 + 5) * 4 =
        // 1_216_320: waiting for f looks better. Second: 16 * max(10_000, 100_000) =
        // 1_600_000 < 100_000 * (2 * 10 + 5) = 2_500_000: s completes its share before
        // f's second round anyway: send on s.
        assert_eq!(
            ecf.schedule(&input(&flows, 10_000)),
            Decision::single(SubflowId(2), 10_000)
        );
        assert!(!ecf.waiting);
    }

    #[test]
    fn backups_wait_while_a_regular_subflow_is_available() {
        let mut ecf = Ecf::new();
        let mut flows = paths();
        flows[1].backup = true;
        assert!(ecf.schedule(&input(&flows, 1_000_000)).is_wait());
    }
}
