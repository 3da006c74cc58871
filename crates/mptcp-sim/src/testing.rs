//! Trivial hosts for exercising the network itself: a constant-rate (or burst) packet
//! source and a sink that counts and optionally keeps what arrives. Tests, benchmarks
//! and examples use them; real experiments use the TCP/MPTCP hosts.

use std::net::SocketAddr;

use mptcp_proto::Instant;

use crate::host::{Context, Host};
use crate::link::Rate;
use crate::packet::{self, TcpSegmentSpec};

/// Sends `count` TCP segments of `packet_size` IP bytes from `src` to `dst`, starting at
/// `start`, spaced to fill `rate` (or all at once if `rate` is `None`). Each segment's
/// sequence number follows the previous one's payload, so flow goodput is measurable.
#[derive(Clone, Debug)]
pub struct Blaster {
    pub src: SocketAddr,
    pub dst: SocketAddr,
    pub packet_size: usize,
    pub rate: Option<Rate>,
    pub count: u64,
    pub start: Instant,
    sent: u64,
    payload: Vec<u8>,
}

impl Blaster {
    /// # Panics
    /// If `packet_size` cannot hold the IP and TCP headers (a test-setup mistake).
    pub fn new(
        src: SocketAddr,
        dst: SocketAddr,
        packet_size: usize,
        rate: Option<Rate>,
        count: u64,
    ) -> Self {
        let headers = if src.is_ipv4() { 40 } else { 60 };
        assert!(
            packet_size >= headers,
            "packet_size must hold the IP and TCP headers"
        );
        Blaster {
            src,
            dst,
            packet_size,
            rate,
            count,
            start: Instant::ZERO,
            sent: 0,
            payload: vec![0x5a; packet_size - headers],
        }
    }

    pub fn starting_at(mut self, start: Instant) -> Self {
        self.start = start;
        self
    }

    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// When packet number `n` (from 0) is due: exact to the microsecond, no drift.
    fn due(&self, n: u64) -> Instant {
        match self.rate {
            Some(rate) if rate.0 > 0 => {
                let bits = self.packet_size as u128 * 8 * u128::from(n);
                let micros = bits * 1_000_000 / u128::from(rate.0);
                self.start + mptcp_proto::Duration::from_micros(micros as u64)
            }
            _ => self.start,
        }
    }
}

impl Host for Blaster {
    fn handle_packet(&mut self, _cx: &mut Context<'_>, _packet: &[u8]) {}

    fn poll_transmit(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> bool {
        if self.sent >= self.count || cx.now() < self.due(self.sent) {
            return false;
        }
        let seq = self.sent.wrapping_mul(self.payload.len() as u64) as u32;
        packet::build_tcp_packet(
            &TcpSegmentSpec {
                src: self.src,
                dst: self.dst,
                seq,
                payload: &self.payload,
                ..Default::default()
            },
            buf,
        );
        self.sent += 1;
        true
    }

    fn poll_timeout(&self) -> Option<Instant> {
        (self.sent < self.count).then(|| self.due(self.sent))
    }

    fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}
}

/// Counts what arrives; with `keep` set, also keeps every packet with its arrival time.
#[derive(Clone, Debug, Default)]
pub struct Sink {
    pub keep: bool,
    pub packets: u64,
    pub bytes: u64,
    /// Segments whose TCP checksum did not verify.
    pub bad_checksums: u64,
    pub arrivals: Vec<(Instant, Vec<u8>)>,
}

impl Sink {
    pub fn keeping() -> Self {
        Sink {
            keep: true,
            ..Sink::default()
        }
    }
}

impl Host for Sink {
    fn handle_packet(&mut self, cx: &mut Context<'_>, packet: &[u8]) {
        self.packets += 1;
        self.bytes += packet.len() as u64;
        if packet::tcp_checksum_ok(packet) == Ok(false) {
            self.bad_checksums += 1;
        }
        if self.keep {
            self.arrivals.push((cx.now(), packet.to_vec()));
        }
    }

    fn poll_transmit(&mut self, _cx: &mut Context<'_>, _buf: &mut Vec<u8>) -> bool {
        false
    }

    fn poll_timeout(&self) -> Option<Instant> {
        None
    }

    fn handle_timeout(&mut self, _cx: &mut Context<'_>) {}
}
