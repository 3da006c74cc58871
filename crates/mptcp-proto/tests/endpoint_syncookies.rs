//! SYN cookies through the endpoint: floods create no state, legitimate handshakes
//! (plain and MPTCP) complete through cookies with their options intact, forged or
//! expired cookies are refused, and the first data with MP_CAPABLE stands in for a
//! lost third ACK.

mod common;

use core::net::{IpAddr, Ipv4Addr, SocketAddr};

use common::{Action, Pair, Side, SplitMix};
use mptcp_proto::SeqNum;
use mptcp_proto::crypto::MptcpKey;
use mptcp_proto::endpoint::{
    ConnHandle, DropReason, Endpoint, EndpointConfig, Event, ListenerHandle, SYN_COOKIE_PERIOD,
    Shard, SteerKey, SynCookies,
};
use mptcp_proto::mptcp::{ConnMode, MptcpConfig};
use mptcp_proto::tcp::TcpEvent;
use mptcp_proto::time::{Duration, Instant};
use mptcp_proto::wire::mptcp::{CapableFlags, MpCapable, MpCapableKeys, MptcpOption};
use mptcp_proto::wire::tcp::{TcpFlags, TcpOptions, TcpRepr, Timestamps};
use mptcp_proto::wire::{IpRepr, IpTcpRepr, Ipv4Repr};
use proptest::prelude::*;

const SERVER: &str = "10.9.0.1:80";

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("literal address")
}

fn mptcp_config(checksums: bool) -> MptcpConfig {
    MptcpConfig {
        send_buffer: 128 * 1024,
        recv_buffer: 128 * 1024,
        checksums,
        ..MptcpConfig::default()
    }
}

fn server_config(cookies: SynCookies) -> EndpointConfig {
    EndpointConfig {
        mptcp: Some(mptcp_config(false)),
        syn_cookies: cookies,
        ..EndpointConfig::default()
    }
}

