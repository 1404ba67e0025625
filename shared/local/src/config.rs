//! The run command's options: which broker, how the simulator plays, how long the run lasts,
//! and where logs and the summary go. Every option has an environment variable (`LOCAL_RUN_*`)
//! and a default, so `retail-local` with no arguments brings the whole system up.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, ValueEnum};

/// Where the run's broker comes from. The default is the mock cluster: measured on this
/// project's saga it starts in half the time, needs no install (tansu's first install is a
/// ~12-minute build), and keeps up at 50 orders/s where tansu on SQLite fell behind (see
/// shared/local/README.md for the figures).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BrokerKind {
    /// librdkafka's in-process mock cluster, hosted by this process: nothing to install, no
    /// persistence (and at most 5 MB or 100k records per partition), no admin API (topics are
    /// created through its own API), slower group rebalances than a real broker.
    Mock,
    /// The local broker of `deploy/local/stack` (tansu on SQLite), installed on first use and
    /// started fresh for the run: a real Kafka-protocol broker, data on disk.
    #[value(alias = "local")]
    Tansu,
}

impl BrokerKind {
    /// The name used in messages and in the summary.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tansu => "tansu",
            Self::Mock => "mock",
        }
    }
}

/// Runs the saga locally: broker, schema registry, the five workers and the simulator, with a
/// live view; Ctrl-C stops everything and prints a summary.
#[derive(Debug, Clone, Parser)]
#[command(version, name = "retail-local")]
pub struct Config {
    /// The broker to start: `mock` (librdkafka's in-process mock cluster) or `tansu` (the local
    /// broker of deploy/local/stack, installed on first use). Ignored with --bootstrap-servers.
    #[arg(long, env = "LOCAL_RUN_BROKER", value_enum, default_value_t = BrokerKind::Mock)]
    pub broker: BrokerKind,

