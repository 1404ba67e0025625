//! A development Schema Registry: the part of Confluent's REST API that Avro clients use,
//! storing its state the way Confluent does, in a compacted Kafka topic (`_schemas`).
//!
//! Production uses Confluent's registry; this one exists so that a laptop with only a
//! Kafka-protocol broker can run the whole system. It survives its own restarts (state is
//! replayed from the topic) but is **single-instance**: two registries on one topic would hand
//! out the same ids.
//!
//! Limitations, on purpose: Avro only, no schema references (refused with 42201), no modes,
//! contexts, metadata or rule sets (accepted and ignored), no authentication.
//!
//! # Layout
//!
//! | file                   | what lives there                                                   |
//! |------------------------|--------------------------------------------------------------------|
//! | `src/main.rs`          | the `dev-registry` binary: config, tracing, signals, [`run`]        |
//! | `src/config.rs`        | [`Config`]: clap flags with their environment variables             |
//! | `src/api.rs`           | [`router`]: HTTP routes, request/response JSON, write serialization |
//! | `src/store.rs`         | [`Store`]: in-memory state and every Confluent rule, no I/O         |
//! | `src/compatibility.rs` | compatibility levels and the Avro reader/writer checks              |
//! | `src/record.rs`        | [`LogRecord`] and its Confluent `_schemas` key/value format         |
//! | `src/log.rs`           | [`SchemaLog`]: [`KafkaLog`] (topic creation, replay, produce) and [`MemoryLog`] |
//! | `src/error.rs`         | [`RegistryError`]: Confluent error codes and HTTP statuses          |
//!
//! # Startup
//!
//! [`run`] (or [`Registry::start`] then [`Registry::serve`]) creates the topic if needed, replays
//! it into a [`Store`], and only then binds the HTTP port, so a registry that answers HTTP has
//! its full state.

pub mod api;
pub mod compatibility;
pub mod config;
pub mod error;
pub mod log;
pub mod record;
pub mod store;

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use crate::api::router;
pub use crate::config::Config;
pub use crate::error::RegistryError;
pub use crate::log::{KafkaLog, LogError, MemoryLog, SchemaLog};
pub use crate::record::LogRecord;
pub use crate::store::Store;

/// Why the registry could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Creating, replaying or flushing the schemas topic failed.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The HTTP address could not be bound.
    #[error("binding {addr} failed: {source}")]
    Bind {
        /// The configured listen address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("http server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// A registry whose state is replayed and whose port is bound, not yet serving.
#[derive(Debug)]
pub struct Registry {
    /// Bound before serving so that callers (and tests using port 0) know the address.
    listener: TcpListener,
    /// The address actually bound.
    local_addr: SocketAddr,
    /// Kept to flush the producer after the server stopped; the router holds a clone.
    log: KafkaLog,
    /// The routes over the replayed store.
    app: axum::Router,
}

impl Registry {
    /// Creates the schemas topic if needed, replays it, then binds `config.listen`.
    pub async fn start(config: &Config) -> Result<Registry, RunError> {
        Registry::start_cancellable(config, &CancellationToken::new()).await
    }

    /// [`Registry::start`], giving up with [`LogError::Cancelled`] once `cancel` fires.
    pub async fn start_cancellable(
        config: &Config,
        cancel: &CancellationToken,
    ) -> Result<Registry, RunError> {
        tracing::info!(
            listen = %config.listen,
            bootstrap_servers = %config.bootstrap_servers,
            schemas_topic = %config.schemas_topic,
            schemas_topic_replication = config.schemas_topic_replication,
            default_compatibility = %config.default_compatibility,
            kafka_timeout_ms = config.kafka_timeout_ms,
            "starting dev-registry"
        );
        let mut store = Store::new(config.default_compatibility);
        let (log, summary) = KafkaLog::open(&config.kafka_log(), &mut store, cancel).await?;
        tracing::info!(
            schemas_topic = %config.schemas_topic,
            records_applied = summary.applied,
            records_skipped = summary.skipped,
            records_invalid = summary.invalid,
            high_watermark = summary.high_watermark,
            subjects = store.subjects(true, None).len(),
            "replayed schemas topic"
        );
        let listener = TcpListener::bind(config.listen)
            .await
            .map_err(|source| RunError::Bind {
                addr: config.listen,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| RunError::Bind {
            addr: config.listen,
            source,
        })?;
        let app = router(store, log.clone());
        Ok(Registry {
            listener,
            local_addr,
            log,
            app,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Serves until `shutdown` completes, lets in-flight requests finish, then flushes the
    /// producer.
    pub async fn serve(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), RunError> {
        axum::serve(self.listener, self.app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(RunError::Serve)?;
        tracing::info!("http server stopped, flushing the producer");
        self.log.close().await?;
        tracing::info!("dev-registry stopped");
        Ok(())
    }
}

/// Runs the registry until `shutdown` completes.
///
/// `shutdown` is honoured during startup too: a registry stopped while still replaying exits
/// cleanly without binding its port.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RunError> {
    let token = CancellationToken::new();
    let trigger = token.clone();
    let watcher = tokio::spawn(async move {
        shutdown.await;
        trigger.cancel();
    });
    let result = async {
        let registry = match Registry::start_cancellable(&config, &token).await {
            Ok(registry) => registry,
            Err(RunError::Log(LogError::Cancelled)) => {
                tracing::info!("shutdown requested during startup");
                return Ok(());
            }
            Err(error) => return Err(error),
        };
        // Exactly this line (no structured fields after it): people and scripts look for it.
        tracing::info!("dev-registry listening on http://{}", registry.local_addr());
        registry.serve(token.clone().cancelled_owned()).await
    }
    .await;
    watcher.abort();
    result
}
