//! The network model, observed from hosts: timing, queues, impairments, outages,
//! traces, routing and determinism.

use std::cell::RefCell;
use std::hash::{Hash, Hasher};
use std::net::{IpAddr, SocketAddr};
use std::rc::Rc;

use mptcp_proto::{Duration, Instant};
use mptcp_sim::packet::{self, parse_ip, parse_tcp};
use mptcp_sim::testing::{Blaster, Sink};
use mptcp_sim::{
    CapacityTrace, Context, Direction, Directions, DropReason, Host, LinkConfig, LinkId, LossModel,
    NodeId, Rate, Reorder, Simulator, Verdict,
};

const A: &str = "10.0.0.1";
const B: &str = "10.0.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn sock(s: &str, port: u16) -> SocketAddr {
    SocketAddr::new(ip(s), port)
}

/// A blaster at A and a keeping sink at B joined by one link (`cfg` from A to B).
fn pair(seed: u64, cfg: LinkConfig, blaster: Blaster) -> (Simulator, NodeId, NodeId, LinkId) {
    let mut sim = Simulator::new(seed);
    let src = sim.add_host("a", &[ip(A)], Box::new(blaster)).unwrap();
    let dst = sim
        .add_host("b", &[ip(B)], Box::new(Sink::keeping()))
        .unwrap();
    let link = sim
        .add_link("ab", ip(A), ip(B), cfg, LinkConfig::default())
        .unwrap();
    (sim, src, dst, link)
}

fn blaster(size: usize, rate: Option<Rate>, count: u64) -> Blaster {
    Blaster::new(sock(A, 1000), sock(B, 80), size, rate, count)
}

fn seqs(sink: &Sink) -> Vec<u32> {
    sink.arrivals
        .iter()
        .map(|(_, p)| parse_tcp(p, &parse_ip(p).unwrap()).unwrap().seq)
        .collect()
}

fn unlimited() -> LinkConfig {
    LinkConfig {
        queue_packets: None,
        ..LinkConfig::default()
    }
}

#[test]
fn packet_arrives_after_serialization_plus_propagation_exactly() {
    let cfg = LinkConfig::new(Rate::mbit(12), Duration::from_millis(10));
    let (mut sim, _, dst, _) = pair(1, cfg, blaster(1500, None, 2));
    sim.run_until(Instant::from_secs(1));
    let sink = sim.host::<Sink>(dst).unwrap();
    let times: Vec<Instant> = sink.arrivals.iter().map(|(t, _)| *t).collect();
    // 1500 B at 12 Mbit/s is 1 ms; the second packet waits for the first.
    assert_eq!(times, [Instant::from_millis(11), Instant::from_millis(12)]);
}

#[test]
fn queue_drops_the_packet_beyond_its_packet_limit() {
    let cfg = LinkConfig {
        queue_packets: Some(5),
        ..LinkConfig::new(Rate::mbit(12), Duration::from_millis(1))
    };
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(1000, None, 6));
    sim.run_until(Instant::from_secs(1));
    let stats = sim.link_stats(link, Direction::AToB);
    assert_eq!(stats.enqueued_packets, 5);
    assert_eq!(stats.drops.get(DropReason::QueueFull), 1);
    assert_eq!(stats.drops.total(), 1);
    let sink = sim.host::<Sink>(dst).unwrap();
    // The sixth (the last offered) is the one dropped.
    assert_eq!(seqs(sink), [0, 960, 1920, 2880, 3840]);
}

#[test]
fn queue_byte_limit_counts_the_packet_being_sent() {
    let cfg = LinkConfig {
        queue_packets: None,
        queue_bytes: Some(3 * 1000 + 999),
        ..LinkConfig::new(Rate::mbit(12), Duration::ZERO)
    };
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(1000, None, 5));
    sim.run_for(Duration::from_millis(1));
    // Mid-run: the first packet is on the wire, so the queue holds three.
    sim.run_until(Instant::from_secs(1));
    assert_eq!(
        sim.link_stats(link, Direction::AToB)
            .drops
            .get(DropReason::QueueFull),
        2
    );
    assert_eq!(sim.host::<Sink>(dst).unwrap().packets, 3);
}