    /// Run against an existing cluster instead of starting a broker (needs
    /// --schema-registry-url too). Separate variables from KAFKA_BOOTSTRAP_SERVERS, so a shell
    /// that exported a development stack does not silently redirect the run.
    #[arg(
        long,
        env = "LOCAL_RUN_BOOTSTRAP_SERVERS",
        requires = "schema_registry_url"
    )]
    pub bootstrap_servers: Option<String>,

    /// The schema registry of the existing cluster (with --bootstrap-servers).
    #[arg(
        long,
        env = "LOCAL_RUN_SCHEMA_REGISTRY_URL",
        requires = "bootstrap_servers"
    )]
    pub schema_registry_url: Option<String>,

    /// Orders the simulator places per second.
    #[arg(long, env = "LOCAL_RUN_RATE", default_value_t = 20.0)]
    pub rate: f64,

    /// Place orders for this long (e.g. 30s), wait for every order to end, stop everything and
    /// exit: the non-interactive mode (plain progress lines, no live view). Without it the run
    /// lasts until Ctrl-C (the simulator places orders for at most an hour).
    #[arg(long, env = "LOCAL_RUN_DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Seed of the simulator's plan: the same seed gives the same orders.
    #[arg(long, env = "LOCAL_RUN_SEED", default_value_t = 1)]
    pub seed: u64,

    /// Share of orders whose payment fails [simulator default: 0.05].
    #[arg(long, env = "LOCAL_RUN_PAYMENT_FAILURE_RATE")]
    pub payment_failure_rate: Option<f64>,

    /// Share of fraud-like orders [simulator default: 0.03].
    #[arg(long, env = "LOCAL_RUN_FRAUD_RATE")]
    pub fraud_rate: Option<f64>,

    /// Share of orders with a discontinued SKU [simulator default: 0.03].
    #[arg(long, env = "LOCAL_RUN_OUT_OF_STOCK_RATE")]
    pub out_of_stock_rate: Option<f64>,

    /// Share of orders that never get a payment answer, cancelled after --answer-deadline
    /// [simulator default: 0.02].
    #[arg(long, env = "LOCAL_RUN_MISSING_PAYMENT_RATE")]
    pub missing_payment_rate: Option<f64>,

    /// Share of orders with a scarce SKU [simulator default: 0.05].
    #[arg(long, env = "LOCAL_RUN_SCARCE_RATE")]
    pub scarce_rate: Option<f64>,

    /// Start no simulator: feed the topics yourself (their names are printed).
    #[arg(long, env = "LOCAL_RUN_NO_SIMULATOR")]
    pub no_simulator: bool,

    /// Print plain progress lines instead of the live terminal view.
    #[arg(long, env = "LOCAL_RUN_NO_TUI")]
    pub no_tui: bool,

    /// Write the final figures as JSON to this file.
    #[arg(long, env = "LOCAL_RUN_SUMMARY_JSON")]
    pub summary_json: Option<PathBuf>,

    /// Folder for every process's log [default: target/local-run/run-<unix time> in the
    /// workspace].
    #[arg(long, env = "LOCAL_RUN_LOG_DIR")]
    pub log_dir: Option<PathBuf>,

    /// Partitions of every topic (the workers check that their inputs are co-partitioned). The
    /// mock cluster creates the workers' own topics with 4, so it always uses 4.
    #[arg(long, env = "LOCAL_RUN_PARTITIONS", default_value_t = 6)]
    pub partitions: i32,

    /// Cargo profile the worker and simulator binaries are built with [default: the profile
    /// this command was built with, `release` under `cargo run --release`].
    #[arg(long, env = "LOCAL_RUN_PROFILE")]
    pub profile: Option<String>,

    /// Take the binaries from this folder and build nothing (e.g. target/debug).
    #[arg(long, env = "LOCAL_RUN_BIN_DIR")]
    pub bin_dir: Option<PathBuf>,

    /// The workspace to build from and whose deploy/local/stack installs the broker [default:
    /// the workspace this command was built from].
    #[arg(long, env = "LOCAL_RUN_WORKSPACE")]
    pub workspace: Option<PathBuf>,

    /// Keep the local broker's data from the previous run instead of starting it empty (tansu
    /// on SQLite slows down as its database grows).
    #[arg(long, env = "LOCAL_RUN_KEEP_DATA")]
    pub keep_data: bool,

    /// How long fulfilment waits for an order's answers before cancelling it (TIMEOUT): the
    /// simulator's missing payments end after this.
    #[arg(
        long,
        env = "LOCAL_RUN_ANSWER_DEADLINE",
        default_value = "30s",
        value_parser = humantime::parse_duration
    )]
    pub answer_deadline: Duration,

    /// Time fulfilment takes to pick and pack an order.
    #[arg(
        long,
        env = "LOCAL_RUN_PICK_PACK_TIME",
        default_value = "1s",
        value_parser = humantime::parse_duration
    )]
    pub pick_pack_time: Duration,

    /// How long a fetch of the workers and the simulator may wait for records on the mock
    /// cluster (librdkafka's fetch.wait.max.ms, 500 ms by default). The mock cluster answers a
    /// fetch that found nothing only when this runs out, even when records arrive meanwhile,
    /// so every hop of the saga waits up to this long; a real Kafka broker answers as soon as
    /// records arrive, so it is not applied with --bootstrap-servers, nor with tansu (whose
    /// own cost per fetch dominates). A KAFKA_CONFIG_FETCH_WAIT_MAX_MS in the environment wins.
    #[arg(
        long,
        env = "LOCAL_RUN_FETCH_WAIT_MAX",
        default_value = "5ms",
        value_parser = humantime::parse_duration
    )]
    pub fetch_wait_max: Duration,

    /// With --duration: how long to wait, after the last order, for every order to end.
    #[arg(
        long,
        env = "LOCAL_RUN_DRAIN_TIMEOUT",
        default_value = "180s",
        value_parser = humantime::parse_duration
    )]
    pub drain_timeout: Duration,

    /// On Ctrl-C: how long the workers may go on handling what they have read (until none
    /// reports lag) before they are stopped, so the summary shows a settled state.
    #[arg(
        long,
        env = "LOCAL_RUN_SETTLE_TIMEOUT",
        default_value = "20s",
        value_parser = humantime::parse_duration
    )]
    pub settle_timeout: Duration,

    /// How long a process may take to stop after SIGTERM before it is killed.
    #[arg(
        long,
        env = "LOCAL_RUN_STOP_DEADLINE",
        default_value = "20s",
        value_parser = humantime::parse_duration
    )]
    pub stop_deadline: Duration,
}

/// Options that do not work together.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigError {
    #[error("--rate (LOCAL_RUN_RATE) must be above zero, got {0}")]
    Rate(f64),
    #[error(
        "--bootstrap-servers (LOCAL_RUN_BOOTSTRAP_SERVERS) {0:?} must be a comma-separated list of host:port"
    )]
    BootstrapServers(String),
    #[error(
        "--schema-registry-url (LOCAL_RUN_SCHEMA_REGISTRY_URL) {0:?} must start with http:// or https://"
    )]
    RegistryUrl(String),
    #[error("--partitions (LOCAL_RUN_PARTITIONS) must be at least 1, got {0}")]
    Partitions(i32),
    #[error("--duration (LOCAL_RUN_DURATION) must be longer than zero")]
    Duration,
    #[error("--fetch-wait-max (LOCAL_RUN_FETCH_WAIT_MAX) must be from 1ms to 300s, got {0:?}")]
    FetchWaitMax(Duration),
    #[error("--{flag} must be between 0 and 1, got {value}")]
    Share { flag: &'static str, value: f64 },
}

