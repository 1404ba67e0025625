//! The `retailctl` binary: parses the command line, sets up logging (to stderr, warnings by
//! default; `RUST_LOG` for more) and runs the command; see the library for the commands.

use std::process::ExitCode;

use retail_ops::{Cli, Command};
use retail_runtime::{shutdown, telemetry};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = retail_runtime::cli::parse();
    if let Command::Simulate(args) = &cli.command {
        telemetry::init_logging(args.config.log_format, "simulator");
        return match retail_simulator::run(&args.config, shutdown::on_signal()).await {
            Ok(_summary) => ExitCode::SUCCESS,
            Err(error) => {
                tracing::error!(%error, "simulator stopped");
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    tracing::debug!(connection = ?cli.command.connection(), "starting");
    let mut out = std::io::stdout().lock();
    match retail_ops::run(&cli.command, &mut out).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) if error.is_broken_pipe() => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}
