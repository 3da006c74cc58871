//! A `Pair` harness: a client and a server `TcpSocket` joined by an in-memory network
//! with a virtual clock, a one-way delay and hooks to drop, duplicate or delay chosen
//! segments. Every segment put on the wire is recorded for exact assertions.
#![allow(dead_code)]

use core::net::SocketAddr;

use arrayvec::ArrayVec;
use mptcp_proto::seq::SeqNum;
use mptcp_proto::tcp::{TcpConfig, TcpEvent, TcpSocket, TcpState};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::tcp::{SackBlock, TcpFlags, TcpOptions, TcpPacket, TcpRepr, Timestamps};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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

/// A segment that owns its payload, as it sits on the wire.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Segment {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    pub ack: SeqNum,
    pub flags: TcpFlags,
    pub window: u16,
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack_blocks: ArrayVec<SackBlock, 4>,
    pub timestamps: Option<Timestamps>,
    pub payload: Vec<u8>,
}

/// Emits `repr` to bytes with a checksum, as the engine's caller will, and parses the
/// bytes back: every segment the engine produces must survive the real codec.
pub fn through_wire(repr: &TcpRepr<'_>, src: SocketAddr, dst: SocketAddr) -> Segment {
    let mut buf = vec![0u8; repr.buffer_len()];
    let n = repr
        .emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            src.ip(),
            dst.ip(),
            true,
        )
        .expect("the engine's segment fits a TCP header");
    assert_eq!(n, buf.len());
    let packet = TcpPacket::new_checked(&buf[..]).expect("emitted bytes parse");
    let parsed =
        TcpRepr::parse(&packet, src.ip(), dst.ip(), true).expect("checksum and options valid");
    assert_eq!(&parsed, repr, "codec round trip");
    Segment::from_repr(&parsed)
}

impl Segment {
    pub fn from_repr(r: &TcpRepr<'_>) -> Segment {
        Segment {
            src_port: r.src_port,
            dst_port: r.dst_port,
            seq: r.seq,
            ack: r.ack,
            flags: r.flags,
            window: r.window,
            mss: r.options.mss,
            window_scale: r.options.window_scale,
            sack_permitted: r.options.sack_permitted,
            sack_blocks: r.options.sack_blocks.clone(),
            timestamps: r.options.timestamps,
            payload: r.payload.to_vec(),
        }
    }

    pub fn repr(&self) -> TcpRepr<'_> {
        TcpRepr {
            src_port: self.src_port,
            dst_port: self.dst_port,
            seq: self.seq,
            ack: self.ack,
            flags: self.flags,
            window: self.window,
            urgent: 0,
            options: TcpOptions {
                mss: self.mss,
                window_scale: self.window_scale,
                sack_permitted: self.sack_permitted,
                sack_blocks: self.sack_blocks.clone(),
                timestamps: self.timestamps,
                mptcp: ArrayVec::new(),
            },
            payload: &self.payload,
        }
    }

    pub fn has(&self, f: TcpFlags) -> bool {
        self.flags.contains(f)
    }
}

/// What the network does with one segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Deliver,
    Drop,
    Duplicate,
    /// Deliver after the normal delay plus this much (reordering).
    Delay(Duration),
}

/// A filter that does `action` to the client's segment number `index` (counting every
/// segment the client sent, from its SYN) and delivers all others.
pub fn on_client_segment(index: usize, action: Action) -> Filter {
    Box::new(move |s| {
        if s.from == Side::Client && s.index == index {
            action
        } else {
            Action::Deliver
        }
    })
}

/// One segment put on the wire.
#[derive(Clone, Debug)]
pub struct Sent {
    pub at: Instant,
    pub from: Side,
    /// Index among the segments this side sent (0-based).
    pub index: usize,
    pub segment: Segment,
    pub action: Action,
}

pub type Filter = Box<dyn FnMut(&Sent) -> Action>;

struct InFlight {
    deliver_at: Instant,
    order: u64,
    to: Side,
    segment: Segment,
}

/// One side's application: bytes still to write, bytes read, whether to close when
/// everything is written.
#[derive(Default)]
pub struct App {
    pub outbox: Vec<u8>,
    pub written: usize,
    pub inbox: Vec<u8>,
    pub auto_read: bool,
    pub close_when_done: bool,
    pub events: Vec<(Instant, TcpEvent)>,
}

pub struct Pair {
    pub now: Instant,
    pub client: TcpSocket,
    pub server: Option<TcpSocket>,
    pub server_config: TcpConfig,
    pub delay: Duration,
    pub log: Vec<Sent>,
    pub filter: Filter,
    pub client_app: App,
    pub server_app: App,
    pub drops: Vec<(Side, String)>,
    in_flight: Vec<InFlight>,
    order: u64,
    sent_count: [usize; 2],
}

