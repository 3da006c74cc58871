//! The endpoint: the layer between IP packets and connections (DESIGN.md "Endpoint").
//!
//! It owns the connection table (a generational slab named by [`ConnHandle`], plus a
//! 4-tuple index), the listeners, ephemeral ports (RFC 6056), ISNs (RFC 6528), the
//! RSTs answering segments for nothing (RFC 9293 §3.10.7.1), and the fair interleaving
//! of every connection's output. It must not look inside a connection beyond its
//! public API: sequence numbers, windows and options stay in [`crate::tcp`].
//!
//! Sans-IO like the rest of the crate: feed packets to [`Endpoint::handle_packet`],
//! drain [`Endpoint::poll_transmit`] until `None`, wake at [`Endpoint::poll_timeout`]
//! and call [`Endpoint::handle_timeout`], and read [`Endpoint::poll_event`].
//!
//! Demultiplexing goes through [`Endpoint::handle_packet`] in one place, `route`, which
//! answers "connection, listener, or nothing". MPTCP extends it there: an MP_JOIN SYN
//! routes by token to an existing connection, an MP_CAPABLE SYN to a listener creates
//! an MPTCP connection, and SYN cookies answer a listener whose backlog is full.
//!
//! Determinism: the table and the listener index are `BTreeMap`s, timers a `BTreeSet`
//! of (deadline, handle), output a FIFO of connections, and slab slots are reused
//! last-freed-first, so a given sequence of calls always yields the same packets,
//! handles and events. No per-packet work scans the table.
//!
//! ```
//! use mptcp_proto::endpoint::{Endpoint, EndpointConfig, Event};
//! use mptcp_proto::tcp::TcpEvent;
//! use mptcp_proto::time::{Duration, Instant};
//!
//! let mut client = Endpoint::new(EndpointConfig::default(), [1; 32]);
//! let mut server = Endpoint::new(EndpointConfig::default(), [2; 32]);
//! let listener = server.listen("10.0.0.2:80".parse()?)?;
//! let now = Instant::from_millis(1);
//! let conn = client.connect(now, "10.0.0.1:0".parse()?, "10.0.0.2:80".parse()?)?;
//! client.write(conn, b"hello")?;
//!
//! // A lossless wire with no delay: move packets until both sides are quiet.
//! let mut buf = [0u8; 1600];
//! loop {
//!     let mut moved = false;
//!     while let Some(len) = client.poll_transmit(now, &mut buf) {
//!         let _ = server.handle_packet(now, &buf[..len]);
//!         moved = true;
//!     }
//!     while let Some(len) = server.poll_transmit(now, &mut buf) {
//!         let _ = client.handle_packet(now, &buf[..len]);
//!         moved = true;
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//! assert_eq!(server.poll_event(), Some(Event::Incoming(listener)));
//! let accepted = server.accept(listener).expect("handshake completed");
//! assert_eq!(server.poll_event(), Some(Event::Connection(accepted, TcpEvent::Connected)));
//! let mut got = [0u8; 16];
//! let n = server.read(accepted, &mut got)?;
//! assert_eq!(&got[..n], b"hello");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod config;
mod conn;
mod cookie;
mod demux;
pub mod fuzzing;
mod mptcp;
mod ports;
mod rng;
mod shard;
mod slab;
mod stats;

use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::collections::{BTreeMap, BTreeSet, VecDeque};

pub use config::{EndpointConfig, SynCookies};
pub use cookie::{COUNTER_PERIOD as SYN_COOKIE_PERIOD, MSS_TABLE as SYN_COOKIE_MSS_TABLE};
pub use shard::{Shard, SteerKey};
pub use stats::{DropReason, EndpointStats};

use crate::crypto::Token;
use crate::mptcp::MptcpEvent;
use crate::tcp::{IsnGenerator, TcpEvent, TcpSocket, TcpState, TcpStats};
use crate::time::Instant;
use crate::wire::tcp::{IP_PROTOCOL_TCP, TcpRepr};
use crate::wire::{IpRepr, IpTcpRepr, Ipv4Repr, Ipv6Repr, PacketError, TcpChecksum};

use conn::{Conn, ConnEvent};
use cookie::CookieJar;
use ports::PortAllocator;
use rng::KeyRng;
use slab::{Key, Slab};

/// Names one connection of one endpoint. Stale once the connection is removed: every
/// call with it then fails with [`EndpointError::UnknownConnection`], even after the
/// slot is reused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ConnHandle(Key);

/// Names one listener of one endpoint; stale once the listener is closed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ListenerHandle(Key);

impl fmt::Display for ConnHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "conn {}.{}", self.0.index, self.0.generation)
    }
}

