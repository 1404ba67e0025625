//! `retailctl dlq list` and `retailctl dlq replay`: the dead-letter topics the runtime writes
//! (`<group>.dlq`, see `retail_runtime::topics`), whose records are the original record
//! untouched plus `dlq.*` headers saying why and from where (`retail_runtime::dead_letter`).
//!
//! Replay re-injects a dead letter into its original topic with the original key, value bytes,
//! headers (minus `dlq.*`) and timestamp, through the runtime's partitioner (so the key lands
//! where the original did). What was replayed is recorded in a ledger topic next to the DLQ,
//! `<dlq-topic>.replayed` (one partition, compacted, key `<partition>/<offset>` of the dead
//! letter), written after the broker acknowledged the replayed record: a second run skips every
//! dead letter in the ledger, whatever filters either run used. A ledger rather than a consumer
//! group's offset, because a filtered replay (one error class, one offset) must not mark the
//! records it skipped as done. If `retailctl` dies between the acknowledgement and the ledger
//! write, the next run replays that record again; the workers drop it as a duplicate by its
//! `event_id`.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use retail_runtime::config::PARTITIONER;
use retail_runtime::dead_letter::{DeadLetter, HEADER_PREFIX};
use retail_runtime::topics::{TopicSpec, create_missing};
use serde_json::{Value as Json, json};

use crate::connection::Connection;
use crate::error::OpsError;
use crate::scan::{ReadSpec, Record, Start, read_all};
use crate::tail::{hex, record_metadata};
use crate::timeline::format_time;

/// Suffix of the dead-letter topics the runtime creates.
pub const DLQ_SUFFIX: &str = ".dlq";
/// Suffix of the replay ledger next to a DLQ topic.
pub const LEDGER_SUFFIX: &str = ".replayed";

/// `retailctl dlq ...`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// Dead-lettered records with their reason and origin.
    List(ListArgs),
    /// Re-injects dead-lettered records into their original topics (after a fix).
    Replay(ReplayArgs),
}

