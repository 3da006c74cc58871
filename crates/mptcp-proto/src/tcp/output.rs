//! Segment construction: SYNs, retransmissions, tail loss probes, new data under the
//! congestion and peer windows (with Nagle and sender SWS avoidance), probes, ACKs and
//! resets.

use arrayvec::ArrayVec;

use crate::seq::SeqNum;
use crate::time::Instant;
use crate::wire::tcp::{SackBlock, TcpFlags, TcpOptions, TcpRepr, Timestamps};

use super::recovery::{Recovery, TlpProbe};
use super::{AckState, ReceiveSink, SendSource, TcpConnection, TcpState};

/// Bytes of TCP options that fit in a header (RFC 9293 §3.1: data offset <= 15 words).
const MAX_OPTION_SPACE: usize = 40;
/// Timestamps option with its two NOPs of padding (RFC 7323 Appendix A).
const TIMESTAMPS_SPACE: usize = 12;

/// One segment to send, plus what the layer above needs to decorate it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transmit<'a> {
    pub segment: TcpRepr<'a>,
    /// Stream offset of the first payload byte (meaningful when there is payload).
    pub offset: u64,
    /// The payload was sent before.
    pub retransmission: bool,
    /// A super-segment ([`crate::tcp::TcpConfig::max_segment_payload`]): the payload is
    /// longer than one wire segment carries, and the device must cut it into pieces of
    /// this many payload bytes (the last one shorter), each with a copy of the header
    /// and options (TSO, virtio_net_hdr `gso_size`). `None` for a segment that fits.
    pub gso_size: Option<u16>,
}

/// RFC 9293 §3.10.7.1: the RST answering `seg` when no connection exists (CLOSED), or
/// `None` when `seg` is itself a RST. The endpoint uses this for unknown 4-tuples.
pub fn reset_for(seg: &TcpRepr<'_>) -> Option<TcpRepr<'static>> {
    if seg.flags.rst() {
        return None;
    }
    let (seq, ack, flags) = if seg.flags.ack() {
        (seg.ack, SeqNum(0), TcpFlags::RST)
    } else {
        (
            SeqNum(0),
            seg.seq + seg.segment_len(),
            TcpFlags::RST | TcpFlags::ACK,
        )
    };
    Some(TcpRepr {
        src_port: seg.dst_port,
        dst_port: seg.src_port,
        seq,
        ack,
        flags,
        window: 0,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    })
}

/// Which kind of data segment is being built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sending {
    /// Normal transmission under cwnd, Nagle and SWS rules.
    Normal,
    /// A probe (TLP or persist) that may exceed cwnd and ignores Nagle.
    Probe,
}

