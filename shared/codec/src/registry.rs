//! Registering the catalogue's event schemas with the Schema Registry at start-up.
//!
//! Every worker and tool calls [`register_catalogue`] (through `Codec::connect`) before it
//! produces: registration is idempotent (an identical schema returns its existing id), so it is
//! safe on every start and on every instance. Where a cluster's registry refuses writes from
//! services, [`RegistrationMode::LookupOnly`] finds the ids without registering.

use std::path::Path;
use std::time::Duration;

use retail_events::{EventDescriptor, catalogue};
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, perform_sr_call, post_schema,
};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SrCall, SuppliedSchema};

use crate::error::{RegistryError, is_registry_unavailable, registry_error_code};

/// How the codec obtains the schema ids of the event types it writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegistrationMode {
    /// Register each schema under its subject (idempotent).
    #[default]
    Register,
    /// Only look the schemas up; fail if one is not registered.
    LookupOnly,
}

/// An event type's schema id in the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisteredEvent {
    /// The event type.
    pub descriptor: &'static EventDescriptor,
    /// Its schema id.
    pub schema_id: u32,
}

/// Registry client settings for one URL, with a request timeout and, for secured registries,
/// HTTP basic credentials as `user:password`.
pub fn registry_settings(
    url: &str,
    basic_auth: Option<&str>,
    timeout: Duration,
) -> Result<SrSettings, RegistryError> {
    registry_settings_with_ca(url, basic_auth, None, timeout)
}

/// [`registry_settings`] that also trusts the CA certificates in `ca_file` (PEM), for a
/// registry whose HTTPS certificate a private CA issued. The system's roots are trusted either
/// way, and certificates are always verified.
pub fn registry_settings_with_ca(
    url: &str,
    basic_auth: Option<&str>,
    ca_file: Option<&Path>,
    timeout: Duration,
) -> Result<SrSettings, RegistryError> {
    let mut builder = SrSettings::new_builder(url.trim_end_matches('/').to_owned());
    builder.set_timeout(timeout);
    if let Some(credentials) = basic_auth {
        let (user, password) =
            credentials
                .split_once(':')
                .ok_or_else(|| RegistryError::Settings {
                    reason: "basic auth credentials must be user:password".to_owned(),
                })?;
        builder.set_basic_authorization(user, Some(password));
    }
    builder
        .build_with(registry_client_builder(ca_file)?)
        .map_err(|error| RegistryError::Settings {
            reason: error.to_string(),
        })
}

/// An HTTP client builder for the registry, trusting the CA certificates in `ca_file` (PEM)
/// besides the system's roots; for the requests the registry client library does not make.
pub fn registry_client_builder(
    ca_file: Option<&Path>,
) -> Result<reqwest::ClientBuilder, RegistryError> {
    let builder = reqwest::Client::builder();
    let Some(path) = ca_file else {
        return Ok(builder);
    };
    let settings = |reason: String| RegistryError::Settings { reason };
    let pem = std::fs::read(path).map_err(|error| {
        settings(format!(
            "cannot read the registry CA file {} (--schema-registry-ca-file, SCHEMA_REGISTRY_CA_FILE): {error}",
            path.display()
        ))
    })?;
    let roots = reqwest::Certificate::from_pem_bundle(&pem).map_err(|error| {
        settings(format!(
            "the registry CA file {} (--schema-registry-ca-file, SCHEMA_REGISTRY_CA_FILE) does not parse as PEM certificates: {error}",
            path.display()
        ))
    })?;
    if roots.is_empty() {
        return Err(settings(format!(
            "the registry CA file {} (--schema-registry-ca-file, SCHEMA_REGISTRY_CA_FILE) holds no PEM certificates",
            path.display()
        )));
    }
    Ok(roots
        .into_iter()
        .fold(builder, |builder, root| builder.add_root_certificate(root)))
}

/// Registers (or looks up) the schema of every event type of the catalogue and returns the ids.
pub async fn register_catalogue(
    settings: &SrSettings,
    mode: RegistrationMode,
) -> Result<Vec<RegisteredEvent>, RegistryError> {
    let mut registered = Vec::with_capacity(catalogue().events().len());
    for event in catalogue().events() {
        let subject = event.descriptor.subject();
        let schema_id = match mode {
            RegistrationMode::Register => register(settings, &subject, &event.text).await?,
            RegistrationMode::LookupOnly => look_up(settings, &subject, &event.text).await?,
        };
        tracing::debug!(subject = %subject, schema_id, "event schema registered");
        registered.push(RegisteredEvent {
            descriptor: event.descriptor,
            schema_id,
        });
    }
    Ok(registered)
}

/// Registers `schema` (Avro schema text) under `subject` and returns its id; an identical
/// schema already there returns its existing id. The registry's compatibility check applies.
///
/// # Errors
/// The registry is unreachable, or refuses the schema (an incompatible change: error code
/// 409).
pub async fn register(
    settings: &SrSettings,
    subject: &str,
    schema: &str,
) -> Result<u32, RegistryError> {
    let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
    post_schema(settings, subject.to_owned(), supplied)
        .await
        .map(|registered| registered.id)
        .map_err(|error| classify(subject, &error))
}

async fn look_up(settings: &SrSettings, subject: &str, schema: &str) -> Result<u32, RegistryError> {
    let body = serde_json::json!({ "schema": schema, "schemaType": "AVRO" }).to_string();
    match perform_sr_call(settings, SrCall::PostForVersion(subject, &body)).await {
        Ok(found) => found.id.ok_or_else(|| RegistryError::Rejected {
            subject: subject.to_owned(),
            error_code: None,
            reason: "lookup answer has no schema id".to_owned(),
        }),
        // 40401: subject not found; 40403: schema not found under the subject.
        Err(error) if matches!(registry_error_code(&error), Some(40401 | 40403)) => {
            Err(RegistryError::NotRegistered {
                subject: subject.to_owned(),
            })
        }
        Err(error) => Err(classify(subject, &error)),
    }
}

fn classify(subject: &str, error: &SRCError) -> RegistryError {
    if is_registry_unavailable(error) {
        RegistryError::Unavailable {
            subject: subject.to_owned(),
            reason: error.to_string(),
        }
    } else {
        RegistryError::Rejected {
            subject: subject.to_owned(),
            error_code: registry_error_code(error),
            reason: error.to_string(),
        }
    }
}
