//! tshark as an independent oracle for the MPTCP option codec and crypto: we build
//! packets with our own emitter and HMAC/checksum code, write a pcap, and check that
//! Wireshark's dissector reads back the values we meant, and that its own MPTCP
//! analysis (token and IDSN from the keys, joining a subflow to its connection by token)
//! agrees with our crypto.
//!
//! Skips (with a message) when tshark is absent, unless the environment variable CI is
//! set, in which case a missing tshark fails the test.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::process::Command;

use mptcp_proto::crypto::{
    DssChecksum, MptcpKey, Nonce, add_addr_hmac, join_ack_hmac, join_synack_hmac,
};
use mptcp_proto::wire::checksum::Checksum;
use mptcp_proto::wire::mptcp::{
    AddAddr, AddrId, AddrIdList, CapableFlags, DsnWire, Dss, DssMapping, MpCapable, MpCapableKeys,
    MpFail, MpFastclose, MpJoin, MpPrio, MpTcpRst, MptcpOption, RemoveAddr, TcpRstFlags,
    TcpRstReason,
};
use mptcp_proto::{Dsn, SeqNum};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};

const SYN: u8 = 0x02;
const RST: u8 = 0x04;
const PSH: u8 = 0x08;
const ACK: u8 = 0x10;

const KEY_C: MptcpKey = MptcpKey(0x9a3c_5e7f_1b2d_4c6e);
const KEY_S: MptcpKey = MptcpKey(0x0f1e_2d3c_4b5a_6978);
const NONCE_C: Nonce = Nonce(0x1234_5678);
const NONCE_S: Nonce = Nonce(0x9abc_def0);

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const CLIENT2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const SERVER2: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 3);

/// One TCP segment to put in the capture. The IPv4/TCP encoding is a tiny local builder
/// (the crate's IP/TCP emitter is written in parallel); only the MPTCP options are ours
/// under test.
struct Segment<'a> {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    ack: u32,
    flags: u8,
    options: Vec<MptcpOption<'a>>,
    payload: &'a [u8],
}

fn ipv4_tcp(seg: &Segment<'_>) -> Vec<u8> {
    let mut opts = Vec::new();
    for option in &seg.options {
        let mut buf = [0u8; 40];
        let n = option.emit(&mut buf);
        opts.extend_from_slice(&buf[..n]);
    }
    while opts.len() % 4 != 0 {
        opts.push(1); // NOP
    }
    assert!(opts.len() <= 40, "options do not fit a TCP header");
    let tcp_len = 20 + opts.len() + seg.payload.len();
    let mut tcp = Vec::with_capacity(tcp_len);
    tcp.extend_from_slice(&seg.src.1.to_be_bytes());
    tcp.extend_from_slice(&seg.dst.1.to_be_bytes());
    tcp.extend_from_slice(&seg.seq.to_be_bytes());
    tcp.extend_from_slice(&seg.ack.to_be_bytes());
    tcp.push((((20 + opts.len()) / 4) as u8) << 4);
    tcp.push(seg.flags);
    tcp.extend_from_slice(&65535u16.to_be_bytes());
    tcp.extend_from_slice(&[0, 0, 0, 0]); // checksum, urgent pointer
    tcp.extend_from_slice(&opts);
    tcp.extend_from_slice(seg.payload);
    let sum = Checksum::new()
        .add_bytes(&seg.src.0.octets())
        .add_bytes(&seg.dst.0.octets())
        .add_u16(6)
        .add_u16(tcp_len as u16)
        .add_bytes(&tcp)
        .finish();
    tcp[16..18].copy_from_slice(&sum.to_be_bytes());

    let mut ip = vec![0x45, 0];
    ip.extend_from_slice(&((20 + tcp_len) as u16).to_be_bytes());
    ip.extend_from_slice(&[0, 0, 0x40, 0, 64, 6, 0, 0]);
    ip.extend_from_slice(&seg.src.0.octets());
    ip.extend_from_slice(&seg.dst.0.octets());
    let sum = Checksum::new().add_bytes(&ip).finish();
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    ip.extend_from_slice(&tcp);
    ip
}

