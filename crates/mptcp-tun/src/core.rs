//! The state shared between the event loop and the application handles: the endpoint
//! behind one mutex, plus per-connection status and wakers.
//!
//! Every application call locks, tries the operation on the endpoint, and either
//! completes or registers a [`Waker`] and reports `Pending`, all under the same lock
//! the loop holds while it turns endpoint events into wake-ups, so no wake-up is lost.
//! The blocking API waits with a waker that unparks its thread; the tokio API passes
//! the task's waker. After any call that gives the endpoint something to send (write,
//! read: window update, close, connect) the loop is notified.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicU64;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Poll, Waker};

use mptcp_proto::mptcp::{ConnStats, MptcpEvent};
use mptcp_proto::tcp::{TcpEvent, TcpState, TcpStats};

use crate::clock::Clock;
use crate::engine::{ConnHandle, Engine, EngineEvent, ListenerHandle, io_error};
use crate::notify::Notifier;

/// A connection as the application sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// SYN sent, no answer yet.
    Connecting,
    /// Handshake done; data may flow (subject to the half-close flags).
    Open,
    /// Reset, refused or timed out: every call reports this error kind.
    Failed(io::ErrorKind),
    /// The connection finished normally.
    Closed,
}

/// Wakers waiting for one condition; each is woken once.
#[derive(Debug, Default)]
struct Wakers(Vec<Waker>);

impl Wakers {
    fn register(&mut self, waker: &Waker) {
        if !self.0.iter().any(|w| w.will_wake(waker)) {
            self.0.push(waker.clone());
        }
    }

    fn drain_into(&mut self, out: &mut Vec<Waker>) {
        out.append(&mut self.0);
    }
}

#[derive(Debug)]
struct ConnSlot {
    phase: Phase,
    /// The peer's FIN arrived: reads end once the buffer is empty.
    peer_closed: bool,
    /// `shutdown(Read)`: reads report end of stream at once.
    read_shut: bool,
    /// `shutdown(Write)` or drop: our FIN is queued.
    write_shut: bool,
    local: SocketAddr,
    remote: SocketAddr,
    readers: Wakers,
    /// Writers and `connect` waiters.
    writers: Wakers,
    /// Multipath events for the application: sent to the subscriber, or kept (up to
    /// [`EVENT_BACKLOG`]) until one subscribes.
    events: EventSink,
}

/// Events kept for a connection nobody subscribed to yet; older ones are dropped.
const EVENT_BACKLOG: usize = 256;

#[derive(Debug, Default)]
struct EventSink {
    subscriber: Option<mpsc::Sender<MptcpEvent>>,
    backlog: VecDeque<MptcpEvent>,
}

impl EventSink {
    fn push(&mut self, event: MptcpEvent) {
        if let Some(tx) = &self.subscriber {
            if tx.send(event).is_ok() {
                return;
            }
            // The receiver is gone: keep events for the next subscriber.
            self.subscriber = None;
        }
        if self.backlog.len() == EVENT_BACKLOG {
            self.backlog.pop_front();
        }
        self.backlog.push_back(event);
    }

    fn subscribe(&mut self) -> mpsc::Receiver<MptcpEvent> {
        let (tx, rx) = mpsc::channel();
        for event in self.backlog.drain(..) {
            // The receiver is in hand: cannot fail.
            let _ = tx.send(event);
        }
        self.subscriber = Some(tx);
        rx
    }
}

#[derive(Debug, Default)]
struct ListenerSlot {
    local: Option<SocketAddr>,
    acceptors: Wakers,
}

/// What the loop and the handles share, behind [`Shared::lock`].
#[derive(Debug)]
pub(crate) struct Core {
    pub(crate) engine: Engine,
    conns: HashMap<ConnHandle, ConnSlot>,
    listeners: HashMap<ListenerHandle, ListenerSlot>,
    /// Released by the application, possibly still sending its last data and FIN.
    lingering: HashSet<ConnHandle>,
    /// Set when the loop stopped for good: the reason, reported by every later call.
    stopped: Option<String>,
    /// The last `Stack` handle is gone: finish lingering connections and stop.
    pub(crate) shutting_down: bool,
    /// Addresses announced on every accepted MPTCP connection.
    announce: Vec<IpAddr>,
}

