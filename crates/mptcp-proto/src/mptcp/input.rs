//! Segment input: the MPTCP options of each segment a subflow accepts, payload into
//! the connection's reassembly, and the connection-wide work that follows (signals,
//! freeing the send buffer, subflow lifecycle).
//!
//! The subflow's TCP engine decides which segments are acceptable; MPTCP options are
//! read only from those ([`ReceiveSink::on_segment`]), so a blind attacker cannot move
//! the data ACK or announce addresses. RSTs are the exception the engine cannot show
//! us: MP_TCPRST and MP_FASTCLOSE ride on them and are read before the engine runs
//! (MP_FASTCLOSE is authenticated by the key it carries).

use core::net::SocketAddr;

use arrayvec::ArrayVec;

use crate::crypto::{verify_add_addr_hmac, verify_join_ack_hmac, verify_join_synack_hmac};
use crate::mptcp::SubflowId;
use crate::mptcp::connection::{
    CLOSED_SUBFLOW_HISTORY, ConnAction, ConnMode, Core, MptcpConnection, Role, Signal,
};
use crate::mptcp::data_seq::DataAckOutcome;
use crate::mptcp::events::{CloseReason, FallbackReason, MptcpEvent, SubflowDownReason};
use crate::mptcp::mapping::{InsertKind, MappingError, ReceivedMapping, RxEvent};
use crate::mptcp::subflow::{MpPhase, SubflowKind, SubflowMp};
use crate::pm::{AddrSide, PathKey, PmAction};
use crate::seq::{Dsn, SeqNum};
use crate::tcp::{ReceiveSink, TcpEvent, TcpState};
use crate::time::{Duration, Instant};
use crate::wire::mptcp::{
    CapableFlags, DsnWire, Dss, MpCapable, MpCapableKeys, MpJoin, MptcpOption, TcpRstReason,
};
use crate::wire::tcp::TcpRepr;

/// A checksum failure reported while delivering.
#[derive(Clone, Copy, Debug)]
struct ChecksumFailure(Dsn);

/// The connection as one subflow's engine sees it while it processes a segment.
struct RxOwner<'b> {
    core: &'b mut Core,
    mp: &'b mut SubflowMp,
    now: Instant,
    local: SocketAddr,
    remote: SocketAddr,
    /// The subflow's RCV.NXT (stream offset) before this segment.
    rcv_offset: u64,
    /// Our ISN on the subflow (to tell whether an ACK covers data).
    iss: SeqNum,
    /// The peer's window-scale shift on this subflow.
    snd_shift: u8,
    rto: Duration,
    /// Refuse this segment's payload (mapping limit): the peer sends it again.
    refuse: bool,
    failures: ArrayVec<ChecksumFailure, 4>,
}

