//! Slow readers: MPTCP transfers to applications that read slower than the network
//! carries, across thousands of random networks.
//!
//! Every seed draws a client with 1-4 addresses, each on its own access link (rate,
//! delay, queue, random or bursty loss, reordering, duplication), a server behind a
//! router, small connection-level receive buffers, and a reader on each side slower
//! than its paths (`read_rate`). The receive windows fill and stay nearly closed, so
//! every transfer leans on window updates after reads and, when one is lost, on the
//! sender's connection-level zero-window probe: without it a lost update stalls the
//! connection for good. Some non-initial paths die mid-transfer. Every transfer must
//! arrive byte-exact, stay MPTCP, and finish within a bound derived from the read
//! rate (the reader, not recovery, sets the pace).
//!
//! A failure names the seed; replay it with `MPTCP_SEED=<seed> cargo test -p mptcp-sim
//! --test mptcp_slow_reader -- --nocapture` (which prints the report and the
//! scenario). `MPTCP_SEEDS=<n>` changes how many seeds run and `MPTCP_FIRST_SEED=<k>`
//! where they start; they are spread over the cores.

mod sweep;

use std::fmt::Write as _;
use std::path::Path;

use mptcp_proto::Duration;
use mptcp_proto::mptcp::ConnMode;
use mptcp_sim::Scenario;
use mptcp_sim::traffic::{RunOptions, TrafficRun};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use sweep::SeedSweep;

/// Seeds run by default (MPTCP_SEEDS for more).
const DEFAULT_SEEDS: u64 = 2_000;

/// A flow's bound: what its reader needs at its rate, half as much again, plus this.
/// (Over seeds 0..2000 the worst took 1.44 times its reader's time, 5.2 s over it;
/// without the connection-level probe, 3 of them stall for good.)
const SLACK: Duration = Duration::from_secs(10);

/// One seed's network and what its flows may take.
struct Network {
    text: String,
    /// (flow label, bytes, reader's bytes per second).
    flows: Vec<(&'static str, u64, u64)>,
}

fn random_network(seed: u64) -> Network {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let paths = (seed % 4) as usize + 1;
    let addresses: Vec<String> = (0..paths)
        .map(|i| format!("\"10.{}.0.1\"", i + 1))
        .collect();
    let mut router: Vec<String> = (0..paths)
        .map(|i| format!("\"10.{}.0.254\"", i + 1))
        .collect();
    router.push("\"10.0.0.254\"".into());
    let cc = if rng.random_bool(0.5) {
        "cubic"
    } else {
        "newreno"
    };
    let survivor = rng.random_range(0..paths);
    let mut links = String::new();
    let mut longest_delay = 0;
    for i in 0..paths {
        let rate = rng.random_range(2..=50u32);
        let delay = rng.random_range(1..=60u32);
        longest_delay = longest_delay.max(delay);
        let queue = rng.random_range(20..=200u32);
        let loss = if rng.random_bool(0.3) {
            format!(
                "gilbert_elliott = {{ p = {:.4}, r = {:.3} }}",
                rng.random_range(0.001..0.01),
                rng.random_range(0.3..0.6)
            )
        } else {
            format!("loss = {:.4}", rng.random_range(0.0..0.03))
        };
        let reorder = if rng.random_bool(0.3) {
            format!(
                "reorder = {{ probability = {:.3}, delay = \"{}ms\" }}",
                rng.random_range(0.0..0.05),
                rng.random_range(1..=20u32)
            )
        } else {
            String::new()
        };
        let duplicate = format!("duplicate = {:.4}", rng.random_range(0.0..0.01));
        let _ = write!(
            links,
            r#"
            [[link]]
            name = "path{i}"
            a = "10.{n}.0.1"
            b = "10.{n}.0.254"
            rate = "{rate}mbit"
            delay = "{delay}ms"
            queue = "{queue} packets"
            {loss}
            {reorder}
            {duplicate}
            "#,
            n = i + 1
        );
        // A joined path may die for good mid-transfer (never the initial one, whose
        // death before the peer has our key ends any MPTCP connection, nor all).
        if i != 0 && i != survivor && rng.random_bool(0.2) {
            let at = rng.random_range(100..3000u32);
            let _ = write!(
                links,
                "[[link.events]]\nat = \"{at}ms\"\nstate = \"down\"\n"
            );
        }
    }
    // Each reader takes 5-30 % of what its window could carry per round trip on the
    // longest path (at least 2 kB/s): the window, not the network, is what fills,
    // and it closes over and over.
    let rtt_us = u64::from(2 * (longest_delay + 1)) * 1000;
    let reader = |rng: &mut Xoshiro256PlusPlus| {
        let kib = rng.random_range(4..=64u64);
        let per_rtt = kib * 1024 * 1_000_000 / rtt_us;
        let rate = (per_rtt * rng.random_range(5..=30u64) / 100).max(2_000);
        (kib, rate)
    };
    let (server_buffer, server_rate) = reader(&mut rng);
    let (client_buffer, client_rate) = reader(&mut rng);
    let up = rng.random_range(20_000..200_000u64);
    let down = rng.random_range(1..60_000u64);
    let mut text = format!("seed = {seed}\n");
    let _ = write!(
        text,
        r#"
        [[host]]
        name = "client"
        addresses = [{}]
        options = {{ cc = "{cc}", read_rate = {client_rate}, mptcp_recv_buffer = "{client_buffer}kb" }}
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        options = {{ read_rate = {server_rate}, mptcp_recv_buffer = "{server_buffer}kb" }}
        [[router]]
        name = "r"
        addresses = [{}]
        [[link]]
        name = "core"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "1gbit"
        delay = "1ms"
        {links}
        [[flow]]
        from = "client"
        to = "server:7000"
        bytes = {up}
        kind = "mptcp"
        [[flow]]
        from = "server"
        to = "10.1.0.1:7001"
        bytes = {down}
        kind = "mptcp"
        "#,
        addresses.join(", "),
        router.join(", ")
    );
    Network {
        text,
        flows: vec![("flow0", up, server_rate), ("flow1", down, client_rate)],
    }
}

/// What a flow may take: its reader's time, half as much again, plus [`SLACK`].
fn bound(bytes: u64, rate: u64) -> Duration {
    Duration::from_micros(3 * bytes * 1_000_000 / (2 * rate)) + SLACK
}

fn check_seed(seed: u64) -> Result<(), String> {
    let Network { text, flows } = random_network(seed);
    let scenario = Scenario::parse(&text, Path::new(".")).map_err(|e| format!("{e}\n{text}"))?;
    let longest = flows
        .iter()
        .map(|&(_, bytes, rate)| bound(bytes, rate))
        .max()
        .expect("two flows");
    let options = RunOptions {
        // A stalled connection never finishes: stop soon after the bound.
        max_duration: longest + Duration::from_secs(1),
        ..RunOptions::default()
    };
    let mut run = TrafficRun::new(&scenario, &options).map_err(|e| e.to_string())?;
    run.run();
    let report = run.report();
    let mut problems = Vec::new();
    for flow in &report.flows {
        if !flow.is_complete_and_intact() {
            problems.push(format!("{}: {}", flow.label, flow.outcome));
        }
        let (_, bytes, rate) = flows
            .iter()
            .find(|(label, ..)| *label == flow.label)
            .copied()
            .ok_or_else(|| format!("unexpected flow {}", flow.label))?;
        if let Some(took) = flow.completion
            && took > bound(bytes, rate)
        {
            problems.push(format!(
                "{}: {bytes} bytes at {rate} B/s took {took:?}, over {:?}",
                flow.label,
                bound(bytes, rate)
            ));
        }
        match &flow.mptcp {
            Some(m) if m.mode == Some(ConnMode::Mptcp) && m.peer_mode == Some(ConnMode::Mptcp) => {}
            Some(m) => problems.push(format!(
                "{}: mode {:?} / peer {:?}, fallback {:?}",
                flow.label, m.mode, m.peer_mode, m.fallback
            )),
            None => problems.push(format!("{}: no MPTCP report", flow.label)),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "{}\n{report}\nscenario:\n{text}",
            problems.join("; ")
        ))
    }
}

