//! Segment output: the scheduler hands chunks of the send buffer to subflows as
//! mappings, the subflows' engines build segments reading the bytes through those
//! mappings, and each segment is decorated with the MPTCP options it must carry
//! (RFC 8684 §3), fitted into the option space by the planner.

use arrayvec::ArrayVec;

use crate::buffer::SendBuffer;
use crate::crypto::{DssChecksum, add_addr_hmac, join_ack_hmac, join_synack_hmac};
use crate::mptcp::connection::{
    ConnMode, Core, MAX_SUBFLOWS, MptcpConnection, Role, SubflowTransmit,
};
use crate::mptcp::data_seq::DataFinTx;
use crate::mptcp::handshake::MPTCP_VERSION;
use crate::mptcp::mapping::TxMapping;
use crate::mptcp::subflow::{MpPhase, Subflow, SubflowKind, SubflowMp};
use crate::sched::{SchedInput, SubflowView};
use crate::seq::{Dsn, SeqNum};
use crate::tcp::{ReceiveSink, SendSource, Transmit};
use crate::time::Instant;
use crate::wire::mptcp::{
    AddAddr, AddrIdList, DsnWire, Dss, DssMapping, MpCapable, MpCapableKeys, MpFail, MpFastclose,
    MpJoin, MpPrio, MpTcpRst, MptcpOption, RemoveAddr, TcpRstFlags,
};
use crate::wire::option::MAX_OPTIONS_LEN;
use crate::wire::plan::{MptcpPriority, Omitted, OptionRequest, plan};
use crate::wire::tcp::{TcpRepr, options_len};

/// Every address id as a one-byte slice, so a REMOVE_ADDR option can borrow its list
/// for any lifetime.
static ADDR_IDS: [u8; 256] = {
    let mut ids = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        ids[i] = i as u8;
        i += 1;
    }
    ids
};

/// Filler for a retransmission by a stale subflow of bytes the data ACK already
/// covers and the buffer freed: the receiver holds them and drops the copy.
static ZEROS: [u8; 4096] = [0; 4096];

/// DSS sizes (RFC 8684 §3.3): 4 + data ACK (8) [+ DSN (8) + subflow seq (4) + length
/// (2) + checksum (2)].
const DSS_ACK_ONLY: usize = 12;
/// A DSS with an 8-byte data ACK and a mapping (8-byte DSN), as the wire emits it:
/// the MPTCP options are NOP-padded to a 4-byte boundary, so 26 bytes take 28.
const fn dss_with_mapping(checksums: bool) -> usize {
    let len = 4 + 8 + 8 + 4 + 2 + if checksums { 2 } else { 0 };
    (len + 3) & !3
}

/// The connection as one subflow's engine sees it while building a segment.
struct TxOwner<'a, 'b> {
    send: &'a SendBuffer,
    core: &'b Core,
    mp: &'b mut SubflowMp,
    data_space: usize,
    control_space: usize,
    /// Set when a stale subflow needed freed bytes with checksums on.
    starved: bool,
}

impl<'a> SendSource<'a> for TxOwner<'a, '_> {
    fn available(&self, from: u64) -> u64 {
        match self.core.mode {
            ConnMode::Fallback => match self.core.fallback_tx_base(self.mp) {
                Some((sub, conn)) => self
                    .send
                    .end()
                    .saturating_sub(conn + from.saturating_sub(sub)),
                None => 0,
            },
            ConnMode::Mptcp if self.mp.carries_data() => self.mp.tx.end().saturating_sub(from),
            ConnMode::Mptcp | ConnMode::Handshake => 0,
        }
    }

