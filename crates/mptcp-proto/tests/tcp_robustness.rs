//! Hostile and odd input, flow control and timers: impossible flags, out-of-window data,
//! PAWS, ACKs of unsent data, zero windows and persist probes, keepalive, bounded state.

mod tcp_util;

use mptcp_proto::seq::SeqNum;
use mptcp_proto::tcp::{
    KeepaliveConfig, NoData, TcpConfig, TcpConnection, TcpDrop, TcpEvent, TcpState, reset_for,
};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::tcp::{TcpFlags, Timestamps};
use tcp_util::*;

const DELAY: Duration = Duration::from_millis(10);

/// A segment from the server to the client at the client's RCV.NXT, acknowledging
/// everything: a template to modify.
fn server_segment(p: &Pair) -> Segment {
    let last = p
        .sent_by(Side::Server)
        .filter(|s| !s.segment.has(TcpFlags::SYN))
        .last()
        .map(|s| s.segment.clone());
    let mut seg = last.unwrap_or_else(|| {
        let mut s = p.log[1].segment.clone();
        s.flags = TcpFlags::ACK;
        s.seq = SERVER_ISS + 1;
        s.mss = None;
        s.window_scale = None;
        s.sack_permitted = false;
        s
    });
    seg.payload.clear();
    seg.sack_blocks.clear();
    seg
}

fn established() -> Pair {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    p.run_idle(Instant::from_secs(1));
    p
}

#[test]
fn impossible_flag_combinations_are_dropped_without_reply() {
    let mut p = established();
    let base = server_segment(&p);
    let before = p.log.len();
    for flags in [
        TcpFlags::SYN | TcpFlags::FIN,
        TcpFlags::SYN | TcpFlags::RST,
        TcpFlags::SYN | TcpFlags::FIN | TcpFlags::RST | TcpFlags::ACK,
        TcpFlags::FIN,
        TcpFlags::empty(),
        TcpFlags::PSH | TcpFlags::URG,
    ] {
        let mut seg = base.clone();
        seg.flags = flags;
        let r = p.client.handle_segment(p.now, &seg.repr());
        assert_eq!(
            r,
            Err(TcpDrop::InvalidFlags { flags: flags.0 }),
            "{flags:?}"
        );
    }
    p.run_idle(Instant::from_secs(2));
    assert_eq!(p.log.len(), before);
    assert_eq!(p.client.state(), TcpState::Established);
}

#[test]
fn data_outside_the_window_is_dropped_and_answered_with_an_ack() {
    let mut p = established();
    let mut seg = server_segment(&p);
    seg.seq = SERVER_ISS + 1 + 10_000_000;
    seg.payload = vec![1; 100];
    let r = p.client.handle_segment(p.now, &seg.repr());
    assert_eq!(
        r,
        Err(TcpDrop::OutOfWindow {
            seq: seg.seq.0,
            len: 100
        })
    );
    let now = p.now;
    let reply = Segment::from_repr(&p.client.poll_transmit(now).expect("an ACK").segment);
    assert_eq!(reply.flags, TcpFlags::ACK);
    assert_eq!(reply.ack, SERVER_ISS + 1);
    assert!(reply.payload.is_empty());
    assert_eq!(p.client.readable(), 0);
}

#[test]
fn ack_of_unsent_data_is_dropped_and_answered() {
    let mut p = established();
    let mut seg = server_segment(&p);
    seg.ack = CLIENT_ISS + 1 + 5_000;
    seg.payload = vec![7; 10];
    let r = p.client.handle_segment(p.now, &seg.repr());
    assert_eq!(r, Err(TcpDrop::UnacceptableAck { ack: seg.ack.0 }));
    // The payload was not delivered with a bogus ACK.
    assert_eq!(p.client.readable(), 0);
    let now = p.now;
    assert!(
        p.client
            .poll_transmit(now)
            .is_some_and(|t| t.segment.flags == TcpFlags::ACK)
    );
}

#[test]
fn very_old_ack_is_a_blind_injection_and_gets_a_challenge_ack() {
    let mut p = established();
    let mut seg = server_segment(&p);
    seg.ack = CLIENT_ISS + 1 - 0x4000_0000;
    seg.payload = vec![7; 10];
    let r = p.client.handle_segment(p.now, &seg.repr());
    assert_eq!(r, Err(TcpDrop::UnacceptableAck { ack: seg.ack.0 }));
    assert_eq!(p.client.stats().challenge_acks, 1);
    assert_eq!(p.client.readable(), 0);
}

#[test]
fn paws_drops_a_segment_with_an_old_timestamp() {
    let mut p = established();
    let mut seg = server_segment(&p);
    let ts = seg.timestamps.expect("timestamps negotiated");
    seg.timestamps = Some(Timestamps {
        tsval: ts.tsval.wrapping_sub(1_000),
        tsecr: ts.tsecr,
    });
    seg.payload = vec![9; 50];
    let r = p.client.handle_segment(p.now, &seg.repr());
    assert_eq!(
        r,
        Err(TcpDrop::Paws {
            tsval: ts.tsval.wrapping_sub(1_000),
            ts_recent: ts.tsval
        })
    );
    assert_eq!(p.client.readable(), 0);
    assert_eq!(p.client.stats().paws_drops, 1);
    // The same segment with a current timestamp is accepted.
    seg.timestamps = Some(ts);
    assert_eq!(p.client.handle_segment(p.now, &seg.repr()), Ok(()));
    assert_eq!(p.client.readable(), 50);
}

