//! Connection-level tests over an in-memory network of TCP segments that cross the
//! real wire codec. `Pair` drives a client and a server connection the way the
//! endpoint does (4-tuple routing, MP_JOIN by token, subflow opening), with a virtual
//! clock, a one-way delay, seeded loss / duplication / reordering, and a filter hook
//! for middleboxes.

mod handshake;
mod join_loss;
mod multipath;
mod paths;
mod pm;
mod transfer;
mod window;

use core::net::{IpAddr, SocketAddr};
use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use super::{ConnAction, MptcpConfig, MptcpConnection, MptcpEvent, SynKind, classify_syn};
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::mptcp::MptcpOption;
use crate::wire::tcp::{TcpFlags, TcpPacket, TcpRepr};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Dir {
    ToServer,
    ToClient,
}

/// A segment on the wire: the emitted TCP bytes and its addresses.
#[derive(Clone, Debug)]
pub struct Wire {
    pub dir: Dir,
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub bytes: Vec<u8>,
}

impl Wire {
    pub fn repr(&self) -> TcpRepr<'_> {
        let packet = TcpPacket::new_checked(&self.bytes[..]).expect("emitted bytes parse");
        TcpRepr::parse(&packet, self.src.ip(), self.dst.ip(), true).expect("valid segment")
    }

    pub fn mptcp(&self) -> Vec<MptcpOption<'_>> {
        self.repr().options.mptcp.to_vec()
    }

    pub fn flags(&self) -> TcpFlags {
        self.repr().flags
    }

    pub fn payload_len(&self) -> usize {
        self.repr().payload.len()
    }
}

/// What a filter does with a segment.
pub enum Verdict {
    Pass,
    Drop,
    /// Replace the segment's bytes (a middlebox rewrote it).
    Rewrite(Vec<u8>),
}

pub type Filter = Box<dyn FnMut(&Wire) -> Verdict>;

/// A middlebox's rewrite of `w` into `repr`: re-emitted between the same addresses,
/// checksum fixed.
pub fn rewrite(w: &Wire, repr: &TcpRepr<'_>) -> Verdict {
    Verdict::Rewrite(Pair::emit(repr, w.src, w.dst))
}

/// A middlebox that edits MPTCP options: `edit` sees each option of `w` and says
/// whether it changed it. A segment with a changed option is rewritten; others pass.
pub fn edit_mptcp_options(w: &Wire, mut edit: impl FnMut(&mut MptcpOption) -> bool) -> Verdict {
    let mut repr = w.repr();
    let mut changed = false;
    for o in repr.options.mptcp.iter_mut() {
        changed |= edit(o);
    }
    if !changed {
        return Verdict::Pass;
    }
    rewrite(w, &repr)
}

/// Decides when a segment sent at the given time arrives (`None`: dropped), in place
/// of the pair's fixed delay, loss, duplication and reordering: a network of links
/// with rates and queues (see `multipath.rs`).
pub type Shaper = Box<dyn FnMut(&Wire, Instant) -> Option<Instant>>;

pub struct Pair {
    pub now: Instant,
    pub client: MptcpConnection,
    pub server: Option<MptcpConnection>,
    pub server_config: MptcpConfig,
    pub delay: Duration,
    pub loss: f64,
    pub dup: f64,
    pub reorder: f64,
    pub net_rng: StdRng,
    pub rng: StdRng,
    pub in_flight: BTreeMap<(Instant, u64), Wire>,
    pub seqno: u64,
    pub log: Vec<Wire>,
    pub filter: Option<Filter>,
    pub shaper: Option<Shaper>,
    pub client_events: Vec<MptcpEvent>,
    pub server_events: Vec<MptcpEvent>,
    pub next_port: u16,
    /// Joins the client opened: (when, local, remote).
    pub opened: Vec<(Instant, SocketAddr, SocketAddr)>,
    /// The client's events with the instant they were polled.
    pub client_log: Vec<(Instant, MptcpEvent)>,
    /// RSTs the "endpoint" sent for refused joins.
    pub refused: Vec<Wire>,
}

pub fn client_addr() -> SocketAddr {
    "10.0.0.1:40000".parse().expect("address")
}

