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
use std::time::{Duration, Instant};

use mptcp_testnet::stream::{Digest32, recv_checked, recv_stream, send_stream, send_until};
use mptcp_tun::{ConnMode, MptcpEvent, MptcpStream, Stack, StackBuilder};
use netns::{Netns, our_addr, peer_addr, require_root};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

const MB: usize = 1 << 20;

fn mbit(bytes: usize, elapsed: Duration) -> f64 {
    bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
}

fn goodput(label: &str, bytes: usize, elapsed: Duration) {
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

/// Both directions at once: our stream and a kernel stream each send `size` bytes with
/// their own seed; asserts both arrive intact. Returns the subflow totals.
fn full_duplex(label: &str, ours: &MptcpStream, kernel: &TcpStream, size: usize) -> SubflowTotals {
    duplex(
        label,
        ours,
        kernel,
        size,
        |s| s.shutdown(Shutdown::Write).expect("our shutdown"),
        |k| k.shutdown(Shutdown::Write).expect("kernel shutdown"),
        Some(ours),
    )
}

/// The streams `duplex` sends: "ours" to "kernel", and back.
const SEED_OURS: u64 = 0x5eed_0001;
const SEED_KERNEL: u64 = 0x5eed_0002;

/// Both directions at once between any two streams ("ours" and "kernel" name the
/// roles in the output); `stats` is sampled for per-subflow figures.
fn duplex<A: Sync, B: Sync>(
    label: &str,
    ours: &A,
    kernel: &B,
    size: usize,
    shut_ours: impl Fn(&A) + Sync,
    shut_kernel: impl Fn(&B) + Sync,
    stats: Option<&MptcpStream>,
) -> SubflowTotals
where
    for<'a> &'a A: Read + Write,
    for<'a> &'a B: Read + Write,
{
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let (sent_by_us, got_by_kernel, sent_by_kernel, got_by_us, totals) = std::thread::scope(|s| {
        let sampling = stats.map(|st| sampler(s, st, &stop));
        let us_tx = s.spawn(|| send_stream(ours, size, SEED_OURS, || shut_ours(ours)));
        let k_tx = s.spawn(|| send_stream(kernel, size, SEED_KERNEL, || shut_kernel(kernel)));
        let k_rx = s.spawn(|| {
            let d = recv_checked(kernel, SEED_OURS, SEED_KERNEL);
            (d, start.elapsed())
        });
        let us_rx = recv_checked(ours, SEED_KERNEL, SEED_OURS);
        let us_rx_time = start.elapsed();
        let got_by_kernel = k_rx.join().expect("kernel receiver");
        stop.store(true, Ordering::Relaxed);
        (
            us_tx.join().expect("our sender"),
            got_by_kernel,
            k_tx.join().expect("kernel sender"),
            (us_rx, us_rx_time),
            sampling.map_or_else(SubflowTotals::default, |h| h.join().expect("sampler")),
        )
    });
    assert_eq!(
        got_by_kernel.0.0, sent_by_us,
        "{label}: ours -> kernel; first difference: {:?}",
        got_by_kernel.0.1
    );
    assert_eq!(
        got_by_us.0.0, sent_by_kernel,
        "{label}: kernel -> ours; first difference: {:?}",
        got_by_us.0.1
    );
    assert_eq!(got_by_us.0.0.len, size);
    goodput(&format!("{label} ours->kernel"), size, got_by_kernel.1);
    goodput(&format!("{label} kernel->ours"), size, got_by_us.1);
    totals.print(label);
    totals
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
    if std::env::var_os("RUST_LOG").is_some() {
        // Several tests in one process: only the first installs it.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    }
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
    // On the wildcard address: Linux takes MP_JOINs to an address it announced only
    // through a listener that covers that address.
    let any = SocketAddr::new(
        if server.is_ipv6() {
            IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED)
        },
        server.port(),
    );
    let listener = kernel_listen(ns, any, mptcp_server);
    let ours = stack.connect_multipath(locals, server).expect("connect");
    let (kernel, from) = listener.accept().expect("kernel accept");
    assert_eq!(from, ours.local_addr().expect("local"));
    (ours, kernel, listener)
}

/// One byte each way (the client is fully established once the server's DSS came,
/// so its joins may go out), then waits up to 5 s for a subflow matching `want` to be
/// established. Makes the per-subflow checks independent of how fast the joins come
/// up on a loaded machine.
fn warm_up<K: Sync>(ours: &MptcpStream, kernel: &K, want: impl Fn(&mptcp_tun::SubflowStats) -> bool)
where
    for<'a> &'a K: Read + Write,
{
    let mut byte = [0u8; 1];
    (&*ours).write_all(b"w").expect("warm-up write");
    let mut k = kernel;
    k.read_exact(&mut byte).expect("warm-up read");
    k.write_all(b"w").expect("warm-up write");
    (&*ours).read_exact(&mut byte).expect("warm-up read");
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if ours
            .mptcp_stats()
            .is_some_and(|st| st.subflows.iter().any(|sf| sf.established && want(sf)))
        {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!(
        "no matching subflow within 5 s: {:?}",
        ours.mptcp_stats().map(|st| st.subflows)
    );
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
    let totals = full_duplex("s01 one path", &ours, &kernel, sized(100 * MB));
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
    shape_both(&ns);
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = start_stack(&ns, vec![a1, a2], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6002);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1, a2], server, true);
    // Joins go out once the client is fully established (the server's first DSS
    // came): the warm-up brings that about.
    let events = ours.events().expect("events");
    warm_up(&ours, &kernel, |sf| sf.local.ip() == a2);
    let totals = full_duplex("s02 two paths", &ours, &kernel, sized(24 * MB));
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

/// Accepts one connection on our listener while the kernel connects from "peer".
fn kernel_client(
    stack: &Stack,
    ns: &Netns,
    at: SocketAddr,
    mptcp_client: bool,
) -> (MptcpStream, TcpStream) {
    let listener = stack.bind(at).expect("bind");
    std::thread::scope(|s| {
        let k = s.spawn(|| kernel_connect(ns, at, mptcp_client));
        let (ours, _) = listener.accept().expect("accept");
        (ours, k.join().expect("kernel connect thread"))
    })
}

fn has_subflow_up(seen: &[MptcpEvent], local: Option<IpAddr>, remote: Option<IpAddr>) -> bool {
    seen.iter().any(|e| {
        matches!(e, MptcpEvent::SubflowUp { local: l, remote: r, .. }
            if local.is_none_or(|a| l.ip() == a) && remote.is_none_or(|a| r.ip() == a))
    })
}

/// Scenario 3: a kernel client with a `subflow` endpoint on path 2 -> our server: the
/// kernel's MP_JOIN is accepted and the join carries data.
#[test]
fn s03_kernel_client_joins_our_server() {
    if !require_root("s03_kernel_client_joins_our_server") {
        return;
    }
    let ns = Netns::with_paths("s3", 2);
    shape_both(&ns);
    ns.exec(&ns.peer, "ip mptcp endpoint add 10.99.2.1 dev vp2 subflow");
    let a1 = our_addr(1, false);
    let stack = start_stack(&ns, vec![a1, our_addr(2, false)], |b| b);
    let (ours, kernel) = kernel_client(&stack, &ns, SocketAddr::new(a1, 6003), true);
    let events = ours.events().expect("events");
    let k2 = peer_addr(2, false);
    warm_up(&ours, &kernel, |sf| sf.remote.ip() == k2);
    let totals = full_duplex("s03 kernel client joins", &ours, &kernel, sized(16 * MB));
    eprintln!("{}", kernel_mib(&ns));
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(
        has_subflow_up(&seen, Some(a1), Some(k2)),
        "the kernel's join from {k2}: {seen:?}"
    );
    let (tx, rx) = totals.by_remote(k2);
    assert!(
        tx > MB as u64 && rx > MB as u64,
        "the join carried data: sent {tx}, received {rx}"
    );
}

/// Scenario 4: the kernel server announces its path-2 address (`signal` endpoint): we
/// receive the ADD_ADDR and join it.
#[test]
fn s04_kernel_server_announces_we_join() {
    if !require_root("s04_kernel_server_announces_we_join") {
        return;
    }
    let ns = Netns::with_paths("s4", 2);
    shape_both(&ns);
    let k2 = peer_addr(2, false);
    ns.exec(&ns.peer, "ip mptcp endpoint add 10.99.2.1 dev vp2 signal");
    let a1 = our_addr(1, false);
    let stack = start_stack(&ns, vec![a1], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6004);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1], server, true);
    let events = ours.events().expect("events");
    warm_up(&ours, &kernel, |sf| sf.remote.ip() == k2);
    let totals = full_duplex("s04 we join the announced", &ours, &kernel, sized(16 * MB));
    eprintln!("{}", kernel_mib(&ns));
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(
        seen.iter()
            .any(|e| matches!(e, MptcpEvent::AddressAnnounced { addr, .. } if addr.ip() == k2)),
        "ADD_ADDR {k2} received: {seen:?}"
    );
    assert!(
        has_subflow_up(&seen, Some(a1), Some(k2)),
        "joined {k2}: {seen:?}"
    );
    let (tx, rx) = totals.by_remote(k2);
    assert!(
        tx > MB as u64 && rx > MB as u64,
        "the join carried data: sent {tx}, received {rx}"
    );
}

