//! Failure and teardown signals: MP_FAIL (RFC 8684 §3.7), MP_FASTCLOSE (§3.5),
//! MP_TCPRST (§3.6), and the experimental subtype (0xf, RFC 8684 §8).

use core::fmt;

use super::{MptcpError, be64, subtype};
use crate::crypto::MptcpKey;
use crate::seq::Dsn;

/// MP_FAIL: a checksum failed at this DSN; the sender falls back to an infinite mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpFail {
    /// Always the full 64-bit DSN on the wire.
    pub dsn: Dsn,
}

impl MpFail {
    pub const WIRE_LEN: usize = 12;

    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        if option.len() != Self::WIRE_LEN {
            return Err(MptcpError::Length {
                option: "MP_FAIL",
                len: option.len(),
                expected: "12",
            });
        }
        Ok(MpFail {
            dsn: Dsn(be64(option, 4)),
        })
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = subtype::MP_FAIL << 4;
        out[4..12].copy_from_slice(&self.dsn.0.to_be_bytes());
    }
}

/// MP_FASTCLOSE: tear the connection down now. Carries the *receiver's* key, which the
/// receiver checks before resetting every subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpFastclose {
    pub receiver_key: MptcpKey,
}

impl MpFastclose {
    pub const WIRE_LEN: usize = 12;

    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        if option.len() != Self::WIRE_LEN {
            return Err(MptcpError::Length {
                option: "MP_FASTCLOSE",
                len: option.len(),
                expected: "12",
            });
        }
        Ok(MpFastclose {
            receiver_key: MptcpKey(be64(option, 4)),
        })
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = subtype::MP_FASTCLOSE << 4;
        out[4..12].copy_from_slice(&self.receiver_key.to_be_bytes());
    }
}

/// The MP_TCPRST flags nibble `U V W T` (RFC 8684 §3.6); only T is defined.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct TcpRstFlags(pub u8);

impl TcpRstFlags {
    pub const U: TcpRstFlags = TcpRstFlags(0x8);
    pub const V: TcpRstFlags = TcpRstFlags(0x4);
    pub const W: TcpRstFlags = TcpRstFlags(0x2);
    /// T: the error is transient; retrying the subflow later is fine.
    pub const TRANSIENT: TcpRstFlags = TcpRstFlags(0x1);

    pub const fn transient(self) -> bool {
        self.0 & Self::TRANSIENT.0 != 0
    }
}

/// The MP_TCPRST reason code (RFC 8684 §3.6 and the IANA registry). Unknown codes are
/// kept as they are.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpRstReason(pub u8);

impl TcpRstReason {
    pub const UNSPECIFIED: TcpRstReason = TcpRstReason(0);
    pub const MPTCP_ERROR: TcpRstReason = TcpRstReason(1);
    pub const LACK_OF_RESOURCES: TcpRstReason = TcpRstReason(2);
    pub const ADMINISTRATIVELY_PROHIBITED: TcpRstReason = TcpRstReason(3);
    pub const TOO_MUCH_OUTSTANDING_DATA: TcpRstReason = TcpRstReason(4);
    pub const UNACCEPTABLE_PERFORMANCE: TcpRstReason = TcpRstReason(5);
    pub const MIDDLEBOX_INTERFERENCE: TcpRstReason = TcpRstReason(6);

    pub const fn name(self) -> Option<&'static str> {
        Some(match self.0 {
            0 => "unspecified",
            1 => "MPTCP-specific error",
            2 => "lack of resources",
            3 => "administratively prohibited",
            4 => "too much outstanding data",
            5 => "unacceptable performance",
            6 => "middlebox interference",
            _ => return None,
        })
    }
}

impl fmt::Debug for TcpRstReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.name() {
            Some(name) => write!(f, "TcpRstReason({}: {name})", self.0),
            None => write!(f, "TcpRstReason({})", self.0),
        }
    }
}

/// MP_TCPRST: why this subflow is being reset (sent with the RST).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpTcpRst {
    /// Emit writes the low 4 bits.
    pub flags: TcpRstFlags,
    pub reason: TcpRstReason,
}

impl MpTcpRst {
    pub const WIRE_LEN: usize = 4;

    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        if option.len() != Self::WIRE_LEN {
            return Err(MptcpError::Length {
                option: "MP_TCPRST",
                len: option.len(),
                expected: "4",
            });
        }
        Ok(MpTcpRst {
            flags: TcpRstFlags(option[2] & 0x0f),
            reason: TcpRstReason(option[3]),
        })
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = (subtype::MP_TCPRST << 4) | (self.flags.0 & 0x0f);
        out[3] = self.reason.0;
    }
}

/// MP_EXPERIMENTAL (subtype 0xf): free form, kept as borrowed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Experimental<'a> {
    nibble: u8,
    data: &'a [u8],
}

impl<'a> Experimental<'a> {
    /// The most data bytes after the subtype byte (3 + n <= 255).
    pub const MAX_DATA: usize = 252;

    /// `nibble` is the low 4 bits of the subtype byte, `data` what follows it. `None`
    /// when `nibble > 0xf` or `data` is longer than [`Self::MAX_DATA`].
    pub fn new(nibble: u8, data: &'a [u8]) -> Option<Self> {
        (nibble <= 0x0f && data.len() <= Self::MAX_DATA).then_some(Experimental { nibble, data })
    }

    pub fn nibble(&self) -> u8 {
        self.nibble
    }

    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Infallible: any length from 3 up is a valid experimental option, and the caller
    /// checked the length byte, so `data` is at most 252 bytes.
    pub(super) fn parse(option: &'a [u8]) -> Self {
        Experimental {
            nibble: option[2] & 0x0f,
            data: option.get(3..).unwrap_or(&[]),
        }
    }

    pub(super) fn wire_len(&self) -> usize {
        3 + self.data.len()
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = (subtype::MP_EXPERIMENTAL << 4) | self.nibble;
        out[3..3 + self.data.len()].copy_from_slice(self.data);
    }
}

#[cfg(test)]
mod tests {
    use super::super::MptcpOption;
    use super::*;

    #[test]
    fn tcprst_transient_middlebox() {
        let parsed = MptcpOption::parse(&[30, 4, 0x81, 6]).unwrap();
        assert_eq!(
            parsed,
            MptcpOption::MpTcpRst(MpTcpRst {
                flags: TcpRstFlags::TRANSIENT,
                reason: TcpRstReason::MIDDLEBOX_INTERFERENCE,
            })
        );
        assert_eq!(
            format!("{:?}", TcpRstReason(6)),
            "TcpRstReason(6: middlebox interference)"
        );
    }

    #[test]
    fn fixed_length_subtypes_reject_other_lengths() {
        assert_eq!(
            MptcpOption::parse(&[30, 4, 0x60, 0])
                .unwrap_err()
                .to_string(),
            "MP_FAIL length 4 is not 12"
        );
        assert_eq!(
            MptcpOption::parse(&[30, 5, 0x80, 0, 0])
                .unwrap_err()
                .to_string(),
            "MP_TCPRST length 5 is not 4"
        );
    }
}
