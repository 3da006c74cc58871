//! Multipath behaviour over links with rates, delays and queues: opportunistic
//! retransmission and penalisation, the redundant scheduler on a lossy path, coupled
//! congestion control at a shared bottleneck.

use std::cell::RefCell;
use std::rc::Rc;

use super::*;
use crate::cc::CcAlgorithm;
use crate::pm::Handover;
use crate::sched::SchedulerKind;

/// A drop-tail link: serialisation at `rate`, then a fixed propagation delay; seeded
/// random loss.
struct Link {
    /// Bits per second.
    rate: u64,
    delay: Duration,
    /// Largest backlog, bytes; a packet arriving to a fuller queue is dropped.
    queue: u64,
    loss: f64,
    busy_until: Instant,
    rng: StdRng,
    delivered: u64,
}

impl Link {
    fn new(mbit: u64, delay_ms: u64, queue: u64, loss: f64, seed: u64) -> Link {
        Link {
            rate: mbit * 1_000_000,
            delay: Duration::from_millis(delay_ms),
            queue,
            loss,
            busy_until: Instant::ZERO,
            rng: StdRng::seed_from_u64(seed),
            delivered: 0,
        }
    }

    /// When a packet of `len` bytes (TCP; 20 bytes of IP header added) sent at `now`
    /// arrives, or `None` when it is dropped.
    fn send(&mut self, now: Instant, len: usize) -> Option<Instant> {
        let bytes = len as u64 + 20;
        let start = self.busy_until.max(now);
        let backlog = (start - now).total_micros() * self.rate / 8_000_000;
        if backlog > self.queue {
            return None;
        }
        if self.loss > 0.0 && self.rng.random_bool(self.loss) {
            return None;
        }
        self.busy_until = start + Duration::from_micros(bytes * 8_000_000 / self.rate);
        self.delivered += bytes;
        Some(self.busy_until + self.delay)
    }
}

type Shared = Rc<RefCell<Link>>;

/// Routes by the client-side address: one (forward, reverse) link pair per client IP.
fn shaper(paths: Vec<(IpAddr, Shared, Shared)>) -> Shaper {
    Box::new(move |w: &Wire, now: Instant| {
        let (client_ip, forward) = match w.dir {
            Dir::ToServer => (w.src.ip(), true),
            Dir::ToClient => (w.dst.ip(), false),
        };
        let (_, fwd, rev) = paths
            .iter()
            .find(|(ip, _, _)| *ip == client_ip)
            .expect("a path for every client address");
        let link = if forward { fwd } else { rev };
        link.borrow_mut().send(now, w.bytes.len())
    })
}

fn link(mbit: u64, delay_ms: u64, queue: u64, loss: f64, seed: u64) -> Shared {
    Rc::new(RefCell::new(Link::new(mbit, delay_ms, queue, loss, seed)))
}

/// A client with a second address 10.0.1.1; `paths[0]` serves 10.0.0.1 and `paths[1]`
/// 10.0.1.1, each as (forward, reverse) links.
fn two_path_pair(
    client: MptcpConfig,
    server: MptcpConfig,
    paths: [(Shared, Shared); 2],
    seed: u64,
) -> Pair {
    let [(f0, r0), (f1, r1)] = paths;
    let mut p = Pair::with_seed(client, server, &[ip("10.0.1.1")], seed);
    p.shaper = Some(shaper(vec![
        (client_addr().ip(), f0, r0),
        (ip("10.0.1.1"), f1, r1),
    ]));
    p.connect();
    // Full establishment (the join's precondition) needs a data ACK from the server.
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(2)), b"go");
    p.run_for(Duration::from_secs(1));
    let up = p
        .client
        .stats()
        .subflows
        .iter()
        .filter(|s| s.established)
        .count();
    assert_eq!(up, 2, "both subflows carry data");
    p
}