pub fn client_addr() -> SocketAddr {
    "10.0.0.1:40000".parse().expect("literal")
}

pub fn server_addr() -> SocketAddr {
    "10.0.0.2:80".parse().expect("literal")
}

pub const CLIENT_ISS: SeqNum = SeqNum(0xffff_f000);
pub const SERVER_ISS: SeqNum = SeqNum(1_000_000);

impl Pair {
    /// A client that has called connect() at time 0; the server is created from the
    /// first SYN it receives. One-way delay `delay`.
    pub fn new(client: TcpConfig, server: TcpConfig, delay: Duration) -> Pair {
        let now = Instant::ZERO;
        let sock = TcpSocket::connect(client, client_addr(), server_addr(), now, CLIENT_ISS);
        Pair {
            now,
            client: sock,
            server: None,
            server_config: server,
            delay,
            log: Vec::new(),
            filter: Box::new(|_| Action::Deliver),
            client_app: App {
                auto_read: true,
                ..App::default()
            },
            server_app: App {
                auto_read: true,
                ..App::default()
            },
            drops: Vec::new(),
            in_flight: Vec::new(),
            order: 0,
            sent_count: [0, 0],
        }
    }

    pub fn server(&self) -> &TcpSocket {
        self.server
            .as_ref()
            .expect("server exists after the SYN arrived")
    }

    pub fn server_mut(&mut self) -> &mut TcpSocket {
        self.server
            .as_mut()
            .expect("server exists after the SYN arrived")
    }

    pub fn socket(&mut self, side: Side) -> Option<&mut TcpSocket> {
        match side {
            Side::Client => Some(&mut self.client),
            Side::Server => self.server.as_mut(),
        }
    }

    pub fn app(&mut self, side: Side) -> &mut App {
        match side {
            Side::Client => &mut self.client_app,
            Side::Server => &mut self.server_app,
        }
    }

