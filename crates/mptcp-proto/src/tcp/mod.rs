//! One TCP connection (RFC 9293), sans-IO: the engine under every MPTCP subflow and
//! under plain TCP.
//!
//! The engine owns sequence numbers, windows, options, timers, RTT estimation, loss
//! recovery and congestion control. It does **not** own payload: the data owner
//! ([`SendSource`], [`ReceiveSink`]) is passed into each call that needs bytes, so the
//! MPTCP connection can keep one send buffer and one reassembly for all subflows. It
//! must not touch IP addresses beyond the ISN hash, MPTCP options, or buffers.
//!
//! Driving it: feed parsed segments to [`TcpConnection::handle_segment`], call
//! [`TcpConnection::poll_transmit`] until it returns `None`, sleep until
//! [`TcpConnection::poll_timeout`] and call [`TcpConnection::handle_timeout`], and read
//! [`TcpConnection::poll_event`]. [`TcpSocket`] bundles the engine with buffers for
//! plain TCP.
//!
//! Left out of RFC 9293 on purpose: urgent data (RFC 6093 deprecates it; URG is
//! ignored), data carried on SYN segments (dropped and left to be retransmitted; TFO is
//! not supported), the LISTEN state (the endpoint owns listeners and calls
//! [`TcpConnection::accept`]), IP security/precedence checks, and path MTU discovery.

mod config;
mod input;
mod isn;
mod output;
mod owner;
mod pacing;
mod recovery;
mod rtt;
mod sack;
mod sent;
mod socket;
mod stateless;
mod timers;

use core::net::SocketAddr;
use std::collections::VecDeque;

pub use config::{KeepaliveConfig, TcpConfig};
pub use isn::IsnGenerator;
pub use output::{Transmit, reset_for};
pub use owner::{NoData, ReceiveSink, SendSource};
pub use pacing::Pacing;
pub use sack::{BYTES_PER_RANGE, MIN_RANGES, RangeSet, range_limit};
pub use socket::TcpSocket;

use crate::cc::{CongestionControl, SubflowSnapshot, SubflowsSnapshot};
use crate::seq::SeqNum;
use crate::time::{Duration, Instant};
use crate::wire::tcp::TcpRepr;

use pacing::Pacer;
use recovery::{Rack, Recovery, TlpProbe};
use rtt::RttEstimator;
use sack::ReceiverSack;
use sent::SentQueue;

/// RFC 9293 §3.3.2 connection states (LISTEN lives in the endpoint).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpState {
    Closed,
    SynSent,
    SynReceived,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl TcpState {
    /// States after the handshake (RFC 9293 "synchronized states").
    pub fn is_synchronized(self) -> bool {
        match self {
            TcpState::Closed | TcpState::SynSent | TcpState::SynReceived => false,
            TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => true,
        }
    }

    /// States in which the peer may still send data.
    fn can_receive_data(self) -> bool {
        match self {
            TcpState::Established | TcpState::FinWait1 | TcpState::FinWait2 => true,
            TcpState::Closed
            | TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => false,
        }
    }

    /// States in which we may still send data.
    fn can_send_data(self) -> bool {
        match self {
            TcpState::Established | TcpState::CloseWait => true,
            // After close() the data written before it still goes out.
            TcpState::FinWait1 | TcpState::LastAck | TcpState::Closing => true,
            TcpState::Closed
            | TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::FinWait2
            | TcpState::TimeWait => false,
        }
    }
}

/// What the connection reports to its user.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TcpEvent {
    /// The handshake completed.
    Connected,
    /// New in-order data was delivered to the owner.
    Readable,
    /// Sent data was acknowledged: send buffer space was freed.
    Writable,
    /// The peer's FIN arrived: no more data will come.
    PeerClosed,
    /// The peer reset the connection.
    Reset,
    /// Retransmissions or keepalives went unanswered for too long.
    TimedOut,
    /// The connection is finished; the engine may be dropped.
    Closed,
}

