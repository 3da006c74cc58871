//! One subflow: a TCP engine plus the little MPTCP state that belongs to that path
//! (its mappings in both directions, its handshake, the signals it still has to
//! carry). It owns no stream bytes: the connection's send buffer and reassembly do.

use core::net::SocketAddr;

use crate::crypto::Nonce;
use crate::mptcp::SubflowId;
use crate::mptcp::events::SubflowDownReason;
use crate::mptcp::mapping::{RxMappings, TxMappings};
use crate::pm::PathKey;
use crate::seq::Dsn;
use crate::tcp::{TcpConnection, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::mptcp::{AddrId, TcpRstReason};

/// How the subflow came to be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SubflowKind {
    /// The first subflow, opened with MP_CAPABLE (RFC 8684 §3.1).
    Initial,
    /// Opened by us with MP_JOIN (§3.2): our nonce, and the peer's once its SYN/ACK
    /// arrived.
    JoinOut {
        nonce: Nonce,
        peer_nonce: Option<Nonce>,
    },
    /// Opened by the peer with MP_JOIN.
    JoinIn { nonce: Nonce, peer_nonce: Nonce },
}

/// Where the subflow stands at the MPTCP level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum MpPhase {
    /// The TCP handshake (and with it MP_CAPABLE / MP_JOIN) is under way.
    Handshake,
    /// MP_JOIN initiator: the SYN/ACK's HMAC was right and our third ACK (full HMAC)
    /// went out; no data until the responder's fourth ACK (§3.2). `rtx_at`: when to
    /// repeat the third ACK.
    AwaitFourthAck { rtx_at: Instant, backoff: u32 },
    /// Carries data.
    Established,
    /// Reset, closed or failed: no more data.
    Dead,
}

/// The MPTCP state of one subflow.
#[derive(Debug)]
pub(crate) struct SubflowMp {
    pub kind: SubflowKind,
    pub phase: MpPhase,
    pub local_id: AddrId,
    pub remote_id: AddrId,
    /// We asked for backup priority (MP_JOIN B flag / MP_PRIO we sent).
    pub backup: bool,
    /// The peer asked us to treat it as backup (its MP_JOIN B flag or MP_PRIO).
    pub peer_backup: bool,
    pub tx: TxMappings,
    pub rx: RxMappings,
    /// A DSS arrived on this subflow.
    pub dss_seen: bool,
    /// MP_TCPRST reason to put on our RST.
    pub reset_reason: Option<TcpRstReason>,
    /// The reason the subflow will be reported down with once it closes.
    pub down_reason: Option<SubflowDownReason>,
    /// The peer's MP_TCPRST reason on its last RST.
    pub peer_rst_reason: Option<TcpRstReason>,
    /// We reset the subflow and its RST has not been polled out yet: it stays until
    /// then.
    pub rst_out: bool,
    /// Abort after the current input is processed (protocol error).
    pub abort: Option<(TcpRstReason, SubflowDownReason)>,
    /// MP_PRIO to send (our backup wish changed).
    pub prio_pending: bool,
    /// MP_FAIL to send (§3.7), with the DSN of the failed mapping.
    pub fail_pending: Option<Dsn>,
    /// An infinite mapping to send on the next segment (§3.7): (subflow offset, DSN).
    pub infinite_pending: Option<(u64, Dsn)>,
    /// Client, initial subflow: when to repeat the keys (MP_CAPABLE on a pure ACK)
    /// while the server has not shown it has them, and how often they were repeated
    /// ([`Subflow::capable_ack_timer`]).
    pub capable_rtx: Option<(Instant, u32)>,
    /// Client, initial subflow: the keys went out on the pure ACK just before the next
    /// DATA_FIN ([`Subflow::keys_before_data_fin`]).
    pub keys_before_fin: bool,
    /// The infinite mapping is in force on this subflow (fallback after MP_FAIL), with
    /// the (subflow offset, connection offset) it started at for sending.
    pub infinite_tx: Option<(u64, u64)>,
    /// DSS checksum of the last mapping sent: (DSN, data-level length, checksum).
    pub checksum_cache: Option<(Dsn, u16, u16)>,
    /// RTO count at the last progress (the peer acknowledged new data, cumulatively
    /// or by SACK).
    pub rto_at_progress: u64,
    /// The engine's delivered-bytes count at the last progress.
    pub delivered_at_progress: u64,
    /// Stale: RTOs without progress; the scheduler avoids it.
    pub stale: bool,
    /// Last progress (new data acknowledged, cumulatively or by SACK), or the subflow had nothing outstanding (the
    /// start of the no-progress failure clock).
    pub progress_at: Instant,
    /// The path manager's name for this subflow (`None`: not tracked, e.g. before the
    /// path manager exists).
    pub path: Option<PathKey>,
    /// Surplus on its address pair: no new data; reset once nothing is outstanding
    /// (see `MptcpConnection::retire_surplus`).
    pub retiring: bool,
    /// SubflowUp was reported.
    pub reported_up: bool,
    /// Payload bytes handed to the connection's reassembly (new or duplicate).
    pub bytes_delivered: u64,
    /// Payload bytes scheduled onto this subflow (reinjections included).
    pub bytes_scheduled: u64,
    pub bytes_reinjected: u64,
    /// One past the highest connection-level offset ever mapped onto this subflow
    /// (a redundant scheduler's lagging subflow catches up from here).
    pub tx_high: u64,
    /// When the connection last halved this subflow's window for blocking the receive
    /// window (opportunistic retransmission's penalty, at most once per RTT).
    pub last_penalty: Option<Instant>,
}

