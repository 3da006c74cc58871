//! `mptcp proxy`: transparent multipath for unmodified TCP applications.
//!
//! Applications speak plain TCP (SOCKS5, or a fixed port forward) to the proxy client;
//! the client carries each connection over one connection of our stack (MPTCP over
//! several TUN addresses) to the proxy server, sending the target first in a small
//! [`header`]; the server opens a kernel TCP connection to the target and splices.
//!
//! - [`socks5`], [`header`], [`target`]: sans-IO wire formats (never panic, proptested);
//! - [`splice`]: a bidirectional copy with bounded buffers, half-close and idle timeout;
//! - [`client`], [`server`]: the two roles, generic over the multipath transport
//!   ([`transport`]: our TUN stack, or kernel MPTCP sockets);
//! - [`stats`]: counters and the events each connection reports.

pub mod client;
pub mod header;
pub mod server;
pub mod socks5;
pub mod splice;
pub mod stats;
pub mod target;
pub mod transport;

use std::time::Duration;

pub use client::{Front, run_client};
pub use server::run_server;
pub use splice::SpliceConfig;
pub use stats::{Event, Reporter, Snapshot};

/// Settings shared by the client and the server.
#[derive(Clone, Debug)]
pub struct ProxyConfig {
    /// The SOCKS5 handshake, or sending/receiving the converter header, must finish
    /// within this (default 10 s); a client that stalls mid-request is dropped.
    pub handshake_timeout: Duration,
    /// Opening the multipath connection (client) or the target connection (server),
    /// name resolution included (default 10 s).
    pub connect_timeout: Duration,
    /// Connections open at once (default 1024); further ones wait in the kernel's
    /// accept queue, which is what keeps memory bounded under load.
    pub max_connections: usize,
    pub splice: SpliceConfig,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            handshake_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(10),
            max_connections: 1024,
            splice: SpliceConfig::default(),
        }
    }
}

/// Why a connection ended before splicing: where, what, and the SOCKS5 reply code
/// that was sent (or passed on).
#[derive(Debug)]
pub(crate) struct Failure {
    stage: &'static str,
    error: String,
    reply: Option<socks5::ReplyCode>,
}

impl Failure {
    fn new(stage: &'static str, error: impl std::fmt::Display) -> Failure {
        Failure {
            stage,
            error: error.to_string(),
            reply: None,
        }
    }

    fn with_reply(mut self, code: socks5::ReplyCode) -> Failure {
        self.reply = Some(code);
        self
    }
}
