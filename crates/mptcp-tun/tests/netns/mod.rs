//! Network namespaces for the interop tests (our own copy of the part of
//! /work/shared/tools/netns-two-paths.sh these tests need).
//!
//! ```text
//!  ns "ours" (our stack)                                  ns "peer" (kernel sockets)
//!  TUN mptcp0 <- routes 10.77.1.2/32, 10.77.2.2/32 (the stack's addresses)
//!  ip_forward=1
//!  veth vo1 10.99.1.2/24  -------- path 1 --------  vp1 10.99.1.1/24 (PEER_ADDR)
//!  veth vo2 10.99.2.2/24  -------- path 2 --------  vp2 10.99.2.1/24
//!  default via 10.99.1.1                             10.77.0.0/16 via 10.99.1.2
//!  from 10.77.2.2 / to 10.99.2.0/24: table 102       from 10.99.2.1 / to 10.77.2.0/24:
//!    (default via 10.99.2.1 dev vo2; blackhole)        table 102 (via 10.99.2.2 dev vp2)
//! ```
//!
//! IPv6 alike: fd00:77:p::2 (routes /128 into the TUN), veths fd00:99:p::2/64 <->
//! fd00:99:p::1/64. Single-path tests have path 1 only.
//!
//! The kernel in "ours" routes the stack's addresses into the TUN and forwards between
//! the TUN and the veths; source/destination policy rules keep each subflow on one
//! path in both directions (see [`Netns::with_paths`]). Names carry the process id and a per-test tag, so
//! tests run in parallel; the guard deletes both namespaces on drop, also when a test
//! panics. A run killed outright (SIGKILL, a timeout) drops nothing: the next one
//! deletes namespaces of ours whose process is gone before it creates its own
//! ([`sweep_stale`]).

#![allow(dead_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;
use std::sync::Once;

use mptcp_testnet::netns::{delete_stale_namespaces, run};

pub const OUR_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 1, 2));
pub const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 1, 1));
pub const OUR_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 1, 0, 0, 0, 0, 2));
pub const PEER_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 1, 0, 0, 0, 0, 1));

/// Whether the test may run: root is needed. Without root the test is skipped with a
/// message, except under CI (`CI` set), where skipping would hide a broken setup.
pub fn require_root(test: &str) -> bool {
    mptcp_testnet::netns::require_root(test, "network namespaces and a TUN device")
}

/// What every namespace name of these tests starts with, before the process id.
const PREFIX: &str = "mt";

/// Deletes the namespaces that runs killed before they could clean up left behind
/// (names `PREFIX<pid><tag>` whose process no longer exists). Once per process.
pub fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| delete_stale_namespaces(PREFIX, |_| ()));
}

/// Two namespaces joined by veth pairs (paths), deleted on drop.
pub struct Netns {
    pub ours: String,
    pub peer: String,
    pub paths: u8,
}

/// Our stack's address on path `p` (1-based): 10.77.p.2, or fd00:77:p::2.
pub fn our_addr(p: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, p.into(), 0, 0, 0, 0, 2))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 77, p, 2))
    }
}

/// The kernel peer's address on path `p`: 10.99.p.1, or fd00:99:p::1.
pub fn peer_addr(p: u8, v6: bool) -> IpAddr {
    if v6 {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, p.into(), 0, 0, 0, 0, 1))
    } else {
        IpAddr::V4(Ipv4Addr::new(10, 99, p, 1))
    }
}

impl Netns {
    /// One path (the topology in the module documentation).
    pub fn new(tag: &str) -> Netns {
        Netns::with_paths(tag, 1)
    }