    fn bytes(&mut self, offset: u64, max_len: usize) -> &'a [u8] {
        match self.core.mode {
            ConnMode::Fallback => {
                let Some((sub, conn)) = self.core.fallback_tx_base(self.mp) else {
                    return &[];
                };
                self.send.slice(conn + offset.saturating_sub(sub), max_len)
            }
            ConnMode::Mptcp => {
                let Some(m) = self.mp.tx.for_transmit(offset) else {
                    return &[];
                };
                let len = max_len.min((m.offset_end() - offset) as usize);
                let at = self.core.seq.tx_offset(m.dsn_at(offset));
                if at < self.send.start() {
                    // Data-acked and freed (this subflow was stale). The peer has
                    // these bytes; any filler keeps the subflow's sequence going, but
                    // a DSS checksum would not match it.
                    if self.core.checksums {
                        self.starved = true;
                        return &[];
                    }
                    let n = len.min(ZEROS.len()).min((self.send.start() - at) as usize);
                    return &ZEROS[..n];
                }
                self.send.slice(at, len)
            }
            ConnMode::Handshake => &[],
        }
    }

    fn option_space(&self) -> usize {
        self.data_space
    }

    fn control_option_space(&self) -> usize {
        self.control_space
    }

    fn closing(&self) -> bool {
        self.core.app_closed
    }
}

impl ReceiveSink for TxOwner<'_, '_> {
    fn deliver(&mut self, _offset: u64, _payload: &[u8]) -> usize {
        0
    }

    fn receive_window(&self, _rcv_nxt: u64) -> u64 {
        self.core.recv.window() as u64
    }
}

impl Core {
    /// Where sent subflow bytes come from after a fallback: (subflow offset,
    /// connection offset) of the identity mapping's start.
    pub(crate) fn fallback_tx_base(&self, mp: &SubflowMp) -> Option<(u64, u64)> {
        match mp.infinite_tx {
            Some(base) => Some(base),
            None => matches!(mp.kind, SubflowKind::Initial).then_some((0, 0)),
        }
    }

    /// Our DATA_FIN is due on the wire: closed, and every byte before it handed out.
    pub(crate) fn data_fin_due(&self, send: &SendBuffer) -> Option<Dsn> {
        match self.seq.data_fin_tx() {
            DataFinTx::Pending { dsn } | DataFinTx::Sent { dsn }
                if self.seq.tx_offset(self.seq.snd_nxt()) >= send.end() =>
            {
                Some(dsn)
            }
            DataFinTx::Pending { .. }
            | DataFinTx::Sent { .. }
            | DataFinTx::Open
            | DataFinTx::Acked { .. } => None,
        }
    }

    /// Option bytes this subflow adds to data and to control segments.
    fn option_spaces(&self, send: &SendBuffer, s: &Subflow) -> (usize, usize) {
        match self.mode {
            ConnMode::Fallback | ConnMode::Handshake => (0, 0),
            ConnMode::Mptcp => match s.mp.phase {
                MpPhase::AwaitFourthAck { .. } => (24, 24),
                MpPhase::Handshake | MpPhase::Dead => (0, 0),
                MpPhase::Established => {
                    let data = dss_with_mapping(self.checksums);
                    let control = if self.data_fin_due(send).is_some() {
                        data
                    } else if self.role == Role::Client
                        && !self.fully_established
                        && s.mp.kind == SubflowKind::Initial
                    {
                        20
                    } else {
                        DSS_ACK_ONLY
                    };
                    (data, control)
                }
            },
        }
    }
}

