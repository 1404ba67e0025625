//! `retailctl`, the operator CLI, as a process against the live broker and registry: topic
//! creation, schema registration and compatibility checks, tail, an order's timeline, dead
//! letter listing and replay, and the errors an operator sees for a wrong address, a missing
//! topic or an unknown order.
//!
//! Every test uses its own topic prefix (`WORKER_TOPIC_PREFIX`), topics and, where it writes
//! schemas that could clash, its own development registry. `cargo build -p retail-ops` first
//! (tests/run builds every binary).

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use proptest::arbitrary::any;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use retail_codec::{Codec, RegistrationMode, registry_settings};
use retail_events::fulfilment::FulfilmentStarted;
use retail_events::inventory::StockReserved;
use retail_events::payments::PaymentAuthorized;
use retail_events::shipping::ShipmentCreated;
use retail_events::storefront::OrderPlaced;
use retail_events::{Envelope, Event, EventId, EventType, Timestamp, Topic};
use retail_integration_tests::process::{binary, free_port};
use retail_integration_tests::{
    DevRegistry, TIMEOUT, bootstrap_servers, client_config, consumer, create_topic, producer,
    schema_registry_url, unique_name,
};
use retail_runtime::dead_letter::DeadLetter;
use serde_json::Value as Json;

/// Runs `retailctl` with `args` and extra environment variables, on the test's broker and
/// registry unless `env` says otherwise.
fn retailctl(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(binary("retailctl"));
    command
        .args(args)
        .env("KAFKA_BOOTSTRAP_SERVERS", bootstrap_servers())
        .env("SCHEMA_REGISTRY_URL", schema_registry_url())
        .env_remove("WORKER_TOPIC_PREFIX")
        .env_remove("WORKER_TOPIC_PARTITIONS");
    for (key, value) in env {
        command.env(key, value);
    }
    command.output().expect("retailctl runs")
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Asserts success and returns stdout.
fn succeeded(output: &Output) -> String {
    assert!(
        output.status.success(),
        "retailctl failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        stdout(output),
        stderr(output)
    );
    stdout(output)
}

/// Asserts exit status 1 and returns stderr.
fn failed(output: &Output) -> String {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit status 1\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
    stderr(output)
}

/// A fresh topic prefix, so the catalogue topics are this test's own.
fn fresh_prefix(test: &str) -> String {
    format!("{}.", unique_name(test))
}

/// An arbitrary event of type `E` (deterministic), for the fields a test does not care about.
fn arbitrary<E: EventType + proptest::arbitrary::Arbitrary>() -> E {
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(RngAlgorithm::ChaCha),
    );
    any::<E>()
        .new_tree(&mut runner)
        .expect("strategy")
        .current()
}

fn envelope<E: EventType>(
    order_id: &str,
    id: EventId,
    cause: Option<EventId>,
    occurred_ms: i64,
    producer: &str,
) -> Envelope {
    Envelope {
        event_id: id,
        event_type: E::NAME.to_owned(),
        occurred_at: Timestamp::from_micros(occurred_ms * 1000),
        correlation_id: order_id.to_owned(),
        causation_id: cause,
        producer: producer.to_owned(),
        schema_version: E::REVISION,
    }
}

async fn writer_codec() -> Codec {
    let settings = registry_settings(&schema_registry_url(), None, Duration::from_secs(10))
        .expect("registry settings");
    Codec::connect(settings, RegistrationMode::Register)
        .await
        .expect("register catalogue")
}

/// Produces `event` to `topic` with the record timestamp `timestamp_ms`.
async fn produce(codec: &Codec, topic: &str, event: &Event, timestamp_ms: i64) {
    let payload = codec.encode_to_vec(event).expect("encode");
    producer()
        .send(
            FutureRecord::to(topic)
                .key(event.key())
                .payload(&payload)
                .timestamp(timestamp_ms),
            TIMEOUT,
        )
        .await
        .expect("delivered");
}

