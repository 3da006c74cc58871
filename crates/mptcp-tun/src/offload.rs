//! The virtio_net_hdr in front of every packet on a TUN device opened with
//! `IFF_VNET_HDR` (TUN-CEILING.md): what the kernel tells us about a packet it hands
//! over (a GSO super-segment, a checksum not yet computed), and what we tell it about
//! a packet we write (cut this super-segment into `gso_size` pieces, complete the TCP
//! checksum from `csum_start`).
//!
//! Only the fixed 10-byte header (struct virtio_net_hdr) is used; its 16-bit fields
//! are little-endian on the little-endian machines TUN's default byte order follows
//! (no TUNSETVNETBE). This module reads IP and TCP header lengths, nothing else.

/// Bytes of the header before every packet.
pub(crate) const VNET_HDR_LEN: usize = 10;

/// `flags`: the checksum is partial; complete it from `csum_start`, store at
/// `csum_start + csum_offset`.
const F_NEEDS_CSUM: u8 = 1;
/// `flags`: the checksum was verified.
const F_DATA_VALID: u8 = 2;

/// `gso_type` values.
const GSO_NONE: u8 = 0;
const GSO_TCPV4: u8 = 1;
const GSO_TCPV6: u8 = 4;

/// The TCP checksum field's offset in the TCP header.
const TCP_CSUM_OFFSET: u16 = 16;

/// The largest packet one read or write can carry: an IPv6 jumbo is not used, so the
/// 16-bit IP length fields bound it (IPv6's excludes its 40-byte header).
pub(crate) const MAX_PACKET: usize = 40 + 65_535;

/// What the kernel says about a packet it handed us (the default: nothing, check it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct RxInfo {
    /// The checksums need no check: the kernel verified them (`DATA_VALID`), or the
    /// packet never left this machine and carries a partial checksum (`NEEDS_CSUM`),
    /// which a check would wrongly reject.
    pub(crate) trusted: bool,
    /// The TCP checksum field holds only the pseudo-header sum (`NEEDS_CSUM`).
    pub(crate) partial_checksum: bool,
}

/// Reads the header the kernel put in front of a received packet.
pub(crate) fn rx_info(hdr: &[u8; VNET_HDR_LEN]) -> RxInfo {
    // A GSO type (a super-segment from a local sender, or GRO's work) needs nothing
    // special: the endpoint takes any payload size as one segment.
    RxInfo {
        trusted: hdr[0] & (F_NEEDS_CSUM | F_DATA_VALID) != 0,
        partial_checksum: hdr[0] & F_NEEDS_CSUM != 0,
    }
}

