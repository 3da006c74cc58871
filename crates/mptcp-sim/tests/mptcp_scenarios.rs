//! MPTCP over the simulator in the situations RFC 8684 exists for: middleboxes that
//! strip options or rewrite payload, paths that vanish and return, forged joins, SYN
//! floods, and the aggregation of two unequal paths.
//!
//! Each test states its seed; replay a failure with `MPTCP_SEED=<seed>` (the seed
//! overrides the scenario's).

use std::cell::RefCell;
use std::net::SocketAddr;
use std::path::Path;
use std::rc::Rc;

use mptcp_proto::mptcp::{ConnMode, FallbackReason, MptcpEvent, SubflowDownReason};
use mptcp_proto::wire::IpTcpRepr;
use mptcp_proto::wire::mptcp::{MptcpOption, TcpRstReason};
use mptcp_proto::{Duration, Instant};
use mptcp_sim::middlebox::{Verdict, strip_mptcp_subtypes};
use mptcp_sim::packet::{TcpSegmentSpec, build_tcp_packet};
use mptcp_sim::traffic::{RunOptions, RunReport, StackHost, TrafficRun};
use mptcp_sim::{Context, Direction, Host, Scenario};

fn seed_or(default: u64) -> u64 {
    std::env::var("MPTCP_SEED").map_or(default, |s| {
        s.parse()
            .unwrap_or_else(|_| panic!("MPTCP_SEED={s:?} is not a number"))
    })
}

/// A client with `paths` addresses, each on its own link to a router, a server behind
/// it, and one MPTCP flow of `bytes` from the client. `link` is TOML for every access
/// link; `options` for both hosts.
fn network(paths: usize, link: &str, options: &str, bytes: u64, seed: u64) -> Scenario {
    let text = network_text(paths, link, options, bytes, seed);
    Scenario::parse(&text, Path::new(".")).expect("test scenario parses")
}

fn network_text(paths: usize, link: &str, options: &str, bytes: u64, seed: u64) -> String {
    let mut text = format!("seed = {seed}\n");
    let client: Vec<String> = (1..=paths).map(|i| format!("\"10.{i}.0.1\"")).collect();
    let mut router: Vec<String> = (1..=paths).map(|i| format!("\"10.{i}.0.254\"")).collect();
    router.push("\"10.0.0.254\"".into());
    text += &format!(
        r#"
        [[host]]
        name = "client"
        addresses = [{}]
        options = {{ {options} }}
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        options = {{ {options} }}
        [[router]]
        name = "r"
        addresses = [{}]
        [[link]]
        name = "core"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "10gbit"
        delay = "0ms"
        "#,
        client.join(", "),
        router.join(", ")
    );
    for i in 1..=paths {
        text += &format!(
            "[[link]]\nname = \"path{i}\"\na = \"10.{i}.0.1\"\nb = \"10.{i}.0.254\"\n{link}\n"
        );
    }
    text += &format!(
        "[[flow]]\nfrom = \"client\"\nto = \"server:80\"\nbytes = {bytes}\nkind = \"mptcp\"\n"
    );
    text
}

fn run(run: &mut TrafficRun) -> RunReport {
    run.run();
    let report = run.report();
    println!("{report}");
    report
}

#[track_caller]
fn assert_intact(report: &RunReport) {
    let flow = &report.flows[0];
    assert!(
        flow.is_complete_and_intact(),
        "seed {}: {}: {}",
        report.seed,
        flow.outcome,
        report
    );
}

// ---- fallback through option-stripping middleboxes ---------------------------------

#[test]
fn mp_capable_stripped_from_the_syn_ack_gives_transparent_tcp() {
    let seed = seed_or(11);
    let s = network(
        2,
        "rate = \"20mbit\"\ndelay = \"10ms\"",
        "",
        2_000_000,
        seed,
    );
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    // Server to client on the initial path: MP_CAPABLE (subtype 0) removed.
    let link = r.sim().link_id("path1").expect("path1");
    r.sim_mut()
        .set_middlebox(link, Direction::BToA, strip_mptcp_subtypes(&[0]));
    let report = run(&mut r);
    assert_intact(&report);
    let m = report.flows[0].mptcp.as_ref().expect("an MPTCP flow");
    assert_eq!(m.mode, Some(ConnMode::Fallback));
    assert_eq!(m.fallback, Some(FallbackReason::NoMpCapableInSynAck));
    // Plain TCP: no joins, the second path stays unused.
    assert_eq!(m.subflows_opened, 1);
    assert_eq!(report.flows[0].delivered, 2_000_000);
}

