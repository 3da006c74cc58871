//! `mptcp listen` and `mptcp connect`: our stack on a TUN device, netcat-style.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::thread;

use anyhow::{Context as _, bail};
use mptcp_tun::{MptcpStream, Stack};
use serde::Serialize;
use sha2::{Digest, Sha256};

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
    },
    Closed {
        local: SocketAddr,
        remote: SocketAddr,
        bytes_in: u64,
        bytes_out: u64,
        #[serde(skip_serializing_if = "Option::is_none")]
        sha256: Option<&'a str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
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
        .addresses(addresses.iter().copied());
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
        || format!("listening on {local} (TUN {})", stack.device_name()),
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
    if locals.len() > 1 {
        bail!(
            "more than one --local needs the MPTCP connection layer, which this build's \
             runtime does not drive yet; give one --local"
        );
    }
    let stack = build_stack(options, locals)?;
    let stream = MptcpStream::connect_from(&stack, SocketAddr::new(first, 0), remote)
        .with_context(|| format!("connecting from {first} to {remote}"))?;
    serve(stream, options.mode, &Reporter::new(options.json))
}

/// Runs one connection in `mode` and reports it; `Ok(false)` if it ended in an error.
fn serve(stream: MptcpStream, mode: Mode, reporter: &Reporter) -> anyhow::Result<bool> {
    let local = stream.local_addr()?;
    let remote = stream.peer_addr()?;
    reporter.emit(&JsonEvent::Connected { local, remote }, || {
        format!("connected {local} <-> {remote}")
    });
    let outcome = match mode {
        Mode::Netcat => netcat(stream),
        Mode::Echo => echo(stream),
        Mode::Sink => sink(stream),
    };
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

struct Transfer {
    bytes_in: u64,
    bytes_out: u64,
    sha256: Option<String>,
}

fn netcat(stream: MptcpStream) -> io::Result<Transfer> {
    let stream = Arc::new(stream);
    let upstream = Arc::clone(&stream);
    let sender = thread::spawn(move || -> io::Result<u64> {
        let copied = io::copy(&mut io::stdin().lock(), &mut &*upstream)?;
        upstream.shutdown(Shutdown::Write)?;
        Ok(copied)
    });
    let received = io::copy(&mut &*stream, &mut io::stdout().lock())?;
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

fn echo(mut stream: MptcpStream) -> io::Result<Transfer> {
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

fn sink(mut stream: MptcpStream) -> io::Result<Transfer> {
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
