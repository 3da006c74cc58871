//! `mptcp listen` and `mptcp connect`: our stack on a TUN device, netcat-style.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use mptcp_tun::{
    CloseReason, FallbackReason, MptcpEvent, MptcpStream, Stack, SubflowDownReason, SubflowId,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::mptcp_args::NetMptcpArgs;

/// What to do with each connection's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// stdin to the connection, the connection to stdout.
    Netcat,
    /// Send every byte back; close after the peer's FIN.
    Echo,
    /// Read and discard; report the byte count and SHA-256.
    Sink,
}

/// Settings shared by `listen` and `connect`.
#[derive(Clone, Debug)]
pub struct NetOptions {
    pub tun: String,
    pub mode: Mode,
    pub json: bool,
    pub pcap: Option<PathBuf>,
    /// Require DSS checksums (MP_CAPABLE flag A).
    pub checksum: bool,
    /// `listen`: addresses announced with ADD_ADDR on every connection.
    pub announce: Vec<IpAddr>,
    /// Scheduler, congestion control, path manager and backup addresses.
    pub mptcp: NetMptcpArgs,
}

/// One line of `--json` output: a stable, documented schema.
#[derive(Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
enum JsonEvent<'a> {
    Listening {
        address: IpAddr,
        port: u16,
    },
    Connected {
        local: SocketAddr,
        remote: SocketAddr,
        /// MPTCP (false: plain TCP, the peer did not ask for MPTCP).
        mptcp: bool,
    },
    SubflowUp {
        connection: SocketAddr,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    },
    SubflowDown {
        connection: SocketAddr,
        local: SocketAddr,
        remote: SocketAddr,
        reason: &'static str,
        /// The MP_TCPRST reason code (RFC 8684 §3.6), when one was sent or received.
        #[serde(skip_serializing_if = "Option::is_none")]
        rst_reason: Option<u8>,
    },
    AddAddr {
        connection: SocketAddr,
        id: u8,
        address: IpAddr,
        port: u16,
    },
    RemoveAddr {
        connection: SocketAddr,
        id: u8,
    },
    Fallback {
        connection: SocketAddr,
        reason: &'static str,
    },
    Closed {
        local: SocketAddr,
        remote: SocketAddr,
        bytes_in: u64,
        bytes_out: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<&'a str>,
        /// How the MPTCP connection ended (normal, reset, timed_out, ...).
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

fn down_reason(reason: SubflowDownReason) -> (&'static str, Option<u8>) {
    match reason {
        SubflowDownReason::Closed => ("closed", None),
        SubflowDownReason::Reset { reason } => ("reset", reason.map(|r| r.0)),
        SubflowDownReason::TimedOut => ("timed_out", None),
        SubflowDownReason::LocalReset { reason } => ("local_reset", Some(reason.0)),
        SubflowDownReason::JoinFailed => ("join_failed", None),
        SubflowDownReason::AddressRemoved => ("address_removed", None),
    }
}

fn fallback_reason(reason: FallbackReason) -> &'static str {
    match reason {
        FallbackReason::NoMpCapableInSynAck => "no_mp_capable_in_syn_ack",
        FallbackReason::NoMpCapableInThirdAck => "no_mp_capable_in_third_ack",
        FallbackReason::NoDssOnFirstData => "no_dss_on_first_data",
        FallbackReason::NoDataAck => "no_data_ack",
        FallbackReason::ChecksumFailure => "checksum_failure",
    }
}

fn close_reason(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::Normal => "normal",
        CloseReason::PeerFastClose => "peer_fastclose",
        CloseReason::Aborted => "aborted",
        CloseReason::Reset { .. } => "reset",
        CloseReason::TimedOut => "timed_out",
        CloseReason::NoSubflows => "no_subflows",
    }
}

/// Prints events: JSON lines on stdout with `--json`, human lines on stderr otherwise.
#[derive(Clone)]
struct Reporter {
    json: bool,
    stdout: Arc<Mutex<io::Stdout>>,
}

impl Reporter {
    fn new(json: bool) -> Self {
        Reporter {
            json,
            stdout: Arc::new(Mutex::new(io::stdout())),
        }
    }

    fn emit(&self, event: &JsonEvent<'_>, human: impl FnOnce() -> String) {
        if self.json {
            let line = serde_json::to_string(event).expect("events serialize");
            let mut out = self.stdout.lock().unwrap_or_else(|p| p.into_inner());
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        } else {
            eprintln!("mptcp: {}", human());
        }
    }
}