fn ip_packet(src: SocketAddr, dst: SocketAddr, tcp: TcpRepr<'_>) -> Vec<u8> {
    let (IpAddr::V4(src_addr), IpAddr::V4(dst_addr)) = (src.ip(), dst.ip()) else {
        panic!("v4 only here");
    };
    let repr = IpTcpRepr {
        ip: IpRepr::V4(Ipv4Repr {
            src_addr,
            dst_addr,
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
    let mut buf = vec![0; 2000];
    let len = repr.emit(&mut buf, true).expect("fits");
    buf.truncate(len);
    buf
}

/// A SYN as a random (spoofed) host would send it: options vary, half MP_CAPABLE.
fn spoofed_syn(rng: &mut SplitMix) -> (SocketAddr, Vec<u8>, bool) {
    let src = SocketAddr::new(
        IpAddr::V4(Ipv4Addr::from(
            0x0b00_0000 | (rng.next() as u32 & 0x00ff_ffff),
        )),
        1024 + rng.below(60_000) as u16,
    );
    let capable = rng.below(2) == 0;
    let mut options = TcpOptions {
        mss: Some(536 + rng.below(1000) as u16),
        window_scale: (rng.below(2) == 0).then(|| rng.below(15) as u8),
        sack_permitted: rng.below(2) == 0,
        timestamps: (rng.below(2) == 0).then(|| Timestamps {
            tsval: rng.next() as u32,
            tsecr: 0,
        }),
        ..TcpOptions::default()
    };
    if capable {
        let mut flags = CapableFlags::HMAC_SHA256;
        if rng.below(2) == 0 {
            flags = flags.union(CapableFlags::CHECKSUM);
        }
        options.mptcp.push(MptcpOption::MpCapable(MpCapable {
            version: 1,
            flags,
            keys: MpCapableKeys::None,
        }));
    }
    let syn = TcpRepr {
        src_port: src.port(),
        dst_port: 80,
        seq: SeqNum(rng.next() as u32),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65_535,
        urgent: 0,
        options,
        payload: &[],
    };
    (src, ip_packet(src, addr(SERVER), syn), capable)
}

fn server_key(seg: &TcpRepr<'_>) -> Option<MptcpKey> {
    seg.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::MpCapable(MpCapable {
            keys: MpCapableKeys::Sender { sender },
            ..
        }) => Some(*sender),
        _ => None,
    })
}

#[test]
fn a_syn_flood_with_cookies_always_creates_no_state_and_answers_every_syn() {
    let mut server = Endpoint::new(server_config(SynCookies::Always), [3; 32]);
    server.listen(addr(SERVER)).expect("free");
    let mut rng = SplitMix(42);
    let mut buf = vec![0u8; 2000];
    let now = Instant::from_secs(5);
    let (mut capable_answers, mut keys) = (0, std::collections::BTreeSet::new());
    for _ in 0..4000 {
        let (src, syn, capable) = spoofed_syn(&mut rng);
        let sent = common::parse(&syn).tcp.seq;
        assert_eq!(server.handle_packet(now, &syn), Ok(()));
        let len = server.poll_transmit(now, &mut buf).expect("a SYN/ACK");
        let bytes = buf[..len].to_vec();
        let answer = common::parse(&bytes);
        assert_eq!(answer.ip.dst_addr(), src.ip());
        assert_eq!(answer.tcp.flags, TcpFlags::SYN | TcpFlags::ACK);
        assert_eq!(answer.tcp.ack, sent + 1);
        assert_eq!(server_key(&answer.tcp).is_some(), capable);
        if let Some(key) = server_key(&answer.tcp) {
            capable_answers += 1;
            keys.insert(key.0);
        }
        assert_eq!(server.poll_transmit(now, &mut buf), None);
        assert_eq!(server.connection_count(), 0);
    }
    assert_eq!(server.stats().syn_cookies_sent, 4000);
    assert_eq!(server.stats().connections_accepted, 0);
    assert_eq!(server.poll_timeout(), None, "no timers: nothing is kept");
    assert!(capable_answers > 1800, "{capable_answers}");
    assert_eq!(keys.len(), capable_answers, "every key differs");
}

#[test]
fn on_overflow_a_flood_keeps_at_most_the_backlog_and_cookies_the_rest() {
    let config = EndpointConfig {
        listen_backlog: 16,
        ..server_config(SynCookies::OnOverflow)
    };
    let mut server = Endpoint::new(config, [3; 32]);
    server.listen(addr(SERVER)).expect("free");
    let mut rng = SplitMix(7);
    let mut buf = vec![0u8; 2000];
    let now = Instant::from_secs(5);
    for _ in 0..2000 {
        let (_, syn, _) = spoofed_syn(&mut rng);
        assert_eq!(server.handle_packet(now, &syn), Ok(()));
        while server.poll_transmit(now, &mut buf).is_some() {}
    }
    assert_eq!(server.connection_count(), 16);
    assert_eq!(server.stats().connections_accepted, 16);
    assert_eq!(server.stats().syn_cookies_sent, 1984);
}

#[test]
fn the_syn_ack_queue_bounds_a_burst_between_polls() {
    let config = EndpointConfig {
        max_pending_syn_acks: 10,
        ..server_config(SynCookies::Always)
    };
    let mut server = Endpoint::new(config, [3; 32]);
    server.listen(addr(SERVER)).expect("free");
    let mut rng = SplitMix(9);
    let now = Instant::from_secs(5);
    for _ in 0..25 {
        let (_, syn, _) = spoofed_syn(&mut rng);
        let _ = server.handle_packet(now, &syn);
    }
    assert_eq!(server.stats().dropped(DropReason::SynAckQueueFull), 15);
    let mut buf = vec![0u8; 2000];
    let sent = core::iter::from_fn(|| server.poll_transmit(now, &mut buf)).count();
    assert_eq!(sent, 10);
}

/// Injects `n` spoofed SYNs towards the server each time it is called.
fn flood(pair: &mut Pair, rng: &mut SplitMix, n: usize, injected: &mut usize) {
    for _ in 0..n {
        let (_, syn, _) = spoofed_syn(rng);
        pair.inject(Side::Client, syn);
        *injected += 1;
    }
}

#[test]
fn an_mptcp_connection_opened_during_a_flood_negotiates_options_moves_data_and_joins() {
    let client_config = EndpointConfig {
        mptcp: Some(mptcp_config(false)),
        ..EndpointConfig::default()
    };
    let mut pair = Pair::new(client_config, server_config(SynCookies::Always));
    let listener = pair.server.listen(addr(SERVER)).expect("free");
    let mut rng = SplitMix(1);
    let mut injected = 0;
    flood(&mut pair, &mut rng, 500, &mut injected);
    let now = pair.now;
    let client = pair
        .client
        .connect_mptcp(
            now,
            addr("10.0.0.1:0"),
            addr(SERVER),
            &["10.0.1.1".parse().expect("ip")],
        )
        .expect("connect");
    let mut server: Option<ConnHandle> = None;
    let done = pair.run_until(Duration::from_secs(10), |p| {
        if injected < 3000 {
            flood(p, &mut rng, 50, &mut injected);
        }
        if server.is_none() {
            server = p.server.accept(listener);
        }
        server.is_some() && injected >= 3000
    });
    assert!(done);
    let server = server.expect("accepted");
    assert_eq!(pair.server.stats().syn_cookies_accepted, 1);
    assert!(pair.server.stats().syn_cookies_sent >= 2500);
    // Only the legitimate connection holds state.
    assert_eq!(pair.server.connection_count(), 1);

    // Data both ways.
    let data = common::pattern(3, 200_000);
    let back = common::pattern(4, 150_000);
    let (mut up, mut down) = (
        common::Stream::new(Side::Client, client, data.clone()),
        common::Stream::new(Side::Server, server, back.clone()),
    );
    up.close_when_written = false;
    down.close_when_written = false;
    pair.run_until(Duration::from_secs(60), |p| {
        up.pump(p);
        down.pump(p);
        // The server's stream reads what the client wrote and vice versa.
        down.received.len() >= data.len() && up.received.len() >= back.len()
    });
    assert!(down.received == data, "client -> server bytes differ");
    assert!(up.received == back, "server -> client bytes differ");

    // Options negotiated through the cookie match the client's view.
    let s = pair.server.mptcp(server).expect("MPTCP");
    let c = pair.client.mptcp(client).expect("MPTCP");
    assert_eq!(s.stats().mode, ConnMode::Mptcp);
    let s_initial = s
        .subflow_ids()
        .next()
        .and_then(|id| s.subflow_tcp(id))
        .expect("initial subflow");
    let c_initial = c
        .subflow_ids()
        .next()
        .and_then(|id| c.subflow_tcp(id))
        .expect("initial subflow");
    assert!(s_initial.sack_enabled() && c_initial.sack_enabled());
    assert!(s_initial.timestamps_enabled() && c_initial.timestamps_enabled());
    let (s_ours, s_peer) = s_initial.window_shifts();
    let (c_ours, c_peer) = c_initial.window_shifts();
    assert_eq!((s_ours, s_peer), (c_peer, c_ours));
    assert_eq!(s_ours, 2, "128 KiB needs a shift of 2");
    assert_eq!(s_initial.iss(), c_initial.irs());
    assert_eq!(s_initial.stats().send_mss, 1460);
    assert!(s_initial.stats().srtt.is_some(), "RTT sample from the echo");
    // The second subflow joined (MP_JOIN is never cookied).
    assert_eq!(
        pair.server
            .mptcp_stats(server)
            .expect("MPTCP")
            .subflows
            .len(),
        2
    );
    assert_eq!(
        pair.client
            .mptcp_stats(client)
            .expect("MPTCP")
            .subflows
            .len(),
        2
    );
}

/// A server that is one shard of several derives its cookie keys so that their
/// tokens are its own (MP_JOINs are steered by token): every connection through a
/// cookie stays MPTCP and takes a join, whichever shard the server is.
#[test]
fn a_sharded_server_keeps_cookie_connections_mptcp_with_tokens_it_owns() {
    for index in 0..3 {
        let shard = Shard::new(index, 3, SteerKey([5; 16])).expect("valid");
        let client_config = EndpointConfig {
            mptcp: Some(mptcp_config(false)),
            ..EndpointConfig::default()
        };
        let server_config = EndpointConfig {
            shard: Some(shard),
            ..server_config(SynCookies::Always)
        };
        let mut pair = Pair::new(client_config, server_config);
        let listener = pair.server.listen(addr(SERVER)).expect("free");
        for i in 0..6u64 {
            let now = pair.now;
            let client = pair
                .client
                .connect_mptcp(
                    now,
                    addr("10.0.0.1:0"),
                    addr(SERVER),
                    &["10.0.1.1".parse().expect("ip")],
                )
                .expect("connect");
            let mut server: Option<ConnHandle> = None;
            assert!(pair.run_until(Duration::from_secs(5), |p| {
                server = server.or_else(|| p.server.accept(listener));
                server.is_some()
            }));
            let server = server.expect("accepted");
            // A byte each way makes MPTCP fully established, which the join waits for.
            let (mut up, mut down) = (
                common::Stream::new(Side::Client, client, vec![1]),
                common::Stream::new(Side::Server, server, vec![2]),
            );
            up.close_when_written = false;
            down.close_when_written = false;
            let joined = pair.run_until(Duration::from_secs(10), |p| {
                up.pump(p);
                down.pump(p);
                let established = |e: &Endpoint, h| {
                    e.mptcp_stats(h).map_or(0, |st| {
                        st.subflows.iter().filter(|sf| sf.established).count()
                    })
                };
                established(&p.server, server) == 2 && established(&p.client, client) == 2
            });
            let s = pair.server.mptcp(server).expect("MPTCP, not a fallback");
            assert_eq!(s.stats().mode, ConnMode::Mptcp, "{shard:?}, connection {i}");
            assert!(
                shard.owns_token(s.local_token()),
                "{shard:?}: token {:?}",
                s.local_token()
            );
            assert!(
                joined,
                "{shard:?}, connection {i}: the join did not complete"
            );
        }
        let stats = pair.server.stats();
        assert_eq!(stats.syn_cookies_accepted, 6, "{shard:?}");
        assert_eq!(stats.syn_cookie_token_fallbacks, 0, "{shard:?}");
    }
}

#[test]
fn a_plain_tcp_connection_through_a_cookie_keeps_window_scale_sack_and_timestamps() {
    let mut pair = Pair::new(EndpointConfig::default(), server_config(SynCookies::Always));
    let listener = pair.server.listen(addr(SERVER)).expect("free");
    let now = pair.now;
    let client = pair
        .client
        .connect(now, addr("10.0.0.1:0"), addr(SERVER))
        .expect("connect");
    let mut server = None;
    pair.run_until(Duration::from_secs(5), |p| {
        server = server.or_else(|| p.server.accept(listener));
        server.is_some()
    });
    let server = server.expect("accepted");
    assert_eq!(pair.server.stats().syn_cookies_accepted, 1);
    assert_eq!(pair.server.is_mptcp(server), Ok(false));
    let s = pair.server.socket(server).expect("plain TCP").connection();
    let c = pair.client.socket(client).expect("plain TCP").connection();
    assert!(s.sack_enabled() && s.timestamps_enabled());
    assert_eq!(
        s.window_shifts(),
        (c.window_shifts().1, c.window_shifts().0)
    );
    assert_eq!(s.iss(), c.irs());
    let data = common::pattern(5, 100_000);
    let mut up = common::Stream::new(Side::Client, client, data.clone());
    let mut down = common::Stream::new(Side::Server, server, Vec::new());
    pair.run_until(Duration::from_secs(60), |p| {
        up.pump(p);
        down.pump(p);
        down.received.len() >= data.len()
    });
    assert!(down.received == data);
}

/// Sends a SYN from `client_addr` and returns the cookie SYN/ACK.
fn handshake_start(
    server: &mut Endpoint,
    now: Instant,
    syn: TcpRepr<'_>,
    from: SocketAddr,
) -> TcpRepr<'static> {
    server
        .handle_packet(now, &ip_packet(from, addr(SERVER), syn))
        .expect("answered");
    let mut buf = vec![0u8; 2000];
    let len = server.poll_transmit(now, &mut buf).expect("SYN/ACK");
    let parsed = common::parse(&buf[..len]);
    TcpRepr {
        options: TcpOptions {
            mptcp: Default::default(),
            ..parsed.tcp.options.clone()
        },
        payload: &[],
        ..parsed.tcp.clone()
    }
}

