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

pub mod header;
pub mod socks5;
pub mod target;