impl RxOwner<'_> {
    fn initial_client(&mut self, seg: &TcpRepr<'_>, capable: Option<MpCapable>, dss: Option<Dss>) {
        if seg.flags.syn() {
            if self.core.mode != ConnMode::Handshake {
                return;
            }
            // RFC 8684 §3.1: the SYN/ACK carries the server's key; anything else (no
            // option, another version, no HMAC-SHA256) means plain TCP.
            let usable = capable.and_then(|c| match c.keys {
                MpCapableKeys::Sender { sender }
                    if c.version == 1 && c.flags.contains(CapableFlags::HMAC_SHA256) =>
                {
                    Some((sender, c.flags))
                }
                MpCapableKeys::Sender { .. }
                | MpCapableKeys::None
                | MpCapableKeys::Both { .. }
                | MpCapableKeys::BothWithData { .. } => None,
            });
            self.mp.phase = MpPhase::Established;
            match usable {
                Some((key, flags)) => {
                    self.core.peer_key = Some(key);
                    self.core.seq.set_peer_idsn(key.idsn());
                    self.core.checksums |= flags.checksum_required();
                    self.core.peer_c_flag = flags.contains(CapableFlags::NO_MORE_SUBFLOWS);
                    self.mp.rx = self.core.new_rx();
                    self.core.mode = ConnMode::Mptcp;
                    // The SYN/ACK's window is the connection's (never scaled).
                    self.core.seq.on_peer_window(None, seg.window, 0);
                    // The third ACK may be lost: repeat it until a data ACK shows the
                    // server has our key (`Subflow::capable_ack_timer`).
                    self.mp.capable_rtx = Some((self.now + self.rto, 0));
                }
                None => self
                    .core
                    .enter_fallback(FallbackReason::NoMpCapableInSynAck),
            }
            return;
        }
        if self.core.mode != ConnMode::Mptcp || self.core.fully_established {
            return;
        }
        if dss.is_some_and(|d| d.data_ack.is_some()) {
            // RFC 8684 §3.1: a data ACK shows the server has our key; MP_CAPABLE no
            // longer needs to ride on our segments.
            self.core.fully_established = true;
            self.mp.capable_rtx = None;
        } else if dss.is_none() && capable.is_none() {
            let acks_data = seg.ack.diff(self.iss + 1) > 0;
            if !seg.payload.is_empty() && !self.mp.dss_seen {
                // §3.7: the server's first data without DSS: options were stripped.
                self.core.enter_fallback(FallbackReason::NoDssOnFirstData);
            } else if acks_data {
                // Our data was taken without a data ACK: nobody will free it at the
                // data level, so the peer is not speaking MPTCP (§3.7).
                self.core.enter_fallback(FallbackReason::NoDataAck);
            }
        }
    }

    fn initial_server(&mut self, seg: &TcpRepr<'_>, capable: Option<MpCapable>, dss: Option<Dss>) {
        if seg.flags.syn() {
            return;
        }
        let ours = self.core.local_key.key;
        let keys = capable.and_then(|c| match c.keys {
            MpCapableKeys::Both { sender, receiver } if receiver == ours => Some((sender, None)),
            MpCapableKeys::BothWithData {
                sender,
                receiver,
                data_len,
                checksum,
            } if receiver == ours => Some((sender, Some((data_len, checksum)))),
            MpCapableKeys::Both { .. }
            | MpCapableKeys::BothWithData { .. }
            | MpCapableKeys::None
            | MpCapableKeys::Sender { .. } => None,
        });
        match self.core.mode {
            ConnMode::Handshake => {
                let Some((key, _)) = keys else {
                    if dss.is_some() {
                        // The peer speaks MPTCP: its third ACK and first data (the
                        // segments with our key echoed) were lost or overtaken by a
                        // later segment, say a lone DATA_FIN. RFC 8684 §3.1 has the
                        // first data repeat both keys until a data ACK shows we have
                        // them, so they will come; until then nothing of this segment
                        // can be mapped (no peer IDSN), and its payload is refused so
                        // that it is sent again. Linux falls back here for want of a
                        // socket to hold the state; we have one, and option stripping
                        // leaves no DSS behind.
                        tracing::debug!(
                            seq = ?seg.seq,
                            "mptcp: DSS before the peer's key: waiting for MP_CAPABLE"
                        );
                        return;
                    }
                    // The ACK completing the handshake must echo both keys (RFC 8684
                    // §3.1; Linux falls back likewise): without them and without any
                    // DSS, the options were stripped or the peer is not MPTCP.
                    self.mp.phase = MpPhase::Established;
                    self.core
                        .enter_fallback(FallbackReason::NoMpCapableInThirdAck);
                    return;
                };
                self.mp.phase = MpPhase::Established;
                self.core.peer_key = Some(key);
                self.core.seq.set_peer_idsn(key.idsn());
                self.core.mode = ConnMode::Mptcp;
                self.core.fully_established = true;
                self.core
                    .seq
                    .on_peer_window(None, seg.window, self.snd_shift);
            }
            ConnMode::Mptcp => {
                if keys.is_some() && seg.payload.is_empty() {
                    // The client repeats its keys on a pure ACK until it sees a data
                    // ACK (RFC 8684 §3.1; it has no data in flight that would draw
                    // one): answer, as for a repeated MP_JOIN third ACK.
                    self.core.ack_now = true;
                }
                if keys.is_none()
                    && dss.is_none()
                    && !seg.payload.is_empty()
                    && !self.mp.dss_seen
                    && self.core.recv.contiguous_end() == 0
                {
                    // §3.7: the first data carries neither DSS nor MP_CAPABLE.
                    self.core.enter_fallback(FallbackReason::NoDssOnFirstData);
                    return;
                }
            }
            ConnMode::Fallback => return,
        }
        if let Some((key, Some((data_len, checksum)))) = keys
            && Some(key) == self.core.peer_key
        {
            // §3.1: the first data's MP_CAPABLE is a mapping of `data_len` bytes at
            // DSN IDSN + 1, relative subflow sequence 1.
            let mapping = ReceivedMapping {
                dsn: self.core.seq.rx_dsn(0),
                subflow_seq: SeqNum(1),
                data_len,
                data_fin: false,
                checksum,
            };
            self.insert_mapping(mapping);
        }
    }

    fn join_out(&mut self, seg: &TcpRepr<'_>, join: Option<MpJoin>) {
        let SubflowKind::JoinOut { nonce, peer_nonce } = &mut self.mp.kind else {
            return;
        };
        match self.mp.phase {
            MpPhase::Handshake if seg.flags.syn() => {
                let (
                    Some(peer_key),
                    Some(MpJoin::SynAck {
                        backup,
                        hmac,
                        nonce: theirs,
                        ..
                    }),
                ) = (self.core.peer_key, join)
                else {
                    self.mp.abort =
                        Some((TcpRstReason::MPTCP_ERROR, SubflowDownReason::JoinFailed));
                    return;
                };
                // RFC 8684 §3.2: HMAC-B = HMAC(Key-B ‖ Key-A, R-B ‖ R-A), truncated.
                if !verify_join_synack_hmac(
                    &hmac,
                    peer_key,
                    self.core.local_key.key,
                    theirs,
                    *nonce,
                ) {
                    tracing::debug!("mptcp: MP_JOIN SYN/ACK with a bad HMAC");
                    self.mp.abort =
                        Some((TcpRstReason::MPTCP_ERROR, SubflowDownReason::JoinFailed));
                    return;
                }
                *peer_nonce = Some(theirs);
                self.mp.peer_backup = backup;
                self.mp.phase = MpPhase::AwaitFourthAck {
                    rtx_at: self.now + self.rto,
                    backoff: 0,
                };
            }
            MpPhase::AwaitFourthAck { .. } if !seg.flags.syn() => {
                // The responder's fourth ACK (§3.2): data may flow now.
                self.mp.phase = MpPhase::Established;
            }
            MpPhase::Handshake
            | MpPhase::AwaitFourthAck { .. }
            | MpPhase::Established
            | MpPhase::Dead => {}
        }
    }

    fn join_in(&mut self, seg: &TcpRepr<'_>, join: Option<MpJoin>) {
        let SubflowKind::JoinIn { nonce, peer_nonce } = self.mp.kind else {
            return;
        };
        if seg.flags.syn() {
            return;
        }
        match self.mp.phase {
            MpPhase::Handshake => {}
            MpPhase::Established => {
                if matches!(join, Some(MpJoin::Ack { .. })) {
                    // §3.2: the initiator repeats its third ACK until the fourth
                    // arrives, so ours was lost: answer again. A pure ACK is never
                    // acknowledged by TCP itself, and without this the initiator gives
                    // the subflow up after its retries.
                    self.core.ack_now = true;
                }
                return;
            }
            MpPhase::AwaitFourthAck { .. } | MpPhase::Dead => return,
        }
        let ok = match (self.core.peer_key, join) {
            // §3.2: HMAC-A = HMAC(Key-A ‖ Key-B, R-A ‖ R-B), 160 bits.
            (Some(peer_key), Some(MpJoin::Ack { hmac })) => {
                verify_join_ack_hmac(&hmac, peer_key, self.core.local_key.key, peer_nonce, nonce)
            }
            _ => false,
        };
        if ok {
            self.mp.phase = MpPhase::Established;
            // The fourth ACK tells the initiator it may send data.
            self.core.ack_now = true;
        } else {
            tracing::debug!("mptcp: MP_JOIN third ACK with a bad or missing HMAC");
            self.mp.abort = Some((TcpRstReason::MPTCP_ERROR, SubflowDownReason::JoinFailed));
        }
    }

    /// A DSS on a subflow that carries data (RFC 8684 §3.3).
    fn dss(&mut self, seg: &TcpRepr<'_>, dss: Dss) {
        self.mp.dss_seen = true;
        let ack = dss.data_ack.map(|a| match a {
            DsnWire::Short(low) => self.core.seq.expand_data_ack(low),
            DsnWire::Long(dsn) => dsn,
        });
        if let Some(ack) = ack {
            match self.core.seq.on_data_ack(ack) {
                DataAckOutcome::Advanced { freed, .. } => {
                    self.core.data_acked_total += freed;
                    self.core.reinject_backoff = 0;
                    self.core.reinject_progress = true;
                }
                DataAckOutcome::Old => {}
                DataAckOutcome::Unsent { ack, highest_sent } => {
                    tracing::debug!(?ack, ?highest_sent, "mptcp: data ACK for unsent data");
                }
            }
        }
        // §3.3.4: the window is relative to the data ACK.
        self.core
            .seq
            .on_peer_window(ack, seg.window, self.snd_shift);
        if let Some(m) = dss.mapping {
            let expected = self.core.seq.rx_dsn(self.core.recv.contiguous_end());
            self.insert_mapping(ReceivedMapping::from_dss(&m, dss.data_fin, expected));
        }
    }

    fn insert_mapping(&mut self, mapping: ReceivedMapping) {
        self.mp.dss_seen = true;
        match self.mp.rx.insert(mapping, self.rcv_offset) {
            Ok(inserted) => {
                if let Some(fin) = inserted.data_fin
                    && let Err(err) = self.core.seq.on_peer_data_fin(fin)
                {
                    tracing::debug!(%err, "mptcp: DATA_FIN ignored");
                }
                match inserted.kind {
                    InsertKind::Infinite => {
                        // The peer fell back after our MP_FAIL (§3.7).
                        self.core.enter_fallback(FallbackReason::ChecksumFailure);
                    }
                    InsertKind::New
                    | InsertKind::Duplicate
                    | InsertKind::Ignored
                    | InsertKind::DataFinOnly => {}
                }
                self.core.check_peer_closed();
            }
            Err(MappingError::TooMany { offset, .. }) => {
                tracing::debug!(offset, "mptcp: mapping limit, payload refused");
                self.refuse = true;
            }
            Err(err) => {
                // §3.3.1: a mapping that conflicts, or a checksum presence that does
                // not match the negotiation, is a protocol error: reset the subflow.
                tracing::debug!(%err, "mptcp: bad mapping, resetting the subflow");
                self.refuse = true;
                self.mp.abort = Some((
                    TcpRstReason::MPTCP_ERROR,
                    SubflowDownReason::LocalReset {
                        reason: TcpRstReason::MPTCP_ERROR,
                    },
                ));
            }
        }
    }
}

