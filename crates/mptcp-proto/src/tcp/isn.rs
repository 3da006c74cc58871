//! Initial sequence numbers per RFC 6528.
//!
//! `ISN = M + F(localip, localport, remoteip, remoteport, secretkey)` where M is a timer
//! ticking every 4 microseconds (RFC 6528 §3, after RFC 793) and F is a keyed hash. F
//! here is the first 32 bits of SHA-256 over the secret and the 4-tuple. The secret
//! comes from the caller (drawn once per endpoint from its RNG): the core has no
//! randomness of its own.

use core::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

use crate::seq::SeqNum;
use crate::time::Instant;

/// Generates RFC 6528 ISNs from a secret key.
#[derive(Clone)]
pub struct IsnGenerator {
    secret: [u8; 32],
}

impl core::fmt::Debug for IsnGenerator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the key.
        f.write_str("IsnGenerator { .. }")
    }
}

impl IsnGenerator {
    /// A generator keyed with `secret` (RFC 6528 §3: random, at least 128 bits).
    pub fn new(secret: [u8; 32]) -> Self {
        IsnGenerator { secret }
    }

    /// The ISN for a connection on this 4-tuple at time `now`.
    pub fn isn(&self, local: SocketAddr, remote: SocketAddr, now: Instant) -> SeqNum {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        hash_addr(&mut hash, local);
        hash_addr(&mut hash, remote);
        let digest = hash.finalize();
        let f = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]);
        // M: the 4 µs timer; truncation to 32 bits is the intended wrap.
        let m = (now.total_micros() / 4) as u32;
        SeqNum(m.wrapping_add(f))
    }
}

fn hash_addr(hash: &mut Sha256, addr: SocketAddr) {
    match addr.ip() {
        IpAddr::V4(ip) => {
            hash.update([4u8]);
            hash.update(ip.octets());
        }
        IpAddr::V6(ip) => {
            hash.update([6u8]);
            hash.update(ip.octets());
        }
    }
    hash.update(addr.port().to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("test address literal")
    }

    #[test]
    fn isn_advances_with_the_four_microsecond_clock() {
        let isn = IsnGenerator::new([7; 32]);
        let (l, r) = (addr("10.0.0.1:1000"), addr("10.0.0.2:80"));
        let a = isn.isn(l, r, Instant::from_micros(0));
        let b = isn.isn(l, r, Instant::from_micros(4_000));
        assert_eq!(b.diff(a), 1_000);
    }

    #[test]
    fn isn_depends_on_the_tuple_and_the_secret() {
        let now = Instant::from_secs(3);
        let (l, r) = (addr("10.0.0.1:1000"), addr("10.0.0.2:80"));
        let k1 = IsnGenerator::new([1; 32]);
        let k2 = IsnGenerator::new([2; 32]);
        assert_ne!(k1.isn(l, r, now), k2.isn(l, r, now));
        assert_ne!(k1.isn(l, r, now), k1.isn(addr("10.0.0.1:1001"), r, now));
        assert_ne!(k1.isn(l, r, now), k1.isn(r, l, now));
        assert_eq!(k1.isn(l, r, now), k1.isn(l, r, now));
    }
}
