//! The inventory worker: its order stage and its stock stage in one process (see the crate docs
//! for why there are two).

use clap::Parser;
use inventory::{InventoryConfig, OrderStage, StockStage};
use retail_runtime::{RuntimeConfig, Stage, shutdown, telemetry};

/// Keeps available and reserved stock per SKU and reserves orders all-or-nothing.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    inventory: InventoryConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = retail_runtime::cli::parse();
    telemetry::init_logging(cli.runtime.log_format, "inventory");
    let stages = vec![
        Stage::new("orders", OrderStage::new(&cli.inventory)),
        Stage::new("stock", StockStage::new(&cli.inventory)),
    ];
    match retail_runtime::run_stages("inventory", cli.runtime, stages, shutdown::on_signal()).await
    {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "inventory stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
