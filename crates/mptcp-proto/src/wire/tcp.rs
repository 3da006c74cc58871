//! TCP header (RFC 9293 §3.1): a zero-copy view and a parsed representation.
//!
//! The parsed types ([`TcpRepr`], [`TcpOptions`] and friends) are the contract with the TCP
//! engine: it consumes and produces them, and never touches header bytes itself.
//!
//! Option policy on parse ([`TcpOptions::parse`]):
//! - a malformed option (see [`crate::wire::option`]) fails the whole parse with an error
//!   naming it, so the caller drops the segment (RFC 9293 §3.1 MUST-7 asks only that an
//!   illegal length not crash us; dropping is the conservative choice);
//! - unknown kinds, and MPTCP options of an unknown subtype, are ignored (MUST-5);
//! - a duplicated MSS, window scale, SACK-permitted, SACK or timestamps option: the first
//!   one wins and later ones are ignored;
//! - more than four MPTCP options is an error ([`TcpError::TooManyMptcpOptions`]);
//! - a window scale above 14 is clamped to 14 here (RFC 7323 §2.3), and on emission.
//!
//! Emission writes options in Linux's order, each group NOP-aligned to 4 bytes: MSS;
//! `SACKOK TS` (or `NOP NOP TS`, or `NOP NOP SACKOK` without timestamps); `NOP WS`;
//! `NOP NOP SACK`; then the MPTCP options back to back, NOP-padded to a 4-byte boundary.
//! [`options_len`] gives that layout's size, which the planner ([`crate::wire::plan`])
//! budgets with.

use core::net::IpAddr;

use arrayvec::ArrayVec;

use crate::seq::SeqNum;
use crate::wire::checksum::Checksum;
use crate::wire::ipv4::{read_u16, write_u16};
use crate::wire::mptcp::MptcpOption;
use crate::wire::option::{MAX_OPTIONS_LEN, OptionError, OptionIter, TcpOption, kind, sack_len};

/// TCP header flags, as the low 8 bits of the flags field.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: TcpFlags = TcpFlags(0x01);
    pub const SYN: TcpFlags = TcpFlags(0x02);
    pub const RST: TcpFlags = TcpFlags(0x04);
    pub const PSH: TcpFlags = TcpFlags(0x08);
    pub const ACK: TcpFlags = TcpFlags(0x10);
    pub const URG: TcpFlags = TcpFlags(0x20);
    pub const ECE: TcpFlags = TcpFlags(0x40);
    pub const CWR: TcpFlags = TcpFlags(0x80);

    pub const fn empty() -> Self {
        TcpFlags(0)
    }

    pub const fn contains(self, other: TcpFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: TcpFlags) -> TcpFlags {
        TcpFlags(self.0 | other.0)
    }

    pub fn fin(self) -> bool {
        self.contains(Self::FIN)
    }
    pub fn syn(self) -> bool {
        self.contains(Self::SYN)
    }
    pub fn rst(self) -> bool {
        self.contains(Self::RST)
    }
    pub fn psh(self) -> bool {
        self.contains(Self::PSH)
    }
    pub fn ack(self) -> bool {
        self.contains(Self::ACK)
    }
}

impl core::ops::BitOr for TcpFlags {
    type Output = TcpFlags;
    fn bitor(self, rhs: TcpFlags) -> TcpFlags {
        self.union(rhs)
    }
}

impl core::ops::BitOrAssign for TcpFlags {
    fn bitor_assign(&mut self, rhs: TcpFlags) {
        self.0 |= rhs.0;
    }
}

impl core::fmt::Debug for TcpFlags {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        const NAMES: [&str; 8] = ["FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"];
        let mut first = true;
        for (bit, name) in NAMES.iter().enumerate() {
            if self.0 & (1 << bit) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(name)?;
                first = false;
            }
        }
        if first {
            f.write_str("-")?;
        }
        Ok(())
    }
}

/// One SACK block (RFC 2018): `[left, right)` in sequence space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SackBlock {
    pub left: SeqNum,
    pub right: SeqNum,
}

/// The RFC 7323 timestamps option.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timestamps {
    pub tsval: u32,
    pub tsecr: u32,
}

/// The TCP options a segment carries, already parsed. At most 40 bytes of options fit in
/// a header, which bounds every list here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TcpOptions<'a> {
    pub mss: Option<u16>,
    pub window_scale: Option<u8>,
    pub sack_permitted: bool,
    pub sack_blocks: ArrayVec<SackBlock, 4>,
    pub timestamps: Option<Timestamps>,
    pub mptcp: ArrayVec<MptcpOption<'a>, 4>,
}

