//! The cargo-fuzz targets (`fuzz/`), run on stable under proptest so every CI run fuzzes a
//! little: arbitrary bytes, mutations of valid packets, and a replay of every file in
//! `fuzz/corpus/*/` (seeds are committed; libFuzzer adds its finds locally).

use std::path::Path;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::Index;

use mptcp_proto::SeqNum;
use mptcp_proto::wire::fuzzing::{MPTCP_SAMPLES, fuzz_ip_packet, fuzz_offload, fuzz_tcp_options};
use mptcp_proto::wire::mptcp::MptcpOption;
use mptcp_proto::wire::tcp::{SackBlock, TcpFlags, TcpOptions, Timestamps};
use mptcp_proto::wire::{IpRepr, IpTcpRepr, Ipv4Repr, Ipv6Repr, TcpRepr};

/// Valid packets to mutate: an IPv4 MPTCP SYN and an IPv6 data segment with a DSS data ACK and SACK.
fn seeds() -> Vec<Vec<u8>> {
    let mptcp = |i: usize| MptcpOption::parse(MPTCP_SAMPLES[i]).expect("well formed");
    let syn = TcpRepr {
        src_port: 40000,
        dst_port: 80,
        seq: SeqNum(7),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 64240,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some(Timestamps { tsval: 1, tsecr: 0 }),
            mptcp: [mptcp(0)].into_iter().collect(),
            ..TcpOptions::default()
        },
        payload: b"",
    };
    let data = TcpRepr {
        flags: TcpFlags::ACK | TcpFlags::PSH,
        options: TcpOptions {
            timestamps: Some(Timestamps { tsval: 5, tsecr: 6 }),
            sack_blocks: [SackBlock {
                left: SeqNum(100),
                right: SeqNum(200),
            }]
            .into_iter()
            .collect(),
            mptcp: [mptcp(4)].into_iter().collect(),
            ..TcpOptions::default()
        },
        payload: b"some payload bytes",
        ..syn.clone()
    };
    let v4 = IpRepr::V4(Ipv4Repr {
        src_addr: [10, 0, 0, 1].into(),
        dst_addr: [10, 0, 0, 2].into(),
        protocol: 6,
        payload_len: 0,
        ttl: 64,
        dscp: 0,
        ecn: 0,
        ident: 0,
        dont_frag: true,
    });
    let v6 = IpRepr::V6(Ipv6Repr {
        src_addr: "2001:db8::1".parse().expect("literal"),
        dst_addr: "2001:db8::2".parse().expect("literal"),
        next_header: 6,
        payload_len: 0,
        hop_limit: 64,
        traffic_class: 0,
        flow_label: 0,
    });
    [(v4, syn), (v6, data)]
        .into_iter()
        .map(|(ip, tcp)| {
            let repr = IpTcpRepr { ip, tcp };
            let mut buf = vec![0u8; repr.buffer_len()];
            repr.emit(&mut buf, true).expect("seed fits");
            buf
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(8192))]

    #[test]
    fn tcp_options_target_on_arbitrary_bytes(data in vec(any::<u8>(), 0..1500)) {
        fuzz_tcp_options(&data);
    }

    #[test]
    fn ip_packet_target_on_arbitrary_bytes(data in vec(any::<u8>(), 0..1500)) {
        fuzz_ip_packet(&data);
    }

    #[test]
    fn offload_target_on_arbitrary_bytes(data in vec(any::<u8>(), 0..1500)) {
        fuzz_offload(&data);
    }

    #[test]
    fn ip_packet_target_on_mutated_valid_packets(
        seed: Index,
        edits in vec((any::<Index>(), any::<u8>()), 0..6),
        cut: Option<Index>,
    ) {
        let seeds = seeds();
        let mut packet = seeds[seed.index(seeds.len())].clone();
        for (at, byte) in edits {
            let at = at.index(packet.len());
            packet[at] = byte;
        }
        if let Some(cut) = cut {
            packet.truncate(cut.index(packet.len() + 1));
        }
        fuzz_ip_packet(&packet);
        fuzz_offload(&packet);
        // The TCP option area alone (after the IP and fixed TCP headers), too.
        let options_start = if packet.first().map(|b| b >> 4) == Some(6) { 60 } else { 40 };
        fuzz_tcp_options(packet.get(options_start..).unwrap_or(&[]));
    }
}

#[test]
fn seeds_parse_cleanly() {
    for seed in seeds() {
        IpTcpRepr::parse(&seed, true).expect("seeds are valid packets");
    }
}

/// Runs every file under `fuzz/corpus/<target>/` through its target (both targets for an
/// unknown directory name).
#[test]
fn replay_fuzz_corpus() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let Ok(targets) = std::fs::read_dir(&corpus) else {
        return;
    };
    let mut replayed = 0;
    for target in targets.flatten() {
        let name = target.file_name();
        let Ok(files) = std::fs::read_dir(target.path()) else {
            continue;
        };
        for file in files.flatten() {
            let data = std::fs::read(file.path()).expect("corpus file is readable");
            match name.to_str() {
                Some("tcp_options") => fuzz_tcp_options(&data),
                Some("ip_packet") => {
                    fuzz_ip_packet(&data);
                    if file.file_name().to_string_lossy().starts_with("seed-") {
                        let parsed = IpTcpRepr::parse(&data, true);
                        assert!(parsed.is_ok(), "{:?}: {parsed:?}", file.path());
                    }
                }
                _ => {
                    fuzz_tcp_options(&data);
                    fuzz_ip_packet(&data);
                }
            }
            replayed += 1;
        }
    }
    eprintln!("replayed {replayed} corpus files");
}
