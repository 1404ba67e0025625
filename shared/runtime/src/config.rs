//! The runtime's configuration, shared by every worker binary: where the cluster and the schema
//! registry are, how the worker consumes, retries, drains and reports.
//!
//! Each worker's clap parser includes [`RuntimeConfig`] with `#[command(flatten)]`, so every
//! worker takes the same flags and environment variables. [`RuntimeConfig::validate`] checks
//! the invariants between settings at startup, before any client is created, with messages
//! that name the flag and its variable; [`RuntimeConfig::redacted`] is the line to log.
//!
//! librdkafka properties the runtime does not model are passed through verbatim, from two
//! places, later winning:
//! 1. environment variables `KAFKA_CONFIG_<NAME>`: `KAFKA_CONFIG_SASL_USERNAME=bob` sets
//!    `sasl.username=bob` (name lowercased, `_` turned into `.`), convenient for Kubernetes
//!    secrets. A property whose name contains an underscore cannot be written this way: use
//!    the flag;
//! 2. `--kafka-config key=value` (repeatable, or `a=b,c=d`) or
//!    `WORKER_KAFKA_CONFIG=key=value,key=value`. Both split on commas, so a value that contains
//!    one (a list, e.g. `ssl.cipher.suites`) must be given as a `KAFKA_CONFIG_<NAME>` variable.
//!
//! Properties the runtime's guarantees depend on (offset storing, idempotence, the assignment
//! strategy, ...) cannot be overridden that way; `validate` says which flag to use instead.

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use rdkafka::ClientConfig;

use crate::retry::Backoff;

/// Environment variables with this prefix become librdkafka properties.
pub const KAFKA_ENV_PREFIX: &str = "KAFKA_CONFIG_";

/// How often librdkafka reports statistics: the source of the consumer lag metric.
const STATISTICS_INTERVAL_MS: &str = "5000";
/// Prefetch bound per consumer: 16 MiB instead of librdkafka's 64 MiB, which matters with many
/// workers on one node; throughput is bounded by the handler long before this.
const QUEUED_MAX_MESSAGES_KBYTES: &str = "16384";
/// librdkafka's default eager strategies, set explicitly: the runtime commits on revoke and
/// restores state on assign for the whole assignment, which incremental (cooperative) rebalancing
/// would break.
const ASSIGNMENT_STRATEGY: &str = "range,roundrobin";
/// The Java client's default partitioner (see [`RuntimeConfig::producer_config`]).
pub const PARTITIONER: &str = "murmur2_random";

/// Which delivery guarantee the worker gives its outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Guarantee {
    /// Outputs are acknowledged before the input offset is stored; a crash may re-send them,
    /// and downstream deduplicates by event id.
    AtLeastOnce,
    /// Outputs, state changes and the input offset are committed in one Kafka transaction.
    ExactlyOnce,
}

impl fmt::Display for Guarantee {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::AtLeastOnce => "at-least-once",
            Self::ExactlyOnce => "exactly-once",
        })
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines, for a terminal.
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Text => "text",
            Self::Json => "json",
        })
    }
}

/// One librdkafka property passed through verbatim, `key=value`.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaSetting {
    /// The property name, e.g. `security.protocol`.
    pub key: String,
    /// Its value, e.g. `SASL_SSL`.
    pub value: String,
}

impl KafkaSetting {
    /// Whether the value must not be logged.
    pub fn is_secret(&self) -> bool {
        is_secret_key(&self.key)
    }
}

/// Keys whose values are credentials: hidden in logs, `Debug` and error messages.
fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    ["password", "secret", "sasl.oauthbearer.config", "ssl.key"]
        .iter()
        .any(|marker| key.contains(marker))
}

/// `key=value`, with the value hidden for secrets.
impl fmt::Display for KafkaSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_secret() {
            write!(f, "{}=***", self.key)
        } else {
            write!(f, "{}={}", self.key, self.value)
        }
    }
}

/// Secrets hidden, like `Display`: `Debug` output ends up in logs too.
impl fmt::Debug for KafkaSetting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let value = if self.is_secret() { "***" } else { &self.value };
        f.debug_struct("KafkaSetting")
            .field("key", &self.key)
            .field("value", &value)
            .finish()
    }
}

/// Why a `--kafka-config` value is not a `key=value` pair.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KafkaSettingError {
    /// No `=` at all.
    #[error(
        "expected key=value (a librdkafka property, e.g. security.protocol=SASL_SSL), got {shown}"
    )]
    MissingEquals {
        /// The input, or `***` if it looks like it holds a secret.
        shown: String,
    },
    /// Nothing before the `=`.
    #[error("the property name before '=' is empty in {shown}")]
    EmptyKey {
        /// The input, or `***` if it looks like it holds a secret.
        shown: String,
    },
}

impl FromStr for KafkaSetting {
    type Err = KafkaSettingError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let shown = || {
            if is_secret_key(input) {
                "***".to_owned()
            } else {
                format!("{input:?}")
            }
        };
        let Some((key, value)) = input.split_once('=') else {
            return Err(KafkaSettingError::MissingEquals { shown: shown() });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(KafkaSettingError::EmptyKey { shown: shown() });
        }
        Ok(Self {
            key: key.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The librdkafka properties given as `KAFKA_CONFIG_<NAME>` environment variables, sorted by
/// property name (the environment has no order).
///
/// `KAFKA_CONFIG_SASL_USERNAME=bob` becomes `sasl.username=bob`: the name after the prefix is
/// lowercased and `_` becomes `.`, so a property whose name contains `_` cannot be expressed;
/// use `--kafka-config` for those. Pure, for tests: pass `std::env::vars()` in production.
pub fn kafka_settings_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<KafkaSetting> {
    let mut settings: Vec<KafkaSetting> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let property = name.strip_prefix(KAFKA_ENV_PREFIX)?;
            if property.is_empty() {
                return None;
            }
            Some(KafkaSetting {
                key: property.to_ascii_lowercase().replace('_', "."),
                value,
            })
        })
        .collect();
    settings.sort_by(|a, b| a.key.cmp(&b.key));
    settings
}

/// The process environment's `KAFKA_CONFIG_*` settings. Variables that are not valid Unicode
/// cannot be librdkafka properties and are skipped rather than panicking as `env::vars` would.
pub fn kafka_settings_from_process_env() -> Vec<KafkaSetting> {
    kafka_settings_from_env(
        std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }),
    )
}

/// The settings every binary that talks to the cluster and the registry shares (the workers,
/// the simulator, `retailctl`), by their common flags and variables.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionSettings<'a> {
    /// `--bootstrap-servers` (KAFKA_BOOTSTRAP_SERVERS).
    pub bootstrap_servers: &'a str,
    /// `--schema-registry-url` (SCHEMA_REGISTRY_URL).
    pub schema_registry_url: &'a str,
    /// `--schema-registry-basic-auth` (SCHEMA_REGISTRY_BASIC_AUTH).
    pub schema_registry_basic_auth: Option<&'a str>,
    /// `--schema-registry-ca-file` (SCHEMA_REGISTRY_CA_FILE).
    pub schema_registry_ca_file: Option<&'a std::path::Path>,
    /// `--topic-prefix` (WORKER_TOPIC_PREFIX).
    pub topic_prefix: &'a str,
}

