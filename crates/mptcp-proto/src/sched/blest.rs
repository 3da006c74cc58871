//! BLEST, BLocking ESTimation (Ferlin, Alay, Mehani and Boreli, "BLEST: Blocking
//! Estimation-based MPTCP Scheduler for Heterogeneous Networks", IFIP Networking 2016).
//!
//! Sending on a slow subflow `s` ties up connection-level send window for one of its
//! RTTs. If in that time the fast subflow `f` could have sent more than the window has
//! left, the slow subflow's data would block `f` (head-of-line blocking at the
//! receiver's shared window), so BLEST skips `s` and waits for `f`:
//!
//! ```text
//! rtts = rtt_s / rtt_f
//! X    = MSS_f * (cwnd_f + (rtts - 1) / 2) * rtts     (bytes f sends during rtt_s,
//!                                                     growing one MSS per rtt_f)
//! skip s  if  X * lambda > W - MSS_s * (inflight_s + 1)
//! ```
//!
//! with `cwnd_f` and `inflight_s` in segments and `W` the connection-level send window
//! ([`SchedInput::conn_window`] + [`SchedInput::conn_in_flight`]). `lambda` corrects
//! the estimate: it grows by [`LAMBDA_UP`] for each fast-subflow RTT in which the
//! connection was blocked by its send window anyway (the estimate was too optimistic)
//! and shrinks by [`LAMBDA_DOWN`] for each RTT without blocking, within
//! [`LAMBDA_MIN`]..=[`LAMBDA_MAX`]. The paper leaves the step sizes to the
//! implementation; these are ours.

use super::{Decision, SchedInput, Scheduler, fastest, fastest_with_space};
use crate::time::Instant;

/// Starting value of lambda: the plain estimate.
pub const LAMBDA_INIT: f64 = 1.0;
pub const LAMBDA_MIN: f64 = 1.0;
pub const LAMBDA_MAX: f64 = 2.0;
/// Lambda step after an RTT in which the connection window blocked sending.
pub const LAMBDA_UP: f64 = 0.1;
/// Lambda step after an RTT without blocking.
pub const LAMBDA_DOWN: f64 = 0.01;

/// See the module documentation.
#[derive(Clone, Copy, Debug)]
pub struct Blest {
    lambda: f64,
    /// When lambda was last adjusted.
    last_update: Option<Instant>,
    /// The connection window blocked sending since the last adjustment.
    blocked: bool,
}

impl Default for Blest {
    fn default() -> Self {
        Blest::new()
    }
}

impl Blest {
    pub fn new() -> Self {
        Blest {
            lambda: LAMBDA_INIT,
            last_update: None,
            blocked: false,
        }
    }

    /// The current correction factor.
    pub fn lambda(&self) -> f64 {
        self.lambda
    }

    /// Notes send-window blocking and adjusts lambda once per fast-subflow RTT.
    fn update_lambda(&mut self, input: &SchedInput<'_>, fast_rtt_us: Option<u64>) {
        // Blocked: data waits, some subflow could take it, the connection window not.
        let mss = input.subflows.iter().map(|s| u64::from(s.mss)).max();
        if input.pending > 0
            && input.conn_window < input.pending.min(mss.unwrap_or(1))
            && input
                .subflows
                .iter()
                .any(|s| s.is_available() && s.space() > 0)
        {
            self.blocked = true;
        }
        let Some(rtt) = fast_rtt_us else {
            return;
        };
        match self.last_update {
            None => self.last_update = Some(input.now),
            Some(at) if input.now.total_micros() >= at.total_micros() + rtt => {
                self.lambda = if self.blocked {
                    self.lambda + LAMBDA_UP
                } else {
                    self.lambda - LAMBDA_DOWN
                }
                .clamp(LAMBDA_MIN, LAMBDA_MAX);
                self.blocked = false;
                self.last_update = Some(input.now);
            }
            Some(_) => {}
        }
    }
}

