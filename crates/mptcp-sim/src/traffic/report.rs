//! What a run produced: per-flow outcomes (with MPTCP's view of each MPTCP flow), link
//! figures, and the summary table the `mptcp` command prints.

use std::fmt;
use std::net::SocketAddr;

use mptcp_proto::mptcp::{
    ConnMode, ConnStats, FallbackReason, MptcpEvent, SubflowId, SubflowStats,
};
use mptcp_proto::tcp::TcpStats;
use mptcp_proto::{Duration, Instant};

use crate::scenario::FlowKind;
use crate::sim::Direction;

use super::host::MptcpLog;
use super::summary::Stall;

/// The outcome of one flow.
#[derive(Clone, Debug)]
pub struct FlowReport {
    pub label: String,
    pub kind: FlowKind,
    pub from: String,
    /// The (initial) subflow's local address, once the flow started.
    pub local: Option<SocketAddr>,
    pub remote: SocketAddr,
    pub requested: Option<u64>,
    /// Bytes the sending application wrote.
    pub sent: u64,
    /// Bytes the receiving application read.
    pub delivered: u64,
    /// The longest time the receiving application got no new data while the
    /// transfer was unfinished.
    pub longest_stall: Stall,
    /// When the receiving application read the first byte.
    pub first_byte: Option<Instant>,
    pub start: Instant,
    /// From the start to the receiver seeing the FIN after the last byte.
    pub completion: Option<Duration>,
    /// Application-level goodput over the flow's lifetime, bits per second.
    pub goodput_bps: f64,
    /// The first stream offset with a wrong byte, if any.
    pub corrupt_at: Option<u64>,
    pub outcome: String,
    /// TCP counters of the sender's connection (for MPTCP, of its first live subflow;
    /// see [`FlowReport::mptcp`]).
    pub sender_stats: Option<TcpStats>,
    /// MPTCP flows: what the connection did at both ends.
    pub mptcp: Option<MptcpReport>,
}

impl FlowReport {
    /// Delivered everything asked for, intact, and finished.
    pub fn is_complete_and_intact(&self) -> bool {
        self.corrupt_at.is_none()
            && self.completion.is_some()
            && self.requested.is_none_or(|r| r == self.delivered)
    }
}

/// One MPTCP flow: mode, subflows (live and closed) and reinjection, at both ends.
#[derive(Clone, Debug)]
pub struct MptcpReport {
    /// The sender's connection mode at the end (`None` if it never existed).
    pub mode: Option<ConnMode>,
    /// The receiver's.
    pub peer_mode: Option<ConnMode>,
    /// Why either end fell back to TCP, if it did (the sender's reason first).
    pub fallback: Option<FallbackReason>,
    pub checksums: bool,
    pub subflows_opened: u64,
    /// Byte ranges the sender reinjected onto another subflow.
    pub reinjections: u64,
    /// Bytes the sender mapped a second time onto another subflow.
    pub reinjected_bytes: u64,
    /// Bytes that reached the receiver ahead of a gap in the data sequence and waited
    /// for the bytes before them: reordering across subflows.
    pub out_of_order_bytes: u64,
    /// The sender's subflows, closed ones included, by id.
    pub subflows: Vec<SubflowStats>,
    /// Which of `subflows` are closed (their figures are final).
    pub closed_subflows: Vec<SubflowId>,
    /// The receiver's subflows, closed ones included, by id.
    pub peer_subflows: Vec<SubflowStats>,
    /// The sender's MPTCP events with their times.
    pub events: Vec<(Instant, MptcpEvent)>,
    /// The receiver's.
    pub peer_events: Vec<(Instant, MptcpEvent)>,
}

