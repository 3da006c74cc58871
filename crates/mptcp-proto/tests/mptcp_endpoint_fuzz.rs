//! The endpoint fuzz target on stable: an established plain TCP or MPTCP (two subflows)
//! connection is fed forged segments on its 4-tuples (sequence numbers near the window,
//! any flags, MPTCP options of every subtype with fuzzed fields); no panic, memory
//! within the configured bounds, and a fresh connection afterwards carries bytes both
//! ways exactly. The same function is the cargo-fuzz target `fuzz/fuzz_targets/endpoint.rs`.

use mptcp_proto::endpoint::fuzzing::fuzz_established_endpoint;
use proptest::collection::vec;
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn forged_segments_on_an_established_connection_keep_the_invariants(
        mptcp in any::<bool>(),
        script in vec(any::<u8>(), 0..1500),
    ) {
        let mut data = Vec::with_capacity(script.len() + 1);
        data.push(u8::from(mptcp));
        data.extend_from_slice(&script);
        fuzz_established_endpoint(&data);
    }
}

/// Scripts that exercise one thing each, byte by byte (see the harness's `Script`).
#[test]
fn hand_written_scripts_keep_the_invariants() {
    for mptcp in [0u8, 1] {
        // Writes and time, then forged ACKs at the current sequence numbers towards
        // either side carrying a DSS, an ADD_ADDR, MP_FAIL, MP_FASTCLOSE (wrong key).
        let mut script = vec![mptcp, 2, 200, 30];
        for (dir, sample) in [(0u8, 6u8), (1, 7), (0, 11), (1, 12), (0, 9), (1, 10)] {
            // op 0, direction, tuple 0, seq +0, ack +0, flags, ACK, window, payload,
            // one option: sample, no flips, timestamps.
            script.extend_from_slice(&[0, dir, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x10, 1, 0xff, 0xff]);
            script.extend_from_slice(&[40, 1, sample, 0, 0, 0]);
        }
        // A forged RST exactly at the expected sequence number, then time.
        script.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 0x04, 1, 0, 0, 0, 0]);
        script.extend_from_slice(&[2, 10, 63, 2, 10, 63]);
        fuzz_established_endpoint(&script);
    }
}
