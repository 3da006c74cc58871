//! Shared harness for endpoint tests: two [`Endpoint`]s joined by an in-memory wire of
//! real IP packets, with a virtual clock, a one-way delay, and a filter that may drop,
//! duplicate or corrupt any packet. Deterministic: the same calls give the same packets.
#![allow(dead_code)]

use std::collections::BTreeMap;

use mptcp_proto::endpoint::{ConnHandle, Endpoint, EndpointConfig, Event};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::IpTcpRepr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Side {
    Client,
    Server,
}

impl Side {
    pub fn other(self) -> Side {
        match self {
            Side::Client => Side::Server,
            Side::Server => Side::Client,
        }
    }
}

/// What the wire does with one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deliver,
    Drop,
    Duplicate,
}

/// Sees every packet put on the wire (sender, index among that sender's packets, the
/// bytes, which it may change) and decides its fate.
pub type Filter = Box<dyn FnMut(Side, usize, &mut Vec<u8>) -> Action>;

/// What the sending side's device does with the packets its endpoint emits (the
/// endpoint's `checksum_offload` and `max_segment_payload` decide what it emits).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Device {
    /// Packets go out as emitted and are checked on arrival.
    Plain,
    /// A TSO device, as the kernel treats a TUN write with a virtio_net_hdr: cuts a
    /// super-segment into pieces of its `gso_size` (each a full packet with a copy of
    /// the headers, FIN and PSH on the last piece only), completes partial checksums,
    /// and asserts every piece fits `mtu`. The filter sees the pieces.
    Cut { mtu: usize },
    /// The packet reaches the receiver whole, checksums not verified, as a TUN reader
    /// with offload gets a GSO packet from the kernel
    /// (`Endpoint::handle_packet_trusted`).
    Whole,
}

/// One packet put on the wire, as sent (before the filter changed it).
#[derive(Clone, Debug)]
pub struct WirePacket {
    pub at: Instant,
    pub from: Side,
    pub bytes: Vec<u8>,
    pub action: Action,
}

pub struct Pair {
    pub now: Instant,
    pub client: Endpoint,
    pub server: Endpoint,
    /// One-way delay of every packet.
    pub delay: Duration,
    pub filter: Option<Filter>,
    /// Every packet put on the wire, when `record` is set.
    pub record: bool,
    pub wire: Vec<WirePacket>,
    pub client_events: Vec<Event>,
    pub server_events: Vec<Event>,
    /// The client's and the server's device.
    pub devices: [Device; 2],
    /// Packets the endpoints emitted, and how many of them were super-segments.
    pub emitted: [usize; 2],
    pub super_segments: [usize; 2],
    /// Packets in flight: (arrival, sequence) -> (receiver, bytes, trusted).
    queue: BTreeMap<(Instant, u64), (Side, Vec<u8>, bool)>,
    order: u64,
    sent: [usize; 2],
    buf: Vec<u8>,
}

pub const MS: Duration = Duration::from_millis(1);

impl Pair {
    pub fn new(client: EndpointConfig, server: EndpointConfig) -> Pair {
        Pair {
            now: Instant::from_secs(1),
            client: Endpoint::new(client, [0xc1; 32]),
            server: Endpoint::new(server, [0x5e; 32]),
            delay: Duration::from_millis(10),
            filter: None,
            record: false,
            wire: Vec::new(),
            client_events: Vec::new(),
            server_events: Vec::new(),
            devices: [Device::Plain; 2],
            emitted: [0, 0],
            super_segments: [0, 0],
            queue: BTreeMap::new(),
            order: 0,
            sent: [0, 0],
            buf: vec![0; 65_536],
        }
    }

    pub fn endpoint(&mut self, side: Side) -> &mut Endpoint {
        match side {
            Side::Client => &mut self.client,
            Side::Server => &mut self.server,
        }
    }

    /// Puts raw bytes on the wire from `from`, as if its endpoint had sent them.
    pub fn inject(&mut self, from: Side, bytes: Vec<u8>) {
        self.enqueue(from, bytes, Action::Deliver, false);
    }

    fn enqueue(&mut self, from: Side, bytes: Vec<u8>, action: Action, trusted: bool) {
        let copies = match action {
            Action::Deliver => 1,
            Action::Drop => 0,
            Action::Duplicate => 2,
        };
        for _ in 0..copies {
            self.order += 1;
            self.queue.insert(
                (self.now + self.delay, self.order),
                (from.other(), bytes.clone(), trusted),
            );
        }
    }

