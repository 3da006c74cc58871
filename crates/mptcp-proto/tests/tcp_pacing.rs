//! Pacing in the TCP engine: segments the windows allow leave spread over the RTT, the
//! engine reports each release time through poll_timeout, and the caller's clock is
//! the only clock.

mod tcp_util;

use mptcp_proto::tcp::{Pacing, TcpConfig};
use mptcp_proto::time::{Duration, Instant};
use tcp_util::*;

/// Send times of the client's data segments in its first flight (the initial window),
/// with pacing on or off, over a 20 ms one-way delay.
fn first_flight(pacing: bool) -> (Vec<Instant>, u64) {
    let client = TcpConfig {
        pacing: pacing.then(Pacing::default),
        ..config()
    };
    let mut p = Pair::new(client, config(), Duration::from_millis(20));
    p.handshake();
    p.client_app.outbox = pattern(400_000, 7);
    assert!(
        p.run_until(Instant::from_secs(30), |p| p.server_app.inbox.len()
            == 400_000)
    );
    let times: Vec<Instant> = p
        .sent_by(Side::Client)
        .filter(|s| !s.segment.payload.is_empty())
        .map(|s| s.at)
        .take(10)
        .collect();
    (times, p.client.stats().pacing_waits)
}

#[test]
fn the_initial_window_leaves_back_to_back_without_pacing_and_spread_with_it() {
    let (burst, waits) = first_flight(false);
    assert_eq!(waits, 0);
    assert!(burst.iter().all(|&t| t == burst[0]), "{burst:?}");
    let (paced, waits) = first_flight(true);
    assert!(waits > 0);
    // Slow start gain 2 over the handshake's 40 ms RTT sample: 10 segments of the
    // initial window go at 2 * IW / 40 ms, one segment every 40 / 20 = 2 ms, the first
    // two (the bucket) at once: the tenth leaves 8 * 2 = 16 ms after the first.
    assert_eq!(paced[1], paced[0]);
    for pair in paced[1..].windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            (Duration::from_micros(1_900)..=Duration::from_micros(2_100)).contains(&gap),
            "{paced:?}"
        );
    }
    let spread = paced[9] - paced[0];
    assert!(
        (Duration::from_millis(15)..=Duration::from_millis(17)).contains(&spread),
        "{spread:?}"
    );
}

#[test]
fn pacing_can_be_switched_per_connection() {
    let mut p = Pair::new(config(), config(), Duration::from_millis(20));
    p.handshake();
    assert_eq!(p.client.connection().pacing(), None);
    p.client
        .connection_mut()
        .set_pacing(Some(Pacing::default()));
    assert_eq!(p.client.connection().pacing(), Some(Pacing::default()));
    p.client_app.outbox = pattern(100_000, 1);
    assert!(
        p.run_until(Instant::from_secs(30), |p| p.server_app.inbox.len()
            == 100_000)
    );
    assert!(p.client.stats().pacing_waits > 0);
}
