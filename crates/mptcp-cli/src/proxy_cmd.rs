//! `mptcp proxy client|server`: unmodified TCP applications over multipath (the
//! `mptcp-proxy` crate), on our stack on a TUN device or on kernel MPTCP sockets.

use std::io::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use mptcp_proxy::socks5::Auth;
use mptcp_proxy::target::TargetAddr;
use mptcp_proxy::transport::{KernelAcceptor, KernelDialer, StackAcceptor, StackDialer};
use mptcp_proxy::{Front, ProxyConfig, Reporter, SpliceConfig, run_client, run_server};
use mptcp_tun::{MptcpConfig, Stack, TcpConfig};

use crate::mptcp_args::NetMptcpArgs;

#[derive(Subcommand)]
pub enum ProxyCommand {
    /// The application side: a SOCKS5 server (or a port forward) on a kernel TCP
    /// socket; each connection rides one multipath connection to the proxy server.
    ///
    /// Example: mptcp proxy client --socks 127.0.0.1:1080 --server 10.99.1.1:7000
    ///          --local 10.77.1.2 --local 10.77.2.2
    Client(ClientArgs),
    /// The far side: accepts multipath connections, connects to each one's target over
    /// kernel TCP (names resolved here) and splices.
    ///
    /// Example: mptcp proxy server 10.99.1.1:7000 --announce 10.99.2.1
    Server(ServerArgs),
}

#[derive(Args)]
pub struct ClientArgs {
    /// Serve SOCKS5 (RFC 1928 CONNECT) on this kernel TCP address.
    #[arg(long, value_name = "ADDR:PORT", required_unless_present = "forward")]
    socks: Option<SocketAddr>,
    /// Forward every connection accepted on this kernel TCP address to --to.
    #[arg(
        long,
        value_name = "LISTEN:PORT",
        conflicts_with = "socks",
        requires = "to"
    )]
    forward: Option<SocketAddr>,
    /// The target of --forward (an IP or a name the server resolves).
    #[arg(long, value_name = "TARGET:PORT")]
    to: Option<TargetAddr>,
    /// The proxy server.
    #[arg(long, value_name = "PEER:PORT")]
    server: SocketAddr,
    /// Our stack's addresses on the TUN device, one per path (repeat).
    #[arg(long, value_name = "ADDR", required_unless_present = "kernel_mptcp")]
    local: Vec<IpAddr>,
    /// Require RFC 1929 username/password from SOCKS clients.
    #[arg(long, value_name = "U", requires = "password")]
    user: Option<String>,
    /// The password that goes with --user.
    #[arg(long, value_name = "P", requires = "user")]
    password: Option<String>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
pub struct ServerArgs {
    /// Accept multipath connections here (an address our stack owns).
    #[arg(value_name = "ADDR:PORT")]
    listen: SocketAddr,
    /// More addresses of ours, announced to clients (ADD_ADDR) so they can add paths.
    #[arg(long, value_name = "ADDR")]
    announce: Vec<IpAddr>,
    #[command(flatten)]
    common: CommonArgs,
}

#[derive(Args)]
struct CommonArgs {
    /// The TUN device to create.
    #[arg(long, value_name = "NAME", default_value = "mptcp0")]
    tun: String,
    /// Use the kernel's MPTCP sockets (IPPROTO_MPTCP) instead of our stack; paths then
    /// come from `ip mptcp endpoint`.
    #[arg(long)]
    kernel_mptcp: bool,
    /// One JSON object per line on stdout for every event (else lines on stderr).
    #[arg(long)]
    json: bool,
    /// Print the counters every SECS seconds (0: only at exit).
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    stats_interval: f64,
    /// Close a connection after SECS seconds without a byte either way.
    #[arg(long, value_name = "SECS", default_value_t = 300)]
    idle_timeout: u64,
    /// Connections open at once; more wait in the accept queue.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    max_connections: usize,
    /// Bytes buffered per direction per connection in the proxy.
    #[arg(long, value_name = "BYTES", default_value_t = 64 * 1024)]
    buffer: usize,
    /// Send and receive buffer of each connection of our stack.
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20)]
    stack_buffer: usize,
    /// Write every packet of our stack to FILE (pcap).
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    /// Scheduler, congestion control, path manager and backup addresses of our
    /// stack (not with --kernel-mptcp).
    #[command(flatten)]
    mptcp: NetMptcpArgs,
}

