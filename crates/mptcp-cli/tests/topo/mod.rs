//! Three network namespaces for the proxy tests, deleted on drop (our own copy of what
//! these tests need; see crates/mptcp-tun/tests/netns for the pattern).
//!
//! ```text
//!  ns "c" (client host)                 ns "s" (server host)              ns "t" (target)
//!  curl / test clients
//!  mptcp proxy client (SOCKS 127.0.0.1:1080)
//!  TUN mptcp0: 10.77.1.2, 10.77.2.2     TUN mptcp0: 10.88.1.1 (+10.88.2.1)
//!  c1 10.99.1.2/24 ---- path 1 ---- s1 10.99.1.1/24
//!  c2 10.99.2.2/24 ---- path 2 ---- s2 10.99.2.1/24
//!                                       s3 10.66.0.1/24 ------------ t3 10.66.0.2/24
//!                                       /etc/netns/<s>/hosts:         HTTP server :8000
//!                                         10.66.0.2 target.test
//! ```
//!
//! Source routing in "c" sends what comes from 10.77.1.2 over path 1 and from
//! 10.77.2.2 over path 2 (`ip rule from ... table 101/102`); both namespaces forward.
//!
//! Names are `px<pid><tag><c|s|t>`. A run killed outright drops nothing: the next one
//! first deletes the namespaces (and /etc/netns entries) of runs whose process is gone.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Once, mpsc};
use std::time::{Duration, Instant};

use mptcp_testnet::netns::{delete_stale_namespaces, run};

pub const TARGET_NAME: &str = "target.test";
pub const TARGET_IP: &str = "10.66.0.2";

/// Root is needed. Without it the test is skipped with a message, except under CI.
pub fn require_root(test: &str) -> bool {
    mptcp_testnet::netns::require_root(test, "network namespaces and TUN devices")
}

/// What every namespace name of these tests starts with, before the process id.
const PREFIX: &str = "px";

/// Deletes what runs killed before they could clean up left behind: namespaces
/// `PREFIX<pid><tag><c|s|t>` whose process no longer exists (tests of processes
/// running now keep theirs) and their /etc/netns entries. Once per process.
fn sweep_stale() {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| {
        delete_stale_namespaces(PREFIX, |name| {
            let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(name));
        });
    });
}

/// The namespaces, the processes started in them, and a scratch directory.
pub struct Topology {
    pub c: String,
    pub s: String,
    pub t: String,
    pub dir: PathBuf,
    children: Vec<Child>,
}