    /// `paths` veth pairs (1 or 2). Path p joins veth `vo{p}` (10.99.p.2/24,
    /// fd00:99:p::2/64) in "ours" to `vp{p}` (10.99.p.1/24, fd00:99:p::1/64) in "peer";
    /// our stack owns 10.77.p.2 and fd00:77:p::2 (the stack routes them into its TUN).
    ///
    /// Routing pins every subflow to one path, the same both ways: a subflow uses
    /// path 2 when either of its addresses is a path-2 address, else path 1. Each side
    /// has, at priority 100, `from <its path-2 address> lookup 102`, and at 200, `to
    /// <the other side's path-2 prefix> lookup 102`; table 102 has the default route
    /// over path 2 and, behind it, a blackhole, so that with path 2 down its packets
    /// are lost rather than rerouted over path 1. The main tables route the rest over
    /// path 1. The peer's kernel MPTCP limits allow 8 subflows and 8 accepted
    /// announcements; tests add `ip mptcp endpoint`s as they need.
    pub fn with_paths(tag: &str, paths: u8) -> Netns {
        assert!((1..=2).contains(&paths), "1 or 2 paths, not {paths}");
        let base = format!("{PREFIX}{}{tag}", std::process::id());
        let ns = Netns {
            ours: format!("{base}o"),
            peer: format!("{base}p"),
            paths,
        };
        sweep_stale();
        // Delete leftovers of an earlier run with the same pid (unlikely but harmless).
        ns.delete();
        run(&["ip", "netns", "add", &ns.ours]);
        run(&["ip", "netns", "add", &ns.peer]);
        for name in [&ns.ours, &ns.peer] {
            ns.exec(name, "ip link set lo up");
            // IPv4 settings are inherited from the host: make them known.
            ns.exec(name, "sysctl -qw net.ipv4.conf.all.rp_filter=0");
            ns.exec(name, "sysctl -qw net.ipv4.conf.default.rp_filter=0");
            // A path taken down keeps its IPv6 addresses, as IPv4 does.
            ns.exec(name, "sysctl -qw net.ipv6.conf.all.keep_addr_on_down=1");
            ns.exec(name, "sysctl -qw net.ipv6.conf.default.keep_addr_on_down=1");
        }
        ns.exec(&ns.ours, "sysctl -qw net.ipv4.ip_forward=1");
        ns.exec(&ns.ours, "sysctl -qw net.ipv6.conf.all.forwarding=1");
        for p in 1..=paths {
            run(&[
                "ip",
                "link",
                "add",
                &format!("vo{p}"),
                "netns",
                &ns.ours,
                "type",
                "veth",
                "peer",
                "name",
                &format!("vp{p}"),
                "netns",
                &ns.peer,
            ]);
            for (name, side, dev) in [(&ns.ours, 2, "vo"), (&ns.peer, 1, "vp")] {
                ns.exec(
                    name,
                    &format!("ip addr add 10.99.{p}.{side}/24 dev {dev}{p}"),
                );
                // `nodad` makes the addresses usable at once.
                ns.exec(
                    name,
                    &format!("ip -6 addr add fd00:99:{p}::{side}/64 dev {dev}{p} nodad"),
                );
                ns.exec(
                    name,
                    &format!("sysctl -qw net.ipv4.conf.{dev}{p}.rp_filter=0"),
                );
                ns.exec(name, &format!("ip link set {dev}{p} up"));
            }
        }
        ns.exec(&ns.ours, "ip route add default via 10.99.1.1 dev vo1");
        ns.exec(&ns.ours, "ip -6 route add default via fd00:99:1::1 dev vo1");
        ns.exec(&ns.peer, "ip route add 10.77.0.0/16 via 10.99.1.2 dev vp1");
        ns.exec(
            &ns.peer,
            "ip -6 route add fd00:77::/32 via fd00:99:1::2 dev vp1",
        );
        if paths == 2 {
            for (name, mine, theirs) in [
                (
                    &ns.ours,
                    ("10.77.2.2", "fd00:77:2::2"),
                    ("10.99.2.0/24", "fd00:99:2::/64"),
                ),
                (
                    &ns.peer,
                    ("10.99.2.1", "fd00:99:2::1"),
                    ("10.77.2.0/24", "fd00:77:2::/64"),
                ),
            ] {
                ns.exec(
                    name,
                    &format!("ip rule add from {} lookup 102 priority 100", mine.0),
                );
                ns.exec(
                    name,
                    &format!("ip -6 rule add from {} lookup 102 priority 100", mine.1),
                );
                ns.exec(
                    name,
                    &format!("ip rule add to {} lookup 102 priority 200", theirs.0),
                );
                ns.exec(
                    name,
                    &format!("ip -6 rule add to {} lookup 102 priority 200", theirs.1),
                );
            }
            ns.path_routes(2);
        }
        if paths == 2 {
            // Kernel-to-kernel baselines bind a subflow to the veth address itself.
            ns.exec(
                &ns.ours,
                "ip rule add from 10.99.2.2 lookup 102 priority 100",
            );
            ns.exec(
                &ns.ours,
                "ip -6 rule add from fd00:99:2::2 lookup 102 priority 100",
            );
        }
        for name in [&ns.ours, &ns.peer] {
            ns.exec(name, "ip mptcp limits set subflow 8 add_addr_accepted 8");
        }
        ns
    }

    /// Lets a second stack of ours run in "peer" (both ends ours): it owns 10.88.p.1
    /// (routed into its TUN), "peer" forwards, "ours" routes 10.88.0.0/16 over path 1,
    /// and the path-2 rules cover 10.88.2.1 as they cover 10.99.2.1.
    pub fn route_peer_stack(&self) {
        self.exec(&self.peer, "sysctl -qw net.ipv4.ip_forward=1");
        self.exec(
            &self.ours,
            "ip route add 10.88.0.0/16 via 10.99.1.1 dev vo1",
        );
        if self.paths == 2 {
            self.exec(
                &self.ours,
                "ip rule add to 10.88.2.0/24 lookup 102 priority 200",
            );
            self.exec(
                &self.peer,
                "ip rule add from 10.88.2.1 lookup 102 priority 100",
            );
        }
    }

