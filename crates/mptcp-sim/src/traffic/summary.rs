//! The experiment summary of a run (`mptcp sim run`, `mptcp sim compare`): per
//! connection goodput, bytes delivered against bytes sent, the longest stall the
//! application saw and reinjected bytes; per subflow bytes, share and RTTs. It
//! serialises to JSON with stable field names (the schema is documented on each
//! struct) and prints as a table.
//!
//! Per-subflow bytes are counted by the network, where each subflow's packets reach
//! the receiving host, each sequence byte once (see [`crate::FlowStats`]): the same
//! figure the per-subflow goodput series (`flow/{src}->{dst}/goodput_bps`) plots.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;

use mptcp_proto::mptcp::{ConnMode, SubflowStats};
use mptcp_proto::{Duration, Instant};
use serde::Serialize;

use crate::packet::FlowId;
use crate::record::FlowStats;
use crate::scenario::FlowKind;

use super::report::{FlowReport, RunReport};
use super::run::MptcpOverrides;

/// When a receiving application got new in-order data, reduced to what stall
/// analysis needs: the first and last delivery and the longest gap between two.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryGaps {
    first: Option<Instant>,
    last: Option<Instant>,
    /// The longest gap between consecutive deliveries, and when it began.
    longest: Option<(Duration, Instant)>,
}

/// The longest time without new in-order data while a transfer was unfinished.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stall {
    pub duration: Duration,
    /// When it began (the last delivery before it, or the flow's start).
    pub from: Instant,
}

impl DeliveryGaps {
    /// The application read new bytes at `now` (times never go backwards).
    pub fn on_delivery(&mut self, now: Instant) {
        if let Some(last) = self.last {
            let gap = now - last;
            if self.longest.is_none_or(|(longest, _)| gap > longest) {
                self.longest = Some((gap, last));
            }
        }
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    pub fn first(&self) -> Option<Instant> {
        self.first
    }

    pub fn last(&self) -> Option<Instant> {
        self.last
    }

    /// The longest stall of a transfer that began at `start`: the longest gap
    /// between deliveries and, if the transfer was still unfinished at
    /// `unfinished_at`, the time since the last delivery. A finished transfer's stall
    /// ends with its last byte (waiting for the FIN does not count). The wait for
    /// the first byte is not a stall but set-up (a lost SYN costs a second whatever
    /// the scheduler does; see [`DeliveryGaps::first`]), unless nothing arrived at
    /// all: then the whole transfer was one.
    pub fn longest_stall(&self, start: Instant, unfinished_at: Option<Instant>) -> Stall {
        let mut candidates = Vec::with_capacity(2);
        if self.first.is_none() {
            return Stall {
                duration: unfinished_at.map_or(Duration::ZERO, |end| end - start),
                from: start,
            };
        }
        if let Some((duration, from)) = self.longest {
            candidates.push(Stall { duration, from });
        }
        if let (Some(end), Some(last)) = (unfinished_at, self.last) {
            candidates.push(Stall {
                duration: end - last,
                from: last,
            });
        }
        // The earliest of equally long stalls, so the report does not depend on the
        // order the candidates were listed in.
        candidates
            .into_iter()
            .min_by_key(|s| (std::cmp::Reverse(s.duration), s.from))
            .unwrap_or_default()
    }
}

/// Each value's share of the total in percent (all zero when the total is zero).
pub fn shares(values: &[u64]) -> Vec<f64> {
    let total: u64 = values.iter().sum();
    values
        .iter()
        .map(|&v| {
            if total == 0 {
                0.0
            } else {
                v as f64 * 100.0 / total as f64
            }
        })
        .collect()
}

/// One run, summarised. JSON fields:
///
/// - `scenario`, `seed`, `simulated_s` (virtual seconds the run lasted);
/// - `scheduler`, `cc`, `path_manager`: the overrides in force (`null`: each host's
///   own settings from the scenario);
/// - `total_goodput_mbps`: the sum of the connections' goodputs;
/// - `bytes_sent`, `bytes_delivered`: summed over the connections; `matched`: every
///   connection delivered exactly the bytes its application wrote, unaltered;
/// - `longest_stall_ms`: the longest stall of any connection;
/// - `reinjected_bytes`: summed over the MPTCP connections;
/// - `connections`: one [`ConnSummary`] each.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub scenario: String,
    pub seed: u64,
    pub simulated_s: f64,
    pub scheduler: Option<String>,
    pub cc: Option<String>,
    pub path_manager: Option<String>,
    pub total_goodput_mbps: f64,
    pub bytes_sent: u64,
    pub bytes_delivered: u64,
    pub matched: bool,
    pub longest_stall_ms: f64,
    pub reinjected_bytes: u64,
    pub connections: Vec<ConnSummary>,
}