impl Topology {
    pub fn new(tag: &str) -> Topology {
        sweep_stale();
        let base = format!("{PREFIX}{}{tag}", std::process::id());
        let dir = std::env::temp_dir().join(format!("{base}-files"));
        let topo = Topology {
            c: format!("{base}c"),
            s: format!("{base}s"),
            t: format!("{base}t"),
            dir,
            children: Vec::new(),
        };
        topo.delete();
        std::fs::create_dir_all(&topo.dir).expect("scratch dir");
        for ns in [&topo.c, &topo.s, &topo.t] {
            run(&["ip", "netns", "add", ns]);
            topo.exec(ns, &["ip", "link", "set", "lo", "up"]);
            for key in ["all", "default"] {
                topo.exec(
                    ns,
                    &["sysctl", "-qw", &format!("net.ipv4.conf.{key}.rp_filter=0")],
                );
            }
        }
        for (a, b, na, nb) in [
            ("c1", "s1", &topo.c, &topo.s),
            ("c2", "s2", &topo.c, &topo.s),
            ("s3", "t3", &topo.s, &topo.t),
        ] {
            run(&[
                "ip", "link", "add", a, "netns", na, "type", "veth", "peer", "name", b, "netns", nb,
            ]);
        }
        let (c, s, t) = (topo.c.clone(), topo.s.clone(), topo.t.clone());
        for (ns, dev, addr) in [
            (&c, "c1", "10.99.1.2/24"),
            (&c, "c2", "10.99.2.2/24"),
            (&s, "s1", "10.99.1.1/24"),
            (&s, "s2", "10.99.2.1/24"),
            (&s, "s3", "10.66.0.1/24"),
            (&t, "t3", "10.66.0.2/24"),
        ] {
            topo.exec(ns, &["ip", "addr", "add", addr, "dev", dev]);
            topo.exec(ns, &["ip", "link", "set", dev, "up"]);
            topo.exec(
                ns,
                &["sysctl", "-qw", &format!("net.ipv4.conf.{dev}.rp_filter=0")],
            );
        }
        topo.exec(&c, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        topo.exec(&s, &["sysctl", "-qw", "net.ipv4.ip_forward=1"]);
        // Path selection by source address in the client host.
        for (table, src, gw, dev) in [
            ("101", "10.77.1.2", "10.99.1.1", "c1"),
            ("102", "10.77.2.2", "10.99.2.1", "c2"),
        ] {
            topo.exec(&c, &["ip", "rule", "add", "from", src, "table", table]);
            topo.exec(
                &c,
                &[
                    "ip", "route", "add", "default", "via", gw, "dev", dev, "table", table,
                ],
            );
            // When the path's link goes down its route goes with it; the blackhole keeps
            // the path's traffic from leaking onto the other path through the main table.
            topo.exec(
                &c,
                &[
                    "ip",
                    "route",
                    "add",
                    "blackhole",
                    "default",
                    "metric",
                    "100",
                    "table",
                    table,
                ],
            );
        }
        topo.exec(
            &c,
            &["ip", "route", "add", "10.88.0.0/16", "via", "10.99.1.1"],
        );
        topo.exec(
            &s,
            &["ip", "route", "add", "10.77.1.0/24", "via", "10.99.1.2"],
        );
        topo.exec(
            &s,
            &["ip", "route", "add", "10.77.2.0/24", "via", "10.99.2.2"],
        );
        topo.exec(&t, &["ip", "route", "add", "default", "via", "10.66.0.1"]);
        // `ip netns exec` bind-mounts /etc/netns/<ns>/hosts over /etc/hosts: the proxy
        // server resolves the target's name there, and only there.
        let etc = PathBuf::from("/etc/netns").join(&s);
        std::fs::create_dir_all(&etc).expect("/etc/netns dir");
        std::fs::write(
            etc.join("hosts"),
            format!("127.0.0.1 localhost\n{TARGET_IP} {TARGET_NAME}\n"),
        )
        .expect("hosts file");
        topo
    }

    fn delete(&self) {
        for ns in [&self.c, &self.s, &self.t] {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        let _ = std::fs::remove_dir_all(PathBuf::from("/etc/netns").join(&self.s));
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    /// Runs a command in namespace `ns` and asserts success.
    pub fn exec(&self, ns: &str, args: &[&str]) {
        let mut full = vec!["ip", "netns", "exec", ns];
        full.extend_from_slice(args);
        run(&full);
    }

    /// Starts a long-running process in `ns`; it is killed when the topology drops.
    /// Its stdout is returned (piped) when `capture` is set.
    pub fn spawn(&mut self, ns: &str, args: &[&str], capture: bool) -> (u32, Option<ChildStdout>) {
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(args)
            .stdout(if capture {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
        let out = child.stdout.take();
        let pid = child.id();
        self.children.push(child);
        (pid, out)
    }

    /// Runs `f` on a thread inside `ns`; threads it spawns stay there.
    pub fn within<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        mptcp_testnet::netns::within(ns, f)
    }

    /// Bytes sent on interface `dev` of namespace `ns`.
    pub fn tx_bytes(&self, ns: &str, dev: &str) -> u64 {
        let out = Command::new("ip")
            .args(["netns", "exec", ns, "cat"])
            .arg(format!("/sys/class/net/{dev}/statistics/tx_bytes"))
            .output()
            .expect("read counters");
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("tx_bytes of {dev}: {e}"))
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.delete();
    }
}

/// `--json` lines of one proxy process, read on a thread.
pub struct Events {
    pub pid: u32,
    rx: mpsc::Receiver<serde_json::Value>,
    pub seen: Vec<serde_json::Value>,
}

impl Events {
    pub fn new(pid: u32, stdout: ChildStdout) -> Events {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                match serde_json::from_str(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            return;
                        }
                    }
                    Err(e) => panic!("not a JSON event: {line:?}: {e}"),
                }
            }
        });
        Events {
            pid,
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for an event matching `pred`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                Err(_) => panic!("no {what} event within {timeout:?}; saw {:#?}", self.seen),
            }
        }
    }

    pub fn wait_event(&mut self, name: &str, timeout: Duration) -> serde_json::Value {
        self.wait_for(name, timeout, |v| v["event"] == name)
    }

    /// Waits until a `stats` event emitted from now on reports no open connection.
    pub fn wait_idle(&mut self, timeout: Duration) -> serde_json::Value {
        // Periodic stats from before now are stale.
        while let Ok(v) = self.rx.try_recv() {
            self.seen.push(v);
        }
        self.wait_for("stats with connections_active 0", timeout, |v| {
            v["event"] == "stats" && v["connections_active"] == 0
        })
    }

    /// Peak resident memory of the process (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid)).expect("process status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }

    /// SIGTERM, then the last `stats` event, which the command prints on the way out.
    pub fn terminate(&mut self) -> serde_json::Value {
        // SAFETY: kill with a pid we started and SIGTERM has no memory effects.
        unsafe { libc::kill(self.pid as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        // Read to the end of the process's stdout: the final event is the last one.
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(v) => {
                    if v["event"] == "stats" {
                        last = Some(v.clone());
                    }
                    self.seen.push(v);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    panic!("pid {} did not exit within 30 s of SIGTERM", self.pid)
                }
            }
        }
        last.expect("a final stats event")
    }

    pub fn count(&self, name: &str) -> usize {
        self.seen.iter().filter(|v| v["event"] == name).count()
    }
}

pub fn mptcp_bin() -> &'static str {
    env!("CARGO_BIN_EXE_mptcp")
}
