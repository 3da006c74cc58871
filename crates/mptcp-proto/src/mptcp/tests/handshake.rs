//! MP_CAPABLE, first data, fallback: the option fields each segment carries.

use super::*;
use crate::mptcp::{ConnMode, FallbackReason};
use crate::wire::mptcp::{CapableFlags, DsnWire, MpCapable, MpCapableKeys};

fn capable(w: &Wire) -> Option<MpCapable> {
    w.mptcp().into_iter().find_map(|o| match o {
        MptcpOption::MpCapable(c) => Some(c),
        _ => None,
    })
}

fn dss(w: &Wire) -> Option<crate::wire::mptcp::Dss> {
    w.mptcp().into_iter().find_map(|o| match o {
        MptcpOption::Dss(d) => Some(d),
        _ => None,
    })
}

#[test]
fn mp_capable_three_way_handshake_and_first_data_carry_the_right_keys() {
    let mut p = Pair::new(small_config(), small_config(), &[]);
    p.connect();
    p.client.write(b"hello");
    p.run_for(Duration::from_millis(100));
    let client_key = p.client.local_key();
    let server_key = p.server().local_key();
    assert_eq!(p.client.peer_key(), Some(server_key));
    assert_eq!(p.server().peer_key(), Some(client_key));
    let mut buf = [0u8; 16];
    assert_eq!(p.server().read(&mut buf), 5);
    assert_eq!(&buf[..5], b"hello");

    let server_key = p.server().local_key();
    let to_server = p.sent(Dir::ToServer);
    // SYN: MP_CAPABLE length 4, version 1, H = 1, no key.
    let syn = to_server[0];
    assert_eq!(syn.flags(), TcpFlags::SYN);
    let syn_opt = &syn.repr().options.mptcp[0];
    assert_eq!(syn_opt.wire_len(), 4);
    assert_eq!(
        capable(syn),
        Some(MpCapable {
            version: 1,
            flags: CapableFlags::HMAC_SHA256,
            keys: MpCapableKeys::None
        })
    );
    // SYN/ACK: length 12 with the server's key.
    let synack = p.sent(Dir::ToClient)[0];
    assert_eq!(synack.flags(), TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.repr().options.mptcp[0].wire_len(), 12);
    assert_eq!(
        capable(synack).map(|c| c.keys),
        Some(MpCapableKeys::Sender { sender: server_key })
    );
    // Third ACK: length 20, both keys.
    let third = to_server[1];
    assert_eq!(third.payload_len(), 0);
    assert_eq!(third.repr().options.mptcp[0].wire_len(), 20);
    assert_eq!(
        capable(third).map(|c| c.keys),
        Some(MpCapableKeys::Both {
            sender: client_key,
            receiver: server_key
        })
    );
    // First data: length 22, both keys and the data-level length.
    let first = to_server[2];
    assert_eq!(first.payload_len(), 5);
    assert_eq!(first.repr().options.mptcp[0].wire_len(), 22);
    assert_eq!(
        capable(first).map(|c| c.keys),
        Some(MpCapableKeys::BothWithData {
            sender: client_key,
            receiver: server_key,
            data_len: 5,
            checksum: None
        })
    );
    // The server's ACK of it carries a DSS with a 64-bit data ACK covering the data.
    let server_ack = p
        .sent(Dir::ToClient)
        .into_iter()
        .skip(1)
        .find_map(dss)
        .expect("a DSS from the server");
    assert_eq!(
        server_ack.data_ack,
        Some(DsnWire::Long(client_key.idsn() + 1 + 5))
    );
}

