//! Network namespace plumbing: the root check, running commands, entering a namespace,
//! and deleting the namespaces that killed runs left behind.
//!
//! Every test file names its namespaces `<prefix><pid><tag>...` with a prefix of its
//! own, so tests of different files and processes never collide, and a later run can
//! tell from the process id whether a namespace's owner is gone.

use std::fs::File;
use std::process::Command;

use nix::sched::{CloneFlags, setns};

/// Whether the test may run: root is needed for `needs` (what the test creates, e.g.
/// "network namespaces and a TUN device"). Without root the test is skipped with a
/// message, except under CI (`CI` set), where skipping would hide a broken setup.
pub fn require_root(test: &str, needs: &str) -> bool {
    if
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() } == 0 {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{test}: needs root ({needs}), and CI is set");
    }
    eprintln!("SKIPPED {test}: needs root ({needs})");
    false
}

/// Runs `args` (program first) and panics with its stderr unless it succeeds.
pub fn run(args: &[&str]) {
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

/// Deletes the namespaces named `prefix<pid><tag>` whose process no longer exists:
/// runs killed outright (SIGKILL, a timeout) drop nothing. Namespaces of processes
/// running now are kept. Processes a killed run started inside are left alone; without
/// its name the namespace is out of the way. `also` is called with each deleted name,
/// for whatever else the test file keeps per namespace.
pub fn delete_stale_namespaces(prefix: &str, also: impl Fn(&str)) {
    let Ok(out) = Command::new("ip").args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = stale_owner(name, prefix) else {
            continue;
        };
        eprintln!("deleting namespace {name} left by a killed run (pid {pid})");
        let _ = Command::new("ip").args(["netns", "del", name]).output();
        also(name);
    }
}

/// The process id in `name` (`prefix`, digits, then a tag) when that process is gone.
fn stale_owner(name: &str, prefix: &str) -> Option<u32> {
    let rest = name.strip_prefix(prefix)?;
    let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits == 0 || digits == rest.len() {
        return None;
    }
    let pid: u32 = rest[..digits].parse().ok()?;
    let alive = pid == std::process::id() || std::path::Path::new(&format!("/proc/{pid}")).exists();
    (!alive).then_some(pid)
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

#[cfg(test)]
mod tests {
    use super::stale_owner;

    #[test]
    fn stale_owner_reads_the_pid_between_prefix_and_tag() {
        // No process has pid u32::MAX - 1 (Linux's pid_max is at most 2^22).
        let gone = u32::MAX - 1;
        assert_eq!(stale_owner(&format!("mt{gone}s1o"), "mt"), Some(gone));
        // This process is alive; other prefixes, no digits or no tag are not ours.
        let me = std::process::id();
        assert_eq!(stale_owner(&format!("mt{me}s1o"), "mt"), None);
        assert_eq!(stale_owner(&format!("px{gone}s1o"), "mt"), None);
        assert_eq!(stale_owner("mtabc", "mt"), None);
        assert_eq!(stale_owner(&format!("mt{gone}"), "mt"), None);
    }
}
