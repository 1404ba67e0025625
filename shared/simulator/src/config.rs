//! The simulator's command line: where the cluster is, how many orders at what rate, the mix of
//! order categories, and the warehouse's restock behaviour.
//!
//! Every flag also reads an environment variable. The cluster flags use the workers' variables
//! (`KAFKA_BOOTSTRAP_SERVERS`, `SCHEMA_REGISTRY_URL`, `WORKER_TOPIC_PREFIX`, ...), so one
//! environment points the workers and the simulator at the same topics; the simulator's own
//! flags use `SIMULATOR_*`. [`Config::validate`] checks them at start-up and turns them into the
//! plan's settings, with messages that name the flag.

use std::path::PathBuf;
use std::time::Duration;

use rdkafka::ClientConfig;
use retail_runtime::config::{
    ConnectionSettings, KafkaSetting, LogFormat, PARTITIONER, kafka_settings_from_process_env,
    validate_connection,
};

use crate::plan::{MixError, MixRates, PlanSettings};

/// Orders in one run, at most: the plan is held in memory (about 2 KB per order).
pub const MAX_ORDERS: u64 = 1_000_000;

/// Orders when neither `--orders` nor `--duration` is given.
pub const DEFAULT_ORDERS: u64 = 100;

/// The simulator's configuration.
#[derive(Clone, clap::Parser)]
#[command(
    name = "simulator",
    about = "Plays the storefront, the payment system and the warehouse against the order saga, \
             deterministically from a seed."
)]
pub struct Config {
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

    /// Prefix of the catalogue topic names, e.g. `staging.`; empty for none.
    #[arg(long, env = "WORKER_TOPIC_PREFIX", default_value = "")]
    pub topic_prefix: String,

