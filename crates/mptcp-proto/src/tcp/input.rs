//! Segment arrival (RFC 9293 §3.10.7): acceptability, RST/SYN handling with the
//! RFC 5961 protections, ACK processing (SACK scoreboard, RTT, RACK, congestion
//! control) and data/FIN delivery to the owner.

use crate::cc::{AckEvent, CongestionEvent};
use crate::time::{Duration, Instant};
use crate::wire::tcp::TcpRepr;

use super::recovery::{DUP_THRESH, Recovery};
use super::sent::Delivered;
use super::{AckState, ReceiveSink, TcpConnection, TcpDrop, TcpEvent, TcpState};

impl TcpConnection {
    /// Processes one received segment. Responses (ACKs, challenge ACKs, RSTs) are
    /// queued for [`TcpConnection::poll_transmit`]; payload goes to `owner`. An `Err`
    /// says why the segment was dropped (a response may still be queued).
    pub fn handle_segment<S: ReceiveSink + ?Sized>(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        owner: &mut S,
    ) -> Result<(), TcpDrop> {
        self.stats.segments_received += 1;
        let result = self.process(now, seg, owner);
        if let Err(reason) = result {
            self.stats.segments_dropped += 1;
            tracing::trace!(%reason, seq = seg.seq.0, flags = ?seg.flags, "tcp drop");
        }
        result
    }

    fn process<S: ReceiveSink + ?Sized>(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        owner: &mut S,
    ) -> Result<(), TcpDrop> {
        let f = seg.flags;
        // Combinations no correct stack sends: SYN with FIN or RST, or a segment with
        // none of SYN, ACK, RST (FIN alone, the "null" segment). Dropped silently, as
        // Linux does.
        if (f.syn() && (f.fin() || f.rst())) || !(f.syn() || f.ack() || f.rst()) {
            return Err(TcpDrop::InvalidFlags { flags: f.0 });
        }
        match self.state {
            TcpState::Closed => Err(TcpDrop::Closed),
            TcpState::SynSent => self.process_syn_sent(now, seg, owner),
            TcpState::SynReceived
            | TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => self.process_synchronized(now, seg, owner),
        }
    }

    /// RFC 9293 §3.10.7.3, SYN-SENT.
    fn process_syn_sent<S: ReceiveSink + ?Sized>(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        owner: &mut S,
    ) -> Result<(), TcpDrop> {
        let f = seg.flags;
        if f.ack() && seg.ack != self.snd_seq(0) {
            // SEG.ACK =< ISS or > SND.NXT: reset it unless it is a reset.
            if !f.rst() {
                self.rst_pending = Some((seg.ack, None));
            }
            return Err(TcpDrop::UnacceptableAck { ack: seg.ack.0 });
        }
        if f.rst() {
            // RFC 5961 §3.2: in SYN-SENT a RST is valid only if it acknowledges the SYN.
            if f.ack() {
                self.enter_closed(Some(TcpEvent::Reset));
                return Ok(());
            }
            return Err(TcpDrop::UnexpectedInState { state: self.state });
        }
        if !f.syn() {
            return Err(TcpDrop::UnexpectedInState { state: self.state });
        }
        self.irs = seg.seq;
        self.rcv_nxt = 0;
        self.negotiate(seg);
        if self.ts_ok
            && let Some(ts) = seg.options.timestamps
        {
            self.ts_recent = ts.tsval;
        }
        // RFC 7323 §2.2: the window of a SYN is never scaled.
        self.snd_wnd = u64::from(seg.window);
        self.max_snd_wnd = self.snd_wnd;
        self.snd_wl1 = seg.seq;
        self.snd_wl2 = seg.ack;
        self.last_received = now;
        owner.on_segment(seg);
        if f.ack() {
            self.handshake_complete(now);
            self.ack_state = AckState::Now;
        } else {
            // Simultaneous open (RFC 9293 §3.5): answer with SYN-ACK, same ISS.
            self.set_state(TcpState::SynReceived);
            self.syn_pending = true;
        }
        Ok(())
    }

