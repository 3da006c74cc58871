//! The destination of a proxied connection and its wire encoding.
//!
//! Both the SOCKS5 request (RFC 1928 §4/§5) and our own converter header
//! ([`crate::header`]) carry a destination as `ATYP | ADDR | PORT`:
//!
//! ```text
//! ATYP 0x01: 4-byte IPv4 address            | 2-byte port (network order)
//! ATYP 0x03: 1-byte length n (1..=255), n-byte domain name | 2-byte port
//! ATYP 0x04: 16-byte IPv6 address           | 2-byte port
//! ```
//!
//! This module owns that encoding and nothing else: no IO, no resolution.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// RFC 1928 §5 address types.
pub const ATYP_IPV4: u8 = 0x01;
pub const ATYP_DOMAIN: u8 = 0x03;
pub const ATYP_IPV6: u8 = 0x04;

/// Where a proxied connection goes: an IP endpoint, or a name the far side resolves.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum TargetAddr {
    Ip(SocketAddr),
    /// A host name (1 to 255 bytes of printable ASCII) and a port. Resolved by the
    /// proxy server, so the client host needs no DNS for it (`curl --socks5-hostname`).
    Domain(String, u16),
}

impl TargetAddr {
    pub fn port(&self) -> u16 {
        match self {
            TargetAddr::Ip(a) => a.port(),
            TargetAddr::Domain(_, p) => *p,
        }
    }

    /// The encoded length: ATYP, address and port.
    pub fn encoded_len(&self) -> usize {
        match self {
            TargetAddr::Ip(SocketAddr::V4(_)) => 1 + 4 + 2,
            TargetAddr::Ip(SocketAddr::V6(_)) => 1 + 16 + 2,
            TargetAddr::Domain(host, _) => 1 + 1 + host.len() + 2,
        }
    }

    /// Appends `ATYP | ADDR | PORT`. A domain name is valid by construction when it
    /// came from [`TargetAddr::decode`] or [`TargetAddr::domain`].
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            TargetAddr::Ip(SocketAddr::V4(a)) => {
                out.push(ATYP_IPV4);
                out.extend_from_slice(&a.ip().octets());
            }
            TargetAddr::Ip(SocketAddr::V6(a)) => {
                out.push(ATYP_IPV6);
                out.extend_from_slice(&a.ip().octets());
            }
            TargetAddr::Domain(host, _) => {
                out.push(ATYP_DOMAIN);
                // A name longer than 255 bytes cannot be built through `domain`.
                out.push(u8::try_from(host.len()).expect("domain names are at most 255 bytes"));
                out.extend_from_slice(host.as_bytes());
            }
        }
        out.extend_from_slice(&self.port().to_be_bytes());
    }

    /// A domain target, checked like a decoded one: 1 to 255 bytes of printable ASCII.
    pub fn domain(host: &str, port: u16) -> Result<TargetAddr, AddrError> {
        check_domain(host.as_bytes())?;
        Ok(TargetAddr::Domain(host.to_owned(), port))
    }

    /// Decodes `ATYP | ADDR | PORT` from the start of `buf`. `Ok(None)`: more bytes are
    /// needed; `Ok(Some((addr, len)))`: the address and how many bytes it took.
    pub fn decode(buf: &[u8]) -> Result<Option<(TargetAddr, usize)>, AddrError> {
        let Some(&atyp) = buf.first() else {
            return Ok(None);
        };
        let (addr_len, addr_start) = match atyp {
            ATYP_IPV4 => (4, 1),
            ATYP_IPV6 => (16, 1),
            ATYP_DOMAIN => match buf.get(1) {
                None => return Ok(None),
                Some(0) => return Err(AddrError::EmptyDomain),
                Some(&n) => (usize::from(n), 2),
            },
            other => return Err(AddrError::UnknownType(other)),
        };
        let total = addr_start + addr_len + 2;
        if buf.len() < total {
            return Ok(None);
        }
        let raw = &buf[addr_start..addr_start + addr_len];
        let port = u16::from_be_bytes([buf[total - 2], buf[total - 1]]);
        let addr = match atyp {
            ATYP_IPV4 => {
                let octets: [u8; 4] = raw.try_into().expect("length checked above: 4");
                TargetAddr::Ip(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(octets)), port))
            }
            ATYP_IPV6 => {
                let octets: [u8; 16] = raw.try_into().expect("length checked above: 16");
                TargetAddr::Ip(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
            }
            _ => {
                check_domain(raw)?;
                let host = std::str::from_utf8(raw).expect("check_domain allows ASCII only");
                TargetAddr::Domain(host.to_owned(), port)
            }
        };
        Ok(Some((addr, total)))
    }
}

