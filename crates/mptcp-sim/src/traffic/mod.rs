//! Traffic on our own stack: hosts that run the protocol endpoint with bulk senders and
//! checking sinks, and a runner that plays a scenario's flows and summarises them.

mod host;
pub mod pattern;
mod run;

pub use host::{Received, Sender, SenderState, StackHost, StackOptions, flow_key};
pub use pattern::Pattern;
pub use run::{
    FlowReport, LinkReport, RunOptions, RunReport, TrafficError, format_rate, run_scenario,
};
