//! `mptcp demo` and `mptcp sim ...`: scenarios on the simulator.

use std::fs;
use std::path::Path;
use std::time::Instant as WallClock;

use anyhow::Context as _;
use mptcp_sim::Scenario;
use mptcp_sim::traffic::{RunOptions, run_scenario};

/// The scenario `mptcp demo` runs.
pub const DEMO_SCENARIO: &str = include_str!("../scenarios/demo.toml");

/// Runs the built-in demo; `Ok(false)` when a flow did not arrive intact.
pub fn demo(seed: Option<u64>, out: Option<&Path>) -> anyhow::Result<bool> {
    let scenario =
        Scenario::parse(DEMO_SCENARIO, Path::new(".")).context("the built-in demo scenario")?;
    println!("Built-in demo: a laptop with Wi-Fi (30 Mbit/s) and LTE (15 Mbit/s) sends 30 MB");
    println!("over MPTCP and 10 MB over plain TCP on Wi-Fi; Wi-Fi drops out from 3 s to 5 s.");
    println!("(Print the scenario with `mptcp sim example`.)\n");
    run(&scenario, seed, out, true)
}

/// Runs a scenario file.
pub fn run_file(
    file: &Path,
    seed: Option<u64>,
    out: Option<&Path>,
    verify: bool,
) -> anyhow::Result<bool> {
    let scenario =
        Scenario::from_file(file).with_context(|| format!("reading {}", file.display()))?;
    run(&scenario, seed, out, verify)
}

fn run(
    scenario: &Scenario,
    seed: Option<u64>,
    out: Option<&Path>,
    verify: bool,
) -> anyhow::Result<bool> {
    let options = RunOptions {
        seed,
        verify,
        ..RunOptions::default()
    };
    let wall = WallClock::now();
    let (report, sim) = run_scenario(scenario, &options)?;
    let elapsed = wall.elapsed();
    print!("{report}");
    println!(
        "\n(simulated {:?} in {:.3} s of wall time)",
        report.end,
        elapsed.as_secs_f64()
    );
    if let Some(dir) = out {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let series = dir.join("series.csv");
        sim.recorder()
            .write_csv_file(&series)
            .with_context(|| format!("writing {}", series.display()))?;
        let summary = dir.join("summary.txt");
        fs::write(&summary, report.to_string())
            .with_context(|| format!("writing {}", summary.display()))?;
        println!("wrote {} and {}", series.display(), summary.display());
    }
    let intact = report.all_flows_intact();
    if !intact {
        eprintln!("mptcp: at least one flow did not complete intact (see the outcome column)");
    }
    Ok(intact)
}