    /// (Re)installs path `p`'s policy table 102 on both sides (a link going down takes
    /// its routes with it).
    pub fn path_routes(&self, p: u8) {
        assert_eq!(p, 2, "only path 2 has a policy table");
        for (name, dev, gw, gw6) in [
            (&self.ours, "vo2", "10.99.2.1", "fd00:99:2::1"),
            (&self.peer, "vp2", "10.99.2.2", "fd00:99:2::2"),
        ] {
            self.exec(
                name,
                &format!("ip route replace default via {gw} dev {dev} table 102"),
            );
            self.exec(
                name,
                &format!("ip -6 route replace default via {gw6} dev {dev} table 102"),
            );
            self.exec(
                name,
                "ip route replace blackhole default metric 4000 table 102",
            );
            self.exec(
                name,
                "ip -6 route replace blackhole default metric 4000 table 102",
            );
        }
    }

    /// Takes path `p` down (both ends of its veth) or brings it back up with its
    /// routes.
    pub fn set_path(&self, p: u8, up: bool) {
        let state = if up { "up" } else { "down" };
        self.exec(&self.ours, &format!("ip link set vo{p} {state}"));
        self.exec(&self.peer, &format!("ip link set vp{p} {state}"));
        if up && p == 2 {
            self.path_routes(2);
        }
    }

    /// Limits path `p` to `rate` (tc syntax, e.g. "50mbit") in both directions with a
    /// token bucket on both veth ends (the kernel here has tbf, not netem).
    pub fn shape(&self, p: u8, rate: &str) {
        for (name, dev) in [(&self.ours, "vo"), (&self.peer, "vp")] {
            self.exec(
                name,
                &format!("tc qdisc add dev {dev}{p} root tbf rate {rate} burst 64kb latency 20ms"),
            );
        }
    }

    /// Captures every packet on every interface of namespace `name` into `path` (full
    /// payloads, pcapng) with dumpcap, until the returned guard is dropped. For
    /// kernel-only transfers, where our stack's own capture sees nothing.
    pub fn capture(&self, name: &str, path: &std::path::Path) -> Capture {
        let mut child = Command::new("ip")
            .args(["netns", "exec", name, "dumpcap", "-q", "-i", "any", "-w"])
            .arg(path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run dumpcap: {e}"));
        // dumpcap says "Capturing on" once it captures.
        let mut err = std::io::BufReader::new(child.stderr.take().expect("piped"));
        let mut line = String::new();
        while std::io::BufRead::read_line(&mut err, &mut line).expect("dumpcap stderr") > 0 {
            if line.contains("Capturing on") {
                break;
            }
            line.clear();
        }
        // It prints that a little before the first packets are taken.
        std::thread::sleep(std::time::Duration::from_millis(500));
        Capture {
            child,
            _stderr: err,
        }
    }

    /// Runs a whitespace-separated command inside namespace `name`; panics if it fails.
    pub fn exec(&self, name: &str, command: &str) {
        let mut args = vec!["ip", "netns", "exec", name];
        args.extend(command.split_whitespace());
        run(&args);
    }

    /// Runs a command inside namespace `name` and returns its stdout.
    pub fn output(&self, name: &str, command: &str) -> String {
        let out = Command::new("ip")
            .args(["netns", "exec", name])
            .args(command.split_whitespace())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {command}: {e}"));
        assert!(
            out.status.success(),
            "{command} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn delete(&self) {
        for name in [&self.ours, &self.peer] {
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }

    /// Runs `f` on a fresh thread inside namespace `name` and returns its result. TUN
    /// devices, sockets and child processes created there belong to that namespace, and
    /// so do threads that `f` spawns (the stack's event loop).
    pub fn within<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        mptcp_testnet::netns::within(name, f)
    }

    pub fn in_ours<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Netns::within(&self.ours, f)
    }

    pub fn in_peer<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Netns::within(&self.peer, f)
    }
}

/// A running capture; dropping it stops dumpcap and waits for the file to be written.
pub struct Capture {
    child: std::process::Child,
    _stderr: std::io::BufReader<std::process::ChildStderr>,
}

impl Drop for Capture {
    fn drop(&mut self) {
        // SIGTERM: dumpcap finishes the file and exits.
        // SAFETY: kill has no memory preconditions; the pid is our own child's.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}