#[test]
fn queue_occupancy_is_visible_while_the_queue_drains() {
    let cfg = LinkConfig::new(Rate::mbit(12), Duration::ZERO);
    let (mut sim, _, _, link) = pair(1, cfg, blaster(1500, None, 4));
    sim.run_until(Instant::from_micros(1));
    assert_eq!(sim.queue_len(link, Direction::AToB), (4, 6000));
    sim.run_until(Instant::from_micros(2_500));
    assert_eq!(sim.queue_len(link, Direction::AToB), (2, 3000));
    sim.run_until(Instant::from_millis(4));
    assert_eq!(sim.queue_len(link, Direction::AToB), (0, 0));
}

#[test]
fn bernoulli_loss_matches_its_probability_within_a_binomial_bound() {
    let n = 100_000u64;
    let cfg = LinkConfig {
        loss: LossModel::Bernoulli(0.1),
        ..unlimited()
    };
    let (mut sim, _, dst, link) = pair(7, cfg, blaster(40, None, n));
    sim.run_until(Instant::from_secs(1));
    let lost = sim
        .link_stats(link, Direction::AToB)
        .drops
        .get(DropReason::RandomLoss);
    let delivered = sim.host::<Sink>(dst).unwrap().packets;
    assert_eq!(lost + delivered, n);
    // Mean 10,000, standard deviation sqrt(n p (1-p)) = 94.9; allow 4.5 sigma.
    assert!((lost as f64 - 10_000.0).abs() < 4.5 * 94.9, "lost {lost}");
}

#[test]
fn gilbert_elliott_loses_in_bursts_of_the_configured_mean_length() {
    let n = 200_000u64;
    let (p, r) = (0.01, 0.25);
    let cfg = LinkConfig {
        loss: LossModel::GilbertElliott {
            p,
            r,
            loss_good: 0.0,
            loss_bad: 1.0,
        },
        ..unlimited()
    };
    // One byte of payload, so a segment's sequence number is its index.
    let (mut sim, _, dst, _) = pair(11, cfg, blaster(41, None, n));
    sim.run_until(Instant::from_secs(1));
    let sink = sim.host::<Sink>(dst).unwrap();
    let mut bursts = Vec::new();
    let mut expected = 0u32;
    let mut lost_total = 0u64;
    for s in seqs(sink) {
        if s != expected {
            bursts.push(u64::from(s - expected));
            lost_total += u64::from(s - expected);
        }
        expected = s + 1;
    }
    let mean_burst = lost_total as f64 / bursts.len() as f64;
    // Geometric with mean 1/r = 4 (sd 3.46); ~1,900 bursts give a standard error of 0.08.
    assert!((mean_burst - 4.0).abs() < 0.4, "mean burst {mean_burst}");
    // Stationary loss rate p / (p + r) = 3.85 %.
    let rate = lost_total as f64 / n as f64;
    assert!((rate - p / (p + r)).abs() < 0.004, "loss rate {rate}");
    // Bernoulli loss at the same rate would make bursts of mean 1.04.
    assert!(bursts.iter().any(|&b| b >= 10));
}