    /// Our SYN was acknowledged: ESTABLISHED (or FIN-WAIT-1 if close() came first).
    fn handshake_complete(&mut self, now: Instant) {
        if self.retries == 0
            && let Some(sent) = self.syn_sent_at
        {
            // Karn: only a SYN sent once gives an unambiguous sample.
            self.rtt.on_sample(now - sent);
        }
        self.retries = 0;
        self.rtt.reset_backoff();
        self.rto_at = None;
        self.syn_pending = false;
        if self.fin_queued {
            self.set_state(TcpState::FinWait1);
        } else {
            self.set_state(TcpState::Established);
        }
        self.push_event(TcpEvent::Connected);
        self.arm_keepalive();
    }

    /// RFC 9293 §3.10.7.4 for SYN-RECEIVED and the synchronized states.
    fn process_synchronized<S: ReceiveSink + ?Sized>(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        owner: &mut S,
    ) -> Result<(), TcpDrop> {
        let f = seg.flags;
        let seg_len = u64::from(seg.segment_len());
        let seq_off = self.seq_offset(seg.seq);

        // Simultaneous open (RFC 9293 §3.5 figure 8): the peer's SYN-ACK repeats the SYN
        // we already took and acknowledges ours, which completes the handshake.
        if self.state == TcpState::SynReceived
            && f.syn()
            && f.ack()
            && !f.rst()
            && seg.seq == self.irs
            && seg.ack == self.snd_seq(0)
        {
            self.snd_wnd = u64::from(seg.window);
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            owner.on_segment(seg);
            self.handshake_complete(now);
            self.ack_state = AckState::Now;
            return Ok(());
        }
        // A retransmitted SYN in SYN-RECEIVED: our SYN-ACK was lost, send it again.
        if self.state == TcpState::SynReceived && f.syn() && !f.ack() && seg.seq == self.irs {
            self.syn_pending = true;
            return Ok(());
        }

        // Fourth check, moved first by RFC 5961 §4.2: a SYN in a synchronized state gets
        // a (rate-limited) challenge ACK "irrespective of the sequence number".
        if f.syn() && !f.rst() {
            self.challenge_ack(now);
            return Err(TcpDrop::UnexpectedSyn);
        }

        // RFC 7323 §5.3 R1: PAWS, before the sequence check. RSTs are exempt (§5.2).
        if self.ts_ok
            && !f.rst()
            && let Some(ts) = seg.options.timestamps
            && (ts.tsval.wrapping_sub(self.ts_recent) as i32) < 0
        {
            self.stats.paws_drops += 1;
            self.ack_state = AckState::Now;
            return Err(TcpDrop::Paws {
                tsval: ts.tsval,
                ts_recent: self.ts_recent,
            });
        }

        // First check: sequence number acceptability (the four cases of §3.10.7.4).
        let rcv_wnd = self.rcv_adv.saturating_sub(self.rcv_nxt) as i64;
        let nxt = self.rcv_nxt as i64;
        let in_wnd = |o: i64| o >= nxt && o < nxt + rcv_wnd;
        let acceptable = match (seg_len, rcv_wnd) {
            (0, 0) => seq_off == nxt,
            (0, _) => in_wnd(seq_off),
            (_, 0) => false,
            (len, _) => in_wnd(seq_off) || in_wnd(seq_off + len as i64 - 1),
        };
        if !acceptable {
            if f.rst() {
                return Err(TcpDrop::OutOfWindow {
                    seq: seg.seq.0,
                    len: seg.segment_len(),
                });
            }
            // A retransmission of data we hold: report it as a D-SACK (RFC 2883 §4).
            if self.sack_ok && !seg.payload.is_empty() && seq_off >= 0 {
                let start = seq_off as u64;
                let end = (start + seg.payload.len() as u64).min(self.rcv_nxt);
                if start < end {
                    self.rcv_sack.note_duplicate(start, end);
                }
            }
            if self.state == TcpState::TimeWait && f.fin() {
                // §3.10.7.4, eighth: a retransmitted FIN restarts the 2 MSL timeout.
                self.time_wait_at = Some(now + self.config.time_wait);
            }
            self.ack_state = AckState::Now;
            // "Special allowance" for a zero window: the ACK field still counts.
            if rcv_wnd == 0 && seq_off == nxt && f.ack() && !f.syn() && self.syn_acked() {
                self.last_received = now;
                self.process_ack(now, seg)?;
            }
            return Err(TcpDrop::OutOfWindow {
                seq: seg.seq.0,
                len: seg.segment_len(),
            });
        }

        // Second check: RST (RFC 5961 §3.2).
        if f.rst() {
            if seq_off != nxt {
                self.challenge_ack(now);
                return Err(TcpDrop::RstNotExact { seq: seg.seq.0 });
            }
            match self.state {
                TcpState::SynReceived
                | TcpState::Established
                | TcpState::FinWait1
                | TcpState::FinWait2
                | TcpState::CloseWait => self.enter_closed(Some(TcpEvent::Reset)),
                TcpState::Closing | TcpState::LastAck | TcpState::TimeWait => {
                    self.enter_closed(None)
                }
                TcpState::Closed | TcpState::SynSent => {}
            }
            return Ok(());
        }

        // Fifth check: the ACK bit.
        if !f.ack() {
            return Err(TcpDrop::NoAck { state: self.state });
        }

        if self.state == TcpState::SynReceived {
            if seg.ack != self.snd_seq(0) {
                // §3.10.7.4: an unacceptable ACK in SYN-RECEIVED gets <SEQ=SEG.ACK><RST>.
                self.rst_pending = Some((seg.ack, None));
                return Err(TcpDrop::UnacceptableAck { ack: seg.ack.0 });
            }
            self.snd_wnd = u64::from(seg.window) << self.snd_shift;
            self.max_snd_wnd = self.max_snd_wnd.max(self.snd_wnd);
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.handshake_complete(now);
        }

        self.last_received = now;
        self.keepalive_probes = 0;
        self.arm_keepalive();

        // RFC 7323 §4.3: remember the newest TSval of segments at or before the point
        // we last acknowledged.
        if self.ts_ok
            && let Some(ts) = seg.options.timestamps
            && seq_off <= self.last_ack_sent as i64
        {
            self.ts_recent = ts.tsval;
        }

        owner.on_segment(seg);
        self.process_ack(now, seg)?;
        match self.state {
            TcpState::Closed | TcpState::TimeWait => return Ok(()),
            TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck => {}
        }
        self.process_data(now, seg, seq_off, owner)
    }

