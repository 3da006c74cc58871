//! Our TCP over the simulator: byte-exact transfers, and the report the runner gives.

use std::path::Path;

use mptcp_sim::Scenario;
use mptcp_sim::traffic::{RunOptions, run_scenario};

fn scenario(text: &str) -> Scenario {
    Scenario::parse(text, Path::new(".")).expect("test scenario parses")
}

#[test]
fn one_megabyte_over_a_clean_link_arrives_intact() {
    let s = scenario(
        r#"
        [[host]]
        name = "a"
        addresses = ["10.0.0.1"]
        [[host]]
        name = "b"
        addresses = ["10.0.0.2"]
        [[link]]
        name = "ab"
        a = "10.0.0.1"
        b = "10.0.0.2"
        rate = "10mbit"
        delay = "10ms"
        queue = "100 packets"
        [[flow]]
        from = "a"
        to = "b:5000"
        bytes = 1_000_000
        kind = "tcp"
        "#,
    );
    let (report, _sim) = run_scenario(&s, &RunOptions::default()).expect("runs");
    println!("{report}");
    let flow = &report.flows[0];
    assert!(flow.is_complete_and_intact(), "{flow:?}");
    assert_eq!(flow.delivered, 1_000_000);
    // 1 MB at 10 Mbit/s is 0.8 s of serialization; slow start and the handshake add a
    // few RTTs, but never more than a second.
    let completion = flow.completion.expect("completed");
    assert!(
        completion.as_secs_f64() > 0.8 && completion.as_secs_f64() < 1.8,
        "{completion:?}"
    );
}

/// Two hosts joined by one link with the given TOML settings, a flow from a to b.
fn two_hosts(link: &str, flow: &str, host_options: &str) -> Scenario {
    scenario(&format!(
        r#"
        [[host]]
        name = "a"
        addresses = ["10.0.0.1"]
        options = {{ {host_options} }}
        [[host]]
        name = "b"
        addresses = ["10.0.0.2"]
        options = {{ {host_options} }}
        [[link]]
        name = "ab"
        a = "10.0.0.1"
        b = "10.0.0.2"
        {link}
        [[flow]]
        from = "a"
        to = "b:5000"
        kind = "tcp"
        {flow}
        "#
    ))
}

/// Jain's fairness index of a set of throughputs: 1 is perfectly fair.
fn jain(xs: &[f64]) -> f64 {
    let sum: f64 = xs.iter().sum();
    let squares: f64 = xs.iter().map(|x| x * x).sum();
    sum * sum / (xs.len() as f64 * squares)
}

fn shared_bottleneck(cc_a: &str, cc_b: &str, seed: u64) -> Vec<f64> {
    let s = scenario(&format!(
        r#"
        seed = {seed}
        duration = "60s"
        [[host]]
        name = "s1"
        addresses = ["10.1.0.1"]
        options = {{ cc = "{cc_a}", send_buffer = "2mb", recv_buffer = "2mb" }}
        [[host]]
        name = "s2"
        addresses = ["10.1.0.2"]
        options = {{ cc = "{cc_b}", send_buffer = "2mb", recv_buffer = "2mb" }}
        [[host]]
        name = "dst"
        addresses = ["10.0.0.1"]
        options = {{ send_buffer = "2mb", recv_buffer = "2mb" }}
        [[router]]
        name = "r"
        addresses = ["10.1.0.254", "10.1.0.253", "10.0.0.254"]
        [[link]]
        name = "s1"
        a = "10.1.0.1"
        b = "10.1.0.254"
        rate = "1gbit"
        delay = "1ms"
        [[link]]
        name = "s2"
        a = "10.1.0.2"
        b = "10.1.0.253"
        rate = "1gbit"
        delay = "1ms"
        [[link]]
        name = "bottleneck"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "20mbit"
        delay = "20ms"
        queue = "100 packets"
        [[flow]]
        from = "s1"
        to = "dst:80"
        kind = "tcp"
        [[flow]]
        from = "s2"
        to = "dst:80"
        start = "2s"
        kind = "tcp"
        "#
    ));
    let (report, _sim) = run_scenario(&s, &RunOptions::default()).expect("runs");
    println!("{cc_a} vs {cc_b}:\n{report}");
    report.flows.iter().map(|f| f.goodput_bps).collect()
}

#[test]
fn cubic_flows_share_a_bottleneck_fairly() {
    let rates = shared_bottleneck("cubic", "cubic", 1);
    let index = jain(&rates);
    println!("Jain index {index:.4}");
    assert!(index >= 0.95, "Jain index {index} for {rates:?}");
    assert!(
        rates.iter().sum::<f64>() > 0.9 * 20e6,
        "the bottleneck stays busy: {rates:?}"
    );
}

#[test]
fn newreno_flows_share_a_bottleneck_fairly() {
    let rates = shared_bottleneck("newreno", "newreno", 1);
    let index = jain(&rates);
    println!("Jain index {index:.4}");
    assert!(index >= 0.95, "Jain index {index} for {rates:?}");
    assert!(
        rates.iter().sum::<f64>() > 0.9 * 20e6,
        "the bottleneck stays busy: {rates:?}"
    );
}

#[test]
fn cubic_and_newreno_share_a_short_bottleneck_fairly() {
    // At 20 Mbit/s x 42 ms CUBIC runs in its Reno-friendly region (RFC 9438 §4.3), so it
    // must not starve a NewReno flow.
    let rates = shared_bottleneck("cubic", "newreno", 1);
    let index = jain(&rates);
    println!("Jain index {index:.4}");
    assert!(index >= 0.95, "Jain index {index} for {rates:?}");
}
