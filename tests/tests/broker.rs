//! The Kafka semantics the saga relies on, checked against the real broker: keyed partitioning
//! and per-key order, record headers, consumer-group offsets that survive the consumer, high
//! watermarks (consumer lag is computed from them), and topic configs.

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{BorrowedMessage, Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};
use retail_integration_tests::{TIMEOUT, consumer, create_topic, producer, unique_name};

async fn next(consumer: &StreamConsumer) -> BorrowedMessage<'_> {
    tokio::time::timeout(TIMEOUT, consumer.recv())
        .await
        .expect("a record within the timeout")
        .expect("no consumer error")
}

async fn produce_numbered(topic: &str, count: usize) {
    let producer = producer();
    for number in 0..count {
        let key = format!("order-{}", number % 5);
        let payload = number.to_string();
        producer
            .send(FutureRecord::to(topic).key(&key).payload(&payload), TIMEOUT)
            .await
            .expect("delivered");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_records_keep_per_key_order_and_headers_round_trip() {
    let topic = unique_name("broker-keys");
    create_topic(&topic, 3, &[]).await;
    let producer = producer();
    // Keys and payloads outlive the in-flight sends that borrow them.
    let records: Vec<(String, [u8; 4])> = (0..30_u32)
        .map(|number| (format!("order-{}", number % 6), number.to_be_bytes()))
        .collect();
    let mut sends = Vec::new();
    for (key, payload) in &records {
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "traceparent",
                value: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
            })
            .insert(Header {
                key: "binary",
                value: Some(&[0_u8, 255, 7][..]),
            })
            .insert(Header::<&[u8]> {
                key: "empty",
                value: None,
            });
        sends.push(
            producer.send(
                FutureRecord::to(&topic)
                    .key(key)
                    .payload(payload)
                    .headers(headers),
                TIMEOUT,
            ),
        );
    }
    for send in sends {
        send.await.expect("delivered");
    }

    let consumer = consumer(&unique_name("group"));
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut partition_of_key: HashMap<String, i32> = HashMap::new();
    let mut last_number_of_key: HashMap<String, u32> = HashMap::new();
    for _ in 0..30 {
        let message = next(&consumer).await;
        let key = String::from_utf8(message.key().expect("key").to_vec()).expect("utf-8 key");
        let number = u32::from_be_bytes(
            message
                .payload()
                .expect("payload")
                .try_into()
                .expect("4 bytes"),
        );
        assert_eq!(
            *partition_of_key
                .entry(key.clone())
                .or_insert(message.partition()),
            message.partition()
        );
        if let Some(previous) = last_number_of_key.insert(key.clone(), number) {
            assert!(previous < number, "key {key}: {number} after {previous}");
        }
        let headers = message.headers().expect("headers");
        assert_eq!(headers.count(), 3);
        assert_eq!(headers.get(0).key, "traceparent");
        assert_eq!(
            headers.get(0).value,
            Some(&b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"[..])
        );
        assert_eq!(headers.get(1).value, Some(&[0_u8, 255, 7][..]));
        assert_eq!((headers.get(2).key, headers.get(2).value), ("empty", None));
    }
    assert_eq!(last_number_of_key.len(), 6);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_resumes_from_its_committed_offset() {
    let topic = unique_name("broker-offsets");
    create_topic(&topic, 1, &[]).await;
    produce_numbered(&topic, 10).await;
    let group = unique_name("group");

    let first = consumer(&group);
    first.subscribe(&[&topic]).expect("subscribe");
    let mut last = None;
    for expected in 0..4 {
        let message = next(&first).await;
        assert_eq!(message.payload(), Some(expected.to_string().as_bytes()));
        last = Some((message.partition(), message.offset()));
    }
    let (partition, offset) = last.expect("read four");
    let mut committed = TopicPartitionList::new();
    // Kafka offsets are exclusive: commit the offset of the next record to read.
    committed
        .add_partition_offset(&topic, partition, Offset::Offset(offset + 1))
        .expect("offset");
    first.commit(&committed, CommitMode::Sync).expect("commit");
    first.unsubscribe();
    drop(first);

    let second = consumer(&group);
    second.subscribe(&[&topic]).expect("subscribe");
    let message = next(&second).await;
    assert_eq!(
        message.payload(),
        Some(&b"4"[..]),
        "the group resumes after its commit"
    );
    let positions = second
        .committed(Duration::from_secs(10))
        .expect("committed offsets");
    assert_eq!(
        positions.find_partition(&topic, 0).map(|p| p.offset()),
        Some(Offset::Offset(4))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_watermarks_count_the_records() {
    let topic = unique_name("broker-watermarks");
    create_topic(&topic, 2, &[]).await;
    produce_numbered(&topic, 10).await;
    let probe = consumer(&unique_name("group"));
    let mut total = 0;
    for partition in 0..2 {
        let (low, high) = probe
            .fetch_watermarks(&topic, partition, TIMEOUT)
            .expect("watermarks");
        assert_eq!(low, 0);
        total += high;
    }
    assert_eq!(total, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compacted_topic_keeps_its_config() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;

    let topic = unique_name("broker-compacted");
    create_topic(&topic, 1, &[("cleanup.policy", "compact")]).await;
    let admin: AdminClient<DefaultClientContext> = retail_integration_tests::client_config()
        .create()
        .expect("admin");
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic(&topic)], &AdminOptions::new())
        .await
        .expect("describe configs");
    let resource = described
        .into_iter()
        .next()
        .expect("one resource")
        .expect("described");
    let policy = resource
        .get("cleanup.policy")
        .and_then(|entry| entry.value.clone());
    assert_eq!(policy.as_deref(), Some("compact"));
}
