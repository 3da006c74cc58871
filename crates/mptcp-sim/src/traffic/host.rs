//! A simulated host running our stack: an [`Endpoint`] plus bulk-transfer applications.
//!
//! Senders open a connection at their start time, write a keyed [`Pattern`] of a given
//! length and close. Sinks listen on a port, accept every connection, read it to the
//! end and check each byte against the sender's pattern where it lands. The host only
//! reacts to endpoint events, so it does no work per packet beyond the endpoint's own.
//! A sink reads as fast as data arrives, or at most `read_rate` bytes per second (a
//! slow application: its receive window fills and the sender must wait for it).

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use mptcp_proto::endpoint::{ConnHandle, Endpoint, EndpointConfig, Event, ListenerHandle};
use mptcp_proto::mptcp::{ConnStats, FallbackReason, MptcpConfig, MptcpEvent};
use mptcp_proto::tcp::{TcpEvent, TcpStats};
use mptcp_proto::{Duration, Instant};

use crate::host::{Context, Host};
use crate::scenario::FlowKind;

use super::delivery::DeliveryLog;
use super::pattern::Pattern;
use super::summary::DeliveryGaps;

/// Largest IP packet the host emits or accepts (jumbo-frame sized with headroom).
const MAX_PACKET: usize = 65_536;
/// Application read/write chunk.
const CHUNK: usize = 16 * 1024;
/// Most read credit a rate-limited reader banks while it has nothing to read: one
/// chunk, so that it does not swallow a long pause's worth of data at once.
const READ_BURST: u64 = CHUNK as u64;
/// Read credit is kept in millionths of a byte: refills every few microseconds then
/// lose nothing to rounding.
const MICRO: u128 = 1_000_000;
/// How often a rate-limited application writes (a media-like source handing over
/// what it produced since its last write).
pub const WRITE_TICK: Duration = Duration::from_millis(1);
/// MPTCP events kept per connection (the first ones: a connection that churns
/// subflows for a long run must not grow its log without bound).
pub const MPTCP_EVENT_LOG: usize = 256;

/// The pattern key both ends of a flow derive from what both know: the sender's
/// address and the destination port.
pub fn flow_key(sender: IpAddr, port: u16) -> u64 {
    let ip_bits: u128 = match sender {
        IpAddr::V4(v4) => u32::from(v4).into(),
        IpAddr::V6(v6) => u128::from(v6),
    };
    let folded = (ip_bits as u64) ^ ((ip_bits >> 64) as u64).rotate_left(17);
    folded ^ (u64::from(port) << 48) ^ 0x6d70_7463_705f_7369
}

/// How a sender's flow ended up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SenderState {
    /// Not started yet (its start time is in the future).
    Waiting,
    /// Connecting or transferring.
    Running,
    /// Everything written, acknowledged and the connection closed.
    Finished { at: Instant },
    /// The connection failed (reset, timed out or refused).
    Failed { at: Instant, reason: TcpEvent },
    /// `connect` itself was refused by the endpoint.
    ConnectError(String),
}

/// A bulk sender: one connection, `total` bytes (or unbounded), then FIN.
#[derive(Clone, Debug)]
pub struct Sender {
    pub label: String,
    pub remote: SocketAddr,
    pub local_ip: IpAddr,
    /// The (initial) subflow's local address and port, once connecting.
    pub local: Option<SocketAddr>,
    pub start: Instant,
    /// `None`: send until the simulation ends.
    pub total: Option<u64>,
    pub written: u64,
    pub state: SenderState,
    pub started_at: Option<Instant>,
    pub connected_at: Option<Instant>,
    conn: Option<ConnHandle>,
    pattern: Pattern,
    closed_write: bool,
    /// The connection's counters when the flow ended (the endpoint may forget it).
    final_stats: Option<TcpStats>,
    /// Plain TCP or MPTCP (`connect_mptcp` with `extra_locals`).
    pub kind: FlowKind,
    /// Our other addresses, for MPTCP joins.
    pub extra_locals: Vec<IpAddr>,
    /// Application rate limit, bits per second: the application writes what the rate
    /// has allowed since the connection opened, once per [`WRITE_TICK`]. `None`: as
    /// fast as the connection takes it (bulk).
    pub rate_bps: Option<u64>,
    /// The next write of a rate-limited sender.
    next_write: Option<Instant>,
    /// What MPTCP said about the connection.
    pub mptcp: MptcpLog,
}

