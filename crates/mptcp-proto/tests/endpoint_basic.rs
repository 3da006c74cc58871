//! Endpoint behaviour through real IP packets: handshake, data both ways and close on
//! IPv4 and IPv6, RSTs for closed ports, listener rules (RFC 9293 §3.10.7.1-2),
//! backlog, abort, stale handles and errors.

mod common;

use std::net::SocketAddr;

use common::{Pair, Side, Stream, addr, packet, parse, pattern};
use mptcp_proto::endpoint::{DropReason, EndpointConfig, EndpointError, Event, SynCookies};
use mptcp_proto::tcp::{TcpEvent, TcpState};
use mptcp_proto::time::Duration;
use mptcp_proto::wire::tcp::TcpFlags;

/// Control events (no Readable/Writable) of one connection, in order.
fn control_events(events: &[Event]) -> Vec<Event> {
    events
        .iter()
        .copied()
        .filter(|e| {
            !matches!(
                e,
                Event::Connection(_, TcpEvent::Readable | TcpEvent::Writable)
            )
        })
        .collect()
}

/// Opens a connection, moves `up` client->server and `down` server->client, closes
/// both ends, and runs until both tables are empty (TIME-WAIT over).
fn exchange(client_ip: &str, server: SocketAddr, up_len: usize, down_len: usize) -> Pair {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let listener = pair.server.listen(server).expect("port free");
    let local = SocketAddr::new(client_ip.parse().expect("literal"), 0);
    let h = pair.client.connect(pair.now, local, server).expect("valid");
    let (up, down) = (pattern(1, up_len), pattern(2, down_len));
    let mut cs = Stream::new(Side::Client, h, up.clone());
    let mut ss: Option<Stream> = None;
    let finished = pair.run_until(Duration::from_secs(300), |p| {
        cs.pump(p);
        if ss.is_none()
            && let Some(a) = p.server.accept(listener)
        {
            ss = Some(Stream::new(Side::Server, a, down.clone()));
        }
        if let Some(s) = ss.as_mut() {
            s.pump(p);
        }
        p.client.connection_count() == 0 && p.server.connection_count() == 0
    });
    assert!(finished, "connections still open at {:?}", pair.now);
    let ss = ss.expect("accepted");
    assert!(cs.received == down, "server->client bytes differ");
    assert!(ss.received == up, "client->server bytes differ");

    assert_eq!(
        control_events(&pair.client_events),
        [
            Event::Connection(h, TcpEvent::Connected),
            Event::Connection(h, TcpEvent::PeerClosed),
            Event::Connection(h, TcpEvent::Closed),
        ]
    );
    let a = ss.handle;
    assert_eq!(
        control_events(&pair.server_events),
        [
            Event::Incoming(listener),
            Event::Connection(a, TcpEvent::Connected),
            Event::Connection(a, TcpEvent::PeerClosed),
            Event::Connection(a, TcpEvent::Closed),
        ]
    );
    // Nothing lost on a clean wire: what one side sent, the other received.
    let (c, s) = (pair.client.stats().clone(), pair.server.stats().clone());
    assert_eq!(c.packets_out, s.packets_in);
    assert_eq!(s.packets_out, c.packets_in);
    assert_eq!(c.bytes_out, s.bytes_in);
    assert_eq!((c.total_dropped(), s.total_dropped()), (0, 0));
    assert_eq!(
        (
            c.connections_opened,
            c.connections_accepted,
            c.connections_removed
        ),
        (1, 0, 1)
    );
    assert_eq!(
        (
            s.connections_opened,
            s.connections_accepted,
            s.connections_removed
        ),
        (0, 1, 1)
    );
    assert_eq!((c.resets_sent, s.resets_sent), (0, 0));
    assert_eq!(pair.client.poll_timeout(), None);
    assert_eq!(pair.server.poll_timeout(), None);
    // The connections are gone: their handles are stale.
    assert_eq!(
        pair.client.state(h),
        Err(EndpointError::UnknownConnection(h))
    );
    assert_eq!(
        pair.server.state(a),
        Err(EndpointError::UnknownConnection(a))
    );
    pair
}

#[test]
fn ipv4_handshake_data_both_ways_and_close_are_byte_exact() {
    let pair = exchange("10.0.0.1", addr("10.0.0.2:80"), 300_000, 120_000);
    assert!(pair.client.stats().packets_out > 200);
}