impl Scheduler for Blest {
    fn name(&self) -> &'static str {
        "blest"
    }

    fn schedule(&mut self, input: &SchedInput<'_>) -> Decision {
        let candidates = input.candidates();
        let f = fastest(&candidates);
        self.update_lambda(input, f.and_then(|f| f.srtt).map(|r| r.total_micros()));
        let sendable = input.sendable();
        if sendable == 0 {
            return Decision::wait();
        }
        let (Some(f), Some(s)) = (f, fastest_with_space(&candidates)) else {
            return Decision::wait();
        };
        let send_on_s = Decision::single(s.id, s.space().min(sendable));
        if f.id == s.id {
            return send_on_s;
        }
        let (Some(rtt_f), Some(rtt_s)) = (f.srtt, s.srtt) else {
            return send_on_s;
        };
        let rtts = rtt_s.total_micros() as f64 / rtt_f.total_micros().max(1) as f64;
        let mss_f = f64::from(f.mss.max(1));
        let cwnd_f = f.cwnd as f64 / mss_f;
        let x = mss_f * (cwnd_f + (rtts - 1.0) / 2.0) * rtts;
        let window = input.conn_window.saturating_add(input.conn_in_flight);
        let held_by_s = s.in_flight + u64::from(s.mss);
        let avail = window.saturating_sub(held_by_s) as f64;
        if x * self.lambda > avail {
            tracing::trace!(
                slow = s.id.0,
                fast = f.id.0,
                x,
                avail,
                lambda = self.lambda,
                "blest: slow subflow would block the fast one"
            );
            return Decision::wait();
        }
        send_on_s
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mptcp::SubflowId;
    use crate::sched::SubflowView;
    use crate::sched::tests::{input, subflow};
    use crate::time::Duration;

    /// Fast: 10 ms, 10 segments of 1448, full. Slow: 100 ms (10x), empty.
    fn paths() -> [SubflowView; 2] {
        let mut fast = subflow(1, Some(10));
        fast.in_flight = fast.cwnd;
        [fast, subflow(2, Some(100))]
    }

    fn with_window<'a>(flows: &'a [SubflowView], window: u64, in_flight: u64) -> SchedInput<'a> {
        SchedInput {
            conn_window: window,
            conn_in_flight: in_flight,
            ..input(flows, 1 << 20)
        }
    }

    #[test]
    fn skips_a_ten_times_slower_subflow_when_the_window_is_nearly_full() {
        // rtts = 10: X = 1448 * (10 + 4.5) * 10 = 209_960 bytes. Window 200_000 of
        // which 14_480 in flight (f's): avail = 200_000 - (0 + 1448) = 198_552 < X:
        // skip the slow subflow.
        let mut b = Blest::new();
        let flows = paths();
        assert!(b.schedule(&with_window(&flows, 185_520, 14_480)).is_wait());
        // A window of 220_000: avail = 218_552 >= 209_960: the slow subflow sends.
        assert_eq!(
            b.schedule(&with_window(&flows, 205_520, 14_480)),
            Decision::single(SubflowId(2), 14_480)
        );
    }

    #[test]
    fn the_slow_subflows_own_flight_counts_against_the_window() {
        // Same window of 220_000, but s already has 9 * 1448 = 13_032 in flight: avail
        // = 220_000 - 14_480 = 205_520 < 209_960: skip.
        let mut b = Blest::new();
        let mut flows = paths();
        flows[1].in_flight = 13_032;
        assert!(b.schedule(&with_window(&flows, 205_520, 14_480)).is_wait());
    }

    #[test]
    fn the_fast_subflow_is_used_whenever_it_has_space() {
        let mut b = Blest::new();
        let mut flows = paths();
        flows[0].in_flight = 0;
        assert_eq!(
            b.schedule(&with_window(&flows, 1_000, 0)),
            Decision::single(SubflowId(1), 1_000)
        );
    }

    #[test]
    fn lambda_grows_after_blocking_and_decays_after_clear_rtts() {
        let mut b = Blest::new();
        let flows = paths();
        let at = |ms: u64, window: u64| SchedInput {
            now: Instant::from_millis(ms),
            ..with_window(&flows, window, 14_480)
        };
        // First call: starts the clock. Blocked (window 0 with data waiting and s
        // having space) during the first 10 ms: +0.1 at the next RTT boundary.
        b.schedule(&at(0, 0));
        b.schedule(&at(5, 0));
        b.schedule(&at(10, 1 << 30));
        assert!((b.lambda() - 1.1).abs() < 1e-12, "{}", b.lambda());
        // A clear RTT: -0.01.
        b.schedule(&at(20, 1 << 30));
        assert!((b.lambda() - 1.09).abs() < 1e-12, "{}", b.lambda());
        // Never below the minimum, never above the maximum.
        for ms in (30..3_000).step_by(10) {
            b.schedule(&at(ms, 1 << 30));
        }
        assert_eq!(b.lambda(), LAMBDA_MIN);
        for ms in (3_000..6_000).step_by(10) {
            b.schedule(&at(ms, 0));
        }
        assert_eq!(b.lambda(), LAMBDA_MAX);
        // With lambda = 2 the slow subflow needs avail >= 2 * 209_960.
        assert!(b.schedule(&at(6_001, 205_520)).is_wait());
        let d = b.schedule(&at(6_002, 420_000));
        assert_eq!(d, Decision::single(SubflowId(2), 14_480));
    }

    #[test]
    fn without_rtt_samples_it_falls_back_to_lowest_rtt() {
        let mut b = Blest::new();
        let mut flows = paths();
        flows[1].srtt = None;
        flows[1].rttvar = Duration::ZERO;
        assert_eq!(
            b.schedule(&with_window(&flows, 1_000, 14_480)),
            Decision::single(SubflowId(2), 1_000)
        );
    }
}
