//! One worker hop against the broker's own limit, on the same broker, in one run:
//!
//! - **passthrough**: a raw Rust consumer → producer copying each record's bytes to an output
//!   topic (no decoding), with the workers' client settings: what the broker and librdkafka allow;
//! - **no-op hop**: the worker runtime with a stateless handler that maps each `StockAdjusted` to
//!   one `LowStock`: decode, handle, encode, produce, store offsets after acknowledgement.
//!
//! Both read the same pre-filled input topic from the start, each with a fresh consumer group,
//! and are timed from their first output record to their last (start-up and group joins are not
//! counted). The arms alternate and repeat; the medians and their ratio are printed.
//!
//!     eval "$(deploy/local/stack env)"
//!     cargo run --release -p retail-bench --bin hop-benchmark -- --records 100000
//!
//! Known limit: tansu 0.6.0 on SQLite slows down within minutes of sustained load, so later runs
//! of either arm are slower than the first on the same broker; compare arms only on a broker that
//! holds its speed (see the README). `--mock-cluster` runs both arms against librdkafka's
//! in-process mock cluster instead (no disk, no replication; the registry still comes from
//! `SCHEMA_REGISTRY_URL`): a broker that holds its speed, so the ratio shows the runtime's cost,
//! though the absolute figures are not a real broker's.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::inventory::LowStock;
use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
use retail_events::{Envelope, Event, Timestamp, Topic};
use retail_runtime::{Context, Handler, HandlerError, RuntimeConfig};
use tokio_util::sync::CancellationToken;

/// Benchmark options.
#[derive(Debug, Clone, Parser)]
struct Options {
    /// Input records per arm.
    #[arg(long, default_value_t = 100_000)]
    records: u64,
    /// Partitions of the input and output topics.
    #[arg(long, default_value_t = 3)]
    partitions: i32,
    /// Runs of each arm (the median is reported).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Broker.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    bootstrap_servers: String,
    /// Schema registry.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    schema_registry_url: String,
    /// Use librdkafka's in-process mock cluster as the broker instead of
    /// `--bootstrap-servers`.
    #[arg(long)]
    mock_cluster: bool,
}

/// The no-op hop: one `LowStock` per `StockAdjusted`, no state.
#[derive(Debug)]
struct NoOp;

impl Handler for NoOp {
    type State = ();
    const STORE: Option<&'static str> = None;

    fn inputs(&self) -> Vec<Topic> {
        vec![Topic::WarehouseStockAdjustments]
    }

    fn outputs(&self) -> Vec<Topic> {
        vec![Topic::InventoryStockLevels]
    }

    fn handle(
        &self,
        event: &Event,
        _state: &mut Option<()>,
        context: &mut Context<'_>,
    ) -> Result<(), HandlerError> {
        if let Event::StockAdjusted(adjusted) = event {
            context.emit(LowStock {
                envelope: context.envelope_for::<LowStock>(""),
                sku: adjusted.sku.clone(),
                available: adjusted.quantity_delta,
                threshold: 0,
            });
        }
        Ok(())
    }
}

fn client(options: &Options) -> ClientConfig {
    let mut config = ClientConfig::new();
    config.set("bootstrap.servers", &options.bootstrap_servers);
    config
}

/// The mock cluster, when the benchmark runs on it.
type Mock = Option<MockCluster<'static, DefaultProducerContext>>;

/// Creates topics; on the mock cluster through its own API (it has no CreateTopics).
async fn create_topics(options: &Options, mock: &Mock, names: &[String]) -> anyhow::Result<()> {
    if let Some(mock) = mock {
        for name in names {
            mock.create_topic(name, options.partitions, 1)?;
        }
        return Ok(());
    }
    let admin: AdminClient<DefaultClientContext> = client(options).create()?;
    let topics: Vec<NewTopic<'_>> = names
        .iter()
        .map(|name| NewTopic::new(name, options.partitions, TopicReplication::Fixed(1)))
        .collect();
    for result in admin.create_topics(&topics, &AdminOptions::new()).await? {
        if let Err((topic, code)) = result {
            bail!("creating {topic}: {code}");
        }
    }
    Ok(())
}

/// The worker runtime's flags, for running it in-process.
#[derive(Debug, Parser)]
struct Runtime {
    #[command(flatten)]
    config: RuntimeConfig,
}

