//! Ephemeral port selection, RFC 6056 §3.3.3 (Algorithm 3, "simple hash-based"):
//! `port = min + (F(local IP, remote IP, remote port, secret) + next_ephemeral) % num`,
//! trying successive ports until one is free. Ports differ per destination, so a peer
//! cannot predict the ports used towards others, yet the choice is deterministic for a
//! given secret and history (the simulator's reproducibility depends on it).

use core::net::{IpAddr, SocketAddr};

use sha2::{Digest, Sha256};

/// Picks ephemeral ports from an inclusive range.
#[derive(Clone)]
pub(crate) struct PortAllocator {
    secret: [u8; 32],
    min: u16,
    max: u16,
    /// RFC 6056's `next_ephemeral`: advanced by each attempt.
    next: u32,
}

impl core::fmt::Debug for PortAllocator {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        // Never print the key.
        f.debug_struct("PortAllocator")
            .field("min", &self.min)
            .field("max", &self.max)
            .finish_non_exhaustive()
    }
}

impl PortAllocator {
    /// A keyed allocator over `min..=max` (swapped when given in the wrong order).
    /// `secret` is derived from the endpoint's secret under its own label, so ports
    /// and ISNs never use the same key.
    pub(crate) fn new(endpoint_secret: &[u8; 32], min: u16, max: u16) -> Self {
        let mut hash = Sha256::new();
        hash.update(b"mptcp-proto ephemeral ports");
        hash.update(endpoint_secret);
        PortAllocator {
            secret: hash.finalize().into(),
            min: min.min(max).max(1),
            max: max.max(min).max(1),
            next: 0,
        }
    }

    /// The first port in the sequence towards `remote` from `local_ip` for which
    /// `in_use` is false, or `None` when the whole range is taken.
    pub(crate) fn pick(
        &mut self,
        local_ip: IpAddr,
        remote: SocketAddr,
        mut in_use: impl FnMut(u16) -> bool,
    ) -> Option<u16> {
        let num = u32::from(self.max - self.min) + 1;
        let offset = self.offset(local_ip, remote);
        for _ in 0..num {
            let port = self.min as u32 + offset.wrapping_add(self.next) % num;
            self.next = self.next.wrapping_add(1);
            // `port` is at most `max`, so it fits.
            let port = port as u16;
            if !in_use(port) {
                return Some(port);
            }
        }
        None
    }

    /// RFC 6056's F(): a keyed hash of the local address and the remote socket.
    fn offset(&self, local_ip: IpAddr, remote: SocketAddr) -> u32 {
        let mut hash = Sha256::new();
        hash.update(self.secret);
        hash_ip(&mut hash, local_ip);
        hash_ip(&mut hash, remote.ip());
        hash.update(remote.port().to_be_bytes());
        let d = hash.finalize();
        u32::from_be_bytes([d[0], d[1], d[2], d[3]])
    }
}

fn hash_ip(hash: &mut Sha256, ip: IpAddr) {
    match ip {
        IpAddr::V4(ip) => {
            hash.update([4u8]);
            hash.update(ip.octets());
        }
        IpAddr::V6(ip) => {
            hash.update([6u8]);
            hash.update(ip.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> SocketAddr {
        s.parse().expect("test address literal")
    }

    #[test]
    fn ports_stay_in_range_skip_used_ones_and_run_out() {
        let local: IpAddr = "10.0.0.1".parse().expect("literal");
        let mut ports = PortAllocator::new(&[9; 32], 50_000, 50_003);
        let mut used = Vec::new();
        for _ in 0..4 {
            let p = ports
                .pick(local, remote("10.0.0.2:80"), |p| used.contains(&p))
                .expect("range not exhausted");
            assert!((50_000..=50_003).contains(&p), "port {p} out of range");
            used.push(p);
        }
        used.sort_unstable();
        assert_eq!(used, [50_000, 50_001, 50_002, 50_003]);
        assert_eq!(
            ports.pick(local, remote("10.0.0.2:80"), |p| used.contains(&p)),
            None
        );
    }

    #[test]
    fn same_secret_same_sequence() {
        let local: IpAddr = "2001:db8::1".parse().expect("literal");
        let r = remote("[2001:db8::2]:443");
        let mut a = PortAllocator::new(&[1; 32], 49_152, 65_535);
        let mut b = PortAllocator::new(&[1; 32], 49_152, 65_535);
        let seq_a: Vec<_> = (0..5).map(|_| a.pick(local, r, |_| false)).collect();
        let seq_b: Vec<_> = (0..5).map(|_| b.pick(local, r, |_| false)).collect();
        assert_eq!(seq_a, seq_b);
        // Algorithm 3: successive picks towards one destination are consecutive.
        let first = seq_a[0].expect("free range");
        for (i, p) in seq_a.iter().enumerate() {
            let expected = 49_152 + (u32::from(first) - 49_152 + i as u32) % 16_384;
            assert_eq!(*p, Some(expected as u16));
        }
        let mut c = PortAllocator::new(&[2; 32], 49_152, 65_535);
        let seq_c: Vec<_> = (0..5).map(|_| c.pick(local, r, |_| false)).collect();
        assert_ne!(seq_a, seq_c);
    }
}
