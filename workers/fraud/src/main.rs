//! The fraud worker: scores every order placed for fraud (see the `fraud` library for the
//! rules and the two stages).

use clap::Parser;
use fraud::{CustomersStage, FraudConfig, OrdersStage, WORKER};
use retail_runtime::{RuntimeConfig, Stage, shutdown, telemetry};

/// Scores orders for fraud: FraudCleared or FraudFlagged for every OrderPlaced.
#[derive(Debug, Parser)]
#[command(name = "fraud", version)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    fraud: FraudConfig,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = retail_runtime::cli::parse();
    telemetry::init_logging(cli.runtime.log_format, WORKER);
    let rules = match cli.fraud.rules() {
        Ok(rules) => rules,
        Err(error) => {
            tracing::error!(%error, "invalid fraud configuration");
            return std::process::ExitCode::FAILURE;
        }
    };
    tracing::info!(%rules, "fraud rules");
    let stages = vec![
        Stage::new("orders", OrdersStage),
        Stage::new("customers", CustomersStage::new(rules)),
    ];
    match retail_runtime::run_stages(WORKER, cli.runtime, stages, shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "fraud stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
