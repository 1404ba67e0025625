//! The worker runtime: what every worker of the saga runs on.
//!
//! A worker is a [`Handler`]: a pure function from an input event and the state of its key to
//! output events. [`run`] consumes the handler's input topics, decodes events, hands them to the
//! handler, and makes the effects durable with effectively-once semantics on any Kafka-protocol
//! broker: outputs and state changes are produced and acknowledged before the input offset is
//! stored, and the state change and the ledger of processed event ids share one changelog
//! record per input, so a re-delivered input re-sends the very same outputs (see [`state`]).
//!
//! # Layout
//! - [`handler`]: the `Handler` trait, its `Context`, and its errors. What a worker writes.
//! - [`engine`]: the processing thread: poll, decode, handle, produce, store offsets; rebalances.
//! - [`state`]: keyed state of one partition, the processed-event ledger, changelog encoding.
//! - [`restore`]: reading a partition's state back from its changelog on assignment.
//! - [`inflight`]: which offsets may be stored, from the producer's acknowledgements.
//! - [`dead_letter`]: dead-letter records and their headers.
//! - [`topics`]: topic names, creation, the co-partitioning check.
//! - [`config`]: the flags and environment every worker shares.
//! - [`telemetry`]: metric names and logging; [`http`]: `/metrics`, `/healthz`, `/readyz`.
//! - [`retry`]: back-off; [`trace`]: W3C trace context; [`shutdown`]: OS signals.
//! - [`transaction`]: the exactly-once mode's transaction state machine.
//! - [`error`]: why a worker stops.

pub mod cli;
pub mod cluster;
pub mod config;
pub mod dead_letter;
pub mod engine;
pub mod error;
pub mod handler;
pub mod http;
pub mod inflight;
pub mod restore;
pub mod retry;
pub mod shutdown;
pub mod state;
pub mod telemetry;
pub mod topics;
pub mod trace;
pub mod transaction;

use std::sync::Arc;
use std::time::Duration;

use retail_codec::{Codec, RegistrationMode, RegistryError, registry_settings_with_ca};
use tokio_util::sync::CancellationToken;

pub use config::{Guarantee, RuntimeConfig};
pub use error::RuntimeError;
pub use handler::{Context, Handler, HandlerError, Timer};

use crate::engine::{Engine, EngineConfig, TransactionSettings};
use crate::http::Health;
use crate::retry::Backoff;
use crate::state::DedupPolicy;
use crate::telemetry::Telemetry;
use crate::topics::{TopicNames, TopicSpec};

