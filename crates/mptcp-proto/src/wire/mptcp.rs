//! MPTCP options (TCP option kind 30, RFC 8684 §3).
//!
//! PLACEHOLDER: this file is being written; the shape below is the contract the TCP option
//! parser relies on.

/// One MPTCP option, borrowing variable-length parts from the packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MptcpOption<'a> {
    Unparsed(&'a [u8]),
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MptcpError {
    #[error("MPTCP option too short: {0} bytes")]
    TooShort(usize),
}

impl<'a> MptcpOption<'a> {
    /// Parses one whole option: `option[0]` is kind 30, `option[1]` its length, which the
    /// caller has already checked equals `option.len()`.
    pub fn parse(option: &'a [u8]) -> Result<Self, MptcpError> {
        if option.len() < 3 {
            return Err(MptcpError::TooShort(option.len()));
        }
        Ok(MptcpOption::Unparsed(&option[2..]))
    }

    /// Bytes the option occupies on the wire, kind and length included.
    pub fn wire_len(&self) -> usize {
        match self {
            MptcpOption::Unparsed(body) => body.len() + 2,
        }
    }

    /// Writes the whole option (kind, length, body) to the start of `buf` and returns
    /// `wire_len()`. Panics if `buf` is shorter than `wire_len()` (a caller bug).
    pub fn emit(&self, buf: &mut [u8]) -> usize {
        let len = self.wire_len();
        buf[0] = 30;
        buf[1] = len as u8;
        match self {
            MptcpOption::Unparsed(body) => buf[2..len].copy_from_slice(body),
        }
        len
    }
}
