//! The little of IPv4, IPv6 and TCP that a network needs to read: addresses for routing,
//! TTL for loop protection, ports for flow accounting, where the transport payload
//! starts (corruption and middleboxes), and a builder for test packets.
//!
//! This module must not grow into a protocol parser: the protocol crate owns the wire
//! formats. Everything here treats input as untrusted and never panics.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use mptcp_proto::wire::checksum::Checksum;

/// IP protocol number of TCP.
pub const PROTO_TCP: u8 = 6;

/// Why a byte string is not a packet the simulator can route.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("packet is empty")]
    Empty,
    #[error("IP version {0} is neither 4 nor 6")]
    BadVersion(u8),
    #[error("{what} needs {needed} bytes, packet has {len}")]
    Truncated {
        what: &'static str,
        needed: usize,
        len: usize,
    },
    #[error("IPv4 header length {0} bytes is below the minimum of 20")]
    BadIhl(usize),
    #[error("TCP data offset {0} bytes is below the minimum of 20")]
    BadDataOffset(usize),
    #[error("IPv6 extension header chain is longer than {0} headers")]
    TooManyExtensions(usize),
    #[error("packet carries protocol {0}, not TCP")]
    NotTcp(u8),
    #[error("TCP option at offset {offset} has bad length {len}")]
    BadOption { offset: usize, len: usize },
}

/// The fields of an IP header the simulator uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpHeader {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// Upper-layer protocol (after any IPv6 extension headers).
    pub protocol: u8,
    /// Offset of the transport header: the IPv4 IHL, or 40 plus IPv6 extension headers.
    pub transport_offset: usize,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
}

/// Parse the IP header of `packet`. The length fields are not required to match the
/// buffer exactly (the stack under test may emit anything); only what is read is checked.
pub fn parse_ip(packet: &[u8]) -> Result<IpHeader, PacketError> {
    let first = *packet.first().ok_or(PacketError::Empty)?;
    match first >> 4 {
        4 => {
            need(packet, 20, "IPv4 header")?;
            let ihl = usize::from(first & 0x0f) * 4;
            if ihl < 20 {
                return Err(PacketError::BadIhl(ihl));
            }
            need(packet, ihl, "IPv4 header with options")?;
            let src = Ipv4Addr::new(packet[12], packet[13], packet[14], packet[15]);
            let dst = Ipv4Addr::new(packet[16], packet[17], packet[18], packet[19]);
            Ok(IpHeader {
                src: src.into(),
                dst: dst.into(),
                protocol: packet[9],
                transport_offset: ihl,
                ttl: packet[8],
            })
        }
        6 => {
            need(packet, 40, "IPv6 header")?;
            let mut src = [0u8; 16];
            let mut dst = [0u8; 16];
            src.copy_from_slice(&packet[8..24]);
            dst.copy_from_slice(&packet[24..40]);
            let (protocol, transport_offset) = skip_ipv6_extensions(packet, packet[6], 40)?;
            Ok(IpHeader {
                src: Ipv6Addr::from(src).into(),
                dst: Ipv6Addr::from(dst).into(),
                protocol,
                transport_offset,
                ttl: packet[7],
            })
        }
        version => Err(PacketError::BadVersion(version)),
    }
}

/// Walk hop-by-hop, routing, fragment and destination-options headers (RFC 8200 §4).
fn skip_ipv6_extensions(
    packet: &[u8],
    mut next: u8,
    mut offset: usize,
) -> Result<(u8, usize), PacketError> {
    const MAX_EXTENSIONS: usize = 8;
    for _ in 0..MAX_EXTENSIONS {
        let len = match next {
            0 | 43 | 60 => {
                need(packet, offset + 2, "IPv6 extension header")?;
                (usize::from(packet[offset + 1]) + 1) * 8
            }
            44 => 8,
            _ => return Ok((next, offset)),
        };
        need(packet, offset + len, "IPv6 extension header")?;
        next = packet[offset];
        offset += len;
    }
    match next {
        0 | 43 | 44 | 60 => Err(PacketError::TooManyExtensions(MAX_EXTENSIONS)),
        _ => Ok((next, offset)),
    }
}

