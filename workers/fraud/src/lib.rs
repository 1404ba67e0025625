//! The fraud worker of the retail order saga: scores every order placed and answers
//! `FraudCleared` or `FraudFlagged` (topic `fraud.checks.v1`, keyed by order id), which
//! fulfilment waits for.
//!
//! The worker runs two stages on the shared runtime, because orders arrive keyed by order id
//! while a customer's history must have exactly one owner:
//! 1. `orders` (stateless): `OrderPlaced` -> `FraudCheckRequested` on the internal topic
//!    `fraud.customer-orders.v1`, keyed by customer id;
//! 2. `customers` (state per customer, store `customers`): scores each request with the
//!    configured rules and the customer's history.
//!
//! # Layout
//! - [`rules`]: the rules, the score and the per-customer history; pure, no Kafka, no clock.
//! - [`stages`]: the two handlers, [`stages::OrdersStage`] and [`stages::CustomersStage`].
//! - [`config`]: the `--fraud-*` flags and `FRAUD_*` variables, validated into [`rules::Rules`].
//!
//! The binary (`src/main.rs`) parses the flags, initialises logging and runs both stages with
//! [`retail_runtime::run_stages`].

pub mod config;
pub mod rules;
pub mod stages;

pub use config::{ConfigError, FraudConfig};
pub use rules::{Assessment, CustomerHistory, Observation, Rules};
pub use stages::{CustomersStage, OrdersStage};

/// The worker's name: its consumer groups are `fraud.orders` and `fraud.customers` unless
/// `--group-id` says otherwise, and it is the `producer` of its events (`fraud.<stage>`).
pub const WORKER: &str = "fraud";