impl ReceiveSink for RxOwner<'_> {
    fn on_segment(&mut self, seg: &TcpRepr<'_>) {
        let mut capable = None;
        let mut join = None;
        let mut dss = None;
        for option in &seg.options.mptcp {
            match option {
                MptcpOption::MpCapable(c) => capable = Some(*c),
                MptcpOption::MpJoin(j) => join = Some(*j),
                MptcpOption::Dss(d) => dss = Some(*d),
                MptcpOption::AddAddr(a) => {
                    if self.core.mode == ConnMode::Mptcp {
                        self.core
                            .signals
                            .push((SubflowId(u32::MAX), Signal::AddAddr(*a)));
                    }
                }
                MptcpOption::RemoveAddr(r) => {
                    if self.core.mode == ConnMode::Mptcp {
                        let ids = r.ids.iter().collect();
                        self.core
                            .signals
                            .push((SubflowId(u32::MAX), Signal::RemoveAddr(ids)));
                    }
                }
                MptcpOption::MpPrio(p) => {
                    // RFC 8684 §3.3.8: applies to the subflow it arrives on.
                    if self.mp.carries_data() {
                        self.mp.peer_backup = p.backup;
                    }
                }
                MptcpOption::MpFail(f) => {
                    if self.core.mode == ConnMode::Mptcp {
                        self.core
                            .signals
                            .push((SubflowId(u32::MAX), Signal::Fail(f.dsn)));
                    }
                }
                // RFC 8684 §3.5 allows MP_FASTCLOSE on an ACK too; the key is
                // checked with the whole connection at hand.
                MptcpOption::MpFastclose(f) => {
                    if self.core.mode == ConnMode::Mptcp {
                        self.core
                            .signals
                            .push((SubflowId(u32::MAX), Signal::Fastclose(f.receiver_key)));
                    }
                }
                // Read before the engine runs (it rides on RSTs).
                MptcpOption::MpTcpRst(_) => {}
                MptcpOption::Experimental(_) => {}
            }
        }
        match self.mp.kind {
            SubflowKind::Initial => match self.core.role {
                Role::Client => self.initial_client(seg, capable, dss),
                Role::Server => self.initial_server(seg, capable, dss),
            },
            SubflowKind::JoinOut { .. } => self.join_out(seg, join),
            SubflowKind::JoinIn { .. } => self.join_in(seg, join),
        }
        if self.core.data_level_ready() && self.mp.carries_data() && self.mp.abort.is_none() {
            match dss {
                Some(d) => self.dss(seg, d),
                None if !seg.flags.syn() => {
                    self.core
                        .seq
                        .on_peer_window(None, seg.window, self.snd_shift);
                }
                None => {}
            }
        }
    }

    fn deliver(&mut self, offset: u64, payload: &[u8]) -> usize {
        if self.refuse || self.mp.abort.is_some() {
            return 0;
        }
        match self.core.mode {
            ConnMode::Fallback => {
                let base = self.core.fallback_rx_base(self.mp);
                let Some(conn_offset) = base.map(|(sub, conn)| conn + (offset - sub)) else {
                    return 0;
                };
                let outcome = self.core.recv.insert(conn_offset, payload);
                if outcome.range_limit_bytes > 0 {
                    return 0;
                }
                self.core.out_of_order_bytes += outcome.out_of_order_bytes as u64;
                self.mp.bytes_delivered += payload.len() as u64;
                self.core.note_received();
                payload.len() - outcome.beyond_window_bytes
            }
            ConnMode::Mptcp if self.mp.carries_data() && self.core.peer_key.is_some() => {
                let core = &mut *self.core;
                let failures = &mut self.failures;
                let outcome = self.mp.rx.receive(offset, payload, |event| match event {
                    RxEvent::Data { dsn, bytes } => {
                        let at = core.seq.rx_offset(dsn);
                        let stored = core.recv.insert(at, bytes);
                        core.out_of_order_bytes += stored.out_of_order_bytes as u64;
                        if stored.range_limit_bytes > 0 || stored.beyond_window_bytes > 0 {
                            // The subflow has taken these bytes; the connection-level
                            // retransmission timer at the sender recovers them.
                            tracing::debug!(
                                ?dsn,
                                at,
                                len = bytes.len(),
                                beyond_window = stored.beyond_window_bytes,
                                range_limit = stored.range_limit_bytes,
                                right_edge = core.recv.right_edge(),
                                ranges = core.recv.ranges().count(),
                                "mptcp: reassembly refused mapped bytes"
                            );
                        }
                    }
                    RxEvent::ChecksumOk { .. } => {}
                    RxEvent::ChecksumFailed { dsn } => {
                        let _ = failures.try_push(ChecksumFailure(dsn));
                    }
                });
                self.mp.bytes_delivered += outcome.accepted as u64;
                self.core.note_received();
                outcome.accepted
            }
            ConnMode::Mptcp | ConnMode::Handshake => 0,
        }
    }

    fn receive_window(&self, _rcv_nxt: u64) -> u64 {
        self.core.recv.window() as u64
    }

    fn on_fin(&mut self, _offset: u64) {
        if self.core.mode == ConnMode::Fallback && !self.core.peer_closed_reported {
            // After a fallback the subflow's FIN is the end of the stream.
            self.core.peer_closed_reported = true;
            self.core.push_event(MptcpEvent::PeerClosed);
        }
    }
}