#[test]
fn dss_stripped_from_data_segments_gives_transparent_tcp() {
    let seed = seed_or(12);
    let s = network(
        2,
        "rate = \"20mbit\"\ndelay = \"10ms\"",
        "",
        2_000_000,
        seed,
    );
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    // Client to server on the initial path: MP_CAPABLE and DSS (subtypes 0 and 2)
    // removed from segments with payload only, so the handshake (third ACK with both
    // keys included) passes untouched and the first data arrives bare.
    let link = r.sim().link_id("path1").expect("path1");
    let mut strip = strip_mptcp_subtypes(&[0, 2]);
    r.sim_mut().set_middlebox(
        link,
        Direction::AToB,
        move |now: Instant, packet: &mut Vec<u8>| {
            let has_payload =
                IpTcpRepr::parse(packet, false).is_ok_and(|p| !p.tcp.payload.is_empty());
            if has_payload {
                mptcp_sim::Middlebox::process(&mut strip, now, packet)
            } else {
                Verdict::Forward
            }
        },
    );
    let report = run(&mut r);
    assert_intact(&report);
    let m = report.flows[0].mptcp.as_ref().expect("an MPTCP flow");
    // The server sees data without DSS and falls back (RFC 8684 §3.7); the client
    // follows when its data is acknowledged without a data ACK.
    assert_eq!(m.peer_mode, Some(ConnMode::Fallback), "{m:?}");
    assert_eq!(m.mode, Some(ConnMode::Fallback), "{m:?}");
    assert_eq!(report.flows[0].delivered, 2_000_000);
}

// ---- payload corruption with DSS checksums ------------------------------------------

/// Flips one payload byte of the `nth` data segment entering the link and fixes the
/// TCP checksum, as a rewriting middlebox would: only the DSS checksum can tell.
fn corrupt_nth(nth: usize) -> impl FnMut(Instant, &mut Vec<u8>) -> Verdict {
    let mut seen = 0;
    move |_now, packet: &mut Vec<u8>| {
        let original = packet.clone();
        let Ok(parsed) = IpTcpRepr::parse(&original, false) else {
            return Verdict::Forward;
        };
        if parsed.tcp.payload.is_empty() {
            return Verdict::Forward;
        }
        seen += 1;
        if seen != nth {
            return Verdict::Forward;
        }
        let mut payload = parsed.tcp.payload.to_vec();
        let middle = payload.len() / 2;
        payload[middle] ^= 0x5a;
        let mut out = parsed.clone();
        out.tcp.payload = &payload;
        let mut buf = vec![0u8; out.buffer_len()];
        let len = out.emit(&mut buf, true).expect("re-emits");
        buf.truncate(len);
        *packet = buf;
        Verdict::Forward
    }
}

#[test]
fn corrupted_payload_on_the_only_subflow_gives_mp_fail_and_fallback_never_wrong_bytes() {
    let seed = seed_or(13);
    let s = network(
        1,
        "rate = \"20mbit\"\ndelay = \"10ms\"",
        "checksum = true",
        1_000_000,
        seed,
    );
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    let link = r.sim().link_id("path1").expect("path1");
    r.sim_mut()
        .set_middlebox(link, Direction::AToB, corrupt_nth(40));
    let report = run(&mut r);
    assert_intact(&report);
    let m = report.flows[0].mptcp.as_ref().expect("an MPTCP flow");
    assert!(m.checksums);
    assert_eq!(m.fallback, Some(FallbackReason::ChecksumFailure), "{m:?}");
    assert_eq!(m.peer_mode, Some(ConnMode::Fallback));
}

#[test]
fn corrupted_payload_with_several_subflows_resets_that_subflow_never_wrong_bytes() {
    let seed = seed_or(14);
    let s = network(
        2,
        "rate = \"20mbit\"\ndelay = \"10ms\"",
        "checksum = true",
        4_000_000,
        seed,
    );
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    // The second path, once it carries data.
    let link = r.sim().link_id("path2").expect("path2");
    r.sim_mut()
        .set_middlebox(link, Direction::AToB, corrupt_nth(30));
    let report = run(&mut r);
    assert_intact(&report);
    let m = report.flows[0].mptcp.as_ref().expect("an MPTCP flow");
    assert_eq!(
        m.mode,
        Some(ConnMode::Mptcp),
        "no fallback with two subflows"
    );
    assert_eq!(m.fallback, None);
    // The receiver reset the subflow with MP_TCPRST; the sender saw it go down.
    let (down, _) = m.count_events(|e| {
        matches!(
            e,
            MptcpEvent::SubflowDown {
                reason: SubflowDownReason::Reset { .. },
                ..
            }
        )
    });
    assert!(down >= 1, "{:?}", m.events);
}