/// What one MPTCP connection reported: its events with their times (the first
/// [`MPTCP_EVENT_LOG`]) and its latest statistics, kept after the endpoint forgets it.
#[derive(Clone, Debug, Default)]
pub struct MptcpLog {
    pub events: Vec<(Instant, MptcpEvent)>,
    /// Events beyond the log's capacity.
    pub events_dropped: u64,
    pub fallback: Option<FallbackReason>,
    pub stats: Option<ConnStats>,
}

impl MptcpLog {
    fn push(&mut self, now: Instant, event: MptcpEvent) {
        if let MptcpEvent::Fallback { reason } = event {
            self.fallback = Some(reason);
        }
        if self.events.len() < MPTCP_EVENT_LOG {
            self.events.push((now, event));
        } else {
            self.events_dropped += 1;
        }
    }

    /// How many events match `pred`.
    pub fn count(&self, pred: impl Fn(&MptcpEvent) -> bool) -> usize {
        self.events.iter().filter(|(_, e)| pred(e)).count()
    }
}

/// One connection a sink accepted.
#[derive(Clone, Debug)]
pub struct Received {
    pub remote: SocketAddr,
    pub local: SocketAddr,
    pub bytes: u64,
    pub accepted_at: Instant,
    pub first_byte_at: Option<Instant>,
    /// When the peer's FIN arrived after all data: the transfer's completion.
    pub finished_at: Option<Instant>,
    /// The first stream offset whose byte did not match the sender's pattern.
    pub corrupt_at: Option<u64>,
    /// The connection ended without a FIN (reset, timeout).
    pub failed: Option<TcpEvent>,
    /// When the application got new in-order bytes, for stall analysis.
    pub delivery_gaps: DeliveryGaps,
    /// Whether the peer opened it with MP_CAPABLE.
    pub is_mptcp: bool,
    /// When the application read what (the points only with
    /// [`StackHost::set_record_deliveries`]).
    pub deliveries: DeliveryLog,
    /// What MPTCP said about it (empty for plain TCP).
    pub mptcp: MptcpLog,
    /// The endpoint's handle while the connection is live.
    conn: Option<ConnHandle>,
    pattern: Pattern,
    /// The peer's FIN arrived; the transfer completes once everything is read.
    peer_closed: bool,
    /// A rate-limited reader's credit (millionths of a byte) as of `credit_at`.
    read_credit: u128,
    credit_at: Instant,
    /// When a rate-limited reader with data waiting reads next.
    next_read: Option<Instant>,
}

/// Host settings read from a scenario's `[host.options]`.
#[derive(Clone, Debug)]
pub struct StackOptions {
    /// The endpoint's settings. Hosts accept MPTCP by default (`mptcp` is `Some`), and
    /// plain TCP SYNs still get plain TCP.
    pub endpoint: EndpointConfig,
    /// How fast the host's sinks read, bytes per second (`read_rate`); `None`: as fast
    /// as data arrives.
    pub read_rate: Option<u64>,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            endpoint: EndpointConfig {
                mptcp: Some(MptcpConfig::default()),
                ..EndpointConfig::default()
            },
            read_rate: None,
        }
    }
}

/// A host running the protocol stack with traffic applications.
pub struct StackHost {
    endpoint: Endpoint,
    senders: Vec<Sender>,
    listeners: BTreeMap<ListenerHandle, u16>,
    received: BTreeMap<ConnHandle, Received>,
    /// Connections already finished, in completion order (handles get reused).
    finished: Vec<Received>,
    chunk: Vec<u8>,
    /// Scratch space for one outgoing packet, allocated once.
    packet: Vec<u8>,
    verify: bool,
    read_rate: Option<u64>,
    record_deliveries: bool,
}