fn plain_syn(seq: u32) -> TcpRepr<'static> {
    TcpRepr {
        src_port: 4000,
        dst_port: 80,
        seq: SeqNum(seq),
        ack: SeqNum(0),
        flags: TcpFlags::SYN,
        window: 65_535,
        urgent: 0,
        options: TcpOptions {
            mss: Some(1460),
            ..TcpOptions::default()
        },
        payload: &[],
    }
}

fn ack_for(syn_ack: &TcpRepr<'_>, ack_delta: u32) -> TcpRepr<'static> {
    TcpRepr {
        src_port: syn_ack.dst_port,
        dst_port: syn_ack.src_port,
        seq: syn_ack.ack,
        ack: syn_ack.seq + 1 + ack_delta,
        flags: TcpFlags::ACK,
        window: 65_535,
        urgent: 0,
        options: TcpOptions::default(),
        payload: &[],
    }
}

#[test]
fn forged_or_expired_cookies_are_reset_and_create_nothing() {
    let client = addr("10.0.0.1:4000");
    let mut server = Endpoint::new(server_config(SynCookies::Always), [3; 32]);
    server.listen(addr(SERVER)).expect("free");
    let t0 = Instant::from_secs(100);
    let syn_ack = handshake_start(&mut server, t0, plain_syn(5000), client);
    let mut buf = vec![0u8; 2000];

    // A wrong cookie: RST <SEQ=SEG.ACK>, nothing created.
    let forged = ack_for(&syn_ack, 1);
    assert_eq!(
        server.handle_packet(t0, &ip_packet(client, addr(SERVER), forged.clone())),
        Err(DropReason::InvalidCookie)
    );
    let len = server.poll_transmit(t0, &mut buf).expect("RST");
    let rst = common::parse(&buf[..len]);
    assert_eq!(rst.tcp.flags, TcpFlags::RST);
    assert_eq!(rst.tcp.seq, forged.ack);
    // The right cookie after two counter periods: expired.
    let late = t0 + SYN_COOKIE_PERIOD + SYN_COOKIE_PERIOD;
    assert_eq!(
        server.handle_packet(late, &ip_packet(client, addr(SERVER), ack_for(&syn_ack, 0))),
        Err(DropReason::InvalidCookie)
    );
    assert_eq!(server.connection_count(), 0);
    assert_eq!(server.stats().dropped(DropReason::InvalidCookie), 2);
    // Within its life it is accepted.
    let in_time = t0 + SYN_COOKIE_PERIOD;
    assert_eq!(
        server.handle_packet(
            in_time,
            &ip_packet(client, addr(SERVER), ack_for(&syn_ack, 0))
        ),
        Ok(())
    );
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.stats().syn_cookies_accepted, 1);
}

