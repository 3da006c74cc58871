//! The endpoint's source of MPTCP keys and MP_JOIN nonces: a deterministic random bit
//! generator keyed with the endpoint's secret (SHA-256 in counter mode over a domain
//! label), so the simulator reproduces runs from its seed while the runtime, which
//! draws the secret from the OS, gets unpredictable keys (RFC 8684 §3.1 wants keys
//! random; RFC 4086 §6.2 describes counter-mode generators over a hash).

use sha2::{Digest, Sha256};

/// SHA-256(secret ‖ label ‖ counter) blocks, consumed 8 bytes at a time.
#[derive(Clone)]
pub(super) struct KeyRng {
    secret: [u8; 32],
    counter: u64,
    block: [u8; 32],
    used: usize,
}

impl core::fmt::Debug for KeyRng {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the key material.
        f.write_str("KeyRng { .. }")
    }
}

impl KeyRng {
    pub(super) fn new(secret: [u8; 32]) -> Self {
        KeyRng {
            secret,
            counter: 0,
            block: [0; 32],
            used: 32,
        }
    }

    fn next_byte(&mut self) -> u8 {
        if self.used == self.block.len() {
            let mut hash = Sha256::new();
            hash.update(self.secret);
            hash.update(b"mptcp-proto endpoint keys and nonces");
            hash.update(self.counter.to_be_bytes());
            self.block.copy_from_slice(&hash.finalize());
            self.counter = self.counter.wrapping_add(1);
            self.used = 0;
        }
        let b = self.block[self.used];
        self.used += 1;
        b
    }
}

impl rand_core::TryRng for KeyRng {
    type Error = core::convert::Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Self::Error> {
        let mut b = [0u8; 4];
        self.try_fill_bytes(&mut b)?;
        Ok(u32::from_le_bytes(b))
    }

    fn try_next_u64(&mut self) -> Result<u64, Self::Error> {
        let mut b = [0u8; 8];
        self.try_fill_bytes(&mut b)?;
        Ok(u64::from_le_bytes(b))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Self::Error> {
        for b in dst {
            *b = self.next_byte();
        }
        Ok(())
    }
}

impl rand_core::TryCryptoRng for KeyRng {}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::Rng;

    #[test]
    fn same_secret_same_stream_other_secret_other_stream() {
        let mut a = KeyRng::new([1; 32]);
        let mut b = KeyRng::new([1; 32]);
        let mut c = KeyRng::new([2; 32]);
        let xs: Vec<u64> = (0..10).map(|_| a.next_u64()).collect();
        let ys: Vec<u64> = (0..10).map(|_| b.next_u64()).collect();
        let zs: Vec<u64> = (0..10).map(|_| c.next_u64()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        // Consecutive values differ (the counter advances across blocks).
        assert!(xs.windows(2).all(|w| w[0] != w[1]));
    }
}
