//! The proxy client: accepts applications' TCP connections on a kernel socket (SOCKS5
//! or a fixed forward), carries each over one multipath connection to the proxy
//! server behind the converter [`header`], and splices.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::timeout;

use crate::socks5::{self, Auth, Handshake, Progress, ReplyCode};
use crate::splice::{Meters, splice};
use crate::stats::{Event, Reporter};
use crate::target::TargetAddr;
use crate::transport::Dialer;
use crate::{Failure, ProxyConfig, header};

/// How applications tell the client where to go.
#[derive(Clone, Debug)]
pub enum Front {
    /// A SOCKS5 server (RFC 1928 CONNECT) with this authentication.
    Socks(Auth),
    /// Every connection goes to this target.
    Forward(TargetAddr),
}

/// Serves `listener` forever. Returns only if the listener fails for good.
pub async fn run_client<D: Dialer>(
    listener: TcpListener,
    front: Front,
    dialer: Arc<D>,
    config: ProxyConfig,
    reporter: Reporter,
) -> std::io::Result<()> {
    reporter.emit(Event::Listening {
        role: match front {
            Front::Socks(_) => "socks",
            Front::Forward(_) => "forward",
        },
        address: listener.local_addr()?,
        transport: dialer.name(),
    });
    let front = Arc::new(front);
    let config = Arc::new(config);
    let limit = Arc::new(Semaphore::new(config.max_connections));
    loop {
        let permit = Arc::clone(&limit)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                // EMFILE and friends: back off instead of spinning on the error.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let (front, dialer, config, reporter) = (
            Arc::clone(&front),
            Arc::clone(&dialer),
            Arc::clone(&config),
            reporter.clone(),
        );
        tokio::spawn(async move {
            serve(tcp, peer, &front, &*dialer, &config, &reporter).await;
            drop(permit);
        });
    }
}

async fn serve<D: Dialer>(
    mut tcp: TcpStream,
    peer: SocketAddr,
    front: &Front,
    dialer: &D,
    config: &ProxyConfig,
    reporter: &Reporter,
) {
    let guard = reporter.counters.open();
    let _ = tcp.set_nodelay(true);
    let socks = matches!(front, Front::Socks(_));
    let opened = match open(&mut tcp, front, dialer, config).await {
        Ok(o) => o,
        Err((failure, target)) => {
            guard.failed();
            reporter.emit(Event::Failed {
                id: guard.id,
                client: peer,
                target: target.map(|t| t.to_string()),
                stage: failure.stage,
                error: failure.error,
                reply: failure.reply.map(|c| c as u8),
            });
            return;
        }
    };
    let Opened {
        target,
        mut stream,
        early_down,
    } = opened;
    if socks {
        let bound = tcp.local_addr().ok();
        if let Err(e) = tcp
            .write_all(&socks5::reply(ReplyCode::Succeeded, bound))
            .await
        {
            guard.failed();
            reporter.emit(Event::Failed {
                id: guard.id,
                client: peer,
                target: Some(target.to_string()),
                stage: "socks",
                error: format!("sending the SOCKS reply: {e}"),
                reply: None,
            });
            return;
        }
    }
    let target = target.to_string();
    reporter.emit(Event::Open {
        id: guard.id,
        client: peer,
        target: target.clone(),
        via: dialer.describe(&stream),
    });
    let start = Instant::now();
    let counters = &reporter.counters;
    let result = splice(
        &mut tcp,
        &mut stream,
        b"",
        &early_down,
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
        paths: dialer.paths(&stream),
    });
}

struct Opened<S> {
    target: TargetAddr,
    stream: S,
    /// Target bytes that arrived with the server's reply.
    early_down: Vec<u8>,
}

