//! Reading a topic's records: every partition from a start position to the end seen when the
//! read began (a snapshot, for `timeline` and `dlq`), or on for ever (`tail --follow`).
//!
//! librdkafka's consumer blocks, so it runs on its own thread and hands records over a bounded
//! channel; the reader stops when the receiver is dropped. Partitions are assigned directly
//! (no group membership, nothing committed): an operator's read never disturbs the workers'
//! groups.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::{Headers, Message};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use tokio::sync::mpsc;

use crate::error::OpsError;

/// How long one poll waits before the reader checks whether it should stop.
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// The reader's client context: the end of a partition is how a snapshot read finishes, not
/// an error, so librdkafka's "partition EOF" reports are not logged as errors.
struct ReaderContext;

impl ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(
            error,
            KafkaError::PartitionEOF(_) | KafkaError::Global(RDKafkaErrorCode::PartitionEOF)
        ) {
            tracing::debug!(%error, reason, "end of partition");
        } else {
            tracing::warn!(%error, reason, "kafka client error");
        }
    }
}

impl ConsumerContext for ReaderContext {}

/// One record as it is on the topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The topic it was read from.
    pub topic: String,
    /// Its partition.
    pub partition: i32,
    /// Its offset.
    pub offset: i64,
    /// Its timestamp in ms since the epoch, if it has one.
    pub timestamp: Option<i64>,
    /// Its key bytes.
    pub key: Option<Vec<u8>>,
    /// Its value bytes; `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
    /// Its headers in order; a header may have a null value.
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

impl Record {
    /// The key as text, if it is UTF-8 (every catalogue topic's key is).
    pub fn key_text(&self) -> Option<&str> {
        self.key
            .as_deref()
            .and_then(|key| std::str::from_utf8(key).ok())
    }
}

/// Where a read starts in each partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Start {
    /// The earliest offset still on the topic.
    Beginning,
    /// The end: only records written after the read began.
    End,
}

/// What to read.
#[derive(Debug, Clone)]
pub struct ReadSpec {
    /// The topic's broker name.
    pub topic: String,
    /// Its partition count (from the metadata the command fetched first).
    pub partitions: usize,
    /// Where to start.
    pub start: Start,
    /// Keep reading after the end seen at the start.
    pub follow: bool,
    /// Watermark and poll requests may take this long.
    pub timeout: Duration,
}

/// Starts reading on a thread of its own. The channel yields the records (per partition in
/// offset order) and ends after the last one, or with an error.
pub fn spawn_reader(
    config: ClientConfig,
    spec: ReadSpec,
) -> mpsc::Receiver<Result<Record, OpsError>> {
    let (sender, receiver) = mpsc::channel(1024);
    let thread = std::thread::Builder::new()
        .name(format!("read-{}", spec.topic))
        .spawn({
            let sender = sender.clone();
            move || {
                if let Err(error) = read(&config, &spec, &sender) {
                    // The receiver may be gone already; then nobody needs the error.
                    let _ignored = sender.blocking_send(Err(error));
                }
            }
        });
    if let Err(error) = thread {
        let _ignored = sender.try_send(Err(OpsError::Thread(error.to_string())));
    }
    receiver
}

/// Reads every record of `spec` into a vector (a snapshot read; never with `follow`).
pub async fn read_all(config: ClientConfig, spec: ReadSpec) -> Result<Vec<Record>, OpsError> {
    debug_assert!(!spec.follow, "a followed read never ends");
    let mut receiver = spawn_reader(config, spec);
    let mut records = Vec::new();
    while let Some(record) = receiver.recv().await {
        records.push(record?);
    }
    Ok(records)
}

fn kafka_error(topic: &str, what: &str, error: &KafkaError) -> OpsError {
    OpsError::Kafka {
        context: format!("{what} of topic {topic}"),
        reason: error.to_string(),
    }
}

fn read(
    config: &ClientConfig,
    spec: &ReadSpec,
    sender: &mpsc::Sender<Result<Record, OpsError>>,
) -> Result<(), OpsError> {
    let topic = spec.topic.as_str();
    let consumer: BaseConsumer<ReaderContext> = config
        .create_with_context(ReaderContext)
        .map_err(|error| kafka_error(topic, "creating a reader", &error))?;

    // The end of each partition when the read began: a snapshot read stops there.
    let mut ends: HashMap<i32, i64> = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in 0..i32::try_from(spec.partitions).unwrap_or(i32::MAX) {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, spec.timeout)
            .map_err(|error| kafka_error(topic, "reading the offsets", &error))?;
        let start = match spec.start {
            Start::Beginning => low,
            Start::End => high,
        };
        if spec.follow || start < high {
            assignment
                .add_partition_offset(topic, partition, Offset::Offset(start))
                .map_err(|error| kafka_error(topic, "assigning partitions", &error))?;
            ends.insert(partition, high);
        }
    }
    if assignment.count() == 0 {
        return Ok(());
    }
    consumer
        .assign(&assignment)
        .map_err(|error| kafka_error(topic, "assigning partitions", &error))?;

    loop {
        if sender.is_closed() || (!spec.follow && ends.is_empty()) {
            return Ok(());
        }
        let Some(polled) = consumer.poll(POLL_INTERVAL) else {
            if !spec.follow {
                // Offsets may stop short of the end (transaction markers take offsets too),
                // and an end-of-partition report may come without its partition: the position
                // says when a partition is done.
                forget_finished(&consumer, topic, &mut ends);
            }
            continue;
        };
        let message = match polled {
            Ok(message) => message,
            Err(KafkaError::PartitionEOF(partition)) => {
                // Nothing more for now; a snapshot read is done with this partition (offsets
                // may stop short of the end: transaction markers take offsets too).
                if !spec.follow {
                    ends.remove(&partition);
                }
                continue;
            }
            Err(KafkaError::MessageConsumption(RDKafkaErrorCode::UnknownTopicOrPartition)) => {
                return Err(OpsError::MissingTopic {
                    topic: topic.to_owned(),
                    bootstrap: String::from("the cluster"),
                    hint: String::new(),
                });
            }
            Err(error) => return Err(kafka_error(topic, "reading", &error)),
        };
        let partition = message.partition();
        let offset = message.offset();
        if !spec.follow {
            match ends.get(&partition) {
                Some(&end) if offset < end => {
                    if offset + 1 >= end {
                        ends.remove(&partition);
                    }
                }
                // Written after the read began, or the partition is done.
                _ => continue,
            }
        }
        let record = Record {
            topic: topic.to_owned(),
            partition,
            offset,
            timestamp: message.timestamp().to_millis(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            headers: message
                .headers()
                .map(|headers| {
                    headers
                        .iter()
                        .map(|header| (header.key.to_owned(), header.value.map(<[u8]>::to_vec)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        if sender.blocking_send(Ok(record)).is_err() {
            return Ok(());
        }
    }
}

/// Removes from `ends` the partitions whose read position has reached their end.
fn forget_finished(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    ends: &mut HashMap<i32, i64>,
) {
    let Ok(positions) = consumer.position() else {
        return;
    };
    ends.retain(|&partition, &mut end| {
        match positions
            .find_partition(topic, partition)
            .map(|element| element.offset())
        {
            Some(Offset::Offset(position)) => position < end,
            _ => true,
        }
    });
}
