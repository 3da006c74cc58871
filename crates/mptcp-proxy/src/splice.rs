//! Copies bytes both ways between two streams until both directions ended.
//!
//! - Bounded: each direction owns one buffer of [`SpliceConfig::buffer`] bytes and
//!   reads only into its free space, so a slow reader on one side stops reads on the
//!   other (the sender's TCP window closes): backpressure end to end, memory fixed per
//!   connection.
//! - Half-close: an end of stream on one side becomes a shutdown of writing (FIN) on the
//!   other once the buffer is flushed; the other direction keeps flowing (RFC 9293
//!   §3.6: a half-closed connection still carries data the other way).
//! - Idle timeout: no byte moved in either direction for [`SpliceConfig::idle_timeout`]
//!   ends the splice.

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

/// Splice settings.
#[derive(Clone, Debug)]
pub struct SpliceConfig {
    /// Bytes buffered per direction (default 64 KiB).
    pub buffer: usize,
    /// End the splice when nothing moved for this long (default 5 minutes).
    pub idle_timeout: Duration,
}

impl Default for SpliceConfig {
    fn default() -> Self {
        SpliceConfig {
            buffer: 64 * 1024,
            idle_timeout: Duration::from_secs(300),
        }
    }
}

/// How a splice ended.
#[derive(Debug)]
pub enum SpliceEnd {
    /// Both sides closed their direction.
    Eof,
    /// Nothing moved for the idle timeout.
    IdleTimeout,
    /// A read, write or shutdown failed (`up` says in which direction).
    Error { up: bool, error: io::Error },
}

impl std::fmt::Display for SpliceEnd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SpliceEnd::Eof => f.write_str("eof"),
            SpliceEnd::IdleTimeout => f.write_str("idle timeout"),
            SpliceEnd::Error { up: true, error } => write!(f, "error towards the target: {error}"),
            SpliceEnd::Error { up: false, error } => {
                write!(f, "error towards the client: {error}")
            }
        }
    }
}

/// What a splice moved.
#[derive(Debug)]
pub struct SpliceResult {
    /// Bytes written to `b` (from `a` and `initial_up`).
    pub up: u64,
    /// Bytes written to `a` (from `b` and `initial_down`).
    pub down: u64,
    pub end: SpliceEnd,
}

/// Live byte counters the splice adds to as it writes.
#[derive(Clone, Copy, Debug)]
pub struct Meters<'a> {
    pub up: &'a AtomicU64,
    pub down: &'a AtomicU64,
}

/// Copies `a -> b` ("up") and `b -> a` ("down"). `initial_up`/`initial_down` are bytes
/// already read from `a`/`b` (past a handshake) that go out first.
pub async fn splice<A, B>(
    a: &mut A,
    b: &mut B,
    initial_up: &[u8],
    initial_down: &[u8],
    config: &SpliceConfig,
    meters: Meters<'_>,
) -> SpliceResult
where
    A: AsyncRead + AsyncWrite + Unpin + ?Sized,
    B: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut up = Pump::new(config.buffer, initial_up);
    let mut down = Pump::new(config.buffer, initial_down);
    let idle = config.idle_timeout;
    let mut last_progress = Instant::now();
    let timer = tokio::time::sleep(idle);
    tokio::pin!(timer);
    let end = poll_fn(|cx| {
        let mut progress = false;
        if let Poll::Ready(Err(error)) = up.poll(cx, a, b, meters.up, &mut progress) {
            return Poll::Ready(SpliceEnd::Error { up: true, error });
        }
        if let Poll::Ready(Err(error)) = down.poll(cx, b, a, meters.down, &mut progress) {
            return Poll::Ready(SpliceEnd::Error { up: false, error });
        }
        if up.done && down.done {
            return Poll::Ready(SpliceEnd::Eof);
        }
        if progress {
            last_progress = Instant::now();
        }
        // The timer is reset lazily: only when it fires do we check whether anything
        // moved since it was armed.
        while timer.as_mut().poll(cx).is_ready() {
            let deadline = last_progress + idle;
            if Instant::now() >= deadline {
                return Poll::Ready(SpliceEnd::IdleTimeout);
            }
            timer.as_mut().reset(deadline);
        }
        Poll::Pending
    })
    .await;
    SpliceResult {
        up: up.total,
        down: down.total,
        end,
    }
}

