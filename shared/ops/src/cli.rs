//! The command line: one subcommand per operator task. Every subcommand takes the connection
//! flags ([`Connection`]) after its name, each with the workers' environment variable, so
//! `retailctl` runs unchanged in a shell or pod configured for a worker.

use std::fmt;

use crate::connection::Connection;
use crate::dlq::DlqCommand;
use crate::schemas::SchemaArgs;
use crate::tail::TailArgs;
use crate::timeline::TimelineArgs;
use crate::topics::CreateArgs;

/// `retailctl`: operate the retail order saga's Kafka topics, schemas and dead letters.
#[derive(Debug, clap::Parser)]
#[command(name = "retailctl", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Catalogue topics.
    #[command(subcommand)]
    Topics(TopicsCommand),
    /// Event schemas in the schema registry.
    #[command(subcommand)]
    Schemas(SchemasCommand),
    /// Prints a topic's records as JSON lines, values decoded via the registry.
    Tail(TailArgs),
    /// Every event of one order across topics, in causal order, with latencies.
    Timeline(TimelineArgs),
    /// Dead-lettered records: list and replay.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Runs the simulator (storefront, payment system, warehouse); see `simulate --help`.
    Simulate(SimulateArgs),
}

/// `retailctl topics ...`.
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// Creates every catalogue topic that is missing (idempotent); fails on a partition-count
    /// mismatch.
    Create(CreateArgs),
}

/// `retailctl schemas ...`.
#[derive(Debug, clap::Subcommand)]
pub enum SchemasCommand {
    /// Registers every event type's schema under its subject (idempotent).
    Register(SchemaArgs),
    /// Checks every local schema against its subject's latest version; fails listing the
    /// incompatible subjects.
    Check(SchemaArgs),
}

/// The simulator's own flags (the same connection variables as the other subcommands).
#[derive(Clone, clap::Args)]
pub struct SimulateArgs {
    #[command(flatten)]
    pub config: retail_simulator::Config,
}

/// The simulator's configuration has no `Debug`; its redacted line stands in.
impl fmt::Debug for SimulateArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SimulateArgs {{ {} }}", self.config.redacted())
    }
}

impl Command {
    /// The connection flags of the subcommand, if it has them (for the log).
    pub fn connection(&self) -> Option<&Connection> {
        match self {
            Self::Topics(TopicsCommand::Create(args)) => Some(&args.connection),
            Self::Schemas(SchemasCommand::Register(args) | SchemasCommand::Check(args)) => {
                Some(&args.connection)
            }
            Self::Tail(args) => Some(&args.connection),
            Self::Timeline(args) => Some(&args.connection),
            Self::Dlq(DlqCommand::List(args)) => Some(&args.connection),
            Self::Dlq(DlqCommand::Replay(args)) => Some(&args.connection),
            Self::Simulate(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory, Parser};

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn subcommands_parse_with_their_flags() {
        let cli = Cli::try_parse_from([
            "retailctl",
            "dlq",
            "replay",
            "--topic",
            "inventory.dlq",
            "--error-class",
            "a",
            "--error-class",
            "b",
            "--dry-run",
            "--bootstrap-servers",
            "broker:9092",
        ])
        .expect("parses");
        let Command::Dlq(DlqCommand::Replay(args)) = cli.command else {
            panic!("not dlq replay");
        };
        assert_eq!(args.filter.error_classes, ["a", "b"]);
        assert!(args.dry_run);
        assert_eq!(args.connection.bootstrap_servers, "broker:9092");

        let cli = Cli::try_parse_from(["retailctl", "simulate", "--orders", "3"]).expect("parses");
        let Command::Simulate(args) = cli.command else {
            panic!("not simulate");
        };
        assert_eq!(args.config.orders, Some(3));
    }

    #[test]
    fn list_takes_a_worker_or_a_topic_not_both() {
        let error = Cli::try_parse_from([
            "retailctl",
            "dlq",
            "list",
            "--worker",
            "inventory",
            "--topic",
            "x.dlq",
        ])
        .expect_err("conflict");
        assert_eq!(error.kind(), clap::error::ErrorKind::ArgumentConflict);
    }
}