pub fn server_addr() -> SocketAddr {
    "10.9.0.1:80".parse().expect("address")
}

pub fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

pub fn small_config() -> MptcpConfig {
    let mut c = MptcpConfig::default();
    c.tcp.initial_rto = Duration::from_millis(300);
    c.send_buffer = 64 * 1024;
    c.recv_buffer = 64 * 1024;
    c
}

impl Pair {
    pub fn new(client_config: MptcpConfig, server_config: MptcpConfig, extra: &[IpAddr]) -> Pair {
        Pair::with_seed(client_config, server_config, extra, 1)
    }

    pub fn with_seed(
        client_config: MptcpConfig,
        server_config: MptcpConfig,
        extra: &[IpAddr],
        seed: u64,
    ) -> Pair {
        let mut rng = StdRng::seed_from_u64(seed);
        let now = Instant::from_millis(1);
        let client = MptcpConnection::connect(
            client_config,
            now,
            client_addr(),
            server_addr(),
            extra,
            SeqNum(1000),
            &mut rng,
            |_| false,
        )
        .expect("a key");
        Pair {
            now,
            client,
            server: None,
            server_config,
            delay: Duration::from_millis(10),
            loss: 0.0,
            dup: 0.0,
            reorder: 0.0,
            net_rng: StdRng::seed_from_u64(seed ^ 0x5eed),
            rng,
            in_flight: BTreeMap::new(),
            seqno: 0,
            log: Vec::new(),
            filter: None,
            shaper: None,
            client_events: Vec::new(),
            server_events: Vec::new(),
            next_port: 50000,
            opened: Vec::new(),
            client_log: Vec::new(),
            refused: Vec::new(),
        }
    }

    pub fn server(&mut self) -> &mut MptcpConnection {
        self.server.as_mut().expect("the server connection exists")
    }

    fn put(&mut self, wire: Wire) {
        self.log.push(wire.clone());
        let mut wire = wire;
        if let Some(filter) = self.filter.as_mut() {
            match filter(&wire) {
                Verdict::Pass => {}
                Verdict::Drop => return,
                Verdict::Rewrite(bytes) => wire.bytes = bytes,
            }
        }
        if let Some(shaper) = self.shaper.as_mut() {
            if let Some(at) = shaper(&wire, self.now) {
                self.seqno += 1;
                self.in_flight.insert((at.max(self.now), self.seqno), wire);
            }
            return;
        }
        if self.loss > 0.0 && self.net_rng.random_bool(self.loss) {
            return;
        }
        let copies = if self.dup > 0.0 && self.net_rng.random_bool(self.dup) {
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut at = self.now + self.delay;
            if self.reorder > 0.0 && self.net_rng.random_bool(self.reorder) {
                at += Duration::from_millis(self.net_rng.random_range(1..20));
            }
            self.seqno += 1;
            self.in_flight.insert((at, self.seqno), wire.clone());
        }
    }

    /// `seg` as sent from `src` to `dst`, checksum included.
    pub fn emit(seg: &TcpRepr<'_>, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
        let mut buf = vec![0u8; seg.buffer_len()];
        seg.emit(
            &mut TcpPacket::new_unchecked(&mut buf[..]),
            src.ip(),
            dst.ip(),
            true,
        )
        .expect("segments fit");
        buf
    }

