//! Loss during the MP_JOIN four-way handshake (RFC 8684 §3.2): whichever of the four
//! messages is lost, once or twice, the joined subflow must become usable for data
//! within a bounded time and then carry data in both directions.

use super::*;
use crate::mptcp::SubflowStats;
use crate::wire::mptcp::MpJoin;

const JOIN_IP: &str = "10.0.1.1";

/// The messages of the join handshake, as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum JoinMsg {
    Syn,
    SynAck,
    /// The initiator's ACK with the full HMAC.
    ThirdAck,
    /// The responder's ACK that lets the initiator send data.
    FourthAck,
}

const ALL: [JoinMsg; 4] = [
    JoinMsg::Syn,
    JoinMsg::SynAck,
    JoinMsg::ThirdAck,
    JoinMsg::FourthAck,
];

fn is_join_ack(w: &Wire) -> bool {
    w.mptcp()
        .iter()
        .any(|o| matches!(o, MptcpOption::MpJoin(MpJoin::Ack { .. })))
}

/// Drops the first `times` segments that are `msg` on the joined path. A fourth ACK is
/// any segment without SYN from the responder before the initiator's first data
/// segment on the subflow.
fn drop_join_msg(msg: JoinMsg, times: usize) -> Filter {
    let join_ip = ip(JOIN_IP);
    let mut dropped = 0;
    let mut initiator_sent_data = false;
    Box::new(move |w| {
        let to_server = w.dir == Dir::ToServer && w.src.ip() == join_ip;
        let to_client = w.dir == Dir::ToClient && w.dst.ip() == join_ip;
        if to_server && w.payload_len() > 0 {
            initiator_sent_data = true;
        }
        let flags = w.flags();
        let hit = match msg {
            JoinMsg::Syn => to_server && flags.syn() && !flags.ack(),
            JoinMsg::SynAck => to_client && flags.syn() && flags.ack(),
            JoinMsg::ThirdAck => to_server && is_join_ack(w),
            JoinMsg::FourthAck => to_client && !flags.syn() && !initiator_sent_data,
        };
        if hit && dropped < times {
            dropped += 1;
            Verdict::Drop
        } else {
            Verdict::Pass
        }
    })
}

fn joined(c: &MptcpConnection) -> Option<SubflowStats> {
    let join_ip = ip(JOIN_IP);
    c.stats()
        .subflows
        .into_iter()
        .find(|s| s.local.ip() == join_ip || s.remote.ip() == join_ip)
}

/// Usable for data at both ends: established at the MPTCP level and not avoided by the
/// scheduler as potentially failed.
fn usable(s: Option<SubflowStats>) -> bool {
    s.is_some_and(|s| s.established && !s.stale)
}

/// Runs the join with `msg` lost `times` times; returns when (after full establishment)
/// the joined subflow became usable at both ends, after checking it then carries data
/// both ways.
fn join_with_loss(msg: JoinMsg, times: usize) -> Duration {
    let mut p = Pair::new(small_config(), small_config(), &[ip(JOIN_IP)]);
    p.filter = Some(drop_join_msg(msg, times));
    p.connect();
    assert_bytes(&p.transfer(true, b"go", Duration::from_secs(1)), b"go");
    let start = p.now;
    // Within the initiator's SYN backoff (300 ms initial RTO: 0.3 + 0.6 s) or the
    // third ACK's repetitions, plus slack: a second or two, never the whole run.
    let deadline = start + Duration::from_secs(4);
    while p.now < deadline
        && !(usable(joined(&p.client)) && usable(p.server.as_ref().and_then(joined)))
    {
        p.run_for(Duration::from_millis(10));
    }
    let took = p.now.saturating_since(start);
    let case = format!("{msg:?} lost {times}x");
    assert!(
        usable(joined(&p.client)),
        "{case}: the initiator's subflow is not usable after {took:?}: {:?}\n{}",
        joined(&p.client),
        p.dump()
    );
    assert!(
        usable(p.server.as_ref().and_then(joined)),
        "{case}: the responder's subflow is not usable after {took:?}: {:?}",
        p.server.as_ref().and_then(joined)
    );
    let up = pattern(300_000, 31);
    assert_bytes(&p.transfer(true, &up, Duration::from_secs(20)), &up);
    let down = pattern(300_000, 32);
    assert_bytes(&p.transfer(false, &down, Duration::from_secs(20)), &down);
    let client_side = joined(&p.client).expect("the joined subflow is still there");
    let server_side = p
        .server
        .as_ref()
        .and_then(joined)
        .expect("at the server too");
    assert!(
        client_side.bytes_sent > 10_000,
        "{case}: the joined subflow carries the upload: {client_side:?}"
    );
    assert!(
        server_side.bytes_sent > 10_000,
        "{case}: the joined subflow carries the download: {server_side:?}"
    );
    took
}

#[test]
fn a_join_that_loses_any_handshake_message_once_becomes_usable_and_carries_data() {
    for msg in ALL {
        let took = join_with_loss(msg, 1);
        // One initiator RTO (300 ms) and a few round trips; measured 390 ms each.
        assert!(
            took <= Duration::from_secs(1),
            "{msg:?}: usable after {took:?}"
        );
    }
}

#[test]
fn a_join_that_loses_any_handshake_message_twice_becomes_usable_and_carries_data() {
    for msg in ALL {
        let took = join_with_loss(msg, 2);
        // Two backed-off RTOs (0.3 + 0.6 s) and a few round trips; measured 990 ms for
        // the SYN and the SYN/ACK, 790 ms for the third and fourth ACK.
        assert!(
            took <= Duration::from_millis(1500),
            "{msg:?}: usable after {took:?}"
        );
    }
}
