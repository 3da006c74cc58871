//! One direction of a link: its configuration (rate, delay, queue, impairments, capacity
//! trace) and the state of its transmitter and queue.
//!
//! The model: a packet offered to a direction passes the middlebox, then joins a FIFO
//! drop-tail queue; the head is serialized at the current rate (integrated exactly
//! across capacity-trace steps), then random loss, corruption, duplication and
//! reordering are drawn, and the packet arrives after the propagation delay. This
//! module owns no event queue: the engine schedules what it returns.

use std::collections::VecDeque;
use std::fmt;

use mptcp_proto::Duration;
use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};

use crate::middlebox::Middlebox;
use crate::record::{DropReason, LinkStats};

/// Nanoseconds in `d`, the engine's internal time unit (saturating).
pub(crate) fn ns(d: Duration) -> u64 {
    d.total_micros().saturating_mul(1_000)
}

/// A link rate in bits per second.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Rate(pub u64);

impl Rate {
    pub const fn bits_per_sec(bps: u64) -> Rate {
        Rate(bps)
    }
    pub const fn kbit(k: u64) -> Rate {
        Rate(k * 1_000)
    }
    pub const fn mbit(m: u64) -> Rate {
        Rate(m * 1_000_000)
    }
    pub const fn gbit(g: u64) -> Rate {
        Rate(g * 1_000_000_000)
    }
    pub const fn as_bps(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let bps = self.0;
        if bps >= 1_000_000_000 && bps.is_multiple_of(1_000_000) {
            write!(f, "{}gbit", bps as f64 / 1e9)
        } else if bps >= 1_000_000 && bps.is_multiple_of(1_000) {
            write!(f, "{}mbit", bps as f64 / 1e6)
        } else if bps >= 1_000 {
            write!(f, "{}kbit", bps as f64 / 1e3)
        } else {
            write!(f, "{bps}bit")
        }
    }
}

impl fmt::Display for Rate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Random loss applied to each packet after it is serialized.
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum LossModel {
    #[default]
    None,
    /// Each packet is lost independently with this probability.
    Bernoulli(f64),
    /// Gilbert-Elliott: a two-state Markov chain, stepped once per packet slot. In the
    /// good state a packet is lost with `loss_good`, in the bad state with `loss_bad`.
    /// With `loss_bad = 1` the mean loss burst is `1 / r` packets and the mean gap
    /// `1 / p` on a busy link. A slot is one packet's serialization time: while the
    /// transmitter idles the chain keeps stepping once per slot, so a burst lasts a
    /// bounded time as on a real fading or interfered channel. (Stepping only per
    /// packet, as netem does, would hold a sender that backs off — one retransmission
    /// per RTO — in the bad state for minutes: an outage no channel has.) On a link
    /// without a rate limit slots have no length and the chain steps per packet.
    GilbertElliott {
        /// Probability of moving good -> bad, per packet.
        p: f64,
        /// Probability of moving bad -> good, per packet.
        r: f64,
        loss_good: f64,
        loss_bad: f64,
    },
}

/// Some packets get extra delay and so arrive after packets sent later.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reorder {
    pub probability: f64,
    /// Added to the propagation delay of a reordered packet.
    pub extra_delay: Duration,
}

/// A stepwise capacity schedule replayed from simulation time zero, e.g. a measured
/// mobile or vehicle-to-infrastructure trace. A rate of zero stalls the transmitter.
#[derive(Clone, Debug, PartialEq)]
pub struct CapacityTrace {
    /// `(offset from the start, rate from then on)`, offsets strictly increasing,
    /// the first one zero.
    steps: Vec<(u64, Rate)>,
    /// If set, the trace repeats with this period (in ns), longer than the last offset.
    period_ns: Option<u64>,
    /// False if every step is zero: nothing would ever be sent.
    any_capacity: bool,
}

