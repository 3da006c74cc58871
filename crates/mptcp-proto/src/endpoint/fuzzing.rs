//! The endpoint fuzz target's body (issue 4: "feeds an established endpoint arbitrary
//! packets on its 4-tuples: never a panic, memory stays bounded, and a clean transfer
//! afterwards still works"). The cargo-fuzz target `fuzz/fuzz_targets/endpoint.rs`
//! (nightly, libFuzzer) and the stable proptest harness `tests/mptcp_endpoint_fuzz.rs`
//! run the same function, as for the wire targets ([`crate::wire::fuzzing`]).
//!
//! [`fuzz_established_endpoint`] reads its input as a script: the first byte picks plain
//! TCP or MPTCP (two subflows: a client with two addresses joins from the second), then
//! each step either injects a forged segment on one of the connection's 4-tuples (either
//! direction, sequence and acknowledgment numbers near what the wire last carried, any
//! flags, a payload, and up to two MPTCP options of every subtype with fuzzed fields),
//! or lets time pass with the application writing. Invariants are `assert!`s, so a
//! violation is a crash the fuzzer reports: bounded state after every step, and a
//! fresh connection afterwards that carries bytes both ways exactly.
//!
//! Everything is deterministic (fixed endpoint secrets, virtual time): a crashing input
//! replays.

use core::net::{IpAddr, SocketAddr};
use std::collections::{BTreeMap, VecDeque};

use arrayvec::ArrayVec;

use super::{ConnHandle, Endpoint, EndpointConfig, Event, ListenerHandle};
use crate::mptcp::{CLOSED_SUBFLOW_HISTORY, MAX_SUBFLOWS, MptcpConfig};
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::fuzzing::MPTCP_SAMPLES;
use crate::wire::mptcp::MptcpOption;
use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr, Timestamps};
use crate::wire::{IpRepr, IpTcpRepr, Ipv4Repr};

/// Most script steps one input runs (longer inputs are cut), so every run is short.
pub const MAX_STEPS: usize = 96;

const SERVER: &str = "10.9.0.1:80";
const CLIENT: &str = "10.0.0.1";
const CLIENT_EXTRA: &str = "10.0.1.1";
/// One-way delay of the in-memory wire.
const DELAY: Duration = Duration::from_millis(5);
/// Bytes each way in the transfer after the fuzzing.
const CHECK_BYTES: usize = 24 * 1024;

/// Runs one fuzz input; panics (an `assert!`) when an invariant breaks.
pub fn fuzz_established_endpoint(data: &[u8]) {
    let mut input = Script { data, at: 0 };
    let mptcp = input.byte() & 1 == 1;
    let mut net = Net::new(mptcp);
    let (client_conn, server_conn) = net.establish(mptcp);
    let tuples = net.tuples(server_conn, mptcp);
    assert!(
        !tuples.is_empty(),
        "an established connection has a 4-tuple"
    );
    let mut payload = [0u8; 256];
    for step in 0..MAX_STEPS {
        if input.is_empty() {
            break;
        }
        match input.byte() % 4 {
            0 | 1 => {
                // A forged segment; even: towards the server, odd: towards the client.
                let to_server = input.byte() & 1 == 0;
                let tuple = tuples[usize::from(input.byte()) % tuples.len()];
                net.inject(&mut input, tuple, to_server, &mut payload);
            }
            2 => {
                // The application writes and time passes, so the forged segments meet
                // live state (data in flight, SACK holes, timers).
                let n = usize::from(input.byte()) * 16;
                let fill = pattern(n, step as u64);
                let _ = net.client.write(client_conn, &fill);
                let _ = net.server.write(server_conn, &fill);
                let ms = u64::from(input.byte() % 64);
                net.run_for(Duration::from_millis(ms));
            }
            _ => net.run_for(Duration::from_millis(1)),
        }
        net.drain_apps(client_conn, server_conn);
        net.check_bounds(tuples.len());
    }
    // Let whatever the forgeries started settle (retransmissions, resets, closes).
    net.run_for(Duration::from_secs(2));
    net.drain_apps(client_conn, server_conn);
    net.check_bounds(tuples.len());
    net.fresh_transfer(mptcp);
}

/// The fuzz input, read front to back; zeros once exhausted.
struct Script<'a> {
    data: &'a [u8],
    at: usize,
}

impl Script<'_> {
    fn is_empty(&self) -> bool {
        self.at >= self.data.len()
    }

    fn byte(&mut self) -> u8 {
        let b = self.data.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        b
    }

    fn u16(&mut self) -> u16 {
        u16::from_be_bytes([self.byte(), self.byte()])
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }

    /// A sequence-space offset: mostly within a few windows of zero, sometimes anywhere.
    fn offset(&mut self) -> u32 {
        match self.byte() % 8 {
            0 => self.u32(),
            k => {
                let magnitude = u32::from(self.u16()) << (k - 1);
                if self.byte() & 1 == 0 {
                    magnitude
                } else {
                    magnitude.wrapping_neg()
                }
            }
        }
    }
}