impl Core {
    /// Where received subflow bytes go after a fallback: (subflow offset, connection
    /// offset) of the mapping's start. Only the initial subflow carries data then.
    pub(crate) fn fallback_rx_base(&self, mp: &SubflowMp) -> Option<(u64, u64)> {
        match mp.rx.infinite() {
            Some((offset, dsn)) => Some((offset, self.seq.rx_offset(dsn))),
            None => matches!(mp.kind, SubflowKind::Initial).then_some((0, 0)),
        }
    }
}

impl MptcpConnection {
    /// Processes one segment the endpoint routed to subflow `id`.
    pub fn handle_segment(&mut self, now: Instant, id: SubflowId, seg: &TcpRepr<'_>) {
        let Some(i) = self.index_of(id) else {
            return;
        };
        if seg.flags.rst() {
            self.rst_options(now, i, seg);
        }
        self.share_snapshots(i);
        let sub = &mut self.subflows[i];
        let mut owner = RxOwner {
            core: &mut self.core,
            mp: &mut sub.mp,
            now,
            local: sub.tcp.local(),
            remote: sub.tcp.remote(),
            rcv_offset: sub.tcp.received_offset(),
            iss: sub.tcp.iss(),
            snd_shift: sub.tcp.window_shifts().1,
            rto: sub.tcp.rto(),
            refuse: false,
            failures: ArrayVec::new(),
        };
        if let Err(reason) = sub.tcp.handle_segment(now, seg, &mut owner) {
            tracing::trace!(%reason, subflow = id.0, "mptcp: segment dropped by the subflow");
        }
        let failures = core::mem::take(&mut owner.failures);
        let (local, remote) = (owner.local, owner.remote);
        if self.core.ack_now {
            self.core.ack_now = false;
            sub.tcp.request_ack();
        }
        if sub.mp.carries_data() {
            sub.refresh_stale(now, self.core.config.stale_rto_count);
        }
        if let Some((reason, down)) = sub.mp.abort.take() {
            self.reset_subflow(id, reason, down);
        }
        if self.core.mode == ConnMode::Mptcp && self.core.pm.is_none() {
            if let Some(s) = self
                .subflows
                .iter()
                .find(|s| s.mp.kind == SubflowKind::Initial)
            {
                let (l, r) = (s.local().ip(), s.remote());
                self.core.start_pm(l, r, now);
            } else {
                self.core.start_pm(local.ip(), remote, now);
            }
        }
        for ChecksumFailure(dsn) in failures {
            self.on_checksum_failure(now, id, dsn);
        }
        self.after_input(now);
    }