fn build_stack(options: &NetOptions, addresses: &[IpAddr]) -> anyhow::Result<Stack> {
    let mut builder = Stack::builder()
        .tun_name(options.tun.clone())
        .addresses(addresses.iter().copied())
        .checksum(options.checksum);
    for &addr in &options.announce {
        builder = builder.announce(addr);
    }
    builder = options.mptcp.apply(builder);
    if let Some(pcap) = &options.pcap {
        builder = builder.pcap_path(pcap.clone());
    }
    builder
        .build()
        .with_context(|| format!("starting the stack on TUN device '{}'", options.tun))
}

/// `mptcp listen ADDR:PORT`.
pub fn listen(local: SocketAddr, options: &NetOptions) -> anyhow::Result<bool> {
    if local.ip().is_unspecified() {
        bail!(
            "listen address {local} is unspecified: give the address the stack owns \
             (it is routed into the TUN device), e.g. 10.77.1.2:{}",
            local.port()
        );
    }
    if options.mode == Mode::Netcat && options.json {
        bail!("--json needs --echo or --sink: in netcat mode stdout carries the data");
    }
    if let Some(a) = options
        .announce
        .iter()
        .find(|a| a.is_ipv4() != local.is_ipv4() || **a == local.ip())
    {
        bail!("--announce {a}: give another address of {local}'s family");
    }
    if let Some(a) = options
        .mptcp
        .backup
        .iter()
        .find(|a| a.is_ipv4() != local.is_ipv4())
    {
        bail!("--backup {a} is not of {local}'s address family");
    }
    // The peer can only join a backup address it has heard of.
    let mut options = options.clone();
    for &addr in &options.mptcp.backup {
        if addr != local.ip() && !options.announce.contains(&addr) {
            options.announce.push(addr);
        }
    }
    let options = &options;
    let stack = build_stack(options, &[local.ip()])?;
    let listener = stack
        .bind(local)
        .with_context(|| format!("listening on {local}"))?;
    let reporter = Reporter::new(options.json);
    reporter.emit(
        &JsonEvent::Listening {
            address: local.ip(),
            port: local.port(),
        },
        || {
            let announce: Vec<String> = options.announce.iter().map(|a| a.to_string()).collect();
            if announce.is_empty() {
                format!("listening on {local} (TUN {})", stack.device_name())
            } else {
                format!(
                    "listening on {local} (TUN {}), announcing {}",
                    stack.device_name(),
                    announce.join(", ")
                )
            }
        },
    );
    if options.mode == Mode::Netcat {
        let (stream, _) = listener.accept().context("accepting a connection")?;
        return serve(stream, Mode::Netcat, &reporter);
    }
    loop {
        let (stream, _) = listener.accept().context("accepting a connection")?;
        let reporter = reporter.clone();
        let mode = options.mode;
        // Connections are independent: one thread each keeps a slow peer from
        // holding up the others.
        thread::spawn(move || {
            if let Err(e) = serve(stream, mode, &reporter) {
                eprintln!("mptcp: {e:#}");
            }
        });
    }
}

/// `mptcp connect PEER:PORT --local ADDR`.
pub fn connect(
    remote: SocketAddr,
    locals: &[IpAddr],
    options: &NetOptions,
) -> anyhow::Result<bool> {
    let Some(&first) = locals.first() else {
        bail!("connect needs --local ADDR: the address our stack uses on the TUN device");
    };
    if options.mode == Mode::Netcat && options.json {
        bail!("--json needs --echo or --sink: in netcat mode stdout carries the data");
    }
    if let Some(a) = locals.iter().find(|a| a.is_ipv4() != remote.is_ipv4()) {
        bail!("--local {a} is not of {remote}'s address family");
    }
    if let Some(a) = options
        .mptcp
        .backup
        .iter()
        .find(|a| a.is_ipv4() != remote.is_ipv4())
    {
        bail!("--backup {a} is not of {remote}'s address family");
    }
    // A backup address is a local address too: its subflows join as backups.
    let mut locals = locals.to_vec();
    for &addr in &options.mptcp.backup {
        if !locals.contains(&addr) {
            locals.push(addr);
        }
    }
    let locals = &locals;
    let stack = build_stack(options, locals)?;
    // The first subflow from the first --local; the others join once established.
    let stream = MptcpStream::connect_multipath(&stack, locals, remote)
        .with_context(|| format!("connecting from {first} to {remote}"))?;
    serve(stream, options.mode, &Reporter::new(options.json))
}

