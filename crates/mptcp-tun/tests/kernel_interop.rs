//! Interop against the Linux kernel's TCP and MPTCP over a real TUN device in network
//! namespaces (topology in tests/netns/mod.rs). Needs root; skipped otherwise, failed
//! under CI.
//!
//! Each transfer runs both directions at once on one connection, and checks length and
//! SHA-256 of what arrived against what was sent. Goodput is printed (run with
//! `--nocapture` to see it).
//!
//! These are the runtime's plain-TCP tests: `start_stack` turns MPTCP off
//! (`StackBuilder::mptcp(false)`), so the kernel's MPTCP sockets fall back to TCP.
//! Multipath against the kernel is in tests/mptcp_interop.rs.

mod netns;

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mptcp_testnet::stream::{Digest32, recv_stream, send_stream};
use mptcp_tun::{AsyncMptcpStream, MptcpStream, Stack};
use netns::{Netns, OUR_ADDR, PEER_ADDR, require_root};
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

const MB: usize = 1 << 20;

fn goodput(label: &str, bytes: usize, elapsed: Duration) {
    let mbit = bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6;
    let profile = if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    };
    eprintln!(
        "GOODPUT {label} ({profile}): {} MB in {:.2} s = {mbit:.0} Mbit/s",
        bytes / MB,
        elapsed.as_secs_f64()
    );
}

/// Runs both directions at once: our stream and a kernel stream, each sending `size`
/// bytes with its own seed. Asserts both arrive intact.
fn full_duplex(label: &str, ours: MptcpStream, kernel: TcpStream, size: usize) {
    let kernel_rx = kernel.try_clone().expect("clone kernel socket");
    let start = Instant::now();
    let (sent_by_us, got_by_kernel, sent_by_kernel, got_by_us) = std::thread::scope(|s| {
        let us_tx = s.spawn(|| {
            let d = send_stream(&ours, size, 0x5eed_0001, || {
                ours.shutdown(Shutdown::Write).expect("our shutdown")
            });
            (d, start.elapsed())
        });
        let k_tx = s.spawn(|| {
            let d = send_stream(&kernel, size, 0x5eed_0002, || {
                kernel.shutdown(Shutdown::Write).expect("kernel shutdown")
            });
            (d, start.elapsed())
        });
        let k_rx = s.spawn(|| {
            let d = recv_stream(&kernel_rx);
            (d, start.elapsed())
        });
        let us_rx = recv_stream(&ours);
        let us_rx_time = start.elapsed();
        (
            us_tx.join().expect("our sender"),
            k_rx.join().expect("kernel receiver"),
            k_tx.join().expect("kernel sender"),
            (us_rx, us_rx_time),
        )
    });
    assert_eq!(
        got_by_kernel.0, sent_by_us.0,
        "{label}: our stream -> kernel"
    );
    assert_eq!(
        got_by_us.0, sent_by_kernel.0,
        "{label}: kernel -> our stream"
    );
    assert_eq!(got_by_us.0.len, size);
    goodput(&format!("{label} ours->kernel"), size, got_by_kernel.1);
    goodput(&format!("{label} kernel->ours"), size, got_by_us.1);
    if let Some(st) = ours.stats() {
        eprintln!(
            "STATS {label}: segments sent {} received {}, retransmits {}, RTOs {}, fast recoveries {}, srtt {:?}, cwnd {}",
            st.segments_sent,
            st.segments_received,
            st.retransmits,
            st.rto_count,
            st.fast_recoveries,
            st.srtt,
            st.cwnd
        );
    }
}

fn start_stack(ns: &Netns, pcap: Option<std::path::PathBuf>) -> Stack {
    ns.in_ours(move || {
        let mut b = Stack::builder().mptcp(false).address(OUR_ADDR);
        if let Some(p) = pcap {
            b = b.pcap_path(p);
        }
        b.build().expect("stack starts")
    })
}

fn kernel_socket(mptcp: bool) -> Socket {
    let proto = if mptcp {
        Protocol::MPTCP
    } else {
        Protocol::TCP
    };
    Socket::new(Domain::IPV4, Type::STREAM, Some(proto)).expect("kernel socket")
}