/// One subflow of a connection.
#[derive(Debug)]
pub(crate) struct Subflow {
    pub id: SubflowId,
    pub tcp: TcpConnection,
    pub mp: SubflowMp,
}

impl SubflowMp {
    pub fn new(
        kind: SubflowKind,
        local_id: AddrId,
        remote_id: AddrId,
        backup: bool,
        rx: RxMappings,
        now: Instant,
    ) -> Self {
        SubflowMp {
            kind,
            phase: MpPhase::Handshake,
            local_id,
            remote_id,
            backup,
            peer_backup: false,
            tx: TxMappings::new(),
            rx,
            dss_seen: false,
            reset_reason: None,
            down_reason: None,
            peer_rst_reason: None,
            rst_out: false,
            abort: None,
            prio_pending: false,
            fail_pending: None,
            infinite_pending: None,
            infinite_tx: None,
            capable_rtx: None,
            keys_before_fin: false,
            checksum_cache: None,
            rto_at_progress: 0,
            delivered_at_progress: 0,
            stale: false,
            progress_at: now,
            // The path manager starts with the initial subflow in its table.
            path: matches!(kind, SubflowKind::Initial).then_some(PathKey::INITIAL),
            retiring: false,
            reported_up: false,
            bytes_delivered: 0,
            bytes_scheduled: 0,
            bytes_reinjected: 0,
            tx_high: 0,
            last_penalty: None,
        }
    }

    /// May carry connection data.
    pub fn carries_data(&self) -> bool {
        match self.phase {
            MpPhase::Established => true,
            MpPhase::Handshake | MpPhase::AwaitFourthAck { .. } | MpPhase::Dead => false,
        }
    }
}

impl Subflow {
    pub fn local(&self) -> SocketAddr {
        self.tcp.local()
    }

    pub fn remote(&self) -> SocketAddr {
        self.tcp.remote()
    }

    /// Either side wants it used only as a backup (RFC 8684 §3.3.8).
    pub fn is_backup(&self) -> bool {
        self.mp.backup || self.mp.peer_backup
    }

    /// Can take new data from the scheduler now.
    pub fn schedulable(&self) -> bool {
        self.mp.carries_data()
            && !self.mp.retiring
            && matches!(
                self.tcp.state(),
                TcpState::Established | TcpState::CloseWait
            )
            && !self.tcp.is_closing()
    }

    /// Bytes mapped to the subflow that it has not sent yet.
    pub fn unsent(&self) -> u64 {
        self.mp.tx.end().saturating_sub(self.tcp.sent_offset())
    }

    /// The DSN of the next new byte it would send: its first mapped and unsent byte.
    pub fn next_unsent_dsn(&self) -> Option<Dsn> {
        if self.unsent() == 0 {
            return None;
        }
        let offset = self.tcp.sent_offset();
        self.mp.tx.lookup(offset).map(|m| m.dsn_at(offset))
    }

    /// Bytes the scheduler may still map to it ([`crate::sched::SubflowView::space`]):
    /// the free congestion window, bounded by the peer's window, both net of what is
    /// mapped and unsent.
    pub fn space(&self) -> u64 {
        self.tcp
            .cwnd()
            .saturating_sub(self.scheduled_in_flight())
            .min(self.send_window_left())
    }

