//! The runtime: a builder that opens the TUN device and starts the event loop, and the
//! [`Stack`] handle that hands out blocking and async streams and listeners.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::endpoint::{EndpointStats, Shard, SteerKey, SynCookies};
use mptcp_proto::mptcp::MptcpConfig;
use mptcp_proto::pm::PathPolicy;
use mptcp_proto::sched::SchedulerKind;
use mptcp_proto::tcp::TcpConfig;

use crate::clock::Clock;
use crate::core::Shared;
use crate::device::{DeviceConfig, TunDevice};
use crate::driver::{Driver, Peer, Workers};
use crate::engine::{Engine, EngineConfig};
use crate::notify::Notifier;
use crate::pcap::PcapSink;
use crate::steer::{JoinTable, Steering};

/// Payload of the largest super-segment: an IPv4 packet is at most 65535 bytes, and
/// its headers at most 20 + 60.
const MAX_SUPER_PAYLOAD: usize = 65_535 - 20 - 60;

/// Configures and starts a [`Stack`].
///
/// ```no_run
/// use mptcp_tun::Stack;
/// let stack = Stack::builder()
///     .tun_name("mptcp0")
///     .mtu(1500)
///     .address("10.77.1.2".parse()?)
///     .pcap_path("/tmp/mptcp0.pcap")
///     .build()?;
/// let mut stream = stack.connect("10.99.1.1:5000".parse()?)?;
/// std::io::Write::write_all(&mut stream, b"hello")?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct StackBuilder {
    device: DeviceConfig,
    pcap_path: Option<PathBuf>,
    tcp: TcpConfig,
    listen_backlog: usize,
    syn_cookies: SynCookies,
    linger: Duration,
    /// MPTCP settings; `None` makes the stack plain TCP.
    mptcp: Option<MptcpConfig>,
    /// Addresses announced (ADD_ADDR) on every accepted MPTCP connection.
    announce: Vec<IpAddr>,
    /// Worker threads, each with its own endpoint shard and TUN queue.
    workers: usize,
}

/// Most worker threads. Each MPTCP key is drawn until its token names the worker
/// (up to 64 draws, `mptcp_proto::crypto::MAX_KEY_ATTEMPTS`); with 8 workers a
/// draw fails to find one with probability (7/8)^64 = 2e-4, beyond that it grows
/// quickly.
pub const MAX_WORKERS: usize = 8;

impl Default for StackBuilder {
    fn default() -> Self {
        StackBuilder {
            device: DeviceConfig::default(),
            pcap_path: None,
            tcp: TcpConfig {
                // Bulk transfers over a local TUN have a large bandwidth-delay product
                // in bytes per RTT; 4 MiB matches Linux's default tcp_rmem maximum
                // order of magnitude without being unbounded.
                recv_buffer: 4 << 20,
                send_buffer: 4 << 20,
                ..TcpConfig::default()
            },
            listen_backlog: 128,
            syn_cookies: SynCookies::default(),
            linger: Duration::from_secs(10),
            mptcp: Some(MptcpConfig {
                // As the TCP buffers above: the connection-level buffers bound the
                // shared receive window and the data in flight over all subflows.
                send_buffer: 4 << 20,
                recv_buffer: 4 << 20,
                ..MptcpConfig::default()
            }),
            announce: Vec::new(),
            workers: 1,
        }
    }
}

impl StackBuilder {
    /// TUN interface name (default `mptcp0`).
    pub fn tun_name(mut self, name: impl Into<String>) -> Self {
        self.device.name = name.into();
        self
    }

    /// Link MTU in bytes (default 1500); the TCP MSS follows from it.
    pub fn mtu(mut self, mtu: u16) -> Self {
        self.device.mtu = mtu;
        self
    }

    /// TUN offload (default on): the device carries a virtio_net_hdr, the kernel
    /// hands us GSO super-segments whole and cuts the up to 64 KiB super-segments the
    /// stack writes (TSO), and TCP checksums are left to it. Many times fewer packets
    /// cross the TUN (TUN-CEILING.md). If the kernel refuses it, the stack runs
    /// without.
    pub fn offload(mut self, on: bool) -> Self {
        self.device.offload = on;
        self
    }

