//! Cookie codec and the cases that need the endpoint's insides (a forced token
//! collision). End-to-end behaviour is in `tests/endpoint_syncookies.rs`.

use super::*;
use crate::endpoint::{EndpointConfig, SteerKey, SynCookies};
use crate::mptcp::MptcpConfig;
use crate::wire::{IpRepr, Ipv4Repr};

fn tuple() -> FourTuple {
    FourTuple {
        local: "10.0.0.2:80".parse().expect("literal"),
        remote: "10.0.0.1:40000".parse().expect("literal"),
    }
}

fn params(mss_index: u8, ws: Option<u8>, sack: bool, mptcp: CookieMptcp) -> CookieParams {
    CookieParams {
        mss_index,
        window_scale: ws,
        sack_permitted: sack,
        mptcp,
    }
}

#[test]
fn every_parameter_combination_round_trips() {
    let jar = CookieJar::new(&[7; 32]);
    let now = Instant::from_secs(1000);
    let mptcps = [
        CookieMptcp::Plain,
        CookieMptcp::Capable { checksums: false },
        CookieMptcp::Capable { checksums: true },
    ];
    for mss in 0..8u8 {
        for ws in (0..=14u8).map(Some).chain([None]) {
            for sack in [false, true] {
                for mptcp in mptcps {
                    let p = params(mss, ws, sack, mptcp);
                    let isn = SeqNum(0x1234_5678 ^ u32::from(mss));
                    let iss = jar.encode(&tuple(), isn, now, p);
                    assert_eq!(jar.decode(&tuple(), isn, iss, now), Ok(p));
                }
            }
        }
    }
}

#[test]
fn a_cookie_lives_one_to_two_counter_periods() {
    let jar = CookieJar::new(&[7; 32]);
    let p = params(6, Some(7), true, CookieMptcp::Plain);
    let isn = SeqNum(99);
    // Made at the start of counter 10 (640 s).
    let made = Instant::from_secs(640);
    let iss = jar.encode(&tuple(), isn, made, p);
    assert_eq!(
        jar.decode(&tuple(), isn, iss, Instant::from_secs(703)),
        Ok(p)
    );
    assert_eq!(
        jar.decode(&tuple(), isn, iss, Instant::from_secs(767)),
        Ok(p)
    );
    assert_eq!(
        jar.decode(&tuple(), isn, iss, Instant::from_secs(768)),
        Err(CookieError::Expired { age: 2 })
    );
    assert_eq!(
        jar.decode(&tuple(), isn, iss, Instant::from_secs(832)),
        Err(CookieError::Expired { age: 3 })
    );
    // Four periods later the low counter bits match again: the MAC catches it.
    assert_eq!(
        jar.decode(&tuple(), isn, iss, Instant::from_secs(640 + 4 * 64)),
        Err(CookieError::BadMac)
    );
}

#[test]
fn another_tuple_client_isn_secret_or_any_bit_flip_is_rejected() {
    let jar = CookieJar::new(&[7; 32]);
    let now = Instant::from_secs(50);
    let p = params(5, None, false, CookieMptcp::Capable { checksums: true });
    let isn = SeqNum(0xdead_beef);
    let iss = jar.encode(&tuple(), isn, now, p);
    let mut other = tuple();
    other.remote.set_port(40001);
    assert!(jar.decode(&other, isn, iss, now).is_err());
    assert!(jar.decode(&tuple(), isn + 1, iss, now).is_err());
    assert!(
        CookieJar::new(&[8; 32])
            .decode(&tuple(), isn, iss, now)
            .is_err()
    );
    for bit in 0..32 {
        let flipped = SeqNum(iss.0 ^ (1 << bit));
        assert!(
            jar.decode(&tuple(), isn, flipped, now).is_err(),
            "bit {bit} flipped still validates"
        );
    }
}

