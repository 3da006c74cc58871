//! Packet schedulers: which subflow(s) carry the next chunk of the connection's data.
//!
//! The connection calls [`Scheduler::schedule`] with a read-only view of every subflow
//! and of its own send state, and maps the returned bytes onto the chosen subflows
//! ([`crate::mptcp::mapping::TxMappings::push`]). A scheduler owns only its own memory
//! (e.g. round-robin's turn); it must not touch subflows, buffers or timers.
//!
//! The view carries what the published schedulers need, so that BLEST (Ferlin et al.,
//! 2016: the connection-level send window and per-subflow RTT and cwnd), ECF (Lim et al.,
//! 2017: RTT, RTT variance, cwnd, data waiting) and a redundant scheduler (several
//! assignments in one [`Decision`]) fit without changing the trait.

use arrayvec::ArrayVec;

use crate::mptcp::SubflowId;
use crate::time::{Duration, Instant};

mod blest;
mod ecf;
mod redundant;

pub use blest::Blest;
pub use ecf::Ecf;
pub use redundant::Redundant;

/// The most assignments one decision holds: one per subflow for a redundant scheduler,
/// so it is the most subflows a connection may have ([`crate::mptcp::MAX_SUBFLOWS`];
/// Linux caps at 8, MPTCP_SUBFLOWS_MAX, n-diff-ports setups want more).
pub const MAX_ASSIGNMENTS: usize = 32;

/// One subflow as the scheduler sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SubflowView {
    pub id: SubflowId,
    /// Handshake (MP_CAPABLE or the MP_JOIN four-way exchange) complete: it may carry
    /// data (RFC 8684 §3.2: not before the fourth ACK of MP_JOIN).
    pub established: bool,
    /// Backup priority (MP_JOIN B flag or MP_PRIO; RFC 8684 §3.3.8): used only when no
    /// regular subflow is available.
    pub backup: bool,
    /// Suspected broken (RTO storm, no progress): treated as unavailable.
    pub potentially_failed: bool,
    /// Smoothed RTT (RFC 6298), `None` before the first sample.
    pub srtt: Option<Duration>,
    /// RTT variance (RFC 6298 RTTVAR).
    pub rttvar: Duration,
    /// Congestion window, bytes.
    pub cwnd: u64,
    /// Bytes sent and not yet acknowledged on the subflow.
    pub in_flight: u64,
    /// Bytes the peer's window admits beyond what the subflow sent (the subflow-level
    /// view; the connection-level window is in [`SchedInput::conn_window`]).
    pub send_window: u64,
    /// Maximum segment size, bytes.
    pub mss: u32,
}

impl SubflowView {
    /// Established and not suspected broken.
    pub fn is_available(&self) -> bool {
        self.established && !self.potentially_failed
    }

    /// Bytes it could take now: the smaller of its free congestion window and its send
    /// window.
    pub fn space(&self) -> u64 {
        self.cwnd
            .saturating_sub(self.in_flight)
            .min(self.send_window)
    }
}

/// Everything a scheduling decision may use.
#[derive(Clone, Copy, Debug)]
pub struct SchedInput<'a> {
    pub now: Instant,
    /// The subflows, in any order (decisions never depend on it).
    pub subflows: &'a [SubflowView],
    /// Bytes written by the application and not yet handed to any subflow.
    pub pending: u64,
    /// Bytes the peer's connection-level window admits beyond everything sent (RFC 8684
    /// §3.3.4; [`crate::mptcp::data_seq::DataSeq::send_window`]).
    pub conn_window: u64,
    /// Bytes handed to subflows and not yet data-acknowledged: with `conn_window`, the
    /// whole connection-level send window (BLEST's MPTCP send window).
    pub conn_in_flight: u64,
}

