//! The notification worker as a process: flags, logging, then the runtime until SIGTERM.

use clap::Parser;
use notification::NotificationArgs;
use retail_runtime::{RuntimeConfig, shutdown, telemetry};

/// Tells customers what happens to their orders: confirmations, payment failures,
/// cancellations and shipping notices, each at most once.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    #[command(flatten)]
    runtime: RuntimeConfig,
    #[command(flatten)]
    notification: NotificationArgs,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = retail_runtime::cli::parse();
    telemetry::init_logging(cli.runtime.log_format, "notification");
    let handler = match cli.notification.handler(&cli.runtime) {
        Ok(handler) => handler,
        Err(error) => {
            tracing::error!(%error, "invalid notification configuration");
            return std::process::ExitCode::FAILURE;
        }
    };
    match retail_runtime::run("notification", cli.runtime, handler, shutdown::on_signal()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "notification stopped");
            std::process::ExitCode::FAILURE
        }
    }
}
