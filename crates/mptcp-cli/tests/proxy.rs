//! `mptcp proxy` end to end, in network namespaces (topology in topo/mod.rs):
//! curl (or test clients) -> SOCKS5 / forward -> proxy client on our stack (TUN) ->
//! two paths -> proxy server on our stack (or kernel MPTCP) -> kernel TCP -> target.
//!
//! Needs root; skipped with a message otherwise, failed under CI. Numbers (goodput,
//! peak RSS, per-path bytes) are printed: run with `--nocapture`.

mod topo;

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use mptcp_testnet::stream::send_stream;
use sha2::{Digest, Sha256};
use topo::{Events, TARGET_IP, TARGET_NAME, Topology, mptcp_bin, require_root};

const MB: usize = 1 << 20;
const SERVER: &str = "10.88.1.1:7000";

/// Writes `size` seeded pseudo-random bytes to `path`; returns their SHA-256 (hex).
fn make_file(path: &Path, size: usize, seed: u64) -> String {
    let mut f = std::io::BufWriter::new(std::fs::File::create(path).expect("create file"));
    let written = send_stream(&mut f, size, seed, || ());
    f.flush().expect("flush");
    written.sha_hex()
}

/// Serves `size` seeded bytes as `/<name>` from the target's HTTP server; returns
/// their SHA-256 (hex).
fn serve_file(topo: &mut Topology, name: &str, size: usize, seed: u64) -> String {
    let www = topo.dir.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let sha = make_file(&www.join(name), size, seed);
    http_server(topo, &www);
    sha
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn sha_file(path: &Path) -> (usize, String) {
    let data = std::fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    (data.len(), hex(&Sha256::digest(&data)))
}

fn rx_bytes(topo: &Topology, ns: &str, dev: &str) -> u64 {
    let out = Command::new("ip")
        .args(["netns", "exec", ns, "cat"])
        .arg(format!("/sys/class/net/{dev}/statistics/rx_bytes"))
        .output()
        .expect("read counters");
    let _ = topo;
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("rx_bytes")
}

/// Starts `python3 -m http.server` in the target namespace serving `dir` on :8000.
fn http_server(topo: &mut Topology, dir: &Path) {
    let t = topo.t.clone();
    let cmd = format!(
        "exec python3 -m http.server 8000 --bind {TARGET_IP} --directory {} 2>/dev/null",
        dir.display()
    );
    topo.spawn(&t, &["sh", "-c", &cmd], false);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Command::new("ip")
            .args(["netns", "exec", &t, "curl", "-sf", "-o", "/dev/null"])
            .arg(format!("http://{TARGET_IP}:8000/"))
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            return;
        }
        assert!(Instant::now() < deadline, "the HTTP server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Starts `mptcp proxy ARGS --json --stats-interval 0.25` in `ns`; waits until it
/// listens.
fn proxy(topo: &mut Topology, ns: &str, args: &[&str]) -> Events {
    let mut full = vec![mptcp_bin(), "proxy"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["--json", "--stats-interval", "0.25"]);
    let ns = ns.to_owned();
    let (pid, out) = topo.spawn(&ns, &full, true);
    let mut events = Events::new(pid, out.expect("stdout piped"));
    events.wait_event("listening", Duration::from_secs(20));
    events
}

fn server_on_stack(topo: &mut Topology, extra: &[&str]) -> Events {
    let s = topo.s.clone();
    let mut args = vec!["server", SERVER, "--announce", "10.88.2.1"];
    args.extend_from_slice(extra);
    proxy(topo, &s, &args)
}

fn client_on_stack(topo: &mut Topology, front: &[&str], server: &str) -> Events {
    client_on_stack_with(topo, front, server, &[])
}

fn client_on_stack_with(
    topo: &mut Topology,
    front: &[&str],
    server: &str,
    extra: &[&str],
) -> Events {
    let c = topo.c.clone();
    let mut args = vec!["client"];
    args.extend_from_slice(front);
    args.extend_from_slice(extra);
    args.extend_from_slice(&[
        "--server",
        server,
        "--local",
        "10.77.1.2",
        "--local",
        "10.77.2.2",
    ]);
    proxy(topo, &c, &args)
}

/// curl in the client namespace; returns the elapsed time.
fn curl(topo: &Topology, args: &[&str], out: &Path) -> Duration {
    let start = Instant::now();
    let status = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.c,
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "600",
        ])
        // A stalled transfer fails in 20 s instead of waiting for the idle timeout.
        .args(["--speed-time", "20", "--speed-limit", "1000"])
        .args(args)
        .arg("-o")
        .arg(out)
        .status()
        .expect("run curl");
    assert!(status.success(), "curl {args:?} failed: {status}");
    start.elapsed()
}