/// A parsed TCP segment: what the TCP engine consumes and produces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpRepr<'a> {
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: SeqNum,
    /// Meaningful only when `flags.ack()`.
    pub ack: SeqNum,
    pub flags: TcpFlags,
    /// The raw window field, before window scaling.
    pub window: u16,
    pub urgent: u16,
    pub options: TcpOptions<'a>,
    pub payload: &'a [u8],
}

impl TcpRepr<'_> {
    /// Sequence space the segment occupies: payload plus one each for SYN and FIN.
    pub fn segment_len(&self) -> u32 {
        self.payload.len() as u32 + u32::from(self.flags.syn()) + u32::from(self.flags.fin())
    }
}

/// Bytes in a TCP header without options.
pub const TCP_HEADER_LEN: usize = 20;

/// The IP protocol number of TCP.
pub const IP_PROTOCOL_TCP: u8 = 6;

/// Most MPTCP options one segment may carry (the capacity of [`TcpOptions::mptcp`]).
pub const MAX_MPTCP_OPTIONS: usize = 4;

/// One unit of option space, as named in emission errors: what did not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptionItem {
    Mss,
    /// Timestamps, with SACK-permitted folded into the same 12 bytes when present.
    Timestamps,
    SackPermitted,
    WindowScale,
    SackBlocks(usize),
    /// The MPTCP option at `index` in [`TcpOptions::mptcp`], `len` bytes long.
    Mptcp {
        index: usize,
        len: usize,
    },
}

impl core::fmt::Display for OptionItem {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            OptionItem::Mss => f.write_str("MSS"),
            OptionItem::Timestamps => f.write_str("timestamps"),
            OptionItem::SackPermitted => f.write_str("SACK-permitted"),
            OptionItem::WindowScale => f.write_str("window scale"),
            OptionItem::SackBlocks(n) => write!(f, "SACK with {n} blocks"),
            OptionItem::Mptcp { index, len } => {
                write!(f, "MPTCP option #{index} ({len} bytes)")
            }
        }
    }
}

/// Why a TCP header was rejected or could not be written.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TcpError {
    #[error("TCP header needs {TCP_HEADER_LEN} bytes, buffer has {0}")]
    Truncated(usize),
    #[error("TCP data offset is {0} (words), the minimum is 5")]
    DataOffsetTooSmall(u8),
    #[error("TCP header length {header_len} runs past the {buffer_len}-byte segment")]
    HeaderPastBuffer {
        header_len: usize,
        buffer_len: usize,
    },
    #[error("TCP source port is 0")]
    SrcPortZero,
    #[error("TCP destination port is 0")]
    DstPortZero,
    #[error("TCP checksum is {got:#06x}, expected {expected:#06x}")]
    Checksum { got: u16, expected: u16 },
    #[error("TCP pseudo-header needs two addresses of one family, got {src} and {dst}")]
    AddressFamilyMismatch { src: IpAddr, dst: IpAddr },
    #[error("TCP segment of {0} bytes is too long for the IPv4 pseudo-header")]
    SegmentTooLong(usize),
    #[error("TCP option: {0}")]
    Option(#[from] OptionError),
    #[error("TCP segment carries more than {MAX_MPTCP_OPTIONS} MPTCP options")]
    TooManyMptcpOptions,
    #[error(
        "TCP options need {needed} bytes, more than the {MAX_OPTIONS_LEN} available: \
         {item} did not fit"
    )]
    OptionsTooLong { needed: usize, item: OptionItem },
    #[error("buffer of {got} bytes is too short for the {needed}-byte TCP segment")]
    BufferTooShort { needed: usize, got: usize },
}

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const SEQ_NUM: Range<usize> = 4..8;
    pub const ACK_NUM: Range<usize> = 8..12;
    pub const DATA_OFF: usize = 12;
    pub const FLAGS: usize = 13;
    pub const WIN_SIZE: Range<usize> = 14..16;
    pub const CHECKSUM: Range<usize> = 16..18;
    pub const URGENT: Range<usize> = 18..20;
}