    /// The ACK field, SACK blocks and window of an acceptable segment.
    fn process_ack(&mut self, now: Instant, seg: &TcpRepr<'_>) -> Result<(), TcpDrop> {
        let ack_off = self.ack_offset(seg.ack);
        let snd_max = self.snd_nxt_max();
        if ack_off > snd_max as i64 {
            // Acknowledges something not yet sent: ACK and drop (§3.10.7.4).
            self.ack_state = AckState::Now;
            return Err(TcpDrop::UnacceptableAck { ack: seg.ack.0 });
        }
        if ack_off < self.snd_una as i64 - self.max_snd_wnd as i64 {
            // RFC 5961 §5.2: too old to be legitimate; a blind injection attempt.
            self.challenge_ack(now);
            return Err(TcpDrop::UnacceptableAck { ack: seg.ack.0 });
        }
        let prior_una = self.snd_una;
        let prior_in_flight = self.sent.pipe();
        let min_rtt = self.rtt.min_rtt();
        let mut newly_acked = 0;
        let mut karn_sample = None;
        if ack_off > self.snd_una as i64 {
            let ack_off = ack_off as u64;
            let rack = &mut self.rack;
            newly_acked = self.sent.ack_until(ack_off, |d: Delivered| {
                rack.on_delivered(now, &d, min_rtt);
                if d.xmits == 1 {
                    karn_sample = Some(now - d.xmit_time);
                }
            });
            self.snd_una = ack_off;
            self.dupacks = 0;
            self.retries = 0;
            self.rtt.reset_backoff();
            let sample = karn_sample.or_else(|| self.timestamp_sample(now, seg));
            if let Some(sample) = sample {
                self.rtt.on_sample(sample);
            }
            self.push_event(TcpEvent::Writable);
        }

        // SACK blocks (RFC 2018) and D-SACK detection (RFC 2883 §4).
        let mut newly_sacked = 0;
        let mut dsack = false;
        if self.sack_ok {
            let blocks = &seg.options.sack_blocks;
            for (i, b) in blocks.iter().enumerate() {
                let l = self.ack_offset(b.left);
                let r = self.ack_offset(b.right);
                if l < 0 || r <= l || r > snd_max as i64 {
                    continue;
                }
                let (l, r) = (l as u64, r as u64);
                if i == 0 {
                    let below_ack = r <= self.snd_una;
                    let inside_second = blocks.get(1).is_some_and(|b2| {
                        let l2 = self.ack_offset(b2.left);
                        let r2 = self.ack_offset(b2.right);
                        l2 <= l as i64 && r as i64 <= r2
                    });
                    if below_ack || inside_second {
                        dsack = true;
                        continue;
                    }
                }
                let rack = &mut self.rack;
                newly_sacked += self
                    .sent
                    .sack(l, r, |d: Delivered| rack.on_delivered(now, &d, min_rtt));
            }
        }
        if dsack {
            self.stats.dsack_received += 1;
            self.rack.on_dsack(self.snd_una, snd_max);
        }

        // Window update (§3.10.7.4): only from a segment not older than the last one
        // that updated it.
        let window = u64::from(seg.window) << self.snd_shift;
        let mut window_changed = false;
        if self.snd_wl1 < seg.seq || (self.snd_wl1 == seg.seq && seg.ack.diff(self.snd_wl2) >= 0) {
            window_changed = window != self.snd_wnd;
            self.snd_wnd = window;
            self.snd_wl1 = seg.seq;
            self.snd_wl2 = seg.ack;
            self.max_snd_wnd = self.max_snd_wnd.max(window);
            if window > 0 {
                self.persist_at = None;
                self.persist_backoff = 0;
                self.persist_probe_pending = false;
            }
        }

        // RFC 5681 §2 duplicate ACK.
        if self.snd_una == prior_una
            && ack_off == prior_una as i64
            && seg.payload.is_empty()
            && !seg.flags.fin()
            && !window_changed
            && !self.sent.is_empty()
        {
            self.dupacks = self.dupacks.saturating_add(1);
        }

        // RFC 6298 §5.2 / §5.3: stop or restart the retransmission timer.
        if self.snd_una > prior_una {
            if self.sent.is_empty() {
                self.rto_at = None;
                self.tlp_at = None;
            } else {
                self.rto_at = Some(now + self.rtt.rto());
            }
        }

        self.detect_losses(now, prior_in_flight);
        // RFC 6582 §3.2 step 5: without SACK, a partial ACK in fast recovery means the
        // next segment is lost too.
        if !self.sack_ok
            && self.snd_una > prior_una
            && let Recovery::Fast { point } = self.recovery
            && self.snd_una < point
        {
            self.sent.mark_lost(0);
        }

        match self.recovery {
            Recovery::Fast { point } | Recovery::Timeout { point } if self.snd_una >= point => {
                self.recovery = Recovery::Open;
                self.cc.on_recovery_exit(now);
                self.rack.on_recovery_end();
            }
            Recovery::Open | Recovery::Fast { .. } | Recovery::Timeout { .. } => {}
        }

        // RFC 8985 §7.4: what the ACK says about an outstanding tail loss probe.
        if let Some(probe) = self.tlp {
            if dsack {
                // The probe was a duplicate: the original arrived, nothing was lost.
                self.tlp = None;
            } else if self.snd_una >= probe.end {
                self.tlp = None;
                if probe.retransmission {
                    // The probe repaired a loss: respond as to any loss.
                    self.congestion_event(now, CongestionEvent::Loss, prior_in_flight);
                }
            }
        }

        let delivered = newly_acked + newly_sacked;
        if delivered > 0 {
            self.bytes_since_last_loss += delivered;
            self.stats.bytes_delivered += delivered;
            let event = AckEvent {
                bytes_acked: delivered,
                prior_in_flight,
                rtt_sample: self.rtt.latest().filter(|_| self.snd_una > prior_una),
                srtt: self.rtt.srtt(),
                min_rtt: self.rtt.min_rtt(),
                mss: self.send_mss,
                // Only fast recovery holds the window (RFC 6675 §5, RFC 6937). After an
                // RTO the sender is in slow start from the loss window (RFC 5681 §3.1,
                // RFC 6298 §5.7): holding cwnd at one segment until the whole pre-RTO
                // flight is repaired would resend it one segment per round trip.
                in_recovery: match self.recovery {
                    Recovery::Fast { .. } => true,
                    Recovery::Open | Recovery::Timeout { .. } => false,
                },
                app_limited: self.app_limited,
                slow_start_limit: self.slow_start_limit(),
            };
            self.with_snapshot(|cc, snap| cc.on_ack(now, &event, snap));
        }

        if self.our_fin_acked() {
            match self.state {
                TcpState::FinWait1 => self.set_state(TcpState::FinWait2),
                TcpState::Closing => self.enter_time_wait(now),
                TcpState::LastAck => self.enter_closed(None),
                TcpState::Closed
                | TcpState::SynSent
                | TcpState::SynReceived
                | TcpState::Established
                | TcpState::FinWait2
                | TcpState::CloseWait
                | TcpState::TimeWait => {}
            }
        }
        self.schedule_tlp(now);
        Ok(())
    }