fn kernel_connect(ns: &Netns, to: SocketAddr, mptcp: bool) -> io::Result<TcpStream> {
    ns.in_peer(move || {
        let s = kernel_socket(mptcp);
        s.connect_timeout(&to.into(), Duration::from_secs(10))?;
        Ok(s.into())
    })
}

fn kernel_listen(ns: &Netns, at: SocketAddr, mptcp: bool) -> TcpListener {
    ns.in_peer(move || {
        let s = kernel_socket(mptcp);
        s.set_reuse_address(true).expect("SO_REUSEADDR");
        s.bind(&at.into()).expect("kernel bind");
        s.listen(16).expect("kernel listen");
        s.into()
    })
}

/// Kernel client (plain TCP or MPTCP) -> our listener.
fn kernel_client_run(tag: &str, mptcp: bool, size: usize) {
    let ns = Netns::new(tag);
    let stack = start_stack(&ns, None);
    let listener = stack.bind(SocketAddr::new(OUR_ADDR, 5001)).expect("bind");
    let ns_ref = &ns;
    let (ours, kernel) = std::thread::scope(|s| {
        let k = s.spawn(move || kernel_connect(ns_ref, SocketAddr::new(OUR_ADDR, 5001), mptcp));
        let (ours, peer) = listener.accept().expect("accept");
        assert_eq!(peer.ip(), PEER_ADDR);
        (
            ours,
            k.join()
                .expect("kernel connect thread")
                .expect("kernel connect"),
        )
    });
    assert_eq!(
        ours.local_addr().expect("local"),
        SocketAddr::new(OUR_ADDR, 5001)
    );
    assert_eq!(
        ours.peer_addr().expect("peer"),
        kernel.local_addr().expect("kernel local")
    );
    full_duplex(tag, ours, kernel, size);
}

/// Our client -> kernel listener (plain TCP or MPTCP).
fn our_client_run(tag: &str, mptcp: bool, size: usize) {
    let ns = Netns::new(tag);
    let stack = start_stack(&ns, None);
    let listener = kernel_listen(&ns, SocketAddr::new(PEER_ADDR, 5002), mptcp);
    let ours = stack
        .connect(SocketAddr::new(PEER_ADDR, 5002))
        .expect("connect");
    let (kernel, from) = listener.accept().expect("kernel accept");
    assert_eq!(from, ours.local_addr().expect("local"));
    assert_eq!(
        ours.peer_addr().expect("peer"),
        SocketAddr::new(PEER_ADDR, 5002)
    );
    full_duplex(tag, ours, kernel, size);
}

#[test]
fn kernel_tcp_client_to_our_listener_100mb_each_way() {
    if require_root("kernel_tcp_client_to_our_listener_100mb_each_way") {
        kernel_client_run("kc", false, 100 * MB);
    }
}

#[test]
fn our_client_to_kernel_tcp_listener_100mb_each_way() {
    if require_root("our_client_to_kernel_tcp_listener_100mb_each_way") {
        our_client_run("oc", false, 100 * MB);
    }
}

/// RFC 8684 §3.1: our SYN-ACK carries no MP_CAPABLE, so the kernel's MPTCP socket falls
/// back to plain TCP; the application on either side notices nothing.
#[test]
fn kernel_mptcp_client_falls_back_to_tcp_with_our_listener() {
    if require_root("kernel_mptcp_client_falls_back_to_tcp_with_our_listener") {
        kernel_client_run("km", true, 100 * MB);
    }
}

/// Our SYN has no MP_CAPABLE: the kernel's MPTCP listener accepts it as plain TCP.
#[test]
fn our_client_to_kernel_mptcp_listener_is_plain_tcp() {
    if require_root("our_client_to_kernel_mptcp_listener_is_plain_tcp") {
        our_client_run("om", true, 100 * MB);
    }
}