/// A read/write view over a TCP header, its options and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpPacket<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> TcpPacket<T> {
    /// Wraps a buffer without checking it; accessors may panic on a short buffer. Use for
    /// emission into a buffer sized with [`TcpRepr::buffer_len`].
    pub const fn new_unchecked(buffer: T) -> Self {
        TcpPacket { buffer }
    }

    /// Wraps a segment (the whole IP payload) after checking that the data offset is at
    /// least 5 and the header fits the buffer. Everything after the header is payload.
    pub fn new_checked(buffer: T) -> Result<Self, TcpError> {
        let packet = TcpPacket { buffer };
        packet.check_len()?;
        Ok(packet)
    }

    fn check_len(&self) -> Result<(), TcpError> {
        let buffer_len = self.buffer.as_ref().len();
        if buffer_len < TCP_HEADER_LEN {
            return Err(TcpError::Truncated(buffer_len));
        }
        let offset = self.buffer.as_ref()[field::DATA_OFF] >> 4;
        if offset < 5 {
            return Err(TcpError::DataOffsetTooSmall(offset));
        }
        let header_len = self.header_len();
        if header_len > buffer_len {
            return Err(TcpError::HeaderPastBuffer {
                header_len,
                buffer_len,
            });
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    pub fn src_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::SRC_PORT.start)
    }

    pub fn dst_port(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::DST_PORT.start)
    }

    pub fn seq_number(&self) -> SeqNum {
        SeqNum(read_u32(self.buffer.as_ref(), field::SEQ_NUM.start))
    }

    pub fn ack_number(&self) -> SeqNum {
        SeqNum(read_u32(self.buffer.as_ref(), field::ACK_NUM.start))
    }

    /// Header length in bytes (data offset × 4), options included.
    pub fn header_len(&self) -> usize {
        usize::from(self.buffer.as_ref()[field::DATA_OFF] >> 4) * 4
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.buffer.as_ref()[field::FLAGS])
    }

    /// The raw window field, before scaling.
    pub fn window_len(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::WIN_SIZE.start)
    }

    pub fn checksum(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::CHECKSUM.start)
    }

    pub fn urgent_at(&self) -> u16 {
        read_u16(self.buffer.as_ref(), field::URGENT.start)
    }

    /// The option area, between the fixed header and the payload.
    pub fn options(&self) -> &[u8] {
        &self.buffer.as_ref()[TCP_HEADER_LEN..self.header_len()]
    }

    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[self.header_len()..]
    }

    /// True when the checksum over the pseudo-header and the whole segment is correct.
    /// False as well when the addresses are of different families.
    pub fn verify_checksum(&self, src: IpAddr, dst: IpAddr) -> bool {
        let segment = self.buffer.as_ref();
        match pseudo_header_sum(src, dst, segment.len()) {
            Ok(mut sum) => sum.add_bytes(segment).finish() == 0,
            Err(_) => false,
        }
    }

    /// The checksum the segment should carry, computed with the checksum field skipped.
    fn expected_checksum(&self, src: IpAddr, dst: IpAddr) -> Result<u16, TcpError> {
        let segment = self.buffer.as_ref();
        let mut sum = pseudo_header_sum(src, dst, segment.len())?;
        sum.add_bytes(&segment[..field::CHECKSUM.start])
            .add_bytes(&segment[field::CHECKSUM.end..]);
        Ok(sum.finish())
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> TcpPacket<&'a T> {
    /// The option area, borrowed for the buffer's whole lifetime.
    pub fn options_ref(&self) -> &'a [u8] {
        let header_len = self.header_len();
        &self.buffer.as_ref()[TCP_HEADER_LEN..header_len]
    }

    /// The payload, borrowed for the buffer's whole lifetime.
    pub fn payload_ref(&self) -> &'a [u8] {
        let header_len = self.header_len();
        &self.buffer.as_ref()[header_len..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpPacket<T> {
    pub fn set_src_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::SRC_PORT.start, value);
    }

    pub fn set_dst_port(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::DST_PORT.start, value);
    }

    pub fn set_seq_number(&mut self, value: SeqNum) {
        self.buffer.as_mut()[field::SEQ_NUM].copy_from_slice(&value.0.to_be_bytes());
    }

    pub fn set_ack_number(&mut self, value: SeqNum) {
        self.buffer.as_mut()[field::ACK_NUM].copy_from_slice(&value.0.to_be_bytes());
    }

    /// Sets the data offset from a header length in bytes (a multiple of 4, 20..=60) and
    /// clears the reserved bits.
    pub fn set_header_len(&mut self, header_len: usize) {
        self.buffer.as_mut()[field::DATA_OFF] = ((header_len / 4) as u8) << 4;
    }

    pub fn set_flags(&mut self, flags: TcpFlags) {
        self.buffer.as_mut()[field::FLAGS] = flags.0;
    }

    pub fn set_window_len(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::WIN_SIZE.start, value);
    }

    pub fn set_checksum(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::CHECKSUM.start, value);
    }

    pub fn set_urgent_at(&mut self, value: u16) {
        write_u16(self.buffer.as_mut(), field::URGENT.start, value);
    }

    pub fn options_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[TCP_HEADER_LEN..header_len]
    }

    pub fn payload_mut(&mut self) -> &mut [u8] {
        let header_len = self.header_len();
        &mut self.buffer.as_mut()[header_len..]
    }

    /// Computes the checksum over the pseudo-header and the whole buffer (header, options,
    /// payload) and stores it.
    pub fn fill_checksum(&mut self, src: IpAddr, dst: IpAddr) -> Result<(), TcpError> {
        self.set_checksum(0);
        let segment = self.buffer.as_ref();
        let sum = pseudo_header_sum(src, dst, segment.len())?
            .add_bytes(segment)
            .finish();
        self.set_checksum(sum);
        Ok(())
    }
}