/// How long admin and metadata requests may take at start-up.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one start-up probe of the Kafka cluster waits for metadata before it is retried.
const CLUSTER_PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs `handler` as the worker `worker` until `shutdown` is cancelled (then drains, commits and
/// leaves the group within the drain deadline) or a fatal error occurs.
///
/// Start-up: validates the configuration, serves `/metrics`, `/healthz` and `/readyz`, registers
/// the event schemas (waiting for the registry while it is unreachable), creates missing topics,
/// checks that the inputs and the changelog are co-partitioned, then hands over to the processing
/// thread.
pub async fn run<H: Handler>(
    worker: &'static str,
    config: RuntimeConfig,
    handler: H,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    run_stages(worker, config, vec![Stage::new("", handler)], shutdown).await
}

/// One handler of a worker, run as its own consumer group with its own processing thread.
///
/// A worker whose work needs records keyed two ways (orders by order id, stock by SKU) runs
/// one stage per keying, connected by an internal topic: each stage's state is then keyed by
/// what its inputs are partitioned by, and every key has exactly one owner.
pub struct Stage {
    name: &'static str,
    start: Box<dyn FnOnce(StageEnv) -> StageFuture + Send>,
}

type StageFuture = std::pin::Pin<Box<dyn Future<Output = Result<(), RuntimeError>> + Send>>;

impl std::fmt::Debug for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stage")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// What a stage gets from the worker.
struct StageEnv {
    /// Metric label and `producer` of output envelopes: the worker's name, `.<stage>` added.
    label: String,
    group_id: String,
    config: RuntimeConfig,
    codec: Arc<Codec>,
    health: Health,
    shutdown: CancellationToken,
}

impl Stage {
    /// A stage named `name` (`""` for a worker's only stage). Its consumer group is the
    /// worker's group id, `.<name>` added when the name is not empty (so are its dead-letter
    /// and changelog topics, which are named after the group).
    pub fn new<H: Handler>(name: &'static str, handler: H) -> Self {
        Self {
            name,
            start: Box::new(move |env: StageEnv| {
                Box::pin(async move {
                    telemetry::describe_metrics(handler.metrics());
                    let engine_config =
                        prepare_topics(&env.label, &env.group_id, &env.config, &handler).await?;
                    run_engine(
                        engine_config,
                        handler,
                        env.codec,
                        Telemetry::new(&env.label),
                        env.health,
                        env.shutdown,
                    )
                    .await
                })
            }),
        }
    }
}

/// Runs a worker made of several [`Stage`]s in one process, sharing its configuration, its
/// `/metrics`, `/healthz` and `/readyz` listener (ready when every stage is) and its schema
/// registry client. If one stage fails, the others are stopped (drained) and the first error is
/// returned.
pub async fn run_stages(
    worker: &'static str,
    config: RuntimeConfig,
    stages: Vec<Stage>,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let result = start(worker, config, stages, shutdown).await;
    if let Err(error) = &result {
        Telemetry::new(worker).fatal(error.class());
    }
    result
}

async fn start(
    worker: &'static str,
    config: RuntimeConfig,
    stages: Vec<Stage>,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    config.validate()?;
    tracing::info!(worker, config = %config.redacted(), "starting");

    let metrics = telemetry::install_prometheus()?;
    Telemetry::new(worker).started(std::time::SystemTime::now());
    let health = Health::new();
    let http_shutdown = CancellationToken::new();
    let (_http_addr, http_server) = http::serve(
        config.http_addr,
        metrics,
        health.clone(),
        Telemetry::new(worker),
        http_shutdown.clone(),
    )
    .await?;

    let result = async {
        let Some(codec) = connect_codec(&config, &shutdown).await? else {
            return Ok(());
        };
        health.set_registry_reachable(true);
        if !wait_for_cluster(&config, &health, &shutdown).await? {
            return Ok(());
        }
        let base_group = config.group_id_or(worker);
        let single = stages.len() == 1;
        // Every stage stops when one fails; `shutdown` stops them all.
        let stop = shutdown.child_token();
        let mut running = tokio::task::JoinSet::new();
        for stage in stages {
            let (label, group_id) = if stage.name.is_empty() {
                (worker.to_owned(), base_group.clone())
            } else {
                (
                    format!("{worker}.{}", stage.name),
                    format!("{base_group}.{}", stage.name),
                )
            };
            let stage_health = if single {
                health.clone()
            } else {
                health.stage()
            };
            let env = StageEnv {
                label,
                group_id,
                config: config.clone(),
                codec: Arc::clone(&codec),
                health: stage_health,
                shutdown: stop.clone(),
            };
            running.spawn((stage.start)(env));
        }
        if !single {
            // The stages carry readiness; the worker's own flag does not hold it back.
            health.set_partitions_ready(true);
        }
        let mut first_error = None;
        while let Some(joined) = running.join_next().await {
            let outcome =
                joined.unwrap_or_else(|error| Err(RuntimeError::Thread(error.to_string())));
            if let Err(error) = outcome {
                tracing::error!(%error, "a stage failed; stopping the others");
                stop.cancel();
                first_error.get_or_insert(error);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
    .await;

    http_shutdown.cancel();
    if let Err(error) = http_server.await {
        tracing::warn!(%error, "http listener task failed");
    }
    result
}

/// Registers the catalogue's schemas, retrying while the registry is unreachable. `None` if
/// shutdown was requested meanwhile.
async fn connect_codec(
    config: &RuntimeConfig,
    shutdown: &CancellationToken,
) -> Result<Option<Arc<Codec>>, RuntimeError> {
    let settings = registry_settings_with_ca(
        &config.schema_registry_url,
        config.schema_registry_basic_auth.as_deref(),
        config.schema_registry_ca_file.as_deref(),
        Duration::from_secs(10),
    )?;
    // The registry may come up after the workers: wait for it as long as it takes, with jitter
    // so that many instances do not retry in step.
    let backoff = Backoff {
        max_attempts: u32::MAX,
        ..config.backoff()
    };
    let mut attempt: u32 = 0;
    loop {
        match Codec::connect(settings.clone(), RegistrationMode::Register).await {
            Ok(codec) => return Ok(Some(Arc::new(codec))),
            Err(error @ RegistryError::Unavailable { .. }) => {
                attempt = attempt.saturating_add(1);
                let delay = backoff
                    .delay(attempt.min(u32::MAX - 1), &mut rand::rng())
                    .unwrap_or(config.retry_max_backoff);
                tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "schema registry unavailable at start-up");
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return Ok(None),
                }
            }
            Err(error) => return Err(error.into()),
        }
    }
}

/// Waits until the Kafka cluster answers a metadata request, as long as it takes, logging why
/// it does not (unreachable, or refusing the credentials or the TLS settings) and reporting it
/// on `/readyz`. `false` if shutdown was requested meanwhile.
async fn wait_for_cluster(
    config: &RuntimeConfig,
    health: &http::Health,
    shutdown: &CancellationToken,
) -> Result<bool, RuntimeError> {
    let backoff = Backoff {
        max_attempts: u32::MAX,
        ..config.backoff()
    };
    let mut attempt: u32 = 0;
    loop {
        let client = config.admin_config();
        let probe = tokio::task::spawn_blocking(move || {
            cluster::probe_cluster(&client, CLUSTER_PROBE_TIMEOUT).map(drop)
        });
        let outcome = tokio::select! {
            joined = probe => joined.map_err(|error| RuntimeError::Thread(error.to_string()))?,
            () = shutdown.cancelled() => return Ok(false),
        };
        match outcome {
            Ok(()) => {
                health.set_kafka_reachable(true);
                return Ok(true);
            }
            Err(cluster::ProbeError::Client(source)) => {
                return Err(RuntimeError::kafka("creating a client", source));
            }
            Err(cluster::ProbeError::Unreachable { reason, hint }) => {
                health.set_kafka_reachable(false);
                attempt = attempt.saturating_add(1);
                let delay = backoff
                    .delay(attempt.min(u32::MAX - 1), &mut rand::rng())
                    .unwrap_or(config.retry_max_backoff);
                tracing::warn!(
                    bootstrap_servers = %config.bootstrap_servers,
                    reason,
                    hint,
                    retry_in_ms = delay.as_millis() as u64,
                    "Kafka cluster unreachable at start-up"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => return Ok(false),
                }
            }
        }
    }
}

/// Creates missing topics, checks co-partitioning, and resolves the engine's configuration.
async fn prepare_topics<H: Handler>(
    worker: &str,
    group_id: &str,
    config: &RuntimeConfig,
    handler: &H,
) -> Result<EngineConfig, RuntimeError> {
    let group_id = group_id.to_owned();
    let names = TopicNames {
        prefix: config.topic_prefix.clone(),
        group_id: group_id.clone(),
    };
    let inputs: Vec<String> = handler
        .inputs()
        .into_iter()
        .map(|topic| names.of(topic))
        .collect();
    let outputs: Vec<String> = handler
        .outputs()
        .into_iter()
        .map(|topic| names.of(topic))
        .collect();
    let admin = config.admin_config();

    if config.create_topics {
        let spec = |name: &String, configs: &[(&'static str, &'static str)]| TopicSpec {
            name: name.clone(),
            partitions: config.topic_partitions,
            configs: configs.to_vec(),
        };
        let specs: Vec<TopicSpec> = inputs
            .iter()
            .chain(&outputs)
            .map(|name| spec(name, topics::EVENT_TOPIC_CONFIGS))
            .chain([spec(
                &names.dead_letter(),
                topics::DEAD_LETTER_TOPIC_CONFIGS,
            )])
            .collect();
        topics::create_missing(&admin, &specs, config.topic_replication, STARTUP_TIMEOUT).await?;
    }
    let partitions = {
        let (probe, topics_to_probe) = (admin.clone(), inputs.clone());
        let counts = tokio::task::spawn_blocking(move || {
            topics::partition_counts(&probe, &topics_to_probe, STARTUP_TIMEOUT)
        })
        .await
        .map_err(|error| RuntimeError::Thread(error.to_string()))??;
        topics::co_partitioned(&inputs, &counts)?
    };

    let store = match H::STORE {
        None => None,
        Some(store) => {
            let changelog = names.changelog(store);
            if config.create_topics {
                let spec = TopicSpec {
                    name: changelog.clone(),
                    partitions,
                    configs: topics::CHANGELOG_TOPIC_CONFIGS.to_vec(),
                };
                topics::create_missing(&admin, &[spec], config.topic_replication, STARTUP_TIMEOUT)
                    .await?;
            }
            let (probe, topic) = (admin.clone(), changelog.clone());
            let counts = tokio::task::spawn_blocking(move || {
                topics::partition_counts(&probe, &[topic], STARTUP_TIMEOUT)
            })
            .await
            .map_err(|error| RuntimeError::Thread(error.to_string()))??;
            topics::co_partitioned(
                &[inputs[0].clone(), changelog.clone()],
                &[partitions, counts[0]],
            )?;
            let policy = DedupPolicy {
                retention_micros: i64::try_from(config.dedup_retention.as_micros())
                    .unwrap_or(i64::MAX),
                max_per_key: config.dedup_max_per_key,
            };
            Some((changelog, policy))
        }
    };
    tracing::info!(group_id = %group_id, inputs = ?inputs, partitions, changelog = ?store.as_ref().map(|(name, _)| name), "topics ready");

    Ok(EngineConfig {
        worker: worker.to_owned(),
        names,
        inputs,
        consumer: config.consumer_config(&group_id),
        producer: config.producer_config(&group_id),
        restore_client: admin,
        store,
        batch_size: config.batch_size,
        batch_wait: config.batch_wait,
        max_in_flight: config.max_in_flight,
        drain_deadline: config.drain_deadline,
        backoff: config.backoff(),
        restore_timeout: config.max_poll_interval,
        state_flush_interval: config.commit_interval.min(STATE_FLUSH_INTERVAL),
        transactions: (config.guarantee == Guarantee::ExactlyOnce).then(|| {
            // Four blocking calls at most per finish (send offsets and commit, each retried
            // once): together they fit in the drain deadline.
            TransactionSettings {
                timeout: config.drain_deadline / 4,
                max_retries: 1,
            }
        }),
    })
}

/// Longest time a changed key's state waits to be written to the changelog (at least once):
/// long enough that a hot key changed by hundreds of inputs is written once, short enough that
/// the inputs waiting for it stay well below `--max-in-flight` at tens of thousands of inputs a
/// second. (Measured on the inventory hop: 100 ms and 1 s cost the same CPU.)
const STATE_FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Runs the engine on its own OS thread and waits for it.
async fn run_engine<H: Handler>(
    config: EngineConfig,
    handler: H,
    codec: Arc<Codec>,
    telemetry: Telemetry,
    health: Health,
    shutdown: CancellationToken,
) -> Result<(), RuntimeError> {
    let runtime = tokio::runtime::Handle::current();
    let (done, finished) = tokio::sync::oneshot::channel();
    let handler = Arc::new(handler);
    // Every log line of the processing thread carries the worker's name (JSON logs include spans).
    let span = tracing::info_span!("worker", worker = %config.worker);
    std::thread::Builder::new()
        .name(format!("{}-engine", config.worker))
        .spawn(move || {
            let _entered = span.enter();
            let result = Engine::new(config, handler, codec, telemetry, health, runtime, shutdown)
                .and_then(Engine::run)
                .or_else(|error| match error {
                    RuntimeError::Interrupted => {
                        tracing::info!(
                            "shutdown interrupted a retry; the record is left for the next owner"
                        );
                        Ok(())
                    }
                    other => Err(other),
                });
            // The receiver only goes away if `run` itself was dropped.
            let _ignored = done.send(result);
        })
        .map_err(|error| RuntimeError::Thread(error.to_string()))?;
    finished.await.unwrap_or_else(|_| {
        Err(RuntimeError::Thread(
            "the processing thread panicked".to_owned(),
        ))
    })
}