#[test]
fn link_down_loses_queued_and_in_flight_packets_and_drops_new_ones() {
    let cfg = LinkConfig::new(Rate::mbit(12), Duration::from_millis(10));
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(1500, None, 5));
    // At 2.5 ms: packets 1 and 2 are propagating, 3 is being sent, 4 and 5 wait.
    sim.schedule_link_state(Instant::from_micros(2_500), link, Directions::Both, false);
    sim.schedule_link_state(Instant::from_millis(20), link, Directions::Both, true);
    sim.run_until(Instant::from_millis(15));
    assert!(!sim.is_link_up(link, Direction::AToB));
    assert_eq!(
        sim.link_stats(link, Direction::AToB)
            .drops
            .get(DropReason::LinkDown),
        5
    );
    assert_eq!(sim.queue_len(link, Direction::AToB), (0, 0));
    sim.run_until(Instant::from_millis(25));
    assert!(sim.is_link_up(link, Direction::AToB));
    sim.host_mut::<Blaster>(sim.node_id("a").unwrap())
        .unwrap()
        .count = 6;
    sim.run_until(Instant::from_secs(1));
    let sink = sim.host::<Sink>(dst).unwrap();
    // Only the packet sent after the link came back (at 25 ms) arrives: 25 + 1 + 10.
    assert_eq!(sink.arrivals.len(), 1);
    assert_eq!(sink.arrivals[0].0, Instant::from_millis(36));
    assert_eq!(sim.link_stats(link, Direction::AToB).drops.total(), 5);
}

#[test]
fn packets_offered_to_a_down_link_are_dropped() {
    let cfg = LinkConfig::new(Rate::mbit(12), Duration::from_millis(10));
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(1500, Some(Rate::mbit(12)), 10));
    sim.set_link_state(link, Directions::Only(Direction::AToB), false);
    sim.run_until(Instant::from_secs(1));
    assert_eq!(
        sim.link_stats(link, Direction::AToB)
            .drops
            .get(DropReason::LinkDown),
        10
    );
    assert_eq!(sim.host::<Sink>(dst).unwrap().packets, 0);
    assert!(sim.is_link_up(link, Direction::BToA));
}

#[test]
fn capacity_trace_changes_serialization_time_at_its_step() {
    let trace = CapacityTrace::new(
        vec![
            (Duration::ZERO, Rate::mbit(12)),
            (Duration::from_millis(100), Rate::mbit(6)),
        ],
        None,
    )
    .unwrap();
    let cfg = LinkConfig {
        trace: Some(trace),
        ..LinkConfig::new(Rate::mbit(100), Duration::from_millis(10))
    };
    let mut b = blaster(1500, Some(Rate::kbit(60)), 2); // second packet at 200 ms
    b.start = Instant::ZERO;
    let (mut sim, _, dst, _) = pair(1, cfg, b);
    sim.run_until(Instant::from_secs(1));
    let times: Vec<Instant> = sim
        .host::<Sink>(dst)
        .unwrap()
        .arrivals
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(times, [Instant::from_millis(11), Instant::from_millis(212)]);
}

#[test]
fn reordering_delivers_some_packets_after_later_ones() {
    let cfg = LinkConfig {
        reorder: Some(Reorder {
            probability: 0.1,
            extra_delay: Duration::from_millis(5),
        }),
        ..LinkConfig::new(Rate::mbit(12), Duration::from_millis(10))
    };
    let (mut sim, _, dst, link) = pair(3, cfg, blaster(1500, Some(Rate::mbit(12)), 2000));
    sim.run_until(Instant::from_secs(10));
    let seqs = seqs(sim.host::<Sink>(dst).unwrap());
    assert_eq!(seqs.len(), 2000);
    let late = seqs.windows(2).filter(|w| w[1] < w[0]).count() as u64;
    let reordered = sim.link_stats(link, Direction::AToB).reordered;
    // Each delayed packet is overtaken by the five sent in the next 5 ms, so each one
    // creates exactly one descent (delayed packets never land next to each other
    // unless they are consecutive, and then they stay in order among themselves).
    assert!(reordered > 150 && reordered < 250, "reordered {reordered}");
    assert!(late > 0 && late <= reordered, "late {late}");
    let mut sorted = seqs.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 2000);
}

#[test]
fn duplication_delivers_identical_copies() {
    let cfg = LinkConfig {
        duplicate: 1.0,
        ..LinkConfig::new(Rate::mbit(12), Duration::from_millis(1))
    };
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(500, None, 10));
    sim.run_until(Instant::from_secs(1));
    let sink = sim.host::<Sink>(dst).unwrap();
    assert_eq!(sink.packets, 20);
    for pair in sink.arrivals.chunks(2) {
        assert_eq!(pair[0], pair[1]);
    }
    let stats = sim.link_stats(link, Direction::AToB);
    assert_eq!((stats.duplicated, stats.delivered_packets), (10, 20));
}

