//! The first request to the Kafka cluster: a metadata request that tells, when it fails, why.
//!
//! librdkafka retries a broker it cannot reach for ever and reports authentication and TLS
//! failures only as error events; a request that fails on them says no more than "broker
//! transport failure", and the admin client never serves those events at all. The probe keeps
//! the first such event, so a worker at start-up and `retailctl` say "SASL authentication
//! failed ... check sasl.password" instead of timing out with nothing in the log.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::metadata::Metadata;
use rdkafka::types::RDKafkaErrorCode;

/// Why the probe got no metadata.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The client settings were rejected: not a connection problem.
    #[error("creating a Kafka client: {0}")]
    Client(KafkaError),
    /// No answer, or the cluster refused the client.
    #[error("{reason} ({hint})")]
    Unreachable {
        /// The authentication or TLS failure librdkafka reported, else the request's error.
        reason: String,
        /// What to check.
        hint: &'static str,
    },
}

/// The hint when nothing more specific is known.
const ADDRESS_HINT: &str = "check --bootstrap-servers / KAFKA_BOOTSTRAP_SERVERS";

/// Asks the cluster `client` points at for the metadata of every topic, waiting at most
/// `timeout`. Blocking: call off the async runtime.
pub fn probe_cluster(client: &ClientConfig, timeout: Duration) -> Result<Metadata, ProbeError> {
    let mut config = client.clone();
    if config.get("group.id").is_none() {
        // Only to satisfy the consumer's configuration check: it never joins a group.
        config.set("group.id", "metadata-probe");
    }
    let consumer: BaseConsumer<ProbeContext> = config
        .create_with_context(ProbeContext::default())
        .map_err(ProbeError::Client)?;
    consumer.fetch_metadata(None, timeout).map_err(|error| {
        // Serves the error events the failed request queued.
        let _ = consumer.poll(Duration::from_millis(100));
        match consumer.context().refusal() {
            Some(Refusal { reason, hint }) => ProbeError::Unreachable { reason, hint },
            None => ProbeError::Unreachable {
                reason: error.to_string(),
                hint: ADDRESS_HINT,
            },
        }
    })
}

/// Why the cluster refused the client.
#[derive(Debug, Clone)]
struct Refusal {
    reason: String,
    hint: &'static str,
}

/// Keeps the first authentication or TLS failure librdkafka reports.
#[derive(Debug, Default)]
struct ProbeContext {
    refusal: Mutex<Option<Refusal>>,
}

impl ProbeContext {
    fn refusal(&self) -> Option<Refusal> {
        self.refusal
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// The hint for an error event, if it is a refusal rather than an address nobody answers on.
fn refusal_hint(error: &KafkaError) -> Option<&'static str> {
    match error.rdkafka_error_code()? {
        RDKafkaErrorCode::Authentication => Some(
            "check the SASL settings: sasl.mechanisms, sasl.username, sasl.password \
             (KAFKA_CONFIG_SASL_*)",
        ),
        RDKafkaErrorCode::SSL => {
            Some("check the TLS settings: security.protocol, ssl.ca.location (KAFKA_CONFIG_SSL_*)")
        }
        _ => None,
    }
}

impl ClientContext for ProbeContext {
    fn error(&self, error: KafkaError, reason: &str) {
        // librdkafka's own log line has said it already; the probe's error repeats it.
        tracing::debug!(%error, reason, "kafka client error");
        if let Some(hint) = refusal_hint(&error) {
            self.refusal
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| Refusal {
                    reason: reason.to_owned(),
                    hint,
                });
        }
    }
}

impl ConsumerContext for ProbeContext {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authentication_and_tls_failures_get_their_own_hints() {
        let hint = |code| refusal_hint(&KafkaError::Global(code));
        assert!(
            hint(RDKafkaErrorCode::Authentication).is_some_and(|h| h.contains("sasl.password"))
        );
        assert!(hint(RDKafkaErrorCode::SSL).is_some_and(|h| h.contains("ssl.ca.location")));
        assert_eq!(hint(RDKafkaErrorCode::AllBrokersDown), None);
    }

    #[test]
    fn nobody_answering_names_the_address_setting() {
        let mut client = ClientConfig::new();
        // Port 1 on loopback: nothing listens there.
        client.set("bootstrap.servers", "127.0.0.1:1");
        let Err(error) = probe_cluster(&client, Duration::from_millis(500)) else {
            panic!("nothing listens on 127.0.0.1:1, yet it answered");
        };
        match error {
            ProbeError::Unreachable { hint, .. } => assert_eq!(hint, ADDRESS_HINT),
            other @ ProbeError::Client(_) => panic!("expected unreachable, got {other}"),
        }
    }
}
