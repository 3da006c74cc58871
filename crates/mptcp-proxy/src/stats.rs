//! Counters shared by all of a proxy's connections, and the events each connection
//! reports. The library never prints: the caller gives a sink (the `mptcp` command
//! prints JSON lines on stdout with `--json`, human lines on stderr otherwise).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Live counters. Connection counts include the handshake phase, so a client that
/// disappears mid-request is counted, and `active` returns to zero once it is gone.
#[derive(Debug, Default)]
pub struct Counters {
    next_id: AtomicU64,
    total: AtomicU64,
    active: AtomicU64,
    peak_active: AtomicU64,
    failed: AtomicU64,
    /// Bytes from the application's side towards the target.
    pub(crate) bytes_up: AtomicU64,
    /// Bytes from the target back to the application.
    pub(crate) bytes_down: AtomicU64,
}

/// A point-in-time copy of [`Counters`] (the `stats` event).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Connections open now (handshaking or splicing).
    pub connections_active: u64,
    /// The most connections open at once.
    pub connections_peak: u64,
    /// Connections that ended before splicing (bad request, target unreachable, ...).
    pub connections_failed: u64,
    pub bytes_up: u64,
    pub bytes_down: u64,
}

impl Counters {
    /// Counts a new connection; dropping the guard counts it closed.
    pub fn open(self: &Arc<Self>) -> ConnGuard {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        self.total.fetch_add(1, Ordering::Relaxed);
        let now = self.active.fetch_add(1, Ordering::Relaxed) + 1;
        self.peak_active.fetch_max(now, Ordering::Relaxed);
        ConnGuard {
            id,
            counters: Arc::clone(self),
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            connections_total: self.total.load(Ordering::Relaxed),
            connections_active: self.active.load(Ordering::Relaxed),
            connections_peak: self.peak_active.load(Ordering::Relaxed),
            connections_failed: self.failed.load(Ordering::Relaxed),
            bytes_up: self.bytes_up.load(Ordering::Relaxed),
            bytes_down: self.bytes_down.load(Ordering::Relaxed),
        }
    }
}

/// One open connection in the counters.
#[derive(Debug)]
pub struct ConnGuard {
    pub id: u64,
    counters: Arc<Counters>,
}

impl ConnGuard {
    pub fn failed(&self) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ConnGuard {
    fn drop(&mut self) {
        self.counters.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Bytes one path (subflow) carried for a connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PathShare {
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub bytes_sent: u64,
    pub bytes_received: u64,
}

/// One line of `--json` output: a stable schema, tagged by `event`.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A front end or the server accepts connections.
    Listening {
        role: &'static str,
        address: SocketAddr,
        transport: String,
    },
    /// The target is connected; data flows.
    Open {
        id: u64,
        client: SocketAddr,
        target: String,
        /// The multipath connection carrying it (`local -> remote`).
        via: String,
    },
    /// The connection ended before data could flow.
    Failed {
        id: u64,
        client: SocketAddr,
        #[serde(skip_serializing_if = "Option::is_none")]
        target: Option<String>,
        /// `socks`, `header`, `dial` or `connect`.
        stage: &'static str,
        error: String,
        /// The SOCKS5 reply code sent (or passed on), if any.
        #[serde(skip_serializing_if = "Option::is_none")]
        reply: Option<u8>,
    },
    /// A spliced connection ended.
    Closed {
        id: u64,
        client: SocketAddr,
        target: String,
        bytes_up: u64,
        bytes_down: u64,
        duration_ms: u64,
        /// `eof` (both sides closed), `idle timeout`, or the error.
        end: String,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        paths: Vec<PathShare>,
    },
    /// Periodic counters.
    Stats(Snapshot),
}

impl Event {
    /// A one-line human description (for stderr).
    pub fn human(&self) -> String {
        match self {
            Event::Listening {
                role,
                address,
                transport,
            } => format!("{role} listening on {address} ({transport})"),
            Event::Open {
                id,
                client,
                target,
                via,
            } => format!("#{id} {client} -> {target}: open via {via}"),
            Event::Failed {
                id,
                client,
                target,
                stage,
                error,
                reply,
            } => format!(
                "#{id} {client} -> {}: failed at {stage}: {error}{}",
                target.as_deref().unwrap_or("?"),
                reply
                    .map(|r| format!(" (reply {r:#04x})"))
                    .unwrap_or_default()
            ),
            Event::Closed {
                id,
                client,
                target,
                bytes_up,
                bytes_down,
                duration_ms,
                end,
                paths,
            } => {
                let mut s = format!(
                    "#{id} {client} -> {target}: closed ({end}), {bytes_up} bytes up, {bytes_down} down, {duration_ms} ms"
                );
                for p in paths {
                    s.push_str(&format!(
                        "; path {} -> {}: {} sent, {} received",
                        p.local, p.remote, p.bytes_sent, p.bytes_received
                    ));
                }
                s
            }
            Event::Stats(s) => format!(
                "stats: {} connections ({} active, peak {}, {} failed), {} bytes up, {} down",
                s.connections_total,
                s.connections_active,
                s.connections_peak,
                s.connections_failed,
                s.bytes_up,
                s.bytes_down
            ),
        }
    }
}

/// Where events go, plus the counters: cheap to clone into every connection task.
#[derive(Clone)]
pub struct Reporter {
    pub counters: Arc<Counters>,
    sink: Arc<dyn Fn(&Event) + Send + Sync>,
}

impl std::fmt::Debug for Reporter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reporter")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Reporter {
    pub fn new(sink: impl Fn(&Event) + Send + Sync + 'static) -> Reporter {
        Reporter {
            counters: Arc::new(Counters::default()),
            sink: Arc::new(sink),
        }
    }

    pub fn emit(&self, event: Event) {
        tracing::debug!(event = %event.human(), "proxy");
        (self.sink)(&event);
    }

    pub fn emit_stats(&self) {
        self.emit(Event::Stats(self.counters.snapshot()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_count_open_and_close() {
        let c = Arc::new(Counters::default());
        let a = c.open();
        let b = c.open();
        assert_eq!((a.id, b.id), (1, 2));
        b.failed();
        drop(b);
        let s = c.snapshot();
        assert_eq!(
            s,
            Snapshot {
                connections_total: 2,
                connections_active: 1,
                connections_peak: 2,
                connections_failed: 1,
                bytes_up: 0,
                bytes_down: 0
            }
        );
        drop(a);
        assert_eq!(c.snapshot().connections_active, 0);
    }

    #[test]
    fn events_serialize_with_a_tag() {
        let e = Event::Failed {
            id: 3,
            client: "127.0.0.1:5000".parse().unwrap(),
            target: Some("example.com:80".into()),
            stage: "connect",
            error: "connection refused".into(),
            reply: Some(5),
        };
        assert_eq!(
            serde_json::to_string(&e).unwrap(),
            r#"{"event":"failed","id":3,"client":"127.0.0.1:5000","target":"example.com:80","stage":"connect","error":"connection refused","reply":5}"#
        );
        assert_eq!(
            serde_json::to_string(&Event::Stats(Snapshot::default())).unwrap(),
            r#"{"event":"stats","connections_total":0,"connections_active":0,"connections_peak":0,"connections_failed":0,"bytes_up":0,"bytes_down":0}"#
        );
    }
}
