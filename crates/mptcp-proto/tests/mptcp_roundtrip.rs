//! Property tests for the MPTCP option codec: emit→parse round trips for every subtype,
//! form and flag combination; parse never panics on arbitrary bytes; parse→emit is
//! byte-identical on valid input whose reserved bits are zero (the codec does not keep
//! reserved bits: it ignores them on parse and writes zeros).

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use mptcp_proto::crypto::{AddAddrHmac, JoinHmac, JoinTruncatedHmac, MptcpKey, Nonce, Token};
use mptcp_proto::wire::mptcp::{
    AddAddr, AddrId, AddrIdList, CapableFlags, DsnWire, Dss, DssMapping, Experimental, MpCapable,
    MpCapableKeys, MpFail, MpFastclose, MpJoin, MpPrio, MpTcpRst, MptcpOption, RemoveAddr,
    TcpRstFlags, TcpRstReason,
};
use mptcp_proto::{Dsn, SeqNum};
use proptest::collection::vec;
use proptest::prelude::*;

/// A generated option; the borrowing subtypes own their bytes here.
#[derive(Clone, Debug)]
enum Generated {
    Plain(MptcpOption<'static>),
    Remove(Vec<u8>),
    Experimental(u8, Vec<u8>),
}

impl Generated {
    fn option(&self) -> MptcpOption<'_> {
        match self {
            Generated::Plain(o) => o.clone(),
            Generated::Remove(ids) => MptcpOption::RemoveAddr(RemoveAddr {
                ids: AddrIdList::new(ids).expect("strategy makes 1..=37 ids"),
            }),
            Generated::Experimental(nibble, data) => MptcpOption::Experimental(
                Experimental::new(*nibble, data).expect("strategy keeps the limits"),
            ),
        }
    }
}

fn key() -> impl Strategy<Value = MptcpKey> {
    any::<u64>().prop_map(MptcpKey)
}

fn dsn_wire() -> impl Strategy<Value = DsnWire> {
    prop_oneof![
        any::<u32>().prop_map(DsnWire::Short),
        any::<u64>().prop_map(|v| DsnWire::Long(Dsn(v))),
    ]
}

fn mp_capable() -> impl Strategy<Value = MptcpOption<'static>> {
    let keys = prop_oneof![
        Just(MpCapableKeys::None),
        key().prop_map(|sender| MpCapableKeys::Sender { sender }),
        (key(), key()).prop_map(|(sender, receiver)| MpCapableKeys::Both { sender, receiver }),
        (key(), key(), any::<u16>(), any::<Option<u16>>()).prop_map(
            |(sender, receiver, data_len, checksum)| MpCapableKeys::BothWithData {
                sender,
                receiver,
                data_len,
                checksum,
            }
        ),
    ];
    (0u8..16, any::<u8>(), keys).prop_map(|(version, flags, keys)| {
        MptcpOption::MpCapable(MpCapable {
            version,
            flags: CapableFlags(flags),
            keys,
        })
    })
}

fn mp_join() -> impl Strategy<Value = MptcpOption<'static>> {
    prop_oneof![
        (any::<bool>(), any::<u8>(), any::<u32>(), any::<u32>()).prop_map(
            |(backup, id, token, nonce)| MpJoin::Syn {
                backup,
                addr_id: AddrId(id),
                token: Token(token),
                nonce: Nonce(nonce),
            }
        ),
        (any::<bool>(), any::<u8>(), any::<[u8; 8]>(), any::<u32>()).prop_map(
            |(backup, id, hmac, nonce)| MpJoin::SynAck {
                backup,
                addr_id: AddrId(id),
                hmac: JoinTruncatedHmac(hmac),
                nonce: Nonce(nonce),
            }
        ),
        any::<[u8; 20]>().prop_map(|hmac| MpJoin::Ack {
            hmac: JoinHmac(hmac)
        }),
    ]
    .prop_map(MptcpOption::MpJoin)
}

fn dss() -> impl Strategy<Value = MptcpOption<'static>> {
    let mapping = (dsn_wire(), any::<u32>(), any::<u16>(), any::<Option<u16>>()).prop_map(
        |(dsn, ssn, data_len, checksum)| DssMapping {
            dsn,
            subflow_seq: SeqNum(ssn),
            data_len,
            checksum,
        },
    );
    (
        proptest::option::of(dsn_wire()),
        proptest::option::of(mapping),
        any::<bool>(),
    )
        .prop_map(|(data_ack, mapping, data_fin)| {
            MptcpOption::Dss(Dss {
                data_ack,
                mapping,
                data_fin,
            })
        })
}

fn ip() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        any::<[u8; 4]>().prop_map(|o| IpAddr::V4(Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| IpAddr::V6(Ipv6Addr::from(o))),
    ]
}

