//! The worker runtime against the real broker and registry, with a real worker process
//! (`counting-worker`): crashes, rebalances, poison pills and shutdown, each checked by its
//! effects downstream.
//!
//! Every input is a `StockAdjusted` with a known delta; the worker announces each new per-SKU
//! total as a `LowStock` caused by that input. So the outputs show which inputs were applied,
//! how often, and to which state: effectively-once means one output id per input, identical
//! bytes whenever an output is re-sent, and final totals equal to the sums of the deltas.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::warehouse::{StockAdjusted, StockAdjustmentReason};
use retail_events::{Envelope, Event, EventId, Timestamp};
use retail_integration_tests::{
    TIMEOUT, bootstrap_servers, client_config, consumer, create_topic, producer,
    schema_registry_url, unique_name,
};
use retail_runtime::dead_letter::DeadLetter;

const PARTITIONS: i32 = 3;
const SKUS: usize = 30;

/// One test's topics and group.
struct Setup {
    prefix: String,
    group: String,
}

impl Setup {
    fn new(name: &str) -> Self {
        Self {
            prefix: format!("{}.", unique_name(name)),
            group: unique_name("counter"),
        }
    }

    fn input(&self) -> String {
        format!("{}warehouse.stock-adjustments.v1", self.prefix)
    }

    fn output(&self) -> String {
        format!("{}inventory.stock-levels.v1", self.prefix)
    }

    fn dead_letters(&self) -> String {
        format!("{}.dlq", self.group)
    }

    async fn create_topics(&self) {
        create_topic(&self.input(), PARTITIONS, &[]).await;
        create_topic(&self.output(), PARTITIONS, &[]).await;
    }
}

/// A `counting-worker` process; killed (SIGKILL) if still running when dropped.
struct Worker {
    child: Child,
    name: String,
    /// Where it serves `/metrics`, `/healthz` and `/readyz`.
    http: String,
}

impl Worker {
    fn start(setup: &Setup, name: &str) -> Self {
        Self::start_with(setup, name, &[])
    }

