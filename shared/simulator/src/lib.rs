//! The simulator: plays the systems outside the project against the order saga, deterministically
//! from a seed. As the storefront it places orders (`OrderPlaced`) at a steady rate; as the
//! payment system it answers each with `PaymentAuthorized` or `PaymentFailed` after a short delay
//! (or never); as the warehouse it reports the initial stock (`StockAdjusted`) before the first
//! order and restocks SKUs that inventory reports low (`LowStock`).
//!
//! Every order belongs to a category (normal, payment failure, fraud-like, out of stock, missing
//! payment, scarce stock) that fixes how the saga must end it; the summary written at the end
//! lists each order with its expected outcome, for the end-to-end tests to check.
//!
//! # Layout
//! - [`plan`]: generating the run from the seed (pure): orders, customers, payment answers,
//!   initial stock, and the schedule.
//! - [`catalogue`]: the shop's fixed data (products by stock class, names, addresses).
//! - [`restock`]: the warehouse's answer to `LowStock` (pure).
//! - [`summary`]: the summary's JSON types and the category vocabulary.
//! - [`config`]: the command line and its validation.
//! - [`upgrade`]: `OrderPlaced` revision 2, for a storefront upgraded mid-run.
//! - [`mod@run`]: the thin Kafka side that sends the plan on time and feeds alerts to [`restock`].

pub mod catalogue;
pub mod config;
pub mod plan;
pub mod restock;
pub mod run;
pub mod summary;
pub mod upgrade;

pub use config::Config;
pub use run::{SimulatorError, run};
pub use summary::{Category, Expected, OrderSummary, PaymentSent, SkuClass, SkuSummary, Summary};
