//! The MPTCP connection level ("meta" level, RFC 8684 §2): the building blocks the
//! connection is made of.
//!
//! - [`mapping`]: DSN mappings per subflow, both directions (RFC 8684 §3.3.1).
//! - [`data_seq`]: connection-level sequence state: IDSNs, data ACK, connection-level
//!   receive window, DATA_FIN (RFC 8684 §3.3).
//!
//! These are pure data structures: they own no bytes of the stream (the connection's
//! [`crate::buffer::SendBuffer`] and [`crate::buffer::Reassembly`] do), read no clock and
//! know nothing of the TCP engine's API. The connection glues them to its subflows.
//!
//! The connection itself: [`MptcpConnection`] (`connection.rs`: state and API;
//! `input.rs`: segments in; `output.rs`: scheduling and segments out; `timers.rs`:
//! timers and failure handling), its [`subflow`]s, [`handshake`] classification of
//! SYNs for the endpoint, its [`config`] and [`events`].

pub mod config;
mod connection;
mod coupling;
pub mod data_seq;
pub mod events;
pub mod handshake;
mod input;
pub mod mapping;
mod opportunistic;
mod output;
mod stateless;
pub mod subflow;
mod timers;

pub use config::MptcpConfig;
pub use connection::{
    AcceptError, CLOSED_SUBFLOW_HISTORY, ConnAction, ConnMode, ConnStats, JoinRefusal,
    MAX_SUBFLOWS, MemoryUse, MptcpConnection, Role, SubflowTransmit,
};
pub use events::{CloseReason, FallbackReason, MptcpEvent, SubflowDownReason};
pub use handshake::{SynKind, classify_syn};
pub use subflow::SubflowStats;

/// Names one subflow of a connection. Assigned by the connection, never reused within it,
/// and ordered so that ties between subflows break the same way on every run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SubflowId(pub u32);

#[cfg(test)]
mod tests;
