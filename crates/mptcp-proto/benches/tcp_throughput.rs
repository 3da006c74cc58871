//! One TCP flow between two endpoints over an ideal in-memory link: how fast the core
//! moves payload when the network costs nothing.
//!
//! Every packet crosses the real wire path both ways (emit with checksums, parse and
//! verify), so the figure is the per-core ceiling of the protocol core itself.
//! Gbit/s and segments/s are per core (from the CPU time of the bench thread; the
//! wall-clock rate is printed beside them), and the counting allocator reports
//! allocations per data segment after the first `WARMUP` bytes. The `+gso` rows send
//! super-segments of up to 65,000 payload bytes that the receiver takes whole, as the
//! TUN runtime does with TSO/GRO offload (checksums still computed over every byte).
//! Run with `cargo bench -p mptcp-proto --bench tcp_throughput`.

mod common;

use std::time::Instant as WallClock;

use common::{Counting, alloc_snapshot, bench_bytes, bench_pacing, thread_cpu_seconds};

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
    cpu_seconds: f64,
    wall_seconds: f64,
    allocations: u64,
}

fn transfer(mss: u16, super_segments: bool, total: u64) -> Outcome {
    let mut config = EndpointConfig::default();
    config.tcp.mss = mss;
    config.tcp.max_segment_payload = super_segments.then_some(65_000);
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
    let mut packet = vec![0u8; 65_536];
    let (mut written, mut received, mut segments) = (0u64, 0u64, 0u64);
    let mut accepted = None;
    // Set when the steady state begins: (received, segments, cpu, wall, allocations).
    let mut start: Option<(u64, u64, f64, WallClock, u64)> = None;
    while received < total {
        if start.is_none() && received >= WARMUP {
            start = Some((
                received,
                segments,
                thread_cpu_seconds(),
                WallClock::now(),
                alloc_snapshot().allocations,
            ));
        }
        if written < total {
            let want = (total - written).min(chunk.len() as u64) as usize;
            written += client.write(conn, &chunk[..want]).unwrap_or(0) as u64;
        }
        let mut moved = false;
        while let Some(len) = client.poll_transmit(now, &mut packet) {
            let _ = server.handle_packet(now, &packet[..len]);
            segments += 1;
            moved = true;
        }
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
        while let Some(len) = server.poll_transmit(now, &mut packet) {
            let _ = client.handle_packet(now, &packet[..len]);
            moved = true;
        }
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
            server.handle_timeout(now);
        }
        let _ = listener;
    }
    let (r0, s0, cpu0, wall0, alloc0) = start.expect("the transfer outlasts the warm-up");
    Outcome {
        bytes: received - r0,
        segments: segments - s0,
        cpu_seconds: thread_cpu_seconds() - cpu0,
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
        "{:<9} {:>13} {:>12} {:>14} {:>11} {:>12}",
        "MTU", "Gbit/s/core", "wall Gbit/s", "segments/s", "ns/segment", "allocs/seg"
    );
    for (mtu, mss, super_segments) in [
        (1500, 1460u16, false),
        (9000, 8960, false),
        (1500, 1460, true),
        (9000, 8960, true),
    ] {
        let o = transfer(mss, super_segments, total.max(2 * WARMUP));
        let gbps = o.bytes as f64 * 8.0 / o.cpu_seconds / 1e9;
        let wall_gbps = o.bytes as f64 * 8.0 / o.wall_seconds / 1e9;
        let sps = o.segments as f64 / o.cpu_seconds;
        let mtu = format!("{mtu}{}", if super_segments { "+gso" } else { "" });
        println!(
            "{:<9} {:>13.2} {:>12.2} {:>14.0} {:>11.0} {:>12.4}",
            mtu,
            gbps,
            wall_gbps,
            sps,
            1e9 / sps,
            o.allocations as f64 / o.segments as f64
        );
    }
}
