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
//! The tuple hash is keyed ([`SteerKey`], SipHash-1-3): a peer that could compute it
//! could choose tuples that all land on one shard and so undo the sharding. The key
//! is a parameter (the runtime draws it from the OS, a test passes a constant); every
//! shard of one runtime has the same.

use core::fmt;
use core::hash::Hasher;
use core::net::{IpAddr, SocketAddr};

use siphasher::sip::SipHasher13;

use crate::crypto::Token;

/// The secret key of the tuple hash, shared by the shards of one runtime.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct SteerKey(pub [u8; 16]);

impl fmt::Debug for SteerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A secret: logs and panics must not reveal it.
        f.write_str("SteerKey(..)")
    }
}

/// This endpoint is shard `index` of `count`, with the runtime's tuple hash key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Shard {
    index: u16,
    count: u16,
    key: SteerKey,
}

impl Shard {
    /// `None` unless `index < count`.
    pub fn new(index: u16, count: u16, key: SteerKey) -> Option<Shard> {
        (index < count).then_some(Shard { index, count, key })
    }

    pub fn index(self) -> u16 {
        self.index
    }

    pub fn count(self) -> u16 {
        self.count
    }

    pub fn key(self) -> SteerKey {
        self.key
    }

    /// The shard (of `count`) that owns the segments of the connection or subflow
    /// `local` <-> `remote` (seen from this host) under `key`. `count` 0 is taken as 1.
    pub fn of_tuple(key: &SteerKey, local: SocketAddr, remote: SocketAddr, count: u16) -> u16 {
        if count <= 1 {
            return 0;
        }
        // One write of the packed tuple: 12 bytes for IPv4, 36 for IPv6.
        let mut buf = [0u8; 36];
        let mut len = 0;
        for addr in [local, remote] {
            match addr.ip() {
                IpAddr::V4(ip) => {
                    buf[len..len + 4].copy_from_slice(&ip.octets());
                    len += 4;
                }
                IpAddr::V6(ip) => {
                    buf[len..len + 16].copy_from_slice(&ip.octets());
                    len += 16;
                }
            }
            buf[len..len + 2].copy_from_slice(&addr.port().to_be_bytes());
            len += 2;
        }
        let mut hasher = SipHasher13::new_with_key(&key.0);
        hasher.write(&buf[..len]);
        let h = hasher.finish();
        // Multiply-shift maps the hash onto 0..count without the bias of a modulo on
        // the low bits.
        ((u128::from(h) * u128::from(count)) >> 64) as u16
    }

    /// The shard of this one's set that owns the tuple (see [`Shard::of_tuple`]).
    pub fn tuple_owner(self, local: SocketAddr, remote: SocketAddr) -> u16 {
        Shard::of_tuple(&self.key, local, remote, self.count)
    }

    /// The shard (of `count`) that owns the MPTCP connection with this local token,
    /// and so the MP_JOIN SYNs that name it. Tokens are hash output (RFC 8684 §3.2),
    /// so a plain modulo spreads them evenly, and the peer cannot choose ours.
    pub fn of_token(token: Token, count: u16) -> u16 {
        if count <= 1 {
            return 0;
        }
        (token.0 % u32::from(count)) as u16
    }

    pub fn owns_tuple(self, local: SocketAddr, remote: SocketAddr) -> bool {
        self.tuple_owner(local, remote) == self.index
    }

