//! Corrupted packets: every single-bit error is caught (checksums or header checks),
//! counted as a drop, and the transfer still completes byte-exact by retransmission.

mod common;

use std::cell::Cell;
use std::net::SocketAddr;
use std::rc::Rc;

use common::{Action, Pair, Side, SplitMix, Stream, addr, pattern};
use mptcp_proto::endpoint::{DropReason, EndpointConfig};
use mptcp_proto::time::Duration;

/// Flips one bit in every fourth packet each side sends (`allowed` says which byte
/// offsets may be hit) and runs a two-way transfer to the end.
fn transfer_with_bit_flips(client_ip: &str, server: SocketAddr, allowed: fn(usize) -> bool) {
    let mut pair = Pair::new(EndpointConfig::default(), EndpointConfig::default());
    let flips = Rc::new(Cell::new(0u64));
    let counter = Rc::clone(&flips);
    let mut rng = SplitMix(0x5eed);
    pair.filter = Some(Box::new(move |_side, index, bytes| {
        if index % 4 == 1 {
            let byte = loop {
                let b = rng.below(bytes.len() as u64) as usize;
                if allowed(b) {
                    break b;
                }
            };
            bytes[byte] ^= 1 << rng.below(8);
            counter.set(counter.get() + 1);
        }
        Action::Deliver
    }));
    let listener = pair.server.listen(server).expect("free");
    let local = SocketAddr::new(client_ip.parse().expect("literal"), 0);
    let h = pair.client.connect(pair.now, local, server).expect("valid");
    let (up, down) = (pattern(11, 150_000), pattern(12, 90_000));
    let mut cs = Stream::new(Side::Client, h, up.clone());
    let mut ss: Option<Stream> = None;
    let done = pair.run_until(Duration::from_secs(600), |p| {
        cs.pump(p);
        if ss.is_none()
            && let Some(a) = p.server.accept(listener)
        {
            ss = Some(Stream::new(Side::Server, a, down.clone()));
        }
        if let Some(s) = ss.as_mut() {
            s.pump(p);
        }
        p.client.connection_count() == 0 && p.server.connection_count() == 0
    });
    assert!(done, "transfer did not finish by {:?}", pair.now);
    let ss = ss.expect("accepted");
    assert!(ss.received == up, "client->server bytes differ");
    assert!(cs.received == down, "server->client bytes differ");

    let (c, s) = (pair.client.stats(), pair.server.stats());
    let flipped = flips.get();
    assert!(flipped > 40, "only {flipped} packets corrupted");
    // Every corrupted packet, and nothing else, was dropped by the endpoint.
    assert_eq!(c.total_dropped() + s.total_dropped(), flipped);
    let bad_checksum = c.dropped(DropReason::BadChecksum) + s.dropped(DropReason::BadChecksum);
    assert!(
        bad_checksum * 2 > flipped,
        "{bad_checksum} of {flipped} caught by checksums"
    );
    for (reason, _) in c.drops().chain(s.drops()) {
        assert!(
            matches!(
                reason,
                DropReason::BadChecksum
                    | DropReason::Malformed
                    | DropReason::Fragment
                    | DropReason::NotTcp
            ),
            "unexpected drop reason {reason:?}"
        );
    }
    assert!(pair.client.stats().packets_out > 100);
}

#[test]
fn ipv4_any_flipped_bit_is_dropped_and_the_transfer_completes() {
    // The IPv4 header checksum covers every header bit, the TCP checksum the rest.
    transfer_with_bit_flips("10.0.0.1", addr("10.0.0.2:80"), |_| true);
}

#[test]
fn ipv6_flipped_bits_are_dropped_and_the_transfer_completes() {
    // IPv6 has no header checksum (RFC 8200): traffic class and flow label (bytes 0-3,
    // after the version) and the hop limit (byte 7) are covered by nothing, and a flip
    // there is delivered as is. Everything else is, via the TCP pseudo-header.
    transfer_with_bit_flips("2001:db8::1", addr("[2001:db8::2]:80"), |b| {
        !(b < 4 || b == 7)
    });
}