fn report(label: &str, bytes: usize, elapsed: Duration) {
    eprintln!(
        "GOODPUT {label}: {} MB in {:.2} s = {:.0} Mbit/s",
        bytes / MB,
        elapsed.as_secs_f64(),
        bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e6
    );
}

/// Payload bytes the client's subflows received, summed per local address (path 1:
/// 10.77.1.2, path 2: 10.77.2.2), from a `closed` event. The full mesh has up to four
/// subflows: each local address to the server's address and to the announced one.
fn received_per_local(closed: &serde_json::Value) -> (u64, u64) {
    let mut sums = (0, 0);
    for p in closed["paths"]
        .as_array()
        .expect("per-path bytes in the closed event")
    {
        let bytes = p["bytes_received"].as_u64().expect("bytes_received");
        let local = p["local"].as_str().expect("local");
        if local.starts_with("10.77.1.2:") {
            sums.0 += bytes;
        } else if local.starts_with("10.77.2.2:") {
            sums.1 += bytes;
        } else {
            panic!("subflow from an unexpected address: {p}");
        }
    }
    sums
}

/// Per-path bytes the client host received (the download direction).
fn path_rx(topo: &Topology) -> (u64, u64) {
    (rx_bytes(topo, &topo.c, "c1"), rx_bytes(topo, &topo.c, "c2"))
}

/// Stops both proxies; asserts their final counters show nothing open.
fn finish(
    label: &str,
    client: &mut Events,
    server: &mut Events,
) -> (serde_json::Value, serde_json::Value) {
    client.wait_idle(Duration::from_secs(30));
    server.wait_idle(Duration::from_secs(30));
    let (crss, srss) = (client.peak_rss_kib(), server.peak_rss_kib());
    let c = client.terminate();
    let s = server.terminate();
    assert_eq!(c["connections_active"], 0, "{label}: client {c}");
    assert_eq!(s["connections_active"], 0, "{label}: server {s}");
    eprintln!(
        "MEMORY {label}: peak RSS client {} MiB, server {} MiB",
        crss / 1024,
        srss / 1024
    );
    (c, s)
}