#[test]
fn client_keeps_mp_capable_on_data_until_it_sees_a_data_ack() {
    let mut cc = small_config();
    // The outage makes the initial subflow stale; keep the data on it (no
    // make-before-break replacement) to watch its options.
    cc.pm.handover = crate::pm::Handover::BreakBeforeMake;
    let mut p = Pair::new(cc, small_config(), &[]);
    // The server never answers after its SYN/ACK: its ACKs are lost.
    p.connect();
    p.filter = Some(Box::new(move |w| {
        if w.dir == Dir::ToClient {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    p.client.write(b"abc");
    p.run_for(Duration::from_millis(1500));
    let data: Vec<_> = p
        .sent(Dir::ToServer)
        .into_iter()
        .filter(|w| w.payload_len() > 0)
        .collect();
    assert!(data.len() >= 2, "the first data is retransmitted");
    for w in data {
        assert_eq!(
            capable(w).map(|c| c.keys),
            Some(MpCapableKeys::BothWithData {
                sender: p.client.local_key(),
                receiver: p.client.peer_key().expect("known"),
                data_len: 3,
                checksum: None,
            })
        );
    }
    // Once the server's DSS with a data ACK gets through, DSS replaces MP_CAPABLE.
    p.filter = None;
    p.run_for(Duration::from_millis(3000));
    p.client.write(b"more");
    p.run_for(Duration::from_millis(200));

    let last = p
        .sent(Dir::ToServer)
        .into_iter()
        .rev()
        .find(|w| w.payload_len() > 0)
        .expect("data");
    assert!(capable(last).is_none());
    let d = dss(last).expect("DSS on later data");
    let m = d.mapping.expect("a mapping");
    assert_eq!(m.dsn, DsnWire::Long(p.client.local_key().idsn() + 1 + 3));
    assert_eq!(m.subflow_seq, SeqNum(4));
    assert_eq!(m.data_len, 4);
}

#[test]
fn checksums_are_used_when_either_side_sets_a() {
    for (client_a, server_a) in [(true, false), (false, true), (true, true), (false, false)] {
        let mut cc = small_config();
        cc.checksums = client_a;
        let mut sc = small_config();
        sc.checksums = server_a;
        let mut p = Pair::new(cc, sc, &[]);
        p.connect();
        let want = client_a || server_a;
        assert_eq!(p.client.checksums(), want);
        assert_eq!(p.server().checksums(), want);
        let data = pattern(3000, 7);
        let got = p.transfer(true, &data, Duration::from_secs(2));
        assert_bytes(&got, &data);
        let back = p.transfer(false, &data, Duration::from_secs(2));
        assert_bytes(&back, &data);
        // Every mapping on the wire has a checksum exactly when negotiated.
        for w in &p.log {
            if let Some(m) = dss(w).and_then(|d| d.mapping) {
                assert_eq!(m.checksum.is_some(), want, "{client_a} {server_a}");
            }
            if let Some(MpCapableKeys::BothWithData { checksum, .. }) = capable(w).map(|c| c.keys) {
                assert_eq!(checksum.is_some(), want);
            }
        }
        let syn = p.sent(Dir::ToServer)[0];
        assert_eq!(
            capable(syn).map(|c| c.flags.checksum_required()),
            Some(client_a)
        );
    }
}

#[test]
fn no_mp_capable_in_syn_ack_falls_back_transparently() {
    let mut p = Pair::new(small_config(), small_config(), &[]);
    // A middlebox strips MPTCP options from the server's segments.
    p.filter = Some(Box::new(|w| {
        if w.dir == Dir::ToClient {
            Verdict::Rewrite(strip_mptcp(w))
        } else {
            Verdict::Pass
        }
    }));
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.client.mode(), ConnMode::Fallback);
    assert!(p.client_events.contains(&MptcpEvent::Fallback {
        reason: FallbackReason::NoMpCapableInSynAck
    }));
    // The client's third ACK carries no MP_CAPABLE: the server falls back too.
    assert_eq!(p.server().mode(), ConnMode::Fallback);
    let data = pattern(20_000, 3);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(3)), &data);
    assert_bytes(&p.transfer(false, &data, Duration::from_secs(3)), &data);
    // No MPTCP option after the SYN from the client.
    for w in p.sent(Dir::ToServer).into_iter().skip(1) {
        assert!(w.mptcp().is_empty());
    }
}

#[test]
fn options_stripped_after_the_handshake_fall_back_with_data_intact() {
    let mut p = Pair::new(small_config(), small_config(), &[]);
    // Strip everything but SYNs: the SYN/ACK negotiates MPTCP, then nothing.
    p.filter = Some(Box::new(|w| {
        if w.flags().syn() {
            Verdict::Pass
        } else {
            Verdict::Rewrite(strip_mptcp(w))
        }
    }));
    p.run_for(Duration::from_millis(100));
    // The third ACK lost its MP_CAPABLE: the server falls back at once.
    assert_eq!(p.server().mode(), ConnMode::Fallback);
    assert!(p.server_events.contains(&MptcpEvent::Fallback {
        reason: FallbackReason::NoMpCapableInThirdAck
    }));
    let data = pattern(30_000, 4);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
    assert_eq!(p.client.mode(), ConnMode::Fallback);
    let back = pattern(10_000, 5);
    assert_bytes(&p.transfer(false, &back, Duration::from_secs(5)), &back);
}

/// The segment's bytes with every MPTCP option replaced by NOPs (a middlebox that
/// strips unknown options), checksum fixed.
pub fn strip_mptcp(w: &Wire) -> Vec<u8> {
    let mut repr = w.repr();
    repr.options.mptcp.clear();
    Pair::emit(&repr, w.src, w.dst)
}

#[test]
fn a_data_fin_overtaking_the_lost_third_ack_and_first_data_is_no_fallback() {
    // Seeds 11813 and 16414 of mptcp_seeds: the client's third ACK and first data (the
    // segments with MP_CAPABLE and both keys) are lost, and its DATA_FIN (a DSS, no
    // MP_CAPABLE) reaches the server first. The peer plainly speaks MPTCP: the server
    // must wait for the keys (the first data is retransmitted with them), not fall
    // back as if a middlebox had stripped the options.
    use std::cell::Cell;
    use std::rc::Rc;
    let mut p = Pair::new(small_config(), small_config(), &[]);
    let fin_passed = Rc::new(Cell::new(false));
    let seen = fin_passed.clone();
    p.filter = Some(Box::new(move |w| {
        if w.dir != Dir::ToServer || w.flags().syn() {
            return Verdict::Pass;
        }
        let keyed = capable(w).is_some_and(|c| {
            matches!(
                c.keys,
                MpCapableKeys::Both { .. } | MpCapableKeys::BothWithData { .. }
            )
        });
        if dss(w).is_some_and(|d| d.data_fin) {
            seen.set(true);
        }
        if keyed && !seen.get() {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    p.run_for(Duration::from_millis(40));
    p.client.write(b"request");
    p.client.close();
    // The first data goes out with the keys (dropped); the DATA_FIN follows on its
    // own once the connection-level retransmission timer asks for it.
    while !fin_passed.get() && p.now < Instant::from_secs(2) {
        p.run_for(Duration::from_millis(5));
    }
    assert!(
        fin_passed.get(),
        "the DATA_FIN went out before any key got through"
    );
    p.run_for(Duration::from_millis(12));
    assert_eq!(p.server().mode(), ConnMode::Handshake);
    p.run_for(Duration::from_secs(3));
    assert_eq!(p.server().mode(), ConnMode::Mptcp);
    assert_eq!(p.client.mode(), ConnMode::Mptcp);
    let mut buf = [0u8; 16];
    assert_eq!(p.server().read(&mut buf), 7);
    assert_eq!(&buf[..7], b"request");
    assert!(
        p.server().is_read_closed(),
        "the DATA_FIN is taken once mapped"
    );
    let fell_back = |events: &[MptcpEvent]| {
        events
            .iter()
            .any(|e| matches!(e, MptcpEvent::Fallback { .. }))
    };
    assert!(!fell_back(&p.server_events), "{:?}", p.server_events);
    assert!(!fell_back(&p.client_events), "{:?}", p.client_events);
}

/// Drops the client's pure third ACK (MP_CAPABLE with both keys, no payload), the
/// first `times` times it is sent.
fn drop_third_ack(times: usize) -> Filter {
    let mut dropped = 0;
    Box::new(move |w| {
        let third = w.dir == Dir::ToServer
            && !w.flags().syn()
            && w.payload_len() == 0
            && capable(w).is_some_and(|c| matches!(c.keys, MpCapableKeys::Both { .. }));
        if third && dropped < times {
            dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    })
}

fn closed_normally(events: &[MptcpEvent]) -> bool {
    events.contains(&MptcpEvent::Closed {
        reason: crate::mptcp::CloseReason::Normal,
    })
}

/// Runs until both ends reported their close, at most `limit`; each end closes its
/// side when it sees the peer's (an application that closes at end of stream).
fn run_until_both_closed(p: &mut Pair, limit: Duration) {
    let deadline = p.now + limit;
    while p.now < deadline
        && !(closed_normally(&p.client_events) && closed_normally(&p.server_events))
    {
        if p.client_events.contains(&MptcpEvent::PeerClosed) {
            p.client.close();
        }
        if let Some(server) = p.server.as_mut()
            && p.server_events.contains(&MptcpEvent::PeerClosed)
        {
            server.close();
        }
        p.run_for(Duration::from_millis(10));
    }
}

#[test]
fn a_lost_third_ack_then_a_close_without_data_still_closes_both_ends() {
    // RFC 8684 §3.1: the third ACK carries the keys and may be lost. A client with no
    // data to send sends its DATA_FIN next: the server needs the keys to take it, so
    // they must reach the server by some segment.
    let mut p = Pair::new(small_config(), small_config(), &[]);
    p.filter = Some(drop_third_ack(1));
    while !p.client_events.contains(&MptcpEvent::Connected) && p.now < Instant::from_secs(1) {
        p.run_for(Duration::from_millis(1));
    }
    assert!(p.client_events.contains(&MptcpEvent::Connected));
    p.client.close();
    run_until_both_closed(&mut p, Duration::from_secs(10));
    assert!(
        closed_normally(&p.client_events),
        "client: {:?}\n{}",
        p.client_events,
        p.dump()
    );
    assert!(
        closed_normally(&p.server_events),
        "server: {:?}\n{}",
        p.server_events,
        p.dump()
    );
    assert!(p.server().is_read_closed());
    assert!(
        !p.log.iter().any(|w| w.flags().rst()),
        "no RST:\n{}",
        p.dump()
    );
    assert_eq!(p.server().mode(), ConnMode::Mptcp);
    // Both ends let go of the connection (TIME-WAIT included) in bounded time.
    p.run_for(Duration::from_secs(130));
    assert!(p.client.is_finished() && p.server().is_finished());
}

#[test]
fn a_lost_third_ack_then_the_server_writes_first_and_both_close() {
    let mut p = Pair::new(small_config(), small_config(), &[]);
    p.filter = Some(drop_third_ack(1));
    while p.server.is_none() && p.now < Instant::from_secs(1) {
        p.run_for(Duration::from_millis(1));
    }
    let banner = pattern(5000, 41);
    assert_bytes(
        &p.transfer(false, &banner, Duration::from_secs(10)),
        &banner,
    );
    p.server().close();
    p.run_for(Duration::from_millis(200));
    assert!(p.client.is_read_closed(), "{:?}", p.client_events);
    p.client.close();
    run_until_both_closed(&mut p, Duration::from_secs(10));
    assert!(closed_normally(&p.client_events), "{:?}", p.client_events);
    assert!(closed_normally(&p.server_events), "{:?}", p.server_events);
    assert!(!p.log.iter().any(|w| w.flags().rst()), "{}", p.dump());
    p.run_for(Duration::from_secs(130));
    assert!(p.client.is_finished() && p.server().is_finished());
}

#[test]
fn an_idle_client_repeats_its_keys_until_the_server_answers_then_stops() {
    // No data either way after the handshake: the client cannot tell whether its
    // third ACK arrived, so it repeats the keys once after the RTO; the server
    // answers the repeat with a data ACK, and nothing more goes out.
    let mut p = Pair::new(small_config(), small_config(), &[]);
    p.connect();
    p.run_for(Duration::from_secs(60));
    let keyed_acks = p
        .sent(Dir::ToServer)
        .into_iter()
        .filter(|w| capable(w).is_some_and(|c| matches!(c.keys, MpCapableKeys::Both { .. })))
        .count();
    assert_eq!(keyed_acks, 2, "the third ACK and one repeat:\n{}", p.dump());
    assert!(p.client.core.fully_established);
    assert!(p.client.subflows[0].mp.capable_rtx.is_none());
    assert_eq!(p.log.len(), 5, "{}", p.dump());
}
