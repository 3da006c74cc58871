//! The connection-level window and a slow reader: window updates on read, and the
//! connection-level zero-window probe that recovers a lost one.
//!
//! The stall these guard against: the reader's window fills, every byte sent is
//! acknowledged, so no subflow runs a retransmission timer, and the data waiting for
//! the window never reached a subflow, so no TCP persist timer runs either. The
//! reader's window update is then the only thing that can restart the transfer; if it
//! is lost, only the sender's connection-level probe can.

use std::cell::Cell;
use std::rc::Rc;

use super::*;
use crate::mptcp::{ConnMode, SubflowId};
use crate::wire::mptcp::{DsnWire, Dss};

fn dss(w: &Wire) -> Option<Dss> {
    w.mptcp().into_iter().find_map(|o| match o {
        MptcpOption::Dss(d) => Some(d),
        _ => None,
    })
}

/// A server with a 16 KiB connection-level receive buffer, and `extra` client
/// addresses (joins) up and fully established.
fn small_window_pair(extra: &[IpAddr], seed: u64) -> Pair {
    let mut server = small_config();
    server.recv_buffer = 16 * 1024;
    let mut client = small_config();
    client.send_buffer = 256 * 1024;
    // Opportunistic retransmission can leave a copy of acknowledged data mapped to a
    // subflow whose TCP window closed, and that subflow's own persist timer then
    // probes too: the tests here are about the connection's probe alone.
    client.opportunistic_retransmission = false;
    let mut p = Pair::with_seed(client, server, extra, seed);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(300));
    assert_eq!(p.client.subflow_ids().count(), 1 + extra.len());
    p
}

/// Writes `data` and lets the unread server's window close: every byte the window
/// admitted is acknowledged and the rest waits in the client's send buffer.
fn fill_window(p: &mut Pair, data: &[u8]) {
    assert_eq!(p.client.write(data), data.len());
    p.run_for(Duration::from_millis(150));
    assert_eq!(p.server().readable(), 16 * 1024, "the window is full");
    let seq = &p.client.core.seq;
    assert_eq!(seq.snd_una(), seq.snd_nxt(), "nothing outstanding");
    assert_eq!(seq.send_window(), 0);
}

/// Reads everything readable now on the server.
fn drain(p: &mut Pair, got: &mut Vec<u8>) {
    let mut buf = [0u8; 4096];
    loop {
        let n = p.server().read(&mut buf);
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
    }
}

