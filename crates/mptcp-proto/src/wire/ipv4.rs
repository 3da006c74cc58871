//! IPv4 header (RFC 791): a zero-copy view and a parsed representation.
//!
//! The stack carries TCP only and does not reassemble IP fragments: a fragment (MF set or a
//! non-zero fragment offset) is rejected by [`Ipv4Repr::parse`] with
//! [`Ipv4Error::Fragment`], so the caller drops it. IPv4 options are accepted and skipped
//! (their bytes stay reachable through [`Ipv4Packet::options`]); source-route options are
//! not honoured, so the TCP pseudo-header always uses the header's destination address.
//! Emission writes a 20-byte header with no options.

use core::net::Ipv4Addr;

use crate::wire::checksum::{Checksum, internet_checksum};

/// Bytes in an IPv4 header without options.
pub const IPV4_HEADER_LEN: usize = 20;

/// Why an IPv4 header was rejected or could not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Ipv4Error {
    #[error("IPv4 header needs {IPV4_HEADER_LEN} bytes, buffer has {0}")]
    Truncated(usize),
    #[error("IPv4 version field is {0}, expected 4")]
    Version(u8),
    #[error("IPv4 IHL is {0} (words), the minimum is 5")]
    HeaderLenTooSmall(u8),
    #[error("IPv4 header length {header_len} runs past the {buffer_len}-byte buffer")]
    HeaderPastBuffer {
        header_len: usize,
        buffer_len: usize,
    },
    #[error("IPv4 total length {total_len} is shorter than the {header_len}-byte header")]
    TotalLenTooSmall { total_len: usize, header_len: usize },
    #[error("IPv4 total length {total_len} runs past the {buffer_len}-byte buffer")]
    TotalLenPastBuffer { total_len: usize, buffer_len: usize },
    #[error(
        "IPv4 fragment (offset {offset_bytes} bytes, more fragments {more_fragments}): \
         fragments are not reassembled"
    )]
    Fragment {
        offset_bytes: usize,
        more_fragments: bool,
    },
    #[error("IPv4 header checksum is {got:#06x}, expected {expected:#06x}")]
    Checksum { got: u16, expected: u16 },
    #[error("IPv4 payload of {0} bytes does not fit the 16-bit total length")]
    PayloadTooLong(usize),
    #[error("buffer of {got} bytes is too short for the {needed}-byte IPv4 header")]
    BufferTooShort { needed: usize, got: usize },
}

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

const FLAG_DF: u16 = 0x4000;
const FLAG_MF: u16 = 0x2000;
const OFFSET_MASK: u16 = 0x1fff;