impl CommonArgs {
    fn config(&self) -> ProxyConfig {
        ProxyConfig {
            max_connections: self.max_connections.max(1),
            splice: SpliceConfig {
                buffer: self.buffer.max(1024),
                idle_timeout: Duration::from_secs(self.idle_timeout),
            },
            ..ProxyConfig::default()
        }
    }

    /// Our stack owning `addresses`, and announcing (ADD_ADDR) `announce` on every
    /// accepted connection.
    fn stack(
        &self,
        addresses: impl IntoIterator<Item = IpAddr>,
        announce: &[IpAddr],
    ) -> anyhow::Result<Stack> {
        let mut builder = Stack::builder()
            .tun_name(self.tun.clone())
            .addresses(addresses)
            .tcp_config(TcpConfig {
                recv_buffer: self.stack_buffer,
                send_buffer: self.stack_buffer,
                ..TcpConfig::default()
            })
            // The connection-level buffers bound the shared window and what is in
            // flight over all subflows; the same size as a subflow's.
            .mptcp_config(MptcpConfig {
                send_buffer: self.stack_buffer,
                recv_buffer: self.stack_buffer,
                ..MptcpConfig::default()
            });
        for &addr in announce {
            builder = builder.announce(addr);
        }
        builder = self.mptcp.apply(builder);
        if let Some(pcap) = &self.pcap {
            builder = builder.pcap_path(pcap.clone());
        }
        builder
            .build()
            .with_context(|| format!("starting the stack on TUN device '{}'", self.tun))
    }

    /// The MPTCP choices are our stack's: the kernel's come from sysctl and `ip mptcp`.
    fn check_kernel_choices(&self) -> anyhow::Result<()> {
        let m = &self.mptcp;
        if self.kernel_mptcp
            && (m.algo.scheduler.is_some()
                || m.algo.cc.is_some()
                || m.algo.path_manager.is_some()
                || !m.backup.is_empty())
        {
            bail!(
                "--scheduler, --cc, --path-manager and --backup choose our stack's                  behaviour; with --kernel-mptcp use sysctl net.mptcp.* and `ip mptcp                  endpoint ... backup` instead"
            );
        }
        Ok(())
    }

