//! Events written by the fulfilment worker (`schemas/fulfilment/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::common::{Address, DeliverySpeed, StockLine};
use crate::{Envelope, Timestamp};

/// The warehouse starts picking an order (`retail.fulfilment.FulfilmentStarted`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct FulfilmentStarted {
    pub envelope: Envelope,
    pub order_id: String,
    pub warehouse_id: String,
    /// When the order is expected to be packed.
    pub pack_by: Timestamp,
}

/// The order is packed; carries what shipping needs (`retail.fulfilment.OrderPacked`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct OrderPacked {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    pub lines: Vec<StockLine>,
    pub parcel_count: i32,
    pub total_weight_grams: i32,
    pub delivery_speed: DeliverySpeed,
    pub shipping_address: Address,
}

/// Why an order was cancelled (`retail.fulfilment.CancellationReason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CancellationReason {
    #[default]
    Unknown,
    OutOfStock,
    PaymentFailed,
    FraudSuspected,
    Timeout,
}

/// The order will not be fulfilled (`retail.fulfilment.OrderCancelled`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct OrderCancelled {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    pub reason: CancellationReason,
    /// Human-readable explanation for support staff.
    pub detail: String,
}
