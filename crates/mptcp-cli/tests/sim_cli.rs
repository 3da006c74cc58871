//! `mptcp sim ...` and the MPTCP flags, through the binary: the built-in scenarios,
//! the JSON summary, the files `--out` writes, `compare`'s matrix and the errors for
//! bad flag values. Simulated, so no root is needed.

use std::process::{Command, Output};

use mptcp_sim::builtin::BUILTINS;
use serde_json::Value;

fn mptcp(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args(args)
        .output()
        .expect("run mptcp")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and parses `--json` output, failing with the command's stderr.
fn json(args: &[&str]) -> Value {
    let out = mptcp(args);
    assert!(
        out.status.success(),
        "mptcp {args:?}: {}\n{}",
        out.status,
        stderr(&out)
    );
    let text = stdout(&out);
    assert_eq!(
        text.trim().lines().count(),
        1,
        "--json prints one line: {text}"
    );
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

fn subflows(conn: &Value) -> &Vec<Value> {
    conn["subflows"].as_array().expect("subflows array")
}

#[test]
fn sim_list_names_every_builtin_with_its_description() {
    let out = mptcp(&["sim", "list"]);
    assert!(out.status.success());
    let text = stdout(&out);
    for b in BUILTINS {
        let line = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(b.name))
            .unwrap_or_else(|| panic!("{} not listed:\n{text}", b.name));
        assert!(line.contains(b.description), "{line}");
    }
    for name in [
        "wifi-lte",
        "competing-tcp",
        "wifi-outage",
        "roadside",
        "lossy-path",
        "demo",
    ] {
        assert!(
            BUILTINS.iter().any(|b| b.name == name),
            "{name} is built in"
        );
    }
}

#[test]
fn every_builtin_runs_and_delivers_exactly_what_was_sent() {
    for b in BUILTINS {
        let v = json(&["sim", "run", b.name, "--json"]);
        assert_eq!(v["scenario"], b.name);
        assert_eq!(v["matched"], true, "{}: {v:#}", b.name);
        assert!(v["total_goodput_mbps"].as_f64().expect("goodput") > 1.0);
        assert_eq!(v["bytes_sent"], v["bytes_delivered"], "{}", b.name);
        assert!(v["longest_stall_ms"].as_f64().is_some());
        assert!(v["reinjected_bytes"].as_u64().is_some());
        let conns = v["connections"].as_array().expect("connections");
        assert!(!conns.is_empty());
        for c in conns {
            assert_eq!(c["matched"], true, "{}: {c:#}", b.name);
            assert_eq!(c["complete"], true, "{}: {c:#}", b.name);
            assert!(c["out_of_order_bytes"].as_u64().is_some(), "{c:#}");
            let sfs = subflows(c);
            assert!(!sfs.is_empty());
            let bytes: u64 = sfs
                .iter()
                .map(|s| s["bytes"].as_u64().expect("bytes"))
                .sum();
            assert!(
                bytes >= c["bytes_delivered"].as_u64().expect("delivered"),
                "{}: the subflows carried at least what arrived: {c:#}",
                b.name
            );
            let shares: f64 = sfs
                .iter()
                .map(|s| s["share_pct"].as_f64().expect("share"))
                .sum();
            assert!((shares - 100.0).abs() < 0.01, "{}: shares {shares}", b.name);
            if c["kind"] == "mptcp" {
                assert_eq!(c["mode"], "mptcp", "{}", b.name);
                assert!(sfs.len() >= 2, "{}: {c:#}", b.name);
            }
        }
    }
}

#[test]
fn sim_run_prints_the_summary_table() {
    let out = mptcp(&["sim", "run", "competing-tcp"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    for needle in [
        "scenario competing-tcp",
        "Mbit/s",
        "matched",
        "stall ms",
        "reinjected",
        "share",
        "state",
        "srtt ms",
        "min ms",
        "flow0/sf0",
        "flow0/sf1",
        "flow1 ",
        "all matched",
    ] {
        assert!(text.contains(needle), "{needle:?} missing:\n{text}");
    }
}

/// The demo's subflow table lists closed subflows too (so per-path totals are
/// complete) and says so: every row has a state, and the join tried during the
/// Wi-Fi outage, which never came up, is `failed` with no bytes rather than an
/// unexplained row of zeros.
#[test]
fn demo_subflow_table_says_which_subflows_are_closed_or_never_came_up() {
    let out = mptcp(&["demo"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let header = text
        .lines()
        .find(|l| l.starts_with("subflow "))
        .unwrap_or_else(|| panic!("no subflow table:\n{text}"));
    let cols: Vec<&str> = header.split_whitespace().collect();
    assert_eq!(
        cols[..6],
        ["subflow", "path", "(sender's", "view)", "state", "bytes"]
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .filter(|l| l.starts_with("flow0/sf"))
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(rows.len() >= 2, "{text}");
    // Columns: name, local, "->", remote, state, bytes, ...
    for row in &rows {
        let (state, bytes) = (row[4], row[5].parse::<u64>().expect("bytes"));
        assert!(
            ["up", "stale", "joining", "closed", "failed"].contains(&state),
            "{row:?}"
        );
        if state == "failed" {
            assert_eq!(
                bytes, 0,
                "a subflow that never came up carried nothing: {row:?}"
            );
        }
    }
    assert!(
        rows.iter().any(|r| r[4] == "failed"),
        "the demo's unanswered join shows as failed:\n{text}"
    );
    // The JSON summary names the same states.
    let v = json(&["sim", "run", "demo", "--json"]);
    let states: Vec<&str> = subflows(&v["connections"][0])
        .iter()
        .map(|s| s["state"].as_str().expect("state"))
        .collect();
    let table: Vec<&str> = rows.iter().map(|r| r[4]).collect();
    assert_eq!(states, table);
}

#[test]
fn out_writes_csv_series_and_an_svg_line_per_subflow() {
    let dir = std::env::temp_dir().join(format!("mptcp-sim-cli-out-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().expect("utf-8 temp dir");
    let v = json(&["sim", "run", "wifi-outage", "--json", "--out", dir_arg]);
    let conn = &v["connections"][0];
    let sfs = subflows(conn);
    let read = |name: &str| {
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
    };

    let summary: Value = serde_json::from_str(&read("summary.json")).expect("summary.json");
    assert_eq!(summary["bytes_delivered"], v["bytes_delivered"]);
    assert!(read("summary.txt").contains("flow0/sf1"));
    assert!(read("series.csv").starts_with("series,time_s,value\n"));

    let csv = read("subflows.csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("connection,subflow,local,remote,time_s,goodput_mbps,cwnd_bytes")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert!(rows.iter().all(|r| r.len() == 7), "7 columns each");
    for sf in sfs {
        let id = format!("sf{}", sf["id"]);
        let mine: Vec<&Vec<&str>> = rows.iter().filter(|r| r[1] == id).collect();
        assert!(mine.len() > 10, "{id} has a series");
        for r in &mine {
            assert!(r[4].parse::<f64>().is_ok(), "time {r:?}");
            assert!(r[5].is_empty() || r[5].parse::<f64>().is_ok(), "{r:?}");
            assert!(r[6].is_empty() || r[6].parse::<f64>().is_ok(), "{r:?}");
        }
    }
    // The Wi-Fi subflow goes quiet in the outage (3-9 s) and carries data before it.
    let wifi_goodput = |lo: f64, hi: f64| -> f64 {
        rows.iter()
            .filter(|r| r[1] == "sf0" && !r[5].is_empty())
            .filter(|r| (lo..hi).contains(&r[4].parse::<f64>().expect("time")))
            .map(|r| r[5].parse::<f64>().expect("goodput"))
            .fold(0.0, f64::max)
    };
    assert!(wifi_goodput(1.0, 3.0) > 10.0);
    assert!(wifi_goodput(4.0, 9.0) < 0.01);

    for file in ["goodput.svg", "cwnd.svg"] {
        let svg = read(file);
        assert!(svg.starts_with("<svg") || svg.contains("<svg "), "{file}");
        assert!(svg.trim_end().ends_with("</svg>"), "{file} is complete");
        let lines = svg.matches("<polyline").count();
        assert!(
            lines >= sfs.len(),
            "{file}: {lines} polylines for {} subflows",
            sfs.len()
        );
        for sf in sfs {
            let label = format!("flow0/sf{} ", sf["id"]);
            assert!(svg.contains(&label), "{file}: legend {label:?}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn compare_prints_one_row_per_combination() {
    let args = [
        "sim",
        "compare",
        "lossy-path",
        "--scheduler",
        "lowest-rtt,redundant",
        "--cc",
        "cubic,olia",
    ];
    let out = mptcp(&args);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("lowest-rtt") || l.starts_with("redundant"))
        .collect();
    assert_eq!(rows.len(), 4, "{text}");
    for (sched, cc) in [
        ("lowest-rtt", "cubic"),
        ("lowest-rtt", "olia"),
        ("redundant", "cubic"),
        ("redundant", "olia"),
    ] {
        assert!(
            rows.iter().any(|r| {
                let cols: Vec<&str> = r.split_whitespace().collect();
                cols[0] == sched && cols[1] == cc && cols.last() == Some(&"yes")
            }),
            "{sched}/{cc}:\n{text}"
        );
    }
    let mut json_args = args.to_vec();
    json_args.push("--json");
    let v = json(&json_args);
    let rows = v.as_array().expect("an array of summaries");
    assert_eq!(rows.len(), 4);
    assert_eq!(rows[0]["scheduler"], "lowest-rtt");
    assert_eq!(rows[0]["cc"], "cubic");
    assert_eq!(rows[3]["scheduler"], "redundant");
    assert_eq!(rows[3]["cc"], "olia");
    assert!(rows.iter().all(|r| r["matched"] == true));
}

#[test]
fn path_manager_flag_reaches_the_connections() {
    // ndiffports:3: three subflows, all over the first address pair.
    let v = json(&[
        "sim",
        "run",
        "wifi-lte",
        "--path-manager",
        "ndiffports:3",
        "--json",
    ]);
    assert_eq!(v["path_manager"], "ndiffports:3");
    let sfs = subflows(&v["connections"][0]);
    assert_eq!(sfs.len(), 3, "{sfs:#?}");
    assert!(
        sfs.iter()
            .all(|s| s["local"].as_str().expect("local").starts_with("10.1.0.1:")),
        "{sfs:#?}"
    );
    // backup: the LTE subflow joins as a backup and carries (almost) nothing while
    // Wi-Fi works.
    let v = json(&[
        "sim",
        "run",
        "wifi-lte",
        "--path-manager",
        "backup",
        "--json",
    ]);
    let sfs = subflows(&v["connections"][0]);
    let lte = sfs
        .iter()
        .find(|s| s["local"].as_str().expect("local").starts_with("10.2.0.1:"))
        .expect("an LTE subflow");
    assert_eq!(lte["backup"], true);
    assert!(lte["share_pct"].as_f64().expect("share") < 1.0, "{lte:#}");
    assert_eq!(v["matched"], true);
}

#[test]
fn scheduler_and_cc_flags_reach_the_connections() {
    // The coupled controller shares the bottleneck with the TCP flow, the uncoupled
    // one takes more than its share: the flag changed the subflows' controller.
    let run = |cc: &str| {
        let v = json(&["sim", "run", "competing-tcp", "--cc", cc, "--json"]);
        assert_eq!(v["cc"], cc);
        let goodput = |kind: &str| {
            v["connections"]
                .as_array()
                .expect("connections")
                .iter()
                .find(|c| c["kind"] == kind)
                .and_then(|c| c["goodput_mbps"].as_f64())
                .expect("goodput")
        };
        goodput("mptcp") / goodput("tcp")
    };
    let (coupled, uncoupled) = (run("lia"), run("cubic"));
    assert!(
        uncoupled > coupled * 1.2,
        "MPTCP/TCP goodput ratio: lia {coupled:.2}, cubic {uncoupled:.2}"
    );
    let v = json(&[
        "sim",
        "run",
        "lossy-path",
        "--scheduler",
        "redundant",
        "--json",
    ]);
    assert_eq!(v["scheduler"], "redundant");
}

#[test]
fn backup_host_option_marks_joins_to_that_address_on_both_ends() {
    // The server's second address is a backup: the client's join to it (after the
    // ADD_ADDR) is flagged as a backup by the server's SYN/ACK.
    let dir = std::env::temp_dir().join(format!("mptcp-sim-cli-backup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("backup.toml");
    std::fs::write(
        &file,
        r#"
[[host]]
name = "client"
addresses = ["10.1.0.1"]

[[host]]
name = "server"
addresses = ["10.0.0.1", "10.0.1.1"]
[host.options]
backup = "10.0.1.1"

[[router]]
name = "r"
addresses = ["10.1.0.254", "10.0.0.254", "10.0.1.254"]

[[link]]
name = "access"
a = "client"
b = "10.1.0.254"
rate = "50mbit"
delay = "5ms"

[[link]]
name = "main"
a = "10.0.0.254"
b = "10.0.0.1"
rate = "50mbit"
delay = "5ms"

[[link]]
name = "spare"
a = "10.0.1.254"
b = "10.0.1.1"
rate = "50mbit"
delay = "5ms"

[[flow]]
from = "client"
to = "10.0.0.1:80"
bytes = 2_000_000
kind = "mptcp"
"#,
    )
    .expect("write scenario");
    let v = json(&["sim", "run", file.to_str().expect("utf-8"), "--json"]);
    let sfs = subflows(&v["connections"][0]);
    let spare = sfs
        .iter()
        .find(|s| s["remote"] == "10.0.1.1:80")
        .unwrap_or_else(|| panic!("a join to the announced address: {sfs:#?}"));
    assert_eq!(spare["backup"], true, "{spare:#}");
    let main = sfs
        .iter()
        .find(|s| s["remote"] == "10.0.0.1:80")
        .expect("the initial subflow");
    assert_eq!(main["backup"], false);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Bad values fail before anything runs, with an error that names the valid choices.
#[test]
fn bad_flag_values_name_the_valid_choices() {
    for (args, needle) in [
        (
            vec!["sim", "run", "demo", "--scheduler", "fastest"],
            "expected one of lowest-rtt, round-robin[:SEGMENTS], redundant, blest, ecf",
        ),
        (
            vec!["sim", "compare", "demo", "--cc", "cubic,vegas"],
            "expected one of newreno, cubic, lia, olia, balia",
        ),
        (
            vec!["sim", "run", "demo", "--path-manager", "ndiffports:0"],
            "ndiffports count \"0\" is not a number from 1 to 255",
        ),
        (
            vec![
                "connect",
                "10.9.9.9:80",
                "--local",
                "10.9.9.1",
                "--cc",
                "vegas",
            ],
            "expected one of newreno, cubic, lia, olia, balia",
        ),
        (
            vec!["listen", "10.9.9.1:80", "--path-manager", "star"],
            "expected fullmesh, ndiffports[:N] or backup",
        ),
        (
            vec![
                "connect",
                "10.9.9.9:80",
                "--local",
                "10.9.9.1",
                "--backup",
                "wifi",
            ],
            "invalid value 'wifi' for '--backup <ADDR>'",
        ),
        (
            vec!["proxy", "server", "10.9.9.1:7000", "--scheduler", "minimum"],
            "expected one of lowest-rtt",
        ),
        (
            vec![
                "proxy",
                "client",
                "--socks",
                "127.0.0.1:1080",
                "--server",
                "10.9.9.9:7000",
                "--local",
                "10.9.9.1",
                "--path-manager",
                "mesh",
            ],
            "expected fullmesh, ndiffports[:N] or backup",
        ),
    ] {
        let out = mptcp(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = stderr(&out);
        assert!(err.contains(needle), "{args:?}: {err}");
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // A name that is neither built in nor a file lists the built-ins.
    let out = mptcp(&["sim", "run", "no-such-scenario"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("neither a built-in scenario (demo, wifi-lte"),
        "{err}"
    );
    // Our stack's choices do not apply to the kernel's MPTCP.
    let out = mptcp(&[
        "proxy",
        "server",
        "10.9.9.1:7000",
        "--kernel-mptcp",
        "--cc",
        "lia",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("with --kernel-mptcp use sysctl"));
}
