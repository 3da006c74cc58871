//! Connection scale of the core: memory per idle connection and per connection with
//! full windows, and connections per second for short transfers, plain TCP and MPTCP,
//! between two endpoints over an ideal in-memory link in virtual time.
//!
//! - Idle: `SCALE_CONNS` (default 10,000) connections are opened and accepted, then the
//!   counting allocator's live bytes are divided by the connections held (each
//!   connection counts once on the client and once on the server). The configured
//!   buffers (send + receive) are printed beside it: rings are allocated as data
//!   arrives, so an idle connection holds none of them.
//! - Short transfers: `SCALE_SHORT` (default 5,000) connections, 100 at a time: connect,
//!   1 KB each way, both sides close, until every connection is gone from both tables
//!   (TIME-WAIT included, which virtual time lets expire). Connections per CPU-second
//!   of the bench thread.
//! - Full windows: `SCALE_FULL_CONNS` (default 1,000) connections with send and receive
//!   buffers of `SCALE_FULL_BUFFER` bytes (default 256 KiB): every client writes until
//!   its send buffer is full and no server reads, so each connection holds a full send
//!   buffer on one side and a full receive buffer on the other. Live bytes of each side
//!   per connection, and what is left after subtracting the full buffer: the memory a
//!   connection costs beyond its configured buffers, which must stay bounded.
//!
//! Run with `cargo bench -p mptcp-proto --bench connection_scale`.

mod common;

use core::net::{IpAddr, SocketAddr};
use std::collections::HashMap;

use common::{Counting, alloc_snapshot, thread_cpu_seconds};
use mptcp_proto::endpoint::{ConnHandle, Endpoint, EndpointConfig, Event};
use mptcp_proto::mptcp::MptcpConfig;
use mptcp_proto::time::{Duration, Instant};

#[global_allocator]
static ALLOC: Counting = Counting;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Tcp,
    Mptcp { subflows: usize },
}

impl Kind {
    fn name(self) -> String {
        match self {
            Kind::Tcp => "TCP".to_string(),
            Kind::Mptcp { subflows } => format!("MPTCP x{subflows}"),
        }
    }

    fn config(self) -> EndpointConfig {
        EndpointConfig {
            mptcp: matches!(self, Kind::Mptcp { .. }).then(MptcpConfig::default),
            listen_backlog: 1 << 16,
            ..EndpointConfig::default()
        }
    }

    /// The default config with the connection's send and receive buffers (for MPTCP
    /// the connection-level ones, which hold the data; subflows keep no bytes).
    fn config_with_buffers(self, buffer: usize) -> EndpointConfig {
        let mut config = self.config();
        match config.mptcp.as_mut() {
            Some(m) => {
                m.send_buffer = buffer;
                m.recv_buffer = buffer;
            }
            None => {
                config.tcp.send_buffer = buffer;
                config.tcp.recv_buffer = buffer;
            }
        }
        config
    }

    /// Send plus receive buffer bytes one connection is configured with.
    fn configured_buffers(self) -> usize {
        let config = self.config();
        match config.mptcp {
            Some(m) => m.send_buffer + m.recv_buffer,
            None => config.tcp.send_buffer + config.tcp.recv_buffer,
        }
    }
}

const SERVER: &str = "10.9.0.1:80";

/// Two endpoints and a listener, with the packet pump between them.
struct Net {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    packet: Vec<u8>,
}

impl Net {
    fn new(kind: Kind) -> Net {
        Net::with_config(kind.config())
    }

    fn with_config(config: EndpointConfig) -> Net {
        let mut server = Endpoint::new(config.clone(), [2; 32]);
        server
            .listen(SERVER.parse().expect("address"))
            .expect("listen");
        Net {
            now: Instant::from_millis(1),
            client: Endpoint::new(config, [1; 32]),
            server,
            packet: vec![0u8; 65_536],
        }
    }

    fn connect(&mut self, kind: Kind) -> ConnHandle {
        let local: SocketAddr = "10.0.0.1:0".parse().expect("address");
        let remote: SocketAddr = SERVER.parse().expect("address");
        match kind {
            Kind::Tcp => self.client.connect(self.now, local, remote),
            Kind::Mptcp { subflows } => {
                let extra: Vec<IpAddr> = (1..subflows)
                    .map(|i| IpAddr::from([10, 0, i as u8, 1]))
                    .collect();
                self.client.connect_mptcp(self.now, local, remote, &extra)
            }
        }
        .expect("connect")
    }