/// What the wire last carried in one direction of one 4-tuple.
#[derive(Clone, Copy, Debug, Default)]
struct Seen {
    seq: u32,
    ack: u32,
    tsval: u32,
    tsecr: u32,
}

/// Two endpoints joined by a lossless in-memory wire with a fixed delay.
struct Net {
    now: Instant,
    client: Endpoint,
    server: Endpoint,
    listener: ListenerHandle,
    /// (arrival, order) -> (to the server?, packet).
    queue: BTreeMap<(Instant, u64), (bool, Vec<u8>)>,
    order: u64,
    /// Per (source, destination): the last segment's fields.
    seen: BTreeMap<(SocketAddr, SocketAddr), Seen>,
    accepted: VecDeque<ConnHandle>,
    buf: Vec<u8>,
}

impl Net {
    fn new(mptcp: bool) -> Net {
        let config = || {
            let mut c = EndpointConfig::default();
            // Small buffers: the bounds are reached quickly, and so are their edges.
            c.tcp.send_buffer = 64 * 1024;
            c.tcp.recv_buffer = 64 * 1024;
            c.mptcp = mptcp.then(|| {
                let mut m = MptcpConfig {
                    send_buffer: 64 * 1024,
                    recv_buffer: 64 * 1024,
                    ..MptcpConfig::default()
                };
                m.tcp = c.tcp.clone();
                m
            });
            c
        };
        let client = Endpoint::new(config(), [0xc1; 32]);
        let mut server = Endpoint::new(config(), [0x5e; 32]);
        let listener = server
            .listen(addr(SERVER))
            .expect("a free listening address");
        Net {
            now: Instant::from_secs(1),
            client,
            server,
            listener,
            queue: BTreeMap::new(),
            order: 0,
            seen: BTreeMap::new(),
            accepted: VecDeque::new(),
            buf: vec![0; 65_536],
        }
    }

    /// Opens a connection (MPTCP: until both subflows are up) with some data each way,
    /// and returns (client's handle, server's handle).
    fn establish(&mut self, mptcp: bool) -> (ConnHandle, ConnHandle) {
        let (client, server) = self.open(mptcp, 0);
        let hello = pattern(3000, 1);
        let _ = self.client.write(client, &hello);
        let _ = self.server.write(server, &hello);
        let deadline = self.now + Duration::from_secs(5);
        let joined = |net: &Net| {
            !mptcp
                || net
                    .server
                    .mptcp_stats(server)
                    .is_ok_and(|s| s.subflows.iter().filter(|f| f.established).count() == 2)
        };
        while !joined(self) && self.now < deadline {
            self.run_for(Duration::from_millis(10));
        }
        assert!(joined(self), "the second subflow joined");
        (client, server)
    }

    /// A new connection from the client's port `port` (0: ephemeral), accepted.
    fn open(&mut self, mptcp: bool, port: u16) -> (ConnHandle, ConnHandle) {
        let local = SocketAddr::new(ip(CLIENT), port);
        let client = if mptcp {
            self.client
                .connect_mptcp(self.now, local, addr(SERVER), &[ip(CLIENT_EXTRA)])
        } else {
            self.client.connect(self.now, local, addr(SERVER))
        }
        .expect("the client can connect");
        let deadline = self.now + Duration::from_secs(5);
        while self.accepted.is_empty() && self.now < deadline {
            self.run_for(Duration::from_millis(5));
        }
        let server = self
            .accepted
            .pop_front()
            .expect("the server accepted the connection");
        (client, server)
    }

    /// The connection's 4-tuples as the server sees them (local = server).
    fn tuples(&self, server: ConnHandle, mptcp: bool) -> ArrayVec<(SocketAddr, SocketAddr), 8> {
        let mut out = ArrayVec::new();
        if mptcp {
            if let Ok(stats) = self.server.mptcp_stats(server) {
                for s in stats.subflows.iter().take(8) {
                    out.push((s.local, s.remote));
                }
            }
        } else if let Ok(t) = self.server.addresses(server) {
            out.push((t.local, t.remote));
        }
        out
    }

