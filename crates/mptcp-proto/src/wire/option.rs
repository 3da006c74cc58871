//! TCP options (RFC 9293 §3.1, §3.2): a borrowing iterator over the option area and a
//! codec for each kind the stack understands.
//!
//! The iterator yields every option in wire order, NOP and EOL included, and stops after
//! EOL (what follows is padding) or at the first error. It never reads outside the option
//! area. Values are reported as sent: a window scale of 15 is yielded as 15; clamping to 14
//! (RFC 7323 §2.3) happens where options are interpreted, in `TcpRepr::parse`.
//!
//! Errors (RFC 9293 §3.1 MUST-7: an illegal length must not crash the receiver):
//! - a length byte missing, below 2, or reaching past the option area;
//! - a known kind with the wrong length (MSS 4, WS 3, SACK-permitted 2, SACK 10/18/26/34,
//!   timestamps 10);
//! - an MPTCP option that `MptcpOption::parse` rejects.
//!
//! Unknown kinds with a well-formed length are yielded as [`TcpOption::Unknown`] (MUST-5:
//! ignore options you do not implement), and so are MPTCP options of an unknown subtype
//! (`Unknown { kind: 30, .. }`): a malformed known subtype is an error, a future one is not.

use arrayvec::ArrayVec;

use crate::seq::SeqNum;
use crate::wire::mptcp::{MptcpError, MptcpOption};
use crate::wire::tcp::{SackBlock, Timestamps};

/// The most option bytes a TCP header can carry (data offset 15 → 60-byte header).
pub const MAX_OPTIONS_LEN: usize = 40;

/// Option kinds (IANA "TCP Option Kind Numbers").
pub mod kind {
    pub const END_OF_LIST: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
    pub const MPTCP: u8 = 30;
}

const MSS_LEN: u8 = 4;
const WINDOW_SCALE_LEN: u8 = 3;
const SACK_PERMITTED_LEN: u8 = 2;
const TIMESTAMPS_LEN: u8 = 10;
const SACK_BLOCK_LEN: usize = 8;

/// One TCP option, borrowing variable-length parts from the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TcpOption<'a> {
    EndOfList,
    NoOperation,
    MaxSegmentSize(u16),
    /// The shift count as sent (may exceed 14; see the module docs).
    WindowScale(u8),
    SackPermitted,
    /// 1 to 4 blocks (RFC 2018 §3); emitting an empty list is a caller bug.
    Sack(ArrayVec<SackBlock, 4>),
    Timestamps(Timestamps),
    Mptcp(MptcpOption<'a>),
    /// A kind the stack does not implement, or kind 30 with an unknown MPTCP subtype:
    /// `data` is the bytes after kind and length.
    Unknown {
        kind: u8,
        data: &'a [u8],
    },
}

/// Why the option area could not be walked, naming the option and its length.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error(
        "option kind {kind} at offset {offset} has no length byte in the {area}-byte option area"
    )]
    MissingLength {
        kind: u8,
        offset: usize,
        area: usize,
    },
    #[error("option kind {kind} at offset {offset} has length {len}, less than 2")]
    LengthTooSmall { kind: u8, offset: usize, len: u8 },
    #[error(
        "option kind {kind} length {len} at offset {offset} runs past the {area}-byte option area"
    )]
    RunsPastArea {
        kind: u8,
        offset: usize,
        len: u8,
        area: usize,
    },
    #[error("option kind {kind} has length {len}, expected {expected}")]
    WrongLength { kind: u8, len: u8, expected: u8 },
    #[error("option kind 5 (SACK) has length {0}, expected 10, 18, 26 or 34")]
    SackLength(u8),
    #[error("option kind 30 (MPTCP) with length {len} is malformed: {source}")]
    Mptcp {
        len: u8,
        #[source]
        source: MptcpError,
    },
}

/// Iterates over the options in a TCP header's option area.
#[derive(Clone, Debug)]
pub struct OptionIter<'a> {
    area: &'a [u8],
    offset: usize,
    done: bool,
}

impl<'a> OptionIter<'a> {
    /// `area` is the bytes between the fixed 20-byte header and the data.
    pub fn new(area: &'a [u8]) -> Self {
        OptionIter {
            area,
            offset: 0,
            done: false,
        }
    }

