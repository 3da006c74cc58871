//! Receive offload in software: merges consecutive TCP segments of one flow into one
//! super-segment before the endpoint sees them, as the kernel's GRO does, so that the
//! endpoint's per-segment work (demultiplexing, TCP and MPTCP input, the
//! connection-level pass) runs once per run of segments rather than once per segment.
//!
//! A segment joins the run of its flow (same addresses and ports) when it continues it
//! exactly: the next sequence number, the same size as the run's first segment (a
//! shorter one ends the run), and headers that differ only where every segment's do
//! (IP length, identification and checksum, TCP sequence number and checksum, PSH on
//! the last). Options must match byte for byte, as in Linux (`tcp_gro_receive`): a
//! segment with a new timestamp or a new MPTCP DSS mapping starts a new run. Only pure
//! data segments with ACK (and PSH, which ends the run) merge; SYN, FIN, RST, URG and
//! ECN marks, IP options, IPv6 extension headers and fragments pass through alone.
//!
//! Each segment's checksums are verified before it joins, so a merged packet is handed
//! over as trusted (the endpoint's `handle_packet_trusted`); one that fails passes
//! through unverified, for the endpoint to drop and count. Segments of a flow leave in
//! the order they came; runs of different flows may overtake each other, which TCP and
//! MPTCP allow.
//!
//! [`crate::wire::gso`] is the sending counterpart.

use core::net::IpAddr;

use crate::seq::SeqNum;
use crate::wire::ipv4::{IPV4_HEADER_LEN, Ipv4Packet};
use crate::wire::ipv6::{IPV6_HEADER_LEN, Ipv6Packet};
use crate::wire::tcp::{IP_PROTOCOL_TCP, TCP_HEADER_LEN, TcpFlags, TcpPacket};

/// Runs held at once (Linux's GRO holds 8 per NAPI context): a segment of a new flow
/// beyond this sends the oldest run on.
pub const MAX_FLOWS: usize = 8;

/// The largest merged packet: the IPv4 total length, and the IPv6 payload length plus
/// its header, are 16-bit fields.
const MAX_MERGED: usize = 65_535;

/// Merges runs of segments; see the module docs. Holds at most [`MAX_FLOWS`] runs of
/// at most 64 KiB each, and allocates only while its buffers first grow.
#[derive(Debug, Default)]
pub struct Coalescer {
    runs: Vec<Run>,
    /// Buffers of delivered runs, kept for the next ones.
    spare: Vec<Vec<u8>>,
    merged: u64,
}

#[derive(Debug)]
struct Run {
    /// The merged packet so far: the first segment's headers, then every payload.
    packet: Vec<u8>,
    ip_header_len: usize,
    headers_len: usize,
    next_seq: SeqNum,
    /// Payload bytes of the first segment: every later one but the last has as many.
    size: usize,
    segments: usize,
}

/// What [`Coalescer::push`] learned from a packet's headers.
struct Segment {
    ip_header_len: usize,
    headers_len: usize,
    seq: SeqNum,
    payload_len: usize,
    psh: bool,
}

impl Coalescer {
    pub fn new() -> Self {
        Coalescer::default()
    }

    /// Offers one received packet. Whatever becomes ready goes to `deliver` with
    /// whether its checksums were verified here (`true`: hand it over trusted), in
    /// order: a run this packet cannot join goes before the packet. Call
    /// [`Coalescer::flush`] at the end of each batch of packets.
    pub fn push(&mut self, packet: &[u8], deliver: &mut impl FnMut(&[u8], bool)) {
        let Some(segment) = mergeable(packet) else {
            // Unmergeable, but it may belong to a held run: that run goes first.
            if let Some(i) = self.run_of(packet) {
                self.deliver_run(i, deliver);
            }
            deliver(packet, false);
            return;
        };
        if !checksums_hold(packet, &segment) {
            if let Some(i) = self.run_of(packet) {
                self.deliver_run(i, deliver);
            }
            deliver(packet, false);
            return;
        }
        if let Some(i) = self.run_of(packet) {
            if self.runs[i].continues_with(packet, &segment) {
                let run = &mut self.runs[i];
                run.packet.extend_from_slice(&packet[segment.headers_len..]);
                run.next_seq = segment.seq + segment.payload_len as u32;
                run.segments += 1;
                if segment.psh {
                    set_psh(&mut run.packet, run.ip_header_len);
                }
                if segment.psh || segment.payload_len < run.size || run.full() {
                    self.deliver_run(i, deliver);
                }
                return;
            }
            self.deliver_run(i, deliver);
        }
        if segment.psh {
            // Nothing may follow it in a run.
            deliver(packet, true);
            return;
        }
        if self.runs.len() == MAX_FLOWS {
            self.deliver_run(0, deliver);
        }
        let mut buffer = self.spare.pop().unwrap_or_default();
        buffer.clear();
        buffer.extend_from_slice(packet);
        self.runs.push(Run {
            packet: buffer,
            ip_header_len: segment.ip_header_len,
            headers_len: segment.headers_len,
            next_seq: segment.seq + segment.payload_len as u32,
            size: segment.payload_len,
            segments: 1,
        });
    }

