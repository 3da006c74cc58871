//! One measurement: open a connection for a pair of endpoints (kernel or ours on
//! either side), push bytes one way for a fixed time, and take the goodput at the
//! receiver.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use mptcp_tun::{MptcpListener, MptcpStream, Stack};
use serde::Serialize;
use socket2::{Domain, Protocol, Socket, Type};

use super::topology::{self, KERNEL_SERVER, OUR_CLIENT, OUR_SERVER, TUN_NAME, Topology};

/// Which stacks are at the two ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pair {
    /// The Linux kernel's MPTCP at both ends (two subflows): the reference.
    KernelKernel,
    /// Our stack as the client, the kernel's MPTCP as the server.
    OursKernel,
    /// Our stack at both ends.
    OursOurs,
    /// Plain TCP between kernel sockets on path 1: what the machine's kernel path does
    /// without MPTCP (context; not in the default set).
    KernelTcp,
}

impl Pair {
    /// The pairs measured when none is named.
    pub const DEFAULT: [Pair; 3] = [Pair::KernelKernel, Pair::OursKernel, Pair::OursOurs];

    /// How the table names the pair; `reverse`: the server sends.
    pub fn label(self, reverse: bool) -> &'static str {
        match (self, reverse) {
            (Pair::KernelKernel, _) => "kernel <-> kernel",
            (Pair::OursKernel, false) => "ours -> kernel",
            (Pair::OursKernel, true) => "kernel -> ours",
            (Pair::OursOurs, _) => "ours <-> ours",
            (Pair::KernelTcp, _) => "kernel TCP, 1 path",
        }
    }

    fn uses_ours(self) -> bool {
        match self {
            Pair::KernelKernel | Pair::KernelTcp => false,
            Pair::OursKernel | Pair::OursOurs => true,
        }
    }
}

/// Settings of one measurement.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Time the sender sends before the goodput window opens (slow start, joins).
    pub warmup: Duration,
    /// Length of the goodput window.
    pub duration: Duration,
    /// The server sends and the client receives.
    pub reverse: bool,
    /// Connections per measurement, all sending at once.
    pub connections: usize,
    /// TUN offload (virtio_net_hdr, TSO/GRO) for our stacks.
    pub offload: bool,
    /// Worker threads of each of our stacks.
    pub workers: usize,
}

/// What one measurement found.
#[derive(Clone, Debug, Serialize)]
pub struct Sample {
    /// Receivers' goodput over the window (all connections), Mbit/s.
    pub mbit_per_sec: f64,
    /// Bytes received in the window (from warm-up's end to the last stream's end),
    /// and the window's length in seconds.
    pub bytes: u64,
    pub seconds: f64,
    /// Subflows of a connection (the most of any): for kernel sockets those
    /// established (MPTCP_INFO), for ours those that carried at least 1 % of its data.
    pub subflows: usize,
    /// Ours as the sender: connection-level retransmissions (reinjections after the
    /// peer's data ACK stalled); absent for a kernel sender.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reinjections: Option<u64>,
}

const KERNEL_PORT: u16 = 5201;
const OURS_PORT: u16 = 5202;
const TCP_PORT: u16 = 5203;

/// Everything that stays up for the whole run: the namespaces, our two stacks and the
/// two listeners.
pub struct Bench {
    topo: Topology,
    client_stack: Option<Stack>,
    server_stack: Option<Stack>,
    kernel_listener: TcpListener,
    /// Plain TCP, for [`Pair::KernelTcp`].
    tcp_listener: TcpListener,
    our_listener: Option<MptcpListener>,
    settings: Settings,
}