/// One connection (a scenario flow). JSON fields:
///
/// - `flow` (`flow0`, `flow1`, ... in scenario order), `kind` (`mptcp` or `tcp`),
///   `from` (host name), `to` (address and port);
/// - `mode`: `mptcp`, `fallback` (to plain TCP) or `handshake` for MPTCP flows,
///   `null` for TCP ones;
/// - `bytes_sent`: what the sending application wrote; `bytes_delivered`: what the
///   receiving one read; `matched`: the two are equal and every byte was right;
///   `complete`: the transfer ended with the FIN;
/// - `completion_s`: from the flow's start to the receiver seeing the FIN (`null` if
///   it did not); `first_byte_ms`: from the start to the first byte read (`null`:
///   none);
/// - `goodput_mbps`: bytes delivered over the transfer's time (to the end of the run
///   if unfinished), Mbit/s;
/// - `longest_stall_ms`: the longest interval in which the application got no new
///   in-order data while the transfer was unfinished, from its first byte on (the
///   wait for the first byte is `first_byte_ms`); `longest_stall_start_s`: when it
///   began;
/// - `reinjected_bytes`: bytes the sender mapped a second time onto another subflow;
/// - `out_of_order_bytes`: bytes that reached the receiver ahead of a gap in the data
///   sequence and waited for the bytes before them (reordering across subflows; 0 for
///   TCP);
/// - `subflows`: one [`SubflowSummary`] each (a TCP connection has one).
#[derive(Clone, Debug, Serialize)]
pub struct ConnSummary {
    pub flow: String,
    pub kind: &'static str,
    pub from: String,
    pub to: String,
    pub mode: Option<&'static str>,
    pub bytes_sent: u64,
    pub bytes_delivered: u64,
    pub matched: bool,
    pub complete: bool,
    pub completion_s: Option<f64>,
    pub first_byte_ms: Option<f64>,
    pub goodput_mbps: f64,
    pub longest_stall_ms: f64,
    pub longest_stall_start_s: f64,
    pub reinjected_bytes: u64,
    pub out_of_order_bytes: u64,
    pub subflows: Vec<SubflowSummary>,
}

/// One subflow, as its sender saw it at the end. JSON fields:
///
/// - `id` (the sender's subflow id, 0 for a TCP connection), `local`, `remote`
///   (address:port at the sender), `backup` (MP_PRIO / MP_JOIN backup flag);
/// - `state` at the end: `up`, `stale`, `joining`, `closed`, `failed` (closed
///   without completing its handshake), `tcp` (a plain TCP connection);
/// - `bytes`: payload bytes that reached the receiver on this subflow, each sequence
///   byte once (reinjected copies count on each subflow that carried them);
///   `share_pct`: `bytes` over all the connection's subflows, percent;
/// - `srtt_ms`, `min_rtt_ms`: smoothed and smallest RTT (`null` before a sample);
/// - `cwnd_bytes`: the last congestion window; `retransmitted_bytes`,
///   `reinjected_bytes`, `rtos`: the sender's counters.
#[derive(Clone, Debug, Serialize)]
pub struct SubflowSummary {
    pub id: u32,
    pub local: String,
    pub remote: String,
    /// At the end of the run (see [`SubflowState`]).
    pub state: SubflowState,
    pub backup: bool,
    pub bytes: u64,
    pub share_pct: f64,
    pub srtt_ms: Option<f64>,
    pub min_rtt_ms: Option<f64>,
    pub cwnd_bytes: u64,
    pub retransmitted_bytes: u64,
    pub reinjected_bytes: u64,
    pub rtos: u64,
    /// The recorder series of this subflow's goodput (bit/s) and cwnd (bytes).
    #[serde(skip)]
    pub goodput_series: String,
    #[serde(skip)]
    pub cwnd_series: String,
}

/// A subflow's state at the end of a run, as the summary names it. The table lists
/// closed subflows too, so that per-path totals are complete.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SubflowState {
    /// Open and carrying data at the MPTCP level.
    Up,
    /// Open and carrying data, but stale (RTOs without progress): the scheduler
    /// avoids it.
    Stale,
    /// Open, handshake (MP_JOIN) not completed yet.
    Joining,
    /// Closed after its handshake completed.
    Closed,
    /// Closed without ever completing its handshake (no RTT sample): e.g. a join
    /// whose SYN went unanswered.
    Failed,
    /// A plain TCP connection's only path (its state is the connection's).
    Tcp,
}