    /// Moves every queued packet both ways; whether any moved.
    fn pump(&mut self) -> bool {
        let mut moved = false;
        while let Some(len) = self.client.poll_transmit(self.now, &mut self.packet) {
            let _ = self.server.handle_packet(self.now, &self.packet[..len]);
            moved = true;
        }
        while let Some(len) = self.server.poll_transmit(self.now, &mut self.packet) {
            let _ = self.client.handle_packet(self.now, &self.packet[..len]);
            moved = true;
        }
        while self.client.poll_mptcp_event().is_some() {}
        while self.server.poll_mptcp_event().is_some() {}
        moved
    }

    /// Advances virtual time to the next timer of either endpoint and fires it.
    fn advance(&mut self) {
        self.now = self
            .client
            .poll_timeout()
            .into_iter()
            .chain(self.server.poll_timeout())
            .min()
            .unwrap_or(self.now + Duration::from_millis(1))
            .max(self.now);
        self.client.handle_timeout(self.now);
        self.server.handle_timeout(self.now);
    }
}

/// Opens `n` connections and lets them idle; returns live bytes per connection.
fn idle(kind: Kind, n: usize) -> f64 {
    let before = alloc_snapshot().live_bytes;
    let mut net = Net::new(kind);
    for _ in 0..n {
        net.connect(kind);
    }
    let mut accepted = Vec::with_capacity(n);
    let mut idle_rounds = 0;
    while accepted.len() < n || idle_rounds < 3 {
        let moved = net.pump();
        while let Some(event) = net.server.poll_event() {
            if let Event::Incoming(l) = event {
                while let Some(h) = net.server.accept(l) {
                    accepted.push(h);
                }
            }
        }
        while net.client.poll_event().is_some() {}
        if moved {
            idle_rounds = 0;
        } else {
            // Let delayed ACKs and the joins' timers run out.
            idle_rounds += 1;
            net.now += Duration::from_millis(500);
            net.client.handle_timeout(net.now);
            net.server.handle_timeout(net.now);
        }
    }
    assert_eq!(net.client.connection_count(), n);
    assert_eq!(net.server.connection_count(), n);
    let live = alloc_snapshot().live_bytes - before;
    drop(net);
    live as f64 / (2 * n) as f64
}

/// Memory of connections whose windows are full, per connection.
struct Full {
    /// Live bytes of the sending side (its send buffer full).
    client: f64,
    /// Live bytes of the receiving side (its receive buffer full).
    server: f64,
}

/// Opens `n` connections with `buffer`-byte send and receive buffers; every client
/// writes until its send buffer is full and no server reads, so each connection holds
/// a full send buffer on one side and a full receive buffer on the other. Returns the
/// live bytes of each side per connection (the client's endpoint is dropped first to
/// tell them apart).
fn full_windows(kind: Kind, n: usize, buffer: usize) -> Full {
    let mut net = Net::with_config(kind.config_with_buffers(buffer));
    let chunk = vec![0x33u8; 64 * 1024];
    // The bench's own bookkeeping is allocated before the count starts.
    let mut clients: Vec<(ConnHandle, usize)> = Vec::with_capacity(n);
    let mut servers: Vec<ConnHandle> = Vec::with_capacity(n);
    let before = alloc_snapshot().live_bytes;
    for _ in 0..n {
        clients.push((net.connect(kind), 0));
    }
    let target = n * 2 * buffer;
    let mut settle_rounds = 0;
    loop {
        let mut moved = net.pump();
        while let Some(event) = net.server.poll_event() {
            if let Event::Incoming(l) = event {
                while let Some(h) = net.server.accept(l) {
                    servers.push(h);
                }
            }
        }
        while net.client.poll_event().is_some() {}
        for (h, written) in clients.iter_mut() {
            let w = net.client.write(*h, &chunk).unwrap_or(0);
            *written += w;
            moved |= w > 0;
        }
        let written: usize = clients.iter().map(|&(_, w)| w).sum();
        if !moved {
            if servers.len() == n && written == target {
                // Full: let delayed ACKs, window probes and the joins' timers run a
                // few times so the figure is the resting state, not a transient.
                settle_rounds += 1;
                if settle_rounds > 3 {
                    break;
                }
            }
            net.now += Duration::from_millis(500);
            net.client.handle_timeout(net.now);
            net.server.handle_timeout(net.now);
        }
        assert!(
            written <= target,
            "a connection took more than its send and the peer's receive buffer"
        );
    }
    for &h in &servers {
        let held = net.server.readable(h).expect("live");
        assert_eq!(held, buffer, "every receive buffer is full");
    }
    assert_eq!(net.client.connection_count(), n);
    assert_eq!(net.server.connection_count(), n);
    let both = alloc_snapshot().live_bytes - before;
    let Net { client, server, .. } = net;
    drop(client);
    let server_live = alloc_snapshot().live_bytes - before;
    drop(server);
    Full {
        client: (both - server_live) as f64 / n as f64,
        server: server_live as f64 / n as f64,
    }
}

