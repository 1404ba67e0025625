//! What can go wrong between bytes on a topic and a typed event, classified for the caller.
//!
//! The classes decide what a worker does with a record: a fault of the message itself
//! (`is_message_fault`) goes to the dead-letter topic with its reason and processing continues;
//! a registry problem is retried with back-off, because the same bytes will decode once the
//! registry answers again.

use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::RawError;

/// A payload could not be decoded into an event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The payload does not start with magic byte 0 and a 4-byte schema id.
    #[error(
        "payload is not in the Confluent wire format: {len} bytes, first byte {first_byte:?}; \
         expected magic byte 0 followed by a 4-byte schema id"
    )]
    NotConfluentFraming { len: usize, first_byte: Option<u8> },

    /// The registry does not know the schema id in the payload.
    #[error("schema id {schema_id} is not known to the schema registry")]
    UnknownSchemaId { schema_id: u32 },

    /// The registry could not be reached or failed (network, timeout, 5xx, credentials).
    /// Retriable: the same payload decodes once the registry answers.
    #[error("schema registry unavailable while fetching schema id {schema_id}: {reason}")]
    RegistryUnavailable { schema_id: u32, reason: String },

    /// The writer's schema is not an event type of this build's catalogue.
    #[error("schema id {schema_id} is {record_name}, which is not an event type of the catalogue")]
    UnknownEventType { schema_id: u32, record_name: String },

    /// The writer's schema cannot be resolved to this build's schema of the event type.
    #[error(
        "schema id {schema_id} of {event_type} cannot be read with this build's schema: {reason}"
    )]
    IncompatibleReader {
        schema_id: u32,
        event_type: &'static str,
        reason: String,
    },

    /// The body does not decode with the writer's schema (truncated, corrupted, trailing bytes).
    #[error("body of {event_type} (schema id {schema_id}) does not match its schema: {reason}")]
    MalformedBody {
        schema_id: u32,
        event_type: &'static str,
        reason: String,
    },
}

impl DecodeError {
    /// True when retrying the same payload later can succeed.
    pub fn is_retriable(&self) -> bool {
        matches!(self, Self::RegistryUnavailable { .. })
    }

    /// True when the payload itself is at fault: dead-letter it and move on.
    pub fn is_message_fault(&self) -> bool {
        !self.is_retriable()
    }

    /// A short stable name of the error class, for dead-letter headers and metric labels.
    pub fn class(&self) -> &'static str {
        match self {
            Self::NotConfluentFraming { .. } => "not_confluent_framing",
            Self::UnknownSchemaId { .. } => "unknown_schema_id",
            Self::RegistryUnavailable { .. } => "registry_unavailable",
            Self::UnknownEventType { .. } => "unknown_event_type",
            Self::IncompatibleReader { .. } => "incompatible_reader",
            Self::MalformedBody { .. } => "malformed_body",
        }
    }
}

/// An event could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// The codec has no schema id for this event type (it was built without registering it).
    #[error("no registered schema for event type {event_type}")]
    Unregistered { event_type: &'static str },

    /// The event does not fit its own schema; a bug in the Rust type or the `.avsc`.
    #[error("{event_type} does not serialise with its schema: {reason}")]
    Serialization {
        event_type: &'static str,
        reason: String,
    },
}

/// Registering or looking up the catalogue's schemas failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The registry could not be reached or failed; retry start-up later.
    #[error("schema registry unavailable for subject {subject}: {reason}")]
    Unavailable { subject: String, reason: String },

    /// The registry refused the schema (e.g. incompatible with the subject's history).
    #[error("schema registry refused subject {subject} (error code {error_code:?}): {reason}")]
    Rejected {
        subject: String,
        error_code: Option<u32>,
        reason: String,
    },

    /// In look-up-only mode, the schema is not registered under the subject.
    #[error(
        "schema for subject {subject} is not registered, and this codec does not register schemas"
    )]
    NotRegistered { subject: String },

    /// The registry settings are unusable (bad URL, TLS setup).
    #[error("schema registry client cannot be built: {reason}")]
    Settings { reason: String },
}

/// The Confluent error code (e.g. 40403) behind a registry client error, if the registry sent one.
pub(crate) fn registry_error_code(error: &SRCError) -> Option<u32> {
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<RawError>())
        .map(|raw| raw.error_code)
}

/// Whether a registry client error is the registry's or the network's fault rather than the
/// request's: retriable per the client, or a 5xx error code.
pub(crate) fn is_registry_unavailable(error: &SRCError) -> bool {
    error.retriable || registry_error_code(error).is_some_and(|code| (50000..60000).contains(&code))
}