/// The running sum of the TCP pseudo-header for a `tcp_len`-byte segment: RFC 9293 §3.1
/// for IPv4 (addresses, zero, protocol, 16-bit length), RFC 8200 §8.1 for IPv6
/// (addresses, 32-bit length, three zero bytes, next header). Add the segment's bytes
/// (checksum field zero) and `finish()`; or store `sum16()` of this alone (folded, not
/// complemented) as the partial checksum a device completes ([`TcpChecksum::Partial`]).
pub fn pseudo_header_sum(src: IpAddr, dst: IpAddr, tcp_len: usize) -> Result<Checksum, TcpError> {
    let mut sum = Checksum::new();
    match (src, dst) {
        (IpAddr::V4(src), IpAddr::V4(dst)) => {
            let len = u16::try_from(tcp_len).map_err(|_| TcpError::SegmentTooLong(tcp_len))?;
            sum.add_u32(u32::from(src))
                .add_u32(u32::from(dst))
                .add_u16(u16::from(IP_PROTOCOL_TCP))
                .add_u16(len);
        }
        (IpAddr::V6(src), IpAddr::V6(dst)) => {
            let len = u32::try_from(tcp_len).map_err(|_| TcpError::SegmentTooLong(tcp_len))?;
            let (src, dst) = (u128::from(src), u128::from(dst));
            // The halves of the big-endian addresses; truncation keeps the low ones.
            sum.add_u64((src >> 64) as u64)
                .add_u64(src as u64)
                .add_u64((dst >> 64) as u64)
                .add_u64(dst as u64)
                .add_u32(len)
                .add_u32(u32::from(IP_PROTOCOL_TCP));
        }
        (src, dst) => return Err(TcpError::AddressFamilyMismatch { src, dst }),
    }
    Ok(sum)
}

fn read_u32(buf: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([buf[at], buf[at + 1], buf[at + 2], buf[at + 3]])
}

/// RFC 7323 §2.3: the largest shift count; larger received values are treated as 14.
pub const MAX_WINDOW_SCALE: u8 = 14;