/// Scenario 5: our server announces its path-2 address (`--announce`): the kernel
/// client joins it.
#[test]
fn s05_we_announce_kernel_client_joins() {
    if !require_root("s05_we_announce_kernel_client_joins") {
        return;
    }
    let ns = Netns::with_paths("s5", 2);
    shape_both(&ns);
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = start_stack(&ns, vec![a1], move |b| b.announce(a2));
    let (ours, kernel) = kernel_client(&stack, &ns, SocketAddr::new(a1, 6005), true);
    let events = ours.events().expect("events");
    warm_up(&ours, &kernel, |sf| sf.local.ip() == a2);
    let totals = full_duplex(
        "s05 kernel joins our announced",
        &ours,
        &kernel,
        sized(16 * MB),
    );
    let mib = kernel_mib(&ns);
    eprintln!("{mib}");
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(
        mib.contains("MPTcpExtAddAddr "),
        "the kernel counted our ADD_ADDR: {mib}"
    );
    assert!(
        has_subflow_up(&seen, Some(a2), None),
        "a join to {a2}: {seen:?}"
    );
    let (tx, rx) = totals.by_local(a2);
    assert!(
        tx > MB as u64 && rx > MB as u64,
        "the join carried data: sent {tx}, received {rx}"
    );
}

/// Sends exactly `size` bytes without closing; returns the digest.
fn send_exact(w: impl Write, size: usize, seed: u64) -> Digest32 {
    send_stream(w, size, seed, || {})
}