    /// MP_TCPRST and MP_FASTCLOSE on a RST, read before the engine takes the RST.
    fn rst_options(&mut self, now: Instant, i: usize, seg: &TcpRepr<'_>) {
        for option in &seg.options.mptcp {
            match option {
                MptcpOption::MpTcpRst(r) => self.subflows[i].mp.peer_rst_reason = Some(r.reason),
                MptcpOption::MpFastclose(f) => {
                    // RFC 8684 §3.5: the key authenticates the request; a wrong key
                    // is ignored.
                    if f.receiver_key == self.core.local_key.key
                        && self.core.mode == ConnMode::Mptcp
                    {
                        self.peer_fastclose(now);
                    } else {
                        tracing::debug!("mptcp: MP_FASTCLOSE with a wrong key ignored");
                    }
                }
                MptcpOption::MpCapable(_)
                | MptcpOption::MpJoin(_)
                | MptcpOption::Dss(_)
                | MptcpOption::AddAddr(_)
                | MptcpOption::RemoveAddr(_)
                | MptcpOption::MpPrio(_)
                | MptcpOption::MpFail(_)
                | MptcpOption::Experimental(_) => {}
            }
        }
    }

    /// The peer sent MP_FASTCLOSE with our key: every subflow goes, at once.
    fn peer_fastclose(&mut self, _now: Instant) {
        if self.core.closed.is_some() {
            return;
        }
        self.core.closed = Some(CloseReason::PeerFastClose);
        for s in &mut self.subflows {
            s.mp.phase = MpPhase::Dead;
            s.mp.down_reason
                .get_or_insert(SubflowDownReason::Reset { reason: None });
            s.tcp.abort();
        }
    }

    /// Connection-wide work after input (or a timer, or an application call).
    pub(crate) fn after_input(&mut self, now: Instant) {
        self.process_signals(now);
        self.release_send_buffer();
        self.reap_subflows(now);
        self.report_progress(now);
        self.drive_pm(now);
        self.check_close(now);
        self.update_conn_timers(now);
    }

    fn process_signals(&mut self, now: Instant) {
        for (_, signal) in core::mem::take(&mut self.core.signals) {
            match signal {
                Signal::AddAddr(a) => self.on_add_addr(a),
                Signal::RemoveAddr(ids) => {
                    // RFC 8684 §3.4.2: the subflows using those ids close, whether the
                    // address was announced or only used in an MP_JOIN.
                    let mut known: Vec<_> = match self.core.pm.as_ref() {
                        Some(pm) => ids
                            .iter()
                            .copied()
                            .filter(|id| pm.remote_addrs().any(|r| r.id == *id))
                            .collect(),
                        None => Vec::new(),
                    };
                    let victims: Vec<SubflowId> = self
                        .subflows
                        .iter()
                        .filter(|s| ids.contains(&s.mp.remote_id))
                        .map(|s| s.id)
                        .collect();
                    for s in self.subflows.iter().filter(|s| victims.contains(&s.id)) {
                        if !known.contains(&s.mp.remote_id) {
                            known.push(s.mp.remote_id);
                        }
                    }
                    if let Some(pm) = self.core.pm.as_mut() {
                        pm.on_remove_addr(ids.iter().copied());
                    }
                    for v in victims {
                        self.reset_subflow(
                            v,
                            TcpRstReason::ADMINISTRATIVELY_PROHIBITED,
                            SubflowDownReason::AddressRemoved,
                        );
                    }
                    for id in known {
                        self.core.push_event(MptcpEvent::AddressRemoved { id });
                    }
                }
                Signal::Fail(dsn) => self.on_mp_fail(now, dsn),
                Signal::Fastclose(key) => {
                    if key == self.core.local_key.key {
                        self.peer_fastclose(now);
                    } else {
                        tracing::debug!("mptcp: MP_FASTCLOSE with a wrong key ignored");
                    }
                }
            }
        }
        for s in &mut self.subflows {
            let backup = s.is_backup();
            s.tcp.set_backup(backup);
        }
    }

    fn on_add_addr(&mut self, a: crate::wire::mptcp::AddAddr) {
        let (Some(peer_key), Some(pm)) = (self.core.peer_key, self.core.pm.as_mut()) else {
            return;
        };
        match a.hmac {
            None => pm.on_add_addr_echo(a.addr_id, a.addr, a.port),
            Some(hmac) => {
                // RFC 8684 §3.4.1: HMAC(Key-S ‖ Key-R, id ‖ addr ‖ port); a bad one
                // is dropped silently.
                let local = self.core.local_key.key;
                if !verify_add_addr_hmac(&hmac, peer_key, local, a.addr_id.0, a.addr, a.port) {
                    tracing::debug!(addr = %a.addr, "mptcp: ADD_ADDR with a bad HMAC dropped");
                    return;
                }
                let known = pm.remote_addrs().any(|r| r.id == a.addr_id);
                pm.on_add_addr(a.addr_id, a.addr, a.port);
                if !known {
                    let port = a.port.unwrap_or_else(|| {
                        pm.remote_addrs()
                            .find(|r| r.id == crate::wire::mptcp::AddrId(0))
                            .map_or(0, |r| r.addr.port())
                    });
                    self.core.push_event(MptcpEvent::AddressAnnounced {
                        id: a.addr_id,
                        addr: SocketAddr::new(a.addr, port),
                    });
                }
            }
        }
    }