fn add_addr() -> impl Strategy<Value = MptcpOption<'static>> {
    (
        any::<u8>(),
        ip(),
        any::<Option<u16>>(),
        any::<Option<[u8; 8]>>(),
    )
        .prop_map(|(id, addr, port, hmac)| {
            MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(id),
                addr,
                port,
                hmac: hmac.map(AddAddrHmac),
            })
        })
}

fn others() -> impl Strategy<Value = MptcpOption<'static>> {
    prop_oneof![
        (any::<bool>(), any::<Option<u8>>()).prop_map(|(backup, id)| MptcpOption::MpPrio(MpPrio {
            backup,
            addr_id: id.map(AddrId),
        })),
        any::<u64>().prop_map(|v| MptcpOption::MpFail(MpFail { dsn: Dsn(v) })),
        key().prop_map(|receiver_key| MptcpOption::MpFastclose(MpFastclose { receiver_key })),
        (0u8..16, any::<u8>()).prop_map(|(flags, reason)| MptcpOption::MpTcpRst(MpTcpRst {
            flags: TcpRstFlags(flags),
            reason: TcpRstReason(reason),
        })),
    ]
}

fn any_option() -> impl Strategy<Value = Generated> {
    prop_oneof![
        mp_capable().prop_map(Generated::Plain),
        mp_join().prop_map(Generated::Plain),
        dss().prop_map(Generated::Plain),
        add_addr().prop_map(Generated::Plain),
        others().prop_map(Generated::Plain),
        vec(any::<u8>(), 1..=37).prop_map(Generated::Remove),
        (0u8..16, vec(any::<u8>(), 0..=37)).prop_map(|(n, d)| Generated::Experimental(n, d)),
    ]
}

/// Valid wire bytes built by hand (not by our emitter), reserved bits zero: one
/// random length among each subtype's legal ones, random contents, and the bits that
/// must agree with the length set to agree.
fn valid_wire() -> impl Strategy<Value = Vec<u8>> {
    let body = vec(any::<u8>(), 40);
    (0usize..10, any::<prop::sample::Index>(), any::<u8>(), body).prop_map(
        |(which, pick, low, mut b)| {
            let choose = |lens: &[usize]| lens[pick.index(lens.len())];
            let (len, byte2, byte3) = match which {
                // MP_CAPABLE: version nibble and flags byte are all meaningful.
                0 => (choose(&[4, 12, 20, 22, 24]), low & 0x0f, None),
                // MP_JOIN: B bit in SYN and SYN/ACK; the ACK has 12 reserved bits.
                1 => match choose(&[12, 16, 24]) {
                    24 => (24, 0x10, Some(0)),
                    len => (len, 0x10 | (low & 0x01), None),
                },
                // DSS: a canonical flag byte and the length it implies.
                2 => {
                    let ack = [0u8, 0x01, 0x03][pick.index(3)];
                    let map = [0u8, 0x04, 0x0c][(low as usize) % 3];
                    let fin = low & 0x10;
                    let mut len =
                        4 + match ack {
                            0 => 0,
                            1 => 4,
                            _ => 8,
                        } + match map {
                            0 => 0,
                            4 => 10,
                            _ => 14,
                        };
                    if map != 0 && low & 0x80 != 0 {
                        len += 2; // checksum
                    }
                    (len, 0x20, Some(ack | map | fin))
                }
                // ADD_ADDR: E = 1 exactly for the HMAC-less lengths.
                3 => {
                    let len = choose(&[8, 10, 16, 18, 20, 22, 28, 30]);
                    let echo = u8::from(matches!(len, 8 | 10 | 20 | 22));
                    (len, 0x30 | echo, None)
                }
                4 => (4 + pick.index(37), 0x40, None),
                5 => (choose(&[3, 4]), 0x50 | (low & 0x01), None),
                6 => (12, 0x60, Some(0)),
                7 => (12, 0x70, Some(0)),
                8 => (4, 0x80 | (low & 0x0f), None),
                _ => (3 + pick.index(38), 0xf0 | (low & 0x0f), None),
            };
            b.truncate(len);
            b[0] = 30;
            b[1] = len as u8;
            b[2] = byte2;
            if let Some(byte3) = byte3 {
                b[3] = byte3;
            }
            b
        },
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2048))]

    #[test]
    fn emit_then_parse_round_trips(generated in any_option()) {
        let option = generated.option();
        let mut buf = [0xeeu8; 300];
        let len = option.emit(&mut buf);
        prop_assert_eq!(len, option.wire_len());
        prop_assert_eq!(buf[0], 30);
        prop_assert_eq!(usize::from(buf[1]), len);
        prop_assert_eq!(buf[2] >> 4, option.subtype());
        prop_assert_eq!(buf[len], 0xee, "emit wrote past wire_len");
        let parsed = MptcpOption::parse(&buf[..len]);
        prop_assert_eq!(parsed, Ok(option));
    }

    #[test]
    fn parse_never_panics_and_what_parses_re_emits(mut bytes in vec(any::<u8>(), 0..=60)) {
        if !bytes.is_empty() {
            bytes[0] = 30;
        }
        if bytes.len() >= 2 {
            bytes[1] = bytes.len() as u8;
        }
        if let Ok(option) = MptcpOption::parse(&bytes) {
            prop_assert_eq!(option.wire_len(), bytes.len());
            let mut buf = [0u8; 64];
            let len = option.emit(&mut buf);
            prop_assert_eq!(MptcpOption::parse(&buf[..len]), Ok(option));
        }
    }

    #[test]
    fn parse_never_panics_on_a_wrong_length_byte(bytes in vec(any::<u8>(), 0..=60)) {
        let _ = MptcpOption::parse(&bytes);
    }

    #[test]
    fn parse_then_emit_is_byte_identical(bytes in valid_wire()) {
        let option = MptcpOption::parse(&bytes);
        prop_assert!(option.is_ok(), "{:02x?} did not parse: {:?}", bytes, option);
        let option = option.expect("checked");
        let mut buf = [0u8; 64];
        let len = option.emit(&mut buf);
        prop_assert_eq!(&buf[..len], &bytes[..]);
    }
}

