//! Several subflows: MP_JOIN, ADD_ADDR / REMOVE_ADDR, failures and reinjection.

use super::*;
use crate::crypto::{JoinHmac, MptcpKey};
use crate::mptcp::data_seq::DataFinTx;
use crate::mptcp::{CloseReason, ConnMode, SubflowDownReason};
use crate::wire::mptcp::{AddAddr, AddrId, MpFastclose, MpJoin, TcpRstReason};
use core::net::{IpAddr, SocketAddr};

fn join(w: &Wire) -> Option<MpJoin> {
    w.mptcp().into_iter().find_map(|o| match o {
        MptcpOption::MpJoin(j) => Some(j),
        _ => None,
    })
}

fn up_count(events: &[MptcpEvent]) -> usize {
    events
        .iter()
        .filter(|e| matches!(e, MptcpEvent::SubflowUp { .. }))
        .count()
}

/// A client with a second address: once established it joins from it.
fn two_path_pair(seed: u64) -> Pair {
    let mut p = Pair::with_seed(small_config(), small_config(), &[ip("10.0.1.1")], seed);
    p.connect();
    // Full establishment needs a data ACK from the server.
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(200));
    p
}

#[test]
fn mp_join_four_way_handshake_fields_and_hmacs() {
    let p = two_path_pair(1);
    assert_eq!(p.client.subflow_ids().count(), 2);
    let server = p.server.as_ref().expect("server");
    assert_eq!(server.subflow_ids().count(), 2);
    assert_eq!(up_count(&p.client_events), 2);
    assert_eq!(up_count(&p.server_events), 2);
    let joins: Vec<&Wire> = p.log.iter().filter(|w| join(w).is_some()).collect();
    // SYN, SYN/ACK, third ACK.
    assert_eq!(joins.len(), 3, "{}", p.dump());
    let client_key = p.client.local_key();
    let server_key = server.local_key();
    let (token, nonce_a) = match join(joins[0]) {
        Some(MpJoin::Syn {
            token,
            nonce,
            addr_id,
            backup,
        }) => {
            assert_eq!(addr_id, AddrId(1));
            assert!(!backup);
            (token, nonce)
        }
        other => panic!("MP_JOIN SYN expected, got {other:?}"),
    };
    assert_eq!(token, server_key.token());
    assert_eq!(joins[0].repr().options.mptcp[0].wire_len(), 12);
    let nonce_b = match join(joins[1]) {
        Some(MpJoin::SynAck { hmac, nonce, .. }) => {
            assert_eq!(
                hmac,
                crate::crypto::join_synack_hmac(server_key, client_key, nonce, nonce_a)
            );
            nonce
        }
        other => panic!("MP_JOIN SYN/ACK expected, got {other:?}"),
    };
    assert_eq!(joins[1].repr().options.mptcp[0].wire_len(), 16);
    match join(joins[2]) {
        Some(MpJoin::Ack { hmac }) => assert_eq!(
            hmac,
            crate::crypto::join_ack_hmac(client_key, server_key, nonce_a, nonce_b)
        ),
        other => panic!("MP_JOIN ACK expected, got {other:?}"),
    }
    assert_eq!(joins[2].repr().options.mptcp[0].wire_len(), 24);
    // The fourth ACK: the responder's next segment on that subflow, with a DSS; the
    // initiator sent no data before it.
    let tuple = (joins[0].src, joins[0].dst);
    let after: Vec<&Wire> = p
        .log
        .iter()
        .filter(|w| (w.src, w.dst) == tuple || (w.dst, w.src) == tuple)
        .collect();
    let third = after
        .iter()
        .position(|w| matches!(join(w), Some(MpJoin::Ack { .. })))
        .expect("third ACK");
    let fourth = after[third + 1..]
        .iter()
        .position(|w| w.dir == Dir::ToClient)
        .map(|i| i + third + 1)
        .expect("fourth ACK");
    assert!(after[..fourth].iter().all(|w| w.payload_len() == 0));
    assert_eq!(after[fourth].payload_len(), 0);
}