/// A filter that drops what the server sends while `on` is set, counting it.
fn server_blackout(on: Rc<Cell<bool>>, dropped: Rc<Cell<u32>>) -> Filter {
    Box::new(move |w| {
        if w.dir == Dir::ToClient && on.get() {
            dropped.set(dropped.get() + 1);
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    })
}

/// Reads on the server until `want.len()` bytes arrived or `limit` passed; returns
/// how long it took.
fn read_to_end(p: &mut Pair, got: &mut Vec<u8>, want: &[u8], limit: Duration) -> Duration {
    let start = p.now;
    while got.len() < want.len() && p.now < start + limit {
        drain(p, got);
        p.run_for(Duration::from_millis(5));
    }
    drain(p, got);
    assert_bytes(got, want);
    p.now - start
}

#[test]
fn a_lost_window_update_is_recovered_by_the_zero_window_probe() {
    let mut p = small_window_pair(&[], 1);
    let data = pattern(60_000, 1);
    fill_window(&mut p, &data);
    let probes_before = p.client.stats().window_probes;
    // The application reads the whole buffer; the window updates this sends are lost.
    let (on, dropped) = (Rc::new(Cell::new(true)), Rc::new(Cell::new(0)));
    p.filter = Some(server_blackout(on.clone(), dropped.clone()));
    let mut got = Vec::new();
    drain(&mut p, &mut got);
    p.flush();
    on.set(false);
    assert!(dropped.get() >= 1, "a window update went out on read");
    // Nothing else would ever tell the client: only its probe can fetch the window.
    let took = read_to_end(&mut p, &mut got, &data, Duration::from_secs(30));
    assert!(
        p.client.stats().window_probes > probes_before,
        "{:?}",
        p.client.stats()
    );
    // The probe period is an RTO (200 ms here), doubled per probe already sent while
    // the window was closed: seconds, not the 30 s limit.
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert_eq!(p.client.mode(), ConnMode::Mptcp);
    assert!(p.client.stats().subflows.iter().all(|s| s.rto_count == 0));
}

#[test]
fn a_reader_that_never_sends_a_window_update_is_probed() {
    // A peer that reads but never announces it (say a stack without window updates
    // on read). It reads only a full buffer, once every ACK of it went out, so that
    // no ACK of data carries the news either: each time, the probe's answer must.
    let mut p = small_window_pair(&[], 2);
    let data = pattern(100_000, 2);
    fill_window(&mut p, &data);
    let on = Rc::new(Cell::new(false));
    p.filter = Some(server_blackout(on.clone(), Rc::new(Cell::new(0))));
    let mut got = Vec::new();
    let start = p.now;
    let mut reads = 0;
    while got.len() < data.len() && p.now < start + Duration::from_secs(120) {
        let readable = p.server().readable();
        if readable == 16 * 1024 || got.len() + readable == data.len() {
            // Past the delayed-ACK timeout: the last ACK of this data is out.
            p.run_for(Duration::from_millis(100));
            on.set(true);
            drain(&mut p, &mut got);
            p.flush();
            on.set(false);
            reads += 1;
        }
        p.run_for(Duration::from_millis(5));
    }
    assert_bytes(&got, &data);
    // Every full-buffer read but the last left the client blocked.
    assert_eq!(reads, 7);
    assert!(
        p.client.stats().window_probes >= 6,
        "{:?}",
        p.client.stats()
    );
}

/// The client's subflow ids, in order.
fn subflows(p: &Pair) -> Vec<SubflowId> {
    p.client.subflow_ids().collect()
}

/// The connection-level probes sent since the last call, with the subflow each
/// went on. (The wire cannot tell them apart from a subflow's own persist probes,
/// which a subflow whose TCP-level window closed under mapped data keeps sending.)
fn new_probes(p: &Pair, seen: &mut u64) -> Vec<SubflowId> {
    let now = p.client.stats().window_probes;
    let fresh = now - *seen;
    *seen = now;
    assert!(fresh <= 1, "one probe per period");
    let on = SubflowId(p.client.core.window_probe_next.wrapping_sub(1));
    (0..fresh).map(|_| on).collect()
}

#[test]
fn the_probe_backs_off_and_rotates_over_the_subflows() {
    let mut p = small_window_pair(&[ip("10.0.1.1")], 3);
    let ids = subflows(&p);
    let data = pattern(100_000, 3);
    fill_window(&mut p, &data);
    // The server does not read for a long while: the client probes, every probe is
    // answered with a closed window.
    let mut seen = p.client.stats().window_probes;
    let mut probes: Vec<(Instant, SubflowId)> = Vec::new();
    let end = p.now + Duration::from_secs(60);
    while p.now < end {
        p.run_for(Duration::from_millis(10));
        for id in new_probes(&p, &mut seen) {
            probes.push((p.now, id));
        }
    }
    assert!(probes.len() >= 7, "{probes:?}");
    // On the subflows in turn.
    for pair in probes.windows(2) {
        assert_ne!(pair[0].1, pair[1].1, "{probes:?}");
    }
    // Each period twice the one before (within the 10 ms steps) until rto_max.
    let gaps: Vec<u64> = probes
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).total_micros() / 1000)
        .collect();
    for g in gaps.windows(2) {
        let (a, b) = (g[0] as f64, g[1] as f64);
        assert!((1.8..=2.2).contains(&(b / a)), "gaps (ms) {gaps:?}");
    }
    // Probing never counted against the paths: both subflows are up and fresh.
    assert_eq!(subflows(&p), ids);
    assert!(
        p.client
            .stats()
            .subflows
            .iter()
            .all(|s| s.established && !s.stale && s.rto_count == 0),
        "{:?}",
        p.client.stats()
    );
    assert!(
        !p.client_events
            .iter()
            .any(|e| matches!(e, MptcpEvent::SubflowDown { .. })),
        "{:?}",
        p.client_events
    );
    // The reader comes back: its update opens the window, the probing stops, and
    // the transfer ends intact.
    let mut got = Vec::new();
    read_to_end(&mut p, &mut got, &data, Duration::from_secs(10));
    let sent = p.client.stats().window_probes;
    p.run_for(Duration::from_secs(30));
    assert_eq!(
        p.client.stats().window_probes,
        sent,
        "no probe once unblocked"
    );
    assert_eq!(p.client.core.window_probe_at, None);
    assert_eq!(p.client.core.window_probe_backoff, 0);
}