impl SubflowState {
    fn of(sf: &SubflowStats, closed: bool) -> SubflowState {
        match (closed, sf.srtt.is_some(), sf.established, sf.stale) {
            (true, true, _, _) => SubflowState::Closed,
            (true, false, _, _) => SubflowState::Failed,
            (false, _, true, false) => SubflowState::Up,
            (false, _, true, true) => SubflowState::Stale,
            (false, _, false, _) => SubflowState::Joining,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SubflowState::Up => "up",
            SubflowState::Stale => "stale",
            SubflowState::Joining => "joining",
            SubflowState::Closed => "closed",
            SubflowState::Failed => "failed",
            SubflowState::Tcp => "-",
        }
    }
}

fn ms(d: Duration) -> f64 {
    d.total_micros() as f64 / 1e3
}

fn secs(t: Instant) -> f64 {
    t.total_micros() as f64 / 1e6
}

/// The network's per-subflow count of new payload bytes from `local` to `remote`.
fn network_bytes(
    flows: &BTreeMap<FlowId, FlowStats>,
    local: SocketAddr,
    remote: SocketAddr,
) -> u64 {
    flows
        .get(&FlowId {
            src: local,
            dst: remote,
            protocol: 6,
        })
        .map_or(0, |f| f.goodput_bytes)
}

impl Summary {
    /// Summarises `report` of the scenario called `scenario`; `flows` are the
    /// simulator's per-flow counters ([`crate::Simulator::flows`]), `overrides` what
    /// the run forced on the MPTCP hosts.
    pub fn new(
        scenario: &str,
        report: &RunReport,
        flows: &BTreeMap<FlowId, FlowStats>,
        overrides: &MptcpOverrides,
    ) -> Summary {
        let connections: Vec<ConnSummary> = report
            .flows
            .iter()
            .map(|f| ConnSummary::new(f, flows))
            .collect();
        Summary {
            scenario: scenario.to_owned(),
            seed: report.seed,
            simulated_s: secs(report.end),
            scheduler: overrides.scheduler.map(|s| s.to_string()),
            cc: overrides.cc.map(|c| c.to_string()),
            path_manager: overrides.path_manager.map(|p| p.to_string()),
            total_goodput_mbps: connections.iter().map(|c| c.goodput_mbps).sum(),
            bytes_sent: connections.iter().map(|c| c.bytes_sent).sum(),
            bytes_delivered: connections.iter().map(|c| c.bytes_delivered).sum(),
            matched: connections.iter().all(|c| c.matched),
            longest_stall_ms: connections
                .iter()
                .map(|c| c.longest_stall_ms)
                .fold(0.0, f64::max),
            reinjected_bytes: connections.iter().map(|c| c.reinjected_bytes).sum(),
            connections,
        }
    }

    /// The MPTCP connections' summed goodput, Mbit/s.
    pub fn mptcp_goodput_mbps(&self) -> f64 {
        self.connections
            .iter()
            .filter(|c| c.kind == "mptcp")
            .map(|c| c.goodput_mbps)
            .sum()
    }

    /// The plain TCP connections' summed goodput, Mbit/s.
    pub fn tcp_goodput_mbps(&self) -> f64 {
        self.connections
            .iter()
            .filter(|c| c.kind == "tcp")
            .map(|c| c.goodput_mbps)
            .sum()
    }
}