/// Why a segment was dropped. A drop may still have queued a response (an ACK, a
/// challenge ACK or a RST) for [`TcpConnection::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpDrop {
    #[error("impossible flag combination {flags:#04x}")]
    InvalidFlags { flags: u8 },
    #[error("connection is closed")]
    Closed,
    #[error("segment seq {seq} len {len} outside the receive window")]
    OutOfWindow { seq: u32, len: u32 },
    #[error("PAWS: tsval {tsval} older than ts_recent {ts_recent}")]
    Paws { tsval: u32, ts_recent: u32 },
    #[error("ack {ack} outside the acceptable range")]
    UnacceptableAck { ack: u32 },
    #[error("segment without ACK in state {state:?}")]
    NoAck { state: TcpState },
    #[error("RST seq {seq} in window but not at RCV.NXT: challenge ACK")]
    RstNotExact { seq: u32 },
    #[error("SYN in synchronized state: challenge ACK")]
    UnexpectedSyn,
    #[error("segment not expected in state {state:?}")]
    UnexpectedInState { state: TcpState },
    #[error("receiver could not store the segment at offset {offset}")]
    NoSpace { offset: u64 },
}

/// Counters and gauges for one connection.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TcpStats {
    pub segments_sent: u64,
    pub segments_received: u64,
    pub segments_dropped: u64,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    /// Segments retransmitted, for any reason.
    pub retransmits: u64,
    pub bytes_retransmitted: u64,
    /// Sequence space the peer acknowledged for the first time, cumulatively or by
    /// SACK: what the path delivered (a path in loss recovery still delivers).
    pub bytes_delivered: u64,
    /// Retransmission timer expirations.
    pub rto_count: u64,
    /// Fast recovery episodes entered (dup ACKs, SACK or RACK).
    pub fast_recoveries: u64,
    /// Retransmissions sent during fast recovery.
    pub fast_retransmits: u64,
    /// Tail loss probes sent.
    pub tlp_count: u64,
    /// D-SACK blocks received (spurious retransmissions reported by the peer).
    pub dsack_received: u64,
    /// D-SACK blocks we sent.
    pub dsack_sent: u64,
    pub challenge_acks: u64,
    pub challenge_acks_suppressed: u64,
    pub paws_drops: u64,
    pub zero_window_probes: u64,
    pub keepalive_probes: u64,
    /// Times the pacer held back a segment that the windows allowed.
    pub pacing_waits: u64,
    pub srtt: Option<Duration>,
    pub rttvar: Duration,
    pub min_rtt: Option<Duration>,
    pub rto: Duration,
    pub cwnd: u64,
    pub ssthresh: u64,
    pub bytes_in_flight: u64,
    pub send_mss: u32,
}

/// Pending pure-ACK work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AckState {
    /// Nothing unacknowledged.
    Idle,
    /// Data arrived; acknowledge by the delayed-ACK deadline or with the next segment.
    Delayed,
    /// Send an ACK at once.
    Now,
}

/// One TCP connection's state machine. See the module documentation.
#[derive(Debug)]
pub struct TcpConnection {
    config: TcpConfig,
    local: SocketAddr,
    remote: SocketAddr,
    state: TcpState,

    // ---- send side (offsets: data byte k at k, our FIN after the last data byte) ----
    iss: SeqNum,
    /// Oldest unacknowledged offset.
    snd_una: u64,
    /// Next new offset to send.
    snd_nxt: u64,
    /// Peer's window in bytes (scaled), measured from `snd_una`.
    snd_wnd: u64,
    snd_wl1: SeqNum,
    snd_wl2: SeqNum,
    /// Largest window the peer ever offered (RFC 5961 §5.2 ACK check).
    max_snd_wnd: u64,
    /// Peer's window-scale shift (0 when not negotiated).
    snd_shift: u8,
    /// Effective sender MSS (payload bytes per segment, before our options).
    send_mss: u32,
    /// `close()` was called: a FIN follows the data.
    fin_queued: bool,
    /// Offset of our FIN once sent.
    fin_offset: Option<u64>,
    sent: SentQueue,