    pub fn owns_token(self, token: Token) -> bool {
        Shard::of_token(token, self.count) == self.index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sa(s: &str) -> SocketAddr {
        s.parse().expect("test address literal")
    }

    const KEY: SteerKey = SteerKey([7; 16]);

    #[test]
    fn new_checks_the_index() {
        assert_eq!(Shard::new(0, 0, KEY), None);
        assert_eq!(Shard::new(2, 2, KEY), None);
        let s = Shard::new(1, 2, KEY).expect("valid");
        assert_eq!((s.index(), s.count()), (1, 2));
    }

    #[test]
    fn one_shard_owns_everything() {
        let (l, r) = (sa("10.0.0.1:80"), sa("10.0.0.2:49152"));
        assert_eq!(Shard::of_tuple(&KEY, l, r, 1), 0);
        assert_eq!(Shard::of_tuple(&KEY, l, r, 0), 0);
        assert_eq!(Shard::of_token(Token(7), 1), 0);
        assert!(Shard::new(0, 1, KEY).expect("valid").owns_tuple(l, r));
    }

    #[test]
    fn consecutive_ports_spread_evenly_over_shards() {
        for (count, key) in [
            (2u16, KEY),
            (2, SteerKey([0; 16])),
            (3, SteerKey(*b"0123456789abcdef")),
            (4, KEY),
            (8, KEY),
        ] {
            for (local, remote) in [
                ("10.77.1.2", "10.99.1.1:5201"),
                ("fd00:77:1::2", "[fd00:99:1::1]:443"),
            ] {
                let mut hits = vec![0u32; usize::from(count)];
                for port in 49_152..49_152 + 4096u16 {
                    let l = SocketAddr::new(local.parse().expect("literal"), port);
                    let s = Shard::of_tuple(&key, l, sa(remote), count);
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
            .map(|i| Shard::of_tuple(&KEY, l, sa(&format!("10.99.1.1:{}", 5000 + i)), 2))
            .collect();
        assert!(owners.contains(&0) && owners.contains(&1), "{owners:?}");
        // Deterministic: the same tuple, the same shard.
        let r = sa("10.99.1.1:5000");
        assert_eq!(
            Shard::of_tuple(&KEY, l, r, 4),
            Shard::of_tuple(&KEY, l, r, 4)
        );
        // Swapping the ends is another tuple (the owner is computed from one host's
        // view only).
        let swapped: Vec<bool> = (0..64u16)
            .map(|p| {
                let (a, b) = (sa(&format!("10.0.0.1:{}", 1000 + p)), sa("10.0.0.2:2000"));
                Shard::of_tuple(&KEY, a, b, 2) != Shard::of_tuple(&KEY, b, a, 2)
            })
            .collect();
        assert!(swapped.contains(&true));
    }

    #[test]
    fn a_sharded_endpoint_picks_ports_and_tokens_it_owns() {
        use crate::endpoint::{Endpoint, EndpointConfig};
        use crate::time::Instant;
        for index in 0..3 {
            let shard = Shard::new(index, 3, KEY).expect("valid");
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
        let s = Shard::new(1, 3, KEY).expect("valid");
        assert!(s.owns_token(Token(4)));
        assert!(!s.owns_token(Token(5)));
        assert_eq!(Shard::of_token(Token(u32::MAX), 2), 1);
    }

    #[test]
    fn another_key_places_tuples_elsewhere() {
        // What an attacker who learnt one key's placement gets under another: about
        // half the tuples (of 2 shards) move, whatever the keys.
        let remote = sa("10.99.1.1:5201");
        let tuples: Vec<SocketAddr> = (0..4096u16)
            .map(|p| SocketAddr::new("10.77.1.2".parse().expect("literal"), 40_000 + p))
            .collect();
        for (a, b) in [
            ([0u8; 16], [1u8; 16]),
            ([7; 16], [8; 16]),
            ([1; 16], [0x80; 16]),
        ] {
            let (a, b) = (SteerKey(a), SteerKey(b));
            let moved = tuples
                .iter()
                .filter(|&&l| {
                    Shard::of_tuple(&a, l, remote, 2) != Shard::of_tuple(&b, l, remote, 2)
                })
                .count();
            assert!(
                moved.abs_diff(2048) < 205,
                "{moved} of 4096 tuples moved between two keys, want about half"
            );
        }
        // The same key, the same placement.
        let k = SteerKey([3; 16]);
        assert!(
            tuples
                .iter()
                .all(|&l| Shard::of_tuple(&k, l, remote, 8) == Shard::of_tuple(&k, l, remote, 8))
        );
    }

    #[test]
    fn the_key_stays_out_of_debug_output() {
        let s = Shard::new(0, 2, SteerKey([0xab; 16])).expect("valid");
        let shown = format!("{s:?}");
        assert!(!shown.contains("171") && !shown.contains("ab"), "{shown}");
    }
}