#[test]
fn syn_sent_answers_a_bad_ack_with_a_reset_and_ignores_a_bare_rst() {
    let now = Instant::ZERO;
    let mut c = TcpConnection::connect(config(), client_addr(), server_addr(), now, SeqNum(500));
    let syn = Segment::from_repr(&c.poll_transmit(now, &mut NoData).expect("SYN").segment);
    let mut bad = syn.clone();
    bad.src_port = syn.dst_port;
    bad.dst_port = syn.src_port;
    bad.flags = TcpFlags::SYN | TcpFlags::ACK;
    bad.seq = SeqNum(77);
    bad.ack = SeqNum(9999);
    assert_eq!(
        c.handle_segment(now, &bad.repr(), &mut NoData),
        Err(TcpDrop::UnacceptableAck { ack: 9999 })
    );
    let rst = c.poll_transmit(now, &mut NoData).expect("RST").segment;
    assert_eq!((rst.flags, rst.seq), (TcpFlags::RST, SeqNum(9999)));
    let mut bare = bad.clone();
    bare.flags = TcpFlags::RST;
    assert!(c.handle_segment(now, &bare.repr(), &mut NoData).is_err());
    assert_eq!(c.state(), TcpState::SynSent);
    // A RST acknowledging our SYN is a refusal.
    bare.flags = TcpFlags::RST | TcpFlags::ACK;
    bare.ack = SeqNum(501);
    assert_eq!(c.handle_segment(now, &bare.repr(), &mut NoData), Ok(()));
    assert_eq!(c.state(), TcpState::Closed);
    assert_eq!(c.poll_event(), Some(TcpEvent::Reset));
}

#[test]
fn reset_for_an_unknown_connection_follows_rfc_9293() {
    let p = established();
    let mut seg = server_segment(&p);
    seg.payload = vec![0; 10];
    let rst = reset_for(&seg.repr()).expect("a RST");
    assert_eq!((rst.flags, rst.seq), (TcpFlags::RST, seg.ack));
    let mut syn = seg.clone();
    syn.flags = TcpFlags::SYN;
    syn.payload.clear();
    let rst = reset_for(&syn.repr()).expect("a RST");
    assert_eq!(rst.flags, TcpFlags::RST | TcpFlags::ACK);
    assert_eq!((rst.seq, rst.ack), (SeqNum(0), syn.seq + 1));
    syn.flags = TcpFlags::RST;
    assert_eq!(reset_for(&syn.repr()), None);
}

#[test]
fn zero_window_is_probed_with_backoff_and_a_window_update_resumes() {
    let small = TcpConfig {
        recv_buffer: 4096,
        ..config()
    };
    let mut p = Pair::new(config(), small, DELAY);
    p.server_app.auto_read = false;
    p.handshake();
    let data = pattern(20_000, 3);
    p.client_app.outbox = data.clone();
    // The receiver's 4 KiB fill; then the sender probes.
    p.run_until(Instant::from_secs(20), |p| p.now >= Instant::from_secs(20));
    assert_eq!(p.server().readable(), 4096);
    assert_eq!(p.client.connection().send_window(), 0);
    let probes: Vec<Instant> = p
        .sent_by(Side::Client)
        .filter(|s| s.segment.payload.is_empty() && s.segment.seq == CLIENT_ISS + 4096)
        .map(|s| s.at)
        .collect();
    // Probe periods start at the RTO (200 ms) and double: 0.2, 0.4, 0.8, 1.6, 3.2, 6.4 s...
    assert!(probes.len() >= 5, "probes at {probes:?}");
    for w in probes.windows(3) {
        assert_eq!(
            (w[2] - w[1]).total_micros(),
            2 * (w[1] - w[0]).total_micros()
        );
    }
    assert_eq!(p.client.stats().zero_window_probes as usize, probes.len());
    assert_eq!(p.client.stats().retransmits, 0);
    // The application reads: a window update reopens the flow at once.
    p.server_app.auto_read = true;
    let t = p.now;
    assert!(
        p.run_until(Instant::from_secs(40), |p| p.server_app.inbox.len()
            == data.len())
    );
    assert!(p.server_app.inbox == data);
    assert!(
        p.now - t < Duration::from_secs(1),
        "resumed by the update, not a probe"
    );
}

