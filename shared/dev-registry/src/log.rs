//! Durable storage: the registry's log of [`LogRecord`]s, kept in a compacted Kafka topic.
//!
//! [`SchemaLog`] is what the HTTP layer writes through; [`KafkaLog`] is the real implementation
//! (used by the binary) and [`MemoryLog`] an in-process one for tests.
//!
//! Like Confluent's registry, the topic has one partition and the registry is its only writer:
//! run a single instance per topic. On startup [`KafkaLog::open`] creates the topic if needed and
//! replays it up to its high watermark into the [`Store`]; afterwards each write is produced
//! (`acks=all`, idempotent) and only applied to memory once the broker confirmed it.
//!
//! librdkafka calls that can block (client teardown, consumer polls, flush) run on
//! `spawn_blocking` threads, never on the async runtime.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;
use rdkafka::{Offset, TopicPartitionList};
use tokio_util::sync::CancellationToken;

use crate::error::RegistryError;
use crate::record::{Decoded, LogRecord, decode, encode};
use crate::store::Store;

/// The only partition of the schemas topic.
const PARTITION: i32 = 0;

/// How long one consumer poll waits during replay before checking for progress.
const REPLAY_POLL: Duration = Duration::from_millis(200);

/// Where durable registry records go.
pub trait SchemaLog: Send + Sync + 'static {
    /// Appends `records` in order and returns once all are durable.
    ///
    /// On failure, [`AppendError::delivered`] says how many leading records were durably
    /// written anyway, so the caller can apply exactly those and keep memory equal to the log.
    fn append(&self, records: &[LogRecord])
    -> impl Future<Output = Result<(), AppendError>> + Send;
}

/// An append that did not complete.
#[derive(Debug, thiserror::Error)]
#[error("appending to the schemas log failed after {delivered} record(s): {error}")]
pub struct AppendError {
    /// Leading records that are durable despite the failure.
    pub delivered: usize,
    /// Why the next record was not written.
    #[source]
    pub error: LogError,
}

impl From<AppendError> for RegistryError {
    fn from(append: AppendError) -> Self {
        match append.error {
            LogError::ProduceTimeout { .. } => RegistryError::OperationTimeout(format!(
                "Write operation timed out while writing to the Kafka store: {}",
                append.error
            )),
            other => RegistryError::Store(format!(
                "Write operation failed while writing to the Kafka store: {other}"
            )),
        }
    }
}

