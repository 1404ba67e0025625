//! `retailctl timeline <order-id>`: every event of one order across the order-keyed topics, in
//! causal order, with the latency between steps and from the OrderPlaced.
//!
//! Order: an event comes after the event its `causation_id` names (when that one is among the
//! order's events); otherwise events go by `occurred_at`, then by the time they were written.
//! Latencies are between the times the events were written to Kafka (record timestamps, the
//! envelope's `occurred_at` where a record has none): a reaction's `occurred_at` is its cause's
//! write time by design (replays reproduce events exactly), so differences of `occurred_at`
//! alone would hide how long each worker took. The `lag` column is that time per event: how
//! long after its `occurred_at` it was written.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::io::Write;

use retail_codec::Codec;
use retail_events::{EventId, PartitionKey, Timestamp, Topic};
use serde_json::{Value as Json, json};

use crate::connection::Connection;
use crate::error::OpsError;
use crate::scan::{ReadSpec, Start, spawn_reader};

/// `retailctl timeline`.
#[derive(Debug, clap::Args)]
pub struct TimelineArgs {
    #[command(flatten)]
    pub connection: Connection,

    /// The order id (the record key of the order-keyed topics).
    pub order_id: String,

    /// One JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One event of the order, as found on a topic.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// Topic, partition and offset of its record.
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    /// The record's timestamp (ms since the epoch), if it has one.
    pub record_timestamp: Option<i64>,
    /// Simple record name.
    pub event_type: &'static str,
    /// The envelope's fields the ordering and the table use.
    pub event_id: EventId,
    pub causation_id: Option<EventId>,
    pub occurred_at: Timestamp,
    pub producer: String,
}

impl Found {
    /// When it was written, in µs since the epoch: the record timestamp, else `occurred_at`.
    pub fn written_micros(&self) -> i64 {
        self.record_timestamp
            .map_or(self.occurred_at.as_micros(), |millis| {
                millis.saturating_mul(1000)
            })
    }
}

/// One line of the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    /// The event.
    pub event: Found,
    /// Position (in the timeline) of the event that caused it, if that is in the timeline.
    pub cause: Option<usize>,
    /// Further records with the same event id (re-deliveries), not shown as steps.
    pub duplicates: usize,
    /// µs since the OrderPlaced was written; `None` without an OrderPlaced.
    pub since_placed: Option<i64>,
    /// µs since the previous step was written; `None` for the first.
    pub since_previous: Option<i64>,
    /// µs from its `occurred_at` to its record timestamp; `None` without a record timestamp.
    pub lag: Option<i64>,
}

/// Puts the order's events in causal order and computes the latencies. Pure.
pub fn build(found: Vec<Found>) -> Vec<Step> {
    // Re-delivered duplicates (same event id): keep the first record.
    let mut unique: Vec<Found> = Vec::with_capacity(found.len());
    let mut duplicates: HashMap<EventId, usize> = HashMap::new();
    let mut sorted = found;
    sorted.sort_by(|a, b| {
        (a.written_micros(), &a.topic, a.partition, a.offset).cmp(&(
            b.written_micros(),
            &b.topic,
            b.partition,
            b.offset,
        ))
    });
    for event in sorted {
        match duplicates.get_mut(&event.event_id) {
            Some(count) => *count += 1,
            None => {
                duplicates.insert(event.event_id, 0);
                unique.push(event);
            }
        }
    }

    let position: HashMap<EventId, usize> = unique
        .iter()
        .enumerate()
        .map(|(index, event)| (event.event_id, index))
        .collect();
    let parent: Vec<Option<usize>> = unique
        .iter()
        .enumerate()
        .map(|(index, event)| {
            event
                .causation_id
                .and_then(|cause| position.get(&cause).copied())
                .filter(|&cause| cause != index)
        })
        .collect();
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); unique.len()];
    for (index, cause) in parent.iter().enumerate() {
        if let Some(cause) = cause {
            children[*cause].push(index);
        }
    }
    let key = |index: usize| {
        let event = &unique[index];
        Reverse((
            event.occurred_at,
            event.written_micros(),
            event.topic.clone(),
            event.partition,
            event.offset,
            index,
        ))
    };
    // Kahn's algorithm: the earliest event whose cause is already placed goes next.
    let mut ready: BinaryHeap<_> = (0..unique.len())
        .filter(|&index| parent[index].is_none())
        .map(key)
        .collect();
    let mut placed = vec![false; unique.len()];
    let mut order: Vec<usize> = Vec::with_capacity(unique.len());
    while order.len() < unique.len() {
        let next = match ready.pop() {
            Some(Reverse((.., index))) => index,
            // A causation cycle (corrupt data): break it at the earliest unplaced event.
            None => match (0..unique.len())
                .filter(|&index| !placed[index])
                .min_by_key(|&index| key(index).0)
            {
                Some(index) => index,
                None => break,
            },
        };
        if placed[next] {
            continue;
        }
        placed[next] = true;
        order.push(next);
        for &child in &children[next] {
            if !placed[child] {
                ready.push(key(child));
            }
        }
    }

    let timeline_position: HashMap<usize, usize> = order
        .iter()
        .enumerate()
        .map(|(step, &index)| (index, step))
        .collect();
    let placed_at = order
        .iter()
        .map(|&index| &unique[index])
        .find(|event| event.event_type == "OrderPlaced")
        .map(Found::written_micros);
    let mut previous: Option<i64> = None;
    order
        .iter()
        .map(|&index| {
            let event = unique[index].clone();
            let written = event.written_micros();
            let step = Step {
                cause: parent[index].and_then(|cause| timeline_position.get(&cause).copied()),
                duplicates: duplicates.get(&event.event_id).copied().unwrap_or_default(),
                since_placed: placed_at.map(|placed| written - placed),
                since_previous: previous.map(|previous| written - previous),
                lag: event
                    .record_timestamp
                    .map(|_| written - event.occurred_at.as_micros()),
                event,
            };
            previous = Some(written);
            step
        })
        .collect()
}