/// The client's third ACK (a pure ACK), or its first data segment when the ACK rides
/// on it, is lost: the first data with MP_CAPABLE (22 bytes, 24 with a checksum), sent
/// or retransmitted, rebuilds the connection; a later segment that overtakes it is
/// dropped silently (no RST), so nothing is lost.
#[test]
fn a_lost_third_ack_is_replaced_by_the_first_data_with_mp_capable() {
    for checksums in [false, true] {
        for piggybacked in [false, true] {
            lost_third_ack(checksums, piggybacked);
        }
    }
}

/// An MPTCP client connected to a SYN-cookie server whose listener is returned; the
/// client's second packet (the pure third ACK, or the first data with the ACK) will
/// be lost. Runs until the client is synchronized.
fn connected_losing_the_third_ack(checksums: bool) -> (Pair, ListenerHandle, ConnHandle) {
    let client_config = EndpointConfig {
        mptcp: Some(mptcp_config(checksums)),
        ..EndpointConfig::default()
    };
    let mut pair = Pair::new(client_config, server_config(SynCookies::Always));
    pair.record = true;
    pair.filter = Some(Box::new(|side, index, _| match (side, index) {
        (Side::Client, 1) => Action::Drop,
        _ => Action::Deliver,
    }));
    let listener = pair.server.listen(addr(SERVER)).expect("free");
    let now = pair.now;
    let client = pair
        .client
        .connect_mptcp(now, addr("10.0.0.1:0"), addr(SERVER), &[])
        .expect("connect");
    pair.run_until(Duration::from_millis(100), |p| {
        p.client.state(client).is_ok_and(|s| s.is_synchronized())
    });
    (pair, listener, client)
}

