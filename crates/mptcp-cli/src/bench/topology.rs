//! The benchmark's network: two namespaces joined by two veth pairs (two paths), with
//! routing for kernel sockets and for our stacks, and cleanup that also runs on Ctrl-C,
//! SIGTERM and panics.
//!
//! ```text
//!  ns "<prefix>c" (client)                                 ns "<prefix>s" (server)
//!  our client stack: TUN mpb0, 10.77.1.2, 10.77.2.2        our server stack: TUN mpb0, 10.88.1.1
//!  kernel client: 10.99.1.2 (+ subflow endpoint 10.99.2.2)  kernel server: 0.0.0.0
//!  c1 10.99.1.2/24 ------------- path 1 -------------------- s1 10.99.1.1/24
//!  c2 10.99.2.2/24 ------------- path 2 -------------------- s2 10.99.2.1/24
//!  default via 10.99.1.1                                    10.77.0.0/16 via 10.99.1.2
//!  from 10.77.2.2, 10.99.2.2 / to 10.99.2.0/24,             from 10.99.2.1, 10.88.2.1 /
//!    10.88.2.0/24: table 102 (via 10.99.2.1 dev c2)           to 10.77.2.0/24: table 102
//! ```
//!
//! A connection is pinned to one path per subflow, the same both ways: path 2 when
//! either end's address is a path-2 address, path 1 otherwise. Both namespaces forward,
//! so our stacks' TUN addresses are reachable over either path. Namespace names carry
//! the process id; namespaces left behind by a bench that was killed outright
//! (SIGKILL) are deleted at the next start once their process is gone.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::sync::{Arc, Mutex};

use anyhow::{Context as _, bail};

/// Prefix of every namespace this command creates: `mpb<pid>c` / `mpb<pid>s`.
const PREFIX: &str = "mpb";

/// Our client stack's addresses, one per path.
pub const OUR_CLIENT: [IpAddr; 2] = [
    IpAddr::V4(Ipv4Addr::new(10, 77, 1, 2)),
    IpAddr::V4(Ipv4Addr::new(10, 77, 2, 2)),
];
/// Our server stack's address (reached over either path).
pub const OUR_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 88, 1, 1));
/// The kernel server's address on path 1.
pub const KERNEL_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 99, 1, 1));
/// The TUN device of either stack (one per namespace).
pub const TUN_NAME: &str = "mpb0";

/// A rate in bits per second, as given to `--rate` and passed to tc.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    pub bits_per_sec: u64,
}

impl Rate {
    /// `50`, `50mbit`, `800kbit`, `1gbit` (a bare number is Mbit/s).
    pub fn parse(s: &str) -> anyhow::Result<Rate> {
        let s = s.trim().to_ascii_lowercase();
        let (num, scale) = if let Some(n) = s.strip_suffix("gbit") {
            (n, 1e9)
        } else if let Some(n) = s.strip_suffix("mbit") {
            (n, 1e6)
        } else if let Some(n) = s.strip_suffix("kbit") {
            (n, 1e3)
        } else {
            (s.as_str(), 1e6)
        };
        let value: f64 = num
            .trim()
            .parse()
            .map_err(|_| anyhow::anyhow!("rate {s:?}: expected e.g. 50, 50mbit, 800kbit, 1gbit"))?;
        let bits = value * scale;
        if !(8_000.0..=100e9).contains(&bits) {
            bail!("rate {s:?}: must be between 8kbit and 100gbit");
        }
        Ok(Rate {
            bits_per_sec: bits.round() as u64,
        })
    }

    /// tc's syntax.
    fn tc(self) -> String {
        format!("{}bit", self.bits_per_sec)
    }

    pub fn mbit(self) -> f64 {
        self.bits_per_sec as f64 / 1e6
    }
}

/// Namespaces to delete when the process is interrupted; shared with the signal thread.
type Registry = Arc<Mutex<Vec<String>>>;

/// The two namespaces, deleted on drop (also when the bench panics) and by the signal
/// thread on SIGINT/SIGTERM/SIGHUP.
pub struct Topology {
    pub client: String,
    pub server: String,
    registry: Registry,
}

