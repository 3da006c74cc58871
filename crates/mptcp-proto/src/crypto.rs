//! MPTCP v1 cryptography (RFC 8684 §3.1, §3.2, §3.3.1, §3.4.1): keys, tokens, IDSNs, the
//! HMAC-SHA256 values of MP_JOIN and ADD_ADDR, and the DSS checksum.
//!
//! Owns: the arithmetic only. It keeps no state, draws no randomness of its own (the
//! caller passes an RNG) and knows nothing about connections; the endpoint decides which
//! key is whose. Every HMAC function names its arguments after the *sender of the
//! option* ("sender_key", "sender_nonce"), because RFC 8684 always puts the sender's key
//! and nonce first: a host computing a value it sends passes its own key as
//! `sender_key`; a host checking a value it received passes the peer's key.
//!
//! Keys go into hashes as their 8 big-endian bytes (RFC 8684 §3.1: "the key is
//! interpreted as a 64-bit big-endian number").

use core::fmt;
use core::net::IpAddr;

use hmac::{Hmac, KeyInit, Mac};
use rand_core::CryptoRng;
use sha2::{Digest, Sha256};

use crate::seq::{Dsn, SeqNum};
use crate::wire::checksum::Checksum;

type HmacSha256 = Hmac<Sha256>;

/// A 64-bit MPTCP key (RFC 8684 §3.1). Never reuse one across connections.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MptcpKey(pub u64);

impl MptcpKey {
    /// The key as it appears on the wire and in every hash.
    pub const fn to_be_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// The connection token: the most significant 32 bits of SHA-256(key).
    pub fn token(self) -> Token {
        self.token_and_idsn().0
    }

    /// The initial data sequence number: the least significant 64 bits of SHA-256(key).
    /// The first data byte has DSN `idsn + 1` (RFC 8684 §3.1).
    pub fn idsn(self) -> Dsn {
        self.token_and_idsn().1
    }

    /// Token and IDSN from one hash.
    pub fn token_and_idsn(self) -> (Token, Dsn) {
        let digest = Sha256::digest(self.to_be_bytes());
        let token = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        let mut low = [0u8; 8];
        low.copy_from_slice(&digest[24..32]);
        (Token(token), Dsn(u64::from_be_bytes(low)))
    }
}

// Hex, because keys are compared against packet dumps (tshark prints them in decimal
// as `tcp.options.mptcp.sendkey`). Keys are secrets: log them only at trace level.
impl fmt::Debug for MptcpKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MptcpKey({:#018x})", self.0)
    }
}

/// A 32-bit connection token: names a connection in MP_JOIN SYNs (RFC 8684 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(pub u32);

/// A 32-bit random number ("nonce") an MP_JOIN SYN or SYN/ACK carries (RFC 8684 §3.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nonce(pub u32);

impl Nonce {
    pub fn generate<R: CryptoRng + ?Sized>(rng: &mut R) -> Nonce {
        Nonce(rng.next_u32())
    }
}

/// The leftmost 64 bits of HMAC-B, carried by an MP_JOIN SYN/ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JoinTruncatedHmac(pub [u8; 8]);

/// The leftmost 160 bits of HMAC-A, carried by an MP_JOIN third ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct JoinHmac(pub [u8; 20]);

/// The rightmost 64 bits of the ADD_ADDR HMAC (RFC 8684 §3.4.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct AddAddrHmac(pub [u8; 8]);

/// A fresh key, with the token and IDSN derived from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalKey {
    pub key: MptcpKey,
    pub token: Token,
    pub idsn: Dsn,
}

/// Key generation gave up: every candidate's token was taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("no unused MPTCP token after {attempts} random keys")]
pub struct TokenSpaceExhausted {
    pub attempts: u32,
}

/// How many keys [`generate_key`] draws before giving up. With half of the 2^32 tokens in
/// use the chance of failing is 2^-64, so hitting this means the predicate is broken.
pub const MAX_KEY_ATTEMPTS: u32 = 64;

/// Draws a random key whose token `token_in_use` reports as free (RFC 8684 §3.1: "a
/// host MUST ensure the token is unique among its local connections"; on a collision
/// it picks a new key).
pub fn generate_key<R: CryptoRng + ?Sized>(
    rng: &mut R,
    mut token_in_use: impl FnMut(Token) -> bool,
) -> Result<LocalKey, TokenSpaceExhausted> {
    for _ in 0..MAX_KEY_ATTEMPTS {
        let key = MptcpKey(rng.next_u64());
        let (token, idsn) = key.token_and_idsn();
        if !token_in_use(token) {
            return Ok(LocalKey { key, token, idsn });
        }
    }
    Err(TokenSpaceExhausted {
        attempts: MAX_KEY_ATTEMPTS,
    })
}