/// The download the issue asks for: `curl --socks5-hostname` through both stacks.
/// 100 MB (debug test profile: see the GOODPUT line for the time it takes).
#[test]
fn curl_socks5_hostname_downloads_100_mb() {
    if !require_root("curl_socks5_hostname_downloads_100_mb") {
        return;
    }
    const SIZE: usize = 100 * MB;
    let mut topo = Topology::new("s");
    let sha = serve_file(&mut topo, "big.bin", SIZE, 0x5eed);
    let mut server = server_on_stack(&mut topo, &[]);
    let mut client = client_on_stack(&mut topo, &["--socks", "127.0.0.1:1080"], SERVER);
    let before = path_rx(&topo);
    let out = topo.dir.join("out.bin");
    let elapsed = curl(
        &topo,
        &[
            "--socks5-hostname",
            "127.0.0.1:1080",
            &format!("http://{TARGET_NAME}:8000/big.bin"),
        ],
        &out,
    );
    assert_eq!(sha_file(&out), (SIZE, sha));
    report("curl --socks5-hostname via both stacks", SIZE, elapsed);
    let after = path_rx(&topo);
    let (p1, p2) = (after.0 - before.0, after.1 - before.1);
    eprintln!("PATHS client host received: path 1 {p1} bytes, path 2 {p2} bytes");
    // Every byte came over the paths (TCP/IP headers on top), and MPTCP striped it
    // over both. The paths are unlimited veths and with TUN offload the download takes
    // about half a second: the lowest-RTT scheduler may rightly give one path most of
    // it (seen: 92 % / 8 %), so the share asked of each is small; the aggregation
    // tests on rate-limited paths (mptcp_interop s02b, `mptcp bench --rate`) measure
    // the split.
    assert!(p1 + p2 >= SIZE as u64, "paths carried {p1} + {p2}");
    assert!(
        p1 > SIZE as u64 / 50 && p2 > SIZE as u64 / 50,
        "each path should carry at least 2%: {p1} / {p2}"
    );
    let opened = client.wait_event("closed", Duration::from_secs(30));
    assert_eq!(opened["target"], format!("{TARGET_NAME}:8000"));
    let down = opened["bytes_down"].as_u64().unwrap();
    assert!(
        down > SIZE as u64 && down < SIZE as u64 + 1024,
        "bytes_down {down}: the file plus HTTP headers"
    );
    // The subflows carried it all (reinjected ranges count twice).
    let (s1, s2) = received_per_local(&opened);
    assert!(s1 + s2 >= down, "subflows received {s1} + {s2}: {opened}");
    assert!(s1 > 0 && s2 > 0, "{opened}");
    let (c, s) = finish("curl socks", &mut client, &mut server);
    assert_eq!(
        (
            c["connections_total"].as_u64(),
            c["connections_failed"].as_u64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        (s["connections_total"].as_u64(), s["bytes_down"].as_u64()),
        (Some(1), Some(down))
    );
}

#[test]
fn curl_through_a_port_forward() {
    if !require_root("curl_through_a_port_forward") {
        return;
    }
    const SIZE: usize = 20 * MB;
    let mut topo = Topology::new("f");
    let sha = serve_file(&mut topo, "f.bin", SIZE, 0xf0f0);
    let mut server = server_on_stack(&mut topo, &[]);
    let mut client = client_on_stack(
        &mut topo,
        &[
            "--forward",
            "127.0.0.1:8080",
            "--to",
            &format!("{TARGET_NAME}:8000"),
        ],
        SERVER,
    );
    let out = topo.dir.join("out.bin");
    let elapsed = curl(&topo, &["http://127.0.0.1:8080/f.bin"], &out);
    assert_eq!(sha_file(&out), (SIZE, sha));
    report("curl via --forward", SIZE, elapsed);
    let (c, _) = finish("forward", &mut client, &mut server);
    assert_eq!(c["connections_failed"], 0);
}

/// The far side is the kernel's MPTCP (`mptcp proxy server --kernel-mptcp`), with a
/// second address announced by the kernel's path manager.
#[test]
fn kernel_mptcp_server_side() {
    if !require_root("kernel_mptcp_server_side") {
        return;
    }
    const SIZE: usize = 20 * MB;
    let mut topo = Topology::new("k");
    let sha = serve_file(&mut topo, "k.bin", SIZE, 0x6b6b);
    let s = topo.s.clone();
    topo.exec(
        &s,
        &[
            "ip",
            "mptcp",
            "endpoint",
            "add",
            "10.99.2.1",
            "dev",
            "s2",
            "signal",
        ],
    );
    let mut server = proxy(
        &mut topo,
        &s,
        &["server", "10.99.1.1:7000", "--kernel-mptcp"],
    );
    let mut client = client_on_stack(&mut topo, &["--socks", "127.0.0.1:1080"], "10.99.1.1:7000");
    let out = topo.dir.join("out.bin");
    let elapsed = curl(
        &topo,
        &[
            "--socks5-hostname",
            "127.0.0.1:1080",
            &format!("http://{TARGET_NAME}:8000/k.bin"),
        ],
        &out,
    );
    assert_eq!(sha_file(&out), (SIZE, sha));
    report(
        "curl via our client to a kernel-MPTCP server",
        SIZE,
        elapsed,
    );
    finish("kernel server", &mut client, &mut server);
}

/// A path goes down in the middle of a download; the download completes intact, and
/// both paths carried part of it (MPTCP, RFC 8684 §3.3.8: the other subflow takes over).
#[test]
fn a_path_dies_during_a_download() {
    if !require_root("a_path_dies_during_a_download") {
        return;
    }
    const SIZE: usize = 100 * MB;
    let mut topo = Topology::new("d");
    let sha = serve_file(&mut topo, "d.bin", SIZE, 0xdead);
    let mut server = server_on_stack(&mut topo, &[]);
    let mut client = client_on_stack(&mut topo, &["--socks", "127.0.0.1:1080"], SERVER);
    let out = topo.dir.join("out.bin");
    let start = Instant::now();
    let mut curl = Command::new("ip")
        .args([
            "netns",
            "exec",
            &topo.c,
            "curl",
            "-sS",
            "--fail",
            "--max-time",
            "600",
        ])
        .args(["--socks5-hostname", "127.0.0.1:1080"])
        .args(["--speed-time", "20", "--speed-limit", "1000"])
        .arg(format!("http://{TARGET_NAME}:8000/d.bin"))
        .arg("-o")
        .arg(&out)
        .spawn()
        .expect("curl");
    client.wait_event("open", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(200));
    let c = topo.c.clone();
    topo.exec(&c, &["ip", "link", "set", "c2", "down"]);
    let killed = start.elapsed();
    let status = curl.wait().expect("curl");
    let elapsed = start.elapsed();
    let closed = client.wait_event("closed", Duration::from_secs(30));
    assert!(
        status.success(),
        "curl: {status}; client's connection: {closed}"
    );
    assert_eq!(sha_file(&out), (SIZE, sha));
    report("download while path 2 dies", SIZE, elapsed);
    eprintln!(
        "PATHS path 2 down at {killed:?}; per subflow: {}",
        closed["paths"]
    );
    assert!(elapsed > killed, "the download ended before the path died");
    let (p1, p2) = received_per_local(&closed);
    assert!(
        p1 > 0 && p2 > 0,
        "both paths carried data before one died: {closed}"
    );
    finish("path dies", &mut client, &mut server);
}

/// A reader slower than the paths (curl --limit-rate): the proxies hold the rest back
/// (backpressure through both stacks to the target's socket) and stay small.
///
/// It once stalled for good in 4 of 5 runs: the reader's window filled, every byte
/// sent was acknowledged, and a lost window update left nothing to restart the
/// transfer (now the sender's connection-level zero-window probe does).
#[test]
fn a_slow_reader_is_backpressured_end_to_end() {
    if !require_root("a_slow_reader_is_backpressured_end_to_end") {
        return;
    }
    const SIZE: usize = 40 * MB;
    let mut topo = Topology::new("r");
    let sha = serve_file(&mut topo, "r.bin", SIZE, 0x5105);
    let mut server = server_on_stack(&mut topo, &[]);
    let mut client = client_on_stack(&mut topo, &["--socks", "127.0.0.1:1080"], SERVER);
    let out = topo.dir.join("out.bin");
    let elapsed = curl(
        &topo,
        &[
            "--socks5-hostname",
            "127.0.0.1:1080",
            "--limit-rate",
            "10M",
            "--speed-time",
            "20",
            "--speed-limit",
            "1000",
            &format!("http://{TARGET_NAME}:8000/r.bin"),
        ],
        &out,
    );
    assert_eq!(sha_file(&out), (SIZE, sha));
    report("slow reader (curl --limit-rate 10M)", SIZE, elapsed);
    let (crss, srss) = (client.peak_rss_kib(), server.peak_rss_kib());
    finish("slow reader", &mut client, &mut server);
    // 40 MB through a reader slower than the path: the proxies hold at most their
    // buffers (4 MiB stack buffers each way), not the file.
    assert!(
        crss < 64 * 1024 && srss < 64 * 1024,
        "peak RSS {crss} / {srss} KiB"
    );
}

/// Bad input through the whole chain: a refusing target, a name that does not
/// resolve, a malformed request, an unknown address type, a client that disappears
/// mid-request. Each gets its reply code; nothing stays open.
#[test]
fn bad_input_is_answered_and_nothing_leaks() {
    if !require_root("bad_input_is_answered_and_nothing_leaks") {
        return;
    }
    let mut topo = Topology::new("b");
    let mut server = server_on_stack(&mut topo, &[]);
    let mut client = client_on_stack(&mut topo, &["--socks", "127.0.0.1:1080"], SERVER);
    let answers = Topology::within(&topo.c, || {
        use std::io::{Read, Write};
        use std::net::TcpStream;
        let talk = |bytes: &[u8], then_close: bool| -> Vec<u8> {
            let mut s = TcpStream::connect("127.0.0.1:1080").expect("connect to SOCKS");
            s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
            s.write_all(bytes).unwrap();
            if then_close {
                return Vec::new();
            }
            let mut got = Vec::new();
            let _ = s.read_to_end(&mut got);
            got
        };
        let connect = |host: &[u8], port: u16| {
            let mut req = vec![5, 1, 0, 5, 1, 0, 3, host.len() as u8];
            req.extend_from_slice(host);
            req.extend_from_slice(&port.to_be_bytes());
            talk(&req, false)
        };
        let refused = connect(TARGET_NAME.as_bytes(), 9);
        let unresolvable = connect(b"nosuch.test", 80);
        let unknown_atyp = talk(&[5, 1, 0, 5, 1, 0, 7, 1, 2, 3], false);
        let not_socks = talk(b"GET / HTTP/1.0\r\n\r\n", false);
        let vanished = talk(&[5, 1, 0, 5, 1, 0, 3, 30, b'x'], true);
        [refused, unresolvable, unknown_atyp, not_socks, vanished]
    });
    let reply = |code: u8| vec![5, 0, 5, code, 0, 1, 0, 0, 0, 0, 0, 0];
    assert_eq!(answers[0], reply(5), "refused target");
    assert_eq!(answers[1], reply(4), "unresolvable name");
    assert_eq!(answers[2], reply(8), "unknown address type");
    assert_eq!(answers[3], b"", "not SOCKS");
    let (c, s) = finish("bad input", &mut client, &mut server);
    assert_eq!(
        (
            c["connections_total"].as_u64(),
            c["connections_failed"].as_u64()
        ),
        (Some(5), Some(5)),
        "{c}"
    );
    // Only the two well-formed requests reached the server.
    assert_eq!(
        (
            s["connections_total"].as_u64(),
            s["connections_failed"].as_u64()
        ),
        (Some(2), Some(2)),
        "{s}"
    );
    assert_eq!(client.count("failed"), 5);
}

/// A target in namespace `ns` on TARGET_IP:`port`: per connection, reads the request
/// to its end, answers with the request's SHA-256 and then `size` pattern bytes. Runs
/// on a thread of its own for the rest of the test process.
fn pattern_target(ns: &str, port: u16, size: usize) {
    let path = format!("/run/netns/{ns}");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).expect("open netns");
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let l = tokio::net::TcpListener::bind((TARGET_IP, port))
                .await
                .expect("bind target");
            ready_tx.send(()).expect("ready");
            loop {
                let Ok((mut s, _)) = l.accept().await else {
                    continue;
                };
                tokio::spawn(async move {
                    let mut req = Vec::new();
                    s.read_to_end(&mut req).await?;
                    s.write_all(&Sha256::digest(&req)).await?;
                    let chunk = pattern_chunk();
                    let mut left = size;
                    while left > 0 {
                        let n = left.min(chunk.len());
                        s.write_all(&chunk[..n]).await?;
                        left -= n;
                    }
                    s.shutdown().await
                });
            }
        });
    });
    ready_rx.recv().expect("target started");
}

