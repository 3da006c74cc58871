//! Property tests for the wire codec: emit → parse round trips for every header and
//! option, byte-identical re-emission of valid options, parsers that never panic on
//! arbitrary bytes, and the planner's guarantees.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arrayvec::ArrayVec;
use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use mptcp_proto::SeqNum;
use mptcp_proto::wire::fuzzing::MPTCP_SAMPLES;
use mptcp_proto::wire::mptcp::MptcpOption;
use mptcp_proto::wire::option::MAX_OPTIONS_LEN;
use mptcp_proto::wire::plan::{MptcpPriority, Omitted, OptionRequest, plan};
use mptcp_proto::wire::tcp::{SackBlock, TcpFlags, TcpOptions, Timestamps, options_len};
use mptcp_proto::wire::{
    IpRepr, IpTcpRepr, Ipv4Packet, Ipv4Repr, Ipv6Packet, Ipv6Repr, OptionIter, TcpOption,
    TcpPacket, TcpRepr,
};

fn mptcp_option() -> impl Strategy<Value = MptcpOption<'static>> {
    (0..MPTCP_SAMPLES.len())
        .prop_map(|i| MptcpOption::parse(MPTCP_SAMPLES[i]).expect("samples are well formed"))
}

fn sack_block() -> impl Strategy<Value = SackBlock> {
    (any::<u32>(), any::<u32>()).prop_map(|(l, r)| SackBlock {
        left: SeqNum(l),
        right: SeqNum(r),
    })
}

fn timestamps() -> impl Strategy<Value = Timestamps> {
    (any::<u32>(), any::<u32>()).prop_map(|(tsval, tsecr)| Timestamps { tsval, tsecr })
}

fn priority() -> impl Strategy<Value = MptcpPriority> {
    prop_oneof![
        Just(MptcpPriority::Essential),
        Just(MptcpPriority::Deferrable)
    ]
}

fn request() -> impl Strategy<Value = OptionRequest<'static>> {
    (
        option::of(any::<u16>()),
        option::of(0u8..=14),
        any::<bool>(),
        option::of(timestamps()),
        vec(sack_block(), 0..=4),
        vec((priority(), mptcp_option()), 0..=4),
    )
        .prop_map(
            |(mss, window_scale, sack_permitted, timestamps, sack, mptcp)| OptionRequest {
                mss,
                window_scale,
                sack_permitted,
                timestamps,
                sack_blocks: sack.into_iter().collect(),
                mptcp: mptcp.into_iter().collect(),
            },
        )
}

/// Any option set that fits, trimmed to 40 bytes by the planner.
fn fitting_options() -> impl Strategy<Value = TcpOptions<'static>> {
    request().prop_map(|request| plan(&request).options)
}

fn addresses() -> impl Strategy<Value = (IpAddr, IpAddr)> {
    prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>())
            .prop_map(|(s, d)| (IpAddr::V4(Ipv4Addr::from(s)), IpAddr::V4(Ipv4Addr::from(d)))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(s, d)| (IpAddr::V6(Ipv6Addr::from(s)), IpAddr::V6(Ipv6Addr::from(d)))),
    ]
}

prop_compose! {
    fn tcp_fields()(
        src_port in 1u16..,
        dst_port in 1u16..,
        seq: u32,
        ack: u32,
        flags: u8,
        window: u16,
        urgent: u16,
    ) -> (u16, u16, u32, u32, u8, u16, u16) {
        (src_port, dst_port, seq, ack, flags, window, urgent)
    }
}

fn tcp_repr<'a>(
    fields: (u16, u16, u32, u32, u8, u16, u16),
    options: TcpOptions<'a>,
    payload: &'a [u8],
) -> TcpRepr<'a> {
    let (src_port, dst_port, seq, ack, flags, window, urgent) = fields;
    TcpRepr {
        src_port,
        dst_port,
        seq: SeqNum(seq),
        ack: SeqNum(ack),
        flags: TcpFlags(flags),
        window,
        urgent,
        options,
        payload,
    }
}

