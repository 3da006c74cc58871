//! Steering: which worker owns a packet read from the TUN, computed from the packet
//! alone (the rules are in `mptcp_proto::endpoint::Shard`), plus the one piece of
//! shared state, the subflows peers opened with MP_JOIN on tuples that hash to another
//! worker than the connection's.
//!
//! The owner of a segment is the hash of its 4-tuple; an MP_JOIN SYN's owner is the
//! token it names. A worker that accepts a join on a tuple another worker would own
//! records the tuple in [`JoinTable`] before the endpoint answers the SYN, so the
//! peer's next segment on that tuple (which the answer provokes) is steered right,
//! whatever queue it lands on.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;

use arc_swap::ArcSwap;
use mptcp_proto::crypto::Token;
use mptcp_proto::endpoint::Shard;
#[cfg(test)]
use mptcp_proto::endpoint::SteerKey;
use mptcp_proto::wire::Ipv6Packet;
use mptcp_proto::wire::ipv6::IPV6_HEADER_LEN;

/// What steering needs from a packet: its tuple from our side, and the token of an
/// MP_JOIN SYN.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Steer {
    /// Our end (the packet's destination).
    pub(crate) local: SocketAddr,
    /// The peer's end (its source).
    pub(crate) remote: SocketAddr,
    /// Set for a SYN (without ACK) carrying MP_JOIN.
    pub(crate) join_token: Option<Token>,
}

/// MPTCP option kind (RFC 8684 §3) and the MP_JOIN subtype.
const MPTCP_KIND: u8 = 30;
const MP_JOIN: u8 = 1;
/// Length of MP_JOIN on a SYN (RFC 8684 §3.2, Figure 5).
const MP_JOIN_SYN_LEN: u8 = 12;

/// Parses the IP and TCP headers far enough to steer; `None` for anything that is not
/// TCP over IPv4 or IPv6 (the receiving worker's endpoint drops and counts those).
pub(crate) fn parse(packet: &[u8]) -> Option<Steer> {
    let (src, dst, tcp) = match packet.first()? >> 4 {
        4 => {
            let ihl = usize::from(packet[0] & 0x0f) * 4;
            if ihl < 20 || packet.len() < ihl || packet[9] != 6 {
                return None;
            }
            let src = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[12..16]).ok()?);
            let dst = Ipv4Addr::from(<[u8; 4]>::try_from(&packet[16..20]).ok()?);
            (IpAddr::V4(src), IpAddr::V4(dst), &packet[ihl..])
        }
        6 => {
            // Extension headers are skipped as the endpoint skips them, so both agree
            // on which packets are TCP.
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let upper = ip.upper_layer().ok()?;
            if upper.protocol != 6 {
                return None;
            }
            let (src, dst) = (ip.src_addr(), ip.dst_addr());
            let start = IPV6_HEADER_LEN + upper.offset;
            (IpAddr::V6(src), IpAddr::V6(dst), packet.get(start..)?)
        }
        _ => return None,
    };
    if tcp.len() < 20 {
        return None;
    }
    let sport = u16::from_be_bytes([tcp[0], tcp[1]]);
    let dport = u16::from_be_bytes([tcp[2], tcp[3]]);
    let flags = tcp[13];
    let (syn, ack) = (flags & 0x02 != 0, flags & 0x10 != 0);
    let join_token = if syn && !ack {
        let header = (usize::from(tcp[12] >> 4) * 4).min(tcp.len());
        join_token(tcp.get(20..header).unwrap_or(&[]))
    } else {
        None
    };
    Some(Steer {
        local: SocketAddr::new(dst, dport),
        remote: SocketAddr::new(src, sport),
        join_token,
    })
}

