//! The sharded runtime (`StackBuilder::workers`): many connections through a stack
//! with two worker threads, against the Linux kernel and against a second two-worker
//! stack of ours. Every connection carries data both ways at once, checked byte for
//! byte, and both workers must own connections. The connections cover what steering
//! has to get right: MPTCP with joins we open (ports chosen per worker), joins the
//! peer opens (the token decides, the join table follows), plain TCP, and MPTCP
//! connections accepted through SYN cookies (whose derived key must name the worker
//! that rebuilt the connection).
//!
//! Needs root (namespaces, TUN); see tests/netns/mod.rs. Namespace tag prefix `wk`.

mod netns;

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mptcp_tun::{ConnMode, MptcpEvent, MptcpStream, Stack, SynCookies};
use netns::{Netns, our_addr, peer_addr, require_root};
use socket2::{Domain, Protocol, Socket, Type};

/// Bytes each way per connection.
const SIZE: usize = 1 << 20;

/// The byte at `pos` of stream `seed`: SplitMix64 output per 8-byte word, so that
/// a misplaced, repeated or lost chunk shows.
fn pattern(seed: u64, pos: usize) -> u8 {
    let mut x = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add((pos / 8) as u64);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^= x >> 31;
    (x >> ((pos % 8) * 8)) as u8
}

fn send(mut w: impl Write, seed: u64) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0;
    while pos < SIZE {
        let n = buf.len().min(SIZE - pos);
        for (i, b) in buf[..n].iter_mut().enumerate() {
            *b = pattern(seed, pos + i);
        }
        w.write_all(&buf[..n]).expect("write");
        pos += n;
    }
}

/// Reads to the end of the stream and checks every byte; returns the first mismatch.
fn receive(mut r: impl Read, seed: u64) -> Result<(), String> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut pos = 0;
    loop {
        let n = r
            .read(&mut buf)
            .map_err(|e| format!("read at {pos}: {e}"))?;
        if n == 0 {
            break;
        }
        for (i, &b) in buf[..n].iter().enumerate() {
            if pos + i >= SIZE || b != pattern(seed, pos + i) {
                return Err(format!("byte {} wrong (stream {seed})", pos + i));
            }
        }
        pos += n;
    }
    if pos == SIZE {
        Ok(())
    } else {
        Err(format!("stream {seed}: {pos} of {SIZE} bytes"))
    }
}

/// Either end of one connection.
enum End {
    Ours(MptcpStream),
    Kernel(TcpStream),
}

impl End {
    fn io(&self) -> (Box<dyn Read + Send + '_>, Box<dyn Write + Send + '_>) {
        match self {
            End::Ours(s) => (Box::new(s), Box::new(s)),
            End::Kernel(s) => (Box::new(s), Box::new(s)),
        }
    }

    /// One byte each way, so that MPTCP is fully established at both ends (the
    /// joins wait for that) before the transfer.
    fn ping(a: &End, b: &End) {
        for (from, to) in [(a, b), (b, a)] {
            from.io().1.write_all(&[0x55]).expect("ping write");
            let mut byte = [0u8];
            to.io().0.read_exact(&mut byte).expect("ping read");
            assert_eq!(byte, [0x55]);
        }
    }

    fn shutdown_write(&self) {
        match self {
            End::Ours(s) => s.shutdown(Shutdown::Write).expect("shutdown"),
            End::Kernel(s) => s.shutdown(Shutdown::Write).expect("shutdown"),
        }
    }
}

/// All connections at once, both directions at once; each pair's streams are seeded
/// apart. Panics with every mismatch found.
fn transfer_all(pairs: &[(End, End)]) {
    let errors: Vec<String> = std::thread::scope(|s| {
        let mut jobs = Vec::new();
        for (i, (a, b)) in pairs.iter().enumerate() {
            for (from, to, seed) in [(a, b, 2 * i as u64), (b, a, 2 * i as u64 + 1)] {
                jobs.push(s.spawn(move || {
                    send(from.io().1, seed);
                    from.shutdown_write();
                    Ok(())
                }));
                jobs.push(s.spawn(move || receive(to.io().0, seed)));
            }
        }
        jobs.into_iter()
            .filter_map(|j| j.join().expect("transfer thread").err())
            .collect()
    });
    assert!(errors.is_empty(), "transfers failed: {errors:?}");
}

fn kernel_listen(ns: &Netns, port: u16, mptcp: bool) -> TcpListener {
    ns.in_peer(move || {
        let proto = if mptcp {
            Protocol::MPTCP
        } else {
            Protocol::TCP
        };
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(proto)).expect("socket");
        s.set_reuse_address(true).expect("SO_REUSEADDR");
        // The wildcard: Linux takes MP_JOINs to its other address only through a
        // listener that covers it.
        let at = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port);
        s.bind(&at.into()).expect("bind");
        s.listen(64).expect("listen");
        s.into()
    })
}

fn kernel_connect(ns: &Netns, to: SocketAddr) -> TcpStream {
    ns.in_peer(move || {
        let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP)).expect("socket");
        s.connect_timeout(&to.into(), Duration::from_secs(10))
            .expect("kernel connect");
        s.into()
    })
}

