//! The TCP option iterator and `TcpRepr` option parsing, with re-emission checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| mptcp_proto::wire::fuzzing::fuzz_tcp_options(data));
