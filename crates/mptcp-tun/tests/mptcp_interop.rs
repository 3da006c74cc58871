//! Multipath TCP against the Linux kernel's MPTCP (RFC 8684 v1) over real interfaces:
//! the scenarios of issue 5. Topology in tests/netns/mod.rs (two veth paths, policy
//! routing pins each subflow to one path). Needs root; skipped otherwise, failed under
//! CI.
//!
//! Transfers run both directions at once and check length and SHA-256. Goodput and
//! per-subflow figures are printed (`--nocapture`, or nextest's output on failure).

mod netns;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use mptcp_tun::{ConnMode, MptcpEvent, MptcpStream, Stack, StackBuilder};
use netns::{Netns, our_addr, peer_addr, require_root};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

const MB: usize = 1 << 20;

/// What one direction of a transfer saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Digest32 {
    len: usize,
    sha: [u8; 32],
}

/// Writes `total` bytes of a seeded pseudo-random stream, then half-closes.
fn send_stream(mut w: impl Write, total: usize, seed: u64, shutdown: impl FnOnce()) -> Digest32 {
    let mut state = seed | 1;
    let mut chunk = vec![0u8; 64 * 1024];
    let mut hash = Sha256::new();
    let mut left = total;
    while left > 0 {
        let n = left.min(chunk.len());
        for word in chunk[..n].chunks_mut(8) {
            // xorshift64: cheap, and every byte differs between seeds.
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let bytes = state.to_le_bytes();
            word.copy_from_slice(&bytes[..word.len()]);
        }
        w.write_all(&chunk[..n]).expect("write");
        hash.update(&chunk[..n]);
        left -= n;
    }
    shutdown();
    Digest32 {
        len: total,
        sha: hash.finalize().into(),
    }
}

/// Reads to end of stream.
fn recv_stream(mut r: impl Read) -> Digest32 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut hash = Sha256::new();
    let mut len = 0;
    loop {
        let n = r.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n;
    }
    Digest32 {
        len,
        sha: hash.finalize().into(),
    }
}

fn mbit(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
}

fn goodput(label: &str, bytes: usize, elapsed: Duration) -> f64 {
    let rate = mbit(bytes, elapsed);
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "GOODPUT {label} ({profile}): {:.1} MB in {:.2} s = {rate:.0} Mbit/s",
        bytes as f64 / MB as f64,
        elapsed.as_secs_f64()
    );
    rate
}

/// The most each subflow (by its 4-tuple) moved, sampled while a transfer runs:
/// subflows vanish from the stats once closed.
#[derive(Debug, Default, Clone)]
struct SubflowTotals {
    /// (local, remote) -> (bytes sent, bytes received, last srtt)
    seen: BTreeMap<(SocketAddr, SocketAddr), (u64, u64, Option<Duration>)>,
    mptcp: bool,
    checksums: bool,
}

impl SubflowTotals {
    fn sample(&mut self, stream: &MptcpStream) {
        let Some(stats) = stream.mptcp_stats() else {
            return;
        };
        self.mptcp |= stats.mode == ConnMode::Mptcp;
        self.checksums |= stats.checksums;
        for s in stats.subflows {
            let e = self.seen.entry((s.local, s.remote)).or_default();
            e.0 = e.0.max(s.bytes_sent);
            e.1 = e.1.max(s.bytes_received);
            if let Some(rtt) = s.srtt {
                e.2 = Some(Duration::from_micros(rtt.total_micros()));
            }
        }
    }

    /// Bytes sent and received over subflows whose local address is `local`.
    fn by_local(&self, local: IpAddr) -> (u64, u64) {
        self.seen
            .iter()
            .filter(|((l, _), _)| l.ip() == local)
            .fold((0, 0), |acc, (_, v)| (acc.0 + v.0, acc.1 + v.1))
    }

    /// Bytes sent and received over subflows whose remote address is `remote`.
    fn by_remote(&self, remote: IpAddr) -> (u64, u64) {
        self.seen
            .iter()
            .filter(|((_, r), _)| r.ip() == remote)
            .fold((0, 0), |acc, (_, v)| (acc.0 + v.0, acc.1 + v.1))
    }

    fn print(&self, label: &str) {
        for ((l, r), (tx, rx, rtt)) in &self.seen {
            eprintln!(
                "SUBFLOW {label}: {l} -> {r}: sent {:.1} MB, received {:.1} MB, srtt {rtt:?}",
                *tx as f64 / MB as f64,
                *rx as f64 / MB as f64
            );
        }
    }
}