    /// Create missing topics at start-up (true or false).
    #[arg(
        long,
        env = "WORKER_CREATE_TOPICS",
        default_value_t = true,
        action = clap::ArgAction::Set,
        value_parser = clap::builder::BoolishValueParser::new(),
    )]
    pub create_topics: bool,

    /// Partitions of topics the simulator creates when they are missing. The workers check that
    /// their inputs are co-partitioned: use the same count for them (WORKER_TOPIC_PARTITIONS).
    #[arg(long, env = "WORKER_TOPIC_PARTITIONS", default_value_t = 6)]
    pub topic_partitions: i32,

    /// Replication factor of topics the simulator creates when they are missing.
    #[arg(long, env = "WORKER_TOPIC_REPLICATION", default_value_t = 1)]
    pub topic_replication: i32,

    /// A librdkafka property passed through verbatim, key=value (repeatable, comma-separated),
    /// after the `KAFKA_CONFIG_<NAME>` variables (as the workers take them).
    #[arg(
        long = "kafka-config",
        env = "WORKER_KAFKA_CONFIG",
        value_name = "KEY=VALUE",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub kafka_config: Vec<KafkaSetting>,

    /// The `KAFKA_CONFIG_*` variables of the environment, captured when parsed.
    #[arg(skip = kafka_settings_from_process_env())]
    pub kafka_env_config: Vec<KafkaSetting>,

    /// Log format.
    #[arg(long, env = "WORKER_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Seed of the run: the same seed gives the same orders, customers, payments and stock.
    #[arg(long, env = "SIMULATOR_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Orders placed per second.
    #[arg(long, env = "SIMULATOR_RATE", default_value_t = 20.0)]
    pub rate: f64,

    /// Orders to place, then stop [default: 100 when --duration is not given].
    #[arg(long, env = "SIMULATOR_ORDERS")]
    pub orders: Option<u64>,

    /// Place orders for this long (e.g. 60s), then stop: rate x duration orders.
    #[arg(long, env = "SIMULATOR_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// How long to wait after the initial stock is delivered before the first order. Kafka
    /// orders records within a partition, not across topics: inventory may read the first
    /// orders' holds before the warehouse's initial stock if they come right after it, and
    /// refuse them as out of stock.
    #[arg(
        long,
        env = "SIMULATOR_STOCK_LEAD_TIME",
        default_value = "5s",
        value_parser = humantime::parse_duration
    )]
    pub stock_lead_time: Duration,

    /// How long to keep answering LowStock after the last order (0s: stop at once).
    #[arg(
        long,
        env = "SIMULATOR_LINGER",
        default_value = "10s",
        value_parser = humantime::parse_duration
    )]
    pub linger: Duration,

    /// Share of orders whose payment fails (expected: cancelled, PAYMENT_FAILED).
    #[arg(long, env = "SIMULATOR_PAYMENT_FAILURE_RATE", default_value_t = 0.05)]
    pub payment_failure_rate: f64,

    /// Share of fraud-like orders (expected: cancelled, FRAUD_SUSPECTED).
    #[arg(long, env = "SIMULATOR_FRAUD_RATE", default_value_t = 0.03)]
    pub fraud_rate: f64,

    /// Share of orders with a discontinued SKU (expected: cancelled, OUT_OF_STOCK).
    #[arg(long, env = "SIMULATOR_OUT_OF_STOCK_RATE", default_value_t = 0.03)]
    pub out_of_stock_rate: f64,

    /// Share of orders that never get a payment answer (expected: cancelled, TIMEOUT).
    #[arg(long, env = "SIMULATOR_MISSING_PAYMENT_RATE", default_value_t = 0.02)]
    pub missing_payment_rate: f64,

    /// Share of orders with a scarce SKU (expected: shipped or cancelled OUT_OF_STOCK).
    #[arg(long, env = "SIMULATOR_SCARCE_RATE", default_value_t = 0.05)]
    pub scarce_rate: f64,

    /// Shortest delay between an order and its payment answer.
    #[arg(
        long,
        env = "SIMULATOR_PAYMENT_DELAY_MIN",
        default_value = "20ms",
        value_parser = humantime::parse_duration
    )]
    pub payment_delay_min: Duration,

    /// Longest delay between an order and its payment answer.
    #[arg(
        long,
        env = "SIMULATOR_PAYMENT_DELAY_MAX",
        default_value = "200ms",
        value_parser = humantime::parse_duration
    )]
    pub payment_delay_max: Duration,

    /// Units the warehouse adds to an ample SKU in answer to each LowStock.
    #[arg(long, env = "SIMULATOR_RESTOCK_AMOUNT", default_value_t = 50)]
    pub restock_amount: i32,

    /// Initial stock of each ample SKU above the run's whole demand for it (at least 1). A small
    /// margin lets stock run low, so inventory raises LowStock and the warehouse restocks.
    #[arg(long, env = "SIMULATOR_AMPLE_MARGIN", default_value_t = 25)]
    pub ample_margin: u32,

    /// From this order on (counting from 0), write `OrderPlaced` with revision 2 of its schema
    /// (adds an optional `gift_message`), registered under the same subject: a storefront
    /// upgraded mid-run, to exercise consumers' schema resolution.
    #[arg(long, env = "SIMULATOR_ORDER_SCHEMA_V2_FROM")]
    pub order_schema_v2_from: Option<usize>,

    /// Write the run's summary (orders, expected outcomes, stock) as JSON to this file at the end.
    #[arg(long, env = "SIMULATOR_SUMMARY_FILE")]
    pub summary_file: Option<PathBuf>,
}

/// Secrets hidden: `Debug` output ends up in logs.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Config {{ {} }}", self.redacted())
    }
}