/// Checks the shared connection settings before anything connects, so a typo fails at once
/// naming its flag and variable rather than as a connection that never succeeds.
pub fn validate_connection(settings: &ConnectionSettings<'_>) -> Result<(), ConfigError> {
    validate_bootstrap_servers(settings.bootstrap_servers)?;
    let url = settings.schema_registry_url;
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(ConfigError::InvalidSchemaRegistryUrl {
            url: redact_url(url),
        });
    }
    if settings
        .schema_registry_basic_auth
        .is_some_and(|auth| !auth.contains(':'))
    {
        return Err(ConfigError::InvalidBasicAuth);
    }
    if let Some(path) = settings.schema_registry_ca_file
        && let Err(error) = std::fs::File::open(path)
    {
        return Err(ConfigError::UnreadableCaFile {
            path: path.to_owned(),
            reason: error.to_string(),
        });
    }
    if !settings.topic_prefix.is_empty() {
        check_name(
            "--topic-prefix (WORKER_TOPIC_PREFIX)",
            settings.topic_prefix,
            "it begins every catalogue topic's name",
        )?;
    }
    Ok(())
}

/// Has librdkafka check the properties of `config` as it would when creating a client, without
/// creating one. The refused property is named; its value is not repeated (it may be a secret
/// under a misspelt name).
pub fn check_kafka_settings(config: &ClientConfig) -> Result<(), ConfigError> {
    match config.create_native_config() {
        Ok(_) => Ok(()),
        Err(rdkafka::error::KafkaError::ClientConfig(_, description, key, _)) => {
            Err(ConfigError::InvalidKafkaSetting {
                reason: format!("{key}: {description}"),
            })
        }
        Err(error) => Err(ConfigError::InvalidKafkaSetting {
            reason: error.to_string(),
        }),
    }
}

/// Checks `--bootstrap-servers`: a comma-separated list of `host:port` (librdkafka also takes
/// a `protocol://` in front of each).
pub fn validate_bootstrap_servers(servers: &str) -> Result<(), ConfigError> {
    if servers.trim().is_empty() {
        return Err(ConfigError::EmptyBootstrapServers);
    }
    for entry in servers.split(',').map(str::trim) {
        let address = entry
            .split_once("://")
            .map_or(entry, |(_, address)| address);
        let valid = address.rsplit_once(':').is_some_and(|(host, port)| {
            !host.is_empty()
                && !host.contains(char::is_whitespace)
                && port.parse::<u16>().is_ok_and(|port| port > 0)
        });
        if !valid {
            return Err(ConfigError::InvalidBootstrapServer {
                entry: entry.to_owned(),
            });
        }
    }
    Ok(())
}

/// Checks that `value` of `flag` may be part of a Kafka topic name (ASCII letters, digits,
/// `.`, `_`, `-`); `why` says why it must be.
fn check_name(flag: &'static str, value: &str, why: &'static str) -> Result<(), ConfigError> {
    let valid = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if valid {
        Ok(())
    } else {
        Err(ConfigError::InvalidName {
            flag,
            value: value.to_owned(),
            why,
        })
    }
}

/// The runtime's configuration. Every flag also reads an environment variable.
#[derive(Clone, clap::Args)]
pub struct RuntimeConfig {
    /// Kafka bootstrap servers, comma-separated host:port.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    /// Schema registry base URL (http:// or https://).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_URL",
        default_value = "http://127.0.0.1:8081"
    )]
    pub schema_registry_url: String,

    /// Schema registry credentials, user:password (HTTP basic auth). Never logged.
    #[arg(long, env = "SCHEMA_REGISTRY_BASIC_AUTH", hide_env_values = true)]
    pub schema_registry_basic_auth: Option<String>,

    /// PEM file of CA certificates the schema registry's HTTPS certificate may also chain to (a
    /// private CA); the system's roots are always trusted.
    #[arg(long, env = "SCHEMA_REGISTRY_CA_FILE")]
    pub schema_registry_ca_file: Option<PathBuf>,

    /// Consumer group id [default: the worker's name].
    #[arg(long, env = "WORKER_GROUP_ID")]
    pub group_id: Option<String>,

    /// Static group membership id (group.instance.id), e.g. the pod name of a StatefulSet: a
    /// restart within the session timeout then causes no rebalance.
    #[arg(long, env = "WORKER_INSTANCE_ID")]
    pub instance_id: Option<String>,

    /// Delivery guarantee for outputs.
    #[arg(long, env = "WORKER_GUARANTEE", value_enum, default_value_t = Guarantee::AtLeastOnce)]
    pub guarantee: Guarantee,

    /// Address of the HTTP listener for /metrics, /healthz and /readyz (port 0: any free port,
    /// which the worker logs).
    #[arg(long, env = "WORKER_HTTP_ADDR", default_value = "127.0.0.1:9464")]
    pub http_addr: SocketAddr,

    /// Longest time to finish in-flight work and commit after SIGTERM; must be shorter than the
    /// session timeout and the pod's termination grace period.
    #[arg(
        long,
        env = "WORKER_DRAIN_DEADLINE",
        default_value = "20s",
        value_parser = humantime::parse_duration,
    )]
    pub drain_deadline: Duration,

    /// Consumer group session timeout (session.timeout.ms): how long the group waits for a
    /// silent member before reassigning its partitions.
    #[arg(
        long,
        env = "WORKER_SESSION_TIMEOUT",
        default_value = "30s",
        value_parser = humantime::parse_duration,
    )]
    pub session_timeout: Duration,

    /// Longest time between two polls before the member is evicted (max.poll.interval.ms);
    /// bounds the time spent retrying one record.
    #[arg(
        long,
        env = "WORKER_MAX_POLL_INTERVAL",
        default_value = "300s",
        value_parser = humantime::parse_duration,
    )]
    pub max_poll_interval: Duration,

    /// Records per processing batch.
    #[arg(long, env = "WORKER_BATCH_SIZE", default_value_t = 500)]
    pub batch_size: usize,

    /// Longest wait to fill a batch before processing what there is.
    #[arg(
        long,
        env = "WORKER_BATCH_WAIT",
        default_value = "5ms",
        value_parser = humantime::parse_duration,
    )]
    pub batch_wait: Duration,

    /// Records processed but not yet acknowledged, at most; consumption pauses at the limit.
    #[arg(long, env = "WORKER_MAX_IN_FLIGHT", default_value_t = 5000)]
    pub max_in_flight: usize,

    /// How often stored offsets are committed (auto.commit.interval.ms). Offsets are stored only
    /// after a record's outputs are durable.
    #[arg(
        long,
        env = "WORKER_COMMIT_INTERVAL",
        default_value = "1s",
        value_parser = humantime::parse_duration,
    )]
    pub commit_interval: Duration,

    /// Delay before the first retry of a record that failed with a retriable error.
    #[arg(
        long,
        env = "WORKER_RETRY_INITIAL_BACKOFF",
        default_value = "100ms",
        value_parser = humantime::parse_duration,
    )]
    pub retry_initial_backoff: Duration,

    /// Longest delay between two retries (the delay doubles up to this).
    #[arg(
        long,
        env = "WORKER_RETRY_MAX_BACKOFF",
        default_value = "5s",
        value_parser = humantime::parse_duration,
    )]
    pub retry_max_backoff: Duration,

    /// Attempts at a record, the first included, before it is dead-lettered (1: no retries).
    #[arg(long, env = "WORKER_RETRY_MAX_ATTEMPTS", default_value_t = 6)]
    pub retry_max_attempts: u32,

    /// How long processed event ids are remembered to skip re-delivered duplicates.
    #[arg(
        long,
        env = "WORKER_DEDUP_RETENTION",
        default_value = "1h",
        value_parser = humantime::parse_duration,
    )]
    pub dedup_retention: Duration,

    /// Processed event ids remembered per state key, at most.
    #[arg(long, env = "WORKER_DEDUP_MAX_PER_KEY", default_value_t = 32)]
    pub dedup_max_per_key: usize,

    /// Partitions of topics the worker creates when they are missing.
    #[arg(long, env = "WORKER_TOPIC_PARTITIONS", default_value_t = 6)]
    pub topic_partitions: i32,

    /// Replication factor of topics the worker creates when they are missing.
    #[arg(long, env = "WORKER_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,

    /// Prefix of the catalogue topic names, e.g. `staging.` (so several environments or test
    /// runs can share one cluster); empty for none.
    #[arg(long, env = "WORKER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// Create missing topics at startup (true or false).
    #[arg(
        long,
        env = "WORKER_CREATE_TOPICS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub create_topics: bool,

    /// Log format.
    #[arg(long, env = "WORKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// A librdkafka property passed through verbatim, key=value (repeatable, comma-separated;
    /// values containing commas need a `KAFKA_CONFIG_<NAME>` variable). Overrides those variables.
    #[arg(
        long = "kafka-config",
        env = "WORKER_KAFKA_CONFIG",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_config: Vec<KafkaSetting>,

    /// The `KAFKA_CONFIG_*` variables of the environment the configuration was parsed in,
    /// captured at parse time so the client configs do not depend on when they are built.
    #[arg(skip = kafka_settings_from_process_env())]
    pub kafka_env_config: Vec<KafkaSetting>,
}