/// Pumps `data` from the client to the server until all arrived or `limit` passed;
/// returns what arrived and how long it took.
fn timed_upload(p: &mut Pair, data: &[u8], limit: Duration) -> (Vec<u8>, Duration) {
    let start = p.now;
    let got = p.transfer(true, data, limit);
    (got, p.now - start)
}

/// Goodput in Mbit/s.
fn mbit(bytes: usize, d: Duration) -> f64 {
    bytes as f64 * 8.0 / d.total_micros() as f64
}

const FAST_MBIT: u64 = 8;
const FAST_MS: u64 = 10;
const FAST_Q: u64 = 40_000;
const SLOW_MBIT: u64 = 2;
const SLOW_MS: u64 = 75;
const SLOW_Q: u64 = 40_000;
const RCVBUF: usize = 64 * 1024;

fn heterogeneous(opportunistic: bool) -> (Vec<u8>, Duration, ConnStats) {
    // Raiciu et al.'s Wi-Fi + 3G case: path 0 8 Mbit/s, 20 ms RTT; path 1 2 Mbit/s,
    // 150 ms RTT; 40 kB queues; a 64 KiB receive window. Whenever the scheduler puts
    // data on path 1 it holds the shared window's left edge for 150 ms or more.
    let mut client = small_config();
    client.send_buffer = 512 * 1024;
    client.opportunistic_retransmission = opportunistic;
    let mut server = small_config();
    server.recv_buffer = RCVBUF;
    let paths = [
        (
            link(FAST_MBIT, FAST_MS, FAST_Q, 0.0, 1),
            link(FAST_MBIT, FAST_MS, FAST_Q, 0.0, 2),
        ),
        (
            link(SLOW_MBIT, SLOW_MS, SLOW_Q, 0.0, 3),
            link(SLOW_MBIT, SLOW_MS, SLOW_Q, 0.0, 4),
        ),
    ];
    let mut p = two_path_pair(client, server, paths, 7);
    let data = pattern(3_000_000, 11);
    let (got, took) = timed_upload(&mut p, &data, Duration::from_secs(120));
    assert_bytes(&got, &data);
    (got, took, p.client.stats())
}

use crate::mptcp::ConnStats;

#[test]
fn opportunistic_retransmission_lifts_goodput_over_a_slow_path_with_a_small_window() {
    let (got, with_or, stats_on) = heterogeneous(true);
    let (_, without, stats_off) = heterogeneous(false);
    let (on, off) = (mbit(got.len(), with_or), mbit(got.len(), without));
    eprintln!(
        "opportunistic on: {on:.2} Mbit/s ({} bytes again, {} penalties); off: {off:.2} Mbit/s",
        stats_on.opportunistic_bytes, stats_on.penalties
    );
    assert!(stats_on.opportunistic_bytes > 0 && stats_on.penalties > 0);
    assert_eq!((stats_off.opportunistic_bytes, stats_off.penalties), (0, 0));
    // Measured: 4.66 Mbit/s with, 3.98 Mbit/s without (283 kB sent again, 21
    // penalties); over eight variants of the two delays, 4.54 and 3.69 on average.
    // Before the receiver announced a reopening window as soon as it doubled
    // (`MptcpConnection::read`), rather than only once it had been under 2 MSS, the
    // sender learnt of it later and both were slower: 4.23 and 2.70.
    assert!(on > 1.15 * off, "on {on:.2} vs off {off:.2} Mbit/s");
}