    /// Segments `side` sent, in order.
    pub fn sent_by(&self, side: Side) -> impl Iterator<Item = &Sent> + '_ {
        self.log.iter().filter(move |s| s.from == side)
    }

    /// Puts a hand-made segment on the wire towards `to` (bypassing the filter).
    pub fn inject(&mut self, to: Side, segment: Segment) {
        self.order += 1;
        self.in_flight.push(InFlight {
            deliver_at: self.now,
            order: self.order,
            to,
            segment,
        });
    }

    /// Lets both applications write, read and collect events now.
    pub fn run_apps(&mut self) {
        for side in [Side::Client, Side::Server] {
            let (sock, app) = match side {
                Side::Client => (Some(&mut self.client), &mut self.client_app),
                Side::Server => (self.server.as_mut(), &mut self.server_app),
            };
            let Some(sock) = sock else { continue };
            while let Some(ev) = sock.poll_event() {
                app.events.push((self.now, ev));
            }
            if app.written < app.outbox.len() {
                let n = sock.write(&app.outbox[app.written..]);
                app.written += n;
            }
            if app.close_when_done && app.written == app.outbox.len() {
                sock.close();
                app.close_when_done = false;
            }
            if app.auto_read {
                let mut buf = [0u8; 4096];
                loop {
                    let n = sock.read(&mut buf);
                    if n == 0 {
                        break;
                    }
                    app.inbox.extend_from_slice(&buf[..n]);
                }
            }
        }
    }

    fn transmit_all(&mut self) {
        for side in [Side::Client, Side::Server] {
            loop {
                let now = self.now;
                let segment = match side {
                    Side::Client => self
                        .client
                        .poll_transmit(now)
                        .map(|t| Segment::from_repr(&t.segment)),
                    Side::Server => match self.server.as_mut() {
                        Some(s) => s.poll_transmit(now).map(|t| Segment::from_repr(&t.segment)),
                        None => None,
                    },
                };
                let Some(segment) = segment else { break };
                let idx = match side {
                    Side::Client => 0,
                    Side::Server => 1,
                };
                let mut sent = Sent {
                    at: now,
                    from: side,
                    index: self.sent_count[idx],
                    segment,
                    action: Action::Deliver,
                };
                self.sent_count[idx] += 1;
                sent.action = (self.filter)(&sent);
                let copies = match sent.action {
                    Action::Drop => 0,
                    Action::Deliver | Action::Delay(_) => 1,
                    Action::Duplicate => 2,
                };
                let extra = match sent.action {
                    Action::Delay(d) => d,
                    Action::Deliver | Action::Drop | Action::Duplicate => Duration::ZERO,
                };
                for _ in 0..copies {
                    self.order += 1;
                    self.in_flight.push(InFlight {
                        deliver_at: now + self.delay + extra,
                        order: self.order,
                        to: side.other(),
                        segment: sent.segment.clone(),
                    });
                }
                self.log.push(sent);
            }
        }
    }

    fn deliver(&mut self, to: Side, segment: Segment) {
        let now = self.now;
        let result = match to {
            Side::Client => self.client.handle_segment(now, &segment.repr()),
            Side::Server => match self.server.as_mut() {
                Some(s) => s.handle_segment(now, &segment.repr()),
                None => {
                    if segment.has(TcpFlags::SYN) && !segment.has(TcpFlags::ACK) {
                        match TcpSocket::accept(
                            self.server_config.clone(),
                            server_addr(),
                            client_addr(),
                            &segment.repr(),
                            now,
                            SERVER_ISS,
                        ) {
                            Ok(s) => {
                                self.server = Some(s);
                                Ok(())
                            }
                            Err(e) => Err(e),
                        }
                    } else {
                        Ok(())
                    }
                }
            },
        };
        if let Err(e) = result {
            self.drops.push((to, e.to_string()));
        }
    }

    /// The next time something happens, if anything will.
    fn next_time(&self) -> Option<Instant> {
        let mut t = self.in_flight.iter().map(|f| f.deliver_at).min();
        for s in [Some(&self.client), self.server.as_ref()]
            .into_iter()
            .flatten()
        {
            if let Some(d) = s.poll_timeout() {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        }
        t
    }

    /// Runs to the next event time. Returns false when nothing is left to happen.
    pub fn step(&mut self) -> bool {
        self.run_apps();
        self.transmit_all();
        self.run_apps();
        self.transmit_all();
        let Some(t) = self.next_time() else {
            return false;
        };
        self.now = self.now.max(t);
        while let Some(i) = self
            .in_flight
            .iter()
            .enumerate()
            .filter(|(_, f)| f.deliver_at <= self.now)
            .min_by_key(|(_, f)| (f.deliver_at, f.order))
            .map(|(i, _)| i)
        {
            let f = self.in_flight.swap_remove(i);
            self.deliver(f.to, f.segment);
            // A real stack answers each packet as it is processed (one ACK each).
            self.transmit_all();
        }
        let now = self.now;
        if self.client.poll_timeout().is_some_and(|d| d <= now) {
            self.client.handle_timeout(now);
        }
        if let Some(s) = self.server.as_mut()
            && s.poll_timeout().is_some_and(|d| d <= now)
        {
            s.handle_timeout(now);
        }
        true
    }

    /// Steps until `done` holds or `limit` passes; returns whether `done` held.
    pub fn run_until(&mut self, limit: Instant, mut done: impl FnMut(&Pair) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            if self.now > limit || !self.step() {
                return done(self);
            }
        }
    }

    /// The client application sends `data`: runs until the server application has
    /// received as much (asserting that it does by `limit`) and checks it is `data`.
    pub fn client_sends_intact(&mut self, data: &[u8], limit: Instant) {
        self.client_app.outbox = data.to_vec();
        assert!(
            self.run_until(limit, |p| p.server_app.inbox.len() == data.len()),
            "the server received {} of {} bytes by {limit:?}",
            self.server_app.inbox.len(),
            data.len()
        );
        assert_eq!(self.server_app.inbox, data);
    }

    /// Steps until nothing is left to happen or `limit` passes.
    pub fn run_idle(&mut self, limit: Instant) {
        while self.now <= limit && self.step() {}
    }

    pub fn established(&self) -> bool {
        self.client.state() == TcpState::Established
            && self
                .server
                .as_ref()
                .is_some_and(|s| s.state() == TcpState::Established)
    }

    /// Runs the handshake to completion (panics if it does not complete within 10 s).
    pub fn handshake(&mut self) {
        let ok = self.run_until(Instant::from_secs(10), |p| p.established());
        assert!(ok, "handshake did not complete");
        // Let the final ACK and any events settle.
        self.run_apps();
    }

    pub fn events(&self, side: Side) -> Vec<TcpEvent> {
        let app = match side {
            Side::Client => &self.client_app,
            Side::Server => &self.server_app,
        };
        app.events.iter().map(|(_, e)| *e).collect()
    }
}

/// A default config with an explicit congestion controller.
pub fn config() -> TcpConfig {
    TcpConfig::default()
}

/// Deterministic test data.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}
