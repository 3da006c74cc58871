//! Timers: retransmission (RFC 6298), tail loss probe and RACK reordering (RFC 8985),
//! delayed ACK, persist (zero-window probing), keepalive and TIME-WAIT. Each is a
//! deadline; [`TcpConnection::poll_timeout`] reports the earliest.

use crate::cc::CongestionEvent;
use crate::time::Instant;

use super::recovery::{Recovery, probe_timeout};
use super::{AckState, TcpConnection, TcpEvent, TcpState};

impl TcpConnection {
    /// When [`TcpConnection::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        // A plain fold (polled after every segment, by the endpoint and by the MPTCP
        // connection for each subflow) rather than a flattening iterator.
        [
            self.tlp_at,
            self.reorder_at,
            self.delack_at,
            self.persist_at,
            self.keepalive_at,
            self.time_wait_at,
            self.pace_at,
        ]
        .into_iter()
        .fold(self.rto_at, earliest)
    }

    /// Runs every timer whose deadline is at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.time_wait_at.is_some_and(|t| t <= now) {
            self.time_wait_at = None;
            self.enter_closed(None);
            return;
        }
        if self.pace_at.is_some_and(|t| t <= now) {
            // The held segment may go with the next poll_transmit.
            self.pace_at = None;
        }
        if self.delack_at.is_some_and(|t| t <= now) {
            self.delack_at = None;
            if self.ack_state == AckState::Delayed {
                self.ack_state = AckState::Now;
            }
        }
        if self.reorder_at.is_some_and(|t| t <= now) {
            self.reorder_at = None;
            let prior = self.sent.pipe();
            self.detect_losses(now, prior);
        }
        if self.tlp_at.is_some_and(|t| t <= now) {
            self.tlp_at = None;
            if self.tlp.is_none() && !self.recovery.is_active() {
                self.tlp_pending = true;
                // RFC 8985 §7.3: the probe, not the RTO, answers this expiry; the RTO
                // is re-armed from the probe.
                if self.rto_at.is_some() {
                    self.rto_at = Some(now + self.rtt.rto());
                }
            }
        }
        if self.rto_at.is_some_and(|t| t <= now) {
            self.rto_at = None;
            self.on_rto(now);
        }
        if self.persist_at.is_some_and(|t| t <= now) {
            self.persist_at = None;
            self.on_persist(now);
        }
        if self.keepalive_at.is_some_and(|t| t <= now) {
            self.keepalive_at = None;
            self.on_keepalive(now);
        }
    }

    /// RFC 6298 §5.4-5.6: retransmit, back off, collapse the window.
    fn on_rto(&mut self, now: Instant) {
        match self.state {
            TcpState::Closed | TcpState::TimeWait => {}
            TcpState::SynSent | TcpState::SynReceived => {
                if self.retries >= self.config.max_syn_retries {
                    self.enter_closed(Some(TcpEvent::TimedOut));
                    return;
                }
                self.retries += 1;
                self.stats.rto_count += 1;
                self.rtt.back_off();
                self.syn_pending = true;
                self.rto_at = Some(now + self.rtt.rto());
            }
            TcpState::Established
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::CloseWait
            | TcpState::Closing
            | TcpState::LastAck => {
                if self.sent.is_empty() {
                    return;
                }
                if self.retries >= self.config.max_data_retries {
                    self.rst_pending = Some((self.snd_seq(self.snd_nxt), None));
                    self.enter_closed(Some(TcpEvent::TimedOut));
                    return;
                }
                self.retries += 1;
                self.stats.rto_count += 1;
                // RFC 5681 §3.1's FlightSize, but never more than the window: in fast
                // recovery SACKs let new data out while a lost retransmission holds
                // SND.UNA, so SND.NXT - SND.UNA can be several windows, and an
                // ssthresh from it sent the slow start that follows far past the path
                // (a 10 Mbit/s path with a 40-packet queue lost 15,000 packets in a
                // 5 MB transfer). FreeBSD bases it on min(cwnd, snd_wnd), Linux on
                // cwnd.
                let flight = (self.snd_nxt_max() - self.snd_una).min(self.cc.window());
                self.rtt.back_off();
                self.sent.mark_all_lost();
                // One window reduction per episode: repeated expirations keep the
                // collapsed window rather than shrinking ssthresh further.
                match self.recovery {
                    Recovery::Timeout { .. } => {}
                    Recovery::Open | Recovery::Fast { .. } => {
                        self.congestion_event(now, CongestionEvent::Timeout, flight);
                    }
                }
                self.recovery = Recovery::Timeout {
                    point: self.snd_nxt_max(),
                };
                self.tlp = None;
                self.tlp_at = None;
                self.reorder_at = None;
                self.dupacks = 0;
                self.rto_at = Some(now + self.rtt.rto());
            }
        }
    }

    fn on_persist(&mut self, now: Instant) {
        if !self.state.is_synchronized() || !self.sent.is_empty() {
            return;
        }
        self.persist_probe_pending = true;
        self.persist_backoff = (self.persist_backoff + 1).min(16);
        self.arm_persist(now);
    }

    fn on_keepalive(&mut self, now: Instant) {
        let Some(ka) = self.config.keepalive else {
            return;
        };
        match self.state {
            TcpState::Established | TcpState::CloseWait => {}
            TcpState::Closed
            | TcpState::SynSent
            | TcpState::SynReceived
            | TcpState::FinWait1
            | TcpState::FinWait2
            | TcpState::Closing
            | TcpState::LastAck
            | TcpState::TimeWait => return,
        }
        if !self.sent.is_empty() {
            // Data in flight: the retransmission timer watches the peer.
            self.keepalive_at = Some(now + ka.interval);
            return;
        }
        if self.keepalive_probes >= ka.count {
            self.rst_pending = Some((self.snd_seq(self.snd_nxt), None));
            self.enter_closed(Some(TcpEvent::TimedOut));
            return;
        }
        self.keepalive_probes += 1;
        self.keepalive_probe_pending = true;
        self.keepalive_at = Some(now + ka.interval);
    }

    /// (Re)arms the keepalive timer after activity.
    pub(super) fn arm_keepalive(&mut self) {
        if let Some(ka) = self.config.keepalive {
            self.keepalive_at = Some(self.last_received + ka.idle);
        }
    }

    /// Arms the persist timer (RFC 9293 §3.8.6.1) unless already running; its period is
    /// the RTO, doubling per unanswered probe, at most `rto_max`.
    pub(super) fn arm_persist(&mut self, now: Instant) {
        if self.persist_at.is_some() {
            return;
        }
        let period = self
            .rtt
            .base_rto()
            .saturating_mul(1u64 << self.persist_backoff.min(16))
            .min(self.config.rto_max);
        self.persist_at = Some(now + period);
    }

    /// RFC 8985 §7.2: arm the probe timeout after sending new data or on an ACK, when
    /// SACK is on, no recovery or probe is under way and something is in flight. The PTO
    /// never extends past the RTO.
    pub(super) fn schedule_tlp(&mut self, now: Instant) {
        if !self.sack_ok
            || self.recovery.is_active()
            || self.tlp.is_some()
            || self.sent.is_empty()
            || self.sent.has_lost()
        {
            self.tlp_at = None;
            return;
        }
        let single = self.sent.len() == 1;
        let pto = now + probe_timeout(self.rtt.srtt(), single);
        // RFC 8985 §7.2: never later than the RTO would fire.
        self.tlp_at = Some(match self.rto_at {
            Some(rto) => pto.min(rto),
            None => pto,
        });
    }
}

/// The earlier of two optional deadlines.
fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}
