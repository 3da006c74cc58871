//! Many connections through one endpoint: demultiplexing by 4-tuple under load, and
//! the round-robin fairness of `poll_transmit`.

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::{Pair, Side, Stream, addr, parse, pattern};
use mptcp_proto::endpoint::{EndpointConfig, Event};
use mptcp_proto::tcp::TcpEvent;
use mptcp_proto::time::Duration;

/// `n` clients on one endpoint, one listener on the other; each connection carries its
/// own pattern both ways, and everything closes.
fn many_connections(n: usize, client_ip: &str, server: SocketAddr) {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let listener = pair.server.listen(server).expect("free");
    let local = SocketAddr::new(client_ip.parse().expect("literal"), 0);
    let mut clients: Vec<Stream> = (0..n)
        .map(|i| {
            let h = pair.client.connect(pair.now, local, server).expect("free");
            Stream::new(Side::Client, h, pattern(i as u64, 5_000 + i * 997))
        })
        .collect();
    // Client port -> the index of its connection, so the server side knows what to
    // send and expect.
    let by_port: BTreeMap<u16, usize> = clients
        .iter()
        .enumerate()
        .map(|(i, s)| {
            (
                pair.client.addresses(s.handle).expect("live").local.port(),
                i,
            )
        })
        .collect();
    assert_eq!(by_port.len(), n, "ephemeral ports collide");
    let mut servers: BTreeMap<usize, Stream> = BTreeMap::new();
    let done = pair.run_until(Duration::from_secs(600), |p| {
        for c in clients.iter_mut() {
            c.pump(p);
        }
        while let Some(a) = p.server.accept(listener) {
            let port = p.server.addresses(a).expect("live").remote.port();
            let i = by_port[&port];
            servers.insert(
                i,
                Stream::new(
                    Side::Server,
                    a,
                    pattern(1_000 + i as u64, 3_000 + i * 1_231),
                ),
            );
        }
        for s in servers.values_mut() {
            s.pump(p);
        }
        p.client.connection_count() == 0 && p.server.connection_count() == 0
    });
    assert!(done, "connections left at {:?}", pair.now);
    assert_eq!(servers.len(), n);
    for (i, c) in clients.iter().enumerate() {
        let s = &servers[&i];
        assert!(
            s.received == c.data,
            "connection {i}: client->server bytes differ"
        );
        assert!(
            c.received == s.data,
            "connection {i}: server->client bytes differ"
        );
    }
    let incoming = pair
        .server_events
        .iter()
        .filter(|e| **e == Event::Incoming(listener))
        .count();
    assert_eq!(incoming, n);
    let closed = pair
        .client_events
        .iter()
        .filter(|e| matches!(e, Event::Connection(_, TcpEvent::Closed)))
        .count();
    assert_eq!(closed, n);
    let (c, s) = (pair.client.stats(), pair.server.stats());
    assert_eq!((c.total_dropped(), s.total_dropped()), (0, 0));
    assert_eq!(
        (c.connections_opened, s.connections_accepted),
        (n as u64, n as u64)
    );
    assert_eq!(
        (c.connections_removed, s.connections_removed),
        (n as u64, n as u64)
    );
    assert_eq!(c.packets_out, s.packets_in);
    assert_eq!(s.packets_out, c.packets_in);
}

#[test]
fn fifty_concurrent_ipv4_connections_to_one_listener_are_byte_exact() {
    many_connections(50, "10.0.0.1", addr("10.0.0.2:80"));
}

#[test]
fn twenty_concurrent_ipv6_connections_to_one_listener_are_byte_exact() {
    many_connections(20, "2001:db8::1", addr("[2001:db8::2]:8080"));
}

#[test]
fn connections_take_turns_in_poll_transmit() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let l = pair.server.listen(addr("10.0.0.2:80")).expect("free");
    let now = pair.now;
    let handles: Vec<_> = (0..3)
        .map(|_| {
            pair.client
                .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:80"))
                .expect("free")
        })
        .collect();
    pair.run_until(Duration::from_secs(1), |p| {
        p.client_events
            .iter()
            .filter(|e| matches!(e, Event::Connection(_, TcpEvent::Connected)))
            .count()
            == 3
    });
    while pair.server.accept(l).is_some() {}
    let ports: Vec<u16> = handles
        .iter()
        .map(|&h| pair.client.addresses(h).expect("live").local.port())
        .collect();
    // A bulk writer first, then two others: the bulk one must not hog the output.
    pair.client
        .write(handles[0], &pattern(1, 200_000))
        .expect("live");
    pair.client
        .write(handles[1], &pattern(2, 200_000))
        .expect("live");
    pair.client
        .write(handles[2], &pattern(3, 3 * 1448))
        .expect("live");
    let mut buf = vec![0u8; 2048];
    let mut order = Vec::new();
    while let Some(len) = pair.client.poll_transmit(pair.now, &mut buf) {
        order.push(parse(&buf[..len]).tcp.src_port);
    }
    // Initial window: 10 segments each (RFC 6928), the third has only 3 to send.
    let (a, b, c) = (ports[0], ports[1], ports[2]);
    let mut expected = Vec::new();
    for round in 0..10 {
        expected.push(a);
        expected.push(b);
        if round < 3 {
            expected.push(c);
        }
    }
    assert_eq!(order, expected);

    // The endpoint's deadline is the earliest of its connections' (kept per touched
    // connection, never by scanning), before and after timers fire.
    for _ in 0..3 {
        let earliest = handles
            .iter()
            .filter_map(|&h| pair.client.socket(h).ok()?.poll_timeout())
            .min();
        assert!(earliest.is_some());
        assert_eq!(pair.client.poll_timeout(), earliest);
        let at = earliest.expect("armed");
        pair.client.handle_timeout(at);
        while pair.client.poll_transmit(at, &mut buf).is_some() {}
    }
}

/// Deadlines are recomputed lazily (once per batch, not per packet): whatever mix of
/// changed and settled connections the endpoint holds, more than it lets wait, its
/// deadline is still the earliest of theirs.
#[test]
fn the_deadline_stays_the_earliest_with_many_changed_connections() {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    // Nobody listens: every SYN is answered by a RST or lost, so each connection keeps
    // a retransmission timer of its own.
    let mut buf = vec![0u8; 2048];
    let mut handles = Vec::new();
    for round in 0..5u64 {
        pair.now += Duration::from_millis(7 * round + 1);
        let now = pair.now;
        for _ in 0..40 {
            let h = pair
                .client
                .connect(now, addr("10.0.0.1:0"), addr("10.0.0.2:9"))
                .expect("free");
            handles.push(h);
        }
        while pair.client.poll_transmit(now, &mut buf).is_some() {}
        let earliest = handles
            .iter()
            .filter_map(|&h| pair.client.socket(h).ok()?.poll_timeout())
            .min();
        assert!(earliest.is_some(), "round {round}: SYNs are retransmitted");
        assert_eq!(pair.client.poll_timeout(), earliest, "round {round}");
    }
    for _ in 0..4 {
        let earliest = handles
            .iter()
            .filter_map(|&h| pair.client.socket(h).ok()?.poll_timeout())
            .min();
        assert_eq!(pair.client.poll_timeout(), earliest);
        let Some(at) = earliest else { break };
        pair.now = at;
        pair.client.handle_timeout(at);
        while pair.client.poll_transmit(at, &mut buf).is_some() {}
    }
}
