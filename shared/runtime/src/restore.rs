//! Restoring partition state from the changelog topic when partitions are assigned.
//!
//! Runs on the processing thread, inside the assignment callback, so no record of a partition is
//! handled before its state is back. Reads every assigned changelog partition from the start to
//! the high watermark taken after the assignment: the previous owner flushed its writes before
//! giving the partition up, so they are all below that watermark.
//!
//! The restore consumer reads `read_committed` (librdkafka's default, set here explicitly): in
//! exactly-once mode, records of aborted transactions are not state. Its end is then the last
//! stable offset, and the last record may sit below the high watermark (a transaction marker
//! takes the final offset), so a partition is also complete when librdkafka reports its end
//! (`PartitionEOF`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::state::{CorruptChangelog, DedupPolicy, PartitionStore};

/// What a restore read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RestoreStats {
    /// Changelog records applied.
    pub records: u64,
    /// Bytes of keys and values read.
    pub bytes: u64,
    /// Wall time of the restore.
    pub elapsed: Duration,
}

/// Why a restore failed; fatal for the worker, which must not process without its state.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("reading changelog {topic}: {source}")]
    Kafka { topic: String, source: KafkaError },
    #[error("changelog {topic} partition {partition}: {source}")]
    Corrupt {
        topic: String,
        partition: i32,
        source: CorruptChangelog,
    },
    #[error(
        "changelog {topic} partition {partition}: not read up to offset {high_watermark} within {timeout:?}"
    )]
    Timeout {
        topic: String,
        partition: i32,
        high_watermark: i64,
        timeout: Duration,
    },
}

/// The restore consumer's context: an end-of-partition event still queued when the restore is
/// done (it ended on the last record's offset) reaches the error callback as the consumer
/// closes; it is not an error.
struct RestoreContext;

impl ClientContext for RestoreContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            tracing::trace!(reason, "end of a changelog partition");
        } else {
            tracing::warn!(%error, reason, "restore consumer error");
        }
    }
}

impl ConsumerContext for RestoreContext {}

/// Reads changelog partitions `partitions` of `topic` into fresh stores.
///
/// `client` carries the connection settings (bootstrap servers, security); the restore consumer
/// joins no group and commits nothing.
pub fn restore<S: Serialize + DeserializeOwned + Clone>(
    client: &ClientConfig,
    topic: &str,
    partitions: &[i32],
    policy: DedupPolicy,
    timeout: Duration,
) -> Result<HashMap<i32, (PartitionStore<S>, RestoreStats)>, RestoreError> {
    let kafka = |source| RestoreError::Kafka {
        topic: topic.to_owned(),
        source,
    };
    let mut config = client.clone();
    config
        .set("group.id", format!("restore-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("enable.partition.eof", "true");
    let consumer: BaseConsumer<RestoreContext> =
        config.create_with_context(RestoreContext).map_err(kafka)?;

    let mut stores = HashMap::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for &partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, timeout)
            .map_err(kafka)?;
        stores.insert(
            partition,
            (PartitionStore::new(policy), RestoreStats::default()),
        );
        if high > low {
            remaining.insert(partition, high);
            assignment
                .add_partition_offset(topic, partition, Offset::Beginning)
                .map_err(kafka)?;
        }
    }
    if remaining.is_empty() {
        return Ok(stores);
    }
    consumer.assign(&assignment).map_err(kafka)?;

    let started = Instant::now();
    while !remaining.is_empty() {
        if started.elapsed() > timeout {
            let (&partition, &high_watermark) = remaining.iter().next().unwrap_or((&-1, &-1));
            return Err(RestoreError::Timeout {
                topic: topic.to_owned(),
                partition,
                high_watermark,
                timeout,
            });
        }
        let Some(result) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = match result {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(partition)) => {
                remaining.remove(&partition);
                continue;
            }
            Err(error) => return Err(kafka(error)),
        };
        let partition = message.partition();
        let Some((store, stats)) = stores.get_mut(&partition) else {
            continue;
        };
        let key = String::from_utf8_lossy(message.key().unwrap_or_default());
        store
            .restore_record(&key, message.payload())
            .map_err(|source| RestoreError::Corrupt {
                topic: topic.to_owned(),
                partition,
                source,
            })?;
        stats.records += 1;
        stats.bytes += (message.key().map_or(0, <[u8]>::len)
            + message.payload().map_or(0, <[u8]>::len)) as u64;
        if remaining
            .get(&partition)
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&partition);
        }
    }
    let elapsed = started.elapsed();
    for (_, stats) in stores.values_mut() {
        stats.elapsed = elapsed;
    }
    Ok(stores)
}