    /// TUN transmit queue length in packets (default 5000).
    pub fn tx_queue_len(mut self, len: u32) -> Self {
        self.device.tx_queue_len = len;
        self
    }

    /// Adds an address the stack owns; the kernel gets a host route for it into the
    /// TUN. At least one is needed. (With MPTCP, each address is a potential subflow.)
    pub fn address(mut self, addr: IpAddr) -> Self {
        if !self.device.addresses.contains(&addr) {
            self.device.addresses.push(addr);
        }
        self
    }

    /// Adds several addresses; see [`StackBuilder::address`].
    pub fn addresses(mut self, addrs: impl IntoIterator<Item = IpAddr>) -> Self {
        for addr in addrs {
            self = self.address(addr);
        }
        self
    }

    /// Multipath TCP (RFC 8684 v1), on by default: `connect` sends MP_CAPABLE and
    /// listeners accept MPTCP v1 (and plain TCP, and MP_JOINs for their connections).
    /// Off: every connection is plain TCP, and MPTCP peers fall back to it.
    pub fn mptcp(mut self, on: bool) -> Self {
        self.mptcp = match (on, self.mptcp.take()) {
            (true, Some(config)) => Some(config),
            (true, None) => Some(StackBuilder::default().mptcp.unwrap_or_default()),
            (false, _) => None,
        };
        self
    }

    /// Ask for DSS checksums (MP_CAPABLE flag A, RFC 8684 §3.3.1) on every MPTCP
    /// connection. A peer that asks for them gets them either way. Implies MPTCP.
    pub fn checksum(mut self, on: bool) -> Self {
        self = self.mptcp(true);
        if let Some(config) = &mut self.mptcp {
            config.checksums = on;
        }
        self
    }

    /// The MPTCP packet scheduler of every connection (default lowest-RTT first).
    /// Implies MPTCP.
    pub fn scheduler(mut self, scheduler: SchedulerKind) -> Self {
        self = self.mptcp(true);
        if let Some(config) = &mut self.mptcp {
            config.scheduler = scheduler;
        }
        self
    }

    /// The congestion control of every connection: of plain TCP ones and of each
    /// MPTCP subflow (the coupled LIA, OLIA and BALIA act on MPTCP subflows only;
    /// a plain TCP connection with them behaves as NewReno would on one path).
    pub fn congestion_control(mut self, cc: CcAlgorithm) -> Self {
        self.tcp.congestion_control = cc;
        self
    }

    /// The path manager policy of every MPTCP connection, opened or accepted
    /// (default full mesh). Implies MPTCP.
    pub fn path_policy(mut self, policy: PathPolicy) -> Self {
        self = self.mptcp(true);
        if let Some(config) = &mut self.mptcp {
            config.pm.policy = policy;
            config.pm_server.policy = policy;
        }
        self
    }

    /// Subflows from (and, on accepted connections, to) `addr` are backups: they join
    /// with the MP_JOIN B flag (RFC 8684 §3.3.8) and carry data only when no other
    /// subflow can. The address becomes one of the stack's. Implies MPTCP.
    pub fn backup(mut self, addr: IpAddr) -> Self {
        self = self.mptcp(true).address(addr);
        if let Some(config) = &mut self.mptcp {
            for pm in [&mut config.pm, &mut config.pm_server] {
                if !pm.backup_addrs.contains(&addr) {
                    pm.backup_addrs.push(addr);
                }
            }
        }
        self
    }

    /// The MPTCP settings as a whole (scheduler, path managers, buffers). Its `tcp`
    /// field is replaced by [`StackBuilder::tcp_config`]'s at build time.
    pub fn mptcp_config(mut self, config: MptcpConfig) -> Self {
        self.mptcp = Some(config);
        self
    }

    /// Announces `addr` (ADD_ADDR with HMAC, RFC 8684 §3.4.1) on every MPTCP
    /// connection the stack accepts, so that the peer may join it; MP_JOINs to it are
    /// accepted. The address becomes one of the stack's (routed into the TUN).
    pub fn announce(mut self, addr: IpAddr) -> Self {
        self = self.address(addr);
        if !self.announce.contains(&addr) {
            self.announce.push(addr);
        }
        self
    }

