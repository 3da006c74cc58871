//! Async streams and listeners for tokio: `AsyncRead`/`AsyncWrite`, async `connect` and
//! `accept`. The event loop wakes the tasks directly, so no tokio reactor is involved
//! and any executor works.

use std::future::poll_fn;
use std::io;
use std::net::{Shutdown, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use mptcp_proto::tcp::{TcpState, TcpStats};

use crate::blocking::{ConnRef, ListenerRef};
use crate::stack::Stack;

/// A connection with tokio's async IO traits. Dropping it closes the connection
/// gracefully.
#[derive(Debug)]
pub struct AsyncMptcpStream {
    conn: ConnRef,
}

impl AsyncMptcpStream {
    /// Opens a connection to `remote` from the stack's address of the same family and
    /// waits for the handshake; errors as [`crate::MptcpStream::connect`].
    pub async fn connect(stack: &Stack, remote: SocketAddr) -> io::Result<AsyncMptcpStream> {
        AsyncMptcpStream::connect_from(stack, stack.local_for(remote)?, remote).await
    }

    /// Connects from a given local address (port 0: an ephemeral port).
    pub async fn connect_from(
        stack: &Stack,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> io::Result<AsyncMptcpStream> {
        let conn = ConnRef::open(stack, local, remote, &[])?;
        let shared = conn.shared();
        poll_fn(|cx| shared.poll_connected(conn.h, cx.waker())).await?;
        Ok(AsyncMptcpStream { conn })
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.conn.shared().addrs(self.conn.h)?.0)
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.conn.shared().addrs(self.conn.h)?.1)
    }

    /// As [`crate::MptcpStream::shutdown`].
    pub fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        self.conn.shutdown(how)
    }

    /// Resets the connection (RST).
    pub fn abort(self) {
        self.conn.shared().abort(self.conn.h);
    }

    /// As [`crate::MptcpStream::connect_multipath`].
    pub async fn connect_multipath(
        stack: &Stack,
        locals: &[std::net::IpAddr],
        remote: SocketAddr,
    ) -> io::Result<AsyncMptcpStream> {
        let Some((&first, extra)) = locals.split_first() else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "connect_multipath needs at least one local address",
            ));
        };
        let conn = ConnRef::open(stack, SocketAddr::new(first, 0), remote, extra)?;
        let shared = conn.shared();
        poll_fn(|cx| shared.poll_connected(conn.h, cx.waker())).await?;
        Ok(AsyncMptcpStream { conn })
    }

    /// As [`crate::MptcpStream::mptcp_stats`].
    pub fn mptcp_stats(&self) -> Option<mptcp_proto::mptcp::ConnStats> {
        self.conn.shared().mptcp_stats(self.conn.h)
    }

    /// As [`crate::MptcpStream::events`].
    pub fn events(&self) -> io::Result<std::sync::mpsc::Receiver<mptcp_proto::mptcp::MptcpEvent>> {
        self.conn.shared().subscribe(self.conn.h)
    }

    pub fn stats(&self) -> Option<TcpStats> {
        self.conn.shared().stats(self.conn.h)
    }

    pub fn state(&self) -> Option<TcpState> {
        self.conn.shared().state(self.conn.h)
    }
}

impl AsyncRead for AsyncMptcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let shared = &self.conn.shared();
        let n = std::task::ready!(shared.poll_read(
            self.conn.h,
            buf.initialize_unfilled(),
            cx.waker()
        ))?;
        buf.advance(n);
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for AsyncMptcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.conn.shared().poll_write(self.conn.h, data, cx.waker())
    }

    /// Data is with the stack once `poll_write` returns; there is nothing to flush.
    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    /// Sends our FIN (half-close); reading keeps working.
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(self.conn.shutdown(Shutdown::Write))
    }
}

/// Accepts connections with an async `accept`.
#[derive(Debug)]
pub struct AsyncMptcpListener {
    listener: ListenerRef,
}

impl AsyncMptcpListener {
    /// As [`crate::MptcpListener::bind`].
    pub fn bind(stack: &Stack, local: SocketAddr) -> io::Result<AsyncMptcpListener> {
        Ok(AsyncMptcpListener {
            listener: ListenerRef::bind(stack, local)?,
        })
    }

    /// Waits for the next connection whose handshake completed.
    pub async fn accept(&self) -> io::Result<(AsyncMptcpStream, SocketAddr)> {
        let conn = poll_fn(|cx| self.listener.poll_accept(cx.waker())).await?;
        let peer = conn.shared().addrs(conn.h)?.1;
        Ok((AsyncMptcpStream { conn }, peer))
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }
}

impl Stack {
    /// [`AsyncMptcpStream::connect`] on this stack.
    pub async fn connect_async(&self, remote: SocketAddr) -> io::Result<AsyncMptcpStream> {
        AsyncMptcpStream::connect(self, remote).await
    }

    /// [`AsyncMptcpListener::bind`] on this stack.
    pub fn bind_async(&self, local: SocketAddr) -> io::Result<AsyncMptcpListener> {
        AsyncMptcpListener::bind(self, local)
    }
}
