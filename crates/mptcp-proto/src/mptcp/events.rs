//! What a connection reports to its user, and why subflows and connections end.

use core::net::SocketAddr;

use crate::mptcp::SubflowId;
use crate::wire::mptcp::{AddrId, TcpRstReason};

/// An event of one MPTCP connection, drained with
/// [`super::MptcpConnection::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MptcpEvent {
    /// The connection is established (MPTCP, or plain TCP after a fallback): the
    /// application may read and write.
    Connected,
    /// New in-order data can be read.
    Readable,
    /// Send-buffer space was freed by a data ACK.
    Writable,
    /// The peer closed its sending side (DATA_FIN, or FIN after a fallback): reads
    /// return what is left, then end of stream.
    PeerClosed,
    /// A subflow finished its handshake and may carry data.
    SubflowUp {
        id: SubflowId,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    },
    /// A subflow is gone.
    SubflowDown {
        id: SubflowId,
        local: SocketAddr,
        remote: SocketAddr,
        reason: SubflowDownReason,
    },
    /// The peer announced an address (a valid ADD_ADDR).
    AddressAnnounced { id: AddrId, addr: SocketAddr },
    /// The peer withdrew an address (REMOVE_ADDR).
    AddressRemoved { id: AddrId },
    /// The connection fell back to plain TCP on its one subflow (RFC 8684 §3.7).
    Fallback { reason: FallbackReason },
    /// The connection is finished; nothing more will happen. Emitted once, last.
    Closed { reason: CloseReason },
}

/// Why a subflow ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SubflowDownReason {
    /// Orderly close (both FINs).
    Closed,
    /// The peer reset it; `reason` is its MP_TCPRST reason, if it sent one.
    Reset { reason: Option<TcpRstReason> },
    /// Retransmissions went unanswered (RTO storm) or the handshake timed out.
    TimedOut,
    /// We reset it: a protocol error, a failed checksum, or an address removal.
    LocalReset { reason: TcpRstReason },
    /// The MP_JOIN handshake failed (bad or missing HMAC).
    JoinFailed,
    /// Its address was removed (REMOVE_ADDR from the peer or a local address event).
    AddressRemoved,
}

/// Why a connection fell back to plain TCP.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FallbackReason {
    /// The SYN/ACK carried no (usable) MP_CAPABLE.
    NoMpCapableInSynAck,
    /// The ACK completing the handshake did not echo both keys in MP_CAPABLE.
    NoMpCapableInThirdAck,
    /// The peer's first data carried neither DSS nor MP_CAPABLE: a middlebox stripped
    /// the options.
    NoDssOnFirstData,
    /// Our data was acknowledged without a data ACK before MPTCP was confirmed.
    NoDataAck,
    /// A checksum failure with one subflow: MP_FAIL and the infinite mapping.
    ChecksumFailure,
}

/// Why a connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CloseReason {
    /// Both sides closed in order (both DATA_FINs acknowledged).
    Normal,
    /// The peer sent MP_FASTCLOSE (with our key).
    PeerFastClose,
    /// The application aborted (we sent MP_FASTCLOSE).
    Aborted,
    /// The peer reset the (only, or fallen-back) subflow.
    Reset { reason: Option<TcpRstReason> },
    /// The handshake or the data transfer timed out.
    TimedOut,
    /// Every subflow was lost and none came back within the make-after-break time.
    NoSubflows,
}
