//! The multipath leg between proxy client and proxy server: our stack on a TUN device
//! ([`StackDialer`], [`StackAcceptor`]) or the Linux kernel's sockets
//! ([`KernelDialer`], [`KernelAcceptor`], with `IPPROTO_MPTCP` when asked), so either
//! end can also be a kernel MPTCP host.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};

use mptcp_tun::{AsyncMptcpListener, AsyncMptcpStream, Stack};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpSocket, TcpStream};

use crate::stats::PathShare;

/// Opens multipath connections to the proxy server.
pub trait Dialer: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn dial(&self) -> impl Future<Output = io::Result<Self::Stream>> + Send;

    /// `local -> remote` of a connection, for logs.
    fn describe(&self, stream: &Self::Stream) -> String;

    /// Bytes per path of a connection, when the transport knows them.
    fn paths(&self, _stream: &Self::Stream) -> Vec<PathShare> {
        Vec::new()
    }

    /// A short name for the `listening` event.
    fn name(&self) -> String;
}

/// Accepts multipath connections from proxy clients.
pub trait Acceptor: Send + Sync + 'static {
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Stream, SocketAddr)>> + Send;

    fn describe(&self, stream: &Self::Stream) -> String;

    fn paths(&self, _stream: &Self::Stream) -> Vec<PathShare> {
        Vec::new()
    }

    fn local_addr(&self) -> io::Result<SocketAddr>;

    fn name(&self) -> String;
}

fn describe_pair(local: io::Result<SocketAddr>, remote: io::Result<SocketAddr>) -> String {
    match (local, remote) {
        (Ok(l), Ok(r)) => format!("{l} -> {r}"),
        (Err(e), _) | (_, Err(e)) => format!("(unknown: {e})"),
    }
}

/// Connections from our stack's addresses to the server.
#[derive(Clone, Debug)]
pub struct StackDialer {
    pub stack: Stack,
    /// The stack addresses to use: the initial subflow leaves from the first, and one
    /// more subflow joins from each of the others once the connection is established
    /// (plus joins to addresses the server announces).
    pub locals: Vec<IpAddr>,
    pub server: SocketAddr,
}

impl Dialer for StackDialer {
    type Stream = AsyncMptcpStream;

    async fn dial(&self) -> io::Result<AsyncMptcpStream> {
        AsyncMptcpStream::connect_multipath(&self.stack, &self.locals, self.server).await
    }

    fn describe(&self, s: &AsyncMptcpStream) -> String {
        describe_pair(s.local_addr(), s.peer_addr())
    }

    fn paths(&self, s: &AsyncMptcpStream) -> Vec<PathShare> {
        stack_paths(s)
    }

    fn name(&self) -> String {
        format!(
            "our stack on TUN {} from {:?} to {}",
            self.stack.device_name(),
            self.locals,
            self.server
        )
    }
}

/// Accepts on our stack.
#[derive(Debug)]
pub struct StackAcceptor {
    pub listener: AsyncMptcpListener,
    pub stack: Stack,
}

impl Acceptor for StackAcceptor {
    type Stream = AsyncMptcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(AsyncMptcpStream, SocketAddr)>> + Send {
        self.listener.accept()
    }

    fn describe(&self, s: &AsyncMptcpStream) -> String {
        describe_pair(s.peer_addr(), s.local_addr())
    }

    fn paths(&self, s: &AsyncMptcpStream) -> Vec<PathShare> {
        stack_paths(s)
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn name(&self) -> String {
        format!("our stack on TUN {}", self.stack.device_name())
    }
}

/// Per-subflow payload bytes of an MPTCP connection of our stack (none for a plain
/// TCP or fallen-back connection without MPTCP stats), subflows closed on the way
/// included: a path's total must not lose what a failed or replaced subflow carried.
fn stack_paths(s: &AsyncMptcpStream) -> Vec<PathShare> {
    s.mptcp_stats()
        .map(|stats| {
            stats
                .closed_subflows
                .iter()
                .chain(&stats.subflows)
                .map(|f| PathShare {
                    local: f.local,
                    remote: f.remote,
                    bytes_sent: f.bytes_sent,
                    bytes_received: f.bytes_received,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn kernel_socket(addr: SocketAddr, mptcp: bool) -> io::Result<Socket> {
    let protocol = if mptcp {
        Protocol::MPTCP
    } else {
        Protocol::TCP
    };
    let socket =
        Socket::new(Domain::for_address(addr), Type::STREAM, Some(protocol)).map_err(|e| {
            if mptcp {
                io::Error::new(
                    e.kind(),
                    format!("opening a kernel MPTCP socket (is net.mptcp.enabled=1?): {e}"),
                )
            } else {
                e
            }
        })?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Kernel sockets to the server (MPTCP with `mptcp`, the kernel's path manager then
/// decides the subflows: `ip mptcp endpoint`).
#[derive(Clone, Debug)]
pub struct KernelDialer {
    pub server: SocketAddr,
    pub mptcp: bool,
}

impl Dialer for KernelDialer {
    type Stream = TcpStream;

    async fn dial(&self) -> io::Result<TcpStream> {
        let socket = kernel_socket(self.server, self.mptcp)?;
        let std_stream = std::net::TcpStream::from(socket);
        TcpSocket::from_std_stream(std_stream)
            .connect(self.server)
            .await
    }

    fn describe(&self, s: &TcpStream) -> String {
        describe_pair(s.local_addr(), s.peer_addr())
    }

    fn name(&self) -> String {
        format!(
            "kernel {} to {}",
            if self.mptcp { "MPTCP" } else { "TCP" },
            self.server
        )
    }
}

/// Accepts on a kernel socket.
#[derive(Debug)]
pub struct KernelAcceptor {
    listener: TcpListener,
    mptcp: bool,
}

impl KernelAcceptor {
    /// Binds `addr` (MPTCP with `mptcp`; plain TCP clients are accepted either way).
    /// Call inside a tokio runtime.
    pub fn bind(addr: SocketAddr, mptcp: bool) -> io::Result<KernelAcceptor> {
        let socket = kernel_socket(addr, mptcp)?;
        socket.set_reuse_address(true)?;
        socket.bind(&addr.into())?;
        socket.listen(1024)?;
        Ok(KernelAcceptor {
            listener: TcpListener::from_std(socket.into())?,
            mptcp,
        })
    }
}

impl Acceptor for KernelAcceptor {
    type Stream = TcpStream;

    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        self.listener.accept()
    }

    fn describe(&self, s: &TcpStream) -> String {
        describe_pair(s.peer_addr(), s.local_addr())
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    fn name(&self) -> String {
        format!("kernel {}", if self.mptcp { "MPTCP" } else { "TCP" })
    }
}