/// Reads exactly `size` bytes.
fn recv_exact(mut r: impl Read, size: usize, mut progress: impl FnMut(usize)) -> Digest32 {
    let mut buf = vec![0u8; 256 * 1024];
    let mut hash = Sha256::new();
    let mut len = 0;
    while len < size {
        let want = (size - len).min(buf.len());
        let n = r.read(&mut buf[..want]).expect("read");
        assert!(n > 0, "end of stream after {len} of {size} bytes");
        hash.update(&buf[..n]);
        len += n;
        progress(len);
    }
    Digest32 {
        len,
        sha: hash.finalize().into(),
    }
}

/// Scenario 6: path 2 goes down mid-transfer (`ip link set down` on both veth ends):
/// the transfer completes intact over path 1. The path comes back: a subflow over it
/// is re-established and carries data again.
#[test]
fn s06_path_down_mid_transfer_then_back() {
    if !require_root("s06_path_down_mid_transfer_then_back") {
        return;
    }
    let ns = Netns::with_paths("s6", 2);
    shape_both(&ns);
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = start_stack(&ns, vec![a1, a2], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6006);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1, a2], server, true);
    let events = ours.events().expect("events");
    warm_up(&ours, &kernel, |sf| sf.local.ip() == a2);
    let size = sized(24 * MB);
    let stop = AtomicBool::new(false);
    let kernel_rx = kernel.try_clone().expect("clone");
    let start = Instant::now();
    let down_at = std::sync::Mutex::new(None);
    let (phase1, totals1) = std::thread::scope(|s| {
        let sampling = sampler(s, &ours, &stop);
        let us_tx = s.spawn(|| send_exact(&ours, size, 11));
        let k_tx = s.spawn(|| send_exact(&kernel, size, 12));
        let k_rx = s.spawn(|| {
            let mut down = false;
            recv_exact(&kernel_rx, size, |n| {
                if !down && n >= size / 4 {
                    down = true;
                    ns.set_path(2, false);
                    *down_at.lock().expect("lock") = Some(start.elapsed());
                }
            })
        });
        let got_by_us = recv_exact(&ours, size, |_| {});
        let got_by_kernel = k_rx.join().expect("kernel receiver");
        let elapsed = start.elapsed();
        stop.store(true, Ordering::Relaxed);
        let sent = (
            us_tx.join().expect("our sender"),
            k_tx.join().expect("kernel sender"),
        );
        (
            (sent, got_by_kernel, got_by_us, elapsed),
            sampling.join().expect("sampler"),
        )
    });
    let ((sent_by_us, sent_by_kernel), got_by_kernel, got_by_us, elapsed) = phase1;
    assert_eq!(
        got_by_kernel, sent_by_us,
        "ours -> kernel across the path failure"
    );
    assert_eq!(
        got_by_us, sent_by_kernel,
        "kernel -> ours across the path failure"
    );
    eprintln!(
        "path 2 down at {:?}; phase 1 done at {elapsed:?}",
        down_at.lock().expect("lock")
    );
    goodput("s06 path down (both ways, per direction)", size, elapsed);
    totals1.print("s06 phase 1");
    let (tx2, _) = totals1.by_local(a2);
    assert!(
        tx2 > MB as u64,
        "path 2 carried data before it failed: {tx2}"
    );

    // Path 2 comes back. The path event (what a link monitor would report) lets the
    // connection retry a pair that failed; a subflow that only went stale resumes at
    // its next retransmission. Traffic keeps flowing both ways until path 2 carries
    // new data.
    let mut seen: Vec<MptcpEvent> = events.try_iter().collect();
    let path2_sent = |stream: &MptcpStream| -> u64 {
        stream.mptcp_stats().map_or(0, |st| {
            st.subflows
                .iter()
                .filter(|sf| sf.local.ip() == a2)
                .map(|sf| sf.bytes_sent)
                .sum()
        })
    };
    let baseline = path2_sent(&ours);
    ns.set_path(2, true);
    stack.address_up(a2).expect("address_up");
    let back = Instant::now();
    let done = AtomicBool::new(false);
    let (rejoined, (sent_by_us, got_by_kernel), (sent_by_kernel, got_by_us)) =
        std::thread::scope(|s| {
            let us_tx = s.spawn(|| {
                let d = send_until(&ours, &done, 21);
                ours.shutdown(Shutdown::Write).expect("shutdown");
                d
            });
            let k_tx = s.spawn(|| {
                let d = send_until(&kernel, &done, 22);
                kernel.shutdown(Shutdown::Write).expect("kernel shutdown");
                d
            });
            let k_rx = s.spawn(|| recv_stream(&kernel_rx));
            let us_rx = s.spawn(|| recv_stream(&ours));
            let mut rejoined = None;
            while back.elapsed() < Duration::from_secs(30) {
                if path2_sent(&ours) > baseline + MB as u64 {
                    rejoined = Some(back.elapsed());
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            done.store(true, Ordering::Relaxed);
            (
                rejoined,
                (
                    us_tx.join().expect("our sender"),
                    k_rx.join().expect("kernel receiver"),
                ),
                (
                    k_tx.join().expect("kernel sender"),
                    us_rx.join().expect("our receiver"),
                ),
            )
        });
    seen.extend(events.try_iter());
    eprintln!("events: {seen:?}");
    assert_eq!(
        got_by_kernel, sent_by_us,
        "ours -> kernel after the path came back"
    );
    assert_eq!(
        got_by_us, sent_by_kernel,
        "kernel -> ours after the path came back"
    );
    let rejoined = rejoined.expect("path 2 carries data again within 30 s of coming back");
    eprintln!("path 2 carries data again {rejoined:?} after the link came up");
}

/// Scenario 7: the kernel with `net.mptcp.checksum_enabled=1` asks for DSS checksums
/// (flag A): they are used and verified both ways, with us as client and as server.
#[test]
fn s07_kernel_checksums_negotiated_and_verified() {
    if !require_root("s07_kernel_checksums_negotiated_and_verified") {
        return;
    }
    let ns = Netns::with_paths("s7", 2);
    ns.exec(&ns.peer, "sysctl -qw net.mptcp.checksum_enabled=1");
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    // Our side does not ask: the kernel's flag A alone turns checksums on.
    let stack = start_stack(&ns, vec![a1, a2], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6007);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1, a2], server, true);
    warm_up(&ours, &kernel, |sf| sf.local.ip() == a2);
    let totals = full_duplex("s07 checksums, our client", &ours, &kernel, sized(32 * MB));
    assert!(totals.checksums, "checksums negotiated");
    assert_eq!(totals.seen.len(), 2, "both subflows: {totals:?}");
    // And as the server, for a kernel client that asks.
    let (ours, kernel) = kernel_client(&stack, &ns, SocketAddr::new(a1, 6017), true);
    let totals = full_duplex("s07 checksums, our server", &ours, &kernel, sized(16 * MB));
    assert!(totals.checksums, "checksums negotiated");
    let mib = kernel_mib(&ns);
    eprintln!("{mib}");
    assert!(
        !mib.contains("DataCsumErr"),
        "the kernel verified every checksum: {mib}"
    );
    assert!(
        !mib.contains("MPFailTx"),
        "no MP_FAIL from the kernel: {mib}"
    );
}

