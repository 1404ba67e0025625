//! The retail order saga's event contracts.
//!
//! Every event the saga's services exchange is a Rust type here and an Avro schema in
//! `schemas/` at the repository root. The Rust types are written by hand (so they read well in
//! handlers) and kept true to the schemas by this crate's tests: every schema parses and composes,
//! every type round-trips through its schema, and the catalogue rules of `schemas/README.md`
//! (enum defaults, no floats, an envelope first) hold for every file.
//!
//! # Layout
//! - [`envelope`]: the envelope on every event, deterministic [`EventId`]s, [`Timestamp`].
//! - [`common`]: value types shared by several events (money, address, customer, stock line).
//! - one module per owning service with its events: [`storefront`], [`payments`], [`warehouse`],
//!   [`inventory`], [`fraud`], [`fulfilment`], [`shipping`], [`notification`].
//! - [`event`]: the [`EventType`] trait, the [`Event`] enum and the table of all event types.
//! - [`validate`]: the rules an event must satisfy beyond decoding (currencies, quantities,
//!   lines, country codes), checked by every consumer before it acts.
//! - [`topics`]: the topics, their keys and owners.
//! - [`catalogue`]: the embedded `.avsc` files and each event type's composed schema.

pub mod catalogue;
pub mod common;
pub mod envelope;
pub mod event;
pub mod fraud;
pub mod fulfilment;
pub mod inventory;
pub mod notification;
pub mod payments;
pub mod shipping;
pub mod storefront;
pub mod topics;
pub mod validate;
pub mod warehouse;

pub use catalogue::{Catalogue, EventSchema, catalogue};
pub use envelope::{Envelope, EventId, Timestamp};
#[cfg(any(test, feature = "proptest"))]
pub use event::arbitrary_event;
pub use event::{EVENT_TYPES, Event, EventDescriptor, EventType};
pub use topics::{PartitionKey, Topic};
pub use validate::Invalid;
