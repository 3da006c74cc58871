//! Coupled congestion control's view of the connection: before a subflow's engine
//! processes an ACK or a timer, the connection hands it a fresh snapshot of every
//! subflow that carries data (RFC 6356 couples the subflows' windows; DESIGN.md: a
//! read-only copy, no shared mutable state). The buffer is reused, so this allocates
//! nothing once the connection has seen its largest number of subflows.

use crate::mptcp::connection::MptcpConnection;

impl MptcpConnection {
    /// Gives subflow `i`'s engine the snapshots of its siblings, if its congestion
    /// control is coupled.
    pub(crate) fn share_snapshots(&mut self, i: usize) {
        if !self.core.config.tcp.congestion_control.is_coupled() || i >= self.subflows.len() {
            return;
        }
        let buf = &mut self.core.cc_snapshots;
        buf.clear();
        let mut own = 0;
        for (k, s) in self.subflows.iter().enumerate() {
            if k == i {
                own = buf.len();
                buf.push(s.tcp.snapshot());
            } else if s.mp.carries_data() && !s.mp.stale {
                buf.push(s.tcp.snapshot());
            }
        }
        self.subflows[i].tcp.set_sibling_snapshots(own, buf);
    }
}
