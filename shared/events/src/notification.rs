//! Events written by the notification worker (`schemas/notification/`).

use serde::{Deserialize, Serialize};

#[cfg(any(test, feature = "proptest"))]
use proptest_derive::Arbitrary;

use crate::Envelope;

/// Which customer message (`retail.notification.NotificationKind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationKind {
    #[default]
    Unknown,
    OrderConfirmed,
    PaymentFailed,
    OrderCancelled,
    OrderShipped,
}

/// How a message was delivered (`retail.notification.NotificationChannel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum NotificationChannel {
    #[default]
    Unknown,
    Log,
    File,
    Webhook,
}

/// A customer message was delivered (`retail.notification.NotificationSent`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct NotificationSent {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    /// Idempotency key of the message; the same for every attempt.
    pub notification_id: String,
    pub kind: NotificationKind,
    pub channel: NotificationChannel,
    pub attempts: i32,
}

/// A customer message could not be delivered (`retail.notification.NotificationFailed`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(any(test, feature = "proptest"), derive(Arbitrary))]
pub struct NotificationFailed {
    pub envelope: Envelope,
    pub order_id: String,
    pub customer_id: String,
    pub notification_id: String,
    pub kind: NotificationKind,
    pub channel: NotificationChannel,
    pub attempts: i32,
    pub error: String,
}
