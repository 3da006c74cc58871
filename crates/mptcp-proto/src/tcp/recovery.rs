//! Loss detection state: RACK-TLP (RFC 8985) and the recovery episode (RFC 6675).
//!
//! RACK declares a segment lost when a segment sent after it has been delivered and a
//! reordering window has passed; TLP sends one probe when the tail of a flight goes
//! unacknowledged for about two RTTs, so tail losses are repaired by RACK instead of an
//! RTO. The walk over segments lives in [`super::sent::SentQueue::rack_detect`]; this
//! file holds the numbers that steer it.

use crate::time::{Duration, Instant};

use super::sent::Delivered;

/// RFC 8985 §6.2: DupThresh, the SACKed-segment count that triggers recovery before any
/// reordering has been seen.
pub const DUP_THRESH: u64 = 3;

/// RFC 8985 §7.2: the worst-case delayed-ACK timer assumed for a one-segment flight.
pub const WORST_CASE_DELAYED_ACK: Duration = Duration::from_millis(200);

/// How many recoveries a raised reordering window persists (RFC 8985 §6.2 step 4).
const REO_WND_PERSIST: u32 = 16;

/// RACK state (RFC 8985 §6.1).
#[derive(Clone, Debug, Default)]
pub struct Rack {
    /// Transmit time of the most recently sent segment that has been delivered.
    pub xmit_time: Option<Instant>,
    /// Its end offset.
    pub end: u64,
    /// RTT of that segment.
    pub rtt: Duration,
    /// Highest end offset delivered (forward ACK).
    pub fack: u64,
    pub reordering_seen: bool,
    reo_wnd_mult: u32,
    reo_wnd_persist: u32,
    /// SND.MAX when the reordering window was last raised by a D-SACK: at most one raise
    /// per round trip.
    dsack_round: Option<u64>,
}

impl Rack {
    /// RFC 8985 §6.2 steps 2-3 for one newly delivered segment.
    pub fn on_delivered(&mut self, now: Instant, d: &Delivered, min_rtt: Option<Duration>) {
        let rtt = now - d.xmit_time;
        // Step 2: a retransmitted segment acknowledged faster than the minimum RTT was
        // probably acknowledged by its original transmission: ambiguous, skip.
        if d.xmits > 1 && min_rtt.is_some_and(|m| rtt < m) {
            return;
        }
        let newer = match self.xmit_time {
            None => true,
            Some(t) => d.xmit_time > t || (d.xmit_time == t && d.end > self.end),
        };
        if newer {
            self.xmit_time = Some(d.xmit_time);
            self.end = d.end;
            self.rtt = rtt;
        }
        // Step 3: delivering something below the forward ACK that was never
        // retransmitted means the network reordered.
        if d.end > self.fack {
            self.fack = d.end;
        } else if d.xmits == 1 {
            self.reordering_seen = true;
        }
    }

    /// A D-SACK arrived (RFC 8985 §6.2 step 4): widen the reordering window, at most
    /// once per round trip.
    pub fn on_dsack(&mut self, snd_una: u64, snd_max: u64) {
        if self.dsack_round.is_some_and(|r| snd_una < r) {
            return;
        }
        self.dsack_round = Some(snd_max);
        self.reo_wnd_mult = self.reo_wnd_mult.max(1).saturating_add(1);
        self.reo_wnd_persist = REO_WND_PERSIST;
    }

    /// A recovery episode ended: decay the widened window after 16 of them.
    pub fn on_recovery_end(&mut self) {
        if self.reo_wnd_persist > 0 {
            self.reo_wnd_persist -= 1;
            if self.reo_wnd_persist == 0 {
                self.reo_wnd_mult = 1;
            }
        }
    }

    /// RFC 8985 §6.2 step 4: the reordering window.
    pub fn reo_wnd(
        &self,
        in_recovery: bool,
        sacked_segments: u64,
        min_rtt: Option<Duration>,
        srtt: Option<Duration>,
    ) -> Duration {
        if !self.reordering_seen && (in_recovery || sacked_segments >= DUP_THRESH) {
            return Duration::ZERO;
        }
        let quarter = min_rtt.map_or(Duration::ZERO, |m| {
            Duration::from_micros(m.total_micros() / 4)
        });
        let wnd = quarter.saturating_mul(u64::from(self.reo_wnd_mult.max(1)));
        match srtt {
            Some(s) => wnd.min(s),
            None => wnd,
        }
    }
}

/// The loss-recovery episode the sender is in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recovery {
    /// No recovery.
    Open,
    /// Fast recovery (RFC 6675 / RFC 6582) until `point` is cumulatively acknowledged.
    Fast { point: u64 },
    /// Recovery after an RTO until `point` is cumulatively acknowledged.
    Timeout { point: u64 },
}

impl Recovery {
    pub fn is_active(self) -> bool {
        match self {
            Recovery::Open => false,
            Recovery::Fast { .. } | Recovery::Timeout { .. } => true,
        }
    }
}

/// An outstanding tail loss probe (RFC 8985 §7).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlpProbe {
    /// SND.MAX after the probe was sent.
    pub end: u64,
    /// The probe retransmitted old data (rather than sending new data).
    pub retransmission: bool,
}

/// RFC 8985 §7.2: the probe timeout.
pub fn probe_timeout(srtt: Option<Duration>, single_segment_flight: bool) -> Duration {
    match srtt {
        Some(srtt) => {
            let pto = srtt.saturating_mul(2);
            if single_segment_flight {
                pto + WORST_CASE_DELAYED_ACK
            } else {
                pto
            }
        }
        None => Duration::from_secs(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delivered(end: u64, sent_ms: u64, xmits: u32) -> Delivered {
        Delivered {
            end,
            xmit_time: Instant::from_millis(sent_ms),
            xmits,
        }
    }

    #[test]
    fn rack_follows_the_most_recently_sent_delivered_segment() {
        let mut rack = Rack::default();
        let now = Instant::from_millis(50);
        rack.on_delivered(now, &delivered(300, 20, 1), None);
        rack.on_delivered(now, &delivered(200, 10, 1), None);
        assert_eq!(rack.xmit_time, Some(Instant::from_millis(20)));
        assert_eq!((rack.end, rack.rtt), (300, Duration::from_millis(30)));
        assert!(rack.reordering_seen, "200 delivered after 300");
    }

    #[test]
    fn reordering_window_is_zero_until_reordering_is_seen_once_three_segments_are_sacked() {
        let mut rack = Rack::default();
        let min = Some(Duration::from_millis(40));
        let srtt = Some(Duration::from_millis(50));
        assert_eq!(rack.reo_wnd(false, 1, min, srtt), Duration::from_millis(10));
        assert_eq!(rack.reo_wnd(false, 3, min, srtt), Duration::ZERO);
        assert_eq!(rack.reo_wnd(true, 0, min, srtt), Duration::ZERO);
        rack.reordering_seen = true;
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(10));
        rack.on_dsack(0, 1000);
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(20));
        // A second D-SACK within the same round does not widen again.
        rack.on_dsack(500, 1000);
        assert_eq!(rack.reo_wnd(true, 3, min, srtt), Duration::from_millis(20));
    }

    #[test]
    fn pto_is_two_srtt_plus_delayed_ack_for_a_single_segment() {
        let srtt = Some(Duration::from_millis(100));
        assert_eq!(probe_timeout(srtt, false), Duration::from_millis(200));
        assert_eq!(probe_timeout(srtt, true), Duration::from_millis(400));
        assert_eq!(probe_timeout(None, false), Duration::from_secs(1));
    }
}
