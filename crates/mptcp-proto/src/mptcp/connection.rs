//! The MPTCP connection ("meta" level, RFC 8684 §2): the application's byte stream
//! spread over subflows.
//!
//! Owns the connection-level send buffer and reassembly (DESIGN.md: subflows hold
//! mappings, never bytes), the keys and tokens, the data sequence state, the scheduler,
//! the path manager and the subflows themselves. Segment input lives in `input.rs`,
//! output and the scheduler in `output.rs`, timers in `timers.rs`. It must not touch IP
//! headers, ports or ISNs: the endpoint chooses those and names subflows by 4-tuple.
//!
//! Sans-IO: feed segments with [`MptcpConnection::handle_segment`], drain
//! [`MptcpConnection::poll_transmit`], [`MptcpConnection::poll_event`] and
//! [`MptcpConnection::poll_action`] (subflows the endpoint must open or forget), and
//! wake at [`MptcpConnection::poll_timeout`].

use core::net::{IpAddr, SocketAddr};
use core::ops::Range;
use std::collections::VecDeque;

use rand_core::CryptoRng;

use crate::buffer::{Reassembly, SendBuffer};
use crate::crypto::{LocalKey, MptcpKey, Nonce, Token, TokenSpaceExhausted, generate_key};
use crate::mptcp::SubflowId;
use crate::mptcp::config::MptcpConfig;
use crate::mptcp::data_seq::{DataFinRx, DataFinTx, DataSeq};
use crate::mptcp::events::{CloseReason, FallbackReason, MptcpEvent, SubflowDownReason};
use crate::mptcp::handshake::{SynKind, classify_syn};
use crate::mptcp::mapping::{RxMappings, rx_mapping_limit};
use crate::mptcp::subflow::{MpPhase, Subflow, SubflowKind, SubflowMp, SubflowStats};
use crate::pm::{PathKey, PathManager, PmConfig, PmError};
use crate::sched::Scheduler;
use crate::seq::{Dsn, SeqNum};
use crate::tcp::{Pacing, TcpConfig, TcpConnection};
use crate::time::Instant;
use crate::wire::mptcp::{AddAddr, AddrId, TcpRstReason};
use crate::wire::tcp::TcpRepr;

/// Most subflows a connection holds at once, handshaking ones included: the hard cap
/// behind [`crate::pm::PmConfig::max_subflows`] (Linux: MPTCP_SUBFLOWS_MAX = 8). The
/// scheduler's fixed-size views hold this many.
pub const MAX_SUBFLOWS: usize = crate::sched::MAX_ASSIGNMENTS;

/// Final figures of this many removed subflows are kept for [`ConnStats`] (the most
/// recent ones): a connection that churns paths must not grow without bound.
pub const CLOSED_SUBFLOW_HISTORY: usize = 2 * MAX_SUBFLOWS;

/// Which side opened the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

/// Where the connection stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnMode {
    /// MP_CAPABLE not resolved yet.
    Handshake,
    /// Multipath TCP.
    Mptcp,
    /// Plain TCP on the initial subflow (RFC 8684 §3.7).
    Fallback,
}

/// Something only the endpoint can do for the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConnAction {
    /// Open a subflow with MP_JOIN from `local` to `remote`: pick a port and an ISN,
    /// then call [`MptcpConnection::open_subflow`].
    OpenSubflow {
        local: IpAddr,
        remote: SocketAddr,
        local_id: AddrId,
        remote_id: AddrId,
        backup: bool,
    },
    /// The subflow on this 4-tuple is gone: stop routing segments to it.
    SubflowRemoved {
        id: SubflowId,
        local: SocketAddr,
        remote: SocketAddr,
    },
}

/// Why a peer's MP_JOIN SYN was refused; the endpoint answers with a RST carrying
/// MP_TCPRST with [`JoinRefusal::reason`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefusal {
    #[error("the connection is not (or no longer) MPTCP-established")]
    NotEstablished,
    #[error("the connection already has as many subflows as its path manager allows")]
    TooManySubflows,
    #[error("the segment is not an MP_JOIN SYN")]
    NotAJoin,
    #[error("the MP_JOIN names token {got:?}, ours is {ours:?}")]
    WrongToken { got: Token, ours: Token },
}

impl JoinRefusal {
    pub fn reason(self) -> TcpRstReason {
        match self {
            JoinRefusal::TooManySubflows => TcpRstReason::LACK_OF_RESOURCES,
            JoinRefusal::NotEstablished
            | JoinRefusal::NotAJoin
            | JoinRefusal::WrongToken { .. } => TcpRstReason::MPTCP_ERROR,
        }
    }
}

/// Why `accept` did not create an MPTCP connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AcceptError {
    #[error("the SYN does not ask for MPTCP v1 (plain TCP applies)")]
    NotMpCapable,
    #[error("the SYN was refused by TCP: {0}")]
    Tcp(#[from] crate::tcp::TcpDrop),
    #[error(transparent)]
    Tokens(#[from] TokenSpaceExhausted),
}

/// An option received on a subflow that needs the whole connection; handled after
/// the segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Signal {
    AddAddr(AddAddr),
    Fastclose(MptcpKey),
    RemoveAddr(Vec<AddrId>),
    Fail(Dsn),
}