/// HMAC-SHA256 keyed with `first ‖ second` (16 bytes), ready for the message.
fn keyed(first: MptcpKey, second: MptcpKey) -> HmacSha256 {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&first.to_be_bytes());
    key[8..].copy_from_slice(&second.to_be_bytes());
    HmacSha256::new_from_slice(&key).expect("HMAC accepts keys of any length")
}

/// HMAC(sender_key ‖ receiver_key, sender_nonce ‖ receiver_nonce): HMAC-B when the
/// responder sends it (SYN/ACK), HMAC-A when the initiator does (third ACK).
fn join_mac(
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    sender_nonce: Nonce,
    receiver_nonce: Nonce,
) -> HmacSha256 {
    let mut mac = keyed(sender_key, receiver_key);
    mac.update(&sender_nonce.0.to_be_bytes());
    mac.update(&receiver_nonce.0.to_be_bytes());
    mac
}

/// The MP_JOIN SYN/ACK value (RFC 8684 §3.2): the leftmost 64 bits of
/// HMAC(Key-B ‖ Key-A, R-B ‖ R-A), where B (the responder) is the sender.
pub fn join_synack_hmac(
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    sender_nonce: Nonce,
    receiver_nonce: Nonce,
) -> JoinTruncatedHmac {
    let full = join_mac(sender_key, receiver_key, sender_nonce, receiver_nonce).finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full.into_bytes()[..8]);
    JoinTruncatedHmac(out)
}

/// The MP_JOIN third-ACK value (RFC 8684 §3.2): the leftmost 160 bits of
/// HMAC(Key-A ‖ Key-B, R-A ‖ R-B), where A (the initiator) is the sender.
pub fn join_ack_hmac(
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    sender_nonce: Nonce,
    receiver_nonce: Nonce,
) -> JoinHmac {
    let full = join_mac(sender_key, receiver_key, sender_nonce, receiver_nonce).finalize();
    let mut out = [0u8; 20];
    out.copy_from_slice(&full.into_bytes()[..20]);
    JoinHmac(out)
}

/// Checks a received SYN/ACK HMAC in constant time. The initiator calls it with the
/// responder's key and nonce as the sender's.
pub fn verify_join_synack_hmac(
    received: &JoinTruncatedHmac,
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    sender_nonce: Nonce,
    receiver_nonce: Nonce,
) -> bool {
    join_mac(sender_key, receiver_key, sender_nonce, receiver_nonce)
        .verify_truncated_left(&received.0)
        .is_ok()
}

/// Checks a received third-ACK HMAC in constant time. The responder calls it with the
/// initiator's key and nonce as the sender's.
pub fn verify_join_ack_hmac(
    received: &JoinHmac,
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    sender_nonce: Nonce,
    receiver_nonce: Nonce,
) -> bool {
    join_mac(sender_key, receiver_key, sender_nonce, receiver_nonce)
        .verify_truncated_left(&received.0)
        .is_ok()
}

