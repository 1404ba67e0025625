//! The worker runtime against the real broker and registry, with a real worker process
//! (`counting-worker`): crashes, rebalances, poison pills and shutdown, each checked by its
//! effects downstream.
//!
//! Every input is a `StockAdjusted` with a known delta; the worker announces each new per-SKU
//! total as a `LowStock` caused by that input. So the outputs show which inputs were applied,
//! how often, and to which state: effectively-once means one output id per input, identical
//! bytes whenever an output is re-sent, and final totals equal to the sums of the deltas.
//!
//! On the local broker each test gets a fresh broker and registry of its own
//! ([`retail_integration_tests::cluster::Cluster`]): these tests are about pauses, and tansu's
//! own pauses grow with what the rest of the suite wrote to the shared one.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use rdkafka::message::{Headers, Message};
use rdkafka::producer::FutureRecord;
use retail_events::Event;
use retail_integration_tests::{TIMEOUT, consumer_on, producer_on, unique_name};
use retail_runtime::dead_letter::DeadLetter;

use common::{
    Inputs, Outputs, Setup, Worker, adjustment, assert_effectively_once, codec_on,
    committed_offsets, output_consumer, produce_adjustments, read_outputs, read_to_end, read_until,
    settle_and_check,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_stream_resumes_with_exactly_one_set_of_effects() {
    let setup = Setup::new("rt-kill");
    setup.create_topics().await;
    let codec = setup.codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        0,
        3000,
        &mut inputs,
    )
    .await;

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
    let codec = setup.codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        0,
        100,
        &mut inputs,
    )
    .await;

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
    let producer = producer_on(&setup.bootstrap);
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
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        100,
        100,
        &mut inputs,
    )
    .await;

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

    let dead = consumer_on(&setup.bootstrap, &unique_name("dlq-reader"));
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_drains_and_commits_everything_it_emitted() {
    let setup = Setup::new("rt-sigterm");
    setup.create_topics().await;
    let codec = setup.codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        0,
        2000,
        &mut inputs,
    )
    .await;

    let worker = Worker::start(&setup, "only");
    let reader = output_consumer(&setup);
    // More input keeps arriving while it stops.
    let load = {
        let (bootstrap, topic) = (setup.bootstrap.clone(), setup.input());
        let registry = setup.registry.clone();
        tokio::spawn(async move {
            let load_codec = codec_on(&registry).await;
            let mut more = Inputs::new();
            produce_adjustments(&load_codec, &bootstrap, &topic, 2000, 2000, &mut more).await;
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
    // The worker is gone, so the output topic up to its end is everything it emitted.
    let all = read_to_end(&codec, &setup, Duration::from_secs(60)).await;
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
    let codec = setup.codec().await;
    let mut inputs = Inputs::new();
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        0,
        1500,
        &mut inputs,
    )
    .await;

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
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        1500,
        1500,
        &mut inputs,
    )
    .await;
    read_outputs(
        &codec,
        &reader,
        &inputs,
        &mut outputs,
        Duration::from_secs(90),
    )
    .await;
    let b_again = Worker::start(&setup, "b-again");
    produce_adjustments(
        &codec,
        &setup.bootstrap,
        &setup.input(),
        3000,
        1500,
        &mut inputs,
    )
    .await;
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