/// One segment to send on a subflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubflowTransmit<'a> {
    pub subflow: SubflowId,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub segment: TcpRepr<'a>,
    /// A TSO super-segment's cut size ([`crate::tcp::Transmit::gso_size`]); its DSS
    /// mapping covers the whole payload, so every piece may repeat it.
    pub gso_size: Option<u16>,
}

/// Connection-level figures and one entry per live subflow.
#[derive(Clone, Debug, PartialEq)]
pub struct ConnStats {
    pub mode: ConnMode,
    pub role: Role,
    pub local_token: Token,
    pub checksums: bool,
    /// Bytes the application wrote / read.
    pub bytes_written: u64,
    pub bytes_read: u64,
    /// Bytes acknowledged at the data level.
    pub bytes_data_acked: u64,
    /// Byte ranges reinjected onto another subflow.
    pub reinjections: u64,
    /// Bytes received ahead of the next expected data sequence number, which waited
    /// in the reassembly buffer for the bytes before them: reordering across subflows.
    pub out_of_order_bytes: u64,
    /// Bytes sent again on a faster subflow because the receive window was blocked by
    /// a slower one (opportunistic retransmission).
    pub opportunistic_bytes: u64,
    /// Windows halved on slow subflows that blocked the receive window.
    pub penalties: u64,
    /// Connection-level zero-window probes sent: the peer's window blocked data with
    /// nothing outstanding to bring an ACK back.
    pub window_probes: u64,
    pub subflows_opened: u64,
    pub subflows: Vec<SubflowStats>,
    /// The last figures of subflows that are gone (closed, reset, timed out), oldest
    /// first, at most [`CLOSED_SUBFLOW_HISTORY`]: a transfer's per-path totals stay
    /// visible after its subflows closed.
    pub closed_subflows: Vec<SubflowStats>,
}

/// Everything of the connection but the send buffer and the subflows, so that a
/// segment borrowing the send buffer and one subflow can be decorated with the rest.
#[derive(Debug)]
pub(crate) struct Core {
    pub config: MptcpConfig,
    pub role: Role,
    pub local_key: LocalKey,
    pub peer_key: Option<MptcpKey>,
    pub checksums: bool,
    pub mode: ConnMode,
    /// Client: a DSS with a data ACK arrived, so the server has our key and MP_CAPABLE
    /// no longer rides on our segments (RFC 8684 §3.1). Server: the client's key
    /// arrived.
    pub fully_established: bool,
    pub recv: Reassembly,
    pub seq: DataSeq,
    pub pm: Option<PathManager>,
    pub peer_c_flag: bool,
    /// Local addresses to add once established (`connect` with several addresses).
    pub pending_locals: Vec<IpAddr>,
    pub sched: Box<dyn Scheduler>,
    /// Joins the path manager asked for before the client was fully established.
    pub deferred_opens: Vec<ConnAction>,
    /// Path manager keys of joins handed to the endpoint and not yet opened, oldest
    /// first; `open_subflow` takes the first with its address ids.
    pub pending_opens: VecDeque<PathKey>,
    /// Connection offsets to send again on some subflow (reinjection).
    pub reinject: VecDeque<Range<u64>>,
    pub signals: Vec<(SubflowId, Signal)>,
    pub add_addr_out: VecDeque<(AddrId, IpAddr, Option<u16>)>,
    pub echo_out: VecDeque<(AddrId, IpAddr, Option<u16>)>,
    pub remove_out: VecDeque<AddrId>,
    pub events: VecDeque<MptcpEvent>,
    pub actions: VecDeque<ConnAction>,
    pub next_id: u32,
    pub tx_cursor: usize,
    pub connected_reported: bool,
    pub peer_closed_reported: bool,
    pub app_closed: bool,
    /// Subflows were closed after both DATA_FINs.
    pub subflows_closing: bool,
    pub closed: Option<CloseReason>,
    pub closed_reported: bool,
    /// Our RSTs carry MP_FASTCLOSE (the application aborted).
    pub fastclose_out: bool,
    /// DATA_FIN retransmission: (deadline, backoff exponent).
    pub data_fin_rtx: Option<(Instant, u32)>,
    /// Connection-level retransmission (reinjection) timer.
    pub reinject_at: Option<Instant>,
    pub reinject_backoff: u32,
    /// A data ACK advanced since the retransmission timer was armed: when it expires
    /// it starts over instead of reinjecting (restarting it on every ACK would cost a
    /// look at every subflow per ACK).
    pub reinject_progress: bool,
    /// Connection-level zero-window probe (persist) timer (`timers.rs`): when the next
    /// probe goes out while the peer's window blocks data and nothing is outstanding.
    pub window_probe_at: Option<Instant>,
    pub window_probe_backoff: u32,
    /// The probe goes on the first subflow with an id at or above this (rotation).
    pub window_probe_next: u32,
    /// The last probe: its subflow and when it went out (was it answered?).
    pub window_probe_last: Option<(SubflowId, Instant)>,
    pub window_probes: u64,
    /// No subflow left since then (make-after-break).
    pub orphaned_since: Option<Instant>,
    pub bytes_written: u64,
    pub bytes_read: u64,
    pub reinjections: u64,
    pub out_of_order_bytes: u64,
    pub opportunistic_bytes: u64,
    pub penalties: u64,
    pub subflows_opened: u64,
    /// Final figures of removed subflows, at most [`CLOSED_SUBFLOW_HISTORY`].
    pub closed_subflows: VecDeque<SubflowStats>,
    pub data_acked_total: u64,
    /// Reused buffer of subflow snapshots for coupled congestion control.
    pub cc_snapshots: Vec<crate::cc::SubflowSnapshot>,
    /// The segment being processed wants an immediate ACK on its subflow.
    pub ack_now: bool,
    pub readable_pending: bool,
    pub writable_pending: bool,
}