impl MptcpConnection {
    /// The next segment to send on any subflow, decorated with its MPTCP options.
    /// Subflows take turns. Call until `None`.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<SubflowTransmit<'_>> {
        self.prepare_transmit(now);
        let n = self.subflows.len();
        let send = &self.send;
        let core = &mut self.core;
        // A stale subflow carries no ADD_ADDR while a healthy one can: the peer may
        // need the address to get around this very path's failure.
        let healthy = self
            .subflows
            .iter()
            .filter(|s| s.mp.carries_data() && !s.mp.stale)
            .count();
        for i in TransmitOrder::new(core, &self.subflows) {
            let sub = &mut self.subflows[i];
            let announce_here = healthy == 0 || (sub.mp.carries_data() && !sub.mp.stale);
            let (data_space, control_space) = core.option_spaces(send, sub);
            let mut owner = TxOwner {
                send,
                core,
                mp: &mut sub.mp,
                data_space,
                control_space,
                starved: false,
            };
            let transmit = sub.tcp.poll_transmit(now, &mut owner);
            let starved = owner.starved;
            if sub.tcp.state() == crate::tcp::TcpState::Closed {
                // Its RST (if any) is out now.
                sub.mp.rst_out = false;
            }
            if starved {
                sub.mp.abort = Some((
                    crate::wire::mptcp::TcpRstReason::MPTCP_ERROR,
                    crate::mptcp::events::SubflowDownReason::LocalReset {
                        reason: crate::wire::mptcp::TcpRstReason::MPTCP_ERROR,
                    },
                ));
            }
            let Some(mut t) = transmit else {
                continue;
            };
            core.tx_cursor = (i + 1) % n.max(1);
            decorate(now, core, send, sub, &mut t, announce_here);
            return Some(SubflowTransmit {
                subflow: sub.id,
                local: sub.tcp.local(),
                remote: sub.tcp.remote(),
                segment: t.segment,
                gso_size: t.gso_size,
            });
        }
        None
    }

    /// Before output: apply pending aborts, schedule new and reinjected data, and make
    /// sure a pending DATA_FIN gets a segment.
    fn prepare_transmit(&mut self, now: Instant) {
        // Subflows whose last RST has left can go (the caller polls until `None`, so
        // this runs after the RST).
        if self
            .subflows
            .iter()
            .any(|s| s.tcp.state() == crate::tcp::TcpState::Closed && !s.mp.rst_out)
        {
            self.reap_subflows(now);
            self.check_close(now);
        }
        let aborts: Vec<_> = self
            .subflows
            .iter_mut()
            .filter_map(|s| s.mp.abort.take().map(|(r, d)| (s.id, r, d)))
            .collect();
        for (id, reason, down) in aborts {
            self.reset_subflow(id, reason, down);
        }
        if self.core.mode == ConnMode::Fallback && self.core.app_closed {
            // The application closed while the connection was still MPTCP (a DATA_FIN
            // was pending) and it fell back since: the end of the stream is now the
            // subflow's FIN (RFC 8684 §3.7), or the peer waits forever.
            for s in &mut self.subflows {
                if !s.tcp.is_closing() {
                    s.tcp.close();
                }
            }
        }
        if self.core.mode != ConnMode::Mptcp || self.core.closed.is_some() {
            return;
        }
        // Path events from the application (address added or removed) act at once.
        self.drive_pm(now);
        self.schedule(now);
        if self.core.config.opportunistic_retransmission {
            self.opportunistic_retransmit(now);
        }
        self.update_conn_timers(now);
        if let Some(dsn) = self.core.data_fin_due(&self.send)
            && matches!(self.core.seq.data_fin_tx(), DataFinTx::Pending { .. })
        {
            // On every subflow at once, as Linux does (mptcp_send_ack): a pure ACK is
            // never retransmitted by TCP, so on one subflow over a lossy path a lost
            // DATA_FIN would wait for the connection-level timer. Asked for on every
            // transmission until it is out: a data segment that answers the request
            // leaves it pending until that timer, the slowest subflow's RTO (roadside:
            // 6.6 s behind a Wi-Fi subflow backed off during an outage).
            self.request_ack_all();
            if self.core.data_fin_rtx.is_none() {
                tracing::trace!(?dsn, "mptcp: DATA_FIN due");
                let rto = self.max_rto();
                self.core.data_fin_rtx = Some((now + rto, 0));
            }
        }
    }

    /// The views the scheduler decides on.
    fn views(&self) -> ArrayVec<SubflowView, { crate::sched::MAX_ASSIGNMENTS }> {
        let mut views = ArrayVec::new();
        // A stale subflow is avoided while another can carry data; when all are stale,
        // they are all the connection has.
        let healthy = self.subflows.iter().any(|s| s.schedulable() && !s.mp.stale);
        for s in self.subflows.iter().filter(|s| s.schedulable()) {
            let view = SubflowView {
                id: s.id,
                established: true,
                backup: s.is_backup(),
                potentially_failed: s.mp.stale && healthy,
                srtt: s.tcp.srtt(),
                rttvar: s.tcp.rttvar(),
                cwnd: s.tcp.cwnd(),
                in_flight: s.scheduled_in_flight(),
                send_window: s.send_window_left(),
                mss: s.tcp.send_mss(),
            };
            if views.try_push(view).is_err() {
                break;
            }
        }
        views
    }

    /// Hands reinjected ranges, then new data, to subflows as mappings (DESIGN.md: the
    /// subflow holds the mapping; the bytes stay in the send buffer).
    fn schedule(&mut self, now: Instant) {
        if self.core.sched.carries_every_byte() {
            self.catch_up(now);
        }
        for _ in 0..64 {
            // The views are built only once there is something to schedule: most
            // transmissions find nothing new (the window is full or the data is out).
            if !self.subflows.iter().any(|s| s.schedulable()) {
                return;
            }
            // Reinjection first: it is the oldest data the peer waits for.
            let acked = self.core.seq.tx_offset(self.core.seq.snd_una());
            while let Some(front) = self.core.reinject.front_mut() {
                front.start = front.start.max(acked);
                if front.start >= front.end {
                    self.core.reinject.pop_front();
                } else {
                    break;
                }
            }
            let (pending, conn_window, reinject) = match self.core.reinject.front() {
                Some(r) => (r.end - r.start, u64::MAX, Some(r.start)),
                None => {
                    let next = self.core.seq.tx_offset(self.core.seq.snd_nxt());
                    let pending = self.send.end().saturating_sub(next);
                    (pending, self.core.seq.send_window(), None)
                }
            };
            if pending == 0
                || !self
                    .subflows
                    .iter()
                    .any(|s| s.schedulable() && s.space() > 0)
            {
                return;
            }
            let views = self.views();
            let conn_in_flight = self
                .core
                .seq
                .tx_offset(self.core.seq.snd_nxt())
                .saturating_sub(acked);
            let input = SchedInput {
                now,
                subflows: &views,
                pending,
                conn_window,
                conn_in_flight,
            };
            let decision = self.core.sched.schedule(&input);
            if decision.is_wait() {
                return;
            }
            let start = match reinject {
                Some(start) => start,
                None => self.core.seq.tx_offset(self.core.seq.snd_nxt()),
            };
            let dsn = self.core.seq.tx_dsn(start);
            let mut taken = 0u64;
            for a in decision.assignments {
                let Some(i) = self.index_of(a.subflow) else {
                    continue;
                };
                // A redundant scheduler assigns the same bytes to several subflows.
                let bytes = a.bytes.min(pending).min(u64::from(u32::MAX)) as u32;
                if bytes == 0 {
                    continue;
                }
                let s = &mut self.subflows[i];
                if s.outstanding() == 0 {
                    // The no-progress clock starts with the first byte outstanding.
                    s.mp.progress_at = now;
                }
                s.mp.tx.push(dsn, bytes);
                s.mp.tx_high = s.mp.tx_high.max(start + u64::from(bytes));
                s.mp.bytes_scheduled += u64::from(bytes);
                if reinject.is_some() {
                    s.mp.bytes_reinjected += u64::from(bytes);
                }
                taken = taken.max(u64::from(bytes));
            }
            if taken == 0 {
                return;
            }
            match reinject {
                Some(_) => {
                    if let Some(front) = self.core.reinject.front_mut() {
                        front.start += taken;
                        if front.start >= front.end {
                            self.core.reinject.pop_front();
                        }
                    }
                }
                None => self
                    .core
                    .seq
                    .record_sent(self.core.seq.tx_dsn(start + taken)),
            }
        }
    }

    /// For a scheduler that puts every byte on every subflow: each candidate with
    /// window space gets the bytes it missed (sent on others while its window was
    /// full, or before it joined) that the data ACK does not cover yet, oldest first.
    fn catch_up(&mut self, now: Instant) {
        let views = self.views();
        let una = self.core.seq.tx_offset(self.core.seq.snd_una());
        let nxt = self.core.seq.tx_offset(self.core.seq.snd_nxt());
        let input = SchedInput {
            now,
            subflows: &views,
            pending: 0,
            conn_window: 0,
            conn_in_flight: nxt.saturating_sub(una),
        };
        for view in input.candidates() {
            let Some(i) = self.index_of(view.id) else {
                continue;
            };
            let s = &mut self.subflows[i];
            let from = s.mp.tx_high.max(una);
            let len = nxt
                .saturating_sub(from)
                .min(view.space())
                .min(u64::from(u32::MAX)) as u32;
            if len == 0 {
                continue;
            }
            if s.outstanding() == 0 {
                s.mp.progress_at = now;
            }
            s.mp.tx.push(self.core.seq.tx_dsn(from), len);
            s.mp.tx_high = from + u64::from(len);
            s.mp.bytes_scheduled += u64::from(len);
        }
    }

    pub(crate) fn max_rto(&self) -> crate::time::Duration {
        self.subflows
            .iter()
            .filter(|s| s.mp.carries_data())
            .map(Subflow::rto)
            .max()
            .unwrap_or(self.core.config.tcp.initial_rto)
            .max(self.core.config.reinject_min)
    }
}

