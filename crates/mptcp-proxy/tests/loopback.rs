//! The whole proxy (SOCKS5 front, client, server, target) in one process over kernel
//! TCP on loopback: no root, no TUN. The multipath leg is a plain kernel socket here;
//! tests/netns.rs runs the same over our stack on a TUN device.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mptcp_proxy::socks5::{self, Auth};
use mptcp_proxy::stats::Event;
use mptcp_proxy::target::TargetAddr;
use mptcp_proxy::transport::{KernelAcceptor, KernelDialer};
use mptcp_proxy::{Front, ProxyConfig, Reporter, Snapshot, SpliceConfig, run_client, run_server};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

struct Proxy {
    front: SocketAddr,
    client: Reporter,
    server: Reporter,
    events: Arc<Mutex<Vec<Event>>>,
}

fn recorder(events: &Arc<Mutex<Vec<Event>>>) -> Reporter {
    let events = Arc::clone(events);
    Reporter::new(move |e| events.lock().unwrap().push(e.clone()))
}

async fn start(front: Front, config: ProxyConfig) -> Proxy {
    let events = Arc::new(Mutex::new(Vec::new()));
    let acceptor = Arc::new(KernelAcceptor::bind("127.0.0.1:0".parse().unwrap(), false).unwrap());
    let server_addr = mptcp_proxy::transport::Acceptor::local_addr(&*acceptor).unwrap();
    let server = recorder(&events);
    tokio::spawn(run_server(acceptor, config.clone(), server.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let front_addr = listener.local_addr().unwrap();
    let client = recorder(&events);
    let dialer = Arc::new(KernelDialer {
        server: server_addr,
        mptcp: false,
    });
    tokio::spawn(run_client(listener, front, dialer, config, client.clone()));
    Proxy {
        front: front_addr,
        client,
        server,
        events,
    }
}

/// A target that sends `size` bytes of a pattern after reading the client's request
/// to its end, then closes: checks both directions and half-close.
async fn target_server(size: usize) -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            tokio::spawn(async move {
                let mut req = Vec::new();
                s.read_to_end(&mut req).await.unwrap();
                // Reply: the request's SHA-256, then `size` pattern bytes.
                s.write_all(&Sha256::digest(&req)).await.unwrap();
                let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
                let mut left = size;
                while left > 0 {
                    let n = left.min(chunk.len());
                    s.write_all(&chunk[..n]).await.unwrap();
                    left -= n;
                }
                s.shutdown().await.unwrap();
            });
        }
    });
    addr
}

fn pattern_sha(size: usize) -> Vec<u8> {
    let chunk: Vec<u8> = (0..65536u32).map(|i| (i % 251) as u8).collect();
    let mut h = Sha256::new();
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        h.update(&chunk[..n]);
        left -= n;
    }
    h.finalize().to_vec()
}

/// Greeting + CONNECT; returns the reply code.
async fn socks_connect(s: &mut TcpStream, target: &TargetAddr) -> u8 {
    s.write_all(&[5, 1, 0]).await.unwrap();
    let mut sel = [0u8; 2];
    s.read_exact(&mut sel).await.unwrap();
    assert_eq!(sel, [5, 0]);
    s.write_all(&socks5::client_connect_request(target))
        .await
        .unwrap();
    read_socks_reply(s).await
}

async fn read_socks_reply(s: &mut TcpStream) -> u8 {
    let mut head = [0u8; 4];
    s.read_exact(&mut head).await.unwrap();
    assert_eq!(head[0], 5);
    let rest = match head[3] {
        1 => 4 + 2,
        4 => 16 + 2,
        other => panic!("reply ATYP {other}"),
    };
    let mut addr = vec![0u8; rest];
    s.read_exact(&mut addr).await.unwrap();
    head[1]
}

/// One request/response through the proxy: sends `request`, half-closes, reads to end.
async fn exchange(s: &mut TcpStream, request: &[u8]) -> Vec<u8> {
    s.write_all(request).await.unwrap();
    s.shutdown().await.unwrap();
    let mut got = Vec::new();
    s.read_to_end(&mut got).await.unwrap();
    got
}

