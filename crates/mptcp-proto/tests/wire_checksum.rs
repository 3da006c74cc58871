//! Known-answer packets: bytes and checksums computed outside this crate, by this Python 3
//! script (an RFC 1071 sum written from scratch, standard library only):
//!
//! ```text
//! # Independent known-answer packets for the wire tests: RFC 1071 sum written from scratch.
//! import struct, ipaddress
//! def csum(data):
//!     if len(data) % 2: data += b'\0'
//!     s = sum(struct.unpack('!%dH' % (len(data)//2), data))
//!     while s >> 16: s = (s & 0xffff) + (s >> 16)
//!     return (~s) & 0xffff
//! def tcp(sport, dport, seq, ack, flags, win, opts, payload):
//!     assert len(opts) % 4 == 0
//!     off = (20 + len(opts)) // 4
//!     return struct.pack('!HHIIBBHHH', sport, dport, seq, ack, off << 4, flags, win, 0, 0) + opts + payload
//! def v4(src, dst, seg, ident=0, ttl=64):
//!     s, d = ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed
//!     ph = s + d + struct.pack('!BBH', 0, 6, len(seg))
//!     c = csum(ph + seg); seg = seg[:16] + struct.pack('!H', c) + seg[18:]
//!     hdr = struct.pack('!BBHHHBBH4s4s', 0x45, 0, 20 + len(seg), ident, 0x4000, ttl, 6, 0, s, d)
//!     hc = csum(hdr); hdr = hdr[:10] + struct.pack('!H', hc) + hdr[12:]
//!     return hdr + seg, hc, c
//! def v6(src, dst, seg, hop=64):
//!     s, d = ipaddress.IPv6Address(src).packed, ipaddress.IPv6Address(dst).packed
//!     ph = s + d + struct.pack('!IxxxB', len(seg), 6)
//!     c = csum(ph + seg); seg = seg[:16] + struct.pack('!H', c) + seg[18:]
//!     hdr = struct.pack('!IHBB16s16s', 6 << 28, len(seg), 6, hop, s, d)
//!     return hdr + seg, c
//! # IPv4 SYN: MSS 1460 | SACKOK TS(1000, 0) | NOP WS 7
//! opts = bytes([2,4,0x05,0xb4, 4,2,8,10]) + struct.pack('!II', 1000, 0) + bytes([1,3,3,7])
//! pkt, hc, c = v4('10.0.0.1', '10.0.0.2', tcp(40000, 80, 0x01020304, 0, 0x02, 64240, opts, b''), ident=0x1c46)
//! print('v4 syn ip csum %#06x tcp csum %#06x' % (hc, c)); print(', '.join('0x%02x' % b for b in pkt))
//! # IPv6 ACK|PSH with NOP NOP TS(0xdeadbeef, 0x01020304) and 5 bytes of payload (odd length)
//! opts = bytes([1,1,8,10]) + struct.pack('!II', 0xdeadbeef, 0x01020304)
//! pkt, c = v6('2001:db8::1', '2001:db8::2', tcp(443, 50000, 0xfffffff0, 0x10, 0x18, 501, opts, b'hello'))
//! print('v6 tcp csum %#06x' % c); print(', '.join('0x%02x' % b for b in pkt))
//! ```
//!
//! Its output: "v4 syn ip csum 0x0a74 tcp csum 0x948e" and "v6 tcp csum 0x6ec4", then the
//! packet bytes pasted below.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mptcp_proto::SeqNum;
use mptcp_proto::wire::tcp::{TcpFlags, TcpOptions, Timestamps};
use mptcp_proto::wire::{
    IpRepr, IpTcpRepr, Ipv4Packet, Ipv4Repr, Ipv6Repr, PacketError, TcpError, TcpPacket, TcpRepr,
};

const V4_SYN: [u8; 60] = [
    0x45, 0x00, 0x00, 0x3c, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x06, 0x0a, 0x74, 0x0a, 0x00, 0x00, 0x01,
    0x0a, 0x00, 0x00, 0x02, 0x9c, 0x40, 0x00, 0x50, 0x01, 0x02, 0x03, 0x04, 0x00, 0x00, 0x00, 0x00,
    0xa0, 0x02, 0xfa, 0xf0, 0x94, 0x8e, 0x00, 0x00, 0x02, 0x04, 0x05, 0xb4, 0x04, 0x02, 0x08, 0x0a,
    0x00, 0x00, 0x03, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x01, 0x03, 0x03, 0x07,
];

