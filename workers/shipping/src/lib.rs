//! The shipping worker of the retail order saga: books a shipment for every packed order.
//!
//! It reads `fulfilment.orders.v1` and answers each `OrderPacked` with a `ShipmentCreated` on
//! `shipping.shipments.v1`: a carrier and service level chosen by configurable rules (weight,
//! destination, delivery speed), a shipment id and tracking number derived from the order id,
//! and a printable label. `FulfilmentStarted` and `OrderCancelled` are ignored. The handler is
//! stateless and deterministic: re-processing an input after a crash re-emits identical bytes.
//! An `OrderPacked` no carrier could take (no lines, a non-positive quantity or parcel count, a
//! negative weight, no country) is rejected to the dead-letter topic.
//!
//! # Layout
//! - [`handler`]: the [`ShippingHandler`] and the validation of `OrderPacked`.
//! - [`rules`]: the carrier rule book (ordered rules as data) and its start-up validation.
//! - [`tracking`]: deterministic shipment ids and carrier-shaped tracking numbers.
//! - [`label`]: the label document, plain text or ZPL.
//! - [`config`]: the worker's flags and environment variables.

pub mod config;
pub mod handler;
pub mod label;
pub mod rules;
pub mod tracking;

pub use config::ShippingArgs;
pub use handler::ShippingHandler;
