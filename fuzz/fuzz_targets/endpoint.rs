//! An established plain TCP or MPTCP connection fed forged segments on its 4-tuples:
//! no panic, bounded memory, and a clean transfer afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_proto::endpoint::fuzzing::fuzz_established_endpoint(data));
