//! Fuzz target bodies. The cargo-fuzz crate in `fuzz/` (nightly, libFuzzer) and the
//! stable proptest harness `tests/wire_fuzz_stable.rs` run the same functions, so every
//! CI run fuzzes a little. Each target checks invariants with `assert!`: a violation is a
//! crash the fuzzer reports, not just "did not panic".

use crate::wire::option::{OptionIter, TcpOption};
use crate::wire::packet::{IpRepr, IpTcpRepr, PacketError};
use crate::wire::tcp::{TCP_HEADER_LEN, TcpError, TcpPacket, TcpRepr};
use crate::wire::{Ipv4Error, Ipv4Packet, Ipv6Error, Ipv6Packet};

/// Well-formed MPTCP options (RFC 8684 §3), one or more of every subtype, for seeds and
/// tests: any correct MPTCP parser accepts each of these.
pub const MPTCP_SAMPLES: [&[u8]; 14] = [
    // MP_CAPABLE SYN: version 1, flag H.
    &[30, 4, 0x01, 0x01],
    // MP_CAPABLE SYN/ACK: sender's key.
    &[30, 12, 0x01, 0x01, 1, 2, 3, 4, 5, 6, 7, 8],
    // MP_JOIN SYN: address id 2, receiver's token, sender's nonce.
    &[30, 12, 0x10, 2, 0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4],
    // MP_JOIN SYN/ACK: address id 0, truncated HMAC, nonce.
    &[30, 16, 0x10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12],
    // DSS: 4-byte data ACK only.
    &[30, 8, 0x20, 0x01, 0, 0, 0x10, 0],
    // DSS: 4-byte data ACK and a 4-byte DSN mapping, no checksum (18 bytes).
    &[
        30, 18, 0x20, 0x05, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 1, 0x05, 0xa0,
    ],
    // DSS: 8-byte data ACK, 8-byte DSN, relative seq, length, checksum (28 bytes).
    &[
        30, 28, 0x20, 0x0f, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4, 0, 0, 0, 1, 0x05, 0xa0,
        0x12, 0x34,
    ],
    // ADD_ADDR: IPv4 192.0.2.1, id 1, truncated HMAC.
    &[30, 16, 0x30, 1, 192, 0, 2, 1, 1, 2, 3, 4, 5, 6, 7, 8],
    // ADD_ADDR: IPv6 2001:db8::1, id 3, port 8080, truncated HMAC (30 bytes).
    &[
        30, 30, 0x30, 3, 0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0x1f, 0x90, 1,
        2, 3, 4, 5, 6, 7, 8,
    ],
    // REMOVE_ADDR: id 1.
    &[30, 4, 0x40, 1],
    // MP_PRIO: backup.
    &[30, 3, 0x51],
    // MP_FAIL: DSN.
    &[30, 12, 0x60, 0, 0, 0, 0, 0, 0, 0, 0x10, 0],
    // MP_FASTCLOSE: receiver's key.
    &[30, 12, 0x70, 0, 8, 7, 6, 5, 4, 3, 2, 1],
    // MP_TCPRST: transient, reason 1 (MPTCP-specific error).
    &[30, 4, 0x81, 1],
];