#[test]
fn ipv6_handshake_data_both_ways_and_close_are_byte_exact() {
    let pair = exchange("2001:db8::1", addr("[2001:db8::2]:443"), 200_000, 250_000);
    assert!(pair.server.stats().packets_out > 150);
}

#[test]
fn same_inputs_give_the_same_packets() {
    let run = || {
        let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
        pair.record = true;
        let l = pair.server.listen(addr("10.0.0.2:80")).expect("free");
        let h = pair
            .client
            .connect(pair.now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
            .expect("valid");
        let mut cs = Stream::new(Side::Client, h, pattern(7, 50_000));
        pair.run_until(Duration::from_secs(5), |p| {
            cs.pump(p);
            while let Some(a) = p.server.accept(l) {
                p.server.close(a).expect("live");
            }
            false
        });
        pair.wire
            .iter()
            .map(|w| (w.at, w.from, w.bytes.clone()))
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    assert!(a.len() > 30, "{} packets", a.len());
    assert!(
        a == b,
        "two identical runs put different packets on the wire"
    );
}

#[test]
fn syn_to_a_closed_port_is_reset_and_connect_fails() {
    for (local, remote) in [
        (addr("10.0.0.1:0"), addr("10.0.0.2:81")),
        (addr("[2001:db8::1]:0"), addr("[2001:db8::2]:81")),
    ] {
        let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
        pair.record = true;
        pair.server.listen(addr("10.0.0.2:80")).expect("free");
        let h = pair.client.connect(pair.now, local, remote).expect("valid");
        pair.run_idle(Duration::from_secs(10));

        assert_eq!(
            pair.client_events,
            [
                Event::Connection(h, TcpEvent::Reset),
                Event::Connection(h, TcpEvent::Closed),
            ]
        );
        assert_eq!(pair.wire.len(), 2);
        let syn = parse(&pair.wire[0].bytes);
        let rst = parse(&pair.wire[1].bytes);
        assert_eq!(syn.tcp.flags, TcpFlags::SYN);
        // RFC 9293 §3.10.7.1: <SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>.
        assert_eq!(rst.tcp.flags, TcpFlags::RST | TcpFlags::ACK);
        assert_eq!(rst.tcp.seq.0, 0);
        assert_eq!(rst.tcp.ack, syn.tcp.seq + 1);
        assert_eq!(
            (rst.tcp.src_port, rst.tcp.dst_port),
            (syn.tcp.dst_port, syn.tcp.src_port)
        );
        assert_eq!(
            (rst.ip.src_addr(), rst.ip.dst_addr()),
            (syn.ip.dst_addr(), syn.ip.src_addr())
        );

        let s = pair.server.stats();
        assert_eq!(s.dropped(DropReason::NoListener), 1);
        assert_eq!(s.total_dropped(), 1);
        assert_eq!((s.resets_sent, s.packets_out, s.packets_in), (1, 1, 1));
        assert_eq!(pair.server.connection_count(), 0);
        assert_eq!(pair.client.connection_count(), 0);
        assert_eq!(
            pair.client.write(h, b"x"),
            Err(EndpointError::UnknownConnection(h))
        );
    }
}

#[test]
fn a_reset_for_nothing_is_never_answered() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    pair.server.listen(addr("10.0.0.2:80")).expect("free");
    let now = pair.now;
    for (dst, flags) in [
        ("10.0.0.2:81", TcpFlags::RST),
        ("10.0.0.2:81", TcpFlags::RST | TcpFlags::ACK),
        ("10.0.0.2:80", TcpFlags::RST),
        ("10.0.0.2:80", TcpFlags::RST | TcpFlags::ACK),
    ] {
        let p = packet(addr("10.0.0.1:5000"), addr(dst), flags, 1, 2, b"");
        assert_eq!(
            pair.server.handle_packet(now, &p),
            Err(DropReason::StrayReset)
        );
    }
    let mut buf = [0u8; 1600];
    assert_eq!(pair.server.poll_transmit(now, &mut buf), None);
    assert_eq!(pair.server.stats().dropped(DropReason::StrayReset), 4);
    assert_eq!(pair.server.connection_count(), 0);
}

#[test]
fn listener_answers_an_ack_with_a_reset_and_ignores_bare_segments() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    pair.server.listen(addr("[2001:db8::2]:80")).expect("free");
    let now = pair.now;
    let (peer, us) = (addr("[2001:db8::1]:5000"), addr("[2001:db8::2]:80"));
    let mut buf = [0u8; 1600];

    // RFC 9293 §3.10.7.2: an ACK at a listener gets <SEQ=SEG.ACK><CTL=RST>.
    let ack = packet(peer, us, TcpFlags::ACK, 1000, 77_777, b"data");
    assert_eq!(
        pair.server.handle_packet(now, &ack),
        Err(DropReason::NoConnection)
    );
    let len = pair.server.poll_transmit(now, &mut buf).expect("a RST");
    {
        let rst = parse(&buf[..len]);
        assert_eq!(rst.tcp.flags, TcpFlags::RST);
        assert_eq!((rst.tcp.seq.0, rst.tcp.ack.0), (77_777, 0));
        assert_eq!((rst.tcp.src_port, rst.tcp.dst_port), (80, 5000));
    }
    assert_eq!(pair.server.poll_transmit(now, &mut buf), None);

    // Neither SYN, ACK nor RST: dropped without an answer.
    let fin = packet(peer, us, TcpFlags::FIN, 1000, 0, b"");
    assert_eq!(
        pair.server.handle_packet(now, &fin),
        Err(DropReason::NoSynAtListener)
    );
    // SYN with FIN: the engine refuses it, nothing is created.
    let synfin = packet(peer, us, TcpFlags::SYN | TcpFlags::FIN, 1000, 0, b"");
    assert_eq!(
        pair.server.handle_packet(now, &synfin),
        Err(DropReason::InvalidSyn)
    );
    assert_eq!(pair.server.poll_transmit(now, &mut buf), None);
    assert_eq!(pair.server.connection_count(), 0);

    // A plain SYN creates one connection and is answered with a SYN-ACK.
    let syn = packet(peer, us, TcpFlags::SYN, 1000, 0, b"");
    assert_eq!(pair.server.handle_packet(now, &syn), Ok(()));
    assert_eq!(pair.server.connection_count(), 1);
    let len = pair.server.poll_transmit(now, &mut buf).expect("SYN-ACK");
    let synack = parse(&buf[..len]);
    assert_eq!(synack.tcp.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.tcp.ack.0, 1001);
    // Its retransmission goes to the same connection.
    assert_eq!(pair.server.handle_packet(now, &syn), Ok(()));
    assert_eq!(pair.server.connection_count(), 1);
}