impl SchedInput<'_> {
    /// The most any one assignment may carry: data waiting within the connection-level
    /// window.
    pub fn sendable(&self) -> u64 {
        self.pending.min(self.conn_window)
    }

    /// The subflows a scheduler may choose from, by id: the available regular subflows,
    /// or, when none is available, the available backup subflows (RFC 8684 §3.3.8).
    /// "Available" ignores window space: a regular subflow with a full window still
    /// keeps backups idle, as in Linux.
    pub fn candidates(&self) -> ArrayVec<SubflowView, MAX_ASSIGNMENTS> {
        let regular_available = self.subflows.iter().any(|s| s.is_available() && !s.backup);
        let mut pool: ArrayVec<SubflowView, MAX_ASSIGNMENTS> = ArrayVec::new();
        for s in self
            .subflows
            .iter()
            .filter(|s| s.is_available() && s.backup != regular_available)
        {
            if pool.try_push(*s).is_err() {
                // More subflows than a connection may have: keep the lowest ids.
                let worst = pool
                    .iter()
                    .enumerate()
                    .max_by_key(|(_, p)| p.id)
                    .map(|(i, p)| (i, p.id));
                if let Some((i, id)) = worst
                    && s.id < id
                {
                    pool[i] = *s;
                }
            }
        }
        pool.sort_unstable_by_key(|s| s.id);
        pool
    }
}

/// One chunk for one subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub subflow: SubflowId,
    pub bytes: u64,
}

/// What to send next: nothing (wait for an ACK or more data), one assignment, or several
/// carrying the same bytes (a redundant scheduler).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Decision {
    pub assignments: ArrayVec<Assignment, MAX_ASSIGNMENTS>,
}

impl Decision {
    pub fn wait() -> Self {
        Decision::default()
    }

    pub fn single(subflow: SubflowId, bytes: u64) -> Self {
        let mut d = Decision::default();
        d.assignments.push(Assignment { subflow, bytes });
        d
    }

    pub fn is_wait(&self) -> bool {
        self.assignments.is_empty()
    }
}

/// A packet scheduler. Called repeatedly while it returns assignments and the
/// connection has data; it must return only subflows from the input with `bytes` in
/// `1..=min(space, input.sendable())`.
pub trait Scheduler: core::fmt::Debug + Send {
    fn name(&self) -> &'static str;

    /// Assigns pending bytes to subflows, each at most its [`SubflowView::space`].
    /// The connection asks only when some subflow has window space: between ACKs,
    /// with every window full, no assignment could be made.
    fn schedule(&mut self, input: &SchedInput<'_>) -> Decision;

    /// Every subflow should carry every byte the data ACK does not cover yet: before
    /// new data, the connection gives each candidate with window space the bytes
    /// already sent on other subflows that it missed (a subflow whose window was full
    /// when a chunk went out, or one that joined late), oldest first. Only a redundant
    /// scheduler wants this.
    fn carries_every_byte(&self) -> bool {
        false
    }
}

/// Which scheduler a connection uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SchedulerKind {
    #[default]
    LowestRtt,
    RoundRobin {
        /// Full-sized segments per turn.
        segments_per_turn: u32,
    },
    /// Every chunk on every available subflow ([`Redundant`]).
    Redundant,
    /// Blocking estimation (Ferlin et al. 2016, [`Blest`]).
    Blest,
    /// Earliest completion first (Lim et al. 2017, [`Ecf`]).
    Ecf,
}

impl SchedulerKind {
    /// Every kind (round-robin with one segment per turn), in the order `mptcp
    /// --scheduler` lists them.
    pub const ALL: [SchedulerKind; 5] = [
        SchedulerKind::LowestRtt,
        SchedulerKind::RoundRobin {
            segments_per_turn: 1,
        },
        SchedulerKind::Redundant,
        SchedulerKind::Blest,
        SchedulerKind::Ecf,
    ];

