//! Congestion control: one controller per subflow, behind a small trait.
//!
//! Uncoupled algorithms (NewReno, CUBIC) look only at their own subflow. Coupled ones
//! (LIA, OLIA, BALIA; RFC 6356 and successors) also read a snapshot of the sibling
//! subflows that the connection builds for each call: a read-only copy, so no state is
//! shared or mutated between subflows.

use core::fmt::Debug;

use crate::time::{Duration, Instant};

mod balia;
mod coupled;
mod cubic;
mod lia;
mod newreno;
mod olia;
mod reno_window;

#[cfg(test)]
mod fairness_tests;
#[cfg(test)]
mod test_util;

pub use balia::Balia;
pub use cubic::Cubic;
pub use lia::Lia;
pub use newreno::NewReno;
pub use olia::Olia;

/// Which controller a subflow runs; the connection config holds one and builds a fresh
/// controller per subflow.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CcAlgorithm {
    /// RFC 5681 with appropriate byte counting (RFC 3465).
    NewReno,
    /// RFC 9438, the default of Linux, Windows and Apple stacks.
    #[default]
    Cubic,
    /// Coupled: RFC 6356 Linked Increases.
    Lia,
    /// Coupled: Opportunistic Linked Increases (Khalili et al. 2013).
    Olia,
    /// Coupled: Balanced Linked Adaptation (Peng et al. 2016).
    Balia,
}

impl CcAlgorithm {
    /// Every algorithm, in the order `mptcp --cc` lists them.
    pub const ALL: [CcAlgorithm; 5] = [
        CcAlgorithm::NewReno,
        CcAlgorithm::Cubic,
        CcAlgorithm::Lia,
        CcAlgorithm::Olia,
        CcAlgorithm::Balia,
    ];

    /// A controller for a subflow with sender MSS `mss` bytes. `initial_window` overrides
    /// the RFC 6928 initial window (bytes); `None` uses [`initial_window`].
    pub fn build(self, mss: u32, initial_window: Option<u64>) -> Box<dyn CongestionControl> {
        match self {
            CcAlgorithm::NewReno => Box::new(NewReno::new(mss, initial_window)),
            CcAlgorithm::Cubic => Box::new(Cubic::new(mss, initial_window)),
            CcAlgorithm::Lia => Box::new(Lia::new(mss, initial_window)),
            CcAlgorithm::Olia => Box::new(Olia::new(mss, initial_window)),
            CcAlgorithm::Balia => Box::new(Balia::new(mss, initial_window)),
        }
    }

    /// The name the built controller reports (and [`core::str::FromStr`] accepts).
    pub fn name(self) -> &'static str {
        match self {
            CcAlgorithm::NewReno => "newreno",
            CcAlgorithm::Cubic => "cubic",
            CcAlgorithm::Lia => "lia",
            CcAlgorithm::Olia => "olia",
            CcAlgorithm::Balia => "balia",
        }
    }

    /// Reads the sibling subflows: the connection must hand the engine fresh snapshots
    /// before each call ([`crate::tcp::TcpConnection::set_sibling_snapshots`]).
    pub fn is_coupled(self) -> bool {
        match self {
            CcAlgorithm::NewReno | CcAlgorithm::Cubic => false,
            CcAlgorithm::Lia | CcAlgorithm::Olia | CcAlgorithm::Balia => true,
        }
    }
}