#[test]
fn partial_duplication_matches_its_probability() {
    let n = 20_000u64;
    let cfg = LinkConfig {
        duplicate: 0.2,
        ..unlimited()
    };
    let (mut sim, _, dst, _) = pair(5, cfg, blaster(40, None, n));
    sim.run_until(Instant::from_secs(1));
    let extra = sim.host::<Sink>(dst).unwrap().packets - n;
    // Mean 4,000, sd sqrt(20000 * 0.2 * 0.8) = 56.6.
    assert!(
        (extra as f64 - 4_000.0).abs() < 4.5 * 56.6,
        "duplicates {extra}"
    );
}

#[test]
fn corruption_flips_exactly_one_bit_after_the_ip_header_and_checksums_catch_it() {
    let cfg = LinkConfig {
        corrupt: 1.0,
        ..LinkConfig::new(Rate::mbit(12), Duration::from_millis(1))
    };
    let (mut sim, _, dst, link) = pair(9, cfg, blaster(600, None, 200));
    sim.run_until(Instant::from_secs(1));
    let sink = sim.host::<Sink>(dst).unwrap();
    assert_eq!(sink.packets, 200);
    assert_eq!(sink.bad_checksums, 200);
    for (i, (_, got)) in sink.arrivals.iter().enumerate() {
        let expected = {
            let mut buf = Vec::new();
            packet::build_tcp_packet(
                &packet::TcpSegmentSpec {
                    src: sock(A, 1000),
                    dst: sock(B, 80),
                    seq: (i as u32) * 560,
                    payload: &[0x5a; 560],
                    ..Default::default()
                },
                &mut buf,
            );
            buf
        };
        let flipped: u32 = got
            .iter()
            .zip(&expected)
            .map(|(x, y)| (x ^ y).count_ones())
            .sum();
        assert_eq!(flipped, 1, "packet {i}");
        assert_eq!(
            &got[..20],
            &expected[..20],
            "IP header untouched in packet {i}"
        );
    }
    assert_eq!(sim.link_stats(link, Direction::AToB).corrupted, 200);
}

#[test]
fn middlebox_can_drop_and_rewrite() {
    let cfg = LinkConfig::new(Rate::mbit(12), Duration::from_millis(1));
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(100, None, 4));
    let mut n = 0;
    sim.set_middlebox(
        link,
        Direction::AToB,
        move |_now: Instant, p: &mut Vec<u8>| {
            n += 1;
            if n == 2 {
                return Verdict::Drop;
            }
            let last = p.len() - 1;
            p[last] = 0xee;
            p.push(0xff); // grow the packet: still delivered, one byte longer
            Verdict::Forward
        },
    );
    sim.run_until(Instant::from_secs(1));
    let sink = sim.host::<Sink>(dst).unwrap();
    assert_eq!(sink.packets, 3);
    assert!(
        sink.arrivals
            .iter()
            .all(|(_, p)| p.len() == 101 && p[99] == 0xee)
    );
    assert_eq!(
        sim.link_stats(link, Direction::AToB)
            .drops
            .get(DropReason::Middlebox),
        1
    );
}

#[test]
fn unroutable_packets_are_counted_at_the_sender() {
    let mut sim = Simulator::new(1);
    // The source address is not the host's, so no interface, and there is no route.
    let b = Blaster::new(sock("10.9.9.9", 1), sock("192.0.2.9", 2), 100, None, 3);
    let a = sim.add_host("a", &[ip(A)], Box::new(b)).unwrap();
    sim.run_until(Instant::from_secs(1));
    assert_eq!(sim.node_stats(a).drops.get(DropReason::NoRoute), 3);
    assert_eq!(sim.node_stats(a).sent_packets, 3);
}