// ---- make-after-break ----------------------------------------------------------------

#[test]
fn every_path_gone_longer_than_the_rto_then_back_the_connection_resumes() {
    let seed = seed_or(15);
    // Both paths go dark from 1 s to 5 s: many RTOs on every subflow.
    let outage = "[[link.events]]\nat = \"1s\"\nstate = \"down\"\n\
                  [[link.events]]\nat = \"5s\"\nstate = \"up\"";
    let s = network(
        2,
        &format!("rate = \"10mbit\"\ndelay = \"10ms\"\n{outage}"),
        "make_after_break = \"30s\"",
        5_000_000,
        seed,
    );
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    let report = run(&mut r);
    assert_intact(&report);
    let flow = &report.flows[0];
    let m = flow.mptcp.as_ref().expect("an MPTCP flow");
    assert_eq!(m.mode, Some(ConnMode::Mptcp));
    let rtos: u64 = m.subflows.iter().map(|s| s.rto_count).sum();
    assert!(rtos >= 2, "the outage was felt: {rtos} RTOs");
    // 5 MB at 20 Mbit/s is 2 s; with the 4 s outage and the backoff, well under 30 s.
    let completion = flow.completion.expect("completed");
    assert!(completion > Duration::from_secs(5), "{completion:?}");
}

// ---- make-before-break: one subflow per address pair after a path returns ----------

/// Wi-Fi (20 Mbit/s, 10 ms) goes dark from 2 s to 5 s next to LTE (10 Mbit/s, 30 ms);
/// 25 MB keep both busy until well after Wi-Fi is back.
fn wifi_outage_text(seed: u64) -> String {
    format!(
        r#"
        seed = {seed}
        [[host]]
        name = "client"
        addresses = ["10.1.0.1", "10.2.0.1"]
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        [[router]]
        name = "r"
        addresses = ["10.1.0.254", "10.2.0.254", "10.0.0.254"]
        [[link]]
        name = "core"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "10gbit"
        delay = "0ms"
        [[link]]
        name = "wifi"
        a = "10.1.0.1"
        b = "10.1.0.254"
        rate = "20mbit"
        delay = "10ms"
        queue = "100 packets"
        [[link.events]]
        at = "2s"
        state = "down"
        [[link.events]]
        at = "5s"
        state = "up"
        [[link]]
        name = "lte"
        a = "10.2.0.1"
        b = "10.2.0.254"
        rate = "10mbit"
        delay = "30ms"
        queue = "100 packets"
        [[flow]]
        from = "client"
        to = "server:80"
        bytes = 25_000_000
        kind = "mptcp"
        "#
    )
}

/// The sender's subflows still alive (not closed, reset or given up), by local
/// address: an open subflow whose handshake is under way counts too.
fn live_subflows(m: &mptcp_sim::traffic::MptcpReport) -> Vec<(SocketAddr, u64, u64)> {
    let down: Vec<_> = m
        .events
        .iter()
        .filter_map(|(_, e)| match e {
            MptcpEvent::SubflowDown { id, .. } => Some(*id),
            _ => None,
        })
        .collect();
    m.subflows
        .iter()
        .filter(|s| s.state != mptcp_proto::tcp::TcpState::Closed && !down.contains(&s.id))
        .map(|s| (s.local, u64::from(s.id.0), s.bytes_sent))
        .collect()
}