#[test]
fn packets_for_broadcast_multicast_or_foreign_addresses_are_dropped_silently() {
    let config = EndpointConfig {
        local_addrs: vec!["10.0.0.2".parse().expect("literal")],
        ..EndpointConfig::default()
    };
    let mut pair = Pair::new(EndpointConfig::default(), config);
    pair.server.listen(addr("0.0.0.0:80")).expect("free");
    let now = pair.now;
    let cases = [
        (
            "10.0.0.1:5000",
            "255.255.255.255:80",
            DropReason::InvalidAddress,
        ),
        ("10.0.0.1:5000", "224.0.0.1:80", DropReason::InvalidAddress),
        ("0.0.0.0:5000", "10.0.0.2:80", DropReason::InvalidAddress),
        ("10.0.0.1:5000", "10.0.0.3:80", DropReason::NotForUs),
    ];
    for (src, dst, reason) in cases {
        let syn = packet(addr(src), addr(dst), TcpFlags::SYN, 1, 0, b"");
        assert_eq!(
            pair.server.handle_packet(now, &syn),
            Err(reason),
            "{src} -> {dst}"
        );
    }
    let mut buf = [0u8; 1600];
    assert_eq!(pair.server.poll_transmit(now, &mut buf), None);
    assert_eq!(pair.server.connection_count(), 0);
    // The wildcard listener takes SYNs for the configured address.
    let syn = packet(
        addr("10.0.0.1:5000"),
        addr("10.0.0.2:80"),
        TcpFlags::SYN,
        1,
        0,
        b"",
    );
    assert_eq!(pair.server.handle_packet(now, &syn), Ok(()));
    assert_eq!(pair.server.connection_count(), 1);
}