impl MptcpReport {
    pub(super) fn new(
        stats: Option<ConnStats>,
        log: &MptcpLog,
        peer_stats: Option<ConnStats>,
        peer: Option<&MptcpLog>,
    ) -> MptcpReport {
        let stats = stats.or_else(|| log.stats.clone());
        let peer_stats = peer_stats.as_ref();
        MptcpReport {
            mode: stats.as_ref().map(|s| s.mode),
            peer_mode: peer_stats.map(|s| s.mode),
            fallback: log.fallback.or(peer.and_then(|p| p.fallback)),
            checksums: stats.as_ref().is_some_and(|s| s.checksums),
            subflows_opened: stats.as_ref().map_or(0, |s| s.subflows_opened),
            reinjections: stats.as_ref().map_or(0, |s| s.reinjections),
            reinjected_bytes: stats.as_ref().map_or(0, |s| {
                s.subflows
                    .iter()
                    .chain(&s.closed_subflows)
                    .map(|sf| sf.bytes_reinjected)
                    .sum()
            }),
            out_of_order_bytes: peer_stats
                .or_else(|| peer.and_then(|p| p.stats.as_ref()))
                .map_or(0, |s| s.out_of_order_bytes),
            subflows: stats.as_ref().map(all_subflows).unwrap_or_default(),
            closed_subflows: stats.as_ref().map_or_else(Vec::new, |s| {
                s.closed_subflows.iter().map(|sf| sf.id).collect()
            }),
            peer_subflows: peer_stats.map(all_subflows).unwrap_or_default(),
            events: log.events.clone(),
            peer_events: peer.map(|p| p.events.clone()).unwrap_or_default(),
        }
    }

    /// Subflows of the sender that carried data at the MPTCP level at some point.
    pub fn subflows_up(&self) -> usize {
        self.events
            .iter()
            .filter(|(_, e)| matches!(e, MptcpEvent::SubflowUp { .. }))
            .count()
    }

    /// How many of the sender's and the receiver's events match `pred`.
    pub fn count_events(&self, pred: impl Fn(&MptcpEvent) -> bool) -> (usize, usize) {
        (
            self.events.iter().filter(|(_, e)| pred(e)).count(),
            self.peer_events.iter().filter(|(_, e)| pred(e)).count(),
        )
    }
}

/// Live and closed subflows by id.
fn all_subflows(stats: &ConnStats) -> Vec<SubflowStats> {
    let mut all: Vec<SubflowStats> = stats
        .closed_subflows
        .iter()
        .chain(&stats.subflows)
        .copied()
        .collect();
    all.sort_by_key(|s| s.id.0);
    all
}

/// One direction of one link.
#[derive(Clone, Debug)]
pub struct LinkReport {
    pub name: String,
    pub direction: Direction,
    pub delivered_bytes: u64,
    pub drops: u64,
    /// Delivered bits over the link's nominal rate times the run time (0 if unlimited).
    pub utilization: f64,
    /// Most bytes ever queued in this direction (see [`crate::LinkStats`]).
    pub peak_queue_bytes: usize,
}

/// Everything a run produced that a summary needs.
#[derive(Clone, Debug)]
pub struct RunReport {
    pub seed: u64,
    pub end: Instant,
    pub flows: Vec<FlowReport>,
    pub links: Vec<LinkReport>,
}

impl RunReport {
    pub fn all_flows_intact(&self) -> bool {
        self.flows.iter().all(FlowReport::is_complete_and_intact)
    }
}

fn mode_name(mode: Option<ConnMode>) -> &'static str {
    match mode {
        None => "-",
        Some(ConnMode::Handshake) => "handshake",
        Some(ConnMode::Mptcp) => "mptcp",
        Some(ConnMode::Fallback) => "fallback",
    }
}

