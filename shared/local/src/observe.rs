//! What the saga did, read back from its topics: orders placed, how each ended (shipped, or
//! cancelled with a reason), saga latency from `OrderPlaced` to the terminal event, stock put in
//! by the warehouse and units shipped; and inventory's stock state from its changelog.
//!
//! The reader is assigned every partition at the offsets the topics had when the run began (no
//! consumer group, nothing committed), so it counts this run's records only, also on a broker
//! that kept earlier data. Latency uses the records' Kafka timestamps (producer create time),
//! which both the simulator and the workers set when they send.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};
use retail_codec::Codec;
use retail_events::fulfilment::CancellationReason;
use retail_events::{Event, Topic};
use retail_runtime::state::Entry;
use tokio_util::sync::CancellationToken;

use crate::error::LaunchError;

/// The topics the observer reads.
pub const OBSERVED: [Topic; 4] = [
    Topic::StorefrontOrders,
    Topic::FulfilmentOrders,
    Topic::ShippingShipments,
    Topic::WarehouseStockAdjustments,
];

/// How one order ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Shipped,
    Cancelled(CancellationReason),
}

/// The tallies, updated as records arrive.
#[derive(Debug, Default)]
pub struct Observed {
    /// Kafka timestamp (ms) of each placed order's `OrderPlaced`.
    placed: HashMap<String, i64>,
    /// The first terminal outcome of each order, and the event ids of every terminal event
    /// seen for it (a redelivered duplicate has the same id; a second outcome has another).
    terminal: HashMap<String, (Outcome, Vec<String>)>,
    /// Saga latencies in milliseconds, one per order that ended after it was placed.
    latencies_ms: Vec<u32>,
    /// Units the warehouse put in per SKU (initial stock and restocks), by adjustment event.
    stocked: BTreeMap<String, i64>,
    /// Units that left with the distinct shipments, per SKU.
    shipped_units: BTreeMap<String, i64>,
    /// Event ids seen, so a redelivered record counts once.
    seen: std::collections::HashSet<String>,
    /// Next offset to read per (topic, partition).
    positions: HashMap<(String, i32), i64>,
    /// Records that did not decode.
    pub undecodable: u64,
}

/// A snapshot of the figures.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    pub placed: u64,
    pub shipped: u64,
    pub cancelled: BTreeMap<String, u64>,
    /// Orders placed in this run without a terminal state yet.
    pub in_flight: u64,
    /// Orders that reached more than one distinct terminal event (must stay 0).
    pub multiple_terminal: u64,
    /// Terminal events of orders this run did not see placed.
    pub unmatched_terminal: u64,
    pub latency_p50_ms: Option<u32>,
    pub latency_p99_ms: Option<u32>,
    pub latency_max_ms: Option<u32>,
}

impl Figures {
    /// All cancellations.
    pub fn cancelled_total(&self) -> u64 {
        self.cancelled.values().sum()
    }

    /// Orders with a terminal state.
    pub fn terminal(&self) -> u64 {
        self.shipped + self.cancelled_total()
    }
}

/// The name of a cancellation reason as the schema spells it.
pub fn reason_name(reason: CancellationReason) -> &'static str {
    match reason {
        CancellationReason::Unknown => "UNKNOWN",
        CancellationReason::OutOfStock => "OUT_OF_STOCK",
        CancellationReason::PaymentFailed => "PAYMENT_FAILED",
        CancellationReason::FraudSuspected => "FRAUD_SUSPECTED",
        CancellationReason::Timeout => "TIMEOUT",
    }
}

fn percentile(sorted: &[u32], share: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    // Nearest rank.
    let rank = (share * sorted.len() as f64).ceil() as usize;
    sorted.get(rank.clamp(1, sorted.len()) - 1).copied()
}

impl Observed {
    /// Adds one decoded record read at `timestamp_ms`.
    pub fn add(&mut self, event: Event, timestamp_ms: i64) {
        // Each guard records the event id: a redelivered record counts once.
        match event {
            Event::OrderPlaced(placed)
                if self.seen.insert(placed.envelope.event_id.to_string()) =>
            {
                self.placed.entry(placed.order_id).or_insert(timestamp_ms);
            }
            Event::ShipmentCreated(shipment)
                if self.seen.insert(shipment.envelope.event_id.to_string()) =>
            {
                for line in &shipment.lines {
                    *self.shipped_units.entry(line.sku.clone()).or_default() +=
                        i64::from(line.quantity);
                }
                let id = shipment.envelope.event_id.to_string();
                self.terminal_event(shipment.order_id, Outcome::Shipped, id, timestamp_ms);
            }
            Event::OrderCancelled(cancelled)
                if self.seen.insert(cancelled.envelope.event_id.to_string()) =>
            {
                let id = cancelled.envelope.event_id.to_string();
                let outcome = Outcome::Cancelled(cancelled.reason);
                self.terminal_event(cancelled.order_id, outcome, id, timestamp_ms);
            }
            Event::StockAdjusted(adjusted)
                if self.seen.insert(adjusted.envelope.event_id.to_string()) =>
            {
                *self.stocked.entry(adjusted.sku).or_default() +=
                    i64::from(adjusted.quantity_delta);
            }
            _ => {}
        }
    }