impl<'a> TcpOptions<'a> {
    /// Interprets an option area (module docs give the policy for malformed, unknown and
    /// duplicated options).
    pub fn parse(area: &'a [u8]) -> Result<TcpOptions<'a>, TcpError> {
        let mut options = TcpOptions::default();
        let mut iter = OptionIter::new(area);
        loop {
            // NOPs carry nothing (they are ignored below too).
            iter.skip_nops();
            let Some(option) = iter.next() else {
                break;
            };
            match option? {
                TcpOption::EndOfList | TcpOption::NoOperation | TcpOption::Unknown { .. } => {}
                TcpOption::MaxSegmentSize(mss) => {
                    options.mss.get_or_insert(mss);
                }
                TcpOption::WindowScale(shift) => {
                    if shift > MAX_WINDOW_SCALE {
                        tracing::debug!(shift, "window scale above 14 clamped (RFC 7323 §2.3)");
                    }
                    options
                        .window_scale
                        .get_or_insert(shift.min(MAX_WINDOW_SCALE));
                }
                TcpOption::SackPermitted => options.sack_permitted = true,
                TcpOption::Sack(blocks) => {
                    if options.sack_blocks.is_empty() {
                        options.sack_blocks = blocks;
                    }
                }
                TcpOption::Timestamps(ts) => {
                    options.timestamps.get_or_insert(ts);
                }
                TcpOption::Mptcp(option) => options
                    .mptcp
                    .try_push(option)
                    .map_err(|_| TcpError::TooManyMptcpOptions)?,
            }
        }
        Ok(options)
    }

    /// Writes the options in the canonical layout (module docs) to the start of `area`,
    /// which must hold at least [`MAX_OPTIONS_LEN`] bytes, and returns the bytes written
    /// (a multiple of 4, equal to [`options_len`]).
    fn emit(&self, area: &mut [u8; MAX_OPTIONS_LEN]) -> Result<usize, TcpError> {
        let mut writer = OptionWriter {
            area,
            at: 0,
            options: self,
        };
        // The small standard options go through `TcpOption::emit`; they cost nothing
        // to build. What must not be copied per segment is the MPTCP options (below).
        if let Some(mss) = self.mss {
            writer.put_all(OptionItem::Mss, &[TcpOption::MaxSegmentSize(mss)])?;
        }
        match (self.timestamps, self.sack_permitted) {
            (Some(ts), true) => writer.put_all(
                OptionItem::Timestamps,
                &[TcpOption::SackPermitted, TcpOption::Timestamps(ts)],
            )?,
            (Some(ts), false) => writer.put_all(
                OptionItem::Timestamps,
                &[
                    TcpOption::NoOperation,
                    TcpOption::NoOperation,
                    TcpOption::Timestamps(ts),
                ],
            )?,
            (None, true) => writer.put_all(
                OptionItem::SackPermitted,
                &[
                    TcpOption::NoOperation,
                    TcpOption::NoOperation,
                    TcpOption::SackPermitted,
                ],
            )?,
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            writer.put_all(
                OptionItem::WindowScale,
                &[
                    TcpOption::NoOperation,
                    TcpOption::WindowScale(shift.min(MAX_WINDOW_SCALE)),
                ],
            )?;
        }
        if !self.sack_blocks.is_empty() {
            writer.put_all(
                OptionItem::SackBlocks(self.sack_blocks.len()),
                &[
                    TcpOption::NoOperation,
                    TcpOption::NoOperation,
                    TcpOption::Sack(self.sack_blocks.clone()),
                ],
            )?;
        }
        for (index, option) in self.mptcp.iter().enumerate() {
            let len = option.wire_len();
            writer.put(OptionItem::Mptcp { index, len }, len, |b| {
                option.emit_sized(b);
            })?;
        }
        // Pad to the 32-bit boundary the data offset needs; cannot overflow because 40 is
        // itself a multiple of 4.
        while !writer.at.is_multiple_of(4) {
            writer.area[writer.at] = kind::NOP;
            writer.at += 1;
        }
        Ok(writer.at)
    }
}

/// Writes option items one after another straight into the option area; an item that
/// would not fit fails the whole emission, naming it.
struct OptionWriter<'b, 'o> {
    area: &'b mut [u8; MAX_OPTIONS_LEN],
    at: usize,
    /// For the error only: what the whole set needs.
    options: &'o TcpOptions<'o>,
}

impl OptionWriter<'_, '_> {
    fn put(
        &mut self,
        item: OptionItem,
        len: usize,
        write: impl FnOnce(&mut [u8]),
    ) -> Result<(), TcpError> {
        let end = self.at + len;
        if end > MAX_OPTIONS_LEN {
            return Err(TcpError::OptionsTooLong {
                needed: options_len(self.options),
                item,
            });
        }
        write(&mut self.area[self.at..end]);
        self.at = end;
        Ok(())
    }

