//! `mptcp bench`: goodput of the kernel's MPTCP and of ours on the same two-path
//! topology, interleaved in one run, with the ratios to kernel <-> kernel.
//!
//! Every round measures every pair once, so that a change of the (shared) machine's
//! speed during the run hits all pairs alike; the summary gives the median and the
//! spread over the rounds, and each pair's ratio to kernel <-> kernel is the median of
//! the per-round ratios.

mod measure;
mod topology;

use std::time::Duration;

use anyhow::bail;
use serde::Serialize;

pub use measure::Pair;
use measure::{Bench, Sample, Settings};
use topology::{Rate, Topology};

/// `mptcp bench` options.
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub rounds: usize,
    pub warmup: Duration,
    pub duration: Duration,
    pub rates: Option<String>,
    pub pairs: Vec<Pair>,
    pub reverse: bool,
    /// TUN offload for our stacks.
    pub offload: bool,
    /// Connections per measurement.
    pub connections: usize,
    /// Worker threads of each of our stacks.
    pub workers: usize,
    pub json: bool,
}

#[derive(Serialize)]
struct Report {
    /// "client_to_server" or "server_to_client".
    direction: &'static str,
    /// Our stacks ran with TUN offload (absent when no pair used them).
    #[serde(skip_serializing_if = "Option::is_none")]
    offload: Option<bool>,
    rounds: usize,
    /// Connections per measurement, all sending at once.
    connections: usize,
    /// Worker threads of each of our stacks.
    workers: usize,
    warmup_seconds: f64,
    seconds: f64,
    /// Path rates (both directions), Mbit/s; absent when the paths are unlimited.
    #[serde(skip_serializing_if = "Option::is_none")]
    rates_mbit: Option<[f64; 2]>,
    pairs: Vec<PairReport>,
}

#[derive(Serialize)]
struct PairReport {
    pair: Pair,
    label: &'static str,
    samples: Vec<Sample>,
    median_mbit_per_sec: f64,
    min_mbit_per_sec: f64,
    max_mbit_per_sec: f64,
    /// Median over rounds of this pair's goodput / kernel <-> kernel's in the same round.
    #[serde(skip_serializing_if = "Option::is_none")]
    ratio_to_kernel: Option<f64>,
    /// Median goodput / summed path rates (with `--rate`).
    #[serde(skip_serializing_if = "Option::is_none")]
    efficiency: Option<f64>,
}

/// Runs the benchmark; `Ok(false)` never happens (errors are errors), `Ok(true)` on
/// success.
pub fn run(options: &BenchOptions) -> anyhow::Result<bool> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!(
            "mptcp bench needs root: it creates network namespaces, veth pairs and TUN \
             devices (try: sudo mptcp bench)"
        );
    }
    if options.rounds == 0 || options.duration.is_zero() {
        bail!("--rounds and --seconds must be at least 1");
    }
    if !(1..=256).contains(&options.connections) {
        bail!("--connections must be between 1 and 256");
    }
    if !(1..=mptcp_tun::MAX_WORKERS).contains(&options.workers) {
        bail!("--workers must be between 1 and {}", mptcp_tun::MAX_WORKERS);
    }
    let rates = options.rates.as_deref().map(parse_rates).transpose()?;
    let mut pairs = options.pairs.clone();
    if pairs.is_empty() {
        pairs = Pair::DEFAULT.to_vec();
    }
    pairs.sort();
    pairs.dedup();

    let topo = Topology::create(rates)?;
    let bench = Bench::new(
        topo,
        &pairs,
        Settings {
            warmup: options.warmup,
            duration: options.duration,
            reverse: options.reverse,
            offload: options.offload,
            connections: options.connections,
            workers: options.workers,
        },
    )?;
    let offload = bench.offload();
    let direction = if options.reverse {
        "server_to_client"
    } else {
        "client_to_server"
    };
    if !options.json {
        let paths = match rates {
            Some([a, b]) => format!("paths limited to {} and {} Mbit/s", a.mbit(), b.mbit()),
            None => "unlimited paths".to_owned(),
        };
        let ours = match offload {
            Some(true) => ", our stacks with TUN offload",
            Some(false) => ", our stacks without TUN offload",
            None => "",
        };
        let mut conns = match options.connections {
            1 => String::new(),
            n => format!(", {n} connections at once"),
        };
        if options.workers > 1 && offload.is_some() {
            conns += &format!(", {} workers per stack of ours", options.workers);
        }
        eprintln!(
            "mptcp bench: {}, two paths ({paths}), {} rounds x ({:.1} s warm-up + {:.1} s){conns}{ours}",
            direction.replace('_', " "),
            options.rounds,
            options.warmup.as_secs_f64(),
            options.duration.as_secs_f64()
        );
    }
    let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); pairs.len()];
    for round in 1..=options.rounds {
        for (i, &pair) in pairs.iter().enumerate() {
            let sample = bench.measure(pair)?;
            if !options.json {
                let reinjected = match sample.reinjections {
                    Some(n) if n > 0 => format!(", {n} connection-level retransmissions"),
                    _ => String::new(),
                };
                eprintln!(
                    "  round {round}/{}  {:<18} {:>9.1} Mbit/s  ({} subflows{reinjected})",
                    options.rounds,
                    pair.label(options.reverse),
                    sample.mbit_per_sec,
                    sample.subflows
                );
            }
            samples[i].push(sample);
        }
    }
    drop(bench);

    let mut report = summarize(&pairs, samples, rates, options, direction);
    report.offload = offload;
    if options.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_table(&report);
    }
    Ok(true)
}