/// Which subflows `poll_transmit` asks, in order: those without new data first (their
/// ACKs, retransmissions and signals), then those with new data by the DSN of their
/// next byte, round robin from the cursor among equals. Taking new data in
/// data-sequence order across subflows means that over paths of equal delay the
/// receiver sees the stream in order, instead of one scheduled chunk ahead per
/// subflow, which it would have to hold out of order and merge (RFC 8684 leaves the
/// order to the sender). Most calls stop at the first subflow asked, so the order is
/// picked lazily rather than sorted.
struct TransmitOrder {
    /// Per subflow: 0 without new data, else 1 + the data offset of its next byte.
    /// Empty when there are more subflows than it holds (joins being refused): those
    /// then take plain turns.
    keys: ArrayVec<u64, MAX_SUBFLOWS>,
    /// Bit i: subflow i was handed out.
    tried: u64,
    cursor: usize,
    n: usize,
    asked: usize,
}

const _: () = assert!(
    MAX_SUBFLOWS <= u64::BITS as usize,
    "`tried` has a bit per subflow"
);

impl TransmitOrder {
    fn new(core: &Core, subflows: &[Subflow]) -> Self {
        let n = subflows.len();
        let mut keys = ArrayVec::new();
        if n <= MAX_SUBFLOWS {
            keys.extend(subflows.iter().map(|s| {
                s.next_unsent_dsn()
                    .map_or(0, |dsn| 1 + core.seq.tx_offset(dsn))
            }));
        }
        TransmitOrder {
            keys,
            tried: 0,
            cursor: core.tx_cursor,
            n,
            asked: 0,
        }
    }
}

