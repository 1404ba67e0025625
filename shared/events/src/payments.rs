//! Events written by the payment system, outside this project (`schemas/payments/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;
use crate::common::Money;

/// How a payment was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentMethod {
    #[default]
    Unknown,
    Card,
    Wallet,
    BankTransfer,
    Invoice,
}

/// Why a payment failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PaymentFailureReason {
    #[default]
    Unknown,
    Declined,
    InsufficientFunds,
    ExpiredInstrument,
    ProviderError,
}

/// The payment for an order was authorised (`retail.payments.PaymentAuthorized`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct PaymentAuthorized {
    pub envelope: Envelope,
    pub order_id: String,
    pub payment_id: String,
    pub amount: Money,
    pub method: PaymentMethod,
    pub authorization_code: String,
}

/// The payment for an order failed (`retail.payments.PaymentFailed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct PaymentFailed {
    pub envelope: Envelope,
    pub order_id: String,
    pub payment_id: String,
    pub amount: Money,
    pub reason: PaymentFailureReason,
    /// Provider's explanation, safe to show to support staff.
    pub message: Option<String>,
}