/// The receiver's token of an MP_JOIN in a SYN's options.
fn join_token(mut options: &[u8]) -> Option<Token> {
    while let Some(&kind) = options.first() {
        match kind {
            0 => return None,
            1 => options = &options[1..],
            _ => {
                let len = usize::from(*options.get(1)?);
                if len < 2 || len > options.len() {
                    return None;
                }
                if kind == MPTCP_KIND
                    && len == usize::from(MP_JOIN_SYN_LEN)
                    && options[2] >> 4 == MP_JOIN
                {
                    let t = <[u8; 4]>::try_from(&options[4..8]).ok()?;
                    return Some(Token(u32::from_be_bytes(t)));
                }
                options = &options[len..];
            }
        }
    }
    None
}

/// Tuples of peer-opened subflows, by the worker that owns their connection, when
/// that is not the worker their hash names. Every worker reads it for every packet
/// (an atomic load, no lock); it is rewritten whole on the rare change.
#[derive(Debug, Default)]
pub(crate) struct JoinTable {
    map: ArcSwap<HashMap<(SocketAddr, SocketAddr), u16>>,
}

impl JoinTable {
    pub(crate) fn get(&self, local: SocketAddr, remote: SocketAddr) -> Option<u16> {
        let map = self.map.load();
        if map.is_empty() {
            return None;
        }
        map.get(&(local, remote)).copied()
    }

    pub(crate) fn insert(&self, local: SocketAddr, remote: SocketAddr, worker: u16) {
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.insert((local, remote), worker);
            m
        });
    }

    /// Forgets the tuples of `worker` for which `keep` says no.
    pub(crate) fn retain(&self, worker: u16, mut keep: impl FnMut(SocketAddr, SocketAddr) -> bool) {
        let map = self.map.load();
        if !map.iter().any(|(&(l, r), &w)| w == worker && !keep(l, r)) {
            return;
        }
        self.map.rcu(|m| {
            let mut m = HashMap::clone(m);
            m.retain(|&(l, r), w| *w != worker || keep(l, r));
            m
        });
    }

    /// The tuples `worker` recorded.
    pub(crate) fn of_worker(&self, worker: u16) -> Vec<(SocketAddr, SocketAddr)> {
        self.map
            .load()
            .iter()
            .filter(|(_, w)| **w == worker)
            .map(|(&t, _)| t)
            .collect()
    }
}

/// One worker's view of the steering rules.
#[derive(Clone, Debug)]
pub(crate) struct Steering {
    pub(crate) shard: Shard,
    pub(crate) joins: Arc<JoinTable>,
}

