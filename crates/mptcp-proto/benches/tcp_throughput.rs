//! One TCP flow between two endpoints over an ideal in-memory link: how fast the core
//! moves payload when the network costs nothing.
//!
//! Every packet crosses the real wire path both ways (emit with checksums, parse and
//! verify), so the figure is the per-core ceiling of the protocol core itself.
//! Gbit/s and packets/s are per core (from the CPU time of the bench thread; the
//! wall-clock rate is printed beside them), and the counting allocator reports
//! allocations per data segment after the first `WARMUP` bytes. Both endpoints share
//! the bench thread; `sender` and `receiver` are each side's rate per core of its own
//! (see `common::CpuSplit`). Rows run over each
//! kind of link (`common::Link`): one wire segment per packet, wire packets cut and
//! merged in software (`+soft-gso`), and super-segments on the link (`+super`).
//! Run with `cargo bench -p mptcp-proto --bench tcp_throughput`.

mod common;

use std::time::Instant as WallClock;

use common::{Carrier, Counting, CpuSplit, End, Link, alloc_snapshot, bench_bytes, bench_pacing};

use mptcp_proto::endpoint::{Endpoint, EndpointConfig, Event};
use mptcp_proto::tcp::TcpEvent;
use mptcp_proto::time::{Duration, Instant};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes moved before the measurement starts (handshake, slow start).
const WARMUP: u64 = 20_000_000;

struct Outcome {
    bytes: u64,
    segments: u64,
    /// CPU time of the client (sender) and server (receiver) phases.
    client_cpu: f64,
    server_cpu: f64,
    wall_seconds: f64,
    allocations: u64,
}

fn transfer(mss: u16, link: Link, total: u64) -> Outcome {
    let mut config = EndpointConfig::default();
    config.tcp.mss = mss;
    link.configure(&mut config);
    config.tcp.send_buffer = 4 << 20;
    config.tcp.recv_buffer = 4 << 20;
    config.tcp.pacing = bench_pacing();
    let mut client = Endpoint::new(config.clone(), [1; 32]);
    let mut server = Endpoint::new(config, [2; 32]);
    let listener = server
        .listen("10.0.0.2:5001".parse().expect("address"))
        .expect("listen");
    let mut now = Instant::from_millis(1);
    let conn = client
        .connect(
            now,
            "10.0.0.1:0".parse().expect("address"),
            "10.0.0.2:5001".parse().expect("address"),
        )
        .expect("connect");

    let chunk = vec![0x5au8; 256 * 1024];
    let mut read_buf = vec![0u8; 256 * 1024];
    let mut carrier = Carrier::new(link);
    let mut cpu = CpuSplit::new();
    let (mut written, mut received, mut segments) = (0u64, 0u64, 0u64);
    let mut accepted = None;
    // Set when the steady state begins: (received, segments, CPU, wall, allocations).
    let mut start: Option<(u64, u64, CpuSplit, WallClock, u64)> = None;
    while received < total {
        if start.is_none() && received >= WARMUP {
            start = Some((
                received,
                segments,
                cpu,
                WallClock::now(),
                alloc_snapshot().allocations,
            ));
        }
        if written < total {
            let want = (total - written).min(chunk.len() as u64) as usize;
            written += client.write(conn, &chunk[..want]).unwrap_or(0) as u64;
        }
        cpu.charge(End::Client);
        let sent = carrier.carry(
            now,
            (End::Client, &mut client),
            (End::Server, &mut server),
            &mut cpu,
        );
        segments += sent;
        let mut moved = sent > 0;
        while let Some(event) = server.poll_event() {
            if let Event::Incoming(l) = event {
                accepted = server.accept(l);
            }
        }
        if let Some(h) = accepted {
            while let Ok(n) = server.read(h, &mut read_buf) {
                if n == 0 {
                    break;
                }
                received += n as u64;
            }
        }
        cpu.charge(End::Server);
        moved |= carrier.carry(
            now,
            (End::Server, &mut server),
            (End::Client, &mut client),
            &mut cpu,
        ) > 0;
        while let Some(event) = client.poll_event() {
            if let Event::Connection(_, TcpEvent::Reset | TcpEvent::TimedOut) = event {
                panic!("the benchmark connection failed");
            }
        }
        if !moved {
            // Nothing in flight: let timers (delayed ACKs) fire in virtual time.
            now = client
                .poll_timeout()
                .into_iter()
                .chain(server.poll_timeout())
                .min()
                .unwrap_or(now + Duration::from_millis(1))
                .max(now);
            client.handle_timeout(now);
            cpu.charge(End::Client);
            server.handle_timeout(now);
            cpu.charge(End::Server);
        }
        let _ = listener;
    }
    let (r0, s0, cpu0, wall0, alloc0) = start.expect("the transfer outlasts the warm-up");
    Outcome {
        bytes: received - r0,
        segments: segments - s0,
        client_cpu: cpu.client - cpu0.client,
        server_cpu: cpu.server - cpu0.server,
        wall_seconds: wall0.elapsed().as_secs_f64(),
        allocations: alloc_snapshot().allocations - alloc0,
    }
}

fn main() {
    let total = bench_bytes(2_000_000_000);
    println!(
        "one TCP flow, ideal in-memory link, {total} bytes, checksums computed and verified; \
         per core = per CPU-second of the bench thread; pacing {}",
        if bench_pacing().is_some() {
            "on (BENCH_PACING=1)"
        } else {
            "off"
        }
    );
    println!(
        "{:<14} {:>11} {:>10} {:>10} {:>12} {:>14} {:>11} {:>12}",
        "MTU",
        "Gbit/s/core",
        "sender",
        "receiver",
        "wall Gbit/s",
        "packets/s",
        "ns/packet",
        "allocs/pkt"
    );
    for link in Link::ALL {
        for (mtu, mss) in [(1500, 1460u16), (9000, 8960)] {
            let o = transfer(mss, link, total.max(2 * WARMUP));
            let cpu = o.client_cpu + o.server_cpu;
            let gbit = |seconds: f64| o.bytes as f64 * 8.0 / seconds / 1e9;
            let sps = o.segments as f64 / cpu;
            let mtu = format!("{mtu}{}", link.suffix());
            println!(
                "{:<14} {:>11.2} {:>10.2} {:>10.2} {:>12.2} {:>14.0} {:>11.0} {:>12.4}",
                mtu,
                gbit(cpu),
                gbit(o.client_cpu),
                gbit(o.server_cpu),
                gbit(o.wall_seconds),
                sps,
                1e9 / sps,
                o.allocations as f64 / o.segments as f64
            );
        }
    }
}
