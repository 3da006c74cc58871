//! Issue 6, "how it is checked": RFC 6356 goals 1 and 3, handover, the redundant
//! scheduler over a lossy path, and pacing, each measured on our stack in the
//! simulator. (Goal 2, the shared bottleneck, is
//! `mptcp::tests::multipath::coupled_congestion_control_takes_about_one_tcp_share_at_a_shared_bottleneck`
//! in mptcp-proto; the algorithms' equations are unit-tested beside each of them.)
//!
//! These are the small versions; `cargo run --release -p mptcp-sim --example
//! multipath_checks` runs the long ones and prints their tables.

mod checks;

use checks::{PathSpec, aggregation, cross_traffic, handover, lossy_path, start_queue};
use mptcp_proto::Duration;

// ---- RFC 6356 goal 1 -------------------------------------------------------------------

/// The goal-1 paths: 50 Mbit/s with a 10 ms RTT and 20 Mbit/s with a 100 ms RTT, each
/// with a bandwidth-delay product of queue (the buffer a loss-based flow needs to keep
/// its path busy; with less, a single TCP flow does not fill the path either).
fn goal_one_paths() -> (PathSpec, PathSpec) {
    (
        PathSpec::with_bdp_queue(50, 10),
        PathSpec::with_bdp_queue(20, 100),
    )
}

#[test]
fn rfc6356_goal1_two_unequal_paths_carry_95_percent_of_their_capacity() {
    // A bulk transfer with default buffers (8 MiB at the connection level) for 8 s.
    //
    // Capacity: the links count IP bytes, and every full data packet carries 80 bytes
    // of IP, TCP, timestamp and DSS headers, so goodput can reach at most 94.7 % of
    // the link rates. Both readings are checked: each path's wire utilization (IP
    // bytes over its rate) and the goodput against the paths' payload capacity
    // (rate x 1420 / 1500).
    //
    // Window: RFC 6356's goals are about the equilibrium the coupled increase reaches
    // (§3 leaves slow start as TCP's), so the goal is measured from 3 s on. Before
    // that is the start-up transient: slow start on the 100 ms path overshoots its
    // queue at ~0.8 s and recovers by ~1.5 s, a cost set by the transfer's length, not
    // by the multipath logic. The whole run is checked too (>= 93 %), so a start-up
    // regression cannot hide behind the window. (Application deliveries at the
    // window's edges depend on what the reassembly holds then, fast-path data waiting
    // for the slow path's, so the windowed goodput moves by about a percent with the
    // window; the wire utilization is exact.)
    let (a, b) = goal_one_paths();
    let duration = Duration::from_secs(8);
    let steady = Duration::from_secs(3);
    for (scheduler, cc) in [
        ("lowest-rtt", "cubic"),
        ("blest", "cubic"),
        ("ecf", "cubic"),
        ("lowest-rtt", "lia"),
        ("lowest-rtt", "balia"),
    ] {
        let options = format!("scheduler = \"{scheduler}\"\ncc = \"{cc}\"");
        let r = aggregation(a, b, &options, duration, steady);
        let steady_share = r.steady_goodput_bps / r.payload_capacity_bps;
        let whole_share = r.goodput_bps / r.payload_capacity_bps;
        println!(
            "{scheduler}/{cc}: goodput {:.2} Mbit/s from 3 s = {:.1} % of the payload \
             capacity ({:.1} % of the link rates), whole run {:.1} %; wire utilization \
             from 3 s {:.1} % / {:.1} %; longest delivery gap {:?}",
            r.steady_goodput_bps / 1e6,
            steady_share * 100.0,
            r.steady_goodput_bps / r.capacity_bps * 100.0,
            whole_share * 100.0,
            r.steady_wire_utilization[0] * 100.0,
            r.steady_wire_utilization[1] * 100.0,
            r.longest_gap,
        );
        assert!(steady_share >= 0.95, "{scheduler}/{cc}: {steady_share:.3}");
        assert!(whole_share >= 0.93, "{scheduler}/{cc}: {whole_share:.3}");
        for (path, u) in ["a", "b"].iter().zip(r.steady_wire_utilization) {
            assert!(u >= 0.95, "{scheduler}/{cc}: path {path} at {u:.3}");
        }
    }
}

// ---- RFC 6356 goal 3 -------------------------------------------------------------------