    /// Steps over NOPs without yielding them: a parser that ignores them saves moving
    /// an option value out per padding byte (two to four on every segment).
    pub(crate) fn skip_nops(&mut self) {
        if self.done {
            return;
        }
        while self.area.get(self.offset) == Some(&kind::NOP) {
            self.offset += 1;
        }
    }

    #[inline]
    fn next_option(&mut self) -> Result<Option<TcpOption<'a>>, OptionError> {
        let rest = &self.area[self.offset..];
        let Some(&kind) = rest.first() else {
            return Ok(None);
        };
        match kind {
            kind::END_OF_LIST => {
                // RFC 9293 §3.2: EOL marks the end of all options; the rest is padding.
                self.done = true;
                return Ok(Some(TcpOption::EndOfList));
            }
            kind::NOP => {
                self.offset += 1;
                return Ok(Some(TcpOption::NoOperation));
            }
            _ => {}
        }
        let offset = self.offset;
        let area = self.area.len();
        let Some(&len) = rest.get(1) else {
            return Err(OptionError::MissingLength { kind, offset, area });
        };
        if len < 2 {
            return Err(OptionError::LengthTooSmall { kind, offset, len });
        }
        let Some(option) = rest.get(..usize::from(len)) else {
            return Err(OptionError::RunsPastArea {
                kind,
                offset,
                len,
                area,
            });
        };
        let parsed = parse_one(kind, option)?;
        self.offset += usize::from(len);
        Ok(Some(parsed))
    }
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<TcpOption<'a>, OptionError>;

    #[inline]
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.next_option() {
            Ok(Some(option)) => Some(Ok(option)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(error) => {
                self.done = true;
                Some(Err(error))
            }
        }
    }
}

impl core::iter::FusedIterator for OptionIter<'_> {}

/// Parses one option whose `option.len()` equals its length byte (at least 2).
#[inline]
fn parse_one(kind: u8, option: &[u8]) -> Result<TcpOption<'_>, OptionError> {
    let len = option[1];
    let expect = |expected: u8| {
        if len == expected {
            Ok(())
        } else {
            Err(OptionError::WrongLength {
                kind,
                len,
                expected,
            })
        }
    };
    let data = &option[2..];
    Ok(match kind {
        kind::MSS => {
            expect(MSS_LEN)?;
            TcpOption::MaxSegmentSize(u16::from_be_bytes([data[0], data[1]]))
        }
        kind::WINDOW_SCALE => {
            expect(WINDOW_SCALE_LEN)?;
            TcpOption::WindowScale(data[0])
        }
        kind::SACK_PERMITTED => {
            expect(SACK_PERMITTED_LEN)?;
            TcpOption::SackPermitted
        }
        kind::SACK => {
            let count = data.len() / SACK_BLOCK_LEN;
            if !data.len().is_multiple_of(SACK_BLOCK_LEN) || !(1..=4).contains(&count) {
                return Err(OptionError::SackLength(len));
            }
            let blocks = data
                .chunks_exact(SACK_BLOCK_LEN)
                .map(|block| SackBlock {
                    left: SeqNum(be32(&block[..4])),
                    right: SeqNum(be32(&block[4..])),
                })
                .collect();
            TcpOption::Sack(blocks)
        }
        kind::TIMESTAMPS => {
            expect(TIMESTAMPS_LEN)?;
            TcpOption::Timestamps(Timestamps {
                tsval: be32(&data[..4]),
                tsecr: be32(&data[4..]),
            })
        }
        kind::MPTCP => match MptcpOption::parse(option) {
            Ok(parsed) => TcpOption::Mptcp(parsed),
            // A subtype this stack does not know is ignored, like an unknown kind, so that
            // future extensions do not get segments dropped (Linux does the same).
            Err(MptcpError::UnknownSubtype(_)) => TcpOption::Unknown { kind, data },
            Err(source) => return Err(OptionError::Mptcp { len, source }),
        },
        kind => TcpOption::Unknown { kind, data },
    })
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