fn write_pcap(path: &Path, segments: &[Segment<'_>]) {
    let file = std::fs::File::create(path).expect("create pcap");
    let header = PcapHeader {
        datalink: DataLink::RAW,
        ..Default::default()
    };
    let mut writer = PcapWriter::with_header(file, header).expect("pcap header");
    for (i, seg) in segments.iter().enumerate() {
        let bytes = ipv4_tcp(seg);
        let ts = std::time::Duration::from_millis(10 * i as u64);
        writer
            .write_packet(&PcapPacket::new(ts, bytes.len() as u32, &bytes))
            .expect("pcap packet");
    }
}

fn tshark_available() -> bool {
    match Command::new("tshark").arg("--version").output() {
        Ok(out) if out.status.success() => true,
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "tshark is not installed and CI is set: install it \
                 (DEBIAN_FRONTEND=noninteractive apt-get install -y tshark)"
            );
            eprintln!(
                "SKIPPED: tshark is not installed (set CI=1 to make this a failure); \
                 install with DEBIAN_FRONTEND=noninteractive apt-get install -y tshark"
            );
            false
        }
    }
}

/// One row per packet, one column per field (multiple occurrences comma-separated).
fn tshark_fields(pcap: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-n")
        .args(["-o", "mptcp.analyze_mptcp:TRUE"])
        .args(["-o", "mptcp.relative_sequence_numbers:FALSE"])
        .args(["-o", "mptcp.analyze_mappings:TRUE"])
        .args(["-o", "mptcp.intersubflows_retransmission:TRUE"])
        .args(["-o", "tcp.check_checksum:TRUE"])
        .arg("-r")
        .arg(pcap)
        .args(["-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]);
    for field in fields {
        cmd.args(["-e", field]);
    }
    let out = cmd.output().expect("run tshark");
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("tshark prints UTF-8")
        .lines()
        .map(|line| line.split('|').map(str::to_owned).collect())
        .collect()
}

/// Asserts `name` of packet `frame` (1-based), naming both on failure.
fn expect(rows: &[Vec<String>], frame: usize, name: &str, value: &str) {
    assert_eq!(
        field(rows, frame, name),
        value,
        "frame {frame}, field {name}"
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn dec(v: impl Into<u64>) -> String {
    v.into().to_string()
}

fn temp_pcap(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mptcp-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

/// Everything the scenario computed, for the assertions.
struct Expected {
    checksum_first_data: u16,
    checksum_server_data: u16,
    checksum_client_data: u16,
    synack_hmac: [u8; 8],
    ack_hmac: [u8; 20],
    add_addr_port_hmac: [u8; 8],
    add_addr_no_port_hmac: [u8; 8],
    add_addr_v6_hmac: [u8; 8],
}

const S1_C: (Ipv4Addr, u16) = (CLIENT, 40000);
const S1_S: (Ipv4Addr, u16) = (SERVER, 80);
const S2_C: (Ipv4Addr, u16) = (CLIENT2, 40001);
const S2_S: (Ipv4Addr, u16) = (SERVER, 80);

/// A v1 connection with checksums: MP_CAPABLE handshake and first data, DSS both ways,
/// an MP_JOIN subflow, ADD_ADDR with and without port plus the echo, MP_PRIO,
/// REMOVE_ADDR, MP_FAIL, MP_TCPRST and MP_FASTCLOSE.
fn scenario(ids: &[u8]) -> (Vec<Segment<'_>>, Expected) {
    let idsn_c = KEY_C.idsn();
    let idsn_s = KEY_S.idsn();
    let flags = CapableFlags::CHECKSUM.union(CapableFlags::HMAC_SHA256);
    let capable = |keys| {
        MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags,
            keys,
        })
    };
    let checksum_first_data = DssChecksum::new(idsn_c + 1, SeqNum(1), 5)
        .add(b"hello")
        .finish();
    let checksum_server_data = DssChecksum::new(idsn_s + 1, SeqNum(1), 6)
        .add(b"world!")
        .finish();
    let checksum_client_data = DssChecksum::new(idsn_c + 6, SeqNum(6), 3)
        .add(b"abc")
        .finish();
    let synack_hmac = join_synack_hmac(KEY_S, KEY_C, NONCE_S, NONCE_C);
    let ack_hmac = join_ack_hmac(KEY_C, KEY_S, NONCE_C, NONCE_S);
    let server2 = SERVER2.into();
    let add_addr_port_hmac = add_addr_hmac(KEY_S, KEY_C, 2, server2, Some(8080));
    let server3 = Ipv4Addr::new(10, 0, 0, 4);
    let add_addr_no_port_hmac = add_addr_hmac(KEY_S, KEY_C, 3, server3.into(), None);
    let server6: IpAddr = "2001:db8::42".parse().expect("literal");
    let add_addr_v6_hmac = add_addr_hmac(KEY_S, KEY_C, 4, server6, Some(443));
    let data_ack = |dsn: Dsn| {
        MptcpOption::Dss(Dss {
            data_ack: Some(DsnWire::Long(dsn)),
            mapping: None,
            data_fin: false,
        })
    };
    let seg = |src, dst, seq, ack, flags, options, payload| Segment {
        src,
        dst,
        seq,
        ack,
        flags,
        options,
        payload,
    };
    let segments = vec![
        // 1-4: MP_CAPABLE handshake and the client's first data.
        seg(
            S1_C,
            S1_S,
            1000,
            0,
            SYN,
            vec![capable(MpCapableKeys::None)],
            b"",
        ),
        seg(
            S1_S,
            S1_C,
            5000,
            1001,
            SYN | ACK,
            vec![capable(MpCapableKeys::Sender { sender: KEY_S })],
            b"",
        ),
        seg(
            S1_C,
            S1_S,
            1001,
            5001,
            ACK,
            vec![capable(MpCapableKeys::Both {
                sender: KEY_C,
                receiver: KEY_S,
            })],
            b"",
        ),
        seg(
            S1_C,
            S1_S,
            1001,
            5001,
            PSH | ACK,
            vec![capable(MpCapableKeys::BothWithData {
                sender: KEY_C,
                receiver: KEY_S,
                data_len: 5,
                checksum: Some(checksum_first_data),
            })],
            b"hello",
        ),
        // 5: server data with 64-bit data ACK and DSN; 6: client data with 32-bit ones.
        seg(
            S1_S,
            S1_C,
            5001,
            1006,
            PSH | ACK,
            vec![MptcpOption::Dss(Dss {
                data_ack: Some(DsnWire::Long(idsn_c + 6)),
                mapping: Some(DssMapping {
                    dsn: DsnWire::Long(idsn_s + 1),
                    subflow_seq: SeqNum(1),
                    data_len: 6,
                    checksum: Some(checksum_server_data),
                }),
                data_fin: false,
            })],
            b"world!",
        ),
        seg(
            S1_C,
            S1_S,
            1006,
            5007,
            PSH | ACK,
            vec![MptcpOption::Dss(Dss {
                data_ack: Some(DsnWire::Short((idsn_s + 7).low32())),
                mapping: Some(DssMapping {
                    dsn: DsnWire::Short((idsn_c + 6).low32()),
                    subflow_seq: SeqNum(6),
                    data_len: 3,
                    checksum: Some(checksum_client_data),
                }),
                data_fin: false,
            })],
            b"abc",
        ),
        // 7-10: MP_JOIN on a second path, and the responder's fourth-packet ACK.
        seg(
            S2_C,
            S2_S,
            2000,
            0,
            SYN,
            vec![MptcpOption::MpJoin(MpJoin::Syn {
                backup: true,
                addr_id: AddrId(1),
                token: KEY_S.token(),
                nonce: NONCE_C,
            })],
            b"",
        ),
        seg(
            S2_S,
            S2_C,
            7000,
            2001,
            SYN | ACK,
            vec![MptcpOption::MpJoin(MpJoin::SynAck {
                backup: false,
                addr_id: AddrId(0),
                hmac: synack_hmac,
                nonce: NONCE_S,
            })],
            b"",
        ),
        seg(
            S2_C,
            S2_S,
            2001,
            7001,
            ACK,
            vec![MptcpOption::MpJoin(MpJoin::Ack { hmac: ack_hmac })],
            b"",
        ),
        seg(S2_S, S2_C, 7001, 2001, ACK, vec![data_ack(idsn_c + 9)], b""),
        // 11-13: ADD_ADDR with port, its echo, and one without port.
        seg(
            S1_S,
            S1_C,
            5007,
            1009,
            ACK,
            vec![MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(2),
                addr: server2,
                port: Some(8080),
                hmac: Some(add_addr_port_hmac),
            })],
            b"",
        ),
        seg(
            S1_C,
            S1_S,
            1009,
            5007,
            ACK,
            vec![MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(2),
                addr: server2,
                port: Some(8080),
                hmac: None,
            })],
            b"",
        ),
        seg(
            S1_S,
            S1_C,
            5007,
            1009,
            ACK,
            vec![MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(3),
                addr: server3.into(),
                port: None,
                hmac: Some(add_addr_no_port_hmac),
            })],
            b"",
        ),
        // 14-18: MP_PRIO, REMOVE_ADDR, MP_FAIL, MP_TCPRST (with RST), MP_FASTCLOSE.
        seg(
            S2_C,
            S2_S,
            2001,
            7001,
            ACK,
            vec![MptcpOption::MpPrio(MpPrio {
                backup: true,
                addr_id: None,
            })],
            b"",
        ),
        seg(
            S1_S,
            S1_C,
            5007,
            1009,
            ACK,
            vec![MptcpOption::RemoveAddr(RemoveAddr {
                ids: AddrIdList::new(ids).expect("non-empty"),
            })],
            b"",
        ),
        seg(
            S1_C,
            S1_S,
            1009,
            5007,
            ACK,
            vec![MptcpOption::MpFail(MpFail { dsn: idsn_c + 9 })],
            b"",
        ),
        seg(
            S2_S,
            S2_C,
            7001,
            2001,
            RST | ACK,
            vec![MptcpOption::MpTcpRst(MpTcpRst {
                flags: TcpRstFlags::TRANSIENT,
                reason: TcpRstReason::MIDDLEBOX_INTERFERENCE,
            })],
            b"",
        ),
        seg(
            S1_C,
            S1_S,
            1009,
            5007,
            ACK,
            vec![MptcpOption::MpFastclose(MpFastclose {
                receiver_key: KEY_S,
            })],
            b"",
        ),
        // 19: an IPv6 ADD_ADDR with port (carried over the IPv4 subflow).
        seg(
            S1_S,
            S1_C,
            5007,
            1009,
            ACK,
            vec![MptcpOption::AddAddr(AddAddr {
                addr_id: AddrId(4),
                addr: server6,
                port: Some(443),
                hmac: Some(add_addr_v6_hmac),
            })],
            b"",
        ),
    ];
    let expected = Expected {
        checksum_first_data,
        checksum_server_data,
        checksum_client_data,
        synack_hmac: synack_hmac.0,
        ack_hmac: ack_hmac.0,
        add_addr_port_hmac: add_addr_port_hmac.0,
        add_addr_no_port_hmac: add_addr_no_port_hmac.0,
        add_addr_v6_hmac: add_addr_v6_hmac.0,
    };
    (segments, expected)
}

