//! TSO super-segments and their GRO counterpart through the endpoint: a sender with
//! `max_segment_payload` and checksum offload emits up to 64 KB per packet, which a
//! device cuts into MSS-sized pieces (every piece repeating the options, the DSS
//! mapping included), and a receiver takes super-segments whole, as a TUN reader with
//! virtio_net_hdr gets them from the kernel. Plain TCP and MPTCP, both directions,
//! with and without lost pieces.

mod common;

use common::{Device, Pair, Side, Stream, pattern};
use mptcp_proto::endpoint::{ConnHandle, EndpointConfig};
use mptcp_proto::mptcp::MptcpConfig;
use mptcp_proto::tcp::TcpConfig;
use mptcp_proto::time::Duration;
use mptcp_proto::wire::IpTcpRepr;

const MTU: usize = 1500;
const BUFFER: usize = 1 << 20;

/// `tso`: super-segments of up to 65,000 bytes with partial checksums.
fn config(tso: bool, mptcp: bool) -> EndpointConfig {
    let tcp = TcpConfig {
        max_segment_payload: tso.then_some(65_000),
        recv_buffer: BUFFER,
        send_buffer: BUFFER,
        ..TcpConfig::default()
    };
    EndpointConfig {
        mptcp: mptcp.then(|| MptcpConfig {
            tcp: tcp.clone(),
            send_buffer: BUFFER,
            recv_buffer: BUFFER,
            ..MptcpConfig::default()
        }),
        tcp,
        checksum_offload: tso,
        ..EndpointConfig::default()
    }
}

/// Opens a connection (MPTCP with a second client address when `mptcp`) and returns
/// (client, server) handles.
fn open(pair: &mut Pair, mptcp: bool) -> (ConnHandle, ConnHandle) {
    let listener = pair
        .server
        .listen(common::addr("10.9.0.1:80"))
        .expect("free");
    let now = pair.now;
    let (local, remote) = (common::addr("10.0.0.1:0"), common::addr("10.9.0.1:80"));
    let client = if mptcp {
        let extra = ["10.0.1.1".parse().expect("address")];
        pair.client.connect_mptcp(now, local, remote, &extra)
    } else {
        pair.client.connect(now, local, remote)
    }
    .expect("connect");
    let mut server = None;
    pair.run_until(Duration::from_secs(5), |p| {
        if server.is_none() {
            server = p.server.accept(listener);
        }
        server.is_some()
    });
    (client, server.expect("accepted"))
}

/// Moves `up` bytes client -> server and `down` bytes back at the same time; asserts
/// both arrive intact.
fn exchange(pair: &mut Pair, conns: (ConnHandle, ConnHandle), up: usize, down: usize) {
    let mut c = Stream::new(Side::Client, conns.0, pattern(1, up));
    let mut s = Stream::new(Side::Server, conns.1, pattern(2, down));
    let done = pair.run_until(Duration::from_secs(120), |p| {
        c.pump(p);
        s.pump(p);
        s.received.len() == up && c.received.len() == down
    });
    assert!(
        done,
        "transfer stuck: {} of {up} up, {} of {down} down",
        s.received.len(),
        c.received.len()
    );
    assert!(s.received == c.data, "upload corrupted");
    assert!(c.received == s.data, "download corrupted");
}

#[test]
fn super_segments_cut_by_the_device_arrive_intact_both_ways() {
    for mptcp in [false, true] {
        let mut pair = Pair::new(config(true, mptcp), config(true, mptcp));
        pair.devices = [Device::Cut { mtu: MTU }; 2];
        let conns = open(&mut pair, mptcp);
        exchange(&mut pair, conns, 3 << 20, 3 << 20);
        for side in [0, 1] {
            // Most data left as super-segments: far fewer packets than MSS pieces.
            assert!(
                pair.super_segments[side] * 10 > pair.emitted[side] / 10,
                "mptcp {mptcp}: {} super-segments of {} packets",
                pair.super_segments[side],
                pair.emitted[side]
            );
            assert!(
                pair.emitted[side] < (3 << 20) / 1400 / 2,
                "mptcp {mptcp}: {} packets for 3 MB each way",
                pair.emitted[side]
            );
        }
        if mptcp {
            let stats = pair.client.mptcp_stats(conns.0).expect("MPTCP");
            assert_eq!(stats.subflows.len(), 2, "{stats:?}");
        }
    }
}