    /// Delivers every held run, oldest first.
    pub fn flush(&mut self, deliver: &mut impl FnMut(&[u8], bool)) {
        while !self.runs.is_empty() {
            self.deliver_run(0, deliver);
        }
    }

    /// Runs held now.
    pub fn held(&self) -> usize {
        self.runs.len()
    }

    /// Segments that went into another one so far (a run of n counts n - 1).
    pub fn merged(&self) -> u64 {
        self.merged
    }

    /// The held run of `packet`'s flow (same addresses and ports), if any.
    fn run_of(&self, packet: &[u8]) -> Option<usize> {
        let (addresses, ports) = flow_of(packet)?;
        self.runs.iter().position(|run| {
            let (a, p) = flow_of(&run.packet).expect("a held run has parsed headers");
            a == addresses && p == ports
        })
    }

    fn deliver_run(&mut self, i: usize, deliver: &mut impl FnMut(&[u8], bool)) {
        let mut run = self.runs.remove(i);
        if run.segments > 1 {
            self.merged += run.segments as u64 - 1;
            let len = run.packet.len();
            // At most MAX_MERGED by `full`.
            if run.packet[0] >> 4 == 6 {
                Ipv6Packet::new_unchecked(&mut run.packet[..])
                    .set_payload_len((len - IPV6_HEADER_LEN) as u16);
            } else {
                let mut ip = Ipv4Packet::new_unchecked(&mut run.packet[..]);
                ip.set_total_len(len as u16);
                ip.fill_checksum();
            }
        }
        deliver(&run.packet, true);
        self.spare.push(run.packet);
    }
}

impl Run {
    /// No room for another segment of the run's size.
    fn full(&self) -> bool {
        let limit = if self.packet[0] >> 4 == 6 {
            MAX_MERGED + IPV6_HEADER_LEN
        } else {
            MAX_MERGED
        };
        self.packet.len() + self.size > limit
    }

    /// `packet` (of this run's flow) continues the run: the next sequence number, a
    /// size the run allows, headers equal where they must be.
    fn continues_with(&self, packet: &[u8], segment: &Segment) -> bool {
        if segment.seq != self.next_seq
            || segment.payload_len > self.size
            || segment.headers_len != self.headers_len
            || segment.ip_header_len != self.ip_header_len
            || self.full()
        {
            return false;
        }
        let held = &self.packet[..self.headers_len];
        let new = &packet[..self.headers_len];
        let ip = self.ip_header_len;
        let ip_equal = if held[0] >> 4 == 6 {
            // Version, traffic class, flow label; next header and hop limit.
            held[..4] == new[..4] && held[6..8] == new[6..8]
        } else {
            // TOS; flags and fragment offset; TTL and protocol.
            held[1] == new[1] && held[6..10] == new[6..10]
        };
        // TCP: ACK number, data offset and flags, window; urgent pointer and options.
        // The held run's flags lack PSH (a PSH ends a run), so equal flags also mean
        // this segment has none, except that PSH is allowed on the one that ends it.
        let tcp = ip;
        let flags_equal = held[tcp + 13] == new[tcp + 13] & !TcpFlags::PSH.0;
        ip_equal
            && held[tcp + 8..tcp + 13] == new[tcp + 8..tcp + 13]
            && flags_equal
            && held[tcp + 14..tcp + 16] == new[tcp + 14..tcp + 16]
            && held[tcp + 18..] == new[tcp + 18..]
    }
}