impl Bench {
    pub fn new(topo: Topology, pairs: &[Pair], settings: Settings) -> anyhow::Result<Bench> {
        let offload = settings.offload;
        let workers = settings.workers;
        let needs_ours = pairs.iter().any(|p| p.uses_ours());
        let client_stack = if needs_ours {
            Some(topology::within(&topo.client, move || {
                Stack::builder()
                    .tun_name(TUN_NAME)
                    .addresses(OUR_CLIENT)
                    .offload(offload)
                    .workers(workers)
                    .build()
                    .context("starting our client stack")
            })?)
        } else {
            None
        };
        let (server_stack, our_listener) = if pairs.contains(&Pair::OursOurs) {
            let stack = topology::within(&topo.server, move || {
                Stack::builder()
                    .tun_name(TUN_NAME)
                    .address(OUR_SERVER)
                    .offload(offload)
                    .workers(workers)
                    .build()
                    .context("starting our server stack")
            })?;
            let listener = stack
                .bind(SocketAddr::new(OUR_SERVER, OURS_PORT))
                .context("our server's listener")?;
            (Some(stack), Some(listener))
        } else {
            (None, None)
        };
        let kernel_listener = topology::within(&topo.server, || {
            let s = mptcp_socket()?;
            s.set_reuse_address(true)?;
            let any: SocketAddr = ([0, 0, 0, 0], KERNEL_PORT).into();
            s.bind(&any.into())?;
            s.listen(16)?;
            Ok(TcpListener::from(s))
        })
        .context("the kernel MPTCP listener")?;
        let tcp_listener = topology::within(&topo.server, || {
            let s = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
            s.set_reuse_address(true)?;
            let any: SocketAddr = ([0, 0, 0, 0], TCP_PORT).into();
            s.bind(&any.into())?;
            s.listen(16)?;
            Ok(TcpListener::from(s))
        })
        .context("the kernel TCP listener")?;
        Ok(Bench {
            tcp_listener,
            topo,
            client_stack,
            server_stack,
            kernel_listener,
            our_listener,
            settings,
        })
    }

    /// Whether our stacks run with TUN offload (asked for and granted); `None` without
    /// our stacks.
    pub fn offload(&self) -> Option<bool> {
        self.client_stack.as_ref().map(Stack::offload)
    }

    /// Runs one transfer of `pair` (over `connections` connections at once) and
    /// measures it: the goodput is every byte received in the window, summed.
    pub fn measure(&self, pair: Pair) -> anyhow::Result<Sample> {
        let mut ends = Vec::with_capacity(self.settings.connections);
        for _ in 0..self.settings.connections.max(1) {
            let (client, server) = self
                .connect(pair)
                .with_context(|| format!("connecting {}", pair.label(false)))?;
            let (mut sender, mut receiver) = if self.settings.reverse {
                (server, client)
            } else {
                (client, server)
            };
            sender.set_timeouts()?;
            receiver.set_timeouts()?;
            ends.push((sender, receiver));
        }
        let window_start = Instant::now() + self.settings.warmup;
        let until = window_start + self.settings.duration;
        let outcomes = std::thread::scope(|s| {
            let running: Vec<_> = ends
                .iter()
                .map(|(sender, receiver)| {
                    let rx = s.spawn(move || {
                        receive(receiver, window_start)
                            .map_err(|e| stalled(e, "receiving", receiver, sender))
                    });
                    let tx = s.spawn(move || {
                        let sent = send_until(sender, until)
                            .map_err(|e| stalled(e, "sending", sender, receiver))?;
                        // Count the subflows while the connection is still whole.
                        let subflows = sender.subflows(sent);
                        let reinjections = sender.reinjections();
                        sender
                            .shutdown_write()
                            .context("closing the sending side")?;
                        anyhow::Ok((subflows, reinjections))
                    });
                    (tx, rx)
                })
                .collect();
            running
                .into_iter()
                .map(|(tx, rx)| {
                    let sent = tx
                        .join()
                        .map_err(|_| anyhow::anyhow!("a sending thread panicked"))?;
                    let received = rx
                        .join()
                        .map_err(|_| anyhow::anyhow!("a receiving thread panicked"))?;
                    anyhow::Ok((sent?, received?))
                })
                .collect::<anyhow::Result<Vec<_>>>()
        })?;
        drop(ends);
        self.settle();
        let bytes: u64 = outcomes.iter().map(|(_, r)| r.bytes).sum();
        let last = outcomes
            .iter()
            .map(|(_, r)| r.end)
            .max()
            .unwrap_or(window_start);
        let seconds = last.saturating_duration_since(window_start).as_secs_f64();
        let reinjections = outcomes
            .iter()
            .map(|((_, r), _)| *r)
            .try_fold(0u64, |sum, r| r.map(|r| sum + r));
        Ok(Sample {
            mbit_per_sec: if seconds > 0.0 {
                bytes as f64 * 8.0 / seconds / 1e6
            } else {
                0.0
            },
            bytes,
            seconds,
            subflows: outcomes.iter().map(|((n, _), _)| *n).max().unwrap_or(0),
            reinjections,
        })
    }

