//! Events written by the warehouse system, outside this project (`schemas/warehouse/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;

/// Why physical stock changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum StockAdjustmentReason {
    #[default]
    Unknown,
    Restock,
    Return,
    CountCorrection,
    Damage,
}

/// The warehouse changed the physical stock of a SKU (`retail.warehouse.StockAdjusted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct StockAdjusted {
    pub envelope: Envelope,
    pub adjustment_id: String,
    pub warehouse_id: String,
    pub sku: String,
    /// Units added (> 0) or removed (< 0).
    pub quantity_delta: i32,
    pub reason: StockAdjustmentReason,
}
