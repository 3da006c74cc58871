//! The Reno-shaped window that NewReno and the coupled algorithms (LIA, OLIA, BALIA)
//! share: RFC 5681 slow start with RFC 3465 byte counting, the reduction on a congestion
//! event, the RFC 5681 loss window on timeout, the undo of a spurious reduction, the
//! penalty halving, and an initial window that follows the MSS until anything happens.
//!
//! What differs between the algorithms stays with each of them: how acknowledged bytes
//! grow the window in congestion avoidance (counted in `Counter`: whole bytes for
//! NewReno, bytes weighted by the coupling for the coupled ones) and how much of the
//! flight a congestion event keeps.

use super::{AckEvent, CongestionEvent, initial_window, slow_start};

#[derive(Clone, Debug)]
pub(crate) struct RenoWindow<Counter> {
    pub mss: u32,
    pub cwnd: u64,
    pub ssthresh: u64,
    /// Bytes acknowledged in congestion avoidance since `cwnd` last changed (RFC 3465
    /// §2.1), as the algorithm counts them; reset by every reduction.
    pub ca_acked: Counter,
    /// The configured initial window, if it overrides RFC 6928.
    configured_iw: Option<u64>,
    /// Nothing has happened yet, so an MSS change may still recompute the initial window.
    pristine: bool,
    /// The retransmission timer fired and no new data has been acknowledged since.
    in_timeout: bool,
    /// `(cwnd, ssthresh)` before the last congestion event, for undoing it.
    undo: Option<(u64, u64)>,
}

impl<Counter: Default> RenoWindow<Counter> {
    /// `initial_window_bytes` overrides the RFC 6928 initial window.
    pub fn new(mss: u32, initial_window_bytes: Option<u64>) -> Self {
        let mss = mss.max(1);
        RenoWindow {
            mss,
            cwnd: initial_window_bytes.unwrap_or_else(|| initial_window(mss)),
            ssthresh: u64::MAX,
            ca_acked: Counter::default(),
            configured_iw: initial_window_bytes,
            pristine: true,
            in_timeout: false,
            undo: None,
        }
    }

    pub fn mss(&self) -> u64 {
        u64::from(self.mss)
    }

    /// An ACK of new data: grows the window in slow start and returns the acknowledged
    /// bytes that count towards congestion avoidance (0 when none do), for the
    /// algorithm's own increase.
    pub fn slow_start_on_ack(&mut self, ack: &AckEvent) -> u64 {
        self.pristine = false;
        self.in_timeout = false;
        // RFC 6675 / RFC 6582: the window does not grow during recovery; RFC 7661: nor
        // on ACKs for a flight the application did not fill.
        if ack.in_recovery || ack.app_limited || ack.bytes_acked == 0 {
            return 0;
        }
        if self.cwnd < self.ssthresh {
            slow_start(
                &mut self.cwnd,
                self.ssthresh,
                ack.bytes_acked,
                ack.slow_start_limit,
            )
        } else {
            ack.bytes_acked
        }
    }

    /// A congestion event; `reduced_flight` is the part of the flight size the
    /// algorithm keeps (half of it for Reno), which becomes ssthresh and, unless the
    /// event is a timeout, the window.
    pub fn reduce(&mut self, event: CongestionEvent, reduced_flight: u64) {
        self.pristine = false;
        self.ca_acked = Counter::default();
        let mss = self.mss();
        if event == CongestionEvent::Timeout && self.in_timeout {
            // RFC 5681 §3.1: ssthresh is set only when a segment first times out; a
            // backed-off retransmission timing out again leaves it alone.
            self.cwnd = mss;
            return;
        }
        self.undo = Some((self.cwnd, self.ssthresh));
        // RFC 5681 §3.1 equation (4); RFC 3168 §6.1.2 reacts to ECN the same way.
        self.ssthresh = reduced_flight.max(2 * mss);
        match event {
            CongestionEvent::Loss | CongestionEvent::Ecn => self.cwnd = self.ssthresh,
            CongestionEvent::Timeout => {
                // RFC 5681 §3.1: the loss window is one full-sized segment.
                self.cwnd = mss;
                self.in_timeout = true;
            }
        }
    }

    /// Halves the window and ssthresh (the connection penalises a subflow that blocks
    /// the shared receive window; Raiciu et al., NSDI 2012). Not a loss.
    pub fn penalize(&mut self) {
        self.pristine = false;
        self.ca_acked = Counter::default();
        self.cwnd = (self.cwnd / 2).max(self.mss());
        if self.ssthresh != u64::MAX {
            self.ssthresh = (self.ssthresh / 2).max(2 * self.mss());
        }
    }

    /// RFC 4015 §3 / RFC 5682: restores the window from before the false alarm; any
    /// growth since then is kept.
    pub fn undo_spurious_reduction(&mut self) {
        if let Some((cwnd, ssthresh)) = self.undo.take() {
            self.cwnd = self.cwnd.max(cwnd);
            self.ssthresh = self.ssthresh.max(ssthresh);
            self.in_timeout = false;
        }
    }

    pub fn set_mss(&mut self, mss: u32) {
        self.mss = mss.max(1);
        // Before any ACK the initial window still follows the (negotiated) MSS.
        if self.pristine {
            self.cwnd = self
                .configured_iw
                .unwrap_or_else(|| initial_window(self.mss));
        }
        self.cwnd = self.cwnd.max(self.mss());
    }
}