/// One MPTCP connection. See the module documentation.
#[derive(Debug)]
pub struct MptcpConnection {
    pub(crate) send: SendBuffer,
    pub(crate) subflows: Vec<Subflow>,
    pub(crate) core: Core,
}

/// What one connection holds in memory ([`MptcpConnection::memory_use`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryUse {
    /// Live subflows (at most [`MAX_SUBFLOWS`] plus joins being refused).
    pub subflows: usize,
    /// Final figures kept of removed subflows (at most [`CLOSED_SUBFLOW_HISTORY`]).
    pub closed_subflows: usize,
    /// Receive mappings waiting for their bytes, over all subflows.
    pub rx_mappings: usize,
    /// The sum of the subflows' receive-mapping limits.
    pub rx_mapping_limit: usize,
    /// Send mappings the subflows hold (each covers bytes of the send buffer).
    pub tx_mappings: usize,
    /// Bytes in the connection-level reassembly, in order or not.
    pub reassembly_bytes: usize,
    pub reassembly_capacity: usize,
    /// Bytes in the send buffer (written, not yet data-acked).
    pub send_bytes: usize,
    pub send_capacity: usize,
    /// Send-buffer ranges waiting for reinjection.
    pub reinject_ranges: usize,
    /// ADD_ADDR, echoes and REMOVE_ADDR waiting for a segment.
    pub queued_signals: usize,
}

impl Core {
    pub fn push_event(&mut self, event: MptcpEvent) {
        match event {
            MptcpEvent::Readable => {
                if self.readable_pending {
                    return;
                }
                self.readable_pending = true;
            }
            MptcpEvent::Writable => {
                if self.writable_pending {
                    return;
                }
                self.writable_pending = true;
            }
            MptcpEvent::Connected
            | MptcpEvent::PeerClosed
            | MptcpEvent::SubflowUp { .. }
            | MptcpEvent::SubflowDown { .. }
            | MptcpEvent::AddressAnnounced { .. }
            | MptcpEvent::AddressRemoved { .. }
            | MptcpEvent::Fallback { .. }
            | MptcpEvent::Closed { .. } => {}
        }
        self.events.push_back(event);
    }

    /// The peer's key, token and IDSN are known and MPTCP is on.
    pub fn data_level_ready(&self) -> bool {
        self.mode == ConnMode::Mptcp && self.peer_key.is_some()
    }

    /// The reassembly's new in-order end: the data ACK follows it, readers wake.
    pub fn note_received(&mut self) {
        let before = self.seq.data_ack();
        self.seq.update_received(self.recv.contiguous_end());
        if self.recv.readable() > 0 && self.seq.data_ack() != before {
            self.push_event(MptcpEvent::Readable);
        }
        self.check_peer_closed();
    }

    pub fn check_peer_closed(&mut self) {
        if self.peer_closed_reported {
            return;
        }
        let done = match self.mode {
            ConnMode::Mptcp => matches!(self.seq.data_fin_rx(), DataFinRx::Complete { .. }),
            ConnMode::Handshake | ConnMode::Fallback => false,
        };
        if done {
            self.peer_closed_reported = true;
            self.ack_now = true;
            self.push_event(MptcpEvent::PeerClosed);
        }
    }

    pub fn enter_fallback(&mut self, reason: FallbackReason) {
        if self.mode == ConnMode::Fallback {
            return;
        }
        tracing::debug!(?reason, "mptcp: fallback to TCP");
        self.mode = ConnMode::Fallback;
        self.pm = None;
        self.push_event(MptcpEvent::Fallback { reason });
    }

    pub fn alloc_id(&mut self) -> SubflowId {
        let id = SubflowId(self.next_id);
        self.next_id += 1;
        self.subflows_opened += 1;
        id
    }

    /// The path manager settings of our role.
    pub fn pm_config(&self) -> &PmConfig {
        match self.role {
            Role::Client => &self.config.pm,
            Role::Server => &self.config.pm_server,
        }
    }