impl Iterator for TransmitOrder {
    type Item = usize;

    fn next(&mut self) -> Option<usize> {
        if self.asked == self.n {
            return None;
        }
        self.asked += 1;
        if self.keys.is_empty() {
            return Some((self.cursor + self.asked - 1) % self.n);
        }
        let mut best: Option<usize> = None;
        for k in 0..self.n {
            let i = (self.cursor + k) % self.n;
            if self.tried & (1 << i) == 0 && best.is_none_or(|b| self.keys[i] < self.keys[b]) {
                best = Some(i);
            }
        }
        let i = best?;
        self.tried |= 1 << i;
        Some(i)
    }
}

/// Adds the MPTCP options `t` must carry and fits everything into the option space.
fn decorate<'a>(
    _now: Instant,
    core: &mut Core,
    send: &'a SendBuffer,
    s: &mut Subflow,
    t: &mut Transmit<'a>,
    announce_here: bool,
) {
    let seg = &mut t.segment;
    if seg.flags.rst() {
        // RFC 8684 §3.5: MP_FASTCLOSE on a RST closes the whole connection; §3.6:
        // MP_TCPRST says why one subflow is reset.
        if core.fastclose_out
            && let Some(peer_key) = core.peer_key
        {
            let _ = seg
                .options
                .mptcp
                .try_push(MptcpOption::MpFastclose(MpFastclose {
                    receiver_key: peer_key,
                }));
        } else if let Some(reason) = s.mp.reset_reason {
            let _ = seg.options.mptcp.try_push(MptcpOption::MpTcpRst(MpTcpRst {
                flags: TcpRstFlags::default(),
                reason,
            }));
        }
        return;
    }
    let local_key = core.local_key.key;
    let essential = MptcpPriority::Essential;
    if core.mode == ConnMode::Fallback {
        // §3.7: after MP_FAIL the infinite mapping is repeated until the subflow ACK
        // passes its start; otherwise a fallen-back connection carries no options.
        if let Some((offset, dsn)) = s.mp.infinite_pending
            && !seg.flags.syn()
        {
            let mut request = request_for(seg);
            request.mptcp.push((
                essential,
                MptcpOption::Dss(Dss {
                    data_ack: None,
                    mapping: Some(DssMapping {
                        dsn: DsnWire::Long(dsn),
                        subflow_seq: SeqNum((offset as u32).wrapping_add(1)),
                        data_len: 0,
                        checksum: None,
                    }),
                    data_fin: false,
                }),
            ));
            apply_plan(core, s, seg, &request, 0);
        }
        return;
    }
    if seg.flags.syn() {
        let option = match s.mp.kind {
            SubflowKind::Initial => MptcpOption::MpCapable(MpCapable {
                version: MPTCP_VERSION,
                flags: MptcpConnection::capable_flags(core),
                // RFC 8684 §3.1: no key in the SYN; the server's key in the SYN/ACK.
                keys: if seg.flags.ack() {
                    MpCapableKeys::Sender { sender: local_key }
                } else {
                    MpCapableKeys::None
                },
            }),
            SubflowKind::JoinOut { nonce, .. } => {
                let Some(peer_key) = core.peer_key else {
                    return;
                };
                MptcpOption::MpJoin(MpJoin::Syn {
                    backup: s.mp.backup,
                    addr_id: s.mp.local_id,
                    token: peer_key.token(),
                    nonce,
                })
            }
            SubflowKind::JoinIn { nonce, peer_nonce } => {
                let Some(peer_key) = core.peer_key else {
                    return;
                };
                MptcpOption::MpJoin(MpJoin::SynAck {
                    backup: s.mp.backup,
                    addr_id: s.mp.local_id,
                    hmac: join_synack_hmac(local_key, peer_key, nonce, peer_nonce),
                    nonce,
                })
            }
        };
        let mut request = request_for(seg);
        request.mptcp.push((essential, option));
        apply_plan(core, s, seg, &request, 0);
        return;
    }
    let Some(peer_key) = core.peer_key else {
        return;
    };
    let mapping = if seg.payload.is_empty() {
        None
    } else {
        s.mp.tx.lookup(t.offset)
    };
    match s.mp.phase {
        MpPhase::AwaitFourthAck { .. } => {
            let mut request = request_for(seg);
            // RFC 8684 §3.2: the initiator's third ACK carries the full HMAC.
            if let SubflowKind::JoinOut {
                nonce,
                peer_nonce: Some(peer_nonce),
            } = s.mp.kind
            {
                request.mptcp.push((
                    essential,
                    MptcpOption::MpJoin(MpJoin::Ack {
                        hmac: join_ack_hmac(local_key, peer_key, nonce, peer_nonce),
                    }),
                ));
            }
            apply_plan(core, s, seg, &request, 0);
            return;
        }
        MpPhase::Handshake | MpPhase::Dead => return,
        MpPhase::Established => {}
    }
    let capable_phase =
        core.role == Role::Client && !core.fully_established && s.mp.kind == SubflowKind::Initial;
    let fin_due = core.data_fin_due(send);
    let keys_first =
        capable_phase && mapping.is_none() && fin_due.is_some() && s.keys_before_data_fin();
    let fin_due = fin_due.filter(|_| !keys_first);
    let main = match (mapping, capable_phase) {
        (Some(m), true) if m.offset == 0 => {
            // §3.1: the first data repeats both keys with the data-level length (the
            // implied mapping: DSN IDSN + 1, relative subflow sequence 1).
            let checksum = core.checksums.then(|| mapping_checksum(core, send, s, &m));
            MptcpOption::MpCapable(MpCapable {
                version: MPTCP_VERSION,
                flags: MptcpConnection::capable_flags(core),
                keys: MpCapableKeys::BothWithData {
                    sender: local_key,
                    receiver: peer_key,
                    data_len: m.data_level_len(),
                    checksum,
                },
            })
        }
        (None, true) if fin_due.is_none() => {
            // §3.1: until the server shows it has our key, MP_CAPABLE with both keys.
            MptcpOption::MpCapable(MpCapable {
                version: MPTCP_VERSION,
                flags: MptcpConnection::capable_flags(core),
                keys: MpCapableKeys::Both {
                    sender: local_key,
                    receiver: peer_key,
                },
            })
        }
        (Some(m), _) => {
            if fin_due.is_some() && matches!(core.seq.data_fin_tx(), DataFinTx::Pending { .. }) {
                // The ACK asked for to carry the DATA_FIN left on this data segment,
                // which carries a mapping instead: ask again, or the DATA_FIN waits
                // for its retransmission timer.
                s.tcp.request_ack();
            }
            let checksum = core.checksums.then(|| mapping_checksum(core, send, s, &m));
            MptcpOption::Dss(Dss {
                data_ack: Some(DsnWire::Long(core.seq.data_ack())),
                mapping: Some(DssMapping {
                    dsn: DsnWire::Long(m.dsn),
                    subflow_seq: m.relative_subflow_seq(),
                    data_len: m.data_level_len(),
                    checksum,
                }),
                data_fin: false,
            })
        }
        (None, _) => match fin_due {
            Some(fin) => {
                // §3.3.3: a DATA_FIN without data: subflow sequence 0, length 1.
                let checksum = core
                    .checksums
                    .then(|| DssChecksum::new(fin, SeqNum(0), 1).finish());
                core.seq.record_sent(fin + 1);
                MptcpOption::Dss(Dss {
                    data_ack: Some(DsnWire::Long(core.seq.data_ack())),
                    mapping: Some(DssMapping {
                        dsn: DsnWire::Long(fin),
                        subflow_seq: SeqNum(0),
                        data_len: 1,
                        checksum,
                    }),
                    data_fin: true,
                })
            }
            None => MptcpOption::Dss(Dss {
                data_ack: Some(DsnWire::Long(core.seq.data_ack())),
                mapping: None,
                data_fin: false,
            }),
        },
    };
    if core.data_level_ready() {
        // RFC 8684 §3.3.4: one window for the connection, relative to the data ACK.
        let shift = s.tcp.window_shifts().0;
        // Receiver SWS avoidance as the subflows' engines do it (min(buffer / 2, our
        // MSS)), except that an emptied buffer is offered whole.
        let capacity = core.recv.capacity();
        let sws = if core.recv.window() >= capacity {
            0
        } else {
            (capacity as u64 / 2).min(u64::from(core.config.tcp.mss))
        };
        seg.window = core.seq.window_field(core.recv.right_edge(), shift, sws);
        s.tcp.note_window_field(seg.window);
    }
    let signals_pending = s.mp.fail_pending.is_some()
        || s.mp.prio_pending
        || !core.echo_out.is_empty()
        || (announce_here && !core.add_addr_out.is_empty())
        || !core.remove_out.is_empty();
    if !signals_pending
        && seg.options.mptcp.is_empty()
        && options_len(&seg.options) + main.wire_len().next_multiple_of(4) <= MAX_OPTIONS_LEN
    {
        // Nearly every segment: one MPTCP option and room for it. The planner would
        // take the whole request; this skips building and copying it.
        seg.options.mptcp.push(main);
        return;
    }
    let mut request = request_for(seg);
    request.mptcp.push((essential, main));
    let mut deferrable = 0;
    if let Some(dsn) = s.mp.fail_pending {
        request
            .mptcp
            .push((essential, MptcpOption::MpFail(MpFail { dsn })));
    }
    if s.mp.prio_pending {
        request.mptcp.push((
            MptcpPriority::Deferrable,
            MptcpOption::MpPrio(MpPrio {
                backup: s.mp.backup,
                addr_id: None,
            }),
        ));
        deferrable |= 1;
    }
    if !request.mptcp.is_full()
        && let Some(&(id, addr, port)) = core.echo_out.front()
    {
        request.mptcp.push((
            MptcpPriority::Deferrable,
            MptcpOption::AddAddr(AddAddr {
                addr_id: id,
                addr,
                port,
                hmac: None,
            }),
        ));
        deferrable |= 2;
    }
    if !request.mptcp.is_full()
        && announce_here
        && let Some(&(id, addr, port)) = core.add_addr_out.front()
    {
        request.mptcp.push((
            MptcpPriority::Deferrable,
            MptcpOption::AddAddr(AddAddr {
                addr_id: id,
                addr,
                port,
                hmac: Some(add_addr_hmac(local_key, peer_key, id.0, addr, port)),
            }),
        ));
        deferrable |= 4;
    }
    if !request.mptcp.is_full()
        && let Some(&id) = core.remove_out.front()
        && let Some(ids) = AddrIdList::new(&ADDR_IDS[usize::from(id.0)..=usize::from(id.0)])
    {
        request.mptcp.push((
            MptcpPriority::Deferrable,
            MptcpOption::RemoveAddr(RemoveAddr { ids }),
        ));
        deferrable |= 8;
    }
    apply_plan(core, s, seg, &request, deferrable);
}

