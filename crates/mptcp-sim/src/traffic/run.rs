//! Running a scenario's traffic on our stack.
//!
//! [`run_scenario`] does it in one call. [`TrafficRun`] splits it for tests that need
//! the network before or after the run: build, then install middleboxes or schedule
//! path events on [`TrafficRun::sim_mut`], then [`TrafficRun::run`] and
//! [`TrafficRun::report`].

use std::net::{IpAddr, SocketAddr};

use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::mptcp::MptcpConfig;
use mptcp_proto::pm::PathPolicy;
use mptcp_proto::sched::SchedulerKind;
use mptcp_proto::{Duration, Instant};

use crate::host::NodeId;
use crate::scenario::{FlowKind, Scenario};
use crate::sim::{Direction, Simulator};

use super::host::{SenderState, StackHost, completion_time};
use super::options::parse_host_options;
use super::report::{FlowReport, LinkReport, MptcpReport, RunReport};

/// How to run a scenario.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Overrides the scenario's seed.
    pub seed: Option<u64>,
    /// Check every received byte against the sender's pattern.
    pub verify: bool,
    /// Keep every receiving application's delivery series
    /// ([`super::Received::deliveries`]), for stall and handover measurements.
    pub record_deliveries: bool,
    /// Used when the scenario sets no duration: the run stops when every flow is done
    /// or at this time, whichever comes first.
    pub max_duration: Duration,
    /// Overrides the scenario's sample interval (time series for plots).
    pub sample_interval: Option<Duration>,
    /// Settings forced on every host's MPTCP connections.
    pub overrides: MptcpOverrides,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            seed: None,
            verify: true,
            record_deliveries: false,
            max_duration: Duration::from_secs(600),
            sample_interval: None,
            overrides: MptcpOverrides::default(),
        }
    }
}

/// Settings that replace what the scenario's hosts say for their MPTCP connections
/// (`mptcp sim run/compare --scheduler --cc --path-manager`), so one scenario can be
/// run under several algorithms. Hosts with MPTCP off and plain TCP connections are
/// left alone.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MptcpOverrides {
    pub scheduler: Option<SchedulerKind>,
    /// The congestion control of MPTCP subflows.
    pub cc: Option<CcAlgorithm>,
    /// The path manager policy, of connections opened and accepted.
    pub path_manager: Option<PathPolicy>,
}

