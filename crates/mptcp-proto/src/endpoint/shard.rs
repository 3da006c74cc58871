//! Sharding: a runtime may run several endpoints, one per thread, over one network
//! device, and steer every packet to the endpoint that owns its connection without a
//! table shared between the threads (DESIGN.md "Scaling"). Ownership is a pure
//! function of what a packet carries:
//!
//! - a segment belongs to the shard its 4-tuple hashes to ([`Shard::of_tuple`]); an
//!   endpoint that is one shard of several picks its ephemeral ports (for connections
//!   and for the subflows it opens) so that its 4-tuples hash to itself;
//! - an MP_JOIN SYN belongs to the shard its token names ([`Shard::of_token`]); an
//!   endpoint draws MPTCP keys until the token names itself.
//!
//! Subflows the peer opens with MP_JOIN hash anywhere: the runtime has to remember
//! those tuples itself (the only state it shares, and only written when a join
//! arrives).
//!
//! The hash is not keyed: a peer that knows it can aim its connections at one shard,
//! which costs balance, not correctness.

use core::net::{IpAddr, SocketAddr};

use crate::crypto::Token;

/// This endpoint is shard `index` of `count`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u16,
    count: u16,
}

impl Shard {
    /// `None` unless `index < count`.
    pub fn new(index: u16, count: u16) -> Option<Shard> {
        (index < count).then_some(Shard { index, count })
    }

    pub fn index(self) -> u16 {
        self.index
    }

    pub fn count(self) -> u16 {
        self.count
    }

    /// The shard (of `count`) that owns the segments of the connection or subflow
    /// `local` <-> `remote` (seen from this host). `count` 0 is taken as 1.
    pub fn of_tuple(local: SocketAddr, remote: SocketAddr, count: u16) -> u16 {
        if count <= 1 {
            return 0;
        }
        let ports = u64::from(local.port()) << 16 | u64::from(remote.port());
        let h = mix(fold(local.ip()) ^ mix(fold(remote.ip()).rotate_left(17) ^ ports));
        // Multiply-shift maps the hash onto 0..count without the bias of a modulo on
        // the low bits.
        ((u128::from(h) * u128::from(count)) >> 64) as u16
    }

    /// The shard (of `count`) that owns the MPTCP connection with this local token,
    /// and so the MP_JOIN SYNs that name it. Tokens are hash output (RFC 8684 §3.2),
    /// so a plain modulo spreads them evenly.
    pub fn of_token(token: Token, count: u16) -> u16 {
        if count <= 1 {
            return 0;
        }
        (token.0 % u32::from(count)) as u16
    }

    pub fn owns_tuple(self, local: SocketAddr, remote: SocketAddr) -> bool {
        Shard::of_tuple(local, remote, self.count) == self.index
    }

    pub fn owns_token(self, token: Token) -> bool {
        Shard::of_token(token, self.count) == self.index
    }
}

/// An address folded into 64 bits (IPv4 and IPv6 never meet in one tuple).
fn fold(ip: IpAddr) -> u64 {
    match ip {
        IpAddr::V4(v4) => u64::from(u32::from(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            (bits as u64) ^ ((bits >> 64) as u64).rotate_left(29)
        }
    }
}

/// A 64-bit finalizer (SplitMix64's): every input bit affects every output bit, so
/// consecutive ports spread evenly over the shards.
fn mix(mut x: u64) -> u64 {
    x ^= x >> 30;
    x = x.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 27;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address literal")
    }

    #[test]
    fn new_checks_the_index() {
        assert_eq!(Shard::new(0, 0), None);
        assert_eq!(Shard::new(2, 2), None);
        let s = Shard::new(1, 2).expect("valid");
        assert_eq!((s.index(), s.count()), (1, 2));
    }

    #[test]
    fn one_shard_owns_everything() {
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:49152"));
        assert_eq!(Shard::of_tuple(l, r, 1), 0);
        assert_eq!(Shard::of_tuple(l, r, 0), 0);
        assert_eq!(Shard::of_token(Token(7), 1), 0);
        assert!(Shard::new(0, 1).expect("valid").owns_tuple(l, r));
    }

    #[test]
    fn consecutive_ports_spread_evenly_over_shards() {
        for count in [2u16, 3, 4, 8] {
            for (local, remote) in [
                ("10.77.1.2", "10.99.1.1:5201"),
                ("fd00:77:1::2", "[fd00:99:1::1]:443"),
            ] {
                let mut hits = vec![0u32; usize::from(count)];
                for port in 49_152..49_152 + 4096u16 {
                    let l = SocketAddr::new(local.parse().expect("literal"), port);
                    let s = Shard::of_tuple(l, sa(remote), count);
                    assert!(s < count);
                    hits[usize::from(s)] += 1;
                }
                let fair = 4096 / u32::from(count);
                for h in &hits {
                    assert!(
                        h.abs_diff(fair) * 10 < fair,
                        "{count} shards, {local}: {hits:?} is not within 10 % of {fair} each"
                    );
                }
            }
        }
    }

    #[test]
    fn the_tuple_decides_and_both_ends_of_it_matter() {
        let l = sa("10.77.1.2:50000");
        let owners: Vec<u16> = (0..64u16)
            .map(|i| Shard::of_tuple(l, sa(&format!("10.99.1.1:{}", 5000 + i)), 2))
            .collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        // Deterministic: the same tuple, the same shard.
        let r = sa("10.99.1.1:5000");
        assert_eq!(Shard::of_tuple(l, r, 4), Shard::of_tuple(l, r, 4));
        // Swapping the ends is another tuple (the owner is computed from one host's
        // view only).
        let swapped: Vec<bool> = (0..64u16)
            .map(|p| {
                let (a, b) = (sa(&format!("10.0.0.1:{}", 1000 + p)), sa("10.0.0.2:2000"));
                Shard::of_tuple(a, b, 2) != Shard::of_tuple(b, a, 2)
            })
            .collect();
        assert!(swapped.contains(&true));
    }

    #[test]
    fn a_sharded_endpoint_picks_ports_and_tokens_it_owns() {
        use crate::endpoint::{Endpoint, EndpointConfig};
        use crate::time::Instant;
        for index in 0..3 {
            let shard = Shard::new(index, 3).expect("valid");
            let mut ep = Endpoint::new(
                EndpointConfig {
                    shard: Some(shard),
                    mptcp: Some(crate::mptcp::MptcpConfig::default()),
                    ..EndpointConfig::default()
                },
                [index as u8; 32],
            );
            for i in 0..40u16 {
                let remote = sa(&format!("10.99.1.1:{}", 5000 + i % 4));
                let local = sa("10.77.1.2:0");
                let h = if i % 2 == 0 {
                    ep.connect_mptcp(Instant::ZERO, local, remote, &[])
                } else {
                    ep.connect(Instant::ZERO, local, remote)
                }
                .expect("connect");
                let t = ep.addresses(h).expect("known");
                assert!(
                    shard.owns_tuple(t.local, t.remote),
                    "{t:?} not owned by {shard:?}"
                );
                if let Ok(c) = ep.mptcp(h) {
                    assert!(shard.owns_token(c.local_token()), "token of {shard:?}");
                }
            }
        }
    }

    #[test]
    fn tokens_go_to_their_residue() {
        let s = Shard::new(1, 3).expect("valid");
        assert!(s.owns_token(Token(4)));
        assert!(!s.owns_token(Token(5)));
        assert_eq!(Shard::of_token(Token(u32::MAX), 2), 1);
    }
}
