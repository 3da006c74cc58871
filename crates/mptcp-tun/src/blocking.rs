//! Blocking streams and listeners, shaped like `std::net::TcpStream` and `TcpListener`.
//!
//! A blocking call tries the operation and, while it would block, parks its thread with
//! a waker that unparks it; the event loop wakes it when the connection's state changes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, mpsc};
use std::task::{Poll, Wake, Waker};
use std::thread::Thread;
use std::time::{Duration, Instant};

use mptcp_proto::mptcp::{ConnStats, MptcpEvent};
use mptcp_proto::tcp::{TcpState, TcpStats};

use crate::core::Shared;
use crate::engine::{ConnHandle, ListenerHandle};
use crate::stack::Stack;

/// Unparks the thread that waits.
struct ThreadWaker(Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Runs `op` until it is ready, parking in between, at most until `deadline` (then
/// `WouldBlock`, as std's sockets report an expired timeout on Unix).
pub(crate) fn block_on<T>(
    deadline: Option<Instant>,
    mut op: impl FnMut(&Waker) -> Poll<io::Result<T>>,
) -> io::Result<T> {
    let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
    loop {
        if let Poll::Ready(result) = op(&waker) {
            return result;
        }
        match deadline {
            None => std::thread::park(),
            Some(deadline) => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "the operation timed out",
                    ));
                }
                std::thread::park_timeout(deadline - now);
            }
        }
    }
}

/// One connection handle, released (closed gracefully) on drop. It talks only to the
/// worker that owns the connection.
#[derive(Debug)]
pub(crate) struct ConnRef {
    pub(crate) stack: Stack,
    /// The worker (endpoint shard) that owns the connection.
    pub(crate) w: usize,
    pub(crate) h: ConnHandle,
}

impl Drop for ConnRef {
    fn drop(&mut self) {
        self.shared().release(self.h);
    }
}

impl ConnRef {
    pub(crate) fn open(
        stack: &Stack,
        local: SocketAddr,
        remote: SocketAddr,
        extra_locals: &[IpAddr],
    ) -> io::Result<ConnRef> {
        let w = stack.worker_for(local, remote);
        let h = stack.inner.shards[w].connect(local, remote, extra_locals)?;
        Ok(ConnRef {
            stack: stack.clone(),
            w,
            h,
        })
    }

    pub(crate) fn shared(&self) -> &Arc<Shared> {
        &self.stack.inner.shards[self.w]
    }

    pub(crate) fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let shared = self.shared();
        match how {
            Shutdown::Write => shared.shutdown_write(self.h),
            Shutdown::Read => shared.shutdown_read(self.h),
            Shutdown::Both => {
                shared.shutdown_read(self.h)?;
                shared.shutdown_write(self.h)
            }
        }
    }
}

/// An MPTCP connection over the stack (plain TCP when the peer or the stack does not
/// speak MPTCP), with blocking IO.
///
/// Dropping it closes the connection gracefully: data already written is still
/// delivered, then a FIN (as with `std::net::TcpStream`).
#[derive(Debug)]
pub struct MptcpStream {
    conn: ConnRef,
    read_timeout: Option<Duration>,
    write_timeout: Option<Duration>,
}

impl MptcpStream {
    /// Opens a connection to `remote` from the stack's address of the same family and
    /// waits for the handshake. Errors: `ConnectionRefused` (RST in reply to the SYN),
    /// `TimedOut` (SYN retries exhausted), `AddrNotAvailable` (no local address of that
    /// family).
    pub fn connect(stack: &Stack, remote: SocketAddr) -> io::Result<MptcpStream> {
        MptcpStream::connect_inner(stack, stack.local_for(remote)?, remote, &[], None)
    }

