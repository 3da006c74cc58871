//! What the coupled algorithms (LIA, OLIA, BALIA) share: the view of the sibling
//! subflows the coupling sums run over, and a [`CongestionControl`] built on the Reno
//! window ([`RenoWindow`]: slow start, halving, RFC 5681 loss window on timeout, undo)
//! whose congestion-avoidance increase and loss decrease the coupling scales. Each
//! algorithm supplies only its [`Coupling`].
//!
//! The increase is counted like NewReno's (RFC 3465 byte counting: one MSS once a
//! window's worth of bytes has been acknowledged), with each acknowledged byte weighted
//! by `factor = coupled increase / Reno increase` for that ACK. With one subflow the
//! factor is exactly 1 and the window follows NewReno byte for byte. OLIA's factor may
//! be negative (its alpha_r moves window away from the largest paths): then the counter
//! runs down and the window shrinks one MSS per window of weighted bytes.

use core::fmt::Debug;

use super::reno_window::RenoWindow;
use super::{AckEvent, CongestionControl, CongestionEvent, SubflowSnapshot, SubflowsSnapshot};
use crate::time::Instant;

/// One subflow as the coupling sums see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Path {
    /// Index in the snapshot.
    pub index: usize,
    /// Congestion window, bytes.
    pub cwnd: u64,
    pub mss: u32,
    /// Smoothed RTT, microseconds (> 0).
    pub rtt_us: u64,
    /// OLIA's l_r, bytes: max(bytes between the last two losses, bytes since the last
    /// loss).
    pub inter_loss: u64,
}

impl Path {
    /// Window in packets (the papers count in MSS-sized packets).
    pub fn w(&self) -> f64 {
        self.cwnd as f64 / f64::from(self.mss.max(1))
    }

    /// Smoothed RTT, seconds.
    pub fn rtt(&self) -> f64 {
        self.rtt_us as f64 / 1e6
    }
}

/// The subflows the coupling runs over for `subflows.own`: those with an RTT sample
/// and a window, of the same priority as the own subflow (RFC 6356 couples the
/// subflows that carry the traffic; backup subflows carry data only when no regular
/// one can, so a regular subflow never counts a backup and backups couple among
/// themselves). The own subflow is always included when it has an RTT sample.
/// Returns `None` when the own subflow has no RTT sample yet: the caller then grows
/// like Reno.
pub(crate) fn coupled_paths(
    subflows: &SubflowsSnapshot<'_>,
    mut visit: impl FnMut(Path),
) -> Option<usize> {
    let own = subflows.subflows.get(subflows.own)?;
    own.srtt.filter(|r| r.total_micros() > 0)?;
    let mut count = 0;
    for (index, s) in subflows.subflows.iter().enumerate() {
        if s.is_backup != own.is_backup || s.cwnd == 0 {
            continue;
        }
        let Some(rtt) = s.srtt.filter(|r| r.total_micros() > 0) else {
            continue;
        };
        count += 1;
        visit(path_of(index, s, rtt.total_micros()));
    }
    Some(count)
}

fn path_of(index: usize, s: &SubflowSnapshot, rtt_us: u64) -> Path {
    Path {
        index,
        cwnd: s.cwnd,
        mss: s.mss.max(1),
        rtt_us,
        inter_loss: s.bytes_since_last_loss.max(s.bytes_between_last_losses),
    }
}

/// What sets one coupled algorithm apart; the rest of its [`CongestionControl`] is the
/// shared Reno window below (blanket implementation).
pub(crate) trait Coupling: Debug + Send {
    /// The algorithm's name for logs and statistics.
    const NAME: &'static str;

    fn reno_window(&self) -> &RenoWindow<f64>;

    fn reno_window_mut(&mut self) -> &mut RenoWindow<f64>;

    /// The coupled increase of an ACK in congestion avoidance relative to Reno's, for the
    /// own subflow of `subflows` whose window is `cwnd` bytes.
    fn increase_factor(cwnd: u64, subflows: &SubflowsSnapshot<'_>) -> f64;

    /// The fraction of the flight size that becomes the new ssthresh and window on a
    /// congestion event: Reno's 1/2 unless the algorithm decreases otherwise.
    fn kept_fraction(subflows: &SubflowsSnapshot<'_>) -> f64 {
        let _ = subflows;
        0.5
    }
}

impl<C: Coupling> CongestionControl for C {
    fn window(&self) -> u64 {
        self.reno_window().cwnd
    }

    fn ssthresh(&self) -> u64 {
        self.reno_window().ssthresh
    }

    fn on_ack(&mut self, _now: Instant, ack: &AckEvent, subflows: &SubflowsSnapshot<'_>) {
        // RFC 6356 §3: slow start is unchanged from TCP.
        let acked = self.reno_window_mut().slow_start_on_ack(ack);
        if acked == 0 {
            return;
        }
        let win = self.reno_window_mut();
        let factor = C::increase_factor(win.cwnd, subflows);
        win.ca_acked += acked as f64 * factor;
        let cwnd = win.cwnd as f64;
        if win.ca_acked >= cwnd {
            win.ca_acked -= cwnd;
            win.cwnd += win.mss();
        } else if win.ca_acked <= -cwnd {
            win.ca_acked += cwnd;
            win.cwnd = win.cwnd.saturating_sub(win.mss()).max(win.mss());
            // The coupled decrease keeps the subflow in congestion avoidance: without
            // this, cwnd < ssthresh would put it back into slow start at once.
            win.ssthresh = win.ssthresh.min(win.cwnd);
        }
    }

    fn on_congestion_event(
        &mut self,
        _now: Instant,
        event: CongestionEvent,
        prior_in_flight: u64,
        subflows: &SubflowsSnapshot<'_>,
    ) {
        let keep = C::kept_fraction(subflows);
        // RFC 5681 §3.1 equation (4) with the algorithm's decrease in place of 1/2.
        let win = self.reno_window_mut();
        win.reduce(event, (prior_in_flight as f64 * keep) as u64);
        tracing::trace!(?event, keep, cwnd = win.cwnd, "{}: reduced", C::NAME);
    }

    fn on_penalty(&mut self, _now: Instant) {
        self.reno_window_mut().penalize();
    }

    fn on_spurious_congestion(&mut self, _now: Instant) {
        self.reno_window_mut().undo_spurious_reduction();
    }

    fn set_mss(&mut self, mss: u32) {
        self.reno_window_mut().set_mss(mss);
    }

    fn name(&self) -> &'static str {
        C::NAME
    }
}