/// A setting the simulator cannot run with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error(transparent)]
    Connection(#[from] retail_runtime::config::ConfigError),
    #[error(
        "--summary-file (SIMULATOR_SUMMARY_FILE): the folder {} does not exist",
        folder.display()
    )]
    SummaryFolder { folder: PathBuf },
    #[error("--rate (SIMULATOR_RATE) must be a positive number of orders per second, got {rate}")]
    Rate { rate: f64 },
    #[error(
        "give --orders (SIMULATOR_ORDERS) or --duration (SIMULATOR_DURATION), not both: both set"
    )]
    OrdersAndDuration,
    #[error("the run would place no orders: {reason}")]
    NoOrders { reason: String },
    #[error("the run would place {orders} orders; at most {MAX_ORDERS} fit in one run")]
    TooManyOrders { orders: u64 },
    #[error(transparent)]
    Mix(#[from] MixError),
    #[error(
        "--payment-delay-min ({min:?}) must not exceed --payment-delay-max ({max:?}) \
         (SIMULATOR_PAYMENT_DELAY_MIN, SIMULATOR_PAYMENT_DELAY_MAX)"
    )]
    PaymentDelay { min: Duration, max: Duration },
    #[error("--restock-amount (SIMULATOR_RESTOCK_AMOUNT) must be at least 1, got {amount}")]
    RestockAmount { amount: i32 },
    #[error(
        "--ample-margin (SIMULATOR_AMPLE_MARGIN) must be at least 1, so ample SKUs are never short"
    )]
    AmpleMargin,
    #[error("--topic-partitions (WORKER_TOPIC_PARTITIONS) must be at least 1, got {partitions}")]
    TopicPartitions { partitions: i32 },
    #[error("--topic-replication (WORKER_TOPIC_REPLICATION) must be at least 1, got {replication}")]
    TopicReplication { replication: i32 },
}

impl Config {
    /// The mix of order categories.
    pub fn mix(&self) -> MixRates {
        MixRates {
            payment_failure: self.payment_failure_rate,
            fraud: self.fraud_rate,
            out_of_stock: self.out_of_stock_rate,
            missing_payment: self.missing_payment_rate,
            scarce: self.scarce_rate,
        }
    }

    /// Orders in the run: `--orders`, or rate x `--duration`, or [`DEFAULT_ORDERS`].
    pub fn order_count(&self) -> Result<u64, ConfigError> {
        let orders = match (self.orders, self.duration) {
            (Some(_), Some(_)) => return Err(ConfigError::OrdersAndDuration),
            (Some(orders), None) => orders,
            (None, Some(duration)) => (duration.as_secs_f64() * self.rate).floor() as u64,
            (None, None) => DEFAULT_ORDERS,
        };
        if orders == 0 {
            return Err(ConfigError::NoOrders {
                reason: match self.duration {
                    Some(duration) => format!(
                        "--duration {} at --rate {} is less than one order",
                        humantime::format_duration(duration),
                        self.rate
                    ),
                    None => "--orders is 0".to_owned(),
                },
            });
        }
        if orders > MAX_ORDERS {
            return Err(ConfigError::TooManyOrders { orders });
        }
        Ok(orders)
    }

