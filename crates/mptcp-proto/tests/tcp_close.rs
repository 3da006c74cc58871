//! Every close path: FIN both ways, simultaneous close, TIME-WAIT, RST, abort.

mod tcp_util;

use mptcp_proto::tcp::{TcpConfig, TcpEvent, TcpState};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::tcp::TcpFlags;
use tcp_util::*;

const DELAY: Duration = Duration::from_millis(10);

fn short_time_wait() -> TcpConfig {
    TcpConfig {
        time_wait: Duration::from_secs(2),
        ..config()
    }
}

#[test]
fn active_close_goes_through_fin_wait_and_time_wait_for_the_configured_2msl() {
    let mut p = Pair::new(short_time_wait(), short_time_wait(), DELAY);
    p.handshake();
    p.client_app.outbox = pattern(3000, 1);
    p.client_app.close_when_done = true;
    assert!(p.run_until(Instant::from_secs(5), |p| p.server().state()
        == TcpState::CloseWait));
    p.run_apps();
    assert!(p.server_app.inbox == pattern(3000, 1));
    // The client's FIN rode on its last data segment.
    let fin = p
        .sent_by(Side::Client)
        .find(|s| s.segment.has(TcpFlags::FIN))
        .expect("client FIN");
    assert_eq!(fin.segment.payload.len(), 3000 - 1448 - 1448);
    assert!(p.run_until(Instant::from_secs(5), |p| p.client.state()
        == TcpState::FinWait2));
    // The server closes after reading everything.
    p.server_mut().close();
    assert_eq!(p.server().state(), TcpState::LastAck);
    assert!(p.run_until(Instant::from_secs(5), |p| p.client.state()
        == TcpState::TimeWait));
    let entered = p.now;
    assert!(p.run_until(Instant::from_secs(5), |p| p.server().state()
        == TcpState::Closed));
    assert_eq!(p.now - entered, DELAY);
    assert!(p.run_until(Instant::from_secs(10), |p| p.client.state()
        == TcpState::Closed));
    assert_eq!(p.now - entered, Duration::from_secs(2));
    p.run_apps();
    assert_eq!(
        p.events(Side::Client),
        vec![
            TcpEvent::Connected,
            TcpEvent::Writable,
            TcpEvent::PeerClosed,
            TcpEvent::Closed
        ]
    );
    assert_eq!(p.events(Side::Server).last(), Some(&TcpEvent::Closed));
    assert!(p.events(Side::Server).contains(&TcpEvent::PeerClosed));
}

#[test]
fn simultaneous_close_passes_through_closing_on_both_sides() {
    let mut p = Pair::new(short_time_wait(), short_time_wait(), DELAY);
    p.handshake();
    p.client.close();
    p.server_mut().close();
    assert_eq!(p.client.state(), TcpState::FinWait1);
    assert!(p.run_until(Instant::from_secs(1), |p| p.client.state()
        == TcpState::Closing
        && p.server().state() == TcpState::Closing));
    assert!(p.run_until(Instant::from_secs(1), |p| p.client.state()
        == TcpState::TimeWait
        && p.server().state() == TcpState::TimeWait));
    let t = p.now;
    assert!(p.run_until(Instant::from_secs(10), |p| p.client.state()
        == TcpState::Closed
        && p.server().state() == TcpState::Closed));
    assert_eq!(p.now - t, Duration::from_secs(2));
}