    fn start_with(setup: &Setup, name: &str, extra: &[&str]) -> Self {
        let logs = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("worker-logs");
        std::fs::create_dir_all(&logs).expect("log folder");
        let log = std::fs::File::create(logs.join(format!("{}-{name}.log", setup.group)))
            .expect("log file");
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
            .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers())
            .env("SCHEMA_REGISTRY_URL", schema_registry_url())
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
        }
    }

    /// GET `path` on the worker's HTTP listener: status and body.
    async fn get(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("http://{}{path}", self.http))
            .await
            .expect("worker answers HTTP");
        (
            response.status().as_u16(),
            response.text().await.expect("body"),
        )
    }

    fn kill_9(mut self) {
        self.child.kill().expect("SIGKILL");
        self.child.wait().expect("reaped");
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took and whether it succeeded.
    fn terminate(mut self) -> (Duration, bool) {
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
type Inputs = HashMap<EventId, (String, i32, i32, i64)>;

async fn codec() -> Codec {
    let settings =
        registry_settings(&schema_registry_url(), None, Duration::from_secs(10)).expect("settings");
    Codec::connect(settings, RegistrationMode::Register)
        .await
        .expect("codec")
}

fn adjustment(number: usize, delta: i32) -> StockAdjusted {
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
async fn produce_adjustments(
    codec: &Codec,
    topic: &str,
    first: usize,
    count: usize,
    inputs: &mut Inputs,
) {
    let producer = producer();
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
struct OutputRecord {
    id: EventId,
    cause: EventId,
    sku: String,
    available: i32,
    payload: Vec<u8>,
}

/// Every record read from the output topic, in partition order.
#[derive(Default)]
struct Outputs {
    /// By (partition, offset).
    records: BTreeMap<(i32, i64), OutputRecord>,
    /// The inputs that caused them.
    causes: HashSet<EventId>,
}

/// Reads the output topic until `done` holds, or fails after `within`.
async fn read_until(
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
        let message = received.expect("consume");
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
}

/// Reads the output topic until every input in `inputs` has caused an output.
async fn read_outputs(
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
fn assert_effectively_once(inputs: &Inputs, outputs: &Outputs) -> usize {
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
/// effectively-once effects and prints the figures.
async fn settle_and_check(
    label: &str,
    codec: &Codec,
    reader: &StreamConsumer,
    inputs: &Inputs,
    outputs: &mut Outputs,
) {
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
}

fn output_consumer(setup: &Setup) -> StreamConsumer {
    let consumer = consumer(&unique_name("reader"));
    consumer.subscribe(&[&setup.output()]).expect("subscribe");
    consumer
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_resumes_with_exactly_one_set_of_effects() {
    let setup = Setup::new("rt-kill");
    setup.create_topics().await;
    let codec = codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(&codec, &setup.input(), 0, 3000, &mut inputs).await;

    let first = Worker::start_with(&setup, "first", &["--instance-id", "counter-0"]);
    let reader = output_consumer(&setup);
    let mut outputs = Outputs::default();
    // Let it get about a third of the way, then kill it without warning.
    read_until(
        &codec,
        &reader,
        &mut outputs,
        Duration::from_secs(60),
        |outputs| outputs.causes.len() >= 1000,
    )
    .await;
    first.kill_9();

    let _second = Worker::start_with(&setup, "second", &["--instance-id", "counter-0"]);
    read_outputs(
        &codec,
        &reader,
        &inputs,
        &mut outputs,
        Duration::from_secs(90),
    )
    .await;
    settle_and_check("kill -9", &codec, &reader, &inputs, &mut outputs).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_pills_go_to_the_dead_letter_topic_and_the_rest_flows() {
    let setup = Setup::new("rt-poison");
    setup.create_topics().await;
    let codec = codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(&codec, &setup.input(), 0, 100, &mut inputs).await;

    let valid = codec
        .encode_to_vec(&Event::StockAdjusted(adjustment(7, 3)))
        .expect("encode");
    let mut unknown_id = valid.clone();
    unknown_id[1..5].copy_from_slice(&2_000_000_123_u32.to_be_bytes());
    let poisons: Vec<(&str, Vec<u8>)> = vec![
        ("not_confluent_framing", b"{\"sku\":\"sku-1\"}".to_vec()),
        ("unknown_schema_id", unknown_id),
        ("malformed_body", valid[..valid.len() / 2].to_vec()),
        (
            "rejected",
            codec
                .encode_to_vec(&Event::StockAdjusted(adjustment(8, 0)))
                .expect("encode"),
        ),
    ];
    let producer = producer();
    let mut poisoned: HashMap<String, (i32, i64)> = HashMap::new();
    for (class, payload) in &poisons {
        let delivery = producer
            .send(
                FutureRecord::to(&setup.input())
                    .key("sku-1")
                    .payload(payload),
                TIMEOUT,
            )
            .await
            .expect("delivered");
        poisoned.insert((*class).to_owned(), (delivery.partition, delivery.offset));
    }
    produce_adjustments(&codec, &setup.input(), 100, 100, &mut inputs).await;

    let worker = Worker::start(&setup, "only");
    let reader = output_consumer(&setup);
    let mut outputs = Outputs::default();
    read_outputs(
        &codec,
        &reader,
        &inputs,
        &mut outputs,
        Duration::from_secs(60),
    )
    .await;
    assert_effectively_once(&inputs, &outputs);

    let dead = consumer(&unique_name("dlq-reader"));
    dead.subscribe(&[&setup.dead_letters()]).expect("subscribe");
    let mut found: HashMap<String, DeadLetter> = HashMap::new();
    while found.len() < poisons.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), dead.recv())
            .await
            .expect("dead letters")
            .expect("consume");
        let headers = message.headers().expect("headers");
        let letter =
            DeadLetter::from_headers(headers.iter().map(|header| (header.key, header.value)))
                .expect("dlq headers");
        let original = poisons
            .iter()
            .find(|(class, _)| *class == letter.error_class)
            .unwrap_or_else(|| panic!("unexpected class {}", letter.error_class));
        assert_eq!(
            message.payload(),
            Some(original.1.as_slice()),
            "the original bytes are kept"
        );
        assert_eq!(message.key(), Some(&b"sku-1"[..]));
        found.insert(letter.error_class.clone(), letter);
    }
    for (class, (partition, offset)) in &poisoned {
        let letter = &found[class];
        assert_eq!(
            (letter.partition, letter.offset),
            (*partition, *offset),
            "{class}"
        );
        assert_eq!(letter.topic, setup.input());
        assert_eq!(letter.worker, "counting-worker");
        assert!(!letter.message.is_empty());
    }
    // What an on-call engineer sees: alive, ready, and the dead letters counted by class.
    assert_eq!(worker.get("/healthz").await.0, 200);
    let (status, body) = worker.get("/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, metrics) = worker.get("/metrics").await;
    assert_eq!(status, 200);
    let series = |name: &str, labels: &[&str]| -> f64 {
        metrics
            .lines()
            .filter(|line| {
                line.starts_with(name) && labels.iter().all(|label| line.contains(label))
            })
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    };
    for (class, _) in &poisons {
        let class_label = format!("error_class=\"{class}\"");
        assert_eq!(
            series(
                "worker_dead_lettered_records_total",
                &[&class_label, "worker=\"counting-worker\""]
            ),
            1.0,
            "{class} in {metrics}"
        );
    }
    assert!(
        series(
            "worker_records_consumed_total",
            &["event_type=\"StockAdjusted\""]
        ) >= 200.0,
        "consumed records in {metrics}"
    );
    assert!(
        series(
            "worker_records_produced_total",
            &["event_type=\"LowStock\""]
        ) >= 200.0
    );
    assert!(metrics.contains("worker_handler_duration_seconds_bucket"));
    let (_, clean) = worker.terminate();
    assert!(clean);
}

/// The worker group's committed offsets, per partition of the input.
fn committed_offsets(setup: &Setup) -> HashMap<i32, i64> {
    let probe: rdkafka::consumer::BaseConsumer = client_config()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_commits_everything_it_emitted() {
    let setup = Setup::new("rt-sigterm");
    setup.create_topics().await;
    let codec = codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(&codec, &setup.input(), 0, 2000, &mut inputs).await;

    let worker = Worker::start(&setup, "only");
    let reader = output_consumer(&setup);
    // More input keeps arriving while it stops.
    let load = {
        let topic = setup.input();
        tokio::spawn(async move {
            let load_codec = self::codec().await;
            let mut more = Inputs::new();
            produce_adjustments(&load_codec, &topic, 2000, 2000, &mut more).await;
            more
        })
    };
    let mut seen = Outputs::default();
    read_until(
        &codec,
        &reader,
        &mut seen,
        Duration::from_secs(60),
        |outputs| outputs.causes.len() >= 500,
    )
    .await;
    let (took, clean) = worker.terminate();
    println!("SIGTERM: exited in {} ms", took.as_millis());
    assert!(clean, "exit status after SIGTERM");
    assert!(
        took < Duration::from_secs(5 + 3),
        "drain deadline is 5 s; took {took:?}"
    );
    inputs.extend(load.await.expect("load"));

    // Everything emitted is covered by the committed offsets: nothing emitted is re-processed
    // as new work by the next owner, and nothing committed lacks its effects.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let committed = committed_offsets(&setup);
    let mut all = Outputs::default();
    let everything = output_consumer(&setup);
    // Read until the topic stays quiet: the worker is gone, so this is everything it emitted.
    let mut last = usize::MAX;
    while last != all.records.len() {
        last = all.records.len();
        let _ = tokio::time::timeout(
            Duration::from_secs(3),
            read_until(
                &codec,
                &everything,
                &mut all,
                Duration::from_secs(3600),
                |_| false,
            ),
        )
        .await;
    }
    let emitted_causes = all.causes;
    assert!(!emitted_causes.is_empty());
    for cause in &emitted_causes {
        let (_, _, partition, offset) = inputs[cause];
        let next = committed.get(&partition).copied().unwrap_or(0);
        assert!(
            offset < next,
            "input at {partition}/{offset} has effects but its offset is not committed ({next})"
        );
    }
    for (id, (_, _, partition, offset)) in &inputs {
        if *offset < committed.get(partition).copied().unwrap_or(0) {
            assert!(
                emitted_causes.contains(id),
                "input {partition}/{offset} committed without effects"
            );
        }
    }
    println!(
        "SIGTERM: {} inputs had effects, all covered by the committed offsets {committed:?}",
        emitted_causes.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_leaves_and_rejoins_without_loss_or_duplicate_effects() {
    let setup = Setup::new("rt-rebalance");
    setup.create_topics().await;
    let codec = codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(&codec, &setup.input(), 0, 1500, &mut inputs).await;

    let a = Worker::start(&setup, "a");
    let b = Worker::start(&setup, "b");
    let reader = output_consumer(&setup);
    let mut outputs = Outputs::default();
    read_outputs(
        &codec,
        &reader,
        &inputs,
        &mut outputs,
        Duration::from_secs(90),
    )
    .await;

    // b leaves; more input arrives; b comes back; more input arrives.
    let (_, clean) = b.terminate();
    assert!(clean);
    produce_adjustments(&codec, &setup.input(), 1500, 1500, &mut inputs).await;
    read_outputs(
        &codec,
        &reader,
        &inputs,
        &mut outputs,
        Duration::from_secs(90),
    )
    .await;
    let b_again = Worker::start(&setup, "b-again");
    produce_adjustments(&codec, &setup.input(), 3000, 1500, &mut inputs).await;
    read_outputs(
        &codec,
        &reader,
        &inputs,
        &mut outputs,
        Duration::from_secs(90),
    )
    .await;
    settle_and_check("rebalance", &codec, &reader, &inputs, &mut outputs).await;
    for worker in [a, b_again] {
        let (_, clean) = worker.terminate();
        assert!(clean);
    }
}
