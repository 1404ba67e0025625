//! The fulfilment worker.

use clap::Parser;
use fulfilment::{Fulfilment, FulfilmentConfig};
use retail_runtime::{RuntimeConfig, shutdown, telemetry};

/// Waits for stock, payment and fraud check per order; packs or cancels.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    fulfilment: FulfilmentConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = retail_runtime::cli::parse();
    telemetry::init_logging(cli.runtime.log_format, "fulfilment");
    let handler = match Fulfilment::new(&cli.fulfilment) {
        Ok(handler) => handler,
        Err(error) => {
            tracing::error!(%error, "invalid fulfilment settings");
            return std::process::ExitCode::FAILURE;
        }
    };
    match retail_runtime::run("fulfilment", cli.runtime, handler, shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "fulfilment stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