/// SOCKS handshake (or the fixed target), multipath connection, header exchange. On
/// failure the SOCKS client has been told (reply code) where SOCKS allows it.
async fn open<D: Dialer>(
    tcp: &mut TcpStream,
    front: &Front,
    dialer: &D,
    config: &ProxyConfig,
) -> Result<Opened<D::Stream>, (Failure, Option<TargetAddr>)> {
    let (target, early_up) = match front {
        Front::Socks(auth) => {
            match timeout(config.handshake_timeout, socks_handshake(tcp, auth)).await {
                Ok(Ok(t)) => t,
                Ok(Err(f)) => return Err((f, None)),
                Err(_) => {
                    return Err((
                        Failure::new(
                            "socks",
                            format!(
                                "no complete SOCKS request within {:?}",
                                config.handshake_timeout
                            ),
                        ),
                        None,
                    ));
                }
            }
        }
        Front::Forward(t) => (t.clone(), Vec::new()),
    };
    let socks = matches!(front, Front::Socks(_));
    // Tell the SOCKS client why, then give up.
    async fn refuse(tcp: &mut TcpStream, socks: bool, code: ReplyCode, f: Failure) -> Failure {
        if socks {
            let _ = tcp.write_all(&socks5::reply(code, None)).await;
            f.with_reply(code)
        } else {
            f
        }
    }
    let mut stream = match timeout(config.connect_timeout, dialer.dial()).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            let f = Failure::new("dial", format!("connecting to the proxy server: {e}"));
            return Err((
                refuse(tcp, socks, ReplyCode::GeneralFailure, f).await,
                Some(target),
            ));
        }
        Err(_) => {
            let f = Failure::new(
                "dial",
                format!(
                    "connecting to the proxy server: no answer within {:?}",
                    config.connect_timeout
                ),
            );
            return Err((
                refuse(tcp, socks, ReplyCode::GeneralFailure, f).await,
                Some(target),
            ));
        }
    };
    let mut request = header::encode_request(&target);
    request.extend_from_slice(&early_up);
    // The server answers once it has tried the target: allow for its connect timeout.
    let exchange = async {
        stream.write_all(&request).await?;
        read_reply(&mut stream).await
    };
    let (code, early_down) =
        match timeout(config.handshake_timeout + config.connect_timeout, exchange).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                let f = Failure::new(
                    "header",
                    format!("exchanging the header with the server: {e}"),
                );
                return Err((
                    refuse(tcp, socks, ReplyCode::GeneralFailure, f).await,
                    Some(target),
                ));
            }
            Err(_) => {
                let f = Failure::new("header", "the proxy server did not answer the header");
                return Err((
                    refuse(tcp, socks, ReplyCode::GeneralFailure, f).await,
                    Some(target),
                ));
            }
        };
    if code != ReplyCode::Succeeded {
        let f = Failure::new(
            "connect",
            format!("the proxy server reports: {}", code.describe()),
        );
        // The server's code is passed on unchanged: it is already a SOCKS5 code.
        let f = refuse(tcp, socks, code, f).await;
        return Err((f.with_reply(code), Some(target)));
    }
    Ok(Opened {
        target,
        stream,
        early_down,
    })
}

/// Runs the SOCKS5 handshake; returns the target and any bytes the client sent after
/// its request.
async fn socks_handshake(
    tcp: &mut TcpStream,
    auth: &Auth,
) -> Result<(TargetAddr, Vec<u8>), Failure> {
    let mut hs = Handshake::new(auth.clone());
    // MAX_MESSAGE bytes always hold the rest of the message being waited for, plus room
    // for the next read.
    let mut buf = vec![0u8; 2 * socks5::MAX_MESSAGE];
    let mut len = 0;
    loop {
        let result = hs.receive(&buf[..len]);
        let out = hs.take_output();
        if !out.is_empty()
            && let Err(e) = tcp.write_all(&out).await
        {
            return Err(Failure::new("socks", format!("writing to the client: {e}")));
        }
        match result {
            Err(e) => {
                let code = e.reply_code();
                let f = Failure::new("socks", e);
                return Err(match code {
                    Some(c) => f.with_reply(c),
                    None => f,
                });
            }
            Ok((used, progress)) => {
                buf.copy_within(used..len, 0);
                len -= used;
                if let Progress::Request(req) = progress {
                    return Ok((req.target, buf[..len].to_vec()));
                }
            }
        }
        let n = tcp
            .read(&mut buf[len..])
            .await
            .map_err(|e| Failure::new("socks", format!("reading from the client: {e}")))?;
        if n == 0 {
            return Err(Failure::new(
                "socks",
                format!(
                    "the client closed mid-handshake ({} bytes of an unfinished message)",
                    len
                ),
            ));
        }
        len += n;
    }
}

/// Reads the server's reply; returns the code and any target bytes after it.
async fn read_reply<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut S,
) -> std::io::Result<(ReplyCode, Vec<u8>)> {
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        match header::decode_reply(&buf[..len]) {
            Ok(Some(code)) => return Ok((code, buf[header::REPLY_LEN..len].to_vec())),
            Ok(None) => {}
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        let n = stream.read(&mut buf[len..]).await?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed before replying",
            ));
        }
        len += n;
    }
}
