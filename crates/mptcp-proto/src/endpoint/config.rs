//! Endpoint settings: plain data with defaults, every field with its unit.

use core::net::IpAddr;

use crate::mptcp::MptcpConfig;
use crate::tcp::TcpConfig;

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
        }
    }
}
