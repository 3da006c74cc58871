//! MPTCP through the endpoint, over real IP packets: MP_CAPABLE listeners, MP_JOIN by
//! token, several paths, fallback to TCP, path events, failures.

mod common;

use core::net::{IpAddr, SocketAddr};

use common::{Action, Pair, Side};
use mptcp_proto::endpoint::{ConnHandle, DropReason, EndpointConfig, Event};
use mptcp_proto::mptcp::{
    CloseReason, ConnMode, FallbackReason, MptcpConfig, MptcpEvent, SubflowDownReason,
};
use mptcp_proto::tcp::{TcpEvent, TcpState};
use mptcp_proto::time::Duration;
use mptcp_proto::wire::IpTcpRepr;
use mptcp_proto::wire::mptcp::{MptcpOption, TcpRstReason};
use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("literal address")
}

fn mptcp_config() -> MptcpConfig {
    MptcpConfig {
        send_buffer: 128 * 1024,
        recv_buffer: 128 * 1024,
        ..MptcpConfig::default()
    }
}

fn mptcp_endpoint() -> EndpointConfig {
    EndpointConfig {
        mptcp: Some(mptcp_config()),
        ..EndpointConfig::default()
    }
}

/// A deterministic payload.
fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    (0..len).map(|_| rng.random::<u8>()).collect()
}

#[track_caller]
fn assert_bytes(got: &[u8], want: &[u8]) {
    if got != want {
        let first = got.iter().zip(want).position(|(a, b)| a != b);
        panic!(
            "bytes differ: got {}, want {}, first difference at {first:?}",
            got.len(),
            want.len()
        );
    }
}

/// Connects an MPTCP client (with `extra` addresses) to an MPTCP listener and returns
/// (client handle, server handle).
fn open(pair: &mut Pair, extra: &[IpAddr]) -> (ConnHandle, ConnHandle) {
    let listener = pair.server.listen(addr("10.9.0.1:80")).expect("free");
    let now = pair.now;
    let client = pair
        .client
        .connect_mptcp(now, addr("10.0.0.1:0"), addr("10.9.0.1:80"), extra)
        .expect("connect");
    let mut server = None;
    pair.run_until(Duration::from_secs(5), |p| {
        if server.is_none() {
            server = p.server.accept(listener);
        }
        server.is_some()
    });
    (client, server.expect("accepted"))
}