#[test]
fn redundant_scheduler_delivers_byte_exact_with_one_path_dropping_30_percent() {
    let mut client = small_config();
    client.scheduler = SchedulerKind::Redundant;
    client.send_buffer = 256 * 1024;
    let server = small_config();
    let paths = [
        (link(10, 10, 60_000, 0.0, 1), link(10, 10, 60_000, 0.0, 2)),
        (link(10, 20, 60_000, 0.3, 3), link(10, 20, 60_000, 0.0, 4)),
    ];
    let mut p = two_path_pair(client, server, paths, 3);
    let data = pattern(1_000_000, 5);
    let (got, took) = timed_upload(&mut p, &data, Duration::from_secs(120));
    assert_bytes(&got, &data);
    let stats = p.client.stats();
    let scheduled: Vec<u64> = stats.subflows.iter().map(|s| s.bytes_scheduled).collect();
    eprintln!(
        "redundant: {:.2} Mbit/s, scheduled per subflow {scheduled:?}",
        mbit(got.len(), took)
    );
    // The fastest path sets the pace and carries nearly everything (queueing on the
    // clean path sometimes makes the lossy one the faster); the lossy one carries
    // copies of what its collapsing window admits. Measured: [1_000_002, 94_521].
    assert!(scheduled[0] > 900_000, "{scheduled:?}");
    assert!(scheduled[1] > 10_000, "{scheduled:?}");
    assert!(scheduled[0] + scheduled[1] > data.len() as u64 + 10_000);
    // The server's reassembly saw more bytes than it delivered: duplicates dropped.
    let delivered: u64 = p
        .server()
        .stats()
        .subflows
        .iter()
        .map(|s| s.bytes_received)
        .sum();
    assert!(delivered > data.len() as u64, "{delivered}");
}

/// Writes as much as fits and reads everything that arrived; returns bytes read.
fn pump(p: &mut Pair, chunk: &[u8]) -> usize {
    while p.client.write(chunk) > 0 {}
    let mut buf = [0u8; 16 * 1024];
    let mut got = 0;
    loop {
        let n = p.server().read(&mut buf);
        if n == 0 {
            break;
        }
        got += n;
    }
    got
}

/// An MPTCP connection with two subflows and one single-path connection (NewReno),
/// all through one 10 Mbit/s bottleneck (40 ms RTT, 50 kB queue), with the same
/// buffers. The single-path flow starts sending `tcp_start` into the run (and once
/// connected). Returns the bytes each delivered during the last 20 s of a 30 s run.
fn shared_bottleneck(cc: CcAlgorithm, tcp_start: Duration) -> (u64, u64) {
    let bottleneck = link(10, 20, 50_000, 0.0, 9);
    let config = |cc: CcAlgorithm| {
        let mut c = small_config();
        c.send_buffer = 512 * 1024;
        c.recv_buffer = 512 * 1024;
        c.tcp.congestion_control = cc;
        // Exactly two subflows: under make-before-break, a subflow that goes stale in
        // the start-up (two RTOs while both flows overfill the queue) gets a
        // replacement on the same address pair, and when it recovers both stay.
        c.pm.handover = Handover::BreakBeforeMake;
        c
    };
    let mut multi = Pair::with_seed(config(cc), config(cc), &[ip("10.0.1.1")], 21);
    multi.shaper = Some(shaper(vec![
        (
            client_addr().ip(),
            bottleneck.clone(),
            link(100, 20, 1 << 20, 0.0, 1),
        ),
        (
            ip("10.0.1.1"),
            bottleneck.clone(),
            link(100, 20, 1 << 20, 0.0, 2),
        ),
    ]));
    let reno = CcAlgorithm::NewReno;
    let mut single = Pair::with_seed(config(reno), config(reno), &[], 22);
    single.shaper = Some(shaper(vec![(
        client_addr().ip(),
        bottleneck.clone(),
        link(100, 20, 1 << 20, 0.0, 3),
    )]));
    // Both pairs advance in lockstep (1 ms, about one packet time at 10 Mbit/s) so the
    // shared link sees their packets nearly in time order. The pair that runs first in
    // a step queues its packets of that millisecond ahead of the other's, even ones
    // sent later: a fixed order hands it the last places in a full queue and the other
    // the drops. With the MPTCP pair always first, single runs averaged LIA 1.17x and
    // BALIA 1.11x (40 start times); alternating, 1.04x and 1.01x, as with 100 us
    // steps (1.08x, 1.02x) at 2.5 times the cost. So the order alternates.
    let chunk = pattern(64 * 1024, 1);
    let (mut a, mut b) = (0u64, 0u64);
    let start = multi.now;
    let mut t = start;
    let mut multi_first = true;
    while t < start + Duration::from_secs(30) {
        t += Duration::from_millis(1);
        let counting = t >= start + Duration::from_secs(10);
        let connected =
            |p: &Pair| p.server.is_some() && p.client_events.contains(&MptcpEvent::Connected);
        let got_a = if connected(&multi) {
            pump(&mut multi, &chunk) as u64
        } else {
            0
        };
        let got_b = if connected(&single) && t >= start + tcp_start {
            pump(&mut single, &chunk) as u64
        } else {
            0
        };
        if counting {
            a += got_a;
            b += got_b;
        }
        if multi_first {
            multi.run_until(t);
            single.run_until(t);
        } else {
            single.run_until(t);
            multi.run_until(t);
        }
        multi_first = !multi_first;
        multi.log.clear();
        single.log.clear();
    }
    let up = multi
        .client
        .stats()
        .subflows
        .iter()
        .filter(|s| s.established)
        .count();
    assert_eq!(up, 2);
    (a, b)
}

