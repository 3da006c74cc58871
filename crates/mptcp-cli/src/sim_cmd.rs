//! `mptcp demo` and `mptcp sim ...`: scenarios on the simulator, built in or from a
//! file, with an experiment summary, time series and plots.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant as WallClock;

use anyhow::{Context as _, bail};
use mptcp_proto::Duration;
use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::sched::SchedulerKind;
use mptcp_sim::Scenario;
use mptcp_sim::builtin::{BUILTINS, builtin, builtin_names};
use mptcp_sim::traffic::{MptcpOverrides, RunOptions, RunReport, Summary, run_scenario};

use crate::mptcp_args::AlgoArgs;
use crate::plot;

/// How to run and report one scenario.
#[derive(Clone, Debug, Default)]
pub struct RunSettings {
    pub seed: Option<u64>,
    pub out: Option<PathBuf>,
    pub verify: bool,
    pub json: bool,
    /// Also print the detailed per-flow, MPTCP and subflow tables.
    pub details: bool,
    pub algo: AlgoArgs,
}

/// Sampling for plots when `--out` is given and the scenario asks for none.
const DEFAULT_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// A scenario by built-in name or file path, with the name to report it under.
fn load(target: &str) -> anyhow::Result<(String, Scenario)> {
    if let Some(b) = builtin(target) {
        let scenario = b
            .scenario()
            .with_context(|| format!("the built-in scenario '{}'", b.name))?;
        return Ok((b.name.to_owned(), scenario));
    }
    let path = Path::new(target);
    if !path.exists() {
        bail!(
            "'{target}' is neither a built-in scenario ({}) nor a scenario file",
            builtin_names()
        );
    }
    let scenario =
        Scenario::from_file(path).with_context(|| format!("reading {}", path.display()))?;
    Ok((target.to_owned(), scenario))
}

/// `mptcp sim list`.
pub fn list() {
    println!("Built-in scenarios (mptcp sim run NAME, mptcp sim example NAME):\n");
    let width = BUILTINS.iter().map(|b| b.name.len()).max().unwrap_or(0);
    for b in BUILTINS {
        println!("  {:<width$}  {}", b.name, b.description);
    }
}

/// `mptcp sim example [NAME]`: the scenario's TOML text.
pub fn example(name: Option<&str>) -> anyhow::Result<bool> {
    let name = name.unwrap_or("demo");
    let Some(b) = builtin(name) else {
        bail!(
            "no built-in scenario '{name}' (built in: {})",
            builtin_names()
        );
    };
    print!("{}", b.text);
    Ok(true)
}

/// `mptcp demo`: the built-in demo, introduced.
pub fn demo(settings: &RunSettings) -> anyhow::Result<bool> {
    if !settings.json {
        println!("Built-in demo: a laptop with Wi-Fi (30 Mbit/s) and LTE (15 Mbit/s) sends 30 MB");
        println!("over MPTCP and 10 MB over plain TCP on Wi-Fi; Wi-Fi drops out from 3 s to 5 s.");
        println!("(Print the scenario with `mptcp sim example demo`; more in `mptcp sim list`.)\n");
    }
    run("demo", settings)
}

/// One run: the summary and what the caller needs to write files.
struct Outcome {
    summary: Summary,
    report: RunReport,
    sim: mptcp_sim::Simulator,
    wall: std::time::Duration,
}

fn run_once(
    name: &str,
    scenario: &Scenario,
    seed: Option<u64>,
    verify: bool,
    overrides: &MptcpOverrides,
    sample: bool,
) -> anyhow::Result<Outcome> {
    let options = RunOptions {
        seed,
        verify,
        sample_interval: (sample && scenario.sample_interval.is_none())
            .then_some(DEFAULT_SAMPLE_INTERVAL),
        overrides: overrides.clone(),
        ..RunOptions::default()
    };
    let wall = WallClock::now();
    let (report, sim) = run_scenario(scenario, &options)?;
    let wall = wall.elapsed();
    let summary = Summary::new(name, &report, sim.flows(), overrides);
    Ok(Outcome {
        summary,
        report,
        sim,
        wall,
    })
}

/// `mptcp sim run NAME|FILE`; `Ok(false)` when a connection did not deliver exactly
/// what was sent.
pub fn run(target: &str, settings: &RunSettings) -> anyhow::Result<bool> {
    let (name, scenario) = load(target)?;
    let overrides = settings.algo.overrides();
    let outcome = run_once(
        &name,
        &scenario,
        settings.seed,
        settings.verify,
        &overrides,
        settings.out.is_some(),
    )?;
    let Outcome {
        summary,
        report,
        sim,
        wall,
    } = outcome;
    if settings.json {
        println!(
            "{}",
            serde_json::to_string(&summary).expect("the summary serialises")
        );
    } else {
        print!("{summary}");
        if settings.details {
            println!("\n{report}");
        } else {
            println!();
            print!("{}", report.link_table());
        }
        println!(
            "\n(simulated {:.3} s in {:.3} s of wall time)",
            summary.simulated_s,
            wall.as_secs_f64()
        );
    }
    if let Some(dir) = &settings.out {
        let written = write_outputs(dir, &summary, &report, &sim)?;
        let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
        // Keep stdout one JSON object under --json.
        let note = format!("wrote {}", names.join(", "));
        if settings.json {
            eprintln!("{note}");
        } else {
            println!("{note}");
        }
    }
    let ok = summary.matched && report.all_flows_intact();
    if !ok {
        eprintln!(
            "mptcp: at least one connection did not deliver exactly what was sent, or did \
             not finish"
        );
    }
    Ok(ok)
}