fn need(packet: &[u8], needed: usize, what: &'static str) -> Result<(), PacketError> {
    if packet.len() < needed {
        Err(PacketError::Truncated {
            what,
            needed,
            len: packet.len(),
        })
    } else {
        Ok(())
    }
}

/// Decrement the IPv4 TTL or IPv6 hop limit as a router does. Returns `false` (and leaves
/// the packet alone) if the packet must be dropped because the TTL would reach zero.
/// The IPv4 header checksum is updated incrementally (RFC 1624 eqn. 3), so a header that
/// was already corrupt stays corrupt.
pub fn decrement_ttl(packet: &mut [u8], header: &IpHeader) -> bool {
    if header.ttl <= 1 {
        return false;
    }
    match header.src {
        IpAddr::V4(_) => {
            let old_word = u16::from_be_bytes([packet[8], packet[9]]);
            packet[8] = header.ttl - 1;
            let new_word = u16::from_be_bytes([packet[8], packet[9]]);
            let old_check = u16::from_be_bytes([packet[10], packet[11]]);
            let check = incremental_update(old_check, &[old_word], &[new_word]);
            packet[10..12].copy_from_slice(&check.to_be_bytes());
        }
        IpAddr::V6(_) => packet[7] = header.ttl - 1,
    }
    true
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') over every changed 16-bit word.
pub(crate) fn incremental_update(check: u16, old: &[u16], new: &[u16]) -> u16 {
    let mut sum = u32::from(!check);
    for &word in old {
        sum += u32::from(!word);
    }
    for &word in new {
        sum += u32::from(word);
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// A directed transport flow: the 5-tuple of a TCP segment as seen on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FlowId {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub protocol: u8,
}

impl fmt::Display for FlowId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}->{}", self.src, self.dst)
    }
}

/// The parts of a TCP segment that flow accounting needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpInfo {
    pub flow: FlowId,
    pub seq: u32,
    /// Offset of the TCP header in the packet.
    pub header_offset: usize,
    /// TCP header length including options.
    pub header_len: usize,
    /// Payload bytes after the TCP header.
    pub payload_len: usize,
    pub flags: u8,
}

/// Parse the TCP header that follows `ip`. The payload runs to the end of the buffer.
pub fn parse_tcp(packet: &[u8], ip: &IpHeader) -> Result<TcpInfo, PacketError> {
    if ip.protocol != PROTO_TCP {
        return Err(PacketError::NotTcp(ip.protocol));
    }
    let off = ip.transport_offset;
    need(packet, off + 20, "TCP header")?;
    let tcp = &packet[off..];
    let header_len = usize::from(tcp[12] >> 4) * 4;
    if header_len < 20 {
        return Err(PacketError::BadDataOffset(header_len));
    }
    need(packet, off + header_len, "TCP header with options")?;
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    Ok(TcpInfo {
        flow: FlowId {
            src: SocketAddr::new(ip.src, sport),
            dst: SocketAddr::new(ip.dst, dport),
            protocol: PROTO_TCP,
        },
        seq: u32::from_be_bytes([tcp[4], tcp[5], tcp[6], tcp[7]]),
        header_offset: off,
        header_len,
        payload_len: tcp.len() - header_len,
        flags: tcp[13],
    })
}

/// Sum of the TCP pseudo-header (RFC 9293 §3.1, RFC 8200 §8.1) for a segment of `len` bytes.
fn pseudo_header(src: IpAddr, dst: IpAddr, len: usize) -> Checksum {
    let mut sum = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            sum.add_bytes(&s.octets()).add_bytes(&d.octets());
            sum.add_u16(u16::from(PROTO_TCP)).add_u16(len as u16);
        }
        (s, d) => {
            sum.add_bytes(&ip_octets16(s)).add_bytes(&ip_octets16(d));
            sum.add_u32(len as u32).add_u32(u32::from(PROTO_TCP));
        }
    }
    sum
}

