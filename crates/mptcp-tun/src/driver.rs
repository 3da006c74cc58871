//! The event loop: one thread that owns the TUN device and drives the endpoint.
//!
//! Each turn it reads what the device has queued (up to a batch), hands the packets to
//! the endpoint, fires due timers, turns endpoint events into wake-ups, drains
//! `poll_transmit` (up to a batch) and writes the packets out. Device IO happens outside
//! the lock: a TUN write runs the kernel's whole receive path synchronously
//! (TUN-CEILING.md), which must not stall application threads. When neither batch was
//! full it sleeps in `ppoll` on the TUN fd and the notifier's eventfd until the
//! endpoint's next timer.
//!
//! With offload on, a read may be a GSO super-segment (handed to the endpoint whole,
//! checksums trusted as the virtio_net_hdr says) and a write may be one (the endpoint
//! says where the kernel cuts it): one syscall, one endpoint call and one ACK per up
//! to 64 KiB instead of per MSS.
//!
//! With several workers (`StackBuilder::workers`), each runs this loop on its own
//! endpoint shard and its own queue of a multi-queue TUN. A packet read on one queue
//! may belong to another worker's connection (the kernel picks the queue); it goes to
//! that worker through its inbox (a lock-free channel) and an eventfd wake-up. A
//! worker takes its inbox after reading its queue, so a packet that the owner
//! provoked with a write always finds whatever the owner posted before that write.

use std::io;
use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, mpsc};
use std::task::Waker;
use std::time::{Duration, Instant as StdInstant};

use crate::core::Shared;
use crate::device::TunDevice;
use crate::notify::wait_readable;
use crate::offload::{RxInfo, VNET_HDR_LEN, rx_info, tx_header};
use crate::pcap::PcapSink;
use crate::steer::{self, Steering};

/// Packets read or written per turn before the loop looks at the other direction.
const BATCH: usize = 64;

/// How often a worker forgets the join-table entries of subflows its endpoint no
/// longer has.
const JOIN_SWEEP: Duration = Duration::from_secs(1);

/// A packet read by one worker for another: the bytes after the virtio_net_hdr, and
/// what the header said.
pub(crate) struct Forwarded {
    packet: Vec<u8>,
    meta: RxInfo,
}

/// Another worker, as seen by this one.
pub(crate) struct Peer {
    pub(crate) inbox: mpsc::Sender<Forwarded>,
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Driver {
    pub(crate) shared: Arc<Shared>,
    pub(crate) device: TunDevice,
    /// Shared by the workers (a debugging aid; its lock is off the path without it).
    pub(crate) pcap: Option<Arc<Mutex<PcapSink>>>,
    /// Steering and the other workers, by index (this one's entry is unused); `None`
    /// with a single worker.
    pub(crate) workers: Option<Workers>,
    /// After shutdown is requested, how long released connections may take to deliver
    /// their last data and FIN.
    pub(crate) linger: std::time::Duration,
}

pub(crate) struct Workers {
    pub(crate) steering: Steering,
    pub(crate) peers: Vec<Peer>,
    pub(crate) inbox: mpsc::Receiver<Forwarded>,
}

impl Workers {
    fn me(&self) -> u16 {
        self.steering.shard.index()
    }
}

impl Driver {
    /// Runs until shutdown completes or the device fails. Returns the device (queue)
    /// rather than closing it: the stack closes all queues once every worker is done,
    /// since the first queue's routes must outlive workers still lingering.
    pub(crate) fn run(mut self) -> TunDevice {
        let reason = match self.turns() {
            Ok(()) => "the stack was shut down".to_owned(),
            Err(e) => {
                tracing::error!(device = %self.device.name(), error = %e, "event loop failed");
                format!("TUN device {}: {e}", self.device.name())
            }
        };
        let mut wake = Vec::new();
        self.shared.lock().stop(reason, &mut wake);
        wake.into_iter().for_each(Waker::wake);
        if let Some(pcap) = &self.pcap
            && let Err(e) = lock(pcap).flush()
        {
            tracing::warn!(error = %e, "pcap flush failed");
        }
        self.device
    }