/// Waits (up to 20 s) until every one of `streams` has at least two established
/// subflows.
fn wait_for_joins<'a>(what: &str, streams: impl Iterator<Item = &'a MptcpStream> + Clone) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let counts: Vec<usize> = streams
            .clone()
            .map(|s| {
                s.mptcp_stats().map_or(0, |st| {
                    st.subflows.iter().filter(|sf| sf.established).count()
                })
            })
            .collect();
        if counts.iter().all(|&c| c >= 2) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: established subflows per connection {counts:?}, want 2 each"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn report(what: &str, stack: &Stack) {
    let stats = stack.endpoint_stats();
    eprintln!(
        "{what}: {} packets in, {} handed to the other worker, drops {:?}",
        stats.packets_in,
        stack.packets_forwarded(),
        stats.drops().collect::<Vec<_>>()
    );
}

fn assert_spread(what: &str, stack: &Stack) {
    let per = stack.connections_per_worker();
    assert_eq!(per.len(), 2, "{what}: {per:?}");
    assert!(
        per.iter().all(|&n| n > 0),
        "{what}: both workers own connections: {per:?}"
    );
    eprintln!("{what}: connections per worker {per:?}");
}

fn start(ns: &Netns, addrs: Vec<IpAddr>) -> Stack {
    ns.in_ours(move || {
        Stack::builder()
            .addresses(addrs)
            .workers(2)
            .build()
            .expect("stack starts")
    })
}

/// 16 connections through a two-worker stack against the kernel: 8 MPTCP ones we open
/// (joining from our path-2 address), 4 the kernel opens with a join of its own from
/// its path-2 address, and 4 plain TCP ones (a kernel TCP listener: fallback).
#[test]
fn wk1_two_workers_against_the_kernel() {
    if !require_root("wk1_two_workers_against_the_kernel") {
        return;
    }
    let ns = Netns::with_paths("wk1", 2);
    ns.exec(&ns.peer, "ip mptcp endpoint add 10.99.2.1 dev vp2 subflow");
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = start(&ns, vec![a1, a2]);
    assert_eq!(stack.workers(), 2);
    let k1 = peer_addr(1, false);
    let mptcp_listener = kernel_listen(&ns, 7001, true);
    let tcp_listener = kernel_listen(&ns, 7002, false);
    let ours_listener = stack.bind(SocketAddr::new(a1, 7003)).expect("bind");

    let mut pairs = Vec::new();
    for _ in 0..8 {
        let ours = stack
            .connect_multipath(&[a1, a2], SocketAddr::new(k1, 7001))
            .expect("connect (MPTCP)");
        let (kernel, from) = mptcp_listener.accept().expect("kernel accept");
        assert_eq!(from, ours.local_addr().expect("local"));
        pairs.push((End::Ours(ours), End::Kernel(kernel)));
    }
    for _ in 0..4 {
        let ours = stack
            .connect(SocketAddr::new(k1, 7002))
            .expect("connect (TCP)");
        let (kernel, _) = tcp_listener.accept().expect("kernel accept");
        pairs.push((End::Ours(ours), End::Kernel(kernel)));
    }
    for _ in 0..4 {
        let to = SocketAddr::new(a1, 7003);
        let (kernel, ours) = std::thread::scope(|s| {
            let k = s.spawn(|| kernel_connect(&ns, to));
            let (ours, _) = ours_listener.accept().expect("accept");
            (k.join().expect("kernel connect thread"), ours)
        });
        pairs.push((End::Kernel(kernel), End::Ours(ours)));
    }
    assert_spread("ours -> kernel", &stack);
    // Ours of the MPTCP connections (not those to the kernel's TCP listener).
    let mptcp_ours = pairs
        .iter()
        .enumerate()
        .filter(|(i, _)| !(8..12).contains(i))
        .map(|(_, p)| match p {
            (End::Ours(s), _) | (_, End::Ours(s)) => s,
            (End::Kernel(_), End::Kernel(_)) => unreachable!("one end is ours"),
        });
    for (a, b) in &pairs {
        End::ping(a, b);
    }
    wait_for_joins("two workers vs kernel", mptcp_ours);
    transfer_all(&pairs);
    for (a, b) in &pairs {
        if let (End::Ours(s), End::Kernel(_)) | (End::Kernel(_), End::Ours(s)) = (a, b)
            && let Ok(events) = s.events()
        {
            let seen: Vec<MptcpEvent> = events.try_iter().collect();
            assert!(
                !seen
                    .iter()
                    .any(|e| matches!(e, MptcpEvent::Fallback { .. }))
                    || s.peer_addr().expect("peer").port() == 7002,
                "only the TCP listener's connections fall back: {seen:?}"
            );
        }
    }
    report("ours (vs kernel)", &stack);
}

