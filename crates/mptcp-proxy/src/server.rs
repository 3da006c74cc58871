//! The proxy server: accepts multipath connections, reads the converter [`header`],
//! opens a kernel TCP connection to the target (resolving names here), answers with
//! the outcome as a SOCKS5 reply code, and splices.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::socks5::ReplyCode;
use crate::splice::{Meters, splice};
use crate::stats::{Event, Reporter};
use crate::target::TargetAddr;
use crate::transport::Acceptor;
use crate::{Failure, ProxyConfig, header};

/// Serves `acceptor` forever. Returns only if it fails for good.
pub async fn run_server<A: Acceptor>(
    acceptor: Arc<A>,
    config: ProxyConfig,
    reporter: Reporter,
) -> io::Result<()> {
    reporter.emit(Event::Listening {
        role: "server",
        address: acceptor.local_addr()?,
        transport: acceptor.name(),
    });
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = Arc::clone(&limit)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match acceptor.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (acceptor, config, reporter) =
            (Arc::clone(&acceptor), Arc::clone(&config), reporter.clone());
        tokio::spawn(async move {
            serve(stream, peer, &*acceptor, &config, &reporter).await;
            drop(permit);
        });
    }
}

async fn serve<A: Acceptor>(
    mut stream: A::Stream,
    peer: SocketAddr,
    acceptor: &A,
    config: &ProxyConfig,
    reporter: &Reporter,
) {
    let guard = reporter.counters.open();
    let fail = |f: Failure, target: Option<&TargetAddr>| {
        guard.failed();
        reporter.emit(Event::Failed {
            id: guard.id,
            client: peer,
            target: target.map(|t| t.to_string()),
            stage: f.stage,
            error: f.error,
            reply: f.reply.map(|c| c as u8),
        });
    };
    let (target, early_up) =
        match timeout(config.handshake_timeout, read_request(&mut stream)).await {
            Ok(Ok(t)) => t,
            Ok(Err(RequestError::Header(e))) => {
                let code = e.reply_code();
                let _ = stream.write_all(&header::encode_reply(code)).await;
                let _ = stream.shutdown().await;
                return fail(Failure::new("header", e).with_reply(code), None);
            }
            Ok(Err(RequestError::Io(e))) => {
                return fail(
                    Failure::new("header", format!("reading the header: {e}")),
                    None,
                );
            }
            Err(_) => {
                return fail(
                    Failure::new(
                        "header",
                        format!("no complete header within {:?}", config.handshake_timeout),
                    ),
                    None,
                );
            }
        };
    let connected = match timeout(config.connect_timeout, connect_target(&target)).await {
        Ok(r) => r,
        Err(_) => Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {:?}", config.connect_timeout),
        )),
    };
    let mut outbound = match connected {
        Ok(s) => s,
        Err(e) => {
            let code = ReplyCode::from_io_error(&e);
            let _ = stream.write_all(&header::encode_reply(code)).await;
            let _ = stream.shutdown().await;
            return fail(
                Failure::new("connect", format!("connecting to {target}: {e}")).with_reply(code),
                Some(&target),
            );
        }
    };
    if let Err(e) = stream
        .write_all(&header::encode_reply(ReplyCode::Succeeded))
        .await
    {
        return fail(
            Failure::new("header", format!("sending the reply: {e}")),
            Some(&target),
        );
    }
    let target = target.to_string();
    reporter.emit(Event::Open {
        id: guard.id,
        client: peer,
        target: target.clone(),
        via: acceptor.describe(&stream),
    });
    let start = Instant::now();
    let counters = &reporter.counters;
    let result = splice(
        &mut stream,
        &mut outbound,
        &early_up,
        b"",
        &config.splice,
        Meters {
            up: &counters.bytes_up,
            down: &counters.bytes_down,
        },
    )
    .await;
    reporter.emit(Event::Closed {
        id: guard.id,
        client: peer,
        target,
        bytes_up: result.up,
        bytes_down: result.down,
        duration_ms: start.elapsed().as_millis() as u64,
        end: result.end.to_string(),
        paths: acceptor.paths(&stream),
    });
}

#[derive(Debug)]
enum RequestError {
    Header(header::HeaderError),
    Io(io::Error),
}

/// Reads the header; returns the target and the client's bytes that followed it.
async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(TargetAddr, Vec<u8>), RequestError> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match header::decode_request(&buf[..len]) {
            Ok(Some((target, used))) => return Ok((target, buf[used..len].to_vec())),
            Ok(None) => {}
            Err(e) => return Err(RequestError::Header(e)),
        }
        // MAX_REQUEST_LEN < buffer: a complete request always fits.
        let n = stream
            .read(&mut buf[len..])
            .await
            .map_err(RequestError::Io)?;
        if n == 0 {
            return Err(RequestError::Io(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the client closed after {len} bytes of the header"),
            )));
        }
        len += n;
    }
}

/// Resolves (names here, on the server) and connects, trying each address in turn.
async fn connect_target(target: &TargetAddr) -> io::Result<TcpStream> {
    let addrs: Vec<SocketAddr> = match target {
        TargetAddr::Ip(a) => vec![*a],
        TargetAddr::Domain(host, port) => tokio::net::lookup_host((host.as_str(), *port))
            .await
            .map_err(|e| {
                io::Error::new(
                    io::ErrorKind::HostUnreachable,
                    format!("resolving {host}: {e}"),
                )
            })?
            .collect(),
    };
    let mut last = io::Error::new(
        io::ErrorKind::HostUnreachable,
        format!("{target} resolves to no address"),
    );
    for addr in addrs {
        match TcpStream::connect(addr).await {
            Ok(s) => {
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}