impl fmt::Display for ListenerHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "listener {}.{}", self.0.index, self.0.generation)
    }
}

/// A packet [`Endpoint::poll_transmit_gso`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmitted {
    /// Bytes written at the start of the buffer.
    pub len: usize,
    /// A TSO super-segment: the device cuts its TCP payload into pieces of this many
    /// bytes, each with a copy of the IP and TCP headers (options included).
    pub gso_size: Option<u16>,
}

impl Transmitted {
    fn single(len: usize) -> Transmitted {
        Transmitted {
            len,
            gso_size: None,
        }
    }
}

/// A connection's addresses as seen from this endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FourTuple {
    pub local: SocketAddr,
    pub remote: SocketAddr,
}

/// What the endpoint reports to its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Event {
    /// A connection to this listener completed its handshake: [`Endpoint::accept`]
    /// returns it. One event per ready connection.
    Incoming(ListenerHandle),
    /// An event of a connection the user holds (opened with `connect` or taken with
    /// `accept`). Events of a connection not yet accepted are held and delivered
    /// after `accept`, starting with [`TcpEvent::Connected`]. Readable and Writable
    /// are reported once until polled.
    Connection(ConnHandle, TcpEvent),
}

/// Why an endpoint call failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    #[error("local address {0} is already in use")]
    AddrInUse(SocketAddr),
    #[error("connection {local} -> {remote} already exists")]
    TupleInUse {
        local: SocketAddr,
        remote: SocketAddr,
    },
    #[error("no free ephemeral port on {0} towards the remote")]
    NoPortAvailable(IpAddr),
    #[error("local {local} and remote {remote} are of different address families")]
    AddressFamilyMismatch {
        local: SocketAddr,
        remote: SocketAddr,
    },
    #[error("local address {0} is not a unicast address")]
    InvalidLocal(SocketAddr),
    #[error("remote address {0} is not a unicast address with a non-zero port")]
    InvalidRemote(SocketAddr),
    #[error("listening port is 0 in {0}")]
    ListenPortZero(SocketAddr),
    #[error("connection table full ({limit} connections)")]
    TooManyConnections { limit: usize },
    #[error("{0} does not name a live connection")]
    UnknownConnection(ConnHandle),
    #[error("{0} does not name a live listener")]
    UnknownListener(ListenerHandle),
}

/// One connection's entry in the table.
#[derive(Debug)]
struct ConnEntry {
    conn: Conn,
    /// The initial 4-tuple (the only one for plain TCP).
    tuple: FourTuple,
    /// MPTCP: the other subflows' 4-tuples in the index.
    subflow_tuples: Vec<FourTuple>,
    /// MPTCP: our token, in the token table.
    token: Option<Token>,
    /// MPTCP events of a connection not yet accepted, delivered at `accept`.
    held_mptcp: Vec<MptcpEvent>,
    /// MPTCP: the final TCP-level Closed was reported.
    closed_reported: bool,
    /// Present in the 4-tuple index (until the connection reaches CLOSED).
    registered: bool,
    /// The listener that created it, until `accept` hands it to the user.
    listener: Option<Key>,
    /// Events of a connection not yet accepted, delivered at `accept`.
    held_events: Vec<TcpEvent>,
    /// In the transmit FIFO: it may have something to send.
    in_transmit_queue: bool,
    /// The deadline registered in the timer set.
    timer: Option<Instant>,
    /// Changed since `timer` was computed: listed in `Endpoint::stale_timers`.
    timer_stale: bool,
    /// A Readable / Writable event for it sits in the event queue.
    readable_queued: bool,
    writable_queued: bool,
    /// `abort` was called: unread data is discarded with the connection.
    discarded: bool,
}

impl ConnEntry {
    /// When its connection's next timer fires; none once it is closed.
    fn deadline(&self) -> Option<Instant> {
        if self.conn.is_closed() {
            None
        } else {
            self.conn.poll_timeout()
        }
    }
}

#[derive(Debug)]
struct Listener {
    local: SocketAddr,
    /// Connections created by this listener and not yet accepted (the backlog).
    children: BTreeSet<Key>,
    /// Those of them that completed the handshake, in completion order.
    ready: VecDeque<Key>,
    /// When it last answered a SYN with a cookie.
    cookie_sent_at: Option<Instant>,
}

/// A packet built by the endpoint itself (a RST, or a cookie SYN/ACK), waiting for
/// `poll_transmit`.
#[derive(Debug)]
struct PendingReset {
    ip: IpRepr,
    tcp: TcpRepr<'static>,
}

