//! The sans-IO contract between the simulator and the endpoints it connects.
//!
//! A host is a value the simulator drives: packets and timeouts in, packets out. It
//! never sees links, queues or other hosts. The TCP and MPTCP stacks plug in here
//! through thin adapters; tests plug in anything that speaks IP.

use std::any::Any;
use std::net::IpAddr;

use mptcp_proto::Instant;
use rand::rngs::ChaCha8Rng;

use crate::record::Recorder;

/// Names a host or router in a [`Simulator`](crate::Simulator).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeId(pub(crate) usize);

impl NodeId {
    pub fn index(self) -> usize {
        self.0
    }
}

/// The random source handed to hosts: ChaCha8, a named algorithm with stable output,
/// seeded per host from the simulation seed and the host's name. It implements
/// `rand_core::CryptoRng`, which key generation asks for.
pub type HostRng = ChaCha8Rng;

/// What a host may see and use while the simulator is calling it.
pub struct Context<'a> {
    pub(crate) now: Instant,
    pub(crate) node: NodeId,
    pub(crate) name: &'a str,
    pub(crate) addresses: &'a [IpAddr],
    pub(crate) recorder: &'a mut Recorder,
    pub(crate) rng: &'a mut HostRng,
}

impl Context<'_> {
    /// Current virtual time.
    pub fn now(&self) -> Instant {
        self.now
    }

    pub fn node(&self) -> NodeId {
        self.node
    }

    /// The host's name as registered.
    pub fn name(&self) -> &str {
        self.name
    }

    /// The host's interface addresses, in registration order.
    pub fn addresses(&self) -> &[IpAddr] {
        self.addresses
    }

    /// Record `value` now in the series `"{host name}/{name}"`.
    pub fn record(&mut self, name: &str, value: f64) {
        let full = format!("{}/{}", self.name, name);
        self.recorder.record(self.now, &full, value);
    }

    /// The whole recorder, for hosts that keep [`SeriesId`](crate::SeriesId)s or name
    /// series themselves.
    pub fn recorder(&mut self) -> &mut Recorder {
        self.recorder
    }

    /// This host's deterministic random stream.
    pub fn rng(&mut self) -> &mut HostRng {
        self.rng
    }
}

/// An endpoint in the simulated network.
///
/// The simulator calls `poll_transmit` until it returns `false` and then
/// `poll_timeout`, after every `handle_packet`, `handle_timeout` and `on_sample`, at
/// the start of the run, and after the host was touched through
/// [`Simulator::host_mut`](crate::Simulator::host_mut).
pub trait Host: Any {
    /// An IP packet addressed to one of this host's addresses arrived.
    fn handle_packet(&mut self, cx: &mut Context<'_>, packet: &[u8]);

    /// Write the next IP packet to send into `buf` (empty on entry, capacity reused
    /// across calls) and return `true`, or return `false` if there is nothing to send.
    /// The packet leaves on the interface whose address is its source address, or by
    /// route to its destination.
    fn poll_transmit(&mut self, cx: &mut Context<'_>, buf: &mut Vec<u8>) -> bool;

    /// When `handle_timeout` should next be called, if ever.
    fn poll_timeout(&self) -> Option<Instant>;

    /// The time from `poll_timeout` has come (`cx.now()` is at or after it).
    fn handle_timeout(&mut self, cx: &mut Context<'_>);

    /// Called at each sample tick when the simulator records time series: the place to
    /// `cx.record` state such as cwnd or smoothed RTT.
    fn on_sample(&mut self, cx: &mut Context<'_>) {
        let _ = cx;
    }
}