    /// Worker threads (default 1, at most [`MAX_WORKERS`]). Each owns an endpoint
    /// shard and a queue of a multi-queue TUN device; connections are spread over
    /// them (by the hash of their 4-tuple, MP_JOINs by token), and each
    /// connection's packets, timers and application calls are handled by its worker
    /// alone, so workers share no lock. More than one pays off with many
    /// connections; one connection uses one worker.
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = n;
        self
    }

    /// Writes every packet sent and received to this pcap file (linktype RAW).
    pub fn pcap_path(mut self, path: impl Into<PathBuf>) -> Self {
        self.pcap_path = Some(path.into());
        self
    }

    /// TCP settings for every connection. The MSS is overridden to fit the MTU.
    pub fn tcp_config(mut self, tcp: TcpConfig) -> Self {
        self.tcp = tcp;
        self
    }

    /// Connections not yet accepted, per listener (default 128).
    pub fn listen_backlog(mut self, backlog: usize) -> Self {
        self.listen_backlog = backlog;
        self
    }

    /// When listeners answer SYNs with SYN cookies (default: when a listener's
    /// backlog is full, as Linux's `tcp_syncookies = 1`). MPTCP connections accepted
    /// through a cookie stay MPTCP, with any number of workers.
    pub fn syn_cookies(mut self, when: SynCookies) -> Self {
        self.syn_cookies = when;
        self
    }

    /// How long dropping the last [`Stack`] handle waits for closed connections to
    /// deliver their remaining data and FIN (default 10 s).
    pub fn linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Opens the TUN device, installs the routes and starts the event loop thread.
    ///
    /// Fails with `PermissionDenied` without root or `CAP_NET_ADMIN`, `AddrInUse` when
    /// the device name or a route is taken, `InvalidInput` for a bad configuration.
    pub fn build(self) -> io::Result<Stack> {
        if self.device.addresses.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the stack needs at least one address (StackBuilder::address)",
            ));
        }
        if self.workers == 0 || self.workers > MAX_WORKERS {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} workers asked for: the stack runs 1 to {MAX_WORKERS}",
                    self.workers
                ),
            ));
        }
        let n = self.workers;
        let mut device_config = self.device.clone();
        device_config.queues = n;
        let device = TunDevice::open(&device_config)?;
        let mut queues = vec![device];
        for _ in 1..n {
            queues.push(queues[0].clone_queue()?);
        }
        let pcap = self
            .pcap_path
            .as_deref()
            .map(PcapSink::create)
            .transpose()?
            .map(|p| Arc::new(Mutex::new(p)));
        let mut tcp = self.tcp;
        // RFC 9293 §3.7.1: MSS = MTU minus the fixed IP and TCP headers; IPv6's header
        // is 20 bytes longer.
        let ip_header = if self.device.addresses.iter().any(IpAddr::is_ipv6) {
            40
        } else {
            20
        };
        tcp.mss = self.device.mtu.saturating_sub(ip_header + 20);
        let offload = queues[0].offload();
        if offload {
            tcp.max_segment_payload = Some(MAX_SUPER_PAYLOAD);
        }
        let mptcp = self.mptcp.map(|mut config| {
            config.tcp = tcp.clone();
            config
        });
        let clock = Clock::new();
        // Keys the tuple hash, so that peers cannot aim their connections at one
        // worker.
        let mut steer_key = SteerKey::default();
        getrandom::fill(&mut steer_key.0)
            .map_err(|e| io::Error::other(format!("no OS randomness for the steering key: {e}")))?;
        let mut shards = Vec::with_capacity(n);
        for i in 0..n {
            let mut secret = [0u8; 32];
            getrandom::fill(&mut secret).map_err(|e| {
                io::Error::other(format!("no OS randomness for the ISN secret: {e}"))
            })?;
            let engine = Engine::new(
                EngineConfig {
                    tcp: tcp.clone(),
                    local_addrs: self.device.addresses.clone(),
                    listen_backlog: self.listen_backlog,
                    syn_cookies: self.syn_cookies,
                    mptcp: mptcp.clone(),
                    checksum_offload: offload,
                    // u16: n is at most MAX_WORKERS.
                    shard: Shard::new(i as u16, n as u16, steer_key).filter(|_| n > 1),
                    ..EngineConfig::default()
                },
                secret,
            );
            shards.push(Shared::new(
                engine,
                Notifier::new()?,
                clock,
                self.announce.clone(),
            ));
        }
        let name = queues[0].name().to_owned();
        let joins = Arc::new(JoinTable::default());
        let (senders, mut receivers): (Vec<_>, Vec<_>) =
            (0..n).map(|_| std::sync::mpsc::channel()).unzip();
        // Built before the workers start: dropping it on a failed spawn stops those
        // already running.
        let mut inner = StackInner {
            shards,
            threads: Vec::with_capacity(n),
            name,
            addresses: self.device.addresses,
            offload,
            next_worker: AtomicUsize::new(0),
            steer_key,
        };
        for (i, device) in queues.into_iter().enumerate() {
            let inbox = receivers.remove(0);
            // Shard::new only fails for i >= n, which the loop rules out.
            let shard = Shard::new(i as u16, n as u16, steer_key).filter(|_| n > 1);
            let workers = shard.map(|shard| Workers {
                steering: Steering {
                    shard,
                    joins: Arc::clone(&joins),
                },
                peers: senders
                    .iter()
                    .zip(&inner.shards)
                    .map(|(tx, shared)| Peer {
                        inbox: tx.clone(),
                        shared: Arc::clone(shared),
                    })
                    .collect(),
                inbox,
            });
            let driver = Driver {
                shared: Arc::clone(&inner.shards[i]),
                device,
                pcap: pcap.clone(),
                workers,
                linger: self.linger,
            };
            let thread_name = if n > 1 {
                format!("mptcp-tun {} {i}", inner.name)
            } else {
                format!("mptcp-tun {}", inner.name)
            };
            let spawned = std::thread::Builder::new()
                .name(thread_name)
                .spawn(move || driver.run());
            inner.threads.push(spawned?);
        }
        Ok(Stack {
            inner: Arc::new(inner),
        })
    }
}

