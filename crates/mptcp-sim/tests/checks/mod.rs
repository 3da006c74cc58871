//! The experiments behind issue 6's "how it is checked": each builds its network,
//! runs our stack over it and returns the measured figures. The tests in
//! `multipath_checks.rs` run small versions and assert; `examples/multipath_checks.rs`
//! runs the long versions and prints the tables.
#![allow(dead_code)]

use std::path::Path;

use mptcp_proto::mptcp::ConnStats;
use mptcp_proto::{Duration, Instant};
use mptcp_sim::traffic::{Received, RunOptions, TrafficRun};
use mptcp_sim::{Direction, Scenario};

/// IP (20) + TCP (20) + timestamps (12) + DSS with a mapping (28) bytes of headers on a
/// full 1500-byte MPTCP data packet: 1420 bytes of it are payload. A path's capacity
/// for application bytes is its rate times this share.
pub const PAYLOAD_SHARE: f64 = 1420.0 / 1500.0;

/// A path: rate, base round-trip time, drop-tail queue.
#[derive(Clone, Copy, Debug)]
pub struct PathSpec {
    pub mbit: u64,
    pub rtt_ms: u64,
    pub queue_packets: u64,
}

impl PathSpec {
    /// A queue of one bandwidth-delay product (at least 10 packets): the buffer a
    /// Reno-like flow needs to keep its path busy through a halving.
    pub fn with_bdp_queue(mbit: u64, rtt_ms: u64) -> PathSpec {
        let bdp_packets = mbit * 1_000_000 / 8 * rtt_ms / 1_000 / 1_500;
        PathSpec {
            mbit,
            rtt_ms,
            queue_packets: bdp_packets.max(10),
        }
    }
}

/// TOML for a link `name` from `a` to `b` modelling `path` (the whole delay on this
/// link, half the RTT each way), plus `extra` lines.
fn link(name: &str, a: &str, b: &str, path: &PathSpec, extra: &str) -> String {
    format!(
        r#"
        [[link]]
        name = "{name}"
        a = "{a}"
        b = "{b}"
        rate = "{}mbit"
        delay = "{}us"
        queue = "{} packets"
        {extra}
        "#,
        path.mbit,
        path.rtt_ms * 500,
        path.queue_packets
    )
}

/// A client with addresses 10.1.0.1 (path "a", its initial subflow) and 10.2.0.1
/// (path "b"), a router, and a server at 10.0.0.1 behind a 10 Gbit/s link; one MPTCP
/// flow from the client. `client` and `server` are `[host.options]` lines, `a_extra`
/// and `b_extra` lines for the path links (loss, events), `flow` lines for the flow.
pub struct TwoPaths<'a> {
    pub a: PathSpec,
    pub b: PathSpec,
    pub client: &'a str,
    pub server: &'a str,
    pub a_extra: &'a str,
    pub b_extra: &'a str,
    pub flow: &'a str,
    pub seed: u64,
}

impl TwoPaths<'_> {
    pub fn scenario(&self) -> Scenario {
        let text = format!(
            r#"
            seed = {}
            [[host]]
            name = "client"
            addresses = ["10.1.0.1", "10.2.0.1"]
            [host.options]
            {}
            [[host]]
            name = "server"
            addresses = ["10.0.0.1"]
            [host.options]
            {}
            [[router]]
            name = "r"
            addresses = ["10.1.0.254", "10.2.0.254", "10.0.0.254"]
            {}
            {}
            [[link]]
            name = "core"
            a = "10.0.0.254"
            b = "10.0.0.1"
            rate = "10gbit"
            delay = "0ms"
            [[flow]]
            from = "client"
            to = "server:80"
            kind = "mptcp"
            {}
            "#,
            self.seed,
            self.client,
            self.server,
            link("a", "10.1.0.1", "10.1.0.254", &self.a, self.a_extra),
            link("b", "10.2.0.1", "10.2.0.254", &self.b, self.b_extra),
            self.flow,
        );
        Scenario::parse(&text, Path::new(".")).expect("experiment scenario parses")
    }
}

/// Builds the run with every delivery recorded.
pub fn start(scenario: &Scenario) -> TrafficRun {
    let options = RunOptions {
        record_deliveries: true,
        ..RunOptions::default()
    };
    TrafficRun::new(scenario, &options).expect("experiment scenario builds")
}