    /// Checks the settings and returns what the plan is generated from.
    pub fn validate(&self) -> Result<PlanSettings, ConfigError> {
        validate_connection(&ConnectionSettings {
            bootstrap_servers: &self.bootstrap_servers,
            schema_registry_url: &self.schema_registry_url,
            schema_registry_basic_auth: self.schema_registry_basic_auth.as_deref(),
            schema_registry_ca_file: self.schema_registry_ca_file.as_deref(),
            topic_prefix: &self.topic_prefix,
        })?;
        if let Some(parent) = self
            .summary_file
            .as_deref()
            .and_then(std::path::Path::parent)
            .filter(|parent| !parent.as_os_str().is_empty())
            && !parent.is_dir()
        {
            return Err(ConfigError::SummaryFolder {
                folder: parent.to_owned(),
            });
        }
        retail_runtime::config::check_kafka_settings(&self.producer_config())?;
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(ConfigError::Rate { rate: self.rate });
        }
        let orders = self.order_count()?;
        self.mix().validate()?;
        if self.payment_delay_min > self.payment_delay_max {
            return Err(ConfigError::PaymentDelay {
                min: self.payment_delay_min,
                max: self.payment_delay_max,
            });
        }
        if self.restock_amount < 1 {
            return Err(ConfigError::RestockAmount {
                amount: self.restock_amount,
            });
        }
        if self.ample_margin < 1 {
            return Err(ConfigError::AmpleMargin);
        }
        if self.topic_partitions < 1 {
            return Err(ConfigError::TopicPartitions {
                partitions: self.topic_partitions,
            });
        }
        if self.topic_replication < 1 {
            return Err(ConfigError::TopicReplication {
                replication: self.topic_replication,
            });
        }
        Ok(PlanSettings {
            orders: usize::try_from(orders).unwrap_or(usize::MAX),
            rate_per_second: self.rate,
            mix: self.mix(),
            payment_delay_min: self.payment_delay_min,
            payment_delay_max: self.payment_delay_max,
            ample_margin: self.ample_margin,
        })
    }

    /// The producer's librdkafka configuration: idempotent, acknowledged by all in-sync
    /// replicas, keys partitioned like the Java client (as the workers do).
    pub fn producer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("partitioner", PARTITIONER)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "5")
            .set("compression.type", "lz4");
        self.apply_pass_through(&mut config);
        config
    }

    /// The low-stock reader's librdkafka configuration. It is assigned partitions by hand and
    /// commits nothing; the group id only names it in the broker's logs.
    pub fn consumer_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", &self.bootstrap_servers)
            .set("group.id", "simulator-warehouse")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("isolation.level", "read_committed");
        self.apply_pass_through(&mut config);
        config
    }

    /// The admin client's librdkafka configuration (topic creation, metadata).
    pub fn admin_config(&self) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.bootstrap_servers);
        self.apply_pass_through(&mut config);
        config
    }

    fn apply_pass_through(&self, config: &mut ClientConfig) {
        for setting in self.kafka_env_config.iter().chain(&self.kafka_config) {
            config.set(&setting.key, &setting.value);
        }
    }

    /// The effective configuration on one line, for the start-up log, secrets hidden.
    pub fn redacted(&self) -> String {
        let settings = self
            .kafka_env_config
            .iter()
            .chain(&self.kafka_config)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let optional = |value: Option<String>| value.unwrap_or_else(|| "-".to_owned());
        [
            ("bootstrap_servers", self.bootstrap_servers.clone()),
            ("schema_registry_url", redact_url(&self.schema_registry_url)),
            (
                "schema_registry_basic_auth",
                optional(
                    self.schema_registry_basic_auth
                        .as_ref()
                        .map(|_| "***".to_owned()),
                ),
            ),
            (
                "schema_registry_ca_file",
                optional(
                    self.schema_registry_ca_file
                        .as_ref()
                        .map(|path| path.display().to_string()),
                ),
            ),
            ("topic_prefix", self.topic_prefix.clone()),
            ("create_topics", self.create_topics.to_string()),
            ("topic_partitions", self.topic_partitions.to_string()),
            ("topic_replication", self.topic_replication.to_string()),
            ("kafka_config", settings),
            ("seed", self.seed.to_string()),
            ("rate", self.rate.to_string()),
            ("orders", optional(self.orders.map(|n| n.to_string()))),
            (
                "duration",
                optional(
                    self.duration
                        .map(|d| humantime::format_duration(d).to_string()),
                ),
            ),
            (
                "linger",
                humantime::format_duration(self.linger).to_string(),
            ),
            (
                "payment_failure_rate",
                self.payment_failure_rate.to_string(),
            ),
            ("fraud_rate", self.fraud_rate.to_string()),
            ("out_of_stock_rate", self.out_of_stock_rate.to_string()),
            (
                "missing_payment_rate",
                self.missing_payment_rate.to_string(),
            ),
            ("scarce_rate", self.scarce_rate.to_string()),
            (
                "payment_delay",
                format!(
                    "{}..{}",
                    humantime::format_duration(self.payment_delay_min),
                    humantime::format_duration(self.payment_delay_max)
                ),
            ),
            ("restock_amount", self.restock_amount.to_string()),
            ("ample_margin", self.ample_margin.to_string()),
            (
                "order_schema_v2_from",
                optional(self.order_schema_v2_from.map(|n| n.to_string())),
            ),
            (
                "summary_file",
                optional(
                    self.summary_file
                        .as_ref()
                        .map(|path| path.display().to_string()),
                ),
            ),
        ]
        .iter()
        .map(|(key, value)| {
            let shown = if value.is_empty() { "-" } else { value };
            format!("{key}={shown}")
        })
        .collect::<Vec<_>>()
        .join(" ")
    }
}