/// Scenario 8: plain TCP peers (kernel TCP sockets): transparent fallback with us as
/// client (Fallback event) and as server (a plain TCP connection).
#[test]
fn s08_plain_tcp_peer_falls_back_both_roles() {
    if !require_root("s08_plain_tcp_peer_falls_back_both_roles") {
        return;
    }
    let ns = Netns::with_paths("s8", 1);
    let a1 = our_addr(1, false);
    let stack = start_stack(&ns, vec![a1], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6008);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1], server, false);
    let events = ours.events().expect("events");
    let totals = full_duplex("s08 fallback, our client", &ours, &kernel, sized(16 * MB));
    assert!(!totals.mptcp, "fell back to TCP");
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(
        seen.contains(&MptcpEvent::Fallback {
            reason: mptcp_tun::FallbackReason::NoMpCapableInSynAck
        }),
        "{seen:?}"
    );
    let (ours, kernel) = kernel_client(&stack, &ns, SocketAddr::new(a1, 6018), false);
    assert!(ours.mptcp_stats().is_none(), "a plain TCP connection");
    full_duplex("s08 fallback, our server", &ours, &kernel, sized(16 * MB));
}

/// Scenario 9: our stack on both ends over the same two paths: the server (in "peer",
/// owning 10.88.1.1 and announcing 10.88.2.1) and the client (10.77.1.2, 10.77.2.2)
/// build a mesh, and every subflow carries data.
#[test]
fn s09_our_stack_on_both_ends() {
    if !require_root("s09_our_stack_on_both_ends") {
        return;
    }
    let ns = Netns::with_paths("s9", 2);
    shape_both(&ns);
    ns.route_peer_stack();
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let (b1, b2): (IpAddr, IpAddr) = (
        "10.88.1.1".parse().expect("addr"),
        "10.88.2.1".parse().expect("addr"),
    );
    let client = start_stack(&ns, vec![a1, a2], |b| b);
    let server = ns.in_peer(move || {
        Stack::builder()
            .address(b1)
            .announce(b2)
            .build()
            .expect("server stack")
    });
    let listener = server.bind(SocketAddr::new(b1, 6009)).expect("bind");
    let (ours, theirs) = std::thread::scope(|s| {
        let c = s.spawn(|| {
            client
                .connect_multipath(&[a1, a2], SocketAddr::new(b1, 6009))
                .expect("connect")
        });
        let (theirs, _) = listener.accept().expect("accept");
        (c.join().expect("client"), theirs)
    });
    let events = ours.events().expect("events");
    warm_up(&ours, &theirs, |sf| sf.local.ip() == a2);
    let totals = duplex(
        "s09 ours both ends",
        &ours,
        &theirs,
        sized(24 * MB),
        |s| s.shutdown(Shutdown::Write).expect("shutdown"),
        |s| s.shutdown(Shutdown::Write).expect("shutdown"),
        Some(&ours),
    );
    let seen: Vec<MptcpEvent> = events.try_iter().collect();
    assert!(totals.mptcp);
    assert!(
        seen.iter()
            .any(|e| matches!(e, MptcpEvent::AddressAnnounced { addr, .. } if addr.ip() == b2)),
        "{seen:?}"
    );
    for local in [a1, a2] {
        let (tx, rx) = totals.by_local(local);
        assert!(
            tx > MB as u64 && rx > MB as u64,
            "subflows from {local} carried data: sent {tx}, received {rx}"
        );
    }
    assert!(totals.seen.len() >= 3, "a mesh of subflows: {totals:?}");
}