    /// Opens an MPTCP connection whose first subflow runs from `locals[0]` (an
    /// ephemeral port), and once it is established one more subflow joins from each
    /// further address (to the peer's address, and to each address it announces).
    /// Waits for the first subflow's handshake.
    pub fn connect_multipath(
        stack: &Stack,
        locals: &[IpAddr],
        remote: SocketAddr,
    ) -> io::Result<MptcpStream> {
        let Some((&first, extra)) = locals.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect_multipath needs at least one local address",
            ));
        };
        MptcpStream::connect_inner(stack, SocketAddr::new(first, 0), remote, extra, None)
    }

    /// Like [`MptcpStream::connect`], but gives up with `TimedOut` after `timeout`.
    pub fn connect_timeout(
        stack: &Stack,
        remote: SocketAddr,
        timeout: Duration,
    ) -> io::Result<MptcpStream> {
        MptcpStream::connect_inner(stack, stack.local_for(remote)?, remote, &[], Some(timeout))
    }

    /// Connects from a given local address (port 0: an ephemeral port).
    pub fn connect_from(
        stack: &Stack,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<MptcpStream> {
        MptcpStream::connect_inner(stack, local, remote, &[], None)
    }

    fn connect_inner(
        stack: &Stack,
        local: SocketAddr,
        remote: SocketAddr,
        extra_locals: &[IpAddr],
        timeout: Option<Duration>,
    ) -> io::Result<MptcpStream> {
        let conn = ConnRef::open(stack, local, remote, extra_locals)?;
        let shared = conn.shared();
        match block_on(timeout.map(|t| Instant::now() + t), |w| {
            shared.poll_connected(conn.h, w)
        }) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                shared.abort(conn.h);
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("connecting to {remote} timed out"),
                ));
            }
            Err(e) => return Err(e),
        }
        Ok(MptcpStream {
            conn,
            read_timeout: None,
            write_timeout: None,
        })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.conn.shared().addrs(self.conn.h)?.0)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.conn.shared().addrs(self.conn.h)?.1)
    }

    /// `Write`: sends our FIN after the data written so far; reads keep working.
    /// `Read`: later reads report end of stream. `Both`: both.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        self.conn.shutdown(how)
    }

    /// Resets the connection (RST) instead of closing it gracefully.
    pub fn abort(self) {
        self.conn.shared().abort(self.conn.h);
    }

    /// `None`: reads block until data arrives. An expired timeout is `WouldBlock`.
    pub fn set_read_timeout(&mut self, timeout: Option<Duration>) {
        self.read_timeout = timeout;
    }

    /// `None`: writes block until send buffer space frees up.
    pub fn set_write_timeout(&mut self, timeout: Option<Duration>) {
        self.write_timeout = timeout;
    }

    /// The TCP engine's counters, while the connection exists.
    pub fn stats(&self) -> Option<TcpStats> {
        self.conn.shared().stats(self.conn.h)
    }

    /// The TCP state, while the connection exists.
    pub fn state(&self) -> Option<TcpState> {
        self.conn.shared().state(self.conn.h)
    }

    /// Connection-level and per-subflow figures (bytes, RTT, cwnd per subflow),
    /// while the connection exists; `None` for a plain TCP connection.
    pub fn mptcp_stats(&self) -> Option<ConnStats> {
        self.conn.shared().mptcp_stats(self.conn.h)
    }

    /// The connection's multipath events (subflow up and down with the reason,
    /// addresses the peer announced or removed, fallback to TCP, and the close
    /// reason), from its start: events that happened before are delivered first. A
    /// new call replaces the previous receiver. The channel ends when the stream is
    /// dropped.
    pub fn events(&self) -> io::Result<mpsc::Receiver<MptcpEvent>> {
        self.conn.shared().subscribe(self.conn.h)
    }

    fn read_inner(&self, buf: &mut [u8]) -> io::Result<usize> {
        let shared = &self.conn.shared();
        let deadline = self.read_timeout.map(|t| Instant::now() + t);
        block_on(deadline, |w| shared.poll_read(self.conn.h, buf, w))
    }

    fn write_inner(&self, data: &[u8]) -> io::Result<usize> {
        let shared = &self.conn.shared();
        let deadline = self.write_timeout.map(|t| Instant::now() + t);
        block_on(deadline, |w| shared.poll_write(self.conn.h, data, w))
    }
}

impl Read for MptcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
}

impl Read for &MptcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.read_inner(buf)
    }
}