/// The URL with any `user:password@` replaced by `***@`.
fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://***@{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;

    /// Parses `args` ignoring the environment: tests run with `KAFKA_BOOTSTRAP_SERVERS` and
    /// friends pointing at a broker, which would override the defaults under test.
    fn parse(args: &[&str]) -> Config {
        let command = Config::command().mut_args(|arg| arg.env(None::<&str>));
        let matches = command
            .try_get_matches_from(std::iter::once("simulator").chain(args.iter().copied()))
            .expect("parses");
        let mut config = Config::from_arg_matches(&matches).expect("parses");
        config.kafka_env_config.clear();
        config
    }

    #[test]
    fn every_flag_reads_its_environment_variable_and_has_help() {
        let expected = [
            ("bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS"),
            ("schema-registry-url", "SCHEMA_REGISTRY_URL"),
            ("schema-registry-basic-auth", "SCHEMA_REGISTRY_BASIC_AUTH"),
            ("schema-registry-ca-file", "SCHEMA_REGISTRY_CA_FILE"),
            ("topic-prefix", "WORKER_TOPIC_PREFIX"),
            ("create-topics", "WORKER_CREATE_TOPICS"),
            ("topic-partitions", "WORKER_TOPIC_PARTITIONS"),
            ("topic-replication", "WORKER_TOPIC_REPLICATION"),
            ("kafka-config", "WORKER_KAFKA_CONFIG"),
            ("log-format", "WORKER_LOG_FORMAT"),
            ("seed", "SIMULATOR_SEED"),
            ("rate", "SIMULATOR_RATE"),
            ("orders", "SIMULATOR_ORDERS"),
            ("duration", "SIMULATOR_DURATION"),
            ("linger", "SIMULATOR_LINGER"),
            ("stock-lead-time", "SIMULATOR_STOCK_LEAD_TIME"),
            ("payment-failure-rate", "SIMULATOR_PAYMENT_FAILURE_RATE"),
            ("fraud-rate", "SIMULATOR_FRAUD_RATE"),
            ("out-of-stock-rate", "SIMULATOR_OUT_OF_STOCK_RATE"),
            ("missing-payment-rate", "SIMULATOR_MISSING_PAYMENT_RATE"),
            ("scarce-rate", "SIMULATOR_SCARCE_RATE"),
            ("payment-delay-min", "SIMULATOR_PAYMENT_DELAY_MIN"),
            ("payment-delay-max", "SIMULATOR_PAYMENT_DELAY_MAX"),
            ("restock-amount", "SIMULATOR_RESTOCK_AMOUNT"),
            ("ample-margin", "SIMULATOR_AMPLE_MARGIN"),
            ("order-schema-v2-from", "SIMULATOR_ORDER_SCHEMA_V2_FROM"),
            ("summary-file", "SIMULATOR_SUMMARY_FILE"),
        ];
        let command = Config::command();
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
    fn defaults_are_as_documented_and_valid() {
        let config = parse(&[]);
        assert_eq!(config.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.topic_partitions, 6);
        assert!(config.create_topics);
        assert_eq!(config.seed, 1);
        assert_eq!(config.rate, 20.0);
        assert_eq!(config.linger, Duration::from_secs(10));
        assert_eq!(config.restock_amount, 50);
        assert_eq!(
            (config.payment_delay_min, config.payment_delay_max),
            (Duration::from_millis(20), Duration::from_millis(200))
        );
        let settings = config.validate().expect("defaults are valid");
        assert_eq!(settings.orders, 100);
        assert_eq!(
            settings.mix,
            MixRates {
                payment_failure: 0.05,
                fraud: 0.03,
                out_of_stock: 0.03,
                missing_payment: 0.02,
                scarce: 0.05,
            }
        );
    }

    #[test]
    fn flags_parse() {
        let config = parse(&[
            "--seed",
            "7",
            "--rate",
            "50",
            "--duration",
            "2s",
            "--fraud-rate",
            "0.5",
            "--create-topics",
            "false",
            "--kafka-config",
            "security.protocol=SSL,client.id=sim",
            "--summary-file",
            "/tmp/summary.json",
            "--linger",
            "0s",
        ]);
        assert_eq!(config.seed, 7);
        assert!(!config.create_topics);
        assert_eq!(config.kafka_config.len(), 2);
        assert_eq!(config.linger, Duration::ZERO);
        let settings = config.validate().expect("valid");
        assert_eq!(settings.orders, 100, "50/s for 2 s");
        assert_eq!(settings.mix.fraud, 0.5);
        let producer = config.producer_config();
        assert_eq!(producer.get("partitioner"), Some("murmur2_random"));
        assert_eq!(producer.get("enable.idempotence"), Some("true"));
        assert_eq!(producer.get("security.protocol"), Some("SSL"));
    }

    #[test]
    fn each_invalid_setting_is_refused_with_its_flag() {
        let cases: [(&[&str], &str); 11] = [
            (&["--bootstrap-servers", " "], "--bootstrap-servers"),
            (
                &["--schema-registry-url", "localhost:8081"],
                "--schema-registry-url",
            ),
            (&["--rate", "0"], "--rate"),
            (&["--orders", "5", "--duration", "1s"], "not both"),
            (&["--orders", "0"], "--orders is 0"),
            (&["--duration", "10ms"], "less than one order"),
            (&["--orders", "2000000"], "at most 1000000"),
            (
                &["--fraud-rate", "0.6", "--scarce-rate", "0.6"],
                "at most 1",
            ),
            (
                &["--payment-delay-min", "1s", "--payment-delay-max", "10ms"],
                "--payment-delay-min",
            ),
            (&["--restock-amount", "0"], "--restock-amount"),
            (&["--ample-margin", "0"], "--ample-margin"),
        ];
        for (args, needle) in cases {
            let error = parse(args).validate().expect_err("invalid");
            assert!(error.to_string().contains(needle), "{args:?}: {error}");
        }
        assert!(matches!(
            parse(&["--topic-partitions", "0"]).validate(),
            Err(ConfigError::TopicPartitions { partitions: 0 })
        ));
        assert!(matches!(
            parse(&["--rate", "NaN"]).validate(),
            Err(ConfigError::Rate { .. })
        ));
        assert!(matches!(
            parse(&["--missing-payment-rate=-0.1"]).validate(),
            Err(ConfigError::Mix(MixError::OutOfRange {
                flag: "missing-payment-rate",
                ..
            }))
        ));
    }

    #[test]
    fn redacted_hides_credentials() {
        let config = parse(&[
            "--schema-registry-url",
            "https://user:pw@registry.example:8081/path",
            "--schema-registry-basic-auth",
            "alice:secret",
            "--kafka-config",
            "sasl.password=hunter2",
        ]);
        let line = config.redacted();
        assert!(!line.contains("secret") && !line.contains("hunter2") && !line.contains("pw@"));
        assert!(line.contains("schema_registry_url=https://***@registry.example:8081/path"));
        assert!(line.contains("schema_registry_basic_auth=***"));
        assert!(format!("{config:?}").contains("sasl.password=***"));
    }
}
