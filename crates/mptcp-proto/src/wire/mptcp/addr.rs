//! Address management (RFC 8684 §3.4): ADD_ADDR, REMOVE_ADDR, and MP_PRIO (§3.3.8).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{AddrId, MptcpError, array, be16, subtype};
use crate::crypto::AddAddrHmac;

/// ADD_ADDR: an announcement (with HMAC) or the echo that acknowledges one (no HMAC).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddAddr {
    pub addr_id: AddrId,
    /// The IP version follows the option length (v1 has no IPVer field).
    pub addr: IpAddr,
    pub port: Option<u16>,
    /// `Some` in an announcement (E = 0), `None` in an echo (E = 1): the E flag is
    /// derived from it, so the two cannot disagree.
    pub hmac: Option<AddAddrHmac>,
}

const ADD_ADDR_LENGTHS: &str =
    "one of 8, 10, 16, 18 (IPv4) or 20, 22, 28, 30 (IPv6), 2 more with a port, 8 more with an HMAC";

impl AddAddr {
    pub const fn is_echo(&self) -> bool {
        self.hmac.is_none()
    }

    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        let len = option.len();
        // (IPv6?, port?, HMAC?): every combination has its own length.
        let (v6, has_port, has_hmac) = match len {
            8 => (false, false, false),
            10 => (false, true, false),
            16 => (false, false, true),
            18 => (false, true, true),
            20 => (true, false, false),
            22 => (true, true, false),
            28 => (true, false, true),
            30 => (true, true, true),
            _ => {
                return Err(MptcpError::Length {
                    option: "ADD_ADDR",
                    len,
                    expected: ADD_ADDR_LENGTHS,
                });
            }
        };
        let echo = option[2] & 0x01;
        // RFC 8684 §3.4.1: the HMAC is there exactly when E = 0. A length that
        // contradicts E is malformed (the Linux kernel also drops such options).
        if has_hmac == (echo == 1) {
            return Err(MptcpError::AddAddrEcho {
                len,
                what: if has_hmac {
                    "has room for an HMAC"
                } else {
                    "has no room for an HMAC"
                },
                echo,
            });
        }
        let addr_id = AddrId(option[3]);
        let (addr, mut at) = if v6 {
            (IpAddr::V6(Ipv6Addr::from(array::<16>(option, 4))), 20)
        } else {
            (IpAddr::V4(Ipv4Addr::from(array::<4>(option, 4))), 8)
        };
        let port = if has_port {
            at += 2;
            Some(be16(option, at - 2))
        } else {
            None
        };
        let hmac = has_hmac.then(|| AddAddrHmac(array(option, at)));
        Ok(AddAddr {
            addr_id,
            addr,
            port,
            hmac,
        })
    }

    pub(super) fn wire_len(&self) -> usize {
        let addr = match self.addr {
            IpAddr::V4(_) => 4,
            IpAddr::V6(_) => 16,
        };
        4 + addr + if self.port.is_some() { 2 } else { 0 } + if self.hmac.is_some() { 8 } else { 0 }
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = (subtype::ADD_ADDR << 4) | u8::from(self.is_echo());
        out[3] = self.addr_id.0;
        let mut at = match self.addr {
            IpAddr::V4(v4) => {
                out[4..8].copy_from_slice(&v4.octets());
                8
            }
            IpAddr::V6(v6) => {
                out[4..20].copy_from_slice(&v6.octets());
                20
            }
        };
        if let Some(port) = self.port {
            out[at..at + 2].copy_from_slice(&port.to_be_bytes());
            at += 2;
        }
        if let Some(hmac) = self.hmac {
            out[at..at + 8].copy_from_slice(&hmac.0);
        }
    }
}

/// A non-empty list of address ids, borrowed from the packet (or from the caller when
/// emitting). At most [`AddrIdList::MAX`] ids, so the option length fits its byte.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AddrIdList<'a>(&'a [u8]);

impl<'a> AddrIdList<'a> {
    /// The most ids an option can carry by its length byte (3 + n <= 255). A TCP header
    /// has room for 37.
    pub const MAX: usize = 252;

    /// `None` when `ids` is empty or longer than [`Self::MAX`].
    pub fn new(ids: &'a [u8]) -> Option<Self> {
        (!ids.is_empty() && ids.len() <= Self::MAX).then_some(AddrIdList(ids))
    }

    pub fn as_bytes(&self) -> &'a [u8] {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: the list is never empty. Present for clippy's sake.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = AddrId> + 'a {
        self.0.iter().map(|&id| AddrId(id))
    }

    pub fn contains(&self, id: AddrId) -> bool {
        self.0.contains(&id.0)
    }
}

/// REMOVE_ADDR (RFC 8684 §3.4.2): the sender's addresses with these ids are gone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RemoveAddr<'a> {
    pub ids: AddrIdList<'a>,
}