    // ---- receive side ----
    irs: SeqNum,
    /// Next offset expected (data byte k at k, the peer's FIN after its last byte).
    rcv_nxt: u64,
    /// Right edge of the window we advertised last (never moves back).
    rcv_adv: u64,
    /// Our window-scale shift (0 when not negotiated).
    rcv_shift: u8,
    rcv_sack: ReceiverSack,
    /// Offset of a FIN that arrived before a hole was filled.
    pending_fin: Option<u64>,
    /// Offset of the peer's FIN once accepted.
    fin_received: Option<u64>,
    /// Bytes received since the last ACK we sent.
    unacked_bytes: u64,
    /// Largest payload received so far: what "full-sized" means for delayed ACKs
    /// (the peer's MSS less its options, as Linux estimates it).
    rcv_mss: u64,
    ack_state: AckState,
    /// RCV.NXT carried by the last ACK we sent (RFC 7323 Last.ACK.sent).
    last_ack_sent: u64,

    // ---- options ----
    /// Window scaling negotiated (both SYNs carried the option).
    ws_ok: bool,
    sack_ok: bool,
    ts_ok: bool,
    ts_recent: u32,
    /// Added to our millisecond clock in TSval (RFC 7323 §5.4: per-connection offset).
    ts_offset: u32,

    // ---- timers (deadlines) ----
    rto_at: Option<Instant>,
    tlp_at: Option<Instant>,
    reorder_at: Option<Instant>,
    delack_at: Option<Instant>,
    persist_at: Option<Instant>,
    keepalive_at: Option<Instant>,
    time_wait_at: Option<Instant>,
    /// The pacer holds data back until then.
    pace_at: Option<Instant>,
    /// Consecutive RTO expirations without progress.
    retries: u32,
    persist_backoff: u32,
    keepalive_probes: u32,
    last_received: Instant,

    // ---- pending output ----
    /// Send (or resend) our SYN / SYN-ACK.
    syn_pending: bool,
    /// First transmission time of our SYN / SYN-ACK (an RTT sample if never resent).
    syn_sent_at: Option<Instant>,
    /// A RST to send: sequence number, and the ACK number when it carries one.
    rst_pending: Option<(SeqNum, Option<SeqNum>)>,
    tlp_pending: bool,
    /// RFC 5681 §3.2 step 2 / RFC 6675 §5 (4.3): the first retransmission of a
    /// recovery episode goes out at once, whatever cwnd and pipe say.
    fast_retransmit_pending: bool,
    persist_probe_pending: bool,
    /// The owner asked for a zero-window probe ([`TcpConnection::request_window_probe`]).
    window_probe_pending: bool,
    keepalive_probe_pending: bool,
    /// Challenge ACK rate limit (RFC 5961 §7): window start and count.
    challenge_window: Instant,
    challenge_count: u32,

    // ---- loss recovery and congestion control ----
    rtt: RttEstimator,
    rack: Rack,
    recovery: Recovery,
    tlp: Option<TlpProbe>,
    dupacks: u32,
    cc: Box<dyn CongestionControl>,
    /// Spreads data segments over the RTT (`TcpConfig::pacing`); `None`: unpaced.
    pacer: Option<Pacer>,
    /// The last send opportunity was limited by something other than the congestion
    /// window (no data to send, or the peer's receive window): cwnd must not grow on
    /// the ACKs that follow (RFC 7661).
    app_limited: bool,
    siblings: Vec<SubflowSnapshot>,
    own_index: usize,
    bytes_since_last_loss: u64,
    bytes_between_last_losses: u64,
    loss_events: u64,
    is_backup: bool,

    events: VecDeque<TcpEvent>,
    stats: TcpStats,
}

/// Events held at most; repeated Readable/Writable coalesce, so this is never reached
/// in practice.
const MAX_EVENTS: usize = 16;

/// Smallest sender MSS accepted from a peer (RFC 9293 §3.7.1 lets it be tiny; a floor
/// keeps the per-byte overhead and the segment count bounded).
const MIN_MSS: u32 = 64;

/// Default MSS when the peer sends none (RFC 9293 §3.7.1: 536 for IPv4).
const DEFAULT_MSS: u32 = 536;

