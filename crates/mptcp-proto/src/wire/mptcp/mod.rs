//! MPTCP options (TCP option kind 30, RFC 8684 §3): one parsed type per subtype, a
//! zero-allocation parser that never panics, and an emitter into a caller's buffer.
//!
//! Owns: the byte layout of every subtype. It must not interpret options against
//! connection state (whether a form fits the TCP flags, whether a version is acceptable,
//! whether an HMAC is right): that is the endpoint's and the connection's job.
//!
//! # Forms chosen by length
//!
//! MP_CAPABLE, MP_JOIN, DSS and ADD_ADDR come in several forms. Within each subtype the
//! lengths of the forms are all different, so the parser chooses the form by the option
//! length alone and never needs the TCP flags: MP_CAPABLE 4 (SYN), 12 (SYN/ACK), 20
//! (third ACK), 22/24 (first data); MP_JOIN 12 (SYN), 16 (SYN/ACK), 24 (third ACK);
//! ADD_ADDR 8/10/20/22 (echo) and 16/18/28/30 (with HMAC). The receiver then checks that
//! the form suits the segment (e.g. an MP_CAPABLE of length 12 on a SYN is version 0,
//! RFC 6824, and gets plain TCP).
//!
//! # Reserved bits
//!
//! Reserved bits are ignored on parse and written as zero on emit (RFC 8684 §3: senders
//! set them to zero, receivers ignore them); so are DSS flags without meaning (`a`
//! without `A`, `m` without `M`). Parse-then-emit is therefore byte-identical for every
//! valid option whose reserved bits are zero; the MP_CAPABLE flags byte, the MP_TCPRST
//! flags nibble and the experimental subtype's low nibble are kept whole.

mod addr;
mod control;
mod dss;
mod handshake;

pub use addr::{AddAddr, AddrIdList, MpPrio, RemoveAddr};
pub use control::{Experimental, MpFail, MpFastclose, MpTcpRst, TcpRstFlags, TcpRstReason};
pub use dss::{Dss, DssMapping};
pub use handshake::{CapableFlags, MpCapable, MpCapableKeys, MpJoin};

use crate::seq::Dsn;

/// TCP option kind for every MPTCP option (RFC 8684 §3).
pub const KIND: u8 = 30;

/// Subtype numbers (RFC 8684 §8, "MPTCP Option Subtypes" registry).
pub mod subtype {
    pub const MP_CAPABLE: u8 = 0x0;
    pub const MP_JOIN: u8 = 0x1;
    pub const DSS: u8 = 0x2;
    pub const ADD_ADDR: u8 = 0x3;
    pub const REMOVE_ADDR: u8 = 0x4;
    pub const MP_PRIO: u8 = 0x5;
    pub const MP_FAIL: u8 = 0x6;
    pub const MP_FASTCLOSE: u8 = 0x7;
    pub const MP_TCPRST: u8 = 0x8;
    pub const MP_EXPERIMENTAL: u8 = 0xf;
}

/// An address identifier (RFC 8684 §3.4.1): names an address of the sender for
/// ADD_ADDR, REMOVE_ADDR and MP_JOIN. 0 is the address of the initial subflow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AddrId(pub u8);

/// A 64-bit data sequence number or data ACK as a DSS option carried it: either the
/// low 32 bits or all 64. Kept apart from [`Dsn`] so that a parsed option re-emits
/// byte-identically; [`DsnWire::expand`] gives the full value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DsnWire {
    /// A 4-byte field: the low 32 bits of the value (RFC 8684 §3.3: flag `a`/`m` clear).
    Short(u32),
    /// An 8-byte field.
    Long(Dsn),
}

impl DsnWire {
    /// The 64-bit value, expanding a short form against `reference` (the next expected
    /// DSN for a mapping, the highest data ACK seen for an ACK).
    pub const fn expand(self, reference: Dsn) -> Dsn {
        match self {
            DsnWire::Short(low) => Dsn::expand(low, reference),
            DsnWire::Long(dsn) => dsn,
        }
    }

    pub const fn is_long(self) -> bool {
        matches!(self, DsnWire::Long(_))
    }

    const fn wire_len(self) -> usize {
        match self {
            DsnWire::Short(_) => 4,
            DsnWire::Long(_) => 8,
        }
    }

