//! MP_CAPABLE (RFC 8684 §3.1) and MP_JOIN (§3.2): the options of the connection and
//! subflow handshakes.

use super::{AddrId, MptcpError, array, be16, be32, be64, subtype};
use crate::crypto::{JoinHmac, JoinTruncatedHmac, MptcpKey, Nonce, Token};

/// The MP_CAPABLE flags byte `A B C D E F G H` (RFC 8684 §3.1), kept whole: bits the
/// RFC leaves unassigned (D..G) round-trip untouched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct CapableFlags(pub u8);

impl CapableFlags {
    /// A: the sender requires DSS checksums.
    pub const CHECKSUM: CapableFlags = CapableFlags(0x80);
    /// B: extensibility; must be 0 in v1 (a receiver that does not understand it falls
    /// back to plain TCP).
    pub const EXTENSIBILITY: CapableFlags = CapableFlags(0x40);
    /// C: do not open subflows to the sender's source address.
    pub const NO_MORE_SUBFLOWS: CapableFlags = CapableFlags(0x20);
    /// H: HMAC-SHA256, the only algorithm v1 defines; must be 1.
    pub const HMAC_SHA256: CapableFlags = CapableFlags(0x01);

    pub const fn contains(self, other: CapableFlags) -> bool {
        self.0 & other.0 == other.0
    }

    pub const fn union(self, other: CapableFlags) -> CapableFlags {
        CapableFlags(self.0 | other.0)
    }

    pub const fn checksum_required(self) -> bool {
        self.contains(Self::CHECKSUM)
    }
}

/// What an MP_CAPABLE carries besides version and flags; the form follows the length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpCapableKeys {
    /// Length 4: the SYN (v1 sends no key in the SYN).
    None,
    /// Length 12: the SYN/ACK, with the responder's key. (A v0 SYN also has length 12;
    /// its version field tells it apart.)
    Sender { sender: MptcpKey },
    /// Length 20: the third ACK, with both keys.
    Both {
        sender: MptcpKey,
        receiver: MptcpKey,
    },
    /// Length 22, or 24 with a checksum: the client's first data segment, repeating both
    /// keys because the third ACK may have been lost, plus the data-level length of the
    /// mapping starting at DSN = IDSN + 1, subflow sequence 1 (RFC 8684 §3.1).
    BothWithData {
        sender: MptcpKey,
        receiver: MptcpKey,
        data_len: u16,
        checksum: Option<u16>,
    },
}

/// MP_CAPABLE, all four forms.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpCapable {
    /// The protocol version, 4 bits (1 for RFC 8684); emit writes the low 4 bits.
    pub version: u8,
    pub flags: CapableFlags,
    pub keys: MpCapableKeys,
}

const CAPABLE_LENGTHS: &str = "one of 4 (SYN), 12 (SYN/ACK), 20 (ACK), 22 or 24 (first data)";