/// Why a capacity trace is unusable.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TraceError {
    #[error("capacity trace has no steps")]
    Empty,
    #[error("capacity trace must start at 0s, its first step is at {0:?}")]
    FirstNotZero(Duration),
    #[error("capacity trace step at {0:?} is not after the step before it")]
    NotIncreasing(Duration),
    #[error("capacity trace period {period:?} must be longer than its last step at {last:?}")]
    PeriodTooShort { period: Duration, last: Duration },
}

impl CapacityTrace {
    /// A trace from `(offset, rate)` steps; `period` makes it loop.
    pub fn new(steps: Vec<(Duration, Rate)>, period: Option<Duration>) -> Result<Self, TraceError> {
        let first = steps.first().ok_or(TraceError::Empty)?;
        if first.0 != Duration::ZERO {
            return Err(TraceError::FirstNotZero(first.0));
        }
        for pair in steps.windows(2) {
            if pair[1].0 <= pair[0].0 {
                return Err(TraceError::NotIncreasing(pair[1].0));
            }
        }
        let last = steps[steps.len() - 1].0;
        if let Some(period) = period
            && period <= last
        {
            return Err(TraceError::PeriodTooShort { period, last });
        }
        let any_capacity = steps.iter().any(|&(_, rate)| rate.0 > 0);
        Ok(CapacityTrace {
            any_capacity,
            steps: steps.into_iter().map(|(t, r)| (ns(t), r)).collect(),
            period_ns: period.map(ns),
        })
    }

    /// The rate at `t_ns` and when it next changes (absolute ns), if ever.
    pub(crate) fn rate_at(&self, t_ns: u64) -> (Rate, Option<u64>) {
        let (phase, base) = match self.period_ns {
            Some(period) => (t_ns % period, t_ns - t_ns % period),
            None => (t_ns, 0),
        };
        let idx = self.steps.partition_point(|&(at, _)| at <= phase) - 1;
        let rate = self.steps[idx].1;
        let next = match (self.steps.get(idx + 1), self.period_ns) {
            (Some(&(at, _)), _) => Some(base.saturating_add(at)),
            (None, Some(period)) => Some(base.saturating_add(period)),
            (None, None) => None,
        };
        (rate, next)
    }
}

/// The configuration of one link direction. `Default` is an unlimited-rate, zero-delay,
/// loss-free direction with a 1000-packet queue (Linux's default `txqueuelen`).
#[derive(Clone, Debug, PartialEq)]
pub struct LinkConfig {
    /// Serialization rate; `None` means packets take no time to send.
    pub rate: Option<Rate>,
    /// One-way propagation delay.
    pub delay: Duration,
    /// Queue limit in packets, counting the packet being serialized.
    pub queue_packets: Option<usize>,
    /// Queue limit in bytes, counting the packet being serialized.
    pub queue_bytes: Option<usize>,
    pub loss: LossModel,
    pub reorder: Option<Reorder>,
    /// Probability that a packet is delivered twice.
    pub duplicate: f64,
    /// Probability that one random bit after the IP header is flipped.
    pub corrupt: f64,
    /// Overrides `rate` while set.
    pub trace: Option<CapacityTrace>,
}

impl Default for LinkConfig {
    fn default() -> Self {
        LinkConfig {
            rate: None,
            delay: Duration::ZERO,
            queue_packets: Some(1000),
            queue_bytes: None,
            loss: LossModel::None,
            reorder: None,
            duplicate: 0.0,
            corrupt: 0.0,
            trace: None,
        }
    }
}

impl LinkConfig {
    /// A direction with this rate and delay and otherwise default settings.
    pub fn new(rate: Rate, delay: Duration) -> Self {
        LinkConfig {
            rate: Some(rate),
            delay,
            ..LinkConfig::default()
        }
    }