#[test]
fn a_dead_path_does_not_keep_the_probe_from_the_live_one() {
    for seed in 0..6 {
        let mut p = small_window_pair(&[ip("10.0.1.1")], 10 + seed);
        let data = pattern(80_000, seed);
        fill_window(&mut p, &data);
        // The second path dies silently and the window update on the first is lost:
        // the probe must find its way over the first path.
        let dead = ip("10.0.1.1");
        let on = Rc::new(Cell::new(true));
        let blackout = on.clone();
        p.filter = Some(Box::new(move |w| {
            let path = if w.dir == Dir::ToServer {
                w.src.ip()
            } else {
                w.dst.ip()
            };
            if path == dead || (w.dir == Dir::ToClient && blackout.get()) {
                Verdict::Drop
            } else {
                Verdict::Pass
            }
        }));
        // Skip a seed-dependent number of probe periods so the dead path is next in
        // turn for some seeds.
        p.run_for(Duration::from_millis(300 * seed));
        let mut got = Vec::new();
        drain(&mut p, &mut got);
        p.flush();
        on.set(false);
        let took = read_to_end(&mut p, &mut got, &data, Duration::from_secs(60));
        // A probe lost on the dead path neither lengthens the period nor blocks the
        // next one: measured 0.15-0.75 s.
        assert!(took < Duration::from_secs(2), "seed {seed}: {took:?}");
    }
}