fn pattern_chunk() -> Vec<u8> {
    (0..65536u32).map(|i| (i % 251) as u8).collect()
}

/// 200 connections at once through SOCKS5, both proxies on our stack, each sending
/// 16 KiB up and receiving 512 KiB: all complete, every byte checked, and each proxy's
/// peak RSS stays within connections x (2 x stack buffer + 2 x splice buffer) + 32 MiB.
#[test]
fn two_hundred_concurrent_connections() {
    if !require_root("two_hundred_concurrent_connections") {
        return;
    }
    const N: usize = 200;
    const UP: usize = 16 << 10;
    const DOWN: usize = 512 << 10;
    const STACK_BUFFER: usize = 256 << 10;
    const SPLICE_BUFFER: usize = 64 << 10;
    let mut topo = Topology::new("l");
    let t = topo.t.clone();
    pattern_target(&t, 8001, DOWN);
    let buffers = [
        "--stack-buffer",
        &STACK_BUFFER.to_string(),
        "--buffer",
        &SPLICE_BUFFER.to_string(),
    ]
    .map(str::to_owned);
    let buffers: Vec<&str> = buffers.iter().map(String::as_str).collect();
    let mut server = server_on_stack(&mut topo, &buffers);
    let mut client =
        client_on_stack_with(&mut topo, &["--socks", "127.0.0.1:1080"], SERVER, &buffers);
    let down_sha = {
        let chunk = pattern_chunk();
        let mut h = Sha256::new();
        let mut left = DOWN;
        while left > 0 {
            let n = left.min(chunk.len());
            h.update(&chunk[..n]);
            left -= n;
        }
        h.finalize().to_vec()
    };
    let elapsed = Topology::within(&topo.c, move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let start = Instant::now();
            let mut tasks = Vec::new();
            for i in 0..N {
                let down_sha = down_sha.clone();
                tasks.push(tokio::spawn(async move {
                    let mut s = tokio::net::TcpStream::connect("127.0.0.1:1080")
                        .await
                        .expect("connect to SOCKS");
                    let mut req = vec![5, 1, 0, 5, 1, 0, 3, TARGET_NAME.len() as u8];
                    req.extend_from_slice(TARGET_NAME.as_bytes());
                    req.extend_from_slice(&8001u16.to_be_bytes());
                    s.write_all(&req).await.unwrap();
                    let mut answer = [0u8; 12];
                    s.read_exact(&mut answer).await.unwrap();
                    assert_eq!(answer[..4], [5, 0, 5, 0], "connection {i}");
                    let request = vec![i as u8; UP];
                    s.write_all(&request).await.unwrap();
                    s.shutdown().await.unwrap();
                    let mut got = Vec::new();
                    s.read_to_end(&mut got).await.unwrap();
                    assert_eq!(got.len(), 32 + DOWN, "connection {i}");
                    assert_eq!(&got[..32], &Sha256::digest(&request)[..], "connection {i}");
                    assert_eq!(
                        Sha256::digest(&got[32..]).to_vec(),
                        down_sha,
                        "connection {i}"
                    );
                }));
            }
            for t in tasks {
                t.await.expect("client task");
            }
            start.elapsed()
        })
    });
    report(
        &format!("{N} concurrent connections ({} KiB each)", DOWN >> 10),
        N * DOWN,
        elapsed,
    );
    let (crss, srss) = (client.peak_rss_kib(), server.peak_rss_kib());
    let (c, s) = finish("200 connections", &mut client, &mut server);
    for (who, stats) in [("client", &c), ("server", &s)] {
        assert_eq!(
            stats["connections_total"].as_u64(),
            Some(N as u64),
            "{who}: {stats}"
        );
        assert_eq!(
            stats["connections_failed"].as_u64(),
            Some(0),
            "{who}: {stats}"
        );
        assert_eq!(
            stats["bytes_up"].as_u64(),
            Some((N * UP) as u64),
            "{who}: {stats}"
        );
        assert_eq!(
            stats["bytes_down"].as_u64(),
            Some((N * (32 + DOWN)) as u64),
            "{who}: {stats}"
        );
    }
    let bound_kib = (N * (2 * STACK_BUFFER + 2 * SPLICE_BUFFER) / 1024 + 32 * 1024) as u64;
    eprintln!(
        "LOAD {N} connections: peak concurrent {} (client), peak RSS client {} MiB, server {} MiB, bound {} MiB",
        c["connections_peak"],
        crss / 1024,
        srss / 1024,
        bound_kib / 1024
    );
    assert!(
        crss < bound_kib && srss < bound_kib,
        "peak RSS {crss} / {srss} KiB"
    );
}
