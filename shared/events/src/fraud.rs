//! Events written by the fraud worker (`schemas/fraud/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;

/// A fraud rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum FraudRule {
    #[default]
    Unknown,
    HighOrderAmount,
    CustomerVelocity,
    CountryMismatch,
    NewCustomerLargeOrder,
}

/// One rule that fired for an order (`retail.fraud.FraudSignal`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct FraudSignal {
    pub rule: FraudRule,
    /// Points the rule added to the score.
    pub points: i32,
    /// Why the rule fired; no personal data.
    pub detail: String,
}

/// The order scored below the threshold (`retail.fraud.FraudCleared`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct FraudCleared {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    /// 0 to 100.
    pub score: i32,
    pub signals: Vec<FraudSignal>,
}

/// The order scored at or above the threshold (`retail.fraud.FraudFlagged`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct FraudFlagged {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    /// 0 to 100.
    pub score: i32,
    pub threshold: i32,
    /// The reasons; at least one.
    pub signals: Vec<FraudSignal>,
}

/// Internal: an order re-keyed by customer for scoring (`retail.fraud.FraudCheckRequested`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct FraudCheckRequested {
    pub envelope: Envelope,
    pub customer_id: String,
    pub order_id: String,
    pub customer_since: crate::Timestamp,
    pub order_total: crate::common::Money,
    pub shipping_country: String,
    pub billing_country: String,
    pub line_count: i32,
}