fn add_addr_mac(
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> HmacSha256 {
    let mut mac = keyed(sender_key, receiver_key);
    mac.update(&[addr_id]);
    match addr {
        IpAddr::V4(v4) => mac.update(&v4.octets()),
        IpAddr::V6(v6) => mac.update(&v6.octets()),
    }
    // RFC 8684 §3.4.1 puts the port in the message; with no port in the option the
    // Linux kernel (net/mptcp/options.c, add_addr_generate_hmac) hashes two zero bytes,
    // and PROTOCOL.md says the same. Interop decides: always two bytes.
    mac.update(&port.unwrap_or(0).to_be_bytes());
    mac
}

/// The ADD_ADDR HMAC (RFC 8684 §3.4.1): the rightmost 64 bits of
/// HMAC(Key-S ‖ Key-R, address-id ‖ address ‖ port), S being the announcing host.
pub fn add_addr_hmac(
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> AddAddrHmac {
    let full = add_addr_mac(sender_key, receiver_key, addr_id, addr, port).finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&full.into_bytes()[24..32]);
    AddAddrHmac(out)
}

/// Checks a received ADD_ADDR HMAC in constant time; the receiver passes the peer's key
/// as `sender_key`. A mismatch means "drop the option silently" (RFC 8684 §3.4.1).
pub fn verify_add_addr_hmac(
    received: &AddAddrHmac,
    sender_key: MptcpKey,
    receiver_key: MptcpKey,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> bool {
    add_addr_mac(sender_key, receiver_key, addr_id, addr, port)
        .verify_truncated_right(&received.0)
        .is_ok()
}

/// The DSS checksum (RFC 8684 §3.3.1), computed incrementally: the pseudo-header
/// (64-bit DSN, 32-bit relative subflow sequence number, 16-bit data-level length, 16
/// zero bits) followed by the mapped payload, which may arrive in many pieces (a mapping
/// can span several segments).
///
/// The DSN is always the full 64-bit value, even when the DSS option carried only 32
/// bits: the receiver expands it first. The data-level length is the mapping's, DATA_FIN
/// included; the DATA_FIN itself contributes no payload byte.
///
/// ```
/// use mptcp_proto::crypto::DssChecksum;
/// use mptcp_proto::{Dsn, SeqNum};
/// let mut sum = DssChecksum::new(Dsn(1000), SeqNum(1), 5);
/// sum.add(b"he").add(b"llo");
/// let value = sum.finish();
/// assert!(DssChecksum::new(Dsn(1000), SeqNum(1), 5).add(b"hello").verify(value));
/// ```
#[derive(Clone, Copy, Debug)]
pub struct DssChecksum {
    sum: Checksum,
}

impl DssChecksum {
    /// Starts the sum with the pseudo-header. `subflow_seq` is relative to the subflow's
    /// ISN (1 is the first data byte).
    pub fn new(dsn: Dsn, subflow_seq: SeqNum, data_len: u16) -> Self {
        let mut sum = Checksum::new();
        sum.add_u64(dsn.0)
            .add_u32(subflow_seq.0)
            .add_u16(data_len)
            .add_u16(0);
        DssChecksum { sum }
    }

    /// Adds the next piece of mapped payload. Pieces are one contiguous byte stream: an
    /// odd-length piece is fine.
    pub fn add(&mut self, payload: &[u8]) -> &mut Self {
        self.sum.add_bytes(payload);
        self
    }

    /// The value to put in the DSS (or MP_CAPABLE) checksum field.
    pub fn finish(&self) -> u16 {
        self.sum.finish()
    }

    /// Whether `received` is the right checksum for everything added so far. Summing the
    /// received value in and expecting all ones accepts both ones'-complement zeros.
    pub fn verify(&self, received: u16) -> bool {
        // Added as a separate word: the payload may end on an odd byte, whose padding
        // the received value must not fill.
        let total = u32::from(self.sum.sum16()) + u32::from(received);
        let folded = (total & 0xffff) + (total >> 16);
        folded == 0xffff
    }
}

/// The DSS checksum of a mapping whose payload is the concatenation of `payload`.
pub fn dss_checksum(dsn: Dsn, subflow_seq: SeqNum, data_len: u16, payload: &[&[u8]]) -> u16 {
    let mut sum = DssChecksum::new(dsn, subflow_seq, data_len);
    for piece in payload {
        sum.add(piece);
    }
    sum.finish()
}

/// Whether `received` is the DSS checksum of the mapping.
pub fn verify_dss_checksum(
    dsn: Dsn,
    subflow_seq: SeqNum,
    data_len: u16,
    payload: &[&[u8]],
    received: u16,
) -> bool {
    let mut sum = DssChecksum::new(dsn, subflow_seq, data_len);
    for piece in payload {
        sum.add(piece);
    }
    sum.verify(received)
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::{Ipv4Addr, Ipv6Addr};

    // Expected values below were computed independently with Python 3's hashlib/hmac;
    // each test gives the exact one-liner.
    const KEY_A: MptcpKey = MptcpKey(0x9a3c_5e7f_1b2d_4c6e);
    const KEY_B: MptcpKey = MptcpKey(0x0f1e_2d3c_4b5a_6978);
    const NONCE_A: Nonce = Nonce(0x1234_5678);
    const NONCE_B: Nonce = Nonce(0x9abc_def0);

    fn hex<const N: usize>(s: &str) -> [u8; N] {
        let mut out = [0u8; N];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("test hex");
        }
        out
    }

    #[test]
    fn token_and_idsn_are_the_ends_of_sha256_of_the_key() {
        // python3 -c "import hashlib;d=hashlib.sha256(bytes.fromhex('9a3c5e7f1b2d4c6e')).hexdigest();print(d[:8], d[48:])"
        assert_eq!(KEY_A.token(), Token(0x4328_8196));
        assert_eq!(KEY_A.idsn(), Dsn(0xb5dc_4bfc_68c2_1a1f));
        // python3 -c "import hashlib;d=hashlib.sha256(bytes.fromhex('0f1e2d3c4b5a6978')).hexdigest();print(d[:8], d[48:])"
        assert_eq!(
            KEY_B.token_and_idsn(),
            (Token(0x90ab_52c2), Dsn(0xa080_273f_3dbe_1759))
        );
    }

    #[test]
    fn join_synack_hmac_is_left_64_bits_of_hmac_b() {
        // python3 -c "import hmac,hashlib;print(hmac.new(bytes.fromhex('0f1e2d3c4b5a6978'+'9a3c5e7f1b2d4c6e'),bytes.fromhex('9abcdef0'+'12345678'),hashlib.sha256).hexdigest()[:16])"
        let expected = JoinTruncatedHmac(hex("418372d22b0db1b9"));
        assert_eq!(join_synack_hmac(KEY_B, KEY_A, NONCE_B, NONCE_A), expected);
        assert!(verify_join_synack_hmac(
            &expected, KEY_B, KEY_A, NONCE_B, NONCE_A
        ));
        // Swapping roles must not verify.
        assert!(!verify_join_synack_hmac(
            &expected, KEY_A, KEY_B, NONCE_A, NONCE_B
        ));
        let mut bad = expected;
        bad.0[7] ^= 1;
        assert!(!verify_join_synack_hmac(
            &bad, KEY_B, KEY_A, NONCE_B, NONCE_A
        ));
    }

    #[test]
    fn join_ack_hmac_is_left_160_bits_of_hmac_a() {
        // python3 -c "import hmac,hashlib;print(hmac.new(bytes.fromhex('9a3c5e7f1b2d4c6e'+'0f1e2d3c4b5a6978'),bytes.fromhex('12345678'+'9abcdef0'),hashlib.sha256).hexdigest()[:40])"
        let expected = JoinHmac(hex("62228003684c87143b0ed47f387709594491549f"));
        assert_eq!(join_ack_hmac(KEY_A, KEY_B, NONCE_A, NONCE_B), expected);
        assert!(verify_join_ack_hmac(
            &expected, KEY_A, KEY_B, NONCE_A, NONCE_B
        ));
        let mut bad = expected;
        bad.0[0] ^= 0x80;
        assert!(!verify_join_ack_hmac(&bad, KEY_A, KEY_B, NONCE_A, NONCE_B));
        assert!(!verify_join_ack_hmac(
            &expected,
            KEY_A,
            KEY_B,
            NONCE_A,
            Nonce(0)
        ));
    }

    #[test]
    fn add_addr_hmac_v4_is_right_64_bits_with_zero_port_when_absent() {
        let addr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
        // python3 -c "import hmac,hashlib,ipaddress;print(hmac.new(bytes.fromhex('9a3c5e7f1b2d4c6e'+'0f1e2d3c4b5a6978'),bytes([5])+ipaddress.ip_address('192.0.2.7').packed+(0).to_bytes(2,'big'),hashlib.sha256).hexdigest()[-16:])"
        let no_port = AddAddrHmac(hex("ddd97e433a33d9f5"));
        assert_eq!(add_addr_hmac(KEY_A, KEY_B, 5, addr, None), no_port);
        // python3 -c "import hmac,hashlib,ipaddress;print(hmac.new(bytes.fromhex('9a3c5e7f1b2d4c6e'+'0f1e2d3c4b5a6978'),bytes([5])+ipaddress.ip_address('192.0.2.7').packed+(8080).to_bytes(2,'big'),hashlib.sha256).hexdigest()[-16:])"
        let port = AddAddrHmac(hex("731a7bb9a34be51e"));
        assert_eq!(add_addr_hmac(KEY_A, KEY_B, 5, addr, Some(8080)), port);
        assert!(verify_add_addr_hmac(
            &port,
            KEY_A,
            KEY_B,
            5,
            addr,
            Some(8080)
        ));
        assert!(!verify_add_addr_hmac(
            &port,
            KEY_A,
            KEY_B,
            5,
            addr,
            Some(8081)
        ));
        assert!(!verify_add_addr_hmac(
            &port,
            KEY_B,
            KEY_A,
            5,
            addr,
            Some(8080)
        ));
        assert!(!verify_add_addr_hmac(&no_port, KEY_A, KEY_B, 6, addr, None));
    }

    #[test]
    fn add_addr_hmac_v6() {
        let addr = IpAddr::V6("2001:db8::42".parse::<Ipv6Addr>().expect("literal"));
        // python3 -c "import hmac,hashlib,ipaddress;print(hmac.new(bytes.fromhex('0f1e2d3c4b5a6978'+'9a3c5e7f1b2d4c6e'),bytes([9])+ipaddress.ip_address('2001:db8::42').packed+(0).to_bytes(2,'big'),hashlib.sha256).hexdigest()[-16:])"
        assert_eq!(
            add_addr_hmac(KEY_B, KEY_A, 9, addr, None),
            AddAddrHmac(hex("c626c425b0d7c4d1"))
        );
        // python3 -c "import hmac,hashlib,ipaddress;print(hmac.new(bytes.fromhex('0f1e2d3c4b5a6978'+'9a3c5e7f1b2d4c6e'),bytes([9])+ipaddress.ip_address('2001:db8::42').packed+(443).to_bytes(2,'big'),hashlib.sha256).hexdigest()[-16:])"
        let expected = AddAddrHmac(hex("aae0c2d2ef6d6228"));
        assert_eq!(add_addr_hmac(KEY_B, KEY_A, 9, addr, Some(443)), expected);
        assert!(verify_add_addr_hmac(
            &expected,
            KEY_B,
            KEY_A,
            9,
            addr,
            Some(443)
        ));
    }

    #[test]
    fn dss_checksum_matches_an_independent_computation() {
        // python3 -c "import struct;d=struct.pack('>QIHH',0x0102030405060708,1,5,0)+b'hello'+b'\0';s=sum(struct.unpack('>%dH'%(len(d)//2),d))
        //   (then fold: while s>>16: s=(s&0xffff)+(s>>16); print(hex(~s&0xffff)))"
        let dsn = Dsn(0x0102_0304_0506_0708);
        assert_eq!(dss_checksum(dsn, SeqNum(1), 5, &[b"hello"]), 0xac13);
        assert_eq!(
            dss_checksum(dsn, SeqNum(1), 5, &[b"h", b"el", b"", b"lo"]),
            0xac13
        );
        assert!(verify_dss_checksum(
            dsn,
            SeqNum(1),
            5,
            &[b"hel", b"lo"],
            0xac13
        ));
        assert!(!verify_dss_checksum(dsn, SeqNum(1), 5, &[b"hellp"], 0xac13));
        assert!(!verify_dss_checksum(
            dsn + 1,
            SeqNum(1),
            5,
            &[b"hello"],
            0xac13
        ));
        assert!(!verify_dss_checksum(dsn, SeqNum(2), 5, &[b"hello"], 0xac13));
        assert!(!verify_dss_checksum(dsn, SeqNum(1), 6, &[b"hello"], 0xac13));
    }

    #[test]
    fn dss_checksum_of_all_zeros_verifies_either_zero() {
        // The sum is 0, so the checksum is 0xffff; a sender that wrote 0x0000 (the other
        // ones'-complement zero) must not fail verification either.
        assert_eq!(dss_checksum(Dsn(0), SeqNum(0), 0, &[&[0, 0]]), 0xffff);
        assert!(verify_dss_checksum(Dsn(0), SeqNum(0), 0, &[], 0xffff));
    }

    /// A deterministic RNG that replays fixed 64-bit values.
    struct Replay(Vec<u64>);

    impl rand_core::TryRng for Replay {
        type Error = core::convert::Infallible;
        fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
            Ok(self.try_next_u64()? as u32)
        }
        fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
            Ok(self.0.remove(0))
        }
        fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
            for chunk in dst.chunks_mut(8) {
                let v = self.try_next_u64()?.to_le_bytes();
                chunk.copy_from_slice(&v[..chunk.len()]);
            }
            Ok(())
        }
    }
    impl rand_core::TryCryptoRng for Replay {}

    #[test]
    fn generate_key_skips_keys_whose_token_is_taken() {
        let mut rng = Replay(vec![KEY_A.0, KEY_B.0]);
        let taken = KEY_A.token();
        let generated = generate_key(&mut rng, |t| t == taken).expect("second key is free");
        assert_eq!(
            generated,
            LocalKey {
                key: KEY_B,
                token: Token(0x90ab_52c2),
                idsn: Dsn(0xa080_273f_3dbe_1759),
            }
        );
    }

    #[test]
    fn generate_key_gives_up_when_every_token_is_taken() {
        let mut rng = Replay((0..u64::from(MAX_KEY_ATTEMPTS)).collect());
        assert_eq!(
            generate_key(&mut rng, |_| true),
            Err(TokenSpaceExhausted {
                attempts: MAX_KEY_ATTEMPTS
            })
        );
        assert!(rng.0.is_empty());
    }
}
