//! Wire formats: zero-copy views over IPv4, IPv6 and TCP headers, TCP and MPTCP options,
//! and builders that emit into a caller's buffer. Parsing never panics and never reads
//! out of bounds; its errors name the field and the value that was wrong.
//!
//! Each format is a view (`Ipv4Packet`, `Ipv6Packet`, `TcpPacket`: `new_checked`, one
//! accessor per field) plus a `Repr` with `parse` and `emit`. [`packet`] joins them into a
//! whole IP + TCP packet; [`plan`] decides which options fit a segment's 40 bytes;
//! [`gso`] and [`gro`] cut super-segments into wire packets and merge them back.
//!
//! Not supported, by design: IP fragments (rejected, never reassembled), IPv6 jumbograms,
//! IPv4 source routing (options are skipped), IPv6 routing through this host (a Routing
//! header with segments left is rejected).

pub mod checksum;
pub mod fuzzing;
pub mod gro;
pub mod gso;
pub mod ipv4;
pub mod ipv6;
pub mod mptcp;
pub mod option;
pub mod packet;
pub mod plan;
pub mod tcp;

pub use ipv4::{Ipv4Error, Ipv4Packet, Ipv4Repr};
pub use ipv6::{Ipv6Error, Ipv6Packet, Ipv6Repr};
pub use option::{OptionError, OptionIter, TcpOption};
pub use packet::{IpRepr, IpTcpRepr, PacketError};
pub use tcp::{TcpChecksum, TcpError, TcpPacket, TcpRepr};