/// The server side of the run's only MPTCP flow (port 80).
pub fn received(run: &TrafficRun) -> &Received {
    run.host("server")
        .expect("a server")
        .received()
        .find(|r| r.local.port() == 80)
        .expect("the server accepted the flow")
}

fn link_bytes(run: &TrafficRun, name: &str) -> u64 {
    let sim = run.sim();
    let id = sim.link_id(name).expect("the link exists");
    sim.link_stats(id, Direction::AToB).delivered_bytes
}

fn sender_stats(run: &TrafficRun) -> ConnStats {
    run.host("client")
        .expect("a client")
        .sender_mptcp_stats("flow0")
        .expect("an MPTCP flow")
}

// ---- RFC 6356 goal 1 -------------------------------------------------------------------

/// What two unequal paths carried for one bulk flow.
#[derive(Clone, Debug)]
pub struct Aggregation {
    /// Application goodput over the whole run and over the steady window, bit/s.
    pub goodput_bps: f64,
    pub steady_goodput_bps: f64,
    /// Sum of the paths' rates and of their payload capacities, bit/s.
    pub capacity_bps: f64,
    pub payload_capacity_bps: f64,
    /// Each path's IP bytes over its rate during the steady window.
    pub steady_wire_utilization: [f64; 2],
    /// The longest wait between two deliveries to the application.
    pub longest_gap: Duration,
}

/// A bulk MPTCP flow over `a` and `b` for `duration`; the steady window starts at
/// `steady_from`. `client` holds the client's options (scheduler, cc, pacing).
pub fn aggregation(
    a: PathSpec,
    b: PathSpec,
    client: &str,
    duration: Duration,
    steady_from: Duration,
) -> Aggregation {
    let scenario = TwoPaths {
        a,
        b,
        client,
        server: "",
        a_extra: "",
        b_extra: "",
        flow: "",
        seed: 1,
    }
    .scenario();
    let mut run = start(&scenario);
    let from = Instant::ZERO + steady_from;
    let end = Instant::ZERO + duration;
    run.run_until(from);
    let wire_from = [link_bytes(&run, "a"), link_bytes(&run, "b")];
    run.run_until(end);
    let wire_to = [link_bytes(&run, "a"), link_bytes(&run, "b")];
    let steady_secs = (end - from).as_secs_f64();
    let util = |i: usize, mbit: u64| {
        (wire_to[i] - wire_from[i]) as f64 * 8.0 / (mbit as f64 * 1e6 * steady_secs)
    };
    let rx = received(&run);
    let d = &rx.deliveries;
    let capacity_bps = (a.mbit + b.mbit) as f64 * 1e6;
    Aggregation {
        goodput_bps: d.bytes_by(end) as f64 * 8.0 / duration.as_secs_f64(),
        steady_goodput_bps: (d.bytes_by(end) - d.bytes_by(from)) as f64 * 8.0 / steady_secs,
        capacity_bps,
        payload_capacity_bps: capacity_bps * PAYLOAD_SHARE,
        steady_wire_utilization: [util(0, a.mbit), util(1, b.mbit)],
        longest_gap: d.longest_gap().map_or(Duration::ZERO, |g| g.0),
    }
}

// ---- RFC 6356 goal 3 -------------------------------------------------------------------

/// Where the MPTCP flow's bytes went while path A carried a competing TCP flow.
#[derive(Clone, Debug)]
pub struct CrossTraffic {
    /// Share of the MPTCP flow's bytes sent on path B during the window.
    pub share_b: f64,
    /// Goodput of the MPTCP flow and of the competing TCP flow, bit/s.
    pub mptcp_bps: f64,
    pub tcp_bps: f64,
    /// What the MPTCP flow sent on each path, bit/s.
    pub a_bps: f64,
    pub b_bps: f64,
}