#[test]
fn a_lost_fourth_ack_is_sent_again_when_the_third_ack_is_repeated() {
    // Seed 10937 of mptcp_seeds: the responder's fourth ACK (a pure ACK) was lost; the
    // initiator repeated its third ACK, but a pure ACK gets no ACK from TCP, so the
    // responder stayed silent and the join was given up after its retries.
    let mut p = Pair::new(small_config(), small_config(), &[ip("10.0.1.1")]);
    let mut dropped = 0;
    p.filter = Some(Box::new(move |w| {
        let fourth = w.dir == Dir::ToClient
            && w.dst.ip() == ip("10.0.1.1")
            && !w.flags().syn()
            && w.payload_len() == 0;
        if fourth && dropped == 0 {
            dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_secs(2));
    let third_acks = p
        .sent(Dir::ToServer)
        .into_iter()
        .filter(|w| matches!(join(w), Some(MpJoin::Ack { .. })))
        .count();
    assert_eq!(third_acks, 2, "the third ACK was repeated once");
    let joined = p
        .client
        .stats()
        .subflows
        .into_iter()
        .find(|s| s.local.ip() == ip("10.0.1.1"))
        .expect("the joined subflow is still there");
    assert!(joined.established);
    assert!(
        !p.client_events.iter().any(|e| matches!(
            e,
            MptcpEvent::SubflowDown {
                reason: SubflowDownReason::JoinFailed,
                ..
            }
        )),
        "{:?}",
        p.client_events
    );
    let data = pattern(60_000, 21);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
    assert!(
        p.client
            .stats()
            .subflows
            .iter()
            .find(|s| s.local.ip() == ip("10.0.1.1"))
            .is_some_and(|s| s.bytes_sent > 0),
        "the joined subflow carries data"
    );
}

#[test]
fn data_flows_over_two_subflows_byte_exact() {
    let mut p = two_path_pair(2);
    let data = pattern(300_000, 11);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(20)), &data);
    let back = pattern(200_000, 12);
    assert_bytes(&p.transfer(false, &back, Duration::from_secs(20)), &back);
    let stats = p.client.stats();
    assert_eq!(stats.subflows.len(), 2);
    for s in &stats.subflows {
        assert!(s.bytes_sent > 10_000, "both subflows carry data: {stats:?}");
    }
}

#[test]
fn join_with_bad_hmac_is_reset_and_connection_survives() {
    let mut p = Pair::new(small_config(), small_config(), &[ip("10.0.1.1")]);
    // A middlebox corrupts the initiator's full HMAC in the third ACK.
    p.filter = Some(Box::new(|w| {
        edit_mptcp_options(w, |o| {
            let MptcpOption::MpJoin(MpJoin::Ack { hmac }) = o else {
                return false;
            };
            *hmac = JoinHmac([0x55; 20]);
            true
        })
    }));
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(300));
    // The responder reset the joining subflow with MP_TCPRST.
    let rst = p
        .log
        .iter()
        .find(|w| w.dir == Dir::ToClient && w.flags().rst())
        .expect("a RST");
    assert_eq!(
        rst.mptcp(),
        vec![MptcpOption::MpTcpRst(crate::wire::mptcp::MpTcpRst {
            flags: crate::wire::mptcp::TcpRstFlags::default(),
            reason: TcpRstReason::MPTCP_ERROR,
        })]
    );
    // The connection is untouched: one subflow on each side, data still flows.
    assert_eq!(p.server().subflow_ids().count(), 1);
    assert_eq!(up_count(&p.server_events), 1);
    let data = pattern(50_000, 3);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
    assert_eq!(p.client.mode(), ConnMode::Mptcp);
}

#[test]
fn join_with_unknown_token_is_refused_with_mp_tcprst() {
    let mut p = Pair::new(small_config(), small_config(), &[ip("10.0.1.1")]);
    // Rewrite the join SYN's token.
    p.filter = Some(Box::new(|w| {
        edit_mptcp_options(w, |o| {
            let MptcpOption::MpJoin(MpJoin::Syn { token, .. }) = o else {
                return false;
            };
            token.0 ^= 1;
            true
        })
    }));
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(300));
    assert!(!p.refused.is_empty());
    assert!(matches!(
        p.refused[0].mptcp()[..],
        [MptcpOption::MpTcpRst(r)] if r.reason == TcpRstReason::MPTCP_ERROR
    ));
    assert_eq!(p.server().subflow_ids().count(), 1);
    let data = pattern(20_000, 4);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
}

