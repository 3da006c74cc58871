//! `mptcp bench`: a short run of every pair prints JSON with a goodput per pair, and
//! the namespaces are gone afterwards, also after Ctrl-C. Needs root (skipped
//! otherwise, failed under CI); the non-root message is checked by dropping root.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

fn require_root(test: &str) -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root (network namespaces and TUN devices), and CI is set");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces and TUN devices)");
    false
}

/// The bench's namespaces for process `pid`.
fn namespaces_of(pid: u32) -> Vec<String> {
    let out = Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list");
    let prefix = format!("mpb{pid}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|n| {
            n.strip_prefix(&prefix)
                .is_some_and(|r| r == "c" || r == "s")
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn bench_measures_every_pair_and_cleans_up() {
    if !require_root("bench_measures_every_pair_and_cleans_up") {
        return;
    }
    let child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args([
            "bench",
            "--rounds",
            "1",
            "--seconds",
            "1",
            "--warmup",
            "0.3",
            "--json",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mptcp bench");
    let pid = child.id();
    let out = child.wait_with_output().expect("wait");
    assert!(out.status.success(), "{}", out.status);
    let report: Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    assert_eq!(report["direction"], "client_to_server");
    let pairs = report["pairs"].as_array().expect("pairs");
    let names: Vec<&str> = pairs.iter().filter_map(|p| p["pair"].as_str()).collect();
    assert_eq!(names, ["kernel-kernel", "ours-kernel", "ours-ours"]);
    for p in pairs {
        let mbit = p["median_mbit_per_sec"].as_f64().expect("median");
        assert!(mbit > 1.0, "{p}");
        assert!(p["ratio_to_kernel"].as_f64().is_some(), "{p}");
        assert_eq!(p["samples"].as_array().expect("samples").len(), 1);
        // Ours counts subflows that carried at least 1 % of the data; on unlimited
        // paths a lowest-RTT scheduler may rightly leave the second one nearly idle.
        let subflows = p["samples"][0]["subflows"].as_u64().expect("subflows");
        assert!((1..=2).contains(&subflows), "{p}");
    }
    // The kernel client's second subflow (its `subflow` endpoint) is established.
    assert_eq!(pairs[0]["samples"][0]["subflows"], 2, "{}", pairs[0]);
    assert_eq!(pairs[0]["ratio_to_kernel"], 1.0);
    assert!(namespaces_of(pid).is_empty(), "namespaces left behind");
}

#[test]
fn bench_interrupted_deletes_its_namespaces() {
    if !require_root("bench_interrupted_deletes_its_namespaces") {
        return;
    }
    let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args(["bench", "--rounds", "5", "--seconds", "5", "--json"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mptcp bench");
    let pid = child.id();
    let deadline = Instant::now() + Duration::from_secs(30);
    while namespaces_of(pid).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "the bench never built its namespaces"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Let it get into a measurement.
    std::thread::sleep(Duration::from_secs(2));
    // SAFETY: signals our own child.
    assert_eq!(unsafe { libc::kill(pid as libc::pid_t, libc::SIGINT) }, 0);
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(128 + libc::SIGINT), "{status}");
    assert!(namespaces_of(pid).is_empty(), "namespaces left behind");
}

#[test]
fn bench_without_root_says_so() {
    if !require_root("bench_without_root_says_so") {
        return;
    }
    let out = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(env!("CARGO_BIN_EXE_mptcp"))
        .arg("bench")
        .output()
        .expect("setpriv (util-linux)");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("mptcp bench needs root"), "{stderr}");
}