/// s1, s2 -> r1 ==(10 Mbit/s)==> r2 -> d1, d2.
fn dumbbell(seed: u64) -> (Simulator, Vec<NodeId>, LinkId) {
    let mut sim = Simulator::new(seed);
    let fast = LinkConfig::new(Rate::mbit(100), Duration::from_millis(1));
    let r1 = sim
        .add_router("r1", &[ip("10.1.0.254"), ip("10.2.0.254"), ip("10.9.0.1")])
        .unwrap();
    let r2 = sim
        .add_router("r2", &[ip("10.9.0.2"), ip("10.3.0.254"), ip("10.4.0.254")])
        .unwrap();
    let _ = (r1, r2);
    let mut sinks = Vec::new();
    for i in 0..2u8 {
        let s = format!("10.{}.0.1", i + 1);
        let d = format!("10.{}.0.1", i + 3);
        // Start the second flow half a packet later so the two are not in lockstep.
        let b = Blaster::new(
            sock(&s, 1000),
            sock(&d, 80),
            1500,
            Some(Rate::mbit(8)),
            10_000,
        )
        .starting_at(Instant::from_micros(u64::from(i) * 750));
        sim.add_host(&format!("s{i}"), &[ip(&s)], Box::new(b))
            .unwrap();
        sinks.push(
            sim.add_host(&format!("d{i}"), &[ip(&d)], Box::new(Sink::default()))
                .unwrap(),
        );
        sim.add_link(
            &format!("in{i}"),
            ip(&s),
            ip(&format!("10.{}.0.254", i + 1)),
            fast.clone(),
            fast.clone(),
        )
        .unwrap();
        sim.add_link(
            &format!("out{i}"),
            ip(&format!("10.{}.0.254", i + 3)),
            ip(&d),
            fast.clone(),
            fast.clone(),
        )
        .unwrap();
    }
    let bottleneck = LinkConfig {
        queue_packets: Some(50),
        ..LinkConfig::new(Rate::mbit(10), Duration::from_millis(20))
    };
    let link = sim
        .add_link(
            "bottleneck",
            ip("10.9.0.1"),
            ip("10.9.0.2"),
            bottleneck.clone(),
            bottleneck,
        )
        .unwrap();
    sim.auto_routes();
    (sim, sinks, link)
}

#[test]
fn routers_forward_and_flows_share_a_bottleneck() {
    let (mut sim, sinks, link) = dumbbell(1);
    sim.run_until(Instant::from_secs(10));
    let stats = *sim.link_stats(link, Direction::AToB);
    // 16 Mbit/s offered to 10 Mbit/s: the bottleneck runs full from when the first
    // packet reaches r1 (120 us + 1 ms) and delivers one packet per 1.2 ms after its
    // 20 ms delay: (10 s - 21.12 ms) / 1.2 ms = 8315.7.
    let capacity_packets = 10_000_000 * 10 / (1500 * 8);
    assert_eq!(stats.delivered_packets, 8315, "{stats:?}");
    assert!(stats.drops.get(DropReason::QueueFull) > 4000);
    let got: Vec<u64> = sinks
        .iter()
        .map(|&d| sim.host::<Sink>(d).unwrap().packets)
        .collect();
    // The last packet off the bottleneck (at 9.99912 s) is still on its 1.12 ms last hop.
    assert_eq!(got[0] + got[1], stats.delivered_packets - 1);
    for g in &got {
        assert!(*g > capacity_packets / 4, "unfair share {got:?}");
    }
    // Two router hops: TTL 64 arrives as 62; flows are accounted per 5-tuple.
    assert_eq!(sim.flows().len(), 2);
    let goodput: u64 = sim.flows().values().map(|f| f.goodput_bytes).sum();
    assert_eq!(goodput, (got[0] + got[1]) * 1460);
}