    fn terminal_event(&mut self, order_id: String, outcome: Outcome, id: String, at_ms: i64) {
        match self.terminal.get_mut(&order_id) {
            Some((_, ids)) => ids.push(id),
            None => {
                if let Some(placed_ms) = self.placed.get(&order_id) {
                    let latency = u32::try_from((at_ms - placed_ms).max(0)).unwrap_or(u32::MAX);
                    self.latencies_ms.push(latency);
                }
                self.terminal.insert(order_id, (outcome, vec![id]));
            }
        }
    }

    /// The figures now.
    pub fn figures(&self) -> Figures {
        let mut figures = Figures {
            placed: self.placed.len() as u64,
            ..Figures::default()
        };
        for (order_id, (outcome, ids)) in &self.terminal {
            if !self.placed.contains_key(order_id) {
                figures.unmatched_terminal += 1;
                continue;
            }
            if ids.len() > 1 {
                figures.multiple_terminal += 1;
            }
            match outcome {
                Outcome::Shipped => figures.shipped += 1,
                Outcome::Cancelled(reason) => {
                    *figures
                        .cancelled
                        .entry(reason_name(*reason).to_owned())
                        .or_default() += 1;
                }
            }
        }
        figures.in_flight = figures.placed.saturating_sub(figures.terminal());
        let mut sorted = self.latencies_ms.clone();
        sorted.sort_unstable();
        figures.latency_p50_ms = percentile(&sorted, 0.50);
        figures.latency_p99_ms = percentile(&sorted, 0.99);
        figures.latency_max_ms = sorted.last().copied();
        figures
    }

    /// Units put in per SKU during the run.
    pub fn stocked(&self) -> &BTreeMap<String, i64> {
        &self.stocked
    }

    /// Units shipped per SKU during the run.
    pub fn shipped_units(&self) -> &BTreeMap<String, i64> {
        &self.shipped_units
    }

    /// Whether the reader has read every partition up to `ends`.
    fn caught_up(&self, ends: &HashMap<(String, i32), i64>) -> bool {
        ends.iter().all(|(key, end)| {
            self.positions
                .get(key)
                .is_some_and(|position| position >= end)
        })
    }
}

/// Client settings for the launcher's own readers.
pub fn client(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "retail-local-observer")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .set("socket.timeout.ms", "10000");
    config
}

/// The high watermark of every partition of `topics` (blocking: call off the runtime).
pub fn ends(
    bootstrap: &str,
    topics: &[String],
    partitions: i32,
) -> Result<HashMap<(String, i32), i64>, LaunchError> {
    let consumer: BaseConsumer = client(bootstrap)
        .create()
        .map_err(LaunchError::kafka("creating a watermark reader"))?;
    let mut ends = HashMap::new();
    for topic in topics {
        for partition in 0..partitions {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(30))
                .map_err(LaunchError::kafka(format!(
                    "reading the end of {topic}[{partition}]"
                )))?;
            ends.insert((topic.clone(), partition), high);
        }
    }
    Ok(ends)
}