    /// Writes the field at the start of `buf`, returning its length.
    fn write(self, buf: &mut [u8]) -> usize {
        match self {
            DsnWire::Short(low) => buf[..4].copy_from_slice(&low.to_be_bytes()),
            DsnWire::Long(dsn) => buf[..8].copy_from_slice(&dsn.0.to_be_bytes()),
        }
        self.wire_len()
    }
}

/// One MPTCP option, borrowing variable-length parts from the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MptcpOption<'a> {
    MpCapable(MpCapable),
    MpJoin(MpJoin),
    Dss(Dss),
    AddAddr(AddAddr),
    RemoveAddr(RemoveAddr<'a>),
    MpPrio(MpPrio),
    MpFail(MpFail),
    MpFastclose(MpFastclose),
    MpTcpRst(MpTcpRst),
    Experimental(Experimental<'a>),
}

/// Why an MPTCP option did not parse. Each message names the field and the value.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MptcpError {
    #[error("MPTCP option of {len} bytes has no subtype byte")]
    NoSubtype { len: usize },
    #[error("MPTCP option length byte {byte} does not match its {len} bytes")]
    LengthByte { byte: u8, len: usize },
    #[error("unknown MPTCP subtype {0:#x}")]
    UnknownSubtype(u8),
    /// The length fits none of the subtype's forms.
    #[error("{option} length {len} is not {expected}")]
    Length {
        option: &'static str,
        len: usize,
        expected: &'static str,
    },
    #[error("DSS length {len} does not match flags {flags:#04x} (they need {needed})")]
    DssLength {
        len: usize,
        flags: u8,
        needed: &'static str,
    },
    #[error("ADD_ADDR length {len} {what} but its echo flag E is {echo}")]
    AddAddrEcho {
        len: usize,
        what: &'static str,
        echo: u8,
    },
}

impl<'a> MptcpOption<'a> {
    /// Parses one whole option: `option[0]` is kind 30, `option[1]` its length, which the
    /// caller has already checked equals `option.len()` (checked again here; the kind is
    /// not). Never panics, never allocates.
    pub fn parse(option: &'a [u8]) -> Result<Self, MptcpError> {
        let len = option.len();
        let (Some(&len_byte), Some(&first)) = (option.get(1), option.get(2)) else {
            return Err(MptcpError::NoSubtype { len });
        };
        if usize::from(len_byte) != len {
            return Err(MptcpError::LengthByte {
                byte: len_byte,
                len,
            });
        }
        Ok(match first >> 4 {
            subtype::MP_CAPABLE => MptcpOption::MpCapable(MpCapable::parse(option)?),
            subtype::MP_JOIN => MptcpOption::MpJoin(MpJoin::parse(option)?),
            subtype::DSS => MptcpOption::Dss(Dss::parse(option)?),
            subtype::ADD_ADDR => MptcpOption::AddAddr(AddAddr::parse(option)?),
            subtype::REMOVE_ADDR => MptcpOption::RemoveAddr(RemoveAddr::parse(option)?),
            subtype::MP_PRIO => MptcpOption::MpPrio(MpPrio::parse(option)?),
            subtype::MP_FAIL => MptcpOption::MpFail(MpFail::parse(option)?),
            subtype::MP_FASTCLOSE => MptcpOption::MpFastclose(MpFastclose::parse(option)?),
            subtype::MP_TCPRST => MptcpOption::MpTcpRst(MpTcpRst::parse(option)?),
            subtype::MP_EXPERIMENTAL => MptcpOption::Experimental(Experimental::parse(option)),
            other => return Err(MptcpError::UnknownSubtype(other)),
        })
    }

    /// The subtype number (high nibble of the third byte).
    pub fn subtype(&self) -> u8 {
        match self {
            MptcpOption::MpCapable(_) => subtype::MP_CAPABLE,
            MptcpOption::MpJoin(_) => subtype::MP_JOIN,
            MptcpOption::Dss(_) => subtype::DSS,
            MptcpOption::AddAddr(_) => subtype::ADD_ADDR,
            MptcpOption::RemoveAddr(_) => subtype::REMOVE_ADDR,
            MptcpOption::MpPrio(_) => subtype::MP_PRIO,
            MptcpOption::MpFail(_) => subtype::MP_FAIL,
            MptcpOption::MpFastclose(_) => subtype::MP_FASTCLOSE,
            MptcpOption::MpTcpRst(_) => subtype::MP_TCPRST,
            MptcpOption::Experimental(_) => subtype::MP_EXPERIMENTAL,
        }
    }

