//! Path manager settings: the policy (which subflows a connection wants), limits,
//! self-healing (re-creating failed subflows with exponential backoff), failure
//! detection thresholds and the handover order. Plain data with defaults; the names
//! parse from strings for the command line and scenario files.

use core::fmt;
use core::net::IpAddr;
use core::str::FromStr;

use crate::time::Duration;

/// Which subflows a connection wants.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathPolicy {
    /// One subflow per (local address, remote address) pair of the same IP family
    /// (Linux's `fullmesh` endpoints, the CAIA FreeBSD stack's only policy).
    #[default]
    FullMesh,
    /// `subflows` subflows over the initial address pair, each from its own source port
    /// (the out-of-tree Linux `ndiffports` path manager: spreads one path over several
    /// ECMP hashes, or several congestion windows). Other addresses are remembered, not
    /// used.
    NDiffPorts { subflows: u8 },
    /// Full mesh with standby paths: subflows from the designated backup addresses
    /// ([`PmConfig::backup_addrs`]) join with the MP_JOIN B flag (RFC 8684 §3.3.8) and
    /// carry data only when no regular subflow can. With no address designated, every
    /// address but the initial one is a backup (active/standby).
    Backup,
}

impl PathPolicy {
    /// `ndiffports` without a count: two subflows, as the out-of-tree Linux default.
    pub const DEFAULT_NDIFFPORTS: u8 = 2;

    /// The names [`PathPolicy::from_str`] takes.
    pub const NAMES: [&'static str; 3] = ["fullmesh", "ndiffports[:N]", "backup"];
}

impl fmt::Display for PathPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathPolicy::FullMesh => f.write_str("fullmesh"),
            PathPolicy::NDiffPorts { subflows } => write!(f, "ndiffports:{subflows}"),
            PathPolicy::Backup => f.write_str("backup"),
        }
    }
}

/// A path manager name that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PolicyParseError {
    #[error("unknown path manager {0:?} (expected fullmesh, ndiffports[:N] or backup)")]
    Unknown(String),
    #[error("ndiffports count {0:?} is not a number from 1 to 255")]
    BadCount(String),
}

impl FromStr for PathPolicy {
    type Err = PolicyParseError;

    /// `fullmesh` (also `full-mesh`), `ndiffports` or `ndiffports:N` with N in 1..=255,
    /// `backup`; case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let (name, count) = match lower.split_once(':') {
            Some((name, count)) => (name, Some(count)),
            None => (lower.as_str(), None),
        };
        match (name, count) {
            ("fullmesh" | "full-mesh", None) => Ok(PathPolicy::FullMesh),
            ("backup", None) => Ok(PathPolicy::Backup),
            ("ndiffports", None) => Ok(PathPolicy::NDiffPorts {
                subflows: Self::DEFAULT_NDIFFPORTS,
            }),
            ("ndiffports", Some(count)) => match count.parse::<u8>() {
                Ok(n) if n >= 1 => Ok(PathPolicy::NDiffPorts { subflows: n }),
                Ok(_) | Err(_) => Err(PolicyParseError::BadCount(count.to_string())),
            },
            _ => Err(PolicyParseError::Unknown(s.to_string())),
        }
    }
}

/// In which order a failing subflow is replaced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Handover {
    /// Open the replacement as soon as a subflow is potentially failed (its RTOs
    /// without progress reached `MptcpConfig::stale_rto_count`), before it is declared
    /// failed and dropped: no gap without a path.
    #[default]
    MakeBeforeBreak,
    /// Drop the failed subflow first, then open the replacement after the retry delay:
    /// never more subflows than the policy wants.
    BreakBeforeMake,
}

impl FromStr for Handover {
    type Err = PolicyParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "make-before-break" | "mbb" => Ok(Handover::MakeBeforeBreak),
            "break-before-make" | "bbm" => Ok(Handover::BreakBeforeMake),
            _ => Err(PolicyParseError::Unknown(s.to_string())),
        }
    }
}

