//! A deterministic network simulator for testing and studying (Multipath) TCP.
//!
//! Hosts are sans-IO endpoints ([`Host`]) that exchange raw IPv4/IPv6 packets over
//! links with a rate, a propagation delay, a drop-tail queue and optional impairments
//! (random and bursty loss, reordering, duplication, corruption, outages, capacity
//! traces, middleboxes). Routers forward by static routes, so flows can share a
//! bottleneck. Time is virtual and every random draw comes from streams derived from
//! one seed: the same seed gives the same run, packet for packet.
//!
//! Scenarios can be built in code ([`Simulator`]) or loaded from TOML ([`Scenario`]).

pub mod builtin;
pub mod host;
pub mod link;
pub mod middlebox;
pub mod packet;
pub mod record;
mod routing;
pub mod scenario;
mod sim;
pub mod testing;
pub mod traffic;
pub mod units;

pub use host::{Context, Host, HostRng, NodeId};
pub use link::{CapacityTrace, LinkConfig, LossModel, Rate, Reorder};
pub use middlebox::{Middlebox, Verdict};
pub use packet::FlowId;
pub use record::{DropReason, FlowStats, LinkStats, NodeStats, Recorder, Series, SeriesId};
pub use scenario::{FlowKind, FlowSpec, HostSpec, LinkSpec, RouterSpec, Scenario, ScenarioError};
pub use sim::{Direction, Directions, LinkId, SimError, Simulator};
