//! Plain TCP: the engine with its own send buffer and reassembly, used 1:1.

use core::net::SocketAddr;

use crate::buffer::{Reassembly, SendBuffer};
use crate::seq::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::TcpRepr;

use super::{
    ReceiveSink, SendSource, TcpConfig, TcpConnection, TcpDrop, TcpEvent, TcpState, TcpStats,
    Transmit,
};

/// An ordinary TCP connection: [`TcpConnection`] plus a [`SendBuffer`] and a
/// [`Reassembly`] sized by the configuration.
///
/// Driving two sockets through the wire codec, as the endpoint does (the TCP bytes
/// go inside IP packets there):
///
/// ```
/// use std::net::SocketAddr;
/// use mptcp_proto::seq::SeqNum;
/// use mptcp_proto::tcp::{TcpConfig, TcpSocket, TcpState};
/// use mptcp_proto::time::Instant;
/// use mptcp_proto::wire::tcp::{TcpPacket, TcpRepr};
///
/// fn bytes(seg: &TcpRepr<'_>, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
///     let mut buf = vec![0; seg.buffer_len()];
///     seg.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src.ip(), dst.ip(), true)
///         .expect("the engine's segments fit");
///     buf
/// }
///
/// let (a, b): (SocketAddr, SocketAddr) =
///     ("10.0.0.1:4000".parse().unwrap(), "10.0.0.2:80".parse().unwrap());
/// let now = Instant::ZERO;
/// let mut client = TcpSocket::connect(TcpConfig::default(), a, b, now, SeqNum(1));
/// client.write(b"hello");
///
/// let wire = bytes(&client.poll_transmit(now).unwrap().segment, a, b);
/// let packet = TcpPacket::new_checked(&wire[..]).unwrap();
/// let syn = TcpRepr::parse(&packet, a.ip(), b.ip(), true).unwrap();
/// let mut server = TcpSocket::accept(TcpConfig::default(), b, a, &syn, now, SeqNum(9)).unwrap();
///
/// let wire = bytes(&server.poll_transmit(now).unwrap().segment, b, a);
/// let packet = TcpPacket::new_checked(&wire[..]).unwrap();
/// client.handle_segment(now, &TcpRepr::parse(&packet, b.ip(), a.ip(), true).unwrap()).unwrap();
/// assert_eq!(client.state(), TcpState::Established);
///
/// while let Some(t) = client.poll_transmit(now) {
///     let wire = bytes(&t.segment, a, b);
///     let packet = TcpPacket::new_checked(&wire[..]).unwrap();
///     server.handle_segment(now, &TcpRepr::parse(&packet, a.ip(), b.ip(), true).unwrap()).unwrap();
/// }
/// let mut buf = [0u8; 16];
/// assert_eq!(server.read(&mut buf), 5);
/// assert_eq!(&buf[..5], b"hello");
/// ```
#[derive(Debug)]
pub struct TcpSocket {
    conn: TcpConnection,
    send: SendBuffer,
    recv: Reassembly,
}

/// The owner view of the socket's buffers for one engine call.
struct Owner<'a> {
    send: &'a SendBuffer,
    recv: &'a mut Reassembly,
}

impl<'a> SendSource<'a> for Owner<'a> {
    fn available(&self, from: u64) -> u64 {
        self.send.end().saturating_sub(from)
    }

    fn bytes(&mut self, offset: u64, max_len: usize) -> &'a [u8] {
        self.send.slice(offset, max_len)
    }
}

impl ReceiveSink for Owner<'_> {
    fn deliver(&mut self, offset: u64, payload: &[u8]) -> usize {
        let outcome = self.recv.insert(offset, payload);
        if outcome.range_limit_bytes > 0 {
            return 0;
        }
        // Everything but the tail beyond the window was stored or already held.
        payload.len() - outcome.beyond_window_bytes
    }

    fn receive_window(&self, rcv_nxt: u64) -> u64 {
        self.recv.right_edge().saturating_sub(rcv_nxt)
    }
}

impl TcpSocket {
    fn with_conn(conn: TcpConnection, config_send: usize, config_recv: usize) -> Self {
        TcpSocket {
            conn,
            send: SendBuffer::new(config_send.max(1)),
            recv: Reassembly::new(config_recv.max(1)),
        }
    }

    /// Active open; see [`TcpConnection::connect`].
    pub fn connect(
        config: TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        iss: SeqNum,
    ) -> Self {
        let (s, r) = (config.send_buffer, config.recv_buffer);
        TcpSocket::with_conn(
            TcpConnection::connect(config, local, remote, now, iss),
            s,
            r,
        )
    }

    /// Passive open for a received SYN; see [`TcpConnection::accept`].
    pub fn accept(
        config: TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        now: Instant,
        iss: SeqNum,
    ) -> Result<Self, TcpDrop> {
        let (s, r) = (config.send_buffer, config.recv_buffer);
        let conn = TcpConnection::accept(config, local, remote, syn, now, iss)?;
        Ok(TcpSocket::with_conn(conn, s, r))
    }

    /// See [`TcpConnection::syn_ack_sent_statelessly`] (SYN cookies).
    pub fn syn_ack_sent_statelessly(&mut self, now: Instant, tsecr: Option<u32>) {
        self.conn.syn_ack_sent_statelessly(now, tsecr);
    }

    /// Queues bytes for sending; returns how many fit in the send buffer. Nothing is
    /// accepted after `close()` or once the connection cannot send.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.conn.is_closing() {
            return 0;
        }
        match self.conn.state() {
            TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::Established
            | TcpState::CloseWait => self.send.write(data),
            TcpState::Closed
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => 0,
        }
    }

    /// Reads in-order received bytes.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        self.recv.read(buf)
    }

    /// Bytes ready to read.
    pub fn readable(&self) -> usize {
        self.recv.readable()
    }

    /// Free space in the send buffer.
    pub fn send_capacity(&self) -> usize {
        self.send.free_space()
    }

    /// Bytes written and not yet acknowledged.
    pub fn send_queue(&self) -> usize {
        self.send.len()
    }

    pub fn close(&mut self) {
        self.conn.close();
    }

    pub fn abort(&mut self) {
        self.conn.abort();
    }

    pub fn handle_segment(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Result<(), TcpDrop> {
        let mut owner = Owner {
            send: &self.send,
            recv: &mut self.recv,
        };
        let result = self.conn.handle_segment(now, seg, &mut owner);
        // Plain TCP frees sent data on the subflow ACK (MPTCP waits for the data ACK).
        self.send.ack_until(self.conn.acked_offset());
        result
    }

    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit<'_>> {
        let mut owner = Owner {
            send: &self.send,
            recv: &mut self.recv,
        };
        self.conn.poll_transmit(now, &mut owner)
    }

    pub fn poll_timeout(&self) -> Option<Instant> {
        self.conn.poll_timeout()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        self.conn.handle_timeout(now);
    }

    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        self.conn.poll_event()
    }

    pub fn state(&self) -> TcpState {
        self.conn.state()
    }

    pub fn stats(&self) -> TcpStats {
        self.conn.stats()
    }

    /// The engine, for inspection.
    pub fn connection(&self) -> &TcpConnection {
        &self.conn
    }

    /// The engine, for settings such as sibling snapshots.
    pub fn connection_mut(&mut self) -> &mut TcpConnection {
        &mut self.conn
    }
}
