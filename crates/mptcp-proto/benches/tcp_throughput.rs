//! One TCP flow between two endpoints over an ideal in-memory link: how fast the core
//! moves payload when the network costs nothing.
//!
//! Every packet crosses the real wire path both ways (emit with checksums, parse and
//! verify), so the figure is the per-core ceiling of the protocol core itself.
//! Run with `cargo bench -p mptcp-proto --bench tcp_throughput`.

use std::time::Instant as WallClock;

use mptcp_proto::endpoint::{Endpoint, EndpointConfig, Event};
use mptcp_proto::tcp::TcpEvent;
use mptcp_proto::time::{Duration, Instant};

struct Outcome {
    bytes: u64,
    segments: u64,
    seconds: f64,
}

fn transfer(mss: u16, total: u64) -> Outcome {
    let mut config = EndpointConfig::default();
    config.tcp.mss = mss;
    config.tcp.send_buffer = 4 << 20;
    config.tcp.recv_buffer = 4 << 20;
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
    let started = WallClock::now();
    while received < total {
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
    Outcome {
        bytes: received,
        segments,
        seconds: started.elapsed().as_secs_f64(),
    }
}

fn main() {
    let total = std::env::var("BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000_000_000u64);
    println!("one TCP flow, ideal in-memory link, {total} bytes, checksums computed and verified");
    println!(
        "{:<10} {:>12} {:>14} {:>12}",
        "MTU", "Gbit/s", "segments/s", "ns/segment"
    );
    for (mtu, mss) in [(1500, 1460u16), (9000, 8960u16)] {
        // A short warm-up so page faults and cold caches don't count.
        transfer(mss, 50_000_000);
        let outcome = transfer(mss, total);
        let gbps = outcome.bytes as f64 * 8.0 / outcome.seconds / 1e9;
        let sps = outcome.segments as f64 / outcome.seconds;
        println!(
            "{:<10} {:>12.2} {:>14.0} {:>12.0}",
            mtu,
            gbps,
            sps,
            1e9 / sps
        );
    }
}
