//! Segmentation offload in software: cuts a TCP super-segment (what the endpoint emits
//! with [`crate::tcp::TcpConfig::max_segment_payload`]) into wire-sized packets, as a
//! TSO device or the kernel's GSO would. The endpoint does its per-segment work once
//! per super-segment; each piece then costs a header copy, its payload copy and its
//! checksums.
//!
//! Every piece repeats the IP and TCP headers, options included (an MPTCP DSS mapping
//! covers the whole super-segment, so each piece may carry it, RFC 8684 §3.3.1). The
//! sequence number advances by the bytes before the piece, the IPv4 identification by
//! one per piece, FIN and PSH stay on the last piece and CWR on the first; the IPv4
//! header checksum and the full TCP checksum are computed for each piece, so the
//! sender may leave a partial TCP checksum ([`crate::wire::TcpChecksum::Partial`]).
//!
//! [`crate::wire::gro`] is the receiving counterpart.

use core::net::IpAddr;

use crate::wire::ipv4::Ipv4Packet;
use crate::wire::ipv6::{IPV6_HEADER_LEN, Ipv6Packet};
use crate::wire::tcp::{IP_PROTOCOL_TCP, TCP_HEADER_LEN, TcpFlags, TcpPacket};

/// Why a packet cannot be segmented. The endpoint never emits such a packet; these
/// name what was wrong with one that came from elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum GsoError {
    #[error("not an IPv4 or IPv6 packet (version nibble {0})")]
    Version(u8),
    #[error("IP header or length fields do not match the {0} bytes given")]
    Length(usize),
    #[error("IP protocol {0} is not TCP (IPv6 extension headers are not segmented)")]
    NotTcp(u8),
    #[error("TCP header length {0} does not fit the segment")]
    TcpHeader(usize),
    #[error("segment size 0")]
    ZeroSize,
}

/// The pieces of one super-segment, written one at a time into the caller's buffers.
#[derive(Clone, Debug)]
pub struct Segmenter<'a> {
    packet: &'a [u8],
    /// IP header bytes (IPv4 with its options, or the fixed IPv6 header).
    ip_header_len: usize,
    /// IP and TCP headers together: where the payload starts.
    headers_len: usize,
    /// Payload bytes per piece (the last may be shorter).
    size: usize,
    /// Payload offset of the next piece.
    next: usize,
    /// Pieces written so far.
    index: u16,
    src: IpAddr,
    dst: IpAddr,
}

impl<'a> Segmenter<'a> {
    /// Prepares to cut `packet` into pieces of `gso_size` payload bytes. A packet whose
    /// payload fits one piece (a pure ACK, a short segment) comes out as one packet with
    /// its checksums completed.
    pub fn new(packet: &'a [u8], gso_size: u16) -> Result<Self, GsoError> {
        if gso_size == 0 {
            return Err(GsoError::ZeroSize);
        }
        let version = packet.first().map_or(0, |b| b >> 4);
        let (ip_header_len, protocol, total, src, dst) = match version {
            4 => {
                let ip =
                    Ipv4Packet::new_checked(packet).map_err(|_| GsoError::Length(packet.len()))?;
                (
                    ip.header_len(),
                    ip.protocol(),
                    usize::from(ip.total_len()),
                    IpAddr::V4(ip.src_addr()),
                    IpAddr::V4(ip.dst_addr()),
                )
            }
            6 => {
                let ip =
                    Ipv6Packet::new_checked(packet).map_err(|_| GsoError::Length(packet.len()))?;
                (
                    IPV6_HEADER_LEN,
                    ip.next_header(),
                    IPV6_HEADER_LEN + usize::from(ip.payload_len()),
                    IpAddr::V6(ip.src_addr()),
                    IpAddr::V6(ip.dst_addr()),
                )
            }
            v => return Err(GsoError::Version(v)),
        };
        if protocol != IP_PROTOCOL_TCP {
            return Err(GsoError::NotTcp(protocol));
        }
        if total != packet.len() || total < ip_header_len + TCP_HEADER_LEN {
            return Err(GsoError::Length(packet.len()));
        }
        let tcp_header_len = usize::from(packet[ip_header_len + 12] >> 4) * 4;
        if tcp_header_len < TCP_HEADER_LEN || ip_header_len + tcp_header_len > total {
            return Err(GsoError::TcpHeader(tcp_header_len));
        }
        Ok(Segmenter {
            packet,
            ip_header_len,
            headers_len: ip_header_len + tcp_header_len,
            size: usize::from(gso_size),
            next: 0,
            index: 0,
            src,
            dst,
        })
    }