/// Secrets hidden: the same text as [`RuntimeConfig::redacted`].
impl fmt::Debug for RuntimeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RuntimeConfig {{ {} }}", self.redacted())
    }
}

/// A setting the configuration does not allow, found at startup.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// No broker to bootstrap from.
    #[error("--bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS) must name at least one broker")]
    EmptyBootstrapServers,

    /// A bootstrap server that is not `host:port`.
    #[error(
        "--bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS) entry {entry:?} must be host:port, e.g. broker-1:9092"
    )]
    InvalidBootstrapServer {
        /// The entry as given.
        entry: String,
    },

    /// The registry CA file cannot be opened.
    #[error("--schema-registry-ca-file (SCHEMA_REGISTRY_CA_FILE) {}: {reason}", path.display())]
    UnreadableCaFile {
        /// The path given.
        path: PathBuf,
        /// Why it cannot be read.
        reason: String,
    },

    /// A name that ends up in topic names has characters Kafka does not allow there.
    #[error("{flag} {value:?} may hold only ASCII letters, digits, '.', '_' and '-': {why}")]
    InvalidName {
        /// The flag and its variable.
        flag: &'static str,
        /// The value given.
        value: String,
        /// Why it must be a topic name.
        why: &'static str,
    },

    /// librdkafka refuses a pass-through property.
    #[error(
        "a librdkafka property (from --kafka-config, WORKER_KAFKA_CONFIG or KAFKA_CONFIG_*) is refused: {reason}"
    )]
    InvalidKafkaSetting {
        /// librdkafka's error, naming the property.
        reason: String,
    },

    /// The registry URL has no HTTP scheme.
    #[error(
        "--schema-registry-url (SCHEMA_REGISTRY_URL) {url:?} must start with http:// or https://"
    )]
    InvalidSchemaRegistryUrl {
        /// The URL given, credentials hidden.
        url: String,
    },

    /// The registry credentials are not `user:password`; the value is not repeated.
    #[error("--schema-registry-basic-auth (SCHEMA_REGISTRY_BASIC_AUTH) must be user:password")]
    InvalidBasicAuth,

    /// A batch of zero records.
    #[error("--batch-size (WORKER_BATCH_SIZE) must be at least 1")]
    ZeroBatchSize,

    /// The in-flight limit cannot hold one batch.
    #[error(
        "--max-in-flight (WORKER_MAX_IN_FLIGHT) {max_in_flight} must be at least --batch-size (WORKER_BATCH_SIZE) {batch_size}"
    )]
    InFlightBelowBatchSize {
        /// `--max-in-flight`.
        max_in_flight: usize,
        /// `--batch-size`.
        batch_size: usize,
    },

    /// The first retry delay is longer than the longest.
    #[error(
        "--retry-initial-backoff (WORKER_RETRY_INITIAL_BACKOFF) {} must not exceed --retry-max-backoff (WORKER_RETRY_MAX_BACKOFF) {}",
        show(.initial),
        show(.max)
    )]
    BackoffInverted {
        /// `--retry-initial-backoff`.
        initial: Duration,
        /// `--retry-max-backoff`.
        max: Duration,
    },

    /// Zero attempts would never handle a record.
    #[error("--retry-max-attempts (WORKER_RETRY_MAX_ATTEMPTS) must be at least 1 (1: no retries)")]
    ZeroRetryAttempts,

    /// A draining member could be evicted before it leaves, which rebalances its partitions
    /// while it still commits them.
    #[error(
        "--drain-deadline (WORKER_DRAIN_DEADLINE) {} must be shorter than --session-timeout (WORKER_SESSION_TIMEOUT) {}",
        show(.drain_deadline),
        show(.session_timeout)
    )]
    DrainNotShorterThanSessionTimeout {
        /// `--drain-deadline`.
        drain_deadline: Duration,
        /// `--session-timeout`.
        session_timeout: Duration,
    },

    /// A draining member could exceed the poll interval and be evicted.
    #[error(
        "--drain-deadline (WORKER_DRAIN_DEADLINE) {} must be shorter than --max-poll-interval (WORKER_MAX_POLL_INTERVAL) {}",
        show(.drain_deadline),
        show(.max_poll_interval)
    )]
    DrainNotShorterThanPollInterval {
        /// `--drain-deadline`.
        drain_deadline: Duration,
        /// `--max-poll-interval`.
        max_poll_interval: Duration,
    },

    /// librdkafka refuses a poll interval below the session timeout; said here with our flags.
    #[error(
        "--max-poll-interval (WORKER_MAX_POLL_INTERVAL) {} must not be shorter than --session-timeout (WORKER_SESSION_TIMEOUT) {}",
        show(.max_poll_interval),
        show(.session_timeout)
    )]
    PollIntervalBelowSessionTimeout {
        /// `--max-poll-interval`.
        max_poll_interval: Duration,
        /// `--session-timeout`.
        session_timeout: Duration,
    },

    /// The consumer does not poll while it retries a record, so a full retry series must fit in
    /// the poll interval or the member is evicted mid-retry.
    #[error(
        "the worst-case retry time {} (--retry-initial-backoff, --retry-max-backoff, --retry-max-attempts; WORKER_RETRY_*) must be shorter than --max-poll-interval (WORKER_MAX_POLL_INTERVAL) {}",
        show(.worst_case),
        show(.max_poll_interval)
    )]
    RetriesExceedPollInterval {
        /// [`Backoff::worst_case_total`] of the retry settings.
        worst_case: Duration,
        /// `--max-poll-interval`.
        max_poll_interval: Duration,
    },

    /// Topics need at least one partition.
    #[error("--topic-partitions (WORKER_TOPIC_PARTITIONS) {value} must be at least 1")]
    InvalidTopicPartitions {
        /// The value given.
        value: i32,
    },

    /// Topics need at least one replica.
    #[error("--topic-replication (WORKER_TOPIC_REPLICATION) {value} must be at least 1")]
    InvalidTopicReplication {
        /// The value given.
        value: i32,
    },

    /// Remembering no event id would make deduplication useless.
    #[error("--dedup-max-per-key (WORKER_DEDUP_MAX_PER_KEY) must be at least 1")]
    ZeroDedupMaxPerKey,

    /// A pass-through property the runtime sets itself.
    #[error(
        "librdkafka property {key} (from --kafka-config, WORKER_KAFKA_CONFIG or KAFKA_CONFIG_*) is managed by the runtime: {hint}"
    )]
    ManagedKafkaSetting {
        /// The property.
        key: String,
        /// Why, or which flag to use instead.
        hint: &'static str,
    },
}

