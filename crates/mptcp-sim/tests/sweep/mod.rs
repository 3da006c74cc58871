//! The seed sweep behind the random-network tests (`tcp_seeds.rs`, `mptcp_seeds.rs`,
//! `mptcp_slow_reader.rs`): each test says how one seed is checked, and this module
//! decides which seeds run, spreads them over the cores and reports the failures.
//!
//! Environment: `MPTCP_SEED=<seed>` replays that one seed alone; `MPTCP_SEEDS=<n>`
//! changes how many seeds run (the test's default otherwise) and `MPTCP_FIRST_SEED=<k>`
//! where they start (0 otherwise).

use std::sync::atomic::{AtomicU64, Ordering};

/// How a test's sweep runs and reports.
pub struct SeedSweep {
    /// Seeds run when `MPTCP_SEEDS` is not set.
    pub default_seeds: u64,
    /// How many failure reports are printed in full (lowest seeds first); every failing
    /// seed is named in the assertion all the same. Reports can be long, and one cause
    /// usually fails many seeds.
    pub reports_printed: usize,
    /// What a replayed seed prints when it passes (its scenario, say); `None` prints
    /// nothing.
    pub describe_passing_replay: Option<fn(u64) -> String>,
}

impl SeedSweep {
    /// Runs `check` on the seeds the environment asks for and panics, naming every
    /// failing seed, when any of them fails. `check` returns a report of what went
    /// wrong.
    pub fn run(&self, check: impl Fn(u64) -> Result<(), String> + Sync) {
        if let Ok(seed) = std::env::var("MPTCP_SEED") {
            let seed: u64 = seed
                .parse()
                .unwrap_or_else(|_| panic!("MPTCP_SEED={seed:?} is not a number"));
            match check(seed) {
                Ok(()) => {
                    if let Some(describe) = self.describe_passing_replay {
                        println!("seed {seed} ok:\n{}", describe(seed));
                    }
                }
                Err(report) => panic!("seed {seed} failed:\n{report}"),
            }
            return;
        }
        let seeds: u64 = env_number("MPTCP_SEEDS").unwrap_or(self.default_seeds);
        let first: u64 = env_number("MPTCP_FIRST_SEED").unwrap_or(0);
        let mut failures = check_in_parallel(first..first + seeds, &check);
        failures.sort_by_key(|(seed, _)| *seed);
        for (seed, report) in failures.iter().take(self.reports_printed) {
            eprintln!("seed {seed} FAILED:\n{report}");
        }
        let failed: Vec<u64> = failures.iter().map(|(seed, _)| *seed).collect();
        assert!(
            failed.is_empty(),
            "{} of seeds {first}..{} failed: {failed:?} (replay one with MPTCP_SEED=<seed>)",
            failed.len(),
            first + seeds
        );
    }
}

/// Checks every seed of `seeds`, one worker per core; returns the failures, unordered.
/// Seeds are independent, so workers take the next unchecked seed one at a time, which
/// keeps every core busy when some seeds take far longer than others.
fn check_in_parallel(
    seeds: std::ops::Range<u64>,
    check: &(impl Fn(u64) -> Result<(), String> + Sync),
) -> Vec<(u64, String)> {
    let next = AtomicU64::new(seeds.start);
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut failed = Vec::new();
                    loop {
                        let seed = next.fetch_add(1, Ordering::Relaxed);
                        if seed >= seeds.end {
                            return failed;
                        }
                        if let Err(report) = check(seed) {
                            failed.push((seed, report));
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().expect("a sweep worker panicked"))
            .collect()
    })
}

fn env_number(name: &str) -> Option<u64> {
    let value = std::env::var(name).ok()?;
    Some(
        value
            .parse()
            .unwrap_or_else(|_| panic!("{name}={value:?} is not a number")),
    )
}
