//! Loss recovery: fast retransmit, RACK, tail loss probes, RTO backoff, D-SACK.

mod tcp_util;

use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::tcp::{TcpConfig, TcpEvent, TcpState};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::tcp::TcpFlags;
use tcp_util::*;

const DELAY: Duration = Duration::from_millis(20);

/// Client data segments (with payload) sent so far.
fn client_data(p: &Pair) -> Vec<&Sent> {
    p.sent_by(Side::Client)
        .filter(|s| !s.segment.payload.is_empty())
        .collect()
}

/// Index (among all client segments) of the n-th client data segment after the
/// handshake, given the handshake used client segments 0 (SYN) and 1 (ACK).
fn nth_data_index(n: usize) -> usize {
    n + 2
}

#[test]
fn one_loss_in_a_window_recovers_by_fast_retransmit_without_rto() {
    for cc in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
        let cfg = TcpConfig {
            congestion_control: cc,
            ..config()
        };
        let mut p = Pair::new(cfg.clone(), cfg, DELAY);
        p.handshake();
        let lost = nth_data_index(3);
        p.filter = on_client_segment(lost, Action::Drop);
        let data = pattern(10 * 1448, 7);
        p.client_sends_intact(&data, Instant::from_secs(10));
        let st = p.client.stats();
        assert_eq!(st.retransmits, 1, "{cc:?}: exactly one retransmission");
        assert_eq!(st.rto_count, 0, "{cc:?}: no RTO");
        assert_eq!(st.fast_recoveries, 1, "{cc:?}");
        assert_eq!(st.fast_retransmits, 1, "{cc:?}");
        assert_eq!(st.tlp_count, 0, "{cc:?}");
        let retx: Vec<&Sent> = client_data(&p)
            .into_iter()
            .filter(|s| s.segment.seq == CLIENT_ISS + 1 + 3 * 1448)
            .collect();
        assert_eq!(retx.len(), 2, "the lost segment and its one retransmission");
        // Retransmitted one RTT after the original: the SACKs for later segments
        // arrive 40 ms after they were sent, and three SACKed segments trigger RACK
        // with a zero reordering window.
        assert_eq!(retx[1].at - retx[0].at, Duration::from_millis(40));
        // The congestion window was reduced once.
        assert!(st.ssthresh < u64::MAX);
    }
}

#[test]
fn one_loss_without_sack_recovers_on_the_third_duplicate_ack() {
    let cfg = TcpConfig {
        sack: false,
        congestion_control: CcAlgorithm::NewReno,
        ..config()
    };
    let mut p = Pair::new(cfg.clone(), cfg, DELAY);
    p.handshake();
    let lost = nth_data_index(2);
    p.filter = on_client_segment(lost, Action::Drop);
    let data = pattern(10 * 1448, 8);
    p.client_sends_intact(&data, Instant::from_secs(10));
    let st = p.client.stats();
    assert_eq!(
        (st.retransmits, st.rto_count, st.fast_recoveries),
        (1, 0, 1)
    );
    // The server sent one duplicate ACK per out-of-order segment: 7 of them.
    let acks_of_hole = p
        .sent_by(Side::Server)
        .filter(|s| s.segment.ack == CLIENT_ISS + 1 + 2 * 1448)
        .count();
    assert_eq!(
        acks_of_hole, 8,
        "one ACK for the two in-order segments' tail, seven duplicates"
    );
}