/// A duration as people write it (`1m 30s`), for error messages and logs.
fn show(duration: &Duration) -> humantime::FormattedDuration {
    humantime::format_duration(*duration)
}

/// Properties the runtime sets and whose override would break a guarantee or bypass validation,
/// with what to do instead.
const MANAGED_KAFKA_SETTINGS: &[(&str, &str)] = &[
    (
        "partitioner",
        "stages read internal topics co-partitioned with external ones: keys must land where the Java client puts them (murmur2_random)",
    ),
    (
        "bootstrap.servers",
        "use --bootstrap-servers (KAFKA_BOOTSTRAP_SERVERS)",
    ),
    ("group.id", "use --group-id (WORKER_GROUP_ID)"),
    (
        "group.instance.id",
        "use --instance-id (WORKER_INSTANCE_ID)",
    ),
    (
        "enable.auto.commit",
        "offsets are committed only after the outputs they caused are durable",
    ),
    (
        "enable.auto.offset.store",
        "offsets are stored only after the outputs they caused are durable",
    ),
    (
        "enable.idempotence",
        "the producer must be idempotent so its retries do not duplicate outputs",
    ),
    (
        "transactional.id",
        "set by the runtime with --guarantee exactly-once (WORKER_GUARANTEE)",
    ),
    (
        "isolation.level",
        "consumers must not read aborted transactional outputs",
    ),
    (
        "partition.assignment.strategy",
        "rebalance handling commits and restores whole assignments, which needs an eager strategy",
    ),
    (
        "session.timeout.ms",
        "use --session-timeout (WORKER_SESSION_TIMEOUT)",
    ),
    (
        "max.poll.interval.ms",
        "use --max-poll-interval (WORKER_MAX_POLL_INTERVAL)",
    ),
    (
        "auto.commit.interval.ms",
        "use --commit-interval (WORKER_COMMIT_INTERVAL)",
    ),
];