    /// Creates the path manager once MPTCP is established on the initial subflow.
    pub fn start_pm(&mut self, local: IpAddr, remote: SocketAddr, now: Instant) {
        if self.pm.is_some() {
            return;
        }
        let config = self.pm_config().clone();
        let mut pm = PathManager::new(config, local, remote, self.peer_c_flag);
        for addr in core::mem::take(&mut self.pending_locals) {
            if let Err(err) = pm.add_local_addr(now, addr, None, false) {
                tracing::debug!(%err, %addr, "mptcp: extra local address not added");
            }
        }
        self.pm = Some(pm);
    }
}

impl Core {
    /// A subflow's receive-side mapping table, sized to let the whole connection-level
    /// receive window sit above a hole with one mapping per segment.
    pub(crate) fn new_rx(&self) -> RxMappings {
        RxMappings::with_limit(self.checksums, rx_mapping_limit(self.config.recv_buffer))
    }
}

impl MptcpConnection {
    pub(crate) fn subflow_tcp_config(config: &MptcpConfig) -> TcpConfig {
        let mut tcp = config.tcp.clone();
        // One shared receive window: the subflows advertise the connection's
        // (RFC 8684 §3.3.4), so their window scale must cover it.
        tcp.recv_buffer = config.recv_buffer.max(1);
        tcp
    }

    fn new_core(
        config: MptcpConfig,
        role: Role,
        local_key: LocalKey,
        peer_key: Option<MptcpKey>,
        checksums: bool,
    ) -> (SendBuffer, Core) {
        let peer_idsn = peer_key.map_or(Dsn(0), |k| k.idsn());
        let core = Core {
            role,
            local_key,
            peer_key,
            checksums,
            mode: ConnMode::Handshake,
            fully_established: false,
            recv: Reassembly::new(config.recv_buffer.max(1)),
            seq: DataSeq::new(local_key.idsn, peer_idsn),
            pm: None,
            peer_c_flag: false,
            pending_locals: Vec::new(),
            sched: config.scheduler.build(),
            deferred_opens: Vec::new(),
            pending_opens: VecDeque::new(),
            reinject: VecDeque::new(),
            signals: Vec::new(),
            add_addr_out: VecDeque::new(),
            echo_out: VecDeque::new(),
            remove_out: VecDeque::new(),
            events: VecDeque::new(),
            actions: VecDeque::new(),
            next_id: 0,
            tx_cursor: 0,
            connected_reported: false,
            peer_closed_reported: false,
            app_closed: false,
            subflows_closing: false,
            closed: None,
            closed_reported: false,
            fastclose_out: false,
            data_fin_rtx: None,
            reinject_at: None,
            reinject_backoff: 0,
            reinject_progress: false,
            window_probe_at: None,
            window_probe_backoff: 0,
            window_probe_next: 0,
            window_probe_last: None,
            window_probes: 0,
            orphaned_since: None,
            bytes_written: 0,
            bytes_read: 0,
            reinjections: 0,
            out_of_order_bytes: 0,
            opportunistic_bytes: 0,
            penalties: 0,
            subflows_opened: 0,
            closed_subflows: VecDeque::new(),
            data_acked_total: 0,
            cc_snapshots: Vec::new(),
            ack_now: false,
            readable_pending: false,
            writable_pending: false,
            config,
        };
        (SendBuffer::new(core.config.send_buffer.max(1)), core)
    }

    /// Active open: the initial subflow's SYN (MP_CAPABLE without a key, RFC 8684 §3.1)
    /// goes out with the next `poll_transmit`. `extra_locals` are our other addresses;
    /// they join once MPTCP is established. The key comes from `rng`, its token unused
    /// according to `token_in_use` (the endpoint's token table).
    #[allow(clippy::too_many_arguments)]
    pub fn connect<R: CryptoRng + ?Sized>(
        config: MptcpConfig,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        extra_locals: &[IpAddr],
        iss: SeqNum,
        rng: &mut R,
        token_in_use: impl FnMut(Token) -> bool,
    ) -> Result<Self, TokenSpaceExhausted> {
        let local_key = generate_key(rng, token_in_use)?;
        let checksums = config.checksums;
        let tcp_config = Self::subflow_tcp_config(&config);
        let (send, mut core) = Self::new_core(config, Role::Client, local_key, None, checksums);
        core.pending_locals = extra_locals
            .iter()
            .copied()
            .filter(|a| *a != local.ip())
            .collect();
        let id = core.alloc_id();
        let tcp = TcpConnection::connect(tcp_config, local, remote, now, iss);
        let mp = SubflowMp::new(
            SubflowKind::Initial,
            AddrId(0),
            AddrId(0),
            false,
            core.new_rx(),
            now,
        );
        Ok(MptcpConnection {
            send,
            subflows: vec![Subflow { id, tcp, mp }],
            core,
        })
    }

    /// Passive open for a SYN carrying MP_CAPABLE v1 (RFC 8684 §3.1): answers with a
    /// SYN/ACK carrying our key. [`AcceptError::NotMpCapable`] means the endpoint
    /// should accept the SYN as plain TCP (version 0, H = 0, or no MP_CAPABLE).
    #[allow(clippy::too_many_arguments)]
    pub fn accept<R: CryptoRng + ?Sized>(
        config: MptcpConfig,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        iss: SeqNum,
        rng: &mut R,
        token_in_use: impl FnMut(Token) -> bool,
    ) -> Result<Self, AcceptError> {
        if !matches!(classify_syn(syn), SynKind::Capable { .. }) {
            return Err(AcceptError::NotMpCapable);
        }
        let local_key = generate_key(rng, token_in_use)?;
        Self::accept_with_key(config, now, local, remote, syn, iss, local_key)
    }

