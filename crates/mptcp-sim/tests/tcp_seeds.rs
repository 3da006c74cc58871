//! Byte-exact TCP transfers across thousands of random networks.
//!
//! Every seed draws a path (rate, delay, queue) and impairments (random or bursty loss
//! up to 10 %, reordering, duplication, corruption, an outage shorter than the give-up
//! time), transfers a random amount each way, and checks every byte where it lands.
//! A failure names the seed; replay it with `MPTCP_SEED=<seed> cargo test -p mptcp-sim
//! --test tcp_seeds -- --nocapture`. `MPTCP_SEEDS=<n>` changes how many seeds run and
//! `MPTCP_FIRST_SEED=<k>` where they start; they are spread over the cores.

mod sweep;

use std::path::Path;

use mptcp_sim::Scenario;
use mptcp_sim::traffic::{RunOptions, run_scenario};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use sweep::SeedSweep;

/// About 30 s in the test profile on two busy cores; `--release` runs 100,000 in ~15 s.
const DEFAULT_SEEDS: u64 = 100_000;

/// The scenario text for one seed.
fn random_network(seed: u64) -> String {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let rate_mbit = rng.random_range(1..=100u32);
    let delay_ms = rng.random_range(1..=80u32);
    let queue = rng.random_range(10..=300u32);
    let loss = if rng.random_bool(0.3) {
        format!(
            "gilbert_elliott = {{ p = {:.4}, r = {:.3} }}",
            rng.random_range(0.001..0.02),
            rng.random_range(0.2..0.6)
        )
    } else {
        format!("loss = {:.4}", rng.random_range(0.0..0.10))
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
    let corrupt = format!("corrupt = {:.4}", rng.random_range(0.0..0.02));
    let outage = if rng.random_bool(0.25) {
        let at = rng.random_range(50..2000u32);
        let len = rng.random_range(100..5000u32);
        format!(
            "[[link.events]]\nat = \"{at}ms\"\nstate = \"down\"\n[[link.events]]\nat = \"{}ms\"\nstate = \"up\"",
            at + len
        )
    } else {
        String::new()
    };
    let up = rng.random_range(1_000..150_000u32);
    let down = rng.random_range(0..40_000u32);
    let cc = if rng.random_bool(0.5) {
        "cubic"
    } else {
        "newreno"
    };
    format!(
        r#"
        seed = {seed}
        [[host]]
        name = "a"
        addresses = ["10.0.0.1"]
        options = {{ cc = "{cc}" }}
        [[host]]
        name = "b"
        addresses = ["10.0.0.2"]
        [[link]]
        name = "path"
        a = "10.0.0.1"
        b = "10.0.0.2"
        rate = "{rate_mbit}mbit"
        delay = "{delay_ms}ms"
        queue = "{queue} packets"
        {loss}
        {reorder}
        {duplicate}
        {corrupt}
        {outage}
        [[flow]]
        from = "a"
        to = "b:7000"
        bytes = {up}
        kind = "tcp"
        [[flow]]
        from = "b"
        to = "a:7001"
        bytes = {down}
        kind = "tcp"
        "#
    )
}

fn check_seed(seed: u64) -> Result<(), String> {
    let text = random_network(seed);
    let scenario = Scenario::parse(&text, Path::new(".")).map_err(|e| format!("{e}\n{text}"))?;
    let (report, _sim) =
        run_scenario(&scenario, &RunOptions::default()).map_err(|e| e.to_string())?;
    if report.all_flows_intact() {
        Ok(())
    } else {
        Err(format!("{report}\nscenario:\n{text}"))
    }
}

#[test]
fn transfers_are_byte_exact_on_random_impaired_paths() {
    SeedSweep {
        default_seeds: DEFAULT_SEEDS,
        reports_printed: usize::MAX,
        describe_passing_replay: None,
    }
    .run(check_seed);
}