impl RuntimeConfig {
    /// Checks the invariants between settings; the first violation is returned.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_connection(&ConnectionSettings {
            bootstrap_servers: &self.bootstrap_servers,
            schema_registry_url: &self.schema_registry_url,
            schema_registry_basic_auth: self.schema_registry_basic_auth.as_deref(),
            schema_registry_ca_file: self.schema_registry_ca_file.as_deref(),
            topic_prefix: &self.topic_prefix,
        })?;
        if let Some(group_id) = &self.group_id {
            check_name(
                "--group-id (WORKER_GROUP_ID)",
                group_id,
                "it names the worker's own topics (<group>.dlq)",
            )?;
        }
        if let Some(instance_id) = &self.instance_id {
            check_name(
                "--instance-id (WORKER_INSTANCE_ID)",
                instance_id,
                "Kafka refuses other characters in a group.instance.id",
            )?;
        }
        if self.batch_size == 0 {
            return Err(ConfigError::ZeroBatchSize);
        }
        if self.max_in_flight < self.batch_size {
            return Err(ConfigError::InFlightBelowBatchSize {
                max_in_flight: self.max_in_flight,
                batch_size: self.batch_size,
            });
        }
        if self.retry_initial_backoff > self.retry_max_backoff {
            return Err(ConfigError::BackoffInverted {
                initial: self.retry_initial_backoff,
                max: self.retry_max_backoff,
            });
        }
        if self.retry_max_attempts == 0 {
            return Err(ConfigError::ZeroRetryAttempts);
        }
        if self.drain_deadline >= self.session_timeout {
            return Err(ConfigError::DrainNotShorterThanSessionTimeout {
                drain_deadline: self.drain_deadline,
                session_timeout: self.session_timeout,
            });
        }
        if self.drain_deadline >= self.max_poll_interval {
            return Err(ConfigError::DrainNotShorterThanPollInterval {
                drain_deadline: self.drain_deadline,
                max_poll_interval: self.max_poll_interval,
            });
        }
        if self.max_poll_interval < self.session_timeout {
            return Err(ConfigError::PollIntervalBelowSessionTimeout {
                max_poll_interval: self.max_poll_interval,
                session_timeout: self.session_timeout,
            });
        }
        let worst_case = self.backoff().worst_case_total();
        if worst_case >= self.max_poll_interval {
            return Err(ConfigError::RetriesExceedPollInterval {
                worst_case,
                max_poll_interval: self.max_poll_interval,
            });
        }
        if self.topic_partitions < 1 {
            return Err(ConfigError::InvalidTopicPartitions {
                value: self.topic_partitions,
            });
        }
        if self.topic_replication < 1 {
            return Err(ConfigError::InvalidTopicReplication {
                value: self.topic_replication,
            });
        }
        if self.dedup_max_per_key == 0 {
            return Err(ConfigError::ZeroDedupMaxPerKey);
        }
        for setting in self.pass_through() {
            let key = setting.key.to_ascii_lowercase();
            if let Some((_, hint)) = MANAGED_KAFKA_SETTINGS
                .iter()
                .find(|(managed, _)| *managed == key)
            {
                return Err(ConfigError::ManagedKafkaSetting {
                    key: setting.key.clone(),
                    hint,
                });
            }
        }
        // librdkafka checks property names and values when a client is configured: do it now,
        // not once the registry has answered.
        check_kafka_settings(&self.admin_config())?;
        Ok(())
    }

    /// The retry policy these settings describe.
    pub fn backoff(&self) -> Backoff {
        Backoff {
            initial: self.retry_initial_backoff,
            max: self.retry_max_backoff,
            max_attempts: self.retry_max_attempts,
        }
    }

    /// The consumer group id: `--group-id`, or else the worker's name.
    pub fn group_id_or(&self, worker: &str) -> String {
        self.group_id.clone().unwrap_or_else(|| worker.to_owned())
    }

    /// The consumer's librdkafka configuration for `group_id`.
    ///
    /// Offsets are stored by the runtime (`enable.auto.offset.store=false`) once a record's
    /// outputs are durable, and librdkafka commits what was stored every `--commit-interval`
    /// and on revoke and close. With `--guarantee exactly-once` offsets are committed inside the
    /// producer's transactions instead, so auto-commit is off.
    pub fn consumer_config(&self, group_id: &str) -> ClientConfig {
        let auto_commit = match self.guarantee {
            Guarantee::AtLeastOnce => "true",
            Guarantee::ExactlyOnce => "false",
        };
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", group_id)
            .set("enable.auto.commit", auto_commit)
            .set("enable.auto.offset.store", "false")
            .set("auto.commit.interval.ms", millis(self.commit_interval))
            .set("auto.offset.reset", "earliest")
            .set("isolation.level", "read_committed")
            .set("session.timeout.ms", millis(self.session_timeout))
            .set("max.poll.interval.ms", millis(self.max_poll_interval))
            .set("enable.partition.eof", "false")
            .set("partition.assignment.strategy", ASSIGNMENT_STRATEGY)
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS)
            .set("queued.max.messages.kbytes", QUEUED_MAX_MESSAGES_KBYTES);
        if let Some(instance_id) = &self.instance_id {
            config.set("group.instance.id", instance_id);
        }
        self.apply_pass_through(&mut config);
        config
    }

    /// The producer's librdkafka configuration for a member of `group_id`: idempotent,
    /// acknowledged by all in-sync replicas, batched for 5 ms and lz4-compressed; in
    /// exactly-once mode also transactional ([`RuntimeConfig::transactional_id`]).
    ///
    /// Keys go to partitions the way the Java client's default partitioner sends them
    /// (`murmur2_random`), not librdkafka's default (`consistent_random`, CRC32): a stage that
    /// reads a topic written by a Java producer together with one of its own internal topics
    /// needs a key in the same partition of both.
    pub fn producer_config(&self, group_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("partitioner", PARTITIONER)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4")
            .set("statistics.interval.ms", STATISTICS_INTERVAL_MS);
        if let Some(id) = self.transactional_id(group_id) {
            config.set("transactional.id", id);
        }
        self.apply_pass_through(&mut config);
        config
    }

    /// The `transactional.id` in exactly-once mode, `None` otherwise.
    ///
    /// With `--instance-id` it is `<group>-<instance id>`: stable across restarts, so a
    /// restarted instance's `init_transactions` fences its predecessor and aborts what that one
    /// left open at once. Without it a random suffix keeps concurrent instances apart; zombies
    /// are then fenced by the group generation their offsets carry (KIP-447), and a crashed
    /// instance's open transaction ends at `transaction.timeout.ms`.
    pub fn transactional_id(&self, group_id: &str) -> Option<String> {
        if self.guarantee != Guarantee::ExactlyOnce {
            return None;
        }
        Some(match &self.instance_id {
            Some(instance_id) => format!("{group_id}-{instance_id}"),
            None => format!("{group_id}-{:016x}", rand::random::<u64>()),
        })
    }

    /// The admin client's librdkafka configuration (topic creation).
    pub fn admin_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        self.apply_pass_through(&mut config);
        config
    }

    /// The effective configuration as `key=value` pairs on one line, for the startup log, with
    /// credentials hidden.
    pub fn redacted(&self) -> String {
        let optional = |value: &Option<String>| value.clone().unwrap_or_else(|| "-".to_owned());
        let basic_auth = match &self.schema_registry_basic_auth {
            None => "-".to_owned(),
            Some(auth) => match auth.split_once(':') {
                Some((user, _)) => format!("{user}:***"),
                None => "***".to_owned(),
            },
        };
        let settings = |settings: &[KafkaSetting]| {
            if settings.is_empty() {
                "-".to_owned()
            } else {
                settings
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            }
        };
        let pairs = [
            ("bootstrap_servers", self.bootstrap_servers.clone()),
            ("schema_registry_url", redact_url(&self.schema_registry_url)),
            ("schema_registry_basic_auth", basic_auth),
            (
                "schema_registry_ca_file",
                self.schema_registry_ca_file
                    .as_ref()
                    .map_or_else(|| "-".to_owned(), |path| path.display().to_string()),
            ),
            ("group_id", optional(&self.group_id)),
            ("instance_id", optional(&self.instance_id)),
            ("guarantee", self.guarantee.to_string()),
            ("http_addr", self.http_addr.to_string()),
            ("drain_deadline", show(&self.drain_deadline).to_string()),
            ("session_timeout", show(&self.session_timeout).to_string()),
            (
                "max_poll_interval",
                show(&self.max_poll_interval).to_string(),
            ),
            ("batch_size", self.batch_size.to_string()),
            ("batch_wait", show(&self.batch_wait).to_string()),
            ("max_in_flight", self.max_in_flight.to_string()),
            ("commit_interval", show(&self.commit_interval).to_string()),
            (
                "retry_initial_backoff",
                show(&self.retry_initial_backoff).to_string(),
            ),
            (
                "retry_max_backoff",
                show(&self.retry_max_backoff).to_string(),
            ),
            ("retry_max_attempts", self.retry_max_attempts.to_string()),
            ("dedup_retention", show(&self.dedup_retention).to_string()),
            ("dedup_max_per_key", self.dedup_max_per_key.to_string()),
            ("topic_partitions", self.topic_partitions.to_string()),
            ("topic_replication", self.topic_replication.to_string()),
            ("topic_prefix", dash_if_empty(&self.topic_prefix)),
            ("create_topics", self.create_topics.to_string()),
            ("log_format", self.log_format.to_string()),
            ("kafka_env_config", settings(&self.kafka_env_config)),
            ("kafka_config", settings(&self.kafka_config)),
        ];
        pairs
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// Pass-through settings in the order they apply: environment prefix first, flags last.
    fn pass_through(&self) -> impl Iterator<Item = &KafkaSetting> {
        self.kafka_env_config.iter().chain(&self.kafka_config)
    }

    fn apply_pass_through(&self, config: &mut ClientConfig) {
        for setting in self.pass_through() {
            config.set(&setting.key, &setting.value);
        }
    }
}

/// An empty string would vanish from a `key=value` line; show it as `-`.
fn dash_if_empty(value: &str) -> String {
    if value.is_empty() {
        "-".to_owned()
    } else {
        value.to_owned()
    }
}

/// librdkafka takes durations as whole milliseconds.
fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}