impl ConnSummary {
    fn new(flow: &FlowReport, flows: &BTreeMap<FlowId, FlowStats>) -> ConnSummary {
        let host = &flow.from;
        let mut subflows: Vec<SubflowSummary> = match &flow.mptcp {
            Some(m) => m
                .subflows
                .iter()
                .map(|sf| SubflowSummary {
                    id: sf.id.0,
                    local: sf.local.to_string(),
                    remote: sf.remote.to_string(),
                    state: SubflowState::of(sf, m.closed_subflows.contains(&sf.id)),
                    backup: sf.backup,
                    bytes: network_bytes(flows, sf.local, sf.remote),
                    share_pct: 0.0,
                    srtt_ms: sf.srtt.map(ms),
                    min_rtt_ms: sf.min_rtt.map(ms),
                    cwnd_bytes: sf.cwnd,
                    retransmitted_bytes: sf.bytes_retransmitted,
                    reinjected_bytes: sf.bytes_reinjected,
                    rtos: sf.rto_count,
                    goodput_series: format!("flow/{}->{}/goodput_bps", sf.local, sf.remote),
                    cwnd_series: format!("{host}/{}/sf{}/cwnd_bytes", flow.label, sf.id.0),
                })
                .collect(),
            None => {
                let stats = flow.sender_stats.as_ref();
                let local = flow.local;
                vec![SubflowSummary {
                    id: 0,
                    local: local.map_or_else(|| "-".into(), |l| l.to_string()),
                    remote: flow.remote.to_string(),
                    state: SubflowState::Tcp,
                    backup: false,
                    bytes: local.map_or(0, |l| network_bytes(flows, l, flow.remote)),
                    share_pct: 0.0,
                    srtt_ms: stats.and_then(|s| s.srtt).map(ms),
                    min_rtt_ms: stats.and_then(|s| s.min_rtt).map(ms),
                    cwnd_bytes: stats.map_or(0, |s| s.cwnd),
                    retransmitted_bytes: stats.map_or(0, |s| s.bytes_retransmitted),
                    reinjected_bytes: 0,
                    rtos: stats.map_or(0, |s| s.rto_count),
                    goodput_series: local.map_or_else(String::new, |l| {
                        format!("flow/{l}->{}/goodput_bps", flow.remote)
                    }),
                    cwnd_series: format!("{host}/{}/cwnd_bytes", flow.label),
                }]
            }
        };
        let bytes: Vec<u64> = subflows.iter().map(|s| s.bytes).collect();
        for (sf, share) in subflows.iter_mut().zip(shares(&bytes)) {
            sf.share_pct = share;
        }
        ConnSummary {
            flow: flow.label.clone(),
            kind: match flow.kind {
                FlowKind::Tcp => "tcp",
                FlowKind::Mptcp => "mptcp",
            },
            from: flow.from.clone(),
            to: flow.remote.to_string(),
            mode: flow.mptcp.as_ref().and_then(|m| m.mode).map(|m| match m {
                ConnMode::Handshake => "handshake",
                ConnMode::Mptcp => "mptcp",
                ConnMode::Fallback => "fallback",
            }),
            bytes_sent: flow.sent,
            bytes_delivered: flow.delivered,
            matched: flow.corrupt_at.is_none() && flow.delivered == flow.sent,
            complete: flow.is_complete_and_intact(),
            completion_s: flow.completion.map(|d| d.as_secs_f64()),
            first_byte_ms: flow.first_byte.map(|t| ms(t - flow.start)),
            goodput_mbps: flow.goodput_bps / 1e6,
            longest_stall_ms: ms(flow.longest_stall.duration),
            longest_stall_start_s: secs(flow.longest_stall.from),
            reinjected_bytes: flow.mptcp.as_ref().map_or(0, |m| m.reinjected_bytes),
            out_of_order_bytes: flow.mptcp.as_ref().map_or(0, |m| m.out_of_order_bytes),
            subflows,
        }
    }
}