    fn connect(&self, pair: Pair) -> anyhow::Result<(Conn, Conn)> {
        let client = match pair {
            Pair::KernelKernel | Pair::KernelTcp => {
                let mptcp = pair == Pair::KernelKernel;
                let port = if mptcp { KERNEL_PORT } else { TCP_PORT };
                let to = SocketAddr::new(KERNEL_SERVER, port);
                let s = topology::within(&self.topo.client, move || {
                    let s = if mptcp {
                        mptcp_socket()?
                    } else {
                        Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?
                    };
                    s.connect_timeout(&to.into(), Duration::from_secs(10))?;
                    Ok(TcpStream::from(s))
                })?;
                Conn::Kernel(s)
            }
            Pair::OursKernel | Pair::OursOurs => {
                let stack = self
                    .client_stack
                    .as_ref()
                    .expect("built for pairs with ours");
                let to = match pair {
                    Pair::OursOurs => SocketAddr::new(OUR_SERVER, OURS_PORT),
                    _ => SocketAddr::new(KERNEL_SERVER, KERNEL_PORT),
                };
                Conn::Ours(stack.connect_multipath(&OUR_CLIENT, to)?)
            }
        };
        // The listeners' backlogs completed the handshakes; accept takes them.
        let server = match pair {
            Pair::KernelKernel | Pair::OursKernel => Conn::Kernel(self.kernel_listener.accept()?.0),
            Pair::KernelTcp => Conn::Kernel(self.tcp_listener.accept()?.0),
            Pair::OursOurs => Conn::Ours(
                self.our_listener
                    .as_ref()
                    .expect("built for ours <-> ours")
                    .accept()?
                    .0,
            ),
        };
        Ok((client, server))
    }

    /// Waits (a little) until our stacks have finished closing the last connection, so
    /// that one measurement's tail does not eat into the next one's CPU.
    fn settle(&self) {
        let deadline = Instant::now() + Duration::from_secs(3);
        let stacks = [&self.client_stack, &self.server_stack];
        while Instant::now() < deadline
            && stacks
                .iter()
                .any(|s| s.as_ref().is_some_and(|s| s.connection_count() > 0))
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Kernel sockets close in the background; give them a moment too.
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One end of a measured connection.
enum Conn {
    Kernel(TcpStream),
    Ours(MptcpStream),
}

/// A transfer that made no progress for this long is reported as stuck (with both
/// ends' state) instead of hanging the bench.
const STALL: Duration = Duration::from_secs(10);

/// Turns a timed-out read or write into an error that shows where the connection stands.
fn stalled(e: io::Error, doing: &str, this: &Conn, other: &Conn) -> anyhow::Error {
    if e.kind() != io::ErrorKind::WouldBlock && e.kind() != io::ErrorKind::TimedOut {
        return anyhow::Error::new(e).context(doing.to_owned());
    }
    anyhow::anyhow!(
        "{doing}: no progress for {} s; this end: {}; other end: {}",
        STALL.as_secs(),
        this.describe(),
        other.describe()
    )
}

impl Conn {
    fn set_timeouts(&mut self) -> io::Result<()> {
        match self {
            Conn::Kernel(s) => {
                s.set_read_timeout(Some(STALL))?;
                s.set_write_timeout(Some(STALL))
            }
            Conn::Ours(s) => {
                s.set_read_timeout(Some(STALL));
                s.set_write_timeout(Some(STALL));
                Ok(())
            }
        }
    }

    /// The connection's state for a stall report.
    fn describe(&self) -> String {
        match self {
            Conn::Kernel(_) => "kernel socket".to_owned(),
            Conn::Ours(s) => format!("ours {:?} {:#?}", s.state(), s.mptcp_stats()),
        }
    }

    fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Kernel(s) => (&*s).read(buf),
            Conn::Ours(s) => {
                let mut s = s;
                s.read(buf)
            }
        }
    }

