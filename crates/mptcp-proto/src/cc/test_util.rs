//! Helpers for the congestion controllers' unit tests: ACKs, subflow snapshots, and
//! driving a controller next to NewReno.

use crate::cc::{
    AckEvent, CongestionControl, CongestionEvent, NewReno, SubflowSnapshot, SubflowsSnapshot,
};
use crate::time::{Duration, Instant};

pub const MSS: u32 = 1_000;

pub fn ack(bytes: u64) -> AckEvent {
    AckEvent {
        bytes_acked: bytes,
        prior_in_flight: 0,
        rtt_sample: None,
        srtt: None,
        min_rtt: None,
        mss: MSS,
        in_recovery: false,
        app_limited: false,
        slow_start_limit: 2 * u64::from(MSS),
    }
}

/// A subflow with `cwnd_segments` * MSS window and `rtt_ms` smoothed RTT.
pub fn sf(cwnd_segments: u64, rtt_ms: u64) -> SubflowSnapshot {
    SubflowSnapshot {
        cwnd: cwnd_segments * u64::from(MSS),
        srtt: Some(Duration::from_millis(rtt_ms)),
        mss: MSS,
        ..SubflowSnapshot::default()
    }
}

pub fn snap(own: usize, subflows: &[SubflowSnapshot]) -> SubflowsSnapshot<'_> {
    SubflowsSnapshot { own, subflows }
}

/// A controller from `new` put in congestion avoidance at `cwnd` bytes.
pub fn in_congestion_avoidance<C: CongestionControl>(
    new: fn(u32, Option<u64>) -> C,
    cwnd: u64,
) -> C {
    let mut cc = new(MSS, Some(cwnd));
    let one = sf(1, 10);
    cc.on_congestion_event(
        Instant::ZERO,
        CongestionEvent::Loss,
        2 * cwnd,
        &SubflowsSnapshot::single(&one),
    );
    assert_eq!((cc.window(), cc.ssthresh()), (cwnd, cwnd));
    cc
}

/// Drives `cc` and a NewReno side by side over the single subflow `own` for 300
/// rounds, each an ACK of `bytes(round)` bytes after a loss every `loss_every`
/// rounds, and asserts that their windows and thresholds never differ.
pub fn assert_follows_newreno(
    cc: &mut dyn CongestionControl,
    own: &SubflowSnapshot,
    bytes: impl Fn(u64) -> u64,
    loss_every: u64,
) {
    let mut reno = NewReno::new(MSS, None);
    let s = SubflowsSnapshot::single(own);
    for round in 0..300u64 {
        if round % loss_every == loss_every - 1 {
            let flight = cc.window();
            cc.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, flight, &s);
            reno.on_congestion_event(Instant::ZERO, CongestionEvent::Loss, flight, &s);
        }
        cc.on_ack(Instant::ZERO, &ack(bytes(round)), &s);
        reno.on_ack(Instant::ZERO, &ack(bytes(round)), &s);
        assert_eq!(
            (cc.window(), cc.ssthresh()),
            (reno.window(), reno.ssthresh()),
            "{} round {round}",
            cc.name()
        );
    }
}
