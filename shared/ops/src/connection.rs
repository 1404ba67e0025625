//! Where the cluster and the registry are, and the first request every command makes to each:
//! a metadata request bounded by `--timeout` (librdkafka would otherwise retry a wrong address
//! for ever) and a registry request with the same timeout, so a wrong address fails in seconds
//! with a message naming it.
//!
//! The flags and environment variables are the workers' (`KAFKA_BOOTSTRAP_SERVERS`,
//! `SCHEMA_REGISTRY_URL`, `SCHEMA_REGISTRY_BASIC_AUTH`, `WORKER_KAFKA_CONFIG`, `KAFKA_CONFIG_*`,
//! `WORKER_TOPIC_PREFIX`), so a shell or pod set up for a worker runs `retailctl` as is.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use retail_codec::SrSettings;
use retail_events::Topic;
use retail_runtime::cluster::{ProbeError, probe_cluster};
use retail_runtime::config::{
    ConnectionSettings, KafkaSetting, kafka_settings_from_process_env, redact_url,
    validate_connection,
};
use schema_registry_converter::async_impl::schema_registry::get_all_subjects;

use crate::error::OpsError;

/// Connection flags shared by every subcommand (except `simulate`, which has the simulator's own).
#[derive(Clone, clap::Args)]
pub struct Connection {
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

    /// Schema registry credentials, user:password (HTTP basic auth). Never printed.
    #[arg(long, env = "SCHEMA_REGISTRY_BASIC_AUTH", hide_env_values = true)]
    pub schema_registry_basic_auth: Option<String>,

    /// PEM file of CA certificates the schema registry's HTTPS certificate may also chain to (a
    /// private CA); the system's roots are always trusted.
    #[arg(long, env = "SCHEMA_REGISTRY_CA_FILE")]
    pub schema_registry_ca_file: Option<PathBuf>,

    /// A librdkafka property passed through verbatim, key=value (repeatable, comma-separated),
    /// e.g. for SASL/TLS; applied after the `KAFKA_CONFIG_<NAME>` variables, like the workers.
    #[arg(
        long = "kafka-config",
        env = "WORKER_KAFKA_CONFIG",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_config: Vec<KafkaSetting>,

    /// The `KAFKA_CONFIG_*` variables of the environment, captured at parse time.
    #[arg(skip = kafka_settings_from_process_env())]
    pub kafka_env_config: Vec<KafkaSetting>,

    /// Prefix of the catalogue topic names, e.g. `staging.`, as the workers were started with.
    #[arg(long, env = "WORKER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// How long the cluster and the registry may take to answer one request before the
    /// command fails with a message naming the address.
    #[arg(
        long,
        env = "RETAILCTL_TIMEOUT",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub timeout: Duration,
}