/// The header for a TCP/IP `packet` we write. Always asks the kernel to complete the
/// TCP checksum (the endpoint emits partial checksums with offload on); with
/// `gso_size` and a payload longer than that, asks it to cut the packet into pieces
/// of `gso_size` payload bytes, reduced if needed so that every piece fits `mtu`.
/// `None` for a packet that is not well-formed TCP over IPv4/IPv6 (never emitted by
/// the endpoint; the caller drops it).
pub(crate) fn tx_header(
    packet: &[u8],
    gso_size: Option<u16>,
    mtu: u16,
) -> Option<[u8; VNET_HDR_LEN]> {
    let (ip_len, gso_type) = match packet.first()? >> 4 {
        4 => (usize::from(packet[0] & 0x0f) * 4, GSO_TCPV4),
        6 => (40, GSO_TCPV6),
        _ => return None,
    };
    let tcp_len = usize::from(packet.get(ip_len + 12)? >> 4) * 4;
    let hdr_len = ip_len + tcp_len;
    if tcp_len < 20 || packet.len() < hdr_len {
        return None;
    }
    let payload = packet.len() - hdr_len;
    let fits = usize::from(mtu).saturating_sub(hdr_len);
    let cut = gso_size
        .map(|g| usize::from(g).min(fits))
        .filter(|&g| g > 0 && payload > g);
    let (gso_type, gso_size) = match cut {
        Some(g) => (gso_type, u16::try_from(g).ok()?),
        None => (GSO_NONE, 0),
    };
    let mut hdr = [0u8; VNET_HDR_LEN];
    hdr[0] = F_NEEDS_CSUM;
    hdr[1] = gso_type;
    hdr[2..4].copy_from_slice(&u16::try_from(hdr_len).ok()?.to_le_bytes());
    hdr[4..6].copy_from_slice(&gso_size.to_le_bytes());
    hdr[6..8].copy_from_slice(&u16::try_from(ip_len).ok()?.to_le_bytes());
    hdr[8..10].copy_from_slice(&TCP_CSUM_OFFSET.to_le_bytes());
    Some(hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 packet with a 20-byte IP header, a TCP header of `tcp_len` bytes and
    /// `payload` bytes.
    fn v4(tcp_len: usize, payload: usize) -> Vec<u8> {
        let mut p = vec![0u8; 20 + tcp_len + payload];
        p[0] = 0x45;
        p[20 + 12] = ((tcp_len / 4) as u8) << 4;
        p
    }

    fn field(hdr: &[u8; VNET_HDR_LEN], at: usize) -> u16 {
        u16::from_le_bytes([hdr[at], hdr[at + 1]])
    }

    #[test]
    fn a_super_segment_is_cut_at_its_gso_size_with_the_checksum_completed() {
        // 20 + 40 (timestamps and a DSS) + 44 pieces of 1420.
        let p = v4(40, 44 * 1420);
        let hdr = tx_header(&p, Some(1420), 1500).expect("TCP");
        assert_eq!(hdr[0], F_NEEDS_CSUM);
        assert_eq!(hdr[1], GSO_TCPV4);
        assert_eq!(field(&hdr, 2), 60, "hdr_len");
        assert_eq!(field(&hdr, 4), 1420, "gso_size");
        assert_eq!(field(&hdr, 6), 20, "csum_start");
        assert_eq!(field(&hdr, 8), 16, "csum_offset");
    }

    #[test]
    fn pieces_are_shrunk_to_fit_the_mtu_and_small_packets_are_not_cut() {
        let p = v4(40, 10_000);
        // 1500 - 60 bytes of headers leaves 1440 per piece at most.
        let hdr = tx_header(&p, Some(1460), 1500).expect("TCP");
        assert_eq!(field(&hdr, 4), 1440);
        // One piece's worth (or less): checksum offload only.
        let small = v4(20, 1400);
        for gso in [None, Some(1460)] {
            let hdr = tx_header(&small, gso, 1500).expect("TCP");
            assert_eq!(
                (hdr[0], hdr[1], field(&hdr, 4)),
                (F_NEEDS_CSUM, GSO_NONE, 0)
            );
            assert_eq!(field(&hdr, 6), 20);
        }
    }

    #[test]
    fn ipv6_super_segments_say_tcpv6() {
        let mut p = vec![0u8; 40 + 32 + 5000];
        p[0] = 0x60;
        p[40 + 12] = (32 / 4) << 4;
        let hdr = tx_header(&p, Some(1000), 1500).expect("TCP");
        assert_eq!(
            (hdr[1], field(&hdr, 2), field(&hdr, 6)),
            (GSO_TCPV6, 72, 40)
        );
    }

    #[test]
    fn malformed_packets_get_no_header() {
        assert_eq!(tx_header(&[], Some(1000), 1500), None);
        assert_eq!(tx_header(&[0x45; 10], None, 1500), None);
        let mut p = v4(20, 0);
        p[32] = 0x10; // a 4-byte TCP header
        assert_eq!(tx_header(&p, None, 1500), None);
        assert_eq!(tx_header(&[0x20; 60], None, 1500), None);
    }

    #[test]
    fn received_headers_say_whether_checksums_need_a_check() {
        let mut hdr = [0u8; VNET_HDR_LEN];
        let info = |hdr: &[u8; VNET_HDR_LEN]| {
            let i = rx_info(hdr);
            (i.trusted, i.partial_checksum)
        };
        assert_eq!(info(&hdr), (false, false));
        hdr[0] = F_NEEDS_CSUM;
        hdr[1] = GSO_TCPV6;
        assert_eq!(info(&hdr), (true, true));
        hdr[0] = F_DATA_VALID;
        hdr[1] = GSO_NONE;
        assert_eq!(info(&hdr), (true, false));
    }
}
