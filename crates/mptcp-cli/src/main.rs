//! `mptcp`: the command-line face of the stack.

mod bench;
mod mptcp_args;
mod net_cmd;
mod plot;
mod proxy_cmd;
mod sim_cmd;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mptcp_proto::cc::CcAlgorithm;
use mptcp_proto::sched::SchedulerKind;

use mptcp_args::{AlgoArgs, NetMptcpArgs};

#[derive(Parser)]
#[command(
    name = "mptcp",
    version,
    about = "Multipath TCP (RFC 8684) in user space",
    long_about = "Multipath TCP (RFC 8684 v1) in user space: a sans-IO protocol core, \
                  a deterministic network simulator to experiment with it, and (as they \
                  land) a TUN runtime that speaks MPTCP with the Linux kernel."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the built-in demo scenario in the simulator (no root needed); the same as
    /// `mptcp sim run demo`.
    ///
    /// Example: mptcp demo --out demo-out
    Demo {
        #[command(flatten)]
        run: SimRunArgs,
    },
    /// Simulator experiments.
    #[command(subcommand)]
    Sim(SimCommand),
    /// Accept MPTCP (and plain TCP) connections on ADDR:PORT with our stack on a TUN
    /// device (needs root).
    ///
    /// The stack owns ADDR and every --announce address: they are routed into the TUN
    /// device, so the kernel forwards traffic for them to us. MP_JOINs are accepted on
    /// all of them.
    ///
    /// Examples:
    ///   mptcp listen 10.77.1.2:5000 --sink --json
    ///   mptcp listen 10.77.1.2:5000 --announce 10.77.2.2 --echo
    #[command(verbatim_doc_comment)]
    Listen {
        /// The address and port to accept on (an address the stack owns).
        #[arg(value_name = "ADDR:PORT")]
        local: SocketAddr,
        /// Announce ADDR (ADD_ADDR with HMAC) on every new connection, so the peer may
        /// open a subflow to it; repeatable (a --backup address is announced too).
        /// Example: --announce 10.77.2.2
        #[arg(long, value_name = "ADDR")]
        announce: Vec<IpAddr>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Carry unmodified TCP applications over multipath: SOCKS5 / port-forward
    /// converter (client) and its far end (server). Needs root for the TUN device.
    #[command(subcommand)]
    Proxy(proxy_cmd::ProxyCommand),
    /// Connect to PEER:PORT from our stack on a TUN device (needs root).
    ///
    /// The first subflow leaves from the first --local; once the connection is
    /// established, one more subflow joins from each further --local, and subflows join
    /// the addresses the peer announces.
    ///
    /// Examples:
    ///   mptcp connect 10.99.1.1:5000 --local 10.77.1.2 < file
    ///   mptcp connect 10.99.1.1:5000 --local 10.77.1.2 --local 10.77.2.2 --sink --json
    #[command(verbatim_doc_comment)]
    Connect {
        /// The peer to connect to.
        #[arg(value_name = "PEER:PORT")]
        remote: SocketAddr,
        /// Our address on the TUN device (routed into it by the command); repeat it
        /// for more subflows. Example: --local 10.77.1.2 --local 10.77.2.2
        #[arg(long, value_name = "ADDR", required = true)]
        local: Vec<IpAddr>,
        #[command(flatten)]
        net: NetArgs,
    },
    /// Measure goodput end to end: the kernel's MPTCP and ours on the same two-path
    /// namespace topology, interleaved, with the ratios to kernel <-> kernel (needs root).
    ///
    /// Builds two network namespaces joined by two veth pairs and measures, in every
    /// round, one transfer of each pair: kernel <-> kernel (two subflows), our client ->
    /// the kernel's MPTCP server, ours <-> ours. The namespaces are deleted at the end,
    /// also on Ctrl-C.
    ///
    /// Examples:
    ///   mptcp bench                              # 3 rounds x 5 s, unlimited paths
    ///   mptcp bench --rate 50,20 --json          # aggregation efficiency on 50 + 20 Mbit/s
    ///   mptcp bench --pair ours-ours --seconds 30 --rounds 1   # e.g. to profile ours
    #[command(verbatim_doc_comment)]
    Bench {
        /// Rounds; each measures every pair once.
        #[arg(long, default_value_t = 3, value_name = "N")]
        rounds: usize,
        /// Seconds of each measurement (after the warm-up).
        #[arg(long, default_value_t = 5.0, value_name = "SECS")]
        seconds: f64,
        /// Seconds of sending before the measurement starts (slow start, joins).
        #[arg(long, default_value_t = 1.0, value_name = "SECS")]
        warmup: f64,
        /// Limit path 1 and path 2 to these rates (token buckets on both veth ends) and
        /// report the aggregation efficiency (goodput / summed rates). Bare numbers are
        /// Mbit/s; tc units work too. Example: --rate 50,20 or --rate 50mbit,20mbit
        #[arg(long, value_name = "A,B")]
        rate: Option<String>,
        /// Only these pairs (repeatable; default kernel-kernel, ours-kernel, ours-ours;
        /// kernel-tcp adds plain kernel TCP on one path for context).
        #[arg(long = "pair", value_enum, value_name = "PAIR")]
        pairs: Vec<bench::Pair>,
        /// The server sends and the client receives (default: the client sends).
        #[arg(long)]
        reverse: bool,
        /// Run our stacks without TUN offload (one packet per MSS through the TUN).
        #[arg(long)]
        no_offload: bool,
        /// Connections per measurement, all sending at once; the goodput is their sum.
        #[arg(long, default_value_t = 1, value_name = "N")]
        connections: usize,
        /// Worker threads of each of our stacks (connections are spread over them).
        #[arg(long, default_value_t = 1, value_name = "N")]
        workers: usize,
        /// Print the results as one JSON object on stdout (progress is not shown).
        #[arg(long)]
        json: bool,
    },
}