/// How many changed connections may wait before their deadlines are recomputed:
/// it bounds what [`Endpoint::poll_timeout`] looks at.
const STALE_TIMER_LIMIT: usize = 64;

/// The connection table, listeners and demultiplexer. See the module documentation.
#[derive(Debug)]
pub struct Endpoint {
    config: EndpointConfig,
    isn: IsnGenerator,
    ports: PortAllocator,
    conns: Slab<ConnEntry>,
    by_tuple: BTreeMap<FourTuple, Key>,
    listeners: Slab<Listener>,
    listener_by_addr: BTreeMap<SocketAddr, Key>,
    /// Connections that may have output, served one segment per turn (round robin).
    transmit_queue: VecDeque<Key>,
    resets: VecDeque<PendingReset>,
    /// Cookie SYN/ACKs: built for a SYN, kept only until sent.
    syn_acks: VecDeque<PendingReset>,
    /// SYN cookies (RFC 4987 §3.6).
    cookies: CookieJar,
    timers: BTreeSet<(Instant, Key)>,
    /// Connections whose deadline in `timers` may be out of date. Recomputing a
    /// deadline walks every subflow's timers, and a connection changes with every
    /// packet, so it is done when a deadline is asked for, once per batch rather
    /// than once per packet.
    stale_timers: Vec<Key>,
    /// Reused by `handle_timeout` to avoid an allocation per call.
    due: Vec<Key>,
    events: VecDeque<Event>,
    /// MPTCP connections by their local token (RFC 8684 §3.2: MP_JOIN names one).
    tokens: BTreeMap<Token, Key>,
    /// Keys and nonces (RFC 8684 §3.1, §3.2).
    rng: KeyRng,
    mptcp_events: VecDeque<(ConnHandle, MptcpEvent)>,
    /// The latest time the caller gave us (for work done outside a timed call).
    now: Instant,
    stats: EndpointStats,
}

impl Endpoint {
    /// A new endpoint. `secret` keys the ISN generator (RFC 6528 §3 wants it random
    /// and at least 128 bits: draw it from the OS in the runtime, from the seed in the
    /// simulator) and, under its own label, the ephemeral port choice (RFC 6056).
    pub fn new(config: EndpointConfig, secret: [u8; 32]) -> Self {
        let ports = PortAllocator::new(
            &secret,
            config.ephemeral_port_min,
            config.ephemeral_port_max,
        );
        Endpoint {
            config,
            isn: IsnGenerator::new(secret),
            ports,
            conns: Slab::default(),
            by_tuple: BTreeMap::new(),
            listeners: Slab::default(),
            listener_by_addr: BTreeMap::new(),
            transmit_queue: VecDeque::new(),
            resets: VecDeque::new(),
            syn_acks: VecDeque::new(),
            cookies: CookieJar::new(&secret),
            timers: BTreeSet::new(),
            stale_timers: Vec::new(),
            due: Vec::new(),
            events: VecDeque::new(),
            tokens: BTreeMap::new(),
            rng: KeyRng::new(secret),
            mptcp_events: VecDeque::new(),
            now: Instant::ZERO,
            stats: EndpointStats::default(),
        }
    }

    pub fn config(&self) -> &EndpointConfig {
        &self.config
    }

    pub fn stats(&self) -> &EndpointStats {
        &self.stats
    }