/// Where each partition of `topic` ends now: the next run's outputs start there.
fn ends(options: &Options, topic: &str) -> anyhow::Result<Vec<i64>> {
    let probe: BaseConsumer = client(options).set("group.id", "bench-probe").create()?;
    (0..options.partitions)
        .map(|partition| {
            Ok(probe
                .fetch_watermarks(topic, partition, Duration::from_secs(10))?
                .1)
        })
        .collect()
}

/// Reads `records` records of `topic` from `start` (an offset per partition) and returns the
/// span of their producer timestamps: the time from the first output to the last, measured
/// the same way for every arm and independent of when anyone looked.
fn output_span(
    options: &Options,
    topic: &str,
    start: &[i64],
    records: u64,
    limit: Duration,
) -> anyhow::Result<Duration> {
    let consumer: BaseConsumer = client(options)
        .set(
            "group.id",
            format!("bench-reader-{}", rand::random::<u32>()),
        )
        .set("enable.auto.commit", "false")
        .create()?;
    // Assigned from known offsets, not subscribed: no group to join, and nothing depends on
    // how much of the topic's past the broker still holds.
    let mut assignment = rdkafka::TopicPartitionList::new();
    for (partition, offset) in (0..options.partitions).zip(start) {
        assignment.add_partition_offset(topic, partition, rdkafka::Offset::Offset(*offset))?;
    }
    consumer.assign(&assignment)?;
    let started = Instant::now();
    let (mut seen, mut first, mut last) = (0_u64, i64::MAX, i64::MIN);
    while seen < records {
        if started.elapsed() > limit {
            bail!("{topic}: {seen} of {records} records after {limit:?}");
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let message = message?;
        seen += 1;
        let timestamp = message
            .timestamp()
            .to_millis()
            .context("output record without a timestamp")?;
        first = first.min(timestamp);
        last = last.max(timestamp);
    }
    Ok(Duration::from_millis(
        u64::try_from(last - first).unwrap_or(0).max(1),
    ))
}

/// Enqueues a record, waiting while librdkafka's queue is full.
fn send_waiting(
    producer: &ThreadedProducer<DefaultProducerContext>,
    record: BaseRecord<'_, [u8], [u8]>,
) {
    let mut pending = record;
    while let Err((_, returned)) = producer.send(pending) {
        pending = returned;
        producer.poll(Duration::from_millis(1));
    }
}

/// The raw passthrough arm, on its own thread, with the workers' client settings.
fn passthrough(options: &Options, input: &str, output: &str) -> anyhow::Result<()> {
    let consumer: BaseConsumer = client(options)
        .set("group.id", format!("bench-pass-{}", rand::random::<u32>()))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "true")
        .set("enable.auto.offset.store", "false")
        .set("queued.max.messages.kbytes", "16384")
        .create()?;
    let producer: ThreadedProducer<DefaultProducerContext> = client(options)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("compression.type", "lz4")
        .create()?;
    consumer.subscribe(&[input])?;
    let mut copied = 0;
    while copied < options.records {
        let Some(message) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = message?;
        let mut record = BaseRecord::to(output).payload(message.payload().unwrap_or_default());
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        send_waiting(&producer, record);
        consumer.store_offset_from_message(&message)?;
        copied += 1;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(())
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut options = Options::parse();
    // Lives until the end of `main`, after every client.
    let mock: Mock = if options.mock_cluster {
        let mock = MockCluster::new(1)?;
        options.bootstrap_servers = mock.bootstrap_servers();
        eprintln!(
            "broker: librdkafka's mock cluster at {}",
            options.bootstrap_servers
        );
        Some(mock)
    } else {
        None
    };
    retail_runtime::telemetry::init_logging(
        retail_runtime::config::LogFormat::Text,
        "hop-benchmark",
    );
    let prefix = format!("bench-{}.", rand::random::<u32>());
    let input = format!("{prefix}{}", Topic::WarehouseStockAdjustments.name());
    create_topics(&options, &mock, std::slice::from_ref(&input)).await?;

    let settings = registry_settings(&options.schema_registry_url, None, Duration::from_secs(10))?;
    let codec = Codec::connect(settings, RegistrationMode::Register)
        .await
        .context("registry")?;
    eprintln!("filling {input} with {} records", options.records);
    let producer: ThreadedProducer<DefaultProducerContext> = client(&options)
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()?;
    for number in 0..options.records {
        let sku = format!("sku-{}", number % 500);
        let event = Event::StockAdjusted(StockAdjusted {
            envelope: Envelope::originating::<StockAdjusted>(
                format!("adj-{number}"),
                "bench",
                Timestamp::now(),
            ),
            adjustment_id: format!("adj-{number}"),
            warehouse_id: "w1".into(),
            sku: sku.clone(),
            quantity_delta: 1,
            reason: StockAdjustmentReason::Restock,
        });
        let payload = codec.encode_to_vec(&event)?;
        send_waiting(
            &producer,
            BaseRecord::to(&input)
                .key(sku.as_bytes())
                .payload(payload.as_slice()),
        );
    }
    producer.flush(Duration::from_secs(120))?;

    let hop_output = format!("{prefix}{}", Topic::InventoryStockLevels.name());
    create_topics(&options, &mock, std::slice::from_ref(&hop_output)).await?;
    let mut passthrough_rates = Vec::new();
    let mut hop_rates = Vec::new();
    for run in 0..options.repeat {
        // Passthrough arm: a fresh output topic and consumer group per run.
        let output = format!("{prefix}pass-{run}");
        create_topics(&options, &mock, std::slice::from_ref(&output)).await?;
        let copier = std::thread::spawn({
            let (options, input, output) = (options.clone(), input.clone(), output.clone());
            move || passthrough(&options, &input, &output)
        });
        let elapsed = tokio::task::spawn_blocking({
            let (options, output) = (options.clone(), output.clone());
            move || {
                output_span(
                    &options,
                    &output,
                    &vec![0; usize::try_from(options.partitions).unwrap_or(0)],
                    options.records,
                    Duration::from_secs(600),
                )
            }
        })
        .await??;
        copier
            .join()
            .map_err(|_| anyhow::anyhow!("passthrough thread panicked"))??;
        let rate = options.records as f64 / elapsed.as_secs_f64();
        eprintln!("run {run}: passthrough {rate:>10.0} records/s ({elapsed:?})");
        passthrough_rates.push(rate);

        // No-op hop arm: the runtime in this process, with a fresh consumer group, reading the
        // same input (the prefix maps the catalogue topics onto this run's topics).
        let before = ends(&options, &hop_output)?;
        let group = format!("bench-hop-{}", rand::random::<u32>());
        if mock.is_some() {
            create_topics(&options, &mock, &[format!("{group}.dlq")]).await?;
        }
        let runtime = Runtime::try_parse_from([
            "hop-benchmark",
            "--bootstrap-servers",
            &options.bootstrap_servers,
            "--schema-registry-url",
            &options.schema_registry_url,
            "--topic-prefix",
            &prefix,
            "--group-id",
            &group,
            "--create-topics",
            if mock.is_some() { "false" } else { "true" },
            "--http-addr",
            "127.0.0.1:0",
            "--topic-partitions",
            &options.partitions.to_string(),
        ])?;
        let shutdown = CancellationToken::new();
        let worker = tokio::spawn(retail_runtime::run(
            "bench-noop",
            runtime.config,
            NoOp,
            shutdown.clone(),
        ));
        let elapsed = tokio::task::spawn_blocking({
            let (options, output) = (options.clone(), hop_output.clone());
            move || {
                output_span(
                    &options,
                    &output,
                    &before,
                    options.records,
                    Duration::from_secs(600),
                )
            }
        })
        .await??;
        shutdown.cancel();
        worker.await??;
        let rate = options.records as f64 / elapsed.as_secs_f64();
        eprintln!("run {run}: no-op hop  {rate:>10.0} records/s ({elapsed:?})");
        hop_rates.push(rate);
    }
    let (pass, hop) = (median(passthrough_rates), median(hop_rates));
    println!("| arm | records/s (median of {}) |", options.repeat);
    println!("| --- | ---: |");
    println!("| raw passthrough (consumer -> producer, bytes) | {pass:.0} |");
    println!("| no-op hop (worker runtime, decode -> handle -> encode) | {hop:.0} |");
    println!("| ratio hop / passthrough | {:.2} |", hop / pass);
    Ok(())
}