#[test]
fn routers_decrement_ttl() {
    let (mut sim, sinks, _) = dumbbell(1);
    let ttl = Rc::new(RefCell::new(Vec::new()));
    let seen = ttl.clone();
    sim.set_delivery_tap(move |_, _, p| seen.borrow_mut().push(p[8]));
    sim.run_until(Instant::from_millis(50));
    assert!(!ttl.borrow().is_empty());
    assert!(ttl.borrow().iter().all(|&t| t == 62));
    let _ = sinks;
}

/// Hash of every delivered packet and its time in a lossy, reordering, duplicating,
/// corrupting network, with an optional extra link that carries nothing of ours.
fn run_hash(seed: u64, extra_link: bool) -> u64 {
    let (mut sim, _, _, link) = {
        let cfg = LinkConfig {
            loss: LossModel::Bernoulli(0.05),
            reorder: Some(Reorder {
                probability: 0.05,
                extra_delay: Duration::from_millis(3),
            }),
            duplicate: 0.02,
            corrupt: 0.02,
            ..LinkConfig::new(Rate::mbit(20), Duration::from_millis(7))
        };
        pair(seed, cfg, blaster(1200, Some(Rate::mbit(25)), 5000))
    };
    if extra_link {
        sim.add_router("x", &[ip("10.7.0.1")]).unwrap();
        sim.add_router("y", &[ip("10.7.0.2")]).unwrap();
        let lossy = LinkConfig {
            loss: LossModel::Bernoulli(0.5),
            ..LinkConfig::default()
        };
        sim.add_link(
            "extra",
            ip("10.7.0.1"),
            ip("10.7.0.2"),
            lossy.clone(),
            lossy,
        )
        .unwrap();
    }
    let _ = link;
    let hasher = Rc::new(RefCell::new(
        std::collections::hash_map::DefaultHasher::new(),
    ));
    let h = hasher.clone();
    sim.set_delivery_tap(move |t, node, p| {
        let mut h = h.borrow_mut();
        t.hash(&mut *h);
        node.hash(&mut *h);
        p.hash(&mut *h);
    });
    sim.run_until(Instant::from_secs(5));
    hasher.borrow().finish()
}

#[test]
fn same_seed_gives_byte_identical_runs_and_links_have_independent_streams() {
    let first = run_hash(42, false);
    assert_eq!(first, run_hash(42, false));
    assert_ne!(first, run_hash(43, false));
    assert_eq!(first, run_hash(42, true));
}

/// Sends one packet each time the test asks it to.
#[derive(Default)]
struct OnDemand {
    pending: Vec<Vec<u8>>,
    wake_at: Option<Instant>,
    woke: Vec<Instant>,
}