/// Reads the saga's topics into shared tallies until stopped.
#[derive(Debug)]
pub struct Observer {
    /// The tallies, shared with the view.
    pub observed: Arc<Mutex<Observed>>,
    /// The observed topics by broker name.
    topics: Vec<String>,
    bootstrap: String,
    partitions: i32,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Observer {
    /// Starts reading `topics` from `starts` (offsets when the run began).
    pub fn start(
        bootstrap: &str,
        codec: Arc<Codec>,
        starts: &HashMap<(String, i32), i64>,
        partitions: i32,
    ) -> Result<Self, LaunchError> {
        let consumer: StreamConsumer = client(bootstrap)
            .create()
            .map_err(LaunchError::kafka("creating the observer"))?;
        let mut assignment = TopicPartitionList::new();
        for ((topic, partition), offset) in starts {
            assignment
                .add_partition_offset(topic, *partition, Offset::Offset(*offset))
                .map_err(LaunchError::kafka("assigning the observer"))?;
        }
        consumer
            .assign(&assignment)
            .map_err(LaunchError::kafka("assigning the observer"))?;
        let observed = Arc::new(Mutex::new(Observed::default()));
        {
            let mut guard = observed.lock().unwrap_or_else(PoisonError::into_inner);
            guard.positions = starts.clone();
        }
        let stop = CancellationToken::new();
        let task = tokio::spawn(read(consumer, codec, Arc::clone(&observed), stop.clone()));
        let mut topics: Vec<String> = starts.keys().map(|(topic, _)| topic.clone()).collect();
        topics.sort();
        topics.dedup();
        Ok(Self {
            observed,
            topics,
            bootstrap: bootstrap.to_owned(),
            partitions,
            stop,
            task,
        })
    }

    /// The figures now.
    pub fn figures(&self) -> Figures {
        self.observed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .figures()
    }

    /// Reads up to the topics' current ends (at most `within`), then stops.
    pub async fn finish(self, within: Duration) -> Result<Observed, LaunchError> {
        let (bootstrap, topics, partitions) =
            (self.bootstrap.clone(), self.topics.clone(), self.partitions);
        let ends = tokio::task::spawn_blocking(move || ends(&bootstrap, &topics, partitions))
            .await
            .map_err(|error| LaunchError::Task(error.to_string()))??;
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            let done = self
                .observed
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .caught_up(&ends);
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.stop.cancel();
        self.task
            .await
            .map_err(|error| LaunchError::Task(error.to_string()))?;
        let observed = Arc::try_unwrap(self.observed)
            .map(|mutex| mutex.into_inner().unwrap_or_else(PoisonError::into_inner))
            .unwrap_or_else(|shared| {
                std::mem::take(&mut *shared.lock().unwrap_or_else(PoisonError::into_inner))
            });
        Ok(observed)
    }
}

async fn read(
    consumer: StreamConsumer,
    codec: Arc<Codec>,
    observed: Arc<Mutex<Observed>>,
    stop: CancellationToken,
) {
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            received = consumer.recv() => match received {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "observer read failed; retrying");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let key = (message.topic().to_owned(), message.partition());
        let next = message.offset() + 1;
        let timestamp = message.timestamp().to_millis().unwrap_or_default();
        let event = match message.payload() {
            Some(payload) => codec.decode(payload).await.ok(),
            None => None,
        };
        let mut guard = observed.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Some(event) => guard.add(event, timestamp),
            None => guard.undecodable += 1,
        }
        guard.positions.insert(key, next);
    }
}