impl Write for MptcpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_inner(data)
    }

    /// Data is with the stack once `write` returns; there is nothing to flush.
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Write for &MptcpStream {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.write_inner(data)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// One listener handle, closed on drop: a listener in every worker's endpoint, since
/// a SYN may hash to any of them.
#[derive(Debug)]
pub(crate) struct ListenerRef {
    pub(crate) stack: Stack,
    /// By worker.
    ls: Vec<ListenerHandle>,
    /// The worker whose queue `poll_accept` looks at first, rotated so that no
    /// worker's connections wait behind another's.
    next: AtomicUsize,
}

impl Drop for ListenerRef {
    fn drop(&mut self) {
        for (shared, &l) in self.stack.inner.shards.iter().zip(&self.ls) {
            shared.unlisten(l);
        }
    }
}

impl ListenerRef {
    pub(crate) fn bind(stack: &Stack, local: SocketAddr) -> io::Result<ListenerRef> {
        let mut listener = ListenerRef {
            stack: stack.clone(),
            ls: Vec::with_capacity(stack.inner.shards.len()),
            next: AtomicUsize::new(0),
        };
        for shared in &stack.inner.shards {
            // On an error, dropping `listener` closes the ones made so far.
            listener.ls.push(shared.listen(local)?);
        }
        Ok(listener)
    }

    /// The next accepted connection of any worker, as a handle to it.
    pub(crate) fn poll_accept(&self, waker: &Waker) -> Poll<io::Result<ConnRef>> {
        let shards = &self.stack.inner.shards;
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..shards.len() {
            let w = (first + i) % shards.len();
            // Pending registers the waker with that worker, so a connection arriving
            // at any of them wakes us.
            if let Poll::Ready(r) = shards[w].poll_accept(self.ls[w], waker) {
                return Poll::Ready(r.map(|h| ConnRef {
                    stack: self.stack.clone(),
                    w,
                    h,
                }));
            }
        }
        Poll::Pending
    }

    pub(crate) fn local_addr(&self) -> io::Result<SocketAddr> {
        self.stack.inner.shards[0].listener_addr(self.ls[0])
    }
}

/// Accepts connections on one local address and port, with blocking `accept`.
#[derive(Debug)]
pub struct MptcpListener {
    listener: ListenerRef,
}

impl MptcpListener {
    /// Listens on `local` (one of the stack's addresses, or the unspecified address for
    /// all of them). `AddrInUse` if a listener on that port exists.
    pub fn bind(stack: &Stack, local: SocketAddr) -> io::Result<MptcpListener> {
        Ok(MptcpListener {
            listener: ListenerRef::bind(stack, local)?,
        })
    }

    /// Waits for the next connection whose handshake completed.
    pub fn accept(&self) -> io::Result<(MptcpStream, SocketAddr)> {
        let conn = block_on(None, |w| self.listener.poll_accept(w))?;
        let peer = conn.shared().addrs(conn.h)?.1;
        Ok((
            MptcpStream {
                conn,
                read_timeout: None,
                write_timeout: None,
            },
            peer,
        ))
    }

    /// An iterator over accepted connections, like `TcpListener::incoming`.
    pub fn incoming(&self) -> impl Iterator<Item = io::Result<MptcpStream>> + '_ {
        std::iter::repeat_with(move || self.accept().map(|(s, _)| s))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Stack {
    /// [`MptcpStream::connect`] on this stack.
    pub fn connect(&self, remote: SocketAddr) -> io::Result<MptcpStream> {
        MptcpStream::connect(self, remote)
    }

    /// [`MptcpStream::connect_multipath`] on this stack.
    pub fn connect_multipath(
        &self,
        locals: &[IpAddr],
        remote: SocketAddr,
    ) -> io::Result<MptcpStream> {
        MptcpStream::connect_multipath(self, locals, remote)
    }

    /// [`MptcpListener::bind`] on this stack.
    pub fn bind(&self, local: SocketAddr) -> io::Result<MptcpListener> {
        MptcpListener::bind(self, local)
    }
}