fn parse_rates(s: &str) -> anyhow::Result<[Rate; 2]> {
    let parts: Vec<&str> = s.split(',').collect();
    let [a, b] = parts.as_slice() else {
        bail!("--rate {s:?}: give two rates, one per path, e.g. --rate 50,20");
    };
    Ok([Rate::parse(a)?, Rate::parse(b)?])
}

fn summarize(
    pairs: &[Pair],
    samples: Vec<Vec<Sample>>,
    rates: Option<[Rate; 2]>,
    options: &BenchOptions,
    direction: &'static str,
) -> Report {
    let kernel = pairs
        .iter()
        .position(|&p| p == Pair::KernelKernel)
        .map(|i| {
            samples[i]
                .iter()
                .map(|s| s.mbit_per_sec)
                .collect::<Vec<_>>()
        });
    let rate_sum = rates.map(|[a, b]| a.mbit() + b.mbit());
    let reports = pairs
        .iter()
        .zip(samples)
        .map(|(&pair, samples)| {
            let rates_of: Vec<f64> = samples.iter().map(|s| s.mbit_per_sec).collect();
            let median_mbit = median(&rates_of);
            let ratio_to_kernel = kernel.as_ref().map(|k| {
                let ratios: Vec<f64> = rates_of
                    .iter()
                    .zip(k)
                    .map(|(&ours, &k)| if k > 0.0 { ours / k } else { 0.0 })
                    .collect();
                median(&ratios)
            });
            PairReport {
                pair,
                label: pair.label(options.reverse),
                median_mbit_per_sec: median_mbit,
                min_mbit_per_sec: rates_of.iter().copied().fold(f64::INFINITY, f64::min),
                max_mbit_per_sec: rates_of.iter().copied().fold(0.0, f64::max),
                ratio_to_kernel,
                efficiency: rate_sum.map(|sum| median_mbit / sum),
                samples,
            }
        })
        .collect();
    Report {
        direction,
        offload: None,
        rounds: options.rounds,
        connections: options.connections,
        workers: options.workers,
        warmup_seconds: options.warmup.as_secs_f64(),
        seconds: options.duration.as_secs_f64(),
        rates_mbit: rates.map(|[a, b]| [a.mbit(), b.mbit()]),
        pairs: reports,
    }
}

/// The median (mean of the middle two for an even count); 0 for no values.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn print_table(report: &Report) {
    let efficiency = report.rates_mbit.is_some();
    print!(
        "{:<18} {:>14} {:>21} {:>10} {:>9}",
        "pair", "median Mbit/s", "min-max Mbit/s", "vs kernel", "subflows"
    );
    if efficiency {
        print!(" {:>11}", "efficiency");
    }
    println!();
    for p in &report.pairs {
        let ratio = p
            .ratio_to_kernel
            .map_or("-".to_owned(), |r| format!("{r:.2}"));
        let mut subflows: Vec<usize> = p.samples.iter().map(|s| s.subflows).collect();
        subflows.sort_unstable();
        subflows.dedup();
        let subflows: Vec<String> = subflows.iter().map(usize::to_string).collect();
        print!(
            "{:<18} {:>14.1} {:>21} {:>10} {:>9}",
            p.label,
            p.median_mbit_per_sec,
            format!("{:.1}-{:.1}", p.min_mbit_per_sec, p.max_mbit_per_sec),
            ratio,
            subflows.join(",")
        );
        if let Some(e) = p.efficiency {
            print!(" {:>10.1}%", e * 100.0);
        }
        println!();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_even_and_empty() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 3.0, 2.0]), 2.5);
        assert_eq!(median(&[]), 0.0);
    }

    #[test]
    fn rates_come_in_pairs() {
        let [a, b] = parse_rates("50,20mbit").expect("two rates");
        assert_eq!((a.mbit(), b.mbit()), (50.0, 20.0));
        assert!(parse_rates("50").is_err());
        assert!(parse_rates("50,20,10").is_err());
    }

    fn sample(mbit: f64) -> Sample {
        Sample {
            mbit_per_sec: mbit,
            bytes: 0,
            seconds: 1.0,
            subflows: 2,
            reinjections: None,
        }
    }

    #[test]
    fn ratios_pair_each_round_with_the_kernel_of_the_same_round() {
        let options = BenchOptions {
            rounds: 3,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            rates: None,
            pairs: Vec::new(),
            reverse: false,
            offload: true,
            connections: 1,
            workers: 1,
            json: true,
        };
        let pairs = [Pair::KernelKernel, Pair::OursOurs];
        let samples = vec![
            vec![sample(100.0), sample(50.0), sample(200.0)],
            vec![sample(50.0), sample(50.0), sample(20.0)],
        ];
        let rates = Some([Rate::parse("60").unwrap(), Rate::parse("40").unwrap()]);
        let r = summarize(&pairs, samples, rates, &options, "client_to_server");
        assert_eq!(r.pairs[0].ratio_to_kernel, Some(1.0));
        // Per round: 0.5, 1.0, 0.1 -> median 0.5 (not 50 / 100 of the medians).
        assert_eq!(r.pairs[1].ratio_to_kernel, Some(0.5));
        assert_eq!(r.pairs[1].median_mbit_per_sec, 50.0);
        assert_eq!(r.pairs[1].min_mbit_per_sec, 20.0);
        assert_eq!(r.pairs[1].max_mbit_per_sec, 50.0);
        assert_eq!(r.pairs[0].efficiency, Some(1.0));
        assert_eq!(r.pairs[1].efficiency, Some(0.5));
    }
}
