//! The data owner: who holds the bytes a connection sends and receives.
//!
//! The TCP engine never stores payload. It tracks sequence ranges and asks its owner for
//! bytes when it builds a segment, and hands received payload to the owner at once
//! (DESIGN.md: the connection owns the send buffer and the reassembly). For plain TCP
//! the owner is a send buffer and a reassembly buffer used 1:1
//! ([`super::socket::TcpSocket`]); for MPTCP it is the connection, which maps each
//! subflow offset to a data sequence number.
//!
//! All offsets are subflow stream offsets: 0 is the first data byte after the SYN.

use crate::wire::tcp::TcpRepr;

/// Where the engine gets the bytes it sends. `'a` is the lifetime of the underlying
/// buffer, so a segment borrowing its payload can outlive the call that built it.
pub trait SendSource<'a> {
    /// How many bytes, from offset `from` on (the engine's next new byte), the owner
    /// can send now. For MPTCP: what the scheduler would hand this subflow.
    fn available(&self, from: u64) -> u64;

    /// The bytes at `offset`, at most `max_len`: a retransmission (below the engine's
    /// next new byte) or new data (at it; for MPTCP this commits a mapping). May return
    /// fewer bytes than asked, e.g. at a ring wrap or a mapping boundary, but at least
    /// one when `offset` lies within data previously offered.
    fn bytes(&mut self, offset: u64, max_len: usize) -> &'a [u8];

    /// TCP option bytes the owner will add to each segment (MPTCP's DSS), so the engine
    /// shortens payloads to keep segments within the MSS.
    fn option_space(&self) -> usize {
        0
    }

    /// TCP option bytes the owner will add to a segment without payload (a pure ACK,
    /// a FIN alone): MPTCP's DSS is smaller there (no mapping), which leaves room for
    /// SACK blocks. Defaults to [`SendSource::option_space`].
    fn control_option_space(&self) -> usize {
        self.option_space()
    }

    /// Nothing will follow what the owner offers now (its application closed): a
    /// small final segment need not wait for Nagle's ACK, as one carrying our FIN
    /// never does (RFC 9293 §3.7.4). An MPTCP connection's end of stream is a
    /// DATA_FIN, not a subflow FIN, so the engine cannot see it by itself.
    fn closing(&self) -> bool {
        false
    }
}

/// Where the engine puts the bytes it receives.
pub trait ReceiveSink {
    /// Stores payload arriving at `offset` (in order or not; never before RCV.NXT) and
    /// returns how many bytes from its start were stored or were already held. Bytes
    /// not accepted are not acknowledged, and the peer sends them again.
    fn deliver(&mut self, offset: u64, payload: &[u8]) -> usize;

    /// Bytes the owner can take from `rcv_nxt` on (the receive window to advertise).
    fn receive_window(&self, rcv_nxt: u64) -> u64;

    /// Every segment that passed the acceptability checks (SYN-ACK included), before
    /// its payload is delivered: the MPTCP layer reads its options here.
    fn on_segment(&mut self, segment: &TcpRepr<'_>) {
        let _ = segment;
    }

    /// The peer's FIN arrived in order, after all data up to `offset`.
    fn on_fin(&mut self, offset: u64) {
        let _ = offset;
    }
}

/// A source with nothing to send and a sink that takes nothing: for handshakes, tests,
/// and connections that only receive or only send.
#[derive(Clone, Copy, Debug, Default)]
pub struct NoData;

impl<'a> SendSource<'a> for NoData {
    fn available(&self, _from: u64) -> u64 {
        0
    }

    fn bytes(&mut self, _offset: u64, _max_len: usize) -> &'a [u8] {
        &[]
    }
}

impl ReceiveSink for NoData {
    fn deliver(&mut self, _offset: u64, _payload: &[u8]) -> usize {
        0
    }

    fn receive_window(&self, _rcv_nxt: u64) -> u64 {
        0
    }
}