/// Failures of the Kafka log.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// librdkafka refused the client configuration.
    #[error("creating the kafka {client} client failed: {source}")]
    Client {
        /// Which client (`admin`, `consumer`, `producer`).
        client: &'static str,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// The topic could not be created (and did not exist already).
    #[error("creating topic {topic} failed: {reason}")]
    CreateTopic {
        /// The schemas topic.
        topic: String,
        /// Broker or client error.
        reason: String,
    },
    /// The topic's metadata is unusable (missing, or more than one partition).
    #[error("topic {topic} is not usable as a schemas topic: {reason}")]
    Topic {
        /// The schemas topic.
        topic: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading the topic back failed.
    #[error("replaying topic {topic} failed: {source}")]
    Replay {
        /// The schemas topic.
        topic: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// Replay made no progress for the configured timeout before reaching the high watermark.
    #[error(
        "replaying topic {topic} stalled at offset {position} of {high_watermark} \
         (no record for {timeout:?})"
    )]
    ReplayStalled {
        /// The schemas topic.
        topic: String,
        /// Next offset the consumer would read.
        position: i64,
        /// Offset replay has to reach.
        high_watermark: i64,
        /// How long it waited.
        timeout: Duration,
    },
    /// The broker did not confirm a record within `message.timeout.ms`; it may still have
    /// been written.
    #[error("producing to {topic} timed out after {timeout:?}")]
    ProduceTimeout {
        /// The schemas topic.
        topic: String,
        /// The delivery timeout.
        timeout: Duration,
    },
    /// The broker refused a record.
    #[error("producing to {topic} failed: {source}")]
    Produce {
        /// The schemas topic.
        topic: String,
        /// librdkafka's reason.
        #[source]
        source: KafkaError,
    },
    /// A `spawn_blocking` task panicked or was cancelled.
    #[error("kafka worker thread failed: {0}")]
    Worker(#[from] tokio::task::JoinError),
    /// Shutdown was requested before the log was open.
    #[error("opening the schemas log was cancelled by shutdown")]
    Cancelled,
    /// A failure injected into [`MemoryLog`] by a test.
    #[error("injected failure: {0}")]
    Injected(String),
}

/// How to reach the schemas topic.
#[derive(Clone)]
pub struct KafkaLogConfig {
    /// `bootstrap.servers` for all three clients.
    pub bootstrap_servers: String,
    /// Further librdkafka properties for every client (security settings: `security.protocol`,
    /// `sasl.*`, `ssl.*`), from `KAFKA_CONFIG_<NAME>` variables.
    pub client_settings: Vec<(String, String)>,
    /// The compacted schemas topic (`_schemas`).
    pub topic: String,
    /// Replication factor used when the registry creates the topic.
    pub replication_factor: i32,
    /// Budget for each Kafka operation (admin requests, metadata, replay progress, delivery).
    pub timeout: Duration,
}

impl KafkaLogConfig {
    /// A client configuration with the bootstrap servers and the extra settings.
    fn client(&self) -> ClientConfig {
        let mut client = ClientConfig::new();
        client.set("bootstrap.servers", &self.bootstrap_servers);
        for (key, value) in &self.client_settings {
            client.set(key, value);
        }
        client
    }
}

/// Settings are listed by name only: their values may be secrets (`sasl.password`).
impl std::fmt::Debug for KafkaLogConfig {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("KafkaLogConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field(
                "client_settings",
                &self
                    .client_settings
                    .iter()
                    .map(|(key, _)| key.as_str())
                    .collect::<Vec<_>>(),
            )
            .field("topic", &self.topic)
            .field("replication_factor", &self.replication_factor)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// What startup replay read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplaySummary {
    /// Records applied to the store.
    pub applied: usize,
    /// Records of kinds this registry does not use.
    pub skipped: usize,
    /// Records that could not be decoded (logged and ignored).
    pub invalid: usize,
    /// The offset replay read up to.
    pub high_watermark: i64,
}

/// The schemas topic, opened and replayed. Clones share one producer.
#[derive(Clone)]
pub struct KafkaLog {
    /// Delivers records; cloning shares the one underlying librdkafka producer.
    producer: FutureProducer,
    /// The schemas topic.
    topic: String,
    /// Delivery timeout, also set as `message.timeout.ms` so librdkafka gives up at the same time.
    timeout: Duration,
}

impl fmt::Debug for KafkaLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaLog")
            .field("topic", &self.topic)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl KafkaLog {
    /// Creates the topic if missing, replays it into `store`, and returns a log ready to append.
    ///
    /// `cancel` aborts startup (with [`LogError::Cancelled`]) within about one poll interval; the
    /// blocking threads check it so that a shutdown during startup does not wait for Kafka
    /// timeouts.
    pub async fn open(
        config: &KafkaLogConfig,
        store: &mut Store,
        cancel: &CancellationToken,
    ) -> Result<(KafkaLog, ReplaySummary), LogError> {
        let admin_config = config.clone();
        let admin_cancel = cancel.clone();
        tokio::task::spawn_blocking(move || ensure_topic(&admin_config, &admin_cancel)).await??;

        let replay_config = config.clone();
        let replay_cancel = cancel.clone();
        let replayed =
            tokio::task::spawn_blocking(move || replay(&replay_config, &replay_cancel)).await??;
        for record in &replayed.records {
            store.apply(record);
        }
        let summary = ReplaySummary {
            applied: replayed.records.len(),
            skipped: replayed.skipped,
            invalid: replayed.invalid,
            high_watermark: replayed.high_watermark,
        };

        let timeout_ms = config.timeout.as_millis().to_string();
        let producer: FutureProducer = config
            .client()
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", &timeout_ms)
            // A registration is one tiny record that a client waits for: do not batch.
            .set("linger.ms", "0")
            .create()
            .map_err(|source| LogError::Client {
                client: "producer",
                source,
            })?;
        Ok((
            KafkaLog {
                producer,
                topic: config.topic.clone(),
                timeout: config.timeout,
            },
            summary,
        ))
    }

    /// Waits (off the runtime) for anything still queued; called once the server has stopped.
    pub async fn close(&self) -> Result<(), LogError> {
        let producer = self.producer.clone();
        let timeout = self.timeout;
        tokio::task::spawn_blocking(move || producer.flush(timeout))
            .await?
            .map_err(|source| LogError::Produce {
                topic: self.topic.clone(),
                source,
            })
    }
}

impl SchemaLog for KafkaLog {
    async fn append(&self, records: &[LogRecord]) -> Result<(), AppendError> {
        // One at a time: the next record is only sent once the previous one is durable, so a
        // failure leaves a clean prefix written (see `AppendError::delivered`). Multi-record
        // writes are rare (deleting a subject) and this is a development registry.
        for (index, record) in records.iter().enumerate() {
            let encoded = encode(record);
            let mut message = FutureRecord::<str, str>::to(&self.topic)
                .partition(PARTITION)
                .key(&encoded.key);
            if let Some(value) = encoded.value.as_deref() {
                message = message.payload(value);
            }
            match self
                .producer
                .send(message, Timeout::After(self.timeout))
                .await
            {
                Ok(delivery) => {
                    tracing::debug!(
                        topic = %self.topic,
                        partition = delivery.partition,
                        offset = delivery.offset,
                        tombstone = encoded.value.is_none(),
                        "record appended"
                    );
                }
                Err((source, _message)) => {
                    let error = match source {
                        KafkaError::MessageProduction(RDKafkaErrorCode::MessageTimedOut) => {
                            LogError::ProduceTimeout {
                                topic: self.topic.clone(),
                                timeout: self.timeout,
                            }
                        }
                        source => LogError::Produce {
                            topic: self.topic.clone(),
                            source,
                        },
                    };
                    return Err(AppendError {
                        delivered: index,
                        error,
                    });
                }
            }
        }
        Ok(())
    }
}

/// How long the registry asks whether its topic exists before it tries to create it.
const EXISTS_TIMEOUT: Duration = Duration::from_secs(2);

/// Whether the broker already has the topic. Asked before creating it, so a broker without the
/// CreateTopics API (librdkafka's mock cluster, which `retail-local --broker mock` hosts) or a
/// cluster that denies the registry topic creation works with a topic made beforehand. Any
/// error reads as "not known to exist", and creation then reports the real problem. Asks once,
/// for at most [`EXISTS_TIMEOUT`], so an unreachable broker or a shutdown during start-up is not
/// held up here. Blocking.
fn topic_exists(config: &KafkaLogConfig, cancel: &CancellationToken) -> bool {
    if cancel.is_cancelled() {
        return false;
    }
    let Ok(consumer) = config.client().create::<BaseConsumer>() else {
        return false;
    };
    consumer
        .fetch_metadata(Some(&config.topic), config.timeout.min(EXISTS_TIMEOUT))
        .is_ok_and(|metadata| {
            metadata.topics().iter().any(|topic| {
                topic.name() == config.topic
                    && topic.error().is_none()
                    && !topic.partitions().is_empty()
            })
        })
}

/// Creates the topic (one partition, compacted); an existing topic is fine. Blocking.
fn ensure_topic(config: &KafkaLogConfig, cancel: &CancellationToken) -> Result<(), LogError> {
    if topic_exists(config, cancel) {
        tracing::debug!(topic = %config.topic, "schemas topic already exists");
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> =
        config
            .client()
            .create()
            .map_err(|source| LogError::Client {
                client: "admin",
                source,
            })?;
    let topic = NewTopic::new(
        &config.topic,
        1,
        TopicReplication::Fixed(config.replication_factor),
    )
    .set("cleanup.policy", "compact");
    let options = AdminOptions::new()
        .request_timeout(Some(config.timeout))
        .operation_timeout(Some(config.timeout));
    // Blocking here is fine: this runs on a `spawn_blocking` thread. The admin client is also
    // dropped here, as its teardown joins librdkafka threads.
    let created = tokio::runtime::Handle::current().block_on(async {
        tokio::select! {
            results = admin.create_topics([&topic], &options) => Some(results),
            () = cancel.cancelled() => None,
        }
    });
    let results = created
        .ok_or(LogError::Cancelled)?
        .map_err(|error| LogError::CreateTopic {
            topic: config.topic.clone(),
            reason: error.to_string(),
        })?;
    for result in results {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created schemas topic"),
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                tracing::debug!(topic = %name, "schemas topic already exists");
            }
            Err((name, code)) => {
                return Err(LogError::CreateTopic {
                    topic: name,
                    reason: code.to_string(),
                });
            }
        }
    }
    Ok(())
}

