//! Running a scenario's traffic on our stack and summarising what happened.

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::tcp::TcpStats;
use mptcp_proto::{Duration, Instant};

use crate::scenario::{FlowKind, HostSpec, Scenario};
use crate::sim::{Direction, Simulator};
use crate::units;

use super::host::{SenderState, StackHost, StackOptions, completion_time};

/// How to run a scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Check every received byte against the sender's pattern.
    pub verify: bool,
    /// Used when the scenario sets no duration: the run stops when every flow is done
    /// or at this time, whichever comes first.
    pub max_duration: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: None,
            verify: true,
            max_duration: Duration::from_secs(600),
        }
    }
}

/// Why a scenario could not run.
#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error(transparent)]
    Scenario(#[from] crate::scenario::ScenarioError),
    #[error("host '{host}': {message}")]
    HostOption { host: String, message: String },
    #[error("flow {index} ({from} -> {to}): {message}")]
    Flow {
        index: usize,
        from: String,
        to: String,
        message: String,
    },
}

/// The outcome of one flow.
#[derive(Clone, Debug)]
pub struct FlowReport {
    pub label: String,
    pub kind: FlowKind,
    pub from: String,
    pub remote: SocketAddr,
    pub requested: Option<u64>,
    /// Bytes the receiving application read.
    pub delivered: u64,
    pub start: Instant,
    /// From the start to the receiver seeing the FIN after the last byte.
    pub completion: Option<Duration>,
    /// Application-level goodput over the flow's lifetime, bits per second.
    pub goodput_bps: f64,
    /// The first stream offset with a wrong byte, if any.
    pub corrupt_at: Option<u64>,
    pub outcome: String,
    pub sender_stats: Option<TcpStats>,
}