impl Host for OnDemand {
    fn handle_packet(&mut self, _cx: &mut Context<'_>, _packet: &[u8]) {}
    fn poll_transmit(&mut self, _cx: &mut Context<'_>, buf: &mut Vec<u8>) -> bool {
        match self.pending.pop() {
            Some(p) => {
                buf.extend_from_slice(&p);
                true
            }
            None => false,
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.wake_at
    }
    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        self.woke.push(cx.now());
        self.wake_at = None;
        cx.record("wakeups", self.woke.len() as f64);
    }
}

#[test]
fn host_mut_wakes_the_host_and_timers_fire_on_time() {
    let mut sim = Simulator::new(1);
    let a = sim
        .add_host("a", &[ip(A)], Box::new(OnDemand::default()))
        .unwrap();
    let b = sim
        .add_host("b", &[ip(B)], Box::new(Sink::keeping()))
        .unwrap();
    let cfg = LinkConfig::new(Rate::mbit(12), Duration::from_millis(10));
    sim.add_link("ab", ip(A), ip(B), cfg.clone(), cfg).unwrap();
    sim.run_until(Instant::from_millis(100));
    let mut pkt = Vec::new();
    packet::build_tcp_packet(
        &packet::TcpSegmentSpec {
            src: sock(A, 1),
            dst: sock(B, 2),
            payload: &[0; 1460],
            ..Default::default()
        },
        &mut pkt,
    );
    {
        let host = sim.host_mut::<OnDemand>(a).unwrap();
        host.pending.push(pkt);
        host.wake_at = Some(Instant::from_millis(150));
    }
    assert!(sim.host::<Sink>(a).is_none(), "wrong type is refused");
    let arrived = sim.run_until_condition(Instant::from_secs(1), |s| {
        s.host::<Sink>(b).is_some_and(|sink| sink.packets == 1)
    });
    assert!(arrived);
    assert_eq!(sim.now(), Instant::from_millis(111));
    assert_eq!(
        sim.host::<Sink>(b).unwrap().arrivals[0].0,
        Instant::from_millis(111)
    );
    assert!(sim.run_until_idle(Instant::from_secs(1)));
    assert_eq!(
        sim.host::<OnDemand>(a).unwrap().woke,
        [Instant::from_millis(150)]
    );
    let series = sim.recorder().series("a/wakeups").unwrap();
    assert_eq!(series.points(), [(Instant::from_millis(150), 1.0)]);
}

#[test]
fn sampling_records_throughput_queue_drops_and_flow_goodput() {
    let cfg = LinkConfig {
        queue_packets: Some(10),
        ..LinkConfig::new(Rate::mbit(12), Duration::from_millis(5))
    };
    // Offer 24 Mbit/s for one second: half is dropped at the queue.
    let (mut sim, _, _, _) = pair(1, cfg, blaster(1500, Some(Rate::mbit(24)), 2000));
    sim.set_sample_interval(Some(Duration::from_millis(100)));
    assert!(sim.run_until_idle(Instant::from_secs(5)));
    let rec = sim.recorder();
    let tput = rec.series("link/ab/a->b/throughput_bps").unwrap().points();
    // Full from the second interval until the sender stops at 1 s.
    for &(t, v) in &tput[1..9] {
        assert_eq!(v, 12_000_000.0, "at {t:?}");
    }
    assert_eq!(tput[0].0, Instant::from_millis(100));
    let queue = rec.series("link/ab/a->b/queue_packets").unwrap().points();
    assert!(queue[1..9].iter().all(|&(_, q)| q == 10.0), "{queue:?}");
    let drops: f64 = rec
        .series("link/ab/a->b/drops_queue_full")
        .unwrap()
        .points()
        .iter()
        .map(|p| p.1)
        .sum();
    let stats = sim.link_stats(sim.link_id("ab").unwrap(), Direction::AToB);
    assert_eq!(drops as u64, stats.drops.get(DropReason::QueueFull));
    assert_eq!(stats.delivered_packets + drops as u64, 2000);
    let goodput = rec
        .series("flow/10.0.0.1:1000->10.0.0.2:80/goodput_bps")
        .unwrap()
        .points();
    assert_eq!(goodput[5].1, 12_000_000.0 * 1460.0 / 1500.0);
    // The run went idle, so sampling stopped soon after the last packet.
    assert!(tput.len() <= 12, "{}", tput.len());
    let mut csv = Vec::new();
    rec.series("link/ab/a->b/queue_packets")
        .unwrap()
        .write_csv(&mut csv)
        .unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("time_s,value\n0.100000,"), "{csv}");
}

#[test]
fn times_at_the_end_of_the_axis_saturate_instead_of_overflowing() {
    let cfg = LinkConfig {
        reorder: Some(Reorder {
            probability: 1.0,
            extra_delay: Duration::MAX,
        }),
        ..LinkConfig::new(Rate::mbit(12), Duration::MAX)
    };
    let (mut sim, _, dst, link) = pair(1, cfg, blaster(1500, None, 2));
    sim.schedule_link_state(
        Instant::from_micros(u64::MAX),
        link,
        Directions::Both,
        false,
    );
    sim.set_sample_interval(Some(Duration::MAX));
    sim.run_until(Instant::from_secs(10));
    assert_eq!(sim.host::<Sink>(dst).unwrap().packets, 0);
    assert_eq!(sim.link_stats(link, Direction::AToB).reordered, 2);
}
