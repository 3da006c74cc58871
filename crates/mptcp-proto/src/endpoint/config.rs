//! Endpoint settings: plain data with defaults, every field with its unit.

use core::net::IpAddr;

use crate::mptcp::MptcpConfig;
use crate::tcp::TcpConfig;

use super::shard::Shard;

/// When a listener answers a SYN with a SYN cookie (RFC 4987 §3.6) instead of creating
/// the connection at once. See `endpoint/cookie.rs` for what a cookie carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SynCookies {
    /// Never: SYNs beyond the backlog are dropped.
    Never,
    /// When the listener's backlog (connections not yet accepted) is full, as Linux
    /// does (`net.ipv4.tcp_syncookies = 1`): under normal load the server keeps the
    /// exact MSS and retransmits its SYN/ACK; under a flood the half-open state stays
    /// bounded by the backlog and every further SYN is answered statelessly.
    #[default]
    OnOverflow,
    /// For every SYN (Linux's `tcp_syncookies = 2`): no state at all between the SYN
    /// and the third ACK or the first data (RFC 8684 §3.1 allows it for MP_CAPABLE).
    Always,
}

/// Settings for one [`super::Endpoint`].
#[derive(Clone, Debug)]
pub struct EndpointConfig {
    /// Settings for every connection the endpoint opens or accepts.
    pub tcp: TcpConfig,
    /// Most connections held at once (any state, TIME-WAIT included). SYNs beyond it
    /// are dropped; `connect` fails.
    pub max_connections: usize,
    /// Per listener: most connections not yet taken by `accept` (handshaking or
    /// ready). SYNs beyond it are dropped and counted (Linux's somaxconn defaults to
    /// 4096; 128 was the classic value).
    pub listen_backlog: usize,
    /// Ephemeral port range for `connect` with port 0, inclusive (RFC 6335 §6:
    /// 49152-65535).
    pub ephemeral_port_min: u16,
    pub ephemeral_port_max: u16,
    /// The addresses packets may be addressed to. Empty: any address the caller hands
    /// in (the runtime already filtered). Packets for other addresses are dropped
    /// without an answer. MPTCP connections we accept announce the others (ADD_ADDR).
    pub local_addrs: Vec<IpAddr>,
    /// IPv4 TTL and IPv6 hop limit of emitted packets (Linux: 64).
    pub hop_limit: u8,
    /// RSTs for unknown segments waiting for `poll_transmit`, at most; more are
    /// dropped and counted, which also bounds what a flood of stray segments costs.
    pub max_pending_resets: usize,
    /// MPTCP (RFC 8684) for listeners: with `Some`, a SYN carrying MP_CAPABLE v1
    /// creates an MPTCP connection with these settings (others still get plain TCP);
    /// with `None`, every SYN gets plain TCP. `connect_mptcp` uses it too, or the
    /// defaults. Off by default: a plain endpoint stays exactly TCP.
    pub mptcp: Option<MptcpConfig>,
    /// SYN cookies for plain TCP and MP_CAPABLE SYNs alike (MP_JOIN SYNs never get
    /// one). Default [`SynCookies::OnOverflow`].
    pub syn_cookies: SynCookies,
    /// Cookie SYN/ACKs waiting for `poll_transmit`, at most; more SYNs are dropped and
    /// counted (their clients retransmit), which bounds what a SYN flood costs between
    /// two polls.
    pub max_pending_syn_acks: usize,
    /// Emitted packets carry only the pseudo-header sum in the TCP checksum field, for
    /// a device that completes it (virtio_net_hdr `NEEDS_CSUM`; the IPv4 header
    /// checksum is always computed). Off by default: full checksums.
    pub checksum_offload: bool,
    /// This endpoint is one shard of several over one device (see `shard.rs`): its
    /// ephemeral ports and MPTCP tokens are chosen so that packets for its connections
    /// are steered to it. `None` (the default): the only endpoint.
    pub shard: Option<Shard>,
}

impl Default for EndpointConfig {
    fn default() -> Self {
        EndpointConfig {
            tcp: TcpConfig::default(),
            max_connections: 65_536,
            listen_backlog: 128,
            ephemeral_port_min: 49_152,
            ephemeral_port_max: 65_535,
            local_addrs: Vec::new(),
            hop_limit: 64,
            max_pending_resets: 64,
            mptcp: None,
            syn_cookies: SynCookies::default(),
            max_pending_syn_acks: 256,
            checksum_offload: false,
            shard: None,
        }
    }
}
