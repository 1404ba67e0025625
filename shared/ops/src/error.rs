//! What can go wrong in a `retailctl` command, each with a message an operator can act on: the
//! address that did not answer, the topic that is missing, the order that has no events.

use retail_events::catalogue::CatalogueError;
use retail_runtime::topics::TopicError;

/// A command failed. `main` prints the message and exits with status 1.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The bootstrap servers did not answer a metadata request in time.
    #[error("cannot reach the Kafka cluster at {bootstrap} within {timeout}: {reason} ({hint})")]
    BrokerUnreachable {
        /// The bootstrap servers tried.
        bootstrap: String,
        /// The metadata timeout, as people write it.
        timeout: String,
        /// librdkafka's error: the authentication or TLS failure if it reported one.
        reason: String,
        /// What to check.
        hint: &'static str,
    },

    /// A Kafka client could not be created or a request failed.
    #[error("kafka: {context}: {reason}")]
    Kafka {
        /// What was being done, naming the topic where there is one.
        context: String,
        /// librdkafka's error.
        reason: String,
    },

    /// A topic the command reads or writes does not exist.
    #[error("topic {topic} does not exist on the cluster at {bootstrap}{hint}")]
    MissingTopic {
        /// The topic's broker name.
        topic: String,
        /// The bootstrap servers asked.
        bootstrap: String,
        /// What may have been meant, or empty.
        hint: String,
    },

    /// Creating or inspecting the catalogue topics failed.
    #[error(transparent)]
    Topic(#[from] TopicError),

    /// Existing topics have another partition count than the one asked for.
    #[error(
        "partition counts differ from --topic-partitions (WORKER_TOPIC_PARTITIONS) {expected}: {found}; \
         the workers need co-partitioned topics, so recreate them or use the same count"
    )]
    PartitionMismatch {
        /// The partition count asked for.
        expected: i32,
        /// `topic: count` of each mismatching topic.
        found: String,
    },

    /// The schema registry did not answer.
    #[error(
        "schema registry at {url} does not answer: {reason} \
         (check --schema-registry-url / SCHEMA_REGISTRY_URL)"
    )]
    RegistryUnreachable {
        /// The registry URL, credentials hidden.
        url: String,
        /// The client's error.
        reason: String,
    },

    /// The schema registry answered with an error.
    #[error("schema registry at {url} refused {what}: {reason}")]
    RegistryRefused {
        /// The registry URL, credentials hidden.
        url: String,
        /// The request, naming the subject.
        what: String,
        /// The registry's answer.
        reason: String,
    },

    /// Some subjects' local schemas are not compatible with the registry's latest versions.
    #[error("{count} subject(s) incompatible with the registry's latest version: {subjects}")]
    Incompatible {
        /// How many.
        count: usize,
        /// Their names, comma-separated.
        subjects: String,
    },

    /// Some subjects could not be registered.
    #[error("{count} subject(s) not registered: {subjects}")]
    NotRegistered {
        /// How many.
        count: usize,
        /// `subject (reason)`, semicolon-separated.
        subjects: String,
    },

    /// The schema files do not compose into the catalogue's event schemas.
    #[error("schemas in {dir}: {source}")]
    Catalogue {
        /// The folder read.
        dir: String,
        /// What is wrong with its files.
        source: CatalogueError,
    },

    /// A file or folder could not be read.
    #[error("reading {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// The OS error.
        source: std::io::Error,
    },

    /// No event of the order is on any of the scanned topics.
    #[error("unknown order id {order_id}: no event with this key on {topics}")]
    UnknownOrder {
        /// The order id asked for.
        order_id: String,
        /// The topics scanned, comma-separated.
        topics: String,
    },

    /// Arguments that do not make sense together, or a bad value.
    #[error("{0}")]
    Usage(String),

    /// Writing the output failed (a closed pipe is not an error: see `is_broken_pipe`).
    #[error("writing the output: {0}")]
    Output(#[from] std::io::Error),

    /// A worker thread of the command failed.
    #[error("internal: {0}")]
    Thread(String),
}

impl OpsError {
    /// True when stdout was closed by the reader (`retailctl tail ... | head`): not a failure.
    pub fn is_broken_pipe(&self) -> bool {
        matches!(self, Self::Output(error) if error.kind() == std::io::ErrorKind::BrokenPipe)
    }
}