/// Scenario 10: scenario 2 over IPv6 (fd00:77:p::2 to fd00:99:1::1).
#[test]
fn s10_ipv6_two_paths() {
    if !require_root("s10_ipv6_two_paths") {
        return;
    }
    let ns = Netns::with_paths("s10", 2);
    shape_both(&ns);
    let (a1, a2) = (our_addr(1, true), our_addr(2, true));
    let stack = start_stack(&ns, vec![a1, a2], |b| b);
    let server = SocketAddr::new(peer_addr(1, true), 6010);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1, a2], server, true);
    warm_up(&ours, &kernel, |sf| sf.local.ip() == a2);
    let totals = full_duplex("s10 ipv6 two paths", &ours, &kernel, sized(24 * MB));
    eprintln!("{}", kernel_mib(&ns));
    assert!(totals.mptcp);
    for local in [a1, a2] {
        let (tx, rx) = totals.by_local(local);
        assert!(
            tx > 2 * MB as u64 && rx > 2 * MB as u64,
            "the subflow from {local} carried data both ways: sent {tx}, received {rx}"
        );
    }
}

/// Both paths limited to 100 Mbit/s each way. Unlimited veths are never the
/// bottleneck, so a lowest-RTT scheduler (ours or the kernel's) may rightly leave a
/// path almost idle; with limits, each path fills up and both must carry data.
fn shape_both(ns: &Netns) {
    ns.shape(1, "100mbit");
    ns.shape(2, "100mbit");
}