    /// Bytes the option occupies on the wire, kind and length included (at most 255:
    /// the types make longer options unrepresentable).
    pub fn wire_len(&self) -> usize {
        match self {
            MptcpOption::MpCapable(o) => o.wire_len(),
            MptcpOption::MpJoin(o) => o.wire_len(),
            MptcpOption::Dss(o) => o.wire_len(),
            MptcpOption::AddAddr(o) => o.wire_len(),
            MptcpOption::RemoveAddr(o) => o.wire_len(),
            MptcpOption::MpPrio(o) => o.wire_len(),
            MptcpOption::MpFail(_) => MpFail::WIRE_LEN,
            MptcpOption::MpFastclose(_) => MpFastclose::WIRE_LEN,
            MptcpOption::MpTcpRst(_) => MpTcpRst::WIRE_LEN,
            MptcpOption::Experimental(o) => o.wire_len(),
        }
    }

    /// Writes the whole option (kind, length, body) to the start of `buf` and returns
    /// `wire_len()`. Reserved bits are written as zero.
    ///
    /// # Panics
    ///
    /// If `buf` is shorter than `wire_len()` (a caller bug). Nothing else panics.
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.wire_len();
        self.emit_sized(&mut buf[..len]);
        len
    }

    /// [`MptcpOption::emit`] into a buffer of exactly `wire_len()` bytes, for a caller
    /// that has the length already.
    pub(crate) fn emit_sized(&self, out: &mut [u8]) {
        let len = out.len();
        debug_assert_eq!(len, self.wire_len());
        out.fill(0);
        out[0] = KIND;
        // wire_len() <= 255 by construction of every variant.
        out[1] = len as u8;
        match self {
            MptcpOption::MpCapable(o) => o.emit_body(out),
            MptcpOption::MpJoin(o) => o.emit_body(out),
            MptcpOption::Dss(o) => o.emit_body(out),
            MptcpOption::AddAddr(o) => o.emit_body(out),
            MptcpOption::RemoveAddr(o) => o.emit_body(out),
            MptcpOption::MpPrio(o) => o.emit_body(out),
            MptcpOption::MpFail(o) => o.emit_body(out),
            MptcpOption::MpFastclose(o) => o.emit_body(out),
            MptcpOption::MpTcpRst(o) => o.emit_body(out),
            MptcpOption::Experimental(o) => o.emit_body(out),
        }
    }
}

/// Big-endian reads at offsets the caller has already validated against the length.
pub(crate) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(crate) fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub(crate) fn be64(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(array(b, at))
}

pub(crate) fn array<const N: usize>(b: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&b[at..at + N]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_field_and_value() {
        assert_eq!(
            MptcpOption::parse(&[30, 3, 0x90]).unwrap_err().to_string(),
            "unknown MPTCP subtype 0x9"
        );
        assert_eq!(
            MptcpOption::parse(&[30, 2]).unwrap_err().to_string(),
            "MPTCP option of 2 bytes has no subtype byte"
        );
        assert_eq!(
            MptcpOption::parse(&[30, 5, 0x50, 0])
                .unwrap_err()
                .to_string(),
            "MPTCP option length byte 5 does not match its 4 bytes"
        );
        let mut join = [0u8; 13];
        join[..3].copy_from_slice(&[30, 13, 0x10]);
        assert_eq!(
            MptcpOption::parse(&join).unwrap_err().to_string(),
            "MP_JOIN length 13 is not one of 12 (SYN), 16 (SYN/ACK), 24 (ACK)"
        );
    }

    #[test]
    fn short_wire_dsn_expands_against_the_reference() {
        let reference = Dsn(0x1_ffff_fff0);
        assert_eq!(DsnWire::Short(0x10).expand(reference), Dsn(0x2_0000_0010));
        assert_eq!(DsnWire::Long(Dsn(7)).expand(reference), Dsn(7));
    }
}