    /// RTT from the timestamp echo (RFC 7323 §4): valid even for retransmissions.
    fn timestamp_sample(&self, now: Instant, seg: &TcpRepr<'_>) -> Option<Duration> {
        if !self.ts_ok {
            return None;
        }
        let ts = seg.options.timestamps?;
        if ts.tsecr == 0 {
            return None;
        }
        let elapsed = self.tsval(now).wrapping_sub(ts.tsecr);
        // An echo from the future or absurdly old is not a sample.
        (elapsed < 0x8000_0000).then(|| Duration::from_millis(u64::from(elapsed)))
    }

    /// RACK (with SACK) or the DupThresh rule (without): mark lost segments and enter
    /// recovery on the first.
    pub(super) fn detect_losses(&mut self, now: Instant, prior_in_flight: u64) {
        let mut marked = 0;
        if self.sack_ok {
            if let Some(xmit) = self.rack.xmit_time {
                let reo = self.rack.reo_wnd(
                    self.recovery.is_active(),
                    self.sent.sacked_segments(),
                    self.rtt.min_rtt(),
                    self.rtt.srtt(),
                );
                let (n, deadline) =
                    self.sent
                        .rack_detect(now, xmit, self.rack.end, self.rack.rtt + reo);
                marked = n;
                self.reorder_at = deadline;
            }
        } else if self.dupacks >= DUP_THRESH as u32
            && self.recovery == Recovery::Open
            && self.sent.mark_lost(0)
        {
            // RFC 5681 §3.2 / RFC 6582: the third duplicate ACK.
            marked = 1;
        }
        if marked > 0 && self.recovery == Recovery::Open {
            self.recovery = Recovery::Fast {
                point: self.snd_nxt_max(),
            };
            self.stats.fast_recoveries += 1;
            self.fast_retransmit_pending = true;
            self.tlp = None;
            self.tlp_at = None;
            self.congestion_event(now, CongestionEvent::Loss, prior_in_flight);
        }
    }

