//! A fluid comparison harness, pure arithmetic and no network: flows share a bottleneck
//! that holds `capacity` bytes per RTT (BDP plus queue); whenever their windows add up
//! to more, every flow sees a loss in that round (synchronized losses, as with a
//! drop-tail queue). Otherwise each flow gets one ACK per segment of its window, spread
//! over the RTT, so time-based controllers (CUBIC) see real time.

use super::{
    AckEvent, CcAlgorithm, CongestionControl, CongestionEvent, SubflowSnapshot, SubflowsSnapshot,
};
use crate::time::{Duration, Instant};

const MSS: u32 = 1_000;

struct Flow {
    cc: Box<dyn CongestionControl>,
    /// Round in which the flow starts sending.
    start_round: u64,
}

/// Runs `rounds` RTTs and returns each flow's mean window over the second half.
fn run(flows: &mut [Flow], capacity: u64, rtt: Duration, rounds: u64) -> Vec<f64> {
    let own = SubflowSnapshot::default();
    let snapshot = SubflowsSnapshot::single(&own);
    let mut sums = vec![0.0; flows.len()];
    for round in 0..rounds {
        let start = Instant::ZERO + rtt.saturating_mul(round);
        let active = |f: &Flow| round >= f.start_round;
        let total: u64 = flows
            .iter()
            .filter(|f| active(f))
            .map(|f| f.cc.window())
            .sum();
        for (i, flow) in flows.iter_mut().enumerate() {
            if !active(flow) {
                continue;
            }
            let window = flow.cc.window();
            if round >= rounds / 2 {
                sums[i] += window as f64;
            }
            if total > capacity {
                flow.cc
                    .on_congestion_event(start, CongestionEvent::Loss, window, &snapshot);
                flow.cc.on_recovery_exit(start + rtt);
                continue;
            }
            let segments = (window / u64::from(MSS)).max(1);
            for k in 0..segments {
                let now = start + Duration::from_micros(rtt.total_micros() * k / segments);
                let ack = AckEvent {
                    bytes_acked: u64::from(MSS),
                    prior_in_flight: window,
                    rtt_sample: Some(rtt),
                    srtt: Some(rtt),
                    min_rtt: Some(rtt),
                    mss: MSS,
                    in_recovery: false,
                    app_limited: false,
                    slow_start_limit: 2 * u64::from(MSS),
                };
                flow.cc.on_ack(now, &ack, &snapshot);
            }
        }
    }
    let counted = (rounds - rounds / 2) as f64;
    sums.into_iter().map(|s| s / counted).collect()
}

fn jain(x: &[f64]) -> f64 {
    let sum: f64 = x.iter().sum();
    let squares: f64 = x.iter().map(|v| v * v).sum();
    sum * sum / (x.len() as f64 * squares)
}

fn two_flows(algorithm: CcAlgorithm) -> Vec<Flow> {
    vec![
        Flow {
            cc: algorithm.build(MSS, None),
            start_round: 0,
        },
        // The second flow arrives once the first owns the whole link.
        Flow {
            cc: algorithm.build(MSS, None),
            start_round: 40,
        },
    ]
}

#[test]
fn jain_index_of_known_shares() {
    assert_eq!(jain(&[1.0, 1.0]), 1.0);
    assert_eq!(jain(&[1.0, 0.0]), 0.5);
    assert!((jain(&[3.0, 1.0]) - 0.8).abs() < 1e-12);
}

#[test]
fn newreno_flows_converge_to_a_fair_share() {
    let mut flows = two_flows(CcAlgorithm::NewReno);
    let means = run(&mut flows, 200_000, Duration::from_millis(50), 1_200);
    let index = jain(&means);
    assert!(index >= 0.95, "Jain index {index}, means {means:?}");
    // Together they use the link: AIMD keeps the sum between beta and 1 of capacity.
    let used: f64 = means.iter().sum();
    assert!((100_000.0..=200_000.0).contains(&used), "{means:?}");
}

#[test]
fn cubic_flows_converge_to_a_fair_share() {
    let mut flows = two_flows(CcAlgorithm::Cubic);
    let means = run(&mut flows, 200_000, Duration::from_millis(50), 1_200);
    let index = jain(&means);
    assert!(index >= 0.95, "Jain index {index}, means {means:?}");
    // CUBIC's gentler decrease keeps the link fuller than NewReno's halving.
    let used: f64 = means.iter().sum();
    assert!((140_000.0..=200_000.0).contains(&used), "{means:?}");
}

#[test]
fn factory_builds_the_named_controller() {
    assert_eq!(CcAlgorithm::default(), CcAlgorithm::Cubic);
    for algorithm in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
        let cc = algorithm.build(1_460, None);
        assert_eq!(cc.name(), algorithm.name());
        assert_eq!(cc.window(), 14_600);
        assert_eq!(algorithm.build(1_460, Some(2_920)).window(), 2_920);
    }
}
