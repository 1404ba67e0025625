//! Events written by the inventory worker (`schemas/inventory/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;
use crate::common::StockLine;

/// Every line of an order is reserved (`retail.inventory.StockReserved`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct StockReserved {
    pub envelope: Envelope,
    pub order_id: String,
    pub lines: Vec<StockLine>,
}

/// An order line that could not be reserved (`retail.inventory.ShortLine`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct ShortLine {
    pub sku: String,
    pub requested: i32,
    pub available: i32,
}

/// The order could not be reserved in full; nothing was reserved (`retail.inventory.StockRejected`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct StockRejected {
    pub envelope: Envelope,
    pub order_id: String,
    /// The lines that were short; at least one.
    pub short_lines: Vec<ShortLine>,
}

/// Why a reservation was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ReleaseReason {
    #[default]
    Unknown,
    OrderCancelled,
}

/// A reservation went back to available stock (`retail.inventory.StockReleased`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct StockReleased {
    pub envelope: Envelope,
    pub order_id: String,
    pub lines: Vec<StockLine>,
    pub reason: ReleaseReason,
}

/// Available stock of a SKU fell below its threshold (`retail.inventory.LowStock`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct LowStock {
    pub envelope: Envelope,
    pub sku: String,
    pub available: i32,
    pub threshold: i32,
}

/// What the order stage asks of the stock stage (`retail.inventory.SkuCommandKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SkuCommandKind {
    #[default]
    Unknown,
    Hold,
    Release,
    Ship,
}

/// Internal: hold, release or ship one order's units of a SKU (`retail.inventory.SkuCommand`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct SkuCommand {
    pub envelope: Envelope,
    pub sku: String,
    pub order_id: String,
    pub kind: SkuCommandKind,
    pub quantity: i32,
}

/// Internal: the stock stage's answer to a hold (`retail.inventory.SkuHoldAnswered`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct SkuHoldAnswered {
    pub envelope: Envelope,
    pub order_id: String,
    pub sku: String,
    pub requested: i32,
    pub held: bool,
    pub available: i32,
}