impl Config {
    /// Checks what clap cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(servers) = &self.bootstrap_servers
            && retail_runtime::config::validate_bootstrap_servers(servers).is_err()
        {
            return Err(ConfigError::BootstrapServers(servers.clone()));
        }
        if let Some(url) = &self.schema_registry_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(ConfigError::RegistryUrl(
                retail_runtime::config::redact_url(url),
            ));
        }
        if !(self.rate > 0.0 && self.rate.is_finite()) {
            return Err(ConfigError::Rate(self.rate));
        }
        if self.partitions < 1 {
            return Err(ConfigError::Partitions(self.partitions));
        }
        if self.duration.is_some_and(|duration| duration.is_zero()) {
            return Err(ConfigError::Duration);
        }
        // librdkafka's range; 0 would make every idle client poll the broker without pause.
        if !(Duration::from_millis(1)..=Duration::from_secs(300)).contains(&self.fetch_wait_max) {
            return Err(ConfigError::FetchWaitMax(self.fetch_wait_max));
        }
        for (flag, value) in self.shares() {
            if let Some(value) = value
                && !(0.0..=1.0).contains(&value)
            {
                return Err(ConfigError::Share { flag, value });
            }
        }
        Ok(())
    }

    /// The failure mix options, by the simulator's flag names.
    pub fn shares(&self) -> [(&'static str, Option<f64>); 5] {
        [
            ("payment-failure-rate", self.payment_failure_rate),
            ("fraud-rate", self.fraud_rate),
            ("out-of-stock-rate", self.out_of_stock_rate),
            ("missing-payment-rate", self.missing_payment_rate),
            ("scarce-rate", self.scarce_rate),
        ]
    }

    /// Whether the run ends on its own (after --duration) rather than on Ctrl-C.
    pub fn non_interactive(&self) -> bool {
        self.duration.is_some()
    }

    /// The partitions every topic gets on the chosen broker.
    pub fn effective_partitions(&self) -> i32 {
        if self.bootstrap_servers.is_none() && self.broker == BrokerKind::Mock {
            MOCK_PARTITIONS
        } else {
            self.partitions
        }
    }

    /// The cargo profile to build with.
    pub fn build_profile(&self) -> String {
        self.profile.clone().unwrap_or_else(|| {
            if cfg!(debug_assertions) {
                "dev".to_owned()
            } else {
                "release".to_owned()
            }
        })
    }

    /// The workspace root.
    pub fn workspace_dir(&self) -> PathBuf {
        self.workspace.clone().unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .components()
                .collect()
        })
    }
}

/// The mock cluster's default partition count for topics it creates on first use
/// (librdkafka's `rd_kafka_mock_cluster_new`); catalogue topics get the same, so the workers'
/// inputs and changelogs are co-partitioned.
pub const MOCK_PARTITIONS: i32 = 4;

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Config {
        Config::try_parse_from(std::iter::once("retail-local").chain(args.iter().copied()))
            .expect("parses")
    }

    #[test]
    fn defaults_start_the_mock_cluster_interactively() {
        let config = parse(&[]);
        assert_eq!(config.broker, BrokerKind::Mock);
        assert!(!config.non_interactive());
        assert_eq!(config.validate(), Ok(()));
        assert_eq!(config.effective_partitions(), MOCK_PARTITIONS);
    }

    #[test]
    fn only_the_mock_cluster_overrides_the_partition_count() {
        let config = parse(&["--partitions", "3"]);
        assert_eq!(config.effective_partitions(), MOCK_PARTITIONS);
        let config = parse(&["--broker", "local", "--partitions", "3"]);
        assert_eq!(config.broker, BrokerKind::Tansu);
        assert_eq!(config.effective_partitions(), 3);
    }

    #[test]
    fn an_existing_cluster_needs_both_addresses() {
        let error = Config::try_parse_from(["retail-local", "--bootstrap-servers", "k:9092"])
            .expect_err("registry missing");
        assert!(error.to_string().contains("schema-registry-url"), "{error}");
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            parse(&["--rate", "0"]).validate(),
            Err(ConfigError::Rate(0.0))
        );
        assert_eq!(
            parse(&["--fraud-rate", "1.5"]).validate(),
            Err(ConfigError::Share {
                flag: "fraud-rate",
                value: 1.5
            })
        );
        assert_eq!(
            parse(&["--duration", "0s"]).validate(),
            Err(ConfigError::Duration)
        );
        assert_eq!(
            parse(&["--fetch-wait-max", "0s"]).validate(),
            Err(ConfigError::FetchWaitMax(Duration::ZERO))
        );
        let registry = ["--schema-registry-url", "http://registry:8081"];
        assert_eq!(
            parse(&["--bootstrap-servers", "kafka", registry[0], registry[1]]).validate(),
            Err(ConfigError::BootstrapServers("kafka".to_owned()))
        );
        assert_eq!(
            parse(&[
                "--bootstrap-servers",
                "kafka:9092",
                registry[0],
                "registry:8081"
            ])
            .validate(),
            Err(ConfigError::RegistryUrl("registry:8081".to_owned()))
        );
    }
}