/// Path manager settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PmConfig {
    pub policy: PathPolicy,
    /// Most subflows per connection, the initial one included. Linux caps at 8
    /// (MPTCP_SUBFLOWS_MAX); here up to [`crate::mptcp::MAX_SUBFLOWS`] (larger values
    /// are clamped).
    pub max_subflows: usize,
    /// Open subflows to the mesh (usually the client). Linux: `subflow` endpoints.
    pub open_subflows: bool,
    /// Announce local addresses with ADD_ADDR (usually the server). Linux: `signal`
    /// endpoints.
    pub announce: bool,
    /// Longest wait before an unechoed ADD_ADDR is sent again. The wait is the
    /// connection's retransmission timeout ([`super::PathManager::set_rto`]), doubled
    /// per retransmission, and at most this. Linux's `add_addr_timeout` (120 s,
    /// TCP_RTO_MAX) is such a maximum since Linux 6.18, which waits for the largest
    /// subflow RTO; a fixed 120 s left connections shorter than that with no repeat.
    pub add_addr_timeout: Duration,
    /// Retransmissions of an ADD_ADDR before giving up. Linux: ADD_ADDR_RETRANS_MAX = 3.
    pub add_addr_retransmits: u32,
    /// Local addresses whose subflows join as backups (`--backup ADDR`), whatever the
    /// policy.
    pub backup_addrs: Vec<IpAddr>,
    /// Self-healing: a subflow that closed or failed to open is opened again while its
    /// local address exists, after `retry_initial` doubled per consecutive failure up
    /// to `retry_max`. RFC 8684 §3.4.1 says a host SHOULD NOT retry an address it
    /// failed to reach; a mobile host's paths come and go, so this deviates on purpose.
    /// Off: a failed pair is tried again only when one of its addresses is added or
    /// announced again, or when the connection lost every subflow.
    pub self_heal: bool,
    /// First retry delay after a failure (a subflow that was established starts over
    /// from here).
    pub retry_initial: Duration,
    /// Largest retry delay.
    pub retry_max: Duration,
    /// Declare a subflow failed (and reset it with MP_TCPRST "unacceptable
    /// performance") after this many consecutive RTOs without progress. `None`: leave
    /// it to TCP's own retransmission limit.
    pub fail_after_rtos: Option<u32>,
    /// Declare a subflow failed when it has had data outstanding for this long without
    /// the peer acknowledging new data (cumulatively or by SACK), whichever of the two
    /// limits comes first. Never shorter than the subflow's retransmission timeout
    /// without backoff (srtt + 4 rttvar, at least `TcpConfig::rto_min`), so ordinary
    /// loss recovery on a healthy path does not trip it; detection faster than 200 ms
    /// needs a smaller `rto_min` too. `None`: no limit.
    pub fail_after_no_progress: Option<Duration>,
    /// Replacement order for failing subflows.
    pub handover: Handover,
}

impl Default for PmConfig {
    fn default() -> Self {
        PmConfig {
            policy: PathPolicy::FullMesh,
            max_subflows: 8,
            open_subflows: true,
            announce: false,
            add_addr_timeout: Duration::from_secs(120),
            add_addr_retransmits: 3,
            backup_addrs: Vec::new(),
            self_heal: true,
            retry_initial: Duration::from_millis(500),
            retry_max: Duration::from_secs(60),
            fail_after_rtos: Some(6),
            fail_after_no_progress: None,
            handover: Handover::MakeBeforeBreak,
        }
    }
}

impl PmConfig {
    /// The delay before retry number `failures` (1 for the first): `retry_initial`
    /// doubled per earlier failure, capped at `retry_max`.
    pub fn retry_delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.retry_initial
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_names_parse_and_print_back() {
        assert_eq!("fullmesh".parse(), Ok(PathPolicy::FullMesh));
        assert_eq!(" Full-Mesh ".parse(), Ok(PathPolicy::FullMesh));
        assert_eq!("backup".parse(), Ok(PathPolicy::Backup));
        assert_eq!(
            "ndiffports".parse(),
            Ok(PathPolicy::NDiffPorts { subflows: 2 })
        );
        assert_eq!(
            "NDIFFPORTS:12".parse(),
            Ok(PathPolicy::NDiffPorts { subflows: 12 })
        );
        for p in [
            PathPolicy::FullMesh,
            PathPolicy::Backup,
            PathPolicy::NDiffPorts { subflows: 7 },
        ] {
            assert_eq!(p.to_string().parse(), Ok(p));
        }
    }

    #[test]
    fn bad_policy_names_say_what_is_wrong() {
        assert_eq!(
            "meshy".parse::<PathPolicy>(),
            Err(PolicyParseError::Unknown("meshy".into()))
        );
        assert_eq!(
            "fullmesh:3".parse::<PathPolicy>(),
            Err(PolicyParseError::Unknown("fullmesh:3".into()))
        );
        for bad in ["0", "256", "x", "", "-1"] {
            assert_eq!(
                format!("ndiffports:{bad}").parse::<PathPolicy>(),
                Err(PolicyParseError::BadCount(bad.into()))
            );
        }
        let msg = PolicyParseError::BadCount("0".into()).to_string();
        assert_eq!(msg, "ndiffports count \"0\" is not a number from 1 to 255");
        assert_eq!("mbb".parse(), Ok(Handover::MakeBeforeBreak));
        assert_eq!("break-before-make".parse(), Ok(Handover::BreakBeforeMake));
        assert!("later".parse::<Handover>().is_err());
    }

    #[test]
    fn retry_delay_doubles_up_to_the_cap() {
        let c = PmConfig {
            retry_initial: Duration::from_millis(250),
            retry_max: Duration::from_secs(3),
            ..PmConfig::default()
        };
        let delays: Vec<u64> = (1..=6).map(|n| c.retry_delay(n).total_millis()).collect();
        assert_eq!(delays, vec![250, 500, 1000, 2000, 3000, 3000]);
        assert_eq!(c.retry_delay(u32::MAX), Duration::from_secs(3));
    }
}