fn ip_octets16(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// Whether the TCP checksum of the segment in `packet` verifies.
pub fn tcp_checksum_ok(packet: &[u8]) -> Result<bool, PacketError> {
    let ip = parse_ip(packet)?;
    let tcp = parse_tcp(packet, &ip)?;
    let segment = &packet[tcp.header_offset..];
    let mut sum = pseudo_header(ip.src, ip.dst, segment.len());
    sum.add_bytes(segment);
    Ok(sum.sum16() == 0xffff)
}

/// What to put in a test TCP segment. Checksums are always computed.
#[derive(Clone, Debug)]
pub struct TcpSegmentSpec<'a> {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    /// Raw option bytes; padded with NOPs to a multiple of 4.
    pub options: &'a [u8],
    pub payload: &'a [u8],
    pub ttl: u8,
}

impl Default for TcpSegmentSpec<'_> {
    fn default() -> Self {
        TcpSegmentSpec {
            src: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            dst: SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 0),
            seq: 0,
            ack: 0,
            flags: 0x10,
            window: 65_535,
            options: &[],
            payload: &[],
            ttl: 64,
        }
    }
}

/// Write an IPv4 or IPv6 packet carrying one TCP segment into `buf` (cleared first).
/// A test and benchmark helper: hosts in the simulator are normally the real stack.
///
/// # Panics
/// If the two addresses are of different families or the options exceed 40 bytes:
/// both are mistakes in the caller's test code, not network input.
pub fn build_tcp_packet(spec: &TcpSegmentSpec<'_>, buf: &mut Vec<u8>) {
    let opt_len = spec.options.len().div_ceil(4) * 4;
    assert!(opt_len <= 40, "TCP options are at most 40 bytes");
    let tcp_len = 20 + opt_len + spec.payload.len();
    buf.clear();
    match (spec.src.ip(), spec.dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => {
            let total = (20 + tcp_len) as u16;
            buf.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, spec.ttl, PROTO_TCP, 0, 0]);
            buf[2..4].copy_from_slice(&total.to_be_bytes());
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
            let check = mptcp_proto::wire::checksum::internet_checksum(&buf[..20]);
            buf[10..12].copy_from_slice(&check.to_be_bytes());
        }
        (IpAddr::V6(s), IpAddr::V6(d)) => {
            buf.extend_from_slice(&[0x60, 0, 0, 0]);
            buf.extend_from_slice(&(tcp_len as u16).to_be_bytes());
            buf.extend_from_slice(&[PROTO_TCP, spec.ttl]);
            buf.extend_from_slice(&s.octets());
            buf.extend_from_slice(&d.octets());
        }
        _ => panic!("source and destination must be the same IP family"),
    }
    let start = buf.len();
    buf.extend_from_slice(&spec.src.port().to_be_bytes());
    buf.extend_from_slice(&spec.dst.port().to_be_bytes());
    buf.extend_from_slice(&spec.seq.to_be_bytes());
    buf.extend_from_slice(&spec.ack.to_be_bytes());
    buf.push((((20 + opt_len) / 4) as u8) << 4);
    buf.push(spec.flags);
    buf.extend_from_slice(&spec.window.to_be_bytes());
    buf.extend_from_slice(&[0, 0, 0, 0]);
    buf.extend_from_slice(spec.options);
    buf.resize(start + 20 + opt_len, 1);
    buf.extend_from_slice(spec.payload);
    let mut sum = pseudo_header(spec.src.ip(), spec.dst.ip(), tcp_len);
    sum.add_bytes(&buf[start..]);
    let check = sum.finish();
    buf[start + 16..start + 18].copy_from_slice(&check.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::new(Ipv4Addr::from(a).into(), port)
    }

    #[test]
    fn built_v4_packet_parses_and_verifies() {
        let mut buf = Vec::new();
        let spec = TcpSegmentSpec {
            src: v4([10, 0, 0, 1], 1234),
            dst: v4([10, 0, 0, 2], 80),
            seq: 7,
            options: &[2, 4, 5, 0xb4],
            payload: b"hello",
            ..Default::default()
        };
        build_tcp_packet(&spec, &mut buf);
        assert_eq!(buf.len(), 20 + 24 + 5);
        assert_eq!(
            mptcp_proto::wire::checksum::internet_checksum(&buf[..20]),
            0
        );
        let ip = parse_ip(&buf).unwrap();
        assert_eq!(ip.src, IpAddr::from([10, 0, 0, 1]));
        assert_eq!(ip.dst, IpAddr::from([10, 0, 0, 2]));
        assert_eq!(ip.ttl, 64);
        let tcp = parse_tcp(&buf, &ip).unwrap();
        assert_eq!(tcp.flow.src, spec.src);
        assert_eq!(tcp.flow.dst, spec.dst);
        assert_eq!(tcp.seq, 7);
        assert_eq!(tcp.header_len, 24);
        assert_eq!(tcp.payload_len, 5);
        assert!(tcp_checksum_ok(&buf).unwrap());
        buf[47] ^= 0x10;
        assert!(!tcp_checksum_ok(&buf).unwrap());
    }

    #[test]
    fn built_v6_packet_parses_and_verifies() {
        let mut buf = Vec::new();
        let src: SocketAddr = "[2001:db8::1]:5000".parse().unwrap();
        let dst: SocketAddr = "[2001:db8::2]:443".parse().unwrap();
        let spec = TcpSegmentSpec {
            src,
            dst,
            payload: &[1, 2, 3],
            ..Default::default()
        };
        build_tcp_packet(&spec, &mut buf);
        let ip = parse_ip(&buf).unwrap();
        assert_eq!(ip.transport_offset, 40);
        let tcp = parse_tcp(&buf, &ip).unwrap();
        assert_eq!(tcp.flow.src, src);
        assert_eq!(tcp.payload_len, 3);
        assert!(tcp_checksum_ok(&buf).unwrap());
    }

    #[test]
    fn ttl_decrement_keeps_the_ipv4_checksum_valid_and_stops_at_one() {
        let mut buf = Vec::new();
        let spec = TcpSegmentSpec {
            src: v4([10, 0, 0, 1], 1),
            dst: v4([10, 0, 0, 2], 2),
            ttl: 2,
            ..Default::default()
        };
        build_tcp_packet(&spec, &mut buf);
        let ip = parse_ip(&buf).unwrap();
        assert!(decrement_ttl(&mut buf, &ip));
        assert_eq!(buf[8], 1);
        assert_eq!(
            mptcp_proto::wire::checksum::internet_checksum(&buf[..20]),
            0
        );
        let ip = parse_ip(&buf).unwrap();
        assert!(!decrement_ttl(&mut buf, &ip));
        assert_eq!(buf[8], 1);
    }

    #[test]
    fn errors_name_what_is_wrong() {
        assert_eq!(parse_ip(&[]), Err(PacketError::Empty));
        assert_eq!(parse_ip(&[0x50]), Err(PacketError::BadVersion(5)));
        assert_eq!(
            parse_ip(&[0x45, 0, 0]),
            Err(PacketError::Truncated {
                what: "IPv4 header",
                needed: 20,
                len: 3
            })
        );
        let mut hdr = [0u8; 20];
        hdr[0] = 0x44;
        assert_eq!(parse_ip(&hdr), Err(PacketError::BadIhl(16)));
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let mut pkt = vec![0u8; 40 + 8 + 20];
        pkt[0] = 0x60;
        pkt[6] = 0; // hop-by-hop
        pkt[40] = PROTO_TCP;
        pkt[41] = 0; // 8 bytes
        pkt[48 + 12] = 5 << 4;
        let ip = parse_ip(&pkt).unwrap();
        assert_eq!(ip.protocol, PROTO_TCP);
        assert_eq!(ip.transport_offset, 48);
        assert_eq!(parse_tcp(&pkt, &ip).unwrap().header_len, 20);
    }

    proptest! {
        #[test]
        fn parsers_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
            if let Ok(ip) = parse_ip(&data) {
                let _ = parse_tcp(&data, &ip);
                let mut copy = data.clone();
                decrement_ttl(&mut copy, &ip);
            }
            let _ = tcp_checksum_ok(&data);
        }
    }
}