#[test]
fn an_unanswered_probe_does_not_lengthen_the_period() {
    let mut p = small_window_pair(&[ip("10.0.1.1")], 6);
    let data = pattern(100_000, 6);
    fill_window(&mut p, &data);
    // The second path dies silently; idle, its subflow does not notice.
    let dead = ip("10.0.1.1");
    p.filter = Some(Box::new(move |w| {
        let path = if w.dir == Dir::ToServer {
            w.src.ip()
        } else {
            w.dst.ip()
        };
        if path == dead {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let live = p
        .client
        .subflow_for(client_addr(), server_addr())
        .expect("initial");
    let mut seen = p.client.stats().window_probes;
    let mut probes: Vec<(Instant, SubflowId)> = Vec::new();
    let end = p.now + Duration::from_secs(60);
    while p.now < end {
        p.run_for(Duration::from_millis(10));
        for id in new_probes(&p, &mut seen) {
            probes.push((p.now, id));
        }
    }
    assert!(probes.len() >= 8, "{probes:?}");
    // The period after probe j doubles only if probe j - 1 was answered: it went on
    // the live path.
    let gaps: Vec<f64> = probes
        .windows(2)
        .map(|w| (w[1].0 - w[0].0).total_micros() as f64)
        .collect();
    for j in 1..gaps.len() {
        let ratio = gaps[j] / gaps[j - 1];
        let want = if probes[j - 1].1 == live { 2.0 } else { 1.0 };
        assert!(
            (ratio - want).abs() < 0.15,
            "gap {j}: ratio {ratio:.2}, want {want} ({probes:?})"
        );
    }
    // Half of them went on the live path.
    let on_live = probes.iter().filter(|(_, id)| *id == live).count();
    assert!(on_live * 2 >= probes.len() - 1, "{probes:?}");
}

#[test]
fn reading_sends_a_window_update_on_every_data_subflow() {
    let mut p = small_window_pair(&[ip("10.0.1.1")], 4);
    let data = pattern(100_000, 4);
    fill_window(&mut p, &data);
    let shift = p.server().subflows[0].tcp.window_shifts().0;
    // What the server emits right after a read of `n` bytes: pure ACKs.
    let read_and_flush = |p: &mut Pair, n: usize| -> Vec<Wire> {
        let mut buf = vec![0u8; n];
        assert_eq!(p.server().read(&mut buf), n);
        let first = p.log.len();
        p.flush();
        p.log[first..]
            .iter()
            .filter(|w| w.dir == Dir::ToClient)
            .cloned()
            .collect()
    };
    let acked = p.client.local_key().idsn() + 1 + 2 + 16 * 1024;
    // 1000 bytes: less than 2 MSS, the client could not send a full segment: quiet.
    assert!(read_and_flush(&mut p, 1000).is_empty());
    // 4000 bytes in all: an update on each subflow, with the data ACK and the window.
    let updates = read_and_flush(&mut p, 3000);
    assert_eq!(updates.len(), 2, "one per subflow");
    let mut paths: Vec<SocketAddr> = updates.iter().map(|w| w.dst).collect();
    paths.dedup();
    assert_eq!(paths.len(), 2);
    for w in &updates {
        assert_eq!(w.payload_len(), 0);
        let d = dss(w).expect("a DSS");
        assert_eq!(d.data_ack, Some(DsnWire::Long(acked)));
        assert_eq!(u64::from(w.repr().window) << shift, 4000);
    }
    // Another 1000: the window grows by a quarter, not worth a segment.
    assert!(read_and_flush(&mut p, 1000).is_empty());
    // 8000 in all: it doubled since the last update.
    let updates = read_and_flush(&mut p, 3000);
    assert_eq!(updates.len(), 2);
    assert!(
        updates
            .iter()
            .all(|w| u64::from(w.repr().window) << shift == 8000)
    );
    // The update reached the client: data flows again at once, without a probe.
    let probes = p.client.stats().window_probes;
    let before = p.log.len();
    p.run_for(Duration::from_millis(25));
    assert!(
        p.log[before..]
            .iter()
            .any(|w| w.dir == Dir::ToServer && w.payload_len() > 0),
        "data follows the update within one RTT"
    );
    assert_eq!(p.client.stats().window_probes, probes);
    let mut got = data[..8000].to_vec();
    read_to_end(&mut p, &mut got, &data, Duration::from_secs(10));
}

#[test]
fn a_prompt_reader_sends_no_extra_window_updates() {
    // The peer knows a wide window: reads are no reason for a segment.
    let mut p = small_window_pair(&[], 5);
    let data = pattern(4000, 5);
    p.client.write(&data);
    p.run_for(Duration::from_millis(100));
    let mut buf = [0u8; 8192];
    let first = p.log.len();
    assert_eq!(p.server().read(&mut buf), 4000);
    p.flush();
    assert!(p.log[first..].is_empty(), "{}", p.dump());
}

/// A slow reader over a lossy network, where the reader's pure ACKs (its window
/// updates, and the answers to probes) are lost far more often than data. Returns
/// how many probes the sender needed.
fn slow_reader(seed: u64, extra: &[IpAddr]) -> u64 {
    let mut p = small_window_pair(extra, seed);
    p.loss = 0.03;
    p.dup = 0.01;
    p.reorder = 0.03;
    let mut rng = StdRng::seed_from_u64(seed ^ 0xac4);
    p.filter = Some(Box::new(move |w| {
        if w.dir == Dir::ToClient && w.payload_len() == 0 && rng.random_bool(0.3) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let data = pattern(120_000, seed);
    let mut written = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 600];
    let start = p.now;
    let mut step = 0u64;
    while got.len() < data.len() && p.now < start + Duration::from_secs(300) {
        written += p.client.write(&data[written..]);
        if step % 80 < 20 {
            // 600 bytes every 5 ms: 120 kB/s, well under what the path carries.
            let n = p.server().read(&mut buf);
            got.extend_from_slice(&buf[..n]);
        } else if step % 80 == 79 {
            // Or asleep for 300 ms (the sender blocked, probing), then everything at
            // once: the window goes from closed to wide open with one update, which
            // the loss may take.
            drain(&mut p, &mut got);
        }
        step += 1;
        p.run_for(Duration::from_millis(5));
    }
    assert_bytes(&got, &data);
    assert_eq!(p.client.mode(), ConnMode::Mptcp, "seed {seed}");
    p.client.stats().window_probes
}

#[test]
fn a_slow_reader_over_lossy_paths_gets_every_byte_many_seeds() {
    let mut probes = 0;
    for seed in 0..20 {
        probes += slow_reader(seed, &[]);
        probes += slow_reader(100 + seed, &[ip("10.0.1.1")]);
    }
    assert!(
        probes > 0,
        "the readers' naps must have left the senders probing"
    );
}
