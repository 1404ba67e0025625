//! The Confluent Schema Registry wire codec for the saga's events.
//!
//! A payload on a topic is magic byte `0`, a 4-byte big-endian schema id, and the Avro binary
//! body written with that schema. [`Codec`] turns [`retail_events::Event`]s into such payloads
//! and back, against a real Schema Registry (Confluent's, or the project's development registry).
//!
//! # Layout
//! - [`registry`]: registering the catalogue's schemas at start-up (idempotent) or looking them up.
//! - [`codec`]: encoding into reused buffers and decoding with readers cached per schema id.
//! - [`error`]: typed errors; each says whether it is retriable or the message's own fault.

pub mod codec;
pub mod error;
pub mod registry;

pub use codec::{Codec, HEADER_LEN, split_frame};
pub use error::{DecodeError, EncodeError, RegistryError};
pub use registry::{
    RegisteredEvent, RegistrationMode, register, register_catalogue, registry_client_builder,
    registry_settings, registry_settings_with_ca,
};
pub use schema_registry_converter::async_impl::schema_registry::SrSettings;