fn opt_duration(d: Option<Duration>) -> String {
    d.map_or("-".into(), |d| format!("{d:?}"))
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "seed {}, simulated {:?}", self.seed, self.end)?;
        writeln!(
            f,
            "{:<7} {:<5} {:<22} {:>12} {:>10} {:>12} {:>8} {:>5} {:>9}  outcome",
            "flow", "kind", "to", "bytes", "time", "goodput", "retrans", "RTOs", "srtt"
        )?;
        for flow in &self.flows {
            // MPTCP: RTOs over every subflow; retransmission counts and RTTs are per
            // path, in the subflow table below.
            let (retrans, rtos, srtt) = match (&flow.mptcp, flow.sender_stats.as_ref()) {
                (Some(m), _) => (
                    "-".into(),
                    m.subflows
                        .iter()
                        .map(|s| s.rto_count)
                        .sum::<u64>()
                        .to_string(),
                    "-".into(),
                ),
                (None, Some(s)) => (
                    s.retransmits.to_string(),
                    s.rto_count.to_string(),
                    opt_duration(s.srtt),
                ),
                (None, None) => ("-".into(), "-".into(), "-".into()),
            };
            writeln!(
                f,
                "{:<7} {:<5} {:<22} {:>12} {:>10} {:>12} {:>8} {:>5} {:>9}  {}",
                flow.label,
                match flow.kind {
                    FlowKind::Tcp => "tcp",
                    FlowKind::Mptcp => "mptcp",
                },
                flow.remote.to_string(),
                flow.delivered,
                opt_duration(flow.completion),
                format_rate(flow.goodput_bps),
                retrans,
                rtos,
                srtt,
                flow.outcome,
            )?;
        }
        if self.flows.iter().any(|f| f.mptcp.is_some()) {
            writeln!(f)?;
            writeln!(
                f,
                "{:<7} {:<9} {:<9} {:>8} {:>12} {:>11} {:>12} {:>9}  fallback",
                "mptcp",
                "mode",
                "peer",
                "subflows",
                "reinjected",
                "reinj.range",
                "out of order",
                "checksums"
            )?;
            for flow in &self.flows {
                let Some(m) = &flow.mptcp else { continue };
                writeln!(
                    f,
                    "{:<7} {:<9} {:<9} {:>8} {:>12} {:>11} {:>12} {:>9}  {}",
                    flow.label,
                    mode_name(m.mode),
                    mode_name(m.peer_mode),
                    m.subflows_opened,
                    m.reinjected_bytes,
                    m.reinjections,
                    m.out_of_order_bytes,
                    if m.checksums { "on" } else { "off" },
                    m.fallback.map_or("-".into(), |r| format!("{r:?}")),
                )?;
            }
            writeln!(f)?;
            writeln!(
                f,
                "{:<10} {:<44} {:<11} {:>11} {:>9} {:>10} {:>11} {:>9} {:>9} {:>4}",
                "subflow",
                "local -> remote",
                "state",
                "sent",
                "retrans",
                "reinjected",
                "received",
                "srtt",
                "cwnd",
                "RTOs"
            )?;
            for flow in &self.flows {
                let Some(m) = &flow.mptcp else { continue };
                for sf in &m.subflows {
                    // The receiver's bytes on the same path (its local is our remote).
                    let received = m
                        .peer_subflows
                        .iter()
                        .filter(|p| p.local == sf.remote && p.remote == sf.local)
                        .map(|p| p.bytes_received)
                        .sum::<u64>();
                    writeln!(
                        f,
                        "{:<10} {:<44} {:<11} {:>11} {:>9} {:>10} {:>11} {:>9} {:>9} {:>4}",
                        format!("{}/sf{}", flow.label, sf.id.0),
                        format!("{} -> {}", sf.local, sf.remote),
                        format!("{:?}{}", sf.state, if sf.stale { "*" } else { "" }),
                        sf.bytes_sent,
                        sf.bytes_retransmitted,
                        sf.bytes_reinjected,
                        received,
                        opt_duration(sf.srtt),
                        sf.cwnd,
                        sf.rto_count,
                    )?;
                }
            }
        }
        writeln!(f)?;
        write!(f, "{}", self.link_table())
    }
}

/// The link table of a [`RunReport`]: bytes, drops and utilisation per direction.
pub struct LinkTable<'a>(&'a RunReport);

impl RunReport {
    pub fn link_table(&self) -> LinkTable<'_> {
        LinkTable(self)
    }
}

impl fmt::Display for LinkTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{:<16} {:<5} {:>14} {:>8} {:>11}",
            "link", "dir", "delivered", "drops", "utilization"
        )?;
        for link in &self.0.links {
            if link.delivered_bytes == 0 && link.drops == 0 {
                continue;
            }
            writeln!(
                f,
                "{:<16} {:<5} {:>14} {:>8} {:>10.1}%",
                link.name,
                match link.direction {
                    Direction::AToB => "a->b",
                    Direction::BToA => "b->a",
                },
                link.delivered_bytes,
                link.drops,
                link.utilization * 100.0
            )?;
        }
        Ok(())
    }
}

/// "12.3 Mbit/s" and friends.
pub fn format_rate(bps: f64) -> String {
    if bps >= 1e9 {
        format!("{:.2} Gbit/s", bps / 1e9)
    } else if bps >= 1e6 {
        format!("{:.2} Mbit/s", bps / 1e6)
    } else if bps >= 1e3 {
        format!("{:.1} kbit/s", bps / 1e3)
    } else {
        format!("{bps:.0} bit/s")
    }
}