/// Every option variant, valid on the wire.
fn tcp_option() -> impl Strategy<Value = TcpOption<'static>> {
    const KNOWN: [u8; 8] = [0, 1, 2, 3, 4, 5, 8, 30];
    prop_oneof![
        Just(TcpOption::NoOperation),
        any::<u16>().prop_map(TcpOption::MaxSegmentSize),
        any::<u8>().prop_map(TcpOption::WindowScale),
        Just(TcpOption::SackPermitted),
        vec(sack_block(), 1..=4).prop_map(|b| TcpOption::Sack(b.into_iter().collect())),
        timestamps().prop_map(TcpOption::Timestamps),
        mptcp_option().prop_map(TcpOption::Mptcp),
        (
            any::<u8>().prop_filter("unknown kind", |k| !KNOWN.contains(k)),
            vec(any::<u8>(), 0..=38)
        )
            .prop_map(|(kind, data)| TcpOption::Unknown {
                kind,
                data: Box::leak(data.into_boxed_slice()),
            }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn ipv4_round_trip(
        src: [u8; 4], dst: [u8; 4], protocol: u8, ttl: u8, dscp in 0u8..64, ecn in 0u8..4,
        ident: u16, dont_frag: bool, payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = Ipv4Repr {
            src_addr: src.into(), dst_addr: dst.into(), protocol,
            payload_len: payload.len(), ttl, dscp, ecn, ident, dont_frag,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut packet = Ipv4Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet, true).expect("sized buffer");
        packet.payload_mut().copy_from_slice(&payload);
        let packet = Ipv4Packet::new_checked(&buf[..]).expect("emitted header is valid");
        prop_assert!(packet.verify_checksum());
        prop_assert_eq!(Ipv4Repr::parse(&packet, true), Ok(repr));
        prop_assert_eq!(packet.payload(), &payload[..]);
    }

    #[test]
    fn ipv6_round_trip(
        src: [u8; 16], dst: [u8; 16],
        next_header in any::<u8>().prop_filter("not an extension header", |n| ![0, 43, 44, 60].contains(n)),
        hop_limit: u8, traffic_class: u8, flow_label in 0u32..(1 << 20),
        payload in vec(any::<u8>(), 0..64),
    ) {
        let repr = Ipv6Repr {
            src_addr: src.into(), dst_addr: dst.into(), next_header,
            payload_len: payload.len(), hop_limit, traffic_class, flow_label,
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let mut packet = Ipv6Packet::new_unchecked(&mut buf[..]);
        repr.emit(&mut packet).expect("sized buffer");
        packet.payload_mut().copy_from_slice(&payload);
        let packet = Ipv6Packet::new_checked(&buf[..]).expect("emitted header is valid");
        prop_assert_eq!(Ipv6Repr::parse(&packet), Ok(repr));
        prop_assert_eq!(packet.upper_layer_payload(), Ok((next_header, &payload[..])));
    }

    #[test]
    fn tcp_round_trip(
        fields in tcp_fields(), options in fitting_options(),
        payload in vec(any::<u8>(), 0..64), (src, dst) in addresses(),
    ) {
        let repr = tcp_repr(fields, options, &payload);
        let mut buf = vec![0u8; repr.buffer_len()];
        let written = repr
            .emit(&mut TcpPacket::new_unchecked(&mut buf[..]), src, dst, true)
            .expect("planned options fit");
        prop_assert_eq!(written, buf.len());
        let packet = TcpPacket::new_checked(&buf[..]).expect("emitted header is valid");
        prop_assert_eq!(packet.header_len(), repr.header_len());
        prop_assert_eq!(packet.header_len() % 4, 0);
        prop_assert_eq!(TcpRepr::parse(&packet, src, dst, true), Ok(repr));
    }

    #[test]
    fn whole_packet_round_trip(
        fields in tcp_fields(), options in fitting_options(),
        payload in vec(any::<u8>(), 0..64), (src, dst) in addresses(), hop: u8,
    ) {
        let ip = match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => IpRepr::V4(Ipv4Repr {
                src_addr: s, dst_addr: d, protocol: 6, payload_len: 0, ttl: hop,
                dscp: 0, ecn: 0, ident: 0, dont_frag: true,
            }),
            (IpAddr::V6(s), IpAddr::V6(d)) => IpRepr::V6(Ipv6Repr {
                src_addr: s, dst_addr: d, next_header: 6, payload_len: 0, hop_limit: hop,
                traffic_class: 0, flow_label: 0,
            }),
            _ => unreachable!("addresses() pairs one family"),
        };
        let tcp = tcp_repr(fields, options, &payload);
        let ip = match ip {
            IpRepr::V4(r) => IpRepr::V4(Ipv4Repr { payload_len: tcp.buffer_len(), ..r }),
            IpRepr::V6(r) => IpRepr::V6(Ipv6Repr { payload_len: tcp.buffer_len(), ..r }),
        };
        let repr = IpTcpRepr { ip, tcp };
        let mut buf = vec![0u8; repr.buffer_len()];
        prop_assert_eq!(repr.emit(&mut buf, true), Ok(buf.len()));
        prop_assert_eq!(IpTcpRepr::parse(&buf, true), Ok(repr));
    }

    #[test]
    fn every_option_round_trips_byte_for_byte(option in tcp_option()) {
        let mut buf = [0u8; 64];
        let len = option.emit(&mut buf);
        prop_assert_eq!(len, option.wire_len());
        let parsed: Vec<_> = OptionIter::new(&buf[..len]).collect();
        prop_assert_eq!(parsed, vec![Ok(option.clone())]);
        let mut again = [0u8; 64];
        prop_assert_eq!(option.emit(&mut again), len);
        prop_assert_eq!(&again[..len], &buf[..len]);
    }

    #[test]
    fn valid_option_lists_re_emit_identically(options in vec(tcp_option(), 0..8)) {
        let mut area = Vec::new();
        for option in &options {
            let mut buf = [0u8; 64];
            let len = option.emit(&mut buf);
            area.extend_from_slice(&buf[..len]);
        }
        let parsed: Vec<_> = OptionIter::new(&area)
            .collect::<Result<_, _>>()
            .expect("emitted options parse");
        prop_assert_eq!(&parsed, &options);
        let mut out = Vec::new();
        for option in &parsed {
            let mut buf = [0u8; 64];
            let len = option.emit(&mut buf);
            out.extend_from_slice(&buf[..len]);
        }
        prop_assert_eq!(out, area);
    }

    #[test]
    fn parsed_options_from_arbitrary_bytes_re_emit_identically(area in vec(any::<u8>(), 0..48)) {
        let mut at = 0;
        for option in OptionIter::new(&area) {
            let Ok(option) = option else { break };
            let mut buf = [0u8; 256];
            let len = option.emit(&mut buf);
            if !matches!(option, TcpOption::Mptcp(_)) {
                prop_assert_eq!(&buf[..len], &area[at..at + len]);
            }
            at += len;
        }
        prop_assert!(at <= area.len());
    }

    #[test]
    fn parsers_never_panic_on_arbitrary_bytes(bytes in vec(any::<u8>(), 0..128), verify: bool) {
        if let Ok(p) = Ipv4Packet::new_checked(&bytes[..]) {
            let _ = (p.options(), p.payload(), p.verify_checksum(), Ipv4Repr::parse(&p, verify));
        }
        if let Ok(p) = Ipv6Packet::new_checked(&bytes[..]) {
            let _ = (p.payload(), p.upper_layer(), p.upper_layer_payload(), Ipv6Repr::parse(&p));
        }
        if let Ok(p) = TcpPacket::new_checked(&bytes[..]) {
            let (src, dst) = (IpAddr::from([1, 2, 3, 4]), IpAddr::from([5, 6, 7, 8]));
            let _ = (p.options(), p.payload(), TcpRepr::parse(&p, src, dst, verify));
        }
        let _ = OptionIter::new(&bytes).count();
        let _ = TcpOptions::parse(&bytes);
        let _ = IpTcpRepr::parse(&bytes, verify);
    }

    #[test]
    fn plans_fit_emit_and_leave_out_only_what_cannot_fit(request in request()) {
        let result = plan(&request);
        prop_assert!(result.len <= MAX_OPTIONS_LEN);
        prop_assert_eq!(options_len(&result.options), result.len);
        // Maximality: adding back anything left out overflows the final plan.
        for omitted in &result.omitted {
            let mut more = result.options.clone();
            match *omitted {
                Omitted::Mss => more.mss = request.mss,
                Omitted::WindowScale => more.window_scale = request.window_scale,
                Omitted::SackPermitted => more.sack_permitted = true,
                Omitted::Timestamps => more.timestamps = request.timestamps,
                Omitted::SackBlocks { requested, kept } => {
                    prop_assert!(kept < requested);
                    prop_assert_eq!(result.options.sack_blocks.len(), kept);
                    more.sack_blocks = request.sack_blocks[..kept + 1].iter().copied().collect();
                }
                Omitted::Mptcp { index, .. } => {
                    more.mptcp.truncate(3);
                    more.mptcp.push(request.mptcp[index].1.clone());
                }
            }
            prop_assert!(options_len(&more) > MAX_OPTIONS_LEN, "{:?} would have fit", omitted);
        }
        // Nothing requested is silently lost.
        let mptcp_omitted = result.omitted.iter().filter(|o| matches!(o, Omitted::Mptcp { .. })).count();
        prop_assert_eq!(result.options.mptcp.len() + mptcp_omitted, request.mptcp.len());
        let kept_sack: ArrayVec<SackBlock, 4> = request.sack_blocks.iter().copied().take(result.options.sack_blocks.len()).collect();
        prop_assert_eq!(&result.options.sack_blocks, &kept_sack);
    }
}
