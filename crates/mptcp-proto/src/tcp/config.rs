//! Per-connection TCP settings: plain data with defaults, every field with its unit.

use crate::cc::CcAlgorithm;
use crate::tcp::Pacing;
use crate::time::Duration;

/// Settings for one TCP connection (one MPTCP subflow).
///
/// Memory used by a connection is bounded by these numbers: the receive window never
/// exceeds `recv_buffer`, the sent-segment queue never holds more than the peer's window
/// and `send_buffer` allow, and the SACK range sets are fixed-size.
#[derive(Clone, Debug)]
pub struct TcpConfig {
    /// Our maximum segment size in bytes, announced in the SYN (RFC 9293 §3.7.1). The
    /// effective sender MSS is the smaller of this and the peer's announcement.
    pub mss: u16,
    /// Largest payload put into one emitted segment, in bytes; `None` means one MSS
    /// (minus options). Larger values make the engine emit TSO super-segments for a
    /// device that cuts them (a TUN device with virtio_net_hdr): payloads of up to this
    /// many bytes in whole wire segments, each marked with the cut size
    /// ([`crate::tcp::Transmit::gso_size`]). Every piece carries the super-segment's
    /// options, which suits MPTCP: a DSS mapping covering the whole payload is valid on
    /// each piece (RFC 8684 §3.3.1). An IPv4 packet cannot exceed 65535 bytes, so with
    /// headers 65_000 is about the most that fits.
    pub max_segment_payload: Option<usize>,
    /// Receive buffer in bytes: the most we ever advertise.
    pub recv_buffer: usize,
    /// Send buffer in bytes (used by the plain-TCP socket; bounds data in flight).
    pub send_buffer: usize,
    /// Our window-scale shift (RFC 7323 §2); `None` picks the smallest shift that lets
    /// `recv_buffer` be advertised. Values above 14 are clamped to 14.
    pub window_scale: Option<u8>,
    /// Offer SACK (RFC 2018) in the SYN.
    pub sack: bool,
    /// Offer timestamps (RFC 7323) in the SYN.
    pub timestamps: bool,
    /// Disable Nagle's algorithm (RFC 9293 §3.7.4): send small segments at once.
    pub nodelay: bool,
    /// Retransmission timeout before the first RTT sample (RFC 6298 §2.1: 1 s).
    pub initial_rto: Duration,
    /// Lower bound on the RTO. RFC 6298 §2.4 says 1 s; Linux uses 200 ms, as here.
    pub rto_min: Duration,
    /// Upper bound on the RTO, backoff included (RFC 6298 §2.5 allows >= 60 s).
    pub rto_max: Duration,
    /// Retransmissions of a SYN or SYN-ACK before giving up (Linux: 6).
    pub max_syn_retries: u32,
    /// Consecutive RTO expirations on established data before giving up (Linux: 15).
    pub max_data_retries: u32,
    /// TIME-WAIT duration, 2*MSL (RFC 9293 §3.4.2 suggests MSL = 2 min; Linux uses 60 s).
    pub time_wait: Duration,
    /// Longest an ACK may be delayed (RFC 9293 §3.8.6.3: < 0.5 s; Linux: 40 ms).
    pub delayed_ack: Duration,
    /// Acknowledge at least every this many full-sized segments (RFC 9293: 2).
    pub ack_every: u32,
    /// Keepalive (RFC 9293 §3.8.4): off by default.
    pub keepalive: Option<KeepaliveConfig>,
    /// At most this many challenge ACKs (RFC 5961 §7) per `challenge_ack_interval`.
    pub challenge_ack_limit: u32,
    /// The period of the challenge ACK rate limit.
    pub challenge_ack_interval: Duration,
    /// Initial congestion window in bytes; `None` uses RFC 6928's
    /// `min(10*MSS, max(2*MSS, 14600))`.
    pub initial_window: Option<u64>,
    /// Congestion control algorithm for this connection.
    pub congestion_control: CcAlgorithm,
    /// Pace data segments at `cwnd / srtt` times a gain instead of sending what the
    /// windows allow back to back ([`Pacing`]). Off by default: Linux paces CUBIC
    /// only under the fq qdisc, a user-space runtime would wake once per paced
    /// segment (on the ideal-link benchmarks pacing costs about 40 % more CPU per
    /// segment), and with a deep enough bottleneck queue bursts cost nothing. Turn it
    /// on where a sender's bursts meet a shallow queue (a path of an MPTCP connection
    /// that the scheduler fills in chunks, a Wi-Fi or cellular uplink): in the
    /// simulator it kept a bulk flow's queue over its first round trips at 2 packets
    /// instead of 43, at the same steady-state goodput.
    pub pacing: Option<Pacing>,
}

/// Keepalive timing (RFC 9293 §3.8.4; Linux defaults 7200 s / 75 s / 9).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeepaliveConfig {
    /// Idle time (nothing received) before the first probe.
    pub idle: Duration,
    /// Time between unanswered probes.
    pub interval: Duration,
    /// Unanswered probes before the connection is declared dead.
    pub count: u32,
}

impl Default for KeepaliveConfig {
    fn default() -> Self {
        KeepaliveConfig {
            idle: Duration::from_secs(7200),
            interval: Duration::from_secs(75),
            count: 9,
        }
    }
}

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            mss: 1460,
            max_segment_payload: None,
            recv_buffer: 256 * 1024,
            send_buffer: 256 * 1024,
            window_scale: None,
            sack: true,
            timestamps: true,
            nodelay: false,
            initial_rto: Duration::from_secs(1),
            rto_min: Duration::from_millis(200),
            rto_max: Duration::from_secs(60),
            max_syn_retries: 6,
            max_data_retries: 15,
            time_wait: Duration::from_secs(60),
            delayed_ack: Duration::from_millis(40),
            ack_every: 2,
            keepalive: None,
            challenge_ack_limit: 10,
            challenge_ack_interval: Duration::from_secs(1),
            initial_window: None,
            congestion_control: CcAlgorithm::default(),
            pacing: None,
        }
    }
}

impl TcpConfig {
    /// The window-scale shift we announce: configured, or the smallest shift that lets
    /// the whole receive buffer be advertised in the 16-bit window field.
    pub(crate) fn our_window_shift(&self) -> u8 {
        match self.window_scale {
            Some(shift) => shift.min(MAX_WINDOW_SHIFT),
            None => {
                let mut shift = 0u8;
                while shift < MAX_WINDOW_SHIFT && (self.recv_buffer >> shift) > 0xffff {
                    shift += 1;
                }
                shift
            }
        }
    }
}

/// RFC 7323 §2.3: a shift above 14 is treated as 14.
pub(crate) const MAX_WINDOW_SHIFT: u8 = 14;
