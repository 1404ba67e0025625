//! Why a worker stops. Every variant is fatal for the process: the binary logs it and exits
//! non-zero so the orchestrator restarts the instance. Per-record problems never appear here;
//! they are dead-lettered and processing continues.

use rdkafka::error::KafkaError;

use crate::config::ConfigError;
use crate::http::HttpError;
use crate::inflight::DeliveryFailed;
use crate::restore::RestoreError;
use crate::telemetry::TelemetryError;
use crate::topics::TopicError;
use crate::transaction::TxnFatal;

/// A fatal runtime error.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("metrics: {0}")]
    Telemetry(#[from] TelemetryError),
    #[error("http listener: {0}")]
    Http(#[from] HttpError),
    #[error("schema registry: {0}")]
    Registry(#[from] retail_codec::RegistryError),
    #[error("topics: {0}")]
    Topics(#[from] TopicError),
    #[error("kafka, {context}: {source}")]
    Kafka {
        context: &'static str,
        source: KafkaError,
    },
    #[error("restoring state: {0}")]
    Restore(#[from] RestoreError),
    #[error("{0}; offsets past it are not stored, so nothing is lost")]
    Delivery(#[from] DeliveryFailed),
    #[error("encoding an output: {0} (a defect in the event types or schemas)")]
    Encode(#[from] retail_codec::EncodeError),
    #[error("fatal: {reason}")]
    Fatal { reason: String },
    #[error("exactly-once: {0}")]
    Transaction(#[from] TxnFatal),
    #[error("shutdown requested while retrying a record; it is left for the next owner")]
    Interrupted,
    #[error("the processing thread failed: {0}")]
    Thread(String),
}

impl RuntimeError {
    /// A Kafka client error, with what the runtime was doing.
    pub fn kafka(context: &'static str, source: KafkaError) -> Self {
        Self::Kafka { context, source }
    }

    /// Stable class for the `worker_fatal_errors_total` metric.
    pub fn class(&self) -> &'static str {
        match self {
            Self::Config(_) => "config",
            Self::Telemetry(_) => "telemetry",
            Self::Http(_) => "http",
            Self::Registry(_) => "registry",
            Self::Topics(_) => "topics",
            Self::Kafka { .. } => "kafka",
            Self::Restore(_) => "restore",
            Self::Delivery(_) => "delivery",
            Self::Encode(_) => "encode",
            Self::Fatal { .. } => "fatal",
            Self::Transaction(_) => "transaction",
            Self::Interrupted => "interrupted",
            Self::Thread(_) => "thread",
        }
    }
}