#[test]
fn after_a_three_second_outage_each_address_pair_keeps_one_subflow_and_it_carries_data() {
    // Make-before-break opens a replacement on the Wi-Fi pair when its subflow goes
    // stale; when the path returns, both used to live on, one of them idle.
    for seed in [seed_or(5), 6, 7] {
        let text = wifi_outage_text(seed);
        let s = Scenario::parse(&text, Path::new(".")).expect("test scenario parses");
        let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
        // A second after Wi-Fi came back.
        r.run_until(Instant::ZERO + Duration::from_secs(6));
        let before = r.report();
        let report = run(&mut r);
        assert_intact(&report);
        let m = report.flows[0].mptcp.as_ref().expect("an MPTCP flow");
        let live = live_subflows(m);
        for ip in ["10.1.0.1", "10.2.0.1"] {
            let on_pair: Vec<_> = live
                .iter()
                .filter(|(l, ..)| l.ip().to_string() == ip)
                .collect();
            assert_eq!(
                on_pair.len(),
                1,
                "seed {seed}: one subflow from {ip} at the end: {live:?}\n{report}"
            );
        }
        let wifi = live
            .iter()
            .find(|(l, ..)| l.ip().to_string() == "10.1.0.1")
            .expect("checked above");
        let sent_before = before.flows[0]
            .mptcp
            .as_ref()
            .and_then(|m| m.subflows.iter().find(|s| u64::from(s.id.0) == wifi.1))
            .map_or(0, |s| s.bytes_sent);
        assert!(
            wifi.2 - sent_before > 2_000_000,
            "seed {seed}: the Wi-Fi subflow carries data after the outage: {} bytes\n{report}",
            wifi.2 - sent_before
        );
    }
}

// ---- a forged MP_JOIN ------------------------------------------------------------------

#[test]
fn a_join_with_a_wrong_hmac_is_refused_with_mp_tcprst_and_the_connection_is_untouched() {
    let seed = seed_or(16);
    let s = network(
        2,
        "rate = \"20mbit\"\ndelay = \"10ms\"",
        "",
        2_000_000,
        seed,
    );
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    // On the second path, the join's third ACK (MP_JOIN, 24 bytes, full HMAC) has one
    // HMAC byte changed; TCP checksum fixed.
    let link = r.sim().link_id("path2").expect("path2");
    r.sim_mut().set_middlebox(
        link,
        Direction::AToB,
        |_now: Instant, packet: &mut Vec<u8>| {
            let Ok(parsed) = IpTcpRepr::parse(packet, false) else {
                return Verdict::Forward;
            };
            let third_ack = parsed.tcp.flags.ack()
                && !parsed.tcp.flags.syn()
                && parsed
                    .tcp
                    .options
                    .mptcp
                    .iter()
                    .any(|o| matches!(o, MptcpOption::MpJoin(_)));
            drop(parsed);
            if !third_ack {
                return Verdict::Forward;
            }
            // Find the 24-byte MP_JOIN option in the raw header and flip an HMAC byte.
            let ip_len = if packet[0] >> 4 == 4 { 20 } else { 40 };
            let header_len = usize::from(packet[ip_len + 12] >> 4) * 4;
            let mut off = ip_len + 20;
            while off + 1 < ip_len + header_len {
                match packet[off] {
                    0 => break,
                    1 => off += 1,
                    kind => {
                        let len = usize::from(packet[off + 1]).max(2);
                        if kind == 30 && len == 24 {
                            packet[off + 10] ^= 0xff;
                        }
                        off += len;
                    }
                }
            }
            // Recompute the TCP checksum over the changed header.
            let original = packet.clone();
            let Ok(parsed) = IpTcpRepr::parse(&original, false) else {
                return Verdict::Forward;
            };
            let mut buf = vec![0u8; parsed.buffer_len()];
            let len = parsed.emit(&mut buf, true).expect("re-emits");
            buf.truncate(len);
            *packet = buf;
            Verdict::Forward
        },
    );
    // Watch the server's answers on the second path for a RST with MP_TCPRST.
    let rsts = Rc::new(RefCell::new(Vec::new()));
    let seen = rsts.clone();
    r.sim_mut().set_delivery_tap(move |_now, _node, bytes| {
        if let Ok(p) = IpTcpRepr::parse(bytes, false)
            && p.tcp.flags.rst()
            && p.ip.src_addr() == "10.0.0.1".parse::<std::net::IpAddr>().expect("literal")
            && p.ip.dst_addr() == "10.2.0.1".parse::<std::net::IpAddr>().expect("literal")
        {
            let reason = p.tcp.options.mptcp.iter().find_map(|o| match o {
                MptcpOption::MpTcpRst(r) => Some(r.reason),
                _ => None,
            });
            seen.borrow_mut().push(reason);
        }
    });
    let report = run(&mut r);
    assert_intact(&report);
    let m = report.flows[0].mptcp.as_ref().expect("an MPTCP flow");
    assert_eq!(m.mode, Some(ConnMode::Mptcp));
    assert!(
        rsts.borrow().contains(&Some(TcpRstReason::MPTCP_ERROR)),
        "RSTs seen: {:?}",
        rsts.borrow()
    );
    // Only the initial subflow ever carried data; the joins never came up.
    let (joins_up, _) = m.count_events(|e| {
        matches!(e, MptcpEvent::SubflowUp { local, .. } if local.ip().to_string() == "10.2.0.1")
    });
    assert_eq!(joins_up, 0, "{:?}", m.events);
    let path2: u64 = m
        .subflows
        .iter()
        .filter(|s| s.local.ip().to_string() == "10.2.0.1")
        .map(|s| s.bytes_sent)
        .sum();
    assert_eq!(path2, 0);
}

