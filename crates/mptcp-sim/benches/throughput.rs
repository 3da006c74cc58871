//! How fast the simulator moves packets: one minute of a 100 Mbit/s link fully loaded
//! by a constant-rate sender (500,000 packets of 1500 bytes), with and without
//! impairments. Run with `cargo bench -p mptcp-sim --bench throughput`.

use std::net::{IpAddr, SocketAddr};

use mptcp_proto::{Duration, Instant};
use mptcp_sim::testing::{Blaster, Sink};
use mptcp_sim::{LinkConfig, LossModel, Rate, Reorder, Simulator};

fn main() {
    divan::main();
}

const PACKETS: u64 = 500_000;

fn minute(cfg: LinkConfig) -> u64 {
    let a: IpAddr = "10.0.0.1".parse().unwrap();
    let b: IpAddr = "10.0.0.2".parse().unwrap();
    let mut sim = Simulator::new(1);
    let blaster = Blaster::new(
        SocketAddr::new(a, 1000),
        SocketAddr::new(b, 80),
        1500,
        Some(Rate::mbit(100)),
        PACKETS,
    );
    sim.add_host("a", &[a], Box::new(blaster)).unwrap();
    let sink = sim.add_host("b", &[b], Box::new(Sink::default())).unwrap();
    sim.add_link("ab", a, b, cfg, LinkConfig::default())
        .unwrap();
    sim.run_until(Instant::from_secs(61));
    sim.host::<Sink>(sink).unwrap().packets
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn minute_of_100mbit_clean(bencher: divan::Bencher) {
    bencher
        .counter(divan::counter::ItemsCount::new(PACKETS))
        .bench(|| {
            let delivered = minute(LinkConfig::new(Rate::mbit(100), Duration::from_millis(20)));
            assert_eq!(delivered, PACKETS);
        });
}

#[divan::bench(sample_count = 5, sample_size = 1)]
fn minute_of_100mbit_impaired(bencher: divan::Bencher) {
    let cfg = LinkConfig {
        loss: LossModel::Bernoulli(0.01),
        reorder: Some(Reorder {
            probability: 0.01,
            extra_delay: Duration::from_millis(2),
        }),
        duplicate: 0.001,
        ..LinkConfig::new(Rate::mbit(100), Duration::from_millis(20))
    };
    bencher
        .counter(divan::counter::ItemsCount::new(PACKETS))
        .bench(|| divan::black_box(minute(cfg.clone())));
}