    /// Connections in the table, in any state (not yet accepted ones included).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Every connection in the table (accepted or not), in table order: for monitoring
    /// and for the fuzz harness's memory checks.
    pub fn connection_handles(&self) -> impl Iterator<Item = ConnHandle> + '_ {
        self.conns.keys().map(ConnHandle)
    }

    pub fn listener_count(&self) -> usize {
        self.listeners.len()
    }

    // ---- listeners ----

    /// Accepts connections to `local`. An unspecified address (`0.0.0.0`, `::`)
    /// listens on every address of its family; a listener on a specific address takes
    /// precedence over it for that address.
    pub fn listen(&mut self, local: SocketAddr) -> Result<ListenerHandle, EndpointError> {
        let local = normalize(local);
        if local.port() == 0 {
            return Err(EndpointError::ListenPortZero(local));
        }
        if !local.ip().is_unspecified() && !is_unicast(local.ip()) {
            return Err(EndpointError::InvalidLocal(local));
        }
        if self.listener_by_addr.contains_key(&local) {
            return Err(EndpointError::AddrInUse(local));
        }
        let listener = Listener {
            local,
            children: BTreeSet::new(),
            ready: VecDeque::new(),
            cookie_sent_at: None,
        };
        let key = self
            .listeners
            .insert(listener)
            .map_err(|_| EndpointError::AddrInUse(local))?;
        self.listener_by_addr.insert(local, key);
        tracing::debug!(%local, "listening");
        Ok(ListenerHandle(key))
    }

    /// Stops listening. Connections it created and nobody accepted are aborted (RST).
    pub fn close_listener(&mut self, listener: ListenerHandle) -> Result<(), EndpointError> {
        let l = self
            .listeners
            .remove(listener.0)
            .ok_or(EndpointError::UnknownListener(listener))?;
        self.listener_by_addr.remove(&l.local);
        for key in l.children {
            if let Some(entry) = self.conns.get_mut(key) {
                entry.listener = None;
                entry.discarded = true;
                entry.conn.abort();
                self.touched(key);
            }
        }
        Ok(())
    }

    /// The local address of a listener.
    pub fn listener_addr(&self, listener: ListenerHandle) -> Result<SocketAddr, EndpointError> {
        self.listeners
            .get(listener.0)
            .map(|l| l.local)
            .ok_or(EndpointError::UnknownListener(listener))
    }

    /// Takes the next connection that completed its handshake on `listener`, if any.
    /// Its held events follow in [`Endpoint::poll_event`].
    pub fn accept(&mut self, listener: ListenerHandle) -> Option<ConnHandle> {
        let l = self.listeners.get_mut(listener.0)?;
        let key = l.ready.pop_front()?;
        l.children.remove(&key);
        let entry = self
            .conns
            .get_mut(key)
            .expect("a ready child is in the table: removal takes it off the ready queue");
        entry.listener = None;
        let held_mptcp = core::mem::take(&mut entry.held_mptcp);
        for event in core::mem::take(&mut entry.held_events) {
            self.push_conn_event(key, event);
        }
        for event in held_mptcp {
            self.mptcp_events.push_back((ConnHandle(key), event));
        }
        // Removal waited for the user while the connection was held; re-check.
        self.settle(key);
        Some(ConnHandle(key))
    }

    // ---- connections ----

    /// Opens a connection from `local` to `remote`; the SYN goes out with the next
    /// `poll_transmit`. Port 0 in `local` picks an ephemeral port (RFC 6056
    /// Algorithm 3, deterministic for the endpoint's secret). The local IP address must
    /// be a specific unicast address: the endpoint has no routing table.
    pub fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<ConnHandle, EndpointError> {
        self.now = self.now.max(now);
        let (local, remote) = (normalize(local), normalize(remote));
        if local.is_ipv4() != remote.is_ipv4() {
            return Err(EndpointError::AddressFamilyMismatch { local, remote });
        }
        if !is_unicast(local.ip()) {
            return Err(EndpointError::InvalidLocal(local));
        }
        if !is_unicast(remote.ip()) || remote.port() == 0 {
            return Err(EndpointError::InvalidRemote(remote));
        }
        if self.conns.len() >= self.config.max_connections {
            return Err(EndpointError::TooManyConnections {
                limit: self.config.max_connections,
            });
        }
        let local = self.resolve_local(local, remote)?;
        let tuple = FourTuple { local, remote };
        if self.by_tuple.contains_key(&tuple) {
            return Err(EndpointError::TupleInUse { local, remote });
        }
        let iss = self.isn.isn(local, remote, now);
        let socket = TcpSocket::connect(self.config.tcp.clone(), local, remote, now, iss);
        let key = self.insert(Conn::Tcp(socket), tuple, None).ok_or({
            EndpointError::TooManyConnections {
                limit: self.config.max_connections,
            }
        })?;
        self.stats.connections_opened += 1;
        tracing::debug!(%local, %remote, handle = %ConnHandle(key), "connect");
        Ok(ConnHandle(key))
    }

    /// Queues bytes for sending; returns how many fit in the send buffer (0 after
    /// `close` or once the connection cannot send).
    pub fn write(&mut self, conn: ConnHandle, data: &[u8]) -> Result<usize, EndpointError> {
        let entry = self.entry_mut(conn)?;
        let n = entry.conn.write(data);
        if n > 0 {
            self.touched(conn.0);
        }
        Ok(n)
    }

    /// Reads in-order received bytes. Reading may open the receive window (a window
    /// update then goes out), and a closed connection is removed once read dry.
    pub fn read(&mut self, conn: ConnHandle, buf: &mut [u8]) -> Result<usize, EndpointError> {
        let entry = self.entry_mut(conn)?;
        let n = entry.conn.read(buf);
        if entry.conn.is_closed() {
            self.settle(conn.0);
        } else if n > 0 {
            self.touched(conn.0);
        }
        Ok(n)
    }

    /// Orderly close (RFC 9293 §3.10.4): a FIN follows the data already written. The
    /// connection stays readable until the peer's FIN.
    pub fn close(&mut self, conn: ConnHandle) -> Result<(), EndpointError> {
        self.entry_mut(conn)?.conn.close();
        self.touched(conn.0);
        Ok(())
    }

    /// Abort (RFC 9293 §3.10.5): a RST goes out (in synchronized states), unread and
    /// unsent data is discarded, and the handle goes stale once the RST is sent.
    pub fn abort(&mut self, conn: ConnHandle) -> Result<(), EndpointError> {
        let entry = self.entry_mut(conn)?;
        entry.discarded = true;
        entry.conn.abort();
        self.touched(conn.0);
        Ok(())
    }

    /// Turns pacing on (with these settings) or off for one connection: a plain TCP
    /// one, or every subflow of an MPTCP one, present and future
    /// ([`crate::tcp::TcpConfig::pacing`]).
    pub fn set_pacing(
        &mut self,
        conn: ConnHandle,
        pacing: Option<crate::tcp::Pacing>,
    ) -> Result<(), EndpointError> {
        match &mut self.entry_mut(conn)?.conn {
            Conn::Tcp(s) => s.connection_mut().set_pacing(pacing),
            Conn::Mptcp(c) => c.set_pacing(pacing),
        }
        self.touched(conn.0);
        Ok(())
    }

    pub fn state(&self, conn: ConnHandle) -> Result<TcpState, EndpointError> {
        Ok(self.entry(conn)?.conn.state())
    }

    /// The connection's TCP counters (for MPTCP, its first subflow's; see
    /// [`Endpoint::mptcp_stats`]).
    pub fn conn_stats(&self, conn: ConnHandle) -> Result<TcpStats, EndpointError> {
        Ok(self.entry(conn)?.conn.tcp_stats())
    }

    pub fn addresses(&self, conn: ConnHandle) -> Result<FourTuple, EndpointError> {
        Ok(self.entry(conn)?.tuple)
    }

    /// Bytes ready to read.
    pub fn readable(&self, conn: ConnHandle) -> Result<usize, EndpointError> {
        Ok(self.entry(conn)?.conn.readable())
    }

    /// Free space in the send buffer.
    pub fn send_capacity(&self, conn: ConnHandle) -> Result<usize, EndpointError> {
        Ok(self.entry(conn)?.conn.send_capacity())
    }

    /// The plain TCP connection itself, for inspection (an MPTCP connection is not
    /// one: [`EndpointError::UnknownConnection`]; see [`Endpoint::mptcp`]).
    pub fn socket(&self, conn: ConnHandle) -> Result<&TcpSocket, EndpointError> {
        match &self.entry(conn)?.conn {
            Conn::Tcp(s) => Ok(s),
            Conn::Mptcp(_) => Err(EndpointError::UnknownConnection(conn)),
        }
    }

    // ---- driving ----

    /// Writes the next IP packet into `buf` and returns its length, or `None` when no
    /// connection has anything to send. Connections take turns, one packet each, so a
    /// bulk transfer does not starve the others. `buf` should hold the largest packet
    /// (MSS + 120 bytes of headers, or with [`TcpConfig::max_segment_payload`] that
    /// payload + 120); a packet that does not fit is dropped, counted under
    /// [`DropReason::TransmitBufferTooSmall`] and left to retransmission.
    ///
    /// [`TcpConfig::max_segment_payload`]: crate::tcp::TcpConfig::max_segment_payload
    pub fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        self.poll_transmit_gso(now, buf).map(|t| t.len)
    }

    /// [`Endpoint::poll_transmit`], also saying whether the packet is a TSO
    /// super-segment the device must cut (its `gso_size`). Packets carry partial TCP
    /// checksums when [`EndpointConfig::checksum_offload`] is set.
    pub fn poll_transmit_gso(&mut self, now: Instant, buf: &mut [u8]) -> Option<Transmitted> {
        self.now = self.now.max(now);
        let checksum = if self.config.checksum_offload {
            TcpChecksum::Partial
        } else {
            TcpChecksum::Full
        };
        while let Some(reset) = self.resets.pop_front() {
            let packet = IpTcpRepr {
                ip: reset.ip,
                tcp: reset.tcp,
            };
            if let Some(len) = self.emitted(packet.emit_with(buf, checksum)) {
                self.stats.resets_sent += 1;
                return Some(Transmitted::single(len));
            }
        }
        while let Some(syn_ack) = self.syn_acks.pop_front() {
            let packet = IpTcpRepr {
                ip: syn_ack.ip,
                tcp: syn_ack.tcp,
            };
            if let Some(len) = self.emitted(packet.emit_with(buf, checksum)) {
                return Some(Transmitted::single(len));
            }
        }
        while let Some(key) = self.transmit_queue.pop_front() {
            let hop_limit = self.config.hop_limit;
            let Some(entry) = self.conns.get_mut(key) else {
                debug_assert!(false, "a queued connection is in the table");
                continue;
            };
            let tuple = entry.tuple;
            let result = entry
                .conn
                .poll_transmit(now, tuple.local, tuple.remote)
                .map(|(local, remote, segment, gso_size)| {
                    let packet = IpTcpRepr {
                        ip: ip_header(local.ip(), remote.ip(), hop_limit),
                        tcp: segment,
                    };
                    (packet.emit_with(buf, checksum), gso_size)
                });
            match result {
                Some((result, gso_size)) => {
                    // It may have more: back of the line, behind everyone else.
                    self.transmit_queue.push_back(key);
                    self.settle(key);
                    if let Some(len) = self.emitted(result) {
                        return Some(Transmitted { len, gso_size });
                    }
                }
                None => {
                    entry.in_transmit_queue = false;
                    self.settle(key);
                }
            }
        }
        None
    }

    /// When [`Endpoint::handle_timeout`] should next be called: the earliest deadline
    /// of any connection. Its cost does not grow with the number of connections: it
    /// looks at the earliest registered deadlines and at the connections changed since
    /// the last refresh (at most 64).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let changed = self
            .stale_timers
            .iter()
            .filter_map(|&key| self.conns.get(key)?.deadline())
            .min();
        // A stale connection's registered deadline is not its deadline any more.
        let registered = self
            .timers
            .iter()
            .find(|&&(_, key)| self.conns.get(key).is_none_or(|e| !e.timer_stale))
            .map(|&(deadline, _)| deadline);
        changed.into_iter().chain(registered).min()
    }

    /// Brings every changed connection's registered deadline up to date.
    fn refresh_timers(&mut self) {
        let mut stale = core::mem::take(&mut self.stale_timers);
        for &key in &stale {
            let Some(entry) = self.conns.get_mut(key) else {
                continue;
            };
            entry.timer_stale = false;
            let deadline = entry.deadline();
            if deadline != entry.timer {
                if let Some(old) = entry.timer {
                    self.timers.remove(&(old, key));
                }
                if let Some(new) = deadline {
                    self.timers.insert((new, key));
                }
                entry.timer = deadline;
            }
        }
        stale.clear();
        self.stale_timers = stale;
    }

    /// Runs every connection timer due at or before `now`, earliest first.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.refresh_timers();
        let mut due = core::mem::take(&mut self.due);
        while let Some(&(deadline, key)) = self.timers.first() {
            if deadline > now {
                break;
            }
            self.timers.pop_first();
            if let Some(entry) = self.conns.get_mut(key) {
                entry.timer = None;
                due.push(key);
            }
        }
        for &key in &due {
            if let Some(entry) = self.conns.get_mut(key) {
                entry.conn.handle_timeout(now);
                self.touched(key);
            }
        }
        due.clear();
        self.due = due;
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        let event = self.events.pop_front()?;
        if let Event::Connection(conn, ev) = event
            && let Some(entry) = self.conns.get_mut(conn.0)
        {
            match ev {
                TcpEvent::Readable => entry.readable_queued = false,
                TcpEvent::Writable => entry.writable_queued = false,
                TcpEvent::Connected
                | TcpEvent::PeerClosed
                | TcpEvent::Reset
                | TcpEvent::TimedOut
                | TcpEvent::Closed => {}
            }
        }
        Some(event)
    }

    // ---- internals ----

    /// `local` with an ephemeral port when its port is 0 (RFC 6056 Algorithm 3).
    fn resolve_local(
        &mut self,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<SocketAddr, EndpointError> {
        if local.port() != 0 {
            return Ok(local);
        }
        let (by_tuple, listeners) = (&self.by_tuple, &self.listener_by_addr);
        let shard = self.config.shard;
        let port = self
            .ports
            .pick(local.ip(), remote, |port| {
                let candidate = SocketAddr::new(local.ip(), port);
                // A port whose tuple another shard owns would steer the replies there.
                shard.is_some_and(|s| !s.owns_tuple(candidate, remote))
                    || by_tuple.contains_key(&FourTuple {
                        local: candidate,
                        remote,
                    })
                    || listeners.contains_key(&candidate)
                    || listeners.contains_key(&SocketAddr::new(unspecified(local.ip()), port))
            })
            .ok_or(EndpointError::NoPortAvailable(local.ip()))?;
        Ok(SocketAddr::new(local.ip(), port))
    }

    /// A token we may not take: another connection has it, or (sharded) it would
    /// steer MP_JOINs to another shard.
    pub(super) fn token_unavailable(&self, token: Token) -> bool {
        self.tokens.contains_key(&token) || self.config.shard.is_some_and(|s| !s.owns_token(token))
    }

    fn entry(&self, conn: ConnHandle) -> Result<&ConnEntry, EndpointError> {
        self.conns
            .get(conn.0)
            .filter(|e| e.listener.is_none())
            .ok_or(EndpointError::UnknownConnection(conn))
    }

    fn entry_mut(&mut self, conn: ConnHandle) -> Result<&mut ConnEntry, EndpointError> {
        self.conns
            .get_mut(conn.0)
            .filter(|e| e.listener.is_none())
            .ok_or(EndpointError::UnknownConnection(conn))
    }

    fn drop(&mut self, reason: DropReason) -> DropReason {
        self.stats.count_drop(reason);
        reason
    }

    /// Bookkeeping for an emission attempt.
    fn emitted(&mut self, result: Result<usize, PacketError>) -> Option<usize> {
        match result {
            Ok(len) => {
                self.stats.packets_out += 1;
                self.stats.bytes_out += len as u64;
                Some(len)
            }
            Err(err) => {
                tracing::warn!(%err, "outgoing packet dropped");
                self.drop(DropReason::TransmitBufferTooSmall);
                None
            }
        }
    }

    /// Adds a connection to the table, the index and the transmit queue.
    fn insert(&mut self, conn: Conn, tuple: FourTuple, listener: Option<Key>) -> Option<Key> {
        let token = match &conn {
            Conn::Tcp(_) => None,
            Conn::Mptcp(c) => Some(c.local_token()),
        };
        let entry = ConnEntry {
            conn,
            tuple,
            subflow_tuples: Vec::new(),
            token,
            held_mptcp: Vec::new(),
            closed_reported: false,
            registered: true,
            listener,
            held_events: Vec::new(),
            in_transmit_queue: false,
            timer: None,
            timer_stale: false,
            readable_queued: false,
            writable_queued: false,
            discarded: false,
        };
        let key = self.conns.insert(entry).ok()?;
        self.by_tuple.insert(tuple, key);
        if let Some(token) = token {
            self.tokens.insert(token, key);
        }
        self.touched(key);
        Some(key)
    }

    /// After the connection may have changed: it may have output, then settle.
    fn touched(&mut self, key: Key) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        if !entry.in_transmit_queue {
            entry.in_transmit_queue = true;
            self.transmit_queue.push_back(key);
        }
        self.settle(key);
    }

    /// Collects the connection's events, refreshes its timer and index entry, and
    /// removes it when it is finished.
    fn settle(&mut self, key: Key) {
        loop {
            let Some(entry) = self.conns.get_mut(key) else {
                return;
            };
            let Some(event) = entry.conn.poll_event(&mut entry.closed_reported) else {
                break;
            };
            self.on_conn_event(key, event);
        }
        self.mptcp_actions(key);
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let closed = entry.conn.is_closed();
        if closed && entry.registered {
            // New segments on this 4-tuple now meet CLOSED (a RST) or a listener.
            entry.registered = false;
            if self.by_tuple.get(&entry.tuple) == Some(&key) {
                self.by_tuple.remove(&entry.tuple);
            }
            for tuple in core::mem::take(&mut entry.subflow_tuples) {
                if self.by_tuple.get(&tuple) == Some(&key) {
                    self.by_tuple.remove(&tuple);
                }
            }
        }
        if !entry.timer_stale {
            entry.timer_stale = true;
            self.stale_timers.push(key);
        }
        // Finished: closed, its last packet (a RST after abort) sent, and nothing left
        // for the user to read (a connection nobody accepted has no reader).
        let finished = closed
            && !entry.in_transmit_queue
            && (entry.listener.is_some() || entry.discarded || entry.conn.readable() == 0);
        if finished {
            self.remove(key);
        }
        if self.stale_timers.len() > STALE_TIMER_LIMIT {
            self.refresh_timers();
        }
    }

    fn on_conn_event(&mut self, key: Key, event: ConnEvent) {
        let event = match event {
            ConnEvent::Tcp(event) => event,
            ConnEvent::Mptcp(event) => {
                for &tcp in conn::as_tcp_events(&event) {
                    self.on_conn_event(key, ConnEvent::Tcp(tcp));
                }
                let Some(entry) = self.conns.get_mut(key) else {
                    return;
                };
                let generic = matches!(
                    event,
                    MptcpEvent::Connected
                        | MptcpEvent::Readable
                        | MptcpEvent::Writable
                        | MptcpEvent::PeerClosed
                );
                if generic {
                    // Already reported as TCP events.
                } else if entry.listener.is_some() {
                    entry.held_mptcp.push(event);
                } else {
                    self.mptcp_events.push_back((ConnHandle(key), event));
                }
                return;
            }
        };
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let Some(listener) = entry.listener else {
            self.push_conn_event(key, event);
            return;
        };
        if !entry.held_events.contains(&event) {
            entry.held_events.push(event);
        }
        match event {
            TcpEvent::Connected => {
                if let Some(l) = self.listeners.get_mut(listener) {
                    l.ready.push_back(key);
                    self.events
                        .push_back(Event::Incoming(ListenerHandle(listener)));
                }
            }
            TcpEvent::Readable
            | TcpEvent::Writable
            | TcpEvent::PeerClosed
            | TcpEvent::Reset
            | TcpEvent::TimedOut
            | TcpEvent::Closed => {}
        }
    }

    fn push_conn_event(&mut self, key: Key, event: TcpEvent) {
        let Some(entry) = self.conns.get_mut(key) else {
            return;
        };
        let flag = match event {
            TcpEvent::Readable => Some(&mut entry.readable_queued),
            TcpEvent::Writable => Some(&mut entry.writable_queued),
            TcpEvent::Connected
            | TcpEvent::PeerClosed
            | TcpEvent::Reset
            | TcpEvent::TimedOut
            | TcpEvent::Closed => None,
        };
        if let Some(flag) = flag {
            if *flag {
                return;
            }
            *flag = true;
        }
        self.events
            .push_back(Event::Connection(ConnHandle(key), event));
    }

    /// Takes a finished connection out of every structure; its handle goes stale.
    fn remove(&mut self, key: Key) {
        let Some(entry) = self.conns.remove(key) else {
            return;
        };
        debug_assert!(
            !entry.in_transmit_queue,
            "removed while queued for transmit"
        );
        if entry.registered && self.by_tuple.get(&entry.tuple) == Some(&key) {
            self.by_tuple.remove(&entry.tuple);
        }
        for tuple in &entry.subflow_tuples {
            if self.by_tuple.get(tuple) == Some(&key) {
                self.by_tuple.remove(tuple);
            }
        }
        if let Some(token) = entry.token
            && self.tokens.get(&token) == Some(&key)
        {
            self.tokens.remove(&token);
        }
        if let Some(deadline) = entry.timer {
            self.timers.remove(&(deadline, key));
        }
        if entry.timer_stale {
            self.stale_timers.retain(|&k| k != key);
        }
        if let Some(listener) = entry.listener
            && let Some(l) = self.listeners.get_mut(listener)
        {
            l.children.remove(&key);
            l.ready.retain(|&k| k != key);
        }
        self.stats.connections_removed += 1;
        tracing::debug!(handle = %ConnHandle(key), local = %entry.tuple.local, remote = %entry.tuple.remote, "connection removed");
    }
}