    fn turns(&mut self) -> io::Result<()> {
        let headroom = self.device.headroom();
        let offload = self.device.offload();
        let mtu = self.device.mtu();
        let buf_len = headroom + self.device.max_packet();
        let mut rx: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; buf_len]).collect();
        let mut rx_len = [0usize; BATCH];
        let mut rx_meta = [RxInfo::default(); BATCH];
        let mut tx: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; buf_len]).collect();
        let mut tx_len = [0usize; BATCH];
        let mut tx_gso: [Option<u16>; BATCH] = [None; BATCH];
        let mut wake: Vec<Waker> = Vec::new();
        let mut linger_deadline: Option<StdInstant> = None;
        let mut tx_dropped: u64 = 0;
        // Per packet read: handled here (false: forwarded to its owner).
        let mut rx_mine = [true; BATCH];
        let mut inbound: Vec<Forwarded> = Vec::new();
        let mut next_sweep = StdInstant::now() + JOIN_SWEEP;

        loop {
            // Clear before looking at the shared state, so a later notify() re-arms.
            self.shared.notifier.clear();

            let mut n_rx = 0;
            while n_rx < BATCH {
                match self.device.try_recv(&mut rx[n_rx])? {
                    Some(len) => {
                        rx_len[n_rx] = len;
                        rx_meta[n_rx] = if offload {
                            let mut hdr = [0u8; VNET_HDR_LEN];
                            hdr.copy_from_slice(&rx[n_rx][..VNET_HDR_LEN]);
                            rx_info(&hdr)
                        } else {
                            RxInfo::default()
                        };
                        n_rx += 1;
                    }
                    None => break,
                }
            }
            if let Some(pcap) = &self.pcap {
                let mut pcap = lock(pcap);
                for i in 0..n_rx {
                    let packet = &rx[i][headroom..headroom + rx_len[i]];
                    pcap.record(packet, rx_meta[i].partial_checksum)?;
                }
            }
            if let Some(workers) = &self.workers {
                for i in 0..n_rx {
                    let packet = &rx[i][headroom..headroom + rx_len[i]];
                    rx_mine[i] = forward(workers, packet, rx_meta[i]);
                    if !rx_mine[i] {
                        self.shared.forwarded.fetch_add(1, Ordering::Relaxed);
                    }
                }
                // After the reads (see the module comment).
                inbound.extend(workers.inbox.try_iter());
            }

            let (n_tx, deadline, finished) = {
                let mut core = self.shared.lock();
                let now = self.shared.clock.now();
                let workers = self.workers.as_ref();
                for i in (0..n_rx).filter(|&i| rx_mine[i]) {
                    let packet = &rx[i][headroom..headroom + rx_len[i]];
                    handle(&mut core.engine, workers, now, packet, rx_meta[i]);
                }
                for f in inbound.drain(..) {
                    handle(&mut core.engine, workers, now, &f.packet, f.meta);
                }
                if let Some(workers) = workers
                    && StdInstant::now() >= next_sweep
                {
                    next_sweep = StdInstant::now() + JOIN_SWEEP;
                    sweep_joins(&core.engine, workers);
                }
                if core.engine.poll_timeout().is_some_and(|t| t <= now) {
                    core.engine.handle_timeout(now);
                }
                core.dispatch_events(&mut wake);
                let mut n_tx = 0;
                while n_tx < BATCH {
                    match core
                        .engine
                        .poll_transmit_gso(now, &mut tx[n_tx][headroom..])
                    {
                        Some(t) => {
                            tx_len[n_tx] = t.len;
                            tx_gso[n_tx] = t.gso_size;
                            n_tx += 1;
                        }
                        None => break,
                    }
                }
                core.dispatch_events(&mut wake);
                let finished = if core.shutting_down {
                    let busy = core.lingering_busy();
                    let deadline =
                        *linger_deadline.get_or_insert_with(|| StdInstant::now() + self.linger);
                    if busy > 0 && StdInstant::now() >= deadline {
                        tracing::warn!(busy, "linger time over: abandoning connections");
                    }
                    busy == 0 || StdInstant::now() >= deadline
                } else {
                    false
                };
                (n_tx, core.engine.poll_timeout(), finished)
            };
            wake.drain(..).for_each(Waker::wake);

            for i in 0..n_tx {
                let (head, packet) = tx[i][..headroom + tx_len[i]].split_at_mut(headroom);
                if let Some(pcap) = &self.pcap {
                    lock(pcap).record(packet, offload)?;
                }
                if offload {
                    let Some(hdr) = tx_header(packet, tx_gso[i], mtu) else {
                        tracing::warn!(len = packet.len(), "not a TCP/IP packet: dropped");
                        continue;
                    };
                    head.copy_from_slice(&hdr);
                }
                if !self.device.send(&tx[i], tx_len[i])? {
                    tx_dropped += 1;
                    tracing::debug!(tx_dropped, "TUN queue full: packet dropped");
                }
            }

            if finished && n_tx == 0 {
                return Ok(());
            }
            if n_rx == BATCH || n_tx == BATCH {
                continue;
            }
            if let Some(pcap) = &self.pcap {
                lock(pcap).flush()?;
            }
            let mut timeout = deadline.map(|t| {
                self.shared
                    .clock
                    .to_std(t)
                    .saturating_duration_since(StdInstant::now())
            });
            if let Some(linger) = linger_deadline {
                let left = linger.saturating_duration_since(StdInstant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            if self
                .workers
                .as_ref()
                .is_some_and(|w| !w.steering.joins.of_worker(w.me()).is_empty())
            {
                let left = next_sweep.saturating_duration_since(StdInstant::now());
                timeout = Some(timeout.map_or(left, |t| t.min(left)));
            }
            wait_readable(
                self.device.as_raw_fd(),
                self.shared.notifier.as_raw_fd(),
                timeout,
            )?;
        }
    }
}