#[test]
fn the_peer_mss_rounds_down_to_the_table() {
    let syn = |mss: Option<u16>| TcpRepr {
        src_port: 1,
        dst_port: 2,
        seq: SeqNum(1),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            mss,
            window_scale: Some(20),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    let got: Vec<u16> = [
        None,
        Some(10),
        Some(536),
        Some(1459),
        Some(1460),
        Some(9000),
    ]
    .into_iter()
    .map(|m| CookieParams::from_syn(&syn(m), CookieMptcp::Plain).mss())
    .collect();
    assert_eq!(got, vec![536, 64, 536, 1440, 1460, 8940]);
    // A shift above 14 is 14 (RFC 7323 §2.3).
    let p = CookieParams::from_syn(&syn(None), CookieMptcp::Plain);
    assert_eq!(p.window_scale, Some(14));
    assert!(!p.sack_permitted);
}

#[test]
fn the_derived_key_depends_on_both_isns_and_the_tuple() {
    let jar = CookieJar::new(&[1; 32]);
    let k = jar.mptcp_key(&tuple(), SeqNum(1), SeqNum(2), None);
    assert_eq!(k, jar.mptcp_key(&tuple(), SeqNum(1), SeqNum(2), None));
    assert_ne!(k, jar.mptcp_key(&tuple(), SeqNum(1), SeqNum(3), None));
    assert_ne!(k, jar.mptcp_key(&tuple(), SeqNum(2), SeqNum(2), None));
    let mut other = tuple();
    other.local.set_port(81);
    assert_ne!(k, jar.mptcp_key(&other, SeqNum(1), SeqNum(2), None));
}

#[test]
fn a_shard_derives_a_key_whose_token_it_owns_and_finds_it_again() {
    let jar = CookieJar::new(&[3; 32]);
    for count in [2u16, 3, 8] {
        let mut moved = 0;
        for isn in 0..64u32 {
            let unsharded = jar.mptcp_key(&tuple(), SeqNum(isn), SeqNum(9), None);
            for index in 0..count {
                let shard = Shard::new(index, count, SteerKey([5; 16])).expect("valid");
                let key = jar
                    .mptcp_key(&tuple(), SeqNum(isn), SeqNum(9), Some(shard))
                    .expect("one of 64 candidates is owned");
                assert!(shard.owns_token(key.token()), "{shard:?}");
                // Deterministic: the ACK re-derives the SYN/ACK's key.
                assert_eq!(
                    Some(key),
                    jar.mptcp_key(&tuple(), SeqNum(isn), SeqNum(9), Some(shard))
                );
                moved += usize::from(Some(key) != unsharded);
            }
        }
        // Every shard but the unsharded key's owner had to look further.
        assert_eq!(moved, 64 * usize::from(count - 1), "{count} shards");
    }
}

fn ip_packet(tcp: TcpRepr<'static>) -> Vec<u8> {
    let t = tuple();
    let (IpAddr::V4(src), IpAddr::V4(dst)) = (t.remote.ip(), t.local.ip()) else {
        unreachable!("v4 tuple")
    };
    let repr = IpTcpRepr {
        ip: IpRepr::V4(Ipv4Repr {
            src_addr: src,
            dst_addr: dst,
            protocol: 6,
            payload_len: 0,
            ttl: 64,
            dscp: 0,
            ecn: 0,
            ident: 0,
            dont_frag: true,
        }),
        tcp,
    };
    let mut buf = vec![0; 1500];
    let len = repr.emit(&mut buf, true).expect("fits");
    buf.truncate(len);
    buf
}

fn capable_syn(seq: u32) -> TcpRepr<'static> {
    let mut options = TcpOptions {
        mss: Some(1460),
        window_scale: Some(7),
        sack_permitted: true,
        timestamps: Some(Timestamps {
            tsval: 5000,
            tsecr: 0,
        }),
        ..TcpOptions::default()
    };
    options.mptcp.push(MptcpOption::MpCapable(MpCapable {
        version: 1,
        flags: CapableFlags::HMAC_SHA256,
        keys: MpCapableKeys::None,
    }));
    TcpRepr {
        src_port: tuple().remote.port(),
        dst_port: tuple().local.port(),
        seq: SeqNum(seq),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65_535,
        urgent: 0,
        options,
        payload: &[],
    }
}

