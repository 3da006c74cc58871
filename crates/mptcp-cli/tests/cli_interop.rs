//! The `mptcp` command against the Linux kernel's MPTCP, in network namespaces with two
//! paths (topology in crates/mptcp-tun/tests/netns/mod.rs). Needs root; skipped
//! otherwise, failed under CI.

#[path = "../../mptcp-tun/tests/netns/mod.rs"]
mod netns;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use netns::{Netns, our_addr, peer_addr, require_root};
use serde_json::Value;
use sha2::{Digest, Sha256};
use socket2::{Domain, Protocol, Socket, Type};

/// The command, started inside a namespace; killed on drop.
struct Cli(Child);

impl Cli {
    fn start(ns: &str, args: &[&str]) -> Cli {
        let child = Command::new("ip")
            .args(["netns", "exec", ns, env!("CARGO_BIN_EXE_mptcp")])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start mptcp");
        Cli(child)
    }

    fn json_lines(&mut self) -> impl Iterator<Item = Value> + use<> {
        let stdout = self.0.stdout.take().expect("stdout piped");
        BufReader::new(stdout).lines().map(|l| {
            let l = l.expect("stdout line");
            serde_json::from_str(&l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))
        })
    }
}

impl Drop for Cli {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// JSON lines until one with `"event": until` (inclusive).
fn events_until(lines: &mut impl Iterator<Item = Value>, until: &str) -> Vec<Value> {
    let mut seen = Vec::new();
    for v in lines.by_ref() {
        let done = v["event"] == until;
        seen.push(v);
        if done {
            return seen;
        }
    }
    panic!("the command ended before a {until:?} event: {seen:?}");
}

fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn hex_sha(data: &[u8]) -> String {
    Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn kernel_socket() -> Socket {
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP)).expect("MPTCP socket")
}

/// A kernel MPTCP listener on `port` of every address of the peer namespace.
fn kernel_listener(ns: &Netns, port: u16) -> TcpListener {
    ns.in_peer(move || {
        let s = kernel_socket();
        s.set_reuse_address(true).expect("SO_REUSEADDR");
        let any = SocketAddr::from(([0, 0, 0, 0], port));
        s.bind(&any.into()).expect("bind");
        s.listen(4).expect("listen");
        s.into()
    })
}

/// Sends `data` in 1 MiB chunks 30 ms apart (slowly enough for a join to carry some of
/// it), half-closes, and returns what the other side sent until it closed.
fn send_slowly_then_read_rest(s: &mut TcpStream, data: &[u8]) -> Vec<u8> {
    for chunk in data.chunks(1 << 20) {
        s.write_all(chunk).expect("write");
        std::thread::sleep(Duration::from_millis(30));
    }
    s.shutdown(Shutdown::Write).expect("shutdown");
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).expect("read to end");
    rest
}

fn from_ip(v: &Value, ip: std::net::IpAddr) -> bool {
    v["local"]
        .as_str()
        .is_some_and(|l| l.starts_with(&format!("{ip}:")))
}

/// `mptcp listen --announce --sink --json` with a kernel MPTCP client: the events are
/// listening, connected, subflow_up for the initial subflow and for the kernel's join
/// to the announced address, and closed with the byte count and SHA-256.
#[test]
fn listen_announce_sink_json_with_a_kernel_client() {
    if !require_root("listen_announce_sink_json_with_a_kernel_client") {
        return;
    }
    let ns = Netns::with_paths("cl", 2);
    let (a1, a2) = (our_addr(1, false), our_addr(2, false));
    let mut cli = Cli::start(
        &ns.ours,
        &[
            "listen",
            "10.77.1.2:7000",
            "--announce",
            "10.77.2.2",
            "--sink",
            "--json",
        ],
    );
    let mut lines = cli.json_lines();
    let first = events_until(&mut lines, "listening");
    let listening = first.last().expect("one event");
    assert_eq!(listening["address"], "10.77.1.2");
    assert_eq!(listening["port"], 7000);
    let data = payload(8 << 20);
    let sent = data.clone();
    let to = SocketAddr::new(a1, 7000);
    ns.in_peer(move || {
        let s = kernel_socket();
        s.connect_timeout(&to.into(), Duration::from_secs(10))
            .expect("connect");
        let mut s = TcpStream::from(s);
        let rest = send_slowly_then_read_rest(&mut s, &sent);
        assert!(rest.is_empty(), "the sink sends nothing");
    });
    let seen = events_until(&mut lines, "closed");
    eprintln!("{seen:#?}");
    let closed = seen.last().expect("closed");
    assert_eq!(closed["bytes_in"], data.len());
    assert_eq!(closed["bytes_out"], 0);
    assert_eq!(closed["sha256"], hex_sha(&data));
    assert!(
        seen.iter()
            .any(|v| v["event"] == "connected" && v["mptcp"] == true)
    );
    let ups: Vec<&Value> = seen.iter().filter(|v| v["event"] == "subflow_up").collect();
    assert!(ups.iter().any(|v| from_ip(v, a1)), "{ups:?}");
    assert!(
        ups.iter().any(|v| from_ip(v, a2)),
        "the kernel joined the announced {a2}: {ups:?}"
    );
}

