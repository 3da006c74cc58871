//! A scenario host's `[host.options]`: TCP and MPTCP settings of its endpoint.
//!
//! Every key is checked: an unknown one is an error naming it and listing the known
//! ones, so a typo never silently runs the default.

use std::net::IpAddr;
use std::str::FromStr;

use mptcp_proto::Duration;
use mptcp_proto::endpoint::SynCookies;
use mptcp_proto::mptcp::{MAX_SUBFLOWS, MptcpConfig};
use mptcp_proto::pm::{Handover, PathPolicy};
use mptcp_proto::tcp::Pacing;

use crate::scenario::HostSpec;
use crate::units;

use super::host::StackOptions;
use super::run::TrafficError;

/// The keys [`parse_host_options`] knows, for error messages.
pub const HOST_OPTION_KEYS: &str = "cc, send_buffer, recv_buffer, mss, min_rto, pacing, mptcp, \
     checksum, scheduler, path_manager, backup, make_after_break, reinject_min, stale_rto_count, \
     max_subflows, mptcp_send_buffer, mptcp_recv_buffer, deny_join, announce, fail_after_rtos, \
     fail_after_no_progress, handover, syn_cookies, read_rate";

/// Reads `[host.options]`:
///
/// - TCP: `cc` ("cubic", "newreno", or the coupled "lia", "olia", "balia"; for MPTCP
///   subflows), `send_buffer` and `recv_buffer` (sizes; they also
///   set the MPTCP connection-level buffers unless `mptcp_send_buffer` /
///   `mptcp_recv_buffer` do), `mss`, `min_rto` (a duration), `pacing` (bool: pace
///   data at cwnd / srtt times Linux's gains, every subflow of an MPTCP connection too).
/// - MPTCP: `mptcp` (bool, default true: accept MPTCP; false makes a plain TCP host),
///   `checksum` (ask for DSS checksums), `scheduler` ("lowest-rtt", "round-robin[:N]"
///   segments per turn, "redundant", "blest", "ecf"), `path_manager` ("fullmesh",
///   "ndiffports[:N]", "backup"), `backup` (an address of the host, or a list, whose
///   subflows join as backups), `make_after_break` and `reinject_min`
///   (durations), `stale_rto_count`, `max_subflows` (1-32, both roles),
///   `mptcp_send_buffer`, `mptcp_recv_buffer` (sizes), `deny_join` (MP_CAPABLE flag C),
///   `announce` (the server role announces its other addresses with ADD_ADDR).
/// - Failure detection (both roles): `fail_after_rtos` (consecutive RTOs without
///   progress, or "off"), `fail_after_no_progress` (a duration, or "off"), `handover`
///   ("make-before-break" or "break-before-make").
/// - Endpoint: `syn_cookies` ("never", "on-overflow" (the default: once a listener's
///   backlog is full, as Linux's `tcp_syncookies = 1`) or "always").
/// - Application: `read_rate`, how fast the host's sinks read: a rate like "4mbit"
///   (bits per second, as link rates) or a number of bytes per second. A reader
///   slower than the network fills its receive window and holds the sender back
///   (flow control, window updates, zero-window probes). Default: as fast as data
///   arrives.
pub fn parse_host_options(host: &HostSpec) -> Result<StackOptions, TrafficError> {
    let error = |message: String| TrafficError::HostOption {
        host: host.name.clone(),
        message,
    };
    let mut options = StackOptions::default();
    let mut mptcp = MptcpConfig::default();
    let mut mptcp_enabled = true;
    let (mut conn_send, mut conn_recv) = (None, None);
    let tcp = &mut options.endpoint.tcp;
    for (key, value) in &host.options {
        let text = value.as_str().map(str::to_owned);
        let size = || -> Result<usize, TrafficError> {
            let size = match (value.as_integer(), text.as_deref()) {
                (Some(n), _) if n > 0 => n as u64,
                (_, Some(s)) => units::parse_size(s).map_err(|e| error(format!("{key}: {e}")))?,
                _ => return Err(error(format!("{key} = {value} is not a size like \"4mb\""))),
            };
            usize::try_from(size).map_err(|_| error(format!("{key} is too large")))
        };
        let duration = || -> Result<Duration, TrafficError> {
            let s = text.as_deref().ok_or_else(|| {
                error(format!("{key} = {value} is not a duration like \"200ms\""))
            })?;
            units::parse_duration(s).map_err(|e| error(format!("{key}: {e}")))
        };
        let boolean = || -> Result<bool, TrafficError> {
            value
                .as_bool()
                .ok_or_else(|| error(format!("{key} = {value} is not true or false")))
        };
        match key.as_str() {
            "cc" => {
                tcp.congestion_control = parse_named(key, value, text.as_deref()).map_err(error)?
            }
            "send_buffer" => tcp.send_buffer = size()?,
            "recv_buffer" => tcp.recv_buffer = size()?,
            "mss" => {
                tcp.mss = value
                    .as_integer()
                    .and_then(|n| u16::try_from(n).ok())
                    .filter(|&n| n >= 64)
                    .ok_or_else(|| error(format!("mss = {value} is not a number in 64..=65535")))?;
            }
            "min_rto" => tcp.rto_min = duration()?,
            "pacing" => tcp.pacing = boolean()?.then(Pacing::default),
            "mptcp" => mptcp_enabled = boolean()?,
            "checksum" => mptcp.checksums = boolean()?,
            "scheduler" => {
                mptcp.scheduler = parse_named(key, value, text.as_deref()).map_err(error)?
            }
            "path_manager" => {
                let policy: PathPolicy = parse_named(key, value, text.as_deref()).map_err(error)?;
                mptcp.pm.policy = policy;
                mptcp.pm_server.policy = policy;
            }
            "backup" => {
                let addrs = value
                    .as_array()
                    .map(|a| a.iter().map(|v| v.as_str()).collect::<Option<Vec<_>>>())
                    .unwrap_or_else(|| text.as_deref().map(|s| vec![s]))
                    .ok_or_else(|| {
                        error(format!(
                            "backup = {value} is not an address or a list of them"
                        ))
                    })?;
                for addr in addrs {
                    let ip: IpAddr = addr
                        .trim()
                        .parse()
                        .map_err(|_| error(format!("backup: '{addr}' is not an IP address")))?;
                    if !host.addresses.contains(&ip) {
                        return Err(error(format!(
                            "backup: {ip} is not one of the host's addresses"
                        )));
                    }
                    mptcp.pm.backup_addrs.push(ip);
                    mptcp.pm_server.backup_addrs.push(ip);
                }
            }
            "make_after_break" => mptcp.make_after_break = duration()?,
            "reinject_min" => mptcp.reinject_min = duration()?,
            "stale_rto_count" => {
                mptcp.stale_rto_count = value
                    .as_integer()
                    .and_then(|n| u64::try_from(n).ok())
                    .filter(|&n| n >= 1)
                    .ok_or_else(|| error(format!("stale_rto_count = {value} is not >= 1")))?
            }
            "max_subflows" => {
                let n = value
                    .as_integer()
                    .and_then(|n| usize::try_from(n).ok())
                    .filter(|n| (1..=MAX_SUBFLOWS).contains(n))
                    .ok_or_else(|| {
                        error(format!(
                            "max_subflows = {value} is not a number in 1..={MAX_SUBFLOWS}"
                        ))
                    })?;
                mptcp.pm.max_subflows = n;
                mptcp.pm_server.max_subflows = n;
            }
            "mptcp_send_buffer" => conn_send = Some(size()?),
            "mptcp_recv_buffer" => conn_recv = Some(size()?),
            "deny_join" => mptcp.deny_join_to_initial_address = boolean()?,
            "read_rate" => {
                let bytes_per_second = match (value.as_integer(), text.as_deref()) {
                    (Some(n), _) if n > 0 => n as u64,
                    (_, Some(s)) => {
                        units::parse_rate(s)
                            .map_err(|e| error(format!("{key}: {e}")))?
                            .0
                            / 8
                    }
                    _ => 0,
                };
                if bytes_per_second == 0 {
                    return Err(error(format!(
                        "read_rate = {value} is not a rate like \"4mbit\" or a number of \
                         bytes per second above zero"
                    )));
                }
                options.read_rate = Some(bytes_per_second);
            }
            "announce" => mptcp.pm_server.announce = boolean()?,
            "fail_after_rtos" => {
                let n = match (value.as_integer(), text.as_deref()) {
                    (_, Some("off")) => None,
                    (Some(n), _) => {
                        Some(u32::try_from(n).ok().filter(|&n| n >= 1).ok_or_else(|| {
                            error(format!("fail_after_rtos = {value} is not >= 1 or \"off\""))
                        })?)
                    }
                    _ => {
                        return Err(error(format!(
                            "fail_after_rtos = {value} is not a count or \"off\""
                        )));
                    }
                };
                mptcp.pm.fail_after_rtos = n;
                mptcp.pm_server.fail_after_rtos = n;
            }
            "fail_after_no_progress" => {
                let d = match text.as_deref() {
                    Some("off") => None,
                    _ => Some(duration()?),
                };
                mptcp.pm.fail_after_no_progress = d;
                mptcp.pm_server.fail_after_no_progress = d;
            }
            "handover" => {
                let h = text
                    .as_deref()
                    .and_then(|t| t.parse::<Handover>().ok())
                    .ok_or_else(|| {
                        error(format!(
                            "handover = {value} is not known; try \"make-before-break\" or \
                             \"break-before-make\""
                        ))
                    })?;
                mptcp.pm.handover = h;
                mptcp.pm_server.handover = h;
            }
            "syn_cookies" => {
                options.endpoint.syn_cookies = match text.as_deref() {
                    Some("never") => SynCookies::Never,
                    Some("on-overflow") => SynCookies::OnOverflow,
                    Some("always") => SynCookies::Always,
                    _ => {
                        return Err(error(format!(
                            "syn_cookies = {value} is not known; try \"never\", \"on-overflow\" \
                             or \"always\""
                        )));
                    }
                }
            }
            other => {
                return Err(error(format!(
                    "unknown option '{other}' (known: {HOST_OPTION_KEYS})"
                )));
            }
        }
    }
    // The application's buffer is the connection-level one for MPTCP: follow the TCP
    // sizes when they were given and the MPTCP ones were not.
    if host.options.contains_key("send_buffer") {
        mptcp.send_buffer = tcp.send_buffer;
    }
    if host.options.contains_key("recv_buffer") {
        mptcp.recv_buffer = tcp.recv_buffer;
    }
    if let Some(n) = conn_send {
        mptcp.send_buffer = n;
    }
    if let Some(n) = conn_recv {
        mptcp.recv_buffer = n;
    }
    // Subflows use the host's TCP settings (congestion control, MSS, RTO floor).
    mptcp.tcp = tcp.clone();
    options.endpoint.mptcp = mptcp_enabled.then_some(mptcp);
    Ok(options)
}

