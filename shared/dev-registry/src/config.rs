//! Command-line and environment configuration of the dev registry.
//!
//! Every flag has an environment variable and a default, so `dev-registry` with no arguments
//! serves on Confluent's usual port against a local broker. A secured broker's settings come as
//! `KAFKA_CONFIG_<NAME>` variables, the workers' convention: `KAFKA_CONFIG_SASL_USERNAME=bob`
//! sets librdkafka's `sasl.username`.

use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;

use crate::compatibility::CompatibilityLevel;
use crate::log::KafkaLogConfig;

/// Development Schema Registry (Confluent REST API subset, Avro only) storing its state in a
/// compacted Kafka topic. Single instance per topic; not for production.
#[derive(Debug, Clone, Parser)]
#[command(name = "dev-registry", version, about)]
pub struct Config {
    /// Address to serve HTTP on; port 0 picks a free port (the bound address is logged).
    #[arg(long, env = "SCHEMA_REGISTRY_LISTEN", default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,

    /// Kafka bootstrap servers holding the schemas topic.
    #[arg(
        long,
        env = "KAFKA_BOOTSTRAP_SERVERS",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_servers: String,

    /// Compacted topic the registry stores its state in (Confluent's default is `_schemas`).
    #[arg(long, env = "SCHEMA_REGISTRY_TOPIC", default_value = "_schemas")]
    pub schemas_topic: String,

    /// Replication factor used when the registry has to create the schemas topic.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_TOPIC_REPLICATION",
        default_value_t = 1,
        value_parser = clap::value_parser!(i32).range(1..=i64::from(i16::MAX))
    )]
    pub schemas_topic_replication: i32,

    /// Global compatibility level until one is set with `PUT /config`.
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_COMPATIBILITY",
        default_value = "BACKWARD"
    )]
    pub default_compatibility: CompatibilityLevel,

    /// Budget in milliseconds for each Kafka operation (topic creation, replay progress,
    /// delivery of a write).
    #[arg(
        long,
        env = "SCHEMA_REGISTRY_KAFKA_TIMEOUT_MS",
        default_value_t = 10_000,
        value_parser = clap::value_parser!(u64).range(1..=u64::from(i32::MAX.unsigned_abs()))
    )]
    pub kafka_timeout_ms: u64,
}

impl Config {
    /// The part of the configuration the Kafka log needs, with the process environment's
    /// `KAFKA_CONFIG_*` settings.
    pub fn kafka_log(&self) -> KafkaLogConfig {
        KafkaLogConfig {
            bootstrap_servers: self.bootstrap_servers.clone(),
            client_settings: client_settings_from_env(std::env::vars_os().filter_map(
                |(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?)),
            )),
            topic: self.schemas_topic.clone(),
            replication_factor: self.schemas_topic_replication,
            timeout: Duration::from_millis(self.kafka_timeout_ms),
        }
    }
}

/// librdkafka properties from `KAFKA_CONFIG_<NAME>` variables: the name after the prefix,
/// lowercased, `_` turned into `.`.
fn client_settings_from_env(
    vars: impl IntoIterator<Item = (String, String)>,
) -> Vec<(String, String)> {
    let mut settings: Vec<(String, String)> = vars
        .into_iter()
        .filter_map(|(name, value)| {
            let property = name.strip_prefix("KAFKA_CONFIG_")?;
            (!property.is_empty()).then(|| (property.to_ascii_lowercase().replace('_', "."), value))
        })
        .collect();
    settings.sort();
    settings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_confluent_conventions() {
        let config = Config::try_parse_from(["dev-registry"]).expect("defaults parse");
        assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 8081)));
        assert_eq!(config.schemas_topic, "_schemas");
        assert_eq!(config.schemas_topic_replication, 1);
        assert_eq!(config.default_compatibility, CompatibilityLevel::Backward);
        assert_eq!(config.kafka_log().timeout, Duration::from_secs(10));
    }

    #[test]
    fn kafka_config_variables_become_client_settings() {
        let settings = client_settings_from_env(
            [
                ("KAFKA_CONFIG_SASL_PASSWORD", "secret"),
                ("KAFKA_CONFIG_SECURITY_PROTOCOL", "SASL_SSL"),
                ("KAFKA_CONFIG_", "no property name"),
                ("KAFKA_BOOTSTRAP_SERVERS", "not a client setting"),
            ]
            .map(|(name, value)| (name.to_owned(), value.to_owned())),
        );
        assert_eq!(
            settings,
            [
                ("sasl.password".to_owned(), "secret".to_owned()),
                ("security.protocol".to_owned(), "SASL_SSL".to_owned()),
            ]
        );
        let log = KafkaLogConfig {
            client_settings: settings,
            ..Config::try_parse_from(["dev-registry"])
                .expect("parses")
                .kafka_log()
        };
        let debug = format!("{log:?}");
        assert!(debug.contains("sasl.password"), "{debug}");
        assert!(!debug.contains("secret"), "a setting's value in {debug}");
    }

    #[test]
    fn flags_override_defaults_and_are_validated() {
        let config = Config::try_parse_from([
            "dev-registry",
            "--listen",
            "127.0.0.1:0",
            "--bootstrap-servers",
            "broker:19092",
            "--schemas-topic",
            "_dev_schemas",
            "--schemas-topic-replication",
            "3",
            "--default-compatibility",
            "full_transitive",
            "--kafka-timeout-ms",
            "250",
        ])
        .expect("parses");
        assert_eq!(config.listen.port(), 0);
        assert_eq!(
            config.default_compatibility,
            CompatibilityLevel::FullTransitive
        );
        let log = config.kafka_log();
        assert_eq!(log.bootstrap_servers, "broker:19092");
        assert_eq!(log.topic, "_dev_schemas");
        assert_eq!(log.replication_factor, 3);
        assert_eq!(log.timeout, Duration::from_millis(250));

        for bad in [
            ["--default-compatibility", "SIDEWAYS"],
            ["--kafka-timeout-ms", "0"],
            ["--schemas-topic-replication", "0"],
            ["--listen", "localhost"],
        ] {
            assert!(
                Config::try_parse_from(["dev-registry", bad[0], bad[1]]).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }
}