/// Runs one connection in `mode` and reports it; `Ok(false)` if it ended in an error.
fn serve(stream: MptcpStream, mode: Mode, reporter: &Reporter) -> anyhow::Result<bool> {
    let local = stream.local_addr()?;
    let remote = stream.peer_addr()?;
    let mptcp = stream.mptcp_stats().is_some();
    reporter.emit(
        &JsonEvent::Connected {
            local,
            remote,
            mptcp,
        },
        || {
            let kind = if mptcp { "MPTCP" } else { "TCP" };
            format!("connected {local} <-> {remote} ({kind})")
        },
    );
    let events = stream.events()?;
    let stream = Arc::new(stream);
    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let reporter = reporter.clone();
        let done = Arc::clone(&done);
        thread::spawn(move || watch_events(&events, remote, &reporter, &done))
    };
    let progress = io::stderr().is_terminal().then(|| {
        let (stream, done) = (Arc::clone(&stream), Arc::clone(&done));
        thread::spawn(move || show_progress(&stream, &done))
    });
    let outcome = match mode {
        Mode::Netcat => netcat(&stream),
        Mode::Echo => echo(&stream),
        Mode::Sink => sink(&stream),
    };
    done.store(true, Ordering::Relaxed);
    if let Some(p) = progress {
        let _ = p.join();
    }
    // The event channel ends when the stream is released: wait for the close first.
    let reason = watcher.join().unwrap_or(None);
    drop(stream);
    let (bytes_in, bytes_out, sha, error) = match outcome {
        Ok(t) => (t.bytes_in, t.bytes_out, t.sha256, None),
        Err(e) => (0, 0, None, Some(e.to_string())),
    };
    reporter.emit(
        &JsonEvent::Closed {
            local,
            remote,
            bytes_in,
            bytes_out,
            sha256: sha.as_deref(),
            reason,
            error: error.clone(),
        },
        || match (&sha, &error) {
            (_, Some(e)) => format!("{remote}: {e}"),
            (Some(sha), None) => format!("{remote}: closed, {bytes_in} bytes in, sha256 {sha}"),
            (None, None) => format!("{remote}: closed, {bytes_in} bytes in, {bytes_out} out"),
        },
    );
    Ok(error.is_none())
}

/// Reports the connection's multipath events; once the transfer is `done`, waits a
/// moment for the connection's close and returns its reason if it came.
fn watch_events(
    events: &mpsc::Receiver<MptcpEvent>,
    connection: SocketAddr,
    reporter: &Reporter,
    done: &AtomicBool,
) -> Option<&'static str> {
    let mut closed = None;
    let mut quiet_since: Option<Instant> = None;
    loop {
        let event = match events.recv_timeout(Duration::from_millis(50)) {
            Ok(event) => event,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if !done.load(Ordering::Relaxed) {
                    continue;
                }
                if closed.is_some() {
                    break;
                }
                // Both sides closed: the DATA_FINs' acknowledgments take a round
                // trip or so; don't hold the report up for longer.
                let since = *quiet_since.get_or_insert_with(Instant::now);
                if since.elapsed() > Duration::from_millis(500) {
                    break;
                }
                continue;
            }
        };
        match event {
            MptcpEvent::SubflowUp {
                local,
                remote,
                backup,
                ..
            } => reporter.emit(
                &JsonEvent::SubflowUp {
                    connection,
                    local,
                    remote,
                    backup,
                },
                || {
                    let b = if backup { " (backup)" } else { "" };
                    format!("subflow up {local} -> {remote}{b}")
                },
            ),
            MptcpEvent::SubflowDown {
                local,
                remote,
                reason,
                ..
            } => {
                let (reason, rst_reason) = down_reason(reason);
                reporter.emit(
                    &JsonEvent::SubflowDown {
                        connection,
                        local,
                        remote,
                        reason,
                        rst_reason,
                    },
                    || format!("subflow down {local} -> {remote}: {reason}"),
                );
            }
            MptcpEvent::AddressAnnounced { id, addr } => reporter.emit(
                &JsonEvent::AddAddr {
                    connection,
                    id: id.0,
                    address: addr.ip(),
                    port: addr.port(),
                },
                || format!("{connection} announced {addr} (id {})", id.0),
            ),
            MptcpEvent::AddressRemoved { id } => reporter.emit(
                &JsonEvent::RemoveAddr {
                    connection,
                    id: id.0,
                },
                || format!("{connection} removed address id {}", id.0),
            ),
            MptcpEvent::Fallback { reason } => {
                let reason = fallback_reason(reason);
                reporter.emit(&JsonEvent::Fallback { connection, reason }, || {
                    format!("{connection}: fell back to TCP ({reason})")
                });
            }
            MptcpEvent::Closed { reason } => {
                closed = Some(close_reason(reason));
                if done.load(Ordering::Relaxed) {
                    break;
                }
            }
            MptcpEvent::Connected
            | MptcpEvent::Readable
            | MptcpEvent::Writable
            | MptcpEvent::PeerClosed => {}
        }
    }
    closed
}

