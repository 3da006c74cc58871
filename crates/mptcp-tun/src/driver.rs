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

use std::io;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::task::Waker;
use std::time::Instant as StdInstant;

use crate::core::Shared;
use crate::device::TunDevice;
use crate::notify::wait_readable;
use crate::offload::{RxInfo, VNET_HDR_LEN, rx_info, tx_header};
use crate::pcap::PcapSink;

/// Packets read or written per turn before the loop looks at the other direction.
const BATCH: usize = 64;

pub(crate) struct Driver {
    pub(crate) shared: Arc<Shared>,
    pub(crate) device: TunDevice,
    pub(crate) pcap: Option<PcapSink>,
    /// After shutdown is requested, how long released connections may take to deliver
    /// their last data and FIN.
    pub(crate) linger: std::time::Duration,
}

impl Driver {
    /// Runs until shutdown completes or the device fails.
    pub(crate) fn run(mut self) {
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
        if let Some(pcap) = &mut self.pcap
            && let Err(e) = pcap.flush()
        {
            tracing::warn!(error = %e, "pcap flush failed");
        }
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
            if let Some(pcap) = &mut self.pcap {
                for i in 0..n_rx {
                    let packet = &rx[i][headroom..headroom + rx_len[i]];
                    pcap.record(packet, rx_meta[i].partial_checksum)?;
                }
            }

            let (n_tx, deadline, finished) = {
                let mut core = self.shared.lock();
                let now = self.shared.clock.now();
                for i in 0..n_rx {
                    let packet = &rx[i][headroom..headroom + rx_len[i]];
                    // Drops are counted in the endpoint's stats; nothing to do here.
                    let _ = if rx_meta[i].trusted {
                        core.engine.handle_packet_trusted(now, packet)
                    } else {
                        core.engine.handle_packet(now, packet)
                    };
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
                if let Some(pcap) = &mut self.pcap {
                    pcap.record(packet, offload)?;
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
            if let Some(pcap) = &mut self.pcap {
                pcap.flush()?;
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
            wait_readable(
                self.device.as_raw_fd(),
                self.shared.notifier.as_raw_fd(),
                timeout,
            )?;
        }
    }
}