impl TcpOption<'_> {
    /// Bytes the option occupies on the wire, kind and length included.
    #[inline]
    pub fn wire_len(&self) -> usize {
        match self {
            TcpOption::EndOfList | TcpOption::NoOperation => 1,
            TcpOption::MaxSegmentSize(_) => usize::from(MSS_LEN),
            TcpOption::WindowScale(_) => usize::from(WINDOW_SCALE_LEN),
            TcpOption::SackPermitted => usize::from(SACK_PERMITTED_LEN),
            TcpOption::Sack(blocks) => sack_len(blocks.len()),
            TcpOption::Timestamps(_) => usize::from(TIMESTAMPS_LEN),
            TcpOption::Mptcp(option) => option.wire_len(),
            TcpOption::Unknown { data, .. } => 2 + data.len(),
        }
    }

    /// Writes the option to the start of `buf` and returns `wire_len()`.
    ///
    /// Panics if `buf` is shorter than `wire_len()`, or if an `Unknown` option's data is
    /// longer than 253 bytes: both are caller bugs, never consequences of parsed input
    /// (a parsed option always fits its own length byte).
    // Inlined so that emitting a known option (the timestamps on every segment) folds
    // to its one arm.
    #[inline]
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.wire_len();
        let buf = &mut buf[..len];
        match self {
            TcpOption::EndOfList => buf[0] = kind::END_OF_LIST,
            TcpOption::NoOperation => buf[0] = kind::NOP,
            TcpOption::MaxSegmentSize(mss) => {
                buf[..2].copy_from_slice(&[kind::MSS, MSS_LEN]);
                buf[2..].copy_from_slice(&mss.to_be_bytes());
            }
            TcpOption::WindowScale(shift) => {
                buf.copy_from_slice(&[kind::WINDOW_SCALE, WINDOW_SCALE_LEN, *shift]);
            }
            TcpOption::SackPermitted => {
                buf.copy_from_slice(&[kind::SACK_PERMITTED, SACK_PERMITTED_LEN]);
            }
            TcpOption::Sack(blocks) => {
                buf[0] = kind::SACK;
                buf[1] = len as u8;
                for (chunk, block) in buf[2..].chunks_exact_mut(SACK_BLOCK_LEN).zip(blocks) {
                    chunk[..4].copy_from_slice(&block.left.0.to_be_bytes());
                    chunk[4..].copy_from_slice(&block.right.0.to_be_bytes());
                }
            }
            TcpOption::Timestamps(ts) => {
                buf[..2].copy_from_slice(&[kind::TIMESTAMPS, TIMESTAMPS_LEN]);
                buf[2..6].copy_from_slice(&ts.tsval.to_be_bytes());
                buf[6..].copy_from_slice(&ts.tsecr.to_be_bytes());
            }
            TcpOption::Mptcp(option) => {
                option.emit(buf);
            }
            TcpOption::Unknown { kind, data } => {
                buf[0] = *kind;
                buf[1] = u8::try_from(len).expect("Unknown option data must be at most 253 bytes");
                buf[2..].copy_from_slice(data);
            }
        }
        len
    }
}