fn lost_third_ack(checksums: bool, piggybacked: bool) {
    let (mut pair, listener, client) = connected_losing_the_third_ack(checksums);
    if !piggybacked {
        // Let the pure third ACK go out (and be lost) before any data.
        pair.run_until(Duration::from_millis(30), |_| false);
        assert_eq!(pair.server.connection_count(), 0, "the ACK was lost");
    }
    let data = common::pattern(8, 3000);
    assert_eq!(pair.client.write(client, &data), Ok(3000));
    let mut server = None;
    let mut got = Vec::new();
    pair.run_until(Duration::from_secs(10), |p| {
        server = server.or_else(|| p.server.accept(listener));
        if let Some(h) = server {
            let mut buf = [0u8; 4096];
            while let Ok(n) = p.server.read(h, &mut buf) {
                if n == 0 {
                    break;
                }
                got.extend_from_slice(&buf[..n]);
            }
        }
        got.len() >= data.len()
    });
    let case = format!("checksums {checksums}, piggybacked {piggybacked}");
    assert!(got == data, "{case}");
    let server = server.expect("accepted");
    assert_eq!(pair.server.stats().syn_cookies_accepted, 1, "{case}");
    assert_eq!(pair.server.stats().resets_sent, 0, "{case}");
    assert_eq!(
        pair.server.mptcp_stats(server).expect("MPTCP").mode,
        ConnMode::Mptcp
    );
    assert_eq!(
        pair.client.mptcp_stats(client).expect("MPTCP").mode,
        ConnMode::Mptcp
    );
    // The segment that rebuilt the connection carried the first-data form.
    let first_data = pair
        .wire
        .iter()
        .filter(|w| w.from == Side::Client && w.action == Action::Deliver)
        .map(|w| common::parse(&w.bytes))
        .find(|p| !p.tcp.payload.is_empty())
        .expect("a data segment");
    let form = first_data.tcp.options.mptcp.iter().find_map(|o| match o {
        MptcpOption::MpCapable(MpCapable {
            keys: MpCapableKeys::BothWithData { checksum, .. },
            ..
        }) => Some(checksum.is_some()),
        _ => None,
    });
    assert_eq!(
        form,
        Some(checksums),
        "22 bytes, or 24 with a checksum: {case}"
    );
}