/// `retailctl dlq list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// The worker (consumer group) whose DLQ to list: `<worker>.dlq` [default: every `*.dlq`
    /// topic].
    #[arg(long, conflicts_with = "topic")]
    pub worker: Option<String>,

    /// The DLQ topic to list.
    #[arg(long)]
    pub topic: Option<String>,

    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `retailctl dlq replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// The DLQ topic to replay from, e.g. `inventory.dlq`.
    #[arg(long)]
    pub topic: String,

    #[command(flatten)]
    pub filter: FilterArgs,

    /// Show what would be replayed; produce and record nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// JSON lines instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Which dead letters to replay; all given conditions must hold.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct FilterArgs {
    /// Only dead letters in this partition of the DLQ topic.
    #[arg(long)]
    pub partition: Option<i32>,

    /// Only the dead letter at this offset of the DLQ topic (with --partition when the topic
    /// has several).
    #[arg(long)]
    pub offset: Option<i64>,

    /// Only dead letters written at or after this time: RFC 3339 (`2025-01-31T12:00:00Z`) or a
    /// duration ago (`2h`).
    #[arg(long)]
    pub since: Option<String>,

    /// Only dead letters of this error class (`dlq.error.class`, e.g. `incompatible_reader`);
    /// repeatable.
    #[arg(long = "error-class")]
    pub error_classes: Vec<String>,
}

/// [`FilterArgs`] resolved against the clock.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub partition: Option<i32>,
    pub offset: Option<i64>,
    /// Earliest DLQ record timestamp, ms since the epoch.
    pub since_millis: Option<i64>,
    pub error_classes: Vec<String>,
}

impl Filter {
    /// Resolves `--since` against `now_millis`.
    pub fn new(args: &FilterArgs, now_millis: i64) -> Result<Self, OpsError> {
        Ok(Self {
            partition: args.partition,
            offset: args.offset,
            since_millis: args
                .since
                .as_deref()
                .map(|since| parse_since(since, now_millis))
                .transpose()?,
            error_classes: args.error_classes.clone(),
        })
    }

    /// Whether a dead letter (the DLQ record and its parsed headers) is selected. Pure.
    pub fn matches(&self, record: &Record, dead_letter: &DeadLetter) -> bool {
        self.partition
            .is_none_or(|partition| record.partition == partition)
            && self.offset.is_none_or(|offset| record.offset == offset)
            && self
                .since_millis
                .is_none_or(|since| record.timestamp.is_some_and(|at| at >= since))
            && (self.error_classes.is_empty()
                || self.error_classes.contains(&dead_letter.error_class))
    }
}

/// `--since`: RFC 3339, or a duration before `now_millis`.
pub fn parse_since(text: &str, now_millis: i64) -> Result<i64, OpsError> {
    if let Ok(time) = humantime::parse_rfc3339_weak(text) {
        let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
        return Ok(i64::try_from(since.as_millis()).unwrap_or(i64::MAX));
    }
    match humantime::parse_duration(text) {
        Ok(ago) => {
            Ok(now_millis.saturating_sub(i64::try_from(ago.as_millis()).unwrap_or(i64::MAX)))
        }
        Err(_) => Err(OpsError::Usage(format!(
            "--since {text:?} is neither an RFC 3339 time (2025-01-31T12:00:00Z) nor a duration ago (2h)"
        ))),
    }
}

/// The original record's headers: the DLQ record's minus the `dlq.*` ones. Pure.
pub fn original_headers(headers: &[(String, Option<Vec<u8>>)]) -> Vec<(String, Option<Vec<u8>>)> {
    headers
        .iter()
        .filter(|(name, _)| !name.starts_with(HEADER_PREFIX))
        .cloned()
        .collect()
}

/// The runtime's `dlq.*` headers of a DLQ record, if it has them all.
pub fn dead_letter_of(record: &Record) -> Option<DeadLetter> {
    DeadLetter::from_headers(
        record
            .headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_deref())),
    )
}

/// The ledger key of a dead letter.
fn ledger_key(partition: i32, offset: i64) -> String {
    format!("{partition}/{offset}")
}

/// The DLQ topic's dead letters, read from the beginning to the current end.
async fn read_topic(
    connection: &Connection,
    topic: &str,
    partitions: usize,
) -> Result<Vec<Record>, OpsError> {
    read_all(
        connection.reader_config(),
        ReadSpec {
            topic: topic.to_owned(),
            partitions,
            start: Start::Beginning,
            follow: false,
            timeout: connection.timeout,
        },
    )
    .await
}

/// The `(partition, offset)` of every dead letter of `dlq_topic` already replayed.
async fn replayed(
    connection: &Connection,
    cluster: &BTreeMap<String, usize>,
    dlq_topic: &str,
) -> Result<HashSet<(i32, i64)>, OpsError> {
    let ledger = format!("{dlq_topic}{LEDGER_SUFFIX}");
    let Some(&partitions) = cluster.get(&ledger) else {
        return Ok(HashSet::new());
    };
    let records = read_topic(connection, &ledger, partitions).await?;
    Ok(records
        .iter()
        .filter(|record| record.payload.is_some())
        .filter_map(|record| {
            let (partition, offset) = record.key_text()?.split_once('/')?;
            Some((partition.parse().ok()?, offset.parse().ok()?))
        })
        .collect())
}

/// The DLQ topics `list` reads.
fn dlq_topics(args: &ListArgs, cluster: &BTreeMap<String, usize>) -> Vec<String> {
    match (&args.topic, &args.worker) {
        (Some(topic), _) => vec![topic.clone()],
        (None, Some(worker)) => vec![format!("{worker}{DLQ_SUFFIX}")],
        (None, None) => cluster
            .keys()
            .filter(|name| name.ends_with(DLQ_SUFFIX))
            .cloned()
            .collect(),
    }
}

/// A DLQ record as a JSON object: metadata, original headers, the dead letter's fields.
fn dead_letter_json(record: &Record, dead_letter: Option<&DeadLetter>, replayed: bool) -> Json {
    let mut object = record_metadata(record);
    let shown = Record {
        headers: original_headers(&record.headers),
        ..record.clone()
    };
    object.insert(
        "headers".into(),
        record_metadata(&shown)
            .remove("headers")
            .unwrap_or_default(),
    );
    object.insert(
        "dead_letter".into(),
        dead_letter.map_or(Json::Null, |letter| {
            json!({
                "error_class": letter.error_class,
                "message": letter.message,
                "original_topic": letter.topic,
                "original_partition": letter.partition,
                "original_offset": letter.offset,
                "original_timestamp": letter.timestamp,
                "worker": letter.worker,
                "attempts": letter.attempts,
            })
        }),
    );
    object.insert("replayed".into(), json!(replayed));
    if let Some(payload) = &record.payload {
        object.insert("value_bytes".into(), json!(payload.len()));
    }
    Json::Object(object)
}

/// Prints every dead letter of the selected DLQ topics.
pub async fn list(args: &ListArgs, out: &mut impl Write) -> Result<(), OpsError> {
    let connection = &args.connection;
    let cluster = connection.cluster_topics_async().await?;
    let topics = dlq_topics(args, &cluster);
    if topics.is_empty() && !args.json {
        writeln!(out, "no dead-letter topics (*{DLQ_SUFFIX}) on the cluster")?;
        return Ok(());
    }
    let mut rows: Vec<[String; 8]> = Vec::new();
    for topic in &topics {
        let partitions = connection.require_topic(&cluster, topic)?;
        let done = replayed(connection, &cluster, topic).await?;
        for record in read_topic(connection, topic, partitions).await? {
            let dead_letter = dead_letter_of(&record);
            let was_replayed = done.contains(&(record.partition, record.offset));
            if args.json {
                writeln!(
                    out,
                    "{}",
                    dead_letter_json(&record, dead_letter.as_ref(), was_replayed)
                )?;
                continue;
            }
            let at = record.timestamp.map_or_else(
                || "-".to_owned(),
                |millis| format_time(millis.saturating_mul(1000)),
            );
            let row = match &dead_letter {
                Some(letter) => [
                    format!("{}/{}@{}", record.topic, record.partition, record.offset),
                    at,
                    letter.worker.clone(),
                    letter.error_class.clone(),
                    letter.attempts.to_string(),
                    format!("{}/{}@{}", letter.topic, letter.partition, letter.offset),
                    if was_replayed { "yes" } else { "no" }.to_owned(),
                    letter.message.clone(),
                ],
                None => [
                    format!("{}/{}@{}", record.topic, record.partition, record.offset),
                    at,
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "-".into(),
                    "not a dead letter: dlq.* headers missing".into(),
                ],
            };
            rows.push(row);
        }
    }
    if !args.json {
        write_table(
            out,
            [
                "dead letter",
                "written at (UTC)",
                "worker",
                "class",
                "attempts",
                "original",
                "replayed",
                "reason",
            ],
            &rows,
        )?;
        writeln!(
            out,
            "{} dead letter(s) in {}",
            rows.len(),
            topics.join(", ")
        )?;
    }
    Ok(())
}

/// A left-aligned table; the last column is not padded.
fn write_table<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> Result<(), OpsError> {
    let mut widths = header.map(str::len);
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let header = header.map(str::to_owned);
    for row in std::iter::once(&header).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|since| i64::try_from(since.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or_default()
}

/// One dead letter to replay.
struct Selected {
    record: Record,
    dead_letter: DeadLetter,
}

/// Replays the selected dead letters of one DLQ topic and records them in its ledger.
pub async fn replay(args: &ReplayArgs, out: &mut impl Write) -> Result<(), OpsError> {
    let connection = &args.connection;
    let filter = Filter::new(&args.filter, now_millis())?;
    let cluster = connection.cluster_topics_async().await?;
    let dlq_topic = args.topic.as_str();
    let partitions = connection.require_topic(&cluster, dlq_topic)?;
    if filter.offset.is_some() && filter.partition.is_none() && partitions > 1 {
        return Err(OpsError::Usage(format!(
            "--offset needs --partition: {dlq_topic} has {partitions} partitions"
        )));
    }
    let done = replayed(connection, &cluster, dlq_topic).await?;

    let (mut selected, mut already, mut filtered_out, mut not_dead_letters) =
        (Vec::new(), 0_usize, 0_usize, 0_usize);
    for record in read_topic(connection, dlq_topic, partitions).await? {
        let Some(dead_letter) = dead_letter_of(&record) else {
            not_dead_letters += 1;
            continue;
        };
        if !filter.matches(&record, &dead_letter) {
            filtered_out += 1;
        } else if done.contains(&(record.partition, record.offset)) {
            already += 1;
        } else {
            selected.push(Selected {
                record,
                dead_letter,
            });
        }
    }
    for item in &selected {
        connection.require_topic(&cluster, &item.dead_letter.topic)?;
    }

    let mut replayed_count = 0_usize;
    if !selected.is_empty() && !args.dry_run {
        let ledger = format!("{dlq_topic}{LEDGER_SUFFIX}");
        if !cluster.contains_key(&ledger) {
            let spec = TopicSpec {
                name: ledger.clone(),
                partitions: 1,
                configs: vec![("cleanup.policy", "compact")],
            };
            create_missing(
                &connection.client_config(),
                &[spec],
                1,
                connection.timeout.max(Duration::from_secs(30)),
            )
            .await?;
        }
        let producer: FutureProducer = connection
            .client_config()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", PARTITIONER)
            .create()
            .map_err(|error| OpsError::Kafka {
                context: "creating the replay producer".to_owned(),
                reason: error.to_string(),
            })?;
        let send_timeout = connection.timeout.max(Duration::from_secs(30));
        for item in &selected {
            let record = &item.record;
            let target = &item.dead_letter.topic;
            let delivered = send(
                &producer,
                target,
                record,
                item.dead_letter.timestamp,
                send_timeout,
            )
            .await
            .map_err(|reason| OpsError::Kafka {
                context: format!(
                    "replaying {dlq_topic}/{}@{} to {target} ({replayed_count} replayed before it)",
                    record.partition, record.offset
                ),
                reason,
            })?;
            let entry = json!({
                "replayed_at_ms": now_millis(),
                "to_topic": target,
                "to_partition": delivered.0,
                "to_offset": delivered.1,
            })
            .to_string();
            let key = ledger_key(record.partition, record.offset);
            producer
                .send(
                    FutureRecord::to(&ledger).key(&key).payload(&entry),
                    send_timeout,
                )
                .await
                .map_err(|(error, _)| OpsError::Kafka {
                    context: format!(
                        "recording the replay of {dlq_topic}/{key} in {ledger} (it was replayed to {target}/{}@{}; a second run would replay it again)",
                        delivered.0, delivered.1
                    ),
                    reason: error.to_string(),
                })?;
            replayed_count += 1;
            report(out, args.json, "replayed", dlq_topic, item, Some(delivered))?;
        }
    } else {
        for item in &selected {
            report(out, args.json, "would replay", dlq_topic, item, None)?;
        }
    }
    let summary = format!(
        "{dlq_topic}: {} {}, {already} already replayed, {filtered_out} filtered out, {not_dead_letters} without dlq headers",
        if args.dry_run {
            selected.len()
        } else {
            replayed_count
        },
        if args.dry_run {
            "would be replayed"
        } else {
            "replayed"
        },
    );
    if args.json {
        eprintln!("{summary}");
    } else {
        writeln!(out, "{summary}")?;
    }
    Ok(())
}

/// Sends one dead letter's original record; the partition and offset it got.
async fn send(
    producer: &FutureProducer,
    target: &str,
    record: &Record,
    original_timestamp: Option<i64>,
    timeout: Duration,
) -> Result<(i32, i64), String> {
    let headers = original_headers(&record.headers).iter().fold(
        OwnedHeaders::new(),
        |headers, (key, value)| {
            headers.insert(Header {
                key,
                value: value.as_deref(),
            })
        },
    );
    let mut future_record = FutureRecord::<[u8], [u8]>::to(target).headers(headers);
    if let Some(key) = &record.key {
        future_record = future_record.key(key);
    }
    if let Some(payload) = &record.payload {
        future_record = future_record.payload(payload);
    }
    if let Some(timestamp) = original_timestamp {
        future_record = future_record.timestamp(timestamp);
    }
    producer
        .send(future_record, timeout)
        .await
        .map(|delivery| (delivery.partition, delivery.offset))
        .map_err(|(error, _)| error.to_string())
}

fn report(
    out: &mut impl Write,
    json: bool,
    action: &str,
    dlq_topic: &str,
    item: &Selected,
    delivered: Option<(i32, i64)>,
) -> Result<(), OpsError> {
    let record = &item.record;
    let letter = &item.dead_letter;
    if json {
        let line = json!({
            "action": action,
            "dlq_topic": dlq_topic,
            "dlq_partition": record.partition,
            "dlq_offset": record.offset,
            "key": record.key_text(),
            "key_hex": record.key.as_deref().filter(|_| record.key_text().is_none()).map(hex),
            "error_class": letter.error_class,
            "to_topic": letter.topic,
            "to_partition": delivered.map(|(partition, _)| partition),
            "to_offset": delivered.map(|(_, offset)| offset),
        });
        writeln!(out, "{line}")?;
    } else {
        let to = match delivered {
            Some((partition, offset)) => format!("{}/{partition}@{offset}", letter.topic),
            None => letter.topic.clone(),
        };
        writeln!(
            out,
            "{action} {dlq_topic}/{}@{} ({}, key {}) -> {to}",
            record.partition,
            record.offset,
            letter.error_class,
            record.key_text().unwrap_or("-"),
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dead_letter_record(
        partition: i32,
        offset: i64,
        timestamp: i64,
        class: &str,
    ) -> (Record, DeadLetter) {
        let letter = DeadLetter {
            error_class: class.into(),
            message: "boom".into(),
            topic: "storefront.orders.v1".into(),
            partition: 2,
            offset: 41,
            timestamp: Some(1_000),
            worker: "inventory".into(),
            attempts: 1,
        };
        let mut headers = vec![("traceparent".to_owned(), Some(b"00-1".to_vec()))];
        headers.extend(
            letter
                .headers()
                .into_iter()
                .map(|(name, value)| (name, Some(value))),
        );
        let record = Record {
            topic: "inventory.dlq".into(),
            partition,
            offset,
            timestamp: Some(timestamp),
            key: Some(b"order-1".to_vec()),
            payload: Some(vec![0, 0, 0, 0, 1]),
            headers,
        };
        (record, letter)
    }

    #[test]
    fn filters_combine_partition_offset_time_and_class() {
        let (record, letter) = dead_letter_record(1, 5, 10_000, "malformed_body");
        assert!(Filter::default().matches(&record, &letter));
        let only = |filter: Filter| filter.matches(&record, &letter);
        assert!(only(Filter {
            partition: Some(1),
            offset: Some(5),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            partition: Some(0),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            offset: Some(4),
            ..Filter::default()
        }));
        assert!(only(Filter {
            since_millis: Some(10_000),
            ..Filter::default()
        }));
        assert!(!only(Filter {
            since_millis: Some(10_001),
            ..Filter::default()
        }));
        assert!(only(Filter {
            error_classes: vec!["x".into(), "malformed_body".into()],
            ..Filter::default()
        }));
        assert!(!only(Filter {
            error_classes: vec!["x".into()],
            ..Filter::default()
        }));
    }

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(parse_since("1970-01-01T00:00:10Z", 0).ok(), Some(10_000));
        assert_eq!(
            parse_since("2h", 10_000_000).ok(),
            Some(10_000_000 - 7_200_000)
        );
        let error = parse_since("yesterday", 0).expect_err("not a time");
        assert!(
            error.to_string().contains("--since \"yesterday\""),
            "{error}"
        );
    }

    #[test]
    fn replay_keeps_the_original_headers_and_drops_the_dlq_ones() {
        let (record, letter) = dead_letter_record(0, 0, 0, "malformed_body");
        assert_eq!(dead_letter_of(&record), Some(letter));
        assert_eq!(
            original_headers(&record.headers),
            vec![("traceparent".to_owned(), Some(b"00-1".to_vec()))]
        );
    }

    #[test]
    fn a_record_without_dlq_headers_is_not_a_dead_letter() {
        let (mut record, _) = dead_letter_record(0, 0, 0, "x");
        record
            .headers
            .retain(|(name, _)| name != "dlq.original.topic");
        assert_eq!(dead_letter_of(&record), None);
        let json = dead_letter_json(&record, None, false);
        assert_eq!(json["dead_letter"], Json::Null);
    }
}
