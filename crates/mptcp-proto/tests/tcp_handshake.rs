//! Handshake, option negotiation and data in both directions.

mod tcp_util;

use mptcp_proto::tcp::{TcpConfig, TcpEvent, TcpState};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::tcp::TcpFlags;
use tcp_util::*;

#[test]
fn three_way_handshake_negotiates_mss_window_scale_sack_and_timestamps() {
    let server_cfg = TcpConfig {
        mss: 1200,
        recv_buffer: 1 << 20,
        ..config()
    };
    let mut p = Pair::new(config(), server_cfg, Duration::from_millis(10));
    p.handshake();
    let syn = &p.log[0];
    assert_eq!((syn.from, syn.at), (Side::Client, Instant::ZERO));
    assert_eq!(syn.segment.flags, TcpFlags::SYN);
    assert_eq!(syn.segment.seq, CLIENT_ISS);
    assert_eq!(syn.segment.mss, Some(1460));
    // A 256 KiB buffer needs a shift of 3 to fit 16 bits.
    assert_eq!(syn.segment.window_scale, Some(3));
    assert!(syn.segment.sack_permitted);
    assert!(syn.segment.timestamps.is_some_and(|t| t.tsecr == 0));
    assert_eq!(syn.segment.window, 0xffff);

    let synack = &p.log[1];
    assert_eq!(synack.from, Side::Server);
    assert_eq!(synack.at, Instant::from_millis(10));
    assert_eq!(synack.segment.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(synack.segment.seq, SERVER_ISS);
    assert_eq!(synack.segment.ack, CLIENT_ISS + 1);
    assert_eq!(synack.segment.mss, Some(1200));
    assert_eq!(synack.segment.window_scale, Some(5));
    let syn_ts = syn.segment.timestamps.expect("SYN timestamps");
    assert_eq!(
        synack.segment.timestamps.map(|t| t.tsecr),
        Some(syn_ts.tsval)
    );

    let ack = &p.log[2];
    assert_eq!(ack.at, Instant::from_millis(20));
    assert_eq!(ack.segment.flags, TcpFlags::ACK);
    assert_eq!(ack.segment.seq, CLIENT_ISS + 1);
    assert_eq!(ack.segment.ack, SERVER_ISS + 1);
    assert_eq!(p.log.len(), 3);

    let c = p.client.connection();
    let s = p.server().connection();
    assert_eq!(c.stats().send_mss, 1200);
    assert_eq!(s.stats().send_mss, 1200);
    assert_eq!(c.window_shifts(), (3, 5));
    assert_eq!(s.window_shifts(), (5, 3));
    assert!(c.sack_enabled() && s.sack_enabled());
    assert!(c.timestamps_enabled() && s.timestamps_enabled());
    // The SYN gave the client an RTT sample of one round trip.
    assert_eq!(c.stats().srtt, Some(Duration::from_millis(20)));
    assert_eq!(s.stats().srtt, Some(Duration::from_millis(20)));
    assert_eq!(p.events(Side::Client), vec![TcpEvent::Connected]);
    assert_eq!(p.events(Side::Server), vec![TcpEvent::Connected]);
}

#[test]
fn options_are_used_only_when_both_sides_offer_them() {
    let server_cfg = TcpConfig {
        sack: false,
        timestamps: false,
        ..config()
    };
    let mut p = Pair::new(config(), server_cfg, Duration::from_millis(5));
    p.handshake();
    let synack = &p.log[1].segment;
    assert!(!synack.sack_permitted);
    assert_eq!(synack.timestamps, None);
    let c = p.client.connection();
    assert!(!c.sack_enabled());
    assert!(!c.timestamps_enabled());
    // Later segments carry no timestamps either.
    assert_eq!(p.log[2].segment.timestamps, None);
}

#[test]
fn no_window_scale_from_the_peer_means_unscaled_windows_both_ways() {
    let mut p = Pair::new(config(), config(), Duration::from_millis(5));
    // Strip the window-scale option from the client's SYN on the wire.
    p.filter = Box::new(|_| Action::Deliver);
    p.step(); // client sends SYN
    let mut syn = p.log[0].segment.clone();
    syn.window_scale = None;
    let mut q = Pair::new(config(), config(), Duration::from_millis(5));
    q.filter = Box::new(|s| {
        if s.index == 0 && s.from == Side::Client {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    q.step();
    q.inject(Side::Server, syn);
    q.step();
    q.step();
    let synack = q
        .sent_by(Side::Server)
        .next()
        .expect("SYN-ACK")
        .segment
        .clone();
    assert_eq!(synack.window_scale, None);
    assert_eq!(q.server().connection().window_shifts(), (0, 0));
}

#[test]
fn data_flows_both_ways_byte_exact() {
    let mut p = Pair::new(config(), config(), Duration::from_millis(10));
    p.handshake();
    let up = pattern(100_000, 1);
    let down = pattern(70_001, 2);
    p.client_app.outbox = up.clone();
    p.server_app.outbox = down.clone();
    let done = p.run_until(Instant::from_secs(30), |p| {
        p.server_app.inbox.len() == up.len() && p.client_app.inbox.len() == down.len()
    });
    assert!(done, "transfer incomplete at {:?}", p.now);
    assert_eq!(p.server_app.inbox, up);
    assert_eq!(p.client_app.inbox, down);
    assert_eq!(p.client.stats().retransmits, 0);
    assert_eq!(p.server().stats().retransmits, 0);
    // Every data segment respects the MSS minus the 12 option bytes of timestamps.
    assert!(p.log.iter().all(|s| s.segment.payload.len() <= 1448));
    // The last ACK frees the rest of the send buffer one one-way delay later.
    assert!(
        p.run_until(p.now + Duration::from_millis(50), |p| p.client.send_queue()
            == 0)
    );
}

#[test]
fn syn_retransmits_back_off_and_give_up_after_max_syn_retries() {
    let cfg = TcpConfig {
        max_syn_retries: 3,
        ..config()
    };
    let mut p = Pair::new(cfg, config(), Duration::from_millis(10));
    p.filter = Box::new(|_| Action::Drop);
    p.run_idle(Instant::from_secs(100));
    let times: Vec<u64> = p
        .sent_by(Side::Client)
        .map(|s| s.at.total_millis())
        .collect();
    assert_eq!(times, vec![0, 1_000, 3_000, 7_000]);
    assert_eq!(p.client.state(), TcpState::Closed);
    assert_eq!(
        p.events(Side::Client),
        vec![TcpEvent::TimedOut, TcpEvent::Closed]
    );
}

#[test]
fn lost_syn_ack_is_retransmitted_and_handshake_completes() {
    let mut p = Pair::new(config(), config(), Duration::from_millis(10));
    p.filter = Box::new(|s| {
        if s.from == Side::Server && s.index == 0 {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    p.handshake();
    // Client SYN retransmitted at 1 s; server answers it at once with its SYN-ACK
    // (and its own timer would have resent it at 1.01 s).
    let client_syns: Vec<u64> = p
        .sent_by(Side::Client)
        .filter(|s| s.segment.has(TcpFlags::SYN))
        .map(|s| s.at.total_millis())
        .collect();
    assert_eq!(client_syns, vec![0, 1_000]);
    assert!(p.now <= Instant::from_millis(1_030));
}

#[test]
fn simultaneous_open_completes_on_both_sides() {
    use mptcp_proto::tcp::TcpSocket;
    let now = Instant::ZERO;
    let mut a = TcpSocket::connect(config(), client_addr(), server_addr(), now, SeqNum(100));
    let mut b = TcpSocket::connect(config(), server_addr(), client_addr(), now, SeqNum(9_000));
    let syn_a = Segment::from_repr(&a.poll_transmit(now).expect("SYN a").segment);
    let syn_b = Segment::from_repr(&b.poll_transmit(now).expect("SYN b").segment);
    a.handle_segment(now, &syn_b.repr())
        .expect("a takes b's SYN");
    b.handle_segment(now, &syn_a.repr())
        .expect("b takes a's SYN");
    assert_eq!(a.state(), TcpState::SynReceived);
    let sa_a = Segment::from_repr(&a.poll_transmit(now).expect("SYN-ACK a").segment);
    let sa_b = Segment::from_repr(&b.poll_transmit(now).expect("SYN-ACK b").segment);
    assert_eq!(sa_a.flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(sa_a.seq, SeqNum(100));
    assert_eq!(sa_a.ack, SeqNum(9_001));
    a.handle_segment(now, &sa_b.repr())
        .expect("a takes SYN-ACK");
    b.handle_segment(now, &sa_a.repr())
        .expect("b takes SYN-ACK");
    assert_eq!(a.state(), TcpState::Established);
    assert_eq!(b.state(), TcpState::Established);
}

use mptcp_proto::seq::SeqNum;
