//! Network namespaces for the interop tests (our own copy of the part of
//! /work/shared/tools/netns-two-paths.sh these tests need).
//!
//! ```text
//!  ns "ours" (our stack)                                  ns "peer" (kernel sockets)
//!  TUN mptcp0 <- route 10.77.1.2/32 (OUR_ADDR)
//!  ip_forward=1, veth vo 10.99.1.2/24  ---- veth ----  vp 10.99.1.1/24 (PEER_ADDR)
//!                                                      route 10.77.1.0/24 via 10.99.1.2
//! ```
//!
//! IPv6 alike: the stack owns fd00:77:1::2 (route /128 into the TUN), veth
//! fd00:99:1::2/64 <-> fd00:99:1::1/64, the peer routes fd00:77:1::/64 via fd00:99:1::2.
//!
//! The stack owns 10.77.1.2; the kernel in "ours" routes it into the TUN and forwards
//! between the TUN and the veth. Names carry the process id and a per-test tag, so
//! tests run in parallel; the guard deletes both namespaces on drop, also when a test
//! panics.

#![allow(dead_code)]

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Command;

use nix::sched::{CloneFlags, setns};

pub const OUR_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 77, 1, 2));
pub const PEER_ADDR: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 1, 1));
pub const OUR_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x77, 1, 0, 0, 0, 0, 2));
pub const PEER_ADDR6: IpAddr = IpAddr::V6(Ipv6Addr::new(0xfd00, 0x99, 1, 0, 0, 0, 0, 1));

/// Whether the test may run: root is needed. Without root the test is skipped with a
/// message, except under CI (`CI` set), where skipping would hide a broken setup.
pub fn require_root(test: &str) -> bool {
    if
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root (network namespaces and a TUN device), and CI is set");
    }
    eprintln!("SKIPPED {test}: needs root (network namespaces and a TUN device)");
    false
}

fn run(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
}

/// Two namespaces joined by a veth pair, deleted on drop.
pub struct Netns {
    pub ours: String,
    pub peer: String,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let base = format!("mt{}{tag}", std::process::id());
        let ns = Netns {
            ours: format!("{base}o"),
            peer: format!("{base}p"),
        };
        // Delete leftovers of an earlier run with the same pid (unlikely but harmless).
        ns.delete();
        run(&["ip", "netns", "add", &ns.ours]);
        run(&["ip", "netns", "add", &ns.peer]);
        let o = ["ip", "netns", "exec", ns.ours.as_str()];
        let p = ["ip", "netns", "exec", ns.peer.as_str()];
        let cmd = |prefix: &[&str; 4], rest: &[&str]| {
            let args: Vec<&str> = prefix.iter().chain(rest).copied().collect();
            run(&args);
        };
        cmd(&o, &["ip", "link", "set", "lo", "up"]);
        cmd(&p, &["ip", "link", "set", "lo", "up"]);
        run(&[
            "ip", "link", "add", "vo", "netns", &ns.ours, "type", "veth", "peer", "name", "vp",
            "netns", &ns.peer,
        ]);
        cmd(&o, &["ip", "addr", "add", "10.99.1.2/24", "dev", "vo"]);
        cmd(&p, &["ip", "addr", "add", "10.99.1.1/24", "dev", "vp"]);
        cmd(&o, &["ip", "link", "set", "vo", "up"]);
        cmd(&p, &["ip", "link", "set", "vp", "up"]);
        cmd(&o, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        cmd(
            &p,
            &["ip", "route", "add", "10.77.1.0/24", "via", "10.99.1.2"],
        );
        // The same over IPv6; `nodad` makes the addresses usable at once.
        cmd(
            &o,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "fd00:99:1::2/64",
                "dev",
                "vo",
                "nodad",
            ],
        );
        cmd(
            &p,
            &[
                "ip",
                "-6",
                "addr",
                "add",
                "fd00:99:1::1/64",
                "dev",
                "vp",
                "nodad",
            ],
        );
        cmd(&o, &["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"]);
        cmd(
            &p,
            &[
                "ip",
                "-6",
                "route",
                "add",
                "fd00:77:1::/64",
                "via",
                "fd00:99:1::2",
            ],
        );
        ns
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
        let path = format!("/run/netns/{name}");
        std::thread::spawn(move || {
            let file = File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
            setns(&file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("setns {path}: {e}"));
            f()
        })
        .join()
        .expect("namespace thread panicked")
    }

    pub fn in_ours<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Netns::within(&self.ours, f)
    }

    pub fn in_peer<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Netns::within(&self.peer, f)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        self.delete();
    }
}