impl StackHost {
    pub fn new(options: StackOptions, secret: [u8; 32]) -> Self {
        StackHost {
            endpoint: Endpoint::new(options.endpoint, secret),
            read_rate: options.read_rate.filter(|&r| r > 0),
            senders: Vec::new(),
            listeners: BTreeMap::new(),
            received: BTreeMap::new(),
            finished: Vec::new(),
            chunk: vec![0; CHUNK],
            packet: vec![0; MAX_PACKET],
            verify: true,
            record_deliveries: false,
        }
    }

    /// Keeps every delivery point of the connections accepted from now on
    /// ([`Received::deliveries`]); off by default, as a long transfer reads millions
    /// of times.
    pub fn set_record_deliveries(&mut self, record: bool) {
        self.record_deliveries = record;
    }

    /// Turns per-byte pattern checks off (for pure speed measurements).
    pub fn set_verify(&mut self, verify: bool) {
        self.verify = verify;
    }

    /// Adds a plain TCP flow from `local_ip` to `remote`, opened at `start`.
    pub fn add_sender(
        &mut self,
        label: &str,
        local_ip: IpAddr,
        remote: SocketAddr,
        start: Instant,
        total: Option<u64>,
    ) {
        self.add_flow(label, FlowKind::Tcp, local_ip, &[], remote, start, total);
    }

    /// Adds an MPTCP flow: the initial subflow from `local_ip`, joins from
    /// `extra_locals` once established (full mesh).
    pub fn add_mptcp_sender(
        &mut self,
        label: &str,
        local_ip: IpAddr,
        extra_locals: &[IpAddr],
        remote: SocketAddr,
        start: Instant,
        total: Option<u64>,
    ) {
        self.add_flow(
            label,
            FlowKind::Mptcp,
            local_ip,
            extra_locals,
            remote,
            start,
            total,
        );
    }

    #[allow(clippy::too_many_arguments)]
    fn add_flow(
        &mut self,
        label: &str,
        kind: FlowKind,
        local_ip: IpAddr,
        extra_locals: &[IpAddr],
        remote: SocketAddr,
        start: Instant,
        total: Option<u64>,
    ) {
        self.senders.push(Sender {
            label: label.to_owned(),
            remote,
            local_ip,
            local: None,
            start,
            total,
            written: 0,
            state: SenderState::Waiting,
            started_at: None,
            connected_at: None,
            conn: None,
            pattern: Pattern::new(flow_key(local_ip, remote.port())),
            closed_write: false,
            final_stats: None,
            kind,
            extra_locals: extra_locals.to_vec(),
            rate_bps: None,
            next_write: None,
            mptcp: MptcpLog::default(),
        });
    }

    /// Limits the application of sender `label` to `rate_bps` bits per second (`None`:
    /// bulk). False when there is no such sender.
    pub fn set_sender_rate(&mut self, label: &str, rate_bps: Option<u64>) -> bool {
        match self.senders.iter_mut().find(|s| s.label == label) {
            Some(sender) => {
                sender.rate_bps = rate_bps.filter(|&r| r > 0);
                true
            }
            None => false,
        }
    }

    /// Accepts connections on `port` (every local address) and reads them to the end.
    pub fn add_sink(&mut self, port: u16, ipv6: bool) -> Result<(), String> {
        let any: IpAddr = if ipv6 {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        };
        let listener = self
            .endpoint
            .listen(SocketAddr::new(any, port))
            .map_err(|e| e.to_string())?;
        self.listeners.insert(listener, port);
        Ok(())
    }

    /// Whether a sink already listens on `port` for the address family.
    pub fn has_sink(&self, port: u16, ipv6: bool) -> bool {
        self.listeners.iter().any(|(&listener, &p)| {
            p == port
                && self
                    .endpoint
                    .listener_addr(listener)
                    .is_ok_and(|a| a.is_ipv6() == ipv6)
        })
    }

    /// The sender's connection counters: live, or as they were when it ended.
    pub fn sender_stats(&self, label: &str) -> Option<TcpStats> {
        let sender = self.senders.iter().find(|s| s.label == label)?;
        sender
            .conn
            .and_then(|conn| self.endpoint.conn_stats(conn).ok())
            .or(sender.final_stats)
    }