    fn write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Conn::Kernel(s) => (&*s).write(buf),
            Conn::Ours(s) => {
                let mut s = s;
                s.write(buf)
            }
        }
    }

    fn shutdown_write(&self) -> io::Result<()> {
        match self {
            Conn::Kernel(s) => s.shutdown(Shutdown::Write),
            Conn::Ours(s) => s.shutdown(Shutdown::Write),
        }
    }

    fn reinjections(&self) -> Option<u64> {
        match self {
            Conn::Kernel(_) => None,
            Conn::Ours(s) => s.mptcp_stats().map(|st| st.reinjections),
        }
    }

    /// Subflows in use after `sent` bytes (see [`Sample::subflows`]).
    fn subflows(&self, sent: u64) -> usize {
        match self {
            // Plain TCP (or a fallback) has no MPTCP_INFO: one path.
            Conn::Kernel(s) => kernel_subflows(s).max(1),
            Conn::Ours(s) => s.mptcp_stats().map_or(1, |st| {
                st.subflows
                    .iter()
                    .chain(&st.closed_subflows)
                    .filter(|sf| (sf.bytes_sent + sf.bytes_received) * 100 >= sent.max(1))
                    .count()
            }),
        }
    }
}

fn mptcp_socket() -> io::Result<Socket> {
    Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::MPTCP)).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("cannot open a kernel MPTCP socket: {e} (is net.mptcp.enabled = 1?)"),
        )
    })
}

/// Established subflows of a kernel MPTCP socket: MPTCP_INFO's `mptcpi_subflows`
/// counts the additional ones. 0 when the socket is not MPTCP or the kernel does not
/// answer.
fn kernel_subflows(s: &TcpStream) -> usize {
    const SOL_MPTCP: libc::c_int = 284;
    const MPTCP_INFO: libc::c_int = 1;
    let mut info = [0u8; 256];
    let mut len = info.len() as libc::socklen_t;
    // SAFETY: the kernel writes at most `len` bytes into `info`, a live buffer.
    let rc = unsafe {
        libc::getsockopt(
            s.as_raw_fd(),
            SOL_MPTCP,
            MPTCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || len == 0 {
        return 0;
    }
    1 + usize::from(info[0])
}

/// Writes until `until`; returns the bytes written.
fn send_until(conn: &Conn, until: Instant) -> io::Result<u64> {
    let chunk = vec![0x5au8; 256 * 1024];
    let mut sent = 0u64;
    while Instant::now() < until {
        let n = conn.write(&chunk)?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "write returned 0"));
        }
        sent += n as u64;
    }
    Ok(sent)
}

/// What one receiver saw in the goodput window.
struct Received {
    /// Bytes that arrived from `window_start` on.
    bytes: u64,
    /// When the stream ended.
    end: Instant,
}

/// Reads to the end, counting what arrives from `window_start` on.
fn receive(conn: &Conn, window_start: Instant) -> io::Result<Received> {
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        let n = conn.read(&mut buf)?;
        let now = Instant::now();
        if n == 0 {
            return Ok(Received { bytes, end: now });
        }
        if now >= window_start {
            bytes += n as u64;
        }
    }
}