impl core::fmt::Display for CcAlgorithm {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A congestion control name that is not one of [`CcAlgorithm::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown congestion control {name:?}: expected one of newreno, cubic, lia, olia, balia")]
pub struct UnknownCcAlgorithm {
    pub name: String,
}

impl core::str::FromStr for CcAlgorithm {
    type Err = UnknownCcAlgorithm;

    /// Case-insensitive; `reno` is taken for NewReno and `coupled` (Linux's name for
    /// LIA) for LIA.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "newreno" | "reno" => Ok(CcAlgorithm::NewReno),
            "cubic" => Ok(CcAlgorithm::Cubic),
            "lia" | "coupled" => Ok(CcAlgorithm::Lia),
            "olia" => Ok(CcAlgorithm::Olia),
            "balia" => Ok(CcAlgorithm::Balia),
            _ => Err(UnknownCcAlgorithm { name: s.to_owned() }),
        }
    }
}

/// The initial window of RFC 6928 §2: `min(10 * MSS, max(2 * MSS, 14600))` bytes.
pub fn initial_window(mss: u32) -> u64 {
    let mss = u64::from(mss);
    (10 * mss).min((2 * mss).max(14_600))
}

/// Slow start with appropriate byte counting (RFC 3465 §2.2): grows `cwnd` by the
/// bytes acknowledged, at most `limit` per ACK ([`AckEvent::slow_start_limit`]), and not
/// past `ssthresh`. Returns the
/// acknowledged bytes left over once `cwnd` reached `ssthresh`, which count towards
/// congestion avoidance (0 when still below it).
pub(crate) fn slow_start(cwnd: &mut u64, ssthresh: u64, bytes_acked: u64, limit: u64) -> u64 {
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
    /// Bytes delivered (acknowledged) since the subflow's last loss event (OLIA's
    /// l2_r).
    pub bytes_since_last_loss: u64,
    /// Bytes delivered between the last two loss events (OLIA's l1_r); 0 before the
    /// second loss.
    pub bytes_between_last_losses: u64,
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
    /// Most bytes one ACK may grow the window by in slow start: RFC 3465's L, 2 MSS.
    /// A sender of TSO super-segments raises it to one super-segment, since receivers
    /// acknowledge a super-segment (or what GRO made of it) with one ACK, as Linux's
    /// do; at 2 MSS per such ACK slow start would hardly grow.
    pub slow_start_limit: u64,
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

    /// The connection penalises this subflow: its data blocks the shared receive window
    /// while a faster subflow could send (Raiciu et al., NSDI 2012, as the out-of-tree
    /// Linux MPTCP did). Halve the window, and ssthresh unless still infinite. Not a
    /// loss: loss history stays as it is.
    fn on_penalty(&mut self, now: Instant);

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_back_and_unknown_names_are_refused_by_name() {
        for alg in CcAlgorithm::ALL {
            assert_eq!(alg.name().parse::<CcAlgorithm>(), Ok(alg));
            assert_eq!(alg.build(1_460, None).name(), alg.name());
            assert_eq!(alg.to_string(), alg.name());
        }
        assert_eq!(" LIA ".parse::<CcAlgorithm>(), Ok(CcAlgorithm::Lia));
        assert_eq!("coupled".parse::<CcAlgorithm>(), Ok(CcAlgorithm::Lia));
        assert_eq!("reno".parse::<CcAlgorithm>(), Ok(CcAlgorithm::NewReno));
        let err = "vegas".parse::<CcAlgorithm>().expect_err("not implemented");
        assert_eq!(
            err.to_string(),
            "unknown congestion control \"vegas\": expected one of newreno, cubic, lia, olia, balia"
        );
        assert_eq!(
            CcAlgorithm::ALL.map(CcAlgorithm::is_coupled),
            [false, false, true, true, true]
        );
    }

    #[test]
    fn penalty_halves_window_and_finite_ssthresh_for_every_algorithm() {
        let own = SubflowSnapshot::default();
        for alg in CcAlgorithm::ALL {
            let mut cc = alg.build(1_000, Some(40_000));
            cc.on_penalty(Instant::ZERO);
            assert_eq!((cc.window(), cc.ssthresh()), (20_000, u64::MAX), "{alg}");
            cc.on_congestion_event(
                Instant::ZERO,
                CongestionEvent::Loss,
                20_000,
                &SubflowsSnapshot::single(&own),
            );
            let (w, s) = (cc.window(), cc.ssthresh());
            cc.on_penalty(Instant::ZERO);
            assert_eq!((cc.window(), cc.ssthresh()), (w / 2, s / 2), "{alg}");
            for _ in 0..10 {
                cc.on_penalty(Instant::ZERO);
            }
            assert_eq!((cc.window(), cc.ssthresh()), (1_000, 2_000), "{alg}");
        }
    }
}
