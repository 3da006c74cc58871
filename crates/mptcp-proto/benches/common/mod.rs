//! Shared by the benchmarks: a counting global allocator (allocations per segment,
//! live bytes per connection) and the CPU time of the calling thread (figures per
//! core, unaffected by other processes competing for the cores).
#![allow(dead_code)]

use std::alloc::{GlobalAlloc, Layout, System};

use mptcp_proto::endpoint::{Endpoint, EndpointConfig};
use mptcp_proto::time::Instant;
use mptcp_proto::wire::gro::Coalescer;
use mptcp_proto::wire::gso::Segmenter;
use std::sync::atomic::{AtomicU64, Ordering};

/// The system allocator with counters. Each bench binary installs it with
/// `#[global_allocator] static ALLOC: common::Counting = common::Counting;`.
pub struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);
static ALLOCATED_BYTES: AtomicU64 = AtomicU64::new(0);
static FREED_BYTES: AtomicU64 = AtomicU64::new(0);

// SAFETY: every call is forwarded to `System` unchanged; the counters only observe.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's layout.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        FREED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer and layout.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // A growth is an allocation: count it, and the bytes as freed and allocated anew.
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        FREED_BYTES.fetch_add(layout.size() as u64, Ordering::Relaxed);
        ALLOCATED_BYTES.fetch_add(new_size as u64, Ordering::Relaxed);
        // SAFETY: forwarded with the caller's pointer, layout and size.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// The allocator's counters at one moment.
#[derive(Clone, Copy, Debug)]
pub struct AllocSnapshot {
    /// Calls to alloc, alloc_zeroed and realloc so far.
    pub allocations: u64,
    /// Bytes allocated and not freed.
    pub live_bytes: u64,
}

pub fn alloc_snapshot() -> AllocSnapshot {
    let allocated = ALLOCATED_BYTES.load(Ordering::Relaxed);
    let freed = FREED_BYTES.load(Ordering::Relaxed);
    AllocSnapshot {
        allocations: ALLOCATIONS.load(Ordering::Relaxed),
        live_bytes: allocated.saturating_sub(freed),
    }
}

/// CPU time the calling thread has used, seconds.
pub fn thread_cpu_seconds() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid timespec for the call to fill.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_THREAD_CPUTIME_ID) failed");
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// Total bytes from the `BENCH_BYTES` environment variable, or `default`.
/// Pacing for the bench's connections: `BENCH_PACING=1` turns it on with the default
/// gains (off otherwise, as by default).
pub fn bench_pacing() -> Option<mptcp_proto::tcp::Pacing> {
    std::env::var("BENCH_PACING")
        .is_ok_and(|v| v == "1")
        .then(mptcp_proto::tcp::Pacing::default)
}

pub fn bench_bytes(default: u64) -> u64 {
    std::env::var("BENCH_BYTES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// How a bench's in-memory link carries segments.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Link {
    /// One wire-sized segment per packet: every segment pays the whole per-segment
    /// path of both endpoints.
    Wire,
    /// Wire-sized packets, made and merged in software as the kernel does without
    /// hardware offload: the sender emits super-segments (`max_segment_payload`) with
    /// partial checksums, `wire::gso::Segmenter` cuts them into wire packets (headers
    /// copied, checksums computed per packet), and `wire::gro::Coalescer` verifies each
    /// packet's checksums and merges runs back before the receiver sees them.
    SoftGso,
    /// The super-segments themselves, as between the TUN runtime and a kernel doing
    /// TSO and GRO (checksums still computed and verified over every byte).
    Super,
}

impl Link {
    pub const ALL: [Link; 3] = [Link::Wire, Link::SoftGso, Link::Super];

    /// Names a row's link in `BENCH_ONLY` and in the tables.
    pub fn suffix(self) -> &'static str {
        match self {
            Link::Wire => "",
            Link::SoftGso => "+soft-gso",
            Link::Super => "+super",
        }
    }
}

impl Link {
    /// The heading of a table of rows over this link.
    pub fn describe(self) -> &'static str {
        match self {
            Link::Wire => "wire: one wire segment per packet",
            Link::SoftGso => {
                "soft-gso: wire packets on the link, cut and merged in software (GSO/GRO)"
            }
            Link::Super => {
                "super: super-segments on the link (hardware TSO/GRO, as the TUN runtime with offload)"
            }
        }
    }

    /// `max_segment_payload` and `checksum_offload` for endpoints on this link.
    pub fn configure(self, config: &mut EndpointConfig) {
        config.tcp.max_segment_payload = (self != Link::Wire).then_some(SUPER_SEGMENT);
        if let Some(mptcp) = config.mptcp.as_mut() {
            mptcp.tcp.max_segment_payload = config.tcp.max_segment_payload;
        }
        // The software segmenter computes each wire packet's checksum.
        config.checksum_offload = self == Link::SoftGso;
    }
}