/// The fields every test reads (names as tshark 4.0 spells them).
const FIELDS: &[&str] = &[
    "frame.number",
    "tcp.stream",
    "mptcp.stream",
    "tcp.checksum.status",
    "tcp.options.mptcp.subtype",
    "tcp.options.mptcp.version",
    "tcp.options.mptcp.flags",
    "tcp.options.mptcp.sendkey",
    "tcp.options.mptcp.recvkey",
    "mptcp.expected_token",
    "mptcp.expected_idsn",
    "tcp.options.mptcp.datalvllen",
    "tcp.options.mptcp.checksum",
    "tcp.options.mptcp.rawdataack",
    "mptcp.ack",
    "tcp.options.mptcp.rawdataseqno",
    "mptcp.dss.dsn",
    "tcp.options.mptcp.subflowseqno",
    "tcp.options.mptcp.recvtok",
    "tcp.options.mptcp.sendrand",
    "tcp.options.mptcp.sendtrunchmac",
    "tcp.options.mptcp.sendhmac",
    "tcp.options.mptcp.backup.flag",
    "tcp.options.mptcp.addrid",
    "tcp.options.mptcp.echo",
    "tcp.options.mptcp.ipv4",
    "tcp.options.mptcp.ipv6",
    "tcp.options.mptcp.port",
    "tcp.options.mptcp.addaddrtrunchmac",
    "mptcp.rm_addr.count",
    "tcp.options.mptcp.rst_reason",
    "tcp.options.mptcp.flag_T.flag",
    "mptcp.connection.echoed_key_mismatch",
    "tcp.options",
    "tcp.payload",
];

