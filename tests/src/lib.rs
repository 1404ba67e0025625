//! The harness shared by the broker- and registry-backed tests.
//!
//! The tests talk to a real Kafka-protocol broker and a real Confluent-API schema registry, found
//! through the same variables the workers use: `KAFKA_BOOTSTRAP_SERVERS` and
//! `SCHEMA_REGISTRY_URL`. `tests/run` starts the local stack (`deploy/local/stack`) and sets them;
//! point them at Apache Kafka and Confluent Schema Registry to run the same tests there.
//!
//! Tests never share state: every test uses fresh random topic, group and subject names, so they
//! run in parallel and can be re-run against a long-lived cluster.

pub mod cluster;
pub mod counting;
pub mod metrics_catalogue;
pub mod process;
pub mod tls;
pub mod webhook;

use std::time::Duration;

use rand::Rng;
use rand::distr::Alphanumeric;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::StreamConsumer;
use rdkafka::producer::FutureProducer;
use rdkafka::types::RDKafkaErrorCode;

/// How long a test waits for the broker before it fails.
pub const TIMEOUT: Duration = Duration::from_secs(30);

fn required_env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set: run the suite with `tests/run`, which starts the local broker and \
             registry, or export KAFKA_BOOTSTRAP_SERVERS and SCHEMA_REGISTRY_URL to point at yours"
        )
    })
}

/// The broker's bootstrap servers, from `KAFKA_BOOTSTRAP_SERVERS`.
pub fn bootstrap_servers() -> String {
    required_env("KAFKA_BOOTSTRAP_SERVERS")
}

/// The schema registry's URL, from `SCHEMA_REGISTRY_URL`.
pub fn schema_registry_url() -> String {
    required_env("SCHEMA_REGISTRY_URL")
}

/// A name no other test (or earlier run) uses: `<prefix>-<12 random characters>`.
pub fn unique_name(prefix: &str) -> String {
    let suffix: String = rand::rng()
        .sample_iter(&Alphanumeric)
        .take(12)
        .map(char::from)
        .collect();
    format!("{prefix}-{}", suffix.to_lowercase())
}

/// Client settings every test client starts from.
pub fn client_config() -> ClientConfig {
    client_config_on(&bootstrap_servers())
}

/// Client settings for the broker at `bootstrap` (e.g. librdkafka's mock cluster).
pub fn client_config_on(bootstrap: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("socket.timeout.ms", "10000");
    config
}

/// Creates a topic (the local broker does not auto-create topics), with extra topic configs.
pub async fn create_topic(name: &str, partitions: i32, configs: &[(&str, &str)]) {
    create_topic_on(&bootstrap_servers(), name, partitions, configs).await;
}

/// Creates a topic on the broker at `bootstrap`.
pub async fn create_topic_on(
    bootstrap: &str,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) {
    let admin: AdminClient<DefaultClientContext> =
        client_config_on(bootstrap).create().expect("admin client");
    let mut topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    for &(key, value) in configs {
        topic = topic.set(key, value);
    }
    let options = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let results = admin
        .create_topics([&topic], &options)
        .await
        .expect("create topics request");
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((topic, code)) => panic!("creating topic {topic} failed: {code}"),
        }
    }
}

/// An idempotent producer, as the workers use.
pub fn producer() -> FutureProducer {
    producer_on(&bootstrap_servers())
}

/// An idempotent producer to the broker at `bootstrap`. Keys go to the partitions the workers
/// and the Java client put them in (`murmur2_random`): a stage joins a key's records from
/// several topics only when they share its partition.
pub fn producer_on(bootstrap: &str) -> FutureProducer {
    client_config_on(bootstrap)
        .set("partitioner", retail_runtime::config::PARTITIONER)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// A consumer in `group` that starts from the earliest offset and commits only when told.
/// It reads committed records only (`read_committed`, librdkafka's default).
pub fn consumer(group: &str) -> StreamConsumer {
    consumer_on(&bootstrap_servers(), group)
}

/// A consumer in `group` on the broker at `bootstrap`.
pub fn consumer_on(bootstrap: &str, group: &str) -> StreamConsumer {
    client_config_on(bootstrap)
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .set("session.timeout.ms", "10000")
        .create()
        .expect("consumer")
}

/// A development registry started in this process, on its own schemas topic, for tests that
/// restart the registry or inspect its storage.
#[derive(Debug)]
pub struct DevRegistry {
    /// Where it answers.
    pub url: String,
    /// Its schemas topic; a new instance on the same topic sees the same state.
    pub schemas_topic: String,
    /// Stops it.
    shutdown: tokio_util::sync::CancellationToken,
    /// Its server task, awaited on stop so the next instance starts after a clean close.
    server: tokio::task::JoinHandle<()>,
}

impl DevRegistry {
    /// Starts a registry on a free loopback port, storing its state in `schemas_topic`.
    pub async fn start(schemas_topic: &str) -> Self {
        use clap::Parser;
        let config = retail_dev_registry::Config::parse_from([
            "dev-registry",
            "--listen",
            "127.0.0.1:0",
            "--bootstrap-servers",
            &bootstrap_servers(),
            "--schemas-topic",
            schemas_topic,
        ]);
        let registry = retail_dev_registry::Registry::start(&config)
            .await
            .expect("dev registry starts");
        let url = format!("http://{}", registry.local_addr());
        let shutdown = tokio_util::sync::CancellationToken::new();
        let stopped = shutdown.clone().cancelled_owned();
        let server = tokio::spawn(async move {
            registry.serve(stopped).await.expect("dev registry serves");
        });
        Self {
            url,
            schemas_topic: schemas_topic.to_owned(),
            shutdown,
            server,
        }
    }

    /// Stops it and waits until it has closed.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.server.await.expect("dev registry task");
    }
}
