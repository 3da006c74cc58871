//! The per-connection MPTCP choices every command takes: `--scheduler`, `--cc`,
//! `--path-manager` (and, on real networks, `--backup ADDR`). Values parse with the
//! protocol crate's own parsers, whose errors name the valid choices.

use std::net::IpAddr;

use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::pm::PathPolicy;
use mptcp_proto::sched::SchedulerKind;
use mptcp_sim::traffic::MptcpOverrides;
use mptcp_tun::StackBuilder;

/// Scheduler, congestion control and path manager.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct AlgoArgs {
    /// MPTCP packet scheduler: lowest-rtt (default), round-robin[:N], redundant, blest
    /// or ecf. Example: --scheduler blest
    #[arg(long, value_name = "NAME", value_parser = parse_scheduler)]
    pub scheduler: Option<SchedulerKind>,
    /// Congestion control: newreno, cubic (default), or the coupled lia, olia, balia
    /// (RFC 6356 and successors; MPTCP subflows). Example: --cc olia
    #[arg(long, value_name = "NAME", value_parser = parse_cc)]
    pub cc: Option<CcAlgorithm>,
    /// Path manager: fullmesh (default: a subflow per address pair), ndiffports[:N]
    /// (N subflows over the first address pair, from different ports; default 2) or
    /// backup (addresses after the first join as backups). Example: --path-manager
    /// ndiffports:4
    #[arg(long = "path-manager", value_name = "POLICY", value_parser = parse_path_manager)]
    pub path_manager: Option<PathPolicy>,
}

impl AlgoArgs {
    pub fn overrides(&self) -> MptcpOverrides {
        MptcpOverrides {
            scheduler: self.scheduler,
            cc: self.cc,
            path_manager: self.path_manager,
        }
    }
}

/// [`AlgoArgs`] plus backup addresses, for the commands on real networks.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct NetMptcpArgs {
    #[command(flatten)]
    pub algo: AlgoArgs,
    /// A local address whose subflows are backups: they join with the MP_JOIN B flag
    /// (MP_PRIO, RFC 8684 §3.3.8) and carry data only when no other subflow can. The
    /// stack takes the address on; repeatable. Example: --backup 10.77.2.2
    #[arg(long, value_name = "ADDR")]
    pub backup: Vec<IpAddr>,
}

impl NetMptcpArgs {
    /// `builder` with these choices; call it after any whole-config setters
    /// (`tcp_config`, `mptcp_config`), which would replace them.
    pub fn apply(&self, mut builder: StackBuilder) -> StackBuilder {
        if let Some(scheduler) = self.algo.scheduler {
            builder = builder.scheduler(scheduler);
        }
        if let Some(cc) = self.algo.cc {
            builder = builder.congestion_control(cc);
        }
        if let Some(policy) = self.algo.path_manager {
            builder = builder.path_policy(policy);
        }
        for &addr in &self.backup {
            builder = builder.backup(addr);
        }
        builder
    }
}

pub fn parse_scheduler(s: &str) -> Result<SchedulerKind, String> {
    s.parse()
        .map_err(|e: mptcp_proto::sched::UnknownScheduler| e.to_string())
}

pub fn parse_cc(s: &str) -> Result<CcAlgorithm, String> {
    s.parse()
        .map_err(|e: mptcp_proto::cc::UnknownCcAlgorithm| e.to_string())
}

pub fn parse_path_manager(s: &str) -> Result<PathPolicy, String> {
    s.parse()
        .map_err(|e: mptcp_proto::pm::PolicyParseError| e.to_string())
}