    pub fn build(self) -> Box<dyn Scheduler> {
        match self {
            SchedulerKind::LowestRtt => Box::new(LowestRtt),
            SchedulerKind::RoundRobin { segments_per_turn } => {
                Box::new(RoundRobin::new(segments_per_turn))
            }
            SchedulerKind::Redundant => Box::new(Redundant),
            SchedulerKind::Blest => Box::new(Blest::new()),
            SchedulerKind::Ecf => Box::new(Ecf::new()),
        }
    }

    /// The name the built scheduler reports (and [`core::str::FromStr`] accepts).
    pub fn name(self) -> &'static str {
        match self {
            SchedulerKind::LowestRtt => "lowest-rtt",
            SchedulerKind::RoundRobin { .. } => "round-robin",
            SchedulerKind::Redundant => "redundant",
            SchedulerKind::Blest => "blest",
            SchedulerKind::Ecf => "ecf",
        }
    }
}

impl core::fmt::Display for SchedulerKind {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.name())
    }
}

/// A scheduler name that is not one of [`SchedulerKind::ALL`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown scheduler {name:?}: expected one of lowest-rtt, round-robin[:SEGMENTS], redundant, blest, ecf"
)]
pub struct UnknownScheduler {
    pub name: String,
}

impl core::str::FromStr for SchedulerKind {
    type Err = UnknownScheduler;

    /// Case-insensitive. `default` and `minrtt` (Linux's names) mean lowest-RTT;
    /// `round-robin:N` (or `rr:N`) sets N segments per turn (default 1, as Linux).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let unknown = || UnknownScheduler { name: s.to_owned() };
        let lower = s.trim().to_ascii_lowercase();
        let (name, arg) = match lower.split_once(':') {
            Some((name, arg)) => (name, Some(arg)),
            None => (lower.as_str(), None),
        };
        let kind = match name {
            "lowest-rtt" | "lowestrtt" | "minrtt" | "default" => SchedulerKind::LowestRtt,
            "round-robin" | "roundrobin" | "rr" => SchedulerKind::RoundRobin {
                segments_per_turn: match arg {
                    Some(n) => n.parse().ok().filter(|n| *n > 0).ok_or_else(unknown)?,
                    None => 1,
                },
            },
            "redundant" => SchedulerKind::Redundant,
            "blest" => SchedulerKind::Blest,
            "ecf" => SchedulerKind::Ecf,
            _ => return Err(unknown()),
        };
        match (kind, arg) {
            (SchedulerKind::RoundRobin { .. }, _) | (_, None) => Ok(kind),
            (_, Some(_)) => Err(unknown()),
        }
    }
}

/// The candidate with the smallest smoothed RTT (known RTTs before unknown, ties to the
/// lower id), whether or not it has window space: the "fast" subflow of BLEST and ECF.
pub(crate) fn fastest(candidates: &[SubflowView]) -> Option<SubflowView> {
    candidates
        .iter()
        .min_by_key(|s| (s.srtt.is_none(), s.srtt, s.id))
        .copied()
}

/// The candidate lowest-RTT-first would send on: the fastest with window space.
pub(crate) fn fastest_with_space(candidates: &[SubflowView]) -> Option<SubflowView> {
    candidates
        .iter()
        .filter(|s| s.space() > 0)
        .min_by_key(|s| (s.srtt.is_none(), s.srtt, s.id))
        .copied()
}

/// Lowest-RTT-first (the default in Linux and most stacks): fill the candidate with the
/// smallest smoothed RTT that has window space; subflows without an RTT sample come
/// after those with one; ties go to the lower id.
#[derive(Clone, Copy, Debug, Default)]
pub struct LowestRtt;

impl Scheduler for LowestRtt {
    fn name(&self) -> &'static str {
        "lowest-rtt"
    }

    fn schedule(&mut self, input: &SchedInput<'_>) -> Decision {
        let sendable = input.sendable();
        if sendable == 0 {
            return Decision::wait();
        }
        fastest_with_space(&input.candidates()).map_or_else(Decision::wait, |s| {
            Decision::single(s.id, s.space().min(sendable))
        })
    }
}