/// The IP header of a packet we send from `src` to `dst` (one family: a 4-tuple never
/// mixes them). Payload length and protocol are filled in by emission.
fn ip_header(src: IpAddr, dst: IpAddr, hop_limit: u8) -> IpRepr {
    match (src, dst) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => IpRepr::V4(Ipv4Repr {
            src_addr,
            dst_addr,
            protocol: IP_PROTOCOL_TCP,
            payload_len: 0,
            ttl: hop_limit,
            dscp: 0,
            ecn: 0,
            // RFC 6864 §4.1: an atomic datagram (DF set) may carry any ID.
            ident: 0,
            dont_frag: true,
        }),
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => IpRepr::V6(Ipv6Repr {
            src_addr,
            dst_addr,
            next_header: IP_PROTOCOL_TCP,
            payload_len: 0,
            hop_limit,
            traffic_class: 0,
            flow_label: 0,
        }),
        (IpAddr::V4(_), IpAddr::V6(_)) | (IpAddr::V6(_), IpAddr::V4(_)) => {
            unreachable!("a 4-tuple's addresses are of one family: {src} and {dst}")
        }
    }
}

/// A unicast address a segment may come from or go to.
fn is_unicast(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => !(ip.is_unspecified() || ip.is_broadcast() || ip.is_multicast()),
        IpAddr::V6(ip) => !(ip.is_unspecified() || ip.is_multicast()),
    }
}

/// The unspecified address of `ip`'s family (a wildcard listener's address).
fn unspecified(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    }
}

/// Drops IPv6 flow info and scope id, so addresses compare as they appear in packets.
fn normalize(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip(), addr.port())
}
