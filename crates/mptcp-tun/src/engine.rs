//! The runtime's view of the protocol endpoint.
//!
//! STOPGAP: `mptcp_proto::endpoint::Endpoint` (branch `endpoint`) is being written at the
//! same time as this crate. Until it lands, this module provides a minimal plain-TCP
//! endpoint with the same calls (`listen`, `connect`, `accept`, `handle_packet`,
//! `poll_transmit`, `poll_timeout`, `handle_timeout`, `poll_event`, `write`, `read`,
//! `close`, `abort`, `state`), built on `mptcp_proto::tcp::TcpSocket`, so the runtime
//! and its interop tests run today. When the real endpoint lands, this file shrinks to
//! a re-export plus the event adapter, and nothing else in the crate changes.
//!
//! What the stopgap does: demultiplexes by 4-tuple, creates a connection for a SYN to a
//! listener (SYNs carrying MP_CAPABLE are answered as plain TCP, which RFC 8684 §3.1
//! makes the peer fall back from), answers segments for unknown 4-tuples with a RST
//! (RFC 9293 §3.10.7.1), and frees connections once they are closed and released.

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};

use mptcp_proto::Instant;
use mptcp_proto::tcp::{IsnGenerator, TcpConfig, TcpEvent, TcpSocket, TcpState, TcpStats};
use mptcp_proto::wire::{IpRepr, IpTcpRepr, Ipv4Repr, Ipv6Repr, TcpRepr};

/// Names one connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ConnHandle(u64);

/// Names one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct ListenerHandle(u64);

/// What the endpoint reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum EngineEvent {
    Conn(ConnHandle, TcpEvent),
    /// A connection is ready for `accept` on this listener.
    Incoming(ListenerHandle),
}

/// Endpoint settings the runtime passes in.
#[derive(Clone, Debug)]
pub(crate) struct EngineConfig {
    pub(crate) tcp: TcpConfig,
    pub(crate) local_addrs: Vec<IpAddr>,
    pub(crate) listen_backlog: usize,
}

#[derive(Debug)]
struct Conn {
    socket: TcpSocket,
    local: SocketAddr,
    remote: SocketAddr,
    /// Accepted from this listener and not yet handed to `accept`.
    listener: Option<ListenerHandle>,
    /// The application gave the handle back: free once closed.
    released: bool,
    closed: bool,
}

#[derive(Debug)]
struct Listener {
    addr: SocketAddr,
    /// Handshaking or established connections not yet accepted.
    pending: usize,
    ready: VecDeque<ConnHandle>,
}

/// A plain-TCP endpoint (see the module comment).
#[derive(Debug)]
pub(crate) struct Engine {
    config: EngineConfig,
    isn: IsnGenerator,
    conns: BTreeMap<ConnHandle, Conn>,
    by_tuple: BTreeMap<(SocketAddr, SocketAddr), ConnHandle>,
    listeners: BTreeMap<ListenerHandle, Listener>,
    next_id: u64,
    /// RSTs (as ready-to-send packets) for segments that matched nothing.
    resets: VecDeque<Vec<u8>>,
    events: VecDeque<EngineEvent>,
    /// Round-robin position for `poll_transmit`.
    cursor: Option<ConnHandle>,
    next_port: u16,
}

const MAX_PENDING_RESETS: usize = 64;
const EPHEMERAL_MIN: u16 = 49_152;

impl Engine {
    pub(crate) fn new(config: EngineConfig, secret: [u8; 32]) -> Engine {
        let next_port = EPHEMERAL_MIN + u16::from_le_bytes([secret[0], secret[1]]) % 16_000;
        Engine {
            config,
            isn: IsnGenerator::new(secret),
            conns: BTreeMap::new(),
            by_tuple: BTreeMap::new(),
            listeners: BTreeMap::new(),
            next_id: 1,
            resets: VecDeque::new(),
            events: VecDeque::new(),
            cursor: None,
            next_port,
        }
    }

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn is_local(&self, addr: IpAddr) -> bool {
        self.config.local_addrs.is_empty() || self.config.local_addrs.contains(&addr)
    }

