//! A whole IPv4/IPv6 + TCP packet, options included, with re-emission checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_proto::wire::fuzzing::fuzz_ip_packet(data));
