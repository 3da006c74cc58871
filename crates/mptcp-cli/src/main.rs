//! `mptcp`: the command-line face of the stack.

mod sim_cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// Run the built-in demo scenario in the simulator (no root needed).
    ///
    /// Example: mptcp demo --out demo-out
    Demo {
        /// Directory for the time series (series.csv) and the summary (summary.txt).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Replace the scenario's seed.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
    },
    /// Simulator experiments.
    #[command(subcommand)]
    Sim(SimCommand),
}

#[derive(Subcommand)]
enum SimCommand {
    /// Run a TOML scenario and print a summary of every flow and link.
    ///
    /// Example: mptcp sim run crates/mptcp-sim/scenarios/shared-bottleneck.toml --seed 3 --out out/
    Run {
        /// The scenario file (see crates/mptcp-sim/scenarios/ for examples).
        file: PathBuf,
        /// Replace the scenario's seed: the same seed gives the same run, byte for byte.
        #[arg(long, value_name = "N")]
        seed: Option<u64>,
        /// Directory for the time series (series.csv) and the summary (summary.txt).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Skip checking every received byte against what was sent (faster).
        #[arg(long)]
        no_verify: bool,
    },
    /// Print the built-in demo scenario, a starting point for your own.
    ///
    /// Example: mptcp sim example > my.toml
    Example,
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
        Command::Demo { out, seed } => sim_cmd::demo(seed, out.as_deref()),
        Command::Sim(SimCommand::Run {
            file,
            seed,
            out,
            no_verify,
        }) => sim_cmd::run_file(&file, seed, out.as_deref(), !no_verify),
        Command::Sim(SimCommand::Example) => {
            print!("{}", sim_cmd::DEMO_SCENARIO);
            Ok(true)
        }
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