impl FlowReport {
    /// Delivered everything asked for, intact, and finished.
    pub fn is_complete_and_intact(&self) -> bool {
        self.corrupt_at.is_none()
            && self.completion.is_some()
            && self.requested.is_none_or(|r| r == self.delivered)
    }
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

/// Builds the scenario's network with a [`StackHost`] on every host, runs its flows and
/// returns the report together with the simulator (for its recorder and counters).
pub fn run_scenario(
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<(RunReport, Simulator), TrafficError> {
    let mut scenario = scenario.clone();
    if let Some(seed) = options.seed {
        scenario.seed = seed;
    }
    let mut host_options = Vec::with_capacity(scenario.hosts.len());
    for host in &scenario.hosts {
        host_options.push(parse_host_options(host)?);
    }
    let seed = scenario.seed;
    let mut next = 0;
    let mut sim = scenario.build(|spec| {
        let opts = host_options[next].clone();
        next += 1;
        let mut host = StackHost::new(opts, host_secret(seed, &spec.name));
        host.set_verify(options.verify);
        Box::new(host)
    })?;

    let mut labels = Vec::new();
    for (index, flow) in scenario.flows.iter().enumerate() {
        let flow_error = |message: String| TrafficError::Flow {
            index,
            from: flow.from.clone(),
            to: flow.to.clone(),
            message,
        };
        if flow.kind == FlowKind::Mptcp {
            return Err(flow_error(
                "kind 'mptcp' needs the MPTCP connection layer, which is not in this build yet; \
                 use kind = \"tcp\""
                    .into(),
            ));
        }
        if let Some(key) = flow.options.keys().next() {
            return Err(flow_error(format!("unknown flow option '{key}'")));
        }
        let remote_ip = match flow.to_addr {
            Some(ip) => ip,
            None => first_address(&scenario, &flow.to, None)
                .ok_or_else(|| flow_error(format!("host '{}' has no address", flow.to)))?,
        };
        let local_ip =
            first_address(&scenario, &flow.from, Some(remote_ip.is_ipv6())).ok_or_else(|| {
                flow_error(format!(
                    "host '{}' has no {} address",
                    flow.from,
                    if remote_ip.is_ipv6() { "IPv6" } else { "IPv4" }
                ))
            })?;
        let label = format!("flow{index}");
        let to_node = scenario
            .hosts
            .iter()
            .find(|h| h.addresses.contains(&remote_ip))
            .map(|h| h.name.clone())
            .ok_or_else(|| flow_error(format!("no host owns {remote_ip}")))?;
        let to_id = sim
            .node_id(&to_node)
            .expect("scenario hosts are in the simulator");
        let sink = sim
            .host_mut::<StackHost>(to_id)
            .expect("every scenario host is a StackHost");
        if !sink.has_sink(flow.port, remote_ip.is_ipv6()) {
            sink.add_sink(flow.port, remote_ip.is_ipv6())
                .map_err(flow_error)?;
        }
        let from_id = sim
            .node_id(&flow.from)
            .ok_or_else(|| flow_error(format!("no host '{}'", flow.from)))?;
        sim.host_mut::<StackHost>(from_id)
            .expect("every scenario host is a StackHost")
            .add_sender(
                &label,
                local_ip,
                SocketAddr::new(remote_ip, flow.port),
                flow.start,
                flow.bytes,
            );
        labels.push((label, from_id, to_id));
    }

    let host_ids: Vec<_> = scenario
        .hosts
        .iter()
        .filter_map(|h| sim.node_id(&h.name))
        .collect();
    let all_done = |sim: &Simulator| {
        host_ids
            .iter()
            .all(|&id| sim.host::<StackHost>(id).is_some_and(StackHost::is_done))
    };
    match scenario.duration {
        Some(duration) => sim.run_until(Instant::ZERO + duration),
        None => {
            sim.run_until_condition(Instant::ZERO + options.max_duration, all_done);
        }
    }

    let mut flows = Vec::new();
    for (index, (label, from_id, to_id)) in labels.iter().enumerate() {
        let spec = &scenario.flows[index];
        let sender_host = sim.host::<StackHost>(*from_id).expect("StackHost");
        let sender = sender_host
            .senders()
            .iter()
            .find(|s| &s.label == label)
            .expect("every flow has its sender");
        let receiver = sim
            .host::<StackHost>(*to_id)
            .expect("StackHost")
            .received()
            .filter(|r| r.remote.ip() == sender.local_ip && r.local.port() == spec.port)
            .last();
        let delivered = receiver.map_or(0, |r| r.bytes);
        let completion = receiver
            .and_then(|r| r.finished_at)
            .map(|at| at - sender.start);
        let lifetime = completion.unwrap_or(sim.now() - sender.start);
        let goodput_bps = if lifetime > Duration::ZERO {
            delivered as f64 * 8.0 / lifetime.as_secs_f64()
        } else {
            0.0
        };
        let outcome = match (&sender.state, receiver.and_then(|r| r.corrupt_at)) {
            (_, Some(at)) => format!("CORRUPT at byte {at}"),
            (SenderState::Finished { .. }, None) if completion.is_some() => "complete".into(),
            (SenderState::Finished { .. }, None) => "sender done".into(),
            (SenderState::Running, None) => "running".into(),
            (SenderState::Waiting, None) => "not started".into(),
            (SenderState::Failed { reason, .. }, None) => format!("failed: {reason:?}"),
            (SenderState::ConnectError(e), None) => format!("connect error: {e}"),
        };
        flows.push(FlowReport {
            label: label.clone(),
            kind: spec.kind,
            from: spec.from.clone(),
            remote: sender.remote,
            requested: spec.bytes,
            delivered,
            start: sender.start,
            completion: completion.or_else(|| completion_time(sender)),
            goodput_bps,
            corrupt_at: receiver.and_then(|r| r.corrupt_at),
            outcome,
            sender_stats: sender_host.sender_stats(label),
        });
    }

    let run_time = sim.now() - Instant::ZERO;
    let mut links = Vec::new();
    for link in &scenario.links {
        let id = sim
            .link_id(&link.name)
            .expect("scenario links are in the simulator");
        for direction in [Direction::AToB, Direction::BToA] {
            let stats = sim.link_stats(id, direction);
            let rate = sim.link_config(id, direction).rate;
            let utilization = match rate {
                Some(rate) if run_time > Duration::ZERO => {
                    stats.delivered_bytes as f64 * 8.0 / (rate.0 as f64 * run_time.as_secs_f64())
                }
                _ => 0.0,
            };
            links.push(LinkReport {
                name: link.name.clone(),
                direction,
                delivered_bytes: stats.delivered_bytes,
                drops: stats.drops.total(),
                utilization,
            });
        }
    }
    let report = RunReport {
        seed: scenario.seed,
        end: sim.now(),
        flows,
        links,
    };
    Ok((report, sim))
}

fn first_address(scenario: &Scenario, host: &str, ipv6: Option<bool>) -> Option<IpAddr> {
    scenario
        .host(host)?
        .addresses
        .iter()
        .copied()
        .find(|a| ipv6.is_none_or(|v6| a.is_ipv6() == v6))
}

/// A per-host ISN secret derived from the seed and the name, so runs repeat exactly.
fn host_secret(seed: u64, name: &str) -> [u8; 32] {
    let mut state = seed ^ 0x5eed_0f5e_c7e7;
    for byte in name.bytes() {
        state = splitmix(state ^ u64::from(byte));
    }
    let mut secret = [0u8; 32];
    for chunk in secret.chunks_mut(8) {
        state = splitmix(state);
        chunk.copy_from_slice(&state.to_be_bytes());
    }
    secret
}

fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Reads `[host.options]`: `cc`, `send_buffer`, `recv_buffer`, `mss`, `min_rto`.
fn parse_host_options(host: &HostSpec) -> Result<StackOptions, TrafficError> {
    let error = |message: String| TrafficError::HostOption {
        host: host.name.clone(),
        message,
    };
    let mut options = StackOptions::default();
    let tcp = &mut options.endpoint.tcp;
    for (key, value) in &host.options {
        let text = value.as_str().map(str::to_owned);
        match key.as_str() {
            "cc" => {
                tcp.congestion_control = match text.as_deref() {
                    Some("cubic") => CcAlgorithm::Cubic,
                    Some("newreno") | Some("reno") => CcAlgorithm::NewReno,
                    _ => {
                        return Err(error(format!(
                            "cc = {value} is not a known algorithm; try \"cubic\" or \"newreno\""
                        )));
                    }
                }
            }
            "send_buffer" | "recv_buffer" => {
                let size = match (value.as_integer(), text.as_deref()) {
                    (Some(n), _) if n > 0 => n as u64,
                    (_, Some(s)) => {
                        units::parse_size(s).map_err(|e| error(format!("{key}: {e}")))?
                    }
                    _ => return Err(error(format!("{key} = {value} is not a size like \"4mb\""))),
                };
                let size =
                    usize::try_from(size).map_err(|_| error(format!("{key} is too large")))?;
                if key == "send_buffer" {
                    tcp.send_buffer = size;
                } else {
                    tcp.recv_buffer = size;
                }
            }
            "mss" => {
                tcp.mss = value
                    .as_integer()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n >= 64)
                    .ok_or_else(|| error(format!("mss = {value} is not a number in 64..=65535")))?;
            }
            "min_rto" => {
                let s = text.ok_or_else(|| {
                    error(format!(
                        "min_rto = {value} is not a duration like \"200ms\""
                    ))
                })?;
                tcp.rto_min =
                    units::parse_duration(&s).map_err(|e| error(format!("min_rto: {e}")))?;
            }
            other => {
                return Err(error(format!(
                    "unknown option '{other}' (known: cc, send_buffer, recv_buffer, mss, min_rto)"
                )));
            }
        }
    }
    Ok(options)
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
            let stats = flow.sender_stats.as_ref();
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
                flow.completion.map_or("-".into(), |d| format!("{d:?}")),
                format_rate(flow.goodput_bps),
                stats.map_or("-".into(), |s| s.retransmits.to_string()),
                stats.map_or("-".into(), |s| s.rto_count.to_string()),
                stats
                    .and_then(|s| s.srtt)
                    .map_or("-".into(), |d| format!("{d:?}")),
                flow.outcome,
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<16} {:<5} {:>14} {:>8} {:>11}",
            "link", "dir", "delivered", "drops", "utilization"
        )?;
        for link in &self.links {
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