/// Once a second on stderr (a terminal): each subflow's throughput both ways and RTT.
fn show_progress(stream: &MptcpStream, done: &AtomicBool) {
    let mut last: BTreeMap<SubflowId, (u64, u64)> = BTreeMap::new();
    let mut last_tcp = (0u64, 0u64);
    let mut at = Instant::now();
    while !done.load(Ordering::Relaxed) {
        // Sleep in small steps so the end of the transfer is not held up.
        for _ in 0..10 {
            if done.load(Ordering::Relaxed) {
                return;
            }
            thread::sleep(Duration::from_millis(100));
        }
        let secs = at.elapsed().as_secs_f64().max(1e-3);
        at = Instant::now();
        let rate = |now: u64, before: u64| now.saturating_sub(before) as f64 * 8.0 / secs / 1e6;
        let mut line = String::new();
        if let Some(stats) = stream.mptcp_stats() {
            for sf in &stats.subflows {
                let before = last.get(&sf.id).copied().unwrap_or((0, 0));
                let rtt = sf.srtt.map_or("-".to_owned(), |r| {
                    format!("{:.1} ms", r.total_micros() as f64 / 1e3)
                });
                line.push_str(&format!(
                    "  [{} -> {}: out {:.1} in {:.1} Mbit/s, rtt {rtt}]",
                    sf.local,
                    sf.remote,
                    rate(sf.bytes_sent, before.0),
                    rate(sf.bytes_received, before.1)
                ));
                last.insert(sf.id, (sf.bytes_sent, sf.bytes_received));
            }
        } else if let Some(st) = stream.stats() {
            let rtt = st.srtt.map_or("-".to_owned(), |r| {
                format!("{:.1} ms", r.total_micros() as f64 / 1e3)
            });
            line.push_str(&format!(
                "  [TCP: out {:.1} in {:.1} Mbit/s, rtt {rtt}]",
                rate(st.bytes_sent, last_tcp.0),
                rate(st.bytes_received, last_tcp.1)
            ));
            last_tcp = (st.bytes_sent, st.bytes_received);
        }
        if !line.is_empty() {
            eprintln!("mptcp: progress{line}");
        }
    }
}

struct Transfer {
    bytes_in: u64,
    bytes_out: u64,
    sha256: Option<String>,
}

fn netcat(stream: &Arc<MptcpStream>) -> io::Result<Transfer> {
    let upstream = Arc::clone(stream);
    let sender = thread::spawn(move || -> io::Result<u64> {
        let copied = io::copy(&mut io::stdin().lock(), &mut &*upstream)?;
        upstream.shutdown(Shutdown::Write)?;
        Ok(copied)
    });
    let received = io::copy(&mut &**stream, &mut io::stdout().lock())?;
    // stdin may never end (a terminal): once the peer has closed, don't wait for it.
    let sent = if sender.is_finished() {
        sender
            .join()
            .map_err(|_| io::Error::other("stdin thread panicked"))??
    } else {
        0
    };
    Ok(Transfer {
        bytes_in: received,
        bytes_out: sent,
        sha256: None,
    })
}

fn echo(stream: &MptcpStream) -> io::Result<Transfer> {
    let mut stream = stream;
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        stream.write_all(&buf[..n])?;
        total += n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(Transfer {
        bytes_in: total,
        bytes_out: total,
        sha256: None,
    })
}

fn sink(stream: &MptcpStream) -> io::Result<Transfer> {
    let mut stream = stream;
    let mut buf = vec![0u8; 64 * 1024];
    let mut hasher = Sha256::new();
    let mut total = 0u64;
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    let digest = hasher.finalize();
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Transfer {
        bytes_in: total,
        bytes_out: 0,
        sha256: Some(hex),
    })
}