    /// Puts `options` as one item (NOP padding and the option it aligns).
    #[inline]
    fn put_all(&mut self, item: OptionItem, options: &[TcpOption<'_>]) -> Result<(), TcpError> {
        let len = options.iter().map(TcpOption::wire_len).sum();
        self.put(item, len, |mut b| {
            for option in options {
                let written = option.emit(b);
                b = &mut b[written..];
            }
        })
    }
}

/// Bytes of option space `options` take in the canonical emission layout, padding
/// included. More than [`MAX_OPTIONS_LEN`] means emission will fail.
pub fn options_len(options: &TcpOptions<'_>) -> usize {
    let mut len = 0;
    if options.mss.is_some() {
        len += 4;
    }
    // SACK-permitted rides in the two bytes timestamps would otherwise pad with NOPs.
    if options.timestamps.is_some() {
        len += 12;
    } else if options.sack_permitted {
        len += 4;
    }
    if options.window_scale.is_some() {
        len += 4;
    }
    if !options.sack_blocks.is_empty() {
        len += 2 + sack_len(options.sack_blocks.len());
    }
    let mptcp: usize = options.mptcp.iter().map(MptcpOption::wire_len).sum();
    len + mptcp.next_multiple_of(4)
}

impl<'a> TcpRepr<'a> {
    /// Parses a checked segment: ports must be non-zero, options well formed (see the
    /// module docs), and the checksum right when `verify_checksum` is set (clear it for
    /// segments whose checksum a NIC or the kernel already verified or left to compute).
    /// `src` and `dst` are the IP addresses the segment came with.
    pub fn parse<T: AsRef<[u8]> + ?Sized>(
        packet: &TcpPacket<&'a T>,
        src: IpAddr,
        dst: IpAddr,
        verify_checksum: bool,
    ) -> Result<TcpRepr<'a>, TcpError> {
        packet.check_len()?;
        // RFC 9293 §3.1 gives port 0 no meaning; no connection can use it.
        if packet.src_port() == 0 {
            return Err(TcpError::SrcPortZero);
        }
        if packet.dst_port() == 0 {
            return Err(TcpError::DstPortZero);
        }
        if verify_checksum && !packet.verify_checksum(src, dst) {
            return Err(TcpError::Checksum {
                got: packet.checksum(),
                expected: packet.expected_checksum(src, dst)?,
            });
        }
        Ok(TcpRepr {
            src_port: packet.src_port(),
            dst_port: packet.dst_port(),
            seq: packet.seq_number(),
            ack: packet.ack_number(),
            flags: packet.flags(),
            window: packet.window_len(),
            urgent: packet.urgent_at(),
            options: TcpOptions::parse(packet.options_ref())?,
            payload: packet.payload_ref(),
        })
    }

    /// Header bytes this repr emits, options and padding included. Above 60 means the
    /// options do not fit and [`TcpRepr::emit`] will fail.
    pub fn header_len(&self) -> usize {
        TCP_HEADER_LEN + options_len(&self.options)
    }

    /// Header plus payload.
    pub fn buffer_len(&self) -> usize {
        self.header_len() + self.payload.len()
    }

    /// Writes header, options and payload to the start of the packet's buffer and returns
    /// the bytes written ([`TcpRepr::buffer_len`]). The checksum is computed over the
    /// pseudo-header of `src`/`dst` when `compute_checksum` is set, and zeroed otherwise.
    /// Nothing is written when an error is returned.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        compute_checksum: bool,
    ) -> Result<usize, TcpError> {
        let mode = if compute_checksum {
            TcpChecksum::Full
        } else {
            TcpChecksum::Zero
        };
        self.emit_with(packet, src, dst, mode)
    }

    /// [`TcpRepr::emit`] with a choice of what goes into the checksum field.
    pub fn emit_with<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        packet: &mut TcpPacket<T>,
        src: IpAddr,
        dst: IpAddr,
        checksum: TcpChecksum,
    ) -> Result<usize, TcpError> {
        let mut area = [0u8; MAX_OPTIONS_LEN];
        let options_len = self.options.emit(&mut area)?;
        let header_len = TCP_HEADER_LEN + options_len;
        let total = header_len + self.payload.len();
        let seed = match checksum {
            // Fail on the addresses before touching the buffer.
            TcpChecksum::Full => {
                pseudo_header_sum(src, dst, total)?;
                None
            }
            TcpChecksum::Partial => Some(pseudo_header_sum(src, dst, total)?.sum16()),
            TcpChecksum::Zero => None,
        };
        let got = packet.buffer.as_ref().len();
        if got < total {
            return Err(TcpError::BufferTooShort { needed: total, got });
        }
        let mut packet = TcpPacket::new_unchecked(&mut packet.buffer.as_mut()[..total]);
        packet.set_src_port(self.src_port);
        packet.set_dst_port(self.dst_port);
        packet.set_seq_number(self.seq);
        packet.set_ack_number(self.ack);
        packet.set_header_len(header_len);
        packet.set_flags(self.flags);
        packet.set_window_len(self.window);
        packet.set_checksum(0);
        packet.set_urgent_at(self.urgent);
        packet.options_mut().copy_from_slice(&area[..options_len]);
        packet.payload_mut().copy_from_slice(self.payload);
        match (checksum, seed) {
            (TcpChecksum::Full, _) => packet.fill_checksum(src, dst)?,
            (TcpChecksum::Partial, Some(seed)) => packet.set_checksum(seed),
            (TcpChecksum::Partial | TcpChecksum::Zero, _) => {}
        }
        Ok(total)
    }
}