    /// Bytes the largest piece needs: a buffer this long takes any of them.
    pub fn max_piece_len(&self) -> usize {
        self.headers_len + self.size.min(self.payload_len())
    }

    fn payload_len(&self) -> usize {
        self.packet.len() - self.headers_len
    }

    /// Writes the next piece to the start of `out` and returns its length; `None` once
    /// every piece is out. `out` must hold [`Segmenter::max_piece_len`] bytes.
    ///
    /// # Panics
    ///
    /// If `out` is shorter than the piece (a caller bug).
    pub fn next_into(&mut self, out: &mut [u8]) -> Option<usize> {
        let payload_len = self.payload_len();
        let first = self.index == 0;
        if !first && self.next >= payload_len {
            return None;
        }
        let start = self.next;
        let end = (start + self.size).min(payload_len);
        let last = end == payload_len;
        let len = self.headers_len + (end - start);
        let out = &mut out[..len];
        out[..self.headers_len].copy_from_slice(&self.packet[..self.headers_len]);
        out[self.headers_len..]
            .copy_from_slice(&self.packet[self.headers_len + start..self.headers_len + end]);
        let (ip, tcp) = out.split_at_mut(self.ip_header_len);
        if self.src.is_ipv4() {
            let mut ip = Ipv4Packet::new_unchecked(ip);
            // Lengths fit: no piece is longer than the packet, whose length fit.
            ip.set_total_len(len as u16);
            ip.set_ident(ip.ident().wrapping_add(self.index));
            ip.fill_checksum();
        } else {
            Ipv6Packet::new_unchecked(ip).set_payload_len((len - IPV6_HEADER_LEN) as u16);
        }
        let mut tcp = TcpPacket::new_unchecked(tcp);
        tcp.set_seq_number(tcp.seq_number() + start as u32);
        let mut flags = tcp.flags().0;
        if !last {
            flags &= !(TcpFlags::FIN.0 | TcpFlags::PSH.0);
        }
        if !first {
            flags &= !TcpFlags::CWR.0;
        }
        tcp.set_flags(TcpFlags(flags));
        tcp.fill_checksum(self.src, self.dst)
            .expect("both addresses come from one IP header, so the families match");
        self.next = end;
        self.index = self.index.wrapping_add(1);
        Some(len)
    }
}

/// Data packets as the endpoint emits them, for this module's tests and GRO's.
#[cfg(test)]
pub(crate) mod test_packets {
    use crate::seq::SeqNum;
    use crate::wire::mptcp::{DsnWire, Dss, DssMapping, MptcpOption};
    use crate::wire::tcp::{TcpFlags, TcpOptions, TcpRepr, Timestamps};
    use crate::wire::{IpRepr, IpTcpRepr, Ipv4Repr, Ipv6Repr};

    /// A segment of `len` payload bytes (a counting pattern) from sequence number 1000,
    /// with timestamps and a DSS mapping: the options of every MPTCP data segment.
    pub(crate) fn segment(ip: IpRepr, seq: u32, len: usize, flags: TcpFlags) -> Vec<u8> {
        let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut options = TcpOptions {
            timestamps: Some(Timestamps { tsval: 7, tsecr: 9 }),
            ..TcpOptions::default()
        };
        options.mptcp.push(MptcpOption::Dss(Dss {
            data_ack: Some(DsnWire::Long(crate::seq::Dsn(5))),
            mapping: Some(DssMapping {
                dsn: DsnWire::Long(crate::seq::Dsn(100)),
                subflow_seq: SeqNum(1),
                data_len: 60_000,
                checksum: None,
            }),
            data_fin: false,
        }));
        let repr = IpTcpRepr {
            ip,
            tcp: TcpRepr {
                src_port: 40_000,
                dst_port: 80,
                seq: SeqNum(seq),
                ack: SeqNum(77),
                flags,
                window: 500,
                urgent: 0,
                options,
                payload: &payload,
            },
        };
        let mut buf = vec![0u8; repr.buffer_len()];
        let n = repr.emit(&mut buf, true).expect("fits");
        buf.truncate(n);
        buf
    }

