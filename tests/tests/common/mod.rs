//! Helpers shared by the runtime tests: the counting worker as a process, its inputs and
//! outputs, and the effectively-once checks. Each test binary uses a subset.
#![allow(dead_code, reason = "each test binary uses a subset of the helpers")]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
use retail_events::{Envelope, Event, EventId, Timestamp};
use retail_integration_tests::cluster::Cluster;
use retail_integration_tests::{
    TIMEOUT, client_config_on, consumer_on, create_topic_on, producer_on, schema_registry_url,
    unique_name,
};

pub(crate) const PARTITIONS: i32 = 3;
pub(crate) const SKUS: usize = 30;

/// One test's broker, registry, topics and group.
pub(crate) struct Setup {
    pub(crate) prefix: String,
    pub(crate) group: String,
    /// The broker: a fresh local one, the environment's, or another (librdkafka's mock cluster).
    pub(crate) bootstrap: String,
    /// The schema registry.
    pub(crate) registry: String,
    /// The test's own local stack, if it has one (see [`Cluster::for_run`]); stopped on drop.
    _cluster: Option<Cluster>,
}

impl Setup {
    /// A setup on a broker and registry of its own when the suite runs on the local broker
    /// (`LOCAL_STACK=1`), else on the environment's.
    pub(crate) fn new(name: &str) -> Self {
        let prefix = unique_name(name);
        let cluster = Cluster::for_run(
            &PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
                .join("stacks")
                .join(&prefix),
        );
        Self {
            prefix: format!("{prefix}."),
            group: unique_name("counter"),
            bootstrap: cluster.bootstrap.clone(),
            registry: cluster.registry.clone(),
            _cluster: Some(cluster),
        }
    }

    /// A setup on the broker at `bootstrap`, with the environment's registry.
    pub(crate) fn on(name: &str, bootstrap: &str) -> Self {
        Self {
            prefix: format!("{}.", unique_name(name)),
            group: unique_name("counter"),
            bootstrap: bootstrap.to_owned(),
            registry: schema_registry_url(),
            _cluster: None,
        }
    }

    /// A codec on the setup's registry.
    pub(crate) async fn codec(&self) -> Codec {
        codec_on(&self.registry).await
    }

    pub(crate) fn input(&self) -> String {
        format!("{}warehouse.stock-adjustments.v1", self.prefix)
    }

    pub(crate) fn output(&self) -> String {
        format!("{}inventory.stock-levels.v1", self.prefix)
    }

    pub(crate) fn dead_letters(&self) -> String {
        format!("{}.dlq", self.group)
    }

    pub(crate) async fn create_topics(&self) {
        create_topic_on(&self.bootstrap, &self.input(), PARTITIONS, &[]).await;
        create_topic_on(&self.bootstrap, &self.output(), PARTITIONS, &[]).await;
    }
}

/// A `counting-worker` process; killed (SIGKILL) if still running when dropped.
pub(crate) struct Worker {
    pub(crate) child: Child,
    pub(crate) name: String,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    pub(crate) http: String,
    /// Its stdout and stderr.
    pub(crate) log_path: PathBuf,
}

impl Worker {
    pub(crate) fn start(setup: &Setup, name: &str) -> Self {
        Self::start_with(setup, name, &[])
    }

    pub(crate) fn start_with(setup: &Setup, name: &str, extra: &[&str]) -> Self {
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("worker-logs");
        std::fs::create_dir_all(&logs).expect("log folder");
        let log_path = logs.join(format!("{}-{name}.log", setup.group));
        let log = std::fs::File::create(&log_path).expect("log file");
        // A port free a moment ago; the worker binds it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("free port")
            .port();
        let http = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_counting-worker"))
            .args(["--topic-prefix", &setup.prefix, "--group-id", &setup.group])
            .args([
                "--http-addr",
                &http,
                "--topic-partitions",
                &PARTITIONS.to_string(),
            ])
            .args([
                "--session-timeout",
                "10s",
                "--drain-deadline",
                "5s",
                "--commit-interval",
                "200ms",
            ])
            .args(extra)
            .env("KAFKA_BOOTSTRAP_SERVERS", &setup.bootstrap)
            .env("SCHEMA_REGISTRY_URL", &setup.registry)
            .env("RUST_LOG", "info")
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .expect("counting-worker starts");
        Self {
            child,
            name: name.to_owned(),
            http,
            log_path,
        }
    }

