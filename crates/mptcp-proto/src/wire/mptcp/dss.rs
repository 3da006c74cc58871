//! DSS, the Data Sequence Signal (RFC 8684 §3.3): data ACK, mapping and DATA_FIN.

use super::{DsnWire, MptcpError, be16, be32, be64, subtype};
use crate::seq::{Dsn, SeqNum};

const FLAG_DATA_ACK: u8 = 0x01; // A
const FLAG_DATA_ACK_8: u8 = 0x02; // a
const FLAG_MAPPING: u8 = 0x04; // M
const FLAG_DSN_8: u8 = 0x08; // m
const FLAG_DATA_FIN: u8 = 0x10; // F

/// A DSS mapping (RFC 8684 §3.3.1): `data_len` bytes starting at relative subflow
/// sequence `subflow_seq` carry the data starting at `dsn`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DssMapping {
    pub dsn: DsnWire,
    /// Relative to the subflow's initial sequence number: 1 is the first data byte, and a
    /// DATA_FIN with no data uses 0.
    pub subflow_seq: SeqNum,
    /// Bytes of data sequence space covered, DATA_FIN included. 0 is the infinite mapping
    /// (RFC 8684 §3.7, fallback): everything from `dsn` on follows the subflow.
    pub data_len: u16,
    /// Present exactly when checksums were negotiated (either side set MP_CAPABLE flag A).
    /// The option length tells whether it is there.
    pub checksum: Option<u16>,
}

impl DssMapping {
    /// The infinite mapping (RFC 8684 §3.7): a data-level length of 0.
    pub const fn is_infinite(&self) -> bool {
        self.data_len == 0
    }

    const fn wire_len(&self) -> usize {
        self.dsn.wire_len() + 4 + 2 + if self.checksum.is_some() { 2 } else { 0 }
    }
}

/// The DSS option. Any combination of data ACK, mapping and DATA_FIN is representable;
/// the connection decides what makes sense (e.g. DATA_FIN belongs with a mapping).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Dss {
    /// Flag A (and `a` for the 8-byte form): the cumulative data-level ACK.
    pub data_ack: Option<DsnWire>,
    /// Flag M (and `m` for the 8-byte DSN).
    pub mapping: Option<DssMapping>,
    /// Flag F: the mapping ends with DATA_FIN, which takes one byte of data sequence space.
    pub data_fin: bool,
}

impl Dss {
    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        let len = option.len();
        let Some(&flags) = option.get(3) else {
            return Err(MptcpError::Length {
                option: "DSS",
                len,
                expected: "at least 4",
            });
        };
        let has_ack = flags & FLAG_DATA_ACK != 0;
        let ack_len = match (has_ack, flags & FLAG_DATA_ACK_8 != 0) {
            (false, _) => 0,
            (true, false) => 4,
            (true, true) => 8,
        };
        let has_map = flags & FLAG_MAPPING != 0;
        let dsn_len = match (has_map, flags & FLAG_DSN_8 != 0) {
            (false, _) => 0,
            (true, false) => 4,
            (true, true) => 8,
        };
        let map_len = if has_map { dsn_len + 4 + 2 } else { 0 };
        let bare = 4 + ack_len + map_len;
        // RFC 8684 §3.3: the checksum is present only with a mapping, and then the length
        // is the only sign of it.
        let has_checksum = if len == bare {
            false
        } else if has_map && len == bare + 2 {
            true
        } else {
            return Err(MptcpError::DssLength {
                len,
                flags,
                needed: dss_needed(ack_len, map_len),
            });
        };
        let mut at = 4;
        let data_ack = match ack_len {
            4 => Some(DsnWire::Short(be32(option, at))),
            8 => Some(DsnWire::Long(Dsn(be64(option, at)))),
            _ => None,
        };
        at += ack_len;
        let mapping = if has_map {
            let dsn = if dsn_len == 8 {
                DsnWire::Long(Dsn(be64(option, at)))
            } else {
                DsnWire::Short(be32(option, at))
            };
            at += dsn_len;
            Some(DssMapping {
                dsn,
                subflow_seq: SeqNum(be32(option, at)),
                data_len: be16(option, at + 4),
                checksum: has_checksum.then(|| be16(option, at + 6)),
            })
        } else {
            None
        };
        Ok(Dss {
            data_ack,
            mapping,
            data_fin: flags & FLAG_DATA_FIN != 0,
        })
    }

    /// The flags byte `rsv rsv rsv F m M a A` this option is emitted with.
    pub fn flags(&self) -> u8 {
        let mut flags = 0;
        if let Some(ack) = self.data_ack {
            flags |= FLAG_DATA_ACK;
            if ack.is_long() {
                flags |= FLAG_DATA_ACK_8;
            }
        }
        if let Some(map) = &self.mapping {
            flags |= FLAG_MAPPING;
            if map.dsn.is_long() {
                flags |= FLAG_DSN_8;
            }
        }
        if self.data_fin {
            flags |= FLAG_DATA_FIN;
        }
        flags
    }

    pub(super) fn wire_len(&self) -> usize {
        4 + self.data_ack.map_or(0, DsnWire::wire_len) + self.mapping.map_or(0, |m| m.wire_len())
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = subtype::DSS << 4;
        out[3] = self.flags();
        let mut at = 4;
        if let Some(ack) = self.data_ack {
            at += ack.write(&mut out[at..]);
        }
        if let Some(map) = self.mapping {
            at += map.dsn.write(&mut out[at..]);
            out[at..at + 4].copy_from_slice(&map.subflow_seq.0.to_be_bytes());
            out[at + 4..at + 6].copy_from_slice(&map.data_len.to_be_bytes());
            if let Some(sum) = map.checksum {
                out[at + 6..at + 8].copy_from_slice(&sum.to_be_bytes());
            }
        }
    }
}