    /// One round: both endpoints transmit, due packets arrive, events are collected;
    /// when nothing happened, the clock jumps to the next arrival or timer. Returns
    /// false when the system is idle for good.
    pub fn step(&mut self) -> bool {
        let mut progressed = false;
        for side in [Side::Client, Side::Server] {
            loop {
                let now = self.now;
                let mut buf = core::mem::take(&mut self.buf);
                let sent = self.endpoint(side).poll_transmit_gso(now, &mut buf);
                let Some(sent) = sent else {
                    self.buf = buf;
                    break;
                };
                let emitted = buf[..sent.len].to_vec();
                self.buf = buf;
                self.emitted[side as usize] += 1;
                if sent.gso_size.is_some() {
                    self.super_segments[side as usize] += 1;
                }
                let (packets, trusted) = match self.devices[side as usize] {
                    Device::Plain => {
                        assert!(
                            sent.gso_size.is_none(),
                            "a super-segment for a plain device"
                        );
                        (vec![emitted], false)
                    }
                    Device::Whole => (vec![emitted], true),
                    Device::Cut { mtu } => {
                        let pieces = gso_cut(&emitted, sent.gso_size);
                        for p in &pieces {
                            assert!(p.len() <= mtu, "a {}-byte piece for MTU {mtu}", p.len());
                        }
                        (pieces, false)
                    }
                };
                for original in packets {
                    let index = self.sent[side as usize];
                    self.sent[side as usize] += 1;
                    let mut bytes = original.clone();
                    let action = match self.filter.as_mut() {
                        Some(f) => f(side, index, &mut bytes),
                        None => Action::Deliver,
                    };
                    if self.record {
                        self.wire.push(WirePacket {
                            at: now,
                            from: side,
                            bytes: original,
                            action,
                        });
                    }
                    self.enqueue(side, bytes, action, trusted);
                }
                progressed = true;
            }
        }
        while let Some(entry) = self.queue.first_entry() {
            if entry.key().0 > self.now {
                break;
            }
            let (to, bytes, trusted) = entry.remove();
            let now = self.now;
            let _ = if trusted {
                self.endpoint(to).handle_packet_trusted(now, &bytes)
            } else {
                self.endpoint(to).handle_packet(now, &bytes)
            };
            progressed = true;
        }
        while let Some(e) = self.client.poll_event() {
            self.client_events.push(e);
        }
        while let Some(e) = self.server.poll_event() {
            self.server_events.push(e);
        }
        if progressed {
            return true;
        }
        let next = [
            self.queue.first_key_value().map(|(k, _)| k.0),
            self.client.poll_timeout(),
            self.server.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            None => false,
            Some(t) => {
                self.now = self.now.max(t);
                let now = self.now;
                self.client.handle_timeout(now);
                self.server.handle_timeout(now);
                true
            }
        }
    }

    /// Steps until `done` says so (true), the system is idle, or `limit` of virtual
    /// time passed (false).
    pub fn run_until(&mut self, limit: Duration, mut done: impl FnMut(&mut Pair) -> bool) -> bool {
        let end = self.now + limit;
        for _ in 0..10_000_000 {
            if done(self) {
                return true;
            }
            if self.now > end || !self.step() {
                return done(self);
            }
        }
        panic!("no progress of virtual time after 10M steps");
    }

    /// Steps until idle (every connection gone quiet, TIME-WAIT included) or `limit`.
    pub fn run_idle(&mut self, limit: Duration) {
        self.run_until(limit, |_| false);
    }
}

/// One direction of application data on one connection: writes `data` as buffer
/// space allows, reads everything that arrives, closes once all is written.
#[derive(Debug)]
pub struct Stream {
    pub side: Side,
    pub handle: ConnHandle,
    pub data: Vec<u8>,
    pub written: usize,
    pub received: Vec<u8>,
    pub close_when_written: bool,
    pub closed: bool,
}

impl Stream {
    pub fn new(side: Side, handle: ConnHandle, data: Vec<u8>) -> Stream {
        Stream {
            side,
            handle,
            data,
            written: 0,
            received: Vec::new(),
            close_when_written: true,
            closed: false,
        }
    }