#[derive(clap::Args)]
struct NetArgs {
    /// The TUN device to create or use (default mptcp0). Example: --tun mptcp1
    #[arg(long, value_name = "NAME", default_value = "mptcp0")]
    tun: String,
    /// Echo every byte of every connection back; close after the peer's DATA_FIN.
    /// Example: mptcp listen 10.77.1.2:7 --echo
    #[arg(long, conflicts_with = "sink")]
    echo: bool,
    /// Read and discard; print each connection's byte count and SHA-256 at its end.
    /// Example: mptcp listen 10.77.1.2:9 --sink
    #[arg(long)]
    sink: bool,
    /// One JSON object per line on stdout for events: listening, connected,
    /// subflow_up, subflow_down (with reason), add_addr, remove_addr, fallback, and
    /// closed (bytes_in, bytes_out, sha256 with --sink). Needs --echo or --sink.
    /// Example: --sink --json
    #[arg(long)]
    json: bool,
    /// Require DSS checksums (MP_CAPABLE flag A, RFC 8684 §3.3.1); a peer that asks
    /// for them gets them either way. Example: --checksum
    #[arg(long)]
    checksum: bool,
    /// Write every packet sent and received to FILE (pcap, readable by Wireshark).
    /// Example: --pcap /tmp/mptcp.pcap
    #[arg(long, value_name = "FILE")]
    pcap: Option<PathBuf>,
    #[command(flatten)]
    mptcp: NetMptcpArgs,
}

impl NetArgs {
    fn options(self, announce: Vec<IpAddr>) -> net_cmd::NetOptions {
        net_cmd::NetOptions {
            tun: self.tun,
            mode: match (self.echo, self.sink) {
                (true, _) => net_cmd::Mode::Echo,
                (_, true) => net_cmd::Mode::Sink,
                _ => net_cmd::Mode::Netcat,
            },
            json: self.json,
            pcap: self.pcap,
            checksum: self.checksum,
            announce,
            mptcp: self.mptcp,
        }
    }
}

/// `sim run` and `demo`: how to run one scenario and what to report.
#[derive(clap::Args)]
struct SimRunArgs {
    /// Replace the scenario's seed: the same seed gives the same run, byte for byte.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,
    /// Directory for the time series (series.csv, subflows.csv), the summary
    /// (summary.txt, summary.json) and plots of per-subflow goodput and congestion
    /// window over time (goodput.svg, cwnd.svg).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print the summary as one JSON object on stdout (fields: see `mptcp sim run
    /// --help` and README).
    #[arg(long)]
    json: bool,
    /// Also print the detailed tables: every flow's TCP counters, MPTCP modes and
    /// every subflow's state.
    #[arg(long)]
    details: bool,
    /// Skip checking every received byte against what was sent (faster; `matched`
    /// then compares byte counts only).
    #[arg(long)]
    no_verify: bool,
    #[command(flatten)]
    algo: AlgoArgs,
}

impl SimRunArgs {
    fn settings(self) -> sim_cmd::RunSettings {
        sim_cmd::RunSettings {
            seed: self.seed,
            out: self.out,
            verify: !self.no_verify,
            json: self.json,
            details: self.details,
            algo: self.algo,
        }
    }
}