    /// When serialization of `bytes` starting at `start_ns` ends, or `None` if the rate
    /// is zero from some point on forever.
    pub(crate) fn serialization_end(&self, start_ns: u64, bytes: usize) -> Option<u64> {
        // Work in bit-nanoseconds-per-second so integer maths is exact: at r bit/s a
        // span of dt ns carries r * dt of them, and a packet needs bits * 1e9.
        let mut remaining = bytes as u128 * 8 * 1_000_000_000;
        match (&self.trace, self.rate) {
            (None, None) => Some(start_ns),
            (None, Some(rate)) => {
                if rate.0 == 0 {
                    return None;
                }
                let dt = remaining.div_ceil(u128::from(rate.0));
                Some(start_ns.saturating_add(u64::try_from(dt).unwrap_or(u64::MAX)))
            }
            (Some(trace), _) => {
                if !trace.any_capacity {
                    return None;
                }
                let mut t = start_ns;
                loop {
                    let (rate, next) = trace.rate_at(t);
                    // At the saturated end of time a step can no longer advance.
                    if next.is_some_and(|n| n <= t) {
                        return None;
                    }
                    let span = next.map(|n| n - t);
                    if rate.0 > 0 {
                        let dt = remaining.div_ceil(u128::from(rate.0));
                        match span {
                            Some(span) if dt > u128::from(span) => {
                                remaining -= u128::from(rate.0) * u128::from(span);
                            }
                            _ => {
                                return Some(
                                    t.saturating_add(u64::try_from(dt).unwrap_or(u64::MAX)),
                                );
                            }
                        }
                    }
                    t = next?;
                }
            }
        }
    }
}

/// Stream of uniform draws with a stable algorithm (rand's distributions may change
/// between releases; these helpers will not).
#[derive(Clone, Debug)]
pub(crate) struct LinkRng(Xoshiro256PlusPlus);