    /// Moves every queued output onto the wire and handles the connections' actions.
    pub fn flush(&mut self) {
        loop {
            let mut moved = false;
            let mut out = Vec::new();
            while let Some(t) = self.client.poll_transmit(self.now) {
                out.push(Wire {
                    dir: Dir::ToServer,
                    src: t.local,
                    dst: t.remote,
                    bytes: Pair::emit(&t.segment, t.local, t.remote),
                });
            }
            moved |= !out.is_empty();
            for w in out {
                self.put(w);
            }
            if let Some(server) = self.server.as_mut() {
                let mut out = Vec::new();
                while let Some(t) = server.poll_transmit(self.now) {
                    out.push(Wire {
                        dir: Dir::ToClient,
                        src: t.local,
                        dst: t.remote,
                        bytes: Pair::emit(&t.segment, t.local, t.remote),
                    });
                }
                moved |= !out.is_empty();
                for w in out {
                    self.put(w);
                }
            }
            while let Some(action) = self.client.poll_action() {
                if let ConnAction::OpenSubflow {
                    local,
                    remote,
                    local_id,
                    remote_id,
                    backup,
                } = action
                {
                    self.next_port += 1;
                    let local = SocketAddr::new(local, self.next_port);
                    let iss = SeqNum(u32::from(self.next_port).wrapping_mul(7919));
                    self.opened.push((self.now, local, remote));
                    self.client.open_subflow(
                        self.now,
                        local,
                        remote,
                        local_id,
                        remote_id,
                        backup,
                        iss,
                        &mut self.rng,
                    );
                    moved = true;
                }
            }
            if let Some(server) = self.server.as_mut() {
                while let Some(action) = server.poll_action() {
                    if let ConnAction::OpenSubflow {
                        local,
                        remote,
                        local_id,
                        remote_id,
                        backup,
                    } = action
                    {
                        self.next_port += 1;
                        let local = SocketAddr::new(local, self.next_port);
                        let iss = SeqNum(u32::from(self.next_port).wrapping_mul(6_133));
                        server.open_subflow(
                            self.now,
                            local,
                            remote,
                            local_id,
                            remote_id,
                            backup,
                            iss,
                            &mut self.rng,
                        );
                        moved = true;
                    }
                }
            }
            while let Some(e) = self.client.poll_event() {
                self.client_log.push((self.now, e));
                self.client_events.push(e);
            }
            if let Some(server) = self.server.as_mut() {
                while let Some(e) = server.poll_event() {
                    self.server_events.push(e);
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn deliver(&mut self, wire: Wire) {
        let seg = wire.repr();
        match wire.dir {
            Dir::ToClient => {
                if let Some(id) = self.client.subflow_for(wire.dst, wire.src) {
                    self.client.handle_segment(self.now, id, &seg);
                } else if seg.flags.syn()
                    && !seg.flags.ack()
                    && matches!(classify_syn(&seg), SynKind::Join { .. })
                {
                    // A join opened by the server (RFC 8684 §3.2: either host may).
                    let iss = SeqNum(u32::from(wire.src.port()).wrapping_mul(7_727));
                    let _ = self.client.accept_join(
                        self.now,
                        wire.dst,
                        wire.src,
                        &seg,
                        iss,
                        &mut self.rng,
                    );
                }
            }
            Dir::ToServer => {
                if self.server.is_none() {
                    if seg.flags.syn() && !seg.flags.ack() {
                        let server = MptcpConnection::accept(
                            self.server_config.clone(),
                            self.now,
                            wire.dst,
                            wire.src,
                            &seg,
                            SeqNum(5_000_000),
                            &mut self.rng,
                            |_| false,
                        )
                        .expect("an MP_CAPABLE SYN");
                        self.server = Some(server);
                    }
                    return;
                }
                let server = self.server.as_mut().expect("checked above");
                if let Some(id) = server.subflow_for(wire.dst, wire.src) {
                    server.handle_segment(self.now, id, &seg);
                } else if seg.flags.syn() && !seg.flags.ack() {
                    match classify_syn(&seg) {
                        SynKind::Join { .. } => {
                            let iss = SeqNum(u32::from(wire.src.port()).wrapping_mul(104_729));
                            if let Err(refusal) = server.accept_join(
                                self.now,
                                wire.dst,
                                wire.src,
                                &seg,
                                iss,
                                &mut self.rng,
                            ) {
                                let mut rst = crate::tcp::reset_for(&seg).expect("not a RST");
                                rst.options.mptcp.push(MptcpOption::MpTcpRst(
                                    crate::wire::mptcp::MpTcpRst {
                                        flags: crate::wire::mptcp::TcpRstFlags::default(),
                                        reason: refusal.reason(),
                                    },
                                ));
                                let bytes = Pair::emit(&rst, wire.dst, wire.src);
                                let w = Wire {
                                    dir: Dir::ToClient,
                                    src: wire.dst,
                                    dst: wire.src,
                                    bytes,
                                };
                                self.refused.push(w.clone());
                                self.put(w);
                            }
                        }
                        SynKind::Plain | SynKind::Capable { .. } => {}
                    }
                }
            }
        }
    }

    /// Runs the network and the timers until `until`.
    pub fn run_until(&mut self, until: Instant) {
        loop {
            self.flush();
            let next_wire = self.in_flight.keys().next().map(|k| k.0);
            let next_timer = [
                self.client.poll_timeout(),
                self.server.as_ref().and_then(|s| s.poll_timeout()),
            ]
            .into_iter()
            .flatten()
            .min();
            let next = match (next_wire, next_timer) {
                (Some(a), Some(b)) => a.min(b),
                (Some(a), None) | (None, Some(a)) => a,
                (None, None) => break,
            };
            if next > until {
                break;
            }
            self.now = self.now.max(next);
            while let Some((&key, _)) = self.in_flight.iter().next() {
                if key.0 > self.now {
                    break;
                }
                let wire = self.in_flight.remove(&key).expect("present");
                self.deliver(wire);
            }
            if self.client.poll_timeout().is_some_and(|t| t <= self.now) {
                self.client.handle_timeout(self.now);
            }
            if let Some(server) = self.server.as_mut()
                && server.poll_timeout().is_some_and(|t| t <= self.now)
            {
                server.handle_timeout(self.now);
            }
        }
        self.now = self.now.max(until);
    }

    pub fn run_for(&mut self, d: Duration) {
        let until = self.now + d;
        self.run_until(until);
    }

    /// Completes the handshake (both sides Connected).
    pub fn connect(&mut self) {
        self.run_for(Duration::from_millis(100));
        assert!(
            self.client_events.contains(&MptcpEvent::Connected),
            "{:?}",
            self.client_events
        );
        assert!(
            self.server_events.contains(&MptcpEvent::Connected),
            "{:?}",
            self.server_events
        );
    }

    /// Writes `data` from `client` (or the server) and reads on the other side until
    /// all of it arrived or `limit` of virtual time passed. Returns what was read.
    pub fn transfer(&mut self, from_client: bool, data: &[u8], limit: Duration) -> Vec<u8> {
        let deadline = self.now + limit;
        let mut written = 0;
        let mut got = Vec::new();
        let mut buf = vec![0u8; 16 * 1024];
        while self.now < deadline {
            let (tx, rx) = if from_client {
                (&mut self.client, self.server.as_mut())
            } else {
                let server = self.server.as_mut().expect("server");
                (server, Some(&mut self.client))
            };
            if written < data.len() {
                written += tx.write(&data[written..]);
            }
            if let Some(rx) = rx {
                loop {
                    let n = rx.read(&mut buf);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                }
            }
            if got.len() >= data.len() {
                break;
            }
            let step = self.now + Duration::from_millis(5);
            self.run_until(step);
        }
        got
    }

    /// Segments sent in direction `dir`, in order.
    pub fn sent(&self, dir: Dir) -> Vec<&Wire> {
        self.log.iter().filter(|w| w.dir == dir).collect()
    }
}

/// A deterministic payload of `len` bytes.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

/// Asserts two byte strings are equal, reporting lengths and the first difference
/// instead of the whole contents.
#[track_caller]
pub fn assert_bytes(got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "bytes differ: got {} bytes, want {}, first difference at {:?}",
            got.len(),
            want.len(),
            first
        );
    }
}

impl Pair {
    /// One line per segment on the wire, for failing tests.
    pub fn dump(&self) -> String {
        let mut out = String::new();
        for w in &self.log {
            let r = w.repr();
            let opts: Vec<String> = r.options.mptcp.iter().map(|o| format!("{o:?}")).collect();
            out.push_str(&format!(
                "{:?} {}->{} seq={} ack={} {:?} win={} len={} {}\n",
                w.dir,
                w.src,
                w.dst,
                r.seq.0,
                r.ack.0,
                r.flags,
                r.window,
                r.payload.len(),
                opts.join(" ")
            ));
        }
        out
    }
}
