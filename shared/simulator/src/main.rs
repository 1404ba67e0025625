//! The `simulator` command: plays the storefront, the payment system and the warehouse against
//! the saga (see the library's documentation and `--help`).

use retail_runtime::{shutdown, telemetry};
use retail_simulator::Config;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = retail_runtime::cli::parse();
    telemetry::init_logging(config.log_format, "simulator");
    match retail_simulator::run(&config, shutdown::on_signal()).await {
        Ok(_summary) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "simulator stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
