//! Wire formats: zero-copy views over IPv4, IPv6 and TCP headers, TCP and MPTCP options,
//! and builders that emit into a caller's buffer. Parsing never panics and never reads
//! out of bounds; its errors name the field and the value that was wrong.

pub mod checksum;
pub mod mptcp;
pub mod tcp;