/// The headers of a segment that may join a run: TCP in IPv4 without options or in
/// IPv6 without extension headers, unfragmented, ACK with payload and no flag but PSH.
fn mergeable(packet: &[u8]) -> Option<Segment> {
    let ip_header_len = match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            let unfragmented = !ip.more_frags() && ip.frag_offset() == 0;
            (ip.header_len() == IPV4_HEADER_LEN
                && ip.protocol() == IP_PROTOCOL_TCP
                && usize::from(ip.total_len()) == packet.len()
                && unfragmented)
                .then_some(IPV4_HEADER_LEN)?
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            (ip.next_header() == IP_PROTOCOL_TCP
                && usize::from(ip.payload_len()) + IPV6_HEADER_LEN == packet.len())
            .then_some(IPV6_HEADER_LEN)?
        }
        _ => return None,
    };
    let tcp = TcpPacket::new_checked(&packet[ip_header_len..]).ok()?;
    let headers_len = ip_header_len + tcp.header_len();
    let flags = tcp.flags();
    let only_ack_psh = flags.0 & !(TcpFlags::ACK.0 | TcpFlags::PSH.0) == 0 && flags.ack();
    let payload_len = packet.len().checked_sub(headers_len)?;
    (only_ack_psh && payload_len > 0 && tcp.header_len() >= TCP_HEADER_LEN).then(|| Segment {
        ip_header_len,
        headers_len,
        seq: tcp.seq_number(),
        payload_len,
        psh: flags.psh(),
    })
}

/// The IPv4 header checksum and the TCP checksum are right.
fn checksums_hold(packet: &[u8], segment: &Segment) -> bool {
    let (src, dst) = match addresses(packet) {
        Some(a) => a,
        None => return false,
    };
    if segment.ip_header_len == IPV4_HEADER_LEN
        && packet[0] >> 4 == 4
        && !Ipv4Packet::new_unchecked(packet).verify_checksum()
    {
        return false;
    }
    TcpPacket::new_unchecked(&packet[segment.ip_header_len..]).verify_checksum(src, dst)
}

fn addresses(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            Some((IpAddr::V4(ip.src_addr()), IpAddr::V4(ip.dst_addr())))
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            Some((IpAddr::V6(ip.src_addr()), IpAddr::V6(ip.dst_addr())))
        }
        _ => None,
    }
}

/// A flow's identity: its addresses and its TCP ports (the first four bytes of the TCP
/// header, wherever the IP header ends). `None` when the headers do not parse.
fn flow_of(packet: &[u8]) -> Option<((IpAddr, IpAddr), [u8; 4])> {
    let addresses = addresses(packet)?;
    let ip_header_len = match packet[0] >> 4 {
        4 => Ipv4Packet::new_checked(packet).ok()?.header_len(),
        _ => IPV6_HEADER_LEN,
    };
    let ports = packet.get(ip_header_len..ip_header_len + 4)?;
    Some((addresses, ports.try_into().ok()?))
}