impl Topology {
    /// Builds the namespaces and paths; `rates` shapes path 1 and path 2 (both ways).
    /// Must be called before any other thread is started (see [`install_signal_cleanup`]).
    pub fn create(rates: Option<[Rate; 2]>) -> anyhow::Result<Topology> {
        delete_stale_namespaces();
        let base = format!("{PREFIX}{}", std::process::id());
        let registry: Registry = Arc::new(Mutex::new(Vec::new()));
        install_signal_cleanup(Arc::clone(&registry))?;
        let topo = Topology {
            client: format!("{base}c"),
            server: format!("{base}s"),
            registry,
        };
        topo.build(rates)
            .context("building the benchmark namespaces (needs iproute2 and tc)")?;
        Ok(topo)
    }

    fn build(&self, rates: Option<[Rate; 2]>) -> anyhow::Result<()> {
        let (c, s) = (self.client.as_str(), self.server.as_str());
        for ns in [c, s] {
            run(&["ip", "netns", "add", ns])?;
            // Register at once, so an interruption during setup cleans up too.
            self.registry
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(ns.to_owned());
            for cmd in [
                "ip link set lo up",
                "sysctl -qw net.ipv4.ip_forward=1",
                // Policy routing sends replies out on other interfaces than requests.
                "sysctl -qw net.ipv4.conf.all.rp_filter=0",
                "sysctl -qw net.ipv4.conf.default.rp_filter=0",
                "ip mptcp limits set subflow 8 add_addr_accepted 8",
            ] {
                exec(ns, cmd)?;
            }
        }
        for p in 1..=2u8 {
            run(&[
                "ip",
                "link",
                "add",
                &format!("c{p}"),
                "netns",
                c,
                "type",
                "veth",
                "peer",
                "name",
                &format!("s{p}"),
                "netns",
                s,
            ])?;
            for (ns, dev, host) in [(c, "c", 2), (s, "s", 1)] {
                exec(ns, &format!("ip addr add 10.99.{p}.{host}/24 dev {dev}{p}"))?;
                exec(
                    ns,
                    &format!("sysctl -qw net.ipv4.conf.{dev}{p}.rp_filter=0"),
                )?;
                exec(ns, &format!("ip link set {dev}{p} up"))?;
            }
        }
        exec(c, "ip route add default via 10.99.1.1 dev c1")?;
        exec(s, "ip route add 10.77.0.0/16 via 10.99.1.2 dev s1")?;
        let client_rules: [&[&str]; 2] = [
            &["10.77.2.2", "10.99.2.2"],
            &["10.99.2.0/24", "10.88.2.0/24"],
        ];
        let server_rules: [&[&str]; 2] = [&["10.99.2.1", "10.88.2.1"], &["10.77.2.0/24"]];
        for (ns, [from, to], via) in [
            (c, client_rules, "10.99.2.1 dev c2"),
            (s, server_rules, "10.99.2.2 dev s2"),
        ] {
            for f in from {
                exec(ns, &format!("ip rule add from {f} lookup 102 priority 100"))?;
            }
            for t in to {
                exec(ns, &format!("ip rule add to {t} lookup 102 priority 200"))?;
            }
            exec(ns, &format!("ip route add default via {via} table 102"))?;
        }
        // The kernel client's second subflow, from path 2's address.
        exec(c, "ip mptcp endpoint add 10.99.2.2 dev c2 subflow")?;
        if let Some(rates) = rates {
            for (p, rate) in [(1, rates[0]), (2, rates[1])] {
                for (ns, dev) in [(c, "c"), (s, "s")] {
                    // A token bucket on both ends: the rate holds in both directions.
                    // The burst lets a 64 KB TSO segment through whole.
                    exec(
                        ns,
                        &format!(
                            "tc qdisc add dev {dev}{p} root tbf rate {} burst 64kb latency 20ms",
                            rate.tc()
                        ),
                    )?;
                }
            }
        }
        Ok(())
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        let names = std::mem::take(&mut *self.registry.lock().unwrap_or_else(|p| p.into_inner()));
        delete_namespaces(&names);
    }
}