    /// Frees send-buffer bytes a data ACK covers (RFC 8684 §3.3.2), but not those a
    /// live subflow may still retransmit: a subflow re-reads its mappings' bytes from
    /// the buffer until its own ACK covers them. Stale subflows do not hold bytes.
    pub(crate) fn release_send_buffer(&mut self) {
        let mut hold = match self.core.mode {
            ConnMode::Mptcp => {
                let acked = self.core.seq.tx_offset(self.core.seq.snd_una());
                acked.min(self.send.end())
            }
            ConnMode::Fallback => {
                // After a fallback the subflow ACK is the only acknowledgment.
                let mut acked = self.send.start();
                for s in &self.subflows {
                    if let Some((sub, conn)) = self.core.fallback_tx_base(&s.mp) {
                        acked = acked.max(conn + s.tcp.acked_offset().saturating_sub(sub));
                    }
                }
                acked.min(self.send.end())
            }
            ConnMode::Handshake => return,
        };
        if self.core.mode == ConnMode::Mptcp {
            for s in &self.subflows {
                if s.mp.stale || s.tcp.state() == TcpState::Closed {
                    continue;
                }
                if let Some(dsn) = s.mp.tx.earliest_unacked_dsn(s.tcp.acked_offset()) {
                    hold = hold.min(self.core.seq.tx_offset(dsn));
                }
            }
        }
        let before = self.send.start();
        self.send.ack_until(hold);
        if self.send.start() > before {
            self.core.push_event(MptcpEvent::Writable);
        }
        let data_ack = self.core.seq.snd_una();
        for s in &mut self.subflows {
            let acked = s.tcp.acked_offset();
            s.mp.tx.prune(acked, data_ack);
            if s.mp
                .infinite_pending
                .is_some_and(|(start, _)| acked > start)
            {
                s.mp.infinite_pending = None;
            }
        }
    }

    /// Drains engine events; removes subflows that reached CLOSED, reinjecting what
    /// they carried that no data ACK covers (RFC 8684 §3.3.6).
    pub(crate) fn reap_subflows(&mut self, now: Instant) {
        for s in &mut self.subflows {
            while let Some(event) = s.tcp.poll_event() {
                match event {
                    TcpEvent::Reset => {
                        s.mp.down_reason.get_or_insert(SubflowDownReason::Reset {
                            reason: s.mp.peer_rst_reason,
                        });
                    }
                    TcpEvent::TimedOut => {
                        s.mp.down_reason.get_or_insert(SubflowDownReason::TimedOut);
                    }
                    TcpEvent::Connected
                    | TcpEvent::Readable
                    | TcpEvent::Writable
                    | TcpEvent::PeerClosed
                    | TcpEvent::Closed => {}
                }
            }
        }
        let mut i = 0;
        while i < self.subflows.len() {
            if self.subflows[i].tcp.state() != TcpState::Closed || self.subflows[i].mp.rst_out {
                i += 1;
                continue;
            }
            let s = self.subflows.remove(i);
            let reason = s.mp.down_reason.unwrap_or(SubflowDownReason::Closed);
            if self.core.closed_subflows.len() >= CLOSED_SUBFLOW_HISTORY {
                self.core.closed_subflows.pop_front();
            }
            self.core.closed_subflows.push_back(s.stats());
            if self.core.mode == ConnMode::Mptcp {
                let data_ack = self.core.seq.snd_una();
                for range in s.mp.tx.unacked_ranges(data_ack) {
                    let start = self.core.seq.tx_offset(range.start);
                    let end = self.core.seq.tx_offset(range.end);
                    if start < end {
                        self.core.reinject.push_back(start..end);
                        self.core.reinjections += 1;
                    }
                }
            }
            if let Some(pm) = self.core.pm.as_mut() {
                if let Some(key) = s.mp.path {
                    pm.on_subflow_closed(now, key);
                }
                if reason != SubflowDownReason::Closed {
                    // A path failed: repeat unechoed announcements on the others.
                    pm.resend_unechoed(now);
                }
            }
            self.core.actions.push_back(ConnAction::SubflowRemoved {
                id: s.id,
                local: s.local(),
                remote: s.remote(),
            });
            if s.mp.reported_up {
                self.core.push_event(MptcpEvent::SubflowDown {
                    id: s.id,
                    local: s.local(),
                    remote: s.remote(),
                    reason,
                });
            }
            self.on_subflow_lost(now, s.mp.kind, reason);
        }
        if self.subflows.is_empty() && self.core.orphaned_since.is_none() {
            self.core.orphaned_since = Some(now);
        }
    }

    /// A subflow is gone: decide what it means for the connection.
    fn on_subflow_lost(&mut self, _now: Instant, kind: SubflowKind, reason: SubflowDownReason) {
        if self.core.closed.is_some() || !self.subflows.is_empty() {
            return;
        }
        if self.core.mode == ConnMode::Mptcp
            && self.core.connected_reported
            && !self.core.subflows_closing
            && self.core.config.make_after_break > Duration::ZERO
        {
            // Make-after-break: try every path again while the connection waits.
            self.retry_paths(_now);
        }
        let close = match self.core.mode {
            // The handshake failed, or the one TCP connection ended.
            ConnMode::Handshake | ConnMode::Fallback => true,
            ConnMode::Mptcp => {
                kind == SubflowKind::Initial && !self.core.connected_reported
                    || self.core.config.make_after_break == Duration::ZERO
                    || self.core.subflows_closing
            }
        };
        if close {
            let reason = match reason {
                SubflowDownReason::Closed => CloseReason::Normal,
                SubflowDownReason::Reset { reason } => CloseReason::Reset { reason },
                SubflowDownReason::TimedOut => CloseReason::TimedOut,
                SubflowDownReason::LocalReset { reason } => CloseReason::Reset {
                    reason: Some(reason),
                },
                SubflowDownReason::JoinFailed | SubflowDownReason::AddressRemoved => {
                    CloseReason::NoSubflows
                }
            };
            let reason = if self.core.subflows_closing {
                CloseReason::Normal
            } else {
                reason
            };
            self.core.closed = Some(reason);
        }
    }