#[test]
fn specific_listener_wins_over_the_wildcard_and_accepts_land_on_the_right_one() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let any = pair.server.listen(addr("0.0.0.0:80")).expect("free");
    let one = pair.server.listen(addr("10.0.0.2:80")).expect("free");
    let now = pair.now;
    let to_one = pair
        .client
        .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
        .expect("valid");
    let to_any = pair
        .client
        .connect(now, addr("10.0.0.1:0"), addr("10.0.0.9:80"))
        .expect("valid");
    pair.run_until(Duration::from_secs(1), |p| p.server_events.len() >= 2);
    let a_one = pair.server.accept(one).expect("ready");
    let a_any = pair.server.accept(any).expect("ready");
    assert_eq!(pair.server.accept(one), None);
    assert_eq!(pair.server.accept(any), None);
    let (t_one, t_any) = (
        pair.server.addresses(a_one).expect("live"),
        pair.server.addresses(a_any).expect("live"),
    );
    assert_eq!(t_one.local, addr("10.0.0.2:80"));
    assert_eq!(t_any.local, addr("10.0.0.9:80"));
    assert_eq!(
        t_one.remote,
        pair.client.addresses(to_one).expect("live").local
    );
    assert_eq!(
        t_any.remote,
        pair.client.addresses(to_any).expect("live").local
    );
    assert_eq!(pair.server.state(a_one), Ok(TcpState::Established));
}

#[test]
fn backlog_bounds_unaccepted_connections_and_the_dropped_syn_is_retried() {
    // Without SYN cookies (the default answers the third SYN with one instead:
    // `tests/endpoint_syncookies.rs`).
    let config = EndpointConfig {
        listen_backlog: 2,
        syn_cookies: SynCookies::Never,
        ..EndpointConfig::default()
    };
    let mut pair = Pair::new(EndpointConfig::default(), config);
    let l = pair.server.listen(addr("10.0.0.2:80")).expect("free");
    let now = pair.now;
    let handles: Vec<_> = (0..3)
        .map(|_| {
            pair.client
                .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
                .expect("valid")
        })
        .collect();
    // Before the first SYN retransmission (initial RTO 1 s).
    pair.run_until(Duration::from_millis(500), |_| false);
    assert_eq!(pair.server.stats().dropped(DropReason::BacklogFull), 1);
    assert_eq!(pair.server.connection_count(), 2);
    assert_eq!(pair.server.stats().connections_accepted, 2);
    let first = pair.server.accept(l).expect("ready");
    let second = pair.server.accept(l).expect("ready");
    assert_eq!(pair.server.accept(l), None);
    assert_eq!(
        pair.server.addresses(first).expect("live").remote,
        pair.client.addresses(handles[0]).expect("live").local
    );
    assert_eq!(
        pair.server.addresses(second).expect("live").remote,
        pair.client.addresses(handles[1]).expect("live").local
    );
    // The third client's retransmitted SYN now finds room.
    pair.run_until(Duration::from_secs(3), |p| {
        p.server_events
            .iter()
            .filter(|e| matches!(e, Event::Incoming(_)))
            .count()
            == 3
    });
    let third = pair.server.accept(l).expect("ready after retransmission");
    assert_eq!(
        pair.server.addresses(third).expect("live").remote,
        pair.client.addresses(handles[2]).expect("live").local
    );
    assert_eq!(pair.client.state(handles[2]), Ok(TcpState::Established));
    assert_eq!(pair.server.stats().dropped(DropReason::BacklogFull), 1);
}

#[test]
fn abort_sends_a_reset_the_peer_reports_it_and_both_handles_go_stale() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let l = pair.server.listen(addr("[2001:db8::2]:80")).expect("free");
    let h = pair
        .client
        .connect(pair.now, addr("[2001:db8::1]:0"), addr("[2001:db8::2]:80"))
        .expect("valid");
    pair.run_until(Duration::from_secs(1), |p| !p.server_events.is_empty());
    let a = pair.server.accept(l).expect("ready");
    pair.client.write(h, b"unsent or unread").expect("live");
    pair.client.abort(h).expect("live");
    pair.run_idle(Duration::from_secs(5));
    assert_eq!(
        control_events(&pair.server_events),
        [
            Event::Incoming(l),
            Event::Connection(a, TcpEvent::Connected),
            Event::Connection(a, TcpEvent::Reset),
            Event::Connection(a, TcpEvent::Closed),
        ]
    );
    assert_eq!(
        pair.client.state(h),
        Err(EndpointError::UnknownConnection(h))
    );
    assert_eq!(
        pair.server.state(a),
        Err(EndpointError::UnknownConnection(a))
    );
    assert_eq!(
        (
            pair.client.connection_count(),
            pair.server.connection_count()
        ),
        (0, 0)
    );
}

