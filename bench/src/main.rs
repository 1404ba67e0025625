//! `retail-bench`: the performance suite (issue 7). Each subcommand measures one thing on the
//! local broker and prints its figures as a Markdown table; `all` runs them in one go.
//!
//! Run it through `bench/run`, which builds the release binaries and installs the peer's
//! Python environment first.

use clap::{Parser, Subcommand};

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
    /// Saga latency, OrderPlaced -> ShipmentCreated, at fixed offered loads.
    Saga(saga::SagaArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Saga(args) => print!("{}", saga::table(&saga::run(&args).await?)),
    }
    Ok(())
}