/// A string option read with the type's own parser, whose error names the valid
/// choices.
fn parse_named<T>(key: &str, value: &toml::Value, text: Option<&str>) -> Result<T, String>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    let text = text.ok_or_else(|| format!("{key} = {value} is not a string"))?;
    text.parse().map_err(|e| format!("{key}: {e}"))
}

#[cfg(test)]
mod tests {
    use mptcp_proto::cc::CcAlgorithm;
    use mptcp_proto::sched::SchedulerKind;

    use super::*;

    fn host(options: &str) -> HostSpec {
        HostSpec {
            name: "h".into(),
            addresses: vec!["10.0.0.1".parse().expect("literal")],
            options: toml::from_str(options).expect("test options parse"),
        }
    }

    #[test]
    fn mptcp_options_reach_the_config() {
        let o = parse_host_options(&host(
            r#"checksum = true
            scheduler = "round-robin:3"
            make_after_break = "5s"
            reinject_min = "300ms"
            stale_rto_count = 4
            max_subflows = 3
            mptcp_send_buffer = "2mb"
            recv_buffer = "512kb"
            cc = "newreno"
            deny_join = true
            syn_cookies = "always"
            read_rate = "4mbit""#,
        ))
        .expect("valid");
        assert_eq!(o.endpoint.syn_cookies, SynCookies::Always);
        assert_eq!(o.read_rate, Some(500_000));
        let bytes = parse_host_options(&host("read_rate = 20000")).expect("valid");
        assert_eq!(bytes.read_rate, Some(20_000));
        let m = o.endpoint.mptcp.expect("MPTCP on by default");
        assert!(m.checksums);
        assert_eq!(
            m.scheduler,
            SchedulerKind::RoundRobin {
                segments_per_turn: 3
            }
        );
        assert_eq!(m.make_after_break, Duration::from_secs(5));
        assert_eq!(m.reinject_min, Duration::from_millis(300));
        assert_eq!(m.stale_rto_count, 4);
        assert_eq!((m.pm.max_subflows, m.pm_server.max_subflows), (3, 3));
        assert_eq!(m.send_buffer, 2 * 1024 * 1024);
        assert_eq!(m.recv_buffer, 512 * 1024);
        assert_eq!(o.endpoint.tcp.recv_buffer, 512 * 1024);
        assert_eq!(m.tcp.congestion_control, CcAlgorithm::NewReno);
        assert!(m.deny_join_to_initial_address);
    }