async fn wait_idle(p: &Proxy) -> (Snapshot, Snapshot) {
    for _ in 0..500 {
        let (c, s) = (p.client.counters.snapshot(), p.server.counters.snapshot());
        if c.connections_active == 0 && s.connections_active == 0 {
            return (c, s);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "connections leaked: client {:?}, server {:?}",
        p.client.counters.snapshot(),
        p.server.counters.snapshot()
    );
}

fn failures(p: &Proxy) -> Vec<(String, Option<u8>)> {
    p.events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Failed { stage, reply, .. } => Some((stage.to_string(), *reply)),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn socks_by_name_moves_both_directions_with_half_close() {
    let target = target_server(3 << 20).await;
    let p = start(Front::Socks(Auth::None), ProxyConfig::default()).await;
    let mut s = TcpStream::connect(p.front).await.unwrap();
    let code = socks_connect(
        &mut s,
        &TargetAddr::Domain("localhost".into(), target.port()),
    )
    .await;
    assert_eq!(code, 0);
    let request = vec![42u8; 100_000];
    let got = exchange(&mut s, &request).await;
    assert_eq!(got.len(), 32 + (3 << 20));
    assert_eq!(&got[..32], &Sha256::digest(&request)[..]);
    assert_eq!(Sha256::digest(&got[32..]).to_vec(), pattern_sha(3 << 20));
    let (c, s) = wait_idle(&p).await;
    assert_eq!((c.connections_total, c.connections_failed), (1, 0));
    assert_eq!((c.bytes_up, c.bytes_down), (100_000, 32 + (3 << 20)));
    assert_eq!((s.bytes_up, s.bytes_down), (100_000, 32 + (3 << 20)));
}

#[tokio::test]
async fn username_password_is_enforced() {
    let target = target_server(10).await;
    let auth = Auth::UserPass {
        user: b"u".to_vec(),
        password: b"pw".to_vec(),
    };
    let p = start(Front::Socks(auth), ProxyConfig::default()).await;
    for (pass, ok) in [(&b"pw"[..], true), (&b"no"[..], false)] {
        let mut s = TcpStream::connect(p.front).await.unwrap();
        s.write_all(&[5, 1, 2]).await.unwrap();
        let mut sel = [0u8; 2];
        s.read_exact(&mut sel).await.unwrap();
        assert_eq!(sel, [5, 2]);
        let mut msg = vec![1, 1, b'u', pass.len() as u8];
        msg.extend_from_slice(pass);
        s.write_all(&msg).await.unwrap();
        let mut status = [0u8; 2];
        s.read_exact(&mut status).await.unwrap();
        if ok {
            assert_eq!(status, [1, 0]);
            s.write_all(&socks5::client_connect_request(&TargetAddr::Ip(target)))
                .await
                .unwrap();
            assert_eq!(read_socks_reply(&mut s).await, 0);
            let got = exchange(&mut s, b"").await;
            assert_eq!(got.len(), 32 + 10);
        } else {
            assert_eq!(status, [1, 1]);
            let mut rest = Vec::new();
            s.read_to_end(&mut rest).await.unwrap();
            assert!(rest.is_empty());
        }
    }
    wait_idle(&p).await;
    assert_eq!(failures(&p), [("socks".to_string(), None)]);
}

#[tokio::test]
async fn refused_target_gets_reply_5_and_nothing_leaks() {
    // A port nobody listens on: bind, learn the port, close.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let p = start(Front::Socks(Auth::None), ProxyConfig::default()).await;
    let mut s = TcpStream::connect(p.front).await.unwrap();
    let code = socks_connect(
        &mut s,
        &TargetAddr::Ip(SocketAddr::from(([127, 0, 0, 1], port))),
    )
    .await;
    assert_eq!(code, 5);
    let mut rest = Vec::new();
    s.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    // A name that does not resolve: host unreachable.
    let mut s = TcpStream::connect(p.front).await.unwrap();
    let code = socks_connect(
        &mut s,
        &TargetAddr::Domain("no-such-host.invalid".into(), 80),
    )
    .await;
    assert_eq!(code, 4);
    let (c, s) = wait_idle(&p).await;
    assert_eq!((c.connections_failed, s.connections_failed), (2, 2));
    let mut f = failures(&p);
    f.sort();
    assert_eq!(
        f,
        [
            ("connect".to_string(), Some(4)),
            ("connect".to_string(), Some(4)),
            ("connect".to_string(), Some(5)),
            ("connect".to_string(), Some(5)),
        ]
    );
}

#[tokio::test]
async fn malformed_requests_get_the_right_answer_and_close() {
    let p = start(Front::Socks(Auth::None), ProxyConfig::default()).await;
    // (bytes sent, exact answer expected before the close)
    let cases: [(&[u8], &[u8]); 6] = [
        // Not SOCKS5 at all: closed without an answer.
        (b"GET / HTTP/1.1\r\n\r\n", b""),
        // SOCKS4 greeting.
        (&[4, 1, 0, 80, 127, 0, 0, 1, 0], b""),
        // No acceptable method (only GSSAPI offered).
        (&[5, 1, 1], &[5, 0xff]),
        // Unknown address type 0x05.
        (
            &[5, 1, 0, 5, 1, 0, 5, 1, 2, 3, 4, 0, 80],
            &[5, 0, 5, 8, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        // BIND.
        (
            &[5, 1, 0, 5, 2, 0, 1, 127, 0, 0, 1, 0, 80],
            &[5, 0, 5, 7, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
        // Empty domain name.
        (
            &[5, 1, 0, 5, 1, 0, 3, 0, 0, 80],
            &[5, 0, 5, 1, 0, 1, 0, 0, 0, 0, 0, 0],
        ),
    ];
    for (sent, expected) in cases {
        let mut s = TcpStream::connect(p.front).await.unwrap();
        s.write_all(sent).await.unwrap();
        let mut got = Vec::new();
        // The server closes; a reset (unread bytes at close) also ends the read.
        let _ = s.read_to_end(&mut got).await;
        assert_eq!(got, expected, "for {sent:02x?}");
    }
    let (c, s) = wait_idle(&p).await;
    assert_eq!((c.connections_total, c.connections_failed), (6, 6));
    // None reached the server.
    assert_eq!(s.connections_total, 0);
}

#[tokio::test]
async fn clients_vanishing_mid_request_are_cleaned_up() {
    let config = ProxyConfig {
        handshake_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let p = start(Front::Socks(Auth::None), config).await;
    // Half a greeting, then gone.
    let mut s = TcpStream::connect(p.front).await.unwrap();
    s.write_all(&[5, 2, 0]).await.unwrap();
    drop(s);
    // Half a request, then silent: the handshake timeout ends it.
    let mut silent = TcpStream::connect(p.front).await.unwrap();
    silent
        .write_all(&[5, 1, 0, 5, 1, 0, 3, 20, b'a'])
        .await
        .unwrap();
    let (c, _) = wait_idle(&p).await;
    assert_eq!((c.connections_total, c.connections_failed), (2, 2));
    let mut errors: Vec<String> = p
        .events
        .lock()
        .unwrap()
        .iter()
        .filter_map(|e| match e {
            Event::Failed { error, .. } => Some(error.clone()),
            _ => None,
        })
        .collect();
    errors.sort();
    assert_eq!(
        errors,
        [
            "no complete SOCKS request within 300ms",
            "the client closed mid-handshake (3 bytes of an unfinished message)"
        ]
    );
    drop(silent);
}

#[tokio::test]
async fn forward_mode_and_a_bad_header_at_the_server() {
    let target = target_server(1 << 20).await;
    let p = start(
        Front::Forward(TargetAddr::Ip(target)),
        ProxyConfig::default(),
    )
    .await;
    let mut s = TcpStream::connect(p.front).await.unwrap();
    let got = exchange(&mut s, b"ping").await;
    assert_eq!(&got[..32], &Sha256::digest(b"ping")[..]);
    assert_eq!(Sha256::digest(&got[32..]).to_vec(), pattern_sha(1 << 20));
    wait_idle(&p).await;
    assert_eq!(p.server.counters.snapshot().connections_failed, 0);
}

#[tokio::test]
async fn server_answers_garbage_headers_and_closes() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let acceptor = Arc::new(KernelAcceptor::bind("127.0.0.1:0".parse().unwrap(), false).unwrap());
    let addr = mptcp_proxy::transport::Acceptor::local_addr(&*acceptor).unwrap();
    let rep = recorder(&events);
    tokio::spawn(run_server(acceptor, ProxyConfig::default(), rep.clone()));
    for (sent, expected) in [
        (&b"\x05\x01\x00"[..], &[0x4d, 1, 1, 0][..]),
        (&[0x4d, 1, 0, 9, 0, 0], &[0x4d, 1, 8, 0]),
    ] {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(sent).await.unwrap();
        let mut got = Vec::new();
        let _ = s.read_to_end(&mut got).await;
        assert_eq!(got, expected);
    }
    // Half a header, then the client disappears.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(&[0x4d, 1, 0, 3, 20, b'a']).await.unwrap();
    drop(s);
    tokio::time::sleep(Duration::from_millis(50)).await;
    for _ in 0..500 {
        if rep.counters.snapshot().connections_active == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let snap = rep.counters.snapshot();
    assert_eq!(
        (
            snap.connections_total,
            snap.connections_active,
            snap.connections_failed
        ),
        (3, 0, 3)
    );
}

/// 200 connections at once, each 256 KiB down and 16 KiB up, with small splice
/// buffers: all complete, every byte checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_connections() {
    const N: usize = 200;
    const DOWN: usize = 256 << 10;
    let target = target_server(DOWN).await;
    let config = ProxyConfig {
        splice: SpliceConfig {
            buffer: 16 << 10,
            ..SpliceConfig::default()
        },
        ..ProxyConfig::default()
    };
    let p = start(Front::Socks(Auth::None), config).await;
    let expected = pattern_sha(DOWN);
    let mut tasks = Vec::new();
    for i in 0..N {
        let front = p.front;
        let expected = expected.clone();
        tasks.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(front).await.unwrap();
            assert_eq!(socks_connect(&mut s, &TargetAddr::Ip(target)).await, 0);
            let request = vec![i as u8; 16 << 10];
            let got = exchange(&mut s, &request).await;
            assert_eq!(&got[..32], &Sha256::digest(&request)[..], "connection {i}");
            assert_eq!(
                Sha256::digest(&got[32..]).to_vec(),
                expected,
                "connection {i}"
            );
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let (c, s) = wait_idle(&p).await;
    assert_eq!((c.connections_total, c.connections_failed), (N as u64, 0));
    assert_eq!(s.connections_total, N as u64);
    assert_eq!(c.bytes_down, (N * (32 + DOWN)) as u64);
    assert_eq!(c.bytes_up, (N * (16 << 10)) as u64);
    eprintln!(
        "LOAD loopback: peak {} concurrent at the client",
        c.connections_peak
    );
}