/// What the engine put on `seg`, as a request to the planner.
fn request_for<'a>(seg: &TcpRepr<'a>) -> OptionRequest<'a> {
    OptionRequest {
        mss: seg.options.mss,
        window_scale: seg.options.window_scale,
        sack_permitted: seg.options.sack_permitted,
        timestamps: seg.options.timestamps,
        sack_blocks: seg.options.sack_blocks.clone(),
        mptcp: ArrayVec::new(),
    }
}

/// Runs the planner and dequeues the signals that made it onto the segment.
fn apply_plan<'a>(
    core: &mut Core,
    s: &mut Subflow,
    seg: &mut crate::wire::tcp::TcpRepr<'a>,
    request: &OptionRequest<'a>,
    _deferrable: u8,
) {
    let mut planned = plan(request);
    let deferred = |p: &crate::wire::plan::Plan<'_>| {
        p.omitted
            .iter()
            .filter(|o| {
                matches!(
                    o,
                    Omitted::Mptcp {
                        priority: MptcpPriority::Deferrable,
                        ..
                    }
                )
            })
            .count()
    };
    if deferred(&planned) > 0 && seg.payload.is_empty() && !request.sack_blocks.is_empty() {
        // A pure ACK was asked for to carry a signal (ADD_ADDR, REMOVE_ADDR, MP_PRIO)
        // and SACK blocks took its room. They are repeated on the next ACK, the signal
        // would wait for the next retransmission (after an RTO for an ADD_ADDR): it
        // goes first here, as in Linux, where MPTCP options take their space before
        // SACK (tcp_established_options).
        let mut without_sack = request.clone();
        without_sack.sack_blocks.clear();
        let replanned = plan(&without_sack);
        if deferred(&replanned) < deferred(&planned) {
            planned = replanned;
        }
    }
    let omitted: ArrayVec<usize, 4> = planned
        .omitted
        .iter()
        .filter_map(|o| match o {
            Omitted::Mptcp { index, .. } => Some(*index),
            Omitted::Mss
            | Omitted::WindowScale
            | Omitted::SackPermitted
            | Omitted::Timestamps
            | Omitted::SackBlocks { .. } => None,
        })
        .collect();
    for (index, (_, option)) in request.mptcp.iter().enumerate() {
        if omitted.contains(&index) {
            continue;
        }
        match option {
            MptcpOption::MpPrio(_) => s.mp.prio_pending = false,
            MptcpOption::MpFail(_) => s.mp.fail_pending = None,
            MptcpOption::AddAddr(a) if a.hmac.is_none() => {
                core.echo_out.pop_front();
            }
            MptcpOption::AddAddr(_) => {
                core.add_addr_out.pop_front();
            }
            MptcpOption::RemoveAddr(_) => {
                core.remove_out.pop_front();
            }
            MptcpOption::Dss(_)
            | MptcpOption::MpCapable(_)
            | MptcpOption::MpJoin(_)
            | MptcpOption::MpFastclose(_)
            | MptcpOption::MpTcpRst(_)
            | MptcpOption::Experimental(_) => {}
        }
    }
    seg.options = planned.options;
}

/// The DSS checksum of a whole mapping (RFC 8684 §3.3.1), cached for the segments
/// that repeat it.
fn mapping_checksum(core: &Core, send: &SendBuffer, s: &mut Subflow, m: &TxMapping) -> u16 {
    let len = m.data_level_len();
    if let Some((dsn, l, sum)) = s.mp.checksum_cache
        && dsn == m.dsn
        && l == len
    {
        return sum;
    }
    let mut sum = DssChecksum::new(m.dsn, m.relative_subflow_seq(), len);
    let (a, b) = send.iter_slices(core.seq.tx_offset(m.dsn), m.len as usize);
    sum.add(a).add(b);
    let value = sum.finish();
    s.mp.checksum_cache = Some((m.dsn, len, value));
    value
}