/// Payload of one super-segment (the TUN runtime's bound too: headers and payload fit
/// a 64 KiB IP packet).
pub const SUPER_SEGMENT: usize = 65_000;

/// Packets the link moves per turn, as the TUN runtime reads and writes them in
/// batches: each side's work on a batch is timed as one phase. The receiver answers
/// each batch with one ACK, so `BENCH_BATCH=2` makes it acknowledge every second
/// segment, as a kernel peer without GRO does.
pub fn bench_batch() -> usize {
    std::env::var("BENCH_BATCH")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(64)
}

/// One endpoint of a bench's connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum End {
    Client,
    Server,
}

/// The bench thread's CPU time split between the two endpoints it runs: each phase
/// is charged to the endpoint that did the work, so the sender's and the receiver's
/// cost per byte are known apart (a deployment runs only one of them per host).
#[derive(Clone, Copy)]
pub struct CpuSplit {
    last: f64,
    pub client: f64,
    pub server: f64,
}

impl CpuSplit {
    pub fn new() -> Self {
        CpuSplit {
            last: thread_cpu_seconds(),
            client: 0.0,
            server: 0.0,
        }
    }

    /// Charges the CPU time since the previous charge to `end`.
    pub fn charge(&mut self, end: End) {
        let now = thread_cpu_seconds();
        let spent = now - self.last;
        self.last = now;
        match end {
            End::Client => self.client += spent,
            End::Server => self.server += spent,
        }
    }
}

/// Moves packets between two endpoints over a bench link, in batches of
/// [`bench_batch`],
/// with buffers kept across calls (no allocation in the steady state).
pub struct Carrier {
    link: Link,
    batch: usize,
    slots: Vec<Vec<u8>>,
    lens: Vec<usize>,
    packet: Vec<u8>,
    gro: Coalescer,
}

impl Carrier {
    pub fn new(link: Link) -> Self {
        // Room for a batch and the pieces of one more super-segment.
        let batch = bench_batch();
        let slots = batch + SUPER_SEGMENT / 1000 + 1;
        Carrier {
            link,
            batch,
            // Wire packets (up to MTU 9000) in the slots, except on the super link.
            slots: (0..slots)
                .map(|_| vec![0u8; if link == Link::Super { 65_536 } else { 16_384 }])
                .collect(),
            lens: Vec::with_capacity(slots),
            packet: vec![0u8; 65_536],
            gro: Coalescer::new(),
        }
    }

    /// Moves one batch from `from` to `to`: `from` emits up to a batch of packets
    /// (cut into wire packets on the soft-gso link), then `to` takes them in (runs
    /// merged first on that link). Returns the packets the link carried; the CPU time
    /// of each half goes to its endpoint in `cpu`.
    pub fn carry(
        &mut self,
        now: Instant,
        (from_end, from): (End, &mut Endpoint),
        (to_end, to): (End, &mut Endpoint),
        cpu: &mut CpuSplit,
    ) -> u64 {
        self.lens.clear();
        while self.lens.len() < self.batch {
            let n = self.lens.len();
            if self.link != Link::SoftGso {
                let Some(sent) = from.poll_transmit_gso(now, &mut self.slots[n]) else {
                    break;
                };
                self.lens.push(sent.len);
                continue;
            }
            let Some(sent) = from.poll_transmit_gso(now, &mut self.packet) else {
                break;
            };
            let size = sent.gso_size.unwrap_or(u16::MAX);
            let mut segmenter = Segmenter::new(&self.packet[..sent.len], size)
                .expect("the endpoint emits valid packets");
            while let Some(len) = segmenter.next_into(&mut self.slots[self.lens.len()]) {
                self.lens.push(len);
            }
        }
        cpu.charge(from_end);
        if self.lens.is_empty() {
            return 0;
        }
        let mut deliver = |p: &[u8], trusted: bool| {
            let _ = if trusted {
                to.handle_packet_trusted(now, p)
            } else {
                to.handle_packet(now, p)
            };
        };
        for (slot, &len) in self.slots.iter().zip(&self.lens) {
            if self.link == Link::SoftGso {
                self.gro.push(&slot[..len], &mut deliver);
            } else {
                deliver(&slot[..len], false);
            }
        }
        self.gro.flush(&mut deliver);
        cpu.charge(to_end);
        self.lens.len() as u64
    }
}
