//! Events written by the storefront, outside this project (`schemas/storefront/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;
use crate::common::{Address, Customer, DeliverySpeed, Money};

/// One line of an order (`retail.storefront.OrderLine`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct OrderLine {
    /// 1-based position in the order.
    pub line_number: i32,
    pub sku: String,
    pub product_name: String,
    /// Units ordered, always > 0.
    pub quantity: i32,
    pub unit_price: Money,
    pub unit_weight_grams: i32,
}

/// A customer confirmed an order; starts the saga (`retail.storefront.OrderPlaced`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct OrderPlaced {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer: Customer,
    /// At least one line; SKUs are unique within an order.
    pub lines: Vec<OrderLine>,
    /// Sum of quantity * unit price over the lines.
    pub order_total: Money,
    pub shipping_address: Address,
    pub billing_address: Address,
    pub delivery_speed: DeliverySpeed,
}