/// Feeds a SYN, returns the cookie SYN/ACK the server sent.
fn syn_ack_for(server: &mut Endpoint, now: Instant, syn: TcpRepr<'static>) -> TcpRepr<'static> {
    server
        .handle_packet(now, &ip_packet(syn))
        .expect("SYN answered");
    let mut buf = [0u8; 1600];
    let len = server.poll_transmit(now, &mut buf).expect("a SYN/ACK");
    assert_eq!(server.poll_transmit(now, &mut buf), None);
    let parsed = IpTcpRepr::parse(&buf[..len], true).expect("valid");
    let mut tcp = parsed.tcp;
    let options = core::mem::take(&mut tcp.options.mptcp);
    let mut owned = TcpRepr {
        options: TcpOptions {
            mptcp: Default::default(),
            ..tcp.options
        },
        payload: &[],
        ..tcp
    };
    for o in options {
        if let MptcpOption::MpCapable(c) = o {
            owned.options.mptcp.push(MptcpOption::MpCapable(c));
        }
    }
    owned
}

fn server() -> Endpoint {
    let config = EndpointConfig {
        mptcp: Some(MptcpConfig::default()),
        syn_cookies: SynCookies::Always,
        ..EndpointConfig::default()
    };
    let mut server = Endpoint::new(config, [0x5e; 32]);
    server.listen(tuple().local).expect("free");
    server
}

fn third_ack(syn_ack: &TcpRepr<'_>, client_key: MptcpKey) -> TcpRepr<'static> {
    let server_key = syn_ack
        .options
        .mptcp
        .iter()
        .find_map(|o| match o {
            MptcpOption::MpCapable(MpCapable {
                keys: MpCapableKeys::Sender { sender },
                ..
            }) => Some(*sender),
            _ => None,
        })
        .expect("MP_CAPABLE with the server's key");
    let mut options = TcpOptions {
        timestamps: syn_ack.options.timestamps.map(|ts| Timestamps {
            tsval: 5001,
            tsecr: ts.tsval,
        }),
        ..TcpOptions::default()
    };
    options.mptcp.push(MptcpOption::MpCapable(MpCapable {
        version: 1,
        flags: CapableFlags::HMAC_SHA256,
        keys: MpCapableKeys::Both {
            sender: client_key,
            receiver: server_key,
        },
    }));
    TcpRepr {
        src_port: syn_ack.dst_port,
        dst_port: syn_ack.src_port,
        seq: syn_ack.ack,
        ack: syn_ack.seq + 1,
        flags: TcpFlags::ACK,
        window: 1000,
        urgent: 0,
        options,
        payload: &[],
    }
}

#[test]
fn a_token_taken_between_syn_ack_and_third_ack_resets_with_transient_mp_tcprst() {
    let mut server = server();
    let now = Instant::from_secs(10);
    let syn_ack = syn_ack_for(&mut server, now, capable_syn(1000));
    assert_eq!(server.connection_count(), 0);
    let ack = third_ack(&syn_ack, MptcpKey(0x1111));
    let key = server
        .cookies
        .mptcp_key(&tuple(), SeqNum(1000), syn_ack.seq, None)
        .expect("unsharded: the first candidate");
    // Force the collision: another live connection now owns the cookie's token.
    let other = server
        .connect_mptcp(
            now,
            "10.0.0.2:0".parse().expect("literal"),
            "10.0.0.7:443".parse().expect("literal"),
            &[],
        )
        .expect("connect");
    let old_token = server
        .tokens
        .iter()
        .find(|(_, k)| **k == other.0)
        .map(|(t, _)| *t);
    server.tokens.remove(&old_token.expect("its token"));
    server.tokens.insert(key.token(), other.0);
    let mut buf = [0u8; 1600];
    while server.poll_transmit(now, &mut buf).is_some() {}

    let result = server.handle_packet(now, &ip_packet(ack.clone()));
    assert_eq!(result, Err(DropReason::TokenCollision));
    assert_eq!(server.connection_count(), 1, "only the other connection");
    assert_eq!(server.stats().dropped(DropReason::TokenCollision), 1);
    let len = server.poll_transmit(now, &mut buf).expect("a RST");
    let rst = IpTcpRepr::parse(&buf[..len], true).expect("valid");
    assert!(rst.tcp.flags.rst());
    assert_eq!(rst.tcp.seq, ack.ack);
    assert_eq!(
        rst.tcp.options.mptcp.as_slice(),
        &[MptcpOption::MpTcpRst(MpTcpRst {
            flags: TcpRstFlags::TRANSIENT,
            reason: TcpRstReason::MPTCP_ERROR,
        })]
    );
    // The token's owner is untouched.
    assert_eq!(server.tokens.get(&key.token()), Some(&other.0));
}

#[test]
fn a_syn_whose_cookie_key_token_is_taken_gets_plain_tcp() {
    let mut probe = server();
    let mut server = server();
    let now = Instant::from_secs(10);
    // Learn the key the cookie would give (same secret), then take its token first.
    let syn_ack = syn_ack_for(&mut probe, now, capable_syn(77));
    let key = probe
        .cookies
        .mptcp_key(&tuple(), SeqNum(77), syn_ack.seq, None)
        .expect("unsharded: the first candidate");
    let other = server
        .connect_mptcp(
            now,
            "10.0.0.2:0".parse().expect("literal"),
            "10.0.0.7:443".parse().expect("literal"),
            &[],
        )
        .expect("connect");
    server.tokens.insert(key.token(), other.0);
    let mut buf = [0u8; 1600];
    while server.poll_transmit(now, &mut buf).is_some() {}
    let plain = syn_ack_for(&mut server, now, capable_syn(77));
    assert!(plain.options.mptcp.is_empty(), "{plain:?}");
    assert_eq!(server.stats().syn_cookie_token_fallbacks, 1);
    // Its third ACK (no MPTCP: the client fell back) rebuilds plain TCP.
    let ack = TcpRepr {
        src_port: plain.dst_port,
        dst_port: plain.src_port,
        seq: plain.ack,
        ack: plain.seq + 1,
        flags: TcpFlags::ACK,
        window: 1000,
        urgent: 0,
        options: TcpOptions {
            timestamps: plain.options.timestamps.map(|ts| Timestamps {
                tsval: 5001,
                tsecr: ts.tsval,
            }),
            ..TcpOptions::default()
        },
        payload: &[],
    };
    assert_eq!(server.handle_packet(now, &ip_packet(ack)), Ok(()));
    assert_eq!(server.stats().syn_cookies_accepted, 1);
    assert_eq!(server.connection_count(), 2);
}

#[test]
fn a_third_ack_echoing_another_server_key_is_rejected() {
    let mut server = server();
    let now = Instant::from_secs(10);
    let syn_ack = syn_ack_for(&mut server, now, capable_syn(1000));
    let mut ack = third_ack(&syn_ack, MptcpKey(0x1111));
    if let Some(MptcpOption::MpCapable(MpCapable {
        keys: MpCapableKeys::Both { receiver, .. },
        ..
    })) = ack.options.mptcp.first_mut()
    {
        receiver.0 ^= 1;
    }
    assert_eq!(
        server.handle_packet(now, &ip_packet(ack)),
        Err(DropReason::InvalidCookie)
    );
    assert_eq!(server.connection_count(), 0);
}
