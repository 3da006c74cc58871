//! A user-space TCP (and, as the protocol core grows, Multipath TCP) stack on a Linux
//! TUN device.
//!
//! [`Stack::builder`] opens a TUN device, routes the stack's own addresses into it and
//! starts event-loop threads (one by default, see [`StackBuilder::workers`]), each
//! owning a queue of the device and a shard of the sans-IO `mptcp-proto` endpoint. The stack hands out blocking streams ([`MptcpStream`],
//! [`MptcpListener`], shaped like std's) and tokio ones ([`AsyncMptcpStream`],
//! [`AsyncMptcpListener`]). See README.md for the network topology.
//!
//! Creating a TUN device needs root or `CAP_NET_ADMIN`.

mod blocking;
mod clock;
mod core;
mod device;
mod driver;
mod engine;
mod notify;
mod offload;
mod pcap;
mod stack;
mod steer;
mod tokio_io;

pub use blocking::{MptcpListener, MptcpStream};
pub use stack::{MAX_WORKERS, Stack, StackBuilder};
pub use tokio_io::{AsyncMptcpListener, AsyncMptcpStream};

pub use mptcp_proto::endpoint::{DropReason, EndpointStats, SynCookies};
pub use mptcp_proto::mptcp::{
    CloseReason, ConnMode, ConnStats, FallbackReason, MptcpConfig, MptcpEvent, SubflowDownReason,
    SubflowId, SubflowStats,
};
pub use mptcp_proto::tcp::{TcpConfig, TcpState, TcpStats};