// ---- a SYN flood -----------------------------------------------------------------------

/// Sends `count` MP_CAPABLE SYNs from spoofed addresses and ports, one every `gap`.
struct SynFlood {
    dst: SocketAddr,
    count: u32,
    sent: u32,
    gap: Duration,
}

impl Host for SynFlood {
    fn handle_packet(&mut self, _cx: &mut Context<'_>, _packet: &[u8]) {}

    fn poll_transmit(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> bool {
        if self.sent >= self.count || cx.now() < self.due() {
            return false;
        }
        let n = self.sent;
        // 10.66.x.y:port, never answering; MP_CAPABLE v1 with flag H (RFC 8684 §3.1).
        let src: SocketAddr = format!(
            "10.66.{}.{}:{}",
            (n >> 8) & 0xff,
            n & 0xff,
            1024 + n % 60000
        )
        .parse()
        .expect("valid address");
        build_tcp_packet(
            &TcpSegmentSpec {
                src,
                dst: self.dst,
                seq: n.wrapping_mul(2_654_435_761),
                flags: 0x02,
                window: 65535,
                options: &[2, 4, 5, 0xb4, 30, 4, 0x01, 0x01],
                ..Default::default()
            },
            buf,
        );
        self.sent += 1;
        true
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.sent < self.count).then(|| self.due())
    }

    fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}
}

impl SynFlood {
    fn due(&self) -> Instant {
        Instant::ZERO + Duration::from_micros(self.gap.total_micros() * u64::from(self.sent))
    }
}

/// What a SYN flood did to the server: its peak connection count, its backlog, and
/// its endpoint counters.
struct FloodOutcome {
    peak: usize,
    backlog: usize,
    stats: mptcp_proto::endpoint::EndpointStats,
}

/// A 2 MB MPTCP transfer over two paths while 5,000 spoofed MP_CAPABLE SYNs hit the
/// server's second interface (one every 200 µs); `options` for both hosts.
fn syn_flood(options: &str, seed: u64) -> FloodOutcome {
    // The server has a second interface, where the flooder is attached; spoofed
    // sources have no route back, so SYN/ACKs go nowhere (as with a real flood).
    let text = network_text(
        2,
        "rate = \"50mbit\"\ndelay = \"10ms\"",
        options,
        2_000_000,
        seed,
    )
    .replace(
        "addresses = [\"10.0.0.1\"]",
        "addresses = [\"10.0.0.1\", \"10.0.9.1\"]",
    );
    let s = Scenario::parse(&text, Path::new(".")).expect("parses");
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    let flood = SynFlood {
        dst: "10.0.9.1:80".parse().expect("literal"),
        count: 5_000,
        sent: 0,
        gap: Duration::from_micros(200),
    };
    r.sim_mut()
        .add_host(
            "attacker",
            &["10.66.0.1".parse().expect("literal")],
            Box::new(flood),
        )
        .expect("adds");
    r.sim_mut()
        .add_link(
            "attack",
            "10.66.0.1".parse().expect("literal"),
            "10.0.9.1".parse().expect("literal"),
            mptcp_sim::LinkConfig::default(),
            mptcp_sim::LinkConfig::default(),
        )
        .expect("links");
    r.sim_mut().auto_routes();
    let server = r.sim().node_id("server").expect("server");
    let mut peak = 0;
    while !r.is_done() && r.sim().now() < Instant::from_secs(60) {
        let next = r.sim().now() + Duration::from_millis(10);
        r.sim_mut().run_until(next);
        let host = r.sim().host::<StackHost>(server).expect("StackHost");
        peak = peak.max(host.endpoint().connection_count());
    }
    let report = r.report();
    println!("{report}\npeak connections at the server: {peak}");
    assert_intact(&report);
    let host = r.sim().host::<StackHost>(server).expect("StackHost");
    FloodOutcome {
        peak,
        backlog: host.endpoint().config().listen_backlog,
        stats: host.endpoint().stats().clone(),
    }
}

