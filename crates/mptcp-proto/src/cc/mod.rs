//! Congestion control: one controller per subflow, behind a small trait.
//!
//! Uncoupled algorithms (NewReno, CUBIC) look only at their own subflow. Coupled ones
//! (LIA, OLIA, BALIA; RFC 6356 and successors) also read a snapshot of the sibling
//! subflows that the connection builds for each call: a read-only copy, so no state is
//! shared or mutated between subflows.

use core::fmt::Debug;

use crate::time::{Duration, Instant};

mod cubic;
mod newreno;

#[cfg(test)]
mod fairness_tests;

pub use cubic::Cubic;
pub use newreno::NewReno;

/// Which controller a subflow runs; the connection config holds one and builds a fresh
/// controller per subflow. Coupled algorithms (LIA, OLIA, BALIA) join as new variants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CcAlgorithm {
    /// RFC 5681 with appropriate byte counting (RFC 3465).
    NewReno,
    /// RFC 9438, the default of Linux, Windows and Apple stacks.
    #[default]
    Cubic,
}

impl CcAlgorithm {
    /// A controller for a subflow with sender MSS `mss` bytes. `initial_window` overrides
    /// the RFC 6928 initial window (bytes); `None` uses [`initial_window`].
    pub fn build(self, mss: u32, initial_window: Option<u64>) -> Box<dyn CongestionControl> {
        match self {
            CcAlgorithm::NewReno => Box::new(NewReno::new(mss, initial_window)),
            CcAlgorithm::Cubic => Box::new(Cubic::new(mss, initial_window)),
        }
    }

    /// The name the built controller reports.
    pub fn name(self) -> &'static str {
        match self {
            CcAlgorithm::NewReno => "newreno",
            CcAlgorithm::Cubic => "cubic",
        }
    }
}

/// The initial window of RFC 6928 §2: `min(10 * MSS, max(2 * MSS, 14600))` bytes.
pub fn initial_window(mss: u32) -> u64 {
    let mss = u64::from(mss);
    (10 * mss).min((2 * mss).max(14_600))
}

/// Slow start with appropriate byte counting (RFC 3465 §2.2, L = 2): grows `cwnd` by the
/// bytes acknowledged, at most 2 MSS per ACK, and not past `ssthresh`. Returns the
/// acknowledged bytes left over once `cwnd` reached `ssthresh`, which count towards
/// congestion avoidance (0 when still below it).
pub(crate) fn slow_start(cwnd: &mut u64, ssthresh: u64, bytes_acked: u64, mss: u32) -> u64 {
    let limit = 2 * u64::from(mss);
    let grow = bytes_acked.min(limit).min(ssthresh.saturating_sub(*cwnd));
    *cwnd += grow;
    if *cwnd < ssthresh {
        0
    } else {
        bytes_acked - grow
    }
}

/// What one subflow looks like to a coupled controller at the moment of a call.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct SubflowSnapshot {
    /// Congestion window in bytes.
    pub cwnd: u64,
    /// Smoothed RTT, or `None` before the first sample.
    pub srtt: Option<Duration>,
    /// Sender maximum segment size in bytes.
    pub mss: u32,
    /// Bytes sent and not yet acknowledged on this subflow.
    pub bytes_in_flight: u64,
    /// Bytes delivered (acknowledged) since the subflow's last loss event.
    pub bytes_since_last_loss: u64,
    /// Loss events so far.
    pub loss_events: u64,
    /// Backup subflows do not count towards the coupled increase.
    pub is_backup: bool,
}

/// All subflows of one connection; `own` indexes the subflow the call is for.
#[derive(Clone, Copy, Debug)]
pub struct SubflowsSnapshot<'a> {
    pub own: usize,
    pub subflows: &'a [SubflowSnapshot],
}

impl<'a> SubflowsSnapshot<'a> {
    /// A connection with a single subflow (plain TCP).
    pub fn single(own: &'a SubflowSnapshot) -> Self {
        SubflowsSnapshot {
            own: 0,
            subflows: core::slice::from_ref(own),
        }
    }
}

/// An acknowledgement that advanced the subflow's cumulative or selective ACK.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AckEvent {
    /// Newly acknowledged bytes (cumulatively or by SACK).
    pub bytes_acked: u64,
    /// Bytes in flight before this ACK was processed.
    pub prior_in_flight: u64,
    /// The RTT sample this ACK produced, if any (Karn's rule already applied).
    pub rtt_sample: Option<Duration>,
    /// Smoothed RTT after this ACK.
    pub srtt: Option<Duration>,
    /// Smallest RTT seen on the subflow.
    pub min_rtt: Option<Duration>,
    /// Sender MSS in bytes.
    pub mss: u32,
    /// The sender is in loss recovery (RFC 6675): windows must not grow.
    pub in_recovery: bool,
    /// The sender had less data than the window allowed (RFC 7661): do not grow on it.
    pub app_limited: bool,
}

/// Why the window shrinks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CongestionEvent {
    /// Loss detected by duplicate ACKs, SACK or RACK: enter fast recovery.
    Loss,
    /// An ECN congestion-experienced echo (RFC 3168).
    Ecn,
    /// The retransmission timer expired: collapse to the loss window (RFC 5681 §3.1).
    Timeout,
}

/// A per-subflow congestion controller.
pub trait CongestionControl: Debug + Send {
    /// Congestion window in bytes.
    fn window(&self) -> u64;

    /// Slow-start threshold in bytes (`u64::MAX` until the first loss).
    fn ssthresh(&self) -> u64;

    /// Bytes were acknowledged. Called once per ACK that acknowledges new data.
    fn on_ack(&mut self, now: Instant, ack: &AckEvent, subflows: &SubflowsSnapshot<'_>);

    /// A congestion signal; called once per loss event (not once per lost segment).
    fn on_congestion_event(
        &mut self,
        now: Instant,
        event: CongestionEvent,
        prior_in_flight: u64,
        subflows: &SubflowsSnapshot<'_>,
    );

    /// Loss recovery ended (the recovery point was cumulatively acknowledged).
    fn on_recovery_exit(&mut self, now: Instant) {
        let _ = now;
    }

    /// A retransmission turned out to be spurious (e.g. D-SACK or timestamps):
    /// implementations may restore the window from before the congestion event.
    fn on_spurious_congestion(&mut self, now: Instant) {
        let _ = now;
    }

    /// Sender MSS changed (negotiation or path MTU).
    fn set_mss(&mut self, mss: u32);

    /// Algorithm name for logs and statistics ("newreno", "cubic", "lia", ...).
    fn name(&self) -> &'static str;
}