#[test]
fn every_piece_of_an_mptcp_super_segment_carries_the_mapping_of_the_whole() {
    let mut pair = Pair::new(config(true, true), config(false, true));
    pair.devices = [Device::Cut { mtu: MTU }, Device::Plain];
    pair.record = true;
    let conns = open(&mut pair, true);
    exchange(&mut pair, conns, 1 << 20, 0);
    let mut checked = 0;
    for w in pair.wire.iter().filter(|w| w.from == Side::Client) {
        let p = IpTcpRepr::parse(&w.bytes, true).expect("pieces have full checksums");
        let dss = p.tcp.options.mptcp.iter().find_map(|o| match o {
            mptcp_proto::wire::mptcp::MptcpOption::Dss(d) => d.mapping,
            _ => None,
        });
        let Some(m) = dss else { continue };
        if p.tcp.payload.is_empty() || m.data_len == 0 {
            continue;
        }
        // The piece lies inside its mapping (relative subflow sequence numbers: the
        // mapping starts at subflow_seq, the piece at its own seq minus the ISN + 1).
        assert!(
            usize::from(m.data_len) >= p.tcp.payload.len(),
            "a {}-byte piece under a {}-byte mapping",
            p.tcp.payload.len(),
            m.data_len
        );
        if usize::from(m.data_len) > MTU {
            checked += 1;
        }
    }
    assert!(checked > 100, "pieces of large mappings seen: {checked}");
}

#[test]
fn lost_pieces_of_super_segments_are_resent_alone() {
    for mptcp in [false, true] {
        let mut pair = Pair::new(config(true, mptcp), config(true, mptcp));
        pair.devices = [Device::Cut { mtu: MTU }; 2];
        let conns = open(&mut pair, mptcp);
        // From now on one client piece in 61 is lost.
        pair.filter = Some(Box::new(|side, index, _| {
            if side == Side::Client && index % 61 == 7 {
                common::Action::Drop
            } else {
                common::Action::Deliver
            }
        }));
        let up = 4 << 20;
        exchange(&mut pair, conns, up, 0);
        let retransmitted: u64 = if mptcp {
            let stats = pair.client.mptcp_stats(conns.0).expect("MPTCP");
            stats.subflows.iter().map(|s| s.bytes_retransmitted).sum()
        } else {
            pair.client
                .conn_stats(conns.0)
                .expect("live")
                .bytes_retransmitted
        };
        // About one piece in 61 is lost: SACK cuts the super-segments so that about
        // that much is resent, not whole 64 KB super-segments (which would be 40 % and
        // more).
        assert!(
            retransmitted * 100 < up as u64 * 6,
            "mptcp {mptcp}: {retransmitted} bytes resent for {up}"
        );
    }
}

#[test]
fn a_receiver_takes_super_segments_whole_and_acks_each_once() {
    for mptcp in [false, true] {
        let mut pair = Pair::new(config(true, mptcp), config(false, mptcp));
        // The client's super-segments reach the server whole and unverified (GRO/GSO
        // packets from a TUN device); the server's ACKs travel normally.
        pair.devices = [Device::Whole, Device::Plain];
        let conns = open(&mut pair, mptcp);
        let (emitted_before, acks_before) = (pair.emitted[0], pair.emitted[1]);
        exchange(&mut pair, conns, 4 << 20, 0);
        let data_packets = pair.emitted[0] - emitted_before;
        let acks = pair.emitted[1] - acks_before;
        assert!(
            pair.super_segments[0] > 20,
            "mptcp {mptcp}: {} super-segments",
            pair.super_segments[0]
        );
        // One ACK per super-segment (and a few window updates), not one per two MSS.
        assert!(
            acks <= data_packets + data_packets / 2 + 10,
            "mptcp {mptcp}: {acks} ACKs for {data_packets} packets"
        );
    }
}