/// A read/write view over an IPv4 header and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer. Use for
    /// emission into a buffer the caller sized with [`Ipv4Repr::buffer_len`].
    pub const fn new_unchecked(buffer: T) -> Self {
        Ipv4Packet { buffer }
    }

    /// Wraps a buffer after checking that every accessor stays in bounds: the version is
    /// 4, the IHL is at least 5 and the header and total length fit in the buffer. Bytes
    /// after the total length (link-layer padding) are ignored.
    pub fn new_checked(buffer: T) -> Result<Self, Ipv4Error> {
        let packet = Ipv4Packet { buffer };
        packet.check_len()?;
        Ok(packet)
    }

    fn check_len(&self) -> Result<(), Ipv4Error> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < IPV4_HEADER_LEN {
            return Err(Ipv4Error::Truncated(buffer_len));
        }
        if self.version() != 4 {
            return Err(Ipv4Error::Version(self.version()));
        }
        let ihl = self.buffer.as_ref()[field::VER_IHL] & 0x0f;
        if ihl < 5 {
            return Err(Ipv4Error::HeaderLenTooSmall(ihl));
        }
        let header_len = self.header_len();
        if header_len > buffer_len {
            return Err(Ipv4Error::HeaderPastBuffer {
                header_len,
                buffer_len,
            });
        }
        let total_len = usize::from(self.total_len());
        if total_len < header_len {
            return Err(Ipv4Error::TotalLenTooSmall {
                total_len,
                header_len,
            });
        }
        if total_len > buffer_len {
            return Err(Ipv4Error::TotalLenPastBuffer {
                total_len,
                buffer_len,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn version(&self) -> u8 {
        self.buffer.as_ref()[field::VER_IHL] >> 4
    }

    /// Header length in bytes (IHL × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::VER_IHL] & 0x0f) * 4
    }

    pub fn dscp(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] >> 2
    }

    pub fn ecn(&self) -> u8 {
        self.buffer.as_ref()[field::DSCP_ECN] & 0x03
    }

    /// Header plus payload, in bytes.
    pub fn total_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::LENGTH.start)
    }

    pub fn ident(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::IDENT.start)
    }

    pub fn dont_frag(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_DF != 0
    }

    pub fn more_frags(&self) -> bool {
        read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & FLAG_MF != 0
    }

    /// Fragment offset in bytes (the field counts 8-byte units).
    pub fn frag_offset(&self) -> usize {
        usize::from(read_u16(self.buffer.as_ref(), field::FLG_OFF.start) & OFFSET_MASK) * 8
    }

    pub fn ttl(&self) -> u8 {
        self.buffer.as_ref()[field::TTL]
    }

    pub fn protocol(&self) -> u8 {
        self.buffer.as_ref()[field::PROTOCOL]
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn src_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_addr(self.buffer.as_ref(), field::SRC_ADDR.start))
    }

    pub fn dst_addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(read_addr(self.buffer.as_ref(), field::DST_ADDR.start))
    }

    /// The option bytes between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[IPV4_HEADER_LEN..self.header_len()]
    }

    /// The payload: from the end of the header to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..usize::from(self.total_len())]
    }

    /// True when the header checksum is correct (the header sums to zero).
    pub fn verify_checksum(&self) -> bool {
        internet_checksum(&self.buffer.as_ref()[..self.header_len()]) == 0
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Ipv4Packet<&'a T> {
    /// The payload, borrowed for the buffer's whole lifetime.
    pub fn payload_ref(&self) -> &'a [u8] {
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        &self.buffer.as_ref()[header_len..total_len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets version 4 and the header length in bytes (a multiple of 4, 20..=60).
    pub fn set_version_and_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::VER_IHL] = 0x40 | ((header_len / 4) as u8 & 0x0f);
    }

    pub fn set_dscp_ecn(&mut self, dscp: u8, ecn: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = (dscp << 2) | (ecn & 0x03);
    }

    pub fn set_total_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::LENGTH.start, value);
    }

    pub fn set_ident(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::IDENT.start, value);
    }

    /// Sets DF and clears MF and the fragment offset: the stack never fragments.
    pub fn set_unfragmented(&mut self, dont_frag: bool) {
        let value = if dont_frag { FLAG_DF } else { 0 };
        write_u16(self.buffer.as_mut(), field::FLG_OFF.start, value);
    }

    pub fn set_ttl(&mut self, value: u8) {
        self.buffer.as_mut()[field::TTL] = value;
    }

    pub fn set_protocol(&mut self, value: u8) {
        self.buffer.as_mut()[field::PROTOCOL] = value;
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    pub fn set_src_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&addr.octets());
    }

    pub fn set_dst_addr(&mut self, addr: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&addr.octets());
    }

    /// Computes the header checksum over the current header bytes and stores it.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let header_len = self.header_len();
        let sum = Checksum::new()
            .add_bytes(&self.buffer.as_ref()[..header_len])
            .finish();
        self.set_checksum(sum);
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        let total_len = usize::from(self.total_len());
        &mut self.buffer.as_mut()[header_len..total_len]
    }
}

/// A parsed IPv4 header, as the stack uses it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ipv4Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    /// The payload's protocol number (6 for TCP).
    pub protocol: u8,
    /// Payload bytes after the header (total length minus header length).
    pub payload_len: usize,
    pub ttl: u8,
    /// Differentiated services code point (6 bits).
    pub dscp: u8,
    /// ECN field (RFC 3168, 2 bits).
    pub ecn: u8,
    pub ident: u16,
    pub dont_frag: bool,
}