/// Samples `stream`'s subflow stats every 50 ms until `stop`.
fn sampler<'s>(
    s: &'s std::thread::Scope<'s, '_>,
    stream: &'s MptcpStream,
    stop: &'s AtomicBool,
) -> std::thread::ScopedJoinHandle<'s, SubflowTotals> {
    s.spawn(move || {
        let mut totals = SubflowTotals::default();
        while !stop.load(Ordering::Relaxed) {
            totals.sample(stream);
            std::thread::sleep(Duration::from_millis(50));
        }
        totals.sample(stream);
        totals
    })
}

/// Goodput of both directions, Mbit/s.
#[derive(Debug, Clone, Copy)]
struct Rates {
    ours_to_kernel: f64,
    kernel_to_ours: f64,
}

/// Both directions at once: our stream and a kernel stream each send `size` bytes with
/// their own seed; asserts both arrive intact. Returns the rates and subflow totals.
fn full_duplex(
    label: &str,
    ours: &MptcpStream,
    kernel: &TcpStream,
    size: usize,
) -> (Rates, SubflowTotals) {
    let kernel_rx = kernel.try_clone().expect("clone kernel socket");
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (sent_by_us, got_by_kernel, sent_by_kernel, got_by_us, totals) = std::thread::scope(|s| {
        let sampling = sampler(s, ours, &stop);
        let us_tx = s.spawn(|| {
            send_stream(ours, size, 0x5eed_0001, || {
                ours.shutdown(Shutdown::Write).expect("our shutdown")
            })
        });
        let k_tx = s.spawn(|| {
            send_stream(kernel, size, 0x5eed_0002, || {
                kernel.shutdown(Shutdown::Write).expect("kernel shutdown")
            })
        });
        let k_rx = s.spawn(|| {
            let d = recv_stream(&kernel_rx);
            (d, start.elapsed())
        });
        let us_rx = recv_stream(ours);
        let us_rx_time = start.elapsed();
        let got_by_kernel = k_rx.join().expect("kernel receiver");
        stop.store(true, Ordering::Relaxed);
        (
            us_tx.join().expect("our sender"),
            got_by_kernel,
            k_tx.join().expect("kernel sender"),
            (us_rx, us_rx_time),
            sampling.join().expect("sampler"),
        )
    });
    assert_eq!(got_by_kernel.0, sent_by_us, "{label}: our stream -> kernel");
    assert_eq!(got_by_us.0, sent_by_kernel, "{label}: kernel -> our stream");
    assert_eq!(got_by_us.0.len, size);
    let rates = Rates {
        ours_to_kernel: goodput(&format!("{label} ours->kernel"), size, got_by_kernel.1),
        kernel_to_ours: goodput(&format!("{label} kernel->ours"), size, got_by_us.1),
    };
    totals.print(label);
    (rates, totals)
}

/// `size` bytes, or `INTEROP_MB` MB when set (to look at a failure quickly).
fn sized(size: usize) -> usize {
    std::env::var("INTEROP_MB")
        .ok()
        .and_then(|v| v.parse::<usize>().ok())
        .map_or(size, |mb| mb * MB)
}

/// Starts our stack in "ours"; with `INTEROP_PCAP_DIR` set it captures to
/// `DIR/<namespace>.pcap`.
fn start_stack(
    ns: &Netns,
    addrs: Vec<IpAddr>,
    configure: impl FnOnce(StackBuilder) -> StackBuilder + Send + 'static,
) -> Stack {
    let pcap = std::env::var_os("INTEROP_PCAP_DIR")
        .map(|dir| std::path::PathBuf::from(dir).join(format!("{}.pcap", ns.ours)));
    ns.in_ours(move || {
        let mut b = Stack::builder().addresses(addrs);
        if let Some(path) = pcap {
            b = b.pcap_path(path);
        }
        configure(b).build().expect("stack starts")
    })
}

fn kernel_socket(v6: bool, mptcp: bool) -> Socket {
    let domain = if v6 { Domain::IPV6 } else { Domain::IPV4 };
    let proto = if mptcp {
        Protocol::MPTCP
    } else {
        Protocol::TCP
    };
    Socket::new(domain, Type::STREAM, Some(proto)).expect("kernel socket")
}

fn kernel_listen(ns: &Netns, at: SocketAddr, mptcp: bool) -> TcpListener {
    ns.in_peer(move || {
        let s = kernel_socket(at.is_ipv6(), mptcp);
        s.set_reuse_address(true).expect("SO_REUSEADDR");
        s.bind(&at.into()).expect("kernel bind");
        s.listen(16).expect("kernel listen");
        s.into()
    })
}