    fn reporter(&self) -> Reporter {
        let json = self.json;
        let stdout = Mutex::new(std::io::stdout());
        Reporter::new(move |event| {
            if json {
                let line = serde_json::to_string(event).expect("events serialize");
                let mut out = stdout.lock().unwrap_or_else(|p| p.into_inner());
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            } else {
                eprintln!("mptcp proxy: {}", event.human());
            }
        })
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Runs `serve` until it fails or SIGINT/SIGTERM arrives; prints the counters then.
async fn until_signal(
    reporter: &Reporter,
    interval: f64,
    serve: impl Future<Output = std::io::Result<()>>,
) -> anyhow::Result<bool> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("installing the SIGTERM handler")?;
    let ticker = {
        let reporter = reporter.clone();
        async move {
            if interval <= 0.0 {
                return std::future::pending::<()>().await;
            }
            let mut tick = tokio::time::interval(Duration::from_secs_f64(interval));
            tick.tick().await;
            loop {
                tick.tick().await;
                reporter.emit_stats();
            }
        }
    };
    let result = tokio::select! {
        r = serve => r.map(|()| true).context("serving"),
        _ = tokio::signal::ctrl_c() => Ok(true),
        _ = term.recv() => Ok(true),
        () = ticker => Ok(true),
    };
    reporter.emit_stats();
    result
}

pub fn run(command: ProxyCommand) -> anyhow::Result<bool> {
    match command {
        ProxyCommand::Client(args) => client(args),
        ProxyCommand::Server(args) => server(args),
    }
}

fn client(args: ClientArgs) -> anyhow::Result<bool> {
    let common = &args.common;
    common.check_kernel_choices()?;
    let (listen, front) = match (args.socks, args.forward, args.to) {
        (Some(socks), None, None) => {
            let auth = match (args.user, args.password) {
                (Some(u), Some(p)) => {
                    if u.is_empty() || u.len() > 255 || p.is_empty() || p.len() > 255 {
                        bail!("--user and --password must be 1 to 255 bytes (RFC 1929)");
                    }
                    Auth::UserPass {
                        user: u.into_bytes(),
                        password: p.into_bytes(),
                    }
                }
                _ => Auth::None,
            };
            (socks, Front::Socks(auth))
        }
        (None, Some(listen), Some(to)) => {
            if args.user.is_some() {
                bail!("--user/--password apply to --socks only");
            }
            (listen, Front::Forward(to))
        }
        (Some(_), _, Some(_)) => bail!("--to goes with --forward, not --socks"),
        _ => bail!("give --socks ADDR:PORT, or --forward LISTEN:PORT --to TARGET:PORT"),
    };
    let reporter = common.reporter();
    let config = common.config();
    let rt = runtime()?;
    if common.kernel_mptcp {
        let dialer = Arc::new(KernelDialer {
            server: args.server,
            mptcp: true,
        });
        return rt.block_on(async {
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("listening on {listen}"))?;
            until_signal(
                &reporter,
                common.stats_interval,
                run_client(listener, front, dialer, config, reporter.clone()),
            )
            .await
        });
    }
    // Subflows join from backup addresses too, flagged as backups.
    let mut locals = args.local.clone();
    for &addr in &common.mptcp.backup {
        if !locals.contains(&addr) {
            locals.push(addr);
        }
    }
    let stack = common.stack(locals.iter().copied(), &[])?;
    let dialer = Arc::new(StackDialer {
        stack: stack.clone(),
        locals,
        server: args.server,
    });
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("listening on {listen}"))?;
        until_signal(
            &reporter,
            common.stats_interval,
            run_client(listener, front, dialer, config, reporter.clone()),
        )
        .await
    });
    // Connection tasks hold stack handles: stop them before the stack (whose last
    // handle's drop waits for the event loop to finish).
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(stack);
    result
}

fn server(args: ServerArgs) -> anyhow::Result<bool> {
    let common = &args.common;
    common.check_kernel_choices()?;
    let reporter = common.reporter();
    let config = common.config();
    let rt = runtime()?;
    if common.kernel_mptcp {
        return rt.block_on(async {
            let acceptor = Arc::new(
                KernelAcceptor::bind(args.listen, true)
                    .with_context(|| format!("listening on {} (kernel MPTCP)", args.listen))?,
            );
            until_signal(
                &reporter,
                common.stats_interval,
                run_server(acceptor, config, reporter.clone()),
            )
            .await
        });
    }
    if args.listen.ip().is_unspecified() {
        bail!(
            "listen address {} is unspecified: give the address our stack owns (it is \
             routed into the TUN device)",
            args.listen
        );
    }
    // Clients can only join a backup address they have heard of.
    let mut announce = args.announce.clone();
    for &addr in &common.mptcp.backup {
        if addr != args.listen.ip() && !announce.contains(&addr) {
            announce.push(addr);
        }
    }
    let stack = common.stack([args.listen.ip()], &announce)?;
    let listener = stack
        .bind_async(args.listen)
        .with_context(|| format!("listening on {}", args.listen))?;
    let acceptor = Arc::new(StackAcceptor {
        listener,
        stack: stack.clone(),
    });
    let result = rt.block_on(until_signal(
        &reporter,
        common.stats_interval,
        run_server(acceptor, config, reporter.clone()),
    ));
    rt.shutdown_timeout(Duration::from_secs(1));
    drop(stack);
    result
}