/// Wire length of a SACK option with `blocks` blocks.
pub(crate) const fn sack_len(blocks: usize) -> usize {
    2 + SACK_BLOCK_LEN * blocks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(area: &[u8]) -> Vec<Result<TcpOption<'_>, OptionError>> {
        OptionIter::new(area).collect()
    }

    #[test]
    fn linux_syn_options() {
        // A Linux SYN: MSS 1460, SACK-permitted, TS 0x01020304/0, NOP, WS 7.
        let area = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 0, 0, 0, 0, 1, 3, 3, 7,
        ];
        assert_eq!(
            collect(&area),
            vec![
                Ok(TcpOption::MaxSegmentSize(1460)),
                Ok(TcpOption::SackPermitted),
                Ok(TcpOption::Timestamps(Timestamps {
                    tsval: 0x0102_0304,
                    tsecr: 0
                })),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::WindowScale(7)),
            ]
        );
    }

    #[test]
    fn sack_blocks_and_eol_padding() {
        let area = [
            1, 1, 5, 18, 0, 0, 0, 1, 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xf0, 0, 0, 0, 0x10, 0, 9, 9, 9,
        ];
        let mut blocks = ArrayVec::new();
        blocks.push(SackBlock {
            left: SeqNum(1),
            right: SeqNum(2),
        });
        blocks.push(SackBlock {
            left: SeqNum(0xffff_fff0),
            right: SeqNum(0x10),
        });
        assert_eq!(
            collect(&area),
            vec![
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::NoOperation),
                Ok(TcpOption::Sack(blocks)),
                Ok(TcpOption::EndOfList),
            ]
        );
    }

    #[test]
    fn unknown_kinds_are_preserved() {
        let area = [34, 4, 0xab, 0xcd, 254, 2];
        assert_eq!(
            collect(&area),
            vec![
                Ok(TcpOption::Unknown {
                    kind: 34,
                    data: &[0xab, 0xcd]
                }),
                Ok(TcpOption::Unknown {
                    kind: 254,
                    data: &[]
                }),
            ]
        );
    }

    #[test]
    fn errors_name_the_option() {
        let cases: [(&[u8], OptionError, &str); 8] = [
            (
                &[8, 7, 0, 0, 0, 0, 0],
                OptionError::WrongLength {
                    kind: 8,
                    len: 7,
                    expected: 10,
                },
                "option kind 8 has length 7, expected 10",
            ),
            (
                &[1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 12, 0, 0, 0, 0, 0, 0, 0, 0],
                OptionError::RunsPastArea {
                    kind: 2,
                    offset: 10,
                    len: 12,
                    area: 20,
                },
                "option kind 2 length 12 at offset 10 runs past the 20-byte option area",
            ),
            (
                &[1, 3],
                OptionError::MissingLength {
                    kind: 3,
                    offset: 1,
                    area: 2,
                },
                "option kind 3 at offset 1 has no length byte in the 2-byte option area",
            ),
            (
                &[99, 0, 0, 0],
                OptionError::LengthTooSmall {
                    kind: 99,
                    offset: 0,
                    len: 0,
                },
                "option kind 99 at offset 0 has length 0, less than 2",
            ),
            (
                &[5, 2],
                OptionError::SackLength(2),
                "option kind 5 (SACK) has length 2, expected 10, 18, 26 or 34",
            ),
            (
                &[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                OptionError::SackLength(11),
                "option kind 5 (SACK) has length 11, expected 10, 18, 26 or 34",
            ),
            (
                &[3, 4, 7, 0],
                OptionError::WrongLength {
                    kind: 3,
                    len: 4,
                    expected: 3,
                },
                "option kind 3 has length 4, expected 3",
            ),
            (
                &[4, 3, 0],
                OptionError::WrongLength {
                    kind: 4,
                    len: 3,
                    expected: 2,
                },
                "option kind 4 has length 3, expected 2",
            ),
        ];
        for (area, error, message) in cases {
            let results = collect(area);
            let last = results.last().expect("at least one item");
            assert_eq!(last, &Err(error.clone()), "area {area:?}");
            assert_eq!(error.to_string(), message);
            assert!(
                results[..results.len() - 1].iter().all(Result::is_ok),
                "only the last item is an error"
            );
        }
    }

    #[test]
    fn mptcp_options_parse_and_unknown_subtypes_are_kept_raw() {
        // MP_CAPABLE SYN (v1, H), then subtype 0x9 (unassigned), then a DSS whose length
        // does not match its flags (data ACK flag, 4 bytes short).
        let area = [30, 4, 0x01, 0x01, 30, 3, 0x90, 30, 4, 0x20, 0x01];
        let results = collect(&area);
        assert!(matches!(results[0], Ok(TcpOption::Mptcp(_))));
        assert_eq!(
            results[1],
            Ok(TcpOption::Unknown {
                kind: 30,
                data: &[0x90]
            })
        );
        assert!(
            matches!(&results[2], Err(OptionError::Mptcp { len: 4, .. })),
            "{:?}",
            results[2]
        );
        assert_eq!(results.len(), 3);
    }

    #[test]
    fn iteration_stops_after_an_error() {
        let mut iter = OptionIter::new(&[2, 1, 1, 1]);
        assert!(matches!(iter.next(), Some(Err(_))));
        assert_eq!(iter.next(), None);
    }

    #[test]
    fn emit_reproduces_the_input_bytes() {
        let area = [
            2, 4, 0x05, 0xb4, 4, 2, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 1, 3, 3, 14, 5, 10, 0, 0, 0, 1,
            0, 0, 0, 2, 99, 3, 7, 0,
        ];
        let mut out = [0u8; 34];
        let mut at = 0;
        for option in OptionIter::new(&area) {
            let option = option.expect("valid");
            assert_eq!(option.emit(&mut out[at..]), option.wire_len());
            at += option.wire_len();
        }
        assert_eq!(at, area.len());
        assert_eq!(out, area);
    }
}