/// `mptcp connect --local A --local B --sink --json` to a kernel MPTCP server that
/// sends 8 MB: a join from B, and closed with the SHA-256 of what the kernel sent.
#[test]
fn connect_two_locals_sink_json_with_a_kernel_server() {
    if !require_root("connect_two_locals_sink_json_with_a_kernel_server") {
        return;
    }
    let ns = Netns::with_paths("cc", 2);
    let a2 = our_addr(2, false);
    let listener = kernel_listener(&ns, 7001);
    let data = payload(8 << 20);
    let sent = data.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        send_slowly_then_read_rest(&mut s, &sent).len()
    });
    let peer = format!("{}:7001", peer_addr(1, false));
    let mut cli = Cli::start(
        &ns.ours,
        &[
            "connect",
            &peer,
            "--local",
            "10.77.1.2",
            "--local",
            "10.77.2.2",
            "--sink",
            "--json",
        ],
    );
    let mut lines = cli.json_lines();
    let seen = events_until(&mut lines, "closed");
    eprintln!("{seen:#?}");
    assert_eq!(server.join().expect("server"), 0);
    let closed = seen.last().expect("closed");
    assert_eq!(closed["bytes_in"], data.len());
    assert_eq!(closed["sha256"], hex_sha(&data));
    assert_eq!(closed["reason"], "normal");
    assert!(
        seen.iter()
            .any(|v| v["event"] == "subflow_up" && from_ip(v, a2)),
        "a join from {a2}: {seen:?}"
    );
    let status = cli.0.wait().expect("wait");
    assert!(status.success(), "{status}");
}

/// `mptcp connect --local A --backup B --scheduler --cc --path-manager` to a kernel
/// MPTCP server: the flags parse and reach the connection, whose join from B is a
/// backup subflow (MP_JOIN B flag); the data arrives intact.
#[test]
fn connect_with_backup_and_algorithm_flags_joins_b_as_backup() {
    if !require_root("connect_with_backup_and_algorithm_flags_joins_b_as_backup") {
        return;
    }
    let ns = Netns::with_paths("cb", 2);
    let a2 = our_addr(2, false);
    let listener = kernel_listener(&ns, 7002);
    let data = payload(4 << 20);
    let sent = data.clone();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        send_slowly_then_read_rest(&mut s, &sent).len()
    });
    let peer = format!("{}:7002", peer_addr(1, false));
    let mut cli = Cli::start(
        &ns.ours,
        &[
            "connect",
            &peer,
            "--local",
            "10.77.1.2",
            "--backup",
            "10.77.2.2",
            "--scheduler",
            "blest",
            "--cc",
            "olia",
            "--path-manager",
            "fullmesh",
            "--sink",
            "--json",
        ],
    );
    let mut lines = cli.json_lines();
    let seen = events_until(&mut lines, "closed");
    eprintln!("{seen:#?}");
    assert_eq!(server.join().expect("server"), 0);
    let closed = seen.last().expect("closed");
    assert_eq!(closed["bytes_in"], data.len());
    assert_eq!(closed["sha256"], hex_sha(&data));
    let join = seen
        .iter()
        .find(|v| v["event"] == "subflow_up" && from_ip(v, a2))
        .unwrap_or_else(|| panic!("a join from {a2}: {seen:?}"));
    assert_eq!(join["backup"], true, "{join}");
    assert!(
        seen.iter()
            .any(|v| v["event"] == "subflow_up" && !from_ip(v, a2) && v["backup"] == false),
        "the initial subflow is a regular one: {seen:?}"
    );
}