/// Paths A and B of 10 Mbit/s and 40 ms RTT (a BDP of queue each); a NewReno TCP flow
/// from another host shares A's bottleneck. The MPTCP flow runs `cc`; measured from
/// `window_from` to `duration`, the TCP flow starting `tcp_start` into the run.
pub fn cross_traffic(
    cc: &str,
    duration: Duration,
    window_from: Duration,
    tcp_start: Duration,
) -> CrossTraffic {
    let path = PathSpec::with_bdp_queue(10, 40);
    let text = format!(
        r#"
        seed = 1
        [[host]]
        name = "client"
        addresses = ["10.1.0.1", "10.2.0.1"]
        [host.options]
        cc = "{cc}"
        [[host]]
        name = "cross"
        addresses = ["10.3.0.1"]
        [host.options]
        cc = "newreno"
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        [[router]]
        name = "ra"
        addresses = ["10.1.0.254", "10.3.0.254", "10.4.0.1"]
        [[router]]
        name = "r"
        addresses = ["10.4.0.254", "10.2.0.254", "10.0.0.254"]
        [[link]]
        name = "a_access"
        a = "10.1.0.1"
        b = "10.1.0.254"
        rate = "1gbit"
        delay = "0ms"
        [[link]]
        name = "cross_access"
        a = "10.3.0.1"
        b = "10.3.0.254"
        rate = "1gbit"
        delay = "0ms"
        {}
        {}
        [[link]]
        name = "core"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "10gbit"
        delay = "0ms"
        [[flow]]
        from = "client"
        to = "server:80"
        kind = "mptcp"
        [[flow]]
        from = "cross"
        to = "server:81"
        kind = "tcp"
        start = "{}us"
        "#,
        link("a", "10.4.0.1", "10.4.0.254", &path, ""),
        link("b", "10.2.0.1", "10.2.0.254", &path, ""),
        tcp_start.total_micros(),
    );
    let scenario = Scenario::parse(&text, Path::new(".")).expect("experiment scenario parses");
    let mut run = start(&scenario);
    let per_path = |run: &TrafficRun| -> (u64, u64) {
        let stats = sender_stats(run);
        let a = "10.1.0.1".parse::<std::net::IpAddr>().expect("literal");
        let (mut on_a, mut on_b) = (0, 0);
        for s in stats.subflows.iter().chain(&stats.closed_subflows) {
            if s.local.ip() == a {
                on_a += s.bytes_sent;
            } else {
                on_b += s.bytes_sent;
            }
        }
        (on_a, on_b)
    };
    let delivered = |run: &TrafficRun, port: u16| {
        run.host("server")
            .expect("a server")
            .received()
            .find(|r| r.local.port() == port)
            .map_or(0, |r| r.bytes)
    };
    run.run_until(Instant::ZERO + window_from);
    let (a0, b0) = per_path(&run);
    let (m0, t0) = (delivered(&run, 80), delivered(&run, 81));
    run.run_until(Instant::ZERO + duration);
    let (a1, b1) = per_path(&run);
    let (m1, t1) = (delivered(&run, 80), delivered(&run, 81));
    let secs = (duration - window_from).as_secs_f64();
    let bps = |bytes: u64| bytes as f64 * 8.0 / secs;
    CrossTraffic {
        share_b: (b1 - b0) as f64 / ((a1 - a0) + (b1 - b0)).max(1) as f64,
        mptcp_bps: bps(m1 - m0),
        tcp_bps: bps(t1 - t0),
        a_bps: bps(a1 - a0),
        b_bps: bps(b1 - b0),
    }
}

// ---- handover --------------------------------------------------------------------------

/// What the application saw when the path carrying most of the traffic died.
#[derive(Clone, Debug)]
pub struct Handover {
    /// From the failure to the end of the handover wait: the application's longest
    /// wait among those that began within a second of the failure (delivery may go
    /// on briefly with what path B had in flight before the hole).
    pub restored_after: Duration,
    /// That wait itself.
    pub gap: Duration,
    /// The longest wait in the five seconds after the failure, whenever it began (a
    /// later stall, e.g. a healthy path declared failed, shows here).
    pub longest_wait_after: Duration,
    /// Application goodput over a second of path B alone, from 250 ms after delivery
    /// resumed (the first moments release what the reassembly held back), bit/s.
    pub goodput_after_bps: f64,
    /// Path B's smoothed RTT when path A died (`None` if B had no subflow with an RTT
    /// sample then: a setting that declares healthy paths failed can do that).
    pub srtt_b: Option<Duration>,
    /// Every byte arrived once, in order, and the transfer completed.
    pub intact: bool,
    pub delivered: u64,
    pub requested: u64,
}

