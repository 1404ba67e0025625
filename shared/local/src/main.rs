//! The `retail-local` command: the whole saga on this machine (see the library's docs and
//! `--help`).

use retail_local::Config;
use retail_runtime::shutdown;
use tracing_subscriber::EnvFilter;

// The children are started from this future, on the main thread (see `children`).
#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config: Config = retail_runtime::cli::parse();
    // Warnings only, on stderr, unless LOCAL_RUN_LOG says otherwise: the live view owns stdout.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            EnvFilter::try_from_env("LOCAL_RUN_LOG").unwrap_or_else(|_| EnvFilter::new("warn")),
        )
        .init();
    let non_interactive = config.non_interactive();
    match retail_local::run(config, shutdown::on_signal()).await {
        Ok(summary) => {
            print!("{}", summary.render());
            if summary.all_terminal && summary.stock_balanced {
                return std::process::ExitCode::SUCCESS;
            }
            if !summary.all_terminal {
                println!("not every order has ended (see above)");
            }
            if !summary.stock_balanced {
                println!("stock does not balance for every SKU (see above)");
            }
            // Ctrl-C may stop orders in flight; a --duration run must end them all.
            if non_interactive {
                std::process::ExitCode::FAILURE
            } else {
                std::process::ExitCode::SUCCESS
            }
        }
        Err(error) => {
            eprintln!("retail-local: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