    /// In flight as the scheduler counts it: sent and unacknowledged, plus mapped and
    /// not yet sent.
    pub fn scheduled_in_flight(&self) -> u64 {
        self.tcp.bytes_in_flight() + self.unsent()
    }

    /// The peer's window left after everything mapped to the subflow.
    pub fn send_window_left(&self) -> u64 {
        self.tcp.send_window().saturating_sub(self.outstanding())
    }

    /// Bytes mapped to the subflow and not acknowledged by its ACK (sent or not).
    pub fn outstanding(&self) -> u64 {
        self.tcp
            .sent_offset()
            .saturating_sub(self.tcp.acked_offset())
            + self.unsent()
    }

    /// Updates the stale mark from the engine's RTO count (RFC 8684 §3.3.6 leaves the
    /// "potentially failed" heuristic to the implementation), and the no-progress
    /// clock. Returns true when it just became stale.
    pub fn refresh_stale(&mut self, now: Instant, stale_after: u64) -> bool {
        let (delivered, rtos) = (self.tcp.bytes_delivered(), self.tcp.rto_count());
        if self.outstanding() == 0 {
            // Nothing waits for an ACK, so nothing is failing: RTOs counted so far are
            // not evidence against the path. Above all the handshake's: a join whose
            // SYN or SYN/ACK was retransmitted twice would otherwise be stale from its
            // first moment, and a stale subflow gets no data from the scheduler while
            // another can take it, so it never makes the progress that clears the
            // mark (lossy-path, seed 11: a join idle for the whole run).
            self.mp.progress_at = now;
            self.mp.delivered_at_progress = delivered;
            self.mp.rto_at_progress = rtos;
            self.mp.stale = false;
            return false;
        }
        // SACKed data counts: in loss recovery the cumulative ACK stands still while the
        // path keeps delivering, and such a path is not failing.
        if delivered > self.mp.delivered_at_progress {
            self.mp.delivered_at_progress = delivered;
            self.mp.rto_at_progress = rtos;
            self.mp.progress_at = now;
            self.mp.stale = false;
            return false;
        }
        let became =
            !self.mp.stale && rtos.saturating_sub(self.mp.rto_at_progress) >= stale_after.max(1);
        if became {
            self.mp.stale = true;
        }
        became
    }

    /// The client's keys must reach the server (RFC 8684 §3.1): they ride on the third
    /// ACK, which may be lost, and on the first data, of which there may be none (the
    /// server speaks first, or the client closes at once). A server that keeps no state
    /// before the third ACK (SYN cookies) learns of the connection from nothing else,
    /// and one that does cannot take a DATA_FIN without them. So until the server
    /// shows it has them (a data ACK, `waiting` false), a pure ACK with MP_CAPABLE is
    /// repeated after the RTO, doubling, at most [`MAX_CAPABLE_ACK_REPEATS`] times;
    /// the server answers a repeat. Returns whether one is due now (the timer is
    /// re-armed); none while data is outstanding, whose retransmission carries the
    /// keys or a mapping the server answers.
    pub fn capable_ack_timer(&mut self, now: Instant, waiting: bool) -> bool {
        let Some((at, repeats)) = self.mp.capable_rtx else {
            return false;
        };
        if !waiting || repeats >= MAX_CAPABLE_ACK_REPEATS {
            self.mp.capable_rtx = None;
            return false;
        }
        if at > now {
            return false;
        }
        let wait = self.rto().saturating_mul(1 << (repeats + 1));
        self.mp.capable_rtx = Some((now + wait, repeats + 1));
        self.outstanding() == 0
    }

    /// For a pure ACK while our DATA_FIN is due and the server may lack our keys
    /// (client, no data ACK seen yet): whether this ACK carries the keys rather than
    /// the DATA_FIN. MP_CAPABLE and a DSS with a mapping do not fit in one segment's
    /// options together, and a server that lost the third ACK can take the DATA_FIN
    /// only with the keys (RFC 8684 §3.1). So every DATA_FIN transmission goes as two
    /// ACKs, the keys first; the second is requested here.
    pub fn keys_before_data_fin(&mut self) -> bool {
        if self.mp.keys_before_fin {
            self.mp.keys_before_fin = false;
            false
        } else {
            self.mp.keys_before_fin = true;
            self.tcp.request_ack();
            true
        }
    }