impl Ipv4Repr {
    /// Parses a checked header. Rejects fragments and, when `verify_checksum` is set, a
    /// wrong header checksum (RFC 791 §3.1: such a datagram is discarded).
    pub fn parse<T: AsRef<[u8]>>(
        packet: &Ipv4Packet<T>,
        verify_checksum: bool,
    ) -> Result<Ipv4Repr, Ipv4Error> {
        packet.check_len()?;
        if packet.more_frags() || packet.frag_offset() != 0 {
            return Err(Ipv4Error::Fragment {
                offset_bytes: packet.frag_offset(),
                more_fragments: packet.more_frags(),
            });
        }
        if verify_checksum && !packet.verify_checksum() {
            let header_len = packet.header_len();
            let mut sum = Checksum::new();
            let header = &packet.buffer.as_ref()[..header_len];
            sum.add_bytes(&header[..field::CHECKSUM.start])
                .add_bytes(&header[field::CHECKSUM.end..]);
            return Err(Ipv4Error::Checksum {
                got: packet.checksum(),
                expected: sum.finish(),
            });
        }
        Ok(Ipv4Repr {
            src_addr: packet.src_addr(),
            dst_addr: packet.dst_addr(),
            protocol: packet.protocol(),
            payload_len: usize::from(packet.total_len()) - packet.header_len(),
            ttl: packet.ttl(),
            dscp: packet.dscp(),
            ecn: packet.ecn(),
            ident: packet.ident(),
            dont_frag: packet.dont_frag(),
        })
    }

    /// Bytes of header this repr emits (no options).
    pub const fn header_len(&self) -> usize {
        IPV4_HEADER_LEN
    }

    /// Header plus payload.
    pub const fn buffer_len(&self) -> usize {
        IPV4_HEADER_LEN + self.payload_len
    }

    /// Writes the 20-byte header to the start of the packet's buffer; the payload bytes
    /// are the caller's to fill (before or after). The header checksum is computed when
    /// `compute_checksum` is set and zeroed otherwise (for checksum offload).
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut Ipv4Packet<T>,
        compute_checksum: bool,
    ) -> Result<(), Ipv4Error> {
        let total_len = u16::try_from(self.buffer_len())
            .map_err(|_| Ipv4Error::PayloadTooLong(self.payload_len))?;
        let got = packet.buffer.as_ref().len();
        if got < IPV4_HEADER_LEN {
            return Err(Ipv4Error::BufferTooShort {
                needed: IPV4_HEADER_LEN,
                got,
            });
        }
        packet.set_version_and_header_len(IPV4_HEADER_LEN);
        packet.set_dscp_ecn(self.dscp, self.ecn);
        packet.set_total_len(total_len);
        packet.set_ident(self.ident);
        packet.set_unfragmented(self.dont_frag);
        packet.set_ttl(self.ttl);
        packet.set_protocol(self.protocol);
        packet.set_src_addr(self.src_addr);
        packet.set_dst_addr(self.dst_addr);
        if compute_checksum {
            packet.fill_checksum();
        } else {
            packet.set_checksum(0);
        }
        Ok(())
    }
}

pub(crate) fn read_u16(buf: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([buf[at], buf[at + 1]])
}

pub(crate) fn write_u16(buf: &mut [u8], at: usize, value: u16) {
    buf[at..at + 2].copy_from_slice(&value.to_be_bytes());
}