/// 16 MPTCP connections between two two-worker stacks of ours: the client joins from
/// its path-2 address, the server announces its second address, so both sides open
/// joins to the other (a four-subflow mesh per connection).
#[test]
fn wk2_two_workers_on_both_ends() {
    if !require_root("wk2_two_workers_on_both_ends") {
        return;
    }
    let ns = Netns::with_paths("wk2", 2);
    ns.route_peer_stack();
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let (b1, b2): (IpAddr, IpAddr) = (
        "10.88.1.1".parse().expect("addr"),
        "10.88.2.1".parse().expect("addr"),
    );
    let client = start(&ns, vec![a1, a2]);
    let server = ns.in_peer(move || {
        Stack::builder()
            .address(b1)
            .announce(b2)
            .workers(2)
            .build()
            .expect("server stack")
    });
    let listener = server.bind(SocketAddr::new(b1, 7009)).expect("bind");
    let mut pairs = Vec::new();
    for _ in 0..16 {
        let (ours, theirs) = std::thread::scope(|s| {
            let c = s.spawn(|| {
                client
                    .connect_multipath(&[a1, a2], SocketAddr::new(b1, 7009))
                    .expect("connect")
            });
            let (theirs, _) = listener.accept().expect("accept");
            (c.join().expect("client"), theirs)
        });
        pairs.push((End::Ours(ours), End::Ours(theirs)));
    }
    assert_spread("client", &client);
    assert_spread("server", &server);
    let streams = pairs.iter().flat_map(|(a, b)| [a, b]).map(|e| match e {
        End::Ours(s) => s,
        End::Kernel(_) => unreachable!("ours on both ends"),
    });
    for (a, b) in &pairs {
        End::ping(a, b);
    }
    wait_for_joins("two workers on both ends", streams);
    transfer_all(&pairs);
    // Joins of both origins: the client's from a2, and the client's to the announced
    // b2 (which the server's steering met on tuples its hash may give the other
    // worker).
    for (a, _) in &pairs {
        let End::Ours(s) = a else { unreachable!() };
        let st = s.mptcp_stats().expect("MPTCP");
        let all: Vec<_> = st
            .subflows
            .iter()
            .chain(&st.closed_subflows)
            .map(|sf| (sf.local.ip(), sf.remote.ip()))
            .collect();
        assert!(all.contains(&(a2, b1)), "a join from a2: {all:?}");
    }
    report("client", &client);
    report("server", &server);
}

/// Every connection the kernel opens to a two-worker stack that answers each SYN with
/// a cookie: each is rebuilt by the worker its tuple hashes to, from a key derived so
/// that its token names that worker too, so all stay MPTCP and the kernel's joins
/// (steered by token) reach them.
#[test]
fn wk3_cookie_connections_stay_mptcp_and_take_joins() {
    if !require_root("wk3_cookie_connections_stay_mptcp_and_take_joins") {
        return;
    }
    let ns = Netns::with_paths("wk3", 2);
    ns.exec(&ns.peer, "ip mptcp endpoint add 10.99.2.1 dev vp2 subflow");
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let stack = ns.in_ours(move || {
        Stack::builder()
            .addresses([a1, a2])
            .syn_cookies(SynCookies::Always)
            .workers(2)
            .build()
            .expect("stack starts")
    });
    let listener = stack.bind(SocketAddr::new(a1, 7004)).expect("bind");
    let mut pairs = Vec::new();
    // Eight connections, and more until both workers own one: the steering hash is
    // keyed at random, so eight land on one worker once in 128 runs.
    while pairs.len() < 8 || stack.connections_per_worker().contains(&0) {
        assert!(pairs.len() < 32, "{:?}", stack.connections_per_worker());
        let to = SocketAddr::new(a1, 7004);
        let (kernel, ours) = std::thread::scope(|s| {
            let k = s.spawn(|| kernel_connect(&ns, to));
            let (ours, _) = listener.accept().expect("accept");
            (k.join().expect("kernel connect thread"), ours)
        });
        pairs.push((End::Kernel(kernel), End::Ours(ours)));
    }
    assert_spread("cookies", &stack);
    let stats = stack.endpoint_stats();
    assert!(
        stats.syn_cookies_accepted >= pairs.len() as u64,
        "every connection through a cookie: {stats:?}"
    );
    assert_eq!(stats.syn_cookie_token_fallbacks, 0, "{stats:?}");
    let ours = pairs.iter().map(|(_, b)| match b {
        End::Ours(s) => s,
        End::Kernel(_) => unreachable!("ours accepted"),
    });
    for s in ours.clone() {
        let st = s.mptcp_stats().expect("an MPTCP connection");
        assert_eq!(st.mode, ConnMode::Mptcp, "{:?}", s.peer_addr());
    }
    for (a, b) in &pairs {
        End::ping(a, b);
    }
    wait_for_joins("cookie connections", ours.clone());
    transfer_all(&pairs);
    for s in ours {
        let seen: Vec<MptcpEvent> = s.events().expect("events").try_iter().collect();
        assert!(
            !seen
                .iter()
                .any(|e| matches!(e, MptcpEvent::Fallback { .. })),
            "no fallback: {seen:?}"
        );
    }
    report("ours (cookies)", &stack);
}