#[test]
fn keepalive_probes_an_idle_peer_and_gives_up() {
    let ka = TcpConfig {
        keepalive: Some(KeepaliveConfig {
            idle: Duration::from_secs(10),
            interval: Duration::from_secs(2),
            count: 3,
        }),
        ..config()
    };
    let mut p = Pair::new(ka, config(), DELAY);
    p.handshake();
    let t0 = p.now;
    // While the peer answers, probes keep the connection alive.
    p.run_until(Instant::from_secs(35), |p| p.now >= Instant::from_secs(35));
    assert_eq!(p.client.state(), TcpState::Established);
    let answered = p.client.stats().keepalive_probes;
    assert!(answered >= 2);
    // The peer vanishes.
    p.filter = Box::new(|_| Action::Drop);
    let gone = p.now;
    p.run_idle(Instant::from_secs(200));
    p.run_apps();
    assert_eq!(p.client.state(), TcpState::Closed);
    assert!(
        p.events(Side::Client)
            .ends_with(&[TcpEvent::TimedOut, TcpEvent::Closed])
    );
    let probes: Vec<Instant> = p
        .sent_by(Side::Client)
        .filter(|s| s.at >= gone && s.segment.flags == TcpFlags::ACK)
        .map(|s| s.at)
        .collect();
    assert_eq!(probes.len(), 3);
    assert_eq!(probes[1] - probes[0], Duration::from_secs(2));
    assert_eq!(probes[2] - probes[1], Duration::from_secs(2));
    let rst = p.sent_by(Side::Client).last().expect("RST");
    assert_eq!(rst.segment.flags, TcpFlags::RST);
    assert_eq!(rst.at - probes[2], Duration::from_secs(2));
    assert!(probes[0] - t0 >= Duration::from_secs(10));
}

#[test]
fn bookkeeping_stays_bounded_by_the_window_during_a_long_lossy_transfer() {
    let cfg = TcpConfig {
        recv_buffer: 64 * 1024,
        send_buffer: 64 * 1024,
        ..config()
    };
    let mut p = Pair::new(cfg.clone(), cfg, DELAY);
    p.handshake();
    let mut n = 0u64;
    p.filter = Box::new(move |s| {
        n += 1;
        if s.from == Side::Client && n.is_multiple_of(37) {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    let data = pattern(2_000_000, 5);
    p.client_app.outbox = data.clone();
    let mut max_entries = 0;
    while p.server_app.inbox.len() < data.len() && p.now < Instant::from_secs(600) {
        p.step();
        max_entries = max_entries.max(p.client.connection().bookkeeping_len());
    }
    assert!(p.server_app.inbox == data);
    // 64 KiB of window is at most 46 segments of 1448 bytes; with the time-sorted and
    // lost lists the bookkeeping stays a small multiple of that, whatever the length.
    assert!(max_entries <= 3 * 46 + 16, "{max_entries} entries");
}

#[test]
fn a_fin_waits_for_a_zero_window_to_open_instead_of_timing_out() {
    let small = TcpConfig {
        recv_buffer: 4096,
        ..config()
    };
    let sender = TcpConfig {
        max_data_retries: 2,
        ..config()
    };
    let mut p = Pair::new(sender, small, DELAY);
    p.server_app.auto_read = false;
    p.handshake();
    p.client_app.outbox = pattern(6000, 8);
    p.client_app.close_when_done = true;
    p.run_until(Instant::from_secs(30), |p| p.now >= Instant::from_secs(30));
    // The window is full and stays shut for 30 s: no FIN was sent, the connection lives.
    assert_eq!(p.client.state(), TcpState::FinWait1);
    assert!(
        !p.sent_by(Side::Client)
            .any(|s| s.segment.has(TcpFlags::FIN))
    );
    assert!(p.client.stats().zero_window_probes >= 5);
    assert_eq!(p.client.stats().rto_count, 0);
    p.server_app.auto_read = true;
    let limit = p.now + Duration::from_secs(1);
    assert!(p.run_until(limit, |p| p.client.state() == TcpState::FinWait2));
    assert!(p.server_app.inbox == pattern(6000, 8));
}

#[test]
fn an_owner_requested_window_probe_is_answered_with_the_peers_window() {
    // The MPTCP layer asks a subflow for a zero-window probe when the connection-level
    // window blocks data the subflow never saw: the RFC 9293 §3.8.6.1 form, below
    // SND.UNA and without data, which the peer must answer whatever its window.
    let mut p = established();
    p.client_app.outbox = pattern(3000, 4);
    p.run_until(Instant::from_secs(2), |p| p.server_app.inbox.len() == 3000);
    p.run_idle(Instant::from_secs(3));
    let before = p.log.len();
    p.client.connection_mut().request_window_probe();
    p.run_idle(Instant::from_secs(4));
    let after: Vec<&Sent> = p.log[before..].iter().collect();
    assert_eq!(after.len(), 2, "the probe and its answer: {after:?}");
    let (probe, answer) = (&after[0].segment, &after[1].segment);
    assert_eq!(after[0].from, Side::Client);
    assert_eq!(probe.flags, TcpFlags::ACK);
    assert!(probe.payload.is_empty());
    assert_eq!(probe.seq, CLIENT_ISS + 3000);
    assert_eq!(after[1].from, Side::Server);
    assert_eq!(answer.flags, TcpFlags::ACK);
    assert_eq!(answer.ack, CLIENT_ISS + 3001);
    assert_eq!(p.client.stats().zero_window_probes, 1);
    // A one-off: nothing follows.
    p.run_idle(Instant::from_secs(60));
    assert_eq!(p.log.len(), before + 2);
}