    pub(crate) fn v4() -> IpRepr {
        IpRepr::V4(Ipv4Repr {
            src_addr: [10, 0, 0, 1].into(),
            dst_addr: [10, 9, 0, 1].into(),
            protocol: 6,
            payload_len: 0,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 3,
            dont_frag: true,
        })
    }

    pub(crate) fn v6() -> IpRepr {
        IpRepr::V6(Ipv6Repr {
            src_addr: "fd00::1".parse().expect("literal"),
            dst_addr: "fd00::2".parse().expect("literal"),
            next_header: 6,
            payload_len: 0,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        })
    }

    pub(crate) fn data_packet(len: usize, flags: TcpFlags) -> Vec<u8> {
        segment(v4(), 1000, len, flags)
    }

    pub(crate) fn v6_data_packet(len: usize) -> Vec<u8> {
        segment(v6(), 1000, len, TcpFlags::ACK.union(TcpFlags::PSH))
    }

    /// Every piece [`super::Segmenter`] cuts `packet` into at `size` payload bytes.
    pub(crate) fn cut(packet: &[u8], size: u16) -> Vec<Vec<u8>> {
        let mut segmenter = super::Segmenter::new(packet, size).expect("segmentable");
        let mut buf = vec![0u8; segmenter.max_piece_len()];
        let mut out = Vec::new();
        while let Some(len) = segmenter.next_into(&mut buf) {
            out.push(buf[..len].to_vec());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::test_packets::{cut as pieces, data_packet, v6_data_packet};
    use super::*;
    use crate::wire::IpTcpRepr;
    use crate::wire::ipv4::IPV4_HEADER_LEN;

    #[test]
    fn pieces_carry_the_payload_in_order_with_valid_checksums() {
        for packet in [
            data_packet(4000, TcpFlags::ACK.union(TcpFlags::PSH)),
            v6_data_packet(4000),
        ] {
            let whole = IpTcpRepr::parse(&packet, true).expect("valid");
            let cut = pieces(&packet, 1460);
            assert_eq!(cut.len(), 3);
            let mut payload = Vec::new();
            for (i, piece) in cut.iter().enumerate() {
                let repr = IpTcpRepr::parse(piece, true).expect("every piece verifies");
                assert_eq!(repr.tcp.seq, whole.tcp.seq + (i * 1460) as u32);
                assert_eq!(repr.tcp.options, whole.tcp.options, "options repeat");
                assert_eq!(repr.tcp.flags.psh(), i == 2, "PSH only on the last");
                payload.extend_from_slice(repr.tcp.payload);
            }
            assert_eq!(payload, whole.tcp.payload);
        }
    }

    #[test]
    fn a_short_packet_is_one_piece_with_its_checksum_completed() {
        let mut packet = data_packet(100, TcpFlags::ACK);
        // Spoil the TCP checksum as a partial one would be.
        packet[IPV4_HEADER_LEN + 16] ^= 0xff;
        assert!(IpTcpRepr::parse(&packet, true).is_err());
        let cut = pieces(&packet, 1460);
        assert_eq!(cut.len(), 1);
        assert!(IpTcpRepr::parse(&cut[0], true).is_ok());
    }

    #[test]
    fn malformed_packets_are_refused_by_name() {
        assert_eq!(
            Segmenter::new(&[0x50; 60], 1000).unwrap_err(),
            GsoError::Version(5)
        );
        let packet = data_packet(100, TcpFlags::ACK);
        assert_eq!(
            Segmenter::new(&packet[..packet.len() - 1], 1000).unwrap_err(),
            GsoError::Length(packet.len() - 1)
        );
        assert_eq!(Segmenter::new(&packet, 0).unwrap_err(), GsoError::ZeroSize);
    }
}