fn delete_namespaces(names: &[String]) {
    for ns in names {
        let _ = Command::new("ip").args(["netns", "del", ns]).output();
    }
}

/// Deletes `mpb<pid>c/s` namespaces whose process no longer exists.
fn delete_stale_namespaces() {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.strip_suffix(['c', 's']) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            tracing::info!(
                namespace = name,
                "deleting a namespace left by an earlier bench"
            );
            let _ = Command::new("ip").args(["netns", "del", name]).output();
        }
    }
}

/// Blocks SIGINT, SIGTERM and SIGHUP in this thread (threads started later inherit the
/// mask) and starts a thread that waits for them, deletes the registered namespaces and
/// exits with 128 + the signal number. Without this, Ctrl-C would kill the process
/// before any destructor runs and leave the namespaces behind.
fn install_signal_cleanup(registry: Registry) -> anyhow::Result<()> {
    // SAFETY: sigset_t is plain data, initialised by sigemptyset before use.
    let mut set: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: `set` is a live sigset_t; these calls only write into it, and
    // pthread_sigmask only changes this thread's mask.
    let rc = unsafe {
        libc::sigemptyset(&mut set);
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            libc::sigaddset(&mut set, sig);
        }
        libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut())
    };
    if rc != 0 {
        bail!(
            "cannot block signals: {}",
            std::io::Error::from_raw_os_error(rc)
        );
    }
    std::thread::Builder::new()
        .name("bench-signals".into())
        .spawn(move || {
            let mut sig: libc::c_int = 0;
            // SAFETY: `set` and `sig` are live for the call.
            let rc = unsafe { libc::sigwait(&set, &mut sig) };
            if rc != 0 {
                return;
            }
            eprintln!("mptcp bench: signal {sig}: deleting the namespaces");
            let names = std::mem::take(&mut *registry.lock().unwrap_or_else(|p| p.into_inner()));
            delete_namespaces(&names);
            std::process::exit(128 + sig);
        })
        .context("starting the signal thread")?;
    Ok(())
}

/// Runs `f` on a new thread inside namespace `ns` and returns its result. Sockets, TUN
/// devices, child processes and threads created there belong to that namespace.
pub fn within<T: Send + 'static>(
    ns: &str,
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        enter(&path)?;
        f()
    })
    .join()
    .map_err(|_| anyhow::anyhow!("a thread in namespace {ns} panicked"))?
}

/// Moves the calling thread into the namespace mounted at `path`.
pub fn enter(path: &str) -> anyhow::Result<()> {
    let file = File::open(path).with_context(|| format!("opening {path}"))?;
    // SAFETY: setns on a live namespace descriptor affects only the calling thread.
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        bail!("setns {path}: {}", std::io::Error::last_os_error());
    }
    Ok(())
}

fn run(args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .with_context(|| format!("cannot run {}", args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "`{}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Runs a whitespace-separated command inside namespace `ns`.
pub fn exec(ns: &str, command: &str) -> anyhow::Result<()> {
    let mut args = vec!["ip", "netns", "exec", ns];
    args.extend(command.split_whitespace());
    run(&args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_in_tc_units_and_bare_numbers_are_mbit() {
        assert_eq!(Rate::parse("50").unwrap().bits_per_sec, 50_000_000);
        assert_eq!(Rate::parse("50mbit").unwrap().bits_per_sec, 50_000_000);
        assert_eq!(Rate::parse(" 1.5Gbit").unwrap().bits_per_sec, 1_500_000_000);
        assert_eq!(Rate::parse("800kbit").unwrap().bits_per_sec, 800_000);
        assert_eq!(Rate::parse("20mbit").unwrap().tc(), "20000000bit");
        assert!(Rate::parse("fast").is_err());
        assert!(Rate::parse("0").is_err());
        assert!(Rate::parse("-5mbit").is_err());
        assert!(Rate::parse("1kbit").is_err());
    }
}
