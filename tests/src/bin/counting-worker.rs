//! The counting test worker (`retail_integration_tests::counting::StockCounter`) as a process,
//! for the runtime's crash, rebalance and shutdown tests.

use clap::Parser;
use retail_integration_tests::counting::StockCounter;
use retail_runtime::{RuntimeConfig, shutdown, telemetry};

/// A stock counter on the worker runtime.
#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    telemetry::init_logging(cli.runtime.log_format, "counting-worker");
    match retail_runtime::run(
        "counting-worker",
        cli.runtime,
        StockCounter,
        shutdown::on_signal(),
    )
    .await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "counting-worker stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
