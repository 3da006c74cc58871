//! The engine driven directly: arbitrary input never panics, super-segments, the owner
//! hooks, and the snapshot coupled congestion control reads.

mod tcp_util;

use arrayvec::ArrayVec;
use mptcp_proto::cc::SubflowSnapshot;
use mptcp_proto::seq::SeqNum;
use mptcp_proto::tcp::{ReceiveSink, SendSource, TcpConnection, TcpSocket, TcpState};
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::tcp::{SackBlock, TcpFlags, TcpOptions, TcpRepr, Timestamps};
use proptest::prelude::*;
use tcp_util::*;

/// An owner that records what the engine hands it.
#[derive(Default)]
struct Recorder {
    delivered: Vec<(u64, usize)>,
    options_seen: usize,
    fin_at: Option<u64>,
}

impl ReceiveSink for Recorder {
    fn deliver(&mut self, offset: u64, payload: &[u8]) -> usize {
        self.delivered.push((offset, payload.len()));
        payload.len()
    }
    fn receive_window(&self, _rcv_nxt: u64) -> u64 {
        1 << 20
    }
    fn on_segment(&mut self, _segment: &TcpRepr<'_>) {
        self.options_seen += 1;
    }
    fn on_fin(&mut self, offset: u64) {
        self.fin_at = Some(offset);
    }
}

struct Source<'a> {
    data: &'a [u8],
    reserved: usize,
}

impl<'a> SendSource<'a> for Source<'a> {
    fn available(&self, from: u64) -> u64 {
        (self.data.len() as u64).saturating_sub(from)
    }
    fn bytes(&mut self, offset: u64, max_len: usize) -> &'a [u8] {
        let start = (offset as usize).min(self.data.len());
        let end = (start + max_len).min(self.data.len());
        &self.data[start..end]
    }
    fn option_space(&self) -> usize {
        self.reserved
    }
}

impl ReceiveSink for Source<'_> {
    fn deliver(&mut self, _offset: u64, payload: &[u8]) -> usize {
        payload.len()
    }
    fn receive_window(&self, _rcv_nxt: u64) -> u64 {
        1 << 20
    }
}

/// A client engine established with a peer whose ISS is `SERVER_ISS`.
fn established_engine(now: Instant) -> TcpConnection {
    let mut c = TcpConnection::connect(config(), client_addr(), server_addr(), now, CLIENT_ISS);
    let mut rec = Recorder::default();
    let syn = Segment::from_repr(
        &c.poll_transmit(
            now,
            &mut Source {
                data: &[],
                reserved: 0,
            },
        )
        .expect("SYN")
        .segment,
    );
    let synack = TcpRepr {
        src_port: syn.dst_port,
        dst_port: syn.src_port,
        seq: SERVER_ISS,
        ack: CLIENT_ISS + 1,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: 65535,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: 1000,
                tsecr: syn.timestamps.map_or(0, |t| t.tsval),
            }),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    c.handle_segment(now, &synack, &mut rec)
        .expect("SYN-ACK accepted");
    assert_eq!(c.state(), TcpState::Established);
    assert_eq!(rec.options_seen, 1, "the owner sees the SYN-ACK's options");
    c
}

fn data_segment(seq_off: u32, payload: &[u8], tsval: u32) -> TcpRepr<'_> {
    TcpRepr {
        src_port: 80,
        dst_port: 40000,
        seq: SERVER_ISS + 1 + seq_off,
        ack: CLIENT_ISS + 1,
        flags: TcpFlags::ACK,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            timestamps: Some(Timestamps { tsval, tsecr: 0 }),
            ..TcpOptions::default()
        },
        payload,
    }
}

#[test]
fn a_super_segment_is_accepted_whole_and_acked_once() {
    let now = Instant::from_millis(10);
    let mut c = established_engine(now);
    let mut rec = Recorder::default();
    let _ = c.poll_transmit(
        now,
        &mut Source {
            data: &[],
            reserved: 0,
        },
    );
    let big = vec![0xab; 64 * 1024 - 100];
    c.handle_segment(now, &data_segment(0, &big, 1001), &mut rec)
        .expect("accepted");
    assert_eq!(rec.delivered, vec![(0, big.len())]);
    // 44 full-sized segments' worth: an immediate ACK, just one.
    let ack = c
        .poll_transmit(
            now,
            &mut Source {
                data: &[],
                reserved: 0,
            },
        )
        .expect("ACK")
        .segment;
    assert_eq!(ack.ack, SERVER_ISS + 1 + big.len() as u32);
    assert!(
        c.poll_transmit(
            now,
            &mut Source {
                data: &[],
                reserved: 0
            }
        )
        .is_none()
    );
}