#[test]
fn retransmitted_fin_in_time_wait_is_acked_and_restarts_the_timer() {
    let mut p = Pair::new(short_time_wait(), short_time_wait(), DELAY);
    p.handshake();
    p.client.close();
    assert!(p.run_until(Instant::from_secs(1), |p| p.client.state()
        == TcpState::FinWait2));
    p.server_mut().close();
    // The client's ACK of the server's FIN is lost: the server retransmits its FIN.
    let drop_from = p.sent_by(Side::Client).count();
    p.filter = on_client_segment(drop_from, Action::Drop);
    assert!(p.run_until(Instant::from_secs(1), |p| p.client.state()
        == TcpState::TimeWait));
    let entered = p.now;
    assert!(p.run_until(Instant::from_secs(10), |p| p.server().state()
        == TcpState::Closed));
    let refin = p
        .sent_by(Side::Server)
        .filter(|s| s.segment.has(TcpFlags::FIN))
        .map(|s| s.at)
        .collect::<Vec<_>>();
    assert_eq!(refin.len(), 2, "FIN sent and retransmitted once");
    let resent = refin[1] + DELAY;
    assert!(p.run_until(Instant::from_secs(20), |p| p.client.state()
        == TcpState::Closed));
    // TIME-WAIT restarted when the retransmitted FIN arrived.
    assert_eq!(p.now, resent + Duration::from_secs(2));
    assert!(p.now > entered + Duration::from_secs(2));
}

#[test]
fn rst_at_rcv_nxt_resets_the_connection() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    p.server_mut().abort();
    assert_eq!(p.server().state(), TcpState::Closed);
    assert!(p.run_until(Instant::from_secs(1), |p| p.client.state()
        == TcpState::Closed));
    p.run_apps();
    let rst = p.sent_by(Side::Server).last().expect("RST").segment.clone();
    assert_eq!(rst.flags, TcpFlags::RST);
    assert_eq!(rst.seq, SERVER_ISS + 1);
    assert_eq!(
        p.events(Side::Client),
        vec![TcpEvent::Connected, TcpEvent::Reset, TcpEvent::Closed]
    );
}

#[test]
fn in_window_rst_not_at_rcv_nxt_gets_a_challenge_ack_and_the_connection_survives() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    let before = p.sent_by(Side::Client).count();
    let mut rst = p.log[1].segment.clone(); // the SYN-ACK, as a template from the server
    rst.flags = TcpFlags::RST;
    rst.seq = SERVER_ISS + 1 + 100;
    rst.mss = None;
    rst.window_scale = None;
    rst.sack_permitted = false;
    rst.timestamps = None;
    p.inject(Side::Client, rst.clone());
    p.step();
    assert_eq!(p.client.state(), TcpState::Established);
    let replies: Vec<Segment> = p
        .sent_by(Side::Client)
        .skip(before)
        .map(|s| s.segment.clone())
        .collect();
    assert_eq!(replies.len(), 1);
    assert_eq!(replies[0].flags, TcpFlags::ACK);
    assert_eq!(replies[0].ack, SERVER_ISS + 1);
    assert_eq!(p.client.stats().challenge_acks, 1);
    // Out of window: silently dropped.
    rst.seq = SERVER_ISS + 1 + 10_000_000;
    p.inject(Side::Client, rst);
    p.step();
    assert_eq!(p.sent_by(Side::Client).count(), before + 1);
    assert_eq!(p.client.state(), TcpState::Established);
}

#[test]
fn challenge_acks_are_rate_limited() {
    let cfg = TcpConfig {
        challenge_ack_limit: 3,
        challenge_ack_interval: Duration::from_secs(1),
        ..config()
    };
    let mut p = Pair::new(cfg.clone(), cfg, DELAY);
    p.handshake();
    let before = p.sent_by(Side::Client).count();
    let mut syn = p.log[1].segment.clone();
    syn.flags = TcpFlags::SYN;
    for _ in 0..10 {
        p.inject(Side::Client, syn.clone());
    }
    p.step();
    assert_eq!(p.sent_by(Side::Client).count() - before, 3);
    let st = p.client.stats();
    assert_eq!((st.challenge_acks, st.challenge_acks_suppressed), (3, 7));
    assert_eq!(p.client.state(), TcpState::Established);
}

#[test]
fn abort_in_syn_sent_sends_nothing() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.client.abort();
    p.run_idle(Instant::from_secs(5));
    p.run_apps();
    assert!(p.log.is_empty());
    assert_eq!(p.events(Side::Client), vec![TcpEvent::Closed]);
}

#[test]
fn a_closed_connection_drops_everything() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    p.client.abort();
    let seg = p.log[2].segment.clone();
    assert!(p.client.handle_segment(p.now, &seg.repr()).is_err());
}
