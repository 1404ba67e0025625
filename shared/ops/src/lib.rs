//! `retailctl`, the operator's command line for the retail order saga.
//!
//! - `topics create`: every catalogue topic, idempotently, with the workers' partition and
//!   replication settings.
//! - `schemas register` / `schemas check`: the event schemas under the workers' subjects, and
//!   their compatibility with the registry's latest versions.
//! - `tail <topic>`: records as JSON lines, decoded via the registry.
//! - `timeline <order-id>`: one order's events across topics in causal order, with latencies.
//! - `dlq list` / `dlq replay`: dead letters, and re-injecting them after a fix.
//! - `simulate`: the simulator (`retail_simulator`), with its own flags.
//!
//! Every command's first request to the cluster and to the registry is bounded by `--timeout`,
//! so a wrong address fails in seconds with a message naming it. Output goes to stdout, errors
//! to stderr with exit status 1. `shared/ops/README.md` shows every command with example output.
//!
//! # Layout
//! - [`cli`]: the clap command line; [`connection`]: the connection flags, client settings and
//!   the first requests; [`error`]: what can go wrong.
//! - [`scan`]: reading a topic's records on a thread of their own (snapshot or follow).
//! - one module per command: [`topics`], [`schemas`], [`tail`], [`timeline`], [`dlq`]; the
//!   pure parts (ordering, latencies, filters, tables) are unit-tested there.

pub mod cli;
pub mod connection;
pub mod dlq;
pub mod error;
pub mod scan;
pub mod schemas;
pub mod tail;
pub mod timeline;
pub mod topics;

use std::io::Write;

pub use cli::{Cli, Command};
pub use error::OpsError;

use crate::cli::{SchemasCommand, TopicsCommand};
use crate::dlq::DlqCommand;

/// Runs one command (other than `simulate`, which `main` runs with the simulator's logging),
/// writing its output to `out`.
pub async fn run(command: &Command, out: &mut impl Write) -> Result<(), OpsError> {
    if let Some(connection) = command.connection() {
        connection.validate()?;
    }
    match command {
        Command::Topics(TopicsCommand::Create(args)) => topics::create(args, out).await,
        Command::Schemas(SchemasCommand::Register(args)) => schemas::register(args, out).await,
        Command::Schemas(SchemasCommand::Check(args)) => schemas::check(args, out).await,
        Command::Tail(args) => tail::tail(args, out).await,
        Command::Timeline(args) => timeline::timeline(args, out).await,
        Command::Dlq(DlqCommand::List(args)) => dlq::list(args, out).await,
        Command::Dlq(DlqCommand::Replay(args)) => dlq::replay(args, out).await,
        Command::Simulate(_) => Err(OpsError::Usage(
            "simulate is run by the retailctl binary itself".to_owned(),
        )),
    }
}