#[test]
fn reserved_option_space_shortens_payloads_and_max_segment_payload_allows_super_segments() {
    let now = Instant::from_millis(10);
    let mut c = established_engine(now);
    let data = vec![1u8; 10_000];
    let seg = c
        .poll_transmit(
            now,
            &mut Source {
                data: &data,
                reserved: 20,
            },
        )
        .expect("data");
    // MSS 1460 - 12 (timestamps) - 20 (the owner's MPTCP options).
    assert_eq!(seg.segment.payload.len(), 1428);
    assert_eq!(seg.offset, 0);
    assert!(seg.segment.options.mptcp.is_empty());

    let tso = mptcp_proto::tcp::TcpConfig {
        max_segment_payload: Some(64 * 1024),
        ..config()
    };
    let mut t = TcpSocket::connect(tso, client_addr(), server_addr(), now, CLIENT_ISS);
    let syn = Segment::from_repr(&t.poll_transmit(now).expect("SYN").segment);
    let synack = TcpRepr {
        src_port: 80,
        dst_port: 40000,
        seq: SERVER_ISS,
        ack: CLIENT_ISS + 1,
        flags: TcpFlags::SYN | TcpFlags::ACK,
        window: 65535,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let _ = syn;
    t.handle_segment(now, &synack).expect("SYN-ACK");
    while t.poll_transmit(now).is_some() {}
    assert_eq!(t.write(&[5u8; 12_000]), 12_000);
    let seg = t.poll_transmit(now).expect("super-segment");
    // Limited by the initial window (10 * 1460), not by the MSS.
    assert_eq!(seg.segment.payload.len(), 12_000);
}

#[test]
fn the_snapshot_reports_live_values_and_siblings_are_kept() {
    let now = Instant::from_millis(10);
    let mut c = established_engine(now);
    // Four full segments (Nagle would hold back a partial fifth).
    let data = vec![1u8; 4 * 1448];
    while c
        .poll_transmit(
            now,
            &mut Source {
                data: &data,
                reserved: 0,
            },
        )
        .is_some()
    {}
    let snap = c.snapshot();
    assert_eq!(snap.bytes_in_flight, 4 * 1448);
    assert_eq!(snap.mss, 1460);
    assert_eq!(snap.cwnd, 14_600);
    assert_eq!(snap.srtt, Some(Duration::ZERO));
    c.set_backup(true);
    let other = SubflowSnapshot {
        cwnd: 99,
        ..SubflowSnapshot::default()
    };
    c.set_sibling_snapshots(1, &[other, SubflowSnapshot::default()]);
    assert!(c.snapshot().is_backup);
}

#[test]
fn a_fin_arriving_before_a_hole_fills_is_taken_once_the_hole_fills() {
    let now = Instant::from_millis(10);
    let mut c = established_engine(now);
    let mut rec = Recorder::default();
    let mut fin = data_segment(100, &[2; 50], 1001);
    fin.flags = TcpFlags::ACK | TcpFlags::FIN;
    c.handle_segment(now, &fin, &mut rec)
        .expect("out of order FIN kept");
    assert_eq!(rec.fin_at, None);
    c.handle_segment(now, &data_segment(0, &[1; 100], 1001), &mut rec)
        .expect("hole filled");
    assert_eq!(rec.fin_at, Some(150));
    assert_eq!(c.state(), TcpState::CloseWait);
    assert_eq!(c.received_offset(), 150);
}

/// flags, seq offset, ack offset, window, payload, SACK blocks, timestamps.
type ArbSegment = (
    u8,
    i64,
    i64,
    u16,
    Vec<u8>,
    Vec<(i64, i64)>,
    Option<(u32, u32)>,
);

fn arb_segment() -> impl Strategy<Value = ArbSegment> {
    (
        any::<u8>(),
        prop_oneof![-3000i64..3000, any::<i32>().prop_map(i64::from)],
        prop_oneof![-3000i64..20_000, any::<i32>().prop_map(i64::from)],
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..3000),
        proptest::collection::vec((-5000i64..20_000, -5000i64..20_000), 0..4),
        proptest::option::of((any::<u32>(), any::<u32>())),
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_segments_never_panic_and_keep_the_engine_consistent(
        segs in proptest::collection::vec(arb_segment(), 1..30),
        sending in any::<bool>(),
    ) {
        let mut now = Instant::from_millis(10);
        let mut c = established_engine(now);
        let data = vec![7u8; 50_000];
        let mut rec = Recorder::default();
        for (flags, seq, ack, window, payload, sacks, ts) in segs {
            now += Duration::from_millis(3);
            let mut blocks = ArrayVec::<SackBlock, 4>::new();
            for (l, r) in sacks {
                blocks.push(SackBlock { left: CLIENT_ISS + 1 + l as u32, right: CLIENT_ISS + 1 + r as u32 });
            }
            let seg = TcpRepr {
                src_port: 80,
                dst_port: 40000,
                seq: SERVER_ISS + 1 + seq as u32,
                ack: CLIENT_ISS + 1 + ack as u32,
                flags: TcpFlags(flags),
                window,
                urgent: 0,
                options: TcpOptions {
                    sack_blocks: blocks,
                    timestamps: ts.map(|(tsval, tsecr)| Timestamps { tsval, tsecr }),
                    ..TcpOptions::default()
                },
                payload: &payload,
            };
            let _ = c.handle_segment(now, &seg, &mut rec);
            let mut src = Source { data: if sending { &data } else { &[] }, reserved: 0 };
            let mut n = 0;
            while let Some(t) = c.poll_transmit(now, &mut src) {
                prop_assert!(t.segment.payload.len() <= 1460);
                n += 1;
                prop_assert!(n < 200, "poll_transmit does not terminate");
            }
            if let Some(t) = c.poll_timeout() {
                prop_assert!(t >= now || t + Duration::from_secs(1) >= now);
                if t <= now + Duration::from_millis(3) {
                    c.handle_timeout(t.max(now));
                }
            }
            prop_assert!(c.bookkeeping_len() <= 200);
            prop_assert!(c.stats().bytes_in_flight <= 50_000 + 1);
        }
        // Offsets handed to the owner never go backwards past what was delivered in
        // order and never exceed what the window allowed.
        for (off, len) in &rec.delivered {
            prop_assert!(off + *len as u64 <= (1 << 20) + 1);
        }
    }
}

#[test]
fn syn_received_rejects_arbitrary_acks_with_a_reset() {
    let now = Instant::ZERO;
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum(5),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 1000,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    };
    let mut s = TcpConnection::accept(
        config(),
        server_addr(),
        client_addr(),
        &syn,
        now,
        SeqNum(700),
    )
    .expect("SYN accepted");
    let mut rec = Recorder::default();
    let sa = s
        .poll_transmit(
            now,
            &mut Source {
                data: &[],
                reserved: 0,
            },
        )
        .expect("SYN-ACK")
        .segment;
    assert_eq!(sa.flags, TcpFlags::SYN | TcpFlags::ACK);
    // No options offered: none used.
    assert_eq!(sa.options.window_scale, None);
    assert!(!sa.options.sack_permitted);
    assert_eq!(sa.options.timestamps, None);
    let mut bad = syn.clone();
    bad.flags = TcpFlags::ACK;
    bad.seq = SeqNum(6);
    bad.ack = SeqNum(12345);
    assert!(s.handle_segment(now, &bad, &mut rec).is_err());
    let rst = s
        .poll_transmit(
            now,
            &mut Source {
                data: &[],
                reserved: 0,
            },
        )
        .expect("RST")
        .segment;
    assert_eq!((rst.flags, rst.seq), (TcpFlags::RST, SeqNum(12345)));
    // A SYN with FIN is refused outright.
    let mut synfin = syn.clone();
    synfin.flags = TcpFlags::SYN | TcpFlags::FIN;
    assert!(
        TcpConnection::accept(
            config(),
            server_addr(),
            client_addr(),
            &synfin,
            now,
            SeqNum(1)
        )
        .is_err()
    );
}