/// The lengths the flags allow, for the error message.
fn dss_needed(ack_len: usize, map_len: usize) -> &'static str {
    // 4 + {0,4,8} + {0, 10, 14}, and +2 with a checksum when there is a mapping.
    match (ack_len, map_len) {
        (0, 0) => "4",
        (4, 0) => "8",
        (8, 0) => "12",
        (0, 10) => "14 or 16",
        (0, 14) => "18 or 20",
        (4, 10) => "18 or 20",
        (4, 14) => "22 or 24",
        (8, 10) => "22 or 24",
        (8, 14) => "26 or 28",
        _ => "a different length",
    }
}

#[cfg(test)]
mod tests {
    use super::super::MptcpOption;
    use super::*;

    #[test]
    fn length_must_match_flags() {
        // Flags A and M (0x05): 4 + 4 + 10 = 18, or 20 with a checksum.
        let mut bytes = [0u8; 9];
        bytes[..4].copy_from_slice(&[30, 9, 0x20, 0x05]);
        assert_eq!(
            MptcpOption::parse(&bytes).unwrap_err().to_string(),
            "DSS length 9 does not match flags 0x05 (they need 18 or 20)"
        );
        // A checksum needs a mapping: A alone with 2 extra bytes is wrong.
        let bytes = [30, 10, 0x20, 0x01, 0, 0, 0, 1, 0, 0];
        assert_eq!(
            MptcpOption::parse(&bytes).unwrap_err().to_string(),
            "DSS length 10 does not match flags 0x01 (they need 8)"
        );
    }

    #[test]
    fn data_fin_with_64_bit_dsn_and_checksum() {
        let bytes = [
            30, 20, 0x20, 0x1c, // F m M
            0, 0, 0, 1, 0, 0, 0, 2, // DSN
            0, 0, 0, 0, // subflow seq 0: DATA_FIN without data
            0, 1, // length 1: the DATA_FIN
            0xab, 0xcd,
        ];
        let parsed = MptcpOption::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            MptcpOption::Dss(Dss {
                data_ack: None,
                mapping: Some(DssMapping {
                    dsn: DsnWire::Long(Dsn(0x1_0000_0002)),
                    subflow_seq: SeqNum(0),
                    data_len: 1,
                    checksum: Some(0xabcd),
                }),
                data_fin: true,
            })
        );
        let mut out = [0u8; 40];
        assert_eq!(parsed.emit(&mut out), 20);
        assert_eq!(&out[..20], &bytes);
    }

    #[test]
    fn meaningless_flags_are_ignored_and_not_re_emitted() {
        // `a` (0x02) without A and `m` (0x08) without M mean nothing; reserved 0xe0 too.
        let bytes = [30, 4, 0x2f, 0xea];
        let parsed = MptcpOption::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            MptcpOption::Dss(Dss {
                data_ack: None,
                mapping: None,
                data_fin: false
            })
        );
        let mut out = [0u8; 4];
        parsed.emit(&mut out);
        assert_eq!(out, [30, 4, 0x20, 0x00]);
    }
}