impl<'a> RemoveAddr<'a> {
    pub(super) fn parse(option: &'a [u8]) -> Result<Self, MptcpError> {
        // option.len() <= 255 (the caller checked the length byte), so the list fits.
        match AddrIdList::new(option.get(3..).unwrap_or(&[])) {
            Some(ids) => Ok(RemoveAddr { ids }),
            None => Err(MptcpError::Length {
                option: "REMOVE_ADDR",
                len: option.len(),
                expected: "3 + n with at least one address id",
            }),
        }
    }

    pub(super) fn wire_len(&self) -> usize {
        3 + self.ids.len()
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = subtype::REMOVE_ADDR << 4;
        out[3..3 + self.ids.len()].copy_from_slice(self.ids.as_bytes());
    }
}

/// MP_PRIO (RFC 8684 §3.3.8): change the backup priority of the subflow it arrives on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MpPrio {
    pub backup: bool,
    /// RFC 6824 (v0) allowed a length-4 form naming an address id; RFC 8684 dropped it
    /// (and the Linux kernel ignores length 4). We accept it so that such a peer's
    /// option is not a parse error, keep the id so the option re-emits byte-identically,
    /// and v1 semantics apply regardless: the option concerns the subflow it arrives on.
    /// Emit `None` (length 3) when sending.
    pub addr_id: Option<AddrId>,
}

impl MpPrio {
    pub(super) fn parse(option: &[u8]) -> Result<Self, MptcpError> {
        let addr_id = match option.len() {
            3 => None,
            4 => Some(AddrId(option[3])),
            len => {
                return Err(MptcpError::Length {
                    option: "MP_PRIO",
                    len,
                    expected: "3 (or 4 with an address id, RFC 6824)",
                });
            }
        };
        Ok(MpPrio {
            backup: option[2] & 0x01 != 0,
            addr_id,
        })
    }

    pub(super) fn wire_len(&self) -> usize {
        if self.addr_id.is_some() { 4 } else { 3 }
    }

    pub(super) fn emit_body(&self, out: &mut [u8]) {
        out[2] = (subtype::MP_PRIO << 4) | u8::from(self.backup);
        if let Some(id) = self.addr_id {
            out[3] = id.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::MptcpOption;
    use super::*;

    #[test]
    fn add_addr_v6_with_port_and_hmac() {
        let mut bytes = [0u8; 30];
        bytes[..4].copy_from_slice(&[30, 30, 0x30, 7]);
        bytes[4..20].copy_from_slice(&"2001:db8::1".parse::<Ipv6Addr>().unwrap().octets());
        bytes[20..22].copy_from_slice(&8080u16.to_be_bytes());
        bytes[22..30].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        let parsed = MptcpOption::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(7),
                addr: "2001:db8::1".parse().unwrap(),
                port: Some(8080),
                hmac: Some(AddAddrHmac([1, 2, 3, 4, 5, 6, 7, 8])),
            })
        );
    }

    #[test]
    fn add_addr_echo_flag_must_match_length() {
        // Length 16 is IPv4 with an HMAC, but E = 1 says echo.
        let mut bytes = [0u8; 16];
        bytes[..3].copy_from_slice(&[30, 16, 0x31]);
        assert_eq!(
            MptcpOption::parse(&bytes).unwrap_err().to_string(),
            "ADD_ADDR length 16 has room for an HMAC but its echo flag E is 1"
        );
        let mut bytes = [0u8; 8];
        bytes[..3].copy_from_slice(&[30, 8, 0x30]);
        assert_eq!(
            MptcpOption::parse(&bytes).unwrap_err().to_string(),
            "ADD_ADDR length 8 has no room for an HMAC but its echo flag E is 0"
        );
    }

    #[test]
    fn remove_addr_needs_an_id() {
        assert_eq!(
            MptcpOption::parse(&[30, 3, 0x40]).unwrap_err().to_string(),
            "REMOVE_ADDR length 3 is not 3 + n with at least one address id"
        );
        let parsed = MptcpOption::parse(&[30, 5, 0x40, 3, 9]).unwrap();
        let MptcpOption::RemoveAddr(remove) = parsed else {
            panic!("not REMOVE_ADDR: {parsed:?}");
        };
        assert_eq!(
            remove.ids.iter().collect::<Vec<_>>(),
            [AddrId(3), AddrId(9)]
        );
    }

    #[test]
    fn mp_prio_v0_form_with_address_id_round_trips() {
        let bytes = [30, 4, 0x51, 5];
        let parsed = MptcpOption::parse(&bytes).unwrap();
        assert_eq!(
            parsed,
            MptcpOption::MpPrio(MpPrio {
                backup: true,
                addr_id: Some(AddrId(5))
            })
        );
        let mut out = [0u8; 4];
        parsed.emit(&mut out);
        assert_eq!(out, bytes);
    }
}