    /// Connected / SubflowUp events and the path manager's view of established pairs.
    fn report_progress(&mut self, _now: Instant) {
        if !self.core.connected_reported
            && self.core.mode != ConnMode::Handshake
            && self
                .subflows
                .iter()
                .any(|s| s.mp.kind == SubflowKind::Initial && s.tcp.state().is_synchronized())
            && (self.core.mode == ConnMode::Fallback || self.core.peer_key.is_some())
        {
            self.core.connected_reported = true;
            self.core.push_event(MptcpEvent::Connected);
        }
        let mut came_up = false;
        for s in &mut self.subflows {
            if s.mp.reported_up || !s.mp.carries_data() || !s.tcp.state().is_synchronized() {
                continue;
            }
            if s.mp.kind == SubflowKind::Initial && self.core.mode != ConnMode::Mptcp {
                continue;
            }
            s.mp.reported_up = true;
            if let (Some(pm), Some(key)) = (self.core.pm.as_mut(), s.mp.path)
                && s.mp.kind != SubflowKind::Initial
            {
                pm.on_subflow_established(key);
            }
            self.core.events.push_back(MptcpEvent::SubflowUp {
                id: s.id,
                local: s.tcp.local(),
                remote: s.tcp.remote(),
                backup: s.mp.backup || s.mp.peer_backup,
            });
            came_up |= s.mp.kind != SubflowKind::Initial;
        }
        if came_up {
            // A stale subflow found no healthy one to hand its data to when it went
            // stale; a new one (a make-before-break replacement) takes it now.
            let stale: Vec<SubflowId> = self
                .subflows
                .iter()
                .filter(|s| s.mp.stale && s.mp.carries_data())
                .map(|s| s.id)
                .collect();
            for id in stale {
                self.reinject_from(id);
            }
        }
    }

    /// Turns path manager actions into endpoint actions and signals. Clients wait for
    /// the full establishment (RFC 8684 §3.1: the server must know our key before a
    /// join can be authenticated).
    pub(crate) fn drive_pm(&mut self, now: Instant) {
        if self.core.mode != ConnMode::Mptcp || self.core.closed.is_some() {
            return;
        }
        // Joins wait for the full establishment; everything else goes at once. An
        // application that closed its sending side still has data in flight and may
        // still receive (a request, then shutdown, then a long response): new paths
        // help until both DATA_FINs are through.
        let may_open = (self.core.role == Role::Server || self.core.fully_established)
            && !self.core.subflows_closing;
        if may_open && !self.core.deferred_opens.is_empty() {
            let deferred = core::mem::take(&mut self.core.deferred_opens);
            self.core.actions.extend(deferred);
        }
        let Some(pm) = self.core.pm.as_mut() else {
            return;
        };
        // RFC 8684 §3.4.1: ADD_ADDR is repeated until echoed; the first wait is the
        // RTO of the live subflows (the largest, as Linux's ADD_ADDR timer). Only an
        // announcement waiting for its echo uses it, and this runs on every segment.
        if pm.awaiting_echo()
            && let Some(rto) = self
                .subflows
                .iter()
                .filter(|s| s.mp.carries_data() && !s.mp.stale)
                .map(|s| s.rto())
                .max()
        {
            pm.set_rto(rto);
        }
        pm.handle_timeout(now);
        let mut request_ack = false;
        let mut close = Vec::new();
        while let Some(action) = pm.poll_action() {
            match action {
                PmAction::OpenSubflow {
                    key,
                    local,
                    remote,
                    backup,
                } => {
                    self.core.pending_opens.push_back(key);
                    let open = ConnAction::OpenSubflow {
                        local,
                        remote,
                        local_id: key.local,
                        remote_id: key.remote,
                        backup,
                    };
                    if may_open {
                        self.core.actions.push_back(open);
                    } else {
                        self.core.deferred_opens.push(open);
                    }
                }
                PmAction::SendAddAddr { id, addr, port } => {
                    self.core.add_addr_out.retain(|(i, _, _)| *i != id);
                    self.core.add_addr_out.push_back((id, addr, port));
                    request_ack = true;
                }
                PmAction::EchoAddAddr { id, addr, port } => {
                    self.core.echo_out.push_back((id, addr, port));
                    request_ack = true;
                }
                PmAction::SendRemoveAddr { id } => {
                    self.core.remove_out.push_back(id);
                    request_ack = true;
                }
                PmAction::CloseSubflows { side, id } => close.push((side, id)),
                PmAction::AddAddrGaveUp { id } => {
                    tracing::debug!(?id, "mptcp: ADD_ADDR never echoed");
                }
            }
        }
        for (side, id) in close {
            let victims: Vec<SubflowId> = self
                .subflows
                .iter()
                .filter(|s| match side {
                    AddrSide::Local => s.mp.local_id == id,
                    AddrSide::Remote => s.mp.remote_id == id,
                })
                .map(|s| s.id)
                .collect();
            for v in victims {
                self.reset_subflow(
                    v,
                    TcpRstReason::ADMINISTRATIVELY_PROHIBITED,
                    SubflowDownReason::AddressRemoved,
                );
            }
        }
        if request_ack {
            self.request_ack_any();
        }
        self.retire_surplus();
    }