#[derive(Subcommand)]
enum SimCommand {
    /// List the built-in scenarios with one line each.
    List,
    /// Run a scenario (a built-in NAME or a TOML FILE) and print its summary: per
    /// connection goodput, bytes delivered and whether they match what was sent, the
    /// longest stall and reinjected bytes; per subflow bytes, share and RTTs.
    ///
    /// --json prints one object: scenario, seed, simulated_s, scheduler, cc,
    /// path_manager (overrides or null), total_goodput_mbps, bytes_sent,
    /// bytes_delivered, matched, longest_stall_ms, reinjected_bytes and connections[]
    /// (flow, kind, from, to, mode, bytes_sent, bytes_delivered, matched, complete,
    /// completion_s, goodput_mbps, longest_stall_ms, longest_stall_start_s,
    /// reinjected_bytes, out_of_order_bytes, subflows[] (id, local, remote, backup, bytes, share_pct,
    /// srtt_ms, min_rtt_ms, cwnd_bytes, retransmitted_bytes, reinjected_bytes, rtos)).
    ///
    /// Examples:
    ///   mptcp sim run wifi-lte --out out/
    ///   mptcp sim run wifi-outage --scheduler redundant --json
    ///   mptcp sim run my.toml --seed 3
    #[command(verbatim_doc_comment)]
    Run {
        /// A built-in scenario (`mptcp sim list`) or a scenario file.
        #[arg(value_name = "NAME|FILE")]
        scenario: String,
        #[command(flatten)]
        run: SimRunArgs,
    },
    /// Run a scenario once per combination of --scheduler and --cc (each overriding
    /// what the scenario's MPTCP hosts say) and print one table: goodput, subflow
    /// shares, longest stall, reinjected bytes, matched. --json prints an array of the
    /// `sim run --json` objects.
    ///
    /// Example: mptcp sim compare wifi-lte --scheduler lowest-rtt,blest,ecf --cc cubic,lia
    Compare {
        /// A built-in scenario (`mptcp sim list`) or a scenario file.
        #[arg(value_name = "NAME|FILE")]
        scenario: String,
        /// Schedulers to compare, comma-separated (default: the scenario's).
        #[arg(long, value_name = "A,B,..", value_delimiter = ',', value_parser = mptcp_args::parse_scheduler)]
        scheduler: Vec<SchedulerKind>,
        /// Congestion controls to compare, comma-separated (default: the scenario's).
        #[arg(long, value_name = "X,Y,..", value_delimiter = ',', value_parser = mptcp_args::parse_cc)]
        cc: Vec<CcAlgorithm>,
        /// The path manager of every run: fullmesh, ndiffports[:N] or backup.
        #[arg(long = "path-manager", value_name = "POLICY", value_parser = mptcp_args::parse_path_manager)]
        path_manager: Option<mptcp_proto::pm::PathPolicy>,
        /// Replace the scenario's seed.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Print a JSON array, one `sim run --json` object per combination.
        #[arg(long)]
        json: bool,
    },
    /// Print a built-in scenario's TOML (default: the demo), a starting point for
    /// your own. A capacity trace is named relative to the scenario file: copy
    /// crates/mptcp-sim/scenarios/traces/ next to it for `roadside`.
    ///
    /// Example: mptcp sim example wifi-outage > my.toml
    Example {
        /// A name from `mptcp sim list`.
        name: Option<String>,
    },
}

/// A duration in (fractional) seconds from the command line.
fn secs(value: f64, flag: &str) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(value)
        .map_err(|_| anyhow::anyhow!("{flag} {value}: expected a non-negative number of seconds"))
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Demo { run } => sim_cmd::demo(&run.settings()),
        Command::Sim(SimCommand::List) => {
            sim_cmd::list();
            Ok(true)
        }
        Command::Sim(SimCommand::Run { scenario, run }) => sim_cmd::run(&scenario, &run.settings()),
        Command::Sim(SimCommand::Compare {
            scenario,
            scheduler,
            cc,
            path_manager,
            seed,
            json,
        }) => sim_cmd::compare(
            &scenario,
            &scheduler,
            &cc,
            &AlgoArgs {
                path_manager,
                ..AlgoArgs::default()
            },
            seed,
            json,
        ),
        Command::Sim(SimCommand::Example { name }) => sim_cmd::example(name.as_deref()),
        Command::Listen {
            local,
            announce,
            net,
        } => net_cmd::listen(local, &net.options(announce)),
        Command::Connect { remote, local, net } => {
            net_cmd::connect(remote, &local, &net.options(Vec::new()))
        }
        Command::Proxy(command) => proxy_cmd::run(command),
        Command::Bench {
            rounds,
            seconds,
            warmup,
            rate,
            pairs,
            reverse,
            no_offload,
            connections,
            workers,
            json,
        } => secs(seconds, "--seconds").and_then(|duration| {
            bench::run(&bench::BenchOptions {
                rounds,
                warmup: secs(warmup, "--warmup")?,
                duration,
                rates: rate,
                pairs,
                reverse,
                offload: !no_offload,
                connections,
                workers,
                json,
            })
        }),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("mptcp: {e:#}");
            ExitCode::from(2)
        }
    }
}