/// The sum of the high watermarks of `topic`'s partitions.
fn record_count(topic: &str, partitions: i32) -> i64 {
    let consumer: BaseConsumer = client_config().create().expect("client");
    (0..partitions)
        .map(|partition| {
            consumer
                .fetch_watermarks(topic, partition, TIMEOUT)
                .expect("watermarks")
                .1
        })
        .sum()
}

#[test]
fn topics_create_is_idempotent_and_reports_a_partition_mismatch() {
    let prefix = fresh_prefix("ops-topics");
    let env = [
        ("WORKER_TOPIC_PREFIX", prefix.as_str()),
        ("WORKER_TOPIC_PARTITIONS", "2"),
    ];
    let first = succeeded(&retailctl(&["topics", "create"], &env));
    for topic in Topic::ALL {
        let line = format!("created   {prefix}{} (2 partitions)", topic.name());
        assert!(first.contains(&line), "{line} missing:\n{first}");
    }
    let second = succeeded(&retailctl(&["topics", "create"], &env));
    assert!(!second.contains("created"), "{second}");
    assert_eq!(
        second.matches("exists").count(),
        Topic::ALL.len(),
        "{second}"
    );

    let mismatch = retailctl(
        &["topics", "create", "--topic-partitions", "3"],
        &[("WORKER_TOPIC_PREFIX", prefix.as_str())],
    );
    let message = failed(&mismatch);
    assert!(
        message.contains(
            "partition counts differ from --topic-partitions (WORKER_TOPIC_PARTITIONS) 3"
        ) && message.contains(&format!("{prefix}storefront.orders.v1: 2")),
        "{message}"
    );
    assert!(
        stdout(&mismatch).contains("MISMATCH"),
        "{}",
        stdout(&mismatch)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schemas_register_then_check_passes_and_an_incompatible_change_fails() {
    // A registry of its own: the test registers an edited schema's check against it only.
    let registry = DevRegistry::start(&unique_name("_schemas-ops")).await;
    let env = [("SCHEMA_REGISTRY_URL", registry.url.as_str())];
    let subject = "storefront.orders.v1-retail.storefront.OrderPlaced";

    let before = tokio::task::block_in_place(|| succeeded(&retailctl(&["schemas", "check"], &env)));
    assert!(
        before.contains(&format!("new           {subject}")),
        "{before}"
    );

    let registered =
        tokio::task::block_in_place(|| succeeded(&retailctl(&["schemas", "register"], &env)));
    assert_eq!(
        registered.matches("registered  ").count(),
        retail_events::EVENT_TYPES.len(),
        "{registered}"
    );
    let again =
        tokio::task::block_in_place(|| succeeded(&retailctl(&["schemas", "register"], &env)));
    assert_eq!(registered, again, "registration is idempotent: same ids");

    // The repository's folder, copied: compatible with what was registered.
    let dir = std::env::temp_dir().join(unique_name("ops-schemas"));
    copy_dir(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../schemas"),
        &dir,
    );
    let dir_arg = dir.display().to_string();
    let checked = tokio::task::block_in_place(|| {
        succeeded(&retailctl(&["schemas", "check", "--dir", &dir_arg], &env))
    });
    assert_eq!(
        checked.matches("compatible    ").count(),
        retail_events::EVENT_TYPES.len(),
        "{checked}"
    );

    // A field added without a default: new readers cannot read old OrderPlaced records.
    let file = dir.join("storefront/OrderPlaced.avsc");
    let mut schema: Json =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
    schema["fields"]
        .as_array_mut()
        .expect("fields")
        .push(serde_json::json!({ "name": "loyalty_tier", "type": "string" }));
    std::fs::write(&file, schema.to_string()).expect("write");
    let incompatible =
        tokio::task::block_in_place(|| retailctl(&["schemas", "check", "--dir", &dir_arg], &env));
    let message = failed(&incompatible);
    assert!(
        message.contains("1 subject(s) incompatible") && message.contains(subject),
        "{message}"
    );
    let report = stdout(&incompatible);
    assert!(
        report.contains(&format!("INCOMPATIBLE  {subject}")),
        "{report}"
    );
    assert!(
        report.contains("compatible    fulfilment.orders.v1-retail.fulfilment.OrderPacked"),
        "{report}"
    );

    // Registering it is refused too, naming the subject.
    let refused = tokio::task::block_in_place(|| {
        retailctl(&["schemas", "register", "--dir", &dir_arg], &env)
    });
    assert!(failed(&refused).contains(subject), "{}", stderr(&refused));

    std::fs::remove_dir_all(&dir).expect("cleanup");
    registry.stop().await;
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let path = entry.expect("entry").path();
        let target = to.join(path.file_name().expect("name"));
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).expect("copy");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_decodes_events_and_reports_undecodable_records() {
    let codec = writer_codec().await;
    let topic = unique_name("ops-tail");
    create_topic(&topic, 1, &[]).await;
    let order_id = unique_name("order");
    let mut placed: OrderPlaced = arbitrary();
    placed.order_id = order_id.clone();
    placed.envelope =
        envelope::<OrderPlaced>(&order_id, EventId::random(), None, 1_000, "storefront");
    let payload = codec.encode_to_vec(&placed.clone().into()).expect("encode");
    producer()
        .send(
            FutureRecord::to(&topic)
                .key(&order_id)
                .payload(&payload)
                .headers(OwnedHeaders::new().insert(Header {
                    key: "traceparent",
                    value: Some("00-trace"),
                })),
            TIMEOUT,
        )
        .await
        .expect("delivered");
    producer()
        .send(
            FutureRecord::to(&topic).key("junk").payload("not avro"),
            TIMEOUT,
        )
        .await
        .expect("delivered");

    let output =
        tokio::task::block_in_place(|| retailctl(&["tail", &topic, "--from-beginning"], &[]));
    let lines: Vec<Json> = succeeded(&output)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let event = &lines[0];
    assert_eq!(event["topic"], topic.as_str());
    assert_eq!(event["offset"], 0);
    assert_eq!(event["key"], order_id.as_str());
    assert_eq!(event["record_name"], "retail.storefront.OrderPlaced");
    assert_eq!(event["value"]["order_id"], order_id.as_str());
    assert_eq!(
        event["value"]["envelope"]["event_id"],
        placed.envelope.event_id.to_string()
    );
    assert_eq!(
        event["headers"],
        serde_json::json!([{ "key": "traceparent", "value": "00-trace" }])
    );
    let junk = &lines[1];
    assert_eq!(junk["key"], "junk");
    assert_eq!(junk["error"]["class"], "not_confluent_framing");
    assert!(junk.get("value").is_none(), "{junk}");

    let limited = tokio::task::block_in_place(|| {
        retailctl(&["tail", &topic, "--from-beginning", "--limit", "1"], &[])
    });
    assert_eq!(succeeded(&limited).lines().count(), 1);

    let usage = tokio::task::block_in_place(|| retailctl(&["tail", &topic], &[]));
    assert!(failed(&usage).contains("--follow"), "{}", stderr(&usage));

    let missing = unique_name("ops-no-such-topic");
    let output =
        tokio::task::block_in_place(|| retailctl(&["tail", &missing, "--from-beginning"], &[]));
    let message = failed(&output);
    assert!(
        message.contains(&format!("topic {missing} does not exist")),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn timeline_lists_an_orders_events_in_causal_order_with_latencies() {
    let prefix = fresh_prefix("ops-timeline");
    let env = [("WORKER_TOPIC_PREFIX", prefix.as_str())];
    tokio::task::block_in_place(|| succeeded(&retailctl(&["topics", "create"], &env)));
    let codec = writer_codec().await;
    let topic = |topic: Topic| format!("{prefix}{}", topic.name());

    let order_id = unique_name("order");
    let t0 = 1_700_000_000_000_i64;
    let placed_id = EventId::random();
    let reserved_id = EventId::derived(placed_id, "StockReserved", "");
    let payment_id = EventId::random();
    let started_id = EventId::derived(payment_id, "FulfilmentStarted", "");
    let shipped_id = EventId::derived(started_id, "ShipmentCreated", "");

    let mut placed: OrderPlaced = arbitrary();
    placed.order_id = order_id.clone();
    placed.envelope = envelope::<OrderPlaced>(&order_id, placed_id, None, t0 - 5, "storefront");
    let mut reserved: StockReserved = arbitrary();
    reserved.order_id = order_id.clone();
    reserved.envelope =
        envelope::<StockReserved>(&order_id, reserved_id, Some(placed_id), t0, "inventory");
    let mut payment: PaymentAuthorized = arbitrary();
    payment.order_id = order_id.clone();
    payment.envelope =
        envelope::<PaymentAuthorized>(&order_id, payment_id, None, t0 + 250, "payments");
    // Fulfilment's clock is behind: its event claims an earlier time than its cause.
    let mut started: FulfilmentStarted = arbitrary();
    started.order_id = order_id.clone();
    started.envelope = envelope::<FulfilmentStarted>(
        &order_id,
        started_id,
        Some(payment_id),
        t0 + 100,
        "fulfilment",
    );
    let mut shipped: ShipmentCreated = arbitrary();
    shipped.order_id = order_id.clone();
    shipped.envelope = envelope::<ShipmentCreated>(
        &order_id,
        shipped_id,
        Some(started_id),
        t0 + 450,
        "shipping",
    );
    // Another order on the same topics, which the timeline must leave out.
    let mut other: OrderPlaced = arbitrary();
    other.order_id = unique_name("other-order");
    other.envelope =
        envelope::<OrderPlaced>(&other.order_id, EventId::random(), None, t0, "storefront");

    // Produced out of order; record timestamps are the write times the latencies use.
    produce(
        &codec,
        &topic(Topic::ShippingShipments),
        &shipped.into(),
        t0 + 1_000,
    )
    .await;
    produce(
        &codec,
        &topic(Topic::FulfilmentOrders),
        &started.into(),
        t0 + 450,
    )
    .await;
    produce(&codec, &topic(Topic::Payments), &payment.into(), t0 + 300).await;
    produce(
        &codec,
        &topic(Topic::InventoryReservations),
        &reserved.into(),
        t0 + 120,
    )
    .await;
    produce(&codec, &topic(Topic::StorefrontOrders), &placed.into(), t0).await;
    produce(
        &codec,
        &topic(Topic::StorefrontOrders),
        &other.into(),
        t0 + 5,
    )
    .await;

    let output =
        tokio::task::block_in_place(|| retailctl(&["timeline", &order_id, "--json"], &env));
    let timeline: Json = serde_json::from_str(&succeeded(&output)).expect("JSON");
    let events = timeline["events"].as_array().expect("events");
    let types: Vec<&str> = events
        .iter()
        .map(|event| event["event_type"].as_str().expect("type"))
        .collect();
    assert_eq!(
        types,
        [
            "OrderPlaced",
            "StockReserved",
            "PaymentAuthorized",
            "FulfilmentStarted",
            "ShipmentCreated"
        ]
    );
    let field =
        |name: &str| -> Vec<Json> { events.iter().map(|event| event[name].clone()).collect() };
    assert_eq!(
        field("since_placed_us"),
        [0, 120_000, 300_000, 450_000, 1_000_000].map(Json::from)
    );
    assert_eq!(
        field("since_previous_us"),
        [
            Json::Null,
            120_000.into(),
            180_000.into(),
            150_000.into(),
            550_000.into()
        ]
    );
    assert_eq!(
        field("cause_step"),
        [Json::Null, 1.into(), Json::Null, 3.into(), 4.into()]
    );
    assert_eq!(events[0]["topic"], topic(Topic::StorefrontOrders).as_str());

    let table =
        tokio::task::block_in_place(|| succeeded(&retailctl(&["timeline", &order_id], &env)));
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines[0], format!("order {order_id}: 5 events"));
    assert!(
        lines[2].contains("OrderPlaced") && lines[2].contains("+0us"),
        "{table}"
    );
    assert!(
        lines[6].contains("ShipmentCreated")
            && lines[6].contains("+1.00s")
            && lines[6].contains("+550.0ms")
            && lines[6].contains("#4"),
        "{table}"
    );

    let unknown = unique_name("no-such-order");
    let output = tokio::task::block_in_place(|| retailctl(&["timeline", &unknown], &env));
    let message = failed(&output);
    assert!(
        message.contains(&format!("unknown order id {unknown}"))
            && message.contains(&topic(Topic::StorefrontOrders)),
        "{message}"
    );

    // Without the prefix the topics are missing: the message names the one it looked for.
    let output = tokio::task::block_in_place(|| {
        retailctl(
            &["timeline", &order_id],
            &[("WORKER_TOPIC_PREFIX", "ops-no-such-prefix.")],
        )
    });
    assert!(
        failed(&output).contains("topic ops-no-such-prefix.storefront.orders.v1 does not exist"),
        "{}",
        stderr(&output)
    );
}

/// Produces a dead letter of `original` to `dlq` as the runtime writes them.
async fn dead_letter(
    dlq: &str,
    original: &str,
    key: &str,
    payload: &[u8],
    class: &str,
    offset: i64,
) {
    let letter = DeadLetter {
        error_class: class.to_owned(),
        message: format!("{class} happened"),
        topic: original.to_owned(),
        partition: 0,
        offset,
        timestamp: Some(1_700_000_000_000 + offset),
        worker: "inventory".to_owned(),
        attempts: 3,
    };
    let headers = letter.headers().iter().fold(
        OwnedHeaders::new().insert(Header {
            key: "traceparent",
            value: Some(format!("00-trace-{offset}").as_str()),
        }),
        |headers, (name, value)| {
            headers.insert(Header {
                key: name,
                value: Some(value),
            })
        },
    );
    producer()
        .send(
            FutureRecord::to(dlq)
                .key(key)
                .payload(payload)
                .headers(headers),
            TIMEOUT,
        )
        .await
        .expect("delivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_list_shows_dead_letters_and_replay_reinjects_each_once() {
    let codec = writer_codec().await;
    let group = unique_name("ops-worker");
    let dlq = format!("{group}.dlq");
    let original = unique_name("ops-original");
    create_topic(&dlq, 1, &[]).await;
    create_topic(&original, 1, &[]).await;

    let mut placed: OrderPlaced = arbitrary();
    placed.order_id = unique_name("order");
    placed.envelope =
        envelope::<OrderPlaced>(&placed.order_id, EventId::random(), None, 1, "storefront");
    let payload = codec.encode_to_vec(&placed.clone().into()).expect("encode");
    dead_letter(
        &dlq,
        &original,
        &placed.order_id,
        &payload,
        "incompatible_reader",
        41,
    )
    .await;
    dead_letter(&dlq, &original, "order-b", b"second", "malformed_body", 42).await;

    let listed = tokio::task::block_in_place(|| {
        succeeded(&retailctl(&["dlq", "list", "--topic", &dlq, "--json"], &[]))
    });
    let lines: Vec<Json> = listed
        .lines()
        .map(|line| serde_json::from_str(line).expect("JSON line"))
        .collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert_eq!(lines[0]["key"], placed.order_id.as_str());
    assert_eq!(
        lines[0]["dead_letter"]["error_class"],
        "incompatible_reader"
    );
    assert_eq!(lines[0]["dead_letter"]["original_topic"], original.as_str());
    assert_eq!(lines[0]["dead_letter"]["original_offset"], 41);
    assert_eq!(lines[0]["dead_letter"]["worker"], "inventory");
    assert_eq!(lines[0]["dead_letter"]["attempts"], 3);
    assert_eq!(lines[0]["replayed"], false);
    assert_eq!(
        lines[0]["headers"],
        serde_json::json!([{ "key": "traceparent", "value": "00-trace-41" }])
    );
    let table = tokio::task::block_in_place(|| {
        succeeded(&retailctl(&["dlq", "list", "--worker", &group], &[]))
    });
    assert!(
        table.contains("incompatible_reader") && table.contains(&format!("{original}/0@41")),
        "{table}"
    );

    let dry = tokio::task::block_in_place(|| {
        succeeded(&retailctl(
            &["dlq", "replay", "--topic", &dlq, "--dry-run"],
            &[],
        ))
    });
    assert_eq!(dry.matches("would replay").count(), 2, "{dry}");
    assert_eq!(record_count(&original, 1), 0, "a dry run produces nothing");

    // One error class first; the ledger then keeps the second run from repeating it.
    let first = tokio::task::block_in_place(|| {
        succeeded(&retailctl(
            &[
                "dlq",
                "replay",
                "--topic",
                &dlq,
                "--error-class",
                "incompatible_reader",
            ],
            &[],
        ))
    });
    assert!(
        first.contains(&format!(
            "{dlq}: 1 replayed, 0 already replayed, 1 filtered out"
        )),
        "{first}"
    );
    let second = tokio::task::block_in_place(|| {
        succeeded(&retailctl(&["dlq", "replay", "--topic", &dlq], &[]))
    });
    assert!(
        second.contains(&format!("{dlq}: 1 replayed, 1 already replayed")),
        "{second}"
    );
    let third = tokio::task::block_in_place(|| {
        succeeded(&retailctl(&["dlq", "replay", "--topic", &dlq], &[]))
    });
    assert!(
        third.contains(&format!("{dlq}: 0 replayed, 2 already replayed")),
        "{third}"
    );
    assert_eq!(
        record_count(&original, 1),
        2,
        "each dead letter replayed once"
    );

    // The original records: key, value bytes and headers as they were, no dlq.* headers.
    let reader = consumer(&unique_name("ops-check"));
    reader.subscribe(&[&original]).expect("subscribe");
    let mut replayed = Vec::new();
    while replayed.len() < 2 {
        let message = tokio::time::timeout(TIMEOUT, reader.recv())
            .await
            .expect("in time")
            .expect("record");
        let headers: Vec<(String, Vec<u8>)> = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (
                            header.key.to_owned(),
                            header.value.unwrap_or_default().to_vec(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        replayed.push((
            message.key().map(<[u8]>::to_vec),
            message.payload().map(<[u8]>::to_vec),
            headers,
            message.timestamp().to_millis(),
        ));
    }
    assert_eq!(
        replayed[0],
        (
            Some(placed.order_id.clone().into_bytes()),
            Some(payload.clone()),
            vec![("traceparent".to_owned(), b"00-trace-41".to_vec())],
            Some(1_700_000_000_041),
        )
    );
    assert_eq!(replayed[1].0.as_deref(), Some(&b"order-b"[..]));
    assert_eq!(replayed[1].1.as_deref(), Some(&b"second"[..]));

    let listed = tokio::task::block_in_place(|| {
        succeeded(&retailctl(&["dlq", "list", "--topic", &dlq, "--json"], &[]))
    });
    assert_eq!(listed.matches("\"replayed\":true").count(), 2, "{listed}");
}

#[test]
fn a_wrong_broker_or_registry_address_fails_fast_naming_it() {
    let address = format!("127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = retailctl(
        &[
            "topics",
            "create",
            "--bootstrap-servers",
            &address,
            "--timeout",
            "2s",
        ],
        &[],
    );
    let message = failed(&output);
    assert!(
        message.contains(&format!(
            "cannot reach the Kafka cluster at {address} within 2s"
        )),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );

    let url = format!("http://127.0.0.1:{}", free_port());
    let started = Instant::now();
    let output = retailctl(&["schemas", "check", "--schema-registry-url", &url], &[]);
    let message = failed(&output);
    assert!(
        message.contains(&format!("schema registry at {url} does not answer")),
        "{message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}