/// One direction: read into the free part of the buffer, write from the filled part.
struct Pump {
    buf: Box<[u8]>,
    /// Bytes `start..end` are read and not yet written.
    start: usize,
    end: usize,
    eof: bool,
    /// EOF seen, buffer flushed and the writer shut down.
    done: bool,
    total: u64,
}

/// Turns of the copy loop before yielding to other tasks, so one busy connection
/// cannot monopolise a worker thread.
const TURNS: usize = 32;

impl Pump {
    fn new(capacity: usize, initial: &[u8]) -> Pump {
        let mut buf = vec![0u8; capacity.max(initial.len()).max(1)].into_boxed_slice();
        buf[..initial.len()].copy_from_slice(initial);
        Pump {
            buf,
            start: 0,
            end: initial.len(),
            eof: false,
            done: false,
            total: 0,
        }
    }

    fn poll<R, W>(
        &mut self,
        cx: &mut Context<'_>,
        r: &mut R,
        w: &mut W,
        meter: &AtomicU64,
        progress: &mut bool,
    ) -> Poll<io::Result<()>>
    where
        R: AsyncRead + Unpin + ?Sized,
        W: AsyncWrite + Unpin + ?Sized,
    {
        for _ in 0..TURNS {
            if self.done {
                return Poll::Ready(Ok(()));
            }
            let mut moved = false;
            if !self.eof && self.end < self.buf.len() {
                let mut rb = ReadBuf::new(&mut self.buf[self.end..]);
                match Pin::new(&mut *r).poll_read(cx, &mut rb) {
                    Poll::Ready(Ok(())) => {
                        let n = rb.filled().len();
                        if n == 0 {
                            self.eof = true;
                        }
                        self.end += n;
                        moved = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if self.start < self.end {
                match Pin::new(&mut *w).poll_write(cx, &self.buf[self.start..self.end]) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::WriteZero,
                            "the peer accepted no bytes",
                        )));
                    }
                    Poll::Ready(Ok(n)) => {
                        self.start += n;
                        self.total += n as u64;
                        meter.fetch_add(n as u64, Ordering::Relaxed);
                        if self.start == self.end {
                            self.start = 0;
                            self.end = 0;
                        }
                        moved = true;
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => {}
                }
            }
            if self.eof && self.start == self.end {
                match Pin::new(&mut *w).poll_shutdown(cx) {
                    Poll::Ready(Ok(())) => {
                        self.done = true;
                        *progress = true;
                        return Poll::Ready(Ok(()));
                    }
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            if !moved {
                return Poll::Pending;
            }
            *progress = true;
        }
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt, duplex};

    fn meters() -> (AtomicU64, AtomicU64) {
        (AtomicU64::new(0), AtomicU64::new(0))
    }

    #[tokio::test]
    async fn half_close_keeps_the_other_direction_flowing() {
        // app <-> (a) splice (b) <-> target
        let (mut app, mut a) = duplex(1024);
        let (mut b, mut target) = duplex(1024);
        let (mu, md) = meters();
        let cfg = SpliceConfig::default();
        let proxy = tokio::spawn(async move {
            let r = splice(
                &mut a,
                &mut b,
                b"pre",
                b"",
                &cfg,
                Meters { up: &mu, down: &md },
            )
            .await;
            (
                r.up,
                r.down,
                r.end.to_string(),
                mu.into_inner(),
                md.into_inner(),
            )
        });
        app.write_all(b"request").await.unwrap();
        app.shutdown().await.unwrap();
        let mut got = Vec::new();
        target.read_to_end(&mut got).await.unwrap();
        assert_eq!(got, b"prerequest");
        // The target answers after the client's FIN arrived.
        let reply = vec![7u8; 100_000];
        let writer = tokio::spawn({
            let reply = reply.clone();
            async move {
                target.write_all(&reply).await.unwrap();
                target.shutdown().await.unwrap();
            }
        });
        let mut back = Vec::new();
        app.read_to_end(&mut back).await.unwrap();
        writer.await.unwrap();
        assert_eq!(back, reply);
        assert_eq!(
            proxy.await.unwrap(),
            (10, 100_000, "eof".to_string(), 10, 100_000)
        );
    }

    #[tokio::test]
    async fn slow_reader_bounds_what_is_taken_from_the_sender() {
        let (mut app, mut a) = duplex(4096);
        let (mut b, mut target) = duplex(4096);
        let (mu, md) = meters();
        let cfg = SpliceConfig {
            buffer: 8192,
            ..SpliceConfig::default()
        };
        let proxy = tokio::spawn(async move {
            splice(
                &mut a,
                &mut b,
                b"",
                b"",
                &cfg,
                Meters { up: &mu, down: &md },
            )
            .await;
        });
        // Nobody reads at the target: the app can push at most its pipe, our buffer
        // and the target's pipe (4096 + 8192 + 4096 bytes), then writing blocks.
        let sender = tokio::spawn(async move {
            let chunk = [1u8; 1024];
            let mut sent = 0usize;
            loop {
                match tokio::time::timeout(Duration::from_millis(200), app.write_all(&chunk)).await
                {
                    Ok(Ok(())) => sent += chunk.len(),
                    Ok(Err(e)) => panic!("write failed: {e}"),
                    Err(_) => return (sent, app),
                }
            }
        });
        let (sent, app) = sender.await.unwrap();
        assert_eq!(sent, 4096 + 8192 + 4096);
        // Draining the target lets everything through.
        drop(app);
        let mut got = Vec::new();
        target.read_to_end(&mut got).await.unwrap();
        assert_eq!(got.len(), sent);
        proxy.abort();
    }

    #[tokio::test(start_paused = true)]
    async fn idle_connections_time_out_and_busy_ones_do_not() {
        let (mut app, mut a) = duplex(1024);
        let (mut b, mut target) = duplex(1024);
        let (mu, md) = meters();
        let cfg = SpliceConfig {
            buffer: 1024,
            idle_timeout: Duration::from_secs(10),
        };
        let start = Instant::now();
        let proxy = tokio::spawn(async move {
            let r = splice(
                &mut a,
                &mut b,
                b"",
                b"",
                &cfg,
                Meters { up: &mu, down: &md },
            )
            .await;
            (r.up, r.end.to_string(), Instant::now())
        });
        // A byte every 6 s keeps it alive for 30 s.
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_secs(6)).await;
            app.write_all(b"x").await.unwrap();
            let mut one = [0u8; 1];
            target.read_exact(&mut one).await.unwrap();
        }
        let (up, end, ended) = proxy.await.unwrap();
        assert_eq!((up, end.as_str()), (5, "idle timeout"));
        assert_eq!(ended - start, Duration::from_secs(40));
    }

    #[tokio::test]
    async fn a_reset_side_ends_with_an_error() {
        struct Broken;
        impl AsyncRead for Broken {
            fn poll_read(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &mut ReadBuf<'_>,
            ) -> Poll<io::Result<()>> {
                Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
            }
        }
        impl AsyncWrite for Broken {
            fn poll_write(
                self: Pin<&mut Self>,
                _: &mut Context<'_>,
                _: &[u8],
            ) -> Poll<io::Result<usize>> {
                Poll::Ready(Err(io::ErrorKind::ConnectionReset.into()))
            }
            fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
            fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
                Poll::Ready(Ok(()))
            }
        }
        let (_app, mut a) = duplex(64);
        let (mu, md) = meters();
        let r = splice(
            &mut a,
            &mut Broken,
            b"",
            b"",
            &SpliceConfig::default(),
            Meters { up: &mu, down: &md },
        )
        .await;
        assert!(
            matches!(&r.end, SpliceEnd::Error { up: false, error } if error.kind() == io::ErrorKind::ConnectionReset),
            "{:?}",
            r.end
        );
    }
}