fn lock(pcap: &Mutex<PcapSink>) -> std::sync::MutexGuard<'_, PcapSink> {
    pcap.lock().unwrap_or_else(|p| p.into_inner())
}

/// Sends `packet` to its owner unless that is this worker; returns whether it is ours.
fn forward(workers: &Workers, packet: &[u8], meta: RxInfo) -> bool {
    let Some(s) = steer::parse(packet) else {
        // Not TCP: our endpoint drops and counts it.
        return true;
    };
    let owner = workers.steering.owner(&s);
    if owner == workers.me() {
        return true;
    }
    let peer = &workers.peers[usize::from(owner)];
    let f = Forwarded {
        packet: packet.to_vec(),
        meta,
    };
    // A worker that already stopped takes nothing: the packet is lost, as on a link.
    if peer.inbox.send(f).is_ok() {
        peer.shared.notifier.notify();
    }
    false
}

/// Hands one packet to the endpoint. An MP_JOIN SYN whose tuple hashes to another
/// worker gets a join-table entry first, so that the peer's answer to ours comes
/// here; a refused join loses it again.
fn handle(
    engine: &mut crate::engine::Engine,
    workers: Option<&Workers>,
    now: mptcp_proto::Instant,
    packet: &[u8],
    meta: RxInfo,
) {
    let mut recorded = None;
    if let Some(workers) = workers
        && let Some(s) = steer::parse(packet)
        && s.join_token.is_some()
        && workers.steering.shard.tuple_owner(s.local, s.remote) != workers.me()
        && workers.steering.joins.get(s.local, s.remote).is_none()
    {
        workers
            .steering
            .joins
            .insert(s.local, s.remote, workers.me());
        recorded = Some(s);
    }
    // Drops are counted in the endpoint's stats; nothing else to do.
    let result = if meta.trusted {
        engine.handle_packet_trusted(now, packet)
    } else {
        engine.handle_packet(now, packet)
    };
    if let (Err(_), Some(s), Some(workers)) = (result, recorded, workers) {
        workers
            .steering
            .joins
            .retain(workers.me(), |l, r| (l, r) != (s.local, s.remote));
    }
}

/// Forgets this worker's join-table entries whose subflows its endpoint no longer has.
fn sweep_joins(engine: &crate::engine::Engine, workers: &Workers) {
    let mine = workers.steering.joins.of_worker(workers.me());
    if mine.is_empty() {
        return;
    }
    let live: std::collections::HashSet<_> = engine
        .connection_handles()
        .filter_map(|h| engine.mptcp_stats(h).ok())
        .flat_map(|st| st.subflows.into_iter().map(|sf| (sf.local, sf.remote)))
        .collect();
    workers
        .steering
        .joins
        .retain(workers.me(), |l, r| live.contains(&(l, r)));
}
