//! Connection-level timers and failure handling: the subflows' own timers, the MP_JOIN
//! third-ACK retransmission, DATA_FIN retransmission, the connection-level
//! retransmission (reinjection) timer, stale-subflow detection, make-after-break, and
//! the checksum-failure paths of RFC 8684 §3.7.

use crate::mptcp::SubflowId;
use crate::mptcp::connection::{ConnMode, MptcpConnection, Role};
use crate::mptcp::data_seq::DataFinTx;
use crate::mptcp::events::{CloseReason, FallbackReason, SubflowDownReason};
use crate::mptcp::subflow::{FailCause, MpPhase};
use crate::seq::Dsn;
use crate::time::{Duration, Instant};
use crate::wire::mptcp::TcpRstReason;

/// MP_JOIN third-ACK retransmissions before the subflow is given up.
const MAX_JOIN_ACK_RETRIES: u32 = 5;
/// Largest backoff exponent of the connection-level timers.
const MAX_BACKOFF: u32 = 6;
/// Most bytes one connection-level retransmission reinjects.
const REINJECT_CHUNK: u64 = 64 * 1024;

impl MptcpConnection {
    /// When [`MptcpConnection::handle_timeout`] should next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        let no_progress = self.core.pm_config().fail_after_no_progress;
        let detect = self.core.mode == ConnMode::Mptcp && self.core.closed.is_none();
        for s in &self.subflows {
            consider(s.tcp.poll_timeout());
            if detect {
                consider(s.no_progress_deadline(no_progress));
            }
            if let MpPhase::AwaitFourthAck { rtx_at, .. } = s.mp.phase {
                consider(Some(rtx_at));
            }
        }
        consider(self.core.data_fin_rtx.map(|(t, _)| t));
        consider(self.core.reinject_at);
        if let Some(since) = self.core.orphaned_since
            && self.core.closed.is_none()
        {
            consider(Some(since + self.core.config.make_after_break));
        }
        if self.core.closed.is_none() {
            consider(self.core.pm.as_ref().and_then(|pm| pm.poll_timeout()));
        }
        next
    }

    /// Runs every timer due at or before `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        let stale_after = self.core.config.stale_rto_count;
        let mut newly_stale = Vec::new();
        let mut join_failed = Vec::new();
        for i in 0..self.subflows.len() {
            if self.subflows[i]
                .tcp
                .poll_timeout()
                .is_some_and(|t| t <= now)
            {
                self.share_snapshots(i);
            }
        }
        for s in &mut self.subflows {
            if s.tcp.poll_timeout().is_some_and(|t| t <= now) {
                s.tcp.handle_timeout(now);
            }
            if let MpPhase::AwaitFourthAck { rtx_at, backoff } = s.mp.phase
                && rtx_at <= now
            {
                // RFC 8684 §3.2: the third ACK is repeated until the fourth arrives.
                if backoff >= MAX_JOIN_ACK_RETRIES {
                    join_failed.push(s.id);
                } else {
                    let rto = s.rto();
                    s.mp.phase = MpPhase::AwaitFourthAck {
                        rtx_at: now + rto.saturating_mul(1 << (backoff + 1)),
                        backoff: backoff + 1,
                    };
                    s.tcp.request_ack();
                }
            }
            if s.mp.carries_data() && s.refresh_stale(now, stale_after) {
                newly_stale.push(s.id);
            }
        }
        for id in join_failed {
            self.reset_subflow(id, TcpRstReason::MPTCP_ERROR, SubflowDownReason::JoinFailed);
        }
        if !newly_stale.is_empty()
            && let Some(pm) = self.core.pm.as_mut()
        {
            // The stale subflow may have carried an announcement the peer needs to
            // get around the failure: repeat it (on a healthy subflow, see output).
            pm.resend_unechoed(now);
        }
        for id in newly_stale {
            self.reinject_from(id);
            // Make-before-break: the replacement opens while this one still lives.
            let key = self.index_of(id).and_then(|i| self.subflows[i].mp.path);
            if let (Some(pm), Some(key)) = (self.core.pm.as_mut(), key) {
                pm.on_subflow_potentially_failed(key);
            }
        }
        self.detect_failures(now);
        self.data_fin_timer(now);
        self.reinject_timer(now);
        if let Some(since) = self.core.orphaned_since
            && self.core.closed.is_none()
            && self.subflows.is_empty()
            && now >= since + self.core.config.make_after_break
        {
            // Make-after-break gave up: no path came back in time.
            self.core.closed = Some(CloseReason::NoSubflows);
        }
        self.after_input(now);
    }

    /// Resets the subflows the path manager's limits declare failed (K consecutive
    /// RTOs or T without progress); their data is reinjected when they are reaped and
    /// the path manager re-creates them (self-healing). MPTCP only: after a fallback
    /// the one subflow is the connection.
    fn detect_failures(&mut self, now: Instant) {
        if self.core.mode != ConnMode::Mptcp
            || self.core.closed.is_some()
            || self.core.subflows_closing
        {
            return;
        }
        let config = self.core.pm_config();
        let (rtos, no_progress) = (config.fail_after_rtos, config.fail_after_no_progress);
        let failed: Vec<(SubflowId, FailCause)> = self
            .subflows
            .iter()
            .filter(|s| !s.mp.rst_out)
            .filter_map(|s| s.failed(now, rtos, no_progress).map(|c| (s.id, c)))
            .collect();
        for (id, cause) in failed {
            tracing::debug!(subflow = id.0, ?cause, "mptcp: subflow declared failed");
            // RFC 8684 §3.6: MP_TCPRST reason 5, unacceptable performance.
            let reason = TcpRstReason::UNACCEPTABLE_PERFORMANCE;
            self.reset_subflow(id, reason, SubflowDownReason::LocalReset { reason });
        }
    }

    /// A stale subflow's data goes to the others too (RFC 8684 §3.3.6), if there are
    /// others that can take it.
    pub(crate) fn reinject_from(&mut self, id: SubflowId) {
        if self.core.mode != ConnMode::Mptcp {
            return;
        }
        let others = self
            .subflows
            .iter()
            .any(|s| s.id != id && s.schedulable() && !s.mp.stale);
        if !others {
            return;
        }
        let Some(i) = self.index_of(id) else {
            return;
        };
        let data_ack = self.core.seq.snd_una();
        let ranges: Vec<_> = self.subflows[i].mp.tx.unacked_ranges(data_ack).collect();
        for range in ranges {
            let start = self.core.seq.tx_offset(range.start);
            let end = self.core.seq.tx_offset(range.end);
            if start < end {
                tracing::debug!(
                    subflow = id.0,
                    start,
                    end,
                    "mptcp: reinjecting a stale subflow's data"
                );
                self.core.reinject.push_back(start..end);
                self.core.reinjections += 1;
            }
        }
    }

    fn data_fin_timer(&mut self, now: Instant) {
        let Some((at, backoff)) = self.core.data_fin_rtx else {
            return;
        };
        match self.core.seq.data_fin_tx() {
            DataFinTx::Acked { .. } | DataFinTx::Open => {
                self.core.data_fin_rtx = None;
                return;
            }
            DataFinTx::Pending { .. } | DataFinTx::Sent { .. } => {}
        }
        if at > now {
            return;
        }
        // RFC 8684 §3.3.3: the DATA_FIN is retransmitted until a data ACK covers it.
        // Again on every subflow that carries data, as Linux does (mptcp_send_ack): a
        // DATA_FIN without data rides on a pure ACK, which TCP never retransmits, so on
        // one subflow whose path died silently it would be repeated into the void
        // forever (the idle subflow never times out, so it never turns stale).
        self.request_ack_all();
        let backoff = (backoff + 1).min(MAX_BACKOFF);
        let rto = self.max_rto();
        self.core.data_fin_rtx = Some((now + rto.saturating_mul(1 << backoff), backoff));
    }

    /// The connection-level retransmission timer: data no data ACK covers for too long
    /// is reinjected (Linux's MPTCP retransmit timer). It repairs what subflows cannot:
    /// data a subflow acknowledged but the peer's connection level dropped, or a path
    /// that died without a RST.
    fn reinject_timer(&mut self, now: Instant) {
        if self.core.mode != ConnMode::Mptcp || self.core.closed.is_some() {
            self.core.reinject_at = None;
            return;
        }
        let una = self.core.seq.tx_offset(self.core.seq.snd_una());
        let nxt = self
            .core
            .seq
            .tx_offset(self.core.seq.snd_nxt())
            .min(self.send.end());
        if una >= nxt {
            self.core.reinject_at = None;
            self.core.reinject_backoff = 0;
            return;
        }
        match self.core.reinject_at {
            None => self.arm_reinject(now),
            Some(at) if at <= now => {
                let end = nxt.min(una + REINJECT_CHUNK);
                let una_dsn = self.core.seq.snd_una();
                // A live subflow still retransmitting the oldest byte repairs it
                // itself; reinject only what no live subflow holds in flight.
                let in_flight = self.subflows.iter().any(|s| {
                    !s.mp.stale
                        && s.mp.carries_data()
                        && s.mp.tx.iter().any(|m| {
                            m.offset_end() > s.tcp.acked_offset()
                                && m.dsn <= una_dsn
                                && m.payload_dsn_end() > una_dsn
                        })
                });
                if !in_flight
                    && !self
                        .core
                        .reinject
                        .iter()
                        .any(|r| r.start <= una && r.end > una)
                {
                    tracing::debug!(una, end, "mptcp: connection-level retransmission");
                    self.core.reinject.push_back(una..end);
                    self.core.reinjections += 1;
                }
                self.core.reinject_backoff = (self.core.reinject_backoff + 1).min(MAX_BACKOFF);
                self.arm_reinject(now);
            }
            Some(_) => {}
        }
    }

    /// Starts the connection-level retransmission timer when sent data lacks a data
    /// ACK and the timer is not running (a data ACK that advances stops it). Called
    /// after input and output: [`MptcpConnection::reinject_timer`] runs only from
    /// `handle_timeout`, which never comes once every subflow is quiet.
    pub(crate) fn keep_reinject_armed(&mut self, now: Instant) {
        if self.core.reinject_at.is_some()
            || self.core.mode != ConnMode::Mptcp
            || self.core.closed.is_some()
        {
            return;
        }
        let una = self.core.seq.tx_offset(self.core.seq.snd_una());
        let nxt = self
            .core
            .seq
            .tx_offset(self.core.seq.snd_nxt())
            .min(self.send.end());
        if una < nxt {
            self.arm_reinject(now);
        }
    }

    fn arm_reinject(&mut self, now: Instant) {
        // Twice the slowest subflow's RTO: a subflow's own recovery gets the first go.
        let base = self.max_rto().saturating_mul(2);
        let timeout = base.saturating_mul(1 << self.core.reinject_backoff);
        self.core.reinject_at = Some(now + timeout.max(self.core.config.reinject_min));
    }

    /// A mapping received on subflow `id` failed its DSS checksum (RFC 8684 §3.7).
    pub(crate) fn on_checksum_failure(&mut self, _now: Instant, id: SubflowId, dsn: Dsn) {
        let carrying = self.subflows.iter().filter(|s| s.mp.carries_data()).count();
        if carrying <= 1 {
            // One subflow: MP_FAIL with the DSN, then the peer sends the infinite
            // mapping and both fall back.
            if let Some(i) = self.index_of(id) {
                self.subflows[i].mp.fail_pending = Some(dsn);
                self.subflows[i].tcp.request_ack();
            }
        } else {
            // Several: reset the bad subflow; its data arrives on the others.
            self.reset_subflow(
                id,
                TcpRstReason::MIDDLEBOX_INTERFERENCE,
                SubflowDownReason::LocalReset {
                    reason: TcpRstReason::MIDDLEBOX_INTERFERENCE,
                },
            );
        }
    }

    /// The peer's MP_FAIL for data we sent at `dsn` (RFC 8684 §3.7): with one subflow,
    /// send the infinite mapping from the failed mapping on and fall back; otherwise
    /// the peer resets the subflow and nothing is needed here.
    pub(crate) fn on_mp_fail(&mut self, _now: Instant, dsn: Dsn) {
        let carrying: Vec<usize> = (0..self.subflows.len())
            .filter(|&i| self.subflows[i].mp.carries_data())
            .collect();
        let [i] = carrying[..] else {
            return;
        };
        let s = &mut self.subflows[i];
        let Some(m) = s.mp.tx.iter().find(|m| m.dsn == dsn).copied() else {
            tracing::debug!(?dsn, "mptcp: MP_FAIL for no mapping of ours");
            return;
        };
        // The receiver took (and discarded) the failed mapping's bytes: the subflow
        // continues after them, carrying the failed data again under the infinite
        // mapping.
        let start = m.offset_end();
        let conn = self.core.seq.tx_offset(m.dsn);
        s.mp.infinite_tx = Some((start, conn));
        s.mp.infinite_pending = Some((start, m.dsn));
        s.tcp.request_ack();
        self.core.enter_fallback(FallbackReason::ChecksumFailure);
    }

    /// Opens paths again after every subflow was lost (make-after-break): the client
    /// retries every known address pair.
    pub(crate) fn retry_paths(&mut self, now: Instant) {
        if self.core.role != Role::Client
            || self.core.mode != ConnMode::Mptcp
            || self.core.closed.is_some()
        {
            return;
        }
        if let Some(pm) = self.core.pm.as_mut() {
            pm.retry_failed(now);
        }
        self.drive_pm(now);
    }

    /// How long a connection survives without subflows.
    pub fn make_after_break(&self) -> Duration {
        self.core.config.make_after_break
    }
}
