//! A whole IP packet carrying one TCP segment: what the endpoint receives from and hands
//! to the runtime. Parsing dispatches on the IP version nibble, applies the IPv4/IPv6
//! policies (fragments rejected, IPv6 extension headers skipped), requires protocol TCP
//! and parses the segment against the packet's addresses.

use core::net::IpAddr;

use crate::wire::ipv4::{IPV4_HEADER_LEN, Ipv4Error, Ipv4Packet, Ipv4Repr};
use crate::wire::ipv6::{IPV6_HEADER_LEN, Ipv6Error, Ipv6Packet, Ipv6Repr};
use crate::wire::tcp::{IP_PROTOCOL_TCP, TcpChecksum, TcpError, TcpPacket, TcpRepr};

/// Why a packet was dropped or could not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PacketError {
    #[error("empty packet")]
    Empty,
    #[error("IP version {0}, expected 4 or 6")]
    Version(u8),
    #[error(transparent)]
    Ipv4(#[from] Ipv4Error),
    #[error(transparent)]
    Ipv6(#[from] Ipv6Error),
    #[error("IP protocol {0} is not TCP")]
    NotTcp(u8),
    #[error(transparent)]
    Tcp(#[from] TcpError),
    #[error("buffer of {got} bytes is too short for the {needed}-byte packet")]
    BufferTooShort { needed: usize, got: usize },
}

/// The IP header of a packet, either family.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IpRepr {
    V4(Ipv4Repr),
    V6(Ipv6Repr),
}

impl IpRepr {
    pub fn src_addr(&self) -> IpAddr {
        match self {
            IpRepr::V4(repr) => IpAddr::V4(repr.src_addr),
            IpRepr::V6(repr) => IpAddr::V6(repr.src_addr),
        }
    }

    pub fn dst_addr(&self) -> IpAddr {
        match self {
            IpRepr::V4(repr) => IpAddr::V4(repr.dst_addr),
            IpRepr::V6(repr) => IpAddr::V6(repr.dst_addr),
        }
    }

    /// Bytes of IP header emission writes (20 or 40).
    pub fn header_len(&self) -> usize {
        match self {
            IpRepr::V4(_) => IPV4_HEADER_LEN,
            IpRepr::V6(_) => IPV6_HEADER_LEN,
        }
    }
}

/// One IP packet carrying one TCP segment.
///
/// ```
/// use mptcp_proto::SeqNum;
/// use mptcp_proto::wire::tcp::{TcpFlags, TcpOptions};
/// use mptcp_proto::wire::{IpRepr, IpTcpRepr, Ipv4Repr, TcpRepr};
///
/// let packet = IpTcpRepr {
///     ip: IpRepr::V4(Ipv4Repr {
///         src_addr: [10, 0, 0, 1].into(),
///         dst_addr: [10, 0, 0, 2].into(),
///         protocol: 6,
///         payload_len: 0, // filled in from the segment on emit
///         ttl: 64,
///         dscp: 0,
///         ecn: 0,
///         ident: 0,
///         dont_frag: true,
///     }),
///     tcp: TcpRepr {
///         src_port: 40000,
///         dst_port: 80,
///         seq: SeqNum(1),
///         ack: SeqNum(0),
///         flags: TcpFlags::SYN,
///         window: 65535,
///         urgent: 0,
///         options: TcpOptions { mss: Some(1460), ..TcpOptions::default() },
///         payload: b"",
///     },
/// };
/// let mut buf = [0u8; 64];
/// let len = packet.emit(&mut buf, true)?;
/// assert_eq!(len, 20 + 24);
/// let parsed = IpTcpRepr::parse(&buf[..len], true)?;
/// assert_eq!(parsed.tcp, packet.tcp);
/// # Ok::<(), mptcp_proto::wire::PacketError>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IpTcpRepr<'a> {
    pub ip: IpRepr,
    pub tcp: TcpRepr<'a>,
}