#[test]
fn tail_loss_is_recovered_by_a_probe_not_an_rto() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    // The last two of five segments are lost: no SACK can reveal them.
    let (a, b) = (nth_data_index(3), nth_data_index(4));
    p.filter = Box::new(move |s| {
        if s.from == Side::Client
            && (s.index == a || s.index == b)
            && s.at < Instant::from_millis(100)
        {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    let data = pattern(5 * 1448, 9);
    let sent_at = Instant::from_millis(60);
    p.client_sends_intact(&data, Instant::from_secs(10));
    let st = p.client.stats();
    assert_eq!(st.tlp_count, 1);
    assert_eq!(st.retransmits, 2);
    assert_eq!(st.rto_count, 0);
    let when = |offset: u32| -> Vec<Instant> {
        client_data(&p)
            .into_iter()
            .filter(|s| s.segment.seq == CLIENT_ISS + 1 + offset)
            .map(|s| s.at)
            .collect()
    };
    // The receiver ACKs the first two at once (arriving at 100 ms) and the third after
    // its 40 ms delayed-ACK timer (arriving at 140 ms, an 80 ms RTT sample: SRTT =
    // 7/8 * 40 + 1/8 * 80 = 45 ms). That ACK re-arms the probe timer with PTO =
    // 2 * SRTT = 90 ms: the probe re-sends the last segment at 230 ms.
    assert_eq!(when(4 * 1448), vec![sent_at, Instant::from_millis(230)]);
    // Its SACK (at 270 ms) lets RACK declare the fourth lost: retransmitted at once.
    assert_eq!(when(3 * 1448), vec![sent_at, Instant::from_millis(270)]);
}

#[test]
fn rto_doubles_on_repeated_loss() {
    // Without SACK there is no tail loss probe: the RTO alone recovers.
    let cfg = TcpConfig {
        sack: false,
        ..config()
    };
    let mut p = Pair::new(cfg.clone(), cfg, DELAY);
    p.handshake();
    let start = p.now;
    // Every client data segment is lost until 10 s.
    p.filter = Box::new(|s| {
        if s.from == Side::Client && !s.segment.payload.is_empty() && s.at < Instant::from_secs(10)
        {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    p.client_app.outbox = pattern(1000, 3);
    assert!(p.run_until(Instant::from_secs(30), |p| {
        p.server_app.inbox.len() == 1000 && p.client.send_queue() == 0
    }));
    let times: Vec<Duration> = client_data(&p).iter().map(|s| s.at - start).collect();
    // SRTT 40 ms, RTTVAR 20 ms: RTO = 40 + max(4 * 20, 200) = 240 ms (the minimum
    // bounds the variance term, as in Linux), then doubling.
    let ms = |v: u64| Duration::from_millis(v);
    assert_eq!(
        times,
        vec![
            ms(0),
            ms(240),
            ms(720),
            ms(1_680),
            ms(3_600),
            ms(7_440),
            ms(15_120)
        ]
    );
    let st = p.client.stats();
    assert_eq!(st.rto_count, 6);
    assert_eq!(st.retransmits, 6);
    // The successful ACK ends the backoff: SRTT plus the 200 ms minimum again.
    let srtt = st.srtt.expect("RTT measured");
    assert_eq!(st.rto, srtt + Duration::from_millis(200));
}

#[test]
fn data_retries_exhausted_times_out_and_resets() {
    let cfg = TcpConfig {
        sack: false,
        max_data_retries: 3,
        ..config()
    };
    let mut p = Pair::new(cfg.clone(), cfg, DELAY);
    p.handshake();
    p.filter = Box::new(|s| {
        if s.from == Side::Client && s.at > Instant::from_millis(40) {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    p.client_app.outbox = pattern(100, 3);
    p.run_idle(Instant::from_secs(60));
    assert_eq!(p.client.state(), TcpState::Closed);
    let ev = p.events(Side::Client);
    assert_eq!(&ev[ev.len() - 2..], &[TcpEvent::TimedOut, TcpEvent::Closed]);
    let last = p.sent_by(Side::Client).last().expect("segments");
    assert_eq!(last.segment.flags, TcpFlags::RST);
    assert_eq!(p.client.stats().rto_count, 3);
}

#[test]
fn duplicate_segment_is_reported_with_a_dsack_block() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    let dup = nth_data_index(0);
    p.filter = on_client_segment(dup, Action::Duplicate);
    p.client_app.outbox = pattern(1000, 4);
    assert!(p.run_until(Instant::from_secs(2), |p| p.server_app.inbox.len() == 1000));
    p.run_idle(Instant::from_secs(2));
    let dsacks: Vec<&Sent> = p
        .sent_by(Side::Server)
        .filter(|s| !s.segment.sack_blocks.is_empty())
        .collect();
    assert_eq!(dsacks.len(), 1);
    let block = dsacks[0].segment.sack_blocks[0];
    assert_eq!(block.left, CLIENT_ISS + 1);
    assert_eq!(block.right, CLIENT_ISS + 1 + 1000);
    assert_eq!(p.server().stats().dsack_sent, 1);
    assert_eq!(p.client.stats().dsack_received, 1);
    assert_eq!(p.server_app.inbox, pattern(1000, 4));
}

#[test]
fn reordered_segment_does_not_cause_a_retransmission() {
    let mut p = Pair::new(config(), config(), DELAY);
    p.handshake();
    let late = nth_data_index(1);
    p.filter = on_client_segment(late, Action::Delay(Duration::from_millis(2)));
    let data = pattern(4 * 1448, 5);
    p.client_app.outbox = data.clone();
    assert!(
        p.run_until(Instant::from_secs(5), |p| p.server_app.inbox.len()
            == data.len())
    );
    p.run_idle(Instant::from_secs(5));
    assert_eq!(p.server_app.inbox, data);
    // One SACKed segment is below DupThresh, and the reordering window (min_rtt/4 =
    // 10 ms) outlasts the 2 ms delay.
    assert_eq!(p.client.stats().retransmits, 0);
}

#[test]
fn the_window_regrows_by_slow_start_after_an_rto() {
    // RFC 5681 §3.1 / RFC 6298 §5.7: after a timeout the sender restarts from one
    // segment in slow start. A whole initial window (10 segments) is lost, so only the
    // RTO recovers; repairing the 10 segments must then take 1 + 2 + 4 + ... segments per
    // round trip, not one per round trip for the whole episode.
    // Without SACK there is no tail loss probe to pre-empt the RTO.
    let cfg = TcpConfig {
        sack: false,
        congestion_control: CcAlgorithm::NewReno,
        ..config()
    };
    let mut p = Pair::new(cfg.clone(), cfg, DELAY);
    p.handshake();
    p.filter = Box::new(|s| {
        if s.from == Side::Client
            && !s.segment.payload.is_empty()
            && s.at < Instant::from_millis(100)
        {
            Action::Drop
        } else {
            Action::Deliver
        }
    });
    let data = pattern(10 * 1448, 11);
    p.client_sends_intact(&data, Instant::from_secs(10));
    let st = p.client.stats();
    assert_eq!(st.rto_count, 1);
    let retransmitted: Vec<Duration> = client_data(&p)
        .iter()
        .filter(|s| s.at >= Instant::from_millis(100))
        .map(|s| s.at - Instant::from_millis(100))
        .collect();
    assert_eq!(retransmitted.len(), 10);
    // The RTO fires 240 ms (the handshake's 40 ms RTT plus the 200 ms minimum) after
    // the flight left at 60 ms. The loss
    // window is one MSS of 1,460 bytes, which the first 1,448-byte segment (MSS less
    // the timestamps option) does not fill, so two go at once; then every ACK of a
    // round brings two more: rounds of 2, 4 and the last 4, one RTT (40 ms) apart.
    // Holding the window during the timeout episode sent one or two per round trip.
    let first = retransmitted[0];
    let rounds: Vec<u64> = retransmitted
        .iter()
        .map(|&t| (t - first).total_micros() / 40_000)
        .collect();
    assert_eq!(first, Duration::from_millis(200));
    assert_eq!(rounds, vec![0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
}

#[test]
fn an_rto_in_fast_recovery_sets_ssthresh_from_the_window_not_from_sacked_flight() {
    // One segment is lost, and the path then drops everything from the sender for a
    // while after its fast retransmission left. Until then SACKs for everything after
    // the hole let new data out, so SND.NXT - SND.UNA is several windows when the RTO
    // fires in fast recovery. The
    // ssthresh the RTO sets must come from what the window allowed in the network:
    // from SND.NXT - SND.UNA the slow start after the RTO ran far past the path (in
    // the simulator a 10 Mbit/s path with a 40-packet queue then lost 15,000 packets
    // of a 5 MB transfer).
    for cc in [CcAlgorithm::NewReno, CcAlgorithm::Cubic] {
        let cfg = TcpConfig {
            congestion_control: cc,
            recv_buffer: 4 << 20,
            send_buffer: 4 << 20,
            ..config()
        };
        let mut p = Pair::new(cfg.clone(), cfg, DELAY);
        p.handshake();
        let lost_seq = CLIENT_ISS + 1 + 100 * 1448;
        let mut sent_lost = 0;
        let mut outage_from = None;
        p.filter = Box::new(move |s| {
            if s.from != Side::Client {
                return Action::Deliver;
            }
            if s.segment.seq == lost_seq {
                sent_lost += 1;
                if sent_lost == 2 {
                    outage_from = Some(s.at);
                }
            }
            let in_outage = outage_from.is_some_and(|t| s.at < t + Duration::from_millis(1_500));
            if (s.segment.seq == lost_seq && sent_lost == 1) || in_outage {
                Action::Drop
            } else {
                Action::Deliver
            }
        });
        let data = pattern(2_000 * 1448, 9);
        p.client_app.outbox = data.clone();
        let mut largest_cwnd = 0;
        assert!(p.run_until(Instant::from_secs(30), |p| {
            let st = p.client.stats();
            if st.rto_count == 0 {
                largest_cwnd = largest_cwnd.max(st.cwnd);
            }
            st.rto_count > 0
        }));
        let st = p.client.stats();
        let flight = p.client.connection().sent_offset() - p.client.connection().acked_offset();
        assert!(
            flight > 2 * largest_cwnd,
            "{cc:?}: the scenario needs SACKed flight ({flight}) beyond the window \
             ({largest_cwnd})"
        );
        assert!(
            st.ssthresh <= largest_cwnd,
            "{cc:?}: ssthresh {} after the RTO, window was at most {largest_cwnd}",
            st.ssthresh
        );
        assert!(
            p.run_until(Instant::from_secs(60), |p| p.server_app.inbox.len()
                == data.len())
        );
        assert_eq!(p.server_app.inbox, data);
    }
}
