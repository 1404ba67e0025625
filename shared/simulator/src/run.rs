//! The simulator's Kafka side, kept thin: it sends what the plan says when the plan says, and
//! hands `LowStock` alerts to the [`Restocker`].
//!
//! A run: register the schemas, create missing topics, start reading `LowStock` from the
//! partitions' current ends, send the initial stock and wait until the broker has it, then place
//! orders and send payment answers at their planned times (offsets from one start instant, so
//! a slow send delays nothing after it), keep answering `LowStock` for `--linger`, wait for every
//! delivery, and write the summary.
//!
//! On SIGTERM or SIGINT no further order is placed; the payment answers still due for orders
//! already placed are sent at once (so every order sent keeps its category), deliveries are
//! awaited, and the summary lists the orders sent.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use retail_codec::{
    Codec, EncodeError, RegistrationMode, RegistryError, registry_settings_with_ca,
};

use crate::upgrade::{OrderPlacedV2, UpgradeError};
use retail_events::{Event, Timestamp, Topic};
use retail_runtime::topics::{self, TopicError, TopicNames, TopicSpec};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, ConfigError};
use crate::plan::{Action, Plan, generate};
use crate::restock::{RestockDecision, RestockTally, Restocker};
use crate::summary::Summary;

/// How long start-up may wait for the registry, and admin and metadata requests may take.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// Timeout of one schema registry request.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause before re-trying a send refused because librdkafka's queue is full.
const QUEUE_FULL_BACKOFF: Duration = Duration::from_millis(10);
/// Pause after a failed read of the low-stock topic, so a missing topic is not polled hot.
const CONSUME_ERROR_BACKOFF: Duration = Duration::from_secs(1);
/// How long the final flush may take.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(30);
/// Orders between two progress lines in the log.
const PROGRESS_EVERY: usize = 1_000;

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum SimulatorError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("schema registry: {0}")]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Topics(#[from] TopicError),
    #[error("creating the kafka {client}: {source}")]
    Client {
        client: &'static str,
        source: KafkaError,
    },
    #[error("reading the offsets of {topic}: {source}")]
    Offsets { topic: String, source: KafkaError },
    #[error("encoding an event: {0}")]
    Encode(#[from] EncodeError),
    #[error("sending {event_type} to {topic}: {reason}")]
    Send {
        event_type: &'static str,
        topic: String,
        reason: String,
    },
    #[error("flushing the producer: {0}")]
    Flush(KafkaError),
    #[error("writing the summary to {path}: {source}")]
    Summary {
        path: String,
        source: std::io::Error,
    },
    #[error("a simulator task failed: {0}")]
    Task(String),
    #[error(transparent)]
    Upgrade(#[from] UpgradeError),
}

/// Runs the simulation until its orders are placed and its linger is over, or `shutdown` is
/// cancelled, and returns the summary (also written to `--summary-file`, if given).
pub async fn run(config: &Config, shutdown: CancellationToken) -> Result<Summary, SimulatorError> {
    let settings = config.validate()?;
    tracing::info!(config = %config.redacted(), "starting");
    let plan = generate(&settings, config.seed);
    tracing::info!(
        seed = plan.seed,
        orders = plan.orders.len(),
        "plan generated"
    );

    let Some(codec) = connect_codec(config, &shutdown).await? else {
        return finish(config, &plan, Timestamp::now(), 0, &BTreeMap::new()).await;
    };
    let names = TopicNames {
        prefix: config.topic_prefix.clone(),
        group_id: "simulator".to_owned(),
    };
    let topic = |topic: Topic| names.of(topic);
    if config.create_topics {
        let specs: Vec<TopicSpec> = [
            Topic::StorefrontOrders,
            Topic::Payments,
            Topic::WarehouseStockAdjustments,
            Topic::InventoryStockLevels,
        ]
        .into_iter()
        .map(|name| TopicSpec {
            name: topic(name),
            partitions: config.topic_partitions,
            configs: topics::EVENT_TOPIC_CONFIGS.to_vec(),
        })
        .collect();
        topics::create_missing(
            &config.admin_config(),
            &specs,
            config.topic_replication,
            STARTUP_TIMEOUT,
        )
        .await?;
    }

    let producer: FutureProducer =
        config
            .producer_config()
            .create()
            .map_err(|source| SimulatorError::Client {
                client: "producer",
                source,
            })?;
    // Assigned at the partitions' current ends before any stock or order is sent, so every
    // LowStock this run causes is read, and none of an earlier run's.
    let low_stock_topic = topic(Topic::InventoryStockLevels);
    let consumer = low_stock_reader(config, &low_stock_topic).await?;

    let mut deliveries = Deliveries::default();
    let stocked_at = Timestamp::now();
    let mut stocked_skus = 0;
    for sku in &plan.skus {
        if let Some(adjustment) = sku.initial_adjustment(stocked_at) {
            let event = Event::from(adjustment);
            send(&producer, &codec, &names, &event, &mut deliveries).await?;
            stocked_skus += 1;
        }
    }
    deliveries.wait_all().await?;
    tracing::info!(skus = stocked_skus, lead_time = ?config.stock_lead_time, "initial stock delivered");
    tokio::select! {
        () = tokio::time::sleep(config.stock_lead_time) => {}
        () = shutdown.cancelled() => {}
    }

    let started = Instant::now();
    let started_at = Timestamp::now();
    let stop_answering = CancellationToken::new();
    let restocker = Restocker::new(plan.restockable_skus(), config.restock_amount);
    let answering = tokio::spawn(answer_low_stock(
        consumer,
        producer.clone(),
        Arc::clone(&codec),
        names.clone(),
        restocker,
        stop_answering.clone(),
    ));

    let upgraded = match config.order_schema_v2_from {
        Some(from) => {
            let settings = registry_settings_with_ca(
                &config.schema_registry_url,
                config.schema_registry_basic_auth.as_deref(),
                config.schema_registry_ca_file.as_deref(),
                REGISTRY_TIMEOUT,
            )?;
            Some((from, OrderPlacedV2::register(&settings).await?))
        }
        None => None,
    };
    let mut orders_sent = 0;
    let mut stopped = false;
    for step in plan.schedule() {
        if !stopped {
            tokio::select! {
                biased;
                () = shutdown.cancelled() => {
                    stopped = true;
                    tracing::info!(orders_sent, orders_planned = plan.orders.len(), "stop requested: placing no more orders, sending the payments still due");
                }
                () = tokio::time::sleep_until(started + step.at) => {}
            }
        }
        match step.action {
            Action::Order(index) if !stopped => {
                let order = &plan.orders[index];
                let placed = order.order_placed(started_at);
                match &upgraded {
                    Some((from, v2)) if index >= *from => {
                        let payload = v2.encode(&placed)?;
                        send_encoded(
                            &producer,
                            &names,
                            &Event::from(placed),
                            &payload,
                            &mut deliveries,
                        )
                        .await?;
                    }
                    _ => {
                        send(
                            &producer,
                            &codec,
                            &names,
                            &Event::from(placed),
                            &mut deliveries,
                        )
                        .await?
                    }
                }
                tracing::debug!(order_id = %order.order_id, category = ?order.category, "order placed");
                orders_sent = index + 1;
                if orders_sent % PROGRESS_EVERY == 0 {
                    tracing::info!(orders_sent, "progress");
                }
            }
            Action::Order(_) => {}
            Action::Payment(index) if index < orders_sent => {
                if let Some(event) = plan.orders[index].payment_event(started_at) {
                    send(&producer, &codec, &names, &event, &mut deliveries).await?;
                }
            }
            Action::Payment(_) => {}
        }
        deliveries.check()?;
        if answering.is_finished() {
            // It only ends on its own when it failed: stop the run with its error.
            answering
                .await
                .map_err(|error| SimulatorError::Task(error.to_string()))??;
            return Err(SimulatorError::Task(
                "the LowStock responder stopped early".to_owned(),
            ));
        }
    }

    if !stopped && !config.linger.is_zero() {
        tracing::info!(orders_sent, linger = %humantime::format_duration(config.linger), "all orders placed; answering LowStock until the linger is over");
        tokio::select! {
            () = shutdown.cancelled() => tracing::info!("stop requested during the linger"),
            () = tokio::time::sleep(config.linger) => {}
        }
    }
    stop_answering.cancel();
    let restocker = answering
        .await
        .map_err(|error| SimulatorError::Task(error.to_string()))??;
    deliveries.wait_all().await?;
    let flushing = producer.clone();
    tokio::task::spawn_blocking(move || flushing.flush(FLUSH_TIMEOUT))
        .await
        .map_err(|error| SimulatorError::Task(error.to_string()))?
        .map_err(SimulatorError::Flush)?;
    finish(config, &plan, started_at, orders_sent, restocker.tallies()).await
}

/// Builds the summary, writes it if asked, and logs the totals.
async fn finish(
    config: &Config,
    plan: &Plan,
    started_at: Timestamp,
    orders_sent: usize,
    restocks: &BTreeMap<String, RestockTally>,
) -> Result<Summary, SimulatorError> {
    let summary = Summary::build(plan, started_at, orders_sent, restocks);
    if let Some(path) = &config.summary_file {
        write_summary(path, &summary).await?;
    }
    let restocks: u64 = summary.skus.iter().map(|sku| sku.restocks).sum();
    tracing::info!(
        orders_sent = summary.orders_sent,
        orders_planned = summary.orders_planned,
        normal = summary.counts.normal,
        payment_failure = summary.counts.payment_failure,
        fraud = summary.counts.fraud,
        out_of_stock = summary.counts.out_of_stock,
        missing_payment = summary.counts.missing_payment,
        scarce = summary.counts.scarce,
        restocks,
        "simulation finished"
    );
    Ok(summary)
}

/// Writes the summary next to its destination and renames it there, so a reader never sees
/// half a file. Small, but file I/O blocks: off the async runtime.
async fn write_summary(path: &Path, summary: &Summary) -> Result<(), SimulatorError> {
    let shown = path.display().to_string();
    let json = serde_json::to_vec_pretty(summary).map_err(|source| SimulatorError::Summary {
        path: shown.clone(),
        source: source.into(),
    })?;
    let destination = path.to_owned();
    let mut partial = path.as_os_str().to_owned();
    partial.push(".partial");
    tokio::task::spawn_blocking(move || {
        std::fs::write(&partial, json)?;
        std::fs::rename(&partial, destination)
    })
    .await
    .map_err(|error| SimulatorError::Task(error.to_string()))?
    .map_err(|source| SimulatorError::Summary {
        path: shown,
        source,
    })
}

/// Registers the catalogue's schemas, waiting up to [`STARTUP_TIMEOUT`] for an unreachable
/// registry. `None` if shutdown was requested meanwhile.
async fn connect_codec(
    config: &Config,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<Codec>>, SimulatorError> {
    let settings = registry_settings_with_ca(
        &config.schema_registry_url,
        config.schema_registry_basic_auth.as_deref(),
        config.schema_registry_ca_file.as_deref(),
        REGISTRY_TIMEOUT,
    )?;
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    loop {
        match Codec::connect(settings.clone(), RegistrationMode::Register).await {
            Ok(codec) => return Ok(Some(Arc::new(codec))),
            Err(error @ RegistryError::Unavailable { .. }) if Instant::now() < deadline => {
                tracing::warn!(%error, "schema registry unavailable; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return Ok(None),
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// A consumer of the low-stock topic, assigned every partition at its current end.
async fn low_stock_reader(config: &Config, topic: &str) -> Result<StreamConsumer, SimulatorError> {
    let probe_config = config.consumer_config();
    let probe_topic = topic.to_owned();
    // Metadata and offset requests block: off the async runtime.
    let ends = tokio::task::spawn_blocking(move || {
        let partitions = topics::partition_counts(
            &probe_config,
            std::slice::from_ref(&probe_topic),
            STARTUP_TIMEOUT,
        )?[0];
        let probe: BaseConsumer =
            probe_config
                .create()
                .map_err(|source| SimulatorError::Client {
                    client: "metadata probe",
                    source,
                })?;
        (0..partitions)
            .map(|partition| {
                probe
                    .fetch_watermarks(&probe_topic, partition, STARTUP_TIMEOUT)
                    .map(|(_, high)| (partition, high))
                    .map_err(|source| SimulatorError::Offsets {
                        topic: probe_topic.clone(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()
    })
    .await
    .map_err(|error| SimulatorError::Task(error.to_string()))??;

    let consumer: StreamConsumer =
        config
            .consumer_config()
            .create()
            .map_err(|source| SimulatorError::Client {
                client: "consumer",
                source,
            })?;
    let mut assignment = TopicPartitionList::new();
    for (partition, end) in ends {
        assignment
            .add_partition_offset(topic, partition, Offset::Offset(end))
            .map_err(|source| SimulatorError::Offsets {
                topic: topic.to_owned(),
                source,
            })?;
    }
    consumer
        .assign(&assignment)
        .map_err(|source| SimulatorError::Offsets {
            topic: topic.to_owned(),
            source,
        })?;
    Ok(consumer)
}

/// The warehouse: answers each `LowStock` of a restockable SKU with a restock, until `stop`.
async fn answer_low_stock(
    consumer: StreamConsumer,
    producer: FutureProducer,
    codec: Arc<Codec>,
    names: TopicNames,
    mut restocker: Restocker,
    stop: CancellationToken,
) -> Result<Restocker, SimulatorError> {
    let mut deliveries = Deliveries::default();
    loop {
        let received = tokio::select! {
            () = stop.cancelled() => break,
            received = consumer.recv() => received,
        };
        // Copied out so the borrowed message is not held across the decode's await.
        let payload = match received {
            Ok(message) => message.payload().map(<[u8]>::to_vec),
            Err(error) => {
                tracing::warn!(%error, "reading LowStock failed; retrying");
                tokio::select! {
                    () = stop.cancelled() => break,
                    () = tokio::time::sleep(CONSUME_ERROR_BACKOFF) => continue,
                }
            }
        };
        let Some(payload) = payload else {
            tracing::warn!("LowStock record without a value; skipped");
            continue;
        };
        match codec.decode(&payload).await {
            Ok(Event::LowStock(alert)) => match restocker.decide(&alert, Timestamp::now()) {
                RestockDecision::Restock(restock) => {
                    tracing::info!(sku = %restock.sku, units = restock.quantity_delta, available = alert.available, "restocking");
                    let event = Event::from(restock);
                    send(&producer, &codec, &names, &event, &mut deliveries).await?;
                }
                RestockDecision::Duplicate => {
                    tracing::debug!(sku = %alert.sku, event_id = %alert.envelope.event_id, "LowStock answered already");
                }
                RestockDecision::NotRestockable => {
                    tracing::debug!(sku = %alert.sku, "LowStock for a SKU that is not restocked");
                }
            },
            Ok(other) => {
                tracing::debug!(event_type = other.name(), "not a LowStock; ignored");
            }
            Err(error) => {
                tracing::warn!(%error, "undecodable record on the LowStock topic; skipped")
            }
        }
        deliveries.check()?;
    }
    deliveries.wait_all().await?;
    Ok(restocker)
}

/// Encodes `event` and hands it to the producer, keyed as its topic says; the delivery is
/// tracked in `deliveries`.
async fn send(
    producer: &FutureProducer,
    codec: &Codec,
    names: &TopicNames,
    event: &Event,
    deliveries: &mut Deliveries,
) -> Result<(), SimulatorError> {
    let payload = codec.encode_to_vec(event)?;
    send_encoded(producer, names, event, &payload, deliveries).await
}

/// Hands `payload`, the record of `event`, to the producer, keyed as its topic says; the
/// delivery is tracked in `deliveries`.
async fn send_encoded(
    producer: &FutureProducer,
    names: &TopicNames,
    event: &Event,
    payload: &[u8],
    deliveries: &mut Deliveries,
) -> Result<(), SimulatorError> {
    let topic = names.of(event.topic());
    loop {
        let record = FutureRecord::to(&topic).key(event.key()).payload(payload);
        match producer.send_result(record) {
            Ok(delivery) => {
                deliveries.track(delivery, event.name(), topic);
                return Ok(());
            }
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                tokio::time::sleep(QUEUE_FULL_BACKOFF).await;
            }
            Err((error, _)) => {
                return Err(SimulatorError::Send {
                    event_type: event.name(),
                    topic,
                    reason: error.to_string(),
                });
            }
        }
    }
}

/// Deliveries not yet acknowledged by the broker; the first failure ends the run.
#[derive(Debug, Default)]
struct Deliveries {
    pending: JoinSet<Result<(), SimulatorError>>,
}

impl Deliveries {
    fn track(&mut self, delivery: DeliveryFuture, event_type: &'static str, topic: String) {
        self.pending.spawn(async move {
            let reason = match delivery.await {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err((error, _))) => error.to_string(),
                Err(_) => "the producer was dropped before the delivery report".to_owned(),
            };
            Err(SimulatorError::Send {
                event_type,
                topic,
                reason,
            })
        });
    }

    /// The first failed delivery among those finished, without waiting for the others.
    fn check(&mut self) -> Result<(), SimulatorError> {
        while let Some(joined) = self.pending.try_join_next() {
            joined.map_err(|error| SimulatorError::Task(error.to_string()))??;
        }
        Ok(())
    }

    /// Waits for every delivery.
    async fn wait_all(&mut self) -> Result<(), SimulatorError> {
        while let Some(joined) = self.pending.join_next().await {
            joined.map_err(|error| SimulatorError::Task(error.to_string()))??;
        }
        Ok(())
    }
}