/// Secrets hidden: the credentials and secret librdkafka properties.
impl fmt::Debug for Connection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Connection")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field(
                "schema_registry_url",
                &redact_url(&self.schema_registry_url),
            )
            .field(
                "schema_registry_basic_auth",
                &self.schema_registry_basic_auth.as_ref().map(|_| "***"),
            )
            .field("schema_registry_ca_file", &self.schema_registry_ca_file)
            .field("kafka_config", &self.kafka_config)
            .field("kafka_env_config", &self.kafka_env_config)
            .field("topic_prefix", &self.topic_prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl Connection {
    /// The broker name of a catalogue topic (the prefix added).
    pub fn topic_name(&self, topic: Topic) -> String {
        format!("{}{}", self.topic_prefix, topic.name())
    }

    /// A topic name as an operator typed it: a catalogue topic's plain name gets the prefix,
    /// anything else (a prefixed name, a dead-letter or changelog topic) is used as is.
    pub fn resolve_topic(&self, name: &str) -> String {
        match Topic::from_name(name) {
            Some(topic) => self.topic_name(topic),
            None => name.to_owned(),
        }
    }

    /// Checks the settings before anything connects: a typo fails at once, naming its flag and
    /// variable.
    pub fn validate(&self) -> Result<(), OpsError> {
        validate_connection(&ConnectionSettings {
            bootstrap_servers: &self.bootstrap_servers,
            schema_registry_url: &self.schema_registry_url,
            schema_registry_basic_auth: self.schema_registry_basic_auth.as_deref(),
            schema_registry_ca_file: self.schema_registry_ca_file.as_deref(),
            topic_prefix: &self.topic_prefix,
        })
        .and_then(|()| retail_runtime::config::check_kafka_settings(&self.client_config()))
        .map_err(|error| OpsError::Usage(error.to_string()))
    }

    /// Client settings every client starts from: the bootstrap servers, then the pass-through
    /// properties (environment first, flags last).
    pub fn client_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        config.set(
            "socket.timeout.ms",
            millis(self.timeout.max(Duration::from_secs(10))),
        );
        for setting in self.kafka_env_config.iter().chain(&self.kafka_config) {
            config.set(&setting.key, &setting.value);
        }
        config
    }

    /// A consumer that is never part of a group's assignment (it assigns partitions itself)
    /// and never commits.
    pub fn reader_config(&self) -> ClientConfig {
        let mut config = self.client_config();
        config
            .set(
                "group.id",
                format!("retailctl-reader-{:016x}", rand::random::<u64>()),
            )
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("enable.partition.eof", "true")
            .set("auto.offset.reset", "earliest");
        config
    }

    /// Every topic of the cluster with its partition count. The first request of every Kafka
    /// command: it fails after `--timeout` with the address when nobody answers. Blocking.
    pub fn cluster_topics(&self) -> Result<BTreeMap<String, usize>, OpsError> {
        let metadata =
            probe_cluster(&self.reader_config(), self.timeout).map_err(|error| match error {
                ProbeError::Client(source) => OpsError::Kafka {
                    context: format!("creating a client for {}", self.bootstrap_servers),
                    reason: source.to_string(),
                },
                ProbeError::Unreachable { reason, hint } => OpsError::BrokerUnreachable {
                    bootstrap: self.bootstrap_servers.clone(),
                    timeout: humantime::format_duration(self.timeout).to_string(),
                    reason,
                    hint,
                },
            })?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| (topic.name().to_owned(), topic.partitions().len()))
            .collect())
    }

    /// [`Connection::cluster_topics`] off the async runtime.
    pub async fn cluster_topics_async(&self) -> Result<BTreeMap<String, usize>, OpsError> {
        let connection = self.clone();
        tokio::task::spawn_blocking(move || connection.cluster_topics())
            .await
            .map_err(|error| OpsError::Thread(error.to_string()))?
    }

    /// The partition count of `topic`, or a [`OpsError::MissingTopic`] naming it (and the
    /// prefixed or unprefixed name if that one exists).
    pub fn require_topic(
        &self,
        topics: &BTreeMap<String, usize>,
        topic: &str,
    ) -> Result<usize, OpsError> {
        if let Some(&partitions) = topics.get(topic) {
            return Ok(partitions);
        }
        let similar: Vec<&str> = topics
            .keys()
            .filter(|name| name.ends_with(topic) || topic.ends_with(name.as_str()))
            .map(String::as_str)
            .take(3)
            .collect();
        let hint = if similar.is_empty() {
            String::new()
        } else {
            format!(" (did you mean {}?)", similar.join(", "))
        };
        Err(OpsError::MissingTopic {
            topic: topic.to_owned(),
            bootstrap: self.bootstrap_servers.clone(),
            hint,
        })
    }

    /// The registry URL with credentials hidden, for messages.
    pub fn registry_url_shown(&self) -> String {
        redact_url(&self.schema_registry_url)
    }

    /// Registry client settings with `--timeout` per request.
    pub fn registry_settings(&self) -> Result<SrSettings, OpsError> {
        if !(self.schema_registry_url.starts_with("http://")
            || self.schema_registry_url.starts_with("https://"))
        {
            return Err(OpsError::Usage(format!(
                "--schema-registry-url (SCHEMA_REGISTRY_URL) {} must start with http:// or https://",
                self.registry_url_shown()
            )));
        }
        retail_codec::registry_settings_with_ca(
            &self.schema_registry_url,
            self.schema_registry_basic_auth.as_deref(),
            self.schema_registry_ca_file.as_deref(),
            self.timeout,
        )
        .map_err(|error| OpsError::Usage(error.to_string()))
    }

    /// The registry's subjects: the first request of every command that uses the registry,
    /// failing with the URL when it does not answer.
    pub async fn registry_subjects(&self, settings: &SrSettings) -> Result<Vec<String>, OpsError> {
        match get_all_subjects(settings).await {
            Ok(subjects) => Ok(subjects),
            Err(error) => Err(OpsError::RegistryUnreachable {
                url: self.registry_url_shown(),
                reason: self
                    .registry_transport_error()
                    .await
                    .unwrap_or_else(|| error.to_string()),
            }),
        }
    }

    /// Why a plain `GET /subjects` fails to get an answer, causes included (the registry
    /// client library's error drops them: an untrusted certificate reads as "error sending
    /// request"); `None` if it gets one. The URL is left out of the text, it may hold
    /// credentials.
    async fn registry_transport_error(&self) -> Option<String> {
        let client = retail_codec::registry_client_builder(self.schema_registry_ca_file.as_deref())
            .ok()?
            .timeout(self.timeout)
            .build()
            .ok()?;
        let url = format!(
            "{}/subjects",
            self.schema_registry_url.trim_end_matches('/')
        );
        let error = client.get(url).send().await.err()?.without_url();
        let mut text = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        if text.contains("certificate") || text.contains("UnknownIssuer") {
            text.push_str(
                "; if a private CA issued the registry's certificate, pass it with \
                 --schema-registry-ca-file / SCHEMA_REGISTRY_CA_FILE",
            );
        }
        Some(text)
    }
}

/// librdkafka takes durations as whole milliseconds.
fn millis(duration: Duration) -> String {
    duration.as_millis().to_string()
}
