//! The local run command (`retail-local`, README: "Run it locally"): builds what it needs,
//! installs and starts a broker and the development schema registry, creates the topics,
//! registers the schemas, starts the five workers and the simulator as separate processes, and
//! shows a live view of the saga; Ctrl-C stops everything in order and prints a summary.
//! `--duration` makes it a non-interactive run that drains, stops and exits non-zero unless
//! every order ended (the test of this command runs it so, with `--summary-json`).
//!
//! # Layout
//!
//! - `config`: the options (clap, `LOCAL_RUN_*` variables).
//! - `build`: cargo builds of the binaries and the broker's install, with progress.
//! - `children`: child processes in their own process groups, stopped in order, never orphaned.
//! - `run`: the sequence: stack, schemas, workers, simulator, view, stop, summary.
//! - `endpoints`: where the run's broker, registry and workers answer (`endpoints.json`).
//! - `observe`: the saga's figures read back from its topics, inventory's state from its
//!   changelog.
//! - `scrape`: lag and dead letters from each worker's `/metrics`.
//! - `view`: the live terminal view, or plain lines.
//! - `summary`: the final figures, stock balance, and their JSON.

pub mod build;
pub mod children;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod observe;
pub mod run;
pub mod scrape;
pub mod summary;
pub mod view;

pub use config::{BrokerKind, Config};
pub use endpoints::Endpoints;
pub use error::LaunchError;
pub use run::run;
pub use summary::Summary;