    /// GET `path` on the worker's HTTP listener: status and body.
    pub(crate) async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .expect("worker answers HTTP");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    /// Waits for the process to exit on its own, at most `within`.
    pub(crate) fn wait_for_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} still running after {within:?}",
                self.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// What it logged so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub(crate) fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took and whether it succeeded.
    pub(crate) fn terminate(mut self) -> (Duration, bool) {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "could not signal {}", self.name);
        let deadline = started + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return (started.elapsed(), status.success());
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within 30 s of SIGTERM",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The inputs produced: id → (sku, delta, partition, offset).
pub(crate) type Inputs = HashMap<EventId, (String, i32, i32, i64)>;

/// A codec on the environment's registry.
pub(crate) async fn codec() -> Codec {
    codec_on(&schema_registry_url()).await
}

/// A codec on the registry at `url`.
pub(crate) async fn codec_on(url: &str) -> Codec {
    let settings = registry_settings(url, None, Duration::from_secs(10)).expect("settings");
    Codec::connect(settings, RegistrationMode::Register)
        .await
        .expect("codec")
}

pub(crate) fn adjustment(number: usize, delta: i32) -> StockAdjusted {
    let adjustment_id = format!("adj-{number}");
    StockAdjusted {
        envelope: Envelope::originating::<StockAdjusted>(
            adjustment_id.clone(),
            "warehouse",
            Timestamp::now(),
        ),
        adjustment_id,
        warehouse_id: "w1".into(),
        sku: format!("sku-{}", number % SKUS),
        quantity_delta: delta,
        reason: StockAdjustmentReason::Restock,
    }
}

/// Produces `count` adjustments with deltas from 1 to 9 or -1 to -4 (never 0).
pub(crate) async fn produce_adjustments(
    codec: &Codec,
    bootstrap: &str,
    topic: &str,
    first: usize,
    count: usize,
    inputs: &mut Inputs,
) {
    let producer = producer_on(bootstrap);
    let mut sends = Vec::with_capacity(count);
    for number in first..first + count {
        let delta = if number % 5 == 0 {
            -((number % 4) as i32 + 1)
        } else {
            (number % 9) as i32 + 1
        };
        let event = adjustment(number, delta);
        let payload = codec
            .encode_to_vec(&Event::StockAdjusted(event.clone()))
            .expect("encode");
        sends.push((event, payload));
    }
    let mut pending = Vec::with_capacity(count);
    for (event, payload) in &sends {
        pending.push((
            event,
            producer.send(
                FutureRecord::to(topic).key(&event.sku).payload(payload),
                TIMEOUT,
            ),
        ));
    }
    for (event, delivery) in pending {
        let delivery = delivery.await.expect("delivered");
        let (partition, offset) = (delivery.partition, delivery.offset);
        inputs.insert(
            event.envelope.event_id,
            (event.sku.clone(), event.quantity_delta, partition, offset),
        );
    }
}

/// One `LowStock` record read from the output topic.
pub(crate) struct OutputRecord {
    pub(crate) id: EventId,
    pub(crate) cause: EventId,
    pub(crate) sku: String,
    pub(crate) available: i32,
    pub(crate) payload: Vec<u8>,
}

/// Every record read from the output topic, in partition order.
#[derive(Default)]
pub(crate) struct Outputs {
    /// By (partition, offset).
    pub(crate) records: BTreeMap<(i32, i64), OutputRecord>,
    /// The inputs that caused them.
    pub(crate) causes: HashSet<EventId>,
}

/// Reads the output topic until `done` holds, or fails after `within`.
pub(crate) async fn read_until(
    codec: &Codec,
    consumer: &StreamConsumer,
    outputs: &mut Outputs,
    within: Duration,
    done: impl Fn(&Outputs) -> bool,
) {
    let deadline = Instant::now() + within;
    while !done(outputs) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "condition not reached after {within:?}; outputs for {} inputs",
            outputs.causes.len()
        );
        let Ok(received) =
            tokio::time::timeout(left.min(Duration::from_secs(1)), consumer.recv()).await
        else {
            continue;
        };
        record_output(codec, &received.expect("consume"), outputs).await;
    }
}

/// Decodes one output record into `outputs`.
async fn record_output(
    codec: &Codec,
    message: &rdkafka::message::BorrowedMessage<'_>,
    outputs: &mut Outputs,
) {
    let payload = message.payload().expect("payload").to_vec();
    let Event::LowStock(low) = codec.decode(&payload).await.expect("decodes") else {
        panic!("unexpected event type");
    };
    let cause = low.envelope.causation_id.expect("caused");
    outputs.causes.insert(cause);
    let record = OutputRecord {
        id: low.envelope.event_id,
        cause,
        sku: low.sku,
        available: low.available,
        payload,
    };
    outputs
        .records
        .insert((message.partition(), message.offset()), record);
}