/// An application on one end of a connection: writes `data`, reads to the end of
/// the peer's stream, and closes once it wrote everything and (unless it speaks
/// first, `close_first`) the peer closed.
struct App {
    side: Side,
    handle: Option<ConnHandle>,
    data: Vec<u8>,
    written: usize,
    received: Vec<u8>,
    peer_closed: bool,
    close_first: bool,
    closed: bool,
}

impl App {
    fn new(side: Side, handle: Option<ConnHandle>, data: Vec<u8>) -> App {
        App {
            side,
            handle,
            data,
            written: 0,
            received: Vec::new(),
            peer_closed: false,
            close_first: false,
            closed: false,
        }
    }

    fn pump(&mut self, pair: &mut Pair) {
        let Some(h) = self.handle else {
            return;
        };
        let events = match self.side {
            Side::Client => &pair.client_events,
            Side::Server => &pair.server_events,
        };
        self.peer_closed |= events.contains(&Event::Connection(h, TcpEvent::PeerClosed));
        let ep = pair.endpoint(self.side);
        if let Ok(n) = ep.write(h, &self.data[self.written..]) {
            self.written += n;
        }
        let mut buf = [0u8; 4096];
        while let Ok(n) = ep.read(h, &mut buf) {
            if n == 0 {
                break;
            }
            self.received.extend_from_slice(&buf[..n]);
        }
        if self.written == self.data.len() && (self.peer_closed || self.close_first) && !self.closed
        {
            self.closed = ep.close(h).is_ok();
        }
    }

    /// The connection ended normally: closed, never reset or timed out.
    fn ended_cleanly(&self, pair: &Pair) -> bool {
        let Some(h) = self.handle else {
            return false;
        };
        let events = match self.side {
            Side::Client => &pair.client_events,
            Side::Server => &pair.server_events,
        };
        let bad = events.iter().any(|e| {
            *e == Event::Connection(h, TcpEvent::Reset)
                || *e == Event::Connection(h, TcpEvent::TimedOut)
        });
        !bad && events.contains(&Event::Connection(h, TcpEvent::Closed))
    }
}