#[test]
fn connect_to_a_closed_kernel_port_is_refused() {
    if !require_root("connect_to_a_closed_kernel_port_is_refused") {
        return;
    }
    let ns = Netns::new("rf");
    let stack = start_stack(&ns, None);
    let err = stack
        .connect(SocketAddr::new(PEER_ADDR, 5999))
        .expect_err("nobody listens on 5999");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[test]
fn binding_a_port_twice_is_addr_in_use() {
    if !require_root("binding_a_port_twice_is_addr_in_use") {
        return;
    }
    let ns = Netns::new("ai");
    let stack = start_stack(&ns, None);
    let _first = stack
        .bind(SocketAddr::new(OUR_ADDR, 5003))
        .expect("first bind");
    let err = stack
        .bind(SocketAddr::new(OUR_ADDR, 5003))
        .expect_err("second bind");
    assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{err}");
}

/// The peer resets an established connection: our next read reports ConnectionReset.
#[test]
fn kernel_reset_surfaces_as_connection_reset() {
    if !require_root("kernel_reset_surfaces_as_connection_reset") {
        return;
    }
    let ns = Netns::new("rs");
    let stack = start_stack(&ns, None);
    let listener = kernel_listen(&ns, SocketAddr::new(PEER_ADDR, 5004), false);
    let mut ours = stack
        .connect(SocketAddr::new(PEER_ADDR, 5004))
        .expect("connect");
    let (kernel, _) = listener.accept().expect("kernel accept");
    // SO_LINGER 0 makes close() send a RST.
    socket2::SockRef::from(&kernel)
        .set_linger(Some(Duration::ZERO))
        .expect("SO_LINGER");
    drop(kernel);
    let mut buf = [0u8; 16];
    let err = ours.read(&mut buf).expect_err("read after RST");
    assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");
}

/// The async API against a kernel listener: 8 MB each way.
#[test]
fn async_client_to_kernel_listener() {
    if !require_root("async_client_to_kernel_listener") {
        return;
    }
    let ns = Netns::new("as");
    let stack = start_stack(&ns, None);
    let listener = kernel_listen(&ns, SocketAddr::new(PEER_ADDR, 5005), false);
    let size = 8 * MB;
    let kernel_side = std::thread::spawn(move || {
        let (kernel, _) = listener.accept().expect("kernel accept");
        let rx = kernel.try_clone().expect("clone");
        let reader = std::thread::spawn(move || recv_stream(&rx));
        let sent = send_stream(&kernel, size, 7, || {
            kernel.shutdown(Shutdown::Write).expect("shutdown")
        });
        (sent, reader.join().expect("kernel reader"))
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .build()
        .expect("tokio runtime");
    let (sent_by_us, got_by_us) = rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let stream = AsyncMptcpStream::connect(&stack, SocketAddr::new(PEER_ADDR, 5005))
            .await
            .expect("async connect");
        let (mut rd, mut wr) = tokio::io::split(stream);
        let writer = async move {
            let mut hash = Sha256::new();
            let mut state = 9u64;
            let mut chunk = vec![0u8; 32 * 1024];
            let mut left = size;
            while left > 0 {
                let n = left.min(chunk.len());
                for b in &mut chunk[..n] {
                    state = state
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    *b = (state >> 56) as u8;
                }
                wr.write_all(&chunk[..n]).await.expect("async write");
                hash.update(&chunk[..n]);
                left -= n;
            }
            wr.shutdown().await.expect("async shutdown");
            Digest32 {
                len: size,
                sha: hash.finalize().into(),
            }
        };
        let reader = async move {
            let mut hash = Sha256::new();
            let mut buf = vec![0u8; 64 * 1024];
            let mut len = 0;
            loop {
                let n = rd.read(&mut buf).await.expect("async read");
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
        };
        tokio::join!(writer, reader)
    });
    let (sent_by_kernel, got_by_kernel) = kernel_side.join().expect("kernel side");
    assert_eq!(got_by_kernel, sent_by_us);
    assert_eq!(got_by_us, sent_by_kernel);
    assert_eq!(got_by_us.len, size);
}

/// Every packet of a short kernel-MPTCP-client exchange lands in the pcap file with
/// wall-clock timestamps, and the capture proves the fallback: the kernel's SYN carries
/// MP_CAPABLE, our SYN-ACK carries no MPTCP option, and from then on the kernel sends
/// none either (RFC 8684 §3.1).
#[test]
fn pcap_records_every_packet_and_shows_the_mptcp_fallback() {
    use mptcp_proto::wire::IpTcpRepr;
    use mptcp_proto::wire::mptcp::MptcpOption;
    use pcap_file::pcap::PcapReader;

    if !require_root("pcap_records_every_packet_and_shows_the_mptcp_fallback") {
        return;
    }
    let ns = Netns::new("pc");
    let dir = std::env::temp_dir().join(format!("mptcp-tun-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("fallback.pcap");
    let wall_start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");
    let stack = start_stack(&ns, Some(path.clone()));
    let listener = stack.bind(SocketAddr::new(OUR_ADDR, 5006)).expect("bind");
    let ns_ref = &ns;
    let (ours, kernel) = std::thread::scope(|s| {
        let k = s.spawn(move || kernel_connect(ns_ref, SocketAddr::new(OUR_ADDR, 5006), true));
        let (ours, _) = listener.accept().expect("accept");
        (
            ours,
            k.join().expect("kernel thread").expect("kernel connect"),
        )
    });
    full_duplex("pcap", ours, kernel, MB);
    drop(listener);
    // Dropping the last handle stops the loop, which flushes the file.
    drop(stack);
    let wall_end = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970");

    let mut reader =
        PcapReader::new(std::fs::File::open(&path).expect("pcap exists")).expect("pcap header");
    assert_eq!(reader.header().datalink, pcap_file::DataLink::RAW);
    let mut from_kernel = Vec::new();
    let mut from_us = Vec::new();
    let (mut bytes_from_kernel, mut bytes_from_us) = (0usize, 0usize);
    while let Some(packet) = reader.next_packet() {
        let packet = packet.expect("valid record");
        assert!(packet.timestamp >= wall_start - Duration::from_secs(1));
        assert!(packet.timestamp <= wall_end + Duration::from_secs(1));
        let repr = match IpTcpRepr::parse(&packet.data, true) {
            Ok(repr) => repr,
            // The kernel's own IPv6 chatter on the link (router solicitations, MLD).
            Err(mptcp_proto::wire::PacketError::NotTcp(58)) => continue,
            Err(e) => panic!("captured packet is not valid IP/TCP: {e}"),
        };
        let has_mptcp = !repr.tcp.options.mptcp.is_empty();
        let capable = repr
            .tcp
            .options
            .mptcp
            .iter()
            .any(|o| matches!(o, MptcpOption::MpCapable(_)));
        if repr.ip.src_addr() == OUR_ADDR {
            bytes_from_us += repr.tcp.payload.len();
            from_us.push((repr.tcp.flags, has_mptcp));
        } else {
            assert_eq!(repr.ip.src_addr(), PEER_ADDR);
            bytes_from_kernel += repr.tcp.payload.len();
            from_kernel.push((repr.tcp.flags, has_mptcp, capable));
        }
    }
    std::fs::remove_dir_all(&dir).expect("cleanup");
    // Every payload byte of both directions was captured (no retransmissions expected
    // on a loss-free local path, but allow them).
    assert!(
        bytes_from_us >= MB,
        "captured {bytes_from_us} bytes from us"
    );
    assert!(
        bytes_from_kernel >= MB,
        "captured {bytes_from_kernel} bytes from the kernel"
    );
    let (syn_flags, _, syn_capable) = from_kernel[0];
    assert!(
        syn_flags.syn() && !syn_flags.ack(),
        "first kernel packet is its SYN"
    );
    assert!(syn_capable, "the kernel's MPTCP SYN carries MP_CAPABLE");
    let (synack_flags, synack_mptcp) = from_us[0];
    assert!(
        synack_flags.syn() && synack_flags.ack(),
        "our first packet is the SYN-ACK"
    );
    assert!(!synack_mptcp, "our SYN-ACK carries no MPTCP option");
    assert!(
        from_us.iter().all(|&(_, m)| !m),
        "we never send MPTCP options"
    );
    assert!(
        from_kernel[1..].iter().all(|&(_, m, _)| !m),
        "after the plain SYN-ACK the kernel has fallen back to TCP"
    );
    // Both FINs are in the capture.
    assert!(from_us.iter().any(|(f, _)| f.fin()));
    assert!(from_kernel.iter().any(|(f, _, _)| f.fin()));
}

/// The TUN device and its route exist while the stack runs and are gone after the last
/// handle is dropped.
#[test]
fn dropping_the_stack_removes_device_and_route() {
    if !require_root("dropping_the_stack_removes_device_and_route") {
        return;
    }
    let ns = Netns::new("dr");
    let stack = start_stack(&ns, None);
    assert_eq!(stack.device_name(), "mptcp0");
    let route = |ns: &Netns| {
        let out = std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.ours,
                "ip",
                "route",
                "show",
                "10.77.1.2/32",
            ])
            .output()
            .expect("ip route");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let link = |ns: &Netns| {
        let out = std::process::Command::new("ip")
            .args([
                "netns", "exec", &ns.ours, "ip", "-o", "link", "show", "mptcp0",
            ])
            .output()
            .expect("ip link");
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    };
    assert_eq!(route(&ns), "10.77.1.2 dev mptcp0 scope link");
    let shown = link(&ns).expect("mptcp0 exists while the stack runs");
    assert!(shown.contains("mtu 1500 "), "{shown}");
    assert!(
        shown.contains("state UNKNOWN") || shown.contains(",UP"),
        "{shown}"
    );
    assert!(shown.contains("qlen 5000"), "{shown}");
    drop(stack);
    assert_eq!(route(&ns), "");
    assert_eq!(link(&ns), None);
}

/// SYNs into a black hole: with one SYN retry and a 100 ms initial RTO, connect gives
/// up with TimedOut. (10.99.1.77 answers no ARP, so the kernel forwards nothing.)
#[test]
fn connect_into_a_black_hole_times_out() {
    if !require_root("connect_into_a_black_hole_times_out") {
        return;
    }
    let ns = Netns::new("to");
    let stack = ns.in_ours(|| {
        Stack::builder()
            .address(OUR_ADDR)
            .tcp_config(mptcp_tun::TcpConfig {
                max_syn_retries: 1,
                initial_rto: mptcp_proto::Duration::from_millis(100),
                ..mptcp_tun::TcpConfig::default()
            })
            .build()
            .expect("stack starts")
    });
    let start = Instant::now();
    let err = stack
        .connect("10.99.1.77:80".parse().expect("addr"))
        .expect_err("nobody answers");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    // SYN at 0, retry at 100 ms, give up at 300 ms (backoff doubles the RTO).
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    // A caller-side timeout also reports TimedOut.
    let err = MptcpStream::connect_timeout(
        &stack,
        "10.99.1.78:80".parse().expect("addr"),
        Duration::from_millis(50),
    )
    .expect_err("nobody answers");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
}

/// A stream dropped with unread data still closes, and the endpoint frees it once
/// the kernel peer has closed too and TIME-WAIT (shortened here to 200 ms) is over.
#[test]
fn dropped_stream_with_unread_data_is_freed() {
    if !require_root("dropped_stream_with_unread_data_is_freed") {
        return;
    }
    let ns = Netns::new("fr");
    let stack = ns.in_ours(|| {
        Stack::builder()
            .address(OUR_ADDR)
            .tcp_config(mptcp_tun::TcpConfig {
                time_wait: mptcp_proto::Duration::from_millis(200),
                ..mptcp_tun::TcpConfig::default()
            })
            .build()
            .expect("stack starts")
    });
    let listener = kernel_listen(&ns, SocketAddr::new(PEER_ADDR, 5007), false);
    let ours = stack
        .connect(SocketAddr::new(PEER_ADDR, 5007))
        .expect("connect");
    let (mut kernel, _) = listener.accept().expect("kernel accept");
    kernel.write_all(&[7u8; 100_000]).expect("kernel write");
    // Let some of it arrive, unread, then drop our side.
    std::thread::sleep(Duration::from_millis(100));
    drop(ours);
    // The kernel sees our FIN as end of stream.
    let mut rest = Vec::new();
    kernel.read_to_end(&mut rest).expect("kernel read");
    assert!(rest.is_empty());
    drop(kernel);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stack.connection_count() > 0 {
        assert!(Instant::now() < deadline, "connection never freed");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The async listener with a kernel client: accept, echo 1 MB back, EOF.
#[test]
fn async_listener_echoes_for_a_kernel_client() {
    if !require_root("async_listener_echoes_for_a_kernel_client") {
        return;
    }
    let ns = Netns::new("al");
    let stack = start_stack(&ns, None);
    let listener = stack
        .bind_async(SocketAddr::new(OUR_ADDR, 5008))
        .expect("async bind");
    assert_eq!(
        listener.local_addr().expect("addr"),
        SocketAddr::new(OUR_ADDR, 5008)
    );
    let ns_ref = &ns;
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("tokio runtime");
    std::thread::scope(|s| {
        let client = s.spawn(move || {
            let k = kernel_connect(ns_ref, SocketAddr::new(OUR_ADDR, 5008), false)
                .expect("kernel connect");
            let rx = k.try_clone().expect("clone");
            let reader = std::thread::spawn(move || recv_stream(&rx));
            let sent = send_stream(&k, MB, 11, || {
                k.shutdown(Shutdown::Write).expect("shutdown")
            });
            (sent, reader.join().expect("reader"))
        });
        rt.block_on(async {
            use tokio::io::AsyncWriteExt;
            let (stream, peer) = listener.accept().await.expect("async accept");
            assert_eq!(peer.ip(), PEER_ADDR);
            let (mut rd, mut wr) = tokio::io::split(stream);
            let n = tokio::io::copy(&mut rd, &mut wr).await.expect("echo");
            assert_eq!(n, MB as u64);
            wr.shutdown().await.expect("shutdown");
        });
        let (sent, echoed) = client.join().expect("client");
        assert_eq!(echoed, sent);
    });
}

/// IPv6 end to end: a /128 route into the TUN, forwarding to the veth, and a kernel
/// client sending to our listener while we send back, 16 MB each way.
#[test]
fn ipv6_kernel_client_to_our_listener() {
    use netns::{OUR_ADDR6, PEER_ADDR6};
    if !require_root("ipv6_kernel_client_to_our_listener") {
        return;
    }
    let ns = Netns::new("v6");
    let stack = ns.in_ours(|| {
        Stack::builder()
            .address(OUR_ADDR)
            .address(OUR_ADDR6)
            .build()
            .expect("stack starts")
    });
    let listener = stack.bind(SocketAddr::new(OUR_ADDR6, 5009)).expect("bind");
    let ns_ref = &ns;
    let (ours, kernel) = std::thread::scope(|s| {
        let k = s.spawn(move || {
            ns_ref.in_peer(|| {
                let sock = Socket::new(Domain::IPV6, Type::STREAM, Some(Protocol::TCP))
                    .expect("kernel socket");
                sock.connect_timeout(
                    &SocketAddr::new(OUR_ADDR6, 5009).into(),
                    Duration::from_secs(10),
                )
                .expect("kernel connect");
                TcpStream::from(sock)
            })
        });
        let (ours, peer) = listener.accept().expect("accept");
        assert_eq!(peer.ip(), PEER_ADDR6);
        (ours, k.join().expect("kernel thread"))
    });
    // IPv6 headers are 20 bytes longer: the MSS accounts for them.
    assert_eq!(ours.stats().expect("stats").send_mss, 1500 - 60);
    full_duplex("v6", ours, kernel, 16 * MB);
}

/// Without CAP_NET_ADMIN, building the stack fails with PermissionDenied and a message
/// that says what is missing. Capabilities are per thread: this drops CAP_NET_ADMIN
/// from the effective set of the namespace thread only.
#[test]
fn without_cap_net_admin_build_is_permission_denied_with_a_hint() {
    if !require_root("without_cap_net_admin_build_is_permission_denied_with_a_hint") {
        return;
    }
    let ns = Netns::new("pd");
    let err = ns.in_ours(|| {
        drop_effective_cap_net_admin();
        Stack::builder()
            .address(OUR_ADDR)
            .build()
            .expect_err("TUNSETIFF needs CAP_NET_ADMIN")
    });
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
    assert!(
        err.to_string()
            .contains("creating a TUN device needs root or CAP_NET_ADMIN"),
        "{err}"
    );
}

fn drop_effective_cap_net_admin() {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Clone, Copy, Default)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const VERSION_3: u32 = 0x2008_0522;
    const CAP_NET_ADMIN: u32 = 12;
    let mut header = Header {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [Data::default(); 2];
    // SAFETY: capget/capset with a v3 header and two data words, as the ABI requires;
    // pid 0 is the calling thread.
    unsafe {
        assert_eq!(
            libc::syscall(
                libc::SYS_capget,
                &mut header as *mut Header,
                data.as_mut_ptr()
            ),
            0
        );
        data[0].effective &= !(1 << CAP_NET_ADMIN);
        assert_eq!(
            libc::syscall(libc::SYS_capset, &mut header as *mut Header, data.as_ptr()),
            0
        );
    }
}

/// Backpressure both ways. Our writes stop (a write timeout expires) once our send
/// buffer and the kernel's receive buffer are full; a slow reader on our side with a
/// 64 KiB receive buffer closes the window, and every byte still arrives once it reads.
#[test]
fn backpressure_blocks_writers_and_slow_readers_get_everything() {
    if !require_root("backpressure_blocks_writers_and_slow_readers_get_everything") {
        return;
    }
    let ns = Netns::new("bp");
    let stack = ns.in_ours(|| {
        Stack::builder()
            .address(OUR_ADDR)
            .tcp_config(mptcp_tun::TcpConfig {
                recv_buffer: 64 * 1024,
                send_buffer: 64 * 1024,
                ..mptcp_tun::TcpConfig::default()
            })
            .build()
            .expect("stack starts")
    });
    let listener = kernel_listen(&ns, SocketAddr::new(PEER_ADDR, 5010), false);
    let mut ours = stack
        .connect(SocketAddr::new(PEER_ADDR, 5010))
        .expect("connect");
    let (kernel, _) = listener.accept().expect("kernel accept");

    // 1. The kernel does not read: our writes fill everything, then block.
    ours.set_write_timeout(Some(Duration::from_millis(300)));
    let chunk = [0x55u8; 16 * 1024];
    let mut written = 0usize;
    let err = loop {
        match ours.write(&chunk) {
            Ok(n) => written += n,
            Err(e) => break e,
        }
        assert!(written < 512 * MB, "writes never blocked");
    };
    assert_eq!(err.kind(), io::ErrorKind::WouldBlock, "{err}");
    assert!(
        written >= 64 * 1024,
        "at least our send buffer was accepted: {written}"
    );
    // Drain it on the kernel side; the stream stays intact.
    let mut kernel_rx = kernel.try_clone().expect("clone");
    let mut got = vec![0u8; written];
    kernel_rx
        .read_exact(&mut got)
        .expect("kernel reads what we wrote");
    assert!(got.iter().all(|&b| b == 0x55));
    ours.set_write_timeout(None);

    // 2. We read slowly: the kernel's 4 MB pass through a 64 KiB window.
    let size = 4 * MB;
    let sender = std::thread::spawn(move || {
        send_stream(&kernel, size, 42, || {
            kernel.shutdown(Shutdown::Write).expect("shutdown")
        })
    });
    std::thread::sleep(Duration::from_millis(200)); // let the window close
    let mut hash = Sha256::new();
    let mut len = 0;
    let mut buf = vec![0u8; 8 * 1024];
    loop {
        let n = ours.read(&mut buf).expect("read");
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        len += n;
        if len < 256 * 1024 {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    let sent = sender.join().expect("sender");
    assert_eq!(
        Digest32 {
            len,
            sha: hash.finalize().into()
        },
        sent
    );
}

/// A second stack cannot take the device name or an address of a running one.
#[test]
fn second_stack_on_same_device_or_address_is_addr_in_use() {
    if !require_root("second_stack_on_same_device_or_address_is_addr_in_use") {
        return;
    }
    let ns = Netns::new("du");
    let _first = start_stack(&ns, None);
    let same_name = ns.in_ours(|| {
        Stack::builder()
            .address("10.77.1.3".parse().expect("addr"))
            .build()
            .expect_err("mptcp0 is taken")
    });
    assert_eq!(same_name.kind(), io::ErrorKind::AddrInUse, "{same_name}");
    let same_addr = ns.in_ours(|| {
        Stack::builder()
            .tun_name("mptcp1")
            .address(OUR_ADDR)
            .build()
            .expect_err("10.77.1.2 is routed to mptcp0")
    });
    assert_eq!(same_addr.kind(), io::ErrorKind::AddrInUse, "{same_addr}");
    assert!(
        same_addr.to_string().contains("10.77.1.2/32"),
        "{same_addr}"
    );
}