/// A running user-space stack on one TUN device.
///
/// Cheap to clone; streams and listeners keep it alive. When the last handle (stack,
/// stream or listener) is dropped, the event loop lets closed connections finish (up to
/// the linger time), stops, and the TUN device and its routes are removed. That drop
/// blocks until then, so in async code drop the last handle outside the executor (or
/// keep a `Stack` alive in `main`).
#[derive(Clone, Debug)]
pub struct Stack {
    pub(crate) inner: Arc<StackInner>,
}

#[derive(Debug)]
pub(crate) struct StackInner {
    /// By worker.
    pub(crate) shards: Vec<Arc<Shared>>,
    threads: Vec<JoinHandle<TunDevice>>,
    name: String,
    addresses: Vec<IpAddr>,
    offload: bool,
    /// Round robin over the workers for connections with an ephemeral port.
    next_worker: AtomicUsize,
    /// The tuple hash key every worker steers with.
    steer_key: SteerKey,
}

impl Drop for StackInner {
    fn drop(&mut self) {
        for shared in &self.shards {
            shared.lock().shutting_down = true;
            shared.notifier.notify();
        }
        // Every queue stays open until all workers are done (the first one holds the
        // routes that lingering connections on the others still need).
        let mut queues = Vec::new();
        for thread in self.threads.drain(..) {
            // Never join ourselves (a waker dropped on a loop thread could, in
            // principle, hold the last handle).
            if thread.thread().id() == std::thread::current().id() {
                continue;
            }
            match thread.join() {
                Ok(queue) => queues.push(queue),
                Err(_) => tracing::error!(name = %self.name, "event loop thread panicked"),
            }
        }
        drop(queues);
    }
}

impl Stack {
    pub fn builder() -> StackBuilder {
        StackBuilder::default()
    }