    /// Writes and reads what it can. Errors (a removed connection) end the pumping.
    pub fn pump(&mut self, pair: &mut Pair) {
        let ep = pair.endpoint(self.side);
        if self.written < self.data.len()
            && let Ok(n) = ep.write(self.handle, &self.data[self.written..])
        {
            self.written += n;
        }
        // RFC 9293 §3.10.4: CLOSE in SYN-SENT deletes the connection, queued data and
        // all, so an application closes once the handshake is done.
        let synchronized = ep.state(self.handle).is_ok_and(|s| s.is_synchronized());
        if self.written == self.data.len()
            && self.close_when_written
            && !self.closed
            && synchronized
        {
            self.closed = ep.close(self.handle).is_ok();
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = ep.read(self.handle, &mut buf) {
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
        }
    }
}

/// Deterministic pseudo-random bytes (SplitMix64), so tests need no RNG crate API.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut rng = SplitMix(seed);
    (0..len).map(|_| rng.next() as u8).collect()
}

pub struct SplitMix(pub u64);

impl SplitMix {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// What a TSO device (the kernel's GSO) makes of an emitted packet: the pieces of a
/// super-segment cut at `gso_size` payload bytes, each with the headers copied,
/// sequence number and IP length adjusted and FIN/PSH only on the last; every packet
/// with its checksums completed (the sender may have left a partial TCP checksum).
pub fn gso_cut(packet: &[u8], gso_size: Option<u16>) -> Vec<Vec<u8>> {
    use mptcp_proto::wire::tcp::TcpFlags;
    let repr = IpTcpRepr::parse(packet, false).expect("the endpoint emits valid packets");
    let payload = repr.tcp.payload;
    let size = match gso_size {
        Some(size) if payload.len() > usize::from(size) => usize::from(size),
        _ => payload.len().max(1),
    };
    let chunks: Vec<&[u8]> = if payload.is_empty() {
        vec![payload]
    } else {
        payload.chunks(size).collect()
    };
    let last = chunks.len() - 1;
    chunks
        .into_iter()
        .enumerate()
        .map(|(i, chunk)| {
            let mut piece = repr.clone();
            piece.tcp.payload = chunk;
            piece.tcp.seq = repr.tcp.seq + (i * size) as u32;
            if i != last {
                piece.tcp.flags = TcpFlags(repr.tcp.flags.0 & !(TcpFlags::FIN.0 | TcpFlags::PSH.0));
            }
            let mut buf = vec![0; piece.buffer_len()];
            let len = piece.emit(&mut buf, true).expect("a piece fits");
            buf.truncate(len);
            buf
        })
        .collect()
}

/// Parses a packet the endpoint emitted (checksums verified).
pub fn parse(bytes: &[u8]) -> IpTcpRepr<'_> {
    IpTcpRepr::parse(bytes, true).expect("the endpoint emits valid packets")
}

/// Builds one valid IP packet (checksums computed) carrying a hand-made segment.
pub fn packet(
    src: std::net::SocketAddr,
    dst: std::net::SocketAddr,
    flags: mptcp_proto::wire::tcp::TcpFlags,
    seq: u32,
    ack: u32,
    payload: &[u8],
) -> Vec<u8> {
    use mptcp_proto::SeqNum;
    use mptcp_proto::wire::tcp::{TcpOptions, TcpRepr};
    use mptcp_proto::wire::{IpRepr, Ipv4Repr, Ipv6Repr};
    use std::net::IpAddr;
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => IpRepr::V4(Ipv4Repr {
            src_addr: s,
            dst_addr: d,
            protocol: 6,
            payload_len: 0,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
        }),
        (IpAddr::V6(s), IpAddr::V6(d)) => IpRepr::V6(Ipv6Repr {
            src_addr: s,
            dst_addr: d,
            next_header: 6,
            payload_len: 0,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }),
        (s, d) => panic!("test packet with mixed families {s} {d}"),
    };
    let repr = IpTcpRepr {
        ip,
        tcp: TcpRepr {
            src_port: src.port(),
            dst_port: dst.port(),
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags,
            window: 65_535,
            urgent: 0,
            options: TcpOptions {
                mss: if flags.syn() { Some(1460) } else { None },
                ..TcpOptions::default()
            },
            payload,
        },
    };
    let mut buf = vec![0; repr.buffer_len()];
    let len = repr.emit(&mut buf, true).expect("test packet fits");
    buf.truncate(len);
    buf
}

pub fn addr(s: &str) -> std::net::SocketAddr {
    s.parse().expect("test address literal")
}