/// The shared part of a running stack.
#[derive(Debug)]
pub(crate) struct Shared {
    core: Mutex<Core>,
    pub(crate) notifier: Notifier,
    pub(crate) clock: Clock,
    /// Packets this worker read from its TUN queue for another worker's connection.
    pub(crate) forwarded: AtomicU64,
}

fn stopped_error(reason: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        format!("the stack's event loop has stopped: {reason}"),
    )
}

impl Shared {
    pub(crate) fn new(
        engine: Engine,
        notifier: Notifier,
        clock: Clock,
        announce: Vec<IpAddr>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            core: Mutex::new(Core {
                engine,
                conns: HashMap::new(),
                listeners: HashMap::new(),
                lingering: HashSet::new(),
                stopped: None,
                shutting_down: false,
                announce,
            }),
            notifier,
            clock,
            forwarded: AtomicU64::new(0),
        })
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Core> {
        // A panic while holding the lock leaves the endpoint in an unknown state, but
        // every other thread still deserves a clean error path rather than a cascade of
        // panics: keep going with the inner value.
        self.core
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    // ---- connections ----

    /// Starts an active open: MPTCP when the stack has it on (the first subflow from
    /// `local`, joins from each of `extra_locals` once established), else plain TCP.
    pub(crate) fn connect(
        &self,
        local: SocketAddr,
        remote: SocketAddr,
        extra_locals: &[IpAddr],
    ) -> io::Result<ConnHandle> {
        let mut core = self.lock();
        if let Some(reason) = &core.stopped {
            return Err(stopped_error(reason));
        }
        core.check_local(local)?;
        for &extra in extra_locals {
            core.check_local(SocketAddr::new(extra, 0))?;
        }
        let now = self.clock.now();
        let h = if core.engine.config().mptcp.is_some() {
            core.engine
                .connect_mptcp(now, local, remote, extra_locals)
                .map_err(io_error)?
        } else if extra_locals.is_empty() {
            core.engine.connect(now, local, remote).map_err(io_error)?
        } else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "several local addresses need MPTCP, which is off on this stack",
            ));
        };
        let (local, remote) = core
            .engine
            .addresses(h)
            .map_or((local, remote), |t| (t.local, t.remote));
        core.conns
            .insert(h, ConnSlot::new(Phase::Connecting, local, remote));
        drop(core);
        self.notifier.notify();
        Ok(h)
    }

    /// Ready once the handshake completed or failed.
    pub(crate) fn poll_connected(&self, h: ConnHandle, waker: &Waker) -> Poll<io::Result<()>> {
        let mut core = self.lock();
        let stopped = core.stopped.clone();
        let Some(slot) = core.conns.get_mut(&h) else {
            return Poll::Ready(Err(gone()));
        };
        match slot.phase {
            Phase::Open | Phase::Closed => Poll::Ready(Ok(())),
            Phase::Failed(kind) => Poll::Ready(Err(slot.error(kind))),
            Phase::Connecting => {
                if let Some(reason) = stopped {
                    return Poll::Ready(Err(stopped_error(&reason)));
                }
                slot.writers.register(waker);
                Poll::Pending
            }
        }
    }

    pub(crate) fn poll_read(
        &self,
        h: ConnHandle,
        buf: &mut [u8],
        waker: &Waker,
    ) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let mut core = self.lock();
        let core = &mut *core;
        let Some(slot) = core.conns.get_mut(&h) else {
            return Poll::Ready(Err(gone()));
        };
        if slot.read_shut {
            return Poll::Ready(Ok(0));
        }
        // A connection that is closed and read dry is gone from the endpoint: nothing
        // more to read.
        let n = core.engine.read(h, buf).unwrap_or(0);
        if n > 0 {
            // Reading opened the receive window: the loop may owe the peer an update.
            self.notifier.notify();
            return Poll::Ready(Ok(n));
        }
        match slot.phase {
            Phase::Failed(kind) => Poll::Ready(Err(slot.error(kind))),
            Phase::Closed => Poll::Ready(Ok(0)),
            Phase::Open if slot.peer_closed => Poll::Ready(Ok(0)),
            Phase::Open | Phase::Connecting => match &core.stopped {
                Some(reason) => Poll::Ready(Err(stopped_error(reason))),
                None => {
                    slot.readers.register(waker);
                    Poll::Pending
                }
            },
        }
    }

    pub(crate) fn poll_write(
        &self,
        h: ConnHandle,
        data: &[u8],
        waker: &Waker,
    ) -> Poll<io::Result<usize>> {
        let mut core = self.lock();
        let core = &mut *core;
        let Some(slot) = core.conns.get_mut(&h) else {
            return Poll::Ready(Err(gone()));
        };
        if let Some(reason) = &core.stopped {
            return Poll::Ready(Err(stopped_error(reason)));
        }
        match slot.phase {
            Phase::Failed(kind) => return Poll::Ready(Err(slot.error(kind))),
            Phase::Closed => {
                return Poll::Ready(Err(broken_pipe(slot, "the connection is closed")));
            }
            Phase::Open | Phase::Connecting => {}
        }
        if slot.write_shut {
            return Poll::Ready(Err(broken_pipe(slot, "the write side was shut down")));
        }
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        let Ok(n) = core.engine.write(h, data) else {
            return Poll::Ready(Err(broken_pipe(slot, "the connection is gone")));
        };
        if n > 0 {
            self.notifier.notify();
            return Poll::Ready(Ok(n));
        }
        if core.engine.state(h).is_err() {
            return Poll::Ready(Err(broken_pipe(slot, "the connection is gone")));
        }
        // Send buffer full (or still handshaking): wait for Writable/Connected.
        slot.writers.register(waker);
        Poll::Pending
    }

    /// Queues our FIN after the data written so far (TCP half-close).
    pub(crate) fn shutdown_write(&self, h: ConnHandle) -> io::Result<()> {
        let mut core = self.lock();
        let core = &mut *core;
        let Some(slot) = core.conns.get_mut(&h) else {
            return Err(gone());
        };
        if let Phase::Failed(kind) = slot.phase {
            return Err(slot.error(kind));
        }
        if !slot.write_shut {
            slot.write_shut = true;
            // Already gone (closed and read dry): nothing left to shut.
            let _ = core.engine.close(h);
            self.notifier.notify();
        }
        Ok(())
    }

    pub(crate) fn shutdown_read(&self, h: ConnHandle) -> io::Result<()> {
        let mut core = self.lock();
        let Some(slot) = core.conns.get_mut(&h) else {
            return Err(gone());
        };
        slot.read_shut = true;
        let mut wake = Vec::new();
        slot.readers.drain_into(&mut wake);
        drop(core);
        wake.into_iter().for_each(Waker::wake);
        Ok(())
    }

    /// The application dropped its handle: close gracefully. The endpoint frees a
    /// connection once it is closed and read dry, so from now on whatever arrives is
    /// read and discarded on the application's behalf (see [`Core::dispatch_events`]).
    pub(crate) fn release(&self, h: ConnHandle) {
        let mut core = self.lock();
        let core = &mut *core;
        if let Some(slot) = core.conns.remove(&h)
            && !slot.write_shut
        {
            let _ = core.engine.close(h);
        }
        core.lingering.insert(h);
        core.discard_input(h);
        self.notifier.notify();
    }

    /// Sends a RST and forgets the connection.
    pub(crate) fn abort(&self, h: ConnHandle) {
        let mut core = self.lock();
        let core = &mut *core;
        if let Some(slot) = core.conns.get_mut(&h) {
            slot.phase = Phase::Failed(io::ErrorKind::ConnectionAborted);
        }
        let _ = core.engine.abort(h);
        self.notifier.notify();
    }

    pub(crate) fn addrs(&self, h: ConnHandle) -> io::Result<(SocketAddr, SocketAddr)> {
        let core = self.lock();
        core.conns
            .get(&h)
            .map(|s| (s.local, s.remote))
            .ok_or_else(gone)
    }

    pub(crate) fn stats(&self, h: ConnHandle) -> Option<TcpStats> {
        self.lock().engine.conn_stats(h).ok()
    }

    pub(crate) fn state(&self, h: ConnHandle) -> Option<TcpState> {
        self.lock().engine.state(h).ok()
    }

    /// Connection-level and per-subflow figures of an MPTCP connection.
    pub(crate) fn mptcp_stats(&self, h: ConnHandle) -> Option<ConnStats> {
        self.lock().engine.mptcp_stats(h).ok()
    }

    pub(crate) fn subscribe(&self, h: ConnHandle) -> io::Result<mpsc::Receiver<MptcpEvent>> {
        let mut core = self.lock();
        let slot = core.conns.get_mut(&h).ok_or_else(gone)?;
        Ok(slot.events.subscribe())
    }

    /// A local address came back (`up`) or went away, for every MPTCP connection.
    pub(crate) fn address_event(&self, addr: IpAddr, up: bool) {
        let mut core = self.lock();
        let now = self.clock.now();
        if up {
            core.engine.add_local_address(now, addr);
        } else {
            core.engine.remove_local_address(now, addr);
        }
        drop(core);
        self.notifier.notify();
    }

    // ---- listeners ----

    pub(crate) fn listen(&self, local: SocketAddr) -> io::Result<ListenerHandle> {
        let mut core = self.lock();
        if let Some(reason) = &core.stopped {
            return Err(stopped_error(reason));
        }
        if !local.ip().is_unspecified() {
            core.check_local(local)?;
        }
        let l = core.engine.listen(local).map_err(io_error)?;
        core.listeners.insert(
            l,
            ListenerSlot {
                local: Some(local),
                acceptors: Wakers::default(),
            },
        );
        Ok(l)
    }

    pub(crate) fn listener_addr(&self, l: ListenerHandle) -> io::Result<SocketAddr> {
        self.lock()
            .listeners
            .get(&l)
            .and_then(|s| s.local)
            .ok_or_else(gone)
    }

    pub(crate) fn poll_accept(
        &self,
        l: ListenerHandle,
        waker: &Waker,
    ) -> Poll<io::Result<ConnHandle>> {
        let mut core = self.lock();
        let core = &mut *core;
        if let Some(h) = core.engine.accept(l) {
            let t = core.engine.addresses(h).map_err(io_error)?;
            core.conns
                .insert(h, ConnSlot::new(Phase::Open, t.local, t.remote));
            if core.engine.is_mptcp(h).unwrap_or(false) {
                let now = self.clock.now();
                for &addr in &core.announce {
                    if addr != t.local.ip() && addr.is_ipv4() == t.local.is_ipv4() {
                        // Only fails for a stale handle, which this one is not.
                        let _ = core.engine.add_connection_address(h, now, addr);
                    }
                }
                self.notifier.notify();
            }
            return Poll::Ready(Ok(h));
        }
        if let Some(reason) = &core.stopped {
            return Poll::Ready(Err(stopped_error(reason)));
        }
        let Some(slot) = core.listeners.get_mut(&l) else {
            return Poll::Ready(Err(gone()));
        };
        slot.acceptors.register(waker);
        Poll::Pending
    }

    pub(crate) fn unlisten(&self, l: ListenerHandle) {
        let mut core = self.lock();
        core.listeners.remove(&l);
        // Not-yet-accepted connections are reset by the endpoint.
        let _ = core.engine.close_listener(l);
        drop(core);
        self.notifier.notify();
    }
}