impl TcpConnection {
    fn new(
        config: TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        iss: SeqNum,
        state: TcpState,
    ) -> Self {
        let mss = u32::from(config.mss).max(MIN_MSS);
        let cc = config.congestion_control.build(mss, config.initial_window);
        let rtt = RttEstimator::new(config.initial_rto, config.rto_min, config.rto_max);
        TcpConnection {
            local,
            remote,
            state,
            iss,
            snd_una: 0,
            snd_nxt: 0,
            snd_wnd: 0,
            snd_wl1: SeqNum(0),
            snd_wl2: SeqNum(0),
            max_snd_wnd: 0,
            snd_shift: 0,
            send_mss: mss,
            fin_queued: false,
            fin_offset: None,
            sent: SentQueue::default(),
            irs: SeqNum(0),
            rcv_nxt: 0,
            rcv_adv: 0,
            rcv_shift: 0,
            rcv_sack: ReceiverSack::with_limit(sack::range_limit(config.recv_buffer)),
            pending_fin: None,
            fin_received: None,
            unacked_bytes: 0,
            rcv_mss: 0,
            ack_state: AckState::Idle,
            last_ack_sent: 0,
            ws_ok: false,
            sack_ok: false,
            ts_ok: false,
            ts_recent: 0,
            ts_offset: stateless::ts_offset_for(iss),
            rto_at: None,
            tlp_at: None,
            reorder_at: None,
            delack_at: None,
            persist_at: None,
            keepalive_at: None,
            time_wait_at: None,
            pace_at: None,
            retries: 0,
            persist_backoff: 0,
            keepalive_probes: 0,
            last_received: now,
            syn_pending: true,
            syn_sent_at: None,
            rst_pending: None,
            tlp_pending: false,
            fast_retransmit_pending: false,
            persist_probe_pending: false,
            window_probe_pending: false,
            keepalive_probe_pending: false,
            challenge_window: now,
            challenge_count: 0,
            rtt,
            rack: Rack::default(),
            recovery: Recovery::Open,
            tlp: None,
            dupacks: 0,
            cc,
            pacer: config.pacing.map(Pacer::new),
            app_limited: false,
            siblings: Vec::new(),
            own_index: 0,
            bytes_since_last_loss: 0,
            bytes_between_last_losses: 0,
            loss_events: 0,
            is_backup: false,
            events: VecDeque::new(),
            stats: TcpStats::default(),
            config,
        }
    }

    /// Active open (RFC 9293 §3.10.1): the SYN goes out with the next `poll_transmit`.
    /// `iss` comes from an [`IsnGenerator`].
    pub fn connect(
        config: TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        now: Instant,
        iss: SeqNum,
    ) -> Self {
        let mut conn = TcpConnection::new(config, local, remote, now, iss, TcpState::SynSent);
        conn.rcv_shift = conn.config.our_window_shift();
        conn
    }

    /// Passive open: a connection in SYN-RECEIVED for the peer's `syn` (which the
    /// endpoint's listener demultiplexed). The SYN-ACK goes out with the next
    /// `poll_transmit`.
    pub fn accept(
        config: TcpConfig,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        now: Instant,
        iss: SeqNum,
    ) -> Result<Self, TcpDrop> {
        let f = syn.flags;
        if !f.syn() || f.ack() || f.rst() || f.fin() {
            return Err(TcpDrop::InvalidFlags { flags: f.0 });
        }
        let mut conn = TcpConnection::new(config, local, remote, now, iss, TcpState::SynReceived);
        conn.irs = syn.seq;
        conn.negotiate(syn);
        conn.snd_wnd = u64::from(syn.window);
        conn.max_snd_wnd = conn.snd_wnd;
        conn.snd_wl1 = syn.seq;
        if conn.ts_ok
            && let Some(ts) = syn.options.timestamps
        {
            conn.ts_recent = ts.tsval;
        }
        Ok(conn)
    }