/// Rate per path of the aggregation tests, Mbit/s.
const SHAPED_MBIT: f64 = 50.0;

/// Scenario 2 with each path limited to 50 Mbit/s both ways: two subflows give more
/// than one path can (aggregation), for us and (printed beside it) for the kernel.
#[test]
fn s02b_two_rate_limited_paths_aggregate() {
    if !require_root("s02b_two_rate_limited_paths_aggregate") {
        return;
    }
    let ns = Netns::with_paths("s2b", 2);
    ns.shape(1, "50mbit");
    ns.shape(2, "50mbit");
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = start_stack(&ns, vec![a1, a2], |b| b);
    let server = SocketAddr::new(peer_addr(1, false), 6012);
    let (ours, kernel, _listener) = our_client(&stack, &ns, &[a1, a2], server, true);
    warm_up(&ours, &kernel, |sf| sf.local.ip() == a2);
    let size = sized(16 * MB);
    let start = Instant::now();
    let totals = full_duplex("s02b 2x50 Mbit/s", &ours, &kernel, size);
    let rate = mbit(size, start.elapsed());
    for sf in ours.mptcp_stats().map(|st| st.subflows).unwrap_or_default() {
        eprintln!(
            "SUBFLOW s02b {} -> {}: retransmitted {} B, RTOs {}, cwnd {}, ssthresh {}",
            sf.local, sf.remote, sf.bytes_retransmitted, sf.rto_count, sf.cwnd, sf.ssthresh
        );
    }
    eprintln!("first subflow's TCP: {:?}", ours.stats());
    // Measured 60-75 Mbit/s per direction here (the kernel: 87-90); see the README
    // on spurious retransmissions with Linux's one-block SACKs.
    assert!(
        rate > 1.1 * SHAPED_MBIT,
        "two 50 Mbit/s paths carry more than one: {rate:.0} Mbit/s per direction"
    );
    for local in [a1, a2] {
        let (tx, rx) = totals.by_local(local);
        assert!(
            tx > 2 * MB as u64 && rx > 2 * MB as u64,
            "{local}: {tx} / {rx}"
        );
    }
}