const V6_DATA: [u8; 77] = [
    0x60, 0x00, 0x00, 0x00, 0x00, 0x25, 0x06, 0x40, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00,
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x01, 0xbb, 0xc3, 0x50, 0xff, 0xff, 0xff, 0xf0,
    0x00, 0x00, 0x00, 0x10, 0x80, 0x18, 0x01, 0xf5, 0x6e, 0xc4, 0x00, 0x00, 0x01, 0x01, 0x08, 0x0a,
    0xde, 0xad, 0xbe, 0xef, 0x01, 0x02, 0x03, 0x04, 0x68, 0x65, 0x6c, 0x6c, 0x6f,
];

fn v4_syn_repr() -> IpTcpRepr<'static> {
    IpTcpRepr {
        ip: IpRepr::V4(Ipv4Repr {
            src_addr: Ipv4Addr::new(10, 0, 0, 1),
            dst_addr: Ipv4Addr::new(10, 0, 0, 2),
            protocol: 6,
            payload_len: 40,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0x1c46,
            dont_frag: true,
        }),
        tcp: TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(0x0102_0304),
            ack: SeqNum(0),
            flags: TcpFlags::SYN,
            window: 64240,
            urgent: 0,
            options: TcpOptions {
                mss: Some(1460),
                window_scale: Some(7),
                sack_permitted: true,
                timestamps: Some(Timestamps {
                    tsval: 1000,
                    tsecr: 0,
                }),
                ..TcpOptions::default()
            },
            payload: b"",
        },
    }
}

fn v6_data_repr() -> IpTcpRepr<'static> {
    IpTcpRepr {
        ip: IpRepr::V6(Ipv6Repr {
            src_addr: "2001:db8::1".parse::<Ipv6Addr>().expect("literal"),
            dst_addr: "2001:db8::2".parse::<Ipv6Addr>().expect("literal"),
            next_header: 6,
            payload_len: 37,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        }),
        tcp: TcpRepr {
            src_port: 443,
            dst_port: 50000,
            seq: SeqNum(0xffff_fff0),
            ack: SeqNum(0x10),
            flags: TcpFlags::ACK | TcpFlags::PSH,
            window: 501,
            urgent: 0,
            options: TcpOptions {
                timestamps: Some(Timestamps {
                    tsval: 0xdead_beef,
                    tsecr: 0x0102_0304,
                }),
                ..TcpOptions::default()
            },
            payload: b"hello",
        },
    }
}

#[test]
fn ipv4_syn_parses_to_the_known_fields() {
    assert_eq!(IpTcpRepr::parse(&V4_SYN, true), Ok(v4_syn_repr()));
    let ip = Ipv4Packet::new_checked(&V4_SYN[..]).expect("valid");
    assert_eq!(ip.checksum(), 0x0a74);
    let tcp = TcpPacket::new_checked(ip.payload()).expect("valid");
    assert_eq!(tcp.checksum(), 0x948e);
}

#[test]
fn ipv4_syn_emits_the_known_bytes_and_checksums() {
    let repr = v4_syn_repr();
    let mut buf = [0u8; 60];
    assert_eq!(repr.emit(&mut buf, true), Ok(60));
    assert_eq!(buf, V4_SYN);
}

#[test]
fn ipv6_odd_length_segment_parses_and_emits_with_the_known_checksum() {
    assert_eq!(IpTcpRepr::parse(&V6_DATA, true), Ok(v6_data_repr()));
    let mut buf = [0u8; 77];
    assert_eq!(v6_data_repr().emit(&mut buf, true), Ok(77));
    assert_eq!(buf, V6_DATA);
}

#[test]
fn a_flipped_payload_bit_fails_the_tcp_checksum() {
    let mut bytes = V6_DATA;
    bytes[76] ^= 0x01; // 'o' -> 'n': the word 0x6f00 becomes 0x6e00.
    assert_eq!(
        IpTcpRepr::parse(&bytes, true),
        Err(PacketError::Tcp(TcpError::Checksum {
            got: 0x6ec4,
            expected: 0x6fc4
        }))
    );
    assert!(IpTcpRepr::parse(&bytes, false).is_ok());
}

#[test]
fn the_tcp_checksum_covers_the_pseudo_header_addresses() {
    let ip = Ipv4Packet::new_checked(&V4_SYN[..]).expect("valid");
    let tcp = TcpPacket::new_checked(ip.payload()).expect("valid");
    let src = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let dst = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    assert!(tcp.verify_checksum(src, dst));
    assert!(!tcp.verify_checksum(src, IpAddr::V4(Ipv4Addr::new(10, 0, 0, 3))));
    assert!(!tcp.verify_checksum(src, IpAddr::V6(Ipv6Addr::LOCALHOST)));
}