#[test]
fn a_syn_flood_against_syn_cookies_leaves_no_state_and_the_legitimate_connection_works() {
    // RFC 8684 §3.1: MP_CAPABLE v1 lets the server keep nothing between the SYN and
    // the third ACK or first data. With cookies for every SYN, the server holds the
    // legitimate connection (once its third ACK came) and nothing for the flood.
    let flood = syn_flood("syn_cookies = \"always\"", seed_or(17));
    assert!(flood.peak <= 1, "peak {} connections", flood.peak);
    // Every flood SYN got a cookie SYN/ACK or, beyond the pending-SYN/ACK cap between
    // two polls, was dropped; the legitimate SYN got one too.
    assert!(
        flood.stats.syn_cookies_sent > 1_000,
        "{} cookies",
        flood.stats.syn_cookies_sent
    );
    assert!(flood.stats.syn_cookies_accepted >= 1, "the legitimate one");
}

#[test]
fn a_syn_flood_fills_at_most_the_backlog_then_gets_cookies() {
    // The default (SynCookies::OnOverflow, as Linux): half-open connections up to the
    // listener backlog, then cookies. The server never holds more than the backlog
    // plus the legitimate connection.
    let flood = syn_flood("", seed_or(17));
    assert!(
        flood.peak <= flood.backlog + 1,
        "peak {} > backlog {} + 1",
        flood.peak,
        flood.backlog
    );
    assert!(flood.peak > 1, "the flood filled the backlog first");
    assert!(
        flood.stats.syn_cookies_sent > 0,
        "SYNs beyond the backlog were answered with cookies"
    );
}

// ---- aggregation -------------------------------------------------------------------------

#[test]
fn two_unequal_paths_carry_ninety_percent_of_their_summed_capacity() {
    let seed = seed_or(18);
    // 50 Mbit/s x 20 ms and 20 Mbit/s x 60 ms one way, each with a queue of one BDP,
    // default buffers, a 100 MB bulk transfer.
    let text = format!(
        r#"
        seed = {seed}
        [[host]]
        name = "client"
        addresses = ["10.1.0.1", "10.2.0.1"]
        [[host]]
        name = "server"
        addresses = ["10.0.0.1"]
        [[router]]
        name = "r"
        addresses = ["10.1.0.254", "10.2.0.254", "10.0.0.254"]
        [[link]]
        name = "fast"
        a = "10.1.0.1"
        b = "10.1.0.254"
        rate = "50mbit"
        delay = "20ms"
        queue = "170 packets"
        [[link]]
        name = "slow"
        a = "10.2.0.1"
        b = "10.2.0.254"
        rate = "20mbit"
        delay = "60ms"
        queue = "200 packets"
        [[link]]
        name = "core"
        a = "10.0.0.254"
        b = "10.0.0.1"
        rate = "10gbit"
        delay = "0ms"
        [[flow]]
        from = "client"
        to = "server:80"
        bytes = 100_000_000
        kind = "mptcp"
        "#
    );
    let s = Scenario::parse(&text, Path::new(".")).expect("parses");
    let mut r = TrafficRun::new(&s, &RunOptions::default()).expect("builds");
    let report = run(&mut r);
    assert_intact(&report);
    let flow = &report.flows[0];
    // What the two paths carried (IP bytes, data direction) over the transfer's time.
    let secs = flow.completion.expect("completed").as_secs_f64();
    let carried: u64 = report
        .links
        .iter()
        .filter(|l| (l.name == "fast" || l.name == "slow") && l.direction == Direction::AToB)
        .map(|l| l.delivered_bytes)
        .sum();
    let utilization = carried as f64 * 8.0 / (70e6 * secs);
    let goodput = flow.goodput_bps / 70e6;
    println!(
        "paths carried {:.1} % of 70 Mbit/s; goodput {:.2} Mbit/s = {:.1} % (payload share of a packet: 94.8 %)",
        utilization * 100.0,
        flow.goodput_bps / 1e6,
        goodput * 100.0
    );
    assert!(utilization >= 0.90, "utilization {utilization}");
    let m = flow.mptcp.as_ref().expect("an MPTCP flow");
    assert!(
        m.subflows.iter().all(|s| s.bytes_sent > 10_000_000),
        "both paths carry data"
    );
}