/// Walks `data` as a TCP option area, then parses it as the options of a TCP header.
///
/// Invariants: no panic; every option that parses re-emits to the same bytes (MPTCP
/// options: to bytes that parse back to the same option); a parsed segment that the
/// canonical layout can carry re-emits and parses back to the same `TcpRepr`.
pub fn fuzz_tcp_options(data: &[u8]) {
    let mut consumed = 0;
    let mut scratch = [0u8; 256];
    for option in OptionIter::new(data) {
        let Ok(option) = option else { break };
        let len = option.wire_len();
        assert_eq!(option.emit(&mut scratch), len);
        match &option {
            TcpOption::Mptcp(_) => {
                let again = OptionIter::new(&scratch[..len]).next();
                assert_eq!(again, Some(Ok(option.clone())), "MPTCP option round trip");
            }
            TcpOption::EndOfList
            | TcpOption::NoOperation
            | TcpOption::MaxSegmentSize(_)
            | TcpOption::WindowScale(_)
            | TcpOption::SackPermitted
            | TcpOption::Sack(_)
            | TcpOption::Timestamps(_)
            | TcpOption::Unknown { .. } => {
                assert_eq!(&scratch[..len], &data[consumed..consumed + len]);
            }
        }
        consumed += len;
    }

    // The same bytes as a segment: a fixed header whose data offset covers up to 40 of
    // them as options, the rest as payload.
    let options_len = data.len().min(40) / 4 * 4;
    let mut segment = [0u8; 1600];
    let data = &data[..data.len().min(segment.len() - TCP_HEADER_LEN)];
    let segment = &mut segment[..TCP_HEADER_LEN + data.len()];
    segment[..TCP_HEADER_LEN].copy_from_slice(&[
        0x9c, 0x40, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 2, 0, 0x10, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    segment[12] = (((TCP_HEADER_LEN + options_len) / 4) as u8) << 4;
    segment[TCP_HEADER_LEN..].copy_from_slice(data);
    let src = core::net::IpAddr::from([10, 0, 0, 1]);
    let dst = core::net::IpAddr::from([10, 0, 0, 2]);
    let packet = TcpPacket::new_checked(&segment[..]).expect("the fixed header is valid");
    let Ok(repr) = TcpRepr::parse(&packet, src, dst, false) else {
        return;
    };
    let mut out = [0u8; 1600 + 40];
    match repr.emit(&mut TcpPacket::new_unchecked(&mut out[..]), src, dst, true) {
        Ok(n) => {
            assert_eq!(n, repr.buffer_len());
            let packet = TcpPacket::new_checked(&out[..n]).expect("emitted header is valid");
            assert_eq!(TcpRepr::parse(&packet, src, dst, true), Ok(repr));
        }
        // The canonical layout pads each group, so options the sender packed tightly may
        // not fit it; nothing else may fail.
        Err(TcpError::OptionsTooLong { .. }) => assert!(repr.header_len() > 60),
        Err(other) => panic!("emitting a parsed segment failed: {other}"),
    }
}

/// Parses `data` as a whole IPv4 or IPv6 packet carrying TCP, with and without checksum
/// verification, and exercises the header views.
///
/// Invariants: no panic; a parsed packet re-emits (unless its options only fit their
/// original packing) and parses back, checksums verified, to the same headers.
pub fn fuzz_ip_packet(data: &[u8]) {
    if let Ok(packet) = Ipv4Packet::new_checked(data) {
        let _ = (packet.options(), packet.payload(), packet.verify_checksum());
    }
    if let Ok(packet) = Ipv6Packet::new_checked(data) {
        let _ = (packet.payload(), packet.upper_layer());
    }
    if let Ok(packet) = TcpPacket::new_checked(data) {
        let _ = (packet.options(), packet.payload());
    }
    for verify in [false, true] {
        let Ok(parsed) = IpTcpRepr::parse(data, verify) else {
            continue;
        };
        let mut out = vec![0u8; parsed.buffer_len()];
        match parsed.emit(&mut out, true) {
            Ok(n) => {
                assert_eq!(n, out.len());
                let again = IpTcpRepr::parse(&out, true).expect("an emitted packet parses");
                let tcp_len = parsed.tcp.buffer_len();
                let ip = match parsed.ip {
                    IpRepr::V4(repr) => IpRepr::V4(crate::wire::Ipv4Repr {
                        payload_len: tcp_len,
                        ..repr
                    }),
                    IpRepr::V6(repr) => IpRepr::V6(crate::wire::Ipv6Repr {
                        payload_len: tcp_len,
                        ..repr
                    }),
                };
                assert_eq!(again.ip, ip);
                assert_eq!(again.tcp, parsed.tcp);
            }
            Err(PacketError::Tcp(TcpError::OptionsTooLong { .. })) => {
                assert!(parsed.tcp.header_len() > 60);
            }
            // Re-laid-out options can push a near-64 KiB packet past the length field.
            Err(PacketError::Ipv4(Ipv4Error::PayloadTooLong(_)))
            | Err(PacketError::Ipv6(Ipv6Error::PayloadTooLong(_))) => {}
            Err(other) => panic!("emitting a parsed packet failed: {other}"),
        }
    }
}

/// Runs `data` through software segmentation (at a size taken from its first byte) and
/// the receive coalescer, alone and as the pieces it cuts into.
///
/// Invariants: no panic; a segmentable packet's pieces carry its payload in order, each
/// within `max_piece_len`, and parse with their checksums verified whenever the packet
/// parses; everything the coalescer hands over as trusted has consistent IP and TCP
/// lengths, and it hands over every payload byte it was given exactly once.
pub fn fuzz_offload(data: &[u8]) {
    use crate::wire::gro::Coalescer;
    use crate::wire::gso::Segmenter;
    let size = u16::from(data.first().copied().unwrap_or(1).max(1)) * 8;
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    if let Ok(mut segmenter) = Segmenter::new(data, size) {
        let mut buf = vec![0u8; segmenter.max_piece_len()];
        while let Some(len) = segmenter.next_into(&mut buf) {
            pieces.push(buf[..len].to_vec());
        }
        if let Ok(whole) = IpTcpRepr::parse(data, false) {
            let mut payload = Vec::new();
            for piece in &pieces {
                let repr =
                    IpTcpRepr::parse(piece, true).expect("a piece of a valid packet verifies");
                payload.extend_from_slice(repr.tcp.payload);
            }
            assert_eq!(payload, whole.tcp.payload);
        }
    }
    let offered: usize = pieces
        .iter()
        .chain([&data.to_vec()])
        .map(|p| tcp_payload_len(p).unwrap_or(0))
        .sum();
    let mut gro = Coalescer::new();
    let mut handed = 0;
    let mut deliver = |p: &[u8], trusted: bool| {
        let len = tcp_payload_len(p);
        assert!(
            !trusted || len.is_some(),
            "a trusted packet has consistent lengths"
        );
        handed += len.unwrap_or(0);
    };
    gro.push(data, &mut deliver);
    for piece in &pieces {
        gro.push(piece, &mut deliver);
    }
    gro.flush(&mut deliver);
    assert_eq!(handed, offered);
}

/// Payload bytes of a TCP packet whose IP and TCP lengths agree with its size.
fn tcp_payload_len(packet: &[u8]) -> Option<usize> {
    let (ip_header, total) = match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            (ip.header_len(), usize::from(ip.total_len()))
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            (40, 40 + usize::from(ip.payload_len()))
        }
        _ => return None,
    };
    if total != packet.len() {
        return None;
    }
    let tcp = TcpPacket::new_checked(&packet[ip_header..]).ok()?;
    Some(packet.len() - ip_header - tcp.header_len())
}