    /// The endpoint's handle of a sender's connection, once it connected.
    pub fn sender_conn(&self, label: &str) -> Option<ConnHandle> {
        self.senders.iter().find(|s| s.label == label)?.conn
    }

    /// The sender's MPTCP statistics: live, or as they were last seen (`None` for
    /// plain TCP flows).
    pub fn sender_mptcp_stats(&self, label: &str) -> Option<ConnStats> {
        let sender = self.senders.iter().find(|s| s.label == label)?;
        sender
            .conn
            .and_then(|conn| self.endpoint.mptcp_stats(conn).ok())
            .or_else(|| sender.mptcp.stats.clone())
    }

    /// The MPTCP statistics of an accepted connection: live while the endpoint has
    /// it, else as last seen.
    pub fn received_mptcp_stats(&self, received: &Received) -> Option<ConnStats> {
        received
            .conn
            .and_then(|conn| self.endpoint.mptcp_stats(conn).ok())
            .or_else(|| received.mptcp.stats.clone())
    }

    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The endpoint itself, for tests that open connections or inject path events.
    pub fn endpoint_mut(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    pub fn senders(&self) -> &[Sender] {
        &self.senders
    }

    /// Every connection the sinks accepted: finished ones first, in completion order.
    pub fn received(&self) -> impl Iterator<Item = &Received> {
        self.finished.iter().chain(self.received.values())
    }

    /// True once every sender has finished or failed and no sink is mid-transfer.
    pub fn is_done(&self) -> bool {
        self.senders.iter().all(|s| {
            matches!(
                s.state,
                SenderState::Finished { .. }
                    | SenderState::Failed { .. }
                    | SenderState::ConnectError(_)
            )
        }) && self
            .received
            .values()
            .all(|r| r.finished_at.is_some() || r.failed.is_some())
    }

    fn start_due_senders(&mut self, now: Instant) {
        for index in 0..self.senders.len() {
            let sender = &mut self.senders[index];
            if sender.state != SenderState::Waiting || sender.start > now {
                continue;
            }
            let local = SocketAddr::new(sender.local_ip, 0);
            let result = match sender.kind {
                FlowKind::Tcp => self.endpoint.connect(now, local, sender.remote),
                FlowKind::Mptcp => {
                    self.endpoint
                        .connect_mptcp(now, local, sender.remote, &sender.extra_locals)
                }
            };
            match result {
                Ok(conn) => {
                    sender.local = self.endpoint.addresses(conn).ok().map(|t| t.local);
                    sender.conn = Some(conn);
                    sender.state = SenderState::Running;
                    sender.started_at = Some(now);
                }
                Err(e) => sender.state = SenderState::ConnectError(e.to_string()),
            }
        }
    }

    fn sender_index(&self, conn: ConnHandle) -> Option<usize> {
        self.senders.iter().position(|s| s.conn == Some(conn))
    }

    /// Fills the send buffer of sender `index` with its next pattern bytes (for a
    /// rate-limited sender, up to what its rate allowed by `now`).
    fn pump_sender(&mut self, index: usize, now: Instant) {
        let sender = &mut self.senders[index];
        let Some(conn) = sender.conn else { return };
        if sender.closed_write || sender.state != SenderState::Running {
            return;
        }
        let allowed = match (sender.rate_bps, sender.connected_at) {
            (Some(_), None) => return,
            (Some(rate), Some(at)) => {
                let bits = u128::from(now.saturating_since(at).total_micros()) * u128::from(rate);
                let allowed = u64::try_from(bits / 8_000_000).unwrap_or(u64::MAX);
                sender.next_write = Some(now + WRITE_TICK);
                allowed
            }
            (None, _) => u64::MAX,
        };
        loop {
            let room = allowed.saturating_sub(sender.written).min(CHUNK as u64) as usize;
            let want = match sender.total {
                Some(total) => (total - sender.written).min(room as u64) as usize,
                None => room,
            };
            if want == 0 {
                break;
            }
            sender.pattern.fill(sender.written, &mut self.chunk[..want]);
            match self.endpoint.write(conn, &self.chunk[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => sender.written += n as u64,
            }
        }
        if sender.total == Some(sender.written) {
            sender.closed_write = true;
            sender.next_write = None;
            let _ = self.endpoint.close(conn);
        }
    }

    /// Reads what the sink may read now: everything, or what a rate-limited reader's
    /// credit allows, then arranges its next read if data is left waiting. Completes
    /// the transfer once the peer closed and everything was read.
    fn drain_sink(&mut self, now: Instant, conn: ConnHandle) {
        let Some(received) = self.received.get_mut(&conn) else {
            return;
        };
        let before = received.bytes;
        let mut allowance = match self.read_rate {
            None => u64::MAX,
            Some(rate) => {
                let elapsed = u128::from(now.saturating_since(received.credit_at).total_micros());
                received.read_credit = (received.read_credit + u128::from(rate) * elapsed)
                    .min(u128::from(READ_BURST) * MICRO);
                received.credit_at = now;
                (received.read_credit / MICRO) as u64
            }
        };
        received.next_read = None;
        loop {
            let want = allowance.min(CHUNK as u64) as usize;
            if want == 0 {
                break;
            }
            let n = match self.endpoint.read(conn, &mut self.chunk[..want]) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            allowance -= n as u64;
            if self.read_rate.is_some() {
                received.read_credit -= n as u128 * MICRO;
            }
            if received.first_byte_at.is_none() {
                received.first_byte_at = Some(now);
            }
            if self.verify
                && received.corrupt_at.is_none()
                && let Err(at) = received.pattern.verify(received.bytes, &self.chunk[..n])
            {
                received.corrupt_at = Some(at);
            }
            received.bytes += n as u64;
            received.deliveries.push(now, received.bytes);
        }
        if received.bytes > before {
            received.delivery_gaps.on_delivery(now);
        }
        let waiting = self.endpoint.readable(conn).unwrap_or(0) as u64;
        if waiting > 0 {
            if let Some(rate) = self.read_rate {
                // Wake once the credit covers what waits, or a whole chunk.
                let need = (u128::from(waiting.min(READ_BURST)) * MICRO)
                    .saturating_sub(received.read_credit);
                let micros = need.div_ceil(u128::from(rate)).max(1);
                received.next_read =
                    Some(now + Duration::from_micros(u64::try_from(micros).unwrap_or(u64::MAX)));
            }
            return;
        }
        if received.peer_closed && received.finished_at.is_none() {
            received.finished_at = Some(now);
            self.save_mptcp_stats(conn);
            let _ = self.endpoint.close(conn);
        }
    }

    /// When the next rate-limited read is due.
    fn next_read(&self) -> Option<Instant> {
        self.read_rate?;
        self.received.values().filter_map(|r| r.next_read).min()
    }

    fn run_due_reads(&mut self, now: Instant) {
        if self.read_rate.is_none() {
            return;
        }
        let due: Vec<ConnHandle> = self
            .received
            .iter()
            .filter(|(_, r)| r.next_read.is_some_and(|t| t <= now))
            .map(|(&conn, _)| conn)
            .collect();
        for conn in due {
            self.drain_sink(now, conn);
        }
    }

    fn finish_sink(&mut self, conn: ConnHandle) {
        if let Some(mut received) = self.received.remove(&conn) {
            received.conn = None;
            self.finished.push(received);
        }
    }

    fn handle_events(&mut self, now: Instant) {
        // MPTCP events first: a generic Closed that follows may retire the handle.
        while let Some((conn, event)) = self.endpoint.poll_mptcp_event() {
            self.on_mptcp_event(now, conn, event);
        }
        while let Some(event) = self.endpoint.poll_event() {
            match event {
                Event::Incoming(listener) => {
                    while let Some(conn) = self.endpoint.accept(listener) {
                        self.on_accept(now, conn);
                    }
                }
                Event::Connection(conn, tcp_event) => {
                    self.on_connection_event(now, conn, tcp_event)
                }
            }
        }
    }

    fn on_mptcp_event(&mut self, now: Instant, conn: ConnHandle, event: MptcpEvent) {
        let stats = self.endpoint.mptcp_stats(conn).ok();
        let log = match self.sender_index(conn) {
            Some(index) => &mut self.senders[index].mptcp,
            None => match self.received.get_mut(&conn) {
                Some(received) => &mut received.mptcp,
                // Not accepted yet: the accept will start the log.
                None => return,
            },
        };
        log.push(now, event);
        if stats.is_some() {
            log.stats = stats;
        }
    }

    /// Refreshes the saved MPTCP statistics of a connection the host knows.
    fn save_mptcp_stats(&mut self, conn: ConnHandle) {
        let Ok(stats) = self.endpoint.mptcp_stats(conn) else {
            return;
        };
        if let Some(index) = self.sender_index(conn) {
            self.senders[index].mptcp.stats = Some(stats);
        } else if let Some(received) = self.received.get_mut(&conn) {
            received.mptcp.stats = Some(stats);
        }
    }

    fn on_accept(&mut self, now: Instant, conn: ConnHandle) {
        let Ok(tuple) = self.endpoint.addresses(conn) else {
            return;
        };
        let is_mptcp = self.endpoint.is_mptcp(conn).unwrap_or(false);
        self.received.insert(
            conn,
            Received {
                remote: tuple.remote,
                local: tuple.local,
                bytes: 0,
                accepted_at: now,
                first_byte_at: None,
                finished_at: None,
                corrupt_at: None,
                failed: None,
                delivery_gaps: DeliveryGaps::default(),
                is_mptcp,
                deliveries: DeliveryLog::new(self.record_deliveries),
                mptcp: MptcpLog {
                    stats: self.endpoint.mptcp_stats(conn).ok(),
                    ..MptcpLog::default()
                },
                conn: Some(conn),
                pattern: Pattern::new(flow_key(tuple.remote.ip(), tuple.local.port())),
                peer_closed: false,
                // A fresh reader may read one chunk at once.
                read_credit: u128::from(READ_BURST) * MICRO,
                credit_at: now,
                next_read: None,
            },
        );
        self.drain_sink(now, conn);
    }

    fn on_connection_event(&mut self, now: Instant, conn: ConnHandle, event: TcpEvent) {
        if let Some(index) = self.sender_index(conn) {
            self.on_sender_event(now, index, event);
            return;
        }
        if !self.received.contains_key(&conn) {
            return;
        }
        match event {
            TcpEvent::Connected | TcpEvent::Readable | TcpEvent::Writable => {
                self.drain_sink(now, conn)
            }
            TcpEvent::PeerClosed => {
                if let Some(r) = self.received.get_mut(&conn) {
                    r.peer_closed = true;
                }
                self.save_mptcp_stats(conn);
                // Completes the transfer now, or after the last rate-limited read.
                self.drain_sink(now, conn);
            }
            TcpEvent::Reset | TcpEvent::TimedOut => {
                self.save_mptcp_stats(conn);
                if let Some(r) = self.received.get_mut(&conn)
                    && r.finished_at.is_none()
                {
                    r.failed = Some(event);
                }
                self.finish_sink(conn);
            }
            TcpEvent::Closed => {
                self.save_mptcp_stats(conn);
                self.finish_sink(conn)
            }
        }
    }

    fn on_sender_event(&mut self, now: Instant, index: usize, event: TcpEvent) {
        match event {
            TcpEvent::Connected => {
                self.senders[index].connected_at = Some(now);
                self.pump_sender(index, now);
            }
            TcpEvent::Writable => self.pump_sender(index, now),
            TcpEvent::Readable => {
                // Senders expect nothing back; drain to keep the window open.
                if let Some(conn) = self.senders[index].conn {
                    while let Ok(n) = self.endpoint.read(conn, &mut self.chunk) {
                        if n == 0 {
                            break;
                        }
                    }
                }
            }
            TcpEvent::PeerClosed | TcpEvent::Closed => {
                self.capture_final_stats(index);
                let sender = &mut self.senders[index];
                if sender.state == SenderState::Running {
                    let all_written = sender.total.is_some_and(|t| t == sender.written);
                    sender.state = if all_written {
                        SenderState::Finished { at: now }
                    } else {
                        SenderState::Failed {
                            at: now,
                            reason: event,
                        }
                    };
                }
            }
            TcpEvent::Reset | TcpEvent::TimedOut => {
                self.capture_final_stats(index);
                let sender = &mut self.senders[index];
                if sender.state == SenderState::Running {
                    sender.state = SenderState::Failed {
                        at: now,
                        reason: event,
                    };
                }
            }
        }
    }

    fn capture_final_stats(&mut self, index: usize) {
        if let Some(conn) = self.senders[index].conn {
            if let Ok(stats) = self.endpoint.conn_stats(conn) {
                self.senders[index].final_stats = Some(stats);
            }
            self.save_mptcp_stats(conn);
        }
    }

    /// The next sender to start or rate-limited write to make.
    fn next_start(&self) -> Option<Instant> {
        self.senders
            .iter()
            .filter_map(|s| match s.state {
                SenderState::Waiting => Some(s.start),
                SenderState::Running => s.next_write.filter(|_| !s.closed_write),
                SenderState::Finished { .. }
                | SenderState::Failed { .. }
                | SenderState::ConnectError(_) => None,
            })
            .min()
    }

    fn write_due(&mut self, now: Instant) {
        for index in 0..self.senders.len() {
            if self.senders[index].next_write.is_some_and(|t| t <= now) {
                self.pump_sender(index, now);
            }
        }
    }

    fn record_flows(&self, cx: &mut Context<'_>) {
        for sender in &self.senders {
            let Some(conn) = sender.conn else { continue };
            let Ok(stats) = self.endpoint.conn_stats(conn) else {
                continue;
            };
            cx.record(&format!("{}/cwnd_bytes", sender.label), stats.cwnd as f64);
            if let Some(srtt) = stats.srtt {
                cx.record(
                    &format!("{}/srtt_ms", sender.label),
                    srtt.total_micros() as f64 / 1e3,
                );
            }
            cx.record(
                &format!("{}/bytes_in_flight", sender.label),
                stats.bytes_in_flight as f64,
            );
            cx.record(
                &format!("{}/retransmits", sender.label),
                stats.retransmits as f64,
            );
            let Ok(mptcp) = self.endpoint.mptcp_stats(conn) else {
                continue;
            };
            for sf in &mptcp.subflows {
                let prefix = format!("{}/sf{}", sender.label, sf.id.0);
                cx.record(&format!("{prefix}/cwnd_bytes"), sf.cwnd as f64);
                if let Some(srtt) = sf.srtt {
                    cx.record(
                        &format!("{prefix}/srtt_ms"),
                        srtt.total_micros() as f64 / 1e3,
                    );
                }
                cx.record(&format!("{prefix}/bytes_sent"), sf.bytes_sent as f64);
            }
            cx.record(
                &format!("{}/reinjected_bytes", sender.label),
                mptcp
                    .subflows
                    .iter()
                    .chain(&mptcp.closed_subflows)
                    .map(|s| s.bytes_reinjected)
                    .sum::<u64>() as f64,
            );
        }
    }
}

impl Host for StackHost {
    fn handle_packet(&mut self, cx: &mut Context<'_>, packet: &[u8]) {
        let now = cx.now();
        let _ = self.endpoint.handle_packet(now, packet);
        self.handle_events(now);
    }

    fn poll_transmit(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> bool {
        let now = cx.now();
        self.start_due_senders(now);
        self.handle_events(now);
        match self.endpoint.poll_transmit(now, &mut self.packet) {
            Some(len) => {
                buf.extend_from_slice(&self.packet[..len]);
                true
            }
            None => false,
        }
    }

    fn poll_timeout(&self) -> Option<Instant> {
        [
            self.endpoint.poll_timeout(),
            self.next_start(),
            self.next_read(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn handle_timeout(&mut self, cx: &mut Context<'_>) {
        let now = cx.now();
        self.endpoint.handle_timeout(now);
        self.start_due_senders(now);
        self.handle_events(now);
        self.run_due_reads(now);
        self.write_due(now);
    }

    fn on_sample(&mut self, cx: &mut Context<'_>) {
        self.record_flows(cx);
    }
}

/// Time from a sender's start to its completion, if it completed.
pub fn completion_time(sender: &Sender) -> Option<Duration> {
    match (&sender.state, sender.started_at) {
        (SenderState::Finished { at }, Some(start)) => Some(*at - start),
        _ => None,
    }
}
