//! The long versions of issue 6's checks (the tests in `tests/multipath_checks.rs` run
//! small ones): RFC 6356 goals 1 and 3 over every scheduler and congestion control,
//! handover under several detection settings and failure times, the redundant
//! scheduler over a lossy path against lowest-RTT, and pacing at a bulk flow's start.
//!
//! ```sh
//! cargo run --release -p mptcp-sim --example multipath_checks            # everything
//! cargo run --release -p mptcp-sim --example multipath_checks -- goal1   # one section
//! ```
//!
//! Sections: goal1, goal3, handover, redundant, pacing.

#[path = "../tests/checks/mod.rs"]
mod checks;

use checks::{
    PAYLOAD_SHARE, PathSpec, aggregation, cross_traffic, handover, lossy_path, start_queue,
};
use mptcp_proto::Duration;

fn main() {
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    if wanted("goal1") {
        goal1();
    }
    if wanted("goal3") {
        goal3();
    }
    if wanted("handover") {
        handovers();
    }
    if wanted("redundant") {
        redundant();
    }
    if wanted("pacing") {
        pacing();
    }
}

fn mbit(bps: f64) -> f64 {
    bps / 1e6
}

fn goal1() {
    println!("RFC 6356 goal 1: bulk transfer, 30 s, default buffers, a BDP of queue per path");
    println!(
        "goodput from 3 s against the paths' payload capacity (rate x {PAYLOAD_SHARE:.4}); \
         wire = IP bytes over rate from 3 s"
    );
    println!(
        "{:<28} {:<11} {:<7} {:>9} {:>9} {:>8} {:>8} {:>8} {:>10}",
        "paths", "scheduler", "cc", "Mbit/s", "% cap", "% whole", "wire a", "wire b", "max gap"
    );
    let variants = [
        (
            "50M/10ms + 20M/100ms RTT",
            PathSpec::with_bdp_queue(50, 10),
            PathSpec::with_bdp_queue(20, 100),
        ),
        (
            "50M/20ms + 20M/200ms RTT",
            PathSpec::with_bdp_queue(50, 20),
            PathSpec::with_bdp_queue(20, 200),
        ),
    ];
    for (name, a, b) in variants {
        for scheduler in ["lowest-rtt", "round-robin", "blest", "ecf"] {
            for cc in ["cubic", "newreno", "lia", "olia", "balia"] {
                let options = format!("scheduler = \"{scheduler}\"\ncc = \"{cc}\"");
                let r = aggregation(
                    a,
                    b,
                    &options,
                    Duration::from_secs(30),
                    Duration::from_secs(3),
                );
                println!(
                    "{:<28} {:<11} {:<7} {:>9.2} {:>8.1}% {:>7.1}% {:>7.1}% {:>7.1}% {:>10?}",
                    name,
                    scheduler,
                    cc,
                    mbit(r.steady_goodput_bps),
                    r.steady_goodput_bps / r.payload_capacity_bps * 100.0,
                    r.goodput_bps / r.payload_capacity_bps * 100.0,
                    r.steady_wire_utilization[0] * 100.0,
                    r.steady_wire_utilization[1] * 100.0,
                    r.longest_gap,
                );
            }
        }
    }
    println!();
}

fn goal3() {
    println!(
        "RFC 6356 goal 3: paths A and B of 10 Mbit/s, 40 ms; a NewReno TCP flow on A; \
         60 s, measured from 10 s, mean over 4 TCP start times"
    );
    println!(
        "{:<8} {:>9} {:>9} {:>9} {:>11} {:>9}",
        "cc", "% on B", "A Mbit/s", "B Mbit/s", "MPTCP Mbit/s", "TCP Mbit/s"
    );
    for cc in ["newreno", "cubic", "lia", "olia", "balia"] {
        let starts = [0u64, 137, 500, 1234];
        let runs: Vec<_> = starts
            .iter()
            .map(|&ms| {
                cross_traffic(
                    cc,
                    Duration::from_secs(60),
                    Duration::from_secs(10),
                    Duration::from_millis(ms),
                )
            })
            .collect();
        let mean = |f: fn(&checks::CrossTraffic) -> f64| {
            runs.iter().map(f).sum::<f64>() / runs.len() as f64
        };
        println!(
            "{:<8} {:>8.1}% {:>9.2} {:>9.2} {:>11.2} {:>9.2}",
            cc,
            mean(|r| r.share_b) * 100.0,
            mbit(mean(|r| r.a_bps)),
            mbit(mean(|r| r.b_bps)),
            mbit(mean(|r| r.mptcp_bps)),
            mbit(mean(|r| r.tcp_bps)),
        );
    }
    println!();
}