fn kernel_connect(ns: &Netns, to: SocketAddr, mptcp: bool) -> TcpStream {
    ns.in_peer(move || {
        let s = kernel_socket(to.is_ipv6(), mptcp);
        s.connect_timeout(&to.into(), Duration::from_secs(10))
            .expect("kernel connect");
        s.into()
    })
}

/// Our client (first subflow from `locals[0]`, joins from the others) to a kernel
/// MPTCP listener on `server`: returns both ends and the listener, which must stay
/// open (Linux takes MP_JOINs through the listening socket).
fn our_client(
    stack: &Stack,
    ns: &Netns,
    locals: &[IpAddr],
    server: SocketAddr,
    mptcp_server: bool,
) -> (MptcpStream, TcpStream, TcpListener) {
    let listener = kernel_listen(ns, server, mptcp_server);
    let ours = stack.connect_multipath(locals, server).expect("connect");
    let (kernel, from) = listener.accept().expect("kernel accept");
    assert_eq!(from, ours.local_addr().expect("local"));
    (ours, kernel, listener)
}

/// Waits until `events` shows a subflow up between `local` and `remote` (IP level).
fn wait_subflow_up(
    events: &Receiver<MptcpEvent>,
    local: IpAddr,
    remote: IpAddr,
    within: Duration,
    seen: &mut Vec<MptcpEvent>,
) -> bool {
    let deadline = Instant::now() + within;
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        let Ok(event) = events.recv_timeout(left) else {
            return false;
        };
        seen.push(event);
        if let MptcpEvent::SubflowUp {
            local: l,
            remote: r,
            ..
        } = event
            && l.ip() == local
            && r.ip() == remote
        {
            return true;
        }
    }
    false
}

/// The peer kernel's non-zero MPTCP counters (`nstat`), for the record.
fn kernel_mib(ns: &Netns) -> String {
    ns.output(&ns.peer, "nstat -asz")
        .lines()
        .filter(|l| l.starts_with("MPTcp"))
        .filter(|l| l.split_whitespace().nth(1) != Some("0"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Runs `ss -tiMn` in the peer namespace (for the record in the test output).
fn kernel_subflows(ns: &Netns) -> String {
    ns.output(&ns.peer, "ss -tinM")
}

/// Scenario 1: our client -> kernel MPTCP server over one path, 100 MB each way at
/// once; MPTCP is used (no fallback) and both SHA-256s match.
#[test]
fn s01_our_client_to_kernel_server_one_path_100mb() {
    if !require_root("s01_our_client_to_kernel_server_one_path_100mb") {
        return;
    }
    let ns = Netns::with_paths("s1", 1);
    let a1 = our_addr(1, false);
    let stack = start_stack(&ns, vec![a1], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6001);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1], server, true);
    let events = ours.events().expect("events");
    let (_, totals) = full_duplex("s01 one path", &ours, &kernel, sized(100 * MB));
    assert!(totals.mptcp, "the connection is MPTCP, not a fallback");
    assert_eq!(totals.seen.len(), 1, "one subflow: {totals:?}");
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(
        !seen
            .iter()
            .any(|e| matches!(e, MptcpEvent::Fallback { .. })),
        "no fallback: {seen:?}"
    );
}

/// Scenario 2: our client with two local addresses -> kernel MPTCP server: the second
/// subflow joins over path 2, both carry data both ways, SHA-256s match.
#[test]
fn s02_our_client_to_kernel_server_two_paths() {
    if !require_root("s02_our_client_to_kernel_server_two_paths") {
        return;
    }
    let ns = Netns::with_paths("s2", 2);
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = start_stack(&ns, vec![a1, a2], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6002);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1, a2], server, true);
    // Joins go out once the client is fully established (the server's first DSS
    // came), which the transfer brings about at once.
    let events = ours.events().expect("events");
    let (_, totals) = full_duplex("s02 two paths", &ours, &kernel, sized(64 * MB));
    eprintln!("{}\n{}", kernel_subflows(&ns), kernel_mib(&ns));
    assert!(totals.mptcp);
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(
        seen.iter()
            .any(|e| matches!(e, MptcpEvent::SubflowUp { local, .. } if local.ip() == a2)),
        "the join from {a2} came up: {seen:?}"
    );
    for local in [a1, a2] {
        let (tx, rx) = totals.by_local(local);
        assert!(
            tx > 2 * MB as u64 && rx > 2 * MB as u64,
            "the subflow from {local} carried data both ways: sent {tx}, received {rx}"
        );
    }
}