impl Core {
    /// Turns endpoint events into phase changes and wakers to wake (after unlocking).
    pub(crate) fn dispatch_events(&mut self, wake: &mut Vec<Waker>) {
        while let Some((h, event)) = self.engine.poll_mptcp_event() {
            tracing::debug!(?h, ?event, "MPTCP event");
            if let Some(slot) = self.conns.get_mut(&h) {
                slot.events.push(event);
            }
        }
        while let Some(event) = self.engine.poll_event() {
            match event {
                EngineEvent::Incoming(l) => {
                    if let Some(slot) = self.listeners.get_mut(&l) {
                        slot.acceptors.drain_into(wake);
                    }
                }
                EngineEvent::Connection(h, ev) => {
                    if let Some(slot) = self.conns.get_mut(&h) {
                        slot.on_event(h, ev, wake);
                    } else if self.lingering.contains(&h) {
                        match ev {
                            TcpEvent::Readable | TcpEvent::PeerClosed => self.discard_input(h),
                            TcpEvent::Reset | TcpEvent::TimedOut | TcpEvent::Closed => {
                                self.discard_input(h);
                                self.lingering.remove(&h);
                            }
                            TcpEvent::Connected | TcpEvent::Writable => {}
                        }
                    }
                }
            }
        }
    }