/// A latency for people: `850us`, `12.3ms`, `1.25s`, `2m03s`, `1h05m`; negative with `-`.
pub fn format_latency(micros: i64) -> String {
    let sign = if micros < 0 { "-" } else { "" };
    let magnitude = micros.unsigned_abs();
    let text = if magnitude < 1_000 {
        format!("{magnitude}us")
    } else if magnitude < 1_000_000 {
        format!("{:.1}ms", magnitude as f64 / 1_000.0)
    } else if magnitude < 60_000_000 {
        format!("{:.2}s", magnitude as f64 / 1_000_000.0)
    } else if magnitude < 3_600_000_000 {
        let seconds = magnitude / 1_000_000;
        format!("{}m{:02}s", seconds / 60, seconds % 60)
    } else {
        let minutes = magnitude / 60_000_000;
        format!("{}h{:02}m", minutes / 60, minutes % 60)
    };
    format!("{sign}{text}")
}

/// RFC 3339 UTC with milliseconds, for a time in µs since the epoch.
pub fn format_time(micros: i64) -> String {
    let Ok(micros) = u64::try_from(micros) else {
        return format!("{micros}us");
    };
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_micros(micros);
    humantime::format_rfc3339_millis(time).to_string()
}

fn optional_latency(micros: Option<i64>) -> String {
    micros.map_or_else(
        || "-".to_owned(),
        |micros| format!("+{}", format_latency(micros)).replace("+-", "-"),
    )
}