impl TcpConnection {
    /// The next segment to send, if any. Call until it returns `None`. Payload borrows
    /// from the owner's buffer (`'a`).
    pub fn poll_transmit<'a, O>(&mut self, now: Instant, owner: &mut O) -> Option<Transmit<'a>>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        if let Some((seq, ack)) = self.rst_pending.take() {
            return Some(self.emit_rst(seq, ack));
        }
        let transmit = match self.state {
            TcpState::Closed => None,
            TcpState::SynSent | TcpState::SynReceived => {
                if self.syn_pending {
                    Some(self.emit_syn(now, owner))
                } else {
                    None
                }
            }
            TcpState::TimeWait => {
                if self.ack_state == AckState::Now {
                    Some(self.emit_control(now, owner, self.snd_nxt, TcpFlags::ACK))
                } else {
                    None
                }
            }
            TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck => self.transmit_synchronized(now, owner),
        };
        if let Some(t) = &transmit {
            self.stats.segments_sent += 1;
            if t.retransmission {
                self.stats.retransmits += 1;
                self.stats.bytes_retransmitted += t.segment.payload.len() as u64;
                if matches!(self.recovery, Recovery::Fast { .. }) {
                    self.stats.fast_retransmits += 1;
                }
            } else {
                self.stats.bytes_sent += t.segment.payload.len() as u64;
            }
        }
        transmit
    }

    fn transmit_synchronized<'a, O>(&mut self, now: Instant, owner: &mut O) -> Option<Transmit<'a>>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        // RFC 6675 §5 (NextSeg rule 1) / RFC 8985: repair losses first, while
        // cwnd - pipe allows.
        let mut paced = false;
        if let Some(idx) = self.sent.next_lost()
            && (self.fast_retransmit_pending || self.cc.window() > self.effective_pipe())
        {
            // The first retransmission of an episode goes at once (RFC 5681 §3.2 step
            // 2); the rest of the repair is paced like new data.
            let len = self.sent.get(idx).map_or(0, |s| s.data_len());
            paced = !self.fast_retransmit_pending && self.pace_wait(now, len);
            if !paced && let Some(t) = self.retransmit(now, owner, idx) {
                self.fast_retransmit_pending = false;
                return Some(t);
            }
        }
        if self.tlp_pending {
            self.tlp_pending = false;
            if let Some(t) = self.send_tail_loss_probe(now, owner) {
                return Some(t);
            }
        }
        // A held retransmission keeps new data back too: repairs go first.
        if !paced && let Some(t) = self.send_new(now, owner, Sending::Normal) {
            return Some(t);
        }
        if self.persist_probe_pending {
            self.persist_probe_pending = false;
            if let Some(t) = self.send_new(now, owner, Sending::Probe) {
                return Some(t);
            }
            if owner.available(self.snd_nxt) > 0 || (self.fin_queued && self.fin_offset.is_none()) {
                return Some(self.zero_window_probe(now, owner));
            }
            // Nothing waits for the window any more: an MPTCP subflow's data can go out
            // on another subflow while this one's window stays closed. The timer,
            // which only a window update stops, would otherwise probe forever for
            // nothing; the connection runs its own probe when its data waits.
            self.persist_at = None;
            self.persist_backoff = 0;
        }
        if self.window_probe_pending {
            self.window_probe_pending = false;
            return Some(self.zero_window_probe(now, owner));
        }
        if self.keepalive_probe_pending {
            self.keepalive_probe_pending = false;
            // RFC 9293 §3.8.4: SEG.SEQ = SND.NXT - 1, no data.
            self.stats.keepalive_probes += 1;
            return Some(self.emit_control(
                now,
                owner,
                self.snd_nxt.wrapping_sub(1),
                TcpFlags::ACK,
            ));
        }
        if self.ack_state == AckState::Now || self.window_update_due(owner) {
            return Some(self.emit_control(now, owner, self.snd_nxt, TcpFlags::ACK));
        }
        None
    }

    /// RFC 9293 §3.8.6.1: a zero-window probe; like Linux, an old sequence number
    /// without data, which the peer must answer with its window.
    fn zero_window_probe<'a, O>(&mut self, now: Instant, owner: &mut O) -> Transmit<'a>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        self.stats.zero_window_probes += 1;
        self.emit_control(now, owner, self.snd_una.wrapping_sub(1), TcpFlags::ACK)
    }

    /// RFC 8985 §7.3: send new data if the peer's window allows, else retransmit the
    /// highest-sequence segment.
    fn send_tail_loss_probe<'a, O>(&mut self, now: Instant, owner: &mut O) -> Option<Transmit<'a>>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        if self.tlp.is_some() || self.recovery.is_active() {
            return None;
        }
        let (transmit, retransmission) = match self.send_new(now, owner, Sending::Probe) {
            Some(t) => (t, false),
            None => {
                let idx = self.sent.len().checked_sub(1)?;
                (self.retransmit(now, owner, idx)?, true)
            }
        };
        self.stats.tlp_count += 1;
        self.tlp = Some(TlpProbe {
            end: self.snd_nxt_max(),
            retransmission,
        });
        self.tlp_at = None;
        self.rto_at = Some(now + self.rtt.rto());
        Some(transmit)
    }

    /// Option bytes used by every data segment (timestamps, the owner's options, SACK
    /// blocks) and how many SACK blocks fit.
    fn option_budget<'a, O>(&self, owner: &O, data: bool) -> (usize, usize)
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        let ts = if self.ts_ok { TIMESTAMPS_SPACE } else { 0 };
        let owner_space = if data {
            owner.option_space()
        } else {
            owner.control_option_space()
        };
        let fixed = ts + owner_space;
        let blocks =
            if self.sack_ok && (!self.rcv_sack.ranges().is_empty() || self.rcv_sack.has_dsack()) {
                // A SACK option is 2 + 8n bytes, aligned with two NOPs.
                (MAX_OPTION_SPACE.saturating_sub(fixed).saturating_sub(4) / 8).min(4)
            } else {
                0
            };
        let sack = if blocks > 0 { 4 + 8 * blocks } else { 0 };
        (fixed + sack, blocks)
    }

    /// Payload of one wire segment given `option_bytes` of options (RFC 6691: the MSS
    /// counts options against the payload).
    fn segment_payload(&self, option_bytes: usize) -> usize {
        (self.send_mss as usize).saturating_sub(option_bytes).max(1)
    }

    /// Largest payload of one emitted segment: one wire segment, or with
    /// `max_segment_payload` a super-segment of whole wire segments for the device to
    /// cut (every piece then carries the same options, so each is a full MSS).
    fn max_payload(&self, option_bytes: usize) -> usize {
        let segment = self.segment_payload(option_bytes);
        match self.config.max_segment_payload {
            Some(max) if max > segment => max / segment * segment,
            Some(_) | None => segment,
        }
    }

    /// RFC 3465's L in bytes: 2 MSS, or one super-segment when the engine emits them
    /// (see [`crate::cc::AckEvent::slow_start_limit`]).
    pub(super) fn slow_start_limit(&self) -> u64 {
        let two = 2 * u64::from(self.send_mss);
        match self.config.max_segment_payload {
            Some(max) => two.max(max as u64),
            None => two,
        }
    }

    /// The device's cut size for a payload of `len` bytes, if it needs cutting.
    fn gso_size(&self, option_bytes: usize, len: usize) -> Option<u16> {
        let segment = self.segment_payload(option_bytes);
        (len > segment).then(|| u16::try_from(segment).unwrap_or(u16::MAX))
    }

    fn retransmit<'a, O>(&mut self, now: Instant, owner: &mut O, idx: usize) -> Option<Transmit<'a>>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        let seg = *self.sent.get(idx)?;
        let (option_bytes, blocks) = self.option_budget(owner, seg.data_len() > 0);
        let window = self.advertise_window(owner, false);
        let data_len = seg.data_len();
        let (payload, fin) = if data_len == 0 {
            (&[][..], seg.fin)
        } else {
            let want = data_len.min(self.max_payload(option_bytes) as u64) as usize;
            let payload = owner.bytes(seg.start, want);
            if payload.is_empty() {
                tracing::warn!(offset = seg.start, "tcp: owner has no bytes to retransmit");
                return None;
            }
            let payload = &payload[..payload.len().min(want)];
            if (payload.len() as u64) < data_len {
                self.sent.split(idx, seg.start + payload.len() as u64);
                (payload, false)
            } else {
                (payload, seg.fin)
            }
        };
        self.sent.retransmitted(idx, now);
        self.paced_send(now, payload.len() as u64);
        if self.rto_at.is_none() || seg.start == self.snd_una {
            // Resending the oldest segment restarts the timer, as Linux does
            // (tcp_xmit_retransmit_queue): the timer last restarted with the last
            // cumulative ACK, before the loss was even detected, and with a steady RTT
            // (RTO close to it) it expired just before the repair's ACK could return,
            // collapsing a window that fast recovery was about to restore.
            self.rto_at = Some(now + self.rtt.rto());
        }
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if !payload.is_empty() {
            flags |= TcpFlags::PSH;
        }
        let gso_size = self.gso_size(option_bytes, payload.len());
        let segment = self.build(now, self.snd_seq(seg.start), flags, window, blocks, payload);
        Some(Transmit {
            segment,
            offset: seg.start,
            retransmission: true,
            gso_size,
        })
    }

    /// New data (and/or our FIN) at SND.NXT.
    fn send_new<'a, O>(
        &mut self,
        now: Instant,
        owner: &mut O,
        mode: Sending,
    ) -> Option<Transmit<'a>>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        if !self.state.can_send_data() || self.fin_offset.is_some() {
            return None;
        }
        let avail = owner.available(self.snd_nxt);
        let fin_wanted = self.fin_queued;
        let win_room = (self.snd_una + self.snd_wnd).saturating_sub(self.snd_nxt);
        let cwnd_room = match mode {
            Sending::Normal => self.cc.window().saturating_sub(self.effective_pipe()),
            Sending::Probe => u64::MAX,
        };
        let (option_bytes, blocks) = self.option_budget(owner, avail > 0);
        let full = self.segment_payload(option_bytes) as u64;
        let mut len = avail
            .min(self.max_payload(option_bytes) as u64)
            .min(win_room)
            .min(cwnd_room);
        if len > full && len < avail {
            // A super-segment cut short by a window: whole wire segments only, as
            // Linux's TSO does, so the window's remainder does not go out as a runt.
            len -= len % full;
        }
        // RFC 7661 (and Linux's tcp_is_cwnd_limited): cwnd grows only while it is what
        // limits sending. When the data or the peer's window run out first, a window
        // that is never used would otherwise grow without bound. The caller drains
        // this function until it returns None, so the last call's verdict stands.
        self.app_limited = cwnd_room > avail.min(win_room);
        if avail > 0 && len == 0 {
            if win_room == 0 && self.sent.is_empty() {
                self.arm_persist(now);
            }
            return None;
        }
        if avail == 0 && !fin_wanted {
            return None;
        }
        if avail == 0 && win_room == 0 {
            // A FIN occupies sequence space, which a zero window refuses (RFC 9293
            // §3.10.7.4): wait for the window like data does, probing meanwhile, so the
            // FIN's retransmissions do not count against a peer that is alive.
            if self.sent.is_empty() {
                self.arm_persist(now);
            }
            return None;
        }
        if len > 0 && len < full && mode == Sending::Normal {
            let sendable = if len == avail {
                // RFC 9293 §3.7.4 Nagle: a small final segment waits for the ACK of
                // what is in flight, unless disabled or closing.
                self.config.nodelay || self.sent.is_empty() || fin_wanted || owner.closing()
            } else {
                // §3.8.6.2.1 sender SWS avoidance: a window-limited partial segment
                // goes only if it is at least half the largest window seen.
                len >= self.max_snd_wnd / 2
            };
            if !sendable {
                if self.sent.is_empty() {
                    // Nothing in flight will bring an ACK: the persist timer is the
                    // override timeout.
                    self.arm_persist(now);
                }
                return None;
            }
        }
        if len > 0 && mode == Sending::Normal && self.pace_wait(now, len) {
            return None;
        }
        let window = self.advertise_window(owner, false);
        let start = self.snd_nxt;
        let payload = if len > 0 {
            let p = owner.bytes(start, len as usize);
            &p[..p.len().min(len as usize)]
        } else {
            &[][..]
        };
        if len > 0 && payload.is_empty() {
            tracing::warn!(offset = start, "tcp: owner offered data but gave no bytes");
            return None;
        }
        let fin = fin_wanted && payload.len() as u64 == avail;
        let end = start + payload.len() as u64 + u64::from(fin);
        self.sent.push(start, end, fin, now);
        self.paced_send(now, payload.len() as u64);
        self.snd_nxt = end;
        if fin {
            self.fin_offset = Some(start + payload.len() as u64);
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        self.persist_at = None;
        let mut flags = TcpFlags::ACK;
        if fin {
            flags |= TcpFlags::FIN;
        }
        if !payload.is_empty() && payload.len() as u64 == avail {
            flags |= TcpFlags::PSH;
        }
        let gso_size = self.gso_size(option_bytes, payload.len());
        let segment = self.build(now, self.snd_seq(start), flags, window, blocks, payload);
        if mode == Sending::Normal {
            self.schedule_tlp(now);
        }
        Some(Transmit {
            segment,
            offset: start,
            retransmission: false,
            gso_size,
        })
    }

    /// The pacing rate now, bytes per second (`None`: unpaced).
    fn pacing_rate(&self) -> Option<u64> {
        let pacer = self.pacer.as_ref()?;
        pacer.rate(self.cc.window(), self.cc.ssthresh(), self.rtt.srtt())
    }

    /// Whether the pacer holds back a data segment of `len` bytes now; if so, its
    /// release time becomes a timer.
    fn pace_wait(&mut self, now: Instant, len: u64) -> bool {
        if self.pacer.is_none() {
            return false;
        }
        let rate = self.pacing_rate();
        let segment = self.max_payload(0) as u64;
        let Some(pacer) = self.pacer.as_mut() else {
            return false;
        };
        match pacer.release_at(now, len, segment, rate) {
            Some(at) => {
                if self.pace_at != Some(at) {
                    self.stats.pacing_waits += 1;
                }
                self.pace_at = Some(at);
                true
            }
            None => false,
        }
    }

    /// A data segment of `len` payload bytes left: it uses up pacing credit.
    fn paced_send(&mut self, now: Instant, len: u64) {
        if len == 0 || self.pacer.is_none() {
            return;
        }
        let rate = self.pacing_rate();
        let segment = self.max_payload(0) as u64;
        if let Some(pacer) = self.pacer.as_mut() {
            pacer.on_sent(now, len, segment, rate);
            self.pace_at = None;
        }
    }

    /// A segment without data at send offset `offset` (pure ACK or probe).
    fn emit_control<'a, O>(
        &mut self,
        now: Instant,
        owner: &mut O,
        offset: u64,
        flags: TcpFlags,
    ) -> Transmit<'a>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        let (_, blocks) = self.option_budget(owner, false);
        let window = self.advertise_window(owner, false);
        let segment = self.build(now, self.snd_seq(offset), flags, window, blocks, &[]);
        Transmit {
            segment,
            offset,
            retransmission: false,
            gso_size: None,
        }
    }

    pub(super) fn emit_syn<'a, O>(&mut self, now: Instant, owner: &mut O) -> Transmit<'a>
    where
        O: SendSource<'a> + ReceiveSink + ?Sized,
    {
        self.syn_pending = false;
        let active = self.state == TcpState::SynSent;
        let window = self.advertise_window(owner, true);
        let mut options = TcpOptions {
            mss: Some(self.config.mss),
            ..TcpOptions::default()
        };
        if active {
            options.window_scale = Some(self.rcv_shift);
            options.sack_permitted = self.config.sack;
            if self.config.timestamps {
                options.timestamps = Some(Timestamps {
                    tsval: self.tsval(now),
                    tsecr: 0,
                });
            }
        } else {
            if self.ws_ok {
                options.window_scale = Some(self.rcv_shift);
            }
            options.sack_permitted = self.sack_ok;
            if self.ts_ok {
                options.timestamps = Some(Timestamps {
                    tsval: self.tsval(now),
                    tsecr: self.ts_recent,
                });
            }
        }
        let retransmission = self.syn_sent_at.is_some();
        if self.syn_sent_at.is_none() {
            self.syn_sent_at = Some(now);
        }
        if self.rto_at.is_none() {
            self.rto_at = Some(now + self.rtt.rto());
        }
        let flags = if active {
            TcpFlags::SYN
        } else {
            TcpFlags::SYN | TcpFlags::ACK
        };
        let ack = if active { SeqNum(0) } else { self.rcv_seq(0) };
        if !active {
            self.on_ack_sent();
        }
        Transmit {
            segment: TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq: self.iss,
                ack,
                flags,
                window,
                urgent: 0,
                options,
                payload: &[],
            },
            offset: 0,
            retransmission,
            gso_size: None,
        }
    }

    fn emit_rst<'a>(&mut self, seq: SeqNum, ack: Option<SeqNum>) -> Transmit<'a> {
        let (flags, ack) = match ack {
            Some(ack) => (TcpFlags::RST | TcpFlags::ACK, ack),
            None => (TcpFlags::RST, SeqNum(0)),
        };
        Transmit {
            segment: TcpRepr {
                src_port: self.local.port(),
                dst_port: self.remote.port(),
                seq,
                ack,
                flags,
                window: 0,
                urgent: 0,
                options: TcpOptions::default(),
                payload: &[],
            },
            offset: 0,
            retransmission: false,
            gso_size: None,
        }
    }

    /// A synchronized-state segment: ACK field, window, timestamps and SACK blocks.
    fn build<'a>(
        &mut self,
        now: Instant,
        seq: SeqNum,
        flags: TcpFlags,
        window: u16,
        sack_blocks: usize,
        payload: &'a [u8],
    ) -> TcpRepr<'a> {
        let mut options = TcpOptions::default();
        if self.ts_ok {
            options.timestamps = Some(Timestamps {
                tsval: self.tsval(now),
                tsecr: self.ts_recent,
            });
        }
        if sack_blocks > 0 {
            if self.rcv_sack.has_dsack() {
                self.stats.dsack_sent += 1;
            }
            let blocks: ArrayVec<(u64, u64), 4> = self.rcv_sack.blocks(sack_blocks);
            for (l, r) in blocks {
                options.sack_blocks.push(SackBlock {
                    left: self.rcv_seq(l),
                    right: self.rcv_seq(r),
                });
            }
        }
        self.on_ack_sent();
        TcpRepr {
            src_port: self.local.port(),
            dst_port: self.remote.port(),
            seq,
            ack: self.rcv_seq(self.rcv_nxt),
            flags,
            window,
            urgent: 0,
            options,
            payload,
        }
    }

    fn on_ack_sent(&mut self) {
        self.ack_state = AckState::Idle;
        self.delack_at = None;
        self.unacked_bytes = 0;
        self.last_ack_sent = self.rcv_nxt;
    }

    /// The right edge the owner would let us offer now, after receiver SWS avoidance
    /// (RFC 9293 §3.8.6.2.2: move it only by at least min(buffer/2, MSS)).
    fn window_candidate<S: ReceiveSink + ?Sized>(&self, owner: &S, syn: bool) -> u64 {
        let shift = if syn { 0 } else { self.rcv_shift };
        let max = 0xffff_u64 << shift;
        let avail = owner
            .receive_window(self.rcv_nxt)
            .min(self.config.recv_buffer as u64)
            .min(max);
        let candidate = self.rcv_nxt + avail;
        let threshold = (self.config.recv_buffer as u64 / 2)
            .min(u64::from(self.send_mss))
            .max(1);
        if candidate >= self.rcv_adv + threshold || avail == self.config.recv_buffer as u64 {
            candidate.max(self.rcv_adv)
        } else {
            self.rcv_adv
        }
    }

    /// The window field for a segment sent now; never shrinks the offered right edge
    /// (RFC 9293 §3.8.6).
    fn advertise_window<S: ReceiveSink + ?Sized>(&mut self, owner: &S, syn: bool) -> u16 {
        self.rcv_adv = self.window_candidate(owner, syn);
        let shift = if syn { 0 } else { self.rcv_shift };
        let wnd = self.rcv_adv.saturating_sub(self.rcv_nxt) >> shift;
        wnd.min(0xffff) as u16
    }

    /// A window update is worth a segment of its own when the window the peer knows is
    /// too small for it to send a full segment (under two MSS: it may be stalled on
    /// it) and the offer can now grow past the SWS threshold.
    fn window_update_due<S: ReceiveSink + ?Sized>(&self, owner: &S) -> bool {
        if !self.state.can_receive_data() {
            return false;
        }
        let offered = self.rcv_adv.saturating_sub(self.rcv_nxt);
        let mss = self.rcv_mss.max(u64::from(self.send_mss));
        if offered >= 2 * mss {
            return false;
        }
        self.window_candidate(owner, false) > self.rcv_adv
    }
}