/// Hides the password of credentials embedded in a URL (`https://user:pass@host` →
/// `https://user:***@host`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(authority_end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
    format!("{scheme}://{user}:***@{host}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;
    use clap::{CommandFactory, FromArgMatches, Parser};

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(flatten)]
        runtime: RuntimeConfig,
    }

    /// Parses `args` ignoring the environment: the test suite runs with
    /// `KAFKA_BOOTSTRAP_SERVERS` and friends pointing at its broker, which would override
    /// the defaults under test.
    fn parse(args: &[&str]) -> Result<RuntimeConfig, clap::Error> {
        let command = TestCli::command().mut_args(|arg| arg.env(None::<&str>));
        let matches =
            command.try_get_matches_from(std::iter::once("worker").chain(args.iter().copied()))?;
        let mut cli = TestCli::from_arg_matches(&matches)?;
        cli.runtime.kafka_env_config.clear();
        Ok(cli.runtime)
    }

    fn defaults() -> RuntimeConfig {
        parse(&[]).expect("defaults parse")
    }

    fn setting(key: &str, value: &str) -> KafkaSetting {
        KafkaSetting {
            key: key.to_owned(),
            value: value.to_owned(),
        }
    }

    #[test]
    fn defaults_are_as_documented_and_valid() {
        let config = defaults();
        assert_eq!(config.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.schema_registry_url, "http://127.0.0.1:8081");
        assert_eq!(config.schema_registry_basic_auth, None);
        assert_eq!(config.group_id, None);
        assert_eq!(config.instance_id, None);
        assert_eq!(config.guarantee, Guarantee::AtLeastOnce);
        assert_eq!(config.http_addr, SocketAddr::from(([127, 0, 0, 1], 9464)));
        assert_eq!(config.drain_deadline, Duration::from_secs(20));
        assert_eq!(config.session_timeout, Duration::from_secs(30));
        assert_eq!(config.max_poll_interval, Duration::from_secs(300));
        assert_eq!(config.batch_size, 500);
        assert_eq!(config.batch_wait, Duration::from_millis(5));
        assert_eq!(config.max_in_flight, 5000);
        assert_eq!(config.commit_interval, Duration::from_secs(1));
        assert_eq!(config.retry_initial_backoff, Duration::from_millis(100));
        assert_eq!(config.retry_max_backoff, Duration::from_secs(5));
        assert_eq!(config.retry_max_attempts, 6);
        assert_eq!(config.dedup_retention, Duration::from_secs(3600));
        assert_eq!(config.dedup_max_per_key, 32);
        assert_eq!(config.topic_partitions, 6);
        assert_eq!(config.topic_replication, 1);
        assert_eq!(config.topic_prefix, "");
        assert!(config.create_topics);
        assert_eq!(config.log_format, LogFormat::Text);
        assert!(config.kafka_config.is_empty());
        assert_eq!(config.validate(), Ok(()));
    }

    #[test]
    fn every_flag_reads_its_environment_variable() {
        let expected = [
            ("bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("schema-registry-url", "SCHEMA_REGISTRY_URL"),
            ("schema-registry-basic-auth", "SCHEMA_REGISTRY_BASIC_AUTH"),
            ("schema-registry-ca-file", "SCHEMA_REGISTRY_CA_FILE"),
            ("group-id", "WORKER_GROUP_ID"),
            ("instance-id", "WORKER_INSTANCE_ID"),
            ("guarantee", "WORKER_GUARANTEE"),
            ("http-addr", "WORKER_HTTP_ADDR"),
            ("drain-deadline", "WORKER_DRAIN_DEADLINE"),
            ("session-timeout", "WORKER_SESSION_TIMEOUT"),
            ("max-poll-interval", "WORKER_MAX_POLL_INTERVAL"),
            ("batch-size", "WORKER_BATCH_SIZE"),
            ("batch-wait", "WORKER_BATCH_WAIT"),
            ("max-in-flight", "WORKER_MAX_IN_FLIGHT"),
            ("commit-interval", "WORKER_COMMIT_INTERVAL"),
            ("retry-initial-backoff", "WORKER_RETRY_INITIAL_BACKOFF"),
            ("retry-max-backoff", "WORKER_RETRY_MAX_BACKOFF"),
            ("retry-max-attempts", "WORKER_RETRY_MAX_ATTEMPTS"),
            ("dedup-retention", "WORKER_DEDUP_RETENTION"),
            ("dedup-max-per-key", "WORKER_DEDUP_MAX_PER_KEY"),
            ("topic-partitions", "WORKER_TOPIC_PARTITIONS"),
            ("topic-replication", "WORKER_TOPIC_REPLICATION"),
            ("topic-prefix", "WORKER_TOPIC_PREFIX"),
            ("create-topics", "WORKER_CREATE_TOPICS"),
            ("log-format", "WORKER_LOG_FORMAT"),
            ("kafka-config", "WORKER_KAFKA_CONFIG"),
        ];
        let command = TestCli::command();
        let mut seen = 0;
        for arg in command.get_arguments() {
            let Some(long) = arg.get_long() else { continue };
            if long == "help" {
                continue;
            }
            let Some((_, env)) = expected.iter().find(|(flag, _)| *flag == long) else {
                panic!("--{long} is not in the expected list");
            };
            assert_eq!(
                arg.get_env().and_then(|value| value.to_str()),
                Some(*env),
                "--{long}"
            );
            assert!(arg.get_help().is_some(), "--{long} has no help text");
            seen += 1;
        }
        assert_eq!(seen, expected.len());
    }

    #[test]
    fn parses_flags() {
        let config = parse(&[
            "--bootstrap-servers",
            "kafka-1:9093,kafka-2:9093",
            "--group-id",
            "inventory-blue",
            "--instance-id",
            "inventory-0",
            "--guarantee",
            "exactly-once",
            "--http-addr",
            "0.0.0.0:0",
            "--drain-deadline",
            "250ms",
            "--session-timeout",
            "1m 30s",
            "--batch-size",
            "10",
            "--create-topics",
            "false",
            "--log-format",
            "json",
            "--kafka-config",
            "a=b",
            "--kafka-config",
            "c=d",
        ])
        .expect("valid flags parse");
        assert_eq!(config.bootstrap_servers, "kafka-1:9093,kafka-2:9093");
        assert_eq!(config.group_id_or("inventory"), "inventory-blue");
        assert_eq!(config.instance_id.as_deref(), Some("inventory-0"));
        assert_eq!(config.guarantee, Guarantee::ExactlyOnce);
        assert_eq!(config.http_addr.port(), 0);
        assert_eq!(config.drain_deadline, Duration::from_millis(250));
        assert_eq!(config.session_timeout, Duration::from_secs(90));
        assert_eq!(config.batch_size, 10);
        assert!(!config.create_topics);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(
            config.kafka_config,
            vec![setting("a", "b"), setting("c", "d")]
        );
    }

    #[test]
    fn kafka_config_splits_on_commas_and_keeps_equals_in_values() {
        let config = parse(&["--kafka-config", "a=b,sasl.oauthbearer.config=x=y"]).expect("parses");
        assert_eq!(
            config.kafka_config,
            vec![setting("a", "b"), setting("sasl.oauthbearer.config", "x=y")]
        );
    }

    #[test]
    fn rejects_malformed_flags() {
        for args in [
            &["--kafka-config", "nokey"][..],
            &["--kafka-config", "=value"],
            &["--drain-deadline", "20"],
            &["--guarantee", "at-most-once"],
            &["--log-format", "xml"],
            &["--create-topics", "maybe"],
            &["--http-addr", "localhost"],
        ] {
            let result = parse(args);
            let kind = result.as_ref().err().map(clap::Error::kind);
            assert!(
                matches!(
                    kind,
                    Some(ErrorKind::ValueValidation | ErrorKind::InvalidValue)
                ),
                "{args:?} gave {result:?}"
            );
        }
    }

    #[test]
    fn kafka_setting_errors_are_specific_and_hide_secrets() {
        assert_eq!(
            "nokey".parse::<KafkaSetting>(),
            Err(KafkaSettingError::MissingEquals {
                shown: "\"nokey\"".to_owned()
            })
        );
        assert_eq!(
            "=v".parse::<KafkaSetting>(),
            Err(KafkaSettingError::EmptyKey {
                shown: "\"=v\"".to_owned()
            })
        );
        let error = "sasl.password:hunter2"
            .parse::<KafkaSetting>()
            .expect_err("no '='");
        assert!(!error.to_string().contains("hunter2"), "{error}");
        assert_eq!(
            "ssl.ca.location=/etc/ca.pem".parse::<KafkaSetting>(),
            Ok(setting("ssl.ca.location", "/etc/ca.pem"))
        );
        assert_eq!("k=".parse::<KafkaSetting>(), Ok(setting("k", "")));
    }

    #[test]
    fn env_prefix_becomes_dotted_lowercase_properties() {
        let vars = [
            ("KAFKA_CONFIG_SASL_USERNAME", "bob"),
            ("KAFKA_CONFIG_SECURITY_PROTOCOL", "SASL_SSL"),
            ("KAFKA_CONFIG_", "ignored: no property name"),
            ("KAFKA_BOOTSTRAP_SERVERS", "not a pass-through"),
            ("kafka_config_lowercase", "prefix is case-sensitive"),
            ("PATH", "/usr/bin"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        assert_eq!(
            kafka_settings_from_env(vars),
            vec![
                setting("sasl.username", "bob"),
                setting("security.protocol", "SASL_SSL"),
            ]
        );
    }

    #[test]
    fn client_configs_carry_the_runtime_settings() {
        let mut config = defaults();
        config.instance_id = Some("inventory-0".to_owned());
        let consumer = config.consumer_config("inventory");
        for (key, value) in [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("group.id", "inventory"),
            ("group.instance.id", "inventory-0"),
            ("enable.auto.commit", "true"),
            ("enable.auto.offset.store", "false"),
            ("auto.commit.interval.ms", "1000"),
            ("auto.offset.reset", "earliest"),
            ("session.timeout.ms", "30000"),
            ("max.poll.interval.ms", "300000"),
            ("enable.partition.eof", "false"),
            ("partition.assignment.strategy", "range,roundrobin"),
            ("statistics.interval.ms", "5000"),
            ("queued.max.messages.kbytes", "16384"),
        ] {
            assert_eq!(consumer.get(key), Some(value), "consumer {key}");
        }

        let producer = config.producer_config("inventory");
        assert_eq!(producer.get("transactional.id"), None);
        for (key, value) in [
            ("bootstrap.servers", "127.0.0.1:9092"),
            ("partitioner", "murmur2_random"),
            ("enable.idempotence", "true"),
            ("acks", "all"),
            ("linger.ms", "5"),
            ("compression.type", "lz4"),
            ("statistics.interval.ms", "5000"),
        ] {
            assert_eq!(producer.get(key), Some(value), "producer {key}");
        }
        assert_eq!(
            config.admin_config().get("bootstrap.servers"),
            Some("127.0.0.1:9092")
        );
    }

    #[test]
    fn consumer_has_no_static_membership_by_default() {
        assert_eq!(
            defaults().consumer_config("g").get("group.instance.id"),
            None
        );
    }

    #[test]
    fn exactly_once_producer_is_transactional_with_a_stable_id_per_instance() {
        let mut config = defaults();
        config.guarantee = Guarantee::ExactlyOnce;
        config.instance_id = Some("inventory-0".to_owned());
        assert_eq!(
            config.producer_config("inventory").get("transactional.id"),
            Some("inventory-inventory-0")
        );
        config.instance_id = None;
        let first = config.transactional_id("inventory").expect("exactly-once");
        let second = config.transactional_id("inventory").expect("exactly-once");
        assert!(first.starts_with("inventory-"), "{first}");
        assert_ne!(
            first, second,
            "instances without an id must not fence each other"
        );
    }

    #[test]
    fn exactly_once_consumer_does_not_auto_commit() {
        let mut config = defaults();
        config.guarantee = Guarantee::ExactlyOnce;
        let consumer = config.consumer_config("g");
        assert_eq!(consumer.get("enable.auto.commit"), Some("false"));
        assert_eq!(consumer.get("enable.auto.offset.store"), Some("false"));
    }

    #[test]
    fn pass_through_applies_env_then_flags_to_every_client() {
        let mut config = defaults();
        config.kafka_env_config = vec![
            setting("client.id", "from-env"),
            setting("ssl.ca.location", "/etc/ca.pem"),
        ];
        config.kafka_config = vec![setting("client.id", "from-flag")];
        for client in [
            config.consumer_config("g"),
            config.producer_config("g"),
            config.admin_config(),
        ] {
            assert_eq!(client.get("client.id"), Some("from-flag"));
            assert_eq!(client.get("ssl.ca.location"), Some("/etc/ca.pem"));
        }
    }

    #[test]
    fn bootstrap_servers_take_host_port_lists_with_optional_protocols() {
        for servers in [
            "127.0.0.1:9092",
            "broker-1:9092, broker-2:9092",
            "SASL_SSL://broker.example.com:9093",
            "[::1]:9092",
        ] {
            assert!(
                validate_bootstrap_servers(servers).is_ok(),
                "{servers} should be accepted"
            );
        }
    }

    #[test]
    fn group_id_defaults_to_the_worker_name() {
        assert_eq!(defaults().group_id_or("inventory"), "inventory");
    }

    #[test]
    fn validation_rejects_each_invalid_setting() {
        type Edit = fn(&mut RuntimeConfig);
        type Expect = fn(&ConfigError) -> bool;
        let cases: [(Edit, Expect); 25] = [
            (
                |c| {
                    c.kafka_config = vec![KafkaSetting {
                        key: "no.such.property".to_owned(),
                        value: "1".to_owned(),
                    }]
                },
                |e| matches!(e, ConfigError::InvalidKafkaSetting { reason } if reason.contains("no.such.property")),
            ),
            (
                |c| {
                    c.kafka_config = vec![KafkaSetting {
                        key: "sasl.pasword".to_owned(),
                        value: "hunter2".to_owned(),
                    }]
                },
                |e| matches!(e, ConfigError::InvalidKafkaSetting { reason } if reason.contains("sasl.pasword") && !reason.contains("hunter2")),
            ),
            (
                |c| c.instance_id = Some("pod 1".to_owned()),
                |e| matches!(e, ConfigError::InvalidName { flag, .. } if flag.contains("WORKER_INSTANCE_ID")),
            ),
            (
                |c| c.bootstrap_servers = " ".to_owned(),
                |e| matches!(e, ConfigError::EmptyBootstrapServers),
            ),
            (
                |c| c.bootstrap_servers = "broker-1:9092,broker-2".to_owned(),
                |e| matches!(e, ConfigError::InvalidBootstrapServer { entry } if entry == "broker-2"),
            ),
            (
                |c| c.bootstrap_servers = "bogus value!:9092".to_owned(),
                |e| matches!(e, ConfigError::InvalidBootstrapServer { .. }),
            ),
            (
                |c| c.bootstrap_servers = "broker:99999".to_owned(),
                |e| matches!(e, ConfigError::InvalidBootstrapServer { .. }),
            ),
            (
                |c| c.schema_registry_ca_file = Some(PathBuf::from("/no/such/ca.pem")),
                |e| matches!(e, ConfigError::UnreadableCaFile { .. }),
            ),
            (
                |c| c.group_id = Some("orders team".to_owned()),
                |e| matches!(e, ConfigError::InvalidName { flag, .. } if flag.contains("WORKER_GROUP_ID")),
            ),
            (
                |c| c.topic_prefix = "staging/".to_owned(),
                |e| matches!(e, ConfigError::InvalidName { flag, .. } if flag.contains("WORKER_TOPIC_PREFIX")),
            ),
            (
                |c| c.schema_registry_url = "registry:8081".to_owned(),
                |e| matches!(e, ConfigError::InvalidSchemaRegistryUrl { .. }),
            ),
            (
                |c| c.schema_registry_basic_auth = Some("no-colon".to_owned()),
                |e| matches!(e, ConfigError::InvalidBasicAuth),
            ),
            (
                |c| c.batch_size = 0,
                |e| matches!(e, ConfigError::ZeroBatchSize),
            ),
            (
                |c| c.max_in_flight = 499,
                |e| {
                    matches!(
                        e,
                        ConfigError::InFlightBelowBatchSize {
                            max_in_flight: 499,
                            batch_size: 500
                        }
                    )
                },
            ),
            (
                |c| c.retry_initial_backoff = Duration::from_secs(6),
                |e| matches!(e, ConfigError::BackoffInverted { .. }),
            ),
            (
                |c| c.retry_max_attempts = 0,
                |e| matches!(e, ConfigError::ZeroRetryAttempts),
            ),
            (
                |c| c.drain_deadline = Duration::from_secs(30),
                |e| matches!(e, ConfigError::DrainNotShorterThanSessionTimeout { .. }),
            ),
            (
                |c| c.kafka_config = vec![setting("max.poll.interval.ms", "1")],
                |e| matches!(e, ConfigError::ManagedKafkaSetting { key, .. } if key == "max.poll.interval.ms"),
            ),
            (
                |c| {
                    c.session_timeout = Duration::from_secs(45);
                    c.max_poll_interval = Duration::from_secs(40);
                },
                |e| matches!(e, ConfigError::PollIntervalBelowSessionTimeout { .. }),
            ),
            (
                |c| {
                    c.retry_max_attempts = 100;
                    c.retry_max_backoff = Duration::from_secs(10);
                },
                |e| matches!(e, ConfigError::RetriesExceedPollInterval { .. }),
            ),
            (
                |c| c.topic_partitions = 0,
                |e| matches!(e, ConfigError::InvalidTopicPartitions { value: 0 }),
            ),
            (
                |c| c.topic_replication = -1,
                |e| matches!(e, ConfigError::InvalidTopicReplication { value: -1 }),
            ),
            (
                |c| c.dedup_max_per_key = 0,
                |e| matches!(e, ConfigError::ZeroDedupMaxPerKey),
            ),
            (
                |c| c.kafka_config = vec![setting("enable.auto.offset.store", "true")],
                |e| matches!(e, ConfigError::ManagedKafkaSetting { key, .. } if key == "enable.auto.offset.store"),
            ),
            (
                |c| {
                    c.kafka_env_config = vec![setting(
                        "partition.assignment.strategy",
                        "cooperative-sticky",
                    )]
                },
                |e| matches!(e, ConfigError::ManagedKafkaSetting { key, .. } if key == "partition.assignment.strategy"),
            ),
        ];
        for (index, (edit, expected)) in cases.into_iter().enumerate() {
            let mut config = defaults();
            edit(&mut config);
            match config.validate() {
                Err(error) => assert!(expected(&error), "case {index}: unexpected {error:?}"),
                Ok(()) => panic!("case {index}: accepted {config:?}"),
            }
        }
    }

    #[test]
    fn drain_deadline_must_undercut_the_poll_interval_too() {
        let mut config = defaults();
        // Only reachable with a session timeout above the poll interval, which the next check
        // rejects anyway; the drain check comes first because it names the more useful fix.
        config.session_timeout = Duration::from_secs(400);
        config.drain_deadline = Duration::from_secs(300);
        assert_eq!(
            config.validate(),
            Err(ConfigError::DrainNotShorterThanPollInterval {
                drain_deadline: Duration::from_secs(300),
                max_poll_interval: Duration::from_secs(300),
            })
        );
    }

    #[test]
    fn validation_messages_name_flags_and_variables() {
        let mut config = defaults();
        config.drain_deadline = Duration::from_secs(40);
        let error = config.validate().expect_err("drain too long");
        assert_eq!(
            error.to_string(),
            "--drain-deadline (WORKER_DRAIN_DEADLINE) 40s must be shorter than --session-timeout (WORKER_SESSION_TIMEOUT) 30s"
        );

        let mut config = defaults();
        config.retry_max_attempts = 100;
        let message = config.validate().expect_err("retries too long").to_string();
        assert!(
            message.contains("--max-poll-interval (WORKER_MAX_POLL_INTERVAL) 5m"),
            "{message}"
        );
    }

    #[test]
    fn retries_within_the_poll_interval_are_accepted() {
        let mut config = defaults();
        // 100ms + 200ms + ... capped at 5s: 8 attempts sleep 100+200+400+800+1600+3200+5000 ms.
        config.retry_max_attempts = 8;
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(
            config.backoff().worst_case_total(),
            Duration::from_millis(11_300)
        );
    }

    #[test]
    fn redacted_hides_secrets() {
        let mut config = defaults();
        config.schema_registry_basic_auth = Some("bob:hunter2".to_owned());
        config.schema_registry_url = "https://reg-user:url-pass@registry:8081/base".to_owned();
        config.kafka_config = vec![
            setting("security.protocol", "SASL_SSL"),
            setting("sasl.password", "kafka-pass"),
            setting("ssl.key.password", "key-pass"),
            setting("ssl.key.pem", "-----BEGIN PRIVATE KEY-----"),
            setting(
                "sasl.oauthbearer.config",
                "principal=svc secret=oauth-secret",
            ),
            setting("sasl.oauthbearer.client.secret", "client-secret"),
        ];
        config.kafka_env_config = vec![
            setting("sasl.username", "alice"),
            setting("sasl.password", "env-pass"),
        ];
        let line = config.redacted();
        for secret in [
            "hunter2",
            "url-pass",
            "kafka-pass",
            "key-pass",
            "PRIVATE KEY",
            "oauth-secret",
            "client-secret",
            "env-pass",
        ] {
            assert!(!line.contains(secret), "{secret} leaked: {line}");
            assert!(
                !format!("{config:?}").contains(secret),
                "{secret} leaked in Debug"
            );
        }
        for shown in [
            "schema_registry_basic_auth=bob:***",
            "schema_registry_url=https://reg-user:***@registry:8081/base",
            "security.protocol=SASL_SSL",
            "sasl.password=***",
            "sasl.username=alice",
            "drain_deadline=20s",
            "bootstrap_servers=127.0.0.1:9092",
        ] {
            assert!(line.contains(shown), "{shown} missing: {line}");
        }
        assert!(!line.contains('\n'));
    }

    #[test]
    fn help_does_not_show_secret_environment_values() {
        let command = TestCli::command();
        for long in ["schema-registry-basic-auth", "kafka-config"] {
            let arg = command
                .get_arguments()
                .find(|arg| arg.get_long() == Some(long))
                .expect("flag exists");
            assert!(arg.is_hide_env_values_set(), "--{long}");
        }
    }

    #[test]
    fn url_redaction_leaves_plain_urls_alone() {
        assert_eq!(redact_url("http://127.0.0.1:8081"), "http://127.0.0.1:8081");
        assert_eq!(
            redact_url("http://registry:8081/a@b"),
            "http://registry:8081/a@b"
        );
        assert_eq!(
            redact_url("http://user@registry"),
            "http://user:***@registry"
        );
    }
}
