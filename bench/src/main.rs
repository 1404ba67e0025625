//! `retail-bench`: the performance suite (issue 7). Each subcommand measures one thing on the
//! local broker and prints its figures as a Markdown table; `all` runs them in one go.
//!
//! Run it through `bench/run`, which builds the release binaries and installs the peer's
//! Python environment first.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use retail_bench::{arms, hops, stack};

mod instructions;

mod saga;

/// The benchmark suite's command line.
#[derive(Debug, Parser)]
#[command(
    name = "retail-bench",
    about = "Performance figures of the workers, printed as tables"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// What to measure.
#[derive(Debug, Subcommand)]
enum Command {
    /// Everything below with its defaults, one after the other: hops, saga, instructions.
    All,
    /// Each hop against the broker's own limit and the peer stream processor.
    Hops(hops::HopsArgs),
    /// (internal) The passthrough arm: copies records, no decoding.
    #[command(hide = true)]
    Passthrough(arms::PassthroughArgs),
    /// (internal) The no-op hop arm: the runtime with a stateless handler.
    #[command(hide = true)]
    NoopWorker(arms::NoopArgs),
    /// (internal) Hosts librdkafka's mock cluster in this process.
    #[command(hide = true)]
    MockBroker,
    /// Instructions per event of the per-record paths, counted by callgrind on the offline
    /// replay harness.
    Instructions(instructions::InstructionsArgs),
    /// Saga latency, OrderPlaced -> ShipmentCreated, at fixed offered loads.
    Saga(saga::SagaArgs),
}

/// The repository (for `deploy/local/stack` and the peer) and the folder of the release
/// binaries (this one's).
fn locations() -> anyhow::Result<(PathBuf, PathBuf)> {
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .context("repository")?
        .to_owned();
    let bin_dir = std::env::current_exe()?
        .parent()
        .context("binary folder")?
        .to_owned();
    Ok((repo, bin_dir))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    run(cli.command).await
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::All => {
            for name in ["hops", "saga", "instructions"] {
                let cli = Cli::try_parse_from(["retail-bench", name])?;
                eprintln!("\n==> retail-bench {name}");
                Box::pin(run(cli.command)).await?;
            }
            Ok(())
        }
        Command::Hops(args) => {
            let (repo, bin_dir) = locations()?;
            let rows = hops::run(&args, &repo, &bin_dir).await?;
            println!("{}", hops::table(&args, &rows));
            Ok(())
        }
        Command::Passthrough(args) => {
            tokio::task::spawn_blocking(move || arms::passthrough(&args)).await?
        }
        Command::NoopWorker(args) => arms::noop_worker(args).await,
        Command::MockBroker => stack::host_mock_broker(),
        Command::Instructions(args) => {
            print!("{}", instructions::table(&instructions::run(args).await?));
            Ok(())
        }
        Command::Saga(args) => {
            print!("{}", saga::table(&saga::run(&args).await?));
            Ok(())
        }
    }
}
