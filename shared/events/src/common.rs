//! Value types shared by several events (`schemas/common/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

/// An amount of money in integer minor units of an ISO 4217 currency (`retail.common.Money`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct Money {
    /// Amount in the currency's minor unit (cents for EUR).
    pub amount_minor: i64,
    /// ISO 4217 alphabetic code, e.g. `EUR`.
    pub currency: String,
}

/// A postal address (`retail.common.Address`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct Address {
    pub recipient_name: String,
    pub line1: String,
    pub line2: Option<String>,
    pub city: String,
    pub postal_code: String,
    /// State, province or county where the postal system needs one.
    pub region: Option<String>,
    /// ISO 3166-1 alpha-2 code, e.g. `SE`.
    pub country_code: String,
}

/// The customer who placed an order (`retail.common.Customer`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct Customer {
    pub customer_id: String,
    pub email: String,
    pub full_name: String,
    /// When the account was created; fraud rules treat recent accounts as new customers.
    pub customer_since: crate::Timestamp,
}

/// A quantity of one SKU (`retail.common.StockLine`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct StockLine {
    pub sku: String,
    /// Units, always > 0.
    pub quantity: i32,
}

/// The delivery the customer chose (`retail.common.DeliverySpeed`). `Unknown` is what a reader
/// sees for a symbol added after it was built; treat it as `Standard`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum DeliverySpeed {
    #[default]
    Unknown,
    Standard,
    Express,
}