    /// Keeps each address pair at its path manager budget once a subflow on it works.
    /// Make-before-break opens a replacement next to a stale subflow on the same pair;
    /// when the path came back both lived on, one of them idle, and the replaced one
    /// could never be replaced again. So as soon as a subflow of a pair over budget is
    /// usable (carries data, not stale), the surplus goes: a handshake still under way
    /// is reset at once; of usable subflows the one with the smaller window (the one
    /// just out of an RTO, as against the one that carried the data meanwhile) takes
    /// no new data and is reset once everything it sent is acknowledged, so nothing
    /// needs sending again. A stale subflow is left to recover (and be compared then)
    /// or to be declared failed. Only the side that opens subflows decides; the peer
    /// sees a RST with MP_TCPRST "administratively prohibited" (by policy, RFC 8684
    /// §3.6).
    fn retire_surplus(&mut self) {
        let Some(pm) = self.core.pm.as_ref() else {
            return;
        };
        if !pm.config().open_subflows || self.core.subflows_closing {
            return;
        }
        let alive = |s: &crate::mptcp::subflow::Subflow| {
            s.mp.path.is_some()
                && s.mp.phase != MpPhase::Dead
                && !s.mp.rst_out
                && !s.tcp.is_closing()
                && s.tcp.state() != TcpState::Closed
        };
        let usable = |s: &crate::mptcp::subflow::Subflow| s.schedulable() && !s.mp.stale;
        // The common case, checked without the path manager's maps: nothing retiring
        // and no two live subflows on one pair. Every budget is at least one, so then
        // no pair is over its budget and nothing below would act.
        let lone = |i: usize| {
            let s = &self.subflows[i];
            !alive(s)
                || (!s.mp.retiring
                    && self.subflows[i + 1..].iter().all(|o| {
                        !alive(o)
                            || o.mp.path.map(|k| (k.local, k.remote))
                                != s.mp.path.map(|k| (k.local, k.remote))
                    }))
        };
        if (0..self.subflows.len()).all(lone) {
            return;
        }
        // Runs on every transmit, so the common case (no pair over budget) allocates
        // nothing: each pair is visited once, at its first live subflow, and counted in
        // place; subflows are few, so the quadratic scan is cheaper than a collection.
        for first in 0..self.subflows.len() {
            let s = &self.subflows[first];
            let Some(pair) = s.mp.path.filter(|_| alive(s)).map(|k| (k.local, k.remote)) else {
                continue;
            };
            let on_pair = |s: &crate::mptcp::subflow::Subflow| {
                alive(s) && s.mp.path.is_some_and(|k| (k.local, k.remote) == pair)
            };
            if self.subflows[..first].iter().any(on_pair) {
                continue;
            }
            let budget = pm.budget(pair.0, pair.1);
            let (count, any_usable) = self.subflows[first..]
                .iter()
                .filter(|s| on_pair(s) && !s.mp.retiring)
                .fold((0, false), |(n, u), s| (n + 1, u || usable(s)));
            if count <= budget || !any_usable {
                continue;
            }
            let mut members: Vec<usize> = (first..self.subflows.len())
                .filter(|&i| on_pair(&self.subflows[i]) && !self.subflows[i].mp.retiring)
                .collect();
            members.sort_by_key(|&i| {
                let s = &self.subflows[i];
                (!usable(s), core::cmp::Reverse(s.tcp.cwnd()), s.id)
            });
            for &i in &members[budget..] {
                let s = &mut self.subflows[i];
                if s.mp.stale {
                    continue;
                }
                tracing::debug!(subflow = s.id.0, "mptcp: retiring a surplus subflow");
                s.mp.retiring = true;
            }
        }
        let done: Vec<(SubflowId, Option<PathKey>)> = self
            .subflows
            .iter()
            .filter(|s| s.mp.retiring && alive(s))
            .filter(|s| !s.mp.carries_data() || s.mp.stale || s.outstanding() == 0)
            .map(|s| (s.id, s.mp.path))
            .collect();
        for (id, key) in done {
            if let (Some(pm), Some(key)) = (self.core.pm.as_mut(), key) {
                pm.retire(key);
            }
            let reason = TcpRstReason::ADMINISTRATIVELY_PROHIBITED;
            self.reset_subflow(id, reason, SubflowDownReason::LocalReset { reason });
        }
    }

    /// Both DATA_FINs done: close the subflows (RFC 8684 §3.3.3) and report.
    pub(crate) fn check_close(&mut self, _now: Instant) {
        if self.core.closed.is_some() && !self.core.closed_reported {
            self.core.closed_reported = true;
            let reason = self.core.closed.unwrap_or(CloseReason::Normal);
            self.core.push_event(MptcpEvent::Closed { reason });
            return;
        }
        if self.core.mode != ConnMode::Mptcp || self.core.subflows_closing {
            return;
        }
        let ours_done = matches!(
            self.core.seq.data_fin_tx(),
            crate::mptcp::data_seq::DataFinTx::Acked { .. }
        );
        if ours_done && self.core.peer_closed_reported {
            self.core.subflows_closing = true;
            self.core.data_fin_rtx = None;
            for s in &mut self.subflows {
                s.tcp.close();
            }
            self.core.closed = Some(CloseReason::Normal);
            self.core.closed_reported = true;
            self.core.push_event(MptcpEvent::Closed {
                reason: CloseReason::Normal,
            });
        }
    }
}