/// What the MPTCP connection delivered at the shared bottleneck relative to the
/// single-path flow, summed over `SHARED_BOTTLENECK_RUNS` runs that differ in when the
/// single-path flow starts. One 20 s run is a single sample of a chaotic system
/// (drop-tail losses fall on whichever flow's packet meets the full queue): over 40
/// start times the ratio of one run has a standard deviation of 0.15-0.2 (LIA 0.67x
/// to 1.68x); summed over 8 runs, 0.05-0.07.
fn shared_bottleneck_ratio(cc: CcAlgorithm) -> f64 {
    let (mut mptcp, mut tcp) = (0u64, 0u64);
    for run in 0..SHARED_BOTTLENECK_RUNS {
        let (a, b) = shared_bottleneck(cc, Duration::from_millis(100 + 37 * run));
        mptcp += a;
        tcp += b;
    }
    let r = mptcp as f64 / tcp as f64;
    eprintln!("shared bottleneck, {cc}: {mptcp} vs tcp {tcp} bytes ({r:.2}x)");
    r
}

const SHARED_BOTTLENECK_RUNS: u64 = 8;

#[test]
fn coupled_congestion_control_takes_about_one_tcp_share_at_a_shared_bottleneck() {
    // RFC 6356 goal 2 (do no harm): two subflows through one bottleneck next to one
    // TCP flow take about what that flow takes. Measured: LIA 1.04x, OLIA 1.01x,
    // BALIA 1.03x (before the RTO changes of issue 6's checks: 0.99x, 0.87x, 1.00x;
    // the same sum for 8 other sets of 8 start times then: LIA 0.99-1.16, OLIA
    // 0.83-1.13, BALIA 0.98-1.10).
    for cc in [CcAlgorithm::Lia, CcAlgorithm::Olia, CcAlgorithm::Balia] {
        let r = shared_bottleneck_ratio(cc);
        assert!((0.8..=1.2).contains(&r), "{cc}: {r:.2}x");
    }
}

#[test]
fn uncoupled_subflows_take_about_two_tcp_shares_at_a_shared_bottleneck() {
    // The same setup uncoupled shows that the coupling is what holds the share down:
    // two NewReno subflows take about two shares. Measured: 2.19x (before the RTO
    // changes of issue 6's checks 2.00x, and 1.84-2.08 for 8 other sets of 8 start
    // times).
    let r = shared_bottleneck_ratio(CcAlgorithm::NewReno);
    assert!((1.7..=2.4).contains(&r), "uncoupled: {r:.2}x");
}