    /// [`MptcpConnection::accept`] with our key chosen by the caller: SYN cookies
    /// derive it from the cookie, so the key in a stateless SYN/ACK is the key of the
    /// connection rebuilt at the ACK. The caller has checked that its token is free.
    pub fn accept_with_key(
        config: MptcpConfig,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        iss: SeqNum,
        local_key: LocalKey,
    ) -> Result<Self, AcceptError> {
        let SynKind::Capable { checksums: peer_a } = classify_syn(syn) else {
            return Err(AcceptError::NotMpCapable);
        };
        let tcp_config = Self::subflow_tcp_config(&config);
        let tcp = TcpConnection::accept(tcp_config, local, remote, syn, now, iss)?;
        // RFC 8684 §3.1: checksums are used when either side sets flag A.
        let checksums = config.checksums || peer_a;
        let (send, mut core) = Self::new_core(config, Role::Server, local_key, None, checksums);
        let id = core.alloc_id();
        let mp = SubflowMp::new(
            SubflowKind::Initial,
            AddrId(0),
            AddrId(0),
            false,
            core.new_rx(),
            now,
        );
        Ok(MptcpConnection {
            send,
            subflows: vec![Subflow { id, tcp, mp }],
            core,
        })
    }

    /// Opens a subflow with MP_JOIN (RFC 8684 §3.2) for a
    /// [`ConnAction::OpenSubflow`]; the endpoint chose the port and `iss`.
    #[allow(clippy::too_many_arguments)]
    pub fn open_subflow<R: CryptoRng + ?Sized>(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        local_id: AddrId,
        remote_id: AddrId,
        backup: bool,
        iss: SeqNum,
        rng: &mut R,
    ) -> SubflowId {
        let tcp_config = Self::subflow_tcp_config(&self.core.config);
        let id = self.core.alloc_id();
        let tcp = TcpConnection::connect(tcp_config, local, remote, now, iss);
        let kind = SubflowKind::JoinOut {
            nonce: Nonce::generate(rng),
            peer_nonce: None,
        };
        let mp = SubflowMp::new(kind, local_id, remote_id, backup, self.core.new_rx(), now);
        let mut subflow = Subflow { id, tcp, mp };
        subflow.tcp.set_backup(backup);
        // The path manager's key of this join: the oldest pending one for the pair.
        if let Some(pos) = self
            .core
            .pending_opens
            .iter()
            .position(|k| k.local == local_id && k.remote == remote_id)
        {
            subflow.mp.path = self.core.pending_opens.remove(pos);
        }
        self.subflows.push(subflow);
        self.core.orphaned_since = None;
        id
    }

    /// Takes a peer's MP_JOIN SYN routed here by its token: a subflow in SYN-RECEIVED
    /// whose SYN/ACK carries our truncated HMAC. The connection is untouched when this
    /// fails; the endpoint answers with a RST (MP_TCPRST [`JoinRefusal::reason`]).
    pub fn accept_join<R: CryptoRng + ?Sized>(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        iss: SeqNum,
        rng: &mut R,
    ) -> Result<SubflowId, JoinRefusal> {
        let SynKind::Join {
            token,
            nonce: peer_nonce,
            addr_id,
            backup,
        } = classify_syn(syn)
        else {
            return Err(JoinRefusal::NotAJoin);
        };
        if token != self.core.local_key.token {
            return Err(JoinRefusal::WrongToken {
                got: token,
                ours: self.core.local_key.token,
            });
        }
        if !self.core.data_level_ready() || self.core.closed.is_some() || self.core.subflows_closing
        {
            return Err(JoinRefusal::NotEstablished);
        }
        let limit = MAX_SUBFLOWS.min(self.core.pm_config().max_subflows.max(1));
        if self.subflows.len() >= limit {
            return Err(JoinRefusal::TooManySubflows);
        }
        let tcp_config = Self::subflow_tcp_config(&self.core.config);
        let tcp = TcpConnection::accept(tcp_config, local, remote, syn, now, iss)
            .map_err(|_| JoinRefusal::NotAJoin)?;
        // A join to one of our backup addresses (`PmConfig::backup_addrs`) is a backup
        // for us too: the SYN/ACK carries our B flag (RFC 8684 §3.2).
        let (local_id, our_backup) = self
            .core
            .pm
            .as_ref()
            .and_then(|pm| {
                pm.local_addrs()
                    .find(|l| l.addr == local.ip())
                    .map(|l| (l.id, l.backup))
            })
            .unwrap_or((AddrId(0), false));
        let id = self.core.alloc_id();
        let kind = SubflowKind::JoinIn {
            nonce: Nonce::generate(rng),
            peer_nonce,
        };
        let mut mp = SubflowMp::new(kind, local_id, addr_id, our_backup, self.core.new_rx(), now);
        mp.peer_backup = backup;
        mp.path = self
            .core
            .pm
            .as_mut()
            .map(|pm| pm.on_incoming_subflow(local_id, addr_id));
        let mut subflow = Subflow { id, tcp, mp };
        subflow.tcp.set_backup(backup || our_backup);
        self.subflows.push(subflow);
        self.core.orphaned_since = None;
        Ok(id)
    }

