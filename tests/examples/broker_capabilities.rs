//! Prints which Kafka semantics the broker at `KAFKA_BOOTSTRAP_SERVERS` honours, as observed:
//! idempotent producer, transactions (commit and abort, seen by a read_committed consumer), and
//! whether a compacted topic is actually compacted.
//!
//!     eval "$(deploy/local/stack env)"
//!     cargo run -p retail-integration-tests --example broker_capabilities
//!
//! With the argument `transactions` it probes transactions only and exits 0 if they are
//! honoured, 1 if not: `tests/run` uses it to decide whether the exactly-once broker tests can
//! run.
//!
//! Groups, committed offsets, headers, watermarks and topic configs are covered by the tests in
//! `tests/tests/broker.rs`; this probe covers what the local broker is known to lack, so the
//! README's table can be checked against any broker.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use retail_integration_tests::{client_config, create_topic, unique_name};

fn transactional_producer() -> Result<ThreadedProducer<DefaultProducerContext>, String> {
    let producer: ThreadedProducer<DefaultProducerContext> = client_config()
        .set("transactional.id", unique_name("probe-tx"))
        .set("transaction.timeout.ms", "10000")
        .create()
        .map_err(|error| error.to_string())?;
    producer
        .init_transactions(Duration::from_secs(10))
        .map_err(|error| format!("init_transactions: {error}"))?;
    Ok(producer)
}

fn transactions(topic: &str) -> Result<String, String> {
    let producer = transactional_producer()?;
    producer
        .begin_transaction()
        .map_err(|error| format!("begin: {error}"))?;
    producer
        .send(BaseRecord::to(topic).key("k").payload("aborted"))
        .map_err(|(error, _)| format!("send: {error}"))?;
    producer
        .abort_transaction(Duration::from_secs(10))
        .map_err(|error| format!("abort: {error}"))?;
    producer
        .begin_transaction()
        .map_err(|error| format!("begin: {error}"))?;
    producer
        .send(BaseRecord::to(topic).key("k").payload("committed"))
        .map_err(|(error, _)| format!("send: {error}"))?;
    producer
        .commit_transaction(Duration::from_secs(10))
        .map_err(|error| format!("commit_transaction: {error}"))?;

    let consumer: BaseConsumer = client_config()
        .set("group.id", unique_name("probe"))
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed")
        .create()
        .map_err(|error| error.to_string())?;
    consumer
        .subscribe(&[topic])
        .map_err(|error| error.to_string())?;
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline && !seen.iter().any(|payload| payload == "committed")
    {
        if let Some(Ok(message)) = consumer.poll(Duration::from_millis(500)) {
            seen.push(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned());
        }
    }
    if seen == ["committed"] {
        Ok("commit and abort honoured (read_committed saw only the committed record)".into())
    } else {
        Err(format!("read_committed consumer saw {seen:?}"))
    }
}

fn compaction(topic: &str) -> String {
    let producer: ThreadedProducer<DefaultProducerContext> =
        client_config().create().expect("producer");
    for round in 0..200 {
        let payload = format!("{round}");
        producer
            .send(BaseRecord::to(topic).key("same-key").payload(&payload))
            .expect("queued");
    }
    producer.flush(Duration::from_secs(10)).expect("flushed");
    std::thread::sleep(Duration::from_secs(10));
    let consumer: BaseConsumer = client_config()
        .set("group.id", unique_name("probe"))
        .set("auto.offset.reset", "earliest")
        .create()
        .expect("consumer");
    consumer.subscribe(&[topic]).expect("subscribe");
    let mut count = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Some(Ok(_)) = consumer.poll(Duration::from_millis(500)) {
            count += 1;
        } else if count > 0 {
            break;
        }
    }
    format!("200 records of one key, read back 10 s later: {count} (1 would mean compacted)")
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    if std::env::args().nth(1).as_deref() == Some("transactions") {
        let topic = unique_name("probe-transactions");
        create_topic(&topic, 1, &[]).await;
        let outcome = tokio::task::spawn_blocking(move || transactions(&topic))
            .await
            .expect("probe task");
        return match outcome {
            Ok(seen) => {
                println!("{seen}");
                std::process::ExitCode::SUCCESS
            }
            Err(error) => {
                println!("{error}");
                std::process::ExitCode::FAILURE
            }
        };
    }
    let transactional_topic = unique_name("probe-transactions");
    let compacted_topic = unique_name("probe-compacted");
    create_topic(&transactional_topic, 1, &[]).await;
    create_topic(
        &compacted_topic,
        1,
        &[
            ("cleanup.policy", "compact"),
            ("segment.ms", "1000"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    )
    .await;

    let idempotent: ThreadedProducer<DefaultProducerContext> = client_config()
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    idempotent
        .send(
            BaseRecord::to(&transactional_topic)
                .key("k")
                .payload("idempotent"),
        )
        .expect("queued");
    let idempotence = match idempotent.flush(Duration::from_secs(10)) {
        Ok(()) => "yes (idempotent producer delivered)".to_owned(),
        Err(error) => format!("no: {error}"),
    };
    let transactions = tokio::task::spawn_blocking(move || transactions(&transactional_topic))
        .await
        .expect("probe task")
        .unwrap_or_else(|error| format!("no: {error}"));
    let compaction = tokio::task::spawn_blocking(move || compaction(&compacted_topic))
        .await
        .expect("probe task");

    println!(
        "broker:        {}",
        retail_integration_tests::bootstrap_servers()
    );
    println!("idempotence:   {idempotence}");
    println!("transactions:  {transactions}");
    println!("compaction:    {compaction}");
    std::process::ExitCode::SUCCESS
}
