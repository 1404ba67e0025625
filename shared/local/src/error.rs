//! Why a local run could not start or finish, each with what to look at.

use rdkafka::error::KafkaError;

/// A failure of the run command.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("building the binaries failed ({reason}); see {log}")]
    Build { reason: String, log: String },
    #[error("installing {what} failed ({reason}); see {log}")]
    Install {
        what: &'static str,
        reason: String,
        log: String,
    },
    #[error("{name} did not start: {reason}; see {log}")]
    Start {
        name: String,
        reason: String,
        log: String,
    },
    #[error("{name} exited with {status}; see {log}; last lines:\n{tail}")]
    Exited {
        name: String,
        status: String,
        log: String,
        tail: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("{what}: {source}")]
    Kafka { what: String, source: KafkaError },
    #[error("the schema registry: {0}")]
    Registry(#[from] retail_codec::RegistryError),
    #[error("writing the summary to {path}: {reason}")]
    Summary { path: String, reason: String },
    #[error("a background task failed: {0}")]
    Task(String),
}

impl LaunchError {
    /// A Kafka client error while doing `what`.
    pub fn kafka(what: impl Into<String>) -> impl FnOnce(KafkaError) -> Self {
        let what = what.into();
        move |source| Self::Kafka { what, source }
    }
}