    // ---- application API ----

    /// Queues bytes; returns how many fit in the send buffer. Nothing after `close`.
    pub fn write(&mut self, data: &[u8]) -> usize {
        if self.core.app_closed || self.core.closed.is_some() {
            return 0;
        }
        let n = self.send.write(data);
        self.core.bytes_written += n as u64;
        n
    }

    /// Reads in-order bytes. Reading opens the receive window; a window update goes
    /// out if the peer may be waiting on it.
    pub fn read(&mut self, buf: &mut [u8]) -> usize {
        let n = self.core.recv.read(buf);
        self.core.bytes_read += n as u64;
        if n > 0 {
            self.core.readable_pending = false;
            if self.window_update_due() {
                // On every subflow that carries data, as Linux does
                // (mptcp_cleanup_rbuf): the peer may be blocked on this window with
                // nothing in flight, and one path may have died silently.
                self.request_ack_all();
            }
        }
        if self.core.recv.readable() > 0 {
            self.core.readable_pending = false;
        }
        n
    }

    /// Bytes ready to read.
    pub fn readable(&self) -> usize {
        self.core.recv.readable()
    }

    /// Free send-buffer space.
    pub fn send_capacity(&self) -> usize {
        self.send.free_space()
    }

    /// Bytes written and not yet acknowledged at the data level.
    pub fn send_queue(&self) -> usize {
        self.send.len()
    }

    /// The peer closed its side and everything before was read.
    pub fn is_read_closed(&self) -> bool {
        self.core.peer_closed_reported && self.core.recv.readable() == 0
    }

    /// Orderly close of our sending side: a DATA_FIN follows the data written (RFC
    /// 8684 §3.3.3); after a fallback, the subflow's FIN.
    pub fn close(&mut self) {
        if self.core.app_closed {
            return;
        }
        self.core.app_closed = true;
        match self.core.mode {
            ConnMode::Fallback => {
                for s in &mut self.subflows {
                    s.tcp.close();
                }
            }
            ConnMode::Handshake | ConnMode::Mptcp => {
                self.core.seq.close_send(self.send.end());
            }
        }
    }

    /// Abort: MP_FASTCLOSE with the peer's key on a RST on every subflow (RFC 8684
    /// §3.5), or a plain RST after a fallback; unread and unsent data is discarded.
    pub fn abort(&mut self) {
        if self.core.closed.is_some() {
            return;
        }
        self.core.fastclose_out = self.core.mode == ConnMode::Mptcp && self.core.peer_key.is_some();
        for s in &mut self.subflows {
            s.tcp.abort();
            s.mp.phase = MpPhase::Dead;
            s.mp.rst_out = true;
        }
        self.core.closed = Some(CloseReason::Aborted);
    }

    /// Announces or uses a new local address (a path event): joins go out from it to
    /// every known peer address (full mesh), and it is announced if configured.
    /// For an address the connection already has, this is a path event ("it works
    /// again"): pairs that failed meanwhile are tried again.
    pub fn add_local_address(&mut self, now: Instant, addr: IpAddr) -> Result<AddrId, PmError> {
        match self.core.pm.as_mut() {
            Some(pm) => match pm.add_local_addr(now, addr, None, false) {
                Err(PmError::DuplicateAddress(_)) => {
                    pm.retry_failed(now);
                    let id = pm.local_addrs().find(|l| l.addr == addr).map(|l| l.id);
                    Ok(id.unwrap_or(AddrId(0)))
                }
                result => result,
            },
            None => {
                if !self.core.pending_locals.contains(&addr) {
                    self.core.pending_locals.push(addr);
                }
                Ok(AddrId(0))
            }
        }
    }

    /// A local address disappeared: REMOVE_ADDR goes out and its subflows close.
    pub fn remove_local_address(&mut self, addr: IpAddr) -> Result<(), PmError> {
        self.core.pending_locals.retain(|a| *a != addr);
        let found = self
            .core
            .pm
            .as_ref()
            .and_then(|pm| pm.local_addrs().find(|l| l.addr == addr).map(|l| l.id));
        match (found, self.core.pm.as_mut()) {
            // The path manager withdraws it (REMOVE_ADDR) and closes its subflows.
            (Some(id), Some(pm)) => pm.remove_local_addr(id),
            (_, _) => {
                let ids: Vec<SubflowId> = self
                    .subflows
                    .iter()
                    .filter(|s| s.local().ip() == addr)
                    .map(|s| s.id)
                    .collect();
                for id in ids {
                    self.reset_subflow(
                        id,
                        TcpRstReason::ADMINISTRATIVELY_PROHIBITED,
                        SubflowDownReason::AddressRemoved,
                    );
                }
                Ok(())
            }
        }
    }