/// Everything replay read, decoded.
struct Replayed {
    records: Vec<LogRecord>,
    skipped: usize,
    invalid: usize,
    high_watermark: i64,
}

/// Reads partition 0 from the beginning up to the high watermark seen at start. Blocking.
///
/// No consumer group: the partition is assigned directly and nothing is ever committed. The
/// random `group.id` only satisfies librdkafka's configuration check.
fn replay(config: &KafkaLogConfig, cancel: &CancellationToken) -> Result<Replayed, LogError> {
    let consumer: BaseConsumer = config
        .client()
        .set(
            "group.id",
            format!("dev-registry-replay-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(|source| LogError::Client {
            client: "consumer",
            source,
        })?;
    let replay_error = |source: KafkaError| LogError::Replay {
        topic: config.topic.clone(),
        source,
    };

    wait_for_single_partition(&consumer, config, cancel)?;
    let (low, high_watermark) = consumer
        .fetch_watermarks(&config.topic, PARTITION, config.timeout)
        .map_err(replay_error)?;
    let mut replayed = Replayed {
        records: Vec::new(),
        skipped: 0,
        invalid: 0,
        high_watermark,
    };
    if high_watermark <= low {
        return Ok(replayed);
    }

    let mut assignment = TopicPartitionList::new();
    assignment
        .add_partition_offset(&config.topic, PARTITION, Offset::Beginning)
        .map_err(replay_error)?;
    consumer.assign(&assignment).map_err(replay_error)?;

    let mut last_progress = Instant::now();
    loop {
        if cancel.is_cancelled() {
            return Err(LogError::Cancelled);
        }
        match consumer.poll(REPLAY_POLL) {
            Some(Ok(message)) => {
                last_progress = Instant::now();
                let offset = message.offset();
                match decode(message.key(), message.payload()) {
                    Ok(Decoded::Record(record)) => replayed.records.push(record),
                    Ok(Decoded::Skipped { reason }) => {
                        replayed.skipped += 1;
                        tracing::debug!(offset, %reason, "skipping schemas record");
                    }
                    Err(error) => {
                        replayed.invalid += 1;
                        tracing::warn!(offset, %error, "ignoring undecodable schemas record");
                    }
                }
                // The high watermark is the offset *after* the last record.
                if offset + 1 >= high_watermark {
                    return Ok(replayed);
                }
            }
            Some(Err(error)) => return Err(replay_error(error)),
            None => {
                // Compaction and transaction markers leave offset gaps, so the last offset below
                // the watermark may never arrive as a message: trust the consumer's position.
                let position = current_position(&consumer, &config.topic);
                if position.is_some_and(|position| position >= high_watermark) {
                    return Ok(replayed);
                }
                if last_progress.elapsed() >= config.timeout {
                    return Err(LogError::ReplayStalled {
                        topic: config.topic.clone(),
                        position: position.unwrap_or(-1),
                        high_watermark,
                        timeout: config.timeout,
                    });
                }
            }
        }
    }
}