/// Moves `data` from one side to the other; returns what arrived.
fn transfer(pair: &mut Pair, from: Side, conns: (ConnHandle, ConnHandle), data: &[u8]) -> Vec<u8> {
    let (tx, rx) = match from {
        Side::Client => conns,
        Side::Server => (conns.1, conns.0),
    };
    let mut written = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    pair.run_until(Duration::from_secs(300), |p| {
        let (w, r) = match from {
            Side::Client => (&mut p.client, &mut p.server),
            Side::Server => (&mut p.server, &mut p.client),
        };
        if written < data.len() {
            written += w.write(tx, &data[written..]).unwrap_or(0);
        }
        while let Ok(n) = r.read(rx, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= data.len()
    });
    got
}

fn mptcp_events(pair: &mut Pair, side: Side) -> Vec<(ConnHandle, MptcpEvent)> {
    let ep = pair.endpoint(side);
    core::iter::from_fn(|| ep.poll_mptcp_event()).collect()
}

#[test]
fn mptcp_connection_with_two_paths_through_the_endpoint() {
    let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
    let conns = open(&mut pair, &[ip("10.0.1.1")]);
    assert!(
        pair.client_events
            .contains(&Event::Connection(conns.0, TcpEvent::Connected))
    );
    let data = pattern(500_000, 1);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    let back = pattern(300_000, 2);
    assert_bytes(&transfer(&mut pair, Side::Server, conns, &back), &back);
    let stats = pair.client.mptcp_stats(conns.0).expect("MPTCP");
    assert_eq!(stats.mode, ConnMode::Mptcp);
    assert_eq!(stats.subflows.len(), 2);
    assert!(stats.subflows.iter().all(|s| s.bytes_sent > 0), "{stats:?}");
    let server_stats = pair.server.mptcp_stats(conns.1).expect("MPTCP");
    assert_eq!(server_stats.subflows.len(), 2);
    let ups = mptcp_events(&mut pair, Side::Client)
        .into_iter()
        .filter(|(_, e)| matches!(e, MptcpEvent::SubflowUp { .. }))
        .count();
    assert_eq!(ups, 2);
    // Orderly close: both DATA_FINs, then the subflows close and the table empties.
    pair.client.close(conns.0).expect("live");
    pair.server.close(conns.1).expect("live");
    pair.run_idle(Duration::from_secs(300));
    assert!(
        pair.client_events
            .contains(&Event::Connection(conns.0, TcpEvent::Closed))
    );
    assert_eq!(pair.client.connection_count(), 0);
    assert_eq!(pair.server.connection_count(), 0);
}

#[test]
fn plain_tcp_client_gets_plain_tcp_from_an_mptcp_listener() {
    let mut pair = Pair::new(EndpointConfig::default(), mptcp_endpoint());
    let listener = pair.server.listen(addr("10.9.0.1:80")).expect("free");
    let now = pair.now;
    let client = pair
        .client
        .connect(now, addr("10.0.0.1:0"), addr("10.9.0.1:80"))
        .expect("connect");
    let mut server = None;
    pair.run_until(Duration::from_secs(5), |p| {
        server = server.or_else(|| p.server.accept(listener));
        server.is_some()
    });
    let server = server.expect("accepted");
    assert!(!pair.server.is_mptcp(server).expect("live"));
    assert!(pair.server.socket(server).is_ok());
    let data = pattern(50_000, 3);
    assert_bytes(
        &transfer(&mut pair, Side::Client, (client, server), &data),
        &data,
    );
}

#[test]
fn mptcp_client_to_a_plain_listener_falls_back_transparently() {
    let mut pair = Pair::new(mptcp_endpoint(), EndpointConfig::default());
    let conns = open(&mut pair, &[ip("10.0.1.1")]);
    let data = pattern(100_000, 4);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    let back = pattern(60_000, 5);
    assert_bytes(&transfer(&mut pair, Side::Server, conns, &back), &back);
    assert!(mptcp_events(&mut pair, Side::Client).contains(&(
        conns.0,
        MptcpEvent::Fallback {
            reason: FallbackReason::NoMpCapableInSynAck
        }
    )));
    let stats = pair.client.mptcp_stats(conns.0).expect("MPTCP object");
    assert_eq!(stats.mode, ConnMode::Fallback);
    assert_eq!(stats.subflows.len(), 1, "no joins after a fallback");
}

/// Rewrites an IP packet without its MPTCP options (checksums fixed), as an
/// option-stripping middlebox does.
fn strip_mptcp(bytes: &mut Vec<u8>) {
    let copy = bytes.clone();
    let Ok(mut parsed) = IpTcpRepr::parse(&copy[..], true) else {
        return;
    };
    if parsed.tcp.options.mptcp.is_empty() {
        return;
    }
    parsed.tcp.options.mptcp.clear();
    let mut out = vec![0u8; 2000];
    let n = parsed.emit(&mut out, true).expect("fits");
    out.truncate(n);
    *bytes = out;
}

#[test]
fn a_middlebox_stripping_mptcp_options_gives_tcp_with_data_intact() {
    for strip_syn in [true, false] {
        let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
        pair.filter = Some(Box::new(move |_, _, bytes| {
            let syn = IpTcpRepr::parse(&bytes[..], true).is_ok_and(|p| p.tcp.flags.syn());
            if strip_syn || !syn {
                strip_mptcp(bytes);
            }
            Action::Deliver
        }));
        let conns = open(&mut pair, &[ip("10.0.1.1")]);
        let data = pattern(120_000, 6);
        assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
        let back = pattern(80_000, 7);
        assert_bytes(&transfer(&mut pair, Side::Server, conns, &back), &back);
        assert_eq!(
            pair.client.mptcp_stats(conns.0).expect("MPTCP").mode,
            ConnMode::Fallback
        );
        assert_eq!(
            pair.server
                .mptcp_stats(conns.1)
                .map(|s| s.mode)
                .unwrap_or(ConnMode::Fallback),
            ConnMode::Fallback
        );
    }
}

#[test]
fn join_with_an_unknown_token_gets_a_rst_with_mp_tcprst() {
    let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
    pair.record = true;
    // Corrupt the token of every MP_JOIN SYN.
    pair.filter = Some(Box::new(|_, _, bytes| {
        let copy = bytes.clone();
        let Ok(mut parsed) = IpTcpRepr::parse(&copy[..], true) else {
            return Action::Deliver;
        };
        let mut changed = false;
        for o in parsed.tcp.options.mptcp.iter_mut() {
            if let MptcpOption::MpJoin(mptcp_proto::wire::mptcp::MpJoin::Syn { token, .. }) = o {
                token.0 ^= 0x8000_0000;
                changed = true;
            }
        }
        if changed {
            let mut out = vec![0u8; 2000];
            let n = parsed.emit(&mut out, true).expect("fits");
            out.truncate(n);
            *bytes = out;
        }
        Action::Deliver
    }));
    let conns = open(&mut pair, &[ip("10.0.1.1")]);
    let data = pattern(30_000, 8);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    assert!(pair.server.stats().dropped(DropReason::UnknownToken) >= 1);
    let rst = pair
        .wire
        .iter()
        .filter(|p| p.from == Side::Server)
        .filter_map(|p| {
            IpTcpRepr::parse(&p.bytes[..], true)
                .ok()
                .map(|r| r.tcp.options.mptcp.to_vec())
        })
        .any(|opts| {
            opts.iter().any(
                |o| matches!(o, MptcpOption::MpTcpRst(r) if r.reason == TcpRstReason::MPTCP_ERROR),
            )
        });
    assert!(rst, "a RST with MP_TCPRST answered the join");
    assert_eq!(
        pair.server
            .mptcp_stats(conns.1)
            .expect("live")
            .subflows
            .len(),
        1
    );
}

#[test]
fn removing_a_path_mid_transfer_reinjects_and_keeps_data_intact() {
    let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
    let conns = open(&mut pair, &[ip("10.0.1.1")]);
    // Let the join finish.
    pair.run_until(Duration::from_secs(1), |p| {
        p.client
            .mptcp_stats(conns.0)
            .is_ok_and(|s| s.subflows.len() == 2)
    });
    let data = pattern(800_000, 9);
    let mut written = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    let mut removed = false;
    pair.run_until(Duration::from_secs(300), |p| {
        if written < data.len() {
            written += p.client.write(conns.0, &data[written..]).unwrap_or(0);
        }
        while let Ok(n) = p.server.read(conns.1, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if !removed && got.len() > 200_000 {
            removed = true;
            let now = p.now;
            p.client.remove_local_address(now, ip("10.0.1.1"));
        }
        got.len() >= data.len()
    });
    assert!(removed);
    assert_bytes(&got, &data);
    let events = mptcp_events(&mut pair, Side::Client);
    assert!(events.iter().any(|(_, e)| matches!(
        e,
        MptcpEvent::SubflowDown {
            reason: SubflowDownReason::AddressRemoved,
            ..
        }
    )));
    assert_eq!(
        pair.client
            .mptcp_stats(conns.0)
            .expect("live")
            .subflows
            .len(),
        1
    );
}

#[test]
fn make_after_break_the_connection_survives_losing_every_path() {
    let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
    let conns = open(&mut pair, &[]);
    let data = pattern(50_000, 10);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    // The only path goes away: its subflow closes, the connection waits.
    let now = pair.now;
    pair.client.remove_local_address(now, ip("10.0.0.1"));
    // (Stop as soon as it is gone: an idle pair jumps the clock to the next timer.)
    pair.run_until(Duration::from_secs(2), |p| {
        p.client
            .mptcp_stats(conns.0)
            .is_ok_and(|s| s.subflows.is_empty())
    });
    assert_eq!(
        pair.client
            .mptcp_stats(conns.0)
            .expect("alive")
            .subflows
            .len(),
        0
    );
    let reason = pair.client.mptcp(conns.0).expect("alive").close_reason();
    assert_eq!(reason, None, "{:?}", mptcp_events(&mut pair, Side::Client));
    // Data written meanwhile waits in the send buffer.
    let more = pattern(40_000, 11);
    let mut written = pair.client.write(conns.0, &more).expect("live");
    // A new path appears: the connection joins over it and resumes.
    let now = pair.now;
    pair.client.add_local_address(now, ip("10.0.2.1"));
    let mut got = Vec::new();
    let mut buf = vec![0u8; 32 * 1024];
    pair.run_until(Duration::from_secs(60), |p| {
        if written < more.len() {
            written += p.client.write(conns.0, &more[written..]).unwrap_or(0);
        }
        while let Ok(n) = p.server.read(conns.1, &mut buf) {
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        got.len() >= more.len()
    });
    assert_bytes(&got, &more);
    let stats = pair.client.mptcp_stats(conns.0).expect("alive");
    assert_eq!(stats.subflows.len(), 1);
    assert_eq!(stats.subflows[0].local.ip(), ip("10.0.2.1"));
}

#[test]
fn without_a_returning_path_make_after_break_gives_up() {
    let mut cfg = mptcp_config();
    cfg.make_after_break = Duration::from_secs(5);
    let config = EndpointConfig {
        mptcp: Some(cfg),
        ..EndpointConfig::default()
    };
    let mut pair = Pair::new(config, mptcp_endpoint());
    let conns = open(&mut pair, &[]);
    let now = pair.now;
    pair.client.remove_local_address(now, ip("10.0.0.1"));
    pair.run_until(Duration::from_secs(10), |_| false);
    let events = mptcp_events(&mut pair, Side::Client);
    assert!(
        events.contains(&(
            conns.0,
            MptcpEvent::Closed {
                reason: CloseReason::NoSubflows
            }
        )),
        "{events:?} {:?} {:?}",
        pair.client_events,
        pair.now
    );
    assert!(
        pair.client_events
            .contains(&Event::Connection(conns.0, TcpEvent::TimedOut))
    );
}

/// Loss and duplication both ways over one or two paths, byte-exact either way.
fn lossy(seed: u64, paths: usize) {
    let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let extra: &[IpAddr] = if paths == 2 { &[ip("10.0.1.1")] } else { &[] };
    let conns = open(&mut pair, extra);
    pair.run_until(Duration::from_secs(2), |p| {
        p.client
            .mptcp_stats(conns.0)
            .is_ok_and(|s| s.subflows.len() == paths)
    });
    pair.filter = Some(Box::new(move |_, _, _| {
        let x: f64 = rng.random();
        if x < 0.02 {
            Action::Drop
        } else if x < 0.03 {
            Action::Duplicate
        } else {
            Action::Deliver
        }
    }));
    let data = pattern(30_000, seed);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    let back = pattern(20_000, seed + 1);
    assert_bytes(&transfer(&mut pair, Side::Server, conns, &back), &back);
}

#[test]
fn byte_exact_with_loss_and_duplication_over_one_and_two_paths_many_seeds() {
    for seed in 0..200 {
        lossy(seed, 1 + (seed as usize % 2));
    }
}

/// Arbitrary MPTCP options on segments of an established connection's 4-tuples
/// (real sequence numbers, random flags): never a panic, memory stays bounded, and a
/// clean transfer works afterwards.
#[test]
fn random_mptcp_options_on_live_subflows_never_break_the_connection() {
    use mptcp_proto::wire::tcp::TcpFlags;
    for seed in 0..20u64 {
        let mut pair = Pair::new(mptcp_endpoint(), mptcp_endpoint());
        pair.record = true;
        let conns = open(&mut pair, &[ip("10.0.1.1")]);
        let data = pattern(20_000, seed);
        assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let samples: Vec<Vec<u8>> = pair
            .wire
            .iter()
            .filter(|p| p.from == Side::Client)
            .map(|p| p.bytes.clone())
            .collect();
        let mut injected = 0;
        for _ in 0..300 {
            let base = &samples[rng.random_range(0..samples.len())];
            let Ok(parsed) = IpTcpRepr::parse(&base[..], true) else {
                continue;
            };
            // A subtype with one of its valid lengths, random contents.
            const FORMS: [(u8, &[usize]); 9] = [
                (0, &[4, 12, 20, 22, 24]),
                (1, &[12, 16, 24]),
                (2, &[4, 8, 12, 16, 18, 20, 22, 24, 26, 28]),
                (3, &[8, 10, 16, 18, 20, 22, 28, 30]),
                (4, &[4, 5, 6]),
                (5, &[3, 4]),
                (6, &[12]),
                (7, &[12]),
                (8, &[4]),
            ];
            let (subtype, lens) = FORMS[rng.random_range(0..FORMS.len())];
            let len = lens[rng.random_range(0..lens.len())];
            let mut raw = vec![30u8, len as u8];
            raw.extend((2..len).map(|_| rng.random::<u8>()));
            raw[2] = (subtype << 4) | (raw[2] & 0x0f);
            let Ok(option) = MptcpOption::parse(&raw) else {
                continue;
            };
            let mut packet = parsed.clone();
            packet.tcp.options.mptcp.clear();
            packet.tcp.options.sack_blocks.clear();
            packet.tcp.options.mptcp.push(option);
            let flags = [
                TcpFlags::ACK,
                TcpFlags::RST,
                TcpFlags::SYN,
                TcpFlags::FIN | TcpFlags::ACK,
            ];
            packet.tcp.flags = flags[rng.random_range(0..flags.len())];
            packet.tcp.seq += rng.random_range(0..3000u32);
            let mut out = vec![0u8; 2000];
            let Ok(n) = packet.emit(&mut out, true) else {
                continue;
            };
            let now = pair.now;
            let _ = pair.server.handle_packet(now, &out[..n]);
            injected += 1;
            pair.step();
        }
        assert!(injected > 150, "seed {seed}: {injected} packets injected");
        // Still a working connection (a forged MP_FASTCLOSE cannot know the key; a
        // forged RST may kill one subflow, which the other or a retry covers).
        if pair.server.mptcp_stats(conns.1).is_ok() {
            let more = pattern(30_000, seed + 100);
            assert_bytes(&transfer(&mut pair, Side::Client, conns, &more), &more);
            let stats = pair.server.mptcp_stats(conns.1).expect("alive");
            assert!(stats.subflows.len() <= 8);
        }
    }
}

#[test]
fn the_endpoint_and_connections_can_move_to_a_runtime_thread() {
    fn send<T: Send>() {}
    send::<mptcp_proto::endpoint::Endpoint>();
    send::<mptcp_proto::mptcp::MptcpConnection>();
}

/// Found by the runtime against a kernel TCP server: after a fallback, the connection's
/// state stayed Established while its one subflow went through FIN to TIME-WAIT, so a
/// runtime waiting for released connections to finish their close waited for nothing
/// (the full linger time). After a fallback the state is the subflow's.
#[test]
fn a_fallen_back_connection_reports_its_subflows_close_states() {
    let mut pair = Pair::new(mptcp_endpoint(), EndpointConfig::default());
    let conns = open(&mut pair, &[]);
    let data = pattern(20_000, 6);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    assert_eq!(pair.client.state(conns.0), Ok(TcpState::Established));
    pair.client.close(conns.0).expect("close");
    let c = conns.0;
    assert!(
        pair.run_until(Duration::from_secs(5), |p| p.client.state(c)
            == Ok(TcpState::FinWait2)),
        "our FIN acknowledged: FIN-WAIT-2, not {:?}",
        pair.client.state(c)
    );
    pair.server.close(conns.1).expect("close");
    assert!(
        pair.run_until(Duration::from_secs(5), |p| p.client.state(c)
            == Ok(TcpState::TimeWait)),
        "the peer's FIN: TIME-WAIT, not {:?}",
        pair.client.state(c)
    );
}

#[test]
fn an_accepted_connection_announces_the_servers_other_configured_addresses() {
    // Regression: an accepted connection knew only the address the SYN came to, so a
    // server with two addresses never sent ADD_ADDR and a single-homed client got one
    // path. The endpoint now hands it its other configured local addresses.
    let server = EndpointConfig {
        local_addrs: vec![ip("10.9.0.1"), ip("10.9.1.1")],
        ..mptcp_endpoint()
    };
    let mut pair = Pair::new(mptcp_endpoint(), server);
    let conns = open(&mut pair, &[]);
    let data = pattern(300_000, 5);
    assert_bytes(&transfer(&mut pair, Side::Client, conns, &data), &data);
    pair.run_idle(Duration::from_millis(500));
    let events = mptcp_events(&mut pair, Side::Client);
    assert!(
        events.iter().any(|(_, e)| matches!(
            e,
            MptcpEvent::AddressAnnounced { addr, .. } if addr.ip() == ip("10.9.1.1")
        )),
        "{events:?}"
    );
    let stats = pair.client.mptcp_stats(conns.0).expect("MPTCP");
    assert_eq!(stats.subflows.len(), 2, "{stats:?}");
    assert!(
        stats
            .subflows
            .iter()
            .any(|s| s.remote == addr("10.9.1.1:80") && s.established)
    );
}