#[test]
fn add_addr_is_retransmitted_until_echoed_and_opens_a_subflow() {
    let mut sc = small_config();
    sc.pm_server.add_addr_timeout = Duration::from_millis(500);
    let mut p = Pair::new(small_config(), sc, &[]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    // The client's echoes are lost twice.
    let mut echoes_dropped = 0;
    p.filter = Some(Box::new(move |w| {
        let echo = w.dir == Dir::ToServer
            && w.mptcp()
                .iter()
                .any(|o| matches!(o, MptcpOption::AddAddr(a) if a.hmac.is_none()));
        if echo && echoes_dropped < 2 {
            echoes_dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let now = p.now;
    p.server()
        .add_local_address(now, ip("10.9.1.1"))
        .expect("new address");
    p.run_for(Duration::from_secs(3));
    let announcements: Vec<AddAddr> = p
        .sent(Dir::ToClient)
        .into_iter()
        .flat_map(|w| {
            w.mptcp()
                .into_iter()
                .filter_map(|o| match o {
                    MptcpOption::AddAddr(a) => Some(a),
                    _ => None,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(announcements.len(), 3, "sent until the third echo arrives");
    let server_key = p.server().local_key();
    for a in &announcements {
        assert_eq!(a.addr_id, AddrId(1));
        assert_eq!(a.addr, ip("10.9.1.1"));
        assert_eq!(
            a.hmac,
            Some(crate::crypto::add_addr_hmac(
                server_key,
                p.client.local_key(),
                1,
                ip("10.9.1.1"),
                None
            ))
        );
    }
    assert!(p.client_events.contains(&MptcpEvent::AddressAnnounced {
        id: AddrId(1),
        addr: "10.9.1.1:80".parse().expect("address"),
    }));
    // Full mesh: the client opened a subflow to the announced address.
    assert_eq!(p.client.subflow_ids().count(), 2);
    assert!(
        p.client
            .stats()
            .subflows
            .iter()
            .any(|s| s.remote == "10.9.1.1:80".parse().expect("address") && s.established)
    );
}

#[test]
fn a_lost_add_addr_is_repeated_after_an_rto_not_after_two_minutes() {
    // Seeds 6217, 14345, 23573, 27346, 29273, 29827 of mptcp_seeds: the announcement
    // was lost on a lossy path and repeated only after the 120 s `add_addr_timeout`;
    // the initial path died in between, and the peer never learned the way around.
    let mut p = Pair::new(small_config(), small_config(), &[]);
    assert_eq!(
        p.server_config.pm_server.add_addr_timeout,
        Duration::from_secs(120)
    );
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    let mut dropped = 0;
    p.filter = Some(Box::new(move |w| {
        let announcement = w
            .mptcp()
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(a) if a.hmac.is_some()));
        if announcement && dropped == 0 {
            dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let announced_at = p.now;
    p.server()
        .add_local_address(announced_at, ip("10.9.1.1"))
        .expect("new address");
    // The server's RTO (RFC 6298) on its only subflow.
    let initial = p
        .server()
        .subflow_ids()
        .next()
        .expect("the initial subflow");
    let rto = p
        .server()
        .subflow_tcp(initial)
        .expect("the initial subflow")
        .stats()
        .rto;
    assert!(rto < Duration::from_secs(1), "{rto:?}");
    // When each announcement left, to the 5 ms step.
    let announcements = |p: &Pair| {
        p.sent(Dir::ToClient)
            .into_iter()
            .filter(|w| {
                w.mptcp()
                    .iter()
                    .any(|o| matches!(o, MptcpOption::AddAddr(a) if a.hmac.is_some()))
            })
            .count()
    };
    let mut sent_at = Vec::new();
    let mut seen = 0;
    while p.now < announced_at + Duration::from_secs(2) {
        p.run_for(Duration::from_millis(5));
        let n = announcements(&p);
        sent_at.extend((seen..n).map(|_| p.now));
        seen = n;
    }
    assert_eq!(sent_at.len(), 2, "the lost one and its repeat: {sent_at:?}");
    // One RTO later, not 120 s.
    let gap = sent_at[1].saturating_since(sent_at[0]);
    assert!(
        gap + Duration::from_millis(5) >= rto && gap <= rto + Duration::from_millis(5),
        "repeated after {gap:?}, RTO {rto:?}"
    );
    assert!(p.client_events.contains(&MptcpEvent::AddressAnnounced {
        id: AddrId(1),
        addr: "10.9.1.1:80".parse().expect("address"),
    }));
    assert_eq!(p.client.subflow_ids().count(), 2);
}

#[test]
fn an_address_never_echoed_gets_a_subflow_from_us_when_the_only_path_died() {
    // Seed 6217 of mptcp_seeds: the server's announcement was lost and its only path
    // died before the repeat; the client could never learn the other address, and
    // only the server could make a subflow from it (RFC 8684 §3.2).
    let mut sc = small_config();
    sc.make_after_break = Duration::from_secs(60);
    let mut cc = small_config();
    cc.make_after_break = Duration::from_secs(60);
    let mut p = Pair::new(cc, sc, &[]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    // Every announcement is lost, and the initial path is dead from now on.
    let initial = (client_addr(), server_addr());
    p.filter = Some(Box::new(move |w| {
        let announcement = w
            .mptcp()
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(_)));
        let on_initial = (w.src, w.dst) == initial || (w.dst, w.src) == initial;
        if announcement || on_initial {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    let now = p.now;
    p.server()
        .add_local_address(now, ip("10.9.1.1"))
        .expect("new address");
    let data = pattern(30_000, 5);
    let got = p.transfer(false, &data, Duration::from_secs(40));
    assert_bytes(&got, &data);
    let joined = p
        .client
        .stats()
        .subflows
        .into_iter()
        .find(|s| s.remote.ip() == ip("10.9.1.1"))
        .expect("the server's join reached the client");
    assert!(
        joined.established && joined.bytes_received > 0,
        "{joined:?}"
    );
    assert_eq!(joined.local, client_addr(), "to the client's known address");
}

#[test]
fn add_addr_with_a_bad_hmac_is_ignored() {
    let mut p = Pair::new(small_config(), small_config(), &[]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.filter = Some(Box::new(|w| {
        edit_mptcp_options(w, |o| {
            let MptcpOption::AddAddr(AddAddr { hmac: Some(h), .. }) = o else {
                return false;
            };
            h.0[0] ^= 0xff;
            true
        })
    }));
    let now = p.now;
    p.server()
        .add_local_address(now, ip("10.9.1.1"))
        .expect("new address");
    p.run_for(Duration::from_secs(1));
    assert!(
        !p.client_events
            .iter()
            .any(|e| matches!(e, MptcpEvent::AddressAnnounced { .. }))
    );
    assert_eq!(p.client.subflow_ids().count(), 1);
    // No echo went back.
    assert!(!p.sent(Dir::ToServer).iter().any(|w| {
        w.mptcp()
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(_)))
    }));
}

#[test]
fn remove_addr_closes_the_subflows_of_that_address() {
    let mut p = two_path_pair(5);
    p.client
        .remove_local_address(ip("10.0.1.1"))
        .expect("known");
    p.run_for(Duration::from_millis(300));
    assert_eq!(p.client.subflow_ids().count(), 1);
    assert_eq!(p.server().subflow_ids().count(), 1);
    assert!(
        p.server_events
            .contains(&MptcpEvent::AddressRemoved { id: AddrId(1) })
    );
    assert!(p.client_events.iter().any(|e| matches!(
        e,
        MptcpEvent::SubflowDown {
            reason: SubflowDownReason::AddressRemoved,
            ..
        }
    )));
    let data = pattern(30_000, 8);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
}

#[test]
fn stats_keep_the_final_figures_of_removed_subflows() {
    let mut p = two_path_pair(15);
    let data = pattern(200_000, 9);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
    p.run_for(Duration::from_millis(300));
    let before = p.client.stats();
    let second = before
        .subflows
        .iter()
        .find(|s| s.local.ip() == ip("10.0.1.1"))
        .copied()
        .expect("a subflow from the second address");
    assert!(before.closed_subflows.is_empty());
    p.client
        .remove_local_address(ip("10.0.1.1"))
        .expect("known");
    p.run_for(Duration::from_millis(300));
    let after = p.client.stats();
    assert_eq!(after.subflows.len(), 1);
    assert_eq!(after.closed_subflows.len(), 1);
    let closed = after.closed_subflows[0];
    assert_eq!(closed.id, second.id);
    assert_eq!((closed.local, closed.remote), (second.local, second.remote));
    assert_eq!(closed.state, crate::tcp::TcpState::Closed);
    // Nothing was written after the snapshot: its totals are the final ones.
    assert_eq!(closed.bytes_sent, second.bytes_sent);
    assert_eq!(closed.bytes_scheduled, second.bytes_scheduled);
}

#[test]
fn a_client_that_closed_its_sending_side_still_joins_its_other_paths() {
    // Regression: joins waited for the full establishment and were dropped for good if
    // the application had closed by then (request, shutdown, then a long response:
    // the response got one path only, and died with it).
    let mut p = Pair::new(small_config(), small_config(), &[ip("10.0.1.1")]);
    p.connect();
    assert_eq!(p.client.write(b"GET /"), 5);
    p.client.close();
    let response = pattern(300_000, 12);
    assert_bytes(
        &p.transfer(false, &response, Duration::from_secs(10)),
        &response,
    );
    assert_eq!(up_count(&p.client_events), 2, "{:?}", p.client_events);
    let second = p
        .client
        .stats()
        .subflows
        .iter()
        .find(|s| s.local.ip() == ip("10.0.1.1"))
        .copied()
        .expect("the join from the second address");
    assert!(second.bytes_received > 0, "it carried part of the response");
    let mut buf = [0u8; 16];
    assert_eq!(p.server().read(&mut buf), 5);
    assert_eq!(&buf[..5], b"GET /");
}

#[test]
fn a_data_fin_lost_on_a_silently_dead_subflow_is_retransmitted_on_the_others() {
    // Regression: the DATA_FIN (on a pure ACK after the data) was repeated on one
    // subflow only; when that path had died without a RST, the idle subflow never
    // timed out, never turned stale, and the connection never closed.
    let mut p = two_path_pair(16);
    let data = pattern(50_000, 13);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
    p.run_for(Duration::from_millis(300));
    // From now on, the path of the first segment carrying our DATA_FIN is a black hole.
    let mut dead: Option<SocketAddr> = None;
    p.filter = Some(Box::new(move |w| {
        if w.dir != Dir::ToServer {
            return Verdict::Pass;
        }
        let fin = w
            .mptcp()
            .iter()
            .any(|o| matches!(o, MptcpOption::Dss(d) if d.data_fin));
        if dead.is_none() && fin {
            dead = Some(w.src);
        }
        if dead == Some(w.src) {
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    }));
    p.client.close();
    p.run_for(Duration::from_secs(10));
    assert!(
        matches!(p.client.data_fin_tx(), DataFinTx::Acked { .. }),
        "{:?}",
        p.client.data_fin_tx()
    );
    assert!(p.server_events.contains(&MptcpEvent::PeerClosed));
}

#[test]
fn subflow_reset_mid_transfer_reinjects_and_data_is_intact() {
    let mut p = two_path_pair(6);
    let data = pattern(400_000, 21);
    let mut written = 0;
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    let mut reset_done = false;
    for _ in 0..4000 {
        written += p.client.write(&data[written..]);
        loop {
            let n = p.server().read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if got.len() == data.len() {
            break;
        }
        if !reset_done && got.len() > 100_000 {
            // The second path dies with a RST while it has data in flight.
            let id = p.client.subflow_ids().nth(1).expect("two subflows");
            p.client.reset_subflow(
                id,
                TcpRstReason::UNSPECIFIED,
                SubflowDownReason::LocalReset {
                    reason: TcpRstReason::UNSPECIFIED,
                },
            );
            reset_done = true;
        }
        p.run_for(Duration::from_millis(5));
    }
    assert!(reset_done);
    assert_bytes(&got, &data);
    assert!(p.client.stats().reinjections > 0);
    assert_eq!(p.client.subflow_ids().count(), 1);
}

/// An in-window segment from the client on the server's first subflow carrying
/// MP_FASTCLOSE with `key`, as a RST or as an ACK.
fn inject_fastclose(p: &mut Pair, key: MptcpKey, rst: bool) {
    let now = p.now;
    let server = p.server.as_mut().expect("server");
    let sid = server.subflow_ids().next().expect("a subflow");
    let (local, remote) = server.subflow_addrs(sid).expect("addresses");
    let tcp = server.subflow_tcp(sid).expect("tcp");
    let seq = tcp.irs() + 1 + tcp.received_offset() as u32;
    let ack = tcp.iss() + 1 + tcp.sent_offset() as u32;
    let mut seg = TcpRepr {
        src_port: remote.port(),
        dst_port: local.port(),
        seq,
        ack: if rst { SeqNum(0) } else { ack },
        flags: if rst { TcpFlags::RST } else { TcpFlags::ACK },
        window: 1000,
        urgent: 0,
        options: Default::default(),
        payload: &[],
    };
    seg.options
        .mptcp
        .push(MptcpOption::MpFastclose(MpFastclose { receiver_key: key }));
    server.handle_segment(now, sid, &seg);
}

#[test]
fn mp_fastclose_with_a_wrong_key_is_ignored_and_the_right_key_closes() {
    let mut p = two_path_pair(7);
    let server_key = p.server().local_key();
    inject_fastclose(&mut p, MptcpKey(server_key.0 ^ 1), false);
    p.run_for(Duration::from_millis(100));
    // Wrong key: nothing happens at all.
    assert!(p.server().close_reason().is_none());
    assert_eq!(p.server().subflow_ids().count(), 2);
    let data = pattern(20_000, 2);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
    // The right key, on a RST: every subflow goes and the connection closes.
    inject_fastclose(&mut p, server_key, true);
    p.run_for(Duration::from_millis(100));
    assert_eq!(p.server().close_reason(), Some(CloseReason::PeerFastClose));
    assert!(p.server_events.contains(&MptcpEvent::Closed {
        reason: CloseReason::PeerFastClose
    }));
    assert!(p.server().is_finished());
}

#[test]
fn abort_sends_mp_fastclose_with_the_peers_key() {
    let mut p = two_path_pair(8);
    p.client.abort();
    p.run_for(Duration::from_millis(100));
    let server_key = p.server().local_key();
    let fastcloses = p
        .sent(Dir::ToServer)
        .into_iter()
        .filter(|w| w.flags().rst())
        .filter(|w| {
            w.mptcp()
                == vec![MptcpOption::MpFastclose(MpFastclose {
                    receiver_key: server_key,
                })]
        })
        .count();
    assert_eq!(fastcloses, 2, "one on each subflow");
    assert_eq!(p.server().close_reason(), Some(CloseReason::PeerFastClose));
}

/// Random loss, duplication and reordering with `paths` subflows.
fn lossy_multipath(seed: u64, four: bool) {
    let mut p = Pair::with_seed(small_config(), small_config(), &[ip("10.0.1.1")], seed);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(2)), b"go");
    if four {
        let now = p.now;
        p.server()
            .add_local_address(now, ip("10.9.1.1"))
            .expect("new address");
    }
    p.run_for(Duration::from_millis(500));
    let want = if four { 4 } else { 2 };
    assert_eq!(p.client.subflow_ids().count(), want, "seed {seed}");
    p.loss = 0.03;
    p.dup = 0.02;
    p.reorder = 0.05;
    let up = pattern(60_000, seed);
    assert_bytes(&p.transfer(true, &up, Duration::from_secs(120)), &up);
    let down = pattern(30_000, seed + 7);
    assert_bytes(&p.transfer(false, &down, Duration::from_secs(120)), &down);
}

#[test]
fn byte_exact_over_two_lossy_subflows_many_seeds() {
    for seed in 0..120 {
        lossy_multipath(seed, false);
    }
}

#[test]
fn byte_exact_over_four_lossy_subflows_many_seeds() {
    for seed in 1000..1060 {
        lossy_multipath(seed, true);
    }
}

/// A filter that flips one payload byte of the `nth` data segment from the client
/// (TCP checksum recomputed, so only the DSS checksum can tell), optionally only on
/// the subflow from `only_from`.
fn corrupt_nth(nth: usize, only_from: Option<IpAddr>) -> Filter {
    let mut seen = 0;
    Box::new(move |w| {
        let repr = w.repr();
        if w.dir != Dir::ToServer || repr.payload.is_empty() {
            return Verdict::Pass;
        }
        if only_from.is_some_and(|a| a != w.src.ip()) {
            return Verdict::Pass;
        }
        seen += 1;
        if seen != nth {
            return Verdict::Pass;
        }
        let mut payload = repr.payload.to_vec();
        payload[0] ^= 0x5a;
        let corrupted = TcpRepr {
            payload: &payload,
            ..repr.clone()
        };
        rewrite(w, &corrupted)
    })
}

#[test]
fn checksum_failure_on_the_only_subflow_sends_mp_fail_then_falls_back_intact() {
    let mut cc = small_config();
    cc.checksums = true;
    let mut p = Pair::new(cc, small_config(), &[]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.filter = Some(corrupt_nth(3, None));
    let data = pattern(60_000, 31);
    let got = p.transfer(true, &data, Duration::from_secs(30));
    assert_bytes(&got, &data);
    // The receiver sent MP_FAIL, the sender the infinite mapping; both fell back.
    let fail = p.sent(Dir::ToClient).iter().any(|w| {
        w.mptcp()
            .iter()
            .any(|o| matches!(o, MptcpOption::MpFail(_)))
    });
    assert!(fail, "MP_FAIL sent");
    let infinite = p.sent(Dir::ToServer).iter().any(|w| {
        w.mptcp()
            .iter()
            .any(|o| matches!(o, MptcpOption::Dss(d) if d.mapping.is_some_and(|m| m.data_len == 0)))
    });
    assert!(infinite, "infinite mapping sent");
    assert_eq!(p.client.mode(), ConnMode::Fallback);
    assert_eq!(p.server().mode(), ConnMode::Fallback);
    let back = pattern(20_000, 32);
    assert_bytes(&p.transfer(false, &back, Duration::from_secs(30)), &back);
}

#[test]
fn checksum_failure_with_several_subflows_resets_that_subflow_and_reinjects() {
    let mut cc = small_config();
    cc.checksums = true;
    let mut p = Pair::with_seed(cc, small_config(), &[ip("10.0.1.1")], 9);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(200));
    assert_eq!(p.client.subflow_ids().count(), 2);
    p.filter = Some(corrupt_nth(2, Some(ip("10.0.1.1"))));
    let data = pattern(200_000, 33);
    let got = p.transfer(true, &data, Duration::from_secs(30));
    assert_bytes(&got, &data);
    // The server reset the subflow with MP_TCPRST "middlebox interference".
    let rst = p.sent(Dir::ToClient).into_iter().any(|w| {
        w.flags().rst()
            && w.mptcp().iter().any(|o| {
                matches!(o, MptcpOption::MpTcpRst(r) if r.reason == TcpRstReason::MIDDLEBOX_INTERFERENCE)
            })
    });
    assert!(rst);
    assert_eq!(p.client.mode(), ConnMode::Mptcp);
    assert_eq!(p.client.subflow_ids().count(), 1);
}

/// What Linux does with a `signal` endpoint: the server announces its address on a pure
/// ACK right after the handshake, before any data, so the ADD_ADDR reaches the client
/// before it is fully established (no DSS from the server yet). The join it asks for
/// waits for the full establishment and must then go out; it never did.
#[test]
fn add_addr_before_full_establishment_opens_a_subflow_once_established() {
    let mut p = Pair::new(small_config(), small_config(), &[]);
    // Linux puts the ADD_ADDR on a pure ACK without a DSS.
    p.filter = Some(Box::new(|w| {
        let repr = w.repr();
        let add_addr = repr
            .options
            .mptcp
            .iter()
            .any(|o| matches!(o, MptcpOption::AddAddr(a) if a.hmac.is_some()));
        if w.dir != Dir::ToClient || !add_addr || !repr.payload.is_empty() {
            return Verdict::Pass;
        }
        let mut stripped = repr.clone();
        stripped
            .options
            .mptcp
            .retain(|o| matches!(o, MptcpOption::AddAddr(_)));
        rewrite(w, &stripped)
    }));
    p.run_for(Duration::from_millis(15));
    let now = p.now;
    p.server()
        .add_local_address(now, ip("10.9.1.1"))
        .expect("new address");
    p.run_for(Duration::from_millis(100));
    assert!(p.client_events.contains(&MptcpEvent::AddressAnnounced {
        id: AddrId(1),
        addr: "10.9.1.1:80".parse().expect("address"),
    }));
    // The client's echo rides on a pure ACK with its keys (not fully established
    // yet), which the server answers with a data ACK: the join may already be out,
    // but never before that data ACK.
    assert!(
        p.client.subflow_ids().count() == 1 || p.client.core.fully_established,
        "no join before full establishment"
    );
    // Data from the client brings the server's DSS: fully established.
    let data = pattern(20_000, 9);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(2)), &data);
    p.run_for(Duration::from_millis(200));
    assert!(
        p.client
            .stats()
            .subflows
            .iter()
            .any(|s| s.remote == "10.9.1.1:80".parse().expect("address") && s.established),
        "joined the announced address: {:?}",
        p.client.stats().subflows
    );
}

/// Found against Linux (a veth taken down and up again): once a subflow from one of our
/// addresses failed, its pair was never tried again, and announcing the address again
/// (the runtime's "address is back" path event) was refused as a duplicate. A path
/// event for a known address retries the failed pairs.
#[test]
fn a_known_address_added_again_rejoins_after_its_subflow_failed() {
    let mut p = two_path_pair(7);
    let id = p.client.subflow_ids().nth(1).expect("two subflows");
    p.client.reset_subflow(
        id,
        TcpRstReason::UNSPECIFIED,
        SubflowDownReason::LocalReset {
            reason: TcpRstReason::UNSPECIFIED,
        },
    );
    p.run_for(Duration::from_millis(300));
    assert_eq!(
        p.client.subflow_ids().count(),
        1,
        "the failed subflow is gone"
    );
    let now = p.now;
    assert_eq!(
        p.client.add_local_address(now, ip("10.0.1.1")),
        Ok(AddrId(1)),
        "the address keeps its id"
    );
    p.run_for(Duration::from_millis(300));
    let joined: Vec<_> = p
        .client
        .stats()
        .subflows
        .into_iter()
        .filter(|s| s.local.ip() == ip("10.0.1.1") && s.established)
        .collect();
    assert_eq!(joined.len(), 1, "a new subflow from 10.0.1.1: {joined:?}");
    let data = pattern(30_000, 10);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(5)), &data);
}

#[test]
fn a_close_before_a_checksum_fallback_ends_the_stream_with_the_subflow_fin() {
    // Regression: the application wrote everything and closed while the connection was
    // MPTCP (a DATA_FIN pending); a checksum failure then made it fall back, and the
    // subflow never sent its FIN: the peer read all the data but never saw the end.
    let mut cc = small_config();
    cc.checksums = true;
    let mut p = Pair::new(cc, small_config(), &[]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.filter = Some(corrupt_nth(3, None));
    let data = pattern(40_000, 33);
    assert_eq!(p.client.write(&data), data.len());
    p.client.close();
    let mut got = Vec::new();
    let mut buf = vec![0u8; 16 * 1024];
    for _ in 0..2000 {
        p.run_for(Duration::from_millis(10));
        loop {
            let n = p.server().read(&mut buf);
            if n == 0 {
                break;
            }
            got.extend_from_slice(&buf[..n]);
        }
        if p.server_events.contains(&MptcpEvent::PeerClosed) {
            break;
        }
    }
    assert_bytes(&got, &data);
    assert_eq!(p.client.mode(), ConnMode::Fallback);
    assert!(
        p.server_events.contains(&MptcpEvent::PeerClosed),
        "{:?}",
        p.server_events
    );
}

/// The peer acknowledges data at the subflow level but its data ACK stays behind (its
/// connection level dropped the data, e.g. beyond its window). Once every subflow is
/// quiet (nothing in flight, no subflow timer), only the connection-level
/// retransmission timer can repair this: it must be armed while any sent data lacks a
/// data ACK, or the connection stalls for good (seen end to end over TUN).
#[test]
fn data_acked_only_at_the_subflow_level_is_reinjected_when_every_subflow_is_idle() {
    use std::cell::Cell;
    use std::rc::Rc;

    let mut p = Pair::new(small_config(), small_config(), &[]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(200));
    // A middlebox freezes the server's data ACK at the first value it sees.
    let freeze = Rc::new(Cell::new(true));
    let frozen: Rc<Cell<Option<u64>>> = Rc::new(Cell::new(None));
    let (f, z) = (Rc::clone(&freeze), Rc::clone(&frozen));
    p.filter = Some(Box::new(move |w| {
        if w.dir != Dir::ToClient || !f.get() {
            return Verdict::Pass;
        }
        edit_mptcp_options(w, |o| {
            let MptcpOption::Dss(crate::wire::mptcp::Dss {
                data_ack: Some(crate::wire::mptcp::DsnWire::Long(ack)),
                ..
            }) = o
            else {
                return false;
            };
            let keep = *z.get().get_or_insert(ack.0);
            z.set(Some(keep));
            *ack = crate::seq::Dsn(keep);
            true
        })
    }));
    let data = pattern(20_000, 9);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(2)), &data);
    p.run_for(Duration::from_millis(500));
    let total = 2 + data.len() as u64;
    let stats = p.client.stats();
    assert!(stats.bytes_data_acked < total, "{stats:?}");
    assert!(
        stats.subflows.iter().all(|s| s.bytes_in_flight == 0),
        "every subflow is acknowledged: {stats:?}"
    );
    freeze.set(false);
    assert!(
        p.client.poll_timeout().is_some(),
        "unacknowledged data and no timer: the connection would stall"
    );
    p.run_for(Duration::from_secs(5));
    let stats = p.client.stats();
    assert_eq!(stats.bytes_data_acked, total, "{stats:?}");
    assert!(stats.reinjections > 0);
}

#[test]
fn subflows_with_room_at_once_send_their_new_data_in_data_sequence_order() {
    // Both subflows idle with a full initial window: the scheduler maps one chunk to
    // each. Taking their segments in turn would interleave the two chunks, so that
    // over paths of equal delay every other segment reaches the receiver ahead of a
    // gap; taking new data by DSN sends the first chunk, then the second.
    let mut p = two_path_pair(3);
    p.client.write(&pattern(100_000, 14));
    let idsn = p.client.local_key().idsn();
    let mut dsns = Vec::new();
    let mut subflows = std::collections::BTreeSet::new();
    while let Some(t) = p.client.poll_transmit(p.now) {
        if t.segment.payload.is_empty() {
            continue;
        }
        subflows.insert(t.subflow);
        let mapping = t.segment.options.mptcp.iter().find_map(|o| match o {
            MptcpOption::Dss(d) => d.mapping,
            _ => None,
        });
        if let Some(m) = mapping {
            // Offsets from the first mapping: no wrap within 100 kB.
            dsns.push(m.dsn.expand(idsn).0.wrapping_sub(idsn.0));
        }
    }
    assert_eq!(subflows.len(), 2, "both subflows send");
    assert!(dsns.len() >= 10, "{dsns:?}");
    assert!(
        dsns.windows(2).all(|w| w[0] <= w[1]),
        "new data leaves out of DSN order: {dsns:?}"
    );
    assert!(
        dsns.windows(2).filter(|w| w[0] != w[1]).count() >= 1,
        "two mappings: {dsns:?}"
    );
}

#[test]
fn bytes_received_ahead_of_a_gap_are_counted() {
    // Two ACK-clocked subflows: each scheduled chunk ends in a partial segment that
    // waits on its subflow (Nagle) while the other subflow sends the data after it,
    // so part of the stream reaches the receiver ahead of a gap.
    let config = MptcpConfig {
        send_buffer: 4 << 20,
        recv_buffer: 4 << 20,
        ..small_config()
    };
    let mut p = Pair::new(config.clone(), config, &[ip("10.0.1.1")]);
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    p.run_for(Duration::from_millis(200));
    let data = pattern(1_000_000, 15);
    assert_bytes(&p.transfer(true, &data, Duration::from_secs(30)), &data);
    let held = p.server().stats().out_of_order_bytes;
    assert!(
        held > 0 && held < data.len() as u64,
        "{held} of {} bytes ahead of a gap",
        data.len()
    );
    assert_eq!(
        p.client.stats().out_of_order_bytes,
        0,
        "the client received nothing"
    );
}