fn write_outputs(
    dir: &Path,
    summary: &Summary,
    report: &RunReport,
    sim: &mptcp_sim::Simulator,
) -> anyhow::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let series = dir.join("series.csv");
    sim.recorder()
        .write_csv_file(&series)
        .with_context(|| format!("writing {}", series.display()))?;
    let text = dir.join("summary.txt");
    fs::write(&text, format!("{summary}\n{report}"))
        .with_context(|| format!("writing {}", text.display()))?;
    let json = dir.join("summary.json");
    fs::write(
        &json,
        serde_json::to_string_pretty(summary).expect("the summary serialises") + "\n",
    )
    .with_context(|| format!("writing {}", json.display()))?;
    let mut written = vec![series, text, json];
    written.extend(plot::write_subflow_series(dir, summary, sim.recorder())?);
    Ok(written)
}

/// `mptcp sim compare NAME|FILE --scheduler a,b --cc x,y`: every combination, one
/// table (or a JSON array of summaries). `Ok(false)` when a run did not deliver
/// exactly what was sent.
pub fn compare(
    target: &str,
    schedulers: &[SchedulerKind],
    ccs: &[CcAlgorithm],
    base: &AlgoArgs,
    seed: Option<u64>,
    json: bool,
) -> anyhow::Result<bool> {
    let (name, scenario) = load(target)?;
    // An empty list keeps the scenario's (or the single --path-manager run's) choice.
    let schedulers: Vec<Option<SchedulerKind>> = if schedulers.is_empty() {
        vec![base.scheduler]
    } else {
        schedulers.iter().copied().map(Some).collect()
    };
    let ccs: Vec<Option<CcAlgorithm>> = if ccs.is_empty() {
        vec![base.cc]
    } else {
        ccs.iter().copied().map(Some).collect()
    };
    let mut rows = Vec::new();
    for &scheduler in &schedulers {
        for &cc in &ccs {
            let overrides = MptcpOverrides {
                scheduler,
                cc,
                path_manager: base.path_manager,
            };
            let outcome = run_once(&name, &scenario, seed, true, &overrides, false)?;
            if !json {
                eprintln!(
                    "ran {} / {} in {:.2} s",
                    label(scheduler.map(|s| s.to_string())),
                    label(cc.map(|c| c.to_string())),
                    outcome.wall.as_secs_f64()
                );
            }
            rows.push(outcome.summary);
        }
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(&rows).expect("summaries serialise")
        );
    } else {
        print!("{}", compare_table(&name, &rows));
    }
    Ok(rows.iter().all(|r| r.matched))
}

fn label(choice: Option<String>) -> String {
    choice.unwrap_or_else(|| "(scenario)".into())
}

/// One row per run: scheduler, cc, MPTCP and TCP goodput, each MPTCP subflow's share
/// (by subflow id, `/`-separated; connections separated by `|`), the longest stall,
/// reinjected bytes and whether everything matched.
pub fn compare_table(name: &str, rows: &[Summary]) -> String {
    let has_tcp = rows
        .iter()
        .any(|r| r.connections.iter().any(|c| c.kind == "tcp"));
    let mut out = String::new();
    let seed = rows.first().map_or(0, |r| r.seed);
    out += &format!("scenario {name}, seed {seed}\n\n");
    let shares: Vec<String> = rows
        .iter()
        .map(|r| {
            r.connections
                .iter()
                .filter(|c| c.kind == "mptcp")
                .map(|c| {
                    c.subflows
                        .iter()
                        .map(|s| format!("{:.0}", s.share_pct))
                        .collect::<Vec<_>>()
                        .join("/")
                })
                .collect::<Vec<_>>()
                .join(" | ")
        })
        .collect();
    let share_width = shares.iter().map(String::len).max().unwrap_or(0).max(12);
    out += &format!(
        "{:<14} {:<8} {:>12} {} {:<share_width$} {:>9} {:>10} {:>7}\n",
        "scheduler",
        "cc",
        "MPTCP Mbit/s",
        if has_tcp { " TCP Mbit/s" } else { "" },
        "subflow % ",
        "stall ms",
        "reinjected",
        "matched"
    );
    for (r, share) in rows.iter().zip(&shares) {
        out += &format!(
            "{:<14} {:<8} {:>12.2} {} {:<share_width$} {:>9.1} {:>10} {:>7}\n",
            label(r.scheduler.clone()),
            label(r.cc.clone()).replace("(scenario)", "(scen.)"),
            r.mptcp_goodput_mbps(),
            if has_tcp {
                format!("{:>11.2}", r.tcp_goodput_mbps())
            } else {
                String::new()
            },
            share,
            r.longest_stall_ms,
            r.reinjected_bytes,
            if r.matched { "yes" } else { "NO" },
        );
    }
    out
}