fn handovers() {
    println!(
        "Handover: A (20 Mbit/s, 20 ms) dies without a RST, B (10 Mbit/s, 40 ms) lives; \
         20 MB bulk transfer"
    );
    println!(
        "{:<32} {:>7} {:>11} {:>10} {:>11} {:>9} {:>11} {:>7}",
        "configuration",
        "fail at",
        "resumed",
        "wait",
        "worst wait",
        "B srtt",
        "then Mbit/s",
        "intact"
    );
    let configs = [
        ("default (stale after 2 RTOs)", ""),
        ("stale_rto_count = 1", "stale_rto_count = 1"),
        (
            "T = 100 ms (RTO floor 200 ms)",
            "fail_after_no_progress = \"100ms\"",
        ),
        (
            "min_rto 50 ms, T = 100 ms",
            "min_rto = \"50ms\"\nfail_after_no_progress = \"100ms\"",
        ),
        (
            "min_rto 50 ms, T = 60 ms",
            "min_rto = \"50ms\"\nfail_after_no_progress = \"60ms\"",
        ),
        (
            "min_rto 50 ms, K = 1 RTO",
            "min_rto = \"50ms\"\nfail_after_rtos = 1",
        ),
        (
            "break-before-make, T = 100 ms",
            "handover = \"break-before-make\"\nfail_after_no_progress = \"100ms\"",
        ),
    ];
    for (name, options) in configs {
        for fail_ms in [3_000u64, 3_370, 4_100] {
            let r = handover(options, Duration::from_millis(fail_ms), 20_000_000);
            println!(
                "{:<32} {:>6}s {:>11?} {:>10?} {:>11?} {:>9} {:>11.2} {:>7}",
                name,
                fail_ms as f64 / 1e3,
                r.restored_after,
                r.gap,
                r.longest_wait_after,
                r.srtt_b.map_or("-".into(), |d| format!("{d:?}")),
                mbit(r.goodput_after_bps),
                r.intact && r.delivered == r.requested,
            );
        }
    }
    println!();
}

fn redundant() {
    println!(
        "Redundant scheduler: a clean path and one with 5 % loss, 10 Mbit/s each; longest \
         wait between deliveries (max over seeds 1-5)"
    );
    println!(
        "{:<11} {:<10} {:<16} {:>12} {:>12} {:>10}",
        "scheduler", "app rate", "RTT clean/lossy", "max wait", "clean RTT", "Mbit/s"
    );
    for (rate, bytes) in [("5mbit", 3_000_000u64), ("100gbit", 5_000_000)] {
        for (clean, lossy) in [(40u64, 40u64), (10, 80), (80, 10), (20, 20)] {
            for scheduler in ["redundant", "lowest-rtt"] {
                let runs: Vec<_> = (1..=5)
                    .map(|seed| lossy_path(scheduler, clean, lossy, "5%", rate, bytes, seed))
                    .collect();
                let worst = runs
                    .iter()
                    .map(|r| r.longest_gap)
                    .max()
                    .unwrap_or(Duration::ZERO);
                let goodput = runs.iter().map(|r| r.goodput_bps).sum::<f64>() / runs.len() as f64;
                let intact = runs.iter().all(|r| r.intact);
                println!(
                    "{:<11} {:<10} {:<16} {:>12?} {:>10}ms {:>10.2}{}",
                    scheduler,
                    if rate == "100gbit" { "bulk" } else { rate },
                    format!("{clean}/{lossy} ms"),
                    worst,
                    clean,
                    mbit(goodput),
                    if intact { "" } else { "  NOT INTACT" },
                );
            }
        }
    }
    println!();
}

fn pacing() {
    println!(
        "Pacing: goal-1 network, bulk flow for 30 s; queue on the 100 ms path over its \
         first round trips (window below the BDP)"
    );
    println!(
        "{:<8} {:>6} {:>12} {:>12} {:>10}",
        "pacing", "RTTs", "peak start", "peak run", "Mbit/s"
    );
    for rtts in [2u64, 4, 5] {
        for on in [false, true] {
            let r = start_queue(on, Duration::from_secs(30), rtts);
            println!(
                "{:<8} {:>6} {:>11}p {:>11}p {:>10.2}",
                if on { "on" } else { "off" },
                rtts,
                r.peak_start_packets,
                r.peak_packets,
                mbit(r.goodput_bps)
            );
        }
    }
    println!();
}
