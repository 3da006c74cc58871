//! Middleboxes: code on a link direction that sees every packet entering it and may
//! rewrite or drop it, as firewalls, NATs and "TCP normalizers" do on real paths
//! (RFC 8684 §3.7 exists because of them).
//!
//! Built-in helpers cover the case MPTCP must survive most often: a box that removes
//! options it does not know, here replaced with NOPs so lengths stay the same, and the
//! TCP checksum fixed up incrementally (RFC 1624) as real boxes do.

use mptcp_proto::Instant;

use crate::packet::{self, PacketError};

/// What a middlebox decides for one packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Forward,
    Drop,
}

/// A packet rewriter on one link direction. Called when a packet enters the link,
/// before queueing, so a changed length changes serialization time as it should.
pub trait Middlebox {
    fn process(&mut self, now: Instant, packet: &mut Vec<u8>) -> Verdict;
}

impl<F> Middlebox for F
where
    F: FnMut(Instant, &mut Vec<u8>) -> Verdict,
{
    fn process(&mut self, now: Instant, packet: &mut Vec<u8>) -> Verdict {
        self(now, packet)
    }
}

/// TCP option kind of MPTCP (RFC 8684 §3).
pub const TCP_OPTION_MPTCP: u8 = 30;

/// Replace with NOPs every TCP option for which `strip(kind, option_bytes)` is true, and
/// fix the TCP checksum. `option_bytes` is the whole option, kind and length included.
/// Returns how many options were stripped. Packets that are not TCP are left alone
/// (`Ok(0)`); an option list that does not parse is left alone from that point on, as
/// it would be by a box that stops at what it cannot read.
pub fn strip_tcp_options_where(
    packet: &mut [u8],
    mut strip: impl FnMut(u8, &[u8]) -> bool,
) -> Result<usize, PacketError> {
    let ip = packet::parse_ip(packet)?;
    if ip.protocol != packet::PROTO_TCP {
        return Ok(0);
    }
    let tcp = packet::parse_tcp(packet, &ip)?;
    let start = tcp.header_offset;
    let header = start..start + tcp.header_len;
    let mut stripped = 0;
    let mut off = 20;
    while off < tcp.header_len {
        let kind = packet[start + off];
        let len = match kind {
            0 => break,
            1 => 1,
            _ => {
                let Some(&len) = packet
                    .get(start + off + 1)
                    .filter(|_| off + 1 < tcp.header_len)
                else {
                    return Err(PacketError::BadOption {
                        offset: off,
                        len: 1,
                    });
                };
                let len = usize::from(len);
                if len < 2 || off + len > tcp.header_len {
                    return Err(PacketError::BadOption { offset: off, len });
                }
                len
            }
        };
        if kind != 1 && strip(kind, &packet[start + off..start + off + len]) {
            // The changed bytes cover whole 16-bit words relative to the TCP header once
            // widened to even offsets; the header length is a multiple of 4.
            let lo = off & !1;
            let hi = (off + len + 1) & !1;
            let old = words(&packet[start + lo..start + hi]);
            packet[start + off..start + off + len].fill(1);
            let new = words(&packet[start + lo..start + hi]);
            let check_at = start + 16;
            let check = u16::from_be_bytes([packet[check_at], packet[check_at + 1]]);
            let check = packet::incremental_update(check, &old, &new);
            packet[check_at..check_at + 2].copy_from_slice(&check.to_be_bytes());
            stripped += 1;
        }
        off += len;
    }
    debug_assert!(header.end <= packet.len());
    Ok(stripped)
}

fn words(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks(2)
        .map(|w| u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]))
        .collect()
}

/// A middlebox that replaces every TCP option of `kind` with NOPs.
pub fn strip_tcp_option(kind: u8) -> impl Middlebox {
    move |_now: Instant, packet: &mut Vec<u8>| {
        // A packet the box cannot parse passes unchanged, like a box that does not
        // understand it.
        let _ = strip_tcp_options_where(packet, |k, _| k == kind);
        Verdict::Forward
    }
}