    /// Applies the options of the peer's SYN (or SYN-ACK): RFC 7323 §2.2 / §3.2 and
    /// RFC 2018 §2 use an option only when both sides offered it.
    fn negotiate(&mut self, syn: &TcpRepr<'_>) {
        let o = &syn.options;
        let peer_mss = o.mss.map_or(DEFAULT_MSS, u32::from);
        self.send_mss = peer_mss.min(u32::from(self.config.mss)).max(MIN_MSS);
        self.cc.set_mss(self.send_mss);
        match o.window_scale {
            Some(shift) => {
                self.ws_ok = true;
                self.snd_shift = shift.min(config::MAX_WINDOW_SHIFT);
                self.rcv_shift = self.config.our_window_shift();
            }
            None => {
                self.ws_ok = false;
                self.snd_shift = 0;
                self.rcv_shift = 0;
            }
        }
        self.sack_ok = self.config.sack && o.sack_permitted;
        self.ts_ok = self.config.timestamps && o.timestamps.is_some();
    }

    /// Start an orderly close (RFC 9293 §3.10.4): a FIN follows the data already
    /// available from the owner. The owner must not offer more data afterwards.
    pub fn close(&mut self) {
        match self.state {
            // RFC 9293 §3.10.4: in SYN-RECEIVED the FIN waits for the handshake. In
            // SYN-SENT the RFC deletes the connection; we let data written before the
            // close still go out (as a queued SEND would), and `abort` cancels.
            TcpState::SynSent | TcpState::SynReceived => self.fin_queued = true,
            TcpState::Established => {
                self.fin_queued = true;
                self.set_state(TcpState::FinWait1);
            }
            TcpState::CloseWait => {
                self.fin_queued = true;
                self.set_state(TcpState::LastAck);
            }
            TcpState::Closed
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => {}
        }
    }

    /// Abort (RFC 9293 §3.10.5): send a RST (in synchronized states) and close at once.
    pub fn abort(&mut self) {
        match self.state {
            TcpState::Closed | TcpState::TimeWait => {}
            TcpState::SynSent => {}
            TcpState::SynReceived
            | TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck => {
                self.rst_pending = Some((self.snd_seq(self.snd_nxt_max()), None));
            }
        }
        self.enter_closed(None);
    }

    pub fn state(&self) -> TcpState {
        self.state
    }

    /// Sends an ACK with the next `poll_transmit` (in synchronized states), even with
    /// nothing new to acknowledge: the MPTCP layer uses it to carry connection-level
    /// signals (the MP_JOIN fourth ACK, a DATA_FIN, a data ACK, ADD_ADDR).
    pub fn request_ack(&mut self) {
        if self.state.is_synchronized() {
            self.ack_state = AckState::Now;
        }
    }

    /// The retransmission timeout without backoff (RFC 6298: SRTT + 4 RTTVAR within
    /// the configured bounds): what this path's round trip suggests, whatever its
    /// recent losses.
    pub fn base_rto(&self) -> Duration {
        self.rtt.base_rto()
    }

    /// When the last acceptable segment arrived (the connection's creation before any).
    pub fn last_received(&self) -> Instant {
        self.last_received
    }

    /// The owner rewrote the window field of the segment this engine just built, to
    /// `field` (scaled by our shift): MPTCP puts the connection-level window on every
    /// subflow (RFC 8684 §3.3.4), which can offer more than this engine's receiver
    /// silly-window avoidance would. What went on the wire is what the peer may send:
    /// segments up to it must be acceptable, or data sent into the advertised window
    /// is dropped, retransmitted on RTOs that count against a live path, and never
    /// acknowledged until the window grows past it.
    pub fn note_window_field(&mut self, field: u16) {
        let offered = u64::from(field) << self.rcv_shift;
        self.rcv_adv = self.rcv_adv.max(self.rcv_nxt + offered);
    }

    /// Sends one zero-window probe with the next `poll_transmit` (in synchronized
    /// states): the RFC 9293 §3.8.6.1 form the persist timer uses, SEG.SEQ = SND.UNA - 1
    /// and no data, which the peer must answer with an ACK carrying its current window.
    /// For an owner that knows of a closed window this engine cannot see: MPTCP's
    /// connection-level window, which blocks data before it reaches any subflow.
    pub fn request_window_probe(&mut self) {
        if self.state.is_synchronized() {
            self.window_probe_pending = true;
        }
    }