#[test]
fn slow_readers_get_every_byte_over_one_to_four_impaired_paths() {
    SeedSweep {
        default_seeds: DEFAULT_SEEDS,
        reports_printed: 3,
        describe_passing_replay: Some(|seed| random_network(seed).text),
    }
    .run(check_seed);
}

/// One client and a server on a 20 Mbit/s path, a plain TCP and an MPTCP flow of
/// `bytes` to it, the server's sinks reading at `read_rate` (TOML value, or none).
fn paced(read_rate: Option<&str>, bytes: u64) -> Vec<(String, Duration)> {
    let options = read_rate.map_or(String::new(), |r| format!("read_rate = {r}"));
    let text = format!(
        r#"
        seed = 3
        [[host]]
        name = "client"
        addresses = ["10.1.0.1"]
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        options = {{ {options} }}
        [[link]]
        name = "path"
        a = "10.1.0.1"
        b = "10.0.0.1"
        rate = "20mbit"
        delay = "10ms"
        [[flow]]
        from = "client"
        to = "server:80"
        bytes = {bytes}
        kind = "tcp"
        [[flow]]
        from = "client"
        to = "server:81"
        bytes = {bytes}
        kind = "mptcp"
        "#
    );
    let scenario = Scenario::parse(&text, Path::new(".")).expect("test scenario parses");
    let mut run = TrafficRun::new(&scenario, &RunOptions::default()).expect("builds");
    run.run();
    let report = run.report();
    report
        .flows
        .iter()
        .map(|f| {
            assert!(f.is_complete_and_intact(), "{report}");
            (f.label.clone(), f.completion.expect("complete"))
        })
        .collect()
}

#[test]
fn read_rate_paces_the_receiving_application() {
    // 300 kB read at 100 kB/s: one 16 KiB chunk at once, then the rate, about 2.84 s;
    // for plain TCP and MPTCP alike. Unpaced, the path's 2.5 MB/s takes ~0.2 s.
    for (label, took) in paced(Some("100000"), 300_000) {
        let secs = took.total_micros() as f64 / 1e6;
        assert!((2.8..3.2).contains(&secs), "{label}: {secs} s");
    }
    // The same in bits per second, as link rates are written.
    for (label, took) in paced(Some("\"800kbit\""), 300_000) {
        let secs = took.total_micros() as f64 / 1e6;
        assert!((2.8..3.2).contains(&secs), "{label}: {secs} s");
    }
    for (label, took) in paced(None, 300_000) {
        assert!(took < Duration::from_millis(500), "{label}: {took:?}");
    }
}