/// A middlebox that replaces MPTCP options (kind 30) whose subtype (RFC 8684 §3, the
/// high nibble of the third byte) is in `subtypes` with NOPs, e.g. `[2]` for DSS only.
pub fn strip_mptcp_subtypes(subtypes: &[u8]) -> impl Middlebox {
    let subtypes = subtypes.to_vec();
    move |_now: Instant, packet: &mut Vec<u8>| {
        let _ = strip_tcp_options_where(packet, |kind, option| {
            kind == TCP_OPTION_MPTCP
                && option
                    .get(2)
                    .is_some_and(|byte| subtypes.contains(&(byte >> 4)))
        });
        Verdict::Forward
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::{TcpSegmentSpec, build_tcp_packet, tcp_checksum_ok};
    use proptest::prelude::*;

    fn segment(options: &[u8], ipv6: bool) -> Vec<u8> {
        let (src, dst) = if ipv6 {
            ("[2001:db8::1]:1000", "[2001:db8::2]:80")
        } else {
            ("10.0.0.1:1000", "10.0.0.2:80")
        };
        let mut buf = Vec::new();
        build_tcp_packet(
            &TcpSegmentSpec {
                src: src.parse().unwrap(),
                dst: dst.parse().unwrap(),
                flags: 0x02,
                options,
                payload: b"abc",
                ..Default::default()
            },
            &mut buf,
        );
        buf
    }

    // MSS(4) + MP_CAPABLE v1 with a sender key (12) + SACK-permitted(2) + NOP, NOP.
    const OPTIONS: [u8; 20] = [
        2, 4, 5, 0xb4, 30, 12, 0x01, 0x81, 1, 2, 3, 4, 5, 6, 7, 8, 4, 2, 1, 1,
    ];

    #[test]
    fn strips_mptcp_option_to_nops_and_keeps_the_checksum_valid() {
        for ipv6 in [false, true] {
            let mut pkt = segment(&OPTIONS, ipv6);
            let off = if ipv6 { 40 } else { 20 };
            let before = pkt.clone();
            let mut mb = strip_tcp_option(TCP_OPTION_MPTCP);
            assert_eq!(mb.process(Instant::ZERO, &mut pkt), Verdict::Forward);
            let opts = &pkt[off + 20..off + 40];
            assert_eq!(&opts[..4], &OPTIONS[..4]);
            assert_eq!(&opts[4..16], &[1u8; 12]);
            assert_eq!(&opts[16..], &OPTIONS[16..]);
            assert_ne!(pkt, before);
            assert_eq!(pkt.len(), before.len());
            assert!(tcp_checksum_ok(&pkt).unwrap());
        }
    }

    #[test]
    fn odd_offset_option_is_stripped_with_a_valid_checksum() {
        // NOP then MP_CAPABLE: the option starts at an odd offset within the header.
        let options = [1, 30, 4, 0x01, 0x81, 1, 1, 1];
        let mut pkt = segment(&options, false);
        assert_eq!(strip_tcp_options_where(&mut pkt, |k, _| k == 30), Ok(1));
        assert_eq!(&pkt[40..48], &[1u8; 8]);
        assert!(tcp_checksum_ok(&pkt).unwrap());
    }

    #[test]
    fn subtype_filter_leaves_other_mptcp_options() {
        // MP_CAPABLE (subtype 0) and a DSS (subtype 2, 4 bytes: data ACK absent).
        let options = [30, 4, 0x01, 0x81, 30, 4, 0x20, 0x00];
        let mut pkt = segment(&options, false);
        let mut mb = strip_mptcp_subtypes(&[2]);
        mb.process(Instant::ZERO, &mut pkt);
        assert_eq!(&pkt[40..48], &[30, 4, 0x01, 0x81, 1, 1, 1, 1]);
        assert!(tcp_checksum_ok(&pkt).unwrap());
    }

    #[test]
    fn a_previously_corrupt_checksum_stays_corrupt() {
        let mut pkt = segment(&OPTIONS, false);
        let last = pkt.len() - 1;
        pkt[last] ^= 1;
        assert_eq!(strip_tcp_options_where(&mut pkt, |k, _| k == 30), Ok(1));
        assert!(!tcp_checksum_ok(&pkt).unwrap());
    }

    #[test]
    fn malformed_option_lengths_are_reported() {
        let mut pkt = segment(&[30, 0, 1, 1], false);
        assert_eq!(
            strip_tcp_options_where(&mut pkt, |_, _| true),
            Err(PacketError::BadOption { offset: 20, len: 0 })
        );
    }

    proptest! {
        #[test]
        fn stripping_never_panics_and_keeps_valid_checksums_valid(
            options in proptest::collection::vec(any::<u8>(), 0..40),
            junk in proptest::collection::vec(any::<u8>(), 0..80),
        ) {
            let mut pkt = segment(&options, false);
            if strip_tcp_options_where(&mut pkt, |k, _| k % 2 == 0).is_ok() {
                prop_assert!(tcp_checksum_ok(&pkt).unwrap());
            }
            let mut junk = junk;
            let _ = strip_tcp_options_where(&mut junk, |_, _| true);
        }
    }
}