#[test]
fn rfc6356_goal3_coupled_cc_moves_traffic_off_the_path_with_cross_traffic() {
    // Two equal paths (10 Mbit/s, 40 ms); a NewReno TCP flow shares path A's
    // bottleneck. The fair, resource-pooling outcome gives the TCP flow path A and
    // the MPTCP flow path B: everything on B. Uncoupled subflows each take a TCP
    // share, a third of the MPTCP flow's bytes staying on A. Measured from 5 s to 20 s
    // (after the start-up; the TCP flow starts with the MPTCP flow).
    let run = |cc: &str| {
        let r = cross_traffic(
            cc,
            Duration::from_secs(20),
            Duration::from_secs(5),
            Duration::ZERO,
        );
        println!(
            "{cc}: {:.1} % of the MPTCP bytes on B (A {:.2}, B {:.2} Mbit/s); MPTCP \
             {:.2} Mbit/s, competing TCP {:.2} Mbit/s",
            r.share_b * 100.0,
            r.a_bps / 1e6,
            r.b_bps / 1e6,
            r.mptcp_bps / 1e6,
            r.tcp_bps / 1e6
        );
        r
    };
    let uncoupled = run("newreno");
    for cc in ["lia", "olia", "balia"] {
        let r = run(cc);
        // Most of the traffic on B, clearly more than uncoupled, and the TCP flow
        // gets most of A back: at least 80 % of its payload capacity (BALIA, the
        // least eager of the three to leave a congested path, measured 84 %).
        assert!(r.share_b >= 0.85, "{cc}: {:.3} on B", r.share_b);
        assert!(
            r.share_b >= uncoupled.share_b + 0.07,
            "{cc}: {:.3} vs uncoupled {:.3}",
            r.share_b,
            uncoupled.share_b
        );
        assert!(
            r.tcp_bps >= 0.8 * 10e6 * checks::PAYLOAD_SHARE && r.tcp_bps > uncoupled.tcp_bps + 1e6,
            "{cc}: TCP {:.2} vs {:.2} Mbit/s next to uncoupled",
            r.tcp_bps / 1e6,
            uncoupled.tcp_bps / 1e6
        );
        // Moving traffic is not giving up: the MPTCP flow keeps about path B.
        assert!(
            r.mptcp_bps >= 8.5e6,
            "{cc}: {:.2} Mbit/s",
            r.mptcp_bps / 1e6
        );
    }
    assert!(
        (0.6..0.85).contains(&uncoupled.share_b),
        "uncoupled: {:.3}",
        uncoupled.share_b
    );
}

// ---- handover --------------------------------------------------------------------------

const HANDOVER_BYTES: u64 = 20_000_000;

#[test]
fn handover_in_the_default_configuration_restores_delivery_within_one_second() {
    // Path A (20 Mbit/s, 20 ms) carries two thirds of a bulk transfer when it goes
    // down at 3 s without a RST; path B (10 Mbit/s, 40 ms) lives. By default a subflow
    // turns stale after two RTOs without progress (about 200 + 400 ms) and its data is
    // reinjected on B.
    let r = handover("", Duration::from_secs(3), HANDOVER_BYTES);
    println!(
        "default: delivery resumed {:?} after the failure (longest wait {:?}), then \
         {:.2} Mbit/s; {} of {} bytes, intact: {}",
        r.restored_after,
        r.gap,
        r.goodput_after_bps / 1e6,
        r.delivered,
        r.requested,
        r.intact
    );
    assert!(r.intact && r.delivered == r.requested, "{r:?}");
    assert!(r.restored_after <= Duration::from_secs(1), "{r:?}");
    // Restored means path B's goodput: at least 90 % of its payload capacity.
    assert!(
        r.goodput_after_bps >= 0.9 * 10e6 * checks::PAYLOAD_SHARE,
        "{r:?}"
    );
}

#[test]
fn handover_tuned_restores_delivery_within_one_rtt_plus_detection() {
    // Detection tuned: a subflow without progress for 100 ms fails (the RTO floor
    // lowered to 50 ms, since the limit never undercuts the subflow's own RTO). The
    // application then waits at most the detection time plus one RTT of path B (the
    // reinjected data crossing it, queue included).
    let detection = Duration::from_millis(100);
    let r = handover(
        "min_rto = \"50ms\"\nfail_after_no_progress = \"100ms\"",
        Duration::from_secs(3),
        HANDOVER_BYTES,
    );
    println!(
        "tuned (T = 100 ms): delivery resumed {:?} after the failure (longest wait \
         {:?}; B's srtt {:?}, base RTT 40 ms), then {:.2} Mbit/s; intact: {}",
        r.restored_after,
        r.gap,
        r.srtt_b,
        r.goodput_after_bps / 1e6,
        r.intact
    );
    assert!(r.intact && r.delivered == r.requested, "{r:?}");
    let srtt_b = r.srtt_b.expect("path B carried data when A died");
    assert!(r.restored_after <= detection + srtt_b, "{r:?}");
    assert!(
        r.goodput_after_bps >= 0.9 * 10e6 * checks::PAYLOAD_SHARE,
        "{r:?}"
    );
}

