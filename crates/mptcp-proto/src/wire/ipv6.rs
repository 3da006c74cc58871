//! IPv6 header (RFC 8200 §3) and the extension headers between it and TCP.
//!
//! Extension-header policy (RFC 8200 §4), applied by [`Ipv6Packet::upper_layer`]:
//! - Hop-by-Hop Options (0), Routing (43) with Segments Left 0, and Destination Options
//!   (60) are skipped: their contents do not concern a TCP endpoint.
//! - Hop-by-Hop anywhere but first is rejected (§4.3: it must follow the IPv6 header).
//! - A Routing header with Segments Left > 0 is rejected: the packet has further hops to
//!   visit and this stack is not a router.
//! - A Fragment header (44) is rejected: the stack does not reassemble fragments.
//! - Any other next-header value ends the walk and is reported as the upper-layer
//!   protocol; a caller that wants TCP (6) rejects the rest.
//!
//! Jumbograms (payload length 0 with a Jumbo Payload option, RFC 2675) are not supported:
//! the payload length field is taken at face value. Emission writes the 40-byte fixed
//! header with no extension headers.

use core::net::Ipv6Addr;

use crate::wire::ipv4::{read_u16, write_u16};

/// Bytes in the fixed IPv6 header.
pub const IPV6_HEADER_LEN: usize = 40;

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const DESTINATION_OPTIONS: u8 = 60;

/// Why an IPv6 header was rejected or could not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ipv6Error {
    #[error("IPv6 header needs {IPV6_HEADER_LEN} bytes, buffer has {0}")]
    Truncated(usize),
    #[error("IPv6 version field is {0}, expected 6")]
    Version(u8),
    #[error(
        "IPv6 payload length {payload_len} runs past the {available}-byte buffer after the header"
    )]
    PayloadPastBuffer {
        payload_len: usize,
        available: usize,
    },
    #[error(
        "IPv6 extension header {next_header} at offset {offset} needs {needed} bytes, \
         {available} remain in the payload"
    )]
    ExtensionTruncated {
        next_header: u8,
        offset: usize,
        needed: usize,
        available: usize,
    },
    #[error("IPv6 Hop-by-Hop Options header at offset {0} is not first")]
    HopByHopNotFirst(usize),
    #[error("IPv6 Routing header has {0} segments left: this host is not the final destination")]
    RoutingSegmentsLeft(u8),
    #[error("IPv6 Fragment header at offset {0}: fragments are not reassembled")]
    Fragment(usize),
    #[error("IPv6 payload of {0} bytes does not fit the 16-bit payload length")]
    PayloadTooLong(usize),
    #[error("buffer of {got} bytes is too short for the {needed}-byte IPv6 header")]
    BufferTooShort { needed: usize, got: usize },
}

mod field {
    use core::ops::Range;
    pub const VER_TC_FLOW: Range<usize> = 0..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const NXT_HDR: usize = 6;
    pub const HOP_LIMIT: usize = 7;
    pub const SRC_ADDR: Range<usize> = 8..24;
    pub const DST_ADDR: Range<usize> = 24..40;
}

/// A read/write view over an IPv6 fixed header and its payload (extension headers
/// included).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Packet<T: AsRef<[u8]>> {
    buffer: T,
}