    #[test]
    fn coupled_cc_new_schedulers_and_path_managers_parse() {
        let o = parse_host_options(&host(
            r#"cc = "olia"
            scheduler = "blest"
            path_manager = "ndiffports:3"
            backup = ["10.0.0.1"]"#,
        ))
        .expect("valid");
        let m = o.endpoint.mptcp.expect("MPTCP on by default");
        assert_eq!(m.tcp.congestion_control, CcAlgorithm::Olia);
        assert_eq!(m.scheduler, SchedulerKind::Blest);
        assert_eq!(m.pm.policy, PathPolicy::NDiffPorts { subflows: 3 });
        assert_eq!(m.pm_server.policy, PathPolicy::NDiffPorts { subflows: 3 });
        let backup: IpAddr = "10.0.0.1".parse().expect("literal");
        assert_eq!(m.pm.backup_addrs, vec![backup]);
        let o = parse_host_options(&host(r#"backup = "10.0.0.1""#)).expect("valid");
        assert_eq!(o.endpoint.mptcp.expect("on").pm.backup_addrs, vec![backup]);
    }

    #[test]
    fn every_scheduler_congestion_control_and_failure_setting_is_reachable() {
        let o = parse_host_options(&host(
            r#"scheduler = "ecf"
            cc = "olia"
            fail_after_rtos = 2
            pacing = true
            fail_after_no_progress = "300ms"
            handover = "break-before-make""#,
        ))
        .expect("valid");
        let m = o.endpoint.mptcp.expect("MPTCP on by default");
        assert_eq!(m.scheduler, SchedulerKind::Ecf);
        assert_eq!(m.tcp.congestion_control, CcAlgorithm::Olia);
        assert_eq!(m.tcp.pacing, Some(Pacing::default()));
        assert_eq!(o.endpoint.tcp.pacing, Some(Pacing::default()));
        for pm in [&m.pm, &m.pm_server] {
            assert_eq!(pm.fail_after_rtos, Some(2));
            assert_eq!(pm.fail_after_no_progress, Some(Duration::from_millis(300)));
            assert_eq!(pm.handover, Handover::BreakBeforeMake);
        }
        for (text, kind) in [
            ("blest", SchedulerKind::Blest),
            ("redundant", SchedulerKind::Redundant),
        ] {
            let o = parse_host_options(&host(&format!("scheduler = \"{text}\""))).expect(text);
            assert_eq!(o.endpoint.mptcp.expect("on").scheduler, kind);
        }
        let o = parse_host_options(&host(r#"fail_after_rtos = "off""#)).expect("valid");
        assert_eq!(o.endpoint.mptcp.expect("on").pm.fail_after_rtos, None);
    }

    #[test]
    fn mptcp_can_be_turned_off_and_defaults_are_kept() {
        let o = parse_host_options(&host("mptcp = false")).expect("valid");
        assert!(o.endpoint.mptcp.is_none());
        let o = parse_host_options(&host("")).expect("valid");
        let m = o.endpoint.mptcp.expect("on by default");
        assert_eq!(m.send_buffer, MptcpConfig::default().send_buffer);
        assert!(!m.checksums);
        assert_eq!(o.endpoint.syn_cookies, SynCookies::OnOverflow);
        assert_eq!(o.read_rate, None);
    }

    #[test]
    fn bad_and_unknown_options_name_the_key() {
        for (text, needle) in [
            ("checksums = true", "unknown option 'checksums'"),
            ("checksum = 1", "checksum = 1 is not true or false"),
            (
                "scheduler = \"fastest\"",
                "scheduler: unknown scheduler \"fastest\": expected one of lowest-rtt",
            ),
            ("cc = \"vegas\"", "cc: unknown congestion control \"vegas\""),
            ("cc = 3", "cc = 3 is not a string"),
            (
                "path_manager = \"mesh\"",
                "path_manager: unknown path manager \"mesh\" (expected fullmesh",
            ),
            (
                "backup = \"10.9.9.9\"",
                "backup: 10.9.9.9 is not one of the host's",
            ),
            ("backup = [1]", "backup = [1] is not an address or a list"),
            (
                "max_subflows = 33",
                "max_subflows = 33 is not a number in 1..=32",
            ),
            (
                "make_after_break = 5",
                "make_after_break = 5 is not a duration",
            ),
            (
                "syn_cookies = \"yes\"",
                "syn_cookies = \"yes\" is not known",
            ),
            ("read_rate = 0", "read_rate = 0 is not a rate"),
            ("read_rate = \"4mbps\"", "read_rate: '4mbps' is not a rate"),
            ("read_rate = \"1bit\"", "read_rate = \"1bit\" is not a rate"),
            ("fail_after_rtos = 0", "fail_after_rtos = 0 is not >= 1"),
            ("handover = \"later\"", "handover = \"later\" is not known"),
        ] {
            let err = parse_host_options(&host(text)).expect_err(text).to_string();
            assert!(err.contains(needle), "{text}: {err}");
            assert!(err.starts_with("host 'h': "), "{err}");
        }
    }
}