// ---- redundant scheduler ---------------------------------------------------------------

#[test]
fn redundant_scheduler_hides_a_lossy_path_no_stall_beyond_one_clean_rtt() {
    // A clean path and one with 5 % loss, both 10 Mbit/s and 40 ms, and an application
    // sending 5 Mbit/s (3 MB): the clean path has room for every byte, so with every
    // byte on both paths the application never waits for a loss on the lossy one. The
    // lowest-RTT scheduler, for contrast, puts part of the stream on the lossy path
    // and the application waits for its repairs.
    let clean_rtt = Duration::from_millis(40);
    for seed in 1..=3 {
        let r = lossy_path("redundant", 40, 40, "5%", "5mbit", 3_000_000, seed);
        println!(
            "redundant, seed {seed}: longest wait {:?} (ending {:?}), DATA_FIN {:?} after \
             the last byte, {:.2} Mbit/s, scheduled clean/lossy {:?}",
            r.longest_gap,
            r.gap_ended,
            r.close_after_last_byte,
            r.goodput_bps / 1e6,
            r.scheduled
        );
        assert!(r.intact, "seed {seed}: {r:?}");
        assert!(r.longest_gap < clean_rtt, "seed {seed}: {r:?}");
        // Every byte went on the clean path, and the lossy one carried copies.
        assert!(r.scheduled[0] >= 3_000_000, "seed {seed}: {r:?}");
        assert!(r.scheduled[1] > 300_000, "seed {seed}: {r:?}");
        // The end of the stream is not held up either.
        assert!(r.close_after_last_byte < clean_rtt, "seed {seed}: {r:?}");
    }
    let default = lossy_path("lowest-rtt", 40, 40, "5%", "5mbit", 3_000_000, 1);
    println!("lowest-rtt, seed 1: longest wait {:?}", default.longest_gap);
    assert!(default.intact);
    assert!(default.longest_gap > clean_rtt, "{default:?}");
}

// ---- pacing ----------------------------------------------------------------------------

#[test]
fn pacing_lowers_the_queue_at_a_bulk_flows_start_without_costing_throughput() {
    // The goal-1 network. Over the 100 ms path's first four round trips its window
    // (10, 20, 40, 80 segments) stays below the path's 166-packet BDP, so every packet
    // queued there is a burst: without pacing each ACK releases segments back to back
    // (and the initial window goes at once); with pacing they leave at 2 cwnd/srtt.
    // The slow-start overshoot that follows fills the queue either way (pacing does
    // not change the window; HyStart++ would), and its recovery, at twice the path's
    // capacity in flight, takes about half a second longer paced: the whole 10 s
    // carry about 2 % less. After the start-up (from 4 s) the two are equal.
    let duration = Duration::from_secs(10);
    let off = start_queue(false, duration, 4);
    let on = start_queue(true, duration, 4);
    println!(
        "start (4 RTTs of path B): peak queue {} packets without pacing, {} with; \
         whole run {} / {}; goodput {:.2} / {:.2} Mbit/s, from 4 s {:.2} / {:.2} Mbit/s",
        off.peak_start_packets,
        on.peak_start_packets,
        off.peak_packets,
        on.peak_packets,
        off.goodput_bps / 1e6,
        on.goodput_bps / 1e6,
        off.steady_goodput_bps / 1e6,
        on.steady_goodput_bps / 1e6
    );
    assert!(off.peak_start_packets >= 20, "{off:?}");
    assert!(
        on.peak_start_packets * 4 <= off.peak_start_packets,
        "paced {on:?} vs unpaced {off:?}"
    );
    assert!(
        on.steady_goodput_bps >= 0.99 * off.steady_goodput_bps,
        "paced {on:?} vs unpaced {off:?}"
    );
    assert!(
        on.goodput_bps >= 0.97 * off.goodput_bps,
        "paced {on:?} vs unpaced {off:?}"
    );
}

#[test]
fn a_rate_limited_application_sends_at_its_rate() {
    // The redundant check relies on the simulator's rate-limited application.
    let r = lossy_path("lowest-rtt", 40, 40, "0%", "4mbit", 2_000_000, 1);
    assert!(r.intact);
    assert!(
        (3.8e6..=4.0e6).contains(&r.goodput_bps),
        "{:.3} Mbit/s",
        r.goodput_bps / 1e6
    );
}