impl<'a> IpTcpRepr<'a> {
    /// Parses an IPv4 or IPv6 packet carrying TCP. With `verify_checksums` clear, neither
    /// the IPv4 header checksum nor the TCP checksum is checked (for packets a NIC or the
    /// kernel already verified).
    pub fn parse(bytes: &'a [u8], verify_checksums: bool) -> Result<IpTcpRepr<'a>, PacketError> {
        let first = *bytes.first().ok_or(PacketError::Empty)?;
        let (ip, segment) = match first >> 4 {
            4 => {
                let packet = Ipv4Packet::new_checked(bytes)?;
                let repr = Ipv4Repr::parse(&packet, verify_checksums)?;
                if repr.protocol != IP_PROTOCOL_TCP {
                    return Err(PacketError::NotTcp(repr.protocol));
                }
                (IpRepr::V4(repr), packet.payload_ref())
            }
            6 => {
                let packet = Ipv6Packet::new_checked(bytes)?;
                let repr = Ipv6Repr::parse(&packet)?;
                if repr.next_header != IP_PROTOCOL_TCP {
                    return Err(PacketError::NotTcp(repr.next_header));
                }
                let (_, segment) = packet.upper_layer_payload()?;
                (IpRepr::V6(repr), segment)
            }
            version => return Err(PacketError::Version(version)),
        };
        let tcp = TcpRepr::parse(
            &TcpPacket::new_checked(segment)?,
            ip.src_addr(),
            ip.dst_addr(),
            verify_checksums,
        )?;
        Ok(IpTcpRepr { ip, tcp })
    }

    /// Bytes [`IpTcpRepr::emit`] writes.
    pub fn buffer_len(&self) -> usize {
        self.ip.header_len() + self.tcp.buffer_len()
    }

    /// Writes the whole packet to the start of `buf` and returns its length. The IP
    /// payload length and protocol come from the segment (the repr's own `payload_len`,
    /// `protocol` and `next_header` are ignored). Checksums (IPv4 header and TCP) are
    /// computed when `compute_checksums` is set and zeroed otherwise. Nothing is written
    /// when an error is returned.
    pub fn emit(&self, buf: &mut [u8], compute_checksums: bool) -> Result<usize, PacketError> {
        let mode = if compute_checksums {
            TcpChecksum::Full
        } else {
            TcpChecksum::Zero
        };
        self.emit_with(buf, mode)
    }

    /// [`IpTcpRepr::emit`] with a choice for the TCP checksum; the IPv4 header checksum
    /// is computed unless `tcp_checksum` is [`TcpChecksum::Zero`] (a receiving kernel
    /// checks it even when the TCP checksum is offloaded).
    pub fn emit_with(
        &self,
        buf: &mut [u8],
        tcp_checksum: TcpChecksum,
    ) -> Result<usize, PacketError> {
        let compute_checksums = tcp_checksum != TcpChecksum::Zero;
        let tcp_len = self.tcp.buffer_len();
        let header_len = self.ip.header_len();
        // Check the IP length fields before anything is written.
        match self.ip {
            IpRepr::V4(_) if header_len + tcp_len > usize::from(u16::MAX) => {
                return Err(Ipv4Error::PayloadTooLong(tcp_len).into());
            }
            IpRepr::V6(_) if tcp_len > usize::from(u16::MAX) => {
                return Err(Ipv6Error::PayloadTooLong(tcp_len).into());
            }
            IpRepr::V4(_) | IpRepr::V6(_) => {}
        }
        let needed = header_len + tcp_len;
        if buf.len() < needed {
            return Err(PacketError::BufferTooShort {
                needed,
                got: buf.len(),
            });
        }
        let (header, segment) = buf[..needed].split_at_mut(header_len);
        self.tcp.emit_with(
            &mut TcpPacket::new_unchecked(segment),
            self.ip.src_addr(),
            self.ip.dst_addr(),
            tcp_checksum,
        )?;
        match self.ip {
            IpRepr::V4(repr) => Ipv4Repr {
                protocol: IP_PROTOCOL_TCP,
                payload_len: tcp_len,
                ..repr
            }
            .emit(&mut Ipv4Packet::new_unchecked(header), compute_checksums)?,
            IpRepr::V6(repr) => Ipv6Repr {
                next_header: IP_PROTOCOL_TCP,
                payload_len: tcp_len,
                ..repr
            }
            .emit(&mut Ipv6Packet::new_unchecked(header))?,
        }
        Ok(needed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seq::SeqNum;
    use crate::wire::checksum::Checksum;
    use crate::wire::tcp::{TcpFlags, TcpOptions};

    fn packet(ip: IpRepr, payload: &[u8]) -> IpTcpRepr<'_> {
        IpTcpRepr {
            ip,
            tcp: TcpRepr {
                src_port: 40000,
                dst_port: 80,
                seq: SeqNum(7),
                ack: SeqNum(9),
                flags: TcpFlags::ACK | TcpFlags::PSH,
                window: 1000,
                urgent: 0,
                options: TcpOptions::default(),
                payload,
            },
        }
    }

    /// What a device does with virtio_net_hdr NEEDS_CSUM: sums from `csum_start` to
    /// the end (the seed in the field included) and stores the complement at
    /// `csum_start + csum_offset`.
    fn complete(buf: &mut [u8], csum_start: usize) {
        let sum = Checksum::new().add_bytes(&buf[csum_start..]).finish();
        buf[csum_start + 16..csum_start + 18].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn a_partial_checksum_completed_by_the_device_is_the_full_checksum() {
        let payload: Vec<u8> = (0..3001u32).map(|i| (i * 7 + 1) as u8).collect();
        let v4 = IpRepr::V4(Ipv4Repr {
            src_addr: "10.0.0.1".parse().unwrap(),
            dst_addr: "10.0.0.2".parse().unwrap(),
            protocol: IP_PROTOCOL_TCP,
            payload_len: 0,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
        });
        let v6 = IpRepr::V6(Ipv6Repr {
            src_addr: "fd00::1".parse().unwrap(),
            dst_addr: "fd00::2".parse().unwrap(),
            next_header: IP_PROTOCOL_TCP,
            payload_len: 0,
            hop_limit: 64,
            traffic_class: 0,
            flow_label: 0,
        });
        for (ip, header) in [(v4, 20), (v6, 40)] {
            let p = packet(ip, &payload);
            let mut full = vec![0u8; p.buffer_len()];
            p.emit_with(&mut full, TcpChecksum::Full).unwrap();
            let mut partial = vec![0u8; p.buffer_len()];
            p.emit_with(&mut partial, TcpChecksum::Partial).unwrap();
            assert_ne!(partial, full, "the seed is not the checksum");
            // The IPv4 header checksum is complete already: only the TCP field differs.
            assert_eq!(partial[..header], full[..header]);
            assert!(IpTcpRepr::parse(&partial, true).is_err());
            complete(&mut partial, header);
            assert_eq!(partial, full);
            assert_eq!(IpTcpRepr::parse(&partial, true).unwrap(), p_with_len(&p));
        }
    }

    /// `p` as parsing returns it (the IP length fields filled in).
    fn p_with_len<'a>(p: &IpTcpRepr<'a>) -> IpTcpRepr<'a> {
        let tcp_len = p.tcp.buffer_len();
        let ip = match p.ip {
            IpRepr::V4(r) => IpRepr::V4(Ipv4Repr {
                payload_len: tcp_len,
                ..r
            }),
            IpRepr::V6(r) => IpRepr::V6(Ipv6Repr {
                payload_len: tcp_len,
                ..r
            }),
        };
        IpTcpRepr {
            ip,
            tcp: p.tcp.clone(),
        }
    }
}