    pub(super) fn congestion_event(
        &mut self,
        now: Instant,
        event: CongestionEvent,
        prior_in_flight: u64,
    ) {
        self.loss_events += 1;
        self.bytes_between_last_losses = self.bytes_since_last_loss;
        self.bytes_since_last_loss = 0;
        self.with_snapshot(|cc, snap| cc.on_congestion_event(now, event, prior_in_flight, snap));
    }

    /// The text and FIN of an acceptable segment (§3.10.7.4, seventh and eighth).
    fn process_data<S: ReceiveSink + ?Sized>(
        &mut self,
        now: Instant,
        seg: &TcpRepr<'_>,
        seq_off: i64,
        owner: &mut S,
    ) -> Result<(), TcpDrop> {
        if !self.state.can_receive_data() {
            // Data after the peer's FIN cannot be legitimate; nothing to deliver.
            return Ok(());
        }
        let payload = seg.payload;
        let fin_at = seq_off + payload.len() as i64;
        let mut fin = seg.flags.fin();
        let mut data = payload;
        let mut off = seq_off;
        if off < self.rcv_nxt as i64 {
            let dup = ((self.rcv_nxt as i64 - off) as usize).min(data.len());
            // A start before offset 0 would sit on the peer's SYN: report from 0.
            let dup_start = off.max(0) as u64;
            let dup_end = (off + dup as i64).max(0) as u64;
            if dup_start < dup_end && self.sack_ok {
                self.rcv_sack.note_duplicate(dup_start, dup_end);
            }
            data = &data[dup..];
            off = self.rcv_nxt as i64;
        }
        let off = off as u64;
        let wnd_end = self.rcv_adv.max(self.rcv_nxt);
        if off + data.len() as u64 > wnd_end {
            // Beyond the window we offered: trim it (§3.10.7.4) and its FIN with it.
            data = &data[..wnd_end.saturating_sub(off) as usize];
            fin = false;
        }
        let mut result = Ok(());
        if !data.is_empty() {
            let end = off + data.len() as u64;
            if off == self.rcv_nxt {
                let accepted = owner.deliver(off, data).min(data.len());
                if accepted < data.len() {
                    fin = false;
                }
                if accepted == 0 {
                    result = Err(TcpDrop::NoSpace { offset: off });
                } else {
                    let filled_hole = !self.rcv_sack.ranges().is_empty();
                    self.rcv_nxt = self.rcv_sack.advance(off + accepted as u64);
                    self.stats.bytes_received += accepted as u64;
                    self.unacked_bytes += accepted as u64;
                    self.push_event(TcpEvent::Readable);
                    self.rcv_mss = self
                        .rcv_mss
                        .max(data.len() as u64)
                        .min(u64::from(self.config.mss));
                    let every = u64::from(self.config.ack_every.max(1)) * self.rcv_mss;
                    if filled_hole || self.unacked_bytes >= every {
                        // RFC 5681 §4.2: ACK at once when a hole fills, and at least
                        // every second full-sized segment.
                        self.ack_state = AckState::Now;
                    } else if self.ack_state == AckState::Idle {
                        self.ack_state = AckState::Delayed;
                        self.delack_at = Some(now + self.config.delayed_ack);
                    }
                }
            } else {
                // Out of order: keep it and send a duplicate ACK at once (RFC 5681 §4.2).
                self.ack_state = AckState::Now;
                fin = false;
                if seg.flags.fin() && end as i64 == fin_at {
                    self.pending_fin = Some(fin_at as u64);
                }
                if self.rcv_sack.covers(off, end) {
                    if self.sack_ok {
                        self.rcv_sack.note_duplicate(off, end);
                    }
                } else if !self.rcv_sack.can_insert(off, end) {
                    result = Err(TcpDrop::NoSpace { offset: off });
                } else {
                    let accepted = owner.deliver(off, data).min(data.len());
                    if accepted == 0 {
                        result = Err(TcpDrop::NoSpace { offset: off });
                    } else {
                        self.rcv_sack.insert(off, off + accepted as u64);
                        self.stats.bytes_received += accepted as u64;
                    }
                }
            }
        }
        if fin {
            if fin_at == self.rcv_nxt as i64 {
                self.accept_fin(now, owner);
            } else if fin_at > self.rcv_nxt as i64 {
                self.pending_fin = Some(fin_at as u64);
                self.ack_state = AckState::Now;
            }
        } else if self.pending_fin == Some(self.rcv_nxt) {
            self.accept_fin(now, owner);
        }
        result
    }

    /// The peer's FIN is next in sequence (§3.10.7.4, eighth).
    fn accept_fin<S: ReceiveSink + ?Sized>(&mut self, now: Instant, owner: &mut S) {
        let at = self.rcv_nxt;
        self.fin_received = Some(at);
        self.pending_fin = None;
        owner.on_fin(at);
        self.rcv_nxt = at + 1;
        self.ack_state = AckState::Now;
        self.push_event(TcpEvent::PeerClosed);
        match self.state {
            TcpState::Established => self.set_state(TcpState::CloseWait),
            TcpState::FinWait1 => {
                if self.our_fin_acked() {
                    self.enter_time_wait(now);
                } else {
                    self.set_state(TcpState::Closing);
                }
            }
            TcpState::FinWait2 => self.enter_time_wait(now),
            TcpState::Closed
            | TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => {}
        }
    }
}