    /// Released connections that still have work to do (data or FIN to deliver).
    pub(crate) fn lingering_busy(&mut self) -> usize {
        let engine = &self.engine;
        self.lingering.retain(|&h| match engine.state(h) {
            Err(_) => false,
            Ok(state) => match state {
                TcpState::Closed | TcpState::TimeWait | TcpState::FinWait2 => false,
                TcpState::SynSent
                | TcpState::SynReceived
                | TcpState::Established
                | TcpState::FinWait1
                | TcpState::CloseWait
                | TcpState::Closing
                | TcpState::LastAck => true,
            },
        });
        self.lingering.len()
    }

    /// Reads and drops what arrived on a connection the application released, so the
    /// endpoint can free it once closed (it keeps closed connections until read dry).
    fn discard_input(&mut self, h: ConnHandle) {
        let mut scratch = [0u8; 4096];
        while let Ok(n) = self.engine.read(h, &mut scratch) {
            if n == 0 {
                break;
            }
        }
    }

    /// `local` must be one of the stack's addresses (the endpoint has no routing
    /// table and would send from anything).
    fn check_local(&self, local: SocketAddr) -> io::Result<()> {
        let ours = &self.engine.config().local_addrs;
        if ours.contains(&local.ip()) {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::AddrNotAvailable,
                format!(
                    "{} is not one of the stack's addresses {ours:?}",
                    local.ip()
                ),
            ))
        }
    }

    /// The loop is gone: fail every waiter from now on.
    pub(crate) fn stop(&mut self, reason: String, wake: &mut Vec<Waker>) {
        self.stopped = Some(reason);
        for slot in self.conns.values_mut() {
            slot.readers.drain_into(wake);
            slot.writers.drain_into(wake);
        }
        for slot in self.listeners.values_mut() {
            slot.acceptors.drain_into(wake);
        }
    }
}

