//! The converter header: what the proxy client sends first on each multipath
//! connection (the target), and the proxy server's one reply (the outcome).
//!
//! ```text
//! request (client -> server), then the client's data:
//!   0x4d 'M' | VER 0x01 | RSV 0x00 | ATYP | DST.ADDR | DST.PORT     (7 to 263 bytes)
//! reply (server -> client), then the target's data:
//!   0x4d 'M' | VER 0x01 | CODE     | RSV 0x00                       (4 bytes)
//! ```
//!
//! ATYP/ADDR/PORT are SOCKS5's (RFC 1928 §5, see [`crate::target`]): IPv4, IPv6 or a
//! domain name the server resolves. CODE is a SOCKS5 reply code (RFC 1928 §6), so the
//! client passes a failure on to its SOCKS client unchanged.
//!
//! Why not RFC 8803 (0-RTT TCP Convert Protocol) TLVs: its Connect TLV carries an IP
//! address only, so `curl --socks5-hostname` (name resolved on the far side) could not
//! be served; it is built around TCP Fast Open and relays TCP options, which a user-space
//! stack would have to synthesise; and there is no open converter to interoperate with.
//! The magic byte differs from RFC 8803's version byte (1), so a server could later
//! accept both on one port.

use crate::socks5::ReplyCode;
use crate::target::{AddrError, TargetAddr};

pub const MAGIC: u8 = 0x4d;
pub const VERSION: u8 = 0x01;
/// A reply's length in bytes.
pub const REPLY_LEN: usize = 4;
/// The longest request: a 255-byte domain name.
pub const MAX_REQUEST_LEN: usize = 3 + 1 + 1 + 255 + 2;

/// Encodes the request for `target`.
pub fn encode_request(target: &TargetAddr) -> Vec<u8> {
    let mut out = Vec::with_capacity(3 + target.encoded_len());
    out.extend_from_slice(&[MAGIC, VERSION, 0x00]);
    target.encode(&mut out);
    out
}

/// Decodes a request from the start of `buf`: `Ok(None)` until it is complete, then
/// the target and the request's length (bytes after it are the client's data).
pub fn decode_request(buf: &[u8]) -> Result<Option<(TargetAddr, usize)>, HeaderError> {
    check_prefix(buf)?;
    if buf.len() < 3 {
        return Ok(None);
    }
    match TargetAddr::decode(&buf[3..])? {
        Some((target, n)) => Ok(Some((target, 3 + n))),
        None => Ok(None),
    }
}

/// Encodes the server's reply.
pub fn encode_reply(code: ReplyCode) -> [u8; REPLY_LEN] {
    [MAGIC, VERSION, code as u8, 0x00]
}

/// Decodes the server's reply; `Ok(None)` until four bytes are there.
pub fn decode_reply(buf: &[u8]) -> Result<Option<ReplyCode>, HeaderError> {
    check_prefix(buf)?;
    match buf.get(2) {
        Some(&code) if buf.len() >= REPLY_LEN => Ok(Some(ReplyCode::from_byte(code))),
        Some(_) | None => Ok(None),
    }
}

fn check_prefix(buf: &[u8]) -> Result<(), HeaderError> {
    if let Some(&m) = buf.first()
        && m != MAGIC
    {
        return Err(HeaderError::BadMagic(m));
    }
    if let Some(&v) = buf.get(1)
        && v != VERSION
    {
        return Err(HeaderError::BadVersion(v));
    }
    Ok(())
}

/// Why a header is invalid.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error(
        "magic byte {0:#04x}: a converter header starts with 0x4d (is the peer an mptcp proxy?)"
    )]
    BadMagic(u8),
    #[error("header version {0:#04x}: this proxy speaks 0x01")]
    BadVersion(u8),
    #[error("bad target address: {0}")]
    Address(#[from] AddrError),
}

impl HeaderError {
    /// The reply code the server answers with before closing.
    pub fn reply_code(&self) -> ReplyCode {
        match self {
            HeaderError::Address(AddrError::UnknownType(_)) => ReplyCode::AddressTypeNotSupported,
            HeaderError::BadMagic(_) | HeaderError::BadVersion(_) | HeaderError::Address(_) => {
                ReplyCode::GeneralFailure
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn request_layout() {
        let t = TargetAddr::domain("web", 8000).unwrap();
        let req = encode_request(&t);
        assert_eq!(req, [0x4d, 1, 0, 3, 3, b'w', b'e', b'b', 0x1f, 0x40]);
        let mut with_data = req.clone();
        with_data.extend_from_slice(b"hello");
        assert_eq!(decode_request(&with_data), Ok(Some((t, 10))));
        for cut in 0..req.len() {
            assert_eq!(decode_request(&req[..cut]), Ok(None), "prefix {cut}");
        }
        assert_eq!(
            decode_request(&encode_request(
                &TargetAddr::domain(&"x".repeat(255), 1).unwrap()
            ))
            .unwrap()
            .unwrap()
            .1,
            MAX_REQUEST_LEN
        );
    }

    #[test]
    fn bad_requests() {
        assert_eq!(decode_request(b"GET"), Err(HeaderError::BadMagic(b'G')));
        assert_eq!(decode_request(&[0x4d, 2]), Err(HeaderError::BadVersion(2)));
        let e = decode_request(&[0x4d, 1, 0, 7, 0]).unwrap_err();
        assert_eq!(e, HeaderError::Address(AddrError::UnknownType(7)));
        assert_eq!(e.reply_code(), ReplyCode::AddressTypeNotSupported);
        assert_eq!(
            HeaderError::BadMagic(0).reply_code(),
            ReplyCode::GeneralFailure
        );
    }

    #[test]
    fn replies() {
        assert_eq!(encode_reply(ReplyCode::ConnectionRefused), [0x4d, 1, 5, 0]);
        assert_eq!(
            decode_reply(&[0x4d, 1, 5, 0]),
            Ok(Some(ReplyCode::ConnectionRefused))
        );
        assert_eq!(decode_reply(&[0x4d, 1, 0]), Ok(None));
        assert_eq!(
            decode_reply(&[0x05, 1, 0, 0]),
            Err(HeaderError::BadMagic(5))
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(Some((t, n))) = decode_request(&buf) {
                prop_assert_eq!(&encode_request(&t)[..], &buf[..n]);
            }
            let _ = decode_reply(&buf);
        }
    }
}