    /// Changes our backup wish for a subflow and tells the peer with MP_PRIO (RFC 8684
    /// §3.3.8).
    pub fn set_subflow_backup(&mut self, id: SubflowId, backup: bool) -> bool {
        let Some(s) = self.subflows.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        if s.mp.backup != backup {
            s.mp.backup = backup;
            s.mp.prio_pending = true;
            s.tcp.set_backup(backup || s.mp.peer_backup);
            s.tcp.request_ack();
        }
        true
    }

    /// Turns pacing on (with these settings) or off for every subflow, present and
    /// future ([`crate::tcp::TcpConfig::pacing`]).
    pub fn set_pacing(&mut self, pacing: Option<Pacing>) {
        self.core.config.tcp.pacing = pacing;
        for s in &mut self.subflows {
            s.tcp.set_pacing(pacing);
        }
    }

    /// Turns pacing on or off for one subflow (a later [`MptcpConnection::set_pacing`]
    /// overrides it). False when there is no such subflow.
    pub fn set_subflow_pacing(&mut self, id: SubflowId, pacing: Option<Pacing>) -> bool {
        let Some(s) = self.subflows.iter_mut().find(|s| s.id == id) else {
            return false;
        };
        s.tcp.set_pacing(pacing);
        true
    }

    // ---- driving ----

    pub fn poll_event(&mut self) -> Option<MptcpEvent> {
        let event = self.core.events.pop_front()?;
        match event {
            MptcpEvent::Readable => self.core.readable_pending = false,
            MptcpEvent::Writable => self.core.writable_pending = false,
            MptcpEvent::Connected
            | MptcpEvent::PeerClosed
            | MptcpEvent::SubflowUp { .. }
            | MptcpEvent::SubflowDown { .. }
            | MptcpEvent::AddressAnnounced { .. }
            | MptcpEvent::AddressRemoved { .. }
            | MptcpEvent::Fallback { .. }
            | MptcpEvent::Closed { .. } => {}
        }
        Some(event)
    }

    /// The next thing the endpoint must do for this connection.
    pub fn poll_action(&mut self) -> Option<ConnAction> {
        self.core.actions.pop_front()
    }

    // ---- inspection ----

    pub fn role(&self) -> Role {
        self.core.role
    }

    pub fn mode(&self) -> ConnMode {
        self.core.mode
    }

    pub fn is_fallback(&self) -> bool {
        self.core.mode == ConnMode::Fallback
    }

    /// Our token (how the peer names this connection in MP_JOIN).
    pub fn local_token(&self) -> Token {
        self.core.local_key.token
    }

    pub fn local_key(&self) -> MptcpKey {
        self.core.local_key.key
    }

    pub fn peer_key(&self) -> Option<MptcpKey> {
        self.core.peer_key
    }

    /// DSS checksums are in use (either side set flag A).
    pub fn checksums(&self) -> bool {
        self.core.checksums
    }

    /// Why the connection ended, once it has.
    pub fn close_reason(&self) -> Option<CloseReason> {
        self.core.closed
    }

    /// Nothing is left to do: closed, and every subflow is CLOSED (TIME-WAIT over).
    pub fn is_finished(&self) -> bool {
        self.core.closed.is_some() && self.subflows.is_empty()
    }