/// Waits until the broker reports the topic (a just-created topic can take a moment) and checks
/// it has exactly one partition: ordering, and therefore ids and versions, rely on that.
fn wait_for_single_partition(
    consumer: &BaseConsumer,
    config: &KafkaLogConfig,
    cancel: &CancellationToken,
) -> Result<(), LogError> {
    let deadline = Instant::now() + config.timeout;
    loop {
        if cancel.is_cancelled() {
            return Err(LogError::Cancelled);
        }
        let metadata = consumer
            .fetch_metadata(Some(&config.topic), config.timeout)
            .map_err(|source| LogError::Replay {
                topic: config.topic.clone(),
                source,
            })?;
        let topic = metadata
            .topics()
            .iter()
            .find(|topic| topic.name() == config.topic);
        let problem = match topic {
            None => "missing from metadata".to_owned(),
            Some(topic) => match (topic.error(), topic.partitions().len()) {
                (Some(error), _) => format!("broker reports {:?}", RDKafkaErrorCode::from(error)),
                (None, 1) => return Ok(()),
                (None, 0) => "no partitions yet".to_owned(),
                (None, partitions) => {
                    return Err(LogError::Topic {
                        topic: config.topic.clone(),
                        reason: format!("it has {partitions} partitions, a schemas topic needs 1"),
                    });
                }
            },
        };
        if Instant::now() >= deadline {
            return Err(LogError::Topic {
                topic: config.topic.clone(),
                reason: problem,
            });
        }
        tracing::debug!(topic = %config.topic, %problem, "waiting for schemas topic metadata");
        std::thread::sleep(REPLAY_POLL);
    }
}

