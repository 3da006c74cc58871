//! One MPTCP connection with 1, 2 and 4 subflows between two endpoints over ideal
//! in-memory links: how fast the core moves payload when the network costs nothing.
//!
//! The client has one address per subflow (10.0.0.1, 10.0.1.1, ...) and joins the
//! server's one address from each; the server has no address list, so every packet is
//! its own. Every packet crosses the real wire path both ways (emit with checksums,
//! parse and verify). Time is virtual and stands still while packets move, so the
//! paths have no delay and no rate limit: the figure is the per-core ceiling of the
//! protocol core. Gbit/s and segments/s are per core: they are computed from the CPU
//! time of the bench thread (the wall-clock rate is printed beside them), and the
//! counting allocator reports allocations per data segment in the steady state (after
//! the handshakes and the first `WARMUP` bytes).
//!
//! The one bench thread runs both endpoints, so `Gbit/s/core` is the rate with the
//! sender and the receiver sharing one core. The link moves packets in batches of 64
//! (as the TUN runtime reads and writes them; `BENCH_BATCH=n` changes it), and each side's work on a batch is
//! charged to that side: `sender` and `receiver` are the rates one core would carry
//! running only that endpoint, as a host talking to another stack does. `ooo %` is the
//! share of the received bytes that arrived ahead of a gap in the data sequence and
//! waited in the receiver's reassembly buffer.
//!
//! Three tables, three ways the link carries segments:
//! - `wire`: one wire-sized segment per packet, every segment paying the whole
//!   per-segment path of both endpoints;
//! - `soft-gso`: wire-sized packets on the link, made and merged in software as the
//!   kernel does without hardware offload: the sender emits super-segments of up to
//!   65,000 bytes (`max_segment_payload`) which `wire::gso::Segmenter` cuts into wire
//!   packets (headers copied, checksums computed per packet), and the receiver's
//!   `wire::gro::Coalescer` verifies each packet's checksums and merges runs back
//!   before the endpoint sees them;
//! - `super`: the super-segments themselves on the link, as between the TUN runtime
//!   and a kernel doing TSO and GRO (checksums still computed and verified over every
//!   byte by the endpoints, so only the per-segment protocol work is amortised).
//!
//! `segments/s` counts packets on the link (super-segments in the last table).
//!
//! Run with `cargo bench -p mptcp-proto --bench mptcp_throughput`
//! (`BENCH_BYTES=...` changes the bytes moved per row, default 1 GB;
//! `BENCH_ONLY=1500x2` runs one row of the first table, MTU x subflows, and
//! `BENCH_ONLY=1500x2+soft-gso` or `BENCH_ONLY=1500x2+super` one of the others, e.g.
//! under a profiler).

mod common;

use std::time::Instant as WallClock;

use common::{Carrier, Counting, CpuSplit, End, Link, alloc_snapshot, bench_bytes, bench_pacing};
use core::net::IpAddr;
use mptcp_proto::endpoint::{Endpoint, EndpointConfig, Event};
use mptcp_proto::mptcp::MptcpConfig;
use mptcp_proto::tcp::{TcpConfig, TcpEvent};
use mptcp_proto::time::{Duration, Instant};

#[global_allocator]
static ALLOC: Counting = Counting;

/// Bytes moved before the measurement starts (handshakes, joins, slow start).
const WARMUP: u64 = 20_000_000;

struct Outcome {
    bytes: u64,
    segments: u64,
    acks: u64,
    /// CPU time of the client (sender) and server (receiver) phases.
    client_cpu: f64,
    server_cpu: f64,
    wall_seconds: f64,
    allocations: u64,
    subflows_used: usize,
    /// Share of the received bytes that arrived ahead of a gap in the data sequence.
    out_of_order: f64,
}

fn config(mss: u16, link: Link) -> EndpointConfig {
    let tcp = TcpConfig {
        mss,
        send_buffer: 4 << 20,
        recv_buffer: 4 << 20,
        pacing: bench_pacing(),
        ..TcpConfig::default()
    };
    let mut config = EndpointConfig {
        tcp: tcp.clone(),
        mptcp: Some(MptcpConfig {
            tcp,
            send_buffer: 4 << 20,
            recv_buffer: 4 << 20,
            ..MptcpConfig::default()
        }),
        ..EndpointConfig::default()
    };
    link.configure(&mut config);
    config
}

