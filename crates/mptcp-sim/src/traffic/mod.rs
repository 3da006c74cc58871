//! Traffic on our own stack: hosts that run the protocol endpoint with bulk senders and
//! checking sinks (plain TCP or MPTCP flows), and a runner that plays a scenario's
//! flows and summarises them.

mod delivery;
mod host;
mod options;
pub mod pattern;
mod report;
mod run;
mod summary;

pub use delivery::DeliveryLog;
pub use host::{
    MPTCP_EVENT_LOG, MptcpLog, Received, Sender, SenderState, StackHost, StackOptions, flow_key,
};
pub use options::{HOST_OPTION_KEYS, parse_host_options};
pub use pattern::Pattern;
pub use report::{FlowReport, LinkReport, LinkTable, MptcpReport, RunReport, format_rate};
pub use run::{MptcpOverrides, RunOptions, TrafficError, TrafficRun, run_scenario};
pub use summary::{ConnSummary, DeliveryGaps, Stall, SubflowSummary, Summary, shares};