    pub fn local(&self) -> SocketAddr {
        self.local
    }

    pub fn remote(&self) -> SocketAddr {
        self.remote
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<TcpEvent> {
        self.events.pop_front()
    }

    /// Data offset up to which everything we sent is acknowledged (the plain socket
    /// frees its send buffer up to here).
    pub fn acked_offset(&self) -> u64 {
        match self.fin_offset {
            Some(fin) => self.snd_una.min(fin),
            None => self.snd_una,
        }
    }

    /// Data offset of the next byte never sent.
    pub fn sent_offset(&self) -> u64 {
        match self.fin_offset {
            Some(fin) => self.snd_nxt.min(fin),
            None => self.snd_nxt,
        }
    }

    /// Data offset up to which the peer's data arrived in order (RCV.NXT).
    pub fn received_offset(&self) -> u64 {
        match self.fin_received {
            Some(fin) => fin,
            None => self.rcv_nxt,
        }
    }

    /// Whether the peer's FIN arrived.
    pub fn peer_closed(&self) -> bool {
        self.fin_received.is_some()
    }

    /// Whether `close()` was called.
    pub fn is_closing(&self) -> bool {
        self.fin_queued
    }

    /// Initial send and receive sequence numbers.
    pub fn iss(&self) -> SeqNum {
        self.iss
    }

    pub fn irs(&self) -> SeqNum {
        self.irs
    }

    /// Whether SACK and timestamps were negotiated.
    pub fn sack_enabled(&self) -> bool {
        self.sack_ok
    }

    pub fn timestamps_enabled(&self) -> bool {
        self.ts_ok
    }

    /// Window-scale shifts in use: (ours, the peer's).
    pub fn window_shifts(&self) -> (u8, u8) {
        (self.rcv_shift, self.snd_shift)
    }

    /// The peer's current send window in bytes.
    pub fn send_window(&self) -> u64 {
        self.snd_wnd
    }

    pub fn congestion_control(&self) -> &dyn CongestionControl {
        self.cc.as_ref()
    }

    /// Turns pacing on (with these settings) or off for this connection from now on,
    /// whatever the config said: an MPTCP connection can pace one subflow and not
    /// another.
    pub fn set_pacing(&mut self, pacing: Option<Pacing>) {
        if self.pacer.as_ref().map(Pacer::config) != pacing {
            self.pacer = pacing.map(Pacer::new);
            self.pace_at = None;
        }
    }

    /// The pacing settings in use, if pacing is on.
    pub fn pacing(&self) -> Option<Pacing> {
        self.pacer.as_ref().map(Pacer::config)
    }

    /// Marks this subflow as a backup (for coupled congestion control snapshots).
    pub fn set_backup(&mut self, backup: bool) {
        self.is_backup = backup;
    }

    /// Gives coupled congestion control a view of the sibling subflows: `subflows`
    /// holds every subflow's snapshot and `own_index` this one's (refreshed with live
    /// values at each congestion-control call). Copied into a reused buffer.
    pub fn set_sibling_snapshots(&mut self, own_index: usize, subflows: &[SubflowSnapshot]) {
        self.siblings.clear();
        self.siblings.extend_from_slice(subflows);
        self.own_index = own_index.min(subflows.len());
    }

    /// The connection penalises this subflow (its data blocks the shared receive
    /// window; Raiciu et al., NSDI 2012): congestion control halves the window. Not a
    /// loss event.
    pub fn penalize(&mut self, now: Instant) {
        self.with_snapshot(|cc, _| cc.on_penalty(now));
        tracing::trace!(cwnd = self.cc.window(), "tcp: window penalised");
    }

    /// This subflow as coupled congestion control sees it.
    pub fn snapshot(&self) -> SubflowSnapshot {
        SubflowSnapshot {
            cwnd: self.cc.window(),
            srtt: self.rtt.srtt(),
            mss: self.send_mss,
            bytes_in_flight: self.sent.pipe(),
            bytes_since_last_loss: self.bytes_since_last_loss,
            bytes_between_last_losses: self.bytes_between_last_losses,
            loss_events: self.loss_events,
            is_backup: self.is_backup,
        }
    }

    // Single figures of [`TcpConnection::stats`] for the per-segment paths of the
    // MPTCP layer (scheduler views, timers, path manager): the whole snapshot copies a
    // few hundred bytes and asks the congestion controller and the RTT filters for
    // everything each time.

    /// The current retransmission timeout (RFC 6298), as [`TcpStats::rto`].
    pub fn rto(&self) -> Duration {
        self.rtt.rto()
    }

    /// The smoothed RTT, as [`TcpStats::srtt`].
    pub fn srtt(&self) -> Option<Duration> {
        self.rtt.srtt()
    }

    /// The RTT variation, as [`TcpStats::rttvar`].
    pub fn rttvar(&self) -> Duration {
        self.rtt.rttvar()
    }

    /// Bytes in the network by RFC 6675's pipe estimate, as [`TcpStats::bytes_in_flight`].
    pub fn bytes_in_flight(&self) -> u64 {
        self.sent.pipe()
    }

    /// The congestion window in bytes, as [`TcpStats::cwnd`].
    pub fn cwnd(&self) -> u64 {
        self.cc.window()
    }

    /// The MSS the sender uses, as [`TcpStats::send_mss`].
    pub fn send_mss(&self) -> u32 {
        self.send_mss
    }

    /// Retransmission timeouts so far, as [`TcpStats::rto_count`].
    pub fn rto_count(&self) -> u64 {
        self.stats.rto_count
    }

    /// Bytes the peer acknowledged so far, as [`TcpStats::bytes_delivered`].
    pub fn bytes_delivered(&self) -> u64 {
        self.stats.bytes_delivered
    }

    pub fn stats(&self) -> TcpStats {
        let mut s = self.stats;
        s.srtt = self.rtt.srtt();
        s.rttvar = self.rtt.rttvar();
        s.min_rtt = self.rtt.min_rtt();
        s.rto = self.rtt.rto();
        s.cwnd = self.cc.window();
        s.ssthresh = self.cc.ssthresh();
        s.bytes_in_flight = self.sent.pipe();
        s.send_mss = self.send_mss;
        s
    }

    /// Bookkeeping entries held for segments in flight (bounded by the window).
    pub fn bookkeeping_len(&self) -> usize {
        self.sent.bookkeeping_len()
    }

    // ---- helpers shared by input, output and timers ----

    /// Sequence number of send offset `offset`.
    fn snd_seq(&self, offset: u64) -> SeqNum {
        // Truncating to 32 bits is the intended modular mapping.
        self.iss + 1 + offset as u32
    }

    /// Sequence number of receive offset `offset`.
    fn rcv_seq(&self, offset: u64) -> SeqNum {
        self.irs + 1 + offset as u32
    }

    /// Send offset of an acknowledgment number, as a signed value (-1 = our SYN only).
    fn ack_offset(&self, ack: SeqNum) -> i64 {
        self.snd_una as i64 + i64::from(ack.diff(self.snd_seq(self.snd_una)))
    }

    /// Receive offset of a sequence number, signed (-1 = the peer's SYN).
    fn seq_offset(&self, seq: SeqNum) -> i64 {
        self.rcv_nxt as i64 + i64::from(seq.diff(self.rcv_seq(self.rcv_nxt)))
    }

    /// Highest offset sent plus one (SND.MAX), FIN included.
    fn snd_nxt_max(&self) -> u64 {
        self.sent
            .back()
            .map_or(self.snd_nxt, |s| s.end.max(self.snd_nxt))
    }

    /// Whether our SYN has been acknowledged.
    fn syn_acked(&self) -> bool {
        match self.state {
            TcpState::Closed | TcpState::SynSent | TcpState::SynReceived => false,
            TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => true,
        }
    }

    fn our_fin_acked(&self) -> bool {
        self.fin_offset.is_some_and(|f| self.snd_una > f)
    }

    fn push_event(&mut self, event: TcpEvent) {
        let coalesces = match event {
            TcpEvent::Readable | TcpEvent::Writable => true,
            TcpEvent::Connected
            | TcpEvent::PeerClosed
            | TcpEvent::Reset
            | TcpEvent::TimedOut
            | TcpEvent::Closed => false,
        };
        if coalesces && self.events.contains(&event) {
            return;
        }
        if self.events.len() >= MAX_EVENTS {
            // Drop the oldest coalescable event to make room; never a terminal one.
            if let Some(i) = self
                .events
                .iter()
                .position(|e| matches!(e, TcpEvent::Readable | TcpEvent::Writable))
            {
                self.events.remove(i);
            } else {
                return;
            }
        }
        self.events.push_back(event);
    }

    fn set_state(&mut self, state: TcpState) {
        if self.state != state {
            tracing::debug!(from = ?self.state, to = ?state, "tcp state");
            self.state = state;
        }
    }

    /// Enters CLOSED, reporting `reason` (Reset / TimedOut) first when given.
    fn enter_closed(&mut self, reason: Option<TcpEvent>) {
        if self.state == TcpState::Closed {
            return;
        }
        if let Some(reason) = reason {
            self.push_event(reason);
        }
        self.set_state(TcpState::Closed);
        self.rto_at = None;
        self.tlp_at = None;
        self.reorder_at = None;
        self.delack_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.time_wait_at = None;
        self.pace_at = None;
        self.syn_pending = false;
        self.tlp_pending = false;
        self.persist_probe_pending = false;
        self.window_probe_pending = false;
        self.keepalive_probe_pending = false;
        self.ack_state = AckState::Idle;
        self.push_event(TcpEvent::Closed);
    }

    fn enter_time_wait(&mut self, now: Instant) {
        self.set_state(TcpState::TimeWait);
        self.rto_at = None;
        self.tlp_at = None;
        self.reorder_at = None;
        self.persist_at = None;
        self.keepalive_at = None;
        self.pace_at = None;
        self.time_wait_at = Some(now + self.config.time_wait);
    }

    /// Queue a challenge ACK if the RFC 5961 §7 rate limit allows.
    fn challenge_ack(&mut self, now: Instant) {
        if now.saturating_since(self.challenge_window) >= self.config.challenge_ack_interval {
            self.challenge_window = now;
            self.challenge_count = 0;
        }
        if self.challenge_count < self.config.challenge_ack_limit {
            self.challenge_count += 1;
            self.stats.challenge_acks += 1;
            self.ack_state = AckState::Now;
        } else {
            self.stats.challenge_acks_suppressed += 1;
        }
    }

    /// Snapshot of all subflows for a congestion-control call, with this one's entry
    /// refreshed.
    fn with_snapshot<R>(
        &mut self,
        f: impl FnOnce(&mut dyn CongestionControl, &SubflowsSnapshot<'_>) -> R,
    ) -> R {
        let own = self.snapshot();
        if self.siblings.is_empty() {
            let snap = SubflowsSnapshot::single(&own);
            f(self.cc.as_mut(), &snap)
        } else {
            if let Some(slot) = self.siblings.get_mut(self.own_index) {
                *slot = own;
            }
            let snap = SubflowsSnapshot {
                own: self.own_index,
                subflows: &self.siblings,
            };
            f(self.cc.as_mut(), &snap)
        }
    }

    /// Bytes in flight for sending decisions. Without SACK, each duplicate ACK in fast
    /// recovery means a segment left the network (RFC 5681 §3.2's window inflation).
    fn effective_pipe(&self) -> u64 {
        let pipe = self.sent.pipe();
        match self.recovery {
            Recovery::Fast { .. } if !self.sack_ok => {
                pipe.saturating_sub(u64::from(self.dupacks) * u64::from(self.send_mss))
            }
            Recovery::Open | Recovery::Fast { .. } | Recovery::Timeout { .. } => pipe,
        }
    }

    /// Our TSval for a segment sent at `now` (a millisecond clock, RFC 7323 §5.4).
    fn tsval(&self, now: Instant) -> u32 {
        (now.total_millis() as u32).wrapping_add(self.ts_offset)
    }
}