    pub(crate) fn listen(&mut self, addr: SocketAddr) -> io::Result<ListenerHandle> {
        if !addr.ip().is_unspecified() && !self.is_local(addr.ip()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{} is not one of the stack's addresses", addr.ip()),
            ));
        }
        if addr.port() == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "listening on port 0 is not supported",
            ));
        }
        if self.listeners.values().any(|l| {
            l.addr.port() == addr.port()
                && (l.addr.ip() == addr.ip()
                    || l.addr.ip().is_unspecified()
                    || addr.ip().is_unspecified())
        }) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a listener on {addr} exists"),
            ));
        }
        let handle = ListenerHandle(self.next_id());
        self.listeners.insert(
            handle,
            Listener {
                addr,
                pending: 0,
                ready: VecDeque::new(),
            },
        );
        Ok(handle)
    }

    /// Stops listening; connections not yet accepted are reset.
    pub(crate) fn unlisten(&mut self, listener: ListenerHandle) {
        let Some(l) = self.listeners.remove(&listener) else {
            return;
        };
        let orphans: Vec<ConnHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| c.listener == Some(listener))
            .map(|(&h, _)| h)
            .collect();
        for h in orphans {
            if let Some(c) = self.conns.get_mut(&h) {
                c.listener = None;
                c.released = true;
                c.socket.abort();
            }
        }
        drop(l);
    }

    pub(crate) fn connect(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<ConnHandle> {
        if !self.is_local(local.ip()) {
            return Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!("{} is not one of the stack's addresses", local.ip()),
            ));
        }
        let mut local = local;
        if local.port() == 0 {
            let mut found = None;
            for _ in 0..16_384 {
                let port = self.next_port;
                self.next_port = if port == u16::MAX {
                    EPHEMERAL_MIN
                } else {
                    port + 1
                };
                let candidate = SocketAddr::new(local.ip(), port);
                if !self.by_tuple.contains_key(&(candidate, remote)) {
                    found = Some(candidate);
                    break;
                }
            }
            local = found.ok_or_else(|| {
                io::Error::new(io::ErrorKind::AddrInUse, "no free ephemeral port")
            })?;
        } else if self.by_tuple.contains_key(&(local, remote)) {
            return Err(io::Error::new(
                io::ErrorKind::AddrInUse,
                format!("a connection {local} -> {remote} exists"),
            ));
        }
        let iss = self.isn.isn(local, remote, now);
        let socket = TcpSocket::connect(self.config.tcp.clone(), local, remote, now, iss);
        let handle = ConnHandle(self.next_id());
        self.conns.insert(
            handle,
            Conn {
                socket,
                local,
                remote,
                listener: None,
                released: false,
                closed: false,
            },
        );
        self.by_tuple.insert((local, remote), handle);
        Ok(handle)
    }

    pub(crate) fn accept(&mut self, listener: ListenerHandle) -> Option<ConnHandle> {
        let l = self.listeners.get_mut(&listener)?;
        let h = l.ready.pop_front()?;
        l.pending = l.pending.saturating_sub(1);
        if let Some(c) = self.conns.get_mut(&h) {
            c.listener = None;
        }
        Some(h)
    }

    pub(crate) fn handle_packet(&mut self, now: Instant, bytes: &[u8]) {
        let Ok(packet) = IpTcpRepr::parse(bytes, true) else {
            tracing::trace!(
                len = bytes.len(),
                "dropped a packet that is not valid IP/TCP"
            );
            return;
        };
        let local = SocketAddr::new(packet.ip.dst_addr(), packet.tcp.dst_port);
        let remote = SocketAddr::new(packet.ip.src_addr(), packet.tcp.src_port);
        if !self.is_local(local.ip()) {
            return;
        }
        if let Some(&h) = self.by_tuple.get(&(local, remote))
            && let Some(c) = self.conns.get_mut(&h)
        {
            if let Err(drop) = c.socket.handle_segment(now, &packet.tcp) {
                tracing::trace!(?h, %drop, "segment dropped");
            }
            self.collect_events(h);
            return;
        }
        let flags = packet.tcp.flags;
        if flags.syn()
            && !flags.ack()
            && !flags.rst()
            && let Some(lh) = self.listener_for(local)
        {
            self.accept_syn(now, lh, local, remote, &packet.tcp);
            return;
        }
        self.queue_reset(&packet);
    }

    fn listener_for(&self, local: SocketAddr) -> Option<ListenerHandle> {
        self.listeners
            .iter()
            .find(|(_, l)| {
                l.addr.port() == local.port()
                    && (l.addr.ip() == local.ip() || l.addr.ip().is_unspecified())
            })
            .map(|(&h, _)| h)
    }

    fn accept_syn(
        &mut self,
        now: Instant,
        lh: ListenerHandle,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
    ) {
        let backlog = self.config.listen_backlog;
        let Some(l) = self.listeners.get_mut(&lh) else {
            return;
        };
        if l.pending >= backlog {
            tracing::debug!(%local, %remote, "listen backlog full: SYN dropped");
            return;
        }
        let iss = self.isn.isn(local, remote, now);
        let socket = match TcpSocket::accept(self.config.tcp.clone(), local, remote, syn, now, iss)
        {
            Ok(s) => s,
            Err(drop) => {
                tracing::debug!(%local, %remote, %drop, "SYN refused");
                return;
            }
        };
        l.pending += 1;
        let handle = ConnHandle(self.next_id());
        self.conns.insert(
            handle,
            Conn {
                socket,
                local,
                remote,
                listener: Some(lh),
                released: false,
                closed: false,
            },
        );
        self.by_tuple.insert((local, remote), handle);
    }

    fn queue_reset(&mut self, packet: &IpTcpRepr<'_>) {
        let Some(rst) = mptcp_proto::tcp::reset_for(&packet.tcp) else {
            return;
        };
        if self.resets.len() >= MAX_PENDING_RESETS {
            return;
        }
        let out = IpTcpRepr {
            ip: ip_header(packet.ip.dst_addr(), packet.ip.src_addr()),
            tcp: rst,
        };
        let mut buf = vec![0u8; out.buffer_len()];
        if let Ok(n) = out.emit(&mut buf, true) {
            buf.truncate(n);
            self.resets.push_back(buf);
        }
    }

    /// Moves the connection's events to the endpoint queue, tracking listener readiness
    /// and closure.
    fn collect_events(&mut self, h: ConnHandle) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        while let Some(ev) = c.socket.poll_event() {
            match ev {
                TcpEvent::Connected => {
                    if let Some(lh) = c.listener {
                        if let Some(l) = self.listeners.get_mut(&lh) {
                            l.ready.push_back(h);
                            self.events.push_back(EngineEvent::Incoming(lh));
                        }
                        continue;
                    }
                }
                TcpEvent::Closed => c.closed = true,
                TcpEvent::Readable
                | TcpEvent::Writable
                | TcpEvent::PeerClosed
                | TcpEvent::Reset
                | TcpEvent::TimedOut => {}
            }
            if c.listener.is_none() {
                self.events.push_back(EngineEvent::Conn(h, ev));
            }
        }
        if c.closed && c.listener.is_some() {
            // Died before it was accepted: nobody will ever see it.
            let lh = c.listener.take();
            c.released = true;
            if let Some(l) = lh.and_then(|lh| self.listeners.get_mut(&lh)) {
                l.pending = l.pending.saturating_sub(1);
                l.ready.retain(|&r| r != h);
            }
        }
        self.reap(h);
    }

    fn reap(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get(&h)
            && c.closed
            && c.released
        {
            let key = (c.local, c.remote);
            self.conns.remove(&h);
            self.by_tuple.remove(&key);
        }
    }

    pub(crate) fn poll_transmit(&mut self, now: Instant, buf: &mut [u8]) -> Option<usize> {
        while let Some(rst) = self.resets.pop_front() {
            if let Some(dst) = buf.get_mut(..rst.len()) {
                dst.copy_from_slice(&rst);
                return Some(rst.len());
            }
        }
        // Round-robin, starting after the connection that sent last.
        let start: Vec<ConnHandle> = match self.cursor {
            Some(cur) => self
                .conns
                .range((std::ops::Bound::Excluded(cur), std::ops::Bound::Unbounded))
                .map(|(&h, _)| h)
                .chain(self.conns.range(..=cur).map(|(&h, _)| h))
                .collect(),
            None => self.conns.keys().copied().collect(),
        };
        for h in start {
            let Some(c) = self.conns.get_mut(&h) else {
                continue;
            };
            let ip = ip_header(c.local.ip(), c.remote.ip());
            let written = match c.socket.poll_transmit(now) {
                Some(t) => {
                    let packet = IpTcpRepr { ip, tcp: t.segment };
                    match packet.emit(buf, true) {
                        Ok(n) => Some(n),
                        Err(e) => {
                            tracing::warn!(?h, error = %e, "segment does not fit the buffer");
                            None
                        }
                    }
                }
                None => None,
            };
            self.collect_events(h);
            if let Some(n) = written {
                self.cursor = Some(h);
                return Some(n);
            }
        }
        None
    }

    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.conns
            .values()
            .filter_map(|c| c.socket.poll_timeout())
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Instant) {
        let due: Vec<ConnHandle> = self
            .conns
            .iter()
            .filter(|(_, c)| c.socket.poll_timeout().is_some_and(|t| t <= now))
            .map(|(&h, _)| h)
            .collect();
        for h in due {
            if let Some(c) = self.conns.get_mut(&h) {
                c.socket.handle_timeout(now);
            }
            self.collect_events(h);
        }
    }

    pub(crate) fn poll_event(&mut self) -> Option<EngineEvent> {
        self.events.pop_front()
    }

    pub(crate) fn write(&mut self, h: ConnHandle, data: &[u8]) -> usize {
        self.conns.get_mut(&h).map_or(0, |c| c.socket.write(data))
    }

    pub(crate) fn read(&mut self, h: ConnHandle, buf: &mut [u8]) -> usize {
        self.conns.get_mut(&h).map_or(0, |c| c.socket.read(buf))
    }

    pub(crate) fn close(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get_mut(&h) {
            c.socket.close();
        }
        self.collect_events(h);
    }

    pub(crate) fn abort(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get_mut(&h) {
            c.socket.abort();
        }
        self.collect_events(h);
    }

    /// The application is done with `h`; the endpoint frees it once it is closed.
    pub(crate) fn release(&mut self, h: ConnHandle) {
        if let Some(c) = self.conns.get_mut(&h) {
            c.released = true;
        }
        self.reap(h);
    }

    /// `None` once the connection is gone from the table.
    pub(crate) fn state(&self, h: ConnHandle) -> Option<TcpState> {
        self.conns.get(&h).map(|c| c.socket.state())
    }

    pub(crate) fn stats(&self, h: ConnHandle) -> Option<TcpStats> {
        self.conns.get(&h).map(|c| c.socket.stats())
    }

    pub(crate) fn addrs(&self, h: ConnHandle) -> Option<(SocketAddr, SocketAddr)> {
        self.conns.get(&h).map(|c| (c.local, c.remote))
    }
}

fn ip_header(src: IpAddr, dst: IpAddr) -> IpRepr {
    match (src, dst) {
        (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) => IpRepr::V4(Ipv4Repr {
            src_addr,
            dst_addr,
            protocol: 6,
            payload_len: 0,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
        }),
        (IpAddr::V6(src_addr), IpAddr::V6(dst_addr)) => IpRepr::V6(Ipv6Repr {
            src_addr,
            dst_addr,
            next_header: 6,
            payload_len: 0,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }),
        // Mixed families never happen: both come from one packet or one connection.
        (src, dst) => unreachable!("mixed address families {src} -> {dst}"),
    }
}
