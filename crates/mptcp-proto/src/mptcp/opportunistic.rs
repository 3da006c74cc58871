//! Opportunistic retransmission and penalisation (Raiciu et al., "How Hard Can It Be?
//! Designing and Implementing a Deployable Multipath TCP", NSDI 2012, §4.2; the
//! out-of-tree Linux MPTCP's `mptcp_rcv_buf_optimization`).
//!
//! With one shared receive window (RFC 8684 §3.3.4), data outstanding on a slow
//! subflow holds the window's left edge: the receiver cannot deliver, the window fills,
//! and the fast subflows stall though their own windows are open. When that happens
//! (new data waits, the connection-level window cannot take a segment of it) and the
//! oldest unacknowledged data is held by a subflow with a larger RTT than a subflow
//! that has window space, that data is sent again on the fast subflow (the receiver
//! keeps whichever copy arrives first) and the slow subflow's window is halved, at most
//! once per its RTT, so the scheduler gives it less of the next data.

use crate::mptcp::connection::{ConnMode, MptcpConnection};
use crate::time::Instant;

impl MptcpConnection {
    /// Runs after the scheduler; see the module documentation.
    pub(crate) fn opportunistic_retransmit(&mut self, now: Instant) {
        if self.core.mode != ConnMode::Mptcp || !self.core.reinject.is_empty() {
            return;
        }
        let seq = &self.core.seq;
        let una_dsn = seq.snd_una();
        let una = seq.tx_offset(una_dsn);
        let next = seq.tx_offset(seq.snd_nxt());
        let pending = self.send.end().saturating_sub(next);
        if pending == 0 || una >= next {
            return;
        }
        let mss = self
            .subflows
            .iter()
            .filter(|s| s.schedulable())
            .map(|s| u64::from(s.tcp.send_mss()))
            .max()
            .unwrap_or(1);
        if seq.send_window() >= pending.min(mss) {
            // Not blocked by the receive window.
            return;
        }
        // The subflows that still owe the oldest byte: its mapping on them lies at or
        // beyond their cumulative ACK. `(index, mapping end as a connection offset)`.
        let holds = |i: usize| -> Option<u64> {
            let s = &self.subflows[i];
            s.mp.tx.iter().find_map(|m| {
                let start = seq.tx_offset(m.dsn);
                let end = start + u64::from(m.len);
                let owed =
                    start <= una && una < end && m.offset + (una - start) >= s.tcp.acked_offset();
                owed.then_some(end)
            })
        };
        let holder = (0..self.subflows.len())
            .filter(|&i| self.subflows[i].schedulable())
            .find_map(|i| holds(i).map(|end| (i, end)));
        let Some((slow, held_end)) = holder else {
            return;
        };
        let Some(slow_rtt) = self.subflows[slow].tcp.srtt() else {
            return;
        };
        let slow_backup = self.subflows[slow].is_backup();
        // The fastest other subflow with window space that is faster than the holder
        // and does not hold the byte itself (it was already sent there).
        let fast = (0..self.subflows.len())
            .filter(|&i| i != slow)
            .filter(|&i| {
                let s = &self.subflows[i];
                s.schedulable() && !s.mp.stale && (slow_backup || !s.is_backup())
            })
            .filter_map(|i| {
                let s = &self.subflows[i];
                let t = s.tcp.stats();
                let srtt = t.srtt.filter(|r| *r < slow_rtt)?;
                let outstanding =
                    s.tcp.sent_offset().saturating_sub(s.tcp.acked_offset()) + s.unsent();
                let space = t
                    .cwnd
                    .saturating_sub(t.bytes_in_flight + s.unsent())
                    .min(s.tcp.send_window().saturating_sub(outstanding));
                (space > 0).then_some((srtt, s.id, i, space))
            })
            .min();
        let Some((_, _, fast, space)) = fast else {
            return;
        };
        // Sent there already (owed or acknowledged at the subflow level): the copy is
        // on its way or arrived, and the data ACK will follow.
        let already = self.subflows[fast].mp.tx.iter().any(|m| {
            let start = seq.tx_offset(m.dsn);
            start <= una && una < start + u64::from(m.len)
        });
        if already {
            return;
        }
        let len = (held_end - una).min(space).min(u64::from(u32::MAX)) as u32;
        if len == 0 {
            return;
        }
        tracing::debug!(
            slow = self.subflows[slow].id.0,
            fast = self.subflows[fast].id.0,
            una,
            len,
            "mptcp: receive window blocked by a slow subflow, retransmitting on a fast one"
        );
        let f = &mut self.subflows[fast];
        f.mp.tx.push(una_dsn, len);
        f.mp.bytes_scheduled += u64::from(len);
        f.mp.bytes_reinjected += u64::from(len);
        self.core.opportunistic_bytes += u64::from(len);
        // Penalise the slow subflow, at most once per its RTT.
        let s = &mut self.subflows[slow];
        if s.mp.last_penalty.is_none_or(|at| now >= at + slow_rtt) {
            s.mp.last_penalty = Some(now);
            s.tcp.penalize(now);
            self.core.penalties += 1;
        }
    }
}
