//! Arbitrary input into `handle_packet`: never a panic, never new state unless the
//! packet is a valid SYN to a listener, never a RST in answer to a RST, and whatever
//! comes out is a valid packet.

mod common;

use std::net::{IpAddr, SocketAddr};

use common::{Pair, addr, packet};
use mptcp_proto::endpoint::{ConnHandle, EndpointConfig, Event};
use mptcp_proto::time::Duration;
use mptcp_proto::wire::IpTcpRepr;
use mptcp_proto::wire::tcp::TcpFlags;
use proptest::collection::vec;
use proptest::prelude::*;

const LISTEN_V4: &str = "10.0.0.2:80";
const LISTEN_V6: &str = "[2001:db8::2]:80";

/// A server with two listeners and one established connection (client
/// 10.0.0.1:40000), so input can hit a listener, a connection or nothing.
fn server_with_state() -> (Pair, ConnHandle) {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let l = pair.server.listen(addr(LISTEN_V4)).expect("free");
    pair.server.listen(addr(LISTEN_V6)).expect("free");
    pair.client
        .connect(pair.now, addr("10.0.0.1:40000"), addr(LISTEN_V4))
        .expect("valid");
    pair.run_until(Duration::from_secs(1), |p| {
        p.server_events.contains(&Event::Incoming(l))
    });
    let a = pair.server.accept(l).expect("handshake done");
    (pair, a)
}

/// Feeds `bytes` to the server and checks every invariant.
fn check(pair: &mut Pair, bytes: &[u8]) {
    let now = pair.now;
    let conns = pair.server.connection_count();
    let listeners = pair.server.listener_count();
    let resets = pair.server.stats().resets_sent;
    let result = pair.server.handle_packet(now, bytes);
    assert_eq!(pair.server.listener_count(), listeners);
    let parsed = IpTcpRepr::parse(bytes, true).ok();
    let created = pair.server.connection_count() - conns;
    if created > 0 {
        assert_eq!(created, 1);
        assert_eq!(result, Ok(()));
        let p = parsed.as_ref().expect("state only for a valid packet");
        let f = p.tcp.flags;
        assert!(f.syn() && !f.ack() && !f.rst() && !f.fin(), "flags {f:?}");
        let dst = SocketAddr::new(p.ip.dst_addr(), p.tcp.dst_port);
        assert!(dst == addr(LISTEN_V4) || dst == addr(LISTEN_V6), "to {dst}");
    }
    let mut buf = vec![0u8; 65_536];
    while let Some(len) = pair.server.poll_transmit(now, &mut buf) {
        IpTcpRepr::parse(&buf[..len], true).expect("emitted packets are valid");
    }
    if parsed.as_ref().is_some_and(|p| p.tcp.flags.rst()) {
        assert_eq!(
            pair.server.stats().resets_sent,
            resets,
            "RST answered a RST"
        );
    }
    while pair.server.poll_event().is_some() {}
    pair.server.handle_timeout(now + Duration::from_secs(1));
}

fn ip_strategy(v6: bool) -> BoxedStrategy<IpAddr> {
    let pick: Vec<&'static str> = if v6 {
        vec![
            "2001:db8::1",
            "2001:db8::2",
            "2001:db8::77",
            "ff02::1",
            "::",
        ]
    } else {
        vec![
            "10.0.0.1",
            "10.0.0.2",
            "10.0.0.77",
            "255.255.255.255",
            "224.0.0.1",
            "0.0.0.0",
        ]
    };
    proptest::sample::select(pick)
        .prop_map(|s| s.parse::<IpAddr>().expect("literal"))
        .boxed()
}

/// A well-formed packet (valid checksums) with arbitrary fields aimed at the server's
/// listeners and its connection, optionally with one byte changed afterwards.
fn structured() -> impl Strategy<Value = Vec<u8>> {
    any::<bool>()
        .prop_flat_map(|v6| (ip_strategy(v6), ip_strategy(v6)))
        .prop_flat_map(|(src, dst)| {
            (
                Just(src),
                Just(dst),
                prop_oneof![Just(40000u16), 1..=u16::MAX],
                prop_oneof![Just(80u16), 1..=u16::MAX],
                any::<u8>(),
                any::<u32>(),
                any::<u32>(),
                vec(any::<u8>(), 0..64),
                proptest::option::of((any::<prop::sample::Index>(), 1..=255u8)),
            )
        })
        .prop_map(
            |(src, dst, sport, dport, flags, seq, ack, payload, mutation)| {
                let mut bytes = packet(
                    SocketAddr::new(src, sport),
                    SocketAddr::new(dst, dport),
                    TcpFlags(flags),
                    seq,
                    ack,
                    &payload,
                );
                if let Some((index, xor)) = mutation {
                    let i = index.index(bytes.len());
                    bytes[i] ^= xor;
                }
                bytes
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic_nor_create_state(
        inputs in vec(vec(any::<u8>(), 0..1500), 1..8),
    ) {
        let (mut pair, _) = server_with_state();
        for bytes in &inputs {
            check(&mut pair, bytes);
        }
    }

    #[test]
    fn arbitrary_bytes_with_an_ip_version_nibble_never_panic(
        v6 in any::<bool>(),
        mut bytes in vec(any::<u8>(), 1..1500),
    ) {
        bytes[0] = if v6 { 0x60 | (bytes[0] & 0x0f) } else { 0x45 };
        let (mut pair, _) = server_with_state();
        check(&mut pair, &bytes);
    }

    #[test]
    fn well_formed_packets_with_arbitrary_fields_keep_the_invariants(
        inputs in vec(structured(), 1..16),
    ) {
        let (mut pair, _) = server_with_state();
        for bytes in &inputs {
            check(&mut pair, bytes);
        }
    }
}

#[test]
fn a_valid_syn_to_a_listener_creates_exactly_one_connection() {
    let (mut pair, _) = server_with_state();
    let before = pair.server.connection_count();
    let syn = packet(
        addr("[2001:db8::9]:1234"),
        addr(LISTEN_V6),
        TcpFlags::SYN,
        5,
        0,
        b"",
    );
    check(&mut pair, &syn);
    assert_eq!(pair.server.connection_count(), before + 1);
}