/// The timeline as a text table.
pub fn render_table(order_id: &str, steps: &[Step]) -> String {
    let mut rows: Vec<[String; 9]> = vec![[
        "#".into(),
        "written at (UTC)".into(),
        "+placed".into(),
        "+step".into(),
        "lag".into(),
        "event".into(),
        "cause".into(),
        "producer".into(),
        "record".into(),
    ]];
    for (position, step) in steps.iter().enumerate() {
        let event = &step.event;
        let cause = match (step.cause, event.causation_id) {
            (Some(cause), _) => format!("#{}", cause + 1),
            (None, Some(_)) => "elsewhere".to_owned(),
            (None, None) => "-".to_owned(),
        };
        let mut record = format!("{}/{}@{}", event.topic, event.partition, event.offset);
        if step.duplicates > 0 {
            record.push_str(&format!(" (+{} duplicate)", step.duplicates));
        }
        rows.push([
            (position + 1).to_string(),
            format_time(event.written_micros()),
            optional_latency(step.since_placed),
            optional_latency(step.since_previous),
            step.lag.map_or_else(|| "-".to_owned(), format_latency),
            event.event_type.to_owned(),
            cause,
            event.producer.clone(),
            record,
        ]);
    }
    let mut widths = [0_usize; 9];
    for row in &rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = format!("order {order_id}: {} events\n", steps.len());
    for row in &rows {
        let line: Vec<String> = row
            .iter()
            .zip(widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        text.push_str(line.join("  ").trim_end());
        text.push('\n');
    }
    text
}

/// The timeline as one JSON document.
pub fn render_json(order_id: &str, steps: &[Step]) -> Json {
    let events: Vec<Json> = steps
        .iter()
        .enumerate()
        .map(|(position, step)| {
            let event = &step.event;
            json!({
                "step": position + 1,
                "event_type": event.event_type,
                "event_id": event.event_id.to_string(),
                "causation_id": event.causation_id.map(|id| id.to_string()),
                "cause_step": step.cause.map(|cause| cause + 1),
                "producer": event.producer,
                "occurred_at_us": event.occurred_at.as_micros(),
                "written_at_us": event.written_micros(),
                "since_placed_us": step.since_placed,
                "since_previous_us": step.since_previous,
                "lag_us": step.lag,
                "topic": event.topic,
                "partition": event.partition,
                "offset": event.offset,
                "duplicates": step.duplicates,
            })
        })
        .collect();
    json!({ "order_id": order_id, "events": events })
}

/// The topics whose key is the order id (every one carrying an order's events).
pub fn order_topics() -> impl Iterator<Item = Topic> {
    Topic::ALL
        .iter()
        .copied()
        .filter(|topic| topic.key() == PartitionKey::OrderId)
}

/// Collects and prints the order's timeline.
pub async fn timeline(args: &TimelineArgs, out: &mut impl Write) -> Result<(), OpsError> {
    let connection = &args.connection;
    let cluster = connection.cluster_topics_async().await?;
    let names: Vec<String> = order_topics()
        .map(|topic| connection.topic_name(topic))
        .collect();
    let mut specs = Vec::new();
    for name in &names {
        let partitions = connection.require_topic(&cluster, name)?;
        specs.push(ReadSpec {
            topic: name.clone(),
            partitions,
            start: Start::Beginning,
            follow: false,
            timeout: connection.timeout,
        });
    }
    let settings = connection.registry_settings()?;
    connection.registry_subjects(&settings).await?;
    let codec = Codec::new(Some(settings), &[]);

    let mut readers: Vec<_> = specs
        .into_iter()
        .map(|spec| spawn_reader(connection.reader_config(), spec))
        .collect();
    let mut found = Vec::new();
    for reader in &mut readers {
        while let Some(record) = reader.recv().await {
            let record = record?;
            if record.key_text() != Some(args.order_id.as_str()) {
                continue;
            }
            let Some(payload) = record.payload.as_deref() else {
                continue;
            };
            match codec.decode(payload).await {
                Ok(event) => {
                    let envelope = event.envelope();
                    found.push(Found {
                        topic: record.topic.clone(),
                        partition: record.partition,
                        offset: record.offset,
                        record_timestamp: record.timestamp,
                        event_type: event.name(),
                        event_id: envelope.event_id,
                        causation_id: envelope.causation_id,
                        occurred_at: envelope.occurred_at,
                        producer: envelope.producer.clone(),
                    });
                }
                Err(error) => {
                    tracing::warn!(topic = %record.topic, partition = record.partition, offset = record.offset, %error, "skipping an undecodable record of the order");
                    eprintln!(
                        "warning: {}/{}@{} has the order's key but does not decode: {error}",
                        record.topic, record.partition, record.offset
                    );
                }
            }
        }
    }
    if found.is_empty() {
        return Err(OpsError::UnknownOrder {
            order_id: args.order_id.clone(),
            topics: names.join(", "),
        });
    }
    let steps = build(found);
    if args.json {
        writeln!(out, "{}", render_json(&args.order_id, &steps))?;
    } else {
        write!(out, "{}", render_table(&args.order_id, &steps))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(
        event_type: &'static str,
        id: u128,
        cause: Option<u128>,
        occurred_ms: i64,
        written_ms: i64,
        offset: i64,
    ) -> Found {
        Found {
            topic: format!("{}.v1", event_type.to_lowercase()),
            partition: 0,
            offset,
            record_timestamp: Some(written_ms),
            event_type,
            event_id: EventId::from_u128(id),
            causation_id: cause.map(EventId::from_u128),
            occurred_at: Timestamp::from_micros(occurred_ms * 1000),
            producer: "test".into(),
        }
    }

    fn types(steps: &[Step]) -> Vec<&'static str> {
        steps.iter().map(|step| step.event.event_type).collect()
    }

    #[test]
    fn causes_come_before_their_effects_whatever_the_clocks_say() {
        // The fulfilment worker's clock is behind: its event claims to have happened before
        // the answers that caused it.
        let steps = build(vec![
            event("FulfilmentStarted", 5, Some(3), 900, 1_400, 0),
            event("PaymentAuthorized", 3, None, 1_200, 1_250, 0),
            event("StockReserved", 2, Some(1), 1_000, 1_100, 0),
            event("OrderPlaced", 1, None, 990, 1_000, 0),
        ]);
        assert_eq!(
            types(&steps),
            [
                "OrderPlaced",
                "StockReserved",
                "PaymentAuthorized",
                "FulfilmentStarted"
            ]
        );
        assert_eq!(steps[1].cause, Some(0));
        assert_eq!(steps[3].cause, Some(2));
        assert_eq!(steps[0].cause, None);
        // Latencies between write times, in µs.
        assert_eq!(steps[0].since_placed, Some(0));
        assert_eq!(steps[1].since_placed, Some(100_000));
        assert_eq!(steps[3].since_placed, Some(400_000));
        assert_eq!(steps[0].since_previous, None);
        assert_eq!(steps[2].since_previous, Some(150_000));
        assert_eq!(steps[3].lag, Some(500_000));
    }

    #[test]
    fn siblings_with_one_occurred_at_go_by_write_time_and_duplicates_fold() {
        let steps = build(vec![
            event("OrderPlaced", 1, None, 1_000, 1_001, 0),
            event("FraudCleared", 3, Some(1), 1_001, 1_050, 0),
            event("StockReserved", 2, Some(1), 1_001, 1_020, 0),
            event("StockReserved", 2, Some(1), 1_001, 1_090, 1),
        ]);
        assert_eq!(
            types(&steps),
            ["OrderPlaced", "StockReserved", "FraudCleared"]
        );
        assert_eq!(steps[1].duplicates, 1);
        assert_eq!(steps[1].event.offset, 0);
    }

    #[test]
    fn an_order_without_order_placed_has_no_placed_latency() {
        let steps = build(vec![event("PaymentFailed", 9, None, 5, 6, 0)]);
        assert_eq!(steps[0].since_placed, None);
        assert!(render_table("o-1", &steps).contains("PaymentFailed"));
    }

    #[test]
    fn latencies_read_well() {
        assert_eq!(format_latency(850), "850us");
        assert_eq!(format_latency(12_345), "12.3ms");
        assert_eq!(format_latency(1_250_000), "1.25s");
        assert_eq!(format_latency(123_000_000), "2m03s");
        assert_eq!(format_latency(3_900_000_000), "1h05m");
        assert_eq!(format_latency(-2_000), "-2.0ms");
        assert_eq!(optional_latency(Some(-2_000)), "-2.0ms");
        assert_eq!(optional_latency(Some(0)), "+0us");
        assert_eq!(optional_latency(None), "-");
    }

    #[test]
    fn the_table_numbers_steps_and_points_at_causes() {
        let steps = build(vec![
            event("OrderPlaced", 1, None, 1_000, 1_000, 4),
            event("StockReserved", 2, Some(1), 1_000, 1_012, 7),
            event("OrderPacked", 4, Some(99), 2_000, 2_000, 8),
        ]);
        let table = render_table("o-1", &steps);
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines[0], "order o-1: 3 events");
        assert!(lines[1].starts_with("#  written at (UTC)"), "{table}");
        assert!(
            lines[2].starts_with("1  1970-01-01T00:00:01.000Z  +0us"),
            "{table}"
        );
        assert!(
            lines[3].contains("+12.0ms") && lines[3].contains("#1"),
            "{table}"
        );
        assert!(lines[4].contains("elsewhere"), "{table}");
        assert!(lines[3].contains("stockreserved.v1/0@7"), "{table}");
        let json = render_json("o-1", &steps);
        assert_eq!(json["events"][1]["cause_step"], 1);
        assert_eq!(json["events"][1]["since_placed_us"], 12_000);
    }

    #[test]
    fn order_topics_are_the_order_keyed_ones() {
        let names: Vec<&str> = order_topics().map(Topic::name).collect();
        assert!(names.contains(&"storefront.orders.v1"));
        assert!(names.contains(&"shipping.shipments.v1"));
        assert!(names.contains(&"notification.notifications.v1"));
        assert!(!names.contains(&"warehouse.stock-adjustments.v1"));
    }
}