impl LinkRng {
    pub(crate) fn new(seed: u64) -> Self {
        LinkRng(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// Uniform in [0, 1) with 53 bits of precision.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.0.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    pub(crate) fn chance(&mut self, p: f64) -> bool {
        p > 0.0 && self.unit() < p
    }

    /// Uniform in [0, n) for n > 0 (Lemire's multiply-shift; the bias is below 2^-40
    /// for the packet sizes this is used on).
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.0.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

/// What the transmitter produced when a packet finished serialization.
pub(crate) struct Departure {
    /// Copies to deliver with their extra delay beyond propagation (0, 1 or 2 copies).
    pub(crate) copies: [Option<(Vec<u8>, u64)>; 2],
}

/// Live state of one link direction.
pub(crate) struct DirState {
    pub(crate) config: LinkConfig,
    pub(crate) up: bool,
    /// Bumped when the direction goes down, invalidating scheduled events.
    pub(crate) epoch: u32,
    /// Waiting packets; the front one is being serialized when `transmitting`.
    pub(crate) queue: VecDeque<Vec<u8>>,
    pub(crate) queued_bytes: usize,
    pub(crate) transmitting: bool,
    /// Packets serialized and propagating now.
    pub(crate) in_flight: u64,
    pub(crate) rng: LinkRng,
    ge_bad: bool,
    /// When the packet being serialized started (ns).
    pub(crate) tx_start_ns: u64,
    /// When the previous packet finished serialization (ns), if any did.
    last_departure_ns: Option<u64>,
    pub(crate) middlebox: Option<Box<dyn Middlebox>>,
    pub(crate) stats: LinkStats,
}

impl DirState {
    pub(crate) fn new(config: LinkConfig, seed: u64) -> Self {
        DirState {
            config,
            up: true,
            epoch: 0,
            queue: VecDeque::new(),
            queued_bytes: 0,
            transmitting: false,
            in_flight: 0,
            rng: LinkRng::new(seed),
            ge_bad: false,
            tx_start_ns: 0,
            last_departure_ns: None,
            middlebox: None,
            stats: LinkStats::default(),
        }
    }

    /// Admit a packet to the queue (drop-tail). On refusal the packet is handed back
    /// with the reason so the engine can recycle its buffer.
    pub(crate) fn enqueue(&mut self, packet: Vec<u8>) -> Result<(), (Vec<u8>, DropReason)> {
        if !self.up {
            return Err((packet, DropReason::LinkDown));
        }
        let full_packets = self
            .config
            .queue_packets
            .is_some_and(|limit| self.queue.len() >= limit);
        let full_bytes = self
            .config
            .queue_bytes
            .is_some_and(|limit| self.queued_bytes + packet.len() > limit);
        if full_packets || full_bytes {
            return Err((packet, DropReason::QueueFull));
        }
        self.queued_bytes += packet.len();
        self.queue.push_back(packet);
        self.stats.peak_queue_bytes = self.stats.peak_queue_bytes.max(self.queued_bytes);
        self.stats.peak_queue_packets = self.stats.peak_queue_packets.max(self.queue.len());
        Ok(())
    }

    /// Take the head of the queue, whose serialization ends at `now_ns`, and apply the
    /// random impairments. Returns the surviving copies, or the packet and the loss
    /// reason.
    pub(crate) fn depart(&mut self, now_ns: u64) -> Result<Departure, (Vec<u8>, DropReason)> {
        let mut packet = self
            .queue
            .pop_front()
            .expect("TxDone is scheduled only while a packet is being serialized");
        self.queued_bytes -= packet.len();
        self.transmitting = false;
        // Slots the transmitter sat idle before this packet, each as long as this one.
        let slot = now_ns.saturating_sub(self.tx_start_ns);
        let idle = self
            .last_departure_ns
            .map_or(0, |t| self.tx_start_ns.saturating_sub(t));
        let idle_slots = idle.checked_div(slot).unwrap_or(0);
        self.last_departure_ns = Some(now_ns);
        // Draw order is fixed (loss, corruption, duplication, reordering) so runs repeat.
        if self.lose(idle_slots) {
            return Err((packet, DropReason::RandomLoss));
        }
        if self.rng.chance(self.config.corrupt) {
            self.corrupt(&mut packet);
        }
        let duplicate = self
            .rng
            .chance(self.config.duplicate)
            .then(|| packet.clone());
        if duplicate.is_some() {
            self.stats.duplicated += 1;
        }
        let mut copies = [Some((packet, 0)), duplicate.map(|p| (p, 0))];
        if let Some(reorder) = self.config.reorder {
            for (_, extra) in copies.iter_mut().flatten() {
                if self.rng.chance(reorder.probability) {
                    *extra = ns(reorder.extra_delay);
                    self.stats.reordered += 1;
                }
            }
        }
        Ok(Departure { copies })
    }

    /// Whether the departing packet is lost, after `idle_slots` empty slots.
    fn lose(&mut self, idle_slots: u64) -> bool {
        match self.config.loss {
            LossModel::None => false,
            LossModel::Bernoulli(p) => self.rng.chance(p),
            LossModel::GilbertElliott {
                p,
                r,
                loss_good,
                loss_bad,
            } => {
                if idle_slots > 0 && p + r > 0.0 {
                    // The idle slots at once: after k steps from state s the chain is
                    // bad with probability pi + (s - pi) (1 - p - r)^k, pi = p / (p + r).
                    let pi = p / (p + r);
                    let s = if self.ge_bad { 1.0 } else { 0.0 };
                    let k = i32::try_from(idle_slots).unwrap_or(i32::MAX);
                    let bad = pi + (s - pi) * (1.0 - p - r).powi(k);
                    self.ge_bad = self.rng.unit() < bad;
                }
                // Step the chain, then draw the loss in the state the packet sees.
                let switch = if self.ge_bad { r } else { p };
                if self.rng.chance(switch) {
                    self.ge_bad = !self.ge_bad;
                }
                let loss = if self.ge_bad { loss_bad } else { loss_good };
                self.rng.chance(loss)
            }
        }
    }

    /// Flip one bit after the IP header, so the IP header still routes and the
    /// transport checksum is what must catch it. Packets with nothing after the IP
    /// header are flipped anywhere.
    fn corrupt(&mut self, packet: &mut [u8]) {
        if packet.is_empty() {
            return;
        }
        let start = crate::packet::parse_ip(packet)
            .map(|ip| ip.transport_offset)
            .unwrap_or(0);
        let start = if start < packet.len() { start } else { 0 };
        let bits = (packet.len() - start) as u64 * 8;
        let bit = self.rng.below(bits);
        packet[start + (bit / 8) as usize] ^= 1 << (bit % 8);
        self.stats.corrupted += 1;
    }

    /// Take the link down: everything queued is lost now, everything propagating is
    /// lost when it would have arrived (the engine checks the epoch).
    pub(crate) fn go_down(&mut self) -> impl Iterator<Item = Vec<u8>> + '_ {
        self.up = false;
        self.epoch = self.epoch.wrapping_add(1);
        self.transmitting = false;
        self.queued_bytes = 0;
        let lost = self.queue.len() as u64 + self.in_flight;
        self.stats.drops.add(DropReason::LinkDown, lost);
        self.in_flight = 0;
        self.queue.drain(..)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serialization_is_exact_at_constant_rate() {
        let cfg = LinkConfig::new(Rate::mbit(12), Duration::from_millis(10));
        assert_eq!(cfg.serialization_end(0, 1500), Some(1_000_000));
        let cfg = LinkConfig::new(Rate::gbit(1), Duration::ZERO);
        assert_eq!(cfg.serialization_end(5, 1500), Some(5 + 12_000));
        // 1 byte at 3 bit/s: 8/3 s, rounded up to the next nanosecond.
        let cfg = LinkConfig::new(Rate(3), Duration::ZERO);
        assert_eq!(cfg.serialization_end(0, 1), Some(2_666_666_667));
        let cfg = LinkConfig {
            rate: None,
            ..LinkConfig::default()
        };
        assert_eq!(cfg.serialization_end(7, 1500), Some(7));
        let cfg = LinkConfig::new(Rate(0), Duration::ZERO);
        assert_eq!(cfg.serialization_end(7, 1500), None);
    }

    #[test]
    fn serialization_integrates_across_trace_steps() {
        // 12 Mbit/s for 0.5 ms, then 6 Mbit/s: a 1500-byte packet started at 0 sends
        // 6000 bits in the first half millisecond and the other 6000 bits in 1 ms.
        let trace = CapacityTrace::new(
            vec![
                (Duration::ZERO, Rate::mbit(12)),
                (Duration::from_micros(500), Rate::mbit(6)),
            ],
            None,
        )
        .unwrap();
        let cfg = LinkConfig {
            trace: Some(trace),
            ..LinkConfig::default()
        };
        assert_eq!(cfg.serialization_end(0, 1500), Some(1_500_000));
        assert_eq!(cfg.serialization_end(500_000, 1500), Some(2_500_000));
    }

    #[test]
    fn a_zero_rate_step_stalls_until_the_next_step_and_loops() {
        let trace = CapacityTrace::new(
            vec![
                (Duration::ZERO, Rate(0)),
                (Duration::from_millis(1), Rate::mbit(12)),
            ],
            Some(Duration::from_millis(3)),
        )
        .unwrap();
        assert_eq!(trace.rate_at(3_500_000), (Rate(0), Some(4_000_000)));
        assert_eq!(trace.rate_at(2_000_000), (Rate::mbit(12), Some(3_000_000)));
        let cfg = LinkConfig {
            trace: Some(trace),
            ..LinkConfig::default()
        };
        assert_eq!(cfg.serialization_end(0, 1500), Some(2_000_000));
        // Starts at 2.5 ms: 0.5 ms at 12 Mbit/s, stall 1 ms, 0.5 ms more.
        assert_eq!(cfg.serialization_end(2_500_000, 1500), Some(4_500_000));
    }

    #[test]
    fn trace_validation_names_the_problem() {
        assert_eq!(CapacityTrace::new(vec![], None), Err(TraceError::Empty));
        assert_eq!(
            CapacityTrace::new(vec![(Duration::from_secs(1), Rate(1))], None),
            Err(TraceError::FirstNotZero(Duration::from_secs(1)))
        );
        assert_eq!(
            CapacityTrace::new(
                vec![(Duration::ZERO, Rate(1)), (Duration::ZERO, Rate(2))],
                None
            ),
            Err(TraceError::NotIncreasing(Duration::ZERO))
        );
        assert_eq!(
            CapacityTrace::new(
                vec![(Duration::ZERO, Rate(1)), (Duration::from_secs(2), Rate(2))],
                Some(Duration::from_secs(2))
            ),
            Err(TraceError::PeriodTooShort {
                period: Duration::from_secs(2),
                last: Duration::from_secs(2)
            })
        );
    }

    /// Serializes one 1250-byte packet on `d` from `start_ns` (1 ms at 10 Mbit/s);
    /// whether it survives.
    fn send_one(d: &mut DirState, start_ns: u64) -> bool {
        d.enqueue(vec![0; 1250]).expect("queue has room");
        d.transmitting = true;
        d.tx_start_ns = start_ns;
        d.depart(start_ns + 1_000_000).is_ok()
    }

    #[test]
    fn gilbert_elliott_bursts_end_while_the_link_idles() {
        // Seed 188 of the TCP sweep: the chain stayed bad for 34 packets, which with
        // RTO backoff spanned ten minutes, and the connection gave up.
        let mut cfg = LinkConfig::new(Rate::mbit(10), Duration::ZERO);
        cfg.loss = LossModel::GilbertElliott {
            p: 0.0,
            r: 1e-4,
            loss_good: 0.0,
            loss_bad: 1.0,
        };
        let mut d = DirState::new(cfg, 188);
        d.ge_bad = true;
        // Back to back, a burst of mean length 10,000 packets loses each of them.
        for i in 0..3 {
            assert!(!send_one(&mut d, i * 1_000_000), "packet {i}");
        }
        assert!(d.ge_bad);
        // 1,000 s of idleness is a million slots: the burst survives them with
        // probability (1 - r)^1e6 = e^-100. Stepped per packet it would go on.
        assert!(send_one(&mut d, 1_003_000_000_000));
        assert!(!d.ge_bad);
        assert!(send_one(&mut d, 1_003_001_000_000));
        assert_eq!(d.stats.drops.total(), 0, "drops are counted by the engine");
    }

    #[test]
    fn the_peak_queue_is_the_largest_backlog_ever_held() {
        let mut d = DirState::new(LinkConfig::new(Rate::mbit(10), Duration::ZERO), 1);
        for len in [1000, 500, 1500] {
            d.enqueue(vec![0; len]).expect("queue has room");
        }
        d.transmitting = true;
        assert!(d.depart(1_000_000).is_ok());
        d.enqueue(vec![0; 100]).expect("queue has room");
        // 3,000 bytes in 3 packets before the departure; 2,100 in 3 after it.
        assert_eq!(
            (d.stats.peak_queue_bytes, d.stats.peak_queue_packets),
            (3_000, 3)
        );
        assert_eq!(d.queued_bytes, 2_100);
    }

    #[test]
    fn rng_helpers_are_stable() {
        let mut a = LinkRng::new(1);
        let mut b = LinkRng::new(1);
        for _ in 0..100 {
            let x = a.unit();
            assert!((0.0..1.0).contains(&x));
            assert_eq!(x, b.unit());
            assert!(a.below(10) < 10);
            b.below(10);
        }
    }

    #[test]
    fn rate_formats_with_units() {
        assert_eq!(format!("{:?}", Rate::mbit(20)), "20mbit");
        assert_eq!(format!("{:?}", Rate::gbit(1)), "1gbit");
        assert_eq!(format!("{:?}", Rate(1500)), "1.5kbit");
        assert_eq!(format!("{:?}", Rate(12)), "12bit");
    }
}
