//! The shipping worker as a process: flags, logging, then the runtime until SIGTERM.

use clap::Parser;
use retail_runtime::{RuntimeConfig, shutdown, telemetry};
use shipping::ShippingArgs;

/// Books a shipment, with carrier, tracking number and label, for every packed order.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    shipping: ShippingArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = retail_runtime::cli::parse();
    telemetry::init_logging(cli.runtime.log_format, "shipping");
    let handler = match cli.shipping.handler() {
        Ok(handler) => handler,
        Err(error) => {
            tracing::error!(%error, "invalid shipping configuration");
            return std::process::ExitCode::FAILURE;
        }
    };
    match retail_runtime::run("shipping", cli.runtime, handler, shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "shipping stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