    /// The TUN interface name.
    pub fn device_name(&self) -> &str {
        &self.inner.name
    }

    /// Whether TUN offload is on (asked for, and granted by the kernel).
    pub fn offload(&self) -> bool {
        self.inner.offload
    }

    /// The addresses the stack owns.
    pub fn addresses(&self) -> &[IpAddr] {
        &self.inner.addresses
    }

    /// Connections the endpoint holds, in any state (released ones that are still
    /// closing, and not yet accepted ones, included).
    pub fn connection_count(&self) -> usize {
        self.connections_per_worker().iter().sum()
    }

    /// [`Stack::connection_count`] of each worker.
    pub fn connections_per_worker(&self) -> Vec<usize> {
        self.inner
            .shards
            .iter()
            .map(|s| s.lock().engine.connection_count())
            .collect()
    }

    /// Packets a worker read from its TUN queue that belonged to another worker's
    /// connection and were handed over to it, over all workers. The kernel mostly
    /// puts a flow's packets on the queue it was last written from, so this stays a
    /// small share of [`EndpointStats::packets_in`]; always 0 with one worker.
    pub fn packets_forwarded(&self) -> u64 {
        self.inner
            .shards
            .iter()
            .map(|s| s.forwarded.load(Ordering::Relaxed))
            .sum()
    }

    /// The number of worker threads (see [`StackBuilder::workers`]).
    pub fn workers(&self) -> usize {
        self.inner.shards.len()
    }

    /// The endpoint's packet and drop counters, summed over the workers.
    pub fn endpoint_stats(&self) -> EndpointStats {
        let mut sum = EndpointStats::default();
        for s in &self.inner.shards {
            sum.merge(s.lock().engine.stats());
        }
        sum
    }

    /// Whether connections are MPTCP (see [`StackBuilder::mptcp`]).
    pub fn is_mptcp(&self) -> bool {
        self.inner.shards[0].lock().engine.config().mptcp.is_some()
    }

    /// A path event: `addr` (one of the stack's addresses) is usable again, e.g. its
    /// link came back. Every MPTCP connection may open subflows from it again (or
    /// announce it), including pairs that failed before.
    pub fn address_up(&self, addr: IpAddr) -> io::Result<()> {
        self.owned(addr)?;
        for s in &self.inner.shards {
            s.address_event(addr, true);
        }
        Ok(())
    }

    /// A path event: `addr` is unusable (its link went down). Its subflows are reset,
    /// their data goes to the other subflows, and the peer gets REMOVE_ADDR.
    pub fn address_down(&self, addr: IpAddr) -> io::Result<()> {
        self.owned(addr)?;
        for s in &self.inner.shards {
            s.address_event(addr, false);
        }
        Ok(())
    }

    fn owned(&self, addr: IpAddr) -> io::Result<()> {
        if self.inner.addresses.contains(&addr) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{addr} is not one of the stack's addresses {:?}",
                    self.inner.addresses
                ),
            ))
        }
    }

    /// The worker that opens a connection from `local` to `remote`: the one its tuple
    /// hashes to when the port is given, else the next in turn (whose endpoint then
    /// picks a port that hashes to itself).
    pub(crate) fn worker_for(&self, local: SocketAddr, remote: SocketAddr) -> usize {
        let n = self.inner.shards.len();
        if n == 1 {
            0
        } else if local.port() != 0 {
            usize::from(Shard::of_tuple(
                &self.inner.steer_key,
                local,
                remote,
                n as u16,
            ))
        } else {
            self.inner.next_worker.fetch_add(1, Ordering::Relaxed) % n
        }
    }

    /// The local address for a connection to `remote`: the first of the stack's
    /// addresses of the same family.
    pub(crate) fn local_for(&self, remote: SocketAddr) -> io::Result<SocketAddr> {
        self.inner
            .addresses
            .iter()
            .find(|a| a.is_ipv4() == remote.is_ipv4())
            .map(|&ip| SocketAddr::new(ip, 0))
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::AddrNotAvailable,
                    format!("the stack has no address of {remote}'s family"),
                )
            })
    }
}