impl ConnSlot {
    fn new(phase: Phase, local: SocketAddr, remote: SocketAddr) -> ConnSlot {
        ConnSlot {
            phase,
            peer_closed: false,
            read_shut: false,
            write_shut: false,
            local,
            remote,
            readers: Wakers::default(),
            writers: Wakers::default(),
            events: EventSink::default(),
        }
    }

    fn on_event(&mut self, h: ConnHandle, ev: TcpEvent, wake: &mut Vec<Waker>) {
        tracing::trace!(?h, ?ev, "connection event");
        match ev {
            TcpEvent::Connected => {
                if self.phase == Phase::Connecting {
                    self.phase = Phase::Open;
                }
                self.writers.drain_into(wake);
            }
            TcpEvent::Readable => self.readers.drain_into(wake),
            TcpEvent::Writable => self.writers.drain_into(wake),
            TcpEvent::PeerClosed => {
                self.peer_closed = true;
                self.readers.drain_into(wake);
            }
            TcpEvent::Reset => {
                self.phase = match self.phase {
                    // RST in reply to our SYN (RFC 9293 §3.10.7.3).
                    Phase::Connecting => Phase::Failed(io::ErrorKind::ConnectionRefused),
                    Phase::Open => Phase::Failed(io::ErrorKind::ConnectionReset),
                    done @ (Phase::Failed(_) | Phase::Closed) => done,
                };
                self.wake_all(wake);
            }
            TcpEvent::TimedOut => {
                if let Phase::Connecting | Phase::Open = self.phase {
                    self.phase = Phase::Failed(io::ErrorKind::TimedOut);
                }
                self.wake_all(wake);
            }
            TcpEvent::Closed => {
                self.phase = match self.phase {
                    // Closed without ever connecting and without a RST or timeout: the
                    // attempt was given up (e.g. aborted).
                    Phase::Connecting => Phase::Failed(io::ErrorKind::ConnectionAborted),
                    Phase::Open => Phase::Closed,
                    done @ (Phase::Failed(_) | Phase::Closed) => done,
                };
                self.wake_all(wake);
            }
        }
    }

    fn wake_all(&mut self, wake: &mut Vec<Waker>) {
        self.readers.drain_into(wake);
        self.writers.drain_into(wake);
    }

    fn error(&self, kind: io::ErrorKind) -> io::Error {
        let (local, remote) = (self.local, self.remote);
        let what = match kind {
            io::ErrorKind::ConnectionRefused => "refused (RST in reply to SYN)",
            io::ErrorKind::ConnectionReset => "reset by the peer",
            io::ErrorKind::TimedOut => "timed out (retransmissions unanswered)",
            io::ErrorKind::ConnectionAborted => "aborted",
            _ => "failed",
        };
        io::Error::new(kind, format!("connection {local} -> {remote} {what}"))
    }
}

fn broken_pipe(slot: &ConnSlot, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        format!("cannot write on {} -> {}: {why}", slot.local, slot.remote),
    )
}

fn gone() -> io::Error {
    io::Error::new(
        io::ErrorKind::NotConnected,
        "the connection is no longer known to the stack",
    )
}