/// The number of additional subflows of kernel MPTCP socket `s` (MPTCP_INFO's
/// mptcpi_subflows, its first byte).
fn kernel_subflow_count(s: &TcpStream) -> u8 {
    use std::os::fd::AsRawFd;
    const SOL_MPTCP: libc::c_int = 284;
    const MPTCP_INFO: libc::c_int = 1;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the buffer and its length are valid for the kernel to write into.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            SOL_MPTCP,
            MPTCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "MPTCP_INFO: {}", std::io::Error::last_os_error());
    info[0]
}

/// One byte each way, then waits (up to 5 s) until the client's join is established.
///
/// Works around a bug of the kernel's MPTCP receiver (seen on 6.18.44): when the
/// first data of a join that comes up mid-transfer arrives ahead of the data
/// sequence the receiver expects, the receiver hands those bytes to the application
/// at the expected position. A capture of a failed run showed it: the join's first
/// segment (DSN +130992, 80 bytes, correct on the wire) was read at offset 65536, and
/// the real bytes there, arriving later on the first subflow, were dropped as
/// duplicates; same length, other SHA-256. With the join up before the transfer
/// starts, 100 of 100 short runs passed, against 96 of 100 without.
fn kernel_warm_up(client: &TcpStream, server: &TcpStream) {
    let mut byte = [0u8; 1];
    (&*client).write_all(b"w").expect("warm-up write");
    (&*server).read_exact(&mut byte).expect("warm-up read");
    (&*server).write_all(b"w").expect("warm-up write");
    (&*client).read_exact(&mut byte).expect("warm-up read");
    let deadline = Instant::now() + Duration::from_secs(5);
    while kernel_subflow_count(client) < 1 {
        assert!(
            Instant::now() < deadline,
            "the kernel's join did not come up in 5 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The reference: the kernel's MPTCP on both ends of the same topology (client in
/// "ours" on the veth addresses, server in "peer"), one path and two paths, sizes as
/// scenarios 1 and 2. Prints goodput only; asserts the data.
#[test]
fn k2k_kernel_to_kernel_baseline() {
    if !require_root("k2k_kernel_to_kernel_baseline") {
        return;
    }
    let runs: [(u8, usize, Option<&str>); 4] = [
        (1, 100 * MB, None),
        (2, 64 * MB, None),
        (2, 24 * MB, Some("100mbit")),
        (2, 16 * MB, Some("50mbit")),
    ];
    for (i, (paths, size, shaped)) in runs.into_iter().enumerate() {
        let ns = Netns::with_paths(&format!("k{i}"), paths);
        if paths == 2 {
            ns.exec(&ns.ours, "ip mptcp endpoint add 10.99.2.2 dev vo2 subflow");
        }
        if let Some(rate) = shaped {
            ns.shape(1, rate);
            ns.shape(2, rate);
        }
        // With INTEROP_PCAP_DIR set, the peer's side of the wire is captured.
        let _capture = std::env::var_os("INTEROP_PCAP_DIR").map(|dir| {
            ns.capture(
                &ns.peer,
                &std::path::PathBuf::from(dir).join(format!("{}.pcapng", ns.peer)),
            )
        });
        let port = 6020 + i as u16;
        let listener = kernel_listen(
            &ns,
            SocketAddr::new("0.0.0.0".parse().expect("any"), port),
            true,
        );
        let to = SocketAddr::new(peer_addr(1, false), port);
        let client = Netns::within(&ns.ours, move || {
            let s = kernel_socket(false, true);
            s.connect_timeout(&to.into(), Duration::from_secs(10))
                .expect("kernel connect");
            TcpStream::from(s)
        });
        let (server, _) = listener.accept().expect("accept");
        if paths == 2 {
            kernel_warm_up(&client, &server);
        }
        let label = match shaped {
            Some(rate) => format!("k2k 2x{rate}"),
            None => format!("k2k {paths} path(s)"),
        };
        duplex(
            &label,
            &client,
            &server,
            sized(size),
            |s| s.shutdown(Shutdown::Write).expect("shutdown"),
            |s| s.shutdown(Shutdown::Write).expect("shutdown"),
            None,
        );
        eprintln!("{}", ns.output(&ns.ours, "ss -tinM"));
    }
}