    /// Builds a segment from the script and puts it on the wire.
    fn inject(
        &mut self,
        input: &mut Script<'_>,
        (server, client): (SocketAddr, SocketAddr),
        to_server: bool,
        payload: &mut [u8; 256],
    ) {
        let (src, dst) = if to_server {
            (client, server)
        } else {
            (server, client)
        };
        // Near what the sender of this direction last used, and what it last acked.
        let seen = self.seen.get(&(src, dst)).copied().unwrap_or_default();
        let seq = seen.seq.wrapping_add(input.offset());
        let ack = seen.ack.wrapping_add(input.offset());
        let mut flags = TcpFlags(input.byte());
        if !input.byte().is_multiple_of(4) {
            // Mostly ACK segments: those reach the established-state processing.
            flags = flags.union(TcpFlags::ACK);
        }
        let window = input.u16();
        let len = usize::from(input.byte()).min(payload.len());
        for (i, b) in payload[..len].iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(31).wrapping_add(seq as u8);
        }
        // Up to two MPTCP options: a well-formed one of any subtype with fuzzed bytes
        // after its kind, length and subtype (those keep it parseable most of the time).
        let mut raw: ArrayVec<[u8; 40], 2> = ArrayVec::new();
        let mut lens: ArrayVec<usize, 2> = ArrayVec::new();
        for _ in 0..input.byte() % 3 {
            let sample = MPTCP_SAMPLES[usize::from(input.byte()) % MPTCP_SAMPLES.len()];
            let mut bytes = [0u8; 40];
            bytes[..sample.len()].copy_from_slice(sample);
            let flips = input.byte() % 4;
            for _ in 0..flips {
                let at = 2 + usize::from(input.byte()) % (sample.len() - 2).max(1);
                if at < sample.len() {
                    bytes[at] ^= input.byte();
                }
            }
            raw.push(bytes);
            lens.push(sample.len());
        }
        let mut options = TcpOptions {
            timestamps: (input.byte() & 1 == 0).then_some(Timestamps {
                tsval: seen.tsval.wrapping_add(u32::from(input.byte())),
                tsecr: seen.tsecr,
            }),
            ..TcpOptions::default()
        };
        for (bytes, len) in raw.iter().zip(&lens) {
            if let Ok(option) = MptcpOption::parse(&bytes[..*len]) {
                let _ = options.mptcp.try_push(option);
            }
        }
        let tcp = TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags,
            window,
            urgent: 0,
            options,
            payload: &payload[..len],
        };
        let (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) = (src.ip(), dst.ip()) else {
            unreachable!("the harness uses IPv4 addresses only");
        };
        let packet = IpTcpRepr {
            ip: IpRepr::V4(Ipv4Repr {
                src_addr,
                dst_addr,
                protocol: crate::wire::tcp::IP_PROTOCOL_TCP,
                payload_len: 0,
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: 0,
                dont_frag: true,
            }),
            tcp,
        };
        let mut bytes = vec![0u8; packet.buffer_len()];
        // Options that do not fit in 40 bytes make no packet: nothing to inject.
        if let Ok(n) = packet.emit(&mut bytes, true) {
            bytes.truncate(n);
            self.order += 1;
            self.queue
                .insert((self.now, self.order), (to_server, bytes));
            self.deliver_due();
        }
    }

    /// Moves both endpoints' output onto the wire.
    fn transmit(&mut self) {
        for to_server in [true, false] {
            loop {
                let ep = if to_server {
                    &mut self.client
                } else {
                    &mut self.server
                };
                let Some(len) = ep.poll_transmit(self.now, &mut self.buf) else {
                    break;
                };
                let bytes = self.buf[..len].to_vec();
                let seen = match IpTcpRepr::parse(&bytes, true) {
                    Ok(p) => {
                        let src = SocketAddr::new(p.ip.src_addr(), p.tcp.src_port);
                        let dst = SocketAddr::new(p.ip.dst_addr(), p.tcp.dst_port);
                        let ts = p
                            .tcp
                            .options
                            .timestamps
                            .unwrap_or(Timestamps { tsval: 0, tsecr: 0 });
                        let fields = Seen {
                            seq: p.tcp.seq.0,
                            ack: p.tcp.ack.0,
                            tsval: ts.tsval,
                            tsecr: ts.tsecr,
                        };
                        ((src, dst), fields)
                    }
                    Err(err) => panic!("an endpoint emitted an invalid packet: {err}"),
                };
                self.seen.insert(seen.0, seen.1);
                self.order += 1;
                self.queue
                    .insert((self.now + DELAY, self.order), (to_server, bytes));
            }
        }
    }

    /// Hands every packet due by now to its endpoint.
    fn deliver_due(&mut self) {
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (to_server, bytes) = entry.remove();
            let ep = if to_server {
                &mut self.server
            } else {
                &mut self.client
            };
            // Errors are drops the endpoint counts; only a panic is a finding.
            let _ = ep.handle_packet(self.now, &bytes);
        }
    }

    fn events(&mut self) {
        while let Some(event) = self.server.poll_event() {
            if event == Event::Incoming(self.listener)
                && let Some(conn) = self.server.accept(self.listener)
            {
                self.accepted.push_back(conn);
            }
        }
        while self.client.poll_event().is_some() {}
        while self.server.poll_mptcp_event().is_some() {}
        while self.client.poll_mptcp_event().is_some() {}
    }

    /// Runs the wire and both endpoints' timers for `d` of virtual time.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        loop {
            self.transmit();
            self.deliver_due();
            self.events();
            for ep in [&mut self.client, &mut self.server] {
                if ep.poll_timeout().is_some_and(|t| t <= self.now) {
                    ep.handle_timeout(self.now);
                }
            }
            self.transmit();
            let next = [
                self.queue.keys().next().map(|k| k.0),
                self.client.poll_timeout(),
                self.server.poll_timeout(),
            ]
            .into_iter()
            .flatten()
            .filter(|&t| t > self.now)
            .min();
            match next {
                Some(t) if t <= end => self.now = t,
                _ => {
                    self.now = end;
                    self.transmit();
                    self.deliver_due();
                    self.events();
                    return;
                }
            }
        }
    }

    /// Reads what arrived, as an application would (so windows open again).
    fn drain_apps(&mut self, client: ConnHandle, server: ConnHandle) {
        let mut sink = [0u8; 16 * 1024];
        while self.client.read(client, &mut sink).is_ok_and(|n| n > 0) {}
        while self.server.read(server, &mut sink).is_ok_and(|n| n > 0) {}
    }

    /// Memory stays within what the configuration allows.
    fn check_bounds(&self, tuples: usize) {
        for (name, ep) in [("client", &self.client), ("server", &self.server)] {
            // The connection, plus at most one per tuple re-opened by a forged SYN
            // after a forged RST killed it, plus the check connection.
            assert!(
                ep.connection_count() <= tuples + 2,
                "{name}: {} connections for {tuples} tuples",
                ep.connection_count()
            );
            for conn in ep.connection_handles() {
                let Ok(c) = ep.mptcp(conn) else {
                    continue;
                };
                let m = c.memory_use();
                assert!(m.subflows <= MAX_SUBFLOWS + 1, "{name}: {m:?}");
                assert!(m.closed_subflows <= CLOSED_SUBFLOW_HISTORY, "{name}: {m:?}");
                assert!(m.rx_mappings <= m.rx_mapping_limit, "{name}: {m:?}");
                assert!(m.reassembly_bytes <= m.reassembly_capacity, "{name}: {m:?}");
                assert!(m.send_bytes <= m.send_capacity, "{name}: {m:?}");
                assert!(m.tx_mappings <= m.send_capacity, "{name}: {m:?}");
                assert!(m.reinject_ranges <= m.send_capacity, "{name}: {m:?}");
                // At most one pending signal per address id and kind.
                assert!(m.queued_signals <= 3 * 256, "{name}: {m:?}");
            }
        }
    }

    /// A new connection after the fuzzing carries bytes both ways exactly.
    fn fresh_transfer(&mut self, mptcp: bool) {
        let (client, server) = self.open(mptcp, 45_000);
        let up = pattern(CHECK_BYTES, 7);
        let down = pattern(CHECK_BYTES, 8);
        let (mut sent_up, mut sent_down) = (0, 0);
        let (mut got_up, mut got_down) = (Vec::new(), Vec::new());
        let mut sink = [0u8; 16 * 1024];
        let deadline = self.now + Duration::from_secs(30);
        while (got_up.len() < up.len() || got_down.len() < down.len()) && self.now < deadline {
            sent_up += self.client.write(client, &up[sent_up..]).unwrap_or(0);
            sent_down += self.server.write(server, &down[sent_down..]).unwrap_or(0);
            self.run_for(Duration::from_millis(10));
            while let Ok(n @ 1..) = self.server.read(server, &mut sink) {
                got_up.extend_from_slice(&sink[..n]);
            }
            while let Ok(n @ 1..) = self.client.read(client, &mut sink) {
                got_down.extend_from_slice(&sink[..n]);
            }
        }
        assert!(
            got_up == up,
            "client to server: {} of {} bytes",
            got_up.len(),
            up.len()
        );
        assert!(
            got_down == down,
            "server to client: {} of {} bytes",
            got_down.len(),
            down.len()
        );
        if mptcp {
            assert_eq!(
                self.server.is_mptcp(server),
                Ok(true),
                "the check connection is MPTCP"
            );
        }
        assert!(
            self.client
                .state(client)
                .is_ok_and(|s| s != crate::tcp::TcpState::Closed),
            "the check connection is open"
        );
    }
}

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("a literal socket address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("a literal address")
}

/// A deterministic payload.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            // xorshift64
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_script_still_establishes_and_transfers_both_kinds() {
        fuzz_established_endpoint(&[]);
        fuzz_established_endpoint(&[1]);
    }
}