#[test]
fn a_stale_handle_is_rejected_even_after_its_slot_is_reused() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let now = pair.now;
    let old = pair
        .client
        .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
        .expect("valid");
    pair.client.abort(old).expect("live");
    let mut buf = [0u8; 1600];
    // SYN-SENT abort sends nothing; the connection is gone at once.
    assert_eq!(pair.client.poll_transmit(now, &mut buf), None);
    assert_eq!(pair.client.connection_count(), 0);
    let new = pair
        .client
        .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
        .expect("valid");
    assert_ne!(old, new);
    let stale = Err(EndpointError::UnknownConnection(old));
    assert_eq!(pair.client.write(old, b"x"), stale);
    assert_eq!(pair.client.read(old, &mut buf), stale);
    assert_eq!(pair.client.close(old), stale.map(|_: usize| ()));
    assert_eq!(pair.client.abort(old), stale.map(|_: usize| ()));
    assert_eq!(
        pair.client.state(old),
        Err(EndpointError::UnknownConnection(old))
    );
    assert!(pair.client.conn_stats(old).is_err());
    assert!(pair.client.addresses(old).is_err());
    assert_eq!(pair.client.state(new), Ok(TcpState::SynSent));
    assert_eq!(pair.client.write(new, b"x"), Ok(1));
}

#[test]
fn address_and_port_errors_name_the_offender() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let now = pair.now;
    let l = pair.server.listen(addr("10.0.0.2:80")).expect("free");
    assert_eq!(
        pair.server.listen(addr("10.0.0.2:80")),
        Err(EndpointError::AddrInUse(addr("10.0.0.2:80")))
    );
    assert_eq!(
        pair.server.listen(addr("10.0.0.2:0")),
        Err(EndpointError::ListenPortZero(addr("10.0.0.2:0")))
    );
    pair.server.close_listener(l).expect("live");
    assert_eq!(
        pair.server.close_listener(l),
        Err(EndpointError::UnknownListener(l))
    );
    assert_eq!(pair.server.accept(l), None);
    let again = pair.server.listen(addr("10.0.0.2:80")).expect("free again");
    assert_ne!(again, l);

    let c = &mut pair.client;
    assert_eq!(
        c.connect(now, addr("10.0.0.1:0"), addr("[2001:db8::2]:80")),
        Err(EndpointError::AddressFamilyMismatch {
            local: addr("10.0.0.1:0"),
            remote: addr("[2001:db8::2]:80")
        })
    );
    assert_eq!(
        c.connect(now, addr("0.0.0.0:0"), addr("10.0.0.2:80")),
        Err(EndpointError::InvalidLocal(addr("0.0.0.0:0")))
    );
    assert_eq!(
        c.connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:0")),
        Err(EndpointError::InvalidRemote(addr("10.0.0.2:0")))
    );
    c.connect(now, addr("10.0.0.1:4000"), addr("10.0.0.2:80"))
        .expect("free");
    assert_eq!(
        c.connect(now, addr("10.0.0.1:4000"), addr("10.0.0.2:80")),
        Err(EndpointError::TupleInUse {
            local: addr("10.0.0.1:4000"),
            remote: addr("10.0.0.2:80")
        })
    );
    // Same local port towards another peer is a different 4-tuple.
    c.connect(now, addr("10.0.0.1:4000"), addr("10.0.0.3:80"))
        .expect("distinct tuple");
}

#[test]
fn ephemeral_ports_are_deterministic_distinct_and_in_range() {
    let ports = || {
        let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
        let now = pair.now;
        (0..20)
            .map(|_| {
                let h = pair
                    .client
                    .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
                    .expect("free");
                pair.client.addresses(h).expect("live").local.port()
            })
            .collect::<Vec<_>>()
    };
    let a = ports();
    assert_eq!(a, ports());
    let mut sorted = a.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(sorted.len(), 20);
    assert!(a.iter().all(|&p| p >= 49_152));
}

#[test]
fn closing_a_listener_resets_its_unaccepted_connections() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let l = pair.server.listen(addr("10.0.0.2:80")).expect("free");
    let h = pair
        .client
        .connect(pair.now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
        .expect("valid");
    pair.run_until(Duration::from_secs(1), |p| !p.server_events.is_empty());
    assert_eq!(pair.server.connection_count(), 1);
    pair.server.close_listener(l).expect("live");
    pair.run_idle(Duration::from_secs(5));
    assert_eq!(pair.server.connection_count(), 0);
    assert_eq!(
        control_events(&pair.client_events),
        [
            Event::Connection(h, TcpEvent::Connected),
            Event::Connection(h, TcpEvent::Reset),
            Event::Connection(h, TcpEvent::Closed),
        ]
    );
}