impl Steering {
    /// The worker that owns `s`.
    pub(crate) fn owner(&self, s: &Steer) -> u16 {
        let count = self.shard.count();
        if let Some(token) = s.join_token {
            return Shard::of_token(token, count);
        }
        self.joins
            .get(s.local, s.remote)
            .unwrap_or_else(|| self.shard.tuple_owner(s.local, s.remote))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP packet with the given flags and options (already padded to a
    /// multiple of 4).
    fn v4(src: &str, dst: &str, flags: u8, options: &[u8]) -> Vec<u8> {
        let src: SocketAddr = src.parse().expect("literal");
        let dst: SocketAddr = dst.parse().expect("literal");
        let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
            panic!("IPv4 literals");
        };
        let mut p = vec![0u8; 40 + options.len()];
        p[0] = 0x45;
        p[9] = 6;
        p[12..16].copy_from_slice(&s.octets());
        p[16..20].copy_from_slice(&d.octets());
        p[20..22].copy_from_slice(&src.port().to_be_bytes());
        p[22..24].copy_from_slice(&dst.port().to_be_bytes());
        p[32] = (((20 + options.len()) / 4) << 4) as u8;
        p[33] = flags;
        p[40..].copy_from_slice(options);
        p
    }

    fn join_option(token: u32) -> [u8; 12] {
        let mut o = [0u8; 12];
        o[0] = MPTCP_KIND;
        o[1] = 12;
        o[2] = MP_JOIN << 4;
        o[4..8].copy_from_slice(&token.to_be_bytes());
        o
    }

    #[test]
    fn parse_takes_our_side_as_local_and_finds_join_tokens() {
        let mut opts = vec![1, 1, 2, 4, 0x05, 0xb4, 1, 1];
        opts.extend_from_slice(&join_option(0xdead_beef));
        let syn = v4("10.99.1.1:40000", "10.77.2.2:5201", 0x02, &opts);
        let s = parse(&syn).expect("TCP");
        assert_eq!(s.local, "10.77.2.2:5201".parse().expect("literal"));
        assert_eq!(s.remote, "10.99.1.1:40000".parse().expect("literal"));
        assert_eq!(s.join_token, Some(Token(0xdead_beef)));
        // The SYN/ACK of a join carries another MP_JOIN form: no token.
        let syn_ack = v4("10.99.1.1:40000", "10.77.2.2:5201", 0x12, &opts);
        assert_eq!(parse(&syn_ack).expect("TCP").join_token, None);
        // MP_CAPABLE (subtype 0) is not a join.
        let mut capable = join_option(1);
        capable[2] = 0;
        assert_eq!(
            parse(&v4("10.99.1.1:1", "10.77.1.2:2", 0x02, &capable))
                .expect("TCP")
                .join_token,
            None
        );
        // Not TCP, truncated, garbage options: no panic, no token.
        let mut udp = syn.clone();
        udp[9] = 17;
        assert_eq!(parse(&udp), None);
        assert_eq!(parse(&syn[..30]), None);
        let bad = v4("10.99.1.1:1", "10.77.1.2:2", 0x02, &[30, 40, 0, 0]);
        assert_eq!(parse(&bad).expect("TCP").join_token, None);
        assert_eq!(parse(&[]), None);
    }

    #[test]
    fn ipv6_extension_headers_are_skipped() {
        let v4p = v4("10.99.1.1:40000", "10.77.2.2:5201", 0x02, &join_option(9));
        let tcp = &v4p[20..];
        let mut p = vec![0u8; 40 + 8];
        p[0] = 0x60;
        p[4..6].copy_from_slice(&((8 + tcp.len()) as u16).to_be_bytes());
        p[6] = 60; // Destination Options, 8 bytes, then TCP
        p[8..24].copy_from_slice(
            &"fd00:99:1::1"
                .parse::<std::net::Ipv6Addr>()
                .expect("literal")
                .octets(),
        );
        p[24..40].copy_from_slice(
            &"fd00:77:1::2"
                .parse::<std::net::Ipv6Addr>()
                .expect("literal")
                .octets(),
        );
        p[40] = 6;
        p.extend_from_slice(tcp);
        let s = parse(&p).expect("TCP behind an extension header");
        assert_eq!(s.local, "[fd00:77:1::2]:5201".parse().expect("literal"));
        assert_eq!(s.remote, "[fd00:99:1::1]:40000".parse().expect("literal"));
        assert_eq!(s.join_token, Some(Token(9)));
        // A fragment header: not for steering.
        p[6] = 44;
        assert_eq!(parse(&p), None);
    }

    #[test]
    fn owner_is_the_token_for_join_syns_the_table_then_the_tuple() {
        let joins = Arc::new(JoinTable::default());
        let steering = Steering {
            shard: Shard::new(0, 2, SteerKey([9; 16])).expect("valid"),
            joins: Arc::clone(&joins),
        };
        let join = parse(&v4(
            "10.99.1.1:40000",
            "10.77.2.2:5201",
            0x02,
            &join_option(7),
        ))
        .expect("TCP");
        assert_eq!(steering.owner(&join), 1);
        let data = Steer {
            join_token: None,
            ..join
        };
        let hashed = steering.shard.tuple_owner(data.local, data.remote);
        assert_eq!(steering.owner(&data), hashed);
        joins.insert(data.local, data.remote, 1 - hashed);
        assert_eq!(steering.owner(&data), 1 - hashed);
        assert_eq!(joins.of_worker(1 - hashed), vec![(data.local, data.remote)]);
        joins.retain(1 - hashed, |_, _| false);
        assert_eq!(steering.owner(&data), hashed);
    }
}