/// Round-robin: candidates take turns in id order, `segments_per_turn` MSS each; a
/// candidate without window space loses its turn.
#[derive(Clone, Copy, Debug)]
pub struct RoundRobin {
    segments_per_turn: u32,
    last: Option<SubflowId>,
}

impl RoundRobin {
    pub fn new(segments_per_turn: u32) -> Self {
        RoundRobin {
            segments_per_turn: segments_per_turn.max(1),
            last: None,
        }
    }
}

impl Scheduler for RoundRobin {
    fn name(&self) -> &'static str {
        "round-robin"
    }

    fn schedule(&mut self, input: &SchedInput<'_>) -> Decision {
        let sendable = input.sendable();
        if sendable == 0 {
            return Decision::wait();
        }
        let candidates = input.candidates();
        // The first candidate after the last one served, wrapping around.
        let start = self
            .last
            .map_or(0, |last| candidates.partition_point(|s| s.id <= last));
        let chosen = candidates[start..]
            .iter()
            .chain(&candidates[..start])
            .find(|s| s.space() > 0);
        match chosen {
            Some(s) => {
                self.last = Some(s.id);
                let turn = u64::from(self.segments_per_turn) * u64::from(s.mss.max(1));
                Decision::single(s.id, turn.min(s.space()).min(sendable))
            }
            None => Decision::wait(),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn subflow(id: u32, srtt_ms: Option<u64>) -> SubflowView {
        SubflowView {
            id: SubflowId(id),
            established: true,
            backup: false,
            potentially_failed: false,
            srtt: srtt_ms.map(Duration::from_millis),
            rttvar: Duration::from_millis(5),
            cwnd: 14_480,
            in_flight: 0,
            send_window: 65_535,
            mss: 1448,
        }
    }

    pub(crate) fn input(subflows: &[SubflowView], pending: u64) -> SchedInput<'_> {
        SchedInput {
            now: Instant::ZERO,
            subflows,
            pending,
            conn_window: 1 << 20,
            conn_in_flight: 0,
        }
    }

    fn pick(s: &mut dyn Scheduler, subflows: &[SubflowView], pending: u64) -> Option<(u32, u64)> {
        let d = s.schedule(&input(subflows, pending));
        assert!(d.assignments.len() <= 1);
        d.assignments.first().map(|a| (a.subflow.0, a.bytes))
    }

    #[test]
    fn lowest_rtt_fills_the_fastest_subflow_with_space() {
        let mut s = LowestRtt;
        let mut flows = [subflow(3, Some(40)), subflow(1, Some(10)), subflow(2, None)];
        assert_eq!(pick(&mut s, &flows, 100_000), Some((1, 14_480)));
        assert_eq!(pick(&mut s, &flows, 1000), Some((1, 1000)));
        flows[1].in_flight = 14_480; // the fastest is full: the next known RTT
        assert_eq!(pick(&mut s, &flows, 100_000), Some((3, 14_480)));
        flows[0].send_window = 500; // peer window limits too
        assert_eq!(pick(&mut s, &flows, 100_000), Some((3, 500)));
        flows[0].send_window = 0; // then the one without an RTT sample
        assert_eq!(pick(&mut s, &flows, 100_000), Some((2, 14_480)));
    }

    #[test]
    fn lowest_rtt_ties_go_to_the_lower_id() {
        let mut s = LowestRtt;
        let flows = [
            subflow(7, Some(10)),
            subflow(4, Some(10)),
            subflow(9, Some(10)),
        ];
        assert_eq!(pick(&mut s, &flows, 10), Some((4, 10)));
    }

    #[test]
    fn backups_carry_data_only_when_no_regular_subflow_is_available() {
        let mut s = LowestRtt;
        let mut flows = [subflow(1, Some(50)), subflow(2, Some(5))];
        flows[1].backup = true;
        assert_eq!(pick(&mut s, &flows, 10), Some((1, 10)));
        // A full regular subflow keeps the backup idle: wait.
        flows[0].in_flight = flows[0].cwnd;
        assert_eq!(pick(&mut s, &flows, 10), None);
        // Suspected broken: the backup takes over.
        flows[0].potentially_failed = true;
        assert_eq!(pick(&mut s, &flows, 10), Some((2, 10)));
        // Not yet established counts as unavailable too.
        flows[0].potentially_failed = false;
        flows[0].established = false;
        assert_eq!(pick(&mut s, &flows, 10), Some((2, 10)));
    }

    #[test]
    fn nothing_to_send_or_no_connection_window_means_wait() {
        let mut s = LowestRtt;
        let flows = [subflow(1, Some(10))];
        assert_eq!(pick(&mut s, &flows, 0), None);
        let d = s.schedule(&SchedInput {
            conn_window: 0,
            ..input(&flows, 100)
        });
        assert!(d.is_wait());
        let d = s.schedule(&SchedInput {
            conn_window: 300,
            ..input(&flows, 100_000)
        });
        assert_eq!(d, Decision::single(SubflowId(1), 300));
        assert_eq!(pick(&mut s, &[], 100), None);
    }

    #[test]
    fn round_robin_takes_turns_in_id_order_and_skips_full_subflows() {
        let mut s = RoundRobin::new(2);
        let mut flows = [
            subflow(5, Some(1)),
            subflow(2, Some(1)),
            subflow(9, Some(1)),
        ];
        let turns: Vec<_> = (0..4).map(|_| pick(&mut s, &flows, 1 << 20)).collect();
        assert_eq!(
            turns,
            vec![
                Some((2, 2896)),
                Some((5, 2896)),
                Some((9, 2896)),
                Some((2, 2896))
            ]
        );
        flows[0].in_flight = flows[0].cwnd; // id 5 is full: skipped
        assert_eq!(pick(&mut s, &flows, 1 << 20), Some((9, 2896)));
        assert_eq!(pick(&mut s, &flows, 100), Some((2, 100)));
        // The last served subflow disappeared: continue with the next id after it.
        let rest = [subflow(9, Some(1)), subflow(12, Some(1))];
        assert_eq!(pick(&mut s, &rest, 1 << 20), Some((9, 2896)));
        assert_eq!(pick(&mut s, &rest, 1 << 20), Some((12, 2896)));
    }

    #[test]
    fn candidates_cap_at_the_lowest_ids() {
        let flows: Vec<_> = (0..40).rev().map(|i| subflow(i, Some(1))).collect();
        let ids: Vec<u32> = input(&flows, 1)
            .candidates()
            .iter()
            .map(|s| s.id.0)
            .collect();
        assert_eq!(ids, (0..MAX_ASSIGNMENTS as u32).collect::<Vec<_>>());
    }

    #[test]
    fn kinds_parse_from_their_names() {
        for kind in SchedulerKind::ALL {
            assert_eq!(kind.name().parse::<SchedulerKind>(), Ok(kind));
            assert_eq!(kind.build().name(), kind.name());
        }
        assert_eq!("minrtt".parse(), Ok(SchedulerKind::LowestRtt));
        assert_eq!(
            "RR:4".parse(),
            Ok(SchedulerKind::RoundRobin {
                segments_per_turn: 4
            })
        );
        for bad in ["rr:0", "rr:x", "blest:2", "fastest", ""] {
            let err = bad.parse::<SchedulerKind>().expect_err(bad);
            assert_eq!(
                err.to_string(),
                format!(
                    "unknown scheduler {bad:?}: expected one of lowest-rtt, \
                     round-robin[:SEGMENTS], redundant, blest, ecf"
                )
            );
        }
    }

    #[test]
    fn kinds_build_their_scheduler() {
        assert_eq!(SchedulerKind::default().build().name(), "lowest-rtt");
        assert_eq!(
            SchedulerKind::RoundRobin {
                segments_per_turn: 1
            }
            .build()
            .name(),
            "round-robin"
        );
    }
}