/// Writes the scenario's capture and dissects it; `None` when tshark is absent outside CI.
fn dissect(name: &str) -> Option<(Vec<Vec<String>>, Expected)> {
    if !tshark_available() {
        return None;
    }
    let ids = [2u8, 3];
    let (segments, expected) = scenario(&ids);
    let path = temp_pcap(name);
    write_pcap(&path, &segments);
    let rows = tshark_fields(&path, FIELDS);
    let _ = std::fs::remove_file(&path);
    assert_eq!(rows.len(), segments.len(), "tshark saw every packet");
    for (i, row) in rows.iter().enumerate() {
        assert_eq!(row.len(), FIELDS.len(), "frame {}: {row:?}", i + 1);
        // Our little IPv4/TCP builder is right (1 = Good), so the rest is about MPTCP.
        assert_eq!(row[3], "1", "frame {}: TCP checksum status", i + 1);
    }
    Some((rows, expected))
}

fn field<'r>(rows: &'r [Vec<String>], frame: usize, name: &str) -> &'r str {
    let col = FIELDS
        .iter()
        .position(|f| *f == name)
        .unwrap_or_else(|| panic!("field {name} not requested"));
    &rows[frame - 1][col]
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("tshark prints hex"))
        .collect()
}

/// The DSS checksum straight from RFC 8684 §3.3.1 and RFC 1071 (16-bit words, end-around
/// carry), deliberately not sharing code with the crate.
fn reference_dss_checksum(dsn: u64, ssn: u32, len: u16, payload: &[u8]) -> u16 {
    let mut bytes = Vec::new();
    bytes.extend_from_slice(&dsn.to_be_bytes());
    bytes.extend_from_slice(&ssn.to_be_bytes());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&[0, 0]);
    bytes.extend_from_slice(payload);
    let mut sum: u32 = 0;
    for pair in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([pair[0], *pair.get(1).unwrap_or(&0)]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The checksum field of the first (only) MPTCP option in `tcp.options`: its last two
/// bytes. tshark 4.0.17 does not show DSS checksums (see the DSS test).
fn trailing_checksum_of_first_option(options_hex: &str) -> u16 {
    let options = unhex(options_hex);
    assert_eq!(options[0], 30, "first option is MPTCP: {options_hex}");
    let len = usize::from(options[1]);
    u16::from_be_bytes([options[len - 2], options[len - 1]])
}

#[test]
fn tshark_reads_the_mp_capable_handshake_and_derives_our_token_and_idsn() {
    let Some((rows, expected)) = dissect("capable.pcap") else {
        return;
    };
    let (token_c, idsn_c) = KEY_C.token_and_idsn();
    let (token_s, idsn_s) = KEY_S.token_and_idsn();
    for frame in 1..=4 {
        expect(&rows, frame, "tcp.options.mptcp.subtype", "0");
        expect(&rows, frame, "tcp.options.mptcp.version", "1");
        expect(&rows, frame, "tcp.options.mptcp.flags", "0x81");
    }
    // SYN: no key. SYN/ACK: the server's key, from which tshark derives token and IDSN.
    expect(&rows, 1, "tcp.options.mptcp.sendkey", "");
    expect(&rows, 2, "tcp.options.mptcp.sendkey", &dec(KEY_S.0));
    expect(&rows, 2, "mptcp.expected_token", &dec(token_s.0));
    expect(&rows, 2, "mptcp.expected_idsn", &dec(idsn_s.0));
    // Third ACK and first data: both keys, the client's first.
    for frame in [3, 4] {
        expect(&rows, frame, "tcp.options.mptcp.sendkey", &dec(KEY_C.0));
        expect(&rows, frame, "tcp.options.mptcp.recvkey", &dec(KEY_S.0));
        expect(&rows, frame, "mptcp.expected_token", &dec(token_c.0));
        expect(&rows, frame, "mptcp.expected_idsn", &dec(idsn_c.0));
        expect(&rows, frame, "mptcp.connection.echoed_key_mismatch", "");
        expect(&rows, frame, "mptcp.stream", "0");
    }
    // First data: data-level length and checksum, which must be the checksum of the
    // mapping DSN = IDSN + 1, subflow seq 1, over the payload tshark saw.
    expect(&rows, 4, "tcp.options.mptcp.datalvllen", "5");
    let checksum = format!("{:#06x}", expected.checksum_first_data);
    expect(&rows, 4, "tcp.options.mptcp.checksum", &checksum);
    let payload = unhex(field(&rows, 4, "tcp.payload"));
    assert_eq!(payload, b"hello");
    let tshark_idsn: u64 = field(&rows, 4, "mptcp.expected_idsn").parse().expect("u64");
    assert_eq!(
        reference_dss_checksum(tshark_idsn + 1, 1, 5, &payload),
        expected.checksum_first_data
    );
}

#[test]
fn tshark_reads_dss_mappings_and_the_checksums_check_out_independently() {
    let Some((rows, expected)) = dissect("dss.pcap") else {
        return;
    };
    let idsn_c = KEY_C.idsn();
    let idsn_s = KEY_S.idsn();
    // Frame 5: 64-bit data ACK and DSN (flags A a M m).
    expect(&rows, 5, "tcp.options.mptcp.subtype", "2");
    expect(&rows, 5, "tcp.options.mptcp.flags", "0x0f");
    expect(
        &rows,
        5,
        "tcp.options.mptcp.rawdataack",
        &dec((idsn_c + 6).0),
    );
    expect(
        &rows,
        5,
        "tcp.options.mptcp.rawdataseqno",
        &dec((idsn_s + 1).0),
    );
    expect(&rows, 5, "tcp.options.mptcp.subflowseqno", "1");
    expect(&rows, 5, "tcp.options.mptcp.datalvllen", "6");
    // Frame 6: 32-bit forms (flags A M); tshark expands them like we would.
    expect(&rows, 6, "tcp.options.mptcp.flags", "0x05");
    expect(
        &rows,
        6,
        "tcp.options.mptcp.rawdataack",
        &dec((idsn_s + 7).low32()),
    );
    expect(&rows, 6, "mptcp.ack", &dec((idsn_s + 7).0));
    expect(
        &rows,
        6,
        "tcp.options.mptcp.rawdataseqno",
        &dec((idsn_c + 6).low32()),
    );
    expect(&rows, 6, "mptcp.dss.dsn", &dec((idsn_c + 6).0));
    expect(&rows, 6, "tcp.options.mptcp.subflowseqno", "6");
    expect(&rows, 6, "tcp.options.mptcp.datalvllen", "3");
    // Frame 10: data ACK only, 64 bits (flags A a).
    expect(&rows, 10, "tcp.options.mptcp.flags", "0x03");
    expect(
        &rows,
        10,
        "tcp.options.mptcp.rawdataack",
        &dec((idsn_c + 9).0),
    );
    expect(&rows, 10, "tcp.options.mptcp.subflowseqno", "");

    // tshark 4.0.17 shows a DSS checksum only when the option is 2 bytes longer than the
    // checksum needs (`optlen >= offset - start_offset + 4` in packet-tcp.c), so it
    // never shows ours and verifies none. Instead: the checksum bytes on the wire must
    // equal a reference computation over the DSN, subflow seq, length and payload *as
    // tshark dissected them*.
    for (frame, ours) in [
        (5, expected.checksum_server_data),
        (6, expected.checksum_client_data),
    ] {
        expect(&rows, frame, "tcp.options.mptcp.checksum", "");
        let on_wire = trailing_checksum_of_first_option(field(&rows, frame, "tcp.options"));
        assert_eq!(on_wire, ours, "frame {frame}");
        let dsn: u64 = field(&rows, frame, "mptcp.dss.dsn").parse().expect("u64");
        let ssn: u32 = field(&rows, frame, "tcp.options.mptcp.subflowseqno")
            .parse()
            .expect("u32");
        let len: u16 = field(&rows, frame, "tcp.options.mptcp.datalvllen")
            .parse()
            .expect("u16");
        let payload = unhex(field(&rows, frame, "tcp.payload"));
        assert_eq!(
            reference_dss_checksum(dsn, ssn, len, &payload),
            on_wire,
            "frame {frame}"
        );
    }
}

#[test]
fn tshark_joins_the_subflow_by_our_token_and_reads_our_hmacs() {
    let Some((rows, expected)) = dissect("join.pcap") else {
        return;
    };
    for frame in 7..=9 {
        expect(&rows, frame, "tcp.options.mptcp.subtype", "1");
        // A second TCP stream that tshark attaches to MPTCP connection 0: it found the
        // connection whose key hashes to the token in our MP_JOIN SYN.
        expect(&rows, frame, "tcp.stream", "1");
        expect(&rows, frame, "mptcp.stream", "0");
    }
    // SYN: backup, address id 1, the server's token, the client's nonce.
    expect(&rows, 7, "tcp.options.mptcp.backup.flag", "1");
    expect(&rows, 7, "tcp.options.mptcp.addrid", "1");
    expect(&rows, 7, "tcp.options.mptcp.recvtok", &dec(KEY_S.token().0));
    expect(&rows, 7, "tcp.options.mptcp.sendrand", &dec(NONCE_C.0));
    // SYN/ACK: truncated HMAC-B (tshark prints it as a big-endian u64) and the nonce.
    expect(&rows, 8, "tcp.options.mptcp.backup.flag", "0");
    expect(&rows, 8, "tcp.options.mptcp.addrid", "0");
    let truncated = u64::from_be_bytes(expected.synack_hmac);
    expect(&rows, 8, "tcp.options.mptcp.sendtrunchmac", &dec(truncated));
    expect(&rows, 8, "tcp.options.mptcp.sendrand", &dec(NONCE_S.0));
    // The values the crypto unit tests checked against Python's hmac module.
    assert_eq!(hex(&expected.synack_hmac), "418372d22b0db1b9");
    // Third ACK: the 160-bit HMAC-A.
    expect(
        &rows,
        9,
        "tcp.options.mptcp.sendhmac",
        &hex(&expected.ack_hmac),
    );
    assert_eq!(
        hex(&expected.ack_hmac),
        "62228003684c87143b0ed47f387709594491549f"
    );
    // The subflow's later packets stay in the same MPTCP connection.
    for frame in [10, 14, 17] {
        expect(&rows, frame, "tcp.stream", "1");
        expect(&rows, frame, "mptcp.stream", "0");
    }
}

#[test]
fn tshark_reads_add_addr_and_the_other_signals() {
    let Some((rows, expected)) = dissect("signals.pcap") else {
        return;
    };
    // 11: ADD_ADDR v4 with port and HMAC.
    expect(&rows, 11, "tcp.options.mptcp.subtype", "3");
    expect(&rows, 11, "tcp.options.mptcp.echo", "0");
    expect(&rows, 11, "tcp.options.mptcp.addrid", "2");
    expect(&rows, 11, "tcp.options.mptcp.ipv4", "10.0.0.3");
    expect(&rows, 11, "tcp.options.mptcp.port", "8080");
    let hmac = u64::from_be_bytes(expected.add_addr_port_hmac);
    expect(&rows, 11, "tcp.options.mptcp.addaddrtrunchmac", &dec(hmac));
    // 12: its echo: E = 1, no HMAC.
    expect(&rows, 12, "tcp.options.mptcp.echo", "1");
    expect(&rows, 12, "tcp.options.mptcp.port", "8080");
    expect(&rows, 12, "tcp.options.mptcp.addaddrtrunchmac", "");
    // 13: no port.
    expect(&rows, 13, "tcp.options.mptcp.addrid", "3");
    expect(&rows, 13, "tcp.options.mptcp.ipv4", "10.0.0.4");
    expect(&rows, 13, "tcp.options.mptcp.port", "");
    let hmac = u64::from_be_bytes(expected.add_addr_no_port_hmac);
    expect(&rows, 13, "tcp.options.mptcp.addaddrtrunchmac", &dec(hmac));
    // 14: MP_PRIO backup.
    expect(&rows, 14, "tcp.options.mptcp.subtype", "5");
    expect(&rows, 14, "tcp.options.mptcp.backup.flag", "1");
    // 15: REMOVE_ADDR of ids 2 and 3.
    expect(&rows, 15, "tcp.options.mptcp.subtype", "4");
    expect(&rows, 15, "mptcp.rm_addr.count", "2");
    expect(&rows, 15, "tcp.options.mptcp.addrid", "2,3");
    // 16: MP_FAIL with the 64-bit DSN.
    expect(&rows, 16, "tcp.options.mptcp.subtype", "6");
    let dsn = dec((KEY_C.idsn() + 9).0);
    expect(&rows, 16, "tcp.options.mptcp.rawdataseqno", &dsn);
    // 17: MP_TCPRST, transient, middlebox interference.
    expect(&rows, 17, "tcp.options.mptcp.subtype", "8");
    expect(&rows, 17, "tcp.options.mptcp.flag_T.flag", "1");
    expect(&rows, 17, "tcp.options.mptcp.rst_reason", "0x06");
    // 18: MP_FASTCLOSE with the receiver's (server's) key.
    expect(&rows, 18, "tcp.options.mptcp.subtype", "7");
    expect(&rows, 18, "tcp.options.mptcp.recvkey", &dec(KEY_S.0));
    // 19: ADD_ADDR v6 with port and HMAC.
    expect(&rows, 19, "tcp.options.mptcp.subtype", "3");
    expect(&rows, 19, "tcp.options.mptcp.addrid", "4");
    expect(&rows, 19, "tcp.options.mptcp.ipv6", "2001:db8::42");
    expect(&rows, 19, "tcp.options.mptcp.port", "443");
    let hmac = u64::from_be_bytes(expected.add_addr_v6_hmac);
    expect(&rows, 19, "tcp.options.mptcp.addaddrtrunchmac", &dec(hmac));
    // tshark 4.0 does not verify ADD_ADDR HMACs; the crypto unit tests check
    // add_addr_hmac against Python's hmac module for all four v4/v6 x port cases.
}

#[test]
fn our_parser_reads_back_what_tshark_saw() {
    // The reverse direction: the option bytes tshark dissected parse, with our parser,
    // to the options the scenario built.
    let Some((rows, _)) = dissect("reverse.pcap") else {
        return;
    };
    let ids = [2u8, 3];
    let (segments, _) = scenario(&ids);
    for (i, seg) in segments.iter().enumerate() {
        let options = unhex(field(&rows, i + 1, "tcp.options"));
        let len = usize::from(options[1]);
        assert_eq!(
            MptcpOption::parse(&options[..len]).as_ref(),
            Ok(&seg.options[0]),
            "frame {}",
            i + 1
        );
    }
}
