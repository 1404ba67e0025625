//! `retailctl topics create`: every catalogue topic, with the partitions and replication the
//! workers use (`WORKER_TOPIC_PARTITIONS`, `WORKER_TOPIC_REPLICATION`, `WORKER_TOPIC_PREFIX`),
//! through the runtime's own topic creation. Idempotent: existing topics are left alone, but a
//! partition count other than the one asked for fails the command (the workers' stages need
//! co-partitioned topics, and a count cannot be lowered later).

use std::collections::BTreeMap;
use std::io::Write;

use retail_events::Topic;
use retail_runtime::topics::{TopicSpec, create_missing};

use crate::connection::Connection;
use crate::error::OpsError;

/// `retailctl topics create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// Partitions of each topic created (the workers' flag and variable).
    #[arg(long, env = "WORKER_TOPIC_PARTITIONS", default_value_t = 6)]
    pub topic_partitions: i32,

    /// Replication factor of each topic created (the workers' flag and variable).
    #[arg(long, env = "WORKER_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,
}

/// What happened to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// It was missing and is now created.
    Created { partitions: usize },
    /// It existed with the expected partition count.
    Exists { partitions: usize },
    /// It existed with another partition count.
    Mismatch { partitions: usize },
}

/// The outcome of each topic, given the partition counts before and after creation. Pure.
pub fn outcomes(
    names: &[String],
    before: &BTreeMap<String, usize>,
    after: &BTreeMap<String, usize>,
    expected: usize,
) -> Vec<(String, Outcome)> {
    names
        .iter()
        .map(|name| {
            let outcome = match (before.get(name), after.get(name)) {
                (Some(&partitions), _) if partitions == expected => Outcome::Exists { partitions },
                (Some(&partitions), _) => Outcome::Mismatch { partitions },
                (None, Some(&partitions)) if partitions == expected => {
                    Outcome::Created { partitions }
                }
                (None, Some(&partitions)) => Outcome::Mismatch { partitions },
                // Not visible yet right after creation: it was created as asked.
                (None, None) => Outcome::Created {
                    partitions: expected,
                },
            };
            (name.clone(), outcome)
        })
        .collect()
}

/// Creates the missing catalogue topics and reports each one on `out`.
pub async fn create(args: &CreateArgs, out: &mut impl Write) -> Result<(), OpsError> {
    if args.topic_partitions < 1 {
        return Err(OpsError::Usage(format!(
            "--topic-partitions (WORKER_TOPIC_PARTITIONS) {} must be at least 1",
            args.topic_partitions
        )));
    }
    if args.topic_replication < 1 {
        return Err(OpsError::Usage(format!(
            "--topic-replication (WORKER_TOPIC_REPLICATION) {} must be at least 1",
            args.topic_replication
        )));
    }
    let connection = &args.connection;
    let before = connection.cluster_topics_async().await?;
    let names: Vec<String> = Topic::ALL
        .iter()
        .map(|&topic| connection.topic_name(topic))
        .collect();
    let specs: Vec<TopicSpec> = names
        .iter()
        .filter(|name| !before.contains_key(*name))
        .map(|name| TopicSpec {
            name: name.clone(),
            partitions: args.topic_partitions,
            configs: Vec::new(),
        })
        .collect();
    if !specs.is_empty() {
        create_missing(
            &connection.client_config(),
            &specs,
            args.topic_replication,
            connection.timeout.max(std::time::Duration::from_secs(30)),
        )
        .await?;
    }
    let after = connection.cluster_topics_async().await?;
    let expected = usize::try_from(args.topic_partitions).unwrap_or(usize::MAX);
    let results = outcomes(&names, &before, &after, expected);
    let mut mismatches = Vec::new();
    for (name, outcome) in &results {
        match outcome {
            Outcome::Created { partitions } => {
                writeln!(out, "created   {name} ({partitions} partitions)")?;
            }
            Outcome::Exists { partitions } => {
                writeln!(out, "exists    {name} ({partitions} partitions)")?;
            }
            Outcome::Mismatch { partitions } => {
                writeln!(
                    out,
                    "MISMATCH  {name} ({partitions} partitions, expected {expected})"
                )?;
                mismatches.push(format!("{name}: {partitions}"));
            }
        }
    }
    if mismatches.is_empty() {
        Ok(())
    } else {
        Err(OpsError::PartitionMismatch {
            expected: args.topic_partitions,
            found: mismatches.join(", "),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_tell_created_existing_and_mismatching_topics_apart() {
        let names = ["a", "b", "c", "d"].map(String::from).to_vec();
        let before = BTreeMap::from([("a".to_owned(), 6), ("b".to_owned(), 3)]);
        let after = BTreeMap::from([
            ("a".to_owned(), 6),
            ("b".to_owned(), 3),
            ("c".to_owned(), 6),
            ("d".to_owned(), 2),
        ]);
        assert_eq!(
            outcomes(&names, &before, &after, 6),
            vec![
                ("a".to_owned(), Outcome::Exists { partitions: 6 }),
                ("b".to_owned(), Outcome::Mismatch { partitions: 3 }),
                ("c".to_owned(), Outcome::Created { partitions: 6 }),
                ("d".to_owned(), Outcome::Mismatch { partitions: 2 }),
            ]
        );
    }
}