/// What [`TcpRepr::emit_with`] puts into the checksum field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TcpChecksum {
    /// The full checksum over the pseudo-header and the segment.
    Full,
    /// Checksum offload: only the pseudo-header sum, folded and not complemented
    /// (as Linux leaves it for CHECKSUM_PARTIAL). A device that sums the segment from
    /// the TCP header on (virtio_net_hdr `NEEDS_CSUM`: `csum_start` at the TCP header,
    /// `csum_offset` 16) and stores the complement turns it into the full checksum; a
    /// device cutting a super-segment (TSO) adjusts the length part for each piece.
    Partial,
    /// Zero, for tests and for links that do not check.
    Zero,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::fuzzing::MPTCP_SAMPLES;

    const SRC: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, 1));
    const DST: IpAddr = IpAddr::V4(core::net::Ipv4Addr::new(10, 0, 0, 2));

    fn repr(options: TcpOptions<'_>) -> TcpRepr<'_> {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(1),
            ack: SeqNum(2),
            flags: TcpFlags::ACK,
            window: 1000,
            urgent: 0,
            options,
            payload: b"",
        }
    }

    fn mptcp(bytes: &[u8]) -> MptcpOption<'_> {
        MptcpOption::parse(bytes).expect("sample is well formed")
    }

    fn emit_options(options: TcpOptions<'_>) -> Result<Vec<u8>, TcpError> {
        let repr = repr(options);
        let mut buf = [0u8; 60];
        let n = repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, false)?;
        assert_eq!(n, repr.header_len());
        Ok(buf[TCP_HEADER_LEN..n].to_vec())
    }

    fn blocks(n: u32) -> ArrayVec<SackBlock, 4> {
        (0..n)
            .map(|i| SackBlock {
                left: SeqNum(100 * i + 1),
                right: SeqNum(100 * i + 50),
            })
            .collect()
    }

    #[test]
    fn syn_options_use_linux_layout() {
        let options = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps {
                tsval: 1000,
                tsecr: 0,
            }),
            mptcp: [mptcp(MPTCP_SAMPLES[0])].into_iter().collect(),
            ..TcpOptions::default()
        };
        assert_eq!(
            emit_options(options),
            Ok(vec![
                2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x03, 0xe8, 0, 0, 0, 0, 1, 3, 3, 7, 30, 4, 1,
                1
            ])
        );
    }

    #[test]
    fn timestamps_without_sack_permitted_get_two_nops() {
        let options = TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            sack_blocks: blocks(1),
            ..TcpOptions::default()
        };
        assert_eq!(
            emit_options(options),
            Ok(vec![
                1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2, 1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 50
            ])
        );
        let options = TcpOptions {
            sack_permitted: true,
            window_scale: Some(20),
            ..TcpOptions::default()
        };
        // Window scale above 14 is clamped on emission too.
        assert_eq!(emit_options(options), Ok(vec![1, 1, 4, 2, 1, 3, 3, 14]));
    }

    #[test]
    fn odd_length_mptcp_options_are_nop_padded() {
        // MP_PRIO is 3 bytes: one NOP pads the header to a 32-bit boundary.
        let options = TcpOptions {
            mptcp: [mptcp(MPTCP_SAMPLES[10])].into_iter().collect(),
            ..TcpOptions::default()
        };
        assert_eq!(options_len(&options), 4);
        assert_eq!(emit_options(options), Ok(vec![30, 3, 0x51, 1]));
    }

    #[test]
    fn too_many_options_is_an_error_naming_the_item() {
        // TS 12 + SACK(4) 36 = 48 bytes.
        let options = TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            sack_blocks: blocks(4),
            ..TcpOptions::default()
        };
        let error = emit_options(options).expect_err("48 bytes do not fit");
        assert_eq!(
            error,
            TcpError::OptionsTooLong {
                needed: 48,
                item: OptionItem::SackBlocks(4)
            }
        );
        assert_eq!(
            error.to_string(),
            "TCP options need 48 bytes, more than the 40 available: SACK with 4 blocks did not fit"
        );
        // TS 12 + DSS 28 + MP_PRIO 3 (padded to 32) = 44.
        let options = TcpOptions {
            timestamps: Some(Timestamps { tsval: 1, tsecr: 2 }),
            mptcp: [mptcp(MPTCP_SAMPLES[6]), mptcp(MPTCP_SAMPLES[10])]
                .into_iter()
                .collect(),
            ..TcpOptions::default()
        };
        assert_eq!(
            emit_options(options),
            Err(TcpError::OptionsTooLong {
                needed: 44,
                item: OptionItem::Mptcp { index: 1, len: 3 }
            })
        );
    }

    #[test]
    fn parse_policy_first_wins_and_clamps_window_scale() {
        let area = [
            2, 4, 0x05, 0xb4, 2, 4, 0x02, 0x18, 3, 3, 15, 3, 3, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2,
            34, 2, 1, 0,
        ];
        let options = TcpOptions::parse(&area).expect("valid");
        assert_eq!(options.mss, Some(1460));
        assert_eq!(options.window_scale, Some(14));
        assert_eq!(options.timestamps, Some(Timestamps { tsval: 1, tsecr: 2 }));
        assert!(!options.sack_permitted);
    }

    #[test]
    fn parse_rejects_a_malformed_option_and_five_mptcp_options() {
        assert_eq!(
            TcpOptions::parse(&[8, 7, 0, 0, 0, 0, 0, 0]),
            Err(TcpError::Option(OptionError::WrongLength {
                kind: 8,
                len: 7,
                expected: 10
            }))
        );
        let mut area = Vec::new();
        for _ in 0..5 {
            area.extend_from_slice(MPTCP_SAMPLES[0]);
        }
        assert_eq!(TcpOptions::parse(&area), Err(TcpError::TooManyMptcpOptions));
    }

    #[test]
    fn parse_rejects_bad_headers() {
        let mut buf = [0u8; 24];
        let repr = repr(TcpOptions::default());
        repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, true)
            .expect("fits");
        let segment = &buf[..20];
        assert_eq!(
            TcpPacket::new_checked(&segment[..19]),
            Err(TcpError::Truncated(19))
        );
        let mut bad = buf;
        bad[12] = 0x40;
        assert_eq!(
            TcpPacket::new_checked(&bad[..20]),
            Err(TcpError::DataOffsetTooSmall(4))
        );
        bad[12] = 0x60;
        assert_eq!(
            TcpPacket::new_checked(&bad[..20]),
            Err(TcpError::HeaderPastBuffer {
                header_len: 24,
                buffer_len: 20
            })
        );
        let packet = TcpPacket::new_checked(segment).expect("valid");
        assert_eq!(TcpRepr::parse(&packet, SRC, DST, true), Ok(repr.clone()));
        let expected = packet.checksum();
        let mut bad = buf;
        bad[17] ^= 1;
        let packet = TcpPacket::new_checked(&bad[..20]).expect("valid");
        assert_eq!(
            TcpRepr::parse(&packet, SRC, DST, true),
            Err(TcpError::Checksum {
                got: expected ^ 1,
                expected
            })
        );
        assert!(TcpRepr::parse(&packet, SRC, DST, false).is_ok());
        let mut bad = buf;
        bad[0] = 0;
        bad[1] = 0;
        let packet = TcpPacket::new_checked(&bad[..20]).expect("valid");
        assert_eq!(
            TcpRepr::parse(&packet, SRC, DST, false),
            Err(TcpError::SrcPortZero)
        );
    }

    #[test]
    fn emit_errors_leave_the_buffer_alone() {
        let repr = TcpRepr {
            payload: b"hello",
            ..repr(TcpOptions::default())
        };
        let mut buf = [0xeeu8; 24];
        assert_eq!(
            repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, DST, true),
            Err(TcpError::BufferTooShort {
                needed: 25,
                got: 24
            })
        );
        let v6: IpAddr = "2001:db8::1".parse().expect("literal");
        assert_eq!(
            repr.emit(&mut TcpPacket::new_unchecked(&mut buf[..]), SRC, v6, true),
            Err(TcpError::AddressFamilyMismatch { src: SRC, dst: v6 })
        );
        assert_eq!(buf, [0xee; 24]);
    }

    #[test]
    fn pseudo_header_rejects_oversized_ipv4_segments() {
        assert_eq!(
            pseudo_header_sum(SRC, DST, 65_536).map(|s| s.finish()),
            Err(TcpError::SegmentTooLong(65_536))
        );
    }
}
