//! The topics a worker touches, by their names on the broker, and making sure they exist.
//!
//! Catalogue topics may carry an environment prefix (`--topic-prefix staging.` turns
//! `storefront.orders.v1` into `staging.storefront.orders.v1`), so several environments or test
//! runs share one cluster. The worker's own topics are named after its consumer group:
//! `<group>.dlq` for dead letters and `<group>.<store>.changelog` for its state.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::types::RDKafkaErrorCode;
use retail_events::Topic;

/// Why the worker's topics are not usable.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("creating topic {topic}: {reason}")]
    Create { topic: String, reason: String },
    #[error("reading metadata of topic {topic}: {source}")]
    Metadata { topic: String, source: KafkaError },
    #[error(
        "topic {topic} does not exist (create it, or start the worker with --create-topics true)"
    )]
    Missing { topic: String },
    #[error(
        "input topics must have the same partition count, so that partition p of every input \
         and of the changelog hold the same keys; found {counts}"
    )]
    NotCoPartitioned { counts: String },
}

/// Names of the topics one worker uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    /// Prefix of catalogue topic names.
    pub prefix: String,
    /// The worker's consumer group, which names its own topics.
    pub group_id: String,
}

impl TopicNames {
    /// The broker name of a catalogue topic.
    pub fn of(&self, topic: Topic) -> String {
        format!("{}{}", self.prefix, topic.name())
    }

    /// The dead-letter topic.
    pub fn dead_letter(&self) -> String {
        format!("{}.dlq", self.group_id)
    }

    /// The changelog topic of a state store.
    pub fn changelog(&self, store: &str) -> String {
        format!("{}.{store}.changelog", self.group_id)
    }
}

/// Topic configs of a catalogue (event) topic the runtime creates: none, so the cluster's
/// defaults apply (on Apache Kafka `cleanup.policy=delete` and `retention.ms` from
/// `log.retention.*`, 7 days unless changed). `schemas/asyncapi.yaml` documents these configs
/// and a test keeps the two in step.
pub const EVENT_TOPIC_CONFIGS: &[(&str, &str)] = &[];

/// Topic configs of a dead-letter topic the runtime creates: none, the cluster's defaults.
pub const DEAD_LETTER_TOPIC_CONFIGS: &[(&str, &str)] = &[];

/// Topic configs of a changelog topic the runtime creates: compacted, so the latest state of
/// every key is kept for as long as the key lives (deleted keys are tombstoned).
pub const CHANGELOG_TOPIC_CONFIGS: &[(&str, &str)] = &[("cleanup.policy", "compact")];

/// A topic to create if it is missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// Broker name.
    pub name: String,
    /// Partitions when created.
    pub partitions: i32,
    /// Topic configs when created.
    pub configs: Vec<(&'static str, &'static str)>,
}

/// Creates the topics that do not exist yet; existing ones are left as they are.
pub async fn create_missing(
    admin_config: &ClientConfig,
    specs: &[TopicSpec],
    replication: i32,
    timeout: Duration,
) -> Result<(), TopicError> {
    let admin: AdminClient<DefaultClientContext> =
        admin_config.create().map_err(|error| TopicError::Create {
            topic: String::new(),
            reason: error.to_string(),
        })?;
    let new_topics: Vec<NewTopic<'_>> = specs
        .iter()
        .map(|spec| {
            spec.configs.iter().fold(
                NewTopic::new(
                    &spec.name,
                    spec.partitions,
                    TopicReplication::Fixed(replication),
                ),
                |topic, (key, value)| topic.set(key, value),
            )
        })
        .collect();
    let options = AdminOptions::new().operation_timeout(Some(timeout));
    let results = admin
        .create_topics(&new_topics, &options)
        .await
        .map_err(|error| TopicError::Create {
            topic: specs
                .iter()
                .map(|spec| spec.name.as_str())
                .collect::<Vec<_>>()
                .join(","),
            reason: error.to_string(),
        })?;
    for result in results {
        match result {
            Ok(topic) => tracing::info!(topic = %topic, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => {
                return Err(TopicError::Create {
                    topic,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Partition count of each topic, from the broker's metadata. Blocking: call off the runtime.
pub fn partition_counts(
    client: &ClientConfig,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<i32>, TopicError> {
    let mut config = client.clone();
    config.set("group.id", "metadata-probe");
    let consumer: BaseConsumer = config.create().map_err(|source| TopicError::Metadata {
        topic: topics.join(","),
        source,
    })?;
    topics
        .iter()
        .map(|topic| {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .map_err(|source| TopicError::Metadata {
                    topic: topic.clone(),
                    source,
                })?;
            match metadata.topics().first() {
                Some(found) if found.error().is_none() && !found.partitions().is_empty() => {
                    Ok(i32::try_from(found.partitions().len()).unwrap_or(i32::MAX))
                }
                _ => Err(TopicError::Missing {
                    topic: topic.clone(),
                }),
            }
        })
        .collect()
}

/// The one partition count all inputs share.
pub fn co_partitioned(topics: &[String], counts: &[i32]) -> Result<i32, TopicError> {
    match counts.split_first() {
        Some((first, rest)) if rest.iter().all(|count| count == first) => Ok(*first),
        _ => Err(TopicError::NotCoPartitioned {
            counts: topics
                .iter()
                .zip(counts)
                .map(|(topic, count)| format!("{topic}: {count}"))
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_prefix_and_the_group() {
        let names = TopicNames {
            prefix: "staging.".into(),
            group_id: "inventory".into(),
        };
        assert_eq!(
            names.of(Topic::StorefrontOrders),
            "staging.storefront.orders.v1"
        );
        assert_eq!(names.dead_letter(), "inventory.dlq");
        assert_eq!(names.changelog("stock"), "inventory.stock.changelog");
    }

    #[test]
    fn inputs_must_share_a_partition_count() {
        let topics = ["a".to_owned(), "b".to_owned()];
        assert_eq!(co_partitioned(&topics, &[6, 6]).ok(), Some(6));
        let error = co_partitioned(&topics, &[6, 3]).expect_err("differs");
        assert!(error.to_string().contains("a: 6, b: 3"), "{error}");
    }
}
