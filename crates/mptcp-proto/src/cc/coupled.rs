//! What the coupled algorithms (LIA, OLIA, BALIA) share: a Reno-shaped window (slow
//! start, halving, RFC 5681 loss window on timeout, undo) whose congestion-avoidance
//! increase and loss decrease are scaled by the coupling, and the view of the sibling
//! subflows the coupling sums run over.
//!
//! The increase is counted like NewReno's (RFC 3465 byte counting: one MSS once a
//! window's worth of bytes has been acknowledged), with each acknowledged byte weighted
//! by `factor = coupled increase / Reno increase` for that ACK. With one subflow the
//! factor is exactly 1 and the window follows NewReno byte for byte. OLIA's factor may
//! be negative (its alpha_r moves window away from the largest paths): then the counter
//! runs down and the window shrinks one MSS per window of weighted bytes.

use super::{AckEvent, CongestionEvent, SubflowSnapshot, SubflowsSnapshot, initial_window};

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

/// A Reno window with a coupled increase. See the module documentation.
#[derive(Clone, Debug)]
pub(crate) struct RenoWindow {
    pub mss: u32,
    pub cwnd: u64,
    pub ssthresh: u64,
    /// Weighted bytes acknowledged in congestion avoidance since `cwnd` last changed.
    ca_acked: f64,
    configured_iw: Option<u64>,
    pristine: bool,
    in_timeout: bool,
    undo: Option<(u64, u64)>,
}

impl RenoWindow {
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        let mss = mss.max(1);
        RenoWindow {
            mss,
            cwnd: initial_window_bytes.unwrap_or_else(|| initial_window(mss)),
            ssthresh: u64::MAX,
            ca_acked: 0.0,
            configured_iw: initial_window_bytes,
            pristine: true,
            in_timeout: false,
            undo: None,
        }
    }

    fn mss(&self) -> u64 {
        u64::from(self.mss)
    }

    /// An ACK; `factor` (called only in congestion avoidance, with the bytes that count
    /// there) gives the coupled increase relative to Reno's.
    pub fn on_ack(&mut self, ack: &AckEvent, factor: impl FnOnce(&Self) -> f64) {
        self.pristine = false;
        self.in_timeout = false;
        // RFC 6675 / RFC 6582: no growth in recovery; RFC 7661: nor when the
        // application did not fill the window.
        if ack.in_recovery || ack.app_limited || ack.bytes_acked == 0 {
            return;
        }
        let mut acked = ack.bytes_acked;
        if self.cwnd < self.ssthresh {
            // RFC 6356 §3: slow start is unchanged from TCP.
            acked = super::slow_start(&mut self.cwnd, self.ssthresh, acked, ack.slow_start_limit);
            if acked == 0 {
                return;
            }
        }
        let f = factor(self);
        self.ca_acked += acked as f64 * f;
        let cwnd = self.cwnd as f64;
        if self.ca_acked >= cwnd {
            self.ca_acked -= cwnd;
            self.cwnd += self.mss();
        } else if self.ca_acked <= -cwnd {
            self.ca_acked += cwnd;
            self.cwnd = self.cwnd.saturating_sub(self.mss()).max(self.mss());
            // The coupled decrease keeps the subflow in congestion avoidance: without
            // this, cwnd < ssthresh would put it back into slow start at once.
            self.ssthresh = self.ssthresh.min(self.cwnd);
        }
    }

    /// A congestion event. `keep` is the fraction of the flight size that becomes the
    /// new ssthresh and window (1/2 for Reno, LIA and OLIA; BALIA's
    /// 1 - min(alpha, 1.5) / 2).
    pub fn on_congestion_event(&mut self, event: CongestionEvent, prior_in_flight: u64, keep: f64) {
        self.pristine = false;
        self.ca_acked = 0.0;
        let mss = self.mss();
        if event == CongestionEvent::Timeout && self.in_timeout {
            // RFC 5681 §3.1: only the first timeout of a segment sets ssthresh.
            self.cwnd = mss;
            return;
        }
        self.undo = Some((self.cwnd, self.ssthresh));
        // RFC 5681 §3.1 equation (4) with the algorithm's decrease in place of 1/2.
        self.ssthresh = ((prior_in_flight as f64 * keep) as u64).max(2 * mss);
        match event {
            CongestionEvent::Loss | CongestionEvent::Ecn => self.cwnd = self.ssthresh,
            CongestionEvent::Timeout => {
                self.cwnd = mss;
                self.in_timeout = true;
            }
        }
    }

    /// Halves the window and ssthresh (the connection penalises a subflow that blocks
    /// the shared receive window; Raiciu et al., NSDI 2012). Not a loss.
    pub fn penalize(&mut self) {
        self.pristine = false;
        self.ca_acked = 0.0;
        self.cwnd = (self.cwnd / 2).max(self.mss());
        if self.ssthresh != u64::MAX {
            self.ssthresh = (self.ssthresh / 2).max(2 * self.mss());
        }
    }

    pub fn on_spurious_congestion(&mut self) {
        if let Some((cwnd, ssthresh)) = self.undo.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = self.ssthresh.max(ssthresh);
            self.in_timeout = false;
        }
    }

    pub fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        if self.pristine {
            self.cwnd = self
                .configured_iw
                .unwrap_or_else(|| initial_window(self.mss));
        }
        self.cwnd = self.cwnd.max(self.mss());
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use crate::cc::{AckEvent, SubflowSnapshot};
    use crate::time::Duration;

    pub const MSS: u32 = 1_000;

    pub fn ack(bytes: u64) -> AckEvent {
        AckEvent {
            bytes_acked: bytes,
            prior_in_flight: 0,
            rtt_sample: None,
            srtt: None,
            min_rtt: None,
            mss: MSS,
            in_recovery: false,
            app_limited: false,
            slow_start_limit: 2 * u64::from(MSS),
        }
    }

    /// A subflow with `cwnd_segments` * MSS window and `rtt_ms` smoothed RTT.
    pub fn sf(cwnd_segments: u64, rtt_ms: u64) -> SubflowSnapshot {
        SubflowSnapshot {
            cwnd: cwnd_segments * u64::from(MSS),
            srtt: Some(Duration::from_millis(rtt_ms)),
            mss: MSS,
            ..SubflowSnapshot::default()
        }
    }
}