fn transfer(subflows: usize, mss: u16, link: Link, total: u64) -> Outcome {
    let mut client = Endpoint::new(config(mss, link), [1; 32]);
    let mut server = Endpoint::new(config(mss, link), [2; 32]);
    let listener = server
        .listen("10.9.0.1:5001".parse().expect("address"))
        .expect("listen");
    let extra: Vec<IpAddr> = (1..subflows)
        .map(|i| IpAddr::from([10, 0, i as u8, 1]))
        .collect();
    let mut now = Instant::from_millis(1);
    let conn = client
        .connect_mptcp(
            now,
            "10.0.0.1:0".parse().expect("address"),
            "10.9.0.1:5001".parse().expect("address"),
            &extra,
        )
        .expect("connect");

    let chunk = vec![0x5au8; 256 * 1024];
    let mut read_buf = vec![0u8; 256 * 1024];
    let mut carrier = Carrier::new(link);
    let mut cpu = CpuSplit::new();
    let (mut written, mut received, mut segments, mut acks) = (0u64, 0u64, 0u64, 0u64);
    let mut accepted = None;
    // Set when the steady state begins: (received, segments, acks, CPU, wall, allocs).
    let mut start: Option<(u64, u64, u64, CpuSplit, WallClock, u64)> = None;
    while received < total {
        if start.is_none()
            && received >= WARMUP
            && client.mptcp_stats(conn).expect("live").subflows.len() == subflows
        {
            start = Some((
                received,
                segments,
                acks,
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
        let sent = carrier.carry(
            now,
            (End::Server, &mut server),
            (End::Client, &mut client),
            &mut cpu,
        );
        acks += sent;
        moved |= sent > 0;
        while let Some(event) = client.poll_event() {
            if let Event::Connection(_, TcpEvent::Reset | TcpEvent::TimedOut) = event {
                panic!("the benchmark connection failed");
            }
        }
        while client.poll_mptcp_event().is_some() {}
        cpu.charge(End::Client);
        while server.poll_mptcp_event().is_some() {}
        cpu.charge(End::Server);
        if !moved {
            // Nothing in flight: let timers (delayed ACKs, joins) fire in virtual time.
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
    }
    let (r0, s0, a0, cpu0, wall0, alloc0) = start.expect("the transfer outlasts the warm-up");
    let stats = client.mptcp_stats(conn).expect("live");
    let held = accepted
        .and_then(|h| server.mptcp_stats(h).ok())
        .map_or(0, |s| s.out_of_order_bytes);
    let _ = listener;
    Outcome {
        bytes: received - r0,
        segments: segments - s0,
        acks: acks - a0,
        client_cpu: cpu.client - cpu0.client,
        server_cpu: cpu.server - cpu0.server,
        wall_seconds: wall0.elapsed().as_secs_f64(),
        allocations: alloc_snapshot().allocations - alloc0,
        subflows_used: stats.subflows.iter().filter(|s| s.bytes_sent > 0).count(),
        out_of_order: held as f64 / received as f64,
    }
}

fn main() {
    let total = bench_bytes(1_000_000_000);
    println!(
        "one MPTCP connection, ideal in-memory links, {total} bytes per row, checksums \
         computed and verified; per core = per CPU-second of the bench thread; pacing {}",
        if bench_pacing().is_some() {
            "on (BENCH_PACING=1)"
        } else {
            "off"
        }
    );
    let only = std::env::var("BENCH_ONLY").ok();
    for link in Link::ALL {
        let suffix = link.suffix();
        let rows: Vec<(u16, u16, usize)> = [(1500, 1460u16), (9000, 8960u16)]
            .into_iter()
            .flat_map(|(mtu, mss)| [1usize, 2, 4].map(|subflows| (mtu, mss, subflows)))
            .filter(|(mtu, _, subflows)| {
                only.as_ref()
                    .is_none_or(|o| *o == format!("{mtu}x{subflows}{suffix}"))
            })
            .collect();
        if rows.is_empty() {
            continue;
        }
        println!();
        println!("{}", link.describe());
        println!(
            "{:<6} {:>8} {:>6} {:>11} {:>10} {:>10} {:>12} {:>14} {:>11} {:>10} {:>12} {:>6}",
            "MTU",
            "subflows",
            "used",
            "Gbit/s/core",
            "sender",
            "receiver",
            "wall Gbit/s",
            "packets/s",
            "ns/packet",
            "acks/pkt",
            "allocs/pkt",
            "ooo %"
        );
        for (mtu, mss, subflows) in rows {
            let o = transfer(subflows, mss, link, total.max(2 * WARMUP));
            let cpu = o.client_cpu + o.server_cpu;
            let gbit = |seconds: f64| o.bytes as f64 * 8.0 / seconds / 1e9;
            let sps = o.segments as f64 / cpu;
            println!(
                "{:<6} {:>8} {:>6} {:>11.2} {:>10.2} {:>10.2} {:>12.2} {:>14.0} {:>11.0} {:>10.2} {:>12.4} {:>6.1}",
                mtu,
                subflows,
                o.subflows_used,
                gbit(cpu),
                gbit(o.client_cpu),
                gbit(o.server_cpu),
                gbit(o.wall_seconds),
                sps,
                1e9 / sps,
                o.acks as f64 / o.segments as f64,
                o.allocations as f64 / o.segments as f64,
                100.0 * o.out_of_order
            );
        }
    }
}