fn current_position(consumer: &BaseConsumer, topic: &str) -> Option<i64> {
    let positions = consumer.position().ok()?;
    match positions.find_partition(topic, PARTITION)?.offset() {
        Offset::Offset(offset) => Some(offset),
        _ => None,
    }
}

/// How an injected [`MemoryLog`] failure surfaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFailure {
    /// Like a broker error (HTTP 500, error code 50001).
    Store,
    /// Like a delivery timeout (HTTP 500, error code 50002).
    Timeout,
}

/// An in-process [`SchemaLog`] for tests: keeps appended records in a vector.
#[derive(Debug, Clone, Default)]
pub struct MemoryLog {
    /// Shared so a test can keep a handle while the router owns another.
    inner: Arc<Mutex<MemoryLogState>>,
}

#[derive(Debug, Default)]
struct MemoryLogState {
    /// Everything appended so far, in order.
    records: Vec<LogRecord>,
    /// Makes the next append fail after writing this many records.
    fail_next: Option<(usize, InjectedFailure)>,
}

impl MemoryLog {
    /// An empty log.
    pub fn new() -> Self {
        MemoryLog::default()
    }

    /// Everything appended so far.
    pub fn records(&self) -> Vec<LogRecord> {
        self.lock().records.clone()
    }

    /// Makes the next append write `after` records and then fail with `failure`.
    pub fn fail_next_append(&self, after: usize, failure: InjectedFailure) {
        self.lock().fail_next = Some((after, failure));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryLogState> {
        // A panicking test thread cannot leave the vector half-updated; keep going.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl SchemaLog for MemoryLog {
    async fn append(&self, records: &[LogRecord]) -> Result<(), AppendError> {
        let mut state = self.lock();
        match state.fail_next.take() {
            None => {
                state.records.extend_from_slice(records);
                Ok(())
            }
            Some((after, failure)) => {
                let delivered = after.min(records.len());
                state.records.extend_from_slice(&records[..delivered]);
                let error = match failure {
                    InjectedFailure::Store => LogError::Injected("broker unavailable".to_owned()),
                    InjectedFailure::Timeout => LogError::ProduceTimeout {
                        topic: "memory".to_owned(),
                        timeout: Duration::ZERO,
                    },
                };
                Err(AppendError { delivered, error })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compatibility::CompatibilityLevel;

    fn config_record(level: CompatibilityLevel) -> LogRecord {
        LogRecord::Config {
            subject: None,
            compatibility: level,
        }
    }

    #[tokio::test]
    async fn memory_log_keeps_records_in_order() {
        let log = MemoryLog::new();
        let handle = log.clone();
        log.append(&[config_record(CompatibilityLevel::Full)])
            .await
            .expect("appends");
        log.append(&[config_record(CompatibilityLevel::None)])
            .await
            .expect("appends");
        assert_eq!(
            handle.records(),
            vec![
                config_record(CompatibilityLevel::Full),
                config_record(CompatibilityLevel::None)
            ]
        );
    }

    #[tokio::test]
    async fn injected_failures_report_the_durable_prefix() {
        let log = MemoryLog::new();
        log.fail_next_append(1, InjectedFailure::Timeout);
        let records = [
            config_record(CompatibilityLevel::Full),
            config_record(CompatibilityLevel::None),
        ];
        let error = log.append(&records).await.expect_err("fails");
        assert_eq!(error.delivered, 1);
        assert_eq!(log.records(), records[..1].to_vec());
        assert!(matches!(
            RegistryError::from(error),
            RegistryError::OperationTimeout(_)
        ));
        // Only the next append fails.
        log.append(&records[1..]).await.expect("appends");
        assert_eq!(log.records(), records.to_vec());

        log.fail_next_append(0, InjectedFailure::Store);
        let error = log.append(&records).await.expect_err("fails");
        assert_eq!(error.delivered, 0);
        assert!(matches!(
            RegistryError::from(error),
            RegistryError::Store(_)
        ));
    }
}