/// Path A (20 Mbit/s, 20 ms) and path B (10 Mbit/s, 40 ms), a BDP of queue each; a
/// bulk transfer of `bytes`; path A goes down (both directions, no RST) at `fail_at`.
/// `options` apply to both hosts.
pub fn handover(options: &str, fail_at: Duration, bytes: u64) -> Handover {
    let events = format!(
        "[[link.events]]\n        at = \"{}us\"\n        state = \"down\"",
        fail_at.total_micros()
    );
    let flow = format!("bytes = {bytes}");
    let scenario = TwoPaths {
        a: PathSpec::with_bdp_queue(20, 20),
        b: PathSpec::with_bdp_queue(10, 40),
        client: options,
        server: options,
        a_extra: &events,
        b_extra: "",
        flow: &flow,
        seed: 1,
    }
    .scenario();
    let mut run = start(&scenario);
    let fail = Instant::ZERO + fail_at;
    run.run_until(fail);
    let b_ip = "10.2.0.1".parse::<std::net::IpAddr>().expect("literal");
    let srtt_b = sender_stats(&run)
        .subflows
        .iter()
        .find(|s| s.local.ip() == b_ip)
        .and_then(|s| s.srtt);
    run.run();
    let report = run.report();
    let flow = &report.flows[0];
    let d = &received(&run).deliveries;
    let last = d.span().expect("deliveries").1;
    let horizon = last.min(fail + Duration::from_secs(5));
    let (longest_wait_after, _) = d
        .longest_gap_within(fail, horizon)
        .expect("deliveries after the failure");
    // Waits as (start, end): from the failure to the first delivery after it, then
    // between deliveries.
    let mut waits = Vec::new();
    let mut prev = fail;
    for &(at, _) in d.points().iter().filter(|p| p.0 > fail && p.0 <= horizon) {
        waits.push((prev, at));
        prev = at;
    }
    let (began, resumed) = waits
        .into_iter()
        .filter(|(began, _)| *began <= fail + Duration::from_secs(1))
        .max_by_key(|(began, end)| (*end - *began, core::cmp::Reverse(*began)))
        .expect("deliveries after the failure");
    let gap = resumed - began;
    let settled = resumed + Duration::from_millis(250);
    let after = d.bytes_by(settled + Duration::from_secs(1)) - d.bytes_by(settled);
    Handover {
        restored_after: resumed - fail,
        gap,
        longest_wait_after,
        goodput_after_bps: after as f64 * 8.0,
        srtt_b,
        intact: flow.is_complete_and_intact(),
        delivered: flow.delivered,
        requested: bytes,
    }
}

// ---- redundant scheduler ---------------------------------------------------------------

/// What the application saw over a clean and a lossy path.
#[derive(Clone, Debug)]
pub struct Stalls {
    /// The longest wait between two deliveries while the transfer ran.
    pub longest_gap: Duration,
    /// When it ended.
    pub gap_ended: Instant,
    /// The transfer's end (peer's DATA_FIN) after the last byte was delivered.
    pub close_after_last_byte: Duration,
    pub intact: bool,
    pub goodput_bps: f64,
    /// Bytes the sender mapped onto the clean and the lossy path.
    pub scheduled: [u64; 2],
}