/// Runs `total` short transfers, `batch` at a time; returns connections per CPU-second.
fn short(kind: Kind, total: usize, batch: usize) -> f64 {
    let mut net = Net::new(kind);
    let request = [0x11u8; 1000];
    let reply = [0x22u8; 1000];
    let mut buf = [0u8; 4096];
    let started = thread_cpu_seconds();
    let mut done = 0;
    while done < total {
        let k = batch.min(total - done);
        // Client side: (bytes written, bytes read); server side likewise.
        let mut clients: HashMap<ConnHandle, (usize, usize)> = HashMap::new();
        let mut servers: HashMap<ConnHandle, (usize, usize)> = HashMap::new();
        for _ in 0..k {
            clients.insert(net.connect(kind), (0, 0));
        }
        while net.client.connection_count() + net.server.connection_count() > 0 {
            let moved = net.pump();
            while let Some(event) = net.server.poll_event() {
                if let Event::Incoming(l) = event {
                    while let Some(h) = net.server.accept(l) {
                        servers.insert(h, (0, 0));
                    }
                }
            }
            while net.client.poll_event().is_some() {}
            for (&h, (w, r)) in clients.iter_mut() {
                if *w < request.len() {
                    *w += net.client.write(h, &request[*w..]).unwrap_or(0);
                }
                if *r < reply.len() {
                    *r += net.client.read(h, &mut buf).unwrap_or(0);
                    if *r >= reply.len() {
                        let _ = net.client.close(h);
                    }
                }
            }
            for (&h, (w, r)) in servers.iter_mut() {
                if *r < request.len() {
                    *r += net.server.read(h, &mut buf).unwrap_or(0);
                }
                if *r >= request.len() && *w < reply.len() {
                    *w += net.server.write(h, &reply[*w..]).unwrap_or(0);
                    if *w >= reply.len() {
                        let _ = net.server.close(h);
                    }
                }
            }
            if !moved {
                net.advance();
            }
        }
        assert!(
            clients.values().all(|&(w, r)| w == 1000 && r == 1000),
            "every short transfer completes"
        );
        assert_eq!(servers.len(), k, "every connection was accepted");
        done += k;
    }
    total as f64 / (thread_cpu_seconds() - started)
}

fn main() {
    let env = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    };
    let n = env("SCALE_CONNS", 10_000);
    let short_total = env("SCALE_SHORT", 5_000);
    let full_n = env("SCALE_FULL_CONNS", 1_000);
    let full_buffer = env("SCALE_FULL_BUFFER", 256 * 1024);
    let kinds = [
        Kind::Tcp,
        Kind::Mptcp { subflows: 1 },
        Kind::Mptcp { subflows: 2 },
    ];
    println!(
        "{n} idle connections between two endpoints (default configs; a connection counts \
         once per side; rings are allocated as data arrives, so all of it is beyond the \
         configured buffers; target <= 16 KiB); {short_total} short transfers (connect, \
         1 KB each way, close), 100 at a time, per CPU-second"
    );
    println!(
        "{:<10} {:>16} {:>17} {:>22} {:>10}",
        "kind", "idle B/conn", "idle KiB/conn", "configured buffers B", "conns/s"
    );
    for kind in kinds {
        let live = idle(kind, n);
        let buffers = kind.configured_buffers();
        let rate = short(kind, short_total, 100);
        println!(
            "{:<10} {:>16.0} {:>17.2} {:>22} {:>10.0}",
            kind.name(),
            live,
            live / 1024.0,
            buffers,
            rate
        );
    }
    println!();
    println!(
        "{full_n} connections with full windows: send and receive buffers of {full_buffer} B \
         each, the client writes until its send buffer is full, the server never reads; \
         bytes per connection, and beyond the full buffer on each side"
    );
    println!(
        "{:<10} {:>16} {:>16} {:>16} {:>16} {:>16}",
        "kind",
        "sender B/conn",
        "receiver B/conn",
        "both B/conn",
        "sender extra B",
        "receiver extra B"
    );
    for kind in kinds {
        let full = full_windows(kind, full_n, full_buffer);
        println!(
            "{:<10} {:>16.0} {:>16.0} {:>16.0} {:>16.0} {:>16.0}",
            kind.name(),
            full.client,
            full.server,
            full.client + full.server,
            full.client - full_buffer as f64,
            full.server - full_buffer as f64,
        );
    }
}