    /// The subflows, by id.
    pub fn subflow_ids(&self) -> impl Iterator<Item = SubflowId> + '_ {
        self.subflows.iter().map(|s| s.id)
    }

    /// The subflow on this 4-tuple.
    pub fn subflow_for(&self, local: SocketAddr, remote: SocketAddr) -> Option<SubflowId> {
        self.subflows
            .iter()
            .find(|s| s.local() == local && s.remote() == remote)
            .map(|s| s.id)
    }

    /// The 4-tuple of a subflow.
    pub fn subflow_addrs(&self, id: SubflowId) -> Option<(SocketAddr, SocketAddr)> {
        self.subflows
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.local(), s.remote()))
    }

    /// The TCP engine of a subflow, for inspection.
    pub fn subflow_tcp(&self, id: SubflowId) -> Option<&TcpConnection> {
        self.subflows.iter().find(|s| s.id == id).map(|s| &s.tcp)
    }

    /// Where our DATA_FIN stands.
    pub fn data_fin_tx(&self) -> DataFinTx {
        self.core.seq.data_fin_tx()
    }

    /// The data ACK we send (the next DSN expected from the peer).
    pub fn data_ack(&self) -> Dsn {
        self.core.seq.data_ack()
    }

    /// What the connection holds in memory, next to its limits: every figure is
    /// bounded by the configuration, whatever the peer sends (DESIGN.md, "Invariants
    /// worth tests"); the endpoint fuzz harness checks it.
    pub fn memory_use(&self) -> MemoryUse {
        MemoryUse {
            subflows: self.subflows.len(),
            closed_subflows: self.core.closed_subflows.len(),
            rx_mappings: self.subflows.iter().map(|s| s.mp.rx.pending().len()).sum(),
            rx_mapping_limit: self.subflows.iter().map(|s| s.mp.rx.limit()).sum(),
            tx_mappings: self.subflows.iter().map(|s| s.mp.tx.len()).sum(),
            reassembly_bytes: self.core.recv.buffered(),
            reassembly_capacity: self.core.recv.capacity(),
            send_bytes: self.send.len(),
            send_capacity: self.send.capacity(),
            reinject_ranges: self.core.reinject.len(),
            queued_signals: self.core.add_addr_out.len()
                + self.core.echo_out.len()
                + self.core.remove_out.len(),
        }
    }

    pub fn stats(&self) -> ConnStats {
        ConnStats {
            mode: self.core.mode,
            role: self.core.role,
            local_token: self.core.local_key.token,
            checksums: self.core.checksums,
            bytes_written: self.core.bytes_written,
            bytes_read: self.core.bytes_read,
            bytes_data_acked: self.core.data_acked_total,
            reinjections: self.core.reinjections,
            out_of_order_bytes: self.core.out_of_order_bytes,
            opportunistic_bytes: self.core.opportunistic_bytes,
            penalties: self.core.penalties,
            window_probes: self.core.window_probes,
            subflows_opened: self.core.subflows_opened,
            subflows: self.subflows.iter().map(Subflow::stats).collect(),
            closed_subflows: self.core.closed_subflows.iter().copied().collect(),
        }
    }

    // ---- internals shared by input, output and timers ----

    pub(crate) fn index_of(&self, id: SubflowId) -> Option<usize> {
        self.subflows.iter().position(|s| s.id == id)
    }

    /// Resets one subflow with MP_TCPRST `reason`; its data is reinjected when it is
    /// reaped.
    pub(crate) fn reset_subflow(
        &mut self,
        id: SubflowId,
        reason: TcpRstReason,
        down: SubflowDownReason,
    ) {
        if let Some(i) = self.index_of(id) {
            let s = &mut self.subflows[i];
            s.mp.reset_reason = Some(reason);
            s.mp.down_reason.get_or_insert(down);
            s.mp.phase = MpPhase::Dead;
            s.mp.rst_out = true;
            s.tcp.abort();
        }
    }

    /// Reading opened the connection-level window enough that a peer blocked on the
    /// window it knows should hear of it now, not with our next segment: the offer at
    /// least doubles that window and grows it by min(2 MSS, half the buffer). This is
    /// receiver-side SWS avoidance (RFC 9293 §3.8.6.2.2) with Linux's trigger
    /// (tcp_cleanup_rbuf, mptcp_cleanup_rbuf): a peer that knows a wide window is not
    /// waiting, so a steady transfer with a prompt reader sends no extra ACKs, while
    /// a window reopening from nearly closed is announced after about 2 MSS of reads
    /// and again each time it doubles. If that update is lost, the peer's
    /// zero-window probe (`timers.rs`) fetches it.
    fn window_update_due(&self) -> bool {
        if !self.core.data_level_ready() {
            // After a fallback, the TCP engine's own window updates apply.
            return false;
        }
        let known = self.core.seq.advertised_window();
        let right_edge = self.core.recv.right_edge();
        let ack = self.core.seq.rx_offset(self.core.seq.data_ack());
        if right_edge.saturating_sub(ack) < known.saturating_mul(2) {
            // The common case with a prompt reader, decided before looking at subflows.
            return false;
        }
        let mut carrying = self.subflows.iter().filter(|s| s.mp.carries_data());
        let Some(first) = carrying.next() else {
            return false;
        };
        // Every subflow offers the same window; the widest scale bounds it.
        let (mss, shift) = carrying.fold(
            (first.tcp.send_mss(), first.tcp.window_shifts().0),
            |(mss, shift), s| {
                (
                    mss.max(s.tcp.send_mss()),
                    shift.max(s.tcp.window_shifts().0),
                )
            },
        );
        let offer = self.core.seq.window_offer(right_edge, shift);
        let step = (2 * u64::from(mss))
            .min(self.core.recv.capacity() as u64 / 2)
            .max(1);
        offer >= known.saturating_mul(2) && offer >= known + step
    }

    /// An ACK on the best subflow that carries data (to move a signal or a window).
    pub(crate) fn request_ack_any(&mut self) {
        let best = self
            .subflows
            .iter_mut()
            .filter(|s| s.mp.carries_data())
            .min_by_key(|s| (s.mp.stale, s.tcp.srtt(), s.id));
        if let Some(s) = best {
            s.tcp.request_ack();
        }
    }

    /// An ACK on every subflow that carries data (a DATA_FIN retransmission).
    pub(crate) fn request_ack_all(&mut self) {
        for s in self.subflows.iter_mut().filter(|s| s.mp.carries_data()) {
            s.tcp.request_ack();
        }
    }

    /// The MP_CAPABLE we put on the initial subflow's SYN or SYN/ACK.
    pub(crate) fn capable_flags(core: &Core) -> crate::wire::mptcp::CapableFlags {
        super::stateless::capable_flags_for(
            core.checksums,
            core.config.deny_join_to_initial_address,
            core.role,
        )
    }
}