/// Inventory's stock state per SKU, read from the stock stage's changelog (the latest record
/// per key) up to the end of every partition; empty if the changelog does not exist yet.
/// Blocking: call off the runtime.
pub fn stock_state(
    bootstrap: &str,
    changelog: &str,
    partitions: i32,
) -> Result<BTreeMap<String, inventory::SkuState>, LaunchError> {
    let consumer: BaseConsumer = client(bootstrap)
        .create()
        .map_err(LaunchError::kafka("creating the changelog reader"))?;
    let metadata = consumer
        .fetch_metadata(Some(changelog), Duration::from_secs(30))
        .map_err(LaunchError::kafka(format!(
            "reading metadata of {changelog}"
        )))?;
    let exists = metadata
        .topics()
        .first()
        .is_some_and(|topic| topic.error().is_none() && !topic.partitions().is_empty());
    if !exists {
        return Ok(BTreeMap::new());
    }
    let mut assignment = TopicPartitionList::new();
    let mut remaining: HashMap<i32, i64> = HashMap::new();
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(changelog, partition, Duration::from_secs(30))
            .map_err(LaunchError::kafka(format!(
                "reading the end of {changelog}[{partition}]"
            )))?;
        if high > low {
            remaining.insert(partition, high);
            assignment
                .add_partition_offset(changelog, partition, Offset::Beginning)
                .map_err(LaunchError::kafka("assigning the changelog reader"))?;
        }
    }
    let mut state = BTreeMap::new();
    if remaining.is_empty() {
        return Ok(state);
    }
    consumer
        .assign(&assignment)
        .map_err(LaunchError::kafka("assigning the changelog reader"))?;
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !remaining.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(LaunchError::Task(format!(
                "changelog {changelog} not read to its end within 120 s: {remaining:?}"
            )));
        }
        let Some(received) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let message = received.map_err(LaunchError::kafka(format!("reading {changelog}")))?;
        if remaining
            .get(&message.partition())
            .is_some_and(|high| message.offset() + 1 >= *high)
        {
            remaining.remove(&message.partition());
        }
        let Some(key) = message.key() else { continue };
        let key = String::from_utf8_lossy(key).into_owned();
        let value = match message.payload() {
            None => None,
            Some(bytes) => {
                postcard::from_bytes::<Entry<inventory::SkuState>>(bytes)
                    .map_err(|error| {
                        LaunchError::Task(format!(
                            "a record of {changelog} does not decode: {error}"
                        ))
                    })?
                    .value
            }
        };
        match value {
            Some(value) => state.insert(key, value),
            None => state.remove(&key),
        };
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use proptest::arbitrary::any;
    use proptest::strategy::{Strategy, ValueTree};
    use proptest::test_runner::TestRunner;
    use retail_events::fulfilment::OrderCancelled;
    use retail_events::shipping::ShipmentCreated;
    use retail_events::storefront::OrderPlaced;
    use retail_events::warehouse::StockAdjusted;

    use super::*;

    /// An arbitrary value of `T` (the fields a test does not set do not matter).
    fn some<T: proptest::arbitrary::Arbitrary>() -> T {
        any::<T>()
            .new_tree(&mut TestRunner::deterministic())
            .expect("a value")
            .current()
    }

    fn placed(order: &str) -> Event {
        let mut event: OrderPlaced = some();
        event.order_id = order.into();
        event.envelope.event_id = retail_events::EventId::random();
        Event::OrderPlaced(event)
    }

    fn shipped(order: &str, sku: &str, units: i32) -> ShipmentCreated {
        let mut event: ShipmentCreated = some();
        event.order_id = order.into();
        event.envelope.event_id = retail_events::EventId::random();
        let mut line = event.lines.first().cloned().unwrap_or_else(some);
        line.sku = sku.into();
        line.quantity = units;
        event.lines = vec![line];
        event
    }

    fn cancelled(order: &str, reason: CancellationReason) -> Event {
        let mut event: OrderCancelled = some();
        event.order_id = order.into();
        event.reason = reason;
        event.envelope.event_id = retail_events::EventId::random();
        Event::OrderCancelled(event)
    }

    #[test]
    fn orders_end_once_duplicates_count_once_and_second_outcomes_are_flagged() {
        let mut observed = Observed::default();
        for order in ["a", "b", "c"] {
            observed.add(placed(order), 1_000);
        }
        let shipment = shipped("a", "SKU-1", 2);
        observed.add(Event::ShipmentCreated(shipment.clone()), 3_000);
        // A redelivered copy of the same event changes nothing.
        observed.add(Event::ShipmentCreated(shipment), 3_500);
        observed.add(cancelled("b", CancellationReason::PaymentFailed), 2_000);
        // A second, different terminal event for b is a saga bug the figures must show.
        observed.add(cancelled("b", CancellationReason::Timeout), 9_000);
        let mut stock: StockAdjusted = some();
        stock.sku = "SKU-1".into();
        stock.quantity_delta = 10;
        observed.add(Event::StockAdjusted(stock.clone()), 500);
        observed.add(Event::StockAdjusted(stock), 600);

        let figures = observed.figures();
        assert_eq!(figures.placed, 3);
        assert_eq!(figures.shipped, 1);
        assert_eq!(
            figures.cancelled,
            BTreeMap::from([("PAYMENT_FAILED".to_owned(), 1)])
        );
        assert_eq!(figures.in_flight, 1);
        assert_eq!(figures.multiple_terminal, 1);
        // Latencies 2000 ms (a) and 1000 ms (b); the duplicate and the second outcome add none.
        assert_eq!(figures.latency_p50_ms, Some(1_000));
        assert_eq!(figures.latency_p99_ms, Some(2_000));
        assert_eq!(observed.shipped_units().get("SKU-1"), Some(&2));
        assert_eq!(observed.stocked().get("SKU-1"), Some(&10));
    }

    #[test]
    fn terminal_events_of_orders_placed_before_the_run_are_kept_apart() {
        let mut observed = Observed::default();
        observed.add(cancelled("old", CancellationReason::Timeout), 1_000);
        let figures = observed.figures();
        assert_eq!(figures.unmatched_terminal, 1);
        assert_eq!(figures.terminal(), 0);
        assert_eq!(figures.latency_p50_ms, None);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let sorted: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&sorted, 0.5), Some(50));
        assert_eq!(percentile(&sorted, 0.99), Some(99));
        assert_eq!(percentile(&[7], 0.99), Some(7));
        assert_eq!(percentile(&[], 0.5), None);
    }
}