fn read_addr(buf: &[u8], at: usize) -> [u8; 4] {
    [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]]
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The classic example header also used in checksum.rs (UDP, 0x73 bytes, checksum
    /// 0xb861), followed by enough payload bytes to satisfy the total length.
    fn example() -> [u8; 0x73] {
        let mut bytes = [0u8; 0x73];
        bytes[..20].copy_from_slice(&[
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0xb8, 0x61, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ]);
        bytes
    }

    #[test]
    fn parses_the_example_header() {
        let bytes = example();
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("valid header");
        assert!(packet.verify_checksum());
        let repr = Ipv4Repr::parse(&packet, true).expect("valid header");
        assert_eq!(
            repr,
            Ipv4Repr {
                src_addr: Ipv4Addr::new(192, 168, 0, 1),
                dst_addr: Ipv4Addr::new(192, 168, 0, 199),
                protocol: 17,
                payload_len: 0x73 - 20,
                ttl: 64,
                dscp: 0,
                ecn: 0,
                ident: 0,
                dont_frag: true,
            }
        );
        let mut out = [0u8; 0x73];
        repr.emit(&mut Ipv4Packet::new_unchecked(&mut out[..]), true)
            .expect("buffer is large enough");
        assert_eq!(out[..20], bytes[..20]);
    }

    #[test]
    fn checksum_error_names_both_values() {
        let mut bytes = example();
        bytes[11] = 0x62;
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("lengths are fine");
        assert_eq!(
            Ipv4Repr::parse(&packet, true),
            Err(Ipv4Error::Checksum {
                got: 0xb862,
                expected: 0xb861
            })
        );
        assert!(Ipv4Repr::parse(&packet, false).is_ok());
    }

    #[test]
    fn structural_errors() {
        let bytes = example();
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..19]),
            Err(Ipv4Error::Truncated(19))
        );
        let mut b = bytes;
        b[0] = 0x65;
        assert_eq!(Ipv4Packet::new_checked(&b[..]), Err(Ipv4Error::Version(6)));
        b[0] = 0x44;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(Ipv4Error::HeaderLenTooSmall(4))
        );
        b[0] = 0x4f;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..40]),
            Err(Ipv4Error::HeaderPastBuffer {
                header_len: 60,
                buffer_len: 40
            })
        );
        let mut b = bytes;
        b[3] = 19;
        b[2] = 0;
        assert_eq!(
            Ipv4Packet::new_checked(&b[..]),
            Err(Ipv4Error::TotalLenTooSmall {
                total_len: 19,
                header_len: 20
            })
        );
        assert_eq!(
            Ipv4Packet::new_checked(&bytes[..0x72]),
            Err(Ipv4Error::TotalLenPastBuffer {
                total_len: 0x73,
                buffer_len: 0x72
            })
        );
    }

    #[test]
    fn fragments_are_rejected() {
        let mut bytes = example();
        // MF set, offset 0: the first fragment.
        bytes[6] = 0x20;
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("lengths are fine");
        assert_eq!(
            Ipv4Repr::parse(&packet, false),
            Err(Ipv4Error::Fragment {
                offset_bytes: 0,
                more_fragments: true
            })
        );
        // Last fragment: offset 185 units = 1480 bytes.
        bytes[6] = 0x00;
        bytes[7] = 185;
        let packet = Ipv4Packet::new_checked(&bytes[..]).expect("lengths are fine");
        assert_eq!(
            Ipv4Repr::parse(&packet, false),
            Err(Ipv4Error::Fragment {
                offset_bytes: 1480,
                more_fragments: false
            })
        );
    }

    #[test]
    fn options_are_skipped_and_trailing_padding_ignored() {
        // IHL 6 (one 4-byte option word: NOP NOP NOP EOL), total length 28, then 4 bytes
        // of link-layer padding past the total length.
        let mut bytes = [0u8; 32];
        bytes[..24].copy_from_slice(&[
            0x46, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x00, 0x00, 0x40, 0x06, 0x00, 0x00, 10, 0, 0, 1,
            10, 0, 0, 2, 1, 1, 1, 0,
        ]);
        bytes[24..28].copy_from_slice(b"data");
        let mut packet = Ipv4Packet::new_checked(&mut bytes[..]).expect("valid");
        packet.fill_checksum();
        assert!(packet.verify_checksum());
        assert_eq!(packet.options(), &[1, 1, 1, 0]);
        assert_eq!(packet.payload(), b"data");
        let repr = Ipv4Repr::parse(&packet, true).expect("valid");
        assert_eq!(repr.payload_len, 4);
        assert_eq!(repr.ident, 0x1234);
        assert!(!repr.dont_frag);
    }

    #[test]
    fn emit_rejects_oversized_payload_and_short_buffer() {
        let repr = Ipv4Repr {
            src_addr: Ipv4Addr::new(1, 2, 3, 4),
            dst_addr: Ipv4Addr::new(5, 6, 7, 8),
            protocol: 6,
            payload_len: 65_516,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
        };
        let mut buf = [0u8; 20];
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..]), true),
            Err(Ipv4Error::PayloadTooLong(65_516))
        );
        let repr = Ipv4Repr {
            payload_len: 0,
            ..repr
        };
        assert_eq!(
            repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..10]), true),
            Err(Ipv4Error::BufferTooShort {
                needed: 20,
                got: 10
            })
        );
    }
}