/// Where the upper-layer header starts, after any skipped extension headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpperLayer {
    /// The upper-layer protocol number (6 for TCP).
    pub protocol: u8,
    /// Offset of the upper-layer header within [`Ipv6Packet::payload`].
    pub offset: usize,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer.
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv6Packet { buffer }
    }

    /// Wraps a buffer after checking the version and that the payload length fits the
    /// buffer. Bytes after the payload are ignored.
    pub fn new_checked(buffer: T) -> Result<Self, Ipv6Error> {
        let packet = Ipv6Packet { buffer };
        packet.check_len()?;
        Ok(packet)
    }

    fn check_len(&self) -> Result<(), Ipv6Error> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < IPV6_HEADER_LEN {
            return Err(Ipv6Error::Truncated(buffer_len));
        }
        if self.version() != 6 {
            return Err(Ipv6Error::Version(self.version()));
        }
        let payload_len = usize::from(self.payload_len());
        let available = buffer_len - IPV6_HEADER_LEN;
        if payload_len > available {
            return Err(Ipv6Error::PayloadPastBuffer {
                payload_len,
                available,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn first_word(&self) -> u32 {
        let b = self.buffer.as_ref();
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }

    pub fn version(&self) -> u8 {
        (self.first_word() >> 28) as u8
    }

    pub fn traffic_class(&self) -> u8 {
        (self.first_word() >> 20) as u8
    }

    /// The 20-bit flow label.
    pub fn flow_label(&self) -> u32 {
        self.first_word() & 0x000f_ffff
    }

    /// Bytes after the fixed header, extension headers included.
    pub fn payload_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn next_header(&self) -> u8 {
        self.buffer.as_ref()[field::NXT_HDR]
    }

    pub fn hop_limit(&self) -> u8 {
        self.buffer.as_ref()[field::HOP_LIMIT]
    }

    pub fn src_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_addr(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    pub fn dst_addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(read_addr(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// Everything after the fixed header up to the payload length.
    pub fn payload(&self) -> &[u8] {
        let end = IPV6_HEADER_LEN + usize::from(self.payload_len());
        &self.buffer.as_ref()[IPV6_HEADER_LEN..end]
    }

    /// Walks the extension headers (see the module docs for the policy) to the
    /// upper-layer header. Never reads past the payload.
    pub fn upper_layer(&self) -> Result<UpperLayer, Ipv6Error> {
        let payload = self.payload();
        let mut next_header = self.next_header();
        let mut offset = 0;
        loop {
            match next_header {
                HOP_BY_HOP | ROUTING | DESTINATION_OPTIONS => {
                    if next_header == HOP_BY_HOP && offset != 0 {
                        return Err(Ipv6Error::HopByHopNotFirst(offset));
                    }
                    let available = payload.len() - offset;
                    // Every one of these starts with next header and a length in 8-byte
                    // units not counting the first 8 bytes (RFC 8200 §4.3, §4.4, §4.6).
                    if available < 8 {
                        return Err(Ipv6Error::ExtensionTruncated {
                            next_header,
                            offset,
                            needed: 8,
                            available,
                        });
                    }
                    let len = (usize::from(payload[offset + 1]) + 1) * 8;
                    if len > available {
                        return Err(Ipv6Error::ExtensionTruncated {
                            next_header,
                            offset,
                            needed: len,
                            available,
                        });
                    }
                    if next_header == ROUTING && payload[offset + 3] != 0 {
                        return Err(Ipv6Error::RoutingSegmentsLeft(payload[offset + 3]));
                    }
                    next_header = payload[offset];
                    offset += len;
                }
                FRAGMENT => return Err(Ipv6Error::Fragment(offset)),
                protocol => {
                    return Ok(UpperLayer { protocol, offset });
                }
            }
        }
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv6Packet<&'a T> {
    /// The upper-layer protocol and its bytes (header and payload), borrowed for the
    /// buffer's whole lifetime.
    pub fn upper_layer_payload(&self) -> Result<(u8, &'a [u8]), Ipv6Error> {
        let upper = self.upper_layer()?;
        let end = IPV6_HEADER_LEN + usize::from(self.payload_len());
        let start = IPV6_HEADER_LEN + upper.offset;
        Ok((upper.protocol, &self.buffer.as_ref()[start..end]))
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets version 6, the traffic class and the 20-bit flow label.
    pub fn set_version_class_flow(&mut self, traffic_class: u8, flow_label: u32) {
        let word = (6u32 << 28) | (u32::from(traffic_class) << 20) | (flow_label & 0x000f_ffff);
        self.buffer.as_mut()[field::VER_TC_FLOW].copy_from_slice(&word.to_be_bytes());
    }

    pub fn set_payload_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    pub fn set_next_header(&mut self, value: u8) {
        self.buffer.as_mut()[field::NXT_HDR] = value;
    }

    pub fn set_hop_limit(&mut self, value: u8) {
        self.buffer.as_mut()[field::HOP_LIMIT] = value;
    }

    pub fn set_src_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv6Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let end = IPV6_HEADER_LEN + usize::from(self.payload_len());
        &mut self.buffer.as_mut()[IPV6_HEADER_LEN..end]
    }
}

/// A parsed IPv6 header, with extension headers skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv6Repr {
    pub src_addr: Ipv6Addr,
    pub dst_addr: Ipv6Addr,
    /// The upper-layer protocol after any skipped extension headers.
    pub next_header: u8,
    /// Bytes of the upper-layer header and payload (extension headers excluded).
    pub payload_len: usize,
    pub hop_limit: u8,
    pub traffic_class: u8,
    /// 20 bits.
    pub flow_label: u32,
}

impl Ipv6Repr {
    /// Parses a header and walks its extension headers (module docs give the policy).
    pub fn parse<T: AsRef<[u8]>>(packet: &Ipv6Packet<T>) -> Result<Ipv6Repr, Ipv6Error> {
        packet.check_len()?;
        let upper = packet.upper_layer()?;
        Ok(Ipv6Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            next_header: upper.protocol,
            payload_len: usize::from(packet.payload_len()) - upper.offset,
            hop_limit: packet.hop_limit(),
            traffic_class: packet.traffic_class(),
            flow_label: packet.flow_label(),
        })
    }

    /// Bytes of header this repr emits (no extension headers).
    pub const fn header_len(&self) -> usize {
        IPV6_HEADER_LEN
    }

    pub const fn buffer_len(&self) -> usize {
        IPV6_HEADER_LEN + self.payload_len
    }

    /// Writes the 40-byte fixed header to the start of the packet's buffer; the payload
    /// is the caller's to fill.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv6Packet<T>,
    ) -> Result<(), Ipv6Error> {
        let payload_len = u16::try_from(self.payload_len)
            .map_err(|_| Ipv6Error::PayloadTooLong(self.payload_len))?;
        let got = packet.buffer.as_ref().len();
        if got < IPV6_HEADER_LEN {
            return Err(Ipv6Error::BufferTooShort {
                needed: IPV6_HEADER_LEN,
                got,
            });
        }
        packet.set_version_class_flow(self.traffic_class, self.flow_label);
        packet.set_payload_len(payload_len);
        packet.set_next_header(self.next_header);
        packet.set_hop_limit(self.hop_limit);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        Ok(())
    }
}

fn read_addr(buf: &[u8], at: usize) -> [u8; 16] {
    let mut addr = [0u8; 16];
    addr.copy_from_slice(&buf[at..at + 16]);
    addr
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(next_header: u8, payload: &[u8]) -> Vec<u8> {
        let repr = Ipv6Repr {
            src_addr: "2001:db8::1".parse().expect("literal"),
            dst_addr: "2001:db8::2".parse().expect("literal"),
            next_header,
            payload_len: payload.len(),
            hop_limit: 64,
            traffic_class: 0xb8,
            flow_label: 0x12345,
        };
        let mut bytes = vec![0u8; 40 + payload.len()];
        repr.emit(&mut Ipv6Packet::new_unchecked(&mut bytes[..]))
            .expect("sized buffer");
        bytes[40..].copy_from_slice(payload);
        bytes
    }

    #[test]
    fn fixed_header_fields() {
        let bytes = header(6, b"tcp!");
        assert_eq!(bytes[..8], [0x6b, 0x81, 0x23, 0x45, 0x00, 0x04, 0x06, 0x40]);
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(packet.traffic_class(), 0xb8);
        assert_eq!(packet.flow_label(), 0x12345);
        let repr = Ipv6Repr::parse(&packet).expect("valid");
        assert_eq!(repr.next_header, 6);
        assert_eq!(repr.payload_len, 4);
        assert_eq!(packet.upper_layer_payload(), Ok((6, &b"tcp!"[..])));
    }

    #[test]
    fn skips_hop_by_hop_routing_and_destination_options() {
        let mut payload = Vec::new();
        // Hop-by-Hop, 8 bytes, next = Routing. Options: PadN of 4 bytes.
        payload.extend_from_slice(&[ROUTING, 0, 1, 4, 0, 0, 0, 0]);
        // Routing, 16 bytes (len 1), type 0, segments left 0, next = Destination Options.
        payload.extend_from_slice(&[DESTINATION_OPTIONS, 1, 0, 0]);
        payload.extend_from_slice(&[0; 12]);
        // Destination Options, 8 bytes, next = TCP.
        payload.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        payload.extend_from_slice(b"tcp!");
        let bytes = header(HOP_BY_HOP, &payload);
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(
            packet.upper_layer(),
            Ok(UpperLayer {
                protocol: 6,
                offset: 32
            })
        );
        assert_eq!(packet.upper_layer_payload(), Ok((6, &b"tcp!"[..])));
        assert_eq!(Ipv6Repr::parse(&packet).map(|r| r.payload_len), Ok(4));
    }

    #[test]
    fn extension_header_errors() {
        let bytes = header(FRAGMENT, &[6, 0, 0, 0, 0, 0, 0, 1]);
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(Ipv6Repr::parse(&packet), Err(Ipv6Error::Fragment(0)));

        let bytes = header(ROUTING, &[6, 0, 0, 2, 0, 0, 0, 0]);
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(
            Ipv6Repr::parse(&packet),
            Err(Ipv6Error::RoutingSegmentsLeft(2))
        );

        let bytes = header(
            DESTINATION_OPTIONS,
            &[HOP_BY_HOP, 0, 1, 4, 0, 0, 0, 0, 6, 0, 1, 4, 0, 0, 0, 0],
        );
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(
            Ipv6Repr::parse(&packet),
            Err(Ipv6Error::HopByHopNotFirst(8))
        );

        // Length byte says 16 bytes, only 8 present.
        let bytes = header(DESTINATION_OPTIONS, &[6, 1, 1, 4, 0, 0, 0, 0]);
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(
            Ipv6Repr::parse(&packet),
            Err(Ipv6Error::ExtensionTruncated {
                next_header: DESTINATION_OPTIONS,
                offset: 0,
                needed: 16,
                available: 8
            })
        );
        let bytes = header(HOP_BY_HOP, &[6, 0, 1]);
        let packet = Ipv6Packet::new_checked(&bytes[..]).expect("valid");
        assert_eq!(
            Ipv6Repr::parse(&packet),
            Err(Ipv6Error::ExtensionTruncated {
                next_header: HOP_BY_HOP,
                offset: 0,
                needed: 8,
                available: 3
            })
        );
    }

    #[test]
    fn structural_errors() {
        let bytes = header(6, b"tcp!");
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..39]),
            Err(Ipv6Error::Truncated(39))
        );
        assert_eq!(
            Ipv6Packet::new_checked(&bytes[..43]),
            Err(Ipv6Error::PayloadPastBuffer {
                payload_len: 4,
                available: 3
            })
        );
        let mut b = bytes.clone();
        b[0] = 0x4b;
        assert_eq!(Ipv6Packet::new_checked(&b[..]), Err(Ipv6Error::Version(4)));
    }
}
