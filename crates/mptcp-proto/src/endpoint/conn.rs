//! What the table holds per connection: a plain TCP socket or an MPTCP connection,
//! behind one small interface so the endpoint's bookkeeping (transmit queue, timers,
//! events, removal) treats both alike.

use core::net::SocketAddr;

use crate::mptcp::{CloseReason, MptcpConnection, MptcpEvent, Role};
use crate::tcp::{TcpEvent, TcpSocket, TcpState, TcpStats};
use crate::time::Instant;
use crate::wire::tcp::TcpRepr;

/// A connection in the table. A plain TCP socket stays inline, as it was before MPTCP
/// (no extra allocation per connection); the much larger MPTCP connection is boxed.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(super) enum Conn {
    Tcp(TcpSocket),
    Mptcp(Box<MptcpConnection>),
}

/// An event of either kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ConnEvent {
    /// Reported through [`super::Event::Connection`].
    Tcp(TcpEvent),
    /// Reported through [`super::Endpoint::poll_mptcp_event`].
    Mptcp(MptcpEvent),
}

impl Conn {
    pub fn write(&mut self, data: &[u8]) -> usize {
        match self {
            Conn::Tcp(s) => s.write(data),
            Conn::Mptcp(c) => c.write(data),
        }
    }

    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        match self {
            Conn::Tcp(s) => s.read(buf),
            Conn::Mptcp(c) => c.read(buf),
        }
    }

    pub fn readable(&self) -> usize {
        match self {
            Conn::Tcp(s) => s.readable(),
            Conn::Mptcp(c) => c.readable(),
        }
    }

    pub fn send_capacity(&self) -> usize {
        match self {
            Conn::Tcp(s) => s.send_capacity(),
            Conn::Mptcp(c) => c.send_capacity(),
        }
    }

    pub fn close(&mut self) {
        match self {
            Conn::Tcp(s) => s.close(),
            Conn::Mptcp(c) => c.close(),
        }
    }

    pub fn abort(&mut self) {
        match self {
            Conn::Tcp(s) => s.abort(),
            Conn::Mptcp(c) => c.abort(),
        }
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        match self {
            Conn::Tcp(s) => s.poll_timeout(),
            Conn::Mptcp(c) => c.poll_timeout(),
        }
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        match self {
            Conn::Tcp(s) => s.handle_timeout(now),
            Conn::Mptcp(c) => c.handle_timeout(now),
        }
    }

    /// Nothing more will happen: the table entry may go once its output is drained.
    pub fn is_closed(&self) -> bool {
        match self {
            Conn::Tcp(s) => s.state() == TcpState::Closed,
            Conn::Mptcp(c) => c.is_finished(),
        }
    }

    /// The TCP state, or for MPTCP the connection's state in TCP terms.
    pub fn state(&self) -> TcpState {
        match self {
            Conn::Tcp(s) => s.state(),
            Conn::Mptcp(c) => mptcp_state(c),
        }
    }

    /// TCP counters: the socket's, or the first subflow's for MPTCP (the connection's
    /// own figures are in [`MptcpConnection::stats`]).
    pub fn tcp_stats(&self) -> TcpStats {
        match self {
            Conn::Tcp(s) => s.stats(),
            Conn::Mptcp(c) => c
                .subflow_ids()
                .next()
                .and_then(|id| c.subflow_tcp(id))
                .map(|t| t.stats())
                .unwrap_or_default(),
        }
    }

    /// The next segment with the addresses it travels between.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Option<(SocketAddr, SocketAddr, TcpRepr<'_>, Option<u16>)> {
        match self {
            Conn::Tcp(s) => s
                .poll_transmit(now)
                .map(|t| (local, remote, t.segment, t.gso_size)),
            Conn::Mptcp(c) => c
                .poll_transmit(now)
                .map(|t| (t.local, t.remote, t.segment, t.gso_size)),
        }
    }

    pub fn poll_event(&mut self, closed_reported: &mut bool) -> Option<ConnEvent> {
        match self {
            Conn::Tcp(s) => s.poll_event().map(ConnEvent::Tcp),
            Conn::Mptcp(c) => {
                if let Some(e) = c.poll_event() {
                    return Some(ConnEvent::Mptcp(e));
                }
                // TCP's Closed means "may be dropped": for MPTCP that is when every
                // subflow is gone, after the connection-level Closed.
                if c.is_finished() && !*closed_reported {
                    *closed_reported = true;
                    return Some(ConnEvent::Tcp(TcpEvent::Closed));
                }
                None
            }
        }
    }
}

/// The TCP events an MPTCP event stands for, for users of [`super::Event`].
pub(super) fn as_tcp_events(event: &MptcpEvent) -> &'static [TcpEvent] {
    match event {
        MptcpEvent::Connected => &[TcpEvent::Connected],
        MptcpEvent::Readable => &[TcpEvent::Readable],
        MptcpEvent::Writable => &[TcpEvent::Writable],
        MptcpEvent::PeerClosed => &[TcpEvent::PeerClosed],
        MptcpEvent::Closed { reason } => match reason {
            CloseReason::Normal | CloseReason::Aborted => &[],
            CloseReason::PeerFastClose | CloseReason::Reset { .. } => &[TcpEvent::Reset],
            CloseReason::TimedOut | CloseReason::NoSubflows => &[TcpEvent::TimedOut],
        },
        MptcpEvent::SubflowUp { .. }
        | MptcpEvent::SubflowDown { .. }
        | MptcpEvent::AddressAnnounced { .. }
        | MptcpEvent::AddressRemoved { .. }
        | MptcpEvent::Fallback { .. } => &[],
    }
}

fn mptcp_state(c: &MptcpConnection) -> TcpState {
    if c.is_finished() {
        return TcpState::Closed;
    }
    // After a fallback the connection is plain TCP on its one subflow (RFC 8684
    // §3.7): its close goes through the subflow's states.
    if c.is_fallback()
        && let Some(t) = c.subflow_ids().next().and_then(|id| c.subflow_tcp(id))
    {
        return t.state();
    }
    if c.close_reason().is_some() {
        return TcpState::TimeWait;
    }
    let connected = c
        .subflow_ids()
        .filter_map(|id| c.subflow_tcp(id))
        .any(|t| t.state().is_synchronized());
    if !connected {
        return match c.role() {
            Role::Client => TcpState::SynSent,
            Role::Server => TcpState::SynReceived,
        };
    }
    if c.is_read_closed() {
        TcpState::CloseWait
    } else {
        TcpState::Established
    }
}