fn opt_ms(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}"))
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "scenario {}, seed {}, simulated {:.3} s",
            self.scenario, self.seed, self.simulated_s
        )?;
        for (name, value) in [
            ("scheduler", &self.scheduler),
            ("cc", &self.cc),
            ("path manager", &self.path_manager),
        ] {
            if let Some(value) = value {
                write!(f, ", {name} {value}")?;
            }
        }
        writeln!(f)?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<6} {:<5} {:<18} {:>9} {:>10} {:>11} {:>7} {:>9} {:>10}",
            "conn",
            "kind",
            "to",
            "Mbit/s",
            "time s",
            "delivered",
            "matched",
            "stall ms",
            "reinjected"
        )?;
        for c in &self.connections {
            writeln!(
                f,
                "{:<6} {:<5} {:<18} {:>9.2} {:>10} {:>11} {:>7} {:>9.1} {:>10}",
                c.flow,
                c.kind,
                c.to,
                c.goodput_mbps,
                c.completion_s.map_or("-".into(), |s| format!("{s:.3}")),
                c.bytes_delivered,
                if c.matched { "yes" } else { "NO" },
                c.longest_stall_ms,
                c.reinjected_bytes,
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<9} {:<44} {:<7} {:>11} {:>6} {:>8} {:>8} {:>9} {:>10}",
            "subflow",
            "path (sender's view)",
            "state",
            "bytes",
            "share",
            "srtt ms",
            "min ms",
            "cwnd",
            "retrans"
        )?;
        for c in &self.connections {
            for sf in &c.subflows {
                let name = match c.kind {
                    "mptcp" => format!("{}/sf{}", c.flow, sf.id),
                    _ => c.flow.clone(),
                };
                writeln!(
                    f,
                    "{:<9} {:<44} {:<7} {:>11} {:>5.1}% {:>8} {:>8} {:>9} {:>10}",
                    name,
                    format!(
                        "{} -> {}{}",
                        sf.local,
                        sf.remote,
                        if sf.backup { " (backup)" } else { "" }
                    ),
                    sf.state.name(),
                    sf.bytes,
                    sf.share_pct,
                    opt_ms(sf.srtt_ms),
                    opt_ms(sf.min_rtt_ms),
                    sf.cwnd_bytes,
                    sf.retransmitted_bytes,
                )?;
            }
        }
        writeln!(f)?;
        write!(
            f,
            "total {:.2} Mbit/s; {} of {} bytes delivered, {}; longest stall {:.1} ms; \
             {} bytes reinjected; {} bytes arrived out of order",
            self.total_goodput_mbps,
            self.bytes_delivered,
            self.bytes_sent,
            if self.matched {
                "all matched"
            } else {
                "NOT all matched"
            },
            self.longest_stall_ms,
            self.reinjected_bytes,
            self.connections
                .iter()
                .map(|c| c.out_of_order_bytes)
                .sum::<u64>()
        )?;
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    fn gaps(times_ms: &[u64]) -> DeliveryGaps {
        let mut g = DeliveryGaps::default();
        for &t in times_ms {
            g.on_delivery(at(t));
        }
        g
    }

    #[test]
    fn stall_is_the_longest_gap_between_deliveries() {
        // Deliveries every 10 ms, a 350 ms hole from 200 ms (an outage), then on.
        let mut times: Vec<u64> = (1..=20).map(|i| i * 10).collect();
        times.extend((0..10).map(|i| 550 + i * 10));
        let stall = gaps(&times).longest_stall(at(0), None);
        assert_eq!(stall.duration, Duration::from_millis(350));
        assert_eq!(stall.from, at(200));
    }

    #[test]
    fn waiting_for_the_first_byte_is_set_up_not_a_stall() {
        let g = gaps(&[400, 410, 430]);
        let stall = g.longest_stall(at(100), None);
        assert_eq!(stall.duration, Duration::from_millis(20));
        assert_eq!(stall.from, at(410));
        assert_eq!(g.first(), Some(at(400)));
    }

    #[test]
    fn an_unfinished_transfer_stalls_until_the_end_and_a_finished_one_does_not() {
        let g = gaps(&[10, 20, 30]);
        // Finished with its last byte at 30 ms: the time after does not count.
        assert_eq!(
            g.longest_stall(at(0), None).duration,
            Duration::from_millis(10)
        );
        // Still unfinished at 1 s: 970 ms without data.
        let stall = g.longest_stall(at(0), Some(at(1000)));
        assert_eq!(stall.duration, Duration::from_millis(970));
        assert_eq!(stall.from, at(30));
        // Nothing ever delivered: the whole run.
        let none = DeliveryGaps::default();
        assert_eq!(
            none.longest_stall(at(500), Some(at(2500))).duration,
            Duration::from_secs(2)
        );
        assert_eq!(none.longest_stall(at(500), None).duration, Duration::ZERO);
    }

    #[test]
    fn equal_stalls_report_the_first() {
        let stall = gaps(&[100, 200, 300]).longest_stall(at(0), Some(at(400)));
        assert_eq!(stall.duration, Duration::from_millis(100));
        assert_eq!(stall.from, at(100));
    }

    #[test]
    fn shares_are_percentages_of_the_total() {
        assert_eq!(shares(&[750, 250]), vec![75.0, 25.0]);
        assert_eq!(shares(&[1, 1, 2]), vec![25.0, 25.0, 50.0]);
        assert_eq!(shares(&[0, 0]), vec![0.0, 0.0]);
        assert_eq!(shares(&[42]), vec![100.0]);
        assert!(shares(&[]).is_empty());
        let s = shares(&[1, 2]);
        assert!((s.iter().sum::<f64>() - 100.0).abs() < 1e-9);
    }
}