/// Domain names travel as bytes; we accept printable ASCII only, so a name can be
/// logged and handed to the resolver as it is (IDNs arrive punycoded from clients).
fn check_domain(raw: &[u8]) -> Result<(), AddrError> {
    if raw.is_empty() {
        return Err(AddrError::EmptyDomain);
    }
    if raw.len() > 255 {
        return Err(AddrError::DomainTooLong(raw.len()));
    }
    if let Some(pos) = raw.iter().position(|b| !b.is_ascii_graphic()) {
        return Err(AddrError::BadDomainByte {
            byte: raw[pos],
            offset: pos,
        });
    }
    Ok(())
}

impl fmt::Display for TargetAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TargetAddr::Ip(a) => write!(f, "{a}"),
            TargetAddr::Domain(h, p) => write!(f, "{h}:{p}"),
        }
    }
}

impl From<SocketAddr> for TargetAddr {
    fn from(a: SocketAddr) -> Self {
        TargetAddr::Ip(a)
    }
}

impl std::str::FromStr for TargetAddr {
    type Err = AddrError;

    /// `1.2.3.4:80`, `[::1]:80` or `example.com:80`.
    fn from_str(s: &str) -> Result<Self, AddrError> {
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(TargetAddr::Ip(a));
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| AddrError::Syntax(s.to_owned()))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| AddrError::Syntax(s.to_owned()))?;
        TargetAddr::domain(host, port)
    }
}

/// Why an encoded address is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    #[error("unknown address type (ATYP) {0:#04x}: only 0x01 IPv4, 0x03 domain, 0x04 IPv6")]
    UnknownType(u8),
    #[error("empty domain name (length 0)")]
    EmptyDomain,
    #[error("domain name of {0} bytes: at most 255")]
    DomainTooLong(usize),
    #[error("domain name byte {byte:#04x} at offset {offset} is not printable ASCII")]
    BadDomainByte { byte: u8, offset: usize },
    #[error("'{0}' is not HOST:PORT")]
    Syntax(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn ipv4_encodes_as_rfc1928_shows() {
        let a = TargetAddr::Ip("10.1.2.3:8080".parse().unwrap());
        let mut out = Vec::new();
        a.encode(&mut out);
        assert_eq!(out, [0x01, 10, 1, 2, 3, 0x1f, 0x90]);
        assert_eq!(TargetAddr::decode(&out), Ok(Some((a, 7))));
    }

    #[test]
    fn domain_and_ipv6_round_trip() {
        for a in [
            TargetAddr::domain("example.com", 443).unwrap(),
            TargetAddr::Ip("[fd00::1]:22".parse().unwrap()),
        ] {
            let mut out = Vec::new();
            a.encode(&mut out);
            assert_eq!(out.len(), a.encoded_len());
            assert_eq!(TargetAddr::decode(&out), Ok(Some((a.clone(), out.len()))));
            for cut in 0..out.len() {
                assert_eq!(TargetAddr::decode(&out[..cut]), Ok(None), "prefix {cut}");
            }
        }
    }

    #[test]
    fn bad_addresses_name_the_problem() {
        assert_eq!(
            TargetAddr::decode(&[0x05, 1, 2]),
            Err(AddrError::UnknownType(5))
        );
        assert_eq!(
            TargetAddr::decode(&[0x03, 0, 0, 80]),
            Err(AddrError::EmptyDomain)
        );
        assert_eq!(
            TargetAddr::decode(&[0x03, 3, b'a', b' ', b'b', 0, 80]),
            Err(AddrError::BadDomainByte {
                byte: b' ',
                offset: 1
            })
        );
        assert_eq!(
            TargetAddr::domain(&"a".repeat(256), 1),
            Err(AddrError::DomainTooLong(256))
        );
        assert_eq!(
            "nohost".parse::<TargetAddr>(),
            Err(AddrError::Syntax("nohost".into()))
        );
        assert_eq!(
            "web.example:80".parse::<TargetAddr>(),
            Ok(TargetAddr::Domain("web.example".into(), 80))
        );
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_consumes_what_it_says(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((addr, len))) = TargetAddr::decode(&buf) {
                prop_assert!(len <= buf.len());
                let mut out = Vec::new();
                addr.encode(&mut out);
                prop_assert_eq!(&out[..], &buf[..len]);
            }
        }

        #[test]
        fn domains_round_trip(host in "[a-z0-9.-]{1,255}", port in any::<u16>()) {
            let a = TargetAddr::domain(&host, port).unwrap();
            let mut out = Vec::new();
            a.encode(&mut out);
            prop_assert_eq!(TargetAddr::decode(&out), Ok(Some((a, out.len()))));
        }
    }
}
