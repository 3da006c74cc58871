//! A sans-IO implementation of Multipath TCP (RFC 8684, protocol version 1).
//!
//! The crate never reads a clock, opens a socket, spawns a thread or draws randomness of
//! its own: time and random numbers come in from the caller, packets go in and out as
//! bytes. The TUN runtime, the simulator and tests drive it the same way.

pub mod buffer;
pub mod cc;
pub mod crypto;
pub mod endpoint;
pub mod mptcp;
pub mod pm;
pub mod sched;
pub mod seq;
pub mod tcp;
pub mod time;
pub mod wire;

pub use seq::{Dsn, SeqNum};
pub use time::{Duration, Instant};
