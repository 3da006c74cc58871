//! Byte-exact MPTCP transfers over 1-8 subflows across thousands of random networks.
//!
//! Every seed draws a client with 1-8 addresses, each on its own access link to a
//! router (rate, delay, queue, random or bursty loss, reordering, duplication), a
//! server behind it, and a transfer each way over one MPTCP connection. With several
//! paths, some die for good mid-transfer (never all: one always survives); with one
//! path it goes dark and comes back (make-after-break). Every byte is checked where it
//! lands, and the connection must not have fallen back to TCP.
//!
//! A failure names the seed; replay it with `MPTCP_SEED=<seed> cargo test -p mptcp-sim
//! --test mptcp_seeds -- --nocapture` (which prints the report and the scenario).
//! `MPTCP_SEEDS=<n>` changes how many seeds run and `MPTCP_FIRST_SEED=<k>` where they
//! start; they are spread over the cores.

mod sweep;

use std::fmt::Write as _;
use std::path::Path;

use mptcp_proto::mptcp::ConnMode;
use mptcp_proto::{Duration, Instant};
use mptcp_sim::Directions;
use mptcp_sim::Scenario;
use mptcp_sim::traffic::{RunOptions, TrafficRun};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use sweep::SeedSweep;

/// Seeds run by default: about 14 s in the test profile on two cores (30,000 took 21 s
/// there; the margin is for CI, where other tests run beside it). Seeds 0..30,000
/// pass in release (`MPTCP_SEEDS=30000 cargo test --release -p mptcp-sim --test
/// mptcp_seeds`); the ones that once failed, by cause: 11813, 16414 (a DATA_FIN
/// overtook the lost third ACK and first data: spurious fallback); 14345, 23573,
/// 27346, 28988, 29273, 29827 (a lost ADD_ADDR repeated only after 120 s, or kept
/// off a pure ACK by SACK blocks); 6217 (the only path died before any repeat: the
/// announcing side now joins from the address itself); 10937 (a lost fourth ACK of an
/// MP_JOIN was never sent again).
const DEFAULT_SEEDS: u64 = 20_000;

/// One seed's network: the scenario text, and when the initial path dies (if it
/// does), counted from the moment both connections are fully established.
struct Network {
    text: String,
    kill_initial_after: Option<Duration>,
}

/// The scenario for one seed.
fn random_network(seed: u64) -> Network {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    // Every subflow count 1..=8, about equally often.
    let paths = (seed % 8) as usize + 1;
    let mut text = format!("seed = {seed}\n");
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
    let _ = write!(
        text,
        r#"
        [[host]]
        name = "client"
        addresses = [{}]
        options = {{ cc = "{cc}", make_after_break = "20s" }}
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        options = {{ make_after_break = "20s" }}
        [[router]]
        name = "r"
        addresses = [{}]
        [[link]]
        name = "core"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "1gbit"
        delay = "1ms"
        "#,
        addresses.join(", "),
        router.join(", ")
    );
    // With several paths, each but the first may die; at least one survives.
    let survivor = rng.random_range(0..paths);
    let mut kill_initial_after = None;
    for i in 0..paths {
        let rate = rng.random_range(2..=50u32);
        let delay = rng.random_range(1..=60u32);
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
        let reorder = if rng.random_bool(0.4) {
            format!(
                "reorder = {{ probability = {:.3}, delay = \"{}ms\" }}",
                rng.random_range(0.0..0.05),
                rng.random_range(1..=20u32)
            )
        } else {
            String::new()
        };
        let duplicate = format!("duplicate = {:.4}", rng.random_range(0.0..0.02));
        let _ = write!(
            text,
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
        if paths == 1 && rng.random_bool(0.3) {
            // The only path goes dark past several RTOs and comes back.
            let at = rng.random_range(200..1500u32);
            let len = rng.random_range(500..4000u32);
            let _ = write!(
                text,
                "[[link.events]]\nat = \"{at}ms\"\nstate = \"down\"\n\
                 [[link.events]]\nat = \"{}ms\"\nstate = \"up\"\n",
                at + len
            );
        } else if paths > 1 && i != survivor && rng.random_bool(0.3) {
            // This path dies for good mid-transfer.
            if i == 0 {
                // The initial path dies only once both connections are fully
                // established: before the peer has our key (third ACK or first data),
                // no join can be authenticated (RFC 8684 §3.2), so its death then is
                // the end of the connection, for any MPTCP.
                kill_initial_after = Some(Duration::from_millis(rng.random_range(0..1500u64)));
            } else {
                let at = rng.random_range(100..2000u32);
                let _ = write!(text, "[[link.events]]\nat = \"{at}ms\"\nstate = \"down\"\n");
            }
        }
    }
    let up = rng.random_range(20_000..400_000u32);
    let down = rng.random_range(1..60_000u32);
    let _ = write!(
        text,
        r#"
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
        "#
    );
    Network {
        text,
        kill_initial_after,
    }
}

fn check_seed(seed: u64) -> Result<(), String> {
    let Network {
        text,
        kill_initial_after,
    } = random_network(seed);
    let scenario = Scenario::parse(&text, Path::new(".")).map_err(|e| format!("{e}\n{text}"))?;
    let mut run = TrafficRun::new(&scenario, &RunOptions::default()).map_err(|e| e.to_string())?;
    if let Some(after) = kill_initial_after {
        // Both connections fully established: each connecting side had data
        // acknowledged at the data level (RFC 8684 §3.1: a data ACK shows the peer
        // has our key, so joins can be authenticated).
        let established = |run: &TrafficRun| {
            [("client", "flow0"), ("server", "flow1")]
                .iter()
                .all(|(name, flow)| {
                    run.host(name)
                        .and_then(|h| h.sender_mptcp_stats(flow))
                        .is_some_and(|s| s.bytes_data_acked > 0)
                })
        };
        while !established(&run) && !run.is_done() && run.sim().now() < Instant::from_secs(120) {
            let next = run.sim().now() + Duration::from_millis(5);
            run.sim_mut().run_until(next);
        }
        let at = run.sim().now() + after;
        let link = run.sim().link_id("path0").expect("path0 exists");
        run.sim_mut()
            .schedule_link_state(at, link, Directions::Both, false);
    }
    run.run();
    let report = run.report();
    let mut problems = Vec::new();
    if !report.all_flows_intact() {
        problems.push("a flow is not complete and intact".to_string());
    }
    for flow in &report.flows {
        let Some(m) = &flow.mptcp else {
            problems.push(format!("{}: no MPTCP report", flow.label));
            continue;
        };
        // No middlebox here: the connection must stay MPTCP at both ends.
        if m.mode != Some(ConnMode::Mptcp) || m.peer_mode != Some(ConnMode::Mptcp) {
            problems.push(format!(
                "{}: mode {:?} / peer {:?}, fallback {:?}",
                flow.label, m.mode, m.peer_mode, m.fallback
            ));
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
fn mptcp_transfers_are_byte_exact_over_one_to_eight_impaired_paths() {
    SeedSweep {
        default_seeds: DEFAULT_SEEDS,
        reports_printed: 3,
        describe_passing_replay: Some(|seed| random_network(seed).text),
    }
    .run(check_seed);
}