    /// When the no-progress limit `limit` declares the subflow failed, if it has data
    /// outstanding. The limit is never shorter than the subflow's own retransmission
    /// timeout without backoff plus one round trip: within that a healthy path may
    /// legitimately show no progress (a tail loss waits for its probe; a lost fast
    /// retransmission waits for the RTO, and the retransmission's ACK one more RTT).
    /// A limit of the bare RTO expired in the same instant as the RTO that would have
    /// repaired the path, and shorter ones declared healthy paths failed over and over
    /// (60 ms on an 80 ms path reset it 30 times in one transfer). Backoff is left out
    /// so that the limit still bounds detection on a dead path whose RTOs keep doubling.
    pub fn no_progress_deadline(&self, limit: Option<Duration>) -> Option<Instant> {
        let limit = limit?;
        let floor = self.tcp.base_rto() + self.tcp.srtt().unwrap_or(Duration::ZERO);
        (self.mp.carries_data() && self.outstanding() > 0)
            .then(|| self.mp.progress_at + limit.max(floor))
    }

    /// Whether the subflow has failed by the path manager's limits: `rtos` consecutive
    /// RTOs without progress, or data outstanding for `no_progress` without the ACK
    /// moving, whichever comes first.
    pub fn failed(
        &self,
        now: Instant,
        rtos: Option<u32>,
        no_progress: Option<Duration>,
    ) -> Option<FailCause> {
        if !self.mp.carries_data() {
            return None;
        }
        let since = self.tcp.rto_count().saturating_sub(self.mp.rto_at_progress);
        if let Some(k) = rtos
            && since >= u64::from(k.max(1))
        {
            return Some(FailCause::Rtos(since));
        }
        match self.no_progress_deadline(no_progress) {
            Some(at) if now >= at => Some(FailCause::NoProgress(
                now.saturating_since(self.mp.progress_at),
            )),
            Some(_) | None => None,
        }
    }

    /// The retransmission timeout the engine would use now (for connection timers).
    pub fn rto(&self) -> Duration {
        self.tcp.rto()
    }
}

/// Repeats of the client's keys on pure ACKs ([`Subflow::capable_ack_timer`]): with
/// the RTO doubling, about half a minute at a 1 s RTO, after which a server that still
/// has not answered is not one that will (it has them and sends nothing, as Linux,
/// which does not answer pure ACKs).
pub(crate) const MAX_CAPABLE_ACK_REPEATS: u32 = 5;

/// Why a subflow was declared failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FailCause {
    /// This many consecutive RTOs without progress.
    Rtos(u64),
    /// Data outstanding this long without new data acknowledged.
    NoProgress(Duration),
}

/// Per-subflow figures a CLI can show.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SubflowStats {
    pub id: SubflowId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub local_id: AddrId,
    pub remote_id: AddrId,
    pub state: TcpState,
    /// Carries data at the MPTCP level.
    pub established: bool,
    pub backup: bool,
    pub stale: bool,
    /// Payload bytes sent (first transmissions).
    pub bytes_sent: u64,
    pub bytes_retransmitted: u64,
    /// Payload bytes received in order at the subflow level.
    pub bytes_received: u64,
    /// Bytes mapped onto this subflow by the scheduler (reinjections included).
    pub bytes_scheduled: u64,
    pub bytes_reinjected: u64,
    pub srtt: Option<Duration>,
    /// Smallest RTT sample so far: the path's propagation delay plus the least
    /// queueing it showed.
    pub min_rtt: Option<Duration>,
    pub rttvar: Duration,
    pub cwnd: u64,
    pub ssthresh: u64,
    pub bytes_in_flight: u64,
    pub rto_count: u64,
    pub mss: u32,
}

impl Subflow {
    pub fn stats(&self) -> SubflowStats {
        let t = self.tcp.stats();
        SubflowStats {
            id: self.id,
            local: self.local(),
            remote: self.remote(),
            local_id: self.mp.local_id,
            remote_id: self.mp.remote_id,
            state: self.tcp.state(),
            established: self.mp.carries_data(),
            backup: self.is_backup(),
            stale: self.mp.stale,
            bytes_sent: t.bytes_sent,
            bytes_retransmitted: t.bytes_retransmitted,
            bytes_received: t.bytes_received,
            bytes_scheduled: self.mp.bytes_scheduled,
            bytes_reinjected: self.mp.bytes_reinjected,
            srtt: t.srtt,
            min_rtt: t.min_rtt,
            rttvar: t.rttvar,
            cwnd: t.cwnd,
            ssthresh: t.ssthresh,
            bytes_in_flight: t.bytes_in_flight,
            rto_count: t.rto_count,
            mss: t.send_mss,
        }
    }
}