/// The client's pure third ACK is lost on the way to a server that keeps no state
/// before it (SYN cookies), and the client has no data: it may close at once
/// (`server_first` false) or wait for the server to speak first. The keys must
/// still reach the server (RFC 8684 §3.1), and both ends close cleanly.
fn lost_third_ack_without_client_data(server_first: bool) {
    let (mut pair, listener, handle) = connected_losing_the_third_ack(false);
    // The pure third ACK goes out (and is lost).
    pair.run_until(Duration::from_millis(30), |_| false);
    assert_eq!(pair.server.connection_count(), 0, "the ACK was lost");
    let banner = common::pattern(11, if server_first { 5000 } else { 0 });
    let mut client = App::new(Side::Client, Some(handle), Vec::new());
    if !server_first {
        pair.client.close(handle).expect("open");
        client.closed = true;
    }
    let mut server = App::new(Side::Server, None, banner.clone());
    server.close_first = server_first;
    let case = if server_first {
        "the server writes first"
    } else {
        "the client closes at once"
    };
    // Closed is reported once the connection is gone, TIME-WAIT (60 s) included.
    let done = pair.run_until(Duration::from_secs(90), |p| {
        server.handle = server.handle.or_else(|| p.server.accept(listener));
        client.pump(p);
        server.pump(p);
        client.ended_cleanly(p) && server.ended_cleanly(p)
    });
    assert!(
        done,
        "{case}: client {:?}, server {:?}",
        pair.client_events, pair.server_events
    );
    assert!(client.received == banner, "{case}");
    assert_eq!(pair.server.stats().syn_cookies_accepted, 1, "{case}");
    let rst = pair
        .wire
        .iter()
        .any(|w| common::parse(&w.bytes).tcp.flags.contains(TcpFlags::RST));
    assert!(!rst, "{case}: a RST went out");
    pair.run_idle(Duration::from_secs(300));
    assert_eq!(pair.client.connection_count(), 0, "{case}");
    assert_eq!(pair.server.connection_count(), 0, "{case}");
}

#[test]
fn a_lost_third_ack_and_a_close_without_data_close_both_ends_through_a_cookie() {
    lost_third_ack_without_client_data(false);
}

#[test]
fn a_lost_third_ack_before_the_server_speaks_first_still_reaches_a_cookie_server() {
    lost_third_ack_without_client_data(true);
}

#[test]
fn cookies_off_keeps_the_stateful_handshake() {
    let mut server = Endpoint::new(server_config(SynCookies::Never), [3; 32]);
    server.listen(addr(SERVER)).expect("free");
    let now = Instant::from_secs(5);
    let syn_ack = handshake_start(&mut server, now, plain_syn(1), addr("10.0.0.1:4000"));
    assert_eq!(server.connection_count(), 1);
    assert_eq!(server.stats().syn_cookies_sent, 0);
    assert_eq!(syn_ack.flags, TcpFlags::SYN | TcpFlags::ACK);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary ACKs to a listener that has handed out cookies never create a
    /// connection; the genuine ACK still does afterwards.
    #[test]
    fn arbitrary_acks_never_create_a_connection_without_a_valid_cookie(
        acks in proptest::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u16>(), 1..=0xffu8, proptest::collection::vec(any::<u8>(), 0..64), any::<bool>()),
            1..24,
        ),
    ) {
        let client = addr("10.0.0.1:4000");
        let mut server = Endpoint::new(server_config(SynCookies::Always), [3; 32]);
        server.listen(addr(SERVER)).expect("free");
        let now = Instant::from_secs(100);
        let syn_ack = handshake_start(&mut server, now, plain_syn(777), client);
        let genuine = ack_for(&syn_ack, 0);
        let mut buf = vec![0u8; 2000];
        for (seq, ack, port, flags, payload, near) in acks {
            let flags = TcpFlags(flags | TcpFlags::ACK.0);
            // Half the cases stay close to the genuine ACK (same port and seq).
            let (seq, ack, port) = if near {
                let delta = ack | 1;
                (genuine.seq.0, genuine.ack.0.wrapping_add(delta), 4000)
            } else {
                (seq, ack, port.max(1))
            };
            let tcp = TcpRepr {
                src_port: port,
                dst_port: 80,
                seq: SeqNum(seq),
                ack: SeqNum(ack),
                flags,
                window: 1000,
                urgent: 0,
                options: TcpOptions::default(),
                payload: &payload,
            };
            let _ = server.handle_packet(now, &ip_packet(client, addr(SERVER), tcp));
            while server.poll_transmit(now, &mut buf).is_some() {}
            prop_assert_eq!(server.connection_count(), 0);
        }
        prop_assert_eq!(server.stats().syn_cookies_accepted, 0);
        prop_assert_eq!(server.handle_packet(now, &ip_packet(client, addr(SERVER), genuine)), Ok(()));
        prop_assert_eq!(server.connection_count(), 1);
    }
}