/// A clean path A and path B with `loss` random loss (both directions), both
/// 10 Mbit/s with a BDP of queue; an application sending `bytes` at `rate` (e.g.
/// "5mbit") with `scheduler`.
pub fn lossy_path(
    scheduler: &str,
    clean_rtt_ms: u64,
    lossy_rtt_ms: u64,
    loss: &str,
    rate: &str,
    bytes: u64,
    seed: u64,
) -> Stalls {
    let client = format!("scheduler = \"{scheduler}\"");
    let lossy = format!("loss = \"{loss}\"");
    let flow =
        format!("bytes = {bytes}\n            [flow.options]\n            rate = \"{rate}\"");
    let scenario = TwoPaths {
        a: PathSpec::with_bdp_queue(10, clean_rtt_ms),
        b: PathSpec::with_bdp_queue(10, lossy_rtt_ms),
        client: &client,
        server: "",
        a_extra: "",
        b_extra: &lossy,
        flow: &flow,
        seed,
    }
    .scenario();
    let mut run = start(&scenario);
    run.run();
    let report = run.report();
    let flow = &report.flows[0];
    let rx = received(&run);
    let (longest_gap, gap_ended) = rx.deliveries.longest_gap().expect("deliveries");
    let last = rx.deliveries.span().expect("deliveries").1;
    let stats = sender_stats(&run);
    let a_ip = "10.1.0.1".parse::<std::net::IpAddr>().expect("literal");
    let mut scheduled = [0, 0];
    for s in stats.subflows.iter().chain(&stats.closed_subflows) {
        scheduled[usize::from(s.local.ip() != a_ip)] += s.bytes_scheduled;
    }
    Stalls {
        longest_gap,
        gap_ended,
        close_after_last_byte: rx.finished_at.map_or(Duration::MAX, |t| t - last),
        intact: flow.is_complete_and_intact(),
        goodput_bps: flow.goodput_bps,
        scheduled,
    }
}

// ---- pacing ----------------------------------------------------------------------------

/// The bottleneck queue of a bulk flow's start, and its throughput.
#[derive(Clone, Debug)]
pub struct StartQueue {
    /// Most packets queued on path B up to `until` (its first round trips).
    pub peak_start_packets: usize,
    /// Most packets queued on path B over the whole run.
    pub peak_packets: usize,
    /// Application goodput over the whole run, bit/s.
    pub goodput_bps: f64,
    /// Application goodput from 4 s on (after the start-up), bit/s.
    pub steady_goodput_bps: f64,
    /// When path B's subflow came up.
    pub b_up: Instant,
}

/// The goal-1 network (50 Mbit/s x 10 ms, 20 Mbit/s x 100 ms, a BDP of queue each) with
/// a bulk flow for `duration`, `pacing` on or off; the start window on path B lasts
/// `start_rtts` of its round trips from the moment its subflow came up.
pub fn start_queue(pacing: bool, duration: Duration, start_rtts: u64) -> StartQueue {
    let client = format!("pacing = {pacing}");
    let b = PathSpec::with_bdp_queue(20, 100);
    let scenario = TwoPaths {
        a: PathSpec::with_bdp_queue(50, 10),
        b,
        client: &client,
        server: "",
        a_extra: "",
        b_extra: "",
        flow: "",
        seed: 1,
    }
    .scenario();
    let mut run = start(&scenario);
    let b_ip = "10.2.0.1".parse::<std::net::IpAddr>().expect("literal");
    let step = Duration::from_millis(1);
    let mut b_up = None;
    while b_up.is_none() && run.sim().now() < Instant::from_secs(5) {
        let next = run.sim().now() + step;
        run.run_until(next);
        let up = run.host("client").and_then(|h| {
            h.senders()[0]
                .mptcp
                .events
                .iter()
                .find(|(_, e)| {
                    matches!(e, mptcp_proto::mptcp::MptcpEvent::SubflowUp { local, .. }
                        if local.ip() == b_ip)
                })
                .map(|(t, _)| *t)
        });
        b_up = up;
    }
    let b_up = b_up.expect("path B's subflow came up");
    run.run_until(b_up + Duration::from_millis(b.rtt_ms * start_rtts));
    let peak = |run: &TrafficRun| {
        let sim = run.sim();
        let id = sim.link_id("b").expect("path b");
        sim.link_stats(id, Direction::AToB).peak_queue_packets
    };
    let peak_start_packets = peak(&run);
    let end = Instant::ZERO + duration;
    run.run_until(end);
    let d = &received(&run).deliveries;
    let steady = Instant::from_secs(4);
    StartQueue {
        peak_start_packets,
        peak_packets: peak(&run),
        goodput_bps: d.bytes_by(end) as f64 * 8.0 / duration.as_secs_f64(),
        steady_goodput_bps: (d.bytes_by(end) - d.bytes_by(steady)) as f64 * 8.0
            / (end - steady).as_secs_f64(),
        b_up,
    }
}