/// The second path goes dark (every packet from or to its address lost) in the middle
/// of a download: the transfer completes over the first path in a bounded time.
#[test]
fn a_path_that_goes_dark_mid_transfer_does_not_stall_super_segments() {
    for (tso, fraction, delay_ms) in [
        (false, 4, 10),
        (true, 4, 10),
        (true, 8, 1),
        (true, 2, 1),
        (true, 3, 5),
        (true, 6, 2),
    ] {
        let mut pair = Pair::new(config(tso, true), config(tso, true));
        pair.delay = Duration::from_millis(delay_ms);
        if tso {
            pair.devices = [Device::Cut { mtu: MTU }; 2];
        }
        let conns = open(&mut pair, true);
        // The server announces a second address: a mesh of four subflows, two of them
        // from the client address that will go dark.
        let now = pair.now;
        pair.server
            .add_connection_address(conns.1, now, "10.9.1.1".parse().expect("address"))
            .expect("live");
        pair.run_until(Duration::from_millis(500), |_| false);
        let dark = std::rc::Rc::new(std::cell::Cell::new(false));
        let d = dark.clone();
        pair.filter = Some(Box::new(move |_, _, bytes| {
            let on_path_2 = IpTcpRepr::parse(bytes, false).is_ok_and(|p| {
                let second: std::net::IpAddr = "10.0.1.1".parse().expect("address");
                p.ip.src_addr() == second || p.ip.dst_addr() == second
            });
            if d.get() && on_path_2 {
                common::Action::Drop
            } else {
                common::Action::Deliver
            }
        }));
        let down = 8 << 20;
        let mut c = Stream::new(Side::Client, conns.0, Vec::new());
        let mut s = Stream::new(Side::Server, conns.1, pattern(3, down));
        let start = pair.now;
        let done = pair.run_until(Duration::from_secs(60), |p| {
            if !dark.get() && c.received.len() > down / fraction {
                dark.set(true);
            }
            c.pump(p);
            s.pump(p);
            c.received.len() == down
        });
        assert!(
            done,
            "tso {tso} 1/{fraction} {delay_ms} ms: stuck at {} of {down} after {:?}: {:#?}",
            c.received.len(),
            pair.now - start,
            pair.server.mptcp_stats(conns.1)
        );
        assert!(c.received == s.data);
        eprintln!(
            "tso {tso} 1/{fraction} {delay_ms} ms: done in {:?}, {} subflows",
            pair.now - start,
            pair.server
                .mptcp_stats(conns.1)
                .map_or(0, |s| s.subflows_opened)
        );
    }
}

/// The receiver's connection-level window closed (its application stopped reading),
/// everything sent is acknowledged, and the window updates it sends when the
/// application reads again are all lost. The sender must probe the closed window
/// (RFC 9293 §3.8.6.1, at the data level) or both sides wait for good (seen with a path
/// going down while the proxy's download had filled the window).
#[test]
fn a_closed_connection_window_whose_reopening_was_lost_is_probed() {
    for tso in [false, true] {
        let mut pair = Pair::new(config(tso, true), config(tso, true));
        if tso {
            pair.devices = [Device::Cut { mtu: MTU }; 2];
        }
        let conns = open(&mut pair, true);
        let down = 4 * BUFFER;
        let mut s = Stream::new(Side::Server, conns.1, pattern(4, down));
        // The client does not read: the window closes and stays closed.
        pair.run_until(Duration::from_secs(3), |p| {
            s.pump(p);
            false
        });
        let waiting = pair.client.readable(conns.0).expect("live");
        assert!(
            waiting > BUFFER / 2,
            "the window filled: {waiting} buffered"
        );
        // Everything the client says from now on is lost for a while.
        let blackout = std::rc::Rc::new(std::cell::Cell::new(true));
        let b = blackout.clone();
        pair.filter = Some(Box::new(move |side, _, _| {
            if side == Side::Client && b.get() {
                common::Action::Drop
            } else {
                common::Action::Deliver
            }
        }));
        let mut c = Stream::new(Side::Client, conns.0, Vec::new());
        c.close_when_written = false;
        pair.run_until(Duration::from_millis(300), |p| {
            c.pump(p);
            s.pump(p);
            false
        });
        blackout.set(false);
        let done = pair.run_until(Duration::from_secs(60), |p| {
            c.pump(p);
            s.pump(p);
            c.received.len() == down
        });
        assert!(
            done,
            "tso {tso}: stuck at {} of {down}: {:#?}",
            c.received.len(),
            pair.server.mptcp_stats(conns.1)
        );
        assert!(c.received == s.data);
    }
}