impl MpCapable {
    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        let len = option.len();
        let version = option[2] & 0x0f;
        let flags = CapableFlags(*option.get(3).ok_or(MptcpError::Length {
            option: "MP_CAPABLE",
            len,
            expected: CAPABLE_LENGTHS,
        })?);
        let keys = match len {
            4 => MpCapableKeys::None,
            12 => MpCapableKeys::Sender {
                sender: MptcpKey(be64(option, 4)),
            },
            20 => MpCapableKeys::Both {
                sender: MptcpKey(be64(option, 4)),
                receiver: MptcpKey(be64(option, 12)),
            },
            22 | 24 => MpCapableKeys::BothWithData {
                sender: MptcpKey(be64(option, 4)),
                receiver: MptcpKey(be64(option, 12)),
                data_len: be16(option, 20),
                checksum: (len == 24).then(|| be16(option, 22)),
            },
            _ => {
                return Err(MptcpError::Length {
                    option: "MP_CAPABLE",
                    len,
                    expected: CAPABLE_LENGTHS,
                });
            }
        };
        Ok(MpCapable {
            version,
            flags,
            keys,
        })
    }

    pub(super) fn wire_len(&self) -> usize {
        match self.keys {
            MpCapableKeys::None => 4,
            MpCapableKeys::Sender { .. } => 12,
            MpCapableKeys::Both { .. } => 20,
            MpCapableKeys::BothWithData { checksum, .. } => {
                if checksum.is_some() {
                    24
                } else {
                    22
                }
            }
        }
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = (subtype::MP_CAPABLE << 4) | (self.version & 0x0f);
        out[3] = self.flags.0;
        match self.keys {
            MpCapableKeys::None => {}
            MpCapableKeys::Sender { sender } => out[4..12].copy_from_slice(&sender.to_be_bytes()),
            MpCapableKeys::Both { sender, receiver } => {
                out[4..12].copy_from_slice(&sender.to_be_bytes());
                out[12..20].copy_from_slice(&receiver.to_be_bytes());
            }
            MpCapableKeys::BothWithData {
                sender,
                receiver,
                data_len,
                checksum,
            } => {
                out[4..12].copy_from_slice(&sender.to_be_bytes());
                out[12..20].copy_from_slice(&receiver.to_be_bytes());
                out[20..22].copy_from_slice(&data_len.to_be_bytes());
                if let Some(sum) = checksum {
                    out[22..24].copy_from_slice(&sum.to_be_bytes());
                }
            }
        }
    }
}

/// MP_JOIN, all three forms; the fourth packet of the join is a plain ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MpJoin {
    /// Length 12: the initiator's SYN, naming the connection by the responder's token.
    Syn {
        backup: bool,
        addr_id: AddrId,
        token: Token,
        nonce: Nonce,
    },
    /// Length 16: the responder's SYN/ACK, with the leftmost 64 bits of HMAC-B.
    SynAck {
        backup: bool,
        addr_id: AddrId,
        hmac: JoinTruncatedHmac,
        nonce: Nonce,
    },
    /// Length 24: the initiator's third ACK, with the leftmost 160 bits of HMAC-A.
    Ack { hmac: JoinHmac },
}

const JOIN_LENGTHS: &str = "one of 12 (SYN), 16 (SYN/ACK), 24 (ACK)";

impl MpJoin {
    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        let len = option.len();
        let backup = option[2] & 0x01 != 0;
        match len {
            12 => Ok(MpJoin::Syn {
                backup,
                addr_id: AddrId(option[3]),
                token: Token(be32(option, 4)),
                nonce: Nonce(be32(option, 8)),
            }),
            16 => Ok(MpJoin::SynAck {
                backup,
                addr_id: AddrId(option[3]),
                hmac: JoinTruncatedHmac(array(option, 4)),
                nonce: Nonce(be32(option, 12)),
            }),
            24 => Ok(MpJoin::Ack {
                hmac: JoinHmac(array(option, 4)),
            }),
            _ => Err(MptcpError::Length {
                option: "MP_JOIN",
                len,
                expected: JOIN_LENGTHS,
            }),
        }
    }

    pub(super) fn wire_len(&self) -> usize {
        match self {
            MpJoin::Syn { .. } => 12,
            MpJoin::SynAck { .. } => 16,
            MpJoin::Ack { .. } => 24,
        }
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = subtype::MP_JOIN << 4;
        match *self {
            MpJoin::Syn {
                backup,
                addr_id,
                token,
                nonce,
            } => {
                out[2] |= u8::from(backup);
                out[3] = addr_id.0;
                out[4..8].copy_from_slice(&token.0.to_be_bytes());
                out[8..12].copy_from_slice(&nonce.0.to_be_bytes());
            }
            MpJoin::SynAck {
                backup,
                addr_id,
                hmac,
                nonce,
            } => {
                out[2] |= u8::from(backup);
                out[3] = addr_id.0;
                out[4..12].copy_from_slice(&hmac.0);
                out[12..16].copy_from_slice(&nonce.0.to_be_bytes());
            }
            MpJoin::Ack { hmac } => out[4..24].copy_from_slice(&hmac.0),
        }
    }
}