#[test]
fn linux_mp_capable_syn_parses() {
    // A kernel MPTCP client's SYN carried exactly these four bytes (CRATES.md pitfall 2).
    assert_eq!(
        MptcpOption::parse(&[0x1e, 0x04, 0x01, 0x01]),
        Ok(MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags: CapableFlags::HMAC_SHA256,
            keys: MpCapableKeys::None,
        }))
    );
}

#[test]
fn every_form_has_its_documented_length() {
    let key = MptcpKey(1);
    let cases: [(MptcpOption<'static>, usize); 12] = [
        (
            MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags: CapableFlags::HMAC_SHA256,
                keys: MpCapableKeys::Sender { sender: key },
            }),
            12,
        ),
        (
            MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags: CapableFlags::HMAC_SHA256,
                keys: MpCapableKeys::Both {
                    sender: key,
                    receiver: key,
                },
            }),
            20,
        ),
        (
            MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags: CapableFlags::HMAC_SHA256,
                keys: MpCapableKeys::BothWithData {
                    sender: key,
                    receiver: key,
                    data_len: 1,
                    checksum: None,
                },
            }),
            22,
        ),
        (
            MptcpOption::MpCapable(MpCapable {
                version: 1,
                flags: CapableFlags::HMAC_SHA256,
                keys: MpCapableKeys::BothWithData {
                    sender: key,
                    receiver: key,
                    data_len: 1,
                    checksum: Some(0),
                },
            }),
            24,
        ),
        (
            MptcpOption::MpJoin(MpJoin::Ack {
                hmac: JoinHmac([0; 20]),
            }),
            24,
        ),
        (
            MptcpOption::Dss(Dss {
                data_ack: Some(DsnWire::Long(Dsn(1))),
                mapping: Some(DssMapping {
                    dsn: DsnWire::Long(Dsn(1)),
                    subflow_seq: SeqNum(1),
                    data_len: 0,
                    checksum: Some(0),
                }),
                data_fin: false,
            }),
            28,
        ),
        (
            MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(1),
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: None,
                hmac: None,
            }),
            8,
        ),
        (
            MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(1),
                addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
                port: Some(1),
                hmac: Some(AddAddrHmac([0; 8])),
            }),
            18,
        ),
        (
            MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(1),
                addr: IpAddr::V6(Ipv6Addr::LOCALHOST),
                port: Some(1),
                hmac: Some(AddAddrHmac([0; 8])),
            }),
            30,
        ),
        (
            MptcpOption::MpPrio(MpPrio {
                backup: true,
                addr_id: None,
            }),
            3,
        ),
        (MptcpOption::MpFail(MpFail { dsn: Dsn(5) }), 12),
        (
            MptcpOption::MpTcpRst(MpTcpRst {
                flags: TcpRstFlags::TRANSIENT,
                reason: TcpRstReason::LACK_OF_RESOURCES,
            }),
            4,
        ),
    ];
    for (option, len) in cases {
        assert_eq!(option.wire_len(), len, "{option:?}");
    }
}

#[test]
fn experimental_and_remove_addr_constructors_enforce_the_length_byte() {
    assert!(AddrIdList::new(&[]).is_none());
    assert!(AddrIdList::new(&[0; 253]).is_none());
    assert!(AddrIdList::new(&[0; 252]).is_some());
    assert!(Experimental::new(0x10, &[]).is_none());
    assert!(Experimental::new(0xf, &[0; 253]).is_none());
    let big = [7u8; 252];
    let option = MptcpOption::Experimental(Experimental::new(0xa, &big).expect("fits"));
    let mut buf = [0u8; 255];
    assert_eq!(option.emit(&mut buf), 255);
    assert_eq!(buf[1], 255);
    assert_eq!(MptcpOption::parse(&buf), Ok(option));
}
