//! Connection-level settings: plain data with defaults, every field with its unit.

use crate::pm::PmConfig;
use crate::sched::SchedulerKind;
use crate::tcp::TcpConfig;
use crate::time::Duration;

/// Settings for one MPTCP connection and its subflows.
#[derive(Clone, Debug)]
pub struct MptcpConfig {
    /// Settings of every subflow's TCP engine. Its `send_buffer` / `recv_buffer` are
    /// the subflow-level limits; the connection-level buffers are below. Its
    /// `congestion_control` picks each subflow's controller: uncoupled NewReno or
    /// CUBIC (the default, like Linux), or coupled LIA / OLIA / BALIA, which the
    /// connection feeds with its subflows' snapshots before every ACK and timer. Its
    /// `pacing` paces every subflow (per subflow:
    /// [`super::MptcpConnection::set_subflow_pacing`]).
    pub tcp: TcpConfig,
    /// Connection-level send buffer, bytes: written and not yet data-acknowledged.
    /// Default 8 MiB (see `recv_buffer`).
    pub send_buffer: usize,
    /// Connection-level receive buffer, bytes: the shared receive window (RFC 8684
    /// §3.3.4). It must cover the sum of the paths' rates times the largest RTT with
    /// its queue (data on the fast path waits for the slow path's older bytes), with
    /// room for window growth and reinjection. Default 8 MiB, near Linux's 6 MiB
    /// tcp_rmem maximum: two paths of 50 Mbit/s x 40 ms and 20 Mbit/s x 120 ms with
    /// a BDP of queue each reach 69 % of their capacity with 1 MiB, 90 % with 4 MiB
    /// and 93 % with 8 MiB (simulator, `mptcp_aggregation` test). The buffers grow
    /// to what the data in them needs (see [`crate::buffer`]), so an idle or
    /// lightly used connection costs far less than the limits.
    pub recv_buffer: usize,
    /// Ask for DSS checksums (MP_CAPABLE flag A, RFC 8684 §3.3.1). They are used when
    /// either side asks. Linux does not ask by default.
    pub checksums: bool,
    /// Set MP_CAPABLE flag C: the peer must not open subflows to our initial address
    /// (RFC 8684 §3.1; for servers behind a load balancer).
    pub deny_join_to_initial_address: bool,
    /// The packet scheduler.
    pub scheduler: SchedulerKind,
    /// The path manager of connections we open (clients open subflows to the mesh).
    pub pm: PmConfig,
    /// The path manager of connections we accept (servers announce their other
    /// addresses and leave opening subflows to the client, as Linux does by default).
    pub pm_server: PmConfig,
    /// How long the connection outlives the loss of its last subflow, waiting for a
    /// path to come back ("make-after-break"). Zero closes it at once.
    pub make_after_break: Duration,
    /// Lower bound of the connection-level retransmission timer (reinjection of data
    /// no data ACK covers), which otherwise follows the subflows' RTOs.
    pub reinject_min: Duration,
    /// Consecutive RTO expirations on a subflow without progress after which it is
    /// treated as potentially failed: the scheduler avoids it and its data is
    /// reinjected elsewhere (Linux marks a subflow stale after its first RTO).
    pub stale_rto_count: u64,
    /// Opportunistic retransmission and penalisation (Raiciu et al., NSDI 2012, as the
    /// out-of-tree Linux MPTCP): when the peer's connection-level window blocks new
    /// data while the oldest unacknowledged data sits on a slower subflow, send that
    /// data again on a faster subflow with window space, and halve the slow
    /// subflow's window (at most once per its RTT).
    pub opportunistic_retransmission: bool,
}

impl Default for MptcpConfig {
    fn default() -> Self {
        MptcpConfig {
            tcp: TcpConfig::default(),
            send_buffer: 8 * 1024 * 1024,
            recv_buffer: 8 * 1024 * 1024,
            checksums: false,
            deny_join_to_initial_address: false,
            scheduler: SchedulerKind::default(),
            pm: PmConfig::default(),
            pm_server: PmConfig {
                open_subflows: false,
                announce: true,
                ..PmConfig::default()
            },
            make_after_break: Duration::from_secs(30),
            reinject_min: Duration::from_millis(200),
            stale_rto_count: 2,
            opportunistic_retransmission: true,
        }
    }
}