impl MptcpOverrides {
    pub fn apply(&self, config: &mut MptcpConfig) {
        if let Some(scheduler) = self.scheduler {
            config.scheduler = scheduler;
        }
        if let Some(cc) = self.cc {
            config.tcp.congestion_control = cc;
        }
        if let Some(policy) = self.path_manager {
            config.pm.policy = policy;
            config.pm_server.policy = policy;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == MptcpOverrides::default()
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

/// Builds the scenario's network with a [`StackHost`] on every host, runs its flows and
/// returns the report together with the simulator (for its recorder and counters).
pub fn run_scenario(
    scenario: &Scenario,
    options: &RunOptions,
) -> Result<(RunReport, Simulator), TrafficError> {
    let mut run = TrafficRun::new(scenario, options)?;
    run.run();
    let report = run.report();
    Ok((report, run.into_sim()))
}

/// One flow as the runner placed it.
#[derive(Clone, Debug)]
struct PlacedFlow {
    label: String,
    from: NodeId,
    to: NodeId,
}

/// A scenario built and ready to run (or run). See the module documentation.
pub struct TrafficRun {
    scenario: Scenario,
    options: RunOptions,
    sim: Simulator,
    flows: Vec<PlacedFlow>,
    host_ids: Vec<NodeId>,
}

impl TrafficRun {
    /// Builds the network and places every flow's sender and sink.
    pub fn new(scenario: &Scenario, options: &RunOptions) -> Result<Self, TrafficError> {
        let mut scenario = scenario.clone();
        if let Some(seed) = options.seed {
            scenario.seed = seed;
        }
        if options.sample_interval.is_some() {
            scenario.sample_interval = options.sample_interval;
        }
        let mut host_options = Vec::with_capacity(scenario.hosts.len());
        for host in &scenario.hosts {
            let mut host_option = parse_host_options(host)?;
            if let Some(mptcp) = &mut host_option.endpoint.mptcp {
                options.overrides.apply(mptcp);
            }
            host_options.push(host_option);
        }
        let seed = scenario.seed;
        let mut next = 0;
        let mut sim = scenario.build(|spec| {
            let mut opts = host_options[next].clone();
            next += 1;
            // The host's addresses: packets to others are dropped, and accepted MPTCP
            // connections announce the ones they did not arrive on.
            opts.endpoint.local_addrs = spec.addresses.clone();
            let mut host = StackHost::new(opts, host_secret(seed, &spec.name));
            host.set_verify(options.verify);
            host.set_record_deliveries(options.record_deliveries);
            Box::new(host)
        })?;

        let mut flows = Vec::new();
        for (index, flow) in scenario.flows.iter().enumerate() {
            let flow_error = |message: String| TrafficError::Flow {
                index,
                from: flow.from.clone(),
                to: flow.to.clone(),
                message,
            };
            let mut rate_bps = None;
            for (key, value) in &flow.options {
                match key.as_str() {
                    // The application's own pace (bits per second, like "5mbit").
                    "rate" => {
                        let rate = value
                            .as_str()
                            .ok_or_else(|| {
                                flow_error(format!("rate = {value} is not a rate like \"5mbit\""))
                            })
                            .and_then(|text| {
                                crate::units::parse_rate(text)
                                    .map_err(|e| flow_error(format!("rate: {e}")))
                            })?;
                        rate_bps = Some(rate.as_bps());
                    }
                    _ => {
                        return Err(flow_error(format!(
                            "unknown flow option '{key}' (known: rate)"
                        )));
                    }
                }
            }
            let remote_ip = match flow.to_addr {
                Some(ip) => ip,
                None => first_address(&scenario, &flow.to, None)
                    .ok_or_else(|| flow_error(format!("host '{}' has no address", flow.to)))?,
            };
            let local_ip = first_address(&scenario, &flow.from, Some(remote_ip.is_ipv6()))
                .ok_or_else(|| {
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
            // MPTCP: the initial subflow from the first address of the destination's
            // family, joins from every other address of the host (RFC 8684 §3.2; the
            // path manager pairs them with peer addresses of the same family).
            let extra_locals: Vec<IpAddr> = scenario
                .host(&flow.from)
                .map(|h| {
                    h.addresses
                        .iter()
                        .copied()
                        .filter(|&a| a != local_ip)
                        .collect()
                })
                .unwrap_or_default();
            let sender = sim
                .host_mut::<StackHost>(from_id)
                .expect("every scenario host is a StackHost");
            let remote = SocketAddr::new(remote_ip, flow.port);
            match flow.kind {
                FlowKind::Tcp => {
                    sender.add_sender(&label, local_ip, remote, flow.start, flow.bytes)
                }
                FlowKind::Mptcp => sender.add_mptcp_sender(
                    &label,
                    local_ip,
                    &extra_locals,
                    remote,
                    flow.start,
                    flow.bytes,
                ),
            }
            sender.set_sender_rate(&label, rate_bps);
            flows.push(PlacedFlow {
                label,
                from: from_id,
                to: to_id,
            });
        }
        let host_ids = scenario
            .hosts
            .iter()
            .filter_map(|h| sim.node_id(&h.name))
            .collect();
        Ok(TrafficRun {
            host_ids,
            scenario,
            options: options.clone(),
            sim,
            flows,
        })
    }

    /// The scenario as run (with the seed override applied).
    pub fn scenario(&self) -> &Scenario {
        &self.scenario
    }

    pub fn sim(&self) -> &Simulator {
        &self.sim
    }

    /// The network, to install middleboxes, change links or inspect hosts.
    pub fn sim_mut(&mut self) -> &mut Simulator {
        &mut self.sim
    }

    pub fn into_sim(self) -> Simulator {
        self.sim
    }

    /// The host `name` (every scenario host is a [`StackHost`]).
    pub fn host(&self, name: &str) -> Option<&StackHost> {
        self.sim.host::<StackHost>(self.sim.node_id(name)?)
    }

    pub fn host_mut(&mut self, name: &str) -> Option<&mut StackHost> {
        let id = self.sim.node_id(name)?;
        self.sim.host_mut::<StackHost>(id)
    }

    /// True once every host's flows have finished or failed.
    pub fn is_done(&self) -> bool {
        all_done(&self.sim, &self.host_ids)
    }

    /// Runs to the scenario's duration, or until every flow is done (at most
    /// [`RunOptions::max_duration`]).
    pub fn run(&mut self) {
        match self.scenario.duration {
            Some(duration) => self.sim.run_until(Instant::ZERO + duration),
            None => {
                let deadline = Instant::ZERO + self.options.max_duration;
                self.run_until(deadline);
            }
        }
    }

    /// Runs until every flow is done or `deadline`, whichever comes first; returns
    /// whether everything was done.
    pub fn run_until(&mut self, deadline: Instant) -> bool {
        let ids = &self.host_ids;
        self.sim
            .run_until_condition(deadline, |sim| all_done(sim, ids))
    }

    /// What happened so far.
    pub fn report(&self) -> RunReport {
        let sim = &self.sim;
        let mut flows = Vec::new();
        for (index, placed) in self.flows.iter().enumerate() {
            let spec = &self.scenario.flows[index];
            let sender_host = sim.host::<StackHost>(placed.from).expect("StackHost");
            let sender = sender_host
                .senders()
                .iter()
                .find(|s| s.label == placed.label)
                .expect("every flow has its sender");
            let receiver_host = sim.host::<StackHost>(placed.to).expect("StackHost");
            let receiver = receiver_host
                .received()
                .filter(|r| r.remote.ip() == sender.local_ip && r.local.port() == spec.port)
                .last();
            let delivered = receiver.map_or(0, |r| r.bytes);
            let all_delivered = spec.bytes.is_some_and(|b| delivered >= b);
            let longest_stall = receiver
                .map(|r| r.delivery_gaps)
                .unwrap_or_default()
                .longest_stall(
                    sender.start,
                    (!all_delivered).then(|| sim.now().max(sender.start)),
                );
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
            let mptcp = match spec.kind {
                FlowKind::Tcp => None,
                FlowKind::Mptcp => Some(MptcpReport::new(
                    sender_host.sender_mptcp_stats(&placed.label),
                    &sender.mptcp,
                    receiver.and_then(|r| receiver_host.received_mptcp_stats(r)),
                    receiver.map(|r| &r.mptcp),
                )),
            };
            flows.push(FlowReport {
                label: placed.label.clone(),
                kind: spec.kind,
                from: spec.from.clone(),
                local: sender.local,
                remote: sender.remote,
                requested: spec.bytes,
                sent: sender.written,
                delivered,
                longest_stall,
                first_byte: receiver.and_then(|r| r.delivery_gaps.first()),
                start: sender.start,
                completion: completion.or_else(|| completion_time(sender)),
                goodput_bps,
                corrupt_at: receiver.and_then(|r| r.corrupt_at),
                outcome,
                sender_stats: sender_host.sender_stats(&placed.label),
                mptcp,
            });
        }

        let run_time = sim.now() - Instant::ZERO;
        let mut links = Vec::new();
        for link in &self.scenario.links {
            let id = sim
                .link_id(&link.name)
                .expect("scenario links are in the simulator");
            for direction in [Direction::AToB, Direction::BToA] {
                let stats = sim.link_stats(id, direction);
                let rate = sim.link_config(id, direction).rate;
                let utilization = match rate {
                    Some(rate) if run_time > Duration::ZERO => {
                        stats.delivered_bytes as f64 * 8.0
                            / (rate.0 as f64 * run_time.as_secs_f64())
                    }
                    _ => 0.0,
                };
                links.push(LinkReport {
                    name: link.name.clone(),
                    direction,
                    delivered_bytes: stats.delivered_bytes,
                    drops: stats.drops.total(),
                    utilization,
                    peak_queue_bytes: stats.peak_queue_bytes,
                });
            }
        }
        RunReport {
            seed: self.scenario.seed,
            end: sim.now(),
            flows,
            links,
        }
    }
}

fn all_done(sim: &Simulator, hosts: &[NodeId]) -> bool {
    hosts
        .iter()
        .all(|&id| sim.host::<StackHost>(id).is_some_and(StackHost::is_done))
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