fn set_psh(packet: &mut [u8], ip_header_len: usize) {
    packet[ip_header_len + 13] |= TcpFlags::PSH.0;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::IpTcpRepr;
    use crate::wire::gso::test_packets::{cut, segment, v4, v6};

    fn coalesce(packets: &[Vec<u8>]) -> Vec<(Vec<u8>, bool)> {
        let mut gro = Coalescer::new();
        let mut out = Vec::new();
        let mut deliver = |p: &[u8], trusted: bool| out.push((p.to_vec(), trusted));
        for p in packets {
            gro.push(p, &mut deliver);
        }
        gro.flush(&mut deliver);
        out
    }

    #[test]
    fn the_pieces_of_a_super_segment_merge_back_into_it() {
        let psh = TcpFlags::ACK.union(TcpFlags::PSH);
        for ip in [v4(), v6()] {
            let whole = segment(ip, 1000, 20_000, psh);
            let merged = coalesce(&cut(&whole, 1460));
            assert_eq!(merged.len(), 1);
            let (packet, trusted) = &merged[0];
            assert!(trusted);
            let got = IpTcpRepr::parse(packet, false).expect("a well-formed packet");
            let want = IpTcpRepr::parse(&whole, true).expect("valid");
            assert_eq!(got.tcp.payload, want.tcp.payload);
            assert_eq!(got.tcp.seq, want.tcp.seq);
            assert_eq!(got.tcp.options, want.tcp.options);
            assert!(got.tcp.flags.psh());
        }
    }

    #[test]
    fn interleaved_flows_each_merge_and_keep_their_order() {
        let ack = TcpFlags::ACK;
        let a = cut(&segment(v4(), 1000, 5840, ack), 1460);
        let b = cut(&segment(v6(), 1000, 5840, ack), 1460);
        let mixed: Vec<Vec<u8>> = a
            .iter()
            .zip(&b)
            .flat_map(|(x, y)| [x.clone(), y.clone()])
            .collect();
        let merged = coalesce(&mixed);
        assert_eq!(merged.len(), 2);
        for (packet, _) in &merged {
            let repr = IpTcpRepr::parse(packet, false).expect("well formed");
            assert_eq!(repr.tcp.payload.len(), 5840);
            assert_eq!(repr.tcp.seq, SeqNum(1000));
        }
    }

    #[test]
    fn gaps_changed_options_and_bad_checksums_break_runs() {
        let ack = TcpFlags::ACK;
        let pieces = cut(&segment(v4(), 1000, 5840, ack), 1460);
        // A gap: the third piece is missing.
        let merged = coalesce(&[pieces[0].clone(), pieces[1].clone(), pieces[3].clone()]);
        assert_eq!(merged.len(), 2);
        // A different timestamp starts a new run.
        let mut other = pieces[1].clone();
        let ts = IPV4_HEADER_LEN + TCP_HEADER_LEN + 4;
        other[ts] ^= 1;
        let mut tcp = TcpPacket::new_unchecked(&mut other[IPV4_HEADER_LEN..]);
        tcp.fill_checksum([10, 0, 0, 1].into(), [10, 9, 0, 1].into())
            .expect("same family");
        assert_eq!(coalesce(&[pieces[0].clone(), other]).len(), 2);
        // A corrupt piece passes through unverified, after the run before it.
        let mut corrupt = pieces[1].clone();
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let out = coalesce(&[pieces[0].clone(), corrupt, pieces[2].clone()]);
        assert_eq!(
            out.iter().map(|(_, t)| *t).collect::<Vec<_>>(),
            [true, false, true]
        );
    }

    #[test]
    fn control_segments_pass_through_after_their_flows_run() {
        let pieces = cut(&segment(v4(), 1000, 2920, TcpFlags::ACK), 1460);
        let fin = segment(v4(), 3920, 0, TcpFlags::ACK.union(TcpFlags::FIN));
        let out = coalesce(&[pieces[0].clone(), pieces[1].clone(), fin.clone()]);
        assert_eq!(out.len(), 2);
        assert_eq!(out[1], (fin, false));
        let first = IpTcpRepr::parse(&out[0].0, false).expect("well formed");
        assert_eq!(first.tcp.payload.len(), 2920);
    }

    #[test]
    fn runs_stop_at_the_16_bit_length_limit() {
        // Two contiguous super-segments of 50,000 bytes, cut into 100 pieces.
        let mut pieces = cut(&segment(v4(), 1000, 50_000, TcpFlags::ACK), 1000);
        pieces.extend(cut(&segment(v4(), 51_000, 50_000, TcpFlags::ACK), 1000));
        let out = coalesce(&pieces);
        let total: usize = out
            .iter()
            .map(|(p, _)| {
                IpTcpRepr::parse(p, false)
                    .expect("well formed")
                    .tcp
                    .payload
                    .len()
            })
            .sum();
        assert_eq!(total, 100_000);
        assert!(out.len() >= 2);
        assert!(out.iter().all(|(p, _)| p.len() <= MAX_MERGED));
    }

    #[test]
    fn garbage_never_panics_and_passes_through() {
        let out = coalesce(&[vec![], vec![0x45], vec![0x60; 39], vec![0xff; 100]]);
        assert_eq!(out.len(), 4);
        assert!(out.iter().all(|(_, trusted)| !trusted));
    }
}