/// Reads the whole output topic up to its end at the time of the call (the high watermarks):
/// for when no worker writes to it any more, so the end is everything that was emitted.
pub(crate) async fn read_to_end(codec: &Codec, setup: &Setup, within: Duration) -> Outputs {
    let consumer = consumer_on(&setup.bootstrap, &unique_name("to-end"));
    let mut ends = HashMap::new();
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        let (_, high) = consumer
            .fetch_watermarks(&setup.output(), partition, TIMEOUT)
            .expect("watermarks");
        if high > 0 {
            ends.insert(partition, high);
            list.add_partition_offset(&setup.output(), partition, Offset::Beginning)
                .expect("partition");
        }
    }
    let mut outputs = Outputs::default();
    if ends.is_empty() {
        return outputs;
    }
    consumer.assign(&list).expect("assign");
    let deadline = Instant::now() + within;
    while !ends.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "output topic not read to its end {ends:?} (partition: high watermark) after {within:?}"
        );
        let Ok(received) = tokio::time::timeout(left, consumer.recv()).await else {
            continue;
        };
        let message = received.expect("consume");
        record_output(codec, &message, &mut outputs).await;
        if ends
            .get(&message.partition())
            .is_some_and(|end| message.offset() + 1 >= *end)
        {
            ends.remove(&message.partition());
        }
    }
    outputs
}

/// Reads the output topic until every input in `inputs` has caused an output.
pub(crate) async fn read_outputs(
    codec: &Codec,
    consumer: &StreamConsumer,
    inputs: &Inputs,
    outputs: &mut Outputs,
    within: Duration,
) {
    read_until(codec, consumer, outputs, within, |outputs| {
        inputs.keys().all(|id| outputs.causes.contains(id))
    })
    .await;
}

/// The effectively-once checks: one output id per input, identical re-sends, right totals.
pub(crate) fn assert_effectively_once(inputs: &Inputs, outputs: &Outputs) -> usize {
    let mut id_of_cause: HashMap<EventId, EventId> = HashMap::new();
    let mut bytes_of_id: HashMap<EventId, &Vec<u8>> = HashMap::new();
    for record in outputs.records.values() {
        assert!(
            inputs.contains_key(&record.cause),
            "output caused by an unknown input"
        );
        let first = id_of_cause.entry(record.cause).or_insert(record.id);
        assert_eq!(
            *first, record.id,
            "one input caused two different output ids"
        );
        let same = bytes_of_id.entry(record.id).or_insert(&record.payload);
        assert_eq!(
            *same, &record.payload,
            "a re-sent output differs from the first"
        );
    }
    assert_eq!(
        id_of_cause.len(),
        inputs.len(),
        "every input has exactly one output id"
    );

    let mut expected: HashMap<&str, i64> = HashMap::new();
    for (sku, delta, _, _) in inputs.values() {
        *expected.entry(sku).or_default() += i64::from(*delta);
    }
    let mut last: HashMap<&str, i32> = HashMap::new();
    for record in outputs.records.values() {
        last.insert(&record.sku, record.available);
    }
    for (sku, total) in &expected {
        assert_eq!(
            last.get(sku).map(|available| i64::from(*available)),
            Some(*total),
            "final total of {sku}"
        );
    }
    outputs.records.len() - id_of_cause.len()
}

/// Reads what arrives in the next two seconds (re-sends trail the last new output), then checks
/// effectively-once effects and prints the figures; returns the number of identical re-sends.
pub(crate) async fn settle_and_check(
    label: &str,
    codec: &Codec,
    reader: &StreamConsumer,
    inputs: &Inputs,
    outputs: &mut Outputs,
) -> usize {
    let _ = tokio::time::timeout(
        Duration::from_secs(2),
        read_until(codec, reader, outputs, Duration::from_secs(3600), |_| false),
    )
    .await;
    let resent = assert_effectively_once(inputs, outputs);
    println!(
        "{label}: {} inputs, {} output records, {resent} identical re-sends",
        inputs.len(),
        outputs.records.len()
    );
    resent
}

pub(crate) fn output_consumer(setup: &Setup) -> StreamConsumer {
    let consumer = consumer_on(&setup.bootstrap, &unique_name("reader"));
    consumer.subscribe(&[&setup.output()]).expect("subscribe");
    consumer
}

/// The worker group's committed offsets, per partition of the input.
pub(crate) fn committed_offsets(setup: &Setup) -> HashMap<i32, i64> {
    let probe: rdkafka::consumer::BaseConsumer = client_config_on(&setup.bootstrap)
        .set("group.id", &setup.group)
        .create()
        .expect("probe");
    let mut list = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        list.add_partition(&setup.input(), partition);
    }
    let committed = probe
        .committed_offsets(list, TIMEOUT)
        .expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(next) => Some((element.partition(), next)),
            _ => None,
        })
        .collect()
}
